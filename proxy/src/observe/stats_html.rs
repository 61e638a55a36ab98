//! The stats page (lb.md §16): HAProxy's layout and colours, one table per frontend and
//! backend with HAProxy's column groups, a legend, and a VRRP block on top. One response, no
//! external assets (it works offline and behind an air gap).

use std::fmt::Write as _;

use super::snapshot::{BackendStats, FrontendStats, RowCounters, ServerStats, Snapshot};

/// How the page is asked for.
pub struct PageOptions<'a> {
    /// The page's own path (`uri`), for the refresh links.
    pub uri: &'a str,
    /// Auto-refresh period in seconds, when refreshing.
    pub refresh: Option<u64>,
    /// Whether refresh is configured at all (the link to turn it back on).
    pub refresh_configured: bool,
    pub show_node: bool,
}

const STYLE: &str = "body{font-family:arial,helvetica,sans-serif;font-size:12px;font-weight:normal;color:black;background:white}
th,td{font-size:10px}
h1{font-size:x-large;margin-bottom:0.5em}
h2{font-family:helvetica,arial;font-size:x-large;font-weight:bold;font-style:italic;color:#6020a0;margin-top:0em;margin-bottom:0em}
h3{font-family:helvetica,arial;font-size:16px;font-weight:bold;color:#b00040;background:#e8e8d0;margin-top:0em;margin-bottom:0em}
a.px:link,a.px:visited{color:#ffff40;text-decoration:none}
a:link,a:visited{color:#000080}
table.tbl{border-collapse:collapse;border-style:none}
table.tbl td,table.tbl th{text-align:right;border-width:1px 1px 1px 1px;border-style:solid solid solid solid;padding:2px 3px;border-color:gray;white-space:nowrap}
table.tbl td.ac{text-align:center}
table.tbl th{border-width:1px;border-style:solid solid solid solid;border-color:gray}
table.tbl th.pxname{background:#b00040;color:#ffff40;font-weight:bold;border-style:solid solid none solid;padding:2px 3px;white-space:nowrap}
table.tbl th.empty{border-style:none;empty-cells:hide;background:white}
table.tbl th.desc{background:white;border-style:solid solid none solid;text-align:left;padding:2px 3px}
table.lgd{border-collapse:collapse;border-width:1px;border-style:none none none solid;border-color:black}
table.lgd td{border-width:1px;border-style:solid solid solid solid;border-color:gray;padding:2px}
table.lgd td.noborder{border-style:none;padding:2px;white-space:nowrap}
table.det{border-collapse:collapse;border-style:none}
table.det th{text-align:left;border-width:0px;padding:0px 1px 0px 0px;font-style:normal;font-size:11px;font-weight:bold;font-family:sans-serif}
table.det td{text-align:left;border-width:0px;padding:0px 1px 0px 0px;font-size:11px}
u{text-decoration:none;border-bottom:1px dotted black}
.titre{background:#20D0D0;color:#000000;font-weight:bold;text-align:center}
.total{background:#20D0D0;color:#ffff80}
.frontend{background:#e8e8d0}
.socket{background:#d0d0d0}
.backend{background:#e8e8d0}
.active_down{background:#ff9090}
.active_going_up{background:#ffd020}
.active_going_down{background:#ffffa0}
.active_up{background:#c0ffc0}
.active_nocheck{background:#e0e0e0}
.backup_up{background:#b0d0ff}
.vrrp_master{background:#c0ffc0}
.vrrp_backup{background:#e0e0e0}
.vrrp_fault{background:#ff9090}
.vrrp_init{background:#ffffa0}
";

/// Legend entries: CSS class and text, in HAProxy's order.
const LEGEND: [(&str, &str); 6] = [
    ("active_up", "active UP"),
    ("backup_up", "backup UP"),
    ("active_going_down", "active UP, going down"),
    ("active_going_up", "active DOWN, going up"),
    ("active_down", "active or backup DOWN"),
    ("active_nocheck", "not checked"),
];

pub fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '&' => o.push_str("&amp;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c => o.push(c),
        }
    }
    o
}

pub fn render(snap: &Snapshot, opts: &PageOptions<'_>) -> String {
    let mut h = String::with_capacity(16 * 1024 + 2048 * snap.proxy.backends.len());
    let node = if opts.show_node {
        format!(" on {}", esc(&snap.node))
    } else {
        String::new()
    };
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>Statistics Report for {} pid {}{node}</title>\n<style>{STYLE}</style></head>\n<body><h1>{} version {}</h1>\n<h2>Statistics Report for pid {}{node}</h2>\n<hr><h3>&gt; General process information</h3>\n",
        esc(&snap.product),
        snap.pid,
        esc(&snap.product),
        esc(&snap.version),
        snap.pid
    );
    general(&mut h, snap, opts);
    vrrp_block(&mut h, snap);
    for f in &snap.proxy.frontends {
        frontend_table(&mut h, f);
    }
    for b in &snap.proxy.backends {
        backend_table(&mut h, b);
    }
    h.push_str("</body></html>\n");
    h
}

fn general(h: &mut String, snap: &Snapshot, opts: &PageOptions<'_>) {
    let up = snap.uptime_secs;
    let conn_rate: u64 = snap.proxy.frontends.iter().map(|f| f.counters.rate).sum();
    let req_rate: u64 = snap.proxy.backends.iter().map(|b| b.counters.rate).sum();
    let _ = write!(
        h,
        "<table border=0><tr><td align=\"left\" nowrap width=\"1%\"><p><b>pid = </b> {} (process #1, nbproc = 1)<br>\n<b>uptime = </b> {}d {}h{:02}m{:02}s<br>\n<b>system limits:</b> maxconn = {}<br>\n<b>current conns = </b> {}; <b>current rate</b> conn {}/s, req {}/s<br>\n</p></td><td align=\"center\" nowrap>\n<table class=\"lgd\"><tr>",
        snap.pid,
        up / 86400,
        (up / 3600) % 24,
        (up / 60) % 60,
        up % 60,
        snap.maxconn,
        snap.proxy.connections,
        conn_rate,
        req_rate
    );
    for (i, (class, text)) in LEGEND.iter().enumerate() {
        if i == 3 {
            h.push_str("</tr><tr>");
        }
        let _ = write!(
            h,
            "<td class=\"{class}\">&nbsp;</td><td class=\"noborder\">{text} </td>"
        );
    }
    h.push_str("</tr></table>\nNote: \"UP 1/3\" = UP, 1 of 3 failed checks before DOWN; \"DOWN 1/2\" = DOWN, 1 of 2 passed checks before UP.</td>\n<td align=\"left\" valign=\"top\" nowrap width=\"1%\"><b>Display option:</b><ul style=\"margin-top:0.25em;\">\n");
    let uri = esc(opts.uri);
    match opts.refresh {
        Some(_) => {
            let _ = writeln!(h, "<li><a href=\"{uri};norefresh\">Disable refresh</a><br>");
        }
        None if opts.refresh_configured => {
            let _ = writeln!(h, "<li><a href=\"{uri}\">Enable refresh</a><br>");
        }
        None => {}
    }
    let _ = write!(
        h,
        "<li><a href=\"{uri}\">Refresh now</a><br>\n<li><a href=\"{uri};csv\">CSV export</a><br>\n<li><a href=\"{uri};json\">JSON export</a><br>\n<li><a href=\"/metrics\">Prometheus metrics</a><br>\n</ul></td></tr></table>\n"
    );
}

fn vrrp_block(h: &mut String, snap: &Snapshot) {
    if snap.vrrp.is_empty() {
        return;
    }
    h.push_str("<p><table class=\"tbl\" width=\"100%\" id=\"vrrp\">\n<tr class=\"titre\"><th class=\"pxname\" width=\"10%\">VRRP</th><th class=\"empty\" colspan=\"11\"></th></tr>\n<tr class=\"titre\"><th>Instance</th><th>Interface</th><th>VRID</th><th>State</th><th>Priority</th><th>Base</th><th>VIPs</th><th>Master</th><th>Last transition</th><th>Trackers</th><th>Adverts sent/rcvd</th><th>Invalid</th></tr>\n");
    for i in &snap.vrrp {
        let class = match i.state.as_str() {
            "MASTER" => "vrrp_master",
            "BACKUP" => "vrrp_backup",
            "FAULT" => "vrrp_fault",
            _ => "vrrp_init",
        };
        let last = match &i.last_transition {
            Some(t) => format!(
                "{} -&gt; {} {} ago ({})",
                esc(&t.from),
                esc(&t.to),
                human_secs(snap.time.saturating_sub(t.at)),
                esc(&t.reason)
            ),
            None => String::from("-"),
        };
        let trackers: Vec<String> = i
            .trackers
            .iter()
            .map(|t| format!("{} {}: {}", esc(&t.kind), esc(&t.name), esc(&t.status)))
            .collect();
        let invalid: u64 = i.invalid_adverts.iter().map(|(_, n)| n).sum();
        let _ = writeln!(
            h,
            "<tr class=\"{class}\" id=\"vrrp-{}\"><td class=\"ac\">{}</td><td class=\"ac\">{}</td><td>{}</td><td class=\"ac\"><b>{}</b></td><td>{}</td><td>{}</td><td class=\"ac\">{}</td><td class=\"ac\">{}</td><td class=\"ac\">{last}</td><td class=\"ac\">{}</td><td>{}/{}</td><td>{invalid}</td></tr>",
            esc(&i.name),
            esc(&i.name),
            esc(&i.interface),
            i.vrid,
            esc(&i.state),
            i.priority,
            i.base_priority,
            esc(&i.vips.join(" ")),
            esc(i.master.as_deref().unwrap_or("-")),
            if trackers.is_empty() { "-".to_owned() } else { trackers.join("<br>") },
            i.adverts_sent,
            i.adverts_received,
        );
    }
    h.push_str("</table>\n");
}

/// HAProxy's "1d2h", "3h4m", "5m6s", "7s".
fn human_secs(s: u64) -> String {
    if s >= 86400 {
        format!("{}d{}h", s / 86400, (s / 3600) % 24)
    } else if s >= 3600 {
        format!("{}h{}m", s / 3600, (s / 60) % 60)
    } else if s >= 60 {
        format!("{}m{}s", s / 60, s % 60)
    } else {
        format!("{s}s")
    }
}

fn table_head(h: &mut String, name: &str, kind: &str) {
    let _ = write!(
        h,
        "<table class=\"tbl\" width=\"100%\" id=\"{kind}-{}\">\n<tr class=\"titre\"><th class=\"pxname\" width=\"10%\"><a name=\"{0}\"></a><a class=\"px\" href=\"#{0}\">{0}</a></th><th class=\"empty\" width=\"90%\"></th></tr>\n</table>\n<table class=\"tbl\" width=\"100%\">\n<tr class=\"titre\"><th rowspan=2></th><th colspan=3>Queue</th><th colspan=3>Session rate</th><th colspan=6>Sessions</th><th colspan=2>Bytes</th><th colspan=2>Denied</th><th colspan=3>Errors</th><th colspan=2>Warnings</th><th colspan=9>Server</th><th colspan=6>HTTP responses</th></tr>\n<tr class=\"titre\"><th>Cur</th><th>Max</th><th>Limit</th><th>Cur</th><th>Max</th><th>Limit</th><th>Cur</th><th>Max</th><th>Limit</th><th>Total</th><th>LbTot</th><th>Last</th><th>In</th><th>Out</th><th>Req</th><th>Resp</th><th>Req</th><th>Conn</th><th>Resp</th><th>Retr</th><th>Redis</th><th>Status</th><th>LastChk</th><th>Wght</th><th>Act</th><th>Bck</th><th>Chk</th><th>Dwn</th><th>Dwntme</th><th>Thrtle</th><th>1xx</th><th>2xx</th><th>3xx</th><th>4xx</th><th>5xx</th><th>other</th></tr>\n",
        esc(name),
    );
}

/// The cells every row has in the same place: sessions, bytes, denied, errors, warnings.
struct Cells<'a> {
    c: &'a RowCounters,
    queue: [String; 3],
    slim: String,
    lbtot: String,
    denied_req: String,
    errors: [String; 3],
    warnings: [String; 2],
    server: [String; 9],
}

fn row(h: &mut String, class: &str, label: &str, id: &str, cells: Cells<'_>) {
    let c = cells.c;
    let _ = write!(
        h,
        "<tr class=\"{class}\" id=\"{}\"><td class=\"ac\">{}</td>",
        esc(id),
        esc(label)
    );
    for q in &cells.queue {
        let _ = write!(h, "<td>{q}</td>");
    }
    let _ = write!(
        h,
        "<td>{}</td><td>{}</td><td></td><td>{}</td><td>{}</td><td>{}</td><td{}>{}</td><td>{}</td><td></td><td>{}</td><td>{}</td><td>{}</td><td></td>",
        c.rate, c.rate_max, c.sessions_cur, c.sessions_max, cells.slim, times_title(c), c.sessions_total, cells.lbtot,
        c.bytes_in, c.bytes_out, cells.denied_req
    );
    for e in cells.errors.iter().chain(cells.warnings.iter()) {
        let _ = write!(h, "<td>{e}</td>");
    }
    for (i, s) in cells.server.iter().enumerate() {
        if i == 0 || i == 1 {
            let _ = write!(h, "<td class=\"ac\">{s}</td>");
        } else {
            let _ = write!(h, "<td>{s}</td>");
        }
    }
    for n in c.http_responses {
        let _ = write!(h, "<td>{n}</td>");
    }
    h.push_str("</tr>\n");
}

/// The sessions Total cell's tooltip on backends and servers: average response and total
/// times (HAProxy shows its `rtime` and `ttime` there).
fn times_title(c: &RowCounters) -> String {
    if c.total_time_us == 0 && c.response_time_us == 0 {
        return String::new();
    }
    format!(
        " class=\"times\" title=\"Average over the last 1024: response time {} ms, total time {} ms\"",
        ms(c.response_time_us),
        ms(c.total_time_us)
    )
}

/// Microseconds as milliseconds with at most one decimal.
fn ms(us: u64) -> String {
    if us < 10_000 {
        format!("{:.1}", us as f64 / 1000.0)
    } else {
        (us / 1000).to_string()
    }
}

fn frontend_table(h: &mut String, f: &FrontendStats) {
    table_head(h, &f.name, "frontend");
    let c = &f.counters;
    let mut server: [String; 9] = Default::default();
    server[0] = if f.listening { "OPEN" } else { "STOP" }.to_owned();
    if f.gated && !f.listening {
        server[0] = "STOP (gated: not MASTER)".to_owned();
    }
    row(
        h,
        "frontend",
        "Frontend",
        &format!("{}/FRONTEND", f.name),
        Cells {
            c,
            queue: Default::default(),
            slim: f.limit.to_string(),
            lbtot: String::new(),
            denied_req: c.denied_requests.to_string(),
            errors: [c.errors_request.to_string(), String::new(), String::new()],
            warnings: Default::default(),
            server,
        },
    );
    h.push_str("</table><p>\n");
}

fn server_cells(s: &ServerStats) -> [String; 9] {
    let status = if s.last_change_secs > 0 && s.checked {
        format!("{} {}", human_secs(s.last_change_secs), esc(&s.status))
    } else {
        esc(&s.status)
    };
    [
        status,
        s.last_check.as_deref().map(esc).unwrap_or_default(),
        s.weight.to_string(),
        if s.backup { "-" } else { "Y" }.to_owned(),
        if s.backup { "Y" } else { "-" }.to_owned(),
        if s.checked {
            s.check_failures.to_string()
        } else {
            String::new()
        },
        if s.checked {
            s.check_downs.to_string()
        } else {
            String::new()
        },
        if s.checked {
            human_secs(s.downtime_secs)
        } else {
            String::new()
        },
        "-".to_owned(),
    ]
}

fn warn_cells(c: &RowCounters) -> ([String; 3], [String; 2]) {
    (
        [
            String::new(),
            c.errors_connect.to_string(),
            c.errors_response.to_string(),
        ],
        [c.retries.to_string(), c.redispatches.to_string()],
    )
}

fn backend_table(h: &mut String, b: &BackendStats) {
    table_head(h, &b.name, "backend");
    for s in &b.servers {
        let c = &s.counters;
        let (errors, warnings) = warn_cells(c);
        let class = match s.colour() {
            "going_down" => "active_going_down",
            "going_up" => "active_going_up",
            "backup_up" => "backup_up",
            "active_up" => "active_up",
            "nocheck" => "active_nocheck",
            _ => "active_down",
        };
        row(
            h,
            class,
            &s.name,
            &format!("{}/{}", b.name, s.name),
            Cells {
                c,
                queue: [
                    c.queue_cur.to_string(),
                    c.queue_max.to_string(),
                    String::new(),
                ],
                slim: if s.limit > 0 {
                    s.limit.to_string()
                } else {
                    String::new()
                },
                lbtot: c.lb_total.to_string(),
                denied_req: String::new(),
                errors,
                warnings,
                server: server_cells(s),
            },
        );
    }
    let c = &b.counters;
    let (errors, warnings) = warn_cells(c);
    let act = b.servers.iter().filter(|s| s.up && !s.backup).count();
    let bck = b.servers.iter().filter(|s| s.up && s.backup).count();
    let weight: u32 = b.servers.iter().filter(|s| s.up).map(|s| s.weight).sum();
    let server = [
        format!("{} {}", human_secs(b.last_change_secs), b.status()),
        String::new(),
        weight.to_string(),
        act.to_string(),
        bck.to_string(),
        String::new(),
        b.check_downs.to_string(),
        human_secs(b.downtime_secs),
        String::new(),
    ];
    row(
        h,
        "backend",
        "Backend",
        &format!("{}/BACKEND", b.name),
        Cells {
            c,
            queue: [
                c.queue_cur.to_string(),
                c.queue_max.to_string(),
                String::new(),
            ],
            slim: String::new(),
            lbtot: c.lb_total.to_string(),
            denied_req: c.denied_requests.to_string(),
            errors,
            warnings,
            server,
        },
    );
    h.push_str("</table><p>\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_escaped() {
        assert_eq!(esc("<a href='x'>&"), "&lt;a href=&#39;x&#39;&gt;&amp;");
    }

    #[test]
    fn down_server_row_has_the_down_colour() {
        let snap = Snapshot {
            proxy: crate::observe::snapshot::ProxyStats {
                connections: 0,
                frontends: vec![],
                backends: vec![BackendStats {
                    name: "web".into(),
                    servers: vec![ServerStats {
                        name: "s1".into(),
                        status: "DOWN".into(),
                        checked: true,
                        ..Default::default()
                    }],
                    ..Default::default()
                }],
            },
            ..Default::default()
        };
        let page = render(
            &snap,
            &PageOptions {
                uri: "/stats",
                refresh: Some(5),
                refresh_configured: true,
                show_node: false,
            },
        );
        assert!(
            page.contains("<tr class=\"active_down\" id=\"web/s1\">"),
            "{page}"
        );
        assert!(page.contains("/stats;norefresh"));
    }
}
