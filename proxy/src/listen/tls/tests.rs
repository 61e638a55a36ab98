//! Certificates generated here (rcgen), written to a scratch directory, loaded as an operator's
//! files would be.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use super::*;

struct Scratch(PathBuf);

impl Scratch {
    fn new(tag: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("vrrplb-tls-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }
    fn write(&self, name: &str, text: &str) -> PathBuf {
        let p = self.0.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// (certificate PEM, key PEM) for `names`, valid for `days` from now.
fn cert(names: &[&str], days: i64) -> (String, String) {
    let mut params =
        rcgen::CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>())
            .unwrap();
    params.not_before = time::OffsetDateTime::now_utc() - time::Duration::days(1);
    params.not_after = time::OffsetDateTime::now_utc() + time::Duration::days(days);
    let key = rcgen::KeyPair::generate().unwrap();
    let c = params.self_signed(&key).unwrap();
    (c.pem(), key.serialize_pem())
}

fn names_of(c: &LoadedCert) -> Vec<&str> {
    c.names.iter().map(String::as_str).collect()
}

fn load_one(source: CertSource) -> Result<LoadedCert, CertError> {
    let mut load = load_source(&source)?;
    assert_eq!(load.files.len(), 1);
    load.files.remove(0).1
}

#[test]
fn bundle_loads_with_key_before_or_after_the_chain() {
    let dir = Scratch::new("order");
    let (c, k) = cert(&["www.example.test", "example.test"], 365);
    let (ca, _) = cert(&["intermediate.test"], 365);
    for (i, text) in [
        format!("{c}{ca}{k}"),
        format!("{k}{c}{ca}"),
        format!("{c}{k}{ca}"),
    ]
    .iter()
    .enumerate()
    {
        let p = dir.write(&format!("{i}.pem"), text);
        let loaded = load_one(CertSource::Pem(p)).unwrap();
        assert_eq!(names_of(&loaded), ["www.example.test", "example.test"]);
        assert_eq!(loaded.key.cert.len(), 2, "leaf and chain kept in order");
    }
}

#[test]
fn key_taken_from_companion_file_or_pair() {
    let dir = Scratch::new("pair");
    let (c, k) = cert(&["a.test"], 365);
    let bundle = dir.write("site.pem", &c);
    dir.write("site.pem.key", &k);
    assert_eq!(
        names_of(&load_one(CertSource::Pem(bundle)).unwrap()),
        ["a.test"]
    );
    let cert_path = dir.write("c.crt", &c);
    let key_path = dir.write("c.key", &k);
    let pair = CertSource::Pair {
        cert: cert_path,
        key: key_path,
    };
    assert_eq!(names_of(&load_one(pair).unwrap()), ["a.test"]);
}

#[test]
fn directory_loads_in_name_order_and_passes_over_other_files() {
    let dir = Scratch::new("dir");
    let (c1, k1) = cert(&["b.test"], 365);
    let (c2, k2) = cert(&["a.test"], 365);
    dir.write("20-b.pem", &format!("{c1}{k1}"));
    dir.write("10-a.pem", &c2);
    dir.write("10-a.pem.key", &k2);
    dir.write("README", "certificates for the site\n");
    let load = load_source(&CertSource::Pem(dir.0.clone())).unwrap();
    let names: Vec<_> = load
        .files
        .iter()
        .map(|(_, r)| r.as_ref().unwrap().names[0].clone())
        .collect();
    assert_eq!(names, ["a.test", "b.test"]);
    assert_eq!(load.skipped.len(), 1);
    assert!(load.skipped[0].contains("README"), "{:?}", load.skipped);

    let empty = Scratch::new("empty");
    empty.write("notes.txt", "nothing\n");
    assert!(matches!(
        load_source(&CertSource::Pem(empty.0.clone())),
        Err(CertError::EmptyDirectory { .. })
    ));
}

#[test]
fn missing_mismatched_unreadable_and_garbage_are_errors_naming_the_file() {
    let dir = Scratch::new("bad");
    let (c, _) = cert(&["a.test"], 365);
    let (_, other_key) = cert(&["b.test"], 365);
    let lonely = dir.write("lonely.pem", &c);
    let e = load_one(CertSource::Pem(lonely)).unwrap_err();
    assert!(matches!(e, CertError::MissingKey { .. }), "{e}");
    assert!(e.to_string().contains("lonely.pem.key"), "{e}");

    let wrong = dir.write("wrong.pem", &format!("{c}{other_key}"));
    let e = load_one(CertSource::Pem(wrong)).unwrap_err();
    assert!(matches!(e, CertError::KeyMismatch { .. }), "{e}");
    assert!(e.to_string().contains("wrong.pem"), "{e}");

    let e = load_source(&CertSource::Pem(dir.0.join("absent.pem"))).unwrap_err();
    assert!(matches!(e, CertError::Read { .. }), "{e}");
    let e = load_one(CertSource::Pair {
        cert: dir.0.join("wrong.pem"),
        key: dir.0.join("absent.key"),
    })
    .unwrap_err();
    assert!(e.to_string().contains("absent.key"), "{e}");

    let garbage = dir.write(
        "garbage.pem",
        "-----BEGIN CERTIFICATE-----\n!!!not base64!!!\n-----END CERTIFICATE-----\n",
    );
    let e = load_one(CertSource::Pem(garbage)).unwrap_err();
    assert!(matches!(e, CertError::Pem { .. }), "{e}");
    let key_only = dir.write("key-only.pem", &other_key);
    let e = load_one(CertSource::Pem(key_only)).unwrap_err();
    assert!(matches!(e, CertError::NoCertificate { .. }), "{e}");
}

#[test]
fn sni_picks_exact_then_one_label_wildcard_else_the_first() {
    let bundle = |names: &[&str]| {
        let (c, k) = cert(names, 365);
        load_bundle(Path::new("t.pem"), format!("{c}{k}").as_bytes(), None).unwrap()
    };
    let default = bundle(&["default.test"]);
    let wild = bundle(&["*.example.test"]);
    let exact = bundle(&["api.example.test"]);
    let store = CertStore::new(vec![default.clone(), wild.clone(), exact.clone()]);
    let pick = |sni: Option<&str>| store.select(sni).unwrap().clone();
    assert!(Arc::ptr_eq(&pick(Some("api.example.test")), &exact.key));
    assert!(Arc::ptr_eq(&pick(Some("API.Example.TEST")), &exact.key));
    assert!(Arc::ptr_eq(&pick(Some("www.example.test")), &wild.key));
    // A wildcard stands for one label only, and not for the bare domain.
    assert!(Arc::ptr_eq(&pick(Some("a.b.example.test")), &default.key));
    assert!(Arc::ptr_eq(&pick(Some("example.test")), &default.key));
    assert!(Arc::ptr_eq(&pick(Some("unknown.test")), &default.key));
    assert!(Arc::ptr_eq(&pick(None), &default.key));
    assert!(CertStore::new(Vec::new()).select(None).is_none());
}

#[test]
fn common_name_used_when_there_is_no_san() {
    let mut params = rcgen::CertificateParams::default();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "Legacy.Example.Test");
    let key = rcgen::KeyPair::generate().unwrap();
    let c = params.self_signed(&key).unwrap();
    let pem = format!("{}{}", c.pem(), key.serialize_pem());
    let loaded = load_bundle(Path::new("cn.pem"), pem.as_bytes(), None).unwrap();
    assert_eq!(names_of(&loaded), ["legacy.example.test"]);
}

#[test]
fn expiry_within_30_days_is_a_warning() {
    let dir = Scratch::new("expiry");
    let (c, k) = cert(&["soon.test"], 10);
    let soon = dir.write("soon.pem", &format!("{c}{k}"));
    let (c, k) = cert(&["later.test"], 90);
    let later = dir.write("later.pem", &format!("{c}{k}"));
    let (_, warnings) =
        CertResolver::load(&[CertSource::Pem(later), CertSource::Pem(soon)]).unwrap();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(warnings[0].contains("soon.pem"), "{warnings:?}");
    assert!(
        warnings[0].contains("expires in 9 days") || warnings[0].contains("expires in 10 days")
    );
    let now = SystemTime::now();
    let loaded = load_one(CertSource::Pem(dir.0.join("later.pem"))).unwrap();
    assert!(loaded.expiry_warning(now).is_none());
    let expired = loaded.expiry_warning(now + Duration::from_secs(100 * 24 * 3600));
    assert!(expired.unwrap().contains("has expired"));
}

#[test]
fn reload_serves_new_files_and_keeps_the_last_good_of_a_broken_one() {
    let dir = Scratch::new("reload");
    let (c, k) = cert(&["a.test"], 365);
    let a = dir.write("a.pem", &format!("{c}{k}"));
    let sources = [CertSource::Pem(a.clone())];
    let (resolver, _) = CertResolver::load(&sources).unwrap();
    let first = resolver.current().select(None).unwrap().clone();

    let (c2, k2) = cert(&["a.test"], 365);
    std::fs::write(&a, format!("{c2}{k2}")).unwrap();
    let report = resolver.reload(&sources);
    assert!(
        report.kept.is_empty() && report.failed.is_empty(),
        "{report:?}"
    );
    let second = resolver.current().select(None).unwrap().clone();
    assert!(!Arc::ptr_eq(&first, &second));
    assert_eq!(second.cert[0].as_ref(), c2_der(&c2).as_slice());

    std::fs::write(&a, &c).unwrap(); // the key went missing in a deploy
    let report = resolver.reload(&sources);
    assert_eq!(report.kept.len(), 1, "{report:?}");
    assert!(report.kept[0].contains("a.pem"), "{report:?}");
    assert!(Arc::ptr_eq(
        resolver.current().select(None).unwrap(),
        &second
    ));

    // A second entry that never loaded is reported and does not disturb the first.
    let sources = [CertSource::Pem(a), CertSource::Pem(dir.0.join("new.pem"))];
    let report = resolver.reload(&sources);
    assert_eq!(
        (report.kept.len(), report.failed.len()),
        (1, 1),
        "{report:?}"
    );
    assert_eq!(report.certificates, 1);
}

fn c2_der(pem: &str) -> Vec<u8> {
    use rustls_pki_types::pem::PemObject;
    rustls_pki_types::CertificateDer::from_pem_slice(pem.as_bytes())
        .unwrap()
        .to_vec()
}

/// A real handshake over an in-memory pipe: the resolver answers by SNI, ALPN agrees on h2,
/// and TLS 1.3 is refused to a TLS 1.2-only client when min_version is 1.3.
#[tokio::test]
async fn handshake_serves_the_sni_certificate_and_honours_min_version() {
    let (ca, ka) = cert(&["a.test"], 365);
    let (cb, kb) = cert(&["b.test"], 365);
    let la = load_bundle(Path::new("a.pem"), format!("{ca}{ka}").as_bytes(), None).unwrap();
    let lb = load_bundle(Path::new("b.pem"), format!("{cb}{kb}").as_bytes(), None).unwrap();
    let dir = Scratch::new("hs");
    let pa = dir.write("a.pem", &format!("{ca}{ka}"));
    let pb = dir.write("b.pem", &format!("{cb}{kb}"));
    let mut tls = TlsConfig::new(vec![CertSource::Pem(pa), CertSource::Pem(pb)]);
    let resolver = Arc::new(CertResolver::load(&tls.certificates).unwrap().0);
    let server = server_config(&tls, resolver.clone()).unwrap();

    let mut roots = rustls::RootCertStore::empty();
    roots.add(la.key.cert[0].clone()).unwrap();
    roots.add(lb.key.cert[0].clone()).unwrap();
    let client = |versions: &[&'static rustls::SupportedProtocolVersion]| {
        let mut c = rustls::ClientConfig::builder_with_provider(provider())
            .with_protocol_versions(versions)
            .unwrap()
            .with_root_certificates(roots.clone())
            .with_no_client_auth();
        c.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Arc::new(c)
    };
    let shake = |server: Arc<rustls::ServerConfig>, client: Arc<rustls::ClientConfig>, sni| async move {
        let (a, b) = tokio::io::duplex(64 * 1024);
        let acceptor = tokio_rustls::TlsAcceptor::from(server);
        let connector = tokio_rustls::TlsConnector::from(client);
        let name = rustls_pki_types::ServerName::try_from(sni).unwrap();
        let (s, c) = tokio::join!(acceptor.accept(a), connector.connect(name, b));
        let c = c?;
        let s = s?;
        let (_, conn) = c.get_ref();
        Ok::<_, std::io::Error>((
            conn.peer_certificates().unwrap()[0].clone(),
            conn.alpn_protocol().map(<[u8]>::to_vec),
            s.get_ref().1.server_name().map(str::to_string),
        ))
    };
    let all = &[&rustls::version::TLS13, &rustls::version::TLS12][..];
    let (leaf, alpn, sni) = shake(server.clone(), client(all), "b.test").await.unwrap();
    assert_eq!(leaf, lb.key.cert[0]);
    assert_eq!(alpn.as_deref(), Some(&b"h2"[..]));
    assert_eq!(sni.as_deref(), Some("b.test"));
    let (leaf, ..) = shake(server.clone(), client(all), "a.test").await.unwrap();
    assert_eq!(leaf, la.key.cert[0]);
    let only12 = &[&rustls::version::TLS12][..];
    assert!(shake(server, client(only12), "a.test").await.is_ok());

    tls.min_version = TlsVersion::V1_3;
    let strict = server_config(&tls, resolver).unwrap();
    assert!(shake(strict, client(only12), "a.test").await.is_err());
}
