//! Access-log lines in HAProxy's `option httplog` / `option tcplog` layout (lb.md §15), so that
//! existing log parsers and greps keep working.
//!
//! - `format_httplog(&AccessLogEntry) -> String`: one HTTP-mode line (without the syslog `vrrplb[pid]:` prefix).
//! - `format_tcplog(&TcpLogEntry) -> String`: one TCP-mode line.
//! - `write_log_date(&mut String, SystemTime)`: `06/Feb/2026:12:14:14.655` in UTC.
//! - `TerminationState::new(TermCause, TermPhase, ClientCookie, ServerCookie)`, `.as_bytes() -> [u8; 4]`, `Display` (`--NI`).

use std::fmt::{self, Write as _};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::{Method, Uri, Version};

/// Termination flag 1: what ended the exchange.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[repr(u8)]
pub enum TermCause {
    #[default]
    Normal = b'-',
    ClientAbort = b'C',
    ServerAbort = b'S',
    Proxy = b'P',
    Local = b'L',
    Resource = b'R',
    Internal = b'I',
    ClientTimeout = b'c',
    ServerTimeout = b's',
}

/// Termination flag 2: where the exchange was when it ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[repr(u8)]
pub enum TermPhase {
    #[default]
    Done = b'-',
    Request = b'R',
    Queue = b'Q',
    Connect = b'C',
    Headers = b'H',
    Data = b'D',
    LastData = b'L',
}

/// Termination flag 3: the persistence cookie the client sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[repr(u8)]
pub enum ClientCookie {
    #[default]
    NotConfigured = b'-',
    None = b'N',
    Invalid = b'I',
    Down = b'D',
    Valid = b'V',
}

/// Termination flag 4: what vrrplb did with the persistence cookie in the response.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[repr(u8)]
pub enum ServerCookie {
    #[default]
    NotConfigured = b'-',
    None = b'N',
    Inserted = b'I',
    Deleted = b'D',
}

/// The four-character termination state (`--NI`, `SC--`, `cR--`, …). Default: `----`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TerminationState {
    pub cause: TermCause,
    pub phase: TermPhase,
    pub client_cookie: ClientCookie,
    pub server_cookie: ServerCookie,
}

impl TerminationState {
    pub fn new(
        cause: TermCause,
        phase: TermPhase,
        client_cookie: ClientCookie,
        server_cookie: ServerCookie,
    ) -> Self {
        Self {
            cause,
            phase,
            client_cookie,
            server_cookie,
        }
    }

    pub fn as_bytes(&self) -> [u8; 4] {
        [
            self.cause as u8,
            self.phase as u8,
            self.client_cookie as u8,
            self.server_cookie as u8,
        ]
    }
}

impl fmt::Display for TerminationState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.as_bytes() {
            f.write_char(char::from(b))?;
        }
        Ok(())
    }
}

/// The `<server>` field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogServer {
    Named(Arc<str>),
    /// No server was reached (`<NOSRV>`).
    NoServer,
    /// The stats page answered (`<STATS>`).
    Stats,
}

impl LogServer {
    fn as_str(&self) -> &str {
        match self {
            Self::Named(name) => name,
            Self::NoServer => "<NOSRV>",
            Self::Stats => "<STATS>",
        }
    }
}

/// The request line as received (before any prefix strip).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestLine {
    pub method: Method,
    pub uri: Uri,
    pub version: Version,
}

/// Everything one HTTP-mode log line reports.
#[derive(Debug, Clone)]
pub struct AccessLogEntry {
    pub client: SocketAddr,
    /// When the first byte of the request arrived.
    pub accept_date: SystemTime,
    pub frontend: Arc<str>,
    /// TLS listener: `~` after the frontend name.
    pub tls: bool,
    pub backend: Arc<str>,
    pub server: LogServer,
    /// Request-header time (TR).
    pub tr: Option<Duration>,
    /// Queue time (Tw).
    pub tw: Option<Duration>,
    /// Connect time including retries (Tc).
    pub tc: Option<Duration>,
    /// Server response-header time (Tr).
    pub tr_server: Option<Duration>,
    /// Total active time (Ta).
    pub ta: Option<Duration>,
    /// Status sent to the client.
    pub status: u16,
    /// Bytes sent to the client, headers included.
    pub bytes: u64,
    pub termination: TerminationState,
    /// Process, frontend, backend (+ queued) and server connections.
    pub ac: u32,
    pub fc: u32,
    pub bc: u32,
    pub sc: u32,
    pub retries: u32,
    /// Shown as `+` before the retry count.
    pub redispatched: bool,
    /// Requests ahead in the server queue / backend queue.
    pub sq: u32,
    pub bq: u32,
    /// `None` when the request could not be parsed (`<BADREQ>`).
    pub request: Option<RequestLine>,
    /// TLS version, cipher and SNI of a TLS connection, logged where HAProxy logs captured
    /// request headers: `{TLSv1.3|TLS13_AES_128_GCM_SHA256|www.example.test}` before the
    /// request line.
    pub tls_facts: Option<Arc<TlsFacts>>,
}

/// What the access log reports about a TLS connection; one per connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFacts {
    /// `TLSv1.2`, `TLSv1.3`.
    pub version: &'static str,
    /// IANA suite name as rustls spells it, e.g. `TLS13_AES_128_GCM_SHA256`.
    pub cipher: &'static str,
    /// Server name the client asked for; `-` in the log when it sent none.
    pub sni: Option<Box<str>>,
}

/// Everything one TCP-mode log line reports.
#[derive(Debug, Clone)]
pub struct TcpLogEntry {
    pub client: SocketAddr,
    pub accept_date: SystemTime,
    pub frontend: Arc<str>,
    pub tls: bool,
    pub backend: Arc<str>,
    pub server: LogServer,
    /// Queue time (Tw).
    pub tw: Option<Duration>,
    /// Connect time including retries (Tc).
    pub tc: Option<Duration>,
    /// Whole session duration (Tt).
    pub tt: Duration,
    /// Bytes sent to the client.
    pub bytes: u64,
    /// Only the first two flags are logged in TCP mode.
    pub termination: TerminationState,
    pub ac: u32,
    pub fc: u32,
    pub bc: u32,
    pub sc: u32,
    pub retries: u32,
    pub redispatched: bool,
    pub sq: u32,
    pub bq: u32,
}

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// Proleptic Gregorian (year, month 1–12, day 1–31) of a day count since 1970-01-01.
/// Works in 400-year eras (146 097 days each) of years starting on 1 March, so that the leap
/// day is the last day of its year and month lengths follow a simple linear pattern.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let shifted = days + 719_468; // days from 0000-03-01 to 1970-01-01
    let era = shifted.div_euclid(146_097);
    let day_of_era = shifted.rem_euclid(146_097); // 0..=146096
    let year_of_era =
        (day_of_era - day_of_era / 1_460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_from_march = (5 * day_of_year + 2) / 153; // 0 = March … 11 = February
    let day = (day_of_year - (153 * month_from_march + 2) / 5 + 1) as u32;
    let month = if month_from_march < 10 {
        month_from_march + 3
    } else {
        month_from_march - 9
    } as u32;
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// Appends `06/Feb/2026:12:14:14.655` (UTC, milliseconds). Times before 1970 print as the epoch.
pub fn write_log_date(out: &mut String, time: SystemTime) {
    let since = time.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs();
    let days = i64::try_from(secs / 86_400).unwrap_or(0);
    let second_of_day = secs % 86_400;
    let (year, month, day) = civil_from_days(days);
    let month_name = MONTHS[(month as usize).saturating_sub(1) % 12];
    let _ = write!(
        out,
        "{day:02}/{month_name}/{year:04}:{:02}:{:02}:{:02}.{:03}",
        second_of_day / 3_600,
        second_of_day / 60 % 60,
        second_of_day % 60,
        since.subsec_millis()
    );
}

/// A timer in milliseconds, `-1` when the phase was not reached.
fn write_timer(out: &mut String, timer: Option<Duration>) {
    let _ = match timer {
        Some(d) => write!(out, "{}", d.as_millis()),
        None => write!(out, "-1"),
    };
}

/// `<cip>:<cport> [<date>] <frontend>[~] <backend>/<server> `, shared by both layouts.
fn write_head(
    out: &mut String,
    client: SocketAddr,
    date: SystemTime,
    frontend: &str,
    tls: bool,
    backend: &str,
    server: &LogServer,
) {
    let _ = write!(out, "{}:{} [", client.ip().to_canonical(), client.port());
    write_log_date(out, date);
    out.push_str("] ");
    out.push_str(frontend);
    if tls {
        out.push('~');
    }
    out.push(' ');
    out.push_str(backend);
    out.push('/');
    out.push_str(server.as_str());
    out.push(' ');
}

/// `<ac>/<fc>/<bc>/<sc>/<[+]rc> <sq>/<bq>`
#[allow(clippy::too_many_arguments)]
fn write_counters(
    out: &mut String,
    ac: u32,
    fc: u32,
    bc: u32,
    sc: u32,
    retries: u32,
    redispatched: bool,
    sq: u32,
    bq: u32,
) {
    let plus = if redispatched { "+" } else { "" };
    let _ = write!(out, "{ac}/{fc}/{bc}/{sc}/{plus}{retries} {sq}/{bq}");
}

/// Writes request-line text with `"`, `#`, spaces, control and non-ASCII bytes as `#XX`
/// (HAProxy's escaping), so a crafted URI cannot break the line's fields.
fn write_escaped(out: &mut String, text: &str) {
    for b in text.bytes() {
        if b.is_ascii_graphic() && b != b'"' && b != b'#' {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "#{b:02X}");
        }
    }
}

fn version_str(version: Version) -> &'static str {
    match version {
        Version::HTTP_09 => "HTTP/0.9",
        Version::HTTP_10 => "HTTP/1.0",
        Version::HTTP_11 => "HTTP/1.1",
        Version::HTTP_2 => "HTTP/2.0",
        Version::HTTP_3 => "HTTP/3.0",
        _ => "HTTP/?",
    }
}

/// One `option httplog` line:
/// `10.0.1.2:33317 [06/Feb/2026:12:14:14.655] www site1/web1 10/0/3/69/82 200 2750 - - --NI 1/1/1/1/0 0/0 "GET /index.html HTTP/1.1"`
pub fn format_httplog(e: &AccessLogEntry) -> String {
    let uri_len = e.request.as_ref().map_or(0, |r| {
        r.uri.path_and_query().map_or(0, |p| p.as_str().len())
            + r.uri.authority().map_or(0, |a| a.as_str().len())
            + 16
    });
    let mut out = String::with_capacity(
        192 + e.frontend.len() + e.backend.len() + e.server.as_str().len() + uri_len,
    );
    write_head(
        &mut out,
        e.client,
        e.accept_date,
        &e.frontend,
        e.tls,
        &e.backend,
        &e.server,
    );
    for (i, timer) in [e.tr, e.tw, e.tc, e.tr_server, e.ta]
        .into_iter()
        .enumerate()
    {
        if i > 0 {
            out.push('/');
        }
        write_timer(&mut out, timer);
    }
    let _ = write!(out, " {} {} - - {} ", e.status, e.bytes, e.termination);
    write_counters(
        &mut out,
        e.ac,
        e.fc,
        e.bc,
        e.sc,
        e.retries,
        e.redispatched,
        e.sq,
        e.bq,
    );
    if let Some(t) = &e.tls_facts {
        // A `{...}` group, as HAProxy prints captured request headers, so the fields stay
        // where a httplog parser expects them. SNI is a DNS name: no `|`, `}` or spaces.
        let _ = write!(
            out,
            " {{{}|{}|{}}}",
            t.version,
            t.cipher,
            t.sni.as_deref().unwrap_or("-")
        );
    }
    out.push_str(" \"");
    match &e.request {
        Some(r) => {
            write_escaped(&mut out, r.method.as_str());
            out.push(' ');
            // Origin-form targets print as path?query, absolute-form as the whole URL.
            let mut uri = String::new();
            let uri_text = if r.uri.scheme().is_none() && r.uri.authority().is_none() {
                r.uri.path_and_query().map_or("/", |p| p.as_str())
            } else {
                let _ = write!(uri, "{}", r.uri);
                &uri
            };
            write_escaped(&mut out, uri_text);
            out.push(' ');
            out.push_str(version_str(r.version));
        }
        None => out.push_str("<BADREQ>"),
    }
    out.push('"');
    out
}

/// One `option tcplog` line:
/// `10.0.1.2:33318 [06/Feb/2026:12:14:14.655] tls-in tls-pool/web1 0/1/5012 4096 -- 2/1/1/1/0 0/0`
pub fn format_tcplog(e: &TcpLogEntry) -> String {
    let mut out =
        String::with_capacity(160 + e.frontend.len() + e.backend.len() + e.server.as_str().len());
    write_head(
        &mut out,
        e.client,
        e.accept_date,
        &e.frontend,
        e.tls,
        &e.backend,
        &e.server,
    );
    write_timer(&mut out, e.tw);
    out.push('/');
    write_timer(&mut out, e.tc);
    let flags = e.termination.as_bytes();
    let _ = write!(
        out,
        "/{} {} {}{} ",
        e.tt.as_millis(),
        e.bytes,
        char::from(flags[0]),
        char::from(flags[1])
    );
    write_counters(
        &mut out,
        e.ac,
        e.fc,
        e.bc,
        e.sc,
        e.retries,
        e.redispatched,
        e.sq,
        e.bq,
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: u64, millis: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs) + Duration::from_millis(millis)
    }

    fn date(t: SystemTime) -> String {
        let mut s = String::new();
        write_log_date(&mut s, t);
        s
    }

    fn ms(n: u64) -> Option<Duration> {
        Some(Duration::from_millis(n))
    }

    fn sample() -> AccessLogEntry {
        AccessLogEntry {
            client: "10.0.1.2:33317".parse().expect("addr"),
            accept_date: at(1_770_380_054, 655),
            frontend: "www".into(),
            tls: false,
            backend: "site1".into(),
            server: LogServer::Named("web1".into()),
            tr: ms(10),
            tw: ms(0),
            tc: ms(3),
            tr_server: ms(69),
            ta: ms(82),
            status: 200,
            bytes: 2750,
            termination: TerminationState::new(
                TermCause::Normal,
                TermPhase::Done,
                ClientCookie::None,
                ServerCookie::Inserted,
            ),
            ac: 1,
            fc: 1,
            bc: 1,
            sc: 1,
            retries: 0,
            redispatched: false,
            sq: 0,
            bq: 0,
            request: Some(RequestLine {
                method: Method::GET,
                uri: "/index.html".parse().expect("uri"),
                version: Version::HTTP_11,
            }),
            tls_facts: None,
        }
    }

    #[test]
    fn httplog_tls_facts_sit_where_captured_headers_go() {
        let mut e = sample();
        e.tls = true;
        e.tls_facts = Some(Arc::new(TlsFacts {
            version: "TLSv1.3",
            cipher: "TLS13_AES_128_GCM_SHA256",
            sni: Some("www.example.test".into()),
        }));
        assert_eq!(
            format_httplog(&e),
            "10.0.1.2:33317 [06/Feb/2026:12:14:14.655] www~ site1/web1 10/0/3/69/82 200 2750 - - --NI 1/1/1/1/0 0/0 {TLSv1.3|TLS13_AES_128_GCM_SHA256|www.example.test} \"GET /index.html HTTP/1.1\""
        );
        e.tls_facts = Some(Arc::new(TlsFacts {
            version: "TLSv1.2",
            cipher: "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
            sni: None,
        }));
        assert!(format_httplog(&e)
            .contains(" {TLSv1.2|TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256|-} \"GET"));
    }

    #[test]
    fn date_matches_reference_instants() {
        assert_eq!(date(at(1_770_380_054, 655)), "06/Feb/2026:12:14:14.655");
        assert_eq!(date(at(0, 0)), "01/Jan/1970:00:00:00.000");
        assert_eq!(date(at(951_868_799, 999)), "29/Feb/2000:23:59:59.999");
        assert_eq!(date(at(4_107_542_400, 1)), "01/Mar/2100:00:00:00.001");
        assert_eq!(date(at(946_598_400, 0)), "31/Dec/1999:00:00:00.000");
        assert_eq!(
            date(UNIX_EPOCH - Duration::from_secs(5)),
            "01/Jan/1970:00:00:00.000"
        );
    }

    #[test]
    fn civil_dates_agree_with_day_by_day_count_over_four_centuries() {
        let mut expected = (1970i64, 1u32, 1u32);
        let leap = |y: i64| (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
        for days in 0..146_097 {
            assert_eq!(civil_from_days(days), expected, "day {days}");
            let (y, m, d) = expected;
            let len = match m {
                2 if leap(y) => 29,
                2 => 28,
                4 | 6 | 9 | 11 => 30,
                _ => 31,
            };
            expected = if d < len {
                (y, m, d + 1)
            } else if m < 12 {
                (y, m + 1, 1)
            } else {
                (y + 1, 1, 1)
            };
        }
    }

    #[test]
    fn httplog_reference_line() {
        assert_eq!(
            format_httplog(&sample()),
            "10.0.1.2:33317 [06/Feb/2026:12:14:14.655] www site1/web1 10/0/3/69/82 200 2750 - - --NI 1/1/1/1/0 0/0 \"GET /index.html HTTP/1.1\""
        );
    }

    #[test]
    fn httplog_nosrv_unreached_timers_tls_and_redispatch() {
        let mut e = sample();
        e.tls = true;
        e.server = LogServer::NoServer;
        e.tw = None;
        e.tc = None;
        e.tr_server = None;
        e.status = 503;
        e.bytes = 217;
        e.termination = TerminationState::new(
            TermCause::ServerAbort,
            TermPhase::Connect,
            ClientCookie::NotConfigured,
            ServerCookie::NotConfigured,
        );
        e.retries = 3;
        e.redispatched = true;
        let line = format_httplog(&e);
        assert!(
            line.contains(" www~ site1/<NOSRV> 10/-1/-1/-1/82 503 217 - - SC-- 1/1/1/1/+3 0/0 "),
            "{line}"
        );
    }

    #[test]
    fn httplog_stats_and_badreq() {
        let mut e = sample();
        e.server = LogServer::Stats;
        e.request = None;
        e.termination = TerminationState::new(
            TermCause::Proxy,
            TermPhase::Request,
            ClientCookie::NotConfigured,
            ServerCookie::NotConfigured,
        );
        let line = format_httplog(&e);
        assert!(line.contains(" site1/<STATS> "), "{line}");
        assert!(line.ends_with(" PR-- 1/1/1/1/0 0/0 \"<BADREQ>\""), "{line}");
    }

    #[test]
    fn httplog_ipv6_client_and_query() {
        let mut e = sample();
        e.client = "[2001:db8::9]:40000".parse().expect("addr");
        e.request = Some(RequestLine {
            method: Method::POST,
            uri: "/app1/login?next=%2Fhome".parse().expect("uri"),
            version: Version::HTTP_10,
        });
        let line = format_httplog(&e);
        assert!(
            line.starts_with("2001:db8::9:40000 [06/Feb/2026:12:14:14.655] "),
            "{line}"
        );
        assert!(
            line.ends_with("\"POST /app1/login?next=%2Fhome HTTP/1.0\""),
            "{line}"
        );

        e.client = "[::ffff:10.0.1.2]:33317".parse().expect("addr");
        assert!(format_httplog(&e).starts_with("10.0.1.2:33317 "));
    }

    #[test]
    fn httplog_absolute_form_and_escaping() {
        let mut e = sample();
        e.request = Some(RequestLine {
            method: Method::GET,
            uri: "http://site.example.test/a\"b".parse().expect("uri"),
            version: Version::HTTP_11,
        });
        let line = format_httplog(&e);
        assert!(
            line.ends_with("\"GET http://site.example.test/a#22b HTTP/1.1\""),
            "{line}"
        );
    }

    #[test]
    fn termination_state_display_and_bytes() {
        let t = TerminationState::new(
            TermCause::ClientTimeout,
            TermPhase::Request,
            ClientCookie::Valid,
            ServerCookie::Deleted,
        );
        assert_eq!(t.to_string(), "cRVD");
        assert_eq!(t.as_bytes(), *b"cRVD");
        assert_eq!(TerminationState::default().to_string(), "----");
    }

    #[test]
    fn tcplog_line() {
        let e = TcpLogEntry {
            client: "10.0.1.2:33318".parse().expect("addr"),
            accept_date: at(1_770_380_054, 655),
            frontend: "tls-in".into(),
            tls: false,
            backend: "tls-pool".into(),
            server: LogServer::Named("web1".into()),
            tw: ms(0),
            tc: ms(1),
            tt: Duration::from_millis(5012),
            bytes: 4096,
            termination: TerminationState::new(
                TermCause::ClientAbort,
                TermPhase::Data,
                ClientCookie::NotConfigured,
                ServerCookie::NotConfigured,
            ),
            ac: 2,
            fc: 1,
            bc: 1,
            sc: 1,
            retries: 1,
            redispatched: false,
            sq: 0,
            bq: 0,
        };
        assert_eq!(
            format_tcplog(&e),
            "10.0.1.2:33318 [06/Feb/2026:12:14:14.655] tls-in tls-pool/web1 0/1/5012 4096 CD 2/1/1/1/1 0/0"
        );
        let e = TcpLogEntry {
            server: LogServer::NoServer,
            tw: None,
            tc: None,
            tls: true,
            redispatched: true,
            ..e
        };
        assert!(format_tcplog(&e).contains(" tls-in~ tls-pool/<NOSRV> -1/-1/5012 "));
        assert!(format_tcplog(&e).ends_with(" 2/1/1/1/+1 0/0"));
    }
}
