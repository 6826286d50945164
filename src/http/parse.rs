//! Incremental, zero-copy request-head parser (RFC 9112 sections 2-5).
//!
//! The caller owns the buffer; the parser remembers how far it has examined
//! it and records spans (offsets) of the method, target and header fields, so
//! a head arriving in N pieces is scanned once, not N times, and nothing is
//! copied or allocated per request (the header span Vec is reused).

use memchr::{memchr, memchr2};

use super::chars::{is_ows, is_tchar};
use super::HttpError;

/// Hard cap on a whole head, whatever the limits say (0 means unlimited
/// there): keeps every offset far inside `u32` and bounds the header Vec.
pub const MAX_HEAD: usize = 1 << 20;

/// Byte offsets `[start, end)` into the buffer passed to [`HeadParser::parse`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Span {
    pub start: u32,
    pub end: u32,
}

impl Span {
    #[inline]
    pub fn get<'b>(&self, buf: &'b [u8]) -> &'b [u8] {
        &buf[self.start as usize..self.end as usize]
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Version {
    Http10,
    Http11,
}

/// One header field: the name as sent (case preserved) and the value with
/// leading/trailing whitespace removed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HeaderSpan {
    pub name: Span,
    pub value: Span,
}

/// Size limits; exceeding them yields 414 (request line) or 431 (fields).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Longest request line, without its CRLF.
    pub request_line: usize,
    /// Most header fields.
    pub fields: usize,
    /// Longest header field line (name, colon, value), without its CRLF.
    pub field_size: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            request_line: 8190,
            fields: 100,
            field_size: 8190,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    /// More bytes are needed.
    Partial,
    /// The head is complete: it occupies `buf[..head_len]` (including one
    /// ignored leading CRLF, if any, and the final empty line).
    Complete { head_len: usize },
}

/// Where the parser stands; each state names what the next byte must be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Before anything: an optional leading CRLF or the method.
    Start,
    /// After the leading CR.
    StartLf,
    Method,
    Target,
    /// Inside `HTTP/D.D`; the offset into it is `pos - version_start`.
    Version,
    RequestLineLf,
    /// First byte of a field line or of the final empty line.
    LineStart,
    Name,
    /// Whitespace between the colon and the value.
    Ows,
    Value,
    FieldLf,
    FinalLf,
    Done,
}

/// Resumable parser state for one request head.
#[derive(Debug)]
pub struct HeadParser {
    limits: Limits,
    state: State,
    /// Next byte to examine; everything before it has been validated.
    pos: usize,
    /// Start of the line being parsed (limits are measured from here).
    line_start: usize,
    version_start: usize,
    /// The two digits of `HTTP/D.D`, kept as they go by so the version is
    /// decided without looking back.
    version_digits: [u8; 2],
    name_end: usize,
    value_start: usize,
    /// One past the last non-whitespace byte of the value so far.
    value_end: usize,
    method: Span,
    target: Span,
    version: Version,
    headers: Vec<HeaderSpan>,
}

#[inline]
fn span(start: usize, end: usize) -> Span {
    // Offsets never exceed MAX_HEAD (the buffer is truncated to it), so the
    // conversion cannot fail; saturating keeps this panic-free regardless.
    Span {
        start: u32::try_from(start).unwrap_or(u32::MAX),
        end: u32::try_from(end).unwrap_or(u32::MAX),
    }
}

/// 0 means unlimited (gunicorn's convention); MAX_HEAD still applies.
#[inline]
fn effective(limit: usize) -> usize {
    if limit == 0 {
        usize::MAX
    } else {
        limit
    }
}

/// End (exclusive) of the bytes of the current line that may be examined:
/// those at offsets below `limit`, plus the byte at offset `limit` when it is
/// a CR (a line of exactly `limit` bytes). If the scan reaches this end and
/// the buffer holds more, the line is over its limit whatever comes next.
#[inline]
fn window(buf: &[u8], line_start: usize, limit: usize) -> usize {
    let lim = line_start.saturating_add(limit);
    match buf.get(lim) {
        None => buf.len(),
        Some(b'\r') => lim + 1,
        Some(_) => lim,
    }
}

// Branch-free per byte so LLVM vectorises these; the position of the first
// bad byte does not matter because every bad byte gives the same 400.
#[inline]
fn all_field_value(s: &[u8]) -> bool {
    !s.iter().fold(false, |bad, &b| {
        bad | ((b < 0x20) & (b != b'\t')) | (b == 0x7f)
    })
}

#[inline]
fn all_target(s: &[u8]) -> bool {
    !s.iter()
        .fold(false, |bad, &b| bad | !(0x21..=0x7e).contains(&b))
}

const fn bad(detail: &'static str) -> HttpError {
    HttpError::BadRequest(detail)
}

impl HeadParser {
    pub fn new(limits: Limits) -> Self {
        HeadParser {
            limits,
            state: State::Start,
            pos: 0,
            line_start: 0,
            version_start: 0,
            version_digits: [0; 2],
            name_end: 0,
            value_start: 0,
            value_end: 0,
            method: Span::default(),
            target: Span::default(),
            version: Version::Http11,
            headers: Vec::new(),
        }
    }

    /// Forget everything; the next `parse` starts a new head at `buf[0]`.
    pub fn reset(&mut self) {
        self.state = State::Start;
        self.pos = 0;
        self.line_start = 0;
        self.version_start = 0;
        self.version_digits = [0; 2];
        self.name_end = 0;
        self.value_start = 0;
        self.value_end = 0;
        self.method = Span::default();
        self.target = Span::default();
        self.version = Version::Http11;
        // clear, not a new Vec: the capacity is what makes parsing
        // allocation-free after the first few requests.
        self.headers.clear();
    }

    /// The limits this parser enforces.
    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// Examines `buf` (which always starts at the head's first byte and only
    /// grows between calls until `reset`) from where the previous call
    /// stopped. Returns `Partial` only when the head may still become valid:
    /// any byte that makes it invalid is an error at once, and limits are
    /// enforced on incomplete lines too.
    ///
    /// Limits of 0 mean unlimited; whatever the limits, a head longer than
    /// [`MAX_HEAD`] is refused (414 while still in the request line, else
    /// 431). After an error the parser must be `reset` before reuse.
    pub fn parse(&mut self, buf: &[u8]) -> Result<Status, HttpError> {
        if self.state == State::Done {
            return Ok(Status::Complete { head_len: self.pos });
        }
        let full_len = buf.len();
        let buf = buf.get(..MAX_HEAD).unwrap_or(buf);
        let line_limit = effective(self.limits.request_line);
        let field_limit = effective(self.limits.field_size);
        let max_fields = effective(self.limits.fields);

        while let Some(&b) = buf.get(self.pos) {
            match self.state {
                State::Start => match b {
                    b'\r' => {
                        self.pos += 1;
                        self.state = State::StartLf;
                    }
                    b'\n' => return Err(bad("bare LF")),
                    _ => {
                        self.line_start = self.pos;
                        self.state = State::Method;
                    }
                },
                State::StartLf => {
                    if b != b'\n' {
                        return Err(bad("bare CR"));
                    }
                    self.pos += 1;
                    self.line_start = self.pos;
                    self.state = State::Method;
                }
                State::Method => {
                    let end = window(buf, self.line_start, line_limit);
                    let seg = buf.get(self.pos..end).unwrap_or(&[]);
                    match seg.iter().position(|&c| !is_tchar(c)) {
                        Some(i) => {
                            let at = self.pos + i;
                            if seg.get(i) != Some(&b' ') {
                                return Err(bad("invalid byte in method"));
                            }
                            if at == self.line_start {
                                return Err(bad("empty method"));
                            }
                            self.method = span(self.line_start, at);
                            self.pos = at + 1;
                            self.target = span(self.pos, self.pos);
                            self.state = State::Target;
                        }
                        None => {
                            self.pos = end;
                            if end < buf.len() {
                                return Err(HttpError::UriTooLong);
                            }
                        }
                    }
                }
                State::Target => {
                    let end = window(buf, self.line_start, line_limit);
                    let seg = buf.get(self.pos..end).unwrap_or(&[]);
                    match memchr(b' ', seg) {
                        Some(i) => {
                            if !all_target(seg.get(..i).unwrap_or(&[])) {
                                return Err(bad("invalid byte in request-target"));
                            }
                            let start = self.target.start as usize;
                            let at = self.pos + i;
                            if at == start {
                                return Err(bad("empty request-target"));
                            }
                            self.target = span(start, at);
                            check_target_form(
                                self.method.get(buf),
                                buf.get(start..at).unwrap_or(&[]),
                            )?;
                            self.pos = at + 1;
                            self.version_start = self.pos;
                            self.state = State::Version;
                        }
                        None => {
                            if !all_target(seg) {
                                return Err(bad("invalid byte in request-target"));
                            }
                            self.pos = end;
                            if end < buf.len() {
                                return Err(HttpError::UriTooLong);
                            }
                        }
                    }
                }
                State::Version => {
                    let end = window(buf, self.line_start, line_limit);
                    while let Some(&c) = buf.get(self.pos).filter(|_| self.pos < end) {
                        let ok = match self.pos - self.version_start {
                            i @ 0..=4 => b"HTTP/".get(i) == Some(&c),
                            5 => {
                                self.version_digits[0] = c;
                                c.is_ascii_digit()
                            }
                            6 => c == b'.',
                            7 => {
                                self.version_digits[1] = c;
                                c.is_ascii_digit()
                            }
                            _ => c == b'\r',
                        };
                        if !ok {
                            return Err(bad("malformed HTTP version"));
                        }
                        self.pos += 1;
                        if c == b'\r' {
                            self.version = match self.version_digits {
                                [b'1', b'1'] => Version::Http11,
                                [b'1', b'0'] => Version::Http10,
                                _ => return Err(HttpError::VersionNotSupported),
                            };
                            self.state = State::RequestLineLf;
                            break;
                        }
                    }
                    if self.state == State::Version && end < buf.len() {
                        return Err(HttpError::UriTooLong);
                    }
                }
                State::RequestLineLf | State::FieldLf => {
                    if b != b'\n' {
                        return Err(bad("bare CR"));
                    }
                    self.pos += 1;
                    self.line_start = self.pos;
                    self.state = State::LineStart;
                }
                State::LineStart => match b {
                    b'\r' => {
                        self.pos += 1;
                        self.state = State::FinalLf;
                    }
                    b'\n' => return Err(bad("bare LF")),
                    b' ' | b'\t' => return Err(bad("obsolete line folding")),
                    _ => {
                        if self.headers.len() >= max_fields {
                            return Err(HttpError::HeaderFieldsTooLarge);
                        }
                        self.state = State::Name;
                    }
                },
                State::Name => {
                    let end = window(buf, self.line_start, field_limit);
                    let seg = buf.get(self.pos..end).unwrap_or(&[]);
                    match seg.iter().position(|&c| !is_tchar(c)) {
                        Some(i) => {
                            let at = self.pos + i;
                            match seg.get(i) {
                                Some(b':') => {}
                                Some(b' ' | b'\t') => {
                                    return Err(bad("whitespace before colon"));
                                }
                                Some(b'\r' | b'\n') => return Err(bad("field line without colon")),
                                _ => return Err(bad("invalid byte in field name")),
                            }
                            if at == self.line_start {
                                return Err(bad("empty field name"));
                            }
                            self.name_end = at;
                            self.pos = at + 1;
                            self.state = State::Ows;
                        }
                        None => {
                            self.pos = end;
                            if end < buf.len() {
                                return Err(HttpError::HeaderFieldsTooLarge);
                            }
                        }
                    }
                }
                State::Ows => {
                    let end = window(buf, self.line_start, field_limit);
                    let seg = buf.get(self.pos..end).unwrap_or(&[]);
                    match seg.iter().position(|&c| !is_ows(c)) {
                        Some(i) => {
                            self.pos += i;
                            self.value_start = self.pos;
                            self.value_end = self.pos;
                            self.state = State::Value;
                        }
                        None => {
                            self.pos = end;
                            if end < buf.len() {
                                return Err(HttpError::HeaderFieldsTooLarge);
                            }
                        }
                    }
                }
                State::Value => {
                    let end = window(buf, self.line_start, field_limit);
                    let seg = buf.get(self.pos..end).unwrap_or(&[]);
                    let eol = memchr2(b'\r', b'\n', seg);
                    let content = seg.get(..eol.unwrap_or(seg.len())).unwrap_or(&[]);
                    if !all_field_value(content) {
                        return Err(bad("invalid byte in field value"));
                    }
                    if let Some(j) = content.iter().rposition(|&c| !is_ows(c)) {
                        self.value_end = self.pos + j + 1;
                    }
                    match eol {
                        Some(i) => {
                            if seg.get(i) != Some(&b'\r') {
                                return Err(bad("bare LF"));
                            }
                            self.headers.push(HeaderSpan {
                                name: span(self.line_start, self.name_end),
                                value: span(self.value_start, self.value_end),
                            });
                            self.pos += i + 1;
                            self.state = State::FieldLf;
                        }
                        None => {
                            self.pos = end;
                            if end < buf.len() {
                                return Err(HttpError::HeaderFieldsTooLarge);
                            }
                        }
                    }
                }
                State::FinalLf => {
                    if b != b'\n' {
                        return Err(bad("bare CR"));
                    }
                    self.pos += 1;
                    self.state = State::Done;
                    return Ok(Status::Complete { head_len: self.pos });
                }
                State::Done => return Ok(Status::Complete { head_len: self.pos }),
            }
        }

        if full_len > buf.len() {
            // Everything up to the cap was examined and the head goes on.
            return Err(if self.in_request_line() {
                HttpError::UriTooLong
            } else {
                HttpError::HeaderFieldsTooLarge
            });
        }
        Ok(Status::Partial)
    }

    fn in_request_line(&self) -> bool {
        matches!(
            self.state,
            State::Start
                | State::StartLf
                | State::Method
                | State::Target
                | State::Version
                | State::RequestLineLf
        )
    }

    /// The following accessors are meaningful after `Complete`.
    pub fn method(&self) -> Span {
        self.method
    }
    pub fn target(&self) -> Span {
        self.target
    }
    pub fn version(&self) -> Version {
        self.version
    }
    pub fn headers(&self) -> &[HeaderSpan] {
        &self.headers
    }
}

/// RFC 9112 section 3.2: the target must take one of the four forms, and the
/// asterisk and authority forms belong to OPTIONS and CONNECT only.
fn check_target_form(method: &[u8], target: &[u8]) -> Result<(), HttpError> {
    if target == b"*" {
        return if method == b"OPTIONS" {
            Ok(())
        } else {
            Err(bad("asterisk-form target without OPTIONS"))
        };
    }
    if method == b"CONNECT" {
        return if is_authority_form(target) {
            Ok(())
        } else {
            Err(bad("CONNECT without authority-form target"))
        };
    }
    if target.first() == Some(&b'/') || is_absolute_form(target) {
        Ok(())
    } else {
        Err(bad("invalid request-target form"))
    }
}

/// `host:port` with a non-empty host and a numeric port, nothing else.
fn is_authority_form(t: &[u8]) -> bool {
    if t.iter().any(|&b| matches!(b, b'/' | b'?' | b'#' | b'@')) {
        return false;
    }
    match t.iter().rposition(|&b| b == b':') {
        Some(colon) => {
            let host = t.get(..colon).unwrap_or(&[]);
            let port = t.get(colon + 1..).unwrap_or(&[]);
            !port.is_empty() && port.iter().all(u8::is_ascii_digit) && is_host(host)
        }
        None => false,
    }
}

/// A reg-name/IPv4 host (no brackets) or a bracketed IP-literal; the
/// characters themselves were already limited to visible ASCII.
fn is_host(h: &[u8]) -> bool {
    match h.first() {
        None => false,
        Some(b'[') => {
            h.len() > 2
                && h.last() == Some(&b']')
                && !h
                    .get(1..h.len() - 1)
                    .unwrap_or(&[])
                    .iter()
                    .any(|&b| b == b'[' || b == b']')
        }
        Some(_) => !h.iter().any(|&b| b == b'[' || b == b']'),
    }
}

/// `scheme "://" authority` followed by nothing, a path or a query (RFC
/// 9110 section 4.2.1: an http(s) URI with an empty host is invalid, and we
/// apply that to every scheme).
fn is_absolute_form(t: &[u8]) -> bool {
    let Some(colon) = memchr(b':', t) else {
        return false;
    };
    let scheme = t.get(..colon).unwrap_or(&[]);
    let scheme_ok = scheme.first().is_some_and(u8::is_ascii_alphabetic)
        && scheme
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'));
    let Some(rest) = t.get(colon + 1..).and_then(|r| r.strip_prefix(b"//")) else {
        return false;
    };
    if !scheme_ok {
        return false;
    }
    let auth_end = rest
        .iter()
        .position(|&b| matches!(b, b'/' | b'?' | b'#'))
        .unwrap_or(rest.len());
    let authority = rest.get(..auth_end).unwrap_or(&[]);
    let hostport = match authority.iter().rposition(|&b| b == b'@') {
        Some(at) => authority.get(at + 1..).unwrap_or(&[]),
        None => authority,
    };
    let (host, port) = if hostport.first() == Some(&b'[') {
        match memchr(b']', hostport) {
            Some(close) => (
                hostport.get(..=close).unwrap_or(&[]),
                hostport.get(close + 1..).unwrap_or(&[]),
            ),
            None => return false,
        }
    } else {
        match memchr(b':', hostport) {
            Some(c) => (
                hostport.get(..c).unwrap_or(&[]),
                hostport.get(c..).unwrap_or(&[]),
            ),
            None => (hostport, &[][..]),
        }
    };
    let port_ok = match port.split_first() {
        None => true,
        Some((b':', digits)) => digits.iter().all(u8::is_ascii_digit),
        Some(_) => false,
    };
    is_host(host) && port_ok
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq, Eq)]
    enum Out {
        Err(HttpError),
        Partial,
        Complete {
            head_len: usize,
            method: Vec<u8>,
            target: Vec<u8>,
            version: Version,
            headers: Fields,
        },
    }

    /// Feeds growing prefixes of `input` ending at each of `cuts` (then the
    /// whole input) to one parser.
    fn run(limits: Limits, input: &[u8], cuts: &[usize]) -> Out {
        let mut p = HeadParser::new(limits);
        for &c in cuts.iter().chain(std::iter::once(&input.len())) {
            let buf = &input[..c.min(input.len())];
            match p.parse(buf) {
                Err(e) => return Out::Err(e),
                Ok(Status::Partial) => {}
                Ok(Status::Complete { head_len }) => {
                    return Out::Complete {
                        head_len,
                        method: p.method().get(input).to_vec(),
                        target: p.target().get(input).to_vec(),
                        version: p.version(),
                        headers: p
                            .headers()
                            .iter()
                            .map(|h| (h.name.get(input).to_vec(), h.value.get(input).to_vec()))
                            .collect(),
                    }
                }
            }
        }
        Out::Partial
    }

    /// Whole, byte by byte, and split in two at every point: all the same.
    fn check_with(limits: Limits, input: &[u8]) -> Out {
        let whole = run(limits, input, &[]);
        let bytewise: Vec<usize> = (0..input.len()).collect();
        assert_eq!(
            run(limits, input, &bytewise),
            whole,
            "byte by byte: {input:?}"
        );
        for cut in 0..input.len() {
            assert_eq!(
                run(limits, input, &[cut]),
                whole,
                "split at {cut}: {input:?}"
            );
        }
        whole
    }

    fn check(input: &[u8]) -> Out {
        check_with(Limits::default(), input)
    }

    fn err(input: &[u8]) -> HttpError {
        match check(input) {
            Out::Err(e) => e,
            other => panic!("expected an error for {input:?}, got {other:?}"),
        }
    }

    fn is_400(input: &[u8]) {
        assert!(
            matches!(err(input), HttpError::BadRequest(_)),
            "{input:?} should be 400"
        );
    }

    type Fields = Vec<(Vec<u8>, Vec<u8>)>;

    fn ok(input: &[u8]) -> (Vec<u8>, Vec<u8>, Version, Fields) {
        match check(input) {
            Out::Complete {
                head_len,
                method,
                target,
                version,
                headers,
            } => {
                assert_eq!(head_len, input.len(), "{input:?}");
                (method, target, version, headers)
            }
            other => panic!("expected Complete for {input:?}, got {other:?}"),
        }
    }

    fn hv(pairs: &[(&str, &str)]) -> Fields {
        pairs
            .iter()
            .map(|(n, v)| (n.as_bytes().to_vec(), v.as_bytes().to_vec()))
            .collect()
    }

    #[test]
    fn simple_request() {
        let (m, t, v, h) = ok(b"GET /a?b=c HTTP/1.1\r\nHost: x\r\nAccept: */*\r\n\r\n");
        assert_eq!(m, b"GET");
        assert_eq!(t, b"/a?b=c");
        assert_eq!(v, Version::Http11);
        assert_eq!(h, hv(&[("Host", "x"), ("Accept", "*/*")]));
        let (_, _, v, h) = ok(b"POST / HTTP/1.0\r\n\r\n");
        assert_eq!(v, Version::Http10);
        assert!(h.is_empty());
    }

    #[test]
    fn spans_are_offsets_into_the_buffer() {
        let input = b"\r\nGET /x HTTP/1.1\r\nA: b\r\n\r\nrest";
        let mut p = HeadParser::new(Limits::default());
        assert_eq!(p.parse(input), Ok(Status::Complete { head_len: 27 }));
        assert_eq!(p.method(), Span { start: 2, end: 5 });
        assert_eq!(p.target(), Span { start: 6, end: 8 });
        assert_eq!(
            p.headers(),
            &[HeaderSpan {
                name: Span { start: 19, end: 20 },
                value: Span { start: 22, end: 23 },
            }]
        );
        // Complete is sticky until reset.
        assert_eq!(p.parse(input), Ok(Status::Complete { head_len: 27 }));
    }

    #[test]
    fn pipelined_bytes_are_left_alone() {
        let input = b"GET /1 HTTP/1.1\r\n\r\nGET /2 HTTP/1.1\r\n\r\n";
        match check(input) {
            Out::Complete { head_len, .. } => assert_eq!(head_len, 19),
            o => panic!("{o:?}"),
        }
    }

    #[test]
    fn leading_crlf() {
        let input = b"\r\nGET / HTTP/1.1\r\n\r\n";
        match check(input) {
            Out::Complete {
                head_len, method, ..
            } => {
                assert_eq!(head_len, input.len());
                assert_eq!(method, b"GET");
            }
            o => panic!("{o:?}"),
        }
        is_400(b"\r\n\r\nGET / HTTP/1.1\r\n\r\n");
        is_400(b"\nGET / HTTP/1.1\r\n\r\n");
        is_400(b"\rGET / HTTP/1.1\r\n\r\n");
        assert_eq!(check(b"\r"), Out::Partial);
        assert_eq!(check(b"\r\n"), Out::Partial);
        assert_eq!(check(b""), Out::Partial);
    }

    #[test]
    fn bare_lf_and_cr() {
        is_400(b"GET / HTTP/1.1\n\r\n");
        is_400(b"GET / HTTP/1.1\r\nA: b\n\r\n");
        is_400(b"GET / HTTP/1.1\r\nA: b\r\n\n");
        is_400(b"GET / HTTP/1.1\r\n\n");
        is_400(b"GET\n/\nHTTP/1.1\r\n\r\n");
        is_400(b"GET / HTTP/1.1\r\nA: b\nC: d\r\n\r\n");
        // A bare CR is refused as soon as the byte after it is seen.
        is_400(b"GET / HTTP/1.1\rX");
        is_400(b"GET / HTTP/1.1\r\nA: b\rX");
        is_400(b"GET / HTTP/1.1\r\nA: b\r\n\rX");
        is_400(b"GET / HTTP/1.1\r\nA: b\rc\r\n\r\n");
        // ...and at once where a CR can never end the line.
        is_400(b"GET /\r");
        is_400(b"GE\r");
        is_400(b"GET / HTTP/1.1\r\nA\r");
        // A CR that may still be followed by LF waits.
        assert_eq!(check(b"GET / HTTP/1.1\r"), Out::Partial);
        assert_eq!(check(b"GET / HTTP/1.1\r\nA: b\r"), Out::Partial);
        assert_eq!(check(b"GET / HTTP/1.1\r\nA: b\r\n\r"), Out::Partial);
    }

    #[test]
    fn method() {
        is_400(b" / HTTP/1.1\r\n\r\n");
        is_400(b"GE(T / HTTP/1.1\r\n\r\n");
        is_400(b"bla:rgh /foo HTTP/1.1\r\n\r\n");
        is_400(b"GET\xc3\x9f / HTTP/1.1\r\n\r\n");
        is_400(b"GET\tX / HTTP/1.1\r\n\r\n");
        // Detected without waiting for the rest of the line.
        is_400(b"GET\x00");
        let (m, ..) = ok(b"-blargh /foo HTTP/1.1\r\nHost: x\r\n\r\n");
        assert_eq!(m, b"-blargh");
        let (m, ..) = ok(b"M-SEARCH / HTTP/1.1\r\n\r\n");
        assert_eq!(m, b"M-SEARCH");
    }

    #[test]
    fn target_bytes() {
        is_400(b"GET  / HTTP/1.1\r\n\r\n");
        is_400(b"GET / x HTTP/1.1\r\n\r\n");
        is_400(b"GET /\x01 HTTP/1.1\r\n\r\n");
        is_400(b"GET /\x7f HTTP/1.1\r\n\r\n");
        is_400(b"GET /\x80 HTTP/1.1\r\n\r\n");
        is_400(b"GET /\xc3\xa0 HTTP/1.1\r\n\r\n");
        is_400(b"GET /\t HTTP/1.1\r\n\r\n");
        // At once, before the line ends.
        is_400(b"GET /a\x00");
        let (_, t, ..) = ok(b"GET /with_\"quotes\"?foo=\"bar\" HTTP/1.1\r\n\r\n");
        assert_eq!(t, b"/with_\"quotes\"?foo=\"bar\"");
        let (_, t, ..) = ok(b"GET /a#frag HTTP/1.1\r\n\r\n");
        assert_eq!(t, b"/a#frag");
    }

    #[test]
    fn target_forms() {
        let (_, t, ..) = ok(b"OPTIONS * HTTP/1.1\r\n\r\n");
        assert_eq!(t, b"*");
        is_400(b"GET * HTTP/1.1\r\n\r\n");
        is_400(b"options * HTTP/1.1\r\n\r\n");
        ok(b"OPTIONS /x HTTP/1.1\r\n\r\n");
        ok(b"GET /* HTTP/1.1\r\n\r\n");
        for good in [
            &b"http://example.com/foo?q=1"[..],
            b"https://example.com",
            b"http://[::1]:8080/foo",
            b"http://user:pass@example.com:8080/foo?q=1",
            b"http://h:/x",
            b"svn+ssh://h/x",
            b"http://h?x",
        ] {
            let req = [b"GET ", good, b" HTTP/1.1\r\n\r\n"].concat();
            let (_, t, ..) = ok(&req);
            assert_eq!(t, good);
        }
        for bad in [
            &b"foo/bar"[..],
            b"example.com:443",
            b"s://]ufd/:",
            b"http:///x",
            b"http://",
            b"http:/x",
            b"1http://h/",
            b"http://[::1/",
            b"http://h:8x/",
            b"http://a]b/",
            b"?x",
        ] {
            is_400(&[b"GET ", bad, b" HTTP/1.1\r\n\r\n"].concat());
        }
        ok(b"CONNECT example.com:443 HTTP/1.1\r\n\r\n");
        ok(b"CONNECT [::1]:443 HTTP/1.1\r\n\r\n");
        for bad in [
            &b"/"[..],
            b"example.com",
            b"example.com:",
            b":443",
            b"u@h:443",
            b"h:443/x",
            b"http://h:443",
            b"[::1:443",
        ] {
            is_400(&[b"CONNECT ", bad, b" HTTP/1.1\r\n\r\n"].concat());
        }
    }

    #[test]
    fn versions() {
        for v in [
            &b"HTTP/2.0"[..],
            b"HTTP/0.9",
            b"HTTP/1.2",
            b"HTTP/3.0",
            b"HTTP/9.9",
        ] {
            let req = [b"GET / ", v, b"\r\n\r\n"].concat();
            assert_eq!(err(&req), HttpError::VersionNotSupported, "{v:?}");
        }
        // Refused at the CR: no well-formed continuation can save it.
        assert_eq!(err(b"GET / HTTP/2.0\r"), HttpError::VersionNotSupported);
        for v in [
            &b"http/1.1"[..],
            b"HTTP/1.1 ",
            b"HTTP/11",
            b"HTTP/111",
            b"HTTP/1.10",
            b"HTTP/1",
            b"HTTP/1.",
            b"HTTP/0.99",
            b"FTP/1.1",
            b"HTTP/1,1",
            b"HTTP /1.1",
            b"",
            b"HTTP/1111111111111111111111",
        ] {
            is_400(&[b"GET / ", v, b"\r\n\r\n"].concat());
        }
        is_400(b"GET /\r\n\r\n");
        is_400(b"GET / HTTP/1.1 extra\r\n\r\n");
        is_400(b"GET / HTTP/1.1x");
    }

    #[test]
    fn field_syntax() {
        is_400(b"GET / HTTP/1.1\r\nA : b\r\n\r\n");
        is_400(b"GET / HTTP/1.1\r\nA\t: b\r\n\r\n");
        is_400(b"GET / HTTP/1.1\r\nNoColon\r\n\r\n");
        is_400(b"GET / HTTP/1.1\r\n: empty\r\n\r\n");
        is_400(b"GET / HTTP/1.1\r\nA: b\r\n c\r\n\r\n");
        is_400(b"GET / HTTP/1.1\r\nA: b\r\n\tc\r\n\r\n");
        is_400(b"GET / HTTP/1.1\r\n X: y\r\n\r\n");
        is_400(b"GET / HTTP/1.1\r\nba\x00z: bar\r\n\r\n");
        is_400(b"GET / HTTP/1.1\r\nContent-Length\xc3\x9f: 3\r\n\r\n");
        is_400(b"GET / HTTP/1.1\r\nA(b: c\r\n\r\n");
        // At once.
        is_400(b"GET / HTTP/1.1\r\nA b");
        is_400(b"GET / HTTP/1.1\r\n ");
        let (.., h) = ok(b"GET / HTTP/1.1\r\nX.Custom|Pipe: ok\r\n!#$%&'*+-.^_`|~: t\r\n\r\n");
        assert_eq!(h, hv(&[("X.Custom|Pipe", "ok"), ("!#$%&'*+-.^_`|~", "t")]));
    }

    #[test]
    fn field_values() {
        let (.., h) = ok(b"GET / HTTP/1.1\r\nName: \t value \t \r\nE:\r\nW: \t \r\nT:\tabc\t\r\nI: a \t b\r\n\r\n");
        assert_eq!(
            h,
            hv(&[
                ("Name", "value"),
                ("E", ""),
                ("W", ""),
                ("T", "abc"),
                ("I", "a \t b")
            ])
        );
        let (.., h) = ok(b"GET / HTTP/1.1\r\nX: caf\xc3\xa9 \xff\x80\r\n\r\n");
        assert_eq!(h, vec![(b"X".to_vec(), b"caf\xc3\xa9 \xff\x80".to_vec())]);
        for c in (0u8..0x20).filter(|&c| c != b'\t' && c != b'\r' && c != b'\n') {
            is_400(&[&b"GET / HTTP/1.1\r\nX: a"[..], &[c], b"b\r\n\r\n"].concat());
        }
        is_400(b"GET / HTTP/1.1\r\nX: plain\x7finjected\r\n\r\n");
        is_400(b"GET / HTTP/1.1\r\nX: plain\x07injected\r\n\r\n");
        // At once, before the line ends.
        is_400(b"GET / HTTP/1.1\r\nX: a\x00");
        is_400(b"GET / HTTP/1.1\r\nX: \x00");
    }

    fn limits(request_line: usize, fields: usize, field_size: usize) -> Limits {
        Limits {
            request_line,
            fields,
            field_size,
        }
    }

    #[test]
    fn request_line_limit() {
        // "GET /xx HTTP/1.1" is 16 bytes.
        let req = b"GET /xx HTTP/1.1\r\n\r\n";
        assert!(matches!(
            check_with(limits(16, 0, 0), req),
            Out::Complete { .. }
        ));
        assert_eq!(
            check_with(limits(15, 0, 0), req),
            Out::Err(HttpError::UriTooLong)
        );
        // Without a line end: refused once more than the limit is buffered.
        assert_eq!(check_with(limits(5, 0, 0), b"GET /"), Out::Partial);
        assert_eq!(
            check_with(limits(5, 0, 0), b"GET /a"),
            Out::Err(HttpError::UriTooLong)
        );
        assert_eq!(
            check_with(limits(3, 0, 0), b"GETX"),
            Out::Err(HttpError::UriTooLong)
        );
        assert_eq!(check_with(limits(10, 0, 0), b"GET / HTTP"), Out::Partial);
        assert_eq!(
            check_with(limits(10, 0, 0), b"GET / HTTP/"),
            Out::Err(HttpError::UriTooLong)
        );
        // The leading CRLF does not count.
        let req = b"\r\nGET /xx HTTP/1.1\r\n\r\n";
        assert!(matches!(
            check_with(limits(16, 0, 0), req),
            Out::Complete { .. }
        ));
        // An invalid byte within the limit is reported as such.
        assert!(matches!(
            check_with(limits(5, 0, 0), b"GET \x00xxxxxxxx"),
            Out::Err(HttpError::BadRequest(_))
        ));
    }

    #[test]
    fn field_limits() {
        // "Ab: cde" is 7 bytes.
        let req = b"GET / HTTP/1.1\r\nAb: cde\r\n\r\n";
        assert!(matches!(
            check_with(limits(0, 0, 7), req),
            Out::Complete { .. }
        ));
        assert_eq!(
            check_with(limits(0, 0, 6), req),
            Out::Err(HttpError::HeaderFieldsTooLarge)
        );
        // Before the line end arrives, in each part of the line.
        let l = limits(0, 0, 4);
        assert_eq!(check_with(l, b"GET / HTTP/1.1\r\nAbcd"), Out::Partial);
        assert_eq!(
            check_with(l, b"GET / HTTP/1.1\r\nAbcde"),
            Out::Err(HttpError::HeaderFieldsTooLarge)
        );
        assert_eq!(check_with(l, b"GET / HTTP/1.1\r\nA:  "), Out::Partial);
        assert_eq!(
            check_with(l, b"GET / HTTP/1.1\r\nA:   "),
            Out::Err(HttpError::HeaderFieldsTooLarge)
        );
        assert_eq!(
            check_with(l, b"GET / HTTP/1.1\r\nA: bc"),
            Out::Err(HttpError::HeaderFieldsTooLarge)
        );
        assert_eq!(check_with(l, b"GET / HTTP/1.1\r\nAbc:"), Out::Partial);
        assert!(check_with(l, b"GET / HTTP/1.1\r\nAbc:\r\n\r\n").is_complete());
        assert_eq!(
            check_with(l, b"GET / HTTP/1.1\r\nAbc: "),
            Out::Err(HttpError::HeaderFieldsTooLarge)
        );
        // Field count.
        let two = b"GET / HTTP/1.1\r\nA: 1\r\nB: 2\r\n\r\n";
        assert!(check_with(limits(0, 2, 0), two).is_complete());
        assert_eq!(
            check_with(limits(0, 1, 0), two),
            Out::Err(HttpError::HeaderFieldsTooLarge)
        );
        // ...refused on the first byte of the field too many.
        assert_eq!(
            check_with(limits(0, 1, 0), b"GET / HTTP/1.1\r\nA: 1\r\nB"),
            Out::Err(HttpError::HeaderFieldsTooLarge)
        );
    }

    impl Out {
        fn is_complete(&self) -> bool {
            matches!(self, Out::Complete { .. })
        }
    }

    #[test]
    fn zero_limits_are_unlimited_up_to_the_hard_cap() {
        let big = vec![b'v'; 100_000];
        let req = [&b"GET / HTTP/1.1\r\nX: "[..], &big, b"\r\n\r\n"].concat();
        let l = limits(0, 0, 0);
        let mut p = HeadParser::new(l);
        assert!(matches!(p.parse(&req), Ok(Status::Complete { .. })));
        assert_eq!(p.headers()[0].value.get(&req).len(), 100_000);
        assert_eq!(
            HeadParser::new(Limits::default()).parse(&req),
            Err(HttpError::HeaderFieldsTooLarge)
        );
        let target = vec![b'a'; 100_000];
        let req = [&b"GET /"[..], &target, b" HTTP/1.1\r\n\r\n"].concat();
        assert!(matches!(
            HeadParser::new(l).parse(&req),
            Ok(Status::Complete { .. })
        ));
        assert_eq!(
            HeadParser::new(Limits::default()).parse(&req),
            Err(HttpError::UriTooLong)
        );
        // Many fields.
        let mut req = b"GET / HTTP/1.1\r\n".to_vec();
        for _ in 0..1000 {
            req.extend_from_slice(b"A: b\r\n");
        }
        req.extend_from_slice(b"\r\n");
        let mut p = HeadParser::new(l);
        assert!(matches!(p.parse(&req), Ok(Status::Complete { .. })));
        assert_eq!(p.headers().len(), 1000);
    }

    #[test]
    fn hard_cap() {
        let l = limits(0, 0, 0);
        let huge = vec![b'v'; MAX_HEAD];
        let req = [&b"GET / HTTP/1.1\r\nX: "[..], &huge].concat();
        let mut p = HeadParser::new(l);
        assert_eq!(p.parse(&req[..MAX_HEAD]), Ok(Status::Partial));
        assert_eq!(p.parse(&req), Err(HttpError::HeaderFieldsTooLarge));
        let req = [&b"GET /"[..], &huge].concat();
        assert_eq!(HeadParser::new(l).parse(&req), Err(HttpError::UriTooLong));
        // A head that ends exactly at the cap is fine.
        let mut req = b"GET / HTTP/1.1\r\nX: ".to_vec();
        req.resize(MAX_HEAD - 4, b'v');
        req.extend_from_slice(b"\r\n\r\n");
        assert_eq!(
            HeadParser::new(l).parse(&req),
            Ok(Status::Complete { head_len: MAX_HEAD })
        );
    }

    #[test]
    fn byte_by_byte_is_linear() {
        // Quadratic rescanning would take minutes here (1 MiB fed bytewise).
        let l = limits(0, 0, 0);
        let mut req = b"GET /".to_vec();
        req.resize(300_000, b'a');
        req.extend_from_slice(b" HTTP/1.1\r\nX: ");
        req.resize(700_000, b'v');
        req.extend_from_slice(b"\r\n");
        while req.len() < MAX_HEAD - 100 {
            req.extend_from_slice(b"Abc: d\r\n");
        }
        req.extend_from_slice(b"\r\n");
        let mut p = HeadParser::new(l);
        for end in 1..req.len() {
            assert_eq!(p.parse(&req[..end]), Ok(Status::Partial));
        }
        assert_eq!(
            p.parse(&req),
            Ok(Status::Complete {
                head_len: req.len()
            })
        );
    }

    #[test]
    fn reset_reuses_the_header_vec() {
        let mut p = HeadParser::new(Limits::default());
        let a = b"GET /a HTTP/1.1\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n";
        assert!(matches!(p.parse(a), Ok(Status::Complete { .. })));
        let cap = p.headers.capacity();
        let ptr = p.headers.as_ptr();
        p.reset();
        assert!(p.headers().is_empty());
        let b = b"POST /b HTTP/1.0\r\nX: y\r\n\r\n";
        assert_eq!(p.parse(b), Ok(Status::Complete { head_len: b.len() }));
        assert_eq!(p.method().get(b), b"POST");
        assert_eq!(p.version(), Version::Http10);
        assert_eq!(p.headers().len(), 1);
        assert_eq!(p.headers.capacity(), cap);
        assert_eq!(p.headers.as_ptr(), ptr);
    }

    struct XorShift(u64);
    impl XorShift {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
    }

    #[test]
    fn mutated_heads_never_panic_and_ignore_splits() {
        let seeds: [&[u8]; 4] = [
            b"GET /a?b HTTP/1.1\r\nHost: x\r\nA:  b \r\n\r\n",
            b"\r\nOPTIONS * HTTP/1.0\r\nX: \xff\r\n\r\n",
            b"CONNECT h:1 HTTP/1.1\r\n\r\n",
            b"GET http://h/ HTTP/1.1\r\nT:\tv\r\n\r\n",
        ];
        let alphabet = b"\r\n \t:/*?#\x00\x7f\x80aZ1.H";
        let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
        let l = limits(24, 2, 12);
        for _ in 0..3000 {
            let seed = seeds[(rng.next() % seeds.len() as u64) as usize];
            let mut input = seed.to_vec();
            for _ in 0..(rng.next() % 4) {
                let i = (rng.next() % input.len() as u64) as usize;
                let c = alphabet[(rng.next() % alphabet.len() as u64) as usize];
                match rng.next() % 3 {
                    0 => input[i] = c,
                    1 => input.insert(i, c),
                    _ => {
                        input.remove(i);
                    }
                }
            }
            for lim in [Limits::default(), l] {
                let whole = run(lim, &input, &[]);
                let bytewise: Vec<usize> = (0..input.len()).collect();
                assert_eq!(run(lim, &input, &bytewise), whole, "{input:?}");
                let cut = (rng.next() % (input.len() as u64 + 1)) as usize;
                assert_eq!(run(lim, &input, &[cut]), whole, "{input:?} at {cut}");
            }
        }
    }
}
