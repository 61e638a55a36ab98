//! Throwaway certificate authorities and certificates for TLS tests, made with the `openssl`
//! command line (the same tool an operator would use), valid for 30 days.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Key type of a generated certificate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyKind {
    EcdsaP256,
    Rsa2048,
}

impl KeyKind {
    fn args(self) -> &'static [&'static str] {
        match self {
            KeyKind::EcdsaP256 => &["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"],
            KeyKind::Rsa2048 => &["-newkey", "rsa:2048"],
        }
    }
}

/// A CA: `<dir>/<name>.pem` and `<dir>/<name>.key`.
pub struct Ca {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// A leaf certificate signed by a CA: `<dir>/<name>.pem`, `<dir>/<name>.key`.
pub struct Leaf {
    pub cert: PathBuf,
    pub key: PathBuf,
}

fn openssl(args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run openssl: {e}"));
    if !out.status.success() {
        panic!(
            "openssl {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
}

fn path_str(p: &Path) -> &str {
    p.to_str().expect("test paths are UTF-8")
}

impl Ca {
    pub fn new(dir: &Path, name: &str) -> Ca {
        let (cert, key) = (
            dir.join(format!("{name}.pem")),
            dir.join(format!("{name}.key")),
        );
        let mut args = vec!["req", "-x509", "-nodes", "-days", "30"];
        args.extend_from_slice(KeyKind::EcdsaP256.args());
        let subj = format!("/CN={name}");
        args.extend_from_slice(&[
            "-keyout",
            path_str(&key),
            "-out",
            path_str(&cert),
            "-subj",
            &subj,
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ]);
        openssl(&args);
        Ca { cert, key }
    }

    /// A server certificate for `sans` (`DNS:name` / `IP:addr` entries) or, with `client`,
    /// a client certificate with CN `name`.
    pub fn leaf(&self, dir: &Path, name: &str, sans: &[&str], kind: KeyKind, client: bool) -> Leaf {
        let (cert, key) = (
            dir.join(format!("{name}.pem")),
            dir.join(format!("{name}.key")),
        );
        let csr = dir.join(format!("{name}.csr"));
        let ext = dir.join(format!("{name}.ext"));
        let mut text = String::from("basicConstraints=CA:FALSE\n");
        if client {
            text.push_str("extendedKeyUsage=clientAuth\n");
        } else {
            text.push_str("extendedKeyUsage=serverAuth\n");
            text.push_str(&format!("subjectAltName={}\n", sans.join(",")));
        }
        std::fs::write(&ext, text).expect("write extensions");
        let subj = format!("/CN={name}");
        let mut args = vec!["req", "-nodes"];
        args.extend_from_slice(kind.args());
        args.extend_from_slice(&[
            "-keyout",
            path_str(&key),
            "-out",
            path_str(&csr),
            "-subj",
            &subj,
        ]);
        openssl(&args);
        openssl(&[
            "x509",
            "-req",
            "-in",
            path_str(&csr),
            "-CA",
            path_str(&self.cert),
            "-CAkey",
            path_str(&self.key),
            "-CAcreateserial",
            "-days",
            "30",
            "-extfile",
            path_str(&ext),
            "-out",
            path_str(&cert),
        ]);
        Leaf { cert, key }
    }
}
