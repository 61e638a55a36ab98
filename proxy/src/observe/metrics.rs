//! `/metrics`: Prometheus text format 0.0.4. The balancer's families carry HAProxy's native
//! exporter names, the VRRP ones keepalived-exporter's, so dashboards and alerts written for
//! those keep working. Labels name only configured things (proxy, server, instance, VIP, drop
//! reason), so the series count is bounded by the config, never by traffic.

use std::fmt::Write as _;

use super::meters::HTTP_CLASSES;
use super::snapshot::{AnnounceView, RowCounters, Snapshot, VrrpInstanceView};

/// The media type of the text format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Writes families one at a time: HELP and TYPE once, then every sample.
struct Out {
    text: String,
}

impl Out {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.text, "# HELP {name} {help}");
        let _ = writeln!(self.text, "# TYPE {name} {kind}");
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: impl std::fmt::Display) {
        self.text.push_str(name);
        if !labels.is_empty() {
            self.text.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.text.push(',');
                }
                let _ = write!(self.text, "{k}=\"{}\"", escape(v));
            }
            self.text.push('}');
        }
        let _ = writeln!(self.text, " {value}");
    }
}

fn escape(v: &str) -> std::borrow::Cow<'_, str> {
    if !v.contains(['\\', '"', '\n']) {
        return std::borrow::Cow::Borrowed(v);
    }
    std::borrow::Cow::Owned(
        v.replace('\\', "\\\\")
            .replace('"', "\\\"")
            .replace('\n', "\\n"),
    )
}

/// A family described by name, type and help, and how to read its value from `T`.
type Family<T> = (&'static str, &'static str, &'static str, fn(&T) -> u64);

/// An average time family: name suffix, help, microseconds of a row.
type TimeFamily = (&'static str, &'static str, fn(&RowCounters) -> u64);

/// One family over rows: (labels, value) for each.
type Rows<'a> = Vec<(Vec<(&'static str, &'a str)>, &'a RowCounters)>;

fn counter_family(
    o: &mut Out,
    name: &str,
    help: &str,
    kind: &str,
    rows: &Rows<'_>,
    get: impl Fn(&RowCounters) -> u64,
) {
    o.family(name, kind, help);
    for (labels, c) in rows {
        o.sample(name, labels, get(c));
    }
}

fn http_family(o: &mut Out, name: &str, help: &str, rows: &Rows<'_>) {
    o.family(name, "counter", help);
    for (labels, c) in rows {
        for (class, v) in HTTP_CLASSES.iter().zip(c.http_responses) {
            let mut l = labels.clone();
            l.push(("code", class));
            o.sample(name, &l, v);
        }
    }
}

pub fn render(snap: &Snapshot) -> String {
    let mut o = Out {
        text: String::with_capacity(8192),
    };
    process(&mut o, snap);
    frontends(&mut o, snap);
    backends(&mut o, snap);
    servers(&mut o, snap);
    vrrp(&mut o, &snap.vrrp);
    announce(&mut o, &snap.announce);
    o.text
}

/// Announced addresses (ECMP): whether each is held for the routing daemon now, and how
/// often it was withdrawn. Absent when the file has no `announce` section.
fn announce(o: &mut Out, list: &[AnnounceView]) {
    if list.is_empty() {
        return;
    }
    let families: [Family<AnnounceView>; 2] = [
        (
            "vrrplb_announce_state",
            "gauge",
            "1 while the address is announced (held on its interface), 0 when withdrawn or pending.",
            |a| u64::from(a.state == "announced"),
        ),
        (
            "vrrplb_announce_withdrawals_total",
            "counter",
            "Times the address went from announced to withdrawn.",
            |a| a.withdrawals,
        ),
    ];
    for (name, kind, help, get) in families {
        o.family(name, kind, help);
        for a in list {
            o.sample(
                name,
                &[
                    ("name", &a.name),
                    ("address", &a.address),
                    ("interface", &a.interface),
                ],
                get(a),
            );
        }
    }
}

fn process(o: &mut Out, snap: &Snapshot) {
    o.family(
        "haproxy_process_current_connections",
        "gauge",
        "Client connections open in the process.",
    );
    o.sample(
        "haproxy_process_current_connections",
        &[],
        snap.proxy.connections,
    );
    o.family(
        "haproxy_process_max_connections",
        "gauge",
        "Process-wide connection limit (global maxconn).",
    );
    o.sample("haproxy_process_max_connections", &[], snap.maxconn);
    o.family(
        "haproxy_process_uptime_seconds",
        "gauge",
        "Seconds since the process started.",
    );
    o.sample("haproxy_process_uptime_seconds", &[], snap.uptime_secs);
}

fn frontends(o: &mut Out, snap: &Snapshot) {
    let fe = &snap.proxy.frontends;
    o.family(
        "haproxy_frontend_status",
        "gauge",
        "1 while the frontend listens (gated frontends listen on the MASTER only).",
    );
    for f in fe {
        o.sample(
            "haproxy_frontend_status",
            &[("proxy", &f.name)],
            u8::from(f.listening),
        );
    }
    o.family(
        "haproxy_frontend_limit_sessions",
        "gauge",
        "Frontend session limit (maxconn).",
    );
    for f in fe {
        o.sample(
            "haproxy_frontend_limit_sessions",
            &[("proxy", &f.name)],
            f.limit,
        );
    }
    let rows: Rows<'_> = fe
        .iter()
        .map(|f| (vec![("proxy", f.name.as_str())], &f.counters))
        .collect();
    let families: [Family<RowCounters>; 11] = [
        (
            "haproxy_frontend_current_sessions",
            "gauge",
            "Current client connections.",
            |c| c.sessions_cur,
        ),
        (
            "haproxy_frontend_max_sessions",
            "gauge",
            "Highest number of client connections at once.",
            |c| c.sessions_max,
        ),
        (
            "haproxy_frontend_sessions_total",
            "counter",
            "Client connections accepted.",
            |c| c.sessions_total,
        ),
        (
            "haproxy_frontend_current_session_rate",
            "gauge",
            "Connections accepted per second over the last second.",
            |c| c.rate,
        ),
        (
            "haproxy_frontend_max_session_rate",
            "gauge",
            "Highest connection rate seen.",
            |c| c.rate_max,
        ),
        (
            "haproxy_frontend_bytes_in_total",
            "counter",
            "Request bytes received from clients.",
            |c| c.bytes_in,
        ),
        (
            "haproxy_frontend_bytes_out_total",
            "counter",
            "Response bytes sent to clients.",
            |c| c.bytes_out,
        ),
        (
            "haproxy_frontend_requests_denied_total",
            "counter",
            "Requests denied by rules.",
            |c| c.denied_requests,
        ),
        (
            "haproxy_frontend_request_errors_total",
            "counter",
            "Requests that failed on the client side.",
            |c| c.errors_request,
        ),
        (
            "haproxy_frontend_http_requests_total",
            "counter",
            "HTTP requests received.",
            |c| c.requests_total,
        ),
        (
            "haproxy_frontend_connections_total",
            "counter",
            "Client connections accepted.",
            |c| c.sessions_total,
        ),
    ];
    for (name, kind, help, get) in families {
        counter_family(o, name, help, kind, &rows, get);
    }
    http_family(
        o,
        "haproxy_frontend_http_responses_total",
        "HTTP responses sent, by status class.",
        &rows,
    );
}

fn backends(o: &mut Out, snap: &Snapshot) {
    let be = &snap.proxy.backends;
    o.family(
        "haproxy_backend_status",
        "gauge",
        "1 while a server of the backend can take requests.",
    );
    for b in be {
        o.sample(
            "haproxy_backend_status",
            &[("proxy", &b.name)],
            u8::from(b.up > 0),
        );
    }
    o.family(
        "haproxy_backend_active_servers",
        "gauge",
        "Active (non-backup) servers UP.",
    );
    for b in be {
        let n = b.servers.iter().filter(|s| s.up && !s.backup).count();
        o.sample("haproxy_backend_active_servers", &[("proxy", &b.name)], n);
    }
    o.family(
        "haproxy_backend_backup_servers",
        "gauge",
        "Backup servers UP.",
    );
    for b in be {
        let n = b.servers.iter().filter(|s| s.up && s.backup).count();
        o.sample("haproxy_backend_backup_servers", &[("proxy", &b.name)], n);
    }
    o.family(
        "haproxy_backend_check_up_down_total",
        "counter",
        "Times the backend lost its last usable server.",
    );
    for b in be {
        o.sample(
            "haproxy_backend_check_up_down_total",
            &[("proxy", &b.name)],
            b.check_downs,
        );
    }
    o.family(
        "haproxy_backend_downtime_seconds_total",
        "counter",
        "Seconds the backend had no usable server.",
    );
    for b in be {
        o.sample(
            "haproxy_backend_downtime_seconds_total",
            &[("proxy", &b.name)],
            b.downtime_secs,
        );
    }
    let rows: Rows<'_> = be
        .iter()
        .map(|b| (vec![("proxy", b.name.as_str())], &b.counters))
        .collect();
    rows_families(o, "haproxy_backend", &rows);
}

/// Families backends and servers share.
fn rows_families(o: &mut Out, prefix: &str, rows: &Rows<'_>) {
    let families: [Family<RowCounters>; 15] = [
        (
            "current_queue",
            "gauge",
            "Requests waiting in the queue.",
            |c| c.queue_cur,
        ),
        ("max_queue", "gauge", "Longest queue seen.", |c| c.queue_max),
        ("current_sessions", "gauge", "Requests in flight.", |c| {
            c.sessions_cur
        }),
        (
            "max_sessions",
            "gauge",
            "Most requests in flight at once.",
            |c| c.sessions_max,
        ),
        ("sessions_total", "counter", "Requests handled.", |c| {
            c.sessions_total
        }),
        (
            "current_session_rate",
            "gauge",
            "Requests per second over the last second.",
            |c| c.rate,
        ),
        (
            "max_session_rate",
            "gauge",
            "Highest request rate seen.",
            |c| c.rate_max,
        ),
        (
            "bytes_in_total",
            "counter",
            "Request bytes received from clients (tcp mode: bytes sent to the server).",
            |c| c.bytes_in,
        ),
        (
            "bytes_out_total",
            "counter",
            "Response bytes sent to clients.",
            |c| c.bytes_out,
        ),
        (
            "connection_errors_total",
            "counter",
            "Failed connections to servers.",
            |c| c.errors_connect,
        ),
        (
            "response_errors_total",
            "counter",
            "Invalid or missing server responses.",
            |c| c.errors_response,
        ),
        (
            "retry_warnings_total",
            "counter",
            "Connection retries.",
            |c| c.retries,
        ),
        (
            "redispatch_warnings_total",
            "counter",
            "Requests redispatched to another server.",
            |c| c.redispatches,
        ),
        (
            "loadbalanced_total",
            "counter",
            "Times a server was picked by the balancing.",
            |c| c.lb_total,
        ),
        (
            "http_requests_total",
            "counter",
            "HTTP requests handled.",
            |c| c.requests_total,
        ),
    ];
    for (name, kind, help, get) in families {
        counter_family(o, &format!("{prefix}_{name}"), help, kind, rows, get);
    }
    http_family(
        o,
        &format!("{prefix}_http_responses_total"),
        "HTTP responses, by status class.",
        rows,
    );
    let times: [TimeFamily; 2] = [
        (
            "response_time_average_seconds",
            "Average server response-header time over the last 1024 HTTP requests.",
            |c| c.response_time_us,
        ),
        (
            "total_time_average_seconds",
            "Average whole request (tcp mode: session) time over the last 1024.",
            |c| c.total_time_us,
        ),
    ];
    for (name, help, get) in times {
        let name = format!("{prefix}_{name}");
        o.family(&name, "gauge", help);
        for (labels, c) in rows {
            o.sample(&name, labels, get(c) as f64 / 1e6);
        }
    }
}

fn servers(o: &mut Out, snap: &Snapshot) {
    let all: Vec<_> = snap
        .proxy
        .backends
        .iter()
        .flat_map(|b| b.servers.iter().map(move |s| (b.name.as_str(), s)))
        .collect();
    o.family(
        "haproxy_server_status",
        "gauge",
        "Server state: 1 for the state the server is in (UP or DOWN; checks in progress count as the state they leave).",
    );
    for (b, s) in &all {
        for state in ["UP", "DOWN"] {
            let now = if s.up { "UP" } else { "DOWN" };
            o.sample(
                "haproxy_server_status",
                &[("proxy", b), ("server", &s.name), ("state", state)],
                u8::from(now == state),
            );
        }
    }
    let per_server: [Family<super::snapshot::ServerStats>; 5] = [
        ("haproxy_server_weight", "gauge", "Server weight.", |s| {
            u64::from(s.weight)
        }),
        (
            "haproxy_server_check_failures_total",
            "counter",
            "Failed health checks.",
            |s| s.check_failures,
        ),
        (
            "haproxy_server_check_up_down_total",
            "counter",
            "UP to DOWN transitions.",
            |s| s.check_downs,
        ),
        (
            "haproxy_server_downtime_seconds_total",
            "counter",
            "Seconds spent DOWN.",
            |s| s.downtime_secs,
        ),
        (
            "haproxy_server_last_status_change_seconds",
            "gauge",
            "Seconds since the last UP/DOWN change.",
            |s| s.last_change_secs,
        ),
    ];
    for (name, kind, help, get) in per_server {
        o.family(name, kind, help);
        for (b, s) in &all {
            o.sample(name, &[("proxy", b), ("server", &s.name)], get(s));
        }
    }
    o.family(
        "haproxy_server_check_duration_seconds",
        "gauge",
        "Duration of the last health check.",
    );
    for (b, s) in &all {
        if let Some(ms) = s.check_duration_ms {
            o.sample(
                "haproxy_server_check_duration_seconds",
                &[("proxy", b), ("server", &s.name)],
                ms as f64 / 1000.0,
            );
        }
    }
    let rows: Rows<'_> = all
        .iter()
        .map(|(b, s)| {
            (
                vec![("proxy", *b), ("server", s.name.as_str())],
                &s.counters,
            )
        })
        .collect();
    rows_families(o, "haproxy_server", &rows);
}

/// keepalived-exporter's counters that sum some of our drop reasons.
const KEEPALIVED_DROPS: [(&str, &str, &[&str]); 6] = [
    (
        "keepalived_ip_ttl_errors_total",
        "Adverts with a TTL other than 255.",
        &["bad_ttl"],
    ),
    (
        "keepalived_advertisements_interval_errors_total",
        "Adverts with another advert interval.",
        &["interval_mismatch"],
    ),
    (
        "keepalived_authentication_failure_total",
        "Adverts with a wrong password.",
        &["bad_password"],
    ),
    (
        "keepalived_invalid_authentication_type_total",
        "Adverts with another or unknown authentication type.",
        &[
            "auth_type_mismatch",
            "unknown_auth_type",
            "unsupported_auth_ah",
        ],
    ),
    (
        "keepalived_address_list_errors_total",
        "Adverts whose address list differs from ours.",
        &["address_mismatch", "address_count_mismatch"],
    ),
    (
        "keepalived_packet_length_errors_total",
        "Adverts too short, truncated or of a wrong length.",
        &["too_short", "truncated", "bad_length", "ip_length_mismatch"],
    ),
];

fn vrrp(o: &mut Out, instances: &[VrrpInstanceView]) {
    o.family(
        "keepalived_vrrp_state",
        "gauge",
        "VRRP state: 0 init, 1 backup, 2 master, 3 fault.",
    );
    for i in instances {
        let vrid = i.vrid.to_string();
        for vip in &i.vips {
            o.sample(
                "keepalived_vrrp_state",
                &[
                    ("iname", &i.name),
                    ("intf", &i.interface),
                    ("vrid", &vrid),
                    ("ip_address", vip),
                ],
                i.state_code(),
            );
        }
    }
    let per_instance: [Family<VrrpInstanceView>; 5] = [
        (
            "keepalived_vrrp_priority",
            "gauge",
            "Effective priority (base adjusted by trackers).",
            |i| u64::from(i.priority),
        ),
        (
            "keepalived_vrrp_base_priority",
            "gauge",
            "Configured priority.",
            |i| u64::from(i.base_priority),
        ),
        (
            "keepalived_become_master_total",
            "counter",
            "Times the instance became MASTER.",
            |i| i.become_master,
        ),
        (
            "keepalived_advertisements_received_total",
            "counter",
            "Valid adverts received.",
            |i| i.adverts_received,
        ),
        (
            "keepalived_advertisements_sent_total",
            "counter",
            "Adverts sent.",
            |i| i.adverts_sent,
        ),
    ];
    for (name, kind, help, get) in per_instance {
        o.family(name, kind, help);
        for i in instances {
            let vrid = i.vrid.to_string();
            o.sample(
                name,
                &[("iname", &i.name), ("intf", &i.interface), ("vrid", &vrid)],
                get(i),
            );
        }
    }
    for (name, help, keys) in KEEPALIVED_DROPS {
        o.family(name, "counter", help);
        for i in instances {
            let vrid = i.vrid.to_string();
            let n: u64 = i
                .invalid_adverts
                .iter()
                .filter(|(k, _)| keys.contains(&k.as_str()))
                .map(|(_, n)| n)
                .sum();
            o.sample(
                name,
                &[("iname", &i.name), ("intf", &i.interface), ("vrid", &vrid)],
                n,
            );
        }
    }
    o.family(
        "vrrplb_vrrp_invalid_adverts_total",
        "counter",
        "Invalid adverts dropped, by reason (vrrp.md).",
    );
    for i in instances {
        for (reason, n) in &i.invalid_adverts {
            o.sample(
                "vrrplb_vrrp_invalid_adverts_total",
                &[("iname", &i.name), ("reason", reason)],
                n,
            );
        }
    }
    o.family(
        "keepalived_script_status",
        "gauge",
        "Tracked script state: 1 ok, 0 failing or not run yet.",
    );
    for i in instances {
        for t in i.trackers.iter().filter(|t| t.kind == "script") {
            o.sample(
                "keepalived_script_status",
                &[("iname", &i.name), ("name", &t.name)],
                u8::from(t.status == "ok"),
            );
        }
    }
}
