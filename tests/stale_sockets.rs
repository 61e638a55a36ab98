//! A box that gets the VIP back first clears the closed connections (TIME-WAIT...) left on it
//! from its earlier term (issue 16: found by the chaos drill, reproduced here alone).
//!
//! The hang it prevents: lb1 answers a client's `Connection: close` request and closes first,
//! so lb1 keeps (VIP:80, client:P) in TIME-WAIT for 60 s. The VIP moves to lb2; the client
//! opens a keep-alive connection to lb2 from the same port P (clients cycle through their
//! ports). The VIP comes back to lb1 within the minute: the client's next request on that
//! connection reaches lb1's TIME-WAIT socket, which answers with a bare ACK of the old
//! sequence numbers; the client ignores it and waits for its whole timeout. Without the stale
//! socket lb1 resets the connection at once and the client retries.
//!
//! Wall time: ~10 s (a 100 ms VRRPv3 pair).

mod common;

use common::*;
use socket2::{Domain, Protocol, Socket, Type};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};
use testkit::{require_root, wait_until, Lab};

const PORT: u16 = 41_234;
const CLIENT: &str = "198.51.100.50";

/// A connection to the VIP from the client's fixed port `PORT`.
fn connect_from_fixed_port() -> std::io::Result<TcpStream> {
    let s = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP))?;
    s.set_reuse_address(true)?;
    let from: SocketAddr = format!("{CLIENT}:{PORT}")
        .parse()
        .map_err(std::io::Error::other)?;
    s.bind(&from.into())?;
    let vip: SocketAddr = format!("{VIP}:80").parse().map_err(std::io::Error::other)?;
    s.connect_timeout(&vip.into(), Duration::from_secs(1))?;
    let s: TcpStream = s.into();
    s.set_read_timeout(Some(Duration::from_secs(3)))?;
    Ok(s)
}

/// One request on `s`; the response head and body as text ("" on EOF).
fn exchange(s: &mut TcpStream, close: bool) -> std::io::Result<String> {
    let conn = if close { "close" } else { "keep-alive" };
    write!(
        s,
        "GET / HTTP/1.1\r\nHost: www.example.test\r\nConnection: {conn}\r\n\r\n"
    )?;
    let mut buf = vec![0u8; 4096];
    let mut text = String::new();
    loop {
        let n = s.read(&mut buf)?;
        if n == 0 {
            return Ok(text);
        }
        text.push_str(&String::from_utf8_lossy(&buf[..n]));
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let len: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("Content-Length: "))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0);
            if body.len() >= len {
                return Ok(text);
            }
        }
    }
}

/// The TCP sockets on VIP:80 with the client's port in `host`, as `ss` shows them.
fn sockets_with_client_port(lab: &Lab, host: &str) -> String {
    let out = lab.host(host).exec(&[
        "ss",
        "-Htan",
        &format!("( sport = :80 and dport = :{PORT} )"),
    ]);
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// The state an earlier term leaves when nothing cleared it (a daemon killed and restarted,
/// or another VRRP daemon before vrrplb): the VIP was on lb1, lb1 answered a `Connection:
/// close` request from client port P and closed first, and the VIP went away; the kernel keeps
/// (VIP:80, client:P) in TIME-WAIT for 60 s.
fn leave_time_wait_on(lab: &Lab, host: &str) {
    let h = lab.host(host);
    h.exec_ok(&["ip", "addr", "add", &format!("{VIP}/24"), "dev", "eth0"]);
    let listener = h.run_in(|| std::net::TcpListener::bind((VIP, 80)).expect("bind VIP on lb1"));
    let server = std::thread::spawn(move || -> std::io::Result<()> {
        let (mut s, _) = listener.accept()?;
        let mut buf = [0u8; 1024];
        let mut got = Vec::new();
        while !got.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = s.read(&mut buf)?;
            if n == 0 {
                break;
            }
            got.extend_from_slice(&buf[..n]);
        }
        s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nConnection: close\r\n\r\nold")?;
        // Closes first: the TIME-WAIT is the server's.
        Ok(())
    });
    let answer = lab.host("client").run_in(|| {
        let mut s = connect_from_fixed_port()?;
        let a = exchange(&mut s, true)?;
        let mut rest = Vec::new();
        let _ = s.read_to_end(&mut rest);
        Ok::<_, std::io::Error>(a)
    });
    assert!(answer
        .expect("exchange with the earlier term")
        .ends_with("old"));
    server.join().expect("server thread").expect("server");
    assert!(
        wait_until(Duration::from_secs(2), || sockets_with_client_port(
            lab, host
        )
        .contains("TIME-WAIT")),
        "no TIME-WAIT on {host}: {}",
        sockets_with_client_port(lab, host)
    );
    h.exec_ok(&["ip", "addr", "del", &format!("{VIP}/24"), "dev", "eth0"]);
}

#[test]
fn a_new_master_clears_closed_connections_left_on_the_vip() {
    if !require_root("stale_sockets") {
        return;
    }
    let (lab, dir, _web1) = pair_lab_with_web1("stale-sockets");

    // 1. lb1's earlier term left (VIP:80, client:P) in TIME-WAIT.
    leave_time_wait_on(&lab, "lb1");

    // 2. lb2 alone is MASTER; the client keeps a connection to it from the same port P.
    let _n2 = start_until_vip(&lab, "lb2", &dir, &gated_pair_config_v3("lb2", 100));
    // (start_until_vip waits for the client's ARP entry to follow lb2: step 1 left one for lb1.)
    let (go_tx, go_rx) = std::sync::mpsc::channel::<()>();
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let worker = lab.host("client").run_in(move || {
        std::thread::spawn(move || {
            let r = (|| -> std::io::Result<(String, std::io::Result<String>, Duration)> {
                let mut s = connect_from_fixed_port()?;
                let through_lb2 = exchange(&mut s, false)?;
                ready_tx.send(()).ok();
                // (after the fail-back) the next request on the kept connection.
                let _ = go_rx.recv_timeout(Duration::from_secs(20));
                let asked = Instant::now();
                let next = exchange(&mut s, false);
                Ok((through_lb2, next, asked.elapsed()))
            })();
            ready_tx.send(()).ok();
            r
        })
    });
    assert!(
        ready_rx.recv_timeout(Duration::from_secs(5)).is_ok(),
        "the keep-alive exchange with lb2 did not finish"
    );
    assert!(sockets_with_client_port(&lab, "lb1").contains("TIME-WAIT"));

    // 3. lb1 starts and preempts (101 > 100). Before it adds the VIP it clears the stale
    // socket.
    // Without the hand-over relay (tests/handover_relay.rs): for lb2's 250 ms hand-back it
    // would pass the request below to lb2, whose connection it is, and hide lb1's socket; what
    // is tested here is what lb1 does with its own sockets (after the hand-back, too).
    let config = gated_pair_config_v3("lb1", 101).replace(
        "    version: 3\n",
        "    version: 3\n    handover_relay: false\n",
    );
    assert!(config.contains("handover_relay: false"));
    let n1 = preempt_with_lb1(&lab, &dir, &config);
    // 4. The client's next request on the kept connection, sent as soon as its ARP entry
    // follows lb1's gratuitous ARPs (within lb2's 250 ms hand-back, before lb2 closes its
    // end): it reaches lb1, which resets it at once instead of hanging it on a stale socket
    // until the client's timeout.
    go_tx.send(()).ok();
    let (through_lb2, next, took) = worker
        .join()
        .expect("client thread")
        .expect("keep-alive connection to lb2");
    assert!(through_lb2.starts_with("HTTP/1.1 200"), "{through_lb2}");
    println!("the next request on the kept connection after the fail-back: {next:?} in {took:?}");
    // Without the clearing lb1's TIME-WAIT socket swallows it: in the chaos drill the request
    // hung for the client's whole timeout; here lb2's end closes at the end of its hand-back
    // (~180 ms, an EOF) when it drains.
    assert!(
        matches!(&next, Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset),
        "not reset by lb1: {next:?}"
    );
    assert!(took < Duration::from_millis(100), "took {took:?}");

    assert!(wait_no_vip(lab.host("lb2"), Duration::from_secs(3)));
    assert!(
        n1.wait_log(
            "(VI_1) cleared 1 stale TCP socket(s) on 198.51.100.100 (1 in TIME-WAIT)",
            Duration::from_secs(2)
        ),
        "{}",
        n1.log_text()
    );
    assert!(
        !n1.log_text().contains("hand-over relay"),
        "{}",
        n1.log_text()
    );
    let left = sockets_with_client_port(&lab, "lb1");
    assert!(!left.contains("TIME-WAIT"), "still on lb1: {left}");

    // 5. A new connection from the same port is served by lb1.
    let again = lab.host("client").run_in(|| {
        let mut s = connect_from_fixed_port()?;
        exchange(&mut s, true)
    });
    let again = again.expect("a new connection from the same port through lb1");
    assert!(again.starts_with("HTTP/1.1 200"), "{again}");
    assert_eq!(answered_by(&again), Some("198.51.100.11"), "{again}");
}
