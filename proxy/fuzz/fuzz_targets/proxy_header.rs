//! Arbitrary bytes as the first bytes of an `accept_proxy` connection (lb.md §11). Any panic
//! is a bug; a parsed header never claims more bytes than it was given, and the verdict on a
//! prefix agrees with the verdict on the whole.
#![no_main]

use libfuzzer_sys::fuzz_target;
use proxy::tcp::proxy_header::{encode_v1, encode_v2, parse, Parse, ProxyHeader, V1_MAX, V2_MAX};

fuzz_target!(|data: &[u8]| {
    match parse(data) {
        Ok(Parse::Done { header, len }) => {
            assert!(len <= data.len() && len <= V2_MAX.max(V1_MAX));
            // The same header with more bytes after it parses the same.
            let mut longer = data[..len].to_vec();
            longer.extend_from_slice(b"tail");
            assert_eq!(parse(&longer), Ok(Parse::Done { header, len }));
            if let ProxyHeader::Tcp { src, dst } = header {
                for wire in [encode_v1(src, dst), encode_v2(src, dst)] {
                    assert!(matches!(parse(&wire), Ok(Parse::Done { .. })));
                }
            }
        }
        Ok(Parse::NeedMore) => {
            // Every prefix of an incomplete header is incomplete too.
            assert_eq!(parse(&data[..data.len() / 2]), Ok(Parse::NeedMore));
        }
        Err(_) => {}
    }
});
