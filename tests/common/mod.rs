//! Shared helpers for the end-to-end tests: start the real `vrrplb` binary inside a lab host
//! with a config, read its log, wait for VIPs.
#![allow(dead_code)]

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use testkit::{Host, Lab, TempDir};

pub const BIN: &str = env!("CARGO_BIN_EXE_vrrplb");
pub const VIP: &str = "198.51.100.100";

/// A vrrplb process started in a lab host.
pub struct Node {
    pub host: String,
    pub pid: u32,
    pub log: std::path::PathBuf,
    pub config: std::path::PathBuf,
}

impl Node {
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
    /// Waits until the log contains `needle`; returns when it appeared (elapsed since `since`).
    pub fn wait_log(&self, needle: &str, timeout: Duration) -> bool {
        testkit::wait_until(timeout, || self.log_text().contains(needle))
    }
    /// `vrrplb status` output for this node ("" when it does not answer).
    pub fn status(&self) -> String {
        let out = Command::new(BIN)
            .args(["status", "-c"])
            .arg(&self.config)
            .output();
        out.map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default()
    }
    /// Number of times `needle` occurs in the log.
    pub fn count_log(&self, needle: &str) -> usize {
        self.log_text().matches(needle).count()
    }
}

/// One VRRP instance config for the standard pair (VIP 198.51.100.100/24, VRID 51), with
/// `extra` lines appended to the instance (indented by four spaces) and `tail` appended to
/// the file (other sections).
pub fn pair_config(node: &str, priority: u8, extra: &str, tail: &str) -> String {
    format!(
        "global:\n  node: {node}\n  log: {{ target: stderr, level: debug }}\n\
         vrrp_instances:\n  - name: VI_1\n    interface: eth0\n    virtual_router_id: 51\n    priority: {priority}\n    advert_int: 1\n    virtual_ipaddress: [{VIP}/24]\n{extra}{tail}"
    )
}

/// Writes `config` and starts `vrrplb run` in `host`, logging to a file in `dir`.
pub fn start(lab: &Lab, host: &str, dir: &TempDir, config: &str) -> Node {
    let h = lab.host(host);
    let cfg_path = dir.join(&format!("{host}.yaml"));
    // Each node gets its own control socket (the default path is shared by all namespaces).
    let sock = dir.join(&format!("{host}.sock"));
    let config = if config.contains("control_socket") {
        config.to_owned()
    } else {
        config.replacen(
            "global:\n",
            &format!("global:\n  control_socket: {}\n", sock.display()),
            1,
        )
    };
    std::fs::write(&cfg_path, config).expect("write config");
    let log = dir.join(&format!("{host}.log"));
    let log_file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log)
        .expect("log file");
    let mut cmd = h.command(BIN);
    cmd.args(["run", "-c"])
        .arg(&cfg_path)
        .stdout(Stdio::null())
        .stderr(Stdio::from(log_file));
    let pid = h.spawn(cmd);
    Node {
        host: host.to_owned(),
        pid,
        log,
        config: cfg_path,
    }
}

/// Waits until `host` holds the VIP; returns the time it took from `since`.
pub fn wait_vip(h: &Host, since: Instant, timeout: Duration) -> Option<Duration> {
    testkit::wait_until(timeout, || h.has_address(VIP)).then(|| since.elapsed())
}

/// Waits until `host` no longer holds the VIP.
pub fn wait_no_vip(h: &Host, timeout: Duration) -> bool {
    testkit::wait_until(timeout, || !h.has_address(VIP))
}

/// Master_Down_Interval for advert_int 1 s at `priority`.
pub fn master_down(priority: u8) -> Duration {
    Duration::from_secs(3) + skew(priority)
}

pub fn skew(priority: u8) -> Duration {
    Duration::from_micros((256 - u64::from(priority)) * 1_000_000 / 256)
}

/// Runs a command to completion (for tools such as tshark) with a hard time limit.
pub fn run_with_timeout(mut cmd: Command, limit: Duration) -> std::process::Output {
    let child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let pid = child.id();
    let watchdog = std::thread::spawn(move || {
        std::thread::sleep(limit);
        // SIGKILL by the PID we spawned, if it is still running.
        let _ = Command::new("kill")
            .args(["-9", &pid.to_string()])
            .stderr(Stdio::null())
            .status();
    });
    let out = child.wait_with_output().expect("wait");
    drop(watchdog);
    out
}
