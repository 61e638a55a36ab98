//! `vrrplb poll` (hidden): the failover drill's client. It GETs one URL at a fixed cadence
//! (20 ms in the drill; with several `--url`s, one after the other in turn, as clients of a
//! DNS name with several addresses spread over them) over a tiny blocking HTTP/1.1 client with short connect and read
//! timeouts (an `https://` URL: a new TLS connection per request, the server verified against
//! `--cacert`, else the system store; `--keep-alive`: one connection kept while it answers),
//! prints one line per failed request with its wall-clock time, and ends with a summary a
//! script can parse:
//!
//! ```text
//! FAIL at=1732262400123 t=+1004ms seq=51 connect: timed out after 200ms
//! OK at=1732262403781 t=+4662ms seq=68 "web2 via lb2" after 17 failed request(s)
//! RESULT requests=600 ok=583 failed=17 runs=1 outage_ms=3658 ...
//! ```
//!
//! Bounded in time (`--for`, at most one hour) and in count (`--max-requests`); it stops
//! early, with `--settle`, once the service has answered for that long after an outage (or,
//! when no request failed, after the balancer changed: an answer ending in ` via NAME`
//! naming another balancer than the first answer, as the lab's backends write), and on
//! SIGTERM or SIGINT (still printing the summary).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Failed requests printed one per line; more are only counted.
const MAX_FAIL_LINES: u64 = 200;
/// Timeouts of the uncounted first request.
const WARMUP_TIMEOUT: Duration = Duration::from_secs(2);
/// Bytes of a response read at most (the status line and the body's first line are used).
const MAX_RESPONSE: usize = 64 * 1024;

#[derive(clap::Args)]
pub struct PollArgs {
    /// The URL to GET: http[s]://HOST[:PORT][/PATH]. Repeated: the requests go to each in
    /// turn (round robin), as DNS round-robin clients spread over several VIPs.
    #[arg(long, required = true)]
    url: Vec<String>,
    /// CA bundle (PEM) that verifies an https server (default: the system store).
    #[arg(long)]
    cacert: Option<PathBuf>,
    /// Time between request starts ("20ms").
    #[arg(long, default_value = "20ms", value_parser = parse_duration)]
    every: Duration,
    /// How long to poll ("15s"; at most 1h).
    #[arg(long = "for", default_value = "15s", value_parser = parse_duration)]
    duration: Duration,
    /// Connect timeout, and read timeout once connected ("200ms").
    #[arg(long, default_value = "200ms", value_parser = parse_duration)]
    timeout: Duration,
    /// Stop early once requests have succeeded for this long after an outage ("3s").
    #[arg(long, value_parser = parse_duration)]
    settle: Option<Duration>,
    /// Upper bound on the number of requests (default: what --for and --every allow).
    #[arg(long)]
    max_requests: Option<u64>,
    /// Also write every request to this file, one `AT_MS ok|fail VIA HOST` line each (VIA:
    /// the balancer the answer names, `-` if none; HOST: the URL's host[:port]); the drill's
    /// timeline draws them and counts requests per balancer; stdout keeps only the failures.
    #[arg(long)]
    trace: Option<PathBuf>,
    /// Keep the connection for the next polls (HTTP/1.1 keep-alive) while it answers: the
    /// failover drill's long-lived TCP stream. When a request on it fails, a `STREAM broke`
    /// line says when and why, and the next poll opens a new connection (kept in turn).
    #[arg(long)]
    keep_alive: bool,
    /// With --keep-alive: a request on a kept connection that the server closed or reset
    /// before any byte of an answer is sent again, once, on a new connection, as HTTP clients
    /// do for a GET (RFC 9112 §9.3.1); a `STALE` line, counted in `stale_retries`, not a
    /// failure. A timeout is still a failure.
    #[arg(long, requires = "keep_alive")]
    retry_stale: bool,
}

/// A kept connection's failure that an HTTP client answers by sending the GET again: the
/// connection was closed or reset before any answer byte (not a timeout, not a bad answer).
fn stale(why: &str) -> bool {
    why == "read: connection closed before a response"
        || why.starts_with("send: ")
        || (why.starts_with("read: ") && !why.contains("no response within"))
}

static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_stop(_: libc::c_int) {
    STOP.store(true, Ordering::SeqCst);
}

/// SIGTERM and SIGINT end the polling loop; the summary is still printed.
fn stop_on_signals() {
    use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet, Signal};
    let action = SigAction::new(
        SigHandler::Handler(on_stop),
        SaFlags::SA_RESTART,
        SigSet::empty(),
    );
    for sig in [Signal::SIGTERM, Signal::SIGINT] {
        // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
        let _ = unsafe { sigaction(sig, &action) };
    }
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let value: f64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a duration (\"20ms\", \"15s\", \"1m\")"))?;
    let scale = match unit {
        "ms" => 0.001,
        "" | "s" => 1.0,
        "m" => 60.0,
        _ => return Err(format!("{s:?}: unit must be ms, s or m")),
    };
    let secs = value * scale;
    if !(secs.is_finite() && secs > 0.0 && secs <= 3600.0) {
        return Err(format!("{s:?}: must be more than 0 and at most 1h"));
    }
    Ok(Duration::from_secs_f64(secs))
}

struct Target {
    addrs: Vec<SocketAddr>,
    host_header: String,
    path: String,
    /// https: the client configuration and the name the certificate must carry.
    tls: Option<(Arc<rustls::ClientConfig>, ServerName<'static>)>,
}

use rustls::pki_types::ServerName;

/// The host of an authority, without port or IPv6 brackets.
fn host_of(authority: &str) -> &str {
    if let Some(rest) = authority.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    authority.split(':').next().unwrap_or(authority)
}

fn parse_url(url: &str, cacert: Option<&PathBuf>) -> Result<Target, String> {
    let (rest, https) = match (url.strip_prefix("http://"), url.strip_prefix("https://")) {
        (Some(r), _) => (r, false),
        (_, Some(r)) => (r, true),
        _ => {
            return Err(format!(
                "{url}: only http:// and https:// URLs are supported"
            ))
        }
    };
    let default_port = if https { 443 } else { 80 };
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    if authority.is_empty() {
        return Err(format!("{url}: no host"));
    }
    let with_port = if authority.starts_with('[') {
        if authority.contains("]:") {
            authority.to_owned()
        } else {
            format!("{authority}:{default_port}")
        }
    } else if authority.contains(':') {
        authority.to_owned()
    } else {
        format!("{authority}:{default_port}")
    };
    let addrs: Vec<SocketAddr> = with_port
        .to_socket_addrs()
        .map_err(|e| format!("{url}: cannot resolve {with_port}: {e}"))?
        .collect();
    if addrs.is_empty() {
        return Err(format!("{url}: {with_port} has no address"));
    }
    let tls = if https {
        let settings = proxy::config::ServerTlsConfig {
            ca_file: cacert.cloned(),
            system: cacert.is_none(),
            ..Default::default()
        };
        let config = proxy::upstream_tls::client_config(&settings).map_err(|e| e.to_string())?;
        let host = host_of(authority);
        let name = ServerName::try_from(host.to_owned())
            .map_err(|_| format!("{url}: {host:?} is not a host name or address"))?;
        Some((config, name))
    } else {
        None
    };
    Ok(Target {
        addrs,
        host_header: authority.to_owned(),
        path: path.to_owned(),
        tls,
    })
}

/// The poll's connection: plain, or TLS over it (handshake on the first write).
enum Conn {
    Plain(TcpStream),
    Tls(Box<rustls::StreamOwned<rustls::ClientConnection, TcpStream>>),
}

impl Conn {
    fn tcp(&self) -> &TcpStream {
        match self {
            Conn::Plain(s) => s,
            Conn::Tls(t) => &t.sock,
        }
    }
}

impl Read for Conn {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Conn::Plain(s) => s.read(buf),
            Conn::Tls(t) => t.read(buf),
        }
    }
}

impl Write for Conn {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Conn::Plain(s) => s.write(buf),
            Conn::Tls(t) => t.write(buf),
        }
    }
    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Conn::Plain(s) => s.flush(),
            Conn::Tls(t) => t.flush(),
        }
    }
}

/// One GET on a new connection, closed after it: Ok(first line of the body) for a 2xx/3xx
/// answer, Err(why) otherwise.
#[cfg(test)]
fn get(target: &Target, timeout: Duration) -> Result<String, String> {
    let mut conn = connect(target, timeout)?;
    exchange(&mut conn, target, timeout, false).map(|(body, _)| body)
}

/// A new connection to the target (TLS: the handshake runs in the first write and read).
fn connect(target: &Target, timeout: Duration) -> Result<Conn, String> {
    let addr = target.addrs[0];
    let s = TcpStream::connect_timeout(&addr, timeout).map_err(|e| {
        if e.kind() == std::io::ErrorKind::TimedOut || e.kind() == std::io::ErrorKind::WouldBlock {
            format!("connect: timed out after {}ms", timeout.as_millis())
        } else {
            format!("connect: {e}")
        }
    })?;
    let _ = s.set_nodelay(true);
    Ok(match &target.tls {
        None => Conn::Plain(s),
        Some((config, name)) => {
            let conn = rustls::ClientConnection::new(config.clone(), name.clone())
                .map_err(|e| format!("tls: {e}"))?;
            Conn::Tls(Box::new(rustls::StreamOwned::new(conn, s)))
        }
    })
}

/// One GET on `s`: Ok((first line of the body, the connection may carry another request))
/// for a 2xx/3xx answer, Err(why) otherwise. `keep_alive` asks the server to keep it open.
fn exchange(
    s: &mut Conn,
    target: &Target,
    timeout: Duration,
    keep_alive: bool,
) -> Result<(String, bool), String> {
    let deadline = Instant::now() + timeout;
    s.tcp()
        .set_write_timeout(Some(timeout))
        .map_err(|e| format!("socket: {e}"))?;
    // A TLS handshake runs in the first write and read, under the same timeouts.
    s.tcp()
        .set_read_timeout(Some(timeout))
        .map_err(|e| format!("socket: {e}"))?;
    let req = format!(
        "GET {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: vrrplb-poll\r\nAccept: */*\r\n{}\r\n",
        target.path,
        target.host_header,
        if keep_alive {
            ""
        } else {
            "Connection: close\r\n"
        }
    );
    s.write_all(req.as_bytes())
        .and_then(|()| s.flush())
        .map_err(|e| format!("send: {e}"))?;
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 4096];
    let mut whole = false;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        s.tcp()
            .set_read_timeout(Some(left))
            .map_err(|e| format!("socket: {e}"))?;
        match s.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => {
                buf.extend_from_slice(&chunk[..n]);
                whole = complete(&buf);
                if buf.len() >= MAX_RESPONSE || whole {
                    break;
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut =>
            {
                break;
            }
            Err(e) => {
                if buf.is_empty() {
                    return Err(format!("read: {e}"));
                }
                break;
            }
        }
    }
    let text = String::from_utf8_lossy(&buf);
    let Some(status_line) = text.lines().next().filter(|l| !l.is_empty()) else {
        return Err(if Instant::now() >= deadline {
            format!("read: no response within {}ms", timeout.as_millis())
        } else {
            "read: connection closed before a response".to_owned()
        });
    };
    let code: u16 = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| format!("bad status line {:?}", clip(status_line)))?;
    let Some(head_end) = text.find("\r\n\r\n") else {
        return Err(format!("status {code}, headers incomplete"));
    };
    let head = &text[..head_end];
    let mut body = &text[head_end + 4..];
    if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        // Skip the first chunk-size line.
        body = body.split_once("\r\n").map(|(_, b)| b).unwrap_or("");
    }
    let first = clip(body.lines().next().unwrap_or("").trim());
    // Reusable: the answer ended where its Content-Length said and the server did not close.
    let reusable = keep_alive
        && whole
        && !head
            .to_ascii_lowercase()
            .lines()
            .any(|l| l.starts_with("connection:") && l.contains("close"));
    if (200..400).contains(&code) {
        Ok((first, reusable))
    } else {
        Err(format!("status {code} {first:?}"))
    }
}

/// True when `buf` holds the whole response as announced by Content-Length.
fn complete(buf: &[u8]) -> bool {
    let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
        return false;
    };
    let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
    head.lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse::<usize>().ok())
        .is_some_and(|len| buf.len() >= end + 4 + len)
}

fn clip(s: &str) -> String {
    let s: String = s.chars().filter(|c| !c.is_control()).take(80).collect();
    s.replace('"', "'")
}

fn epoch_ms() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0)
}

/// What the poller saw, summarised.
#[derive(Default)]
struct Tally {
    requests: u64,
    ok: u64,
    failed: u64,
    runs: u64,
    first_run_failed: u64,
    in_outage: bool,
    last_ok: Option<(u128, String)>,
    first_fail: Option<(u128, u128)>,
    last_fail: Option<(u128, u128)>,
    /// The first success after the first failure: when, and who answered.
    recovered: Option<(u128, u128, String)>,
    /// The first success after the last failure.
    final_ok: Option<(u128, u128)>,
    before: Option<String>,
    first_body: Option<String>,
    last_body: Option<String>,
    /// The first answer from another balancer than the first answer's (` via NAME`).
    switched: Option<(u128, u128)>,
    /// Connections opened.
    connections: u64,
    /// `--keep-alive`: when the first kept connection broke, and the answers it gave.
    stream_broke: Option<(u128, u128)>,
    stream_answers: u64,
    /// `--retry-stale`: requests sent again after their kept connection closed under them.
    stale_retries: u64,
}

/// The balancer an answer names (`web1 via lb2` -> `lb2`), if any.
fn via(body: &str) -> Option<&str> {
    body.rsplit_once(" via ").map(|(_, v)| v.trim())
}

pub fn run(args: &PollArgs) -> ExitCode {
    let targets: Result<Vec<Target>, String> = args
        .url
        .iter()
        .map(|u| parse_url(u, args.cacert.as_ref()))
        .collect();
    let targets = match targets {
        Ok(t) if args.keep_alive && t.len() > 1 => {
            eprintln!("error: --keep-alive polls one --url (a connection goes to one server)");
            return ExitCode::from(2);
        }
        Ok(t) => t,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let every = args.every;
    let max_requests = args
        .max_requests
        .unwrap_or_else(|| (args.duration.as_nanos() / every.as_nanos().max(1)) as u64 + 1)
        .clamp(1, 1_000_000);
    println!(
        "poll: GET {} every {}ms for {}ms (timeout {}ms, at most {} requests{}) start_at={}",
        args.url.join(" "),
        every.as_millis(),
        args.duration.as_millis(),
        args.timeout.as_millis(),
        max_requests,
        args.settle
            .map(|s| format!(", stop {}ms after recovery", s.as_millis()))
            .unwrap_or_default(),
        epoch_ms()
    );
    let mut trace = match args.trace.as_ref().map(std::fs::File::create).transpose() {
        Ok(f) => f.map(std::io::BufWriter::new),
        Err(e) => {
            eprintln!("error: --trace: {e}");
            return ExitCode::from(2);
        }
    };
    stop_on_signals();
    // The first request of a process pays one-time costs (code paged in, the TLS client set
    // up): under load it took more than 200 ms in the lab, a failure that was no outage. It
    // is made once before the clock starts, and not counted.
    for target in &targets {
        let warm = connect(target, WARMUP_TIMEOUT)
            .and_then(|mut c| exchange(&mut c, target, WARMUP_TIMEOUT, false));
        match warm {
            Ok((body, _)) => println!("WARMUP ok \"{body}\""),
            Err(why) => println!("WARMUP failed: {why}"),
        }
    }
    let start = Instant::now();
    let end = start + args.duration;
    let mut next = start;
    let mut t = Tally::default();
    let mut stdout = std::io::stdout().lock();
    // --keep-alive: the open connection and the answers it gave.
    let mut kept: Option<(Conn, u64)> = None;
    while t.requests < max_requests {
        let now = Instant::now();
        if now >= end || STOP.load(Ordering::SeqCst) {
            break;
        }
        if next > now {
            std::thread::sleep(next - now);
        }
        if STOP.load(Ordering::SeqCst) {
            break;
        }
        let at = epoch_ms();
        let rel = start.elapsed().as_millis();
        let seq = t.requests;
        t.requests += 1;
        // Round robin over the URLs (the modulo of a count below 1,000,000 fits usize).
        let target = &targets[(seq % targets.len() as u64) as usize];
        let mut answer = None;
        if let Some((mut conn, n)) = kept.take() {
            match exchange(&mut conn, target, args.timeout, true) {
                Ok((body, again)) => {
                    if again {
                        kept = Some((conn, n + 1));
                    }
                    answer = Some(Ok(body));
                }
                Err(why) if args.retry_stale && stale(&why) => {
                    t.stale_retries += 1;
                    let _ = writeln!(
                        stdout,
                        "STALE at={at} t=+{rel}ms seq={seq} after {n} answer(s) on it: {why}; sent again on a new connection"
                    );
                }
                Err(why) => {
                    let _ = writeln!(
                        stdout,
                        "STREAM broke at={at} t=+{rel}ms seq={seq} after {n} answer(s) on it: {why}"
                    );
                    if t.stream_broke.is_none() {
                        t.stream_broke = Some((at, rel));
                        t.stream_answers = n;
                    }
                    answer = Some(Err(format!("stream: {why}")));
                }
            }
        }
        let answer = match answer {
            Some(a) => a,
            None => {
                t.connections += 1;
                connect(target, args.timeout).and_then(|mut conn| {
                    let (body, again) = exchange(&mut conn, target, args.timeout, args.keep_alive)?;
                    if again {
                        kept = Some((conn, 1));
                    }
                    Ok(body)
                })
            }
        };
        if let Some(f) = trace.as_mut() {
            let _ = writeln!(f, "{}", trace_line(at, &answer, target));
        }
        match answer {
            Ok(body) => {
                t.ok += 1;
                if t.in_outage {
                    t.in_outage = false;
                    let _ = writeln!(
                        stdout,
                        "OK at={at} t=+{rel}ms seq={seq} \"{body}\" after {} failed request(s)",
                        t.failed
                    );
                    if t.recovered.is_none() {
                        t.recovered = Some((at, rel, body.clone()));
                    }
                    t.final_ok = Some((at, rel));
                }
                t.last_ok = Some((at, body.clone()));
                if t.first_body.is_none() {
                    t.first_body = Some(body.clone());
                }
                if t.switched.is_none()
                    && via(&body).is_some()
                    && via(&body) != t.first_body.as_deref().and_then(via)
                {
                    t.switched = Some((at, rel));
                    let _ = writeln!(stdout, "SWITCH at={at} t=+{rel}ms seq={seq} \"{body}\"");
                }
                t.last_body = Some(body);
            }
            Err(why) => {
                t.failed += 1;
                if !t.in_outage {
                    t.in_outage = true;
                    t.runs += 1;
                    t.final_ok = None;
                    if t.first_fail.is_none() {
                        t.before = t.last_ok.as_ref().map(|(_, b)| b.clone());
                    }
                }
                if t.runs == 1 {
                    t.first_run_failed += 1;
                }
                if t.first_fail.is_none() {
                    t.first_fail = Some((at, rel));
                }
                t.last_fail = Some((at, rel));
                if t.failed <= MAX_FAIL_LINES {
                    let _ = writeln!(stdout, "FAIL at={at} t=+{rel}ms seq={seq} {why}");
                } else if t.failed == MAX_FAIL_LINES + 1 {
                    let _ = writeln!(stdout, "FAIL ... (further failures only counted)");
                }
            }
        }
        let _ = stdout.flush();
        let settled_since = t.final_ok.or(if t.failed == 0 { t.switched } else { None });
        if let (Some(settle), false, Some((_, final_rel))) =
            (args.settle, t.in_outage, settled_since)
        {
            if start.elapsed().as_millis() >= final_rel + settle.as_millis() {
                break;
            }
        }
        next += every;
        let now = Instant::now();
        if next < now {
            // A slow request (a timeout) does not cause a burst of catch-up requests.
            next = now;
        }
    }
    if let Some(f) = trace.as_mut() {
        let _ = f.flush();
    }
    let _ = writeln!(stdout, "{}", summary(&t));
    ExitCode::SUCCESS
}

/// One `--trace` line: `AT_MS ok|fail VIA HOST` (VIA `-` when the answer names no balancer).
fn trace_line(at: u128, answer: &Result<String, String>, target: &Target) -> String {
    let (mark, by) = match answer {
        Ok(body) => ("ok", via(body).filter(|v| !v.is_empty()).unwrap_or("-")),
        Err(_) => ("fail", "-"),
    };
    // A name with a space would shift the columns a script reads.
    let by = by.split_whitespace().next().unwrap_or("-");
    format!("{at} {mark} {by} {}", target.host_header)
}

fn summary(t: &Tally) -> String {
    let opt = |v: Option<u128>| v.map(|x| x.to_string()).unwrap_or_else(|| "-".into());
    // The outage: from the first failed request to the first success after the last one
    // (still failing at the end: to the last failure).
    let outage_ms = match (t.first_fail, t.final_ok, t.last_fail) {
        (None, _, _) => 0,
        (Some((_, a)), Some((_, b)), _) => b - a,
        (Some((_, a)), None, Some((_, b))) => b - a,
        (Some(_), None, None) => 0,
    };
    // Who answered before the outage and first after it; without an outage, the first and
    // the last answer (a failback that lost no request still shows the balancer change).
    let (before, after) = if t.first_fail.is_some() {
        (t.before.clone(), t.recovered.as_ref().map(|r| r.2.clone()))
    } else {
        (t.first_body.clone(), t.last_body.clone())
    };
    format!(
        "RESULT requests={} ok={} failed={} runs={} outage_ms={} recovered={} \
         failed_after_recovery={} first_fail_at={} last_fail_at={} recovered_at={} \
         first_fail_t={} recovered_t={} connections={} stream_broke_t={} stream_answers={} \
         stale_retries={} switch_t={} before=\"{}\" after=\"{}\"",
        t.requests,
        t.ok,
        t.failed,
        t.runs,
        outage_ms,
        if t.failed == 0 || !t.in_outage {
            "yes"
        } else {
            "no"
        },
        t.failed - t.first_run_failed,
        opt(t.first_fail.map(|f| f.0)),
        opt(t.last_fail.map(|f| f.0)),
        opt(t.recovered.as_ref().map(|r| r.0)),
        opt(t.first_fail.map(|f| f.1)),
        opt(t.recovered.as_ref().map(|r| r.1)),
        t.connections,
        opt(t.stream_broke.map(|s| s.1)),
        t.stream_answers,
        t.stale_retries,
        opt(t.switched.map(|s| s.1)),
        before.unwrap_or_default(),
        after.unwrap_or_default(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    #[test]
    fn only_a_connection_closed_or_reset_under_a_request_is_stale() {
        assert!(stale("read: connection closed before a response"));
        assert!(stale("read: Connection reset by peer (os error 104)"));
        assert!(stale("send: Broken pipe (os error 32)"));
        assert!(!stale("read: no response within 1000ms"));
        assert!(!stale("status 502 \"<html>\""));
        assert!(!stale("connect: Connection refused (os error 111)"));
    }

    #[test]
    fn durations_and_urls_parse() {
        assert_eq!(parse_duration("20ms"), Ok(Duration::from_millis(20)));
        assert_eq!(parse_duration("15s"), Ok(Duration::from_secs(15)));
        assert_eq!(parse_duration("2"), Ok(Duration::from_secs(2)));
        assert!(parse_duration("0ms").is_err());
        assert!(parse_duration("2h").is_err());
        let t = parse_url("http://127.0.0.1:8080/x/y", None).expect("url");
        assert_eq!(t.addrs[0].to_string(), "127.0.0.1:8080");
        assert_eq!(t.path, "/x/y");
        assert_eq!(t.host_header, "127.0.0.1:8080");
        let t = parse_url("http://127.0.0.1", None).expect("url");
        assert_eq!((t.addrs[0].port(), t.path.as_str()), (80, "/"));
        assert!(parse_url("ftp://127.0.0.1/", None).is_err());
        assert!(parse_url("https://127.0.0.1/", Some(&PathBuf::from("/nonexistent"))).is_err());
    }

    /// A one-shot server on loopback answering each connection with `reply`.
    fn serve(replies: Vec<&'static str>) -> (SocketAddr, std::thread::JoinHandle<()>) {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = l.local_addr().expect("addr");
        let h = std::thread::spawn(move || {
            for reply in replies {
                let (mut s, _) = l.accept().expect("accept");
                let mut buf = [0u8; 1024];
                let _ = s.read(&mut buf);
                if !reply.is_empty() {
                    let _ = s.write_all(reply.as_bytes());
                }
            }
        });
        (addr, h)
    }

    /// `--keep-alive`'s exchange: a Content-Length answer without `Connection: close` leaves
    /// the connection reusable (the next request goes on it, no new accept); `Connection:
    /// close`, a chunked answer or a closed connection do not, and a request on a connection
    /// the server closed fails (the drill's STREAM broke).
    #[test]
    fn keep_alive_reuses_the_connection_while_the_server_keeps_it() {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = l.local_addr().expect("addr");
        let h = std::thread::spawn(move || {
            let (mut s, _) = l.accept().expect("accept");
            let mut buf = [0u8; 1024];
            for reply in [
                "HTTP/1.1 200 OK\r\nContent-Length: 13\r\n\r\nweb1 via lb1\n",
                "HTTP/1.1 200 OK\r\nContent-Length: 13\r\n\r\nweb1 via lb1\n",
                "HTTP/1.1 200 OK\r\nContent-Length: 13\r\nConnection: close\r\n\r\nweb1 via lb1\n",
            ] {
                let n = s.read(&mut buf).unwrap_or(0);
                assert!(!String::from_utf8_lossy(&buf[..n]).contains("Connection: close"));
                let _ = s.write_all(reply.as_bytes());
            }
            // The connection ends here: one more request on it must fail.
        });
        let t = parse_url(&format!("http://{addr}/"), None).expect("url");
        let to = Duration::from_secs(2);
        let mut c = connect(&t, to).expect("connect");
        assert_eq!(
            exchange(&mut c, &t, to, true),
            Ok(("web1 via lb1".to_owned(), true))
        );
        assert_eq!(
            exchange(&mut c, &t, to, true),
            Ok(("web1 via lb1".to_owned(), true))
        );
        assert_eq!(
            exchange(&mut c, &t, to, true),
            Ok(("web1 via lb1".to_owned(), false)),
            "Connection: close"
        );
        h.join().expect("server");
        let again = exchange(&mut c, &t, to, true);
        assert!(again.is_err(), "{again:?}");
    }

    #[test]
    fn get_reads_the_first_body_line_and_judges_the_status() {
        let (addr, h) = serve(vec![
            "HTTP/1.1 200 OK\r\nContent-Length: 13\r\n\r\nweb1 via lb1\n",
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nd\r\nweb2 via lb2\n\r\n0\r\n\r\n",
            "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 3\r\n\r\nno\n",
            "",
        ]);
        let t = parse_url(&format!("http://{addr}/"), None).expect("url");
        let to = Duration::from_millis(500);
        assert_eq!(get(&t, to), Ok("web1 via lb1".to_owned()));
        assert_eq!(get(&t, to), Ok("web2 via lb2".to_owned()));
        assert!(get(&t, to).is_err_and(|e| e.starts_with("status 503")));
        assert!(get(&t, to).is_err_and(|e| e.starts_with("read:")));
        h.join().expect("server");
        // Nobody listens: refused at once. On a port held by a socket bound without listening,
        // not on the server's freed port, which a test running beside this one may take with
        // its own listener (CI saw "read: connection reset" there).
        let closed = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)
            .expect("socket");
        let any: SocketAddr = "127.0.0.1:0".parse().expect("address");
        closed.bind(&any.into()).expect("bind");
        let port = closed
            .local_addr()
            .ok()
            .and_then(|a| a.as_socket())
            .map(|a| a.port())
            .expect("port");
        let nobody = parse_url(&format!("http://127.0.0.1:{port}/"), None).expect("url");
        let e = get(&nobody, to).expect_err("refused");
        assert!(e.starts_with("connect:"), "{e}");
    }

    /// An openssl s_server, killed when dropped (also when the test fails).
    struct SServer(std::process::Child);

    impl Drop for SServer {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }

    #[test]
    fn https_polls_make_a_verified_handshake_per_request() {
        let test = "https_polls_make_a_verified_handshake_per_request";
        if !testkit::require_tool(test, "openssl") {
            return;
        }
        use testkit::pki::{Ca, KeyKind};
        let dir = testkit::TempDir::new("poll-tls");
        let ca = Ca::new(dir.path(), "ca");
        let www = ca.leaf(
            dir.path(),
            "www",
            &["DNS:www.lab.test", "IP:127.0.0.1"],
            KeyKind::EcdsaP256,
            false,
        );
        let other = Ca::new(dir.path(), "other");
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("port")
            .port();
        let _server = SServer(
            std::process::Command::new("openssl")
                .args(["s_server", "-quiet", "-www", "-accept"])
                .arg(format!("127.0.0.1:{port}"))
                .arg("-cert")
                .arg(&www.cert)
                .arg("-key")
                .arg(&www.key)
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .expect("openssl s_server"),
        );
        let url = format!("https://127.0.0.1:{port}/");
        let t = parse_url(&url, Some(&ca.cert)).expect("url");
        let to = Duration::from_secs(2);
        assert!(
            testkit::wait_until(Duration::from_secs(10), || get(&t, to).is_ok()),
            "no https answer: {:?}",
            get(&t, to)
        );
        // s_server -www answers with an HTML status page.
        for _ in 0..3 {
            let body = get(&t, to).expect("https poll");
            assert!(body.to_ascii_lowercase().contains("<html>"), "{body}");
        }
        let foreign = parse_url(&url, Some(&other.cert)).expect("url");
        let e = get(&foreign, to).expect_err("a server of another CA");
        assert!(e.contains("UnknownIssuer"), "{e}");
    }

    #[test]
    fn the_summary_measures_one_outage() {
        let mut t = Tally {
            requests: 10,
            ok: 7,
            failed: 3,
            runs: 1,
            first_run_failed: 3,
            first_fail: Some((1000, 100)),
            last_fail: Some((1040, 140)),
            recovered: Some((1060, 160, "web2 via lb2".into())),
            final_ok: Some((1060, 160)),
            before: Some("web1 via lb1".into()),
            ..Tally::default()
        };
        let s = summary(&t);
        assert!(s.starts_with("RESULT requests=10 ok=7 failed=3 runs=1 outage_ms=60 recovered=yes failed_after_recovery=0 "), "{s}");
        assert!(
            s.ends_with("before=\"web1 via lb1\" after=\"web2 via lb2\""),
            "{s}"
        );
        t.in_outage = true;
        t.final_ok = None;
        assert!(summary(&t).contains("outage_ms=40 recovered=no"));
        let quiet = Tally {
            requests: 2,
            ok: 2,
            first_body: Some("web1 via lb2".into()),
            last_body: Some("web2 via lb1".into()),
            ..Tally::default()
        };
        let s = summary(&quiet);
        assert!(
            s.contains("failed=0 runs=0 outage_ms=0 recovered=yes"),
            "{s}"
        );
        assert!(
            s.ends_with("switch_t=- before=\"web1 via lb2\" after=\"web2 via lb1\""),
            "{s}"
        );
    }

    #[test]
    fn trace_lines_name_the_balancer_and_the_url_host() {
        let t = parse_url("http://198.51.100.101/", None).expect("url");
        let ok = Ok("web1 via lb2".to_owned());
        assert_eq!(trace_line(7, &ok, &t), "7 ok lb2 198.51.100.101");
        let odd = Ok("web1 via lb 2".to_owned());
        assert_eq!(trace_line(7, &odd, &t), "7 ok lb 198.51.100.101");
        let plain = Ok("hello".to_owned());
        assert_eq!(trace_line(8, &plain, &t), "8 ok - 198.51.100.101");
        let failed = Err("connect: timed out after 200ms".to_owned());
        assert_eq!(trace_line(9, &failed, &t), "9 fail - 198.51.100.101");
    }

    #[test]
    fn via_names_the_balancer() {
        assert_eq!(via("web1 via lb2"), Some("lb2"));
        assert_eq!(via("web1 via lb2\n"), Some("lb2"));
        assert_eq!(via("web1"), None);
    }
}
