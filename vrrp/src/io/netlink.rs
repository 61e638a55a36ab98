//! Interface addresses and link state through rtnetlink.
//!
//! [`Netlink`] answers the questions an instance asks (which index and MAC an interface has,
//! which address adverts go out from, is it up) and adds and removes VIPs.
//! [`LinkWatcher`] turns the kernel's RTNLGRP_LINK notifications into up/down changes, so a
//! cable pull reaches the state machine in milliseconds instead of at the next poll.
//!
//! Everything here works in the network namespace of the thread that created the handle.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::pin::Pin;
use std::task::{Context, Poll};

use futures::stream::{Stream, StreamExt, TryStreamExt};
use netlink_packet_route::address::{
    AddressAttribute, AddressFlags, AddressHeaderFlags, AddressMessage,
};
use netlink_packet_route::link::{LinkAttribute, LinkFlags, LinkMessage};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use rtnetlink::packet_core::NetlinkPayload;
use rtnetlink::{AddressMessageBuilder, Handle, MulticastGroup};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

#[derive(Debug, thiserror::Error)]
pub enum NetlinkError {
    #[error("cannot open a netlink socket: {0}")]
    Open(#[source] io::Error),
    #[error("interface {0} not found")]
    NoSuchLink(String),
    #[error("interface {0} has no Ethernet MAC address")]
    NoMac(String),
    #[error("netlink: {op}: {source}")]
    Kernel {
        op: String,
        #[source]
        source: io::Error,
    },
    #[error("netlink: {op}: {source}")]
    Protocol {
        op: String,
        #[source]
        source: rtnetlink::Error,
    },
}

/// The errno a netlink request failed with, if the kernel refused it.
fn errno(e: &rtnetlink::Error) -> Option<i32> {
    match e {
        rtnetlink::Error::NetlinkError(m) => m.code.map(|c| c.get().abs()),
        _ => None,
    }
}

fn request_error(op: impl Into<String>, e: rtnetlink::Error) -> NetlinkError {
    let op = op.into();
    match e {
        rtnetlink::Error::NetlinkError(m) => NetlinkError::Kernel {
            op,
            source: m.to_io(),
        },
        other => NetlinkError::Protocol { op, source: other },
    }
}

/// "Up" as keepalived means it for tracking (vrrp.md §10): administratively up and with
/// carrier.
fn flags_up(flags: LinkFlags) -> bool {
    flags.contains(LinkFlags::Up) && flags.contains(LinkFlags::Running)
}

fn link_name(link: &LinkMessage) -> Option<&str> {
    link.attributes.iter().find_map(|a| match a {
        LinkAttribute::IfName(n) => Some(n.as_str()),
        _ => None,
    })
}

/// One address of an interface as the kernel reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct AddrEntry {
    addr: IpAddr,
    prefix_len: u8,
    secondary: bool,
    /// IPv6: still in duplicate address detection (or failed it): not usable as a source.
    tentative: bool,
}

fn addr_entry(msg: &AddressMessage) -> Option<AddrEntry> {
    // IFA_LOCAL is the interface's own address; IFA_ADDRESS is the peer on point-to-point
    // links, so it is only a fallback (IPv6 sends IFA_ADDRESS only).
    let local = msg.attributes.iter().find_map(|a| match a {
        AddressAttribute::Local(ip) => Some(*ip),
        _ => None,
    });
    let addr = local.or_else(|| {
        msg.attributes.iter().find_map(|a| match a {
            AddressAttribute::Address(ip) => Some(*ip),
            _ => None,
        })
    })?;
    // The header holds the low 8 flag bits; IFA_FLAGS, when present, holds all 32.
    let flag = |h: AddressHeaderFlags, f: AddressFlags| {
        msg.header.flags.contains(h)
            || msg.attributes.iter().any(|a| match a {
                AddressAttribute::Flags(all) => all.contains(f),
                _ => false,
            })
    };
    Some(AddrEntry {
        addr,
        prefix_len: msg.header.prefix_len,
        secondary: flag(AddressHeaderFlags::Secondary, AddressFlags::Secondary),
        tentative: flag(AddressHeaderFlags::Tentative, AddressFlags::Tentative)
            || flag(AddressHeaderFlags::Dadfailed, AddressFlags::Dadfailed),
    })
}

/// fe80::/10.
fn is_link_local(ip: &Ipv6Addr) -> bool {
    ip.segments()[0] & 0xffc0 == 0xfe80
}

/// A connection to the kernel's routing netlink, served by a task on the current tokio
/// runtime (stopped when the handle is dropped).
#[derive(Debug)]
pub struct Netlink {
    handle: Handle,
    connection: JoinHandle<()>,
}

impl Drop for Netlink {
    fn drop(&mut self) {
        self.connection.abort();
    }
}

impl Netlink {
    /// Opens the connection. Must be called inside a tokio runtime.
    pub fn new() -> Result<Netlink, NetlinkError> {
        let (conn, handle, _unsolicited) =
            rtnetlink::new_connection().map_err(NetlinkError::Open)?;
        let connection = tokio::spawn(conn);
        Ok(Netlink { handle, connection })
    }

    async fn link(&self, name: &str) -> Result<LinkMessage, NetlinkError> {
        let mut replies = self
            .handle
            .link()
            .get()
            .match_name(name.to_owned())
            .execute();
        match replies.try_next().await {
            Ok(Some(link)) => Ok(link),
            Ok(None) => Err(NetlinkError::NoSuchLink(name.to_owned())),
            Err(e) if errno(&e) == Some(libc::ENODEV) => {
                Err(NetlinkError::NoSuchLink(name.to_owned()))
            }
            Err(e) => Err(request_error(format!("get link {name}"), e)),
        }
    }

    /// The interface index of `name`.
    pub async fn link_index(&self, name: &str) -> Result<u32, NetlinkError> {
        Ok(self.link(name).await?.header.index)
    }

    /// The interface's hardware address (the source MAC of our adverts and GARPs).
    pub async fn link_mac(&self, name: &str) -> Result<[u8; 6], NetlinkError> {
        let link = self.link(name).await?;
        link.attributes
            .iter()
            .find_map(|a| match a {
                LinkAttribute::Address(bytes) => <[u8; 6]>::try_from(bytes.as_slice()).ok(),
                _ => None,
            })
            .ok_or_else(|| NetlinkError::NoMac(name.to_owned()))
    }

    /// Whether the interface is up with carrier (IFF_UP and IFF_RUNNING).
    pub async fn link_is_up(&self, name: &str) -> Result<bool, NetlinkError> {
        Ok(flags_up(self.link(name).await?.header.flags))
    }

    async fn entries(
        &self,
        name: &str,
        family: AddressFamily,
    ) -> Result<Vec<AddrEntry>, NetlinkError> {
        let index = self.link_index(name).await?;
        let mut req = self.handle.address().get().set_link_index_filter(index);
        // Ask the kernel for one family rather than filtering a full dump here.
        req.message_mut().header.family = family;
        req.execute()
            .try_filter_map(|msg| async move { Ok(addr_entry(&msg)) })
            .try_collect()
            .await
            .map_err(|e| request_error(format!("list addresses of {name}"), e))
    }

    /// Every address of `addr`'s family on the interface with its prefix length, in the
    /// kernel's order (primaries first).
    pub async fn addresses_like(
        &self,
        name: &str,
        addr: IpAddr,
    ) -> Result<Vec<(IpAddr, u8)>, NetlinkError> {
        let family = match addr {
            IpAddr::V4(_) => AddressFamily::Inet,
            IpAddr::V6(_) => AddressFamily::Inet6,
        };
        Ok(self
            .entries(name, family)
            .await?
            .into_iter()
            .map(|e| (e.addr, e.prefix_len))
            .collect())
    }

    /// Every IPv4 address on the interface with its prefix length, in the kernel's order
    /// (primaries first).
    pub async fn addresses(&self, name: &str) -> Result<Vec<(IpAddr, u8)>, NetlinkError> {
        self.addresses_like(name, Ipv4Addr::UNSPECIFIED.into())
            .await
    }

    /// The interface's primary IPv4 address: the first one the kernel does not flag as
    /// secondary. This is the advert source and the tie-break address (vrrp.md §3, §6), as in
    /// keepalived. A VIP in the interface's subnet is always secondary; a VIP in another
    /// subnet (a /32, say) is primary in its own subnet but listed after addresses added
    /// before it, so the real address still comes first.
    pub async fn primary_ipv4(&self, name: &str) -> Result<Option<Ipv4Addr>, NetlinkError> {
        Ok(self
            .entries(name, AddressFamily::Inet)
            .await?
            .into_iter()
            .filter(|e| !e.secondary)
            .find_map(|e| match e.addr {
                IpAddr::V4(v4) => Some(v4),
                IpAddr::V6(_) => None,
            }))
    }

    /// The interface's IPv6 link-local address once it is usable (past duplicate address
    /// detection): the source of IPv6 adverts (RFC 5798 §5.1.2.1) and the tie-break address.
    pub async fn link_local_ipv6(&self, name: &str) -> Result<Option<Ipv6Addr>, NetlinkError> {
        Ok(self
            .entries(name, AddressFamily::Inet6)
            .await?
            .into_iter()
            .filter(|e| !e.tentative)
            .find_map(|e| match e.addr {
                IpAddr::V6(v6) if is_link_local(&v6) => Some(v6),
                _ => None,
            }))
    }

    /// The advert source of an instance of `family`'s addresses: the primary IPv4 address,
    /// or the IPv6 link-local one.
    pub async fn advert_source(
        &self,
        name: &str,
        ipv6: bool,
    ) -> Result<Option<IpAddr>, NetlinkError> {
        Ok(if ipv6 {
            self.link_local_ipv6(name).await?.map(IpAddr::V6)
        } else {
            self.primary_ipv4(name).await?.map(IpAddr::V4)
        })
    }

    /// Adds `addr/prefix_len` to the interface, with `label` as its IFA_LABEL when given
    /// (keepalived `label`, IPv4 only; the kernel names it after the interface otherwise).
    /// Already present counts as success, so a restart or a repeated transition to Master is
    /// harmless. IPv6 addresses skip duplicate address detection (`nodad`): a VIP must answer
    /// the moment we are MASTER, and the VRRP election already decided who holds it.
    pub async fn add_address(
        &self,
        name: &str,
        addr: IpAddr,
        prefix_len: u8,
        label: Option<&str>,
    ) -> Result<(), NetlinkError> {
        let index = self.link_index(name).await?;
        let mut req = self.handle.address().add(index, addr, prefix_len);
        if let Some(label) = label.filter(|_| addr.is_ipv4()) {
            req.message_mut()
                .attributes
                .push(AddressAttribute::Label(label.to_owned()));
        }
        if addr.is_ipv6() {
            req.message_mut()
                .attributes
                .push(AddressAttribute::Flags(AddressFlags::Nodad));
        }
        match req.execute().await {
            Ok(()) => Ok(()),
            Err(e) if errno(&e) == Some(libc::EEXIST) => Ok(()),
            Err(e) => Err(request_error(
                format!("add {addr}/{prefix_len} to {name}"),
                e,
            )),
        }
    }

    /// Removes `addr/prefix_len` from the interface. Already absent counts as success. The
    /// kernel matches the prefix length too: the same address with another prefix stays.
    /// Deleting a *primary* address also deletes the secondaries of its subnet unless
    /// `promote_secondaries` is set; VIPs added after the interface's own address are
    /// secondaries, so removing them touches nothing else.
    pub async fn del_address(
        &self,
        name: &str,
        addr: IpAddr,
        prefix_len: u8,
    ) -> Result<(), NetlinkError> {
        let index = self.link_index(name).await?;
        let msg = match addr {
            IpAddr::V4(a) => AddressMessageBuilder::<Ipv4Addr>::new()
                .index(index)
                .address(a, prefix_len)
                .build(),
            IpAddr::V6(a) => AddressMessageBuilder::<Ipv6Addr>::new()
                .index(index)
                .address(a, prefix_len)
                .build(),
        };
        match self.handle.address().del(msg).execute().await {
            Ok(()) => Ok(()),
            Err(e) if errno(&e) == Some(libc::EADDRNOTAVAIL) => Ok(()),
            Err(e) => Err(request_error(
                format!("delete {addr}/{prefix_len} from {name}"),
                e,
            )),
        }
    }
}

/// An interface went up or down (or appeared, or disappeared: reported as down).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkChange {
    pub ifname: String,
    pub ifindex: u32,
    /// IFF_UP and IFF_RUNNING.
    pub up: bool,
}

/// What the watcher last knew of each interface, by index (names can change).
type LinkTable = HashMap<u32, (String, bool)>;

async fn dump_links(handle: &Handle) -> Result<LinkTable, NetlinkError> {
    handle
        .link()
        .get()
        .execute()
        .try_filter_map(|link| async move {
            Ok(link_name(&link).map(|n| {
                (
                    link.header.index,
                    (n.to_owned(), flags_up(link.header.flags)),
                )
            }))
        })
        .try_collect()
        .await
        .map_err(|e| request_error("dump links", e))
}

/// Records a link's new state; returns the changes to report (a rename reports the old
/// name down and the new one in its state).
fn apply(table: &mut LinkTable, index: u32, name: &str, up: bool) -> Vec<LinkChange> {
    let change = |ifname: &str, up| LinkChange {
        ifname: ifname.to_owned(),
        ifindex: index,
        up,
    };
    let mut out = Vec::new();
    match table.get(&index) {
        Some((old, was_up)) if old == name => {
            if *was_up != up {
                out.push(change(name, up));
            }
        }
        Some((old, was_up)) => {
            if *was_up {
                out.push(change(old, false));
            }
            out.push(change(name, up));
        }
        None => out.push(change(name, up)),
    }
    table.insert(index, (name.to_owned(), up));
    out
}

/// Reports interfaces going up and down, from the kernel's link notifications (no polling).
/// Only changes are reported: the kernel also announces MTU, statistics and other updates,
/// which are filtered out here. The task behind it stops when the watcher is dropped.
#[derive(Debug)]
pub struct LinkWatcher {
    changes: mpsc::UnboundedReceiver<LinkChange>,
    initial: HashMap<String, bool>,
    tasks: [JoinHandle<()>; 2],
}

impl Drop for LinkWatcher {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

impl LinkWatcher {
    /// Subscribes to link notifications, then takes a snapshot of every link. Subscribing
    /// first means no change can fall between the snapshot and the first notification.
    /// Must be called inside a tokio runtime.
    pub async fn start() -> Result<LinkWatcher, NetlinkError> {
        let (conn, handle, mut messages) =
            rtnetlink::new_multicast_connection(&[MulticastGroup::Link])
                .map_err(NetlinkError::Open)?;
        let connection = tokio::spawn(conn);
        let mut table = match dump_links(&handle).await {
            Ok(t) => t,
            Err(e) => {
                connection.abort();
                return Err(e);
            }
        };
        let initial = table.values().map(|(n, up)| (n.clone(), *up)).collect();
        let (tx, changes) = mpsc::unbounded_channel();
        let watcher = tokio::spawn(async move {
            while let Some((msg, _)) = messages.next().await {
                let found = match msg.payload {
                    NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewLink(link)) => {
                        match link_name(&link) {
                            Some(name) => apply(
                                &mut table,
                                link.header.index,
                                name,
                                flags_up(link.header.flags),
                            ),
                            None => Vec::new(),
                        }
                    }
                    NetlinkPayload::InnerMessage(RouteNetlinkMessage::DelLink(link)) => {
                        match table.remove(&link.header.index) {
                            Some((name, true)) => vec![LinkChange {
                                ifname: name,
                                ifindex: link.header.index,
                                up: false,
                            }],
                            _ => Vec::new(),
                        }
                    }
                    // The socket buffer overflowed and notifications were lost: compare a
                    // fresh snapshot with what we knew.
                    NetlinkPayload::Overrun(_) => {
                        tracing::warn!("netlink link notifications overran; resynchronising");
                        resync(&handle, &mut table).await
                    }
                    _ => Vec::new(),
                };
                for change in found {
                    tracing::debug!(
                        "link {} (index {}) is now {}",
                        change.ifname,
                        change.ifindex,
                        if change.up { "up" } else { "down" }
                    );
                    if tx.send(change).is_err() {
                        return;
                    }
                }
            }
            tracing::warn!("netlink link notification socket closed");
        });
        Ok(LinkWatcher {
            changes,
            initial,
            tasks: [connection, watcher],
        })
    }

    /// The state of `ifname` in the snapshot taken at start (None: no such interface then).
    /// Later changes arrive through [`LinkWatcher::recv`].
    pub fn initial_state(&self, ifname: &str) -> Option<bool> {
        self.initial.get(ifname).copied()
    }

    /// The next change; None once the notification socket has failed.
    pub async fn recv(&mut self) -> Option<LinkChange> {
        self.changes.recv().await
    }
}

impl Stream for LinkWatcher {
    type Item = LinkChange;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<LinkChange>> {
        self.changes.poll_recv(cx)
    }
}

async fn resync(handle: &Handle, table: &mut LinkTable) -> Vec<LinkChange> {
    let fresh = match dump_links(handle).await {
        Ok(t) => t,
        Err(e) => {
            tracing::warn!("cannot resynchronise link states: {e}");
            return Vec::new();
        }
    };
    let mut out: Vec<LinkChange> = table
        .iter()
        .filter(|(index, (_, up))| *up && !fresh.contains_key(index))
        .map(|(index, (name, _))| LinkChange {
            ifname: name.clone(),
            ifindex: *index,
            up: false,
        })
        .collect();
    table.retain(|index, _| fresh.contains_key(index));
    for (index, (name, up)) in fresh {
        out.extend(apply(table, index, &name, up));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_changes_are_reported() {
        let mut t = LinkTable::new();
        assert_eq!(apply(&mut t, 2, "eth0", true).len(), 1, "new link");
        assert!(apply(&mut t, 2, "eth0", true).is_empty(), "same state");
        let c = apply(&mut t, 2, "eth0", false);
        assert_eq!(
            c,
            vec![LinkChange {
                ifname: "eth0".into(),
                ifindex: 2,
                up: false
            }]
        );
    }

    #[test]
    fn rename_reports_old_name_down() {
        let mut t = LinkTable::new();
        apply(&mut t, 3, "eth1", true);
        let c = apply(&mut t, 3, "wan", true);
        assert_eq!(c.len(), 2);
        assert_eq!((c[0].ifname.as_str(), c[0].up), ("eth1", false));
        assert_eq!((c[1].ifname.as_str(), c[1].up), ("wan", true));
    }

    #[test]
    fn up_needs_both_flags() {
        assert!(flags_up(LinkFlags::Up | LinkFlags::Running));
        assert!(!flags_up(LinkFlags::Up));
        assert!(!flags_up(LinkFlags::Running));
    }
}
