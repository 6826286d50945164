//! Request message framing and connection semantics (RFC 9112 sections 6.3,
//! 9.3): decides from a parsed head how the body is delimited, whether the
//! connection persists, and whether the client waits for `100 Continue`.

use super::chars::{is_token, trim_ows};
use super::parse::{HeaderSpan, Span, Version};
use super::HttpError;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BodyFraming {
    /// No body (no Content-Length, no Transfer-Encoding).
    Empty,
    /// Exactly this many bytes (may be 0).
    Length(u64),
    /// Transfer-Encoding: chunked.
    Chunked,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RequestInfo {
    pub framing: BodyFraming,
    /// Whether the connection may be reused after this request
    /// (HTTP/1.1: unless `Connection: close`; HTTP/1.0: only with
    /// `Connection: keep-alive`).
    pub keep_alive: bool,
    /// HTTP/1.1 request with `Expect: 100-continue` (case-insensitive).
    pub expect_continue: bool,
}

/// Validates the framing headers of a parsed head (`buf` is the buffer the
/// spans point into). Errors: Content-Length with Transfer-Encoding, several
/// or malformed Content-Length, `chunked` not final or repeated, any
/// Transfer-Encoding from an HTTP/1.0 client, HTTP/1.1 without exactly one
/// Host: 400; an unknown transfer-coding: 501.
pub fn analyze(
    buf: &[u8],
    version: Version,
    headers: &[HeaderSpan],
) -> Result<RequestInfo, HttpError> {
    let http11 = version == Version::Http11;
    let mut content_length: Option<u64> = None;
    let mut te_seen = false;
    let mut chunked = false;
    // A coding other than chunked before it: framing is known, but we
    // cannot decode it (501 once everything else checks out).
    let mut unknown_coding = false;
    // chunked followed by another coding: the length cannot be determined.
    let mut chunked_not_last = false;
    let mut hosts = 0usize;
    let mut close = false;
    let mut keep_alive_token = false;
    let mut expect_continue = false;

    for h in headers {
        let name = get(buf, h.name);
        let value = get(buf, h.value);
        if name.eq_ignore_ascii_case(b"content-length") {
            if content_length.is_some() {
                return Err(HttpError::BadRequest("several Content-Length fields"));
            }
            content_length = Some(parse_content_length(value)?);
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            te_seen = true;
            for coding in list_elements(value) {
                if chunked {
                    // Anything after chunked, even chunked again.
                    chunked_not_last = true;
                }
                if coding.eq_ignore_ascii_case(b"chunked") {
                    if chunked {
                        return Err(HttpError::BadRequest("chunked applied twice"));
                    }
                    chunked = true;
                } else if is_token(coding) {
                    unknown_coding = true;
                } else {
                    return Err(HttpError::BadRequest("malformed transfer-coding"));
                }
            }
        } else if name.eq_ignore_ascii_case(b"host") {
            hosts += 1;
        } else if name.eq_ignore_ascii_case(b"connection") {
            for opt in list_elements(value) {
                if opt.eq_ignore_ascii_case(b"close") {
                    close = true;
                } else if opt.eq_ignore_ascii_case(b"keep-alive") {
                    keep_alive_token = true;
                }
            }
        } else if name.eq_ignore_ascii_case(b"expect") {
            // RFC 9110 10.1.1: an HTTP/1.0 server must ignore 100-continue.
            if http11 && value.eq_ignore_ascii_case(b"100-continue") {
                expect_continue = true;
            }
        }
    }

    if http11 && hosts != 1 {
        return Err(HttpError::BadRequest(if hosts == 0 {
            "HTTP/1.1 request without Host"
        } else {
            "several Host fields"
        }));
    }
    let framing = if te_seen {
        // RFC 9112 6.1: chunked from a 1.0 client cannot be trusted, and
        // 6.3: with both, the two parties may disagree on the framing.
        if !http11 {
            return Err(HttpError::BadRequest("Transfer-Encoding in HTTP/1.0"));
        }
        if content_length.is_some() {
            return Err(HttpError::BadRequest(
                "Content-Length with Transfer-Encoding",
            ));
        }
        // RFC 9112 6.3: chunked not final means the body length cannot be
        // determined; that is a 400 whatever the other codings are.
        if !chunked || chunked_not_last {
            return Err(HttpError::BadRequest("chunked is not the final coding"));
        }
        if unknown_coding {
            return Err(HttpError::NotImplemented);
        }
        BodyFraming::Chunked
    } else {
        match content_length {
            Some(n) => BodyFraming::Length(n),
            None => BodyFraming::Empty,
        }
    };
    let keep_alive = if http11 {
        !close
    } else {
        keep_alive_token && !close
    };
    Ok(RequestInfo {
        framing,
        keep_alive,
        expect_continue,
    })
}

/// The spans come from our parser, but a bad one yields an empty slice
/// rather than a panic (this function is fuzzed with arbitrary spans).
fn get(buf: &[u8], s: Span) -> &[u8] {
    buf.get(s.start as usize..s.end as usize).unwrap_or(&[])
}

/// 1*DIGIT fitting u64; no sign, no list form (`5, 5`), no whitespace.
fn parse_content_length(v: &[u8]) -> Result<u64, HttpError> {
    // u64::MAX has 20 digits; more is refused even with leading zeros.
    if v.is_empty() || v.len() > 20 {
        return Err(HttpError::BadRequest("malformed Content-Length"));
    }
    let mut n: u64 = 0;
    for &b in v {
        if !b.is_ascii_digit() {
            return Err(HttpError::BadRequest("malformed Content-Length"));
        }
        n = n
            .checked_mul(10)
            .and_then(|n| n.checked_add(u64::from(b - b'0')))
            .ok_or(HttpError::BadRequest("Content-Length overflows"))?;
    }
    Ok(n)
}

/// Non-empty elements of a comma-separated list, whitespace trimmed (RFC
/// 9110 5.6.1: empty elements are ignored).
fn list_elements(v: &[u8]) -> impl Iterator<Item = &[u8]> {
    v.split(|&b| b == b',')
        .map(trim_ows)
        .filter(|e| !e.is_empty())
}
