//! The certificate loading path on arbitrary bytes: PEM sections, certificate and key DER,
//! SAN/CN extraction and the key-matches-certificate check. It must return an error, never
//! panic or hang. The first byte chooses between one bundle and a `{cert, key}` pair split at
//! the second byte's proportion of the rest.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    if mode & 1 == 0 {
        let _ = proxy::tls::load_bundle(Path::new("fuzz.pem"), rest, None);
    } else if let Some((&cut, rest)) = rest.split_first() {
        let at = rest.len() * usize::from(cut) / 256;
        let (cert, key) = rest.split_at(at);
        let _ = proxy::tls::load_bundle(Path::new("fuzz.pem"), cert, Some((Path::new("fuzz.key"), key)));
    }
});
