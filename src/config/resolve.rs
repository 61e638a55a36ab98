//! Server addresses written as host names (`db1.example.test:5432`, HAProxy style), resolved
//! with the system resolver (getaddrinfo: /etc/hosts, DNS, as nsswitch.conf says) when the file
//! is loaded: at start, by `check`, and again on every SIGHUP. A name that does not resolve is
//! an error at start and for `check`; on a reload the server keeps its last address instead,
//! with a warning saying why, so a resolver outage never takes a running backend away.

use std::collections::BTreeMap;
use std::net::{SocketAddr, ToSocketAddrs};

/// Each server address written as a name, with the address it resolved to.
pub type Resolved = BTreeMap<String, SocketAddr>;

/// `HOST:PORT` with a host name (not an IP literal) and a port 1..=65535.
pub fn host_and_port(text: &str) -> Option<(&str, u16)> {
    let (host, port) = text.rsplit_once(':')?;
    let port = port.parse::<u16>().ok().filter(|p| *p > 0)?;
    let name_like = !host.is_empty()
        && host.len() <= 253
        && host.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
        && host.bytes().any(|b| b.is_ascii_alphabetic());
    name_like.then_some((host, port))
}

/// Resolves `HOST:PORT`; the first address the resolver gives wins (getaddrinfo orders them
/// by RFC 6724 preference).
pub fn resolve(host: &str, port: u16) -> Result<SocketAddr, String> {
    match (host, port).to_socket_addrs() {
        Ok(mut addrs) => addrs
            .next()
            .ok_or_else(|| "the resolver returned no address".to_owned()),
        Err(e) => Err(e.to_string()),
    }
}

/// Resolution for one load of the file: each name once, and the previous load's answers for
/// a reload (see the module comment).
pub struct Resolver<'a> {
    previous: &'a Resolved,
    pub resolved: Resolved,
    /// [`resolve`]; tests put a fake resolver here.
    resolve: fn(&str, u16) -> Result<SocketAddr, String>,
}

/// What a name's lookup gave.
pub enum Lookup {
    Found,
    /// It failed now; the address it had before is kept (the message says why).
    Kept(SocketAddr, String),
    Failed(String),
}

impl<'a> Resolver<'a> {
    pub fn new(previous: &'a Resolved) -> Self {
        Resolver {
            previous,
            resolved: Resolved::new(),
            resolve,
        }
    }

    pub fn lookup(&mut self, text: &str, host: &str, port: u16) -> Lookup {
        if self.resolved.contains_key(text) {
            return Lookup::Found;
        }
        match (self.resolve)(host, port) {
            Ok(a) => {
                self.resolved.insert(text.to_owned(), a);
                Lookup::Found
            }
            Err(e) => match self.previous.get(text) {
                Some(a) => {
                    self.resolved.insert(text.to_owned(), *a);
                    Lookup::Kept(*a, e)
                }
                None => Lookup::Failed(e),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_with_ports_are_told_from_ip_literals_and_junk() {
        assert_eq!(
            host_and_port("db1.example.test:5432"),
            Some(("db1.example.test", 5432))
        );
        assert_eq!(host_and_port("localhost:80"), Some(("localhost", 80)));
        for not in [
            "198.51.100.21:80",
            "db1.example.test",
            "db1.example.test:0",
            "db1.example.test:99999",
            ":80",
            "db1..test:80",
            "db 1:80",
            "[2001:db8::1]:80",
        ] {
            assert_eq!(host_and_port(not), None, "{not}");
        }
    }

    #[test]
    fn localhost_resolves_and_a_failure_keeps_the_previous_answer() {
        let previous = Resolved::new();
        let mut r = Resolver::new(&previous);
        assert!(matches!(
            r.lookup("localhost:8080", "localhost", 8080),
            Lookup::Found
        ));
        let a = r.resolved.get("localhost:8080").expect("resolved");
        assert!(a.ip().is_loopback() && a.port() == 8080, "{a}");
        // A resolver that fails, as one does when its DNS server is away.
        let fail = |_: &str, _: u16| Err::<SocketAddr, _>("no answer".to_owned());
        let mut previous = Resolved::new();
        let kept: SocketAddr = "198.51.100.21:5432".parse().expect("addr");
        previous.insert("nope.invalid:5432".into(), kept);
        let mut r = Resolver::new(&previous);
        r.resolve = fail;
        assert!(matches!(
            r.lookup("nope.invalid:5432", "nope.invalid", 5432),
            Lookup::Kept(a, _) if a == kept
        ));
        assert_eq!(r.resolved.get("nope.invalid:5432"), Some(&kept));
        let empty = Resolved::new();
        let mut r = Resolver::new(&empty);
        r.resolve = fail;
        assert!(matches!(
            r.lookup("nope.invalid:5432", "nope.invalid", 5432),
            Lookup::Failed(_)
        ));
    }
}
