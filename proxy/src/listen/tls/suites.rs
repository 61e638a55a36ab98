//! The cipher suites a TLS frontend offers, by the names HAProxy's `ciphers` (TLS 1.2,
//! OpenSSL's names) and `ciphersuites` (TLS 1.3) take, in the server's order of preference.
//!
//! The default order (`config::DEFAULT_CIPHERSUITES`, `DEFAULT_CIPHERS`) is Mozilla's
//! "intermediate" recommendation: AES-128-GCM first, then
//! AES-256-GCM, then ChaCha20-Poly1305. AES-128 with SHA-256 is also the cheapest here: a
//! TLS 1.3 handshake's key schedule and transcript run on SHA-256 (with the CPU's SHA
//! instructions) instead of SHA-384 (profile of a full ECDSA handshake: 13% of its CPU in
//! SHA-384, 3% in SHA-256).

use std::sync::Arc;

use rustls::crypto::aws_lc_rs::cipher_suite as cs;
use rustls::crypto::CryptoProvider;
use rustls::SupportedCipherSuite;

/// A suite and the name the configuration knows it by.
type Named = (&'static str, SupportedCipherSuite);

/// TLS 1.3 suites by their RFC 8446 names (HAProxy `ciphersuites`).
pub const TLS13_SUITES: [Named; 3] = [
    ("TLS_AES_128_GCM_SHA256", cs::TLS13_AES_128_GCM_SHA256),
    ("TLS_AES_256_GCM_SHA384", cs::TLS13_AES_256_GCM_SHA384),
    (
        "TLS_CHACHA20_POLY1305_SHA256",
        cs::TLS13_CHACHA20_POLY1305_SHA256,
    ),
];

/// TLS 1.2 suites by OpenSSL's names (HAProxy `ciphers`): ECDHE with an AEAD only.
pub const TLS12_SUITES: [Named; 6] = [
    (
        "ECDHE-ECDSA-AES128-GCM-SHA256",
        cs::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
    ),
    (
        "ECDHE-RSA-AES128-GCM-SHA256",
        cs::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
    ),
    (
        "ECDHE-ECDSA-AES256-GCM-SHA384",
        cs::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
    ),
    (
        "ECDHE-RSA-AES256-GCM-SHA384",
        cs::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
    ),
    (
        "ECDHE-ECDSA-CHACHA20-POLY1305",
        cs::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
    ),
    (
        "ECDHE-RSA-CHACHA20-POLY1305",
        cs::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
    ),
];

/// Why a list of suite names cannot be used.
pub fn check_names(names: &[String], tls13: bool) -> Result<(), String> {
    let (table, other): (&[Named], &[Named]) = if tls13 {
        (&TLS13_SUITES, &TLS12_SUITES)
    } else {
        (&TLS12_SUITES, &TLS13_SUITES)
    };
    if names.is_empty() {
        return Err("needs at least one suite".into());
    }
    for n in names {
        if table.iter().any(|(t, _)| t == n) {
            continue;
        }
        let allowed: Vec<&str> = table.iter().map(|(t, _)| *t).collect();
        let hint = if other.iter().any(|(t, _)| t == n) {
            if tls13 {
                " (a TLS 1.2 suite: it belongs in `ciphers`)"
            } else {
                " (a TLS 1.3 suite: it belongs in `ciphersuites`)"
            }
        } else {
            ""
        };
        return Err(format!(
            "`{n}` is not supported{hint}; supported: {}",
            allowed.join(", ")
        ));
    }
    Ok(())
}

fn lookup(table: &[Named], names: &[String]) -> Vec<SupportedCipherSuite> {
    let mut out: Vec<SupportedCipherSuite> = Vec::new();
    for n in names {
        if let Some((_, s)) = table.iter().find(|(t, _)| t == n) {
            if !out.iter().any(|o| o.suite() == s.suite()) {
                out.push(*s);
            }
        }
    }
    out
}

/// The process's crypto provider with only the named suites, TLS 1.3 first, each list in
/// its given order (the server's preference). Unknown names were refused by
/// [`check_names`] when the configuration was checked; here they are skipped.
pub fn provider_with(
    base: &CryptoProvider,
    ciphersuites: &[String],
    ciphers: &[String],
) -> Arc<CryptoProvider> {
    let mut suites = lookup(&TLS13_SUITES, ciphersuites);
    suites.extend(lookup(&TLS12_SUITES, ciphers));
    Arc::new(CryptoProvider {
        cipher_suites: suites,
        ..base.clone()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{DEFAULT_CIPHERS, DEFAULT_CIPHERSUITES};

    fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn names_are_checked_per_version() {
        assert!(check_names(&names(&DEFAULT_CIPHERSUITES), true).is_ok());
        assert!(check_names(&names(&DEFAULT_CIPHERS), false).is_ok());
        let e = check_names(&names(&["TLS_AES_128_CCM_SHA256"]), true).unwrap_err();
        assert!(
            e.contains("`TLS_AES_128_CCM_SHA256` is not supported"),
            "{e}"
        );
        assert!(e.contains("TLS_AES_256_GCM_SHA384"), "{e}");
        let e = check_names(&names(&["ECDHE-RSA-AES128-GCM-SHA256"]), true).unwrap_err();
        assert!(e.contains("belongs in `ciphers`"), "{e}");
        let e = check_names(&names(&["TLS_AES_128_GCM_SHA256"]), false).unwrap_err();
        assert!(e.contains("belongs in `ciphersuites`"), "{e}");
        let e = check_names(&names(&["AES128-SHA"]), false).unwrap_err();
        assert!(
            e.contains("supported: ECDHE-ECDSA-AES128-GCM-SHA256"),
            "{e}"
        );
        assert!(check_names(&[], true).is_err());
    }

    #[test]
    fn the_provider_keeps_the_given_order_tls13_first() {
        let base = rustls::crypto::aws_lc_rs::default_provider();
        let p = provider_with(
            &base,
            &names(&["TLS_CHACHA20_POLY1305_SHA256", "TLS_AES_256_GCM_SHA384"]),
            &names(&["ECDHE-RSA-AES256-GCM-SHA384", "ECDHE-RSA-AES256-GCM-SHA384"]),
        );
        let got: Vec<_> = p.cipher_suites.iter().map(|s| s.suite()).collect();
        assert_eq!(
            got,
            [
                rustls::CipherSuite::TLS13_CHACHA20_POLY1305_SHA256,
                rustls::CipherSuite::TLS13_AES_256_GCM_SHA384,
                rustls::CipherSuite::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
            ]
        );
        let d = provider_with(
            &base,
            &names(&DEFAULT_CIPHERSUITES),
            &names(&DEFAULT_CIPHERS),
        );
        assert_eq!(d.cipher_suites.len(), 9);
        assert_eq!(
            d.cipher_suites[0].suite(),
            rustls::CipherSuite::TLS13_AES_128_GCM_SHA256
        );
    }
}
