//! keepalived's global `notify_fifo`: one line per instance state or priority change and per
//! sync group state change, in order, in keepalived's format (`INSTANCE "VI_1" MASTER 101`,
//! `GROUP "G1" MASTER 0`), for consumers written for keepalived. The engine hands lines to a bounded queue and never waits: a full queue, a
//! FIFO without a reader or a full pipe drops the line, and drops are counted and logged.

use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use tokio::sync::{mpsc, watch};
use tracing::{info, warn};
use vrrp::machine::State;
use vrrp::stats::StateSink;

/// Lines waiting for the writer; beyond this they are dropped.
const QUEUE: usize = 1024;

pub struct FifoSink {
    tx: mpsc::Sender<String>,
    dropped: Arc<AtomicU64>,
    /// Where the writer writes; a reload moves it (None: `notify_fifo` is not set, lines
    /// are discarded).
    path: watch::Sender<Option<PathBuf>>,
}

/// keepalived's words for a state in the FIFO (`STOP` when an instance shuts down).
fn word(state: State) -> &'static str {
    match state {
        State::Master => "MASTER",
        State::Backup => "BACKUP",
        State::Fault => "FAULT",
        State::Initialize => "STOP",
    }
}

pub fn line(instance: &str, state: State, priority: u8) -> String {
    format!("INSTANCE \"{instance}\" {} {priority}\n", word(state))
}

/// keepalived writes a group's lines with priority 0.
pub fn group_line(group: &str, state: State) -> String {
    format!("GROUP \"{group}\" {} 0\n", word(state))
}

impl FifoSink {
    /// SIGHUP with another `notify_fifo`: the next line goes to the new FIFO (none: off).
    pub fn retarget(&self, path: Option<PathBuf>) {
        self.path.send_replace(path);
    }

    fn send(&self, line: String) {
        if self.path.borrow().is_none() {
            return;
        }
        if self.tx.try_send(line).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

impl StateSink for FifoSink {
    fn changed(&self, instance: &str, state: State, priority: u8) {
        self.send(line(instance, state, priority));
    }

    fn group_changed(&self, group: &str, state: State) {
        self.send(group_line(group, state));
    }
}

/// Starts the writer (its FIFO is created when missing, as keepalived does); with no path
/// the sink discards lines until a reload sets one.
pub fn start(path: Option<PathBuf>) -> (Arc<FifoSink>, tokio::task::JoinHandle<()>) {
    let (tx, rx) = mpsc::channel(QUEUE);
    let dropped = Arc::new(AtomicU64::new(0));
    let (path_tx, path_rx) = watch::channel(path);
    let sink = Arc::new(FifoSink {
        tx,
        dropped: dropped.clone(),
        path: path_tx,
    });
    let task = tokio::spawn(writer(path_rx, rx, dropped));
    (sink, task)
}

fn create(path: &Path) {
    info!("notify_fifo: writing state changes to {}", path.display());
    if !path.exists() {
        if let Err(e) = nix::unistd::mkfifo(path, nix::sys::stat::Mode::from_bits_truncate(0o600)) {
            warn!("notify_fifo {}: cannot create it: {e}", path.display());
        }
    }
}

async fn writer(
    mut path: watch::Receiver<Option<PathBuf>>,
    mut rx: mpsc::Receiver<String>,
    dropped: Arc<AtomicU64>,
) {
    let mut target = path.borrow_and_update().clone();
    if let Some(p) = &target {
        create(p);
    }
    let mut fifo: Option<std::fs::File> = None;
    let mut reported = 0;
    loop {
        // A new path is taken up (and its FIFO created) at once, before the next line, so
        // a reader can open it in time.
        let line = tokio::select! {
            biased;
            changed = path.changed() => {
                if changed.is_ok() {
                    target = path.borrow_and_update().clone();
                    fifo = None;
                    match &target {
                        Some(p) => create(p),
                        None => info!("notify_fifo: off"),
                    }
                    continue;
                }
                // The sink is gone: drain what it queued.
                match rx.recv().await {
                    Some(l) => l,
                    None => return,
                }
            }
            line = rx.recv() => match line {
                Some(l) => l,
                None => return,
            },
        };
        let Some(target) = &target else { continue };
        if fifo.is_none() {
            // Non-blocking: with no reader the open fails (ENXIO) instead of waiting.
            fifo = std::fs::OpenOptions::new()
                .write(true)
                .custom_flags(libc::O_NONBLOCK)
                .open(target)
                .ok();
        }
        let written = match fifo.as_mut() {
            Some(f) => match f.write(line.as_bytes()) {
                Ok(n) if n == line.len() => true,
                Ok(_) => true, // PIPE_BUF-sized lines are written whole or not at all
                Err(_) => {
                    // No reader any more (EPIPE) or a full pipe: reopen for the next line.
                    fifo = None;
                    false
                }
            },
            None => false,
        };
        if !written {
            dropped.fetch_add(1, Ordering::Relaxed);
        }
        let d = dropped.load(Ordering::Relaxed);
        if d > reported {
            warn!(
                "notify_fifo {}: {} line(s) dropped so far (no reader, or it does not keep up)",
                target.display(),
                d
            );
            reported = d;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keepalived_line_format() {
        assert_eq!(
            line("VI_1", State::Master, 101),
            "INSTANCE \"VI_1\" MASTER 101\n"
        );
        assert_eq!(
            line("VI_1", State::Initialize, 0),
            "INSTANCE \"VI_1\" STOP 0\n"
        );
        assert_eq!(group_line("G1", State::Fault), "GROUP \"G1\" FAULT 0\n");
        assert_eq!(group_line("G1", State::Initialize), "GROUP \"G1\" STOP 0\n");
    }
}
