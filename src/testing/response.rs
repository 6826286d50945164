//! Reads HTTP/1.1 responses back from bytes: what a connection wrote to a
//! mock stream, or what a test client received over a socket. Strict about
//! what the server promises (status line, header syntax, one framing, valid
//! chunked coding, no trailers), so every test that reads a response checks
//! the framing on the way.

/// A response read back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Response {
    /// "HTTP/1.1"
    pub version: String,
    pub status: u16,
    pub reason: String,
    /// Names as sent; values without surrounding SP/HTAB.
    pub headers: Vec<(String, String)>,
    /// The decoded body (chunked framing removed), or as much as arrived.
    pub body: Vec<u8>,
    /// Every byte of this response as received, head included.
    pub raw: Vec<u8>,
    /// Chunk sizes seen if the body was chunked (final 0 included).
    pub chunks: Option<Vec<usize>>,
    /// The body is whole (chunked: the last chunk arrived; Content-Length:
    /// all its bytes; until close: the stream ended).
    pub complete: bool,
}

impl Response {
    /// The value of header `name` (case-insensitive); panics if it is
    /// repeated.
    pub fn header(&self, name: &str) -> Option<&str> {
        let mut found = self.headers_named(name).into_iter();
        let first = found.next();
        assert!(found.next().is_none(), "header {name} repeated");
        first
    }

    pub fn headers_named(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }

    pub fn has_header(&self, name: &str) -> bool {
        self.headers
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case(name))
    }

    /// True if a `Connection` header lists `token`.
    pub fn connection_has(&self, token: &str) -> bool {
        self.headers_named("connection")
            .iter()
            .flat_map(|v| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case(token))
    }

    pub fn is_chunked(&self) -> bool {
        self.chunks.is_some()
    }

    pub fn body_str(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn raw_str(&self) -> String {
        String::from_utf8_lossy(&self.raw).into_owned()
    }
}

pub fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Parses one response from the front of `buf`, which holds everything
/// written: the response and the bytes it used. Bodies: none for HEAD, 1xx,
/// 204 and 304, else chunked, Content-Length or up to the end of `buf`.
/// Panics on an incomplete head or bytes that are not a response.
pub fn parse_response(buf: &[u8], head_request: bool) -> (Response, usize) {
    match try_parse(buf, head_request, true) {
        Ok(Some(r)) => {
            let used = r.raw.len();
            (r, used)
        }
        Ok(None) => panic!(
            "no complete response head in {:?}",
            String::from_utf8_lossy(buf)
        ),
        Err(e) => panic!("{e}: {:?}", String::from_utf8_lossy(buf)),
    }
}

/// Parses back-to-back responses to non-HEAD requests, using every byte.
pub fn parse_all(buf: &[u8]) -> Vec<Response> {
    let mut pos = 0;
    let mut all = Vec::new();
    while pos < buf.len() {
        let (r, n) = parse_response(&buf[pos..], false);
        pos += n;
        all.push(r);
    }
    all
}

/// [`try_parse_with`] for a request known beforehand to be HEAD or not.
pub fn try_parse(buf: &[u8], head_request: bool, at_end: bool) -> Result<Option<Response>, String> {
    try_parse_with(buf, at_end, |_| head_request)
}

/// Reads the response at the front of `buf`: `None` while its head is
/// incomplete, else the response with `complete` unset while its body is
/// (`raw` then holds all of `buf`). `at_end`: no more bytes will come, so a
/// body until close is whole. `head_request` is asked, once the head is
/// read, whether the request was HEAD (the response then has no body).
/// Malformed bytes are an error saying what is wrong.
pub fn try_parse_with(
    buf: &[u8],
    at_end: bool,
    head_request: impl FnOnce(&Response) -> bool,
) -> Result<Option<Response>, String> {
    let Some(end) = find(buf, b"\r\n\r\n") else {
        // What arrived of the head must at least start like one.
        if !buf.starts_with(b"HTTP/1.1 ") && !b"HTTP/1.1 ".starts_with(buf) {
            return Err("garbage where a response should start".into());
        }
        return Ok(None);
    };
    let mut r = parse_head(&buf[..end])?;
    let pos = end + 4;
    let framing = framing(&r)?;
    let no_body =
        head_request(&r) || (100..200).contains(&r.status) || r.status == 204 || r.status == 304;
    let used = match framing {
        _ if no_body => Some(pos),
        Framing::Chunked => chunked_body(buf, pos, &mut r)?,
        Framing::Length(n) => {
            let have = (buf.len() - pos).min(n);
            r.body = buf[pos..pos + have].to_vec();
            (have == n).then_some(pos + n)
        }
        Framing::UntilClose => {
            r.body = buf[pos..].to_vec();
            at_end.then_some(buf.len())
        }
    };
    r.complete = used.is_some();
    r.raw = buf[..used.unwrap_or(buf.len())].to_vec();
    Ok(Some(r))
}

/// The status line and header fields (`head` without its final CRLFCRLF).
fn parse_head(head: &[u8]) -> Result<Response, String> {
    let lossy = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    let lines = crlf_lines(head)?;
    let status_line = lines[0];
    let status = status_line
        .strip_prefix(b"HTTP/1.1 ")
        .filter(|rest| rest.len() >= 4 && rest[3] == b' ')
        .and_then(|rest| std::str::from_utf8(&rest[..3]).ok())
        .filter(|code| code.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| format!("bad status line {:?}", lossy(status_line)))?;
    let mut r = Response {
        version: "HTTP/1.1".into(),
        status,
        reason: lossy(&status_line[13..]),
        headers: Vec::new(),
        body: Vec::new(),
        raw: Vec::new(),
        chunks: None,
        complete: false,
    };
    for line in &lines[1..] {
        let colon = line
            .iter()
            .position(|&b| b == b':')
            .ok_or_else(|| format!("bad header line {:?}", lossy(line)))?;
        let (name, value) = (&line[..colon], &line[colon + 1..]);
        if name.is_empty() || !name.iter().all(|&b| super::is_tchar(b)) {
            return Err(format!("bad header name in {:?}", lossy(line)));
        }
        let value = lossy(value).trim_matches([' ', '\t']).to_string();
        r.headers.push((lossy(name), value));
    }
    Ok(r)
}

/// The lines of `head`, each of which must end in CRLF (the last one's is
/// the start of the CRLFCRLF that ends the head); no bare CR or LF.
fn crlf_lines(head: &[u8]) -> Result<Vec<&[u8]>, String> {
    let parts: Vec<&[u8]> = head.split(|&b| b == b'\n').collect();
    let last = parts.len() - 1;
    let mut lines = Vec::with_capacity(parts.len());
    for (i, part) in parts.into_iter().enumerate() {
        let line = if i < last {
            part.strip_suffix(b"\r").ok_or("header line without CRLF")?
        } else {
            part
        };
        if line.contains(&b'\r') {
            return Err("bare CR in the head".into());
        }
        lines.push(line);
    }
    Ok(lines)
}

/// How a response's body ends (when it has one).
enum Framing {
    Chunked,
    Length(usize),
    UntilClose,
}

/// How the body is framed; two framings, or one given twice, is an error.
fn framing(r: &Response) -> Result<Framing, String> {
    let te = r.headers_named("transfer-encoding");
    let cl = r.headers_named("content-length");
    match (te.as_slice(), cl.as_slice()) {
        ([], []) => Ok(Framing::UntilClose),
        (["chunked"], []) => Ok(Framing::Chunked),
        ([], [n]) => n
            .parse()
            .map(Framing::Length)
            .map_err(|_| format!("bad Content-Length {n:?}")),
        ([te], []) => Err(format!("unsupported transfer-encoding {te:?}")),
        ([_], [_]) => Err("both Content-Length and Transfer-Encoding".into()),
        _ => Err("Content-Length or Transfer-Encoding repeated".into()),
    }
}

/// Decodes the chunked body starting at `pos` into `r` and returns where
/// it ends, `None` while it is cut short.
fn chunked_body(buf: &[u8], mut pos: usize, r: &mut Response) -> Result<Option<usize>, String> {
    let chunks = r.chunks.insert(Vec::new());
    loop {
        let Some(eol) = find(&buf[pos..], b"\r\n") else {
            return Ok(None);
        };
        let size_line = &buf[pos..pos + eol];
        let size = std::str::from_utf8(size_line)
            .ok()
            .filter(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_hexdigit()))
            .and_then(|s| usize::from_str_radix(s, 16).ok())
            .ok_or_else(|| {
                format!(
                    "bad chunk-size line {:?}",
                    String::from_utf8_lossy(size_line)
                )
            })?;
        chunks.push(size);
        let start = pos + eol + 2;
        if size == 0 {
            // No trailers from us.
            return match buf.get(start..start + 2) {
                None => Ok(None),
                Some(b"\r\n") => Ok(Some(start + 2)),
                Some(_) => Err("no CRLF after the last chunk".into()),
            };
        }
        let data_end = start.saturating_add(size).min(buf.len());
        r.body.extend_from_slice(&buf[start..data_end]);
        match buf.get(start + size..start + size + 2) {
            None => return Ok(None),
            Some(b"\r\n") => pos = start + size + 2,
            Some(_) => return Err("chunk data not followed by CRLF".into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEAD_CL: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n";

    #[test]
    fn framings_and_what_is_still_missing() {
        let whole = [HEAD_CL, b"abcHTTP/1.1 ..."].concat();
        let r = try_parse(&whole, false, false).unwrap().unwrap();
        assert!(r.complete && r.body == b"abc" && r.raw.len() == HEAD_CL.len() + 3);
        let r = try_parse(&whole[..HEAD_CL.len() + 1], false, false)
            .unwrap()
            .unwrap();
        assert!(!r.complete && r.body == b"a");
        assert_eq!(try_parse(&HEAD_CL[..20], false, false), Ok(None));
        // HEAD: no body, whatever the Content-Length.
        let r = try_parse(HEAD_CL, true, false).unwrap().unwrap();
        assert!(r.complete && r.body.is_empty());
        let chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nab\r\n0\r\n\r\n";
        let r = try_parse(chunked, false, false).unwrap().unwrap();
        assert!(r.complete && r.body == b"ab" && r.chunks == Some(vec![2, 0]));
        let r = try_parse(&chunked[..chunked.len() - 2], false, false)
            .unwrap()
            .unwrap();
        assert!(!r.complete && r.is_chunked());
        // Until close: whole only at the end of the stream.
        let close = b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nrest";
        assert!(!try_parse(close, false, false).unwrap().unwrap().complete);
        assert!(try_parse(close, false, true).unwrap().unwrap().complete);
    }

    #[test]
    fn malformed_responses_are_errors() {
        for bad in [
            &b"HTTP/1.0 200 OK\r\n\r\n"[..],
            b"HTTP/1.1 200\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nX-A: 1\nX-B: 2\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nBad Name: 1\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabcd",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2;x\r\nab\r\n",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nT: 1\r\n\r\n",
            b"HTTP/1.2",
            b"garbage",
        ] {
            assert!(
                try_parse(bad, false, true).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }
}
