//! The kernel-facing layer against real kernel objects: raw VRRP sockets, netlink addresses
//! and link events, gratuitous ARP, between network namespaces built by `testkit`.
//! Needs root; without it every test prints a SKIP line (or fails with
//! VRRPLB_REQUIRE_NETNS=1).

use std::future::Future;
use std::net::Ipv4Addr;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use socket2::{Domain, Protocol, Socket, Type};
use testkit::{require_root, Host, Lab};
use vrrp::io::garp::GarpSender;
use vrrp::io::netlink::{LinkWatcher, Netlink, NetlinkError};
use vrrp::io::socket::{Delivery, SocketError, VrrpSocket, VRRP_GROUP};

const A_IP: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 11);
const B_IP: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 12);
const VIP: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 100);

fn lab() -> Lab {
    Lab::new(&[("a", "198.51.100.11/24"), ("b", "198.51.100.12/24")])
}

/// Runs an async block on a current-thread runtime, on a thread inside `host`'s namespace.
fn block_in<T, F>(host: &Host, make: impl FnOnce() -> F + Send + 'static) -> T
where
    T: Send + 'static,
    F: Future<Output = T>,
{
    host.run_in(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("tokio runtime")
            .block_on(make())
    })
}

fn checksum(bytes: &[u8]) -> u16 {
    let mut sum: u32 = bytes
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// An advert for VRID 51 and one VIP, inside an IPv4 header with TTL 255 and ToS 0xC0.
/// Total length, checksum and id are left for the kernel to fill, as with the real codec.
fn advert(src: Ipv4Addr, dst: Ipv4Addr, priority: u8) -> Vec<u8> {
    let mut vrrp = vec![0x21, 51, priority, 1, 0, 1, 0, 0];
    vrrp.extend_from_slice(&VIP.octets());
    vrrp.extend_from_slice(&[0; 8]);
    let c = checksum(&vrrp);
    vrrp[6..8].copy_from_slice(&c.to_be_bytes());
    let mut ip = vec![0x45, 0xc0, 0, 0, 0, 0, 0, 0, 255, 112, 0, 0];
    ip.extend_from_slice(&src.octets());
    ip.extend_from_slice(&dst.octets());
    ip.extend_from_slice(&vrrp);
    ip
}

/// What a receiver saw: (ttl, source, destination, VRRP bytes).
#[derive(Debug)]
struct Received {
    ttl: u8,
    src: Ipv4Addr,
    dst: Ipv4Addr,
    vrrp: Vec<u8>,
}

fn parse(packet: &[u8]) -> Received {
    let ihl = usize::from(packet[0] & 0x0f) * 4;
    let total = usize::from(u16::from_be_bytes([packet[2], packet[3]]));
    assert_eq!(total, packet.len(), "IP total length matches what was read");
    assert_eq!(packet[9], 112, "protocol");
    assert_eq!(
        checksum(&packet[..ihl]),
        0,
        "kernel filled a valid IP checksum"
    );
    Received {
        ttl: packet[8],
        src: Ipv4Addr::new(packet[12], packet[13], packet[14], packet[15]),
        dst: Ipv4Addr::new(packet[16], packet[17], packet[18], packet[19]),
        vrrp: packet[ihl..].to_vec(),
    }
}

/// Opens a socket on `host`, signals `ready`, then returns the first packet received
/// within `wait` (None on timeout).
fn receive_on(
    host: &Host,
    delivery: Delivery,
    wait: Duration,
    ready: mpsc::Sender<()>,
) -> Option<Vec<u8>> {
    block_in(host, move || async move {
        let sock = VrrpSocket::open("eth0", delivery).expect("open VRRP socket");
        ready.send(()).expect("signal ready");
        let mut buf = [0u8; 2048];
        match tokio::time::timeout(wait, sock.recv(&mut buf)).await {
            Ok(r) => Some(buf[..r.expect("recv")].to_vec()),
            Err(_) => None,
        }
    })
}

fn send_from(host: &Host, delivery: Delivery, packet: Vec<u8>, dst: Ipv4Addr) {
    block_in(host, move || async move {
        let sock = VrrpSocket::open("eth0", delivery).expect("open VRRP socket");
        sock.send_to(&packet, dst).await.expect("send");
    })
}

#[test]
fn multicast_advert_reaches_peer_with_ttl_255_and_its_source() {
    if !require_root("multicast_advert_reaches_peer_with_ttl_255_and_its_source") {
        return;
    }
    let lab = lab();
    let (a, b) = (lab.host("a"), lab.host("b"));
    let (ready_tx, ready_rx) = mpsc::channel();
    let got = std::thread::scope(|s| {
        let rx = s.spawn(|| receive_on(b, Delivery::Multicast, Duration::from_secs(3), ready_tx));
        ready_rx.recv().expect("receiver ready");
        send_from(
            a,
            Delivery::Multicast,
            advert(A_IP, VRRP_GROUP, 100),
            VRRP_GROUP,
        );
        rx.join().expect("receiver thread")
    });
    let packet = got.expect("b received a's advert");
    let r = parse(&packet);
    assert_eq!(r.ttl, 255);
    assert_eq!(r.src, A_IP);
    assert_eq!(r.dst, VRRP_GROUP);
    assert_eq!(r.vrrp, advert(A_IP, VRRP_GROUP, 100)[20..].to_vec());
    assert_eq!(checksum(&r.vrrp), 0, "VRRP checksum intact");
}

#[test]
fn codec_built_advert_round_trips_through_the_kernel() {
    if !require_root("codec_built_advert_round_trips_through_the_kernel") {
        return;
    }
    use vrrp::packet::{parse_ip, Advertisement, Auth};
    let lab = lab();
    let (a, b) = (lab.host("a"), lab.host("b"));
    let sent = Advertisement {
        version: vrrp::Version::V2,
        vrid: 51,
        priority: 150,
        advert_int: 100,
        auth: Auth::Simple(*b"s3cret\0\0"),
        addresses: vec![VIP.into(), Ipv4Addr::new(198, 51, 100, 101).into()],
    };
    let bytes = sent.encode_ip(A_IP, VRRP_GROUP);
    let (ready_tx, ready_rx) = mpsc::channel();
    let got = std::thread::scope(|s| {
        let rx = s.spawn(|| receive_on(b, Delivery::Multicast, Duration::from_secs(3), ready_tx));
        ready_rx.recv().expect("receiver ready");
        send_from(a, Delivery::Multicast, bytes, VRRP_GROUP);
        rx.join().expect("receiver thread")
    })
    .expect("b received the advert");
    let (meta, msg) = parse_ip(&got).expect("valid IP packet");
    assert_eq!(
        (meta.ttl, meta.src, meta.dst),
        (255, A_IP.into(), VRRP_GROUP.into())
    );
    assert_eq!(Advertisement::decode(msg).expect("valid advert"), sent);
}

#[test]
fn own_multicast_advert_is_not_received_back() {
    if !require_root("own_multicast_advert_is_not_received_back") {
        return;
    }
    let lab = lab();
    let (a, b) = (lab.host("a"), lab.host("b"));
    let (b_ready, b_ready_rx) = mpsc::channel();
    let (heard_by_a, heard_by_b) = std::thread::scope(|s| {
        let on_b = s.spawn(|| receive_on(b, Delivery::Multicast, Duration::from_secs(3), b_ready));
        b_ready_rx.recv().expect("b ready");
        // a listens and sends on the same socket, as an instance does.
        let on_a = block_in(a, || async {
            let sock = VrrpSocket::open("eth0", Delivery::Multicast).expect("open");
            sock.send_to(&advert(A_IP, VRRP_GROUP, 100), VRRP_GROUP)
                .await
                .expect("send");
            let mut buf = [0u8; 2048];
            tokio::time::timeout(Duration::from_millis(700), sock.recv(&mut buf))
                .await
                .is_ok()
        });
        (on_a, on_b.join().expect("b thread"))
    });
    assert!(heard_by_b.is_some(), "the advert did go out");
    assert!(!heard_by_a, "a must not hear its own advert");
}

#[test]
fn unicast_advert_reaches_peer_and_multicast_does_not_reach_a_unicast_socket() {
    if !require_root("unicast_advert_reaches_peer_and_multicast_does_not_reach_a_unicast_socket") {
        return;
    }
    let lab = lab();
    let (a, b) = (lab.host("a"), lab.host("b"));

    let (ready_tx, ready_rx) = mpsc::channel();
    let got = std::thread::scope(|s| {
        let rx = s.spawn(|| receive_on(b, Delivery::Unicast, Duration::from_secs(3), ready_tx));
        ready_rx.recv().expect("receiver ready");
        send_from(a, Delivery::Unicast, advert(A_IP, B_IP, 100), B_IP);
        rx.join().expect("receiver thread")
    });
    let r = parse(&got.expect("b received the unicast advert"));
    assert_eq!((r.ttl, r.src, r.dst), (255, A_IP, B_IP));

    let (ready_tx, ready_rx) = mpsc::channel();
    let got = std::thread::scope(|s| {
        let rx = s.spawn(|| receive_on(b, Delivery::Unicast, Duration::from_millis(700), ready_tx));
        ready_rx.recv().expect("receiver ready");
        send_from(
            a,
            Delivery::Multicast,
            advert(A_IP, VRRP_GROUP, 100),
            VRRP_GROUP,
        );
        rx.join().expect("receiver thread")
    });
    assert!(got.is_none(), "a unicast socket joined no group");
}

#[test]
fn opening_on_a_missing_interface_names_it() {
    if !require_root("opening_on_a_missing_interface_names_it") {
        return;
    }
    let lab = lab();
    let err = block_in(lab.host("a"), || async {
        VrrpSocket::open("nosuch0", Delivery::Multicast).map(|_| ())
    });
    assert!(matches!(err, Err(SocketError::NoSuchInterface(ref n)) if n == "nosuch0"));
    let err = block_in(lab.host("a"), || async {
        let nl = Netlink::new().expect("netlink");
        nl.link_index("nosuch0").await
    });
    assert!(matches!(err, Err(NetlinkError::NoSuchLink(ref n)) if n == "nosuch0"));
}

#[test]
fn add_and_del_address_are_idempotent_and_visible_in_ip_addr() {
    if !require_root("add_and_del_address_are_idempotent_and_visible_in_ip_addr") {
        return;
    }
    let lab = lab();
    let a = lab.host("a");
    let listed = block_in(a, || async {
        let nl = Netlink::new().expect("netlink");
        nl.add_address("eth0", VIP.into(), 24, None)
            .await
            .expect("add");
        nl.add_address("eth0", VIP.into(), 24, None)
            .await
            .expect("add again");
        nl.addresses("eth0").await.expect("list")
    });
    assert!(listed.contains(&(VIP.into(), 24)), "{listed:?}");
    assert!(listed.contains(&(A_IP.into(), 24)), "{listed:?}");
    assert!(a.addresses().contains(&"198.51.100.100/24".to_owned()));

    let listed = block_in(a, || async {
        let nl = Netlink::new().expect("netlink");
        nl.del_address("eth0", VIP.into(), 24).await.expect("del");
        nl.del_address("eth0", VIP.into(), 24)
            .await
            .expect("del again");
        nl.addresses("eth0").await.expect("list")
    });
    assert_eq!(listed, vec![(A_IP.into(), 24)]);
    assert!(!a.has_address("198.51.100.100"));
}

#[test]
fn a_labelled_address_carries_its_label_in_ip_addr() {
    if !require_root("a_labelled_address_carries_its_label_in_ip_addr") {
        return;
    }
    let lab = lab();
    let a = lab.host("a");
    block_in(a, || async {
        let nl = Netlink::new().expect("netlink");
        nl.add_address("eth0", VIP.into(), 24, Some("eth0:vip"))
            .await
            .expect("add with label");
    });
    // `ip addr` prints the label last on the address's line.
    let shown = a.exec_ok(&["ip", "-4", "-o", "addr", "show", "dev", "eth0"]);
    let line = shown
        .lines()
        .find(|l| l.contains("198.51.100.100/24"))
        .unwrap_or_else(|| panic!("VIP missing: {shown}"));
    assert!(line.contains(" eth0:vip"), "{line}");
    let own = shown
        .lines()
        .find(|l| l.contains("198.51.100.11/24"))
        .unwrap_or_else(|| panic!("own address missing: {shown}"));
    assert!(!own.contains("eth0:vip"), "{own}");
    let by_label = a.exec_ok(&["ip", "-4", "-o", "addr", "show", "label", "eth0:vip"]);
    assert!(by_label.contains("198.51.100.100/24"), "{by_label}");
    block_in(a, || async {
        let nl = Netlink::new().expect("netlink");
        nl.del_address("eth0", VIP.into(), 24).await.expect("del");
    });
    assert!(!a.has_address("198.51.100.100"));
}

#[test]
fn primary_ipv4_skips_secondaries_and_link_facts_match_the_kernel() {
    if !require_root("primary_ipv4_skips_secondaries_and_link_facts_match_the_kernel") {
        return;
    }
    let lab = lab();
    let a = lab.host("a");
    // A VIP in the same subnet becomes a secondary; one in another subnet (/32) is primary
    // in its own subnet but listed after the real address.
    a.exec_ok(&["ip", "addr", "add", "198.51.100.50/24", "dev", "eth0"]);
    a.exec_ok(&["ip", "addr", "add", "203.0.113.9/32", "dev", "eth0"]);
    let (primary, mac, index, up, lo_primary) = block_in(a, || async {
        let nl = Netlink::new().expect("netlink");
        (
            nl.primary_ipv4("eth0").await.expect("primary"),
            nl.link_mac("eth0").await.expect("mac"),
            nl.link_index("eth0").await.expect("index"),
            nl.link_is_up("eth0").await.expect("up"),
            nl.primary_ipv4("lo").await.expect("lo primary"),
        )
    });
    assert_eq!(primary, Some(A_IP));
    let mac_text = mac
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":");
    assert_eq!(mac_text, a.mac());
    // `ip netns exec` mounts the namespace's own sysfs.
    let want: u32 = a
        .exec_ok(&["cat", "/sys/class/net/eth0/ifindex"])
        .trim()
        .parse()
        .expect("ifindex");
    assert_eq!(index, want);
    assert!(up);
    assert_eq!(lo_primary, Some(Ipv4Addr::LOCALHOST));

    a.exec_ok(&["ip", "addr", "flush", "dev", "eth0"]);
    let primary = block_in(a, || async {
        Netlink::new()
            .expect("netlink")
            .primary_ipv4("eth0")
            .await
            .expect("primary")
    });
    assert_eq!(primary, None, "no address, no primary");
}

/// Starts a LinkWatcher in `host`, then runs each action (which should turn eth0 up or
/// down as paired with it) and returns how long after each action started its change
/// arrived.
fn watch_link_changes(
    host: &Host,
    actions: Vec<(Box<dyn FnOnce() + Send + '_>, bool)>,
) -> Vec<Duration> {
    let (ready_tx, ready_rx) = mpsc::channel::<()>();
    let (go_tx, mut go_rx) = tokio::sync::mpsc::unbounded_channel::<(Instant, bool)>();
    let (seen_tx, seen_rx) = mpsc::channel::<Duration>();
    std::thread::scope(|s| {
        let watcher = s.spawn(move || {
            block_in(host, move || async move {
                let mut w = LinkWatcher::start().await.expect("watcher");
                assert_eq!(w.initial_state("eth0"), Some(true));
                ready_tx.send(()).expect("ready");
                // Each round: learn when the action started and what to expect, then wait.
                while let Some((started, want_up)) = go_rx.recv().await {
                    loop {
                        let c = tokio::time::timeout(Duration::from_secs(3), w.recv())
                            .await
                            .expect("link change within 3 s")
                            .expect("watcher alive");
                        if c.ifname == "eth0" {
                            assert_eq!(c.up, want_up, "{c:?}");
                            seen_tx.send(started.elapsed()).expect("report");
                            break;
                        }
                    }
                }
            })
        });
        ready_rx.recv().expect("watcher ready");
        let mut out = Vec::new();
        for (act, want_up) in actions {
            let started = Instant::now();
            go_tx.send((started, want_up)).expect("go");
            act();
            out.push(seen_rx.recv().expect("seen"));
        }
        drop(go_tx);
        watcher.join().expect("watcher thread");
        out
    })
}

#[test]
fn link_watcher_reports_admin_down_and_up_quickly() {
    if !require_root("link_watcher_reports_admin_down_and_up_quickly") {
        return;
    }
    let lab = lab();
    let a = lab.host("a");
    let took = watch_link_changes(
        a,
        vec![
            (
                Box::new(|| {
                    a.exec_ok(&["ip", "link", "set", "eth0", "down"]);
                }),
                false,
            ),
            (
                Box::new(|| {
                    a.exec_ok(&["ip", "link", "set", "eth0", "up"]);
                }),
                true,
            ),
        ],
    );
    eprintln!("admin down/up seen after {took:?} (including running `ip`)");
    for t in took {
        assert!(t < Duration::from_secs(1), "{t:?}");
    }
}

#[test]
fn link_watcher_reports_carrier_loss_and_return() {
    if !require_root("link_watcher_reports_carrier_loss_and_return") {
        return;
    }
    let lab = lab();
    let a = lab.host("a");
    // The bridge side of a's veth goes down: a's eth0 stays admin up but loses carrier.
    let took = watch_link_changes(
        a,
        vec![
            (Box::new(|| a.cut_cable()), false),
            (Box::new(|| a.mend_cable()), true),
        ],
    );
    eprintln!("carrier loss/return seen after {took:?} (including running `ip`)");
    for t in took {
        assert!(t < Duration::from_secs(1), "{t:?}");
    }
}

/// Captures ARP frames on `host`'s eth0 for `wait`, after signalling `ready`.
fn capture_arp(host: &Host, wait: Duration, ready: mpsc::Sender<()>) -> Vec<Vec<u8>> {
    host.run_in(move || {
        let proto = i32::from(0x0806u16.to_be());
        let sock = Socket::new(Domain::PACKET, Type::RAW, Some(Protocol::from(proto)))
            .expect("packet socket");
        sock.set_read_timeout(Some(Duration::from_millis(100)))
            .expect("timeout");
        ready.send(()).expect("ready");
        let deadline = Instant::now() + wait;
        let mut frames = Vec::new();
        let mut buf = [0u8; 1514];
        while Instant::now() < deadline {
            if let Ok(n) = std::io::Read::read(&mut &sock, &mut buf) {
                frames.push(buf[..n].to_vec());
            }
        }
        frames
    })
}

fn parse_mac(text: &str) -> [u8; 6] {
    let v: Vec<u8> = text
        .split(':')
        .map(|h| u8::from_str_radix(h, 16).expect("hex"))
        .collect();
    v.try_into().expect("6 bytes")
}

#[test]
fn gratuitous_arps_reach_peer_and_update_its_neighbour_table() {
    if !require_root("gratuitous_arps_reach_peer_and_update_its_neighbour_table") {
        return;
    }
    let lab = lab();
    let (a, b) = (lab.host("a"), lab.host("b"));
    // Let b create neighbour entries from gratuitous ARPs, as a router or switch would learn.
    b.exec_ok(&["sysctl", "-qw", "net.ipv4.conf.eth0.arp_accept=1"]);
    let a_mac = parse_mac(&a.mac());

    let (ready_tx, ready_rx) = mpsc::channel();
    let frames = std::thread::scope(|s| {
        let cap = s.spawn(|| capture_arp(b, Duration::from_millis(1500), ready_tx));
        ready_rx.recv().expect("capture ready");
        block_in(a, move || async move {
            let g = GarpSender::open("eth0", a_mac).expect("garp socket");
            g.send_burst(&[VIP.into()], 3, Duration::from_millis(20))
                .await
                .expect("send burst");
        });
        cap.join().expect("capture thread")
    });
    let garps: Vec<_> = frames
        .iter()
        .filter(|f| f.len() >= 42 && f[28..32] == VIP.octets())
        .collect();
    assert_eq!(garps.len(), 3, "three GARPs for the VIP: {frames:?}");
    let want = vrrp::io::garp::garp_frame(a_mac, VIP);
    for f in garps {
        assert_eq!(&f[..42], &want[..]);
    }

    assert!(
        testkit::wait_until(Duration::from_secs(2), || b.neighbour_mac("198.51.100.100")
            == Some(a.mac())),
        "b's neighbour table: {}",
        b.exec_ok(&["ip", "neigh"])
    );
}
