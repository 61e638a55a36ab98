//! Where each key path of the YAML file sits (line, column), so that errors found after
//! deserialisation (semantic checks) can still name the line, as `haproxy -c` does.
//!
//! serde_yaml keeps no positions in its `Value`, so we walk the file once more with
//! yaml-rust2's event parser and record, for every path (`vrrp_instances[0].priority`), the
//! position of its key (or of the item, for sequence entries).

use std::collections::HashMap;
use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::Marker;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pos {
    pub line: usize,
    pub col: usize,
}

#[derive(Debug, Default)]
pub struct Spans {
    map: HashMap<String, Pos>,
}

impl Spans {
    /// Indexes `text`. A file that does not parse gives an empty index (serde_yaml reports the
    /// syntax error with its own position).
    pub fn index(text: &str) -> Spans {
        let mut rec = Recorder::default();
        let mut parser = Parser::new_from_str(text);
        let _ = parser.load(&mut rec, false);
        Spans { map: rec.map }
    }

    /// The position of `path`, or of its nearest recorded ancestor.
    pub fn find(&self, path: &str) -> Option<Pos> {
        let mut p = path;
        loop {
            if let Some(pos) = self.map.get(p) {
                return Some(*pos);
            }
            let cut = p.rfind(['.', '['])?;
            p = &p[..cut];
        }
    }
}

enum Frame {
    Map {
        key: Option<String>,
        expecting_key: bool,
    },
    Seq {
        index: usize,
    },
}

#[derive(Default)]
struct Recorder {
    stack: Vec<Frame>,
    map: HashMap<String, Pos>,
}

impl Recorder {
    fn path(&self) -> String {
        let mut s = String::new();
        for f in &self.stack {
            match f {
                Frame::Map {
                    key: Some(k),
                    expecting_key: false,
                } => {
                    if !s.is_empty() {
                        s.push('.');
                    }
                    s.push_str(k);
                }
                Frame::Seq { index } => {
                    s.push('[');
                    s.push_str(&index.to_string());
                    s.push(']');
                }
                _ => {}
            }
        }
        s
    }

    /// A node (scalar or container) begins at `mark`. Returns true when it is a mapping key.
    fn node_start(&mut self, mark: Marker, scalar: Option<&str>) -> bool {
        let pos = Pos {
            line: mark.line(),
            col: mark.col() + 1,
        };
        match self.stack.last_mut() {
            Some(Frame::Map { key, expecting_key }) if *expecting_key => {
                *key = Some(scalar.unwrap_or("?").to_owned());
                *expecting_key = false;
                let p = self.path();
                self.map.entry(p).or_insert(pos);
                true
            }
            Some(Frame::Seq { .. }) => {
                let p = self.path();
                self.map.entry(p).or_insert(pos);
                false
            }
            _ => false,
        }
    }

    /// A value node (scalar, or container at its end) is complete.
    fn value_done(&mut self) {
        match self.stack.last_mut() {
            Some(Frame::Map { key, expecting_key }) => {
                *key = None;
                *expecting_key = true;
            }
            Some(Frame::Seq { index }) => *index += 1,
            None => {}
        }
    }
}

impl MarkedEventReceiver for Recorder {
    fn on_event(&mut self, ev: Event, mark: Marker) {
        match ev {
            // A scalar or alias that is not a mapping key is a complete value.
            Event::Scalar(ref v, ..) if !self.node_start(mark, Some(v)) => self.value_done(),
            Event::Alias(_) if !self.node_start(mark, None) => self.value_done(),
            Event::MappingStart(..) | Event::SequenceStart(..) => {
                // A complex key (rare) still gets a frame so the nesting stays right.
                self.node_start(mark, None);
                self.stack.push(if matches!(ev, Event::MappingStart(..)) {
                    Frame::Map {
                        key: None,
                        expecting_key: true,
                    }
                } else {
                    Frame::Seq { index: 0 }
                });
            }
            Event::MappingEnd | Event::SequenceEnd => {
                self.stack.pop();
                self.value_done();
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_map_to_their_lines() {
        let text = "global:\n  node: lb1\nvrrp_instances:\n  - name: VI_1\n    priority: 300\n    virtual_ipaddress:\n      - 198.51.100.100/24\n  - name: VI_2\n    track_scripts: [a, {name: b, weight: 3}]\n";
        let s = Spans::index(text);
        assert_eq!(s.find("global.node"), Some(Pos { line: 2, col: 3 }));
        assert_eq!(
            s.find("vrrp_instances[0].priority").map(|p| p.line),
            Some(5)
        );
        assert_eq!(
            s.find("vrrp_instances[0].virtual_ipaddress[0]")
                .map(|p| p.line),
            Some(7)
        );
        assert_eq!(s.find("vrrp_instances[1].name").map(|p| p.line), Some(8));
        assert_eq!(
            s.find("vrrp_instances[1].track_scripts[1].weight")
                .map(|p| p.line),
            Some(9)
        );
        // Unknown deeper paths fall back to the nearest ancestor.
        assert_eq!(
            s.find("vrrp_instances[1].nope.deeper").map(|p| p.line),
            Some(8)
        );
    }
}
