//! The files of deploy/ a two-box install uses: the systemd unit passes `systemd-analyze
//! verify` and its three capabilities are enough for the daemon as an unprivileged user, the
//! rsyslog snippet routes vrrplb's lines (and only them) to their own file, and logrotate
//! accepts the rotation file.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;
use testkit::{require_root, wait_until, Lab, TempDir};

const BIN: &str = env!("CARGO_BIN_EXE_vrrplb");

fn repo_file(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(repo_file(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// The program's path, looked up on PATH and in the sbin directories (root's PATH may lack
/// them under a CI runner). None: prints a skip line, or panics when VRRPLB_REQUIRE_NETNS=1.
fn tool(test: &str, program: &str, package: &str) -> Option<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default();
    dirs.extend(["/usr/sbin", "/usr/bin", "/sbin", "/bin"].map(PathBuf::from));
    if let Some(p) = dirs.iter().map(|d| d.join(program)).find(|p| p.is_file()) {
        return Some(p);
    }
    if std::env::var("VRRPLB_REQUIRE_NETNS").as_deref() == Ok("1") {
        panic!("{test}: needs `{program}` (Debian package {package}), which is not installed");
    }
    eprintln!("SKIP {test}: `{program}` (Debian package {package}) is not installed");
    None
}

/// `Key=value` lines of the unit's [Service] section, in order.
fn unit_values(unit: &str, key: &str) -> Vec<String> {
    unit.lines()
        .map(str::trim)
        .filter_map(|l| l.strip_prefix(key)?.strip_prefix('='))
        .map(str::to_owned)
        .collect()
}

#[test]
fn the_systemd_unit_passes_systemd_analyze_verify() {
    let Some(analyze) = tool("systemd_unit_verify", "systemd-analyze", "systemd") else {
        return;
    };
    let unit = read("deploy/vrrplb.service");
    // The contract of the unit, as the README describes it.
    for line in [
        "Type=notify",
        "NotifyAccess=main",
        "WatchdogSec=10s",
        "User=vrrplb",
        "ExecStartPre=/usr/local/bin/vrrplb check -c /etc/vrrplb/vrrplb.yaml",
        "ExecStart=/usr/local/bin/vrrplb run -c /etc/vrrplb/vrrplb.yaml --log syslog",
        "ExecReload=/bin/kill -HUP $MAINPID",
        "Restart=on-failure",
        "RuntimeDirectory=vrrplb",
        "AmbientCapabilities=CAP_NET_RAW CAP_NET_ADMIN CAP_NET_BIND_SERVICE",
        "CapabilityBoundingSet=CAP_NET_RAW CAP_NET_ADMIN CAP_NET_BIND_SERVICE",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "ProtectHome=yes",
        "PrivateTmp=yes",
    ] {
        assert!(
            unit.lines().any(|l| l.trim() == line),
            "deploy/vrrplb.service lacks `{line}`"
        );
    }
    // verify checks that the commands exist: point them at the binary under test.
    let dir = TempDir::new("unit");
    let copy = dir.join("vrrplb.service");
    std::fs::write(&copy, unit.replace("/usr/local/bin/vrrplb", BIN)).expect("write unit");
    let out = Command::new(&analyze)
        .arg("verify")
        .arg(&copy)
        .env("SYSTEMD_LOG_LEVEL", "notice")
        .output()
        .expect("run systemd-analyze");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    println!(
        "systemd-analyze verify: exit {:?}\n{text}",
        out.status.code()
    );
    assert!(
        out.status.success(),
        "systemd-analyze verify failed:\n{text}"
    );
    assert!(
        !text.contains("vrrplb.service:"),
        "systemd-analyze has remarks about the unit:\n{text}"
    );
}

#[test]
fn the_units_capabilities_are_enough_for_vip_vrrp_and_port_80_as_an_unprivileged_user() {
    let test = "unit_capabilities";
    if !require_root(test) {
        return;
    }
    let Some(setpriv) = tool(test, "setpriv", "util-linux") else {
        return;
    };
    let unit = read("deploy/vrrplb.service");
    let ambient = unit_values(&unit, "AmbientCapabilities");
    assert_eq!(ambient.len(), 1, "{ambient:?}");
    assert_eq!(
        unit_values(&unit, "CapabilityBoundingSet"),
        ambient,
        "bounding set and ambient set differ"
    );
    // CAP_NET_RAW CAP_NET_ADMIN -> +net_raw,+net_admin
    let caps: Vec<String> = ambient[0]
        .split_whitespace()
        .map(|c| format!("+{}", c.trim_start_matches("CAP_").to_ascii_lowercase()))
        .collect();
    let caps = format!("-all,{}", caps.join(","));

    let lab = Lab::new(&[("lb", "198.51.100.11/24"), ("client", "198.51.100.50/24")]);
    let dir = TempDir::new("unit-caps");
    // The service user must reach the binary and the config whatever the clone's and the
    // umask's permissions: a world-readable directory with a copy of the binary.
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &Path, m: u32| {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(m)).expect("chmod")
    };
    mode(dir.path(), 0o755);
    let bin = dir.join("vrrplb");
    std::fs::copy(BIN, &bin).expect("copy the binary");
    mode(&bin, 0o755);
    // Like RuntimeDirectory=: a directory the service user owns, for the control socket.
    let run = dir.join("run");
    std::fs::create_dir(&run).expect("mkdir run");
    let nobody = nix::unistd::Uid::from_raw(65534);
    let nogroup = nix::unistd::Gid::from_raw(65534);
    nix::unistd::chown(&run, Some(nobody), Some(nogroup)).expect("chown run");
    let cfg = dir.join("vrrplb.yaml");
    std::fs::write(
        &cfg,
        format!(
            "global:\n  node: unitcaps\n  control_socket: {}/vrrplb.sock\n  log: {{ target: stderr }}\n\
             vrrp_instances:\n  - name: VI_1\n    interface: eth0\n    virtual_router_id: 51\n    priority: 101\n    virtual_ipaddress: [198.51.100.100/24]\n\
             frontends:\n  - name: www\n    bind: [\"198.51.100.100:80\"]\n    gate: [VI_1]\n    default_backend: web\n\
             backends:\n  - name: web\n    retries: 0\n    servers:\n      - {{ name: web1, address: \"198.51.100.11:9\" }}\n",
            run.display()
        ),
    )
    .expect("write config");
    mode(&cfg, 0o644);
    let log = dir.join("vrrplb.log");
    let mut cmd = lab.host("lb").command(setpriv.to_str().expect("path"));
    cmd.args([
        "--reuid=65534",
        "--regid=65534",
        "--clear-groups",
        &format!("--inh-caps={caps}"),
        &format!("--ambient-caps={caps}"),
        &format!("--bounding-set={caps}"),
        "--no-new-privs",
        "--",
        bin.to_str().expect("path"),
        "run",
        "-c",
    ])
    .arg(&cfg)
    .stdout(Stdio::null())
    .stderr(Stdio::from(std::fs::File::create(&log).expect("log")));
    let pid = lab.host("lb").spawn(cmd);
    let log_text = || std::fs::read_to_string(&log).unwrap_or_default();

    let master = wait_until(Duration::from_secs(8), || {
        lab.host("lb").has_address("198.51.100.100")
    });
    assert!(master, "no VIP as an unprivileged user:\n{}", log_text());
    assert!(
        wait_until(Duration::from_secs(3), || log_text()
            .contains("listening frontend=www")),
        "{}",
        log_text()
    );
    // The frontend on port 80 answers (503: the only server refuses), the VRRP adverts go out.
    let out = lab.host("client").exec(&[
        "curl",
        "-s",
        "-m",
        "3",
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        "http://198.51.100.100/",
    ]);
    let code = String::from_utf8_lossy(&out.stdout).into_owned();
    let status = Command::new(BIN)
        .args(["status", "-c"])
        .arg(&cfg)
        .output()
        .expect("status");
    let status = String::from_utf8_lossy(&status.stdout).into_owned();
    let caps_seen = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let effective: Vec<&str> = caps_seen
        .lines()
        .filter(|l| l.starts_with("Cap") || l.starts_with("Uid") || l.starts_with("NoNewPrivs"))
        .collect();
    println!("as uid 65534 with {caps}: HTTP {code}; {effective:?}\n{status}");
    lab.host("lb").signal(pid, libc::SIGTERM);
    let exit = lab.host("lb").wait_exit(pid, Duration::from_secs(10));
    let text = log_text();
    assert_eq!(code, "503", "the VIP's port 80 did not answer:\n{text}");
    assert!(
        status.contains("instance VI_1 state MASTER"),
        "{status}\n{text}"
    );
    assert!(
        effective.iter().any(|l| l.starts_with("Uid:\t65534")),
        "{effective:?}"
    );
    assert!(
        !text.contains("ERROR"),
        "errors as an unprivileged user:\n{text}"
    );
    assert!(exit.is_some_and(|s| s.success()), "exit {exit:?}\n{text}");
    assert!(
        !lab.host("lb").has_address("198.51.100.100"),
        "VIP left after SIGTERM"
    );
}

#[test]
fn the_rsyslog_snippet_sends_vrrplb_lines_and_only_them_to_their_own_file() {
    let test = "rsyslog_snippet";
    let (Some(rsyslogd), Some(logger)) = (
        tool(test, "rsyslogd", "rsyslog"),
        tool(test, "logger", "bsdutils"),
    ) else {
        return;
    };
    let snippet = read("deploy/rsyslog/30-vrrplb.conf");
    assert!(
        snippet.contains("file=\"/var/log/vrrplb.log\""),
        "{snippet}"
    );
    let dir = TempDir::new("rsyslog-snippet");
    let own = dir.join("vrrplb.log");
    let other = dir.join("other.log");
    let sock = dir.join("log.sock");
    std::fs::write(
        dir.join("30-vrrplb.conf"),
        snippet.replace("/var/log/vrrplb.log", own.to_str().expect("path")),
    )
    .expect("write snippet");
    let conf = dir.join("rsyslog.conf");
    std::fs::write(
        &conf,
        format!(
            "global(workDirectory=\"{d}\")\n\
             module(load=\"imuxsock\" SysSock.Use=\"off\")\n\
             input(type=\"imuxsock\" Socket=\"{s}\")\n\
             include(file=\"{d}/30-vrrplb.conf\")\n\
             *.* action(type=\"omfile\" file=\"{o}\")\n",
            d = dir.path().display(),
            s = sock.display(),
            o = other.display()
        ),
    )
    .expect("write rsyslog.conf");
    let check = Command::new(&rsyslogd)
        .args(["-N1", "-f"])
        .arg(&conf)
        .output()
        .expect("rsyslogd -N1");
    assert!(
        check.status.success(),
        "rsyslogd -N1: {}",
        String::from_utf8_lossy(&check.stderr)
    );
    let mut rsyslog = Command::new(&rsyslogd)
        .args(["-n", "-f"])
        .arg(&conf)
        .arg("-i")
        .arg(dir.join("rsyslogd.pid"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start rsyslogd");
    struct Kill<'a>(&'a mut std::process::Child);
    impl Drop for Kill<'_> {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let _guard = Kill(&mut rsyslog);
    assert!(
        wait_until(Duration::from_secs(10), || sock.exists()),
        "rsyslog socket never appeared"
    );
    let send = |tag: &str, msg: &str| {
        let st = Command::new(&logger)
            .arg("-u")
            .arg(&sock)
            .args(["-t", tag, "--id=4242", msg])
            .status()
            .expect("logger");
        assert!(st.success(), "logger failed");
    };
    send("vrrplb", "(VI_1) Entering MASTER STATE");
    send("sshd", "Accepted publickey for someone");
    send("vrrplb", "(VI_1) Entering BACKUP STATE");
    let read = |p: &Path| std::fs::read_to_string(p).unwrap_or_default();
    assert!(
        wait_until(Duration::from_secs(10), || read(&own)
            .contains("Entering BACKUP STATE")
            && read(&other).contains("Accepted publickey")),
        "own: {}\nother: {}",
        read(&own),
        read(&other)
    );
    let (own_text, other_text) = (read(&own), read(&other));
    println!("vrrplb.log:\n{own_text}other.log:\n{other_text}");
    assert!(own_text.contains("vrrplb[4242]: (VI_1) Entering MASTER STATE"));
    assert!(!own_text.contains("sshd"), "{own_text}");
    assert!(
        !other_text.contains("vrrplb"),
        "`stop` did not stop: {other_text}"
    );
}

#[test]
fn logrotate_accepts_the_rotation_file() {
    let Some(logrotate) = tool("logrotate_file", "logrotate", "logrotate") else {
        return;
    };
    let conf = read("deploy/logrotate/vrrplb");
    assert!(conf.contains("/var/log/vrrplb.log {"), "{conf}");
    let dir = TempDir::new("logrotate");
    let log = dir.join("vrrplb.log");
    std::fs::write(&log, "line\n").expect("write log");
    let copy = dir.join("vrrplb");
    std::fs::write(
        &copy,
        conf.replace("/var/log/vrrplb.log", log.to_str().expect("path")),
    )
    .expect("write conf");
    let out = Command::new(&logrotate)
        .arg("-d")
        .arg("-s")
        .arg(dir.join("state"))
        .arg(&copy)
        .output()
        .expect("logrotate -d");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "logrotate -d failed:\n{text}");
    assert!(!text.to_lowercase().contains("error"), "{text}");
    assert!(text.contains(log.to_str().expect("path")), "{text}");
}
