//! `vrrplb example active-active`: the config of one box of N that share M VIPs, printed as
//! YAML for `vrrplb check` and `vrrplb run`. Each VIP is its own VRRP instance (its own VRID);
//! VIP k's owner is box ((k - 1) mod N) + 1 at priority 150, and the boxes after it in ring
//! order follow at 140, 130, ... so a dead box's VIPs go to the next box, and back when it
//! returns (preemption). Each VIP has its own frontend gated by its instance, so a box serves
//! exactly the VIPs it holds. Publishing every VIP under one name (DNS round robin) spreads
//! the clients over the boxes.

use std::fmt::Write as _;
use std::net::IpAddr;
use std::process::ExitCode;

/// Priority of a VIP's owner; each box further along the ring has `PRIORITY_STEP` less.
const OWNER_PRIORITY: u32 = 150;
const PRIORITY_STEP: u32 = 10;
/// Ring positions that keep every priority at or above 60 (and above the track weight's 50).
const MAX_BOXES: u32 = 10;
const MAX_VIPS: u32 = 64;

#[derive(clap::Subcommand)]
pub enum Example {
    /// One box of N sharing M VIPs: one VRRP instance per VIP, priorities rotated so each box
    /// is MASTER of M/N of them and a dead box's VIPs go to the next box in ring order.
    ActiveActive(ActiveActive),
}

#[derive(clap::Args, Clone)]
pub struct ActiveActive {
    /// How many boxes share the VIPs (2..10).
    #[arg(long, value_name = "N")]
    boxes: u32,
    /// Which box this config is for (1..N); it owns VIPs BOX, BOX+N, BOX+2N, ...
    #[arg(long = "box", value_name = "I")]
    this_box: u32,
    /// How many VIPs (1..64; default: one per box).
    #[arg(long, value_name = "M")]
    vips: Option<u32>,
    /// The first VIP with its prefix length; the others follow it (.101, .102, ...).
    #[arg(long, default_value = "198.51.100.101/24")]
    first_vip: String,
    /// The VRID of the first VIP's instance; the others follow it.
    #[arg(long, default_value_t = 51)]
    first_vrid: u32,
    /// The interface the VIPs live on.
    #[arg(long, default_value = "eth0")]
    interface: String,
    /// Advert interval: whole seconds speak VRRPv2 ("1s"), anything else VRRPv3 ("100ms").
    #[arg(long, default_value = "1s")]
    advert: String,
    /// Port the frontends listen on at every VIP.
    #[arg(long, default_value_t = 80)]
    port: u16,
    /// A backend server ADDRESS:PORT (repeat; default 198.51.100.21:80 and .22:80).
    #[arg(long = "server", value_name = "ADDRESS:PORT")]
    servers: Vec<String>,
}

pub fn run(example: &Example) -> ExitCode {
    let Example::ActiveActive(args) = example;
    match active_active(args) {
        Ok(yaml) => {
            print!("{yaml}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}

/// The owner of VIP `k` (1-based) among `boxes` boxes, 1-based.
fn owner(k: u32, boxes: u32) -> u32 {
    (k - 1) % boxes + 1
}

/// The priority of `this_box` for VIP `k`: 150 for its owner, 10 less per step along the ring.
fn priority(k: u32, this_box: u32, boxes: u32) -> u32 {
    let steps = (this_box + boxes - owner(k, boxes)) % boxes;
    OWNER_PRIORITY - PRIORITY_STEP * steps
}

/// (advert_int as written in YAML, VRRP version): whole seconds keep VRRPv2.
fn advert(text: &str, ipv6: bool) -> Result<(String, u8), String> {
    let t = text.trim();
    let ms: u64 = if let Some(v) = t.strip_suffix("ms") {
        v.parse().ok()
    } else {
        t.strip_suffix('s')
            .unwrap_or(t)
            .parse::<u64>()
            .ok()
            .and_then(|s| s.checked_mul(1000))
    }
    .ok_or_else(|| {
        format!("--advert {text:?}: expected whole seconds (\"1s\") or ms (\"100ms\")")
    })?;
    if ms.is_multiple_of(1000) && (1000..=255_000).contains(&ms) && !ipv6 {
        return Ok(((ms / 1000).to_string(), 2));
    }
    if !(10..=40_950).contains(&ms) || !ms.is_multiple_of(10) {
        return Err(format!(
            "--advert {text:?}: VRRPv3 takes 10ms..40950ms in steps of 10 ms"
        ));
    }
    Ok((format!("{ms}ms"), 3))
}

/// The VIPs: `count` addresses from `first` ("198.51.100.101/24") up, each with its prefix.
fn vips(first: &str, count: u32) -> Result<(Vec<IpAddr>, u8), String> {
    let (addr, len) = first
        .split_once('/')
        .ok_or_else(|| format!("--first-vip {first:?}: expected ADDRESS/PREFIX"))?;
    let addr: IpAddr = addr
        .parse()
        .map_err(|_| format!("--first-vip {first:?}: {addr:?} is not an IP address"))?;
    let max_len = if addr.is_ipv4() { 32 } else { 128 };
    let len: u8 = len
        .parse()
        .ok()
        .filter(|l| *l <= max_len)
        .ok_or_else(|| format!("--first-vip {first:?}: prefix length 0..{max_len}"))?;
    let out: Option<Vec<IpAddr>> = (0..count)
        .map(|i| match addr {
            IpAddr::V4(a) => u32::from(a).checked_add(i).map(|n| IpAddr::V4(n.into())),
            IpAddr::V6(a) => u128::from(a)
                .checked_add(u128::from(i))
                .map(|n| IpAddr::V6(n.into())),
        })
        .collect();
    let out = out.ok_or_else(|| format!("--first-vip {first:?}: {count} addresses overflow"))?;
    Ok((out, len))
}

/// The options that made this file, so every box's file can be made again alike.
fn command_line(a: &ActiveActive, vips: u32) -> String {
    let mut line = format!(
        "--boxes {} --vips {vips} --box {} --first-vip {} --first-vrid {} --interface {} --advert {} --port {}",
        a.boxes, a.this_box, a.first_vip, a.first_vrid, a.interface, a.advert, a.port
    );
    for s in &a.servers {
        let _ = write!(line, " --server {s}");
    }
    line
}

/// The YAML of one box, or why the arguments do not make one.
pub fn active_active(a: &ActiveActive) -> Result<String, String> {
    let n = a.boxes;
    if !(2..=MAX_BOXES).contains(&n) {
        return Err(format!("--boxes {n}: 2..{MAX_BOXES}"));
    }
    if !(1..=n).contains(&a.this_box) {
        return Err(format!("--box {}: 1..{n} (--boxes {n})", a.this_box));
    }
    let m = a.vips.unwrap_or(n);
    if !(1..=MAX_VIPS).contains(&m) {
        return Err(format!("--vips {m}: 1..{MAX_VIPS}"));
    }
    if a.first_vrid < 1 || a.first_vrid + m - 1 > 255 {
        return Err(format!(
            "--first-vrid {}: the {m} VRIDs must lie in 1..255",
            a.first_vrid
        ));
    }
    if a.interface.is_empty()
        || a.interface
            .contains(|c: char| c.is_whitespace() || c == '"')
    {
        return Err(format!(
            "--interface {:?}: not an interface name",
            a.interface
        ));
    }
    let (addrs, len) = vips(&a.first_vip, m)?;
    let (advert_int, version) = advert(&a.advert, addrs[0].is_ipv6())?;
    let default_servers = ["198.51.100.21:80".to_owned(), "198.51.100.22:80".to_owned()];
    let servers = if a.servers.is_empty() {
        &default_servers[..]
    } else {
        &a.servers[..]
    };
    for s in servers {
        s.parse::<std::net::SocketAddr>()
            .map_err(|_| format!("--server {s:?}: expected ADDRESS:PORT"))?;
    }
    let b = a.this_box;
    let owned: Vec<String> = (1..=m)
        .filter(|k| owner(*k, n) == b)
        .map(|k| format!("VI_{k}"))
        .collect();
    let mut y = String::new();
    // Writing to a String cannot fail.
    let _ = writeln!(
        y,
        "# vrrplb on box {b} of {n} (lb{b}), active-active by VIP: {m} VIP(s), one VRRP instance\n\
         # each. This box is MASTER of {} while it is up; VIP k's owner has priority {OWNER_PRIORITY}\n\
         # and the next boxes in ring order {}, {}, ... so a dead box's VIPs go to the next box\n\
         # and come back when it returns. Publish every VIP under one DNS name (round robin).\n\
         # Generated by: vrrplb example active-active {}",
        if owned.is_empty() {
            "none".to_owned()
        } else {
            owned.join(", ")
        },
        OWNER_PRIORITY - PRIORITY_STEP,
        OWNER_PRIORITY - 2 * PRIORITY_STEP,
        command_line(a, m),
    );
    let _ = writeln!(
        y,
        "\nglobal:\n  node: lb{b}\n  log:\n    target: syslog\n    access_log: true"
    );
    if version == 3 && advert_int.ends_with("ms") {
        let _ = writeln!(
            y,
            "  vrrp_realtime_priority: 50       # sub-second adverts: the engine thread at SCHED_RR"
        );
    }
    let _ = writeln!(y, "\nvrrp_instances:");
    for (i, vip) in addrs.iter().enumerate() {
        let k = i as u32 + 1;
        let p = priority(k, b, n);
        let role = if p == OWNER_PRIORITY {
            "owner: MASTER while up".to_owned()
        } else {
            format!(
                "backup #{} (owner: lb{})",
                (OWNER_PRIORITY - p) / PRIORITY_STEP,
                owner(k, n)
            )
        };
        let _ = writeln!(y, "  - name: VI_{k}\n    interface: {}", a.interface);
        if version == 3 {
            let _ = writeln!(y, "    version: 3");
        }
        let _ = writeln!(
            y,
            "    virtual_router_id: {}\n    priority: {p}                   # {role}\n    \
             advert_int: {advert_int}\n    state: BACKUP\n    virtual_ipaddress:\n      - {vip}/{len}\n    \
             track_backends:                 # no server reachable: hand the VIP on\n      \
             - {{ backend: web, min_up: 1, weight: -50 }}",
            a.first_vrid + i as u32
        );
    }
    let _ = writeln!(
        y,
        "\nfrontends:                         # one per VIP, served while its MASTER"
    );
    for (i, vip) in addrs.iter().enumerate() {
        let k = i + 1;
        let bind = match vip {
            IpAddr::V4(v) => format!("{v}:{}", a.port),
            IpAddr::V6(v) => format!("[{v}]:{}", a.port),
        };
        let _ = writeln!(
            y,
            "  - name: www-{k}\n    bind: [\"{bind}\"]\n    gate: [VI_{k}]\n    forwarded_for: true\n    \
             timeouts: {{ client: 50s, http_request: 10s }}\n    default_backend: web"
        );
    }
    let _ = writeln!(
        y,
        "\nbackends:\n  - name: web\n    balance: roundrobin\n    servers:"
    );
    for (i, s) in servers.iter().enumerate() {
        let _ = writeln!(y, "      - {{ name: web{}, address: \"{s}\" }}", i + 1);
    }
    let _ = writeln!(
        y,
        "    health_check: {{ kind: http, path: /, interval: 2s, timeout: 1s, rise: 2, fall: 3 }}\n    \
         retries: 3\n    redispatch: true\n    timeouts: {{ connect: 5s, server: 50s, queue: 5s }}"
    );
    Ok(y)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(subcommand)]
        example: Example,
    }

    fn args(line: &str) -> ActiveActive {
        let words = std::iter::once("x").chain(line.split_whitespace());
        match Cli::try_parse_from(words).expect("arguments").example {
            Example::ActiveActive(a) => a,
        }
    }

    /// Each box owns VIPs BOX, BOX+N, ...; a dead box's VIP has its highest priority on the
    /// next box in ring order, and every box has a distinct priority for every VIP.
    #[test]
    fn priorities_rotate_around_the_ring() {
        let n = 3;
        let table: Vec<Vec<u32>> = (1..=4)
            .map(|k| (1..=n).map(|b| priority(k, b, n)).collect())
            .collect();
        assert_eq!(
            table,
            vec![
                vec![150, 140, 130],
                vec![130, 150, 140],
                vec![140, 130, 150],
                vec![150, 140, 130]
            ]
        );
        for k in 1..=6 {
            let dead = owner(k, n);
            let next = (1..=n)
                .filter(|b| *b != dead)
                .max_by_key(|b| priority(k, *b, n));
            assert_eq!(next, Some(dead % n + 1), "VIP {k}");
        }
        assert_eq!(priority(1, 10, 10), 60);
    }

    #[test]
    fn the_yaml_names_each_vip_once_with_its_gate() {
        let y = active_active(&args("active-active --boxes 3 --box 2")).expect("yaml");
        assert!(y.contains("node: lb2"), "{y}");
        assert!(y.contains("# Generated by: vrrplb example active-active --boxes 3 --vips 3 --box 2 --first-vip 198.51.100.101/24 --first-vrid 51 --interface eth0 --advert 1s --port 80\n"), "{y}");
        for (k, vip, vrid, prio) in [(1, 101, 51, 140), (2, 102, 52, 150), (3, 103, 53, 130)] {
            assert!(y.contains(&format!("- name: VI_{k}\n    interface: eth0\n    virtual_router_id: {vrid}\n    priority: {prio} ")), "{y}");
            assert!(y.contains(&format!("- 198.51.100.{vip}/24")), "{y}");
            assert!(
                y.contains(&format!(
                    "bind: [\"198.51.100.{vip}:80\"]\n    gate: [VI_{k}]"
                )),
                "{y}"
            );
        }
        assert!(
            y.contains("advert_int: 1\n") && !y.contains("version: 3"),
            "{y}"
        );
        assert!(y.contains("address: \"198.51.100.22:80\""), "{y}");
        let v3 = active_active(&args(
            "active-active --boxes 2 --box 1 --vips 4 --advert 100ms --first-vip 2001:db8::10/64 --port 8080 --server [2001:db8::21]:80",
        ))
        .expect("yaml");
        assert!(
            v3.contains("version: 3\n") && v3.contains("advert_int: 100ms"),
            "{v3}"
        );
        assert!(
            v3.contains("- 2001:db8::13/64") && v3.contains("[2001:db8::13]:8080"),
            "{v3}"
        );
        assert!(v3.contains("vrrp_realtime_priority: 50"), "{v3}");
    }

    #[test]
    fn bad_arguments_are_refused_with_a_reason() {
        for (line, why) in [
            ("active-active --boxes 1 --box 1", "--boxes 1"),
            ("active-active --boxes 3 --box 4", "--box 4"),
            ("active-active --boxes 3 --box 1 --vips 0", "--vips 0"),
            ("active-active --boxes 3 --box 1 --first-vrid 254", "1..255"),
            (
                "active-active --boxes 3 --box 1 --first-vip 198.51.100.101",
                "ADDRESS/PREFIX",
            ),
            (
                "active-active --boxes 3 --box 1 --first-vip 255.255.255.254/24",
                "overflow",
            ),
            (
                "active-active --boxes 3 --box 1 --advert 15ms",
                "steps of 10 ms",
            ),
            ("active-active --boxes 3 --box 1 --advert soon", "--advert"),
            (
                "active-active --boxes 3 --box 1 --server web1",
                "ADDRESS:PORT",
            ),
            ("active-active --boxes 3 --box 1 --interface", ""),
        ] {
            let parsed = std::iter::once("x").chain(line.split_whitespace());
            match Cli::try_parse_from(parsed) {
                Ok(Cli {
                    example: Example::ActiveActive(a),
                }) => {
                    let e = active_active(&a).expect_err(line);
                    assert!(e.contains(why), "{line}: {e}");
                }
                Err(e) => assert!(why.is_empty(), "{line}: {e}"),
            }
        }
    }
}
