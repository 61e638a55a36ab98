//! `health_check.headers`: the probe a real vrrplb sends carries the configured fields (seed
//! 001's `option httpchk GET / HTTP/1.0\r\nUser-Agent:\ HAProxy`), read by a server socket.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use testkit::{wait_until, TempDir};

const BIN: &str = env!("CARGO_BIN_EXE_vrrplb");

#[test]
fn the_probe_carries_the_configured_header_fields() {
    let server = TcpListener::bind("127.0.0.1:0").expect("bind server");
    let server_addr = server.local_addr().expect("addr");
    let seen: Arc<Mutex<Vec<String>>> = Arc::default();
    let seen2 = seen.clone();
    std::thread::spawn(move || {
        // Bounded: at most 50 probes are read.
        for conn in server.incoming().take(50).flatten() {
            let _ = conn.set_read_timeout(Some(Duration::from_secs(2)));
            let mut w = match conn.try_clone() {
                Ok(w) => w,
                Err(_) => continue,
            };
            let mut head = String::new();
            let mut r = BufReader::new(conn);
            loop {
                let mut line = String::new();
                match r.read_line(&mut line) {
                    Ok(0) | Err(_) => break,
                    Ok(_) if line == "\r\n" => break,
                    Ok(_) => head.push_str(&line),
                }
            }
            let _ = w.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
            seen2.lock().unwrap_or_else(|e| e.into_inner()).push(head);
        }
    });
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port");
    let dir = TempDir::new("ops-health-headers");
    let cfg = dir.join("h.yaml");
    std::fs::write(
        &cfg,
        format!(
            "global:\n  control_socket: {}\n  log: {{ target: stderr }}\n\
frontends:\n  - name: www\n    bind: [\"127.0.0.1:{port}\"]\n    default_backend: web\n\
backends:\n  - name: web\n    servers: [{{ name: web1, address: \"{server_addr}\" }}]\n    health_check:\n      kind: http\n      path: /ping\n      interval: 200ms\n      headers: {{ User-Agent: HAProxy, X-Check: \"yes\" }}\n",
            dir.join("ctl.sock").display()
        ),
    )
    .expect("write config");
    let check = Command::new(BIN)
        .args(["check", "-c"])
        .arg(&cfg)
        .output()
        .expect("check");
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );
    let mut vrrplb = Command::new(BIN)
        .args(["run", "-c"])
        .arg(&cfg)
        .stderr(Stdio::null())
        .spawn()
        .expect("run");
    let got = wait_until(Duration::from_secs(10), || {
        !seen.lock().unwrap_or_else(|e| e.into_inner()).is_empty()
    });
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(vrrplb.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .expect("SIGTERM");
    let _ = vrrplb.wait();
    assert!(got, "no probe reached the server");
    let head = seen.lock().unwrap_or_else(|e| e.into_inner())[0].clone();
    println!("probe:\n{head}");
    assert!(head.starts_with("GET /ping HTTP/1.1\r\n"), "{head}");
    assert!(head.contains("\r\nUser-Agent: HAProxy\r\n"), "{head}");
    assert!(head.contains("\r\nX-Check: yes\r\n"), "{head}");
    assert!(!head.contains("vrrplb-check"), "{head}");
}

/// A server's `check_port`: the probe goes to that port (HAProxy `server ... check port N`),
/// so a server whose service port is closed is UP when its check port answers; its sibling
/// without one is probed on its own (closed) port and goes DOWN.
#[test]
fn a_server_check_port_is_probed_instead_of_its_address_port() {
    let probe = TcpListener::bind("127.0.0.1:0").expect("bind check port");
    let probe_port = probe.local_addr().expect("addr").port();
    let probed = Arc::new(Mutex::new(0u32));
    let probed2 = probed.clone();
    std::thread::spawn(move || {
        for conn in probe.incoming().take(100).flatten() {
            let _ = conn.set_read_timeout(Some(Duration::from_secs(2)));
            let mut w = match conn.try_clone() {
                Ok(w) => w,
                Err(_) => continue,
            };
            let mut line = String::new();
            let _ = BufReader::new(conn).read_line(&mut line);
            let _ = w.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
            *probed2.lock().unwrap_or_else(|e| e.into_inner()) += 1;
        }
    });
    let closed = |_: ()| {
        TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("free port")
    };
    let (svc_a, svc_b, front) = (closed(()), closed(()), closed(()));
    let dir = TempDir::new("ops-check-port");
    let cfg = dir.join("p.yaml");
    std::fs::write(
        &cfg,
        format!(
            "global:\n  control_socket: {}\n  log: {{ target: stderr }}\n\
frontends:\n  - name: www\n    bind: [\"127.0.0.1:{front}\"]\n    default_backend: web\n\
backends:\n  - name: web\n    servers:\n      - {{ name: a, address: \"127.0.0.1:{svc_a}\", check_port: {probe_port} }}\n      - {{ name: b, address: \"127.0.0.1:{svc_b}\" }}\n    health_check: {{ kind: http, interval: 200ms, rise: 1, fall: 1 }}\n",
            dir.join("ctl.sock").display()
        ),
    )
    .expect("write config");
    let mut vrrplb = Command::new(BIN)
        .args(["run", "-c"])
        .arg(&cfg)
        .stderr(Stdio::null())
        .spawn()
        .expect("run");
    let status = || {
        Command::new(BIN)
            .args(["status", "-c"])
            .arg(&cfg)
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default()
    };
    let settled = wait_until(Duration::from_secs(10), || {
        status().contains("backend web up 1/2")
            && *probed.lock().unwrap_or_else(|e| e.into_inner()) >= 2
    });
    let last = status();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(vrrplb.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .expect("SIGTERM");
    let _ = vrrplb.wait();
    let n = *probed.lock().unwrap_or_else(|e| e.into_inner());
    println!("check port probed {n} times; status:\n{last}");
    assert!(
        settled,
        "expected 1/2 UP with probes on the check port:\n{last}"
    );
}
