//! The gate: gated frontends listen only while the binary says this box should serve (it is
//! MASTER of one of the frontend's VRRP instances). Closing really closes the listening
//! sockets, so a client that still reaches this box gets "connection refused" instead of
//! a connection that hangs; open connections drain.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::listen::listener::{ListenerSet, ProxyError};

/// Opens and closes the listeners of every gated frontend. Cheap to clone.
#[derive(Clone)]
pub struct Gate {
    inner: Arc<GateInner>,
}

struct GateInner {
    sets: Vec<Arc<ListenerSet>>,
    drain: Duration,
    /// Serialises open/close so a quick MASTER → BACKUP → MASTER sequence applies in order.
    serving: tokio::sync::Mutex<bool>,
    flag: AtomicBool,
}

impl Gate {
    pub(crate) fn new(sets: Vec<Arc<ListenerSet>>, drain: Duration) -> Self {
        Gate {
            inner: Arc::new(GateInner {
                sets,
                drain,
                serving: tokio::sync::Mutex::new(false),
                flag: AtomicBool::new(false),
            }),
        }
    }

    /// `true`: bind every gated listener (done when this returns, so the caller can send
    /// gratuitous ARPs next). `false`: close them; in-flight requests get `gate_drain` to
    /// finish. Idempotent. On a bind failure nothing stays open and the error is returned.
    pub async fn set_serving(&self, serving: bool) -> Result<(), ProxyError> {
        let mut current = self.inner.serving.lock().await;
        if serving {
            for (i, set) in self.inner.sets.iter().enumerate() {
                if let Err(e) = set.open() {
                    for opened in &self.inner.sets[..i] {
                        opened.close(self.inner.drain).await;
                    }
                    *current = false;
                    self.inner.flag.store(false, Ordering::Release);
                    return Err(ProxyError::Bind {
                        frontend: set.fe.cfg.name.clone(),
                        addr: e.addr,
                        source: e.source,
                    });
                }
            }
        } else {
            for set in &self.inner.sets {
                set.close(self.inner.drain).await;
            }
        }
        *current = serving;
        self.inner.flag.store(serving, Ordering::Release);
        Ok(())
    }

    /// Whether the gated listeners are open (the last `set_serving` succeeded with `true`).
    pub fn is_serving(&self) -> bool {
        self.inner.flag.load(Ordering::Acquire)
    }
}
