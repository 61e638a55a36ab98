//! `vrrplb import`: the seeds' keepalived.conf and haproxy.cfg (tests/fixtures/import/seed*,
//! extracted from /work/shared/seeds) and configs in the style of keepalived's and HAProxy's
//! documentation (docs-*) become YAML that `vrrplb check` accepts; every directive that was
//! not translated is on stderr with its file:line (a real line of that file) and why.

use serde_yaml::Value;
use std::path::PathBuf;
use std::process::Command;
use testkit::TempDir;

const BIN: &str = env!("CARGO_BIN_EXE_vrrplb");
const DIR: &str = "tests/fixtures/import";

struct Import {
    yaml: Value,
    notes: Vec<String>,
}

/// Runs import, checks the output with `vrrplb check`, and checks every note's file:line.
fn import(keepalived: Option<&str>, haproxy: Option<&str>) -> Import {
    // A fixture's name, or an absolute path (a file a test wrote).
    let path = |f: &str| {
        if f.starts_with('/') {
            f.to_owned()
        } else {
            format!("{DIR}/{f}")
        }
    };
    let mut cmd = Command::new(BIN);
    cmd.arg("import");
    if let Some(k) = keepalived {
        cmd.args(["--keepalived", &path(k)]);
    }
    if let Some(h) = haproxy {
        cmd.args(["--haproxy", &path(h)]);
    }
    let out = cmd.output().expect("run vrrplb import");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(0), "import failed:\n{stderr}");

    let dir = TempDir::new("ops-import");
    let file = dir.join("imported.yaml");
    std::fs::write(&file, &stdout).expect("write");
    let check = Command::new(BIN)
        .args(["check", "-c"])
        .arg(&file)
        .output()
        .expect("run vrrplb check");
    assert_eq!(
        check.status.code(),
        Some(0),
        "check refused the import:\n{}\n{stdout}",
        String::from_utf8_lossy(&check.stderr)
    );

    let notes: Vec<String> = stderr
        .lines()
        .filter_map(|l| l.strip_prefix("not translated: "))
        .map(str::to_owned)
        .collect();
    for n in &notes {
        // FILE:LINE: `directive ...`: why
        let (file, rest) = n.split_once(':').unwrap_or_else(|| panic!("{n}"));
        let (line, rest) = rest.split_once(':').unwrap_or_else(|| panic!("{n}"));
        let line: usize = line
            .parse()
            .unwrap_or_else(|_| panic!("no line number: {n}"));
        let directive = rest
            .trim_start()
            .strip_prefix('`')
            .and_then(|r| r.split('`').next())
            .unwrap_or_else(|| panic!("no directive: {n}"));
        let why = rest.rsplit_once("`: ").map(|(_, w)| w).unwrap_or("");
        assert!(!why.trim().is_empty(), "no reason: {n}");
        let text = std::fs::read_to_string(file).unwrap_or_else(|_| panic!("{file}: {n}"));
        let at = text.lines().nth(line - 1).unwrap_or_else(|| panic!("{n}"));
        let first = directive.split_whitespace().next().unwrap_or("");
        assert!(
            at.contains(first),
            "{file}:{line} is `{at}`, not the `{directive}` of {n}"
        );
    }
    println!("{stdout}{stderr}");
    Import {
        yaml: serde_yaml::from_str(&stdout).expect("YAML"),
        notes,
    }
}

fn get(v: &Value, path: &str) -> Value {
    let mut cur = v;
    for part in path.split('.') {
        cur = match part.parse::<usize>() {
            Ok(i) => &cur[i],
            Err(_) => &cur[part],
        };
    }
    cur.clone()
}

fn has_note(imp: &Import, needle: &str) -> bool {
    imp.notes.iter().any(|n| n.contains(needle))
}

#[test]
fn seed001_keepalived_and_haproxy() {
    let imp = import(Some("seed001-keepalived.conf"), Some("seed001-haproxy.cfg"));
    let y = &imp.yaml;
    // keepalived: the VRRP instance with its trackers.
    assert_eq!(get(y, "vrrp_instances.0.name"), "apache_vip");
    assert_eq!(get(y, "vrrp_instances.0.virtual_router_id"), 51);
    assert_eq!(get(y, "vrrp_instances.0.priority"), 101);
    assert_eq!(get(y, "vrrp_instances.0.nopreempt"), true);
    assert_eq!(get(y, "vrrp_instances.0.garp_master_delay"), 1);
    assert_eq!(
        get(y, "vrrp_instances.0.virtual_ipaddress.0"),
        "1.1.1.1/24 dev eth0"
    );
    assert_eq!(get(y, "vrrp_instances.0.track_interfaces.1.name"), "eth1");
    assert_eq!(get(y, "vrrp_instances.0.track_scripts.0"), "chk_apache");
    assert_eq!(
        get(y, "vrrp_scripts.chk_apache.script"),
        "killall -0 apache2"
    );
    assert_eq!(get(y, "vrrp_scripts.chk_apache.weight"), 2);
    // haproxy: path routes with the availability check and the prefix strip of reqirep.
    assert_eq!(get(y, "global.node"), "lb1");
    assert_eq!(get(y, "frontends.0.bind.0"), "127.0.0.1:8080");
    assert_eq!(get(y, "frontends.0.routes.0.match.path_prefix"), "/app1/");
    assert_eq!(get(y, "frontends.0.routes.0.backend"), "app1");
    assert_eq!(get(y, "frontends.0.routes.0.require_available"), true);
    assert_eq!(get(y, "frontends.0.routes.2.strip_prefix"), true);
    assert_eq!(get(y, "backends.0.cookie.name"), "SRVID");
    assert_eq!(get(y, "backends.0.cookie.indirect"), true);
    assert_eq!(get(y, "backends.0.servers.0.address"), "192.168.0.46:80");
    assert_eq!(get(y, "backends.0.servers.0.cookie"), "app1_1");
    assert_eq!(get(y, "backends.0.health_check.interval"), "10s");
    assert_eq!(get(y, "backends.0.health_check.fall"), 2);
    // option httpchk GET / HTTP/1.0\r\nUser-Agent:\ HAProxy
    assert_eq!(
        get(y, "backends.0.health_check.headers.User-Agent"),
        "HAProxy"
    );
    assert_eq!(get(y, "backends.0.retries"), 3);
    assert_eq!(get(y, "backends.0.redispatch"), true);
    assert!(has_note(&imp, "seed001-haproxy.cfg:10: `spread-checks 5`"));
    assert!(has_note(&imp, "seed001-haproxy.cfg:82: `option nolinger`"));
}

#[test]
fn seed000_host_routes_and_error_pages() {
    let imp = import(None, Some("seed000-haproxy.cfg"));
    let y = &imp.yaml;
    assert_eq!(get(y, "global.log.facility"), "local0");
    assert_eq!(get(y, "frontends.0.name"), "http_frontend");
    assert_eq!(get(y, "frontends.0.forwarded_for"), true);
    // Servers named by host name are translated as they are; where the name does not
    // resolve (no DNS, or not this name), `check` would refuse it, so its backend is left
    // out (and said so, with the name), and so are the routes to it.
    let translated = y["backends"]
        .as_sequence()
        .into_iter()
        .flatten()
        .any(|b| b["servers"][0]["address"].as_str() == Some("site1.testdomain.com:80"));
    if !translated {
        assert!(
            has_note(&imp, "`site1.testdomain.com` does not resolve"),
            "{:#?}",
            imp.notes
        );
        assert!(has_note(
            &imp,
            "seed000-haproxy.cfg:52: `use_backend subdomain1 if web_host1`"
        ));
    }
    assert!(has_note(&imp, "seed000-haproxy.cfg:9: `daemon`"));
}

#[test]
fn seed002_and_seed004_fragments() {
    let imp = import(None, Some("seed002-haproxy.cfg"));
    let y = &imp.yaml;
    assert_eq!(get(y, "global.log.facility"), "local2");
    assert_eq!(get(y, "backends.0.name"), "app");
    assert_eq!(get(y, "backends.0.health_check.path"), "/healthz");
    assert_eq!(get(y, "backends.0.health_check.log_changes"), true);
    // The TLS frontend is never turned into a plain one: translated whole or not at all.
    let https_in = y["frontends"]
        .as_sequence()
        .into_iter()
        .flatten()
        .find(|f| f["name"] == "https-in");
    assert!(
        https_in.is_none_or(|f| !f["tls"].is_null()),
        "https-in lost its TLS: {https_in:?}"
    );
    let imp = import(None, Some("seed004-haproxy.cfg"));
    assert!(has_note(
        &imp,
        "seed004-haproxy.cfg:2: `mode http`: outside any section"
    ));
}

#[test]
fn documentation_style_configs() {
    let imp = import(Some("docs-keepalived.conf"), Some("docs-haproxy.cfg"));
    let y = &imp.yaml;
    assert_eq!(get(y, "global.node"), "LB1");
    assert_eq!(get(y, "global.threads"), 2);
    assert_eq!(
        get(y, "vrrp_instances.0.authentication.auth_pass"),
        "s3cr3t"
    );
    assert_eq!(get(y, "vrrp_instances.0.unicast_peers.0"), "198.51.100.12");
    assert_eq!(get(y, "vrrp_instances.0.track_interfaces.0.weight"), -10);
    assert_eq!(get(y, "vrrp_instances.0.track_scripts.0.weight"), -40);
    // chk_haproxy becomes native backend tracking.
    assert!(y["vrrp_scripts"]["chk_haproxy"].is_null());
    assert_eq!(get(y, "vrrp_instances.0.track_backends.0.backend"), "web");
    assert_eq!(get(y, "vrrp_instances.0.track_backends.0.weight"), -30);
    assert!(has_note(
        &imp,
        "docs-keepalived.conf:16: `vrrp_script chk_haproxy"
    ));
    // A frontend bound to the VIP is gated by its instance.
    assert_eq!(get(y, "frontends.0.gate.0"), "VI_1");
    assert_eq!(get(y, "frontends.0.set_headers.X-Client-IP"), "%[src]");
    assert_eq!(
        get(y, "frontends.0.routes.0.match.host"),
        "api.example.test"
    );
    assert_eq!(get(y, "frontends.0.routes.1.match.path_prefix"), "/static/");
    assert_eq!(get(y, "frontends.0.default_backend"), "web");
    assert_eq!(get(y, "backends.0.balance"), "leastconn");
    assert_eq!(get(y, "backends.0.servers.0.weight"), 2);
    assert_eq!(get(y, "backends.0.servers.2.backup"), true);
    assert_eq!(get(y, "backends.0.health_check.interval"), "2s");
    // keepalived's `label` carries over (the address gets it as IFA_LABEL), without a note.
    assert_eq!(
        get(y, "vrrp_instances.0.virtual_ipaddress.0"),
        "198.51.100.100/24 dev eth0 label eth0:1"
    );
    assert!(!has_note(&imp, "docs-keepalived.conf:47:"), "label noted");
    assert!(has_note(&imp, "docs-keepalived.conf:70: `virtual_server"));
    assert!(has_note(&imp, "docs-haproxy.cfg:72: `userlist admins`"));
}

#[test]
fn access_rules_monitor_uri_and_header_rules() {
    let imp = import(None, Some("docs-rules-haproxy.cfg"));
    let y = &imp.yaml;
    let f = "docs-rules-haproxy.cfg";
    assert_eq!(get(y, "frontends.0.monitor_uri"), "/haproxy_test");
    assert_eq!(get(y, "frontends.0.del_headers.0"), "X-Forwarded-For");
    // `allow if office`: the named src ACL, both families.
    assert_eq!(get(y, "frontends.0.rules.0.match.src.0"), "203.0.113.0/24");
    assert_eq!(
        get(y, "frontends.0.rules.0.match.src.1"),
        "2001:db8:10::/48"
    );
    assert_eq!(get(y, "frontends.0.rules.0.allow"), true);
    // `deny deny_status 403 if admin_path writes`: two ACLs ANDed, one rule per path_beg.
    for (i, path) in [(1, "/admin/"), (2, "/manage/")] {
        assert_eq!(
            get(y, &format!("frontends.0.rules.{i}.match.path_prefix")),
            path
        );
        assert_eq!(
            get(y, &format!("frontends.0.rules.{i}.match.method.1")),
            "PUT"
        );
        assert_eq!(get(y, &format!("frontends.0.rules.{i}.deny")), 403);
    }
    // An anonymous ACL; the default deny status.
    assert_eq!(get(y, "frontends.0.rules.3.match.src.0"), "198.51.100.66");
    assert_eq!(get(y, "frontends.0.rules.3.deny"), 403);
    assert!(
        get(y, "frontends.0.rules.5").is_null(),
        "unless / ! rules are not guessed"
    );
    assert!(has_note(
        &imp,
        &format!("{f}:21: `http-request deny unless office`")
    ));
    assert!(has_note(
        &imp,
        &format!("{f}:22: `http-request deny if !office`")
    ));
    // A tcp-request rule in an http frontend: kept, with what differs said at its line.
    assert_eq!(get(y, "frontends.0.rules.4.match.src.0"), "203.0.113.77");
    assert!(has_note(
        &imp,
        &format!("{f}:24: `tcp-request content reject")
    ));
    assert!(has_note(
        &imp,
        &format!("{f}:25: `use_backend app if office`")
    ));
    // tcp mode: the connection rule on src; inspect-delay is not needed.
    assert_eq!(get(y, "frontends.1.rules.0.match.src.0"), "203.0.113.99");
    assert_eq!(get(y, "frontends.1.rules.0.deny"), 403);
    assert!(has_note(
        &imp,
        &format!("{f}:32: `tcp-request inspect-delay")
    ));
    // Backend set-header.
    assert_eq!(get(y, "backends.0.set_headers.X-Backend"), "app1");
    for line in [15, 16, 17, 18, 19, 20, 23, 31, 36] {
        assert!(
            !has_note(&imp, &format!("{f}:{line}:")),
            "line {line} was translated, yet noted: {:?}",
            imp.notes
        );
    }
}

#[test]
fn an_ipv6_instance_is_imported_as_vrrpv3() {
    let imp = import(Some("docs-ipv6-keepalived.conf"), None);
    let y = &imp.yaml;
    assert_eq!(get(y, "vrrp_instances.0.version"), Value::from(3));
    assert_eq!(get(y, "vrrp_instances.0.advert_int"), Value::from("100ms"));
    assert_eq!(
        get(y, "vrrp_instances.0.virtual_ipaddress.0"),
        Value::from("2001:db8:51::100/64 dev eth0")
    );
}

/// `bind … ssl crt …` options: `alpn`, `ssl-min-ver`, `ciphersuites` and `ciphers` become
/// the frontend's `tls` keys; what vrrplb does not offer (spdy/3, a CCM suite, an OpenSSL
/// cipher string) is left out with a note at its line, never a frontend dropped for it.
#[test]
fn tls_bind_options() {
    let dir = TempDir::new("import-tls");
    let pem = site_pem(&dir);
    let cfg = dir.join("haproxy.cfg");
    std::fs::write(
        &cfg,
        format!(
            "defaults\n    mode http\n    timeout client 30s\n    timeout connect 5s\n    timeout server 30s\n\
             frontend www-tls\n    bind 198.51.100.100:443 ssl crt {p} alpn http/1.1,spdy/3 ssl-min-ver TLSv1.3 ciphersuites TLS_AES_256_GCM_SHA384:TLS_AES_128_CCM_SHA256\n    default_backend web\n\
             frontend old-tls\n    bind 198.51.100.100:8443 ssl crt {p} ssl-min-ver SSLv3 ciphers EECDH+AESGCM:ECDHE-ECDSA-CHACHA20-POLY1305\n    default_backend web\n\
             frontend any-tls\n    bind 198.51.100.100:9443 ssl crt {p} ciphers EECDH+AESGCM:EDH+AESGCM\n    default_backend web\n\
             backend web\n    server web1 198.51.100.21:80 check\n",
            p = pem.display()
        ),
    )
    .expect("write");
    let file = cfg.display().to_string();
    let imp = import(None, Some(&file));
    let y = &imp.yaml;
    assert_eq!(get(y, "frontends.0.name"), "www-tls");
    assert_eq!(
        get(y, "frontends.0.tls.alpn"),
        serde_yaml::from_str::<Value>("[http/1.1]").unwrap()
    );
    assert_eq!(get(y, "frontends.0.tls.min_version"), "1.3");
    assert_eq!(
        get(y, "frontends.0.tls.ciphersuites"),
        "TLS_AES_256_GCM_SHA384"
    );
    assert!(
        has_note(&imp, ":7: `bind 198.51.100.100:443"),
        "{:?}",
        imp.notes
    );
    assert!(has_note(&imp, "spdy/3 not offered"), "{:?}", imp.notes);
    assert!(
        has_note(&imp, "TLS_AES_128_CCM_SHA256 not supported"),
        "{:?}",
        imp.notes
    );
    assert_eq!(get(y, "frontends.1.name"), "old-tls");
    assert!(get(y, "frontends.1.tls.min_version").is_null());
    assert!(has_note(&imp, "`ssl-min-ver SSLv3`"), "{:?}", imp.notes);
    // An OpenSSL cipher string is evaluated over vrrplb's suites (table order, then the
    // name given): nothing left out, so no note.
    assert_eq!(
        get(y, "frontends.1.tls.ciphers"),
        "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305"
    );
    assert!(
        !imp.notes
            .iter()
            .any(|n| n.contains(":10:") && n.contains("bind option `ciphers`")),
        "{:?}",
        imp.notes
    );
    assert_eq!(get(y, "frontends.2.name"), "any-tls");
    assert_eq!(
        get(y, "frontends.2.tls.ciphers"),
        "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384"
    );
    assert!(
        has_note(
            &imp,
            "bind option `ciphers`: `EECDH+AESGCM:EDH+AESGCM` became ECDHE-ECDSA-AES128-GCM-SHA256:"
        ),
        "{:?}",
        imp.notes
    );
    assert!(
        has_note(&imp, "; EDH+AESGCM matches nothing vrrplb offers (no DHE)"),
        "{:?}",
        imp.notes
    );
}

/// The global `ssl-default-bind-ciphers`, `-ciphersuites` and `-options` (seed 000's lines,
/// commented out there) apply to every TLS frontend whose bind line does not set its own
/// value, whether the global section comes before or after the frontends; OpenSSL cipher
/// strings become exact suite names, and what does not translate is listed at its line.
#[test]
fn global_ssl_default_bind_settings() {
    let dir = TempDir::new("import-tls-defaults");
    let pem = site_pem(&dir);
    let global = "global\n\
        \x20   ssl-default-bind-options no-sslv3 no-tlsv10 no-tlsv11 no-tls-tickets ssl-min-ver TLSv1.2 ssl-max-ver TLSv1.3 prefer-client-ciphers strict-sni\n\
        \x20   ssl-default-bind-ciphers EECDH+AESGCM:EDH+AESGCM\n\
        \x20   ssl-default-bind-ciphersuites TLS_AES_256_GCM_SHA384:TLS_AES_128_GCM_SHA256\n";
    let proxies = format!(
        "defaults\n    mode http\n    timeout client 30s\n    timeout connect 5s\n    timeout server 30s\n\
         frontend plain\n    bind 198.51.100.100:80\n    default_backend web\n\
         frontend tls-defaults\n    bind 198.51.100.100:443 ssl crt {p}\n    default_backend web\n\
         frontend tls-own\n    bind 198.51.100.100:8443 ssl crt {p} ciphers ECDHE+CHACHA20:-aRSA ssl-min-ver TLSv1.2 ciphersuites TLS_CHACHA20_POLY1305_SHA256\n    default_backend web\n\
         frontend tls-flags\n    bind 198.51.100.100:9443 ssl crt {p} no-sslv3 no-tlsv11 no-tlsv12 no-tls-tickets prefer-client-ciphers\n    default_backend web\n\
         backend web\n    server web1 198.51.100.21:80 check\n",
        p = pem.display()
    );
    for global_first in [true, false] {
        let text = if global_first {
            format!("{global}{proxies}")
        } else {
            format!("{proxies}{global}")
        };
        let line_of = |needle: &str| {
            text.lines()
                .position(|l| l.contains(needle))
                .map(|i| i + 1)
                .expect("line")
        };
        let cfg = dir.join("haproxy.cfg");
        std::fs::write(&cfg, &text).expect("write");
        let imp = import(None, Some(&cfg.display().to_string()));
        let y = &imp.yaml;
        let note = |needle: &str| {
            assert!(
                has_note(&imp, needle),
                "no note {needle:?}: {:?}",
                imp.notes
            );
        };

        // Not a TLS frontend: no defaults.
        assert_eq!(get(y, "frontends.0.name"), "plain");
        assert!(get(y, "frontends.0.tls").is_null());
        // Every default.
        assert_eq!(get(y, "frontends.1.name"), "tls-defaults");
        assert_eq!(
            get(y, "frontends.1.tls.ciphers"),
            "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384"
        );
        assert_eq!(
            get(y, "frontends.1.tls.ciphersuites"),
            "TLS_AES_256_GCM_SHA384:TLS_AES_128_GCM_SHA256"
        );
        assert_eq!(get(y, "frontends.1.tls.tickets"), false);
        assert_eq!(get(y, "frontends.1.tls.min_version"), "1.2");
        // Its own ciphers, ciphersuites and version win; tickets come from the defaults.
        assert_eq!(get(y, "frontends.2.name"), "tls-own");
        assert_eq!(
            get(y, "frontends.2.tls.ciphers"),
            "ECDHE-ECDSA-CHACHA20-POLY1305"
        );
        assert_eq!(
            get(y, "frontends.2.tls.ciphersuites"),
            "TLS_CHACHA20_POLY1305_SHA256"
        );
        assert_eq!(get(y, "frontends.2.tls.min_version"), "1.2");
        assert_eq!(get(y, "frontends.2.tls.tickets"), false);
        // Bind flags: no-tlsv12 is min_version 1.3 (so the TLS 1.2 default is not used).
        assert_eq!(get(y, "frontends.3.name"), "tls-flags");
        assert_eq!(get(y, "frontends.3.tls.min_version"), "1.3");
        assert_eq!(get(y, "frontends.3.tls.tickets"), false);
        assert!(get(y, "frontends.3.tls.ciphers").is_null());
        assert_eq!(
            get(y, "frontends.3.tls.ciphersuites"),
            "TLS_AES_256_GCM_SHA384:TLS_AES_128_GCM_SHA256"
        );

        let options = line_of("ssl-default-bind-options");
        note(&format!(":{options}: `ssl-default-bind-options no-sslv3"));
        note("option `ssl-max-ver TLSv1.3`: not supported");
        note("option `prefer-client-ciphers`: not supported: the server's suite order");
        note("option `strict-sni` is not translated");
        let ciphers = line_of("ssl-default-bind-ciphers");
        note(&format!(
            ":{ciphers}: `ssl-default-bind-ciphers EECDH+AESGCM:EDH+AESGCM`: `EECDH+AESGCM:EDH+AESGCM` became ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384; EDH+AESGCM matches nothing vrrplb offers (no DHE)"
        ));
        let flags = line_of("no-tlsv12");
        note(&format!(
            ":{flags}: `bind 198.51.100.100:9443 ssl crt {}",
            pem.display()
        ));
        note("bind option `prefer-client-ciphers`: not supported");
        // Versions below 1.2 are never offered: turning them off needs no note; all the
        // defaults were used.
        for quiet in ["no-sslv3", "no-tlsv1", "no-tls-tickets", "ssl-min-ver"] {
            assert!(
                !has_note(&imp, &format!("option `{quiet}")),
                "{:?}",
                imp.notes
            );
        }
        assert_eq!(imp.notes.len(), 5, "{:?}", imp.notes);
        assert!(!has_note(&imp, "takes this default"), "{:?}", imp.notes);
        assert!(!has_note(&imp, "ciphersuites TLS_AES"), "{:?}", imp.notes);
    }
}

/// A self-signed P-256 certificate and its key in one PEM file (HAProxy's `crt` form),
/// `site.pem` in `dir`.
fn site_pem(dir: &TempDir) -> PathBuf {
    let pem = dir.join("site.pem");
    let made = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout {p}.key -out {p}.crt -days 30 -subj /CN=www.example.test 2>/dev/null && cat {p}.crt {p}.key > {p}",
            p = pem.display()
        ))
        .status()
        .expect("openssl");
    assert!(made.success(), "openssl could not make a certificate");
    pem
}
