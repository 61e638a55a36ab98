//! Arbitrary bytes through the receive path: raw-socket read -> IP header -> validation,
//! plus the bare message decoder. Any panic is a bug (packet.rs must never panic on input).
#![no_main]

use std::net::Ipv4Addr;

use libfuzzer_sys::fuzz_target;
use vrrp::packet::{self, Auth, ReceiveRules};

fuzz_target!(|data: &[u8]| {
    let multicast = ReceiveRules {
        vrid: 51,
        auth: Auth::None,
        advert_int: 1,
        addresses: vec![Ipv4Addr::new(192, 0, 2, 100)],
        unicast_peers: vec![],
        owner: false,
    };
    let unicast_pass = ReceiveRules {
        auth: Auth::Simple(*b"s3cret\0\0"),
        unicast_peers: vec![Ipv4Addr::new(192, 0, 2, 12)],
        ..multicast.clone()
    };
    if let Ok((meta, msg)) = packet::parse_ip(data) {
        for rules in [&multicast, &unicast_pass] {
            if let Ok(advert) = packet::validate(&meta, msg, rules) {
                // Whatever validates must survive a re-encode unchanged.
                assert_eq!(packet::decode(&advert.encode()).as_ref(), Ok(&advert));
            }
        }
    }
    if let Ok(advert) = packet::decode(data) {
        // Auth data of type 0 is ignored on receive and zeroed on send, so compare values.
        assert_eq!(packet::decode(&advert.encode()).as_ref(), Ok(&advert));
    }
});
