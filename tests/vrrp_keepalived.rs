//! VRRP interop with a real keepalived 2.2 (vrrp.md §12, §13): one keepalived and one vrrplb
//! share VRID 51 in a lab, in VRRPv2 with and without PASS authentication and in VRRPv3 at
//! 100 ms over IPv4 and over IPv6, each side in turn as Master; hard (SIGKILL) and graceful
//! (SIGTERM) failover both ways within the RFC bounds, and neither side complains about the
//! other's adverts.

mod common;

use common::*;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};
use testkit::{require_root, Host, Lab, TempDir};

const KEEPALIVED: &str = "/usr/sbin/keepalived";
const PASSWORD: &str = "xyz";
/// Host addresses: keepalived on .11, vrrplb on .12 (and ::11, ::12 in IPv6 tests).
const KA: (&str, &str) = ("ka", "198.51.100.11/24");
const LB: (&str, &str) = ("lb", "198.51.100.12/24");
/// The VIP of the IPv6 tests.
const VIP6: &str = "2001:db8:51::100";

/// keepalived's complaints about a received advert (vrrp.md §11, "bad adverts"), and vrrplb's
/// drop lines (they carry a `drop_reason` field; silent drops log "dropped advert").
const COMPLAINTS: &[&str] = &[
    "invalid",
    "wrong",
    "mismatch",
    "checksum",
    "unexpected ip number count",
    "not present in MASTER advert",
    "auth, expecting",
    "drop_reason",
    "dropped advert",
];

fn complaints(log: &str) -> Vec<&str> {
    log.lines()
        .filter(|l| {
            let lower = l.to_ascii_lowercase();
            COMPLAINTS
                .iter()
                .any(|c| lower.contains(&c.to_ascii_lowercase()))
        })
        .collect()
}

/// A keepalived (VRRP subsystem only, foreground, console log) running in a lab host.
struct Keepalived {
    /// The parent process (the one we spawned).
    pid: u32,
    /// Where its VRRP child writes its PID.
    vrrp_pidfile: PathBuf,
    log: PathBuf,
}

/// The protocol both sides speak in a test.
#[derive(Debug, Clone, Copy)]
struct Proto {
    /// VRRPv3 at 100 ms (no authentication); otherwise VRRPv2 at 1 s.
    v3: bool,
    auth: Option<&'static str>,
    /// VRRPv3 over IPv6: the VIP is [`VIP6`], adverts go from link-local addresses.
    v6: bool,
}

const V3: Proto = Proto {
    v3: true,
    auth: None,
    v6: false,
};

const V3_IPV6: Proto = Proto { v6: true, ..V3 };

fn v2(auth: Option<&'static str>) -> Proto {
    Proto {
        v3: false,
        auth,
        v6: false,
    }
}

impl Proto {
    /// keepalived.conf lines for the version, interval and authentication.
    fn keepalived_lines(self) -> String {
        if self.v3 {
            return "    version 3\n    advert_int 0.1\n".into();
        }
        let auth_block = self.auth.map_or(String::new(), |p| {
            format!(
                "    authentication {{\n        auth_type PASS\n        auth_pass {p}\n    }}\n"
            )
        });
        format!("    advert_int 1\n{auth_block}")
    }

    fn vip(self) -> &'static str {
        if self.v6 {
            VIP6
        } else {
            VIP
        }
    }

    /// The VIP with its prefix length, as both configs write it.
    fn vip_cidr(self) -> String {
        if self.v6 {
            format!("{VIP6}/64")
        } else {
            format!("{VIP}/24")
        }
    }

    /// Waits until `h` holds the VIP; the time from `since`.
    fn wait_vip(self, h: &Host, since: Instant, timeout: Duration) -> Option<Duration> {
        testkit::wait_until(timeout, || h.has_address(self.vip())).then(|| since.elapsed())
    }

    fn wait_no_vip(self, h: &Host, timeout: Duration) -> bool {
        testkit::wait_until(timeout, || !h.has_address(self.vip()))
    }

    /// The address `h`'s adverts come from (and log lines name): its IPv4 address, or its
    /// IPv6 link-local one.
    fn advert_source(self, h: &Host) -> String {
        if self.v6 {
            h.link_local().expect("IPv6 link-local address")
        } else {
            h.ip().to_owned()
        }
    }

    /// Makes a lab of keepalived and vrrplb hosts, with IPv6 on for the IPv6 tests.
    fn lab(self) -> Lab {
        let lab = Lab::new(&[KA, LB]);
        if self.v6 {
            lab.host("ka").enable_ipv6("2001:db8:51::11/64");
            lab.host("lb").enable_ipv6("2001:db8:51::12/64");
        }
        lab
    }

    fn vrrplb_config(self, priority: u8) -> String {
        let mut c = vrrplb_config(priority, self.auth);
        if self.v6 {
            c = c.replace(&format!("[{VIP}/24]"), &format!("[\"{VIP6}/64\"]"));
        }
        if self.v3 {
            // Sub-second timers want the engine on a realtime thread (keepalived's advice).
            c.replace(
                "    advert_int: 1\n",
                "    version: 3\n    advert_int: 100ms\n",
            )
            .replacen("global:\n", "global:\n  vrrp_realtime_priority: 50\n", 1)
        } else {
            c
        }
    }

    /// Master_Down_Interval (RFC 3768 at 1 s, RFC 5798 at 100 ms).
    fn master_down(self, priority: u8) -> Duration {
        if self.v3 {
            Duration::from_millis(300) + self.skew(priority)
        } else {
            master_down(priority)
        }
    }

    fn skew(self, priority: u8) -> Duration {
        if self.v3 {
            Duration::from_micros((256 - u64::from(priority)) * 100_000 / 256)
        } else {
            skew(priority)
        }
    }

    fn label(self) -> &'static str {
        match (self.v3, self.auth) {
            (true, _) if self.v6 => "VRRPv3 100 ms over IPv6",
            (true, _) => "VRRPv3 100 ms",
            (false, Some(_)) => "auth PASS",
            (false, None) => "no auth",
        }
    }
}

impl Keepalived {
    fn start(h: &Host, dir: &TempDir, run: &str, priority: u8, proto: Proto) -> Keepalived {
        let lines = proto.keepalived_lines();
        // keepalived's own advice for sub-second timers: a realtime VRRP process.
        let rt = if proto.v3 {
            "    vrrp_rt_priority 50\n"
        } else {
            ""
        };
        let conf = format!(
            "global_defs {{\n    router_id {run}\n{rt}}}\n\
             vrrp_instance VI_1 {{\n    interface eth0\n    state BACKUP\n    virtual_router_id 51\n    \
             priority {priority}\n{lines}    virtual_ipaddress {{\n        {}\n    }}\n}}\n",
            proto.vip_cidr()
        );
        let conf_path = dir.join(&format!("{run}.conf"));
        std::fs::write(&conf_path, conf).expect("write keepalived.conf");
        let log = dir.join(&format!("{run}.log"));
        let out = std::fs::File::create(&log).expect("keepalived log file");
        let err = out.try_clone().expect("dup log file");
        let pidfile = |n: &str| dir.join(&format!("{run}.{n}.pid"));
        let vrrp_pidfile = pidfile("vrrp");
        let mut cmd = h.command(KEEPALIVED);
        cmd.args(["-P", "-n", "-l", "-D", "-G", "-f"])
            .arg(&conf_path)
            .arg("-p")
            .arg(pidfile("main"))
            .arg("-r")
            .arg(&vrrp_pidfile)
            .arg("-c")
            .arg(pidfile("checkers"))
            .stdin(Stdio::null())
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(err));
        let pid = h.spawn(cmd);
        Keepalived {
            pid,
            vrrp_pidfile,
            log,
        }
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn wait_log(&self, needle: &str, timeout: Duration) -> bool {
        testkit::wait_until(timeout, || self.log_text().contains(needle))
    }

    fn vrrp_pid(&self) -> Option<u32> {
        let mut pid = None;
        testkit::wait_until(Duration::from_secs(5), || {
            pid = std::fs::read_to_string(&self.vrrp_pidfile)
                .ok()
                .and_then(|s| s.trim().parse().ok());
            pid.is_some()
        });
        pid
    }

    /// SIGKILL without any goodbye: freeze the parent (so it neither respawns the child nor
    /// lets it see its parent die), kill the VRRP child, then the parent.
    fn kill_hard(&self, h: &Host) {
        let child = self.vrrp_pid().expect("keepalived VRRP child pid");
        h.signal(self.pid, Signal::SIGSTOP as i32);
        // The VRRP child of the keepalived we started, by PID.
        let _ = kill(Pid::from_raw(child as i32), Signal::SIGKILL);
        h.signal(self.pid, Signal::SIGKILL as i32);
        h.wait_exit(self.pid, Duration::from_secs(5));
    }

    /// Orderly stop: keepalived's Master sends a priority-0 advert and removes its VIPs.
    fn stop(&self, h: &Host) {
        h.signal(self.pid, Signal::SIGTERM as i32);
    }
}

/// Deletes the VIP a killed daemon left on `h` (the clean-up a real operator or the next start
/// would do), so the next step starts from a clean interface.
fn remove_left_vip(h: &Host, p: Proto) {
    let out = h.exec(&["ip", "addr", "del", &p.vip_cidr(), "dev", "eth0"]);
    println!(
        "  removed the VIP left on {} by the killed daemon: {}",
        h.name,
        if out.status.success() {
            "ok"
        } else {
            "was not there"
        }
    );
}

fn vrrplb_config(priority: u8, auth: Option<&str>) -> String {
    let extra = auth.map_or(String::new(), |p| {
        format!("    authentication: {{ auth_type: PASS, auth_pass: \"{p}\" }}\n")
    });
    pair_config("lb", priority, &extra, "")
}

fn assert_within(what: &str, took: Option<Duration>, bound: Duration, logs: &[(&str, String)]) {
    println!("  {what}: {took:?} (bound {bound:?})");
    if took.is_none_or(|t| t > bound) {
        let mut msg = format!("{what}: took {took:?}, bound {bound:?}\n");
        for (name, text) in logs {
            msg.push_str(&format!("--- {name} ---\n{text}\n"));
        }
        panic!("{msg}");
    }
}

fn assert_no_complaints(name: &str, log: &str) {
    let found = complaints(log);
    assert!(
        found.is_empty(),
        "{name} complained about the other side's adverts:\n{}\n--- full log ---\n{log}",
        found.join("\n")
    );
}

/// keepalived (101) is Master, vrrplb (100) Backup. vrrplb must stay Backup on keepalived's
/// adverts, take over after SIGKILL within Master_Down_Interval, hand the VIP back when
/// keepalived returns (keepalived must accept our adverts: it discards them as lower priority),
/// and take over after keepalived's priority-0 advert within Skew_Time.
fn keepalived_master_vrrplb_backup(p: Proto) {
    let lab = p.lab();
    let dir = TempDir::new("ka-master");
    let (ka, lb) = (lab.host("ka"), lab.host("lb"));
    println!(
        "keepalived master (101), vrrplb backup (100), {}:",
        p.label()
    );

    let t0 = Instant::now();
    let k1 = Keepalived::start(ka, &dir, "ka1", 101, p);
    let took = p.wait_vip(ka, t0, p.master_down(101) + Duration::from_secs(3));
    assert_within(
        "keepalived alone becomes Master",
        took,
        p.master_down(101) + Duration::from_secs(2),
        &[("keepalived", k1.log_text())],
    );

    let node = start(&lab, "lb", &dir, &p.vrrplb_config(100));
    assert!(
        node.wait_log(
            "(VI_1) Entering BACKUP STATE (init)",
            Duration::from_secs(5)
        ),
        "{}",
        node.log_text()
    );
    // Longer than vrrplb's Master_Down_Interval: keepalived's adverts must keep it Backup.
    std::thread::sleep(p.master_down(100) + Duration::from_millis(1500));
    assert!(
        !lb.has_address(p.vip()),
        "vrrplb took the VIP from a live keepalived Master:\n{}",
        node.log_text()
    );
    assert_eq!(
        node.count_log("Entering MASTER STATE"),
        0,
        "{}",
        node.log_text()
    );
    assert!(
        ka.has_address(p.vip()),
        "keepalived lost the VIP:\n{}",
        k1.log_text()
    );

    // Hard failure of keepalived: vrrplb takes over within Master_Down_Interval.
    let t_kill = Instant::now();
    k1.kill_hard(ka);
    let bound = p.master_down(100) + Duration::from_millis(500);
    let took = p.wait_vip(lb, t_kill, bound + Duration::from_secs(2));
    assert_within(
        "SIGKILL keepalived -> vrrplb Master",
        took,
        bound,
        &[("vrrplb", node.log_text()), ("keepalived", k1.log_text())],
    );
    remove_left_vip(ka, p);

    // keepalived comes back with the higher priority and preempts us: it must accept our
    // adverts (it logs them as lower priority and discards them) and we must yield to its.
    let t_back = Instant::now();
    let k2 = Keepalived::start(ka, &dir, "ka2", 101, p);
    let took = p.wait_vip(ka, t_back, p.master_down(101) + Duration::from_secs(3));
    assert_within(
        "restarted keepalived (101) preempts vrrplb",
        took,
        p.master_down(101) + Duration::from_secs(2),
        &[("vrrplb", node.log_text()), ("keepalived", k2.log_text())],
    );
    assert!(
        p.wait_no_vip(lb, Duration::from_secs(2)),
        "vrrplb kept the VIP after keepalived preempted:\n{}",
        node.log_text()
    );
    assert!(
        node.wait_log(
            &format!(
                "(VI_1) Master received advert from {} with higher priority 101, ours 100",
                p.advert_source(ka)
            ),
            Duration::from_secs(2)
        ),
        "{}",
        node.log_text()
    );
    assert!(
        k2.log_text().contains(&format!(
            "(VI_1) received lower priority (100) advert from {} - discarding",
            p.advert_source(lb)
        )),
        "keepalived never accepted vrrplb's adverts as valid:\n{}",
        k2.log_text()
    );

    // Graceful stop of keepalived: its priority-0 advert hands over within Skew_Time.
    std::thread::sleep(Duration::from_millis(1500));
    let t_term = Instant::now();
    k2.stop(ka);
    let bound = p.skew(100) + Duration::from_millis(500);
    let took = p.wait_vip(lb, t_term, bound + Duration::from_secs(3));
    assert_within(
        "SIGTERM keepalived -> vrrplb Master",
        took,
        bound,
        &[("vrrplb", node.log_text()), ("keepalived", k2.log_text())],
    );
    assert!(
        node.log_text()
            .contains("(VI_1) Backup received priority 0 advertisement"),
        "{}",
        node.log_text()
    );
    assert!(
        ka.wait_exit(k2.pid, Duration::from_secs(5)).is_some(),
        "keepalived did not exit on SIGTERM"
    );
    assert!(
        !ka.has_address(p.vip()),
        "keepalived left its VIP after a graceful stop"
    );

    assert_no_complaints("keepalived (1st run)", &k1.log_text());
    assert_no_complaints("keepalived (2nd run)", &k2.log_text());
    assert_no_complaints("vrrplb", &node.log_text());
}

/// vrrplb (101) is Master, keepalived (100) Backup. keepalived must stay Backup on our adverts
/// (the proof that it accepts them), take over after SIGKILL within Master_Down_Interval, yield
/// when vrrplb returns, and take over after our priority-0 advert within Skew_Time.
fn vrrplb_master_keepalived_backup(p: Proto) {
    let lab = p.lab();
    let dir = TempDir::new("lb-master");
    let (ka, lb) = (lab.host("ka"), lab.host("lb"));
    println!(
        "vrrplb master (101), keepalived backup (100), {}:",
        p.label()
    );

    let t0 = Instant::now();
    let n1 = start(&lab, "lb", &dir, &p.vrrplb_config(101));
    let took = p.wait_vip(lb, t0, p.master_down(101) + Duration::from_secs(3));
    assert_within(
        "vrrplb alone becomes Master",
        took,
        p.master_down(101) + Duration::from_secs(1),
        &[("vrrplb", n1.log_text())],
    );

    let k = Keepalived::start(ka, &dir, "ka", 100, p);
    assert!(
        k.wait_log("(VI_1) Entering BACKUP STATE", Duration::from_secs(5)),
        "{}",
        k.log_text()
    );
    // Longer than keepalived's Master_Down_Interval: our adverts must keep it Backup.
    std::thread::sleep(p.master_down(100) + Duration::from_millis(1500));
    assert!(
        !ka.has_address(p.vip()),
        "keepalived took the VIP from a live vrrplb Master:\n{}",
        k.log_text()
    );
    assert!(
        !k.log_text().contains("Entering MASTER STATE"),
        "{}",
        k.log_text()
    );
    assert!(
        lb.has_address(p.vip()),
        "vrrplb lost the VIP:\n{}",
        n1.log_text()
    );

    // Hard failure of vrrplb: keepalived takes over within Master_Down_Interval.
    let t_kill = Instant::now();
    lb.signal(n1.pid, Signal::SIGKILL as i32);
    let bound = p.master_down(100) + Duration::from_millis(500);
    let took = p.wait_vip(ka, t_kill, bound + Duration::from_secs(2));
    assert_within(
        "SIGKILL vrrplb -> keepalived Master",
        took,
        bound,
        &[("keepalived", k.log_text()), ("vrrplb", n1.log_text())],
    );
    lb.wait_exit(n1.pid, Duration::from_secs(5));
    remove_left_vip(lb, p);

    // vrrplb comes back with the higher priority and preempts keepalived.
    let before = n1.count_log("Entering MASTER STATE");
    let t_back = Instant::now();
    let n2 = start(&lab, "lb", &dir, &p.vrrplb_config(101));
    let took = p.wait_vip(lb, t_back, p.master_down(101) + Duration::from_secs(3));
    assert_within(
        "restarted vrrplb (101) preempts keepalived",
        took,
        p.master_down(101) + Duration::from_secs(1),
        &[("vrrplb", n2.log_text()), ("keepalived", k.log_text())],
    );
    assert!(
        p.wait_no_vip(ka, Duration::from_secs(2)),
        "keepalived kept the VIP after vrrplb preempted:\n{}",
        k.log_text()
    );
    assert!(
        k.wait_log(
            &format!(
                "(VI_1) Master received advert from {} with higher priority 101, ours 100",
                p.advert_source(lb)
            ),
            Duration::from_secs(2)
        ),
        "{}",
        k.log_text()
    );
    assert!(
        n2.log_text().contains(&format!(
            "(VI_1) received lower priority (100) advert from {} - discarding",
            p.advert_source(ka)
        )),
        "vrrplb never accepted keepalived's adverts as valid:\n{}",
        n2.log_text()
    );
    assert_eq!(
        n2.count_log("Entering MASTER STATE"),
        before + 1,
        "{}",
        n2.log_text()
    );

    // Graceful stop of vrrplb: our priority-0 advert hands over within keepalived's Skew_Time.
    std::thread::sleep(Duration::from_millis(1500));
    let t_term = Instant::now();
    lb.signal(n2.pid, Signal::SIGTERM as i32);
    let bound = p.skew(100) + Duration::from_millis(500);
    let took = p.wait_vip(ka, t_term, bound + Duration::from_secs(3));
    assert_within(
        "SIGTERM vrrplb -> keepalived Master",
        took,
        bound,
        &[("keepalived", k.log_text()), ("vrrplb", n2.log_text())],
    );
    assert!(
        k.log_text()
            .contains("(VI_1) Backup received priority 0 advertisement"),
        "{}",
        k.log_text()
    );
    assert!(
        lb.wait_exit(n2.pid, Duration::from_secs(5)).is_some(),
        "vrrplb did not exit on SIGTERM"
    );
    assert!(
        !lb.has_address(p.vip()),
        "vrrplb left its VIP after a graceful stop"
    );

    assert_no_complaints("keepalived", &k.log_text());
    assert_no_complaints("vrrplb", &n2.log_text());
}

fn have_keepalived(test: &str) -> bool {
    require_root(test)
        && (Path::new(KEEPALIVED).exists() || testkit::require_tool(test, "keepalived"))
}

#[test]
fn keepalived_master_vrrplb_backup_without_auth() {
    if have_keepalived("keepalived_master_vrrplb_backup_without_auth") {
        keepalived_master_vrrplb_backup(v2(None));
    }
}

#[test]
fn keepalived_master_vrrplb_backup_with_auth_pass() {
    if have_keepalived("keepalived_master_vrrplb_backup_with_auth_pass") {
        keepalived_master_vrrplb_backup(v2(Some(PASSWORD)));
    }
}

#[test]
fn vrrplb_master_keepalived_backup_without_auth() {
    if have_keepalived("vrrplb_master_keepalived_backup_without_auth") {
        vrrplb_master_keepalived_backup(v2(None));
    }
}

#[test]
fn vrrplb_master_keepalived_backup_with_auth_pass() {
    if have_keepalived("vrrplb_master_keepalived_backup_with_auth_pass") {
        vrrplb_master_keepalived_backup(v2(Some(PASSWORD)));
    }
}

#[test]
fn keepalived_master_vrrplb_backup_in_v3_at_100ms() {
    if have_keepalived("keepalived_master_vrrplb_backup_in_v3_at_100ms") {
        keepalived_master_vrrplb_backup(V3);
    }
}

#[test]
fn vrrplb_master_keepalived_backup_in_v3_at_100ms() {
    if have_keepalived("vrrplb_master_keepalived_backup_in_v3_at_100ms") {
        vrrplb_master_keepalived_backup(V3);
    }
}

#[test]
fn keepalived_master_vrrplb_backup_in_v3_over_ipv6() {
    if have_keepalived("keepalived_master_vrrplb_backup_in_v3_over_ipv6") {
        keepalived_master_vrrplb_backup(V3_IPV6);
    }
}

#[test]
fn vrrplb_master_keepalived_backup_in_v3_over_ipv6() {
    if have_keepalived("vrrplb_master_keepalived_backup_in_v3_over_ipv6") {
        vrrplb_master_keepalived_backup(V3_IPV6);
    }
}

/// The control for the log checks above: with different passwords each side drops the other's
/// adverts, says so in the words the checks look for, and both end up Master (vrrp.md §12.3).
#[test]
fn mismatched_password_is_reported_by_both_sides() {
    if !have_keepalived("mismatched_password_is_reported_by_both_sides") {
        return;
    }
    let lab = Lab::new(&[KA, LB]);
    let dir = TempDir::new("ka-badpass");
    let (ka, lb) = (lab.host("ka"), lab.host("lb"));
    let t0 = Instant::now();
    let node = start(&lab, "lb", &dir, &vrrplb_config(101, Some("abc")));
    assert!(
        wait_vip(lb, t0, master_down(101) + Duration::from_secs(3)).is_some(),
        "{}",
        node.log_text()
    );
    let t1 = Instant::now();
    let k = Keepalived::start(ka, &dir, "ka", 100, v2(Some(PASSWORD)));
    let took = wait_vip(ka, t1, master_down(100) + Duration::from_secs(3));
    println!("keepalived ignores our adverts (wrong password) and becomes Master after {took:?}");
    assert!(
        took.is_some(),
        "keepalived stayed Backup despite the wrong password:\n{}",
        k.log_text()
    );
    assert!(
        k.wait_log("(VI_1) received an invalid passwd!", Duration::from_secs(2)),
        "{}",
        k.log_text()
    );
    assert!(
        node.wait_log("(VI_1) received an invalid passwd!", Duration::from_secs(2)),
        "{}",
        node.log_text()
    );
    assert!(
        lb.has_address(VIP),
        "vrrplb yielded to adverts with a wrong password:\n{}",
        node.log_text()
    );
    let (kc, nc) = (k.log_text(), node.log_text());
    println!(
        "keepalived: {:?}\nvrrplb: {:?}",
        complaints(&kc).first(),
        complaints(&nc).first()
    );
    assert!(!complaints(&kc).is_empty() && !complaints(&nc).is_empty());
}

/// Makes `h` deaf to VRRP (an nftables input rule), or hearing again.
fn deafen(h: &Host, deaf: bool) {
    if deaf {
        h.exec_ok(&["nft", "add", "table", "ip", "vrrpdeaf"]);
        h.exec_ok(&[
            "nft",
            "add",
            "chain",
            "ip",
            "vrrpdeaf",
            "input",
            "{ type filter hook input priority 0 ; }",
        ]);
        h.exec_ok(&[
            "nft", "add", "rule", "ip", "vrrpdeaf", "input", "ip", "protocol", "vrrp", "drop",
        ]);
    } else {
        h.exec_ok(&["nft", "delete", "table", "ip", "vrrpdeaf"]);
    }
}

/// Split brain and its healing (vrrp.md §12.9): the lower-priority side goes deaf, becomes a
/// second Master; the higher-priority Master answers its adverts at once ("forcing new
/// election"); when hearing returns, the lower side yields within one advert interval.
/// Both ways: vrrplb the higher Master, then keepalived.
#[test]
fn split_brain_with_keepalived_heals_within_an_advert_interval() {
    let test = "split_brain_with_keepalived_heals_within_an_advert_interval";
    if !have_keepalived(test) || !testkit::require_tool(test, "nft") {
        return;
    }
    for vrrplb_high in [true, false] {
        let lab = Lab::new(&[KA, LB]);
        let dir = TempDir::new("ka-split");
        let (ka, lb) = (lab.host("ka"), lab.host("lb"));
        let (p_lb, p_ka) = if vrrplb_high { (101, 100) } else { (100, 101) };
        println!("split brain, vrrplb {p_lb}, keepalived {p_ka}:");
        let (high, low) = if vrrplb_high { (lb, ka) } else { (ka, lb) };
        let t0 = Instant::now();
        let node = start(&lab, "lb", &dir, &vrrplb_config(p_lb, None));
        let k = Keepalived::start(ka, &dir, "ka", p_ka, v2(None));
        let logs = || [("vrrplb", node.log_text()), ("keepalived", k.log_text())];
        let took = wait_vip(high, t0, master_down(101) + Duration::from_secs(3));
        assert_within(
            "the higher priority becomes Master",
            took,
            master_down(101) + Duration::from_secs(2),
            &logs(),
        );
        assert!(
            wait_no_vip(low, Duration::from_secs(2)),
            "the lower side holds the VIP too"
        );

        deafen(low, true);
        let t_deaf = Instant::now();
        let took = wait_vip(low, t_deaf, master_down(100) + Duration::from_secs(3));
        assert_within(
            "deaf lower side becomes a second Master",
            took,
            master_down(100) + Duration::from_millis(1500),
            &logs(),
        );
        assert!(high.has_address(VIP), "the higher Master gave up the VIP");
        let forcing = "(VI_1) Received advert from 198.51.100.1";
        let high_log = || {
            if vrrplb_high {
                node.log_text()
            } else {
                k.log_text()
            }
        };
        assert!(
            testkit::wait_until(Duration::from_secs(3), || high_log().contains(forcing)
                && high_log().contains("forcing new election")),
            "the higher Master did not answer the lower one's adverts:\n{}",
            high_log()
        );

        deafen(low, false);
        let t_heal = Instant::now();
        let bound = Duration::from_millis(1500);
        let healed = wait_no_vip(low, bound + Duration::from_secs(3)).then(|| t_heal.elapsed());
        assert_within(
            "hearing again, the lower side yields",
            healed,
            bound,
            &logs(),
        );
        assert!(high.has_address(VIP), "the higher Master lost the VIP");
        assert_no_complaints("keepalived", &k.log_text());
        assert_no_complaints("vrrplb", &node.log_text());
    }
}
