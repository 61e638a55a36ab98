//! A point-in-time copy of everything the stats page, CSV, JSON, `/metrics` and `vrrplb
//! status` show: the balancer's rows and the VRRP instances. The balancer fills its part
//! ([`crate::Proxy::stats`]); the binary fills the VRRP part (the crates do not know each
//! other, so the VRRP view types live here, as plain data). Renderers read only this.

use serde::Serialize;

#[derive(Clone, Debug, Default, Serialize)]
pub struct Snapshot {
    pub product: String,
    pub version: String,
    pub node: String,
    pub pid: u32,
    pub uptime_secs: u64,
    /// Unix seconds when the snapshot was taken.
    pub time: u64,
    pub maxconn: usize,
    /// Tasks alive in the daemon's tokio runtime (connections, checks, timers' owners): the
    /// soak (`deploy/lab.sh soak`) watches it for leaks. None outside a runtime.
    pub tasks: Option<usize>,
    pub vrrp: Vec<VrrpInstanceView>,
    /// Addresses held for a routing daemon to announce (ECMP), one per `announce` entry.
    pub announce: Vec<AnnounceView>,
    pub proxy: ProxyStats,
}

/// One `announce` entry as its task reports it.
#[derive(Clone, Debug, Default, Serialize)]
pub struct AnnounceView {
    pub name: String,
    /// `198.51.100.200/32`.
    pub address: String,
    pub interface: String,
    /// `announced`, `withdrawn` or `pending` (waiting for a first script result).
    pub state: String,
    /// Why it is withdrawn, or what holds it.
    pub reason: String,
    /// Unix seconds of the last change.
    pub since: u64,
    /// Times it went from announced to withdrawn.
    pub withdrawals: u64,
}

/// One VRRP instance as the engine reports it.
#[derive(Clone, Debug, Default, Serialize)]
pub struct VrrpInstanceView {
    pub name: String,
    pub interface: String,
    pub vrid: u8,
    /// INIT, BACKUP, MASTER, FAULT.
    pub state: String,
    pub priority: u8,
    pub base_priority: u8,
    pub vips: Vec<String>,
    /// The current MASTER's address as this box knows it (itself when MASTER).
    pub master: Option<String>,
    pub last_transition: Option<TransitionView>,
    pub trackers: Vec<TrackerView>,
    pub adverts_sent: u64,
    pub adverts_received: u64,
    pub become_master: u64,
    /// Invalid adverts dropped, by reason key (every reason, zeros included).
    pub invalid_adverts: Vec<(String, u64)>,
}

impl VrrpInstanceView {
    /// keepalived exporter's numbering: 0 init, 1 backup, 2 master, 3 fault.
    pub fn state_code(&self) -> u8 {
        match self.state.as_str() {
            "BACKUP" => 1,
            "MASTER" => 2,
            "FAULT" => 3,
            _ => 0,
        }
    }
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct TransitionView {
    /// Unix seconds.
    pub at: u64,
    pub from: String,
    pub to: String,
    pub reason: String,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct TrackerView {
    pub name: String,
    /// script, interface, backend, own_interface.
    pub kind: String,
    /// ok, failing, unknown.
    pub status: String,
}

/// The balancer's part.
#[derive(Clone, Debug, Default, Serialize)]
pub struct ProxyStats {
    /// Client connections open in the process.
    pub connections: usize,
    pub frontends: Vec<FrontendStats>,
    pub backends: Vec<BackendStats>,
}

/// Counter values of one row (frontend, backend or server), copied from its meters.
#[derive(Clone, Debug, Default, Serialize)]
pub struct RowCounters {
    pub sessions_cur: u64,
    pub sessions_max: u64,
    pub sessions_total: u64,
    pub lb_total: u64,
    pub requests_total: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub denied_requests: u64,
    pub errors_request: u64,
    pub errors_connect: u64,
    pub errors_response: u64,
    pub retries: u64,
    pub redispatches: u64,
    /// 1xx, 2xx, 3xx, 4xx, 5xx, other.
    pub http_responses: [u64; 6],
    pub queue_cur: u64,
    pub queue_max: u64,
    /// Sessions per second over the last sample, and the highest seen.
    pub rate: u64,
    pub rate_max: u64,
    /// Average server response-header time and whole exchange (or tcp session) time over the
    /// last 1024, microseconds (HAProxy `rtime`, `ttime`); 0 when none yet.
    pub response_time_us: u64,
    pub total_time_us: u64,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct FrontendStats {
    pub name: String,
    /// mode tcp (else http).
    pub tcp: bool,
    pub gated: bool,
    pub listening: bool,
    pub connections: usize,
    /// Frontend maxconn (session limit).
    pub limit: usize,
    /// TLS handshakes that failed (garbage, no shared version or cipher, timeout).
    pub tls_handshake_failures: u64,
    pub counters: RowCounters,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct BackendStats {
    pub name: String,
    /// mode tcp (else http).
    pub tcp: bool,
    pub balance: String,
    /// Usable servers (UP or unchecked), backups included, and all servers.
    pub up: usize,
    pub total: usize,
    /// Requests waiting in the backend and server queues.
    pub queued: usize,
    /// Seconds since the backend last went from no usable server to some, or back.
    pub last_change_secs: u64,
    pub downtime_secs: u64,
    pub check_downs: u64,
    pub counters: RowCounters,
    pub servers: Vec<ServerStats>,
}

impl BackendStats {
    /// HAProxy's backend status: UP while a server can take requests.
    pub fn status(&self) -> &'static str {
        if self.up > 0 {
            "UP"
        } else {
            "DOWN"
        }
    }
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct ServerStats {
    pub name: String,
    pub address: String,
    pub backup: bool,
    pub weight: u32,
    /// Server maxconn (0 = none).
    pub limit: usize,
    /// "UP", "UP 1/3", "DOWN 1/2", "DOWN", "no check".
    pub status: String,
    /// Whether the server takes requests now.
    pub up: bool,
    pub checked: bool,
    /// "L7OK/200 in 1ms" once a check ran.
    pub last_check: Option<String>,
    /// L4OK, L4CON, L7OK, ... of the last check.
    pub check_code: Option<String>,
    pub check_status: Option<u16>,
    pub check_duration_ms: Option<u64>,
    pub inflight: usize,
    /// Requests sent to this server since start.
    pub requests: u64,
    pub check_failures: u64,
    pub check_downs: u64,
    pub last_change_secs: u64,
    pub downtime_secs: u64,
    pub counters: RowCounters,
}

impl ServerStats {
    /// The row colour class of lb.md §16 (legend order).
    pub fn colour(&self) -> &'static str {
        let s = self.status.as_str();
        if !self.checked {
            "nocheck"
        } else if s.starts_with("UP ") {
            "going_down"
        } else if s.starts_with("DOWN ") {
            "going_up"
        } else if s == "UP" {
            if self.backup {
                "backup_up"
            } else {
                "active_up"
            }
        } else {
            "down"
        }
    }
}
