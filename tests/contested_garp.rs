//! After two MASTERs (a BACKUP that stopped hearing the MASTER's adverts for a moment), the
//! clients end on the winner at once, whatever order the two boxes' gratuitous ARPs reached
//! them in (issue 16, found by the chaos drill, reproduced here alone).
//!
//! The loser sends its ARPs after its first advert as MASTER (RFC 5798: advert, VIPs, ARPs),
//! and the winner answers that advert with its own burst: when the loser's arrive last, the
//! clients follow the loser, which drops the VIP 250 ms after the winner's advert preempts it.
//! keepalived's second burst comes only `garp_lower_prio_delay` later (5 s by default), and
//! until then every client of the VIP sends into a box that no longer has it (the drill saw
//! 5.4 s of connect timeouts). The winner now sends one more burst 400 ms after the last lower
//! advert. The late ARPs of the loser are sent here by the test from the loser's namespace,
//! with the loser's MAC, right after it steps down: the order a loaded loser produced.
//!
//! The same run checks the order on the loser: its listener opens before the VIP arrives and
//! closes after it left (a SYN that finds the VIP without a listener is reset by the kernel).
//!
//! Wall time: ~2 s.

mod common;

use common::*;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};
use testkit::{require_root, require_tool, wait_until, Lab};

/// One burst of gratuitous ARPs for the VIP from `host`'s eth0, with its own MAC.
fn late_arps_from(lab: &Lab, host: &str) {
    let mac: Vec<u8> = lab
        .host(host)
        .mac()
        .split(':')
        .filter_map(|b| u8::from_str_radix(b, 16).ok())
        .collect();
    let mac: [u8; 6] = mac.try_into().expect("a MAC of 6 bytes");
    let vip: IpAddr = VIP.parse().expect("vip");
    lab.host(host).run_in(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async {
            let sender = vrrp::io::garp::GarpSender::open("eth0", mac).expect("garp socket");
            sender
                .send_burst(&[vip], 3, Duration::ZERO)
                .await
                .expect("send the ARPs");
        });
    });
}

fn nft(lab: &Lab, host: &str, args: &[&str]) {
    let mut all = vec!["nft"];
    all.extend_from_slice(args);
    lab.host(host).exec_ok(&all);
}

#[test]
fn after_two_masters_the_clients_end_on_the_winner() {
    if !require_root("contested_garp") || !require_tool("contested_garp", "nft") {
        return;
    }
    let (lab, dir, _web1) = pair_lab_with_web1("contested-garp");
    let vip: SocketAddr = "198.51.100.100:80".parse().expect("vip");
    let client = lab.host("client");
    let ask = move || client.run_in(move || http_get(vip, "/", ""));

    let n1 = start_until_vip(&lab, "lb1", &dir, &gated_pair_config_v3("lb1", 101));
    let n2 = start(&lab, "lb2", &dir, &gated_pair_config_v3("lb2", 100));
    assert!(
        n2.wait_log("(VI_1) Entering BACKUP STATE", Duration::from_secs(5)),
        "{}",
        n2.log_text()
    );
    assert!(wait_until(Duration::from_secs(3), || ask()
        .is_some_and(|(s, _)| s == 200)));
    let (lb1_mac, lb2_mac) = (lab.host("lb1").mac(), lab.host("lb2").mac());
    let client_points_at =
        |mac: &str| lab.host("client").neighbour_mac(VIP).as_deref() == Some(mac);
    assert!(client_points_at(&lb1_mac));

    // lb2 stops hearing lb1: after Master_Down_Interval it takes itself for MASTER, and lb1
    // answers its lower adverts ("forcing new election").
    nft(&lab, "lb2", &["add", "table", "inet", "t"]);
    nft(
        &lab,
        "lb2",
        &[
            "add",
            "chain",
            "inet",
            "t",
            "in",
            "{ type filter hook input priority 0; }",
        ],
    );
    nft(
        &lab,
        "lb2",
        &[
            "add", "rule", "inet", "t", "in", "ip", "protocol", "112", "drop",
        ],
    );
    assert!(
        n2.wait_log("(VI_1) Entering MASTER STATE", Duration::from_secs(5)),
        "{}",
        n2.log_text()
    );
    assert!(
        n1.wait_log("with lower priority 100, ours 101", Duration::from_secs(2)),
        "{}",
        n1.log_text()
    );

    // lb2 hears lb1 again and steps down; its ARPs reach the client last.
    let stepped_down = n2.count_log("(VI_1) Entering BACKUP STATE") + 1;
    nft(&lab, "lb2", &["flush", "ruleset"]);
    assert!(
        wait_until(Duration::from_secs(2), || n2
            .count_log("(VI_1) Entering BACKUP STATE")
            >= stepped_down),
        "{}",
        n2.log_text()
    );
    late_arps_from(&lab, "lb2");
    let late = Instant::now();
    assert!(
        wait_until(Duration::from_millis(200), || client_points_at(&lb2_mac)),
        "the late ARPs did not move the client"
    );

    // lb1's burst after the contest brings the client back well before keepalived's 5 s.
    assert!(
        wait_until(Duration::from_secs(1), || client_points_at(&lb1_mac)),
        "the client still sends to lb2 {:?} after its late ARPs:\n{}",
        late.elapsed(),
        n1.log_text()
    );
    println!(
        "the client follows lb1 again {:?} after lb2's late ARPs",
        late.elapsed()
    );
    assert!(wait_no_vip(lab.host("lb2"), Duration::from_secs(2)));
    // On lb2 the listener opened before the VIP came and closed after it went: a SYN never
    // found the VIP there without a listener (the kernel would have reset it).
    assert!(
        wait_until(Duration::from_secs(2), || n2
            .log_text()
            .contains("stopped listening frontend=www")),
        "{}",
        n2.log_text()
    );
    let log = n2.log_text();
    let at = |needle: &str| {
        log.find(needle)
            .unwrap_or_else(|| panic!("no {needle:?} in lb2's log:\n{log}"))
    };
    assert!(at("listening frontend=www") < at("(VI_1) setting VIPs."));
    assert!(at("(VI_1) removing VIPs.") < at("stopped listening frontend=www"));
    assert!(wait_until(Duration::from_secs(1), || ask().is_some_and(
        |(s, b)| s == 200 && answered_by(&b) == Some("198.51.100.11")
    )));
}
