//! The certificate source rustls asks during each handshake, and its in-place reload.
//!
//! A handshake only reads the current [`CertStore`] through an `ArcSwap` (no lock, no file
//! access). A reload loads every entry again off the request path and swaps in a new store;
//! a file that no longer loads keeps the certificate it gave last time, so a bad deploy of one
//! certificate never takes a site's TLS down. Open connections hold their own `Arc` of the
//! certificate they were served and are not affected.

use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use arc_swap::ArcSwap;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

use super::certs::{load_source, CertError, CertSource, LoadedCert};
use super::sni::CertStore;

/// What a reload did, for the log.
#[derive(Debug, Default)]
pub struct ReloadReport {
    /// Certificates now served.
    pub certificates: usize,
    /// Failures whose last good certificate stays in service.
    pub kept: Vec<String>,
    /// Failures with nothing to fall back on (a new file that never loaded).
    pub failed: Vec<String>,
    /// Files passed over and certificates near expiry.
    pub warnings: Vec<String>,
}

#[derive(Debug)]
pub struct CertResolver {
    store: ArcSwap<CertStore>,
    /// Each entry with what it gave last time it loaded; the base of keep-the-last-good.
    entries: Mutex<Vec<(CertSource, Vec<LoadedCert>)>>,
}

impl CertResolver {
    /// The first load (start, `check`): every file must load. Returns warnings (files passed
    /// over, expiry within 30 days) beside the resolver.
    pub fn load(sources: &[CertSource]) -> Result<(Self, Vec<String>), CertError> {
        let mut entries = Vec::new();
        let mut warnings = Vec::new();
        for source in sources {
            let load = load_source(source)?;
            warnings.extend(load.skipped);
            let mut certs = Vec::new();
            for (_, result) in load.files {
                certs.push(result?);
            }
            entries.push((source.clone(), certs));
        }
        let all = flatten(&entries);
        warnings.extend(expiry_warnings(&all));
        let resolver = CertResolver {
            store: ArcSwap::from_pointee(CertStore::new(all)),
            entries: Mutex::new(entries),
        };
        Ok((resolver, warnings))
    }

    /// The store handshakes read now.
    pub fn current(&self) -> Arc<CertStore> {
        self.store.load_full()
    }

    /// Loads `sources` again (blocking: file reads and key parsing) and swaps the result in.
    pub fn reload(&self, sources: &[CertSource]) -> ReloadReport {
        let (staged, report) = self.stage(sources);
        if let Some(s) = staged {
            self.commit(s);
        }
        report
    }

    /// Loads `sources` again without serving the result yet: a reload that may still be
    /// refused (the new balancer cannot start) must leave the running certificates alone.
    /// `None` when nothing loaded (the previous set stays, said in the report).
    pub fn stage(&self, sources: &[CertSource]) -> (Option<StagedCerts>, ReloadReport) {
        let mut report = ReloadReport::default();
        let entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        let mut fresh = Vec::new();
        for source in sources {
            let previous = entries
                .iter()
                .find(|(s, _)| s == source)
                .map(|(_, certs)| certs.as_slice())
                .unwrap_or_default();
            let certs = reload_entry(source, previous, &mut report);
            fresh.push((source.clone(), certs));
        }
        let all = flatten(&fresh);
        if all.is_empty() {
            report
                .failed
                .push("no certificate loaded: the previous set stays in service".into());
            report.certificates = self.store.load().certs().len();
            return (None, report);
        }
        report.warnings.extend(expiry_warnings(&all));
        report.certificates = all.len();
        (Some(StagedCerts { fresh, all }), report)
    }

    /// Serves what [`CertResolver::stage`] loaded, from the next handshake on.
    pub fn commit(&self, staged: StagedCerts) {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        self.store.store(Arc::new(CertStore::new(staged.all)));
        *entries = staged.fresh;
    }
}

/// Certificates a reload loaded, not served until committed.
#[derive(Debug)]
pub struct StagedCerts {
    fresh: Vec<(CertSource, Vec<LoadedCert>)>,
    all: Vec<LoadedCert>,
}

/// One entry's certificates after a reload: each file that loads, else its last good one.
fn reload_entry(
    source: &CertSource,
    previous: &[LoadedCert],
    report: &mut ReloadReport,
) -> Vec<LoadedCert> {
    let load = match load_source(source) {
        Ok(load) => load,
        Err(e) if previous.is_empty() => {
            report.failed.push(e.to_string());
            return Vec::new();
        }
        Err(e) => {
            report
                .kept
                .push(format!("{e}; keeping the last good certificates"));
            return previous.to_vec();
        }
    };
    report.warnings.extend(load.skipped);
    let mut certs = Vec::new();
    for (path, result) in load.files {
        match result {
            Ok(cert) => certs.push(cert),
            Err(e) => match previous.iter().find(|c| c.path == path) {
                Some(old) => {
                    report
                        .kept
                        .push(format!("{e}; keeping the last good certificate"));
                    certs.push(old.clone());
                }
                None => report.failed.push(e.to_string()),
            },
        }
    }
    certs
}

fn flatten(entries: &[(CertSource, Vec<LoadedCert>)]) -> Vec<LoadedCert> {
    entries
        .iter()
        .flat_map(|(_, c)| c.iter().cloned())
        .collect()
}

fn expiry_warnings(certs: &[LoadedCert]) -> Vec<String> {
    let now = SystemTime::now();
    certs.iter().filter_map(|c| c.expiry_warning(now)).collect()
}

impl ResolvesServerCert for CertResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.store.load().select(hello.server_name()).cloned()
    }
}
