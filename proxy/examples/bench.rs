//! Throughput check: a hyper backend answering "hello" and the proxy in front of it, both on
//! loopback. Prints the proxy address, then runs until killed.
//!
//! ```text
//! cargo run --release -p proxy --example bench &
//! wrk -t1 -c32 -d5s http://127.0.0.1:<port>/
//! ```

use std::convert::Infallible;
use std::time::Duration;

use bytes::Bytes;
use http::Response;
use http_body_util::Full;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use proxy::config::{BackendConfig, FrontendConfig, ProxyConfig, ServerConfig};
use proxy::Proxy;
use tokio::net::TcpListener;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let backend = TcpListener::bind("127.0.0.1:0").await?;
    let backend_addr = backend.local_addr()?;
    tokio::spawn(async move {
        while let Ok((stream, _)) = backend.accept().await {
            let _ = stream.set_nodelay(true);
            tokio::spawn(async move {
                let svc = service_fn(|_req| async {
                    Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"hello\n"))))
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    let port = std::env::args().nth(1).unwrap_or_else(|| "0".into());
    let mut fe = FrontendConfig::new("bench", vec![format!("127.0.0.1:{port}").parse()?]);
    fe.default_backend = Some("be".into());
    let mut be = BackendConfig::new("be", vec![ServerConfig::new("s1", backend_addr)]);
    be.timeouts.server_idle = Duration::from_secs(30);
    let mut cfg = ProxyConfig::new(vec![fe], vec![be]);
    cfg.access_log = false;
    let proxy = Proxy::start(cfg)?;
    println!(
        "proxy on {:?}, backend on {backend_addr}",
        proxy.local_addrs("bench")
    );
    tokio::signal::ctrl_c().await?;
    proxy.shutdown(Duration::from_secs(1)).await;
    Ok(())
}
