//! The invariants the fuzz targets assert, shared by the targets
//! (`fuzz/fuzz_targets/*.rs`, `#[path = "../checks.rs"] mod checks;`) and by
//! the regression test (`tests/fuzz_regressions.rs`, which replays
//! `fuzz/regressions/<target>/*` and the shared request corpus through them).
//!
//! Every `check_*` function takes the raw fuzz input and panics when an
//! invariant does not hold. Nothing here needs Python or any crate besides
//! `rwsgi_lite` itself (with its `testing` feature: the `conn` check drives
//! the connection with the crate's test kit, `rwsgi_lite::testing`), so the
//! main crate's tests can include this file.
//!
//! Targets that need choices besides the bytes under test (split points,
//! write sizes, small limits) take them from the first [`CFG`] bytes of the
//! input: `seed.sh` prepends such a prefix to the corpus files.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a panic is a test's failure report
#![allow(dead_code)]

use std::rc::Rc;
use std::time::Instant;

use rwsgi_lite::http::body::{self, BodyFraming};
use rwsgi_lite::http::chunked::{ChunkedDecoder, MAX_SIZE_LINE, MAX_TRAILER};
use rwsgi_lite::http::parse::{HeadParser, HeaderSpan, Limits, Span, Status, Version};
use rwsgi_lite::http::url;
use rwsgi_lite::http::HttpError;
use rwsgi_lite::serve::app::{ConnSettings, Local, Peer, ResponseHead};
use rwsgi_lite::serve::conn::{Conn, Ctx, Progress};
use rwsgi_lite::testing::is_tchar;
use rwsgi_lite::testing::mock_stream::{In, MockStream};
use rwsgi_lite::testing::response::{try_parse_with, Response};
use rwsgi_lite::testing::stub_app::{assert_closed_once, Act, Recorded, Route, StubApp};

/// Length of the configuration prefix of `split_equivalence` and `conn`
/// inputs.
pub const CFG: usize = 4;

/// The Date the connection target's responses carry.
pub const DATE: &[u8] = b"Tue, 24 Nov 2026 09:00:00 GMT";

/// Splits an input into its configuration prefix and the bytes under test.
pub fn split_cfg(data: &[u8]) -> ([u8; CFG], &[u8]) {
    let mut cfg = [0u8; CFG];
    let n = data.len().min(CFG);
    cfg[..n].copy_from_slice(&data[..n]);
    (cfg, &data[n..])
}

/// A small deterministic PRNG (xorshift64*) seeded from input bytes, for the
/// many choices a few configuration bytes must drive.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: &[u8]) -> Self {
        // FNV-1a, then never zero (xorshift would stay at zero).
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for &b in seed {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        Rng(h | 1)
    }

    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform-ish in `0..n` (`n` > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// Small limits (0 = unlimited) chosen by three bytes, so limit edges are
/// reachable with short inputs.
pub fn small_limits(b: [u8; 3]) -> Limits {
    Limits {
        request_line: usize::from(b[0] % 64),
        fields: usize::from(b[1] % 8),
        field_size: usize::from(b[2] % 64),
    }
}

const UNLIMITED: Limits = Limits {
    request_line: 0,
    fields: 0,
    field_size: 0,
};

// ---------------------------------------------------------------------------
// parse_head
// ---------------------------------------------------------------------------

/// What one parse of a head came to, comparable across ways of feeding it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HeadOutcome {
    Partial,
    Complete {
        head_len: usize,
        method: Span,
        target: Span,
        version: Version,
        headers: Vec<HeaderSpan>,
    },
    Err(HttpError),
}

fn outcome(p: &HeadParser, r: Result<Status, HttpError>) -> HeadOutcome {
    match r {
        Ok(Status::Partial) => HeadOutcome::Partial,
        Ok(Status::Complete { head_len }) => HeadOutcome::Complete {
            head_len,
            method: p.method(),
            target: p.target(),
            version: p.version(),
            headers: p.headers().to_vec(),
        },
        Err(e) => HeadOutcome::Err(e),
    }
}

/// `parse_head`: HeadParser::parse on arbitrary bytes, with default, small
/// (input-chosen) and no limits; a complete head is checked span by span and
/// run through body::analyze; analyze also gets arbitrary spans.
pub fn check_parse_head(data: &[u8]) {
    check_head_with(Limits::default(), data);
    check_head_with(UNLIMITED, data);
    if let [a, b, c, ..] = *data {
        check_head_with(small_limits([a, b, c]), data);
    }
    check_analyze_arbitrary_spans(data);
}

/// Parses `data` whole with `limits` and checks everything about the result.
pub fn check_head_with(limits: Limits, data: &[u8]) -> HeadOutcome {
    let mut p = HeadParser::new(limits);
    let r = p.parse(data);
    let out = outcome(&p, r);
    match &out {
        HeadOutcome::Partial => {}
        HeadOutcome::Err(e) => {
            assert!(
                matches!(e.status(), 400 | 414 | 431 | 505),
                "unexpected parse error {e:?}"
            );
        }
        HeadOutcome::Complete {
            head_len,
            method,
            target,
            version,
            headers,
        } => {
            check_complete_head(limits, data, *head_len, *method, *target, *version, headers);
            // Asking again after Complete gives the same answer.
            let again = p.parse(data);
            assert_eq!(
                outcome(&p, again),
                out,
                "second parse after Complete differs"
            );
        }
    }
    out
}

#[allow(clippy::too_many_arguments)]
fn check_complete_head(
    limits: Limits,
    data: &[u8],
    head_len: usize,
    method: Span,
    target: Span,
    version: Version,
    headers: &[HeaderSpan],
) {
    assert!(head_len <= data.len(), "head_len {head_len} > input");
    let head = &data[..head_len];
    assert!(
        head.ends_with(b"\r\n\r\n"),
        "head does not end with CRLFCRLF"
    );
    let in_head = |s: Span, what: &str| {
        assert!(
            s.start <= s.end && (s.end as usize) <= head_len,
            "{what} span {s:?} outside head of {head_len}"
        );
        // Span::get must never panic, on the head or on the whole input.
        s.get(head);
        s.get(data)
    };
    let m = in_head(method, "method");
    assert!(
        !m.is_empty() && m.iter().all(|&b| is_tchar(b)),
        "bad method {m:?}"
    );
    let t = in_head(target, "target");
    assert!(
        !t.is_empty() && t.iter().all(|&b| (0x21..=0x7e).contains(&b)),
        "bad target {t:?}"
    );
    assert!(method.end < target.start, "target before method");
    // The request line is `method SP target SP HTTP/1.x CRLF`.
    let line_start = method.start as usize;
    assert!(line_start == 0 || (line_start == 2 && head.starts_with(b"\r\n")));
    assert_eq!(head[method.end as usize], b' ');
    assert_eq!(target.start, method.end + 1);
    let v = &head[target.end as usize..];
    let expect: &[u8] = match version {
        Version::Http10 => b" HTTP/1.0\r\n",
        Version::Http11 => b" HTTP/1.1\r\n",
    };
    assert!(
        v.starts_with(expect),
        "version bytes do not match {version:?}"
    );
    if limits.request_line != 0 {
        assert!(target.end as usize + 9 - line_start <= limits.request_line);
    }
    if limits.fields != 0 {
        assert!(headers.len() <= limits.fields, "more fields than the limit");
    }
    let mut prev_end = target.end;
    for h in headers {
        let name = in_head(h.name, "name");
        let value = in_head(h.value, "value");
        assert!(h.name.start > prev_end, "header spans out of order");
        assert!(h.name.end < h.value.start, "value before the colon");
        assert!(
            !name.is_empty() && name.iter().all(|&b| is_tchar(b)),
            "bad name {name:?}"
        );
        assert_eq!(head[h.name.end as usize], b':');
        assert!(
            value
                .iter()
                .all(|&b| b == b'\t' || (b >= 0x20 && b != 0x7f)),
            "bad byte in value {value:?}"
        );
        assert!(
            !value.starts_with(b" ")
                && !value.starts_with(b"\t")
                && !value.ends_with(b" ")
                && !value.ends_with(b"\t"),
            "value not trimmed {value:?}"
        );
        if limits.field_size != 0 {
            // name ... value end (without CRLF) within the limit.
            assert!((h.value.end - h.name.start) as usize <= limits.field_size);
        }
        prev_end = h.value.end.max(h.name.end);
    }
    // Framing: the spans are all in the head, so analyze gives the same
    // answer whether it sees the head or the whole buffer.
    let a = body::analyze(head, version, headers);
    let b = body::analyze(data, version, headers);
    assert_eq!(a, b, "analyze depends on bytes past the head");
    // Host (RFC 9112 3.2): a head analyze accepts has only valid Host
    // values, by a reference written apart from http::authority; one it
    // refuses for its Host has an invalid one.
    let hosts = headers
        .iter()
        .filter(|h| get(head, h.name).eq_ignore_ascii_case(b"host"));
    let all_valid = hosts.clone().all(|h| reference_host(get(head, h.value)));
    if a.is_ok() {
        assert!(all_valid, "a head with an invalid Host was accepted");
    }
    if a == Err(HttpError::BadRequest("invalid Host")) {
        assert!(!all_valid, "a valid Host was refused");
    }
    match a {
        Ok(info) => {
            if let BodyFraming::Chunked = info.framing {
                assert_eq!(version, Version::Http11, "chunked from HTTP/1.0");
            }
            if version == Version::Http10 {
                assert!(!info.expect_continue);
            }
        }
        Err(e) => assert!(matches!(e.status(), 400 | 501), "analyze error {e:?}"),
    }
}

/// A Host field value per RFC 9112 3.2 and RFC 3986 3.2.2-3.2.3, the
/// reference for http::authority: empty, or a host (a bracketed IPv6 or
/// IPvFuture literal, or a reg-name, which covers IPv4) and an optional
/// port of digits up to 65535.
fn reference_host(v: &[u8]) -> bool {
    let Ok(s) = std::str::from_utf8(v) else {
        return false;
    };
    if s.is_empty() {
        return true;
    }
    let (host, port) = if s.starts_with('[') {
        let Some(close) = s.find(']') else {
            return false;
        };
        let (host, rest) = s.split_at(close + 1);
        match rest.strip_prefix(':') {
            Some(port) => (host, Some(port)),
            None if rest.is_empty() => (host, None),
            None => return false,
        }
    } else {
        match s.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (s, None),
        }
    };
    let port_ok = port.is_none_or(|p| {
        p.chars().all(|c| c.is_ascii_digit())
            && (p.trim_start_matches('0').len() <= 5)
            && p.parse::<u64>().map_or(p.is_empty(), |n| n <= 65535)
    });
    let unreserved_or_sub = |c: char| c.is_ascii_alphanumeric() || "-._~!$&'()*+,;=".contains(c);
    let host_ok = if let Some(lit) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        lit.parse::<std::net::Ipv6Addr>().is_ok()
            || lit
                .strip_prefix(['v', 'V'])
                .and_then(|r| r.split_once('.'))
                .is_some_and(|(ver, rest)| {
                    !ver.is_empty()
                        && ver.chars().all(|c| c.is_ascii_hexdigit())
                        && !rest.is_empty()
                        && rest.chars().all(|c| unreserved_or_sub(c) || c == ':')
                })
    } else {
        // pct-encoded triples, then only unreserved and sub-delims remain.
        let mut rest = host;
        let mut ok = !host.is_empty();
        while let Some(i) = rest.find('%') {
            let hex = rest.get(i + 1..i + 3).unwrap_or("");
            ok &= hex.len() == 2 && hex.chars().all(|c| c.is_ascii_hexdigit());
            ok &= rest[..i].chars().all(unreserved_or_sub);
            rest = rest.get(i + 3..).unwrap_or("");
        }
        ok && rest.chars().all(unreserved_or_sub)
    };
    host_ok && port_ok
}

fn get(buf: &[u8], s: Span) -> &[u8] {
    buf.get(s.start as usize..s.end as usize)
        .unwrap_or_default()
}

/// body::analyze promises not to panic whatever the spans (it is public).
fn check_analyze_arbitrary_spans(data: &[u8]) {
    let spans: Vec<HeaderSpan> = data
        .chunks_exact(8)
        .take(16)
        .map(|c| {
            let n = |i: usize| u32::from(u16::from_le_bytes([c[i], c[i + 1]]));
            HeaderSpan {
                name: Span {
                    start: n(0),
                    end: n(2),
                },
                value: Span {
                    start: n(4),
                    end: n(6),
                },
            }
        })
        .collect();
    for v in [Version::Http10, Version::Http11] {
        let _ = body::analyze(data, v, &spans);
    }
}

// ---------------------------------------------------------------------------
// split_equivalence
// ---------------------------------------------------------------------------

/// Feeds growing prefixes `data[..p]` for each cut point `p` to one parser,
/// as the connection does, stopping at the first non-Partial answer.
pub fn parse_fed(limits: Limits, data: &[u8], cuts: &[usize]) -> HeadOutcome {
    let mut p = HeadParser::new(limits);
    for &c in cuts.iter().filter(|&&c| c > 0 && c < data.len()) {
        let r = p.parse(&data[..c]);
        match outcome(&p, r) {
            HeadOutcome::Partial => {}
            other => return other,
        }
    }
    let r = p.parse(data);
    outcome(&p, r)
}

/// What the chunked decoder made of some input, comparable across splits.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ChunkOutcome {
    Ok {
        output: Vec<u8>,
        consumed: usize,
        done: bool,
    },
    Err(HttpError),
}

/// Decodes `data` arriving in pieces ending at `cuts`; each call gets every
/// byte arrived but not yet consumed, as the connection's input buffer does.
pub fn chunked_fed(data: &[u8], cuts: &[usize]) -> ChunkOutcome {
    let mut d = ChunkedDecoder::new();
    let mut output = Vec::new();
    let mut consumed = 0usize;
    let mut ends: Vec<usize> = cuts
        .iter()
        .copied()
        .filter(|&c| c > 0 && c < data.len())
        .collect();
    ends.push(data.len());
    for end in ends {
        if end < consumed {
            continue;
        }
        let input = &data[consumed..end];
        match d.decode(input, &mut output) {
            Ok(r) => {
                assert!(r.consumed <= input.len(), "consumed past the input");
                assert_eq!(r.done, d.is_done());
                if !r.done {
                    assert_eq!(r.consumed, input.len(), "stopped early without done");
                }
                consumed += r.consumed;
                if r.done {
                    break;
                }
            }
            Err(e) => return ChunkOutcome::Err(e),
        }
    }
    ChunkOutcome::Ok {
        output,
        consumed,
        done: d.is_done(),
    }
}

/// Cut points chosen by `rng`: sorted, within `1..len`.
fn random_cuts(rng: &mut Rng, len: usize) -> Vec<usize> {
    if len < 2 {
        return Vec::new();
    }
    let n = rng.below(8) as usize;
    let mut cuts: Vec<usize> = (0..n)
        .map(|_| 1 + rng.below(len as u64 - 1) as usize)
        .collect();
    cuts.sort_unstable();
    cuts.dedup();
    cuts
}

/// `split_equivalence`: the same bytes (after the CFG prefix) whole, byte by
/// byte and at input-chosen cuts give the same head outcome (status or
/// error, spans, head_len) and the same chunked decoding.
pub fn check_split_equivalence(data: &[u8]) {
    let (cfg, bytes) = split_cfg(data);
    let mut rng = Rng::new(&cfg);
    let limits = match cfg[0] % 3 {
        0 => Limits::default(),
        1 => UNLIMITED,
        _ => small_limits([cfg[1], cfg[2], cfg[3]]),
    };
    let whole = parse_fed(limits, bytes, &[]);
    let bytewise: Vec<usize> = (1..bytes.len()).collect();
    assert_eq!(
        parse_fed(limits, bytes, &bytewise),
        whole,
        "byte by byte differs"
    );
    for _ in 0..3 {
        let cuts = random_cuts(&mut rng, bytes.len());
        assert_eq!(
            parse_fed(limits, bytes, &cuts),
            whole,
            "split at {cuts:?} differs"
        );
    }
    // Chunked: on the body after a complete head, else on all the bytes.
    let body = match whole {
        HeadOutcome::Complete { head_len, .. } => &bytes[head_len..],
        _ => bytes,
    };
    let whole = chunked_fed(body, &[]);
    let bytewise: Vec<usize> = (1..body.len()).collect();
    assert_eq!(
        chunked_fed(body, &bytewise),
        whole,
        "chunked byte by byte differs"
    );
    for _ in 0..3 {
        let cuts = random_cuts(&mut rng, body.len());
        assert_eq!(
            chunked_fed(body, &cuts),
            whole,
            "chunked split at {cuts:?} differs"
        );
    }
}

// ---------------------------------------------------------------------------
// chunked
// ---------------------------------------------------------------------------

/// A tchar (RFC 9110 5.6.2), written out here rather than taken from the
/// crate, so that the reference stays independent.
fn ref_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// A field-vchar, obs-text, SP or HTAB: the bytes of a field value, of
/// qdtext (but `"` and `\\`) and of a quoted-pair's second byte.
fn ref_value_byte(b: u8) -> bool {
    b == b'\t' || b == b' ' || (0x21..=0x7e).contains(&b) || b >= 0x80
}

/// What follows the chunk-size on its line, against RFC 9112 7.1.1:
/// `*( BWS ";" BWS token [ BWS "=" BWS ( token / quoted-string ) ] )`.
fn ref_chunk_ext(mut s: &[u8]) -> Option<()> {
    fn bws(s: &[u8]) -> &[u8] {
        let n = s.iter().take_while(|&&b| b == b' ' || b == b'\t').count();
        &s[n..]
    }
    fn token(s: &[u8]) -> Option<&[u8]> {
        let n = s.iter().take_while(|&&b| ref_tchar(b)).count();
        (n > 0).then(|| &s[n..])
    }
    fn quoted(s: &[u8]) -> Option<&[u8]> {
        let mut i = 1;
        loop {
            match *s.get(i)? {
                b'"' => return Some(&s[i + 1..]),
                b'\\' if ref_value_byte(*s.get(i + 1)?) => i += 2,
                b if ref_value_byte(b) && b != b'\\' => i += 1,
                _ => return None,
            }
        }
    }
    while !s.is_empty() {
        s = token(bws(bws(s).strip_prefix(b";")?))?;
        if let Some(v) = bws(s).strip_prefix(b"=") {
            let v = bws(v);
            s = if v.first() == Some(&b'"') {
                quoted(v)?
            } else {
                token(v)?
            };
        }
    }
    Some(())
}

/// A trailer field line: a token, a colon, then field-value bytes.
fn ref_trailer_line(l: &[u8]) -> Option<()> {
    let colon = l.iter().position(|&b| b == b':')?;
    let (name, value) = (&l[..colon], &l[colon + 1..]);
    (!name.is_empty()
        && name.iter().all(|&b| ref_tchar(b))
        && value.iter().all(|&b| ref_value_byte(b)))
    .then_some(())
}

/// What the reference made of a well-formed chunked message.
struct RefChunked {
    data: Vec<u8>,
    /// Through the trailer section's empty line.
    len: usize,
    /// Within the decoder's documented bounds (size line, significant
    /// digits, trailer section) and without a trailer field that must not
    /// follow a body: the decoder must then accept it.
    acceptable: bool,
}

/// An independent, simple decoder of well-formed chunked input (the chunk
/// extension and trailer grammar checked on whole lines): None when it does
/// not find a whole well-formed message.
fn reference_chunked(input: &[u8]) -> Option<RefChunked> {
    fn line(input: &[u8], at: usize) -> Option<(&[u8], usize)> {
        let rest = input.get(at..)?;
        let i = rest.windows(2).position(|w| w == b"\r\n")?;
        Some((&rest[..i], at + i + 2))
    }
    const NOT_AFTER_BODY: [&[u8]; 6] = [
        b"host",
        b"content-length",
        b"transfer-encoding",
        b"trailer",
        b"authorization",
        b"te",
    ];
    let mut out = Vec::new();
    let mut at = 0;
    let mut acceptable = true;
    loop {
        let (l, next) = line(input, at)?;
        let hex_len = l.iter().take_while(|b| b.is_ascii_hexdigit()).count();
        if hex_len == 0 {
            return None;
        }
        ref_chunk_ext(&l[hex_len..])?;
        let digits = std::str::from_utf8(&l[..hex_len]).ok()?;
        let digits = digits.trim_start_matches('0');
        acceptable &= l.len() <= MAX_SIZE_LINE && digits.len() <= 16;
        let size = if digits.is_empty() {
            0
        } else {
            u64::from_str_radix(digits, 16).ok()?
        };
        at = next;
        if size == 0 {
            break;
        }
        let size = usize::try_from(size).ok()?;
        let data = input.get(at..at.checked_add(size)?)?;
        out.extend_from_slice(data);
        at += size;
        if input.get(at..at + 2)? != b"\r\n" {
            return None;
        }
        at += 2;
    }
    let trailer_start = at;
    loop {
        let (l, next) = line(input, at)?;
        at = next;
        if l.is_empty() {
            acceptable &= at - trailer_start <= MAX_TRAILER;
            return Some(RefChunked {
                data: out,
                len: at,
                acceptable,
            });
        }
        ref_trailer_line(l)?;
        let name = &l[..l.iter().position(|&b| b == b':')?];
        acceptable &= !NOT_AFTER_BODY.iter().any(|n| n.eq_ignore_ascii_case(name));
    }
}

/// `chunked`: the decoder on arbitrary bytes never panics, never consumes
/// or outputs more than it was given, and stops only when done. It accepts
/// exactly the well-formed messages (chunk extensions and trailer fields
/// by their RFC grammar) within its bounds: what it accepts, a simple
/// reference decoder accepts too, with the same data and length; what the
/// reference accepts within the bounds, it accepts.
pub fn check_chunked(data: &[u8]) {
    let reference = reference_chunked(data);
    let mut d = ChunkedDecoder::new();
    let mut out = b"keep".to_vec();
    match d.decode(data, &mut out) {
        Ok(r) => {
            assert!(out.starts_with(b"keep"), "decode clobbered earlier output");
            let out = &out[4..];
            assert!(r.consumed <= data.len());
            assert!(out.len() <= r.consumed, "more output than input consumed");
            assert_eq!(r.done, d.is_done());
            if r.done {
                let reference = reference.expect("accepted what the reference cannot parse");
                assert_eq!(
                    out,
                    &reference.data[..],
                    "decoded data differs from the reference"
                );
                assert_eq!(
                    r.consumed, reference.len,
                    "message length differs from the reference"
                );
                // Done is final: nothing more is consumed.
                let mut more = Vec::new();
                let again = d.decode(&data[r.consumed..], &mut more);
                assert!(matches!(again, Ok(a) if a.consumed == 0 && a.done));
                assert!(more.is_empty());
            } else {
                assert_eq!(
                    r.consumed,
                    data.len(),
                    "stopped before the end without done"
                );
                assert!(
                    !reference.is_some_and(|r| r.acceptable),
                    "a whole well-formed message left unfinished"
                );
            }
        }
        Err(e) => {
            assert_eq!(e.status(), 400, "chunked error {e:?}");
            assert!(out.len() - 4 <= data.len());
            assert!(
                !reference.is_some_and(|r| r.acceptable),
                "refused a well-formed message: {e:?}"
            );
        }
    }
}

// ---------------------------------------------------------------------------
// percent_decode
// ---------------------------------------------------------------------------

fn reference_percent_decode(src: &[u8]) -> Vec<u8> {
    let hex = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
    let mut out = Vec::new();
    let mut i = 0;
    while i < src.len() {
        if src[i] == b'%' && i + 2 < src.len() {
            if let (Some(h), Some(l)) = (hex(src[i + 1]), hex(src[i + 2])) {
                out.push(h << 4 | l);
                i += 3;
                continue;
            }
        }
        out.push(src[i]);
        i += 1;
    }
    out
}

/// `percent_decode`: split_target + percent_decode_into never panic, give
/// parts of the input, decode no longer than the input, decode a string
/// without '%' to itself, and agree with a reference decoder.
pub fn check_percent_decode(data: &[u8]) {
    let (path, query) = url::split_target(data);
    assert!(
        path.len() + query.len() <= data.len().max(1),
        "split grew the target"
    );
    assert!(
        path == b"/" || is_subslice(data, path),
        "path is not part of the target"
    );
    assert!(is_subslice(data, query), "query is not part of the target");
    for s in [data, path, query] {
        let mut out = b"prefix".to_vec();
        url::percent_decode_into(s, &mut out);
        assert!(out.starts_with(b"prefix"), "earlier output clobbered");
        let out = &out[6..];
        assert!(out.len() <= s.len(), "decoded longer than the input");
        if !s.contains(&b'%') {
            assert_eq!(out, s, "no '%' but not the identity");
        }
        assert_eq!(
            out,
            &reference_percent_decode(s)[..],
            "differs from the reference"
        );
    }
}

fn is_subslice(hay: &[u8], needle: &[u8]) -> bool {
    if needle.is_empty() {
        return true;
    }
    let (h, n) = (hay.as_ptr() as usize, needle.as_ptr() as usize);
    n >= h && n + needle.len() <= h + hay.len()
}

// ---------------------------------------------------------------------------
// conn
// ---------------------------------------------------------------------------

/// Response shapes, chosen by the last byte of the request target.
const SHAPES: u8 = 7;

/// The shape of a request's response: the last byte of its target.
fn shape_of(req: &Recorded) -> u8 {
    req.target.last().copied().unwrap_or(0) % SHAPES
}

/// The shape that fails after its head and some data: the connection is
/// cut, even where the response looks whole (HEAD, 1.0 until close).
const FAILS_AFTER_HEAD: u8 = 4;
/// The shape whose body is longer than its Content-Length (the last).
const TOO_LONG: u8 = SHAPES - 1;

/// The stub app's route for every request: the last byte of the target
/// chooses the shape, the first the body size, the target's length whether
/// the events are at hand (`ready()`); each head says `X-Call: <call>`.
fn shaped(req: &Recorded, call: usize) -> Route {
    let shape = shape_of(req);
    let size = usize::from(req.target.first().copied().unwrap_or(0) % 8) * 7;
    if shape == 2 {
        return Route::CallFails;
    }
    let body: Vec<u8> = format!("call {call} body {} ", req.body.len())
        .into_bytes()
        .into_iter()
        .cycle()
        .take(size)
        .collect();
    let mut header_lines = format!("X-Call: {call}\r\n").into_bytes();
    let with_length = |h: &mut Vec<u8>, n: usize| {
        h.extend_from_slice(format!("Content-Length: {n}\r\n").as_bytes());
        Some(n as u64)
    };
    let mut head = ResponseHead {
        status: 200,
        status_line: b"200 OK".to_vec(),
        ..Default::default()
    };
    let mut acts = Vec::new();
    // Body data in up to three pieces, one of them possibly empty.
    let pieces = |body: &[u8]| -> Vec<Act> {
        let a = body.len() / 3;
        let b = body.len() / 2;
        [&body[..a], &body[a..b], &body[b..]]
            .map(|p| Act::Data(p.to_vec()))
            .into()
    };
    match shape {
        // Content-Length.
        0 => {
            head.content_length = with_length(&mut header_lines, body.len());
            head.header_lines = header_lines;
            acts.push(Act::HeadAs(head));
            acts.extend(pieces(&body));
        }
        // No Content-Length: chunked (1.1) or until close (1.0).
        1 => {
            head.header_lines = header_lines;
            acts.push(Act::HeadAs(head));
            acts.extend(pieces(&body));
        }
        // Fails before its head.
        3 => acts.push(Act::Fail),
        // Fails after its head and some data.
        FAILS_AFTER_HEAD => {
            if size % 2 == 0 {
                head.content_length = with_length(&mut header_lines, body.len() + 10);
            }
            head.header_lines = header_lines;
            acts.push(Act::HeadAs(head));
            acts.push(Act::Data(body));
            acts.push(Act::Fail);
        }
        // 204: data given is not sent.
        5 => {
            head.status = 204;
            head.status_line = b"204 No Content".to_vec();
            head.header_lines = header_lines;
            acts.push(Act::HeadAs(head));
            acts.push(Act::Data(b"dropped".to_vec()));
        }
        // TOO_LONG, the last: more data than its Content-Length; cut to
        // the length, and the connection closes.
        _ => {
            head.content_length = with_length(&mut header_lines, body.len());
            head.header_lines = header_lines;
            acts.push(Act::HeadAs(head));
            let mut more = body;
            more.extend_from_slice(b"excess");
            acts.push(Act::Data(more));
        }
    }
    if !matches!(acts.last(), Some(Act::Fail)) {
        acts.push(Act::End);
    }
    if req.target.len() % 2 == 0 {
        Route::Acts(acts)
    } else {
        Route::Gen(acts)
    }
}

/// One response read back from the connection's output.
#[derive(Debug)]
struct Parsed {
    status: u16,
    call: Option<usize>,
    close: bool,
    /// The output ended inside this response.
    truncated: bool,
}

/// The app call a response answers: its `X-Call`, or for a canned 500 the
/// call counted next; none for a protocol error.
fn app_call(r: &Response, next_call: usize) -> Option<usize> {
    match r.header("X-Call") {
        Some(k) => Some(k.parse().expect("X-Call")),
        None if r.status == 500 => Some(next_call),
        None => None,
    }
}

/// Reads responses back from `out` with the kit's reader (which checks the
/// framing). `head_requests[call]` says whether the request of app call
/// `call` was HEAD. A response cut short ends the list with `truncated`
/// set; bytes that are not a response (or a response framed wrongly) panic.
fn parse_output(out: &[u8], head_requests: &[bool]) -> Vec<Parsed> {
    let mut res = Vec::new();
    let mut at = 0;
    let mut next_call = 0usize;
    while at < out.len() {
        // A response to HEAD has no body, whoever wrote it (the app's, or
        // the canned 500 when the app failed before its head).
        let head_request = |r: &Response| {
            app_call(r, next_call)
                .and_then(|k| head_requests.get(k).copied())
                .unwrap_or(false)
        };
        let r = match try_parse_with(&out[at..], true, head_request) {
            Ok(Some(r)) => r,
            Ok(None) => {
                res.push(Parsed {
                    status: 0,
                    call: None,
                    close: false,
                    truncated: true,
                });
                return res;
            }
            Err(e) => panic!("{e}: {:?}", String::from_utf8_lossy(&out[at..])),
        };
        at += r.raw.len();
        let code = r.status;
        if code == 100 {
            assert_eq!(r.raw, b"HTTP/1.1 100 Continue\r\n\r\n");
            continue;
        }
        let mut close = false;
        for value in r.headers_named("connection") {
            assert!(value == "close" || value == "keep-alive");
            close |= value == "close";
        }
        let dates = r.headers_named("date");
        assert_eq!(dates.len(), 1, "Date header count");
        assert_eq!(dates[0].as_bytes(), DATE);
        let call = r
            .header("X-Call")
            .map(|k| k.parse::<usize>().expect("X-Call"));
        let answers = app_call(&r, next_call);
        match answers {
            Some(k) => {
                assert_eq!(k, next_call, "responses out of order");
                next_call += 1;
            }
            None => {
                assert!(
                    matches!(code, 400 | 408 | 413 | 414 | 431 | 501 | 505),
                    "unexpected status {code}"
                );
                assert!(close, "protocol error without Connection: close");
            }
        }
        let head_request = answers
            .and_then(|k| head_requests.get(k).copied())
            .unwrap_or(false);
        let no_body = head_request || code == 204 || code == 304;
        if !no_body && !r.is_chunked() && !r.has_header("content-length") {
            assert!(close, "body until close without Connection: close");
        }
        if !r.complete {
            res.push(Parsed {
                status: code,
                call,
                close,
                truncated: true,
            });
            return res;
        }
        res.push(Parsed {
            status: code,
            call,
            close,
            truncated: false,
        });
        if close {
            assert_eq!(
                at,
                out.len(),
                "bytes written after a Connection: close response"
            );
        }
    }
    res
}

const MAX_DRIVES: usize = 200_000;

/// `conn`: the connection state machine over a scripted socket with a stub
/// app. See docs/FUZZING.md for the invariants.
pub fn check_conn(data: &[u8]) {
    let (cfg, bytes) = split_cfg(data);
    let mut rng = Rng::new(&cfg);
    let mut settings = ConnSettings::default();
    match cfg[0] % 4 {
        1 => settings.high_water = 1 + rng.below(64) as usize,
        2 => settings.high_water = 1 + rng.below(4096) as usize,
        _ => {}
    }
    match cfg[1] % 8 {
        0 => settings.limit_request_body = rng.below(64),
        1 => {
            let b = rng.next().to_le_bytes();
            settings.limits = small_limits([b[0], b[1], b[2]]);
        }
        _ => {}
    }
    // The client closes its side after the script (else it just goes quiet
    // and the connection must have flushed everything).
    let eof_after = cfg[2] % 4 == 0;
    let big_reads = cfg[3] % 2 == 0;

    let mut reads = Vec::new();
    let mut rest = bytes;
    while !rest.is_empty() {
        let max = if big_reads { 512 } else { 16 };
        let n = (1 + rng.below(max) as usize).min(rest.len());
        reads.push(In::Data(rest[..n].to_vec()));
        rest = &rest[n..];
        if rng.below(2) == 0 {
            reads.push(In::WouldBlock);
        }
    }
    if eof_after {
        reads.push(In::Eof);
    }
    let mut write_sizes: Vec<usize> = (0..rng.below(16))
        .map(|_| match rng.below(8) {
            0 => 0,
            1 | 2 => 1 + rng.below(8) as usize,
            _ => 1 + rng.below(2048) as usize,
        })
        .collect();
    // At least one write in each round of the schedule makes progress.
    write_sizes.push(1 + rng.below(64) as usize);
    // Writes take the schedule's sizes in turn until it is cleared.
    let stream = MockStream::new(reads).schedule(write_sizes);
    let mut app = StubApp::new().fallback(shaped);
    let stats = app.stats.clone();
    let mut conn = Conn::new(
        stream,
        Peer::Unix,
        Rc::new(Local::Unix("/fuzz.sock".into())),
        Rc::new(settings),
        Instant::now(),
    );

    // Phase 1: the script plays out; then writes stop blocking and the
    // connection must come to rest (Open with nothing left to do) or close.
    let mut drives = 0usize;
    let mut closed = false;
    loop {
        drives += 1;
        assert!(drives <= MAX_DRIVES, "drive loop does not terminate");
        let ctx = Ctx {
            now: Instant::now(),
            date: DATE,
            draining: false,
        };
        let before = conn.stream().written.len();
        let p = match conn.drive(&mut app, &ctx) {
            Progress::Flush | Progress::FlushThenResume => conn.flush_deferred(&ctx),
            p => p,
        };
        let script_done = conn.stream().input_done();
        match p {
            Progress::Closed => {
                closed = true;
                break;
            }
            Progress::Yield | Progress::Flush | Progress::FlushThenResume => {}
            Progress::Open => {
                if script_done {
                    if !conn.stream().schedule.is_empty() {
                        conn.stream_mut().schedule.clear();
                    } else if conn.stream().written.len() == before {
                        break;
                    }
                }
            }
        }
    }
    let rested_len = conn.stream().written.len();
    // The connection shut its write side (or dropped) by itself.
    let shut = closed || conn.stream().shutdown;
    // Phase 2: the client goes away (EOF); the connection must close soon
    // without writing anything more.
    if !closed {
        conn.stream_mut().input.push_back(In::Eof);
        conn.stream_mut().schedule.clear();
        let mut n = 0;
        loop {
            n += 1;
            assert!(n <= 1000, "connection does not close after EOF");
            let ctx = Ctx {
                now: Instant::now(),
                date: DATE,
                draining: false,
            };
            let p = match conn.drive(&mut app, &ctx) {
                Progress::Flush | Progress::FlushThenResume => conn.flush_deferred(&ctx),
                p => p,
            };
            if p == Progress::Closed {
                break;
            }
        }
        assert_eq!(
            conn.stream().written.len(),
            rested_len,
            "output after the client went away"
        );
    }
    // Dropping the connection closes a response still open (it writes
    // nothing: the stream goes with it).
    let out = std::mem::take(&mut conn.stream_mut().written);
    drop(conn);

    assert_closed_once(&stats);
    // CONNECT asks for a tunnel, which an app cannot give (RFC 9110
    // 9.3.6): it is refused before the app, so no 2xx to it can go out.
    assert!(
        app.requests.iter().all(|r| r.method != b"CONNECT"),
        "a CONNECT request reached the app"
    );
    let heads: Vec<bool> = app.requests.iter().map(|r| r.method == b"HEAD").collect();
    if std::env::var_os("FUZZ_CONN_DEBUG").is_some() {
        eprintln!(
            "calls {} heads {:?} eof_after {eof_after} drives {drives}\n{}",
            stats.calls.get(),
            heads,
            String::from_utf8_lossy(&out).escape_debug()
        );
    }
    let parsed = parse_output(&out, &heads);
    let answered = parsed
        .iter()
        .filter(|r| r.call.is_some() || r.status == 500)
        .count();
    assert!(
        answered <= stats.calls.get(),
        "more app responses than calls"
    );
    if let Some(i) = parsed.iter().position(|r| r.close) {
        assert_eq!(i + 1, parsed.len(), "response after Connection: close");
    }
    // A response that requires the close (it says so, it is cut short,
    // its app failed after the head, or its body was longer than its
    // Content-Length) ends the exchange: nothing after it, no app call
    // after it, the connection shut.
    let requires_close = |r: &Parsed| {
        r.close
            || r.truncated
            || r.call
                .and_then(|k| app.requests.get(k))
                .is_some_and(|req| match shape_of(req) {
                    FAILS_AFTER_HEAD => true,
                    TOO_LONG => req.method != b"HEAD",
                    _ => false,
                })
    };
    if let Some(i) = parsed.iter().position(requires_close) {
        assert_eq!(
            i + 1,
            parsed.len(),
            "response after one requiring the close"
        );
        let answered_by_then = parsed[..=i]
            .iter()
            .filter(|r| r.call.is_some() || r.status == 500)
            .count();
        assert!(
            parsed[i].status == 0 || answered_by_then == stats.calls.get(),
            "app called after a response that required the close"
        );
        assert!(
            shut,
            "connection left open after a response requiring the close"
        );
    }
    if let Some(last) = parsed.last() {
        if last.close && last.call.is_none() && last.status != 500 {
            // A protocol error: nothing after it, and no app call after the
            // ones answered before it.
            assert_eq!(
                answered,
                stats.calls.get(),
                "app called after a protocol error"
            );
        }
    }
    if !eof_after {
        // Nothing was lost: every call answered, and only a response whose
        // app failed after its head is cut short.
        assert_eq!(answered, stats.calls.get(), "an app call went unanswered");
        if parsed.last().is_some_and(|r| r.truncated) {
            assert!(
                stats.failed_after_head.get(),
                "truncated response without an app failure"
            );
        }
        // Nor was the connection shut without a reason: requests sent
        // after the last response would go unanswered.
        if shut {
            assert!(
                parsed.last().is_some_and(requires_close),
                "connection closed after a response that allowed more"
            );
        }
    }
}
