//! Incremental, zero-copy request-head parser (RFC 9112 sections 2-5).
//!
//! The caller owns the buffer; the parser remembers how far it has examined
//! it and records spans (offsets) of the method, target and header fields, so
//! a head arriving in N pieces is scanned once, not N times, and nothing is
//! copied or allocated per request (the header span Vec is reused).
//!
//! Each part of a line is found by one forward scan for the first byte
//! outside its class (`chars::{token_end, target_end, field_value_end}`, 16
//! or 8 bytes at a time), which is also where it must end: the SP after the
//! method and target, the colon after a name, the CR after a value. A field
//! line whose bytes are all in the buffer goes from name to CRLF without
//! writing the state back; where the bytes run out, the state records the
//! part reached, and the next call resumes there with the same checks, so
//! the result never depends on how the head was split.

use memchr::memchr;

use super::authority;
use super::chars::{field_value_end, is_ows, target_end, token_end};
use super::HttpError;

/// Hard cap on a whole head, whatever the limits say (0 means unlimited
/// there): keeps every offset far inside `u32` and bounds the header Vec.
pub(crate) const MAX_HEAD: usize = 1 << 20;

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
    // Offsets never exceed MAX_HEAD (the buffer is truncated to it), so they
    // fit in u32 (and `as` cannot panic either way).
    Span {
        start: start as u32,
        end: end as u32,
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

const HTTP_11: u64 = u64::from_le_bytes(*b"HTTP/1.1");
const HTTP_10: u64 = u64::from_le_bytes(*b"HTTP/1.0");

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
        if self.in_request_line() && !self.request_line(buf)? {
            return self.out_of_bytes(full_len, buf.len());
        }
        match self.fields(buf)? {
            Some(head_len) => Ok(Status::Complete { head_len }),
            None => self.out_of_bytes(full_len, buf.len()),
        }
    }

    /// Every byte of `buf` (the first `len` of `full_len`) was examined and
    /// the head goes on.
    fn out_of_bytes(&self, full_len: usize, len: usize) -> Result<Status, HttpError> {
        if full_len > len {
            // Everything up to the cap was examined and the head goes on.
            return Err(if self.in_request_line() {
                HttpError::UriTooLong
            } else {
                HttpError::HeaderFieldsTooLarge
            });
        }
        Ok(Status::Partial)
    }

    /// A scan of the current line stopped at its window's `end` without
    /// finding the end of the element: the line is over its limit if the
    /// buffer holds more, else everything was examined (`Ok(false)`).
    #[inline]
    fn stop_at(&mut self, end: usize, len: usize, over: HttpError) -> Result<bool, HttpError> {
        self.pos = end;
        if end < len {
            Err(over)
        } else {
            Ok(false)
        }
    }

    /// The request line, from wherever the previous call stopped, each part
    /// scanned once. `Ok(true)`: it is complete (state `LineStart`);
    /// `Ok(false)`: every byte was examined, the state says where it stands.
    fn request_line(&mut self, buf: &[u8]) -> Result<bool, HttpError> {
        let mut pos = self.pos;
        if self.state == State::Start {
            match buf.get(pos) {
                None => return Ok(false),
                Some(b'\r') => {
                    pos += 1;
                    self.state = State::StartLf;
                }
                Some(b'\n') => return Err(bad("bare LF")),
                Some(_) => {
                    self.line_start = pos;
                    self.state = State::Method;
                }
            }
        }
        if self.state == State::StartLf {
            match buf.get(pos) {
                None => {
                    self.pos = pos;
                    return Ok(false);
                }
                Some(b'\n') => {
                    pos += 1;
                    self.line_start = pos;
                    self.state = State::Method;
                }
                Some(_) => return Err(bad("bare CR")),
            }
        }
        let line_start = self.line_start;
        // Computed once: the buffer does not change within a call.
        let end = window(buf, line_start, effective(self.limits.request_line));
        // What may be examined of the line.
        let line = buf.get(..end).unwrap_or(buf);
        if self.state == State::Method {
            let at = if pos == line_start && line.get(pos..pos + 4) == Some(b"GET ") {
                pos + 3
            } else {
                token_end(line, pos)
            };
            if at >= end {
                return self.stop_at(end, buf.len(), HttpError::UriTooLong);
            }
            if buf.get(at) != Some(&b' ') {
                return Err(bad("invalid byte in method"));
            }
            if at == line_start {
                return Err(bad("empty method"));
            }
            self.method = span(line_start, at);
            pos = at + 1;
            self.target = span(pos, pos);
            self.state = State::Target;
        }
        if self.state == State::Target {
            let at = target_end(line, pos);
            if at >= end {
                return self.stop_at(end, buf.len(), HttpError::UriTooLong);
            }
            // The first byte that is not a target byte must be the SP.
            if buf.get(at) != Some(&b' ') {
                return Err(bad("invalid byte in request-target"));
            }
            let start = self.target.start as usize;
            if at == start {
                return Err(bad("empty request-target"));
            }
            self.target = span(start, at);
            let method = self.method.get(buf);
            // Origin-form without CONNECT, the common case, needs no more.
            if !(line.get(start) == Some(&b'/') && method != b"CONNECT") {
                check_target_form(method, buf.get(start..at).unwrap_or(&[]))?;
            }
            pos = at + 1;
            self.version_start = pos;
            self.state = State::Version;
        }
        if self.state == State::Version {
            // Fast path: the whole `HTTP/1.x` and its CR within the window.
            let fast = match line.get(pos..).and_then(|s| s.get(..9)) {
                Some(&[a, b, c, d, e, f, g, h, b'\r']) if pos == self.version_start => {
                    match u64::from_le_bytes([a, b, c, d, e, f, g, h]) {
                        HTTP_11 => Some(Version::Http11),
                        HTTP_10 => Some(Version::Http10),
                        _ => None,
                    }
                }
                _ => None,
            };
            if let Some(v) = fast {
                self.version = v;
                pos += 9;
                self.state = State::RequestLineLf;
            } else {
                // Byte by byte, so that a partial or unsupported version is
                // told apart exactly (400 vs 505) wherever the head is cut.
                while pos < end {
                    let Some(&c) = buf.get(pos) else { break };
                    let ok = match pos - self.version_start {
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
                    pos += 1;
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
                if self.state == State::Version {
                    return self.stop_at(end, buf.len(), HttpError::UriTooLong);
                }
            }
        }
        // State::RequestLineLf
        match buf.get(pos) {
            None => {
                self.pos = pos;
                Ok(false)
            }
            Some(b'\n') => {
                pos += 1;
                self.pos = pos;
                self.line_start = pos;
                self.state = State::LineStart;
                Ok(true)
            }
            Some(_) => Err(bad("bare CR")),
        }
    }

    /// The field lines and the final empty line, from wherever the previous
    /// call stopped. A whole line in the buffer is parsed in one go: name,
    /// colon, whitespace, value (one forward scan) and CRLF, with the state
    /// written back only where the bytes run out. `Ok(None)`: every byte was
    /// examined, the state says where it stands.
    fn fields(&mut self, buf: &[u8]) -> Result<Option<usize>, HttpError> {
        let field_limit = effective(self.limits.field_size);
        let max_fields = effective(self.limits.fields);
        let mut pos = self.pos;
        let mut line_start = self.line_start;
        let mut state = self.state;
        let mut name_end = self.name_end;
        let mut value_start = self.value_start;
        let mut value_end = self.value_end;
        match state {
            State::FieldLf => match buf.get(pos) {
                None => return Ok(None),
                Some(b'\n') => {
                    pos += 1;
                    line_start = pos;
                    state = State::LineStart;
                }
                Some(_) => return Err(bad("bare CR")),
            },
            State::FinalLf => return self.final_lf(buf, pos),
            _ => {}
        }
        loop {
            if state == State::LineStart {
                match buf.get(pos) {
                    None => {
                        self.pos = pos;
                        self.line_start = line_start;
                        self.state = State::LineStart;
                        return Ok(None);
                    }
                    Some(b'\r') => return self.final_lf(buf, pos + 1),
                    Some(b'\n') => return Err(bad("bare LF")),
                    Some(b' ' | b'\t') => return Err(bad("obsolete line folding")),
                    Some(_) => {
                        if self.headers.len() >= max_fields {
                            return Err(HttpError::HeaderFieldsTooLarge);
                        }
                        state = State::Name;
                    }
                }
            }
            // Computed once per line: the buffer does not change within a call.
            let end = window(buf, line_start, field_limit);
            // What may be examined of the line.
            let line = buf.get(..end).unwrap_or(buf);
            if state == State::Name {
                let at = token_end(line, pos);
                if at >= end {
                    pos = end;
                    break;
                }
                match line.get(at) {
                    Some(b':') => {}
                    Some(b' ' | b'\t') => return Err(bad("whitespace before colon")),
                    Some(b'\r' | b'\n') => return Err(bad("field line without colon")),
                    _ => return Err(bad("invalid byte in field name")),
                }
                if at == line_start {
                    return Err(bad("empty field name"));
                }
                name_end = at;
                pos = at + 1;
                state = State::Ows;
            }
            if state == State::Ows {
                while line.get(pos).is_some_and(|&c| is_ows(c)) {
                    pos += 1;
                }
                if pos >= end {
                    pos = end;
                    break;
                }
                value_start = pos;
                value_end = pos;
                state = State::Value;
            }
            // State::Value: one forward scan for the first byte that cannot
            // be in a value; it must be the CR (of the CRLF).
            let at = field_value_end(line, pos);
            // Trailing whitespace is not part of the value.
            let mut v_end = at;
            while v_end > pos && line.get(v_end - 1).is_some_and(|&c| is_ows(c)) {
                v_end -= 1;
            }
            if v_end > pos {
                value_end = v_end;
            }
            if at >= end {
                pos = end;
                break;
            }
            match line.get(at) {
                Some(b'\r') => {}
                Some(b'\n') => return Err(bad("bare LF")),
                _ => return Err(bad("invalid byte in field value")),
            }
            self.headers.push(HeaderSpan {
                name: span(line_start, name_end),
                value: span(value_start, value_end),
            });
            pos = at + 1;
            match buf.get(pos) {
                None => {
                    self.pos = pos;
                    self.line_start = line_start;
                    self.state = State::FieldLf;
                    return Ok(None);
                }
                Some(b'\n') => {
                    pos += 1;
                    line_start = pos;
                    state = State::LineStart;
                }
                Some(_) => return Err(bad("bare CR")),
            }
        }
        // A scan reached the end of the line's window (`pos`) inside the
        // name, the whitespace or the value: over the limit if the buffer
        // holds more, else keep the place.
        if pos < buf.len() {
            return Err(HttpError::HeaderFieldsTooLarge);
        }
        self.pos = pos;
        self.line_start = line_start;
        self.state = state;
        self.name_end = name_end;
        self.value_start = value_start;
        self.value_end = value_end;
        Ok(None)
    }

    /// The LF of the final empty line, at `pos`.
    #[inline]
    fn final_lf(&mut self, buf: &[u8], pos: usize) -> Result<Option<usize>, HttpError> {
        match buf.get(pos) {
            None => {
                self.pos = pos;
                self.state = State::FinalLf;
                Ok(None)
            }
            Some(b'\n') => {
                self.pos = pos + 1;
                self.state = State::Done;
                Ok(Some(pos + 1))
            }
            Some(_) => Err(bad("bare CR")),
        }
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
        return if authority::is_host_and_port(target) {
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

/// `scheme "://" authority` followed by nothing, a path or a query (RFC
/// 9110 section 4.2.1: an http(s) URI with an empty host is invalid, and we
/// apply that to every scheme). Userinfo is skipped (RFC 9110 4.2.4 leaves
/// rejecting it to the server; gunicorn and the corpus accept it); the host
/// and port are checked as a Host field's are.
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
    authority::is_host_port(hostport)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::chars::trim_ows;

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

    /// Distinct bytes, so that a wrong offset shows in the result.
    fn value_of(len: usize) -> Vec<u8> {
        (0..len)
            .map(|i| b"abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJ"[i % 46])
            .collect()
    }

    #[test]
    fn value_lengths_around_words_and_blocks() {
        // The scan goes 16 bytes, then 8, then 1 at a time: every length
        // across those steps, as the only field, between others, and with
        // whitespace around; each split at every offset (`check`).
        for len in 0..=40 {
            let v = value_of(len);
            let req = [&b"GET / HTTP/1.1\r\nX: "[..], &v, b"\r\n\r\n"].concat();
            let (.., h) = ok(&req);
            assert_eq!(h, vec![(b"X".to_vec(), v.clone())], "{len}");
            let req = [
                &b"GET / HTTP/1.1\r\nA: 1\r\nX:\t"[..],
                &v,
                b" \t\r\nB: 2\r\n\r\n",
            ]
            .concat();
            let (.., h) = ok(&req);
            assert_eq!(h[1], (b"X".to_vec(), v.clone()), "{len}");
            assert_eq!(h.len(), 3);
        }
    }

    #[test]
    fn value_bad_bytes_at_every_position() {
        for len in 1..=33 {
            for p in 0..len {
                for c in [0x00, 0x01, 0x08, 0x0b, 0x1f, 0x7f, b'\n', b'\r'] {
                    let mut v = value_of(len);
                    v[p] = c;
                    let req = [&b"GET / HTTP/1.1\r\nX: "[..], &v, b"\r\nY: z\r\n\r\n"].concat();
                    let e = err(&req);
                    let want = match c {
                        b'\n' => bad("bare LF"),
                        b'\r' => bad("bare CR"),
                        _ => bad("invalid byte in field value"),
                    };
                    assert_eq!(e, want, "{req:?}");
                }
            }
        }
    }

    #[test]
    fn value_allowed_bytes_at_every_position() {
        for len in 1..=33 {
            for p in 0..len {
                for c in [b'\t', b' ', 0x80, 0x9f, 0xc3, 0xff, b'~', b'!', b'"'] {
                    let mut v = value_of(len);
                    v[p] = c;
                    let req = [&b"GET / HTTP/1.1\r\nX: "[..], &v, b"\r\n\r\n"].concat();
                    let (.., h) = ok(&req);
                    assert_eq!(h, vec![(b"X".to_vec(), trim_ows(&v).to_vec())], "{req:?}");
                }
            }
        }
    }

    #[test]
    fn target_and_name_bytes_at_every_position() {
        for len in 1..=33 {
            let t = [&b"/"[..], &value_of(len)].concat();
            let req = [&b"GET "[..], &t, b" HTTP/1.1\r\n\r\n"].concat();
            let (_, target, ..) = ok(&req);
            assert_eq!(target, t);
            let n = value_of(len);
            let req = [&b"GET / HTTP/1.1\r\n"[..], &n, b": v\r\n\r\n"].concat();
            let (.., h) = ok(&req);
            assert_eq!(h, vec![(n.clone(), b"v".to_vec())]);
            for p in 1..=len {
                for c in [0x00, b'\t', 0x7f, 0x80, 0xff, b'\r', b'\n'] {
                    let mut t = t.clone();
                    t[p] = c;
                    is_400(&[&b"GET "[..], &t, b" HTTP/1.1\r\n\r\n"].concat());
                }
            }
            for p in 0..len {
                for c in [
                    0x00, b'\t', b' ', b'"', b'(', 0x7f, 0x80, 0xff, b'\r', b'\n',
                ] {
                    let mut n = n.clone();
                    n[p] = c;
                    is_400(&[&b"GET / HTTP/1.1\r\n"[..], &n, b": v\r\n\r\n"].concat());
                }
            }
        }
    }

    #[test]
    fn limits_around_words_and_blocks() {
        // "X: " plus the value is the line; at the limit it passes, one
        // under it is 431, whatever the length and wherever the cut.
        for len in 0..=34 {
            let v = value_of(len);
            let req = [&b"GET / HTTP/1.1\r\nX: "[..], &v, b"\r\n\r\n"].concat();
            assert!(check_with(limits(0, 0, 3 + len), &req).is_complete());
            assert_eq!(
                check_with(limits(0, 0, 2 + len), &req),
                Out::Err(HttpError::HeaderFieldsTooLarge)
            );
            // The request line: "GET /" + value + " HTTP/1.1".
            let req = [&b"GET /"[..], &v, b" HTTP/1.1\r\n\r\n"].concat();
            assert!(check_with(limits(14 + len, 0, 0), &req).is_complete());
            assert_eq!(
                check_with(limits(13 + len, 0, 0), &req),
                Out::Err(HttpError::UriTooLong)
            );
        }
    }

    #[test]
    fn version_fast_path_edges() {
        let (.., v, _) = ok(b"GET / HTTP/1.0\r\n\r\n");
        assert_eq!(v, Version::Http10);
        // Exactly at the request-line limit ("GET / HTTP/1.1" is 14 bytes).
        assert!(check_with(limits(14, 0, 0), b"GET / HTTP/1.1\r\n\r\n").is_complete());
        assert_eq!(
            check_with(limits(13, 0, 0), b"GET / HTTP/1.1\r\n\r\n"),
            Out::Err(HttpError::UriTooLong)
        );
        assert_eq!(err(b"GET / HTTP/1.1\n\r\n"), bad("malformed HTTP version"));
        assert_eq!(err(b"GET / HTTP/1.1\rX"), bad("bare CR"));
        assert_eq!(
            err(b"GET / HTTP/1.2\r\n\r\n"),
            HttpError::VersionNotSupported
        );
        assert_eq!(
            err(b"GET / HTTP/1.1 \r\n\r\n"),
            bad("malformed HTTP version")
        );
        // Methods other than GET, and GET as a prefix.
        let (m, ..) = ok(b"GETS / HTTP/1.1\r\n\r\n");
        assert_eq!(m, b"GETS");
        let (m, ..) = ok(b"\r\nGET / HTTP/1.1\r\n\r\n");
        assert_eq!(m, b"GET");
        is_400(b"GET  / HTTP/1.1\r\n\r\n");
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
