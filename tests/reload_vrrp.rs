//! SIGHUP changes the VRRP instances of a running pair in place (keepalived's reload
//! semantics, issue 14): for each kind of change a client polls the VIP through the balancer
//! every 20 ms and sees no failed request, the MASTER never leaves MASTER and the BACKUP never
//! hears a priority-0 advert for the instance; an added VIP answers and gets its gratuitous
//! ARP (and its `label`), a removed one leaves the interface; a new instance starts as at boot, a removed one
//! stops as on SIGTERM, and one whose VRID changed restarts alone; notify scripts, notify_fifo,
//! tracker weights, GARP refresh (on the wire), an interface and sync groups change too.

mod common;

use common::*;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use testkit::{require_root, wait_until, Host, Lab, TempDir};

const VIP2: &str = "198.51.100.101";
const VIP3: &str = "198.51.100.102";

/// The pair's file: VI_1 gating a frontend on the VIP, one backend server.
fn config(node: &str, priority: u8) -> String {
    [
        "global:".to_owned(),
        format!("  node: {node}"),
        "  log: { target: stderr, level: debug }".into(),
        "vrrp_scripts:".into(),
        "  chk_ok: { script: /bin/true, interval: 1, weight: 5 }".into(),
        "  chk_zero: { script: /bin/true, interval: 1, weight: 0 }".into(),
        "vrrp_instances:".into(),
        "  - name: VI_1".into(),
        "    interface: eth0".into(),
        "    virtual_router_id: 51".into(),
        format!("    priority: {priority}"),
        "    advert_int: 1".into(),
        "    virtual_ipaddress: [198.51.100.100/24]".into(),
        "frontends:".into(),
        "  - name: www".into(),
        "    bind: [\"198.51.100.100:80\"]".into(),
        "    gate: [VI_1]".into(),
        "    default_backend: web".into(),
        "backends:".into(),
        "  - name: web".into(),
        "    servers: [{ name: web1, address: \"198.51.100.21:80\" }]".into(),
        "    health_check: { kind: http, path: /, interval: 300ms, timeout: 200ms, rise: 1, fall: 2 }"
            .into(),
        String::new(),
    ]
    .join("\n")
}

/// The second instance some steps add: VRID 52, its own VIP, no frontend.
fn second_instance(priority: u8) -> String {
    format!(
        "  - name: VI_2\n    interface: eth0\n    virtual_router_id: 52\n    priority: {priority}\n    advert_int: 1\n    virtual_ipaddress: [{VIP3}/24]\n"
    )
}

struct Pair {
    lab: Lab,
    _dir: TempDir,
    lb1: Node,
    lb2: Node,
    _web: Backend,
}

impl Pair {
    fn logs(&self) -> String {
        format!(
            "---- lb1 ----\n{}\n---- lb2 ----\n{}",
            self.lb1.log_text(),
            self.lb2.log_text()
        )
    }

    fn node(&self, which: &str) -> &Node {
        if which == "lb1" {
            &self.lb1
        } else {
            &self.lb2
        }
    }

    /// Rewrites `which`'s file with `edit`, sends SIGHUP and waits for the reload to finish.
    fn reload(&self, which: &str, edit: impl Fn(String) -> String) {
        let node = self.node(which);
        let text = std::fs::read_to_string(&node.config).expect("config");
        let edited = edit(text.clone());
        assert_ne!(edited, text, "the edit changed nothing in {which}'s file");
        std::fs::write(&node.config, edited).expect("write config");
        let before = node.count_log("Configuration reloaded");
        self.lab.host(which).signal(node.pid, libc::SIGHUP);
        assert!(
            wait_until(Duration::from_secs(5), || node
                .count_log("Configuration reloaded")
                > before),
            "{which} did not reload\n{}",
            self.logs()
        );
    }

    /// `vrrplb status --json` of a node, as JSON.
    fn status(&self, which: &str) -> serde_json::Value {
        let out = std::process::Command::new(BIN)
            .args(["status", "--json", "-c"])
            .arg(&self.node(which).config)
            .output()
            .expect("vrrplb status");
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "status --json of {which}: {e}: {}",
                String::from_utf8_lossy(&out.stdout)
            )
        })
    }

    fn instance(&self, which: &str, name: &str) -> serde_json::Value {
        let s = self.status(which);
        s["vrrp"]
            .as_array()
            .and_then(|l| l.iter().find(|i| i["name"] == name).cloned())
            .unwrap_or_else(|| panic!("{name} missing from {which}'s status: {s}"))
    }

    /// What every step must leave true for VI_1: lb1 was MASTER all along (one transition
    /// to MASTER, no other), lb2 BACKUP all along, and lb2 never heard a priority-0 advert.
    fn assert_vi1_undisturbed(&self, step: &str) {
        let (l1, l2) = (self.lb1.log_text(), self.lb2.log_text());
        assert_eq!(
            l1.matches("(VI_1) Entering MASTER STATE").count(),
            1,
            "{step}: lb1 left MASTER\n{}",
            self.logs()
        );
        // BACKUP once, at start (init), and never FAULT.
        assert_eq!(
            l1.matches("(VI_1) Entering BACKUP STATE").count(),
            1,
            "{step}: lb1 went back to BACKUP\n{}",
            self.logs()
        );
        assert!(
            !l1.contains("(VI_1) Entering FAULT STATE"),
            "{step}\n{}",
            self.logs()
        );
        assert!(
            !l2.contains("(VI_1) Entering MASTER STATE"),
            "{step}: lb2 became MASTER\n{}",
            self.logs()
        );
        assert!(
            !l2.contains("(VI_1) Backup received priority 0"),
            "{step}: lb2 heard a priority-0 advert\n{}",
            self.logs()
        );
        assert!(
            !l1.contains("(VI_1) sent 0 priority"),
            "{step}\n{}",
            self.logs()
        );
        let vi1 = self.instance("lb1", "VI_1");
        assert_eq!(vi1["state"], "MASTER", "{step}: {vi1}");
        assert_eq!(vi1["become_master"], 1, "{step}: {vi1}");
        assert_eq!(self.instance("lb2", "VI_1")["become_master"], 0, "{step}");
    }
}

fn start_pair(tag: &str) -> Pair {
    let (lab, dir, web) = pair_lab_with_web1(tag);
    // Gratuitous ARPs create neighbour entries on the client, so an added VIP's GARP shows.
    lab.host("client")
        .exec_ok(&["sysctl", "-q", "-w", "net.ipv4.conf.eth0.arp_accept=1"]);
    let t0 = Instant::now();
    let lb1 = start(&lab, "lb1", &dir, &config("lb1", 101));
    assert!(
        wait_vip(lab.host("lb1"), t0, Duration::from_secs(8)).is_some(),
        "{}",
        lb1.log_text()
    );
    let lb2 = start(&lab, "lb2", &dir, &config("lb2", 100));
    assert!(
        lb2.wait_log("(VI_1) Entering BACKUP STATE", Duration::from_secs(5)),
        "{}",
        lb2.log_text()
    );
    let pair = Pair {
        lab,
        _dir: dir,
        lb1,
        lb2,
        _web: web,
    };
    let vip: SocketAddr = format!("{VIP}:80").parse().expect("vip");
    let client = pair.lab.host("client");
    assert!(
        wait_until(Duration::from_secs(5), || client
            .run_in(move || http_get(vip, "/", ""))
            .is_some_and(|(s, _)| s == 200)),
        "the VIP never answered\n{}",
        pair.logs()
    );
    pair
}

/// Polls each of `vips` (port 80) every 20 ms from the client while `during` runs, then for
/// `settle` more; at most 2000 requests per address. Returns (sent, failed).
fn polled(client: &Host, vips: &[&str], settle: Duration, during: impl FnOnce()) -> (u32, u32) {
    let stop = Arc::new(AtomicBool::new(false));
    let (sent, failed) = (Arc::new(AtomicU32::new(0)), Arc::new(AtomicU32::new(0)));
    std::thread::scope(|scope| {
        let pollers: Vec<_> = vips
            .iter()
            .map(|v| {
                let addr: SocketAddr = format!("{v}:80").parse().expect("vip");
                let (stop, sent, failed) = (stop.clone(), sent.clone(), failed.clone());
                scope.spawn(move || {
                    client.run_in(move || {
                        let mut mine = 0;
                        while !stop.load(Ordering::SeqCst) && mine < 2000 {
                            mine += 1;
                            sent.fetch_add(1, Ordering::SeqCst);
                            if http_get(addr, "/", "").is_none_or(|(s, _)| s != 200) {
                                failed.fetch_add(1, Ordering::SeqCst);
                            }
                            std::thread::sleep(Duration::from_millis(20));
                        }
                    })
                })
            })
            .collect();
        std::thread::sleep(Duration::from_millis(200));
        during();
        std::thread::sleep(settle);
        stop.store(true, Ordering::SeqCst);
        for p in pollers {
            let _ = p.join();
        }
    });
    (sent.load(Ordering::SeqCst), failed.load(Ordering::SeqCst))
}

fn check_polls(pair: &Pair, step: &str, (sent, failed): (u32, u32)) {
    println!("{step}: {failed} of {sent} requests failed");
    assert_eq!(failed, 0, "{step}: requests failed\n{}", pair.logs());
    assert!(sent >= 20, "{step}: the poller hardly ran ({sent})");
}

#[test]
fn sighup_changes_vips_trackers_timers_and_auth_without_leaving_master() {
    if !require_root("reload_vrrp_in_place") {
        return;
    }
    let pair = start_pair("reload-vrrp");
    let client = pair.lab.host("client");
    let (lb1, lb2) = (pair.lab.host("lb1"), pair.lab.host("lb2"));

    // 1. A VIP added (with its listener): lb1 adds it and announces it by GARP at once.
    let add_vip = |t: String| {
        t.replace(
            "virtual_ipaddress: [198.51.100.100/24]",
            &format!("virtual_ipaddress: [198.51.100.100/24, \"{VIP2}/24 label eth0:web\"]"),
        )
        .replace(
            "bind: [\"198.51.100.100:80\"]",
            &format!("bind: [\"198.51.100.100:80\", \"{VIP2}:80\"]"),
        )
    };
    let polls = polled(client, &[VIP], Duration::from_millis(1500), || {
        pair.reload("lb1", add_vip);
        pair.reload("lb2", add_vip);
    });
    check_polls(&pair, "VIP added", polls);
    assert!(lb1.has_address(VIP2), "{}", pair.logs());
    assert!(!lb2.has_address(VIP2), "{}", pair.logs());
    // With its keepalived `label` (IFA_LABEL), as `ip addr` shows it.
    let labelled = lb1.exec_ok(&["ip", "-4", "-o", "addr", "show", "label", "eth0:web"]);
    assert!(labelled.contains(&format!("{VIP2}/24")), "{labelled}");
    // The client never sent to the new VIP: its entry comes from the GARP.
    let mac1 = lb1.mac();
    assert_eq!(
        client.neighbour_mac(VIP2).as_deref(),
        Some(mac1.as_str()),
        "no GARP for the added VIP\n{}",
        pair.logs()
    );
    assert!(pair.lb1.log_text().contains(&format!(
        "(VI_1) Sending/queueing gratuitous ARPs on eth0 for {VIP2}"
    )));
    let vip2: SocketAddr = format!("{VIP2}:80").parse().expect("vip2");
    assert!(client
        .run_in(move || http_get(vip2, "/", ""))
        .is_some_and(|(s, b)| s == 200 && b.starts_with("web1")));
    let vips = pair.instance("lb1", "VI_1")["vips"].to_string();
    assert!(vips.contains(VIP2), "{vips}");
    pair.assert_vi1_undisturbed("VIP added");

    // 2. The VIP removed again: gone from the interface, the other one served throughout.
    let remove_vip = |t: String| {
        t.replace(&format!(", \"{VIP2}/24 label eth0:web\""), "")
            .replace(&format!(", \"{VIP2}:80\""), "")
    };
    let polls = polled(client, &[VIP, VIP2], Duration::from_millis(500), || {});
    check_polls(&pair, "both VIPs before the removal", polls);
    let polls = polled(client, &[VIP], Duration::from_millis(1500), || {
        pair.reload("lb1", remove_vip);
        pair.reload("lb2", remove_vip);
    });
    check_polls(&pair, "VIP removed", polls);
    assert!(!lb1.has_address(VIP2), "{}", pair.logs());
    assert!(lb1.has_address(VIP));
    pair.assert_vi1_undisturbed("VIP removed");

    // 3. Trackers added on the MASTER: a weight-0 script (neutral until its first run, then
    // OK) and a +5 one: the priority follows, the state stays.
    let add_trackers = |t: String| {
        t.replace(
            "    advert_int: 1\n    virtual_ipaddress: [198.51.100.100/24]",
            "    advert_int: 1\n    virtual_ipaddress: [198.51.100.100/24]\n    track_scripts: [chk_zero, chk_ok]",
        )
    };
    let polls = polled(client, &[VIP], Duration::from_millis(2500), || {
        pair.reload("lb1", add_trackers)
    });
    check_polls(&pair, "trackers added", polls);
    assert!(
        pair.lb1
            .log_text()
            .contains("(VI_1) Changing effective priority from 101 to 106"),
        "{}",
        pair.logs()
    );
    let trackers = pair.instance("lb1", "VI_1")["trackers"].to_string();
    assert!(
        trackers.contains("chk_zero") && trackers.contains("chk_ok"),
        "{trackers}"
    );
    pair.assert_vi1_undisturbed("trackers added");

    // 4. ... and removed.
    let remove_trackers = |t: String| t.replace("\n    track_scripts: [chk_zero, chk_ok]", "");
    let polls = polled(client, &[VIP], Duration::from_millis(1500), || {
        pair.reload("lb1", remove_trackers)
    });
    check_polls(&pair, "trackers removed", polls);
    assert!(
        pair.lb1
            .log_text()
            .contains("(VI_1) Changing effective priority from 106 to 101"),
        "{}",
        pair.logs()
    );
    assert_eq!(pair.instance("lb1", "VI_1")["priority"], 101);
    pair.assert_vi1_undisturbed("trackers removed");

    // 5. advert_int 1 s -> 2 s on both (VRRPv2 drops adverts whose interval differs, so
    // lb2 only stays BACKUP past its new Master_Down_Interval, 6.6 s, if lb1 now sends
    // every 2 s).
    let slower = |t: String| t.replace("    advert_int: 1\n", "    advert_int: 2\n");
    let polls = polled(client, &[VIP], Duration::from_millis(7500), || {
        pair.reload("lb2", slower);
        pair.reload("lb1", slower);
    });
    check_polls(&pair, "advert_int changed", polls);
    for n in [&pair.lb1, &pair.lb2] {
        assert!(
            n.log_text().contains("advert_int 1000 ms -> 2000 ms"),
            "{}",
            pair.logs()
        );
    }
    pair.assert_vi1_undisturbed("advert_int changed");

    // 6. Authentication added on both: again lb2 accepts lb1's adverts past its down timer.
    let with_auth = |t: String| {
        t.replace(
            "    advert_int: 2\n",
            "    advert_int: 2\n    authentication: { auth_type: PASS, auth_pass: s3cret }\n",
        )
    };
    let polls = polled(client, &[VIP], Duration::from_millis(7500), || {
        pair.reload("lb2", with_auth);
        pair.reload("lb1", with_auth);
    });
    check_polls(&pair, "authentication changed", polls);
    assert!(pair.lb1.log_text().contains("authentication"));
    pair.assert_vi1_undisturbed("authentication changed");

    // 7. Multicast -> unicast peers on both (keepalived drops a multicast advert on a unicast
    // instance): the VRRP socket is reopened in place, and lb2 hears lb1's unicast adverts
    // past its Master_Down_Interval.
    let unicast = |own: &'static str, peer: &'static str| {
        move |t: String| {
            t.replace(
                "    advert_int: 2\n",
                &format!(
                    "    advert_int: 2\n    unicast_src_ip: {own}\n    unicast_peers: [{peer}]\n"
                ),
            )
        }
    };
    let polls = polled(client, &[VIP], Duration::from_millis(7500), || {
        pair.reload("lb2", unicast("198.51.100.12", "198.51.100.11"));
        pair.reload("lb1", unicast("198.51.100.11", "198.51.100.12"));
    });
    check_polls(&pair, "unicast peers", polls);
    assert!(pair.lb1.log_text().contains("unicast peers"));
    pair.assert_vi1_undisturbed("unicast peers");
    assert!(!pair.lb1.log_text().contains("take effect on restart"));
    assert_eq!(pair.lb1.count_log("Starting vrrplb"), 1);
}

#[test]
fn sighup_starts_restarts_and_stops_instances_while_the_others_stay_master() {
    if !require_root("reload_vrrp_instances") {
        return;
    }
    let pair = start_pair("reload-vrrp-inst");
    let client = pair.lab.host("client");
    let (lb1, lb2) = (pair.lab.host("lb1"), pair.lab.host("lb2"));
    let add = |priority: u8| {
        move |t: String| {
            t.replace(
                "frontends:\n",
                &format!("{}frontends:\n", second_instance(priority)),
            )
        }
    };

    // 1. VI_2 added on both: it starts as at boot, lb1 (101) wins it.
    let t0 = Instant::now();
    let polls = polled(client, &[VIP], Duration::from_millis(500), || {
        pair.reload("lb1", add(101));
        pair.reload("lb2", add(100));
    });
    check_polls(&pair, "instance added", polls);
    let bound = master_down(101) + Duration::from_secs(2);
    assert!(
        wait_until(bound.saturating_sub(t0.elapsed()), || lb1.has_address(VIP3)),
        "VI_2's VIP never came up on lb1\n{}",
        pair.logs()
    );
    assert!(
        pair.lb1
            .wait_log("(VI_2) Entering MASTER STATE", Duration::from_secs(2)),
        "{}",
        pair.logs()
    );
    assert!(pair
        .lb2
        .wait_log("(VI_2) Entering BACKUP STATE", Duration::from_secs(2)));
    assert!(pair
        .lb1
        .log_text()
        .contains("(VI_2) new in the configuration: starting it"));
    assert!(!lb2.has_address(VIP3));
    pair.assert_vi1_undisturbed("instance added");

    // 2. VI_2's VRID changed on both: only VI_2 restarts (said in the log).
    let renumber = |t: String| t.replace("virtual_router_id: 52", "virtual_router_id: 53");
    let polls = polled(client, &[VIP], Duration::from_millis(500), || {
        pair.reload("lb2", renumber);
        pair.reload("lb1", renumber);
    });
    check_polls(&pair, "VRID changed", polls);
    assert!(
        pair.lb1
            .log_text()
            .contains("(VI_2) virtual_router_id changed (52 -> 53): restarting this instance"),
        "{}",
        pair.logs()
    );
    // lb1's VI_2 restarts after lb2's (its priority-0 hand-over waits up to 1.5 s for a
    // successor on the old VRID), then preempts lb2 on the new one.
    assert!(
        wait_until(Duration::from_secs(10), || lb1.has_address(VIP3)),
        "VI_2 not back on lb1\n{}",
        pair.logs()
    );
    pair.assert_vi1_undisturbed("VRID changed");

    // 3. VI_2 removed: the BACKUP's first (it stops silently), then the MASTER's, which
    // stops as on SIGTERM (priority-0 advert, VIP removed).
    let remove = |t: String| {
        let start = t.find("  - name: VI_2").expect("VI_2 in the file");
        let end = t.find("frontends:\n").expect("frontends");
        format!("{}{}", &t[..start], &t[end..])
    };
    let polls = polled(client, &[VIP], Duration::from_millis(1000), || {
        pair.reload("lb2", remove);
        pair.reload("lb1", remove);
    });
    check_polls(&pair, "instance removed", polls);
    assert!(
        wait_until(Duration::from_secs(3), || !lb1.has_address(VIP3)),
        "{}",
        pair.logs()
    );
    let l1 = pair.lb1.log_text();
    assert!(
        l1.contains("(VI_2) removed from the configuration: stopping it"),
        "{l1}"
    );
    assert!(l1.contains("(VI_2) sent 0 priority"), "{l1}");
    let names = pair.status("lb1")["vrrp"].to_string();
    assert!(!names.contains("VI_2"), "{names}");
    pair.assert_vi1_undisturbed("instance removed");

    // 4. Process-wide settings: the control socket moves at once (status answers at the new
    // path, read from the new file), `global.log` applies live (tests/syslog.rs follows the
    // lines), `threads` is named as needing a restart and keeps running as it was.
    let global = |t: String| {
        t.replace("lb1.sock", "lb1-moved.sock")
            .replace("global:\n", "global:\n  threads: 2\n")
            .replace("level: debug }", "level: debug, facility: local3 }")
    };
    let polls = polled(client, &[VIP], Duration::from_millis(500), || {
        pair.reload("lb1", global)
    });
    check_polls(&pair, "global settings", polls);
    let l1 = pair.lb1.log_text();
    for want in [
        "global.threads changed: it takes effect on restart",
        "global.log applied: stderr",
        "control socket moved from",
    ] {
        assert!(l1.contains(want), "{want}\n{l1}");
    }
    assert!(pair.status("lb1")["vrrp"].to_string().contains("VI_1"));
    pair.assert_vi1_undisturbed("global settings");
}

/// VI_2 for the steps of the third test: `tag` names the node in its notify lines, `script`
/// is the notify script's path, `extra` more keys (indented by four).
fn vi2(priority: u8, script: &str, tag: &str, extra: &str) -> String {
    format!(
        "  - name: VI_2\n    interface: eth0\n    virtual_router_id: 52\n    priority: {priority}\n    advert_int: 1\n    virtual_ipaddress: [{VIP3}/24]\n    notify_master: \"{script} {tag}-master\"\n    notify_backup: \"{script} {tag}-backup\"\n    notify_stop: \"{script} {tag}-stop\"\n{extra}"
    )
}

/// Replaces the VI_2 block (up to `frontends:`) with `block`, or inserts it.
fn with_vi2(block: String) -> impl Fn(String) -> String {
    move |t: String| {
        let end = t.find("frontends:\n").expect("frontends");
        let start = t.find("  - name: VI_2").unwrap_or(end);
        format!("{}{block}{}", &t[..start], &t[end..])
    }
}

/// `tcpdump` on the lab's bridge for `secs`: the gratuitous ARPs seen for `vip`
/// (`who-has VIP (Broadcast) tell VIP`), as capture timestamps in seconds, and the raw text.
fn garps_on_the_wire(lab: &Lab, vip: &str, secs: u32) -> (Vec<f64>, String) {
    let mut cmd = lab.bridge_command("timeout");
    cmd.args([
        &secs.to_string(),
        "tcpdump",
        "-i",
        "br0",
        "-nn",
        "-l",
        "-tt",
        "arp",
    ]);
    let out = run_with_timeout(cmd, Duration::from_secs(u64::from(secs) + 10));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let (asks, tells) = (format!("who-has {vip} "), format!("tell {vip},"));
    let times = text
        .lines()
        .filter(|l| l.contains(&asks) && l.contains(&tells))
        .filter_map(|l| l.split_whitespace().next()?.parse().ok())
        .collect();
    (times, text)
}

/// The rest of issue 14's in-place kinds, on the same pair, VI_1 (the gated VIP) MASTER on
/// lb1 throughout with a 20 ms poller and no failed request: notify scripts swapped (the
/// next transition runs the new ones, never the old), a tracker weight that changes the
/// effective priority at once (and moves VI_2 when it says so), GARP refresh changed as seen
/// on the bridge, VI_2's interface changed (only VI_2 restarts), a sync group added to
/// running instances and its membership changed (its members restart, said in the log);
/// a `notify_fifo` added by SIGHUP carries the next transition. About 30 s (in parallel
/// with the file's other tests).
#[test]
fn sighup_swaps_notify_scripts_weights_garp_interface_and_sync_groups() {
    if !require_root("reload_vrrp_more") || !testkit::require_tool("reload_vrrp_more", "tcpdump") {
        return;
    }
    let pair = start_pair("reload-vrrp-more");
    let client = pair.lab.host("client");
    let lb1 = pair.lab.host("lb1");
    let dir = pair._dir.path().to_owned();
    let notified = dir.join("notify.log");
    for name in ["old", "new"] {
        let path = dir.join(format!("{name}.sh"));
        std::fs::write(
            &path,
            format!("#!/bin/sh\necho \"{name} $*\" >> {}\n", notified.display()),
        )
        .expect("script");
        std::process::Command::new("chmod")
            .args(["755"])
            .arg(&path)
            .status()
            .expect("chmod");
    }
    let (old, new) = (
        dir.join("old.sh").display().to_string(),
        dir.join("new.sh").display().to_string(),
    );
    let notes = || std::fs::read_to_string(&notified).unwrap_or_default();
    let tracked = "    track_scripts: [{ name: chk_ok, weight: W }]\n";

    // 1. VI_2 added on both with the old scripts (lb2 tracks chk_ok with weight 0): lb1 wins.
    let polls = polled(client, &[VIP], Duration::from_millis(800), || {
        pair.reload("lb1", with_vi2(vi2(101, &old, "lb1", "")));
        pair.reload(
            "lb2",
            with_vi2(vi2(100, &old, "lb2", &tracked.replace('W', "0"))),
        );
    });
    check_polls(&pair, "VI_2 added", polls);
    assert!(
        pair.lb1.wait_log(
            "(VI_2) Entering MASTER STATE",
            master_down(101) + Duration::from_secs(3)
        ),
        "{}",
        pair.logs()
    );
    assert!(wait_until(Duration::from_secs(3), || notes()
        .contains("old lb1-master")));

    // 2. The notify scripts swapped on both, and lb2 gains a notify_fifo: nothing runs
    // (no transition) ...
    let fifo = dir.join("lb2.fifo");
    let fifo_key = format!("global:\n  notify_fifo: {}\n", fifo.display());
    let polls = polled(client, &[VIP], Duration::from_millis(800), || {
        pair.reload("lb1", with_vi2(vi2(101, &new, "lb1", "")));
        let swap = with_vi2(vi2(100, &new, "lb2", &tracked.replace('W', "0")));
        pair.reload("lb2", |t| swap(t).replacen("global:\n", &fifo_key, 1));
    });
    assert!(
        wait_until(Duration::from_secs(2), || fifo.exists()),
        "{}",
        pair.logs()
    );
    let fifo_lines = read_fifo(fifo.clone());
    check_polls(&pair, "notify scripts swapped", polls);
    assert!(!notes().contains("new "), "{}", notes());
    let l1 = pair.lb1.log_text();
    assert!(
        l1.lines()
            .any(|l| l.contains("(VI_2) reloaded in place") && l.contains("notify scripts")),
        "{l1}"
    );
    // ... 3. until lb2's tracker weight goes 0 -> 60: its effective priority is 160 at once,
    // it preempts VI_2, and both sides run the new scripts for that transition.
    let notes_before = notes();
    let polls = polled(client, &[VIP], Duration::from_millis(2500), || {
        pair.reload(
            "lb2",
            with_vi2(vi2(100, &new, "lb2", &tracked.replace('W', "60"))),
        );
    });
    check_polls(&pair, "VI_2's tracker weight changed", polls);
    assert!(
        pair.lb2.wait_log(
            "(VI_2) Changing effective priority from 100 to 160",
            Duration::from_secs(3)
        ),
        "{}",
        pair.logs()
    );
    assert!(
        pair.lb2
            .wait_log("(VI_2) Entering MASTER STATE", Duration::from_secs(5)),
        "{}",
        pair.logs()
    );
    assert!(
        wait_until(Duration::from_secs(3), || {
            let n = notes();
            n.contains("new lb2-master") && n.contains("new lb1-backup")
        }),
        "{}",
        notes()
    );
    // The FIFO added by the reload carries the transition, keepalived's line format.
    assert!(
        wait_until(Duration::from_secs(2), || fifo_lines
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .any(|l| l == "INSTANCE \"VI_2\" MASTER 160")),
        "{:?}\n{}",
        fifo_lines.lock().unwrap_or_else(|e| e.into_inner()),
        pair.logs()
    );
    let fresh = notes()[notes_before.len()..].to_owned();
    assert!(!fresh.contains("old "), "an old script ran: {fresh}");
    assert_eq!(pair.instance("lb2", "VI_2")["priority"], 160);
    pair.assert_vi1_undisturbed("notify scripts and VI_2's weight");

    // 4. Tracker weights on VI_1 (lb1, MASTER): +5 script, +5 interface -> 111, then
    // +20 and +10 -> 131: the priority follows, the state stays.
    let weights = |script: u8, link: u8| {
        move |t: String| {
            let mut t = t.replace(
                "    virtual_ipaddress: [198.51.100.100/24]\n",
                "    virtual_ipaddress: [198.51.100.100/24]\nTRACKERS",
            );
            t = regex_free_cut(&t, "TRACKERS", "frontends:\n", "  - name: VI_2");
            t.replace(
                "TRACKERS",
                &format!(
                    "    track_scripts: [{{ name: chk_ok, weight: {script} }}]\n    track_interfaces: [{{ name: eth0, weight: {link} }}]\n"
                ),
            )
        }
    };
    let polls = polled(client, &[VIP], Duration::from_millis(2500), || {
        pair.reload("lb1", weights(5, 5))
    });
    check_polls(&pair, "VI_1 trackers +5 +5", polls);
    assert!(
        wait_until(Duration::from_secs(3), || pair.instance("lb1", "VI_1")
            ["priority"]
            == 111),
        "{}",
        pair.instance("lb1", "VI_1")
    );
    let polls = polled(client, &[VIP], Duration::from_millis(500), || {
        pair.reload("lb1", weights(20, 10))
    });
    check_polls(&pair, "VI_1 weights changed", polls);
    assert!(
        wait_until(Duration::from_secs(2), || pair.instance("lb1", "VI_1")
            ["priority"]
            == 131),
        "{}",
        pair.instance("lb1", "VI_1")
    );
    pair.assert_vi1_undisturbed("tracker weights");

    // 5. GARP refresh on for VI_1 (every 1 s): one GARP a second shows on the bridge;
    // off again: no GARP for the VIP at all.
    let garp = |on: bool| {
        move |t: String| {
            let key = "    garp_master_refresh: 1\n";
            if on {
                t.replacen(
                    "    advert_int: 1\n",
                    &format!("    advert_int: 1\n{key}"),
                    1,
                )
            } else {
                t.replacen(key, "", 1)
            }
        }
    };
    let mut seen = (Vec::new(), String::new());
    let polls = polled(client, &[VIP], Duration::from_millis(300), || {
        pair.reload("lb1", garp(true));
        seen = garps_on_the_wire(&pair.lab, VIP, 5);
    });
    check_polls(&pair, "GARP refresh on", polls);
    let (times, raw) = &seen;
    println!("GARP refresh 1 s: {} GARPs at {times:?}", times.len());
    assert!(
        (3..=6).contains(&times.len()),
        "expected one GARP a second for 5 s (tcpdump starts late): {raw}\n{}",
        pair.logs()
    );
    let span = times.last().copied().unwrap_or(0.0) - times.first().copied().unwrap_or(0.0);
    assert!(
        span >= 1.8,
        "GARPs not spread over the refresh interval: {raw}"
    );
    assert!(pair.lb1.log_text().contains("gratuitous ARP settings"));
    let polls = polled(client, &[VIP], Duration::from_millis(300), || {
        pair.reload("lb1", garp(false));
        seen = garps_on_the_wire(&pair.lab, VIP, 3);
    });
    check_polls(&pair, "GARP refresh off", polls);
    assert!(
        seen.0.is_empty(),
        "GARPs after refresh was turned off: {}",
        seen.1
    );
    pair.assert_vi1_undisturbed("GARP refresh");

    // 6. VI_2's interface changed on lb1 (to a veth pair of its own): only VI_2 restarts,
    // and comes up MASTER there alone.
    lb1.exec_ok(&[
        "ip", "link", "add", "v14a", "type", "veth", "peer", "name", "v14b",
    ]);
    lb1.exec_ok(&["ip", "addr", "add", "203.0.113.1/24", "dev", "v14a"]);
    lb1.exec_ok(&["ip", "link", "set", "v14a", "up"]);
    lb1.exec_ok(&["ip", "link", "set", "v14b", "up"]);
    let moved = |t: String| {
        let start = t.find("  - name: VI_2").expect("VI_2");
        format!(
            "{}{}",
            &t[..start],
            t[start..].replacen("interface: eth0", "interface: v14a", 1)
        )
    };
    let polls = polled(client, &[VIP], Duration::from_millis(500), || {
        pair.reload("lb1", moved)
    });
    check_polls(&pair, "VI_2's interface changed", polls);
    assert!(
        pair.lb1
            .log_text()
            .contains("(VI_2) interface changed (eth0 -> v14a): restarting this instance"),
        "{}",
        pair.logs()
    );
    assert!(
        wait_until(master_down(101) + Duration::from_secs(3), || lb1
            .addresses_on("v14a")
            .iter()
            .any(|a| a.starts_with(VIP3))),
        "VI_2 not MASTER on v14a\n{}",
        pair.logs()
    );
    pair.assert_vi1_undisturbed("interface changed");

    // 7. A sync group added to running VI_2 with a new VI_3: VI_2 restarts (its group
    // changed); then the group gains VI_3: its members restart, VI_1 is untouched.
    let vi3 = "  - name: VI_3\n    interface: v14a\n    virtual_router_id: 53\n    priority: 100\n    advert_int: 1\n    virtual_ipaddress: [203.0.113.103/24]\n";
    let group = move |members: &'static str| {
        move |t: String| {
            let t = if t.contains("name: VI_3") {
                t
            } else {
                t.replace("frontends:\n", &format!("{vi3}frontends:\n"))
            };
            let t = match t.find("vrrp_sync_groups:") {
                Some(i) => t[..i].to_owned(),
                None => t,
            };
            format!("{t}vrrp_sync_groups:\n  - name: G1\n    group: [{members}]\n")
        }
    };
    let polls = polled(client, &[VIP], Duration::from_millis(500), || {
        pair.reload("lb1", group("VI_2"))
    });
    check_polls(&pair, "sync group added", polls);
    let l1 = pair.lb1.log_text();
    assert!(
        l1.contains("(VI_2) sync group changed (none -> G1): restarting this instance"),
        "{l1}"
    );
    assert!(
        l1.contains("(VI_3) new in the configuration: starting it"),
        "{l1}"
    );
    let polls = polled(client, &[VIP], Duration::from_millis(500), || {
        pair.reload("lb1", group("VI_2, VI_3"))
    });
    check_polls(&pair, "sync group members changed", polls);
    let l1 = pair.lb1.log_text();
    assert!(
        l1.contains("sync group G1 changed its members: they restart (VI_2, VI_3)"),
        "{l1}"
    );
    assert!(
        l1.contains("(VI_3) sync group changed (none -> G1): restarting this instance"),
        "{l1}"
    );
    assert!(!l1.contains("(VI_1) sync group"), "{l1}");
    assert!(!l1.contains("(VI_1) removed"), "{l1}");
    pair.assert_vi1_undisturbed("sync groups");
    assert_eq!(pair.lb1.count_log("Starting vrrplb"), 1);
}

/// Drops what lies between `from` (kept) and the first of `ends` after it (kept).
fn regex_free_cut(t: &str, from: &str, end_a: &str, end_b: &str) -> String {
    let Some(i) = t.find(from) else {
        return t.to_owned();
    };
    let after = i + from.len();
    let rest = &t[after..];
    let cut = [rest.find(end_a), rest.find(end_b)]
        .into_iter()
        .flatten()
        .min()
        .unwrap_or(0);
    format!("{}{}", &t[..after], &t[after + cut..])
}
