//! Response heads: the framing decision, the head the app's response gets
//! (which returns its body's encoder) and canned error replies.

use super::encode::BodyEncoder;
use super::parse::Version;
use super::HttpError;

/// The response status line and headers, validated and serialised by the
/// application adapter.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ResponseHead {
    pub status: u16,
    /// The status as the app gave it, e.g. `200 OK`.
    pub status_line: Vec<u8>,
    /// The app's header lines, each `Name: value\r\n`, already checked for
    /// CR/LF/NUL and hop-by-hop fields.
    pub header_lines: Vec<u8>,
    /// The app's Content-Length, parsed.
    pub content_length: Option<u64>,
    pub has_date: bool,
    pub has_server: bool,
    /// The app sent `Connection: close`.
    pub close: bool,
    /// The body's length when the adapter knows it although the app sent
    /// no Content-Length (a file, `serve::app::Event::File`): the server
    /// then frames the body with this length and says so in a
    /// Content-Length header, so the connection can stay open.
    pub body_length: Option<u64>,
}
/// The `Server` field the server adds to its replies (unless the app set one).
pub(crate) const SERVER_FIELD: &[u8] = b"Server: rwsgi-lite\r\n";

/// How a response body is delimited on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResponseFraming {
    /// HEAD, 1xx, 204, 304: no body bytes are sent whatever the app returns.
    NoBody,
    /// The app's Content-Length: exactly this many bytes.
    Length(u64),
    /// HTTP/1.1 without Content-Length.
    Chunked,
    /// HTTP/1.0 without Content-Length: the body ends when we close.
    UntilClose,
}

/// Chooses the framing for a response to a request with this method and
/// version, given the status and the app's Content-Length (if it sent one).
pub fn framing(
    head_request: bool,
    version: Version,
    status: u16,
    content_length: Option<u64>,
) -> ResponseFraming {
    if head_request || status < 200 || status == 204 || status == 304 {
        return ResponseFraming::NoBody;
    }
    match (content_length, version) {
        (Some(n), _) => ResponseFraming::Length(n),
        (None, Version::Http11) => ResponseFraming::Chunked,
        (None, Version::Http10) => ResponseFraming::UntilClose,
    }
}

/// Serialises the head of a response to a request with this method and
/// version (status line, the app's headers, then the ones the server owns:
/// Server, Date, framing, connection) and returns the encoder its body
/// goes through. `keep_alive`: the request and the server allow another
/// request after this one; the head and its framing may still refuse.
pub(crate) fn write_head(
    out: &mut Vec<u8>,
    head: &ResponseHead,
    head_request: bool,
    version: Version,
    keep_alive: bool,
    date: &[u8],
) -> BodyEncoder {
    let framing = framing(
        head_request,
        version,
        head.status,
        head.content_length.or(head.body_length),
    );
    let body = BodyEncoder::new(framing, keep_alive && !head.close);
    // The adapter knows the length the app did not give (a file): say it,
    // as a GET would for a HEAD request.
    let added_length = match head.content_length {
        None if head.status != 204 && head.status != 304 => head.body_length,
        _ => None,
    };
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(&head.status_line);
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(&head.header_lines);
    if !head.has_server {
        out.extend_from_slice(SERVER_FIELD);
    }
    if !head.has_date {
        out.extend_from_slice(b"Date: ");
        out.extend_from_slice(date);
        out.extend_from_slice(b"\r\n");
    }
    if framing == ResponseFraming::Chunked {
        out.extend_from_slice(b"Transfer-Encoding: chunked\r\n");
    }
    if let Some(n) = added_length {
        out.extend_from_slice(b"Content-Length: ");
        out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    if !body.keep_alive() {
        out.extend_from_slice(b"Connection: close\r\n");
    } else if version == Version::Http10 {
        out.extend_from_slice(b"Connection: keep-alive\r\n");
    }
    out.extend_from_slice(b"\r\n");
    body
}

/// Appends a complete canned reply for a protocol error:
/// status line, `Content-Type: text/plain`, `Content-Length`, `Date`,
/// `Server`, `Connection: close`, blank line, and a one-line body
/// (the reason phrase).
pub fn write_error(err: HttpError, date: &[u8], out: &mut Vec<u8>) {
    write_canned(err.status(), err.reason(), date, false, true, out);
}

/// Appends a canned `500 Internal Server Error` reply (same shape as
/// `write_error`), used when the app fails before sending headers.
/// `keep_alive` false adds `Connection: close`.
pub(crate) fn write_internal_error(
    date: &[u8],
    keep_alive: bool,
    head_request: bool,
    out: &mut Vec<u8>,
) {
    write_canned(
        500,
        "Internal Server Error",
        date,
        keep_alive,
        !head_request,
        out,
    );
}

/// `body` false (a HEAD request) keeps the Content-Length of the body a GET
/// would get, but sends no body: a keep-alive client would otherwise read
/// those bytes as the start of the next response.
fn write_canned(
    status: u16,
    reason: &str,
    date: &[u8],
    keep_alive: bool,
    body: bool,
    out: &mut Vec<u8>,
) {
    let mut num = itoa::Buffer::new();
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(num.format(status).as_bytes());
    out.push(b' ');
    out.extend_from_slice(reason.as_bytes());
    out.extend_from_slice(b"\r\nContent-Type: text/plain\r\nContent-Length: ");
    // The body is the reason phrase and a newline.
    out.extend_from_slice(num.format(reason.len() + 1).as_bytes());
    out.extend_from_slice(b"\r\nDate: ");
    out.extend_from_slice(date);
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(SERVER_FIELD);
    if !keep_alive {
        out.extend_from_slice(b"Connection: close\r\n");
    }
    out.extend_from_slice(b"\r\n");
    if body {
        out.extend_from_slice(reason.as_bytes());
        out.push(b'\n');
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DATE: &[u8] = b"Sun, 06 Nov 1994 08:49:37 GMT";

    #[test]
    fn framing_rules() {
        use ResponseFraming::*;
        use Version::*;
        assert_eq!(framing(true, Http11, 200, Some(5)), NoBody);
        assert_eq!(framing(true, Http10, 200, None), NoBody);
        for s in [100, 101, 103, 204, 304] {
            assert_eq!(framing(false, Http11, s, Some(5)), NoBody, "{s}");
        }
        assert_eq!(framing(false, Http11, 200, Some(0)), Length(0));
        assert_eq!(framing(false, Http10, 404, Some(7)), Length(7));
        assert_eq!(framing(false, Http11, 200, None), Chunked);
        assert_eq!(framing(false, Http10, 200, None), UntilClose);
        assert_eq!(framing(false, Http11, 205, None), Chunked);
    }

    fn head(status: u16, content_length: Option<u64>) -> ResponseHead {
        let mut lines = b"Content-Type: text/plain\r\n".to_vec();
        if let Some(n) = content_length {
            lines.extend_from_slice(format!("Content-Length: {n}\r\n").as_bytes());
        }
        ResponseHead {
            status,
            status_line: format!("{status} X").into_bytes(),
            header_lines: lines,
            content_length,
            ..ResponseHead::default()
        }
    }

    /// The head's text after the app's lines, and the encoder.
    fn written(
        head: &ResponseHead,
        head_request: bool,
        version: Version,
        keep_alive: bool,
    ) -> (String, BodyEncoder) {
        let mut out = Vec::new();
        let enc = write_head(&mut out, head, head_request, version, keep_alive, DATE);
        let text = String::from_utf8(out).unwrap();
        let start = format!("HTTP/1.1 {} X\r\n", head.status);
        assert!(text.starts_with(&start), "{text}");
        let own = text[start.len()..].strip_prefix("Content-Type: text/plain\r\n");
        let own = own.unwrap().to_owned();
        let own = match head.content_length {
            Some(n) => own
                .strip_prefix(&format!("Content-Length: {n}\r\n"))
                .unwrap()
                .to_owned(),
            None => own,
        };
        (own, enc)
    }

    const OWN: &str = "Server: rwsgi-lite\r\nDate: Sun, 06 Nov 1994 08:49:37 GMT\r\n";

    #[test]
    fn head_with_length_keeps_alive() {
        use ResponseFraming::*;
        let (own, enc) = written(&head(200, Some(5)), false, Version::Http11, true);
        assert_eq!(own, format!("{OWN}\r\n"));
        assert_eq!(enc, BodyEncoder::new(Length(5), true));
        // HTTP/1.0 needs to be told.
        let (own, enc) = written(&head(200, Some(5)), false, Version::Http10, true);
        assert_eq!(own, format!("{OWN}Connection: keep-alive\r\n\r\n"));
        assert!(enc.keep_alive());
    }

    #[test]
    fn head_without_length() {
        use ResponseFraming::*;
        let (own, enc) = written(&head(200, None), false, Version::Http11, true);
        assert_eq!(own, format!("{OWN}Transfer-Encoding: chunked\r\n\r\n"));
        assert_eq!(enc, BodyEncoder::new(Chunked, true));
        // HTTP/1.0: delimited by the close, which the head announces.
        let (own, enc) = written(&head(200, None), false, Version::Http10, true);
        assert_eq!(own, format!("{OWN}Connection: close\r\n\r\n"));
        assert!(!enc.keep_alive());
    }

    #[test]
    fn heads_without_body() {
        for (status, head_request) in [(200, true), (204, false), (304, false), (101, false)] {
            let (own, enc) = written(&head(status, None), head_request, Version::Http11, true);
            assert_eq!(own, format!("{OWN}\r\n"), "{status}");
            assert_eq!(enc, BodyEncoder::new(ResponseFraming::NoBody, true));
        }
    }

    #[test]
    fn head_says_close() {
        let (own, enc) = written(&head(200, Some(1)), false, Version::Http11, false);
        assert_eq!(own, format!("{OWN}Connection: close\r\n\r\n"));
        assert!(!enc.keep_alive());
        let mut app_close = head(200, Some(1));
        app_close.close = true;
        let (_, enc) = written(&app_close, false, Version::Http11, true);
        assert!(!enc.keep_alive());
    }

    #[test]
    fn head_owned_fields_are_not_doubled() {
        let mut h = head(200, Some(0));
        h.has_date = true;
        h.has_server = true;
        let (own, _) = written(&h, false, Version::Http11, true);
        assert_eq!(own, "\r\n");
    }

    #[test]
    fn known_body_length_becomes_content_length() {
        use ResponseFraming::*;
        let mut file = head(200, None);
        file.body_length = Some(300);
        let (own, enc) = written(&file, false, Version::Http10, true);
        assert_eq!(
            own,
            format!("{OWN}Content-Length: 300\r\nConnection: keep-alive\r\n\r\n")
        );
        assert_eq!(enc, BodyEncoder::new(Length(300), true));
        // A HEAD request is told the length a GET gets.
        let (own, enc) = written(&file, true, Version::Http11, true);
        assert_eq!(own, format!("{OWN}Content-Length: 300\r\n\r\n"));
        assert_eq!(enc, BodyEncoder::new(NoBody, true));
        // 304 and 204 never carry one.
        file.status = 304;
        file.status_line = b"304 X".to_vec();
        let (own, _) = written(&file, false, Version::Http11, true);
        assert_eq!(own, format!("{OWN}\r\n"));
    }

    #[test]
    fn canned_error() {
        let mut out = Vec::new();
        write_error(HttpError::BadRequest("x"), DATE, &mut out);
        assert_eq!(
            out,
            b"HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\n\
              Content-Length: 12\r\nDate: Sun, 06 Nov 1994 08:49:37 GMT\r\n\
              Server: rwsgi-lite\r\nConnection: close\r\n\r\nBad Request\n"
        );
        out.clear();
        write_error(HttpError::HeaderFieldsTooLarge, DATE, &mut out);
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with("HTTP/1.1 431 Request Header Fields Too Large\r\n"));
        assert!(text.ends_with("\r\n\r\nRequest Header Fields Too Large\n"));
        assert!(text.contains("Content-Length: 32\r\n"));
    }

    #[test]
    fn every_error_is_consistent() {
        let all = [
            HttpError::BadRequest("x"),
            HttpError::RequestTimeout,
            HttpError::ContentTooLarge,
            HttpError::UriTooLong,
            HttpError::HeaderFieldsTooLarge,
            HttpError::NotImplemented,
            HttpError::VersionNotSupported,
        ];
        for e in all {
            let mut out = Vec::new();
            write_error(e, DATE, &mut out);
            let text = String::from_utf8(out).unwrap();
            let (head, body) = text.split_once("\r\n\r\n").unwrap();
            assert!(head.starts_with(&format!("HTTP/1.1 {} {}\r\n", e.status(), e.reason())));
            assert!(head.contains(&format!("\r\nContent-Length: {}\r\n", body.len())));
            assert!(head.ends_with("\r\nConnection: close"));
            assert_eq!(body, format!("{}\n", e.reason()));
        }
    }

    #[test]
    fn internal_error() {
        let mut out = Vec::new();
        write_internal_error(DATE, true, false, &mut out);
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with("HTTP/1.1 500 Internal Server Error\r\n"));
        assert!(!text.contains("Connection:"));
        assert!(text.contains("Content-Length: 22\r\n"));
        assert!(text.ends_with("\r\n\r\nInternal Server Error\n"));
        let mut out = Vec::new();
        write_internal_error(DATE, false, false, &mut out);
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains("\r\nConnection: close\r\n\r\n"));
    }
}
