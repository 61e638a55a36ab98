//! The one view of both halves: the balancer's numbers and the VRRP instances', copied into
//! the proxy crate's [`Snapshot`] for the stats listener (page, CSV, JSON, `/metrics`) and
//! for `vrrplb status`. The daemon swaps the balancer's handle on a reload; the instances
//! stay for the life of the process.

use crate::config::{schema, translate, Validated};
use proxy::observe::snapshot::{
    AnnounceView, Snapshot, TrackerView, TransitionView, VrrpInstanceView,
};
use proxy::observe::stats_server::{StatsConfig, DEFAULT_REALM};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::sync::watch;
use vrrp::instance::{Instance, InstanceStatus};
use vrrp::packet::DropCounters;
use vrrp::stats::InstanceStats;

/// What is read of one running instance.
pub struct InstanceSource {
    pub name: String,
    pub interface: String,
    pub vrid: u8,
    pub vips: Vec<String>,
    pub status: watch::Receiver<InstanceStatus>,
    pub drops: Arc<DropCounters>,
    pub stats: Arc<InstanceStats>,
}

impl InstanceSource {
    pub fn new(i: &Instance, cfg: &vrrp::InstanceConfig) -> InstanceSource {
        InstanceSource {
            name: i.name().to_owned(),
            interface: cfg.interface.clone(),
            vrid: cfg.vrid,
            vips: cfg
                .virtual_addresses
                .iter()
                .map(|v| format!("{}/{}", v.addr, v.prefix_len))
                .collect(),
            status: i.status(),
            drops: i.drop_counters(),
            stats: i.stats(),
        }
    }

    fn view(&self) -> VrrpInstanceView {
        let st = *self.status.borrow();
        let d = self.stats.detail();
        VrrpInstanceView {
            name: self.name.clone(),
            interface: self.interface.clone(),
            vrid: self.vrid,
            state: st.state.to_string(),
            priority: st.priority,
            base_priority: d.base_priority,
            vips: self.vips.clone(),
            master: d.master.map(|m| m.to_string()),
            last_transition: d.last_transition.map(|t| TransitionView {
                at: unix_secs(t.at),
                from: t.from.to_string(),
                to: t.to.to_string(),
                reason: t.reason,
            }),
            trackers: d
                .trackers
                .iter()
                .map(|t| TrackerView {
                    name: t.name.clone(),
                    kind: t.kind_str().to_owned(),
                    status: t.status_str().to_owned(),
                })
                .collect(),
            adverts_sent: InstanceStats::get(&self.stats.adverts_sent),
            adverts_received: InstanceStats::get(&self.stats.adverts_received),
            become_master: InstanceStats::get(&self.stats.become_master),
            invalid_adverts: self
                .drops
                .snapshot()
                .into_iter()
                .map(|(k, n)| (k.to_owned(), n))
                .collect(),
        }
    }
}

fn unix_secs(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Everything the snapshot is built from.
pub struct Observed {
    started: Instant,
    node: Mutex<String>,
    proxy: Mutex<Option<proxy::StatsHandle>>,
    instances: Mutex<Vec<InstanceSource>>,
    announces: Mutex<Vec<crate::announce::Source>>,
}

impl Observed {
    pub fn new(node: &str) -> Arc<Observed> {
        Arc::new(Observed {
            started: Instant::now(),
            node: Mutex::new(node.to_owned()),
            proxy: Mutex::new(None),
            instances: Mutex::new(Vec::new()),
            announces: Mutex::new(Vec::new()),
        })
    }

    pub fn set_node(&self, node: &str) {
        *lock(&self.node) = node.to_owned();
    }

    pub fn set_balancer(&self, p: Option<&proxy::Proxy>) {
        *lock(&self.proxy) = p.map(|p| p.stats_handle());
    }

    pub fn set_instances(&self, list: Vec<InstanceSource>) {
        *lock(&self.instances) = list;
    }

    pub fn set_announces(&self, list: Vec<crate::announce::Source>) {
        *lock(&self.announces) = list;
    }

    /// The longest time any instance's loop has not turned (`None` without instances).
    pub fn slowest_engine(&self) -> Option<Duration> {
        lock(&self.instances)
            .iter()
            .map(|i| i.stats.since_beat())
            .max()
    }

    /// Test hook: wedges every instance's loop.
    pub fn stall_engines(&self) {
        for i in lock(&self.instances).iter() {
            i.stats.stall();
        }
    }

    pub fn snapshot(&self) -> Snapshot {
        let handle = lock(&self.proxy).clone();
        Snapshot {
            product: "vrrplb".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            node: lock(&self.node).clone(),
            pid: std::process::id(),
            uptime_secs: self.started.elapsed().as_secs(),
            time: unix_secs(SystemTime::now()),
            maxconn: handle.as_ref().map(|h| h.maxconn()).unwrap_or(0),
            tasks: tokio::runtime::Handle::try_current()
                .ok()
                .map(|h| h.metrics().num_alive_tasks()),
            vrrp: lock(&self.instances).iter().map(|i| i.view()).collect(),
            announce: lock(&self.announces).iter().map(announce_view).collect(),
            proxy: handle.map(|h| h.stats()).unwrap_or_default(),
        }
    }
}

fn announce_view(a: &crate::announce::Source) -> AnnounceView {
    let st = a.status.borrow();
    AnnounceView {
        name: a.cfg.name.clone(),
        address: a.cfg.address(),
        interface: a.cfg.interface.clone(),
        state: st.state.as_str().to_owned(),
        reason: st.reason.clone(),
        since: unix_secs(st.since),
        withdrawals: st.withdrawals,
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// `global.stats` as the stats listener's config (validated already).
pub fn stats_config(v: &Validated) -> Option<StatsConfig> {
    let s: &schema::Stats = v.file.global.stats.as_ref()?;
    let mut c = StatsConfig::new(translate::bind_addr(&s.bind)?);
    if let Some(u) = &s.uri {
        c.uri = u.clone();
    }
    c.refresh = s
        .refresh
        .as_ref()
        .and_then(|d| d.parse().ok())
        .filter(|d| !d.is_zero());
    c.show_node = s.show_node;
    c.auth = s
        .auth
        .as_ref()
        .map(|a| (a.user.clone(), a.password.clone()));
    c.realm = s.realm.clone().unwrap_or_else(|| DEFAULT_REALM.into());
    if let Some(m) = s.maxconn {
        c.maxconn = m.clamp(1, 10_000) as usize;
    }
    Some(c)
}

/// Same listener settings (a reload keeps the running listener then).
pub fn same_stats(a: &Option<StatsConfig>, b: &Option<StatsConfig>) -> bool {
    format!("{a:?}") == format!("{b:?}")
}
