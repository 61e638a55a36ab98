//! Notify scripts (vrrp.md §10): on a transition, the state's own script (`notify_master`
//! and so on, no arguments) and then the generic `notify` with
//! `INSTANCE <name> <STATE> <priority>` appended.
//!
//! Both are started before [`Notifier::notify`] returns, in that order, and waited for on a
//! task of their own: the engine never waits for a user's script. One that hangs is killed
//! (its whole process group) after a time limit, with a warning. Failures are logged, never
//! returned: a broken notify script must not change what VRRP does.

use std::sync::atomic::AtomicBool;
use std::time::Duration;

use tokio::task::JoinHandle;

use crate::config::NotifyScripts;
use crate::track::script::{Program, RunOutcome, RunningScript};

/// How long a notify script may run before it is killed.
pub const NOTIFY_TIME_LIMIT: Duration = Duration::from_secs(10);
/// How long shutdown waits for the STOP scripts (keepalived gives them about a second).
pub const STOP_WAIT: Duration = Duration::from_secs(1);

/// The state a notify reports, spelled as keepalived passes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotifyState {
    Master,
    Backup,
    Fault,
    Stop,
}

impl NotifyState {
    pub fn as_str(self) -> &'static str {
        match self {
            NotifyState::Master => "MASTER",
            NotifyState::Backup => "BACKUP",
            NotifyState::Fault => "FAULT",
            NotifyState::Stop => "STOP",
        }
    }
}

/// Runs one instance's notify scripts.
#[derive(Debug, Clone)]
pub struct Notifier {
    /// `INSTANCE`, or `GROUP` for a sync group's scripts (keepalived's first argument).
    kind: &'static str,
    instance: String,
    scripts: NotifyScripts,
    time_limit: Duration,
}

impl Notifier {
    pub fn new(instance: impl Into<String>, scripts: NotifyScripts) -> Notifier {
        Notifier {
            kind: "INSTANCE",
            instance: instance.into(),
            scripts,
            time_limit: NOTIFY_TIME_LIMIT,
        }
    }

    /// A sync group's scripts: the generic one gets `GROUP <name> <STATE> 0`.
    pub fn for_group(group: impl Into<String>, scripts: NotifyScripts) -> Notifier {
        Notifier {
            kind: "GROUP",
            ..Notifier::new(group, scripts)
        }
    }

    /// Replaces [`NOTIFY_TIME_LIMIT`].
    pub fn with_time_limit(mut self, limit: Duration) -> Notifier {
        self.time_limit = limit;
        self
    }

    /// Starts the scripts for entering `state` and returns at once. The returned task ends
    /// when they have finished or been killed; dropping it does not stop them. Must be
    /// called inside a tokio runtime.
    pub fn notify(&self, state: NotifyState, priority: u8) -> JoinHandle<()> {
        let started = self.start(state, priority);
        let limit = self.time_limit;
        let instance = self.instance.clone();
        tokio::spawn(async move { finish_all(&instance, started, limit).await })
    }

    /// The shutdown variant: starts the STOP scripts and waits for them at most
    /// [`STOP_WAIT`]. Scripts still running then are left to finish (or are killed at the time
    /// limit if the runtime lives on).
    ///
    /// Scripts of every kind outlive the runtime: when the daemon exits, a notify script still
    /// running is left alone rather than killed in the middle of its work.
    pub async fn notify_stop(&self, priority: u8) {
        let task = self.notify(NotifyState::Stop, priority);
        if tokio::time::timeout(STOP_WAIT, task).await.is_err() {
            tracing::warn!(
                "({}) notify scripts for STOP still running after {} ms; not waiting for them",
                self.instance,
                STOP_WAIT.as_millis()
            );
        }
    }

    /// The command lines for entering `state`: the specific one, then the generic one.
    fn programs(&self, state: NotifyState, priority: u8) -> Vec<Program> {
        let specific = match state {
            NotifyState::Master => &self.scripts.master,
            NotifyState::Backup => &self.scripts.backup,
            NotifyState::Fault => &self.scripts.fault,
            NotifyState::Stop => &self.scripts.stop,
        };
        let priority = priority.to_string();
        let generic = self
            .scripts
            .generic
            .as_deref()
            .and_then(Program::parse)
            .map(|p| {
                p.with_args([
                    self.kind,
                    self.instance.as_str(),
                    state.as_str(),
                    priority.as_str(),
                ])
            });
        specific
            .as_deref()
            .and_then(Program::parse)
            .into_iter()
            .chain(generic)
            .collect()
    }

    fn start(&self, state: NotifyState, priority: u8) -> Vec<(String, RunningScript)> {
        let mut started = Vec::new();
        for program in self.programs(state, priority) {
            match program.start() {
                Ok(run) => started.push((program.path().to_owned(), run.release_on_drop())),
                Err(e) => tracing::warn!(
                    "({}) cannot run notify script {} for {}: {e}",
                    self.instance,
                    program.path(),
                    state.as_str()
                ),
            }
        }
        started
    }
}

async fn finish_all(instance: &str, started: Vec<(String, RunningScript)>, limit: Duration) {
    let unused = AtomicBool::new(false);
    let waits = started.into_iter().map(|(path, run)| {
        let unused = &unused;
        async move {
            match run.finish(limit, unused).await {
                RunOutcome::Exited(0) => {}
                RunOutcome::Exited(code) => {
                    tracing::warn!("({instance}) notify script {path} exited with status {code}")
                }
                RunOutcome::Signaled(sig) => {
                    tracing::warn!("({instance}) notify script {path} died of signal {sig}")
                }
                RunOutcome::TimedOut => tracing::warn!(
                    "({instance}) notify script {path} still running after {} s; killed",
                    limit.as_secs_f64()
                ),
            }
        }
    });
    futures::future::join_all(waits).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generic_script_gets_keepalived_arguments() {
        let n = Notifier::new(
            "VI_1",
            NotifyScripts {
                backup: Some("/x/backup.sh --flag".into()),
                generic: Some("/x/notify.sh".into()),
                ..Default::default()
            },
        );
        let p = n.programs(NotifyState::Backup, 90);
        assert_eq!(p.len(), 2);
        assert_eq!(p[0], Program::parse("/x/backup.sh --flag").expect("words"));
        assert_eq!(
            p[1],
            Program::parse("/x/notify.sh INSTANCE VI_1 BACKUP 90").expect("words")
        );
        assert!(n.programs(NotifyState::Master, 90).len() == 1);
    }
}
