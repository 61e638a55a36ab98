//! Reading the SNI out of a TLS ClientHello without terminating TLS (lb.md §11, pass-through
//! routing; HAProxy `req.ssl_sni`).
//!
//! Sans-IO: the caller keeps every byte it read (they are forwarded unchanged once a route is
//! picked) and asks [`inspect`] about the whole buffer after each read. The hello may span
//! several TCP segments and several TLS records (post-quantum key shares make it larger than
//! one segment); the reader reassembles the handshake message across records. Every length is
//! checked against the bytes really present, so a hello that lies about its lengths is an
//! error, never an over-read.
//!
//! Wire layout (RFC 8446 §4.1.2, §5.1; RFC 6066 §3):
//! ```text
//! record:    type(1)=22 version(2)=3.x length(2)<=16384 fragment
//! handshake: type(1)=1 length(3) body
//! body:      version(2) random(32) session_id<0..32> cipher_suites<2..2^16-2>
//!            compression<1..2^8-1> [extensions<0..2^16-1>]
//! extension: type(2) length(2) data;  server_name = 0: list<1..2^16-1> of
//!            name_type(1) (0 = host_name) name<1..2^16-1>
//! ```

/// The most bytes read while looking for the SNI (lb.md §11).
pub const MAX_CLIENT_HELLO: usize = 16 * 1024;

const CONTENT_HANDSHAKE: u8 = 22;
const HANDSHAKE_CLIENT_HELLO: u8 = 1;
const EXT_SERVER_NAME: u16 = 0;
const NAME_TYPE_HOST: u8 = 0;
const RECORD_HEADER: usize = 5;
/// RFC 8446 §5.1: a plaintext fragment is at most 2^14 bytes.
const MAX_FRAGMENT: usize = 1 << 14;

/// What the bytes read so far say.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Inspect {
    /// A ClientHello has begun and is not complete yet: read more.
    NeedMore,
    /// The whole ClientHello was read; the host name it asks for (lowercase), if any.
    Sni(Option<String>),
    /// The first bytes are not a TLS handshake record.
    NotTls,
    /// The ClientHello did not fit in [`MAX_CLIENT_HELLO`] bytes.
    TooLarge,
    /// A TLS handshake that is not a well-formed ClientHello.
    Malformed(&'static str),
}

/// Looks at everything the client sent so far.
pub fn inspect(buf: &[u8]) -> Inspect {
    let window = &buf[..buf.len().min(MAX_CLIENT_HELLO)];
    match reassemble(window) {
        Ok(Some(hello)) => match parse_body(&hello) {
            Ok(sni) => Inspect::Sni(sni),
            Err(why) => Inspect::Malformed(why),
        },
        Ok(None) if buf.len() >= MAX_CLIENT_HELLO => Inspect::TooLarge,
        Ok(None) => Inspect::NeedMore,
        Err(Early::NotTls) => Inspect::NotTls,
        Err(Early::TooLarge) => Inspect::TooLarge,
        Err(Early::Malformed(why)) => Inspect::Malformed(why),
    }
}

enum Early {
    NotTls,
    TooLarge,
    Malformed(&'static str),
}

/// Collects the handshake bytes of consecutive handshake records until the whole ClientHello
/// message is there; `None` while it is incomplete.
fn reassemble(buf: &[u8]) -> Result<Option<Vec<u8>>, Early> {
    let mut handshake: Vec<u8> = Vec::new();
    let mut rest = buf;
    let mut first = true;
    loop {
        if rest.is_empty() {
            return Ok(None);
        }
        if rest[0] != CONTENT_HANDSHAKE {
            return Err(if first {
                Early::NotTls
            } else {
                Early::Malformed("record before the end of the ClientHello is not a handshake")
            });
        }
        if rest.len() < RECORD_HEADER {
            // Check the major version as soon as it is there: SSLv2 hellos and other
            // protocols that happen to start with 0x16 are not TLS.
            if rest.len() >= 2 && rest[1] != 3 {
                return Err(if first {
                    Early::NotTls
                } else {
                    Early::Malformed("bad record version")
                });
            }
            return Ok(None);
        }
        if rest[1] != 3 {
            return Err(if first {
                Early::NotTls
            } else {
                Early::Malformed("bad record version")
            });
        }
        let len = usize::from(u16::from_be_bytes([rest[3], rest[4]]));
        if len == 0 {
            return Err(Early::Malformed("empty handshake record"));
        }
        if len > MAX_FRAGMENT {
            return Err(Early::Malformed("record longer than 2^14 bytes"));
        }
        first = false;
        let available = (rest.len() - RECORD_HEADER).min(len);
        handshake.extend_from_slice(&rest[RECORD_HEADER..RECORD_HEADER + available]);
        if handshake.len() >= 4 {
            if handshake[0] != HANDSHAKE_CLIENT_HELLO {
                return Err(Early::Malformed(
                    "first handshake message is not a ClientHello",
                ));
            }
            let msg_len = (usize::from(handshake[1]) << 16)
                | (usize::from(handshake[2]) << 8)
                | usize::from(handshake[3]);
            if msg_len + 4 > MAX_CLIENT_HELLO {
                return Err(Early::TooLarge);
            }
            if handshake.len() >= msg_len + 4 {
                handshake.truncate(msg_len + 4);
                handshake.drain(..4);
                return Ok(Some(handshake));
            }
        }
        if available < len {
            return Ok(None);
        }
        rest = &rest[RECORD_HEADER + len..];
    }
}

/// A cursor over one length-checked byte string.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], &'static str> {
        if self.0.len() < n {
            return Err(what);
        }
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Ok(head)
    }

    fn u8(&mut self, what: &'static str) -> Result<u8, &'static str> {
        Ok(self.take(1, what)?[0])
    }

    fn u16(&mut self, what: &'static str) -> Result<u16, &'static str> {
        let b = self.take(2, what)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    fn vec8(&mut self, what: &'static str) -> Result<&'a [u8], &'static str> {
        let n = self.u8(what)?;
        self.take(usize::from(n), what)
    }

    fn vec16(&mut self, what: &'static str) -> Result<&'a [u8], &'static str> {
        let n = self.u16(what)?;
        self.take(usize::from(n), what)
    }
}

fn parse_body(body: &[u8]) -> Result<Option<String>, &'static str> {
    let mut r = Reader(body);
    r.take(2 + 32, "ClientHello shorter than version and random")?;
    let session = r.vec8("session id longer than the hello")?;
    if session.len() > 32 {
        return Err("session id longer than 32 bytes");
    }
    let suites = r.vec16("cipher suites longer than the hello")?;
    if suites.len() < 2 || suites.len() % 2 != 0 {
        return Err("bad cipher suite list length");
    }
    if r.vec8("compression methods longer than the hello")?
        .is_empty()
    {
        return Err("no compression method");
    }
    if r.0.is_empty() {
        return Ok(None);
    }
    let mut exts = Reader(r.vec16("extensions longer than the hello")?);
    if !r.0.is_empty() {
        return Err("bytes after the extensions");
    }
    let mut sni = None;
    let mut seen_sni = false;
    while !exts.0.is_empty() {
        let kind = exts.u16("truncated extension header")?;
        let data = exts.vec16("extension longer than the extension list")?;
        if kind == EXT_SERVER_NAME {
            if seen_sni {
                return Err("two server_name extensions");
            }
            seen_sni = true;
            sni = server_name(data)?;
        }
    }
    Ok(sni)
}

/// The host_name of a server_name extension (RFC 6066 §3: at most one per name type).
fn server_name(data: &[u8]) -> Result<Option<String>, &'static str> {
    let mut ext = Reader(data);
    let mut list = Reader(ext.vec16("server name list longer than the extension")?);
    if !ext.0.is_empty() {
        return Err("bytes after the server name list");
    }
    let mut host = None;
    while !list.0.is_empty() {
        let kind = list.u8("truncated server name")?;
        let name = list.vec16("server name longer than the list")?;
        if kind != NAME_TYPE_HOST {
            continue;
        }
        if host.is_some() {
            return Err("two host names in server_name");
        }
        host = Some(host_name(name)?);
    }
    Ok(host)
}

/// RFC 6066: an ASCII DNS host name without a trailing dot. Lowercased for matching.
fn host_name(name: &[u8]) -> Result<String, &'static str> {
    if name.is_empty() || name.len() > 253 {
        return Err("bad host name length");
    }
    let ok = name
        .split(|&b| b == b'.')
        .all(|label| !label.is_empty() && label.len() <= 63 && label.iter().all(valid_byte));
    if !ok {
        return Err("host name is not a DNS name");
    }
    Ok(name
        .iter()
        .map(|b| b.to_ascii_lowercase() as char)
        .collect())
}

fn valid_byte(b: &u8) -> bool {
    b.is_ascii_alphanumeric() || *b == b'-' || *b == b'_'
}

/// Building ClientHellos for tests (here, in the fuzz seeds and in the integration tests).
pub mod build {
    /// The handshake message of a ClientHello asking for `sni`, padded with an extension of
    /// `padding` bytes (a stand-in for a large post-quantum key share).
    pub fn client_hello(sni: Option<&str>, padding: usize) -> Vec<u8> {
        let mut exts = Vec::new();
        if let Some(name) = sni {
            let n = name.len() as u16;
            exts.extend_from_slice(&0u16.to_be_bytes());
            exts.extend_from_slice(&(n + 5).to_be_bytes());
            exts.extend_from_slice(&(n + 3).to_be_bytes());
            exts.push(0);
            exts.extend_from_slice(&n.to_be_bytes());
            exts.extend_from_slice(name.as_bytes());
        }
        if padding > 0 {
            exts.extend_from_slice(&21u16.to_be_bytes());
            exts.extend_from_slice(&(padding as u16).to_be_bytes());
            exts.resize(exts.len() + padding, 0);
        }
        let mut body = vec![3, 3];
        body.extend_from_slice(&[7; 32]);
        body.push(0);
        body.extend_from_slice(&[0, 2, 0x13, 0x01]);
        body.extend_from_slice(&[1, 0]);
        body.extend_from_slice(&(exts.len() as u16).to_be_bytes());
        body.extend_from_slice(&exts);
        let mut msg = vec![1];
        msg.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
        msg.extend_from_slice(&body);
        msg
    }

    /// `msg` cut into handshake records of at most `record` bytes of payload.
    pub fn records(msg: &[u8], record: usize) -> Vec<u8> {
        let mut out = Vec::new();
        for chunk in msg.chunks(record.max(1)) {
            out.extend_from_slice(&[22, 3, 1]);
            out.extend_from_slice(&(chunk.len() as u16).to_be_bytes());
            out.extend_from_slice(chunk);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::build::{client_hello, records};
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn reads_the_sni_of_one_record() {
        let wire = records(&client_hello(Some("App.Example.TEST"), 0), 16384);
        assert_eq!(
            inspect(&wire),
            Inspect::Sni(Some("app.example.test".into()))
        );
    }

    #[test]
    fn reads_what_openssl_sends() {
        // Captured from `openssl s_client -servername app.example.test` (fuzz seeds).
        let whole = include_bytes!("../../fuzz/seeds/client_hello/hello_sni.bin");
        let cut = include_bytes!("../../fuzz/seeds/client_hello/hello_sni_records.bin");
        for wire in [&whole[..], &cut[..]] {
            assert_eq!(inspect(wire), Inspect::Sni(Some("app.example.test".into())));
        }
        let none = include_bytes!("../../fuzz/seeds/client_hello/hello_nosni.bin");
        assert_eq!(inspect(none), Inspect::Sni(None));
    }

    #[test]
    fn no_server_name_extension_is_no_sni() {
        let wire = records(&client_hello(None, 40), 16384);
        assert_eq!(inspect(&wire), Inspect::Sni(None));
    }

    #[test]
    fn hello_split_across_records_and_segments() {
        // 3000 bytes of key share, cut in records of 100 bytes, fed one byte at a time.
        let wire = records(&client_hello(Some("b.example.test"), 3000), 100);
        for end in 0..wire.len() {
            assert_eq!(inspect(&wire[..end]), Inspect::NeedMore, "at {end}");
        }
        assert_eq!(inspect(&wire), Inspect::Sni(Some("b.example.test".into())));
    }

    #[test]
    fn not_tls() {
        assert_eq!(inspect(b"GET / HTTP/1.1\r\n"), Inspect::NotTls);
        assert_eq!(inspect(b"SSH-2.0-OpenSSH"), Inspect::NotTls);
        // 0x16 then a version that is not 3.x.
        assert_eq!(inspect(&[22, 2]), Inspect::NotTls);
        assert_eq!(inspect(&[]), Inspect::NeedMore);
        assert_eq!(inspect(&[22]), Inspect::NeedMore);
    }

    #[test]
    fn larger_than_the_cap() {
        let wire = records(&client_hello(Some("a.test"), 17000), 16384);
        assert_eq!(inspect(&wire), Inspect::TooLarge);
        // Declared small enough but the records never finish it within the cap.
        let mut endless = records(&client_hello(Some("a.test"), 0), 16384);
        endless[6] = 1; // message length 0x01_xx_xx: more than the cap
        assert_eq!(inspect(&endless), Inspect::TooLarge);
    }

    #[test]
    fn lengths_that_lie_are_errors() {
        let msg = client_hello(Some("a.test"), 0);
        // Session id length beyond the body.
        let mut bad = msg.clone();
        bad[4 + 34] = 200;
        assert!(matches!(
            inspect(&records(&bad, 16384)),
            Inspect::Malformed(_)
        ));
        // Extension list length beyond the body.
        let mut bad = msg.clone();
        let ext_len_at = 4 + 34 + 1 + 4 + 2;
        bad[ext_len_at] = 0xff;
        assert!(matches!(
            inspect(&records(&bad, 16384)),
            Inspect::Malformed(_)
        ));
        // A record length beyond 2^14.
        let mut wire = records(&msg, 16384);
        wire[3] = 0x50;
        assert!(matches!(inspect(&wire), Inspect::Malformed(_)));
        // Not a ClientHello.
        let mut bad = msg;
        bad[0] = 2;
        assert!(matches!(
            inspect(&records(&bad, 16384)),
            Inspect::Malformed(_)
        ));
    }

    #[test]
    fn alert_record_in_the_middle_is_malformed() {
        let msg = client_hello(Some("a.test"), 500);
        let mut wire = records(&msg[..100], 100);
        wire.extend_from_slice(&[21, 3, 3, 0, 2, 2, 40]);
        assert!(matches!(inspect(&wire), Inspect::Malformed(_)));
    }

    #[test]
    fn bad_host_names() {
        for name in ["a..b", "a b", "é.test", "a/b", "x."] {
            let wire = records(&client_hello(Some(name), 0), 16384);
            assert_ne!(inspect(&wire), Inspect::Sni(Some(name.into())), "{name}");
        }
    }

    proptest! {
        #[test]
        fn never_panics_on_random_input(data in proptest::collection::vec(any::<u8>(), 0..2048)) {
            let _ = inspect(&data);
            let mut tls = vec![22, 3, 1];
            tls.extend_from_slice(&data);
            let _ = inspect(&tls);
        }

        #[test]
        fn any_split_reads_the_same_name(
            label in "[a-z0-9]{1,20}",
            padding in 0usize..5000,
            record in 64usize..2000,
        ) {
            let name = format!("{label}.example.test");
            let wire = records(&client_hello(Some(&name), padding), record);
            prop_assert_eq!(inspect(&wire), Inspect::Sni(Some(name)));
            prop_assert_eq!(inspect(&wire[..wire.len() - 1]), Inspect::NeedMore);
        }

        #[test]
        fn corrupted_hellos_never_panic(
            padding in 0usize..600,
            record in 1usize..700,
            flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..6),
        ) {
            let mut wire = records(&client_hello(Some("x.test"), padding), record);
            for (at, byte) in flips {
                let i = at % wire.len();
                wire[i] = byte;
            }
            let _ = inspect(&wire);
        }
    }
}
