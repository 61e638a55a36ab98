//! Prefix strip on requests and the reverse rewrite of responses (lb.md §9, Apache
//! `ProxyPass` / `ProxyPassReverse`). Prefix `/app1` and `/app1/` mean the same thing.
//!
//! - `strip_prefix(path_and_query: &str, prefix: &str) -> Option<String>`: `/app1/x?q` → `/x?q`; `None` = exactly the prefix, answer with a 301.
//! - `needs_slash_redirect(path_and_query: &str, prefix: &str) -> Option<HeaderValue>`: the 301 `Location` (`/app1/?q`) when the path is exactly the prefix.
//! - `rewrite_location(&HeaderValue, prefix, request_host: Option<&str>, client_scheme: &str, server_authorities: &[String]) -> Option<HeaderValue>`: `Some` = replace, `None` = leave alone.
//! - `rewrite_set_cookie_path(&HeaderValue, prefix: &str) -> Option<HeaderValue>`: `Path=/x` → `Path=/app1/x`; `None` = unchanged.
//! - `rewrite_response_headers(&mut HeaderMap, &ReverseRewrite)`: both of the above on `Location`, `Content-Location` and every `Set-Cookie`.

use http::header::{self, HeaderMap, HeaderName, HeaderValue};

/// `/app1/` → `/app1`; `/` → `` (no prefix: nothing to strip or insert).
fn normalize_prefix(prefix: &str) -> &str {
    prefix.trim_end_matches('/')
}

/// Splits `/x?q` into (`/x`, `?q`).
fn split_query(path_and_query: &str) -> (&str, &str) {
    match path_and_query.find('?') {
        Some(i) => path_and_query.split_at(i),
        None => (path_and_query, ""),
    }
}

/// The request target to send to the server once the route's prefix is removed:
/// `/app1/x/y?q` → `/x/y?q`, `/app1/` → `/`, query untouched. `None` when the path is exactly
/// the prefix (`/app1`, `/app1?q`): the client gets the 301 of [`needs_slash_redirect`] instead.
/// A path outside the prefix (the route should not have matched) is returned unchanged.
pub fn strip_prefix(path_and_query: &str, prefix: &str) -> Option<String> {
    let prefix = normalize_prefix(prefix);
    if prefix.is_empty() {
        return Some(path_and_query.to_owned());
    }
    let (path, query) = split_query(path_and_query);
    if path == prefix {
        return None;
    }
    match path.strip_prefix(prefix) {
        Some(rest) if rest.starts_with('/') => {
            let mut out = String::with_capacity(rest.len() + query.len());
            out.push_str(rest);
            out.push_str(query);
            Some(out)
        }
        _ => Some(path_and_query.to_owned()),
    }
}

/// For a request for exactly the prefix, the `Location` of the 301 (lb.md §2): the path with a
/// slash added, query kept (`/app1?lang=fr` → `/app1/?lang=fr`). `None` for any other path.
pub fn needs_slash_redirect(path_and_query: &str, prefix: &str) -> Option<HeaderValue> {
    let prefix = normalize_prefix(prefix);
    let (path, query) = split_query(path_and_query);
    if prefix.is_empty() || path != prefix {
        return None;
    }
    let mut location = String::with_capacity(path_and_query.len() + 1);
    location.push_str(path);
    location.push('/');
    location.push_str(query);
    HeaderValue::from_str(&location).ok()
}

fn default_port(scheme: &str) -> u16 {
    if scheme.eq_ignore_ascii_case("https") {
        443
    } else {
        80
    }
}

/// Splits an authority into host and port, dropping any `userinfo@`. `[v6]:port` is understood.
fn split_authority(authority: &str) -> (&str, Option<&str>) {
    let hostport = authority.rsplit_once('@').map_or(authority, |(_, hp)| hp);
    if hostport.starts_with('[') {
        return match hostport.find(']') {
            Some(end) => {
                let (host, rest) = hostport.split_at(end + 1);
                (host, rest.strip_prefix(':'))
            }
            None => (hostport, None),
        };
    }
    match hostport.rsplit_once(':') {
        Some((host, port)) if port.bytes().all(|b| b.is_ascii_digit()) => (host, Some(port)),
        _ => (hostport, None),
    }
}

/// Whether two authorities name the same host and port; an absent or empty port is the given
/// default (so `site.example.test` and `site.example.test:80` are equal for http).
fn same_authority(a: &str, a_default: u16, b: &str, b_default: u16) -> bool {
    let port = |p: Option<&str>, default: u16| match p {
        None | Some("") => Some(default),
        Some(p) => p.parse::<u16>().ok(),
    };
    let (a_host, a_port) = split_authority(a);
    let (b_host, b_port) = split_authority(b);
    a_host.eq_ignore_ascii_case(b_host)
        && port(a_port, a_default).is_some()
        && port(a_port, a_default) == port(b_port, b_default)
}

/// `prefix` + the path part of `rest` (which starts with `/`, `?`, `#` or is empty).
fn push_prefixed(out: &mut String, prefix: &str, rest: &str) {
    out.push_str(prefix);
    if !rest.starts_with('/') {
        out.push('/');
    }
    out.push_str(rest);
}

/// The reverse rewrite of one `Location` / `Content-Location` value for a route that strips
/// prefix P (lb.md §9):
/// - `/y…` → `P/y…`; a relative reference without a leading `/` is left alone;
/// - `http(s)://A/y…` or `//A/y…` with A the request Host (case-insensitive, default port
///   implied) → the same URL with P inserted;
/// - A one of the backend's servers (`server_authorities`, `host:port`; an entry without port
///   takes the URL scheme's default) → `<client_scheme>://<request Host>P/y…`; with no request
///   Host (HTTP/1.0) → the path-absolute `P/y…`, which resolves against the request URL;
/// - any other absolute URL is left alone.
///
/// P is always inserted, even when the path already begins with it, so the mapping stays
/// one-to-one. `None` means "keep the value as it is".
pub fn rewrite_location(
    value: &HeaderValue,
    prefix: &str,
    request_host: Option<&str>,
    client_scheme: &str,
    server_authorities: &[String],
) -> Option<HeaderValue> {
    let prefix = normalize_prefix(prefix);
    if prefix.is_empty() {
        return None;
    }
    // Non-ASCII (UTF-8) Locations do occur; only bytes that are not UTF-8 are given up on.
    let location = std::str::from_utf8(value.as_bytes()).ok()?;
    let mut out = String::with_capacity(location.len() + prefix.len() + 16);

    // (scheme as written or None for `//A`, text up to the end of the authority, authority)
    let (scheme, head_len, after_slashes) = if let Some(rest) = location.strip_prefix("//") {
        (None, 2, rest)
    } else if location.starts_with('/') {
        push_prefixed(&mut out, prefix, location);
        return HeaderValue::from_str(&out).ok();
    } else {
        let (scheme, rest) = location.split_once("://")?;
        if !scheme.eq_ignore_ascii_case("http") && !scheme.eq_ignore_ascii_case("https") {
            return None;
        }
        (Some(scheme), scheme.len() + 3, rest)
    };
    let authority_end = after_slashes
        .find(['/', '?', '#'])
        .unwrap_or(after_slashes.len());
    let (authority, rest) = after_slashes.split_at(authority_end);
    let url_default = default_port(scheme.unwrap_or(client_scheme));
    let client_default = default_port(client_scheme);

    if let Some(host) = request_host {
        if same_authority(authority, url_default, host, client_default) {
            out.push_str(&location[..head_len + authority.len()]);
            push_prefixed(&mut out, prefix, rest);
            return HeaderValue::from_str(&out).ok();
        }
    }
    let is_server = server_authorities
        .iter()
        .any(|server| same_authority(authority, url_default, server, url_default));
    if !is_server {
        return None;
    }
    if let Some(host) = request_host {
        out.push_str(client_scheme);
        out.push_str("://");
        out.push_str(host);
    }
    push_prefixed(&mut out, prefix, rest);
    HeaderValue::from_str(&out).ok()
}

/// The name of the cookie a `Set-Cookie` value sets (bytes before the first `=`, trimmed).
pub(crate) fn set_cookie_name(value: &[u8]) -> &[u8] {
    let pair = value.split(|&b| b == b';').next().unwrap_or(value);
    let name = pair
        .iter()
        .position(|&b| b == b'=')
        .map_or(pair, |eq| &pair[..eq]);
    name.trim_ascii()
}

/// The `Path` attribute of a server's `Set-Cookie` (name case-insensitive), when its value
/// starts with `/`, gets P in front: `Path=/` → `Path=/app1/`, `Path=/cart` → `Path=/app1/cart`.
/// Everything else (name, value, Domain, spacing) is kept byte for byte. No Path → `None`: the
/// browser's default path is already under P.
pub fn rewrite_set_cookie_path(value: &HeaderValue, prefix: &str) -> Option<HeaderValue> {
    let prefix = normalize_prefix(prefix);
    if prefix.is_empty() {
        return None;
    }
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len() + prefix.len() * 2);
    let mut changed = false;
    for (i, segment) in bytes.split(|&b| b == b';').enumerate() {
        if i > 0 {
            out.push(b';');
        }
        let eq = segment.iter().position(|&b| b == b'=');
        let rewritten = match eq {
            Some(eq) if i > 0 && segment[..eq].trim_ascii().eq_ignore_ascii_case(b"path") => {
                let attr_value = &segment[eq + 1..];
                let start = attr_value
                    .iter()
                    .position(|b| !b.is_ascii_whitespace())
                    .unwrap_or(attr_value.len());
                if attr_value[start..].starts_with(b"/") {
                    out.extend_from_slice(&segment[..eq + 1 + start]);
                    out.extend_from_slice(prefix.as_bytes());
                    out.extend_from_slice(&attr_value[start..]);
                    true
                } else {
                    false
                }
            }
            _ => false,
        };
        if rewritten {
            changed = true;
        } else {
            out.extend_from_slice(segment);
        }
    }
    if !changed {
        return None;
    }
    HeaderValue::from_bytes(&out).ok()
}

/// What [`rewrite_response_headers`] needs to know about the exchange.
#[derive(Debug, Clone, Copy)]
pub struct ReverseRewrite<'a> {
    /// The route's `path_prefix` (`/app1` or `/app1/`).
    pub prefix: &'a str,
    /// The client's `Host` header, as received.
    pub request_host: Option<&'a str>,
    /// `http` or `https`: the client connection's scheme.
    pub client_scheme: &'a str,
    /// `host:port` of each server of the backend.
    pub server_authorities: &'a [String],
    /// vrrplb's persistence cookie name: its `Set-Cookie` keeps `path=/` (lb.md §9).
    pub persistence_cookie: Option<&'a str>,
}

fn rewrite_each(
    headers: &mut HeaderMap,
    name: HeaderName,
    f: impl Fn(&HeaderValue) -> Option<HeaderValue>,
) {
    if let header::Entry::Occupied(mut entry) = headers.entry(name) {
        for value in entry.iter_mut() {
            if let Some(new) = f(value) {
                *value = new;
            }
        }
    }
}

/// Applies the reverse rewrite to `Location`, `Content-Location` and every `Set-Cookie` of a
/// response (except vrrplb's own persistence cookie).
pub fn rewrite_response_headers(headers: &mut HeaderMap, rw: &ReverseRewrite<'_>) {
    for name in [header::LOCATION, header::CONTENT_LOCATION] {
        rewrite_each(headers, name, |v| {
            rewrite_location(
                v,
                rw.prefix,
                rw.request_host,
                rw.client_scheme,
                rw.server_authorities,
            )
        });
    }
    rewrite_each(headers, header::SET_COOKIE, |v| {
        if let Some(own) = rw.persistence_cookie {
            if set_cookie_name(v.as_bytes()) == own.as_bytes() {
                return None;
            }
        }
        rewrite_set_cookie_path(v, rw.prefix)
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOST: &str = "site.example.test";

    fn servers() -> Vec<String> {
        vec!["10.0.0.11:8080".into(), "web2.internal:80".into()]
    }

    fn loc(value: &str, host: Option<&str>, scheme: &str) -> Option<String> {
        rewrite_location(
            &HeaderValue::from_str(value).expect("value"),
            "/app1",
            host,
            scheme,
            &servers(),
        )
        .map(|v| v.to_str().expect("ascii").to_owned())
    }

    fn cookie_path(value: &str, prefix: &str) -> Option<String> {
        rewrite_set_cookie_path(&HeaderValue::from_str(value).expect("value"), prefix)
            .map(|v| v.to_str().expect("ascii").to_owned())
    }

    #[test]
    fn strip_removes_prefix_and_keeps_query() {
        assert_eq!(
            strip_prefix("/app1/x/y?q=1", "/app1").as_deref(),
            Some("/x/y?q=1")
        );
        assert_eq!(strip_prefix("/app1/", "/app1").as_deref(), Some("/"));
        assert_eq!(
            strip_prefix("/app1/?a=b", "/app1").as_deref(),
            Some("/?a=b")
        );
    }

    #[test]
    fn strip_prefix_with_or_without_trailing_slash_is_the_same() {
        for prefix in ["/app1", "/app1/"] {
            assert_eq!(
                strip_prefix("/app1/login", prefix).as_deref(),
                Some("/login")
            );
            assert_eq!(strip_prefix("/app1", prefix), None);
        }
    }

    #[test]
    fn strip_exact_prefix_means_redirect() {
        assert_eq!(strip_prefix("/app1", "/app1"), None);
        assert_eq!(strip_prefix("/app1?lang=fr", "/app1"), None);
    }

    #[test]
    fn strip_leaves_other_paths_alone() {
        assert_eq!(
            strip_prefix("/app10/x", "/app1").as_deref(),
            Some("/app10/x")
        );
        assert_eq!(strip_prefix("/other", "/app1").as_deref(), Some("/other"));
        assert_eq!(strip_prefix("/x?q", "/").as_deref(), Some("/x?q"));
    }

    #[test]
    fn slash_redirect_location_keeps_query() {
        assert_eq!(
            needs_slash_redirect("/app1?lang=fr", "/app1/").expect("redirect"),
            "/app1/?lang=fr"
        );
        assert_eq!(
            needs_slash_redirect("/app1", "/app1").expect("redirect"),
            "/app1/"
        );
        assert!(needs_slash_redirect("/app1/", "/app1").is_none());
        assert!(needs_slash_redirect("/app10", "/app1").is_none());
    }

    #[test]
    fn location_absolute_path_gets_prefix() {
        assert_eq!(
            loc("/login?next=%2F", Some(HOST), "http").as_deref(),
            Some("/app1/login?next=%2F")
        );
        assert_eq!(loc("/", Some(HOST), "http").as_deref(), Some("/app1/"));
    }

    #[test]
    fn location_prefix_inserted_even_if_already_present() {
        assert_eq!(
            loc("/app1/x", Some(HOST), "http").as_deref(),
            Some("/app1/app1/x")
        );
    }

    #[test]
    fn location_relative_without_slash_untouched() {
        assert_eq!(loc("login.php", Some(HOST), "http"), None);
        assert_eq!(loc("../up", Some(HOST), "http"), None);
        assert_eq!(loc("?page=2", Some(HOST), "http"), None);
    }

    #[test]
    fn location_on_request_host_gets_prefix() {
        assert_eq!(
            loc("http://site.example.test/login", Some(HOST), "http").as_deref(),
            Some("http://site.example.test/app1/login")
        );
        assert_eq!(
            loc("HTTPS://Site.Example.TEST/a?b#c", Some(HOST), "https").as_deref(),
            Some("HTTPS://Site.Example.TEST/app1/a?b#c")
        );
        assert_eq!(
            loc("//site.example.test/login", Some(HOST), "https").as_deref(),
            Some("//site.example.test/app1/login")
        );
        assert_eq!(
            loc("http://site.example.test", Some(HOST), "http").as_deref(),
            Some("http://site.example.test/app1/")
        );
        assert_eq!(
            loc("http://site.example.test?x=1", Some(HOST), "http").as_deref(),
            Some("http://site.example.test/app1/?x=1")
        );
    }

    #[test]
    fn location_host_compare_implies_default_port() {
        assert_eq!(
            loc("http://site.example.test:80/a", Some(HOST), "http").as_deref(),
            Some("http://site.example.test:80/app1/a")
        );
        assert_eq!(
            loc(
                "http://site.example.test/a",
                Some("site.example.test:8080"),
                "http"
            ),
            None
        );
        assert_eq!(
            loc(
                "http://site.example.test:8080/a",
                Some("site.example.test:8080"),
                "http"
            )
            .as_deref(),
            Some("http://site.example.test:8080/app1/a")
        );
    }

    #[test]
    fn location_on_backend_server_points_back_at_client_host() {
        assert_eq!(
            loc("http://10.0.0.11:8080/login", Some(HOST), "https").as_deref(),
            Some("https://site.example.test/app1/login")
        );
        assert_eq!(
            loc(
                "http://WEB2.internal/cart?id=3",
                Some("site.example.test:8443"),
                "https"
            )
            .as_deref(),
            Some("https://site.example.test:8443/app1/cart?id=3")
        );
        assert_eq!(
            loc("//10.0.0.11:8080/x", Some(HOST), "http").as_deref(),
            Some("http://site.example.test/app1/x")
        );
    }

    #[test]
    fn location_on_backend_server_without_host_becomes_path() {
        assert_eq!(
            loc("http://10.0.0.11:8080/login", None, "http").as_deref(),
            Some("/app1/login")
        );
    }

    #[test]
    fn location_elsewhere_untouched() {
        assert_eq!(
            loc("https://sso.example.test/auth?r=1", Some(HOST), "https"),
            None
        );
        assert_eq!(loc("http://10.0.0.11/login", Some(HOST), "http"), None); // wrong port
        assert_eq!(loc("ftp://site.example.test/f", Some(HOST), "http"), None);
        assert_eq!(
            loc("mailto:root@site.example.test", Some(HOST), "http"),
            None
        );
    }

    #[test]
    fn location_ipv6_server_authority() {
        let servers = vec!["[2001:db8::11]:8080".to_owned()];
        let v = rewrite_location(
            &HeaderValue::from_static("http://[2001:DB8::11]:8080/a"),
            "/app1/",
            Some(HOST),
            "http",
            &servers,
        )
        .expect("rewritten");
        assert_eq!(v, "http://site.example.test/app1/a");
    }

    #[test]
    fn set_cookie_path_root_and_subpath() {
        assert_eq!(
            cookie_path("SESS=1; Path=/; HttpOnly", "/app1").as_deref(),
            Some("SESS=1; Path=/app1/; HttpOnly")
        );
        assert_eq!(
            cookie_path("cart=9; path=/cart; Domain=site.example.test", "/app1/").as_deref(),
            Some("cart=9; path=/app1/cart; Domain=site.example.test")
        );
        assert_eq!(
            cookie_path("a=b;PATH = /x;Secure", "/app1").as_deref(),
            Some("a=b;PATH = /app1/x;Secure")
        );
    }

    #[test]
    fn set_cookie_without_path_or_relative_path_unchanged() {
        assert_eq!(cookie_path("SESS=1; HttpOnly", "/app1"), None);
        assert_eq!(cookie_path("SESS=1; Path=relative", "/app1"), None);
        // A cookie *named* path is not the attribute.
        assert_eq!(cookie_path("path=/x; Secure", "/app1"), None);
    }

    #[test]
    fn response_headers_rewritten_except_own_cookie() {
        let mut h = HeaderMap::new();
        h.insert(
            header::LOCATION,
            HeaderValue::from_static("http://site.example.test/login"),
        );
        h.insert(header::CONTENT_LOCATION, HeaderValue::from_static("/doc/1"));
        h.append(
            header::SET_COOKIE,
            HeaderValue::from_static("SESS=1; Path=/; HttpOnly"),
        );
        h.append(
            header::SET_COOKIE,
            HeaderValue::from_static("theme=dark; Path=/prefs"),
        );
        h.append(
            header::SET_COOKIE,
            HeaderValue::from_static("SRVID=web1; path=/"),
        );
        let servers = servers();
        rewrite_response_headers(
            &mut h,
            &ReverseRewrite {
                prefix: "/app1",
                request_host: Some(HOST),
                client_scheme: "http",
                server_authorities: &servers,
                persistence_cookie: Some("SRVID"),
            },
        );
        assert_eq!(h[header::LOCATION], "http://site.example.test/app1/login");
        assert_eq!(h[header::CONTENT_LOCATION], "/app1/doc/1");
        let cookies: Vec<_> = h.get_all(header::SET_COOKIE).iter().collect();
        assert_eq!(cookies[0], "SESS=1; Path=/app1/; HttpOnly");
        assert_eq!(cookies[1], "theme=dark; Path=/app1/prefs");
        assert_eq!(cookies[2], "SRVID=web1; path=/");
    }
}
