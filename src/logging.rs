//! The one place where log output is set up: human lines on stderr, or syslog lines
//! (ident `vrrplb`, pid in the tag, the configured facility, severity from the level) to
//! /dev/log, another socket or syslog servers, through non-blocking queues (src/syslog.rs). Events may carry `syslog_severity = "alert"` (or notice,
//! emerg, crit) to pick a severity the tracing levels cannot express, as HAProxy does for
//! server DOWN alerts. Events with target `access` are the access log and are dropped when
//! `access_log` is off.

use crate::config::{LogSettings, LogTarget};
use crate::syslog::Syslog;
use std::fmt::Write as _;
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
            let syslog = Syslog::start(&settings.syslog, settings.syslog_format, &settings.host);
            let layer = SyslogLayer::new(syslog, settings.facility)
                .with_filter(level)
                .with_filter(keep);
            tracing_subscriber::registry().with(layer).init();
        }
    }
}

/// Turns each event into a syslog line (`message key=value...` with the facility and a
/// severity) and hands it to [`Syslog`], which queues it per destination without blocking.
pub struct SyslogLayer {
    syslog: Syslog,
    facility: u8,
}

impl SyslogLayer {
    pub fn new(syslog: Syslog, facility: u8) -> SyslogLayer {
        SyslogLayer { syslog, facility }
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

impl<S: Subscriber> Layer<S> for SyslogLayer {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let mut f = Fields::default();
        event.record(&mut f);
        let sev = f
            .severity
            .unwrap_or_else(|| severity_of(event.metadata().level()));
        let pri = u16::from(self.facility) * 8 + u16::from(sev);
        self.syslog.send(pri, f.message + &f.rest);
    }
}
