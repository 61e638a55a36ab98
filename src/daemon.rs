//! `vrrplb run`: loads the config, starts the VRRP instances and the balancer, wires them, and
//! handles signals (SIGTERM/SIGINT: orderly stop; SIGHUP: reload, keeping the old config when
//! the new one does not validate).

use crate::config::{self, LogTarget, Validated};
use crate::control;
use crate::instances::Instances;
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
    if !c.announces.is_empty() {
        let _ = writeln!(s, "{} announced address(es)", c.announces.len());
        for a in &c.announces {
            let _ = writeln!(s, "  {}: {} on {}", a.name, a.address(), a.interface);
        }
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
    logging::init(&cfg.log, log_override);
    for w in &loaded.warnings {
        warn!("config warning: {w}");
    }
    raise_open_files_limit();
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

/// Raises the soft limit of open files to the hard one: every client connection costs one
/// descriptor and every server connection another, so the usual soft limit (1024) would stop
/// a balancer at a few hundred sessions, far below `maxconn` (HAProxy sizes it the same way).
fn raise_open_files_limit() {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read and write the struct passed.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return;
    }
    if lim.rlim_cur >= lim.rlim_max {
        return;
    }
    let before = lim.rlim_cur;
    lim.rlim_cur = lim.rlim_max;
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) } == 0 {
        info!("open files limit raised from {before} to {}", lim.rlim_cur);
    } else {
        warn!(
            "cannot raise the open files limit from {before}: {}",
            std::io::Error::last_os_error()
        );
    }
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
            // Nothing runs yet, so nothing is staged.
            Ok((certs, _)) => proxy::Proxy::start_with(pc, certs).map_err(|e| e.to_string()),
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
            .map(|p| wiring::gated_frontends(p, &cfg))
            .unwrap_or_default(),
    ));
    let masters = Arc::new(Mutex::new(HashSet::new()));
    // Always there, so a reload can turn `notify_fifo` on, move or off it in place.
    let (fifo_sink, fifo_task) =
        notify_fifo::start(cfg.file.global.notify_fifo.as_ref().map(Into::into));
    let fifo = Some(fifo_sink);
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
    // Instances run on the engine's runtime, so their tasks (adverts, netlink, trackers)
    // live there.
    let mut instances = Instances::new(
        engine.handle().clone(),
        gate_table.clone(),
        masters.clone(),
        fifo.clone(),
        &cfg.sync_groups,
    );
    for inst_cfg in cfg.instances.clone() {
        let backend_up = feeds.as_ref().map(|f| f.receivers()).unwrap_or_default();
        if let Err(e) = instances.start(inst_cfg, backend_up).await {
            error!("{e}; stopping");
            instances.stop_everything().await;
            return ExitCode::from(1);
        }
    }
    let mut announcers = crate::announce::Announcers::new(crate::announce::Wiring {
        gates: gate_table.clone(),
        masters: masters.clone(),
    });
    announcers.start_all(
        &cfg.announces,
        &feeds.as_ref().map(|f| f.receivers()).unwrap_or_default(),
    );
    let observed = Observed::new(&cfg.node);
    observed.set_announces(announcers.sources());
    observed.set_balancer(balancer.as_ref());
    observed.set_instances(instance_sources(&cfg, &instances.running));
    let mut stats_cfg = observe::stats_config(&cfg);
    let mut stats = match start_stats(&stats_cfg, &observed) {
        Ok(s) => s,
        Err(e) => {
            error!("{e}; stopping");
            announcers.stop_everything().await;
            instances.stop_everything().await;
            return ExitCode::from(1);
        }
    };
    // Hidden test hooks (a wedged engine for the watchdog test), never on by default.
    let test_hooks = std::env::var_os("VRRPLB_TEST_HOOKS").is_some_and(|v| v == "1");
    let mut control = ControlSocket::start(
        cfg.file.global.control_socket.as_deref(),
        &observed,
        test_hooks,
    );
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
                let mut running = Running {
                    balancer: &mut balancer,
                    gate_table: &gate_table,
                    masters: &masters,
                    feeds: &mut feeds,
                    instances: &mut instances,
                    announcers: &mut announcers,
                    observed: &observed,
                    stats_cfg: &mut stats_cfg,
                    stats: &mut stats,
                    control: &mut control,
                    fifo: fifo.as_deref(),
                };
                reload(path, &mut current, &mut running).await;
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
    // Announced addresses go first (bgpd withdraws them while the listeners still drain).
    announcers.stop_everything().await;
    // Masters resign first (priority 0, so the peer takes over after Skew_Time), then the
    // balancer drains what is still in flight.
    instances.stop_everything().await;
    drop(engine);
    if let Some(p) = &balancer {
        p.shutdown(std::time::Duration::from_secs(1)).await;
    }
    control.stop();
    // The STOP lines are queued; the writer ends when the last sender is gone.
    let fifo_on = current.file.global.notify_fifo.is_some();
    drop(instances);
    drop(fifo);
    if fifo_on {
        let _ = tokio::time::timeout(std::time::Duration::from_millis(500), fifo_task).await;
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

/// What a SIGHUP may change in the running daemon.
struct Running<'a> {
    balancer: &'a mut Option<proxy::Proxy>,
    gate_table: &'a wiring::GateTable,
    masters: &'a Mutex<HashSet<String>>,
    feeds: &'a mut Option<wiring::BackendFeeds>,
    instances: &'a mut Instances,
    announcers: &'a mut crate::announce::Announcers,
    observed: &'a Arc<Observed>,
    stats_cfg: &'a mut Option<StatsConfig>,
    stats: &'a mut Option<StatsServer>,
    control: &'a mut ControlSocket,
    fifo: Option<&'a notify_fifo::FifoSink>,
}

/// SIGHUP: validates the file, then reloads everything in place: the balancer, the VRRP
/// instances (keepalived's semantics, see [`Instances::reload`]), the stats listener and the
/// control socket; the log names each setting that needs a restart. A file that does not
/// validate, or a balancer that cannot start, leaves everything as it runs.
async fn reload(path: &Path, current: &mut Validated, r: &mut Running<'_>) {
    // Off the runtime's workers: checking the file loads every certificate and resolves
    // server names.
    let file = path.to_path_buf();
    let previous = current.resolved.clone();
    let loaded = tokio::task::spawn_blocking(move || config::load_again(&file, &previous)).await;
    let Ok(loaded) = loaded else {
        error!("reload refused: the configuration loader failed");
        return;
    };
    let mut new = match loaded {
        Ok(l) => {
            for w in &l.warnings {
                warn!("config warning: {w}");
            }
            l.config
        }
        Err(rejected) => {
            for e in &rejected.errors {
                error!("reload refused: {e}");
            }
            error!(
                "reload refused: {} error(s); keeping the running configuration",
                rejected.errors.len()
            );
            return;
        }
    };
    // The balancer first: a gated frontend on a VIP this reload adds is listening (the
    // instance is MASTER) before the VIP's gratuitous ARPs go out.
    if format!("{:?}", config::proxy_config(&new)) != format!("{:?}", config::proxy_config(current))
    {
        if let Err(e) = reload_balancer(r.balancer, &new, r.gate_table, r.masters, r.feeds).await {
            error!("reload refused: cannot start the new balancer: {e}; keeping the running configuration");
            return;
        }
    } else if let Some(b) = r.balancer.as_ref() {
        // Same balancer settings: certificate files may still have changed; each
        // TLS frontend reloads its own in place.
        // Nothing after this can refuse the reload, so they are served at once.
        let previous = b.certificates().clone();
        match load_certificates(&config::proxy_config(&new), Some(previous)).await {
            Ok((_, staged)) => staged.commit(),
            Err(e) => error!("certificate reload failed: {e}"),
        }
    }
    let feeds = &*r.feeds;
    let failed = r
        .instances
        .reload(
            &current.instances,
            &new.instances,
            (&current.sync_groups, &new.sync_groups),
            || feeds.as_ref().map(|f| f.receivers()).unwrap_or_default(),
        )
        .await;
    // An instance the reload could not change runs its old settings: remember those, so
    // the next reload compares with what runs.
    for name in &failed {
        let old = current.instances.iter().find(|o| &o.name == name).cloned();
        new.instances.retain(|n| &n.name != name);
        new.instances.extend(old);
    }
    let backend_up = feeds.as_ref().map(|f| f.receivers()).unwrap_or_default();
    r.announcers.reload(&new.announces, &backend_up).await;
    r.observed.set_announces(r.announcers.sources());
    log_restart_needed(current, &new);
    if current.file.global.notify_fifo != new.file.global.notify_fifo {
        if let Some(f) = r.fifo {
            f.retarget(new.file.global.notify_fifo.as_ref().map(Into::into));
        }
    }
    if format!("{:?}", current.log) != format!("{:?}", new.log) {
        info!("global.log changed: applying it");
        let now = logging::apply(&new.log);
        info!("global.log applied: {now}");
    }
    r.control
        .follow(new.file.global.control_socket.as_deref(), r.observed);
    *current = new;
    r.observed.set_node(&current.node);
    r.observed.set_balancer(r.balancer.as_ref());
    r.observed
        .set_instances(instance_sources(current, &r.instances.running));
    let new_stats = observe::stats_config(current);
    if !observe::same_stats(r.stats_cfg, &new_stats) {
        // The old listener goes first: the new one may want its address.
        *r.stats = None;
        *r.stats = start_stats(&new_stats, r.observed).unwrap_or_else(|e| {
            error!("{e}; the stats listener stays off until the next reload");
            None
        });
        *r.stats_cfg = new_stats;
    }
    if failed.is_empty() {
        info!("Configuration reloaded (node {})", current.node);
    } else {
        warn!(
            "Configuration reloaded (node {}) except VRRP instance(s) {}, which keep their running settings",
            current.node,
            failed.join(", ")
        );
    }
}

/// Settings read once at start: a reload that changes them says so, key by key.
fn log_restart_needed(old: &Validated, new: &Validated) {
    let (o, n) = (&old.file.global, &new.file.global);
    let mut keys = Vec::new();
    if o.threads != n.threads {
        keys.push("global.threads");
    }
    if o.vrrp_realtime_priority != n.vrrp_realtime_priority {
        keys.push("global.vrrp_realtime_priority");
    }
    for key in keys {
        warn!("{key} changed: it takes effect on restart (systemctl restart vrrplb); the running value stays");
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

/// The control socket `vrrplb status` talks to; a reload that names another path moves it.
struct ControlSocket {
    path: std::path::PathBuf,
    task: Option<tokio::task::JoinHandle<()>>,
    test_hooks: bool,
}

impl ControlSocket {
    fn start(configured: Option<&str>, observed: &Arc<Observed>, test_hooks: bool) -> Self {
        let path = control::socket_path(configured);
        let task = match control::serve(&path, observed.clone(), test_hooks) {
            Ok(t) => Some(t),
            Err(e) => {
                warn!(
                    "control socket {}: {e}; `vrrplb status` will not answer",
                    path.display()
                );
                None
            }
        };
        ControlSocket {
            path,
            task,
            test_hooks,
        }
    }

    /// Moves to the path a reload configured; on failure the old socket keeps answering.
    fn follow(&mut self, configured: Option<&str>, observed: &Arc<Observed>) {
        let path = control::socket_path(configured);
        if path == self.path {
            return;
        }
        match control::serve(&path, observed.clone(), self.test_hooks) {
            Ok(t) => {
                info!(
                    "control socket moved from {} to {}",
                    self.path.display(),
                    path.display()
                );
                self.stop();
                self.path = path;
                self.task = Some(t);
            }
            Err(e) => warn!(
                "control socket {}: {e}; it stays at {}",
                path.display(),
                self.path.display()
            ),
        }
    }

    fn stop(&mut self) {
        if let Some(t) = self.task.take() {
            t.abort();
            let _ = std::fs::remove_file(&self.path);
        }
    }
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
/// The running frontends' new certificates are only staged: the caller commits them once
/// the reload can no longer be refused (a refused reload serves the old ones still).
async fn load_certificates(
    pc: &proxy::ProxyConfig,
    previous: Option<proxy::tls::TlsCertificates>,
) -> Result<(proxy::tls::TlsCertificates, proxy::tls::StagedReload), String> {
    if pc.frontends.iter().all(|f| f.tls.is_none()) {
        return Ok(Default::default());
    }
    let pc = pc.clone();
    let joined = tokio::task::spawn_blocking(move || {
        proxy::tls::TlsCertificates::stage(&pc, previous.as_ref())
    })
    .await;
    let (certs, notes, staged) = joined
        .map_err(|e| format!("certificate loader failed: {e}"))?
        .map_err(|e| e.to_string())?;
    for w in &notes.warnings {
        warn!("certificate: {w}");
    }
    for e in &notes.errors {
        error!("certificate reload: {e}");
    }
    Ok((certs, staged))
}

/// SIGHUP with changed frontends/backends: a new balancer starts next to the running one
/// (taking over its listening sockets for the same addresses; servers keep their health
/// state), the gated frontends of instances that are MASTER open on it, then the old one
/// stops accepting and drains in the background. On error nothing changes, certificates
/// included: the running frontends' new ones are served only once the new balancer is in.
async fn reload_balancer(
    balancer: &mut Option<proxy::Proxy>,
    cfg: &Validated,
    table: &wiring::GateTable,
    masters: &Mutex<HashSet<String>>,
    feeds: &mut Option<wiring::BackendFeeds>,
) -> Result<(), String> {
    let (new, staged) = if cfg.file.frontends.is_empty() && cfg.file.backends.is_empty() {
        (None, proxy::tls::StagedReload::default())
    } else {
        let pc = config::proxy_config(cfg);
        let previous = balancer.as_ref().map(|b| b.certificates().clone());
        let (certs, staged) = load_certificates(&pc, previous).await?;
        let started = match balancer.as_ref() {
            Some(old) => proxy::Proxy::start_after(pc, old, certs),
            None => proxy::Proxy::start_with(pc, certs),
        };
        (Some(started.map_err(|e| e.to_string())?), staged)
    };
    let gated = new
        .as_ref()
        .map(|p| wiring::gated_frontends(p, cfg))
        .unwrap_or_default();
    // Dropping the new balancer on error closes whatever it opened.
    wiring::swap_gates(table, masters, gated).await?;
    staged.commit();
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
