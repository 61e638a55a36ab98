//! VRRP advertisement codec and receive validation, versions 2 (RFC 3768 §5, §7.1) and 3
//! (RFC 5798 §5, §7.1, IPv4 and IPv6); vrrp.md §2–§4 and §13.
//!
//! Pure: bytes in, values out. Nothing here may panic on any input, so every read goes
//! through a bounds-checked accessor and the parser is fuzzed (`vrrp/fuzz`).

use std::collections::HashMap;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::config::InstanceConfig;
pub use crate::config::Version;

/// IP protocol number of VRRP.
pub const IPPROTO_VRRP: u8 = 112;
/// The VRRP multicast group.
pub const VRRP_GROUP: Ipv4Addr = Ipv4Addr::new(224, 0, 0, 18);
/// The VRRP multicast group of IPv6 (RFC 5798 §5.1.2.2), link scope.
pub const VRRP_GROUP_V6: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 0x12);
/// TTL of every advert sent; multicast adverts with another TTL are dropped (RFC §7.1).
pub const VRRP_TTL: u8 = 255;
/// keepalived's ToS: precedence "internetwork control".
pub const VRRP_TOS: u8 = 0xC0;
const TYPE_ADVERTISEMENT: u8 = 1;
/// Fixed part before the addresses.
const FIXED_LEN: usize = 8;
/// v2 only: the authentication data after the addresses.
const AUTH_LEN: usize = 8;
const IPV4_HEADER_LEN: usize = 20;
/// v3's Max Adver Int is 12 bits of centiseconds.
pub const V3_MAX_ADVERT_INT: u16 = 0x0fff;

const AUTH_TYPE_NONE: u8 = 0;
const AUTH_TYPE_SIMPLE: u8 = 1;
const AUTH_TYPE_AH: u8 = 2;

/// Authentication of a VRRPv2 advert. AH (type 2) is never produced; receiving it is a drop.
/// VRRPv3 has no authentication: its adverts carry [`Auth::None`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Auth {
    None,
    /// The password's first 8 bytes, zero-padded.
    Simple([u8; 8]),
}

impl Auth {
    /// The auth type code carried in the advert.
    pub fn type_code(&self) -> u8 {
        match self {
            Auth::None => AUTH_TYPE_NONE,
            Auth::Simple(_) => AUTH_TYPE_SIMPLE,
        }
    }
}

/// One VRRP advertisement (the message after the IP header).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Advertisement {
    pub version: Version,
    pub vrid: u8,
    pub priority: u8,
    /// Centiseconds for both versions. v2 carries whole seconds on the wire (this value / 100,
    /// at most 255); v3 carries 12 bits of centiseconds (at most 4095).
    pub advert_int: u16,
    /// Always [`Auth::None`] in v3.
    pub auth: Auth,
    /// Virtual addresses in config order, all of the family of the IP packet (IPv6 in v3
    /// only). At most 255 are encoded (the count is one byte).
    pub addresses: Vec<IpAddr>,
}

/// What the IP header of a received packet tells us.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpMeta {
    pub src: IpAddr,
    pub dst: IpAddr,
    /// IPv4 TTL or IPv6 Hop Limit.
    pub ttl: u8,
}

/// What an IPv6 raw socket tells about a received advert besides its payload (the kernel
/// never hands the IPv6 header over): the source from `recvmsg`'s address, the rest from
/// control messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv6Receipt {
    pub src: Ipv6Addr,
    /// From `IPV6_PKTINFO`; None when the kernel gave none.
    pub dst: Option<Ipv6Addr>,
    /// From `IPV6_HOPLIMIT`; None when the kernel gave none.
    pub hop_limit: Option<i32>,
    /// A hop-by-hop, destination options or routing header came with it.
    pub extension_headers: bool,
}

/// The header facts of an IPv6 advert (vrrp.md §13). Adverts with extension headers are
/// dropped: RFC 5798 adverts never carry any, and one in front of 112 is a way to slip past
/// filters that look at the first next header only.
pub fn ipv6_meta(r: &Ipv6Receipt) -> Result<IpMeta, DropReason> {
    if r.extension_headers {
        return Err(DropReason::ExtensionHeaders);
    }
    let Some(dst) = r.dst else {
        return Err(DropReason::BadIpHeader {
            what: "no destination address (IPV6_PKTINFO)",
        });
    };
    let ttl = match r.hop_limit.map(u8::try_from) {
        Some(Ok(h)) => h,
        _ => {
            return Err(DropReason::BadIpHeader {
                what: "no hop limit (IPV6_HOPLIMIT)",
            })
        }
    };
    Ok(IpMeta {
        src: r.src.into(),
        dst: dst.into(),
        ttl,
    })
}

/// One's-complement sum of 16-bit big-endian words, unfolded; an odd trailing byte is padded
/// with zero. A u64 cannot overflow on any packet.
fn ones_sum(bytes: &[u8]) -> u64 {
    let mut sum: u64 = 0;
    let mut words = bytes.chunks_exact(2);
    for w in &mut words {
        sum += u64::from(u16::from_be_bytes([w[0], w[1]]));
    }
    if let [last] = words.remainder() {
        sum += u64::from(*last) << 8;
    }
    sum
}

fn fold(mut sum: u64) -> u16 {
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// RFC 1071 Internet checksum: one's complement of the one's-complement sum of 16-bit
/// big-endian words; an odd trailing byte is padded with zero.
pub fn checksum(bytes: &[u8]) -> u16 {
    fold(ones_sum(bytes))
}

/// VRRPv3 checksum (RFC 5798 §5.2.8): the message plus the IPv4 pseudo-header (source,
/// destination, zero, protocol 112, VRRP length) or the IPv6 one (RFC 8200 §8.1: source,
/// destination, 32-bit length, three zeros, next header 112). Mixed families sum no header.
pub fn v3_checksum(src: IpAddr, dst: IpAddr, msg: &[u8]) -> u16 {
    let len = msg.len();
    let pseudo = match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            ones_sum(&s.octets())
                + ones_sum(&d.octets())
                + u64::from(IPPROTO_VRRP)
                + (len as u64 & 0xffff)
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            ones_sum(&s.octets())
                + ones_sum(&d.octets())
                + ones_sum(&(len as u32).to_be_bytes())
                + u64::from(IPPROTO_VRRP)
        }
        _ => 0,
    };
    fold(pseudo + ones_sum(msg))
}

/// The message length for `count` addresses of `addr_len` bytes (keepalived demands it
/// exactly).
fn message_len(version: Version, count: usize, addr_len: usize) -> usize {
    match version {
        Version::V2 => FIXED_LEN + addr_len * count + AUTH_LEN,
        Version::V3 => FIXED_LEN + addr_len * count,
    }
}

/// Bytes of one address in an advert carried over `src`'s family.
fn address_len(src: IpAddr) -> usize {
    match src {
        IpAddr::V4(_) => 4,
        IpAddr::V6(_) => 16,
    }
}

impl Advertisement {
    /// Number of addresses actually encoded (the count field is one byte).
    fn encoded_addresses(&self) -> &[IpAddr] {
        let n = self.addresses.len().min(usize::from(u8::MAX));
        &self.addresses[..n]
    }

    /// The VRRP message with its checksum filled, for v3 over the pseudo-header of no
    /// addresses (0.0.0.0 → 0.0.0.0): use [`Advertisement::encode_between`] for the wire.
    pub fn encode(&self) -> Vec<u8> {
        self.encode_between(
            IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            Ipv4Addr::UNSPECIFIED.into(),
        )
    }

    /// The VRRP message sent from `src` to `dst` (the addresses enter v3's checksum only).
    pub fn encode_between(&self, src: IpAddr, dst: IpAddr) -> Vec<u8> {
        let addrs = self.encoded_addresses();
        let mut out = Vec::with_capacity(message_len(self.version, addrs.len(), 16));
        out.push(self.version.number() << 4 | TYPE_ADVERTISEMENT);
        out.push(self.vrid);
        out.push(self.priority);
        out.push(addrs.len() as u8);
        match self.version {
            Version::V2 => {
                out.push(self.auth.type_code());
                out.push((self.advert_int / 100).min(255) as u8);
            }
            Version::V3 => {
                // Reserved nibble zero, then 12 bits of centiseconds.
                let int = self.advert_int.min(V3_MAX_ADVERT_INT);
                out.extend_from_slice(&int.to_be_bytes());
            }
        }
        out.extend_from_slice(&[0, 0]);
        for a in addrs {
            match a {
                IpAddr::V4(a) => out.extend_from_slice(&a.octets()),
                IpAddr::V6(a) => out.extend_from_slice(&a.octets()),
            }
        }
        let sum = match self.version {
            Version::V2 => {
                match self.auth {
                    Auth::None => out.extend_from_slice(&[0; AUTH_LEN]),
                    Auth::Simple(pass) => out.extend_from_slice(&pass),
                }
                checksum(&out)
            }
            Version::V3 => v3_checksum(src, dst, &out),
        };
        out[6..8].copy_from_slice(&sum.to_be_bytes());
        out
    }

    /// IPv4 header (IHL 5, ToS 0xC0, TTL 255, protocol 112, id 0, DF clear) followed by the
    /// message, for an `IP_HDRINCL` socket. The kernel refills the checksum (and the id when
    /// it is 0); we compute it anyway so the bytes are valid on their own.
    pub fn encode_ip(&self, src: Ipv4Addr, dst: Ipv4Addr) -> Vec<u8> {
        let msg = self.encode_between(src.into(), dst.into());
        let total = (IPV4_HEADER_LEN + msg.len()) as u16;
        let mut out = Vec::with_capacity(usize::from(total));
        out.push(0x45);
        out.push(VRRP_TOS);
        out.extend_from_slice(&total.to_be_bytes());
        out.extend_from_slice(&[0, 0, 0, 0]); // id 0, no flags, offset 0
        out.push(VRRP_TTL);
        out.push(IPPROTO_VRRP);
        out.extend_from_slice(&[0, 0]);
        out.extend_from_slice(&src.octets());
        out.extend_from_slice(&dst.octets());
        let sum = checksum(&out).to_be_bytes();
        out[10] = sum[0];
        out[11] = sum[1];
        out.extend_from_slice(&msg);
        out
    }

    /// Decode a VRRP message of either version (checks 2–4 of vrrp.md §4 plus the type and
    /// auth type); a v3 checksum is taken over the pseudo-header of no addresses, as
    /// [`Advertisement::encode`] makes it.
    pub fn decode(bytes: &[u8]) -> Result<Advertisement, DropReason> {
        Self::decode_between(
            bytes,
            Ipv4Addr::UNSPECIFIED.into(),
            Ipv4Addr::UNSPECIFIED.into(),
        )
    }

    /// Decode a message received from `src` to `dst` (they enter v3's checksum).
    pub fn decode_between(
        bytes: &[u8],
        src: IpAddr,
        dst: IpAddr,
    ) -> Result<Advertisement, DropReason> {
        let raw = RawAdvert::parse(bytes, None, src, dst)?;
        let auth = raw.auth()?;
        Ok(raw.into_advert(auth))
    }
}

/// Free-function form of [`Advertisement::decode`].
pub fn decode(bytes: &[u8]) -> Result<Advertisement, DropReason> {
    Advertisement::decode(bytes)
}

/// A structurally valid message whose auth type has not been interpreted yet, so that
/// [`validate`] can keep the RFC's check order (VRID before auth).
struct RawAdvert<'a> {
    version: Version,
    vrid: u8,
    priority: u8,
    /// v2 only (0 in v3).
    auth_type: u8,
    /// Centiseconds.
    advert_int: u16,
    addresses: &'a [u8],
    /// 4 (IPv4) or 16 (IPv6).
    addr_len: usize,
    auth_data: &'a [u8],
}

impl<'a> RawAdvert<'a> {
    /// `expect`: the instance's version (a mismatch is a drop); None accepts 2 and 3.
    fn parse(
        bytes: &'a [u8],
        expect: Option<Version>,
        src: IpAddr,
        dst: IpAddr,
    ) -> Result<Self, DropReason> {
        let (fixed, rest) = match bytes.split_first_chunk::<FIXED_LEN>() {
            Some(split) => split,
            None => return Err(DropReason::TooShort { got: bytes.len() }),
        };
        let [ver_type, vrid, priority, count, b4, b5, _, _] = *fixed;
        let got = ver_type >> 4;
        let version = match (Version::from_number(got), expect) {
            (None, _) => return Err(DropReason::BadVersion { got }),
            (Some(v), Some(e)) if v != e => {
                return Err(DropReason::VersionMismatch {
                    got,
                    expected: e.number(),
                })
            }
            (Some(v), _) => v,
        };
        if ver_type & 0x0f != TYPE_ADVERTISEMENT {
            return Err(DropReason::BadType {
                got: ver_type & 0x0f,
            });
        }
        // keepalived demands the exact length (vrrp.md §4 check 3).
        // VRRPv2 is IPv4 only (RFC 3768); over IPv6 only version 3 exists.
        if src.is_ipv6() && version == Version::V2 {
            return Err(DropReason::VersionMismatch {
                got,
                expected: Version::V3.number(),
            });
        }
        let addr_len = address_len(src);
        let expected = message_len(version, usize::from(count), addr_len);
        if bytes.len() < expected {
            return Err(DropReason::Truncated {
                expected,
                got: bytes.len(),
            });
        }
        if bytes.len() > expected {
            return Err(DropReason::BadLength {
                expected,
                got: bytes.len(),
            });
        }
        let (auth_type, advert_int, sum_ok) = match version {
            Version::V2 => (b4, u16::from(b5) * 100, checksum(bytes) == 0),
            // The reserved nibble is ignored on receive (RFC 5798 §5.2.5).
            Version::V3 => (
                AUTH_TYPE_NONE,
                u16::from_be_bytes([b4, b5]) & V3_MAX_ADVERT_INT,
                v3_checksum(src, dst, bytes) == 0,
            ),
        };
        if !sum_ok {
            return Err(DropReason::BadChecksum {
                version: version.number(),
            });
        }
        let Some((addresses, auth_data)) = rest.split_at_checked(addr_len * usize::from(count))
        else {
            return Err(DropReason::Truncated {
                expected,
                got: bytes.len(),
            });
        };
        Ok(RawAdvert {
            version,
            vrid,
            priority,
            auth_type,
            advert_int,
            addresses,
            addr_len,
            auth_data,
        })
    }

    fn auth(&self) -> Result<Auth, DropReason> {
        match self.auth_type {
            AUTH_TYPE_NONE => Ok(Auth::None),
            AUTH_TYPE_SIMPLE => {
                let mut pass = [0u8; AUTH_LEN];
                // Length was checked in parse; copy defensively anyway.
                for (d, s) in pass.iter_mut().zip(self.auth_data) {
                    *d = *s;
                }
                Ok(Auth::Simple(pass))
            }
            AUTH_TYPE_AH => Err(DropReason::UnsupportedAuthAh),
            got => Err(DropReason::UnknownAuthType { got }),
        }
    }

    fn address_iter(&self) -> impl Iterator<Item = IpAddr> + 'a {
        self.addresses
            .chunks_exact(self.addr_len)
            .filter_map(|c| match c.len() {
                4 => <[u8; 4]>::try_from(c).ok().map(IpAddr::from),
                16 => <[u8; 16]>::try_from(c).ok().map(IpAddr::from),
                _ => None,
            })
    }

    fn into_advert(self, auth: Auth) -> Advertisement {
        Advertisement {
            version: self.version,
            vrid: self.vrid,
            priority: self.priority,
            advert_int: self.advert_int,
            auth,
            addresses: self.address_iter().collect(),
        }
    }
}

/// Split a raw-socket read (IPv4 header included) into header facts and the VRRP message.
/// Reads IHL rather than assuming 20 bytes and requires the IP total length to equal the
/// bytes received (vrrp.md §3).
pub fn parse_ip(packet: &[u8]) -> Result<(IpMeta, &[u8]), DropReason> {
    let Some(hdr) = packet.first_chunk::<IPV4_HEADER_LEN>() else {
        return Err(DropReason::TooShort { got: packet.len() });
    };
    if hdr[0] >> 4 != 4 {
        return Err(DropReason::BadIpHeader { what: "not IPv4" });
    }
    let ihl = usize::from(hdr[0] & 0x0f) * 4;
    if ihl < IPV4_HEADER_LEN {
        return Err(DropReason::BadIpHeader {
            what: "header length below 20",
        });
    }
    let total_length = u16::from_be_bytes([hdr[2], hdr[3]]);
    if usize::from(total_length) != packet.len() {
        return Err(DropReason::IpLengthMismatch {
            total_length,
            received: packet.len(),
        });
    }
    if hdr[9] != IPPROTO_VRRP {
        return Err(DropReason::BadIpHeader {
            what: "protocol is not 112",
        });
    }
    let Some(payload) = packet.get(ihl..) else {
        return Err(DropReason::BadIpHeader {
            what: "header longer than packet",
        });
    };
    let meta = IpMeta {
        ttl: hdr[8],
        src: Ipv4Addr::new(hdr[12], hdr[13], hdr[14], hdr[15]).into(),
        dst: Ipv4Addr::new(hdr[16], hdr[17], hdr[18], hdr[19]).into(),
    };
    Ok((meta, payload))
}

/// Why a received packet was discarded. [`DropReason::key`] is stable (counter names);
/// `Display` uses keepalived's wording where vrrp.md §11 gives one (without the `(VI_1) `
/// prefix, see [`crate::logs::bad_advert`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DropReason {
    /// Fewer bytes than an IPv4 header or the fixed VRRP header.
    TooShort {
        got: usize,
    },
    BadIpHeader {
        what: &'static str,
    },
    IpLengthMismatch {
        total_length: u16,
        received: usize,
    },
    /// keepalived: a unicast instance drops multicast adverts…
    MulticastOnUnicast,
    /// …and a multicast instance drops unicast ones.
    UnicastOnMulticast,
    /// Unicast advert from an address not in `unicast_peers`.
    NotAPeer {
        src: IpAddr,
    },
    BadTtl {
        got: u8,
    },
    /// Neither 2 nor 3.
    BadVersion {
        got: u8,
    },
    /// A v2 advert on a v3 instance or the reverse (vrrp.md §13).
    VersionMismatch {
        got: u8,
        expected: u8,
    },
    /// An advert whose source is our own address (a loop, or a spoof).
    FromOurselves {
        src: IpAddr,
    },
    /// IPv6: a hop-by-hop, destination options or routing header before the advert.
    ExtensionHeaders,
    /// v3: a Max Adver Int of 0 (a backup would learn a zero Master_Down_Interval).
    ZeroInterval,
    BadType {
        got: u8,
    },
    /// Fewer bytes than 16 + 4·count.
    Truncated {
        expected: usize,
        got: usize,
    },
    /// More bytes than 16 + 4·count (keepalived wants the exact length).
    BadLength {
        expected: usize,
        got: usize,
    },
    BadChecksum {
        version: u8,
    },
    UnknownVrid {
        got: u8,
    },
    /// We are the address owner: adverts for our VRID are discarded (RFC §7.1 check 5).
    OwnerDiscard,
    /// We are the owner and the advert claims priority 255 too: a configuration error.
    OwnerConflict,
    UnsupportedAuthAh,
    UnknownAuthType {
        got: u8,
    },
    AuthTypeMismatch {
        got: u8,
        expected: u8,
    },
    BadPassword,
    AddressCountMismatch {
        got: usize,
        expected: usize,
    },
    /// One of our VIPs is missing from the advert.
    AddressMismatch {
        vrid: u8,
        missing: IpAddr,
    },
    /// v2 only (v3 backups learn the master's interval). Centiseconds.
    IntervalMismatch {
        got: u16,
        expected: u16,
    },
}

/// The kind of a [`DropReason`], without its details: the index of its counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DropKind {
    TooShort,
    BadIpHeader,
    IpLengthMismatch,
    MulticastOnUnicast,
    UnicastOnMulticast,
    NotAPeer,
    BadTtl,
    BadVersion,
    BadType,
    Truncated,
    BadLength,
    BadChecksum,
    UnknownVrid,
    OwnerDiscard,
    OwnerConflict,
    UnsupportedAuthAh,
    UnknownAuthType,
    AuthTypeMismatch,
    BadPassword,
    AddressCountMismatch,
    AddressMismatch,
    IntervalMismatch,
    VersionMismatch,
    FromOurselves,
    ZeroInterval,
    ExtensionHeaders,
}

impl DropKind {
    pub const ALL: [DropKind; 26] = [
        DropKind::TooShort,
        DropKind::BadIpHeader,
        DropKind::IpLengthMismatch,
        DropKind::MulticastOnUnicast,
        DropKind::UnicastOnMulticast,
        DropKind::NotAPeer,
        DropKind::BadTtl,
        DropKind::BadVersion,
        DropKind::BadType,
        DropKind::Truncated,
        DropKind::BadLength,
        DropKind::BadChecksum,
        DropKind::UnknownVrid,
        DropKind::OwnerDiscard,
        DropKind::OwnerConflict,
        DropKind::UnsupportedAuthAh,
        DropKind::UnknownAuthType,
        DropKind::AuthTypeMismatch,
        DropKind::BadPassword,
        DropKind::AddressCountMismatch,
        DropKind::AddressMismatch,
        DropKind::IntervalMismatch,
        DropKind::VersionMismatch,
        DropKind::FromOurselves,
        DropKind::ZeroInterval,
        DropKind::ExtensionHeaders,
    ];

    /// Stable short name, used as the counter name.
    pub fn key(self) -> &'static str {
        match self {
            DropKind::TooShort => "too_short",
            DropKind::BadIpHeader => "bad_ip_header",
            DropKind::IpLengthMismatch => "ip_length_mismatch",
            DropKind::MulticastOnUnicast => "multicast_on_unicast",
            DropKind::UnicastOnMulticast => "unicast_on_multicast",
            DropKind::NotAPeer => "not_a_peer",
            DropKind::BadTtl => "bad_ttl",
            DropKind::BadVersion => "bad_version",
            DropKind::BadType => "bad_type",
            DropKind::Truncated => "truncated",
            DropKind::BadLength => "bad_length",
            DropKind::BadChecksum => "bad_checksum",
            DropKind::UnknownVrid => "unknown_vrid",
            DropKind::OwnerDiscard => "owner_discard",
            DropKind::OwnerConflict => "owner_conflict",
            DropKind::UnsupportedAuthAh => "auth_ah",
            DropKind::UnknownAuthType => "unknown_auth_type",
            DropKind::AuthTypeMismatch => "auth_type_mismatch",
            DropKind::BadPassword => "bad_password",
            DropKind::AddressCountMismatch => "address_count_mismatch",
            DropKind::AddressMismatch => "address_mismatch",
            DropKind::IntervalMismatch => "interval_mismatch",
            DropKind::VersionMismatch => "version_mismatch",
            DropKind::FromOurselves => "from_ourselves",
            DropKind::ZeroInterval => "zero_interval",
            DropKind::ExtensionHeaders => "extension_headers",
        }
    }
}

impl DropReason {
    pub fn kind(&self) -> DropKind {
        match self {
            DropReason::TooShort { .. } => DropKind::TooShort,
            DropReason::BadIpHeader { .. } => DropKind::BadIpHeader,
            DropReason::IpLengthMismatch { .. } => DropKind::IpLengthMismatch,
            DropReason::MulticastOnUnicast => DropKind::MulticastOnUnicast,
            DropReason::UnicastOnMulticast => DropKind::UnicastOnMulticast,
            DropReason::NotAPeer { .. } => DropKind::NotAPeer,
            DropReason::BadTtl { .. } => DropKind::BadTtl,
            DropReason::BadVersion { .. } => DropKind::BadVersion,
            DropReason::BadType { .. } => DropKind::BadType,
            DropReason::Truncated { .. } => DropKind::Truncated,
            DropReason::BadLength { .. } => DropKind::BadLength,
            DropReason::BadChecksum { .. } => DropKind::BadChecksum,
            DropReason::UnknownVrid { .. } => DropKind::UnknownVrid,
            DropReason::OwnerDiscard => DropKind::OwnerDiscard,
            DropReason::OwnerConflict => DropKind::OwnerConflict,
            DropReason::UnsupportedAuthAh => DropKind::UnsupportedAuthAh,
            DropReason::UnknownAuthType { .. } => DropKind::UnknownAuthType,
            DropReason::AuthTypeMismatch { .. } => DropKind::AuthTypeMismatch,
            DropReason::BadPassword => DropKind::BadPassword,
            DropReason::AddressCountMismatch { .. } => DropKind::AddressCountMismatch,
            DropReason::AddressMismatch { .. } => DropKind::AddressMismatch,
            DropReason::IntervalMismatch { .. } => DropKind::IntervalMismatch,
            DropReason::VersionMismatch { .. } => DropKind::VersionMismatch,
            DropReason::FromOurselves { .. } => DropKind::FromOurselves,
            DropReason::ZeroInterval => DropKind::ZeroInterval,
            DropReason::ExtensionHeaders => DropKind::ExtensionHeaders,
        }
    }

    /// Stable short name, e.g. `"bad_checksum"`.
    pub fn key(&self) -> &'static str {
        self.kind().key()
    }

    /// Drops that are counted but not logged: another VRID on the same wire is normal
    /// (keepalived logs it only on request), and an owner ignoring its backups is the design.
    pub fn is_silent(&self) -> bool {
        matches!(
            self,
            DropReason::UnknownVrid { .. } | DropReason::OwnerDiscard
        )
    }
}

impl fmt::Display for DropReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DropReason::TooShort { got } => write!(f, "packet too short ({got} bytes)"),
            DropReason::BadIpHeader { what } => write!(f, "bad IP header: {what}"),
            DropReason::IpLengthMismatch {
                total_length,
                received,
            } => write!(
                f,
                "IP total length {total_length} does not match {received} bytes received"
            ),
            DropReason::MulticastOnUnicast => {
                write!(f, "received multicast advert on a unicast instance")
            }
            DropReason::UnicastOnMulticast => {
                write!(f, "received unicast advert on a multicast instance")
            }
            DropReason::NotAPeer { src } => {
                write!(
                    f,
                    "unicast advert from {src}, which is not a configured peer"
                )
            }
            DropReason::BadTtl { got } => {
                write!(f, "invalid TTL/HL. Received {got} and expect {VRRP_TTL}")
            }
            DropReason::BadVersion { got } => {
                write!(f, "wrong version. Received {got} and expect 2 or 3")
            }
            DropReason::VersionMismatch { got, expected } => {
                write!(f, "wrong version. Received {got} and expect {expected}")
            }
            DropReason::FromOurselves { src } => {
                write!(f, "advert from our own address {src}")
            }
            DropReason::ZeroInterval => {
                write!(f, "advertisement interval of 0 centiseconds is invalid")
            }
            DropReason::ExtensionHeaders => {
                write!(f, "IPv6 advert with extension headers")
            }
            DropReason::BadType { got } => write!(f, "Invalid packet type. {got}"),
            DropReason::Truncated { expected, got } => {
                write!(f, "packet truncated: {got} bytes, advert needs {expected}")
            }
            DropReason::BadLength { expected, got } => {
                write!(f, "wrong packet length: {got} bytes, expected {expected}")
            }
            DropReason::BadChecksum { version } => write!(f, "Invalid VRRPv{version} checksum"),
            DropReason::UnknownVrid { got } => write!(f, "received VRID {got}, not ours"),
            DropReason::OwnerDiscard => {
                write!(f, "address owner discards adverts for its VRID")
            }
            DropReason::OwnerConflict => write!(
                f,
                "configuration error: advert claims priority 255 but we are the address owner"
            ),
            DropReason::UnsupportedAuthAh => {
                write!(f, "received an AH (type 2) auth, which is not supported")
            }
            DropReason::UnknownAuthType { got } => write!(f, "received an unknown auth type {got}"),
            DropReason::AuthTypeMismatch { got, expected } => {
                write!(f, "received a {got} auth, expecting {expected}!")
            }
            DropReason::BadPassword => write!(f, "received an invalid passwd!"),
            DropReason::AddressCountMismatch { got, expected } => write!(
                f,
                "received an unexpected ip number count {got}, expected {expected}!"
            ),
            DropReason::AddressMismatch { vrid, missing } => write!(
                f,
                "ip address associated with VRID {vrid} not present in MASTER advert: {missing}"
            ),
            DropReason::IntervalMismatch { got, expected } => write!(
                f,
                "advertisement interval mismatch mine={} sec rcv'd={} sec",
                expected / 100,
                got / 100
            ),
        }
    }
}

impl std::error::Error for DropReason {}

/// What one instance accepts (vrrp.md §4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceiveRules {
    pub version: Version,
    pub vrid: u8,
    pub auth: Auth,
    /// Centiseconds; compared in v2 only.
    pub advert_int: u16,
    /// Our VIPs; compared with the advert's list as a set.
    pub addresses: Vec<IpAddr>,
    /// Non-empty = unicast mode: multicast adverts are dropped, the TTL is not checked, and
    /// the source must be one of these (keepalived's `check_unicast_src`, always on here).
    pub unicast_peers: Vec<IpAddr>,
    /// We are the address owner (priority 255).
    pub owner: bool,
    /// Our advert source: an advert from it is dropped (the driver sets it once known).
    pub own_address: Option<IpAddr>,
}

impl ReceiveRules {
    pub fn from_config(cfg: &InstanceConfig) -> Self {
        ReceiveRules {
            version: cfg.version,
            vrid: cfg.vrid,
            auth: cfg.auth_pass.map_or(Auth::None, Auth::Simple),
            advert_int: cfg.advert_int,
            addresses: cfg.virtual_addresses.iter().map(|v| v.addr).collect(),
            unicast_peers: cfg.unicast_peers.clone(),
            owner: cfg.priority == 255,
            own_address: cfg.unicast_src_ip,
        }
    }

    fn unicast(&self) -> bool {
        !self.unicast_peers.is_empty()
    }

    /// Check 7: the advert's address list equals ours as a set. Public so that the driver
    /// can log a mismatch in an owner's (priority 255) advert, which is processed anyway.
    pub fn address_mismatch(&self, addresses: &[IpAddr]) -> Option<DropReason> {
        if addresses.len() != self.addresses.len() {
            return Some(DropReason::AddressCountMismatch {
                got: addresses.len(),
                expected: self.addresses.len(),
            });
        }
        self.addresses
            .iter()
            .find(|ours| !addresses.contains(ours))
            .map(|missing| DropReason::AddressMismatch {
                vrid: self.vrid,
                missing: *missing,
            })
    }
}

/// Constant-time comparison of the 8 password bytes (xor-fold, no early exit).
fn password_matches(got: &[u8], expected: &[u8; 8]) -> bool {
    if got.len() != expected.len() {
        return false;
    }
    let diff = got
        .iter()
        .zip(expected)
        .fold(0u8, |acc, (a, b)| acc | (a ^ b));
    diff == 0
}

/// Apply vrrp.md §4 to a received VRRP message, in the RFC's order:
/// mode (keepalived), own source, 1 TTL, 2 version, 3 length, 4 checksum (v3: with the
/// pseudo-header), 5 VRID/owner, 6 auth (v2), 7 addresses (skipped for a priority-255
/// sender), 8 interval (v2: equal to ours; v3: non-zero, learned by the machine).
pub fn validate(
    meta: &IpMeta,
    raw_vrrp: &[u8],
    rules: &ReceiveRules,
) -> Result<Advertisement, DropReason> {
    let multicast = meta.dst.is_multicast();
    if rules.own_address == Some(meta.src) {
        return Err(DropReason::FromOurselves { src: meta.src });
    }
    if rules.unicast() {
        if multicast {
            return Err(DropReason::MulticastOnUnicast);
        }
        if !rules.unicast_peers.contains(&meta.src) {
            return Err(DropReason::NotAPeer { src: meta.src });
        }
    } else {
        if !multicast {
            return Err(DropReason::UnicastOnMulticast);
        }
        // 1. TTL: keepalived skips it in unicast mode.
        if meta.ttl != VRRP_TTL {
            return Err(DropReason::BadTtl { got: meta.ttl });
        }
    }
    // IPv6: the Hop Limit is checked in both modes (vrrp.md §13); a unicast peer on the
    // link sends 255 as well.
    if meta.src.is_ipv6() && meta.ttl != VRRP_TTL {
        return Err(DropReason::BadTtl { got: meta.ttl });
    }
    // 2–4.
    let raw = RawAdvert::parse(raw_vrrp, Some(rules.version), meta.src, meta.dst)?;
    // 5.
    if raw.vrid != rules.vrid {
        return Err(DropReason::UnknownVrid { got: raw.vrid });
    }
    if rules.owner {
        return Err(if raw.priority == 255 {
            DropReason::OwnerConflict
        } else {
            DropReason::OwnerDiscard
        });
    }
    // 6.
    let auth = raw.auth()?;
    if auth.type_code() != rules.auth.type_code() {
        return Err(DropReason::AuthTypeMismatch {
            got: auth.type_code(),
            expected: rules.auth.type_code(),
        });
    }
    if let Auth::Simple(expected) = &rules.auth {
        if !password_matches(raw.auth_data, expected) {
            return Err(DropReason::BadPassword);
        }
    }
    let advert = raw.into_advert(auth);
    // 7. An owner's advert is processed even when its list differs (RFC §7.1).
    if advert.priority != 255 {
        if let Some(reason) = rules.address_mismatch(&advert.addresses) {
            return Err(reason);
        }
    }
    // 8.
    match advert.version {
        Version::V2 if advert.advert_int != rules.advert_int => Err(DropReason::IntervalMismatch {
            got: advert.advert_int,
            expected: rules.advert_int,
        }),
        Version::V3 if advert.advert_int == 0 => Err(DropReason::ZeroInterval),
        _ => Ok(advert),
    }
}

/// Per-reason drop counters, shared between the receive task and whoever reports them.
#[derive(Debug)]
pub struct DropCounters {
    counts: [AtomicU64; DropKind::ALL.len()],
}

impl Default for DropCounters {
    fn default() -> Self {
        DropCounters {
            counts: std::array::from_fn(|_| AtomicU64::new(0)),
        }
    }
}

impl DropCounters {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn record(&self, reason: &DropReason) {
        self.counter(reason.kind()).fetch_add(1, Ordering::Relaxed);
    }

    pub fn get(&self, kind: DropKind) -> u64 {
        self.counter(kind).load(Ordering::Relaxed)
    }

    fn counter(&self, kind: DropKind) -> &AtomicU64 {
        // `DropKind` discriminants are 0..ALL.len(), matching the array.
        &self.counts[kind as usize]
    }

    /// Every counter by key, in [`DropKind::ALL`] order (zeros included).
    pub fn snapshot(&self) -> Vec<(&'static str, u64)> {
        DropKind::ALL
            .iter()
            .map(|k| (k.key(), self.get(*k)))
            .collect()
    }
}

/// Decides whether a drop is worth a log line: at most once per `interval` for each
/// (reason, source). Address-list mismatches are logged once per peer and then only counted
/// (vrrp.md §4, vrrplb choice). Memory is bounded: past `capacity` entries the oldest goes.
#[derive(Debug)]
pub struct DropLogLimiter {
    interval: Duration,
    capacity: usize,
    last: HashMap<(&'static str, IpAddr), Instant>,
    /// A cap over all sources, so adverts with spoofed sources cannot fill the log either:
    /// at most `budget` lines per interval; the rest are counted in `suppressed`.
    budget: usize,
    window_start: Option<Instant>,
    in_window: usize,
    suppressed: u64,
}

impl DropLogLimiter {
    pub const DEFAULT_CAPACITY: usize = 1024;

    pub fn new(interval: Duration) -> Self {
        Self::with_capacity(interval, Self::DEFAULT_CAPACITY)
    }

    pub fn with_capacity(interval: Duration, capacity: usize) -> Self {
        DropLogLimiter {
            interval,
            capacity: capacity.max(1),
            last: HashMap::new(),
            budget: Self::DEFAULT_BUDGET,
            window_start: None,
            in_window: 0,
            suppressed: 0,
        }
    }

    /// Lines allowed per interval over all reasons and sources.
    pub const DEFAULT_BUDGET: usize = 10;

    /// Once an interval with suppressed lines is over: how many were suppressed (to be logged
    /// as one summary line). The drops themselves are always counted in [`DropCounters`].
    pub fn take_suppressed(&mut self, now: Instant) -> Option<u64> {
        let start = self.window_start?;
        if self.suppressed == 0 || now.saturating_duration_since(start) < self.interval {
            return None;
        }
        Some(std::mem::take(&mut self.suppressed))
    }

    /// Spends one line of the global budget; false when the interval's budget is used up.
    fn spend(&mut self, now: Instant) -> bool {
        match self.window_start {
            Some(start) if now.saturating_duration_since(start) < self.interval => {}
            _ => {
                self.window_start = Some(now);
                self.in_window = 0;
            }
        }
        if self.in_window >= self.budget {
            self.suppressed += 1;
            return false;
        }
        self.in_window += 1;
        true
    }

    fn log_once(reason_key: &str) -> bool {
        reason_key == DropKind::AddressMismatch.key()
            || reason_key == DropKind::AddressCountMismatch.key()
    }

    pub fn should_log(&mut self, reason_key: &'static str, src: IpAddr, now: Instant) -> bool {
        let key = (reason_key, src);
        if let Some(last) = self.last.get_mut(&key) {
            if Self::log_once(reason_key) || now.saturating_duration_since(*last) < self.interval {
                return false;
            }
            *last = now;
            return self.spend(now);
        }
        if self.last.len() >= self.capacity {
            let oldest = self.last.iter().min_by_key(|(_, t)| **t).map(|(k, _)| *k);
            if let Some(oldest) = oldest {
                self.last.remove(&oldest);
            }
        }
        self.last.insert(key, now);
        self.spend(now)
    }

    pub fn len(&self) -> usize {
        self.last.len()
    }

    pub fn is_empty(&self) -> bool {
        self.last.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn spoofed_sources_cannot_exceed_the_global_log_budget() {
        let t0 = Instant::now();
        let mut l = DropLogLimiter::new(Duration::from_secs(1));
        let logged = (0..1000u32)
            .filter(|i| l.should_log("bad_checksum", Ipv4Addr::from(0xC633_6400 + i).into(), t0))
            .count();
        assert_eq!(logged, DropLogLimiter::DEFAULT_BUDGET);
        assert_eq!(l.take_suppressed(t0 + Duration::from_millis(500)), None);
        assert_eq!(l.take_suppressed(t0 + Duration::from_secs(1)), Some(990));
        // A new interval has a fresh budget.
        assert!(l.should_log(
            "bad_ttl",
            Ipv4Addr::new(198, 51, 100, 7).into(),
            t0 + Duration::from_secs(1)
        ));
    }

    fn hex(s: &str) -> Vec<u8> {
        s.split_whitespace()
            .map(|b| u8::from_str_radix(b, 16).expect("test vector hex"))
            .collect()
    }

    const VIP: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 100));
    const VIP2: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 101));
    const SRC: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 11);

    fn advert(priority: u8, auth: Auth, addresses: Vec<IpAddr>) -> Advertisement {
        Advertisement {
            version: Version::V2,
            vrid: 51,
            priority,
            advert_int: 100,
            auth,
            addresses,
        }
    }

    fn pass(s: &str) -> [u8; 8] {
        let mut p = [0u8; 8];
        for (d, s) in p.iter_mut().zip(s.bytes()) {
            *d = s;
        }
        p
    }

    /// The test vectors of vrrp.md §2: (advert, bytes).
    fn vectors() -> Vec<(Advertisement, Vec<u8>)> {
        vec![
            (
                advert(100, Auth::None, vec![VIP]),
                hex("21 33 64 01 00 01 b8 65 c0 00 02 64 00 00 00 00 00 00 00 00"),
            ),
            (
                advert(0, Auth::None, vec![VIP]),
                hex("21 33 00 01 00 01 1c 66 c0 00 02 64 00 00 00 00 00 00 00 00"),
            ),
            (
                advert(100, Auth::Simple(pass("s3cret")), vec![VIP]),
                hex("21 33 64 01 01 01 7b 4b c0 00 02 64 73 33 63 72 65 74 00 00"),
            ),
            (
                advert(150, Auth::None, vec![VIP, VIP2]),
                hex("21 33 96 02 00 01 c3 fe c0 00 02 64 c0 00 02 65 00 00 00 00 00 00 00 00"),
            ),
        ]
    }

    #[test]
    fn encode_matches_spec_vectors() {
        for (adv, bytes) in vectors() {
            assert_eq!(adv.encode(), bytes, "{adv:?}");
        }
    }

    #[test]
    fn decode_matches_spec_vectors() {
        for (adv, bytes) in vectors() {
            assert_eq!(decode(&bytes), Ok(adv));
        }
    }

    #[test]
    fn encode_ip_matches_spec_vector() {
        let adv = advert(100, Auth::None, vec![VIP]);
        let pkt = adv.encode_ip(SRC, VRRP_GROUP);
        let mut expected = hex("45 c0 00 28 00 00 00 00 ff 70 18 88 c0 00 02 0b e0 00 00 12");
        expected.extend(hex(
            "21 33 64 01 00 01 b8 65 c0 00 02 64 00 00 00 00 00 00 00 00",
        ));
        assert_eq!(pkt, expected);
        let (meta, msg) = parse_ip(&pkt).expect("valid packet");
        assert_eq!(
            meta,
            IpMeta {
                src: std::net::IpAddr::V4(SRC),
                dst: std::net::IpAddr::V4(VRRP_GROUP),
                ttl: 255
            }
        );
        assert_eq!(decode(msg), Ok(adv));
    }

    #[test]
    fn checksum_of_valid_message_is_zero_and_odd_length_pads() {
        let bytes = vectors()[0].1.clone();
        assert_eq!(checksum(&bytes), 0);
        // RFC 1071 example words: 0001 f203 f4f5 f6f7 -> sum ddf2, checksum 220d.
        assert_eq!(checksum(&hex("00 01 f2 03 f4 f5 f6 f7")), 0x220d);
        // A trailing odd byte counts as its high half.
        assert_eq!(checksum(&[0x12]), !0x1200);
    }

    /// An advert as keepalived 2.2 sends it: state BACKUP, priority 100, VRID 51,
    /// auth PASS "1111", two VIPs, from 198.51.100.11 to the group.
    #[test]
    fn decodes_keepalived_style_packet_with_ip_options_header() {
        let adv = Advertisement {
            version: Version::V2,
            vrid: 51,
            priority: 100,
            advert_int: 100,
            auth: Auth::Simple(pass("1111")),
            addresses: vec![
                std::net::IpAddr::V4(Ipv4Addr::new(198, 51, 100, 100)),
                Ipv4Addr::new(198, 51, 100, 101).into(),
            ],
        };
        let msg = adv.encode();
        assert_eq!(&msg[..6], &[0x21, 51, 100, 2, 1, 1]);
        assert_eq!(&msg[16..24], b"1111\0\0\0\0");
        // Header with IHL 6 (one 4-byte option: NOPs) to check IHL is honoured.
        let total = (24 + msg.len()) as u16;
        let mut pkt = vec![0x46, 0xc0];
        pkt.extend(total.to_be_bytes());
        pkt.extend([0x12, 0x34, 0x40, 0x00, 255, 112, 0, 0]);
        pkt.extend([198, 51, 100, 11, 224, 0, 0, 18, 1, 1, 1, 1]);
        pkt.extend(&msg);
        let rules = ReceiveRules {
            version: Version::V2,
            vrid: 51,
            auth: Auth::Simple(pass("1111")),
            advert_int: 100,
            addresses: vec![
                std::net::IpAddr::V4(Ipv4Addr::new(198, 51, 100, 101)),
                Ipv4Addr::new(198, 51, 100, 100).into(),
            ],
            unicast_peers: vec![],
            owner: false,
            own_address: None,
        };
        let (meta, raw) = parse_ip(&pkt).expect("ip");
        assert_eq!(meta.src, Ipv4Addr::new(198, 51, 100, 11));
        assert_eq!(validate(&meta, raw, &rules), Ok(adv));
    }

    fn rules() -> ReceiveRules {
        ReceiveRules {
            version: Version::V2,
            vrid: 51,
            auth: Auth::None,
            advert_int: 100,
            addresses: vec![VIP],
            unicast_peers: vec![],
            owner: false,
            own_address: None,
        }
    }

    fn mcast_meta() -> IpMeta {
        IpMeta {
            src: std::net::IpAddr::V4(SRC),
            dst: std::net::IpAddr::V4(VRRP_GROUP),
            ttl: 255,
        }
    }

    fn check(meta: IpMeta, msg: &[u8], rules: &ReceiveRules) -> Result<Advertisement, DropReason> {
        validate(&meta, msg, rules)
    }

    /// Re-fill the checksum after editing a message by hand.
    fn fix_checksum(msg: &mut [u8]) {
        msg[6] = 0;
        msg[7] = 0;
        let sum = checksum(msg).to_be_bytes();
        msg[6] = sum[0];
        msg[7] = sum[1];
    }

    fn good() -> Vec<u8> {
        advert(100, Auth::None, vec![VIP]).encode()
    }

    #[test]
    fn parse_ip_drop_reasons() {
        let pkt = advert(100, Auth::None, vec![VIP]).encode_ip(SRC, VRRP_GROUP);
        assert_eq!(parse_ip(&pkt[..19]), Err(DropReason::TooShort { got: 19 }));
        let mut v6 = pkt.clone();
        v6[0] = 0x65;
        assert_eq!(
            parse_ip(&v6).map(|_| ()).unwrap_err().kind(),
            DropKind::BadIpHeader
        );
        let mut small_ihl = pkt.clone();
        small_ihl[0] = 0x44;
        assert_eq!(
            parse_ip(&small_ihl).map(|_| ()).unwrap_err().kind(),
            DropKind::BadIpHeader
        );
        let mut proto = pkt.clone();
        proto[9] = 51;
        assert_eq!(
            parse_ip(&proto).map(|_| ()).unwrap_err().kind(),
            DropKind::BadIpHeader
        );
        // IHL 15 = 60 bytes of header, packet of 40: header longer than packet.
        let mut big_ihl = pkt.clone();
        big_ihl[0] = 0x4f;
        assert_eq!(
            parse_ip(&big_ihl).map(|_| ()).unwrap_err().kind(),
            DropKind::BadIpHeader
        );
        assert_eq!(
            parse_ip(&pkt[..39]),
            Err(DropReason::IpLengthMismatch {
                total_length: 40,
                received: 39
            })
        );
    }

    #[test]
    fn each_validation_check_has_its_drop_reason() {
        let r = rules();
        let m = mcast_meta();
        assert_eq!(check(m, &good(), &r).map(|a| a.priority), Ok(100));

        // 1. TTL (multicast only)
        let ttl64 = IpMeta { ttl: 64, ..m };
        assert_eq!(
            check(ttl64, &good(), &r),
            Err(DropReason::BadTtl { got: 64 })
        );
        // 2. version
        let mut v3 = good();
        v3[0] = 0x31;
        fix_checksum(&mut v3);
        assert_eq!(
            check(m, &v3, &r),
            Err(DropReason::VersionMismatch {
                got: 3,
                expected: 2
            })
        );
        let mut v4 = good();
        v4[0] = 0x41;
        fix_checksum(&mut v4);
        assert_eq!(check(m, &v4, &r), Err(DropReason::BadVersion { got: 4 }));
        // type
        let mut t2 = good();
        t2[0] = 0x22;
        fix_checksum(&mut t2);
        assert_eq!(check(m, &t2, &r), Err(DropReason::BadType { got: 2 }));
        // 3. length
        assert_eq!(
            check(m, &good()[..7], &r),
            Err(DropReason::TooShort { got: 7 })
        );
        assert_eq!(
            check(m, &good()[..19], &r),
            Err(DropReason::Truncated {
                expected: 20,
                got: 19
            })
        );
        let mut long = good();
        long.extend([0, 0]);
        assert_eq!(
            check(m, &long, &r),
            Err(DropReason::BadLength {
                expected: 20,
                got: 22
            })
        );
        // 4. checksum
        let mut bad = good();
        bad[6] ^= 1;
        assert_eq!(
            check(m, &bad, &r),
            Err(DropReason::BadChecksum { version: 2 })
        );
        // 5. VRID and owner
        let other = Advertisement {
            vrid: 52,
            ..advert(100, Auth::None, vec![VIP])
        };
        assert_eq!(
            check(m, &other.encode(), &r),
            Err(DropReason::UnknownVrid { got: 52 })
        );
        let owner = ReceiveRules {
            owner: true,
            ..rules()
        };
        assert_eq!(check(m, &good(), &owner), Err(DropReason::OwnerDiscard));
        let claims_owner = advert(255, Auth::None, vec![VIP]).encode();
        assert_eq!(
            check(m, &claims_owner, &owner),
            Err(DropReason::OwnerConflict)
        );
        // 6. auth
        let with_pass = advert(100, Auth::Simple(pass("s3cret")), vec![VIP]).encode();
        assert_eq!(
            check(m, &with_pass, &r),
            Err(DropReason::AuthTypeMismatch {
                got: 1,
                expected: 0
            })
        );
        let pass_rules = ReceiveRules {
            auth: Auth::Simple(pass("s3cret")),
            ..rules()
        };
        assert_eq!(
            check(m, &good(), &pass_rules),
            Err(DropReason::AuthTypeMismatch {
                got: 0,
                expected: 1
            })
        );
        assert!(check(m, &with_pass, &pass_rules).is_ok());
        let wrong = advert(100, Auth::Simple(pass("s3creT")), vec![VIP]).encode();
        assert_eq!(check(m, &wrong, &pass_rules), Err(DropReason::BadPassword));
        let mut ah = good();
        ah[4] = 2;
        fix_checksum(&mut ah);
        assert_eq!(check(m, &ah, &r), Err(DropReason::UnsupportedAuthAh));
        let mut t7 = good();
        t7[4] = 7;
        fix_checksum(&mut t7);
        assert_eq!(
            check(m, &t7, &r),
            Err(DropReason::UnknownAuthType { got: 7 })
        );
        // 7. addresses
        let two = advert(100, Auth::None, vec![VIP, VIP2]).encode();
        assert_eq!(
            check(m, &two, &r),
            Err(DropReason::AddressCountMismatch {
                got: 2,
                expected: 1
            })
        );
        let other_vip = advert(100, Auth::None, vec![VIP2]).encode();
        assert_eq!(
            check(m, &other_vip, &r),
            Err(DropReason::AddressMismatch {
                vrid: 51,
                missing: VIP
            })
        );
        // An owner's advert is processed despite a mismatching list.
        let owner_other = advert(255, Auth::None, vec![VIP2]).encode();
        assert_eq!(check(m, &owner_other, &r).map(|a| a.priority), Ok(255));
        // 8. interval
        let slow = Advertisement {
            advert_int: 200,
            ..advert(100, Auth::None, vec![VIP])
        };
        assert_eq!(
            check(m, &slow.encode(), &r),
            Err(DropReason::IntervalMismatch {
                got: 200,
                expected: 100
            })
        );
    }

    fn v3_advert(priority: u8, centis: u16) -> Advertisement {
        Advertisement {
            version: Version::V3,
            advert_int: centis,
            ..advert(priority, Auth::None, vec![VIP])
        }
    }

    fn v3_rules() -> ReceiveRules {
        ReceiveRules {
            version: Version::V3,
            advert_int: 10,
            ..rules()
        }
    }

    /// Computed independently (Python, RFC 1071 over the RFC 5798 §5.2.8 pseudo-header).
    #[test]
    fn v3_encode_matches_reference_bytes_with_ipv4_pseudo_header() {
        let adv = v3_advert(100, 10);
        let msg = adv.encode_between(SRC.into(), VRRP_GROUP.into());
        assert_eq!(msg, hex("31 33 64 01 00 0a 05 c2 c0 00 02 64"));
        assert_eq!(
            Advertisement::decode_between(&msg, SRC.into(), VRRP_GROUP.into()),
            Ok(adv.clone())
        );
        // The same bytes from another source fail: the pseudo-header is part of the sum.
        assert_eq!(
            Advertisement::decode_between(&msg, VIP, VRRP_GROUP.into()),
            Err(DropReason::BadChecksum { version: 3 })
        );
        let pkt = adv.encode_ip(SRC, VRRP_GROUP);
        let (meta, raw) = parse_ip(&pkt).expect("ip");
        assert_eq!(validate(&meta, raw, &v3_rules()), Ok(adv));
    }

    #[test]
    fn v3_checksum_uses_the_ipv6_pseudo_header() {
        let src: IpAddr = "fe80::1".parse().expect("v6");
        let dst: IpAddr = "ff02::12".parse().expect("v6");
        let mut msg = hex("31 33 64 01 00 0a 00 00 c0 00 02 64");
        assert_eq!(v3_checksum(src, dst, &msg), 0xaa49);
        msg[6..8].copy_from_slice(&0xaa49u16.to_be_bytes());
        assert_eq!(v3_checksum(src, dst, &msg), 0);
    }

    const LL: Ipv6Addr = Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 1);
    const LL_PEER: Ipv6Addr = Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 2);
    const VIP6: IpAddr = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x100));

    fn v6_advert(priority: u8) -> Advertisement {
        Advertisement {
            addresses: vec![VIP6],
            ..v3_advert(priority, 10)
        }
    }

    fn v6_rules() -> ReceiveRules {
        ReceiveRules {
            addresses: vec![VIP6],
            own_address: Some(LL.into()),
            ..v3_rules()
        }
    }

    fn receipt(src: Ipv6Addr, hop_limit: i32) -> Ipv6Receipt {
        Ipv6Receipt {
            src,
            dst: Some(VRRP_GROUP_V6),
            hop_limit: Some(hop_limit),
            extension_headers: false,
        }
    }

    /// Computed independently (Python, RFC 1071 over the RFC 8200 §8.1 pseudo-header):
    /// 16-byte addresses, checksum over fe80::1 -> ff02::12.
    #[test]
    fn v6_advert_matches_reference_bytes_and_validates() {
        let adv = v6_advert(100);
        let msg = adv.encode_between(LL.into(), VRRP_GROUP_V6.into());
        assert_eq!(
            msg,
            hex("31 33 64 01 00 0a 3d e9 20 01 0d b8 00 00 00 00 00 00 00 00 00 00 01 00")
        );
        let meta = ipv6_meta(&receipt(LL_PEER, 255)).expect("meta");
        // From the peer the checksum differs: re-encode as the peer would.
        let from_peer = adv.encode_between(LL_PEER.into(), VRRP_GROUP_V6.into());
        assert_eq!(validate(&meta, &from_peer, &v6_rules()), Ok(adv.clone()));
        // Our own bytes replayed from the peer's address: the pseudo-header catches it.
        assert_eq!(
            validate(&meta, &msg, &v6_rules()),
            Err(DropReason::BadChecksum { version: 3 })
        );
        // From ourselves.
        let own = ipv6_meta(&receipt(LL, 255)).expect("meta");
        assert_eq!(
            validate(&own, &msg, &v6_rules()),
            Err(DropReason::FromOurselves { src: LL.into() })
        );
    }

    #[test]
    fn v6_drops_hop_limit_extension_headers_v2_and_count_lies() {
        let adv = v6_advert(100);
        let good = adv.encode_between(LL_PEER.into(), VRRP_GROUP_V6.into());
        let rules = v6_rules();
        // Hop limit other than 255 (a forwarded or off-link advert), in both modes.
        let hl64 = ipv6_meta(&receipt(LL_PEER, 64)).expect("meta");
        assert_eq!(
            validate(&hl64, &good, &rules),
            Err(DropReason::BadTtl { got: 64 })
        );
        let uni = ReceiveRules {
            unicast_peers: vec![LL_PEER.into()],
            ..rules.clone()
        };
        let hl64_uni = IpMeta {
            dst: LL.into(),
            ..hl64
        };
        assert_eq!(
            validate(&hl64_uni, &good, &uni),
            Err(DropReason::BadTtl { got: 64 })
        );
        // Missing facts and extension headers.
        let ext = Ipv6Receipt {
            extension_headers: true,
            ..receipt(LL_PEER, 255)
        };
        assert_eq!(ipv6_meta(&ext), Err(DropReason::ExtensionHeaders));
        assert_eq!(ext_key(), "extension_headers");
        for r in [
            Ipv6Receipt {
                dst: None,
                ..receipt(LL_PEER, 255)
            },
            Ipv6Receipt {
                hop_limit: None,
                ..receipt(LL_PEER, 255)
            },
            receipt(LL_PEER, 256),
            receipt(LL_PEER, -1),
        ] {
            assert!(matches!(ipv6_meta(&r), Err(DropReason::BadIpHeader { .. })));
        }
        let meta = ipv6_meta(&receipt(LL_PEER, 255)).expect("meta");
        // A v2 message over IPv6.
        let v2 = Advertisement {
            version: Version::V2,
            advert_int: 100,
            ..adv.clone()
        }
        .encode_between(LL_PEER.into(), VRRP_GROUP_V6.into());
        assert_eq!(
            validate(&meta, &v2, &rules),
            Err(DropReason::VersionMismatch {
                got: 2,
                expected: 3
            })
        );
        // Count lies: two addresses claimed, one carried; one claimed, two carried; and an
        // IPv4-sized list under an IPv6 header.
        let mut lie = good.clone();
        lie[3] = 2;
        assert_eq!(
            validate(&meta, &lie, &rules),
            Err(DropReason::Truncated {
                expected: 40,
                got: 24
            })
        );
        let mut long = good.clone();
        long.extend_from_slice(&good[8..]);
        assert_eq!(
            validate(&meta, &long, &rules),
            Err(DropReason::BadLength {
                expected: 24,
                got: 40
            })
        );
        let v4_sized = v3_advert(100, 10).encode_between(LL_PEER.into(), VRRP_GROUP_V6.into());
        assert_eq!(
            validate(&meta, &v4_sized, &rules),
            Err(DropReason::Truncated {
                expected: 24,
                got: 12
            })
        );
        // Another VIP than ours.
        let other = Advertisement {
            addresses: vec!["2001:db8::200".parse().expect("v6")],
            ..adv
        }
        .encode_between(LL_PEER.into(), VRRP_GROUP_V6.into());
        assert_eq!(
            validate(&meta, &other, &rules),
            Err(DropReason::AddressMismatch {
                vrid: 0x33,
                missing: VIP6
            })
        );
    }

    fn ext_key() -> &'static str {
        DropReason::ExtensionHeaders.key()
    }

    #[test]
    fn v3_intervals_are_12_bit_centiseconds() {
        for cs in [1u16, 10, 100, 255, 256, 4095] {
            let msg = v3_advert(100, cs).encode();
            assert_eq!(msg[4] & 0xf0, 0, "reserved nibble");
            assert_eq!(u16::from_be_bytes([msg[4], msg[5]]), cs);
            assert_eq!(decode(&msg).map(|a| a.advert_int), Ok(cs));
        }
        // The reserved nibble is ignored on receive.
        let mut msg = v3_advert(100, 10).encode();
        msg[4] |= 0xf0;
        fix_v3(&mut msg);
        assert_eq!(decode(&msg).map(|a| a.advert_int), Ok(10));
        // v2 carries whole seconds.
        let v2 = advert(100, Auth::None, vec![VIP]).encode();
        assert_eq!(v2[5], 1);
    }

    fn fix_v3(msg: &mut [u8]) {
        msg[6] = 0;
        msg[7] = 0;
        let unspec = IpAddr::V4(Ipv4Addr::UNSPECIFIED);
        let sum = v3_checksum(unspec, unspec, msg).to_be_bytes();
        msg[6..8].copy_from_slice(&sum);
    }

    #[test]
    fn v3_validation_drops_by_reason_and_accepts_another_interval() {
        let r = v3_rules();
        let m = mcast_meta();
        let wire = |a: &Advertisement| a.encode_between(SRC.into(), VRRP_GROUP.into());
        // A backup learns the master's interval: 1 s on a 100 ms instance is valid.
        assert_eq!(
            check(m, &wire(&v3_advert(100, 100)), &r).map(|a| a.advert_int),
            Ok(100)
        );
        assert_eq!(
            check(m, &wire(&v3_advert(100, 0)), &r),
            Err(DropReason::ZeroInterval)
        );
        // v2 on v3 and v3 on v2: version mismatch, counted apart from unknown versions.
        assert_eq!(
            check(m, &good(), &r),
            Err(DropReason::VersionMismatch {
                got: 2,
                expected: 3
            })
        );
        assert_eq!(
            check(m, &wire(&v3_advert(100, 10)), &rules()),
            Err(DropReason::VersionMismatch {
                got: 3,
                expected: 2
            })
        );
        // v3 length is 8 + 4n (no auth data): the v2 tail is a length error.
        let mut long = wire(&v3_advert(100, 10));
        long.extend([0; 8]);
        assert_eq!(
            check(m, &long, &r),
            Err(DropReason::BadLength {
                expected: 12,
                got: 20
            })
        );
        let ttl = IpMeta { ttl: 254, ..m };
        assert_eq!(
            check(ttl, &wire(&v3_advert(100, 10)), &r),
            Err(DropReason::BadTtl { got: 254 })
        );
        let mut bad = wire(&v3_advert(100, 10));
        bad[7] ^= 4;
        assert_eq!(
            check(m, &bad, &r),
            Err(DropReason::BadChecksum { version: 3 })
        );
        let lie = Advertisement {
            addresses: vec![VIP, VIP2],
            ..v3_advert(100, 10)
        };
        assert_eq!(
            check(m, &wire(&lie), &r).unwrap_err().kind(),
            DropKind::AddressCountMismatch
        );
        let mine = ReceiveRules {
            own_address: Some(std::net::IpAddr::V4(SRC)),
            ..v3_rules()
        };
        assert_eq!(
            check(m, &wire(&v3_advert(100, 10)), &mine),
            Err(DropReason::FromOurselves {
                src: std::net::IpAddr::V4(SRC)
            })
        );
    }

    #[test]
    fn address_list_is_compared_as_a_set() {
        let r = ReceiveRules {
            addresses: vec![VIP, VIP2],
            ..rules()
        };
        let reversed = advert(100, Auth::None, vec![VIP2, VIP]).encode();
        assert!(check(mcast_meta(), &reversed, &r).is_ok());
    }

    #[test]
    fn unicast_mode_checks() {
        let peer = Ipv4Addr::new(198, 51, 100, 12);
        let r = ReceiveRules {
            unicast_peers: vec![std::net::IpAddr::V4(peer)],
            ..rules()
        };
        let uni = IpMeta {
            src: std::net::IpAddr::V4(peer),
            dst: std::net::IpAddr::V4(Ipv4Addr::new(198, 51, 100, 11)),
            ttl: 64,
        };
        // TTL is not checked in unicast mode.
        assert!(check(uni, &good(), &r).is_ok());
        assert_eq!(
            check(
                IpMeta {
                    src: std::net::IpAddr::V4(peer),
                    ..mcast_meta()
                },
                &good(),
                &r
            ),
            Err(DropReason::MulticastOnUnicast)
        );
        let stranger = Ipv4Addr::new(198, 51, 100, 99);
        assert_eq!(
            check(
                IpMeta {
                    src: std::net::IpAddr::V4(stranger),
                    ..uni
                },
                &good(),
                &r
            ),
            Err(DropReason::NotAPeer {
                src: std::net::IpAddr::V4(stranger)
            })
        );
        assert_eq!(
            check(uni, &good(), &rules()),
            Err(DropReason::UnicastOnMulticast)
        );
    }

    #[test]
    fn validation_order_follows_rfc() {
        // Bad TTL and bad checksum: TTL (check 1) wins.
        let mut bad = good();
        bad[6] ^= 0xff;
        let ttl1 = IpMeta {
            ttl: 1,
            ..mcast_meta()
        };
        assert_eq!(
            check(ttl1, &bad, &rules()),
            Err(DropReason::BadTtl { got: 1 })
        );
        // Unknown VRID with AH auth: the VRID check (5) comes before auth (6).
        let mut ah = Advertisement {
            vrid: 9,
            ..advert(100, Auth::None, vec![VIP])
        }
        .encode();
        ah[4] = 2;
        fix_checksum(&mut ah);
        assert_eq!(
            check(mcast_meta(), &ah, &rules()),
            Err(DropReason::UnknownVrid { got: 9 })
        );
        // Wrong addresses and wrong interval: addresses (7) first.
        let both = Advertisement {
            advert_int: 300,
            ..advert(100, Auth::None, vec![VIP2])
        };
        assert_eq!(
            check(mcast_meta(), &both.encode(), &rules())
                .unwrap_err()
                .kind(),
            DropKind::AddressMismatch
        );
    }

    #[test]
    fn password_compare_checks_all_eight_bytes() {
        let p = pass("abcdefgh");
        assert!(password_matches(b"abcdefgh", &p));
        assert!(!password_matches(b"abcdefgX", &p));
        assert!(!password_matches(b"Xbcdefgh", &p));
        assert!(!password_matches(b"abcdefg", &p));
    }

    #[test]
    fn drop_keys_are_unique_and_match_displays() {
        let mut keys: Vec<_> = DropKind::ALL.iter().map(|k| k.key()).collect();
        keys.sort_unstable();
        keys.dedup();
        assert_eq!(keys.len(), DropKind::ALL.len());
        for (i, k) in DropKind::ALL.iter().enumerate() {
            assert_eq!(*k as usize, i, "ALL must follow declaration order");
        }
        assert_eq!(DropReason::BadChecksum { version: 2 }.key(), "bad_checksum");
        assert_eq!(
            DropReason::BadChecksum { version: 2 }.to_string(),
            "Invalid VRRPv2 checksum"
        );
        assert_eq!(
            DropReason::BadTtl { got: 64 }.to_string(),
            "invalid TTL/HL. Received 64 and expect 255"
        );
        assert_eq!(
            DropReason::VersionMismatch {
                got: 3,
                expected: 2
            }
            .to_string(),
            "wrong version. Received 3 and expect 2"
        );
        assert_eq!(
            DropReason::BadChecksum { version: 3 }.to_string(),
            "Invalid VRRPv3 checksum"
        );
        assert_eq!(
            DropReason::IntervalMismatch {
                got: 200,
                expected: 100
            }
            .to_string(),
            "advertisement interval mismatch mine=1 sec rcv'd=2 sec"
        );
        assert_eq!(
            DropReason::BadPassword.to_string(),
            "received an invalid passwd!"
        );
        assert_eq!(
            DropReason::AuthTypeMismatch {
                got: 0,
                expected: 1
            }
            .to_string(),
            "received a 0 auth, expecting 1!"
        );
        assert_eq!(
            DropReason::AddressCountMismatch {
                got: 2,
                expected: 1
            }
            .to_string(),
            "received an unexpected ip number count 2, expected 1!"
        );
        assert_eq!(
            DropReason::AddressMismatch {
                vrid: 51,
                missing: VIP
            }
            .to_string(),
            "ip address associated with VRID 51 not present in MASTER advert: 192.0.2.100"
        );
        assert!(DropReason::UnknownVrid { got: 3 }.is_silent());
        assert!(!DropReason::BadChecksum { version: 2 }.is_silent());
    }

    #[test]
    fn counters_count_per_kind() {
        let c = DropCounters::new();
        c.record(&DropReason::BadChecksum { version: 2 });
        c.record(&DropReason::BadChecksum { version: 2 });
        c.record(&DropReason::BadTtl { got: 1 });
        assert_eq!(c.get(DropKind::BadChecksum), 2);
        let snap = c.snapshot();
        assert_eq!(snap.len(), DropKind::ALL.len());
        assert!(snap.contains(&("bad_checksum", 2)));
        assert!(snap.contains(&("bad_ttl", 1)));
        assert!(snap.contains(&("bad_version", 0)));
    }

    #[test]
    fn log_limiter_once_per_interval_per_reason_and_source() {
        let t0 = Instant::now();
        let s = Duration::from_secs(1);
        let mut l = DropLogLimiter::new(Duration::from_secs(60));
        let a = Ipv4Addr::new(198, 51, 100, 1);
        let b = Ipv4Addr::new(198, 51, 100, 2);
        assert!(l.should_log("bad_checksum", std::net::IpAddr::V4(a), t0));
        assert!(!l.should_log("bad_checksum", std::net::IpAddr::V4(a), t0 + 59 * s));
        assert!(l.should_log("bad_checksum", std::net::IpAddr::V4(b), t0 + s));
        assert!(l.should_log("bad_ttl", std::net::IpAddr::V4(a), t0 + s));
        assert!(l.should_log("bad_checksum", std::net::IpAddr::V4(a), t0 + 60 * s));
        // Address mismatches: once per peer, then only counted.
        assert!(l.should_log("address_mismatch", std::net::IpAddr::V4(a), t0));
        assert!(!l.should_log("address_mismatch", std::net::IpAddr::V4(a), t0 + 3600 * s));
    }

    #[test]
    fn log_limiter_memory_is_bounded_and_evicts_oldest() {
        let t0 = Instant::now();
        let mut l = DropLogLimiter::with_capacity(Duration::from_secs(60), 3);
        let ip = |n| Ipv4Addr::new(198, 51, 100, n);
        for n in 0..3u8 {
            assert!(l.should_log(
                "bad_ttl",
                std::net::IpAddr::V4(ip(n)),
                t0 + Duration::from_secs(u64::from(n))
            ));
        }
        assert!(l.should_log(
            "bad_ttl",
            std::net::IpAddr::V4(ip(9)),
            t0 + Duration::from_secs(5)
        ));
        assert_eq!(l.len(), 3);
        // ip(0) was the oldest and was evicted, so it logs again; ip(2) is still limited.
        assert!(!l.should_log(
            "bad_ttl",
            std::net::IpAddr::V4(ip(2)),
            t0 + Duration::from_secs(6)
        ));
        assert!(l.should_log(
            "bad_ttl",
            std::net::IpAddr::V4(ip(0)),
            t0 + Duration::from_secs(6)
        ));
        assert_eq!(l.len(), 3);
    }

    /// v2 adverts (whole seconds, any auth) and v3 adverts (12-bit centiseconds, no auth).
    fn arb_advert() -> impl Strategy<Value = Advertisement> {
        let v2 = (
            any::<u8>(),
            prop_oneof![Just(Auth::None), any::<[u8; 8]>().prop_map(Auth::Simple)],
        )
            .prop_map(|(secs, auth)| (Version::V2, u16::from(secs) * 100, auth));
        let v3 = (0..=V3_MAX_ADVERT_INT).prop_map(|cs| (Version::V3, cs, Auth::None));
        (
            any::<u8>(),
            any::<u8>(),
            prop_oneof![v2, v3],
            prop::collection::vec(
                any::<u32>().prop_map(|a| IpAddr::V4(Ipv4Addr::from(a))),
                0..20,
            ),
        )
            .prop_map(|(vrid, priority, (version, advert_int, auth), addresses)| {
                Advertisement {
                    version,
                    vrid,
                    priority,
                    advert_int,
                    auth,
                    addresses,
                }
            })
    }

    proptest! {
        #[test]
        fn encode_then_decode_is_identity(adv in arb_advert()) {
            prop_assert_eq!(decode(&adv.encode()), Ok(adv.clone()));
            let pkt = adv.encode_ip(SRC, VRRP_GROUP);
            let (meta, msg) = parse_ip(&pkt).map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(meta.ttl, 255);
            prop_assert_eq!(checksum(&pkt[..20]), 0);
            prop_assert_eq!(
                Advertisement::decode_between(msg, meta.src, meta.dst),
                Ok(adv)
            );
        }

        #[test]
        fn v6_encode_then_decode_is_identity(
            vrid in any::<u8>(),
            priority in any::<u8>(),
            advert_int in 0..=V3_MAX_ADVERT_INT,
            addresses in prop::collection::vec(any::<u128>().prop_map(|a| IpAddr::V6(Ipv6Addr::from(a))), 0..20),
            src in any::<u128>(),
        ) {
            let adv = Advertisement { version: Version::V3, vrid, priority, advert_int, auth: Auth::None, addresses };
            let (src, dst) = (IpAddr::V6(Ipv6Addr::from(src)), IpAddr::V6(VRRP_GROUP_V6));
            let bytes = adv.encode_between(src, dst);
            prop_assert_eq!(bytes.len(), 8 + 16 * adv.addresses.len());
            prop_assert_eq!(Advertisement::decode_between(&bytes, src, dst), Ok(adv));
        }

        #[test]
        fn decode_and_validate_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
            let _ = decode(&bytes);
            if let Ok((meta, msg)) = parse_ip(&bytes) {
                let _ = validate(&meta, msg, &rules());
            }
            let _ = validate(&mcast_meta(), &bytes, &rules());
        }

        #[test]
        fn single_bit_flip_is_caught(adv in arb_advert(), bit in any::<prop::sample::Index>()) {
            let mut bytes = adv.encode();
            let i = bit.index(bytes.len() * 8);
            bytes[i / 8] ^= 1 << (i % 8);
            prop_assert!(decode(&bytes).is_err());
        }
    }
}
