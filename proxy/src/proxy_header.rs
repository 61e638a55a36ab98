//! The PROXY protocol header, versions 1 and 2 (HAProxy's proxy-protocol.txt): parsed on
//! frontends with `accept_proxy`, written to servers by backends with `send_proxy`
//! (lb.md §11).
//!
//! Sans-IO: [`parse`] looks at the bytes read so far and says how many belong to the header;
//! the caller keeps the rest (the client's first bytes). v1 is one text line of at most 107
//! bytes; v2 is a 16-byte binary head, the addresses and TLVs (walked and skipped, each
//! checked to fit). Anything else, including a truncated or oversized header and addresses
//! that do not parse, is an error: the connection is closed.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// v2's fixed signature.
pub const V2_SIGNATURE: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";
/// v1: "PROXY UNKNOWN ffff:...:ffff ffff:...:ffff 65535 65535\r\n" is the longest line.
pub const V1_MAX: usize = 107;
/// v2 headers carry TLVs; ours stop at this many bytes in all (AWS, GCP and HAProxy send a few
/// dozen bytes of TLVs).
pub const V2_MAX: usize = 4096;
const V2_HEAD: usize = 16;

/// What the header says about the connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProxyHeader {
    /// The sender's own connection (v2 LOCAL, e.g. a health check): use the real addresses.
    Local,
    /// The proxy did not know the addresses (v1 UNKNOWN, v2 UNSPEC): use the real ones.
    Unknown,
    /// The client's address and the address it connected to.
    Tcp { src: SocketAddr, dst: SocketAddr },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ProxyHeaderError {
    #[error("not a PROXY protocol header")]
    NotProxy,
    #[error("PROXY v1 line longer than 107 bytes")]
    V1TooLong,
    #[error("PROXY v1 line: {0}")]
    V1Bad(&'static str),
    #[error("PROXY v2 header longer than {V2_MAX} bytes")]
    V2TooLong,
    #[error("PROXY v2 header: {0}")]
    V2Bad(&'static str),
}

/// The result of looking at the first bytes of a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Parse {
    /// Could still become a valid header: read more.
    NeedMore,
    /// A header of `len` bytes; the bytes after it belong to the client.
    Done { header: ProxyHeader, len: usize },
}

pub fn parse(buf: &[u8]) -> Result<Parse, ProxyHeaderError> {
    let sig = V2_SIGNATURE.len().min(buf.len());
    if buf[..sig] == V2_SIGNATURE[..sig] && !buf.is_empty() {
        // "\r\n" also starts no v1 header, so the two never overlap.
        return parse_v2(buf);
    }
    let v1 = b"PROXY ";
    let n = v1.len().min(buf.len());
    if buf[..n] != v1[..n] {
        return Err(ProxyHeaderError::NotProxy);
    }
    if buf.is_empty() {
        return Ok(Parse::NeedMore);
    }
    parse_v1(buf)
}

fn parse_v1(buf: &[u8]) -> Result<Parse, ProxyHeaderError> {
    use ProxyHeaderError::{V1Bad, V1TooLong};
    let window = &buf[..buf.len().min(V1_MAX)];
    // The first CR or LF ends the line: a bare LF before any CR is an error whatever follows,
    // so a header's verdict never changes as more bytes arrive (the fuzz target checks it).
    let Some(cr) = window.iter().position(|&b| b == b'\r' || b == b'\n') else {
        if buf.len() >= V1_MAX {
            return Err(V1TooLong);
        }
        return Ok(Parse::NeedMore);
    };
    if window[cr] == b'\n' {
        return Err(V1Bad("LF without CR"));
    }
    match window.get(cr + 1) {
        None if buf.len() >= V1_MAX => return Err(V1TooLong),
        None => return Ok(Parse::NeedMore),
        Some(b'\n') => {}
        Some(_) => return Err(V1Bad("CR without LF")),
    }
    let line = std::str::from_utf8(&window[..cr]).map_err(|_| V1Bad("not ASCII"))?;
    let mut fields = line.split(' ');
    fields.next(); // "PROXY"
    let header = match fields.next() {
        Some("UNKNOWN") => ProxyHeader::Unknown, // the rest of the line is ignored
        Some(proto @ ("TCP4" | "TCP6")) => {
            let mut next = || fields.next().ok_or(V1Bad("missing field"));
            let (src, dst) = (next()?, next()?);
            let (sport, dport) = (next()?, next()?);
            if fields.next().is_some() {
                return Err(V1Bad("extra field"));
            }
            let (src, dst) = if proto == "TCP4" {
                (ipv4(src)?, ipv4(dst)?)
            } else {
                (ipv6(src)?, ipv6(dst)?)
            };
            ProxyHeader::Tcp {
                src: SocketAddr::new(src, port(sport)?),
                dst: SocketAddr::new(dst, port(dport)?),
            }
        }
        _ => return Err(V1Bad("unknown protocol")),
    };
    Ok(Parse::Done {
        header,
        len: cr + 2,
    })
}

fn ipv4(s: &str) -> Result<IpAddr, ProxyHeaderError> {
    s.parse::<Ipv4Addr>()
        .map(IpAddr::V4)
        .map_err(|_| ProxyHeaderError::V1Bad("bad IPv4 address"))
}

fn ipv6(s: &str) -> Result<IpAddr, ProxyHeaderError> {
    s.parse::<Ipv6Addr>()
        .map(IpAddr::V6)
        .map_err(|_| ProxyHeaderError::V1Bad("bad IPv6 address"))
}

/// Decimal, no sign, no leading zero (the spec's form).
fn port(s: &str) -> Result<u16, ProxyHeaderError> {
    let bad = ProxyHeaderError::V1Bad("bad port");
    if s.is_empty() || s.len() > 5 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad);
    }
    if s.len() > 1 && s.starts_with('0') {
        return Err(bad);
    }
    s.parse().map_err(|_| bad)
}

fn parse_v2(buf: &[u8]) -> Result<Parse, ProxyHeaderError> {
    use ProxyHeaderError::{V2Bad, V2TooLong};
    if buf.len() < V2_HEAD {
        return Ok(Parse::NeedMore);
    }
    let ver_cmd = buf[12];
    if ver_cmd >> 4 != 2 {
        return Err(V2Bad("version is not 2"));
    }
    let local = match ver_cmd & 0x0f {
        0 => true,
        1 => false,
        _ => return Err(V2Bad("unknown command")),
    };
    let family = buf[13];
    let len = usize::from(u16::from_be_bytes([buf[14], buf[15]]));
    if V2_HEAD + len > V2_MAX {
        return Err(V2TooLong);
    }
    if buf.len() < V2_HEAD + len {
        return Ok(Parse::NeedMore);
    }
    let body = &buf[V2_HEAD..V2_HEAD + len];
    let (header, addr_len) = match family {
        // AF_UNSPEC: no addresses; whatever follows is TLVs.
        0x00 => (ProxyHeader::Unknown, 0),
        0x11 => {
            let a = body
                .get(..12)
                .ok_or(V2Bad("TCP4 block shorter than 12 bytes"))?;
            let ip = |o: usize| IpAddr::V4(Ipv4Addr::new(a[o], a[o + 1], a[o + 2], a[o + 3]));
            let port = |o: usize| u16::from_be_bytes([a[o], a[o + 1]]);
            let tcp = ProxyHeader::Tcp {
                src: SocketAddr::new(ip(0), port(8)),
                dst: SocketAddr::new(ip(4), port(10)),
            };
            (tcp, 12)
        }
        0x21 => {
            let a = body
                .get(..36)
                .ok_or(V2Bad("TCP6 block shorter than 36 bytes"))?;
            let ip = |o: usize| {
                let mut b = [0u8; 16];
                b.copy_from_slice(&a[o..o + 16]);
                IpAddr::V6(Ipv6Addr::from(b))
            };
            let port = |o: usize| u16::from_be_bytes([a[o], a[o + 1]]);
            let tcp = ProxyHeader::Tcp {
                src: SocketAddr::new(ip(0), port(32)),
                dst: SocketAddr::new(ip(16), port(34)),
            };
            (tcp, 36)
        }
        _ if local => (ProxyHeader::Local, 0),
        _ => return Err(V2Bad("unsupported address family or transport (only TCP)")),
    };
    skip_tlvs(&body[addr_len.min(body.len())..])?;
    let header = if local { ProxyHeader::Local } else { header };
    Ok(Parse::Done {
        header,
        len: V2_HEAD + len,
    })
}

/// TLVs are not used; each must still fit in the header, so a lying length is caught.
fn skip_tlvs(mut tlvs: &[u8]) -> Result<(), ProxyHeaderError> {
    while !tlvs.is_empty() {
        if tlvs.len() < 3 {
            return Err(ProxyHeaderError::V2Bad("truncated TLV"));
        }
        let len = usize::from(u16::from_be_bytes([tlvs[1], tlvs[2]]));
        tlvs = tlvs
            .get(3 + len..)
            .ok_or(ProxyHeaderError::V2Bad("TLV longer than the header"))?;
    }
    Ok(())
}

/// An IPv4 address in the form the other address needs: when one side is IPv6 both are sent
/// as IPv6 (IPv4-mapped).
fn same_family(src: SocketAddr, dst: SocketAddr) -> (SocketAddr, SocketAddr) {
    let v6 = |a: SocketAddr| match a {
        SocketAddr::V4(v4) => SocketAddr::new(IpAddr::V6(v4.ip().to_ipv6_mapped()), v4.port()),
        v6 => v6,
    };
    if src.is_ipv4() == dst.is_ipv4() {
        (src, dst)
    } else {
        (v6(src), v6(dst))
    }
}

/// `PROXY TCP4|TCP6 <src> <dst> <sport> <dport>\r\n`.
pub fn encode_v1(src: SocketAddr, dst: SocketAddr) -> Vec<u8> {
    let (src, dst) = same_family(src, dst);
    let proto = if src.is_ipv4() { "TCP4" } else { "TCP6" };
    format!(
        "PROXY {proto} {} {} {} {}\r\n",
        src.ip(),
        dst.ip(),
        src.port(),
        dst.port()
    )
    .into_bytes()
}

/// A v2 PROXY command over TCP with the two addresses and no TLV.
pub fn encode_v2(src: SocketAddr, dst: SocketAddr) -> Vec<u8> {
    let (src, dst) = same_family(src, dst);
    let mut out = Vec::with_capacity(V2_HEAD + 36);
    out.extend_from_slice(&V2_SIGNATURE);
    out.push(0x21);
    match (src.ip(), dst.ip()) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            out.extend_from_slice(&[0x11, 0, 12]);
            out.extend_from_slice(&s.octets());
            out.extend_from_slice(&d.octets());
        }
        (s, d) => {
            let v6 = |a: IpAddr| match a {
                IpAddr::V6(a) => a.octets(),
                IpAddr::V4(a) => a.to_ipv6_mapped().octets(),
            };
            out.extend_from_slice(&[0x21, 0, 36]);
            out.extend_from_slice(&v6(s));
            out.extend_from_slice(&v6(d));
        }
    }
    out.extend_from_slice(&src.port().to_be_bytes());
    out.extend_from_slice(&dst.port().to_be_bytes());
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_bare_lf_before_a_later_cr_is_refused_not_awaited() {
        // Found by the proxy_header fuzz target: the whole input waited for the LF after the
        // final CR while its first half was refused for the bare LF.
        let data = b"PROXY T\x03P4 \0\0\0\x002UIT\n!\x11\0\x14 PROXY UN43\r";
        assert_eq!(parse(data), Err(ProxyHeaderError::V1Bad("LF without CR")));
        // Before the LF it is still waiting; from the LF on, refused.
        assert_eq!(parse(&data[..16]), Ok(Parse::NeedMore));
        assert_eq!(
            parse(&data[..20]),
            Err(ProxyHeaderError::V1Bad("LF without CR"))
        );
    }

    use super::*;
    use proptest::prelude::*;

    fn sa(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn v1_tcp4_and_the_bytes_after_it() {
        let wire = b"PROXY TCP4 203.0.113.7 198.51.100.1 56324 443\r\nGET /";
        let header = ProxyHeader::Tcp {
            src: sa("203.0.113.7:56324"),
            dst: sa("198.51.100.1:443"),
        };
        assert_eq!(parse(wire), Ok(Parse::Done { header, len: 47 }));
        assert_eq!(&wire[47..], b"GET /");
    }

    #[test]
    fn v1_tcp6_unknown_and_partial() {
        let wire = b"PROXY TCP6 2001:db8::7 2001:db8::1 4000 80\r\n";
        assert!(matches!(
            parse(wire),
            Ok(Parse::Done {
                header: ProxyHeader::Tcp { .. },
                len: 44
            })
        ));
        for end in 0..wire.len() {
            assert_eq!(parse(&wire[..end]), Ok(Parse::NeedMore), "at {end}");
        }
        assert_eq!(
            parse(b"PROXY UNKNOWN whatever\r\n"),
            Ok(Parse::Done {
                header: ProxyHeader::Unknown,
                len: 24
            })
        );
    }

    #[test]
    fn v1_errors() {
        let bad: &[&[u8]] = &[
            b"GET / HTTP/1.1\r\n",
            b"PROXY TCP4 203.0.113.7 198.51.100.1 56324\r\n",
            b"PROXY TCP4 203.0.113.7 198.51.100.1 56324 443 9\r\n",
            b"PROXY TCP4 203.0.113.256 198.51.100.1 1 2\r\n",
            b"PROXY TCP4 2001:db8::1 198.51.100.1 1 2\r\n",
            b"PROXY TCP6 203.0.113.7 2001:db8::1 1 2\r\n",
            b"PROXY TCP4 203.0.113.7 198.51.100.1 65536 443\r\n",
            b"PROXY TCP4 203.0.113.7 198.51.100.1 0443 443\r\n",
            b"PROXY TCP4 203.0.113.7 198.51.100.1 +443 443\r\n",
            b"PROXY TCP4  203.0.113.7 198.51.100.1 1 2\r\n",
            b"PROXY UDP4 203.0.113.7 198.51.100.1 1 2\r\n",
            b"PROXY TCP4 203.0.113.7 198.51.100.1 1 2\n",
            b"PROXY TCP4 203.0.113.7 198.51.100.1 1 2\rX",
        ];
        for wire in bad {
            assert!(parse(wire).is_err(), "{}", String::from_utf8_lossy(wire));
        }
        let long = [b"PROXY UNKNOWN ".as_slice(), &[b'x'; 100]].concat();
        assert_eq!(parse(&long), Err(ProxyHeaderError::V1TooLong));
    }

    #[test]
    fn v2_round_trips_and_skips_tlvs() {
        for (s, d) in [
            ("203.0.113.7:56324", "198.51.100.1:443"),
            ("[2001:db8::7]:1", "[2001:db8::1]:65535"),
        ] {
            let wire = encode_v2(sa(s), sa(d));
            let header = ProxyHeader::Tcp {
                src: sa(s),
                dst: sa(d),
            };
            assert_eq!(
                parse(&wire),
                Ok(Parse::Done {
                    header,
                    len: wire.len()
                })
            );
            for end in 0..wire.len() {
                assert_eq!(parse(&wire[..end]), Ok(Parse::NeedMore));
            }
            // Add two TLVs (ALPN "h2" and an empty NOOP) and fix the length.
            let mut tlv = wire.clone();
            tlv.extend_from_slice(&[0x01, 0, 2, b'h', b'2', 0x04, 0, 0]);
            let len = (tlv.len() - 16) as u16;
            tlv[14..16].copy_from_slice(&len.to_be_bytes());
            assert_eq!(
                parse(&tlv),
                Ok(Parse::Done {
                    header,
                    len: tlv.len()
                })
            );
            // A TLV that claims more than is there.
            tlv[wire.len() + 2] = 9;
            assert!(parse(&tlv).is_err());
        }
    }

    #[test]
    fn v2_local_unspec_and_errors() {
        let mut local = V2_SIGNATURE.to_vec();
        local.extend_from_slice(&[0x20, 0x00, 0, 0]);
        assert_eq!(
            parse(&local),
            Ok(Parse::Done {
                header: ProxyHeader::Local,
                len: 16
            })
        );
        let mut unspec = V2_SIGNATURE.to_vec();
        unspec.extend_from_slice(&[0x21, 0x00, 0, 0]);
        assert_eq!(
            parse(&unspec),
            Ok(Parse::Done {
                header: ProxyHeader::Unknown,
                len: 16
            })
        );
        let mut wire = encode_v2(sa("203.0.113.7:1"), sa("198.51.100.1:2"));
        wire[12] = 0x31; // version 3
        assert!(parse(&wire).is_err());
        wire[12] = 0x22; // command 2
        assert!(parse(&wire).is_err());
        wire[12] = 0x21;
        wire[13] = 0x12; // UDP
        assert!(parse(&wire).is_err());
        wire[13] = 0x21; // TCP6 in a 12-byte block
        assert!(parse(&wire).is_err());
        wire[13] = 0x11;
        wire[14] = 0x10; // 4096+ bytes
        assert_eq!(parse(&wire), Err(ProxyHeaderError::V2TooLong));
    }

    #[test]
    fn v1_encoder_mixes_families_as_tcp6() {
        let line = encode_v1(sa("203.0.113.7:5"), sa("[2001:db8::1]:80"));
        assert_eq!(line, b"PROXY TCP6 ::ffff:203.0.113.7 2001:db8::1 5 80\r\n");
        let line = encode_v1(sa("203.0.113.7:5"), sa("198.51.100.1:80"));
        assert_eq!(line, b"PROXY TCP4 203.0.113.7 198.51.100.1 5 80\r\n");
    }

    fn any_addr() -> impl Strategy<Value = SocketAddr> {
        prop_oneof![
            (any::<[u8; 4]>(), any::<u16>())
                .prop_map(|(ip, p)| SocketAddr::new(IpAddr::from(ip), p)),
            (any::<[u8; 16]>(), any::<u16>())
                .prop_map(|(ip, p)| SocketAddr::new(IpAddr::from(ip), p)),
        ]
    }

    proptest! {
        #[test]
        fn encoders_round_trip(src in any_addr(), dst in any_addr()) {
            let (s, d) = same_family(src, dst);
            for wire in [encode_v1(src, dst), encode_v2(src, dst)] {
                prop_assert!(wire.len() <= V2_MAX);
                let header = ProxyHeader::Tcp { src: s, dst: d };
                prop_assert_eq!(parse(&wire), Ok(Parse::Done { header, len: wire.len() }));
            }
            prop_assert!(encode_v1(src, dst).len() <= V1_MAX);
        }

        #[test]
        fn never_panics(data in proptest::collection::vec(any::<u8>(), 0..600), v2 in any::<bool>()) {
            let wire = if v2 { [V2_SIGNATURE.as_slice(), &data].concat() } else { [b"PROXY ".as_slice(), &data].concat() };
            if let Ok(Parse::Done { len, .. }) = parse(&wire) {
                prop_assert!(len <= wire.len());
            }
        }
    }
}
