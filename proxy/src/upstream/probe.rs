//! One health probe (lb.md §4): a TCP connect, or a small HTTP/1.1 request whose status line
//! and headers are read and judged; the body is ignored. On a backend with `tls` the probe
//! also makes the TLS handshake (HAProxy's layer 6 codes: L6OK, L6RSP, L6TOUT) and sends
//! its request over it, all within the one check timeout.

use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::config::HealthCheckConfig;
use crate::upstream::io::ServerIo;
use crate::upstream::tls::ServerTlsClient;

/// HAProxy's check result codes (shown in logs and as the stats "LastChk").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CheckCode {
    L4Ok,
    L4Con,
    L4Tout,
    /// TLS handshake done (a `tcp` check on a TLS backend).
    L6Ok,
    /// TLS handshake failed (protocol error, certificate not verified).
    L6Rsp,
    /// TLS handshake not done within the check timeout.
    L6Tout,
    L7Ok,
    L7Sts,
    L7Rsp,
    L7Tout,
}

impl CheckCode {
    pub fn passed(self) -> bool {
        matches!(self, CheckCode::L4Ok | CheckCode::L6Ok | CheckCode::L7Ok)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            CheckCode::L4Ok => "L4OK",
            CheckCode::L4Con => "L4CON",
            CheckCode::L4Tout => "L4TOUT",
            CheckCode::L6Ok => "L6OK",
            CheckCode::L6Rsp => "L6RSP",
            CheckCode::L6Tout => "L6TOUT",
            CheckCode::L7Ok => "L7OK",
            CheckCode::L7Sts => "L7STS",
            CheckCode::L7Rsp => "L7RSP",
            CheckCode::L7Tout => "L7TOUT",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProbeResult {
    pub code: CheckCode,
    /// HTTP status received, if any.
    pub status: Option<u16>,
    pub info: Option<String>,
    pub duration: Duration,
}

impl ProbeResult {
    /// Stats "LastChk": `L7OK/200 in 1ms`, `L4CON in 0ms`.
    pub fn last_check(&self) -> String {
        match self.status {
            Some(s) => format!(
                "{}/{s} in {}ms",
                self.code.as_str(),
                self.duration.as_millis()
            ),
            None => format!("{} in {}ms", self.code.as_str(), self.duration.as_millis()),
        }
    }
}

/// The request bytes, built once per server. `User-Agent: vrrplb-check` lets servers filter
/// checks out of their logs (seed 001 does this for Apache, with its own `User-Agent`, which
/// `headers` can set).
pub fn http_request_bytes(cfg: &HealthCheckConfig, target: SocketAddr) -> Vec<u8> {
    let host = match &cfg.host {
        Some(h) => h.clone(),
        None => target.to_string(),
    };
    let path = if cfg.path.is_empty() { "/" } else { &cfg.path };
    let mut req = format!("{} {path} HTTP/1.1\r\nHost: {host}\r\n", cfg.method);
    if !cfg
        .headers
        .iter()
        .any(|(n, _)| n.eq_ignore_ascii_case("user-agent"))
    {
        req.push_str("User-Agent: vrrplb-check\r\n");
    }
    for (name, value) in &cfg.headers {
        req.push_str(&format!("{name}: {value}\r\n"));
    }
    req.push_str("Connection: close\r\n\r\n");
    req.into_bytes()
}

/// "Connection refused (os error 111)" → "Connection refused".
fn describe(e: &io::Error) -> String {
    let s = e.to_string();
    match s.find(" (os error") {
        Some(i) => s[..i].to_string(),
        None => s,
    }
}

/// TCP connect, then the TLS handshake when `tls` is given, by `deadline`.
async fn connect(
    target: SocketAddr,
    deadline: tokio::time::Instant,
    tls: Option<&ServerTlsClient>,
    start: Instant,
) -> Result<ServerIo, ProbeResult> {
    let fail = |code, info| ProbeResult {
        code,
        status: None,
        info,
        duration: start.elapsed(),
    };
    let stream = match tokio::time::timeout_at(deadline, TcpStream::connect(target)).await {
        Ok(Ok(stream)) => stream,
        Ok(Err(e)) => return Err(fail(CheckCode::L4Con, Some(describe(&e)))),
        Err(_) => return Err(fail(CheckCode::L4Tout, None)),
    };
    let Some(tls) = tls else {
        return Ok(ServerIo::Plain(stream));
    };
    match tokio::time::timeout_at(deadline, tls.handshake(stream)).await {
        Ok(Ok(s)) => Ok(ServerIo::Tls(Box::new(s))),
        Ok(Err(e)) => Err(fail(CheckCode::L6Rsp, Some(e.to_string()))),
        Err(_) => Err(fail(CheckCode::L6Tout, None)),
    }
}

/// A connect (and TLS handshake) check: L4OK, or L6OK on TLS.
pub(crate) async fn tcp(
    target: SocketAddr,
    timeout: Duration,
    tls: Option<&ServerTlsClient>,
) -> ProbeResult {
    let start = Instant::now();
    let deadline = tokio::time::Instant::from_std(start) + timeout;
    match connect(target, deadline, tls, start).await {
        Ok(_) => ProbeResult {
            code: if tls.is_some() {
                CheckCode::L6Ok
            } else {
                CheckCode::L4Ok
            },
            status: None,
            info: None,
            duration: start.elapsed(),
        },
        Err(r) => r,
    }
}

const MAX_RESPONSE_HEAD: usize = 16 * 1024;

pub(crate) async fn http(
    target: SocketAddr,
    request: &[u8],
    cfg: &HealthCheckConfig,
    tls: Option<&ServerTlsClient>,
) -> ProbeResult {
    let start = Instant::now();
    let deadline = tokio::time::Instant::from_std(start) + cfg.timeout;
    let mut stream = match connect(target, deadline, tls, start).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let exchange = async {
        stream.write_all(request).await?;
        stream.flush().await?;
        let mut buf = Vec::with_capacity(1024);
        let mut chunk = [0u8; 2048];
        loop {
            let n = stream.read(&mut chunk).await?;
            if n == 0 {
                return Ok::<_, io::Error>((buf, true));
            }
            buf.extend_from_slice(&chunk[..n]);
            if buf.windows(4).any(|w| w == b"\r\n\r\n") || buf.len() >= MAX_RESPONSE_HEAD {
                return Ok((buf, false));
            }
        }
    };
    let result = tokio::time::timeout_at(deadline, exchange).await;
    let done = |code, status, info| ProbeResult {
        code,
        status,
        info,
        duration: start.elapsed(),
    };
    let buf = match result {
        Err(_) => return done(CheckCode::L7Tout, None, None),
        Ok(Err(e)) => return done(CheckCode::L7Rsp, None, Some(describe(&e))),
        Ok(Ok((buf, _eof))) => buf,
    };
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut resp = httparse::Response::new(&mut headers);
    match resp.parse(&buf) {
        Ok(httparse::Status::Complete(_)) => {
            let code = resp.code.unwrap_or(0);
            if cfg
                .expect_status
                .iter()
                .any(|&(lo, hi)| (lo..=hi).contains(&code))
            {
                done(CheckCode::L7Ok, Some(code), None)
            } else {
                let reason = resp.reason.filter(|r| !r.is_empty()).map(str::to_string);
                done(CheckCode::L7Sts, Some(code), reason)
            }
        }
        Ok(httparse::Status::Partial) => done(
            CheckCode::L7Rsp,
            None,
            Some("incomplete response headers".to_string()),
        ),
        Err(e) => done(CheckCode::L7Rsp, None, Some(e.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::TcpListener;

    async fn one_shot_server(response: &'static [u8]) -> SocketAddr {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move {
            if let Ok((mut s, _)) = l.accept().await {
                let mut buf = [0u8; 1024];
                let _ = s.read(&mut buf).await;
                let _ = s.write_all(response).await;
            }
        });
        addr
    }

    fn cfg() -> HealthCheckConfig {
        HealthCheckConfig {
            timeout: Duration::from_millis(500),
            ..HealthCheckConfig::default()
        }
    }

    #[test]
    fn extra_headers_join_the_probe_and_may_replace_its_user_agent() {
        let target: SocketAddr = "127.0.0.1:80".parse().unwrap();
        let mut c = cfg();
        c.headers = vec![("X-Check".into(), "yes".into())];
        let req = String::from_utf8(http_request_bytes(&c, target)).unwrap();
        assert_eq!(
            req,
            "GET / HTTP/1.1\r\nHost: 127.0.0.1:80\r\nUser-Agent: vrrplb-check\r\nX-Check: yes\r\nConnection: close\r\n\r\n"
        );
        c.headers = vec![("User-Agent".into(), "HAProxy".into())];
        let req = String::from_utf8(http_request_bytes(&c, target)).unwrap();
        assert_eq!(
            req,
            "GET / HTTP/1.1\r\nHost: 127.0.0.1:80\r\nUser-Agent: HAProxy\r\nConnection: close\r\n\r\n"
        );
    }

    #[tokio::test]
    async fn http_probe_judges_the_status() {
        let c = cfg();
        let ok = one_shot_server(b"HTTP/1.1 204 No Content\r\n\r\n").await;
        let r = http(ok, &http_request_bytes(&c, ok), &c, None).await;
        assert_eq!((r.code, r.status), (CheckCode::L7Ok, Some(204)));
        let bad = one_shot_server(b"HTTP/1.1 500 Internal Server Error\r\nX: y\r\n\r\n").await;
        let r = http(bad, &http_request_bytes(&c, bad), &c, None).await;
        assert_eq!((r.code, r.status), (CheckCode::L7Sts, Some(500)));
        assert_eq!(r.info.as_deref(), Some("Internal Server Error"));
        let junk = one_shot_server(b"SSH-2.0-OpenSSH\r\n\r\n").await;
        let r = http(junk, &http_request_bytes(&c, junk), &c, None).await;
        assert_eq!(r.code, CheckCode::L7Rsp);
    }

    #[tokio::test]
    async fn refused_connection_is_l4con() {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        drop(l);
        let r = tcp(addr, Duration::from_millis(500), None).await;
        assert_eq!(r.code, CheckCode::L4Con);
        assert_eq!(r.info.as_deref(), Some("Connection refused"));
    }

    #[test]
    fn request_has_the_check_user_agent() {
        let mut c = cfg();
        c.host = Some("site1.example.test".into());
        c.path = "/health".into();
        let req =
            String::from_utf8(http_request_bytes(&c, "127.0.0.1:80".parse().unwrap())).unwrap();
        assert_eq!(
            req,
            "GET /health HTTP/1.1\r\nHost: site1.example.test\r\nUser-Agent: vrrplb-check\r\nConnection: close\r\n\r\n"
        );
    }
}
