//! Answers vrrplb generates itself (lb.md §14): built-in pages and `error_pages` files
//! (HAProxy `errorfile`).
//!
//! - `ErrorPage::builtin(StatusCode) -> ErrorPage`: our HTML page for that status.
//! - `ErrorPage::from_file(&Path) -> Result<ErrorPage, ErrorPageError>`: a raw HTTP/1.x response file, at most 16 KiB; empty = close without answering.
//! - `ErrorPage::response(&self) -> Reply`, `ErrorPage::to_bytes(&self) -> Option<Bytes>` (raw bytes for a socket; `None` = close silently).
//! - `ErrorPages::new() -> ErrorPages`: built-ins only; `ErrorPages::set(&mut self, code: u16, ErrorPage) -> Result<(), ErrorPageError>`; `ErrorPages::load(&[(u16, PathBuf)]) -> Result<ErrorPages, ErrorPageError>`.
//! - `ErrorPages::response(&self, StatusCode) -> Reply`: configured file, else built-in.
//! - `ErrorPages::raw(&self, StatusCode) -> Option<Bytes>`: the same as bytes to write straight to a socket (the 408 of the IO layer).
//! - `ErrorPages::unauthorized(&self, realm: &str) -> Response<Full<Bytes>>`: the stats page's 401 with `WWW-Authenticate: Basic realm="…"`.

use std::fmt::Write as _;
use std::io::Read as _;
use std::path::{Path, PathBuf};

use bytes::{BufMut as _, Bytes, BytesMut};
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Response, StatusCode};
use http_body_util::Full;

/// Largest accepted error file (HAProxy's buffer size).
pub const MAX_ERROR_FILE: usize = 16 * 1024;

/// Statuses an `error_pages` entry may replace.
pub const CONFIGURABLE_CODES: [u16; 7] = [400, 403, 408, 500, 502, 503, 504];

/// What to do instead of the normal response.
#[derive(Debug)]
pub enum Reply {
    /// Send this response.
    Response(Response<Full<Bytes>>),
    /// Close the connection without sending anything (an empty error file).
    CloseSilently,
}

#[derive(Debug, thiserror::Error)]
pub enum ErrorPageError {
    #[error("cannot read error page {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("error page {} is larger than {MAX_ERROR_FILE} bytes", path.display())]
    TooLarge { path: PathBuf },
    #[error("error page {} is not a valid HTTP/1.x response: {reason}", path.display())]
    Invalid { path: PathBuf, reason: String },
    #[error("error pages can replace statuses 400, 403, 408, 500, 502, 503 and 504, not {0}")]
    UnsupportedCode(u16),
}

#[derive(Debug, Clone)]
struct Page {
    status: StatusCode,
    /// Reason phrase as it will be sent (the file's, or the canonical one).
    reason: Bytes,
    /// `x` of `HTTP/1.x` in the status line of the raw form.
    minor_version: u8,
    /// Without Content-Length / Transfer-Encoding: the length is always the body's.
    headers: HeaderMap,
    body: Bytes,
}

/// One answer: a response, or "close without answering".
#[derive(Debug, Clone)]
pub struct ErrorPage {
    page: Option<Page>,
}

/// One sentence per status, in our own words.
fn builtin_sentence(status: StatusCode) -> &'static str {
    match status.as_u16() {
        // A `monitor_uri` answer.
        200 => "Service ready.",
        400 => "The load balancer could not understand this request.",
        401 => "You must log in to see this page.",
        403 => "You are not allowed to reach this resource.",
        408 => "The request took too long to arrive, so the connection was closed.",
        500 => "The load balancer hit an internal problem while handling this request.",
        501 => "The load balancer does not support this kind of request.",
        502 => "The application server sent back a broken or incomplete answer.",
        503 => "No application server is available to answer this request right now.",
        504 => "The application server did not answer in time.",
        _ => "The load balancer could not complete this request.",
    }
}

impl ErrorPage {
    /// The built-in page: `text/html`, `Cache-Control: no-cache`, and `Connection: close` for
    /// 400 and 408 (the connection cannot be trusted or is being dropped).
    pub fn builtin(status: StatusCode) -> Self {
        let reason = status.canonical_reason().unwrap_or("Error");
        let mut body = String::with_capacity(160);
        let _ = write!(
            body,
            "<html><body><h1>{} {}</h1>\n{}\n</body></html>\n",
            status.as_u16(),
            reason,
            builtin_sentence(status)
        );
        let mut headers = HeaderMap::with_capacity(3);
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html"));
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        if matches!(status.as_u16(), 400 | 408) {
            headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        Self {
            page: Some(Page {
                status,
                reason: Bytes::from_static(reason.as_bytes()),
                minor_version: 1,
                headers,
                body: Bytes::from(body),
            }),
        }
    }

    /// Reads an `errorfile`: a complete HTTP/1.x response (status line, headers, blank line,
    /// body) of at most 16 KiB. The whole rest of the file after the blank line is the body and
    /// Content-Length is recomputed from it; Transfer-Encoding is dropped. An empty file (e.g.
    /// `/dev/null`) means "close without answering".
    pub fn from_file(path: &Path) -> Result<Self, ErrorPageError> {
        let read_err = |source| ErrorPageError::Read {
            path: path.to_owned(),
            source,
        };
        let file = std::fs::File::open(path).map_err(read_err)?;
        let mut raw = Vec::with_capacity(4096);
        file.take(MAX_ERROR_FILE as u64 + 1)
            .read_to_end(&mut raw)
            .map_err(read_err)?;
        if raw.len() > MAX_ERROR_FILE {
            return Err(ErrorPageError::TooLarge {
                path: path.to_owned(),
            });
        }
        Self::parse(&raw).map_err(|reason| ErrorPageError::Invalid {
            path: path.to_owned(),
            reason,
        })
    }

    fn parse(raw: &[u8]) -> Result<Self, String> {
        if raw.is_empty() {
            return Ok(Self { page: None });
        }
        let mut slots = [httparse::EMPTY_HEADER; 100];
        let mut parsed = httparse::Response::new(&mut slots);
        let head_len = match parsed.parse(raw) {
            Ok(httparse::Status::Complete(n)) => n,
            Ok(httparse::Status::Partial) => {
                return Err("incomplete status line or headers (no blank line after them)".into())
            }
            Err(e) => return Err(e.to_string()),
        };
        let code = parsed.code.ok_or("no status code")?;
        let status = StatusCode::from_u16(code).map_err(|_| format!("bad status code {code}"))?;
        if status.is_informational() {
            return Err(format!("status {code} cannot be a final answer"));
        }
        let mut headers = HeaderMap::with_capacity(parsed.headers.len());
        for h in parsed.headers.iter() {
            let name = HeaderName::from_bytes(h.name.as_bytes())
                .map_err(|_| format!("bad header name {:?}", h.name))?;
            if name == header::CONTENT_LENGTH || name == header::TRANSFER_ENCODING {
                continue;
            }
            let value = HeaderValue::from_bytes(h.value)
                .map_err(|_| format!("bad value for header {:?}", h.name))?;
            headers.append(name, value);
        }
        Ok(Self {
            page: Some(Page {
                status,
                reason: Bytes::copy_from_slice(parsed.reason.unwrap_or("").as_bytes()),
                minor_version: parsed.version.unwrap_or(1),
                headers,
                body: Bytes::copy_from_slice(&raw[head_len..]),
            }),
        })
    }

    /// The status the page is sent with (`None` for "close without answering").
    pub fn status(&self) -> Option<StatusCode> {
        self.page.as_ref().map(|p| p.status)
    }

    /// The page as a hyper response. A reason phrase other than the canonical one is carried
    /// in `hyper::ext::ReasonPhrase`, which hyper's HTTP/1 server writes as is.
    pub fn response(&self) -> Reply {
        let Some(page) = &self.page else {
            return Reply::CloseSilently;
        };
        let mut response = Response::new(Full::new(page.body.clone()));
        *response.status_mut() = page.status;
        *response.headers_mut() = page.headers.clone();
        let canonical = page.status.canonical_reason().unwrap_or("").as_bytes();
        if page.reason.as_ref() != canonical {
            if let Ok(reason) = hyper::ext::ReasonPhrase::try_from(page.reason.clone()) {
                response.extensions_mut().insert(reason);
            }
        }
        Reply::Response(response)
    }

    /// The complete response as bytes, for writing to a socket before hyper is involved
    /// (`None` = close without answering).
    pub fn to_bytes(&self) -> Option<Bytes> {
        let page = self.page.as_ref()?;
        let headers_len: usize = page
            .headers
            .iter()
            .map(|(n, v)| n.as_str().len() + v.len() + 4)
            .sum();
        let mut out = BytesMut::with_capacity(64 + headers_len + page.body.len());
        let mut line = String::with_capacity(32);
        let _ = write!(
            line,
            "HTTP/1.{} {} ",
            page.minor_version,
            page.status.as_u16()
        );
        out.put_slice(line.as_bytes());
        out.put_slice(&page.reason);
        out.put_slice(b"\r\n");
        for (name, value) in &page.headers {
            out.put_slice(name.as_str().as_bytes());
            out.put_slice(b": ");
            out.put_slice(value.as_bytes());
            out.put_slice(b"\r\n");
        }
        line.clear();
        let _ = write!(line, "content-length: {}\r\n\r\n", page.body.len());
        out.put_slice(line.as_bytes());
        out.put_slice(&page.body);
        Some(out.freeze())
    }
}

/// The pages of one frontend: built-ins, replaced by configured files where given.
#[derive(Debug, Clone, Default)]
pub struct ErrorPages {
    custom: Vec<(u16, ErrorPage)>,
}

impl ErrorPages {
    /// Built-in pages only.
    pub fn new() -> Self {
        Self::default()
    }

    /// Loads every `error_pages` entry (code, file); the first failure is returned.
    pub fn load(files: &[(u16, PathBuf)]) -> Result<Self, ErrorPageError> {
        let mut pages = Self::new();
        for (code, path) in files {
            if !CONFIGURABLE_CODES.contains(code) {
                return Err(ErrorPageError::UnsupportedCode(*code));
            }
            pages.set(*code, ErrorPage::from_file(path)?)?;
        }
        Ok(pages)
    }

    /// Replaces the page for `code` (one of [`CONFIGURABLE_CODES`]).
    pub fn set(&mut self, code: u16, page: ErrorPage) -> Result<(), ErrorPageError> {
        if !CONFIGURABLE_CODES.contains(&code) {
            return Err(ErrorPageError::UnsupportedCode(code));
        }
        self.custom.retain(|(c, _)| *c != code);
        self.custom.push((code, page));
        Ok(())
    }

    fn custom(&self, status: StatusCode) -> Option<&ErrorPage> {
        self.custom
            .iter()
            .find(|(c, _)| *c == status.as_u16())
            .map(|(_, p)| p)
    }

    /// What to answer for `status`: the configured file, else the built-in page.
    pub fn response(&self, status: StatusCode) -> Reply {
        match self.custom(status) {
            Some(page) => page.response(),
            None => ErrorPage::builtin(status).response(),
        }
    }

    /// [`Self::response`] as raw bytes (`None` = close without answering).
    pub fn raw(&self, status: StatusCode) -> Option<Bytes> {
        match self.custom(status) {
            Some(page) => page.to_bytes(),
            None => ErrorPage::builtin(status).to_bytes(),
        }
    }

    /// The stats page's 401: the built-in page plus `WWW-Authenticate: Basic realm="<realm>"`
    /// (quotes and backslashes in the realm escaped, control characters dropped).
    pub fn unauthorized(&self, realm: &str) -> Response<Full<Bytes>> {
        let mut challenge = String::with_capacity(realm.len() + 16);
        challenge.push_str("Basic realm=\"");
        for c in realm.chars().filter(|c| !c.is_control()) {
            if c == '"' || c == '\\' {
                challenge.push('\\');
            }
            challenge.push(c);
        }
        challenge.push('"');
        let mut response = match ErrorPage::builtin(StatusCode::UNAUTHORIZED).response() {
            Reply::Response(r) => r,
            Reply::CloseSilently => Response::new(Full::new(Bytes::new())),
        };
        *response.status_mut() = StatusCode::UNAUTHORIZED;
        if let Ok(value) = HeaderValue::from_str(&challenge) {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, value);
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt as _;

    struct TempFile(PathBuf);

    impl TempFile {
        fn new(name: &str, contents: &[u8]) -> Self {
            let path = std::env::temp_dir()
                .join(format!("vrrplb-errorpage-{}-{name}", std::process::id()));
            std::fs::write(&path, contents).expect("write temp file");
            Self(path)
        }
    }

    impl Drop for TempFile {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }

    fn response(reply: Reply) -> Response<Full<Bytes>> {
        match reply {
            Reply::Response(r) => r,
            Reply::CloseSilently => panic!("expected a response"),
        }
    }

    fn body(r: Response<Full<Bytes>>) -> Bytes {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime");
        rt.block_on(r.into_body().collect())
            .expect("infallible")
            .to_bytes()
    }

    #[test]
    fn builtin_503_page() {
        let r = response(ErrorPages::new().response(StatusCode::SERVICE_UNAVAILABLE));
        assert_eq!(r.status(), 503);
        assert_eq!(r.headers()[header::CONTENT_TYPE], "text/html");
        assert_eq!(r.headers()[header::CACHE_CONTROL], "no-cache");
        assert!(r.headers().get(header::CONNECTION).is_none());
        assert!(r.extensions().get::<hyper::ext::ReasonPhrase>().is_none());
        let b = body(r);
        assert!(b.starts_with(b"<html><body><h1>503 Service Unavailable</h1>"));
    }

    #[test]
    fn builtin_400_and_408_close_the_connection() {
        for code in [StatusCode::BAD_REQUEST, StatusCode::REQUEST_TIMEOUT] {
            let r = response(ErrorPages::new().response(code));
            assert_eq!(r.headers()[header::CONNECTION], "close", "{code}");
        }
        for code in [403, 500, 502, 504] {
            let code = StatusCode::from_u16(code).expect("code");
            let r = response(ErrorPages::new().response(code));
            assert!(r.headers().get(header::CONNECTION).is_none(), "{code}");
        }
    }

    #[test]
    fn builtin_pages_have_own_heading_for_each_code() {
        for (code, heading) in [
            (400, "400 Bad Request"),
            (401, "401 Unauthorized"),
            (403, "403 Forbidden"),
            (408, "408 Request Timeout"),
            (500, "500 Internal Server Error"),
            (502, "502 Bad Gateway"),
            (504, "504 Gateway Timeout"),
        ] {
            let page = ErrorPage::builtin(StatusCode::from_u16(code).expect("code"));
            let raw = page.to_bytes().expect("bytes");
            let text = String::from_utf8(raw.to_vec()).expect("utf8");
            assert!(text.contains(&format!("<h1>{heading}</h1>")), "{text}");
        }
    }

    #[test]
    fn builtin_408_raw_bytes() {
        let raw = ErrorPages::new()
            .raw(StatusCode::REQUEST_TIMEOUT)
            .expect("bytes");
        let text = std::str::from_utf8(&raw).expect("utf8");
        let (head, body) = text.split_once("\r\n\r\n").expect("blank line");
        assert!(head.starts_with("HTTP/1.1 408 Request Timeout\r\n"));
        assert!(head.contains("\r\nconnection: close"));
        assert!(head.contains("\r\ncontent-type: text/html"));
        assert!(head.contains(&format!("\r\ncontent-length: {}", body.len())));
        assert!(body.starts_with("<html><body><h1>408 Request Timeout</h1>"));
    }

    #[test]
    fn errorfile_round_trip_from_temp_file() {
        let file = TempFile::new(
            "503.http",
            b"HTTP/1.0 503 Down For Maintenance\r\n\
              Cache-Control: no-cache\r\n\
              Connection: close\r\n\
              Content-Type: text/html; charset=utf-8\r\n\
              Content-Length: 3\r\n\
              \r\n\
              <p>Back at 14:00</p>\n",
        );
        let mut pages = ErrorPages::new();
        pages
            .set(503, ErrorPage::from_file(&file.0).expect("parse"))
            .expect("set");

        let r = response(pages.response(StatusCode::SERVICE_UNAVAILABLE));
        assert_eq!(r.status(), 503);
        assert_eq!(
            r.extensions()
                .get::<hyper::ext::ReasonPhrase>()
                .expect("custom reason")
                .as_bytes(),
            b"Down For Maintenance"
        );
        assert_eq!(
            r.headers()[header::CONTENT_TYPE],
            "text/html; charset=utf-8"
        );
        assert_eq!(r.headers()[header::CONNECTION], "close");
        assert!(r.headers().get(header::CONTENT_LENGTH).is_none());
        assert_eq!(body(r), "<p>Back at 14:00</p>\n");

        let raw = pages.raw(StatusCode::SERVICE_UNAVAILABLE).expect("bytes");
        let text = std::str::from_utf8(&raw).expect("utf8");
        assert!(text.starts_with("HTTP/1.0 503 Down For Maintenance\r\n"));
        assert!(text.contains("content-length: 21\r\n\r\n<p>Back at 14:00</p>\n"));
        assert!(!text.contains("Content-Length: 3"));

        // Other codes still use the built-in pages.
        let r = response(pages.response(StatusCode::BAD_GATEWAY));
        assert!(body(r).starts_with(b"<html><body><h1>502 Bad Gateway</h1>"));
    }

    #[test]
    fn errorfile_status_line_sent_as_written_even_200() {
        let page = ErrorPage::parse(b"HTTP/1.1 200 OK\nContent-Type: text/plain\n\nmaintenance\n")
            .expect("parse");
        assert_eq!(page.status(), Some(StatusCode::OK));
        let r = response(page.response());
        assert!(r.extensions().get::<hyper::ext::ReasonPhrase>().is_none());
        assert_eq!(body(r), "maintenance\n");
    }

    #[test]
    fn empty_errorfile_means_close_silently() {
        let file = TempFile::new("408-empty", b"");
        let mut pages = ErrorPages::new();
        pages
            .set(408, ErrorPage::from_file(&file.0).expect("parse"))
            .expect("set");
        assert!(matches!(
            pages.response(StatusCode::REQUEST_TIMEOUT),
            Reply::CloseSilently
        ));
        assert!(pages.raw(StatusCode::REQUEST_TIMEOUT).is_none());
    }

    #[test]
    fn dev_null_is_an_empty_errorfile() {
        let page = ErrorPage::from_file(Path::new("/dev/null")).expect("parse");
        assert!(page.status().is_none());
    }

    #[test]
    fn errorfile_too_large_rejected() {
        let mut contents = b"HTTP/1.1 503 Service Unavailable\r\n\r\n".to_vec();
        contents.resize(MAX_ERROR_FILE + 1, b'x');
        let file = TempFile::new("big", &contents);
        let err = ErrorPage::from_file(&file.0).expect_err("too large");
        assert!(matches!(err, ErrorPageError::TooLarge { .. }));

        contents.truncate(MAX_ERROR_FILE);
        let file = TempFile::new("max", &contents);
        assert!(ErrorPage::from_file(&file.0).is_ok());
    }

    #[test]
    fn errorfile_syntax_errors_name_the_file() {
        for (name, contents) in [
            ("nohttp", &b"<html>maintenance</html>"[..]),
            (
                "noblank",
                &b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/html\r\n"[..],
            ),
            ("info", &b"HTTP/1.1 100 Continue\r\n\r\n"[..]),
        ] {
            let file = TempFile::new(name, contents);
            let err = ErrorPage::from_file(&file.0).expect_err(name);
            assert!(matches!(err, ErrorPageError::Invalid { .. }), "{name}");
            assert!(err.to_string().contains(&file.0.display().to_string()));
        }
        let err =
            ErrorPage::from_file(Path::new("/nonexistent/vrrplb/503.http")).expect_err("missing");
        assert!(matches!(err, ErrorPageError::Read { .. }));
    }

    #[test]
    fn only_configurable_codes_accepted() {
        let mut pages = ErrorPages::new();
        let err = pages
            .set(404, ErrorPage::builtin(StatusCode::NOT_FOUND))
            .expect_err("404");
        assert!(matches!(err, ErrorPageError::UnsupportedCode(404)));
        assert!(matches!(
            ErrorPages::load(&[(401, PathBuf::from("/dev/null"))]),
            Err(ErrorPageError::UnsupportedCode(401))
        ));
        assert!(ErrorPages::load(&[(408, PathBuf::from("/dev/null"))]).is_ok());
    }

    #[test]
    fn unauthorized_carries_realm() {
        let r = ErrorPages::new().unauthorized("vrrplb \"Statistics\"");
        assert_eq!(r.status(), 401);
        assert_eq!(
            r.headers()[header::WWW_AUTHENTICATE],
            "Basic realm=\"vrrplb \\\"Statistics\\\"\""
        );
        assert!(body(r).starts_with(b"<html><body><h1>401 Unauthorized</h1>"));
    }
}
