//! `vrrp_script` trackers running real processes: results, rise/fall, timeouts that really
//! kill, overrun skipping, users. No root needed except for the `user` test.

mod common;

use std::time::{Duration, Instant};

use common::{alive, capture_logs, children_with_cmdline, eventually, pid_from, Scratch};
use tokio::sync::watch;
use vrrp::track::script::{ScriptError, ScriptTracker};
use vrrp::ScriptConfig;

fn config(name: &str, script: &str, interval_ms: u64, timeout_ms: u64) -> ScriptConfig {
    ScriptConfig {
        name: name.to_owned(),
        script: script.to_owned(),
        interval: Duration::from_millis(interval_ms),
        timeout: Duration::from_millis(timeout_ms),
        weight: 0,
        rise: 1,
        fall: 1,
        user: None,
    }
}

async fn wait_state(rx: &mut watch::Receiver<Option<bool>>, want: bool, within: Duration) {
    let got = tokio::time::timeout(within, rx.wait_for(|s| *s == Some(want))).await;
    assert!(got.is_ok(), "state {want} not reached within {within:?}");
}

#[tokio::test]
async fn exit_zero_is_ok_at_once_and_logged() {
    let (logs, _g) = capture_logs();
    let t = ScriptTracker::start(config("chk_ok", "/bin/true", 200, 1000)).expect("start");
    assert_eq!(t.state(), None, "unknown before the first result");
    wait_state(&mut t.subscribe(), true, Duration::from_secs(2)).await;
    assert!(
        logs.contains("VRRP_Script(chk_ok) succeeded"),
        "{}",
        logs.text()
    );
    assert!(
        !logs.contains("now returning"),
        "exit 0 from the start is not news"
    );
}

#[tokio::test]
async fn exit_status_is_reported_in_keepalived_words() {
    let (logs, _g) = capture_logs();
    let dir = Scratch::new("exit3");
    let s = dir.script("chk.sh", "exit 3");
    let t = ScriptTracker::start(config("chk_three", &s, 200, 1000)).expect("start");
    wait_state(&mut t.subscribe(), false, Duration::from_secs(2)).await;
    assert!(
        logs.contains("VRRP_Script(chk_three) failed (exited with status 3)"),
        "{}",
        logs.text()
    );
    assert!(logs.contains("Script `chk_three` now returning 3"));
}

#[tokio::test]
async fn death_by_signal_is_a_failure() {
    let (logs, _g) = capture_logs();
    let dir = Scratch::new("sig");
    let s = dir.script("chk.sh", "kill -9 $$");
    let t = ScriptTracker::start(config("chk_sig", &s, 200, 1000)).expect("start");
    wait_state(&mut t.subscribe(), false, Duration::from_secs(2)).await;
    assert!(
        logs.contains("VRRP_Script(chk_sig) failed (due to signal 9)"),
        "{}",
        logs.text()
    );
}

#[tokio::test]
async fn missing_program_is_a_failure_not_an_error() {
    let (logs, _g) = capture_logs();
    let t = ScriptTracker::start(config("chk_none", "/nonexistent/check --x", 200, 1000))
        .expect("start");
    wait_state(&mut t.subscribe(), false, Duration::from_secs(2)).await;
    assert!(
        logs.contains("VRRP_Script(chk_none) failed (exited with status 127)"),
        "{}",
        logs.text()
    );
}

/// How many of the last lines of `runs` equal `code`.
fn trailing(runs: &str, code: &str) -> usize {
    runs.lines().rev().take_while(|l| l.trim() == code).count()
}

#[tokio::test]
async fn rise_and_fall_need_consecutive_results() {
    let dir = Scratch::new("risefall");
    dir.write("code", "0");
    let code = dir.path("code");
    let runs = dir.path("runs");
    let s = dir.script(
        "chk.sh",
        &format!("c=$(cat {code}); echo $c >> {runs}; exit $c"),
    );
    let mut cfg = config("chk_rf", &s, 200, 1000);
    cfg.rise = 3;
    cfg.fall = 2;
    let t = ScriptTracker::start(cfg).expect("start");
    let mut rx = t.subscribe();
    wait_state(&mut rx, true, Duration::from_secs(2)).await;
    assert_eq!(
        dir.read("runs").as_deref(),
        Some("0\n"),
        "first success decides"
    );

    dir.write("code", "1");
    wait_state(&mut rx, false, Duration::from_secs(3)).await;
    // Read at once: the next run is about an interval away.
    let seen = dir.read("runs").unwrap_or_default();
    assert_eq!(
        trailing(&seen, "1"),
        2,
        "KO after exactly fall=2 failures: {seen:?}"
    );

    dir.write("code", "0");
    wait_state(&mut rx, true, Duration::from_secs(3)).await;
    let seen = dir.read("runs").unwrap_or_default();
    assert_eq!(
        trailing(&seen, "0"),
        3,
        "OK after exactly rise=3 successes: {seen:?}"
    );
}

#[tokio::test]
async fn timeout_kills_the_script_and_counts_as_timed_out() {
    let (logs, _g) = capture_logs();
    let started = Instant::now();
    let t =
        ScriptTracker::start(config("chk_hang", "/bin/sleep 30.1", 10_000, 1000)).expect("start");
    let mut pids = Vec::new();
    assert!(
        eventually(Duration::from_secs(2), || {
            pids = children_with_cmdline(&["/bin/sleep", "30.1"]);
            !pids.is_empty()
        })
        .await,
        "the script started"
    );
    wait_state(&mut t.subscribe(), false, Duration::from_secs(4)).await;
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_millis(2500),
        "KO {took:?} after start, timeout 1 s"
    );
    assert!(
        logs.contains("VRRP_Script(chk_hang) timed_out"),
        "{}",
        logs.text()
    );
    for pid in pids {
        assert!(
            eventually(Duration::from_secs(1), || !alive(pid)).await,
            "script {pid} still running"
        );
    }
}

#[tokio::test]
async fn a_script_ignoring_sigterm_is_killed_with_its_children_after_the_grace() {
    let (logs, _g) = capture_logs();
    let dir = Scratch::new("noterm");
    // The shell and its background child both ignore SIGTERM (ignored signals survive exec).
    let s = dir.script(
        "chk.sh",
        &format!(
            "trap '' TERM\necho $$ > {}\n/bin/sleep 30.2 &\necho $! > {}\nwait",
            dir.path("leader"),
            dir.path("child")
        ),
    );
    let started = Instant::now();
    let t = ScriptTracker::start(config("chk_stubborn", &s, 10_000, 1000)).expect("start");
    let leader = pid_from(&dir, "leader").await;
    let child = pid_from(&dir, "child").await;
    wait_state(&mut t.subscribe(), false, Duration::from_secs(6)).await;
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(2900) && took < Duration::from_millis(4500),
        "KO {took:?} after start: 1 s timeout + 2 s grace"
    );
    assert!(
        logs.contains("VRRP_Script(chk_stubborn) timed_out"),
        "{}",
        logs.text()
    );
    for pid in [leader, child] {
        assert!(
            eventually(Duration::from_secs(1), || !alive(pid)).await,
            "{pid} survived SIGKILL to the group"
        );
    }
}

#[tokio::test]
async fn overrunning_script_skips_runs_and_says_so() {
    let (logs, _g) = capture_logs();
    let dir = Scratch::new("overrun");
    let runs = dir.path("runs");
    let s = dir.script("chk.sh", &format!("echo x >> {runs}\n/bin/sleep 1"));
    let _t = ScriptTracker::start(config("chk_slow", &s, 300, 5000)).expect("start");
    tokio::time::sleep(Duration::from_millis(2000)).await;
    let n = dir.read("runs").unwrap_or_default().lines().count();
    assert!(
        (1..=3).contains(&n),
        "{n} runs in 2 s: every 300 ms would be 7"
    );
    assert!(
        logs.contains("Track script chk_slow is already running, expect idle - skipping run"),
        "{}",
        logs.text()
    );
}

#[tokio::test]
async fn a_hung_script_delays_no_other_tracker_and_dies_with_its_tracker() {
    let hung =
        ScriptTracker::start(config("chk_hung", "/bin/sleep 30.3", 10_000, 20_000)).expect("start");
    let mut pids = Vec::new();
    assert!(
        eventually(Duration::from_secs(2), || {
            pids = children_with_cmdline(&["/bin/sleep", "30.3"]);
            !pids.is_empty()
        })
        .await
    );
    let started = Instant::now();
    let quick = ScriptTracker::start(config("chk_quick", "/bin/true", 100, 1000)).expect("start");
    wait_state(&mut quick.subscribe(), true, Duration::from_secs(1)).await;
    assert!(started.elapsed() < Duration::from_secs(1));
    assert_eq!(hung.state(), None, "still waiting for its first result");

    drop(hung);
    for pid in pids {
        assert!(
            eventually(Duration::from_secs(2), || !alive(pid)).await,
            "dropping the tracker left {pid} running"
        );
    }
}

#[tokio::test]
async fn runs_as_the_configured_user() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("SKIP runs_as_the_configured_user: needs root to switch users");
        return;
    }
    let dir = Scratch::new("user");
    std::fs::set_permissions(&dir.0, std::os::unix::fs::PermissionsExt::from_mode(0o777))
        .expect("chmod");
    let out = dir.path("uid");
    let s = dir.script("chk.sh", &format!("id -u > {out}"));
    let mut cfg = config("chk_user", &s, 200, 1000);
    cfg.user = Some("nobody".into());
    let t = ScriptTracker::start(cfg).expect("start");
    wait_state(&mut t.subscribe(), true, Duration::from_secs(2)).await;
    let want = nix::unistd::User::from_name("nobody")
        .ok()
        .flatten()
        .map(|u| u.uid.to_string());
    assert_eq!(dir.read("uid").map(|s| s.trim().to_owned()), want);
}

#[tokio::test]
async fn bad_configs_are_refused_at_start() {
    let mut cfg = config("chk_u", "/bin/true", 200, 1000);
    cfg.user = Some("no-such-user-vrrplb".into());
    assert!(matches!(
        ScriptTracker::start(cfg),
        Err(ScriptError::UnknownUser { .. })
    ));
    assert!(matches!(
        ScriptTracker::start(config("chk_e", "   ", 200, 1000)),
        Err(ScriptError::EmptyCommand { .. })
    ));
}
