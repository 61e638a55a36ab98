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

/// The gated frontends of a config, each with its own gate: opened by the VRRP instances of
/// its `gate` list and by the announcements that name it.
pub fn gated_frontends(
    p: &proxy::Proxy,
    cfg: &crate::config::Validated,
) -> Arc<Vec<GatedFrontend>> {
    Arc::new(
        cfg.file
            .frontends
            .iter()
            .filter_map(|f| {
                let mut sources: HashSet<String> = f.gate.iter().flatten().cloned().collect();
                sources.extend(
                    cfg.announces
                        .iter()
                        .filter(|a| a.frontends.contains(&f.name))
                        .map(|a| a.gate_key()),
                );
                Some(GatedFrontend {
                    name: f.name.clone(),
                    gate: p.frontend_gate(&f.name)?,
                    instances: sources,
                })
            })
            .collect(),
    )
}

/// The gated frontends the hooks act on; a reload swaps in the new balancer's. The lock is
/// held while a hook or a reload opens or closes listeners, so the two never interleave.
pub type GateTable = Arc<tokio::sync::Mutex<Arc<Vec<GatedFrontend>>>>;

/// The MASTER-edge hook of one instance. The engine calls it from its own thread; the
/// listeners are opened and closed on the balancer's runtime (`balancer`), so their accept
/// loops never land on the engine's thread. The engine waits for the result, which keeps the
/// order VIPs → listeners → gratuitous ARPs.
pub struct GateHook {
    gates: Arc<Gates>,
    balancer: tokio::runtime::Handle,
}

/// What a hook acts on; shared with the task it runs on the balancer's runtime.
struct Gates {
    instance: String,
    frontends: GateTable,
    /// Instances currently MASTER (shared by every instance's hook).
    masters: Arc<Mutex<HashSet<String>>>,
}

impl GateHook {
    pub fn new(
        instance: &str,
        frontends: GateTable,
        masters: Arc<Mutex<HashSet<String>>>,
        balancer: tokio::runtime::Handle,
    ) -> GateHook {
        GateHook {
            gates: Arc::new(Gates {
                instance: instance.to_owned(),
                frontends,
                masters,
            }),
            balancer,
        }
    }

    /// Runs `serving(true|false)` on the balancer's runtime and waits for it.
    fn on_balancer(&self, open: bool) -> HookFuture<'_> {
        let gates = self.gates.clone();
        let task = self.balancer.spawn(async move {
            if open {
                gates.open().await;
            } else {
                gates.close().await;
            }
        });
        Box::pin(async move {
            if let Err(e) = task.await {
                error!("({}) gate hook failed: {e}", self.gates.instance);
            }
        })
    }
}

fn lock_masters(m: &Mutex<HashSet<String>>) -> std::sync::MutexGuard<'_, HashSet<String>> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl MasterHook for GateHook {
    fn becoming_master(&self) -> HookFuture<'_> {
        self.on_balancer(true)
    }

    fn leaving_master(&self) -> HookFuture<'_> {
        self.on_balancer(false)
    }
}

impl Gates {
    async fn open(&self) {
        for (name, e) in open_source(&self.frontends, &self.masters, &self.instance).await {
            error!(
                "({}) MASTER but frontend {name} cannot listen: {e}",
                self.instance
            );
        }
    }

    async fn close(&self) {
        for (name, e) in close_source(&self.frontends, &self.masters, &self.instance).await {
            error!("({}) cannot close frontend {name}: {e}", self.instance);
        }
    }
}

/// A source of serving (a VRRP instance that became MASTER, an announced address) opens the
/// frontends it gates. Returns the frontends that cannot listen, with why.
pub async fn open_source(
    frontends: &GateTable,
    masters: &Mutex<HashSet<String>>,
    source: &str,
) -> Vec<(String, String)> {
    let table = frontends.lock().await;
    lock_masters(masters).insert(source.to_owned());
    let mut failed = Vec::new();
    for f in table.iter().filter(|f| f.instances.contains(source)) {
        if let Err(e) = f.gate.set_serving(true).await {
            failed.push((f.name.clone(), e.to_string()));
        }
    }
    failed
}

/// The source stops serving: its frontends close unless another of their sources still
/// serves. Returns the frontends that failed to close, with why.
pub async fn close_source(
    frontends: &GateTable,
    masters: &Mutex<HashSet<String>>,
    source: &str,
) -> Vec<(String, String)> {
    let table = frontends.lock().await;
    lock_masters(masters).remove(source);
    let mut failed = Vec::new();
    for f in table.iter().filter(|f| f.instances.contains(source)) {
        // Another instance of its gate list may still be MASTER: then it keeps serving.
        let still = lock_masters(masters)
            .iter()
            .any(|m| f.instances.contains(m));
        if !still {
            if let Err(e) = f.gate.set_serving(false).await {
                failed.push((f.name.clone(), e.to_string()));
            }
        }
    }
    failed
}

/// A reload of the balancer: opens the new balancer's gated frontends whose instances are
/// MASTER now and makes the hooks act on them from then on. When one cannot listen, the ones
/// opened are closed again, nothing is swapped, and the error is returned. The old
/// balancer's listeners are left to its shutdown.
pub async fn swap_gates(
    table: &GateTable,
    masters: &Mutex<HashSet<String>>,
    new: Arc<Vec<GatedFrontend>>,
) -> Result<(), String> {
    let mut current = table.lock().await;
    let now: HashSet<String> = lock_masters(masters).clone();
    let wanted = new
        .iter()
        .filter(|f| f.instances.iter().any(|i| now.contains(i)));
    let mut opened: Vec<&GatedFrontend> = Vec::new();
    for f in wanted {
        if let Err(e) = f.gate.set_serving(true).await {
            for g in opened {
                let _ = g.gate.set_serving(false).await;
            }
            return Err(e.to_string());
        }
        opened.push(f);
    }
    *current = new;
    Ok(())
}

/// The number of UP servers of each backend, as the VRRP trackers want it: one channel per
/// backend name for the life of the daemon, fed from the running balancer (re-attached to the
/// new one on a reload).
pub struct BackendFeeds {
    senders: HashMap<String, watch::Sender<usize>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl BackendFeeds {
    pub fn new(p: &proxy::Proxy, names: &[String]) -> BackendFeeds {
        let mut feeds = BackendFeeds {
            senders: HashMap::new(),
            tasks: Vec::new(),
        };
        feeds.attach(p, names);
        feeds
    }

    /// Receivers for the instances and the status view.
    pub fn receivers(&self) -> HashMap<String, watch::Receiver<usize>> {
        self.senders
            .iter()
            .map(|(k, tx)| (k.clone(), tx.subscribe()))
            .collect()
    }

    /// Feeds every channel from `p`'s backend of the same name, adding channels for `names`
    /// not seen before (a backend gone from the new config keeps its last figure).
    pub fn attach(&mut self, p: &proxy::Proxy, names: &[String]) {
        for t in self.tasks.drain(..) {
            t.abort();
        }
        for name in names {
            if let (false, Some(h)) = (self.senders.contains_key(name), p.backend_health(name)) {
                let up = h.borrow().up;
                self.senders.insert(name.clone(), watch::channel(up).0);
            }
        }
        for (name, tx) in &self.senders {
            let Some(mut health) = p.backend_health(name) else {
                continue;
            };
            let tx = tx.clone();
            let up = health.borrow_and_update().up;
            tx.send_if_modified(|v| std::mem::replace(v, up) != up);
            self.tasks.push(tokio::spawn(async move {
                while health.changed().await.is_ok() {
                    let up = health.borrow_and_update().up;
                    tx.send_if_modified(|v| std::mem::replace(v, up) != up);
                }
            }));
        }
    }
}

impl Drop for BackendFeeds {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}
