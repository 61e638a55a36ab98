//! haproxy.cfg → the `global` logging settings, `frontends` and `backends` of a vrrplb file.
//! The syntax: a section keyword (`global`, `defaults`, `frontend NAME`, `backend NAME`,
//! `listen NAME [ADDR]`) and its lines; words separated by blanks, `\ ` an escaped blank,
//! `#` a comment. `defaults` lines apply to every later proxy section, as in HAProxy.

use super::doc::{Node, Origin};
use super::Notes;
use proxy::tls::suites;
use std::collections::HashMap;

#[derive(Debug, Clone)]
struct Line {
    words: Vec<String>,
    origin: Origin,
    /// Comes from a `defaults` section (reported there, not in every proxy).
    inherited: bool,
}

#[derive(Debug)]
struct Section {
    kind: String,
    args: Vec<String>,
    origin: Origin,
    lines: Vec<Line>,
}

fn words(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                if let Some(n) = chars.next() {
                    match n {
                        'r' | 'n' | 't' => {
                            cur.push('\\');
                            cur.push(n)
                        }
                        n => cur.push(n),
                    }
                }
            }
            '"' | '\'' => quoted = !quoted,
            '#' if !quoted && cur.is_empty() => break,
            c if c.is_whitespace() && !quoted => {
                if !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                }
            }
            c => cur.push(c),
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

const SECTIONS: [&str; 12] = [
    "global",
    "defaults",
    "frontend",
    "backend",
    "listen",
    "userlist",
    "peers",
    "resolvers",
    "mailers",
    "program",
    "cache",
    "ring",
];

fn parse(text: &str, file: &str) -> Vec<Section> {
    let mut sections: Vec<Section> = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let w = words(raw);
        let Some(first) = w.first() else { continue };
        let origin = Origin {
            file: file.to_owned(),
            line: i + 1,
            text: w.join(" "),
        };
        if SECTIONS.contains(&first.as_str()) {
            sections.push(Section {
                kind: first.clone(),
                args: w[1..].to_vec(),
                origin,
                lines: Vec::new(),
            });
        } else if let Some(s) = sections.last_mut() {
            s.lines.push(Line {
                words: w,
                origin,
                inherited: false,
            });
        } else {
            sections.push(Section {
                kind: "(none)".into(),
                args: Vec::new(),
                origin: origin.clone(),
                lines: vec![Line {
                    words: w,
                    origin,
                    inherited: false,
                }],
            });
        }
    }
    sections
}

/// What a proxy section made of one line.
enum Took {
    Done,
    /// Not a directive of this side (frontend or backend).
    NotMine,
    Skip(String),
}

fn skip(why: &str) -> Took {
    Took::Skip(why.to_owned())
}

/// HAProxy times: a bare number is milliseconds.
fn time(v: &str) -> Option<Node> {
    let split = v.find(|c: char| !c.is_ascii_digit()).unwrap_or(v.len());
    let (n, unit) = v.split_at(split);
    let n: i64 = n.parse().ok()?;
    Some(match unit {
        "" | "ms" => Node::str(format!("{n}ms")),
        "s" | "m" | "h" => Node::str(format!("{n}{unit}")),
        "us" => Node::str(format!("{}ms", (n / 1000).max(1))),
        "d" => Node::str(format!("{}h", n * 24)),
        _ => return None,
    })
}

#[derive(Default)]
struct Acl {
    hosts: Vec<String>,
    /// A `path_beg`/`path_dir` value as a route's directory prefix (`/app/`).
    path: Option<String>,
    /// `path_beg` values as written (a rule's plain prefix; several = any of them).
    path_beg: Vec<String>,
    avail: Option<String>,
    /// `src` networks and `method` names (rules only).
    src: Vec<String>,
    methods: Vec<String>,
    other: bool,
}

/// One ACL criterion (`hdr(host)`, `path_beg`, `path_dir`, `nbsrv(B) ge 1`, `src`, `method`)
/// added to `acl`; anything else is refused with the reason.
fn criterion(acl: &mut Acl, fetch: &str, args: &[String]) -> Result<(), String> {
    // `-f FILE` (patterns from a file) and `-m` (another match method) change what the
    // values mean; `-i` (ignore case) does not matter for the criteria translated.
    if args.iter().any(|a| a == "-f" || a == "-m" || a == "-M") {
        return Err("ACLs with -f or -m are not translated".into());
    }
    let values: Vec<String> = args
        .iter()
        .filter(|v| !v.starts_with('-'))
        .cloned()
        .collect();
    match fetch {
        "hdr(host)" | "hdr_dom(host)" | "req.hdr(host)" => acl.hosts.extend(values),
        "path_beg" | "path_dir" => {
            let Some(p) = values.first() else {
                return Err("needs a path".into());
            };
            if fetch == "path_beg" {
                acl.path_beg.extend(values.iter().cloned());
            }
            let p = if p.starts_with('/') {
                p.clone()
            } else {
                format!("/{p}")
            };
            acl.path = Some(if p.ends_with('/') { p } else { format!("{p}/") });
        }
        "src" if !values.is_empty() => acl.src.extend(values),
        "method" if !values.is_empty() => acl.methods.extend(values),
        f if f.starts_with("nbsrv(") && args == ["ge".to_owned(), "1".to_owned()] => {
            acl.avail = Some(
                f.trim_start_matches("nbsrv(")
                    .trim_end_matches(')')
                    .to_owned(),
            )
        }
        _ => {
            return Err("this ACL criterion is not translated (host, path_beg, path_dir, nbsrv ge 1, src and method are)".into())
        }
    }
    Ok(())
}

/// Translates haproxy.cfg into `doc`; `vips` are the keepalived VIPs with their instance
/// (a frontend bound to one is gated by that instance).
pub fn translate(
    text: &str,
    file: &str,
    doc: &mut Node,
    vips: &[(String, String)],
    notes: &mut Notes,
) {
    let sections = parse(text, file);
    // Before any proxy: the global section may come after the frontends.
    let mut bind = bind_defaults(&sections, notes);
    let mut defaults: Vec<Line> = Vec::new();
    for s in &sections {
        match s.kind.as_str() {
            "global" => global(s, doc, notes),
            "defaults" => {
                if !s.args.is_empty() {
                    notes.skip(&s.origin, "named defaults are read as plain defaults");
                }
                defaults = s
                    .lines
                    .iter()
                    .map(|l| Line {
                        inherited: true,
                        ..l.clone()
                    })
                    .collect();
                for l in &defaults {
                    let mut f = Frontend::default();
                    let mut b = Backend::default();
                    match (f.take(l), b.take(l)) {
                        (Took::NotMine, Took::NotMine) => {
                            notes.skip(&l.origin, "no vrrplb equivalent")
                        }
                        (Took::Skip(why), _) | (_, Took::Skip(why)) => notes.skip(&l.origin, &why),
                        _ => {}
                    }
                }
            }
            "frontend" | "backend" | "listen" => proxy(s, &defaults, &mut bind, doc, vips, notes),
            "(none)" => {
                for l in &s.lines {
                    notes.skip(&l.origin, "outside any section");
                }
            }
            other => notes.skip(
                &s.origin,
                &format!("`{other}` sections have no vrrplb equivalent"),
            ),
        }
    }
    if !bind.applied {
        for o in &bind.lines {
            notes.skip(
                o,
                "no TLS frontend (bind ... ssl crt ...) takes this default",
            );
        }
    }
}

/// The global `ssl-default-bind-ciphers`, `ssl-default-bind-ciphersuites` and
/// `ssl-default-bind-options`: `tls` keys for every TLS frontend whose bind line does not set
/// its own (HAProxy: bind options override the defaults).
#[derive(Default)]
struct BindDefaults {
    keys: Vec<(&'static str, Node)>,
    /// The lines that set some key.
    lines: Vec<Origin>,
    /// Some frontend took a key.
    applied: bool,
}

/// The global lines `BindDefaults` reads (each with a value).
const BIND_DEFAULT_LINES: [&str; 3] = [
    "ssl-default-bind-ciphers",
    "ssl-default-bind-ciphersuites",
    "ssl-default-bind-options",
];

impl BindDefaults {
    /// Keeps the key `t` sets; hands back its note (what was not translated).
    fn take(&mut self, t: TlsOpt, o: &Origin) -> Option<String> {
        if let Some((key, node)) = t.set {
            self.keys.retain(|(k, _)| *k != key);
            self.keys.push((key, node));
            if !self.lines.iter().any(|l| l.line == o.line) {
                self.lines.push(o.clone());
            }
        }
        t.note
    }
}

fn bind_defaults(sections: &[Section], notes: &mut Notes) -> BindDefaults {
    let mut d = BindDefaults::default();
    for l in sections
        .iter()
        .filter(|s| s.kind == "global")
        .flat_map(|s| &s.lines)
    {
        let (w, o) = (&l.words, &l.origin);
        let Some(v) = w.get(1) else { continue };
        let note = match w[0].as_str() {
            "ssl-default-bind-ciphers" => d.take(ciphers(v, o), o),
            "ssl-default-bind-ciphersuites" => d.take(ciphersuites(v, o), o),
            "ssl-default-bind-options" => {
                let mut i = 1;
                while i < w.len() {
                    match tls_option(&w[i], w.get(i + 1), o) {
                        Some(t) => {
                            let (next, subject) = (t.used_next, t.subject.clone());
                            if let Some(why) = d.take(t, o) {
                                notes.skip(o, &format!("option `{subject}`: {why}"));
                            }
                            if next {
                                i += 1;
                            }
                        }
                        None => notes.skip(o, &format!("option `{}` is not translated", w[i])),
                    }
                    i += 1;
                }
                None
            }
            _ => None,
        };
        if let Some(why) = note {
            notes.skip(o, &why);
        }
    }
    d
}

fn global(s: &Section, doc: &mut Node, notes: &mut Notes) {
    for l in &s.lines {
        let o = &l.origin;
        let w = &l.words;
        match w[0].as_str() {
            "node" if w.len() > 1 => doc.entry("global").set("node", Node::str(&w[1]).from(o)),
            "maxconn" => match w.get(1).and_then(|v| v.parse::<i64>().ok()) {
                Some(n) => doc.entry("global").set("maxconn", Node::int(n).from(o)),
                None => notes.skip(o, "expected a number"),
            },
            "nbthread" => match w.get(1).and_then(|v| v.parse::<i64>().ok()) {
                Some(n) => doc.entry("global").set("threads", Node::int(n).from(o)),
                None => notes.skip(o, "expected a number"),
            },
            "log" => log(w, o, doc, notes),
            "daemon" | "user" | "group" | "chroot" | "pidfile" | "master-worker" | "quiet" => {
                notes.skip(o, "not needed: vrrplb runs under systemd as the user vrrplb (see deploy/vrrplb.service)")
            }
            "stats" => notes.skip(o, "the stats socket: use `vrrplb status`"),
            // Read before the proxies (see `bind_defaults`).
            w0 if BIND_DEFAULT_LINES.contains(&w0) && w.len() > 1 => {}
            w0 if w0.starts_with("ssl-") || w0.starts_with("tune.") || w0 == "ca-base" || w0 == "crt-base" => {
                notes.skip(o, "TLS and tuning settings have no vrrplb equivalent; give full paths")
            }
            _ => notes.skip(o, "global setting with no vrrplb equivalent"),
        }
    }
}

/// The pieces of `value` (split at `sep`) that `known` accepts, and the others.
fn known_names(value: &str, sep: char, known: impl Fn(&str) -> bool) -> (Vec<String>, Vec<String>) {
    value
        .split(sep)
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(String::from)
        .partition(|p| known(p))
}

/// What a TLS option of a bind line or of `ssl-default-bind-options` does.
#[derive(Default)]
struct TlsOpt {
    /// The frontend `tls` key it sets.
    set: Option<(&'static str, Node)>,
    /// The key it decides, set or not: a bind line's own value wins over the global default.
    claims: Option<&'static str>,
    /// What was not translated.
    note: Option<String>,
    /// The option took the next word as its value.
    used_next: bool,
    /// The option as a note names it (a version option with its value).
    subject: String,
}

/// A TLS option (`word`, with `next` when it takes a value), or None when it is not one.
fn tls_option(word: &str, next: Option<&String>, o: &Origin) -> Option<TlsOpt> {
    let min = |v: &str| TlsOpt {
        set: Some(("min_version", Node::str(v).from(o))),
        claims: Some("min_version"),
        ..TlsOpt::default()
    };
    let note = |why: &str| TlsOpt {
        note: Some(why.to_owned()),
        ..TlsOpt::default()
    };
    let valued = |mut t: TlsOpt| {
        t.used_next = true;
        t
    };
    let mut t = match (word, next) {
        // vrrplb offers TLS 1.2 and 1.3 only: turning older versions off changes nothing.
        ("no-sslv3" | "no-tlsv10" | "no-tlsv11", _) => TlsOpt::default(),
        ("no-tlsv12" | "force-tlsv13", _) => min("1.3"),
        ("no-tlsv13", _) => note("vrrplb always offers TLS 1.3"),
        ("force-sslv3" | "force-tlsv10" | "force-tlsv11" | "force-tlsv12", _) => {
            note("not translated: vrrplb offers TLS 1.2 and 1.3")
        }
        ("ssl-min-ver", Some(v)) => valued(match v.as_str() {
            "TLSv1.2" => min("1.2"),
            "TLSv1.3" => min("1.3"),
            _ => note("vrrplb offers TLS 1.2 and 1.3 only (min_version stays \"1.2\")"),
        }),
        ("ssl-max-ver", Some(_)) => valued(note(
            "not supported: vrrplb always offers TLS 1.3 (a maximum version is not translated)",
        )),
        ("no-tls-tickets", _) => TlsOpt {
            set: Some(("tickets", Node::bool(false).from(o))),
            claims: Some("tickets"),
            ..TlsOpt::default()
        },
        ("prefer-client-ciphers", _) => {
            note("not supported: the server's suite order always wins in vrrplb")
        }
        ("ciphers", Some(v)) => valued(ciphers(v, o)),
        ("ciphersuites", Some(v)) => valued(ciphersuites(v, o)),
        _ => return None,
    };
    t.subject = match next {
        Some(v) if word.starts_with("ssl-m") => format!("{word} {v}"),
        _ => word.to_owned(),
    };
    Some(t)
}

/// `ciphers` (TLS 1.2): an OpenSSL cipher list, evaluated over vrrplb's suites.
fn ciphers(v: &str, o: &Origin) -> TlsOpt {
    let e = super::ciphers::evaluate(v);
    let mut t = TlsOpt {
        claims: Some("ciphers"),
        ..TlsOpt::default()
    };
    let remarks = if e.remarks.is_empty() {
        String::new()
    } else {
        format!("; {}", e.remarks.join("; "))
    };
    if e.names.is_empty() {
        t.note = Some(format!(
            "`{v}` selects none of vrrplb's TLS 1.2 suites{remarks}; vrrplb's default order is used"
        ));
    } else {
        let list = e.names.join(":");
        if !remarks.is_empty() {
            t.note = Some(format!("`{v}` became {list}{remarks}"));
        }
        t.set = Some(("ciphers", Node::str(list).from(o)));
    }
    t
}

/// `ciphersuites` (TLS 1.3): suite names only (OpenSSL has no expressions for them).
fn ciphersuites(v: &str, o: &Origin) -> TlsOpt {
    let (kept, dropped) = known_names(v, ':', |c| {
        suites::TLS13_SUITES.iter().any(|(t, _)| *t == c)
    });
    let mut t = TlsOpt {
        claims: Some("ciphersuites"),
        ..TlsOpt::default()
    };
    if !kept.is_empty() {
        t.set = Some(("ciphersuites", Node::str(kept.join(":")).from(o)));
    }
    if !dropped.is_empty() {
        let then = if kept.is_empty() {
            "vrrplb's default order is used"
        } else {
            "the others are kept"
        };
        t.note = Some(format!(
            "{} not supported (TLS 1.3 suite names only; rustls has AES-GCM and ChaCha20-Poly1305), {then}",
            dropped.join(", ")
        ));
    }
    t
}

/// `log ADDR FACILITY [LEVEL]` (or `log FACILITY`, as some tutorials write it).
fn log(w: &[String], o: &Origin, doc: &mut Node, notes: &mut Notes) {
    let facilities = [
        "kern", "user", "mail", "daemon", "auth", "syslog", "lpr", "news", "uucp", "cron",
        "authpriv", "ftp", "local0", "local1", "local2", "local3", "local4", "local5", "local6",
        "local7",
    ];
    let args: Vec<&str> = w[1..].iter().map(String::as_str).collect();
    let (addr, facility) = match args.as_slice() {
        [f, ..] if facilities.contains(f) => (None, *f),
        [a, f, ..] if facilities.contains(f) => (Some(*a), *f),
        ["global"] => return,
        _ => {
            notes.skip(o, "expected `log ADDRESS FACILITY [LEVEL]`");
            return;
        }
    };
    let log = doc.entry("global").entry("log");
    if log.get("facility").is_some() {
        notes.skip(o, "only the first log line is translated (one facility)");
        return;
    }
    log.set("target", Node::str("syslog").from(o));
    log.set("facility", Node::str(facility).from(o));
    match addr {
        None | Some("/dev/log") => {}
        Some(a) if a.starts_with('/') => log.set("syslog_socket", Node::str(a).from(o)),
        Some(a) => {
            let a = a.strip_prefix("udp@").unwrap_or(a);
            let server = if a.contains(':') && !a.starts_with('[') && a.matches(':').count() == 1 {
                format!("udp://{a}")
            } else {
                format!("udp://{a}:514")
            };
            log.set("syslog_server", Node::str(server).from(o));
        }
    }
    if args.len() > 2 && addr.is_some() {
        notes.skip(o, "the log level is not translated: set global.log.level");
    }
}

/// What a deny/allow line does.
#[derive(Clone, Copy)]
enum Verdict {
    Deny(i64),
    Allow,
}

#[derive(Default)]
struct Frontend {
    node: Node,
    /// Parts of lines that were otherwise translated.
    notes: Vec<(Origin, String)>,
    acls: HashMap<String, Acl>,
    /// Frontends only: the VIPs its binds name.
    bind_ips: Vec<String>,
    /// The `tls` keys its bind lines decide (the global `ssl-default-bind-*` do not apply).
    own_tls: Vec<&'static str>,
}

impl Frontend {
    fn take(&mut self, l: &Line) -> Took {
        let w = &l.words;
        let o = &l.origin;
        let n = &mut self.node;
        match w[0].as_str() {
            "bind" => {
                let Some(addr) = w.get(1) else {
                    return skip("bind needs an address");
                };
                let addr = addr.strip_prefix('*').unwrap_or(addr);
                if let Some(ip) = addr
                    .rsplit_once(':')
                    .map(|(ip, _)| ip.trim_matches(['[', ']']))
                {
                    if !ip.is_empty() {
                        self.bind_ips.push(ip.to_owned());
                    }
                }
                n.list_at("bind").push(Node::str(addr).from(o));
                // Every option is read: an `ssl` bind must never become a plain one.
                let mut i = 2;
                while i < w.len() {
                    match (w[i].as_str(), w.get(i + 1)) {
                        ("ssl", _) => {
                            let tls = n.entry("tls");
                            tls.mark_origin(o);
                            tls.list_at("certificates");
                        }
                        ("crt", Some(c)) => {
                            let tls = n.entry("tls");
                            tls.mark_origin(o);
                            tls.list_at("certificates").push(Node::str(c).from(o));
                            i += 1;
                        }
                        ("alpn", Some(v)) => {
                            let (kept, dropped) =
                                known_names(v, ',', |p| ["h2", "http/1.1"].contains(&p));
                            let tls = n.entry("tls");
                            if !kept.is_empty() {
                                let list = tls.list_at("alpn");
                                list.clear();
                                list.extend(kept.iter().map(|p| Node::str(p.as_str()).from(o)));
                            }
                            if !dropped.is_empty() {
                                self.notes.push((
                                    o.clone(),
                                    format!("bind option `alpn`: {} not offered (vrrplb speaks h2 and http/1.1)", dropped.join(", ")),
                                ));
                            }
                            i += 1;
                        }
                        (word, next) => match tls_option(word, next, o) {
                            Some(t) => {
                                if let Some((key, node)) = t.set {
                                    n.entry("tls").set(key, node);
                                }
                                if let Some(key) = t.claims {
                                    if !self.own_tls.contains(&key) {
                                        self.own_tls.push(key);
                                    }
                                }
                                if let Some(why) = t.note {
                                    self.notes.push((
                                        o.clone(),
                                        format!("bind option `{}`: {why}", t.subject),
                                    ));
                                }
                                if t.used_next {
                                    i += 1;
                                }
                            }
                            None => self.notes.push((
                                o.clone(),
                                format!("bind option `{word}` is not translated"),
                            )),
                        },
                    }
                    i += 1;
                }
                Took::Done
            }
            "mode" => {
                n.set(
                    "mode",
                    Node::str(w.get(1).cloned().unwrap_or_default()).from(o),
                );
                Took::Done
            }
            "maxconn" => match w.get(1).and_then(|v| v.parse::<i64>().ok()) {
                Some(v) => {
                    n.set("maxconn", Node::int(v).from(o));
                    Took::Done
                }
                None => skip("expected a number"),
            },
            "timeout" => match (w.get(1).map(String::as_str), w.get(2).and_then(|v| time(v))) {
                (Some("client"), Some(t)) => {
                    n.entry("timeouts").set("client", t.from(o));
                    Took::Done
                }
                (Some("http-request"), Some(t)) => {
                    n.entry("timeouts").set("http_request", t.from(o));
                    Took::Done
                }
                (Some("http-keep-alive"), Some(t)) => {
                    n.entry("timeouts").set("keep_alive", t.from(o));
                    Took::Done
                }
                (Some("connect" | "server" | "queue" | "check" | "tunnel"), _) => Took::NotMine,
                _ => skip("timeout not translated"),
            },
            "clitimeout" => match w.get(1).and_then(|v| time(v)) {
                Some(t) => {
                    n.entry("timeouts").set("client", t.from(o));
                    Took::Done
                }
                None => skip("expected a time"),
            },
            "option" => match w.get(1).map(String::as_str) {
                Some("forwardfor") => {
                    n.set("forwarded_for", Node::bool(true).from(o));
                    Took::Done
                }
                Some("httplog" | "tcplog") => Took::Done,
                Some("dontlognull") => {
                    skip("not needed: vrrplb never logs connections that sent nothing")
                }
                _ => Took::NotMine,
            },
            "acl" => {
                let (Some(name), Some(fetch)) = (w.get(1), w.get(2)) else {
                    return skip("acl needs a name and a criterion");
                };
                let acl = self.acls.entry(name.clone()).or_default();
                match criterion(acl, fetch, &w[3..]) {
                    Ok(()) => Took::Done,
                    Err(why) => {
                        acl.other = true;
                        Took::Skip(why)
                    }
                }
            }
            "use_backend" => self.use_backend(w, o),
            "default_backend" => match w.get(1) {
                Some(b) => {
                    n.set("default_backend", Node::str(b).from(o));
                    Took::Done
                }
                None => skip("needs a backend"),
            },
            "http-request" => match (w.get(1).map(String::as_str), w.get(2), w.get(3)) {
                (Some("set-header"), Some(h), Some(v)) if w.len() == 4 => {
                    n.entry("set_headers").set(h, Node::str(v).from(o));
                    Took::Done
                }
                (Some("del-header"), Some(h), _) if w.len() == 3 => {
                    n.list_at("del_headers").push(Node::str(h).from(o));
                    Took::Done
                }
                (Some("redirect"), Some(s), Some(v)) if s == "scheme" && v == "https" => {
                    n.set("redirect_https", Node::bool(true).from(o));
                    Took::Done
                }
                (Some("replace-path" | "set-path"), _, _) => Took::NotMine,
                (Some("deny"), _, _) => self.rule(&w[2..], Verdict::Deny(403), o),
                (Some("allow"), _, _) => self.rule(&w[2..], Verdict::Allow, o),
                _ => skip("this http-request rule is not translated"),
            },
            "tcp-request"
                if matches!(w.get(1).map(String::as_str), Some("connection" | "content")) =>
            {
                let tcp = matches!(
                    n.get("mode").map(|m| &m.value),
                    Some(super::doc::Value::Str(m)) if m == "tcp"
                );
                let took = match w.get(2).map(String::as_str) {
                    Some("reject") => self.rule(&w[3..], Verdict::Deny(403), o),
                    Some("accept") => self.rule(&w[3..], Verdict::Allow, o),
                    _ => skip("only `tcp-request connection|content reject|accept [if COND]` is translated"),
                };
                if !tcp
                    && matches!(took, Took::Done)
                    && w.get(2).map(String::as_str) == Some("reject")
                {
                    // vrrplb's rules answer in http mode; HAProxy closes without a word.
                    self.notes.push((
                        o.clone(),
                        "translated as `deny: 403`: in an http frontend the client gets a 403 instead of a closed connection".into(),
                    ));
                }
                took
            }
            "redirect"
                if w.get(1).map(String::as_str) == Some("scheme")
                    && w.get(2).map(String::as_str) == Some("https") =>
            {
                n.set("redirect_https", Node::bool(true).from(o));
                Took::Done
            }
            "monitor-uri" => match w.get(1) {
                Some(u) => {
                    n.set("monitor_uri", Node::str(u).from(o));
                    Took::Done
                }
                None => skip("needs a path"),
            },
            "errorfile" => match (w.get(1), w.get(2)) {
                (Some(code), Some(path)) if code.parse::<u16>().is_ok() => {
                    n.entry("error_pages").set(code, Node::str(path).from(o));
                    Took::Done
                }
                _ => skip("expected `errorfile CODE FILE`"),
            },
            "reqadd" | "rspadd" | "capture" | "stick-table" | "tcp-request" | "http-response"
            | "compression" | "unique-id-format" | "log-format" => {
                skip("not translated: vrrplb has no equivalent")
            }
            "log" => Took::Done,
            _ => Took::NotMine,
        }
    }

    /// `use_backend B if ACL1 ACL2` (ANDed acls): one route per Host value.
    /// `http-request deny [deny_status N] [if COND]`, `http-request allow [if COND]` and
    /// `tcp-request ... reject|accept [if COND]` (`rest` = the words after the action): one
    /// `rules` entry per `path_beg` value (a rule has one prefix), in file order. COND is
    /// ACL names and `{ criterion values }` blocks, all of which must hold; `unless`, `!`,
    /// `or` and two conditions on the same criterion are not translated.
    fn rule(&mut self, rest: &[String], mut verdict: Verdict, o: &Origin) -> Took {
        let mut i = 0;
        if rest.first().map(String::as_str) == Some("deny_status") {
            match rest.get(1).and_then(|c| c.parse::<i64>().ok()) {
                Some(code) if matches!(verdict, Verdict::Deny(_)) => verdict = Verdict::Deny(code),
                _ => return skip("expected `deny_status CODE`"),
            }
            i = 2;
        }
        let conds =
            match rest.get(i).map(String::as_str) {
                None => &rest[i..],
                Some("if") => &rest[i + 1..],
                Some("unless") => return skip("`unless` conditions are not translated"),
                Some(_) => return skip(
                    "only `deny [deny_status N] [if COND]` and `allow [if COND]` are translated",
                ),
            };
        let mut all = Acl::default();
        let mut k = 0;
        while k < conds.len() {
            let c = conds[k].as_str();
            let one = if c == "{" {
                let Some(end) = conds[k..].iter().position(|w| w == "}") else {
                    return skip("an anonymous ACL without its closing `}`");
                };
                let block = &conds[k + 1..k + end];
                k += end + 1;
                let mut acl = Acl::default();
                let Some((fetch, args)) = block.split_first() else {
                    return skip("an empty anonymous ACL");
                };
                if let Err(why) = criterion(&mut acl, fetch, args) {
                    return Took::Skip(why);
                }
                acl
            } else {
                k += 1;
                if c.starts_with('!') || c == "or" || c == "||" {
                    return skip("negated and `or` conditions are not translated");
                }
                let Some(acl) = self.acls.get(c) else {
                    return skip(&format!("condition `{c}` is not a known ACL"));
                };
                if acl.other {
                    return skip(&format!("ACL `{c}` was not translated"));
                }
                Acl {
                    hosts: acl.hosts.clone(),
                    path: acl.path.clone(),
                    path_beg: acl.path_beg.clone(),
                    avail: acl.avail.clone(),
                    src: acl.src.clone(),
                    methods: acl.methods.clone(),
                    other: false,
                }
            };
            if !one.hosts.is_empty()
                || one.avail.is_some()
                || (one.path.is_some() && one.path_beg.is_empty())
            {
                return skip("rules match on src, method and path_beg only");
            }
            for (mine, theirs) in [
                (&mut all.src, one.src),
                (&mut all.methods, one.methods),
                (&mut all.path_beg, one.path_beg),
            ] {
                if !theirs.is_empty() {
                    if !mine.is_empty() {
                        return skip("two conditions on the same criterion are not translated");
                    }
                    *mine = theirs;
                }
            }
        }
        let paths: Vec<Option<&String>> = if all.path_beg.is_empty() {
            vec![None]
        } else {
            all.path_beg.iter().map(Some).collect()
        };
        for path in paths {
            let mut r = Node::map().from(o);
            let m = r.entry("match");
            for (key, list) in [("src", &all.src), ("method", &all.methods)] {
                if !list.is_empty() {
                    let l = m.list_at(key);
                    for v in list {
                        l.push(Node::str(v).from(o));
                    }
                }
            }
            if let Some(p) = path {
                m.set("path_prefix", Node::str(p).from(o));
            }
            match verdict {
                Verdict::Deny(code) => r.set("deny", Node::int(code).from(o)),
                Verdict::Allow => r.set("allow", Node::bool(true).from(o)),
            }
            self.node.list_at("rules").push(r);
        }
        Took::Done
    }

    fn use_backend(&mut self, w: &[String], o: &Origin) -> Took {
        let Some(backend) = w.get(1) else {
            return skip("needs a backend");
        };
        let conds: Vec<&String> = match w.get(2).map(String::as_str) {
            Some("if") => w[3..].iter().collect(),
            None => Vec::new(),
            _ => return skip("only `use_backend NAME if ACL...` is translated"),
        };
        let (mut hosts, mut path, mut avail) = (Vec::new(), None, false);
        for c in conds {
            let Some(acl) = self.acls.get(c.as_str()) else {
                return skip(&format!("condition `{c}` is not a translated ACL (negations, `or` and anonymous ACLs are not translated)"));
            };
            if acl.other {
                return skip(&format!("ACL `{c}` was not translated"));
            }
            if !acl.src.is_empty() || !acl.methods.is_empty() {
                return skip(&format!(
                    "ACL `{c}` matches src or method: routes match on host and path only"
                ));
            }
            hosts.extend(acl.hosts.iter().cloned());
            path = path.or(acl.path.clone());
            avail |= acl.avail.as_deref() == Some(backend.as_str());
        }
        let hosts: Vec<Option<String>> = if hosts.is_empty() {
            vec![None]
        } else {
            hosts.into_iter().map(Some).collect()
        };
        for h in hosts {
            let mut r = Node::map().from(o);
            let m = r.entry("match");
            if let Some(h) = h {
                m.set("host", Node::str(h).from(o));
            }
            if let Some(p) = &path {
                m.set("path_prefix", Node::str(p).from(o));
            }
            r.set("backend", Node::str(backend).from(o));
            if avail {
                r.set("require_available", Node::bool(true).from(o));
            }
            self.node.list_at("routes").push(r);
        }
        Took::Done
    }
}

#[derive(Default)]
struct Backend {
    node: Node,
    check: Node,
    /// Servers with `check`, and all servers (to mark the others `check: false`).
    checked: usize,
    /// `/app/` when a reqrep/reqirep/replace-path strips that prefix, and where.
    strips: Option<(String, Origin)>,
}

impl Backend {
    fn take(&mut self, l: &Line) -> Took {
        let w = &l.words;
        let o = &l.origin;
        let n = &mut self.node;
        match w[0].as_str() {
            "balance" => match w.get(1).map(String::as_str) {
                Some(b @ ("roundrobin" | "leastconn" | "source")) => {
                    n.set("balance", Node::str(b).from(o));
                    Took::Done
                }
                _ => skip("balance algorithm not translated (roundrobin, leastconn, source are)"),
            },
            "mode" => {
                n.set("mode", Node::str(w.get(1).cloned().unwrap_or_default()).from(o));
                Took::Done
            }
            "server" => self.server(w, o),
            "default-server" => {
                self.server_options(&w[1..], o, None);
                Took::Done
            }
            "cookie" => {
                let Some(name) = w.get(1) else { return skip("needs a name") };
                let mut c = Node::map().from(o);
                c.set("name", Node::str(name).from(o));
                for opt in &w[2..] {
                    match opt.as_str() {
                        "insert" => c.set("mode", Node::str("insert").from(o)),
                        "indirect" | "nocache" | "httponly" | "secure" => c.set(opt, Node::bool(true).from(o)),
                        _ => return skip(&format!("cookie option `{opt}` is not translated")),
                    }
                }
                n.set("cookie", c);
                Took::Done
            }
            "retries" => match w.get(1).and_then(|v| v.parse::<i64>().ok()) {
                Some(r) => {
                    n.set("retries", Node::int(r).from(o));
                    Took::Done
                }
                None => skip("expected a number"),
            },
            "timeout" => match (w.get(1).map(String::as_str), w.get(2).and_then(|v| time(v))) {
                (Some(k @ ("connect" | "server" | "queue" | "tunnel")), Some(t)) => {
                    n.entry("timeouts").set(k, t.from(o));
                    Took::Done
                }
                (Some("check"), Some(t)) => {
                    self.check.set("timeout", t.from(o));
                    Took::Done
                }
                _ => Took::NotMine,
            },
            "contimeout" | "srvtimeout" => match w.get(1).and_then(|v| time(v)) {
                Some(t) => {
                    let k = if w[0] == "contimeout" { "connect" } else { "server" };
                    n.entry("timeouts").set(k, t.from(o));
                    Took::Done
                }
                None => skip("expected a time"),
            },
            "option" => match w.get(1).map(String::as_str) {
                Some("redispatch") => {
                    n.set("redispatch", Node::bool(true).from(o));
                    Took::Done
                }
                Some("allbackups") => {
                    n.set("all_backups", Node::bool(true).from(o));
                    Took::Done
                }
                Some("log-health-checks") => {
                    self.check.set("log_changes", Node::bool(true).from(o));
                    Took::Done
                }
                Some("tcp-check") => {
                    self.check.set("kind", Node::str("tcp").from(o));
                    Took::Done
                }
                Some("httpchk") => {
                    self.httpchk(&w[2..], o);
                    Took::Done
                }
                Some("httpclose") => {
                    n.set("http_mode", Node::str("close").from(o));
                    Took::Done
                }
                Some("http-server-close") => {
                    n.set("http_mode", Node::str("server-close").from(o));
                    Took::Done
                }
                Some("http-keep-alive") => {
                    n.set("http_mode", Node::str("keep-alive").from(o));
                    Took::Done
                }
                Some("nolinger") => skip("not needed: vrrplb closes server connections normally"),
                Some("forwardfor" | "httplog" | "tcplog" | "dontlognull") => Took::NotMine,
                _ => skip("option not translated"),
            },
            "http-check" => match (w.get(1).map(String::as_str), w.get(2).map(String::as_str), w.get(3)) {
                (Some("expect"), Some("status"), Some(code)) => {
                    self.check.list_at("expect_status").push(Node::str(code).from(o));
                    Took::Done
                }
                _ => skip("only `http-check expect status CODE` is translated"),
            },
            "http-request" => match (w.get(1).map(String::as_str), w.get(2), w.get(3)) {
                (Some("set-header"), Some(h), Some(v)) if w.len() == 4 => {
                    n.entry("set_headers").set(h, Node::str(v).from(o));
                    Took::Done
                }
                (Some("replace-path"), Some(re), _) => self.strip_from(re, o),
                _ => Took::NotMine,
            },
            "reqrep" | "reqirep" => match w.get(1) {
                Some(re) => self.strip_from(re, o),
                None => skip("needs a pattern"),
            },
            "rsprep" | "rspirep" if self.strips.is_some() => Took::Done,
            "rsprep" | "rspirep" => skip("response rewriting is not translated (strip_prefix rewrites Location and Set-Cookie paths)"),
            "on-marked-down" if w.get(1).map(String::as_str) == Some("shutdown-sessions") => {
                n.set("on_marked_down", Node::str("shutdown_sessions").from(o));
                Took::Done
            }
            "log" => Took::Done,
            _ => Took::NotMine,
        }
    }

    /// A request rewrite that removes a leading `/app/` (seed 001's `reqirep`).
    fn strip_from(&mut self, re: &str, o: &Origin) -> Took {
        let re = re.replace("\\ ", " ");
        let seg = re.split(['/', ' ']).find(|s| {
            !s.is_empty()
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        });
        match seg {
            Some(app) if re.contains(&format!("/{app}/")) => {
                self.strips = Some((format!("/{app}/"), o.clone()));
                Took::Done
            }
            _ => skip("request rewriting is not translated (strip_prefix on a path route is)"),
        }
    }

    /// `option httpchk [METHOD] [URI] [VERSION [HEADERS]]`.
    fn httpchk(&mut self, args: &[String], o: &Origin) {
        self.check.set("kind", Node::str("http").from(o));
        let (method, uri, rest) = match args {
            [] => ("OPTIONS", "/", &args[0..0]),
            [uri] => ("OPTIONS", uri.as_str(), &args[1..]),
            [m, uri, rest @ ..] => (m.as_str(), uri.as_str(), rest),
        };
        self.check.set("method", Node::str(method).from(o));
        self.check.set("path", Node::str(uri).from(o));
        // HTTP/1.0\r\nUser-Agent:\ HAProxy: the version, then \r\n-separated headers.
        if let Some(v) = rest.first() {
            let joined = std::iter::once(v.as_str())
                .chain(rest[1..].iter().map(String::as_str))
                .collect::<Vec<_>>()
                .join(" ");
            for h in joined.split("\\r\\n").skip(1) {
                if let Some((name, value)) = h.split_once(':') {
                    let headers = self.check.entry("headers");
                    headers.mark_origin(o);
                    headers.set(name.trim(), Node::str(value.trim()).from(o));
                }
            }
        }
    }

    fn server(&mut self, w: &[String], o: &Origin) -> Took {
        let (Some(name), Some(addr)) = (w.get(1), w.get(2)) else {
            return skip("expected `server NAME ADDRESS[:PORT] [options]`");
        };
        let mut s = Node::map().from(o);
        s.set("name", Node::str(name).from(o));
        let addr = if addr.contains(':') {
            addr.clone()
        } else {
            format!("{addr}:80")
        };
        s.set("address", Node::str(addr).from(o));
        let checked = self.server_options(&w[3..], o, Some(&mut s));
        if checked {
            self.checked += 1;
        }
        s.set("check", Node::bool(checked).from(o));
        self.node.list_at("servers").push(s);
        Took::Done
    }

    /// Server (or default-server) options; check settings go to the backend's health check.
    fn server_options(
        &mut self,
        opts: &[String],
        o: &Origin,
        mut server: Option<&mut Node>,
    ) -> bool {
        let mut checked = false;
        let mut i = 0;
        while i < opts.len() {
            let next = opts.get(i + 1);
            let mut used_next = true;
            match (opts[i].as_str(), next) {
                ("check", _) => {
                    checked = true;
                    used_next = false;
                }
                ("inter", Some(v)) => {
                    if let Some(t) = time(v) {
                        self.check.set("interval", t.from(o));
                    }
                }
                ("fastinter", Some(v)) => {
                    if let Some(t) = time(v) {
                        self.check.set("fast_interval", t.from(o));
                    }
                }
                ("downinter", Some(v)) => {
                    if let Some(t) = time(v) {
                        self.check.set("down_interval", t.from(o));
                    }
                }
                (k @ ("rise" | "fall"), Some(v)) => {
                    if let Ok(v) = v.parse::<i64>() {
                        self.check.set(k, Node::int(v).from(o));
                    }
                }
                ("port", Some(v)) => {
                    if let Ok(v) = v.parse::<i64>() {
                        match server.as_deref_mut() {
                            Some(s) => s.set("check_port", Node::int(v).from(o)),
                            None => self.check.set("port", Node::int(v).from(o)),
                        }
                    }
                }
                (k @ ("weight" | "maxconn"), Some(v)) if server.is_some() => {
                    if let (Ok(v), Some(s)) = (v.parse::<i64>(), server.as_deref_mut()) {
                        s.set(k, Node::int(v).from(o));
                    }
                }
                ("cookie", Some(v)) if server.is_some() => {
                    if let Some(s) = server.as_deref_mut() {
                        s.set("cookie", Node::str(v).from(o));
                    }
                }
                ("backup", _) => {
                    if let Some(s) = server.as_deref_mut() {
                        s.set("backup", Node::bool(true).from(o));
                    }
                    used_next = false;
                }
                ("ssl", _) => {
                    self.node.entry("tls").mark_origin(o);
                    used_next = false;
                }
                ("verify", Some(v)) => {
                    self.node
                        .entry("tls")
                        .set("verify", Node::bool(v == "required").from(o));
                }
                ("ca-file", Some(v)) => {
                    self.node.entry("tls").set("ca_file", Node::str(v).from(o));
                }
                ("send-proxy", _) => {
                    self.node.set("send_proxy", Node::str("v1").from(o));
                    used_next = false;
                }
                ("send-proxy-v2", _) => {
                    self.node.set("send_proxy", Node::str("v2").from(o));
                    used_next = false;
                }
                _ => {
                    used_next = false;
                }
            }
            i += if used_next { 2 } else { 1 };
        }
        checked
    }

    fn finish(mut self) -> Node {
        let servers = match self.node.get("servers").map(|s| &s.value) {
            Some(super::doc::Value::List(l)) => l.len(),
            _ => 0,
        };
        if self.checked > 0 || !self.check.is_empty() {
            if self.check.get("kind").is_none() {
                self.check.set("kind", Node::str("tcp"));
            }
            let check = std::mem::take(&mut self.check);
            self.node.set("health_check", check);
        }
        if self.checked == servers {
            // Every server is checked: `check: true` is the default, leave it out.
            if let Some(super::doc::Value::List(list)) =
                self.node.get_mut("servers").map(|s| &mut s.value)
            {
                for s in list {
                    if let super::doc::Value::Map(e) = &mut s.value {
                        e.retain(|(k, _)| k != "check");
                    }
                }
            }
        }
        self.node
    }
}

fn proxy(
    s: &Section,
    defaults: &[Line],
    bind: &mut BindDefaults,
    doc: &mut Node,
    vips: &[(String, String)],
    notes: &mut Notes,
) {
    let Some(name) = s.args.first() else {
        notes.skip(&s.origin, "a proxy section needs a name");
        return;
    };
    let kind = s.kind.as_str();
    let mut f = Frontend::default();
    let mut b = Backend::default();
    f.node = Node::map().from(&s.origin);
    f.node.set("name", Node::str(name).from(&s.origin));
    b.node = Node::map().from(&s.origin);
    b.node.set("name", Node::str(name).from(&s.origin));
    let mut stats = Node::map().from(&s.origin);
    if kind == "listen" {
        if let Some(addr) = s.args.get(1) {
            let bind = Line {
                words: vec!["bind".into(), addr.clone()],
                origin: s.origin.clone(),
                inherited: false,
            };
            f.take(&bind);
        }
    }
    for l in defaults.iter().chain(&s.lines) {
        if l.words[0] == "stats" {
            stats_line(l, &mut stats, notes);
            continue;
        }
        let took_f = if kind != "backend" {
            f.take(l)
        } else {
            Took::NotMine
        };
        let took_b = if kind != "frontend" {
            b.take(l)
        } else {
            Took::NotMine
        };
        if l.inherited {
            continue;
        }
        match (took_f, took_b) {
            (Took::Done, _) | (_, Took::Done) => {}
            (Took::Skip(why), _) | (_, Took::Skip(why)) => notes.skip(&l.origin, &why),
            _ => notes.skip(
                &l.origin,
                &format!("not a {kind} directive vrrplb translates"),
            ),
        }
    }
    for (o, why) in f.notes.drain(..) {
        notes.skip(&o, &why);
    }
    let has_servers = b.node.get("servers").is_some();
    if !stats.is_empty() {
        // A stats listener: global.stats with the section's bind.
        if let Some(bind) = f.node.get("bind").and_then(|l| match &l.value {
            super::doc::Value::List(items) => items.first().cloned(),
            _ => None,
        }) {
            // The stats listener takes IP:PORT; HAProxy's `*:8000` / `:8000` mean every address.
            let mut bind = bind;
            if let super::doc::Value::Str(b) = &mut bind.value {
                if b.starts_with(':') {
                    *b = format!("0.0.0.0{b}");
                }
            }
            stats.set("bind", bind);
        }
        doc.entry("global").set("stats", stats);
        if !has_servers {
            return;
        }
    }
    if kind != "backend" {
        if let Some(tls) = f.node.get_mut("tls") {
            let tls13_only = matches!(
                tls.get("min_version").map(|v| &v.value),
                Some(super::doc::Value::Str(v)) if v == "1.3"
            );
            for (key, node) in &bind.keys {
                // TLS 1.2 suites mean nothing to a TLS 1.3-only frontend (check warns).
                let unused = *key == "ciphers" && tls13_only;
                if !f.own_tls.contains(key) && !unused {
                    tls.set(key, node.clone());
                    bind.applied = true;
                }
            }
        }
    }
    // Gate a frontend bound to a keepalived VIP by that instance.
    let gates: Vec<String> = vips
        .iter()
        .filter(|(ip, _)| f.bind_ips.contains(ip))
        .map(|(_, inst)| inst.clone())
        .collect();
    if kind == "listen" {
        f.node
            .set("default_backend", Node::str(name).from(&s.origin));
    }
    let strips = b.strips.clone();
    if kind != "backend" {
        if !gates.is_empty() {
            let mut g = Node::list().from(&s.origin);
            if let super::doc::Value::List(items) = &mut g.value {
                items.extend(gates.into_iter().map(Node::str));
            }
            f.node.set("gate", g);
        }
        doc.list_at("frontends").push(f.node);
    }
    if kind != "frontend" {
        let mut node = b.finish();
        if let Some((p, o)) = strips {
            node.set(super::STRIPS, Node::str(p).from(&o));
        }
        doc.list_at("backends").push(node);
    }
}

fn stats_line(l: &Line, stats: &mut Node, notes: &mut Notes) {
    let w = &l.words;
    let o = &l.origin;
    match (w.get(1).map(String::as_str), w.get(2)) {
        (Some("enable"), _) => stats.mark_origin(o),
        (Some("uri"), Some(u)) => stats.set("uri", Node::str(u).from(o)),
        (Some("refresh"), Some(t)) => {
            if let Some(t) = time(t) {
                stats.set("refresh", t.from(o));
            }
        }
        (Some("realm"), Some(_)) => stats.set("realm", Node::str(w[2..].join(" ")).from(o)),
        (Some("auth"), Some(ua)) => match ua.split_once(':') {
            Some((u, p)) => {
                let mut a = Node::map().from(o);
                a.set("user", Node::str(u).from(o));
                a.set("password", Node::str(p).from(o));
                stats.set("auth", a);
            }
            None => notes.skip(o, "expected `stats auth USER:PASSWORD`"),
        },
        (Some("show-node"), _) => stats.set("show_node", Node::bool(true).from(o)),
        _ => notes.skip(o, "stats setting not translated"),
    }
}
