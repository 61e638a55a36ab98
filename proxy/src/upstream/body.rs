//! The client's request body on its way to a server.
//!
//! A request body is replayable only while no byte of it has been handed to a connection:
//! [`RequestBody`] takes the client's body out of a shared slot on its first poll, so after a
//! failed connect the slot still holds it and the next attempt can send it; once polled, it
//! is gone and the request is never replayed.

use std::future::Future as _;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use tokio::time::Sleep;

type BoxError = Box<dyn std::error::Error + Send + Sync>;
/// The client's request body on its way to a server, with the `client` inactivity timeout.
pub(crate) struct RequestBody {
    source: Option<Arc<BodySource>>,
    body: Option<Incoming>,
    idle: Option<Pin<Box<Sleep>>>,
    progressed: bool,
}

pub(crate) struct BodySource {
    slot: Mutex<Option<Incoming>>,
    hint: SizeHint,
    client_timeout: Duration,
    /// Set when reading from the client failed or timed out, to tell client aborts from
    /// server failures.
    failed: Mutex<Option<ClientFailure>>,
    /// Body bytes read from the client so far (the `bin` counters).
    received: AtomicU64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ClientFailure {
    Aborted,
    TimedOut,
}

impl BodySource {
    /// `None` for a request without a body (always replayable).
    pub(crate) fn new(body: Incoming, client_timeout: Duration) -> Option<Arc<Self>> {
        if body.is_end_stream() {
            return None;
        }
        Some(Arc::new(BodySource {
            hint: body.size_hint(),
            slot: Mutex::new(Some(body)),
            client_timeout,
            failed: Mutex::new(None),
            received: AtomicU64::new(0),
        }))
    }

    pub(crate) fn available(&self) -> bool {
        self.slot.lock().map(|s| s.is_some()).unwrap_or(false)
    }

    pub(crate) fn received(&self) -> u64 {
        self.received.load(Ordering::Relaxed)
    }

    pub(crate) fn failure(&self) -> Option<ClientFailure> {
        self.failed.lock().ok().and_then(|f| *f)
    }

    fn fail(&self, f: ClientFailure) {
        if let Ok(mut slot) = self.failed.lock() {
            *slot = Some(f);
        }
    }
}

impl RequestBody {
    pub(crate) fn new(source: &Option<Arc<BodySource>>) -> Self {
        RequestBody {
            source: source.clone(),
            body: None,
            idle: None,
            progressed: true,
        }
    }
}

impl Body for RequestBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        let Some(source) = &this.source else {
            return Poll::Ready(None);
        };
        if this.body.is_none() {
            match source.slot.lock().ok().and_then(|mut s| s.take()) {
                Some(b) => this.body = Some(b),
                None => return Poll::Ready(Some(Err("request body already consumed".into()))),
            }
        }
        let Some(body) = this.body.as_mut() else {
            return Poll::Ready(None);
        };
        match Pin::new(body).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                this.progressed = true;
                if let Some(d) = frame.data_ref() {
                    source.received.fetch_add(d.len() as u64, Ordering::Relaxed);
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => {
                source.fail(ClientFailure::Aborted);
                Poll::Ready(Some(Err(e.into())))
            }
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => {
                if this.progressed {
                    this.progressed = false;
                    let deadline = tokio::time::Instant::now() + source.client_timeout;
                    match &mut this.idle {
                        Some(sleep) => sleep.as_mut().reset(deadline),
                        None => this.idle = Some(Box::pin(tokio::time::sleep_until(deadline))),
                    }
                }
                if let Some(sleep) = &mut this.idle {
                    if sleep.as_mut().poll(cx).is_ready() {
                        source.fail(ClientFailure::TimedOut);
                        return Poll::Ready(Some(Err(
                            "client timeout reading the request body".into()
                        )));
                    }
                }
                Poll::Pending
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match (&self.source, &self.body) {
            (None, _) => true,
            (Some(_), Some(b)) => b.is_end_stream(),
            (Some(_), None) => false,
        }
    }

    fn size_hint(&self) -> SizeHint {
        match (&self.source, &self.body) {
            (None, _) => SizeHint::with_exact(0),
            (Some(_), Some(b)) => b.size_hint(),
            (Some(s), None) => s.hint,
        }
    }
}
