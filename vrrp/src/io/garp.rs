//! Telling the link where a VIP now is (vrrp.md §9, §13): a gratuitous ARP per IPv4 VIP (a
//! broadcast ARP request, sender and target IP both the VIP), an unsolicited Neighbor
//! Advertisement per IPv6 VIP (ICMPv6 136 with the Override flag to ff02::1, target the VIP,
//! our MAC in the target link-layer address option), so hosts and switches relearn which MAC
//! holds it. Frames are built and read with pnet's packet types.
//!
//! Sent on an `AF_PACKET`/`SOCK_RAW` socket of our own rather than through a pnet_datalink
//! channel: a pnet channel is one `ETH_P_ALL` socket for both directions, so while it stays
//! open the kernel copies every frame on the link into a receive queue nobody reads, and its
//! send call blocks. A packet socket opened with protocol 0 receives nothing at all, and a
//! non-blocking one lets tokio drive the sends.

use std::io;
use std::mem;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::AsRawFd;
use std::time::Duration;

use pnet_base::MacAddr;
use pnet_packet::arp::{ArpHardwareTypes, ArpOperations, ArpPacket, MutableArpPacket};
use pnet_packet::ethernet::{EtherType, EtherTypes, EthernetPacket, MutableEthernetPacket};
use pnet_packet::icmpv6::ndp::{
    MutableNeighborAdvertPacket, NdpOption, NdpOptionTypes, NeighborAdvertFlags,
    NeighborAdvertPacket,
};
use pnet_packet::icmpv6::{self, Icmpv6Code, Icmpv6Packet, Icmpv6Types};
use pnet_packet::ip::IpNextHeaderProtocols;
use pnet_packet::ipv6::{Ipv6Packet, MutableIpv6Packet};
use pnet_packet::Packet;
use socket2::{Domain, Protocol, Socket, Type};
use tokio::io::unix::AsyncFd;
use tokio::io::Interest;

/// Length of a gratuitous ARP frame without Ethernet padding (the NIC pads it to 60).
pub const GARP_FRAME_LEN: usize = 42;
const ETHERNET_LEN: usize = 14;
const IPV6_HEADER_LEN: usize = 40;
/// ICMPv6 NA (24 bytes) plus one 8-byte target link-layer address option.
const NA_LEN: usize = 32;
/// Length of an unsolicited Neighbor Advertisement frame.
pub const NA_FRAME_LEN: usize = ETHERNET_LEN + IPV6_HEADER_LEN + NA_LEN;
const BROADCAST: [u8; 6] = [0xff; 6];
/// ff02::1 on Ethernet (RFC 2464 §7).
const ALL_NODES_MAC: [u8; 6] = [0x33, 0x33, 0, 0, 0, 1];
const ALL_NODES: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);

fn mac_addr(m: [u8; 6]) -> MacAddr {
    MacAddr::new(m[0], m[1], m[2], m[3], m[4], m[5])
}

/// Builds the 42-byte gratuitous ARP request for `vip` from an interface whose MAC is `mac`.
pub fn garp_frame(mac: [u8; 6], vip: Ipv4Addr) -> [u8; GARP_FRAME_LEN] {
    let mut f = [0u8; GARP_FRAME_LEN];
    let (eth, arp) = f.split_at_mut(ETHERNET_LEN);
    // The buffers have the exact sizes of the headers, so both constructors succeed.
    if let Some(mut e) = MutableEthernetPacket::new(eth) {
        e.set_destination(mac_addr(BROADCAST));
        e.set_source(mac_addr(mac));
        e.set_ethertype(EtherTypes::Arp);
    }
    if let Some(mut a) = MutableArpPacket::new(arp) {
        a.set_hardware_type(ArpHardwareTypes::Ethernet);
        a.set_protocol_type(EtherTypes::Ipv4);
        a.set_hw_addr_len(6);
        a.set_proto_addr_len(4);
        a.set_operation(ArpOperations::Request);
        a.set_sender_hw_addr(mac_addr(mac));
        a.set_sender_proto_addr(vip);
        // keepalived puts broadcast in the target MAC (vrrp.md §9); hosts accept it either way.
        a.set_target_hw_addr(mac_addr(BROADCAST));
        a.set_target_proto_addr(vip);
    }
    f
}

/// Builds the unsolicited Neighbor Advertisement for `vip` (RFC 4861 §7.2.6): from the VIP
/// itself to all nodes, hop limit 255, Override set (Solicited and Router clear), and `mac`
/// in the target link-layer address option, so every host with an entry for the VIP
/// replaces its MAC.
pub fn na_frame(mac: [u8; 6], vip: Ipv6Addr) -> [u8; NA_FRAME_LEN] {
    let mut f = [0u8; NA_FRAME_LEN];
    let (eth, rest) = f.split_at_mut(ETHERNET_LEN);
    if let Some(mut e) = MutableEthernetPacket::new(eth) {
        e.set_destination(mac_addr(ALL_NODES_MAC));
        e.set_source(mac_addr(mac));
        e.set_ethertype(EtherTypes::Ipv6);
    }
    let (ip, icmp) = rest.split_at_mut(IPV6_HEADER_LEN);
    if let Some(mut p) = MutableIpv6Packet::new(ip) {
        p.set_version(6);
        p.set_payload_length(NA_LEN as u16);
        p.set_next_header(IpNextHeaderProtocols::Icmpv6);
        p.set_hop_limit(255);
        p.set_source(vip);
        p.set_destination(ALL_NODES);
    }
    if let Some(mut na) = MutableNeighborAdvertPacket::new(icmp) {
        na.set_icmpv6_type(Icmpv6Types::NeighborAdvert);
        na.set_icmpv6_code(Icmpv6Code(0));
        na.set_flags(NeighborAdvertFlags::Override);
        na.set_target_addr(vip);
        na.set_options(&[NdpOption {
            option_type: NdpOptionTypes::TargetLLAddr,
            length: 1,
            data: mac.to_vec(),
        }]);
    }
    let sum = Icmpv6Packet::new(icmp).map(|p| icmpv6::checksum(&p, &vip, &ALL_NODES));
    if let (Some(sum), Some(mut na)) = (sum, MutableNeighborAdvertPacket::new(icmp)) {
        na.set_checksum(sum);
    }
    f
}

/// What an announcement frame says: this MAC holds this address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Announcement {
    pub vip: IpAddr,
    pub mac: [u8; 6],
    /// NA only: the Override flag (always true in a gratuitous ARP's terms).
    pub override_flag: bool,
}

/// Reads a gratuitous ARP or an unsolicited NA frame (as [`garp_frame`] / [`na_frame`] make
/// them, or a peer's); None for anything else, including an NA with a bad checksum or a
/// hop limit other than 255 (hosts ignore those, RFC 4861 §7.1.2).
pub fn parse_announcement(frame: &[u8]) -> Option<Announcement> {
    let eth = EthernetPacket::new(frame)?;
    let mac = |m: MacAddr| [m.0, m.1, m.2, m.3, m.4, m.5];
    match eth.get_ethertype() {
        EtherTypes::Arp => {
            let a = ArpPacket::new(eth.payload())?;
            (a.get_operation() == ArpOperations::Request
                && a.get_sender_proto_addr() == a.get_target_proto_addr())
            .then(|| Announcement {
                vip: a.get_sender_proto_addr().into(),
                mac: mac(a.get_sender_hw_addr()),
                override_flag: true,
            })
        }
        EtherTypes::Ipv6 => {
            let ip = Ipv6Packet::new(eth.payload())?;
            if ip.get_next_header() != IpNextHeaderProtocols::Icmpv6 || ip.get_hop_limit() != 255 {
                return None;
            }
            let body = ip.payload().get(..usize::from(ip.get_payload_length()))?;
            let icmp = Icmpv6Packet::new(body)?;
            if icmp.get_icmpv6_type() != Icmpv6Types::NeighborAdvert
                || icmpv6::checksum(&icmp, &ip.get_source(), &ip.get_destination())
                    != icmp.get_checksum()
            {
                return None;
            }
            let na = NeighborAdvertPacket::new(body)?;
            let lladdr = na.get_options().into_iter().find_map(|o| {
                (o.option_type == NdpOptionTypes::TargetLLAddr)
                    .then(|| <[u8; 6]>::try_from(o.data.get(..6)?).ok())
                    .flatten()
            })?;
            Some(Announcement {
                vip: na.get_target_addr().into(),
                mac: lladdr,
                override_flag: na.get_flags() & NeighborAdvertFlags::Override != 0,
            })
        }
        _ => None,
    }
}

/// The frame announcing `vip` from `mac`, with its ethertype and destination MAC.
fn announcement_frame(mac: [u8; 6], vip: IpAddr) -> (Vec<u8>, EtherType, [u8; 6]) {
    match vip {
        IpAddr::V4(v4) => (garp_frame(mac, v4).to_vec(), EtherTypes::Arp, BROADCAST),
        IpAddr::V6(v6) => (na_frame(mac, v6).to_vec(), EtherTypes::Ipv6, ALL_NODES_MAC),
    }
}

#[derive(Debug, thiserror::Error)]
pub enum GarpError {
    #[error("interface {0} not found")]
    NoSuchInterface(String),
    #[error("gratuitous ARP socket on {ifname}: {step}: {source}")]
    Setup {
        ifname: String,
        step: &'static str,
        #[source]
        source: io::Error,
    },
    #[error("announcement (gratuitous ARP / neighbor advert) for {vip} on {ifname}: {source}")]
    Send {
        ifname: String,
        vip: IpAddr,
        #[source]
        source: io::Error,
    },
}

/// Sends gratuitous ARPs and unsolicited Neighbor Advertisements on one interface.
#[derive(Debug)]
pub struct GarpSender {
    fd: AsyncFd<Socket>,
    ifname: String,
    ifindex: u32,
    mac: [u8; 6],
}

impl GarpSender {
    /// Opens a send-only packet socket on `ifname` (in the calling thread's network
    /// namespace). `mac` is the interface's MAC (from [`super::netlink::Netlink::link_mac`]):
    /// the hardware address the hosts will learn. Needs CAP_NET_RAW and a tokio runtime.
    pub fn open(ifname: &str, mac: [u8; 6]) -> Result<GarpSender, GarpError> {
        let ifindex = nix::net::if_::if_nametoindex(ifname)
            .map_err(|_| GarpError::NoSuchInterface(ifname.to_owned()))?;
        let step = |step: &'static str| {
            let ifname = ifname.to_owned();
            move |source: io::Error| GarpError::Setup {
                ifname,
                step,
                source,
            }
        };
        // Protocol 0: the socket is never bound to an ethertype, so it receives nothing.
        let sock = Socket::new(Domain::PACKET, Type::RAW, Some(Protocol::from(0)))
            .map_err(step("socket(AF_PACKET, SOCK_RAW, 0)"))?;
        sock.set_nonblocking(true).map_err(step("O_NONBLOCK"))?;
        // SAFETY: `sock` owns its descriptor, kept open and unreplaced inside the AsyncFd.
        let fd = unsafe { AsyncFd::register_with_interest(sock, Interest::WRITABLE) }
            .map_err(|e| step("register with tokio")(io::Error::from(e)))?;
        Ok(GarpSender {
            fd,
            ifname: ifname.to_owned(),
            ifindex,
            mac,
        })
    }

    pub fn ifname(&self) -> &str {
        &self.ifname
    }

    pub fn mac(&self) -> [u8; 6] {
        self.mac
    }

    /// Sends one gratuitous ARP (IPv4 `vip`) or unsolicited NA (IPv6 `vip`).
    pub async fn send(&self, vip: IpAddr) -> Result<(), GarpError> {
        let (frame, ethertype, dst_mac) = announcement_frame(self.mac, vip);
        let res = loop {
            let mut guard = match self.fd.writable().await {
                Ok(g) => g,
                Err(e) => break Err(e),
            };
            match guard.try_io(|inner| {
                send_frame(inner.get_ref(), self.ifindex, ethertype, dst_mac, &frame)
            }) {
                Ok(r) => break r,
                Err(_would_block) => continue,
            }
        };
        res.map_err(|source| GarpError::Send {
            ifname: self.ifname.clone(),
            vip,
            source,
        })?;
        tracing::debug!("{}", crate::logs::sending_garp(&self.ifname, vip));
        Ok(())
    }

    /// Sends `repeat` rounds, each one frame per VIP, `spacing` apart between frames
    /// (keepalived's `vrrp_garp_interval`; zero sends back to back). Stops at the first
    /// failure: the interface is most likely gone, and the caller logs it once.
    pub async fn send_burst(
        &self,
        vips: &[IpAddr],
        repeat: u32,
        spacing: Duration,
    ) -> Result<(), GarpError> {
        let mut first = true;
        for _ in 0..repeat {
            for vip in vips {
                if !first && !spacing.is_zero() {
                    tokio::time::sleep(spacing).await;
                }
                first = false;
                self.send(*vip).await?;
            }
        }
        Ok(())
    }
}

/// One `sendto` with a link-layer address: the frame already carries the Ethernet header,
/// the address only names the interface (and the destination MAC for drivers that use it).
fn send_frame(
    sock: &Socket,
    ifindex: u32,
    ethertype: EtherType,
    dst_mac: [u8; 6],
    frame: &[u8],
) -> io::Result<()> {
    // SAFETY: sockaddr_ll is plain old data; all-zero is a valid starting value.
    let mut sll: libc::sockaddr_ll = unsafe { mem::zeroed() };
    sll.sll_family = libc::AF_PACKET as u16;
    sll.sll_protocol = ethertype.0.to_be();
    sll.sll_ifindex = i32::try_from(ifindex).map_err(io::Error::other)?;
    sll.sll_halen = 6;
    sll.sll_addr[..6].copy_from_slice(&dst_mac);
    // SAFETY: a valid fd, a buffer of the given length, and a live sockaddr_ll of its size.
    let n = unsafe {
        libc::sendto(
            sock.as_raw_fd(),
            frame.as_ptr().cast(),
            frame.len(),
            0,
            (&sll as *const libc::sockaddr_ll).cast(),
            mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
        )
    };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    if n as usize != frame.len() {
        return Err(io::Error::other("short send of an announcement frame"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        s.split_whitespace()
            .map(|b| u8::from_str_radix(b, 16).unwrap_or(0))
            .collect()
    }

    const MAC: [u8; 6] = [0x02, 0x00, 0x00, 0x00, 0x0b, 0x01];

    #[test]
    fn frame_matches_the_reference_bytes() {
        // vrrp.md §9: MAC 02:00:00:00:0b:01, VIP 192.0.2.100.
        let expected: [u8; 42] = [
            0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02, 0x00, 0x00, 0x00, 0x0b, 0x01, 0x08, 0x06,
            0x00, 0x01, 0x08, 0x00, 0x06, 0x04, 0x00, 0x01, 0x02, 0x00, 0x00, 0x00, 0x0b, 0x01,
            0xc0, 0x00, 0x02, 0x64, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xc0, 0x00, 0x02, 0x64,
        ];
        let vip = Ipv4Addr::new(192, 0, 2, 100);
        let got = garp_frame(MAC, vip);
        assert_eq!(got, expected);
        assert_eq!(
            parse_announcement(&got),
            Some(Announcement {
                vip: vip.into(),
                mac: MAC,
                override_flag: true
            })
        );
    }

    #[test]
    fn neighbor_advert_matches_the_reference_bytes() {
        // RFC 4861 §4.4 / §7.2.6 by hand: VIP 2001:db8::100 from MAC 02:00:00:00:0b:01.
        let vip: Ipv6Addr = "2001:db8::100".parse().unwrap_or(Ipv6Addr::UNSPECIFIED);
        let expected = hex("33 33 00 00 00 01 02 00 00 00 0b 01 86 dd \
             60 00 00 00 00 20 3a ff \
             20 01 0d b8 00 00 00 00 00 00 00 00 00 00 01 00 \
             ff 02 00 00 00 00 00 00 00 00 00 00 00 00 00 01 \
             88 00 ec 2c 20 00 00 00 \
             20 01 0d b8 00 00 00 00 00 00 00 00 00 00 01 00 \
             02 01 02 00 00 00 0b 01");
        let got = na_frame(MAC, vip);
        assert_eq!(got.as_slice(), expected.as_slice());
        assert_eq!(
            parse_announcement(&got),
            Some(Announcement {
                vip: vip.into(),
                mac: MAC,
                override_flag: true
            })
        );
        // A flipped checksum bit or a forwarded copy (hop limit 254) is not an announcement.
        let mut bad = got;
        bad[ETHERNET_LEN + IPV6_HEADER_LEN + 3] ^= 1;
        assert_eq!(parse_announcement(&bad), None);
        let mut forwarded = got;
        forwarded[ETHERNET_LEN + 7] = 254;
        assert_eq!(parse_announcement(&forwarded), None);
        // Truncated frames never panic.
        for n in 0..got.len() {
            let _ = parse_announcement(&got[..n]);
        }
    }
}
