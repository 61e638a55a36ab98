//! Active health checks (lb.md §4): HAProxy's rise/fall counter (pure), the log wording users
//! grep for, and the per-server task that probes on schedule and flips the server's state.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;

use crate::config::{CheckKind, HealthCheckConfig};
use crate::observe::meters::Meters;
use crate::upstream::backend::{Backend, Transition};
use crate::upstream::probe::{self, CheckCode, ProbeResult};

/// HAProxy's health counter: `h` in `0..=rise+fall-1`, UP iff `h >= rise`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HealthCounter {
    h: u32,
    rise: u32,
    fall: u32,
}

/// Where a server stands between the two stable states.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    Up,
    GoingDown,
    GoingUp,
    Down,
}

impl HealthCounter {
    /// `rise`/`fall` of 0 are treated as 1. Start: `h = rise` (UP, first failure takes it
    /// DOWN), or `h = 0` for `initial_state: down`.
    pub fn new(rise: u32, fall: u32, initial_up: bool) -> Self {
        let rise = rise.max(1);
        let fall = fall.max(1);
        HealthCounter {
            h: if initial_up { rise } else { 0 },
            rise,
            fall,
        }
    }

    fn top(&self) -> u32 {
        self.rise + self.fall - 1
    }

    pub fn is_up(&self) -> bool {
        self.h >= self.rise
    }

    /// Applies a passed probe; true when the server just became UP.
    pub fn success(&mut self) -> bool {
        let was_up = self.is_up();
        if self.h < self.top() {
            self.h += 1;
            if self.h >= self.rise {
                self.h = self.top();
            }
        }
        !was_up && self.is_up()
    }

    /// Applies a failed probe; true when the server just went DOWN.
    pub fn failure(&mut self) -> bool {
        let was_up = self.is_up();
        if self.h > 0 {
            self.h -= 1;
            if self.h < self.rise {
                self.h = 0;
            }
        }
        was_up && !self.is_up()
    }

    pub fn phase(&self) -> Phase {
        if self.h == self.top() {
            Phase::Up
        } else if self.h == 0 {
            Phase::Down
        } else if self.is_up() {
            Phase::GoingDown
        } else {
            Phase::GoingUp
        }
    }
}

/// "UP", "UP 2/3" (going down), "DOWN 1/2" (going up), "DOWN".
impl fmt::Display for HealthCounter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.phase() {
            Phase::Up => f.write_str("UP"),
            Phase::Down => f.write_str("DOWN"),
            Phase::GoingDown => write!(f, "UP {}/{}", self.h - self.rise + 1, self.fall),
            Phase::GoingUp => write!(f, "DOWN {}/{}", self.h, self.rise),
        }
    }
}

/// `reason: Layer7 wrong status, code: 500, info: "...", check duration: 3ms`.
pub struct Reason<'a>(pub &'a ProbeResult);

impl fmt::Display for Reason<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let r = self.0;
        write!(f, "reason: {}", r.code.reason())?;
        if let Some(code) = r.status {
            write!(f, ", code: {code}")?;
        }
        if let Some(info) = &r.info {
            write!(f, ", info: \"{info}\"")?;
        }
        write!(f, ", check duration: {}ms", r.duration.as_millis())
    }
}

/// The state-change line, HAProxy's wording.
pub fn transition_message(
    backend: &str,
    server: &str,
    backup: bool,
    up: bool,
    result: &ProbeResult,
    t: &Transition,
) -> String {
    let who = if backup { "Backup Server" } else { "Server" };
    if up {
        format!(
            "{who} {backend}/{server} is UP, {}. {} active and {} backup servers online. \
             {} sessions requeued, {} total in queue.",
            Reason(result),
            t.active,
            t.backup,
            t.requeued,
            t.queued
        )
    } else {
        let on_backup = if t.active == 0 && t.backup > 0 {
            " Running on backup."
        } else {
            ""
        };
        format!(
            "{who} {backend}/{server} is DOWN, {}. {} active and {} backup servers left.{on_backup} \
             {} sessions active, {} requeued, {} remaining in queue.",
            Reason(result),
            t.active,
            t.backup,
            t.sessions,
            t.requeued,
            t.queued
        )
    }
}

/// The per-probe line (`Health check for server www/web1 failed, ..., status: 2/3 UP.`).
pub fn probe_message(
    backend: &str,
    server: &str,
    result: &ProbeResult,
    c: &HealthCounter,
) -> String {
    let verb = if result.code.passed() {
        "succeeded"
    } else {
        "failed"
    };
    let status = match c.phase() {
        Phase::GoingDown => format!("{}/{} UP", c.h - c.rise + 1, c.fall),
        Phase::GoingUp => format!("{}/{} DOWN", c.h, c.rise),
        Phase::Up => format!("{}/{} UP", c.fall, c.fall),
        Phase::Down => format!("0/{} DOWN", c.rise),
    };
    format!(
        "Health check for server {backend}/{server} {verb}, {}, status: {status}.",
        Reason(result)
    )
}

/// Starts one checker task per checked server of `backend`; server i of n first probes at
/// i·interval/n.
pub(crate) fn spawn_checks(backend: &Arc<Backend>) -> Vec<JoinHandle<()>> {
    let Some(cfg) = backend.cfg.health_check.clone() else {
        return Vec::new();
    };
    let cfg = Arc::new(cfg);
    let n = backend.servers.len().max(1) as u32;
    (0..backend.servers.len())
        .filter(|&i| backend.servers[i].cfg.check)
        .map(|i| {
            let delay = cfg.interval * i as u32 / n;
            tokio::spawn(run_checker(backend.clone(), i, cfg.clone(), delay))
        })
        .collect()
}

async fn run_checker(
    backend: Arc<Backend>,
    index: usize,
    cfg: Arc<HealthCheckConfig>,
    delay: Duration,
) {
    let server = &backend.servers[index];
    let mut target = server.cfg.addr;
    let port_override = server.cfg.check_port.or(cfg.port);
    if let Some(port) = port_override {
        target.set_port(port);
    }
    // A port override checks a plain service next to the TLS one (HAProxy `check port`
    // without `check-ssl`).
    let tls = if port_override.is_some() {
        None
    } else {
        server.upstream.tls()
    };
    let request = match cfg.kind {
        CheckKind::Http => Some(probe::http_request_bytes(&cfg, target)),
        CheckKind::Tcp => None,
    };
    // From the server's state: `initial_state`, or what a reload carried over.
    let mut counter = HealthCounter::new(cfg.rise, cfg.fall, server.is_up());
    if server.check_status().1.is_none() {
        server.set_check_status(counter.to_string(), None);
    }
    tokio::time::sleep(delay).await;
    loop {
        let result = match &request {
            Some(bytes) => probe::http(target, bytes, &cfg, tls).await,
            None => probe::tcp(target, cfg.timeout, tls).await,
        };
        let before = counter;
        if !result.code.passed() {
            Meters::add(&server.meters.check_failures, 1);
        }
        let changed = if result.code.passed() {
            counter.success()
        } else {
            counter.failure()
        };
        if changed {
            let up = counter.is_up();
            let t = backend.set_server_up(index, up);
            server.meters.went(!up);
            let usable = t.active + t.backup;
            if (up && usable == 1) || (!up && usable == 0) {
                backend.meters.went(!up);
            }
            let msg = transition_message(
                &backend.name,
                &server.cfg.name,
                server.cfg.backup,
                up,
                &result,
                &t,
            );
            if up {
                tracing::info!(target: "health", backend = %backend.name, server = %server.cfg.name, "{msg}");
            } else {
                tracing::error!(target: "health", backend = %backend.name, server = %server.cfg.name, "{msg}");
                if t.active == 0 && t.backup == 0 {
                    tracing::error!(target: "health", backend = %backend.name, "backend {} has no server available!", backend.name);
                }
            }
        } else {
            let passed = result.code.passed();
            let notable = passed != counter.is_up();
            if notable || (cfg.log_changes && before != counter) {
                let msg = probe_message(&backend.name, &server.cfg.name, &result, &counter);
                if passed {
                    tracing::info!(target: "health", backend = %backend.name, server = %server.cfg.name, "{msg}");
                } else {
                    tracing::warn!(target: "health", backend = %backend.name, server = %server.cfg.name, "{msg}");
                }
            }
        }
        server.set_check_status(counter.to_string(), Some(result));
        let next = match counter.phase() {
            Phase::Up => cfg.interval,
            Phase::Down => cfg.down_interval.unwrap_or(cfg.interval),
            Phase::GoingDown | Phase::GoingUp => cfg.fast_interval.unwrap_or(cfg.interval),
        };
        tokio::time::sleep(next).await;
    }
}

impl CheckCode {
    /// HAProxy's long description, used after `reason:`.
    pub fn reason(self) -> &'static str {
        match self {
            CheckCode::L4Ok => "Layer4 check passed",
            CheckCode::L4Con => "Layer4 connection problem",
            CheckCode::L4Tout => "Layer4 timeout",
            CheckCode::L6Ok => "Layer6 check passed",
            CheckCode::L6Rsp => "Layer6 invalid response",
            CheckCode::L6Tout => "Layer6 timeout",
            CheckCode::L7Ok => "Layer7 check passed",
            CheckCode::L7Sts => "Layer7 wrong status",
            CheckCode::L7Rsp => "Layer7 invalid response",
            CheckCode::L7Tout => "Layer7 timeout",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fully_up_server_goes_down_after_fall_failures() {
        let mut c = HealthCounter::new(2, 3, true);
        assert_eq!(c.to_string(), "UP 1/3");
        assert!(!c.success(), "already UP: no transition");
        assert_eq!(c.phase(), Phase::Up);
        assert!(!c.failure());
        assert_eq!(c.to_string(), "UP 2/3");
        assert!(!c.failure());
        assert_eq!(c.to_string(), "UP 1/3");
        assert!(c.failure());
        assert_eq!(c.to_string(), "DOWN");
    }

    #[test]
    fn first_failure_at_start_takes_it_down() {
        let mut c = HealthCounter::new(2, 3, true);
        assert!(c.is_up());
        assert!(c.failure());
        assert!(!c.is_up());
    }

    #[test]
    fn down_server_comes_up_after_rise_successes() {
        let mut c = HealthCounter::new(2, 3, false);
        assert_eq!(c.to_string(), "DOWN");
        assert!(!c.success());
        assert_eq!(c.to_string(), "DOWN 1/2");
        assert!(c.success());
        assert_eq!(c.to_string(), "UP");
        assert_eq!(c.phase(), Phase::Up);
    }

    #[test]
    fn a_failure_while_going_up_resets_to_zero() {
        let mut c = HealthCounter::new(3, 2, false);
        c.success();
        c.success();
        assert_eq!(c.to_string(), "DOWN 2/3");
        assert!(!c.failure());
        assert_eq!(c.to_string(), "DOWN");
    }

    #[test]
    fn a_success_while_going_down_restores_full_health() {
        let mut c = HealthCounter::new(2, 3, true);
        c.success();
        c.failure();
        c.failure();
        assert_eq!(c.to_string(), "UP 1/3");
        assert!(!c.success());
        assert_eq!(c.to_string(), "UP");
    }

    #[test]
    fn zero_rise_and_fall_count_as_one() {
        let mut c = HealthCounter::new(0, 0, true);
        assert!(c.failure());
        assert!(c.success());
    }

    #[test]
    fn log_lines_use_haproxy_wording() {
        let r = ProbeResult {
            code: CheckCode::L4Con,
            status: None,
            info: Some("Connection refused".into()),
            duration: Duration::from_millis(0),
        };
        let t = Transition {
            active: 1,
            backup: 0,
            sessions: 0,
            requeued: 0,
            queued: 0,
        };
        assert_eq!(
            transition_message("www", "web1", false, false, &r, &t),
            "Server www/web1 is DOWN, reason: Layer4 connection problem, info: \"Connection refused\", \
             check duration: 0ms. 1 active and 0 backup servers left. 0 sessions active, 0 requeued, \
             0 remaining in queue."
        );
        let ok = ProbeResult {
            code: CheckCode::L7Ok,
            status: Some(200),
            info: None,
            duration: Duration::from_millis(1),
        };
        let t2 = Transition { active: 2, ..t };
        assert_eq!(
            transition_message("www", "web1", false, true, &ok, &t2),
            "Server www/web1 is UP, reason: Layer7 check passed, code: 200, check duration: 1ms. \
             2 active and 0 backup servers online. 0 sessions requeued, 0 total in queue."
        );
        let t3 = Transition {
            active: 0,
            backup: 1,
            ..t
        };
        assert!(transition_message("www", "web1", false, false, &r, &t3)
            .contains("left. Running on backup. 0 sessions"));
        let bad = ProbeResult {
            code: CheckCode::L7Sts,
            status: Some(500),
            info: Some("Internal Server Error".into()),
            duration: Duration::from_millis(3),
        };
        let mut c = HealthCounter::new(2, 3, true);
        c.success();
        c.failure();
        assert_eq!(
            probe_message("www", "web1", &bad, &c),
            "Health check for server www/web1 failed, reason: Layer7 wrong status, code: 500, \
             info: \"Internal Server Error\", check duration: 3ms, status: 2/3 UP."
        );
    }
}
