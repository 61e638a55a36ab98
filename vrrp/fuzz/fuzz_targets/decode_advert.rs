//! Arbitrary bytes through the receive path: raw-socket read -> IP header -> validation
//! (v2 and v3 rules), plus the bare message decoder for both versions and the v3 checksum
//! over both pseudo-headers. Any panic is a bug (packet.rs must never panic on input).
#![no_main]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use libfuzzer_sys::fuzz_target;
use vrrp::packet::{self, Advertisement, Auth, ReceiveRules, Version};

fuzz_target!(|data: &[u8]| {
    let multicast = ReceiveRules {
        version: Version::V2,
        vrid: 51,
        auth: Auth::None,
        advert_int: 100,
        addresses: vec![Ipv4Addr::new(192, 0, 2, 100)],
        unicast_peers: vec![],
        owner: false,
        own_address: Some(Ipv4Addr::new(192, 0, 2, 11)),
    };
    let unicast_pass = ReceiveRules {
        auth: Auth::Simple(*b"s3cret\0\0"),
        unicast_peers: vec![Ipv4Addr::new(192, 0, 2, 12)],
        ..multicast.clone()
    };
    let v3 = ReceiveRules {
        version: Version::V3,
        advert_int: 10,
        ..multicast.clone()
    };
    if let Ok((meta, msg)) = packet::parse_ip(data) {
        for rules in [&multicast, &unicast_pass, &v3] {
            if let Ok(advert) = packet::validate(&meta, msg, rules) {
                // Whatever validates must survive a re-encode unchanged.
                let (src, dst) = (IpAddr::V4(meta.src), IpAddr::V4(meta.dst));
                let again = advert.encode_between(src, dst);
                assert_eq!(
                    Advertisement::decode_between(&again, src, dst).as_ref(),
                    Ok(&advert)
                );
            }
        }
    }
    if let Ok(advert) = packet::decode(data) {
        // Auth data of type 0 is ignored on receive and zeroed on send, so compare values.
        assert_eq!(packet::decode(&advert.encode()).as_ref(), Ok(&advert));
    }
    // The same bytes as a v3 message over IPv6 (link-local source to ff02::12).
    let (src6, dst6) = (
        IpAddr::V6(Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 1)),
        IpAddr::V6(Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 0x12)),
    );
    if let Ok(advert) = Advertisement::decode_between(data, src6, dst6) {
        let again = advert.encode_between(src6, dst6);
        // Only v3 checksums cover the pseudo-header; a v2 message decodes here too.
        if advert.version == Version::V3 {
            assert_eq!(packet::v3_checksum(src6, dst6, &again), 0);
        }
        assert_eq!(
            Advertisement::decode_between(&again, src6, dst6).as_ref(),
            Ok(&advert)
        );
    }
});
