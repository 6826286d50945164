//! Response bodies on the wire: the encoder that writing a head returns
//! (hyper's `Encoder`, h11's `WRITERS[framing]`).
//!
//! [`response::write_head`](super::response::write_head) chooses the framing
//! once; every body item, file and the end then pass through the
//! [`BodyEncoder`], which decides which bytes go out (chunk-size lines,
//! CRLFs, the last chunk, the cut at the Content-Length) and whether the
//! connection may serve another request afterwards. It writes into a
//! [`BodySink`], the connection's output queue, so when the bytes leave
//! stays the connection's business. No allocation, no dynamic dispatch:
//! this runs for every body item.

use std::fmt;

use super::chunked::write_chunk_size;
use super::response::ResponseFraming;

/// Where an encoder puts a response's bytes (the connection's output queue).
pub(crate) trait BodySink<C> {
    /// Appends the framing bytes `write` adds to the vector.
    fn put_framing(&mut self, write: impl FnOnce(&mut Vec<u8>));
    /// Appends the first `n` bytes of a body item: all of it when `n`
    /// covers it.
    fn put_item(&mut self, item: C, n: usize);
}

/// The framing of one response's body, from its head to its end.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct BodyEncoder {
    /// `Length(n)` counts the bytes still owed.
    framing: ResponseFraming,
    keep_alive: bool,
}

/// A body that disagrees with its Content-Length. Either way the
/// connection closes after the response: the app's idea of its body is
/// not to be trusted with the next request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum LengthMismatch {
    /// Items went past the length; the extra bytes were dropped.
    TooLong,
    /// The body ended this many bytes before the length.
    TooShort(u64),
}

impl fmt::Display for LengthMismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LengthMismatch::TooLong => f.write_str(
                "application returned more than its Content-Length; extra bytes dropped",
            ),
            LengthMismatch::TooShort(n) => write!(
                f,
                "application returned {n} bytes less than its Content-Length; closing"
            ),
        }
    }
}

/// How much of a file body goes out, and what follows its last byte.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct FileFraming {
    /// File bytes to send (0: none).
    pub len: u64,
    /// Framing bytes after them (chunked coding's CRLF).
    pub after: &'static [u8],
}

impl BodyEncoder {
    /// `keep_alive`: the request and the head allow another request on
    /// the connection. A body delimited by the close cannot.
    pub fn new(framing: ResponseFraming, keep_alive: bool) -> Self {
        BodyEncoder {
            framing,
            keep_alive: keep_alive && framing != ResponseFraming::UntilClose,
        }
    }

    /// The connection may serve another request after this response
    /// (so far: a body that turns out too long or short revokes it).
    #[inline]
    pub fn keep_alive(&self) -> bool {
        self.keep_alive
    }

    /// The Content-Length is all given: nothing more may follow.
    #[inline]
    pub(crate) fn is_complete(&self) -> bool {
        self.framing == ResponseFraming::Length(0)
    }

    /// Frames one body item. Past the Content-Length the rest is dropped
    /// and reported.
    #[inline]
    pub fn data<C: AsRef<[u8]>>(
        &mut self,
        item: C,
        out: &mut impl BodySink<C>,
    ) -> Result<(), LengthMismatch> {
        let len = item.as_ref().len();
        match &mut self.framing {
            ResponseFraming::NoBody => {}
            ResponseFraming::Length(remaining) => {
                if len as u64 > *remaining {
                    let keep = *remaining as usize;
                    *remaining = 0;
                    out.put_item(item, keep);
                    self.keep_alive = false;
                    return Err(LengthMismatch::TooLong);
                }
                *remaining -= len as u64;
                out.put_item(item, len);
            }
            // An empty chunk would read as the last one.
            ResponseFraming::Chunked if len == 0 => {}
            ResponseFraming::Chunked => {
                out.put_framing(|buf| write_chunk_size(len, buf));
                out.put_item(item, len);
                out.put_framing(|buf| buf.extend_from_slice(b"\r\n"));
            }
            ResponseFraming::UntilClose => out.put_item(item, len),
        }
        Ok(())
    }

    /// Frames a file body of `len` bytes: what goes before it is put into
    /// `out`, the rest is in the answer. A file longer than what the
    /// Content-Length still allows is cut to it; one that ends early is the
    /// end's business.
    #[inline]
    pub fn file<C>(&mut self, len: u64, out: &mut impl BodySink<C>) -> FileFraming {
        let (len, after): (u64, &'static [u8]) = match &mut self.framing {
            ResponseFraming::NoBody => (0, b""),
            ResponseFraming::Length(remaining) => {
                let n = len.min(*remaining);
                *remaining -= n;
                (n, b"")
            }
            ResponseFraming::Chunked if len == 0 => (0, b""),
            ResponseFraming::Chunked => {
                let n = len.min(usize::MAX as u64);
                out.put_framing(|buf| write_chunk_size(n as usize, buf));
                (n, b"\r\n")
            }
            ResponseFraming::UntilClose => (len, b""),
        };
        FileFraming { len, after }
    }

    /// Ends the body: the last chunk, or the report of a short one (the
    /// connection then closes, so the client sees it truncated).
    #[inline]
    pub fn end<C>(&mut self, out: &mut impl BodySink<C>) -> Result<(), LengthMismatch> {
        match self.framing {
            ResponseFraming::Chunked => {
                out.put_framing(|buf| buf.extend_from_slice(b"0\r\n\r\n"));
            }
            ResponseFraming::Length(remaining) if remaining > 0 => {
                self.keep_alive = false;
                return Err(LengthMismatch::TooShort(remaining));
            }
            _ => {}
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ResponseFraming::*;

    /// The wire bytes, as one vector.
    impl<'a> BodySink<&'a [u8]> for Vec<u8> {
        fn put_framing(&mut self, write: impl FnOnce(&mut Vec<u8>)) {
            write(self);
        }
        fn put_item(&mut self, item: &'a [u8], n: usize) {
            self.extend_from_slice(&item[..n.min(item.len())]);
        }
    }

    /// Encodes `items` and the end; the wire bytes, the end's verdict and
    /// whether the connection stays open.
    fn encode(
        framing: ResponseFraming,
        items: &[&[u8]],
    ) -> (Vec<u8>, Result<(), LengthMismatch>, bool) {
        let mut enc = BodyEncoder::new(framing, true);
        let mut out = Vec::new();
        for item in items {
            let _ = enc.data(*item, &mut out);
        }
        let end = enc.end(&mut out);
        (out, end, enc.keep_alive())
    }

    #[test]
    fn length_exact() {
        assert_eq!(
            encode(Length(5), &[b"he", b"", b"llo"]),
            (b"hello".to_vec(), Ok(()), true)
        );
        assert_eq!(encode(Length(0), &[]), (Vec::new(), Ok(()), true));
    }

    #[test]
    fn length_counts_down_to_complete() {
        let mut enc = BodyEncoder::new(Length(3), true);
        let mut out = Vec::new();
        assert!(!enc.is_complete());
        assert_eq!(enc.data(&b"ab"[..], &mut out), Ok(()));
        assert!(!enc.is_complete());
        assert_eq!(enc.data(&b"c"[..], &mut out), Ok(()));
        assert!(enc.is_complete());
        assert_eq!(out, b"abc");
    }

    #[test]
    fn length_short_closes() {
        assert_eq!(
            encode(Length(10), &[b"abc"]),
            (b"abc".to_vec(), Err(LengthMismatch::TooShort(7)), false)
        );
    }

    #[test]
    fn length_extra_is_dropped_and_closes() {
        let mut enc = BodyEncoder::new(Length(4), true);
        let mut out = Vec::new();
        assert_eq!(enc.data(&b"abc"[..], &mut out), Ok(()));
        assert!(enc.keep_alive());
        assert_eq!(
            enc.data(&b"defg"[..], &mut out),
            Err(LengthMismatch::TooLong)
        );
        assert_eq!(enc.data(&b"h"[..], &mut out), Err(LengthMismatch::TooLong));
        // An empty item past the end is no extra byte.
        assert_eq!(enc.data(&b""[..], &mut out), Ok(()));
        assert_eq!(enc.end(&mut out), Ok(()));
        assert_eq!(out, b"abcd");
        assert!(!enc.keep_alive());
    }

    #[test]
    fn chunked_skips_empty_items() {
        assert_eq!(
            encode(Chunked, &[b"hello", b"", b" world, 16 bytes"]),
            (
                b"5\r\nhello\r\n10\r\n world, 16 bytes\r\n0\r\n\r\n".to_vec(),
                Ok(()),
                true
            )
        );
        assert_eq!(
            encode(Chunked, &[b""]),
            (b"0\r\n\r\n".to_vec(), Ok(()), true)
        );
    }

    #[test]
    fn close_delimited_passes_everything_and_closes() {
        assert_eq!(
            encode(UntilClose, &[b"a", b"", b"bc"]),
            (b"abc".to_vec(), Ok(()), false)
        );
    }

    #[test]
    fn no_body_sends_nothing() {
        assert_eq!(
            encode(NoBody, &[b"ignored", b""]),
            (Vec::new(), Ok(()), true)
        );
    }

    #[test]
    fn keep_alive_is_only_narrowed() {
        for framing in [NoBody, Length(1), Chunked, UntilClose] {
            let enc = BodyEncoder::new(framing, false);
            assert!(!enc.keep_alive(), "{framing:?}");
        }
    }

    #[test]
    fn files() {
        let mut out: Vec<u8> = Vec::new();
        let mut file = |framing, len| {
            out.clear();
            let mut enc = BodyEncoder::new(framing, true);
            let f = enc.file(len, &mut out);
            (out.clone(), f.len, f.after, enc)
        };
        let (wire, len, after, enc) = file(Length(10), 4);
        assert_eq!((wire, len, after), (Vec::new(), 4, &b""[..]));
        assert_eq!(enc, BodyEncoder::new(Length(6), true));
        // A longer file is cut to the length, silently.
        let (_, len, _, enc) = file(Length(10), 25);
        assert_eq!(len, 10);
        assert!(enc.is_complete() && enc.keep_alive());
        let (wire, len, after, _) = file(Chunked, 300);
        assert_eq!((wire, len, after), (b"12c\r\n".to_vec(), 300, &b"\r\n"[..]));
        let (wire, len, _, _) = file(Chunked, 0);
        assert_eq!((wire, len), (Vec::new(), 0));
        assert_eq!(file(UntilClose, 7).1, 7);
        assert_eq!(file(NoBody, 7).1, 0);
    }
}
