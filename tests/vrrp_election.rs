//! VRRP end to end: election, hard failure, graceful stop, with the real binary in namespaces.

mod common;

use common::*;
use std::time::{Duration, Instant};
use testkit::{require_root, require_tool, Lab, TempDir};

#[test]
fn higher_priority_node_becomes_the_only_master_and_adverts_decode_in_tshark() {
    if !require_root("election") || !require_tool("election", "tshark") {
        return;
    }
    let lab = Lab::new(&[("lb1", "198.51.100.11/24"), ("lb2", "198.51.100.12/24")]);
    let dir = TempDir::new("election");
    // Capture adverts on the bridge while the pair elects.
    let pcap = dir.join("adverts.pcap");
    let mut cap = lab.bridge_command("tshark");
    cap.args(["-i", "br0", "-f", "ip proto 112", "-a", "duration:8", "-w"])
        .arg(&pcap);
    let capture = std::thread::spawn(move || run_with_timeout(cap, Duration::from_secs(20)));
    std::thread::sleep(Duration::from_millis(1500));

    let t0 = Instant::now();
    let n1 = start(&lab, "lb1", &dir, &pair_config("lb1", 101, "", ""));
    let n2 = start(&lab, "lb2", &dir, &pair_config("lb2", 100, "", ""));
    let bound = master_down(101) + Duration::from_secs(1);
    let took = wait_vip(lab.host("lb1"), t0, bound + Duration::from_secs(2));
    println!("election: lb1 (priority 101) holds the VIP after {took:?} (bound {bound:?})");
    assert!(
        took.is_some_and(|t| t <= bound),
        "lb1 did not get the VIP within {bound:?}: {took:?}\n{}",
        n1.log_text()
    );
    assert!(
        n1.wait_log("(VI_1) Entering MASTER STATE", Duration::from_secs(2)),
        "{}",
        n1.log_text()
    );
    assert!(
        n2.log_text()
            .contains("(VI_1) Entering BACKUP STATE (init)"),
        "{}",
        n2.log_text()
    );
    // Both timers start together and differ by 4 ms, so lb2 may win the first race and step
    // down on lb1's first advert (RFC 3768 6.4.3); by the bound, lb1 alone holds the VIP.
    assert!(
        wait_no_vip(lab.host("lb2"), bound.saturating_sub(t0.elapsed())),
        "lb2 still holds the VIP at the bound"
    );
    // Stay a while: lb2 must not take the VIP back while lb1 advertises.
    let masters_before = n2.count_log("Entering MASTER STATE");
    std::thread::sleep(Duration::from_secs(4));
    assert!(!lab.host("lb2").has_address(VIP), "both hold the VIP");
    assert!(lab.host("lb1").has_address(VIP), "lb1 lost the VIP");
    assert_eq!(
        n2.count_log("Entering MASTER STATE"),
        masters_before,
        "{}",
        n2.log_text()
    );

    let out = capture.join().expect("capture thread");
    assert!(
        pcap.exists(),
        "tshark wrote nothing: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut read = std::process::Command::new("tshark");
    read.args(["-r"]).arg(&pcap).args([
        "-T",
        "fields",
        "-e",
        "ip.src",
        "-e",
        "ip.ttl",
        "-e",
        "vrrp.version",
        "-e",
        "vrrp.type",
        "-e",
        "vrrp.virt_rtr_id",
        "-e",
        "vrrp.prio",
        "-e",
        "vrrp.checksum.status",
        "-e",
        "vrrp.ip_addr",
    ]);
    let decoded = run_with_timeout(read, Duration::from_secs(30));
    let text = String::from_utf8_lossy(&decoded.stdout);
    let lines: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("198.51.100.11"))
        .collect();
    println!(
        "tshark decoded {} adverts from lb1, first: {:?}",
        lines.len(),
        lines.first()
    );
    assert!(
        lines.len() >= 2,
        "too few adverts decoded:\n{text}\n{}",
        String::from_utf8_lossy(&decoded.stderr)
    );
    for l in &lines {
        let f: Vec<&str> = l.split('\t').collect();
        // src, ttl 255, version 2, type 1 (advertisement), VRID 51, priority 101, checksum good, VIP
        assert_eq!(&f[1..6], ["255", "2", "1", "51", "101"], "{l}");
        // Wireshark checksum status: 0 bad, 1 good, 2 unverified.
        assert_eq!(f[6], "1", "checksum status not good in {l}");
        assert_eq!(f[7], VIP, "{l}");
    }
}
