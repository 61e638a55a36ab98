//! The YAML configuration: parsing (serde_yaml), validation that reports every problem with
//! its file, line and key path, and translation into the typed configs of the `vrrp` and
//! `proxy` crates.

mod duration;
pub mod schema;
mod spans;
mod translate;
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
    let name = path.display().to_string();
    match std::fs::read_to_string(path) {
        Ok(text) => parse(&name, &text),
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
    let spans = Spans::index(text);
    let mut diags = Diags {
        file: file.to_owned(),
        spans: &spans,
        errors: vec![],
        warnings: vec![],
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
    if let Some(cf) = deserialize_sections(value, &mut diags) {
        let mut validated = validate::validate(&cf, &mut diags);
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
}

impl Diags<'_> {
    fn diag(&self, path: &str, message: String) -> Diagnostic {
        let pos = self.spans.find(path);
        Diagnostic {
            file: self.file.clone(),
            line: pos.map(|p| p.line),
            col: pos.map(|p| p.col),
            path: path.to_owned(),
            message,
        }
    }
    pub fn error(&mut self, path: &str, message: impl Into<String>) {
        let d = self.diag(path, message.into());
        self.errors.push(d);
    }
    pub fn warning(&mut self, path: &str, message: impl Into<String>) {
        let d = self.diag(path, message.into());
        self.warnings.push(d);
    }
}

const SECTIONS: [&str; 5] = [
    "global",
    "vrrp_scripts",
    "vrrp_instances",
    "frontends",
    "backends",
];

/// Deserialises section by section and item by item, so one typo does not hide the next.
/// Returns the whole file only when every part deserialised.
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
    let before = d.errors.len();
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
                        if let Some(s) = typed(body, &path, d) {
                            cf.vrrp_scripts.insert(name, s);
                        }
                    }
                }
                _ => d.error(
                    "vrrp_scripts",
                    "must be a mapping of script name to settings",
                ),
            },
            "vrrp_instances" => cf.vrrp_instances = typed_list(v, key, d),
            "frontends" => cf.frontends = typed_list(v, key, d),
            "backends" => cf.backends = typed_list(v, key, d),
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
    (d.errors.len() == before).then_some(cf)
}

fn typed_list<T: DeserializeOwned>(v: serde_yaml::Value, key: &str, d: &mut Diags) -> Vec<T> {
    match v {
        serde_yaml::Value::Null => Vec::new(),
        serde_yaml::Value::Sequence(items) => items
            .into_iter()
            .enumerate()
            .filter_map(|(i, item)| typed(item, &format!("{key}[{i}]"), d))
            .collect(),
        _ => {
            d.error(key, "must be a list (each item starting with `- `)");
            Vec::new()
        }
    }
}

fn typed<T: DeserializeOwned>(v: serde_yaml::Value, base: &str, d: &mut Diags) -> Option<T> {
    match serde_path_to_error::deserialize::<_, T>(v) {
        Ok(t) => Some(t),
        Err(e) => {
            let inner = e.path().to_string();
            let mut path = if inner == "." || inner.is_empty() {
                base.to_owned()
            } else {
                format!("{base}.{inner}")
            };
            let (msg, unknown) = friendly_serde_message(&e.into_inner().to_string());
            if let Some(field) = unknown {
                if !path.ends_with(&format!(".{field}")) {
                    path = format!("{path}.{field}");
                }
            }
            d.error(&path, msg);
            None
        }
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
