//! SIGHUP for a running instance, with keepalived's reload semantics (vrrp.md §10): what a
//! changed configuration can change in place, and doing it without leaving MASTER and
//! without a priority-0 advert. What identifies the virtual router on the wire (interface,
//! VRID, version, address family), the address owner's priority and the sync group wiring
//! need a restart of the instance instead; [`restart_reason`] says which.

use super::{Driver, Feed, InstanceError, RunningScript};
use crate::config::{InstanceConfig, VirtualAddress};
use crate::io::socket::{Delivery, VrrpSocket};
use crate::machine::{centiseconds, MachineConfig, State, TrackerKind, OWNER_PRIORITY};
use crate::notify::Notifier;
use crate::packet::{DropLogLimiter, ReceiveRules};
use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};
use tokio::sync::watch;
use tracing::info;

/// Why `new` cannot replace `old` in a running instance (the instance must restart), or
/// `None` when it can be applied in place.
pub fn restart_reason(old: &InstanceConfig, new: &InstanceConfig) -> Option<String> {
    if old.interface != new.interface {
        return Some(format!(
            "interface changed ({} -> {})",
            old.interface, new.interface
        ));
    }
    if old.vrid != new.vrid {
        return Some(format!(
            "virtual_router_id changed ({} -> {})",
            old.vrid, new.vrid
        ));
    }
    if old.version != new.version {
        return Some(format!(
            "version changed ({} -> {})",
            old.version.number(),
            new.version.number()
        ));
    }
    if family(old) != family(new) {
        return Some("the address family of the VIPs changed".into());
    }
    let owner = |c: &InstanceConfig| c.priority == OWNER_PRIORITY;
    if owner(old) != owner(new) {
        return Some(format!(
            "priority changed to or from 255, the address owner ({} -> {})",
            old.priority, new.priority
        ));
    }
    if old.sync_group != new.sync_group {
        return Some(format!(
            "sync group changed ({} -> {})",
            old.sync_group.as_deref().unwrap_or("none"),
            new.sync_group.as_deref().unwrap_or("none")
        ));
    }
    None
}

/// Whether the VIPs are IPv6 (the first one decides: one family per instance).
fn family(c: &InstanceConfig) -> Option<bool> {
    c.virtual_addresses.first().map(|v| v.addr.is_ipv6())
}

/// What differs between two configs of one instance, a short phrase each, for the log.
pub fn changes(old: &InstanceConfig, new: &InstanceConfig) -> Vec<String> {
    let mut out = Vec::new();
    let (removed, added) = vip_diff(&old.virtual_addresses, &new.virtual_addresses);
    for v in &added {
        out.push(format!("VIP {} added", show(v)));
    }
    for v in &removed {
        out.push(format!("VIP {} removed", show(v)));
    }
    if old.priority != new.priority {
        out.push(format!("priority {} -> {}", old.priority, new.priority));
    }
    if old.advert_int != new.advert_int {
        out.push(format!(
            "advert_int {} ms -> {} ms",
            u32::from(old.advert_int) * 10,
            u32::from(new.advert_int) * 10
        ));
    }
    let preempt = |c: &InstanceConfig| (c.nopreempt, c.preempt_delay, c.initial_state);
    if preempt(old) != preempt(new) {
        out.push("preemption settings".into());
    }
    let garp = |c: &InstanceConfig| {
        (
            c.garp_master_delay,
            c.garp_master_repeat,
            c.garp_master_refresh,
        )
    };
    if garp(old) != garp(new) {
        out.push("gratuitous ARP settings".into());
    }
    if old.handover_relay != new.handover_relay {
        out.push(format!(
            "handover_relay {} -> {}",
            old.handover_relay, new.handover_relay
        ));
    }
    if old.auth_pass != new.auth_pass {
        out.push("authentication".into());
    }
    if old.unicast_peers != new.unicast_peers || old.unicast_src_ip != new.unicast_src_ip {
        out.push("unicast peers".into());
    }
    if old.notify != new.notify {
        out.push("notify scripts".into());
    }
    let trackers = |c: &InstanceConfig| {
        let mut t: Vec<String> = c
            .track_interfaces
            .iter()
            .map(|t| format!("track_interface {} weight {}", t.name, t.weight))
            .chain(
                c.track_scripts
                    .iter()
                    .map(|t| format!("track_script {} weight {}", t.script.name, t.weight)),
            )
            .chain(c.track_backends.iter().map(|t| {
                format!(
                    "track_backend {} min_up {} weight {}",
                    t.backend, t.min_up, t.weight
                )
            }))
            .collect();
        t.sort();
        t
    };
    let (was, now) = (trackers(old), trackers(new));
    for t in now.iter().filter(|t| !was.contains(t)) {
        out.push(format!("+{t}"));
    }
    for t in was.iter().filter(|t| !now.contains(t)) {
        out.push(format!("-{t}"));
    }
    let scripts_changed = new.track_scripts.iter().any(|n| {
        old.track_scripts
            .iter()
            .any(|o| o.script.name == n.script.name && o.script != n.script)
    });
    if scripts_changed {
        out.push("vrrp_script settings".into());
    }
    out
}

fn show(v: &VirtualAddress) -> String {
    let mut s = format!("{}/{}", v.addr, v.prefix_len);
    if let Some(d) = &v.dev {
        s.push_str(&format!(" dev {d}"));
    }
    if let Some(l) = &v.label {
        s.push_str(&format!(" label {l}"));
    }
    s
}

/// (removed, added): entries of `old` not in `new`, and of `new` not in `old`. A VIP whose
/// prefix, device or label changed is both (it is re-added with the new settings).
fn vip_diff(
    old: &[VirtualAddress],
    new: &[VirtualAddress],
) -> (Vec<VirtualAddress>, Vec<VirtualAddress>) {
    let removed = old.iter().filter(|v| !new.contains(v)).cloned().collect();
    let added = new.iter().filter(|v| !old.contains(v)).cloned().collect();
    (removed, added)
}

impl Driver {
    /// Applies `new` in place (the caller checked [`restart_reason`]). Whatever can fail
    /// (scripts, backends, the socket) is prepared first, so an error leaves the instance
    /// as it ran.
    pub(super) async fn reconfigure(
        &mut self,
        new: InstanceConfig,
        backend_up: HashMap<String, watch::Receiver<usize>>,
    ) -> Result<(), InstanceError> {
        let name = self.cfg.name.clone();
        let what = changes(&self.cfg, &new);
        for t in &new.track_backends {
            if !backend_up.contains_key(&t.backend) {
                return Err(InstanceError::UnknownBackend {
                    instance: name,
                    backend: t.backend.clone(),
                });
            }
        }
        let mut fresh = Vec::new();
        for t in &new.track_scripts {
            if !self.scripts.iter().any(|s| s.config == t.script) {
                fresh.push(RunningScript::start(&name, &t.script, &self.tracker_tx)?);
            }
        }
        let delivery = if new.unicast_peers.is_empty() {
            Delivery::Multicast
        } else {
            Delivery::Unicast
        };
        if delivery != self.socket.delivery() {
            self.socket = VrrpSocket::open_family(&new.interface, delivery, new.is_ipv6())
                .map_err(|source| InstanceError::Socket {
                    instance: name.clone(),
                    interface: new.interface.clone(),
                    source,
                })?;
        }

        self.swap_trackers(&new, fresh, &backend_up);
        let added_links = self.new_interface_states(&new).await;
        let added_vips = self.move_vips(&new).await;
        if new.unicast_src_ip != self.cfg.unicast_src_ip {
            self.primary = new.unicast_src_ip;
        }
        if new.notify != self.cfg.notify {
            self.notifier = Notifier::new(name.clone(), new.notify.clone());
        }
        if new.advert_int != self.cfg.advert_int {
            self.limiter =
                DropLogLimiter::new(centiseconds(new.advert_int).max(Duration::from_secs(1)));
        }
        self.cfg = new;
        if self.cfg.unicast_src_ip.is_none() {
            self.refresh_primary().await;
        }
        self.rules = ReceiveRules::from_config(&self.cfg);
        self.rules.own_address = self.primary;
        let unspecified = if self.cfg.is_ipv6() {
            IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED)
        } else {
            IpAddr::V4(Ipv4Addr::UNSPECIFIED)
        };
        let machine_cfg =
            MachineConfig::from_instance(&self.cfg, self.primary.unwrap_or(unspecified));
        info!(
            "({name}) reloaded in place ({}): {}",
            self.machine.state(),
            if what.is_empty() {
                "no change".to_owned()
            } else {
                what.join(", ")
            }
        );
        let actions = self.machine.reconfigure(machine_cfg, Instant::now());
        self.execute(actions).await;
        if self.machine.state() == State::Master && !added_vips.is_empty() {
            // keepalived: new VIPs of a MASTER are announced at once.
            let count = self.cfg.garp_master_repeat.max(1);
            self.send_garps_for(&added_vips, count).await;
        }
        for (ifname, up) in added_links {
            self.tracker_event(TrackerKind::Interface, &ifname, up)
                .await;
        }
        self.publish();
        Ok(())
    }

    /// Keeps the script trackers and backend feeds the new config still uses unchanged,
    /// starts the new ones (`fresh`, already running) and drops the rest.
    fn swap_trackers(
        &mut self,
        new: &InstanceConfig,
        mut fresh: Vec<RunningScript>,
        backend_up: &HashMap<String, watch::Receiver<usize>>,
    ) {
        let mut old = std::mem::take(&mut self.scripts);
        for t in &new.track_scripts {
            let from = if old.iter().any(|s| s.config == t.script) {
                &mut old
            } else {
                &mut fresh
            };
            if let Some(i) = from.iter().position(|s| s.config == t.script) {
                self.scripts.push(from.swap_remove(i));
            }
        }
        let mut feeds: HashMap<String, (u32, Feed)> = HashMap::new();
        for t in &new.track_backends {
            let kept = self
                .backend_feeds
                .remove(&t.backend)
                .filter(|(min_up, _)| *min_up == t.min_up);
            let feed = match (kept, backend_up.get(&t.backend)) {
                (Some(k), _) => k,
                (None, Some(rx)) => {
                    super::feed_backend(&t.backend, t.min_up, rx.clone(), &self.tracker_tx)
                }
                (None, None) => continue,
            };
            feeds.insert(t.backend.clone(), feed);
        }
        // What is left in `old` and `self.backend_feeds` stops here.
        self.backend_feeds = feeds;
    }

    /// The link state of each interface the new config tracks and the old one did not.
    async fn new_interface_states(&self, new: &InstanceConfig) -> Vec<(String, bool)> {
        let mut out = Vec::new();
        for t in &new.track_interfaces {
            if self.cfg.track_interfaces.iter().any(|o| o.name == t.name) {
                continue;
            }
            let up = self.netlink.link_is_up(&t.name).await.unwrap_or(false);
            out.push((t.name.clone(), up));
        }
        out
    }

    /// While the VIPs are held (MASTER, or a step-down's hand-back): removed VIPs leave the
    /// interface and added ones join it, before the first advert that lists them. Returns
    /// the added VIPs.
    async fn move_vips(&mut self, new: &InstanceConfig) -> Vec<VirtualAddress> {
        let (removed, added) = vip_diff(&self.cfg.virtual_addresses, &new.virtual_addresses);
        let holding = self.machine.state() == State::Master || self.release_at.is_some();
        if !holding {
            return added;
        }
        let name = self.cfg.name.clone();
        for v in &removed {
            info!("({name}) removing VIP {} (reload)", show(v));
        }
        self.change_vips(&removed, false).await;
        for v in &added {
            info!("({name}) adding VIP {} (reload)", show(v));
        }
        self.change_vips(&added, true).await;
        if removed.iter().chain(&added).any(|v| v.dev.is_some()) {
            // A device of its own may be new to this instance: its GARP sender opens on use.
            self.garp.retain(|dev, _| {
                new.virtual_addresses
                    .iter()
                    .any(|v| v.dev.as_deref().unwrap_or(&new.interface) == dev)
            });
        }
        added
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{InitialState, NotifyScripts, Version};

    fn base() -> InstanceConfig {
        InstanceConfig {
            name: "VI_1".into(),
            interface: "eth0".into(),
            vrid: 51,
            priority: 100,
            version: Version::V2,
            advert_int: 100,
            initial_state: InitialState::Backup,
            nopreempt: false,
            handover_relay: true,
            preempt_delay: Duration::ZERO,
            auth_pass: None,
            unicast_src_ip: None,
            unicast_peers: vec![],
            virtual_addresses: vec![vip(100, None)],
            garp_master_delay: Duration::from_secs(5),
            garp_master_repeat: 5,
            garp_master_refresh: Duration::ZERO,
            track_interfaces: vec![],
            track_scripts: vec![],
            track_backends: vec![],
            notify: NotifyScripts::default(),
            sync_group: None,
        }
    }

    fn vip(last: u8, label: Option<&str>) -> VirtualAddress {
        VirtualAddress {
            addr: Ipv4Addr::new(198, 51, 100, last).into(),
            prefix_len: 24,
            dev: None,
            label: label.map(str::to_owned),
        }
    }

    #[test]
    fn what_identifies_the_router_needs_a_restart_and_the_rest_does_not() {
        let old = base();
        let mut n = base();
        n.virtual_addresses.push(vip(101, None));
        n.advert_int = 200;
        n.auth_pass = Some(*b"secret\0\0");
        n.unicast_peers = vec![Ipv4Addr::new(198, 51, 100, 12).into()];
        n.priority = 150;
        n.nopreempt = true;
        assert_eq!(restart_reason(&old, &n), None);
        let c = changes(&old, &n);
        for want in [
            "VIP 198.51.100.101/24 added",
            "priority 100 -> 150",
            "advert_int 1000 ms -> 2000 ms",
            "authentication",
            "unicast peers",
            "preemption settings",
        ] {
            assert!(c.iter().any(|x| x == want), "{want} missing from {c:?}");
        }

        let mut n = base();
        n.interface = "eth1".into();
        assert!(restart_reason(&old, &n).is_some_and(|r| r.contains("interface")));
        let mut n = base();
        n.vrid = 52;
        assert!(restart_reason(&old, &n).is_some_and(|r| r.contains("virtual_router_id")));
        let mut n = base();
        n.version = Version::V3;
        assert!(restart_reason(&old, &n).is_some_and(|r| r.contains("version")));
        let mut n = base();
        n.priority = 255;
        assert!(restart_reason(&old, &n).is_some_and(|r| r.contains("255")));
        let mut n = base();
        n.sync_group = Some("G1".into());
        assert!(restart_reason(&old, &n).is_some_and(|r| r.contains("sync group")));
    }

    #[test]
    fn a_relabelled_vip_is_removed_and_added_again() {
        let old = [vip(100, None), vip(101, None)];
        let new = [vip(100, None), vip(101, Some("eth0:vip"))];
        let (removed, added) = vip_diff(&old, &new);
        assert_eq!(removed, vec![vip(101, None)]);
        assert_eq!(added, vec![vip(101, Some("eth0:vip"))]);
        let (removed, added) = vip_diff(&old, &old);
        assert!(removed.is_empty() && added.is_empty());
    }
}
