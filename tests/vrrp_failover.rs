//! VRRP end to end, failover: hard failure (SIGKILL + link down) with the client's ARP cache
//! following the GARPs, graceful stop (priority-0 advert), preemption (default, nopreempt,
//! preempt_delay) and a split brain that heals, with the real binary in namespaces.
//! Every test prints the figure it measured.

mod common;

use common::*;
use std::time::{Duration, Instant};
use testkit::{require_root, require_tool, wait_until, Host, Lab, TempDir};

const LB1: &str = "198.51.100.11/24";
const LB2: &str = "198.51.100.12/24";

/// Every state a node entered, in order (from its `Entering ... STATE` lines).
fn states(node: &Node) -> Vec<String> {
    node.log_text()
        .split("Entering ")
        .skip(1)
        .filter_map(|rest| rest.split_whitespace().next().map(str::to_owned))
        .collect()
}

/// Names of the hosts holding the VIP.
fn holders(lab: &Lab) -> Vec<String> {
    ["lb1", "lb2"]
        .into_iter()
        .filter(|h| lab.host(h).has_address(VIP))
        .map(str::to_owned)
        .collect()
}

fn logs(nodes: &[&Node]) -> String {
    nodes
        .iter()
        .map(|n| format!("---- {} log ----\n{}", n.host, n.log_text()))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Starts lb1 alone, waits until it is MASTER with the VIP, then starts lb2 and waits until it
/// is BACKUP: a deterministic starting point (lb1 MASTER, lb2 BACKUP) whatever the configs.
fn start_pair(lab: &Lab, dir: &TempDir, cfg1: &str, cfg2: &str) -> (Node, Node) {
    let t0 = Instant::now();
    let n1 = start(lab, "lb1", dir, cfg1);
    let bound = master_down(101) + Duration::from_secs(2);
    let took = wait_vip(lab.host("lb1"), t0, bound);
    assert!(
        took.is_some(),
        "lb1 alone did not become MASTER within {bound:?}\n{}",
        n1.log_text()
    );
    let n2 = start(lab, "lb2", dir, cfg2);
    assert!(
        n2.wait_log(
            "(VI_1) Entering BACKUP STATE (init)",
            Duration::from_secs(3)
        ),
        "lb2 did not start in BACKUP\n{}",
        logs(&[&n1, &n2])
    );
    // Let lb2 hear a few adverts, so its down timer runs on lb1's adverts.
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(holders(lab), ["lb1"], "{}", logs(&[&n1, &n2]));
    (n1, n2)
}

/// Waits until exactly `expected` hold the VIP; returns how long it took from `since`.
fn wait_holders(
    lab: &Lab,
    expected: &[&str],
    since: Instant,
    timeout: Duration,
) -> Option<Duration> {
    wait_until(timeout, || holders(lab) == expected).then(|| since.elapsed())
}

/// Asserts that for `span` the VIP holders stay exactly `expected`.
fn assert_holders_stay(lab: &Lab, expected: &[&str], span: Duration, nodes: &[&Node]) {
    let end = Instant::now() + span;
    while Instant::now() < end {
        let now = holders(lab);
        assert_eq!(now, expected, "VIP holders changed\n{}", logs(nodes));
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn hard_failure_moves_the_vip_and_the_clients_arp_entry_to_the_backup() {
    if !require_root("hard_failure") || !require_tool("hard_failure", "ping") {
        return;
    }
    let lab = Lab::new(&[("lb1", LB1), ("lb2", LB2), ("client", "198.51.100.50/24")]);
    let dir = TempDir::new("hard-failure");
    let client = lab.host("client");
    client.exec_ok(&["sysctl", "-q", "-w", "net.ipv4.conf.eth0.arp_accept=1"]);
    let (n1, n2) = start_pair(
        &lab,
        &dir,
        &pair_config("lb1", 101, "", ""),
        &pair_config("lb2", 100, "", ""),
    );
    let (mac1, mac2) = (lab.host("lb1").mac(), lab.host("lb2").mac());
    assert_ne!(mac1, mac2);

    // The client talks to the VIP once and so learns lb1's MAC for it.
    let pinged = (0..3).any(|_| client.exec(&["ping", "-c1", "-W1", VIP]).status.success());
    assert!(pinged, "client cannot ping the VIP\n{}", logs(&[&n1, &n2]));
    assert_eq!(client.neighbour_mac(VIP).as_deref(), Some(mac1.as_str()));

    // Hard failure: the process dies and the link goes at the same instant.
    let t0 = Instant::now();
    lab.host("lb1").signal(n1.pid, libc::SIGKILL);
    lab.host("lb1").link_down();
    let bound = master_down(100) + Duration::from_millis(500);
    // lb1's last advert left at most one advert interval before the kill, so lb2's down
    // timer cannot fire earlier than Master_Down_Interval − 1 s after it.
    let not_before = master_down(100) - Duration::from_millis(1050);
    let took = wait_vip(lab.host("lb2"), t0, bound + Duration::from_secs(2));
    println!(
        "hard failure: lb2 holds the VIP {took:?} after SIGKILL + link down of lb1 (bound {not_before:?}..{bound:?})"
    );
    assert!(
        took.is_some_and(|t| t >= not_before && t <= bound),
        "lb2 did not take the VIP within {not_before:?}..{bound:?}: {took:?}\n{}",
        logs(&[&n1, &n2])
    );
    assert!(
        n2.wait_log("(VI_1) Entering MASTER STATE", Duration::from_secs(1)),
        "{}",
        n2.log_text()
    );

    // The GARPs move the client's ARP entry for the VIP to lb2's MAC.
    let arp_bound = bound + Duration::from_secs(1);
    let moved = wait_until(arp_bound.saturating_sub(t0.elapsed()), || {
        client.neighbour_mac(VIP).as_deref() == Some(mac2.as_str())
    })
    .then(|| t0.elapsed());
    println!("hard failure: client's neighbour entry for the VIP is lb2's MAC {mac2} after {moved:?} (bound {arp_bound:?})");
    assert!(
        moved.is_some(),
        "client still maps the VIP to {:?}, not lb2's {mac2}\n{}",
        client.neighbour_mac(VIP),
        n2.log_text()
    );
    // And the client reaches the VIP again, through lb2.
    assert!(
        client.exec(&["ping", "-c1", "-W1", VIP]).status.success(),
        "client cannot ping the VIP after failover"
    );

    // lb1 comes back (cable, then the daemon): it removes the VIP its killed predecessor left,
    // preempts, and its GARPs move the client's entry back.
    lab.host("lb1").link_up();
    let t1 = Instant::now();
    let n1 = start(&lab, "lb1", &dir, &pair_config("lb1", 101, "", ""));
    let bound = master_down(101) + Duration::from_secs(1);
    let back = wait_holders(&lab, &["lb1"], t1, bound + Duration::from_secs(2));
    let arp_back = wait_until(Duration::from_secs(1), || {
        client.neighbour_mac(VIP).as_deref() == Some(mac1.as_str())
    })
    .then(|| t1.elapsed());
    println!("hard failure: lb1 back after {back:?} (bound {bound:?}), client's entry back to lb1's MAC after {arp_back:?}");
    assert!(
        back.is_some_and(|t| t <= bound),
        "restarted lb1 is not the only holder within {bound:?}: {back:?}, holders {:?}\n{}",
        holders(&lab),
        logs(&[&n1, &n2])
    );
    assert!(
        arp_back.is_some(),
        "client maps the VIP to {:?}, not lb1's {mac1}",
        client.neighbour_mac(VIP)
    );
}

#[test]
fn graceful_stop_hands_over_after_skew_time_and_exits_zero() {
    if !require_root("graceful_stop") {
        return;
    }
    let lab = Lab::new(&[("lb1", LB1), ("lb2", LB2)]);
    let dir = TempDir::new("graceful-stop");
    let (n1, n2) = start_pair(
        &lab,
        &dir,
        &pair_config("lb1", 101, "", ""),
        &pair_config("lb2", 100, "", ""),
    );

    // One loop watches both boxes: when lb2 gains the VIP, until when lb1 still holds it
    // (the stopping MASTER keeps it until lb2's first advert), and when lb1 exits.
    let t0 = Instant::now();
    lab.host("lb1").signal(n1.pid, libc::SIGTERM);
    let (mut took, mut lb1_held_until, mut status, mut exited) = (None, None, None, None);
    while t0.elapsed() < Duration::from_secs(4) && (took.is_none() || status.is_none()) {
        if took.is_none() && lab.host("lb2").has_address(VIP) {
            took = Some(t0.elapsed());
        }
        if status.is_none() {
            if lab.host("lb1").has_address(VIP) {
                lb1_held_until = Some(t0.elapsed());
            }
            status = lab.host("lb1").wait_exit(n1.pid, Duration::ZERO);
            if status.is_some() {
                exited = Some(t0.elapsed());
            }
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let bound = skew(100) + Duration::from_millis(500);
    println!(
        "graceful stop: lb2 holds the VIP {took:?} after SIGTERM (bound {bound:?}); lb1 held it until {lb1_held_until:?} and exited with {status:?} after {exited:?}"
    );
    assert!(
        status.is_some_and(|s| s.code() == Some(0)),
        "lb1 did not exit 0 within 4 s of SIGTERM: {status:?}\n{}",
        n1.log_text()
    );
    // The priority-0 advert makes lb2 wait Skew_Time, not zero and not Master_Down_Interval.
    let not_before = skew(100) - Duration::from_millis(50);
    assert!(
        took.is_some_and(|t| t >= not_before && t <= bound),
        "lb2 did not take the VIP within {not_before:?}..Skew_Time + 0.5 s = {bound:?}: {took:?}\n{}",
        logs(&[&n1, &n2])
    );
    // Hand-over: lb1 served until lb2 announced itself (no gap for the clients), then left
    // quickly (well within the 1.5 s limit it would wait for a successor that never comes).
    assert!(
        lb1_held_until.is_some_and(|h| h + Duration::from_millis(100) >= not_before),
        "lb1 dropped the VIP before lb2 took over: held until {lb1_held_until:?}, lb2 at {took:?}\n{}",
        logs(&[&n1, &n2])
    );
    assert!(
        exited.is_some_and(|e| e <= bound + Duration::from_millis(300)),
        "lb1 exited {exited:?} after SIGTERM, not soon after lb2 took over\n{}",
        n1.log_text()
    );
    assert!(
        n1.log_text()
            .contains("(VI_1) 198.51.100.12 is MASTER now (priority 100"),
        "no hand-over line\n{}",
        n1.log_text()
    );
    assert!(
        !lab.host("lb1").has_address(VIP),
        "lb1 still holds the VIP after stopping\n{}",
        n1.log_text()
    );
    assert!(
        n1.log_text().contains("Stopped vrrplb"),
        "{}",
        n1.log_text()
    );
    assert_eq!(
        n2.last_state().as_deref(),
        Some("MASTER"),
        "{}",
        n2.log_text()
    );
}

/// lb1 is SIGKILLed, lb2 takes over (lb1's stale VIP stays on its interface, as after a crash),
/// then lb1 is restarted with `cfg1`. Returns the nodes and the restart instant.
fn kill_failover_restart(
    lab: &Lab,
    dir: &TempDir,
    cfg1: &str,
    cfg2: &str,
) -> (Node, Node, Instant) {
    let (n1, n2) = start_pair(lab, dir, cfg1, cfg2);
    let t0 = Instant::now();
    lab.host("lb1").signal(n1.pid, libc::SIGKILL);
    let _ = lab.host("lb1").wait_exit(n1.pid, Duration::from_secs(2));
    let bound = master_down(100) + Duration::from_millis(500);
    let took = wait_vip(lab.host("lb2"), t0, bound + Duration::from_secs(2));
    println!("lb2 took over {took:?} after lb1 was killed (bound {bound:?})");
    assert!(
        took.is_some_and(|t| t <= bound),
        "lb2 did not take over within {bound:?}: {took:?}\n{}",
        logs(&[&n1, &n2])
    );
    let restarted = Instant::now();
    let n1 = start(lab, "lb1", dir, cfg1);
    // First thing, the restarted lb1 removes the VIP its killed predecessor left behind.
    assert!(
        wait_no_vip(lab.host("lb1"), Duration::from_secs(2)),
        "restarted lb1 kept the stale VIP\n{}",
        n1.log_text()
    );
    println!(
        "restarted lb1 removed its stale VIP after {:?}",
        restarted.elapsed()
    );
    (n1, n2, restarted)
}

#[test]
fn restarted_higher_priority_node_preempts() {
    if !require_root("preempt") {
        return;
    }
    let lab = Lab::new(&[("lb1", LB1), ("lb2", LB2)]);
    let dir = TempDir::new("preempt");
    let cfg1 = pair_config("lb1", 101, "", "");
    let cfg2 = pair_config("lb2", 100, "", "");
    let (n1, n2, t1) = kill_failover_restart(&lab, &dir, &cfg1, &cfg2);

    let bound = master_down(101) + Duration::from_secs(1);
    let took = wait_holders(&lab, &["lb1"], t1, bound + Duration::from_secs(3));
    println!("preemption: restarted lb1 is the only VIP holder {took:?} after its start (bound {bound:?})");
    assert!(
        took.is_some_and(|t| t <= bound),
        "lb1 did not take the VIP back alone within {bound:?}: {took:?}, holders {:?}\n{}",
        holders(&lab),
        logs(&[&n1, &n2])
    );
    assert_holders_stay(&lab, &["lb1"], Duration::from_secs(3), &[&n1, &n2]);
    assert_eq!(
        n1.last_state().as_deref(),
        Some("MASTER"),
        "{}",
        n1.log_text()
    );
    assert_eq!(
        n2.last_state().as_deref(),
        Some("BACKUP"),
        "{}",
        n2.log_text()
    );
}

#[test]
fn with_nopreempt_the_restarted_node_stays_backup() {
    if !require_root("nopreempt") {
        return;
    }
    let lab = Lab::new(&[("lb1", LB1), ("lb2", LB2)]);
    let dir = TempDir::new("nopreempt");
    let cfg1 = pair_config("lb1", 101, "    nopreempt: true\n", "");
    let cfg2 = pair_config("lb2", 100, "    nopreempt: true\n", "");
    let (n1, n2, t1) = kill_failover_restart(&lab, &dir, &cfg1, &cfg2);

    let watch = Duration::from_secs(6);
    assert_holders_stay(&lab, &["lb2"], watch, &[&n1, &n2]);
    println!(
        "nopreempt: lb2 kept the VIP for {:?} after lb1's restart",
        t1.elapsed()
    );
    assert_eq!(
        n1.last_state().as_deref(),
        Some("BACKUP"),
        "{}",
        n1.log_text()
    );
    assert_eq!(
        n2.last_state().as_deref(),
        Some("MASTER"),
        "{}",
        n2.log_text()
    );
}

#[test]
fn preempt_delay_postpones_the_takeover() {
    if !require_root("preempt_delay") {
        return;
    }
    let lab = Lab::new(&[("lb1", LB1), ("lb2", LB2)]);
    let dir = TempDir::new("preempt-delay");
    let delay = Duration::from_secs(3);
    let cfg1 = pair_config("lb1", 101, "    preempt_delay: 3\n", "");
    let cfg2 = pair_config("lb2", 100, "", "");
    let (n1, n2, t1) = kill_failover_restart(&lab, &dir, &cfg1, &cfg2);

    // lb2's adverts reach lb1 within a second of its start; the first three of them (those
    // within the delay) reset its down timer, so it cannot be master before
    // 2 advert intervals + Master_Down_Interval; without the delay it would be at MDI.
    let not_before = Duration::from_secs(2) + master_down(101) - Duration::from_millis(200);
    let bound = delay + master_down(101) + Duration::from_millis(1500);
    // The first moment lb1 holds the VIP, and whether it held it at 2.5 s.
    let mut at_2_5 = None;
    let took = loop {
        let e = t1.elapsed();
        let has = lab.host("lb1").has_address(VIP);
        if has {
            break Some(e);
        }
        if e >= Duration::from_millis(2500) && at_2_5.is_none() {
            at_2_5 = Some(has);
        }
        if e > bound + Duration::from_secs(2) {
            break None;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    println!(
        "preempt_delay 3 s: restarted lb1 took over {took:?} after its start (expected between {not_before:?} and {bound:?})"
    );
    assert!(
        took.is_some_and(|t| t > Duration::from_millis(2500)) && at_2_5 == Some(false),
        "lb1 was master at 2.5 s\n{}",
        logs(&[&n1, &n2])
    );
    assert!(
        took.is_some_and(|t| t >= not_before && t <= bound),
        "lb1 took over at {took:?}, expected between {not_before:?} and {bound:?}\n{}",
        logs(&[&n1, &n2])
    );
    assert!(
        wait_holders(&lab, &["lb1"], t1, Duration::from_secs(1)).is_some(),
        "holders {:?}\n{}",
        holders(&lab),
        logs(&[&n1, &n2])
    );
    assert_holders_stay(&lab, &["lb1"], Duration::from_secs(2), &[&n1, &n2]);
}

/// Drops every VRRP packet (IP protocol 112) arriving at `host`.
fn block_vrrp(host: &Host) {
    host.exec_ok(&["nft", "add", "table", "inet", "vrrpblock"]);
    host.exec_ok(&[
        "nft",
        "add",
        "chain",
        "inet",
        "vrrpblock",
        "in",
        "{ type filter hook input priority 0; }",
    ]);
    host.exec_ok(&[
        "nft",
        "add",
        "rule",
        "inet",
        "vrrpblock",
        "in",
        "ip",
        "protocol",
        "112",
        "drop",
    ]);
}

fn unblock_vrrp(host: &Host) {
    host.exec_ok(&["nft", "delete", "table", "inet", "vrrpblock"]);
}

/// lb1 MASTER, lb2 BACKUP with priorities `p1`, `p2`; VRRP is dropped both ways (links stay
/// up) until both are MASTER, then let through again: within two advert intervals `winner`
/// alone is MASTER and holds the VIP.
fn split_brain_heals(tag: &str, p1: u8, p2: u8, winner: &str) {
    let lab = Lab::new(&[("lb1", LB1), ("lb2", LB2)]);
    let dir = TempDir::new(tag);
    let (n1, n2) = start_pair(
        &lab,
        &dir,
        &pair_config("lb1", p1, "", ""),
        &pair_config("lb2", p2, "", ""),
    );
    let (nw, nl) = if winner == "lb1" {
        (&n1, &n2)
    } else {
        (&n2, &n1)
    };
    // Longer than lb2's Master_Down_Interval: a BACKUP hearing an equal or higher priority
    // keeps resetting its timer (it never applies the address tie-break), so lb1 stays alone.
    assert_holders_stay(
        &lab,
        &["lb1"],
        master_down(p2) + Duration::from_millis(500),
        &[&n1, &n2],
    );

    // Links stay up, but neither node hears the other's adverts: both become MASTER.
    let t0 = Instant::now();
    block_vrrp(lab.host("lb1"));
    block_vrrp(lab.host("lb2"));
    let bound = master_down(p2) + Duration::from_millis(500);
    let took = wait_holders(&lab, &["lb1", "lb2"], t0, bound + Duration::from_secs(2));
    println!("{tag}: both hold the VIP {took:?} after VRRP was blocked (bound {bound:?})");
    assert!(
        took.is_some_and(|t| t <= bound),
        "no split brain within {bound:?}: {took:?}, holders {:?}\n{}",
        holders(&lab),
        logs(&[&n1, &n2])
    );
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(holders(&lab), ["lb1", "lb2"], "{}", logs(&[&n1, &n2]));
    assert_eq!(n1.last_state().as_deref(), Some("MASTER"));
    assert_eq!(n2.last_state().as_deref(), Some("MASTER"));

    // Heal: within two advert intervals one MASTER and one holder.
    let t1 = Instant::now();
    unblock_vrrp(lab.host("lb1"));
    unblock_vrrp(lab.host("lb2"));
    let bound = Duration::from_secs(2);
    let healed = wait_holders(&lab, &[winner], t1, bound + Duration::from_secs(3));
    println!(
        "{tag}: healed ({winner} the only VIP holder) {healed:?} after VRRP flowed again (bound {bound:?})"
    );
    assert!(
        healed.is_some_and(|t| t <= bound),
        "split brain not healed within {bound:?}: {healed:?}, holders {:?}\n{}",
        holders(&lab),
        logs(&[&n1, &n2])
    );
    assert!(
        wait_until(Duration::from_millis(500), || {
            nl.last_state().as_deref() == Some("BACKUP")
        }),
        "{}",
        logs(&[&n1, &n2])
    );
    assert_eq!(
        nw.last_state().as_deref(),
        Some("MASTER"),
        "{}",
        logs(&[&n1, &n2])
    );
    assert_holders_stay(&lab, &[winner], Duration::from_secs(3), &[&n1, &n2]);
}

#[test]
fn split_brain_heals_within_two_advert_intervals() {
    if !require_root("split_brain") || !require_tool("split_brain", "nft") {
        return;
    }
    split_brain_heals("split-brain", 101, 100, "lb1");
}

/// Equal priorities: a Backup never uses the tie-break, so lb1 (started first) stays MASTER
/// while lb2 listens; once both are MASTER, the higher address (lb2, .12) wins (vrrp.md §6).
#[test]
fn equal_priority_split_brain_heals_to_the_higher_address() {
    if !require_root("split_brain_tie") || !require_tool("split_brain_tie", "nft") {
        return;
    }
    split_brain_heals("split-brain-tie", 100, 100, "lb2");
}

/// Stopping the BACKUP sends nothing (no priority-0 advert) and leaves the MASTER alone.
#[test]
fn stopping_the_backup_leaves_the_master_alone() {
    if !require_root("stop_backup") {
        return;
    }
    let lab = Lab::new(&[("lb1", LB1), ("lb2", LB2)]);
    let dir = TempDir::new("stop-backup");
    let (n1, n2) = start_pair(
        &lab,
        &dir,
        &pair_config("lb1", 101, "", ""),
        &pair_config("lb2", 100, "", ""),
    );
    let t0 = Instant::now();
    lab.host("lb2").signal(n2.pid, libc::SIGTERM);
    let status = lab.host("lb2").wait_exit(n2.pid, Duration::from_secs(1));
    println!(
        "stop backup: lb2 exited with {status:?} after {:?}",
        t0.elapsed()
    );
    assert!(
        status.is_some_and(|s| s.code() == Some(0)),
        "lb2 did not exit 0 within 1 s: {status:?}\n{}",
        n2.log_text()
    );
    assert_holders_stay(&lab, &["lb1"], Duration::from_secs(2), &[&n1, &n2]);
    // lb1 logs at debug level, so a priority-0 advert from lb2 would show.
    let log = n1.log_text();
    assert!(!log.contains("priority 0"), "{log}");
    assert_eq!(n1.last_state().as_deref(), Some("MASTER"), "{log}");
    assert_eq!(
        log.matches("Entering ").count(),
        2,
        "lb1 changed state\n{log}"
    );
}

/// The MASTER's cable is cut while its daemon runs: it sees carrier loss, enters FAULT and
/// drops the VIP at once; lb2 takes over one Master_Down_Interval after lb1's last advert.
/// Mended: lb1 leaves FAULT for BACKUP and preempts again.
#[test]
fn cable_cut_on_the_master_faults_it_and_mending_restores_it() {
    if !require_root("cable_cut_master") {
        return;
    }
    let lab = Lab::new(&[("lb1", LB1), ("lb2", LB2)]);
    let dir = TempDir::new("cable-cut");
    let (n1, n2) = start_pair(
        &lab,
        &dir,
        &pair_config("lb1", 101, "", ""),
        &pair_config("lb2", 100, "", ""),
    );
    let t0 = Instant::now();
    lab.host("lb1").cut_cable();
    let dropped = wait_no_vip(lab.host("lb1"), Duration::from_secs(1)).then(|| t0.elapsed());
    let bound = master_down(100) + Duration::from_millis(500);
    let took = wait_vip(lab.host("lb2"), t0, bound + Duration::from_secs(2));
    println!("cable cut: lb1 dropped the VIP after {dropped:?}; lb2 holds it after {took:?} (bound {bound:?})");
    assert!(
        dropped.is_some(),
        "lb1 kept the VIP without carrier\n{}",
        n1.log_text()
    );
    assert!(
        n1.wait_log("(VI_1) Entering FAULT STATE", Duration::from_secs(1)),
        "{}",
        n1.log_text()
    );
    assert!(
        took.is_some_and(|t| t <= bound),
        "lb2 did not take over within {bound:?}: {took:?}\n{}",
        logs(&[&n1, &n2])
    );

    let t1 = Instant::now();
    lab.host("lb1").mend_cable();
    let bound = master_down(101) + Duration::from_secs(1);
    let back = wait_holders(&lab, &["lb1"], t1, bound + Duration::from_secs(2));
    println!("cable cut: mended, lb1 the only holder again after {back:?} (bound {bound:?})");
    assert!(
        back.is_some_and(|t| t <= bound),
        "lb1 did not preempt within {bound:?}: {back:?}, holders {:?}\n{}",
        holders(&lab),
        logs(&[&n1, &n2])
    );
    assert_eq!(
        states(&n1),
        ["BACKUP", "MASTER", "FAULT", "BACKUP", "MASTER"],
        "{}",
        n1.log_text()
    );
    assert_holders_stay(&lab, &["lb1"], Duration::from_secs(2), &[&n1, &n2]);
}
