//! Request header operations of lb.md §8 on the client side: the `set_headers` templates,
//! plus (re-exported from upstream/fields.rs, which the server side shares) hop-by-hop removal
//! and `forwarded_for`. Pure functions on `http::HeaderMap`.
//!
//! - `HeaderTemplate::parse(&str) -> Result<HeaderTemplate, TemplateError>`: parses `"ip=%[src]:%[src_port]"` once at config time.
//! - `HeaderTemplate::render(&self, &ConnInfo) -> HeaderValue`: fills in the variables for one connection.
//! - `parse_set_header(name: &str, value: &str) -> Result<(HeaderName, HeaderTemplate), TemplateError>`: one `set_headers` entry.
//! - `apply_set_headers(&mut HeaderMap, &[(HeaderName, HeaderTemplate)], &ConnInfo)`: replaces every occurrence (or adds).

use std::fmt::{self, Write as _};
use std::net::SocketAddr;

use http::header::{HeaderMap, HeaderName, HeaderValue};

pub use crate::upstream::fields::*;

/// The connection facts `set_headers` variables can refer to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnInfo {
    /// Client (TCP peer) address.
    pub src: SocketAddr,
    /// Local address the client connected to.
    pub dst: SocketAddr,
    /// Whether the client connection is TLS.
    pub tls: bool,
}

/// Why a `set_headers` entry was rejected at config time.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    #[error("unknown variable %[{0}] (known: src, src_port, dst, dst_port, scheme)")]
    UnknownVariable(String),
    #[error("unterminated variable: '%[' without ']' in {0:?}")]
    Unterminated(String),
    #[error("{0:?} cannot appear in an HTTP header value (control character)")]
    InvalidValue(String),
    #[error("{0:?} is not a valid HTTP header name")]
    InvalidName(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Variable {
    Src,
    SrcPort,
    Dst,
    DstPort,
    Scheme,
}

impl Variable {
    fn from_name(name: &str) -> Option<Self> {
        Some(match name {
            "src" => Self::Src,
            "src_port" => Self::SrcPort,
            "dst" => Self::Dst,
            "dst_port" => Self::DstPort,
            "scheme" => Self::Scheme,
            _ => return None,
        })
    }

    fn write(self, out: &mut String, conn: &ConnInfo) {
        // Writing to a String cannot fail.
        let _ = match self {
            Self::Src => {
                let mut ip = IpText::default();
                ip.write(conn.src.ip().to_canonical());
                out.push_str(std::str::from_utf8(ip.as_bytes()).unwrap_or(""));
                Ok(())
            }
            Self::SrcPort => write!(out, "{}", conn.src.port()),
            Self::Dst => write!(out, "{}", conn.dst.ip().to_canonical()),
            Self::DstPort => write!(out, "{}", conn.dst.port()),
            Self::Scheme => {
                out.push_str(if conn.tls { "https" } else { "http" });
                Ok(())
            }
        };
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Literal(String),
    Variable(Variable),
}

/// A `set_headers` value such as `"%[src]"` or `"ip=%[src]:%[src_port]"`, parsed once.
///
/// Syntax (HAProxy's sample fetch notation, the subset we support): `%[name]` is a variable,
/// `%%` is a literal `%`, any other character (including a lone `%`) is literal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeaderTemplate {
    source: String,
    pieces: Vec<Piece>,
}

impl HeaderTemplate {
    pub fn parse(source: &str) -> Result<Self, TemplateError> {
        let mut pieces = Vec::new();
        let mut literal = String::new();
        let mut rest = source;
        while let Some(pos) = rest.find('%') {
            literal.push_str(&rest[..pos]);
            let after = &rest[pos + 1..];
            if let Some(tail) = after.strip_prefix('%') {
                literal.push('%');
                rest = tail;
            } else if let Some(inner) = after.strip_prefix('[') {
                let end = inner
                    .find(']')
                    .ok_or_else(|| TemplateError::Unterminated(source.to_owned()))?;
                let name = inner[..end].trim();
                let var = Variable::from_name(name)
                    .ok_or_else(|| TemplateError::UnknownVariable(name.to_owned()))?;
                if !literal.is_empty() {
                    pieces.push(Piece::Literal(std::mem::take(&mut literal)));
                }
                pieces.push(Piece::Variable(var));
                rest = &inner[end + 1..];
            } else {
                literal.push('%');
                rest = after;
            }
        }
        literal.push_str(rest);
        if !literal.is_empty() {
            pieces.push(Piece::Literal(literal));
        }
        for piece in &pieces {
            if let Piece::Literal(text) = piece {
                if HeaderValue::from_str(text).is_err() {
                    return Err(TemplateError::InvalidValue(source.to_owned()));
                }
            }
        }
        Ok(Self {
            source: source.to_owned(),
            pieces,
        })
    }

    /// The value for one connection. Literals were checked at parse time and variables expand to
    /// ASCII, so the value is always valid.
    pub fn render(&self, conn: &ConnInfo) -> HeaderValue {
        let mut out = String::with_capacity(self.source.len() + 32);
        for piece in &self.pieces {
            match piece {
                Piece::Literal(text) => out.push_str(text),
                Piece::Variable(var) => var.write(&mut out, conn),
            }
        }
        HeaderValue::from_str(&out).unwrap_or_else(|_| HeaderValue::from_static(""))
    }

    /// The text the template was parsed from.
    pub fn as_str(&self) -> &str {
        &self.source
    }
}

impl fmt::Display for HeaderTemplate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

/// Parses one `set_headers` entry (`X-Client-IP: "%[src]"`).
pub fn parse_set_header(
    name: &str,
    value: &str,
) -> Result<(HeaderName, HeaderTemplate), TemplateError> {
    let header_name = HeaderName::from_bytes(name.trim().as_bytes())
        .map_err(|_| TemplateError::InvalidName(name.to_owned()))?;
    Ok((header_name, HeaderTemplate::parse(value)?))
}

/// `set_headers` (HAProxy `http-request set-header`): every occurrence of each name is replaced
/// by one rendered value, or the field is added.
pub fn apply_set_headers(
    headers: &mut HeaderMap,
    set: &[(HeaderName, HeaderTemplate)],
    conn: &ConnInfo,
) {
    for (name, template) in set {
        headers.insert(name.clone(), template.render(conn));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // The header-map helpers of the server-side field tests, shared.
    use crate::upstream::fields::tests::{all, map};

    fn conn(src: &str, dst: &str, tls: bool) -> ConnInfo {
        ConnInfo {
            src: src.parse().expect("src"),
            dst: dst.parse().expect("dst"),
            tls,
        }
    }

    #[test]
    fn template_src_renders_client_ip() {
        let t = HeaderTemplate::parse("%[src]").expect("parse");
        let v = t.render(&conn("203.0.113.9:51234", "192.0.2.10:80", false));
        assert_eq!(v, "203.0.113.9");
    }

    #[test]
    fn template_mixes_literals_and_all_variables() {
        let t = HeaderTemplate::parse("ip=%[src]:%[src_port] to %[dst]:%[dst_port] via %[scheme]")
            .expect("parse");
        let v = t.render(&conn("[2001:db8::9]:40000", "[2001:db8::1]:443", true));
        assert_eq!(v, "ip=2001:db8::9:40000 to 2001:db8::1:443 via https");
        let v = t.render(&conn("10.0.1.2:33317", "10.0.0.10:80", false));
        assert_eq!(v, "ip=10.0.1.2:33317 to 10.0.0.10:80 via http");
        assert_eq!(
            t.to_string(),
            "ip=%[src]:%[src_port] to %[dst]:%[dst_port] via %[scheme]"
        );
    }

    #[test]
    fn template_percent_escapes_and_lone_percent() {
        let t = HeaderTemplate::parse("100%% of %[src_port] 5% [x]").expect("parse");
        let v = t.render(&conn("10.0.1.2:33317", "10.0.0.10:80", false));
        assert_eq!(v, "100% of 33317 5% [x]");
    }

    #[test]
    fn template_unknown_variable_is_named() {
        let err = HeaderTemplate::parse("%[src] %[hdr(host)]").expect_err("must fail");
        assert_eq!(err, TemplateError::UnknownVariable("hdr(host)".into()));
        assert!(err.to_string().contains("%[hdr(host)]"));
    }

    #[test]
    fn template_unterminated_and_control_chars_rejected() {
        assert!(matches!(
            HeaderTemplate::parse("%[src"),
            Err(TemplateError::Unterminated(_))
        ));
        assert!(matches!(
            HeaderTemplate::parse("a\r\nInjected: 1"),
            Err(TemplateError::InvalidValue(_))
        ));
    }

    #[test]
    fn set_header_name_validated() {
        assert!(parse_set_header("X-Client-IP", "%[src]").is_ok());
        assert!(matches!(
            parse_set_header("X Client", "%[src]"),
            Err(TemplateError::InvalidName(_))
        ));
    }

    #[test]
    fn apply_set_headers_replaces_every_occurrence_or_adds() {
        let mut h = map(&[
            ("x-client-ip", "6.6.6.6"),
            ("x-client-ip", "7.7.7.7"),
            ("accept", "*/*"),
        ]);
        let set = vec![
            parse_set_header("X-Client-IP", "%[src]").expect("entry"),
            parse_set_header("X-Scheme", "%[scheme]").expect("entry"),
        ];
        apply_set_headers(
            &mut h,
            &set,
            &conn("203.0.113.9:5000", "192.0.2.10:443", true),
        );
        assert_eq!(all(&h, "x-client-ip"), ["203.0.113.9"]);
        assert_eq!(all(&h, "x-scheme"), ["https"]);
        assert_eq!(all(&h, "accept"), ["*/*"]);
    }
}
