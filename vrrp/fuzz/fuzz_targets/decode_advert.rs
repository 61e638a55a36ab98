//! Arbitrary bytes through the receive path: raw-socket read -> IP header -> validation
//! (v2 and v3 rules), the IPv6 path (a payload with the kernel's facts -> header checks ->
//! validation with IPv6 rules), plus the bare message decoder for both versions and the v3
//! checksum over both pseudo-headers. Any panic is a bug (packet.rs must never panic on input).
#![no_main]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use libfuzzer_sys::fuzz_target;
use vrrp::packet::{self, Advertisement, Auth, Ipv6Receipt, ReceiveRules, Version};

fuzz_target!(|data: &[u8]| {
    let multicast = ReceiveRules {
        version: Version::V2,
        vrid: 51,
        auth: Auth::None,
        advert_int: 100,
        addresses: vec![Ipv4Addr::new(192, 0, 2, 100).into()],
        unicast_peers: vec![],
        owner: false,
        own_address: Some(Ipv4Addr::new(192, 0, 2, 11).into()),
    };
    let unicast_pass = ReceiveRules {
        auth: Auth::Simple(*b"s3cret\0\0"),
        unicast_peers: vec![Ipv4Addr::new(192, 0, 2, 12).into()],
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
                let again = advert.encode_between(meta.src, meta.dst);
                assert_eq!(
                    Advertisement::decode_between(&again, meta.src, meta.dst).as_ref(),
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
    let (ll, peer, group) = (
        Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 1),
        Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 2),
        Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 0x12),
    );
    let (src6, dst6) = (IpAddr::V6(peer), IpAddr::V6(group));
    if let Ok(advert) = Advertisement::decode_between(data, src6, dst6) {
        // Over IPv6 only version 3 exists, and its checksum covers the pseudo-header.
        assert_eq!(advert.version, Version::V3);
        let again = advert.encode_between(src6, dst6);
        assert_eq!(packet::v3_checksum(src6, dst6, &again), 0);
        assert_eq!(
            Advertisement::decode_between(&again, src6, dst6).as_ref(),
            Ok(&advert)
        );
    }
    // The IPv6 receive path: the first two bytes play the kernel's facts (hop limit, which
    // of destination / hop limit / extension headers came), the rest is the payload.
    if let [hop, flags, payload @ ..] = data {
        let receipt = Ipv6Receipt {
            src: peer,
            dst: (flags & 1 == 0).then_some(group),
            hop_limit: (flags & 2 == 0).then_some(i32::from(*hop)),
            extension_headers: flags & 4 != 0,
        };
        let v6 = ReceiveRules {
            addresses: vec!["2001:db8::100".parse().unwrap_or(IpAddr::V6(Ipv6Addr::UNSPECIFIED))],
            own_address: Some(ll.into()),
            ..v3.clone()
        };
        let v6_unicast = ReceiveRules {
            unicast_peers: vec![peer.into()],
            ..v6.clone()
        };
        if let Ok(meta) = packet::ipv6_meta(&receipt) {
            for rules in [&v6, &v6_unicast] {
                if let Ok(advert) = packet::validate(&meta, payload, rules) {
                    assert_eq!(meta.ttl, 255);
                    assert_eq!(advert.version, Version::V3);
                    // Re-encoded (reserved bits zeroed), it decodes to the same advert.
                    let again = advert.encode_between(meta.src, meta.dst);
                    assert_eq!(
                        packet::validate(&meta, &again, rules).as_ref(),
                        Ok(&advert)
                    );
                }
            }
        }
    }
});
