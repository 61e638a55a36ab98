//! OpenSSL cipher-list expressions (HAProxy's `ciphers` and `ssl-default-bind-ciphers`),
//! evaluated over the TLS 1.2 suites vrrplb offers (`proxy::tls::suites::TLS12_SUITES`): all
//! six are ECDHE with an AEAD cipher, authenticated by ECDSA or RSA.
//!
//! The syntax (OpenSSL's `ciphers(1)`): elements separated by `:` (or `,`, `;`, blanks); an
//! element is a suite name or keywords joined by `+` (the suites matching all of them); no
//! prefix adds the matching suites not yet in the list (here in vrrplb's table order), `-`
//! takes them out (a later element may add them again), `!` takes them out for good, `+`
//! moves those in the list to its end. `@STRENGTH` sorts the list by key bits, strongest
//! first (stable); `@SECLEVEL=n` has no effect here.
//!
//! Keywords follow OpenSSL 3: `SHA256` and `SHA384` select suites with an HMAC of that hash,
//! so they match none of vrrplb's (their MAC is the AEAD); `AEAD` (not an OpenSSL keyword)
//! is read as "every AEAD suite", all six.

use proxy::tls::suites::TLS12_SUITES;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Auth {
    Ecdsa,
    Rsa,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Enc {
    Aes128Gcm,
    Aes256Gcm,
    Chacha20,
}

/// A suite's name and what the keywords test.
struct Suite {
    name: &'static str,
    auth: Auth,
    enc: Enc,
}

impl Suite {
    fn bits(&self) -> u32 {
        match self.enc {
            Enc::Aes128Gcm => 128,
            Enc::Aes256Gcm | Enc::Chacha20 => 256,
        }
    }
}

/// vrrplb's TLS 1.2 suites in table order, with their properties read from the names.
fn universe() -> Vec<Suite> {
    TLS12_SUITES
        .iter()
        .map(|(name, _)| Suite {
            name,
            auth: if name.contains("-ECDSA-") {
                Auth::Ecdsa
            } else {
                Auth::Rsa
            },
            enc: if name.contains("AES128") {
                Enc::Aes128Gcm
            } else if name.contains("AES256") {
                Enc::Aes256Gcm
            } else {
                Enc::Chacha20
            },
        })
        .collect()
}

/// What one `+`-joined part of an element selects.
enum Part {
    /// The suites (as a bit per table index).
    Set(u32),
    /// A known keyword or suite that vrrplb does not offer; the reason.
    Nothing(&'static str),
    Unknown,
}

fn part(word: &str, all: &[Suite]) -> Part {
    let set = |f: &dyn Fn(&Suite) -> bool| -> Part {
        Part::Set(
            all.iter()
                .enumerate()
                .filter(|(_, s)| f(s))
                .fold(0, |m, (i, _)| m | (1 << i)),
        )
    };
    if let Some(i) = all.iter().position(|s| s.name == word) {
        return Part::Set(1 << i);
    }
    match word {
        "ALL" | "DEFAULT" | "HIGH" | "ECDHE" | "EECDH" | "kECDHE" | "kEECDH" | "ECDH" | "AEAD"
        | "TLSv1.2" => set(&|_| true),
        "aRSA" => set(&|s| s.auth == Auth::Rsa),
        "aECDSA" | "ECDSA" => set(&|s| s.auth == Auth::Ecdsa),
        "AESGCM" | "AES" => set(&|s| s.enc != Enc::Chacha20),
        "AES128" => set(&|s| s.enc == Enc::Aes128Gcm),
        "AES256" => set(&|s| s.enc == Enc::Aes256Gcm),
        "CHACHA20" => set(&|s| s.enc == Enc::Chacha20),
        "EDH" | "DHE" | "kDHE" | "kEDH" | "DHEPSK" | "kDHEPSK" => Part::Nothing("no DHE"),
        "RSA" | "kRSA" | "RSAPSK" | "kRSAPSK" => Part::Nothing("no RSA key exchange"),
        "aNULL" | "ADH" | "AECDH" => Part::Nothing("no anonymous suites"),
        "eNULL" | "NULL" | "COMPLEMENTOFALL" => Part::Nothing("no NULL encryption"),
        "MD5" | "SHA1" | "SHA" | "SHA256" | "SHA384" | "GOST94" | "GOST89MAC" => {
            Part::Nothing("no HMAC suites: all of vrrplb's are AEAD")
        }
        "RC4" | "RC2" | "3DES" | "DES" | "IDEA" | "SEED" | "EXP" | "EXPORT" | "EXPORT40"
        | "EXPORT56" | "LOW" | "MEDIUM" | "CAMELLIA" | "CAMELLIA128" | "CAMELLIA256" | "ARIA"
        | "ARIA128" | "ARIA256" | "ARIAGCM" | "AESCCM" | "AESCCM8" | "CBC" | "GOST" | "aGOST"
        | "aGOST01" | "kGOST" => Part::Nothing("only AES-GCM and ChaCha20-Poly1305"),
        "PSK" | "kPSK" | "aPSK" | "ECDHEPSK" | "kECDHEPSK" | "SRP" | "kSRP" | "aSRP" => {
            Part::Nothing("no PSK or SRP")
        }
        "kECDH" | "aECDH" | "kDH" | "aDH" | "kDHr" | "kDHd" | "DH" => {
            Part::Nothing("no static DH or ECDH")
        }
        "aDSS" | "DSS" => Part::Nothing("no DSS"),
        "SSLv2" | "SSLv3" | "TLSv1" | "TLSv1.0" => Part::Nothing("TLS 1.2 suites only"),
        "COMPLEMENTOFDEFAULT" => Part::Nothing("all of vrrplb's suites are in DEFAULT"),
        w if looks_like_a_suite(w) => Part::Nothing("not a suite vrrplb offers"),
        _ => Part::Unknown,
    }
}

/// OpenSSL's suite names are upper-case words joined by `-` (`AES128-SHA`, `DHE-RSA-...`).
fn looks_like_a_suite(w: &str) -> bool {
    w.contains('-')
        && w.chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '-' || c == '_')
}

/// An expression's result: the suites in order, and what the reader should know (elements
/// that match nothing of vrrplb's, unknown keywords).
#[derive(Debug, PartialEq, Eq)]
pub struct Evaluated {
    pub names: Vec<&'static str>,
    pub remarks: Vec<String>,
}

/// Evaluates an OpenSSL cipher list over vrrplb's TLS 1.2 suites.
pub fn evaluate(expr: &str) -> Evaluated {
    let all = universe();
    let mut list: Vec<usize> = Vec::new();
    let mut killed: u32 = 0;
    let mut remarks = Vec::new();
    for element in expr
        .split([':', ',', ';', ' ', '\t'])
        .filter(|e| !e.is_empty())
    {
        if let Some(cmd) = element.strip_prefix('@') {
            if cmd == "STRENGTH" {
                // Stable: equal strengths keep their order.
                list.sort_by_key(|&i| std::cmp::Reverse(all[i].bits()));
            } else if !cmd.starts_with("SECLEVEL=") {
                remarks.push(format!(
                    "`{element}` is not a command vrrplb knows (ignored)"
                ));
            }
            continue;
        }
        let (op, body) = match element.as_bytes()[0] {
            b @ (b'!' | b'-' | b'+') => (b, &element[1..]),
            _ => (b' ', element),
        };
        let additive = op == b' ' || op == b'+';
        let mut set: u32 = (1 << all.len()) - 1;
        let mut why: Option<String> = None;
        for w in body.split('+').filter(|w| !w.is_empty()) {
            match part(w, &all) {
                Part::Set(s) => set &= s,
                Part::Nothing(reason) => {
                    set = 0;
                    why.get_or_insert_with(|| reason.to_owned());
                }
                Part::Unknown => {
                    set = 0;
                    remarks.push(format!("`{w}` is not a cipher keyword or suite (ignored)"));
                    why = Some(String::new());
                }
            }
        }
        if body.split('+').all(str::is_empty) {
            set = 0;
        }
        match op {
            b'!' => {
                killed |= set;
                list.retain(|&i| set & (1 << i) == 0);
            }
            b'-' => list.retain(|&i| set & (1 << i) == 0),
            b'+' => {
                let (moved, kept): (Vec<usize>, Vec<usize>) =
                    list.iter().partition(|&&i| set & (1 << i) != 0);
                list = kept;
                list.extend(moved);
            }
            _ => {
                for i in 0..all.len() {
                    if set & (1 << i) != 0 && killed & (1 << i) == 0 && !list.contains(&i) {
                        list.push(i);
                    }
                }
            }
        }
        if additive && set == 0 {
            match why {
                Some(w) if w.is_empty() => {}
                Some(w) => remarks.push(format!("{element} matches nothing vrrplb offers ({w})")),
                None => remarks.push(format!("{element} matches nothing vrrplb offers")),
            }
        }
    }
    Evaluated {
        names: list.iter().map(|&i| all[i].name).collect(),
        remarks,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const E_128: &str = "ECDHE-ECDSA-AES128-GCM-SHA256";
    const R_128: &str = "ECDHE-RSA-AES128-GCM-SHA256";
    const E_256: &str = "ECDHE-ECDSA-AES256-GCM-SHA384";
    const R_256: &str = "ECDHE-RSA-AES256-GCM-SHA384";
    const E_CC: &str = "ECDHE-ECDSA-CHACHA20-POLY1305";
    const R_CC: &str = "ECDHE-RSA-CHACHA20-POLY1305";
    const TABLE: [&str; 6] = [E_128, R_128, E_256, R_256, E_CC, R_CC];

    fn names(expr: &str) -> Vec<&'static str> {
        evaluate(expr).names
    }

    #[test]
    fn high_without_anull_and_md5_is_every_suite_in_table_order() {
        let e = evaluate("HIGH:!aNULL:!MD5");
        assert_eq!(e.names, TABLE);
        // Taking out what vrrplb does not have is not worth a remark.
        assert!(e.remarks.is_empty(), "{:?}", e.remarks);
    }

    #[test]
    fn eecdh_and_edh_with_aesgcm() {
        let e = evaluate("EECDH+AESGCM:EDH+AESGCM");
        assert_eq!(e.names, [E_128, R_128, E_256, R_256]);
        assert_eq!(
            e.remarks,
            ["EDH+AESGCM matches nothing vrrplb offers (no DHE)"]
        );
    }

    #[test]
    fn minus_takes_out_and_may_be_added_again_bang_is_for_good() {
        assert_eq!(names("ECDHE+AESGCM:-aRSA"), [E_128, E_256]);
        // `-` then add again: back at the end.
        assert_eq!(
            names("ALL:-AES128:AES"),
            [E_256, R_256, E_CC, R_CC, E_128, R_128]
        );
        assert_eq!(names("ALL:!AES128:AES"), [E_256, R_256, E_CC, R_CC]);
        assert_eq!(names("!aRSA:ALL"), [E_128, E_256, E_CC]);
    }

    #[test]
    fn plus_moves_to_the_end() {
        assert_eq!(
            names("ALL:+CHACHA20"),
            [E_128, R_128, E_256, R_256, E_CC, R_CC]
        );
        assert_eq!(
            names("ALL:+AES128"),
            [E_256, R_256, E_CC, R_CC, E_128, R_128]
        );
        // `+` moves only what is in the list already.
        assert_eq!(names("AES256:+CHACHA20"), [E_256, R_256]);
    }

    #[test]
    fn nothing_left() {
        let e = evaluate("!ALL");
        assert!(e.names.is_empty());
        assert!(e.remarks.is_empty());
        let e = evaluate("RSA+AESGCM:DHE-RSA-AES128-GCM-SHA256");
        assert!(e.names.is_empty());
        assert_eq!(
            e.remarks,
            [
                "RSA+AESGCM matches nothing vrrplb offers (no RSA key exchange)",
                "DHE-RSA-AES128-GCM-SHA256 matches nothing vrrplb offers (not a suite vrrplb offers)"
            ]
        );
    }

    #[test]
    fn strength_sorts_stably_strongest_first() {
        assert_eq!(names("AES256:@STRENGTH"), [E_256, R_256]);
        assert_eq!(
            names("ALL:@STRENGTH"),
            [E_256, R_256, E_CC, R_CC, E_128, R_128]
        );
        assert_eq!(
            names("AES128:CHACHA20:@STRENGTH:@SECLEVEL=2"),
            [E_CC, R_CC, E_128, R_128]
        );
    }

    #[test]
    fn unknown_keywords_are_remarks_not_failures() {
        let e = evaluate("FOO:ECDHE+AES128:@BAR");
        assert_eq!(e.names, [E_128, R_128]);
        assert_eq!(
            e.remarks,
            [
                "`FOO` is not a cipher keyword or suite (ignored)",
                "`@BAR` is not a command vrrplb knows (ignored)"
            ]
        );
        let e = evaluate("ECDHE+Whatever");
        assert!(e.names.is_empty());
        assert_eq!(
            e.remarks,
            ["`Whatever` is not a cipher keyword or suite (ignored)"]
        );
    }

    #[test]
    fn separators_names_and_sha2_keywords() {
        assert_eq!(
            names("ECDHE+AESGCM:ECDHE+CHACHA20:!SHA1"),
            [E_128, R_128, E_256, R_256, E_CC, R_CC]
        );
        assert_eq!(
            names("AES256 CHACHA20,aECDSA"),
            [E_256, R_256, E_CC, R_CC, E_128]
        );
        assert_eq!(
            names("ECDHE-RSA-CHACHA20-POLY1305:ECDHE-RSA-AES128-GCM-SHA256+AES"),
            [R_CC, R_128]
        );
        // SHA256/SHA384 select HMAC suites in OpenSSL: not the AEAD ones.
        assert_eq!(
            names("ECDHE+AESGCM:!SHA256:!SHA384"),
            [E_128, R_128, E_256, R_256]
        );
        assert!(names("SHA384").is_empty());
        // Exact names, repeated: each once, nothing to remark.
        let e = evaluate("ECDHE-RSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256");
        assert_eq!(e.names, [R_128]);
        assert!(e.remarks.is_empty());
    }

    /// The same expressions through the installed `openssl ciphers`, restricted to vrrplb's
    /// suites: the same set (OpenSSL's own order differs: it adds in its internal order).
    #[test]
    fn the_same_suites_as_openssl() {
        let exprs = [
            "HIGH:!aNULL:!MD5",
            "EECDH+AESGCM:EDH+AESGCM",
            "ECDHE+AESGCM:-aRSA",
            "ALL:+CHACHA20",
            "AES256:@STRENGTH",
            "ECDHE+AESGCM:ECDHE+CHACHA20:!SHA1",
            "ALL:!AES128:AES",
            "ECDHE+AESGCM:!SHA256",
            "kECDHE+aECDSA:CHACHA20",
            "DEFAULT:!RSA:!3DES",
            "ECDH+AESGCM:DH+AESGCM:ECDH+AES256:DH+AES256:ECDH+AES128:DH+AES:RSA+AESGCM:RSA+AES:!aNULL:!MD5:!DSS",
        ];
        for x in exprs {
            let Ok(out) = std::process::Command::new("openssl")
                .args(["ciphers", "-tls1_2", x])
                .output()
            else {
                eprintln!("no openssl: skipped");
                return;
            };
            let text = String::from_utf8_lossy(&out.stdout);
            let mut theirs: Vec<&str> = text
                .trim()
                .split(':')
                .filter(|n| TABLE.contains(n))
                .collect();
            let mut ours = names(x);
            theirs.sort_unstable();
            ours.sort_unstable();
            assert_eq!(ours, theirs, "{x}");
        }
    }
}
