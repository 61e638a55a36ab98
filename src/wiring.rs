//! How the VRRP engine and the balancer meet: a gated frontend serves while this box is
//! MASTER of one of its instances (listeners opened after the VIPs are added and before the
//! gratuitous ARPs, closed before the VIPs go), and the balancer's backend health feeds the
//! instances' `track_backends`.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use tokio::sync::watch;
use tracing::error;
use vrrp::instance::{HookFuture, MasterHook};

/// The MASTER-edge hook of one instance.
pub struct GateHook {
    instance: String,
    gate: proxy::Gate,
    /// Instances whose MASTER state opens the gate.
    gated_by: Arc<HashSet<String>>,
    /// Instances currently MASTER (shared by every instance's hook).
    masters: Arc<Mutex<HashSet<String>>>,
}

impl GateHook {
    pub fn new(
        instance: &str,
        gate: proxy::Gate,
        gated_by: Arc<HashSet<String>>,
        masters: Arc<Mutex<HashSet<String>>>,
    ) -> GateHook {
        GateHook {
            instance: instance.to_owned(),
            gate,
            gated_by,
            masters,
        }
    }

    fn any_gating_master(&self) -> bool {
        let m = self.masters.lock().unwrap_or_else(|e| e.into_inner());
        m.iter().any(|i| self.gated_by.contains(i))
    }
}

impl MasterHook for GateHook {
    fn becoming_master(&self) -> HookFuture<'_> {
        Box::pin(async move {
            self.masters
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(self.instance.clone());
            if self.gated_by.contains(&self.instance) {
                if let Err(e) = self.gate.set_serving(true).await {
                    error!(
                        "({}) MASTER but the balancer cannot listen: {e}",
                        self.instance
                    );
                }
            }
        })
    }

    fn leaving_master(&self) -> HookFuture<'_> {
        Box::pin(async move {
            self.masters
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&self.instance);
            if self.gated_by.contains(&self.instance) && !self.any_gating_master() {
                if let Err(e) = self.gate.set_serving(false).await {
                    error!("({}) cannot close the gated listeners: {e}", self.instance);
                }
            }
        })
    }
}

/// The number of UP servers of each backend, as the VRRP trackers want it.
pub fn backend_up_feeds(
    p: &proxy::Proxy,
    names: &[String],
) -> HashMap<String, watch::Receiver<usize>> {
    let mut out = HashMap::new();
    for name in names {
        let Some(mut health) = p.backend_health(name) else {
            continue;
        };
        let (tx, rx) = watch::channel(health.borrow().up);
        tokio::spawn(async move {
            while health.changed().await.is_ok() {
                let up = health.borrow_and_update().up;
                tx.send_if_modified(|v| std::mem::replace(v, up) != up);
            }
        });
        out.insert(name.clone(), rx);
    }
    out
}
