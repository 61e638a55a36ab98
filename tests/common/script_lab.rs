//! The lab scripts (deploy/lab.sh, aa-lab.sh, ecmp-lab.sh, screenshot.sh) driven from a test:
//! a run's output goes to a log file, a run past its limit is killed (our own child, by PID),
//! and a lab is taken `down` when its handle drops, also after a failed assertion.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use testkit::TempDir;

/// The repository (the root crate's manifest directory).
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Runs `cmd` with stdin closed and stdout + stderr in `log`, for at most `limit`. Returns
/// whether it exited with success and what it wrote, with a last line when it was killed.
pub fn run_logged(mut cmd: Command, log: &Path, limit: Duration) -> (bool, String) {
    let what = format!(
        "{} {:?}",
        cmd.get_program().to_string_lossy(),
        cmd.get_args().collect::<Vec<_>>()
    );
    let file = std::fs::File::create(log).expect("log file");
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::from(file.try_clone().expect("dup")))
        .stderr(Stdio::from(file))
        .spawn()
        .unwrap_or_else(|e| panic!("run {what}: {e}"));
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(st) = child.try_wait().expect("wait") {
            break Some(st);
        }
        if Instant::now() >= deadline {
            // Our own child, by PID; the lab it started goes with `down` (or its own trap).
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let text = std::fs::read_to_string(log).unwrap_or_default();
    match status {
        None => (false, format!("{text}\n({what} killed after {limit:?})")),
        Some(st) => (st.success(), text),
    }
}

/// One lab of a `deploy/` script, under its own LAB name (namespace prefix, /run/NAME), run
/// with the test's vrrplb binary and no package installs; `SCRIPT down` on drop.
pub struct ScriptLab {
    script: &'static str,
    pub name: String,
    pub out: TempDir,
    runs: u32,
}

impl ScriptLab {
    /// `script` is a file name in deploy/; logs go to a temporary directory tagged `tag`.
    pub fn new(script: &'static str, name: String, tag: &str) -> ScriptLab {
        ScriptLab {
            script,
            name,
            out: TempDir::new(tag),
            runs: 0,
        }
    }

    /// Runs `deploy/SCRIPT ARGS` with a hard time limit; returns (success, stdout + stderr).
    pub fn run(&mut self, args: &[&str], limit: Duration) -> (bool, String) {
        self.runs += 1;
        let log = self.out.join(&format!("run-{}.log", self.runs));
        let mut cmd = Command::new(repo().join("deploy").join(self.script));
        cmd.args(args)
            .env("LAB", &self.name)
            .env("VRRPLB_BIN", super::BIN)
            .env("LAB_NO_APT", "1");
        run_logged(cmd, &log, limit)
    }

    /// The lab's state directory (the scripts' default LAB_DIR).
    pub fn dir(&self) -> PathBuf {
        PathBuf::from(format!("/run/{}", self.name))
    }
}

impl Drop for ScriptLab {
    fn drop(&mut self) {
        let (ok, text) = self.run(&["down"], Duration::from_secs(60));
        if !ok {
            eprintln!("deploy/{} down failed:\n{text}", self.script);
        }
    }
}
