//! The Debian package, end to end: deploy/deb/build.sh builds vrrplb_<version>_<arch>.deb,
//! `apt-get install ./…deb` installs it (files, conffiles, the vrrplb user, a unit that
//! passes `systemd-analyze verify`, an example config `vrrplb check` accepts as that user),
//! and `apt-get purge` leaves nothing behind. Needs root and dpkg/apt; it installs on this
//! machine, so it skips when a vrrplb package, /etc/vrrplb or a vrrplb user is already there.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use testkit::{require_root, require_tool, TempDir};

const BIN: &str = env!("CARGO_BIN_EXE_vrrplb");

const FILES: [&str; 8] = [
    "/usr/bin/vrrplb",
    "/lib/systemd/system/vrrplb.service",
    "/etc/rsyslog.d/30-vrrplb.conf",
    "/etc/logrotate.d/vrrplb",
    "/etc/vrrplb/vrrplb.yaml",
    "/usr/share/doc/vrrplb/README.md",
    "/usr/share/doc/vrrplb/configuration.md",
    "/usr/share/doc/vrrplb/examples/lb2.yaml",
];

fn run(cmd: &mut Command) -> Output {
    let out = cmd.output().expect("spawn");
    println!(
        "$ {cmd:?}: {:?}\n{}{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn installed() -> bool {
    Command::new("dpkg-query")
        .args(["-W", "-f=${Status}", "vrrplb"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).contains("installed"))
        .unwrap_or(false)
}

fn user_exists(name: &str) -> bool {
    Command::new("getent")
        .args(["passwd", name])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

fn group_exists(name: &str) -> bool {
    Command::new("getent")
        .args(["group", name])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

/// apt-get waits for the dpkg lock (other tests or the machine may hold it) up to 5 minutes.
fn apt(args: &[&str]) -> Output {
    run(Command::new("apt-get")
        .args(["-y", "-q", "-o", "DPkg::Lock::Timeout=300"])
        .args(args)
        .env("DEBIAN_FRONTEND", "noninteractive"))
}

/// Purges the package if the test stops half-way.
struct Purge;

impl Drop for Purge {
    fn drop(&mut self) {
        if installed() {
            let _ = apt(&["purge", "vrrplb"]);
        }
    }
}

#[test]
fn the_deb_installs_verifies_and_purges_cleanly() {
    if !require_root("deb_package")
        || !require_tool("deb_package", "dpkg-deb")
        || !require_tool("deb_package", "apt-get")
        || !require_tool("deb_package", "systemd-analyze")
    {
        return;
    }
    if installed() || Path::new("/etc/vrrplb").exists() || user_exists("vrrplb") {
        println!("deb_package: skipped: this machine already has a vrrplb package, /etc/vrrplb or a vrrplb user (not ours to purge)");
        return;
    }
    let dir = TempDir::new("ops-deb");
    let built = run(Command::new("deploy/deb/build.sh")
        .arg(dir.path())
        .env("VRRPLB_BIN", BIN));
    assert!(built.status.success(), "build.sh failed:\n{}", text(&built));
    let deb = PathBuf::from(String::from_utf8_lossy(&built.stdout).trim().to_owned());
    let version = env!("CARGO_PKG_VERSION");
    let arch = String::from_utf8_lossy(
        &Command::new("dpkg")
            .arg("--print-architecture")
            .output()
            .expect("dpkg")
            .stdout,
    )
    .trim()
    .to_owned();
    assert_eq!(
        deb.file_name().and_then(|n| n.to_str()),
        Some(format!("vrrplb_{version}_{arch}.deb").as_str())
    );
    assert!(deb.is_file(), "{deb:?}");
    let info = text(&run(Command::new("dpkg-deb").arg("--info").arg(&deb)));
    assert!(info.contains("Package: vrrplb"), "{info}");
    assert!(info.contains(&format!("Version: {version}")), "{info}");

    let _purge = Purge;
    let inst = apt(&[
        "install",
        "--no-install-recommends",
        &deb.display().to_string(),
    ]);
    assert!(inst.status.success(), "install failed:\n{}", text(&inst));
    assert!(installed());
    for f in FILES {
        assert!(Path::new(f).is_file(), "{f} not installed");
    }
    let conffiles = text(&run(Command::new("dpkg-query").args([
        "-W",
        "-f=${Conffiles}",
        "vrrplb",
    ])));
    for c in [
        "/etc/vrrplb/vrrplb.yaml",
        "/etc/rsyslog.d/30-vrrplb.conf",
        "/etc/logrotate.d/vrrplb",
    ] {
        assert!(conffiles.contains(c), "{c} is not a conffile:\n{conffiles}");
    }
    // The system user and the config only it (and root) can read.
    let pw = text(&run(Command::new("getent").args(["passwd", "vrrplb"])));
    let fields: Vec<&str> = pw.trim().split(':').collect();
    assert_eq!(fields.len(), 7, "{pw}");
    let uid: u32 = fields[2].parse().expect("uid");
    assert!(uid < 1000, "not a system user: {pw}");
    assert_eq!(fields[6], "/usr/sbin/nologin", "{pw}");
    let stat = text(&run(Command::new("stat").args([
        "-c",
        "%a %U %G",
        "/etc/vrrplb/vrrplb.yaml",
    ])));
    assert_eq!(stat.trim(), "640 root vrrplb");
    // The unit: the same contract as deploy/vrrplb.service, with the package's paths.
    let unit = std::fs::read_to_string("/lib/systemd/system/vrrplb.service").expect("unit");
    for line in [
        "User=vrrplb",
        "ExecStartPre=/usr/bin/vrrplb check -c /etc/vrrplb/vrrplb.yaml",
        "ExecStart=/usr/bin/vrrplb run -c /etc/vrrplb/vrrplb.yaml --log syslog",
        "AmbientCapabilities=CAP_NET_RAW CAP_NET_ADMIN CAP_NET_BIND_SERVICE",
        "CapabilityBoundingSet=CAP_NET_RAW CAP_NET_ADMIN CAP_NET_BIND_SERVICE",
    ] {
        assert!(
            unit.lines().any(|l| l.trim() == line),
            "installed unit lacks `{line}`"
        );
    }
    assert!(!unit.contains("/usr/local/"), "{unit}");
    let verify = run(Command::new("systemd-analyze")
        .args(["verify", "/lib/systemd/system/vrrplb.service"])
        .env("SYSTEMD_LOG_LEVEL", "notice"));
    assert!(verify.status.success(), "{}", text(&verify));
    assert!(
        !text(&verify).contains("vrrplb.service:"),
        "systemd-analyze has remarks:\n{}",
        text(&verify)
    );
    // What ExecStartPre runs, as the unit's user.
    let check = run(Command::new("runuser").args([
        "-u",
        "vrrplb",
        "--",
        "/usr/bin/vrrplb",
        "check",
        "-c",
        "/etc/vrrplb/vrrplb.yaml",
    ]));
    assert!(check.status.success(), "{}", text(&check));
    assert!(text(&check).contains("Configuration file is valid"));

    // Purge: nothing of the package is left.
    let purge = apt(&["purge", "vrrplb"]);
    assert!(purge.status.success(), "purge failed:\n{}", text(&purge));
    assert!(!installed(), "still installed after purge");
    for f in FILES {
        assert!(!Path::new(f).exists(), "{f} left after purge");
    }
    assert!(!Path::new("/etc/vrrplb").exists(), "/etc/vrrplb left");
    assert!(!user_exists("vrrplb"), "user vrrplb left");
    assert!(!group_exists("vrrplb"), "group vrrplb left");
    let listed = Command::new("dpkg-query")
        .args(["-W", "vrrplb"])
        .output()
        .expect("dpkg-query");
    assert!(!listed.status.success(), "dpkg still knows vrrplb");
}
