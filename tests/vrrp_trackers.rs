//! VRRP trackers end to end (vrrp.md §10): a weighted track_script moving the VIP, a tracked
//! interface putting the instance in FAULT, a hung script killed at its timeout. The real
//! binary runs in lab namespaces: lb1 priority 101, lb2 priority 100, VIP 198.51.100.100/24.

mod common;

use common::*;
use std::collections::HashMap;
use std::time::{Duration, Instant};
use testkit::{require_root, Lab, TempDir};

fn pair_lab() -> Lab {
    Lab::new(&[("lb1", "198.51.100.11/24"), ("lb2", "198.51.100.12/24")])
}

/// Waits for the normal election: lb1 alone holds the VIP.
fn wait_lb1_master(lab: &Lab, t0: Instant, n1: &Node, n2: &Node) {
    let bound = master_down(101) + Duration::from_secs(2);
    let took = wait_vip(lab.host("lb1"), t0, bound);
    println!("start: lb1 holds the VIP after {took:?} (bound {bound:?})");
    assert!(
        took.is_some(),
        "lb1 did not become MASTER within {bound:?}\n--- lb1\n{}\n--- lb2\n{}",
        n1.log_text(),
        n2.log_text()
    );
    assert!(
        wait_no_vip(lab.host("lb2"), Duration::from_secs(2)),
        "lb2 still holds the VIP\n{}",
        n2.log_text()
    );
}

#[test]
fn failing_weighted_script_moves_the_vip_and_recovery_takes_it_back() {
    let test = "failing_weighted_script_moves_the_vip_and_recovery_takes_it_back";
    if !require_root(test) {
        return;
    }
    let lab = pair_lab();
    let dir = TempDir::new("trk-script");
    let flag = dir.join("fail-lb1");
    let tail = format!(
        "vrrp_scripts:\n  chk:\n    script: \"/usr/bin/test ! -e {}\"\n    interval: 1\n    weight: -20\n    rise: 1\n    fall: 1\n",
        flag.display()
    );
    let t0 = Instant::now();
    let n1 = start(
        &lab,
        "lb1",
        &dir,
        &pair_config("lb1", 101, "    track_scripts: [chk]\n", &tail),
    );
    let n2 = start(&lab, "lb2", &dir, &pair_config("lb2", 100, "", ""));
    wait_lb1_master(&lab, t0, &n1, &n2);

    // The script starts failing: 101 - 20 = 81 < 100, so lb2 preempts. Detection takes up to
    // one script interval, then lb2 discards lb1's lower adverts until its down timer, last
    // reset by a priority-101 advert, fires.
    let t1 = Instant::now();
    std::fs::write(&flag, b"").expect("create flag file");
    let bound = Duration::from_secs(1) + master_down(100) + Duration::from_secs(1);
    let took = wait_vip(lab.host("lb2"), t1, bound + Duration::from_secs(3));
    println!("script fails: lb2 holds the VIP after {took:?} (bound {bound:?})");
    assert!(
        took.is_some_and(|t| t <= bound),
        "lb2 did not take the VIP within {bound:?}: {took:?}\n--- lb1\n{}\n--- lb2\n{}",
        n1.log_text(),
        n2.log_text()
    );
    let released = wait_no_vip(lab.host("lb1"), Duration::from_secs(2));
    println!(
        "script fails: lb1 released the VIP after {:?}",
        t1.elapsed()
    );
    assert!(released, "lb1 still holds the VIP\n{}", n1.log_text());
    for needle in [
        "VRRP_Script(chk) failed",
        "(VI_1) Changing effective priority from 101 to 81",
        "(VI_1) Entering BACKUP STATE",
    ] {
        assert!(
            n1.wait_log(needle, Duration::from_secs(2)),
            "lb1 did not log {needle:?}\n{}",
            n1.log_text()
        );
    }
    assert!(
        n1.status()
            .contains("instance VI_1 state BACKUP priority 81"),
        "{}",
        n1.status()
    );

    // Recovery: 101 > 100 again, lb1 preempts after its own down timer.
    let t2 = Instant::now();
    std::fs::remove_file(&flag).expect("remove flag file");
    let bound = Duration::from_secs(1) + master_down(101) + Duration::from_secs(1);
    let took = wait_vip(lab.host("lb1"), t2, bound + Duration::from_secs(3));
    println!("script recovers: lb1 holds the VIP again after {took:?} (bound {bound:?})");
    assert!(
        took.is_some_and(|t| t <= bound),
        "lb1 did not take the VIP back within {bound:?}: {took:?}\n--- lb1\n{}\n--- lb2\n{}",
        n1.log_text(),
        n2.log_text()
    );
    assert!(
        wait_no_vip(lab.host("lb2"), Duration::from_secs(2)),
        "lb2 still holds the VIP\n{}",
        n2.log_text()
    );
    for needle in [
        "VRRP_Script(chk) succeeded",
        "(VI_1) Changing effective priority from 81 to 101",
    ] {
        assert!(
            n1.log_text().contains(needle),
            "lb1 did not log {needle:?}\n{}",
            n1.log_text()
        );
    }
    assert_eq!(
        n1.count_log("Entering MASTER STATE"),
        2,
        "{}",
        n1.log_text()
    );
    assert!(
        n2.log_text().contains(
            "(VI_1) Master received advert from 198.51.100.11 with higher priority 101, ours 100"
        ),
        "{}",
        n2.log_text()
    );
}

#[test]
fn tracked_interface_down_puts_the_instance_in_fault_and_up_restores_it() {
    let test = "tracked_interface_down_puts_the_instance_in_fault_and_up_restores_it";
    if !require_root(test) {
        return;
    }
    let lab = pair_lab();
    let lb1 = lab.host("lb1");
    // A second interface inside lb1: a veth pair with both ends in lb1 (the kernel here may
    // lack the dummy module), so eth1 has carrier while both ends are up.
    lb1.exec_ok(&[
        "ip", "link", "add", "eth1", "type", "veth", "peer", "name", "eth1p",
    ]);
    lb1.exec_ok(&["ip", "link", "set", "eth1p", "up"]);
    lb1.exec_ok(&["ip", "link", "set", "eth1", "up"]);
    let dir = TempDir::new("trk-if");
    let t0 = Instant::now();
    let n1 = start(
        &lab,
        "lb1",
        &dir,
        &pair_config(
            "lb1",
            101,
            "    track_interfaces: [{ name: eth1, weight: 0 }]\n",
            "",
        ),
    );
    let n2 = start(&lab, "lb2", &dir, &pair_config("lb2", 100, "", ""));
    wait_lb1_master(&lab, t0, &n1, &n2);

    // Down: lb1 sends priority 0 on entering FAULT, so lb2 takes over after Skew_Time.
    let t1 = Instant::now();
    lb1.exec_ok(&["ip", "link", "set", "eth1", "down"]);
    let released = wait_no_vip(lb1, Duration::from_secs(2));
    println!("eth1 down: lb1 released the VIP after {:?}", t1.elapsed());
    assert!(released, "lb1 still holds the VIP\n{}", n1.log_text());
    let bound = skew(100) + Duration::from_millis(800);
    let took = wait_vip(lab.host("lb2"), t1, Duration::from_secs(5));
    println!("eth1 down: lb2 holds the VIP after {took:?} (bound {bound:?})");
    assert!(
        took.is_some_and(|t| t <= bound),
        "lb2 did not take the VIP within {bound:?}: {took:?}\n--- lb1\n{}\n--- lb2\n{}",
        n1.log_text(),
        n2.log_text()
    );
    for needle in ["Netlink reports eth1 down", "(VI_1) Entering FAULT STATE"] {
        assert!(
            n1.wait_log(needle, Duration::from_secs(1)),
            "lb1 did not log {needle:?}\n{}",
            n1.log_text()
        );
    }
    assert!(
        n2.log_text()
            .contains("(VI_1) Backup received priority 0 advertisement"),
        "{}",
        n2.log_text()
    );
    assert!(
        n1.status().contains("instance VI_1 state FAULT"),
        "{}",
        n1.status()
    );
    // In FAULT, lb1 stays quiet and does not take the VIP back.
    std::thread::sleep(Duration::from_secs(2));
    assert!(
        !lb1.has_address(VIP),
        "lb1 holds the VIP in FAULT\n{}",
        n1.log_text()
    );
    assert!(lab.host("lb2").has_address(VIP), "{}", n2.log_text());

    // Up: lb1 leaves FAULT for BACKUP, then preempts lb2 (101 > 100) after its down timer.
    let t2 = Instant::now();
    lb1.exec_ok(&["ip", "link", "set", "eth1", "up"]);
    let bound = master_down(101) + Duration::from_secs(1);
    let took = wait_vip(lb1, t2, bound + Duration::from_secs(3));
    println!("eth1 up: lb1 holds the VIP again after {took:?} (bound {bound:?})");
    assert!(
        took.is_some_and(|t| t <= bound),
        "lb1 did not take the VIP back within {bound:?}: {took:?}\n--- lb1\n{}\n--- lb2\n{}",
        n1.log_text(),
        n2.log_text()
    );
    assert!(
        wait_no_vip(lab.host("lb2"), Duration::from_secs(2)),
        "lb2 still holds the VIP\n{}",
        n2.log_text()
    );
    let log = n1.log_text();
    for needle in ["Netlink reports eth1 up", "(VI_1) Entering BACKUP STATE"] {
        assert!(log.contains(needle), "lb1 did not log {needle:?}\n{log}");
    }
    // FAULT -> BACKUP -> MASTER, in that order.
    let fault = log
        .find("(VI_1) Entering FAULT STATE")
        .unwrap_or(usize::MAX);
    let backup = log.rfind("(VI_1) Entering BACKUP STATE").unwrap_or(0);
    let master = log.rfind("(VI_1) Entering MASTER STATE").unwrap_or(0);
    assert!(fault < backup && backup < master, "{log}");
}

/// A process seen in /proc: parent and process group.
struct Proc {
    ppid: u32,
    pgid: u32,
    cmdline: String,
}

fn proc_table() -> HashMap<u32, Proc> {
    let mut table = HashMap::new();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return table;
    };
    for entry in dir.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // "pid (comm) state ppid pgrp ...": comm may hold spaces, so split after the last ')'.
        let Some(rest) = stat.rfind(')').map(|i| &stat[i + 1..]) else {
            continue;
        };
        let f: Vec<&str> = rest.split_whitespace().collect();
        let (Some(ppid), Some(pgid)) = (
            f.get(1).and_then(|s| s.parse().ok()),
            f.get(2).and_then(|s| s.parse().ok()),
        ) else {
            continue;
        };
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline"))
            .map(|b| {
                String::from_utf8_lossy(&b)
                    .replace('\0', " ")
                    .trim()
                    .to_owned()
            })
            .unwrap_or_default();
        table.insert(
            pid,
            Proc {
                ppid,
                pgid,
                cmdline,
            },
        );
    }
    table
}

/// PIDs of `sleep 30` processes whose parent chain includes `root`.
fn sleeps_under(table: &HashMap<u32, Proc>, root: u32) -> Vec<u32> {
    table
        .iter()
        .filter(|(_, p)| p.cmdline == "/bin/sleep 30")
        .filter(|(pid, _)| {
            let mut cur = **pid;
            for _ in 0..64 {
                match table.get(&cur) {
                    Some(p) if p.ppid == root => return true,
                    Some(p) if p.ppid > 1 => cur = p.ppid,
                    _ => return false,
                }
            }
            false
        })
        .map(|(pid, _)| *pid)
        .collect()
}

#[test]
fn hung_script_is_killed_at_its_timeout_and_the_daemon_keeps_working() {
    let test = "hung_script_is_killed_at_its_timeout_and_the_daemon_keeps_working";
    if !require_root(test) {
        return;
    }
    let dir = TempDir::new("trk-hang");
    // Runs every 2 s, each killed by SIGTERM at 1 s: 6 runs in 12 s, none overlapping.
    let lifetimes = hung_script_case(&dir, "/bin/sleep 30", false);
    assert!(
        lifetimes.len() >= 5,
        "expected a run every 2 s: {lifetimes:?}"
    );
    for d in &lifetimes {
        assert!(*d <= Duration::from_secs(2), "killed late: {lifetimes:?}");
    }
}

#[test]
fn script_ignoring_sigterm_is_killed_two_seconds_after_its_timeout() {
    let test = "script_ignoring_sigterm_is_killed_two_seconds_after_its_timeout";
    if !require_root(test) {
        return;
    }
    let dir = TempDir::new("trk-stubborn");
    // The shell and its `sleep` ignore SIGTERM (an ignored signal stays ignored across exec),
    // so only the SIGKILL to the process group, 2 s after the timeout, ends a run.
    let script = dir.join("stubborn.sh");
    std::fs::write(&script, "#!/bin/sh\ntrap '' TERM\n/bin/sleep 30\n").expect("write script");
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755))
        .expect("chmod");
    // A run lasts timeout + grace = 3 s > interval 2 s: runs at 0, 4, 8 s, the ticks in
    // between are skipped.
    let lifetimes = hung_script_case(&dir, &script.display().to_string(), true);
    assert!(lifetimes.len() >= 2, "{lifetimes:?}");
    for d in &lifetimes[..lifetimes.len() - 1] {
        assert!(
            *d >= Duration::from_millis(2500),
            "killed before timeout + grace: {lifetimes:?}"
        );
    }
}

/// Starts lb1 tracking `script` (interval 2, timeout 1, weight 0) and lb2, watches every
/// `sleep 30` started under lb1's vrrplb for 12 s and checks none lives past timeout + 3 s,
/// that lb1 stays in FAULT while lb2 holds the VIP, that the daemon still answers, and that
/// SIGTERM stops it within 1 s leaving no script behind. Returns the observed lifetimes in
/// start order (the last run may have been cut by the end of the watch).
fn hung_script_case(dir: &TempDir, script: &str, overlaps: bool) -> Vec<Duration> {
    let lab = pair_lab();
    let tail = format!(
        "vrrp_scripts:\n  chk:\n    script: {script}\n    interval: 2\n    timeout: 1\n    weight: 0\n"
    );
    let t0 = Instant::now();
    let n1 = start(
        &lab,
        "lb1",
        dir,
        &pair_config("lb1", 101, "    track_scripts: [chk]\n", &tail),
    );
    let n2 = start(&lab, "lb2", dir, &pair_config("lb2", 100, "", ""));

    let limit = Duration::from_secs(1 + 3);
    // pid -> (first seen, last seen, process group)
    let mut seen: HashMap<u32, (Instant, Instant, u32)> = HashMap::new();
    let watch_until = t0 + Duration::from_secs(12);
    while Instant::now() < watch_until {
        let now = Instant::now();
        let table = proc_table();
        for pid in sleeps_under(&table, n1.pid) {
            let pgid = table[&pid].pgid;
            seen.entry(pid).or_insert((now, now, pgid)).1 = now;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut runs: Vec<(Instant, Duration)> = seen
        .values()
        .map(|(first, last, _)| (*first, last.duration_since(*first)))
        .collect();
    runs.sort();
    let lifetimes: Vec<Duration> = runs.iter().map(|(_, d)| *d).collect();
    println!(
        "{script}: {} runs seen in 12 s, lifetimes {lifetimes:?}",
        lifetimes.len()
    );
    assert!(
        !lifetimes.is_empty(),
        "no script run seen\n{}",
        n1.log_text()
    );
    for d in &lifetimes {
        assert!(
            *d <= limit,
            "a `sleep 30` lived {d:?}, more than {limit:?}: {lifetimes:?}\n{}",
            n1.log_text()
        );
    }

    let log = n1.log_text();
    for needle in [
        "(VI_1) Entering FAULT STATE (init)",
        "VRRP_Script(chk) timed_out",
    ] {
        assert!(log.contains(needle), "lb1 did not log {needle:?}\n{log}");
    }
    let skipped = "Track script chk is being timed out, expect idle - skipping run";
    if overlaps {
        assert!(log.contains(skipped), "lb1 did not log {skipped:?}\n{log}");
    } else {
        assert!(
            !log.contains("skipping run"),
            "a run overlapped the next one\n{log}"
        );
    }
    // The daemon still works: it answers status, lb1 holds FAULT, lb2 is MASTER.
    assert!(
        n1.status().contains("instance VI_1 state FAULT"),
        "{}",
        n1.status()
    );
    assert!(!lab.host("lb1").has_address(VIP), "{log}");
    assert!(lab.host("lb2").has_address(VIP), "{}", n2.log_text());

    // SIGTERM still stops it within 1 s, and leaves no script behind.
    for pid in sleeps_under(&proc_table(), n1.pid) {
        seen.entry(pid)
            .or_insert((Instant::now(), Instant::now(), pid));
    }
    let t1 = Instant::now();
    lab.host("lb1").signal(n1.pid, libc::SIGTERM);
    let st = lab.host("lb1").wait_exit(n1.pid, Duration::from_secs(3));
    let took = t1.elapsed();
    println!("{script}: SIGTERM to exit took {took:?}, exit {st:?}");
    assert!(
        st.is_some_and(|s| s.success()) && took <= Duration::from_secs(1),
        "vrrplb did not stop cleanly within 1 s: {st:?} after {took:?}\n{}",
        n1.log_text()
    );
    std::thread::sleep(Duration::from_millis(200));
    let table = proc_table();
    for (pid, (_, _, pgid)) in &seen {
        if let Some(p) = table.get(pid) {
            assert!(
                !(p.cmdline == "/bin/sleep 30" && p.pgid == *pgid),
                "sleep 30 (pid {pid}) survived the daemon"
            );
        }
    }
    lifetimes
}

#[test]
fn tracked_interface_down_at_start_or_deleted_holds_fault() {
    let test = "tracked_interface_down_at_start_or_deleted_holds_fault";
    if !require_root(test) {
        return;
    }
    let lab = pair_lab();
    let lb1 = lab.host("lb1");
    // eth1 exists but has no carrier at start: its veth peer is down.
    lb1.exec_ok(&[
        "ip", "link", "add", "eth1", "type", "veth", "peer", "name", "eth1p",
    ]);
    lb1.exec_ok(&["ip", "link", "set", "eth1", "up"]);
    let dir = TempDir::new("trk-if-start");
    let t0 = Instant::now();
    let n1 = start(
        &lab,
        "lb1",
        &dir,
        &pair_config(
            "lb1",
            101,
            "    track_interfaces: [{ name: eth1, weight: 0 }]\n",
            "",
        ),
    );
    let n2 = start(&lab, "lb2", &dir, &pair_config("lb2", 100, "", ""));
    assert!(
        n1.wait_log("(VI_1) Entering FAULT STATE (init)", Duration::from_secs(2)),
        "{}",
        n1.log_text()
    );
    let took = wait_vip(
        lab.host("lb2"),
        t0,
        master_down(100) + Duration::from_secs(2),
    );
    println!("eth1 without carrier at start: lb2 MASTER after {took:?}");
    assert!(took.is_some(), "{}", n2.log_text());
    assert!(!lb1.has_address(VIP), "{}", n1.log_text());

    // Carrier comes: FAULT -> BACKUP -> MASTER (preempting lb2).
    let t1 = Instant::now();
    lb1.exec_ok(&["ip", "link", "set", "eth1p", "up"]);
    let bound = master_down(101) + Duration::from_secs(1);
    let took = wait_vip(lb1, t1, bound + Duration::from_secs(3));
    println!("eth1 carrier up: lb1 MASTER after {took:?} (bound {bound:?})");
    assert!(
        took.is_some_and(|t| t <= bound),
        "{took:?}\n--- lb1\n{}\n--- lb2\n{}",
        n1.log_text(),
        n2.log_text()
    );
    assert!(
        n1.log_text().contains("Netlink reports eth1 up"),
        "{}",
        n1.log_text()
    );
    assert!(wait_no_vip(lab.host("lb2"), Duration::from_secs(2)));

    // The interface is deleted: counts as down, FAULT, lb2 takes over after Skew_Time.
    let t2 = Instant::now();
    let faults = n1.count_log("(VI_1) Entering FAULT STATE");
    lb1.exec_ok(&["ip", "link", "del", "eth1"]);
    let took = wait_vip(lab.host("lb2"), t2, Duration::from_secs(5));
    let bound = skew(100) + Duration::from_millis(800);
    println!("eth1 deleted: lb2 MASTER after {took:?} (bound {bound:?})");
    assert!(
        took.is_some_and(|t| t <= bound),
        "{took:?}\n--- lb1\n{}\n--- lb2\n{}",
        n1.log_text(),
        n2.log_text()
    );
    assert!(
        wait_no_vip(lb1, Duration::from_secs(1)),
        "{}",
        n1.log_text()
    );
    assert_eq!(
        n1.count_log("(VI_1) Entering FAULT STATE"),
        faults + 1,
        "{}",
        n1.log_text()
    );
    assert!(
        n1.log_text().contains("Netlink reports eth1 down"),
        "{}",
        n1.log_text()
    );

    // Re-created under the same name (a new ifindex): tracked again, lb1 recovers.
    let t3 = Instant::now();
    lb1.exec_ok(&[
        "ip", "link", "add", "eth1", "type", "veth", "peer", "name", "eth1p",
    ]);
    lb1.exec_ok(&["ip", "link", "set", "eth1p", "up"]);
    lb1.exec_ok(&["ip", "link", "set", "eth1", "up"]);
    let bound = master_down(101) + Duration::from_secs(1);
    let took = wait_vip(lb1, t3, bound + Duration::from_secs(3));
    println!("eth1 re-created: lb1 MASTER after {took:?} (bound {bound:?})");
    assert!(
        took.is_some_and(|t| t <= bound),
        "{took:?}\n--- lb1\n{}\n--- lb2\n{}",
        n1.log_text(),
        n2.log_text()
    );
    assert!(wait_no_vip(lab.host("lb2"), Duration::from_secs(2)));
}

#[test]
fn script_rise_and_fall_need_consecutive_results() {
    let test = "script_rise_and_fall_need_consecutive_results";
    if !require_root(test) {
        return;
    }
    let lab = Lab::new(&[("lb1", "198.51.100.11/24")]);
    let dir = TempDir::new("trk-risefall");
    let flag = dir.join("fail-lb1");
    let tail = format!(
        "vrrp_scripts:\n  chk:\n    script: \"/usr/bin/test ! -e {}\"\n    interval: 1\n    weight: -20\n    rise: 2\n    fall: 3\n",
        flag.display()
    );
    let t0 = Instant::now();
    let n1 = start(
        &lab,
        "lb1",
        &dir,
        &pair_config("lb1", 101, "    track_scripts: [chk]\n", &tail),
    );
    assert!(
        wait_vip(
            lab.host("lb1"),
            t0,
            master_down(101) + Duration::from_secs(2)
        )
        .is_some(),
        "{}",
        n1.log_text()
    );
    let priority = |n: &Node| -> Option<u8> {
        let s = n.status();
        let l = s.lines().find(|l| l.starts_with("instance VI_1 "))?;
        let w: Vec<&str> = l.split_whitespace().collect();
        let i = w.iter().position(|x| *x == "priority")?;
        w.get(i + 1)?.parse().ok()
    };
    assert_eq!(priority(&n1), Some(101), "{}", n1.status());

    // fall 3 at interval 1: the third failure, 2 to 3 s after the flag appears, lowers it.
    let t1 = Instant::now();
    std::fs::write(&flag, b"").expect("create flag file");
    assert!(testkit::wait_until(Duration::from_secs(5), || priority(
        &n1
    ) == Some(
        81
    )));
    let fell = t1.elapsed();
    // rise 2: the second success, 1 to 2 s after the flag goes, restores it.
    let t2 = Instant::now();
    std::fs::remove_file(&flag).expect("remove flag file");
    assert!(testkit::wait_until(Duration::from_secs(5), || priority(
        &n1
    ) == Some(
        101
    )));
    let rose = t2.elapsed();
    println!("fall 3 took {fell:?}, rise 2 took {rose:?} (interval 1 s)");
    assert!(
        fell >= Duration::from_millis(1900) && fell <= Duration::from_millis(4000),
        "fall 3 took {fell:?}\n{}",
        n1.log_text()
    );
    assert!(
        rose >= Duration::from_millis(900) && rose <= Duration::from_millis(3000),
        "rise 2 took {rose:?}\n{}",
        n1.log_text()
    );
    let log = n1.log_text();
    assert_eq!(
        n1.count_log("VRRP_Script(chk) failed (exited with status 1)"),
        1,
        "{log}"
    );
    assert_eq!(n1.count_log("Changing effective priority"), 2, "{log}");
    assert!(log.contains("Script `chk` now returning 1"), "{log}");
    // Alone on the wire, a lower priority does not cost lb1 the VIP.
    assert!(lab.host("lb1").has_address(VIP));
}
