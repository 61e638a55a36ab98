//! Header fields the client side (http/) and the server side (upstream/h1.rs) both handle
//! (lb.md §8): hop-by-hop removal and `forwarded_for`. Pure functions on `http::HeaderMap`.
//!
//! - `is_websocket_upgrade(&HeaderMap) -> bool`: `Connection` has the `upgrade` token and `Upgrade` names `websocket`.
//! - `remove_hop_by_hop_request(&mut HeaderMap) -> bool`: strips hop-by-hop fields; returns true when a WebSocket upgrade was kept.
//! - `remove_hop_by_hop_response(&mut HeaderMap, StatusCode, request_was_websocket: bool)`: the same for a response (keeps the upgrade only on a 101 to a WebSocket request).
//! - `forwarded_for(&mut HeaderMap, client: IpAddr, tls: bool)`: appends X-Forwarded-For, sets X-Forwarded-Proto, adds X-Forwarded-Host from Host when absent.
//!
//! http/headers.rs re-exports them next to the `set_headers` templates.

use std::fmt::{self, Write as _};
use std::net::IpAddr;

use bytes::Bytes;
use http::header::{self, Entry, HeaderMap, HeaderName, HeaderValue};
use http::StatusCode;

/// `X-Forwarded-For`, `X-Forwarded-Proto`, `X-Forwarded-Host` (not in `http::header`).
pub const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
pub const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
pub const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");

pub(crate) const PROXY_CONNECTION: HeaderName = HeaderName::from_static("proxy-connection");
pub(crate) const KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");

/// Iterates the comma-separated tokens of every occurrence of `name`, trimmed, empty ones skipped.
fn tokens<'a>(headers: &'a HeaderMap, name: &HeaderName) -> impl Iterator<Item = &'a [u8]> + 'a {
    headers
        .get_all(name)
        .iter()
        .flat_map(|v| v.as_bytes().split(|&b| b == b','))
        .map(|t| t.trim_ascii())
        .filter(|t| !t.is_empty())
}

/// True when the message asks to switch to WebSocket: a `Connection` token `upgrade` and an
/// `Upgrade` protocol `websocket` (a `/version` suffix is allowed), both case-insensitive.
pub fn is_websocket_upgrade(headers: &HeaderMap) -> bool {
    let connection_upgrade =
        tokens(headers, &header::CONNECTION).any(|t| t.eq_ignore_ascii_case(b"upgrade"));
    connection_upgrade
        && tokens(headers, &header::UPGRADE).any(|t| {
            let protocol = t.split(|&b| b == b'/').next().unwrap_or(t);
            protocol.trim_ascii().eq_ignore_ascii_case(b"websocket")
        })
}

const HAS_CONNECTION: u8 = 1;
const HAS_UPGRADE: u8 = 2;
const HAS_OTHER: u8 = 4;

/// Which hop-by-hop fields the map holds, in one pass over its names (most messages have none
/// but `Connection`, and a removal costs a hash lookup each).
fn hop_by_hop_present(headers: &HeaderMap) -> u8 {
    let mut found = 0;
    for name in headers.keys() {
        found |= if *name == header::CONNECTION {
            HAS_CONNECTION
        } else if *name == header::UPGRADE {
            HAS_UPGRADE
        } else if *name == header::TE
            || *name == header::TRANSFER_ENCODING
            || *name == PROXY_CONNECTION
            || *name == KEEP_ALIVE
        {
            HAS_OTHER
        } else {
            0
        };
    }
    found
}

/// RFC 9110 §7.6.1: drop `Connection`, every field it names, and the fixed hop-by-hop list.
/// With `keep_upgrade`, the `Upgrade` field survives and `Connection` becomes `upgrade`.
fn remove_hop_by_hop(headers: &mut HeaderMap, keep_upgrade: bool) {
    let found = hop_by_hop_present(headers);
    remove_found(headers, keep_upgrade, found);
}

/// [`remove_hop_by_hop`] with the fields present already known.
fn remove_found(headers: &mut HeaderMap, keep_upgrade: bool, found: u8) {
    if found & HAS_CONNECTION != 0 {
        let mut named: Vec<HeaderName> = Vec::new();
        for t in tokens(headers, &header::CONNECTION) {
            // `Connection: keep-alive`, the usual value, names a field of the fixed list.
            if t.eq_ignore_ascii_case(b"keep-alive") {
                continue;
            }
            match HeaderName::from_bytes(t) {
                // `Connection: host` would make the server see a different request than the
                // one we routed (routing read Host), so Host is never removed this way.
                Ok(n) if n != header::HOST => named.push(n),
                _ => {}
            }
        }
        for name in &named {
            if keep_upgrade && *name == header::UPGRADE {
                continue;
            }
            headers.remove(name);
        }
        headers.remove(header::CONNECTION);
    }
    if found & HAS_OTHER != 0 {
        headers.remove(PROXY_CONNECTION);
        headers.remove(KEEP_ALIVE);
        headers.remove(header::TE);
        headers.remove(header::TRANSFER_ENCODING);
    }
    if keep_upgrade {
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    } else if found & HAS_UPGRADE != 0 {
        headers.remove(header::UPGRADE);
    }
}

/// Removes the hop-by-hop fields of a request to be forwarded. A WebSocket upgrade keeps
/// `Upgrade` and `Connection: upgrade`; the return value says whether that happened, to be
/// passed to [`remove_hop_by_hop_response`].
pub fn remove_hop_by_hop_request(headers: &mut HeaderMap) -> bool {
    let found = hop_by_hop_present(headers);
    // An upgrade needs both fields (most requests have neither).
    let both = HAS_CONNECTION | HAS_UPGRADE;
    let websocket = found & both == both && is_websocket_upgrade(headers);
    remove_found(headers, websocket, found);
    websocket
}

/// Removes the hop-by-hop fields of a response to be forwarded. The upgrade fields are kept only
/// when the server answers 101 to a forwarded WebSocket upgrade and itself names `websocket`.
pub fn remove_hop_by_hop_response(
    headers: &mut HeaderMap,
    status: StatusCode,
    request_was_websocket: bool,
) {
    let keep = request_was_websocket
        && status == StatusCode::SWITCHING_PROTOCOLS
        && is_websocket_upgrade(headers);
    remove_hop_by_hop(headers, keep);
}

/// `forwarded_for: true` (HAProxy `option forwardfor`): appends the client address to
/// `X-Forwarded-For` (earlier values kept, all occurrences folded into one field, `, ` between
/// entries), sets `X-Forwarded-Proto` to `https` or `http` replacing any client value, and copies
/// `Host` into `X-Forwarded-Host` when the request has no `X-Forwarded-Host` yet.
///
/// An IPv4-mapped IPv6 peer (dual-stack listener) is written as plain IPv4; IPv6 is written
/// without brackets, as applications expect a bare address in these headers.
pub fn forwarded_for(headers: &mut HeaderMap, client: IpAddr, tls: bool) {
    let host = headers.get(header::HOST).cloned();
    forwarded_for_value(headers, &client_ip_value(client), tls, host);
}

/// The client address as [`forwarded_for`] writes it (computed once per connection).
pub fn client_ip_value(client: IpAddr) -> HeaderValue {
    let mut ip = IpText::default();
    ip.write(client.to_canonical());
    ip_value(ip.as_bytes())
}

/// [`forwarded_for`] with the client address from [`client_ip_value`] and the request's
/// `Host` (its first value) already at hand.
pub(crate) fn forwarded_for_value(
    headers: &mut HeaderMap,
    client: &HeaderValue,
    tls: bool,
    host: Option<HeaderValue>,
) {
    let ip = client.as_bytes();
    match headers.entry(X_FORWARDED_FOR) {
        Entry::Vacant(e) => {
            e.insert(client.clone());
        }
        Entry::Occupied(mut e) => {
            let mut xff: Vec<u8> = Vec::with_capacity(64);
            for value in e.iter() {
                let v = value.as_bytes().trim_ascii();
                if v.is_empty() {
                    continue;
                }
                if !xff.is_empty() {
                    xff.extend_from_slice(b", ");
                }
                xff.extend_from_slice(v);
            }
            if !xff.is_empty() {
                xff.extend_from_slice(b", ");
            }
            xff.extend_from_slice(ip);
            // Every piece came from a valid header value or an IP literal, so this only fails
            // if the map held something hyper would not have parsed; fall back to our address
            // alone.
            let value =
                HeaderValue::from_maybe_shared(Bytes::from(xff)).unwrap_or_else(|_| client.clone());
            e.insert(value);
        }
    }

    let proto = if tls { "https" } else { "http" };
    headers.insert(X_FORWARDED_PROTO, HeaderValue::from_static(proto));

    if let Some(host) = host {
        if let Entry::Vacant(e) = headers.entry(X_FORWARDED_HOST) {
            e.insert(host);
        }
    }
}

/// The fields [`forwarded_for_value`] appends to a request that has none of them, kept
/// aside and written after the request's own fields when its head is encoded: the same
/// bytes, without three header-map insertions.
#[derive(Debug, Clone)]
pub(crate) struct ForwardedFields {
    pub(crate) client: HeaderValue,
    pub(crate) tls: bool,
    pub(crate) host: Option<HeaderValue>,
    /// X-Forwarded-Host is the Host the head writes from an HTTP/2 request's :authority
    /// (no copy of it into a value of its own).
    pub(crate) host_is_authority: bool,
}

impl ForwardedFields {
    /// Whether `headers` has none of the fields, so that [`forwarded_for_value`] would only
    /// append them.
    pub(crate) fn can_append_to(headers: &HeaderMap) -> bool {
        !headers
            .keys()
            .any(|n| *n == X_FORWARDED_FOR || *n == X_FORWARDED_PROTO || *n == X_FORWARDED_HOST)
    }

    /// The fields as `name: value` lines, in the order [`forwarded_for_value`] appends them
    /// (names as `HeaderName::as_str` spells them).
    /// `authority`: the Host written from the request's :authority, if it was.
    pub(crate) fn encode(&self, out: &mut Vec<u8>, authority: Option<&str>) {
        out.extend_from_slice(b"x-forwarded-for: ");
        out.extend_from_slice(self.client.as_bytes());
        out.extend_from_slice(if self.tls {
            b"\r\nx-forwarded-proto: https\r\n"
        } else {
            b"\r\nx-forwarded-proto: http\r\n"
        });
        let host = match (&self.host, authority) {
            (Some(host), _) => Some(host.as_bytes()),
            (None, Some(a)) if self.host_is_authority => Some(a.as_bytes()),
            _ => None,
        };
        if let Some(host) = host {
            out.extend_from_slice(b"x-forwarded-host: ");
            out.extend_from_slice(host);
            out.extend_from_slice(b"\r\n");
        }
    }
}

fn ip_value(ip: &[u8]) -> HeaderValue {
    HeaderValue::from_bytes(ip).unwrap_or_else(|_| HeaderValue::from_static("unknown"))
}

/// An IP address as text without going through `fmt` (IPv4 by hand, the common case).
pub(crate) struct IpText {
    buf: [u8; 48],
    len: usize,
}

impl Default for IpText {
    fn default() -> Self {
        IpText {
            buf: [0; 48],
            len: 0,
        }
    }
}

impl IpText {
    pub(crate) fn write(&mut self, ip: IpAddr) {
        match ip {
            IpAddr::V4(v4) => {
                for (i, octet) in v4.octets().into_iter().enumerate() {
                    if i > 0 {
                        self.push(b'.');
                    }
                    if octet >= 100 {
                        self.push(b'0' + octet / 100);
                    }
                    if octet >= 10 {
                        self.push(b'0' + octet / 10 % 10);
                    }
                    self.push(b'0' + octet % 10);
                }
            }
            IpAddr::V6(v6) => {
                let _ = write!(self, "{v6}");
            }
        }
    }

    fn push(&mut self, b: u8) {
        if self.len < self.buf.len() {
            self.buf[self.len] = b;
            self.len += 1;
        }
    }

    pub(crate) fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

impl fmt::Write for IpText {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for b in s.bytes() {
            self.push(b);
        }
        Ok(())
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn map(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (n, v) in pairs {
            h.append(
                HeaderName::from_bytes(n.as_bytes()).expect("name"),
                HeaderValue::from_str(v).expect("value"),
            );
        }
        h
    }

    pub(crate) fn all(h: &HeaderMap, name: &str) -> Vec<String> {
        h.get_all(name)
            .iter()
            .map(|v| v.to_str().expect("ascii").to_owned())
            .collect()
    }

    #[test]
    fn request_loses_fixed_hop_by_hop_fields() {
        let mut h = map(&[
            ("host", "site.example.test"),
            ("connection", "keep-alive"),
            ("proxy-connection", "keep-alive"),
            ("keep-alive", "timeout=5, max=100"),
            ("te", "trailers"),
            ("transfer-encoding", "chunked"),
            ("upgrade", "h2c"),
            ("accept", "text/html"),
        ]);
        assert!(!remove_hop_by_hop_request(&mut h));
        let names: Vec<&str> = h.keys().map(|k| k.as_str()).collect();
        assert_eq!(names, ["host", "accept"]);
    }

    #[test]
    fn fields_named_by_connection_are_removed_in_any_case_and_occurrence() {
        let mut h = map(&[
            ("connection", "close, X-Secret-Token"),
            ("connection", " x-debug ,,"),
            ("x-secret-token", "abc"),
            ("x-debug", "1"),
            ("x-kept", "yes"),
        ]);
        remove_hop_by_hop_request(&mut h);
        assert!(h.get("x-secret-token").is_none());
        assert!(h.get("x-debug").is_none());
        assert!(h.get("connection").is_none());
        assert_eq!(all(&h, "x-kept"), ["yes"]);
    }

    #[test]
    fn connection_cannot_remove_host() {
        let mut h = map(&[("host", "site.example.test"), ("connection", "Host")]);
        remove_hop_by_hop_request(&mut h);
        assert_eq!(all(&h, "host"), ["site.example.test"]);
    }

    #[test]
    fn websocket_upgrade_keeps_upgrade_and_connection_upgrade() {
        let mut h = map(&[
            ("connection", "keep-alive, Upgrade"),
            ("upgrade", "websocket"),
            ("keep-alive", "timeout=5"),
            ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="),
        ]);
        assert!(remove_hop_by_hop_request(&mut h));
        assert_eq!(all(&h, "connection"), ["upgrade"]);
        assert_eq!(all(&h, "upgrade"), ["websocket"]);
        assert!(h.get("keep-alive").is_none());
        assert!(h.get("sec-websocket-key").is_some());
    }

    #[test]
    fn non_websocket_upgrade_is_removed() {
        let mut h = map(&[
            ("connection", "Upgrade, HTTP2-Settings"),
            ("upgrade", "h2c"),
        ]);
        assert!(!remove_hop_by_hop_request(&mut h));
        assert!(h.is_empty());
    }

    #[test]
    fn response_keeps_upgrade_only_on_101_to_websocket_request() {
        let upgrade = [("connection", "Upgrade"), ("upgrade", "websocket")];
        let mut h = map(&upgrade);
        remove_hop_by_hop_response(&mut h, StatusCode::SWITCHING_PROTOCOLS, true);
        assert_eq!(all(&h, "upgrade"), ["websocket"]);
        assert_eq!(all(&h, "connection"), ["upgrade"]);

        let mut h = map(&upgrade);
        remove_hop_by_hop_response(&mut h, StatusCode::OK, true);
        assert!(h.is_empty());

        let mut h = map(&upgrade);
        remove_hop_by_hop_response(&mut h, StatusCode::SWITCHING_PROTOCOLS, false);
        assert!(h.is_empty());
    }

    #[test]
    fn response_hop_by_hop_removed() {
        let mut h = map(&[
            ("connection", "close"),
            ("keep-alive", "timeout=5, max=99"),
            ("transfer-encoding", "chunked"),
            ("content-type", "text/html"),
        ]);
        remove_hop_by_hop_response(&mut h, StatusCode::OK, false);
        assert_eq!(h.len(), 1);
        assert!(h.get("content-type").is_some());
    }

    #[test]
    fn ip_text_matches_display() {
        for ip in [
            "0.0.0.0",
            "9.10.99.100",
            "255.255.255.255",
            "192.168.1.20",
            "::1",
            "2001:db8::8a2e:370:7334",
        ] {
            let ip: IpAddr = ip.parse().expect("ip");
            let mut t = IpText::default();
            t.write(ip);
            assert_eq!(t.as_bytes(), ip.to_string().as_bytes());
        }
    }

    #[test]
    fn connection_naming_only_keep_alive_or_nothing_hop_by_hop() {
        let mut h = map(&[
            ("connection", "keep-alive"),
            ("keep-alive", "timeout=5"),
            ("a", "1"),
        ]);
        remove_hop_by_hop_request(&mut h);
        assert_eq!(h.len(), 1);
        let mut h = map(&[("host", "x"), ("accept", "*/*")]);
        remove_hop_by_hop_request(&mut h);
        assert_eq!(h.len(), 2);
        let mut h = map(&[("upgrade", "h2c"), ("te", "trailers"), ("b", "2")]);
        remove_hop_by_hop_request(&mut h);
        assert_eq!(all(&h, "b"), ["2"]);
        assert_eq!(h.len(), 1);
    }

    #[test]
    fn forwarded_for_with_a_precomputed_address_and_host() {
        let ip = client_ip_value("::ffff:198.51.100.7".parse().expect("ip"));
        assert_eq!(ip, "198.51.100.7");
        let mut h = map(&[("host", "a.test"), ("x-forwarded-proto", "https")]);
        let host = h.get(header::HOST).cloned();
        forwarded_for_value(&mut h, &ip, false, host);
        assert_eq!(all(&h, "x-forwarded-for"), ["198.51.100.7"]);
        assert_eq!(all(&h, "x-forwarded-proto"), ["http"]);
        assert_eq!(all(&h, "x-forwarded-host"), ["a.test"]);
        // An existing X-Forwarded-Host stays; no Host, no X-Forwarded-Host.
        let mut h = map(&[("host", "a.test"), ("x-forwarded-host", "b.test")]);
        forwarded_for_value(&mut h, &ip, true, Some(HeaderValue::from_static("a.test")));
        assert_eq!(all(&h, "x-forwarded-host"), ["b.test"]);
        assert_eq!(all(&h, "x-forwarded-proto"), ["https"]);
        let mut h = HeaderMap::new();
        forwarded_for_value(&mut h, &ip, false, None);
        assert!(!h.contains_key(X_FORWARDED_HOST));
        assert_eq!(h.len(), 2);
    }

    #[test]
    fn xff_appended_after_existing_value() {
        let mut h = map(&[("x-forwarded-for", "1.2.3.4")]);
        forwarded_for(&mut h, "203.0.113.9".parse().expect("ip"), false);
        assert_eq!(all(&h, "x-forwarded-for"), ["1.2.3.4, 203.0.113.9"]);
    }

    #[test]
    fn xff_folds_several_fields_and_skips_empty_ones() {
        let mut h = map(&[
            ("x-forwarded-for", "1.2.3.4, 10.0.0.1"),
            ("x-forwarded-for", ""),
            ("x-forwarded-for", "198.51.100.7"),
        ]);
        forwarded_for(&mut h, "203.0.113.9".parse().expect("ip"), false);
        assert_eq!(
            all(&h, "x-forwarded-for"),
            ["1.2.3.4, 10.0.0.1, 198.51.100.7, 203.0.113.9"]
        );
    }

    #[test]
    fn xff_new_ipv6_without_brackets_and_mapped_ipv4_plain() {
        let mut h = HeaderMap::new();
        forwarded_for(&mut h, "2001:db8::42".parse().expect("ip"), true);
        assert_eq!(all(&h, "x-forwarded-for"), ["2001:db8::42"]);

        let mut h = HeaderMap::new();
        forwarded_for(&mut h, "::ffff:203.0.113.9".parse().expect("ip"), false);
        assert_eq!(all(&h, "x-forwarded-for"), ["203.0.113.9"]);
    }

    #[test]
    fn xfp_replaces_client_value() {
        let mut h = map(&[("x-forwarded-proto", "https"), ("x-forwarded-proto", "ftp")]);
        forwarded_for(&mut h, "203.0.113.9".parse().expect("ip"), false);
        assert_eq!(all(&h, "x-forwarded-proto"), ["http"]);
        forwarded_for(&mut h, "203.0.113.9".parse().expect("ip"), true);
        assert_eq!(all(&h, "x-forwarded-proto"), ["https"]);
    }

    #[test]
    fn xfh_copied_from_host_only_when_absent() {
        let mut h = map(&[("host", "site.example.test:8080")]);
        forwarded_for(&mut h, "203.0.113.9".parse().expect("ip"), false);
        assert_eq!(all(&h, "x-forwarded-host"), ["site.example.test:8080"]);

        let mut h = map(&[
            ("host", "backend.internal"),
            ("x-forwarded-host", "public.example.test"),
        ]);
        forwarded_for(&mut h, "203.0.113.9".parse().expect("ip"), false);
        assert_eq!(all(&h, "x-forwarded-host"), ["public.example.test"]);

        let mut h = HeaderMap::new();
        forwarded_for(&mut h, "203.0.113.9".parse().expect("ip"), false);
        assert!(h.get("x-forwarded-host").is_none());
    }
}
