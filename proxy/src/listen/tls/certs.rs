//! Reading `certificates` entries: HAProxy-style PEM bundles (chain and key in any order, the
//! key possibly in `<file>.key`), directories of them, or a `{cert, key}` pair.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rustls::sign::CertifiedKey;

pub use crate::config::CertSource;
use rustls_pki_types::pem::{PemObject, SectionKind};
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// Largest file read as a certificate or key: real bundles are a few KiB; this bounds what a
/// wrong path (a log file, a device) can make us read.
const MAX_FILE: u64 = 1024 * 1024;

/// A certificate that expires sooner than this is a `check` warning.
pub const EXPIRY_WARNING: Duration = Duration::from_secs(30 * 24 * 3600);

#[derive(Debug, thiserror::Error)]
pub enum CertError {
    #[error("{path}: cannot read: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: larger than {MAX_FILE} bytes, not a certificate file")]
    TooLarge { path: PathBuf },
    #[error("{path}: not valid PEM: {reason}")]
    Pem { path: PathBuf, reason: String },
    #[error("{path}: no certificate in it")]
    NoCertificate { path: PathBuf },
    #[error("{path}: no private key in it, nor in {key_path}")]
    MissingKey { path: PathBuf, key_path: PathBuf },
    #[error("{path}: more than one private key")]
    ManyKeys { path: PathBuf },
    #[error("{path}: unusable private key: {reason}")]
    BadKey { path: PathBuf, reason: String },
    #[error("{path}: the private key does not match the certificate")]
    KeyMismatch { path: PathBuf },
    #[error("{path}: unparsable certificate: {reason}")]
    BadCertificate { path: PathBuf, reason: String },
    #[error("{path}: no certificate file in this directory")]
    EmptyDirectory { path: PathBuf },
}

/// A certificate ready to serve, with what SNI selection and `check` need to know about it.
#[derive(Clone, Debug)]
pub struct LoadedCert {
    /// The file it came from.
    pub path: PathBuf,
    /// Lower-case DNS names of the leaf: its SAN DNS entries, else its subject CN.
    pub names: Vec<String>,
    /// End of the leaf's validity.
    pub not_after: SystemTime,
    pub key: Arc<CertifiedKey>,
}

impl LoadedCert {
    /// `Some(text)` when the leaf expires within [`EXPIRY_WARNING`] of `now` (or already has).
    pub fn expiry_warning(&self, now: SystemTime) -> Option<String> {
        let what = format!("{} ({})", self.path.display(), self.names.join(", "));
        match self.not_after.duration_since(now) {
            Err(_) => Some(format!("{what} has expired")),
            Ok(left) if left < EXPIRY_WARNING => Some(format!(
                "{what} expires in {} days",
                left.as_secs() / (24 * 3600)
            )),
            Ok(_) => None,
        }
    }
}

/// What one entry gave: certificates per file (a directory may mix good and bad files) and
/// files passed over with the reason (not certificates).
#[derive(Debug, Default)]
pub struct SourceLoad {
    pub files: Vec<(PathBuf, Result<LoadedCert, CertError>)>,
    pub skipped: Vec<String>,
}

/// Loads one entry. `Err` when the entry as a whole is unusable (unreadable directory, a
/// directory with no certificate); per-file failures are in [`SourceLoad::files`].
pub fn load_source(source: &CertSource) -> Result<SourceLoad, CertError> {
    match source {
        CertSource::Pair { cert, key } => {
            let result = read_bounded(cert).and_then(|c| {
                let k = read_bounded(key)?;
                load_bundle(cert, &c, Some((key, &k)))
            });
            Ok(SourceLoad {
                files: vec![(cert.clone(), result)],
                skipped: Vec::new(),
            })
        }
        CertSource::Pem(path) => {
            let meta = std::fs::metadata(path).map_err(|source| CertError::Read {
                path: path.clone(),
                source,
            })?;
            if meta.is_dir() {
                load_directory(path)
            } else {
                Ok(SourceLoad {
                    files: vec![(path.clone(), load_pem_file(path))],
                    skipped: Vec::new(),
                })
            }
        }
    }
}

/// Every regular file of the directory in name order; `.key` companions are read with their
/// certificate, and files with no PEM certificate in them are passed over with a reason.
fn load_directory(dir: &Path) -> Result<SourceLoad, CertError> {
    let read_err = |source| CertError::Read {
        path: dir.to_path_buf(),
        source,
    };
    let mut paths = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(read_err)? {
        paths.push(entry.map_err(read_err)?.path());
    }
    paths.sort();
    let mut load = SourceLoad::default();
    for path in paths {
        let name = path.file_name().unwrap_or_default().to_string_lossy();
        if name.starts_with('.') || name.ends_with(".key") {
            continue;
        }
        if !path.is_file() {
            load.skipped
                .push(format!("{}: not a regular file", path.display()));
            continue;
        }
        let bytes = match read_bounded(&path) {
            Ok(b) => b,
            Err(e) => {
                load.files.push((path, Err(e)));
                continue;
            }
        };
        if !contains(&bytes, b"-----BEGIN CERTIFICATE-----") {
            load.skipped.push(format!(
                "{}: skipped, no PEM certificate in it",
                path.display()
            ));
            continue;
        }
        let result = with_key_file(&path, &bytes);
        load.files.push((path, result));
    }
    if load.files.is_empty() {
        return Err(CertError::EmptyDirectory {
            path: dir.to_path_buf(),
        });
    }
    Ok(load)
}

fn load_pem_file(path: &Path) -> Result<LoadedCert, CertError> {
    let bytes = read_bounded(path)?;
    with_key_file(path, &bytes)
}

/// A bundle without a key takes it from `<file>.key` (HAProxy's habit).
fn with_key_file(path: &Path, bytes: &[u8]) -> Result<LoadedCert, CertError> {
    // Parsed first so that a broken bundle is reported as such, not as a missing key.
    if !sections(path, bytes)?.1.is_empty() {
        return load_bundle(path, bytes, None);
    }
    let mut key_path = path.as_os_str().to_owned();
    key_path.push(".key");
    let key_path = PathBuf::from(key_path);
    match read_bounded(&key_path) {
        Ok(key) => load_bundle(path, bytes, Some((&key_path, &key))),
        Err(CertError::Read { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
            Err(CertError::MissingKey {
                path: path.to_path_buf(),
                key_path,
            })
        }
        Err(e) => Err(e),
    }
}

/// Parses a bundle's bytes (the key from `key` when given, else from the bundle) and checks
/// that the key belongs to the leaf, the first certificate. `path` only names the source in
/// errors: this is the whole parsing path, fuzzed without files.
pub fn load_bundle(
    path: &Path,
    pem: &[u8],
    key: Option<(&Path, &[u8])>,
) -> Result<LoadedCert, CertError> {
    let (chain, mut keys) = sections(path, pem)?;
    if let Some((key_path, key_pem)) = key {
        // The key file's keys replace any in the bundle: `{cert, key}` says which to use.
        keys = sections(key_path, key_pem)?.1;
        if keys.is_empty() {
            return Err(CertError::MissingKey {
                path: path.to_path_buf(),
                key_path: key_path.to_path_buf(),
            });
        }
    }
    let Some(leaf) = chain.first() else {
        return Err(CertError::NoCertificate {
            path: path.to_path_buf(),
        });
    };
    let (names, not_after) = leaf_facts(path, leaf)?;
    let key = match keys.len() {
        0 => {
            return Err(CertError::MissingKey {
                path: path.to_path_buf(),
                key_path: path.to_path_buf(),
            })
        }
        1 => keys.remove(0),
        _ => {
            return Err(CertError::ManyKeys {
                path: path.to_path_buf(),
            })
        }
    };
    let signing = super::provider()
        .key_provider
        .load_private_key(key)
        .map_err(|e| CertError::BadKey {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
    let certified = CertifiedKey::new(chain, signing);
    match certified.keys_match() {
        Ok(()) => {}
        Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch)) => {
            return Err(CertError::KeyMismatch {
                path: path.to_path_buf(),
            })
        }
        Err(e) => {
            return Err(CertError::BadKey {
                path: path.to_path_buf(),
                reason: format!("cannot check it against the certificate: {e}"),
            })
        }
    }
    Ok(LoadedCert {
        path: path.to_path_buf(),
        names,
        not_after,
        key: Arc::new(certified),
    })
}

type Sections = (Vec<CertificateDer<'static>>, Vec<PrivateKeyDer<'static>>);

/// Certificates in file order and private keys; other PEM sections are ignored.
fn sections(path: &Path, pem: &[u8]) -> Result<Sections, CertError> {
    let mut certs = Vec::new();
    let mut keys = Vec::new();
    for section in <(SectionKind, Vec<u8>)>::pem_slice_iter(pem) {
        let (kind, der) = section.map_err(|e| CertError::Pem {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
        match kind {
            SectionKind::Certificate => certs.push(CertificateDer::from(der)),
            SectionKind::PrivateKey | SectionKind::RsaPrivateKey | SectionKind::EcPrivateKey => {
                if let Some(k) = PrivateKeyDer::from_pem(kind, der) {
                    keys.push(k);
                }
            }
            _ => {}
        }
    }
    Ok((certs, keys))
}

/// The leaf's DNS names (SAN, else CN) and its expiry.
fn leaf_facts(
    path: &Path,
    leaf: &CertificateDer<'_>,
) -> Result<(Vec<String>, SystemTime), CertError> {
    let bad = |reason: String| CertError::BadCertificate {
        path: path.to_path_buf(),
        reason,
    };
    let (_, cert) = x509_parser::parse_x509_certificate(leaf).map_err(|e| bad(e.to_string()))?;
    let mut names = Vec::new();
    let san = cert
        .subject_alternative_name()
        .map_err(|e| bad(format!("subjectAltName: {e}")))?;
    if let Some(san) = san {
        for name in &san.value.general_names {
            if let x509_parser::extensions::GeneralName::DNSName(dns) = name {
                names.push(dns.to_ascii_lowercase());
            }
        }
    }
    if names.is_empty() {
        for cn in cert.subject().iter_common_name() {
            if let Ok(s) = cn.as_str() {
                names.push(s.to_ascii_lowercase());
            }
        }
    }
    let secs = cert.validity().not_after.timestamp();
    let not_after = if secs >= 0 {
        UNIX_EPOCH + Duration::from_secs(secs.unsigned_abs())
    } else {
        UNIX_EPOCH
    };
    Ok((names, not_after))
}

fn read_bounded(path: &Path) -> Result<Vec<u8>, CertError> {
    use std::io::Read;
    let read_err = |source| CertError::Read {
        path: path.to_path_buf(),
        source,
    };
    let file = std::fs::File::open(path).map_err(read_err)?;
    let mut bytes = Vec::new();
    file.take(MAX_FILE + 1)
        .read_to_end(&mut bytes)
        .map_err(read_err)?;
    if bytes.len() as u64 > MAX_FILE {
        return Err(CertError::TooLarge {
            path: path.to_path_buf(),
        });
    }
    Ok(bytes)
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}
