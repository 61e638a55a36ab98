//! The proxy's own typed configuration.
//!
//! The binary owns the YAML schema and validation (docs/config.md, lb.md §17) and translates a
//! valid file into these structs. Every struct has a constructor or `Default` carrying the
//! defaults of lb.md, so the translation only sets what the file says. The proxy assumes a
//! validated config but never panics on an odd one: a route naming an unknown backend is
//! ignored, a backend without servers answers 503, `rise: 0` counts as 1, and so on.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Everything the proxy serves.
#[derive(Clone, Debug)]
pub struct ProxyConfig {
    /// `global.node`: shown in logs and stats.
    pub node: String,
    /// `global.log.access_log`: one `target: "access"` line per exchange. Default true.
    pub access_log: bool,
    /// `global.maxconn`†: connections accepted by the whole process. Default 4096.
    pub maxconn: usize,
    /// How long a gated frontend's in-flight requests may run on after the gate closes
    /// (connections are then cut). Default 5 s.
    pub gate_drain: Duration,
    pub frontends: Vec<FrontendConfig>,
    pub backends: Vec<BackendConfig>,
}

impl ProxyConfig {
    pub fn new(frontends: Vec<FrontendConfig>, backends: Vec<BackendConfig>) -> Self {
        ProxyConfig {
            node: String::new(),
            access_log: true,
            maxconn: 4096,
            gate_drain: Duration::from_secs(5),
            frontends,
            backends,
        }
    }
}

/// A `frontends[]` entry (mode http).
#[derive(Clone, Debug)]
pub struct FrontendConfig {
    pub name: String,
    /// Listening addresses; bound with IP_FREEBIND so a VIP may be absent at bind time.
    pub bind: Vec<SocketAddr>,
    /// `gate: [...]` present: listen only while the binary says so (`Gate::set_serving`).
    pub gated: bool,
    /// Frontend `maxconn`; `None` = the global value.
    pub maxconn: Option<usize>,
    pub timeouts: FrontendTimeouts,
    /// `option forwardfor`: append X-Forwarded-For, set X-Forwarded-Proto. Default false.
    pub forwarded_for: bool,
    /// `http-request set-header` pairs: header name, value template (`%[src]`...).
    pub set_headers: Vec<(String, String)>,
    /// Tried in order, first match wins.
    pub routes: Vec<RouteConfig>,
    pub default_backend: Option<String>,
    /// HAProxy `errorfile`: status code → raw HTTP response file.
    pub error_pages: BTreeMap<u16, PathBuf>,
    /// `tls`: terminate TLS on every bind of this frontend (lb.md §10).
    pub tls: Option<TlsConfig>,
    /// `hsts`: `Strict-Transport-Security: max-age=N` on responses to TLS connections.
    pub hsts: Option<Duration>,
    /// `redirect_https`: plain-connection requests are redirected to https (lb.md §10).
    pub redirect_https: Option<RedirectHttps>,
    /// `h2c`: accept HTTP/2 with prior knowledge on a plain listener. Default false.
    pub h2c: bool,
    /// `h2_max_streams`: concurrent HTTP/2 streams per client connection. Default 100.
    pub h2_max_streams: u32,
    /// `http` parses requests; `tcp` forwards bytes (lb.md §11).
    pub mode: Mode,
    /// Every connection starts with a PROXY v1/v2 header whose source is the client.
    pub accept_proxy: bool,
    /// tcp mode with SNI routes: how long to wait for the whole ClientHello (the frontend's
    /// `client` timeout when set, else 5 s).
    pub inspect_timeout: Duration,
    /// HAProxy `monitor-uri`: this path is answered locally (200, or 503 while no backend of
    /// the frontend has a usable server), never forwarded nor logged.
    pub monitor_uri: Option<String>,
    /// HAProxy `http-request del-header`: request fields removed before forwarding.
    pub del_headers: Vec<String>,
    /// Evaluated before routes, first match wins (HAProxy `http-request deny|allow`,
    /// `tcp-request content reject`); tcp mode matches on `src` only.
    pub rules: Vec<AccessRule>,
}

/// Where and how `redirect_https` sends a plain request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RedirectHttps {
    /// 301, 302 (default), 303, 307 or 308.
    pub code: u16,
    /// The https port; 443 is left out of the Location.
    pub port: u16,
}

impl Default for RedirectHttps {
    fn default() -> Self {
        RedirectHttps {
            code: 302,
            port: 443,
        }
    }
}

impl FrontendConfig {
    pub fn new(name: impl Into<String>, bind: Vec<SocketAddr>) -> Self {
        FrontendConfig {
            name: name.into(),
            bind,
            gated: false,
            maxconn: None,
            timeouts: FrontendTimeouts::default(),
            forwarded_for: false,
            set_headers: Vec::new(),
            routes: Vec::new(),
            default_backend: None,
            error_pages: BTreeMap::new(),
            tls: None,
            hsts: None,
            redirect_https: None,
            h2c: false,
            h2_max_streams: 100,
            mode: Mode::Http,
            accept_proxy: false,
            inspect_timeout: Duration::from_secs(5),
            monitor_uri: None,
            del_headers: Vec::new(),
            rules: Vec::new(),
        }
    }
}

/// One frontend `rules[]` entry: every condition given must hold (an empty list or `None`
/// matches anything).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccessRule {
    /// Client address in any of these networks.
    pub src: Vec<Cidr>,
    /// Request method, compared as sent (methods are case-sensitive).
    pub methods: Vec<String>,
    /// The path starts with this (HAProxy `path_beg`: a plain prefix).
    pub path_prefix: Option<String>,
    pub action: RuleAction,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RuleAction {
    /// Stop evaluating: the request goes on to the routes.
    Allow,
    /// Answer this status locally (tcp mode: close the connection).
    Deny(u16),
}

impl AccessRule {
    /// Whether an HTTP request matches (`method`, `path` as received).
    pub fn matches(&self, client: std::net::IpAddr, method: &str, path: &str) -> bool {
        self.matches_src(client)
            && (self.methods.is_empty() || self.methods.iter().any(|m| m == method))
            && self
                .path_prefix
                .as_deref()
                .is_none_or(|p| path.starts_with(p))
    }

    pub fn matches_src(&self, client: std::net::IpAddr) -> bool {
        self.src.is_empty() || self.src.iter().any(|c| c.contains(client))
    }

    /// The action of the first rule that matches, if any.
    pub fn first_match(
        rules: &[AccessRule],
        client: std::net::IpAddr,
        method: &str,
        path: &str,
    ) -> Option<RuleAction> {
        rules
            .iter()
            .find(|r| r.matches(client, method, path))
            .map(|r| r.action)
    }
}

/// An IPv4 or IPv6 network (`203.0.113.0/24`, `2001:db8::/32`) or one address (no `/`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cidr {
    addr: std::net::IpAddr,
    prefix: u8,
}

impl Cidr {
    pub fn parse(text: &str) -> Result<Cidr, String> {
        let (a, len) = match text.trim().split_once('/') {
            Some((a, l)) => (a, Some(l)),
            None => (text.trim(), None),
        };
        let addr: std::net::IpAddr = a
            .parse()
            .map_err(|_| format!("`{text}` is not an IP address or network"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match len {
            None => max,
            Some(l) => l
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| format!("`{text}`: the prefix length must be 0..={max}"))?,
        };
        Ok(Cidr { addr, prefix })
    }

    /// IPv4 clients seen on an IPv6 socket (`::ffff:a.b.c.d`) match IPv4 networks.
    pub fn contains(&self, ip: std::net::IpAddr) -> bool {
        use std::net::IpAddr;
        match (self.addr, ip.to_canonical()) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

/// Frontend `timeouts` (lb.md §12).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Mode {
    #[default]
    Http,
    Tcp,
}

/// PROXY protocol version written to servers (`send_proxy`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProxyVersion {
    V1,
    V2,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrontendTimeouts {
    /// Inactivity reading the request body or writing to the client. Default 50 s.
    pub client: Duration,
    /// First byte → end of the request headers; expiry answers 408. Default 10 s.
    pub http_request: Duration,
    /// `keep_alive`†: idle time between two requests; `None` = `http_request`.
    pub keep_alive: Option<Duration>,
}

impl Default for FrontendTimeouts {
    fn default() -> Self {
        FrontendTimeouts {
            client: Duration::from_secs(50),
            http_request: Duration::from_secs(10),
            keep_alive: None,
        }
    }
}

/// One `routes[]` entry: every condition present must hold.
#[derive(Clone, Debug)]
pub struct RouteConfig {
    pub host: Option<HostMatch>,
    /// `/app1` and `/app1/` are the same prefix (directory semantics, lb.md §2).
    pub path_prefix: Option<String>,
    pub backend: String,
    pub strip_prefix: bool,
    pub require_available: bool,
    /// tcp mode: the ClientHello's server name (same matching rules as `host`).
    pub sni: Option<HostMatch>,
}

impl RouteConfig {
    pub fn new(backend: impl Into<String>) -> Self {
        RouteConfig {
            host: None,
            path_prefix: None,
            backend: backend.into(),
            strip_prefix: false,
            require_available: false,
            sni: None,
        }
    }
}

/// `match.host`: an exact name or `*.domain`, compared case-insensitively without the port.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HostMatch {
    /// Lower-case host name.
    Exact(String),
    /// Lower-case suffix including its leading dot (`.example.test` for `*.example.test`).
    Suffix(String),
}

impl HostMatch {
    /// `"*.example.test"` → `Suffix(".example.test")`, anything else → `Exact`.
    pub fn parse(pattern: &str) -> Self {
        let lower = pattern.trim().to_ascii_lowercase();
        match lower.strip_prefix('*') {
            Some(rest) if rest.starts_with('.') => HostMatch::Suffix(rest.to_string()),
            _ => HostMatch::Exact(lower),
        }
    }
}

/// `balance`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Balance {
    #[default]
    RoundRobin,
    LeastConn,
    Source,
}

/// A `backends[]` entry (mode http).
#[derive(Clone, Debug)]
pub struct BackendConfig {
    pub name: String,
    pub balance: Balance,
    pub servers: Vec<ServerConfig>,
    /// `all_backups`†: balance over every usable backup, not only the first. Default false.
    pub all_backups: bool,
    /// `None`: no checks, every server counts as UP.
    pub health_check: Option<HealthCheckConfig>,
    pub cookie: Option<CookieConfig>,
    /// Extra connection attempts after a connect failure. Default 3.
    pub retries: u32,
    /// Send the last attempt to another server. Default false.
    pub redispatch: bool,
    /// `retry_on: [empty-response]`†: also retry an idempotent request without a body when
    /// the server closed or reset the connection before sending any response (a server that
    /// just died, or a pooled connection it had closed). Default false.
    pub retry_on_empty_response: bool,
    pub timeouts: BackendTimeouts,
    /// `tls`: connections to the servers (and their health checks) speak TLS.
    pub tls: Option<ServerTlsConfig>,
    pub mode: Mode,
    pub send_proxy: Option<ProxyVersion>,
    /// HAProxy `on-marked-down shutdown-sessions`: a server marked DOWN has its tcp sessions cut.
    pub shutdown_sessions_on_down: bool,
    /// HAProxy backend `http-request set-header`: name, value template; applied after the
    /// frontend's.
    pub set_headers: Vec<(String, String)>,
}

impl BackendConfig {
    pub fn new(name: impl Into<String>, servers: Vec<ServerConfig>) -> Self {
        BackendConfig {
            name: name.into(),
            balance: Balance::RoundRobin,
            servers,
            all_backups: false,
            health_check: None,
            cookie: None,
            retries: 3,
            redispatch: false,
            retry_on_empty_response: false,
            timeouts: BackendTimeouts::default(),
            mode: Mode::Http,
            send_proxy: None,
            shutdown_sessions_on_down: false,
            tls: None,
            set_headers: Vec::new(),
        }
    }
}

/// Backend `tls` (lb.md §10 "To servers").
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerTlsConfig {
    /// Verify the server's certificate chain and name. Default true.
    pub verify: bool,
    /// PEM bundle of the CAs trusted for the servers.
    pub ca_file: Option<PathBuf>,
    /// `system: true`†: also trust the system CA store (/etc/ssl/certs).
    pub system: bool,
    /// `sni`†: sent as SNI and verified; default `verify_host`.
    pub sni: Option<String>,
    /// `verify_host`†: the name verified when `sni` is absent (also sent as SNI).
    pub verify_host: Option<String>,
    /// `cert`†: client certificate chain (PEM; may hold the key too).
    pub cert: Option<PathBuf>,
    /// `key`†: the client key when it is not in `cert`.
    pub key: Option<PathBuf>,
}

impl Default for ServerTlsConfig {
    fn default() -> Self {
        ServerTlsConfig {
            verify: true,
            ca_file: None,
            system: false,
            sni: None,
            verify_host: None,
            cert: None,
            key: None,
        }
    }
}

/// Backend `timeouts` (lb.md §12).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BackendTimeouts {
    /// One TCP connect attempt. Default 5 s.
    pub connect: Duration,
    /// Inactivity waiting for the server; before response headers → 504. Default 50 s.
    pub server: Duration,
    /// Time in a queue → 503. Default = `connect` (5 s); the binary sets it to `connect`
    /// when the file does not say.
    pub queue: Duration,
    /// `server_idle`†: pooled idle server connections older than this are closed. Default 2 s.
    pub server_idle: Duration,
    /// Inactivity limit of a tunnel (tcp mode, WebSocket/CONNECT), both directions; `None` =
    /// the smaller of the frontend's `client` and the backend's `server`.
    pub tunnel: Option<Duration>,
}

impl Default for BackendTimeouts {
    fn default() -> Self {
        BackendTimeouts {
            connect: Duration::from_secs(5),
            server: Duration::from_secs(50),
            queue: Duration::from_secs(5),
            server_idle: Duration::from_secs(2),
            tunnel: None,
        }
    }
}

/// One `servers[]` entry.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    pub name: String,
    pub addr: SocketAddr,
    /// 0–256, default 1; 0 = never picked by an algorithm, still reachable by its cookie.
    pub weight: u32,
    /// Requests in flight to this server; 0 = unlimited (default).
    pub maxconn: usize,
    pub backup: bool,
    /// Persistence cookie value; `None` = the server name, `Some("")` = no cookie.
    pub cookie: Option<String>,
    /// `check: false`†: never checked, always usable. Default true.
    pub check: bool,
    /// Probe this port instead of the address's (HAProxy server `port`); before the
    /// backend's `health_check.port`.
    pub check_port: Option<u16>,
}

impl ServerConfig {
    pub fn new(name: impl Into<String>, addr: SocketAddr) -> Self {
        ServerConfig {
            name: name.into(),
            addr,
            weight: 1,
            maxconn: 0,
            backup: false,
            cookie: None,
            check: true,
            check_port: None,
        }
    }

    /// The value this server's persistence cookie carries (empty = none).
    pub fn cookie_value(&self) -> &str {
        self.cookie.as_deref().unwrap_or(&self.name)
    }
}

/// `health_check.kind`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum CheckKind {
    #[default]
    Http,
    Tcp,
}

/// `health_check` (lb.md §4).
#[derive(Clone, Debug)]
pub struct HealthCheckConfig {
    pub kind: CheckKind,
    /// Default `GET`.
    pub method: String,
    /// Default `/`.
    pub path: String,
    /// Host header; `None` = the server address.
    pub host: Option<String>,
    /// Accepted status ranges, inclusive. Default `200-399`.
    pub expect_status: Vec<(u16, u16)>,
    /// Probe this port instead of the server's.
    pub port: Option<u16>,
    /// Default 2 s.
    pub interval: Duration,
    /// One probe; default = interval.
    pub timeout: Duration,
    /// Default 2.
    pub rise: u32,
    /// Default 3.
    pub fall: u32,
    /// Interval while going up/down or never checked; `None` = `interval`.
    pub fast_interval: Option<Duration>,
    /// Interval while fully DOWN; `None` = `interval`.
    pub down_interval: Option<Duration>,
    /// `initial_state: down`† → false. Default true (UP until the first failure).
    pub initial_up: bool,
    /// Log every probe result that changes the counter, not only the notable ones.
    pub log_changes: bool,
    /// Extra request header fields of an http probe; a `User-Agent` here replaces
    /// `vrrplb-check`. Host, Connection and the body framing stay the probe's own.
    pub headers: Vec<(String, String)>,
}

impl Default for HealthCheckConfig {
    fn default() -> Self {
        HealthCheckConfig {
            kind: CheckKind::Http,
            method: "GET".to_string(),
            path: "/".to_string(),
            host: None,
            expect_status: vec![(200, 399)],
            port: None,
            interval: Duration::from_secs(2),
            timeout: Duration::from_secs(2),
            rise: 2,
            fall: 3,
            fast_interval: None,
            down_interval: None,
            initial_up: true,
            log_changes: false,
            headers: Vec::new(),
        }
    }
}

/// Backend `cookie` (lb.md §5; only `insert` mode exists).
#[derive(Clone, Debug)]
pub struct CookieConfig {
    pub name: String,
    /// Remove the cookie before the request reaches the server.
    pub indirect: bool,
    /// Add `Cache-Control: private` when inserting.
    pub nocache: bool,
    pub httponly: bool,
    pub secure: bool,
    pub domain: Option<String>,
}

impl CookieConfig {
    pub fn new(name: impl Into<String>) -> Self {
        CookieConfig {
            name: name.into(),
            indirect: false,
            nocache: false,
            httponly: false,
            secure: false,
            domain: None,
        }
    }
}

/// `min_version`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum TlsVersion {
    #[default]
    V1_2,
    V1_3,
}

/// The default `ciphersuites` (TLS 1.3), Mozilla's "intermediate" order: AES-128-GCM,
/// AES-256-GCM, ChaCha20-Poly1305 (listen/tls/suites.rs says why AES-128 first).
pub const DEFAULT_CIPHERSUITES: [&str; 3] = [
    "TLS_AES_128_GCM_SHA256",
    "TLS_AES_256_GCM_SHA384",
    "TLS_CHACHA20_POLY1305_SHA256",
];

/// The default `ciphers` (TLS 1.2, OpenSSL's names), in the same order of ciphers.
pub const DEFAULT_CIPHERS: [&str; 6] = [
    "ECDHE-ECDSA-AES128-GCM-SHA256",
    "ECDHE-RSA-AES128-GCM-SHA256",
    "ECDHE-ECDSA-AES256-GCM-SHA384",
    "ECDHE-RSA-AES256-GCM-SHA384",
    "ECDHE-ECDSA-CHACHA20-POLY1305",
    "ECDHE-RSA-CHACHA20-POLY1305",
];

/// A frontend's `tls` block.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsConfig {
    pub certificates: Vec<CertSource>,
    pub min_version: TlsVersion,
    /// ALPN protocol names in preference order; default `h2`, `http/1.1`.
    pub alpn: Vec<String>,
    /// TLS 1.3 suites (RFC 8446 names), in the server's order of preference.
    pub ciphersuites: Vec<String>,
    /// TLS 1.2 suites (OpenSSL's names), in the server's order of preference.
    pub ciphers: Vec<String>,
    /// `tickets`: resumption by stateless session tickets. Default true. False (HAProxy's
    /// `no-tls-tickets`): no ticket key; TLS 1.2 resumes by session id and TLS 1.3 by a
    /// ticket that only names an entry of the server's bounded session cache.
    pub tickets: bool,
}

impl TlsConfig {
    pub fn new(certificates: Vec<CertSource>) -> Self {
        TlsConfig {
            certificates,
            min_version: TlsVersion::V1_2,
            alpn: vec!["h2".into(), "http/1.1".into()],
            ciphersuites: DEFAULT_CIPHERSUITES.map(String::from).to_vec(),
            ciphers: DEFAULT_CIPHERS.map(String::from).to_vec(),
            tickets: true,
        }
    }

    /// Whether clients may pick HTTP/2 through ALPN.
    pub fn offers_h2(&self) -> bool {
        self.alpn.iter().any(|p| p == "h2")
    }
}

/// One `certificates` entry of a frontend.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CertSource {
    /// A PEM bundle, or a directory of them (read in name order).
    Pem(PathBuf),
    /// Certificate chain and private key in two files.
    Pair { cert: PathBuf, key: PathBuf },
}

impl CertSource {
    /// The path a reader of the configuration knows this entry by.
    pub fn path(&self) -> &Path {
        match self {
            CertSource::Pem(p) => p,
            CertSource::Pair { cert, .. } => cert,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> std::net::IpAddr {
        s.parse().expect("ip")
    }

    #[test]
    fn networks_match_their_addresses_only() {
        let v4 = Cidr::parse("203.0.113.0/24").expect("v4");
        assert!(v4.contains(ip("203.0.113.7")));
        assert!(!v4.contains(ip("203.0.114.7")));
        assert!(v4.contains(ip("::ffff:203.0.113.9")), "v4-mapped client");
        assert!(!v4.contains(ip("2001:db8::1")));
        let one = Cidr::parse("198.51.100.5").expect("host");
        assert!(one.contains(ip("198.51.100.5")) && !one.contains(ip("198.51.100.6")));
        let all = Cidr::parse("0.0.0.0/0").expect("all");
        assert!(all.contains(ip("198.51.100.6")));
        let v6 = Cidr::parse("2001:db8::/32").expect("v6");
        assert!(v6.contains(ip("2001:db8:1::5")) && !v6.contains(ip("2001:db9::5")));
        for bad in [
            "203.0.113.0/33",
            "2001:db8::/129",
            "x/8",
            "203.0.113.0/",
            "",
        ] {
            assert!(Cidr::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn first_matching_rule_decides() {
        let rule = |src: &[&str], methods: &[&str], path: Option<&str>, action| AccessRule {
            src: src.iter().map(|s| Cidr::parse(s).expect("cidr")).collect(),
            methods: methods.iter().map(|m| m.to_string()).collect(),
            path_prefix: path.map(str::to_owned),
            action,
        };
        let rules = [
            rule(&["198.51.100.0/24"], &[], None, RuleAction::Allow),
            rule(&[], &["POST"], Some("/admin/"), RuleAction::Deny(403)),
            rule(&["203.0.113.0/24"], &[], None, RuleAction::Deny(429)),
        ];
        let decide = |c: &str, m: &str, p: &str| AccessRule::first_match(&rules, ip(c), m, p);
        assert_eq!(
            decide("198.51.100.1", "POST", "/admin/x"),
            Some(RuleAction::Allow)
        );
        assert_eq!(
            decide("2001:db8::7", "POST", "/admin/x"),
            Some(RuleAction::Deny(403))
        );
        assert_eq!(decide("2001:db8::7", "GET", "/admin/x"), None);
        assert_eq!(
            decide("2001:db8::7", "post", "/admin/x"),
            None,
            "methods are case-sensitive"
        );
        assert_eq!(
            decide("203.0.113.4", "GET", "/"),
            Some(RuleAction::Deny(429))
        );
    }
}
