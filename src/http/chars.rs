//! Byte-class tables for the parser: RFC 9110 tchar (tokens), field-vchar
//! (values) and the bytes allowed in a request-target.

// One 256-entry table with a bit per class: a class test is one load and one
// AND, with no bounds check (a u8 index into [_; 256] cannot be out of range).
const TCHAR: u8 = 1;
const FIELD_VALUE: u8 = 2;
const TARGET: u8 = 4;
const HEXDIG: u8 = 8;

const fn build() -> [u8; 256] {
    let mut t = [0u8; 256];
    let mut i = 0usize;
    while i < 256 {
        let b = i as u8;
        let mut c = 0u8;
        let tchar = b.is_ascii_alphanumeric()
            || matches!(
                b,
                b'!' | b'#'
                    | b'$'
                    | b'%'
                    | b'&'
                    | b'\''
                    | b'*'
                    | b'+'
                    | b'-'
                    | b'.'
                    | b'^'
                    | b'_'
                    | b'`'
                    | b'|'
                    | b'~'
            );
        if tchar {
            c |= TCHAR;
        }
        // field-vchar / obs-text, plus the SP and HTAB that may sit between
        // them; CR, LF, NUL, other controls and DEL are excluded.
        if b == b'\t' || b == b' ' || (b >= 0x21 && b != 0x7f) {
            c |= FIELD_VALUE;
        }
        // Visible ASCII only: SP ends the target, and bytes >= 0x80 are
        // refused (they are not URI characters and gunicorn-style latin-1
        // round-tripping of them is ambiguous).
        if b >= 0x21 && b <= 0x7e {
            c |= TARGET;
        }
        if b.is_ascii_hexdigit() {
            c |= HEXDIG;
        }
        t[i] = c;
        i += 1;
    }
    t
}

static CLASSES: [u8; 256] = build();

/// RFC 9110 `tchar`: the bytes of a token (method, field name, coding).
#[inline]
pub fn is_tchar(b: u8) -> bool {
    CLASSES[b as usize] & TCHAR != 0
}

/// A byte allowed inside a field value: VCHAR, obs-text (0x80-0xFF), SP, HTAB.
#[inline]
pub fn is_field_value(b: u8) -> bool {
    CLASSES[b as usize] & FIELD_VALUE != 0
}

/// A byte allowed in a request-target: visible ASCII (0x21-0x7E).
#[inline]
pub fn is_target(b: u8) -> bool {
    CLASSES[b as usize] & TARGET != 0
}

/// An ASCII hex digit.
#[inline]
pub fn is_hexdig(b: u8) -> bool {
    CLASSES[b as usize] & HEXDIG != 0
}

/// Whether `s` is a non-empty token.
#[inline]
pub fn is_token(s: &[u8]) -> bool {
    !s.is_empty() && s.iter().all(|&b| is_tchar(b))
}

/// SP or HTAB (RFC 9110 OWS/BWS).
#[inline]
pub fn is_ows(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

/// `s` without leading and trailing SP/HTAB.
pub fn trim_ows(s: &[u8]) -> &[u8] {
    let start = s.iter().position(|&b| !is_ows(b)).unwrap_or(s.len());
    let end = s.iter().rposition(|&b| !is_ows(b)).map_or(start, |i| i + 1);
    s.get(start..end).unwrap_or(&[])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tchar_matches_rfc9110() {
        let specials = b"!#$%&'*+-.^_`|~";
        for b in 0..=255u8 {
            let expect = b.is_ascii_alphanumeric() || specials.contains(&b);
            assert_eq!(is_tchar(b), expect, "byte {b:#04x}");
        }
    }

    #[test]
    fn field_value_bytes() {
        for b in 0..=255u8 {
            let expect = b == b'\t' || b == b' ' || (0x21..=0x7e).contains(&b) || b >= 0x80;
            assert_eq!(is_field_value(b), expect, "byte {b:#04x}");
        }
    }

    #[test]
    fn target_bytes() {
        for b in 0..=255u8 {
            assert_eq!(is_target(b), (0x21..=0x7e).contains(&b), "byte {b:#04x}");
        }
    }

    #[test]
    fn hexdig_and_token() {
        assert!(is_hexdig(b'a') && is_hexdig(b'F') && is_hexdig(b'0'));
        assert!(!is_hexdig(b'g') && !is_hexdig(b'x'));
        assert!(is_token(b"GET") && is_token(b"-x.y"));
        assert!(!is_token(b"") && !is_token(b"a b") && !is_token(b"a:"));
    }

    #[test]
    fn trim() {
        assert_eq!(trim_ows(b" \t a b \t"), b"a b");
        assert_eq!(trim_ows(b" \t "), b"");
        assert_eq!(trim_ows(b""), b"");
        assert_eq!(trim_ows(b"x"), b"x");
    }
}
