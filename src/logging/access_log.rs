//! The access log's line format: gunicorn's `--access-logformat` syntax
//! (`%(atom)s`), parsed once at start into segments, and the per-request
//! [`Entry`] it is rendered from.
//!
//! Pure (no Python, no I/O): the WSGI adapter captures an `Entry` when a
//! request arrives (copying only the fields the format shows), feeds it
//! the response head and body sizes, and renders one line when the
//! response is closed. Writing the line out is `logbuf`'s job.
//!
//! Request and response bytes are escaped as Apache does (`"` and `\`
//! backslashed, other non-printable bytes as `\xHH`), so a client can
//! neither break a line nor forge a field.

use std::fmt;
use std::io::Write as _;
use std::net::IpAddr;
use std::time::Duration;

use crate::http::chars::trim_ows;
use crate::http::date::put_digits;
use crate::http::parse::Version;
use crate::http::response::{framing, ResponseFraming};
use crate::http::url;
use crate::logging::localtime::Clock;
use crate::serve::app::{Request, ResponseHead};

/// When a line is written: Unix seconds, and the local zone's offset from
/// UTC then (seconds east), which `%(t)s` shows as gunicorn does.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LineTime {
    pub unix_secs: u64,
    pub utc_offset: i32,
}

/// gunicorn's default, Apache's "combined" format.
pub(crate) const DEFAULT_FORMAT: &str =
    r#"%(h)s %(l)s %(u)s %(t)s "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s""#;

/// The body of the canned 500 (`http::response::write_internal_error`):
/// its reason phrase and a newline.
const INTERNAL_ERROR_BODY: &[u8] = b"Internal Server Error\n";

/// Why a format string was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FormatError {
    /// `%(` without a `)` after it; `at` is the byte offset of the `%`.
    Unclosed { at: usize },
    /// `%(name)` followed by a conversion other than `s`.
    NotString { at: usize },
}

impl fmt::Display for FormatError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FormatError::Unclosed { at } => write!(f, "'%(' at offset {at} has no closing ')'"),
            FormatError::NotString { at } => {
                write!(f, "'%(...)' at offset {at} must end in 's', as in %(h)s")
            }
        }
    }
}

impl std::error::Error for FormatError {}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Segment {
    Text(Box<[u8]>),
    Atom(Atom),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Atom {
    /// h
    RemoteAddr,
    /// l: identd, never known
    Dash,
    /// u: the user of HTTP Basic auth; the index of the Authorization slot
    User(usize),
    /// t
    Time,
    /// r
    RequestLine,
    /// s
    Status,
    /// b: `-` for no bytes (CLF)
    BytesClf,
    /// B
    Bytes,
    /// f, a, `{name}i`: a captured request header
    RequestHeader(usize),
    /// `{name}o`: a response header the app set
    ResponseHeader(usize),
    /// T
    Seconds,
    /// D
    Micros,
    /// M
    Millis,
    /// L
    DecimalSeconds,
    /// p
    Pid,
    /// m
    Method,
    /// U
    Path,
    /// q
    Query,
    /// H
    Protocol,
    Unknown,
}

/// A parsed format: what to print, and which headers to keep for it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Format {
    segments: Vec<Segment>,
    /// Lower-case names of the request headers the atoms show.
    request_headers: Vec<Box<[u8]>>,
    /// Lower-case names of the response headers the atoms show.
    response_headers: Vec<Box<[u8]>>,
    unknown: Vec<String>,
}

impl Default for Format {
    fn default() -> Self {
        // The default format has no syntax error to report.
        Format::parse(DEFAULT_FORMAT).unwrap_or_else(|_| Format::empty())
    }
}

impl Format {
    fn empty() -> Format {
        Format {
            segments: Vec::new(),
            request_headers: Vec::new(),
            response_headers: Vec::new(),
            unknown: Vec::new(),
        }
    }

    /// Parses gunicorn's syntax: `%(name)s` is an atom, `%%` a percent sign,
    /// any other `%` itself. An atom gunicorn does not know renders as `-`
    /// (as in gunicorn) and is listed by [`Format::unknown_atoms`] so the
    /// caller can warn about the typo.
    pub fn parse(spec: &str) -> Result<Format, FormatError> {
        let mut f = Format::empty();
        let bytes = spec.as_bytes();
        let mut text = Vec::new();
        let mut i = 0;
        while i < bytes.len() {
            match (bytes[i], bytes.get(i + 1)) {
                (b'%', Some(b'%')) => {
                    text.push(b'%');
                    i += 2;
                }
                (b'%', Some(b'(')) => {
                    let start = i + 2;
                    let close = bytes[start..]
                        .iter()
                        .position(|&b| b == b')')
                        .map(|p| start + p)
                        .ok_or(FormatError::Unclosed { at: i })?;
                    if bytes.get(close + 1) != Some(&b's') {
                        return Err(FormatError::NotString { at: i });
                    }
                    if !text.is_empty() {
                        f.segments
                            .push(Segment::Text(std::mem::take(&mut text).into()));
                    }
                    let atom = f.atom(&spec[start..close]);
                    f.segments.push(Segment::Atom(atom));
                    i = close + 2;
                }
                (b, _) => {
                    text.push(b);
                    i += 1;
                }
            }
        }
        if !text.is_empty() {
            f.segments.push(Segment::Text(text.into()));
        }
        Ok(f)
    }

    fn atom(&mut self, name: &str) -> Atom {
        match name {
            "h" => Atom::RemoteAddr,
            "l" => Atom::Dash,
            "u" => Atom::User(slot(&mut self.request_headers, "authorization")),
            "t" => Atom::Time,
            "r" => Atom::RequestLine,
            "s" => Atom::Status,
            "b" => Atom::BytesClf,
            "B" => Atom::Bytes,
            "f" => Atom::RequestHeader(slot(&mut self.request_headers, "referer")),
            "a" => Atom::RequestHeader(slot(&mut self.request_headers, "user-agent")),
            "T" => Atom::Seconds,
            "D" => Atom::Micros,
            "M" => Atom::Millis,
            "L" => Atom::DecimalSeconds,
            "p" => Atom::Pid,
            "m" => Atom::Method,
            "U" => Atom::Path,
            "q" => Atom::Query,
            "H" => Atom::Protocol,
            _ => {
                let header = name
                    .strip_prefix('{')
                    .and_then(|n| n.strip_suffix("}i").map(|h| (h, true)))
                    .or_else(|| {
                        name.strip_prefix('{')
                            .and_then(|n| n.strip_suffix("}o").map(|h| (h, false)))
                    });
                match header {
                    Some((h, true)) if !h.is_empty() => {
                        Atom::RequestHeader(slot(&mut self.request_headers, h))
                    }
                    Some((h, false)) if !h.is_empty() => {
                        Atom::ResponseHeader(slot(&mut self.response_headers, h))
                    }
                    _ => {
                        if !self.unknown.iter().any(|u| u == name) {
                            self.unknown.push(name.to_string());
                        }
                        Atom::Unknown
                    }
                }
            }
        }
    }

    /// Atom names the format uses that mean nothing (they print `-`).
    pub fn unknown_atoms(&self) -> &[String] {
        &self.unknown
    }

    /// Copies what the format needs from a request that is about to be
    /// served. `remote` is the client address after X-Forwarded-For.
    pub fn capture(&self, req: &Request<'_>, remote: Option<IpAddr>) -> Entry {
        let mut data = Vec::with_capacity(req.method.len() + 1 + req.target.len() + 96);
        data.extend_from_slice(req.method);
        data.push(b' ');
        data.extend_from_slice(req.target);
        let line_len = data.len();
        let mut request_spans = vec![None; self.request_headers.len()];
        if !self.request_headers.is_empty() {
            for h in req.headers {
                let name = h.name.get(req.head);
                if let Some(i) = self
                    .request_headers
                    .iter()
                    .position(|n| name.eq_ignore_ascii_case(n))
                {
                    // The last field of a name wins, as in gunicorn.
                    request_spans[i] = Some(push_span(&mut data, h.value.get(req.head)));
                }
            }
        }
        Entry {
            remote,
            method_len: req.method.len(),
            line_len,
            version: req.version,
            head_request: req.method == b"HEAD",
            data,
            request_spans,
            response_spans: Vec::new(),
            status: None,
            body_bytes: 0,
            body_limit: None,
        }
    }

    /// Appends the line for `e` (without a newline) to `out`. `elapsed` is
    /// the time the request took, `at` the time of the line.
    pub fn render(&self, e: &Entry, elapsed: Duration, at: LineTime, out: &mut Vec<u8>) {
        for seg in &self.segments {
            match seg {
                Segment::Text(t) => out.extend_from_slice(t),
                Segment::Atom(a) => self.render_atom(*a, e, elapsed, at, out),
            }
        }
    }

    fn render_atom(&self, a: Atom, e: &Entry, elapsed: Duration, at: LineTime, out: &mut Vec<u8>) {
        let mut num = itoa::Buffer::new();
        match a {
            Atom::RemoteAddr => match e.remote {
                Some(ip) => push_ip(ip, out),
                None => out.push(b'-'),
            },
            Atom::Dash | Atom::Unknown => out.push(b'-'),
            Atom::User(slot) => match e.request_value(slot).and_then(basic_auth_user) {
                Some(user) if !user.is_empty() => escape_into(&user, out),
                _ => out.push(b'-'),
            },
            Atom::Time => clf_time(at, out),
            Atom::RequestLine => {
                escape_into(e.line(), out);
                out.push(b' ');
                out.extend_from_slice(protocol(e.version));
            }
            Atom::Status => match e.status {
                Some(s) => out.extend_from_slice(num.format(s).as_bytes()),
                None => out.push(b'-'),
            },
            Atom::BytesClf => match e.sent() {
                0 => out.push(b'-'),
                n => out.extend_from_slice(num.format(n).as_bytes()),
            },
            Atom::Bytes => out.extend_from_slice(num.format(e.sent()).as_bytes()),
            Atom::RequestHeader(slot) => match e.request_value(slot) {
                Some(v) => escape_into(v, out),
                None => out.push(b'-'),
            },
            Atom::ResponseHeader(slot) => match e.response_value(slot) {
                Some(v) => escape_into(v, out),
                None => out.push(b'-'),
            },
            Atom::Seconds => out.extend_from_slice(num.format(elapsed.as_secs()).as_bytes()),
            Atom::Micros => out.extend_from_slice(num.format(elapsed.as_micros()).as_bytes()),
            Atom::Millis => out.extend_from_slice(num.format(elapsed.as_millis()).as_bytes()),
            Atom::DecimalSeconds => {
                out.extend_from_slice(num.format(elapsed.as_secs()).as_bytes());
                let mut frac = *b".000000";
                put_digits(&mut frac[1..], u64::from(elapsed.subsec_micros()));
                out.extend_from_slice(&frac);
            }
            Atom::Pid => {
                out.push(b'<');
                out.extend_from_slice(num.format(std::process::id()).as_bytes());
                out.push(b'>');
            }
            Atom::Method => escape_into(e.method(), out),
            Atom::Path => {
                let (path, _) = url::split_target(e.target());
                let mut decoded = Vec::with_capacity(path.len());
                url::percent_decode_into(path, &mut decoded);
                escape_into(&decoded, out);
            }
            Atom::Query => escape_into(url::split_target(e.target()).1, out),
            Atom::Protocol => out.extend_from_slice(protocol(e.version)),
        }
    }
}

/// The slot of a header name in `names` (lower-cased), added if new.
fn slot(names: &mut Vec<Box<[u8]>>, name: &str) -> usize {
    let lower = name.to_ascii_lowercase().into_bytes().into_boxed_slice();
    match names.iter().position(|n| *n == lower) {
        Some(i) => i,
        None => {
            names.push(lower);
            names.len() - 1
        }
    }
}

fn push_span(data: &mut Vec<u8>, value: &[u8]) -> (usize, usize) {
    let start = data.len();
    data.extend_from_slice(value);
    (start, data.len())
}

fn protocol(v: Version) -> &'static [u8] {
    match v {
        Version::Http10 => b"HTTP/1.0",
        Version::Http11 => b"HTTP/1.1",
    }
}

/// What one access-log line is made of: the request's fields the format
/// needs (copied when the request arrives: its buffer is reused after),
/// then the response's status, headers and body size.
#[derive(Clone, Debug)]
pub struct Entry {
    remote: Option<IpAddr>,
    /// `METHOD SP TARGET`, then the captured header values.
    data: Vec<u8>,
    method_len: usize,
    line_len: usize,
    version: Version,
    head_request: bool,
    request_spans: Vec<Option<(usize, usize)>>,
    response_spans: Vec<Option<(usize, usize)>>,
    status: Option<u16>,
    body_bytes: u64,
    /// What the framing lets reach the client: 0 for HEAD, 204, 304; the
    /// app's Content-Length (extra bytes are dropped); `None` unbounded.
    body_limit: Option<u64>,
}

impl Entry {
    /// The app's status line and headers are out (or about to be).
    pub fn response_head(&mut self, format: &Format, head: &ResponseHead) {
        self.status = Some(head.status);
        self.body_limit = match framing(
            self.head_request,
            self.version,
            head.status,
            head.content_length,
        ) {
            ResponseFraming::NoBody => Some(0),
            ResponseFraming::Length(n) => Some(n),
            ResponseFraming::Chunked | ResponseFraming::UntilClose => None,
        };
        if format.response_headers.is_empty() {
            return;
        }
        self.response_spans = vec![None; format.response_headers.len()];
        for line in head.header_lines.split(|&b| b == b'\n') {
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            let Some(colon) = line.iter().position(|&b| b == b':') else {
                continue;
            };
            let (name, value) = (&line[..colon], trim_ows(&line[colon + 1..]));
            if let Some(i) = format
                .response_headers
                .iter()
                .position(|n| name.eq_ignore_ascii_case(n))
            {
                self.response_spans[i] = Some(push_span(&mut self.data, value));
            }
        }
    }

    /// `n` body bytes went to the connection (a chunk, or a whole file).
    pub fn body(&mut self, n: u64) {
        self.body_bytes = self.body_bytes.saturating_add(n);
    }

    /// The app failed before its head went out: the client gets the
    /// server's canned 500 instead of anything the app said.
    pub fn internal_error(&mut self) {
        self.status = Some(500);
        self.response_spans.clear();
        self.body_bytes = if self.head_request {
            0
        } else {
            INTERNAL_ERROR_BODY.len() as u64
        };
        self.body_limit = None;
    }

    /// The status the response has so far (set by `response_head`), for a
    /// response that ends before its head went out.
    pub fn set_status(&mut self, status: u16) {
        self.status = Some(status);
    }

    pub fn status(&self) -> Option<u16> {
        self.status
    }

    /// Body bytes the client was sent.
    pub fn sent(&self) -> u64 {
        match self.body_limit {
            Some(limit) => self.body_bytes.min(limit),
            None => self.body_bytes,
        }
    }

    fn line(&self) -> &[u8] {
        &self.data[..self.line_len]
    }

    fn method(&self) -> &[u8] {
        &self.data[..self.method_len]
    }

    fn target(&self) -> &[u8] {
        self.data
            .get(self.method_len + 1..self.line_len)
            .unwrap_or_default()
    }

    fn request_value(&self, slot: usize) -> Option<&[u8]> {
        let (a, b) = (*self.request_spans.get(slot)?)?;
        self.data.get(a..b)
    }

    fn response_value(&self, slot: usize) -> Option<&[u8]> {
        let (a, b) = (*self.response_spans.get(slot)?)?;
        self.data.get(a..b)
    }
}

/// Appends `s` with `"` and `\` backslashed and every byte outside
/// printable ASCII as `\xHH`.
fn escape_into(s: &[u8], out: &mut Vec<u8>) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    if s.iter()
        .all(|&b| (0x20..0x7f).contains(&b) && b != b'"' && b != b'\\')
    {
        out.extend_from_slice(s);
        return;
    }
    for &b in s {
        match b {
            b'"' | b'\\' => out.extend_from_slice(&[b'\\', b]),
            0x20..=0x7e => out.push(b),
            _ => out.extend_from_slice(&[
                b'\\',
                b'x',
                HEX[usize::from(b >> 4)],
                HEX[usize::from(b & 15)],
            ]),
        }
    }
}

/// `[10/Oct/2000:13:55:36 -0700]`: local time and its offset from UTC, as
/// gunicorn writes it. Digits are placed by hand: `fmt` costs more than
/// the rest of a line.
fn clf_time(at: LineTime, out: &mut Vec<u8>) {
    const MONTHS: [&[u8; 3]; 12] = [
        b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov",
        b"Dec",
    ];
    let t = Clock::at(at.unix_secs, at.utc_offset);
    let mut b = *b"[dd/Mon/yyyy:hh:mm:ss +0000]";
    put_digits(&mut b[1..3], u64::from(t.day));
    let month = MONTHS
        .get((t.month as usize).wrapping_sub(1))
        .copied()
        .unwrap_or(b"???");
    b[4..7].copy_from_slice(month);
    put_digits(&mut b[8..12], t.year);
    put_digits(&mut b[13..15], t.hour);
    put_digits(&mut b[16..18], t.minute);
    put_digits(&mut b[19..21], t.second);
    if t.offset_sign == '-' {
        b[22] = b'-';
    }
    put_digits(&mut b[23..25], t.offset_hours);
    put_digits(&mut b[25..27], t.offset_minutes);
    out.extend_from_slice(&b);
}

/// An address as `Display` shows it; IPv4 without `fmt`.
fn push_ip(ip: IpAddr, out: &mut Vec<u8>) {
    match ip {
        IpAddr::V4(a) => {
            let mut num = itoa::Buffer::new();
            for (i, octet) in a.octets().into_iter().enumerate() {
                if i > 0 {
                    out.push(b'.');
                }
                out.extend_from_slice(num.format(octet).as_bytes());
            }
        }
        IpAddr::V6(a) => {
            let _ = write!(out, "{a}");
        }
    }
}

/// The user name of an `Authorization: Basic` value: the base64-decoded
/// credentials up to the first `:`.
fn basic_auth_user(value: &[u8]) -> Option<Vec<u8>> {
    let value = trim_ows(value);
    let space = value.iter().position(|&b| b == b' ')?;
    if !value[..space].eq_ignore_ascii_case(b"basic") {
        return None;
    }
    let mut creds = base64_decode(trim_ows(&value[space + 1..]))?;
    if let Some(colon) = creds.iter().position(|&b| b == b':') {
        creds.truncate(colon);
    }
    Some(creds)
}

/// Standard base64 with optional padding; `None` on any other byte.
fn base64_decode(s: &[u8]) -> Option<Vec<u8>> {
    fn sextet(b: u8) -> Option<u32> {
        Some(match b {
            b'A'..=b'Z' => b - b'A',
            b'a'..=b'z' => b - b'a' + 26,
            b'0'..=b'9' => b - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    }
    let s = match s.iter().position(|&b| b == b'=') {
        Some(pad) if s[pad..].iter().all(|&b| b == b'=') && s.len() - pad <= 2 => &s[..pad],
        Some(_) => return None,
        None => s,
    };
    if s.len() % 4 == 1 {
        return None;
    }
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    for chunk in s.chunks(4) {
        let mut acc = 0u32;
        for &b in chunk {
            acc = acc << 6 | sextet(b)?;
        }
        acc <<= 6 * (4 - chunk.len() as u32);
        let bytes = acc.to_be_bytes();
        out.extend_from_slice(&bytes[1..chunk.len()]);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::parse::{HeadParser, Limits, Status};
    use crate::serve::app::{Local, Peer};
    use crate::serve::spool::RequestBody;

    /// Parses a raw head and captures it with `format`.
    fn capture(format: &Format, raw: &[u8], remote: Option<&str>) -> Entry {
        let mut p = HeadParser::new(Limits::default());
        match p.parse(raw) {
            Ok(Status::Complete { .. }) => {}
            other => panic!("test head does not parse: {other:?}"),
        }
        let peer = Peer::Unix;
        let local = Local::Unix("/x".into());
        let req = Request {
            head: raw,
            method: p.method().get(raw),
            target: p.target().get(raw),
            version: p.version(),
            headers: p.headers(),
            body: RequestBody::default(),
            peer: &peer,
            local: &local,
        };
        format.capture(&req, remote.map(|r| r.parse().expect("test ip")))
    }

    fn head(status: u16, headers: &str, content_length: Option<u64>) -> ResponseHead {
        ResponseHead {
            status,
            status_line: format!("{status} X").into_bytes(),
            header_lines: headers.as_bytes().to_vec(),
            content_length,
            ..ResponseHead::default()
        }
    }

    fn render(f: &Format, e: &Entry, elapsed: Duration, unix_secs: u64) -> String {
        let mut out = Vec::new();
        let at = LineTime {
            unix_secs,
            utc_offset: 0,
        };
        f.render(e, elapsed, at, &mut out);
        String::from_utf8(out).expect("log lines are ASCII")
    }

    fn one(atom: &str, raw: &[u8], h: Option<&ResponseHead>, body: u64) -> String {
        let f = Format::parse(atom).expect(atom);
        let mut e = capture(&f, raw, Some("10.1.2.3"));
        if let Some(h) = h {
            e.response_head(&f, h);
        }
        e.body(body);
        render(&f, &e, Duration::from_micros(2_345_678), 971_186_136)
    }

    const GET: &[u8] = b"GET /a%20b/c?x=1&y=%41 HTTP/1.1\r\nHost: h\r\nReferer: http://ref/\r\n\
        User-Agent: curl/8.0\r\nAuthorization: Basic YWxpY2U6c2VjcmV0\r\nX-Req: one\r\n\r\n";

    #[test]
    fn default_format_combined() {
        let f = Format::default();
        assert_eq!(f, Format::parse(DEFAULT_FORMAT).unwrap());
        assert!(f.unknown_atoms().is_empty());
        let mut e = capture(&f, GET, Some("10.1.2.3"));
        e.response_head(&f, &head(200, "Content-Type: text/plain\r\n", Some(5)));
        e.body(5);
        assert_eq!(
            render(&f, &e, Duration::ZERO, 971_186_136),
            r#"10.1.2.3 - alice [10/Oct/2000:13:55:36 +0000] "GET /a%20b/c?x=1&y=%41 HTTP/1.1" 200 5 "http://ref/" "curl/8.0""#
        );
    }

    #[test]
    fn every_atom() {
        let ok = head(201, "Content-Type: text/plain\r\nX-Out: o1\r\n", None);
        let h = Some(&ok);
        assert_eq!(one("%(h)s", GET, h, 0), "10.1.2.3");
        assert_eq!(one("%(l)s", GET, h, 0), "-");
        assert_eq!(one("%(u)s", GET, h, 0), "alice");
        assert_eq!(one("%(t)s", GET, h, 0), "[10/Oct/2000:13:55:36 +0000]");
        assert_eq!(one("%(r)s", GET, h, 0), "GET /a%20b/c?x=1&y=%41 HTTP/1.1");
        assert_eq!(one("%(s)s", GET, h, 0), "201");
        assert_eq!(one("%(b)s", GET, h, 7), "7");
        assert_eq!(one("%(b)s", GET, h, 0), "-");
        assert_eq!(one("%(B)s", GET, h, 7), "7");
        assert_eq!(one("%(B)s", GET, h, 0), "0");
        assert_eq!(one("%(f)s", GET, h, 0), "http://ref/");
        assert_eq!(one("%(a)s", GET, h, 0), "curl/8.0");
        assert_eq!(one("%(T)s", GET, h, 0), "2");
        assert_eq!(one("%(D)s", GET, h, 0), "2345678");
        assert_eq!(one("%(M)s", GET, h, 0), "2345");
        assert_eq!(one("%(L)s", GET, h, 0), "2.345678");
        assert_eq!(one("%(p)s", GET, h, 0), format!("<{}>", std::process::id()));
        assert_eq!(one("%(m)s", GET, h, 0), "GET");
        assert_eq!(one("%(U)s", GET, h, 0), "/a b/c");
        assert_eq!(one("%(q)s", GET, h, 0), "x=1&y=%41");
        assert_eq!(one("%(H)s", GET, h, 0), "HTTP/1.1");
        // Before any response head: no status.
        assert_eq!(one("%(s)s", GET, None, 0), "-");
    }

    #[test]
    fn missing_request_fields_are_dashes() {
        let raw = b"POST / HTTP/1.0\r\n\r\n";
        for atom in ["%(u)s", "%(f)s", "%(a)s", "%({x-req}i)s"] {
            assert_eq!(one(atom, raw, None, 0), "-", "{atom}");
        }
        assert_eq!(one("%(q)s", raw, None, 0), "");
        assert_eq!(one("%(H)s", raw, None, 0), "HTTP/1.0");
        assert_eq!(one("%(r)s", raw, None, 0), "POST / HTTP/1.0");
        let f = Format::parse("%(h)s").unwrap();
        let e = capture(&f, raw, None);
        assert_eq!(render(&f, &e, Duration::ZERO, 0), "-");
        // Timing at zero, time at the epoch.
        assert_eq!(one("%(L)s", raw, None, 0).len(), "2.345678".len());
        let e = capture(&Format::parse("%(t)s %(L)s").unwrap(), raw, None);
        assert_eq!(
            render(
                &Format::parse("%(t)s %(L)s").unwrap(),
                &e,
                Duration::ZERO,
                0
            ),
            "[01/Jan/1970:00:00:00 +0000] 0.000000"
        );
    }

    #[test]
    fn ipv6_remote() {
        let f = Format::parse("%(h)s").unwrap();
        let e = capture(&f, GET, Some("2001:db8::1"));
        assert_eq!(render(&f, &e, Duration::ZERO, 0), "2001:db8::1");
    }

    #[test]
    fn header_atoms_are_case_insensitive() {
        let resp = head(200, "X-Out: o1\r\nset-cookie: a=1\r\nX-Empty:\r\n", None);
        let h = Some(&resp);
        assert_eq!(one("%({X-Req}i)s", GET, h, 0), "one");
        assert_eq!(one("%({x-req}i)s", GET, h, 0), "one");
        assert_eq!(one("%({HOST}i)s", GET, h, 0), "h");
        assert_eq!(one("%({x-out}o)s", GET, h, 0), "o1");
        assert_eq!(one("%({Set-Cookie}o)s", GET, h, 0), "a=1");
        assert_eq!(one("%({x-empty}o)s", GET, h, 0), "");
        assert_eq!(one("%({x-none}o)s", GET, h, 0), "-");
        assert_eq!(one("%({x-none}i)s", GET, h, 0), "-");
        // The same header twice in a format is captured once.
        let f = Format::parse("%({x-req}i)s %({X-REQ}i)s %(a)s %({user-agent}i)s").unwrap();
        assert_eq!(f.request_headers.len(), 2);
        let e = capture(&f, GET, None);
        assert_eq!(
            render(&f, &e, Duration::ZERO, 0),
            "one one curl/8.0 curl/8.0"
        );
    }

    #[test]
    fn repeated_headers_last_wins() {
        let raw = b"GET / HTTP/1.1\r\nHost: h\r\nX-Req: first\r\nx-req: second\r\n\r\n";
        assert_eq!(one("%({x-req}i)s", raw, None, 0), "second");
        let resp = head(200, "X-Out: 1\r\nX-Out: 2\r\n", None);
        assert_eq!(one("%({x-out}o)s", raw, Some(&resp), 0), "2");
    }

    #[test]
    fn escapes() {
        let raw = b"GET /p?q=\"x\" HTTP/1.1\r\nHost: h\r\nUser-Agent: a \"quoted\" \\ back\tslash\xe9\r\n\r\n";
        assert_eq!(
            one("%(a)s", raw, None, 0),
            r#"a \"quoted\" \\ back\x09slash\xe9"#
        );
        assert_eq!(one("%(r)s", raw, None, 0), r#"GET /p?q=\"x\" HTTP/1.1"#);
        // A decoded path may hold any byte: newline, quote, non-ASCII.
        let raw = b"GET /a%0Ab%22c%C3%A9 HTTP/1.1\r\nHost: h\r\n\r\n";
        assert_eq!(one("%(U)s", raw, None, 0), r#"/a\x0ab\"c\xc3\xa9"#);
        // App headers are latin-1: one byte per character.
        let mut resp = head(200, "", None);
        resp.header_lines = b"X-Out: caf\xe9\r\n".to_vec();
        assert_eq!(one("%({x-out}o)s", raw, Some(&resp), 0), r"caf\xe9");
    }

    #[test]
    fn literal_text_and_percent() {
        let f = Format::parse("100%% %(s)s% done %x %(").err();
        assert_eq!(f, Some(FormatError::Unclosed { at: 21 }));
        let f = Format::parse("100%% %(s)s% done %x%").unwrap();
        let mut e = capture(&f, GET, None);
        e.response_head(&f, &head(404, "", None));
        assert_eq!(render(&f, &e, Duration::ZERO, 0), "100% 404% done %x%");
        let f = Format::parse("").unwrap();
        assert_eq!(render(&f, &capture(&f, GET, None), Duration::ZERO, 0), "");
        let f = Format::parse("caf\u{e9} %(m)s").unwrap();
        assert_eq!(
            render(&f, &capture(&f, GET, None), Duration::ZERO, 0),
            "caf\u{e9} GET"
        );
    }

    #[test]
    fn syntax_errors() {
        assert_eq!(
            Format::parse("%(h)s %(h"),
            Err(FormatError::Unclosed { at: 6 })
        );
        assert_eq!(
            Format::parse("x %(h)d"),
            Err(FormatError::NotString { at: 2 })
        );
        assert_eq!(Format::parse("%(h)"), Err(FormatError::NotString { at: 0 }));
        assert!(FormatError::Unclosed { at: 3 }
            .to_string()
            .contains("offset 3"));
    }

    #[test]
    fn unknown_atoms_render_as_dash() {
        let f = Format::parse("%(zz)s|%()s|%({x}e)s|%({}i)s|%(zz)s|%(S)s").unwrap();
        assert_eq!(f.unknown_atoms(), ["zz", "", "{x}e", "{}i", "S"]);
        let e = capture(&f, GET, None);
        assert_eq!(render(&f, &e, Duration::ZERO, 0), "-|-|-|-|-|-");
    }

    #[test]
    fn body_bytes_follow_framing() {
        let f = Format::parse("%(s)s %(B)s %(b)s").unwrap();
        let line = |raw: &[u8], h: ResponseHead, body: &[u64]| {
            let mut e = capture(&f, raw, None);
            e.response_head(&f, &h);
            for &n in body {
                e.body(n);
            }
            render(&f, &e, Duration::ZERO, 0)
        };
        let get = b"GET / HTTP/1.1\r\nHost: h\r\n\r\n";
        let head_req = b"HEAD / HTTP/1.1\r\nHost: h\r\n\r\n";
        assert_eq!(line(get, head(200, "", None), &[3, 4]), "200 7 7");
        // Bytes past Content-Length never reach the client.
        assert_eq!(line(get, head(200, "", Some(5)), &[3, 4]), "200 5 5");
        assert_eq!(line(head_req, head(200, "", Some(5)), &[5]), "200 0 -");
        assert_eq!(line(get, head(204, "", None), &[5]), "204 0 -");
        assert_eq!(line(get, head(304, "", None), &[5]), "304 0 -");
    }

    #[test]
    fn internal_error_line() {
        let f = Format::parse("%(s)s %(b)s %({x-out}o)s").unwrap();
        let mut e = capture(&f, GET, None);
        e.response_head(&f, &head(200, "X-Out: 1\r\n", Some(3)));
        e.internal_error();
        assert_eq!(render(&f, &e, Duration::ZERO, 0), "500 22 -");
        let mut e = capture(&f, b"HEAD / HTTP/1.1\r\nHost: h\r\n\r\n", None);
        e.internal_error();
        assert_eq!(render(&f, &e, Duration::ZERO, 0), "500 - -");
        // The length matches the canned reply conn.rs sends.
        let mut out = Vec::new();
        crate::http::response::write_internal_error(b"date", true, false, &mut out);
        assert!(out.ends_with(b"\r\n\r\nInternal Server Error\n"));
        assert_eq!(INTERNAL_ERROR_BODY.len(), 22);
    }

    #[test]
    fn basic_auth() {
        let user = |v: &str| basic_auth_user(v.as_bytes());
        assert_eq!(user("Basic YWxpY2U6c2VjcmV0"), Some(b"alice".to_vec()));
        assert_eq!(user("basic   YWxpY2U6c2VjcmV0 "), Some(b"alice".to_vec()));
        // No colon: all of it is the user.
        assert_eq!(user("Basic Ym9i"), Some(b"bob".to_vec()));
        assert_eq!(user("Basic YWw6"), Some(b"al".to_vec()));
        assert_eq!(user("Basic YQ=="), Some(b"a".to_vec()));
        assert_eq!(user("Basic YWI="), Some(b"ab".to_vec()));
        assert_eq!(user("Bearer YWxpY2U6c2VjcmV0"), None);
        assert_eq!(user("Basic !!!"), None);
        assert_eq!(user("Basic YQ=x"), None);
        assert_eq!(user("Basic Y"), None);
        assert_eq!(user("Basic"), None);
        assert_eq!(user(""), None);
        // A user name with a quote or a control byte is escaped.
        let raw = b"GET / HTTP/1.1\r\nHost: h\r\nAuthorization: Basic ImEKYjpw\r\n\r\n";
        assert_eq!(one("%(u)s", raw, None, 0), r#"\"a\x0ab"#);
        // Empty user name: a dash.
        let raw = b"GET / HTTP/1.1\r\nHost: h\r\nAuthorization: Basic OnB3\r\n\r\n";
        assert_eq!(one("%(u)s", raw, None, 0), "-");
    }

    #[test]
    fn clf_dates() {
        let local = |unix_secs, utc_offset| {
            let mut out = Vec::new();
            clf_time(
                LineTime {
                    unix_secs,
                    utc_offset,
                },
                &mut out,
            );
            String::from_utf8(out).unwrap()
        };
        let t = |secs| local(secs, 0);
        assert_eq!(t(0), "[01/Jan/1970:00:00:00 +0000]");
        assert_eq!(t(951_782_400), "[29/Feb/2000:00:00:00 +0000]");
        assert_eq!(t(1_767_225_599), "[31/Dec/2025:23:59:59 +0000]");
        assert_eq!(t(u64::MAX), "[31/Dec/9999:23:59:59 +0000]");
        // Local time with its offset: east of UTC, west, and across midnight
        // and a year's end.
        assert_eq!(local(1_767_225_599, 19_800), "[01/Jan/2026:05:29:59 +0530]");
        assert_eq!(
            local(1_767_225_599, -25_200),
            "[31/Dec/2025:16:59:59 -0700]"
        );
        assert_eq!(local(1_767_225_600, -1), "[31/Dec/2025:23:59:59 -0000]");
        assert_eq!(local(0, -3600), "[01/Jan/1970:00:00:00 -0100]");
        let ip = |s: &str| {
            let mut out = Vec::new();
            push_ip(s.parse().unwrap(), &mut out);
            String::from_utf8(out).unwrap()
        };
        for a in [
            "0.0.0.0",
            "255.255.255.255",
            "10.0.20.100",
            "::1",
            "2001:db8::a:1",
        ] {
            assert_eq!(ip(a), a);
        }
    }
}
