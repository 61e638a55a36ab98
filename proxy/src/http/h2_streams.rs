//! The streams of one HTTP/2 client connection, run inside that connection's own task.
//!
//! hyper hands every stream it accepts (and every CONNECT tunnel) to an executor. Tokio's
//! would make each one a task of its own: spawned, scheduled, woken from the connection task
//! and back for each frame it sends, and dropped, all per request. [`StreamExec`] instead
//! collects them in the connection's inbox, and [`WithStreams`] polls them next to the
//! connection, in the same task: wakes among them cost a flag, and the responses the streams
//! queue are written by the connection in the same pass (callgrind figures in the commit
//! that brought this in).
//!
//! The connection future ends when hyper's connection has ended and its last stream is
//! done; dropping it (a drain's grace ran out) drops the streams with it, which resets
//! them, as cutting the connection would.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Wake, Waker};

use futures_util::stream::{FuturesUnordered, StreamExt as _};
use futures_util::task::AtomicWaker;

/// A stream (or a CONNECT tunnel) hyper asked to run.
type StreamFuture = Pin<Box<dyn Future<Output = ()> + Send>>;

/// The executor hyper's HTTP/2 server is given for one connection: what it runs waits in
/// the connection's inbox until [`WithStreams`] picks it up, in the same poll.
#[derive(Clone, Default)]
pub(crate) struct StreamExec {
    inbox: Arc<Mutex<Vec<StreamFuture>>>,
}

impl StreamExec {
    fn inbox(&self) -> MutexGuard<'_, Vec<StreamFuture>> {
        // A panic while holding this lock leaves a plain Vec behind: still usable.
        self.inbox.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl<F> hyper::rt::Executor<F> for StreamExec
where
    F: Future<Output = ()> + Send + 'static,
{
    fn execute(&self, fut: F) {
        self.inbox().push(Box::pin(fut));
    }
}

/// A connection future (hyper's HTTP/2 server connection) together with the streams it
/// handed to its [`StreamExec`].
pub(crate) struct WithStreams<C: Future> {
    conn: Pin<Box<C>>,
    /// The connection's result, kept while its last streams finish.
    ended: Option<C::Output>,
    exec: StreamExec,
    running: FuturesUnordered<StreamFuture>,
    /// The inbox's contents are swapped into this and moved on, so neither reallocates.
    arrived: Vec<StreamFuture>,
    wake: Arc<PassWake>,
}

impl<C: Future> WithStreams<C> {
    /// `conn` must have been built with `exec` (see `frontend::h2_server`).
    pub(crate) fn new(conn: C, exec: StreamExec) -> Self {
        WithStreams {
            conn: Box::pin(conn),
            ended: None,
            exec,
            running: FuturesUnordered::new(),
            arrived: Vec::new(),
            wake: Arc::new(PassWake::default()),
        }
    }

    /// hyper's connection, e.g. for its graceful shutdown.
    pub(crate) fn conn(self: Pin<&mut Self>) -> Pin<&mut C> {
        self.get_mut().conn.as_mut()
    }

    /// Moves what the connection (or a stream) just handed over into the running set;
    /// false when there was nothing.
    fn take_arrivals(&mut self) -> bool {
        std::mem::swap(&mut *self.exec.inbox(), &mut self.arrived);
        if self.arrived.is_empty() {
            return false;
        }
        for stream in self.arrived.drain(..) {
            self.running.push(stream);
        }
        true
    }

    /// One pass: the connection (reads frames, accepts streams, writes what the streams
    /// queued), then the streams that are ready.
    fn pass(&mut self, cx: &mut Context<'_>) {
        if self.ended.is_none() {
            if let Poll::Ready(r) = self.conn.as_mut().poll(cx) {
                self.ended = Some(r);
            }
        }
        self.take_arrivals();
        loop {
            while let Poll::Ready(Some(())) = self.running.poll_next_unpin(cx) {}
            // A stream may have handed over a task of its own (a CONNECT tunnel's): it
            // starts now, as nothing else would wake the task for it.
            if !self.take_arrivals() {
                break;
            }
        }
    }
}

impl<C: Future> Unpin for WithStreams<C> {}

impl<C: Future> Future for WithStreams<C> {
    type Output = C::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<C::Output> {
        let this = &mut *self;
        let wake = this.wake.clone();
        wake.parent.register(cx.waker());
        let waker = Waker::from(wake.clone());
        let mut inner = Context::from_waker(&waker);
        // A wake that comes while the pass runs (a stream queued a frame for the
        // connection, a stream's server answered) is served by another pass here, instead
        // of by another trip through the runtime's queue. Bounded: after a few passes the
        // runtime gets its turn (the wake is then passed on).
        for _ in 0..PASSES {
            wake.begin();
            this.pass(&mut inner);
            if this.ended.is_some() && this.running.is_empty() && !this.take_arrivals() {
                wake.end();
                return Poll::Ready(this.ended.take().unwrap_or_else(|| unreachable!()));
            }
            if !wake.end() {
                return Poll::Pending;
            }
        }
        wake.yield_turn();
        Poll::Pending
    }
}

/// Passes in one poll before the task yields to the runtime.
const PASSES: usize = 4;

const IDLE: u8 = 0;
const IN_PASS: u8 = 1;
const WOKEN_IN_PASS: u8 = 2;

/// The waker the connection and its streams get: during a pass a wake is only noted (the
/// pass loop sees it); outside one it wakes the task.
#[derive(Default)]
struct PassWake {
    state: AtomicU8,
    /// The task's own waker, registered on every poll (as listen/drain.rs does).
    parent: AtomicWaker,
}

impl PassWake {
    fn begin(&self) {
        self.state.store(IN_PASS, Ordering::Release);
    }

    /// After the last pass of a poll that was woken again: wake the task through the
    /// runtime, so that other tasks run first.
    fn yield_turn(&self) {
        self.state.store(IDLE, Ordering::Release);
        self.wake_parent();
    }

    fn wake_parent(&self) {
        self.parent.wake();
    }

    /// Ends a pass: true if it was woken meanwhile (another pass is due).
    fn end(&self) -> bool {
        self.state
            .compare_exchange(IN_PASS, IDLE, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
    }
}

impl Wake for PassWake {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        if self
            .state
            .compare_exchange(IN_PASS, WOKEN_IN_PASS, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
        {
            return;
        }
        if self.state.load(Ordering::Acquire) == WOKEN_IN_PASS {
            return;
        }
        self.wake_parent();
    }
}
