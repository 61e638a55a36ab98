//! ECMP through FRR end to end: `deploy/ecmp-lab.sh up` (three vrrplb boxes announcing one
//! VIP with `announce`, each box's FRR bgpd + bfdd, an FRR router with maximum-paths and L4
//! hashing, two nginx backends, a client with 90 source addresses), then `drill`: the spread
//! of 600 new flows, a box's death (link down + SIGKILL), its return, a box whose backends all
//! fail, their return, and vrrplb's SIGTERM on a box; the figures are printed and bounded,
//! the boxes' logs and `vrrplb status --json` checked, and `down` removes everything, also
//! when an assertion fails.
//!
//! Why 600 flows and not 30: with 30 flows the count per box is binomial (mean 10, standard
//! deviation 2.6), so ±20% of even (±2 flows) fails most runs; with 600 (mean 200, sd 11.5)
//! ±20% is ±40, 3.5 standard deviations: a hash that spreads evenly passes every run.
//!
//! Wall time: about 35 s (lab up ~8 s, drill ~20 s, down ~3 s); budget 2 minutes.

mod common;

use common::script_lab::ScriptLab;
use std::collections::HashMap;
use std::process::Command;
use std::time::{Duration, Instant};
use testkit::{namespaces_with_prefix, require_root, require_tool};

const BIN: &str = env!("CARGO_BIN_EXE_vrrplb");

/// BFD: 3 x 100 ms, plus zebra/bgpd and the kernel; the brief's bound.
const WITHDRAW_BOUND_MS: u64 = 1000;

fn result(text: &str) -> HashMap<String, i64> {
    let line = text
        .lines()
        .find(|l| l.starts_with("RESULT "))
        .unwrap_or_else(|| panic!("no RESULT line in:\n{text}"));
    line.split_whitespace()
        .skip(1)
        .filter_map(|kv| kv.split_once('='))
        .filter_map(|(k, v)| Some((k.to_owned(), v.parse::<f64>().ok()? as i64)))
        .collect()
}

fn get(r: &HashMap<String, i64>, key: &str, text: &str) -> i64 {
    *r.get(key)
        .unwrap_or_else(|| panic!("RESULT has no {key}:\n{text}"))
}

#[test]
fn one_vip_from_every_healthy_box_spreads_flows_and_withdraws_a_failed_box_within_a_second() {
    let test = "ecmp";
    if !require_root(test) {
        return;
    }
    for tool in ["nginx", "python3", "vtysh"] {
        if !require_tool(test, tool) {
            return;
        }
    }
    if !std::path::Path::new("/usr/lib/frr/bgpd").exists() {
        if std::env::var("VRRPLB_REQUIRE_NETNS").as_deref() == Ok("1") {
            panic!("{test}: needs FRR (/usr/lib/frr/bgpd), apt-get install frr");
        }
        eprintln!("SKIP {test}: FRR is not installed (/usr/lib/frr/bgpd)");
        return;
    }
    let started = Instant::now();
    let mut lab = ScriptLab::new("ecmp-lab.sh", format!("ecmp{}", std::process::id()), "ecmp");
    let (ok, up) = lab.run(&["up"], Duration::from_secs(60));
    assert!(ok, "ecmp-lab.sh up failed:\n{up}");
    let (ok, text) = lab.run(&["drill"], Duration::from_secs(90));
    println!("{text}");
    assert!(ok, "ecmp-lab.sh drill failed:\n{text}");
    let r = result(&text);

    // Spread: every box within ±20% of even.
    let flows = get(&r, "flows", &text);
    assert!(flows >= 30);
    assert_eq!(get(&r, "spread_failed", &text), 0, "{text}");
    for b in ["b1", "b2", "b3"] {
        let n = get(&r, &format!("spread_{b}"), &text) as f64;
        let even = flows as f64 / 3.0;
        assert!(
            (n - even).abs() <= even * 0.2,
            "{b} served {n} of {flows} flows, more than 20% from even:\n{text}"
        );
    }

    // A box's death and a box with no backend left: the router drops it within a second,
    // and no new connection fails later than that.
    for phase in ["fail", "sick"] {
        let route = get(&r, &format!("{phase}_route_ms"), &text);
        assert!(
            (0..=WITHDRAW_BOUND_MS as i64).contains(&route),
            "{phase}: withdrawal took {route} ms (bound {WITHDRAW_BOUND_MS}):\n{text}"
        );
        let last = get(&r, &format!("{phase}_last_fail_ms"), &text);
        assert!(
            last <= WITHDRAW_BOUND_MS as i64,
            "{phase}: a new connection failed at +{last} ms:\n{text}"
        );
        // The failed box's long-lived connections cannot survive (they are not hidden).
        assert_eq!(
            get(&r, &format!("{phase}_broken_box"), &text),
            get(&r, &format!("{phase}_on_box"), &text),
            "{text}"
        );
    }
    // Joins: the route comes back (BGP session set-up after a boot takes longer) and no new
    // connection fails after it.
    for phase in ["join", "heal"] {
        let route = get(&r, &format!("{phase}_route_ms"), &text);
        assert!(
            (0..=10_000).contains(&route),
            "{phase}: the route did not return:\n{text}"
        );
        assert_eq!(get(&r, &format!("{phase}_failed",), &text), 0, "{text}");
    }
    // SIGTERM: vrrplb removes the address at once; bgpd's withdrawal follows.
    let stop = get(&r, "stop_route_ms", &text);
    assert!((0..=WITHDRAW_BOUND_MS as i64).contains(&stop), "{text}");

    // The transitions are logged keepalived-style, with why.
    let dir = lab.dir();
    let b2 = std::fs::read_to_string(dir.join("b2/vrrplb.log")).unwrap_or_default();
    assert!(
        b2.contains("announce web-vip 198.51.100.200/32: withdrawn (backend web: no server up)"),
        "b2's log lacks the withdrawal:\n{b2}"
    );
    let b3 = std::fs::read_to_string(dir.join("b3/vrrplb.log")).unwrap_or_default();
    assert!(
        b3.contains("announce web-vip 198.51.100.200/32: withdrawn (stopping)"),
        "b3's log lacks the SIGTERM withdrawal:\n{b3}"
    );
    let lo = Command::new("ip")
        .args(["-n", &format!("{}-b3", lab.name), "addr", "show", "lo"])
        .output()
        .expect("ip");
    assert!(
        !String::from_utf8_lossy(&lo.stdout).contains("198.51.100.200"),
        "SIGTERM left the VIP on b3's lo"
    );
    // `vrrplb status --json` of a healthy box shows the announcement.
    let status = Command::new("ip")
        .args([
            "netns",
            "exec",
            &format!("{}-b1", lab.name),
            BIN,
            "status",
            "--json",
            "-c",
        ])
        .arg(dir.join("b1/vrrplb.yaml"))
        .output()
        .expect("vrrplb status");
    let json = String::from_utf8_lossy(&status.stdout);
    assert!(
        json.contains("\"announce\"") && json.contains("\"state\": \"announced\""),
        "status --json of b1:\n{json}"
    );
    drop(lab);
    assert!(
        namespaces_with_prefix(&format!("ecmp{}", std::process::id())).is_empty(),
        "namespaces left behind"
    );
    println!("ecmp test: {:.1} s", started.elapsed().as_secs_f64());
}
