//! Notify scripts with real processes: arguments, never blocking the caller, the kill bound,
//! and the shutdown (STOP) wait. No root needed.

mod common;

use std::time::{Duration, Instant};

use common::{alive, capture_logs, eventually, pid_from, Scratch};
use vrrp::notify::{Notifier, NotifyState};
use vrrp::NotifyScripts;

#[tokio::test]
async fn specific_and_generic_scripts_get_keepalived_arguments() {
    let dir = Scratch::new("notify-args");
    let master = dir.script(
        "master.sh",
        &format!("echo \"argc=$# $@\" > {}", dir.path("master.out")),
    );
    let generic = dir.script(
        "notify.sh",
        &format!("echo \"$@\" > {}", dir.path("notify.out")),
    );
    let n = Notifier::new(
        "VI_1",
        NotifyScripts {
            master: Some(master),
            generic: Some(generic),
            ..Default::default()
        },
    );
    let done = n.notify(NotifyState::Master, 150);
    tokio::time::timeout(Duration::from_secs(5), done)
        .await
        .expect("scripts finish")
        .expect("task");
    assert_eq!(dir.read("master.out").as_deref(), Some("argc=0 \n"));
    assert_eq!(
        dir.read("notify.out").as_deref(),
        Some("INSTANCE VI_1 MASTER 150\n")
    );

    // No specific script for BACKUP: only the generic one runs.
    n.notify(NotifyState::Backup, 90).await.expect("task");
    assert_eq!(
        dir.read("notify.out").as_deref(),
        Some("INSTANCE VI_1 BACKUP 90\n")
    );
}

#[tokio::test]
async fn a_hanging_notify_script_does_not_delay_the_caller_and_is_killed() {
    let (logs, _g) = capture_logs();
    let dir = Scratch::new("notify-hang");
    let s = dir.script(
        "fault.sh",
        &format!("echo $$ > {}\nexec /bin/sleep 30", dir.path("pid")),
    );
    let n = Notifier::new(
        "VI_1",
        NotifyScripts {
            fault: Some(s),
            ..Default::default()
        },
    )
    .with_time_limit(Duration::from_secs(1));
    let started = Instant::now();
    let done = n.notify(NotifyState::Fault, 100);
    let returned = started.elapsed();
    assert!(
        returned < Duration::from_millis(100),
        "notify took {returned:?}"
    );

    let pid = pid_from(&dir, "pid").await;
    tokio::time::timeout(Duration::from_secs(4), done)
        .await
        .expect("killed at the time limit")
        .expect("task");
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_millis(2500),
        "{took:?}"
    );
    assert!(eventually(Duration::from_secs(1), || !alive(pid)).await);
    assert!(
        logs.contains("notify script") && logs.contains("killed"),
        "{}",
        logs.text()
    );
}

#[tokio::test]
async fn notify_stop_waits_for_a_quick_script_but_at_most_about_a_second() {
    let dir = Scratch::new("notify-stop");
    let quick = dir.script("stop.sh", &format!("echo stopped > {}", dir.path("out")));
    let n = Notifier::new(
        "VI_1",
        NotifyScripts {
            stop: Some(quick),
            ..Default::default()
        },
    );
    let started = Instant::now();
    n.notify_stop(100).await;
    assert!(started.elapsed() < Duration::from_millis(900));
    assert_eq!(
        dir.read("out").as_deref(),
        Some("stopped\n"),
        "ran before returning"
    );

    let slow = dir.script(
        "slow.sh",
        &format!("echo $$ > {}\nexec /bin/sleep 30", dir.path("pid")),
    );
    let n = Notifier::new(
        "VI_1",
        NotifyScripts {
            generic: Some(slow),
            ..Default::default()
        },
    );
    let started = Instant::now();
    n.notify_stop(100).await;
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_millis(1600),
        "{took:?}"
    );
    let pid = pid_from(&dir, "pid").await;
    assert!(alive(pid), "left running, not killed, at shutdown");
    // SAFETY: kill(2) on the PID of the script this test started.
    unsafe {
        libc::kill(pid as i32, libc::SIGKILL);
    }
}

#[tokio::test]
async fn failing_or_missing_scripts_are_logged_not_raised() {
    let (logs, _g) = capture_logs();
    let dir = Scratch::new("notify-fail");
    let failing = dir.script("backup.sh", "exit 2");
    let n = Notifier::new(
        "VI_9",
        NotifyScripts {
            backup: Some(failing),
            generic: Some("/nonexistent/notify".into()),
            ..Default::default()
        },
    );
    n.notify(NotifyState::Backup, 50).await.expect("task");
    let text = logs.text();
    assert!(text.contains("exited with status 2"), "{text}");
    assert!(
        text.contains("cannot run notify script /nonexistent/notify"),
        "{text}"
    );
}
