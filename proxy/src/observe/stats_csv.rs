//! `<uri>;csv`: HAProxy's `show stat` CSV, with HAProxy 2.6's column names in its order (so
//! scripts written for HAProxy keep working) up to `algo`; cells a row has no value for are
//! empty, as in HAProxy.

use super::snapshot::{BackendStats, FrontendStats, RowCounters, ServerStats, Snapshot};

/// HAProxy 2.6's columns, in order, as far as vrrplb emits them.
pub const COLUMNS: [&str; 77] = [
    "pxname",
    "svname",
    "qcur",
    "qmax",
    "scur",
    "smax",
    "slim",
    "stot",
    "bin",
    "bout",
    "dreq",
    "dresp",
    "ereq",
    "econ",
    "eresp",
    "wretr",
    "wredis",
    "status",
    "weight",
    "act",
    "bck",
    "chkfail",
    "chkdown",
    "lastchg",
    "downtime",
    "qlimit",
    "pid",
    "iid",
    "sid",
    "throttle",
    "lbtot",
    "tracked",
    "type",
    "rate",
    "rate_lim",
    "rate_max",
    "check_status",
    "check_code",
    "check_duration",
    "hrsp_1xx",
    "hrsp_2xx",
    "hrsp_3xx",
    "hrsp_4xx",
    "hrsp_5xx",
    "hrsp_other",
    "hanafail",
    "req_rate",
    "req_rate_max",
    "req_tot",
    "cli_abrt",
    "srv_abrt",
    "comp_in",
    "comp_out",
    "comp_byp",
    "comp_rsp",
    "lastsess",
    "last_chk",
    "last_agt",
    "qtime",
    "ctime",
    "rtime",
    "ttime",
    "agent_status",
    "agent_code",
    "agent_duration",
    "check_desc",
    "agent_desc",
    "check_rise",
    "check_fall",
    "check_health",
    "agent_rise",
    "agent_fall",
    "agent_health",
    "addr",
    "cookie",
    "mode",
    "algo",
];

/// One CSV row being filled by column name.
struct Row([String; COLUMNS.len()]);

impl Row {
    fn new(pxname: &str, svname: &str) -> Row {
        let mut r = Row(std::array::from_fn(|_| String::new()));
        r.set("pxname", field(pxname));
        r.set("svname", field(svname));
        r.set("pid", 1);
        r
    }

    /// Average times over the last 1024 (HAProxy `rtime`, `ttime`), in milliseconds.
    fn times(&mut self, c: &RowCounters, tcp: bool) {
        self.set("qtime", 0);
        self.set("ctime", 0);
        self.set("rtime", if tcp { 0 } else { c.response_time_us / 1000 });
        self.set("ttime", c.total_time_us / 1000);
    }

    fn set(&mut self, column: &str, value: impl ToString) {
        if let Some(i) = COLUMNS.iter().position(|c| *c == column) {
            self.0[i] = value.to_string();
        }
    }

    fn counters(&mut self, c: &RowCounters) {
        self.set("scur", c.sessions_cur);
        self.set("smax", c.sessions_max);
        self.set("stot", c.sessions_total);
        self.set("bin", c.bytes_in);
        self.set("bout", c.bytes_out);
        self.set("rate", c.rate);
        self.set("rate_max", c.rate_max);
        let names = [
            "hrsp_1xx",
            "hrsp_2xx",
            "hrsp_3xx",
            "hrsp_4xx",
            "hrsp_5xx",
            "hrsp_other",
        ];
        for (n, v) in names.iter().zip(c.http_responses) {
            self.set(n, v);
        }
    }

    fn write(&self, out: &mut String) {
        for cell in &self.0 {
            out.push_str(cell);
            out.push(',');
        }
        out.push('\n');
    }
}

fn mode(tcp: bool) -> &'static str {
    if tcp {
        "tcp"
    } else {
        "http"
    }
}

/// Names are config words, but a comma or newline must never shift the columns.
fn field(s: &str) -> String {
    s.replace([',', '\n', '\r'], "_")
}

pub fn render(snap: &Snapshot) -> String {
    let mut out = String::with_capacity(256 * (2 + snap.proxy.backends.len() * 4));
    out.push_str("# ");
    for c in COLUMNS {
        out.push_str(c);
        out.push(',');
    }
    out.push('\n');
    let mut iid = 0;
    for f in &snap.proxy.frontends {
        iid += 1;
        frontend_row(f, iid).write(&mut out);
    }
    for b in &snap.proxy.backends {
        iid += 1;
        for (sid, s) in b.servers.iter().enumerate() {
            server_row(b, s, iid, sid + 1).write(&mut out);
        }
        backend_row(b, iid).write(&mut out);
    }
    out
}

fn frontend_row(f: &FrontendStats, iid: usize) -> Row {
    let c = &f.counters;
    let mut r = Row::new(&f.name, "FRONTEND");
    r.counters(c);
    r.set("mode", mode(f.tcp));
    r.set("slim", f.limit);
    r.set("dreq", c.denied_requests);
    r.set("dresp", 0);
    r.set("ereq", c.errors_request);
    r.set("status", if f.listening { "OPEN" } else { "STOP" });
    r.set("iid", iid);
    r.set("sid", 0);
    r.set("type", 0);
    r.set("req_tot", c.requests_total);
    r
}

fn server_row(b: &BackendStats, s: &ServerStats, iid: usize, sid: usize) -> Row {
    let c = &s.counters;
    let mut r = Row::new(&b.name, &s.name);
    r.counters(c);
    r.set("mode", mode(b.tcp));
    r.times(c, b.tcp);
    r.set("qcur", c.queue_cur);
    r.set("qmax", c.queue_max);
    if s.limit > 0 {
        r.set("slim", s.limit);
    }
    r.set("dresp", 0);
    r.set("econ", c.errors_connect);
    r.set("eresp", c.errors_response);
    r.set("wretr", c.retries);
    r.set("wredis", c.redispatches);
    r.set("status", &s.status);
    r.set("weight", s.weight);
    r.set("act", u8::from(!s.backup));
    r.set("bck", u8::from(s.backup));
    if s.checked {
        r.set("chkfail", s.check_failures);
        r.set("chkdown", s.check_downs);
        r.set("downtime", s.downtime_secs);
    }
    r.set("lastchg", s.last_change_secs);
    r.set("iid", iid);
    r.set("sid", sid);
    r.set("lbtot", c.lb_total);
    r.set("type", 2);
    if let Some(code) = &s.check_code {
        r.set("check_status", code);
    }
    if let Some(st) = s.check_status {
        r.set("check_code", st);
    }
    if let Some(d) = s.check_duration_ms {
        r.set("check_duration", d);
    }
    r.set("cli_abrt", 0);
    r.set("srv_abrt", 0);
    r.set("addr", field(&s.address));
    r
}

fn backend_row(b: &BackendStats, iid: usize) -> Row {
    let c = &b.counters;
    let mut r = Row::new(&b.name, "BACKEND");
    r.counters(c);
    r.set("mode", mode(b.tcp));
    r.times(c, b.tcp);
    r.set("qcur", c.queue_cur);
    r.set("qmax", c.queue_max);
    r.set("dreq", c.denied_requests);
    r.set("dresp", 0);
    r.set("econ", c.errors_connect);
    r.set("eresp", c.errors_response);
    r.set("wretr", c.retries);
    r.set("wredis", c.redispatches);
    r.set("status", b.status());
    let weight: u32 = b.servers.iter().filter(|s| s.up).map(|s| s.weight).sum();
    r.set("weight", weight);
    let act = b.servers.iter().filter(|s| s.up && !s.backup).count();
    let bck = b.servers.iter().filter(|s| s.up && s.backup).count();
    r.set("act", act);
    r.set("bck", bck);
    r.set("chkdown", b.check_downs);
    r.set("lastchg", b.last_change_secs);
    r.set("downtime", b.downtime_secs);
    r.set("iid", iid);
    r.set("sid", 0);
    r.set("lbtot", c.lb_total);
    r.set("type", 1);
    r.set("req_tot", c.requests_total);
    r.set("cli_abrt", 0);
    r.set("srv_abrt", 0);
    r.set("algo", &b.balance);
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_row_has_the_header_width_and_names_cannot_shift_columns() {
        let snap = Snapshot {
            proxy: crate::observe::snapshot::ProxyStats {
                connections: 0,
                frontends: vec![FrontendStats {
                    name: "w,w".into(),
                    ..Default::default()
                }],
                backends: vec![BackendStats {
                    name: "b".into(),
                    servers: vec![ServerStats {
                        name: "s\n1".into(),
                        status: "DOWN".into(),
                        checked: true,
                        ..Default::default()
                    }],
                    ..Default::default()
                }],
            },
            ..Default::default()
        };
        let text = render(&snap);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 4);
        for l in &lines {
            assert_eq!(l.matches(',').count(), COLUMNS.len(), "{l}");
        }
        assert!(lines[1].starts_with("w_w,FRONTEND,"));
        assert!(lines[2].starts_with("b,s_1,"));
        assert!(lines[3].starts_with("b,BACKEND,"));
    }
}
