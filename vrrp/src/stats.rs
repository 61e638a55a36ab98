//! What the engine tells the stats page, `/metrics`, `vrrplb status` and the systemd
//! watchdog about one instance: advert counters, the last transition and its reason, the
//! MASTER's address, tracker states, and a heartbeat from the driver's loop. Counters are
//! atomics; the rest sits behind a mutex taken only on state changes and by readers.

use crate::machine::{State, TrackerKind};
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

/// The watchdog's unit: an engine loop that has not turned for three of these is wedged.
pub const HEARTBEAT: Duration = Duration::from_secs(1);
/// How long the driver's loop sleeps at most when nothing happens. Adverts turn it far more
/// often (a MASTER's timer, a BACKUP's received adverts), so this beat only fires on an idle
/// loop (FAULT, a silent link); it is two heartbeats so that a BACKUP at 1 s adverts never
/// wakes for it between two adverts, and stays a heartbeat inside the watchdog's limit.
pub const IDLE_BEAT: Duration = Duration::from_secs(2);

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransitionRecord {
    pub at: SystemTime,
    pub from: State,
    pub to: State,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrackerState {
    pub name: String,
    pub kind: TrackerKind,
    /// `None` while unknown (a script that has not run yet).
    pub ok: Option<bool>,
}

impl TrackerState {
    pub fn kind_str(&self) -> &'static str {
        match self.kind {
            TrackerKind::Script => "script",
            TrackerKind::Interface => "interface",
            TrackerKind::Backend => "backend",
            TrackerKind::OwnInterface => "own_interface",
            TrackerKind::SyncGroup => "sync_group",
        }
    }

    pub fn status_str(&self) -> &'static str {
        match self.ok {
            Some(true) => "ok",
            Some(false) => "failing",
            None => "unknown",
        }
    }
}

/// The parts that change only with the state.
#[derive(Debug, Clone, Default)]
pub struct InstanceDetail {
    pub base_priority: u8,
    /// The MASTER as this box knows it: itself while MASTER, else the source of the last
    /// valid advert with a non-zero priority.
    pub master: Option<IpAddr>,
    pub last_transition: Option<TransitionRecord>,
    pub trackers: Vec<TrackerState>,
}

#[derive(Debug)]
pub struct InstanceStats {
    pub adverts_sent: AtomicU64,
    pub adverts_received: AtomicU64,
    pub become_master: AtomicU64,
    detail: Mutex<InstanceDetail>,
    epoch: Instant,
    /// Milliseconds after `epoch` of the driver loop's last turn.
    beat_ms: AtomicU64,
    /// Test hook: the driver's loop parks forever at its next turn (a wedged engine).
    stall: AtomicBool,
}

impl Default for InstanceStats {
    fn default() -> Self {
        InstanceStats {
            adverts_sent: AtomicU64::new(0),
            adverts_received: AtomicU64::new(0),
            become_master: AtomicU64::new(0),
            detail: Mutex::new(InstanceDetail::default()),
            epoch: Instant::now(),
            beat_ms: AtomicU64::new(0),
            stall: AtomicBool::new(false),
        }
    }
}

impl InstanceStats {
    pub fn detail(&self) -> InstanceDetail {
        self.detail
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub(crate) fn update(&self, f: impl FnOnce(&mut InstanceDetail)) {
        f(&mut self.detail.lock().unwrap_or_else(|e| e.into_inner()));
    }

    pub(crate) fn count(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }

    /// The driver's loop turned.
    pub(crate) fn beat(&self) {
        let ms = self.epoch.elapsed().as_millis() as u64;
        self.beat_ms.store(ms, Ordering::Relaxed);
    }

    /// Time since the driver's loop last turned.
    pub fn since_beat(&self) -> Duration {
        let now = self.epoch.elapsed().as_millis() as u64;
        Duration::from_millis(now.saturating_sub(self.beat_ms.load(Ordering::Relaxed)))
    }

    /// Test hook (see `VRRPLB_TEST_HOOKS` in the binary): wedges the driver's loop.
    pub fn stall(&self) {
        self.stall.store(true, Ordering::Relaxed);
    }

    pub(crate) fn stall_requested(&self) -> bool {
        self.stall.load(Ordering::Relaxed)
    }
}

/// Receives every state and priority change of an instance, and every state change of a
/// sync group, in order (notify_fifo). Must return at once: it is called from the engine's
/// loop.
pub trait StateSink: Send + Sync + 'static {
    fn changed(&self, instance: &str, state: State, priority: u8);
    /// A sync group's new state (`Initialize` = every member stopped).
    fn group_changed(&self, _group: &str, _state: State) {}
}
