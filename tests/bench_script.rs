//! `deploy/bench.sh --quick` works end to end: it builds its lab, measures vrrplb against
//! HAProxy 2.6 and keepalived + HAProxy (plain HTTP, TLS termination, tcp mode, stats scrapes:
//! CPU, instructions per scrape and per request with and without scrapes under callgrind, and
//! 2 pairs of 1 s keep-alive rounds without and with a scraper; failover, idle), counts
//! vrrplb's instructions per request under callgrind, runs the
//! VRRPv3 part (part vrrp3: link down + hard kill, graceful stop and failback at 100 ms and 1 s, advert gaps
//! under load from a capture on the bridge, idle CPU and wake-ups; about 65 s of the run here,
//! with 2 s of load and 1 s of idle), prints the results tables and removes everything. No figure is asserted against a goal (the machine is
//! shared); only that every row is there with a measured figure, within time.

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_vrrplb");
/// The quick run takes about 5 minutes on a quiet 2-CPU machine (the debug binary under
/// callgrind is a minute of it, the vrrp3 part another; part scrape's callgrind phases and
/// paired rounds, which replaced its two single rounds, add about 17 s: 16 s of CPU under
/// callgrind) and 8 on one shared with other builds.
const LIMIT: Duration = Duration::from_secs(600);

#[test]
fn bench_script_quick_mode_prints_the_table() {
    let test = "bench_script_quick_mode_prints_the_table";
    if !testkit::require_root(test) {
        return;
    }
    for tool in [
        "haproxy",
        "keepalived",
        "nginx",
        "wrk",
        "curl",
        "taskset",
        "openssl",
        "python3",
        "h2load",
        "valgrind",
        "callgrind_control",
        "tshark",
    ] {
        if !testkit::require_tool(test, tool) {
            return;
        }
    }
    let name = format!("vbt{}", std::process::id());
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/bench.sh");
    let start = Instant::now();
    // The test's own (debug) binary: building a release one from inside `cargo test` would
    // wait on cargo's lock. --no-out: nothing is written into the repository.
    let mut child = Command::new("bash")
        .args([
            script,
            "--quick",
            "--no-install",
            "--no-out",
            "--name",
            &name,
            "--bin",
            BIN,
        ])
        // The vrrp3 part's load and idle periods, short (its poll windows end with the move).
        .env("VRRP3_LOAD", "2")
        .env("VRRP3_IDLE", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run deploy/bench.sh");
    let pid = child.id();
    // A watchdog: SIGTERM (the script cleans up), then SIGKILL, by the PID we started.
    let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
    let watchdog = std::thread::spawn(move || {
        if done_rx.recv_timeout(LIMIT).is_err() {
            let _ = Command::new("kill")
                .args(["-TERM", &pid.to_string()])
                .status();
            if done_rx.recv_timeout(Duration::from_secs(20)).is_err() {
                let _ = Command::new("kill")
                    .args(["-KILL", &pid.to_string()])
                    .status();
            }
        }
    });
    let mut stderr = child.stderr.take().expect("stderr");
    let err_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let mut out = String::new();
    child
        .stdout
        .take()
        .expect("stdout")
        .read_to_string(&mut out)
        .expect("read stdout");
    let status = child.wait().expect("wait for bench.sh");
    let _ = done_tx.send(());
    let _ = watchdog.join();
    let err = err_reader.join().unwrap_or_default();
    let took = start.elapsed();
    println!("{out}\n--- stderr ---\n{err}\n--- took {took:?}");

    assert!(
        took < LIMIT,
        "bench.sh --quick took {took:?} (limit {LIMIT:?})"
    );
    assert!(status.success(), "bench.sh --quick failed: {status}\n{err}");
    for row in [
        "| figure | vrrplb | anchor",
        "| small, keep-alive (32 conns): requests/s |",
        "| small, new connection per request: CPU s per 1000 requests |",
        "| 100 KB, keep-alive (32 conns): p99 latency, ms |",
        "| failover, SIGKILL + link down of the master: client outage, ms |",
        "| failback, the master returns and preempts: client outage, ms |",
        "| graceful stop (SIGTERM) of the master: client outage, ms |",
        "| idle master box: RSS, MB (sum over processes) |",
        "| TLS, small, keep-alive (wrk, 32 conns): requests/s |",
        "| TLS, small, keep-alive (wrk, 32 conns): CPU s per 1000 requests |",
        "| TLS, small, keep-alive (wrk, 32 conns): of which user space, CPU s per 1000 requests |",
        "| small, keep-alive (32 conns): of which user space, CPU s per 1000 requests |",
        "| HTTP/2 over TLS (h2load -c8 -m32): of which user space, CPU s per 1000 requests |",
        "| TLS full handshake, RSA 2048, new connection per request (python3 ssl): of which user space, CPU s per 1000 handshakes |",
        "| TLS full handshake, ECDSA P-256, new connection per request (python3 ssl): CPU s per 1000 handshakes |",
        "| TLS full handshake, RSA 2048, new connection per request (python3 ssl): CPU s per 1000 handshakes |",
        "| TLS resumed handshake, new connection per request (wrk, Connection: close): CPU s per 1000 requests |",
        "| HTTP/2 over TLS (h2load -c8 -m32): requests/s |",
        "| HTTP/2 over TLS at a fixed rate (h2load -c8 -m32 --rps 500, 4000 requests/s): CPU s per 1000 requests |",
        "| TLS, small, keep-alive at a fixed rate (h2load --h1 -c32 --rps 100, 3200 requests/s): requests/s |",
        "| TLS, small, keep-alive at a fixed rate (h2load --h1 -c32 --rps 100, 3200 requests/s): CPU s per 1000 requests |",
        "| 300 idle TLS connections: RSS of the balancer, MB |",
        "| tcp mode, 100 KB responses (wrk keep-alive, 32 conns): CPU s per GB |",
        "| tcp mode, 1 MB responses (wrk keep-alive, 32 conns): requests/s |",
        "| tcp mode, new TCP connection per request (small, Connection: close): connections/s |",
        "| tcp mode, TLS pass-through by SNI (python3 ssl, full handshakes with the servers): handshakes/s |",
        "| one scrape of /metrics (2 frontends, 4 backends, 100 servers): CPU ms |",
        "| one load of the stats page (HTML): CPU ms |",
        "| callgrind: instructions per scrape of /metrics (stats config, new connection each) |",
        "| callgrind: instructions per load of the stats page (HTML) |",
        "| callgrind: instructions per load of the stats CSV (;csv) |",
        "| callgrind: instructions per keep-alive request, stats config (100 servers) |",
        "| instructions per keep-alive request while /metrics is scraped (callgrind) against without, % |",
        "| one scrape of /metrics a second at the measured keep-alive rate (callgrind): share of the balancer's instructions, % |",
        "| stats config (100 servers), keep-alive, /metrics scraped every 1 s (paired rounds): CPU s per 1000 requests |",
        "| keep-alive requests/s with a scrape of /metrics every 1 s against without, % (median of 2 paired 1 s rounds, min to max) |",
        "| keep-alive CPU s per 1000 requests with a scrape of /metrics every 1 s against without, % (median of 2 paired 1 s rounds, min to max) |",
        "| callgrind: instructions per request, plain HTTP/1.1 keep-alive |",
        "| callgrind: instructions per request, TLS 1.3 keep-alive (HTTP/1.1) |",
        "| v3 100 ms, link down + SIGKILL of the MASTER: client outage, ms |",
        "| v3 100 ms, link down + SIGKILL of the MASTER: failed 20 ms polls |",
        "| v3 100 ms, graceful stop (SIGTERM) of the MASTER: failed requests |",
        "| v3 100 ms, failback (the MASTER returns and preempts): failed requests |",
        "| v2 1 s, graceful stop (SIGTERM) of the MASTER: failed requests |",
        "| v2 1 s, failback (the MASTER returns and preempts): failed requests |",
        "| v3 100 ms, 2 s keep-alive load through the MASTER: advert gap p99, ms |",
        "| v3 100 ms, 2 s keep-alive load through the MASTER: advert gap max, ms |",
        "| v3 100 ms, 2 s keep-alive load through the MASTER: state changes on either box |",
        "| v3 100 ms, idle MASTER box: CPU ms per 30 s (measured over 1 s) |",
        "| v3 100 ms, idle MASTER box: wake-ups per second (all threads) |",
    ] {
        assert!(out.contains(row), "the table has no row {row:?}:\n{out}");
    }
    // Every figure was measured: no empty cell in the vrrplb and anchor (or reference)
    // columns, and the instruction counts are whole numbers above zero.
    for line in out
        .lines()
        .filter(|l| l.starts_with("| ") && !l.contains("figure"))
    {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        assert!(
            cells.len() >= 4
                && !cells[2].is_empty()
                && !cells[3].is_empty()
                && !cells[2].starts_with('-')
                && !cells[3].starts_with('-')
                || cells[1].contains("against without, %")
                    && cells[2].len() > 1
                    && cells[3].len() > 1,
            "a figure is missing: {line}"
        );
        if cells[1].starts_with("callgrind:") {
            let n: u64 = cells[2]
                .split_whitespace()
                .next()
                .unwrap_or("")
                .replace(',', "")
                .parse()
                .unwrap_or(0);
            assert!(n > 0, "no instruction count: {line}");
        }
        // The share of one scrape a second is worked out from measured figures on both sides.
        if cells[1].starts_with("one scrape of /metrics a second") {
            for cell in [cells[2], cells[3]] {
                let share: f64 = cell.parse().unwrap_or(0.0);
                assert!(share > 0.0, "no scrape share: {line}");
            }
        }
    }
    // The lab is gone.
    assert!(
        testkit::namespaces_with_prefix(&name).is_empty(),
        "bench.sh left namespaces {name}-*"
    );
}
