//! TCP sockets left on a VIP from an earlier term as MASTER, cleared through the kernel's
//! socket diagnostics (`SOCK_DESTROY`, what `ss -K` does).
//!
//! Why: a box that loses the VIP keeps its sockets on it. A connection it closed first sits
//! in TIME-WAIT for 60 s. When the VIP comes back within that time, a client that has reused
//! the same source port meanwhile (a busy client cycles through its ports in minutes) sends
//! the segments of a *new* connection to the old socket: TIME-WAIT answers them with a bare
//! ACK of the old sequence numbers, which the client ignores, and the connection hangs until
//! the client gives up, where a box without that socket would have reset it at once. Found by
//! the chaos drill (issue 16): a keep-alive request in ~20 fail-backs hung for its whole 1 s
//! timeout.
//!
//! So a MASTER clears, before it adds a VIP that is absent, the sockets on it that our side
//! already closed (TIME-WAIT, FIN-WAIT, CLOSING, LAST-ACK): they carry nothing any more. Open
//! connections (ESTABLISHED, CLOSE-WAIT) stay: a client may still be waiting on one of a
//! short earlier term (a slow answer through a quick flap), and it would only lose it.
//! Blocking netlink calls: run them off the engine's thread (`tokio::task::spawn_blocking`).

use netlink_packet_core::{
    NetlinkHeader, NetlinkMessage, NetlinkPayload, NLM_F_ACK, NLM_F_DUMP, NLM_F_REQUEST,
};
use netlink_packet_sock_diag::{
    constants::{AF_INET, AF_INET6, IPPROTO_TCP},
    inet::{ExtensionFlags, InetRequest, SocketId, StateFlags},
    SockDiagDestroy, SockDiagMessage,
};
use netlink_sys::{protocols::NETLINK_SOCK_DIAG, Socket, SocketAddr};
use std::io;
use std::net::IpAddr;
use std::os::fd::AsRawFd;
use std::time::Duration;

/// What a clearing did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Cleared {
    /// Sockets destroyed (or already gone when the kernel got to them).
    pub destroyed: usize,
    /// Of those, in TIME-WAIT.
    pub time_wait: usize,
    /// Sockets the kernel refused to destroy, with the last reason.
    pub failed: usize,
    pub last_error: Option<String>,
}

/// TCP state numbers (include/net/tcp_states.h).
const TCP_TIME_WAIT: u8 = 6;
/// Destroy requests per `send` (each 72 bytes): the kernel acks each one.
const BATCH: usize = 256;
/// A netlink answer that takes longer than this means the kernel is not answering.
const RECV_TIMEOUT: Duration = Duration::from_secs(2);

/// Destroys the TCP sockets whose local address is one of `addrs` and that our side closed.
pub fn clear_stale_tcp(addrs: &[IpAddr]) -> io::Result<Cleared> {
    let mut cleared = Cleared::default();
    if addrs.is_empty() {
        return Ok(cleared);
    }
    let socket = open()?;
    for family in [AF_INET, AF_INET6] {
        let wanted: Vec<IpAddr> = addrs
            .iter()
            .copied()
            .filter(|a| a.is_ipv4() == (family == AF_INET))
            .collect();
        if wanted.is_empty() {
            continue;
        }
        let found = dump(&socket, family, &wanted)?;
        cleared.time_wait += found.iter().filter(|(_, s)| *s == TCP_TIME_WAIT).count();
        for chunk in found.chunks(BATCH) {
            destroy(&socket, family, chunk, &mut cleared)?;
        }
    }
    Ok(cleared)
}

fn open() -> io::Result<Socket> {
    let mut socket = Socket::new(NETLINK_SOCK_DIAG)?;
    socket.bind_auto()?;
    socket.connect(&SocketAddr::new(0, 0))?;
    let tv = libc::timeval {
        tv_sec: RECV_TIMEOUT.as_secs() as libc::time_t,
        tv_usec: 0,
    };
    // SAFETY: a valid descriptor and a timeval of the size passed.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVTIMEO,
            (&tv as *const libc::timeval).cast(),
            std::mem::size_of::<libc::timeval>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(socket)
}

fn states() -> StateFlags {
    StateFlags::TIME_WAIT
        | StateFlags::FIN_WAIT1
        | StateFlags::FIN_WAIT2
        | StateFlags::CLOSING
        | StateFlags::LAST_ACK
}

fn request(family: u8, socket_id: SocketId) -> InetRequest {
    InetRequest {
        family,
        protocol: IPPROTO_TCP,
        extensions: ExtensionFlags::empty(),
        states: states(),
        socket_id,
    }
}

fn empty_id(family: u8) -> SocketId {
    if family == AF_INET {
        SocketId::new_v4()
    } else {
        SocketId::new_v6()
    }
}

/// The sockets of this family whose local address is one of `wanted`, with their state.
fn dump(socket: &Socket, family: u8, wanted: &[IpAddr]) -> io::Result<Vec<(SocketId, u8)>> {
    let mut header = NetlinkHeader::default();
    header.flags = NLM_F_REQUEST | NLM_F_DUMP;
    let mut msg = NetlinkMessage::new(
        header,
        SockDiagMessage::InetRequest(request(family, empty_id(family))).into(),
    );
    msg.finalize();
    let mut buf = vec![0u8; msg.buffer_len()];
    msg.serialize(&mut buf);
    socket.send(&buf, 0)?;
    let mut found = Vec::new();
    let mut rx = vec![0u8; 64 * 1024];
    loop {
        let n = socket.recv(&mut &mut rx[..], 0)?;
        let mut off = 0;
        while off < n {
            let m = NetlinkMessage::<SockDiagMessage>::deserialize(&rx[off..n])
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))?;
            let len = m.header.length as usize;
            match m.payload {
                NetlinkPayload::InnerMessage(SockDiagMessage::InetResponse(r))
                    if wanted.contains(&r.header.socket_id.source_address) =>
                {
                    found.push((r.header.socket_id.clone(), r.header.state));
                }
                NetlinkPayload::Done(_) => return Ok(found),
                NetlinkPayload::Error(e) => return Err(e.to_io()),
                _ => {}
            }
            if len == 0 {
                break;
            }
            off += nlmsg_align(len);
        }
    }
}

/// One `SOCK_DESTROY` per socket, sent together, then their acks.
fn destroy(
    socket: &Socket,
    family: u8,
    ids: &[(SocketId, u8)],
    cleared: &mut Cleared,
) -> io::Result<()> {
    let mut out = Vec::with_capacity(ids.len() * 80);
    for (i, (id, _)) in ids.iter().enumerate() {
        let mut header = NetlinkHeader::default();
        header.flags = NLM_F_REQUEST | NLM_F_ACK;
        header.sequence_number = i as u32 + 1;
        let mut msg = NetlinkMessage::new(
            header,
            SockDiagDestroy::new(SockDiagMessage::InetRequest(request(family, id.clone()))).into(),
        );
        msg.finalize();
        let start = out.len();
        out.resize(start + nlmsg_align(msg.buffer_len()), 0);
        msg.serialize(&mut out[start..start + msg.buffer_len()]);
    }
    socket.send(&out, 0)?;
    let mut acks = 0;
    let mut rx = vec![0u8; 64 * 1024];
    while acks < ids.len() {
        let n = socket.recv(&mut &mut rx[..], 0)?;
        let mut off = 0;
        while off < n {
            let m = NetlinkMessage::<SockDiagDestroy>::deserialize(&rx[off..n])
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))?;
            let len = m.header.length as usize;
            if let NetlinkPayload::Error(e) = &m.payload {
                acks += 1;
                match -e.raw_code() {
                    // ENOENT: it closed on its own meanwhile.
                    0 | libc::ENOENT => cleared.destroyed += 1,
                    code => {
                        cleared.failed += 1;
                        cleared.last_error = Some(io::Error::from_raw_os_error(code).to_string());
                    }
                }
            }
            if len == 0 {
                break;
            }
            off += nlmsg_align(len);
        }
    }
    Ok(())
}

fn nlmsg_align(len: usize) -> usize {
    (len + 3) & !3
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_connections_our_side_closed_are_asked_for() {
        assert!(!states().contains(StateFlags::LISTEN));
        assert!(!states().contains(StateFlags::ESTABLISHED));
        assert!(!states().contains(StateFlags::CLOSE_WAIT));
        assert!(states().contains(StateFlags::TIME_WAIT));
        assert!(states().contains(StateFlags::FIN_WAIT2));
    }

    #[test]
    fn nothing_asked_nothing_opened() {
        assert_eq!(clear_stale_tcp(&[]).ok(), Some(Cleared::default()));
    }
}
