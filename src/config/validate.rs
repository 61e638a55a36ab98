//! Semantic checks of a deserialised config, every error collected with its key path, and the
//! translation into the engine's typed config. `vrrplb check` judges the file, not the machine
//! it runs on: what depends on the machine (interfaces, addresses, users) is a warning.

use super::duration::DurationValue;
use super::schema::*;
use super::{did_you_mean, Diags};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogTarget {
    Syslog,
    Stderr,
}

#[derive(Debug, Clone)]
pub struct LogSettings {
    pub target: LogTarget,
    /// syslog facility code (daemon = 3, local0 = 16, ...).
    pub facility: u8,
    pub access_log: bool,
    /// Where syslog lines go: `global.log.syslog_server`, else the local `syslog_socket`.
    pub syslog: Vec<crate::syslog::Destination>,
    pub syslog_format: crate::syslog::Format,
    /// HOSTNAME of lines sent to syslog servers: `global.node`.
    pub host: String,
    pub level: tracing::Level,
}

/// A valid config: what the daemon needs, already typed.
#[derive(Debug)]
pub struct Validated {
    pub node: String,
    pub log: LogSettings,
    pub instances: Vec<vrrp::InstanceConfig>,
    pub sync_groups: Vec<vrrp::sync_group::SyncGroupConfig>,
    /// The `announce` section.
    pub announces: Vec<super::announce::Announcement>,
    /// Server addresses written as host names, with what they resolved to.
    pub resolved: super::resolve::Resolved,
    /// The file as written, for the parts translated elsewhere (the balancer); filled in by
    /// `parse` once validation is over.
    pub file: ConfigFile,
}

pub(crate) const FACILITIES: [(&str, u8); 20] = [
    ("kern", 0),
    ("user", 1),
    ("mail", 2),
    ("daemon", 3),
    ("auth", 4),
    ("syslog", 5),
    ("lpr", 6),
    ("news", 7),
    ("uucp", 8),
    ("cron", 9),
    ("authpriv", 10),
    ("ftp", 11),
    ("local0", 16),
    ("local1", 17),
    ("local2", 18),
    ("local3", 19),
    ("local4", 20),
    ("local5", 21),
    ("local6", 22),
    ("local7", 23),
];

const HEADER_VARIABLES: [&str; 5] = ["src", "src_port", "dst", "dst_port", "scheme"];
const ERROR_CODES: [i64; 7] = [400, 403, 408, 500, 502, 503, 504];

pub(crate) fn validate(
    cf: &ConfigFile,
    d: &mut Diags,
    previous: &super::resolve::Resolved,
) -> Validated {
    let mut names = super::resolve::Resolver::new(previous);
    let mut unsupported = Vec::new();
    let log = check_global(&cf.global, d);
    let scripts = check_scripts(&cf.vrrp_scripts, d);
    let backend_modes: HashMap<&str, &str> = cf
        .backends
        .iter()
        .map(|b| (b.name.as_str(), b.mode.as_deref().unwrap_or("http")))
        .collect();
    let mut instances = check_instances(cf, &scripts, &backend_modes, d);
    let sync_groups = check_sync_groups(cf, &mut instances, d);
    let local = LocalMachine::read();
    let instance_names: HashSet<&str> = cf.vrrp_instances.iter().map(|i| i.name.as_str()).collect();
    let announces = super::announce::check(cf, &scripts, &local.interfaces, d);
    let vips: HashSet<IpAddr> = instances
        .iter()
        .flat_map(|i| i.virtual_addresses.iter().map(|v| v.addr))
        .chain(announces.iter().map(|a| a.addr))
        .collect();
    check_frontends(
        cf,
        &instance_names,
        &backend_modes,
        &vips,
        &local,
        d,
        &mut unsupported,
    );
    check_backends(cf, d, &mut unsupported, &mut names);
    for inst in &instances {
        let path = path_of_instance(cf, &inst.name);
        if !local.interfaces.is_empty() && !local.interfaces.contains(&inst.interface) {
            d.warning(
                &format!("{path}.interface"),
                format!(
                    "interface {} does not exist on this machine",
                    inst.interface
                ),
            );
        }
    }
    // `run` cannot serve these, so `check` must not pass them (check ≡ run).
    for u in &unsupported {
        let path = u
            .rsplit_once('(')
            .and_then(|(_, p)| p.strip_suffix(')'))
            .unwrap_or("");
        d.error(path, format!("{u} is not implemented in this version yet"));
    }
    Validated {
        node: cf.global.node.clone().unwrap_or_else(hostname),
        log,
        instances,
        sync_groups,
        announces,
        resolved: names.resolved,
        file: ConfigFile::default(),
    }
}

/// `vrrp_sync_groups`: every member a known instance, an instance in one group at most
/// (keepalived's rules); each member learns its group's name.
fn check_sync_groups(
    cf: &ConfigFile,
    instances: &mut [vrrp::InstanceConfig],
    d: &mut Diags,
) -> Vec<vrrp::sync_group::SyncGroupConfig> {
    duplicates(
        d,
        "sync group",
        cf.vrrp_sync_groups
            .iter()
            .enumerate()
            .map(|(i, g)| (format!("vrrp_sync_groups[{i}].name"), g.name.as_str())),
    );
    let mut out = Vec::new();
    for (i, g) in cf.vrrp_sync_groups.iter().enumerate() {
        let p = format!("vrrp_sync_groups[{i}]");
        if g.group.is_empty() {
            d.error(&format!("{p}.group"), "must name at least one instance");
        }
        if g.group.len() == 1 {
            d.warning(
                &format!("{p}.group"),
                "a group of one instance has nothing to keep in step",
            );
        }
        for (j, member) in g.group.iter().enumerate() {
            let path = format!("{p}.group[{j}]");
            match instances.iter_mut().find(|x| &x.name == member) {
                None => d.error(&path, format!("no vrrp_instance named {member}")),
                Some(inst) => match &inst.sync_group {
                    Some(other) => d.error(
                        &path,
                        format!("{member} is already in sync group {other}; an instance belongs to one group"),
                    ),
                    None => inst.sync_group = Some(g.name.clone()),
                },
            }
        }
        let field = |v: &Option<String>| {
            v.as_deref()
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
        };
        out.push(vrrp::sync_group::SyncGroupConfig {
            name: g.name.clone(),
            members: g.group.clone(),
            notify: vrrp::NotifyScripts {
                master: field(&g.notify_master),
                backup: field(&g.notify_backup),
                fault: field(&g.notify_fault),
                stop: None,
                generic: field(&g.notify),
            },
        });
    }
    out
}

fn hostname() -> String {
    nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_else(|| "vrrplb".into())
}

fn path_of_instance(cf: &ConfigFile, name: &str) -> String {
    let i = cf
        .vrrp_instances
        .iter()
        .position(|x| x.name == name)
        .unwrap_or(0);
    format!("vrrp_instances[{i}]")
}

/// What this machine has, for warnings only.
struct LocalMachine {
    interfaces: HashSet<String>,
    addresses: HashSet<IpAddr>,
}

impl LocalMachine {
    fn read() -> LocalMachine {
        let interfaces = std::fs::read_dir("/sys/class/net")
            .map(|rd| {
                rd.filter_map(|e| e.ok()?.file_name().into_string().ok())
                    .collect()
            })
            .unwrap_or_default();
        let addresses = nix::ifaddrs::getifaddrs()
            .map(|it| {
                it.filter_map(|ifa| {
                    let a = ifa.address?;
                    if let Some(v4) = a.as_sockaddr_in() {
                        Some(IpAddr::V4(v4.ip()))
                    } else {
                        a.as_sockaddr_in6().map(|v6| IpAddr::V6(v6.ip()))
                    }
                })
                .collect()
            })
            .unwrap_or_default();
        LocalMachine {
            interfaces,
            addresses,
        }
    }
}

fn range(d: &mut Diags, path: &str, v: i64, lo: i64, hi: i64) -> Option<i64> {
    if (lo..=hi).contains(&v) {
        Some(v)
    } else {
        d.error(path, format!("{v} is out of range {lo}..={hi}"));
        None
    }
}

fn duration(d: &mut Diags, path: &str, v: &Option<DurationValue>, default: Duration) -> Duration {
    match v {
        None => default,
        Some(v) => v.parse().unwrap_or_else(|e| {
            d.error(path, e);
            default
        }),
    }
}

fn positive_duration(
    d: &mut Diags,
    path: &str,
    v: &Option<DurationValue>,
    default: Duration,
) -> Duration {
    let got = duration(d, path, v, default);
    if got.is_zero() {
        d.error(path, "must be greater than zero");
        return default;
    }
    got
}

fn one_of(d: &mut Diags, path: &str, v: &str, allowed: &[&str]) -> bool {
    if allowed.contains(&v) {
        return true;
    }
    let hint = did_you_mean(v, allowed)
        .map(|s| format!(" (did you mean `{s}`?)"))
        .unwrap_or_default();
    d.error(
        path,
        format!(
            "`{v}` is not allowed{hint}; allowed: {}",
            allowed.join(", ")
        ),
    );
    false
}

fn duplicates<'a>(d: &mut Diags, what: &str, names: impl Iterator<Item = (String, &'a str)>) {
    let mut seen: HashMap<&str, String> = HashMap::new();
    for (path, name) in names {
        if name.trim().is_empty() {
            d.error(&path, format!("{what} name must not be empty"));
        } else if let Some(first) = seen.get(name) {
            d.error(
                &path,
                format!("duplicate {what} name `{name}` (first defined at {first})"),
            );
        } else {
            seen.insert(name, path);
        }
    }
}

fn check_global(g: &Global, d: &mut Diags) -> LogSettings {
    let target = match g.log.target.as_deref() {
        None | Some("syslog") => LogTarget::Syslog,
        Some("stderr") => LogTarget::Stderr,
        Some(other) => {
            one_of(d, "global.log.target", other, &["syslog", "stderr"]);
            LogTarget::Syslog
        }
    };
    let facility = match g.log.facility.as_deref() {
        None => 3,
        Some(f) => match FACILITIES.iter().find(|(n, _)| *n == f) {
            Some((_, code)) => *code,
            None => {
                let names: Vec<&str> = FACILITIES.iter().map(|(n, _)| *n).collect();
                one_of(d, "global.log.facility", f, &names);
                3
            }
        },
    };
    let level = match g.log.level.as_deref() {
        None | Some("info") => tracing::Level::INFO,
        Some("error") => tracing::Level::ERROR,
        Some("warn") => tracing::Level::WARN,
        Some("debug") => tracing::Level::DEBUG,
        Some("trace") => tracing::Level::TRACE,
        Some(other) => {
            one_of(
                d,
                "global.log.level",
                other,
                &["error", "warn", "info", "debug", "trace"],
            );
            tracing::Level::INFO
        }
    };
    if let Some(m) = g.maxconn {
        range(d, "global.maxconn", m, 1, 1_000_000);
    }
    if let Some(t) = g.threads {
        range(d, "global.threads", t, 1, 64);
    }
    if let Some(p) = g.vrrp_realtime_priority {
        // sched_get_priority_max(SCHED_RR) is 99 on Linux; 0 = normal scheduling.
        range(d, "global.vrrp_realtime_priority", p, 0, 99);
    }
    if let Some(c) = &g.control_socket {
        if !c.starts_with('/') {
            d.error(
                "global.control_socket",
                format!("`{c}` must be an absolute path"),
            );
        }
    }
    if let Some(s) = &g.stats {
        check_stats(s, d);
    }
    if let Some(f) = &g.notify_fifo {
        if !f.starts_with('/') {
            d.error(
                "global.notify_fifo",
                format!("`{f}` must be an absolute path"),
            );
        }
    }
    LogSettings {
        target,
        facility,
        access_log: g.log.access_log.unwrap_or(true),
        syslog: syslog_destinations(g, target, d),
        syslog_format: match g.log.syslog_format.as_deref() {
            None | Some("rfc3164") => crate::syslog::Format::Rfc3164,
            Some("rfc5424") => crate::syslog::Format::Rfc5424,
            Some(other) => {
                one_of(
                    d,
                    "global.log.syslog_format",
                    other,
                    &["rfc3164", "rfc5424"],
                );
                crate::syslog::Format::Rfc3164
            }
        },
        host: g.node.clone().unwrap_or_else(hostname),
        level,
    }
}

/// `global.log.syslog_server` (one address or a list), else the local socket.
fn syslog_destinations(
    g: &Global,
    target: LogTarget,
    d: &mut Diags,
) -> Vec<crate::syslog::Destination> {
    use crate::syslog::Destination;
    let servers: Vec<&str> = match &g.log.syslog_server {
        None => Vec::new(),
        Some(OneOrMany::One(s)) => vec![s.as_str()],
        Some(OneOrMany::Many(list)) => list.iter().map(String::as_str).collect(),
    };
    if servers.is_empty() {
        let local = g.log.syslog_socket.as_deref().unwrap_or("/dev/log");
        return vec![Destination::Unix(PathBuf::from(local))];
    }
    if target == LogTarget::Stderr {
        d.warning(
            "global.log.syslog_server",
            "not used while global.log.target is stderr",
        );
    }
    let many = matches!(g.log.syslog_server, Some(OneOrMany::Many(_)));
    let mut out = Vec::new();
    for (i, s) in servers.iter().enumerate() {
        let path = if many {
            format!("global.log.syslog_server[{i}]")
        } else {
            "global.log.syslog_server".to_owned()
        };
        match Destination::parse(s) {
            Ok(dest) if out.contains(&dest) => d.error(&path, format!("`{s}` is listed twice")),
            Ok(dest) => out.push(dest),
            Err(e) => d.error(&path, e),
        }
    }
    out
}

fn check_stats(s: &super::schema::Stats, d: &mut Diags) {
    if let Err(e) = parse_bind(&s.bind) {
        d.error("global.stats.bind", e);
    }
    if let Some(u) = &s.uri {
        if !u.starts_with('/') || u.len() < 2 {
            d.error(
                "global.stats.uri",
                "must start with `/` and name a page (e.g. /stats)",
            );
        } else if u == "/metrics" || u.contains(';') || u.contains(char::is_whitespace) {
            d.error(
                "global.stats.uri",
                format!("`{u}` is taken by /metrics or holds `;` or spaces"),
            );
        }
    }
    duration(
        d,
        "global.stats.refresh",
        &s.refresh,
        Duration::from_secs(10),
    );
    if let Some(a) = &s.auth {
        if a.user.is_empty() || a.user.contains(':') {
            d.error(
                "global.stats.auth.user",
                "must be non-empty and without `:` (HTTP Basic)",
            );
        }
        if a.password.is_empty() {
            d.error("global.stats.auth.password", "must not be empty");
        }
    }
    if let Some(r) = &s.realm {
        if r.contains(['"', '\\', '\n', '\r']) {
            d.error(
                "global.stats.realm",
                "must not contain quotes, backslashes or line breaks",
            );
        }
    }
    if let Some(m) = s.maxconn {
        range(d, "global.stats.maxconn", m, 1, 10_000);
    }
}

fn check_scripts(
    scripts: &BTreeMap<String, VrrpScript>,
    d: &mut Diags,
) -> BTreeMap<String, vrrp::ScriptConfig> {
    let mut out = BTreeMap::new();
    for (name, s) in scripts {
        let p = format!("vrrp_scripts.{name}");
        if s.script.trim().is_empty() {
            d.error(&format!("{p}.script"), "must not be empty");
        }
        let interval = positive_duration(
            d,
            &format!("{p}.interval"),
            &s.interval,
            Duration::from_secs(1),
        );
        let timeout = positive_duration(d, &format!("{p}.timeout"), &s.timeout, interval);
        let weight = s
            .weight
            .map_or(Some(0), |w| range(d, &format!("{p}.weight"), w, -253, 253));
        let rise = s
            .rise
            .map_or(Some(1), |v| range(d, &format!("{p}.rise"), v, 1, 1000));
        let fall = s
            .fall
            .map_or(Some(1), |v| range(d, &format!("{p}.fall"), v, 1, 1000));
        if let Some(u) = &s.user {
            if matches!(nix::unistd::User::from_name(u), Ok(None)) {
                d.warning(
                    &format!("{p}.user"),
                    format!("user `{u}` does not exist on this machine"),
                );
            }
        }
        if let Some(first) = s.script.split_whitespace().next() {
            if first.starts_with('/') && !Path::new(first).exists() {
                d.warning(
                    &format!("{p}.script"),
                    format!("{first} does not exist on this machine"),
                );
            }
        }
        out.insert(
            name.clone(),
            vrrp::ScriptConfig {
                name: name.clone(),
                script: s.script.clone(),
                interval,
                timeout,
                weight: weight.unwrap_or(0) as i32,
                rise: rise.unwrap_or(1) as u32,
                fall: fall.unwrap_or(1) as u32,
                user: s.user.clone(),
            },
        );
    }
    out
}

/// `198.51.100.100/24` or `2001:db8::100/64`, optionally followed by `dev eth1` and
/// `label eth1:vip` (keepalived syntax, labels IPv4 only); no prefix = /32 (/128). `interface`
/// is the instance's, the device when `dev` is absent. The family rules (one per instance,
/// IPv6 only in version 3) are checked by the caller, which knows the instance.
fn parse_vip(text: &str, interface: &str) -> Result<vrrp::VirtualAddress, String> {
    const FORM: &str =
        "expected \"A.B.C.D/LEN [dev IFNAME] [label IFNAME:NAME]\" or \"2001:db8::100/64 [dev IFNAME]\"";
    let mut words = text.split_whitespace();
    let cidr = words.next().ok_or("must not be empty")?;
    let (mut dev, mut label) = (None, None);
    while let Some(w) = words.next() {
        let slot = match w {
            "dev" => &mut dev,
            "label" => &mut label,
            other => return Err(format!("unexpected `{other}`; {FORM}")),
        };
        if slot.is_some() {
            return Err(format!("`{w}` given twice; {FORM}"));
        }
        let value = words.next().ok_or(format!("`{w}` needs a name; {FORM}"))?;
        *slot = Some(value.to_owned());
    }
    if let Some(l) = &label {
        check_label(l, dev.as_deref().unwrap_or(interface))?;
    }
    let (text_addr, len) = match cidr.split_once('/') {
        Some((a, l)) => (a, Some(l)),
        None => (cidr, None),
    };
    let Ok(addr) = text_addr.parse::<IpAddr>() else {
        return Err(format!("`{text_addr}` is not an IP address; {FORM}"));
    };
    if addr.is_ipv6() && label.is_some() {
        return Err(
            "`label` is for IPv4 addresses only (the kernel keeps no label on IPv6 ones)".into(),
        );
    }
    let max = if addr.is_ipv6() { 128 } else { 32 };
    let len = match len {
        None => max,
        Some(l) => l
            .parse::<u8>()
            .ok()
            .filter(|l| *l <= max)
            .ok_or(format!("bad prefix length `{l}` (0..={max})"))?,
    };
    if let IpAddr::V6(v6) = addr {
        if v6.is_multicast() || v6.is_unspecified() || v6.segments()[0] & 0xffc0 == 0xfe80 {
            return Err(format!(
                "`{v6}` cannot be a virtual address (multicast, unspecified or link-local)"
            ));
        }
    }
    Ok(vrrp::VirtualAddress {
        addr,
        prefix_len: len,
        dev,
        label,
    })
}

/// An address label as the kernel stores it (IFA_LABEL, at most 15 bytes) and as iproute2
/// and keepalived accept it: the device's name, or that name, a colon and a suffix.
fn check_label(label: &str, dev: &str) -> Result<(), String> {
    if label.len() > 15 {
        return Err(format!(
            "label `{label}` is longer than 15 characters (the kernel's limit)"
        ));
    }
    let prefixed = label
        .strip_prefix(dev)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with(':'));
    if !prefixed {
        return Err(format!(
            "label `{label}` must be the device's name or start with `{dev}:` (e.g. {dev}:vip)"
        ));
    }
    Ok(())
}

/// `advert_int` in centiseconds: VRRPv2 carries whole seconds (1..=255), VRRPv3 12 bits of
/// centiseconds (10 ms..40.95 s, RFC 5798 §5.2.7).
fn advert_centiseconds(version: vrrp::Version, dur: Duration) -> Result<u16, String> {
    match version {
        vrrp::Version::V2 if dur.subsec_nanos() == 0 && (1..=255).contains(&dur.as_secs()) => {
            Ok(dur.as_secs() as u16 * 100)
        }
        vrrp::Version::V2 => Err(format!(
            "{dur:?} is not allowed: VRRPv2 carries whole seconds, 1..=255 (sub-second needs version: 3)"
        )),
        vrrp::Version::V3 => {
            // To the microsecond first: `0.1` as a float is not exactly 100 ms.
            let us = (dur.as_nanos() + 500) / 1000;
            let ms = us / 1000;
            if !us.is_multiple_of(10_000) || !(10..=40_950).contains(&ms) {
                return Err(format!(
                    "{dur:?} is not allowed: VRRPv3 carries centiseconds, 10ms..40.95s in steps of 10ms"
                ));
            }
            Ok((ms / 10) as u16)
        }
    }
}

fn check_instances(
    cf: &ConfigFile,
    scripts: &BTreeMap<String, vrrp::ScriptConfig>,
    backend_modes: &HashMap<&str, &str>,
    d: &mut Diags,
) -> Vec<vrrp::InstanceConfig> {
    duplicates(
        d,
        "instance",
        cf.vrrp_instances
            .iter()
            .enumerate()
            .map(|(i, x)| (format!("vrrp_instances[{i}].name"), x.name.as_str())),
    );
    let mut vrids: HashMap<(String, i64), String> = HashMap::new();
    let mut all_vips: HashMap<IpAddr, String> = HashMap::new();
    let mut out = Vec::new();
    for (i, x) in cf.vrrp_instances.iter().enumerate() {
        let p = format!("vrrp_instances[{i}]");
        if x.interface.trim().is_empty() {
            d.error(&format!("{p}.interface"), "must not be empty");
        }
        let vrid = range(
            d,
            &format!("{p}.virtual_router_id"),
            x.virtual_router_id,
            1,
            255,
        );
        if vrid.is_some() {
            let key = (x.interface.clone(), x.virtual_router_id);
            if let Some(first) = vrids.get(&key) {
                d.error(
                    &format!("{p}.virtual_router_id"),
                    format!(
                        "VRID {} is already used on {} by {first}; a VRID must be unique per interface",
                        x.virtual_router_id, x.interface
                    ),
                );
            } else {
                vrids.insert(key, x.name.clone());
            }
        }
        let priority = x
            .priority
            .map_or(Some(100), |v| range(d, &format!("{p}.priority"), v, 1, 255));
        let version = match x.version {
            None | Some(2) => vrrp::Version::V2,
            Some(3) => vrrp::Version::V3,
            Some(v) => {
                d.error(
                    &format!("{p}.version"),
                    format!("{v} is not a VRRP version; expected 2 or 3"),
                );
                vrrp::Version::V2
            }
        };
        let advert_int = x.advert_int.as_ref().map_or(Some(100), |v| {
            let key = format!("{p}.advert_int");
            match v.parse().and_then(|dur| advert_centiseconds(version, dur)) {
                Ok(cs) => Some(cs),
                Err(e) => {
                    d.error(&key, e);
                    None
                }
            }
        });
        let initial_state = match x.state.as_deref().map(str::to_ascii_uppercase).as_deref() {
            None | Some("BACKUP") => vrrp::InitialState::Backup,
            Some("MASTER") => vrrp::InitialState::Master,
            Some(_) => {
                one_of(
                    d,
                    &format!("{p}.state"),
                    x.state.as_deref().unwrap_or(""),
                    &["BACKUP", "MASTER"],
                );
                vrrp::InitialState::Backup
            }
        };
        let preempt_delay = duration(
            d,
            &format!("{p}.preempt_delay"),
            &x.preempt_delay,
            Duration::ZERO,
        );
        if preempt_delay > Duration::from_secs(1000) {
            d.error(
                &format!("{p}.preempt_delay"),
                format!("{preempt_delay:?} is out of range 0..=1000 s"),
            );
        }
        if x.nopreempt && !preempt_delay.is_zero() {
            d.warning(
                &format!("{p}.preempt_delay"),
                "has no effect with nopreempt: true",
            );
        }
        if x.nopreempt && (initial_state == vrrp::InitialState::Master || priority == Some(255)) {
            d.warning(
                &format!("{p}.nopreempt"),
                "ignored with state MASTER or priority 255 (as keepalived does)",
            );
        }
        if version == vrrp::Version::V3 && x.authentication.is_some() {
            d.error(
                &format!("{p}.authentication"),
                "VRRPv3 has no authentication (RFC 5798); remove it or use version: 2",
            );
        }
        let auth_pass = match &x.authentication {
            None => None,
            Some(a) => {
                let ap = format!("{p}.authentication");
                match a.auth_type.to_ascii_uppercase().as_str() {
                    "PASS" => match &a.auth_pass {
                        None => {
                            d.error(
                                &format!("{ap}.auth_pass"),
                                "missing: auth_type PASS needs auth_pass",
                            );
                            None
                        }
                        Some(pw) if pw.is_empty() || pw.len() > 8 => {
                            d.error(
                                &format!("{ap}.auth_pass"),
                                format!(
                                    "{} characters; VRRPv2 passwords are 1 to 8 characters",
                                    pw.len()
                                ),
                            );
                            None
                        }
                        Some(pw) => {
                            let mut b = [0u8; 8];
                            b[..pw.len()].copy_from_slice(pw.as_bytes());
                            Some(b)
                        }
                    },
                    "AH" => {
                        d.error(&format!("{ap}.auth_type"), "AH (IPsec) authentication is not supported; use PASS or remove authentication");
                        None
                    }
                    _ => {
                        one_of(d, &format!("{ap}.auth_type"), &a.auth_type, &["PASS"]);
                        None
                    }
                }
            }
        };
        // The family of the instance: its first VIP's (keepalived's rule: one per instance).
        let ipv6 = x
            .virtual_ipaddress
            .first()
            .and_then(|v| parse_vip(v, &x.interface).ok())
            .is_some_and(|v| v.addr.is_ipv6());
        let family = if ipv6 { "IPv6" } else { "IPv4" };
        let same_family = |d: &mut Diags, path: &str, s: &str| match s.parse::<IpAddr>() {
            Ok(a) if a.is_ipv6() == ipv6 => Some(a),
            Ok(_) => {
                d.error(
                    path,
                    format!("`{s}` is not {family}, the family of this instance's VIPs"),
                );
                None
            }
            Err(_) => {
                d.error(path, format!("`{s}` is not an {family} address"));
                None
            }
        };
        let unicast_src_ip = x
            .unicast_src_ip
            .as_ref()
            .and_then(|s| same_family(d, &format!("{p}.unicast_src_ip"), s));
        let mut unicast_peers = Vec::new();
        for (j, peer) in x.unicast_peers.iter().enumerate() {
            if let Some(a) = same_family(d, &format!("{p}.unicast_peers[{j}]"), peer) {
                unicast_peers.push(a);
            }
        }
        if x.virtual_ipaddress.is_empty() {
            d.error(
                &format!("{p}.virtual_ipaddress"),
                "at least one virtual IP address is needed",
            );
        }
        let mut vips = Vec::new();
        for (j, v) in x.virtual_ipaddress.iter().enumerate() {
            let vp = format!("{p}.virtual_ipaddress[{j}]");
            match parse_vip(v, &x.interface) {
                Ok(vip) if vip.addr.is_ipv6() != ipv6 => d.error(
                    &vp,
                    format!(
                        "{} is not {family} like the first VIP: one address family per instance (as keepalived); use a second instance for the other family",
                        vip.addr
                    ),
                ),
                Ok(vip) if vip.addr.is_ipv6() && version != vrrp::Version::V3 => d.error(
                    &vp,
                    format!(
                        "{} is IPv6, which needs VRRPv3 (version: 3); VRRPv2 carries IPv4 only",
                        vip.addr
                    ),
                ),
                Ok(vip) => {
                    if let Some(first) = all_vips.get(&vip.addr) {
                        d.error(
                            &vp,
                            format!("{} is already a virtual address of {first}", vip.addr),
                        );
                    } else {
                        all_vips.insert(vip.addr, x.name.clone());
                    }
                    vips.push(vip);
                }
                Err(e) => d.error(&vp, e),
            }
        }
        let garp_master_delay = duration(
            d,
            &format!("{p}.garp_master_delay"),
            &x.garp_master_delay,
            Duration::from_secs(5),
        );
        let garp_master_repeat = x.garp_master_repeat.map_or(Some(5), |v| {
            range(d, &format!("{p}.garp_master_repeat"), v, 1, 255)
        });
        let garp_master_refresh = duration(
            d,
            &format!("{p}.garp_master_refresh"),
            &x.garp_master_refresh,
            Duration::ZERO,
        );

        let mut track_interfaces = Vec::new();
        for (j, t) in x.track_interfaces.iter().enumerate() {
            let tp = format!("{p}.track_interfaces[{j}]");
            if t.name.trim().is_empty() {
                d.error(&format!("{tp}.name"), "must not be empty");
            }
            let w = t
                .weight
                .map_or(Some(0), |w| range(d, &format!("{tp}.weight"), w, -253, 253));
            track_interfaces.push(vrrp::TrackInterface {
                name: t.name.clone(),
                weight: w.unwrap_or(0) as i32,
            });
        }
        let mut track_scripts = Vec::new();
        for (j, t) in x.track_scripts.iter().enumerate() {
            let tp = format!("{p}.track_scripts[{j}]");
            let Some(script) = scripts.get(t.name()) else {
                let names: Vec<&str> = scripts.keys().map(String::as_str).collect();
                let hint = did_you_mean(t.name(), &names)
                    .map(|s| format!(" (did you mean `{s}`?)"))
                    .unwrap_or_default();
                d.error(&tp, format!("no vrrp_script named `{}`{hint}", t.name()));
                continue;
            };
            let w = match t.weight() {
                Some(w) => range(d, &format!("{tp}.weight"), w, -253, 253).unwrap_or(0) as i32,
                None => script.weight,
            };
            track_scripts.push(vrrp::TrackScript {
                script: script.clone(),
                weight: w,
            });
        }
        let mut track_backends = Vec::new();
        for (j, t) in x.track_backends.iter().enumerate() {
            let tp = format!("{p}.track_backends[{j}]");
            if !backend_modes.contains_key(t.backend.as_str()) {
                let names: Vec<&str> = backend_modes.keys().copied().collect();
                let hint = did_you_mean(&t.backend, &names)
                    .map(|s| format!(" (did you mean `{s}`?)"))
                    .unwrap_or_default();
                d.error(
                    &format!("{tp}.backend"),
                    format!("no backend named `{}`{hint}", t.backend),
                );
            }
            let min_up = t
                .min_up
                .map_or(Some(1), |v| range(d, &format!("{tp}.min_up"), v, 1, 10_000));
            let w = t
                .weight
                .map_or(Some(0), |w| range(d, &format!("{tp}.weight"), w, -253, 253));
            track_backends.push(vrrp::TrackBackend {
                backend: t.backend.clone(),
                min_up: min_up.unwrap_or(1) as u32,
                weight: w.unwrap_or(0) as i32,
            });
        }
        let notify_field = |d: &mut Diags, key: &str, v: &Option<String>| -> Option<String> {
            let v = v.as_deref().map(str::trim).filter(|s| !s.is_empty())?;
            if let Some(first) = v.split_whitespace().next() {
                if first.starts_with('/') && !Path::new(first).exists() {
                    d.warning(
                        &format!("{p}.{key}"),
                        format!("{first} does not exist on this machine"),
                    );
                }
            }
            Some(v.to_owned())
        };
        let notify = vrrp::NotifyScripts {
            master: notify_field(d, "notify_master", &x.notify_master),
            backup: notify_field(d, "notify_backup", &x.notify_backup),
            fault: notify_field(d, "notify_fault", &x.notify_fault),
            stop: notify_field(d, "notify_stop", &x.notify_stop),
            generic: notify_field(d, "notify", &x.notify),
        };
        out.push(vrrp::InstanceConfig {
            name: x.name.clone(),
            interface: x.interface.clone(),
            vrid: vrid.unwrap_or(1) as u8,
            priority: priority.unwrap_or(100) as u8,
            version,
            advert_int: advert_int.unwrap_or(100),
            initial_state,
            nopreempt: x.nopreempt,
            preempt_delay,
            handover_relay: x.handover_relay.unwrap_or(true),
            auth_pass,
            unicast_src_ip,
            unicast_peers,
            virtual_addresses: vips,
            garp_master_delay,
            garp_master_repeat: garp_master_repeat.unwrap_or(5) as u32,
            garp_master_refresh,
            track_interfaces,
            track_scripts,
            track_backends,
            notify,
            sync_group: None,
        });
    }
    out
}

fn parse_bind(text: &str) -> Result<SocketAddr, String> {
    // HAProxy writes ":80" and "*:80" for "every address".
    let t = text.trim();
    let t = t.strip_prefix('*').unwrap_or(t);
    let owned;
    let t = if t.starts_with(':') {
        owned = format!("0.0.0.0{t}");
        owned.as_str()
    } else {
        t
    };
    t.parse::<SocketAddr>()
        .map_err(|_| format!("`{text}` is not an address:port (e.g. \"198.51.100.100:80\", \"[2001:db8::1]:443\", \":80\")"))
}

fn check_header_template(d: &mut Diags, path: &str, tpl: &str) {
    let before = d.errors.len();
    check_header_variables(d, path, tpl);
    // Then the balancer's own parser (control characters, ...): `check` refuses what `run` would.
    if d.errors.len() == before {
        if let Err(e) = proxy::headers::HeaderTemplate::parse(tpl) {
            d.error(path, e.to_string());
        }
    }
}

fn check_header_variables(d: &mut Diags, path: &str, tpl: &str) {
    let mut rest = tpl;
    while let Some(start) = rest.find("%[") {
        let after = &rest[start + 2..];
        let Some(end) = after.find(']') else {
            d.error(path, "unterminated `%[` in header value");
            return;
        };
        let var = &after[..end];
        if !HEADER_VARIABLES.contains(&var) {
            d.error(
                path,
                format!(
                    "unknown variable `%[{var}]`; known: {}",
                    HEADER_VARIABLES.map(|v| format!("%[{v}]")).join(", ")
                ),
            );
        }
        rest = &after[end + 1..];
    }
}

/// `health_check.headers`: extra fields of the probe request (seed 001 sends
/// `User-Agent: HAProxy`). The framing fields are the probe's own.
fn check_probe_headers(d: &mut Diags, hp: &str, h: &HealthCheck) {
    for (name, value) in &h.headers {
        let path = format!("{hp}.headers.{name}");
        if !is_token(name) {
            d.error(&path, format!("`{name}` is not a valid header name"));
        } else if ["host", "connection", "content-length", "transfer-encoding"]
            .contains(&name.to_ascii_lowercase().as_str())
        {
            d.error(
                &path,
                "set by the probe itself (use health_check.host for the Host header)",
            );
        }
        if value.bytes().any(|b| (b < 0x20 && b != b'\t') || b == 0x7f) {
            d.error(&path, "control characters cannot appear in a header value");
        }
    }
}

fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

fn check_frontends(
    cf: &ConfigFile,
    instances: &HashSet<&str>,
    backend_modes: &HashMap<&str, &str>,
    vips: &HashSet<IpAddr>,
    local: &LocalMachine,
    d: &mut Diags,
    unsupported: &mut Vec<String>,
) {
    duplicates(
        d,
        "frontend",
        cf.frontends
            .iter()
            .enumerate()
            .map(|(i, f)| (format!("frontends[{i}].name"), f.name.as_str())),
    );
    let known_backend =
        |d: &mut Diags, path: &str, name: &str, mode: &str| match backend_modes.get(name) {
            None => {
                let names: Vec<&str> = backend_modes.keys().copied().collect();
                let hint = did_you_mean(name, &names)
                    .map(|s| format!(" (did you mean `{s}`?)"))
                    .unwrap_or_default();
                d.error(path, format!("no backend named `{name}`{hint}"));
            }
            Some(m) if *m != mode => d.error(
                path,
                format!("backend `{name}` is in {m} mode but this frontend is in {mode} mode"),
            ),
            _ => {}
        };
    for (i, f) in cf.frontends.iter().enumerate() {
        let p = format!("frontends[{i}]");
        let mode = f.mode.as_deref().unwrap_or("http");
        one_of(d, &format!("{p}.mode"), mode, &["http", "tcp"]);
        if f.bind.is_empty() {
            d.error(
                &format!("{p}.bind"),
                "at least one address:port to listen on is needed",
            );
        }
        for (j, b) in f.bind.iter().enumerate() {
            match parse_bind(b) {
                Ok(sa) => {
                    let ip = sa.ip();
                    if !ip.is_unspecified()
                        && !vips.contains(&ip)
                        && !local.addresses.is_empty()
                        && !local.addresses.contains(&ip)
                    {
                        d.warning(&format!("{p}.bind[{j}]"), format!("{ip} is neither on this machine nor a virtual address of this file"));
                    }
                }
                Err(e) => d.error(&format!("{p}.bind[{j}]"), e),
            }
        }
        if let Some(gate) = &f.gate {
            if gate.is_empty() {
                d.error(
                    &format!("{p}.gate"),
                    "an empty gate would never serve; remove the key to serve always",
                );
            }
            for (j, g) in gate.iter().enumerate() {
                if !instances.contains(g.as_str()) {
                    let names: Vec<&str> = instances.iter().copied().collect();
                    let hint = did_you_mean(g, &names)
                        .map(|s| format!(" (did you mean `{s}`?)"))
                        .unwrap_or_default();
                    d.error(
                        &format!("{p}.gate[{j}]"),
                        format!("no vrrp_instance named `{g}`{hint}"),
                    );
                }
            }
        }
        super::tls::validate_frontend(d, &p, f);
        if let Some(m) = f.maxconn {
            range(d, &format!("{p}.maxconn"), m, 1, 1_000_000);
        }
        if let Some(t) = &f.timeouts {
            positive_duration(
                d,
                &format!("{p}.timeouts.client"),
                &t.client,
                Duration::from_secs(50),
            );
            positive_duration(
                d,
                &format!("{p}.timeouts.http_request"),
                &t.http_request,
                Duration::from_secs(10),
            );
            positive_duration(
                d,
                &format!("{p}.timeouts.keep_alive"),
                &t.keep_alive,
                Duration::from_secs(10),
            );
        }
        check_set_headers(d, &format!("{p}.set_headers"), &f.set_headers);
        check_screening(d, &p, f, mode);
        for (j, r) in f.routes.iter().enumerate() {
            let rp = format!("{p}.routes[{j}]");
            let http_match = r.matches.host.is_some() || r.matches.path_prefix.is_some();
            if mode == "tcp" {
                if http_match || r.strip_prefix || r.require_available {
                    d.error(
                        &format!("{rp}.match"),
                        "tcp mode routes match only on `sni` (host, path_prefix, strip_prefix and require_available need http mode)",
                    );
                }
                match &r.matches.sni {
                    None => d.error(&format!("{rp}.match"), "a tcp mode route needs `sni`"),
                    Some(s) => {
                        let bare = s.strip_prefix("*.").unwrap_or(s);
                        let ok = !bare.is_empty()
                            && bare.split('.').all(|l| {
                                !l.is_empty()
                                    && l.bytes().all(|b| {
                                        b.is_ascii_alphanumeric() || b == b'-' || b == b'_'
                                    })
                            });
                        if !ok {
                            d.error(
                                &format!("{rp}.match.sni"),
                                format!(
                                    "`{s}` is not a host name (a leading `*.` wildcard is allowed)"
                                ),
                            );
                        }
                    }
                }
            } else if r.matches.sni.is_some() {
                d.error(&format!("{rp}.match.sni"), "`sni` routes need `mode: tcp`");
            } else if !http_match {
                d.error(
                    &format!("{rp}.match"),
                    "needs `host`, `path_prefix` or both",
                );
            }
            if let Some(h) = &r.matches.host {
                let bare = h.strip_prefix("*.").unwrap_or(h);
                if bare.is_empty() || bare.contains('*') || bare.contains('/') || bare.contains(' ')
                {
                    d.error(
                        &format!("{rp}.match.host"),
                        format!("`{h}` is not a host name (a leading `*.` wildcard is allowed)"),
                    );
                }
            }
            if let Some(pp) = &r.matches.path_prefix {
                if !pp.starts_with('/') {
                    d.error(
                        &format!("{rp}.match.path_prefix"),
                        format!("`{pp}` must start with `/`"),
                    );
                }
            }
            if r.strip_prefix
                && r.matches
                    .path_prefix
                    .as_deref()
                    .is_none_or(|pp| pp.trim_end_matches('/').is_empty())
            {
                d.error(
                    &format!("{rp}.strip_prefix"),
                    "needs a `path_prefix` other than `/` to strip",
                );
            }
            known_backend(d, &format!("{rp}.backend"), &r.backend, mode);
        }
        if let Some(db) = &f.default_backend {
            known_backend(d, &format!("{p}.default_backend"), db, mode);
        }
        if f.routes.is_empty() && f.default_backend.is_none() {
            d.warning(
                &p,
                "no routes and no default_backend: every request gets 503",
            );
        }
        for (code, file) in &f.error_pages {
            let ep = format!("{p}.error_pages.{code}");
            if !ERROR_CODES.contains(code) {
                d.error(
                    &ep,
                    format!(
                        "{code} is not allowed; error pages exist for {}",
                        ERROR_CODES.map(|c| c.to_string()).join(", ")
                    ),
                );
            }
            // The balancer's own reader: what `run` would refuse, `check` refuses.
            if let Err(e) = proxy::errorpage::ErrorPage::from_file(Path::new(file)) {
                d.error(&ep, e.to_string());
            }
        }
        if mode == "tcp" {
            let http_only: [(&str, bool); 4] = [
                ("set_headers", !f.set_headers.is_empty()),
                ("forwarded_for", f.forwarded_for),
                (
                    "redirect_https",
                    f.redirect_https
                        .as_ref()
                        .and_then(|r| r.options())
                        .is_some(),
                ),
                ("error_pages", !f.error_pages.is_empty()),
            ];
            for (key, used) in http_only {
                if used {
                    d.error(&format!("{p}.{key}"), "only allowed in http mode");
                }
            }
            if let Some(t) = f.timeouts.as_ref() {
                if t.http_request.is_some() || t.keep_alive.is_some() {
                    d.error(
                        &format!("{p}.timeouts"),
                        "http_request and keep_alive are http mode timeouts; tcp mode uses `client`",
                    );
                }
            }
            if f.tls.is_some() {
                // The tcp listener forwards the raw bytes: terminating TLS there is not built.
                unsupported.push(format!("TLS termination in tcp mode ({p}.tls)"));
            }
        }
    }
}

/// `200` or `"200-399"` as an inclusive range within 100..=599.
pub(crate) fn parse_status_range(v: &serde_yaml::Value) -> Option<(u16, u16)> {
    let (lo, hi) = match v {
        serde_yaml::Value::Number(n) => {
            let c = n.as_u64()?;
            (c, c)
        }
        serde_yaml::Value::String(s) => match s.split_once('-') {
            Some((a, b)) => (a.trim().parse().ok()?, b.trim().parse().ok()?),
            None => {
                let c = s.trim().parse().ok()?;
                (c, c)
            }
        },
        _ => return None,
    };
    ((100..=599).contains(&lo) && (lo..=599).contains(&hi)).then_some((lo as u16, hi as u16))
}

/// Backend `tls`: loads every file as `run` will (lb.md §10 "To servers").
fn check_backend_tls(d: &mut Diags, p: &str, t: &BackendTls) {
    if t.verify.unwrap_or(true) && t.ca_file.is_none() && !t.system {
        d.error(
            &format!("{p}.tls.ca_file"),
            "verify is on (the default) but neither ca_file nor system: true is given",
        );
        return;
    }
    if t.verify == Some(false) {
        d.warning(
            &format!("{p}.tls.verify"),
            "server certificates are not verified",
        );
    }
    if t.key.is_some() && t.cert.is_none() {
        d.error(&format!("{p}.tls.key"), "a key needs its cert");
        return;
    }
    let settings = super::translate::server_tls(t);
    if let Err(e) = proxy::upstream_tls::configured_name(&settings) {
        let key = if t.sni.is_some() {
            "sni"
        } else {
            "verify_host"
        };
        d.error(&format!("{p}.tls.{key}"), e.to_string());
    }
    if let Err(e) = proxy::upstream_tls::client_config(&settings) {
        use proxy::upstream_tls::TlsSetupError as E;
        let key = match e {
            E::CaFile { .. } => "ca_file",
            E::SystemRoots(_) => "system",
            E::Cert { .. } | E::ClientAuth(_) => "cert",
            E::Key { .. } => "key",
            E::NoRoots | E::Name(_) => "verify",
        };
        d.error(&format!("{p}.tls.{key}"), e.to_string());
    }
}

fn check_set_headers(d: &mut Diags, path: &str, set: &std::collections::BTreeMap<String, String>) {
    for (name, tpl) in set {
        let hp = format!("{path}.{name}");
        if !is_token(name) {
            d.error(&hp, format!("`{name}` is not a valid header name"));
        }
        check_header_template(d, &hp, tpl);
    }
}

/// HAProxy's `deny_status` values.
const DENY_CODES: [i64; 17] = [
    200, 400, 401, 403, 404, 405, 407, 408, 410, 413, 425, 429, 500, 501, 502, 503, 504,
];

/// `monitor_uri`, `del_headers` and `rules` of one frontend.
fn check_screening(d: &mut Diags, p: &str, f: &super::schema::Frontend, mode: &str) {
    let tcp = mode == "tcp";
    if let Some(u) = &f.monitor_uri {
        let mp = format!("{p}.monitor_uri");
        if tcp {
            d.error(&mp, "only allowed in http mode");
        } else if !u.starts_with('/') || u.bytes().any(|b| b <= b' ' || b == 0x7f) {
            d.error(
                &mp,
                format!("`{u}` must be a path starting with `/`, without spaces"),
            );
        }
    }
    for (j, name) in f.del_headers.iter().enumerate() {
        let hp = format!("{p}.del_headers[{j}]");
        if tcp {
            d.error(&hp, "only allowed in http mode");
        } else if !is_token(name) {
            d.error(&hp, format!("`{name}` is not a valid header name"));
        }
    }
    for (j, r) in f.rules.iter().enumerate() {
        let rp = format!("{p}.rules[{j}]");
        match (r.deny, &r.allow) {
            (Some(code), None) => {
                if !DENY_CODES.contains(&code) {
                    d.error(
                        &format!("{rp}.deny"),
                        format!(
                            "{code} is not a deny status; use one of {}",
                            DENY_CODES.map(|c| c.to_string()).join(", ")
                        ),
                    );
                }
            }
            (None, Some(serde_yaml::Value::Bool(true) | serde_yaml::Value::Null)) => {}
            (None, Some(_)) => d.error(
                &format!("{rp}.allow"),
                "`allow` takes `true` (remove the rule to not allow)",
            ),
            (None, None) => d.error(&rp, "needs `deny: <status>` or `allow: true`"),
            (Some(_), Some(_)) => d.error(&rp, "`deny` and `allow` exclude each other"),
        }
        let m = &r.matches;
        for (k, net) in m.src.iter().enumerate() {
            if let Err(e) = proxy::config::Cidr::parse(net) {
                d.error(&format!("{rp}.match.src[{k}]"), e);
            }
        }
        for (k, method) in m.method.iter().enumerate() {
            if !is_token(method) {
                d.error(
                    &format!("{rp}.match.method[{k}]"),
                    format!("`{method}` is not an HTTP method"),
                );
            }
        }
        if let Some(pp) = &m.path_prefix {
            if !pp.starts_with('/') {
                d.error(
                    &format!("{rp}.match.path_prefix"),
                    format!("`{pp}` must start with `/`"),
                );
            }
        }
        if tcp && (!m.method.is_empty() || m.path_prefix.is_some()) {
            d.error(
                &format!("{rp}.match"),
                "tcp mode rules match only on `src` (method and path_prefix need http mode)",
            );
        }
    }
}

/// `IP:PORT`, or `HOST:PORT` resolved now (see [`super::resolve`]).
fn check_server_address(
    d: &mut Diags,
    path: &str,
    text: &str,
    names: &mut super::resolve::Resolver,
) {
    use super::resolve::{host_and_port, Lookup};
    if text.parse::<SocketAddr>().is_ok() {
        return;
    }
    let Some((host, port)) = host_and_port(text) else {
        d.error(
            path,
            format!("`{text}` is not an IP:port or host:port address (e.g. \"198.51.100.21:80\", \"db1.example.test:5432\")"),
        );
        return;
    };
    match names.lookup(text, host, port) {
        Lookup::Found => {}
        Lookup::Kept(a, why) => d.warning(
            path,
            format!("`{host}` does not resolve now ({why}); the server keeps its last address {a}"),
        ),
        Lookup::Failed(why) => d.error(path, format!("`{host}` does not resolve: {why}")),
    }
}

fn check_backends(
    cf: &ConfigFile,
    d: &mut Diags,
    unsupported: &mut Vec<String>,
    names: &mut super::resolve::Resolver,
) {
    duplicates(
        d,
        "backend",
        cf.backends
            .iter()
            .enumerate()
            .map(|(i, b)| (format!("backends[{i}].name"), b.name.as_str())),
    );
    for (i, b) in cf.backends.iter().enumerate() {
        let p = format!("backends[{i}]");
        let mode = b.mode.as_deref().unwrap_or("http");
        one_of(d, &format!("{p}.mode"), mode, &["http", "tcp"]);
        if let Some(v) = &b.send_proxy {
            one_of(d, &format!("{p}.send_proxy"), v, &["v1", "v2"]);
        }
        if let Some(v) = &b.on_marked_down {
            one_of(d, &format!("{p}.on_marked_down"), v, &["shutdown_sessions"]);
        }
        check_set_headers(d, &format!("{p}.set_headers"), &b.set_headers);
        if mode == "tcp" && !b.set_headers.is_empty() {
            d.error(&format!("{p}.set_headers"), "only allowed in http mode");
        }
        if mode == "tcp" {
            if b.tls.is_some() {
                // The tcp session connects in plain TCP: re-encryption there is not built.
                unsupported.push(format!("TLS to servers in tcp mode ({p}.tls)"));
            }
            if b.http_mode.is_some() {
                d.error(&format!("{p}.http_mode"), "only allowed in http mode");
            }
            if b.retry_on.iter().any(|r| r == "empty-response") {
                d.error(
                    &format!("{p}.retry_on"),
                    "empty-response needs http mode (tcp mode retries connect failures only)",
                );
            }
        }
        if let Some(bal) = &b.balance {
            one_of(
                d,
                &format!("{p}.balance"),
                bal,
                &["roundrobin", "leastconn", "source"],
            );
        }
        if b.servers.is_empty() {
            d.error(
                &format!("{p}.servers"),
                "the server list is empty; a backend needs at least one server",
            );
        }
        duplicates(
            d,
            "server",
            b.servers
                .iter()
                .enumerate()
                .map(|(j, s)| (format!("{p}.servers[{j}].name"), s.name.as_str())),
        );
        for (j, s) in b.servers.iter().enumerate() {
            let sp = format!("{p}.servers[{j}]");
            check_server_address(d, &format!("{sp}.address"), &s.address, names);
            if let Some(w) = s.weight {
                range(d, &format!("{sp}.weight"), w, 0, 256);
            }
            if let Some(m) = s.maxconn {
                range(d, &format!("{sp}.maxconn"), m, 0, 1_000_000);
            }
            if let Some(port) = s.check_port {
                range(d, &format!("{sp}.check_port"), port, 1, 65535);
            }
        }
        match &b.health_check {
            None => d.warning(&p, "no health_check: servers are always considered UP"),
            Some(h) => {
                let hp = format!("{p}.health_check");
                let kind = h.kind.as_deref().unwrap_or("http");
                one_of(d, &format!("{hp}.kind"), kind, &["http", "tcp"]);
                if let Some(path) = &h.path {
                    if !path.starts_with('/') {
                        d.error(
                            &format!("{hp}.path"),
                            format!("`{path}` must start with `/`"),
                        );
                    }
                }
                let interval = positive_duration(
                    d,
                    &format!("{hp}.interval"),
                    &h.interval,
                    Duration::from_secs(2),
                );
                let timeout = positive_duration(d, &format!("{hp}.timeout"), &h.timeout, interval);
                if timeout > interval {
                    d.error(
                        &format!("{hp}.timeout"),
                        format!("{timeout:?} must not exceed the interval ({interval:?})"),
                    );
                }
                if let Some(r) = h.rise {
                    range(d, &format!("{hp}.rise"), r, 1, 1000);
                }
                if let Some(f) = h.fall {
                    range(d, &format!("{hp}.fall"), f, 1, 1000);
                }
                if let Some(port) = h.port {
                    range(d, &format!("{hp}.port"), port, 1, 65535);
                }
                if let Some(m) = &h.method {
                    one_of(d, &format!("{hp}.method"), m, &["GET", "HEAD", "OPTIONS"]);
                }
                if let Some(list) = &h.expect_status {
                    for (k, v) in list.iter().enumerate() {
                        if parse_status_range(v).is_none() {
                            d.error(&format!("{hp}.expect_status[{k}]"), "expected a status code (200) or a range (\"200-399\") within 100..=599");
                        }
                    }
                }
                positive_duration(
                    d,
                    &format!("{hp}.fast_interval"),
                    &h.fast_interval,
                    interval,
                );
                positive_duration(
                    d,
                    &format!("{hp}.down_interval"),
                    &h.down_interval,
                    interval,
                );
                if let Some(st) = &h.initial_state {
                    one_of(d, &format!("{hp}.initial_state"), st, &["up", "down"]);
                }
                check_probe_headers(d, &hp, h);
            }
        }
        if let Some(c) = &b.cookie {
            let cp = format!("{p}.cookie");
            if !is_token(&c.name) {
                d.error(
                    &format!("{cp}.name"),
                    format!("`{}` is not a valid cookie name", c.name),
                );
            }
            if let Some(m) = &c.mode {
                one_of(d, &format!("{cp}.mode"), m, &["insert"]);
            }
            if mode == "tcp" {
                d.error(&cp, "cookies need http mode");
            }
        }
        if let Some(r) = b.retries {
            range(d, &format!("{p}.retries"), r, 0, 100);
        }
        if let Some(t) = &b.timeouts {
            positive_duration(
                d,
                &format!("{p}.timeouts.connect"),
                &t.connect,
                Duration::from_secs(5),
            );
            positive_duration(
                d,
                &format!("{p}.timeouts.server"),
                &t.server,
                Duration::from_secs(50),
            );
            positive_duration(
                d,
                &format!("{p}.timeouts.queue"),
                &t.queue,
                Duration::from_secs(5),
            );
            positive_duration(
                d,
                &format!("{p}.timeouts.server_idle"),
                &t.server_idle,
                Duration::from_secs(2),
            );
            if t.tunnel.is_some() {
                positive_duration(
                    d,
                    &format!("{p}.timeouts.tunnel"),
                    &t.tunnel,
                    Duration::from_secs(3600),
                );
            }
        }
        if let Some(t) = &b.tls {
            check_backend_tls(d, &p, t);
        }
        if let Some(m) = &b.http_mode {
            if one_of(
                d,
                &format!("{p}.http_mode"),
                m,
                &["keep-alive", "server-close", "close"],
            ) && m != "keep-alive"
            {
                unsupported.push(format!("http_mode {m} ({p}.http_mode)"));
            }
        }
        for (j, r) in b.retry_on.iter().enumerate() {
            one_of(
                d,
                &format!("{p}.retry_on[{j}]"),
                r,
                &["conn-failure", "empty-response"],
            );
        }
    }
}
