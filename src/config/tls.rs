//! A frontend's client-facing TLS keys (lb.md §10, config.md "Additions"): `tls` (with
//! `ciphersuites` and `ciphers`, HAProxy's names), `hsts`,
//! `redirect_https`, `h2c`, `h2_max_streams`; checked here, translated for the proxy.
//!
//! `check` loads every certificate exactly as `run` does, so a missing or mismatched key or an
//! unreadable file fails `check`, and an expiry within 30 days is a warning.

use std::path::PathBuf;
use std::time::Duration;

use proxy::config::RedirectHttps as ProxyRedirect;
use proxy::tls::{suites, CertResolver, CertSource, TlsConfig, TlsVersion};

use super::schema::{CertificateRef, Frontend, FrontendTls};
use super::Diags;

const REDIRECT_CODES: [i64; 5] = [301, 302, 303, 307, 308];
const ALPN: [&str; 2] = ["h2", "http/1.1"];
pub const H2_MAX_STREAMS: (i64, i64) = (1, 1000);

/// Checks the TLS-related keys of frontend `p` (`frontends[i]`).
pub(super) fn validate_frontend(d: &mut Diags, p: &str, f: &Frontend) {
    if let Some(tls) = &f.tls {
        validate_tls(d, p, tls);
        if f.redirect_https
            .as_ref()
            .and_then(|r| r.options())
            .is_some()
        {
            d.error(
                &format!("{p}.redirect_https"),
                "this frontend terminates TLS: it has no plain requests to redirect",
            );
        }
        if f.h2c {
            d.error(
                &format!("{p}.h2c"),
                "h2c is HTTP/2 without TLS; a TLS frontend offers h2 through `tls.alpn`",
            );
        }
    } else if f.hsts.is_some() {
        d.warning(
            &format!("{p}.hsts"),
            "hsts is sent on TLS connections only and this frontend has no `tls`",
        );
    }
    if let Some(h) = &f.hsts {
        match h.parse() {
            Ok(v) if v.is_zero() => d.error(&format!("{p}.hsts"), "must be greater than zero"),
            Ok(_) => {}
            Err(e) => d.error(&format!("{p}.hsts"), e),
        }
    }
    if let Some(o) = f.redirect_https.as_ref().and_then(|r| r.options()) {
        if let Some(code) = o.code {
            if !REDIRECT_CODES.contains(&code) {
                d.error(
                    &format!("{p}.redirect_https.code"),
                    format!("{code} is not a redirect code; allowed: 301, 302, 303, 307, 308"),
                );
            }
        }
        if let Some(port) = o.port {
            if !(1..=65535).contains(&port) {
                d.error(
                    &format!("{p}.redirect_https.port"),
                    format!("{port} is not a port (1..65535)"),
                );
            }
        }
    }
    if let Some(n) = f.h2_max_streams {
        let (lo, hi) = H2_MAX_STREAMS;
        if !(lo..=hi).contains(&n) {
            d.error(
                &format!("{p}.h2_max_streams"),
                format!("{n} is out of range {lo}..{hi}"),
            );
        }
    }
}

fn validate_tls(d: &mut Diags, p: &str, tls: &FrontendTls) {
    if tls.certificates.is_empty() {
        d.error(
            &format!("{p}.tls.certificates"),
            "at least one certificate is needed",
        );
    }
    for (j, c) in tls.certificates.iter().enumerate() {
        let path = format!("{p}.tls.certificates[{j}]");
        match CertResolver::load(&[source(c)]) {
            Ok((_, warnings)) => {
                for w in warnings {
                    d.warning(&path, w);
                }
            }
            Err(e) => d.error(&path, e.to_string()),
        }
    }
    if let Some(v) = &tls.min_version {
        if min_version(v).is_none() {
            d.error(
                &format!("{p}.tls.min_version"),
                format!(
                    "`{}` is not allowed; allowed: \"1.2\", \"1.3\"",
                    yaml_text(v)
                ),
            );
        }
    }
    for (key, list, tls13) in [
        ("ciphersuites", &tls.ciphersuites, true),
        ("ciphers", &tls.ciphers, false),
    ] {
        if let Some(list) = list {
            if let Err(e) = suites::check_names(&list.names(), tls13) {
                d.error(&format!("{p}.tls.{key}"), e);
            }
        }
    }
    let tls13_only = tls.min_version.as_ref().and_then(min_version) == Some(TlsVersion::V1_3);
    if tls13_only && tls.ciphers.is_some() {
        d.warning(
            &format!("{p}.tls.ciphers"),
            "TLS 1.2 suites are not used with min_version \"1.3\"",
        );
    }
    if let Some(alpn) = &tls.alpn {
        if alpn.is_empty() {
            d.error(
                &format!("{p}.tls.alpn"),
                "needs at least one protocol (h2, http/1.1)",
            );
        }
        for (j, proto) in alpn.iter().enumerate() {
            if !ALPN.contains(&proto.as_str()) {
                d.error(
                    &format!("{p}.tls.alpn[{j}]"),
                    format!("`{proto}` is not allowed; allowed: h2, http/1.1"),
                );
            }
        }
    }
}

fn source(c: &CertificateRef) -> CertSource {
    match c {
        CertificateRef::Pem(f) => CertSource::Pem(PathBuf::from(f)),
        CertificateRef::Pair { cert, key } => CertSource::Pair {
            cert: PathBuf::from(cert),
            key: PathBuf::from(key),
        },
    }
}

fn yaml_text(v: &serde_yaml::Value) -> String {
    match v {
        serde_yaml::Value::String(s) => s.clone(),
        serde_yaml::Value::Number(n) => n.to_string(),
        other => format!("{other:?}"),
    }
}

fn min_version(v: &serde_yaml::Value) -> Option<TlsVersion> {
    match yaml_text(v).as_str() {
        "1.2" => Some(TlsVersion::V1_2),
        "1.3" => Some(TlsVersion::V1_3),
        _ => None,
    }
}

/// The proxy's TLS settings of a validated frontend.
pub(super) fn translate_tls(tls: &FrontendTls) -> TlsConfig {
    let mut t = TlsConfig::new(tls.certificates.iter().map(source).collect());
    if let Some(v) = tls.min_version.as_ref().and_then(min_version) {
        t.min_version = v;
    }
    if let Some(alpn) = &tls.alpn {
        t.alpn = alpn.clone();
    }
    if let Some(list) = &tls.ciphersuites {
        t.ciphersuites = list.names();
    }
    if let Some(list) = &tls.ciphers {
        t.ciphers = list.names();
    }
    if let Some(tickets) = tls.tickets {
        t.tickets = tickets;
    }
    t
}

/// `redirect_https` of frontend `f`: the port is the one given, else the port of a TLS
/// frontend listening on one of `f`'s addresses, else the first TLS frontend's, else 443.
pub(super) fn translate_redirect(f: &Frontend, all: &[Frontend]) -> Option<ProxyRedirect> {
    let o = f.redirect_https.as_ref()?.options()?;
    let mut r = ProxyRedirect::default();
    if let Some(code) = o.code {
        r.code = code as u16;
    }
    r.port = match o.port {
        Some(port) => port as u16,
        None => tls_port(f, all).unwrap_or(443),
    };
    Some(r)
}

fn tls_port(f: &Frontend, all: &[Frontend]) -> Option<u16> {
    let addrs = |x: &Frontend| -> Vec<std::net::SocketAddr> {
        x.bind
            .iter()
            .filter_map(|b| super::translate::bind_addr(b))
            .collect()
    };
    let mine = addrs(f);
    let tls: Vec<_> = all.iter().filter(|x| x.tls.is_some()).collect();
    tls.iter()
        .flat_map(|x| addrs(x))
        .find(|a| mine.iter().any(|m| m.ip() == a.ip()))
        .or_else(|| tls.iter().flat_map(|x| addrs(x)).next())
        .map(|a| a.port())
}

pub(super) fn hsts(f: &Frontend) -> Option<Duration> {
    f.hsts.as_ref().and_then(|h| h.parse().ok())
}
