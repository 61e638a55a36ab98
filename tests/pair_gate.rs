//! The HA pair end to end: the balancer's gated frontend serves on the MASTER only (listeners
//! follow the VRRP state), and native backend tracking hands the VIP to the box that can
//! reach its servers.

mod common;

use common::*;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use testkit::{require_root, require_tool, wait_until};

fn pair_lb_config(node: &str, priority: u8) -> String {
    pair_config(
        node,
        priority,
        "    track_backends: [{ backend: web, min_up: 1, weight: -50 }]\n",
        "frontends:\n  - name: www\n    bind: [\"198.51.100.100:80\"]\n    gate: [VI_1]\n    default_backend: web\n\
backends:\n  - name: web\n    servers: [{ name: web1, address: \"198.51.100.21:80\" }]\n    health_check: { kind: http, path: /, interval: 300ms, timeout: 200ms, rise: 1, fall: 2 }\n",
    )
}

#[test]
fn gated_frontend_follows_master_and_backend_tracking_moves_the_vip() {
    if !require_root("pair_gate") || !require_tool("pair_gate", "nft") {
        return;
    }
    let (lab, dir, _web1) = pair_lab_with_web1("pair-gate");
    let vip: SocketAddr = "198.51.100.100:80".parse().expect("vip");
    let client = lab.host("client");
    let ask = move || lab_get(client, vip);

    // lb1 alone first: started together, the two down timers (3.605 s at 101, 3.609 s at
    // 100) fire within 4 ms, so a few ms of start-up difference made both MASTER and lb2
    // still listened during its 250 ms hand-back when the test looked.
    let t0 = Instant::now();
    let n1 = start(&lab, "lb1", &dir, &pair_lb_config("lb1", 101));
    assert!(
        wait_vip(lab.host("lb1"), t0, Duration::from_secs(8)).is_some(),
        "{}",
        n1.log_text()
    );
    let n2 = start(&lab, "lb2", &dir, &pair_lb_config("lb2", 100));
    assert!(
        n2.wait_log(
            "(VI_1) Entering BACKUP STATE (init)",
            Duration::from_secs(5)
        ),
        "{}",
        n2.log_text()
    );
    assert!(wait_until(Duration::from_secs(3), || ask()
        .is_some_and(|(s, b)| s == 200 && b.starts_with("web1"))));
    // Only the MASTER listens on the VIP; the BACKUP's gated frontend is closed.
    assert!(listening(lab.host("lb1"), 80), "MASTER not listening");
    assert!(!listening(lab.host("lb2"), 80), "BACKUP listens on :80");

    // The backend becomes unreachable from lb1 only: lb1's checks fail, web goes DOWN there,
    // its priority drops by 50 (to 51) and lb2 (100) preempts; clients are served by lb2.
    lab.host("lb1")
        .exec_ok(&["nft", "add", "table", "inet", "t"]);
    lab.host("lb1").exec_ok(&[
        "nft",
        "add",
        "chain",
        "inet",
        "t",
        "out",
        "{ type filter hook output priority 0; }",
    ]);
    lab.host("lb1").exec_ok(&[
        "nft",
        "add",
        "rule",
        "inet",
        "t",
        "out",
        "ip",
        "daddr",
        "198.51.100.21",
        "drop",
    ]);
    let cut = Instant::now();
    assert!(
        n1.wait_log("Server web/web1 is DOWN", Duration::from_secs(5)),
        "{}",
        n1.log_text()
    );
    assert!(
        n1.wait_log(
            "(VI_1) Changing effective priority from 101 to 51",
            Duration::from_secs(3)
        ),
        "{}",
        n1.log_text()
    );
    let moved = wait_vip(lab.host("lb2"), cut, Duration::from_secs(10));
    println!("track_backends: lb2 holds the VIP {moved:?} after lb1 lost its backend");
    assert!(
        moved.is_some(),
        "VIP did not move:\n{}\n{}",
        n1.log_text(),
        n2.log_text()
    );
    assert!(wait_no_vip(lab.host("lb1"), Duration::from_secs(2)));
    assert!(
        wait_until(Duration::from_secs(3), || ask()
            .is_some_and(|(s, b)| s == 200 && b.starts_with("web1"))),
        "lb2 does not serve"
    );
    assert!(listening(lab.host("lb2"), 80), "new MASTER not listening");
    assert!(
        wait_until(Duration::from_secs(2), || !listening(lab.host("lb1"), 80)),
        "old MASTER still listening"
    );

    // Backend reachable again: lb1's priority is back to 101 and it preempts.
    lab.host("lb1").exec_ok(&["nft", "flush", "ruleset"]);
    let healed = Instant::now();
    let back = wait_vip(lab.host("lb1"), healed, Duration::from_secs(10));
    println!("track_backends: lb1 takes the VIP back {back:?} after its backend returned");
    assert!(back.is_some(), "{}", n1.log_text());
    assert!(
        wait_until(Duration::from_secs(2), || !listening(lab.host("lb2"), 80)),
        "lb2 still listening"
    );
    assert!(wait_until(Duration::from_secs(3), || ask()
        .is_some_and(|(s, _)| s == 200)));

    // Graceful stop of the MASTER, watched by a client polling every 20 ms (bounded in time
    // and count) that records which balancer forwarded each answer (the backend names its
    // peer): answers must move from lb1 to lb2, lb2 must keep answering, and at most a request
    // in flight at the switch may fail (lb1 keeps its VIP and listeners until lb2's first
    // advert; without that wait the client sees Skew_Time of failures, ~30 polls).
    assert!(
        ask()
            .and_then(|(_, b)| answered_by(&b).map(str::to_owned))
            .as_deref()
            == Some("198.51.100.11"),
        "lb1 does not answer before the stop"
    );
    let stop = Instant::now();
    lab.host("lb1").signal(n1.pid, 15);
    let poll = poll_handover(&ask, Duration::from_secs(6), Duration::from_secs(1));
    let bound = skew(100) + Duration::from_millis(500);
    println!(
        "graceful stop: {} polls, {} failed, {} answered by lb1, first lb2 answer after {:?} (bound {bound:?}), {} lb1 answers after it",
        poll.polls, poll.failed, poll.by_lb1, poll.switch, poll.lb1_after_switch
    );
    let logs = || format!("{}\n{}", n1.log_text(), n2.log_text());
    assert!(
        poll.by_other == 0,
        "answers from an unknown peer\n{}",
        logs()
    );
    assert!(
        poll.switch.is_some_and(|t| t <= bound),
        "lb2 did not take over within {bound:?}: {:?}\n{}",
        poll.switch,
        logs()
    );
    assert!(
        poll.lb2_settled,
        "lb2 did not keep answering for 1 s after the switch\n{}",
        logs()
    );
    assert!(
        poll.by_lb1 > 0,
        "lb1 served nothing after SIGTERM (stop {stop:?})"
    );
    assert_eq!(
        poll.lb1_after_switch,
        0,
        "answers went back to lb1\n{}",
        logs()
    );
    assert!(
        poll.failed <= 2,
        "{} polls failed during the graceful hand-over\n{}",
        poll.failed,
        logs()
    );
}

/// What a client polling the VIP saw across a graceful stop of lb1.
#[derive(Default)]
struct HandOver {
    polls: u32,
    failed: u32,
    by_lb1: u32,
    by_other: u32,
    /// When lb2 first answered (since the poll started).
    switch: Option<Duration>,
    lb1_after_switch: u32,
    /// lb2 was still answering `settle` after the switch.
    lb2_settled: bool,
}

/// Polls every 20 ms until lb2 has answered for `settle` after its first answer, or `limit`.
fn poll_handover(
    ask: &dyn Fn() -> Option<(u16, String)>,
    limit: Duration,
    settle: Duration,
) -> HandOver {
    let start = Instant::now();
    let mut seen = HandOver::default();
    while start.elapsed() < limit && seen.polls < 1000 {
        seen.polls += 1;
        let answer = ask();
        let peer = answer
            .as_ref()
            .filter(|(s, _)| *s == 200)
            .and_then(|(_, b)| answered_by(b).map(str::to_owned));
        match peer.as_deref() {
            None => seen.failed += 1,
            Some("198.51.100.11") if seen.switch.is_some() => seen.lb1_after_switch += 1,
            Some("198.51.100.11") => seen.by_lb1 += 1,
            Some("198.51.100.12") => {
                let since = *seen.switch.get_or_insert(start.elapsed());
                if start.elapsed() >= since + settle {
                    seen.lb2_settled = true;
                    break;
                }
            }
            Some(_) => seen.by_other += 1,
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    seen
}

fn lab_get(client: &testkit::Host, vip: SocketAddr) -> Option<(u16, String)> {
    client.run_in(move || http_get(vip, "/", ""))
}
