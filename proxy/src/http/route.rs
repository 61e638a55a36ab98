//! Frontend routing: which backend serves a request (lb.md §2). Pure: the caller supplies
//! the Host, the raw path and a "backend has a usable server" predicate.

use crate::config::{HostMatch, RouteConfig};

/// What the frontend does with a request.
#[derive(Debug, PartialEq, Eq)]
pub enum RouteDecision<'a> {
    /// Send to backend `backend`; `strip` is the prefix to remove from the path, if any.
    Backend {
        backend: usize,
        strip: Option<&'a str>,
    },
    /// A strip route asked for exactly its prefix: 301 to this location (prefix + `/`).
    Redirect(String),
    /// No route and no default backend: 503, `<NOSRV>`.
    NoMatch,
}

#[derive(Debug)]
struct Route {
    host: Option<HostMatch>,
    /// Normalised prefix without trailing `/` (`""` for `/`).
    prefix: Option<String>,
    backend: usize,
    strip: bool,
    require_available: bool,
}

/// The compiled routes of one frontend.
#[derive(Debug)]
pub struct Router {
    routes: Vec<Route>,
    default_backend: Option<usize>,
}

impl Router {
    /// `backend_index` maps a backend name to its index; routes naming an unknown backend
    /// are dropped (the binary's validation rejects them first).
    pub fn new(
        routes: &[RouteConfig],
        default_backend: Option<&str>,
        backend_index: impl Fn(&str) -> Option<usize>,
    ) -> Self {
        let routes = routes
            .iter()
            .filter_map(|r| {
                Some(Route {
                    host: r.host.clone(),
                    prefix: r.path_prefix.as_deref().map(normalise_prefix),
                    backend: backend_index(&r.backend)?,
                    strip: r.strip_prefix && r.path_prefix.is_some(),
                    require_available: r.require_available,
                })
            })
            .collect();
        Router {
            routes,
            default_backend: default_backend.and_then(backend_index),
        }
    }

    /// `host`: the Host header or the authority of an absolute-form target, port included or
    /// not. `path` is raw (not percent-decoded). `available(b)`: backend `b` has a usable server.
    pub fn decide(
        &self,
        host: Option<&str>,
        path: &str,
        query: Option<&str>,
        available: impl Fn(usize) -> bool,
    ) -> RouteDecision<'_> {
        // The host without its port, worked out for the first route that looks at it.
        let mut bare_host: Option<Option<&str>> = None;
        for route in &self.routes {
            if let Some(pattern) = &route.host {
                match *bare_host.get_or_insert_with(|| host.map(host_without_port)) {
                    Some(h) if host_matches(pattern, h) => {}
                    _ => continue,
                }
            }
            if let Some(prefix) = &route.prefix {
                if !path_has_prefix(path, prefix) {
                    continue;
                }
            }
            if route.require_available && !available(route.backend) {
                continue;
            }
            let strip = match (&route.prefix, route.strip) {
                (Some(prefix), true) if !prefix.is_empty() => {
                    if path == prefix {
                        let mut location = format!("{prefix}/");
                        if let Some(q) = query {
                            location.push('?');
                            location.push_str(q);
                        }
                        return RouteDecision::Redirect(location);
                    }
                    Some(prefix.as_str())
                }
                _ => None,
            };
            return RouteDecision::Backend {
                backend: route.backend,
                strip,
            };
        }
        match self.default_backend {
            Some(backend) => RouteDecision::Backend {
                backend,
                strip: None,
            },
            None => RouteDecision::NoMatch,
        }
    }
}

fn normalise_prefix(p: &str) -> String {
    let trimmed = p.trim_end_matches('/');
    if trimmed.is_empty() || trimmed.starts_with('/') {
        trimmed.to_string()
    } else {
        format!("/{trimmed}")
    }
}

/// Directory semantics: `/app1` matches `/app1` and `/app1/...`, not `/app10`.
fn path_has_prefix(path: &str, prefix: &str) -> bool {
    match path.strip_prefix(prefix) {
        Some(rest) => rest.is_empty() || rest.starts_with('/'),
        None => false,
    }
}

/// `Example.test:8080` → `Example.test`, `[::1]:80` → `[::1]`.
pub fn host_without_port(host: &str) -> &str {
    if host.starts_with('[') {
        return match host.find(']') {
            Some(end) => &host[..=end],
            None => host,
        };
    }
    match host.rsplit_once(':') {
        Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
        _ => host,
    }
}

fn host_matches(pattern: &HostMatch, host: &str) -> bool {
    match pattern {
        HostMatch::Exact(name) => host.eq_ignore_ascii_case(name),
        HostMatch::Suffix(suffix) => {
            host.len() > suffix.len()
                && host.is_char_boundary(host.len() - suffix.len())
                && host[host.len() - suffix.len()..].eq_ignore_ascii_case(suffix)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(host: Option<&str>, prefix: Option<&str>, backend: &str) -> RouteConfig {
        let mut r = RouteConfig::new(backend);
        r.host = host.map(HostMatch::parse);
        r.path_prefix = prefix.map(str::to_string);
        r
    }

    fn index(name: &str) -> Option<usize> {
        ["site1", "app1", "wild", "def"]
            .iter()
            .position(|n| *n == name)
    }

    fn backend_of(d: RouteDecision<'_>) -> Option<usize> {
        match d {
            RouteDecision::Backend { backend, .. } => Some(backend),
            _ => None,
        }
    }

    #[test]
    fn host_is_case_insensitive_and_port_is_ignored() {
        let r = Router::new(
            &[route(Some("Site1.Example.test"), None, "site1")],
            None,
            index,
        );
        let d = |h| backend_of(r.decide(Some(h), "/", None, |_| true));
        assert_eq!(d("site1.example.test"), Some(0));
        assert_eq!(d("SITE1.EXAMPLE.TEST:8080"), Some(0));
        assert_eq!(d("site2.example.test"), None);
        assert_eq!(r.decide(None, "/", None, |_| true), RouteDecision::NoMatch);
    }

    #[test]
    fn wildcard_matches_subdomains_not_the_bare_domain() {
        let r = Router::new(&[route(Some("*.example.test"), None, "wild")], None, index);
        let d = |h| backend_of(r.decide(Some(h), "/", None, |_| true));
        assert_eq!(d("a.example.test"), Some(2));
        assert_eq!(d("a.b.EXAMPLE.test:80"), Some(2));
        assert_eq!(d("example.test"), None);
        assert_eq!(d("badexample.test"), None);
    }

    #[test]
    fn path_prefix_has_directory_semantics() {
        for p in ["/app1", "/app1/"] {
            let r = Router::new(&[route(None, Some(p), "app1")], Some("def"), index);
            let d = |path| backend_of(r.decide(Some("x"), path, None, |_| true));
            assert_eq!(d("/app1/x"), Some(1));
            assert_eq!(d("/app1"), Some(1));
            assert_eq!(d("/app10"), Some(3));
            assert_eq!(d("/x/app1/y"), Some(3));
            assert_eq!(d("/App1/x"), Some(3));
        }
    }

    #[test]
    fn strip_route_redirects_the_bare_prefix_keeping_the_query() {
        let mut rc = route(None, Some("/app1/"), "app1");
        rc.strip_prefix = true;
        let r = Router::new(&[rc], None, index);
        assert_eq!(
            r.decide(None, "/app1", Some("a=1"), |_| true),
            RouteDecision::Redirect("/app1/?a=1".into())
        );
        assert_eq!(
            r.decide(None, "/app1/x", None, |_| true),
            RouteDecision::Backend {
                backend: 1,
                strip: Some("/app1")
            }
        );
    }

    #[test]
    fn require_available_skips_to_the_next_route() {
        let mut first = route(None, Some("/app1"), "app1");
        first.require_available = true;
        let r = Router::new(&[first, route(None, None, "site1")], None, index);
        assert_eq!(
            backend_of(r.decide(None, "/app1/", None, |b| b != 1)),
            Some(0)
        );
        assert_eq!(
            backend_of(r.decide(None, "/app1/", None, |_| true)),
            Some(1)
        );
    }

    #[test]
    fn all_conditions_must_hold_and_first_match_wins() {
        let r = Router::new(
            &[
                route(Some("a.test"), Some("/app1"), "app1"),
                route(Some("a.test"), None, "site1"),
                route(None, None, "wild"),
            ],
            None,
            index,
        );
        assert_eq!(
            backend_of(r.decide(Some("a.test"), "/app1/", None, |_| true)),
            Some(1)
        );
        assert_eq!(
            backend_of(r.decide(Some("a.test"), "/z", None, |_| true)),
            Some(0)
        );
        assert_eq!(
            backend_of(r.decide(Some("b.test"), "/app1/", None, |_| true)),
            Some(2)
        );
    }

    #[test]
    fn unknown_backends_are_ignored() {
        let r = Router::new(&[route(None, None, "nope")], Some("nope"), index);
        assert_eq!(r.decide(None, "/", None, |_| true), RouteDecision::NoMatch);
    }

    #[test]
    fn ports_are_removed_from_ipv6_literals() {
        assert_eq!(host_without_port("[::1]:8080"), "[::1]");
        assert_eq!(host_without_port("[::1]"), "[::1]");
        assert_eq!(host_without_port("a.test"), "a.test");
    }
}
