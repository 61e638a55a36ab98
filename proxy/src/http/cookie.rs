//! The persistence cookie of lb.md §5 (HAProxy `cookie NAME insert indirect nocache`): read it
//! from requests, hide it from servers, set it on responses.
//!
//! - `find_server_cookie(&HeaderMap, name: &str) -> Option<String>`: value of the first cookie `name` across all `Cookie` fields.
//! - `remove_cookie(&mut HeaderMap, name: &str) -> bool`: `indirect`: drops that cookie, keeps the others, drops emptied fields; true if one was removed.
//! - `insert_set_cookie(&mut HeaderMap, &CookiePolicy, server_value: Option<&str>)`: replaces the server's own `Set-Cookie` of that name with ours (+ `Cache-Control: private` for `nocache`).
//! - `valid_cookie_name(&str) -> bool`, `valid_cookie_value(&str) -> bool`: RFC 6265 syntax, for config checks.

use http::header::{self, HeaderMap, HeaderValue};

use crate::http::rewrite::set_cookie_name;
pub use crate::upstream::backend::CookiePolicy;

/// The `name=value` pairs of one `Cookie` field value; segments without `=` are skipped.
/// Yields (name, value, whole trimmed segment).
fn cookie_pairs(value: &[u8]) -> impl Iterator<Item = (&[u8], &[u8], &[u8])> {
    value.split(|&b| b == b';').filter_map(|segment| {
        let segment = segment.trim_ascii();
        let eq = segment.iter().position(|&b| b == b'=')?;
        Some((
            segment[..eq].trim_ascii(),
            segment[eq + 1..].trim_ascii(),
            segment,
        ))
    })
}

/// The value of the first cookie called `name` (case-sensitive, as cookie names are) in the
/// request's `Cookie` field(s). Spaces around names and values are tolerated, a value in double
/// quotes is unquoted, segments without `=` are ignored. An empty value gives `Some("")`, which
/// matches no server.
pub fn find_server_cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .flat_map(|v| cookie_pairs(v.as_bytes()))
        .find(|(n, _, _)| *n == name.as_bytes())
        .map(|(_, value, _)| {
            let value = match value {
                [b'"', inner @ .., b'"'] => inner,
                _ => value,
            };
            String::from_utf8_lossy(value).into_owned()
        })
}

/// `indirect`: removes every cookie called `name` from the `Cookie` field(s), keeping the other
/// cookies (rejoined with `; `) and dropping a field left empty. Fields that do not contain the
/// cookie are kept byte for byte. Returns whether anything was removed.
pub fn remove_cookie(headers: &mut HeaderMap, name: &str) -> bool {
    let contains =
        |v: &HeaderValue| cookie_pairs(v.as_bytes()).any(|(n, _, _)| n == name.as_bytes());
    if !headers.get_all(header::COOKIE).iter().any(contains) {
        return false;
    }
    let old: Vec<HeaderValue> = match headers.entry(header::COOKIE) {
        header::Entry::Occupied(entry) => entry.remove_entry_mult().1.collect(),
        header::Entry::Vacant(_) => return false,
    };
    for value in old {
        if !contains(&value) {
            headers.append(header::COOKIE, value);
            continue;
        }
        let mut kept: Vec<u8> = Vec::with_capacity(value.len());
        for segment in value.as_bytes().split(|&b| b == b';') {
            let segment = segment.trim_ascii();
            if segment.is_empty() {
                continue;
            }
            let seg_name = segment
                .iter()
                .position(|&b| b == b'=')
                .map(|eq| segment[..eq].trim_ascii());
            if seg_name == Some(name.as_bytes()) {
                continue;
            }
            if !kept.is_empty() {
                kept.extend_from_slice(b"; ");
            }
            kept.extend_from_slice(segment);
        }
        if kept.is_empty() {
            continue;
        }
        if let Ok(v) = HeaderValue::from_bytes(&kept) {
            headers.append(header::COOKIE, v);
        }
    }
    true
}

/// The date browsers treat as "already expired" (HAProxy's wording of the epoch + 1 s).
const EXPIRED: &str = "Thu, 01-Jan-1970 00:00:01 GMT";

/// Sets our persistence cookie on a response whose server was not chosen through a valid
/// cookie: removes any `Set-Cookie` of the same name the server emitted, then adds
/// `<name>=<value>; path=/` (+ `; domain=…`, `; HttpOnly`, `; Secure`), or, for a server with no
/// cookie value (`None` or `""`), `<name>=; Expires=Thu, 01-Jan-1970 00:00:01 GMT; path=/` with the
/// same attributes so that the browser forgets a stale one. With `nocache`, adds
/// `Cache-Control: private` unless the response already says private, no-cache or no-store.
pub fn insert_set_cookie(
    headers: &mut HeaderMap,
    policy: &CookiePolicy,
    server_value: Option<&str>,
) {
    let name = policy.name.as_bytes();
    if headers
        .get_all(header::SET_COOKIE)
        .iter()
        .any(|v| set_cookie_name(v.as_bytes()) == name)
    {
        if let header::Entry::Occupied(entry) = headers.entry(header::SET_COOKIE) {
            let old: Vec<HeaderValue> = entry.remove_entry_mult().1.collect();
            for v in old {
                if set_cookie_name(v.as_bytes()) != name {
                    headers.append(header::SET_COOKIE, v);
                }
            }
        }
    }

    let mut cookie = String::with_capacity(64);
    cookie.push_str(&policy.name);
    cookie.push('=');
    match server_value {
        Some(value) if !value.is_empty() => cookie.push_str(value),
        _ => {
            cookie.push_str("; Expires=");
            cookie.push_str(EXPIRED);
        }
    }
    cookie.push_str("; path=/");
    if let Some(domain) = &policy.domain {
        cookie.push_str("; domain=");
        cookie.push_str(domain);
    }
    if policy.httponly {
        cookie.push_str("; HttpOnly");
    }
    if policy.secure {
        cookie.push_str("; Secure");
    }
    // Values are checked at config time (`valid_cookie_value`); a bad one is not sent.
    let Ok(value) = HeaderValue::from_str(&cookie) else {
        return;
    };
    headers.append(header::SET_COOKIE, value);

    if policy.nocache && !forbids_shared_caching(headers) {
        headers.append(header::CACHE_CONTROL, HeaderValue::from_static("private"));
    }
}

/// Whether `Cache-Control` already keeps shared caches from storing the response.
fn forbids_shared_caching(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::CACHE_CONTROL)
        .iter()
        .flat_map(|v| v.as_bytes().split(|&b| b == b','))
        .map(|directive| {
            let name = directive
                .iter()
                .position(|&b| b == b'=')
                .map_or(directive, |eq| &directive[..eq]);
            name.trim_ascii()
        })
        .any(|d| {
            d.eq_ignore_ascii_case(b"private")
                || d.eq_ignore_ascii_case(b"no-cache")
                || d.eq_ignore_ascii_case(b"no-store")
        })
}

/// RFC 6265 cookie-name: an HTTP token.
pub fn valid_cookie_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// RFC 6265 cookie-octet*: printable ASCII except space, `"`, `,`, `;` and `\`.
pub fn valid_cookie_value(value: &str) -> bool {
    value
        .bytes()
        .all(|b| (0x21..=0x7e).contains(&b) && !matches!(b, b'"' | b',' | b';' | b'\\'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cookies(values: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(header::COOKIE, HeaderValue::from_str(v).expect("value"));
        }
        h
    }

    fn all(h: &HeaderMap, name: header::HeaderName) -> Vec<String> {
        h.get_all(name)
            .iter()
            .map(|v| v.to_str().expect("ascii").to_owned())
            .collect()
    }

    fn policy() -> CookiePolicy {
        CookiePolicy {
            name: "SRVID".into(),
            indirect: true,
            nocache: true,
            httponly: false,
            secure: false,
            domain: None,
        }
    }

    #[test]
    fn finds_first_cookie_across_fields() {
        let h = cookies(&["lang=fr; theme=dark", "SRVID=web2; SRVID=web1"]);
        assert_eq!(find_server_cookie(&h, "SRVID").as_deref(), Some("web2"));
        assert_eq!(find_server_cookie(&h, "lang").as_deref(), Some("fr"));
        assert_eq!(find_server_cookie(&h, "missing"), None);
    }

    #[test]
    fn find_tolerates_spaces_quotes_and_garbage() {
        let h = cookies(&[";; junk ;  SRVID = \"web1\" ; x=1"]);
        assert_eq!(find_server_cookie(&h, "SRVID").as_deref(), Some("web1"));
        let h = cookies(&["SRVID"]);
        assert_eq!(find_server_cookie(&h, "SRVID"), None);
        let h = cookies(&["SRVID="]);
        assert_eq!(find_server_cookie(&h, "SRVID").as_deref(), Some(""));
    }

    #[test]
    fn find_is_case_sensitive_and_exact() {
        let h = cookies(&["srvid=web1; SRVID2=web2"]);
        assert_eq!(find_server_cookie(&h, "SRVID"), None);
    }

    #[test]
    fn remove_keeps_other_cookies() {
        let mut h = cookies(&["lang=fr; SRVID=web1;theme=dark"]);
        assert!(remove_cookie(&mut h, "SRVID"));
        assert_eq!(all(&h, header::COOKIE), ["lang=fr; theme=dark"]);
    }

    #[test]
    fn remove_drops_emptied_field_and_keeps_untouched_ones_verbatim() {
        let mut h = cookies(&["SRVID=web1", "a=1 ;b=2", "SRVID=web2; c=3"]);
        assert!(remove_cookie(&mut h, "SRVID"));
        assert_eq!(all(&h, header::COOKIE), ["a=1 ;b=2", "c=3"]);

        let mut h = cookies(&["SRVID=web1"]);
        assert!(remove_cookie(&mut h, "SRVID"));
        assert!(h.get(header::COOKIE).is_none());
    }

    #[test]
    fn remove_without_the_cookie_changes_nothing() {
        let mut h = cookies(&["lang=fr;  theme=dark"]);
        assert!(!remove_cookie(&mut h, "SRVID"));
        assert_eq!(all(&h, header::COOKIE), ["lang=fr;  theme=dark"]);
    }

    #[test]
    fn insert_plain_cookie_with_nocache() {
        let mut h = HeaderMap::new();
        insert_set_cookie(&mut h, &policy(), Some("web1"));
        assert_eq!(all(&h, header::SET_COOKIE), ["SRVID=web1; path=/"]);
        assert_eq!(all(&h, header::CACHE_CONTROL), ["private"]);
    }

    #[test]
    fn insert_with_domain_httponly_secure() {
        let mut h = HeaderMap::new();
        let p = CookiePolicy {
            nocache: false,
            httponly: true,
            secure: true,
            domain: Some("example.test".into()),
            ..policy()
        };
        insert_set_cookie(&mut h, &p, Some("web1"));
        assert_eq!(
            all(&h, header::SET_COOKIE),
            ["SRVID=web1; path=/; domain=example.test; HttpOnly; Secure"]
        );
        assert!(h.get(header::CACHE_CONTROL).is_none());
    }

    #[test]
    fn insert_expiring_form_for_server_without_cookie() {
        for value in [None, Some("")] {
            let mut h = HeaderMap::new();
            insert_set_cookie(&mut h, &policy(), value);
            assert_eq!(
                all(&h, header::SET_COOKIE),
                ["SRVID=; Expires=Thu, 01-Jan-1970 00:00:01 GMT; path=/"]
            );
        }
    }

    #[test]
    fn insert_replaces_server_cookie_of_same_name_only() {
        let mut h = HeaderMap::new();
        h.append(
            header::SET_COOKIE,
            HeaderValue::from_static("SESS=1; Path=/; HttpOnly"),
        );
        h.append(
            header::SET_COOKIE,
            HeaderValue::from_static("SRVID=forged; path=/"),
        );
        insert_set_cookie(&mut h, &policy(), Some("web2"));
        assert_eq!(
            all(&h, header::SET_COOKIE),
            ["SESS=1; Path=/; HttpOnly", "SRVID=web2; path=/"]
        );
    }

    #[test]
    fn nocache_respects_existing_private_no_cache_no_store() {
        for existing in [
            "private",
            "no-cache",
            "No-Store",
            "max-age=0, no-cache=\"Set-Cookie\"",
            "PRIVATE=\"x\"",
        ] {
            let mut h = HeaderMap::new();
            h.insert(
                header::CACHE_CONTROL,
                HeaderValue::from_str(existing).expect("value"),
            );
            insert_set_cookie(&mut h, &policy(), Some("web1"));
            assert_eq!(all(&h, header::CACHE_CONTROL), [existing], "{existing}");
        }
        let mut h = HeaderMap::new();
        h.insert(
            header::CACHE_CONTROL,
            HeaderValue::from_static("public, max-age=60"),
        );
        insert_set_cookie(&mut h, &policy(), Some("web1"));
        assert_eq!(
            all(&h, header::CACHE_CONTROL),
            ["public, max-age=60", "private"]
        );
    }

    #[test]
    fn cookie_syntax_checks() {
        assert!(valid_cookie_name("SRVID"));
        assert!(!valid_cookie_name("SRV ID"));
        assert!(!valid_cookie_name(""));
        assert!(valid_cookie_value("web1"));
        assert!(valid_cookie_value(""));
        assert!(!valid_cookie_value("a;b"));
        assert!(!valid_cookie_value("a b"));
    }
}
