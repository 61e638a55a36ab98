//! The one place where log output is set up: human lines on stderr, or syslog datagrams
//! (ident `vrrplb`, pid in the tag, the configured facility, severity from the level) on
//! /dev/log or another socket. Events may carry `syslog_severity = "alert"` (or notice,
//! emerg, crit) to pick a severity the tracing levels cannot express, as HAProxy does for
//! server DOWN alerts. Events with target `access` are the access log and are dropped when
//! `access_log` is off.

use crate::config::{LogSettings, LogTarget};
use std::fmt::Write as _;
use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;
use std::sync::Mutex;
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::filter::{filter_fn, LevelFilter};
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::Layer;

/// Installs the global subscriber. Call once, before anything logs.
pub fn init(settings: &LogSettings, target: LogTarget) {
    let access = settings.access_log;
    let level = LevelFilter::from_level(settings.level);
    // The hint lets events above `level` be skipped at the macro, before any dispatch (a
    // filter_fn without one makes every trace! event of hyper and tokio reach the filters).
    let keep = filter_fn(move |m| access || m.target() != "access").with_max_level_hint(level);
    match target {
        LogTarget::Stderr => {
            let layer = tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                // Colour only on a terminal: a file or journald would keep the escape codes.
                .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
                .with_target(false)
                .with_filter(level)
                .with_filter(keep);
            tracing_subscriber::registry().with(layer).init();
        }
        LogTarget::Syslog => {
            let layer = SyslogLayer::new(settings.syslog_socket.clone(), settings.facility)
                .with_filter(level)
                .with_filter(keep);
            tracing_subscriber::registry().with(layer).init();
        }
    }
}

/// Sends one RFC 3164 datagram per event, like glibc's syslog(3): `<PRI>Mmm dd hh:mm:ss
/// vrrplb[PID]: message key=value...`.
pub struct SyslogLayer {
    path: PathBuf,
    facility: u8,
    pid: u32,
    socket: Mutex<Option<UnixDatagram>>,
}

impl SyslogLayer {
    pub fn new(path: PathBuf, facility: u8) -> SyslogLayer {
        SyslogLayer {
            path,
            facility,
            pid: std::process::id(),
            socket: Mutex::new(None),
        }
    }

    fn send(&self, line: &[u8]) {
        let mut guard = self.socket.lock().unwrap_or_else(|e| e.into_inner());
        for _ in 0..2 {
            if guard.is_none() {
                *guard = UnixDatagram::unbound()
                    .ok()
                    .filter(|s| s.connect(&self.path).is_ok());
            }
            let Some(sock) = guard.as_ref() else { break };
            if sock.send(line).is_ok() {
                return;
            }
            // The syslog daemon restarted: reconnect once.
            *guard = None;
        }
        // No syslog daemon: keep the line rather than lose it.
        eprintln!("{}", String::from_utf8_lossy(line));
    }
}

fn severity_of(level: &Level) -> u8 {
    match *level {
        Level::ERROR => 3,
        Level::WARN => 4,
        Level::INFO => 6,
        Level::DEBUG | Level::TRACE => 7,
    }
}

fn severity_named(name: &str) -> Option<u8> {
    Some(match name {
        "emerg" => 0,
        "alert" => 1,
        "crit" => 2,
        "err" | "error" => 3,
        "warning" | "warn" => 4,
        "notice" => 5,
        "info" => 6,
        "debug" => 7,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn fields_with_spaces_are_quoted_once() {
        let mut s = String::new();
        super::push_field(&mut s, "reason", "master down timer expired");
        super::push_field(&mut s, "drop_reason", "bad_password");
        super::push_field(&mut s, "from", "\"198.51.100.12\"");
        assert_eq!(
            s,
            " reason=\"master down timer expired\" drop_reason=bad_password from=198.51.100.12"
        );
    }
}

#[derive(Default)]
struct Fields {
    message: String,
    rest: String,
    severity: Option<u8>,
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        match field.name() {
            "message" => self.message.push_str(value),
            "syslog_severity" => self.severity = severity_named(value),
            name => push_field(&mut self.rest, name, value),
        }
    }
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        match field.name() {
            "message" => {
                let _ = write!(self.message, "{value:?}");
            }
            "syslog_severity" => {
                let s = format!("{value:?}");
                self.severity = severity_named(s.trim_matches('"'));
            }
            name => push_field(&mut self.rest, name, &format!("{value:?}")),
        }
    }
}

/// Appends ` name=value`, quoting the value when it has spaces, quotes or `=` (so key=value
/// parsers read `reason="master down timer expired"` whole), and never quoting twice.
fn push_field(out: &mut String, name: &str, value: &str) {
    let value = value
        .strip_prefix('"')
        .and_then(|v| v.strip_suffix('"'))
        .unwrap_or(value);
    if value.is_empty() || value.contains(|c: char| c.is_whitespace() || c == '"' || c == '=') {
        let _ = write!(out, " {name}=\"{}\"", value.replace('"', "\\\""));
    } else {
        let _ = write!(out, " {name}={value}");
    }
}

/// `Mmm dd hh:mm:ss` in local time, as syslog(3) writes it.
fn timestamp() -> String {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    // SAFETY: time(NULL) and localtime_r with a valid out-pointer.
    let tm = unsafe {
        let t = libc::time(std::ptr::null_mut());
        let mut tm: libc::tm = std::mem::zeroed();
        libc::localtime_r(&t, &mut tm);
        tm
    };
    let month = MONTHS.get(tm.tm_mon as usize).copied().unwrap_or("Jan");
    format!(
        "{month} {:>2} {:02}:{:02}:{:02}",
        tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec
    )
}

impl<S: Subscriber> Layer<S> for SyslogLayer {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let mut f = Fields::default();
        event.record(&mut f);
        let sev = f
            .severity
            .unwrap_or_else(|| severity_of(event.metadata().level()));
        let pri = u16::from(self.facility) * 8 + u16::from(sev);
        let line = format!(
            "<{pri}>{} vrrplb[{}]: {}{}",
            timestamp(),
            self.pid,
            f.message,
            f.rest
        );
        self.send(line.as_bytes());
    }
}
