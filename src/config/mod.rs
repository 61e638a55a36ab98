//! The YAML configuration: parsing (serde_yaml), validation that reports every problem with
//! its file, line and key path, and translation into the typed configs of the `vrrp` and
//! `proxy` crates.

pub mod announce;
mod duration;
pub mod resolve;
pub mod schema;
mod spans;
mod tls;
pub mod translate;
mod validate;

pub use translate::proxy_config;
pub use validate::{LogSettings, LogTarget, Validated};

use schema::ConfigFile;
use serde::de::DeserializeOwned;
use spans::Spans;
use std::fmt;
use std::path::Path;

/// One problem found in a config file, printed as `FILE:LINE[:COL]: PATH: MESSAGE`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub file: String,
    pub line: Option<usize>,
    pub col: Option<usize>,
    pub path: String,
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file)?;
        if let Some(l) = self.line {
            write!(f, ":{l}")?;
            if let Some(c) = self.col {
                write!(f, ":{c}")?;
            }
        }
        if self.path.is_empty() {
            write!(f, ": {}", self.message)
        } else {
            write!(f, ": {}: {}", self.path, self.message)
        }
    }
}

/// A loaded, valid configuration with the warnings found on the way.
#[derive(Debug)]
pub struct Loaded {
    pub config: Validated,
    pub warnings: Vec<Diagnostic>,
}

/// A config that does not validate: every error (and the warnings, for context).
#[derive(Debug)]
pub struct Rejected {
    pub errors: Vec<Diagnostic>,
    pub warnings: Vec<Diagnostic>,
}

impl fmt::Display for Rejected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.errors.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

/// Reads and validates a config file.
pub fn load(path: &Path) -> Result<Loaded, Rejected> {
    load_again(path, &resolve::Resolved::new())
}

/// `global.control_socket` of a file, read without judging the rest: `vrrplb status` must
/// answer while, say, a server name does not resolve or a certificate is being replaced.
pub fn control_socket_of(path: &Path) -> Result<Option<String>, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("{}: cannot read the file: {e}", path.display()))?;
    let value: serde_yaml::Value = serde_yaml::from_str(&text)
        .map_err(|e| format!("{}: YAML syntax error: {e}", path.display()))?;
    Ok(value
        .get("global")
        .and_then(|g| g.get("control_socket"))
        .and_then(|s| s.as_str())
        .map(str::to_owned))
}

/// [`load`] for a reload: a server name that does not resolve now keeps its address from
/// `previous` (the running config's), with a warning, instead of failing the file.
pub fn load_again(path: &Path, previous: &resolve::Resolved) -> Result<Loaded, Rejected> {
    let name = path.display().to_string();
    match std::fs::read_to_string(path) {
        Ok(text) => parse_again(&name, &text, previous),
        Err(e) => Err(Rejected {
            errors: vec![Diagnostic {
                file: name,
                line: None,
                col: None,
                path: String::new(),
                message: format!("cannot read the file: {e}"),
            }],
            warnings: Vec::new(),
        }),
    }
}

/// Validates config text; `file` is the name used in messages.
pub fn parse(file: &str, text: &str) -> Result<Loaded, Rejected> {
    parse_again(file, text, &resolve::Resolved::new())
}

fn parse_again(file: &str, text: &str, previous: &resolve::Resolved) -> Result<Loaded, Rejected> {
    let spans = Spans::index(text);
    let mut diags = Diags {
        file: file.to_owned(),
        spans: &spans,
        errors: vec![],
        warnings: vec![],
        left_out: LeftOut::default(),
    };
    let value: serde_yaml::Value = match serde_yaml::from_str(text) {
        Ok(v) => v,
        Err(e) => {
            let loc = e.location();
            let msg = e.to_string();
            // serde_yaml appends " at line L column C"; we print the position in front instead.
            let msg = msg.split(" at line ").next().unwrap_or(&msg).to_owned();
            diags.errors.push(Diagnostic {
                file: file.to_owned(),
                line: loc.as_ref().map(|l| l.line()),
                col: loc.as_ref().map(|l| l.column()),
                path: String::new(),
                message: format!("YAML syntax error: {msg}"),
            });
            return Err(Rejected {
                errors: diags.errors,
                warnings: diags.warnings,
            });
        }
    };
    // Items that did not deserialise are reported and left out; the rest is still judged, so
    // one bad item does not hide the errors of the others.
    if let Some(cf) = deserialize_sections(value, &mut diags) {
        let mut validated = validate::validate(&cf, &mut diags, previous);
        if diags.errors.is_empty() {
            validated.file = cf;
            return Ok(Loaded {
                config: validated,
                warnings: diags.warnings,
            });
        }
    }
    Err(Rejected {
        errors: diags.errors,
        warnings: diags.warnings,
    })
}

/// Collects diagnostics and places them in the file.
pub(crate) struct Diags<'a> {
    file: String,
    spans: &'a Spans,
    pub errors: Vec<Diagnostic>,
    pub warnings: Vec<Diagnostic>,
    left_out: LeftOut,
}

/// List items that did not deserialise (already reported) and are missing from the typed file
/// the semantic checks see: their later siblings' indices are mapped back to the file's, and
/// references to their names are not reported again as "no ... named".
#[derive(Default)]
struct LeftOut {
    /// Per list section, the file index of each item that was kept, when some were left out.
    kept: Vec<(&'static str, Vec<usize>)>,
    names: Vec<String>,
}

impl LeftOut {
    /// `frontends[1].bind` of the typed file as the path in the file (`frontends[2].bind`).
    fn file_path(&self, path: &str) -> String {
        for (section, kept) in &self.kept {
            let Some(rest) = path.strip_prefix(section).and_then(|r| r.strip_prefix('[')) else {
                continue;
            };
            let Some((index, tail)) = rest.split_once(']') else {
                continue;
            };
            if let Some(orig) = index.parse::<usize>().ok().and_then(|i| kept.get(i)) {
                return format!("{section}[{orig}]{tail}");
            }
        }
        path.to_owned()
    }

    fn names_a_left_out_item(&self, message: &str) -> bool {
        message.starts_with("no ")
            && self
                .names
                .iter()
                .any(|n| message.contains(&format!(" named `{n}`")))
    }
}

impl Diags<'_> {
    fn diag(&self, path: &str, message: String) -> Diagnostic {
        let path = self.left_out.file_path(path);
        let pos = self.spans.find(&path);
        Diagnostic {
            file: self.file.clone(),
            line: pos.map(|p| p.line),
            col: pos.map(|p| p.col),
            path,
            message,
        }
    }
    pub fn error(&mut self, path: &str, message: impl Into<String>) {
        let message = message.into();
        if self.left_out.names_a_left_out_item(&message) {
            return;
        }
        let d = self.diag(path, message);
        self.errors.push(d);
    }
    pub fn warning(&mut self, path: &str, message: impl Into<String>) {
        let d = self.diag(path, message.into());
        self.warnings.push(d);
    }
}

const SECTIONS: [&str; 7] = [
    "global",
    "vrrp_scripts",
    "vrrp_instances",
    "vrrp_sync_groups",
    "frontends",
    "backends",
    "announce",
];

/// Deserialises section by section and item by item, so one typo does not hide the next.
/// Returns what deserialised (items that did not are reported and left out), or None when
/// the file is not a mapping of sections.
fn deserialize_sections(value: serde_yaml::Value, d: &mut Diags) -> Option<ConfigFile> {
    use serde_yaml::Value;
    let map = match value {
        Value::Null => return Some(ConfigFile::default()),
        Value::Mapping(m) => m,
        _ => {
            d.error(
                "",
                "the file must be a mapping of sections (global, vrrp_instances, ...)",
            );
            return None;
        }
    };
    let mut cf = ConfigFile::default();
    for (k, v) in map {
        let Some(key) = k.as_str() else {
            d.error("", format!("section names must be strings, found {k:?}"));
            continue;
        };
        match key {
            "global" => {
                if let Some(g) = typed(v, "global", d) {
                    cf.global = g;
                }
            }
            "vrrp_scripts" => match v {
                Value::Null => {}
                Value::Mapping(m) => {
                    for (name, body) in m {
                        let Some(name) = name.as_str().map(str::to_owned) else {
                            d.error("vrrp_scripts", "script names must be strings");
                            continue;
                        };
                        let path = format!("vrrp_scripts.{name}");
                        match typed(body, &path, d) {
                            Some(s) => {
                                cf.vrrp_scripts.insert(name, s);
                            }
                            None => d.left_out.names.push(name),
                        }
                    }
                }
                _ => d.error(
                    "vrrp_scripts",
                    "must be a mapping of script name to settings",
                ),
            },
            "vrrp_instances" => cf.vrrp_instances = typed_list(v, "vrrp_instances", d),
            "vrrp_sync_groups" => cf.vrrp_sync_groups = typed_list(v, "vrrp_sync_groups", d),
            "frontends" => cf.frontends = typed_list(v, "frontends", d),
            "backends" => cf.backends = typed_list(v, "backends", d),
            "announce" => cf.announce = typed_list(v, "announce", d),
            other => {
                let hint = did_you_mean(other, &SECTIONS)
                    .map(|s| format!(" (did you mean `{s}`?)"))
                    .unwrap_or_default();
                d.error(
                    other,
                    format!(
                        "unknown section `{other}`{hint}; allowed: {}",
                        SECTIONS.join(", ")
                    ),
                );
            }
        }
    }
    Some(cf)
}

fn typed_list<T: DeserializeOwned>(
    v: serde_yaml::Value,
    key: &'static str,
    d: &mut Diags,
) -> Vec<T> {
    match v {
        serde_yaml::Value::Null => Vec::new(),
        serde_yaml::Value::Sequence(items) => {
            let count = items.len();
            let mut kept = Vec::new();
            let mut out = Vec::new();
            for (i, item) in items.into_iter().enumerate() {
                let name = item.get("name").and_then(|n| n.as_str()).map(str::to_owned);
                match typed(item, &format!("{key}[{i}]"), d) {
                    Some(t) => {
                        out.push(t);
                        kept.push(i);
                    }
                    None => d.left_out.names.extend(name),
                }
            }
            if kept.len() < count {
                d.left_out.kept.push((key, kept));
            }
            out
        }
        _ => {
            d.error(key, "must be a list (each item starting with `- `)");
            Vec::new()
        }
    }
}

/// Deserialises one item and reports every problem in it, not only serde's first: an unknown
/// key or a value of the wrong type is reported, taken out of the item, and the item is tried
/// again, so the next problem gets its turn and the repaired item still reaches the semantic
/// checks (a typo does not hide `priority: 300`). Returns None when the item cannot be
/// repaired (a required key missing or unusable, at any depth); it is then left out.
fn typed<T: DeserializeOwned>(mut v: serde_yaml::Value, base: &str, d: &mut Diags) -> Option<T> {
    let mut taken_out: Vec<String> = Vec::new();
    for _ in 0..MAX_REPAIRS {
        let e = match serde_path_to_error::deserialize::<_, T>(v.clone()) {
            Ok(t) => return Some(t),
            Err(e) => e,
        };
        let segments: Vec<Segment> = e.path().iter().cloned().collect();
        let raw = e.into_inner().to_string();
        let (msg, unknown) = friendly_serde_message(&raw);
        let mut path = fmt_path(base, &segments);
        if let Some(field) = &unknown {
            if !path.ends_with(&format!(".{field}")) {
                path = format!("{path}.{field}");
            }
        }
        // A required key we took out ourselves: its value's error was already reported.
        let missing = raw
            .strip_prefix("missing field `")
            .and_then(|r| r.split('`').next());
        let consequence =
            missing.is_some_and(|f| taken_out.iter().any(|t| *t == format!("{path}.{f}")));
        if !consequence {
            d.error(&path, msg);
        }
        if missing.is_some() {
            // Nothing to take out; taking out the enclosing list instead would only raise
            // errors about its absence. The item is left out.
            return None;
        }
        match take_out(&mut v, &segments, unknown.as_deref()) {
            Some(removed) => taken_out.push(fmt_path(base, &removed)),
            None => return None,
        }
    }
    None
}

/// `base` followed by serde's path segments, as the key paths in messages (`a.b[0].c`).
fn fmt_path(base: &str, segments: &[Segment]) -> String {
    let mut s = base.to_owned();
    for seg in segments {
        if !matches!(seg, Segment::Seq { .. }) {
            s.push('.');
        }
        s.push_str(&seg.to_string());
    }
    s
}

/// Bounds the repair loop of [`typed`] (one round per problem found in an item).
const MAX_REPAIRS: usize = 64;

use serde_path_to_error::Segment;

/// Removes what serde complained about from `v`: the unknown `field` of the mapping at `path`,
/// or the key holding the bad value (a whole list when the bad value is one of its items, so
/// the other items keep their indices in later messages). Returns the path of the key removed,
/// or None when nothing can be removed (the item itself is unusable).
fn take_out(
    v: &mut serde_yaml::Value,
    path: &[Segment],
    field: Option<&str>,
) -> Option<Vec<Segment>> {
    if let Some(f) = field {
        if let Some(serde_yaml::Value::Mapping(m)) = node_mut(v, path) {
            if let Some(k) = m.keys().find(|k| key_is(k, f)).cloned() {
                m.remove(&k);
                let mut removed = path.to_vec();
                removed.push(Segment::Map { key: f.to_owned() });
                return Some(removed);
            }
        }
    }
    let mut path = path;
    while let Some((Segment::Seq { .. }, parent)) = path.split_last() {
        path = parent;
    }
    let (Segment::Map { key }, parent) = path.split_last()? else {
        return None;
    };
    let serde_yaml::Value::Mapping(m) = node_mut(v, parent)? else {
        return None;
    };
    let k = m.keys().find(|k| key_is(k, key)).cloned()?;
    m.remove(&k);
    Some(path.to_vec())
}

fn node_mut<'a>(
    v: &'a mut serde_yaml::Value,
    path: &[Segment],
) -> Option<&'a mut serde_yaml::Value> {
    let mut node = v;
    for seg in path {
        node = match (seg, node) {
            (Segment::Seq { index }, serde_yaml::Value::Sequence(items)) => {
                items.get_mut(*index)?
            }
            (Segment::Map { key }, serde_yaml::Value::Mapping(m)) => {
                let k = m.keys().find(|k| key_is(k, key)).cloned()?;
                m.get_mut(&k)?
            }
            _ => return None,
        };
    }
    Some(node)
}

/// Whether a YAML mapping key is the one serde names `name` (keys may be numbers: `503:`).
fn key_is(k: &serde_yaml::Value, name: &str) -> bool {
    match k {
        serde_yaml::Value::String(s) => s == name,
        serde_yaml::Value::Number(n) => n.to_string() == name,
        serde_yaml::Value::Bool(b) => b.to_string() == name,
        _ => false,
    }
}

/// Rewrites serde's messages into the words a config author needs. Returns the message and,
/// for an unknown key, the key's name.
fn friendly_serde_message(msg: &str) -> (String, Option<String>) {
    let msg = msg.split(" at line ").next().unwrap_or(msg);
    if let Some(rest) = msg.strip_prefix("unknown field `") {
        let field = rest.split('`').next().unwrap_or("").to_owned();
        let expected: Vec<&str> = rest
            .split("expected one of ")
            .nth(1)
            .or_else(|| rest.split("expected ").nth(1))
            .map(|l| l.split(", ").map(|s| s.trim_matches('`')).collect())
            .unwrap_or_default();
        let text = match did_you_mean(&field, &expected) {
            Some(s) => format!("unknown key `{field}` (did you mean `{s}`?)"),
            None => format!("unknown key `{field}`; allowed: {}", expected.join(", ")),
        };
        return (text, Some(field));
    }
    if let Some(rest) = msg.strip_prefix("missing field `") {
        let field = rest.split('`').next().unwrap_or("");
        return (format!("missing required key `{field}`"), None);
    }
    if msg.contains("did not match any variant of untagged enum TrackScriptRef") {
        return (
            "expected a script name or { name: NAME, weight: N }".into(),
            None,
        );
    }
    if msg.contains("did not match any variant of untagged enum DurationValue") {
        return (format!("expected {}", duration::DURATION_HELP), None);
    }
    if msg.contains("did not match any variant of untagged enum OneOrMany") {
        return ("expected a string or a list of strings".into(), None);
    }
    if msg.contains("did not match any variant of untagged enum CertificateRef") {
        return (
            "expected a PEM file path or { cert: FILE, key: FILE }".into(),
            None,
        );
    }
    let text = msg
        .replace("expected i64", "expected an integer")
        .replace("expected a boolean", "expected true or false")
        .replace("invalid type: ", "wrong type: ");
    (text, None)
}

/// The closest allowed word within edit distance 2, for "did you mean".
pub(crate) fn did_you_mean<'a>(word: &str, allowed: &[&'a str]) -> Option<&'a str> {
    allowed
        .iter()
        .map(|a| (edit_distance(word, a), *a))
        .filter(|(d, _)| *d <= 2)
        .min_by_key(|(d, _)| *d)
        .map(|(_, a)| a)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests;
