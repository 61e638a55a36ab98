//! The VRRP state machine for both versions: RFC 3768 §6.4 and RFC 5798 §6.4 (one machine;
//! times are Durations, v2 intervals are whole seconds, v3 intervals centiseconds), plus
//! keepalived's FAULT state, trackers, preempt_delay and GARP schedule (vrrp.md §5–§7, §9,
//! §10, §13).
//!
//! Pure: no sockets, no clock. The driver feeds [`Event`]s and timer expiries with the
//! current [`Instant`], asks [`Machine::poll_timeout`] when to call back, and performs the
//! returned [`Action`]s in order (the order is keepalived's order of side effects).
//! Adverts reaching [`Event::Advert`] must already have passed [`crate::packet::validate`].

use std::fmt;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use crate::config::{InitialState, InstanceConfig, Version};

/// Priority of the address owner; it never changes with tracking.
pub const OWNER_PRIORITY: u8 = 255;

/// What a tracker watches; decides its wording in logs and whether an unknown state holds
/// the instance in FAULT.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrackerKind {
    /// `track_script`: unknown until its first run.
    Script,
    /// `track_interface`: reported by the driver before [`Event::Startup`].
    Interface,
    /// Native backend tracking (proxy health): unknown until the proxy reports.
    Backend,
    /// The instance's own interface, tracked implicitly with weight 0 (keepalived).
    OwnInterface,
    /// Another member of the instance's sync group is in FAULT (weight 0, always last).
    SyncGroup,
}

/// One tracker feeding the effective priority or FAULT (vrrp.md §10).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrackerSpec {
    pub name: String,
    pub kind: TrackerKind,
    /// > 0 adds while OK, < 0 subtracts while failing, 0 = FAULT while failing.
    pub weight: i32,
}

/// How long a MASTER that leaves for another one (preempted, stopping, or moved by its sync
/// group) keeps its VIPs and listeners after the new MASTER's first advert (the driver's
/// hand-back, instance.rs; here because [`CONTESTED_GARP_AFTER`] must come after it). Why a
/// fixed time and why 250 ms: the new MASTER sends that advert, then adds its VIPs, opens its
/// listeners and sends its gratuitous ARPs, a few ms in all (lab drill: its first GARP 1-5 ms
/// after the advert, also on a loaded 2-core machine); a client moves its ARP entry on
/// receiving one. What is left to cover is a request sent just before that, which needs one
/// LAN round trip plus the balancer's answer, and a GARP delayed by a busy box. Keeping the
/// VIP longer costs nothing visible (two boxes answer ARP for it, the newest GARP wins), while
/// letting it go early loses a SYN. Watching the VIP's traffic instead (keep it until none
/// arrived for some ms) would need a packet tap on the request path for a gain of ~200 ms in
/// which nothing is lost; so the fixed margin stays, about ten times the slowest GARP seen.
pub const HANDBACK: Duration = Duration::from_millis(250);

/// After a lower-priority advert (another box took itself for MASTER), one more gratuitous
/// ARP burst this long after the first: past the other box's [`HANDBACK`] (when it removes
/// the VIP) and its own ARPs, with 150 ms to spare for a loaded box, so the clients end up
/// here whatever order the two boxes' bursts reached them in (chaos drill: a 5 s outage when
/// they did not).
pub const CONTESTED_GARP_AFTER: Duration = HANDBACK.saturating_add(Duration::from_millis(150));

/// Everything the machine needs from the configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MachineConfig {
    /// Decides the Skew_Time formula and whether a backup learns the master's interval.
    pub version: Version,
    pub vrid: u8,
    /// Configured (base) priority, 1..=255.
    pub priority: u8,
    /// Our Advertisement_Interval (v2 whole seconds, v3 centiseconds).
    pub advert_int: Duration,
    /// RFC Preempt_Mode.
    pub preempt: bool,
    /// keepalived extension; counted from the first lower-priority advert (vrrp.md §7).
    pub preempt_delay: Duration,
    pub initial_state: InitialState,
    /// Second GARP burst after becoming Master; zero = none.
    pub garp_master_delay: Duration,
    /// GARPs per VIP in each burst.
    pub garp_master_repeat: u32,
    /// Periodic burst while Master; zero = never.
    pub garp_master_refresh: Duration,
    /// GARPs per VIP in each periodic burst (keepalived default 1).
    pub garp_master_refresh_repeat: u32,
    /// Our advert source address, used for the equal-priority tie-break.
    pub primary_ip: IpAddr,
    /// Indexed by [`Event::Tracker`]'s `index`.
    pub trackers: Vec<TrackerSpec>,
}

impl MachineConfig {
    /// Build from an instance's config. `primary_ip` is the interface's primary IPv4;
    /// `unicast_src_ip` overrides it when set (keepalived compares with its advert source).
    ///
    /// Tracker indices: 0 = own interface, then `track_interfaces`, `track_scripts`,
    /// `track_backends`, each in config order (see [`MachineConfig::tracker_index`]).
    pub fn from_instance(cfg: &InstanceConfig, primary_ip: IpAddr) -> Self {
        // keepalived ignores nopreempt with `state MASTER` or priority 255, and
        // preempt_delay with nopreempt or `state MASTER` (vrrp.md §7).
        let state_master = cfg.initial_state == InitialState::Master;
        let preempt = !cfg.nopreempt || state_master || cfg.priority == OWNER_PRIORITY;
        let preempt_delay = if preempt && !state_master {
            cfg.preempt_delay
        } else {
            Duration::ZERO
        };
        let mut trackers = vec![TrackerSpec {
            name: cfg.interface.clone(),
            kind: TrackerKind::OwnInterface,
            weight: 0,
        }];
        trackers.extend(cfg.track_interfaces.iter().map(|t| TrackerSpec {
            name: t.name.clone(),
            kind: TrackerKind::Interface,
            weight: t.weight,
        }));
        trackers.extend(cfg.track_scripts.iter().map(|t| TrackerSpec {
            name: t.script.name.clone(),
            kind: TrackerKind::Script,
            weight: t.weight,
        }));
        trackers.extend(cfg.track_backends.iter().map(|t| TrackerSpec {
            name: t.backend.clone(),
            kind: TrackerKind::Backend,
            weight: t.weight,
        }));
        // Last, so that a member's own fault is the reason it reports first.
        trackers.extend(cfg.sync_group.iter().map(|g| TrackerSpec {
            name: g.clone(),
            kind: TrackerKind::SyncGroup,
            weight: 0,
        }));
        MachineConfig {
            version: cfg.version,
            vrid: cfg.vrid,
            priority: cfg.priority,
            advert_int: centiseconds(cfg.advert_int.max(1)),
            preempt,
            preempt_delay,
            initial_state: cfg.initial_state,
            garp_master_delay: cfg.garp_master_delay,
            garp_master_repeat: cfg.garp_master_repeat,
            garp_master_refresh: cfg.garp_master_refresh,
            garp_master_refresh_repeat: 1,
            primary_ip: cfg.unicast_src_ip.unwrap_or(primary_ip),
            trackers,
        }
    }

    /// Index of a tracker for [`Event::Tracker`].
    pub fn tracker_index(&self, kind: TrackerKind, name: &str) -> Option<usize> {
        self.trackers
            .iter()
            .position(|t| t.kind == kind && t.name == name)
    }
}

/// RFC 3768 states plus keepalived's FAULT.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum State {
    Initialize,
    Backup,
    Master,
    Fault,
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            State::Initialize => "INIT",
            State::Backup => "BACKUP",
            State::Master => "MASTER",
            State::Fault => "FAULT",
        })
    }
}

/// Which notify scripts to run (keepalived's STATE argument).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NotifyState {
    Master,
    Backup,
    Fault,
    /// The instance stops (shutdown).
    Stop,
}

impl fmt::Display for NotifyState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            NotifyState::Master => "MASTER",
            NotifyState::Backup => "BACKUP",
            NotifyState::Fault => "FAULT",
            NotifyState::Stop => "STOP",
        })
    }
}

/// Inputs besides timer expiry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    Startup,
    /// A valid advert for our VRID; `src` is its IP source, `advert_int` its interval
    /// (v3 backups learn it as Master_Adver_Interval; in v2 it equals ours).
    Advert {
        src: IpAddr,
        priority: u8,
        advert_int: Duration,
    },
    /// Tracker `index` (into [`MachineConfig::trackers`]) is now OK or failing. Reports
    /// before `Startup` are recorded silently.
    Tracker {
        index: usize,
        ok: bool,
    },
    Shutdown,
    /// A reload changed the configured priority (not to or from 255, the owner's).
    SetPriority(u8),
    /// Another member of our sync group stepped down to BACKUP: a MASTER follows it.
    GroupBackup,
    /// Another member of our sync group became MASTER: a BACKUP whose master is gone too
    /// (its down timer fired while the group held it) follows it.
    GroupMaster,
}

/// Why a transition happened; `Display` is the structured `reason` field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reason {
    Init,
    MasterDownTimer,
    /// The down timer had been shortened to Skew_Time by this master's priority-0 advert.
    PriorityZeroAdvert {
        from: IpAddr,
    },
    HigherPriorityAdvert {
        from: IpAddr,
        priority: u8,
    },
    SamePriorityHigherIp {
        from: IpAddr,
        priority: u8,
    },
    TrackerFailed {
        name: String,
        kind: TrackerKind,
    },
    /// A weight-0 script or backend has not reported yet (keepalived holds FAULT).
    TrackerPending {
        name: String,
        kind: TrackerKind,
    },
    TrackerRecovered {
        name: String,
        kind: TrackerKind,
    },
    /// A reload removed or re-weighted what held the instance in FAULT.
    Reload,
    /// Moved with the other members of this sync group (keepalived `vrrp_sync_group`).
    SyncGroup {
        name: String,
    },
    Shutdown,
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::Init => write!(f, "startup"),
            Reason::MasterDownTimer => write!(f, "master down timer expired"),
            Reason::PriorityZeroAdvert { from } => {
                write!(f, "priority-0 advert from the master {from}")
            }
            Reason::HigherPriorityAdvert { from, .. } => {
                write!(f, "higher priority advert from {from}")
            }
            Reason::SamePriorityHigherIp { from, .. } => {
                write!(f, "same priority advert from higher address {from}")
            }
            Reason::TrackerFailed { name, kind } => match kind {
                TrackerKind::Script => write!(f, "script {name} failed"),
                TrackerKind::Interface | TrackerKind::OwnInterface => {
                    write!(f, "interface {name} down")
                }
                TrackerKind::Backend => write!(f, "backend {name} down"),
                TrackerKind::SyncGroup => write!(f, "sync group {name} has a member in FAULT"),
            },
            Reason::TrackerPending { name, kind } => match kind {
                TrackerKind::Script => write!(f, "script {name} has not run yet"),
                TrackerKind::Backend => write!(f, "backend {name} has not reported yet"),
                TrackerKind::Interface | TrackerKind::OwnInterface => {
                    write!(f, "interface {name} state unknown")
                }
                TrackerKind::SyncGroup => write!(f, "sync group {name} state unknown"),
            },
            Reason::TrackerRecovered { name, kind } => match kind {
                TrackerKind::Script => write!(f, "script {name} succeeded"),
                TrackerKind::Interface | TrackerKind::OwnInterface => {
                    write!(f, "interface {name} up")
                }
                TrackerKind::Backend => write!(f, "backend {name} up"),
                TrackerKind::SyncGroup => write!(f, "sync group {name} has no member in FAULT"),
            },
            Reason::Reload => write!(f, "configuration reloaded"),
            Reason::SyncGroup { name } => write!(f, "sync group {name} moved together"),
            Reason::Shutdown => write!(f, "shutdown"),
        }
    }
}

/// Decisions worth a keepalived log line that are not side effects themselves
/// (rendered by [`crate::logs::line`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogLine {
    /// The down timer fired.
    ReceiveTimeout,
    MasterReceivedHigher {
        from: IpAddr,
        priority: u8,
        ours: u8,
    },
    MasterReceivedSameHigherIp {
        from: IpAddr,
        priority: u8,
    },
    /// Lower priority (or equal with a lower address): we answer and stay Master.
    MasterReceivedLower {
        from: IpAddr,
        priority: u8,
        ours: u8,
    },
    BackupDiscardedLower {
        from: IpAddr,
        priority: u8,
    },
    BackupReceivedPriorityZero,
    MasterReceivedPriorityZero,
    /// The down timer fired but another member of the sync group still hears a live
    /// master: this one stays BACKUP (keepalived: a group goes MASTER together).
    HeldByGroup,
}

impl LogLine {
    /// keepalived prints these only with `--log-detail` (vrrp.md §11 "(D)").
    pub fn is_detail(&self) -> bool {
        matches!(
            self,
            LogLine::ReceiveTimeout
                | LogLine::BackupReceivedPriorityZero
                | LogLine::MasterReceivedPriorityZero
        )
    }
}

/// Side effects for the driver, to be performed in the order returned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Send one advert (to the group or to each unicast peer) with this priority.
    SendAdvert {
        priority: u8,
    },
    AddVips,
    RemoveVips,
    /// Send `count` gratuitous ARPs for every VIP.
    SendGarp {
        count: u32,
    },
    Notify(NotifyState),
    /// Log `Entering ... STATE` and publish the new state.
    Transition {
        from: State,
        to: State,
        reason: Reason,
    },
    /// Log `Changing effective priority from .. to ..`; the next advert carries it.
    PriorityChanged {
        from: u8,
        to: u8,
    },
    Log(LogLine),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TrackerStatus {
    Unknown,
    Ok,
    Failed,
    /// Added by a reload and not reported yet: neutral, so a running MASTER is not taken to
    /// FAULT by a tracker that merely has not run (its first result decides as usual).
    Added,
}

/// An interval in centiseconds, the unit of both versions' configs.
pub fn centiseconds(cs: u16) -> Duration {
    Duration::from_millis(u64::from(cs) * 10)
}

/// v2: `(256 − priority) / 256` s. 1/256 s is exactly 3 906 250 ns, so this is exact.
pub fn skew_time(priority: u8) -> Duration {
    Duration::from_nanos((256 - u64::from(priority)) * 3_906_250)
}

/// `3 × advert_int + Skew_Time` (RFC 3768 §6.1).
pub fn master_down_interval(advert_int: Duration, priority: u8) -> Duration {
    advert_int * 3 + skew_time(priority)
}

/// v3: `((256 − priority) × Master_Adver_Interval) / 256` (RFC 5798 §6.1), kept in
/// nanoseconds rather than rounded to centiseconds (keepalived keeps microseconds): at
/// 100 ms and priority 100 it is 60.9375 ms.
pub fn skew_time_v3(priority: u8, master_adver_int: Duration) -> Duration {
    let ns = master_adver_int.as_nanos() * (256 - u128::from(priority)) / 256;
    Duration::from_nanos(u64::try_from(ns).unwrap_or(u64::MAX))
}

/// v3: `3 × Master_Adver_Interval + Skew_Time` (RFC 5798 §6.1).
pub fn master_down_interval_v3(master_adver_int: Duration, priority: u8) -> Duration {
    master_adver_int * 3 + skew_time_v3(priority, master_adver_int)
}

/// One VRRP instance's state machine.
#[derive(Debug, Clone)]
pub struct Machine {
    cfg: MachineConfig,
    state: State,
    trackers: Vec<TrackerStatus>,
    effective: u8,
    /// Backup only.
    master_down: Option<Instant>,
    /// Set when the down timer was shortened by a priority-0 advert from this address.
    down_by_priority_zero: Option<IpAddr>,
    /// Backup only: when the first lower-priority advert of the current run was seen.
    preempt_since: Option<Instant>,
    /// RFC 5798 Master_Adver_Interval: ours at start, then the master's as a v3 backup
    /// hears it. In v2 it stays ours (validation drops any other).
    master_adver_int: Duration,
    /// Backup in a sync group: the down timer fired while the group held us, so our master
    /// is gone and we are ready for MASTER as soon as the other members are.
    down_expired: bool,
    /// Set by the driver: another member of the sync group is not ready for MASTER.
    group_hold: bool,
    /// Master only.
    adver: Option<Instant>,
    garp_again: Option<Instant>,
    /// A burst after a contested mastership settles (see [`CONTESTED_GARP_AFTER`]).
    garp_contested: Option<Instant>,
    garp_refresh: Option<Instant>,
}

impl Machine {
    pub fn new(cfg: MachineConfig) -> Self {
        let trackers = vec![TrackerStatus::Unknown; cfg.trackers.len()];
        let mut m = Machine {
            effective: cfg.priority,
            master_adver_int: cfg.advert_int,
            cfg,
            state: State::Initialize,
            trackers,
            master_down: None,
            down_by_priority_zero: None,
            preempt_since: None,
            down_expired: false,
            group_hold: false,
            adver: None,
            garp_again: None,
            garp_contested: None,
            garp_refresh: None,
        };
        m.effective = m.compute_priority();
        m
    }

    pub fn config(&self) -> &MachineConfig {
        &self.cfg
    }

    pub fn state(&self) -> State {
        self.state
    }

    /// The priority we advertise: base adjusted by trackers, clamped to 1..=254 (vrrp.md §10).
    pub fn effective_priority(&self) -> u8 {
        self.effective
    }

    /// Every tracker with its state (`None` = not known yet), in index order.
    pub fn tracker_states(&self) -> Vec<crate::stats::TrackerState> {
        self.cfg
            .trackers
            .iter()
            .zip(&self.trackers)
            .map(|(spec, st)| crate::stats::TrackerState {
                name: spec.name.clone(),
                kind: spec.kind,
                ok: match st {
                    TrackerStatus::Unknown | TrackerStatus::Added => None,
                    TrackerStatus::Ok => Some(true),
                    TrackerStatus::Failed => Some(false),
                },
            })
            .collect()
    }

    pub fn is_owner(&self) -> bool {
        self.cfg.priority == OWNER_PRIORITY
    }

    pub fn skew_time(&self) -> Duration {
        self.skew_at(self.effective)
    }

    fn skew_at(&self, priority: u8) -> Duration {
        match self.cfg.version {
            Version::V2 => skew_time(priority),
            Version::V3 => skew_time_v3(priority, self.master_adver_int),
        }
    }

    pub fn master_down_interval(&self) -> Duration {
        match self.cfg.version {
            Version::V2 => master_down_interval(self.cfg.advert_int, self.effective),
            Version::V3 => master_down_interval_v3(self.master_adver_int, self.effective),
        }
    }

    /// The interval a backup counts with (RFC 5798 Master_Adver_Interval).
    pub fn master_adver_int(&self) -> Duration {
        self.master_adver_int
    }

    /// The earliest deadline at which [`Machine::handle_timeout`] has work; `None` = idle.
    pub fn poll_timeout(&self) -> Option<Instant> {
        [
            self.master_down,
            self.adver,
            self.garp_again,
            self.garp_contested,
            self.garp_refresh,
        ]
        .into_iter()
        .flatten()
        .min()
    }

    pub fn handle(&mut self, event: Event, now: Instant) -> Vec<Action> {
        match event {
            Event::Startup => self.startup(now),
            Event::Advert {
                src,
                priority,
                advert_int,
            } => match self.state {
                State::Backup => self.backup_received(src, priority, advert_int, now),
                State::Master => self.master_received(src, priority, now),
                // keepalived ignores adverts while starting up and while in FAULT.
                State::Initialize | State::Fault => Vec::new(),
            },
            Event::Tracker { index, ok } => self.tracker_changed(index, ok, now),
            Event::Shutdown => self.shutdown(),
            Event::SetPriority(p) => self.set_priority(p, now),
            Event::GroupBackup if self.state == State::Master => {
                let reason = self.group_reason();
                self.enter_backup(reason, now)
            }
            Event::GroupMaster if self.state == State::Backup && self.down_expired => {
                let reason = self.group_reason();
                self.become_master(State::Backup, reason, now)
            }
            Event::GroupBackup | Event::GroupMaster => Vec::new(),
        }
    }

    /// Run every timer due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) -> Vec<Action> {
        let due = |t: Option<Instant>| t.is_some_and(|t| t <= now);
        let mut actions = Vec::new();
        match self.state {
            State::Backup if due(self.master_down) && self.group_hold => {
                // keepalived's vrrp_sync_can_goto_master: wait (one more Master_Down_Interval
                // at most, or until the group says go) for the other members.
                if !self.down_expired {
                    actions.push(Action::Log(LogLine::HeldByGroup));
                }
                self.down_expired = true;
                self.master_down = Some(now + self.master_down_interval());
            }
            State::Backup if due(self.master_down) => {
                let reason = match self.down_by_priority_zero {
                    Some(from) => Reason::PriorityZeroAdvert { from },
                    None => Reason::MasterDownTimer,
                };
                actions.push(Action::Log(LogLine::ReceiveTimeout));
                actions.extend(self.become_master(State::Backup, reason, now));
            }
            State::Master => {
                if let Some(at) = self.adver.filter(|t| *t <= now) {
                    actions.push(self.advert());
                    self.adver = Some(next_after(at, self.cfg.advert_int, now));
                }
                if due(self.garp_again) {
                    self.garp_again = None;
                    actions.extend(self.garp(self.cfg.garp_master_repeat));
                }
                if due(self.garp_contested) {
                    self.garp_contested = None;
                    actions.extend(self.garp(self.cfg.garp_master_repeat.max(1)));
                }
                if let Some(at) = self.garp_refresh.filter(|t| *t <= now) {
                    self.garp_refresh = Some(next_after(at, self.cfg.garp_master_refresh, now));
                    actions.extend(self.garp(self.cfg.garp_master_refresh_repeat));
                }
            }
            _ => {}
        }
        actions
    }

    fn startup(&mut self, now: Instant) -> Vec<Action> {
        if self.state != State::Initialize {
            return Vec::new();
        }
        if let Some(reason) = self.fault_cause() {
            return self.enter_fault(reason);
        }
        if self.is_owner() {
            // RFC §6.4.1: the owner goes straight to Master.
            return self.become_master(State::Initialize, Reason::Init, now);
        }
        // `state MASTER` below 255 still starts in Backup (keepalived, vrrp.md §7).
        self.enter_backup(Reason::Init, now)
    }

    /// RFC 3768/5798 §6.4.2, with keepalived's preempt_delay.
    fn backup_received(
        &mut self,
        src: IpAddr,
        priority: u8,
        advert_int: Duration,
        now: Instant,
    ) -> Vec<Action> {
        if priority == 0 {
            // The master resigns: take over after Skew_Time only.
            self.master_down = Some(now + self.skew_time());
            self.down_by_priority_zero = Some(src);
            return vec![Action::Log(LogLine::BackupReceivedPriorityZero)];
        }
        if !self.cfg.preempt || priority >= self.effective {
            self.preempt_since = None;
            self.learn_interval(advert_int);
            self.reset_down_timer(now);
            return Vec::new();
        }
        if !self.cfg.preempt_delay.is_zero() {
            let since = *self.preempt_since.get_or_insert(now);
            if now < since + self.cfg.preempt_delay {
                // Still tolerating the lower-priority master.
                self.learn_interval(advert_int);
                self.reset_down_timer(now);
                return Vec::new();
            }
        }
        // Discard: the down timer keeps running and we preempt when it fires.
        vec![Action::Log(LogLine::BackupDiscardedLower {
            from: src,
            priority,
        })]
    }

    /// RFC 5798 §6.4.2: the master's interval becomes ours to count with (v3 only; a zero
    /// interval never passes validation).
    fn learn_interval(&mut self, advert_int: Duration) {
        if self.cfg.version == Version::V3 && !advert_int.is_zero() {
            self.master_adver_int = advert_int;
        }
    }

    /// RFC §6.4.3, with keepalived's answer to a lower-priority advert. The answers are
    /// extra adverts: a received packet never moves our own advert timer, so no stream of
    /// packets can stretch the gaps between our periodic adverts (keepalived 2.2 pushes its
    /// timer back on every packet, which a peer sending every 137 ms turns into 137 ms gaps).
    fn master_received(&mut self, src: IpAddr, priority: u8, now: Instant) -> Vec<Action> {
        let ours = self.effective;
        if priority == 0 {
            return vec![
                Action::Log(LogLine::MasterReceivedPriorityZero),
                self.advert(),
            ];
        }
        // Tie-break on the addresses as unsigned numbers (32 or 128 bits, one family).
        let (line, reason) = if priority > ours {
            (
                LogLine::MasterReceivedHigher {
                    from: src,
                    priority,
                    ours,
                },
                Reason::HigherPriorityAdvert {
                    from: src,
                    priority,
                },
            )
        } else if priority == ours && src > self.cfg.primary_ip {
            (
                LogLine::MasterReceivedSameHigherIp {
                    from: src,
                    priority,
                },
                Reason::SamePriorityHigherIp {
                    from: src,
                    priority,
                },
            )
        } else {
            // keepalived: "forcing new election" with an advert and a GARP burst, then a
            // second burst after the delay (garp_lower_prio_* default to the master's).
            self.garp_again = self.after(self.cfg.garp_master_delay, now);
            // The other box sends its own gratuitous ARPs after that advert (RFC 5798 order:
            // advert, VIPs, ARPs), so they may reach the clients after ours: then the clients
            // follow it, and it drops the VIP once our advert preempts it. keepalived leaves
            // them there until its second burst (5 s by default); one more burst once the other
            // box has stepped down and let the VIP go brings them back at once.
            self.garp_contested = Some(now + CONTESTED_GARP_AFTER);
            let mut actions = vec![
                Action::Log(LogLine::MasterReceivedLower {
                    from: src,
                    priority,
                    ours,
                }),
                self.advert(),
            ];
            actions.extend(self.garp(self.cfg.garp_master_repeat));
            return actions;
        };
        let mut actions = vec![Action::Log(line)];
        actions.extend(self.enter_backup(reason, now));
        actions
    }

    fn tracker_changed(&mut self, index: usize, ok: bool, now: Instant) -> Vec<Action> {
        let status = if ok {
            TrackerStatus::Ok
        } else {
            TrackerStatus::Failed
        };
        match self.trackers.get_mut(index) {
            Some(slot) if *slot != status => *slot = status,
            _ => return Vec::new(),
        }
        let mut actions = self.reprioritize();
        if self.state == State::Initialize {
            return actions;
        }
        let Some(spec) = self.cfg.trackers.get(index) else {
            return actions;
        };
        let (name, kind) = (spec.name.clone(), spec.kind);
        match (self.state, self.fault_cause()) {
            (State::Backup | State::Master, Some(reason)) => {
                actions.extend(self.enter_fault(reason));
            }
            (State::Fault, None) => {
                let reason = Reason::TrackerRecovered { name, kind };
                actions.extend(if self.is_owner() {
                    self.become_master(State::Fault, reason, now)
                } else {
                    self.enter_backup(reason, now)
                });
            }
            _ => {}
        }
        actions
    }

    /// Recomputes the effective priority after a tracker or the configured priority changed.
    fn reprioritize(&mut self) -> Vec<Action> {
        let mut actions = Vec::new();
        let old = self.effective;
        let new = self.compute_priority();
        if new != old {
            self.effective = new;
            if self.state == State::Initialize {
                // Not running yet: the initial priority is not a change worth logging.
                return actions;
            }
            actions.push(Action::PriorityChanged { from: old, to: new });
            // keepalived moves the running down timer by the change in Skew_Time.
            if let Some(deadline) = self.master_down {
                let (old_skew, new_skew) = (self.skew_at(old), self.skew_at(new));
                self.master_down = Some(if new_skew >= old_skew {
                    deadline + (new_skew - old_skew)
                } else {
                    deadline
                        .checked_sub(old_skew - new_skew)
                        .unwrap_or(deadline)
                });
            }
        }
        actions
    }

    /// A reload changed the configured priority: the effective one follows, and a MASTER
    /// announces it at once (a BACKUP with a higher priority then preempts as usual).
    fn set_priority(&mut self, priority: u8, now: Instant) -> Vec<Action> {
        if priority == self.cfg.priority
            || priority == OWNER_PRIORITY
            || self.cfg.priority == OWNER_PRIORITY
        {
            return Vec::new();
        }
        self.cfg.priority = priority;
        let mut actions = self.reprioritize();
        if self.state == State::Master && !actions.is_empty() {
            actions.push(self.advert());
            self.adver = Some(now + self.cfg.advert_int);
        }
        actions
    }

    /// SIGHUP with a changed instance that keeps its interface, VRID and version (vrrp.md
    /// §10 "reload"): the new settings apply without a restart. Trackers keep their state by
    /// kind and name (new ones are neutral until they report); a MASTER stays MASTER unless a
    /// weight-0 tracker now fails, and sends one advert at once with the new settings, as
    /// keepalived's masters do on a reload; a BACKUP restarts its down timer with the new
    /// interval. Changes to or from priority 255 need a restart, not this.
    pub fn reconfigure(&mut self, cfg: MachineConfig, now: Instant) -> Vec<Action> {
        let statuses: Vec<TrackerStatus> = cfg
            .trackers
            .iter()
            .map(|spec| {
                let kept = self
                    .cfg
                    .trackers
                    .iter()
                    .position(|o| o.kind == spec.kind && o.name == spec.name)
                    .and_then(|i| self.trackers.get(i).copied());
                match kept {
                    Some(status) => status,
                    None if self.state == State::Initialize => TrackerStatus::Unknown,
                    None => TrackerStatus::Added,
                }
            })
            .collect();
        let timing_changed = cfg.advert_int != self.cfg.advert_int;
        let preempt_changed =
            cfg.preempt != self.cfg.preempt || cfg.preempt_delay != self.cfg.preempt_delay;
        let refresh_changed = cfg.garp_master_refresh != self.cfg.garp_master_refresh;
        self.trackers = statuses;
        self.cfg = cfg;
        if timing_changed && (self.cfg.version == Version::V2 || self.state != State::Backup) {
            // A v3 backup keeps the interval it learned from the master until the next advert.
            self.master_adver_int = self.cfg.advert_int;
        }
        if preempt_changed {
            self.preempt_since = None;
        }
        let mut actions = self.reprioritize();
        match (self.state, self.fault_cause()) {
            (State::Backup | State::Master, Some(reason)) => {
                actions.extend(self.enter_fault(reason));
            }
            (State::Fault, None) => {
                let reason = Reason::Reload;
                actions.extend(if self.is_owner() {
                    self.become_master(State::Fault, reason, now)
                } else {
                    self.enter_backup(reason, now)
                });
            }
            (State::Master, None) => {
                if refresh_changed {
                    self.garp_refresh = self.after(self.cfg.garp_master_refresh, now);
                }
                actions.push(self.advert());
                self.adver = Some(now + self.cfg.advert_int);
            }
            (State::Backup, None) if timing_changed => self.reset_down_timer(now),
            _ => {}
        }
        actions
    }

    fn shutdown(&mut self) -> Vec<Action> {
        let from = self.state;
        let mut actions = Vec::new();
        if from == State::Initialize {
            return actions;
        }
        if from == State::Master {
            // Let the backups take over after Skew_Time (RFC §6.4.3).
            actions.push(Action::SendAdvert { priority: 0 });
        }
        actions.push(Action::Transition {
            from,
            to: State::Initialize,
            reason: Reason::Shutdown,
        });
        if from == State::Master {
            actions.push(Action::RemoveVips);
        }
        actions.push(Action::Notify(NotifyState::Stop));
        self.clear_timers();
        self.state = State::Initialize;
        actions
    }

    /// keepalived order: advert, log, VIPs, GARPs, notify.
    fn become_master(&mut self, from: State, reason: Reason, now: Instant) -> Vec<Action> {
        self.clear_timers();
        self.state = State::Master;
        self.adver = Some(now + self.cfg.advert_int);
        self.garp_again = self.after(self.cfg.garp_master_delay, now);
        self.garp_refresh = self.after(self.cfg.garp_master_refresh, now);
        let mut actions = vec![
            self.advert(),
            Action::Transition {
                from,
                to: State::Master,
                reason,
            },
            Action::AddVips,
        ];
        actions.extend(self.garp(self.cfg.garp_master_repeat));
        actions.push(Action::Notify(NotifyState::Master));
        actions
    }

    /// From Initialize, Master (demoted: no priority-0 advert) or Fault.
    fn enter_backup(&mut self, reason: Reason, now: Instant) -> Vec<Action> {
        let from = self.state;
        self.clear_timers();
        self.state = State::Backup;
        self.reset_down_timer(now);
        let mut actions = vec![Action::Transition {
            from,
            to: State::Backup,
            reason,
        }];
        if from == State::Master {
            actions.push(Action::RemoveVips);
        }
        actions.push(Action::Notify(NotifyState::Backup));
        actions
    }

    fn enter_fault(&mut self, reason: Reason) -> Vec<Action> {
        let from = self.state;
        self.clear_timers();
        self.state = State::Fault;
        let mut actions = Vec::new();
        if from == State::Master {
            actions.push(Action::SendAdvert { priority: 0 });
        }
        actions.push(Action::Transition {
            from,
            to: State::Fault,
            reason,
        });
        if from == State::Master {
            actions.push(Action::RemoveVips);
        }
        actions.push(Action::Notify(NotifyState::Fault));
        actions
    }

    fn reset_down_timer(&mut self, now: Instant) {
        self.master_down = Some(now + self.master_down_interval());
        self.down_by_priority_zero = None;
        self.down_expired = false;
    }

    fn clear_timers(&mut self) {
        self.master_down = None;
        self.down_by_priority_zero = None;
        self.preempt_since = None;
        self.down_expired = false;
        self.adver = None;
        self.garp_again = None;
        self.garp_contested = None;
        self.garp_refresh = None;
    }

    fn advert(&self) -> Action {
        Action::SendAdvert {
            priority: self.effective,
        }
    }

    fn garp(&self, count: u32) -> Option<Action> {
        (count > 0).then_some(Action::SendGarp { count })
    }

    fn after(&self, delay: Duration, now: Instant) -> Option<Instant> {
        (!delay.is_zero()).then(|| now + delay)
    }

    /// A weight-0 tracker that fails, or a weight-0 script/backend that has not reported
    /// yet (keepalived holds FAULT until it has; interfaces report before startup).
    fn fault_cause(&self) -> Option<Reason> {
        self.cfg
            .trackers
            .iter()
            .zip(&self.trackers)
            .filter(|(spec, _)| spec.weight == 0)
            .find_map(|(spec, status)| {
                let (name, kind) = (spec.name.clone(), spec.kind);
                match (status, kind) {
                    (TrackerStatus::Failed, _) => Some(Reason::TrackerFailed { name, kind }),
                    (TrackerStatus::Unknown, TrackerKind::Script | TrackerKind::Backend) => {
                        Some(Reason::TrackerPending { name, kind })
                    }
                    _ => None,
                }
            })
    }

    /// vrrp.md §10: clamp(base + Σ, 1, 254); an owner is never adjusted. A tracker whose
    /// state is unknown adjusts nothing.
    fn compute_priority(&self) -> u8 {
        if self.is_owner() {
            return OWNER_PRIORITY;
        }
        let sum: i64 = self
            .cfg
            .trackers
            .iter()
            .zip(&self.trackers)
            .map(|(spec, status)| match status {
                TrackerStatus::Ok if spec.weight > 0 => i64::from(spec.weight),
                TrackerStatus::Failed if spec.weight < 0 => i64::from(spec.weight),
                _ => 0,
            })
            .sum();
        (i64::from(self.cfg.priority) + sum).clamp(1, 254) as u8
    }
}

/// Next periodic deadline: keep the cadence, but never schedule in the past.
fn next_after(deadline: Instant, period: Duration, now: Instant) -> Instant {
    let next = deadline + period;
    if next > now {
        next
    } else {
        now + period
    }
}

impl Machine {
    /// The interface got its first IPv4 address after start-up (the instance was held in
    /// FAULT until then): from now on it is our advert source and tie-break address.
    pub fn set_primary_ip(&mut self, ip: IpAddr) {
        self.cfg.primary_ip = ip;
    }

    /// Sync groups: while `hold` is set, an expired down timer does not make us MASTER
    /// (another member still hears a live master); see [`Event::GroupMaster`].
    pub fn set_group_hold(&mut self, hold: bool) {
        self.group_hold = hold;
    }

    /// MASTER, or a BACKUP whose master is gone (its down timer fired while held by the
    /// group): what the other members of a sync group wait for before going MASTER.
    pub fn wants_master(&self) -> bool {
        self.state == State::Master || (self.state == State::Backup && self.down_expired)
    }

    fn group_reason(&self) -> Reason {
        let name = self
            .cfg
            .trackers
            .iter()
            .find(|t| t.kind == TrackerKind::SyncGroup)
            .map(|t| t.name.clone())
            .unwrap_or_default();
        Reason::SyncGroup { name }
    }

    /// In FAULT (or about to be) only because of the sync group: no weight-0 tracker of its
    /// own fails.
    pub fn fault_is_by_group(&self) -> bool {
        matches!(
            self.fault_cause(),
            Some(Reason::TrackerFailed {
                kind: TrackerKind::SyncGroup,
                ..
            })
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{
        NotifyScripts, ScriptConfig, TrackBackend, TrackInterface, TrackScript, VirtualAddress,
    };
    use std::net::Ipv4Addr;

    const OURS: IpAddr = IpAddr::V4(Ipv4Addr::new(198, 51, 100, 11));
    const PEER_HIGH: IpAddr = IpAddr::V4(Ipv4Addr::new(198, 51, 100, 12));
    const PEER_LOW: IpAddr = IpAddr::V4(Ipv4Addr::new(198, 51, 100, 10));

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    fn cfg(priority: u8) -> MachineConfig {
        MachineConfig {
            version: Version::V2,
            vrid: 51,
            priority,
            advert_int: secs(1),
            preempt: true,
            preempt_delay: Duration::ZERO,
            initial_state: InitialState::Backup,
            garp_master_delay: secs(5),
            garp_master_repeat: 5,
            garp_master_refresh: Duration::ZERO,
            garp_master_refresh_repeat: 1,
            primary_ip: OURS,
            trackers: vec![TrackerSpec {
                name: "eth0".into(),
                kind: TrackerKind::OwnInterface,
                weight: 0,
            }],
        }
    }

    fn with_tracker(
        mut c: MachineConfig,
        name: &str,
        kind: TrackerKind,
        weight: i32,
    ) -> MachineConfig {
        c.trackers.push(TrackerSpec {
            name: name.into(),
            kind,
            weight,
        });
        c
    }

    /// A machine plus a fake clock origin.
    struct Bench {
        m: Machine,
        t0: Instant,
    }

    impl Bench {
        fn new(c: MachineConfig) -> Self {
            Bench {
                m: Machine::new(c),
                t0: Instant::now(),
            }
        }

        fn at(&self, d: Duration) -> Instant {
            self.t0 + d
        }

        fn start(c: MachineConfig) -> Self {
            let mut b = Self::new(c);
            let acts = b.ev(Duration::ZERO, Event::Startup);
            assert!(!acts.is_empty());
            b
        }

        fn ev(&mut self, d: Duration, e: Event) -> Vec<Action> {
            let now = self.at(d);
            self.m.handle(e, now)
        }

        fn advert(&mut self, d: Duration, src: IpAddr, priority: u8) -> Vec<Action> {
            self.ev(
                d,
                Event::Advert {
                    src,
                    priority,
                    advert_int: self.m.cfg.advert_int,
                },
            )
        }

        fn tick(&mut self, d: Duration) -> Vec<Action> {
            let now = self.at(d);
            self.m.handle_timeout(now)
        }

        fn deadline(&self) -> Option<Duration> {
            self.m.poll_timeout().map(|t| t - self.t0)
        }

        /// Start as a Backup and make it Master through its down timer.
        fn master(c: MachineConfig) -> Self {
            let mut b = Self::start(c);
            let mdi = b.m.master_down_interval();
            b.tick(mdi);
            assert_eq!(b.m.state(), State::Master);
            b
        }
    }

    #[test]
    fn a_sync_group_member_waits_for_the_others_and_moves_with_them() {
        let mut b = Bench::start(cfg(100));
        let mdi = b.m.master_down_interval();
        // Our master is gone but another member still hears its own: held in BACKUP.
        b.m.set_group_hold(true);
        assert!(!b.m.wants_master());
        assert_eq!(b.tick(mdi), vec![Action::Log(LogLine::HeldByGroup)]);
        assert_eq!(b.m.state(), State::Backup);
        assert!(b.m.wants_master());
        assert_eq!(b.deadline(), Some(mdi * 2));
        // Held again: logged once per episode.
        assert!(b.tick(mdi * 2).is_empty());
        // A live master shows up again: not ready any more, and the group's go is ignored.
        b.advert(mdi * 2 + ms(10), PEER_HIGH, 150);
        assert!(!b.m.wants_master());
        assert!(b.ev(mdi * 2 + ms(20), Event::GroupMaster).is_empty());
        // It goes; held once more, then the last member's go takes it to MASTER at once.
        let t = mdi * 3 + ms(10);
        assert_eq!(b.tick(t), vec![Action::Log(LogLine::HeldByGroup)]);
        let reason = Reason::SyncGroup {
            name: String::new(),
        };
        assert_eq!(
            b.ev(t + ms(5), Event::GroupMaster),
            becoming_master(State::Backup, reason.clone(), 100)
        );
        // Without the hold the timer works as ever.
        let mut free = Bench::start(cfg(100));
        free.m.set_group_hold(false);
        free.tick(mdi);
        assert_eq!(free.m.state(), State::Master);
        // A MASTER told that another member stepped down follows it; a BACKUP ignores it.
        assert_eq!(
            b.ev(t + ms(50), Event::GroupBackup),
            vec![
                Action::Transition {
                    from: State::Master,
                    to: State::Backup,
                    reason
                },
                Action::RemoveVips,
                Action::Notify(NotifyState::Backup),
            ]
        );
        assert!(b.ev(t + ms(60), Event::GroupBackup).is_empty());
        assert_eq!(b.m.state(), State::Backup);
        assert!(!b.m.wants_master());
    }

    fn becoming_master(from: State, reason: Reason, priority: u8) -> Vec<Action> {
        vec![
            Action::SendAdvert { priority },
            Action::Transition {
                from,
                to: State::Master,
                reason,
            },
            Action::AddVips,
            Action::SendGarp { count: 5 },
            Action::Notify(NotifyState::Master),
        ]
    }

    fn own_if_down() -> Reason {
        Reason::TrackerFailed {
            name: "eth0".into(),
            kind: TrackerKind::OwnInterface,
        }
    }

    /// The table in vrrp.md §5 rounds to the nearest millisecond.
    fn round_ms(d: Duration) -> u128 {
        (d.as_nanos() + 500_000) / 1_000_000
    }

    #[test]
    fn skew_time_and_master_down_interval_match_the_table() {
        // vrrp.md §5, to the millisecond (and exact in 1/256 s).
        for (prio, skew_ms, mdi_ms) in [
            (1, 996, 3996),
            (50, 805, 3805),
            (100, 609, 3609),
            (150, 414, 3414),
            (200, 219, 3219),
            (254, 8, 3008),
        ] {
            assert_eq!(round_ms(skew_time(prio)), skew_ms, "prio {prio}");
            assert_eq!(
                round_ms(master_down_interval(secs(1), prio)),
                mdi_ms,
                "prio {prio}"
            );
        }
        assert_eq!(skew_time(100), Duration::from_nanos(609_375_000));
        assert_eq!(
            master_down_interval(secs(3), 100),
            ms(9609) + Duration::from_nanos(375_000)
        );
        let m = Machine::new(cfg(100));
        assert_eq!(m.skew_time(), Duration::from_nanos(609_375_000));
        assert_eq!(
            m.master_down_interval(),
            Duration::from_nanos(3_609_375_000)
        );
    }

    fn v3(priority: u8, advert_cs: u16) -> MachineConfig {
        MachineConfig {
            version: Version::V3,
            advert_int: centiseconds(advert_cs),
            ..cfg(priority)
        }
    }

    fn ns(n: u64) -> Duration {
        Duration::from_nanos(n)
    }

    /// RFC 5798 §6.1 at 100 ms: Skew_Time = ((256 − p) × 100 ms) / 256, Master_Down_Interval =
    /// 3 × 100 ms + Skew_Time; v2's skew does not scale with the interval, v3's does.
    #[test]
    fn v3_skew_and_master_down_interval_at_100ms() {
        let mai = ms(100);
        for (prio, skew, mdi) in [
            (100u8, ns(60_937_500), ns(360_937_500)),
            (254, ns(781_250), ns(300_781_250)),
            (1, ns(99_609_375), ns(399_609_375)),
            (200, ns(21_875_000), ns(321_875_000)),
        ] {
            assert_eq!(skew_time_v3(prio, mai), skew, "prio {prio}");
            assert_eq!(master_down_interval_v3(mai, prio), mdi, "prio {prio}");
        }
        let m = Machine::new(v3(100, 10));
        assert_eq!(m.skew_time(), ns(60_937_500));
        assert_eq!(m.master_down_interval(), ns(360_937_500));
        // v2 at 3 s: the skew is still (256 − p)/256 s.
        let v2 = Machine::new(MachineConfig {
            advert_int: secs(3),
            ..cfg(100)
        });
        assert_eq!(v2.master_down_interval(), ms(9609) + ns(375_000));
    }

    #[test]
    fn v3_backup_takes_over_after_master_down_interval_at_100ms() {
        let mut b = Bench::start(v3(100, 10));
        assert_eq!(b.deadline(), Some(ns(360_937_500)));
        // The master's adverts every 100 ms keep pushing the deadline.
        for k in 1..=5u64 {
            b.advert(ms(100 * k), PEER_HIGH, 150);
            assert_eq!(b.deadline(), Some(ms(100 * k) + ns(360_937_500)));
        }
        // Silence after the last one at 500 ms: takeover exactly at 860.9375 ms, not before.
        assert!(b.tick(ms(500) + ns(360_937_499)).is_empty());
        let acts = b.tick(ms(500) + ns(360_937_500));
        assert_eq!(
            acts.first(),
            Some(&Action::Log(LogLine::ReceiveTimeout)),
            "{acts:?}"
        );
        assert_eq!(b.m.state(), State::Master);
        // As master it advertises at its own 100 ms.
        assert_eq!(b.deadline(), Some(ms(600) + ns(360_937_500)));
    }

    #[test]
    fn v3_backup_learns_master_adver_interval_and_v2_does_not() {
        // Our own interval is 1 s; the master advertises every 100 ms.
        let mut b = Bench::start(v3(100, 100));
        assert_eq!(b.deadline(), Some(ns(3_609_375_000)));
        let learned = |b: &mut Bench, t: Duration, cs: u64| {
            b.ev(
                t,
                Event::Advert {
                    src: PEER_HIGH,
                    priority: 150,
                    advert_int: ms(10 * cs),
                },
            )
        };
        learned(&mut b, secs(1), 10);
        assert_eq!(b.m.master_adver_int(), ms(100));
        assert_eq!(b.deadline(), Some(secs(1) + ns(360_937_500)));
        // A master that slows down to 2 s is followed too.
        learned(&mut b, secs(1) + ms(100), 200);
        assert_eq!(
            b.deadline(),
            Some(secs(1) + ms(100) + secs(6) + ns(1_218_750_000))
        );
        // A lower-priority advert that we discard (preempt) teaches nothing.
        b.ev(
            secs(2),
            Event::Advert {
                src: PEER_LOW,
                priority: 50,
                advert_int: ms(50),
            },
        );
        assert_eq!(b.m.master_adver_int(), secs(2));
        // v2 keeps its own (validation dropped any other interval before).
        let mut v2 = Bench::start(cfg(100));
        v2.ev(
            secs(1),
            Event::Advert {
                src: PEER_HIGH,
                priority: 150,
                advert_int: ms(100),
            },
        );
        assert_eq!(v2.m.master_adver_int(), secs(1));
        assert_eq!(v2.deadline(), Some(secs(1) + ns(3_609_375_000)));
    }

    #[test]
    fn v3_priority_zero_takeover_after_skew_at_100ms() {
        let mut b = Bench::start(v3(100, 10));
        b.advert(ms(100), PEER_HIGH, 150);
        b.advert(ms(150), PEER_HIGH, 0);
        assert_eq!(b.deadline(), Some(ms(150) + ns(60_937_500)));
        b.tick(ms(150) + ns(60_937_500));
        assert_eq!(b.m.state(), State::Master);
    }

    /// keepalived 2.2 pushes its advert timer back on every packet for its VRID; here no
    /// received packet moves it: with a lower-priority peer advertising every 137 ms, the
    /// periodic adverts still leave every 100 ms (the answers are extra adverts).
    #[test]
    fn received_adverts_never_move_a_masters_own_advert_timer() {
        let mut b = Bench::master(v3(100, 10));
        let start = b.deadline().expect("advert timer");
        let mut periodic = Vec::new();
        let mut next_junk = start + ms(7);
        while periodic.len() < 40 {
            let due = b.deadline().expect("advert timer");
            if next_junk < due {
                for a in b.advert(next_junk, PEER_LOW, 50) {
                    assert!(matches!(
                        a,
                        Action::Log(_) | Action::SendAdvert { .. } | Action::SendGarp { .. }
                    ));
                }
                next_junk += ms(137);
                continue;
            }
            if b.tick(due).contains(&Action::SendAdvert { priority: 100 }) {
                periodic.push(due);
            }
        }
        assert_eq!(b.m.state(), State::Master);
        for w in periodic.windows(2) {
            assert_eq!(w[1] - w[0], ms(100));
        }
    }

    #[test]
    fn startup_enters_backup_with_down_timer() {
        let mut b = Bench::new(cfg(100));
        assert_eq!(b.m.state(), State::Initialize);
        assert_eq!(b.m.poll_timeout(), None);
        let acts = b.ev(Duration::ZERO, Event::Startup);
        assert_eq!(
            acts,
            vec![
                Action::Transition {
                    from: State::Initialize,
                    to: State::Backup,
                    reason: Reason::Init
                },
                Action::Notify(NotifyState::Backup)
            ]
        );
        assert_eq!(b.deadline(), Some(Duration::from_nanos(3_609_375_000)));
        // A second Startup is ignored.
        assert!(b.ev(secs(1), Event::Startup).is_empty());
    }

    #[test]
    fn backup_takes_over_after_master_down_interval() {
        let mut b = Bench::start(cfg(100));
        let mdi = b.m.master_down_interval();
        assert!(b.tick(mdi - ms(1)).is_empty());
        assert_eq!(b.m.state(), State::Backup);
        let acts = b.tick(mdi);
        let mut expected = vec![Action::Log(LogLine::ReceiveTimeout)];
        expected.extend(becoming_master(State::Backup, Reason::MasterDownTimer, 100));
        assert_eq!(acts, expected);
        assert_eq!(b.m.state(), State::Master);
        // Adver_Timer, then adverts every second.
        assert_eq!(b.deadline(), Some(mdi + secs(1)));
        assert_eq!(
            b.tick(mdi + secs(1)),
            vec![Action::SendAdvert { priority: 100 }]
        );
        assert_eq!(b.deadline(), Some(mdi + secs(2)));
    }

    #[test]
    fn equal_priority_backup_resets_timer() {
        let mut b = Bench::start(cfg(100));
        assert!(b.advert(secs(2), PEER_LOW, 100).is_empty());
        assert_eq!(b.deadline(), Some(secs(2) + b.m.master_down_interval()));
        // No tie-break in Backup: a lower address at equal priority still resets it.
        assert!(b.advert(secs(3), PEER_LOW, 100).is_empty());
        assert_eq!(b.deadline(), Some(secs(3) + b.m.master_down_interval()));
        assert!(b.advert(secs(4), PEER_HIGH, 200).is_empty());
        assert_eq!(b.deadline(), Some(secs(4) + b.m.master_down_interval()));
    }

    #[test]
    fn preempting_backup_discards_lower_advert_and_takes_over() {
        let mut b = Bench::start(cfg(100));
        let mdi = b.m.master_down_interval();
        let acts = b.advert(secs(1), PEER_LOW, 90);
        assert_eq!(
            acts,
            vec![Action::Log(LogLine::BackupDiscardedLower {
                from: PEER_LOW,
                priority: 90
            })]
        );
        assert_eq!(b.deadline(), Some(mdi), "timer must keep running");
        b.advert(secs(2), PEER_LOW, 90);
        b.advert(secs(3), PEER_LOW, 90);
        b.tick(mdi);
        assert_eq!(b.m.state(), State::Master);
    }

    #[test]
    fn nopreempt_backup_resets_timer_on_lower_advert() {
        let mut c = cfg(100);
        c.preempt = false;
        let mut b = Bench::start(c);
        for s in 1..10 {
            assert!(b.advert(secs(s), PEER_LOW, 50).is_empty());
            assert!(b.tick(secs(s) + ms(500)).is_empty());
        }
        assert_eq!(b.m.state(), State::Backup);
        assert_eq!(b.deadline(), Some(secs(9) + b.m.master_down_interval()));
    }

    #[test]
    fn preempt_delay_delays_takeover_by_delay_plus_mdi() {
        let mut c = cfg(100);
        c.preempt_delay = secs(10);
        let mut b = Bench::start(c);
        let mdi = b.m.master_down_interval();
        // Lower-priority master seen from t=1 on, every second.
        let mut t = 1;
        loop {
            let acts = b.advert(secs(t), PEER_LOW, 50);
            if t < 11 {
                assert!(acts.is_empty(), "tolerated at t={t}");
                assert_eq!(b.deadline(), Some(secs(t) + mdi));
            } else {
                assert_eq!(acts.len(), 1, "discarded at t={t}");
            }
            let acts = b.tick(secs(t) + ms(999));
            if !acts.is_empty() {
                break;
            }
            t += 1;
        }
        // Last accepted advert at t=10 (< 1 + 10), so the timer fires at 10 + MDI = 13.6 s:
        // not by 12.999 s, by 13.999 s.
        assert_eq!(b.m.state(), State::Master);
        assert_eq!(t, 13);
        assert!(secs(10) + mdi > secs(12) + ms(999));
    }

    #[test]
    fn preempt_delay_is_cancelled_by_equal_or_higher_advert() {
        let mut c = cfg(100);
        c.preempt_delay = secs(10);
        let mut b = Bench::start(c);
        let mdi = b.m.master_down_interval();
        for t in 1..=5 {
            assert!(b.advert(secs(t), PEER_LOW, 50).is_empty());
        }
        assert!(b.advert(secs(6), PEER_HIGH, 100).is_empty());
        // A new run of lower adverts starts the delay again from t=7.
        for t in 7..17 {
            assert!(b.advert(secs(t), PEER_LOW, 50).is_empty(), "t={t}");
        }
        assert_eq!(b.advert(secs(17), PEER_LOW, 50).len(), 1);
        assert_eq!(b.deadline(), Some(secs(16) + mdi));
    }

    #[test]
    fn priority_zero_advert_gives_fast_takeover_after_skew() {
        let mut b = Bench::start(cfg(100));
        b.advert(secs(1), PEER_HIGH, 200);
        let acts = b.advert(secs(2), PEER_HIGH, 0);
        assert_eq!(acts, vec![Action::Log(LogLine::BackupReceivedPriorityZero)]);
        let skew = b.m.skew_time();
        assert_eq!(b.deadline(), Some(secs(2) + skew));
        assert!(b.tick(secs(2) + skew - ms(1)).is_empty());
        let acts = b.tick(secs(2) + skew);
        let mut expected = vec![Action::Log(LogLine::ReceiveTimeout)];
        expected.extend(becoming_master(
            State::Backup,
            Reason::PriorityZeroAdvert { from: PEER_HIGH },
            100,
        ));
        assert_eq!(acts, expected);
    }

    #[test]
    fn priority_zero_timer_is_replaced_by_a_later_normal_advert() {
        let mut b = Bench::start(cfg(100));
        b.advert(secs(1), PEER_HIGH, 0);
        b.advert(secs(1) + ms(100), PEER_LOW, 150);
        assert_eq!(
            b.deadline(),
            Some(secs(1) + ms(100) + b.m.master_down_interval())
        );
        b.tick(secs(10));
        assert_eq!(b.m.state(), State::Master);
    }

    #[test]
    fn master_answers_priority_zero_with_immediate_advert() {
        let mut b = Bench::master(cfg(100));
        let cadence = b.deadline();
        let acts = b.advert(secs(5) + ms(300), PEER_LOW, 0);
        assert_eq!(
            acts,
            vec![
                Action::Log(LogLine::MasterReceivedPriorityZero),
                Action::SendAdvert { priority: 100 }
            ]
        );
        assert_eq!(b.m.state(), State::Master);
        // The answer is an extra advert: the periodic one keeps its time.
        assert_eq!(b.deadline(), cadence);
    }

    #[test]
    fn master_yields_to_higher_priority() {
        let mut b = Bench::master(cfg(100));
        let acts = b.advert(secs(5), PEER_LOW, 150);
        assert_eq!(
            acts,
            vec![
                Action::Log(LogLine::MasterReceivedHigher {
                    from: PEER_LOW,
                    priority: 150,
                    ours: 100
                }),
                Action::Transition {
                    from: State::Master,
                    to: State::Backup,
                    reason: Reason::HigherPriorityAdvert {
                        from: PEER_LOW,
                        priority: 150
                    }
                },
                Action::RemoveVips,
                Action::Notify(NotifyState::Backup),
            ]
        );
        assert_eq!(b.m.state(), State::Backup);
        // Adver and GARP timers are gone; only the down timer runs.
        assert_eq!(b.deadline(), Some(secs(5) + b.m.master_down_interval()));
    }

    #[test]
    fn master_tie_break_loses_to_higher_address() {
        let mut b = Bench::master(cfg(100));
        let acts = b.advert(secs(5), PEER_HIGH, 100);
        assert_eq!(
            acts[0],
            Action::Log(LogLine::MasterReceivedSameHigherIp {
                from: PEER_HIGH,
                priority: 100
            })
        );
        assert_eq!(
            acts[1],
            Action::Transition {
                from: State::Master,
                to: State::Backup,
                reason: Reason::SamePriorityHigherIp {
                    from: PEER_HIGH,
                    priority: 100
                }
            }
        );
        assert_eq!(b.m.state(), State::Backup);
    }

    #[test]
    fn master_tie_break_wins_against_lower_address_and_compares_unsigned() {
        let mut b = Bench::master(cfg(100));
        b.advert(secs(5), PEER_LOW, 100);
        assert_eq!(b.m.state(), State::Master);
        // 10.0.0.1 < 198.51.100.11 < 200.0.0.1 as unsigned numbers (200.x is negative as i32).
        let mut b = Bench::master(cfg(100));
        b.advert(secs(5), Ipv4Addr::new(10, 0, 0, 1).into(), 100);
        assert_eq!(b.m.state(), State::Master);
        b.advert(secs(6), Ipv4Addr::new(200, 0, 0, 1).into(), 100);
        assert_eq!(b.m.state(), State::Backup);
    }

    #[test]
    fn master_answers_lower_advert_with_advert_and_garp_burst() {
        let mut b = Bench::master(cfg(100));
        let t = secs(20) + ms(250);
        b.tick(t - ms(100));
        let cadence = b.deadline();
        let acts = b.advert(t, PEER_HIGH, 90);
        assert_eq!(
            acts,
            vec![
                Action::Log(LogLine::MasterReceivedLower {
                    from: PEER_HIGH,
                    priority: 90,
                    ours: 100
                }),
                Action::SendAdvert { priority: 100 },
                Action::SendGarp { count: 5 },
            ]
        );
        assert_eq!(b.m.state(), State::Master);
        // One more burst once the other box has stepped down and dropped the VIP (its own
        // ARPs may have reached the clients after ours).
        assert_eq!(b.deadline(), Some(t + CONTESTED_GARP_AFTER));
        assert_eq!(
            b.tick(t + CONTESTED_GARP_AFTER),
            vec![Action::SendGarp { count: 5 }]
        );
        // The periodic adverts keep their cadence (the answer is an extra advert); a second
        // GARP burst follows after the delay.
        assert_eq!(b.deadline(), cadence);
        assert_eq!(cadence, Some(t - ms(100) + secs(1)));
        for s in 1..5 {
            assert_eq!(
                b.tick(t - ms(100) + secs(s)),
                vec![Action::SendAdvert { priority: 100 }]
            );
        }
        assert_eq!(
            b.tick(t + secs(5)),
            vec![
                Action::SendAdvert { priority: 100 },
                Action::SendGarp { count: 5 }
            ]
        );
    }

    #[test]
    fn priority_change_in_backup_moves_deadline_by_the_difference() {
        let c = with_tracker(cfg(100), "chk_web", TrackerKind::Script, 50);
        let mut b = Bench::new(c);
        b.ev(Duration::ZERO, Event::Tracker { index: 0, ok: true });
        b.ev(Duration::ZERO, Event::Startup);
        assert_eq!(b.deadline(), Some(Duration::from_nanos(3_609_375_000)));
        let acts = b.ev(secs(1), Event::Tracker { index: 1, ok: true });
        assert_eq!(acts, vec![Action::PriorityChanged { from: 100, to: 150 }]);
        assert_eq!(b.m.effective_priority(), 150);
        // Skew 0.609375 -> 0.4140625: the deadline moves 0.1953125 s earlier, not reset.
        assert_eq!(b.deadline(), Some(Duration::from_nanos(3_414_062_500)));
        let acts = b.ev(
            secs(2),
            Event::Tracker {
                index: 1,
                ok: false,
            },
        );
        assert_eq!(acts, vec![Action::PriorityChanged { from: 150, to: 100 }]);
        assert_eq!(b.deadline(), Some(Duration::from_nanos(3_609_375_000)));
    }

    #[test]
    fn reload_priority_change_applies_in_place() {
        // BACKUP: the effective priority follows, trackers still count on top of it.
        let c = with_tracker(cfg(100), "chk_web", TrackerKind::Script, 20);
        let mut b = Bench::new(c);
        b.ev(Duration::ZERO, Event::Tracker { index: 0, ok: true });
        b.ev(Duration::ZERO, Event::Tracker { index: 1, ok: true });
        b.ev(Duration::ZERO, Event::Startup);
        assert_eq!(b.m.effective_priority(), 120);
        let acts = b.ev(secs(1), Event::SetPriority(150));
        assert_eq!(acts, vec![Action::PriorityChanged { from: 120, to: 170 }]);
        assert!(b.ev(secs(1), Event::SetPriority(150)).is_empty());
        // MASTER: announced at once.
        let mut m = Bench::master(cfg(100));
        let mdi = Duration::from_nanos(3_609_375_000);
        let acts = m.ev(mdi + ms(100), Event::SetPriority(50));
        assert_eq!(
            acts,
            vec![
                Action::PriorityChanged { from: 100, to: 50 },
                Action::SendAdvert { priority: 50 }
            ]
        );
        // To or from the owner's 255: not in place (a restart changes owner semantics).
        assert!(m.ev(mdi + ms(200), Event::SetPriority(255)).is_empty());
        assert_eq!(m.m.effective_priority(), 50);
    }

    #[test]
    fn reload_keeps_a_master_master_with_one_advert_and_no_priority_zero() {
        let mut m = Bench::master(with_tracker(cfg(100), "eth1", TrackerKind::Interface, -30));
        let mdi = Duration::from_nanos(3_609_375_000);
        let at = mdi + ms(300);
        // New interval, a new weight-0 script that has not run, the interface re-weighted.
        let mut n = with_tracker(cfg(100), "eth1", TrackerKind::Interface, -40);
        n = with_tracker(n, "chk_new", TrackerKind::Script, 0);
        n.advert_int = secs(2);
        let acts = m.m.reconfigure(n, m.at(at));
        assert_eq!(acts, vec![Action::SendAdvert { priority: 100 }]);
        assert_eq!(m.m.state(), State::Master);
        assert_eq!(m.m.poll_timeout(), Some(m.at(at + secs(2))));
        // The new script's first failure is what takes it to FAULT (weight 0), as usual.
        let acts = m.ev(
            at + ms(10),
            Event::Tracker {
                index: 2,
                ok: false,
            },
        );
        assert!(
            acts.contains(&Action::SendAdvert { priority: 0 }),
            "{acts:?}"
        );
        assert_eq!(m.m.state(), State::Fault);
        // Dropping the failing tracker on the next reload brings it back to BACKUP.
        let acts = m.m.reconfigure(cfg(100), m.at(at + secs(1)));
        assert_eq!(m.m.state(), State::Backup, "{acts:?}");
        assert!(acts.iter().all(|a| !matches!(a, Action::SendAdvert { .. })));
    }

    #[test]
    fn reload_keeps_tracker_states_by_name_and_reweighs_them() {
        let c = with_tracker(cfg(100), "chk_a", TrackerKind::Script, -20);
        let c = with_tracker(c, "chk_b", TrackerKind::Script, 10);
        let mut b = Bench::new(c);
        b.ev(Duration::ZERO, Event::Tracker { index: 0, ok: true });
        b.ev(
            Duration::ZERO,
            Event::Tracker {
                index: 1,
                ok: false,
            },
        );
        b.ev(Duration::ZERO, Event::Tracker { index: 2, ok: true });
        b.ev(Duration::ZERO, Event::Startup);
        assert_eq!(b.m.effective_priority(), 90);
        // chk_b removed, chk_a (still failing) now weighs -50: 100 - 50.
        let n = with_tracker(cfg(100), "chk_a", TrackerKind::Script, -50);
        let acts = b.m.reconfigure(n, b.at(secs(1)));
        assert_eq!(acts, vec![Action::PriorityChanged { from: 90, to: 50 }]);
        assert_eq!(b.m.state(), State::Backup);
        // A weight-0 tracker that already fails takes a BACKUP to FAULT at once.
        let n = with_tracker(cfg(100), "chk_a", TrackerKind::Script, 0);
        b.m.reconfigure(n, b.at(secs(2)));
        assert_eq!(b.m.state(), State::Fault);
    }

    #[test]
    fn master_carries_new_priority_in_next_advert() {
        let c = with_tracker(cfg(100), "eth1", TrackerKind::Interface, -30);
        let mut b = Bench::master(c);
        let mdi = Duration::from_nanos(3_609_375_000);
        let acts = b.ev(
            mdi + ms(100),
            Event::Tracker {
                index: 1,
                ok: false,
            },
        );
        assert_eq!(acts, vec![Action::PriorityChanged { from: 100, to: 70 }]);
        assert_eq!(b.m.state(), State::Master);
        assert_eq!(
            b.tick(mdi + secs(1)),
            vec![Action::SendAdvert { priority: 70 }]
        );
    }

    #[test]
    fn weights_follow_sign_rules_and_clamp_to_1_254() {
        let c = with_tracker(
            with_tracker(cfg(250), "up", TrackerKind::Interface, 10),
            "down",
            TrackerKind::Interface,
            -20,
        );
        let mut b = Bench::start(c);
        // Unknown trackers adjust nothing.
        assert_eq!(b.m.effective_priority(), 250);
        b.ev(secs(1), Event::Tracker { index: 1, ok: true });
        assert_eq!(b.m.effective_priority(), 254, "250 + 10 clamps to 254");
        b.ev(secs(1), Event::Tracker { index: 2, ok: true });
        assert_eq!(
            b.m.effective_priority(),
            254,
            "negative weight while OK: nothing"
        );
        b.ev(
            secs(1),
            Event::Tracker {
                index: 2,
                ok: false,
            },
        );
        assert_eq!(b.m.effective_priority(), 240);
        b.ev(
            secs(1),
            Event::Tracker {
                index: 1,
                ok: false,
            },
        );
        assert_eq!(
            b.m.effective_priority(),
            230,
            "positive weight while failing: nothing"
        );

        let c = with_tracker(cfg(5), "chk", TrackerKind::Script, -20);
        let mut b = Bench::start(c);
        b.ev(
            secs(1),
            Event::Tracker {
                index: 1,
                ok: false,
            },
        );
        assert_eq!(b.m.effective_priority(), 1, "5 - 20 clamps to 1");
        assert_eq!(
            b.m.state(),
            State::Backup,
            "a weighted tracker never causes FAULT"
        );
    }

    #[test]
    fn repeated_tracker_report_is_not_a_change() {
        let c = with_tracker(cfg(100), "chk", TrackerKind::Script, 10);
        let mut b = Bench::start(c);
        assert_eq!(
            b.ev(secs(1), Event::Tracker { index: 1, ok: true }).len(),
            1
        );
        assert!(b
            .ev(secs(2), Event::Tracker { index: 1, ok: true })
            .is_empty());
        // Out-of-range indices are ignored, not a panic.
        assert!(b
            .ev(
                secs(2),
                Event::Tracker {
                    index: 99,
                    ok: false
                }
            )
            .is_empty());
    }

    #[test]
    fn fault_from_backup_and_back_with_fresh_timer() {
        let mut b = Bench::start(cfg(100));
        let acts = b.ev(
            secs(1),
            Event::Tracker {
                index: 0,
                ok: false,
            },
        );
        assert_eq!(
            acts,
            vec![
                Action::Transition {
                    from: State::Backup,
                    to: State::Fault,
                    reason: own_if_down()
                },
                Action::Notify(NotifyState::Fault)
            ]
        );
        assert_eq!(b.m.poll_timeout(), None, "FAULT runs no timer");
        // Adverts are ignored in FAULT, timers never fire.
        assert!(b.advert(secs(2), PEER_LOW, 0).is_empty());
        assert!(b.tick(secs(30)).is_empty());
        assert_eq!(b.m.state(), State::Fault);
        let acts = b.ev(secs(40), Event::Tracker { index: 0, ok: true });
        assert_eq!(
            acts,
            vec![
                Action::Transition {
                    from: State::Fault,
                    to: State::Backup,
                    reason: Reason::TrackerRecovered {
                        name: "eth0".into(),
                        kind: TrackerKind::OwnInterface
                    }
                },
                Action::Notify(NotifyState::Backup)
            ]
        );
        assert_eq!(b.deadline(), Some(secs(40) + b.m.master_down_interval()));
    }

    #[test]
    fn fault_from_master_sends_priority_zero_and_removes_vips() {
        let c = with_tracker(cfg(100), "chk_web", TrackerKind::Script, 0);
        let mut b = Bench::new(c);
        b.ev(Duration::ZERO, Event::Tracker { index: 1, ok: true });
        b.ev(Duration::ZERO, Event::Startup);
        let mdi = b.m.master_down_interval();
        b.tick(mdi);
        assert_eq!(b.m.state(), State::Master);
        let acts = b.ev(
            secs(10),
            Event::Tracker {
                index: 1,
                ok: false,
            },
        );
        assert_eq!(
            acts,
            vec![
                Action::SendAdvert { priority: 0 },
                Action::Transition {
                    from: State::Master,
                    to: State::Fault,
                    reason: Reason::TrackerFailed {
                        name: "chk_web".into(),
                        kind: TrackerKind::Script
                    }
                },
                Action::RemoveVips,
                Action::Notify(NotifyState::Fault),
            ]
        );
        assert_eq!(b.m.poll_timeout(), None, "adverts and GARPs stop");
        let acts = b.ev(secs(11), Event::Tracker { index: 1, ok: true });
        assert_eq!(
            acts[0],
            Action::Transition {
                from: State::Fault,
                to: State::Backup,
                reason: Reason::TrackerRecovered {
                    name: "chk_web".into(),
                    kind: TrackerKind::Script
                }
            }
        );
        assert_eq!(b.m.state(), State::Backup);
    }

    #[test]
    fn weight_zero_script_holds_fault_at_startup_until_first_report() {
        let c = with_tracker(cfg(100), "chk_web", TrackerKind::Script, 0);
        let mut b = Bench::new(c);
        let acts = b.ev(Duration::ZERO, Event::Startup);
        assert_eq!(
            acts,
            vec![
                Action::Transition {
                    from: State::Initialize,
                    to: State::Fault,
                    reason: Reason::TrackerPending {
                        name: "chk_web".into(),
                        kind: TrackerKind::Script
                    }
                },
                Action::Notify(NotifyState::Fault)
            ]
        );
        b.ev(secs(1), Event::Tracker { index: 1, ok: true });
        assert_eq!(b.m.state(), State::Backup);
        assert_eq!(b.deadline(), Some(secs(1) + b.m.master_down_interval()));
    }

    #[test]
    fn unknown_interface_does_not_hold_fault_but_a_down_one_does() {
        let c = with_tracker(cfg(100), "eth1", TrackerKind::Interface, 0);
        let b = Bench::start(c.clone());
        assert_eq!(b.m.state(), State::Backup);
        let mut b = Bench::new(c);
        b.ev(
            Duration::ZERO,
            Event::Tracker {
                index: 0,
                ok: false,
            },
        );
        assert!(b.m.poll_timeout().is_none());
        let acts = b.ev(Duration::ZERO, Event::Startup);
        assert_eq!(
            acts[0],
            Action::Transition {
                from: State::Initialize,
                to: State::Fault,
                reason: own_if_down()
            }
        );
    }

    #[test]
    fn owner_starts_master_at_once_and_ignores_weights() {
        let c = with_tracker(cfg(255), "chk", TrackerKind::Script, -50);
        let mut b = Bench::new(c);
        let acts = b.ev(Duration::ZERO, Event::Startup);
        assert_eq!(acts, becoming_master(State::Initialize, Reason::Init, 255));
        assert_eq!(b.deadline(), Some(secs(1)));
        assert!(b
            .ev(
                secs(1),
                Event::Tracker {
                    index: 1,
                    ok: false
                }
            )
            .is_empty());
        assert_eq!(b.m.effective_priority(), 255);
        assert_eq!(b.m.skew_time(), Duration::from_nanos(3_906_250));
        // FAULT still applies, and recovery returns straight to Master.
        let acts = b.ev(
            secs(2),
            Event::Tracker {
                index: 0,
                ok: false,
            },
        );
        assert_eq!(acts[0], Action::SendAdvert { priority: 0 });
        assert_eq!(b.m.state(), State::Fault);
        let acts = b.ev(secs(3), Event::Tracker { index: 0, ok: true });
        assert_eq!(
            acts,
            becoming_master(
                State::Fault,
                Reason::TrackerRecovered {
                    name: "eth0".into(),
                    kind: TrackerKind::OwnInterface
                },
                255
            )
        );
    }

    #[test]
    fn state_master_below_255_starts_in_backup() {
        let mut c = cfg(200);
        c.initial_state = InitialState::Master;
        let b = Bench::start(c);
        assert_eq!(b.m.state(), State::Backup);
        assert_eq!(b.deadline(), Some(b.m.master_down_interval()));
    }

    #[test]
    fn garp_schedule_delay_refresh_and_cancel_on_leaving_master() {
        let mut c = cfg(100);
        c.garp_master_refresh = secs(30);
        let mut b = Bench::master(c);
        let t = b.m.master_down_interval(); // became Master here
                                            // Second burst after garp_master_delay (5 s), alongside that second's advert.
        assert_eq!(
            b.tick(t + secs(4)),
            vec![Action::SendAdvert { priority: 100 }]
        );
        assert_eq!(
            b.tick(t + secs(5)),
            vec![
                Action::SendAdvert { priority: 100 },
                Action::SendGarp { count: 5 }
            ]
        );
        for s in 6..30 {
            assert_eq!(
                b.tick(t + secs(s)),
                vec![Action::SendAdvert { priority: 100 }]
            );
        }
        // Refresh: one GARP per VIP every 30 s.
        assert_eq!(
            b.tick(t + secs(30)),
            vec![
                Action::SendAdvert { priority: 100 },
                Action::SendGarp { count: 1 }
            ]
        );
        for s in 31..60 {
            b.tick(t + secs(s));
        }
        assert_eq!(
            b.tick(t + secs(60)),
            vec![
                Action::SendAdvert { priority: 100 },
                Action::SendGarp { count: 1 }
            ]
        );
        b.advert(t + secs(61), PEER_HIGH, 200);
        assert_eq!(b.m.state(), State::Backup);
        assert_eq!(
            b.deadline(),
            Some(t + secs(61) + b.m.master_down_interval())
        );
        b.advert(t + secs(62), PEER_HIGH, 200);
        assert!(
            b.tick(t + secs(64)).is_empty(),
            "no GARP after leaving Master"
        );
    }

    #[test]
    fn no_second_garp_burst_when_delay_is_zero() {
        let mut c = cfg(100);
        c.garp_master_delay = Duration::ZERO;
        let mut b = Bench::master(c);
        let t = b.m.master_down_interval();
        for s in 1..20 {
            assert_eq!(
                b.tick(t + secs(s)),
                vec![Action::SendAdvert { priority: 100 }]
            );
        }
    }

    #[test]
    fn late_timer_call_does_not_burst_adverts() {
        let mut b = Bench::master(cfg(100));
        let t = b.m.master_down_interval();
        // The driver was stalled for 10 s: one advert, then back on a 1 s cadence.
        assert_eq!(
            b.tick(t + secs(10)),
            vec![
                Action::SendAdvert { priority: 100 },
                Action::SendGarp { count: 5 }
            ]
        );
        assert_eq!(b.deadline(), Some(t + secs(11)));
    }

    #[test]
    fn shutdown_from_each_state() {
        // Master: priority-0 advert first, then VIPs go.
        let mut b = Bench::master(cfg(100));
        assert_eq!(
            b.ev(secs(9), Event::Shutdown),
            vec![
                Action::SendAdvert { priority: 0 },
                Action::Transition {
                    from: State::Master,
                    to: State::Initialize,
                    reason: Reason::Shutdown
                },
                Action::RemoveVips,
                Action::Notify(NotifyState::Stop),
            ]
        );
        assert_eq!(b.m.state(), State::Initialize);
        assert_eq!(b.m.poll_timeout(), None);
        // Backup: nothing sent.
        let mut b = Bench::start(cfg(100));
        assert_eq!(
            b.ev(secs(1), Event::Shutdown),
            vec![
                Action::Transition {
                    from: State::Backup,
                    to: State::Initialize,
                    reason: Reason::Shutdown
                },
                Action::Notify(NotifyState::Stop),
            ]
        );
        assert_eq!(b.m.poll_timeout(), None);
        // Fault: nothing sent either.
        let mut b = Bench::start(cfg(100));
        b.ev(
            secs(1),
            Event::Tracker {
                index: 0,
                ok: false,
            },
        );
        assert_eq!(
            b.ev(secs(2), Event::Shutdown),
            vec![
                Action::Transition {
                    from: State::Fault,
                    to: State::Initialize,
                    reason: Reason::Shutdown
                },
                Action::Notify(NotifyState::Stop),
            ]
        );
        // Never started: nothing at all; adverts are ignored.
        let mut b = Bench::new(cfg(100));
        assert!(b.advert(secs(1), PEER_LOW, 100).is_empty());
        assert!(b.ev(secs(1), Event::Shutdown).is_empty());
    }

    #[test]
    fn reasons_display_as_structured_fields() {
        assert_eq!(
            Reason::MasterDownTimer.to_string(),
            "master down timer expired"
        );
        assert_eq!(
            Reason::HigherPriorityAdvert {
                from: Ipv4Addr::new(198, 51, 100, 12).into(),
                priority: 150
            }
            .to_string(),
            "higher priority advert from 198.51.100.12"
        );
        assert_eq!(
            Reason::PriorityZeroAdvert { from: PEER_HIGH }.to_string(),
            "priority-0 advert from the master 198.51.100.12"
        );
        assert_eq!(
            Reason::TrackerFailed {
                name: "chk_web".into(),
                kind: TrackerKind::Script
            }
            .to_string(),
            "script chk_web failed"
        );
        assert_eq!(
            Reason::TrackerFailed {
                name: "eth1".into(),
                kind: TrackerKind::Interface
            }
            .to_string(),
            "interface eth1 down"
        );
        assert_eq!(State::Initialize.to_string(), "INIT");
        assert_eq!(State::Master.to_string(), "MASTER");
        assert_eq!(NotifyState::Stop.to_string(), "STOP");
    }

    fn instance(priority: u8) -> InstanceConfig {
        InstanceConfig {
            name: "VI_1".into(),
            interface: "eth0".into(),
            vrid: 51,
            priority,
            version: Version::V2,
            advert_int: 200,
            initial_state: InitialState::Backup,
            nopreempt: false,
            handover_relay: true,
            preempt_delay: secs(30),
            auth_pass: None,
            unicast_src_ip: None,
            unicast_peers: vec![],
            virtual_addresses: vec![VirtualAddress {
                addr: Ipv4Addr::new(198, 51, 100, 100).into(),
                prefix_len: 24,
                dev: None,
                label: None,
            }],
            garp_master_delay: secs(5),
            garp_master_repeat: 5,
            garp_master_refresh: Duration::ZERO,
            track_interfaces: vec![TrackInterface {
                name: "eth1".into(),
                weight: -10,
            }],
            track_scripts: vec![TrackScript {
                script: ScriptConfig {
                    name: "chk_web".into(),
                    script: "/bin/true".into(),
                    interval: secs(1),
                    timeout: secs(1),
                    weight: 0,
                    rise: 1,
                    fall: 1,
                    user: None,
                },
                weight: 20,
            }],
            track_backends: vec![TrackBackend {
                backend: "web".into(),
                min_up: 1,
                weight: 0,
            }],
            notify: NotifyScripts::default(),
            sync_group: None,
        }
    }

    #[test]
    fn config_from_instance_orders_trackers_and_applies_keepalived_overrides() {
        let c = MachineConfig::from_instance(&instance(100), OURS);
        assert_eq!(c.advert_int, secs(2));
        assert_eq!(c.primary_ip, OURS);
        assert!(c.preempt);
        assert_eq!(c.preempt_delay, secs(30));
        let names: Vec<_> = c
            .trackers
            .iter()
            .map(|t| (t.name.as_str(), t.kind, t.weight))
            .collect();
        assert_eq!(
            names,
            vec![
                ("eth0", TrackerKind::OwnInterface, 0),
                ("eth1", TrackerKind::Interface, -10),
                ("chk_web", TrackerKind::Script, 20),
                ("web", TrackerKind::Backend, 0),
            ]
        );
        assert_eq!(c.tracker_index(TrackerKind::Script, "chk_web"), Some(2));
        assert_eq!(c.tracker_index(TrackerKind::Script, "eth1"), None);

        let mut i = instance(100);
        i.nopreempt = true;
        i.unicast_src_ip = Some(PEER_LOW);
        let c = MachineConfig::from_instance(&i, OURS);
        assert!(!c.preempt);
        assert_eq!(
            c.preempt_delay,
            Duration::ZERO,
            "preempt_delay ignored with nopreempt"
        );
        assert_eq!(
            c.primary_ip, PEER_LOW,
            "unicast_src_ip is the advert source"
        );

        i.initial_state = InitialState::Master;
        let c = MachineConfig::from_instance(&i, OURS);
        assert!(c.preempt, "nopreempt ignored with state MASTER");
        assert_eq!(c.preempt_delay, Duration::ZERO);

        let mut i = instance(255);
        i.nopreempt = true;
        assert!(MachineConfig::from_instance(&i, OURS).preempt);
    }
}
