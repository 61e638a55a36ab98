//! A direct HTTP/1.1 exchange with a server for requests without a body (GET, HEAD, …: the
//! bulk of the traffic): the request head is written straight from the forwarded header map,
//! the response head parsed with httparse, and the response body read from the socket by the
//! body hyper sends to the client ([`RawBody`]). No connection task, no channels, no copy of
//! the request headers: a pooled connection is a plain socket with its read buffer.
//!
//! Response framing follows RFC 9112 §6.3 as hyper's client does: 1xx interim responses are
//! skipped (101 ends the connection's use, and answers only a request that carried
//! `Upgrade`); HEAD, 204 and 304 have no body; a `Transfer-Encoding` ending in `chunked`
//! (once: response_rules.rs) is decoded (trailers become a trailers frame), and chunks
//! already buffered with the head are checked before the head goes out, so a bad one is a
//! 502 rather than a cut; an invalid `Content-Length` is an error; otherwise the body runs to
//! the end of the stream. A connection goes back to the pool only after a complete,
//! keep-alive response with nothing left over in its buffer. [`replay`] runs this on given
//! bytes for the fuzz target.
//!
//! Requests with a body go through hyper's client on a connection lent by the pool
//! (connector.rs), which handles a body streaming while the response arrives.

use std::future::Future;
use std::io;
use std::mem::MaybeUninit;
use std::net::SocketAddr;
use std::pin::{pin, Pin};
use std::task::{ready, Context, Poll};
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, Response, StatusCode, Version};
use hyper::body::{Body, Frame, SizeHint};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::upstream::deadline::Deadline;
use crate::upstream::fields::{ForwardedFields, KEEP_ALIVE, PROXY_CONNECTION};
use crate::upstream::io::ServerIo;
use crate::upstream::response_rules::{self, Coding};

/// Largest response head accepted (status line and headers).
const MAX_HEAD: usize = 64 * 1024;
/// Most header fields in a response head or a trailer section (as hyper).
const MAX_HEADERS: usize = 100;
/// Largest chunk-size line (with extensions) and trailer section.
const MAX_CHUNK_LINE: usize = 16 * 1024;
const MAX_TRAILERS: usize = 16 * 1024;
/// Read size while reading a head.
const HEAD_READ: usize = 8 * 1024;
/// The most a read of a body with a known length asks for (see `RawBody::poll_frame`).
const BODY_READ: u64 = 16 * 1024;
/// Largest header map kept for the next response (fields).
const RECYCLE_MAX: usize = 64;

/// A connection to a server for direct exchanges.
pub(crate) struct RawConn {
    /// Boxed: a connection moves from the pool through the exchange into the response body
    /// and back, and moving a pointer is cheaper than moving the whole state each time.
    state: Box<ConnState>,
    pub(crate) reused: bool,
    pub(crate) generation: u64,
}

/// The client a connection's PROXY header named (source, destination), when its backend has
/// `send_proxy`: such a connection serves that client only (connector.rs).
pub(crate) type ClientAddrs = (SocketAddr, SocketAddr);

struct ConnState {
    io: ServerIo,
    buf: BytesMut,
    out: Vec<u8>,
    /// The `server` timeout of the exchange in progress; one timer per connection, pushed
    /// forward per request (cheap: the timer wheel is only touched when it fires).
    deadline: Deadline,
    /// The header names of the previous response, reused for the next one.
    names: NameCache,
    /// `send_proxy`: the client this connection was opened for.
    owner: Option<ClientAddrs>,
}

impl RawConn {
    pub(crate) fn new(io: ServerIo, generation: u64, owner: Option<ClientAddrs>) -> Self {
        RawConn {
            state: Box::new(ConnState {
                io,
                buf: BytesMut::new(),
                out: Vec::new(),
                deadline: Deadline::new(tokio::time::Instant::now() + Duration::from_secs(3600)),
                names: NameCache::default(),
                owner,
            }),
            reused: false,
            generation,
        }
    }

    /// The socket, whether it served before, and its pool generation.
    pub(crate) fn into_parts(self) -> (ServerIo, bool, u64) {
        (self.state.io, self.reused, self.generation)
    }

    /// The client this connection serves exclusively (`send_proxy`), if any.
    pub(crate) fn owner(&self) -> Option<ClientAddrs> {
        self.state.owner
    }

    /// An idle pooled connection is usable when nothing arrived on it since its last
    /// response (no end of stream, no stray bytes).
    pub(crate) fn still_open(&mut self) -> bool {
        self.state.buf.is_empty() && self.state.io.still_open()
    }
}

/// Why a direct exchange gave no response.
#[derive(Debug)]
pub(crate) enum SendError {
    /// The server closed or reset the connection before sending a single response byte
    /// (`None`: a clean end of stream).
    Empty(Option<io::Error>),
    /// The connection ended or failed within the head.
    Closed(String),
    /// Garbage, an oversized head, or a response that cannot be framed without doubt.
    Bad(String),
    /// No complete response head within the `server` timeout.
    Timeout,
}

impl std::fmt::Display for SendError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SendError::Empty(None) => f.write_str("connection closed before any response byte"),
            SendError::Empty(Some(e)) => write!(f, "no response: {e}"),
            SendError::Closed(why) | SendError::Bad(why) => f.write_str(why),
            SendError::Timeout => f.write_str("server timeout"),
        }
    }
}

/// Writes `method target HTTP/1.1`, `Host: host` when given (an HTTP/2 request's authority)
/// and `headers` to `conn`, reads the response head by `deadline` and returns the response
/// with its body still on the connection.
// Not an `async fn`: the head is encoded before the future is made, and the future keeps
// only what reading the response needs (an `async fn` would also keep its arguments twice).
#[allow(clippy::manual_async_fn)]
pub(crate) fn send<'a>(
    mut conn: RawConn,
    method: &Method,
    target: &str,
    (host, headers): (Option<&str>, &'a HeaderMap),
    forwarded: Option<&ForwardedFields>,
    deadline: tokio::time::Instant,
) -> impl Future<Output = Result<Response<RawBody>, SendError>> + Send + 'a {
    encode_head(
        &mut conn.state.out,
        method,
        target,
        (host, headers),
        forwarded,
    );
    conn.state.deadline.set(deadline);
    let asked = Asked::of(method);
    async move {
        let head = {
            let ConnState {
                io,
                buf,
                out,
                deadline,
                names,
                ..
            } = &mut *conn.state;
            let mut exchange = pin!(write_and_read_head(io, buf, out, names, asked));
            std::future::poll_fn(|cx| {
                if let Poll::Ready(r) = exchange.as_mut().poll(cx) {
                    return Poll::Ready(r);
                }
                ready!(deadline.poll_due(cx));
                Poll::Ready(Err(SendError::Timeout))
            })
            .await?
        };
        let (resp, framing, keep_alive, hop_by_hop_removed) = head;
        if resp.status() == StatusCode::SWITCHING_PROTOCOLS
            && !headers.contains_key(header::UPGRADE)
        {
            return Err(SendError::Bad(
                "101 Switching Protocols to a request without Upgrade".into(),
            ));
        }
        if let Framing::Chunked(_) = framing {
            // A bad chunk already at hand gets a 502 instead of a cut after the head was sent.
            check_buffered_chunks(&conn.state.buf)
                .map_err(|e| SendError::Bad(format!("response body: {e}")))?;
        }
        let body = RawBody {
            framing,
            conn: Some(conn),
            keep_alive,
            hop_by_hop_removed,
        };
        Ok(resp.map(|()| body))
    }
}

fn encode_head(
    out: &mut Vec<u8>,
    method: &Method,
    target: &str,
    (host, headers): (Option<&str>, &HeaderMap),
    forwarded: Option<&ForwardedFields>,
) {
    out.clear();
    out.extend_from_slice(method.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(target.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\n");
    if let Some(host) = host {
        // An `http::uri::Authority`: its characters are a subset of a field value's.
        out.extend_from_slice(b"host: ");
        out.extend_from_slice(host.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    for (name, value) in headers {
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    if let Some(f) = forwarded {
        f.encode(out, host);
    }
    out.extend_from_slice(b"\r\n");
}

/// The response, its framing, whether the connection may serve again, and whether the
/// hop-by-hop fields were left out already.
type Head = (Response<()>, Framing, bool, bool);

async fn write_and_read_head(
    io: &mut ServerIo,
    buf: &mut BytesMut,
    out: &[u8],
    names: &mut NameCache,
    asked: Asked,
) -> Result<Head, SendError> {
    // The flush matters for TLS only (rustls may hold records the socket did not take).
    if let Err(e) = async {
        io.write_all(out).await?;
        io.flush().await
    }
    .await
    {
        return Err(SendError::Empty(Some(e)));
    }
    let mut received = false;
    loop {
        if !buf.is_empty() {
            received = true;
            if let Some(head) = parse_head(buf, asked, names)? {
                return Ok(head);
            }
            if buf.len() >= MAX_HEAD {
                return Err(SendError::Bad("response head too large".into()));
            }
        }
        buf.reserve(HEAD_READ);
        match io.read_buf(buf).await {
            Ok(0) if received => {
                return Err(SendError::Closed(
                    "connection closed within the response head".into(),
                ))
            }
            Ok(0) => return Err(SendError::Empty(None)),
            Ok(_) => {}
            Err(e) if received => return Err(SendError::Closed(format!("reading the head: {e}"))),
            Err(e) => return Err(SendError::Empty(Some(e))),
        }
    }
}

/// What the request was, as far as the response's framing cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Asked {
    Head,
    /// A CONNECT: a 2xx answer ends the head and turns the connection into a tunnel.
    Connect,
    Other,
}

impl Asked {
    fn of(method: &Method) -> Asked {
        if *method == Method::HEAD {
            Asked::Head
        } else if *method == Method::CONNECT {
            Asked::Connect
        } else {
            Asked::Other
        }
    }

    fn head(head_request: bool) -> Asked {
        if head_request {
            Asked::Head
        } else {
            Asked::Other
        }
    }

    /// A response with this status makes the connection a tunnel.
    fn tunnels(self, code: u16) -> bool {
        self == Asked::Connect && (200..300).contains(&code)
    }
}

/// How the response body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    Length(u64),
    Chunked(Chunk),
    /// Until the server closes.
    Close,
    Done,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Chunk {
    /// Before a chunk-size line.
    Size,
    /// Inside a chunk: bytes left.
    Data(u64),
    /// The CRLF after a chunk's data.
    DataEnd,
    /// After the last (zero) chunk: trailer fields until an empty line.
    Trailers,
}

/// What the exchange needs to know about a response field, by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Connection,
    ContentLength,
    TransferEncoding,
    /// `TE`, `Upgrade`, `Proxy-Connection`, `Keep-Alive`: hop-by-hop (RFC 9110 §7.6.1).
    HopByHop,
    Other,
}

impl Kind {
    fn of(name: &HeaderName) -> Kind {
        if *name == header::CONNECTION {
            Kind::Connection
        } else if *name == header::CONTENT_LENGTH {
            Kind::ContentLength
        } else if *name == header::TRANSFER_ENCODING {
            Kind::TransferEncoding
        } else if *name == header::TE
            || *name == header::UPGRADE
            || *name == PROXY_CONNECTION
            || *name == KEEP_ALIVE
        {
            Kind::HopByHop
        } else {
            Kind::Other
        }
    }

    /// Fields a proxy never forwards (headers.rs `remove_hop_by_hop`).
    fn hop_by_hop(self) -> bool {
        !matches!(self, Kind::ContentLength | Kind::Other)
    }
}

/// The header names of the last response on a connection, in order, with their bytes as
/// received: a server sends the same names in the same order in every response, so a name
/// that matches the one at the same position is reused instead of parsed again. Bounded by
/// [`MAX_HEAD`] and [`MAX_HEADERS`] like the head itself.
#[derive(Default)]
pub(crate) struct NameCache {
    /// The received names, one after the other.
    raw: Vec<u8>,
    entries: Vec<CachedName>,
    /// An empty header map to parse the next response into (a used request's, see
    /// [`RawBody::recycle`]), saving its allocation.
    spare: HeaderMap,
}

struct CachedName {
    /// End of the name in `raw` (it starts where the previous one ends).
    end: usize,
    name: HeaderName,
    kind: Kind,
}

impl NameCache {
    /// Makes entry `i` the name `raw` (called for i = 0, 1, 2, … in order).
    fn resolve(&mut self, i: usize, raw: &[u8]) -> Result<Kind, SendError> {
        let start = match i.checked_sub(1) {
            Some(prev) => self.entries.get(prev).map_or(self.raw.len(), |e| e.end),
            None => 0,
        };
        if let Some(e) = self.entries.get(i) {
            if self.raw.get(start..e.end) == Some(raw) {
                return Ok(e.kind);
            }
        }
        self.entries.truncate(i);
        self.raw.truncate(start);
        let name = HeaderName::from_bytes(raw)
            .map_err(|_| SendError::Bad("invalid header name".into()))?;
        let kind = Kind::of(&name);
        self.raw.extend_from_slice(raw);
        self.entries.push(CachedName {
            end: self.raw.len(),
            name,
            kind,
        });
        Ok(kind)
    }
}

/// Parses one complete response head at the start of `buf` (consuming it), skipping 1xx
/// interim responses. `None`: more bytes are needed.
///
/// When `Connection` names no field (absent, or only `keep-alive`, the usual case), the
/// hop-by-hop fields are left out of the header map here, as `remove_hop_by_hop_response`
/// would remove them anyway; otherwise they stay for it to handle the named fields.
fn parse_head(
    buf: &mut BytesMut,
    asked: Asked,
    names: &mut NameCache,
) -> Result<Option<Head>, SendError> {
    loop {
        // The buffered bytes become shared so that header values can point into them.
        let bytes = buf.split().freeze();
        let mut slots = [MaybeUninit::<httparse::Header<'_>>::uninit(); MAX_HEADERS];
        let mut parsed = httparse::Response::new(&mut []);
        let len = match httparse::ParserConfig::default().parse_response_with_uninit_headers(
            &mut parsed,
            &bytes,
            &mut slots,
        ) {
            Ok(httparse::Status::Complete(n)) => n,
            Ok(httparse::Status::Partial) => {
                restore(buf, bytes);
                return Ok(None);
            }
            Err(e) => return Err(SendError::Bad(format!("invalid response head: {e}"))),
        };
        let code = parsed.code.unwrap_or(0);
        let status = StatusCode::from_u16(code)
            .map_err(|_| SendError::Bad(format!("invalid status {code}")))?;
        if status.is_informational() && code != 101 {
            restore(buf, bytes.slice(len..));
            if buf.is_empty() {
                return Ok(None);
            }
            continue;
        }
        let version = if parsed.version == Some(1) {
            Version::HTTP_11
        } else {
            Version::HTTP_10
        };
        let reason = parsed
            .reason
            .filter(|r| Some(*r) != status.canonical_reason())
            .map(|r| Bytes::copy_from_slice(r.as_bytes()));
        let fields = &*parsed.headers;
        let mut keep_alive = version == Version::HTTP_11;
        let mut close = false;
        // No field named by `Connection` other than `keep-alive` (which is hop-by-hop anyway).
        let mut nothing_named = true;
        let mut has_te = false;
        let mut has_cl = false;
        for (i, h) in fields.iter().enumerate() {
            match names.resolve(i, h.name.as_bytes())? {
                Kind::Connection => {
                    for token in h.value.split(|&b| b == b',') {
                        let token = token.trim_ascii();
                        if token.eq_ignore_ascii_case(b"keep-alive") {
                            keep_alive = true;
                        } else if !token.is_empty() {
                            nothing_named = false;
                            if token.eq_ignore_ascii_case(b"close") {
                                close = true;
                            }
                        }
                    }
                }
                Kind::TransferEncoding => has_te = true,
                Kind::ContentLength => has_cl = true,
                Kind::HopByHop | Kind::Other => {}
            }
        }
        let cached = names.entries.get(..fields.len()).unwrap_or(&[]);
        let (framing, drop_length) = framing(code, version, asked, fields, cached, has_te, has_cl)?;
        let mut headers = std::mem::take(&mut names.spare);
        headers.reserve(fields.len());
        for (h, e) in fields.iter().zip(cached) {
            if (nothing_named && e.kind.hop_by_hop())
                || (drop_length && e.kind == Kind::ContentLength)
            {
                continue;
            }
            headers.append(e.name.clone(), parsed_value(bytes.slice_ref(h.value)));
        }
        // What follows the head (the start of the body) goes back to the read buffer.
        buf.extend_from_slice(&bytes[len..]);
        let mut resp = Response::new(());
        *resp.status_mut() = status;
        *resp.version_mut() = version;
        *resp.headers_mut() = headers;
        if let Some(r) = reason {
            if let Ok(r) = hyper::ext::ReasonPhrase::try_from(r) {
                resp.extensions_mut().insert(r);
            }
        }
        // After a 101, or a 2xx to CONNECT, the connection is a tunnel's.
        let tunnel = code == 101 || asked.tunnels(code);
        let keep_alive = keep_alive && !close && !tunnel && framing != Framing::Close;
        return Ok(Some((resp, framing, keep_alive, nothing_named)));
    }
}

/// A field value httparse accepted, as a `HeaderValue` without checking its bytes again.
///
/// httparse (default `ParserConfig`: no obsolete line folding) accepts in a value only HTAB,
/// SP to `~` and 0x80 to 0xFF, a subset of what `HeaderValue` allows (anything but controls
/// other than HTAB, and DEL); `value_bytes_httparse_accepts_are_header_value_bytes` checks
/// that for all 256 bytes. The check `from_maybe_shared` would make again was about 380
/// instructions per response of eight fields (callgrind, TLS keep-alive).
fn parsed_value(value: Bytes) -> HeaderValue {
    debug_assert!(value
        .iter()
        .all(|&b| b == b'\t' || (b >= 0x20 && b != 0x7f)));
    // SAFETY: `from_maybe_shared_unchecked` is unsafe only in that the bytes must be valid
    // for a `HeaderValue`, which httparse guaranteed (above); nothing else depends on it.
    unsafe { HeaderValue::from_maybe_shared_unchecked(value) }
}

/// Puts unparsed bytes back as the read buffer (without a copy when nothing else holds them).
fn restore(buf: &mut BytesMut, bytes: Bytes) {
    *buf = bytes
        .try_into_mut()
        .unwrap_or_else(|shared| BytesMut::from(&shared[..]));
}

/// The body's framing, and whether `Content-Length` must go (RFC 9112 §6.3: it is overridden
/// by `Transfer-Encoding`).
fn framing(
    code: u16,
    version: Version,
    asked: Asked,
    fields: &[httparse::Header<'_>],
    names: &[CachedName],
    has_te: bool,
    has_cl: bool,
) -> Result<(Framing, bool), SendError> {
    // A 2xx to CONNECT has no body whatever its fields say (RFC 9110 §9.3.6).
    if code == 101 || code == 204 || code == 304 || asked == Asked::Head || asked.tunnels(code) {
        return Ok((Framing::Done, false));
    }
    let values = |kind: Kind| {
        fields
            .iter()
            .zip(names)
            .filter(move |(_, e)| e.kind == kind)
            .map(|(h, _)| h.value)
    };
    if has_te {
        if version == Version::HTTP_10 {
            return Err(SendError::Bad(
                "Transfer-Encoding in an HTTP/1.0 response".into(),
            ));
        }
        let coding = response_rules::response_coding(values(Kind::TransferEncoding))
            .map_err(|why| SendError::Bad(why.into()))?;
        return Ok((
            match coding {
                Coding::Chunked => Framing::Chunked(Chunk::Size),
                Coding::Close => Framing::Close,
            },
            true,
        ));
    }
    if !has_cl {
        return Ok((Framing::Close, false));
    }
    let mut length: Option<u64> = None;
    for v in values(Kind::ContentLength) {
        for part in v.split(|&b| b == b',') {
            let n = digits(part.trim_ascii())
                .ok_or_else(|| SendError::Bad("invalid Content-Length".into()))?;
            if length.is_some_and(|l| l != n) {
                return Err(SendError::Bad("conflicting Content-Length".into()));
            }
            length = Some(n);
        }
    }
    Ok((
        match length {
            Some(0) | None => Framing::Done,
            Some(n) => Framing::Length(n),
        },
        false,
    ))
}

fn digits(b: &[u8]) -> Option<u64> {
    if b.is_empty() {
        return None;
    }
    b.iter().try_fold(0u64, |acc, &d| {
        if d.is_ascii_digit() {
            acc.checked_mul(10)?.checked_add(u64::from(d - b'0'))
        } else {
            None
        }
    })
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A response body read straight from the server connection.
pub(crate) struct RawBody {
    framing: Framing,
    conn: Option<RawConn>,
    keep_alive: bool,
    hop_by_hop_removed: bool,
}

impl RawBody {
    /// The response's header map holds no hop-by-hop field (none was named by `Connection`,
    /// so the fixed list was left out while parsing).
    pub(crate) fn hop_by_hop_removed(&self) -> bool {
        self.hop_by_hop_removed
    }

    /// The connection, when the body ended and it may serve another request.
    pub(crate) fn reusable(&mut self) -> Option<RawConn> {
        if self.framing != Framing::Done || !self.keep_alive {
            return None;
        }
        let mut conn = self.conn.take()?;
        conn.reused = true;
        Some(conn)
    }

    /// The server connection after a `101`, with the bytes the server sent past its head.
    pub(crate) fn into_upgraded(mut self) -> Option<(ServerIo, BytesMut)> {
        let conn = self.conn.take()?;
        let ConnState { io, buf, .. } = *conn.state;
        Some((io, buf))
    }

    /// Keeps `headers` (cleared) for parsing the connection's next response, unless it is
    /// unusually large.
    pub(crate) fn recycle(&mut self, headers: &mut HeaderMap) {
        if let Some(conn) = self
            .conn
            .as_mut()
            .filter(|_| headers.capacity() <= RECYCLE_MAX)
        {
            headers.clear();
            conn.state.names.spare = std::mem::take(headers);
        }
    }

    /// Reads more of a body whose end is not reached yet: the end of the stream (truncated)
    /// or a read error ends the body with an error and drops the connection.
    fn poll_more(&mut self, cx: &mut Context<'_>, want: usize) -> Poll<Result<(), BoxError>> {
        let r = match ready!(self.poll_fill(cx, want)) {
            Ok(0) => Err(truncated()),
            Ok(_) => return Poll::Ready(Ok(())),
            Err(e) => Err(e.into()),
        };
        self.conn = None;
        Poll::Ready(r)
    }

    /// Reads more from the server into the buffer; `Ok(0)` at the end of the stream.
    fn poll_fill(&mut self, cx: &mut Context<'_>, want: usize) -> Poll<io::Result<usize>> {
        let Some(conn) = self.conn.as_mut() else {
            return Poll::Ready(Ok(0));
        };
        let ConnState { io, buf, .. } = &mut *conn.state;
        buf.reserve(want);
        pin!(io.read_buf(buf)).poll(cx)
    }

    fn buffered(&self) -> usize {
        self.conn.as_ref().map_or(0, |c| c.state.buf.len())
    }
}

fn truncated() -> BoxError {
    "server closed the connection within the response body".into()
}

impl Body for RawBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        loop {
            match this.framing {
                Framing::Done => return Poll::Ready(None),
                Framing::Length(rem) => {
                    if this.buffered() == 0 {
                        // At most 16 KiB a read, HAProxy's buffer size: with 64 KiB
                        // (a new block for each chunk hyper still holds) 32 connections of
                        // 100 KB responses peaked at 26 MB of RSS against HAProxy's 15.6 MB
                        // (13 MB now), for 20% less CPU in that shape (README, Benchmarks).
                        let want = rem.clamp(4096, BODY_READ) as usize;
                        if let Err(e) = ready!(this.poll_more(cx, want)) {
                            return Poll::Ready(Some(Err(e)));
                        }
                    }
                    let Some(conn) = this.conn.as_mut() else {
                        return Poll::Ready(Some(Err(truncated())));
                    };
                    let buf = &mut conn.state.buf;
                    let n = (buf.len() as u64).min(rem) as usize;
                    let data = buf.split_to(n).freeze();
                    let rem = rem - n as u64;
                    this.framing = if rem == 0 {
                        Framing::Done
                    } else {
                        Framing::Length(rem)
                    };
                    return Poll::Ready(Some(Ok(Frame::data(data))));
                }
                Framing::Close => {
                    if let Some(conn) = this.conn.as_mut().filter(|c| !c.state.buf.is_empty()) {
                        let data = conn.state.buf.split().freeze();
                        return Poll::Ready(Some(Ok(Frame::data(data))));
                    }
                    match ready!(this.poll_fill(cx, 16 * 1024)) {
                        Ok(0) => {
                            this.framing = Framing::Done;
                            this.conn = None;
                        }
                        Ok(_) => {}
                        Err(e) => {
                            this.conn = None;
                            return Poll::Ready(Some(Err(e.into())));
                        }
                    }
                }
                Framing::Chunked(state) => match this
                    .conn
                    .as_mut()
                    .map_or(Err(truncated()), |c| chunk_step(&mut c.state.buf, state))
                {
                    Ok(Step::Data(data, next)) => {
                        this.framing = Framing::Chunked(next);
                        return Poll::Ready(Some(Ok(Frame::data(data))));
                    }
                    Ok(Step::Next(next)) => this.framing = Framing::Chunked(next),
                    Ok(Step::Trailers(trailers)) => {
                        this.framing = Framing::Done;
                        if trailers.is_empty() {
                            return Poll::Ready(None);
                        }
                        return Poll::Ready(Some(Ok(Frame::trailers(trailers))));
                    }
                    Ok(Step::More) => {
                        if let Err(e) = ready!(this.poll_more(cx, 16 * 1024)) {
                            return Poll::Ready(Some(Err(e)));
                        }
                    }
                    Err(e) => {
                        this.conn = None;
                        return Poll::Ready(Some(Err(e)));
                    }
                },
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.framing == Framing::Done
    }

    fn size_hint(&self) -> SizeHint {
        match self.framing {
            Framing::Done => SizeHint::with_exact(0),
            Framing::Length(n) => SizeHint::with_exact(n),
            _ => SizeHint::default(),
        }
    }
}

enum Step {
    Data(Bytes, Chunk),
    Next(Chunk),
    Trailers(HeaderMap),
    /// Needs more bytes.
    More,
}

/// One step of the chunked decoder over the bytes buffered so far.
fn chunk_step(buf: &mut BytesMut, state: Chunk) -> Result<Step, BoxError> {
    match state {
        Chunk::Size => {
            let Some(end) = buf.windows(2).position(|w| w == b"\r\n") else {
                if buf.len() > MAX_CHUNK_LINE {
                    return Err("chunk-size line too long".into());
                }
                return Ok(Step::More);
            };
            let n = chunk_size(&buf[..end])?;
            buf.advance(end + 2);
            Ok(Step::Next(if n == 0 {
                Chunk::Trailers
            } else {
                Chunk::Data(n)
            }))
        }
        Chunk::Data(rem) => {
            if buf.is_empty() {
                return Ok(Step::More);
            }
            let n = (buf.len() as u64).min(rem) as usize;
            let data = buf.split_to(n).freeze();
            let rem = rem - n as u64;
            Ok(Step::Data(
                data,
                if rem == 0 {
                    Chunk::DataEnd
                } else {
                    Chunk::Data(rem)
                },
            ))
        }
        Chunk::DataEnd => {
            if buf.len() < 2 {
                return Ok(Step::More);
            }
            if &buf[..2] != b"\r\n" {
                return Err("missing CRLF after chunk data".into());
            }
            buf.advance(2);
            Ok(Step::Next(Chunk::Size))
        }
        Chunk::Trailers => {
            if buf.starts_with(b"\r\n") {
                buf.advance(2);
                return Ok(Step::Trailers(HeaderMap::new()));
            }
            let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
                if buf.len() > MAX_TRAILERS {
                    return Err("trailer section too large".into());
                }
                return Ok(Step::More);
            };
            let mut slots = [httparse::EMPTY_HEADER; MAX_HEADERS];
            let trailers = match httparse::parse_headers(&buf[..end + 4], &mut slots) {
                Ok(httparse::Status::Complete((_, fields))) => {
                    let mut map = HeaderMap::with_capacity(fields.len());
                    for f in fields {
                        if let (Ok(n), Ok(v)) = (
                            HeaderName::from_bytes(f.name.as_bytes()),
                            HeaderValue::from_bytes(f.value),
                        ) {
                            map.append(n, v);
                        }
                    }
                    map
                }
                _ => return Err("invalid trailer section".into()),
            };
            buf.advance(end + 4);
            Ok(Step::Trailers(trailers))
        }
    }
}

/// The size in a chunk-size line (without its CRLF; extensions ignored).
fn chunk_size(line: &[u8]) -> Result<u64, BoxError> {
    let size = line
        .split(|&b| b == b';')
        .next()
        .unwrap_or(b"")
        .trim_ascii();
    if size.is_empty() || size.len() > 16 || !size.iter().all(u8::is_ascii_hexdigit) {
        return Err("invalid chunk size".into());
    }
    Ok(size
        .iter()
        .fold(0u64, |acc, &d| acc * 16 + u64::from(hex(d))))
}

/// Walks the chunked body bytes buffered so far without consuming them: an error in them is
/// found before the response head goes to the client. Stops at the last chunk or where the
/// bytes end.
fn check_buffered_chunks(mut b: &[u8]) -> Result<(), BoxError> {
    loop {
        let Some(end) = b.windows(2).position(|w| w == b"\r\n") else {
            if b.len() > MAX_CHUNK_LINE {
                return Err("chunk-size line too long".into());
            }
            return Ok(());
        };
        let n = chunk_size(&b[..end])?;
        if n == 0 {
            return Ok(());
        }
        let rest = &b[end + 2..];
        let Some(after) = usize::try_from(n).ok().and_then(|n| rest.get(n..)) else {
            return Ok(());
        };
        match after.get(..2) {
            Some(b"\r\n") => b = &after[2..],
            Some(_) => return Err("missing CRLF after chunk data".into()),
            None if after.first().is_some_and(|&c| c != b'\r') => {
                return Err("missing CRLF after chunk data".into())
            }
            None => return Ok(()),
        }
    }
}

fn hex(d: u8) -> u8 {
    match d {
        b'0'..=b'9' => d - b'0',
        b'a'..=b'f' => d - b'a' + 10,
        _ => d - b'A' + 10,
    }
}

/// What a server's byte stream gave, read as the direct exchange reads it: the responses
/// completed before the stream ended or went wrong (status, body, trailer count), and
/// whether it went wrong. For the fuzz target (`proxy::fuzzing`).
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Replay {
    pub(crate) responses: Vec<(u16, Vec<u8>, usize)>,
    pub(crate) failed: bool,
}

/// Reads `data` as one server connection's bytes arriving in reads of the sizes in `reads`
/// (cycled; 0 counts as 1): a head, its body, then (keep-alive, nothing else buffered, as the
/// pool requires) the next response. `head_request`: every request is a HEAD. Asserts what
/// must hold whatever the bytes: the buffer never holds more than was received, and a chunk
/// error found before the head would go out is one the decoder finds too.
fn replay(data: &[u8], reads: &[usize], asked: Asked) -> Replay {
    let mut out = Replay::default();
    let mut names = NameCache::default();
    let mut buf = BytesMut::new();
    let mut at = 0;
    let mut sizes = reads.iter().copied().cycle();
    // One read into the buffer; `false` at the end of the stream.
    let mut read = |buf: &mut BytesMut| {
        let n = sizes
            .next()
            .unwrap_or(usize::MAX)
            .max(1)
            .min(data.len() - at);
        buf.extend_from_slice(&data[at..at + n]);
        at += n;
        n > 0
    };
    loop {
        let head = loop {
            match parse_head(&mut buf, asked, &mut names) {
                Ok(Some(head)) => break head,
                Ok(None) if buf.len() < MAX_HEAD && read(&mut buf) => {}
                Ok(None) if buf.is_empty() => return out,
                Ok(None) | Err(_) => {
                    out.failed = true;
                    return out;
                }
            }
        };
        let (resp, framing, keep_alive, _) = head;
        let refused =
            matches!(framing, Framing::Chunked(_)) && check_buffered_chunks(&buf).is_err();
        let mut body = Vec::new();
        let mut trailers = 0;
        let mut state = framing;
        let complete = loop {
            assert!(buf.len() <= data.len(), "buffer beyond the input");
            match state {
                Framing::Done => break true,
                Framing::Length(rem) => {
                    if buf.is_empty() && !read(&mut buf) {
                        break false;
                    }
                    let n = (buf.len() as u64).min(rem) as usize;
                    body.extend_from_slice(&buf.split_to(n));
                    state = match rem - n as u64 {
                        0 => Framing::Done,
                        rem => Framing::Length(rem),
                    };
                }
                Framing::Close => {
                    body.extend_from_slice(&buf.split());
                    if !read(&mut buf) {
                        state = Framing::Done;
                    }
                }
                Framing::Chunked(c) => match chunk_step(&mut buf, c) {
                    Ok(Step::Data(d, next)) => {
                        body.extend_from_slice(&d);
                        state = Framing::Chunked(next);
                    }
                    Ok(Step::Next(next)) => state = Framing::Chunked(next),
                    Ok(Step::Trailers(t)) => {
                        trailers = t.len();
                        state = Framing::Done;
                    }
                    Ok(Step::More) if read(&mut buf) => {}
                    Ok(Step::More) | Err(_) => break false,
                },
            }
        };
        assert!(
            !refused || !complete,
            "the chunk precheck refused a body the decoder accepts"
        );
        if refused || !complete {
            out.failed = true;
            return out;
        }
        out.responses.push((resp.status().as_u16(), body, trailers));
        if !keep_alive || !buf.is_empty() {
            return out;
        }
    }
}

/// Reads `data` as a server's responses on one connection, in reads of the sizes in
/// `reads`, as the direct exchange does (upstream/h1.rs), and checks that the first
/// response, or the failure before it, does not depend on where the reads split the
/// bytes. Panics on a bug.
/// The fuzz target's check (proxy/fuzz, re-exported as `proxy::fuzzing`).
pub fn http1_responses(data: &[u8], reads: &[usize], head_request: bool) {
    replays_agree(data, reads, Asked::head(head_request));
}

/// [`http1_responses`] for the answers to CONNECT requests: a 2xx ends at its head (what
/// follows is the tunnel's), any other answer is framed as usual.
pub fn http1_connect_responses(data: &[u8], reads: &[usize]) {
    replays_agree(data, reads, Asked::Connect);
}

fn replays_agree(data: &[u8], reads: &[usize], asked: Asked) {
    let whole = replay(data, &[usize::MAX], asked);
    let split = replay(data, reads, asked);
    // Later responses may differ: bytes that arrive together with a response (rather
    // than after it) keep its connection out of the pool.
    let first = |r: &Replay| r.responses.first().cloned();
    assert_eq!(first(&whole), first(&split), "framing depends on the reads");
    if whole.responses.is_empty() || split.responses.is_empty() {
        assert_eq!(whole.failed, split.failed, "framing depends on the reads");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(text: &str, head_request: bool) -> Result<Option<Head>, SendError> {
        let mut buf = BytesMut::from(text);
        parse_head(
            &mut buf,
            Asked::head(head_request),
            &mut NameCache::default(),
        )
    }

    fn framing_of(text: &str) -> Framing {
        head(text, false).expect("valid").expect("complete").1
    }

    #[test]
    fn framing_rules() {
        assert_eq!(
            framing_of("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n"),
            Framing::Length(5)
        );
        assert_eq!(
            framing_of("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"),
            Framing::Done
        );
        assert_eq!(
            framing_of("HTTP/1.1 200 OK\r\nContent-Length: 7, 7\r\n\r\n"),
            Framing::Length(7)
        );
        assert_eq!(
            framing_of(
                "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\nContent-Length: 3\r\n\r\n"
            ),
            Framing::Chunked(Chunk::Size)
        );
        assert_eq!(
            framing_of("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n"),
            Framing::Close
        );
        assert_eq!(framing_of("HTTP/1.1 200 OK\r\n\r\n"), Framing::Close);
        assert_eq!(
            framing_of("HTTP/1.1 204 No Content\r\nContent-Length: 9\r\n\r\n"),
            Framing::Done
        );
        let (_, f, ..) = head("HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n", true)
            .unwrap()
            .unwrap();
        assert_eq!(f, Framing::Done, "HEAD has no body");
        for bad in [
            "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n",
            "HTTP/1.1 200 OK\r\nContent-Length: -3\r\n\r\n",
            "HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
            "HTTP/1.1 2000 OK\r\n\r\n",
            "garbage\r\n\r\n",
        ] {
            assert!(matches!(head(bad, false), Err(SendError::Bad(_))), "{bad}");
        }
    }

    #[test]
    fn a_2xx_to_connect_ends_at_its_head_and_the_connection_is_the_tunnels() {
        let mut names = NameCache::default();
        let mut buf = BytesMut::from(
            &b"HTTP/1.1 200 Connection established\r\nContent-Length: 9\r\n\r\nTLS bytes"[..],
        );
        let (resp, framing, keep_alive, _) = parse_head(&mut buf, Asked::Connect, &mut names)
            .expect("valid")
            .expect("complete");
        assert_eq!(resp.status(), 200);
        assert_eq!((framing, keep_alive), (Framing::Done, false));
        // What follows the head is the tunnel's first bytes.
        assert_eq!(&buf[..], b"TLS bytes");
        // A refusal is framed like any response, and the connection may serve again.
        let mut buf =
            BytesMut::from(&b"HTTP/1.1 403 Forbidden\r\nContent-Length: 6\r\n\r\ndenied"[..]);
        let (_, framing, keep_alive, _) = parse_head(&mut buf, Asked::Connect, &mut names)
            .expect("valid")
            .expect("complete");
        assert_eq!((framing, keep_alive), (Framing::Length(6), true));
    }

    #[test]
    fn interim_responses_are_skipped_and_keep_alive_follows_the_response() {
        let (resp, f, keep, _) = head(
            "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
            false,
        )
        .unwrap()
        .unwrap();
        assert_eq!(resp.status(), 200);
        assert_eq!(f, Framing::Length(2));
        assert!(keep);
        assert!(head("HTTP/1.1 100 Continue\r\n\r\n", false)
            .unwrap()
            .is_none());
        let (.., keep, _) = head(
            "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\n",
            false,
        )
        .unwrap()
        .unwrap();
        assert!(!keep);
        let (.., keep, _) = head("HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\n", false)
            .unwrap()
            .unwrap();
        assert!(!keep);
        let (.., keep, _) = head(
            "HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\n",
            false,
        )
        .unwrap()
        .unwrap();
        assert!(keep);
        assert!(head("HTTP/1.1 200 OK\r\nContent-Le", false)
            .unwrap()
            .is_none());
    }

    #[test]
    fn head_keeps_headers_and_a_custom_reason() {
        let (resp, ..) = head(
            "HTTP/1.1 200 Fine\r\nX-A: 1\r\nx-a: 2\r\nContent-Length: 0\r\n\r\n",
            false,
        )
        .unwrap()
        .unwrap();
        let all: Vec<_> = resp.headers().get_all("x-a").iter().collect();
        assert_eq!(all, ["1", "2"]);
        assert_eq!(
            resp.extensions()
                .get::<hyper::ext::ReasonPhrase>()
                .map(|r| r.as_bytes()),
            Some(&b"Fine"[..])
        );
    }

    fn names_of(resp: &Response<()>) -> Vec<(String, String)> {
        resp.headers()
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_str().unwrap_or("?").to_owned()))
            .collect()
    }

    #[test]
    fn header_names_are_reused_across_responses_and_refreshed_when_they_change() {
        let mut names = NameCache::default();
        let mut parse = |text: &str| {
            let mut buf = BytesMut::from(text);
            parse_head(&mut buf, Asked::Other, &mut names)
                .expect("valid")
                .expect("complete")
        };
        let pairs = |v: &[(&str, &str)]| -> Vec<(String, String)> {
            v.iter()
                .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
                .collect()
        };
        let first = "HTTP/1.1 200 OK\r\nServer: a\r\nX-Id: 1\r\nContent-Length: 2\r\n\r\n";
        let (resp, f, ..) = parse(first);
        assert_eq!(f, Framing::Length(2));
        let expected = pairs(&[("server", "a"), ("x-id", "1"), ("content-length", "2")]);
        assert_eq!(names_of(&resp), expected);
        // Same names: every one comes from the cache.
        let (resp, ..) = parse(first);
        assert_eq!(names_of(&resp), expected);
        // A different name in the middle, a different case, one more at the end.
        let (resp, f, ..) = parse(
            "HTTP/1.1 200 OK\r\nServer: b\r\nX-Other: 2\r\ncontent-length: 3\r\nETag: \"e\"\r\n\r\n",
        );
        assert_eq!(f, Framing::Length(3));
        assert_eq!(
            names_of(&resp),
            pairs(&[
                ("server", "b"),
                ("x-other", "2"),
                ("content-length", "3"),
                ("etag", "\"e\"")
            ])
        );
        // Fewer names than the cache holds; a framing field where another name was.
        let (resp, f, ..) =
            parse("HTTP/1.1 200 OK\r\nServer: c\r\nTransfer-Encoding: chunked\r\n\r\n");
        assert_eq!(f, Framing::Chunked(Chunk::Size));
        assert_eq!(names_of(&resp), pairs(&[("server", "c")]));
        let (resp, f, ..) = parse(first);
        assert_eq!(f, Framing::Length(2));
        assert_eq!(names_of(&resp), expected);
        // A recycled (cleared) request map is parsed into.
        let mut used = HeaderMap::with_capacity(8);
        used.append("x-forwarded-for", HeaderValue::from_static("10.0.0.1"));
        used.append("host", HeaderValue::from_static("a.test"));
        used.clear();
        let capacity = used.capacity();
        names.spare = used;
        let mut buf = BytesMut::from(first);
        let (resp, ..) = parse_head(&mut buf, Asked::Other, &mut names)
            .expect("valid")
            .expect("complete");
        assert_eq!(names_of(&resp), expected);
        assert_eq!(resp.headers().capacity(), capacity);
        assert_eq!(names.spare.capacity(), 0, "taken");
        // An invalid name fails without spoiling the cache for the next response.
        let mut buf = BytesMut::from("HTTP/1.1 200 OK\r\nServer: a\r\nX{: 1\r\n\r\n");
        assert!(parse_head(&mut buf, Asked::Other, &mut names).is_err());
        let mut buf = BytesMut::from(first);
        let (resp, ..) = parse_head(&mut buf, Asked::Other, &mut names)
            .expect("valid")
            .expect("complete");
        assert_eq!(names_of(&resp), expected);
    }

    /// `parsed_value` trusts httparse's check of a value's bytes: for each of the 256 bytes,
    /// a value holding it either fails to parse or is a valid `HeaderValue` with the same
    /// bytes (the unchecked conversion would otherwise make an invalid one).
    #[test]
    fn value_bytes_httparse_accepts_are_header_value_bytes() {
        let mut accepted = 0;
        for b in 0..=255u8 {
            let mut raw = b"HTTP/1.1 200 OK\r\nX-V: a".to_vec();
            raw.push(b);
            raw.extend_from_slice(b"b\r\nContent-Length: 0\r\n\r\n");
            let mut buf = BytesMut::from(&raw[..]);
            let mut names = NameCache::default();
            let Ok(Some((resp, ..))) = parse_head(&mut buf, Asked::Other, &mut names) else {
                continue;
            };
            accepted += 1;
            let v = resp.headers().get("x-v").expect("x-v");
            assert!(
                HeaderValue::from_bytes(v.as_bytes()).is_ok(),
                "byte {b:#04x}: httparse accepted what HeaderValue refuses"
            );
            assert_eq!(v.as_bytes(), [b'a', b, b'b'], "byte {b:#04x}");
        }
        // HTAB, SP to `~` and 0x80 to 0xFF; not the other controls, nor DEL.
        assert_eq!(accepted, 1 + 95 + 128);
    }

    #[test]
    fn hop_by_hop_fields_are_left_out_unless_connection_names_a_field() {
        let (resp, _, keep, removed) = head(
            "HTTP/1.1 200 OK\r\nConnection: keep-alive\r\nKeep-Alive: timeout=5\r\nX-A: 1\r\n\
             Upgrade: h2c\r\nTE: trailers\r\nProxy-Connection: x\r\nContent-Length: 0\r\n\r\n",
            false,
        )
        .unwrap()
        .unwrap();
        assert!(keep);
        assert!(removed);
        let names: Vec<_> = resp.headers().keys().map(|n| n.as_str()).collect();
        assert_eq!(names, ["x-a", "content-length"]);
        // Named fields: everything stays for remove_hop_by_hop_response, which then gives
        // the same result as above.
        let (mut resp, _, keep, removed) = head(
            "HTTP/1.1 200 OK\r\nConnection: keep-alive, x-a\r\nKeep-Alive: timeout=5\r\nX-A: 1\r\n\
             X-B: 2\r\nUpgrade: h2c\r\nContent-Length: 0\r\n\r\n",
            false,
        )
        .unwrap()
        .unwrap();
        assert!(keep);
        assert!(!removed);
        assert_eq!(resp.headers().len(), 6);
        crate::upstream::fields::remove_hop_by_hop_response(
            resp.headers_mut(),
            StatusCode::OK,
            false,
        );
        let names: Vec<_> = resp.headers().keys().map(|n| n.as_str()).collect();
        let mut names = names;
        names.sort_unstable();
        assert_eq!(names, ["content-length", "x-b"]);
        // `Connection: close` names a field `close` too.
        let (resp, _, keep, removed) = head(
            "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n",
            false,
        )
        .unwrap()
        .unwrap();
        assert!(!keep);
        assert!(!removed);
        assert!(resp.headers().contains_key(header::CONNECTION));
        // Transfer-Encoding drops Content-Length in both cases.
        let (resp, ..) = head(
            "HTTP/1.1 200 OK\r\nConnection: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n",
            false,
        )
        .unwrap()
        .unwrap();
        assert!(!resp.headers().contains_key(header::CONTENT_LENGTH));
        assert!(resp.headers().contains_key(header::TRANSFER_ENCODING));
    }

    #[test]
    fn chunked_decoding_with_extensions_and_trailers() {
        let mut buf = BytesMut::from("5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX-T: 1\r\n\r\n");
        let mut state = Chunk::Size;
        let mut body = Vec::new();
        let trailers = loop {
            match chunk_step(&mut buf, state).expect("valid") {
                Step::Data(d, next) => {
                    body.extend_from_slice(&d);
                    state = next;
                }
                Step::Next(next) => state = next,
                Step::Trailers(t) => break t,
                Step::More => panic!("all bytes are there"),
            }
        };
        assert_eq!(body, b"hello world");
        assert_eq!(trailers.get("x-t").map(|v| v.as_bytes()), Some(&b"1"[..]));
        assert!(buf.is_empty());
        let mut partial = BytesMut::from("a");
        assert!(matches!(
            chunk_step(&mut partial, Chunk::Size),
            Ok(Step::More)
        ));
        let mut bad = BytesMut::from("zz\r\n");
        assert!(chunk_step(&mut bad, Chunk::Size).is_err());
        let mut end = BytesMut::from("0\r\n\r\n");
        assert!(matches!(
            chunk_step(&mut end, Chunk::Size),
            Ok(Step::Next(Chunk::Trailers))
        ));
        assert!(
            matches!(chunk_step(&mut end, Chunk::Trailers), Ok(Step::Trailers(t)) if t.is_empty())
        );
    }

    #[test]
    fn deferred_forwarded_fields_give_the_same_head_as_forwarded_for() {
        let client = crate::upstream::fields::client_ip_value("192.0.2.7".parse().expect("ip"));
        for (host, tls) in [(Some("a.test:8080"), false), (None, true)] {
            let mut h = HeaderMap::new();
            if let Some(host) = host {
                h.insert(header::HOST, HeaderValue::from_static(host));
            }
            h.append(header::ACCEPT, HeaderValue::from_static("*/*"));
            h.append(header::ACCEPT, HeaderValue::from_static("text/html"));
            assert!(ForwardedFields::can_append_to(&h));
            let host = h.get(header::HOST).cloned();
            let mut applied = h.clone();
            crate::upstream::fields::forwarded_for_value(&mut applied, &client, tls, host.clone());
            let mut expected = Vec::new();
            encode_head(&mut expected, &Method::GET, "/", (None, &applied), None);
            let mut deferred = Vec::new();
            let fields = ForwardedFields {
                client: client.clone(),
                tls,
                host,
                host_is_authority: false,
            };
            encode_head(&mut deferred, &Method::GET, "/", (None, &h), Some(&fields));
            assert_eq!(
                String::from_utf8_lossy(&deferred),
                String::from_utf8_lossy(&expected)
            );
            assert!(!ForwardedFields::can_append_to(&applied));
        }
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-host", HeaderValue::from_static("b.test"));
        assert!(!ForwardedFields::can_append_to(&h));
    }

    #[test]
    fn request_head_is_written_as_given() {
        let mut h = HeaderMap::new();
        h.insert("host", HeaderValue::from_static("a.test"));
        h.append("x-b", HeaderValue::from_static("1"));
        h.append("x-b", HeaderValue::from_static("2"));
        let mut out = Vec::new();
        encode_head(&mut out, &Method::GET, "/p?q=1", (None, &h), None);
        assert_eq!(
            out,
            b"GET /p?q=1 HTTP/1.1\r\nhost: a.test\r\nx-b: 1\r\nx-b: 2\r\n\r\n"
        );
        // An HTTP/2 request's authority as Host, first after the request line.
        h.remove("host");
        encode_head(&mut out, &Method::GET, "/", (Some("b.test:8443"), &h), None);
        assert_eq!(
            out,
            b"GET / HTTP/1.1\r\nhost: b.test:8443\r\nx-b: 1\r\nx-b: 2\r\n\r\n"
        );
    }

    /// Feeds `wire` to the chunked decoder in reads of the sizes in `reads` (cycled); returns
    /// the body, the trailer count and the bytes left after the body, or the error.
    fn decode_chunked(wire: &[u8], reads: &[usize]) -> Result<(Vec<u8>, usize, Vec<u8>), String> {
        let mut buf = BytesMut::new();
        let mut at = 0;
        let mut sizes = reads.iter().copied().cycle();
        let mut state = Chunk::Size;
        let mut body = Vec::new();
        loop {
            match chunk_step(&mut buf, state).map_err(|e| e.to_string())? {
                Step::Data(d, next) => {
                    body.extend_from_slice(&d);
                    state = next;
                }
                Step::Next(next) => state = next,
                Step::Trailers(t) => {
                    let mut rest = buf.to_vec();
                    rest.extend_from_slice(&wire[at..]);
                    return Ok((body, t.len(), rest));
                }
                Step::More => {
                    let n = sizes.next().unwrap_or(1).max(1).min(wire.len() - at);
                    if n == 0 {
                        return Err("truncated".into());
                    }
                    buf.extend_from_slice(&wire[at..at + n]);
                    at += n;
                }
            }
        }
    }

    proptest::proptest! {
        #[test]
        fn chunked_bodies_decode_the_same_whatever_the_reads(
            chunks in proptest::collection::vec(proptest::collection::vec(proptest::num::u8::ANY, 1..40), 0..8),
            upper in proptest::bool::ANY,
            ext in proptest::bool::ANY,
            trailer in proptest::option::of("[a-z]{1,8}"),
            reads in proptest::collection::vec(1usize..16, 1..8),
            tail in proptest::collection::vec(proptest::num::u8::ANY, 0..16),
        ) {
            let mut wire = Vec::new();
            for c in &chunks {
                let size = if upper { format!("{:X}", c.len()) } else { format!("{:x}", c.len()) };
                wire.extend_from_slice(size.as_bytes());
                if ext {
                    wire.extend_from_slice(b";name=\"v\"");
                }
                wire.extend_from_slice(b"\r\n");
                wire.extend_from_slice(c);
                wire.extend_from_slice(b"\r\n");
            }
            wire.extend_from_slice(b"0\r\n");
            if let Some(t) = &trailer {
                wire.extend_from_slice(format!("x-{t}: 1\r\n").as_bytes());
            }
            wire.extend_from_slice(b"\r\n");
            let end = wire.len();
            wire.extend_from_slice(&tail);
            let decoded = decode_chunked(&wire, &reads);
            proptest::prop_assert_eq!(
                decoded,
                Ok((chunks.concat(), usize::from(trailer.is_some()), tail.clone()))
            );
            // The precheck accepts whatever part of a valid body is buffered.
            for i in 0..=end {
                proptest::prop_assert!(check_buffered_chunks(&wire[..i]).is_ok(), "prefix {}", i);
            }
        }

        #[test]
        fn a_corrupted_chunked_body_is_an_error_or_decodes_alike_whatever_the_reads(
            chunks in proptest::collection::vec(proptest::collection::vec(proptest::num::u8::ANY, 1..20), 1..5),
            at in proptest::num::usize::ANY,
            byte in proptest::num::u8::ANY,
            reads in proptest::collection::vec(1usize..8, 1..4),
        ) {
            let mut wire = Vec::new();
            for c in &chunks {
                wire.extend_from_slice(format!("{:x}\r\n", c.len()).as_bytes());
                wire.extend_from_slice(c);
                wire.extend_from_slice(b"\r\n");
            }
            wire.extend_from_slice(b"0\r\n\r\n");
            let i = at % wire.len();
            wire[i] = byte;
            let whole = decode_chunked(&wire, &[usize::MAX]);
            let split = decode_chunked(&wire, &reads);
            proptest::prop_assert_eq!(whole.is_ok(), split.is_ok());
            if let (Ok(w), Ok(s)) = (&whole, &split) {
                proptest::prop_assert_eq!(w, s);
            }
            if check_buffered_chunks(&wire).is_err() {
                proptest::prop_assert!(whole.is_err(), "precheck refused what decodes: {:?}", whole);
            }
        }
    }

    #[test]
    fn replay_reads_the_fuzz_seeds_alike_whatever_the_reads() {
        let seeds: [&[u8]; 4] = [
            include_bytes!("../../fuzz/seeds/h1_length_then_close.bin"),
            include_bytes!("../../fuzz/seeds/h1_interim_chunked_trailers.bin"),
            include_bytes!("../../fuzz/seeds/h1_head_requests.bin"),
            include_bytes!("../../fuzz/seeds/h1_switching.bin"),
        ];
        for seed in seeds {
            // The fuzz target's input: flags, four bytes of read sizes, the stream.
            let stream = &seed[5..];
            for reads in [&[1usize][..], &[2, 3], &[7], &[16, 1, 5]] {
                for head in [false, true] {
                    http1_responses(stream, reads, head);
                }
                http1_connect_responses(stream, reads);
            }
        }
        // One byte a read: a response never arrives with bytes of the next, so the connection
        // serves all three (read whole, the first response's leftovers retire it).
        assert_eq!(
            replay(&seeds[0][5..], &[usize::MAX], Asked::Other)
                .responses
                .len(),
            1
        );
        let whole = replay(&seeds[0][5..], &[1], Asked::Other);
        assert_eq!(
            whole.responses,
            vec![
                (200, b"hello".to_vec(), 0),
                (204, Vec::new(), 0),
                (200, b"rest".to_vec(), 0)
            ]
        );
        assert!(!whole.failed);
        // To a CONNECT: the 200 ends at its head whatever its fields, the rest is tunnel.
        let tunnel = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello HTTP/1.1 200 OK\r\n";
        for reads in [&[1usize][..], &[usize::MAX]] {
            let r = replay(tunnel, reads, Asked::Connect);
            assert_eq!(r.responses, vec![(200, Vec::new(), 0)], "{reads:?}");
            http1_connect_responses(tunnel, reads);
        }
        let chunked = replay(&seeds[1][5..], &[1], Asked::Other);
        assert_eq!(chunked.responses[0], (200, b"hello".to_vec(), 1));
        assert_eq!(chunked.responses[1].0, 304);
        // A bad chunk, a lying length, garbage: failures, the same whatever the reads.
        for bad in [
            &b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"[..],
            b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nshort",
            b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
            b"\x00\x01garbage\r\n\r\n",
        ] {
            for reads in [&[1usize][..], &[4], &[usize::MAX]] {
                let r = replay(bad, reads, Asked::Other);
                assert!(
                    r.failed && r.responses.is_empty(),
                    "{bad:?} {reads:?}: {r:?}"
                );
                http1_responses(bad, reads, false);
            }
        }
    }
}
