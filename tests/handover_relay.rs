//! A connection still opening with the old MASTER as the VIP moves is not reset: the new
//! MASTER relays its segments to the old one for the hand-back (issue 16, vrrp/src/io/relay.rs;
//! found by the chaos drill, reproduced here alone).
//!
//! The failure it prevents, seen in a capture of the drill: the client's SYN and the SYN-ACK
//! went with the old MASTER, the new MASTER's gratuitous ARP moved the client's ARP entry,
//! and the request went to the new MASTER, whose kernel knew no such connection and reset it
//! (`read: connection reset by peer`; `connect: ...` when the ARP moved between the SYN-ACK
//! and the ACK). About 1 move in 40 under a 50 requests/s client.
//!
//! Here the window is held open on purpose: the client completes the handshake with lb2 and
//! sends its request only once its ARP entry points at lb1, within lb2's 250 ms hand-back.
//! Then a graceful stop (priority-0 advert) opens a relay the other way, and a hard take-over
//! (lb1 killed) opens none: nothing holds the connections.
//!
//! Wall time: ~12 s (a 100 ms VRRPv3 pair).

mod common;

use common::*;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};
use testkit::{require_root, Lab};

/// One `Connection: close` request on `s`; the whole answer.
fn ask(s: &mut TcpStream) -> std::io::Result<String> {
    s.write_all(b"GET / HTTP/1.1\r\nHost: www.example.test\r\nConnection: close\r\n\r\n")?;
    let mut out = Vec::new();
    s.read_to_end(&mut out)?;
    Ok(String::from_utf8_lossy(&out).into_owned())
}

fn relay_tables(lab: &Lab, host: &str) -> String {
    let out = lab.host(host).exec(&["nft", "list", "tables"]);
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.contains("vrrplb_relay"))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn a_connection_opened_with_the_old_master_survives_the_move() {
    if !require_root("handover_relay") {
        return;
    }
    let (lab, dir, _web1) = pair_lab_with_web1("handover-relay");
    let n2 = start_until_vip(&lab, "lb2", &dir, &gated_pair_config_v3("lb2", 100));

    // 1. The client opens a connection to the VIP (lb2 answers the handshake) and waits.
    let (go_tx, go_rx) = std::sync::mpsc::channel::<()>();
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let worker = lab.host("client").run_in(move || {
        std::thread::spawn(move || {
            let r = (|| -> std::io::Result<String> {
                let mut s = TcpStream::connect_timeout(
                    &format!("{VIP}:80").parse().map_err(std::io::Error::other)?,
                    Duration::from_secs(1),
                )?;
                s.set_read_timeout(Some(Duration::from_secs(3)))?;
                ready_tx.send(()).ok();
                let _ = go_rx.recv_timeout(Duration::from_secs(20));
                ask(&mut s)
            })();
            ready_tx.send(()).ok();
            r
        })
    });
    assert!(
        ready_rx.recv_timeout(Duration::from_secs(5)).is_ok(),
        "no connection to lb2"
    );

    // 2. lb1 starts and preempts lb2 (101 > 100), which hands back for 250 ms.
    let n1 = preempt_with_lb1(&lab, &dir, &gated_pair_config_v3("lb1", 101));
    // 3. The request now goes to lb1, which has no such connection: the relay passes it to
    // lb2, whose connection it is, and lb2 answers. Without the relay lb1 resets it.
    go_tx.send(()).ok();
    let answer = worker.join().expect("client thread");
    let answer = match answer {
        Ok(a) => a,
        Err(e) => panic!(
            "the request on the connection opened with lb2 failed: {e}\n--- lb1\n{}",
            n1.log_text()
        ),
    };
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert_eq!(answered_by(&answer), Some("198.51.100.12"), "{answer}");

    // A new connection meanwhile is lb1's own: the relay leaves it alone.
    let fresh = lab.host("client").run_in(|| {
        let mut s = TcpStream::connect_timeout(
            &format!("{VIP}:80").parse().map_err(std::io::Error::other)?,
            Duration::from_secs(1),
        )?;
        s.set_read_timeout(Some(Duration::from_secs(3)))?;
        ask(&mut s)
    });
    let fresh = fresh.expect("a new connection through lb1");
    assert_eq!(answered_by(&fresh), Some("198.51.100.11"), "{fresh}");

    // 4. The relay closes with the hand-back and says what it passed on.
    assert!(
        n1.wait_log(
            "(VI_1) hand-over relay open: segments of connections 198.51.100.12 still holds",
            Duration::from_secs(2)
        ),
        "{}",
        n1.log_text()
    );
    assert!(
        n1.wait_log(
            "(VI_1) hand-over relay to 198.51.100.12 closed: ",
            Duration::from_secs(2)
        ),
        "{}",
        n1.log_text()
    );
    let text = n1.log_text();
    let passed: u64 = text
        .split("closed: ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert!(passed >= 1, "no segment passed on:\n{text}");
    assert_eq!(relay_tables(&lab, "lb1"), "", "the table is left on lb1");
    assert!(wait_no_vip(lab.host("lb2"), Duration::from_secs(3)));

    // 5. lb1 stops gracefully (priority-0 advert, then its hand-back): lb2 relays to it.
    kill(Pid::from_raw(n1.pid as i32), Signal::SIGTERM).expect("stop lb1");
    assert!(
        n2.wait_log(
            "(VI_1) hand-over relay open: segments of connections 198.51.100.11 still holds",
            Duration::from_secs(3)
        ),
        "{}",
        n2.log_text()
    );
    assert!(wait_no_vip(lab.host("lb1"), Duration::from_secs(3)));

    // 6. A hard take-over (lb1 back, then killed: nothing holds its connections any more)
    // opens no relay.
    let n1 = preempt_with_lb1(&lab, &dir, &gated_pair_config_v3("lb1", 101));
    assert!(wait_no_vip(lab.host("lb2"), Duration::from_secs(3)));
    let opened = n2.count_log("hand-over relay open");
    kill(Pid::from_raw(n1.pid as i32), Signal::SIGKILL).expect("kill lb1");
    lab.host("lb1")
        .exec_ok(&["ip", "addr", "del", &format!("{VIP}/24"), "dev", "eth0"]);
    let t0 = Instant::now();
    assert!(
        wait_vip(lab.host("lb2"), t0, Duration::from_secs(3)).is_some(),
        "{}",
        n2.log_text()
    );
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        n2.count_log("hand-over relay open"),
        opened,
        "{}",
        n2.log_text()
    );
    assert_eq!(relay_tables(&lab, "lb2"), "");
}
