//! The YAML schema of ../shared/docs/config.md, as serde structs. Every struct rejects unknown
//! keys. Numbers are read wide (i64) and range-checked in `validate`, so a user sees
//! "300 is out of range 1..=254" rather than a serde type message.

use serde::Deserialize;
use std::collections::BTreeMap;

use super::duration::DurationValue;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    #[serde(default)]
    pub global: Global,
    #[serde(default)]
    pub vrrp_scripts: BTreeMap<String, VrrpScript>,
    #[serde(default)]
    pub vrrp_instances: Vec<VrrpInstance>,
    #[serde(default)]
    pub vrrp_sync_groups: Vec<VrrpSyncGroup>,
    #[serde(default)]
    pub frontends: Vec<Frontend>,
    #[serde(default)]
    pub backends: Vec<Backend>,
    /// Addresses held on a local interface while this box is healthy, for a routing daemon
    /// (FRR's bgpd) to announce (README "One VIP from every box").
    #[serde(default)]
    pub announce: Vec<Announce>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Announce {
    /// Names it in logs and `vrrplb status`; the address when not set.
    pub name: Option<String>,
    /// A host address: `198.51.100.200/32`, `198.51.100.200` or `2001:db8::200/128`.
    pub address: String,
    /// Where the address is added; `lo` when not set.
    pub interface: Option<String>,
    /// Frontends that serve on the address: their listeners open after it is added and close
    /// before it goes, and one that cannot listen withdraws it.
    #[serde(default)]
    pub frontends: Vec<String>,
    #[serde(default)]
    pub track_backends: Vec<AnnounceBackend>,
    /// Names of `vrrp_scripts`; each must pass.
    #[serde(default)]
    pub track_scripts: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AnnounceBackend {
    pub backend: String,
    pub min_up: Option<i64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Global {
    pub node: Option<String>,
    #[serde(default)]
    pub log: Log,
    pub stats: Option<Stats>,
    /// Process-wide connection limit (HAProxy global `maxconn`).
    pub maxconn: Option<i64>,
    /// Unix socket for `vrrplb status` (default /run/vrrplb/vrrplb.sock).
    pub control_socket: Option<String>,
    /// Extension: threads running the daemon (HAProxy `nbthread`); 1 (default) = everything
    /// on one thread, the cheapest per request.
    pub threads: Option<i64>,
    /// Above 0: the VRRP engine's thread runs SCHED_RR at this priority (keepalived
    /// `vrrp_rt_priority`).
    pub vrrp_realtime_priority: Option<i64>,
    /// keepalived `notify_fifo`: every instance state and priority change, one line each.
    pub notify_fifo: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Log {
    /// syslog | stderr
    pub target: Option<String>,
    pub facility: Option<String>,
    pub access_log: Option<bool>,
    /// Extension: the syslog socket (default /dev/log).
    pub syslog_socket: Option<String>,
    /// Syslog servers (`udp://IP[:PORT]`, `tcp://IP[:PORT]`, `unix:///PATH`), one or a
    /// list; replaces the local socket (list `unix:///dev/log` too to keep it).
    pub syslog_server: Option<OneOrMany>,
    /// rfc3164 (default) | rfc5424.
    pub syslog_format: Option<String>,
    /// Extension: error | warn | info | debug | trace (default info).
    pub level: Option<String>,
}

/// A key that takes one value or a list of them.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Stats {
    pub bind: String,
    pub uri: Option<String>,
    pub refresh: Option<DurationValue>,
    /// HAProxy `stats show-node`: the node name in the page header.
    #[serde(default)]
    pub show_node: bool,
    pub auth: Option<StatsAuth>,
    pub realm: Option<String>,
    /// Extension: stats connections served at once (default 100).
    pub maxconn: Option<i64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StatsAuth {
    pub user: String,
    pub password: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VrrpScript {
    pub script: String,
    pub interval: Option<DurationValue>,
    pub timeout: Option<DurationValue>,
    pub weight: Option<i64>,
    pub rise: Option<i64>,
    pub fall: Option<i64>,
    pub user: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VrrpInstance {
    pub name: String,
    pub interface: String,
    pub virtual_router_id: i64,
    pub priority: Option<i64>,
    /// 2 (default) or 3 (RFC 5798).
    pub version: Option<i64>,
    pub advert_int: Option<DurationValue>,
    pub state: Option<String>,
    #[serde(default)]
    pub nopreempt: bool,
    pub preempt_delay: Option<DurationValue>,
    /// Pass the old MASTER its connections for its hand-back (default true).
    pub handover_relay: Option<bool>,
    pub authentication: Option<Authentication>,
    pub unicast_src_ip: Option<String>,
    #[serde(default)]
    pub unicast_peers: Vec<String>,
    #[serde(default)]
    pub virtual_ipaddress: Vec<String>,
    pub garp_master_delay: Option<DurationValue>,
    pub garp_master_repeat: Option<i64>,
    pub garp_master_refresh: Option<DurationValue>,
    #[serde(default)]
    pub track_interfaces: Vec<TrackInterface>,
    #[serde(default)]
    pub track_scripts: Vec<TrackScriptRef>,
    #[serde(default)]
    pub track_backends: Vec<TrackBackend>,
    pub notify_master: Option<String>,
    pub notify_backup: Option<String>,
    pub notify_fault: Option<String>,
    pub notify_stop: Option<String>,
    pub notify: Option<String>,
}

/// keepalived `vrrp_sync_group`: instances that move together.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VrrpSyncGroup {
    pub name: String,
    pub group: Vec<String>,
    pub notify_master: Option<String>,
    pub notify_backup: Option<String>,
    pub notify_fault: Option<String>,
    pub notify: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Authentication {
    pub auth_type: String,
    pub auth_pass: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrackInterface {
    pub name: String,
    pub weight: Option<i64>,
}

/// `chk_web` or `{ name: chk_web, weight: -30 }`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum TrackScriptRef {
    Name(String),
    Full(TrackScriptFull),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrackScriptFull {
    pub name: String,
    pub weight: Option<i64>,
}

impl TrackScriptRef {
    pub fn name(&self) -> &str {
        match self {
            TrackScriptRef::Name(n) => n,
            TrackScriptRef::Full(f) => &f.name,
        }
    }
    pub fn weight(&self) -> Option<i64> {
        match self {
            TrackScriptRef::Name(_) => None,
            TrackScriptRef::Full(f) => f.weight,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrackBackend {
    pub backend: String,
    pub min_up: Option<i64>,
    pub weight: Option<i64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Frontend {
    pub name: String,
    pub mode: Option<String>,
    #[serde(default)]
    pub bind: Vec<String>,
    pub gate: Option<Vec<String>>,
    pub tls: Option<FrontendTls>,
    /// `true`, `false` or `{ code, port }` (lb.md §10).
    pub redirect_https: Option<RedirectHttps>,
    /// Strict-Transport-Security max-age on TLS responses.
    pub hsts: Option<DurationValue>,
    /// Accept HTTP/2 with prior knowledge on a plain listener.
    #[serde(default)]
    pub h2c: bool,
    /// Concurrent HTTP/2 streams per client connection.
    pub h2_max_streams: Option<i64>,
    pub maxconn: Option<i64>,
    pub timeouts: Option<FrontendTimeouts>,
    #[serde(default)]
    pub set_headers: BTreeMap<String, String>,
    #[serde(default)]
    pub forwarded_for: bool,
    #[serde(default)]
    pub routes: Vec<Route>,
    pub default_backend: Option<String>,
    #[serde(default)]
    pub error_pages: BTreeMap<i64, String>,
    /// Read a PROXY v1/v2 header first; its source is the client (lb.md §11).
    #[serde(default)]
    pub accept_proxy: bool,
    /// HAProxy `monitor-uri`: answered locally, 200 or 503.
    pub monitor_uri: Option<String>,
    /// HAProxy `http-request del-header`.
    #[serde(default)]
    pub del_headers: Vec<String>,
    /// Deny/allow rules evaluated before routes, first match wins.
    #[serde(default)]
    pub rules: Vec<AccessRule>,
}

/// A frontend `rules[]` entry: `match` and either `deny: <status>` or `allow: true`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccessRule {
    #[serde(rename = "match", default)]
    pub matches: AccessMatch,
    pub deny: Option<i64>,
    /// `allow: true` (or an empty `allow:`): stop evaluating.
    pub allow: Option<serde_yaml::Value>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccessMatch {
    /// Client networks (`203.0.113.0/24`) or addresses.
    #[serde(default)]
    pub src: Vec<String>,
    #[serde(default)]
    pub method: Vec<String>,
    pub path_prefix: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FrontendTls {
    #[serde(default)]
    pub certificates: Vec<CertificateRef>,
    /// "1.2" or "1.3"; a YAML number (1.2 unquoted) is accepted too.
    pub min_version: Option<serde_yaml::Value>,
    pub alpn: Option<Vec<String>>,
    /// TLS 1.3 suites (HAProxy `ciphersuites`).
    pub ciphersuites: Option<SuiteList>,
    /// TLS 1.2 suites (HAProxy `ciphers`).
    pub ciphers: Option<SuiteList>,
    /// Stateless session tickets (default true); false is HAProxy's `no-tls-tickets`.
    pub tickets: Option<bool>,
}

/// Cipher suite names: a YAML list, or HAProxy's one string with `:` between names.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum SuiteList {
    List(Vec<String>),
    Text(String),
}

impl SuiteList {
    /// The names, in order (blank pieces of a string dropped).
    pub fn names(&self) -> Vec<String> {
        match self {
            SuiteList::List(v) => v.iter().map(|n| n.trim().to_string()).collect(),
            SuiteList::Text(t) => t
                .split(':')
                .map(str::trim)
                .filter(|n| !n.is_empty())
                .map(String::from)
                .collect(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum RedirectHttps {
    On(bool),
    With(RedirectHttpsOptions),
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedirectHttpsOptions {
    pub code: Option<i64>,
    pub port: Option<i64>,
}

impl RedirectHttps {
    /// The options when redirecting is on.
    pub fn options(&self) -> Option<RedirectHttpsOptions> {
        match self {
            RedirectHttps::On(false) => None,
            RedirectHttps::On(true) => Some(RedirectHttpsOptions::default()),
            RedirectHttps::With(o) => Some(RedirectHttpsOptions {
                code: o.code,
                port: o.port,
            }),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum CertificateRef {
    Pem(String),
    Pair { cert: String, key: String },
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FrontendTimeouts {
    pub client: Option<DurationValue>,
    pub http_request: Option<DurationValue>,
    pub keep_alive: Option<DurationValue>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Route {
    #[serde(rename = "match")]
    pub matches: RouteMatch,
    pub backend: String,
    #[serde(default)]
    pub strip_prefix: bool,
    #[serde(default)]
    pub require_available: bool,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteMatch {
    pub host: Option<String>,
    pub path_prefix: Option<String>,
    /// tcp mode: the TLS ClientHello's server name.
    pub sni: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Backend {
    pub name: String,
    pub mode: Option<String>,
    pub balance: Option<String>,
    #[serde(default)]
    pub servers: Vec<Server>,
    pub health_check: Option<HealthCheck>,
    pub cookie: Option<Cookie>,
    pub retries: Option<i64>,
    #[serde(default)]
    pub redispatch: bool,
    pub timeouts: Option<BackendTimeouts>,
    pub tls: Option<BackendTls>,
    /// keep-alive | server-close | close (lb.md §7)
    pub http_mode: Option<String>,
    /// HAProxy `retry-on`: besides connect failures (always retried), `empty-response`
    /// replays body-less idempotent requests that got no answer at all.
    #[serde(default)]
    pub retry_on: Vec<String>,
    /// HAProxy `option allbackups`: balance over every backup server, not just the first.
    #[serde(default)]
    pub all_backups: bool,
    /// v1 | v2: PROXY protocol header to each server.
    pub send_proxy: Option<String>,
    /// shutdown_sessions: cut a DOWN server's tcp sessions (HAProxy on-marked-down).
    pub on_marked_down: Option<String>,
    /// HAProxy backend `http-request set-header`: after the frontend's.
    #[serde(default)]
    pub set_headers: BTreeMap<String, String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Server {
    pub name: String,
    pub address: String,
    pub weight: Option<i64>,
    pub maxconn: Option<i64>,
    #[serde(default)]
    pub backup: bool,
    /// Persistence cookie value (default: the server name).
    pub cookie: Option<String>,
    /// false = never health-checked (HAProxy: no `check`).
    pub check: Option<bool>,
    /// Health-check this port instead of the address's (HAProxy server `port`).
    pub check_port: Option<i64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HealthCheck {
    pub kind: Option<String>,
    pub path: Option<String>,
    pub host: Option<String>,
    pub interval: Option<DurationValue>,
    pub timeout: Option<DurationValue>,
    pub rise: Option<i64>,
    pub fall: Option<i64>,
    pub port: Option<i64>,
    /// Default GET.
    pub method: Option<String>,
    /// Accepted statuses: codes and ranges, e.g. ["200-399"] (default) or [200, 204].
    pub expect_status: Option<Vec<serde_yaml::Value>>,
    /// HAProxy `fastinter`: interval while going up or down.
    pub fast_interval: Option<DurationValue>,
    /// HAProxy `downinter`: interval while fully DOWN.
    pub down_interval: Option<DurationValue>,
    /// up (default) | down: the state before the first check.
    pub initial_state: Option<String>,
    /// HAProxy `option log-health-checks`: log every check result change.
    pub log_changes: Option<bool>,
    /// Extra request header fields of an http probe (`User-Agent: HAProxy`).
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Cookie {
    pub name: String,
    pub mode: Option<String>,
    #[serde(default)]
    pub indirect: bool,
    #[serde(default)]
    pub nocache: bool,
    #[serde(default)]
    pub httponly: bool,
    #[serde(default)]
    pub secure: bool,
    pub domain: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackendTimeouts {
    pub connect: Option<DurationValue>,
    pub server: Option<DurationValue>,
    pub queue: Option<DurationValue>,
    pub server_idle: Option<DurationValue>,
    /// Inactivity limit of a tunnel: a tcp-mode session, and in http mode a WebSocket upgrade
    /// (after its 101) or a CONNECT (after its 2xx).
    pub tunnel: Option<DurationValue>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackendTls {
    pub verify: Option<bool>,
    pub ca_file: Option<String>,
    /// Also trust the system CA store.
    #[serde(default)]
    pub system: bool,
    pub sni: Option<String>,
    pub verify_host: Option<String>,
    /// Client certificate (PEM chain; may hold the key).
    pub cert: Option<String>,
    pub key: Option<String>,
}
