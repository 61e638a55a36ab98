//! The certificates of every TLS frontend of a balancer, by frontend name. Loading reads files
//! and parses keys, so the daemon runs [`TlsCertificates::load`] on a blocking thread, at
//! start and on SIGHUP, and hands the result to `Proxy::start_with`; a reload passes the
//! running balancer's set so that each frontend keeps its last good certificates.

use std::collections::HashMap;
use std::sync::Arc;

use super::certs::CertError;
use super::resolver::{CertResolver, StagedCerts};
use crate::config::ProxyConfig;

/// What a load has to say: warnings (expiry, files passed over) and, on reload, files that
/// failed and kept their last good certificate.
#[derive(Debug, Default)]
pub struct LoadNotes {
    pub warnings: Vec<String>,
    pub errors: Vec<String>,
}

#[derive(Clone, Debug, Default)]
pub struct TlsCertificates {
    by_frontend: HashMap<String, Arc<CertResolver>>,
}

#[derive(Debug, thiserror::Error)]
#[error("frontend {frontend}: {source}")]
pub struct TlsLoadError {
    pub frontend: String,
    pub source: CertError,
}

impl TlsCertificates {
    /// Loads the certificates of every TLS frontend of `config` (blocking). A frontend that
    /// `previous` knows is reloaded in place: a file that fails keeps its last good
    /// certificate (noted in `errors`). A new frontend must load whole.
    pub fn load(
        config: &ProxyConfig,
        previous: Option<&TlsCertificates>,
    ) -> Result<(TlsCertificates, LoadNotes), TlsLoadError> {
        let (set, notes, staged) = Self::stage(config, previous)?;
        staged.commit();
        Ok((set, notes))
    }

    /// As [`TlsCertificates::load`], but the frontends `previous` knows keep serving their
    /// running certificates until [`StagedReload::commit`]: the daemon commits once the
    /// whole reload is accepted, so a refused one changes no certificate.
    pub fn stage(
        config: &ProxyConfig,
        previous: Option<&TlsCertificates>,
    ) -> Result<(TlsCertificates, LoadNotes, StagedReload), TlsLoadError> {
        let mut staged = StagedReload::default();
        let mut set = TlsCertificates::default();
        let mut notes = LoadNotes::default();
        for fe in &config.frontends {
            let Some(tls) = &fe.tls else { continue };
            let known = previous.and_then(|p| p.by_frontend.get(&fe.name));
            let resolver = match known {
                Some(r) => {
                    let (fresh, report) = r.stage(&tls.certificates);
                    if let Some(f) = fresh {
                        staged.pending.push((r.clone(), f));
                    }
                    let tag = |m: String| format!("frontend {}: {m}", fe.name);
                    notes.errors.extend(report.kept.into_iter().map(tag));
                    notes.errors.extend(report.failed.into_iter().map(tag));
                    notes.warnings.extend(report.warnings.into_iter().map(tag));
                    r.clone()
                }
                None => {
                    let (r, warnings) =
                        CertResolver::load(&tls.certificates).map_err(|source| TlsLoadError {
                            frontend: fe.name.clone(),
                            source,
                        })?;
                    let tag = |m: String| format!("frontend {}: {m}", fe.name);
                    notes.warnings.extend(warnings.into_iter().map(tag));
                    Arc::new(r)
                }
            };
            set.by_frontend.insert(fe.name.clone(), resolver);
        }
        Ok((set, notes, staged))
    }

    pub(crate) fn get(&self, frontend: &str) -> Option<&Arc<CertResolver>> {
        self.by_frontend.get(frontend)
    }
}

/// The reloaded certificates of running frontends, loaded and waiting to be served.
#[derive(Debug, Default)]
#[must_use = "nothing is served until commit(); dropping it keeps the running certificates"]
pub struct StagedReload {
    pending: Vec<(Arc<CertResolver>, StagedCerts)>,
}

impl StagedReload {
    /// Serves the staged certificates from the next handshake on.
    pub fn commit(self) {
        for (resolver, certs) in self.pending {
            resolver.commit(certs);
        }
    }
}
