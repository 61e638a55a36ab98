//! VRRPv3 (RFC 5798) at `advert_int: 100ms`, end to end with the real binary in namespaces:
//! the timers measured on the wire (tshark on the lab bridge, kernel timestamps) against the
//! RFC's formulas, a graceful stop, a preempting restart and a hard failure. Every figure is
//! printed.

mod common;

use common::*;
use std::time::{Duration, Instant};
use testkit::{require_root, require_tool, wait_until, Lab, TempDir};

const LB1_IP: &str = "198.51.100.11";
const LB2_IP: &str = "198.51.100.12";

/// RFC 5798 §6.1 at Master_Adver_Interval 100 ms, in ms.
fn skew_ms(priority: u8) -> f64 {
    (256.0 - f64::from(priority)) * 100.0 / 256.0
}

fn master_down_ms(priority: u8) -> f64 {
    300.0 + skew_ms(priority)
}

/// The pair config in VRRPv3 at 100 ms, the engine's thread at SCHED_RR 50 (keepalived's
/// advice for sub-second timers; this machine may be loaded by other work).
fn v3_config(node: &str, priority: u8) -> String {
    pair_config(node, priority, "", "")
        .replace(
            "    advert_int: 1\n",
            "    version: 3\n    advert_int: 100ms\n",
        )
        .replacen("global:\n", "global:\n  vrrp_realtime_priority: 50\n", 1)
}

/// The scheduling policy of the process's `vrrp-engine` thread, from `chrt -p`.
fn engine_policy(pid: u32) -> Option<String> {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).ok()?;
    for t in tasks.flatten() {
        let comm = std::fs::read_to_string(t.path().join("comm")).unwrap_or_default();
        if comm.trim() == "vrrp-engine" {
            let tid = t.file_name().to_string_lossy().into_owned();
            let out = std::process::Command::new("chrt")
                .args(["-p", &tid])
                .output()
                .ok()?;
            return Some(String::from_utf8_lossy(&out.stdout).into_owned());
        }
    }
    None
}

/// One advert as tshark decoded it.
#[derive(Debug, Clone)]
struct Seen {
    /// Seconds since the epoch (capture timestamp).
    t: f64,
    src: String,
    ttl: u8,
    version: u8,
    priority: u8,
    /// Centiseconds (tshark's `vrrp.short_adver_int`).
    interval: u16,
    checksum_good: bool,
}

fn read_capture(pcap: &std::path::Path) -> Vec<Seen> {
    let mut read = std::process::Command::new("tshark");
    read.args(["-r"]).arg(pcap).args([
        "-T",
        "fields",
        "-e",
        "frame.time_epoch",
        "-e",
        "ip.src",
        "-e",
        "ip.ttl",
        "-e",
        "vrrp.version",
        "-e",
        "vrrp.prio",
        "-e",
        "vrrp.short_adver_int",
        "-e",
        "vrrp.checksum.status",
    ]);
    let out = run_with_timeout(read, Duration::from_secs(30));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            Some(Seen {
                t: f.first()?.parse().ok()?,
                src: f.get(1)?.to_string(),
                ttl: f.get(2)?.parse().ok()?,
                version: f.get(3)?.parse().ok()?,
                priority: f.get(4)?.parse().ok()?,
                interval: f.get(5)?.parse().ok()?,
                checksum_good: *f.get(6)? == "1",
            })
        })
        .collect()
}

/// Gaps in ms between consecutive adverts of `src` with a non-zero priority in `[from, to)`.
fn gaps(seen: &[Seen], src: &str, from: f64, to: f64) -> Vec<f64> {
    let times: Vec<f64> = seen
        .iter()
        .filter(|s| s.src == src && s.priority > 0 && s.t >= from && s.t < to)
        .map(|s| s.t)
        .collect();
    times.windows(2).map(|w| (w[1] - w[0]) * 1000.0).collect()
}

fn logs(nodes: &[&Node]) -> String {
    nodes
        .iter()
        .map(|n| format!("---- {} log ----\n{}", n.host, n.log_text()))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn v3_pair_at_100ms_follows_rfc5798_timers_on_the_wire() {
    let test = "v3_pair_at_100ms";
    if !require_root(test) || !require_tool(test, "tshark") {
        return;
    }
    let lab = Lab::new(&[("lb1", "198.51.100.11/24"), ("lb2", "198.51.100.12/24")]);
    let dir = TempDir::new("vrrp-v3");
    let pcap = dir.join("adverts.pcap");
    let mut cap = lab.bridge_command("tshark");
    cap.args(["-i", "br0", "-f", "ip proto 112", "-a", "duration:12", "-w"])
        .arg(&pcap);
    let capture = std::thread::spawn(move || run_with_timeout(cap, Duration::from_secs(30)));
    // tshark creates the file when it starts capturing (seconds on a loaded machine).
    assert!(
        wait_until(Duration::from_secs(10), || pcap.exists()),
        "tshark did not start capturing"
    );
    std::thread::sleep(Duration::from_millis(300));
    let (cfg1, cfg2) = (v3_config("lb1", 101), v3_config("lb2", 100));

    // lb1 alone: MASTER after its Master_Down_Interval (0.36 s).
    let t0 = Instant::now();
    let n1 = start(&lab, "lb1", &dir, &cfg1);
    let took = wait_vip(lab.host("lb1"), t0, Duration::from_secs(3));
    println!("v3 100ms: lb1 alone holds the VIP after {took:?}");
    assert!(took.is_some(), "{}", n1.log_text());
    let policy = engine_policy(n1.pid).unwrap_or_default();
    println!(
        "v3 100ms: lb1's engine thread: {}",
        policy.replace('\n', "; ")
    );
    assert!(
        policy.contains("SCHED_RR") && policy.contains("priority: 50"),
        "engine thread not SCHED_RR 50: {policy:?}\n{}",
        n1.log_text()
    );
    let n2 = start(&lab, "lb2", &dir, &cfg2);
    assert!(
        n2.wait_log(
            "(VI_1) Entering BACKUP STATE (init)",
            Duration::from_secs(3)
        ),
        "{}",
        logs(&[&n1, &n2])
    );
    // Two seconds of steady state: lb2 stays BACKUP on lb1's 100 ms adverts.
    std::thread::sleep(Duration::from_secs(2));
    assert!(!lab.host("lb2").has_address(VIP), "{}", logs(&[&n1, &n2]));
    assert_eq!(n2.count_log("Entering MASTER"), 0, "{}", logs(&[&n1, &n2]));

    // Graceful stop: priority 0, lb2 takes over Skew_Time later.
    let t1 = Instant::now();
    lab.host("lb1").signal(n1.pid, libc::SIGTERM);
    let graceful = wait_vip(lab.host("lb2"), t1, Duration::from_secs(2));
    let exited = lab.host("lb1").wait_exit(n1.pid, Duration::from_secs(3));
    println!("v3 100ms graceful stop: lb2 holds the VIP after {graceful:?}, lb1 exit {exited:?}");
    assert!(graceful.is_some(), "{}", logs(&[&n1, &n2]));
    assert!(exited.is_some_and(|s| s.success()), "{exited:?}");
    std::thread::sleep(Duration::from_millis(700));

    // lb1 comes back and preempts (priority 101 > 100) after its Master_Down_Interval.
    let t2 = Instant::now();
    let n1 = start(&lab, "lb1", &dir, &cfg1);
    let back = wait_until(Duration::from_secs(3), || {
        lab.host("lb1").has_address(VIP) && !lab.host("lb2").has_address(VIP)
    })
    .then(|| t2.elapsed());
    println!("v3 100ms preempt: restarted lb1 is the only holder after {back:?}");
    assert!(back.is_some(), "{}", logs(&[&n1, &n2]));
    std::thread::sleep(Duration::from_millis(1500));

    // Hard failure: SIGKILL and link down together.
    let t3 = Instant::now();
    lab.host("lb1").signal(n1.pid, libc::SIGKILL);
    lab.host("lb1").link_down();
    let hard = wait_vip(lab.host("lb2"), t3, Duration::from_secs(2));
    let bound = Duration::from_secs_f64((master_down_ms(100) + 150.0) / 1000.0);
    println!("v3 100ms hard failure: lb2 holds the VIP {hard:?} after the kill (bound {bound:?})");
    assert!(
        hard.is_some_and(|t| t <= bound),
        "lb2 took {hard:?}, bound {bound:?}\n{}",
        logs(&[&n1, &n2])
    );

    let out = capture.join().expect("capture thread");
    let seen = read_capture(&pcap);
    assert!(
        seen.len() > 50,
        "too few adverts decoded ({}): {}",
        seen.len(),
        String::from_utf8_lossy(&out.stderr)
    );
    for s in &seen {
        assert!(
            s.version == 3 && s.ttl == 255 && s.interval == 10 && s.checksum_good,
            "advert not v3 / TTL 255 / 10 cs / good checksum: {s:?}"
        );
    }
    let t_zero = seen
        .iter()
        .find(|s| s.src == LB1_IP && s.priority == 0)
        .map(|s| s.t)
        .expect("lb1's priority-0 advert on the wire");
    let first_after = |src: &str, after: f64| {
        seen.iter()
            .find(|s| s.src == src && s.priority > 0 && s.t > after)
            .map(|s| s.t)
    };
    // The master's advert gaps before the graceful stop.
    let mut g = gaps(&seen, LB1_IP, 0.0, t_zero);
    assert!(g.len() >= 20, "only {} gaps", g.len());
    g.sort_by(f64::total_cmp);
    let (min, max) = (g[0], g[g.len() - 1]);
    let mean = g.iter().sum::<f64>() / g.len() as f64;
    println!(
        "v3 100ms: lb1 advert gaps n={} mean {mean:.2} ms min {min:.2} max {max:.2} (bound 100 ± 5)",
        g.len()
    );
    assert!(
        min >= 95.0 && max <= 105.0,
        "gaps outside 100 ± 5 ms: {g:?}"
    );

    // Graceful: lb2's first advert Skew_Time after the priority-0 one.
    let t_lb2 = first_after(LB2_IP, t_zero).expect("lb2 advert after priority 0");
    let skew = (t_lb2 - t_zero) * 1000.0;
    println!(
        "v3 100ms graceful: lb2's first advert {skew:.2} ms after lb1's priority 0 (Skew_Time {:.2} ± 3)",
        skew_ms(100)
    );
    assert!((skew - skew_ms(100)).abs() <= 3.0, "skew {skew:.2} ms");

    // Hard failure: lb2's first advert Master_Down_Interval after lb1's last one.
    let t_last = seen
        .iter()
        .rev()
        .find(|s| s.src == LB1_IP)
        .map(|s| s.t)
        .expect("lb1 adverts");
    let t_take = first_after(LB2_IP, t_last).expect("lb2 advert after lb1's last");
    let mdi = (t_take - t_last) * 1000.0;
    println!(
        "v3 100ms hard failure: lb2's first advert {mdi:.2} ms after lb1's last (Master_Down_Interval {:.2} ± 3)",
        master_down_ms(100)
    );
    assert!(
        (mdi - master_down_ms(100)).abs() <= 3.0,
        "Master_Down_Interval on the wire {mdi:.2} ms"
    );
    let mut g2 = gaps(&seen, LB2_IP, t_take, f64::MAX);
    g2.sort_by(f64::total_cmp);
    println!(
        "v3 100ms: lb2 advert gaps as new MASTER n={} max {:.2}",
        g2.len(),
        g2.last().copied().unwrap_or(0.0)
    );
    assert!(g2.iter().all(|g| (95.0..=105.0).contains(g)), "{g2:?}");
}
