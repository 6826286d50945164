//! Protocol errors, each mapped to the status a client is answered with.

/// Why a request was refused. Every variant maps to one status code; the
/// connection is always closed after the canned response is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HttpError {
    /// 400, with a short fixed reason for the log (never sent to the client
    /// beyond the status line).
    BadRequest(&'static str),
    /// 408: the head (or a stalled body) did not arrive in time.
    RequestTimeout,
    /// 413: body longer than `--limit-request-body`.
    ContentTooLarge,
    /// 414: request line longer than `--limit-request-line`.
    UriTooLong,
    /// 431: too many header fields, or one longer than the field limit.
    HeaderFieldsTooLarge,
    /// 501: a transfer-coding we do not implement.
    NotImplemented,
    /// 505: a well-formed HTTP version other than 1.0 and 1.1.
    VersionNotSupported,
}

impl HttpError {
    pub fn status(&self) -> u16 {
        match self {
            HttpError::BadRequest(_) => 400,
            HttpError::RequestTimeout => 408,
            HttpError::ContentTooLarge => 413,
            HttpError::UriTooLong => 414,
            HttpError::HeaderFieldsTooLarge => 431,
            HttpError::NotImplemented => 501,
            HttpError::VersionNotSupported => 505,
        }
    }
    /// The reason phrase for the status line ("Bad Request").
    pub fn reason(&self) -> &'static str {
        // RFC 9110 section 15 phrases (413 was renamed from "Payload Too
        // Large" there).
        match self {
            HttpError::BadRequest(_) => "Bad Request",
            HttpError::RequestTimeout => "Request Timeout",
            HttpError::ContentTooLarge => "Content Too Large",
            HttpError::UriTooLong => "URI Too Long",
            HttpError::HeaderFieldsTooLarge => "Request Header Fields Too Large",
            HttpError::NotImplemented => "Not Implemented",
            HttpError::VersionNotSupported => "HTTP Version Not Supported",
        }
    }
}

impl std::fmt::Display for HttpError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.status(), self.reason())?;
        if let HttpError::BadRequest(detail) = self {
            write!(f, ": {detail}")?;
        }
        Ok(())
    }
}

impl std::error::Error for HttpError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_and_reasons() {
        let all = [
            (HttpError::BadRequest("x"), 400, "Bad Request"),
            (HttpError::RequestTimeout, 408, "Request Timeout"),
            (HttpError::ContentTooLarge, 413, "Content Too Large"),
            (HttpError::UriTooLong, 414, "URI Too Long"),
            (
                HttpError::HeaderFieldsTooLarge,
                431,
                "Request Header Fields Too Large",
            ),
            (HttpError::NotImplemented, 501, "Not Implemented"),
            (
                HttpError::VersionNotSupported,
                505,
                "HTTP Version Not Supported",
            ),
        ];
        for (e, code, reason) in all {
            assert_eq!(e.status(), code);
            assert_eq!(e.reason(), reason);
        }
    }

    #[test]
    fn display() {
        assert_eq!(
            HttpError::BadRequest("bare LF").to_string(),
            "400 Bad Request: bare LF"
        );
        assert_eq!(HttpError::UriTooLong.to_string(), "414 URI Too Long");
    }
}
