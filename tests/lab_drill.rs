//! The README's main command end to end: `deploy/lab.sh` brings up the two-box lab under a
//! unique LAB name, `deploy/lab.sh drill` (SIGKILL + link down) and `drill --graceful`
//! (SIGTERM) measure the outage a 20 ms client sees and the failback with preemption (plain
//! HTTP, HTTPS, and a long-lived TCP connection), the VIP's edge is checked with real clients
//! (curl: :80 redirects to https, :443 with the lab CA; openssl s_client: :8443 passes TLS
//! through to the server SNI names), and `deploy/lab.sh down` removes everything, also when an
//! assertion fails.

mod common;

use common::script_lab::ScriptLab;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;
use testkit::{namespaces_with_prefix, require_root, require_tool};

/// Master_Down_Interval of the backup (priority 100, advert_int 1) + 0.5 s, in ms.
const HARD_BOUND_MS: u64 = 3000 + (256 - 100) * 1000 / 256 + 500;
/// Skew_Time of the backup (priority 100) + 0.5 s, in ms.
const GRACEFUL_BOUND_MS: u64 = (256 - 100) * 1000 / 256 + 500;
/// The same in VRRPv3 at 100 ms (RFC 5798: Skew_Time scales with the interval): 860 and 560.
const V3_HARD_BOUND_MS: u64 = 300 + (256 - 100) * 100 / 256 + 500;
const V3_GRACEFUL_BOUND_MS: u64 = (256 - 100) * 100 / 256 + 500;

/// The bounds of one lab's drills: (hard, graceful) in ms.
#[derive(Clone, Copy)]
struct Bounds {
    hard: u64,
    graceful: u64,
}

const V2: Bounds = Bounds {
    hard: HARD_BOUND_MS,
    graceful: GRACEFUL_BOUND_MS,
};
/// Graceful stop with the hand-over: what a 20 ms client may lose (a request in flight at the
/// switch, 200 ms timeouts), well under the Skew_Time a plain keepalived stop costs.
const GRACEFUL_HANDOVER_MS: u64 = 300;

/// The `RESULT phase=NAME ...` line of a drill, as key=value pairs.
fn result(text: &str, phase: &str) -> HashMap<String, String> {
    let line = text
        .lines()
        .find(|l| l.starts_with(&format!("RESULT phase={phase} ")))
        .unwrap_or_else(|| panic!("no RESULT phase={phase} line in:\n{text}"));
    line.split_whitespace()
        .skip(1)
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

fn num(r: &HashMap<String, String>, key: &str, text: &str) -> u64 {
    r.get(key)
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("RESULT has no number {key}: {r:?}\n{text}"))
}

fn field<'a>(r: &'a HashMap<String, String>, key: &str) -> &'a str {
    r.get(key).map(String::as_str).unwrap_or("")
}

/// The drawing of one drill phase, read back with python3's XML parser (so it is well-formed):
/// (poll marks, distinct "box state" bands, vertical line classes).
fn svg_marks(path: &str) -> (u64, Vec<String>, Vec<String>) {
    let script = r#"
import sys, xml.etree.ElementTree as E
ns = "{http://www.w3.org/2000/svg}"
root = E.parse(sys.argv[1]).getroot()
polls = [e for e in root.iter(ns + "rect") if e.get("class", "").startswith("poll ")]
print(len(polls))
print(" ".join(sorted({"/".join(e.get("class").split()[1:3]) for e in root.iter(ns + "rect") if e.get("class", "").startswith("band ")})))
print(" ".join(sorted({e.get("class") for e in root.iter(ns + "line") if e.get("class")})))
"#;
    let out = Command::new("python3")
        .args(["-c", script, path])
        .output()
        .expect("python3");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{path} is not well-formed SVG: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut lines = text.lines();
    let polls = lines.next().and_then(|l| l.parse().ok()).unwrap_or(0);
    let words = |l: Option<&str>| -> Vec<String> {
        l.unwrap_or("")
            .split_whitespace()
            .map(String::from)
            .collect()
    };
    let bands = words(lines.next());
    let marks = words(lines.next());
    (polls, bands, marks)
}

/// The phase's SVG holds one mark per poll the client counted, both boxes' bands with the
/// states the phase went through, and the VIP/GARP lines.
fn check_svg(r: &HashMap<String, String>, bands: &[&str], marks: &[&str], text: &str) {
    let path = field(r, "svg");
    assert!(Path::new(path).is_file(), "no SVG at {path:?}:\n{text}");
    let (polls, have_bands, have_marks) = svg_marks(path);
    assert_eq!(
        polls,
        num(r, "requests", text),
        "poll marks in {path}:\n{text}"
    );
    assert_eq!(polls, num(r, "polls", text), "{text}");
    for b in bands {
        assert!(
            have_bands.iter().any(|h| h == b),
            "{path}: no band {b} in {have_bands:?}"
        );
    }
    for m in marks {
        assert!(
            have_marks.iter().any(|h| h == m),
            "{path}: no {m} line in {have_marks:?}"
        );
    }
}

/// What the drill's client polls.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Proto {
    /// http://VIP:8080/, a new connection per poll.
    Http,
    /// https://VIP/, a new TLS connection per poll.
    Https,
    /// http://VIP:8081/ through the tcp frontend, one connection kept while it answers.
    Tcp,
}

/// Runs one drill and checks its figures; returns (failover outage, failback outage) in ms.
fn drill(lab: &mut ScriptLab, graceful: bool, bounds: Bounds) -> (u64, u64) {
    drill_with(lab, graceful, Proto::Http, bounds).0
}

/// As [`drill`] over `proto`; also returns the failover phase's RESULT fields.
fn drill_with(
    lab: &mut ScriptLab,
    graceful: bool,
    proto: Proto,
    bounds: Bounds,
) -> ((u64, u64), HashMap<String, String>) {
    let (mode, bound) = if graceful {
        ("graceful", bounds.graceful)
    } else {
        ("hard", bounds.hard)
    };
    let mut args = vec!["drill"];
    if graceful {
        args.push("--graceful");
    }
    match proto {
        Proto::Http => {}
        Proto::Https => args.push("--https"),
        Proto::Tcp => args.push("--tcp"),
    }
    let args = &args[..];
    let (ok, text) = lab.run(args, Duration::from_secs(150));
    println!("---- deploy/lab.sh {} ----\n{text}", args.join(" "));
    assert!(ok, "drill ({mode}) failed:\n{text}");

    let f = result(&text, "failover");
    assert_eq!(field(&f, "mode"), mode, "{text}");
    let proto_name = format!("{proto:?}").to_lowercase();
    assert_eq!(field(&f, "proto"), proto_name, "{text}");
    assert_eq!(
        (field(&f, "old"), field(&f, "new")),
        ("lb1", "lb2"),
        "{text}"
    );
    let outage = num(&f, "outage_ms", &text);
    let master = num(&f, "master_ms", &text);
    println!(
        "FIGURE {mode} failover: client outage {outage} ms ({} failed requests, first answer via lb2 at {} ms), lb2 MASTER after {master} ms, VIP {} ms, GARP {} ms, client ARP {} ms (bound {bound} ms)",
        num(&f, "failed", &text),
        field(&f, "switch_ms"),
        field(&f, "vip_ms"),
        field(&f, "garp_ms"),
        field(&f, "client_arp_ms"),
    );
    assert_eq!(num(&f, "bound_ms", &text), bound, "{text}");
    if graceful {
        // The stopping MASTER keeps serving until the new one announces itself: at most a
        // request or two in flight at the switch may fail, instead of Skew_Time of outage.
        assert!(
            outage <= GRACEFUL_HANDOVER_MS,
            "graceful outage {outage} ms > {GRACEFUL_HANDOVER_MS} ms (hand-over):\n{text}"
        );
        assert!(
            text.contains("(VI_1) 198.51.100.12 is MASTER now"),
            "no hand-over line in lb1's syslog:\n{text}"
        );
        // lb1 held the VIP well past lb2's first gratuitous ARP, which moves the clients
        // (before the fix it let go within a few ms of it, sometimes before it: a gap with
        // the VIP on neither box, where a poll's SYN was lost).
        let gone = num(&f, "vip_gone_ms", &text);
        let garp = num(&f, "garp_ms", &text);
        println!(
            "FIGURE {mode} hand-over: lb1 let the VIP go at +{gone} ms, lb2's first GARP at +{garp} ms, both held it {} ms",
            field(&f, "vip_overlap_ms")
        );
        assert!(
            gone >= garp + 100,
            "lb1 let the VIP go at +{gone} ms, lb2's GARP at +{garp} ms:\n{text}"
        );
    } else {
        assert!(
            num(&f, "failed", &text) >= 1,
            "the client saw no failure at all:\n{text}"
        );
    }
    assert!(
        outage <= bound,
        "{mode} outage {outage} ms > {bound} ms:\n{text}"
    );
    assert!(
        master <= bound,
        "{mode}: lb2 MASTER after {master} ms > {bound} ms:\n{text}"
    );
    assert_eq!(field(&f, "recovered"), "yes", "{text}");
    assert_eq!(
        num(&f, "failed_after_recovery", &text),
        0,
        "a request failed after the new master answered:\n{text}"
    );
    if proto == Proto::Tcp {
        // The long-lived connection broke with the old MASTER (its socket closed by the kill,
        // or reset by the new MASTER once the client's ARP moved), and a new connection
        // succeeded within a poll of the new MASTER; it was kept from then on.
        let broke = num(&f, "stream_broke_ms", &text);
        let fresh = num(&f, "new_connection_ms", &text);
        println!(
            "FIGURE tcp {mode} failover: stream broke at +{broke} ms, first new connection at +{fresh} ms, lb2 MASTER at +{master} ms, {} connections",
            field(&f, "connections")
        );
        if graceful {
            assert!(broke + 200 >= master && broke <= master + 300, "{text}");
        } else {
            assert!(
                broke <= 300,
                "stream broke {broke} ms after the kill:\n{text}"
            );
        }
        assert!(
            fresh <= master + 300 && fresh <= bound,
            "new connection {fresh} ms, MASTER {master} ms:\n{text}"
        );
        assert_eq!(
            num(&f, "connections", &text),
            num(&f, "failed", &text) + 1,
            "a connection per failed poll plus the first, then one kept:\n{text}"
        );
    }
    if graceful && num(&f, "failed", &text) == 0 {
        // No request lost: the client's answers moved from lb1 to lb2 while it polled.
        let switch = num(&f, "switch_ms", &text);
        assert!(
            switch <= bound,
            "graceful: first answer via lb2 {switch} ms after SIGTERM > {bound} ms:\n{text}"
        );
    } else {
        assert_eq!(num(&f, "runs", &text), 1, "{text}");
    }
    // The GARP follows the MASTER transition at once (the syslog stamp is the receive time
    // of the line, the capture stamp the kernel's: allow a little either way).
    let garp = num(&f, "garp_ms", &text);
    assert!(
        garp + 100 >= master && garp <= master + 500,
        "GARP at {garp} ms, MASTER at {master} ms:\n{text}"
    );

    check_svg(
        &f,
        &["lb1/MASTER", "lb1/stopped", "lb2/BACKUP", "lb2/MASTER"],
        &["t0", "vip", "garp", "mark"],
        &text,
    );
    // An empty syslog of the killed box says why it is empty.
    assert!(
        !text.contains("   syslog of lb1:\n   syslog of lb2:"),
        "a bare empty syslog section:\n{text}"
    );
    let b = result(&text, "failback");
    let outage_back = num(&b, "outage_ms", &text);
    println!(
        "FIGURE {mode} failback: lb1 MASTER again {} ms after its restart, client outage {outage_back} ms ({} failed requests), MASTERs {} (bound {bound} ms)",
        field(&b, "master_ms"),
        num(&b, "failed", &text),
        field(&b, "masters"),
    );
    assert_eq!(field(&b, "master"), "lb1", "{text}");
    assert_eq!(
        num(&b, "masters", &text),
        1,
        "not exactly one MASTER:\n{text}"
    );
    assert!(
        outage_back <= bound,
        "{mode} failback outage {outage_back} ms > {bound} ms:\n{text}"
    );
    assert_eq!(field(&b, "recovered"), "yes", "{text}");
    assert_eq!(
        num(&b, "failed_after_recovery", &text),
        0,
        "a request failed after the failback:\n{text}"
    );
    assert!(num(&b, "runs", &text) <= 1, "{text}");
    check_svg(
        &b,
        &["lb1/stopped", "lb1/MASTER", "lb2/MASTER", "lb2/BACKUP"],
        &["t0", "vip", "garp"],
        &text,
    );
    // Preemption takes Master_Down_Interval of lb1 after its restart (it discards lb2's
    // lower-priority adverts), plus its start-up.
    let back = num(&b, "master_ms", &text);
    assert!(
        back <= bounds.hard + 2000,
        "failback took {back} ms:\n{text}"
    );
    ((outage, outage_back), f)
}

/// The failed polls of a drill's failover phase: (ms from the poller's start, reason).
fn failed_polls(f: &HashMap<String, String>) -> Vec<(String, String)> {
    let path = Path::new(field(f, "files")).join("poll-failover.txt");
    let text = std::fs::read_to_string(&path).unwrap_or_default();
    text.lines()
        .filter_map(|l| l.strip_prefix("FAIL at="))
        .map(|l| {
            let mut w = l.splitn(4, ' ');
            let _at = w.next();
            let t = w.next().unwrap_or("").to_owned();
            let _seq = w.next();
            (t, w.next().unwrap_or("").to_owned())
        })
        .collect()
}

/// Client-side checks at the VIP's edge from the client namespace: :80 answers 302 to
/// https, :443 serves the page with the lab CA's certificate (and curl follows the redirect
/// to it), :8080 serves plain HTTP.
fn check_edge(name: &str) {
    let ca = format!("/run/{name}/tls/ca.pem");
    let curl = |args: &[&str]| -> String {
        let out = Command::new("ip")
            .args([
                "netns",
                "exec",
                &format!("{name}-client"),
                "curl",
                "-sS",
                "-m",
                "5",
            ])
            .args(args)
            .output()
            .expect("curl");
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    };
    let head = curl(&["-I", "http://198.51.100.100/"]);
    assert!(head.starts_with("HTTP/1.1 302"), "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains("location: https://198.51.100.100/\r\n"),
        "{head}"
    );
    let page = curl(&["--cacert", &ca, "https://198.51.100.100/"]);
    assert!(page.contains(" via lb1\n"), "{page}");
    let followed = curl(&[
        "-L",
        "--cacert",
        &ca,
        "-w",
        "%{url_effective} %{http_version}",
        "http://198.51.100.100/x",
    ]);
    assert!(
        followed.contains(" via lb1\n") && followed.ends_with("https://198.51.100.100/x 2"),
        "curl -L from http: {followed}"
    );
    // Without the CA the certificate does not verify: it really is the lab's TLS.
    let strict = curl(&["https://198.51.100.100/"]);
    assert!(strict.contains("SSL certificate problem"), "{strict}");
    let plain = curl(&["http://198.51.100.100:8080/"]);
    assert!(plain.contains(" via lb1\n"), "{plain}");
}

/// Seed 002's pass-through in the lab: `openssl s_client` in the client namespace sees the
/// certificate of the server the SNI picked (not the balancer's), verified by the lab CA;
/// no SNI goes to default_backend; curl through it gets the server's own TLS page.
fn check_passthrough(name: &str) {
    let ca = format!("/run/{name}/tls/ca.pem");
    let s_client = |sni: Option<&str>| -> String {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &format!("{name}-client"), "timeout", "10"])
            .args([
                "openssl",
                "s_client",
                "-connect",
                "198.51.100.100:8443",
                "-CAfile",
                &ca,
            ]);
        match sni {
            Some(n) => c.args(["-servername", n]),
            None => c.arg("-noservername"),
        };
        let out = c.stdin(Stdio::null()).output().expect("openssl s_client");
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    let subject = |text: &str| -> String {
        assert!(text.contains("Verify return code: 0 (ok)"), "{text}");
        text.lines()
            .find_map(|l| l.strip_prefix("subject="))
            .unwrap_or_else(|| panic!("no subject:\n{text}"))
            .trim()
            .to_owned()
    };
    assert_eq!(
        subject(&s_client(Some("admin.lab.test"))),
        "CN = admin.lab.test"
    );
    assert_eq!(
        subject(&s_client(Some("ADMIN.lab.test"))),
        "CN = admin.lab.test"
    );
    // app.lab.test: the default pool, round robin over web1 and web2, each its own certificate.
    let mut seen: Vec<String> = (0..4)
        .map(|_| subject(&s_client(Some("app.lab.test"))))
        .collect();
    seen.sort();
    seen.dedup();
    assert_eq!(seen, ["CN = web1.lab.test", "CN = web2.lab.test"]);
    let none = subject(&s_client(None));
    assert!(
        none == "CN = web1.lab.test" || none == "CN = web2.lab.test",
        "no SNI -> default_backend app: {none}"
    );
    let out = Command::new("ip")
        .args([
            "netns",
            "exec",
            &format!("{name}-client"),
            "curl",
            "-sS",
            "-m",
            "5",
        ])
        .args([
            "--cacert",
            &ca,
            "--resolve",
            "admin.lab.test:8443:198.51.100.100",
        ])
        .arg("https://admin.lab.test:8443/")
        .output()
        .expect("curl");
    let page = String::from_utf8_lossy(&out.stdout);
    assert!(
        page.starts_with("admin on web2 via lb1\nTLS by web2 itself (admin.lab.test)"),
        "{page}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The balancer logged the pass-through in tcplog form, with the pool SNI picked. A
    // session's line comes when both sides have closed, which may be after the client saw its
    // certificate: wait for them (bounded).
    let log_path = format!("/run/{name}/lb1/syslog.log");
    let read_log = || std::fs::read_to_string(&log_path).unwrap_or_default();
    let logged = |log: &str| {
        log.contains(" tls-in admin/adm1 ")
            && log.contains(" tls-in app/web1 ")
            && log.contains(" tls-in app/web2 ")
    };
    testkit::wait_until(Duration::from_secs(10), || logged(&read_log()));
    let log = read_log();
    assert!(log.contains(" tls-in admin/adm1 "), "{log}");
    assert!(
        log.contains(" tls-in app/web1 ") && log.contains(" tls-in app/web2 "),
        "{log}"
    );
}

#[test]
fn lab_comes_up_and_the_drill_measures_failover_and_failback_within_the_rfc_bounds() {
    let test = "lab_drill";
    if !require_root(test) {
        return;
    }
    for tool in ["nginx", "rsyslogd", "tcpdump", "curl", "openssl"] {
        // Root's PATH under a CI runner may lack sbin; deploy/lab.sh adds it itself.
        let in_sbin = ["/usr/sbin", "/sbin"]
            .iter()
            .any(|d| Path::new(d).join(tool).is_file());
        if !in_sbin && !require_tool(test, tool) {
            return;
        }
    }
    let name = format!("vld{}", std::process::id());
    let mut lab = ScriptLab::new("lab.sh", name.clone(), "lab-drill");

    let (ok, text) = lab.run(&[], Duration::from_secs(120));
    println!("---- deploy/lab.sh ----\n{text}");
    assert!(ok, "deploy/lab.sh failed:\n{text}");
    assert!(text.contains("198.51.100.100"), "{text}");
    for cmd in [
        "curl -I http://198.51.100.100/",
        "curl http://198.51.100.100:8080/",
        "openssl s_client -connect 198.51.100.100:8443 -servername admin.lab.test",
    ] {
        assert!(
            text.contains(&format!("ip netns exec {name}-client {cmd}")),
            "{text}"
        );
    }
    assert_eq!(namespaces_with_prefix(&name).len(), 6, "br + 5 hosts");
    let state = PathBuf::from(format!("/run/{name}"));
    for f in ["lb1/vrrplb.yaml", "lb2/vrrplb.yaml", "pids/vrrplb-lb1.pid"] {
        assert!(state.join(f).exists(), "{f} missing in {}", state.display());
    }
    // The example configs with only the lab's paths changed.
    let cfg = std::fs::read_to_string(state.join("lb1/vrrplb.yaml")).expect("lb1 config");
    assert!(cfg.contains(&format!("syslog_socket: /run/{name}/lb1/log.sock")));
    assert!(cfg.contains(&format!("/usr/bin/test ! -e /run/{name}/lb1/maintenance")));
    assert!(
        cfg.contains("    bind: [\"198.51.100.100:8080\"]     # the VIP"),
        "{cfg}"
    );
    check_edge(&name);

    let (ok, status) = lab.run(&["status"], Duration::from_secs(30));
    println!("---- deploy/lab.sh status ----\n{status}");
    assert!(ok && status.contains("MASTER: lb1\n"), "{status}");
    assert!(
        status.contains("lb2 198.51.100.12: BACKUP priority 100"),
        "{status}"
    );

    // The balancer logs transitions to the box's syslog with keepalived's words.
    let log1 = std::fs::read_to_string(state.join("lb1/syslog.log")).unwrap_or_default();
    assert!(log1.contains("(VI_1) Entering MASTER STATE"), "{log1}");

    let (hard, hard_back) = drill(&mut lab, false, V2);
    let (graceful, graceful_back) = drill(&mut lab, true, V2);
    // The same figures hold over HTTPS (the boxes serve VIP:443 with the lab's certificate).
    let ((https_hard, _), _) = drill_with(&mut lab, false, Proto::Https, V2);
    // A graceful stop over HTTPS, three times: no poll may fail because of the stop itself.
    // Before the stopping MASTER kept its VIP past its successor's first advert, a SYN sent
    // in the ~1-2 ms with the VIP on neither box was lost ("connect: timed out"); a connection
    // accepted just before the drain was closed unanswered ("closed before a response").
    // What cannot be helped without connection state sync (keepalived + HAProxy share it):
    // a handshake in flight at the very moment the client's ARP entry moves is reset by the
    // new MASTER; and on this loaded test machine a poll may take over 200 ms. At most one
    // such failure per drill is tolerated, and each is named.
    let mut failures = Vec::new();
    let mut https_graceful = Vec::new();
    for _ in 0..3 {
        let ((outage, _), f) = drill_with(&mut lab, true, Proto::Https, V2);
        https_graceful.push(outage);
        let failed = failed_polls(&f);
        assert_eq!(failed.len() as u64, num(&f, "failed", ""), "{failed:?}");
        for (t, why) in &failed {
            assert!(
                !why.starts_with("connect:") && !why.contains("closed before a response"),
                "graceful https: a poll failed because of the stop at {t}: {why}"
            );
        }
        assert!(failed.len() <= 1, "graceful https: {failed:?}");
        failures.extend(failed);
    }
    println!(
        "FIGURES https: hard {https_hard} ms, graceful x3 {https_graceful:?} ms, failed polls {failures:?}"
    );
    println!(
        "FIGURES hard {hard} ms (bound {HARD_BOUND_MS}), failback {hard_back} ms; graceful {graceful} ms (bound {GRACEFUL_BOUND_MS}), failback {graceful_back} ms"
    );

    let (ok, status) = lab.run(&["status"], Duration::from_secs(30));
    assert!(ok && status.contains("MASTER: lb1\n"), "{status}");

    // down removes everything, and a second down is a no-op.
    let (ok, text) = lab.run(&["down"], Duration::from_secs(60));
    assert!(ok, "{text}");
    assert!(namespaces_with_prefix(&name).is_empty(), "namespaces left");
    assert!(!Path::new(&state).exists(), "state dir left");
    let (ok, text) = lab.run(&["down"], Duration::from_secs(60));
    assert!(ok && text.contains("nothing to remove"), "{text}");
}

/// `deploy/lab.sh up --advert 100ms`: the same lab in VRRPv3 at 100 ms fails over in about a
/// third of a second (Master_Down_Interval 0.361 s) and hands over gracefully without loss.
#[test]
fn lab_at_100ms_in_v3_fails_over_in_a_third_of_a_second() {
    let test = "lab_drill_v3";
    if !require_root(test) {
        return;
    }
    for tool in ["nginx", "rsyslogd", "tcpdump", "curl", "openssl"] {
        let in_sbin = ["/usr/sbin", "/sbin"]
            .iter()
            .any(|d| Path::new(d).join(tool).is_file());
        if !in_sbin && !require_tool(test, tool) {
            return;
        }
    }
    let name = format!("vl3{}", std::process::id());
    let mut lab = ScriptLab::new("lab.sh", name.clone(), "lab-drill-v3");
    let (ok, text) = lab.run(&["up", "--advert", "100ms"], Duration::from_secs(120));
    println!("---- deploy/lab.sh up --advert 100ms ----\n{text}");
    assert!(ok, "deploy/lab.sh up --advert 100ms failed:\n{text}");
    let cfg = std::fs::read_to_string(format!("/run/{name}/lb1/vrrplb.yaml")).expect("lb1 config");
    assert!(
        cfg.contains("    version: 3\n    advert_int: 100ms\n")
            && cfg.contains("vrrp_realtime_priority: 50")
            && !cfg.contains("auth_pass"),
        "{cfg}"
    );
    let (ok, status) = lab.run(&["status"], Duration::from_secs(30));
    assert!(ok && status.contains("MASTER: lb1\n"), "{status}");
    check_passthrough(&name);

    let bounds = Bounds {
        hard: V3_HARD_BOUND_MS,
        graceful: V3_GRACEFUL_BOUND_MS,
    };
    let (hard, hard_back) = drill(&mut lab, false, bounds);
    let (graceful, graceful_back) = drill(&mut lab, true, bounds);
    // The preempted box keeps serving until the clients moved: no request lost on failback.
    assert_eq!(
        (hard_back, graceful_back),
        (0, 0),
        "a failback lost requests"
    );
    println!(
        "FIGURES v3 100ms: hard {hard} ms (bound {V3_HARD_BOUND_MS}), failback {hard_back} ms; graceful {graceful} ms (bound {V3_GRACEFUL_BOUND_MS}), failback {graceful_back} ms"
    );
    // A long-lived TCP connection through the tcp frontend across a hard failover: it breaks
    // with the MASTER, and a new connection succeeds as soon as lb2 is MASTER.
    let ((tcp_hard, tcp_back), f) = drill_with(&mut lab, false, Proto::Tcp, bounds);
    println!(
        "FIGURES v3 tcp: hard {tcp_hard} ms, stream broke at +{} ms, new connection at +{} ms, failback {tcp_back} ms",
        field(&f, "stream_broke_ms"),
        field(&f, "new_connection_ms")
    );
    // Graceful: the stream lives on through lb1 until the client's ARP entry moves to lb2,
    // which resets it; the next poll's new connection goes to lb2.
    let ((tcp_graceful, _), f) = drill_with(&mut lab, true, Proto::Tcp, bounds);
    println!(
        "FIGURES v3 tcp graceful: {tcp_graceful} ms, stream broke at +{} ms, new connection at +{} ms, lb2 MASTER at +{} ms",
        field(&f, "stream_broke_ms"),
        field(&f, "new_connection_ms"),
        field(&f, "master_ms")
    );
    let (ok, text) = lab.run(&["down"], Duration::from_secs(60));
    assert!(ok, "{text}");
    assert!(namespaces_with_prefix(&name).is_empty(), "namespaces left");
}
