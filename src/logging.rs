//! The one place where log output is set up: human lines on stderr, or syslog lines
//! (ident `vrrplb`, pid in the tag, the configured facility, severity from the level) to
//! /dev/log, another socket or syslog servers, through non-blocking queues (src/syslog.rs). Events may carry `syslog_severity = "alert"` (or notice,
//! emerg, crit) to pick a severity the tracing levels cannot express, as HAProxy does for
//! server DOWN alerts. Events with target `access` are the access log and are dropped when
//! `access_log` is off.

use crate::config::{LogSettings, LogTarget};
use crate::syslog::{Destination, Format, Syslog};
use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{OnceLock, RwLock};
use tracing::field::{Field, Visit};
use tracing::subscriber::Interest;
use tracing::{Event, Level, Metadata, Subscriber};
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::layer::{Context, Filter, SubscriberExt};
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::Layer;

/// What the log does now. `global.log` applies live: a reload swaps these (see [`apply`])
/// instead of the subscriber, which tracing installs once per process.
struct Live {
    /// `--log` on the command line wins over the file, at start and on every reload.
    forced: Option<LogTarget>,
    to_syslog: AtomicBool,
    /// The most verbose level kept, as [`level_code`] numbers it.
    level: AtomicU8,
    access_log: AtomicBool,
    /// The syslog destinations with the settings they were started with, while the target
    /// is syslog.
    syslog: RwLock<Option<SyslogOut>>,
}

struct SyslogOut {
    syslog: Syslog,
    destinations: Vec<Destination>,
    format: Format,
    host: String,
    facility: u8,
}

static LIVE: OnceLock<Live> = OnceLock::new();

fn level_code(l: Level) -> u8 {
    match l {
        Level::ERROR => 1,
        Level::WARN => 2,
        Level::INFO => 3,
        Level::DEBUG => 4,
        Level::TRACE => 5,
    }
}

fn level_filter(code: u8) -> LevelFilter {
    match code {
        1 => LevelFilter::ERROR,
        2 => LevelFilter::WARN,
        3 => LevelFilter::INFO,
        4 => LevelFilter::DEBUG,
        _ => LevelFilter::TRACE,
    }
}

/// Installs the global subscriber. Call once, before anything logs. `forced` is the
/// command line's `--log`, which every reload keeps.
pub fn init(settings: &LogSettings, forced: Option<LogTarget>) {
    let live = LIVE.get_or_init(|| Live {
        forced,
        to_syslog: AtomicBool::new(false),
        level: AtomicU8::new(level_code(settings.level)),
        access_log: AtomicBool::new(settings.access_log),
        syslog: RwLock::new(None),
    });
    set(live, settings);
    let stderr = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        // Colour only on a terminal: a file or journald would keep the escape codes.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false)
        .with_filter(LiveFilter { to_syslog: false });
    let syslog = SyslogLayer.with_filter(LiveFilter { to_syslog: true });
    let _ = tracing_subscriber::registry()
        .with(stderr)
        .with(syslog)
        .try_init();
}

/// SIGHUP with a changed `global.log`: the target, level, access log, facility, format and
/// syslog destinations change from the next line on. Destinations that did not change keep
/// their queues and writer threads; replaced ones finish what they queued, then stop.
/// Returns what now runs, for the log.
pub fn apply(settings: &LogSettings) -> String {
    let Some(live) = LIVE.get() else {
        return "no log installed".into();
    };
    set(live, settings);
    // Callsites cached their interest under the old level: ask them again.
    tracing::callsite::rebuild_interest_cache();
    describe(live)
}

fn set(live: &Live, settings: &LogSettings) {
    let to_syslog = live.forced.unwrap_or(settings.target) == LogTarget::Syslog;
    {
        let mut out = live.syslog.write().unwrap_or_else(|e| e.into_inner());
        let same = out.as_ref().is_some_and(|o| {
            o.destinations == settings.syslog
                && o.format == settings.syslog_format
                && o.host == settings.host
        });
        if !to_syslog {
            *out = None;
        } else if same {
            if let Some(o) = out.as_mut() {
                o.facility = settings.facility;
            }
        } else {
            // The old destinations (dropped here) drain their queues on their own threads.
            *out = Some(SyslogOut {
                syslog: Syslog::start(&settings.syslog, settings.syslog_format, &settings.host),
                destinations: settings.syslog.clone(),
                format: settings.syslog_format,
                host: settings.host.clone(),
                facility: settings.facility,
            });
        }
    }
    live.level
        .store(level_code(settings.level), Ordering::Relaxed);
    live.access_log
        .store(settings.access_log, Ordering::Relaxed);
    live.to_syslog.store(to_syslog, Ordering::Relaxed);
}

fn describe(live: &Live) -> String {
    let level = level_filter(live.level.load(Ordering::Relaxed));
    let access = if live.access_log.load(Ordering::Relaxed) {
        "on"
    } else {
        "off"
    };
    let out = live.syslog.read().unwrap_or_else(|e| e.into_inner());
    match out.as_ref() {
        None => format!("stderr, level {level}, access log {access}"),
        Some(o) => {
            let dests: Vec<String> = o.destinations.iter().map(|d| d.to_string()).collect();
            format!(
                "syslog {} ({:?}, facility {}), level {level}, access log {access}",
                dests.join(" "),
                o.format,
                o.facility
            )
        }
    }
}

/// Lets an event through to the stderr or the syslog layer when that is the live target,
/// its level is kept and (for the `access` target) the access log is on.
struct LiveFilter {
    to_syslog: bool,
}

impl LiveFilter {
    fn keeps(&self, meta: &Metadata<'_>) -> bool {
        let Some(live) = LIVE.get() else {
            return false;
        };
        live.to_syslog.load(Ordering::Relaxed) == self.to_syslog
            && level_filter(live.level.load(Ordering::Relaxed)) >= *meta.level()
            && (meta.target() != "access" || live.access_log.load(Ordering::Relaxed))
    }
}

impl<S: Subscriber> Filter<S> for LiveFilter {
    fn enabled(&self, meta: &Metadata<'_>, _: &Context<'_, S>) -> bool {
        self.keeps(meta)
    }

    fn callsite_enabled(&self, meta: &'static Metadata<'static>) -> Interest {
        // Cached per callsite until the next reload rebuilds the cache.
        if self.keeps(meta) {
            Interest::always()
        } else {
            Interest::never()
        }
    }

    /// Lets events above the level be skipped at the macro, before any dispatch (every
    /// trace! event of hyper and tokio would reach the filters otherwise).
    fn max_level_hint(&self) -> Option<LevelFilter> {
        let live = LIVE.get()?;
        if live.to_syslog.load(Ordering::Relaxed) == self.to_syslog {
            Some(level_filter(live.level.load(Ordering::Relaxed)))
        } else {
            Some(LevelFilter::OFF)
        }
    }
}

/// Turns each event into a syslog line (`message key=value...` with the facility and a
/// severity) and hands it to the live [`Syslog`], which queues it per destination without
/// blocking.
pub struct SyslogLayer;

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
        let Some(live) = LIVE.get() else { return };
        let out = live.syslog.read().unwrap_or_else(|e| e.into_inner());
        let Some(o) = out.as_ref() else { return };
        let mut f = Fields::default();
        event.record(&mut f);
        let sev = f
            .severity
            .unwrap_or_else(|| severity_of(event.metadata().level()));
        let pri = u16::from(o.facility) * 8 + u16::from(sev);
        o.syslog.send(pri, f.message + &f.rest);
    }
}
