//! Active-active by VIP: `vrrplb example active-active` makes configs `vrrplb check` accepts,
//! and `deploy/aa-lab.sh` runs 3 boxes sharing 3 VIPs (VRRPv3 at 100 ms) under a unique LAB
//! name. Its drill kills a box (SIGKILL + link down) under a 20 ms poller per VIP and a
//! round-robin load over the VIPs, then restores it: before, each box is MASTER of exactly one
//! VIP; after the kill, the dead box's VIP is on the next box by priority (ring order, also
//! round the end: lb3's goes to lb1) within Master_Down_Interval + 0.5 s while the other VIPs
//! lose no poll; after the restore, one VIP each again. `deploy/aa-lab.sh down` removes
//! everything, also when an assertion fails. Wall time: about 35 s (two drills of ~12 s).

mod common;

use common::script_lab::ScriptLab;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;
use testkit::{namespaces_with_prefix, require_root, require_tool, TempDir};

const BIN: &str = env!("CARGO_BIN_EXE_vrrplb");

/// Master_Down_Interval of the next box (priority 140) at 100 ms in VRRPv3 (RFC 5798:
/// 3 x 100 ms + (256 - 140) x 100 ms / 256) + 0.5 s.
const MOVED_BOUND_MS: u64 = 300 + (256 - 140) * 100 / 256 + 500;

/// The generator's configs pass `vrrplb check` for several shapes, and each names the VIPs
/// this box owns with priority 150.
#[test]
fn generated_configs_pass_check() {
    let dir = TempDir::new("aa-example");
    for (boxes, vips, advert) in [(2, 2, "1s"), (3, 3, "100ms"), (3, 7, "1s"), (4, 2, "200ms")] {
        for b in 1..=boxes {
            let out = Command::new(BIN)
                .args(["example", "active-active", "--boxes"])
                .arg(boxes.to_string())
                .arg("--vips")
                .arg(vips.to_string())
                .arg("--box")
                .arg(b.to_string())
                .args(["--advert", advert])
                .output()
                .expect("vrrplb example");
            let yaml = String::from_utf8_lossy(&out.stdout).to_string();
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            let path = dir.join(&format!("lb{b}-{boxes}-{vips}.yaml"));
            std::fs::write(&path, &yaml).expect("write");
            let check = Command::new(BIN)
                .args(["check", "-c"])
                .arg(&path)
                .output()
                .expect("vrrplb check");
            let summary = String::from_utf8_lossy(&check.stdout).to_string();
            assert!(
                check.status.success(),
                "{yaml}\n{}",
                String::from_utf8_lossy(&check.stderr)
            );
            assert!(
                summary.contains(&format!("{vips} VRRP instance(s)")),
                "{summary}"
            );
            for k in 1..=vips {
                let prio = if (k - 1) % boxes + 1 == b { 150 } else { 0 };
                let line = format!(
                    "VI_{k}: eth0 VRRPv{} VRID {}",
                    if advert == "1s" { 2 } else { 3 },
                    50 + k
                );
                assert!(summary.contains(&line), "{line} in {summary}");
                if prio == 150 {
                    assert!(
                        summary.contains(&format!("{line} priority 150 ")),
                        "{summary}"
                    );
                } else {
                    assert!(
                        !summary.contains(&format!("{line} priority 150 ")),
                        "{summary}"
                    );
                }
                assert!(
                    summary.contains(&format!(
                        "www-{k}: 198.51.100.{}:80 gated by VI_{k}",
                        100 + k
                    )),
                    "{summary}"
                );
            }
        }
    }
    let bad = Command::new(BIN)
        .args(["example", "active-active", "--boxes", "3", "--box", "4"])
        .output()
        .expect("vrrplb example");
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--box 4"));
}

/// The key=value pairs of the first line starting with `prefix` (e.g. "VIPRESULT
/// phase=failover vip=VI_1 ").
fn line<'a>(text: &'a str, prefix: &str) -> HashMap<&'a str, &'a str> {
    let l = text
        .lines()
        .find(|l| l.starts_with(prefix))
        .unwrap_or_else(|| panic!("no line {prefix:?} in:\n{text}"));
    l.split_whitespace()
        .filter_map(|kv| kv.split_once('='))
        .collect()
}

fn num(r: &HashMap<&str, &str>, key: &str, text: &str) -> u64 {
    r.get(key)
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no number {key} in {r:?}:\n{text}"))
}

/// The `HOLD phase=P ...` line: which VIPs each live box holds.
fn holders<'a>(text: &'a str, phase: &str) -> HashMap<&'a str, &'a str> {
    let mut h = line(text, &format!("HOLD phase={phase} "));
    h.remove("phase");
    h
}

/// Kills `victim` (1..3) and restores it; checks where every VIP went and what the pollers saw.
fn drill(lab: &mut ScriptLab, victim: u32) {
    let (ok, text) = lab.run(
        &["drill", "--box", &victim.to_string()],
        Duration::from_secs(60),
    );
    println!("---- deploy/aa-lab.sh drill --box {victim} ----\n{text}");
    assert!(ok, "drill failed:\n{text}");
    let dead = format!("lb{victim}");
    let heir = format!("lb{}", victim % 3 + 1);
    let one_each = HashMap::from([("lb1", "VI_1"), ("lb2", "VI_2"), ("lb3", "VI_3")]);
    let before = holders(&text, "before");
    assert_eq!(
        before, one_each,
        "before the kill each box is MASTER of exactly one VIP:\n{text}"
    );
    let f = line(&text, "RESULT phase=failover ");
    assert_eq!(num(&f, "bound_ms", &text), MOVED_BOUND_MS, "{text}");

    // The dead box's VIP is on the next box by priority, alongside that box's own.
    let after = holders(&text, "failover");
    assert!(!after.contains_key(dead.as_str()), "{text}");
    let mut heir_has: Vec<&str> = after
        .get(heir.as_str())
        .map(|v| v.split(',').collect())
        .unwrap_or_default();
    heir_has.sort();
    let mut want = vec![format!("VI_{victim}"), format!("VI_{}", victim % 3 + 1)];
    want.sort();
    assert_eq!(
        heir_has, want,
        "{heir} holds its own VIP and {dead}'s:\n{text}"
    );
    assert_eq!(after.len(), 2, "no VIP unheld or split:\n{text}");

    for k in 1..=3 {
        let v = line(&text, &format!("VIPRESULT phase=failover vip=VI_{k} "));
        let failed = num(&v, "failed", &text);
        let outage = num(&v, "outage_ms", &text);
        assert_eq!(
            v.get("from").copied(),
            Some(format!("lb{k}").as_str()),
            "{text}"
        );
        if k == victim {
            assert_eq!(v.get("to").copied(), Some(heir.as_str()), "{text}");
            assert_eq!(v.get("moved").copied(), Some("yes"), "{text}");
            // The poller saw the kill, and the VIP answered again within the bound.
            assert!(failed >= 1, "no failed poll on the dead box's VIP:\n{text}");
            assert!(
                outage <= MOVED_BOUND_MS,
                "VI_{k} outage {outage} ms > {MOVED_BOUND_MS} ms:\n{text}"
            );
            assert_eq!(v.get("recovered").copied(), Some("yes"), "{text}");
            // The heir's own account: its syslog and its address, both within the bound.
            let master = num(&v, "master_ms", &text);
            let vip = num(&v, "vip_ms", &text);
            assert!(master <= MOVED_BOUND_MS && vip <= MOVED_BOUND_MS, "{text}");
            println!(
                "FIGURE failover of {dead}: VI_{k} -> {heir}, outage {outage} ms ({failed} failed polls of {}), {heir} MASTER at +{master} ms, VIP up at +{vip} ms (bound {MOVED_BOUND_MS} ms)",
                num(&v, "requests", &text),
            );
        } else {
            assert_eq!(v.get("moved").copied(), Some("no"), "{text}");
            assert_eq!(failed, 0, "VI_{k} lost polls while {dead} died:\n{text}");
            assert!(num(&v, "requests", &text) > 50, "{text}");
        }
    }
    // The round-robin load: spread over the three boxes before, none on the dead box after.
    let lb = line(&text, "LOAD phase=failover window=before ");
    let total = num(&lb, "total", &text);
    assert!(total >= 60, "{text}");
    for b in ["lb1", "lb2", "lb3"] {
        let n = num(&lb, b, &text);
        assert!(
            3 * n * 10 >= total * 8 && 3 * n * 10 <= total * 12,
            "{b}: {n} of {total}:\n{text}"
        );
    }
    let la = line(&text, "LOAD phase=failover window=after ");
    assert_eq!(num(&la, &dead, &text), 0, "{text}");
    assert_eq!(num(&la, "failed", &text), 0, "{text}");
    assert!(
        num(&la, &heir, &text) > num(&la, &format!("lb{}", (victim + 1) % 3 + 1), &text),
        "{text}"
    );

    // After the restore: one VIP each again, the returning box's VIP back from its heir.
    let back = holders(&text, "failback");
    assert_eq!(back, one_each, "after the restore:\n{text}");
    let v = line(&text, &format!("VIPRESULT phase=failback vip=VI_{victim} "));
    assert_eq!(
        (v.get("from").copied(), v.get("to").copied()),
        (Some(heir.as_str()), Some(dead.as_str())),
        "{text}"
    );
    println!(
        "FIGURE failback of {dead}: VI_{victim} {heir} -> {dead}, outage {} ms ({} failed polls), {dead} MASTER at +{} ms, VIP up at +{} ms",
        num(&v, "outage_ms", &text),
        num(&v, "failed", &text),
        num(&v, "master_ms", &text),
        num(&v, "vip_ms", &text),
    );
    let l = line(&text, "LOAD phase=failback window=after ");
    for b in ["lb1", "lb2", "lb3"] {
        assert!(num(&l, b, &text) > 0, "{b} serves again:\n{text}");
    }
}

#[test]
fn three_boxes_share_three_vips_and_a_dead_box_hands_its_vip_to_the_next() {
    let test = "active_active";
    if !require_root(test) {
        return;
    }
    for tool in ["nginx", "rsyslogd", "curl"] {
        // Root's PATH under a CI runner may lack sbin; deploy/lab.sh adds it itself.
        let in_sbin = ["/usr/sbin", "/sbin"]
            .iter()
            .any(|d| Path::new(d).join(tool).is_file());
        if !in_sbin && !require_tool(test, tool) {
            return;
        }
    }
    let name = format!("vaa{}", std::process::id());
    let mut lab = ScriptLab::new("aa-lab.sh", name.clone(), "aa-lab");
    let (ok, text) = lab.run(
        &["up", "--boxes", "3", "--vips", "3", "--advert", "100ms"],
        Duration::from_secs(60),
    );
    println!("---- deploy/aa-lab.sh up ----\n{text}");
    assert!(ok, "deploy/aa-lab.sh up failed:\n{text}");
    assert_eq!(
        namespaces_with_prefix(&name).len(),
        7,
        "br + 3 boxes, 2 webs, client"
    );
    for k in 1..=3 {
        assert!(
            text.contains(&format!(
                "VI_{k} 198.51.100.{}: held by lb{k} (owner lb{k})",
                100 + k
            )),
            "{text}"
        );
    }
    drill(&mut lab, 1);
    // Round the end of the ring: lb3's VIP goes to lb1.
    drill(&mut lab, 3);

    let state = PathBuf::from(format!("/run/{name}"));
    let (ok, text) = lab.run(&["down"], Duration::from_secs(60));
    assert!(ok, "{text}");
    assert!(namespaces_with_prefix(&name).is_empty(), "namespaces left");
    assert!(!state.exists(), "state dir left");
}
