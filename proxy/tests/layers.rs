//! The layering rule of proxy/src (README "Development"): arrows go one way,
//! listen → http | tcp → upstream → observe, and every layer may read config.rs; no file reads
//! lib.rs (the top), a layer above its own or a sibling layer, and no two files import each
//! other, directly or around a longer circle.
//!
//! The check reads the source text: every `crate::folder::file` (also inside `use crate::{..}`
//! groups) and `super::file` reference is an arrow from the file it is in to that file.
//! `LAYERS_SRC=/path/to/proxy/src` checks another tree (e.g. an older commit's).

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

/// The folders and their rank: a file may read a folder of a lower rank or its own folder.
const LAYERS: &[(&str, u8)] = &[
    ("listen", 4),
    ("http", 3),
    ("tcp", 3),
    ("upstream", 2),
    ("observe", 1),
];

/// Top-level modules every layer may read: the configuration, and the PROXY header codec
/// (read from clients by listen/ and tcp/, written to servers by upstream/ and tcp/).
const SHARED: &[&str] = &["config", "proxy_header"];

fn rank(folder: &str) -> Option<u8> {
    LAYERS.iter().find(|(f, _)| *f == folder).map(|(_, r)| *r)
}

/// A source file as a module key: "http/request", "http" (http/mod.rs), "lib", "config".
fn key_of(root: &Path, path: &Path) -> String {
    let rel = path.strip_prefix(root).unwrap_or(path);
    let s = rel.with_extension("").to_string_lossy().replace('\\', "/");
    s.strip_suffix("/mod").map(str::to_owned).unwrap_or(s)
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

fn ident(s: &str) -> &str {
    let end = s
        .find(|c: char| !(c.is_alphanumeric() || c == '_'))
        .unwrap_or(s.len());
    &s[..end]
}

/// The text of a `{...}` group up to its matching brace (`s` starts after the `{`).
fn group_inner(s: &str) -> &str {
    let mut depth = 0;
    for (i, c) in s.char_indices() {
        match c {
            '{' => depth += 1,
            '}' if depth == 0 => return &s[..i],
            '}' => depth -= 1,
            _ => {}
        }
    }
    s
}

/// The members of a group, split at its top-level commas.
fn members(s: &str) -> Vec<&str> {
    let (mut out, mut depth, mut from) = (Vec::new(), 0, 0);
    for (i, c) in s.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                out.push(&s[from..i]);
                from = i + 1;
            }
            _ => {}
        }
    }
    out.push(&s[from..]);
    out
}

/// The module paths named by the path that starts at `s` (after `crate::` or `super::`),
/// one per member of `{..}` groups, which may span lines.
fn paths(s: &str) -> Vec<Vec<String>> {
    let s = s.trim_start();
    if let Some(rest) = s.strip_prefix('{') {
        return members(group_inner(rest))
            .into_iter()
            .flat_map(paths)
            .collect();
    }
    let id = ident(s);
    if id.is_empty() {
        return vec![Vec::new()];
    }
    match s[id.len()..].strip_prefix("::") {
        Some(rest) => paths(rest)
            .into_iter()
            .map(|mut p| {
                p.insert(0, id.to_owned());
                p
            })
            .collect(),
        None => vec![vec![id.to_owned()]],
    }
}

/// Source text with `//` comments blanked (lines kept), so doc links are not references.
fn code_only(text: &str) -> String {
    text.lines()
        .map(|l| match l.find("//") {
            Some(i) => &l[..i],
            None => l,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The module keys `text` (one file, `key`) refers to, with the line of each reference.
/// A path resolves to the longest module it names; a top-level item to its own name.
fn references(text: &str, key: &str, modules: &BTreeSet<String>) -> Vec<(String, usize)> {
    let code = code_only(text);
    let module: Vec<&str> = if key == "lib" {
        Vec::new()
    } else {
        key.split('/').collect()
    };
    let resolve = |base: &[&str], path: &[String]| -> Option<String> {
        let full: Vec<&str> = base
            .iter()
            .copied()
            .chain(path.iter().map(String::as_str))
            .collect();
        (1..=full.len())
            .rev()
            .map(|n| full[..n].join("/"))
            .find(|k| modules.contains(k))
            .or_else(|| {
                full.get(base.len().min(full.len().saturating_sub(1)))
                    .map(|s| s.to_string())
            })
    };
    let mut refs = Vec::new();
    for (anchor, relative) in [("crate::", false), ("super::", true)] {
        for (at, _) in code.match_indices(anchor) {
            // `$crate::`, `my_crate::`: not a path of this crate.
            if code[..at].ends_with(|c: char| c.is_alphanumeric() || c == '_' || c == '$') {
                continue;
            }
            let line = code[..at].matches('\n').count() + 1;
            let base: &[&str] = if relative {
                &module[..module.len().saturating_sub(1)]
            } else {
                &[]
            };
            for path in paths(&code[at + anchor.len()..]) {
                // `use super::*` of a test module is the file itself.
                if relative && path.is_empty() {
                    continue;
                }
                if let Some(target) = resolve(base, &path) {
                    if relative && !modules.contains(&target) {
                        continue;
                    }
                    refs.push((target, line));
                }
            }
        }
    }
    refs.retain(|(r, _)| r != key);
    refs
}

/// Every broken rule in the tree under `root`, one line each.
fn violations(root: &Path) -> Vec<String> {
    let mut files = Vec::new();
    rust_files(root, &mut files);
    files.sort();
    let modules: BTreeSet<String> = files.iter().map(|p| key_of(root, p)).collect();
    let mut problems = Vec::new();
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for path in &files {
        let key = key_of(root, path);
        let Ok(text) = fs::read_to_string(path) else {
            problems.push(format!("{key}: cannot be read"));
            continue;
        };
        let top = key.split_once('/').map_or(key.as_str(), |(f, _)| f);
        let here = match top {
            "lib" => None,
            f if SHARED.contains(&f) => Some(0),
            f => match rank(f) {
                Some(r) => Some(r),
                None => {
                    problems.push(format!(
                        "{key}: not in a layer folder ({})",
                        LAYERS
                            .iter()
                            .map(|(f, _)| *f)
                            .collect::<Vec<_>>()
                            .join(", ")
                    ));
                    Some(u8::MAX)
                }
            },
        };
        let here_folder = key.split_once('/').map(|(f, _)| f.to_owned());
        for (target, line) in references(&text, &key, &modules) {
            graph.entry(key.clone()).or_default().insert(target.clone());
            let Some(here) = here else { continue };
            let target_folder = target.split('/').next().unwrap_or("");
            if SHARED.contains(&target_folder) || here_folder.as_deref() == Some(target_folder) {
                continue;
            }
            match rank(target_folder) {
                Some(r) if r < here => {}
                Some(_) => problems.push(format!(
                    "{key}:{line}: reads {target}, which is not in a lower layer"
                )),
                // A top-level item: lib.rs and what it declares sit above every layer.
                None if here != u8::MAX => problems.push(format!(
                    "{key}:{line}: reads crate::{target} (lib.rs is the top, move it down)"
                )),
                None => {}
            }
        }
    }
    problems.extend(circles(&graph));
    problems
}

/// Circles among files, each reported once, as "a -> b -> a".
fn circles(graph: &BTreeMap<String, BTreeSet<String>>) -> Vec<String> {
    let mut found = BTreeSet::new();
    for start in graph.keys() {
        // Depth-first search for a path back to `start` through nodes greater than it, so
        // each circle is found from its smallest member only.
        let mut stack = vec![(start.clone(), vec![start.clone()])];
        let mut seen = BTreeSet::new();
        while let Some((node, path)) = stack.pop() {
            for next in graph.get(&node).into_iter().flatten() {
                if next == start {
                    let mut c = path.clone();
                    c.push(start.clone());
                    found.insert(format!("import circle: {}", c.join(" -> ")));
                } else if next > start && seen.insert(next.clone()) {
                    let mut p = path.clone();
                    p.push(next.clone());
                    stack.push((next.clone(), p));
                }
            }
        }
    }
    found.into_iter().collect()
}

#[test]
fn proxy_src_keeps_its_layers() {
    let root = std::env::var_os("LAYERS_SRC")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("src"));
    let mut files = Vec::new();
    rust_files(&root, &mut files);
    assert!(files.len() > 10, "no sources under {}", root.display());
    let problems = violations(&root);
    assert!(
        problems.is_empty(),
        "proxy/src breaks its layering rule:\n{}",
        problems.join("\n")
    );
}

/// A throwaway tree of files under the temp dir, removed on drop.
struct Tree(PathBuf);

impl Tree {
    fn new(name: &str, files: &[(&str, &str)]) -> Tree {
        let dir = std::env::temp_dir().join(format!("layers-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        for (path, text) in files {
            let p = dir.join(path);
            fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
            fs::write(&p, text).expect("write");
        }
        Tree(dir)
    }
}

impl Drop for Tree {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

#[test]
fn the_check_sees_upward_reads_circles_and_stray_files() {
    let good = Tree::new(
        "good",
        &[
            ("lib.rs", "mod http;\nuse crate::http::request::handle;\n"),
            ("config.rs", ""),
            ("http/mod.rs", "pub mod request;\n"),
            (
                "http/request.rs",
                "use crate::upstream::{body::Body, forward};\nuse crate::config::X;\n",
            ),
            ("upstream/body.rs", "use crate::observe::counters::C;\n"),
            ("upstream/forward.rs", "use super::body::Body;\n"),
            (
                "observe/counters.rs",
                "// crate::http::request in a comment\n",
            ),
        ],
    );
    assert_eq!(violations(&good.0), Vec::<String>::new());

    let bad = Tree::new(
        "bad",
        &[
            ("lib.rs", ""),
            ("http/request.rs", "use crate::listen::conn::Serve;\n"),
            ("listen/conn.rs", "use crate::http::request;\n"),
            (
                "upstream/a.rs",
                "use crate::upstream::b::B;\nuse crate::Proxy;\n",
            ),
            ("upstream/b.rs", "use crate::upstream::{c::C};\n"),
            ("upstream/c.rs", "use super::a::A;\n"),
            ("observe/log.rs", "fn f() { crate::http::request::go() }\n"),
            ("tcp/splice.rs", "use crate::http::request;\n"),
            ("stray.rs", ""),
            (
                "upstream/d.rs",
                "use crate::upstream::{\n    e::E,\n    f,\n};\n",
            ),
            ("upstream/e.rs", "fn g() { crate::upstream::d::go() }\n"),
            ("listen/tls/x.rs", "use super::y::Y;\n"),
            ("listen/tls/y.rs", "use crate::listen::tls::x::X;\n"),
        ],
    );
    let found = violations(&bad.0);
    let expect = [
        "http/request:1: reads listen/conn, which is not in a lower layer",
        "upstream/a:2: reads crate::Proxy (lib.rs is the top, move it down)",
        "observe/log:1: reads http/request, which is not in a lower layer",
        "tcp/splice:1: reads http/request, which is not in a lower layer",
        "stray: not in a layer folder",
        "import circle: http/request -> listen/conn -> http/request",
        "import circle: upstream/a -> upstream/b -> upstream/c -> upstream/a",
        "import circle: upstream/d -> upstream/e -> upstream/d",
        "import circle: listen/tls/x -> listen/tls/y -> listen/tls/x",
    ];
    for e in expect {
        assert!(
            found.iter().any(|f| f.starts_with(e)),
            "missing {e:?} in {found:#?}"
        );
    }
    assert_eq!(found.len(), expect.len(), "{found:#?}");
}
