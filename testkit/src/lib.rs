//! Throwaway network topologies for tests: one bridge in its own namespace, N "hosts" (each a
//! namespace with `eth0` on the bridge and `lo` up), processes started inside them and tracked
//! by PID, everything removed on drop, also when the test panics.
//!
//! Names are unique per process and per lab, so tests run in parallel. Only 198.51.100.0/24,
//! 203.0.113.0/24 and 2001:db8::/32 are ever used, and nothing is routed to the host.

pub mod pki;

use std::fs::File;
use std::os::fd::AsRawFd;
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

static NEXT_LAB: AtomicU32 = AtomicU32::new(0);

/// Returns true when the test may run network-namespace code. When not root it prints one line
/// and returns false, unless `VRRPLB_REQUIRE_NETNS=1`, in which case it panics so CI can never
/// pass by skipping.
pub fn require_root(test: &str) -> bool {
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    let have_ip = Command::new("ip")
        .arg("-V")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if root && have_ip {
        return true;
    }
    let why = if root {
        "the `ip` command (iproute2) is missing"
    } else {
        "not running as root"
    };
    if std::env::var("VRRPLB_REQUIRE_NETNS").as_deref() == Ok("1") {
        panic!("{test}: needs network namespaces but {why} (VRRPLB_REQUIRE_NETNS=1)");
    }
    eprintln!("SKIP {test}: needs root and iproute2 for network namespaces ({why})");
    false
}

/// Returns true when `program` is on PATH. When missing it prints one skip line and returns
/// false, unless `VRRPLB_REQUIRE_NETNS=1` (CI), where a missing tool fails the test.
pub fn require_tool(test: &str, program: &str) -> bool {
    let found = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(program).is_file()))
        .unwrap_or(false);
    if found {
        return true;
    }
    if std::env::var("VRRPLB_REQUIRE_NETNS").as_deref() == Ok("1") {
        panic!("{test}: needs `{program}`, which is not installed (VRRPLB_REQUIRE_NETNS=1)");
    }
    eprintln!("SKIP {test}: `{program}` is not installed");
    false
}

/// A fresh temporary directory under /tmp, removed on drop.
pub struct TempDir(pub std::path::PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        let n = NEXT_LAB.fetch_add(1, Ordering::SeqCst);
        let p = std::env::temp_dir().join(format!("vrrplb-{tag}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap_or_else(|e| panic!("mkdir {}: {e}", p.display()));
        TempDir(p)
    }
    pub fn path(&self) -> &std::path::Path {
        &self.0
    }
    pub fn join(&self, name: &str) -> std::path::PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Polls `cond` every 10 ms until it holds or `timeout` passes. Returns whether it held.
pub fn wait_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Runs a command and panics with its stderr when it fails: for topology set-up, where a failure
/// means the test cannot proceed.
pub fn sh(args: &[&str]) -> Output {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .unwrap_or_else(|e| panic!("cannot run {args:?}: {e}"));
    if !out.status.success() {
        panic!(
            "{args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    out
}

/// One host of a lab: a namespace with `eth0` plugged into the lab's bridge.
pub struct Host {
    pub name: String,
    /// The namespace name (for `ip netns exec`).
    pub ns: String,
    /// The address given at creation, with its prefix ("198.51.100.11/24").
    pub cidr: String,
    /// The bridge port facing this host, in the bridge namespace.
    pub bridge_port: String,
    bridge_ns: String,
    children: Mutex<Vec<Child>>,
}

impl Host {
    /// The address without its prefix length.
    pub fn ip(&self) -> &str {
        self.cidr.split('/').next().unwrap_or(&self.cidr)
    }

    /// Builds a command that runs inside this namespace.
    pub fn command(&self, program: &str) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.ns, program]);
        c
    }

    /// Runs a command inside the namespace and returns its output (whatever the exit status).
    pub fn exec(&self, args: &[&str]) -> Output {
        self.command(args[0])
            .args(&args[1..])
            .output()
            .unwrap_or_else(|e| panic!("cannot run {args:?} in {}: {e}", self.ns))
    }

    /// Like [`Host::exec`] but returns stdout as a string and panics on failure.
    pub fn exec_ok(&self, args: &[&str]) -> String {
        let out = self.exec(args);
        if !out.status.success() {
            panic!(
                "{args:?} in {} failed: {}",
                self.ns,
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Starts a process inside the namespace. It is killed (SIGKILL, by PID) when the lab is
    /// dropped unless the test waited for it first. Returns its PID.
    pub fn spawn(&self, mut cmd: Command) -> u32 {
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot spawn {cmd:?} in {}: {e}", self.ns));
        let pid = child.id();
        self.children
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(child);
        pid
    }

    /// Hands a started child back to the caller (for reading its output), removing it from the
    /// kill-on-drop list. The caller then owns its lifetime.
    pub fn take_child(&self, pid: u32) -> Option<Child> {
        let mut kids = self.children.lock().unwrap_or_else(|e| e.into_inner());
        let i = kids.iter().position(|c| c.id() == pid)?;
        Some(kids.swap_remove(i))
    }

    /// Sends a signal to a process this host started (by PID, never by name).
    pub fn signal(&self, pid: u32, sig: i32) {
        // SAFETY: kill(2) with a PID we started; a stale PID only yields ESRCH.
        unsafe {
            libc::kill(pid as i32, sig);
        }
    }

    /// Waits up to `timeout` for a started process to exit; returns its exit code
    /// (None: still running or killed by a signal).
    pub fn wait_exit(&self, pid: u32, timeout: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            {
                let mut kids = self.children.lock().unwrap_or_else(|e| e.into_inner());
                if let Some(c) = kids.iter_mut().find(|c| c.id() == pid) {
                    if let Ok(Some(st)) = c.try_wait() {
                        return Some(st);
                    }
                } else {
                    return None;
                }
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Runs `f` on a new thread that has entered this namespace (setns), and returns its result.
    /// Sockets created inside belong to the namespace; build a current-thread runtime inside for
    /// async code.
    pub fn run_in<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> T {
        let path = format!("/var/run/netns/{}", self.ns);
        std::thread::spawn(move || {
            let file = File::open(&path).unwrap_or_else(|e| panic!("open {path}: {e}"));
            // SAFETY: setns on this thread only, with a valid namespace fd.
            let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
            assert_eq!(rc, 0, "setns {path}: {}", std::io::Error::last_os_error());
            f()
        })
        .join()
        .unwrap_or_else(|e| std::panic::resume_unwind(e))
    }

    /// IPv4 addresses on `eth0`, as "a.b.c.d/len".
    pub fn addresses(&self) -> Vec<String> {
        self.addresses_on("eth0")
    }

    /// IPv4 addresses on an interface of this host, as "a.b.c.d/len".
    pub fn addresses_on(&self, ifname: &str) -> Vec<String> {
        let out = self.exec(&["ip", "-4", "-o", "addr", "show", "dev", ifname]);
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| {
                let mut it = l.split_whitespace();
                it.position(|w| w == "inet")?;
                it.next().map(str::to_owned)
            })
            .collect()
    }

    /// Whether `addr` (without prefix, IPv4 or IPv6) is on eth0.
    pub fn has_address(&self, addr: &str) -> bool {
        let list = if addr.contains(':') {
            self.addresses6()
        } else {
            self.addresses()
        };
        list.iter().any(|a| a.split('/').next() == Some(addr))
    }

    /// Turns IPv6 on for eth0 with instant addresses and adds `cidr6` (2001:db8::/32 only):
    /// duplicate address detection off (`accept_dad=0`), and the link bounced so that the
    /// link-local address, made while DAD was still on, is made again usable at once.
    pub fn enable_ipv6(&self, cidr6: &str) {
        assert!(
            cidr6.starts_with("2001:db8:"),
            "test IPv6 addresses must come from 2001:db8::/32, not {cidr6}"
        );
        for key in ["all", "default", "eth0"] {
            for (name, value) in [("disable_ipv6", "0"), ("accept_dad", "0")] {
                self.exec_ok(&[
                    "sysctl",
                    "-qw",
                    &format!("net.ipv6.conf.{key}.{name}={value}"),
                ]);
            }
        }
        self.exec_ok(&["ip", "link", "set", "eth0", "down"]);
        self.exec_ok(&["ip", "link", "set", "eth0", "up"]);
        self.exec_ok(&["ip", "-6", "addr", "add", cidr6, "dev", "eth0", "nodad"]);
        assert!(
            wait_until(Duration::from_secs(5), || self.link_local().is_some()),
            "{}: no usable IPv6 link-local address on eth0",
            self.name
        );
    }

    /// Global IPv6 addresses on eth0, as "2001:db8::1/64".
    pub fn addresses6(&self) -> Vec<String> {
        self.inet6("global")
    }

    /// eth0's IPv6 link-local address once usable (not tentative), without prefix.
    pub fn link_local(&self) -> Option<String> {
        self.inet6("link")
            .first()
            .and_then(|a| a.split('/').next())
            .map(str::to_owned)
    }

    fn inet6(&self, scope: &str) -> Vec<String> {
        let out = self.exec(&[
            "ip", "-6", "-o", "addr", "show", "dev", "eth0", "scope", scope,
        ]);
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| !l.contains("tentative"))
            .filter_map(|l| {
                let mut it = l.split_whitespace();
                it.position(|w| w == "inet6")?;
                it.next().map(str::to_owned)
            })
            .collect()
    }

    /// The MAC this host's IPv6 neighbour table holds for `ip` (any state but FAILED/INCOMPLETE).
    pub fn neighbour_mac6(&self, ip: &str) -> Option<String> {
        let out = self.exec(&["ip", "-6", "neigh", "show", ip, "dev", "eth0"]);
        let text = String::from_utf8_lossy(&out.stdout);
        let line = text.lines().next()?;
        let mut it = line.split_whitespace();
        it.position(|w| w == "lladdr")?;
        it.next().map(str::to_owned)
    }

    /// The MAC address of eth0.
    pub fn mac(&self) -> String {
        self.exec_ok(&["cat", "/sys/class/net/eth0/address"])
            .trim()
            .to_owned()
    }

    /// The MAC this host's neighbour table holds for `ip` (any state but FAILED/INCOMPLETE).
    pub fn neighbour_mac(&self, ip: &str) -> Option<String> {
        let out = self.exec(&["ip", "-4", "neigh", "show", ip, "dev", "eth0"]);
        let text = String::from_utf8_lossy(&out.stdout);
        let line = text.lines().next()?;
        let mut it = line.split_whitespace();
        it.position(|w| w == "lladdr")?;
        it.next().map(str::to_owned)
    }

    /// Takes this host's link down: its eth0 and the bridge port facing it, so the peer
    /// sees carrier loss (like pulling the cable).
    pub fn link_down(&self) {
        self.exec(&["ip", "link", "set", "eth0", "down"]);
        self.cut_cable();
    }

    /// Brings eth0 and the bridge port back up.
    pub fn link_up(&self) {
        self.mend_cable();
        self.exec(&["ip", "link", "set", "eth0", "up"]);
    }

    /// Disconnects this host from the bridge (bridge port down) while its own eth0 stays
    /// administratively up: the host sees carrier loss, others stop hearing it.
    pub fn cut_cable(&self) {
        let _ = Command::new("ip")
            .args([
                "-n",
                &self.bridge_ns,
                "link",
                "set",
                &self.bridge_port,
                "down",
            ])
            .output();
    }

    /// Reconnects the bridge port.
    pub fn mend_cable(&self) {
        let _ = Command::new("ip")
            .args([
                "-n",
                &self.bridge_ns,
                "link",
                "set",
                &self.bridge_port,
                "up",
            ])
            .output();
    }

    fn kill_children(&self) {
        let mut kids = self.children.lock().unwrap_or_else(|e| e.into_inner());
        for c in kids.iter_mut() {
            if let Ok(None) = c.try_wait() {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
        kids.clear();
    }
}

/// A bridge namespace plus hosts. Dropping it kills the hosts' processes and deletes every
/// namespace it made (which deletes their veths).
pub struct Lab {
    pub prefix: String,
    pub bridge_ns: String,
    pub hosts: Vec<Host>,
}

impl Lab {
    /// Builds the lab. `hosts` are (name, "address/prefix") pairs; each host also gets `lo` up.
    pub fn new(hosts: &[(&str, &str)]) -> Lab {
        let n = NEXT_LAB.fetch_add(1, Ordering::SeqCst);
        let prefix = format!("vl{}x{}", std::process::id(), n);
        let bridge_ns = format!("{prefix}-br");
        let mut lab = Lab {
            prefix: prefix.clone(),
            bridge_ns: bridge_ns.clone(),
            hosts: Vec::new(),
        };
        // From here on, a panic drops `lab`, which removes what was made so far.
        sh(&["ip", "netns", "add", &bridge_ns]);
        sh(&["ip", "-n", &bridge_ns, "link", "set", "lo", "up"]);
        sh(&[
            "ip", "-n", &bridge_ns, "link", "add", "br0", "type", "bridge",
        ]);
        // Multicast snooping would hide VRRP adverts (224.0.0.18) from ports that sent no IGMP.
        sh(&[
            "ip",
            "-n",
            &bridge_ns,
            "link",
            "set",
            "br0",
            "type",
            "bridge",
            "mcast_snooping",
            "0",
        ]);
        sh(&["ip", "-n", &bridge_ns, "link", "set", "br0", "up"]);
        for (i, (name, cidr)) in hosts.iter().enumerate() {
            lab.add_host_inner(i, name, cidr);
        }
        lab
    }

    /// Adds a host after creation.
    pub fn add_host(&mut self, name: &str, cidr: &str) -> &Host {
        let i = self.hosts.len();
        self.add_host_inner(i, name, cidr);
        &self.hosts[i]
    }

    fn add_host_inner(&mut self, i: usize, name: &str, cidr: &str) {
        assert!(
            cidr.starts_with("198.51.100.") || cidr.starts_with("203.0.113."),
            "test addresses must come from 198.51.100.0/24 or 203.0.113.0/24, not {cidr}"
        );
        let ns = format!("{}-{}", self.prefix, name);
        let port = format!("p{i}");
        sh(&["ip", "netns", "add", &ns]);
        self.hosts.push(Host {
            name: name.to_owned(),
            ns: ns.clone(),
            cidr: cidr.to_owned(),
            bridge_port: port.clone(),
            bridge_ns: self.bridge_ns.clone(),
            children: Mutex::new(Vec::new()),
        });
        sh(&["ip", "-n", &ns, "link", "set", "lo", "up"]);
        sh(&[
            "ip",
            "-n",
            &ns,
            "link",
            "add",
            "eth0",
            "type",
            "veth",
            "peer",
            "name",
            &port,
            "netns",
            &self.bridge_ns,
        ]);
        sh(&[
            "ip",
            "-n",
            &self.bridge_ns,
            "link",
            "set",
            &port,
            "master",
            "br0",
        ]);
        sh(&["ip", "-n", &self.bridge_ns, "link", "set", &port, "up"]);
        sh(&["ip", "-n", &ns, "addr", "add", cidr, "dev", "eth0"]);
        sh(&["ip", "-n", &ns, "link", "set", "eth0", "up"]);
    }

    pub fn host(&self, name: &str) -> &Host {
        self.hosts
            .iter()
            .find(|h| h.name == name)
            .unwrap_or_else(|| panic!("no host {name} in lab {}", self.prefix))
    }

    /// Every namespace name this lab owns.
    pub fn namespaces(&self) -> Vec<String> {
        let mut v: Vec<String> = self.hosts.iter().map(|h| h.ns.clone()).collect();
        v.push(self.bridge_ns.clone());
        v
    }

    /// Runs a command in the bridge namespace (e.g. tshark on br0).
    pub fn bridge_command(&self, program: &str) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.bridge_ns, program]);
        c
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for h in &self.hosts {
            h.kill_children();
        }
        for ns in self.namespaces() {
            let _ = Command::new("ip")
                .args(["netns", "del", &ns])
                .stderr(Stdio::null())
                .output();
        }
    }
}

/// Namespaces currently present whose name starts with `prefix` (to prove cleanup).
pub fn namespaces_with_prefix(prefix: &str) -> Vec<String> {
    let out = Command::new("ip").args(["netns", "list"]).output();
    let Ok(out) = out else { return Vec::new() };
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|n| n.starts_with(prefix) && n[prefix.len()..].starts_with('-'))
        .map(str::to_owned)
        .collect()
}

/// A private rsyslogd for tests: listens on `<dir>/log.sock` and writes every message as
/// `facility.severity ident[pid]: msg` to `<dir>/messages.log`. Killed on drop.
pub struct Rsyslog {
    pub socket: std::path::PathBuf,
    pub output: std::path::PathBuf,
    child: Child,
}

impl Rsyslog {
    /// Where Debian installs it (root's PATH may lack /usr/sbin under `cargo test`).
    pub const PROGRAM: &'static str = "/usr/sbin/rsyslogd";

    /// Whether rsyslogd is installed; prints a skip line (or panics under
    /// `VRRPLB_REQUIRE_NETNS=1`) when it is not.
    pub fn available(test: &str) -> bool {
        std::path::Path::new(Self::PROGRAM).exists() || require_tool(test, "rsyslogd")
    }

    /// Starts it and waits (up to 10 s) for its socket.
    pub fn start(dir: &std::path::Path) -> Rsyslog {
        let socket = dir.join("log.sock");
        let output = dir.join("messages.log");
        let conf = dir.join("rsyslog.conf");
        let template = "%syslogfacility-text%.%syslogseverity-text% %programname%[%procid%]:%msg:::sp-if-no-1st-sp%%msg:::drop-last-lf%\\n";
        let text = format!(
            "global(workDirectory=\"{d}\")\n\
             module(load=\"imuxsock\" SysSock.Use=\"off\")\n\
             input(type=\"imuxsock\" Socket=\"{s}\")\n\
             template(name=\"t\" type=\"string\" string=\"{template}\")\n\
             *.* action(type=\"omfile\" file=\"{o}\" template=\"t\")\n",
            d = dir.display(),
            s = socket.display(),
            o = output.display()
        );
        std::fs::write(&conf, text).unwrap_or_else(|e| panic!("write {}: {e}", conf.display()));
        let program = if std::path::Path::new(Self::PROGRAM).exists() {
            Self::PROGRAM
        } else {
            "rsyslogd"
        };
        let child = Command::new(program)
            .args(["-n", "-f"])
            .arg(&conf)
            .arg("-i")
            .arg(dir.join("rsyslogd.pid"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("start rsyslogd: {e}"));
        let r = Rsyslog {
            socket,
            output,
            child,
        };
        assert!(
            wait_until(Duration::from_secs(10), || r.socket.exists()),
            "rsyslog socket never appeared"
        );
        r
    }

    /// Everything written so far.
    pub fn text(&self) -> String {
        std::fs::read_to_string(&self.output).unwrap_or_default()
    }
}

impl Drop for Rsyslog {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::UdpSocket;

    #[test]
    fn two_namespaces_talk_over_the_bridge_and_nothing_is_left_behind() {
        if !require_root("two_namespaces_talk_over_the_bridge_and_nothing_is_left_behind") {
            return;
        }
        let lab = Lab::new(&[("a", "198.51.100.11/24"), ("b", "198.51.100.12/24")]);
        let prefix = lab.prefix.clone();
        assert_eq!(namespaces_with_prefix(&prefix).len(), 3);

        // An echo server on b, a client on a: a round trip proves L2 + L3 across the bridge.
        let server = lab
            .host("b")
            .run_in(|| UdpSocket::bind("198.51.100.12:7007").expect("bind echo server in b"));
        let echo = std::thread::spawn(move || {
            server
                .set_read_timeout(Some(Duration::from_secs(5)))
                .expect("timeout");
            let mut buf = [0u8; 64];
            let (n, from) = server.recv_from(&mut buf).expect("echo recv");
            server.send_to(&buf[..n], from).expect("echo send");
        });
        let reply = lab.host("a").run_in(|| {
            let s = UdpSocket::bind("198.51.100.11:0").expect("bind client in a");
            s.set_read_timeout(Some(Duration::from_secs(5)))
                .expect("timeout");
            s.send_to(b"ping-vrrplb", "198.51.100.12:7007")
                .expect("send");
            let mut buf = [0u8; 64];
            let (n, from) = s.recv_from(&mut buf).expect("reply");
            (buf[..n].to_vec(), from.to_string())
        });
        echo.join().expect("echo thread");
        assert_eq!(reply.0, b"ping-vrrplb");
        assert_eq!(reply.1, "198.51.100.12:7007");

        // Processes are tracked and killed by PID on drop.
        let mut sleeper = lab.host("a").command("sleep");
        sleeper.arg("300");
        let pid = lab.host("a").spawn(sleeper);
        assert!(std::path::Path::new(&format!("/proc/{pid}")).exists());

        // The cut cable is seen as carrier loss inside the host.
        lab.host("a").cut_cable();
        assert!(wait_until(Duration::from_secs(2), || {
            lab.host("a")
                .exec_ok(&["cat", "/sys/class/net/eth0/carrier"])
                .trim()
                == "0"
        }));
        lab.host("a").mend_cable();

        drop(lab);
        assert!(
            namespaces_with_prefix(&prefix).is_empty(),
            "namespaces left behind"
        );
        // Reaped, so /proc/PID is gone (or reused by an unrelated process, which is not ours).
        let stat = std::fs::read_to_string(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        assert!(!stat.contains("300"), "sleep 300 still running");
    }

    #[test]
    fn a_panicking_test_still_removes_its_namespaces() {
        if !require_root("a_panicking_test_still_removes_its_namespaces") {
            return;
        }
        let prefix = std::sync::Arc::new(Mutex::new(String::new()));
        let p2 = prefix.clone();
        let r = std::panic::catch_unwind(move || {
            let lab = Lab::new(&[("x", "203.0.113.5/24")]);
            *p2.lock().unwrap_or_else(|e| e.into_inner()) = lab.prefix.clone();
            panic!("boom");
        });
        assert!(r.is_err());
        let prefix = prefix.lock().unwrap_or_else(|e| e.into_inner()).clone();
        assert!(!prefix.is_empty());
        assert!(namespaces_with_prefix(&prefix).is_empty());
    }
}
