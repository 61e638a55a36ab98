//! Choosing a certificate by the client's SNI: an exact DNS name first, then a `*.` wildcard
//! standing for exactly one left-most label; no SNI or no match gets the first certificate.

use std::collections::HashMap;
use std::sync::Arc;

use rustls::sign::CertifiedKey;

use super::certs::LoadedCert;

/// The certificates of one frontend, indexed by name. Immutable: a reload builds a new one.
#[derive(Debug, Default)]
pub struct CertStore {
    certs: Vec<LoadedCert>,
    /// Lower-case name -> index; the first certificate loaded with a name keeps it.
    exact: HashMap<String, usize>,
    /// `*.example.test` is stored as `example.test`.
    wildcard: HashMap<String, usize>,
}

impl CertStore {
    pub fn new(certs: Vec<LoadedCert>) -> Self {
        let mut exact = HashMap::new();
        let mut wildcard = HashMap::new();
        for (i, cert) in certs.iter().enumerate() {
            for name in &cert.names {
                match name.strip_prefix("*.") {
                    Some(parent) if !parent.is_empty() => {
                        wildcard.entry(parent.to_string()).or_insert(i);
                    }
                    _ => {
                        exact.entry(name.clone()).or_insert(i);
                    }
                }
            }
        }
        CertStore {
            certs,
            exact,
            wildcard,
        }
    }

    pub fn certs(&self) -> &[LoadedCert] {
        &self.certs
    }

    /// The certificate for `sni`; `None` only when the store is empty.
    pub fn select(&self, sni: Option<&str>) -> Option<&Arc<CertifiedKey>> {
        let index = sni.and_then(|name| self.lookup(name)).unwrap_or(0);
        self.certs.get(index).map(|c| &c.key)
    }

    fn lookup(&self, name: &str) -> Option<usize> {
        let name = name.strip_suffix('.').unwrap_or(name);
        let lower;
        let name = if name.bytes().any(|b| b.is_ascii_uppercase()) {
            lower = name.to_ascii_lowercase();
            lower.as_str()
        } else {
            name
        };
        if let Some(&i) = self.exact.get(name) {
            return Some(i);
        }
        let (_, parent) = name.split_once('.')?;
        self.wildcard.get(parent).copied()
    }
}
