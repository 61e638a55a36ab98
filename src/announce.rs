//! Announced addresses (the `announce` section): each one is held on its local interface
//! while this box is healthy (its backends have servers UP, its scripts pass, its frontends
//! listen) and removed when not, so the box's bgpd, announcing the /32 only while the address
//! exists, adds or withdraws this box from the routers' ECMP set. Like a VRRP VIP, the
//! address goes on SIGTERM and stays after SIGKILL: then BGP's session loss (BFD, hold
//! time) withdraws the route, since bgpd dies with the box or loses its peer.

use crate::config::announce::Announcement;
use crate::wiring::{self, GateTable};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};
use tokio::sync::{oneshot, watch, Notify};
use tokio::task::JoinHandle;
use tracing::{error, info, warn};
use vrrp::io::netlink::Netlink;
use vrrp::track::script::ScriptTracker;

/// How often an announcement that could not be made (a frontend that cannot listen, a
/// netlink error) is tried again.
const RETRY: Duration = Duration::from_secs(1);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Waiting for a first result of its scripts.
    Pending,
    Announced,
    Withdrawn,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Pending => "pending",
            State::Announced => "announced",
            State::Withdrawn => "withdrawn",
        }
    }
}

/// What `vrrplb status` shows of one announcement.
#[derive(Debug, Clone)]
pub struct Status {
    pub state: State,
    pub reason: String,
    pub since: SystemTime,
    pub withdrawals: u64,
}

/// The health of an announcement's inputs.
#[derive(Debug, PartialEq, Eq)]
enum Verdict {
    Healthy,
    Unhealthy(String),
    Pending,
}

/// Backends first (the common cause), then scripts; a script with no result yet keeps the
/// verdict open rather than withdrawing a box that has just (re)started.
fn judge(backends: &[(String, u32, Option<usize>)], scripts: &[(String, Option<bool>)]) -> Verdict {
    for (name, min_up, up) in backends {
        match up {
            None => return Verdict::Unhealthy(format!("backend {name}: not running")),
            Some(0) => return Verdict::Unhealthy(format!("backend {name}: no server up")),
            Some(n) if *n < *min_up as usize => {
                return Verdict::Unhealthy(format!(
                    "backend {name}: {n} server(s) up, {min_up} needed"
                ))
            }
            _ => {}
        }
    }
    let mut pending = false;
    for (name, ok) in scripts {
        match ok {
            Some(false) => return Verdict::Unhealthy(format!("script {name}: failing")),
            None => pending = true,
            Some(true) => {}
        }
    }
    if pending {
        Verdict::Pending
    } else {
        Verdict::Healthy
    }
}

/// What an announcement's task needs from the rest of the daemon.
#[derive(Clone)]
pub struct Wiring {
    pub gates: GateTable,
    pub masters: Arc<Mutex<HashSet<String>>>,
}

/// How a task ends.
enum Stop {
    /// SIGTERM or removed from the file: withdraw.
    Withdraw,
    /// Replaced by a reload: leave the address and the listeners to the successor.
    HandOver,
}

struct Running {
    cfg: Announcement,
    status: watch::Receiver<Status>,
    stop: oneshot::Sender<Stop>,
    task: JoinHandle<()>,
}

/// The running announcements.
pub struct Announcers {
    wiring: Wiring,
    running: Vec<Running>,
}

/// One announcement as the status view reads it.
pub struct Source {
    pub cfg: Announcement,
    pub status: watch::Receiver<Status>,
}

impl Announcers {
    pub fn new(wiring: Wiring) -> Announcers {
        Announcers {
            wiring,
            running: Vec::new(),
        }
    }

    pub fn sources(&self) -> Vec<Source> {
        self.running
            .iter()
            .map(|r| Source {
                cfg: r.cfg.clone(),
                status: r.status.clone(),
            })
            .collect()
    }

    /// Starts every announcement of a freshly started daemon.
    pub fn start_all(
        &mut self,
        cfgs: &[Announcement],
        backend_up: &HashMap<String, watch::Receiver<usize>>,
    ) {
        for c in cfgs {
            self.start(c.clone(), backend_up, false);
        }
    }

    fn start(
        &mut self,
        cfg: Announcement,
        backend_up: &HashMap<String, watch::Receiver<usize>>,
        held: bool,
    ) {
        let (status_tx, status) = watch::channel(Status {
            state: State::Pending,
            reason: "starting".into(),
            since: SystemTime::now(),
            withdrawals: 0,
        });
        let (stop, stop_rx) = oneshot::channel();
        let inputs = Inputs::new(&cfg, backend_up);
        let task = tokio::spawn(run(
            cfg.clone(),
            inputs,
            self.wiring.clone(),
            held,
            stop_rx,
            status_tx,
        ));
        self.running.push(Running {
            cfg,
            status,
            stop,
            task,
        });
    }

    /// SIGHUP: an unchanged announcement runs on; a changed one is handed to a new task
    /// without a withdrawal (when it is healthy the new task finds the address in place); a
    /// removed one withdraws.
    pub async fn reload(
        &mut self,
        new: &[Announcement],
        backend_up: &HashMap<String, watch::Receiver<usize>>,
    ) {
        let mut keep = Vec::new();
        for r in std::mem::take(&mut self.running) {
            match new.iter().find(|n| n.name == r.cfg.name) {
                Some(n) if *n == r.cfg => keep.push(r),
                Some(n) if n.addr == r.cfg.addr && n.interface == r.cfg.interface => {
                    info!("announce {}: changed; re-evaluated in place", n.name);
                    let held = r.status.borrow().state == State::Announced;
                    finish(r, Stop::HandOver).await;
                    self.start(n.clone(), backend_up, held);
                    continue;
                }
                Some(_) | None => {
                    info!("announce {}: removed or moved; withdrawing it", r.cfg.name);
                    finish(r, Stop::Withdraw).await;
                }
            }
        }
        self.running = keep;
        for n in new {
            if !self.running.iter().any(|r| r.cfg.name == n.name) {
                self.start(n.clone(), backend_up, false);
            }
        }
    }

    /// SIGTERM: every address is withdrawn, all at once.
    pub async fn stop_everything(&mut self) {
        let all: Vec<_> = std::mem::take(&mut self.running)
            .into_iter()
            .map(|r| tokio::spawn(finish(r, Stop::Withdraw)))
            .collect();
        for t in all {
            let _ = t.await;
        }
    }
}

async fn finish(r: Running, how: Stop) {
    let _ = r.stop.send(how);
    let _ = tokio::time::timeout(Duration::from_secs(5), r.task).await;
}

/// The live inputs of one announcement; every change of any of them rings `changed`.
struct Inputs {
    backends: Vec<(String, u32, Option<watch::Receiver<usize>>)>,
    scripts: Vec<(String, watch::Receiver<Option<bool>>)>,
    /// Kept for their tasks (dropping a tracker stops its script).
    _trackers: Vec<ScriptTracker>,
    /// Scripts that cannot run at all (bad command line, unknown user).
    broken: Option<String>,
    changed: Arc<Notify>,
    forwarders: Vec<JoinHandle<()>>,
}

impl Drop for Inputs {
    fn drop(&mut self) {
        for f in &self.forwarders {
            f.abort();
        }
    }
}

impl Inputs {
    fn new(cfg: &Announcement, backend_up: &HashMap<String, watch::Receiver<usize>>) -> Inputs {
        let changed = Arc::new(Notify::new());
        let mut forwarders = Vec::new();
        let backends: Vec<_> = cfg
            .backends
            .iter()
            .map(|(name, min)| (name.clone(), *min, backend_up.get(name).cloned()))
            .collect();
        for rx in backends.iter().filter_map(|b| b.2.clone()) {
            forwarders.push(ring_on_change(rx, changed.clone()));
        }
        let mut trackers = Vec::new();
        let mut scripts = Vec::new();
        let mut broken = None;
        for s in &cfg.scripts {
            match ScriptTracker::start(s.clone()) {
                Ok(t) => {
                    forwarders.push(ring_on_change(t.subscribe(), changed.clone()));
                    scripts.push((s.name.clone(), t.subscribe()));
                    trackers.push(t);
                }
                Err(e) => broken = Some(format!("script {}: {e}", s.name)),
            }
        }
        Inputs {
            backends,
            scripts,
            _trackers: trackers,
            broken,
            changed,
            forwarders,
        }
    }

    fn verdict(&self) -> Verdict {
        if let Some(b) = &self.broken {
            return Verdict::Unhealthy(b.clone());
        }
        let backends: Vec<_> = self
            .backends
            .iter()
            .map(|(n, m, rx)| (n.clone(), *m, rx.as_ref().map(|r| *r.borrow())))
            .collect();
        let scripts: Vec<_> = self
            .scripts
            .iter()
            .map(|(n, rx)| (n.clone(), *rx.borrow()))
            .collect();
        judge(&backends, &scripts)
    }
}

fn ring_on_change<T: Send + Sync + 'static>(
    mut rx: watch::Receiver<T>,
    bell: Arc<Notify>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        while rx.changed().await.is_ok() {
            bell.notify_one();
        }
    })
}

/// One announcement's life: judge, act on a change of verdict, wait for the next change.
async fn run(
    cfg: Announcement,
    inputs: Inputs,
    wiring: Wiring,
    held: bool,
    mut stop: oneshot::Receiver<Stop>,
    status: watch::Sender<Status>,
) {
    let mut a = Announcer {
        cfg,
        wiring,
        netlink: Netlink::new().map_err(|e| e.to_string()),
        status,
        state: if held {
            State::Announced
        } else {
            State::Pending
        },
    };
    if held {
        a.publish(State::Announced, "handed over by a reload".into());
    }
    loop {
        let retry = match inputs.verdict() {
            Verdict::Healthy if a.state != State::Announced => a.announce().await.is_err(),
            Verdict::Unhealthy(why) if a.state != State::Withdrawn => {
                a.withdraw(&why).await;
                false
            }
            // Still withdrawn, maybe for another reason now: status says the current one.
            Verdict::Unhealthy(why) => {
                if a.status.borrow().reason != why {
                    a.publish(State::Withdrawn, why);
                }
                false
            }
            _ => false,
        };
        tokio::select! {
            how = &mut stop => {
                if !matches!(how, Ok(Stop::HandOver)) && a.state != State::Withdrawn {
                    a.withdraw("stopping").await;
                }
                return;
            }
            _ = inputs.changed.notified() => {}
            _ = tokio::time::sleep(RETRY), if retry => {}
        }
    }
}

struct Announcer {
    cfg: Announcement,
    wiring: Wiring,
    netlink: Result<Netlink, String>,
    status: watch::Sender<Status>,
    state: State,
}

impl Announcer {
    fn label(&self) -> String {
        let addr = self.cfg.address();
        if self.cfg.name == self.cfg.addr.to_string() {
            format!("announce {addr}")
        } else {
            format!("announce {} {addr}", self.cfg.name)
        }
    }

    fn publish(&mut self, state: State, reason: String) {
        let was = self.state;
        self.state = state;
        // A retry that ends as it started changes nothing (`since` stays).
        if was == state && self.status.borrow().reason == reason {
            return;
        }
        self.status.send_modify(|s| {
            if was == State::Announced && state == State::Withdrawn {
                s.withdrawals += 1;
            }
            s.state = state;
            s.reason = reason;
            s.since = SystemTime::now();
        });
    }

    /// The address first, then the listeners on it: a frontend bound to the address can
    /// only listen once it exists. Any failure undoes both and withdraws.
    async fn announce(&mut self) -> Result<(), ()> {
        let added = match &self.netlink {
            Ok(nl) => nl
                .add_address(
                    &self.cfg.interface,
                    self.cfg.addr,
                    self.cfg.prefix_len,
                    None,
                )
                .await
                .map_err(|e| e.to_string()),
            Err(e) => Err(e.clone()),
        };
        if let Err(e) = added {
            // Logged once by the withdrawal (retried every second, not logged again).
            let why = format!("cannot add the address to {}: {e}", self.cfg.interface);
            self.withdraw(&why).await;
            return Err(());
        }
        let key = self.cfg.gate_key();
        let failed = wiring::open_source(&self.wiring.gates, &self.wiring.masters, &key).await;
        if let Some((name, e)) = failed.into_iter().next() {
            self.withdraw(&format!("frontend {name} cannot listen: {e}"))
                .await;
            return Err(());
        }
        info!("{}: announced on {}", self.label(), self.cfg.interface);
        self.publish(State::Announced, "healthy".into());
        Ok(())
    }

    /// Listeners close first (as before a VRRP VIP goes), then the address goes, which makes
    /// bgpd withdraw the route.
    async fn withdraw(&mut self, why: &str) {
        let key = self.cfg.gate_key();
        for (name, e) in wiring::close_source(&self.wiring.gates, &self.wiring.masters, &key).await
        {
            error!("{}: cannot close frontend {name}: {e}", self.label());
        }
        if let Ok(nl) = &self.netlink {
            if let Err(e) = nl
                .del_address(&self.cfg.interface, self.cfg.addr, self.cfg.prefix_len)
                .await
            {
                // Once: a retry of a failed announcement withdraws again.
                if self.state != State::Withdrawn {
                    error!("{}: cannot remove the address: {e}", self.label());
                }
            }
        }
        if self.state != State::Withdrawn {
            warn!("{}: withdrawn ({why})", self.label());
        }
        self.publish(State::Withdrawn, why.to_owned());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(name: &str, min: u32, up: Option<usize>) -> (String, u32, Option<usize>) {
        (name.to_owned(), min, up)
    }

    #[test]
    fn a_box_is_healthy_when_every_backend_has_enough_servers_and_every_script_passes() {
        let ok = [("chk".to_owned(), Some(true))];
        assert_eq!(judge(&[b("www", 1, Some(2))], &ok), Verdict::Healthy);
        assert_eq!(judge(&[], &[]), Verdict::Healthy);
        assert_eq!(
            judge(&[b("www", 1, Some(0))], &ok),
            Verdict::Unhealthy("backend www: no server up".into())
        );
        assert_eq!(
            judge(&[b("www", 2, Some(1))], &ok),
            Verdict::Unhealthy("backend www: 1 server(s) up, 2 needed".into())
        );
        assert_eq!(
            judge(&[b("www", 1, Some(1))], &[("chk".to_owned(), Some(false))]),
            Verdict::Unhealthy("script chk: failing".into())
        );
    }

    #[test]
    fn a_script_without_a_result_keeps_the_verdict_open_but_a_dead_backend_does_not() {
        let none = [("chk".to_owned(), None)];
        assert_eq!(judge(&[b("www", 1, Some(1))], &none), Verdict::Pending);
        assert_eq!(
            judge(&[b("www", 1, Some(0))], &none),
            Verdict::Unhealthy("backend www: no server up".into())
        );
    }
}
