//! HTTP/1 response rules (RFC 9112 §6.1, §6.3) that keep a response from being framed one way
//! by vrrplb and another way by the client (response splitting), for both the direct exchange
//! (h1.rs) and hyper's client: `chunked` at most once and only last; a `Transfer-Encoding`
//! overrides `Content-Length`, which is removed; a `101` only answers a request that asked
//! for an upgrade. A response that breaks them is a 502 (`PH--`).

use http::header::{self, HeaderMap, HeaderValue};
use http::StatusCode;

/// How a response's `Transfer-Encoding` frames its body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Coding {
    /// `chunked` last (and only once).
    Chunked,
    /// Codings without `chunked`: the body runs until the server closes.
    Close,
}

/// The framing a response's `Transfer-Encoding` values give (all fields, in order): `chunked`
/// applied more than once or followed by another coding cannot be framed without doubt.
pub(crate) fn response_coding<'a>(
    values: impl IntoIterator<Item = &'a [u8]>,
) -> Result<Coding, &'static str> {
    let mut chunked_at = None;
    let mut count = 0usize;
    for token in values
        .into_iter()
        .flat_map(|v| v.split(|&b| b == b','))
        .map(<[u8]>::trim_ascii)
        .filter(|t| !t.is_empty())
    {
        if token.eq_ignore_ascii_case(b"chunked") {
            if chunked_at.is_some() {
                return Err("chunked applied twice");
            }
            chunked_at = Some(count);
        }
        count += 1;
    }
    match chunked_at {
        Some(i) if i + 1 == count => Ok(Coding::Chunked),
        Some(_) => Err("chunked is not the last transfer coding"),
        None => Ok(Coding::Close),
    }
}

/// Checks a response hyper's client parsed (requests with a body) and removes
/// `Content-Length` when a `Transfer-Encoding` framed it. `upgrade_asked`: the forwarded
/// request carried `Upgrade`.
pub(crate) fn check_hyper_response(
    status: StatusCode,
    headers: &mut HeaderMap,
    upgrade_asked: bool,
) -> Result<(), &'static str> {
    if status == StatusCode::SWITCHING_PROTOCOLS && !upgrade_asked {
        return Err("101 Switching Protocols to a request without Upgrade");
    }
    if headers.contains_key(header::TRANSFER_ENCODING) {
        response_coding(
            headers
                .get_all(header::TRANSFER_ENCODING)
                .iter()
                .map(HeaderValue::as_bytes),
        )?;
        headers.remove(header::CONTENT_LENGTH);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn response_codings() {
        let c = |v: &[&str]| response_coding(v.iter().map(|s| s.as_bytes()));
        assert_eq!(c(&["chunked"]), Ok(Coding::Chunked));
        assert_eq!(c(&["gzip, Chunked"]), Ok(Coding::Chunked));
        assert_eq!(c(&["gzip", "chunked"]), Ok(Coding::Chunked));
        assert_eq!(c(&["gzip"]), Ok(Coding::Close));
        assert_eq!(c(&[""]), Ok(Coding::Close));
        assert!(c(&["chunked, chunked"]).is_err());
        assert!(c(&["chunked", "chunked"]).is_err());
        assert!(c(&["chunked, gzip"]).is_err());
    }

    #[test]
    fn hyper_responses() {
        let mut h = HeaderMap::new();
        assert!(check_hyper_response(StatusCode::SWITCHING_PROTOCOLS, &mut h, false).is_err());
        assert!(check_hyper_response(StatusCode::SWITCHING_PROTOCOLS, &mut h, true).is_ok());
        h.insert(header::CONTENT_LENGTH, HeaderValue::from_static("3"));
        h.insert(
            header::TRANSFER_ENCODING,
            HeaderValue::from_static("chunked"),
        );
        assert!(check_hyper_response(StatusCode::OK, &mut h, false).is_ok());
        assert!(!h.contains_key(header::CONTENT_LENGTH));
        h.insert(
            header::TRANSFER_ENCODING,
            HeaderValue::from_static("chunked, chunked"),
        );
        assert!(check_hyper_response(StatusCode::OK, &mut h, false).is_err());
    }
}
