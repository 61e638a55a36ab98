//! The `announce` section against the real binary in a namespace, without a routing daemon:
//! the address is on `lo` and its frontend listens exactly while the tracked script passes,
//! each transition logged with why; `vrrplb status` shows it; SIGHUP moves it to another
//! address (the old one withdrawn, the new one announced); SIGTERM removes it.
//! A missing interface keeps it withdrawn, said once; an IPv6 /128 works the same. Wall
//! time: about 8 s for the three tests.

mod common;

use common::{listening, start};
use std::time::Duration;
use testkit::{require_root, wait_until, Lab, TempDir};

fn config(dir: &TempDir, address: &str) -> String {
    let flag = dir.join("healthy");
    format!(
        "global:\n  node: lb\n  log: {{ target: stderr }}\n  stats: {{ bind: \"127.0.0.1:8404\" }}\n\
         vrrp_scripts:\n  chk:\n    script: \"/usr/bin/test -e {}\"\n    interval: 100ms\n\
         announce:\n  - name: web-vip\n    address: {address}/32\n    frontends: [www]\n    track_scripts: [chk]\n\
         frontends:\n  - name: www\n    bind: [\"0.0.0.0:8080\"]\n    default_backend: web\n\
         backends:\n  - name: web\n    servers: [{{ name: w1, address: \"198.51.100.21:80\" }}]\n",
        flag.display()
    )
}

fn on_lo(lab: &Lab, addr: &str) -> bool {
    lab.host("lb")
        .addresses_on("lo")
        .iter()
        .any(|a| a == &format!("{addr}/32"))
}

#[test]
fn an_announced_address_follows_its_script_reloads_and_goes_on_sigterm() {
    if !require_root("announce") {
        return;
    }
    let lab = Lab::new(&[("lb", "198.51.100.11/24")]);
    let dir = TempDir::new("announce");
    let flag = dir.join("healthy");
    let node = start(&lab, "lb", &dir, &config(&dir, "198.51.100.200"));
    let h = lab.host("lb");
    let t = Duration::from_secs(5);

    // The script fails: no address, no listener.
    assert!(
        node.wait_log(
            "announce web-vip 198.51.100.200/32: withdrawn (script chk: failing)",
            t
        ),
        "{}",
        node.log_text()
    );
    assert!(!on_lo(&lab, "198.51.100.200"));
    assert!(!listening(h, 8080));

    // It passes: the address, then the listener.
    std::fs::write(&flag, "").expect("flag");
    assert!(
        wait_until(t, || on_lo(&lab, "198.51.100.200")),
        "{}",
        node.log_text()
    );
    assert!(wait_until(t, || listening(h, 8080)));
    assert!(node.wait_log("announce web-vip 198.51.100.200/32: announced on lo", t));
    let status = node.status();
    assert!(
        status.contains("announce web-vip 198.51.100.200/32 announced on lo"),
        "{status}"
    );

    // /metrics says so too, in a form promtool accepts.
    let metrics = h.exec_ok(&["curl", "-sf", "http://127.0.0.1:8404/metrics"]);
    assert!(
        metrics.contains(
            "vrrplb_announce_state{name=\"web-vip\",address=\"198.51.100.200/32\",interface=\"lo\"} 1"
        ),
        "{metrics}"
    );
    if testkit::require_tool("announce", "promtool") {
        let path = dir.join("metrics.txt");
        std::fs::write(&path, &metrics).expect("metrics");
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!("promtool check metrics < {}", path.display()))
            .output()
            .expect("promtool");
        assert!(
            !String::from_utf8_lossy(&out.stderr).contains("vrrplb_announce"),
            "promtool: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    // It fails again: both go, and status says why.
    std::fs::remove_file(&flag).expect("flag");
    assert!(wait_until(t, || !on_lo(&lab, "198.51.100.200")));
    assert!(wait_until(t, || !listening(h, 8080)));
    let status = node.status();
    assert!(
        status.contains("withdrawn on lo")
            && status.contains("(script chk: failing) withdrawals 1"),
        "{status}"
    );

    // SIGHUP to another address while healthy: the old one is withdrawn, the new announced.
    std::fs::write(&flag, "").expect("flag");
    assert!(wait_until(t, || on_lo(&lab, "198.51.100.200")));
    std::fs::write(&node.config, config(&dir, "198.51.100.201")).expect("config");
    h.signal(node.pid, libc::SIGHUP);
    assert!(
        wait_until(t, || on_lo(&lab, "198.51.100.201")),
        "{}",
        node.log_text()
    );
    assert!(wait_until(t, || !on_lo(&lab, "198.51.100.200")));
    assert!(wait_until(t, || listening(h, 8080)), "{}", node.log_text());

    // SIGTERM: the address goes before the process ends.
    h.signal(node.pid, libc::SIGTERM);
    assert!(h.wait_exit(node.pid, t).is_some(), "vrrplb did not stop");
    assert!(!on_lo(&lab, "198.51.100.201"), "SIGTERM left the address");
    assert!(node
        .log_text()
        .contains("announce web-vip 198.51.100.201/32: withdrawn (stopping)"));
}

/// `check` only warns about an interface this machine lacks (files are checked on build
/// hosts); `run` then keeps the address withdrawn, says why once, and retries quietly.
#[test]
fn an_announcement_on_a_missing_interface_stays_withdrawn_and_says_why_once() {
    if !require_root("announce_missing_interface") {
        return;
    }
    let lab = Lab::new(&[("lb", "198.51.100.11/24")]);
    let dir = TempDir::new("announce-if");
    std::fs::write(dir.join("healthy"), "").expect("flag");
    let cfg = config(&dir, "198.51.100.200").replace(
        "    frontends: [www]\n",
        "    interface: nosuch0\n    frontends: [www]\n",
    );
    let node = start(&lab, "lb", &dir, &cfg);
    let needle = "announce web-vip 198.51.100.200/32: withdrawn (cannot add the address to nosuch0";
    assert!(
        node.wait_log(needle, Duration::from_secs(5)),
        "{}",
        node.log_text()
    );
    // Three retries later: still one line, nothing listens, status says why.
    std::thread::sleep(Duration::from_millis(3200));
    assert_eq!(node.count_log(needle), 1, "{}", node.log_text());
    assert!(!listening(lab.host("lb"), 8080));
    let status = node.status();
    assert!(
        status.contains("withdrawn on nosuch0") && status.contains("nosuch0 not found"),
        "{status}"
    );
}

/// An IPv6 host address: added to `lo` as a /128 (no DAD to wait for), its frontend
/// listening on it, removed on SIGTERM.
#[test]
fn an_ipv6_address_is_announced_on_lo_and_served() {
    if !require_root("announce_ipv6") {
        return;
    }
    let lab = Lab::new(&[("lb", "198.51.100.11/24")]);
    let h = lab.host("lb");
    h.enable_ipv6("2001:db8::11/64");
    h.exec_ok(&["sysctl", "-qw", "net.ipv6.conf.lo.disable_ipv6=0"]);
    let dir = TempDir::new("announce-v6");
    std::fs::write(dir.join("healthy"), "").expect("flag");
    let cfg = config(&dir, "2001:db8::200")
        .replace("/32\n", "/128\n")
        .replace("\"0.0.0.0:8080\"", "\"[2001:db8::200]:8080\"")
        // A server that refuses at once, so the answer is quick.
        .replace("198.51.100.21:80", "127.0.0.1:9");
    let node = start(&lab, "lb", &dir, &cfg);
    let t = Duration::from_secs(5);
    let on_lo6 = || {
        let out = h.exec(&["ip", "-6", "-o", "addr", "show", "dev", "lo"]);
        String::from_utf8_lossy(&out.stdout).contains("2001:db8::200/128")
    };
    assert!(wait_until(t, on_lo6), "{}", node.log_text());
    assert!(
        node.wait_log("announce web-vip 2001:db8::200/128: announced on lo", t),
        "{}",
        node.log_text()
    );
    assert!(wait_until(t, || listening(h, 8080)));
    // The frontend answers on the address (its one server refuses: 503).
    let code = h.exec_ok(&[
        "curl",
        "-s",
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        "-m",
        "5",
        "-g",
        "http://[2001:db8::200]:8080/",
    ]);
    assert!(code == "503" || code == "502", "curl answered {code}");
    h.signal(node.pid, libc::SIGTERM);
    assert!(h.wait_exit(node.pid, t).is_some(), "vrrplb did not stop");
    assert!(!on_lo6(), "SIGTERM left the IPv6 address");
}
