//! The hand-over relay: for a moment after it takes the VIPs from a MASTER that is still up
//! (it preempted one, or one resigned with a priority-0 advert), a new MASTER passes the TCP
//! segments of connections it does not know to that old MASTER, which still holds the VIPs
//! for its hand-back (`HANDBACK` in instance.rs) and owns those connections.
//!
//! Why: a client's ARP entry for a VIP moves at one instant, on the new MASTER's gratuitous
//! ARP. A connection whose handshake went to the old MASTER and whose next segment leaves
//! after that instant reaches the new MASTER, whose kernel knows no such connection and
//! answers with a reset: `connect: connection reset` or `read: connection reset` in the
//! client, for a request that was never lost by anything but the move. The chaos drill saw
//! it in ~1 of 40 moves of a 50 requests/s client (issue 16; a capture showed the SYN and
//! SYN-ACK with one box, the gratuitous ARP, then the request to the other box and its
//! reset). No timing of the ARP avoids it: some handshake is always in flight.
//!
//! How: an nftables table of our own, loaded with `nft` (the kernel's packet filter, which
//! every Debian box has) for the first 100 ms of the hand-back (the driver's `RELAY_WINDOW`:
//! the race needs a few ms past our gratuitous ARPs, and the table must be gone before the
//! old MASTER lets the VIPs go, or what it passes on is lost). Its one rule, at prerouting after
//! connection tracking: a TCP segment to a VIP that is not a SYN and that connection tracking
//! has not seen start here (state new or invalid) is duplicated to the old MASTER's address
//! (the duplicate keeps its destination, the VIP, which the old MASTER still holds), and the
//! original dropped, so our kernel does not reset it. Our own connections (their SYN came
//! here, tracked since the table exists) are untouched. While the table exists the kernel
//! tracks connections in this namespace (what any stateful firewall does all the time).
//!
//! Not for a MASTER that vanished (nothing holds its connections any more) and not without
//! `nft` (then such connections are reset as before, and the log says why once).

use std::fmt::Write as _;
use std::io;
use std::net::IpAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::OnceLock;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::process::Command;

/// How long one `nft` run may take (it takes a few ms).
const NFT_LIMIT: Duration = Duration::from_secs(2);

/// The relay of one VRRP instance: its nftables table and the VIPs it covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Relay {
    ipv6: bool,
    table: String,
    interface: String,
    vips: Vec<IpAddr>,
}

impl Relay {
    /// The relay of the instance with this VRID on `interface`; `vips` of the other family
    /// than `ipv6` are left out (an instance has one family).
    pub fn new(vrid: u8, interface: &str, vips: &[IpAddr], ipv6: bool) -> Relay {
        let iface: String = interface
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
            .collect();
        Relay {
            ipv6,
            table: format!("vrrplb_relay_{vrid}_{iface}"),
            interface: interface.to_owned(),
            vips: vips
                .iter()
                .copied()
                .filter(|v| v.is_ipv6() == ipv6)
                .collect(),
        }
    }

    fn family(&self) -> &'static str {
        if self.ipv6 {
            "ip6"
        } else {
            "ip"
        }
    }

    pub fn table(&self) -> &str {
        &self.table
    }

    /// The `nft -f` input that (re)creates the table, relaying to `previous`. One
    /// transaction: an older table of the same name is replaced, never doubled.
    pub fn ruleset(&self, previous: IpAddr) -> String {
        let fam = self.family();
        let vips = self
            .vips
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ");
        let mut s = self.removal();
        let _ = write!(
            s,
            "table {fam} {t} {{\n  chain relay {{\n    type filter hook prerouting priority -150; policy accept;\n    \
             {fam} daddr {{ {vips} }} tcp flags & syn == 0 ct state {{ new, invalid }} counter dup to {previous} device \"{dev}\" drop\n  }}\n}}\n",
            t = self.table,
            dev = self.interface,
        );
        s
    }

    /// The `nft -f` input that removes the table, present or not.
    pub fn removal(&self) -> String {
        let fam = self.family();
        format!(
            "add table {fam} {t}\ndelete table {fam} {t}\n",
            t = self.table
        )
    }

    /// Loads the table: from now on segments of unknown connections to the VIPs go to
    /// `previous`.
    pub async fn open(&self, previous: IpAddr) -> io::Result<()> {
        if self.vips.is_empty() {
            return Ok(());
        }
        nft(&[], Some(&self.ruleset(previous))).await.map(drop)
    }

    /// Removes the table; returns how many segments it passed on (when it could still read
    /// its counter).
    pub async fn close(&self) -> io::Result<Option<u64>> {
        let listed = nft(&["list", "table", self.family(), &self.table], None)
            .await
            .ok()
            .map(|l| relayed_packets(&l));
        nft(&[], Some(&self.removal())).await?;
        Ok(listed)
    }

    /// Removes a table a killed process left (best effort, at start).
    pub async fn clear_leftover(&self) -> io::Result<()> {
        nft(&[], Some(&self.removal())).await.map(drop)
    }
}

/// The segments counted by the table's rule, from `nft list table` ("counter packets N").
pub fn relayed_packets(listing: &str) -> u64 {
    listing
        .split("counter packets ")
        .skip(1)
        .filter_map(|rest| rest.split_whitespace().next())
        .filter_map(|n| n.parse::<u64>().ok())
        .sum()
}

/// Where `nft` is: the usual sbin paths first (a service's PATH may lack them), then PATH.
fn nft_path() -> Option<&'static PathBuf> {
    static PATH: OnceLock<Option<PathBuf>> = OnceLock::new();
    PATH.get_or_init(|| {
        let fixed = ["/usr/sbin/nft", "/sbin/nft", "/usr/local/sbin/nft"]
            .into_iter()
            .map(PathBuf::from);
        let on_path = std::env::var_os("PATH")
            .map(|p| {
                std::env::split_paths(&p)
                    .map(|d| d.join("nft"))
                    .collect::<Vec<_>>()
            })
            .unwrap_or_default();
        fixed.chain(on_path).find(|p| p.is_file())
    })
    .as_ref()
}

/// Whether `nft` was found.
pub fn available() -> bool {
    nft_path().is_some()
}

/// Runs `nft ARGS` (with `-f -` and `input` on stdin when given); its stdout, or an error
/// with its stderr.
async fn nft(args: &[&str], input: Option<&str>) -> io::Result<String> {
    let Some(path) = nft_path() else {
        return Err(io::Error::new(io::ErrorKind::NotFound, "nft not found"));
    };
    let mut cmd = Command::new(path);
    if input.is_some() {
        cmd.args(["-f", "-"]);
    }
    cmd.args(args)
        .stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let run = async {
        let mut child = cmd.spawn()?;
        if let (Some(text), Some(mut stdin)) = (input, child.stdin.take()) {
            stdin.write_all(text.as_bytes()).await?;
        }
        child.wait_with_output().await
    };
    let out = tokio::time::timeout(NFT_LIMIT, run)
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "nft did not finish within 2 s"))??;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        let err = String::from_utf8_lossy(&out.stderr);
        let first = err.lines().next().unwrap_or("").trim();
        Err(io::Error::other(format!(
            "nft failed ({}): {first}",
            out.status
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("test address")
    }

    #[test]
    fn the_rule_covers_the_vips_of_the_instance_family_only() {
        let r = Relay::new(
            51,
            "eth0.10",
            &[
                ip("198.51.100.100"),
                ip("2001:db8::1"),
                ip("198.51.100.101"),
            ],
            false,
        );
        assert_eq!(r.table(), "vrrplb_relay_51_eth0_10");
        let text = r.ruleset(ip("198.51.100.12"));
        assert!(text.starts_with(
            "add table ip vrrplb_relay_51_eth0_10\ndelete table ip vrrplb_relay_51_eth0_10\n"
        ));
        assert!(text.contains(
            "ip daddr { 198.51.100.100, 198.51.100.101 } tcp flags & syn == 0 ct state { new, invalid } counter dup to 198.51.100.12 device \"eth0.10\" drop"
        ), "{text}");
        let v6 = Relay::new(52, "eth0", &[ip("2001:db8::1")], true);
        assert!(v6
            .ruleset(ip("fe80::1"))
            .contains("table ip6 vrrplb_relay_52_eth0 {"));
        assert!(v6
            .ruleset(ip("fe80::1"))
            .contains("ip6 daddr { 2001:db8::1 }"));
    }

    #[test]
    fn the_counter_is_read_from_the_listing() {
        let listing = "table ip t {\n\tchain relay {\n\t\ttype filter hook prerouting priority mangle; policy accept;\n\t\tip daddr 198.51.100.100 tcp flags ! syn ct state { invalid, new } counter packets 7 bytes 490 dup to 198.51.100.12 device \"eth0\" drop\n\t}\n}\n";
        assert_eq!(relayed_packets(listing), 7);
        assert_eq!(relayed_packets("nothing"), 0);
    }
}
