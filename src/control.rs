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
//!
//! with indented detail lines; `status json` answers the stats snapshot as JSON.

use crate::observe::Observed;
use proxy::observe::snapshot::Snapshot;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tracing::{debug, warn};

pub const DEFAULT_SOCKET: &str = "/run/vrrplb/vrrplb.sock";

/// The text `status` answers: the greppable lines first (node, instance, drops, backend),
/// then indented details under each.
pub fn render(snap: &Snapshot) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "node {}", snap.node);
    for i in &snap.vrrp {
        let _ = writeln!(
            s,
            "instance {} state {} priority {} vips {}",
            i.name,
            i.state,
            i.priority,
            i.vips.join(",")
        );
        let last = match &i.last_transition {
            Some(t) => format!(
                "{} -> {} {}s ago ({})",
                t.from,
                t.to,
                snap.time.saturating_sub(t.at),
                t.reason
            ),
            None => "-".to_owned(),
        };
        let _ = writeln!(
            s,
            "  base_priority {} master {} last {} adverts sent {} received {} become_master {}",
            i.base_priority,
            i.master.as_deref().unwrap_or("-"),
            last,
            i.adverts_sent,
            i.adverts_received,
            i.become_master
        );
        for t in &i.trackers {
            let _ = writeln!(s, "  tracker {} {}: {}", t.kind, t.name, t.status);
        }
        let drops: Vec<String> = i
            .invalid_adverts
            .iter()
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
    for a in &snap.announce {
        let _ = writeln!(
            s,
            "announce {} {} {} on {} {}s ({}) withdrawals {}",
            a.name,
            a.address,
            a.state,
            a.interface,
            snap.time.saturating_sub(a.since),
            a.reason,
            a.withdrawals
        );
    }
    for f in &snap.proxy.frontends {
        let c = &f.counters;
        let _ = writeln!(
            s,
            "frontend {} {} sessions {}/{} total {} requests {} 2xx {} 5xx {}",
            f.name,
            if f.listening { "OPEN" } else { "STOP" },
            f.connections,
            f.limit,
            c.sessions_total,
            c.requests_total,
            c.http_responses[1],
            c.http_responses[4]
        );
    }
    for b in &snap.proxy.backends {
        let _ = writeln!(s, "backend {} up {}/{}", b.name, b.up, b.total);
        for v in &b.servers {
            let _ = writeln!(
                s,
                "  server {:<16} {:<10} {:<22} inflight {} total {} check_failures {} downs {}",
                v.name,
                v.status,
                v.last_check.as_deref().unwrap_or("-"),
                v.inflight,
                v.requests,
                v.check_failures,
                v.check_downs
            );
        }
    }
    // Syslog destinations: lines sent, dropped on a full queue, refused by the destination.
    s.push_str(&crate::syslog::status_lines());
    s
}

/// Binds the socket (replacing a stale file left by a killed daemon) and serves it until the
/// task is aborted. `view` is read at each request.
pub fn serve(
    path: &Path,
    view: Arc<Observed>,
    test_hooks: bool,
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
            let view = view.clone();
            tokio::spawn(async move {
                if let Err(e) = answer(stream, &view, test_hooks).await {
                    debug!("control socket client: {e}");
                }
            });
        }
    }))
}

async fn answer(stream: UnixStream, view: &Observed, test_hooks: bool) -> std::io::Result<()> {
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
        (_, "status") | (_, "") => render(&view.snapshot()),
        (_, "status json") => {
            let mut j = serde_json::to_string_pretty(&view.snapshot())
                .unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"));
            j.push('\n');
            j
        }
        (_, "debug stall-vrrp") if test_hooks => {
            warn!("control socket: stalling every VRRP engine loop (test hook)");
            view.stall_engines();
            "ok\n".to_owned()
        }
        (_, other) => {
            warn!("control socket: unknown command {other:?}");
            format!("error unknown command {other:?}; known: status, status json\n")
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
pub fn query(path: &Path, command: &str) -> Result<String, String> {
    use std::io::{Read, Write};
    let mut s = std::os::unix::net::UnixStream::connect(path)
        .map_err(|e| format!("cannot reach the vrrplb daemon at {}: {e}", path.display()))?;
    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
    s.write_all(format!("{command}\n").as_bytes())
        .map_err(|e| format!("{}: {e}", path.display()))?;
    let mut out = String::new();
    s.read_to_string(&mut out)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(out)
}

pub fn socket_path(configured: Option<&str>) -> PathBuf {
    PathBuf::from(configured.unwrap_or(DEFAULT_SOCKET))
}
