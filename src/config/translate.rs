//! A validated file's balancer sections, as the `proxy` crate's typed config. Validation
//! already judged every value; what cannot be read here is skipped (it cannot happen for a
//! file that passed `validate`).

use super::duration::DurationValue;
use super::schema::{self, ConfigFile};
use super::validate::{parse_status_range, Validated};
use proxy::config::{
    AccessRule, BackendConfig, BackendTimeouts, Balance, CheckKind, Cidr, CookieConfig,
    FrontendConfig, FrontendTimeouts, HealthCheckConfig, HostMatch, Mode, ProxyConfig,
    ProxyVersion, RouteConfig, RuleAction, ServerConfig, ServerTlsConfig,
};
use std::net::SocketAddr;
use std::time::Duration;

fn dur(v: &Option<DurationValue>, default: Duration) -> Duration {
    v.as_ref().and_then(|d| d.parse().ok()).unwrap_or(default)
}

pub fn proxy_config(v: &Validated) -> ProxyConfig {
    let f: &ConfigFile = &v.file;
    let mut pc = ProxyConfig::new(
        f.frontends
            .iter()
            .map(|x| {
                let mut fc = frontend(x, &f.frontends);
                // A frontend serving an announced address opens with the announcement.
                fc.gated |= f.announce.iter().any(|a| a.frontends.contains(&x.name));
                fc
            })
            .collect(),
        f.backends.iter().map(|b| backend(b, &v.resolved)).collect(),
    );
    pc.node = v.node.clone();
    pc.access_log = v.log.access_log;
    if let Some(m) = f.global.maxconn {
        pc.maxconn = m.max(1) as usize;
    }
    pc
}

/// HAProxy's `:80` / `*:80` mean every address.
pub fn bind_addr(text: &str) -> Option<SocketAddr> {
    let t = text.trim();
    let t = t.strip_prefix('*').unwrap_or(t);
    if t.starts_with(':') {
        format!("0.0.0.0{t}").parse().ok()
    } else {
        t.parse().ok()
    }
}

fn frontend(x: &schema::Frontend, all: &[schema::Frontend]) -> FrontendConfig {
    let mut fc = FrontendConfig::new(
        x.name.clone(),
        x.bind.iter().filter_map(|b| bind_addr(b)).collect(),
    );
    fc.gated = x.gate.is_some();
    fc.mode = mode(&x.mode);
    fc.accept_proxy = x.accept_proxy;
    // SNI inspection waits at most the frontend's `client` timeout, 5 s when not set.
    if let Some(t) = x.timeouts.as_ref().and_then(|t| t.client.as_ref()) {
        fc.inspect_timeout = t.parse().unwrap_or(fc.inspect_timeout);
    }
    fc.maxconn = x.maxconn.map(|m| m.max(1) as usize);
    if let Some(t) = &x.timeouts {
        fc.timeouts = FrontendTimeouts {
            client: dur(&t.client, fc.timeouts.client),
            http_request: dur(&t.http_request, fc.timeouts.http_request),
            keep_alive: t
                .keep_alive
                .as_ref()
                .and_then(|d| d.parse().ok())
                .or(fc.timeouts.keep_alive),
        };
    }
    fc.forwarded_for = x.forwarded_for;
    fc.set_headers = x
        .set_headers
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    fc.routes = x
        .routes
        .iter()
        .map(|r| {
            let mut rc = RouteConfig::new(r.backend.clone());
            rc.host = r.matches.host.as_deref().map(HostMatch::parse);
            rc.path_prefix = r.matches.path_prefix.clone();
            rc.sni = r.matches.sni.as_deref().map(HostMatch::parse);
            rc.strip_prefix = r.strip_prefix;
            rc.require_available = r.require_available;
            rc
        })
        .collect();
    fc.default_backend = x.default_backend.clone();
    fc.error_pages = x
        .error_pages
        .iter()
        .map(|(c, p)| (*c as u16, p.into()))
        .collect();
    fc.tls = x.tls.as_ref().map(super::tls::translate_tls);
    fc.hsts = super::tls::hsts(x);
    fc.redirect_https = super::tls::translate_redirect(x, all);
    fc.monitor_uri = x.monitor_uri.clone();
    fc.del_headers = x.del_headers.clone();
    fc.rules = x.rules.iter().map(access_rule).collect();
    fc.h2c = x.h2c;
    if let Some(n) = x.h2_max_streams {
        fc.h2_max_streams = n as u32;
    }
    fc
}

fn access_rule(r: &schema::AccessRule) -> AccessRule {
    AccessRule {
        src: r
            .matches
            .src
            .iter()
            .filter_map(|n| Cidr::parse(n).ok())
            .collect(),
        methods: r.matches.method.clone(),
        path_prefix: r.matches.path_prefix.clone(),
        action: match r.deny {
            Some(code) => RuleAction::Deny(code as u16),
            None => RuleAction::Allow,
        },
    }
}

fn mode(m: &Option<String>) -> Mode {
    match m.as_deref() {
        Some("tcp") => Mode::Tcp,
        _ => Mode::Http,
    }
}

fn backend(x: &schema::Backend, resolved: &super::resolve::Resolved) -> BackendConfig {
    let servers = x
        .servers
        .iter()
        .filter_map(|s| {
            // A host name was resolved when the file was loaded.
            let addr = s
                .address
                .parse()
                .ok()
                .or_else(|| resolved.get(&s.address).copied())?;
            let mut sc = ServerConfig::new(s.name.clone(), addr);
            if let Some(w) = s.weight {
                sc.weight = w as u32;
            }
            if let Some(m) = s.maxconn {
                sc.maxconn = m as usize;
            }
            sc.backup = s.backup;
            sc.check_port = s.check_port.map(|p| p as u16);
            sc.cookie = s.cookie.clone();
            if let Some(c) = s.check {
                sc.check = c;
            }
            Some(sc)
        })
        .collect();
    let mut bc = BackendConfig::new(x.name.clone(), servers);
    bc.balance = match x.balance.as_deref() {
        Some("leastconn") => Balance::LeastConn,
        Some("source") => Balance::Source,
        _ => Balance::RoundRobin,
    };
    bc.health_check = x.health_check.as_ref().map(|h| {
        let d = HealthCheckConfig::default();
        let interval = dur(&h.interval, d.interval);
        HealthCheckConfig {
            kind: if h.kind.as_deref() == Some("tcp") {
                CheckKind::Tcp
            } else {
                CheckKind::Http
            },
            path: h.path.clone().unwrap_or(d.path.clone()),
            host: h.host.clone(),
            port: h.port.map(|p| p as u16),
            interval,
            // HAProxy: the check timeout defaults to the interval.
            timeout: dur(&h.timeout, interval),
            rise: h.rise.map_or(d.rise, |r| r as u32),
            fall: h.fall.map_or(d.fall, |f| f as u32),
            method: h.method.clone().unwrap_or(d.method.clone()),
            expect_status: match &h.expect_status {
                Some(list) => list.iter().filter_map(parse_status_range).collect(),
                None => d.expect_status.clone(),
            },
            fast_interval: h.fast_interval.as_ref().and_then(|v| v.parse().ok()),
            down_interval: h.down_interval.as_ref().and_then(|v| v.parse().ok()),
            initial_up: h.initial_state.as_deref() != Some("down"),
            log_changes: h.log_changes.unwrap_or(false),
            headers: h
                .headers
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        }
    });
    bc.cookie = x.cookie.as_ref().map(|c| {
        let mut cc = CookieConfig::new(c.name.clone());
        cc.indirect = c.indirect;
        cc.nocache = c.nocache;
        cc.httponly = c.httponly;
        cc.secure = c.secure;
        cc.domain = c.domain.clone();
        cc
    });
    if let Some(r) = x.retries {
        bc.retries = r as u32;
    }
    bc.redispatch = x.redispatch;
    bc.retry_on_empty_response = x.retry_on.iter().any(|r| r == "empty-response");
    bc.all_backups = x.all_backups;
    bc.tls = x.tls.as_ref().map(server_tls);
    bc.mode = mode(&x.mode);
    bc.send_proxy = match x.send_proxy.as_deref() {
        Some("v1") => Some(ProxyVersion::V1),
        Some("v2") => Some(ProxyVersion::V2),
        _ => None,
    };
    bc.shutdown_sessions_on_down = x.on_marked_down.as_deref() == Some("shutdown_sessions");
    bc.set_headers = x
        .set_headers
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    if let Some(t) = &x.timeouts {
        let connect = dur(&t.connect, BackendTimeouts::default().connect);
        bc.timeouts = BackendTimeouts {
            connect,
            server: dur(&t.server, BackendTimeouts::default().server),
            // HAProxy: `timeout queue` defaults to `timeout connect`.
            queue: dur(&t.queue, connect),
            server_idle: dur(&t.server_idle, BackendTimeouts::default().server_idle),
            tunnel: t.tunnel.as_ref().and_then(|v| v.parse().ok()),
        };
    }
    bc
}

/// Backend `tls` as the proxy's settings (also what `check` loads).
pub fn server_tls(t: &schema::BackendTls) -> ServerTlsConfig {
    ServerTlsConfig {
        verify: t.verify.unwrap_or(true),
        ca_file: t.ca_file.as_ref().map(Into::into),
        system: t.system,
        sni: t.sni.clone(),
        verify_host: t.verify_host.clone(),
        cert: t.cert.as_ref().map(Into::into),
        key: t.key.as_ref().map(Into::into),
    }
}
