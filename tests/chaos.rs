//! Faults on repeat (issue 16): `deploy/lab.sh chaos` injects 60 faults from a fixed seed
//! into a 100 ms VRRPv3 pair under a 20 ms poller and a keep-alive client, and
//! `deploy/lab.sh soak` keeps another pair under the same load for 10 minutes with a fault
//! every few seconds while it samples both vrrplb processes. Each runs in its own lab (own
//! LAB name, namespaces and state dir), the two side by side; both print their summary
//! tables, and each fails when a bound is violated (hard fault outage over
//! Master_Down_Interval + 0.2 s, a failed request of either client in a graceful event, two
//! MASTERs on the wire longer than one advert interval + 0.1 s) or the pair did not return to
//! steady. The soak's growth verdicts (RSS, descriptors, threads, live connections, tokio
//! tasks per hour and per 1000 events) are printed for every box and metric.
//!
//! Wall time: ~11 minutes with the two tests in parallel (chaos ~4 min, soak 10 min + setup),
//! debug build, on 2 shared cores.
//!
//! In CI since the faults it found were fixed, each with a test of its own:
//! `stale_sockets` (a keep-alive request that hung on the MASTER's TIME-WAIT socket of the
//! same client port after a fail-back), `contested_garp` (after two MASTERs the loser's ARPs
//! reached the clients last: 5.4 s of connect timeouts; and a SYN that found the VIP without
//! a listener as a MASTER moved) and `handover_relay` (a 20 ms poll whose handshake went to
//! the old MASTER and whose request, after the clients' ARP moved, to the new one: reset, in
//! about 1 move in 40). On failure the report lists why each failed request of a violating
//! event failed; `CHAOS_PCAP=1` keeps a full capture of a run by hand.

mod common;

use common::script_lab::ScriptLab;
use std::path::Path;
use std::time::Duration;
use testkit::{require_root, require_tool};

/// Root, the lab's tools and python3 (the fault injectors and the report); false: skip.
fn ready(test: &str) -> bool {
    if !require_root(test) {
        return false;
    }
    for tool in ["nginx", "rsyslogd", "tcpdump", "curl", "openssl", "python3"] {
        let in_sbin = ["/usr/sbin", "/sbin"]
            .iter()
            .any(|d| Path::new(d).join(tool).is_file());
        if !in_sbin && !require_tool(test, tool) {
            return false;
        }
    }
    true
}

/// The `RESULT ...` line starting with `prefix`, as key=value pairs.
fn result(text: &str, prefix: &str) -> std::collections::HashMap<String, String> {
    let line = text
        .lines()
        .find(|l| l.starts_with(prefix))
        .unwrap_or_else(|| panic!("no {prefix} line in:\n{text}"));
    line.split_whitespace()
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

fn num(r: &std::collections::HashMap<String, String>, key: &str) -> u64 {
    r.get(key)
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no number {key} in {r:?}"))
}

fn up(lab: &mut ScriptLab) {
    let (ok, text) = lab.run(&["up", "--advert", "100ms"], Duration::from_secs(180));
    assert!(ok, "deploy/lab.sh up --advert 100ms failed:\n{text}");
}

#[test]
fn sixty_faults_from_a_fixed_seed_stay_within_their_bounds() {
    let test = "chaos";
    if !ready(test) {
        return;
    }
    let mut lab = ScriptLab::new("lab.sh", format!("vch{}", std::process::id()), "chaos");
    up(&mut lab);
    let (ok, text) = lab.run(
        &["chaos", "--events", "60", "--seed", "16"],
        Duration::from_secs(600),
    );
    println!("---- deploy/lab.sh chaos --events 60 --seed 16 ----\n{text}");
    let r = result(&text, "RESULT mode=chaos ");
    assert_eq!(num(&r, "events"), 60, "not every event ran:\n{text}");
    assert_eq!(
        num(&r, "steady"),
        60,
        "the pair did not always return to steady"
    );
    assert_eq!(num(&r, "violations"), 0, "bounds violated (see the table)");
    // The loads ran all along: 50 + 100 requests/s over at least a few minutes.
    assert!(num(&r, "requests20") > 5000, "{r:?}");
    assert!(num(&r, "requests_ka") > 10000, "{r:?}");
    // Every kind came up at least once with this seed.
    for kind in [
        "sigkill",
        "sigterm",
        "link-master",
        "link-backup",
        "backend-kill",
        "track-flip",
        "hup-same",
        "hup-change",
        "bad-adverts",
        "stall",
        "slow-backend",
    ] {
        assert!(
            text.lines()
                .any(|l| l.starts_with(kind) && l.trim_end().ends_with("ok")),
            "kind {kind} missing from the per-kind table"
        );
    }
    assert!(ok, "deploy/lab.sh chaos failed");
}

#[test]
fn a_ten_minute_soak_leaves_both_processes_flat() {
    let test = "soak";
    if !ready(test) {
        return;
    }
    let mut lab = ScriptLab::new("lab.sh", format!("vsk{}", std::process::id()), "soak");
    up(&mut lab);
    let (ok, text) = lab.run(
        &["soak", "--minutes", "10", "--seed", "3"],
        Duration::from_secs(900),
    );
    println!("---- deploy/lab.sh soak --minutes 10 --seed 3 ----\n{text}");
    let r = result(&text, "RESULT mode=soak ");
    assert_eq!(num(&r, "violations"), 0, "bounds violated (see the table)");
    assert_eq!(
        num(&r, "steady"),
        num(&r, "events"),
        "not always back to steady"
    );
    assert!(
        num(&r, "events") >= 40,
        "too few faults in 10 minutes: {r:?}"
    );
    // Both boxes were sampled every 10 s over the whole run (after the 1 min warm-up: 50
    // samples at most), every figure with its verdict; the verdicts are printed, not
    // asserted: 10 minutes cannot tell the allocator settling from a slow leak.
    let _ = result(&text, "RESULT soak_growth_violations=");
    for b in ["lb1", "lb2"] {
        for metric in ["rss_kb", "fds", "threads", "conns", "tasks"] {
            let row = text
                .lines()
                .find(|l| l.starts_with(&format!("{b}  {metric} ")))
                .unwrap_or_else(|| panic!("no {metric} row for {b}"));
            let samples: u64 = row
                .split_whitespace()
                .nth(2)
                .and_then(|n| n.parse().ok())
                .unwrap_or(0);
            assert!(samples >= 40, "{b} {metric}: {samples} samples");
        }
    }
    assert!(ok, "deploy/lab.sh soak failed");
}
