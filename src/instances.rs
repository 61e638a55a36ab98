//! The running VRRP instances and what a SIGHUP does to them, with keepalived's reload
//! semantics (vrrp.md §10): a changed instance is reconfigured in place (it keeps its state,
//! a MASTER its VIPs), a new one starts as at boot, a removed one stops as on SIGTERM, and
//! one whose identity on the wire changed (interface, VRID, version, address family) or
//! whose sync group changed restarts alone, said in the log.

use crate::notify_fifo::FifoSink;
use crate::wiring;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use tokio::sync::watch;
use tracing::{error, info, warn};
use vrrp::instance::{Instance, InstanceOptions};
use vrrp::sync_group::{SyncGroup, SyncGroupConfig};
use vrrp::InstanceConfig;

/// A sync group whose state changes also go to the notify_fifo (`GROUP` lines).
fn new_group(cfg: SyncGroupConfig, fifo: &Option<Arc<FifoSink>>) -> Arc<SyncGroup> {
    let events = fifo.clone().map(|f| f as Arc<dyn vrrp::stats::StateSink>);
    SyncGroup::with_events(cfg, events)
}

/// The number of UP servers per backend, for `track_backends`.
pub type BackendUp = HashMap<String, watch::Receiver<usize>>;

/// Everything an instance is started with, and the instances running.
pub struct Instances {
    engine: tokio::runtime::Handle,
    gate_table: wiring::GateTable,
    masters: Arc<Mutex<HashSet<String>>>,
    fifo: Option<Arc<FifoSink>>,
    groups: Vec<Arc<SyncGroup>>,
    pub running: Vec<Instance>,
}

impl Instances {
    pub fn new(
        engine: tokio::runtime::Handle,
        gate_table: wiring::GateTable,
        masters: Arc<Mutex<HashSet<String>>>,
        fifo: Option<Arc<FifoSink>>,
        groups: &[SyncGroupConfig],
    ) -> Instances {
        let groups = groups
            .iter()
            .cloned()
            .map(|g| new_group(g, &fifo))
            .collect();
        Instances {
            engine,
            gate_table,
            masters,
            fifo,
            groups,
            running: Vec::new(),
        }
    }

    /// Starts one instance on the engine's runtime (its tasks live there).
    pub async fn start(
        &mut self,
        cfg: InstanceConfig,
        backend_up: BackendUp,
    ) -> Result<(), String> {
        let mut opts = InstanceOptions {
            backend_up,
            ..InstanceOptions::default()
        };
        // Always installed: a reload may bring gated frontends in.
        opts.hook = Some(Arc::new(wiring::GateHook::new(
            &cfg.name,
            self.gate_table.clone(),
            self.masters.clone(),
            tokio::runtime::Handle::current(),
        )));
        opts.sync_group = self.groups.iter().find(|g| g.contains(&cfg.name)).cloned();
        if let Some(f) = &self.fifo {
            opts.events = Some(f.clone());
        }
        match self.engine.spawn(Instance::start(cfg, opts)).await {
            Ok(Ok(i)) => {
                self.running.push(i);
                Ok(())
            }
            Ok(Err(e)) => Err(e.to_string()),
            Err(e) => Err(format!("VRRP instance start-up failed: {e}")),
        }
    }

    /// SIGHUP: brings the running instances from `old` to `new`. Returns the names of the
    /// instances that could not be (re)started or reconfigured (each logged).
    pub async fn reload(
        &mut self,
        old: &[InstanceConfig],
        new: &[InstanceConfig],
        groups: (&[SyncGroupConfig], &[SyncGroupConfig]),
        backend_up: impl Fn() -> BackendUp,
    ) -> Vec<String> {
        let restart_groups = self.reload_groups(groups.0, groups.1);
        let mut failed = Vec::new();
        // Removed instances first: a new one may take over their VRID or VIPs.
        let gone: Vec<String> = old
            .iter()
            .filter(|o| !new.iter().any(|n| n.name == o.name))
            .map(|o| o.name.clone())
            .collect();
        for name in &gone {
            info!("({name}) removed from the configuration: stopping it");
        }
        self.stop(&gone).await;
        for n in new {
            let Some(o) = old.iter().find(|o| o.name == n.name) else {
                info!("({}) new in the configuration: starting it", n.name);
                if let Err(e) = self.start(n.clone(), backend_up()).await {
                    error!("({}) cannot start: {e}", n.name);
                    failed.push(n.name.clone());
                }
                continue;
            };
            let why = vrrp::instance::restart_reason(o, n).or_else(|| {
                n.sync_group
                    .as_ref()
                    .filter(|g| restart_groups.contains(*g))
                    .map(|g| format!("its sync group {g} changed"))
            });
            if let Some(why) = why {
                warn!(
                    "({}) {why}: restarting this instance (it cannot change in place)",
                    n.name
                );
                self.stop(std::slice::from_ref(&n.name)).await;
                if let Err(e) = self.start(n.clone(), backend_up()).await {
                    error!("({}) cannot start again: {e}", n.name);
                    failed.push(n.name.clone());
                }
                continue;
            }
            let Some(r) = self.running.iter().find(|r| r.name() == n.name) else {
                // It failed to start again on an earlier reload: try once more.
                if let Err(e) = self.start(n.clone(), backend_up()).await {
                    error!("({}) cannot start: {e}", n.name);
                    failed.push(n.name.clone());
                }
                continue;
            };
            if o == n {
                continue;
            }
            if let Err(e) = r.reconfigure(n.clone(), backend_up()).await {
                error!(
                    "reload of {} refused: {e}; it keeps running as it was",
                    n.name
                );
                failed.push(n.name.clone());
            }
        }
        failed
    }

    /// Sync groups: an unchanged group keeps its shared state, and so does one whose notify
    /// scripts alone changed (they are replaced in place); a new group gets a fresh one.
    /// Returns the names of the groups whose members changed: those members restart (they
    /// report into one shared view, which cannot be rewired in place).
    fn reload_groups(&mut self, old: &[SyncGroupConfig], new: &[SyncGroupConfig]) -> Vec<String> {
        let mut changed = Vec::new();
        let mut groups = Vec::new();
        for n in new {
            let running = self.groups.iter().find(|g| g.name() == n.name).cloned();
            let group = match (group_change(old, n), running) {
                (GroupChange::Same, Some(g)) => g,
                (GroupChange::Notify, Some(g)) => {
                    info!("sync group {}: notify scripts reloaded in place", n.name);
                    g.set_notify(n.notify.clone());
                    g
                }
                (GroupChange::Members, _) => {
                    warn!(
                        "sync group {} changed its members: they restart ({})",
                        n.name,
                        n.members.join(", ")
                    );
                    changed.push(n.name.clone());
                    new_group(n.clone(), &self.fifo)
                }
                _ => new_group(n.clone(), &self.fifo),
            };
            groups.push(group);
        }
        self.groups = groups;
        changed
    }

    /// Stops these instances as SIGTERM does (a MASTER sends its priority-0 advert and
    /// removes its VIPs), all at once.
    pub async fn stop(&mut self, names: &[String]) {
        let (stopping, keep): (Vec<Instance>, Vec<Instance>) = std::mem::take(&mut self.running)
            .into_iter()
            .partition(|i| names.iter().any(|n| n == i.name()));
        self.running = keep;
        stop_all(stopping).await;
    }

    pub async fn stop_everything(&mut self) {
        stop_all(std::mem::take(&mut self.running)).await;
    }
}

/// Stops every instance at once: masters send their priority-0 adverts together, so the
/// whole stop takes about one STOP-script wait, not one per instance.
async fn stop_all(instances: Vec<Instance>) {
    let stops: Vec<_> = instances
        .into_iter()
        .map(|i| tokio::spawn(i.shutdown()))
        .collect();
    for s in stops {
        let _ = s.await;
    }
}

/// How a group of the new file differs from the running one of the same name.
#[derive(Debug, PartialEq, Eq)]
enum GroupChange {
    /// New in the file.
    Added,
    Same,
    /// Only the notify scripts.
    Notify,
    Members,
}

fn group_change(old: &[SyncGroupConfig], new: &SyncGroupConfig) -> GroupChange {
    match old.iter().find(|o| o.name == new.name) {
        None => GroupChange::Added,
        Some(o) if o == new => GroupChange::Same,
        Some(o) if o.members == new.members => GroupChange::Notify,
        Some(_) => GroupChange::Members,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vrrp::NotifyScripts;

    fn group(members: &[&str], master: Option<&str>) -> SyncGroupConfig {
        SyncGroupConfig {
            name: "G1".into(),
            members: members.iter().map(|m| (*m).to_owned()).collect(),
            notify: NotifyScripts {
                master: master.map(str::to_owned),
                ..NotifyScripts::default()
            },
        }
    }

    #[test]
    fn a_group_changes_in_place_unless_its_members_change() {
        let old = [group(&["VI_1", "VI_2"], None)];
        assert_eq!(group_change(&old, &old[0]), GroupChange::Same);
        let notify = group(&["VI_1", "VI_2"], Some("/usr/local/bin/master.sh"));
        assert_eq!(group_change(&old, &notify), GroupChange::Notify);
        assert_eq!(
            group_change(&old, &group(&["VI_1"], None)),
            GroupChange::Members
        );
        assert_eq!(group_change(&[], &old[0]), GroupChange::Added);
    }
}
