//! The observability of the VRRP half, with real consumers, in network namespaces:
//! - systemd's notify protocol recorded on a fake NOTIFY_SOCKET: READY, RELOADING (with
//!   MONOTONIC_USEC) and READY around SIGHUP, STOPPING, and WATCHDOG pings that stop when the
//!   engine's loop is wedged (a hidden test hook parks it) while the process still answers;
//! - notify_fifo lines read from a real FIFO during a failover, in keepalived's format;
//! - the VRRP block of the stats page, and a README alert rule (`promtool test rules`) that
//!   fires on series scraped from two live boxes forced MASTER together (split brain) and
//!   stays quiet while they are healthy.

mod common;

use common::{pair_config, read_fifo, start, VIP};
use std::io::Write;
use std::net::SocketAddr;
use std::os::unix::net::UnixDatagram;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use testkit::{Lab, TempDir};

/// Messages received on a fake NOTIFY_SOCKET, with their arrival time.
fn record_notify(sock: UnixDatagram) -> Arc<Mutex<Vec<(Instant, String)>>> {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s2 = seen.clone();
    let _ = sock.set_read_timeout(Some(Duration::from_millis(200)));
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        let deadline = Instant::now() + Duration::from_secs(120);
        while Instant::now() < deadline {
            if let Ok(n) = sock.recv(&mut buf) {
                let msg = String::from_utf8_lossy(&buf[..n]).into_owned();
                s2.lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push((Instant::now(), msg));
            }
        }
    });
    seen
}

fn messages(seen: &Arc<Mutex<Vec<(Instant, String)>>>) -> Vec<(Instant, String)> {
    seen.lock().unwrap_or_else(|e| e.into_inner()).clone()
}

fn control(sock: &std::path::Path, command: &str) -> String {
    use std::io::Read;
    let Ok(mut s) = std::os::unix::net::UnixStream::connect(sock) else {
        return String::new();
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
    let _ = s.write_all(format!("{command}\n").as_bytes());
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out
}

#[test]
fn systemd_ready_reload_stop_and_watchdog_stops_when_the_engine_wedges() {
    let test = "systemd_ready_reload_stop_and_watchdog_stops_when_the_engine_wedges";
    if !testkit::require_root(test) {
        return;
    }
    let lab = Lab::new(&[("lb1", "198.51.100.11/24")]);
    let dir = TempDir::new("sd-notify");
    let notify_path = dir.join("notify.sock");
    let recorder = UnixDatagram::bind(&notify_path).expect("bind fake NOTIFY_SOCKET");
    let seen = record_notify(recorder);
    let cfg_path = dir.join("lb1.yaml");
    let ctl = dir.join("lb1.sock");
    std::fs::write(
        &cfg_path,
        pair_config("lb1", 100, "", "").replacen(
            "global:\n",
            &format!(
                "global:\n  control_socket: {}\n  stats: {{ bind: \"127.0.0.1:8404\" }}\n",
                ctl.display()
            ),
            1,
        ),
    )
    .expect("config");
    let log = dir.join("lb1.log");
    let h = lab.host("lb1");
    let mut cmd = h.command(common::BIN);
    cmd.args(["run", "-c"])
        .arg(&cfg_path)
        .env("NOTIFY_SOCKET", &notify_path)
        .env("WATCHDOG_USEC", "3000000")
        .env("VRRPLB_TEST_HOOKS", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::from(std::fs::File::create(&log).expect("log")));
    let pid = h.spawn(cmd);
    let log_text = || std::fs::read_to_string(&log).unwrap_or_default();
    let has = |m: &str| messages(&seen).iter().any(|(_, x)| x.contains(m));
    assert!(
        testkit::wait_until(Duration::from_secs(10), || has("READY=1")),
        "no READY=1: {:?}\n{}",
        messages(&seen),
        log_text()
    );
    // WatchdogSec 3 s: a ping every second while the engine turns.
    assert!(testkit::wait_until(Duration::from_secs(5), || messages(
        &seen
    )
    .iter()
    .filter(|(_, m)| m == "WATCHDOG=1")
    .count()
        >= 3));

    h.signal(pid, libc::SIGHUP);
    assert!(
        testkit::wait_until(Duration::from_secs(5), || {
            let m = messages(&seen);
            let r = m
                .iter()
                .position(|(_, x)| x.starts_with("RELOADING=1\nMONOTONIC_USEC="));
            r.is_some_and(|r| m[r + 1..].iter().any(|(_, x)| x.starts_with("READY=1")))
        }),
        "no RELOADING=1 + MONOTONIC_USEC then READY=1: {:?}",
        messages(&seen)
    );

    // Wedge the engine's loop; the rest of the process keeps working.
    assert_eq!(control(&ctl, "debug stall-vrrp"), "ok\n");
    let stalled = Instant::now();
    std::thread::sleep(Duration::from_secs(7));
    let pings: Vec<Instant> = messages(&seen)
        .iter()
        .filter(|(_, m)| m == "WATCHDOG=1")
        .map(|(t, _)| *t)
        .collect();
    let last = pings.last().copied().expect("pings");
    let quiet = last.saturating_duration_since(stalled);
    println!(
        "watchdog: {} pings; the last {:?} after the stall (limit: 3 heartbeats = 3 s + one 1 s ping period), none in the {:?} since",
        pings.len(),
        quiet,
        last.elapsed()
    );
    assert!(
        quiet < Duration::from_millis(4500),
        "pings went on {quiet:?} after the engine wedged"
    );
    assert!(last.elapsed() > Duration::from_millis(2000));
    assert!(
        log_text().contains("no more systemd watchdog pings"),
        "{}",
        log_text()
    );
    let status = control(&ctl, "status");
    assert!(
        status.contains("instance VI_1"),
        "process still answers: {status}"
    );

    h.signal(pid, libc::SIGTERM);
    assert!(
        testkit::wait_until(Duration::from_secs(10), || has("STOPPING=1")),
        "{:?}",
        messages(&seen)
    );
    let _ = h.wait_exit(pid, Duration::from_secs(10));
}

fn scrape(lab: &Lab, host: &str, path: &'static str) -> String {
    lab.host(host).run_in(move || {
        common::http_get(SocketAddr::from(([127, 0, 0, 1], 8404)), path, "")
            .map(|(_, b)| b)
            .unwrap_or_default()
    })
}

const RULES: &str = include_str!("../deploy/examples/vrrplb-alerts.yml");

/// `promtool test rules` over the two boxes' keepalived_vrrp_state series as scraped:
/// whether VRRPSplitBrain and VRRPNoMaster fire.
fn alerts_fire(dir: &TempDir, tag: &str, scrapes: &[(&str, String)]) -> (bool, bool) {
    let mut series = String::new();
    for (host, metrics) in scrapes {
        for line in metrics
            .lines()
            .filter(|l| l.starts_with("keepalived_vrrp_state{"))
        {
            let (name_labels, value) = line.rsplit_once(' ').expect("sample");
            let labels = name_labels.replacen('{', &format!("{{instance=\"{host}\","), 1);
            series.push_str(&format!(
                "      - series: '{labels}'\n        values: '{value}x10'\n"
            ));
        }
    }
    assert!(!series.is_empty(), "no keepalived_vrrp_state: {scrapes:?}");
    std::fs::write(dir.join("rules.yml"), RULES).expect("rules");
    let mut verdicts = (false, false);
    for (i, alert) in ["VRRPSplitBrain", "VRRPNoMaster"].iter().enumerate() {
        let summary = if i == 0 {
            format!("{VIP}/24 (VI_1) is MASTER on more than one box")
        } else {
            format!("no box is MASTER for {VIP}/24 (VI_1)")
        };
        // promtool passes only when the alert fires with exactly these labels.
        let file = dir.join(&format!("{tag}-{alert}.yml"));
        std::fs::write(
            &file,
            format!(
                "rule_files: [rules.yml]\nevaluation_interval: 15s\ntests:\n  - interval: 15s\n    input_series:\n{series}    alert_rule_test:\n      - eval_time: 2m\n        alertname: {alert}\n        exp_alerts:\n          - exp_labels: {{ severity: critical, iname: VI_1, vrid: \"51\", ip_address: \"{VIP}/24\" }}\n            exp_annotations: {{ summary: \"{summary}\" }}\n"
            ),
        )
        .expect("test file");
        let out = Command::new("promtool")
            .current_dir(dir.path())
            .args(["test", "rules"])
            .arg(&file)
            .output()
            .expect("promtool");
        let fired = out.status.success();
        println!(
            "{tag}: {alert} {}",
            if fired { "fires" } else { "does not fire" }
        );
        if i == 0 {
            verdicts.0 = fired;
        } else {
            verdicts.1 = fired;
        }
    }
    verdicts
}

#[test]
fn fifo_stats_block_and_split_brain_alert_on_a_live_pair() {
    let test = "fifo_stats_block_and_split_brain_alert_on_a_live_pair";
    if !testkit::require_root(test)
        || !testkit::require_tool(test, "promtool")
        || !testkit::require_tool(test, "nft")
    {
        return;
    }
    let lab = Lab::new(&[("lb1", "198.51.100.11/24"), ("lb2", "198.51.100.12/24")]);
    let dir = TempDir::new("observe-pair");
    let fifo = dir.join("lb2.fifo");
    let cfg = |node: &str, prio: u8, fifo: Option<&std::path::Path>| {
        let extra = fifo
            .map(|f| format!("  notify_fifo: {}\n", f.display()))
            .unwrap_or_default();
        pair_config(node, prio, "", "").replacen(
            "global:\n",
            &format!("global:\n{extra}  stats: {{ bind: \"127.0.0.1:8404\" }}\n"),
            1,
        )
    };
    let n1 = start(&lab, "lb1", &dir, &cfg("lb1", 101, None));
    assert!(
        common::wait_vip(lab.host("lb1"), Instant::now(), Duration::from_secs(10)).is_some(),
        "{}",
        n1.log_text()
    );
    // A consumer's FIFO, open for reading before lb2 starts (lb2 would create a missing one,
    // but lines written while nobody reads are dropped, by design).
    let made = Command::new("mkfifo").arg(&fifo).status().expect("mkfifo");
    assert!(made.success());
    let lines = read_fifo(fifo.clone());
    std::thread::sleep(Duration::from_millis(100));
    let n2 = start(&lab, "lb2", &dir, &cfg("lb2", 100, Some(&fifo)));
    assert!(testkit::wait_until(Duration::from_secs(10), || n2
        .last_state()
        .as_deref()
        == Some("BACKUP")));

    // Healthy pair: the page's VRRP block and JSON name the states; no alert fires.
    let mut json = serde_json::Value::Null;
    assert!(testkit::wait_until(Duration::from_secs(5), || {
        json = serde_json::from_str(&scrape(&lab, "lb2", "/stats;json")).unwrap_or_default();
        json["vrrp"][0]["adverts_received"].as_u64().unwrap_or(0) > 0
    }));
    assert_eq!(json["vrrp"][0]["state"], "BACKUP");
    assert_eq!(json["vrrp"][0]["master"], "198.51.100.11", "{json}");
    assert_eq!(json["vrrp"][0]["base_priority"], 100);
    assert!(json["vrrp"][0]["adverts_received"].as_u64().unwrap_or(0) > 0);
    let page = scrape(&lab, "lb1", "/stats");
    assert!(
        page.contains("id=\"vrrp-VI_1\"") && page.contains("<b>MASTER</b>"),
        "{page}"
    );
    let healthy = [
        ("lb1", scrape(&lab, "lb1", "/metrics")),
        ("lb2", scrape(&lab, "lb2", "/metrics")),
    ];
    assert_eq!(
        alerts_fire(&dir, "healthy", &healthy),
        (false, false),
        "alerts on a healthy pair"
    );

    // Split brain: lb2 stops hearing lb1's adverts and becomes MASTER too.
    lab.host("lb2").exec_ok(&[
        "nft",
        "add table inet observe_t; add chain inet observe_t in { type filter hook input priority 0; }; add rule inet observe_t in ip protocol vrrp drop",
    ]);
    assert!(
        testkit::wait_until(Duration::from_secs(10), || n2.last_state().as_deref()
            == Some("MASTER")),
        "{}",
        n2.log_text()
    );
    assert_eq!(n1.last_state().as_deref(), Some("MASTER"));
    let split = [
        ("lb1", scrape(&lab, "lb1", "/metrics")),
        ("lb2", scrape(&lab, "lb2", "/metrics")),
    ];
    assert_eq!(
        alerts_fire(&dir, "split", &split),
        (true, false),
        "split brain must fire VRRPSplitBrain only"
    );

    // Heal; lb2 goes back to BACKUP. Then a failover: lb1 stops, lb2 takes over.
    lab.host("lb2")
        .exec_ok(&["nft", "delete table inet observe_t"]);
    assert!(testkit::wait_until(Duration::from_secs(10), || n2
        .last_state()
        .as_deref()
        == Some("BACKUP")));
    lab.host("lb1").signal(n1.pid, libc::SIGTERM);
    assert!(testkit::wait_until(Duration::from_secs(10), || n2
        .last_state()
        .as_deref()
        == Some("MASTER")));
    lab.host("lb2").signal(n2.pid, libc::SIGTERM);
    let _ = lab.host("lb2").wait_exit(n2.pid, Duration::from_secs(10));
    let expected = [
        "INSTANCE \"VI_1\" BACKUP 100",
        "INSTANCE \"VI_1\" MASTER 100",
        "INSTANCE \"VI_1\" BACKUP 100",
        "INSTANCE \"VI_1\" MASTER 100",
        "INSTANCE \"VI_1\" STOP 100",
    ];
    assert!(
        testkit::wait_until(Duration::from_secs(5), || lines
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .len()
            >= expected.len()),
        "{:?}",
        lines.lock().unwrap_or_else(|e| e.into_inner())
    );
    let got = lines.lock().unwrap_or_else(|e| e.into_inner()).clone();
    println!("notify_fifo lines: {got:?}");
    assert_eq!(got, expected);
}
