//! `vrrplb run`: loads the config, starts the VRRP instances and the balancer, wires them, and
//! handles signals (SIGTERM/SIGINT: orderly stop; SIGHUP: reload, keeping the old config when
//! the new one does not validate).

use crate::config::{self, LogTarget, Validated};
use crate::control;
use crate::logging;
use crate::notify_fifo;
use crate::observe::{self, InstanceSource, Observed};
use crate::sdnotify;
use crate::wiring;
use proxy::observe::stats_server::{StatsConfig, StatsServer};
use std::collections::HashSet;
use std::fmt::Write as _;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::Mutex;
use tokio::signal::unix::{signal, SignalKind};
use tracing::{error, info, warn};

/// A short human summary of a valid config, for `check` and the start-up log.
pub fn summary(c: &Validated) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "node {}", c.node);
    let _ = writeln!(s, "{} VRRP instance(s)", c.instances.len());
    for i in &c.instances {
        let vips: Vec<String> = i
            .virtual_addresses
            .iter()
            .map(|v| format!("{}/{}", v.addr, v.prefix_len))
            .collect();
        let _ = writeln!(
            s,
            "  {}: {} VRRPv{} VRID {} priority {} advert_int {}ms VIPs {}",
            i.name,
            i.interface,
            i.version.number(),
            i.vrid,
            i.priority,
            u32::from(i.advert_int) * 10,
            vips.join(" ")
        );
    }
    let _ = writeln!(s, "{} frontend(s)", c.file.frontends.len());
    for f in &c.file.frontends {
        let gate = f
            .gate
            .as_ref()
            .map(|g| format!(" gated by {}", g.join(",")))
            .unwrap_or_default();
        let _ = writeln!(s, "  {}: {}{}", f.name, f.bind.join(" "), gate);
    }
    let _ = writeln!(s, "{} backend(s)", c.file.backends.len());
    for b in &c.file.backends {
        let _ = writeln!(
            s,
            "  {}: {} server(s), {}",
            b.name,
            b.servers.len(),
            b.balance.as_deref().unwrap_or("roundrobin")
        );
    }
    s
}

pub fn run(path: &Path, log_override: Option<LogTarget>) -> ExitCode {
    let loaded = match config::load(path) {
        Ok(l) => l,
        Err(rejected) => {
            for e in &rejected.errors {
                eprintln!("error: {e}");
            }
            eprintln!(
                "{}: configuration file is NOT valid; not starting",
                path.display()
            );
            return ExitCode::from(1);
        }
    };
    let cfg = loaded.config;
    logging::init(&cfg.log, log_override.unwrap_or(cfg.log.target));
    for w in &loaded.warnings {
        warn!("config warning: {w}");
    }
    let runtime = match runtime_builder(cfg.file.global.threads)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            error!("cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    runtime.block_on(serve(path, cfg))
}

/// `global.threads`: 1 (default) runs everything on the calling thread, which costs the
/// least CPU per request (no cross-thread wake-ups; measured: about a quarter less than two
/// workers on one core); N > 1 spreads connections over N worker threads.
fn runtime_builder(threads: Option<i64>) -> tokio::runtime::Builder {
    match threads.map(|t| t.clamp(1, 64) as usize).unwrap_or(1) {
        1 => tokio::runtime::Builder::new_current_thread(),
        n => {
            let mut b = tokio::runtime::Builder::new_multi_thread();
            b.worker_threads(n);
            b
        }
    }
}

async fn serve(path: &Path, cfg: Validated) -> ExitCode {
    let (mut term, mut int, mut hup) = match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
        signal(SignalKind::hangup()),
    ) {
        (Ok(t), Ok(i), Ok(h)) => (t, i, h),
        _ => {
            error!("cannot install signal handlers");
            return ExitCode::from(1);
        }
    };
    info!(
        "Starting vrrplb v{} (node {}, {} VRRP instance(s), {} frontend(s))",
        env!("CARGO_PKG_VERSION"),
        cfg.node,
        cfg.instances.len(),
        cfg.file.frontends.len()
    );
    // The balancer first: its health checks start at once on every box, so a new MASTER
    // already knows which servers are UP; gated listeners stay closed until MASTER.
    let mut balancer = if cfg.file.frontends.is_empty() && cfg.file.backends.is_empty() {
        None
    } else {
        let pc = config::proxy_config(&cfg);
        let started = match load_certificates(&pc, None).await {
            Ok(certs) => proxy::Proxy::start_with(pc, certs).map_err(|e| e.to_string()),
            Err(e) => Err(e),
        };
        match started {
            Ok(p) => Some(p),
            Err(e) => {
                error!("cannot start the load balancer: {e}");
                return ExitCode::from(1);
            }
        }
    };
    let gate_table: wiring::GateTable = Arc::new(tokio::sync::Mutex::new(
        balancer
            .as_ref()
            .map(|p| wiring::gated_frontends(p, &cfg.file.frontends))
            .unwrap_or_default(),
    ));
    let masters = Arc::new(Mutex::new(HashSet::new()));
    let (fifo, fifo_task) = match &cfg.file.global.notify_fifo {
        Some(p) => {
            let (sink, task) = notify_fifo::start(p.into());
            (Some(sink), Some(task))
        }
        None => (None, None),
    };
    let mut feeds = balancer
        .as_ref()
        .map(|p| wiring::BackendFeeds::new(p, &backend_names(&cfg)));
    // The VRRP engine on its own thread: a loaded balancer never delays an advert.
    let engine = match crate::engine::Engine::start(
        cfg.file
            .global
            .vrrp_realtime_priority
            .map(|p| p.clamp(0, 99) as u8),
    ) {
        Ok(e) => e,
        Err(e) => {
            error!("cannot start the VRRP engine thread: {e}");
            return ExitCode::from(1);
        }
    };
    let sync_groups: Vec<_> = cfg
        .sync_groups
        .iter()
        .cloned()
        .map(vrrp::sync_group::SyncGroup::new)
        .collect();
    let mut instances = Vec::new();
    for inst_cfg in cfg.instances.clone() {
        let mut opts = vrrp::instance::InstanceOptions::default();
        if let Some(f) = &feeds {
            opts.backend_up = f.receivers();
        }
        // Always installed: a reload may bring gated frontends in.
        opts.hook = Some(Arc::new(wiring::GateHook::new(
            &inst_cfg.name,
            gate_table.clone(),
            masters.clone(),
            tokio::runtime::Handle::current(),
        )));
        opts.sync_group = sync_groups
            .iter()
            .find(|g| g.contains(&inst_cfg.name))
            .cloned();
        if let Some(f) = &fifo {
            opts.events = Some(f.clone());
        }
        // Started on the engine's runtime, so the instance's tasks (adverts, netlink,
        // trackers) live there.
        let started = engine
            .handle()
            .spawn(vrrp::instance::Instance::start(inst_cfg, opts))
            .await;
        match started {
            Ok(Ok(i)) => instances.push(i),
            Ok(Err(e)) => {
                error!("{e}; stopping");
                stop_instances(instances).await;
                return ExitCode::from(1);
            }
            Err(e) => {
                error!("VRRP instance start-up failed: {e}; stopping");
                stop_instances(instances).await;
                return ExitCode::from(1);
            }
        }
    }
    let observed = Observed::new(&cfg.node);
    observed.set_balancer(balancer.as_ref());
    observed.set_instances(instance_sources(&cfg, &instances));
    let mut stats_cfg = observe::stats_config(&cfg);
    let mut stats = match start_stats(&stats_cfg, &observed) {
        Ok(s) => s,
        Err(e) => {
            error!("{e}; stopping");
            stop_instances(instances).await;
            return ExitCode::from(1);
        }
    };
    let socket_path = control::socket_path(cfg.file.global.control_socket.as_deref());
    // Hidden test hooks (a wedged engine for the watchdog test), never on by default.
    let test_hooks = std::env::var_os("VRRPLB_TEST_HOOKS").is_some_and(|v| v == "1");
    let control_task = match control::serve(&socket_path, observed.clone(), test_hooks) {
        Ok(t) => Some(t),
        Err(e) => {
            warn!(
                "control socket {}: {e}; `vrrplb status` will not answer",
                socket_path.display()
            );
            None
        }
    };
    let systemd = sdnotify::Notifier::from_env().map(Arc::new);
    let watchdog = match (&systemd, sdnotify::watchdog_interval()) {
        (Some(n), Some(every)) => Some(sdnotify::watchdog(n.clone(), every, observed.clone())),
        _ => None,
    };
    if let Some(n) = &systemd {
        n.ready();
    }
    let mut current = cfg;
    loop {
        tokio::select! {
            _ = term.recv() => { info!("Stopping (SIGTERM)"); break; }
            _ = int.recv() => { info!("Stopping (SIGINT)"); break; }
            _ = hup.recv() => {
                info!("Reloading configuration from {} (SIGHUP)", path.display());
                if let Some(n) = &systemd {
                    n.reloading();
                }
                reload(path, &mut current, &mut balancer, &gate_table, &masters, &mut feeds, &instances, &observed, &mut stats_cfg, &mut stats).await;
                if let Some(n) = &systemd {
                    n.ready();
                }
            }
        }
    }
    if let Some(n) = &systemd {
        n.stopping();
    }
    if let Some(w) = watchdog {
        w.abort();
    }
    drop(stats);
    // Masters resign first (priority 0, so the peer takes over after Skew_Time), then the
    // balancer drains what is still in flight.
    stop_instances(instances).await;
    drop(engine);
    if let Some(p) = &balancer {
        p.shutdown(std::time::Duration::from_secs(1)).await;
    }
    if let Some(t) = control_task {
        t.abort();
        let _ = std::fs::remove_file(&socket_path);
    }
    if let Some(t) = fifo_task {
        // The STOP lines are queued; the writer ends when the last sender is gone.
        drop(fifo);
        let _ = tokio::time::timeout(std::time::Duration::from_millis(500), t).await;
    }
    info!("Stopped vrrplb v{}", env!("CARGO_PKG_VERSION"));
    ExitCode::SUCCESS
}

/// Starts the stats listener when `global.stats` is set.
fn start_stats(
    cfg: &Option<StatsConfig>,
    observed: &Arc<Observed>,
) -> Result<Option<StatsServer>, String> {
    let Some(c) = cfg else {
        return Ok(None);
    };
    let o = observed.clone();
    let bind = c.bind;
    let s = StatsServer::start(c.clone(), Arc::new(move || o.snapshot()))
        .map_err(|e| format!("stats listener: cannot listen on {bind}: {e}"))?;
    info!("stats listener on {} ({}, /metrics)", s.local_addr(), c.uri);
    Ok(Some(s))
}

/// SIGHUP: validates the file, reloads the balancer and instance priorities in place, and
/// restarts the stats listener when its settings changed. A file that does not validate, or
/// a balancer that cannot start, leaves everything as it runs.
#[allow(clippy::too_many_arguments)]
async fn reload(
    path: &Path,
    current: &mut Validated,
    balancer: &mut Option<proxy::Proxy>,
    gate_table: &wiring::GateTable,
    masters: &Mutex<HashSet<String>>,
    feeds: &mut Option<wiring::BackendFeeds>,
    instances: &[vrrp::instance::Instance],
    observed: &Arc<Observed>,
    stats_cfg: &mut Option<StatsConfig>,
    stats: &mut Option<StatsServer>,
) {
    // Off the runtime's workers: checking the file loads every certificate.
    let file = path.to_path_buf();
    let Ok(loaded) = tokio::task::spawn_blocking(move || config::load(&file)).await else {
        error!("reload refused: the configuration loader failed");
        return;
    };
    match loaded {
        Ok(l) => {
            for w in &l.warnings {
                warn!("config warning: {w}");
            }
            // The balancer is rebuilt; instances take a new priority in place,
            // other instance changes wait for a restart (said, not claimed).
            if format!("{:?}", config::proxy_config(&l.config))
                != format!("{:?}", config::proxy_config(current))
            {
                if let Err(e) =
                    reload_balancer(balancer, &l.config, gate_table, masters, feeds).await
                {
                    error!("reload refused: cannot start the new balancer: {e}; keeping the running configuration");
                    return;
                }
            } else if let Some(b) = balancer.as_ref() {
                // Same balancer settings: certificate files may still have changed; each
                // TLS frontend reloads its own in place.
                let previous = b.certificates().clone();
                if let Err(e) =
                    load_certificates(&config::proxy_config(&l.config), Some(previous)).await
                {
                    error!("certificate reload failed: {e}");
                }
            }
            if !apply_instance_changes(current, &l.config, instances) {
                warn!("vrrp_instances changed beyond priorities: those settings take effect on restart (systemctl restart vrrplb); the running instances keep the old ones");
            }
            *current = l.config;
            observed.set_node(&current.node);
            observed.set_balancer(balancer.as_ref());
            let new_stats = observe::stats_config(current);
            if !observe::same_stats(stats_cfg, &new_stats) {
                // The old listener goes first: the new one may want its address.
                *stats = None;
                *stats = start_stats(&new_stats, observed).unwrap_or_else(|e| {
                    error!("{e}; the stats listener stays off until the next reload");
                    None
                });
                *stats_cfg = new_stats;
            }
            info!("Configuration reloaded (node {})", current.node);
        }
        Err(rejected) => {
            for e in &rejected.errors {
                error!("reload refused: {e}");
            }
            error!(
                "reload refused: {} error(s); keeping the running configuration",
                rejected.errors.len()
            );
        }
    }
}

fn instance_sources(
    cfg: &Validated,
    instances: &[vrrp::instance::Instance],
) -> Vec<InstanceSource> {
    instances
        .iter()
        .filter_map(|i| {
            let c = cfg.instances.iter().find(|c| c.name == i.name())?;
            Some(InstanceSource::new(i, c))
        })
        .collect()
}

/// SIGHUP: a changed `priority` (not to or from 255) is applied to the running instance in
/// place, as keepalived does on a reload. False when any other instance change (added,
/// removed, other keys) is left for a restart.
fn apply_instance_changes(
    old: &Validated,
    new: &Validated,
    running: &[vrrp::instance::Instance],
) -> bool {
    let mut applied_all = old.instances.len() == new.instances.len();
    for n in &new.instances {
        let Some(o) = old.instances.iter().find(|o| o.name == n.name) else {
            applied_all = false;
            continue;
        };
        if o == n {
            continue;
        }
        let mut same_but_priority = o.clone();
        same_but_priority.priority = n.priority;
        if same_but_priority != *n {
            applied_all = false;
        }
        let owner = o.priority == 255 || n.priority == 255;
        if o.priority != n.priority {
            match running.iter().find(|r| r.name() == n.name) {
                Some(r) if !owner => {
                    info!(
                        "({}) priority {} -> {} (reload)",
                        n.name, o.priority, n.priority
                    );
                    r.set_priority(n.priority);
                }
                _ => applied_all = false,
            }
        }
    }
    applied_all
}

fn backend_names(cfg: &Validated) -> Vec<String> {
    cfg.file.backends.iter().map(|b| b.name.clone()).collect()
}

/// How long the balancer replaced by a reload may finish what it serves (idle keep-alive
/// connections close at once; requests in flight get this long).
const RELOAD_DRAIN: std::time::Duration = std::time::Duration::from_secs(10);

/// Loads (or, given the running set, reloads in place) the TLS frontends' certificates on a
/// blocking thread: file reads and key parsing stay off the balancer's workers and the VRRP
/// engine's thread. A reloaded file that fails keeps its last good certificate (logged).
async fn load_certificates(
    pc: &proxy::ProxyConfig,
    previous: Option<proxy::tls::TlsCertificates>,
) -> Result<proxy::tls::TlsCertificates, String> {
    if pc.frontends.iter().all(|f| f.tls.is_none()) {
        return Ok(proxy::tls::TlsCertificates::default());
    }
    let pc = pc.clone();
    let joined = tokio::task::spawn_blocking(move || {
        proxy::tls::TlsCertificates::load(&pc, previous.as_ref())
    })
    .await;
    let (certs, notes) = joined
        .map_err(|e| format!("certificate loader failed: {e}"))?
        .map_err(|e| e.to_string())?;
    for w in &notes.warnings {
        warn!("certificate: {w}");
    }
    for e in &notes.errors {
        error!("certificate reload: {e}");
    }
    Ok(certs)
}

/// SIGHUP with changed frontends/backends: a new balancer starts next to the running one
/// (taking over its listening sockets for the same addresses; servers keep their health
/// state), the gated frontends of instances that are MASTER open on it, then the old one
/// stops accepting and drains in the background. On error nothing changes.
async fn reload_balancer(
    balancer: &mut Option<proxy::Proxy>,
    cfg: &Validated,
    table: &wiring::GateTable,
    masters: &Mutex<HashSet<String>>,
    feeds: &mut Option<wiring::BackendFeeds>,
) -> Result<(), String> {
    let new = if cfg.file.frontends.is_empty() && cfg.file.backends.is_empty() {
        None
    } else {
        let pc = config::proxy_config(cfg);
        let previous = balancer.as_ref().map(|b| b.certificates().clone());
        let certs = load_certificates(&pc, previous).await?;
        let started = match balancer.as_ref() {
            Some(old) => proxy::Proxy::start_after(pc, old, certs),
            None => proxy::Proxy::start_with(pc, certs),
        };
        Some(started.map_err(|e| e.to_string())?)
    };
    let gated = new
        .as_ref()
        .map(|p| wiring::gated_frontends(p, &cfg.file.frontends))
        .unwrap_or_default();
    // Dropping the new balancer on error closes whatever it opened.
    wiring::swap_gates(table, masters, gated).await?;
    if let Some(p) = &new {
        p.reload_done();
        match feeds {
            Some(f) => f.attach(p, &backend_names(cfg)),
            None => *feeds = Some(wiring::BackendFeeds::new(p, &backend_names(cfg))),
        }
    }
    if let Some(old) = std::mem::replace(balancer, new) {
        tokio::spawn(async move { old.shutdown(RELOAD_DRAIN).await });
    }
    info!(
        "balancer reloaded: {} frontend(s), {} backend(s)",
        cfg.file.frontends.len(),
        cfg.file.backends.len()
    );
    Ok(())
}

/// Stops every instance at once: masters send their priority-0 adverts together, so the
/// whole stop takes about one STOP-script wait, not one per instance.
async fn stop_instances(instances: Vec<vrrp::instance::Instance>) {
    let stops: Vec<_> = instances
        .into_iter()
        .map(|i| tokio::spawn(i.shutdown()))
        .collect();
    for s in stops {
        let _ = s.await;
    }
}
