//! The raw IP socket that carries VRRP advertisements (IP protocol 112), IPv4 or IPv6.
//!
//! Set up as keepalived does on Linux (vrrp.md §3, §13): one `SOCK_RAW` socket per interface,
//! bound to it with `SO_BINDTODEVICE`, and in multicast mode a membership of the group
//! (224.0.0.18 or ff02::12) on that interface only. IPv4: `IP_HDRINCL` so we write the whole
//! IP header (TTL 255, ToS 0xC0, our chosen source). IPv6 never hands the header over in
//! either direction: the hop limit (255) is a socket option, the source (the link-local
//! address) goes in an `IPV6_PKTINFO` control message, and on receive the destination, the
//! hop limit and any extension header come back as control messages. The VRRP checksum is
//! ours on both sides (not `IPV6_CHECKSUM`), so a bad one is counted rather than silently
//! dropped by the kernel. The socket is non-blocking; tokio's reactor watches it for reading only.

use std::io::{self, IoSlice, IoSliceMut, Read};
use std::mem;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddrV4, SocketAddrV6};
use std::os::fd::AsRawFd;
use std::time::Duration;

use nix::sys::socket::{ControlMessage, ControlMessageOwned, MsgFlags, SockaddrIn6};

use socket2::{Domain, InterfaceIndexOrAddress, Protocol, SockAddr, Socket, Type};
use tokio::io::unix::AsyncFd;
use tokio::io::Interest;

/// IP protocol number of VRRP.
pub const IPPROTO_VRRP: i32 = 112;
/// The VRRP multicast group (RFC 3768 §5.2.2).
pub const VRRP_GROUP: Ipv4Addr = Ipv4Addr::new(224, 0, 0, 18);
/// The VRRP multicast group of IPv6 (RFC 5798 §5.1.2.2).
pub const VRRP_GROUP_V6: Ipv6Addr = crate::packet::VRRP_GROUP_V6;
/// Hop limit of every IPv6 advert (RFC 5798 §5.1.2.3).
const HOP_LIMIT: u32 = 255;
/// Room for the control messages of one received IPv6 advert: pktinfo and hop limit, plus
/// extension headers, whose presence alone matters (a truncated set still tells it).
const CMSG_SPACE: usize = 256;

/// One received datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Datagram {
    /// Bytes in the buffer: the whole IPv4 packet (header included), or the IPv6 payload.
    pub len: usize,
    /// IPv6 only: what the kernel said about the packet.
    pub ipv6: Option<crate::packet::Ipv6Receipt>,
}

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
    ipv6: bool,
}

/// The error maker of one setup step, naming the interface and the step.
fn setup_error(ifname: &str, step: &'static str) -> impl FnOnce(io::Error) -> SocketError {
    let ifname = ifname.to_owned();
    move |source| SocketError::Setup {
        ifname,
        step,
        source,
    }
}

/// How many times a send that found the socket buffer full is retried, [`SEND_RETRY_PAUSE`]
/// apart, before it fails (a raw socket's buffer holds hundreds of adverts: a full one means
/// the interface is stuck, and a late advert is as good as none).
const SEND_RETRIES: u32 = 20;
const SEND_RETRY_PAUSE: Duration = Duration::from_millis(1);

impl VrrpSocket {
    /// Opens the socket on `ifname` in the calling thread's network namespace. Needs
    /// CAP_NET_RAW, and a tokio runtime with IO enabled.
    pub fn open(ifname: &str, delivery: Delivery) -> Result<VrrpSocket, SocketError> {
        Self::open_family(ifname, delivery, false)
    }

    /// Opens an IPv4 (`ipv6` false) or IPv6 socket; see [`VrrpSocket::open`].
    pub fn open_family(
        ifname: &str,
        delivery: Delivery,
        ipv6: bool,
    ) -> Result<VrrpSocket, SocketError> {
        let ifindex = nix::net::if_::if_nametoindex(ifname)
            .map_err(|_| SocketError::NoSuchInterface(ifname.to_owned()))?;
        let sock = if ipv6 {
            Self::socket_v6(ifname, ifindex, delivery)?
        } else {
            Self::socket_v4(ifname, ifindex, delivery)?
        };
        sock.set_nonblocking(true)
            .map_err(setup_error(ifname, "O_NONBLOCK"))?;
        // Readable only: adverts are sent straight away (see `send_to`), and an edge-triggered
        // write interest would wake the engine once more after every advert, when the kernel
        // frees the sent packet and reports the buffer space.
        // SAFETY: `sock` owns its descriptor and the AsyncFd keeps it, unreplaced and open,
        // until both are dropped together.
        let fd = unsafe { AsyncFd::register_with_interest(sock, Interest::READABLE) }
            .map_err(|e| setup_error(ifname, "register with tokio")(io::Error::from(e)))?;
        Ok(VrrpSocket {
            fd,
            ifname: ifname.to_owned(),
            ifindex,
            delivery,
            ipv6,
        })
    }

    fn socket_v4(ifname: &str, ifindex: u32, delivery: Delivery) -> Result<Socket, SocketError> {
        let step = |step| setup_error(ifname, step);
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
        Ok(sock)
    }

    fn socket_v6(ifname: &str, ifindex: u32, delivery: Delivery) -> Result<Socket, SocketError> {
        let step = |step| setup_error(ifname, step);
        let sock = Socket::new(Domain::IPV6, Type::RAW, Some(Protocol::from(IPPROTO_VRRP)))
            .map_err(step("socket(AF_INET6, SOCK_RAW, 112)"))?;
        sock.bind_device(Some(ifname.as_bytes()))
            .map_err(step("SO_BINDTODEVICE"))?;
        sock.set_multicast_hops_v6(HOP_LIMIT)
            .map_err(step("IPV6_MULTICAST_HOPS"))?;
        sock.set_unicast_hops_v6(HOP_LIMIT)
            .map_err(step("IPV6_UNICAST_HOPS"))?;
        sock.set_multicast_loop_v6(false)
            .map_err(step("IPV6_MULTICAST_LOOP"))?;
        sock.set_multicast_if_v6(ifindex)
            .map_err(step("IPV6_MULTICAST_IF"))?;
        sock.set_multicast_all_v6(false)
            .map_err(step("IPV6_MULTICAST_ALL"))?;
        for (opt, name) in [
            (libc::IPV6_RECVPKTINFO, "IPV6_RECVPKTINFO"),
            (libc::IPV6_RECVHOPLIMIT, "IPV6_RECVHOPLIMIT"),
            (libc::IPV6_RECVHOPOPTS, "IPV6_RECVHOPOPTS"),
            (libc::IPV6_RECVDSTOPTS, "IPV6_RECVDSTOPTS"),
            (libc::IPV6_RECVRTHDR, "IPV6_RECVRTHDR"),
        ] {
            set_int(&sock, libc::IPPROTO_IPV6, opt, 1).map_err(step(name))?;
        }
        if delivery == Delivery::Multicast {
            sock.join_multicast_v6(&VRRP_GROUP_V6, ifindex)
                .map_err(step("IPV6_ADD_MEMBERSHIP ff02::12"))?;
        }
        Ok(sock)
    }

    pub fn is_ipv6(&self) -> bool {
        self.ipv6
    }

    /// Receives one advert of either family: the whole IPv4 packet, or the IPv6 payload
    /// with what the control messages told (see [`Datagram`]).
    pub async fn recv_datagram(&self, buf: &mut [u8]) -> io::Result<Datagram> {
        if !self.ipv6 {
            let len = self.recv(buf).await?;
            return Ok(Datagram { len, ipv6: None });
        }
        loop {
            let mut guard = self.fd.readable().await?;
            match guard.try_io(|inner| recv_v6(inner.get_ref(), buf)) {
                Ok(result) => return result,
                Err(_would_block) => continue,
            }
        }
    }

    /// Sends one advert: a complete IPv4 packet to `dst` (`src` is in its header), or an
    /// IPv6 VRRP message from `src` (our link-local or configured address) to `dst`.
    pub async fn send(&self, packet: &[u8], src: IpAddr, dst: IpAddr) -> io::Result<()> {
        match (src, dst) {
            (_, IpAddr::V4(dst)) => self.send_to(packet, dst).await,
            (IpAddr::V6(src), IpAddr::V6(dst)) => {
                let sent = self
                    .send_nonblocking(|sock| send_v6(sock, packet, src, dst, self.ifindex))
                    .await?;
                self.whole(sent, packet.len())
            }
            (IpAddr::V4(_), IpAddr::V6(_)) => Err(io::Error::other(
                "an IPv6 advert needs an IPv6 source address",
            )),
        }
    }

    /// One non-blocking send, at once; only when the socket buffer is full is it retried a
    /// little later (the socket has no write interest, see [`VrrpSocket::open_family`]).
    async fn send_nonblocking(
        &self,
        mut send: impl FnMut(&Socket) -> io::Result<usize>,
    ) -> io::Result<usize> {
        let mut retries = 0;
        loop {
            match send(self.fd.get_ref()) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock && retries < SEND_RETRIES => {
                    retries += 1;
                    tokio::time::sleep(SEND_RETRY_PAUSE).await;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                other => return other,
            }
        }
    }

    fn whole(&self, sent: usize, len: usize) -> io::Result<()> {
        if sent == len {
            Ok(())
        } else {
            Err(io::Error::other(format!(
                "short send on {}: {sent} of {len} bytes",
                self.ifname
            )))
        }
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
        let sent = self
            .send_nonblocking(|sock| sock.send_to(ip_packet, &addr))
            .await?;
        self.whole(sent, ip_packet.len())
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

fn set_int(sock: &Socket, level: i32, opt: i32, value: libc::c_int) -> io::Result<()> {
    // SAFETY: a valid socket fd, and a pointer to a live c_int with its exact size.
    let rc = unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            level,
            opt,
            (&value as *const libc::c_int).cast(),
            mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// One `recvmsg` on the IPv6 socket: the payload into `buf`, the facts into a receipt.
fn recv_v6(sock: &Socket, buf: &mut [u8]) -> io::Result<Datagram> {
    let mut cmsg = [0u8; CMSG_SPACE];
    let mut iov = [IoSliceMut::new(buf)];
    let msg = nix::sys::socket::recvmsg::<SockaddrIn6>(
        sock.as_raw_fd(),
        &mut iov,
        Some(&mut cmsg),
        MsgFlags::empty(),
    )
    .map_err(io::Error::from)?;
    let src = msg.address.map(|a| a.ip()).unwrap_or(Ipv6Addr::UNSPECIFIED);
    let mut receipt = crate::packet::Ipv6Receipt {
        src,
        dst: None,
        hop_limit: None,
        extension_headers: false,
    };
    match msg.cmsgs() {
        Ok(cmsgs) => {
            for c in cmsgs {
                match c {
                    ControlMessageOwned::Ipv6PacketInfo(info) => {
                        receipt.dst = Some(Ipv6Addr::from(info.ipi6_addr.s6_addr));
                    }
                    ControlMessageOwned::Ipv6HopLimit(h) => receipt.hop_limit = Some(h),
                    ControlMessageOwned::Unknown(u)
                        if u.cmsg_header.cmsg_level == libc::IPPROTO_IPV6
                            && matches!(
                                u.cmsg_header.cmsg_type,
                                libc::IPV6_HOPOPTS | libc::IPV6_DSTOPTS | libc::IPV6_RTHDR
                            ) =>
                    {
                        receipt.extension_headers = true;
                    }
                    _ => {}
                }
            }
        }
        // Only option headers can outgrow the buffer.
        Err(_) => receipt.extension_headers = true,
    }
    Ok(Datagram {
        len: msg.bytes,
        ipv6: Some(receipt),
    })
}

/// One `sendmsg` of an IPv6 advert with its source address and interface in `IPV6_PKTINFO`.
fn send_v6(
    sock: &Socket,
    msg: &[u8],
    src: Ipv6Addr,
    dst: Ipv6Addr,
    ifindex: u32,
) -> io::Result<usize> {
    let info = libc::in6_pktinfo {
        ipi6_addr: libc::in6_addr {
            s6_addr: src.octets(),
        },
        ipi6_ifindex: ifindex,
    };
    // Link-scope destinations (ff02::12, fe80::peer) name the interface in the scope id.
    let to = SockaddrIn6::from(SocketAddrV6::new(dst, 0, 0, ifindex));
    nix::sys::socket::sendmsg(
        sock.as_raw_fd(),
        &[IoSlice::new(msg)],
        &[ControlMessage::Ipv6PacketInfo(&info)],
        MsgFlags::empty(),
        Some(&to),
    )
    .map_err(io::Error::from)
}
