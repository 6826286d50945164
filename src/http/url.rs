//! Request-target handling: origin-form and absolute-form split into path
//! and query, and percent-decoding of the path for PATH_INFO.

use memchr::memchr;

/// Splits a request-target into (path, query) without the `?`; a fragment
/// (`#...`) is dropped. Absolute-form (`http://host:port/p?q`) yields its
/// path and query (path `/` when absent). `*` yields path `*`.
pub fn split_target(target: &[u8]) -> (&[u8], &[u8]) {
    let target = match memchr(b'#', target) {
        Some(i) => target.get(..i).unwrap_or(&[]),
        None => target,
    };
    let (path, query) = match memchr(b'?', target) {
        Some(i) => (
            target.get(..i).unwrap_or(&[]),
            target.get(i + 1..).unwrap_or(&[]),
        ),
        None => (target, &[][..]),
    };
    match strip_scheme_authority(path) {
        Some([]) => (b"/", query),
        Some(rest) => (rest, query),
        None => (path, query),
    }
}

/// For absolute-form (`scheme://authority...`), what follows the authority.
fn strip_scheme_authority(t: &[u8]) -> Option<&[u8]> {
    // Origin-form starts with '/', so a path like "/a://b" is never mistaken.
    if !t.first()?.is_ascii_alphabetic() {
        return None;
    }
    let colon = memchr(b':', t)?;
    let scheme = t.get(..colon)?;
    if !scheme
        .iter()
        .all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'))
    {
        return None;
    }
    let after = t.get(colon + 1..)?.strip_prefix(b"//")?;
    let path_start = memchr(b'/', after).unwrap_or(after.len());
    after.get(path_start..)
}

/// Appends the percent-decoded `src` to `out`. Malformed escapes (`%zz`,
/// a trailing `%`) are copied literally, like gunicorn and the stdlib.
/// `+` is not special in paths.
pub fn percent_decode_into(src: &[u8], out: &mut Vec<u8>) {
    out.reserve(src.len());
    let mut rest = src;
    while let Some(i) = memchr(b'%', rest) {
        out.extend_from_slice(rest.get(..i).unwrap_or(&[]));
        let escape = rest.get(i + 1..i + 3).and_then(|h| match h {
            [hi, lo] => Some((hex(*hi)? << 4) | hex(*lo)?),
            _ => None,
        });
        match escape {
            Some(byte) => {
                out.push(byte);
                rest = rest.get(i + 3..).unwrap_or(&[]);
            }
            None => {
                out.push(b'%');
                rest = rest.get(i + 1..).unwrap_or(&[]);
            }
        }
    }
    out.extend_from_slice(rest);
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(t: &str) -> (&str, &str) {
        let (p, q) = split_target(t.as_bytes());
        (
            std::str::from_utf8(p).unwrap(),
            std::str::from_utf8(q).unwrap(),
        )
    }

    fn decode(s: &str) -> Vec<u8> {
        let mut out = b"keep:".to_vec();
        percent_decode_into(s.as_bytes(), &mut out);
        out.drain(..5);
        out
    }

    #[test]
    fn origin_form() {
        assert_eq!(split("/"), ("/", ""));
        assert_eq!(split("/a/b?x=1&y=2"), ("/a/b", "x=1&y=2"));
        assert_eq!(split("/a?"), ("/a", ""));
        assert_eq!(split("/a?b?c"), ("/a", "b?c"));
        assert_eq!(split("/a#frag"), ("/a", ""));
        assert_eq!(split("/a?q=1#frag?x"), ("/a", "q=1"));
        assert_eq!(split("///keeping_slashes"), ("///keeping_slashes", ""));
        assert_eq!(split("/a://b"), ("/a://b", ""));
    }

    #[test]
    fn absolute_form() {
        assert_eq!(split("http://example.com/foo?q=1"), ("/foo", "q=1"));
        assert_eq!(split("https://example.com"), ("/", ""));
        assert_eq!(split("http://example.com?q=1"), ("/", "q=1"));
        assert_eq!(split("http://[::1]:8080/foo"), ("/foo", ""));
        assert_eq!(split("http://u:p@h:1/a/b?c#d"), ("/a/b", "c"));
        assert_eq!(split("http://h#frag"), ("/", ""));
    }

    #[test]
    fn other_forms() {
        assert_eq!(split("*"), ("*", ""));
        assert_eq!(split("example.com:443"), ("example.com:443", ""));
        assert_eq!(split(""), ("", ""));
        assert_eq!(split("?"), ("", ""));
    }

    #[test]
    fn percent_decoding() {
        assert_eq!(decode("/a%20b"), b"/a b");
        assert_eq!(decode("%41%62%2f"), b"Ab/");
        assert_eq!(decode("%e2%82%AC"), "\u{20ac}".as_bytes());
        assert_eq!(decode("%00"), b"\0");
        assert_eq!(decode("a+b"), b"a+b");
        assert_eq!(decode("%zz%"), b"%zz%");
        assert_eq!(decode("%4"), b"%4");
        assert_eq!(decode("%%41"), b"%A");
        assert_eq!(decode("%4%41"), b"%4A");
        assert_eq!(decode(""), b"");
        assert_eq!(decode("no escapes"), b"no escapes");
    }

    #[test]
    fn percent_decoding_appends() {
        let mut out = b"x".to_vec();
        percent_decode_into(b"%41", &mut out);
        assert_eq!(out, b"xA");
    }
}
