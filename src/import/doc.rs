//! The YAML document an import builds: a tree whose nodes remember the directive they came
//! from, so that a part `vrrplb check` refuses can be taken out and reported at the line of
//! the keepalived.conf or haproxy.cfg that produced it.

use std::fmt;

/// Where a node came from: `FILE:LINE` and the directive as written.
#[derive(Debug, Clone)]
pub struct Origin {
    pub file: String,
    pub line: usize,
    pub text: String,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: `{}`", self.file, self.line, self.text)
    }
}

#[derive(Debug, Clone)]
pub enum Value {
    Map(Vec<(String, Node)>),
    List(Vec<Node>),
    Str(String),
    Int(i64),
    Bool(bool),
}

#[derive(Debug, Clone)]
pub struct Node {
    pub value: Value,
    pub from: Option<Origin>,
}

impl Default for Node {
    fn default() -> Self {
        Node::map()
    }
}

impl Node {
    /// Records where this node came from, unless it already knows.
    pub fn mark_origin(&mut self, o: &Origin) {
        if self.from.is_none() {
            self.from = Some(o.clone());
        }
    }

    pub fn map() -> Node {
        Node {
            value: Value::Map(Vec::new()),
            from: None,
        }
    }
    pub fn list() -> Node {
        Node {
            value: Value::List(Vec::new()),
            from: None,
        }
    }
    pub fn str(s: impl Into<String>) -> Node {
        Node {
            value: Value::Str(s.into()),
            from: None,
        }
    }
    pub fn int(i: i64) -> Node {
        Node {
            value: Value::Int(i),
            from: None,
        }
    }
    pub fn bool(b: bool) -> Node {
        Node {
            value: Value::Bool(b),
            from: None,
        }
    }
    pub fn from(mut self, o: &Origin) -> Node {
        self.from = Some(o.clone());
        self
    }

    /// Sets `key` in a mapping (replacing an earlier value, keeping its place).
    pub fn set(&mut self, key: &str, node: Node) {
        if let Value::Map(entries) = &mut self.value {
            match entries.iter_mut().find(|(k, _)| k == key) {
                Some((_, v)) => *v = node,
                None => entries.push((key.to_owned(), node)),
            }
        }
    }

    pub fn get(&self, key: &str) -> Option<&Node> {
        match &self.value {
            Value::Map(entries) => entries.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    pub fn get_mut(&mut self, key: &str) -> Option<&mut Node> {
        match &mut self.value {
            Value::Map(entries) => entries.iter_mut().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    /// The node at `key` (a new empty mapping when absent); a non-mapping `self` becomes one.
    pub fn entry(&mut self, key: &str) -> &mut Node {
        if !matches!(self.value, Value::Map(_)) {
            self.value = Value::Map(Vec::new());
        }
        let entries = match &mut self.value {
            Value::Map(entries) => entries,
            _ => unreachable!("just made a mapping"),
        };
        let i = match entries.iter().position(|(k, _)| k == key) {
            Some(i) => i,
            None => {
                entries.push((key.to_owned(), Node::map()));
                entries.len() - 1
            }
        };
        &mut entries[i].1
    }

    /// The list at `key`, created (or replacing a non-list) when absent.
    pub fn list_at(&mut self, key: &str) -> &mut Vec<Node> {
        let node = self.entry(key);
        if !matches!(node.value, Value::List(_)) {
            node.value = Value::List(Vec::new());
        }
        match &mut node.value {
            Value::List(items) => items,
            _ => unreachable!("just made a list"),
        }
    }

    /// This node's origin, or the first one found among its children (a list or mapping
    /// made on the fly has none of its own).
    pub fn first_origin(&self) -> Option<Origin> {
        if self.from.is_some() {
            return self.from.clone();
        }
        match &self.value {
            Value::Map(entries) => entries.iter().find_map(|(_, v)| v.first_origin()),
            Value::List(items) => items.iter().find_map(Node::first_origin),
            _ => None,
        }
    }

    pub fn is_empty(&self) -> bool {
        match &self.value {
            Value::Map(e) => e.is_empty(),
            Value::List(l) => l.is_empty(),
            _ => false,
        }
    }

    pub fn to_yaml(&self) -> serde_yaml::Value {
        match &self.value {
            Value::Map(entries) => {
                let mut m = serde_yaml::Mapping::new();
                for (k, v) in entries {
                    // error_pages are keyed by status code.
                    let key = match k.parse::<i64>() {
                        Ok(n) => serde_yaml::Value::Number(n.into()),
                        Err(_) => serde_yaml::Value::String(k.clone()),
                    };
                    m.insert(key, v.to_yaml());
                }
                serde_yaml::Value::Mapping(m)
            }
            Value::List(items) => {
                serde_yaml::Value::Sequence(items.iter().map(Node::to_yaml).collect())
            }
            Value::Str(s) => serde_yaml::Value::String(s.clone()),
            Value::Int(i) => serde_yaml::Value::Number((*i).into()),
            Value::Bool(b) => serde_yaml::Value::Bool(*b),
        }
    }

    /// Removes the node at a config key path (`frontends[0].routes[1].backend`). Returns the
    /// removed node and the origin of its nearest ancestor that has one.
    pub fn remove_path(&mut self, path: &[Seg]) -> Option<(Node, Option<Origin>)> {
        let (last, parents) = path.split_last()?;
        let mut node = self;
        let mut origin = node.from.clone();
        for seg in parents {
            node = match (seg, &mut node.value) {
                (Seg::Key(k), Value::Map(entries)) => {
                    entries.iter_mut().find(|(ek, _)| ek == k).map(|(_, v)| v)?
                }
                (Seg::Index(i), Value::List(items)) => items.get_mut(*i)?,
                _ => return None,
            };
            if node.from.is_some() {
                origin = node.from.clone();
            }
        }
        let removed = match (last, &mut node.value) {
            (Seg::Key(k), Value::Map(entries)) => {
                let i = entries.iter().position(|(ek, _)| ek == k)?;
                entries.remove(i).1
            }
            (Seg::Index(i), Value::List(items)) if *i < items.len() => items.remove(*i),
            _ => return None,
        };
        let origin = removed.first_origin().or(origin);
        Some((removed, origin))
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seg {
    Key(String),
    Index(usize),
}

/// `a.b[0].c` as segments.
pub fn parse_path(path: &str) -> Vec<Seg> {
    let mut out = Vec::new();
    for part in path.split('.') {
        let mut rest = part;
        if let Some(i) = rest.find('[') {
            if i > 0 {
                out.push(Seg::Key(rest[..i].to_owned()));
            }
            rest = &rest[i..];
            while let Some(r) = rest.strip_prefix('[') {
                let Some((n, tail)) = r.split_once(']') else {
                    break;
                };
                if let Ok(n) = n.parse() {
                    out.push(Seg::Index(n));
                }
                rest = tail;
            }
        } else if !rest.is_empty() {
            out.push(Seg::Key(rest.to_owned()));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_parse_and_nodes_come_out_with_their_origin() {
        assert_eq!(
            parse_path("frontends[0].routes[12].backend"),
            vec![
                Seg::Key("frontends".into()),
                Seg::Index(0),
                Seg::Key("routes".into()),
                Seg::Index(12),
                Seg::Key("backend".into())
            ]
        );
        let o = Origin {
            file: "h.cfg".into(),
            line: 7,
            text: "server a x:80".into(),
        };
        let mut doc = Node::map();
        doc.list_at("backends").push({
            let mut b = Node::map();
            b.set("name", Node::str("web"));
            b.list_at("servers").push(Node::map().from(&o));
            b
        });
        let (_, origin) = doc
            .remove_path(&parse_path("backends[0].servers[0].address"))
            .map_or((None, None), |(n, o)| (Some(n), o));
        assert!(origin.is_none(), "no such key: nothing removed");
        let (_, origin) = doc
            .remove_path(&parse_path("backends[0].servers[0]"))
            .expect("removed");
        assert_eq!(origin.map(|o| o.line), Some(7));
    }
}
