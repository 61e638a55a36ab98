//! keepalived.conf → the `global`, `vrrp_scripts` and `vrrp_instances` parts of a vrrplb
//! file. The syntax: words separated by blanks, `{ … }` blocks, `#` and `!` comments,
//! double-quoted strings; a statement ends at the end of its line.

use super::doc::{Node, Origin};
use super::Notes;

/// A statement (`priority 101`) or a block (`vrrp_instance VI_1 { … }`).
#[derive(Debug)]
pub struct Item {
    pub words: Vec<String>,
    pub line: usize,
    pub block: Option<Vec<Item>>,
}

/// Splits one line into words: quotes group, `{`/`}` stand alone, comments end the line.
fn words(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut chars = line.chars();
    let flush = |cur: &mut String, out: &mut Vec<String>| {
        if !cur.is_empty() {
            out.push(std::mem::take(cur));
        }
    };
    while let Some(c) = chars.next() {
        match c {
            '#' | '!' if cur.is_empty() => break,
            '"' => {
                for q in chars.by_ref() {
                    if q == '"' {
                        break;
                    }
                    cur.push(q);
                }
                out.push(std::mem::take(&mut cur));
            }
            '{' | '}' => {
                flush(&mut cur, &mut out);
                out.push(c.to_string());
            }
            c if c.is_whitespace() => flush(&mut cur, &mut out),
            c => cur.push(c),
        }
    }
    flush(&mut cur, &mut out);
    out
}

/// Parses the whole file into top-level items; unbalanced braces are reported.
pub fn parse(text: &str, file: &str, notes: &mut Notes) -> Vec<Item> {
    // Stack of open blocks: (header words, line, children).
    let mut stack: Vec<(Vec<String>, usize, Vec<Item>)> = vec![(Vec::new(), 0, Vec::new())];
    for (i, line) in text.lines().enumerate() {
        let n = i + 1;
        let mut stmt: Vec<String> = Vec::new();
        for w in words(line) {
            match w.as_str() {
                "{" => stack.push((std::mem::take(&mut stmt), n, Vec::new())),
                "}" => {
                    if !stmt.is_empty() {
                        if let Some(top) = stack.last_mut() {
                            top.2.push(Item {
                                words: std::mem::take(&mut stmt),
                                line: n,
                                block: None,
                            });
                        }
                    }
                    if stack.len() < 2 {
                        notes.untranslated(file, n, "}", "a `}` without its `{`");
                        continue;
                    }
                    if let Some((header, at, children)) = stack.pop() {
                        if let Some(top) = stack.last_mut() {
                            top.2.push(Item {
                                words: header,
                                line: at,
                                block: Some(children),
                            });
                        }
                    }
                }
                _ => stmt.push(w),
            }
        }
        if !stmt.is_empty() {
            if let Some(top) = stack.last_mut() {
                top.2.push(Item {
                    words: stmt,
                    line: n,
                    block: None,
                });
            }
        }
    }
    while stack.len() > 1 {
        if let Some((header, at, _)) = stack.pop() {
            notes.untranslated(file, at, &header.join(" "), "this block is never closed");
        }
    }
    stack.pop().map(|(_, _, items)| items).unwrap_or_default()
}

/// Translates the parsed file into `doc`.
pub fn translate(items: &[Item], file: &str, doc: &mut Node, notes: &mut Notes) {
    for item in items {
        let o = origin(file, item);
        let key = item.words.first().map(String::as_str).unwrap_or("");
        match (key, &item.block) {
            ("global_defs", Some(body)) => global_defs(body, file, doc, notes),
            ("vrrp_script", Some(body)) => script(item, body, file, doc, notes),
            ("vrrp_instance", Some(body)) => instance(item, body, file, doc, notes),
            ("vrrp_sync_group", _) => notes.skip(&o, "vrrp_sync_group: give each instance its own trackers; sync groups are not translated"),
            ("virtual_server" | "virtual_server_group" | "real_server", _) => notes.skip(
                &o,
                "LVS virtual servers: vrrplb proxies instead (frontends and backends from haproxy.cfg)",
            ),
            ("include", _) => notes.skip(&o, "include: translate the included file on its own"),
            _ => notes.skip(&o, "unknown top-level keepalived directive"),
        }
    }
}

fn origin(file: &str, item: &Item) -> Origin {
    let mut text = item.words.join(" ");
    if item.block.is_some() {
        text.push_str(" { … }");
    }
    Origin {
        file: file.to_owned(),
        line: item.line,
        text,
    }
}

fn arg(item: &Item, i: usize) -> Option<&str> {
    item.words.get(i).map(String::as_str)
}

fn int(item: &Item, o: &Origin, notes: &mut Notes) -> Option<i64> {
    match arg(item, 1).and_then(|v| v.parse::<i64>().ok()) {
        Some(v) => Some(v),
        None => {
            notes.skip(o, "expected a whole number");
            None
        }
    }
}

/// keepalived durations are seconds, possibly with decimals.
fn seconds(item: &Item, o: &Origin, notes: &mut Notes) -> Option<Node> {
    let v = arg(item, 1)?;
    match v.parse::<f64>() {
        Ok(s) if s.fract() == 0.0 => Some(Node::int(s as i64).from(o)),
        Ok(s) => Some(Node::str(format!("{}ms", (s * 1000.0).round() as i64)).from(o)),
        Err(_) => {
            notes.skip(o, "expected a number of seconds");
            None
        }
    }
}

fn global_defs(body: &[Item], file: &str, doc: &mut Node, notes: &mut Notes) {
    for item in body {
        let o = origin(file, item);
        match item.words[0].as_str() {
            "router_id" => match arg(item, 1) {
                Some(id) => {
                    doc.entry("global").set("node", Node::str(id).from(&o));
                }
                None => notes.skip(&o, "router_id needs a name"),
            },
            "enable_script_security" | "script_user" => notes.skip(
                &o,
                "not needed: scripts run as the daemon's user (vrrplb), or as a script's `user:`",
            ),
            "vrrp_garp_master_delay" | "vrrp_garp_master_repeat" | "vrrp_garp_master_refresh" => {
                notes.skip(&o, "set garp_master_* on each instance instead")
            }
            _ => notes.skip(&o, "global_defs setting with no vrrplb equivalent"),
        }
    }
}

fn script(item: &Item, body: &[Item], file: &str, doc: &mut Node, notes: &mut Notes) {
    let o = origin(file, item);
    let Some(name) = arg(item, 1) else {
        notes.skip(&o, "vrrp_script needs a name");
        return;
    };
    let mut s = Node::map().from(&o);
    for st in body {
        let so = origin(file, st);
        match st.words[0].as_str() {
            "script" if st.words.len() > 1 => {
                s.set("script", Node::str(st.words[1..].join(" ")).from(&so))
            }
            "script" => notes.skip(&so, "script needs a command line"),
            "interval" | "timeout" => {
                if let Some(v) = seconds(st, &so, notes) {
                    s.set(&st.words[0], v);
                }
            }
            "weight" | "rise" | "fall" => {
                if let Some(v) = int(st, &so, notes) {
                    s.set(&st.words[0], Node::int(v).from(&so));
                }
                if st.words.get(2).map(String::as_str) == Some("reverse") {
                    notes.skip(&so, "`reverse` weights are not supported");
                }
            }
            "user" => {
                if let Some(u) = arg(st, 1) {
                    s.set("user", Node::str(u).from(&so));
                }
                if st.words.len() > 2 {
                    notes.skip(
                        &so,
                        "the group is not translated: scripts run with the user's group",
                    );
                }
            }
            _ => notes.skip(&so, "vrrp_script setting with no vrrplb equivalent"),
        }
    }
    if s.get("script").is_none() {
        notes.skip(&o, "vrrp_script without a script");
        return;
    }
    doc.entry("vrrp_scripts").set(name, s);
}

fn instance(item: &Item, body: &[Item], file: &str, doc: &mut Node, notes: &mut Notes) {
    let o = origin(file, item);
    let Some(name) = arg(item, 1) else {
        notes.skip(&o, "vrrp_instance needs a name");
        return;
    };
    let mut inst = Node::map().from(&o);
    inst.set("name", Node::str(name).from(&o));
    let mut ipv6 = false;
    for st in body {
        let so = origin(file, st);
        let key = st.words[0].as_str();
        match (key, &st.block) {
            ("state" | "interface" | "unicast_src_ip", None) => match arg(st, 1) {
                Some(v) => inst.set(key, Node::str(v).from(&so)),
                None => notes.skip(&so, "needs a value"),
            },
            ("virtual_router_id" | "priority" | "garp_master_repeat" | "version", None) => {
                if let Some(v) = int(st, &so, notes) {
                    inst.set(key, Node::int(v).from(&so));
                }
            }
            (
                "advert_int" | "preempt_delay" | "garp_master_delay" | "garp_master_refresh",
                None,
            ) => {
                if let Some(v) = seconds(st, &so, notes) {
                    inst.set(key, v);
                }
            }
            ("nopreempt", None) => inst.set("nopreempt", Node::bool(true).from(&so)),
            (
                "notify_master" | "notify_backup" | "notify_fault" | "notify_stop" | "notify",
                None,
            ) => inst.set(key, Node::str(st.words[1..].join(" ")).from(&so)),
            ("authentication", Some(b)) => {
                let mut auth = Node::map().from(&so);
                for a in b {
                    let ao = origin(file, a);
                    match (a.words[0].as_str(), arg(a, 1)) {
                        ("auth_type", Some(t)) => auth.set("auth_type", Node::str(t).from(&ao)),
                        ("auth_pass", Some(p)) => auth.set("auth_pass", Node::str(p).from(&ao)),
                        _ => notes.skip(&ao, "authentication takes auth_type and auth_pass"),
                    }
                }
                inst.set("authentication", auth);
            }
            ("unicast_peer", Some(b)) => {
                let peers = inst.list_at("unicast_peers");
                for p in b {
                    peers.push(Node::str(p.words[0].clone()).from(&origin(file, p)));
                    if p.words.len() > 1 {
                        notes.skip(&origin(file, p), "per-peer options are not translated");
                    }
                }
            }
            ("virtual_ipaddress", Some(b)) => {
                for v in b {
                    let vo = origin(file, v);
                    if let Some(vip) = vip(v, &vo, notes) {
                        ipv6 |= vip
                            .split(['/', ' '])
                            .next()
                            .and_then(|a| a.parse::<std::net::IpAddr>().ok())
                            .is_some_and(|a| a.is_ipv6());
                        inst.list_at("virtual_ipaddress")
                            .push(Node::str(vip).from(&vo));
                    }
                }
            }
            ("virtual_ipaddress_excluded", _) => notes.skip(
                &so,
                "excluded addresses are not translated (never advertised)",
            ),
            ("track_interface", Some(b)) => {
                for t in b {
                    let to = origin(file, t);
                    let mut n = Node::map().from(&to);
                    n.set("name", Node::str(t.words[0].clone()).from(&to));
                    let weight = match (arg(t, 1), arg(t, 2).and_then(|w| w.parse::<i64>().ok())) {
                        (Some("weight"), Some(w)) => w,
                        _ => 0,
                    };
                    n.set("weight", Node::int(weight).from(&to));
                    inst.list_at("track_interfaces").push(n);
                }
            }
            ("track_script", Some(b)) => {
                for t in b {
                    let to = origin(file, t);
                    let n = match (arg(t, 1), arg(t, 2).and_then(|w| w.parse::<i64>().ok())) {
                        (Some("weight"), Some(w)) => {
                            let mut n = Node::map().from(&to);
                            n.set("name", Node::str(t.words[0].clone()).from(&to));
                            n.set("weight", Node::int(w).from(&to));
                            n
                        }
                        _ => Node::str(t.words[0].clone()).from(&to),
                    };
                    inst.list_at("track_scripts").push(n);
                }
            }
            ("debug" | "smtp_alert" | "dont_track_primary" | "use_vmac" | "vmac_xmit_base", _) => {
                notes.skip(&so, "no vrrplb equivalent")
            }
            _ => notes.skip(&so, "vrrp_instance setting with no vrrplb equivalent"),
        }
    }
    // keepalived runs an IPv6 instance in VRRPv3 whatever its version says (VRRPv2 is
    // IPv4 only); vrrplb wants it written.
    if ipv6 && inst.get("version").is_none() {
        inst.set("version", Node::int(3).from(&o));
    }
    doc.list_at("vrrp_instances").push(inst);
}

/// `ADDR[/LEN] [dev IF] [label L] [brd …] [scope …]` → `ADDR/LEN [dev IF] [label L]`.
fn vip(v: &Item, o: &Origin, notes: &mut Notes) -> Option<String> {
    let mut out = v.words.first()?.clone();
    let mut i = 1;
    while i < v.words.len() {
        match (v.words[i].as_str(), v.words.get(i + 1)) {
            ("dev", Some(d)) => {
                out.push_str(" dev ");
                out.push_str(d);
            }
            ("label", Some(l)) => {
                out.push_str(" label ");
                out.push_str(l);
            }
            ("brd" | "broadcast" | "scope", Some(_)) => notes.skip(
                o,
                &format!(
                    "{} is not translated (the kernel's default is used)",
                    v.words[i]
                ),
            ),
            (w, _) => {
                notes.skip(o, &format!("`{w}` is not translated"));
                i += 1;
                continue;
            }
        }
        i += 2;
    }
    Some(out)
}
