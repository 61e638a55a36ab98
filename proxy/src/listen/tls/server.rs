//! A TLS frontend's rustls server configuration.

use std::sync::Arc;

use rustls::server::ServerSessionMemoryCache;
use rustls::ServerConfig;

use super::resolver::CertResolver;
use crate::config::{TlsConfig, TlsVersion};

/// Sessions remembered for TLS 1.2 resumption by session id (HAProxy's `tune.ssl.cachesize`
/// default); each entry is a few hundred bytes, so the cache stays in the megabytes.
const SESSION_CACHE: usize = 20_000;

/// The server configuration: versions from `min_version`, cipher suites from `ciphersuites`
/// and `ciphers` in the server's order of preference (HAProxy's default; the client's order
/// is not followed), certificates from `resolver`, stateless TLS 1.3 (and 1.2) session
/// tickets unless `tickets` is false, and a bounded session cache.
///
/// Without a ticketer rustls resumes statefully: a TLS 1.2 client by session id, a TLS 1.3
/// client by a ticket that is only the 32-byte key of a cache entry (as OpenSSL does with
/// HAProxy's `no-tls-tickets`), so no ticket key exists and resumption ends with the entry.
pub fn server_config(
    tls: &TlsConfig,
    resolver: Arc<CertResolver>,
) -> Result<Arc<ServerConfig>, rustls::Error> {
    let versions: &[&rustls::SupportedProtocolVersion] = match tls.min_version {
        TlsVersion::V1_2 => &[&rustls::version::TLS13, &rustls::version::TLS12],
        TlsVersion::V1_3 => &[&rustls::version::TLS13],
    };
    let provider =
        super::suites::provider_with(&super::provider(), &tls.ciphersuites, &tls.ciphers);
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(versions)?
        .with_no_client_auth()
        .with_cert_resolver(resolver);
    config.ignore_client_order = true;
    config.alpn_protocols = tls.alpn.iter().map(|p| p.as_bytes().to_vec()).collect();
    if tls.tickets {
        config.ticketer = rustls::crypto::aws_lc_rs::Ticketer::new()?;
    }
    config.session_storage = ServerSessionMemoryCache::new(SESSION_CACHE);
    Ok(Arc::new(config))
}
