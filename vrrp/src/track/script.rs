//! `vrrp_script` trackers (vrrp.md §10): run a command every `interval`, kill it at `timeout`,
//! count rises and falls, and publish OK/KO on a watch channel.
//!
//! Each run is a child in its own process group, so a timeout kills the script and whatever
//! it started (a shell script's `curl`, say), as keepalived does. All waiting happens on the
//! tracker's own task: a hung script delays nothing but its own next run.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::process::{ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use nix::sys::signal::{killpg, Signal};
use nix::unistd::{Pid, User};
use tokio::process::{Child, Command};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::config::ScriptConfig;

/// After SIGTERM, how long a timed-out script gets before SIGKILL (keepalived: 2 s).
pub const TERM_GRACE: Duration = Duration::from_secs(2);

#[derive(Debug, thiserror::Error)]
pub enum ScriptError {
    #[error("script {name}: empty command line")]
    EmptyCommand { name: String },
    #[error("script {name}: no such user {user}")]
    UnknownUser { name: String, user: String },
    #[error("script {name}: cannot look up user {user}: {source}")]
    UserLookup {
        name: String,
        user: String,
        #[source]
        source: nix::Error,
    },
}

/// A command line ready to start: split on whitespace, no shell (keepalived does the same,
/// so quoting and `$VAR` are not interpreted).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Program {
    argv: Vec<String>,
    /// Run as this uid/gid instead of ours.
    ids: Option<(u32, u32)>,
}

impl Program {
    /// None when the line holds no word.
    pub(crate) fn parse(line: &str) -> Option<Program> {
        let argv: Vec<String> = line.split_whitespace().map(str::to_owned).collect();
        if argv.is_empty() {
            None
        } else {
            Some(Program { argv, ids: None })
        }
    }

    pub(crate) fn with_args<'a>(mut self, args: impl IntoIterator<Item = &'a str>) -> Program {
        self.argv.extend(args.into_iter().map(str::to_owned));
        self
    }

    pub(crate) fn path(&self) -> &str {
        self.argv.first().map(String::as_str).unwrap_or("")
    }

    /// Starts the program in a new process group, stdio on /dev/null. Not async: spawning is
    /// a fork/exec, and doing it here keeps the start order of several programs.
    pub(crate) fn start(&self) -> io::Result<RunningScript> {
        let mut cmd = Command::new(self.path());
        cmd.args(self.argv.iter().skip(1))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            // Own group: a timeout signals the script and every process it started.
            .process_group(0);
        if let Some((uid, gid)) = self.ids {
            // std sets the gid first and drops supplementary groups before setuid.
            cmd.uid(uid).gid(gid);
        }
        let child = spawn_unless_busy(&mut cmd)?;
        let group = child
            .id()
            .and_then(|pid| i32::try_from(pid).ok())
            .map(Pid::from_raw);
        Ok(RunningScript {
            child,
            group: ProcessGroup {
                pgid: group,
                kill_on_drop: true,
            },
        })
    }
}

/// A script that was just written can be "busy" (ETXTBSY) for a moment: a fork elsewhere in
/// this process (another script, a health check's helper) inherited the writer's descriptor
/// and holds it until its own exec. Cargo retries its build scripts for the same reason. A few
/// short retries, only on that error: at most ~20 ms of the caller's time.
fn spawn_unless_busy(cmd: &mut Command) -> io::Result<Child> {
    let mut tries = 0;
    loop {
        match cmd.spawn() {
            Err(e) if e.raw_os_error() == Some(libc::ETXTBSY) && tries < 5 => {
                tries += 1;
                std::thread::sleep(Duration::from_millis(4));
            }
            other => return other,
        }
    }
}

/// How one run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunOutcome {
    /// Exited with this status (0 = success). A program that could not be started counts as
    /// 127 (not found) or 126 (not executable), as a shell would report it.
    Exited(i32),
    /// Killed by this signal, not by us.
    Signaled(i32),
    /// Ran past its time limit and was killed by us.
    TimedOut,
}

impl RunOutcome {
    pub fn success(self) -> bool {
        self == RunOutcome::Exited(0)
    }

    fn from_spawn_error(e: &io::Error) -> RunOutcome {
        match e.kind() {
            io::ErrorKind::PermissionDenied => RunOutcome::Exited(126),
            _ => RunOutcome::Exited(127),
        }
    }
}

fn outcome_of(status: ExitStatus) -> RunOutcome {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => RunOutcome::Exited(code),
        (None, Some(sig)) => RunOutcome::Signaled(sig),
        // Neither exited nor signalled cannot happen for a reaped child; call it a failure.
        (None, None) => RunOutcome::Exited(-1),
    }
}

/// The process group of a running script (None once the leader is reaped). By default,
/// dropping it while the script runs SIGKILLs the whole group, so a tracker that is stopped
/// leaves no check behind.
#[derive(Debug)]
struct ProcessGroup {
    pgid: Option<Pid>,
    kill_on_drop: bool,
}

impl ProcessGroup {
    fn signal(&self, sig: Signal) {
        if let Some(pgid) = self.pgid {
            // ESRCH only means everyone in the group is already gone.
            let _ = killpg(pgid, sig);
        }
    }

    fn disarm(&mut self) {
        self.pgid = None;
    }
}

impl Drop for ProcessGroup {
    fn drop(&mut self) {
        if self.kill_on_drop {
            self.signal(Signal::SIGKILL);
        }
    }
}

/// A started script.
#[derive(Debug)]
pub(crate) struct RunningScript {
    child: Child,
    group: ProcessGroup,
}

impl RunningScript {
    /// Lets the script run on if this handle is dropped before it ends (notify scripts at
    /// shutdown: a user's clean-up should not die with the daemon).
    pub(crate) fn release_on_drop(mut self) -> RunningScript {
        self.group.kill_on_drop = false;
        self
    }

    /// Waits for the script, killing its process group if it outlives `limit`: SIGTERM,
    /// then SIGKILL after [`TERM_GRACE`]. `terminating` is raised once SIGTERM is sent (the
    /// overrun message says "being timed out" from then on).
    pub(crate) async fn finish(mut self, limit: Duration, terminating: &AtomicBool) -> RunOutcome {
        if let Ok(res) = tokio::time::timeout(limit, self.child.wait()).await {
            return self.reaped(res, false);
        }
        terminating.store(true, Ordering::Relaxed);
        self.group.signal(Signal::SIGTERM);
        if let Ok(res) = tokio::time::timeout(TERM_GRACE, self.child.wait()).await {
            // keepalived also SIGKILLs the group once the leader died of our SIGTERM, in
            // case it left children behind. The leader's PID cannot be reused while other
            // members still carry it as their group ID, so this reaches only them.
            self.group.signal(Signal::SIGKILL);
            return self.reaped(res, true);
        }
        self.group.signal(Signal::SIGKILL);
        let res = self.child.wait().await;
        self.reaped(res, true)
    }

    fn reaped(&mut self, res: io::Result<ExitStatus>, killed_by_us: bool) -> RunOutcome {
        self.group.disarm();
        match res {
            // A script that exits on its own during the grace period reports its own status.
            Ok(status) => match outcome_of(status) {
                RunOutcome::Signaled(_) if killed_by_us => RunOutcome::TimedOut,
                other => other,
            },
            Err(e) => {
                tracing::warn!("cannot wait for script: {e}");
                RunOutcome::Exited(-1)
            }
        }
    }
}

/// Rise/fall counting (vrrp.md §10). `None` until the first result, which decides at once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RiseFall {
    rise: u32,
    fall: u32,
    state: Option<bool>,
    /// Consecutive results disagreeing with the current state.
    streak: u32,
}

impl RiseFall {
    pub fn new(rise: u32, fall: u32) -> RiseFall {
        RiseFall {
            rise: rise.max(1),
            fall: fall.max(1),
            state: None,
            streak: 0,
        }
    }

    pub fn state(&self) -> Option<bool> {
        self.state
    }

    /// Records one result; returns the new state when it changed.
    pub fn record(&mut self, ok: bool) -> Option<bool> {
        match self.state {
            None => {
                self.state = Some(ok);
                self.streak = 0;
                Some(ok)
            }
            Some(cur) if cur == ok => {
                self.streak = 0;
                None
            }
            Some(_) => {
                self.streak += 1;
                let needed = if ok { self.rise } else { self.fall };
                if self.streak >= needed {
                    self.state = Some(ok);
                    self.streak = 0;
                    Some(ok)
                } else {
                    None
                }
            }
        }
    }
}

/// keepalived's line for a state change caused by `outcome`.
fn state_line(name: &str, ok: bool, outcome: RunOutcome) -> String {
    match (ok, outcome) {
        (true, _) => format!("VRRP_Script({name}) succeeded"),
        (false, RunOutcome::TimedOut) => format!("VRRP_Script({name}) timed_out"),
        (false, RunOutcome::Signaled(sig)) => {
            format!("VRRP_Script({name}) failed (due to signal {sig})")
        }
        (false, RunOutcome::Exited(code)) => {
            format!("VRRP_Script({name}) failed (exited with status {code})")
        }
    }
}

fn resolve_user(config: &ScriptConfig) -> Result<Option<(u32, u32)>, ScriptError> {
    let Some(user) = &config.user else {
        return Ok(None);
    };
    match User::from_name(user) {
        Ok(Some(u)) => Ok(Some((u.uid.as_raw(), u.gid.as_raw()))),
        Ok(None) => Err(ScriptError::UnknownUser {
            name: config.name.clone(),
            user: user.clone(),
        }),
        Err(source) => Err(ScriptError::UserLookup {
            name: config.name.clone(),
            user: user.clone(),
            source,
        }),
    }
}

type Run = Pin<Box<dyn Future<Output = RunOutcome> + Send>>;

/// Runs one `vrrp_script` on its own task and publishes its state. Dropping the tracker
/// stops the task and kills a run in progress.
#[derive(Debug)]
pub struct ScriptTracker {
    name: String,
    state: watch::Receiver<Option<bool>>,
    task: JoinHandle<()>,
}

impl Drop for ScriptTracker {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl ScriptTracker {
    /// Checks the command line and user, then starts running the script (first run at once).
    /// Must be called inside a tokio runtime.
    pub fn start(config: ScriptConfig) -> Result<ScriptTracker, ScriptError> {
        let mut program = Program::parse(&config.script).ok_or(ScriptError::EmptyCommand {
            name: config.name.clone(),
        })?;
        program.ids = resolve_user(&config)?;
        let (tx, state) = watch::channel(None);
        let name = config.name.clone();
        let task = tokio::spawn(track(config, program, tx));
        Ok(ScriptTracker { name, state, task })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Some(true) = OK, Some(false) = KO, None = no result yet.
    pub fn state(&self) -> Option<bool> {
        *self.state.borrow()
    }

    pub fn subscribe(&self) -> watch::Receiver<Option<bool>> {
        self.state.clone()
    }
}

async fn track(config: ScriptConfig, program: Program, tx: watch::Sender<Option<bool>>) {
    let name = config.name.as_str();
    let timeout = if config.timeout.is_zero() {
        config.interval
    } else {
        config.timeout
    };
    // tokio's interval panics on zero; config validation should never let one through.
    let mut ticker = tokio::time::interval(config.interval.max(Duration::from_millis(10)));
    // Runs are due every interval from the first start, like keepalived's timer; after a
    // stall, do not fire a burst of catch-up ticks.
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut counter = RiseFall::new(config.rise, config.fall);
    // keepalived starts from 0, so a first success goes unmentioned and a first failure
    // logs "now returning 1".
    let mut last_status = 0;
    let mut running: Option<Run> = None;
    let terminating = Arc::new(AtomicBool::new(false));

    loop {
        tokio::select! {
            _ = ticker.tick() => {
                if running.is_some() {
                    let what = if terminating.load(Ordering::Relaxed) {
                        "being timed out"
                    } else {
                        "already running"
                    };
                    tracing::info!("Track script {name} is {what}, expect idle - skipping run");
                    continue;
                }
                terminating.store(false, Ordering::Relaxed);
                running = Some(match program.start() {
                    Ok(script) => {
                        let terminating = Arc::clone(&terminating);
                        Box::pin(async move { script.finish(timeout, &terminating).await })
                    }
                    Err(e) => {
                        tracing::warn!("VRRP_Script({name}): cannot run {}: {e}", program.path());
                        let outcome = RunOutcome::from_spawn_error(&e);
                        Box::pin(async move { outcome })
                    }
                });
            }
            outcome = next_outcome(&mut running) => {
                running = None;
                if let RunOutcome::Exited(code) = outcome {
                    if code != last_status {
                        tracing::info!("Script `{name}` now returning {code}");
                        last_status = code;
                    }
                }
                if let Some(ok) = counter.record(outcome.success()) {
                    tracing::info!("{}", state_line(name, ok, outcome));
                    tx.send_replace(Some(ok));
                }
            }
        }
    }
}

/// The running script's outcome; never ready while nothing runs.
async fn next_outcome(running: &mut Option<Run>) -> RunOutcome {
    match running {
        Some(run) => run.await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A script still open for writing somewhere (here by the test itself) cannot be
    /// executed: a writer that lets go within the retries is waited for, one that does not
    /// is an error, not a hang.
    #[tokio::test]
    async fn a_script_busy_for_a_moment_still_starts() {
        use std::io::Write;
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("vrrp-busy-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("busy.sh");
        let mut f = std::fs::File::create(&path).expect("create");
        f.write_all(b"#!/bin/sh\nexit 0\n").expect("write");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        let program = Program::parse(path.to_str().expect("utf-8 path")).expect("program");
        // Held open for writing throughout: busy on every try.
        let Err(err) = program.start() else {
            panic!("a busy script cannot start")
        };
        assert_eq!(err.raw_os_error(), Some(libc::ETXTBSY), "{err}");
        // Let go after 1 ms: a retry starts it.
        let writer = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(1));
            drop(f);
        });
        let started = program.start();
        writer.join().expect("writer");
        let mut running = started.expect("started once the writer let go");
        let status = running.child.wait().await.expect("wait");
        assert!(status.success());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn first_result_decides_at_once() {
        let mut rf = RiseFall::new(3, 3);
        assert_eq!(rf.record(false), Some(false));
        let mut rf = RiseFall::new(3, 3);
        assert_eq!(rf.record(true), Some(true));
    }

    #[test]
    fn rise_needs_consecutive_successes() {
        let mut rf = RiseFall::new(3, 2);
        rf.record(false);
        assert_eq!(rf.record(true), None);
        assert_eq!(rf.record(true), None);
        assert_eq!(rf.record(false), None, "a failure resets the streak");
        assert_eq!(rf.record(true), None);
        assert_eq!(rf.record(true), None);
        assert_eq!(rf.record(true), Some(true));
        assert_eq!(rf.state(), Some(true));
    }

    #[test]
    fn fall_needs_consecutive_failures() {
        let mut rf = RiseFall::new(1, 2);
        rf.record(true);
        assert_eq!(rf.record(false), None);
        assert_eq!(rf.record(true), None);
        assert_eq!(rf.record(false), None);
        assert_eq!(rf.record(false), Some(false));
    }

    #[test]
    fn zero_rise_or_fall_behaves_as_one() {
        let mut rf = RiseFall::new(0, 0);
        rf.record(true);
        assert_eq!(rf.record(false), Some(false));
        assert_eq!(rf.record(true), Some(true));
    }

    #[test]
    fn state_lines_use_keepalived_wording() {
        assert_eq!(
            state_line("chk_web", true, RunOutcome::Exited(0)),
            "VRRP_Script(chk_web) succeeded"
        );
        assert_eq!(
            state_line("chk_web", false, RunOutcome::Exited(1)),
            "VRRP_Script(chk_web) failed (exited with status 1)"
        );
        assert_eq!(
            state_line("chk_web", false, RunOutcome::Signaled(9)),
            "VRRP_Script(chk_web) failed (due to signal 9)"
        );
        assert_eq!(
            state_line("chk_web", false, RunOutcome::TimedOut),
            "VRRP_Script(chk_web) timed_out"
        );
    }

    #[test]
    fn command_line_is_split_without_a_shell() {
        let p = Program::parse("  /bin/echo  a  'b c' $HOME ").expect("words");
        assert_eq!(p.argv, ["/bin/echo", "a", "'b", "c'", "$HOME"]);
        assert!(Program::parse("   ").is_none());
    }
}
