//! TLS termination for client connections (lb.md §10): certificates loaded from PEM files,
//! picked by SNI, swapped in place on reload; the rustls server configuration of a frontend.
//!
//! ```text
//! certs     files/directories -> LoadedCert (chain + key checked to match, names, expiry)
//! sni       CertStore: exact and `*.` names -> certificate; the first loaded is the default
//! resolver  CertResolver: rustls asks it per handshake; reload swaps its store atomically
//! server    ServerConfig: versions, ALPN, session tickets and resumption cache
//! suites    cipher suites by HAProxy's names, in the server's order of preference
//! set       every TLS frontend's resolver, loaded (blocking) before a balancer starts
//! accept    the handshake of one connection, with a deadline; failures logged and counted
//! held      the transport under it: TLS 1.3 tickets leave with the first answer
//! ```
//!
//! Loading reads files and parses keys: it runs at start, in `vrrplb check` and, on reload, on
//! a blocking thread, never inside a handshake.

pub(crate) mod accept;
mod certs;
mod held;
mod resolver;
mod server;
mod set;
mod sni;
pub mod suites;

use std::sync::{Arc, OnceLock};

use rustls::crypto::CryptoProvider;

pub use crate::config::{TlsConfig, TlsVersion};
pub use certs::{load_bundle, load_source, CertError, CertSource, LoadedCert, SourceLoad};
pub use resolver::{CertResolver, ReloadReport, StagedCerts};
pub use server::server_config;
pub use set::{LoadNotes, StagedReload, TlsCertificates, TlsLoadError};
pub use sni::CertStore;

/// The one crypto provider of the process (aws-lc-rs), built once.
pub(crate) fn provider() -> Arc<CryptoProvider> {
    static PROVIDER: OnceLock<Arc<CryptoProvider>> = OnceLock::new();
    PROVIDER
        .get_or_init(|| Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
        .clone()
}

#[cfg(test)]
mod tests;
