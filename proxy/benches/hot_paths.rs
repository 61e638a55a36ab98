//! Per-request pure work of the balancer: route selection, server pick (2 and 1000 servers),
//! request header rewriting (hop-by-hop, forwardfor, set_headers) and the reverse rewrite of
//! response headers. `cargo bench -p proxy --bench hot_paths`.

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use http::header::{HeaderMap, HeaderName, HeaderValue};
use proxy::balance::{self, Candidate, SmoothRoundRobin};
use proxy::config::{HostMatch, RouteConfig};
use proxy::headers::{self, ConnInfo};
use proxy::rewrite::{self, ReverseRewrite};
use proxy::route::{RouteDecision, Router};

const BACKENDS: [&str; 5] = ["site1", "site2", "app1", "wild", "web"];

fn route(host: Option<&str>, prefix: Option<&str>, backend: &str, strip: bool) -> RouteConfig {
    let mut r = RouteConfig::new(backend);
    r.host = host.map(HostMatch::parse);
    r.path_prefix = prefix.map(str::to_owned);
    r.strip_prefix = strip;
    r
}

fn routing(c: &mut Criterion) {
    let index = |name: &str| BACKENDS.iter().position(|b| *b == name);
    let routes = [
        route(Some("site1.example.test"), None, "site1", false),
        route(Some("site2.example.test"), None, "site2", false),
        route(None, Some("/app1/"), "app1", true),
        route(Some("*.example.test"), Some("/static"), "wild", false),
    ];
    let router = Router::new(&routes, Some("web"), index);
    let mut g = c.benchmark_group("route");
    for (name, host, path) in [
        ("first route (host)", "site1.example.test", "/index.html"),
        (
            "strip prefix (3rd)",
            "www.example.test:8080",
            "/app1/cart/42",
        ),
        ("default backend", "other.test", "/"),
    ] {
        g.bench_function(name, |b| {
            b.iter(|| {
                let d = router.decide(black_box(Some(host)), black_box(path), None, |_| true);
                matches!(d, RouteDecision::Backend { .. })
            })
        });
    }
    g.finish();
}

fn candidates(n: usize) -> Vec<Candidate> {
    (0..n)
        .map(|server| Candidate {
            server,
            weight: 1 + (server % 3) as u32,
            load: server % 7,
        })
        .collect()
}

fn balancing(c: &mut Criterion) {
    for n in [2usize, 1000] {
        let cands = candidates(n);
        let usable: Vec<usize> = cands.iter().map(|c| c.server).collect();
        let mut g = c.benchmark_group(format!("balance/{n}_servers"));
        let mut rr = SmoothRoundRobin::default();
        g.bench_function("roundrobin", |b| {
            b.iter(|| rr.pick(black_box(&usable), black_box(&cands)))
        });
        let mut last = None;
        g.bench_function("leastconn", |b| {
            b.iter(|| {
                last = balance::least_conn(black_box(&cands), last);
                last
            })
        });
        let client = IpAddr::V4(Ipv4Addr::new(198, 51, 100, 10));
        g.bench_function("source", |b| {
            b.iter(|| balance::source(black_box(&cands), black_box(client)))
        });
        g.finish();
    }
}

/// What a browser sends, as hyper hands it to the proxy.
fn browser_request() -> HeaderMap {
    let mut h = HeaderMap::new();
    for (n, v) in [
        ("host", "www.example.test"),
        (
            "user-agent",
            "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0",
        ),
        (
            "accept",
            "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
        ),
        ("accept-language", "en-GB,en;q=0.5"),
        ("accept-encoding", "gzip, deflate, br"),
        ("connection", "keep-alive"),
        ("cookie", "SRVID=web1; session=4f2a9c; theme=dark"),
        ("upgrade-insecure-requests", "1"),
        ("x-forwarded-for", "203.0.113.7"),
    ] {
        h.append(
            HeaderName::from_static(n),
            HeaderValue::from_str(v).expect("value"),
        );
    }
    h
}

fn header_ops(c: &mut Criterion) {
    let conn = ConnInfo {
        src: SocketAddr::from(([198, 51, 100, 10], 40312)),
        dst: SocketAddr::from(([198, 51, 100, 100], 80)),
        tls: false,
    };
    let set = vec![
        headers::parse_set_header("X-Client-IP", "%[src]").expect("template"),
        headers::parse_set_header("X-Via", "vrrplb %[dst]:%[dst_port] %[scheme]")
            .expect("template"),
    ];
    let req = browser_request();
    let mut g = c.benchmark_group("headers");
    g.bench_function("request: hop-by-hop + forwardfor + 2 set_headers", |b| {
        b.iter_batched_ref(
            || req.clone(),
            |h| {
                let ws = headers::remove_hop_by_hop_request(h);
                headers::forwarded_for(h, conn.src.ip(), conn.tls);
                headers::apply_set_headers(h, &set, &conn);
                ws
            },
            BatchSize::SmallInput,
        )
    });
    g.bench_function("request: clone only (baseline)", |b| {
        b.iter_batched_ref(|| req.clone(), |h| h.len(), BatchSize::SmallInput)
    });
    let mut resp = HeaderMap::new();
    resp.insert("content-type", HeaderValue::from_static("text/html"));
    resp.insert(
        "location",
        HeaderValue::from_static("http://10.0.0.11:8080/login?next=/cart"),
    );
    resp.append(
        "set-cookie",
        HeaderValue::from_static("session=4f2a9c; Path=/; HttpOnly"),
    );
    resp.append(
        "set-cookie",
        HeaderValue::from_static("theme=dark; Path=/prefs"),
    );
    resp.append("set-cookie", HeaderValue::from_static("SRVID=web1; path=/"));
    let servers = vec!["10.0.0.11:8080".to_owned(), "10.0.0.12:8080".to_owned()];
    let rw = ReverseRewrite {
        prefix: "/app1",
        request_host: Some("www.example.test"),
        client_scheme: "http",
        server_authorities: &servers,
        persistence_cookie: Some("SRVID"),
    };
    g.bench_function("response: reverse rewrite (Location + 3 Set-Cookie)", |b| {
        b.iter_batched_ref(
            || resp.clone(),
            |h| rewrite::rewrite_response_headers(h, &rw),
            BatchSize::SmallInput,
        )
    });
    g.bench_function("request: strip prefix", |b| {
        b.iter(|| rewrite::strip_prefix(black_box("/app1/cart/42?x=1"), black_box("/app1/")))
    });
    g.finish();
}

criterion_group!(benches, routing, balancing, header_ops);
criterion_main!(benches);
