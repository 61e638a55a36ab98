//! keepalived's `vrrp_sync_group`: instances that must move together. A member that enters
//! FAULT for a reason of its own takes the others to FAULT with it (they hold a weight-0
//! tracker on the group, [`crate::machine::TrackerKind::SyncGroup`]), and they come back when
//! no member is in FAULT of its own any more. Members forced by the group do not count, or
//! the group could never leave FAULT. A MASTER that steps down to BACKUP (it heard a better
//! master) takes the other MASTERs to BACKUP ("Syncing instances to BACKUP state"), and a
//! BACKUP whose master is gone waits to go MASTER until every member's master is gone too
//! (keepalived's `vrrp_sync_can_goto_master`); the last one to get there takes the others
//! with it ("Syncing instances to MASTER state"), so the group's VIPs never split between
//! two boxes. The group's notify scripts run when its state changes (FAULT when a member
//! is, MASTER when all are, BACKUP otherwise), and the state sink (notify_fifo) hears of it
//! after the member's own change, with STOP once every member stopped (keepalived's order
//! at shutdown).

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
    /// MASTER, or BACKUP with its master gone ([`crate::machine::Machine::wants_master`]).
    wants_master: bool,
}

/// A member's report after a transition, a tracker change or a timer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemberReport {
    pub state: State,
    /// In FAULT only because another member is.
    pub by_group: bool,
    pub wants_master: bool,
    /// The last transition was the group's doing (it must not sync the others again).
    pub moved_by_group: bool,
}

/// What a member's driver is told to do by the group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupSignal {
    /// Another member stepped down: a MASTER goes to BACKUP.
    Backup,
    /// Another member went MASTER: a BACKUP whose master is gone follows.
    Master,
}

/// The shared view of a group's members, one per group for the life of the daemon.
pub struct SyncGroup {
    cfg: SyncGroupConfig,
    members: Mutex<HashMap<String, Member>>,
    /// Bumped on every "Syncing instances to BACKUP/MASTER state", with its direction.
    syncs: watch::Sender<(u64, Option<GroupSignal>)>,
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
            syncs: watch::channel((0, None)).0,
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

    /// Every sync the group orders, in order: (count, direction).
    pub fn subscribe_syncs(&self) -> watch::Receiver<(u64, Option<GroupSignal>)> {
        self.syncs.subscribe()
    }

    /// A member's state after a transition or a tracker change (no sync of its own).
    pub fn report(&self, instance: &str, state: State, by_group: bool) {
        self.report_member(
            instance,
            MemberReport {
                state,
                by_group,
                wants_master: state == State::Master,
                moved_by_group: false,
            },
        );
    }

    /// A member's state after a transition, a tracker change or a timer. Must be called
    /// inside a tokio runtime (the group's notify scripts start from here).
    pub fn report_member(&self, instance: &str, r: MemberReport) {
        let state = r.state;
        let member = Member {
            state,
            by_group: state == State::Fault && r.by_group,
            wants_master: r.wants_master,
        };
        let (changed, group, sync) = {
            let mut members = self.members.lock().unwrap_or_else(|e| e.into_inner());
            let old = members.insert(instance.to_owned(), member);
            let was = old.map(|m| m.state);
            let others = |st: State| {
                members
                    .iter()
                    .any(|(name, m)| name != instance && m.state == st)
            };
            // keepalived syncs on a member's own move, never on one the group made.
            let sync = match (was, state) {
                (Some(State::Master), State::Backup)
                    if !r.moved_by_group && others(State::Master) =>
                {
                    Some(GroupSignal::Backup)
                }
                (Some(w), State::Master)
                    if w != State::Master && !r.moved_by_group && others(State::Backup) =>
                {
                    Some(GroupSignal::Master)
                }
                _ => None,
            };
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
            (old != Some(member), group, sync)
        };
        if let Some(signal) = sync {
            let to = match signal {
                GroupSignal::Backup => "BACKUP",
                GroupSignal::Master => "MASTER",
            };
            info!(
                "VRRP_Group({}) Syncing instances to {to} state",
                self.cfg.name
            );
            self.syncs.send_modify(|(n, s)| {
                *n = n.wrapping_add(1);
                *s = Some(signal);
            });
        }
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

    /// Whether `instance` must wait before going MASTER: another member is BACKUP and still
    /// hears a live master (keepalived's `vrrp_sync_can_goto_master`).
    pub fn holds_master(&self, instance: &str) -> bool {
        let members = self.members.lock().unwrap_or_else(|e| e.into_inner());
        members
            .iter()
            .any(|(name, m)| name != instance && m.state == State::Backup && !m.wants_master)
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

    fn r(state: State, wants_master: bool, moved_by_group: bool) -> MemberReport {
        MemberReport {
            state,
            by_group: false,
            wants_master,
            moved_by_group,
        }
    }

    #[tokio::test]
    async fn a_member_stepping_down_syncs_the_group_to_backup_and_back_to_master() {
        let g = group();
        let mut syncs = g.subscribe_syncs();
        g.report_member("VI_1", r(State::Master, true, false));
        g.report_member("VI_2", r(State::Master, true, false));
        assert!(!syncs.has_changed().unwrap_or(true));
        // VI_1 heard a better master: the group orders BACKUP, once.
        g.report_member("VI_1", r(State::Backup, false, false));
        assert!(syncs.has_changed().unwrap_or(false));
        assert_eq!(syncs.borrow_and_update().1, Some(GroupSignal::Backup));
        // VI_2 follows; its move was the group's, so nothing more is ordered.
        g.report_member("VI_2", r(State::Backup, false, true));
        assert!(!syncs.has_changed().unwrap_or(true));
        // VI_2's master is gone, VI_1's is not: VI_2 waits, VI_1 would not.
        g.report_member("VI_2", r(State::Backup, true, true));
        assert!(g.holds_master("VI_2"));
        assert!(!g.holds_master("VI_1"));
        // VI_1's master goes too: nothing holds VI_1, it goes MASTER and takes VI_2 along.
        g.report_member("VI_1", r(State::Backup, true, false));
        assert!(!g.holds_master("VI_1") && !g.holds_master("VI_2"));
        g.report_member("VI_1", r(State::Master, true, false));
        assert_eq!(syncs.borrow_and_update().1, Some(GroupSignal::Master));
        g.report_member("VI_2", r(State::Master, true, true));
        assert!(!syncs.has_changed().unwrap_or(true));
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
