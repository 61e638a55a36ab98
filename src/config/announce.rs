//! The `announce` section: addresses this box holds on a local interface while it is healthy,
//! for the box's routing daemon (FRR's bgpd with a `network` statement) to announce to the
//! routers, which spread flows over every box that announces (ECMP). vrrplb speaks no BGP: the
//! address's presence is the whole interface between the two.

use super::did_you_mean;
use super::schema::ConfigFile;
use super::Diags;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::IpAddr;

/// One validated announcement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Announcement {
    pub name: String,
    pub addr: IpAddr,
    pub prefix_len: u8,
    pub interface: String,
    /// Frontends gated by this announcement.
    pub frontends: Vec<String>,
    /// (backend, servers UP needed).
    pub backends: Vec<(String, u32)>,
    pub scripts: Vec<vrrp::ScriptConfig>,
}

impl Announcement {
    /// `198.51.100.200/32`, as logs and `vrrplb status` show it.
    pub fn address(&self) -> String {
        format!("{}/{}", self.addr, self.prefix_len)
    }

    /// The key of this announcement in the gate table's set of serving sources, kept apart
    /// from VRRP instance names.
    pub fn gate_key(&self) -> String {
        gate_key(&self.name)
    }
}

pub fn gate_key(name: &str) -> String {
    format!("announce:{name}")
}

/// A host address: the prefix, when written, must be /32 (IPv4) or /128 (IPv6): a wider one
/// would add a connected subnet route on the box, which bgpd would then announce too.
fn parse_host(text: &str) -> Result<(IpAddr, u8), String> {
    let (ip, len) = match text.trim().split_once('/') {
        Some((ip, len)) => (ip, Some(len)),
        None => (text.trim(), None),
    };
    let addr: IpAddr = ip
        .parse()
        .map_err(|_| format!("`{text}` is not an IP address"))?;
    let host = if addr.is_ipv4() { 32 } else { 128 };
    match len.map(str::parse::<u8>) {
        None => Ok((addr, host)),
        Some(Ok(l)) if l == host => Ok((addr, host)),
        Some(_) => Err(format!(
            "`{text}`: an announced address is one host (/{host}), so that only it is announced"
        )),
    }
}

/// Checks the section; `scripts` are the validated `vrrp_scripts`, `interfaces` this
/// machine's (empty when unknown: no warning then).
pub(super) fn check(
    cf: &ConfigFile,
    scripts: &BTreeMap<String, vrrp::ScriptConfig>,
    interfaces: &HashSet<String>,
    d: &mut Diags,
) -> Vec<Announcement> {
    let mut out = Vec::new();
    let mut names: HashMap<String, String> = HashMap::new();
    let mut addrs: HashMap<IpAddr, String> = HashMap::new();
    for (i, a) in cf.announce.iter().enumerate() {
        let p = format!("announce[{i}]");
        let parsed = parse_host(&a.address);
        let (addr, prefix_len) = match parsed {
            Ok(v) => v,
            Err(e) => {
                d.error(&format!("{p}.address"), e);
                continue;
            }
        };
        if let Some(first) = addrs.insert(addr, p.clone()) {
            d.error(
                &format!("{p}.address"),
                format!("{addr} is already announced at {first}"),
            );
        }
        let name = a.name.clone().unwrap_or_else(|| addr.to_string());
        if name.trim().is_empty() {
            d.error(&format!("{p}.name"), "must not be empty");
        } else if let Some(first) = names.insert(name.clone(), p.clone()) {
            d.error(
                &format!("{p}.name"),
                format!("duplicate announce name `{name}` (first defined at {first})"),
            );
        }
        let interface = a.interface.clone().unwrap_or_else(|| "lo".to_owned());
        if interface.trim().is_empty() {
            d.error(&format!("{p}.interface"), "must not be empty");
        } else if !interfaces.is_empty() && !interfaces.contains(&interface) {
            d.warning(
                &format!("{p}.interface"),
                format!("interface {interface} does not exist on this machine"),
            );
        }
        check_frontends(cf, &p, addr, &a.frontends, d);
        let mut backends = Vec::new();
        for (j, t) in a.track_backends.iter().enumerate() {
            let tp = format!("{p}.track_backends[{j}]");
            if !cf.backends.iter().any(|b| b.name == t.backend) {
                let known: Vec<&str> = cf.backends.iter().map(|b| b.name.as_str()).collect();
                let hint = did_you_mean(&t.backend, &known)
                    .map(|s| format!(" (did you mean `{s}`?)"))
                    .unwrap_or_default();
                d.error(
                    &format!("{tp}.backend"),
                    format!("no backend named `{}`{hint}", t.backend),
                );
            }
            let min_up = match t.min_up {
                None => 1,
                Some(v) if (1..=10_000).contains(&v) => v as u32,
                Some(v) => {
                    d.error(
                        &format!("{tp}.min_up"),
                        format!("{v} is out of range 1..=10000"),
                    );
                    1
                }
            };
            backends.push((t.backend.clone(), min_up));
        }
        let mut tracked = Vec::new();
        for (j, s) in a.track_scripts.iter().enumerate() {
            match scripts.get(s) {
                Some(c) => tracked.push(c.clone()),
                None => {
                    let known: Vec<&str> = scripts.keys().map(String::as_str).collect();
                    let hint = did_you_mean(s, &known)
                        .map(|s| format!(" (did you mean `{s}`?)"))
                        .unwrap_or_default();
                    d.error(
                        &format!("{p}.track_scripts[{j}]"),
                        format!("no vrrp_script named `{s}`{hint}"),
                    );
                }
            }
        }
        out.push(Announcement {
            name,
            addr,
            prefix_len,
            interface,
            frontends: a.frontends.clone(),
            backends,
            scripts: tracked,
        });
    }
    out
}

/// Each frontend named must exist and listen on the address (or on every address of its
/// family): a frontend bound elsewhere would never serve what is announced.
fn check_frontends(cf: &ConfigFile, p: &str, addr: IpAddr, names: &[String], d: &mut Diags) {
    for (j, name) in names.iter().enumerate() {
        let fp = format!("{p}.frontends[{j}]");
        let Some(f) = cf.frontends.iter().find(|f| &f.name == name) else {
            let known: Vec<&str> = cf.frontends.iter().map(|f| f.name.as_str()).collect();
            let hint = did_you_mean(name, &known)
                .map(|s| format!(" (did you mean `{s}`?)"))
                .unwrap_or_default();
            d.error(&fp, format!("no frontend named `{name}`{hint}"));
            continue;
        };
        let serves = f
            .bind
            .iter()
            .filter_map(|b| super::translate::bind_addr(b))
            .any(|sa| {
                sa.ip() == addr || (sa.ip().is_unspecified() && sa.is_ipv4() == addr.is_ipv4())
            });
        if !serves {
            d.error(
                &fp,
                format!("frontend `{name}` binds neither {addr} nor a wildcard address, so it would not serve this announcement"),
            );
        }
        if names[..j].contains(name) {
            d.error(&fp, format!("frontend `{name}` is listed twice"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_announced_address_is_one_host() {
        let v4: IpAddr = "198.51.100.200".parse().unwrap();
        assert_eq!(parse_host("198.51.100.200/32"), Ok((v4, 32)));
        assert_eq!(parse_host("198.51.100.200"), Ok((v4, 32)));
        let v6: IpAddr = "2001:db8::200".parse().unwrap();
        assert_eq!(parse_host("2001:db8::200"), Ok((v6, 128)));
        assert!(parse_host("198.51.100.200/24").unwrap_err().contains("/32"));
        assert!(parse_host("2001:db8::200/64").unwrap_err().contains("/128"));
        assert!(parse_host("www/32").is_err());
    }
}
