//! Gratuitous ARP (vrrp.md §9): one broadcast ARP request per VIP, sender and target IP both
//! the VIP, so hosts and switches on the segment relearn which MAC now holds it.
//!
//! Sent on an `AF_PACKET`/`SOCK_RAW` socket of our own rather than through a pnet_datalink
//! channel: a pnet channel is one `ETH_P_ALL` socket for both directions, so while it stays
//! open the kernel copies every frame on the link into a receive queue nobody reads, and its
//! send call blocks. A packet socket opened with protocol 0 receives nothing at all, and a
//! non-blocking one lets tokio drive the sends.

use std::io;
use std::mem;
use std::net::Ipv4Addr;
use std::os::fd::AsRawFd;
use std::time::Duration;

use socket2::{Domain, Protocol, Socket, Type};
use tokio::io::unix::AsyncFd;
use tokio::io::Interest;

/// Length of a gratuitous ARP frame without Ethernet padding (the NIC pads it to 60).
pub const GARP_FRAME_LEN: usize = 42;
const ETHERTYPE_ARP: u16 = 0x0806;
const BROADCAST: [u8; 6] = [0xff; 6];

/// Builds the 42-byte gratuitous ARP request for `vip` from an interface whose MAC is `mac`.
pub fn garp_frame(mac: [u8; 6], vip: Ipv4Addr) -> [u8; GARP_FRAME_LEN] {
    let ip = vip.octets();
    let mut f = [0u8; GARP_FRAME_LEN];
    // Ethernet: broadcast destination, our MAC, ARP.
    f[0..6].copy_from_slice(&BROADCAST);
    f[6..12].copy_from_slice(&mac);
    f[12..14].copy_from_slice(&ETHERTYPE_ARP.to_be_bytes());
    // ARP: Ethernet/IPv4, 6-byte and 4-byte addresses, op 1 (request).
    f[14..16].copy_from_slice(&1u16.to_be_bytes());
    f[16..18].copy_from_slice(&0x0800u16.to_be_bytes());
    f[18] = 6;
    f[19] = 4;
    f[20..22].copy_from_slice(&1u16.to_be_bytes());
    f[22..28].copy_from_slice(&mac);
    f[28..32].copy_from_slice(&ip);
    // keepalived puts broadcast in the target MAC (vrrp.md §9); hosts accept it either way.
    f[32..38].copy_from_slice(&BROADCAST);
    f[38..42].copy_from_slice(&ip);
    f
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
    #[error("gratuitous ARP for {vip} on {ifname}: {source}")]
    Send {
        ifname: String,
        vip: Ipv4Addr,
        #[source]
        source: io::Error,
    },
}

/// Sends gratuitous ARPs on one interface.
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
    /// the sender hardware address the hosts will learn. Needs CAP_NET_RAW and a tokio runtime.
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

    /// Sends one gratuitous ARP for `vip`.
    pub async fn send(&self, vip: Ipv4Addr) -> Result<(), GarpError> {
        let frame = garp_frame(self.mac, vip);
        let res = loop {
            let mut guard = match self.fd.writable().await {
                Ok(g) => g,
                Err(e) => break Err(e),
            };
            match guard.try_io(|inner| send_frame(inner.get_ref(), self.ifindex, &frame)) {
                Ok(r) => break r,
                Err(_would_block) => continue,
            }
        };
        res.map_err(|source| GarpError::Send {
            ifname: self.ifname.clone(),
            vip,
            source,
        })?;
        tracing::debug!("Sending gratuitous ARP on {} for {}", self.ifname, vip);
        Ok(())
    }

    /// Sends `repeat` rounds, each one frame per VIP, `spacing` apart between frames
    /// (keepalived's `vrrp_garp_interval`; zero sends back to back). Stops at the first
    /// failure: the interface is most likely gone, and the caller logs it once.
    pub async fn send_burst(
        &self,
        vips: &[Ipv4Addr],
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
/// the address only names the interface.
fn send_frame(sock: &Socket, ifindex: u32, frame: &[u8]) -> io::Result<()> {
    // SAFETY: sockaddr_ll is plain old data; all-zero is a valid starting value.
    let mut sll: libc::sockaddr_ll = unsafe { mem::zeroed() };
    sll.sll_family = libc::AF_PACKET as u16;
    sll.sll_protocol = ETHERTYPE_ARP.to_be();
    sll.sll_ifindex = i32::try_from(ifindex).map_err(io::Error::other)?;
    sll.sll_halen = 6;
    sll.sll_addr[..6].copy_from_slice(&BROADCAST);
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
        return Err(io::Error::other("short send of a gratuitous ARP frame"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_matches_the_reference_bytes() {
        // vrrp.md §9: MAC 02:00:00:00:0b:01, VIP 192.0.2.100.
        let expected: [u8; 42] = [
            0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02, 0x00, 0x00, 0x00, 0x0b, 0x01, 0x08, 0x06,
            0x00, 0x01, 0x08, 0x00, 0x06, 0x04, 0x00, 0x01, 0x02, 0x00, 0x00, 0x00, 0x0b, 0x01,
            0xc0, 0x00, 0x02, 0x64, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xc0, 0x00, 0x02, 0x64,
        ];
        let got = garp_frame(
            [0x02, 0x00, 0x00, 0x00, 0x0b, 0x01],
            Ipv4Addr::new(192, 0, 2, 100),
        );
        assert_eq!(got, expected);
    }
}
