//! The raw IPv4 socket that carries VRRP advertisements (IP protocol 112).
//!
//! Set up as keepalived does on Linux (vrrp.md §3): one `SOCK_RAW` socket per interface, bound
//! to it with `SO_BINDTODEVICE`, `IP_HDRINCL` so we write the whole IP header (TTL 255, ToS
//! 0xC0, our chosen source), and in multicast mode a membership of 224.0.0.18 on that interface
//! only. The socket is non-blocking and driven by tokio's reactor.

use std::io::{self, Read};
use std::mem;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::os::fd::AsRawFd;

use socket2::{Domain, InterfaceIndexOrAddress, Protocol, SockAddr, Socket, Type};
use tokio::io::unix::AsyncFd;
use tokio::io::Interest;

/// IP protocol number of VRRP.
pub const IPPROTO_VRRP: i32 = 112;
/// The VRRP multicast group (RFC 3768 §5.2.2).
pub const VRRP_GROUP: Ipv4Addr = Ipv4Addr::new(224, 0, 0, 18);

/// How adverts reach the peers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// Join 224.0.0.18 on the interface; adverts go to the group.
    Multicast,
    /// No group membership: only adverts addressed to one of our own addresses arrive, so a
    /// multicast advert never reaches a unicast instance (keepalived drops those too).
    Unicast,
}

#[derive(Debug, thiserror::Error)]
pub enum SocketError {
    #[error("interface {0} not found")]
    NoSuchInterface(String),
    #[error("VRRP socket on {ifname}: {step}: {source}")]
    Setup {
        ifname: String,
        step: &'static str,
        #[source]
        source: io::Error,
    },
}

/// A raw VRRP socket bound to one interface.
#[derive(Debug)]
pub struct VrrpSocket {
    fd: AsyncFd<Socket>,
    ifname: String,
    ifindex: u32,
    delivery: Delivery,
}

impl VrrpSocket {
    /// Opens the socket on `ifname` in the calling thread's network namespace. Needs
    /// CAP_NET_RAW, and a tokio runtime with IO enabled.
    pub fn open(ifname: &str, delivery: Delivery) -> Result<VrrpSocket, SocketError> {
        let ifindex = nix::net::if_::if_nametoindex(ifname)
            .map_err(|_| SocketError::NoSuchInterface(ifname.to_owned()))?;
        let step = |step: &'static str| {
            let ifname = ifname.to_owned();
            move |source: io::Error| SocketError::Setup {
                ifname,
                step,
                source,
            }
        };

        let sock = Socket::new(Domain::IPV4, Type::RAW, Some(Protocol::from(IPPROTO_VRRP)))
            .map_err(step("socket(AF_INET, SOCK_RAW, 112)"))?;
        // Only this interface's adverts: two instances on two interfaces with the same VRID
        // must not hear each other.
        sock.bind_device(Some(ifname.as_bytes()))
            .map_err(step("SO_BINDTODEVICE"))?;
        sock.set_header_included_v4(true)
            .map_err(step("IP_HDRINCL"))?;
        // Without this a raw socket receives every group any socket on the host joined,
        // on any interface.
        sock.set_multicast_all_v4(false)
            .map_err(step("IP_MULTICAST_ALL"))?;
        // Never hear our own adverts: a Master must not take its own advert for a peer's.
        sock.set_multicast_loop_v4(false)
            .map_err(step("IP_MULTICAST_LOOP"))?;
        set_multicast_if_index(&sock, ifindex).map_err(step("IP_MULTICAST_IF"))?;
        if delivery == Delivery::Multicast {
            sock.join_multicast_v4_n(&VRRP_GROUP, &InterfaceIndexOrAddress::Index(ifindex))
                .map_err(step("IP_ADD_MEMBERSHIP 224.0.0.18"))?;
        }
        sock.set_nonblocking(true).map_err(step("O_NONBLOCK"))?;
        // SAFETY: `sock` owns its descriptor and the AsyncFd keeps it, unreplaced and open,
        // until both are dropped together.
        let fd = unsafe {
            AsyncFd::register_with_interest(sock, Interest::READABLE | Interest::WRITABLE)
        }
        .map_err(|e| step("register with tokio")(io::Error::from(e)))?;
        Ok(VrrpSocket {
            fd,
            ifname: ifname.to_owned(),
            ifindex,
            delivery,
        })
    }

    pub fn ifname(&self) -> &str {
        &self.ifname
    }

    pub fn ifindex(&self) -> u32 {
        self.ifindex
    }

    pub fn delivery(&self) -> Delivery {
        self.delivery
    }

    /// Receives one datagram: the whole IPv4 packet, header included (raw IPv4 sockets always
    /// deliver the header). Returns its length; a datagram longer than `buf` is truncated, so
    /// give at least the interface MTU and let the decoder reject a length mismatch.
    pub async fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            let mut guard = self.fd.readable().await?;
            // `Read` is implemented for `&Socket`, hence the shared reference made mutable.
            match guard.try_io(|inner| {
                let mut sock: &Socket = inner.get_ref();
                sock.read(buf)
            }) {
                Ok(result) => return result,
                Err(_would_block) => continue,
            }
        }
    }

    /// Sends a complete IPv4 packet (header included, as built by the codec) to `dst`: the
    /// group in multicast mode, or one peer in unicast mode. The kernel fills in the IP
    /// checksum, the total length, and the identification when it is 0.
    pub async fn send_to(&self, ip_packet: &[u8], dst: Ipv4Addr) -> io::Result<()> {
        let addr = SockAddr::from(SocketAddrV4::new(dst, 0));
        loop {
            let mut guard = self.fd.writable().await?;
            match guard.try_io(|inner| inner.get_ref().send_to(ip_packet, &addr)) {
                Ok(Ok(n)) if n == ip_packet.len() => return Ok(()),
                Ok(Ok(n)) => {
                    return Err(io::Error::other(format!(
                        "short send on {}: {n} of {} bytes",
                        self.ifname,
                        ip_packet.len()
                    )))
                }
                Ok(Err(e)) => return Err(e),
                Err(_would_block) => continue,
            }
        }
    }
}

/// `IP_MULTICAST_IF` with an `ip_mreqn` naming the interface by index: socket2 only offers
/// the by-address form, and the interface may have no address yet (or several).
fn set_multicast_if_index(sock: &Socket, ifindex: u32) -> io::Result<()> {
    let ifindex = i32::try_from(ifindex).map_err(io::Error::other)?;
    let mreqn = libc::ip_mreqn {
        imr_multiaddr: libc::in_addr { s_addr: 0 },
        imr_address: libc::in_addr { s_addr: 0 },
        imr_ifindex: ifindex,
    };
    // SAFETY: a valid socket fd, and a pointer to a live ip_mreqn with its exact size.
    let rc = unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            libc::IPPROTO_IP,
            libc::IP_MULTICAST_IF,
            (&mreqn as *const libc::ip_mreqn).cast(),
            mem::size_of::<libc::ip_mreqn>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}
