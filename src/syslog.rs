//! Where syslog lines go, without ever making the caller wait: each destination (the local
//! socket, a UDP or TCP syslog server) has a bounded queue and its own writer thread. A line
//! that finds its queue full is dropped and counted; a line the destination refused (no
//! daemon, connection lost, send timed out) is counted as failed. `vrrplb status` shows
//! both, per destination. A stuck syslog daemon therefore costs lines, never the VRRP engine's
//! or the balancer's time.
//!
//! Formats: RFC 3164 (`<PRI>Mmm dd hh:mm:ss HOST vrrplb[PID]: MSG`; on the local socket
//! without HOST, as syslog(3) writes it) or RFC 5424 (`<PRI>1 TIMESTAMP HOST vrrplb PID - -
//! MSG`). Over TCP each line is framed by octet counting (RFC 6587 §3.4.1: `LEN SP LINE`).

use std::io::Write;
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Lines waiting per destination before new ones are dropped.
const QUEUE: usize = 4096;
/// The longest a writer waits on one send (a socket whose reader stopped reading).
const SEND_TIMEOUT: Duration = Duration::from_secs(1);
/// After a failed TCP connect, lines are counted as failed for this long before trying again.
const RECONNECT_AFTER: Duration = Duration::from_secs(1);

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Destination {
    /// A local syslog socket (/dev/log).
    Unix(PathBuf),
    Udp(SocketAddr),
    Tcp(SocketAddr),
}

impl Destination {
    /// `udp://IP[:PORT]`, `tcp://IP[:PORT]` (port 514 by default; IPv6 in brackets) or
    /// `unix:///PATH`.
    pub fn parse(text: &str) -> Result<Destination, String> {
        let t = text.trim();
        if let Some(path) = t.strip_prefix("unix://") {
            if !path.starts_with('/') {
                return Err(format!("`{t}`: expected unix:///ABSOLUTE/PATH"));
            }
            return Ok(Destination::Unix(PathBuf::from(path)));
        }
        let (scheme, rest) = t.split_once("://").ok_or_else(|| {
            format!("`{t}`: expected udp://IP[:PORT], tcp://IP[:PORT] or unix:///PATH")
        })?;
        let addr = rest
            .parse::<SocketAddr>()
            .or_else(|_| {
                let host = rest.trim_start_matches('[').trim_end_matches(']');
                host.parse::<std::net::IpAddr>()
                    .map(|ip| SocketAddr::new(ip, 514))
            })
            .map_err(|_| format!("`{t}`: `{rest}` is not an IP address with an optional port"))?;
        match scheme {
            "udp" => Ok(Destination::Udp(addr)),
            "tcp" => Ok(Destination::Tcp(addr)),
            other => Err(format!(
                "`{t}`: unknown scheme `{other}`; use udp, tcp or unix"
            )),
        }
    }
}

impl std::fmt::Display for Destination {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Destination::Unix(p) => write!(f, "unix://{}", p.display()),
            Destination::Udp(a) => write!(f, "udp://{a}"),
            Destination::Tcp(a) => write!(f, "tcp://{a}"),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Rfc3164,
    Rfc5424,
}

/// One event to send, formatted by each destination's writer.
struct Line {
    pri: u16,
    time: SystemTime,
    /// The message and its ` key=value` fields.
    text: String,
}

/// A destination's queue and its counters.
struct Outlet {
    tx: SyncSender<Line>,
    counters: Arc<Counters>,
}

#[derive(Default)]
struct Counters {
    queued: AtomicU64,
    sent: AtomicU64,
    dropped: AtomicU64,
    failed: AtomicU64,
}

/// Every destination's counters, for `vrrplb status` and the flush at exit.
static OUTLETS: Mutex<Vec<(String, Arc<Counters>)>> = Mutex::new(Vec::new());

/// The sending side: cheap to call from any thread, never blocks.
pub struct Syslog {
    outlets: Vec<Outlet>,
}

impl Syslog {
    /// Starts one writer thread per destination.
    pub fn start(destinations: &[Destination], format: Format, host: &str) -> Syslog {
        let pid = std::process::id();
        let mut outlets = Vec::new();
        for dest in destinations {
            let (tx, rx) = mpsc::sync_channel(QUEUE);
            let counters = Arc::new(Counters::default());
            let writer = Writer {
                dest: dest.clone(),
                format,
                host: host.to_owned(),
                pid,
                counters: counters.clone(),
                conn: Conn::None,
            };
            let spawned = std::thread::Builder::new()
                .name("vrrplb-syslog".into())
                .spawn(move || writer.run(rx));
            if let Err(e) = spawned {
                eprintln!("syslog {dest}: cannot start its writer thread: {e}");
                continue;
            }
            OUTLETS
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push((dest.to_string(), counters.clone()));
            outlets.push(Outlet { tx, counters });
        }
        Syslog { outlets }
    }

    /// Queues one line for every destination; a full queue drops it (counted).
    pub fn send(&self, pri: u16, text: String) {
        let time = SystemTime::now();
        for o in &self.outlets {
            let line = Line {
                pri,
                time,
                text: text.clone(),
            };
            match o.tx.try_send(line) {
                Ok(()) => {
                    o.counters.queued.fetch_add(1, Ordering::Relaxed);
                }
                Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                    o.counters.dropped.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    }
}

/// A reload that replaces the destinations drops the old ones: their writer threads finish
/// the lines already queued and end, and `status` stops listing them.
impl Drop for Syslog {
    fn drop(&mut self) {
        let mut outlets = OUTLETS.lock().unwrap_or_else(|e| e.into_inner());
        outlets.retain(|(_, c)| !self.outlets.iter().any(|o| Arc::ptr_eq(c, &o.counters)));
    }
}

/// `log DEST dropped=N failed=M` per destination, for `vrrplb status` (empty on stderr).
pub fn status_lines() -> String {
    let outlets = OUTLETS.lock().unwrap_or_else(|e| e.into_inner());
    let mut s = String::new();
    for (name, c) in outlets.iter() {
        s.push_str(&format!(
            "log {name} sent={} dropped={} failed={}\n",
            c.sent.load(Ordering::Relaxed),
            c.dropped.load(Ordering::Relaxed),
            c.failed.load(Ordering::Relaxed)
        ));
    }
    s
}

/// Waits (at most `limit`) until every queued line was sent or failed: called before exit
/// so the last lines ("Stopped vrrplb") are not lost in a queue.
pub fn flush(limit: Duration) {
    let deadline = Instant::now() + limit;
    let outlets: Vec<Arc<Counters>> = OUTLETS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .map(|(_, c)| c.clone())
        .collect();
    for c in outlets {
        while Instant::now() < deadline
            && c.sent.load(Ordering::Relaxed) + c.failed.load(Ordering::Relaxed)
                < c.queued.load(Ordering::Relaxed)
        {
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

enum Delivery {
    Sent,
    Failed,
    /// The local syslog socket does not exist or refuses connections.
    NoDaemon,
}

enum Conn {
    None,
    Unix(UnixDatagram),
    Udp(UdpSocket),
    Tcp(TcpStream),
    /// A TCP connect failed at this instant; lines fail until RECONNECT_AFTER passed.
    Down(Instant),
}

struct Writer {
    dest: Destination,
    format: Format,
    host: String,
    pid: u32,
    counters: Arc<Counters>,
    conn: Conn,
}

impl Writer {
    fn run(mut self, rx: Receiver<Line>) {
        while let Ok(line) = rx.recv() {
            let bytes = self.format_line(&line);
            match self.deliver(&bytes) {
                Delivery::Sent => {
                    self.counters.sent.fetch_add(1, Ordering::Relaxed);
                }
                Delivery::Failed => {
                    self.counters.failed.fetch_add(1, Ordering::Relaxed);
                }
                Delivery::NoDaemon => {
                    self.counters.failed.fetch_add(1, Ordering::Relaxed);
                    // No local syslog daemon at all: keep the line on stderr (the journal).
                    eprintln!("{}", String::from_utf8_lossy(&bytes));
                }
            }
        }
    }

    fn format_line(&self, line: &Line) -> Vec<u8> {
        let local = matches!(self.dest, Destination::Unix(_));
        let text = match self.format {
            Format::Rfc5424 => format!(
                "<{}>1 {} {} vrrplb {} - - {}",
                line.pri,
                rfc3339(line.time),
                self.host,
                self.pid,
                line.text
            ),
            Format::Rfc3164 if local => format!(
                "<{}>{} vrrplb[{}]: {}",
                line.pri,
                bsd_timestamp(line.time),
                self.pid,
                line.text
            ),
            Format::Rfc3164 => format!(
                "<{}>{} {} vrrplb[{}]: {}",
                line.pri,
                bsd_timestamp(line.time),
                self.host,
                self.pid,
                line.text
            ),
        };
        match self.dest {
            Destination::Tcp(_) => format!("{} {text}", text.len()).into_bytes(),
            _ => text.into_bytes(),
        }
    }

    /// One send; a lost connection is made again once. A send that timed out is not
    /// repeated (the reader is stuck; the next line tries again).
    fn deliver(&mut self, bytes: &[u8]) -> Delivery {
        for _ in 0..2 {
            if !self.connect() {
                return match self.dest {
                    Destination::Unix(_) => Delivery::NoDaemon,
                    _ => Delivery::Failed,
                };
            }
            let sent = match &mut self.conn {
                Conn::Unix(s) => s.send(bytes).map(drop),
                Conn::Udp(s) => s.send(bytes).map(drop),
                Conn::Tcp(s) => s.write_all(bytes),
                Conn::None | Conn::Down(_) => return Delivery::Failed,
            };
            match sent {
                Ok(()) => return Delivery::Sent,
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    // A TCP frame may be half written: start a fresh connection next time.
                    if matches!(self.conn, Conn::Tcp(_)) {
                        self.conn = Conn::None;
                    }
                    return Delivery::Failed;
                }
                Err(_) => self.conn = Conn::None,
            }
        }
        Delivery::Failed
    }

    fn connect(&mut self) -> bool {
        match self.conn {
            Conn::Down(at) if at.elapsed() < RECONNECT_AFTER => return false,
            Conn::None | Conn::Down(_) => {}
            _ => return true,
        }
        self.conn = match &self.dest {
            Destination::Unix(path) => UnixDatagram::unbound()
                .ok()
                .filter(|s| s.set_write_timeout(Some(SEND_TIMEOUT)).is_ok())
                .filter(|s| s.connect(path).is_ok())
                .map_or(Conn::None, Conn::Unix),
            Destination::Udp(addr) => {
                let any: SocketAddr = if addr.is_ipv4() {
                    ([0, 0, 0, 0], 0).into()
                } else {
                    ([0u16; 8], 0).into()
                };
                UdpSocket::bind(any)
                    .ok()
                    .filter(|s| s.connect(addr).is_ok())
                    .map_or(Conn::None, Conn::Udp)
            }
            Destination::Tcp(addr) => match TcpStream::connect_timeout(addr, SEND_TIMEOUT) {
                Ok(s) if s.set_write_timeout(Some(SEND_TIMEOUT)).is_ok() => Conn::Tcp(s),
                _ => Conn::Down(Instant::now()),
            },
        };
        matches!(self.conn, Conn::Unix(_) | Conn::Udp(_) | Conn::Tcp(_))
    }
}

fn broken_down(t: SystemTime, utc: bool) -> (libc::tm, u32) {
    let since = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs() as libc::time_t;
    // SAFETY: gmtime_r/localtime_r with valid pointers to a time_t and a zeroed tm.
    let tm = unsafe {
        let mut tm: libc::tm = std::mem::zeroed();
        if utc {
            libc::gmtime_r(&secs, &mut tm);
        } else {
            libc::localtime_r(&secs, &mut tm);
        }
        tm
    };
    (tm, since.subsec_micros())
}

/// `Mmm dd hh:mm:ss` in local time, as syslog(3) writes it.
pub fn bsd_timestamp(t: SystemTime) -> String {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let (tm, _) = broken_down(t, false);
    let month = MONTHS.get(tm.tm_mon as usize).copied().unwrap_or("Jan");
    format!(
        "{month} {:>2} {:02}:{:02}:{:02}",
        tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec
    )
}

/// `YYYY-MM-DDThh:mm:ss.uuuuuuZ` (RFC 5424 §6.2.3, UTC).
fn rfc3339(t: SystemTime) -> String {
    let (tm, micros) = broken_down(t, true);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{micros:06}Z",
        tm.tm_year + 1900,
        tm.tm_mon + 1,
        tm.tm_mday,
        tm.tm_hour,
        tm.tm_min,
        tm.tm_sec
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn destinations_parse() {
        assert_eq!(
            Destination::parse("udp://198.51.100.5:514"),
            Ok(Destination::Udp("198.51.100.5:514".parse().unwrap()))
        );
        assert_eq!(
            Destination::parse("tcp://198.51.100.5"),
            Ok(Destination::Tcp("198.51.100.5:514".parse().unwrap()))
        );
        assert_eq!(
            Destination::parse("udp://[2001:db8::5]:1514"),
            Ok(Destination::Udp("[2001:db8::5]:1514".parse().unwrap()))
        );
        assert_eq!(
            Destination::parse("tcp://[2001:db8::5]"),
            Ok(Destination::Tcp("[2001:db8::5]:514".parse().unwrap()))
        );
        assert_eq!(
            Destination::parse("unix:///dev/log"),
            Ok(Destination::Unix("/dev/log".into()))
        );
        for bad in [
            "198.51.100.5:514",
            "http://198.51.100.5",
            "udp://logs.example.test",
            "unix://dev/log",
        ] {
            assert!(Destination::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn timestamps_have_their_rfc_shapes() {
        let t = UNIX_EPOCH + Duration::from_micros(1_765_022_400_123_456);
        assert_eq!(rfc3339(t), "2025-12-06T12:00:00.123456Z");
        assert_eq!(bsd_timestamp(t).len(), "Dec  6 12:00:00".len());
    }

    #[test]
    fn a_stuck_destination_drops_and_counts_instead_of_blocking() {
        let dir = std::env::temp_dir().join(format!("vrrplb-syslog-unit-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("stuck.sock");
        // Bound and never read: its queue fills, then every send would block.
        let _stuck = UnixDatagram::bind(&path).unwrap();
        let s = Syslog::start(&[Destination::Unix(path.clone())], Format::Rfc3164, "h");
        let t0 = Instant::now();
        for i in 0..(QUEUE + 2000) {
            s.send(30, format!("line {i}"));
        }
        let took = t0.elapsed();
        let _ = std::fs::remove_dir_all(&dir);
        assert!(took < Duration::from_millis(500), "sending took {took:?}");
        let status = status_lines();
        let line = status
            .lines()
            .find(|l| l.contains(&path.display().to_string()))
            .unwrap_or_default()
            .to_owned();
        let dropped: u64 = line
            .split("dropped=")
            .nth(1)
            .and_then(|r| r.split(' ').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0);
        assert!(dropped >= 1000, "{status}");
    }
}
