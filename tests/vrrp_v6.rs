//! VRRPv3 over IPv6 (RFC 5798, vrrp.md §13) end to end with the real binary in namespaces,
//! 2001:db8::/32 only: a vrrplb pair at 100 ms elects a MASTER, serves a frontend bound to
//! the IPv6 VIP (curl -6 from a client), hands over on a graceful stop, is preempted by the
//! returning higher priority, and takes over after a hard kill within Master_Down_Interval.
//! A capture on the client shows the adverts (ff02::12 from link-local sources, hop limit
//! 255, good checksums) and the unsolicited Neighbor Advertisements (Override flag, target
//! the VIP, our MAC), and the client's neighbour entry for the VIP follows the MASTER.

mod common;

use common::*;
use std::process::Stdio;
use std::time::{Duration, Instant};
use testkit::{require_root, require_tool, wait_until, Host, Lab, TempDir};

const VIP6: &str = "2001:db8:51::100";

/// RFC 5798 §6.1 at Master_Adver_Interval 100 ms, in ms.
fn skew_ms(priority: u8) -> f64 {
    (256.0 - f64::from(priority)) * 100.0 / 256.0
}

fn master_down_ms(priority: u8) -> f64 {
    300.0 + skew_ms(priority)
}

/// One v3 instance with the IPv6 VIP at 100 ms, the engine on SCHED_RR 50 (keepalived's
/// advice for sub-second timers; the machine may be loaded), and a frontend bound to
/// [VIP]:80 gated by the instance, forwarding to web1 over IPv4.
fn v6_config(node: &str, priority: u8) -> String {
    format!(
        "global:\n  node: {node}\n  log: {{ target: stderr, level: debug }}\n  vrrp_realtime_priority: 50\n\
         vrrp_instances:\n  - name: VI_6\n    interface: eth0\n    virtual_router_id: 52\n    priority: {priority}\n    \
         version: 3\n    advert_int: 100ms\n    virtual_ipaddress: [\"{VIP6}/64\"]\n\
         frontends:\n  - name: www6\n    bind: [\"[{VIP6}]:80\"]\n    gate: [VI_6]\n    default_backend: web\n\
         backends:\n  - name: web\n    servers: [{{ name: web1, address: \"198.51.100.21:80\" }}]\n"
    )
}

/// `curl -6` through the VIP from `client`: the body, or None.
fn curl6(client: &Host) -> Option<String> {
    let out = client.exec(&[
        "curl",
        "-6",
        "-g",
        "-s",
        "--max-time",
        "1",
        &format!("http://[{VIP6}]/"),
    ]);
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

fn logs(nodes: &[&Node]) -> String {
    nodes
        .iter()
        .map(|n| format!("---- {} log ----\n{}", n.host, n.log_text()))
        .collect::<Vec<_>>()
        .join("\n")
}

/// One frame of the capture as tshark decodes it.
#[derive(Debug, Clone, Default)]
struct Frame {
    t: f64,
    eth_src: String,
    src: String,
    dst: String,
    hlim: u8,
    /// VRRP adverts.
    vrrp_version: Option<u8>,
    priority: u8,
    interval: u16,
    checksum_good: bool,
    /// Neighbor Advertisements (ICMPv6 136).
    na_target: Option<String>,
    na_override: bool,
    na_lladdr: String,
}

fn read_capture(pcap: &std::path::Path) -> Vec<Frame> {
    let fields = [
        "frame.time_epoch",
        "eth.src",
        "ipv6.src",
        "ipv6.dst",
        "ipv6.hlim",
        "vrrp.version",
        "vrrp.prio",
        "vrrp.short_adver_int",
        "vrrp.checksum.status",
        "icmpv6.type",
        "icmpv6.nd.na.target_address",
        "icmpv6.nd.na.flag.o",
        "icmpv6.opt.linkaddr",
    ];
    let mut read = std::process::Command::new("tshark");
    read.args(["-r"]).arg(pcap).args(["-T", "fields"]);
    for f in fields {
        read.args(["-e", f]);
    }
    let out = run_with_timeout(read, Duration::from_secs(30));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            let get = |i: usize| f.get(i).copied().unwrap_or("");
            let icmp_type: Option<u8> = get(9).parse().ok();
            Some(Frame {
                t: get(0).parse().ok()?,
                eth_src: get(1).to_owned(),
                src: get(2).to_owned(),
                dst: get(3).to_owned(),
                hlim: get(4).parse().unwrap_or(0),
                vrrp_version: get(5).parse().ok(),
                priority: get(6).parse().unwrap_or(0),
                interval: get(7).parse().unwrap_or(0),
                checksum_good: get(8) == "1",
                na_target: (icmp_type == Some(136)).then(|| get(10).to_owned()),
                na_override: matches!(get(11), "1" | "True" | "true"),
                na_lladdr: get(12).to_owned(),
            })
        })
        .collect()
}

/// tshark on the client's eth0 (what the client sees), stopped with SIGINT.
struct Capture {
    pid: u32,
    pcap: std::path::PathBuf,
}

impl Capture {
    fn start(client: &Host, dir: &TempDir) -> Capture {
        let pcap = dir.join("v6.pcap");
        let mut cap = client.command("tshark");
        cap.args(["-i", "eth0", "-f", "ip6", "-F", "pcap", "-w"])
            .arg(&pcap)
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let pid = client.spawn(cap);
        assert!(
            wait_until(Duration::from_secs(10), || pcap.exists()),
            "tshark did not start capturing"
        );
        std::thread::sleep(Duration::from_millis(300));
        Capture { pid, pcap }
    }

    fn stop(self, client: &Host) -> Vec<Frame> {
        client.signal(self.pid, libc::SIGINT);
        client.wait_exit(self.pid, Duration::from_secs(10));
        read_capture(&self.pcap)
    }
}

#[test]
fn v6_pair_serves_the_vip_fails_over_and_announces_it() {
    let test = "v6_pair";
    if !require_root(test) || !require_tool(test, "tshark") || !require_tool(test, "curl") {
        return;
    }
    let lab = Lab::new(&[
        ("lb1", "198.51.100.11/24"),
        ("lb2", "198.51.100.12/24"),
        ("web1", "198.51.100.21/24"),
        ("client", "198.51.100.50/24"),
    ]);
    let (lb1, lb2, client) = (lab.host("lb1"), lab.host("lb2"), lab.host("client"));
    lb1.enable_ipv6("2001:db8:51::11/64");
    lb2.enable_ipv6("2001:db8:51::12/64");
    client.enable_ipv6("2001:db8:51::50/64");
    let (ll1, ll2) = (
        lb1.link_local().expect("lb1 link-local"),
        lb2.link_local().expect("lb2 link-local"),
    );
    let (mac1, mac2) = (lb1.mac(), lb2.mac());
    let listener = lab
        .host("web1")
        .run_in(|| std::net::TcpListener::bind("198.51.100.21:80").expect("bind web1"));
    let _web1 = Backend::serve_on(listener, "web1");
    let dir = TempDir::new("vrrp-v6");
    let capture = Capture::start(client, &dir);

    // lb1 alone: MASTER after its Master_Down_Interval, VIP and listener up.
    let t0 = Instant::now();
    let n1 = start(&lab, "lb1", &dir, &v6_config("lb1", 101));
    let took = wait_until(Duration::from_secs(5), || lb1.has_address(VIP6)).then(|| t0.elapsed());
    println!("v6 100ms: lb1 alone holds {VIP6} after {took:?}");
    assert!(took.is_some(), "{}", n1.log_text());
    let n2 = start(&lab, "lb2", &dir, &v6_config("lb2", 100));
    assert!(
        n2.wait_log(
            "(VI_6) Entering BACKUP STATE (init)",
            Duration::from_secs(5)
        ),
        "{}",
        logs(&[&n1, &n2])
    );
    let body = wait_until(Duration::from_secs(5), || curl6(client).is_some())
        .then(|| curl6(client))
        .flatten();
    println!(
        "v6: curl -6 http://[{VIP6}]/ through lb1 answered by {:?}",
        body.as_deref().and_then(answered_by)
    );
    assert!(
        body.as_deref().is_some_and(|b| b.starts_with("web1")),
        "{body:?}\n{}",
        logs(&[&n1, &n2])
    );
    assert_eq!(client.neighbour_mac6(VIP6).as_deref(), Some(mac1.as_str()));
    std::thread::sleep(Duration::from_secs(2));
    assert!(!lb2.has_address(VIP6), "{}", logs(&[&n1, &n2]));
    assert_eq!(n2.count_log("Entering MASTER"), 0, "{}", logs(&[&n1, &n2]));

    // Graceful stop: lb2 takes over Skew_Time after the priority-0 advert; its NAs move the
    // client's neighbour entry to lb2's MAC.
    let t1 = Instant::now();
    lb1.signal(n1.pid, libc::SIGTERM);
    let graceful =
        wait_until(Duration::from_secs(3), || lb2.has_address(VIP6)).then(|| t1.elapsed());
    let moved = wait_until(Duration::from_secs(3), || {
        client.neighbour_mac6(VIP6).as_deref() == Some(mac2.as_str())
    })
    .then(|| t1.elapsed());
    println!("v6 graceful stop: lb2 holds the VIP after {graceful:?}, the client's neighbour entry points at lb2 after {moved:?}");
    assert!(graceful.is_some(), "{}", logs(&[&n1, &n2]));
    assert!(moved.is_some(), "{}", logs(&[&n1, &n2]));
    assert!(lb1.wait_exit(n1.pid, Duration::from_secs(3)).is_some());
    assert!(
        !lb1.has_address(VIP6),
        "lb1 left its VIP after a graceful stop"
    );
    let body = curl6(client);
    assert!(
        body.as_deref().and_then(answered_by) == Some("198.51.100.12"),
        "after the graceful stop: {body:?}\n{}",
        logs(&[&n1, &n2])
    );
    // lb2 relayed what lb1 still held during its hand-back (vrrp/src/io/relay.rs), to lb1's
    // link-local advert source on eth0: the IPv6 rule loads and closes.
    assert!(
        n2.wait_log(
            "(VI_6) hand-over relay open: segments of connections fe80::",
            Duration::from_secs(1)
        ) && n2.wait_log("(VI_6) hand-over relay to fe80::", Duration::from_secs(2)),
        "{}",
        n2.log_text()
    );
    std::thread::sleep(Duration::from_millis(700));

    // lb1 returns and preempts.
    let t2 = Instant::now();
    let n1 = start(&lab, "lb1", &dir, &v6_config("lb1", 101));
    let back = wait_until(Duration::from_secs(5), || {
        lb1.has_address(VIP6) && !lb2.has_address(VIP6)
    })
    .then(|| t2.elapsed());
    println!("v6 preempt: restarted lb1 is the only holder after {back:?}");
    assert!(back.is_some(), "{}", logs(&[&n1, &n2]));
    assert!(
        n2.wait_log(
            &format!("(VI_6) Master received advert from {ll1} with higher priority 101, ours 100"),
            Duration::from_secs(2)
        ),
        "{}",
        n2.log_text()
    );
    assert!(
        wait_until(Duration::from_secs(3), || client
            .neighbour_mac6(VIP6)
            .as_deref()
            == Some(mac1.as_str())),
        "the client's entry did not move back to lb1"
    );
    std::thread::sleep(Duration::from_millis(1500));

    // Hard failure: SIGKILL and link down together.
    let t3 = Instant::now();
    lb1.signal(n1.pid, libc::SIGKILL);
    lb1.link_down();
    let hard = wait_until(Duration::from_secs(3), || lb2.has_address(VIP6)).then(|| t3.elapsed());
    let bound = Duration::from_secs_f64((master_down_ms(100) + 150.0) / 1000.0);
    println!("v6 hard failure: lb2 holds the VIP {hard:?} after the kill (bound {bound:?})");
    assert!(
        hard.is_some_and(|t| t <= bound),
        "lb2 took {hard:?}, bound {bound:?}\n{}",
        logs(&[&n1, &n2])
    );
    assert!(
        wait_until(Duration::from_secs(3), || curl6(client).is_some()),
        "the VIP does not answer through lb2 after the hard failure\n{}",
        logs(&[&n1, &n2])
    );
    std::thread::sleep(Duration::from_millis(500));

    let frames = capture.stop(client);
    let adverts: Vec<&Frame> = frames.iter().filter(|f| f.vrrp_version.is_some()).collect();
    let nas: Vec<&Frame> = frames.iter().filter(|f| f.na_target.is_some()).collect();
    println!(
        "v6 capture on the client: {} frames, {} adverts, {} neighbor advertisements",
        frames.len(),
        adverts.len(),
        nas.len()
    );
    assert!(
        adverts.len() > 50,
        "too few adverts seen: {}",
        adverts.len()
    );
    for a in &adverts {
        assert!(
            a.vrrp_version == Some(3)
                && a.hlim == 255
                && a.dst == "ff02::12"
                && (a.src == ll1 || a.src == ll2)
                && a.interval == 10
                && a.checksum_good,
            "advert not v3 / hop limit 255 / ff02::12 from a link-local / 10 cs / good checksum: {a:?}"
        );
    }
    // The unsolicited NAs (to ff02::1; the kernel's answers to the client's solicitations go
    // to the client): target the VIP, Override, our MAC in the option. Both boxes sent them
    // on each takeover (5 per VIP and burst).
    let unsolicited: Vec<&&Frame> = nas.iter().filter(|f| f.dst == "ff02::1").collect();
    let count = |mac: &str| unsolicited.iter().filter(|f| f.eth_src == mac).count();
    println!(
        "v6: unsolicited NAs from lb1 {}, from lb2 {}",
        count(&mac1),
        count(&mac2)
    );
    assert!(count(&mac1) >= 5 && count(&mac2) >= 5, "{unsolicited:?}");
    for na in &unsolicited {
        assert!(
            (na.eth_src == mac1 || na.eth_src == mac2)
                && na.na_target.as_deref() == Some(VIP6)
                && na.na_override
                && na.na_lladdr == na.eth_src
                && na.src == VIP6
                && na.hlim == 255,
            "bad unsolicited NA: {na:?}"
        );
    }
    // Timers on the wire: lb1's advert gaps, the graceful Skew_Time, the hard Master_Down.
    let lb1_times: Vec<f64> = adverts
        .iter()
        .filter(|a| a.src == ll1 && a.priority > 0)
        .map(|a| a.t)
        .collect();
    let t_zero = adverts
        .iter()
        .find(|a| a.src == ll1 && a.priority == 0)
        .map(|a| a.t)
        .expect("lb1's priority-0 advert");
    // Both of lb1's runs as MASTER, without the stretch from its stop to its return.
    let gaps: Vec<f64> = lb1_times
        .windows(2)
        .filter(|w| !(w[0] < t_zero && w[1] > t_zero))
        .map(|w| (w[1] - w[0]) * 1000.0)
        .collect();
    assert!(gaps.len() >= 30, "{gaps:?}");
    common::assert_cadence("v6: lb1", &gaps, 100.0);
    let first_after = |src: &str, after: f64| {
        adverts
            .iter()
            .find(|a| a.src == src && a.priority > 0 && a.t > after)
            .map(|a| a.t)
    };
    let skew = (first_after(&ll2, t_zero).expect("lb2 after priority 0") - t_zero) * 1000.0;
    println!(
        "v6 graceful: lb2's first advert {skew:.2} ms after lb1's priority 0 (Skew_Time {:.2}: at most 2 early, 8 late)",
        skew_ms(100)
    );
    assert!(on_time(skew, skew_ms(100)), "skew {skew:.2} ms");
    let t_last = adverts
        .iter()
        .rev()
        .find(|a| a.src == ll1)
        .map(|a| a.t)
        .expect("lb1 adverts");
    let mdi = (first_after(&ll2, t_last).expect("lb2 after lb1's last") - t_last) * 1000.0;
    println!(
        "v6 hard failure: lb2's first advert {mdi:.2} ms after lb1's last (Master_Down_Interval {:.2}: at most 2 early, 8 late)",
        master_down_ms(100)
    );
    assert!(
        on_time(mdi, master_down_ms(100)),
        "Master_Down_Interval on the wire {mdi:.2} ms"
    );
    let complaints: Vec<String> = [&n1, &n2]
        .iter()
        .flat_map(|n| {
            n.log_text()
                .lines()
                .filter(|l| l.contains("drop_reason") || l.contains("cannot"))
                .map(str::to_owned)
                .collect::<Vec<_>>()
        })
        .collect();
    assert!(complaints.is_empty(), "{complaints:#?}");
}

/// IPv6 unicast mode: each box sends its adverts to the peer's global address from its own
/// (`unicast_src_ip`), hop limit 255, no ff02::12 membership. The pair elects, fails over on
/// a graceful stop and the wire shows only unicast adverts.
#[test]
fn v6_unicast_pair_elects_and_hands_over() {
    let test = "v6_unicast_pair";
    if !require_root(test) || !require_tool(test, "tshark") {
        return;
    }
    let lab = Lab::new(&[("lb1", "198.51.100.11/24"), ("lb2", "198.51.100.12/24")]);
    let (lb1, lb2) = (lab.host("lb1"), lab.host("lb2"));
    lb1.enable_ipv6("2001:db8:51::11/64");
    lb2.enable_ipv6("2001:db8:51::12/64");
    let dir = TempDir::new("vrrp-v6-unicast");
    let capture = Capture::start(lb2, &dir);
    let cfg = |node: &str, priority: u8, me: &str, peer: &str| {
        format!(
            "global:\n  node: {node}\n  log: {{ target: stderr, level: debug }}\n  vrrp_realtime_priority: 50\n\
             vrrp_instances:\n  - name: VI_6\n    interface: eth0\n    virtual_router_id: 52\n    priority: {priority}\n    \
             version: 3\n    advert_int: 100ms\n    unicast_src_ip: \"{me}\"\n    unicast_peers: [\"{peer}\"]\n    \
             virtual_ipaddress: [\"{VIP6}/64\"]\n"
        )
    };
    let n1 = start(
        &lab,
        "lb1",
        &dir,
        &cfg("lb1", 101, "2001:db8:51::11", "2001:db8:51::12"),
    );
    assert!(
        wait_until(Duration::from_secs(5), || lb1.has_address(VIP6)),
        "{}",
        n1.log_text()
    );
    let n2 = start(
        &lab,
        "lb2",
        &dir,
        &cfg("lb2", 100, "2001:db8:51::12", "2001:db8:51::11"),
    );
    assert!(
        n2.wait_log(
            "(VI_6) Entering BACKUP STATE (init)",
            Duration::from_secs(5)
        ),
        "{}",
        logs(&[&n1, &n2])
    );
    std::thread::sleep(Duration::from_secs(2));
    assert!(
        !lb2.has_address(VIP6) && n2.count_log("Entering MASTER") == 0,
        "lb2 does not hear lb1's unicast adverts:\n{}",
        logs(&[&n1, &n2])
    );
    let t1 = Instant::now();
    lb1.signal(n1.pid, libc::SIGTERM);
    let took = wait_until(Duration::from_secs(3), || lb2.has_address(VIP6)).then(|| t1.elapsed());
    println!("v6 unicast graceful stop: lb2 holds the VIP after {took:?}");
    assert!(took.is_some(), "{}", logs(&[&n1, &n2]));
    assert!(
        n2.log_text()
            .contains("(VI_6) Backup received priority 0 advertisement"),
        "{}",
        n2.log_text()
    );
    std::thread::sleep(Duration::from_millis(300));
    let frames = capture.stop(lb2);
    // Before lb2's daemon ran, its kernel answered lb1's unicast adverts with ICMPv6 errors
    // quoting them (two IPv6 headers in one frame): those are not adverts.
    let adverts: Vec<&Frame> = frames
        .iter()
        .filter(|f| f.vrrp_version.is_some() && !f.src.contains(','))
        .collect();
    let from_lb1 = adverts
        .iter()
        .filter(|a| a.src == "2001:db8:51::11")
        .count();
    println!(
        "v6 unicast: {} adverts on lb2's wire, {from_lb1} from lb1",
        adverts.len()
    );
    assert!(from_lb1 >= 20, "{adverts:?}");
    for a in &adverts {
        let pair = (a.src.as_str(), a.dst.as_str());
        assert!(
            (pair == ("2001:db8:51::11", "2001:db8:51::12")
                || pair == ("2001:db8:51::12", "2001:db8:51::11"))
                && a.hlim == 255
                && a.checksum_good,
            "not a unicast advert between the peers with hop limit 255 and a good checksum: {a:?}"
        );
    }
}

/// An IPv6 raw socket for protocol 112 on eth0, sending to ff02::12 with the given hop limit
/// and, when `hop_by_hop`, a hop-by-hop options header (PadN only) before the advert. Must
/// run inside the namespace.
fn send_v6_raw(payloads: &[Vec<u8>], hop_limit: i32, hop_by_hop: bool) {
    use std::os::fd::AsRawFd;
    let sock = socket2::Socket::new(
        socket2::Domain::IPV6,
        socket2::Type::RAW,
        Some(socket2::Protocol::from(112)),
    )
    .expect("raw IPv6 socket");
    sock.bind_device(Some(b"eth0")).expect("SO_BINDTODEVICE");
    let ifindex = nix::net::if_::if_nametoindex("eth0").expect("eth0");
    sock.set_multicast_if_v6(ifindex)
        .expect("IPV6_MULTICAST_IF");
    sock.set_multicast_hops_v6(hop_limit as u32)
        .expect("IPV6_MULTICAST_HOPS");
    if hop_by_hop {
        // Next header (the kernel fills it), length 0 (8 bytes), PadN of 4.
        let hbh: [u8; 8] = [0, 0, 1, 4, 0, 0, 0, 0];
        // SAFETY: a valid fd and a buffer of the given length.
        let rc = unsafe {
            libc::setsockopt(
                sock.as_raw_fd(),
                libc::IPPROTO_IPV6,
                libc::IPV6_HOPOPTS,
                hbh.as_ptr().cast(),
                hbh.len() as libc::socklen_t,
            )
        };
        assert_eq!(rc, 0, "IPV6_HOPOPTS: {}", std::io::Error::last_os_error());
    }
    let to = socket2::SockAddr::from(std::net::SocketAddrV6::new(
        "ff02::12".parse().expect("group"),
        0,
        0,
        ifindex,
    ));
    for p in payloads {
        sock.send_to(p, &to).expect("send advert");
    }
}

/// Hostile and broken IPv6 adverts at a MASTER: a forwarded one (hop limit 64), a bad
/// checksum, an address count that lies, a hop-by-hop header in front, a VRRPv2 message.
/// Each would demote it (priority 254) if accepted; each is dropped and counted by reason in
/// `vrrplb status`, and the MASTER stays MASTER.
#[test]
fn v6_master_drops_bad_adverts_by_reason() {
    let test = "v6_bad_adverts";
    if !require_root(test) {
        return;
    }
    let lab = Lab::new(&[
        ("lb1", "198.51.100.11/24"),
        ("attacker", "198.51.100.66/24"),
    ]);
    let (lb1, attacker) = (lab.host("lb1"), lab.host("attacker"));
    lb1.enable_ipv6("2001:db8:51::11/64");
    attacker.enable_ipv6("2001:db8:51::66/64");
    let dir = TempDir::new("vrrp-v6-bad");
    let n1 = start(&lab, "lb1", &dir, &v6_config("lb1", 101));
    assert!(
        wait_until(Duration::from_secs(5), || lb1.has_address(VIP6)),
        "{}",
        n1.log_text()
    );
    let drops = || -> std::collections::HashMap<String, u64> {
        let status = n1.status();
        status
            .lines()
            .find(|l| l.starts_with("drops VI_6 "))
            .map(|l| {
                l.split_whitespace()
                    .skip(2)
                    .filter_map(|kv| kv.split_once('='))
                    .filter_map(|(k, v)| Some((k.to_owned(), v.parse().ok()?)))
                    .collect()
            })
            .unwrap_or_default()
    };
    let src: std::net::IpAddr = attacker
        .link_local()
        .expect("attacker link-local")
        .parse()
        .expect("address");
    let group: std::net::IpAddr = "ff02::12".parse().expect("group");
    let advert = |version: vrrp::Version, advert_int: u16| vrrp::packet::Advertisement {
        version,
        vrid: 52,
        priority: 254,
        advert_int,
        auth: vrrp::packet::Auth::None,
        addresses: vec![VIP6.parse().expect("VIP")],
    };
    let good = advert(vrrp::Version::V3, 10).encode_between(src, group);
    let mut bad_sum = good.clone();
    bad_sum[2] ^= 0x01;
    // Count 2 with one address, its checksum made right again.
    let mut lie = good.clone();
    lie[3] = 2;
    lie[6] = 0;
    lie[7] = 0;
    let sum = vrrp::packet::v3_checksum(src, group, &lie);
    lie[6..8].copy_from_slice(&sum.to_be_bytes());
    let v2 = advert(vrrp::Version::V2, 100).encode_between(src, group);
    let cases: [(&str, Vec<u8>, i32, bool, &str); 5] = [
        ("hop limit 64", good.clone(), 64, false, "bad_ttl"),
        ("bad checksum", bad_sum, 255, false, "bad_checksum"),
        ("count 2 with 1 address", lie, 255, false, "truncated"),
        ("hop-by-hop header", good, 255, true, "extension_headers"),
        ("VRRPv2 over IPv6", v2, 255, false, "version_mismatch"),
    ];
    for (name, payload, hop_limit, hbh, key) in cases {
        let before = drops().get(key).copied().unwrap_or(0);
        attacker.run_in(move || send_v6_raw(&[payload], hop_limit, hbh));
        let mut now = before;
        let counted = wait_until(Duration::from_secs(3), || {
            now = drops().get(key).copied().unwrap_or(0);
            now > before
        });
        println!("v6 bad advert, {name}: {key} {before} -> {now}");
        assert!(
            counted,
            "{name}: {key} not counted: {:?}\n{}",
            drops(),
            n1.log_text()
        );
    }
    std::thread::sleep(Duration::from_millis(300));
    assert!(lb1.has_address(VIP6), "{}", n1.log_text());
    assert_eq!(
        n1.count_log("Entering MASTER STATE"),
        1,
        "{}",
        n1.log_text()
    );
    assert_eq!(
        n1.count_log("Entering BACKUP STATE"),
        1,
        "{}",
        n1.log_text()
    );
    assert!(
        n1.log_text().contains("IPv6 advert with extension headers"),
        "{}",
        n1.log_text()
    );
}
