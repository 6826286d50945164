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
pub(crate) fn is_field_value(b: u8) -> bool {
    CLASSES[b as usize] & FIELD_VALUE != 0
}

/// A byte allowed in a request-target: visible ASCII (0x21-0x7E).
#[inline]
pub(crate) fn is_target(b: u8) -> bool {
    CLASSES[b as usize] & TARGET != 0
}

/// An ASCII hex digit.
#[inline]
pub(crate) fn is_hexdig(b: u8) -> bool {
    CLASSES[b as usize] & HEXDIG != 0
}

// Scanning without unsafe or intrinsics. Bytes are examined 16 at a time
// with `any16`, which LLVM turns into SIMD (on x86-64: one unaligned load, a
// few compares, PMOVMSKB and a test), and `first16` finds the position in
// the one block that has a hit. The shorter tail goes through SWAR masks on
// u64 words (eight bytes at a time, exact per byte) and, for the last few
// bytes, the table. On targets where LLVM does not vectorise these, they
// are still correct, only slower.

const LO: u64 = 0x0101_0101_0101_0101;
const HI: u64 = 0x8080_8080_8080_8080;
const LOW7: u64 = 0x7f7f_7f7f_7f7f_7f7f;

/// Whether `f` holds for any byte of `block`. `f` must be branch-free
/// comparisons for this to vectorise.
#[inline(always)]
fn any16(block: &[u8; 16], f: impl Fn(u8) -> bool) -> bool {
    block.iter().fold(false, |any, &b| any | f(b))
}

/// Index of the first byte of `block` for which `f` holds, `block` having
/// one: 0xFF per such byte, read as one little-endian u128, the first is
/// the lowest set byte.
#[inline(always)]
fn first16(block: &[u8; 16], f: impl Fn(u8) -> bool) -> usize {
    let mut hits = [0u8; 16];
    for (h, &b) in hits.iter_mut().zip(block) {
        *h = if f(b) { 0xff } else { 0 };
    }
    (u128::from_le_bytes(hits).trailing_zeros() / 8) as usize
}

/// The 16-byte blocks of `s` (as arrays, so that their length is known).
#[inline(always)]
fn blocks16(s: &[u8]) -> impl Iterator<Item = &[u8; 16]> {
    s.chunks_exact(16)
        .filter_map(|b| <&[u8; 16]>::try_from(b).ok())
}

/// The u64 word (little-endian) at `s[i..i + 8]`, if there is one.
#[inline(always)]
fn word(s: &[u8], i: usize) -> Option<u64> {
    let w = s.get(i..i.checked_add(8)?)?;
    Some(u64::from_le_bytes(w.try_into().ok()?))
}

/// The high bit of each byte of `x` whose low seven bits are in
/// `lo..=0x7E`, exactly: + (0x80 - lo) sets the high bit from `lo` up and
/// + 0x01 only for 0x7F, and neither sum carries into the next byte.
#[inline(always)]
const fn low7_from(x: u64, lo: u8) -> u64 {
    let low = x & LOW7;
    (low.wrapping_add(LO * (0x80 - lo as u64)) ^ low.wrapping_add(LO)) & HI
}

/// SWAR: the high bit of each byte of `x` that is a control (0x00-0x1F, HTAB
/// included) or DEL. Bytes with the high bit set (obs-text) are not flagged.
#[inline(always)]
const fn controls(x: u64) -> u64 {
    !(low7_from(x, 0x20) | x) & HI
}

/// SWAR: the high bit of each byte of `x` outside 0x21-0x7E.
#[inline(always)]
const fn non_target(x: u64) -> u64 {
    (!low7_from(x, 0x21) | x) & HI
}

/// A byte that ends a field value: outside [`is_field_value`].
#[inline(always)]
fn ends_value(b: u8) -> bool {
    (b < 0x20) & (b != b'\t') | (b == 0x7f)
}

/// The first byte of `s[i..]` that ends a field value, looking at words
/// (then bytes) until one is found.
#[inline(always)]
fn value_stop_from(s: &[u8], mut i: usize) -> usize {
    while let Some(x) = word(s, i) {
        let mut m = controls(x);
        // Each flagged byte is a control or DEL: the first that is not HTAB
        // ends the value.
        while m != 0 {
            let k = i + (m.trailing_zeros() / 8) as usize;
            if s.get(k) != Some(&b'\t') {
                return k;
            }
            m &= m - 1;
        }
        i += 8;
    }
    let tail = s.get(i..).unwrap_or(&[]);
    i + tail
        .iter()
        .position(|&b| !is_field_value(b))
        .unwrap_or(tail.len())
}

/// Index of the first byte of `s[from..]` that may not appear in a field
/// value (CR, LF, NUL, other controls but HTAB, DEL), or `s.len()` if there
/// is none (or `from` is past the end).
#[inline(always)]
pub(crate) fn field_value_end(s: &[u8], from: usize) -> usize {
    let Some(rest) = s.get(from..) else {
        return s.len();
    };
    let mut i = 0;
    for block in blocks16(rest) {
        if any16(block, ends_value) {
            return from + i + first16(block, ends_value);
        }
        i += 16;
    }
    from + value_stop_from(rest, i)
}

/// Index of the first byte of `s[from..]` that may not appear in a
/// request-target (anything outside 0x21-0x7E), or `s.len()` if there is
/// none.
#[inline(always)]
pub(crate) fn target_end(s: &[u8], from: usize) -> usize {
    let Some(rest) = s.get(from..) else {
        return s.len();
    };
    let mut i = 0;
    for block in blocks16(rest) {
        if any16(block, |b| !(0x21..=0x7e).contains(&b)) {
            return from + i + first16(block, |b| !(0x21..=0x7e).contains(&b));
        }
        i += 16;
    }
    while let Some(x) = word(rest, i) {
        let m = non_target(x);
        if m != 0 {
            return from + i + (m.trailing_zeros() / 8) as usize;
        }
        i += 8;
    }
    let tail = rest.get(i..).unwrap_or(&[]);
    from + i
        + tail
            .iter()
            .position(|&b| !is_target(b))
            .unwrap_or(tail.len())
}

/// Index of the first byte of `s[from..]` that is not a `tchar`, or
/// `s.len()` if there is none.
#[inline(always)]
pub(crate) fn token_end(s: &[u8], from: usize) -> usize {
    let Some(rest) = s.get(from..) else {
        return s.len();
    };
    // Tokens are short (methods, field names): the table, unrolled eight
    // bytes at a time.
    let words = rest.chunks_exact(8);
    let tail = words.remainder();
    let mut i = from;
    for w in words {
        let Ok(w) = <&[u8; 8]>::try_from(w) else {
            break;
        };
        if let Some(k) = w.iter().position(|&b| !is_tchar(b)) {
            return i + k;
        }
        i += 8;
    }
    i + tail
        .iter()
        .position(|&b| !is_tchar(b))
        .unwrap_or(tail.len())
}

/// Whether `s` is a non-empty token.
#[inline]
pub(crate) fn is_token(s: &[u8]) -> bool {
    !s.is_empty() && s.iter().all(|&b| is_tchar(b))
}

/// SP or HTAB (RFC 9110 OWS/BWS).
#[inline]
pub(crate) fn is_ows(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

/// `s` without leading and trailing SP/HTAB: the one trim for field values
/// and list items, whoever reads them.
#[inline]
pub(crate) fn trim_ows(s: &[u8]) -> &[u8] {
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

    /// The first index at or after `from` whose byte is not in the class,
    /// byte by byte: what the scanners must agree with.
    fn reference(s: &[u8], from: usize, class: fn(u8) -> bool) -> usize {
        (from..s.len()).find(|&i| !class(s[i])).unwrap_or(s.len())
    }

    fn check_scanners(s: &[u8], from: usize) {
        assert_eq!(
            field_value_end(s, from),
            reference(s, from, is_field_value),
            "value {s:?} from {from}"
        );
        assert_eq!(
            target_end(s, from),
            reference(s, from, is_target),
            "target {s:?} from {from}"
        );
        assert_eq!(
            token_end(s, from),
            reference(s, from, is_tchar),
            "token {s:?} from {from}"
        );
    }

    #[test]
    fn scanners_every_byte_at_every_position() {
        // Lengths around the 8-byte words and 16-byte blocks; each byte
        // value at each position of a run that is in every class.
        for len in [1, 2, 7, 8, 9, 15, 16, 17, 23, 24, 25, 31, 32, 33, 40] {
            for p in 0..len {
                for b in 0..=255u8 {
                    let mut s = vec![b'a'; len];
                    s[p] = b;
                    check_scanners(&s, 0);
                    check_scanners(&s, p.min(3));
                }
            }
        }
    }

    #[test]
    fn scanners_fills_and_pairs() {
        let odd: &[u8] = &[
            0x00, 0x01, b'\t', b'\n', b'\r', 0x1f, b' ', b'!', b':', b'"', b'(', 0x7e, 0x7f, 0x80,
            0xc3, 0xff, b'_', b'-', b'Z',
        ];
        for len in 0..=40 {
            for fill in [b'a', b'-', b'\t', b' ', 0x80, 0xff, b'~'] {
                let s = vec![fill; len];
                for from in 0..=len.min(9) {
                    check_scanners(&s, from);
                }
                for p in 0..len {
                    for &o in odd {
                        let mut s = s.clone();
                        s[p] = o;
                        check_scanners(&s, 0);
                        check_scanners(&s, 1);
                        // A second odd byte after the first: HTAB before a
                        // CR within one word, or the other way round.
                        for q in p + 1..len.min(p + 10) {
                            for o2 in [b'\r', b'\t', 0x7f] {
                                let mut s = s.clone();
                                s[q] = o2;
                                check_scanners(&s, 0);
                            }
                        }
                    }
                }
            }
        }
        // Past the end.
        assert_eq!(field_value_end(b"ab", 3), 2);
        assert_eq!(target_end(b"ab", 3), 2);
        assert_eq!(token_end(b"ab", 3), 2);
    }

    #[test]
    fn scanners_random() {
        let alphabet = b"\x00\x01\t\n\r\x1f !:\"(/?~\x7f\x80\xc3\xffaZ09-_.";
        let mut x = 0x2545_f491_4f6c_dd1du64;
        for _ in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let len = (x % 70) as usize;
            let s: Vec<u8> = (0..len)
                .map(|i| {
                    let r = x.rotate_left(i as u32 * 7);
                    // Mostly ordinary bytes, so that the odd ones are sparse.
                    if r % 8 == 0 {
                        alphabet[(r >> 8) as usize % alphabet.len()]
                    } else {
                        b'a' + (r >> 16) as u8 % 26
                    }
                })
                .collect();
            check_scanners(&s, (x >> 40) as usize % (len + 1));
        }
    }

    #[test]
    fn trim() {
        assert_eq!(trim_ows(b" \t a b \t"), b"a b");
        assert_eq!(trim_ows(b" \t "), b"");
        assert_eq!(trim_ows(b""), b"");
        assert_eq!(trim_ows(b"x"), b"x");
    }
}
