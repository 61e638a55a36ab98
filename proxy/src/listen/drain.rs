//! A connection's view of its listener set's drain request (listener.rs `close`), cheap to
//! ask on every wake of the connection task.
//!
//! The drain request is a `watch` channel. Waiting on it inside a `select!` next to the
//! connection polls the watch's `Notified` on every wake of the task, and each such poll
//! takes the notifier's lock: about 230 instructions per proxied request (callgrind). Here the
//! wait future is polled with a waker of its own, which only raises a flag and wakes the
//! task: on the task's other wakes (socket readiness, timers) the drain costs one atomic swap
//! and the waker registration, and the watch is looked at again only once it was signalled.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

use futures_util::task::AtomicWaker;
use tokio::sync::watch;

/// Resolves with the grace time once the listener set asks its connections to drain; never
/// resolves when the set goes away without asking.
pub(crate) async fn requested(mut rx: watch::Receiver<Option<Duration>>) -> Duration {
    let grace = rx.wait_for(Option::is_some).await.ok().and_then(|v| *v);
    match grace {
        Some(d) => d,
        // The listener set is gone without a drain request: keep serving.
        None => std::future::pending().await,
    }
}

/// Set by the wait future's waker; wakes the connection task.
struct Signal {
    fired: AtomicBool,
    task: AtomicWaker,
}

impl Wake for Signal {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.fired.store(true, Ordering::Release);
        self.task.wake();
    }
}

/// A drain wait (see [`requested`]) polled only when it was woken.
pub(crate) struct DrainWatch<'w, F> {
    wait: Pin<&'w mut F>,
    signal: Arc<Signal>,
    waker: Waker,
}

impl<'w, F: Future<Output = Duration>> DrainWatch<'w, F> {
    pub(crate) fn new(wait: Pin<&'w mut F>) -> Self {
        let signal = Arc::new(Signal {
            // The first poll registers the wait with the watch.
            fired: AtomicBool::new(true),
            task: AtomicWaker::new(),
        });
        DrainWatch {
            wait,
            waker: Waker::from(signal.clone()),
            signal,
        }
    }

    /// Ready with the grace time once a drain was asked for.
    pub(crate) fn poll_requested(&mut self, cx: &mut Context<'_>) -> Poll<Duration> {
        // Registered before the flag is read: a signal after the read wakes this task.
        self.signal.task.register(cx.waker());
        if !self.signal.fired.swap(false, Ordering::AcqRel) {
            return Poll::Pending;
        }
        self.wait
            .as_mut()
            .poll(&mut Context::from_waker(&self.waker))
    }

    /// Waits for the drain request.
    pub(crate) async fn wait(&mut self) -> Duration {
        std::future::poll_fn(|cx| self.poll_requested(cx)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The wait resolves with the grace sent, also when the task is woken many times by
    /// other things first, and the watch is polled only after a send.
    #[tokio::test]
    async fn resolves_on_the_drain_request_only() {
        let (tx, rx) = watch::channel(None);
        let wait = std::pin::pin!(requested(rx));
        let mut watch = DrainWatch::new(wait);
        let mut cx = Context::from_waker(futures_util::task::noop_waker_ref());
        for _ in 0..1000 {
            assert!(watch.poll_requested(&mut cx).is_pending());
        }
        assert!(!watch.signal.fired.load(Ordering::Acquire));
        tx.send_replace(Some(Duration::from_millis(250)));
        assert!(watch.signal.fired.load(Ordering::Acquire));
        assert_eq!(
            watch.poll_requested(&mut cx),
            Poll::Ready(Duration::from_millis(250))
        );
    }

    /// A drain asked while the task waits wakes it.
    #[tokio::test]
    async fn a_drain_request_wakes_the_waiting_task() {
        let (tx, rx) = watch::channel(None);
        let task = tokio::spawn(async move {
            let wait = std::pin::pin!(requested(rx));
            let mut watch = DrainWatch::new(wait);
            watch.wait().await
        });
        tokio::task::yield_now().await;
        tx.send_replace(Some(Duration::from_secs(3)));
        let grace = tokio::time::timeout(Duration::from_secs(5), task).await;
        assert!(matches!(grace, Ok(Ok(d)) if d == Duration::from_secs(3)));
    }

    /// The listener set dropped without a drain request: the wait never ends.
    #[tokio::test]
    async fn no_request_when_the_set_goes_away() {
        let (tx, rx) = watch::channel(None);
        let wait = std::pin::pin!(requested(rx));
        let mut watch = DrainWatch::new(wait);
        let mut cx = Context::from_waker(futures_util::task::noop_waker_ref());
        assert!(watch.poll_requested(&mut cx).is_pending());
        drop(tx);
        assert!(watch.poll_requested(&mut cx).is_pending());
        assert!(watch.poll_requested(&mut cx).is_pending());
    }
}
