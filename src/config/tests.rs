use super::*;

const BASE: &str = include_str!("../../deploy/examples/lb1.yaml");

fn errors(text: &str) -> Vec<String> {
    match parse("t.yaml", text) {
        Ok(_) => panic!("expected errors, the config was accepted:\n{text}"),
        Err(r) => r.errors.iter().map(ToString::to_string).collect(),
    }
}

/// Asserts one error mentions `path` on `line` and contains `needle`.
fn assert_error(text: &str, line: usize, path: &str, needle: &str) {
    let errs = errors(text);
    let prefix = format!("t.yaml:{line}:");
    assert!(
        errs.iter().any(|e| e.starts_with(&prefix)
            && e.contains(&format!(" {path}: "))
            && e.contains(needle)),
        "no error at line {line} for {path} containing {needle:?}; got:\n{}",
        errs.join("\n")
    );
}

fn instance(extra: &str) -> String {
    format!(
        "vrrp_instances:\n  - name: VI_1\n    interface: eth0\n    virtual_router_id: 51\n    virtual_ipaddress: [198.51.100.100/24]\n{extra}"
    )
}

#[test]
fn both_examples_are_valid() {
    for (name, text) in [
        ("lb1", BASE),
        ("lb2", include_str!("../../deploy/examples/lb2.yaml")),
    ] {
        let loaded = parse(name, text).unwrap_or_else(|r| panic!("{name} rejected:\n{r}"));
        let inst = &loaded.config.instances[0];
        assert_eq!(inst.vrid, 51);
        assert_eq!(
            inst.virtual_addresses[0].addr,
            "198.51.100.100".parse::<std::net::Ipv4Addr>().unwrap()
        );
        assert_eq!(inst.track_scripts[0].weight, -20);
        assert_eq!(inst.auth_pass, Some(*b"vrrplb51"));
    }
    assert_eq!(parse("a", BASE).unwrap().config.instances[0].priority, 101);
    assert_eq!(
        parse("b", include_str!("../../deploy/examples/lb2.yaml"))
            .unwrap()
            .config
            .instances[0]
            .priority,
        100
    );
}

#[test]
fn advert_int_is_kept_in_centiseconds_for_both_versions() {
    let cs = |extra: &str| {
        let loaded = parse("t.yaml", &instance(extra))
            .unwrap_or_else(|r| panic!("rejected {extra:?}:\n{r}"));
        let i = &loaded.config.instances[0];
        (i.version, i.advert_int)
    };
    assert_eq!(cs(""), (vrrp::Version::V2, 100));
    assert_eq!(cs("    advert_int: 3\n"), (vrrp::Version::V2, 300));
    assert_eq!(cs("    version: 2\n"), (vrrp::Version::V2, 100));
    assert_eq!(
        cs("    version: 3\n    advert_int: 100ms\n"),
        (vrrp::Version::V3, 10)
    );
    assert_eq!(
        cs("    version: 3\n    advert_int: 10ms\n"),
        (vrrp::Version::V3, 1)
    );
    assert_eq!(
        cs("    version: 3\n    advert_int: 40.95s\n"),
        (vrrp::Version::V3, 4095)
    );
    assert_eq!(cs("    version: 3\n"), (vrrp::Version::V3, 100));
    assert_eq!(
        cs("    version: 3\n    advert_int: 0.1\n"),
        (vrrp::Version::V3, 10)
    );
}

#[test]
fn empty_and_partial_configs_are_valid() {
    assert!(
        parse("t.yaml", "").is_ok(),
        "an empty file is a daemon doing nothing"
    );
    // A plain VRRP daemon: no frontends.
    assert!(parse("t.yaml", &instance("")).is_ok());
    // A plain load balancer: no vrrp_instances.
    let lb = "frontends:\n  - name: www\n    bind: [\"127.0.0.1:8080\"]\n    default_backend: web\nbackends:\n  - name: web\n    servers: [{ name: a, address: \"127.0.0.1:9000\" }]\n";
    assert!(parse("t.yaml", lb).is_ok());
}

#[test]
fn yaml_syntax_error_names_line_and_column() {
    let errs = errors("global:\n  node: [lb1\n");
    assert!(errs[0].starts_with("t.yaml:"), "{errs:?}");
    assert!(errs[0].contains("YAML syntax error"), "{errs:?}");
}

#[test]
fn unknown_key_is_an_error_with_a_suggestion() {
    assert_error(
        &instance("    priorty: 100\n"),
        6,
        "vrrp_instances[0].priorty",
        "did you mean `priority`",
    );
    assert_error("globl:\n  node: a\n", 1, "globl", "did you mean `global`");
    assert_error(
        "global:\n  log:\n    taget: stderr\n",
        3,
        "global.log.taget",
        "did you mean `target`",
    );
}

#[test]
fn wrong_type_is_an_error() {
    assert_error(
        &instance("    priority: high\n"),
        6,
        "vrrp_instances[0].priority",
        "expected an integer",
    );
    assert_error(
        &instance("    nopreempt: sometimes\n"),
        6,
        "vrrp_instances[0].nopreempt",
        "wrong type",
    );
}

#[test]
fn global_threads_is_range_checked() {
    assert!(parse("t.yaml", "global:\n  threads: 2\n").is_ok());
    assert_error(
        "global:\n  threads: 0\n",
        2,
        "global.threads",
        "0 is out of range 1..=64",
    );
}

#[test]
fn sync_groups_name_known_instances_once() {
    let two = "vrrp_instances:\n  - name: VI_1\n    interface: eth0\n    virtual_router_id: 51\n    virtual_ipaddress: [198.51.100.100/24]\n  - name: VI_2\n    interface: eth0\n    virtual_router_id: 52\n    virtual_ipaddress: [198.51.100.101/24]\n";
    let ok = format!("{two}vrrp_sync_groups:\n  - name: G1\n    group: [VI_1, VI_2]\n    notify_fault: /bin/true\n");
    let loaded = parse("t.yaml", &ok).unwrap_or_else(|r| panic!("{r}"));
    let c = &loaded.config;
    assert_eq!(c.sync_groups.len(), 1);
    assert_eq!(c.sync_groups[0].members, ["VI_1", "VI_2"]);
    assert_eq!(c.sync_groups[0].notify.fault.as_deref(), Some("/bin/true"));
    assert!(c
        .instances
        .iter()
        .all(|i| i.sync_group.as_deref() == Some("G1")));
    assert_error(
        &format!("{two}vrrp_sync_groups:\n  - name: G1\n    group: [VI_1, VI_9]\n"),
        12,
        "vrrp_sync_groups[0].group[1]",
        "no vrrp_instance named VI_9",
    );
    assert_error(
        &format!("{two}vrrp_sync_groups:\n  - name: G1\n    group: [VI_1]\n  - name: G2\n    group: [VI_1, VI_2]\n"),
        14,
        "vrrp_sync_groups[1].group[0]",
        "already in sync group G1",
    );
}

#[test]
fn vrrp_realtime_priority_is_range_checked() {
    assert!(parse("t.yaml", "global:\n  vrrp_realtime_priority: 50\n").is_ok());
    assert!(parse("t.yaml", "global:\n  vrrp_realtime_priority: 0\n").is_ok());
    assert_error(
        "global:\n  vrrp_realtime_priority: 100\n",
        2,
        "global.vrrp_realtime_priority",
        "100 is out of range 0..=99",
    );
}

#[test]
fn out_of_range_numbers_are_errors() {
    assert_error(
        &instance("    priority: 300\n"),
        6,
        "vrrp_instances[0].priority",
        "300 is out of range 1..=255",
    );
    let t = instance("").replace("virtual_router_id: 51", "virtual_router_id: 0");
    assert_error(
        &t,
        4,
        "vrrp_instances[0].virtual_router_id",
        "out of range 1..=255",
    );
    assert_error(
        &instance("    advert_int: 0.5\n"),
        6,
        "vrrp_instances[0].advert_int",
        "whole seconds",
    );
    assert_error(
        &instance("    advert_int: 300\n"),
        6,
        "vrrp_instances[0].advert_int",
        "whole seconds",
    );
    assert_error(
        &instance("    version: 4\n"),
        6,
        "vrrp_instances[0].version",
        "expected 2 or 3",
    );
    assert_error(
        &instance("    version: 3\n    advert_int: 5ms\n"),
        7,
        "vrrp_instances[0].advert_int",
        "10ms..40.95s",
    );
    assert_error(
        &instance("    version: 3\n    advert_int: 105ms\n"),
        7,
        "vrrp_instances[0].advert_int",
        "steps of 10ms",
    );
    assert_error(
        &instance("    version: 3\n    advert_int: 41s\n"),
        7,
        "vrrp_instances[0].advert_int",
        "10ms..40.95s",
    );
    assert_error(
        &instance("    version: 3\n    authentication: { auth_type: PASS, auth_pass: x }\n"),
        7,
        "vrrp_instances[0].authentication",
        "VRRPv3 has no authentication",
    );
    let s = "vrrp_scripts:\n  chk:\n    script: /bin/true\n    weight: 254\n    rise: 0\n";
    assert_error(s, 4, "vrrp_scripts.chk.weight", "out of range -253..=253");
    assert_error(s, 5, "vrrp_scripts.chk.rise", "out of range 1..=1000");
    let b = "backends:\n  - name: web\n    servers:\n      - { name: a, address: \"127.0.0.1:1\", weight: 300 }\n    health_check: { fall: 0 }\n";
    assert_error(
        b,
        4,
        "backends[0].servers[0].weight",
        "out of range 0..=256",
    );
    assert_error(
        b,
        5,
        "backends[0].health_check.fall",
        "out of range 1..=1000",
    );
}

#[test]
fn bad_durations_are_errors() {
    assert_error(
        &instance("    preempt_delay: soon\n"),
        6,
        "vrrp_instances[0].preempt_delay",
        "\"500ms\"",
    );
    let b = "backends:\n  - name: web\n    servers: [{ name: a, address: \"127.0.0.1:1\" }]\n    timeouts: { connect: 5 parsecs }\n";
    assert_error(b, 4, "backends[0].timeouts.connect", "not a duration");
}

#[test]
fn vip_label_is_read_as_keepalived_writes_it() {
    let vips = |list: &str| {
        let t = instance("").replace("[198.51.100.100/24]", list);
        parse("t.yaml", &t).map(|l| l.config.instances[0].virtual_addresses.clone())
    };
    let got = vips("[\"198.51.100.100/24 dev eth1 label eth1:vip\", \"198.51.100.101/24 label eth0:web\", \"198.51.100.102 label eth0\"]")
        .expect("labels accepted");
    assert_eq!(got[0].dev.as_deref(), Some("eth1"));
    assert_eq!(got[0].label.as_deref(), Some("eth1:vip"));
    assert_eq!(got[1].dev, None);
    assert_eq!(got[1].label.as_deref(), Some("eth0:web"));
    assert_eq!(got[2].label.as_deref(), Some("eth0"));
    let path = "vrrp_instances[0].virtual_ipaddress[0]";
    for (list, needle) in [
        (
            "[\"198.51.100.100/24 label eth1:vip\"]",
            "start with `eth0:`",
        ),
        (
            "[\"198.51.100.100/24 dev eth1 label eth0:vip\"]",
            "start with `eth1:`",
        ),
        (
            "[\"198.51.100.100/24 label eth0:a-very-long\"]",
            "longer than 15",
        ),
        ("[\"198.51.100.100/24 label\"]", "`label` needs a name"),
        (
            "[\"198.51.100.100/24 label eth0:a label eth0:b\"]",
            "given twice",
        ),
        ("[\"198.51.100.100/24 scope link\"]", "unexpected `scope`"),
    ] {
        let t = instance("").replace("[198.51.100.100/24]", list);
        assert_error(&t, 5, path, needle);
    }
}

#[test]
fn bad_addresses_are_errors() {
    let t = instance("").replace("[198.51.100.100/24]", "[198.51.100.300/24]");
    assert_error(
        &t,
        5,
        "vrrp_instances[0].virtual_ipaddress[0]",
        "not an IP address",
    );
    let t = instance("").replace("[198.51.100.100/24]", "[198.51.100.100/33]");
    assert_error(
        &t,
        5,
        "vrrp_instances[0].virtual_ipaddress[0]",
        "bad prefix length",
    );
    assert_error(
        &instance("    unicast_peers: [198.51.100.12, nope]\n"),
        6,
        "vrrp_instances[0].unicast_peers[1]",
        "not an IPv4",
    );
    let b = "backends:\n  - name: web\n    servers:\n      - name: a\n        address: web1.example.test\n";
    assert_error(b, 5, "backends[0].servers[0].address", "not an IP:port");
    let f = "frontends:\n  - name: www\n    bind: [\"198.51.100.100\"]\n";
    assert_error(f, 3, "frontends[0].bind[0]", "not an address:port");
}

#[test]
fn duplicates_are_errors() {
    let t = format!("{}  - name: VI_1\n    interface: eth0\n    virtual_router_id: 51\n    virtual_ipaddress: [198.51.100.101/24]\n", instance(""));
    let errs = errors(&t);
    assert!(
        errs.iter()
            .any(|e| e.starts_with("t.yaml:6:") && e.contains("duplicate instance name `VI_1`")),
        "{errs:?}"
    );
    assert!(
        errs.iter()
            .any(|e| e.starts_with("t.yaml:8:") && e.contains("VRID 51 is already used on eth0")),
        "{errs:?}"
    );
    let b = "backends:\n  - name: web\n    servers: [{ name: a, address: \"127.0.0.1:1\" }, { name: a, address: \"127.0.0.1:2\" }]\n  - name: web\n    servers: [{ name: a, address: \"127.0.0.1:1\" }]\n";
    let errs = errors(b);
    assert!(
        errs.iter()
            .any(|e| e.contains("backends[1].name: duplicate backend name `web`")),
        "{errs:?}"
    );
    assert!(
        errs.iter()
            .any(|e| e.contains("backends[0].servers[1].name: duplicate server name `a`")),
        "{errs:?}"
    );
}

#[test]
fn references_to_missing_things_are_errors() {
    assert_error(
        &instance("    track_scripts: [chk_wbe]\n"),
        6,
        "vrrp_instances[0].track_scripts[0]",
        "no vrrp_script named `chk_wbe`",
    );
    assert_error(
        &instance("    track_backends: [{ backend: nope }]\n"),
        6,
        "vrrp_instances[0].track_backends[0].backend",
        "no backend named `nope`",
    );
    let f = "frontends:\n  - name: www\n    bind: [\"127.0.0.1:80\"]\n    gate: [VI_9]\n    routes:\n      - match: { host: a.example.test }\n        backend: ghost\n    default_backend: ghost2\n";
    assert_error(
        f,
        4,
        "frontends[0].gate[0]",
        "no vrrp_instance named `VI_9`",
    );
    assert_error(
        f,
        7,
        "frontends[0].routes[0].backend",
        "no backend named `ghost`",
    );
    assert_error(
        f,
        8,
        "frontends[0].default_backend",
        "no backend named `ghost2`",
    );
}

#[test]
fn long_password_and_empty_server_list_are_errors() {
    let a = instance("    authentication: { auth_type: PASS, auth_pass: \"much-too-long\" }\n");
    assert_error(
        &a,
        6,
        "vrrp_instances[0].authentication.auth_pass",
        "1 to 8 characters",
    );
    let ah = instance("    authentication: { auth_type: AH, auth_pass: x }\n");
    assert_error(
        &ah,
        6,
        "vrrp_instances[0].authentication.auth_type",
        "not supported",
    );
    let b = "backends:\n  - name: web\n    servers: []\n";
    assert_error(b, 3, "backends[0].servers", "server list is empty");
}

#[test]
fn every_error_is_reported_not_just_the_first() {
    let t = format!(
        "{}    priority: 0\n    advert_int: 2.5\n    track_scripts: [nope]\n  - name: VI_2\n    interface: eth0\n    virtual_router_id: 999\n    virtual_ipaddress: [bad]\n    colour: blue\n",
        instance("")
    );
    let errs = errors(&t);
    // VI_2's unknown key does not hide its own value errors nor VI_1's.
    for needle in [
        "t.yaml:6:5: vrrp_instances[0].priority: 0 is out of range",
        "t.yaml:7:5: vrrp_instances[0].advert_int",
        "t.yaml:8:21: vrrp_instances[0].track_scripts[0]: no vrrp_script named `nope`",
        "t.yaml:13:5: vrrp_instances[1].colour: unknown key",
        "t.yaml:11:5: vrrp_instances[1].virtual_router_id: 999 is out of range",
        "t.yaml:12:25: vrrp_instances[1].virtual_ipaddress[0]: `bad` is not an IP address",
    ] {
        assert!(
            errs.iter().any(|e| e.starts_with(needle)),
            "{needle}: {errs:#?}"
        );
    }
    assert_eq!(errs.len(), 6, "{errs:#?}");
}

#[test]
fn an_unknown_key_does_not_hide_the_value_errors_of_its_item() {
    // The case: a typo and `priority: 300` in one instance are both reported.
    let errs = errors(&instance("    priorty: 100\n    priority: 300\n"));
    assert!(
        errs.iter().any(|e| e.contains(
            "vrrp_instances[0].priorty: unknown key `priorty` (did you mean `priority`?)"
        )),
        "{errs:#?}"
    );
    assert!(
        errs.iter()
            .any(|e| e.starts_with("t.yaml:7:5: vrrp_instances[0].priority: 300 is out of range")),
        "{errs:#?}"
    );
    assert_eq!(errs.len(), 2, "{errs:#?}");
    // Several wrong types and unknown keys in one item, nested ones too: all of them.
    let b = "backends:\n  - name: web\n    retries: many\n    servers:\n      - { name: a, address: \"198.51.100.21:80\", wieght: 2, backup: maybe }\n    health_check: { kind: http, interval: soon, rise: 0 }\n    colour: blue\n";
    let errs = errors(b);
    for needle in [
        "t.yaml:3:5: backends[0].retries: wrong type",
        "backends[0].servers[0].wieght: unknown key `wieght` (did you mean `weight`?)",
        "backends[0].servers[0].backup: wrong type",
        "backends[0].health_check.interval: \"soon\" is not a duration",
        "t.yaml:7:5: backends[0].colour: unknown key",
        "backends[0].health_check.rise: 0 is out of range",
    ] {
        assert!(
            errs.iter().any(|e| e.contains(needle)),
            "{needle}: {errs:#?}"
        );
    }
}

#[test]
fn an_item_that_cannot_be_read_does_not_hide_the_others() {
    // backends[0] lacks its required name: reported, left out; backends[1]'s error keeps its
    // own index and line; the frontend's reference to the nameless backend is not blamed, but
    // its reference to a missing one is.
    let t = "frontends:\n  - name: www\n    bind: [\"127.0.0.1:8080\"]\n    default_backend: web\n    routes: [{ match: { host: a.test }, backend: other }]\n\
backends:\n  - servers: [{ name: a, address: \"198.51.100.21:80\" }]\n  - name: web\n    balance: random\n    servers: [{ name: a, address: \"198.51.100.21:80\" }]\n";
    let errs = errors(t);
    assert!(
        errs.iter().any(|e| e.starts_with("t.yaml:7:")
            && e.contains(" backends[0]: missing required key `name`")),
        "{errs:#?}"
    );
    assert!(
        errs.iter()
            .any(|e| e.starts_with("t.yaml:9:5: backends[1].balance")),
        "{errs:#?}"
    );
    assert!(
        errs.iter().any(|e| e.contains("no backend named `other`")),
        "{errs:#?}"
    );
    assert_eq!(errs.len(), 3, "{errs:#?}");
    // A named item left out: references to its name are not reported again.
    let t = "frontends:\n  - name: www\n    bind: [\"127.0.0.1:8080\"]\n    default_backend: web\n\
backends:\n  - name: web\n    servers: [{ name: a }]\n";
    let errs = errors(t);
    assert!(
        errs.iter()
            .any(|e| e.contains("backends[0].servers[0]: missing required key `address`")),
        "{errs:#?}"
    );
    assert_eq!(errs.len(), 1, "{errs:#?}");
}

#[test]
fn what_run_cannot_serve_is_a_check_error() {
    let errs =
        errors("backends:\n  - name: t\n    mode: tcp\n    tls: { verify: false }\n    servers: [{ name: a, address: \"127.0.0.1:1\" }]\n");
    assert!(
        errs.iter().any(|e| e.contains(" backends[0].tls: ")
            && e.contains("not implemented in this version yet")),
        "{errs:#?}"
    );
    // The balancer's own readers judge error pages and header values at check time.
    let dir = std::env::temp_dir().join(format!("vrrplb-ops-errpage-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let page = dir.join("503.http");
    std::fs::write(&page, "this is not an HTTP response\n").unwrap();
    let f = format!("frontends:\n  - name: www\n    bind: [\"127.0.0.1:80\"]\n    error_pages: {{ 503: {} }}\n    set_headers: {{ X-A: \"a\\x01b\" }}\n", page.display());
    let errs = errors(&f);
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        errs.iter()
            .any(|e| e.contains("frontends[0].error_pages.503: error page")
                && e.contains("not a valid HTTP/1.x response")),
        "{errs:#?}"
    );
    assert!(
        errs.iter()
            .any(|e| e.contains("frontends[0].set_headers.X-A") && e.contains("control character")),
        "{errs:#?}"
    );
}

#[test]
fn stats_and_notify_fifo_are_served_and_checked() {
    for ok in [
        "global:\n  stats: { bind: \":8404\" }\n  notify_fifo: /run/vrrplb/fifo\n",
        "global:\n  stats:\n    bind: \"127.0.0.1:8404\"\n    uri: /haproxy?stats\n    refresh: 10s\n    show_node: true\n    realm: Lab\n    auth: { user: admin, password: x }\n",
    ] {
        assert!(parse("t.yaml", ok).is_ok(), "{ok}");
    }
    for (text, path) in [
        (
            "global:\n  stats: { bind: \"nowhere\" }\n",
            "global.stats.bind",
        ),
        (
            "global:\n  stats: { bind: \":8404\", uri: stats }\n",
            "global.stats.uri",
        ),
        (
            "global:\n  stats: { bind: \":8404\", uri: /metrics }\n",
            "global.stats.uri",
        ),
        (
            "global:\n  stats: { bind: \":8404\", auth: { user: \"a:b\", password: x } }\n",
            "global.stats.auth.user",
        ),
        (
            "global:\n  stats: { bind: \":8404\", realm: \"a\\\"b\" }\n",
            "global.stats.realm",
        ),
        (
            "global:\n  notify_fifo: relative/fifo\n",
            "global.notify_fifo",
        ),
    ] {
        let errs = errors(text);
        assert!(
            errs.iter().any(|e| e.contains(&format!(" {path}: "))),
            "{text}: {errs:#?}"
        );
    }
}

#[test]
fn machine_dependent_things_are_warnings() {
    let t = instance("").replace("interface: eth0", "interface: ethNOPE9");
    let loaded = parse("t.yaml", &t).expect("a missing interface is not an error");
    assert!(
        loaded
            .warnings
            .iter()
            .any(|w| w.to_string().contains("ethNOPE9 does not exist")),
        "{:?}",
        loaded.warnings
    );
}

#[test]
fn unknown_header_variable_and_tcp_mode_http_keys_are_errors() {
    let f = "frontends:\n  - name: www\n    bind: [\"127.0.0.1:80\"]\n    set_headers:\n      X-Client-IP: \"%[srcip]\"\n";
    assert_error(
        f,
        5,
        "frontends[0].set_headers.X-Client-IP",
        "unknown variable `%[srcip]`",
    );
    let t = "frontends:\n  - name: t\n    mode: tcp\n    bind: [\"127.0.0.1:80\"]\n    forwarded_for: true\n";
    assert_error(
        t,
        5,
        "frontends[0].forwarded_for",
        "only allowed in http mode",
    );
}

#[test]
fn balancer_keys_reach_the_proxy_config() {
    let text = "frontends:\n  - name: www\n    bind: [\":8080\"]\n    gate: [VI_1]\n    default_backend: web\n\
backends:\n  - name: web\n    balance: leastconn\n    retry_on: [conn-failure, empty-response]\n    all_backups: true\n    servers:\n      - { name: a, address: \"127.0.0.1:1\", weight: 3, backup: true, cookie: A }\n    health_check: { kind: http, method: HEAD, path: /ping, interval: 2s, expect_status: [\"200-299\", 302], fast_interval: 500ms, initial_state: down, log_changes: true }\n    timeouts: { connect: 3s }\n";
    let text = format!("{}{text}", instance(""));
    let loaded = parse("t.yaml", &text).unwrap_or_else(|r| panic!("{r}"));
    let pc = proxy_config(&loaded.config);
    let fe = &pc.frontends[0];
    assert!(fe.gated);
    assert_eq!(fe.bind[0].to_string(), "0.0.0.0:8080");
    let be = &pc.backends[0];
    assert_eq!(be.balance, proxy::config::Balance::LeastConn);
    assert!(be.retry_on_empty_response && be.all_backups);
    assert_eq!((be.servers[0].weight, be.servers[0].backup), (3, true));
    assert_eq!(be.servers[0].cookie.as_deref(), Some("A"));
    let hc = be.health_check.as_ref().expect("check");
    assert_eq!((hc.method.as_str(), hc.path.as_str()), ("HEAD", "/ping"));
    assert_eq!(hc.expect_status, vec![(200, 299), (302, 302)]);
    assert_eq!(
        hc.fast_interval,
        Some(std::time::Duration::from_millis(500))
    );
    assert!(!hc.initial_up && hc.log_changes);
    // The timeout defaults to the interval; the queue timeout to the connect timeout.
    assert_eq!(hc.timeout, std::time::Duration::from_secs(2));
    assert_eq!(be.timeouts.queue, std::time::Duration::from_secs(3));
}

#[test]
fn bad_balancer_extras_are_errors() {
    let b = "backends:\n  - name: web\n    retry_on: [always]\n    servers: [{ name: a, address: \"127.0.0.1:1\" }]\n    health_check: { expect_status: [\"600-700\"], initial_state: sideways }\n";
    assert_error(b, 3, "backends[0].retry_on[0]", "`always` is not allowed");
    assert_error(
        b,
        5,
        "backends[0].health_check.expect_status[0]",
        "status code",
    );
    assert_error(
        b,
        5,
        "backends[0].health_check.initial_state",
        "allowed: up, down",
    );
}

/// A scratch directory with certificate files made for the test.
struct CertDir(std::path::PathBuf);

impl CertDir {
    fn new(tag: &str) -> Self {
        let d = std::env::temp_dir().join(format!("vrrplb-cfg-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        CertDir(d)
    }
    /// Writes `name` holding a certificate for `host` valid `days`, with its key or another's.
    fn bundle(&self, name: &str, host: &str, days: i64, own_key: bool) -> String {
        let mut params = rcgen::CertificateParams::new(vec![host.to_string()]).unwrap();
        params.not_after = time::OffsetDateTime::now_utc() + time::Duration::days(days);
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        let key_pem = if own_key {
            key.serialize_pem()
        } else {
            rcgen::KeyPair::generate().unwrap().serialize_pem()
        };
        let p = self.0.join(name);
        std::fs::write(&p, format!("{}{key_pem}", cert.pem())).unwrap();
        p.display().to_string()
    }
}

impl Drop for CertDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn tls_keys_reach_the_proxy_config() {
    let dir = CertDir::new("ok");
    let good = dir.bundle("site.pem", "www.example.test", 365, true);
    let text = format!(
        "{}frontends:\n  - name: tls\n    bind: [\"127.0.0.1:8443\"]\n    tls: {{ certificates: [\"{good}\"], min_version: 1.3, alpn: [\"http/1.1\"], ciphersuites: \"TLS_AES_256_GCM_SHA384: TLS_CHACHA20_POLY1305_SHA256\", tickets: false }}\n    hsts: 1y\n    h2_max_streams: 50\n    default_backend: web\n  - name: plain\n    bind: [\"127.0.0.1:8080\"]\n    redirect_https: {{ code: 301 }}\n    h2c: true\n    default_backend: web\n  - name: plain2\n    bind: [\"127.0.0.1:8081\"]\n    redirect_https: true\n    default_backend: web\nbackends:\n  - name: web\n    servers: [{{ name: a, address: \"127.0.0.1:1\" }}]\n",
        instance("")
    );
    let loaded = match parse("t.yaml", &text) {
        Ok(l) => l,
        // Until the listener terminates TLS, run (so check) refuses exactly these two.
        Err(r) => {
            let errs: Vec<String> = r.errors.iter().map(ToString::to_string).collect();
            assert_eq!(errs.len(), 3, "{errs:?}");
            assert!(
                errs.iter().all(|e| e.contains("not implemented")),
                "{errs:?}"
            );
            return;
        }
    };
    let pc = proxy_config(&loaded.config);
    let tls = pc.frontends[0].tls.as_ref().expect("tls");
    assert_eq!(tls.min_version, proxy::tls::TlsVersion::V1_3);
    assert_eq!(tls.alpn, ["http/1.1"]);
    // HAProxy's `:`-separated string; `ciphers` not given: the default order.
    assert_eq!(
        tls.ciphersuites,
        ["TLS_AES_256_GCM_SHA384", "TLS_CHACHA20_POLY1305_SHA256"]
    );
    assert_eq!(tls.ciphers, proxy::config::DEFAULT_CIPHERS);
    assert!(!tls.tickets, "tickets: false");
    assert_eq!(tls.certificates, [proxy::tls::CertSource::Pem(good.into())]);
    assert_eq!(
        pc.frontends[0].hsts,
        Some(std::time::Duration::from_secs(365 * 86400))
    );
    assert_eq!(pc.frontends[0].h2_max_streams, 50);
    let r = pc.frontends[1].redirect_https.expect("redirect");
    // The https port comes from the TLS frontend on the same address.
    assert_eq!((r.code, r.port), (301, 8443));
    assert!(pc.frontends[1].h2c && !pc.frontends[2].h2c);
    assert_eq!(pc.frontends[2].redirect_https.map(|r| r.code), Some(302));
    assert_eq!(pc.frontends[2].h2_max_streams, 100);
}

#[test]
fn cipher_suite_names_are_checked() {
    let dir = CertDir::new("suites");
    let good = dir.bundle("site.pem", "www.example.test", 365, true);
    let text = format!(
        "frontends:\n  - name: tls\n    bind: [\"127.0.0.1:8443\"]\n    tls:\n      certificates: [\"{good}\"]\n      ciphersuites: [TLS_AES_128_CCM_SHA256]\n      ciphers: \"ECDHE-RSA-AES128-GCM-SHA256:RC4-SHA\"\n  - name: tls2\n    bind: [\"127.0.0.1:8444\"]\n    tls:\n      certificates: [\"{good}\"]\n      ciphersuites: \"ECDHE-RSA-AES128-GCM-SHA256\"\n      ciphers: []\n"
    );
    assert_error(
        &text,
        6,
        "frontends[0].tls.ciphersuites",
        "`TLS_AES_128_CCM_SHA256` is not supported; supported: TLS_AES_128_GCM_SHA256",
    );
    assert_error(
        &text,
        7,
        "frontends[0].tls.ciphers",
        "`RC4-SHA` is not supported",
    );
    assert_error(
        &text,
        12,
        "frontends[1].tls.ciphersuites",
        "belongs in `ciphers`",
    );
    assert_error(
        &text,
        13,
        "frontends[1].tls.ciphers",
        "needs at least one suite",
    );

    let text = format!(
        "frontends:\n  - name: tls\n    bind: [\"127.0.0.1:8443\"]\n    tls: {{ certificates: [\"{good}\"], min_version: \"1.3\", ciphers: [ECDHE-ECDSA-AES128-GCM-SHA256] }}\n"
    );
    let warnings = match parse("t.yaml", &text) {
        Ok(l) => l.warnings,
        Err(r) => r.warnings,
    };
    assert!(
        warnings.iter().any(|w| w.path == "frontends[0].tls.ciphers"
            && w.message.contains("not used with min_version")),
        "{warnings:?}"
    );
}

#[test]
fn certificate_problems_fail_check_and_near_expiry_warns() {
    let dir = CertDir::new("bad");
    let wrong = dir.bundle("wrong.pem", "a.test", 365, false);
    let soon = dir.bundle("soon.pem", "b.test", 5, true);
    let lonely = dir.0.join("lonely.pem");
    let soon_text = std::fs::read_to_string(&soon).unwrap();
    let cert_only = &soon_text[..soon_text.find("-----BEGIN PRIVATE KEY").unwrap()];
    std::fs::write(&lonely, cert_only).unwrap();
    let absent = dir.0.join("absent.pem");
    let text = format!(
        "frontends:\n  - name: tls\n    bind: [\"127.0.0.1:8443\"]\n    tls:\n      certificates:\n        - \"{wrong}\"\n        - \"{}\"\n        - \"{}\"\n      min_version: \"1.1\"\n      alpn: [spdy/3]\n    redirect_https: true\n    h2c: true\n  - name: plain\n    bind: [\"127.0.0.1:8080\"]\n    redirect_https: {{ code: 300, port: 70000 }}\n    h2_max_streams: 0\n",
        lonely.display(),
        absent.display()
    );
    assert_error(
        &text,
        6,
        "frontends[0].tls.certificates[0]",
        "does not match",
    );
    assert_error(
        &text,
        7,
        "frontends[0].tls.certificates[1]",
        "lonely.pem.key",
    );
    assert_error(&text, 8, "frontends[0].tls.certificates[2]", "cannot read");
    assert_error(&text, 9, "frontends[0].tls.min_version", "\"1.2\", \"1.3\"");
    assert_error(&text, 10, "frontends[0].tls.alpn[0]", "`spdy/3`");
    assert_error(
        &text,
        11,
        "frontends[0].redirect_https",
        "no plain requests",
    );
    assert_error(&text, 12, "frontends[0].h2c", "h2c");
    assert_error(&text, 15, "frontends[1].redirect_https.code", "300");
    assert_error(&text, 15, "frontends[1].redirect_https.port", "70000");
    assert_error(&text, 16, "frontends[1].h2_max_streams", "out of range");

    let text = format!(
        "frontends:\n  - name: tls\n    bind: [\"127.0.0.1:8443\"]\n    tls: {{ certificates: [\"{soon}\"] }}\n"
    );
    let warnings = match parse("t.yaml", &text) {
        Ok(l) => l.warnings,
        Err(r) => r.warnings,
    };
    assert!(
        warnings
            .iter()
            .any(|w| w.path == "frontends[0].tls.certificates[0]"
                && w.message.contains("expires in")),
        "{warnings:?}"
    );
}

#[test]
fn probe_headers_are_checked() {
    let b = "backends:\n  - name: web\n    servers: [{ name: a, address: \"198.51.100.21:80\" }]\n    health_check: { kind: http, headers: { Host: x.test, \"bad name\": v, X-Ok: \"a\\x01\" } }\n";
    let errs = errors(b);
    assert!(
        errs.iter()
            .any(|e| e.contains("health_check.headers.Host: set by the probe itself")),
        "{errs:#?}"
    );
    assert!(
        errs.iter()
            .any(|e| e
                .contains("health_check.headers.bad name: `bad name` is not a valid header name")),
        "{errs:#?}"
    );
    assert!(
        errs.iter()
            .any(|e| e.contains("health_check.headers.X-Ok: control characters")),
        "{errs:#?}"
    );
    let ok = "backends:\n  - name: web\n    servers: [{ name: a, address: \"198.51.100.21:80\" }]\n    health_check: { kind: http, headers: { User-Agent: HAProxy } }\n";
    let loaded = parse("t.yaml", ok).unwrap_or_else(|r| panic!("{r}"));
    let pc = proxy_config(&loaded.config);
    let hc = pc.backends[0].health_check.as_ref().expect("health check");
    assert_eq!(
        hc.headers,
        vec![("User-Agent".to_owned(), "HAProxy".to_owned())]
    );
}

#[test]
fn tcp_mode_keys_reach_the_proxy_config() {
    let text = "frontends:\n  - name: pass\n    mode: tcp\n    bind: [\":8443\"]\n    accept_proxy: true\n    timeouts: { client: 3s }\n    routes:\n      - match: { sni: \"*.example.test\" }\n        backend: tls\n    default_backend: tls\n\
backends:\n  - name: tls\n    mode: tcp\n    balance: source\n    send_proxy: v2\n    on_marked_down: shutdown_sessions\n    servers:\n      - { name: a, address: \"127.0.0.1:443\", check_port: 80 }\n    health_check: { kind: http, port: 8080 }\n    timeouts: { tunnel: 1h }\n";
    let loaded = parse("t.yaml", text).unwrap_or_else(|r| panic!("{r}"));
    let pc = proxy_config(&loaded.config);
    let fe = &pc.frontends[0];
    assert_eq!(fe.mode, proxy::config::Mode::Tcp);
    assert!(fe.accept_proxy);
    assert_eq!(fe.inspect_timeout, std::time::Duration::from_secs(3));
    assert_eq!(
        fe.routes[0].sni,
        Some(proxy::config::HostMatch::Suffix(".example.test".into()))
    );
    let be = &pc.backends[0];
    assert_eq!(be.mode, proxy::config::Mode::Tcp);
    assert_eq!(be.send_proxy, Some(proxy::config::ProxyVersion::V2));
    assert!(be.shutdown_sessions_on_down);
    assert_eq!(be.servers[0].check_port, Some(80));
    assert_eq!(
        be.timeouts.tunnel,
        Some(std::time::Duration::from_secs(3600))
    );
    // Without a client timeout the inspection waits 5 s.
    let short = text.replace("    timeouts: { client: 3s }\n", "");
    let pc = proxy_config(&parse("t.yaml", &short).unwrap().config);
    assert_eq!(
        pc.frontends[0].inspect_timeout,
        std::time::Duration::from_secs(5)
    );
}

#[test]
fn tcp_mode_errors() {
    let route = |mode: &str, m: &str| {
        format!("frontends:\n  - name: f\n    mode: {mode}\n    bind: [\"127.0.0.1:80\"]\n    routes:\n      - match: {{ {m} }}\n        backend: b\nbackends:\n  - name: b\n    mode: {mode}\n    servers: [{{ name: a, address: \"127.0.0.1:1\" }}]\n")
    };
    assert_error(
        &route("http", "sni: a.test"),
        6,
        "frontends[0].routes[0].match.sni",
        "need `mode: tcp`",
    );
    assert_error(
        &route("tcp", "host: a.test"),
        6,
        "frontends[0].routes[0].match",
        "only on `sni`",
    );
    assert_error(
        &route("tcp", "sni: \"a b\""),
        6,
        "frontends[0].routes[0].match.sni",
        "not a host name",
    );
    let b = "backends:\n  - name: b\n    mode: tcp\n    http_mode: close\n    send_proxy: v3\n    servers: [{ name: a, address: \"127.0.0.1:1\", check_port: 0 }]\n";
    assert_error(b, 4, "backends[0].http_mode", "only allowed in http mode");
    assert_error(b, 5, "backends[0].send_proxy", "`v3` is not allowed");
    assert_error(b, 6, "backends[0].servers[0].check_port", "");
    let f = "frontends:\n  - name: f\n    mode: tcp\n    bind: [\"127.0.0.1:80\"]\n    timeouts: { http_request: 5s }\n";
    assert_error(f, 5, "frontends[0].timeouts", "tcp mode uses `client`");
}

#[test]
fn seed002_passthrough_example_is_valid_tcp() {
    let text = include_str!("../../deploy/examples/seed002-passthrough.yaml");
    let loaded = parse("seed002", text).unwrap_or_else(|r| panic!("rejected:\n{r}"));
    let pc = proxy_config(&loaded.config);
    let fe = &pc.frontends[0];
    assert_eq!(fe.mode, proxy::config::Mode::Tcp);
    assert!(fe.gated);
    assert_eq!(
        fe.routes[0].sni,
        Some(proxy::config::HostMatch::Exact("admin.example.test".into()))
    );
    let app = &pc.backends[0];
    assert_eq!(app.servers[0].check_port, Some(80));
    assert_eq!(
        app.health_check.as_ref().map(|h| h.kind),
        Some(proxy::config::CheckKind::Tcp)
    );
}

#[test]
fn ipv6_instances_need_version_3_and_one_family() {
    let v6 = |extra: &str| {
        format!(
            "vrrp_instances:\n  - name: VI_6\n    interface: eth0\n    virtual_router_id: 52\n    virtual_ipaddress: [\"2001:db8:51::100/64\"]\n{extra}"
        )
    };
    let ok = parse("t.yaml", &v6("    version: 3\n    advert_int: 100ms\n"))
        .unwrap_or_else(|r| panic!("IPv6 v3 instance rejected:\n{r}"));
    let inst = &ok.config.instances[0];
    assert!(inst.is_ipv6());
    assert_eq!(
        (
            inst.virtual_addresses[0].addr,
            inst.virtual_addresses[0].prefix_len
        ),
        ("2001:db8:51::100".parse::<std::net::IpAddr>().unwrap(), 64)
    );
    // No prefix: a host route, as /32 is for IPv4.
    let host = v6("    version: 3\n").replace("/64", "");
    assert_eq!(
        parse("t.yaml", &host).unwrap().config.instances[0].virtual_addresses[0].prefix_len,
        128
    );
    assert_error(
        &v6(""),
        5,
        "vrrp_instances[0].virtual_ipaddress[0]",
        "needs VRRPv3",
    );
    assert_error(
        &v6("    version: 3\n").replace("/64\"]", "/64\", 198.51.100.100/24]"),
        5,
        "vrrp_instances[0].virtual_ipaddress[1]",
        "one address family per instance",
    );
    assert_error(
        &v6("    version: 3\n    unicast_peers: [198.51.100.12]\n"),
        7,
        "vrrp_instances[0].unicast_peers[0]",
        "is not IPv6",
    );
    assert_error(
        &v6("    version: 3\n").replace("/64", "/129"),
        5,
        "vrrp_instances[0].virtual_ipaddress[0]",
        "0..=128",
    );
    assert_error(
        &v6("    version: 3\n").replace("2001:db8:51::100/64", "fe80::1/64"),
        5,
        "vrrp_instances[0].virtual_ipaddress[0]",
        "link-local",
    );
    // An IPv4 instance keeps its rules: IPv6 unicast peers are refused there too.
    assert_error(
        &instance("    unicast_peers: [\"2001:db8::12\"]\n"),
        6,
        "vrrp_instances[0].unicast_peers[0]",
        "is not IPv4",
    );
}

const ECMP_BOX: &str = include_str!("../../deploy/examples/ecmp-box.yaml");

#[test]
fn the_ecmp_example_announces_its_vip_and_gates_its_frontend() {
    let loaded = parse("ecmp", ECMP_BOX).unwrap_or_else(|r| panic!("rejected:\n{r}"));
    let a = &loaded.config.announces[0];
    assert_eq!(a.name, "web-vip");
    assert_eq!(a.address(), "198.51.100.200/32");
    assert_eq!(a.interface, "lo");
    assert_eq!(a.frontends, ["www"]);
    assert_eq!(a.backends, [("web".to_owned(), 1)]);
    // The frontend it names opens with it (a gated listener), though it has no `gate` key.
    let pc = translate::proxy_config(&loaded.config);
    assert!(pc.frontends[0].gated);
}

#[test]
fn announce_entries_are_checked() {
    let base = "frontends:\n  - name: www\n    bind: [\"198.51.100.200:80\"]\n    default_backend: web\n  - name: other\n    bind: [\"198.51.100.9:80\"]\n    default_backend: web\nbackends:\n  - name: web\n    servers: [{ name: w1, address: \"198.51.100.21:80\" }]\nvrrp_scripts:\n  chk: { script: /bin/true }\n";
    let with = |announce: &str| format!("{base}announce:\n{announce}");
    assert_error(
        &with("  - address: 198.51.100.200/24\n"),
        14,
        "announce[0].address",
        "/32",
    );
    assert_error(
        &with("  - address: 198.51.100.200\n    frontends: [wwww]\n"),
        15,
        "announce[0].frontends[0]",
        "did you mean `www`",
    );
    assert_error(
        &with("  - address: 198.51.100.200\n    frontends: [other]\n"),
        15,
        "announce[0].frontends[0]",
        "binds neither 198.51.100.200",
    );
    assert_error(
        &with("  - address: 198.51.100.200\n    track_backends: [{ backend: webb }]\n"),
        15,
        "announce[0].track_backends[0].backend",
        "no backend named `webb`",
    );
    assert_error(
        &with("  - address: 198.51.100.200\n    track_backends: [{ backend: web, min_up: 0 }]\n"),
        15,
        "announce[0].track_backends[0].min_up",
        "out of range",
    );
    assert_error(
        &with("  - address: 198.51.100.200\n    track_scripts: [chk_x]\n"),
        15,
        "announce[0].track_scripts[0]",
        "no vrrp_script named `chk_x`",
    );
    assert_error(
        &with("  - address: 198.51.100.200\n  - address: 198.51.100.200/32\n"),
        15,
        "announce[1].address",
        "already announced",
    );
    // A script, a backend and a frontend together are fine; the name defaults to the address.
    let ok = with("  - address: 198.51.100.200\n    frontends: [www]\n    track_backends: [{ backend: web }]\n    track_scripts: [chk]\n");
    let loaded = parse("t.yaml", &ok).unwrap_or_else(|r| panic!("rejected:\n{r}"));
    assert_eq!(loaded.config.announces[0].name, "198.51.100.200");
    assert_eq!(loaded.config.announces[0].scripts[0].name, "chk");
}

#[test]
fn handover_relay_is_on_unless_turned_off() {
    let relay = |extra: &str| {
        parse("t.yaml", &instance(extra))
            .unwrap_or_else(|r| panic!("rejected:\n{r}"))
            .config
            .instances[0]
            .handover_relay
    };
    assert!(relay(""));
    assert!(!relay("    handover_relay: false\n"));
    assert_error(
        &instance("    handover_relay: sometimes\n"),
        6,
        "vrrp_instances[0].handover_relay",
        "wrong type",
    );
}
