//! A backend at run time: its servers' state (UP/DOWN from the checks, requests in flight),
//! server selection with the balancing algorithms, and the FIFO queues of lb.md §13.
//!
//! Locking: one short mutex per backend guards the round-robin state and the queues. A
//! request in flight is a [`Slot`]; dropping it frees the server. Servers without `maxconn`
//! are released with a single atomic; a server with `maxconn` takes the lock to hand its
//! free slot to the oldest waiter.

use std::collections::VecDeque;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::{oneshot, watch};

use crate::config::{BackendConfig, Balance, ServerConfig};
use crate::observe::meters::Meters;
use crate::upstream::balance::{self, Candidate, SmoothRoundRobin};
use crate::upstream::connector::Upstream;
use crate::upstream::probe::ProbeResult;
use crate::upstream::tls::{ServerTls, TlsSetupError};

/// A backend's `cookie:` settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CookiePolicy {
    pub name: String,
    /// Remove the cookie from requests before forwarding them.
    pub indirect: bool,
    /// Add `Cache-Control: private` when inserting.
    pub nocache: bool,
    pub httponly: bool,
    pub secure: bool,
    pub domain: Option<String>,
}

/// Servers of a backend that can take requests, published for `require_available`, the
/// stats page and VRRP `track_backends`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BackendHealth {
    /// Usable servers (UP or unchecked), backups included.
    pub up: usize,
    pub total: usize,
}

/// Numbers for the UP/DOWN log line.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Transition {
    pub active: usize,
    pub backup: usize,
    pub sessions: usize,
    pub requeued: usize,
    pub queued: usize,
}

pub(crate) struct Server {
    pub(crate) name: Arc<str>,
    pub(crate) cfg: ServerConfig,
    pub(crate) upstream: Upstream,
    up: AtomicBool,
    inflight: AtomicUsize,
    check: Mutex<(String, Option<ProbeResult>)>,
    /// Stats counters; the same ones across reloads.
    pub(crate) meters: Arc<Meters>,
    /// Bumped each time a check marks the server DOWN: tcp sessions of a backend with
    /// `on_marked_down: shutdown_sessions` watch it.
    marked_down: watch::Sender<u64>,
}

impl Server {
    pub(crate) fn is_up(&self) -> bool {
        self.up.load(Ordering::Acquire)
    }

    pub(crate) fn inflight(&self) -> usize {
        self.inflight.load(Ordering::Acquire)
    }

    fn is_full(&self) -> bool {
        self.cfg.maxconn > 0 && self.inflight() >= self.cfg.maxconn
    }

    pub(crate) fn marked_down(&self) -> watch::Receiver<u64> {
        self.marked_down.subscribe()
    }

    pub(crate) fn set_check_status(&self, status: String, last: Option<ProbeResult>) {
        if let Ok(mut c) = self.check.lock() {
            c.0 = status;
            if last.is_some() {
                c.1 = last;
            }
        }
    }

    pub(crate) fn check_status(&self) -> (String, Option<ProbeResult>) {
        match self.check.lock() {
            Ok(c) => c.clone(),
            Err(_) => (String::new(), None),
        }
    }
}

struct Waiter {
    seq: u64,
    tx: oneshot::Sender<Slot>,
}

#[derive(Default)]
struct LbState {
    rr: SmoothRoundRobin,
    last_pick: Option<usize>,
    backend_queue: VecDeque<Waiter>,
    server_queues: Vec<VecDeque<Waiter>>,
    next_seq: u64,
    usable: Vec<usize>,
    eligible: Vec<Candidate>,
}

pub(crate) struct Backend {
    pub(crate) name: Arc<str>,
    pub(crate) cfg: BackendConfig,
    pub(crate) cookie: Option<CookiePolicy>,
    /// `host:port` of every server, for the reverse rewrite of Location headers.
    pub(crate) authorities: Vec<String>,
    pub(crate) servers: Vec<Server>,
    lb: Mutex<LbState>,
    queued: AtomicUsize,
    usable: AtomicUsize,
    health: watch::Sender<BackendHealth>,
    pub(crate) meters: Arc<Meters>,
}

/// Outcome of asking for a server.
pub(crate) enum Acquire {
    Slot(Slot),
    Queued(Ticket),
    NoServer,
}

impl Backend {
    /// Fails only when the backend's `tls` files do not load.
    #[cfg(test)]
    pub(crate) fn new(cfg: BackendConfig) -> Result<Arc<Self>, TlsSetupError> {
        Backend::with_meters(cfg, None)
    }

    /// A backend whose counters continue those of `previous` (a reload): the backend's and
    /// every server's of the same name. Fails only when the backend's `tls` files do not load.
    pub(crate) fn with_meters(
        cfg: BackendConfig,
        previous: Option<&Backend>,
    ) -> Result<Arc<Self>, TlsSetupError> {
        let tls = cfg.tls.as_ref().map(ServerTls::load).transpose()?;
        let meters_of = |name: &str| {
            previous
                .and_then(|p| p.servers.iter().find(|o| &*o.name == name))
                .map(|o| o.meters.clone())
                .unwrap_or_else(|| Arc::new(Meters::new()))
        };
        let servers: Vec<Server> = cfg
            .servers
            .iter()
            .map(|s| Server {
                name: s.name.as_str().into(),
                upstream: Upstream::new(
                    s.addr,
                    &cfg.timeouts,
                    tls.as_ref().map(|t| t.for_server(s.addr)),
                    cfg.send_proxy,
                ),
                cfg: s.clone(),
                up: AtomicBool::new(true),
                inflight: AtomicUsize::new(0),
                check: Mutex::new((
                    if cfg.health_check.is_some() && s.check {
                        String::from("UP")
                    } else {
                        String::from("no check")
                    },
                    None,
                )),
                meters: meters_of(&s.name),
                marked_down: watch::channel(0).0,
            })
            .collect();
        let checked = cfg.health_check.as_ref();
        for s in &servers {
            // `initial_state: down` starts checked servers DOWN.
            if checked.is_some_and(|c| !c.initial_up) && s.cfg.check {
                s.up.store(false, Ordering::Release);
            }
        }
        let n = servers.len();
        let up = servers.iter().filter(|s| s.is_up()).count();
        let (health, _) = watch::channel(BackendHealth { up, total: n });
        Ok(Arc::new(Backend {
            name: cfg.name.as_str().into(),
            cookie: cfg.cookie.as_ref().map(|c| CookiePolicy {
                name: c.name.clone(),
                indirect: c.indirect,
                nocache: c.nocache,
                httponly: c.httponly,
                secure: c.secure,
                domain: c.domain.clone(),
            }),
            authorities: cfg.servers.iter().map(|s| s.addr.to_string()).collect(),
            lb: Mutex::new(LbState {
                server_queues: (0..n).map(|_| VecDeque::new()).collect(),
                ..LbState::default()
            }),
            cfg,
            servers,
            queued: AtomicUsize::new(0),
            usable: AtomicUsize::new(up),
            health,
            meters: previous
                .map(|p| p.meters.clone())
                .unwrap_or_else(|| Arc::new(Meters::new())),
        }))
    }

    fn lock(&self) -> MutexGuard<'_, LbState> {
        // A panic while holding the lock cannot leave the queues inconsistent in a way worse
        // than refusing service, so a poisoned lock is simply reused.
        self.lb.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn has_usable_server(&self) -> bool {
        self.usable.load(Ordering::Acquire) > 0
    }

    pub(crate) fn health(&self) -> watch::Receiver<BackendHealth> {
        self.health.subscribe()
    }

    pub(crate) fn queued(&self) -> usize {
        self.queued.load(Ordering::Acquire)
    }

    /// Server index whose cookie value is `value` (empty values never match).
    pub(crate) fn server_by_cookie(&self, value: &str) -> Option<usize> {
        if value.is_empty() {
            return None;
        }
        self.servers
            .iter()
            .position(|s| s.cfg.cookie_value() == value)
    }

    /// Candidates (lb.md §3) into `st.usable`: usable non-backup servers with weight, else
    /// the first usable backup (all of them with `all_backups`). `exclude` is left out unless
    /// it is the only one.
    fn fill_candidates(&self, st: &mut LbState, exclude: Option<usize>) {
        for pass_exclude in [exclude, None] {
            st.usable.clear();
            let ok =
                |i: usize, s: &Server| Some(i) != pass_exclude && s.is_up() && s.cfg.weight > 0;
            st.usable.extend(
                self.servers
                    .iter()
                    .enumerate()
                    .filter(|(i, s)| !s.cfg.backup && ok(*i, s))
                    .map(|(i, _)| i),
            );
            if st.usable.is_empty() {
                let backups = self
                    .servers
                    .iter()
                    .enumerate()
                    .filter(|(i, s)| s.cfg.backup && ok(*i, s))
                    .map(|(i, _)| i);
                if self.cfg.all_backups {
                    st.usable.extend(backups);
                } else {
                    st.usable.extend(backups.take(1));
                }
            }
            if !st.usable.is_empty() || pass_exclude.is_none() {
                return;
            }
        }
    }

    /// Whether a retry after a failed connect to `failed` moves to another server at once
    /// (with `redispatch`; HAProxy's `option redispatch` does the same): on the last attempt,
    /// and on every attempt when the failed server is down, or when the request is not pinned
    /// by a cookie, the algorithm does not hash the client (roundrobin, leastconn) and another
    /// active server is up. Without this a dead server not yet marked DOWN by its checks
    /// held each request sent to it for the retry back-offs (1 s each), though another
    /// server could answer at once.
    pub(crate) fn redispatch_now(&self, failed: usize, pinned: bool, last: bool) -> bool {
        if !self.cfg.redispatch {
            return false;
        }
        let failed_down = self.servers.get(failed).is_none_or(|s| !s.is_up());
        let other_active = self
            .servers
            .iter()
            .enumerate()
            .any(|(i, s)| i != failed && !s.cfg.backup && s.is_up() && s.cfg.weight > 0);
        last || failed_down || (!pinned && self.cfg.balance != Balance::Source && other_active)
    }

    /// Picks a server: `persist` (a valid cookie) wins when that server is usable; otherwise
    /// the algorithm over the candidates, avoiding `exclude` (redispatch) when possible.
    pub(crate) fn acquire(
        self: &Arc<Self>,
        persist: Option<usize>,
        exclude: Option<usize>,
        client: IpAddr,
    ) -> Acquire {
        let mut guard = self.lock();
        let st = &mut *guard;
        if let Some(s) = persist.filter(|&s| self.servers.get(s).is_some_and(Server::is_up)) {
            return self.take_or_queue(st, s);
        }
        self.fill_candidates(st, exclude);
        if st.usable.is_empty() {
            return Acquire::NoServer;
        }
        st.eligible.clear();
        for &i in &st.usable {
            let s = &self.servers[i];
            if self.cfg.balance == Balance::Source || !s.is_full() {
                st.eligible.push(Candidate {
                    server: i,
                    weight: s.cfg.weight,
                    load: s.inflight() + st.server_queues[i].len(),
                });
            }
        }
        let pick = match self.cfg.balance {
            Balance::RoundRobin => st.rr.pick(&st.usable, &st.eligible),
            Balance::LeastConn => balance::least_conn(&st.eligible, st.last_pick),
            Balance::Source => balance::source(&st.eligible, client),
        };
        match pick {
            Some(s) => {
                st.last_pick = Some(s);
                self.take_or_queue(st, s)
            }
            None => {
                let (tx, rx) = oneshot::channel();
                let seq = self.enqueue(st, None, tx);
                Acquire::Queued(Ticket {
                    backend: self.clone(),
                    seq,
                    rx,
                    pending: true,
                })
            }
        }
    }

    fn take_or_queue(self: &Arc<Self>, st: &mut LbState, s: usize) -> Acquire {
        let server = &self.servers[s];
        if !server.is_full() && st.server_queues[s].is_empty() {
            return Acquire::Slot(self.take(s));
        }
        let (tx, rx) = oneshot::channel();
        let seq = self.enqueue(st, Some(s), tx);
        Acquire::Queued(Ticket {
            backend: self.clone(),
            seq,
            rx,
            pending: true,
        })
    }

    fn enqueue(&self, st: &mut LbState, server: Option<usize>, tx: oneshot::Sender<Slot>) -> u64 {
        let seq = st.next_seq;
        st.next_seq += 1;
        let w = Waiter { seq, tx };
        match server {
            Some(s) => {
                st.server_queues[s].push_back(w);
                self.servers[s].meters.queued(st.server_queues[s].len());
            }
            None => st.backend_queue.push_back(w),
        }
        let queued = self.queued.fetch_add(1, Ordering::AcqRel) + 1;
        self.meters.queued(queued);
        seq
    }

    fn take(self: &Arc<Self>, s: usize) -> Slot {
        let server = &self.servers[s];
        let inflight = server.inflight.fetch_add(1, Ordering::AcqRel) + 1;
        server.meters.session_started(inflight);
        Slot {
            backend: self.clone(),
            server: s,
            armed: true,
        }
    }

    /// May `s` serve the backend queue? Only when it is one of the current candidates.
    fn is_candidate(&self, st: &mut LbState, s: usize) -> bool {
        self.fill_candidates(st, None);
        st.usable.contains(&s)
    }

    /// Hands free slots of server `s` to the oldest waiters of its queue and of the backend
    /// queue (lb.md §13: the older head of the two).
    fn dispatch(self: &Arc<Self>, st: &mut LbState, s: usize) {
        let server = &self.servers[s];
        if !server.is_up() {
            return;
        }
        let serves_backend = self.cfg.balance != Balance::Source && self.is_candidate(st, s);
        while !server.is_full() {
            let own = st.server_queues[s].front().map(|w| w.seq);
            let shared = if serves_backend {
                st.backend_queue.front().map(|w| w.seq)
            } else {
                None
            };
            let waiter = match (own, shared) {
                (Some(a), Some(b)) if b < a => st.backend_queue.pop_front(),
                (Some(_), _) => st.server_queues[s].pop_front(),
                (None, Some(_)) => st.backend_queue.pop_front(),
                (None, None) => break,
            };
            let Some(waiter) = waiter else { break };
            self.queued.fetch_sub(1, Ordering::AcqRel);
            let slot = self.take(s);
            if let Err(mut unwanted) = waiter.tx.send(slot) {
                // The waiter left (timeout or client gone): give the slot back without
                // re-entering the lock we hold.
                unwanted.armed = false;
                server.inflight.fetch_sub(1, Ordering::AcqRel);
            }
        }
    }

    fn release(self: &Arc<Self>, s: usize) {
        let server = &self.servers[s];
        if server.cfg.maxconn == 0 {
            server.inflight.fetch_sub(1, Ordering::AcqRel);
            return;
        }
        let mut st = self.lock();
        server.inflight.fetch_sub(1, Ordering::AcqRel);
        if self.queued() > 0 {
            self.dispatch(&mut st, s);
        }
    }

    fn cancel(&self, seq: u64) {
        let mut st = self.lock();
        let st = &mut *st;
        let queues = std::iter::once(&mut st.backend_queue).chain(st.server_queues.iter_mut());
        for q in queues {
            if let Some(pos) = q.iter().position(|w| w.seq == seq) {
                q.remove(pos);
                self.queued.fetch_sub(1, Ordering::AcqRel);
                return;
            }
        }
    }

    /// On a reload: servers that were checked in `old` under the same name and address keep
    /// their UP/DOWN state instead of starting over (HAProxy's server-state file does this
    /// across a reload), so a reload does not flap `track_backends`. Before the checks start.
    pub(crate) fn seed_from(self: &Arc<Self>, old: &Backend) {
        let checked = self.cfg.health_check.is_some();
        for (i, s) in self.servers.iter().enumerate() {
            let prev = old
                .servers
                .iter()
                .find(|o| o.name == s.name && o.cfg.addr == s.cfg.addr && o.cfg.check);
            if let (true, true, Some(prev)) = (checked, s.cfg.check, prev) {
                if prev.is_up() != s.is_up() {
                    self.set_server_up(i, prev.is_up());
                }
                let (status, last) = prev.check_status();
                s.set_check_status(status, last);
            }
        }
    }

    /// A health check flipped server `s`. DOWN: its queue moves to the backend queue and its
    /// idle pooled connections are closed. Either way waiting requests are re-dispatched.
    pub(crate) fn set_server_up(self: &Arc<Self>, s: usize, up: bool) -> Transition {
        let Some(server) = self.servers.get(s) else {
            return Transition::default();
        };
        let mut guard = self.lock();
        let st = &mut *guard;
        server.up.store(up, Ordering::Release);
        let mut requeued = 0;
        if !up {
            let moved: Vec<Waiter> = st.server_queues[s].drain(..).collect();
            requeued = moved.len();
            if requeued > 0 {
                st.backend_queue.extend(moved);
                st.backend_queue.make_contiguous().sort_by_key(|w| w.seq);
            }
            server.upstream.reset();
            server.marked_down.send_modify(|n| *n += 1);
        }
        for i in 0..self.servers.len() {
            if self.queued() == 0 {
                break;
            }
            self.dispatch(st, i);
        }
        let active = self
            .servers
            .iter()
            .filter(|x| !x.cfg.backup && x.is_up())
            .count();
        let backup = self
            .servers
            .iter()
            .filter(|x| x.cfg.backup && x.is_up())
            .count();
        let t = Transition {
            active,
            backup,
            sessions: server.inflight(),
            requeued,
            queued: self.queued(),
        };
        drop(guard);
        self.usable.store(active + backup, Ordering::Release);
        self.health.send_replace(BackendHealth {
            up: active + backup,
            total: self.servers.len(),
        });
        t
    }
}

/// One request in flight on a server; dropping it frees the server.
pub(crate) struct Slot {
    backend: Arc<Backend>,
    server: usize,
    armed: bool,
}

impl Slot {
    pub(crate) fn server_index(&self) -> usize {
        self.server
    }

    pub(crate) fn server(&self) -> &Server {
        &self.backend.servers[self.server]
    }

    pub(crate) fn backend(&self) -> &Backend {
        &self.backend
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        if self.armed {
            self.armed = false;
            self.backend.release(self.server);
        }
    }
}

/// A place in a queue.
pub(crate) struct Ticket {
    backend: Arc<Backend>,
    seq: u64,
    rx: oneshot::Receiver<Slot>,
    pending: bool,
}

impl Ticket {
    /// Waits for a slot at most `timeout`; `None` = queue timeout (503 `sQ--`).
    pub(crate) async fn wait(mut self, timeout: Duration) -> Option<Slot> {
        let got = tokio::time::timeout(timeout, &mut self.rx).await;
        match got {
            Ok(Ok(slot)) => {
                self.pending = false;
                Some(slot)
            }
            _ => {
                self.pending = false;
                self.backend.cancel(self.seq);
                // A slot may have been handed over just as the timer fired.
                self.rx.try_recv().ok()
            }
        }
    }

    /// Requests ahead of this one in its queue (log `sq`/`bq` are approximated by this).
    pub(crate) fn position(&self) -> usize {
        self.backend.queued()
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        if self.pending {
            self.backend.cancel(self.seq);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::SocketAddr;

    fn backend(balance: Balance, servers: &[(u32, usize, bool)]) -> Arc<Backend> {
        let servers = servers
            .iter()
            .enumerate()
            .map(|(i, &(weight, maxconn, backup))| {
                let addr: SocketAddr = format!("127.0.0.1:{}", 10000 + i).parse().unwrap();
                let mut s = ServerConfig::new(format!("s{i}"), addr);
                s.weight = weight;
                s.maxconn = maxconn;
                s.backup = backup;
                s
            })
            .collect();
        let mut cfg = BackendConfig::new("b", servers);
        cfg.balance = balance;
        Backend::new(cfg).unwrap()
    }

    const IP: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

    fn pick(b: &Arc<Backend>) -> Option<Slot> {
        match b.acquire(None, None, IP) {
            Acquire::Slot(s) => Some(s),
            _ => None,
        }
    }

    #[tokio::test]
    async fn backups_only_when_no_normal_server_is_up() {
        let b = backend(
            Balance::RoundRobin,
            &[(1, 0, false), (1, 0, true), (1, 0, true)],
        );
        assert_eq!(pick(&b).unwrap().server_index(), 0);
        b.set_server_up(0, false);
        for _ in 0..3 {
            assert_eq!(pick(&b).unwrap().server_index(), 1, "first backup only");
        }
        b.set_server_up(1, false);
        assert_eq!(pick(&b).unwrap().server_index(), 2);
        b.set_server_up(2, false);
        assert!(matches!(b.acquire(None, None, IP), Acquire::NoServer));
        assert_eq!(*b.health().borrow(), BackendHealth { up: 0, total: 3 });
    }

    #[tokio::test]
    async fn empty_backend_has_no_server() {
        let b = backend(Balance::LeastConn, &[]);
        assert!(matches!(b.acquire(None, None, IP), Acquire::NoServer));
        assert!(!b.has_usable_server());
    }

    #[tokio::test]
    async fn leastconn_avoids_the_busy_server() {
        let b = backend(Balance::LeastConn, &[(1, 0, false), (1, 0, false)]);
        let busy = pick(&b).unwrap();
        let s = busy.server_index();
        for _ in 0..3 {
            assert_ne!(pick(&b).unwrap().server_index(), s);
        }
    }

    #[tokio::test]
    async fn full_server_queues_fifo_and_hands_over_on_release() {
        let b = backend(Balance::RoundRobin, &[(1, 1, false)]);
        let first = pick(&b).unwrap();
        let Acquire::Queued(t1) = b.acquire(None, None, IP) else {
            panic!("expected queue")
        };
        let Acquire::Queued(t2) = b.acquire(None, None, IP) else {
            panic!("expected queue")
        };
        assert_eq!(b.queued(), 2);
        drop(first);
        let got = t1
            .wait(Duration::from_millis(100))
            .await
            .expect("first waiter served");
        assert_eq!(b.queued(), 1);
        assert!(
            t2.wait(Duration::from_millis(20)).await.is_none(),
            "still full"
        );
        assert_eq!(b.queued(), 0);
        drop(got);
        assert_eq!(b.servers[0].inflight(), 0);
    }

    #[tokio::test]
    async fn dropped_ticket_leaves_the_queue() {
        let b = backend(Balance::RoundRobin, &[(1, 1, false)]);
        let first = pick(&b).unwrap();
        let Acquire::Queued(t) = b.acquire(None, None, IP) else {
            panic!("expected queue")
        };
        drop(t);
        assert_eq!(b.queued(), 0);
        drop(first);
        assert_eq!(b.servers[0].inflight(), 0);
    }

    #[tokio::test]
    async fn persistence_bypasses_the_algorithm_even_with_weight_zero() {
        let b = backend(Balance::RoundRobin, &[(1, 0, false), (0, 0, false)]);
        for _ in 0..3 {
            match b.acquire(Some(1), None, IP) {
                Acquire::Slot(s) => assert_eq!(s.server_index(), 1),
                _ => panic!("expected a slot"),
            }
        }
        b.set_server_up(1, false);
        match b.acquire(Some(1), None, IP) {
            Acquire::Slot(s) => assert_eq!(s.server_index(), 0),
            _ => panic!("expected a slot"),
        }
    }

    #[tokio::test]
    async fn redispatch_avoids_the_failed_server_when_it_can() {
        let b = backend(Balance::RoundRobin, &[(1, 0, false), (1, 0, false)]);
        for _ in 0..4 {
            match b.acquire(None, Some(0), IP) {
                Acquire::Slot(s) => assert_eq!(s.server_index(), 1),
                _ => panic!("expected a slot"),
            }
        }
        b.set_server_up(1, false);
        match b.acquire(None, Some(0), IP) {
            Acquire::Slot(s) => assert_eq!(s.server_index(), 0),
            _ => panic!("expected a slot"),
        }
    }

    /// Two servers of weight 1 with `redispatch` as given.
    fn pair(balance: Balance, redispatch: bool) -> Arc<Backend> {
        let servers = (0..2)
            .map(|i| {
                ServerConfig::new(
                    format!("s{i}"),
                    SocketAddr::from(([127, 0, 0, 1], 10000 + i)),
                )
            })
            .collect();
        let mut cfg = BackendConfig::new("b", servers);
        cfg.balance = balance;
        cfg.redispatch = redispatch;
        Backend::new(cfg).unwrap()
    }

    #[test]
    fn redispatch_moves_at_once_unless_pinned_hashed_or_alone() {
        assert!(
            !pair(Balance::RoundRobin, false).redispatch_now(0, false, true),
            "redispatch off"
        );
        let rr = pair(Balance::RoundRobin, true);
        assert!(
            rr.redispatch_now(0, false, false),
            "roundrobin, another server up"
        );
        assert!(
            pair(Balance::LeastConn, true).redispatch_now(0, false, false),
            "leastconn"
        );
        assert!(!rr.redispatch_now(0, true, false), "pinned by a cookie");
        assert!(
            rr.redispatch_now(0, true, true),
            "the last attempt always moves"
        );
        rr.set_server_up(1, false);
        assert!(!rr.redispatch_now(0, false, false), "no other server up");
        let src = pair(Balance::Source, true);
        assert!(
            !src.redispatch_now(0, false, false),
            "source hashing keeps its server"
        );
        src.set_server_up(0, false);
        assert!(
            src.redispatch_now(0, false, false),
            "the failed server is down"
        );
    }

    #[tokio::test]
    async fn a_down_server_requeues_its_waiters_to_the_backend() {
        let b = backend(Balance::RoundRobin, &[(1, 1, false), (1, 1, false)]);
        let a = match b.acquire(Some(0), None, IP) {
            Acquire::Slot(s) => s,
            _ => panic!("expected a slot"),
        };
        let Acquire::Queued(t) = b.acquire(Some(0), None, IP) else {
            panic!("expected queue")
        };
        let t = b
            .set_server_up(0, false)
            .requeued
            .eq(&1)
            .then_some(t)
            .expect("one requeued");
        let got = t
            .wait(Duration::from_millis(100))
            .await
            .expect("moved to server 1");
        assert_eq!(got.server_index(), 1);
        drop(a);
    }
}
