//! TLS towards the servers (lb.md §10 "To servers"; HAProxy server `ssl verify required
//! ca-file … crt …`): one rustls client configuration per backend, built from its `tls`
//! settings, and the handshake that turns a fresh TCP connection into a TLS one.
//!
//! The name a server's certificate must carry is `sni`, else `verify_host`, else the
//! server's address: an IP address is verified against the certificate's IP SANs and sends
//! no SNI (RFC 6066 §3 forbids literal addresses there). Only `http/1.1` is offered by
//! ALPN: servers always get HTTP/1.1. Sessions are resumed from rustls' in-memory cache,
//! so a pool refilling after idle connections closed costs abbreviated handshakes.
//!
//! The same builder serves `vrrplb check` (every file is loaded and judged there) and the
//! drill's HTTPS polls, so what `check` accepts is exactly what `run` loads.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

use crate::config::ServerTlsConfig;

/// Why a backend's TLS settings cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsSetupError {
    #[error("ca_file {path}: {reason}")]
    CaFile { path: String, reason: String },
    #[error("system CA store: {0}")]
    SystemRoots(String),
    #[error("verify is on but neither ca_file nor system: true gives a CA to verify against")]
    NoRoots,
    #[error("cert {path}: {reason}")]
    Cert { path: String, reason: String },
    #[error("key {path}: {reason}")]
    Key { path: String, reason: String },
    #[error("client certificate and key: {0}")]
    ClientAuth(rustls::Error),
    #[error("{0:?} is neither a DNS name nor an IP address")]
    Name(String),
}

/// The crypto provider every TLS client of vrrplb uses (explicit, so it does not depend on a
/// process-wide default being installed).
fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// The rustls client configuration for `cfg`: roots (or no verification), client
/// certificate, ALPN `http/1.1`. Loads and judges every file it names.
pub fn client_config(cfg: &ServerTlsConfig) -> Result<Arc<ClientConfig>, TlsSetupError> {
    let provider = provider();
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(TlsSetupError::ClientAuth)?;
    let builder = if cfg.verify {
        builder.with_root_certificates(roots(cfg)?)
    } else {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAnyCertificate(
                provider.signature_verification_algorithms,
            )))
    };
    let mut config = match &cfg.cert {
        Some(cert) => {
            let chain = load_chain(cert)?;
            let key = load_key(cfg.key.as_deref().unwrap_or(cert))?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(TlsSetupError::ClientAuth)?
        }
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// The name given by the settings (`sni`, else `verify_host`), checked for syntax.
pub fn configured_name(
    cfg: &ServerTlsConfig,
) -> Result<Option<ServerName<'static>>, TlsSetupError> {
    let Some(name) = cfg.sni.as_ref().or(cfg.verify_host.as_ref()) else {
        return Ok(None);
    };
    ServerName::try_from(name.clone())
        .map(Some)
        .map_err(|_| TlsSetupError::Name(name.clone()))
}

fn roots(cfg: &ServerTlsConfig) -> Result<RootCertStore, TlsSetupError> {
    let mut store = RootCertStore::empty();
    if let Some(path) = &cfg.ca_file {
        let fail = |reason: String| TlsSetupError::CaFile {
            path: path.display().to_string(),
            reason,
        };
        let certs = CertificateDer::pem_file_iter(path)
            .map_err(|e| fail(e.to_string()))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| fail(e.to_string()))?;
        let (added, ignored) = store.add_parsable_certificates(certs);
        if ignored > 0 {
            return Err(fail(format!("{ignored} certificate(s) do not parse")));
        }
        if added == 0 {
            return Err(fail("no certificate in the file".into()));
        }
    }
    if cfg.system {
        let found = rustls_native_certs::load_native_certs();
        let (added, _) = store.add_parsable_certificates(found.certs);
        if added == 0 {
            let why = found
                .errors
                .first()
                .map_or_else(|| "no certificate found".to_string(), |e| e.to_string());
            return Err(TlsSetupError::SystemRoots(why));
        }
    }
    if store.is_empty() {
        return Err(TlsSetupError::NoRoots);
    }
    Ok(store)
}

fn load_chain(path: &std::path::Path) -> Result<Vec<CertificateDer<'static>>, TlsSetupError> {
    let fail = |reason: String| TlsSetupError::Cert {
        path: path.display().to_string(),
        reason,
    };
    let chain = CertificateDer::pem_file_iter(path)
        .map_err(|e| fail(e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| fail(e.to_string()))?;
    if chain.is_empty() {
        return Err(fail("no certificate in the file".into()));
    }
    Ok(chain)
}

fn load_key(path: &std::path::Path) -> Result<PrivateKeyDer<'static>, TlsSetupError> {
    PrivateKeyDer::from_pem_file(path).map_err(|e| TlsSetupError::Key {
        path: path.display().to_string(),
        reason: match e {
            rustls::pki_types::pem::Error::NoItemsFound => "no private key in the file".into(),
            e => e.to_string(),
        },
    })
}

/// `verify: false` (HAProxy `verify none`): any certificate is taken. The handshake
/// signature is still checked, so the peer holds the key of the certificate it sent.
#[derive(Debug)]
struct AcceptAnyCertificate(WebPkiSupportedAlgorithms);

impl ServerCertVerifier for AcceptAnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_schemes()
    }
}

/// A backend's TLS client: the shared configuration and the configured name.
#[derive(Clone)]
pub(crate) struct ServerTls {
    connector: TlsConnector,
    name: Option<ServerName<'static>>,
}

impl ServerTls {
    pub(crate) fn load(cfg: &ServerTlsConfig) -> Result<Self, TlsSetupError> {
        Ok(ServerTls {
            connector: TlsConnector::from(client_config(cfg)?),
            name: configured_name(cfg)?,
        })
    }

    /// The TLS client of one server: its name is the configured one or its address.
    pub(crate) fn for_server(&self, addr: SocketAddr) -> ServerTlsClient {
        ServerTlsClient {
            connector: self.connector.clone(),
            name: self
                .name
                .clone()
                .unwrap_or_else(|| ServerName::IpAddress(addr.ip().into())),
        }
    }
}

/// What a connection to one server needs to speak TLS.
#[derive(Clone)]
pub(crate) struct ServerTlsClient {
    connector: TlsConnector,
    name: ServerName<'static>,
}

impl ServerTlsClient {
    /// The TLS handshake on a fresh connection. A failure says why in words an operator
    /// can act on ("TLS handshake: invalid peer certificate: UnknownIssuer").
    pub(crate) async fn handshake(&self, tcp: TcpStream) -> io::Result<TlsStream<TcpStream>> {
        self.connector
            .connect(self.name.clone(), tcp)
            .await
            .map_err(|e| io::Error::new(e.kind(), format!("TLS handshake: {e}")))
    }
}
