//! The async driver of one VRRP instance: it feeds the state machine with received adverts,
//! timer expiries and tracker changes, and carries out the machine's actions (adverts, VIPs,
//! gratuitous ARPs, notify scripts, log lines) in the order the machine gives them.
//!
//! The machine decides; this file only does I/O. Where "a backup receives a priority-0
//! advert" is handled: `machine.rs`. Where the advert is read and validated:
//! `Driver::on_packet` (below).

use crate::config::InstanceConfig;
use crate::io::alarm::Alarm;
use crate::io::garp::GarpSender;
use crate::io::netlink::{LinkWatcher, Netlink};
use crate::io::relay::{self, Relay};
use crate::io::socket::{Datagram, Delivery, VrrpSocket, VRRP_GROUP, VRRP_GROUP_V6};
use crate::logs;
use crate::machine::{
    centiseconds, Action, Event, LogLine, Machine, MachineConfig, NotifyState as MachineNotify,
    Reason, State, TrackerKind, HANDBACK,
};
use crate::notify::{Notifier, NotifyState};
use crate::packet::{self, Advertisement, Auth, DropCounters, DropLogLimiter, ReceiveRules};
use crate::stats::{InstanceStats, StateSink, TransitionRecord, IDLE_BEAT};
use crate::sync_group::{GroupSignal, MemberReport, SyncGroup};
use crate::track::script::ScriptTracker;
use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tracing::{debug, error, info, warn};

mod reload;
pub use reload::{changes, restart_reason};

/// How much longer than one advert interval a stopping MASTER waits for its successor.
const HANDOVER_MARGIN: Duration = Duration::from_millis(500);
/// How long the VIPs' arrival waits for the hand-over relay (io/relay.rs): `nft` takes a few
/// ms; past this, the take-over goes on without it (a delay here moves no client, but the
/// relay is useless once the hand-back is over).
const RELAY_OPEN_LIMIT: Duration = Duration::from_millis(150);
/// How long after the take-over the hand-over relay passes segments on: the first part of the
/// old MASTER's [`HANDBACK`]. What it is for, a handshake in flight as our gratuitous ARPs
/// move the clients, needs a few ms past them (they go out 1-5 ms after our advert, 25 ms on
/// a loaded box). Its removal (two `nft` runs, 15-100 ms) must be done before the old MASTER
/// lets the VIPs go at [`HANDBACK`]: a segment passed on after that is lost (a 200 ms stall
/// in the TCP drill, where our reset lets the client reconnect at once). Connections that
/// outlive the relay (a long-lived stream) break when it closes, as they did at the move.
const RELAY_WINDOW: Duration = Duration::from_millis(100);

/// What other parts of the program may read about an instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InstanceStatus {
    pub state: State,
    pub priority: u8,
}

/// A boxed future, for [`MasterHook`].
pub type HookFuture<'a> = Pin<Box<dyn Future<Output = ()> + Send + 'a>>;

/// Lets the program act at the edges of the MASTER state, in the right order: `becoming_master`
/// runs after the VIPs are added and before the gratuitous ARPs go out (so a load balancer's
/// listeners are open when clients learn the new MAC); `leaving_master` runs before the VIPs
/// are removed. Both should return quickly (they are awaited by the engine).
pub trait MasterHook: Send + Sync + 'static {
    fn becoming_master(&self) -> HookFuture<'_>;
    fn leaving_master(&self) -> HookFuture<'_>;
}

/// Inputs from outside the engine.
#[derive(Default)]
pub struct InstanceOptions {
    /// For each `track_backends` entry, by backend name: the number of servers UP.
    pub backend_up: HashMap<String, watch::Receiver<usize>>,
    pub hook: Option<Arc<dyn MasterHook>>,
    /// The `vrrp_sync_groups` entry the instance belongs to.
    pub sync_group: Option<Arc<SyncGroup>>,
    /// Told every state and priority change, in order (notify_fifo).
    pub events: Option<Arc<dyn StateSink>>,
}

#[derive(Debug, thiserror::Error)]
pub enum InstanceError {
    #[error("({instance}) netlink: {source}")]
    Netlink {
        instance: String,
        source: crate::io::netlink::NetlinkError,
    },
    #[error("({instance}) cannot open the VRRP socket on {interface}: {source}")]
    Socket {
        instance: String,
        interface: String,
        source: crate::io::socket::SocketError,
    },
    #[error("({instance}) vrrp_script {script}: {source}")]
    Script {
        instance: String,
        script: String,
        source: crate::track::script::ScriptError,
    },
    #[error("({instance}) track_backends names {backend}, which the balancer does not publish")]
    UnknownBackend { instance: String, backend: String },
    #[error("({instance}) is not running")]
    Stopped { instance: String },
}

/// What the daemon asks of a running instance.
enum Control {
    Priority(u8),
    Reload {
        cfg: Box<InstanceConfig>,
        backend_up: HashMap<String, watch::Receiver<usize>>,
        done: oneshot::Sender<Result<(), InstanceError>>,
    },
}

/// A tracker as the machine names it: reports carry this, not an index, so a reload that
/// adds or removes trackers cannot make a late report land on another tracker.
type TrackerReport = (TrackerKind, String, bool);

/// A spawned feed into the tracker channel, stopped with its owner.
struct Feed(JoinHandle<()>);

impl Drop for Feed {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// A `track_script` in use: the running script and the feed of its results.
struct RunningScript {
    config: crate::config::ScriptConfig,
    _tracker: ScriptTracker,
    _feed: Feed,
}

impl RunningScript {
    fn start(
        instance: &str,
        config: &crate::config::ScriptConfig,
        tx: &mpsc::UnboundedSender<TrackerReport>,
    ) -> Result<RunningScript, InstanceError> {
        let tracker =
            ScriptTracker::start(config.clone()).map_err(|source| InstanceError::Script {
                instance: instance.to_owned(),
                script: config.name.clone(),
                source,
            })?;
        let feed = forward_watch(
            tracker.subscribe(),
            (TrackerKind::Script, config.name.clone()),
            tx.clone(),
            |v| *v,
        );
        Ok(RunningScript {
            config: config.clone(),
            _tracker: tracker,
            _feed: feed,
        })
    }
}

/// Feeds a backend's UP count into the tracker channel as OK while at least `min_up`.
fn feed_backend(
    backend: &str,
    min_up: u32,
    rx: watch::Receiver<usize>,
    tx: &mpsc::UnboundedSender<TrackerReport>,
) -> (u32, Feed) {
    let at_least = min_up as usize;
    let feed = forward_watch(
        rx,
        (TrackerKind::Backend, backend.to_owned()),
        tx.clone(),
        move |up| Some(*up >= at_least),
    );
    (min_up, feed)
}

/// A running instance.
pub struct Instance {
    name: String,
    status: watch::Receiver<InstanceStatus>,
    counters: Arc<DropCounters>,
    stats: Arc<InstanceStats>,
    stop: Option<oneshot::Sender<oneshot::Sender<()>>>,
    control: mpsc::UnboundedSender<Control>,
    task: JoinHandle<()>,
}

impl Instance {
    /// Prepares the instance (interfaces, socket, trackers), removes VIPs left by a killed
    /// predecessor, and starts it in Backup (or FAULT, or Master for an owner).
    pub async fn start(
        cfg: InstanceConfig,
        opts: InstanceOptions,
    ) -> Result<Instance, InstanceError> {
        let name = cfg.name.clone();
        let nl_err = |source| InstanceError::Netlink {
            instance: name.clone(),
            source,
        };
        let netlink = Netlink::new().map_err(nl_err)?;
        remove_stale_vips(&cfg, &netlink).await;

        let delivery = if cfg.unicast_peers.is_empty() {
            Delivery::Multicast
        } else {
            Delivery::Unicast
        };
        let ipv6 = cfg.is_ipv6();
        let socket = VrrpSocket::open_family(&cfg.interface, delivery, ipv6).map_err(|source| {
            InstanceError::Socket {
                instance: name.clone(),
                interface: cfg.interface.clone(),
                source,
            }
        })?;
        let links = LinkWatcher::start().await.map_err(nl_err)?;
        let primary = match cfg.unicast_src_ip {
            Some(ip) => Some(ip),
            None => netlink
                .advert_source(&cfg.interface, ipv6)
                .await
                .ok()
                .flatten(),
        };
        let unspecified = if ipv6 {
            IpAddr::V6(Ipv6Addr::UNSPECIFIED)
        } else {
            IpAddr::V4(Ipv4Addr::UNSPECIFIED)
        };
        let machine_cfg = MachineConfig::from_instance(&cfg, primary.unwrap_or(unspecified));

        // Every tracker reports into one channel as (kind, name, ok).
        let (tracker_tx, tracker_rx) = mpsc::unbounded_channel();
        let mut scripts = Vec::new();
        for t in &cfg.track_scripts {
            scripts.push(RunningScript::start(&name, &t.script, &tracker_tx)?);
        }
        let mut backend_feeds = HashMap::new();
        for t in &cfg.track_backends {
            let Some(rx) = opts.backend_up.get(&t.backend) else {
                return Err(InstanceError::UnknownBackend {
                    instance: name.clone(),
                    backend: t.backend.clone(),
                });
            };
            let feed = feed_backend(&t.backend, t.min_up, rx.clone(), &tracker_tx);
            backend_feeds.insert(t.backend.clone(), feed);
        }
        let group_feed = opts.sync_group.as_ref().and_then(|group| {
            machine_cfg
                .tracker_index(TrackerKind::SyncGroup, group.name())
                .map(|_| forward_group(group.clone(), name.clone(), tracker_tx.clone()))
        });
        let (group_tx, group_rx) = mpsc::unbounded_channel();
        let sync_feed = opts
            .sync_group
            .as_ref()
            .map(|group| forward_syncs(group, group_tx));
        let machine = Machine::new(machine_cfg);
        let (status_tx, status) = watch::channel(InstanceStatus {
            state: State::Initialize,
            priority: machine.effective_priority(),
        });
        let counters = Arc::new(DropCounters::new());
        let stats = Arc::new(InstanceStats::default());
        stats.update(|d| {
            d.base_priority = cfg.priority;
            d.trackers = machine.tracker_states();
        });
        let (stop_tx, stop_rx) = oneshot::channel();
        let notifier = Notifier::new(name.clone(), cfg.notify.clone());
        let mut rules = ReceiveRules::from_config(&cfg);
        rules.own_address = primary;
        // At sub-second intervals a per-interval log budget would be ten lines a second.
        let log_interval = centiseconds(cfg.advert_int).max(Duration::from_secs(1));
        let driver = Driver {
            limiter: DropLogLimiter::new(log_interval),
            cfg,
            machine,
            socket,
            netlink,
            garp: HashMap::new(),
            primary,
            rules,
            counters: counters.clone(),
            stats: stats.clone(),
            status_tx,
            notifier,
            hook: opts.hook,
            sync_group: opts.sync_group,
            release_at: None,
            moved_by_group: false,
            last_peer: None,
            relay_to: None,
            relay: None,
            relay_closing: None,
            relay_missing_logged: false,
            events: opts.events,
            scripts,
            backend_feeds,
            _group_feed: group_feed,
            _sync_feed: sync_feed,
            tracker_tx,
        };
        let (control_tx, control_rx) = mpsc::unbounded_channel();
        let task = tokio::spawn(driver.run(links, tracker_rx, group_rx, control_rx, stop_rx));
        Ok(Instance {
            name,
            status,
            counters,
            stats,
            stop: Some(stop_tx),
            control: control_tx,
            task,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn status(&self) -> watch::Receiver<InstanceStatus> {
        self.status.clone()
    }

    pub fn drop_counters(&self) -> Arc<DropCounters> {
        self.counters.clone()
    }

    /// Advert counters, last transition, trackers and the loop's heartbeat.
    pub fn stats(&self) -> Arc<InstanceStats> {
        self.stats.clone()
    }

    /// A reload changed the configured priority: applied in place (a MASTER announces it at
    /// once). To or from 255 (the owner) needs a restart and is ignored here.
    pub fn set_priority(&self, priority: u8) {
        let _ = self.control.send(Control::Priority(priority));
    }

    /// SIGHUP with a changed configuration that [`restart_reason`] accepts: applied in place,
    /// without leaving MASTER and without a priority-0 advert (VIPs added and removed,
    /// trackers, timers, authentication, peers, notify scripts). `backend_up` must hold every
    /// backend the new config tracks. On error nothing changed.
    pub async fn reconfigure(
        &self,
        cfg: InstanceConfig,
        backend_up: HashMap<String, watch::Receiver<usize>>,
    ) -> Result<(), InstanceError> {
        let stopped = || InstanceError::Stopped {
            instance: self.name.clone(),
        };
        let (done, result) = oneshot::channel();
        self.control
            .send(Control::Reload {
                cfg: Box::new(cfg),
                backend_up,
                done,
            })
            .map_err(|_| stopped())?;
        result.await.unwrap_or_else(|_| Err(stopped()))
    }

    /// Orderly stop: a MASTER sends a priority-0 advert and removes its VIPs, the STOP notify
    /// scripts run (at most about a second), then the task ends.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let (done_tx, done_rx) = oneshot::channel();
            if stop.send(done_tx).is_ok() {
                let _ = tokio::time::timeout(Duration::from_secs(3), done_rx).await;
            }
        }
        self.task.abort();
    }
}

/// Forwards a watch channel's values into the tracker channel as (kind, name, ok); `None`
/// results (not known yet) are not forwarded.
fn forward_watch<T: Send + Sync + 'static>(
    mut rx: watch::Receiver<T>,
    (kind, name): (TrackerKind, String),
    tx: mpsc::UnboundedSender<TrackerReport>,
    ok_of: impl Fn(&T) -> Option<bool> + Send + 'static,
) -> Feed {
    Feed(tokio::spawn(async move {
        let mut last = None;
        loop {
            let now = ok_of(&rx.borrow_and_update());
            if now.is_some() && now != last {
                last = now;
                if let Some(ok) = now {
                    if tx.send((kind, name.clone(), ok)).is_err() {
                        return;
                    }
                }
            }
            if rx.changed().await.is_err() {
                return;
            }
        }
    }))
}

/// Feeds the group's state into the instance's sync-group tracker: failing while another
/// member is in FAULT of its own.
fn forward_group(
    group: Arc<SyncGroup>,
    instance: String,
    tx: mpsc::UnboundedSender<TrackerReport>,
) -> Feed {
    let mut rx = group.subscribe();
    Feed(tokio::spawn(async move {
        let mut last = None;
        loop {
            rx.borrow_and_update();
            let ok = group.faulty_other(&instance).is_none();
            if last != Some(ok) {
                last = Some(ok);
                if tx
                    .send((TrackerKind::SyncGroup, group.name().to_owned(), ok))
                    .is_err()
                {
                    return;
                }
            }
            if rx.changed().await.is_err() {
                return;
            }
        }
    }))
}

/// Hands the group's "Syncing instances to BACKUP/MASTER state" orders to the instance.
fn forward_syncs(group: &SyncGroup, tx: mpsc::UnboundedSender<GroupSignal>) -> Feed {
    let mut rx = group.subscribe_syncs();
    Feed(tokio::spawn(async move {
        while rx.changed().await.is_ok() {
            let signal = rx.borrow_and_update().1;
            if let Some(signal) = signal {
                if tx.send(signal).is_err() {
                    return;
                }
            }
        }
    }))
}

/// keepalived removes configured VIPs found on the interface at start: a killed predecessor
/// (SIGKILL, crash) left them there, and a box that is not MASTER must not hold them.
async fn remove_stale_vips(cfg: &InstanceConfig, netlink: &Netlink) {
    for vip in &cfg.virtual_addresses {
        let dev = vip.dev.as_deref().unwrap_or(&cfg.interface);
        let present = netlink
            .addresses_like(dev, vip.addr)
            .await
            .map(|addrs| addrs.iter().any(|(a, _)| *a == vip.addr))
            .unwrap_or(false);
        if present {
            match netlink.del_address(dev, vip.addr, vip.prefix_len).await {
                Ok(()) => warn!(
                    "({}) removed stale VIP {}/{} from {dev} (left by a previous run)",
                    cfg.name, vip.addr, vip.prefix_len
                ),
                Err(e) => error!(
                    "({}) cannot remove stale VIP {} from {dev}: {e}",
                    cfg.name, vip.addr
                ),
            }
        }
    }
}

struct Driver {
    cfg: InstanceConfig,
    machine: Machine,
    socket: VrrpSocket,
    netlink: Netlink,
    /// One GARP sender per interface that carries VIPs, opened when first needed.
    garp: HashMap<String, GarpSender>,
    /// Our advert source; None while the interface has no address of the instance's family
    /// (FAULT): no IPv4 address, or no usable IPv6 link-local one yet.
    primary: Option<IpAddr>,
    rules: ReceiveRules,
    counters: Arc<DropCounters>,
    limiter: DropLogLimiter,
    stats: Arc<InstanceStats>,
    status_tx: watch::Sender<InstanceStatus>,
    notifier: Notifier,
    hook: Option<Arc<dyn MasterHook>>,
    sync_group: Option<Arc<SyncGroup>>,
    /// A preempted MASTER's VIP removal, put off until this time (see [`HANDBACK`]).
    release_at: Option<Instant>,
    /// The last transition was ordered by the sync group.
    moved_by_group: bool,
    events: Option<Arc<dyn StateSink>>,
    scripts: Vec<RunningScript>,
    /// Per tracked backend: its `min_up` and the feed of its UP count.
    backend_feeds: HashMap<String, (u32, Feed)>,
    _group_feed: Option<Feed>,
    _sync_feed: Option<Feed>,
    /// For the feeds of trackers a reload adds.
    tracker_tx: mpsc::UnboundedSender<TrackerReport>,
    /// The last valid advert from another router: its source, priority and arrival.
    last_peer: Option<(IpAddr, u8, Instant)>,
    /// Set as we become MASTER in place of one that is still up: where the hand-over relay
    /// sends what is still that MASTER's (io/relay.rs); taken when the VIPs are added.
    relay_to: Option<IpAddr>,
    /// The hand-over relay being prepared (a take-over is coming) or open (see
    /// [`RelayHandle`]).
    relay: Option<RelayHandle>,
    /// The task of the last relay let go, still closing its table perhaps: the next one
    /// (same table name) loads only after it.
    relay_closing: Option<JoinHandle<()>>,
    /// `nft` was missing and the log said so once.
    relay_missing_logged: bool,
}

impl Driver {
    async fn run(
        mut self,
        mut links: LinkWatcher,
        mut trackers: mpsc::UnboundedReceiver<TrackerReport>,
        mut group: mpsc::UnboundedReceiver<GroupSignal>,
        mut control: mpsc::UnboundedReceiver<Control>,
        mut stop: oneshot::Receiver<oneshot::Sender<()>>,
    ) {
        let name = self.cfg.name.clone();
        // Interfaces report their state before startup, so the first state is already right
        // (FAULT at once when our link is down, keepalived's `(init)` line).
        let own_ok =
            links.initial_state(&self.cfg.interface).unwrap_or(false) && self.primary.is_some();
        self.own_interface_event(own_ok).await;
        for t in self.cfg.track_interfaces.clone() {
            let up = links.initial_state(&t.name).unwrap_or(false);
            self.tracker_event(TrackerKind::Interface, &t.name, up)
                .await;
        }
        self.clear_leftover_relay().await;
        let actions = self.machine.handle(Event::Startup, Instant::now());
        self.execute(actions).await;

        let mut buf = vec![0u8; 2048];
        let mut address_poll = tokio::time::interval(Duration::from_secs(1));
        let mut alarm = match Alarm::new() {
            Ok(a) => a,
            Err(e) => {
                error!(
                    "({name}) cannot create the engine's timer (timerfd): {e}; instance stopped"
                );
                return;
            }
        };
        loop {
            // The watchdog trusts this beat: it must come from this loop turning.
            self.stats.beat();
            if self.stats.stall_requested() {
                error!("({name}) engine loop stalled on purpose (test hook)");
                std::future::pending::<()>().await;
            }
            // One timer (io/alarm.rs says why not tokio's): the machine's next deadline, or
            // the idle beat when that is further away (adverts, received or sent, turn the
            // loop often enough on their own).
            let idle_beat = Instant::now() + IDLE_BEAT;
            let deadline = self.machine.poll_timeout().filter(|d| *d <= idle_beat);
            if let Err(e) = alarm.set(deadline.unwrap_or(idle_beat)) {
                error!("({name}) cannot arm the engine's timer: {e}");
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
            let release_at = self.release_at;
            let release = async {
                match release_at {
                    Some(d) => tokio::time::sleep_until(tokio::time::Instant::from_std(d)).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                done = &mut stop => {
                    self.release_now().await;
                    let was_master = self.machine.state() == State::Master;
                    let mut actions = self.machine.handle(Event::Shutdown, Instant::now());
                    // A stopping MASTER keeps its VIPs (and the balancer its listeners) after
                    // the priority-0 advert until the new MASTER announces itself, so clients
                    // are served until the new MASTER's gratuitous ARPs move them.
                    let rest = match actions.iter().position(|a| matches!(a, Action::RemoveVips)) {
                        Some(i) if was_master => actions.split_off(i),
                        _ => Vec::new(),
                    };
                    self.execute(actions).await;
                    if !rest.is_empty() {
                        self.hand_over(&mut buf).await;
                    }
                    self.execute(rest).await;
                    info!("({name}) Stopped");
                    if let Ok(done) = done {
                        let _ = done.send(());
                    }
                    return;
                }
                fired = alarm.fired() => {
                    if let Err(e) = fired {
                        error!("({name}) the engine's timer failed: {e}");
                        tokio::time::sleep(Duration::from_millis(10)).await;
                        continue;
                    }
                    if deadline.is_none() {
                        // The idle beat: the loop turned, which is all the watchdog asks.
                        continue;
                    }
                    if let Some(g) = &self.sync_group {
                        self.machine.set_group_hold(g.holds_master(&self.cfg.name));
                    }
                    let actions = self.machine.handle_timeout(Instant::now());
                    self.execute(actions).await;
                    // A member held by the group is now ready for MASTER: tell the others.
                    self.report_to_group();
                }
                Some(signal) = group.recv() => {
                    let event = match signal {
                        GroupSignal::Backup => Event::GroupBackup,
                        GroupSignal::Master => Event::GroupMaster,
                    };
                    let actions = self.machine.handle(event, Instant::now());
                    self.execute(actions).await;
                }
                _ = release => {
                    info!("({name}) removing the VIPs {} ms after stepping down", self.handback().as_millis());
                    self.release_now().await;
                }
                got = self.socket.recv_datagram(&mut buf) => match got {
                    Ok(d) => {
                        let packet = buf[..d.len.min(buf.len())].to_vec();
                        self.on_packet(&packet, &d).await;
                    }
                    Err(e) => {
                        error!("({name}) receive error on {}: {e}", self.cfg.interface);
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                },
                Some(change) = links.recv() => {
                    let tracked = change.ifname == self.cfg.interface
                        || self.cfg.track_interfaces.iter().any(|t| t.name == change.ifname);
                    if tracked {
                        info!("{}", logs::link_changed(&change.ifname, change.up));
                    }
                    if change.ifname == self.cfg.interface {
                        if change.up && self.primary.is_none() {
                            self.refresh_primary().await;
                        }
                        let ok = change.up && self.primary.is_some();
                        self.own_interface_event(ok).await;
                    }
                    if self.cfg.track_interfaces.iter().any(|t| t.name == change.ifname) {
                        self.tracker_event(TrackerKind::Interface, &change.ifname, change.up).await;
                    }
                }
                Some((kind, tracker, ok)) = trackers.recv() => {
                    self.tracker_event(kind, &tracker, ok).await;
                }
                Some(c) = control.recv() => match c {
                    Control::Priority(p) => {
                        let actions = self.machine.handle(Event::SetPriority(p), Instant::now());
                        self.execute(actions).await;
                    }
                    Control::Reload { cfg, backend_up, done } => {
                        let result = self.reconfigure(*cfg, backend_up).await;
                        let _ = done.send(result);
                    }
                },
                _ = address_poll.tick(), if self.primary.is_none() => {
                    // keepalived holds FAULT while the interface has no IPv4 address to send
                    // from; addresses are rarely missing, so a slow poll is enough.
                    if self.refresh_primary().await {
                        self.own_interface_event(true).await;
                    }
                }
            }
        }
    }

    /// The longest a stopping MASTER waits for the new MASTER: a backup takes over Skew_Time
    /// (under one advert interval) after our priority-0 advert, plus a margin.
    fn handover_limit(&self) -> Duration {
        centiseconds(self.cfg.advert_int) + HANDOVER_MARGIN
    }

    /// After our priority-0 advert: waits until a valid advert with a non-zero priority from
    /// another router says a new MASTER took over (then [`HANDBACK`] more, while clients follow
    /// its gratuitous ARPs), or [`Driver::handover_limit`] passed.
    /// Nothing else is handled meanwhile (the instance is stopping).
    async fn hand_over(&mut self, buf: &mut [u8]) {
        let name = self.cfg.name.clone();
        let limit = self.handover_limit();
        info!(
            "({name}) keeping the VIPs until the new MASTER's first advert (at most {} ms)",
            limit.as_millis()
        );
        let t0 = Instant::now();
        let timer = tokio::time::sleep(limit);
        tokio::pin!(timer);
        let ours = [self.primary, self.cfg.unicast_src_ip];
        loop {
            tokio::select! {
                _ = &mut timer => {
                    info!("({name}) no new MASTER within {} ms; removing the VIPs", limit.as_millis());
                    return;
                }
                got = self.socket.recv_datagram(buf) => {
                    let (n, d) = match got {
                        Ok(d) => (d.len.min(buf.len()), d),
                        Err(e) => {
                            warn!("({name}) receive error on {} while handing over: {e}; removing the VIPs", self.cfg.interface);
                            return;
                        }
                    };
                    let packet = &buf[..n];
                    match self.decode(packet, &d).map(|(meta, a)| (meta.src, a.priority)) {
                        Ok((src, priority)) if priority > 0 && !ours.contains(&Some(src)) => {
                            info!(
                                "({name}) {src} is MASTER now (priority {priority}, {} ms after our priority-0 advert); removing the VIPs in {} ms",
                                t0.elapsed().as_millis(),
                                HANDBACK.as_millis()
                            );
                            // Its advert comes before its VIPs, listeners and gratuitous ARPs
                            // (RFC 5798 §6.4.2 order, a few ms in all): removing ours at once
                            // left clients a moment with the VIP on neither box (a SYN lost).
                            tokio::time::sleep(HANDBACK).await;
                            return;
                        }
                        Ok(_) => {}
                        Err(reason) => self.counters.record(&reason),
                    }
                }
            }
        }
    }

    /// Looks the interface's primary address up again; true when one is now known.
    async fn refresh_primary(&mut self) -> bool {
        if self.cfg.unicast_src_ip.is_some() {
            return true;
        }
        let ipv6 = self.cfg.is_ipv6();
        if let Ok(Some(ip)) = self.netlink.advert_source(&self.cfg.interface, ipv6).await {
            if self.primary.is_none() {
                info!("({}) using {ip} as advert source", self.cfg.name);
                // The tie-break compares with our source, so the machine must know it.
                self.machine.set_primary_ip(ip);
            }
            self.primary = Some(ip);
            self.rules.own_address = Some(ip);
            return true;
        }
        false
    }

    async fn own_interface_event(&mut self, ok: bool) {
        let own = self.cfg.interface.clone();
        self.tracker_event(TrackerKind::OwnInterface, &own, ok)
            .await;
    }

    /// A tracker's report, by kind and name; one the running config no longer has (a late
    /// report of a tracker a reload removed) is ignored.
    async fn tracker_event(&mut self, kind: TrackerKind, name: &str, ok: bool) {
        let Some(index) = self.machine.config().tracker_index(kind, name) else {
            return;
        };
        let actions = self
            .machine
            .handle(Event::Tracker { index, ok }, Instant::now());
        self.execute(actions).await;
        // The cause of a FAULT may change without a transition (own tracker now failing too).
        self.report_to_group();
    }

    fn report_to_group(&self) {
        if let Some(g) = &self.sync_group {
            g.report_member(
                &self.cfg.name,
                MemberReport {
                    state: self.machine.state(),
                    by_group: self.machine.fault_is_by_group(),
                    wants_master: self.machine.wants_master(),
                    moved_by_group: self.moved_by_group,
                },
            );
        }
    }

    /// Parses and validates one received packet (vrrp.md §4): a whole IPv4 packet, or an
    /// IPv6 payload with what the kernel told about its header.
    fn decode(
        &self,
        packet: &[u8],
        d: &Datagram,
    ) -> Result<(packet::IpMeta, Advertisement), packet::DropReason> {
        let (meta, vrrp) = match &d.ipv6 {
            Some(receipt) => (packet::ipv6_meta(receipt)?, packet),
            None => packet::parse_ip(packet)?,
        };
        packet::validate(&meta, vrrp, &self.rules).map(|a| (meta, a))
    }

    /// The source of a received packet, for log lines about it.
    fn source_of(packet: &[u8], d: &Datagram) -> IpAddr {
        match &d.ipv6 {
            Some(receipt) => receipt.src.into(),
            None => packet::parse_ip(packet)
                .map(|(m, _)| m.src)
                .unwrap_or(Ipv4Addr::UNSPECIFIED.into()),
        }
    }

    /// Validates one received packet (vrrp.md §4) and hands a valid advert to the machine.
    /// Every drop is counted by reason; logging is limited per reason and source.
    async fn on_packet(&mut self, packet: &[u8], d: &Datagram) {
        let now = Instant::now();
        match self.decode(packet, d) {
            Ok((meta, advert)) => {
                InstanceStats::count(&self.stats.adverts_received);
                if ![self.primary, self.cfg.unicast_src_ip].contains(&Some(meta.src)) {
                    self.last_peer = Some((meta.src, advert.priority, now));
                }
                if advert.priority > 0 && self.machine.state() != State::Master {
                    self.stats.update(|d| d.master = Some(meta.src));
                }
                if advert.priority == 255 {
                    if let Some(m) = self.rules.address_mismatch(&advert.addresses) {
                        if self.limiter.should_log(m.key(), meta.src, now) {
                            warn!("{}", logs::bad_advert(&self.cfg.name, &m));
                        }
                    }
                }
                let actions = self.machine.handle(
                    Event::Advert {
                        src: meta.src,
                        priority: advert.priority,
                        advert_int: centiseconds(advert.advert_int),
                    },
                    now,
                );
                // A take-over from a MASTER still up is coming (we preempt it when the down
                // timer runs out, or it resigned): the relay gets ready meanwhile, off this
                // loop, so the take-over need not wait for `nft`.
                let coming = actions.iter().any(|a| {
                    matches!(
                        a,
                        Action::Log(
                            LogLine::BackupDiscardedLower { .. }
                                | LogLine::BackupReceivedPriorityZero
                        )
                    )
                });
                if coming {
                    self.prepare_relay(meta.src);
                }
                self.execute(actions).await;
            }
            Err(reason) => {
                self.counters.record(&reason);
                let src = Self::source_of(packet, d);
                if let Some(n) = self.limiter.take_suppressed(now) {
                    warn!("({}) {n} more invalid adverts were not logged (log limit); `vrrplb status` counts them all", self.cfg.name);
                }
                if reason.is_silent() {
                    debug!("({}) dropped advert from {src}: {reason}", self.cfg.name);
                } else if self.limiter.should_log(reason.key(), src, now) {
                    warn!(
                        drop_reason = reason.key(),
                        from = %src,
                        "{}",
                        logs::bad_advert(&self.cfg.name, &reason)
                    );
                }
            }
        }
    }

    fn advert(&self, priority: u8) -> Advertisement {
        Advertisement {
            version: self.cfg.version,
            vrid: self.cfg.vrid,
            priority,
            advert_int: self.cfg.advert_int,
            auth: self.cfg.auth_pass.map_or(Auth::None, Auth::Simple),
            addresses: self.cfg.virtual_addresses.iter().map(|v| v.addr).collect(),
        }
    }

    async fn send_advert(&mut self, priority: u8) {
        let Some(src) = self.primary else {
            return;
        };
        let advert = self.advert(priority);
        let dests: Vec<IpAddr> = match (self.cfg.unicast_peers.is_empty(), src) {
            (true, IpAddr::V4(_)) => vec![VRRP_GROUP.into()],
            (true, IpAddr::V6(_)) => vec![VRRP_GROUP_V6.into()],
            (false, _) => self.cfg.unicast_peers.clone(),
        };
        for dst in dests {
            let bytes = match (src, dst) {
                (IpAddr::V4(s), IpAddr::V4(d)) => advert.encode_ip(s, d),
                // IPv6: the message only; the kernel writes the header (vrrp.md §13).
                _ => advert.encode_between(src, dst),
            };
            InstanceStats::count(&self.stats.adverts_sent);
            if let Err(e) = self.socket.send(&bytes, src, dst).await {
                warn!(
                    "({}) cannot send advert to {dst} on {}: {e}",
                    self.cfg.name, self.cfg.interface
                );
            }
        }
        if priority == 0 {
            debug!("{}", logs::sent_zero_priority(&self.cfg.name));
        }
    }

    async fn set_vips(&mut self, add: bool) {
        let name = self.cfg.name.clone();
        if add {
            debug!("{}", logs::setting_vips(&name));
        } else {
            debug!("{}", logs::removing_vips(&name));
        }
        let vips = self.cfg.virtual_addresses.clone();
        self.change_vips(&vips, add).await;
    }

    /// Adds or removes these VIPs, each on its device (the instance's interface by default).
    async fn change_vips(&mut self, vips: &[crate::config::VirtualAddress], add: bool) {
        let name = self.cfg.name.clone();
        // Closed connections from an earlier term on an address we are about to add can only
        // hang the clients that reuse their ports (see io::stale): cleared as it comes back,
        // beside the take-over and not before it (a loaded box took ~100 ms to list them,
        // which put its gratuitous ARPs after the true MASTER's in a contested election).
        let absent: Vec<IpAddr> = vips
            .iter()
            .map(|v| v.addr)
            .filter(|a| add && !is_local(*a))
            .collect();
        if !absent.is_empty() {
            drop(tokio::spawn(clear_stale(name.clone(), absent)));
        }
        for vip in vips {
            let dev = vip
                .dev
                .clone()
                .unwrap_or_else(|| self.cfg.interface.clone());
            let r = if add {
                self.netlink
                    .add_address(&dev, vip.addr, vip.prefix_len, vip.label.as_deref())
                    .await
            } else {
                self.netlink
                    .del_address(&dev, vip.addr, vip.prefix_len)
                    .await
            };
            if let Err(e) = r {
                error!(
                    "({name}) cannot {} VIP {}/{} on {dev}: {e}",
                    if add { "add" } else { "remove" },
                    vip.addr,
                    vip.prefix_len
                );
            }
        }
    }

    async fn send_garps(&mut self, count: u32) {
        let vips = self.cfg.virtual_addresses.clone();
        self.send_garps_for(&vips, count).await;
    }

    /// One burst of `count` gratuitous ARPs for each of these VIPs, on its device.
    async fn send_garps_for(&mut self, vips: &[crate::config::VirtualAddress], count: u32) {
        let mut by_dev: HashMap<String, Vec<IpAddr>> = HashMap::new();
        for vip in vips {
            let dev = vip
                .dev
                .clone()
                .unwrap_or_else(|| self.cfg.interface.clone());
            by_dev.entry(dev).or_default().push(vip.addr);
        }
        for (dev, vips) in by_dev {
            if !self.garp.contains_key(&dev) {
                let mac = match self.netlink.link_mac(&dev).await {
                    Ok(m) => m,
                    Err(e) => {
                        warn!(
                            "({}) cannot send gratuitous ARPs on {dev}: {e}",
                            self.cfg.name
                        );
                        continue;
                    }
                };
                match GarpSender::open(&dev, mac) {
                    Ok(s) => {
                        self.garp.insert(dev.clone(), s);
                    }
                    Err(e) => {
                        warn!(
                            "({}) cannot send gratuitous ARPs on {dev}: {e}",
                            self.cfg.name
                        );
                        continue;
                    }
                }
            }
            if let Some(sender) = self.garp.get(&dev) {
                for vip in &vips {
                    debug!("{}", logs::sending_garps(&self.cfg.name, &dev, *vip));
                }
                if let Err(e) = sender.send_burst(&vips, count, Duration::ZERO).await {
                    warn!("({}) gratuitous ARP on {dev} failed: {e}", self.cfg.name);
                }
            }
        }
    }

    /// A preempted MASTER (or one its sync group moves to BACKUP) hands back gently, by the
    /// graceful stop's rule ([`Driver::hand_over`]:
    /// the new MASTER's first advert, then [`HANDBACK`] more): the advert that preempts us is
    /// the new MASTER's first (it sends it as it takes over, before its VIPs and gratuitous
    /// ARPs), so the removal of our VIPs (and the closing of our listeners) is put off by
    /// [`Driver::handback`] from it, and a client still sending here as those ARPs go out is
    /// served. Returning to MASTER meanwhile cancels it (the VIPs never left); any other
    /// transition removes them first.
    fn defer_release(&mut self, actions: &mut Vec<Action>) {
        // Moved to BACKUP by the sync group: another member was preempted (or heard a better
        // MASTER), and this member's successor takes over with it, so the same hand-back.
        let preempted = actions.iter().any(|a| {
            matches!(
                a,
                Action::Transition {
                    from: State::Master,
                    to: State::Backup,
                    reason: Reason::HigherPriorityAdvert { .. }
                        | Reason::SamePriorityHigherIp { .. }
                        | Reason::SyncGroup { .. },
                }
            )
        });
        if self.release_at.is_some() && actions.iter().any(|a| matches!(a, Action::AddVips)) {
            info!(
                "({}) MASTER again before the VIPs were removed: keeping them",
                self.cfg.name
            );
            self.release_at = None;
            actions.retain(|a| !matches!(a, Action::AddVips));
            return;
        }
        if preempted {
            let before = actions.len();
            actions.retain(|a| !matches!(a, Action::RemoveVips));
            if actions.len() < before {
                self.release_at = Some(Instant::now() + self.handback());
                info!(
                    "({}) keeping the VIPs {} ms after stepping down, for clients still sending here",
                    self.cfg.name,
                    self.handback().as_millis()
                );
            }
        }
    }

    fn handback(&self) -> Duration {
        HANDBACK
    }

    /// Removes VIPs whose removal was put off, at once.
    async fn release_now(&mut self) {
        if self.release_at.take().is_some() {
            self.execute_now(vec![Action::RemoveVips]).await;
        }
    }

    async fn execute(&mut self, mut actions: Vec<Action>) {
        // VIPs kept from an earlier step-down go before any other move (FAULT, stop).
        if self.release_at.is_some()
            && actions
                .iter()
                .any(|a| matches!(a, Action::Transition { to, .. } if *to != State::Master))
        {
            self.release_now().await;
        }
        self.defer_release(&mut actions);
        self.execute_now(actions).await;
    }

    async fn execute_now(&mut self, actions: Vec<Action>) {
        for action in actions {
            match action {
                Action::SendAdvert { priority } => self.send_advert(priority).await,
                // The listeners open before the VIP arrives (they bind with IP_FREEBIND) and
                // close after it left: a SYN never finds the VIP here without a listener,
                // which the kernel would answer with a reset (the chaos drill saw "connect:
                // connection reset" as a MASTER moved).
                Action::AddVips => {
                    if let Some(hook) = &self.hook {
                        hook.becoming_master().await;
                    }
                    // Before the VIPs (and so before our gratuitous ARPs move any client).
                    if let Some(previous) = self.relay_to.take() {
                        self.open_relay(previous).await;
                    }
                    self.set_vips(true).await;
                }
                Action::RemoveVips => {
                    self.set_vips(false).await;
                    if let Some(hook) = &self.hook {
                        hook.leaving_master().await;
                    }
                }
                Action::SendGarp { count } => self.send_garps(count).await,
                Action::Notify(state) => {
                    let prio = self.machine.effective_priority();
                    match state {
                        MachineNotify::Master => {
                            drop(self.notifier.notify(NotifyState::Master, prio))
                        }
                        MachineNotify::Backup => {
                            drop(self.notifier.notify(NotifyState::Backup, prio))
                        }
                        MachineNotify::Fault => {
                            drop(self.notifier.notify(NotifyState::Fault, prio))
                        }
                        MachineNotify::Stop => self.notifier.notify_stop(prio).await,
                    }
                }
                Action::Transition {
                    from,
                    to,
                    ref reason,
                } => {
                    if let Some(line) = logs::transition(&self.cfg.name, from, to) {
                        info!(reason = %reason, "{line}");
                    }
                    self.moved_by_group = matches!(reason, Reason::SyncGroup { .. });
                    if to == State::Master {
                        InstanceStats::count(&self.stats.become_master);
                        self.relay_to = self.previous_master(reason);
                        if self.relay.as_ref().map(|r| r.to) != self.relay_to {
                            // Prepared for another MASTER, or that one vanished after all.
                            self.let_relay_go();
                        }
                    } else if from == State::Master {
                        self.relay_to = None;
                        self.close_relay_now(matches!(reason, Reason::Shutdown))
                            .await;
                    }
                    let own = self.primary.or(self.cfg.unicast_src_ip);
                    self.stats.update(|d| {
                        d.last_transition = Some(TransitionRecord {
                            at: std::time::SystemTime::now(),
                            from,
                            to,
                            reason: reason.to_string(),
                        });
                        if to == State::Master {
                            d.master = own;
                        } else if from == State::Master {
                            d.master = None;
                        }
                    });
                    self.publish();
                }
                Action::PriorityChanged { from, to } => {
                    info!("{}", logs::priority_changed(&self.cfg.name, from, to));
                    self.publish();
                }
                Action::Log(ref l) => {
                    let line = logs::line(&self.cfg.name, l);
                    if l.is_detail() {
                        debug!("{line}");
                    } else {
                        info!("{line}");
                    }
                }
            }
        }
    }

    /// The MASTER we take over from when it is still up, holding the VIPs for its hand-back:
    /// one that resigned (priority-0 advert), or one we preempt (the down timer ran out while
    /// its lower-priority adverts kept coming: the last one came within two intervals; a
    /// MASTER that vanished sent none for three).
    fn previous_master(&self, reason: &Reason) -> Option<IpAddr> {
        if !self.cfg.handover_relay {
            return None;
        }
        match reason {
            Reason::PriorityZeroAdvert { from } => Some(*from),
            Reason::MasterDownTimer => {
                let recent = centiseconds(self.cfg.advert_int) * 2;
                self.last_peer
                    .filter(|(_, priority, at)| *priority > 0 && at.elapsed() <= recent)
                    .map(|(src, _, _)| src)
            }
            _ => None,
        }
    }

    /// Starts getting the hand-over relay to `to` ready (a task runs `nft`); nothing when
    /// one for `to` is already there or the relay is off or impossible.
    fn prepare_relay(&mut self, to: IpAddr) {
        let ready = |r: &RelayHandle| r.to == to && !r.task.is_finished();
        if !self.cfg.handover_relay || self.relay.as_ref().is_some_and(ready) {
            return;
        }
        let name = self.cfg.name.clone();
        if !relay::available() {
            if !self.relay_missing_logged {
                self.relay_missing_logged = true;
                warn!("({name}) nft not found: connections still opening with {to} as the VIPs move here are reset (install nftables for the hand-over relay)");
            }
            return;
        }
        let r = self.relay_table();
        // Unclaimed (no take-over after all) it closes after the down timer could have run
        // out, with a margin.
        let unclaimed = centiseconds(self.cfg.advert_int) * 4 + Duration::from_secs(1);
        self.let_relay_go();
        let prior = self.relay_closing.take();
        self.relay = Some(RelayHandle::start(name, r, to, unclaimed, prior));
    }

    /// Tells the current relay (if any) to close, keeping its task for the next one to wait on.
    fn let_relay_go(&mut self) {
        if let Some(h) = self.relay.take() {
            h.ctl.send_replace(RelayPhase::Close);
            self.relay_closing = Some(h.task);
        }
    }

    /// Opens the hand-over relay to `previous` for [`RELAY_WINDOW`] (io/relay.rs): claims the
    /// prepared one, waiting [`RELAY_OPEN_LIMIT`] at most for `nft` to finish (the VIPs
    /// wait meanwhile, which costs nothing: the old MASTER still serves them).
    async fn open_relay(&mut self, previous: IpAddr) {
        let since = Instant::now();
        self.prepare_relay(previous);
        let name = self.cfg.name.clone();
        let Some(handle) = self.relay.as_mut() else {
            return;
        };
        let ready = tokio::time::timeout(RELAY_OPEN_LIMIT, async {
            let _ = handle.opened.wait_for(Option::is_some).await;
        })
        .await
        .is_ok();
        let opened = handle.opened.borrow().clone();
        match opened {
            Some(Ok(took)) => info!(
                "({name}) hand-over relay open: segments of connections {previous} still holds go to it for {} ms (nft took {} ms, waited {} ms)",
                RELAY_WINDOW.as_millis(),
                took.as_millis(),
                since.elapsed().as_millis()
            ),
            Some(Err(e)) => warn!(
                "({name}) cannot open the hand-over relay to {previous}: {e}; connections still opening there as the VIPs move are reset"
            ),
            None if !ready => warn!(
                "({name}) the hand-over relay to {previous} is not open after {} ms; going on without waiting",
                RELAY_OPEN_LIMIT.as_millis()
            ),
            None => {}
        }
        // Closed [`RELAY_WINDOW`] after the take-over either way (a late `nft` may still
        // load it).
        handle.ctl.send_replace(RelayPhase::Claimed(since));
    }

    /// Closes the hand-over relay now (we leave MASTER, or stop): waits for it when
    /// stopping.
    async fn close_relay_now(&mut self, wait: bool) {
        self.let_relay_go();
        if wait {
            if let Some(task) = self.relay_closing.take() {
                let _ = tokio::time::timeout(Duration::from_secs(3), task).await;
            }
        }
    }

    /// This instance's relay (its table is named after the VRID and interface).
    fn relay_table(&self) -> Relay {
        let vips: Vec<IpAddr> = self.cfg.virtual_addresses.iter().map(|v| v.addr).collect();
        Relay::new(
            self.cfg.vrid,
            &self.cfg.interface,
            &vips,
            self.cfg.is_ipv6(),
        )
    }

    /// A table left by a process that was killed while a relay was open.
    async fn clear_leftover_relay(&self) {
        if !relay::available() {
            return;
        }
        let r = self.relay_table();
        if let Err(e) = r.clear_leftover().await {
            debug!(
                "({}) could not check for a left-over relay table {}: {e}",
                self.cfg.name,
                r.table()
            );
        }
    }

    fn publish(&self) {
        let status = InstanceStatus {
            state: self.machine.state(),
            priority: self.machine.effective_priority(),
        };
        self.status_tx.send_replace(status);
        let trackers = self.machine.tracker_states();
        let base = self.machine.config().priority;
        self.stats.update(|d| {
            d.trackers = trackers;
            d.base_priority = base;
        });
        if let Some(sink) = &self.events {
            sink.changed(&self.cfg.name, status.state, status.priority);
        }
        self.report_to_group();
    }
}

/// Whether this address is assigned here (in this namespace): a bind to it succeeds.
fn is_local(addr: IpAddr) -> bool {
    std::net::UdpSocket::bind((addr, 0)).is_ok()
}

/// Clears the TCP sockets left on `addrs` (see [`crate::io::stale`]) on a blocking thread;
/// logs what it did. Never fails the caller: a kernel without `SOCK_DESTROY` only loses the
/// clean-up.
async fn clear_stale(name: String, addrs: Vec<IpAddr>) {
    let shown = addrs
        .iter()
        .map(|a| a.to_string())
        .collect::<Vec<_>>()
        .join(", ");
    let t0 = Instant::now();
    let done = tokio::task::spawn_blocking(move || crate::io::stale::clear_stale_tcp(&addrs)).await;
    match done {
        Ok(Ok(c)) => {
            if c.destroyed > 0 {
                info!(
                    "({name}) cleared {} stale TCP socket(s) on {shown} ({} in TIME-WAIT) in {} ms",
                    c.destroyed,
                    c.time_wait,
                    t0.elapsed().as_millis()
                );
            }
            if c.failed > 0 {
                warn!(
                    "({name}) could not clear {} stale TCP socket(s) on {shown}: {}",
                    c.failed,
                    c.last_error.as_deref().unwrap_or("unknown")
                );
            }
        }
        Ok(Err(e)) => warn!("({name}) cannot list the TCP sockets on {shown} (sock_diag): {e}"),
        Err(e) => warn!("({name}) clearing stale TCP sockets on {shown} failed: {e}"),
    }
}

/// What the driver tells a hand-over relay's task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RelayPhase {
    /// Ready it; no take-over yet.
    Prepared,
    /// We took over at this time: close it [`RELAY_WINDOW`] after.
    Claimed(Instant),
    /// Close it now.
    Close,
}

/// A hand-over relay's task: opens the table at once, closes it [`RELAY_WINDOW`] after the
/// take-over, or when told, or when no take-over came in time, or when the driver is gone.
struct RelayHandle {
    to: IpAddr,
    ctl: watch::Sender<RelayPhase>,
    /// How long `nft` took, once it finished (or why it failed).
    opened: watch::Receiver<Option<Result<Duration, String>>>,
    task: JoinHandle<()>,
}

impl RelayHandle {
    fn start(
        name: String,
        r: Relay,
        to: IpAddr,
        unclaimed: Duration,
        prior: Option<JoinHandle<()>>,
    ) -> RelayHandle {
        let (ctl, ctl_rx) = watch::channel(RelayPhase::Prepared);
        let (opened_tx, opened) = watch::channel(None);
        let task = tokio::spawn(async move {
            // The same table: the last relay's removal must not come after our load.
            if let Some(prior) = prior {
                let _ = tokio::time::timeout(Duration::from_secs(3), prior).await;
            }
            relay_task(name, r, to, ctl_rx, opened_tx, unclaimed).await;
        });
        RelayHandle {
            to,
            ctl,
            opened,
            task,
        }
    }
}

async fn relay_task(
    name: String,
    r: Relay,
    to: IpAddr,
    mut ctl: watch::Receiver<RelayPhase>,
    opened: watch::Sender<Option<Result<Duration, String>>>,
    unclaimed: Duration,
) {
    let t0 = Instant::now();
    let result = r.open(to).await;
    opened.send_replace(Some(
        result.map(|()| t0.elapsed()).map_err(|e| e.to_string()),
    ));
    let give_up = tokio::time::Instant::from_std(t0 + unclaimed);
    let mut claimed = None;
    loop {
        let phase = *ctl.borrow_and_update();
        let until = match phase {
            RelayPhase::Close => break,
            RelayPhase::Claimed(since) => {
                claimed = Some(since);
                tokio::time::Instant::from_std(since + RELAY_WINDOW)
            }
            RelayPhase::Prepared => give_up,
        };
        tokio::select! {
            changed = ctl.changed() => if changed.is_err() { break },
            _ = tokio::time::sleep_until(until) => break,
        }
    }
    match (r.close().await, claimed) {
        (Ok(Some(n)), Some(_)) => {
            info!("({name}) hand-over relay to {to} closed: {n} segment(s) passed on")
        }
        (Ok(_), Some(_)) => info!("({name}) hand-over relay to {to} closed"),
        (Ok(_), None) => debug!("({name}) hand-over relay to {to} closed unused (no take-over)"),
        (Err(e), _) => warn!(
            "({name}) cannot remove the hand-over relay table {}: {e}",
            r.table()
        ),
    }
}
