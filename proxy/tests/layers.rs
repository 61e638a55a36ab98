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

/// Top-level modules every layer may read.
const SHARED: &[&str] = &["config"];

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

/// The identifiers of a path that starts at `text` (after `crate::` or `super::`): the
/// first segment, and the second ones (several for a `{a, b::c}` group).
fn path_after(text: &str) -> (String, Vec<String>) {
    let ident = |s: &str| -> String {
        s.chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect()
    };
    if let Some(group) = text.strip_prefix('{') {
        let inner = group.split('}').next().unwrap_or("");
        let firsts = inner.split(',').map(|p| ident(p.trim())).collect();
        return (String::new(), firsts);
    }
    let first = ident(text);
    let rest = &text[first.len()..];
    let seconds = match rest.strip_prefix("::") {
        Some(r) if r.starts_with('{') => {
            let inner = r[1..].split('}').next().unwrap_or("");
            inner.split(',').map(|p| ident(p.trim())).collect()
        }
        Some(r) => vec![ident(r)],
        None => Vec::new(),
    };
    (first, seconds)
}

/// The module keys `text` (one file, `key`) refers to, with the line of each reference.
fn references(text: &str, key: &str, modules: &BTreeSet<String>) -> Vec<(String, usize)> {
    let folder = key.split_once('/').map(|(f, _)| f);
    let mut refs = Vec::new();
    let resolve = |first: &str, second: &str| -> String {
        let file = format!("{first}/{second}");
        if modules.contains(&file) {
            file
        } else {
            first.to_owned()
        }
    };
    for (n, line) in text.lines().enumerate() {
        let code = line.trim_start();
        if code.starts_with("//") {
            continue;
        }
        for (at, _) in code.match_indices("crate::") {
            // `$crate::` in macros and paths of other crates are not ours.
            if at > 0 && code[..at].ends_with(|c: char| c.is_alphanumeric() || c == '_' || c == '$')
            {
                continue;
            }
            let (first, seconds) = path_after(&code[at + "crate::".len()..]);
            if first.is_empty() {
                // `use crate::{a, b}`: each is a top-level module (or a lib item).
                refs.extend(seconds.into_iter().map(|s| (s, n + 1)));
            } else if seconds.is_empty() {
                refs.push((first, n + 1));
            } else {
                refs.extend(seconds.iter().map(|s| (resolve(&first, s), n + 1)));
            }
        }
        if let Some(folder) = folder {
            for (at, _) in code.match_indices("super::") {
                let (first, _) = path_after(&code[at + "super::".len()..]);
                let file = format!("{folder}/{first}");
                if modules.contains(&file) {
                    refs.push((file, n + 1));
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
    ];
    for e in expect {
        assert!(
            found.iter().any(|f| f.starts_with(e)),
            "missing {e:?} in {found:#?}"
        );
    }
    assert_eq!(found.len(), expect.len(), "{found:#?}");
}
