//! keepalived's `vrrp_sync_group`: instances that must move together. A member that enters
//! FAULT for a reason of its own takes the others to FAULT with it (they hold a weight-0
//! tracker on the group, [`crate::machine::TrackerKind::SyncGroup`]), and they come back when
//! no member is in FAULT of its own any more. Members forced by the group do not count, or
//! the group could never leave FAULT. The group's notify scripts run when its state changes
//! (FAULT when a member is, MASTER when all are, BACKUP otherwise), and the state sink
//! (notify_fifo) hears of it after the member's own change, with STOP once every member
//! stopped (keepalived's order at shutdown).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::watch;
use tracing::info;

use crate::config::NotifyScripts;
use crate::machine::State;
use crate::notify::{Notifier, NotifyState};
use crate::stats::StateSink;

/// The configuration of one group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncGroupConfig {
    pub name: String,
    pub members: Vec<String>,
    pub notify: NotifyScripts,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Member {
    state: State,
    /// In FAULT only because another member is.
    by_group: bool,
}

/// The shared view of a group's members, one per group for the life of the daemon.
pub struct SyncGroup {
    cfg: SyncGroupConfig,
    members: Mutex<HashMap<String, Member>>,
    group_state: Mutex<Option<NotifyState>>,
    changed: watch::Sender<u64>,
    /// A reload may replace the group's notify scripts in place.
    notifier: Mutex<Notifier>,
    events: Option<Arc<dyn StateSink>>,
}

impl SyncGroup {
    pub fn new(cfg: SyncGroupConfig) -> Arc<SyncGroup> {
        SyncGroup::with_events(cfg, None)
    }

    /// A group whose state changes also go to `events` (notify_fifo's `GROUP` lines).
    pub fn with_events(cfg: SyncGroupConfig, events: Option<Arc<dyn StateSink>>) -> Arc<SyncGroup> {
        let notifier = Notifier::for_group(cfg.name.clone(), cfg.notify.clone());
        Arc::new(SyncGroup {
            cfg,
            members: Mutex::new(HashMap::new()),
            group_state: Mutex::new(None),
            changed: watch::channel(0).0,
            notifier: Mutex::new(notifier),
            events,
        })
    }

    pub fn name(&self) -> &str {
        &self.cfg.name
    }

    pub fn contains(&self, instance: &str) -> bool {
        self.cfg.members.iter().any(|m| m == instance)
    }

    /// Bumped on every change a member reports.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.changed.subscribe()
    }

    /// A member's state after a transition or a tracker change. Must be called inside a
    /// tokio runtime (the group's notify scripts start from here).
    pub fn report(&self, instance: &str, state: State, by_group: bool) {
        let member = Member {
            state,
            by_group: state == State::Fault && by_group,
        };
        let (changed, group) = {
            let mut members = self.members.lock().unwrap_or_else(|e| e.into_inner());
            let old = members.insert(instance.to_owned(), member);
            let all = self.cfg.members.len();
            let stopped =
                members.len() == all && members.values().all(|m| m.state == State::Initialize);
            let group = if stopped {
                Some(NotifyState::Stop)
            } else if members.values().any(|m| m.state == State::Fault) {
                Some(NotifyState::Fault)
            } else if members.len() == all && members.values().all(|m| m.state == State::Master) {
                Some(NotifyState::Master)
            } else if members.values().any(|m| m.state == State::Backup) {
                Some(NotifyState::Backup)
            } else {
                None
            };
            (old != Some(member), group)
        };
        if member.state == State::Fault && !member.by_group && changed {
            info!(
                "VRRP_Group({}) Syncing instances to FAULT state",
                self.cfg.name
            );
        }
        self.set_group_state(group);
        if changed {
            self.changed.send_modify(|n| *n = n.wrapping_add(1));
        }
    }

    fn set_group_state(&self, group: Option<NotifyState>) {
        let mut current = self.group_state.lock().unwrap_or_else(|e| e.into_inner());
        let Some(state) = group else {
            return;
        };
        // Members start in INIT too: STOP only ends a group that had a state.
        if *current == group || (state == NotifyState::Stop && current.is_none()) {
            return;
        }
        *current = group;
        if let Some(sink) = &self.events {
            let as_instance = match state {
                NotifyState::Master => State::Master,
                NotifyState::Backup => State::Backup,
                NotifyState::Fault => State::Fault,
                NotifyState::Stop => State::Initialize,
            };
            sink.group_changed(&self.cfg.name, as_instance);
        }
        if state == NotifyState::Stop {
            // The daemon is stopping its members: the group's scripts are not started then.
            return;
        }
        info!(
            "VRRP_Group({}) Entering {} STATE",
            self.cfg.name,
            state.as_str()
        );
        let notifier = self.notifier.lock().unwrap_or_else(|e| e.into_inner());
        drop(notifier.notify(state, 0));
    }

    /// A reload changed only the group's notify scripts: the next group transition runs
    /// the new ones (the members and their shared state stay).
    pub fn set_notify(&self, scripts: NotifyScripts) {
        let mut notifier = self.notifier.lock().unwrap_or_else(|e| e.into_inner());
        *notifier = Notifier::for_group(self.cfg.name.clone(), scripts);
    }

    /// Another member in FAULT of its own, if any: while there is one, `instance` is held in
    /// FAULT too.
    pub fn faulty_other(&self, instance: &str) -> Option<String> {
        let members = self.members.lock().unwrap_or_else(|e| e.into_inner());
        members
            .iter()
            .find(|(name, m)| *name != instance && m.state == State::Fault && !m.by_group)
            .map(|(name, _)| name.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn group() -> Arc<SyncGroup> {
        SyncGroup::new(SyncGroupConfig {
            name: "G1".into(),
            members: vec!["VI_1".into(), "VI_2".into()],
            notify: NotifyScripts::default(),
        })
    }

    #[tokio::test]
    async fn an_own_fault_holds_the_others_and_a_forced_one_does_not() {
        let g = group();
        let rx = g.subscribe();
        g.report("VI_1", State::Backup, false);
        g.report("VI_2", State::Backup, false);
        assert_eq!(g.faulty_other("VI_2"), None);
        g.report("VI_1", State::Fault, false);
        assert!(rx.has_changed().unwrap_or(false));
        assert_eq!(g.faulty_other("VI_2").as_deref(), Some("VI_1"));
        // VI_2 follows, forced: it must not hold VI_1 in FAULT once VI_1 recovers.
        g.report("VI_2", State::Fault, true);
        assert_eq!(g.faulty_other("VI_1"), None);
        g.report("VI_1", State::Backup, false);
        assert_eq!(g.faulty_other("VI_2"), None);
        // A member's own fault does hold the others.
        g.report("VI_2", State::Fault, false);
        assert_eq!(g.faulty_other("VI_1").as_deref(), Some("VI_2"));
        assert!(!g.contains("VI_3") && g.contains("VI_2"));
    }

    /// Records what a notify_fifo would get.
    #[derive(Default)]
    struct Seen(Mutex<Vec<String>>);

    impl StateSink for Seen {
        fn changed(&self, instance: &str, state: State, priority: u8) {
            let mut v = self.0.lock().unwrap_or_else(|e| e.into_inner());
            v.push(format!("INSTANCE {instance} {state:?} {priority}"));
        }
        fn group_changed(&self, group: &str, state: State) {
            let mut v = self.0.lock().unwrap_or_else(|e| e.into_inner());
            v.push(format!("GROUP {group} {state:?}"));
        }
    }

    #[tokio::test]
    async fn group_changes_reach_the_sink_once_each_and_stop_only_after_a_state() {
        let seen = Arc::new(Seen::default());
        let g = SyncGroup::with_events(
            SyncGroupConfig {
                name: "G1".into(),
                members: vec!["VI_1".into(), "VI_2".into()],
                notify: NotifyScripts::default(),
            },
            Some(seen.clone()),
        );
        // Both members start in INIT: no STOP for a group that never had a state.
        g.report("VI_1", State::Initialize, false);
        g.report("VI_2", State::Initialize, false);
        g.report("VI_1", State::Backup, false);
        g.report("VI_2", State::Backup, false);
        g.report("VI_1", State::Master, false);
        g.report("VI_2", State::Master, false);
        g.report("VI_2", State::Master, false);
        g.report("VI_1", State::Fault, false);
        g.report("VI_2", State::Fault, true);
        g.report("VI_1", State::Initialize, false);
        g.report("VI_2", State::Initialize, false);
        let got = seen.0.lock().unwrap_or_else(|e| e.into_inner()).clone();
        assert_eq!(
            got,
            [
                "GROUP G1 Backup",
                "GROUP G1 Master",
                "GROUP G1 Fault",
                "GROUP G1 Initialize"
            ]
        );
    }
}
