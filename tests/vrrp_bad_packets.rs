//! Hostile and broken adverts end to end (vrrp.md §4): a third namespace sends hand-made VRRP
//! packets at a MASTER through a raw socket. Every one must be dropped, counted by reason
//! (`vrrplb status`), logged in keepalived's words at most once per interval and source, and
//! the MASTER must keep its VIP.

mod common;

use common::*;
use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use testkit::{require_root, Host, Lab, TempDir};
use vrrp::packet::{checksum, Advertisement, Auth};

const ATTACKER: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 66);
const GROUP: Ipv4Addr = Ipv4Addr::new(224, 0, 0, 18);
const PASS: &str = "s3cret";

fn pass(s: &str) -> [u8; 8] {
    let mut p = [0u8; 8];
    for (d, s) in p.iter_mut().zip(s.bytes()) {
        *d = s;
    }
    p
}

/// A well-formed advert for VRID 51 with the right password, IP header included; every test
/// packet is this one with one thing broken. Priority 254 everywhere, so a packet that slipped
/// through validation would demote lb1 (priority 101) and show.
fn good(priority: u8) -> Vec<u8> {
    advert(priority, 1, vec![VIP.parse().expect("VIP")])
}

/// A correctly encoded advert with the right password and these fields (`advert_int` in
/// whole seconds, VRRPv2).
fn advert(priority: u8, advert_int: u8, addresses: Vec<Ipv4Addr>) -> Vec<u8> {
    Advertisement {
        version: vrrp::Version::V2,
        vrid: 51,
        priority,
        advert_int: u16::from(advert_int) * 100,
        auth: Auth::Simple(pass(PASS)),
        addresses: addresses.into_iter().map(Into::into).collect(),
    }
    .encode_ip(ATTACKER, GROUP)
}

/// Refills the VRRP checksum (bytes 26..28) after an edit, so only the intended field is wrong.
fn fix_vrrp_checksum(p: &mut [u8]) {
    p[26] = 0;
    p[27] = 0;
    let sum = checksum(&p[20..]).to_be_bytes();
    p[26] = sum[0];
    p[27] = sum[1];
}

/// An IPv4 header (proto 112, TTL 255, to the group) carrying `payload`.
fn ip_packet(payload: &[u8]) -> Vec<u8> {
    let mut p = good(254);
    p.truncate(20);
    p.extend_from_slice(payload);
    let total = (p.len() as u16).to_be_bytes();
    p[2] = total[0];
    p[3] = total[1];
    p
}

/// Sends `packets` as they are (IP header included) from a raw socket in `host`, out of eth0.
fn send_raw(host: &Host, packets: Vec<Vec<u8>>) {
    host.run_in(move || {
        let sock = RawSocket::open();
        for p in &packets {
            sock.send(p);
        }
    });
}

/// The `drops VI_1 k=v ...` line of `vrrplb status`, as a map.
fn drops(n: &Node) -> HashMap<String, u64> {
    let status = n.status();
    let line = status
        .lines()
        .find(|l| l.starts_with("drops VI_1 "))
        .unwrap_or_else(|| panic!("no drops line in status:\n{status}"));
    line.split_whitespace()
        .skip(2)
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.parse().expect("counter value")))
        .collect()
}

fn get(m: &HashMap<String, u64>, k: &str) -> u64 {
    m.get(k).copied().unwrap_or(0)
}

/// Polls the status until `key` reaches `at_least`.
fn wait_counter(n: &Node, key: &str, at_least: u64) -> HashMap<String, u64> {
    let mut last = HashMap::new();
    testkit::wait_until(Duration::from_secs(3), || {
        last = drops(n);
        get(&last, key) >= at_least
    });
    last
}

/// Deterministic pseudo-random bytes (xorshift64*), so a failure can be replayed.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

#[test]
fn master_ignores_broken_and_hostile_adverts_and_counts_each_reason() {
    let test = "master_ignores_broken_and_hostile_adverts_and_counts_each_reason";
    if !require_root(test) {
        return;
    }
    let lab = Lab::new(&[
        ("lb1", "198.51.100.11/24"),
        ("attacker", "198.51.100.66/24"),
    ]);
    let dir = TempDir::new("badpkt");
    let auth = format!("    authentication: {{ auth_type: PASS, auth_pass: {PASS} }}\n");
    let t0 = Instant::now();
    let n1 = start(&lab, "lb1", &dir, &pair_config("lb1", 101, &auth, ""));
    let lb1 = lab.host("lb1");
    let took = wait_vip(lb1, t0, master_down(101) + Duration::from_secs(2));
    println!("lb1 alone: MASTER after {took:?}");
    assert!(
        took.is_some(),
        "lb1 did not become MASTER\n{}",
        n1.log_text()
    );
    assert!(
        n1.wait_log("(VI_1) Entering MASTER STATE", Duration::from_secs(1)),
        "{}",
        n1.log_text()
    );
    assert_eq!(drops(&n1), HashMap::new(), "drops before any attack");

    // Sample the VIP every 50 ms for the whole attack.
    let stop = Arc::new(AtomicBool::new(false));
    let (samples, misses) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let ns = lb1.ns.clone();
    let sampler = {
        let (stop, samples, misses) = (stop.clone(), samples.clone(), misses.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let out = std::process::Command::new("ip")
                    .args(["-n", &ns, "-4", "-o", "addr", "show", "dev", "eth0"])
                    .output()
                    .expect("ip addr");
                samples.fetch_add(1, Ordering::Relaxed);
                if !String::from_utf8_lossy(&out.stdout).contains(&format!("inet {VIP}/")) {
                    misses.fetch_add(1, Ordering::Relaxed);
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        })
    };

    let attacker = lab.host("attacker");
    // One of each kind: (name, packet, counter, log line or None for a silent drop).
    let mut cases: Vec<(&str, Vec<u8>, &str, Option<&str>)> = Vec::new();
    let mut p = good(254);
    p[27] ^= 0x5a;
    cases.push((
        "bad checksum",
        p,
        "bad_checksum",
        Some("(VI_1) Invalid VRRPv2 checksum"),
    ));
    let mut p = good(100);
    p[8] = 64;
    cases.push((
        "TTL 64",
        p,
        "bad_ttl",
        Some("(VI_1) invalid TTL/HL. Received 64 and expect 255"),
    ));
    let mut p = good(254);
    p[20] = 0x31;
    fix_vrrp_checksum(&mut p);
    cases.push((
        "version 3",
        p,
        "version_mismatch",
        Some("(VI_1) wrong version. Received 3 and expect 2"),
    ));
    let mut p = good(254);
    p[21] = 52;
    fix_vrrp_checksum(&mut p);
    cases.push(("VRID 52", p, "unknown_vrid", None));
    let mut p = good(254);
    p[32..40].copy_from_slice(&pass("wrong"));
    fix_vrrp_checksum(&mut p);
    cases.push((
        "wrong password",
        p,
        "bad_password",
        Some("(VI_1) received an invalid passwd!"),
    ));
    let mut p = good(254);
    p[24] = 0;
    fix_vrrp_checksum(&mut p);
    cases.push((
        "auth type 0",
        p,
        "auth_type_mismatch",
        Some("(VI_1) received a 0 auth, expecting 1!"),
    ));
    let p = ip_packet(&good(254)[20..32]);
    cases.push((
        "truncated",
        p,
        "truncated",
        Some("(VI_1) packet truncated: 12 bytes, advert needs 20"),
    ));
    let p = ip_packet(&good(254)[20..24]);
    cases.push(("4 bytes", p, "too_short", Some("(VI_1) packet too short")));
    let mut p = good(254);
    p[8] = 64;
    cases.push((
        "priority 254 with TTL 64",
        p,
        "bad_ttl",
        Some("(VI_1) invalid TTL/HL. Received 64 and expect 255"),
    ));

    let vip: Ipv4Addr = VIP.parse().expect("VIP");
    let other = Ipv4Addr::new(198, 51, 100, 101);
    cases.push((
        "advert_int 2",
        advert(254, 2, vec![vip]),
        "interval_mismatch",
        Some("(VI_1) advertisement interval mismatch mine=1 sec rcv'd=2 sec"),
    ));
    cases.push((
        "two addresses",
        advert(254, 1, vec![vip, other]),
        "address_count_mismatch",
        Some("(VI_1) received an unexpected ip number count 2, expected 1!"),
    ));
    cases.push((
        "another address",
        advert(254, 1, vec![other]),
        "address_mismatch",
        Some("(VI_1) ip address associated with VRID 51 not present in MASTER advert: 198.51.100.100"),
    ));

    for (name, packet, key, line) in &cases {
        let before = drops(&n1);
        send_raw(attacker, vec![packet.clone()]);
        let after = wait_counter(&n1, key, get(&before, key) + 1);
        println!(
            "{name}: {key} {} -> {}",
            get(&before, key),
            get(&after, key)
        );
        assert_eq!(
            get(&after, key),
            get(&before, key) + 1,
            "{name}: counter {key} did not count it: {after:?}\n{}",
            n1.log_text()
        );
        let total = |m: &HashMap<String, u64>| m.values().sum::<u64>();
        assert_eq!(
            total(&after),
            total(&before) + 1,
            "{name}: counted under another reason too: {before:?} -> {after:?}"
        );
        if let Some(line) = line {
            assert!(
                n1.wait_log(line, Duration::from_secs(1)),
                "{name}: no {line:?} in the log\n{}",
                n1.log_text()
            );
        }
    }
    // An unknown VRID is counted without a warning (it is normal on a shared segment).
    let log = n1.log_text();
    assert!(
        !log.lines()
            .any(|l| l.contains("VRID 52") && (l.contains("WARN") || l.contains("INFO"))),
        "unknown VRID logged above debug:\n{log}"
    );

    // Rate limiting: 50 identical bad-checksum packets in a burst are all counted, logged at
    // most once more (once per advert interval and source).
    std::thread::sleep(Duration::from_millis(1100));
    let before = drops(&n1);
    let lines_before = n1.count_log("(VI_1) Invalid VRRPv2 checksum");
    let mut burst = good(254);
    burst[27] ^= 0x5a;
    send_raw(attacker, vec![burst; 50]);
    let after = wait_counter(&n1, "bad_checksum", get(&before, "bad_checksum") + 50);
    std::thread::sleep(Duration::from_millis(300));
    let lines = n1.count_log("(VI_1) Invalid VRRPv2 checksum") - lines_before;
    println!(
        "50 bad checksums: counter {} -> {}, {lines} new log line(s)",
        get(&before, "bad_checksum"),
        get(&after, "bad_checksum")
    );
    assert_eq!(
        get(&after, "bad_checksum"),
        get(&before, "bad_checksum") + 50,
        "{after:?}"
    );
    assert!(
        (1..=2).contains(&lines),
        "{lines} log lines for 50 bad checksums\n{}",
        n1.log_text()
    );
    // The limit is per source: the same fault from another address is logged at once.
    let mut spoofed = good(254);
    spoofed[15] = 67;
    spoofed[27] ^= 0x5a;
    send_raw(attacker, vec![spoofed]);
    wait_counter(&n1, "bad_checksum", get(&before, "bad_checksum") + 51);
    assert!(
        testkit::wait_until(Duration::from_secs(1), || {
            n1.count_log("(VI_1) Invalid VRRPv2 checksum") == lines_before + lines + 1
        }),
        "a bad checksum from a second source was not logged\n{}",
        n1.log_text()
    );

    // 50 packets of random bytes after a valid IP header: all dropped and counted.
    let mut rng = Rng(0x5eed_1234_abcd_0042);
    let random: Vec<Vec<u8>> = (0..50)
        .map(|_| {
            let len = (rng.next() % 61) as usize;
            let bytes: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
            ip_packet(&bytes)
        })
        .collect();
    let before = drops(&n1);
    let total = |m: &HashMap<String, u64>| m.values().sum::<u64>();
    let warn_lines_before = n1.log_text().lines().filter(|l| l.contains("WARN")).count();
    send_raw(attacker, random);
    let mut after = HashMap::new();
    testkit::wait_until(Duration::from_secs(3), || {
        after = drops(&n1);
        total(&after) >= total(&before) + 50
    });
    std::thread::sleep(Duration::from_millis(300));
    let warn_lines =
        n1.log_text().lines().filter(|l| l.contains("WARN")).count() - warn_lines_before;
    println!("50 random payloads: drops {before:?} -> {after:?}, {warn_lines} warning line(s)");
    assert_eq!(
        total(&after),
        total(&before) + 50,
        "{before:?} -> {after:?}"
    );
    assert!(
        warn_lines <= 10,
        "{warn_lines} warnings for 50 random packets\n{}",
        n1.log_text()
    );

    // Control: a valid advert, lower priority, with 4 bytes of IP options (IHL 6) is accepted
    // (the payload is found after the options), answered, and not counted as a drop.
    let before = drops(&n1);
    let mut p = good(90);
    p.splice(20..20, [1u8, 1, 1, 0]);
    p[0] = 0x46;
    let total = (p.len() as u16).to_be_bytes();
    p[2] = total[0];
    p[3] = total[1];
    send_raw(attacker, vec![p]);
    let line = "(VI_1) Received advert from 198.51.100.66 with lower priority 90, ours 101, forcing new election";
    assert!(
        n1.wait_log(line, Duration::from_secs(2)),
        "the valid advert with IP options was not processed: {:?}\n{}",
        drops(&n1),
        n1.log_text()
    );
    assert_eq!(drops(&n1), before, "a valid advert was counted as dropped");

    stop.store(true, Ordering::Relaxed);
    sampler.join().expect("sampler");
    let (samples, misses) = (
        samples.load(Ordering::Relaxed),
        misses.load(Ordering::Relaxed),
    );
    println!("VIP sampled {samples} times during the attack, missing {misses} times");
    let log = n1.log_text();
    assert_eq!(misses, 0, "lb1 lost the VIP during the attack\n{log}");
    assert!(samples >= 20, "too few samples: {samples}");
    assert_eq!(n1.count_log("Entering MASTER STATE"), 1, "{log}");
    assert_eq!(
        n1.count_log("Entering BACKUP STATE"),
        1,
        "only the (init) one\n{log}"
    );
    assert!(!log.contains("removing VIPs"), "{log}");
    assert!(!log.contains("Master received advert"), "{log}");
    assert!(
        n1.status()
            .contains("instance VI_1 state MASTER priority 101"),
        "{}",
        n1.status()
    );
    assert!(
        lb1.wait_exit(n1.pid, Duration::ZERO).is_none(),
        "vrrplb exited\n{log}"
    );
    assert!(lb1.has_address(VIP));
}

#[test]
fn invalid_adverts_never_hold_off_a_backup_whose_master_died() {
    let test = "invalid_adverts_never_hold_off_a_backup_whose_master_died";
    if !require_root(test) {
        return;
    }
    let lab = Lab::new(&[
        ("lb1", "198.51.100.11/24"),
        ("lb2", "198.51.100.12/24"),
        ("attacker", "198.51.100.66/24"),
    ]);
    let dir = TempDir::new("badpkt-backup");
    let auth = format!("    authentication: {{ auth_type: PASS, auth_pass: {PASS} }}\n");
    let t0 = Instant::now();
    let n1 = start(&lab, "lb1", &dir, &pair_config("lb1", 101, &auth, ""));
    let n2 = start(&lab, "lb2", &dir, &pair_config("lb2", 100, &auth, ""));
    let took = wait_vip(
        lab.host("lb1"),
        t0,
        master_down(101) + Duration::from_secs(2),
    );
    assert!(
        took.is_some(),
        "lb1 did not become MASTER\n{}",
        n1.log_text()
    );
    assert!(
        wait_no_vip(lab.host("lb2"), Duration::from_secs(2)),
        "{}",
        n2.log_text()
    );

    // Every advert a live master would send, at priority 254, each broken one way, 10 rounds
    // a second: none may reset lb2's down timer or move lb1.
    let mut ttl = good(254);
    ttl[8] = 64;
    let mut sum = good(254);
    sum[27] ^= 0x5a;
    let mut pw = good(254);
    pw[32..40].copy_from_slice(&pass("wrong"));
    fix_vrrp_checksum(&mut pw);
    let vip: Ipv4Addr = VIP.parse().expect("VIP");
    let interval = advert(254, 2, vec![vip]);
    let mut spoofed = good(254);
    spoofed[12..16].copy_from_slice(&[198, 51, 100, 11]);
    spoofed[8] = 64;
    let packets = vec![ttl, sum, pw, interval, spoofed];
    let stop = Arc::new(AtomicBool::new(false));
    let masters_before = n2.count_log("Entering MASTER STATE");
    let flood_start = Instant::now();
    let (sent, flood_time) = std::thread::scope(|s| {
        let attacker = lab.host("attacker");
        let flooding = s.spawn({
            let stop = stop.clone();
            move || flood(attacker, packets, Duration::from_millis(100), stop)
        });
        // Under attack, the pair keeps its roles.
        std::thread::sleep(Duration::from_secs(3));
        assert!(lab.host("lb1").has_address(VIP), "{}", n1.log_text());
        assert!(!lab.host("lb2").has_address(VIP), "{}", n2.log_text());
        // lb1 dies without a word (no priority-0 advert): lb2 must take over one
        // Master_Down_Interval after lb1's last advert, flood or not.
        let t1 = Instant::now();
        lab.host("lb1").signal(n1.pid, libc::SIGKILL);
        let bound = master_down(100) + Duration::from_millis(500);
        let took = wait_vip(lab.host("lb2"), t1, bound + Duration::from_secs(3));
        println!("lb1 killed under attack: lb2 holds the VIP after {took:?} (bound {bound:?})");
        stop.store(true, Ordering::Relaxed);
        let sent = flooding.join().expect("flood thread");
        let flood_time = flood_start.elapsed();
        assert!(
            took.is_some_and(|t| t <= bound),
            "lb2 took {took:?} (bound {bound:?})\n{}",
            n2.log_text()
        );
        (sent, flood_time)
    });
    let d = drops(&n2);
    println!("flood: {sent} packets sent, lb2 drops {d:?}");
    for key in [
        "bad_ttl",
        "bad_checksum",
        "bad_password",
        "interval_mismatch",
    ] {
        assert!(get(&d, key) >= 10, "{key} not counted on lb2: {d:?}");
    }
    assert!(
        d.values().sum::<u64>() >= sent as u64 - 10,
        "lb2 missed adverts: {sent} sent, {d:?}"
    );
    let log2 = n2.log_text();
    assert_eq!(
        n2.count_log("Entering MASTER STATE"),
        masters_before + 1,
        "{log2}"
    );
    // Rate-limited: at most one line per reason, source and second over the flood, not 10.
    let secs = flood_time.as_secs() as usize + 1;
    println!("flood lasted {flood_time:?}");
    for (line, sources) in [
        ("(VI_1) invalid TTL/HL. Received 64 and expect 255", 2),
        ("(VI_1) Invalid VRRPv2 checksum", 1),
        ("(VI_1) received an invalid passwd!", 1),
        ("(VI_1) advertisement interval mismatch", 1),
    ] {
        let n = n2.count_log(line);
        println!("{n} lines of {line:?}");
        assert!(
            (1..=sources * secs).contains(&n),
            "{n} lines of {line:?} in {flood_time:?}\n{log2}"
        );
    }
}
