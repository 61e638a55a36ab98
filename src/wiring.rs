//! How the VRRP engine and the balancer meet: a gated frontend serves while this box is
//! MASTER of one of its instances (listeners opened after the VIPs are added and before the
//! gratuitous ARPs, closed before the VIPs go), and the balancer's backend health feeds the
//! instances' `track_backends`.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use tokio::sync::watch;
use tracing::error;
use vrrp::instance::{HookFuture, MasterHook};

/// A gated frontend: its gate and the instances whose MASTER state opens it.
pub struct GatedFrontend {
    pub name: String,
    pub gate: proxy::Gate,
    pub instances: HashSet<String>,
}

/// The gated frontends of a config, each with its own gate.
pub fn gated_frontends(
    p: &proxy::Proxy,
    frontends: &[crate::config::schema::Frontend],
) -> Arc<Vec<GatedFrontend>> {
    Arc::new(
        frontends
            .iter()
            .filter_map(|f| {
                Some(GatedFrontend {
                    name: f.name.clone(),
                    gate: p.frontend_gate(&f.name)?,
                    instances: f.gate.as_ref()?.iter().cloned().collect(),
                })
            })
            .collect(),
    )
}

/// The MASTER-edge hook of one instance.
pub struct GateHook {
    instance: String,
    frontends: Arc<Vec<GatedFrontend>>,
    /// Instances currently MASTER (shared by every instance's hook).
    masters: Arc<Mutex<HashSet<String>>>,
}

impl GateHook {
    pub fn new(
        instance: &str,
        frontends: Arc<Vec<GatedFrontend>>,
        masters: Arc<Mutex<HashSet<String>>>,
    ) -> GateHook {
        GateHook {
            instance: instance.to_owned(),
            frontends,
            masters,
        }
    }

    fn masters(&self) -> std::sync::MutexGuard<'_, HashSet<String>> {
        self.masters.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl MasterHook for GateHook {
    fn becoming_master(&self) -> HookFuture<'_> {
        Box::pin(async move {
            self.masters().insert(self.instance.clone());
            for f in self
                .frontends
                .iter()
                .filter(|f| f.instances.contains(&self.instance))
            {
                if let Err(e) = f.gate.set_serving(true).await {
                    error!(
                        "({}) MASTER but frontend {} cannot listen: {e}",
                        self.instance, f.name
                    );
                }
            }
        })
    }

    fn leaving_master(&self) -> HookFuture<'_> {
        Box::pin(async move {
            self.masters().remove(&self.instance);
            for f in self
                .frontends
                .iter()
                .filter(|f| f.instances.contains(&self.instance))
            {
                // Another instance of its gate list may still be MASTER: then it keeps serving.
                let still = self.masters().iter().any(|m| f.instances.contains(m));
                if !still {
                    if let Err(e) = f.gate.set_serving(false).await {
                        error!("({}) cannot close frontend {}: {e}", self.instance, f.name);
                    }
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
