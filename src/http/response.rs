//! Response heads: framing decisions, status lines and canned error replies.

use super::parse::Version;
use super::HttpError;

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
pub fn write_internal_error(date: &[u8], keep_alive: bool, head_request: bool, out: &mut Vec<u8>) {
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
    out.extend_from_slice(b"\r\nServer: rwsgi-lite\r\n");
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
            HttpError::PayloadTooLarge,
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
