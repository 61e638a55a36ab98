//! systemd's notify protocol without libsystemd: datagrams to `$NOTIFY_SOCKET` (a path, or
//! an abstract name written `@name`). READY=1 once the first config is applied,
//! RELOADING=1/READY=1 around a SIGHUP, STOPPING=1 on the way out, and WATCHDOG=1 pings
//! while the VRRP engines' loops keep turning (see [`watchdog`]).

use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::sync::Arc;
use std::time::Duration;
use tracing::{debug, error, info, warn};

use crate::observe::Observed;

pub struct Notifier {
    sock: UnixDatagram,
    addr: SocketAddr,
}

impl Notifier {
    /// `None` when not started by systemd with `Type=notify` (no `NOTIFY_SOCKET`).
    pub fn from_env() -> Option<Notifier> {
        let path = std::env::var_os("NOTIFY_SOCKET")?;
        let path = path.to_string_lossy().into_owned();
        let addr = match path.strip_prefix('@') {
            Some(name) => SocketAddr::from_abstract_name(name.as_bytes()),
            None => SocketAddr::from_pathname(&path),
        };
        let addr = match addr {
            Ok(a) => a,
            Err(e) => {
                warn!("NOTIFY_SOCKET {path:?}: {e}; not notifying systemd");
                return None;
            }
        };
        let sock = match UnixDatagram::unbound() {
            Ok(s) => s,
            Err(e) => {
                warn!("cannot open a socket for systemd notifications: {e}");
                return None;
            }
        };
        // A full receive queue must not stall the daemon.
        let _ = sock.set_nonblocking(true);
        Some(Notifier { sock, addr })
    }

    pub fn send(&self, msg: &str) {
        if let Err(e) = self.sock.send_to_addr(msg.as_bytes(), &self.addr) {
            debug!("systemd notify {msg:?}: {e}");
        }
    }

    pub fn ready(&self) {
        self.send("READY=1\nSTATUS=running");
    }

    pub fn reloading(&self) {
        self.send(&format!("RELOADING=1\nMONOTONIC_USEC={}", monotonic_usec()));
    }

    pub fn stopping(&self) {
        self.send("STOPPING=1");
    }
}

fn monotonic_usec() -> u64 {
    nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC)
        .map(|t| t.tv_sec() as u64 * 1_000_000 + t.tv_nsec() as u64 / 1000)
        .unwrap_or(0)
}

/// `WatchdogSec` as systemd passes it (`WATCHDOG_USEC`, for this pid when `WATCHDOG_PID` is
/// set).
pub fn watchdog_interval() -> Option<Duration> {
    if let Ok(pid) = std::env::var("WATCHDOG_PID") {
        if pid.trim() != std::process::id().to_string() {
            return None;
        }
    }
    let usec: u64 = std::env::var("WATCHDOG_USEC").ok()?.trim().parse().ok()?;
    (usec > 0).then(|| Duration::from_micros(usec))
}

/// How long an engine loop may go without turning before the pings stop: half the watchdog
/// period, and never less than three heartbeats (an idle loop turns every two heartbeats, [`vrrp::stats::IDLE_BEAT`]).
pub fn stale_after(interval: Duration) -> Duration {
    (interval / 2).max(vrrp::stats::HEARTBEAT * 3)
}

/// Pings every `interval / 3` while every VRRP instance's loop has turned within
/// [`stale_after`]; a wedged engine stops the pings, so systemd restarts the box instead of
/// letting it hold (or silently lose) the VIP.
pub fn watchdog(
    notifier: Arc<Notifier>,
    interval: Duration,
    observed: Arc<Observed>,
) -> tokio::task::JoinHandle<()> {
    info!(
        "systemd watchdog: pinging every {} ms while the VRRP engine is alive",
        (interval / 3).as_millis()
    );
    let limit = stale_after(interval);
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(interval / 3);
        let mut stuck = false;
        loop {
            tick.tick().await;
            match observed.slowest_engine() {
                Some(late) if late > limit => {
                    if !stuck {
                        error!(
                            "VRRP engine loop has not turned for {} ms; no more systemd watchdog pings (systemd restarts the daemon)",
                            late.as_millis()
                        );
                    }
                    stuck = true;
                }
                _ => {
                    stuck = false;
                    notifier.send("WATCHDOG=1");
                }
            }
        }
    })
}
