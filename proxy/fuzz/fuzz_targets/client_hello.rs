//! Arbitrary bytes as the first bytes of a tcp-mode connection, whole and cut at every
//! position a reader would see them (lb.md §11 SNI routing). Any panic is a bug; a verdict
//! other than NeedMore must not change when more bytes arrive.
#![no_main]

use libfuzzer_sys::fuzz_target;
use proxy::tcp::clienthello::{inspect, Inspect, MAX_CLIENT_HELLO};

fuzz_target!(|data: &[u8]| {
    let whole = inspect(data);
    if let Inspect::Sni(Some(name)) = &whole {
        assert!(!name.is_empty() && name.len() <= 253);
        assert!(name.bytes().all(|b| !b.is_ascii_uppercase()));
    }
    // Feeding it in pieces: once decided, the answer stays (the reader never reads past the
    // hello nor changes its mind).
    let step = (data.len() / 7).max(1);
    let mut decided: Option<Inspect> = None;
    let mut end = 0;
    while end < data.len() {
        end = (end + step).min(data.len());
        let now = inspect(&data[..end]);
        match (&decided, now) {
            (None, Inspect::NeedMore) => {}
            (None, verdict) => decided = Some(verdict),
            (Some(d), verdict) => assert_eq!(d, &verdict),
        }
    }
    if data.len() >= MAX_CLIENT_HELLO {
        assert_ne!(whole, Inspect::NeedMore);
    }
});
