//! deploy/pgo.sh's training run (the workloads whose profile the shipped binary is optimised
//! with) works against this build: every workload fully succeeds (HTTP/1.1, h2c, TLS
//! keep-alive, HTTP/2 over TLS, resumed and full handshakes with SNI picking the ECDSA or
//! the RSA certificate, TLS to the server, tcp mode, stats scrapes), vrrplb exits cleanly on
//! SIGTERM (that is when an instrumented build writes its profile), and the scratch
//! directory is gone. The instrumented and optimised builds themselves take two release
//! builds; deploy/bench.sh runs them (its figures are of the optimised binary).

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_vrrplb");

#[test]
fn pgo_training_run_succeeds_against_this_build() {
    let test = "pgo_training_run_succeeds_against_this_build";
    for tool in ["nginx", "h2load", "wrk", "curl", "openssl", "python3", "ss"] {
        if !testkit::require_tool(test, tool) {
            return;
        }
    }
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/pgo.sh");
    let start = Instant::now();
    let out = Command::new("timeout")
        .args([
            "300",
            "bash",
            script,
            "--train",
            BIN,
            "--quick",
            "--no-install",
        ])
        .stdin(Stdio::null())
        .output()
        .expect("run deploy/pgo.sh");
    let took = start.elapsed();
    let err = String::from_utf8_lossy(&out.stderr);
    println!("{err}--- took {took:?}");
    assert!(
        out.status.success(),
        "pgo.sh --train failed: {}\n{err}",
        out.status
    );
    assert!(took < Duration::from_secs(300));
    assert!(!err.contains("FAIL"), "a workload failed:\n{err}");
    for workload in [
        "HTTP/1.1 keep-alive",
        "HTTP/1.1 new connection per request",
        "HTTP/1.1 100 KB responses",
        "h2c",
        "TLS keep-alive",
        "HTTP/2 over TLS",
        "TLS resumed handshakes",
        "full handshakes, SNI localhost",
        "full handshakes, SNI rsa.localhost",
        "TLS to the server",
        "tcp mode keep-alive",
        "tcp mode 100 KB responses",
        "tcp mode new connection per request",
        "stats scrapes (90 of 90)",
    ] {
        assert!(
            err.contains(&format!("   ok   {workload}")),
            "no successful {workload:?}:\n{err}"
        );
    }
    assert!(err.contains("== training run complete"), "{err}");
    let scratch = err
        .split("scratch ")
        .nth(1)
        .and_then(|s| s.split(')').next())
        .expect("the scratch directory is named");
    assert!(
        !std::path::Path::new(scratch).exists(),
        "{scratch} was left behind"
    );
}
