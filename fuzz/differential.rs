//! Differential check of our head parser against `httparse` (a fuzz-only
//! dependency, so this lives apart from checks.rs, which the main crate's
//! regression test includes; that test replays differential inputs through
//! our own-side checks only).
//!
//! We are stricter than httparse by design, so disagreement is only a
//! failure where it would mean we are laxer:
//! - both complete: method, target, version, head length and the header
//!   list (names; values with surrounding SP/HTAB trimmed: both parsers trim
//!   leading and trailing whitespace, httparse since 1.8) must be identical;
//! - we complete, httparse rejects: a failure, whatever the error kind
//!   (Token = method or target byte, HeaderName, HeaderValue, NewLine,
//!   Version), unless listed in `deliberately_laxer` with its reason;
//! - we complete, httparse wants more bytes: a failure (we ended a head
//!   that is not over);
//! - we reject or want more, httparse accepts: fine (stricter by design:
//!   bare LF, several leading empty lines, bytes >= 0x80 in the target,
//!   request-target forms, HTTP/x.y other than 1.0/1.1 are 505, limits).

use rwsgi_lite::http::parse::{HeadParser, Limits, Status, Version};

/// Where we deliberately accept what httparse refuses. Empty: no such case
/// is known. (A candidate would be listed here with its reason.)
fn deliberately_laxer(_data: &[u8], _err: httparse::Error) -> Option<&'static str> {
    None
}

pub fn check_differential(data: &[u8]) {
    // Unlimited, so that our limits never explain a disagreement.
    let mut p = HeadParser::new(Limits {
        request_line: 0,
        fields: 0,
        field_size: 0,
    });
    let ours = p.parse(data);
    // Enough header slots that httparse never runs out ("A:\r\n" is 4 bytes).
    let mut slots = vec![httparse::EMPTY_HEADER; data.len() / 4 + 1];
    let mut req = httparse::Request::new(&mut slots);
    let theirs = req.parse(data);
    let Ok(Status::Complete { head_len }) = ours else {
        return;
    };
    match theirs {
        Ok(httparse::Status::Complete(n)) => {
            assert_eq!(head_len, n, "head length differs from httparse");
            let method = p.method().get(data);
            assert_eq!(
                Some(method),
                req.method.map(str::as_bytes),
                "method differs"
            );
            let target = p.target().get(data);
            assert_eq!(Some(target), req.path.map(str::as_bytes), "target differs");
            let v = match p.version() {
                Version::Http10 => 0,
                Version::Http11 => 1,
            };
            assert_eq!(Some(v), req.version, "version differs");
            let ours: Vec<(&[u8], &[u8])> = p
                .headers()
                .iter()
                .map(|h| (h.name.get(data), h.value.get(data)))
                .collect();
            let theirs: Vec<(&[u8], &[u8])> = req
                .headers
                .iter()
                .map(|h| (h.name.as_bytes(), trim(h.value)))
                .collect();
            assert_eq!(ours, theirs, "header list differs from httparse");
        }
        Ok(httparse::Status::Partial) => {
            panic!("we completed a head of {head_len} bytes that httparse finds unfinished")
        }
        Err(e) => {
            if deliberately_laxer(data, e).is_none() {
                panic!("we accept a head httparse rejects with {e:?}");
            }
        }
    }
}

/// SP/HTAB trimmed from both ends (httparse already trims; this makes the
/// comparison independent of its version).
fn trim(v: &[u8]) -> &[u8] {
    let ows = |b: &u8| *b == b' ' || *b == b'\t';
    let start = v.iter().position(|b| !ows(b)).unwrap_or(v.len());
    let end = v.iter().rposition(|b| !ows(b)).map_or(start, |i| i + 1);
    &v[start..end]
}
