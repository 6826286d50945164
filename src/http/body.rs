//! Request message framing and connection semantics (RFC 9112 sections 6.3,
//! 9.3): decides from a parsed head how the body is delimited, whether the
//! connection persists, and whether the client waits for `100 Continue`;
//! then reads the body by that decision ([`BodyDecoder`]).

use super::authority;
use super::chars::{is_token, trim_ows};
use super::chunked::{ChunkedDecoder, Decoded};
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

/// Whether a WSGI app can be given a request with this method. CONNECT
/// asks for a tunnel (RFC 9110 9.3.6), which a WSGI app cannot provide: a
/// 2xx would have to switch the connection out of HTTP, so it is answered
/// 501 without calling the app (as waitress and gunicorn's sync worker
/// cannot tunnel either). The parser still accepts it: the request is
/// well-formed, the server just does not implement it.
pub(crate) fn check_method(method: &[u8]) -> Result<(), HttpError> {
    if method == b"CONNECT" {
        return Err(HttpError::NotImplemented);
    }
    Ok(())
}

/// Validates the framing headers of a parsed head (`buf` is the buffer the
/// spans point into). Errors: Content-Length with Transfer-Encoding, several
/// or malformed Content-Length, `chunked` not final or repeated, any
/// Transfer-Encoding from an HTTP/1.0 client, HTTP/1.1 without exactly one
/// Host or with an invalid one: 400; an unknown transfer-coding: 501.
pub fn analyze(
    buf: &[u8],
    version: Version,
    headers: &[HeaderSpan],
) -> Result<RequestInfo, HttpError> {
    let http11 = version == Version::Http11;
    let mut scan = FieldScan::default();
    for h in headers {
        scan.field(get(buf, h.name), get(buf, h.value), http11)?;
    }
    scan.finish(http11)
}

/// What the fields that decide framing and persistence said, gathered in
/// one pass over the head.
#[derive(Default)]
struct FieldScan {
    content_length: Option<u64>,
    te_seen: bool,
    chunked: bool,
    /// A coding other than chunked before it: framing is known, but we
    /// cannot decode it (501 once everything else checks out).
    unknown_coding: bool,
    /// chunked followed by another coding: the length cannot be determined.
    chunked_not_last: bool,
    hosts: usize,
    close: bool,
    keep_alive_token: bool,
    expect_continue: bool,
}

impl FieldScan {
    #[inline]
    fn field(&mut self, name: &[u8], value: &[u8], http11: bool) -> Result<(), HttpError> {
        if name.eq_ignore_ascii_case(b"content-length") {
            if self.content_length.is_some() {
                return Err(HttpError::BadRequest("several Content-Length fields"));
            }
            self.content_length = Some(parse_content_length(value)?);
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            self.transfer_encoding(value)?;
        } else if name.eq_ignore_ascii_case(b"host") {
            self.hosts += 1;
            if !authority::is_valid_host_field(value) {
                return Err(HttpError::BadRequest("invalid Host"));
            }
        } else if name.eq_ignore_ascii_case(b"connection") {
            for opt in list_elements(value) {
                self.close |= opt.eq_ignore_ascii_case(b"close");
                self.keep_alive_token |= opt.eq_ignore_ascii_case(b"keep-alive");
            }
        } else if name.eq_ignore_ascii_case(b"expect") {
            // RFC 9110 10.1.1: an HTTP/1.0 server must ignore 100-continue.
            self.expect_continue |= http11 && value.eq_ignore_ascii_case(b"100-continue");
        }
        Ok(())
    }

    fn transfer_encoding(&mut self, value: &[u8]) -> Result<(), HttpError> {
        self.te_seen = true;
        for coding in list_elements(value) {
            // Anything after chunked, even chunked again.
            self.chunked_not_last |= self.chunked;
            if coding.eq_ignore_ascii_case(b"chunked") {
                if self.chunked {
                    return Err(HttpError::BadRequest("chunked applied twice"));
                }
                self.chunked = true;
            } else if is_token(coding) {
                self.unknown_coding = true;
            } else {
                return Err(HttpError::BadRequest("malformed transfer-coding"));
            }
        }
        Ok(())
    }

    /// The decision: RFC 9112 3.2 (Host) and 6.3 (framing), then
    /// persistence.
    fn finish(self, http11: bool) -> Result<RequestInfo, HttpError> {
        if http11 && self.hosts != 1 {
            return Err(HttpError::BadRequest(if self.hosts == 0 {
                "HTTP/1.1 request without Host"
            } else {
                "several Host fields"
            }));
        }
        let framing = if self.te_seen {
            self.transfer_framing(http11)?
        } else {
            match self.content_length {
                Some(n) => BodyFraming::Length(n),
                None => BodyFraming::Empty,
            }
        };
        let keep_alive = !self.close && (http11 || self.keep_alive_token);
        Ok(RequestInfo {
            framing,
            keep_alive,
            expect_continue: self.expect_continue,
        })
    }

    fn transfer_framing(&self, http11: bool) -> Result<BodyFraming, HttpError> {
        // RFC 9112 6.1: chunked from a 1.0 client cannot be trusted, and
        // 6.3: with both, the two parties may disagree on the framing.
        if !http11 {
            return Err(HttpError::BadRequest("Transfer-Encoding in HTTP/1.0"));
        }
        if self.content_length.is_some() {
            return Err(HttpError::BadRequest(
                "Content-Length with Transfer-Encoding",
            ));
        }
        // RFC 9112 6.3: chunked not final means the body length cannot be
        // determined; that is a 400 whatever the other codings are.
        if !self.chunked || self.chunked_not_last {
            return Err(HttpError::BadRequest("chunked is not the final coding"));
        }
        if self.unknown_coding {
            return Err(HttpError::NotImplemented);
        }
        Ok(BodyFraming::Chunked)
    }
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

/// Reads a request body by its framing: how many of the bytes after the
/// head belong to the body, where it ends, and what is wrong with it. The
/// connection decides when to read and where the body bytes go.
#[derive(Debug)]
pub(crate) struct BodyDecoder {
    kind: DecoderKind,
}

#[derive(Debug)]
enum DecoderKind {
    /// No body.
    Empty,
    /// Content-Length: the bytes still to come.
    Length { remaining: u64 },
    Chunked {
        decoder: ChunkedDecoder,
        /// Body bytes decoded so far, held to `limit`.
        received: u64,
        limit: u64,
    },
}

impl BodyDecoder {
    /// The decoder for `framing`. A declared length over `limit` is 413
    /// before any of the body is read; a chunked body is held to it as it
    /// arrives.
    #[inline]
    pub fn new(framing: BodyFraming, limit: u64) -> Result<Self, HttpError> {
        let kind = match framing {
            BodyFraming::Empty => DecoderKind::Empty,
            BodyFraming::Length(n) if n > limit => return Err(HttpError::ContentTooLarge),
            BodyFraming::Length(n) => DecoderKind::Length { remaining: n },
            BodyFraming::Chunked => DecoderKind::Chunked {
                decoder: ChunkedDecoder::new(),
                received: 0,
                limit,
            },
        };
        Ok(BodyDecoder { kind })
    }

    /// Whether the whole body has been read: from the start when there is
    /// none or its length is 0.
    #[inline]
    pub fn is_done(&self) -> bool {
        match &self.kind {
            DecoderKind::Empty => true,
            DecoderKind::Length { remaining } => *remaining == 0,
            DecoderKind::Chunked { decoder, .. } => decoder.is_done(),
        }
    }

    /// The body bytes still to come, where the framing says (not for
    /// chunked): lets the reader size its reads.
    #[inline]
    pub fn remaining(&self) -> Option<u64> {
        match &self.kind {
            DecoderKind::Empty => Some(0),
            DecoderKind::Length { remaining } => Some(*remaining),
            DecoderKind::Chunked { .. } => None,
        }
    }

    /// Takes the body's part of `input` (bytes that follow the head),
    /// appending the body bytes to `out`. Never takes a byte past the end
    /// of the body: those belong to the next (pipelined) request. Errors:
    /// malformed chunked framing, 400; a chunked body past the limit, 413
    /// (checked once per call, on all it decoded). After an error the
    /// decoder must not be used again.
    #[inline]
    pub fn decode(&mut self, input: &[u8], out: &mut Vec<u8>) -> Result<Decoded, HttpError> {
        match &mut self.kind {
            DecoderKind::Empty => Ok(Decoded {
                consumed: 0,
                done: true,
            }),
            DecoderKind::Length { remaining } => {
                let take = (*remaining).min(input.len() as u64) as usize;
                out.extend_from_slice(input.get(..take).unwrap_or_default());
                *remaining -= take as u64;
                Ok(Decoded {
                    consumed: take,
                    done: *remaining == 0,
                })
            }
            DecoderKind::Chunked {
                decoder,
                received,
                limit,
            } => {
                let before = out.len();
                let decoded = decoder.decode(input, out)?;
                *received += (out.len() - before) as u64;
                if *received > *limit {
                    return Err(HttpError::ContentTooLarge);
                }
                Ok(decoded)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::parse::{HeadParser, Limits, Status};

    /// Parses `fields` (CRLF-terminated lines) under a request line of the
    /// given version and analyzes them.
    fn analyze_fields(version: &str, fields: &str) -> Result<RequestInfo, HttpError> {
        let head = format!("POST / {version}\r\n{fields}\r\n");
        let mut p = HeadParser::new(Limits::default());
        assert!(matches!(
            p.parse(head.as_bytes()),
            Ok(Status::Complete { .. })
        ));
        analyze(head.as_bytes(), p.version(), p.headers())
    }

    fn v11(fields: &str) -> Result<RequestInfo, HttpError> {
        analyze_fields("HTTP/1.1", &format!("Host: h\r\n{fields}"))
    }

    fn v10(fields: &str) -> Result<RequestInfo, HttpError> {
        analyze_fields("HTTP/1.0", fields)
    }

    fn framing(r: Result<RequestInfo, HttpError>) -> BodyFraming {
        r.expect("should be accepted").framing
    }

    fn is_400(r: Result<RequestInfo, HttpError>) {
        assert!(matches!(r, Err(HttpError::BadRequest(_))), "{r:?}");
    }

    #[test]
    fn no_body() {
        assert_eq!(framing(v11("")), BodyFraming::Empty);
        assert_eq!(framing(v10("")), BodyFraming::Empty);
    }

    #[test]
    fn content_length() {
        assert_eq!(
            framing(v11("Content-Length: 0\r\n")),
            BodyFraming::Length(0)
        );
        assert_eq!(
            framing(v11("content-LENGTH: 42\r\n")),
            BodyFraming::Length(42)
        );
        assert_eq!(
            framing(v10("Content-Length:  7 \r\n")),
            BodyFraming::Length(7)
        );
        assert_eq!(
            framing(v11("Content-Length: 007\r\n")),
            BodyFraming::Length(7)
        );
        assert_eq!(
            framing(v11("Content-Length: 18446744073709551615\r\n")),
            BodyFraming::Length(u64::MAX)
        );
        for bad in [
            "+5",
            "-1",
            "-0",
            "0x5",
            "5 5",
            "",
            "5,5",
            "5, 5",
            "0_1",
            "1e3",
            "bla-bla",
            "18446744073709551616",
            "000000000000000000005",
            "99999999999999999999",
            "\u{664}",
        ] {
            is_400(v11(&format!("Content-Length: {bad}\r\n")));
        }
        is_400(v11("Content-Length: 5\r\nContent-Length: 5\r\n"));
        is_400(v11("Content-Length: 3\r\ncontent-length: 2\r\n"));
    }

    #[test]
    fn transfer_encoding() {
        use BodyFraming::Chunked;
        assert_eq!(framing(v11("Transfer-Encoding: chunked\r\n")), Chunked);
        assert_eq!(framing(v11("transfer-encoding: CHUNKED\r\n")), Chunked);
        assert_eq!(framing(v11("Transfer-Encoding: \tchunked \r\n")), Chunked);
        assert_eq!(framing(v11("Transfer-Encoding: ,chunked,\r\n")), Chunked);
        for bad in [
            "Transfer-Encoding: chunked, gzip\r\n",
            "Transfer-Encoding: chunked, chunked\r\n",
            "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n",
            "Transfer-Encoding: chunked\r\nTransfer-Encoding: gzip\r\n",
            "Transfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n",
            "Transfer-Encoding: identity, chunked, identity, chunked\r\n",
            "Transfer-Encoding: gzip\r\n",
            "Transfer-Encoding: identity\r\n",
            "Transfer-Encoding: \r\n",
            "Transfer-Encoding: chun ked\r\n",
            "Transfer-Encoding: \"chunked\"\r\n",
            "Transfer-Encoding: chunked;x=1\r\n",
        ] {
            is_400(v11(bad));
        }
        for unsupported in [
            "Transfer-Encoding: gzip, chunked\r\n",
            "Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n",
            "Transfer-Encoding: identity, chunked\r\n",
            "Transfer-Encoding: x-custom,chunked\r\n",
        ] {
            assert_eq!(
                v11(unsupported),
                Err(HttpError::NotImplemented),
                "{unsupported}"
            );
        }
        // With Content-Length, or from a 1.0 client: 400 whatever the codings.
        is_400(v11("Content-Length: 3\r\nTransfer-Encoding: chunked\r\n"));
        is_400(v11("Transfer-Encoding: chunked\r\nContent-Length: 3\r\n"));
        is_400(v11(
            "Content-Length: 3\r\nTransfer-Encoding: gzip, chunked\r\n",
        ));
        is_400(v11("Transfer-Encoding: identity\r\nContent-Length: 5\r\n"));
        is_400(v10("Transfer-Encoding: chunked\r\n"));
        is_400(v10("Transfer-Encoding: gzip, chunked\r\n"));
    }

    #[test]
    fn connect_is_not_implemented() {
        assert_eq!(check_method(b"CONNECT"), Err(HttpError::NotImplemented));
        assert_eq!(check_method(b"GET"), Ok(()));
        // Methods are case-sensitive: "connect" is an unknown extension
        // method the app may answer.
        assert_eq!(check_method(b"connect"), Ok(()));
    }

    #[test]
    fn host() {
        is_400(analyze_fields("HTTP/1.1", ""));
        is_400(analyze_fields("HTTP/1.1", "Host: a\r\nHost: a\r\n"));
        is_400(analyze_fields("HTTP/1.1", "Host: a\r\nhost: b\r\n"));
        assert!(analyze_fields("HTTP/1.1", "HOST: a\r\n").is_ok());
        assert!(analyze_fields("HTTP/1.1", "Host:\r\n").is_ok());
        assert!(v10("").is_ok());
        assert!(v10("Host: a\r\n").is_ok());
    }

    fn keep_alive(r: Result<RequestInfo, HttpError>) -> bool {
        r.expect("should be accepted").keep_alive
    }

    #[test]
    fn persistence() {
        assert!(keep_alive(v11("")));
        assert!(!keep_alive(v11("Connection: close\r\n")));
        assert!(!keep_alive(v11("Connection: Close\r\n")));
        assert!(!keep_alive(v11("Connection: upgrade, CLOSE\r\n")));
        assert!(!keep_alive(v11("Connection: a\r\nConnection: close\r\n")));
        assert!(keep_alive(v11("Connection: keep-alive\r\n")));
        assert!(keep_alive(v11("Connection: closed\r\n")));
        assert!(!keep_alive(v10("")));
        assert!(keep_alive(v10("Connection: keep-alive\r\n")));
        assert!(keep_alive(v10("Connection: Keep-Alive\r\n")));
        assert!(keep_alive(v10("Connection: foo, keep-alive\r\n")));
        assert!(!keep_alive(v10("Connection: keep-alive, close\r\n")));
        assert!(!keep_alive(v10("Connection: keep-alive-ish\r\n")));
    }

    fn expect(r: Result<RequestInfo, HttpError>) -> bool {
        r.expect("should be accepted").expect_continue
    }

    #[test]
    fn expect_continue() {
        assert!(!expect(v11("")));
        assert!(expect(v11("Expect: 100-continue\r\n")));
        assert!(expect(v11("expect: 100-Continue\r\n")));
        assert!(!expect(v11("Expect: 100-continuex\r\n")));
        assert!(!expect(v11("Expect: something\r\n")));
        assert!(!expect(v10("Expect: 100-continue\r\n")));
    }

    #[test]
    fn bogus_spans_do_not_panic() {
        let h = [HeaderSpan {
            name: Span { start: 5, end: 1 },
            value: Span {
                start: 0,
                end: u32::MAX,
            },
        }];
        assert!(analyze(b"abc", Version::Http10, &h).is_ok());
    }

    /// What a decoder made of `input` arriving in pieces that end at `cuts`
    /// (then the rest): each call gets every byte arrived and not yet
    /// consumed, as the connection's input buffer gives them.
    #[derive(Debug, PartialEq, Eq)]
    enum Fed {
        /// Body bytes, input bytes consumed, done.
        Ok(Vec<u8>, usize, bool),
        Err(HttpError),
    }

    fn feed(framing: BodyFraming, limit: u64, input: &[u8], cuts: &[usize]) -> Fed {
        let mut d = match BodyDecoder::new(framing, limit) {
            Ok(d) => d,
            Err(e) => return Fed::Err(e),
        };
        let mut body = Vec::new();
        let mut consumed = 0;
        for &end in cuts.iter().chain(std::iter::once(&input.len())) {
            let end = end.clamp(consumed, input.len());
            match d.decode(&input[consumed..end], &mut body) {
                Ok(r) => {
                    assert!(consumed + r.consumed <= end, "consumed past the input");
                    consumed += r.consumed;
                    assert_eq!(r.done, d.is_done());
                    if !r.done {
                        assert_eq!(consumed, end, "not done but left bytes");
                    }
                }
                Err(e) => return Fed::Err(e),
            }
        }
        Fed::Ok(body, consumed, d.is_done())
    }

    /// Whole, byte by byte and split in two at every point: all the same.
    fn fed(framing: BodyFraming, limit: u64, input: &[u8]) -> Fed {
        let whole = feed(framing, limit, input, &[]);
        let bytewise: Vec<usize> = (1..input.len()).collect();
        assert_eq!(
            feed(framing, limit, input, &bytewise),
            whole,
            "byte by byte"
        );
        for cut in 0..=input.len() {
            assert_eq!(feed(framing, limit, input, &[cut]), whole, "split at {cut}");
        }
        whole
    }

    const NEXT: &[u8] = b"GET / HTTP/1.1\r\nHost: h\r\n\r\n";

    #[test]
    fn decoder_without_body_is_done_at_once() {
        for framing in [BodyFraming::Empty, BodyFraming::Length(0)] {
            let d = BodyDecoder::new(framing, 0).unwrap();
            assert!(d.is_done());
            assert_eq!(d.remaining(), Some(0));
            assert_eq!(fed(framing, 0, NEXT), Fed::Ok(Vec::new(), 0, true));
        }
    }

    #[test]
    fn decoder_takes_a_length_exactly() {
        let framing = BodyFraming::Length(5);
        assert_eq!(
            fed(framing, 5, b"hello"),
            Fed::Ok(b"hello".to_vec(), 5, true)
        );
        assert_eq!(fed(framing, 5, b"hel"), Fed::Ok(b"hel".to_vec(), 3, false));
        // Never past the end: the pipelined request is left.
        let input = [&b"hello"[..], NEXT].concat();
        assert_eq!(fed(framing, 5, &input), Fed::Ok(b"hello".to_vec(), 5, true));
        // Once done, nothing more is taken.
        let mut d = BodyDecoder::new(framing, 5).unwrap();
        let mut body = Vec::new();
        assert_eq!(d.remaining(), Some(5));
        assert!(!d.decode(b"hel", &mut body).unwrap().done);
        assert_eq!(d.remaining(), Some(2));
        let r = d.decode(&input[3..], &mut body).unwrap();
        assert_eq!((r.consumed, r.done), (2, true));
        let r = d.decode(NEXT, &mut body).unwrap();
        assert_eq!((r.consumed, r.done), (0, true));
        assert_eq!(body, b"hello");
    }

    #[test]
    fn decoder_chunked_at_every_split() {
        let input = [
            &b"5;a=b\r\nhello\r\n6\r\n world\r\n0\r\nX: y\r\n\r\n"[..],
            NEXT,
        ]
        .concat();
        assert_eq!(
            fed(BodyFraming::Chunked, 100, &input),
            Fed::Ok(b"hello world".to_vec(), input.len() - NEXT.len(), true)
        );
        let d = BodyDecoder::new(BodyFraming::Chunked, 100).unwrap();
        assert!(!d.is_done());
        assert_eq!(d.remaining(), None);
        assert_eq!(
            fed(BodyFraming::Chunked, 100, b"5\r\nhel"),
            Fed::Ok(b"hel".to_vec(), 6, false)
        );
    }

    #[test]
    fn decoder_limits_are_413() {
        assert_eq!(
            feed(BodyFraming::Length(6), 5, b"hello!", &[]),
            Fed::Err(HttpError::ContentTooLarge)
        );
        assert_eq!(
            fed(BodyFraming::Length(5), 5, b"hello"),
            Fed::Ok(b"hello".to_vec(), 5, true)
        );
        let input = b"3\r\nhel\r\n3\r\nlo!\r\n0\r\n\r\n";
        assert_eq!(
            fed(BodyFraming::Chunked, 6, input),
            Fed::Ok(b"hello!".to_vec(), input.len(), true)
        );
        // Refused as soon as the decoded bytes pass the limit, however the
        // input is split.
        assert_eq!(
            fed(BodyFraming::Chunked, 5, input),
            Fed::Err(HttpError::ContentTooLarge)
        );
        assert_eq!(
            fed(BodyFraming::Chunked, 5, b"6\r\nhello!"),
            Fed::Err(HttpError::ContentTooLarge)
        );
    }

    #[test]
    fn decoder_malformed_chunked_is_400() {
        for bad in [
            &b"x\r\n"[..],
            b"5\r\nhelloX\r\n",
            b"5\nhello\r\n0\r\n\r\n",
            b"0\r\nContent-Length: 5\r\n\r\n",
        ] {
            assert!(
                matches!(
                    fed(BodyFraming::Chunked, 100, bad),
                    Fed::Err(HttpError::BadRequest(_))
                ),
                "{bad:?}"
            );
        }
    }
}
