//! A backend's and its servers' rows of the stats snapshot, copied from their state and
//! meters; called per scrape, never on the request path.

use std::sync::Arc;

use crate::config::Balance;
use crate::observe::meters::Meters;
use crate::observe::snapshot::{BackendStats, ServerStats};
use crate::upstream::backend::{Backend, Server};

pub(crate) fn backend(b: &Arc<Backend>) -> BackendStats {
    let servers: Vec<ServerStats> = b.servers.iter().map(|s| server(b, s)).collect();
    let mut c = b.meters.row_counters();
    // Sessions of a backend are those of its servers.
    c.sessions_cur = servers.iter().map(|s| s.counters.sessions_cur).sum();
    c.sessions_total = servers.iter().map(|s| s.counters.sessions_total).sum();
    c.lb_total = c.sessions_total;
    c.sessions_max = servers
        .iter()
        .map(|s| s.counters.sessions_max)
        .max()
        .unwrap_or(0);
    c.queue_cur = b.queued() as u64;
    (c.rate, c.rate_max) = b.meters.rate_of(c.requests_total);
    let health = *b.health().borrow();
    BackendStats {
        name: b.name.to_string(),
        tcp: b.cfg.mode == crate::config::Mode::Tcp,
        balance: match b.cfg.balance {
            Balance::RoundRobin => "roundrobin",
            Balance::LeastConn => "leastconn",
            Balance::Source => "source",
        }
        .to_owned(),
        up: health.up,
        total: health.total,
        queued: b.queued(),
        last_change_secs: b.meters.since_last_change().as_secs(),
        downtime_secs: b.meters.downtime().as_secs(),
        check_downs: Meters::get(&b.meters.check_downs),
        counters: c,
        servers,
    }
}

fn server(b: &Backend, s: &Server) -> ServerStats {
    let (status, last) = s.check_status();
    let m = &s.meters;
    let mut c = m.row_counters();
    c.sessions_cur = s.inflight() as u64;
    (c.rate, c.rate_max) = m.rate_of(c.sessions_total);
    let checked = b.cfg.health_check.is_some() && s.cfg.check;
    ServerStats {
        name: s.name.to_string(),
        address: s.cfg.addr.to_string(),
        backup: s.cfg.backup,
        weight: s.cfg.weight,
        limit: s.cfg.maxconn,
        status,
        up: s.is_up(),
        checked,
        last_check: last.as_ref().map(|r| r.last_check()),
        check_code: last.as_ref().map(|r| r.code.as_str().to_owned()),
        check_status: last.as_ref().and_then(|r| r.status),
        check_duration_ms: last.as_ref().map(|r| r.duration.as_millis() as u64),
        inflight: s.inflight(),
        requests: c.sessions_total,
        check_failures: Meters::get(&m.check_failures),
        check_downs: Meters::get(&m.check_downs),
        last_change_secs: m.since_last_change().as_secs(),
        downtime_secs: m.downtime().as_secs(),
        counters: c,
    }
}
