//! `vrrplb import --keepalived FILE --haproxy FILE`: an existing pair's keepalived.conf and
//! haproxy.cfg as one vrrplb YAML file on stdout, and on stderr every directive that was not
//! translated, as `FILE:LINE: `directive`: why`.
//!
//! The translation is checked with the same code as `vrrplb check`: a part this build refuses
//! (a feature not implemented yet, a host name where an address is needed, a reference to a
//! part that was left out) is taken out and reported at the line it came from, until the file
//! passes. So the output always passes `vrrplb check`, and it uses exactly the keys this build
//! supports.

mod ciphers;
mod doc;
mod haproxy;
mod keepalived;

use doc::{parse_path, Node, Origin, Value};
use std::collections::HashSet;
use std::path::Path;
use std::process::ExitCode;

/// Marker a backend carries while import runs: the prefix its request rewrite strips.
const STRIPS: &str = "__strips";
const SECTION_ORDER: [&str; 5] = [
    "global",
    "vrrp_scripts",
    "vrrp_instances",
    "frontends",
    "backends",
];
/// Bounds the take-out loop (one refused part per round).
const MAX_ROUNDS: usize = 500;

/// What was not translated, in the order found, each once.
#[derive(Default)]
pub struct Notes {
    lines: Vec<String>,
    seen: HashSet<String>,
}

impl Notes {
    pub fn skip(&mut self, o: &Origin, why: &str) {
        self.push(format!("{o}: {why}"));
    }
    pub fn untranslated(&mut self, file: &str, line: usize, text: &str, why: &str) {
        self.push(format!("{file}:{line}: `{text}`: {why}"));
    }
    fn push(&mut self, line: String) {
        if self.seen.insert(line.clone()) {
            self.lines.push(line);
        }
    }
}

pub struct Imported {
    pub yaml: String,
    pub notes: Vec<String>,
    /// The YAML passes `vrrplb check`.
    pub valid: bool,
}

/// Translates the given files' text (`(name, text)`).
pub fn translate(keepalived: Option<(&str, &str)>, haproxy: Option<(&str, &str)>) -> Imported {
    let mut notes = Notes::default();
    let mut doc = Node::map();
    if let Some((file, text)) = keepalived {
        let items = keepalived::parse(text, file, &mut notes);
        keepalived::translate(&items, file, &mut doc, &mut notes);
    }
    let vips = vips_of(&doc);
    if let Some((file, text)) = haproxy {
        haproxy::translate(text, file, &mut doc, &vips, &mut notes);
    }
    attach_strips(&mut doc, &mut notes);
    replace_haproxy_scripts(&mut doc, &mut notes);
    let (yaml, valid) = fit_to_check(&mut doc, &mut notes);
    Imported {
        yaml,
        notes: notes.lines,
        valid,
    }
}

/// `(VIP address, instance)` pairs, to gate frontends bound to a VIP.
fn vips_of(doc: &Node) -> Vec<(String, String)> {
    let mut out = Vec::new();
    if let Some(Value::List(insts)) = doc.get("vrrp_instances").map(|n| &n.value) {
        for i in insts {
            let name = match i.get("name").map(|n| &n.value) {
                Some(Value::Str(s)) => s.clone(),
                _ => continue,
            };
            if let Some(Value::List(v)) = i.get("virtual_ipaddress").map(|n| &n.value) {
                for vip in v {
                    if let Value::Str(s) = &vip.value {
                        let ip = s.split(['/', ' ']).next().unwrap_or("").to_owned();
                        out.push((ip, name.clone()));
                    }
                }
            }
        }
    }
    out
}

fn str_at<'a>(n: &'a Node, key: &str) -> Option<&'a str> {
    match n.get(key).map(|v| &v.value) {
        Some(Value::Str(s)) => Some(s),
        _ => None,
    }
}

/// A backend whose request rewrite strips `/app/` (seed 001's `reqirep`): the routes that send
/// `/app/` to it get `strip_prefix: true` (which also rewrites Location and Set-Cookie back).
fn attach_strips(doc: &mut Node, notes: &mut Notes) {
    let mut strips: Vec<(String, String, Option<Origin>)> = Vec::new();
    if let Some(Value::List(backends)) = doc.get_mut("backends").map(|n| &mut n.value) {
        for b in backends.iter_mut() {
            let name = str_at(b, "name").unwrap_or("").to_owned();
            if let Some((marker, _)) = b.remove_path(&[doc::Seg::Key(STRIPS.into())]) {
                if let Value::Str(p) = marker.value {
                    strips.push((name, p, marker.from));
                }
            }
        }
    }
    for (backend, prefix, origin) in strips {
        let mut attached = false;
        if let Some(Value::List(frontends)) = doc.get_mut("frontends").map(|n| &mut n.value) {
            for f in frontends.iter_mut() {
                if let Some(Value::List(routes)) = f.get_mut("routes").map(|n| &mut n.value) {
                    for r in routes.iter_mut() {
                        let to_it = str_at(r, "backend") == Some(backend.as_str());
                        let on_prefix = r
                            .get("match")
                            .and_then(|m| str_at(m, "path_prefix"))
                            .is_some_and(|p| p == prefix);
                        if to_it && on_prefix {
                            let mut flag = Node::bool(true);
                            flag.from = origin.clone();
                            r.set("strip_prefix", flag);
                            attached = true;
                        }
                    }
                }
            }
        }
        if !attached {
            if let Some(o) = origin {
                notes.skip(
                    &o,
                    &format!("no route sends {prefix} to backend {backend}: the prefix strip is not translated"),
                );
            }
        }
    }
}

/// keepalived's `chk_haproxy` (a script checking that HAProxy runs) makes no sense once the
/// balancer is vrrplb itself: its tracks become native `track_backends` on every backend,
/// with the script's weight.
fn replace_haproxy_scripts(doc: &mut Node, notes: &mut Notes) {
    let backends: Vec<String> = match doc.get("backends").map(|n| &n.value) {
        Some(Value::List(b)) => b
            .iter()
            .filter_map(|b| str_at(b, "name").map(str::to_owned))
            .collect(),
        _ => return,
    };
    let mut replaced: Vec<(String, i64, Option<Origin>)> = Vec::new();
    if let Some(Value::Map(scripts)) = doc.get_mut("vrrp_scripts").map(|n| &mut n.value) {
        scripts.retain(|(name, s)| {
            let cmd = str_at(s, "script").unwrap_or("");
            let about_haproxy = cmd.contains("haproxy")
                && (cmd.contains("killall") || cmd.contains("pidof") || cmd.contains("pgrep"));
            if about_haproxy {
                let weight = match s.get("weight").map(|w| &w.value) {
                    Some(Value::Int(w)) => *w,
                    _ => 0,
                };
                replaced.push((name.clone(), weight, s.from.clone()));
            }
            !about_haproxy
        });
    }
    if replaced.is_empty() {
        return;
    }
    if let Some(Value::List(insts)) = doc.get_mut("vrrp_instances").map(|n| &mut n.value) {
        for inst in insts.iter_mut() {
            let mut tracked = Vec::new();
            if let Some(Value::List(ts)) = inst.get_mut("track_scripts").map(|n| &mut n.value) {
                ts.retain(|t| {
                    let name = match &t.value {
                        Value::Str(s) => Some(s.clone()),
                        Value::Map(_) => str_at(t, "name").map(str::to_owned),
                        _ => None,
                    };
                    match replaced.iter().find(|(n, _, _)| Some(n) == name.as_ref()) {
                        Some(r) => {
                            let w = match t.get("weight").map(|w| &w.value) {
                                Some(Value::Int(w)) => *w,
                                _ => r.1,
                            };
                            tracked.push((w, t.from.clone()));
                            false
                        }
                        None => true,
                    }
                });
            }
            for (w, from) in tracked {
                for b in &backends {
                    let mut tb = Node::map();
                    tb.from = from.clone();
                    tb.set("backend", Node::str(b));
                    tb.set("min_up", Node::int(1));
                    tb.set("weight", Node::int(w));
                    inst.list_at("track_backends").push(tb);
                }
            }
        }
    }
    for (name, _, origin) in replaced {
        if let Some(o) = origin {
            notes.skip(&o, &format!("vrrp_script {name} watches HAProxy: replaced by track_backends on every backend (vrrplb is the balancer)"));
        }
    }
}

/// Takes out what `vrrplb check` refuses, one part per round, reporting each at its origin.
fn fit_to_check(doc: &mut Node, notes: &mut Notes) -> (String, bool) {
    let mut yaml = render(doc);
    for _ in 0..MAX_ROUNDS {
        let errors = match crate::config::parse("import.yaml", &yaml) {
            Ok(_) => return (yaml, true),
            Err(rejected) => rejected.errors,
        };
        let Some(e) = errors.first() else {
            return (yaml, false);
        };
        let path = parse_path(&e.path);
        // A key a part cannot do without: take out the part (the list item) instead.
        let target = removal_target(&path);
        match doc.remove_path(&target) {
            Some((_, origin)) => {
                let what = match origin {
                    Some(o) => o.to_string(),
                    None => format!("import.yaml: {}", e.path),
                };
                notes.push(format!("{what}: not translated: {}", e.message));
            }
            None => {
                notes.push(format!(
                    "import: cannot fit the output to `vrrplb check`: {e}"
                ));
                return (yaml, false);
            }
        }
        prune_empty(doc);
        yaml = render(doc);
    }
    (yaml, false)
}

/// Keys a part cannot do without, or whose removal would change what the part does (a TLS
/// or TCP frontend must not become a plain HTTP one): when `check` refuses one, the whole
/// list item goes.
const ESSENTIAL: [&str; 13] = [
    "name",
    "address",
    "backend",
    "servers",
    "bind",
    "interface",
    "virtual_router_id",
    "virtual_ipaddress",
    "script",
    "match",
    "auth_type",
    "mode",
    "tls",
];

fn removal_target(path: &[doc::Seg]) -> Vec<doc::Seg> {
    let essential = path
        .iter()
        .any(|s| matches!(s, doc::Seg::Key(k) if ESSENTIAL.contains(&k.as_str())));
    if essential {
        if let Some(i) = path.iter().rposition(|s| matches!(s, doc::Seg::Index(_))) {
            // The item holding the essential key (not an item inside it, such as one VIP).
            let key_at = path
                .iter()
                .position(|s| matches!(s, doc::Seg::Key(k) if ESSENTIAL.contains(&k.as_str())))
                .unwrap_or(path.len());
            if let Some(j) = path[..key_at]
                .iter()
                .rposition(|s| matches!(s, doc::Seg::Index(_)))
            {
                return path[..=j].to_vec();
            }
            return path[..=i].to_vec();
        }
    }
    path.to_vec()
}

/// Empty mappings and lists left by take-outs are dropped (an empty `timeouts: {}` is fine,
/// but an empty `servers: []` or `frontends: []` is better absent than wrong).
fn prune_empty(n: &mut Node) {
    match &mut n.value {
        Value::Map(entries) => {
            for (_, v) in entries.iter_mut() {
                prune_empty(v);
            }
            entries.retain(|(k, v)| !(v.is_empty() && k != "servers" && k != "bind"));
        }
        Value::List(items) => items.iter_mut().for_each(prune_empty),
        _ => {}
    }
}

fn render(doc: &Node) -> String {
    let header = "# vrrplb configuration translated by `vrrplb import`; check it with `vrrplb check -c FILE`.\n";
    // Sections in the usual order.
    let mut ordered = Node::map();
    for key in SECTION_ORDER {
        if let Some(n) = doc.get(key) {
            ordered.set(key, n.clone());
        }
    }
    match serde_yaml::to_string(&ordered.to_yaml()) {
        Ok(s) => format!("{header}{s}"),
        Err(e) => format!("{header}# cannot render: {e}\n"),
    }
}

/// The `vrrplb import` command.
pub fn run(keepalived: Option<&Path>, haproxy: Option<&Path>) -> ExitCode {
    if keepalived.is_none() && haproxy.is_none() {
        eprintln!("vrrplb import: give --keepalived FILE, --haproxy FILE or both");
        return ExitCode::from(2);
    }
    let read = |p: Option<&Path>| -> Result<Option<(String, String)>, String> {
        match p {
            None => Ok(None),
            Some(p) => std::fs::read_to_string(p)
                .map(|t| Some((p.display().to_string(), t)))
                .map_err(|e| format!("{}: cannot read: {e}", p.display())),
        }
    };
    let (k, h) = match (read(keepalived), read(haproxy)) {
        (Ok(k), Ok(h)) => (k, h),
        (Err(e), _) | (_, Err(e)) => {
            eprintln!("vrrplb import: {e}");
            return ExitCode::from(1);
        }
    };
    let out = translate(
        k.as_ref().map(|(n, t)| (n.as_str(), t.as_str())),
        h.as_ref().map(|(n, t)| (n.as_str(), t.as_str())),
    );
    print!("{}", out.yaml);
    for n in &out.notes {
        eprintln!("not translated: {n}");
    }
    if !out.valid {
        eprintln!("vrrplb import: the output does not pass `vrrplb check` (see above)");
        return ExitCode::from(1);
    }
    eprintln!(
        "vrrplb import: {} directive(s) not translated; the output passes `vrrplb check`",
        out.notes.len()
    );
    ExitCode::SUCCESS
}
