//! HTTP/1 request rules that keep a request from being routed or framed one way by vrrplb and
//! another way by the server behind it (request smuggling; RFC 9112 §3.2, §6.1): what hyper's
//! parser accepts but a proxy must refuse (400) or repair.
//!
//! Exactly one valid `Host` in HTTP/1.1 (at most one in HTTP/1.0); an absolute-form target's
//! authority wins over `Host` and replaces it; a `Transfer-Encoding` other than a single
//! `chunked` is refused (hyper re-frames the body, so any other coding would reach the server
//! undeclared). hyper itself refuses conflicting `Content-Length`s, Transfer-Encoding in
//! HTTP/1.0, and removes `Content-Length` next to `Transfer-Encoding` (closing the connection
//! after the response).

use http::header::{self, HeaderMap, HeaderValue};
use http::{Uri, Version};

/// Why a request is refused with 400 (logged).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BadRequest {
    MissingHost,
    DuplicateHost,
    InvalidHost,
    InvalidAuthority,
    TransferEncoding,
    /// A CONNECT whose target is not `host:port` alone.
    ConnectTarget,
    /// A CONNECT with content.
    ConnectBody,
}

impl BadRequest {
    pub(crate) fn reason(self) -> &'static str {
        match self {
            BadRequest::MissingHost => "no Host field in an HTTP/1.1 request",
            BadRequest::DuplicateHost => "more than one Host field",
            BadRequest::InvalidHost => "Host is not a valid host[:port]",
            BadRequest::InvalidAuthority => "the target's authority is not a valid host[:port]",
            BadRequest::TransferEncoding => "Transfer-Encoding other than a single chunked",
            BadRequest::ConnectTarget => "CONNECT target is not host:port",
            BadRequest::ConnectBody => "CONNECT with a body",
        }
    }
}

/// Checks an HTTP/1.x request head (the composition of the checks below, in the order the
/// request path applies them). `Ok(Some(host))`: the `Host` an absolute-form target imposes.
#[cfg(test)]
pub(crate) fn check_request(
    version: Version,
    uri: &Uri,
    headers: &HeaderMap,
    has_body: bool,
) -> Result<Option<HeaderValue>, BadRequest> {
    if version != Version::HTTP_11 && version != Version::HTTP_10 {
        return Ok(None);
    }
    let replace = absolute_form_host(version, uri, headers)?;
    let mut hosts = headers.get_all(header::HOST).iter();
    check_host(version, hosts.next(), hosts.next().is_some())?;
    if has_body {
        check_transfer_encoding(headers)?;
    }
    Ok(replace)
}

/// The `Host` field an absolute-form target imposes (RFC 9112 §3.2.2: the target's authority
/// wins; the request's own `Host` is still required and checked first), `None` for the other
/// forms.
pub(crate) fn absolute_form_host(
    version: Version,
    uri: &Uri,
    headers: &HeaderMap,
) -> Result<Option<HeaderValue>, BadRequest> {
    let Some(a) = uri.authority() else {
        return Ok(None);
    };
    let mut hosts = headers.get_all(header::HOST).iter();
    check_host(version, hosts.next(), hosts.next().is_some())?;
    if !valid_host(a.as_str().as_bytes()) {
        return Err(BadRequest::InvalidAuthority);
    }
    HeaderValue::from_str(a.as_str())
        .map(Some)
        .map_err(|_| BadRequest::InvalidAuthority)
}

/// `first`: the request's first `Host` field, `more`: whether it has another one.
pub(crate) fn check_host(
    version: Version,
    first: Option<&HeaderValue>,
    more: bool,
) -> Result<(), BadRequest> {
    match first {
        None if version == Version::HTTP_11 => Err(BadRequest::MissingHost),
        None => Ok(()),
        Some(_) if more => Err(BadRequest::DuplicateHost),
        Some(h) if h.is_empty() || valid_host(h.as_bytes()) => Ok(()),
        Some(_) => Err(BadRequest::InvalidHost),
    }
}

/// A request's `Transfer-Encoding`, when present, must be one field naming `chunked` alone.
pub(crate) fn check_transfer_encoding(headers: &HeaderMap) -> Result<(), BadRequest> {
    let mut values = headers.get_all(header::TRANSFER_ENCODING).iter();
    match (values.next(), values.next()) {
        (None, _) => Ok(()),
        (Some(v), None) if v.as_bytes().trim_ascii().eq_ignore_ascii_case(b"chunked") => Ok(()),
        _ => Err(BadRequest::TransferEncoding),
    }
}

/// A CONNECT (RFC 9110 §9.3.6): the target is an authority with a port and nothing else (no
/// scheme, user info or path), and the request has no content (a body would be relayed into
/// the tunnel as if the client had sent it after the server's answer).
pub(crate) fn check_connect(uri: &Uri, has_body: bool) -> Result<(), BadRequest> {
    let bare = uri.scheme().is_none() && uri.path_and_query().is_none();
    match uri.authority() {
        Some(a) if bare && a.port_u16().is_some() && valid_host(a.as_str().as_bytes()) => {}
        _ => return Err(BadRequest::ConnectTarget),
    }
    if has_body {
        return Err(BadRequest::ConnectBody);
    }
    Ok(())
}

/// Bytes of a reg-name (RFC 3986 §3.2.2: unreserved, sub-delims other than `,`, `%`).
static REG_NAME: [bool; 256] = {
    let mut t = [false; 256];
    let mut c = 0;
    while c < 256 {
        let b = c as u8;
        t[c] = b.is_ascii_alphanumeric()
            || matches!(
                b,
                b'-' | b'.'
                    | b'_'
                    | b'~'
                    | b'%'
                    | b'!'
                    | b'$'
                    | b'&'
                    | b'\''
                    | b'('
                    | b')'
                    | b'*'
                    | b'+'
                    | b';'
                    | b'='
            );
        c += 1;
    }
    t
};

/// `host [ ":" port ]` (RFC 9110 §7.2, RFC 3986 §3.2.2): a reg-name (unreserved,
/// sub-delims other than `,`, percent signs), an IPv4 address, or a bracketed IP literal;
/// the port all digits. No user info, spaces, slashes or commas.
pub(crate) fn valid_host(b: &[u8]) -> bool {
    // The usual Host: a name or an IPv4 address without a port, one table lookup a byte.
    if !b.is_empty() && b.iter().all(|&c| REG_NAME[usize::from(c)]) {
        return true;
    }
    let (host, port) = if let Some(rest) = b.strip_prefix(b"[") {
        let Some(close) = rest.iter().position(|&c| c == b']') else {
            return false;
        };
        let literal = &rest[..close];
        if literal.is_empty()
            || !literal
                .iter()
                .all(|&c| c.is_ascii_hexdigit() || c == b':' || c == b'.')
        {
            return false;
        }
        match &rest[close + 1..] {
            [] => return true,
            [b':', port @ ..] => (&b""[..], port),
            _ => return false,
        }
    } else {
        match b.iter().rposition(|&c| c == b':') {
            Some(i) => (&b[..i], &b[i + 1..]),
            None => (b, &b""[..]),
        }
    };
    let bracketed = b.first() == Some(&b'[');
    (bracketed || (!host.is_empty() && host.iter().all(|&c| REG_NAME[usize::from(c)])))
        && port.iter().all(u8::is_ascii_digit)
        && port.len() <= 5
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connect_targets() {
        for good in ["a.test:443", "198.51.100.7:22", "[2001:db8::1]:8443"] {
            let uri: Uri = good.parse().expect(good);
            assert_eq!(check_connect(&uri, false), Ok(()), "{good}");
            assert_eq!(check_connect(&uri, true), Err(BadRequest::ConnectBody));
        }
        // No port, a path, a scheme, user info, origin or asterisk form: not host:port.
        for bad in [
            "a.test",
            "a.test:443/x",
            "http://a.test:443",
            "http://a.test:443/",
            "u@a.test:443",
            "/",
            "/a.test:443",
            "*",
        ] {
            let Ok(uri) = bad.parse::<Uri>() else {
                continue; // hyper answers 400 itself
            };
            assert_eq!(
                check_connect(&uri, false),
                Err(BadRequest::ConnectTarget),
                "{bad}"
            );
        }
    }

    #[test]
    fn hosts() {
        for good in [
            "a.test",
            "A.Test:8080",
            "198.51.100.7",
            "198.51.100.7:80",
            "[2001:db8::1]",
            "[2001:db8::1]:443",
            "xn--bcher-kva.test",
            "a_b.test:",
        ] {
            assert!(valid_host(good.as_bytes()), "{good}");
        }
        for bad in [
            "",
            "a b",
            "a/b",
            "u@a.test",
            "[::1",
            "[::1]x",
            "a.test:8o",
            "a.test, b.test",
            "a.test:123456",
            "[]",
            ":80",
            "a\tb",
            "[zz::1]",
        ] {
            assert!(!valid_host(bad.as_bytes()), "{bad}");
        }
    }

    #[test]
    fn request_rules() {
        let check = |version, target: &str, hosts: &[&str], te: Option<&str>| {
            let uri: Uri = target.parse().expect("uri");
            let mut h = HeaderMap::new();
            for v in hosts {
                h.append(header::HOST, HeaderValue::from_str(v).expect("value"));
            }
            if let Some(te) = te {
                h.insert(
                    header::TRANSFER_ENCODING,
                    HeaderValue::from_str(te).expect("te"),
                );
            }
            check_request(version, &uri, &h, te.is_some()).map(|replace| {
                if let Some(v) = replace {
                    h.insert(header::HOST, v);
                }
                h.get_all(header::HOST)
                    .iter()
                    .map(|v| v.to_str().unwrap_or("?").to_owned())
                    .collect::<Vec<_>>()
            })
        };
        let v11 = Version::HTTP_11;
        assert_eq!(
            check(v11, "/", &["a.test"], None),
            Ok(vec!["a.test".into()])
        );
        assert_eq!(check(v11, "/", &[], None), Err(BadRequest::MissingHost));
        assert_eq!(check(Version::HTTP_10, "/", &[], None), Ok(vec![]));
        assert_eq!(
            check(v11, "/", &["a", "a"], None),
            Err(BadRequest::DuplicateHost)
        );
        assert_eq!(
            check(v11, "/", &["a b"], None),
            Err(BadRequest::InvalidHost)
        );
        assert_eq!(
            check(v11, "http://o.test:81/x", &["a.test"], None),
            Ok(vec!["o.test:81".into()])
        );
        assert_eq!(
            check(v11, "http://o.test/x", &[], None),
            Err(BadRequest::MissingHost)
        );
        assert_eq!(
            check(v11, "/", &["a"], Some("chunked")),
            Ok(vec!["a".into()])
        );
        for te in ["chunked, chunked", "gzip, chunked", "gzip"] {
            assert_eq!(
                check(v11, "/", &["a"], Some(te)),
                Err(BadRequest::TransferEncoding),
                "{te}"
            );
        }
        assert_eq!(check(Version::HTTP_2, "/", &[], None), Ok(vec![]));
    }
}
