//! HTTP/2 chosen by ALPN on a TLS frontend, whose streams run inside the connection's task
//! (http/h2_streams.rs), with the h2 crate as client over rustls: streams of one connection
//! are served side by side (a slow one holds back none of the others), many at once stay
//! byte-exact with their own answers, a client's reset of one stream leaves the others
//! running, a drain lets streams in flight finish but cuts what outlives it, and a CONNECT
//! tunnel (which hyper hands to the same executor) runs on its stream. The server learns
//! the request's :authority as Host and, with `forwarded_for`, as X-Forwarded-Host.
//! About 3 s.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::*;
use http::Request;
use proxy::config::{CertSource, TlsConfig};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

const WAIT: Duration = Duration::from_secs(5);

/// A proxy whose frontend `www` terminates TLS (ALPN h2, http/1.1) for `localhost`, before
/// `servers`; the client's TLS settings trust its certificate and offer only h2.
struct Site {
    run: Running,
    connector: tokio_rustls::TlsConnector,
    _dir: TempDir,
}

struct TempDir(std::path::PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn site(test: &str, servers: &[&TestServer]) -> Site {
    site_with(test, backend("be", servers))
}

/// [`site`] before the backend `be` given.
fn site_with(test: &str, be: proxy::config::BackendConfig) -> Site {
    let dir = std::env::temp_dir().join(format!("vrrplb-h2alpn-{test}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let (pem, cert) = localhost_pem(&dir);
    let mut fe = frontend(vec![], Some("be"));
    fe.tls = Some(TlsConfig::new(vec![CertSource::Pem(pem)]));
    fe.forwarded_for = true;
    let run = start(vec![fe], vec![be]);
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert).expect("root");
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut c = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    c.alpn_protocols = vec![b"h2".to_vec()];
    Site {
        run,
        connector: tokio_rustls::TlsConnector::from(Arc::new(c)),
        _dir: TempDir(dir),
    }
}

/// A TLS connection that chose h2, and its h2 client; the connection task runs beside.
async fn h2_client(s: &Site) -> (H2, tokio::task::JoinHandle<()>) {
    let tcp = TcpStream::connect(s.run.addr).await.expect("connect");
    let name = rustls::pki_types::ServerName::try_from("localhost").expect("name");
    let tls: TlsStream<TcpStream> = tokio::time::timeout(WAIT, s.connector.connect(name, tcp))
        .await
        .expect("handshake in time")
        .expect("handshake");
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let (h2, conn) = h2::client::handshake(tls).await.expect("h2 handshake");
    let task = tokio::spawn(async move {
        let _ = conn.await;
    });
    (h2, task)
}

/// Sends a GET for `path` on a new stream of `h2`; the future answers (status, body).
async fn get_on(
    h2: &H2,
    path: &str,
) -> impl std::future::Future<Output = Result<(u16, String), String>> {
    let req = Request::get(format!("https://localhost{path}"))
        .body(())
        .expect("request");
    h2_send(h2, req, None).await
}

#[tokio::test]
async fn streams_of_one_connection_are_served_side_by_side() {
    let a = TestServer::start("a").await;
    let b = TestServer::start("b").await;
    let s = site("side", &[&a, &b]);
    let (h2, conn) = h2_client(&s).await;

    let t0 = Instant::now();
    let slow = tokio::spawn(get_on(&h2, "/slow/800").await);
    // 60 more streams, each asking its own path: every answer is its own request's.
    let mut fast = Vec::new();
    for i in 0..60 {
        let path = format!("/fast/{i}");
        fast.push((path.clone(), tokio::spawn(get_on(&h2, &path).await)));
    }
    for (path, answer) in fast {
        let (status, body) = tokio::time::timeout(WAIT, answer)
            .await
            .expect("in time")
            .expect("task")
            .expect("answer");
        assert_eq!(status, 200, "{path}: {body}");
        assert!(body.contains(&format!("path={path}\n")), "{path}: {body}");
        assert!(body.contains("x-forwarded-proto: https"), "{body}");
        assert!(body.contains("x-forwarded-host: localhost\n"), "{body}");
    }
    let fast_done = t0.elapsed();
    assert!(
        fast_done < Duration::from_millis(700),
        "the fast streams waited for the slow one: {fast_done:?}"
    );
    let (status, body) = tokio::time::timeout(WAIT, slow)
        .await
        .expect("in time")
        .expect("task")
        .expect("slow answer");
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("path=/slow/800\n"), "{body}");
    assert!(t0.elapsed() >= Duration::from_millis(800));
    assert_eq!(a.hits() + b.hits(), 61);
    conn.abort();
}

#[tokio::test]
async fn a_reset_stream_leaves_the_others_running() {
    let a = TestServer::start("a").await;
    let s = site("reset", &[&a]);
    let (h2, conn) = h2_client(&s).await;

    let mut sender = h2.clone().ready().await.expect("ready");
    let req = Request::get("https://localhost/slow/400")
        .body(())
        .expect("request");
    let (doomed, mut doomed_stream) = sender.send_request(req, true).expect("send");
    let kept = tokio::spawn(get_on(&h2, "/slow/300").await);
    eventually("both requests at the server", WAIT, || a.hits() == 2).await;
    doomed_stream.send_reset(h2::Reason::CANCEL);
    drop(doomed);
    let (status, body) = tokio::time::timeout(WAIT, kept)
        .await
        .expect("in time")
        .expect("task")
        .expect("answer");
    assert_eq!(status, 200, "{body}");
    // The connection still takes new streams.
    let (status, _) = get_on(&h2, "/after").await.await.expect("answer after");
    assert_eq!(status, 200);
    conn.abort();
}

#[tokio::test]
async fn a_drain_lets_streams_finish_and_cuts_what_outlives_it() {
    let a = TestServer::start("a").await;
    let s = site("drain", &[&a]);
    let (h2, conn) = h2_client(&s).await;
    let finishing = tokio::spawn(get_on(&h2, "/slow/400").await);
    let outliving = tokio::spawn(get_on(&h2, "/slow/5000").await);
    eventually("both requests at the server", WAIT, || a.hits() == 2).await;
    drain_cuts_what_outlives_it(&s.run.proxy, finishing, outliving).await;
    conn.abort();
}

/// CONNECT on a stream of an ALPN h2 connection: the tunnel hyper hands to the connection's
/// executor runs in the connection's task, echoes, and passes the ends of stream on.
#[tokio::test]
async fn a_connect_tunnel_runs_on_its_stream() {
    let (echo, _echo_task) = echo_server().await;
    let fwd = ForwardProxy::start().await;
    let squid = proxy::config::ServerConfig::new("squid", fwd.addr);
    let site = site_with(
        "connect",
        proxy::config::BackendConfig::new("be", vec![squid]),
    );
    let (h2, conn) = h2_client(&site).await;
    let mut h2 = h2.ready().await.expect("ready");
    let req = Request::connect(echo.to_string())
        .body(())
        .expect("request");
    let (resp, mut send) = h2.send_request(req, false).expect("send CONNECT");
    let resp = tokio::time::timeout(WAIT, resp)
        .await
        .expect("in time")
        .expect("answer");
    assert_eq!(resp.status(), 200);
    send.send_data(Bytes::from_static(b"ping through h2"), true)
        .expect("send data and END_STREAM");
    let back = h2_tunnel_to_end(resp.into_body()).await;
    assert_eq!(&back[..], b"ping through h2");
    assert!(fwd.heads()[0].starts_with(&format!("CONNECT {echo} HTTP/1.1")));
    conn.abort();
}

/// An HTTP/2 request has no Host field: the server gets its :authority as Host and as
/// X-Forwarded-Host, whether the fields are written after the request's own (a GET) or set in
/// its header map (a POST with a body); a client's own X-Forwarded-Host stays.
#[tokio::test]
async fn the_authority_is_the_forwarded_host() {
    let a = TestServer::start("a").await;
    let s = site("authority", &[&a]);
    let (h2, conn) = h2_client(&s).await;

    let (status, body) = tokio::time::timeout(WAIT, get_on(&h2, "/get").await)
        .await
        .expect("in time")
        .expect("answer");
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("host: localhost\n"), "{body}");
    assert!(body.contains("x-forwarded-host: localhost\n"), "{body}");

    let post = |path: &str| Request::post(format!("https://localhost:443{path}"));
    let req = post("/post")
        .header("x-forwarded-host", "origin.test")
        .body(())
        .expect("request");
    let answer = h2_send(&h2, req, Some(Bytes::from_static(b"payload"))).await;
    let (status, text) = tokio::time::timeout(WAIT, answer)
        .await
        .expect("in time")
        .expect("answer");
    assert_eq!(status, 200, "{text}");
    assert!(text.contains("host: localhost:443\n"), "{text}");
    assert!(text.contains("x-forwarded-host: origin.test\n"), "{text}");
    assert!(!text.contains("x-forwarded-host: localhost"), "{text}");

    let req = post("/post2").body(()).expect("request");
    let answer = h2_send(&h2, req, Some(Bytes::from_static(b"payload"))).await;
    let (_, text) = tokio::time::timeout(WAIT, answer)
        .await
        .expect("in time")
        .expect("answer");
    assert!(text.contains("x-forwarded-host: localhost:443\n"), "{text}");
    drop(h2);
    conn.abort();
}
