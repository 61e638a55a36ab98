//! A frontend's row of the stats snapshot, copied from its listeners and meters; called per
//! scrape, never on the request path.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use crate::listen::listener::ListenerSet;
use crate::observe::snapshot::FrontendStats;

pub(crate) fn frontend(set: &Arc<ListenerSet>, maxconn: usize) -> FrontendStats {
    let fe = &set.fe;
    let connections = fe.connections.load(Ordering::Relaxed);
    let mut c = fe.meters.row_counters();
    c.sessions_cur = connections as u64;
    (c.rate, c.rate_max) = fe.meters.rate_of(c.sessions_total);
    FrontendStats {
        name: fe.cfg.name.clone(),
        tcp: fe.cfg.mode == crate::config::Mode::Tcp,
        gated: fe.cfg.gated,
        listening: set.is_open(),
        connections,
        limit: fe.cfg.maxconn.unwrap_or(maxconn),
        tls_handshake_failures: set
            .tls
            .as_ref()
            .map_or(0, |t| t.failures.load(Ordering::Relaxed)),
        counters: c,
    }
}
