//! The control socket behind `vrrplb status`: a Unix stream socket where the daemon answers
//! one text command per connection. Like keepalived's stats dump and HAProxy's stats socket,
//! but plain lines a person (or grep) can read:
//!
//! ```text
//! node lb1
//! instance VI_1 state MASTER priority 101 vips 198.51.100.100/24
//! drops VI_1 bad_checksum=3 bad_ttl=1
//! backend web up 2/2
//! log unix:///dev/log sent=120 dropped=0 failed=0
//! ```

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::watch;
use tracing::{debug, warn};
use vrrp::instance::InstanceStatus;
use vrrp::packet::DropCounters;

pub const DEFAULT_SOCKET: &str = "/run/vrrplb/vrrplb.sock";

/// What `status` reports about one instance.
pub struct InstanceView {
    pub name: String,
    pub vips: Vec<String>,
    pub status: watch::Receiver<InstanceStatus>,
    pub drops: Arc<DropCounters>,
}

/// What `status` reports about one backend: servers UP out of the total.
pub struct BackendView {
    pub name: String,
    pub up: watch::Receiver<usize>,
    pub total: usize,
}

/// Everything the daemon exposes; replaced as a whole on reload.
#[derive(Default)]
pub struct StatusView {
    pub node: String,
    pub instances: Vec<InstanceView>,
    pub backends: Vec<BackendView>,
}

impl StatusView {
    pub fn render(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "node {}", self.node);
        for i in &self.instances {
            let st = *i.status.borrow();
            let _ = writeln!(
                s,
                "instance {} state {} priority {} vips {}",
                i.name,
                st.state,
                st.priority,
                i.vips.join(",")
            );
            let drops: Vec<String> = i
                .drops
                .snapshot()
                .into_iter()
                .filter(|(_, n)| *n > 0)
                .map(|(k, n)| format!("{k}={n}"))
                .collect();
            let drops = if drops.is_empty() {
                "none".to_owned()
            } else {
                drops.join(" ")
            };
            let _ = writeln!(s, "drops {} {drops}", i.name);
        }
        for b in &self.backends {
            let _ = writeln!(s, "backend {} up {}/{}", b.name, *b.up.borrow(), b.total);
        }
        // Syslog destinations: lines sent, dropped on a full queue, refused by the destination.
        s.push_str(&crate::syslog::status_lines());
        s
    }
}

/// Binds the socket (replacing a stale file left by a killed daemon) and serves it until the
/// task is aborted. `view` is read at each request.
pub fn serve(
    path: &Path,
    view: watch::Receiver<Arc<StatusView>>,
) -> std::io::Result<tokio::task::JoinHandle<()>> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    if path.exists() {
        // A live daemon answers on it; a stale file from a killed one does not.
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::AddrInUse,
                format!("another vrrplb answers on {}", path.display()),
            ));
        }
        std::fs::remove_file(path)?;
    }
    let listener = UnixListener::bind(path)?;
    Ok(tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            };
            let view = view.borrow().clone();
            tokio::spawn(async move {
                if let Err(e) = answer(stream, &view).await {
                    debug!("control socket client: {e}");
                }
            });
        }
    }))
}

async fn answer(stream: UnixStream, view: &StatusView) -> std::io::Result<()> {
    let (rd, mut wr) = stream.into_split();
    let mut line = String::new();
    // A client that never sends its command must not hold a task forever.
    let read = tokio::time::timeout(
        Duration::from_secs(5),
        BufReader::new(rd).take_line(&mut line),
    )
    .await;
    let reply = match (read, line.trim()) {
        (Err(_), _) => return Ok(()),
        (_, "status") | (_, "") => view.render(),
        (_, other) => {
            warn!("control socket: unknown command {other:?}");
            format!("error unknown command {other:?}; known: status\n")
        }
    };
    wr.write_all(reply.as_bytes()).await?;
    wr.shutdown().await
}

trait TakeLine {
    async fn take_line(self, buf: &mut String) -> std::io::Result<usize>;
}

impl<R: tokio::io::AsyncRead + Unpin> TakeLine for BufReader<R> {
    async fn take_line(mut self, buf: &mut String) -> std::io::Result<usize> {
        // At most one short line: commands are single words.
        let mut limited = (&mut self).take(256);
        limited.read_line(buf).await
    }
}

use tokio::io::AsyncReadExt as _;

/// The client side of `vrrplb status`.
pub fn query(path: &Path) -> Result<String, String> {
    use std::io::{Read, Write};
    let mut s = std::os::unix::net::UnixStream::connect(path)
        .map_err(|e| format!("cannot reach the vrrplb daemon at {}: {e}", path.display()))?;
    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
    s.write_all(b"status\n")
        .map_err(|e| format!("{}: {e}", path.display()))?;
    let mut out = String::new();
    s.read_to_string(&mut out)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(out)
}

pub fn socket_path(configured: Option<&str>) -> PathBuf {
    PathBuf::from(configured.unwrap_or(DEFAULT_SOCKET))
}
