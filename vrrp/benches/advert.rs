//! VRRPv2 advertisement codec: what every advert received (parse + RFC 3768 checks) and sent
//! (encode with checksums) costs. `cargo bench -p vrrp --bench advert`.

use std::hint::black_box;
use std::net::Ipv4Addr;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use vrrp::packet::{self, Advertisement, Auth, ReceiveRules, VRRP_GROUP};

fn advert(addresses: usize) -> Advertisement {
    Advertisement {
        version: packet::Version::V2,
        vrid: 51,
        priority: 101,
        advert_int: 100,
        auth: Auth::Simple(*b"vrrplb51"),
        addresses: (0..addresses)
            .map(|i| Ipv4Addr::new(198, 51, 100, 100 + i as u8).into())
            .collect(),
    }
}

fn rules(a: &Advertisement) -> ReceiveRules {
    ReceiveRules {
        version: a.version,
        vrid: a.vrid,
        auth: a.auth,
        advert_int: a.advert_int,
        addresses: a.addresses.clone(),
        unicast_peers: Vec::new(),
        owner: false,
        own_address: None,
    }
}

fn codec(c: &mut Criterion) {
    let src = Ipv4Addr::new(198, 51, 100, 11);
    for n in [1usize, 20] {
        let a = advert(n);
        let wire = a.encode_ip(src, VRRP_GROUP);
        let r = rules(&a);
        let mut g = c.benchmark_group(format!("advert/{n}_vip"));
        g.throughput(Throughput::Elements(1));
        g.bench_function("emit (encode_ip)", |b| {
            b.iter(|| black_box(&a).encode_ip(black_box(src), VRRP_GROUP))
        });
        g.bench_function("parse (parse_ip + validate)", |b| {
            b.iter(|| {
                let (meta, msg) = packet::parse_ip(black_box(&wire)).expect("valid IP header");
                packet::validate(&meta, msg, black_box(&r)).expect("valid advert")
            })
        });
        g.bench_function("decode only", |b| {
            b.iter(|| Advertisement::decode(black_box(&wire[20..])).expect("valid advert"))
        });
        g.finish();
    }
    // A hostile packet (bad checksum) must be cheap to throw away.
    let a = advert(1);
    let mut bad = a.encode_ip(src, VRRP_GROUP);
    bad[26] ^= 0xff;
    let r = rules(&a);
    c.bench_function("advert/drop bad checksum", |b| {
        b.iter(|| {
            let (meta, msg) = packet::parse_ip(black_box(&bad)).expect("valid IP header");
            packet::validate(&meta, msg, black_box(&r)).expect_err("bad checksum")
        })
    });
}

criterion_group!(benches, codec);
criterion_main!(benches);
