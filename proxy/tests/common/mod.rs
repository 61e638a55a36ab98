//! Test fixtures: small hyper backends on 127.0.0.1, a client, proxy configs.
#![allow(dead_code)]

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use proxy::config::{
    BackendConfig, FrontendConfig, HealthCheckConfig, ProxyConfig, RouteConfig, ServerConfig,
};
use proxy::Proxy;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// A backend: answers with its name, the path it saw and the request headers.
///
/// Paths: `/slow/<ms>` waits first; `/status/<code>`; `/setcookie` sends a Location and a
/// Set-Cookie with a Path; `/health` answers 200 while `healthy`, else 500.
pub struct TestServer {
    pub name: String,
    pub addr: SocketAddr,
    pub hits: Arc<AtomicUsize>,
    pub healthy: Arc<AtomicBool>,
    /// Requests currently being answered.
    pub active: Arc<AtomicUsize>,
    stop: watch::Sender<bool>,
}

impl TestServer {
    pub async fn start(name: &str) -> TestServer {
        Self::start_on(name, "127.0.0.1:0".parse().unwrap()).await
    }

    pub async fn start_on(name: &str, addr: SocketAddr) -> TestServer {
        let listener = TcpListener::bind(addr).await.expect("bind test server");
        let addr = listener.local_addr().unwrap();
        let (stop, stop_rx) = watch::channel(false);
        let hits = Arc::new(AtomicUsize::new(0));
        let healthy = Arc::new(AtomicBool::new(true));
        let active = Arc::new(AtomicUsize::new(0));
        let state = (
            name.to_string(),
            hits.clone(),
            healthy.clone(),
            active.clone(),
            addr,
        );
        tokio::spawn(async move {
            let mut stop_rx2 = stop_rx.clone();
            loop {
                let accepted = tokio::select! {
                    a = listener.accept() => a,
                    _ = stop_rx2.wait_for(|s| *s) => return,
                };
                let Ok((stream, _)) = accepted else { continue };
                let state = state.clone();
                let mut stop_rx = stop_rx.clone();
                tokio::spawn(async move {
                    let svc = service_fn(move |req| {
                        let state = state.clone();
                        async move { Ok::<_, Infallible>(answer(state, req).await) }
                    });
                    let conn = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc);
                    tokio::select! {
                        _ = conn => {}
                        _ = stop_rx.wait_for(|s| *s) => {}
                    }
                });
            }
        });
        TestServer {
            name: name.to_string(),
            addr,
            hits,
            healthy,
            active,
            stop,
        }
    }

    /// Closes the listener and every connection (as if the process died).
    pub fn kill(&self) {
        self.stop.send_replace(true);
    }

    pub fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }

    pub fn server_config(&self) -> ServerConfig {
        ServerConfig::new(self.name.clone(), self.addr)
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.kill();
    }
}

type State = (
    String,
    Arc<AtomicUsize>,
    Arc<AtomicBool>,
    Arc<AtomicUsize>,
    SocketAddr,
);

async fn answer(state: State, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let (name, hits, healthy, active, own_addr) = state;
    let path = req.uri().path().to_string();
    if path == "/health" {
        let ok = healthy.load(Ordering::SeqCst);
        let mut r = Response::new(Full::new(Bytes::from_static(b"health")));
        if !ok {
            *r.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
        }
        return r;
    }
    hits.fetch_add(1, Ordering::SeqCst);
    active.fetch_add(1, Ordering::SeqCst);
    let mut body = format!(
        "{name}\npath={}\n",
        req.uri().path_and_query().map(|p| p.as_str()).unwrap_or("")
    );
    for (n, v) in req.headers() {
        body.push_str(&format!("{}: {}\n", n, v.to_str().unwrap_or("?")));
    }
    let (_parts, incoming) = req.into_parts();
    let received = incoming
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    if !received.is_empty() {
        body.push_str(&format!("body={}\n", String::from_utf8_lossy(&received)));
    }
    let mut status = StatusCode::OK;
    let mut resp_headers = Vec::new();
    if let Some(ms) = path.strip_prefix("/slow/") {
        let ms: u64 = ms.parse().unwrap_or(0);
        tokio::time::sleep(Duration::from_millis(ms)).await;
    } else if let Some(code) = path.strip_prefix("/status/") {
        status = StatusCode::from_u16(code.parse().unwrap_or(500))
            .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    } else if path == "/setcookie" {
        status = StatusCode::FOUND;
        resp_headers.push(("location", "/login".to_string()));
        resp_headers.push(("set-cookie", "sess=1; Path=/cart".to_string()));
        resp_headers.push(("content-location", format!("http://{own_addr}/here")));
    } else if path == "/hopbyhop" {
        resp_headers.push(("connection", "x-secret".to_string()));
        resp_headers.push(("x-secret", "1".to_string()));
        resp_headers.push(("keep-alive", "timeout=5".to_string()));
    }
    active.fetch_sub(1, Ordering::SeqCst);
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    *resp.status_mut() = status;
    resp.headers_mut().insert("x-server", name.parse().unwrap());
    for (n, v) in resp_headers {
        resp.headers_mut().append(n, v.parse().unwrap());
    }
    resp
}

pub type HttpClient = Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>;

pub fn client() -> HttpClient {
    Client::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(5))
        .build_http()
}

pub struct Reply {
    pub status: StatusCode,
    pub headers: http::HeaderMap,
    pub body: String,
}

impl Reply {
    /// The backend's name (first body line), or "" for a proxy page.
    pub fn server(&self) -> &str {
        self.headers
            .get("x-server")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

pub async fn send(client: &HttpClient, req: Request<Full<Bytes>>) -> Result<Reply, String> {
    let fut = client.request(req);
    let resp = tokio::time::timeout(Duration::from_secs(10), fut)
        .await
        .map_err(|_| "client timeout".to_string())?
        .map_err(|e| format!("{e:?}"))?;
    let (parts, body) = resp.into_parts();
    let body = body.collect().await.map_err(|e| e.to_string())?.to_bytes();
    Ok(Reply {
        status: parts.status,
        headers: parts.headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    })
}

pub async fn get(client: &HttpClient, url: &str) -> Reply {
    let req = Request::get(url).body(Full::new(Bytes::new())).unwrap();
    send(client, req).await.expect("request")
}

pub async fn get_with(client: &HttpClient, url: &str, headers: &[(&str, &str)]) -> Reply {
    let mut b = Request::get(url);
    for (n, v) in headers {
        b = b.header(*n, *v);
    }
    send(client, b.body(Full::new(Bytes::new())).unwrap())
        .await
        .expect("request")
}

/// Writes raw bytes, then reads until the server closes (or `wait` passes).
pub async fn raw(addr: SocketAddr, bytes: &[u8], wait: Duration) -> String {
    let mut s = TcpStream::connect(addr).await.expect("connect");
    s.write_all(bytes).await.expect("write");
    read_until_close(&mut s, wait).await
}

pub async fn read_until_close(s: &mut TcpStream, wait: Duration) -> String {
    let mut out = Vec::new();
    let _ = tokio::time::timeout(wait, s.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

pub fn frontend(routes: Vec<RouteConfig>, default_backend: Option<&str>) -> FrontendConfig {
    let mut f = FrontendConfig::new("www", vec!["127.0.0.1:0".parse().unwrap()]);
    f.routes = routes;
    f.default_backend = default_backend.map(str::to_string);
    f
}

pub fn backend(name: &str, servers: &[&TestServer]) -> BackendConfig {
    BackendConfig::new(name, servers.iter().map(|s| s.server_config()).collect())
}

pub fn fast_checks() -> HealthCheckConfig {
    HealthCheckConfig {
        path: "/health".into(),
        interval: Duration::from_millis(100),
        timeout: Duration::from_millis(100),
        rise: 2,
        fall: 2,
        ..HealthCheckConfig::default()
    }
}

pub struct Running {
    pub proxy: Proxy,
    pub base: String,
    pub addr: SocketAddr,
}

pub fn start(frontends: Vec<FrontendConfig>, backends: Vec<BackendConfig>) -> Running {
    let mut cfg = ProxyConfig::new(frontends, backends);
    cfg.node = "test".into();
    let proxy = Proxy::start(cfg).expect("proxy starts");
    let addr = proxy
        .local_addrs("www")
        .first()
        .copied()
        .unwrap_or_else(|| "127.0.0.1:1".parse().unwrap());
    Running {
        base: format!("http://{addr}"),
        addr,
        proxy,
    }
}

/// Waits (bounded) until `f` holds.
pub async fn eventually(what: &str, limit: Duration, mut f: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + limit;
    while !f() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for: {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A free loopback port (bound then released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The bound of every wait of the CONNECT fixtures below.
const TUNNEL_WAIT: Duration = Duration::from_secs(5);

/// A forward proxy: per connection, reads CONNECT heads; `denied.test:*` gets a 403 with a
/// body and the connection stays open for the next request; any other authority is dialled
/// (as a loopback port) and, once connected, answered `200 Connection established` and
/// relayed both ways with half-close.
pub struct ForwardProxy {
    pub addr: SocketAddr,
    heads: Arc<Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for ForwardProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl ForwardProxy {
    pub async fn start() -> ForwardProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let heads = Arc::new(Mutex::new(Vec::new()));
        let seen = heads.clone();
        let task = tokio::spawn(async move {
            while let Ok((s, _)) = listener.accept().await {
                tokio::spawn(forward_proxy_conn(s, seen.clone()));
            }
        });
        ForwardProxy { addr, heads, task }
    }

    pub fn heads(&self) -> Vec<String> {
        self.heads.lock().expect("lock").clone()
    }
}

async fn forward_proxy_conn(mut s: TcpStream, seen: Arc<Mutex<Vec<String>>>) {
    let mut buf = Vec::new();
    loop {
        let end = loop {
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            let mut chunk = [0u8; 4096];
            match tokio::time::timeout(TUNNEL_WAIT, s.read(&mut chunk)).await {
                Ok(Ok(n)) if n > 0 => buf.extend_from_slice(&chunk[..n]),
                _ => return,
            }
        };
        let head = String::from_utf8_lossy(&buf[..end]).into_owned();
        buf.drain(..end);
        seen.lock().expect("lock").push(head.clone());
        let target = head.split(' ').nth(1).unwrap_or("").to_owned();
        if !head.starts_with("CONNECT ") || target.starts_with("denied.test:") {
            let answer = "HTTP/1.1 403 Forbidden\r\nContent-Length: 6\r\n\r\ndenied";
            if s.write_all(answer.as_bytes()).await.is_err() {
                return;
            }
            continue;
        }
        let port = target.rsplit(':').next().unwrap_or("0");
        let Ok(mut up) = TcpStream::connect(format!("127.0.0.1:{port}")).await else {
            let _ = s
                .write_all(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n")
                .await;
            continue;
        };
        // A body-framing field on the 200 must not reach the client (RFC 9110 §9.3.6).
        let ok = "HTTP/1.1 200 Connection established\r\nContent-Length: 0\r\n\r\n";
        if s.write_all(ok.as_bytes()).await.is_err() {
            return;
        }
        if !buf.is_empty() && up.write_all(&buf).await.is_err() {
            return;
        }
        let _ = tokio::io::copy_bidirectional(&mut s, &mut up).await;
        return;
    }
}

/// An echo server that closes its side once the client closed its own.
pub async fn echo_server() -> (SocketAddr, tokio::task::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let task = tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            tokio::spawn(async move {
                let (mut r, mut w) = s.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
                let _ = w.shutdown().await;
            });
        }
    });
    (addr, task)
}

/// Reads an HTTP/2 tunnel's bytes (a CONNECT stream's body) until its END_STREAM, within
/// [`TUNNEL_WAIT`], giving the flow-control window back as it goes.
pub async fn h2_tunnel_to_end(tunnel: h2::RecvStream) -> Vec<u8> {
    tokio::time::timeout(TUNNEL_WAIT, h2_body(tunnel))
        .await
        .expect("echo and end in time")
        .expect("tunnel data")
}

/// An HTTP/2 client connection (the h2 crate's), to open streams on.
pub type H2 = h2::client::SendRequest<Bytes>;

/// A stream's body until its END_STREAM, giving the flow-control window back as it goes.
pub async fn h2_body(mut body: h2::RecvStream) -> Result<Vec<u8>, String> {
    let mut all = Vec::new();
    while let Some(chunk) = body.data().await {
        let chunk = chunk.map_err(|e| format!("body: {e}"))?;
        let _ = body.flow_control().release_capacity(chunk.len());
        all.extend_from_slice(&chunk);
    }
    Ok(all)
}

/// Sends `req` on a new stream of `h2` now, with `body` if given; the future answers
/// (status, body) or what failed.
pub async fn h2_send(
    h2: &H2,
    req: Request<()>,
    body: Option<Bytes>,
) -> impl std::future::Future<Output = Result<(u16, String), String>> {
    let sent = match h2.clone().ready().await {
        Ok(mut h2) => h2
            .send_request(req, body.is_none())
            .map_err(|e| format!("send: {e}"))
            .and_then(|(resp, mut out)| match body {
                Some(b) => out
                    .send_data(b, true)
                    .map(|()| resp)
                    .map_err(|e| format!("send body: {e}")),
                None => Ok(resp),
            }),
        Err(e) => Err(format!("stream slot: {e}")),
    };
    async move {
        let resp = sent?.await.map_err(|e| format!("answer: {e}"))?;
        let status = resp.status().as_u16();
        let body = h2_body(resp.into_body()).await?;
        Ok((status, String::from_utf8_lossy(&body).into_owned()))
    }
}

/// A GET of `uri` sent now on a new stream of `h2`, answered in a task of its own.
pub async fn h2_get(
    h2: &H2,
    uri: String,
) -> tokio::task::JoinHandle<Result<(u16, String), String>> {
    let req = Request::get(uri).body(()).expect("request");
    tokio::spawn(h2_send(h2, req, None).await)
}

/// Shuts `proxy` down with a grace of 1 s while two streams are at its server: `finishing`
/// (answered within the grace) and `outliving` (not). The drain takes the grace, the first
/// is answered 200, the second is cut.
pub async fn drain_cuts_what_outlives_it(
    proxy: &Proxy,
    finishing: tokio::task::JoinHandle<Result<(u16, String), String>>,
    outliving: tokio::task::JoinHandle<Result<(u16, String), String>>,
) {
    let wait = Duration::from_secs(5);
    let t0 = std::time::Instant::now();
    proxy.shutdown(Duration::from_millis(1000)).await;
    let took = t0.elapsed();
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_millis(2500),
        "the drain took {took:?}"
    );
    let (status, body) = tokio::time::timeout(wait, finishing)
        .await
        .expect("in time")
        .expect("task")
        .expect("the stream in flight is answered");
    assert_eq!(status, 200, "{body}");
    let cut = tokio::time::timeout(wait, outliving)
        .await
        .expect("ended in time")
        .expect("task");
    assert!(cut.is_err(), "a stream outliving the drain is cut: {cut:?}");
}

/// A self-signed certificate for `localhost` and its key, written in `dir` as one PEM file
/// (chain and key, as HAProxy's `crt` takes them); the file, and the certificate to trust.
pub fn localhost_pem(
    dir: &std::path::Path,
) -> (
    std::path::PathBuf,
    rustls::pki_types::CertificateDer<'static>,
) {
    let key = rcgen::KeyPair::generate().expect("key");
    let cert = rcgen::CertificateParams::new(vec!["localhost".to_string()])
        .expect("params")
        .self_signed(&key)
        .expect("certificate");
    let pem = dir.join("site.pem");
    std::fs::write(&pem, format!("{}{}", cert.pem(), key.serialize_pem())).expect("pem");
    (pem, cert.der().clone())
}
