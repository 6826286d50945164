//! Resumable chunked transfer-coding decoder (RFC 9112 section 7.1) and the
//! chunk-size encoder used for responses.

use super::chars::{is_field_value, is_hexdig, is_tchar};
use super::HttpError;

/// Longest chunk-size line (size, extensions), without its CRLF.
pub const MAX_SIZE_LINE: usize = 4096;
/// Most bytes in the trailer section, including every CRLF.
pub const MAX_TRAILER: usize = 8192;

/// Fields that change framing, routing or authentication and so must not
/// arrive after the body (RFC 9110 section 6.5.1; gunicorn's list).
const FORBIDDEN_TRAILERS: [&[u8]; 6] = [
    b"host",
    b"content-length",
    b"transfer-encoding",
    b"trailer",
    b"authorization",
    b"te",
];
const ALL_FORBIDDEN: u8 = (1 << FORBIDDEN_TRAILERS.len()) - 1;

/// Where the decoder is. Each state has its own function in
/// `ChunkedDecoder`, which reads one byte and returns the next state; those
/// of the size line and of the trailer section first count the byte
/// against that part's bound.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Hex digits of a chunk-size (at least one required).
    Size,
    // Chunk extensions (RFC 9112 7.1.1), validated and discarded:
    // `*( BWS ";" BWS name [ BWS "=" BWS ( token / quoted-string ) ] )`.
    /// Whitespace after the size or a value: only a `;` may follow.
    SemiBws,
    /// After a `;`: whitespace, then a name.
    ExtStart,
    /// A name (token).
    ExtName,
    /// Whitespace after a name: a `=` or a `;` must follow.
    ExtNameBws,
    /// After a `=`: whitespace, then a value.
    ExtValueStart,
    /// A token value.
    ExtToken,
    /// Inside a quoted-string value.
    ExtQuoted,
    /// After a backslash in a quoted-string.
    ExtQuotedPair,
    /// After the closing quote.
    ExtQuotedEnd,
    SizeLf,
    Data,
    DataCr,
    DataLf,
    /// Start of a trailer field line or of the final empty line.
    TrailerStart,
    TrailerName,
    TrailerValue,
    TrailerLf,
    FinalLf,
    Done,
}

fn bad(detail: &'static str) -> HttpError {
    HttpError::BadRequest(detail)
}

/// Result of feeding bytes to a body decoder (this one, or
/// `body::BodyDecoder`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Decoded {
    /// How many input bytes were consumed.
    pub consumed: usize,
    /// The body is complete (chunked: the last chunk and the trailer
    /// section have been read); the bytes after `consumed` belong to the
    /// next request.
    pub done: bool,
}

#[derive(Debug)]
pub struct ChunkedDecoder {
    state: State,
    /// The chunk-size being read, then the data bytes still to come.
    size: u64,
    /// Significant hex digits read (leading zeros do not count).
    digits: u8,
    any_digit: bool,
    /// Bytes of the current size line so far.
    line_len: usize,
    /// Bytes of the trailer section so far.
    trailer_len: usize,
    name_len: usize,
    /// Bit k set while the trailer name read so far is a prefix of
    /// FORBIDDEN_TRAILERS[k] (case-insensitive): matched without buffering.
    forbidden: u8,
}

impl Default for ChunkedDecoder {
    fn default() -> Self {
        Self::new()
    }
}

impl ChunkedDecoder {
    pub fn new() -> Self {
        ChunkedDecoder {
            state: State::Size,
            size: 0,
            digits: 0,
            any_digit: false,
            line_len: 0,
            trailer_len: 0,
            name_len: 0,
            forbidden: 0,
        }
    }

    /// Whether the last chunk and the trailer section have been read.
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Decodes as much of `input` as it can, appending chunk data to `out`.
    /// Input may be split anywhere, including inside a chunk-size line or a
    /// CRLF. Chunk extensions and trailer fields are validated, bounded in
    /// size (400 past the bound) and discarded.
    /// After an error the decoder must not be used again.
    pub fn decode(&mut self, input: &[u8], out: &mut Vec<u8>) -> Result<Decoded, HttpError> {
        let mut i = 0usize;
        while i < input.len() && self.state != State::Done {
            if self.state == State::Data {
                i += self.data(input.get(i..).unwrap_or(&[]), out);
                continue;
            }
            let Some(&b) = input.get(i) else { break };
            self.step(b)?;
            i += 1;
        }
        Ok(Decoded {
            consumed: i,
            done: self.state == State::Done,
        })
    }

    /// Chunk data, copied in bulk: as much of `rest` as the chunk still
    /// has. Returns how many bytes that was.
    #[inline]
    fn data(&mut self, rest: &[u8], out: &mut Vec<u8>) -> usize {
        let n = usize::try_from(self.size).map_or(rest.len(), |s| s.min(rest.len()));
        out.extend_from_slice(rest.get(..n).unwrap_or(&[]));
        self.size -= n as u64;
        if self.size == 0 {
            self.state = State::DataCr;
        }
        n
    }

    /// One byte of anything but chunk data, read by the function of the
    /// current state, which returns the next state.
    #[inline]
    fn step(&mut self, b: u8) -> Result<(), HttpError> {
        self.state = match self.state {
            State::Size => self.size(b)?,
            State::SemiBws => self.semi_bws(b)?,
            State::ExtStart => self.ext_start(b)?,
            State::ExtName => self.ext_name(b)?,
            State::ExtNameBws => self.ext_name_bws(b)?,
            State::ExtValueStart => self.ext_value_start(b)?,
            State::ExtToken => self.ext_token(b)?,
            State::ExtQuoted => self.ext_quoted(b)?,
            State::ExtQuotedPair => self.ext_quoted_pair(b)?,
            State::ExtQuotedEnd => self.ext_quoted_end(b)?,
            State::SizeLf => self.size_lf(b)?,
            // decode() copies data in bulk and never gets here with Data;
            // a zero-size Data would mean a logic error, reported not panicked.
            State::Data => return Err(bad("chunk decoder state error")),
            State::DataCr => self.data_cr(b)?,
            State::DataLf => self.data_lf(b)?,
            State::TrailerStart => self.trailer_start(b)?,
            State::TrailerName => self.trailer_name(b)?,
            State::TrailerValue => self.trailer_value(b)?,
            State::TrailerLf => self.trailer_lf(b)?,
            State::FinalLf => self.final_lf(b)?,
            State::Done => State::Done,
        };
        Ok(())
    }

    /// Counts a byte of the size line (the CR aside) against its bound.
    #[inline]
    fn line_byte(&mut self, b: u8) -> Result<(), HttpError> {
        if b != b'\r' {
            self.line_len += 1;
            if self.line_len > MAX_SIZE_LINE {
                return Err(bad("chunk-size line too long"));
            }
        }
        Ok(())
    }

    /// Counts a byte of the trailer section against its bound.
    #[inline]
    fn trailer_byte(&mut self) -> Result<(), HttpError> {
        self.trailer_len += 1;
        if self.trailer_len > MAX_TRAILER {
            return Err(bad("trailer section too long"));
        }
        Ok(())
    }

    /// Hex digits (leading zeros are not significant), then what may
    /// follow the size.
    #[inline]
    fn size(&mut self, b: u8) -> Result<State, HttpError> {
        self.line_byte(b)?;
        if is_hexdig(b) {
            self.any_digit = true;
            if self.digits > 0 || b != b'0' {
                self.digits += 1;
                // 16 significant hex digits always fit a u64.
                if self.digits > 16 {
                    return Err(bad("chunk-size too large"));
                }
                self.size = (self.size << 4) | u64::from(hex_val(b));
            }
            return Ok(State::Size);
        }
        if !self.any_digit {
            return Err(bad("invalid chunk-size"));
        }
        after_item(b).ok_or(bad("invalid chunk-size"))
    }

    #[inline]
    fn semi_bws(&mut self, b: u8) -> Result<State, HttpError> {
        self.line_byte(b)?;
        match b {
            b' ' | b'\t' => Ok(State::SemiBws),
            b';' => Ok(State::ExtStart),
            _ => Err(bad("whitespace not followed by ';' in chunk-size line")),
        }
    }

    #[inline]
    fn ext_start(&mut self, b: u8) -> Result<State, HttpError> {
        self.line_byte(b)?;
        match b {
            b' ' | b'\t' => Ok(State::ExtStart),
            _ if is_tchar(b) => Ok(State::ExtName),
            _ => Err(bad("chunk extension without a name")),
        }
    }

    #[inline]
    fn ext_name(&mut self, b: u8) -> Result<State, HttpError> {
        self.line_byte(b)?;
        match b {
            _ if is_tchar(b) => Ok(State::ExtName),
            b'=' => Ok(State::ExtValueStart),
            b' ' | b'\t' => Ok(State::ExtNameBws),
            _ => after_item(b).ok_or(bad("invalid chunk extension name")),
        }
    }

    #[inline]
    fn ext_name_bws(&mut self, b: u8) -> Result<State, HttpError> {
        self.line_byte(b)?;
        match b {
            b' ' | b'\t' => Ok(State::ExtNameBws),
            b'=' => Ok(State::ExtValueStart),
            b';' => Ok(State::ExtStart),
            _ => Err(bad("whitespace after chunk extension name")),
        }
    }

    #[inline]
    fn ext_value_start(&mut self, b: u8) -> Result<State, HttpError> {
        self.line_byte(b)?;
        match b {
            b' ' | b'\t' => Ok(State::ExtValueStart),
            b'"' => Ok(State::ExtQuoted),
            _ if is_tchar(b) => Ok(State::ExtToken),
            _ => Err(bad("invalid chunk extension value")),
        }
    }

    #[inline]
    fn ext_token(&mut self, b: u8) -> Result<State, HttpError> {
        self.line_byte(b)?;
        if is_tchar(b) {
            return Ok(State::ExtToken);
        }
        after_item(b).ok_or(bad("invalid chunk extension value"))
    }

    /// qdtext: field-value bytes (HTAB, SP, VCHAR, obs-text) but the quote
    /// and the backslash. A CR here is an unterminated string.
    #[inline]
    fn ext_quoted(&mut self, b: u8) -> Result<State, HttpError> {
        self.line_byte(b)?;
        match b {
            b'"' => Ok(State::ExtQuotedEnd),
            b'\\' => Ok(State::ExtQuotedPair),
            _ if is_field_value(b) => Ok(State::ExtQuoted),
            _ => Err(bad("invalid byte in quoted chunk extension")),
        }
    }

    #[inline]
    fn ext_quoted_pair(&mut self, b: u8) -> Result<State, HttpError> {
        self.line_byte(b)?;
        if is_field_value(b) {
            return Ok(State::ExtQuoted);
        }
        Err(bad("invalid quoted-pair in chunk extension"))
    }

    #[inline]
    fn ext_quoted_end(&mut self, b: u8) -> Result<State, HttpError> {
        self.line_byte(b)?;
        after_item(b).ok_or(bad("invalid byte after quoted chunk extension"))
    }

    /// The end of a size line: a chunk's data follows, or after the last
    /// chunk (size 0) the trailer section.
    #[inline]
    fn size_lf(&mut self, b: u8) -> Result<State, HttpError> {
        if b != b'\n' {
            return Err(bad("chunk-size line without CRLF"));
        }
        self.line_len = 0;
        Ok(if self.size == 0 {
            State::TrailerStart
        } else {
            State::Data
        })
    }

    #[inline]
    fn data_cr(&mut self, b: u8) -> Result<State, HttpError> {
        if b != b'\r' {
            return Err(bad("chunk data not followed by CRLF"));
        }
        Ok(State::DataLf)
    }

    /// The end of a chunk: the next size line begins.
    #[inline]
    fn data_lf(&mut self, b: u8) -> Result<State, HttpError> {
        if b != b'\n' {
            return Err(bad("chunk data not followed by CRLF"));
        }
        self.size = 0;
        self.digits = 0;
        self.any_digit = false;
        Ok(State::Size)
    }

    #[inline]
    fn trailer_start(&mut self, b: u8) -> Result<State, HttpError> {
        self.trailer_byte()?;
        match b {
            b'\r' => Ok(State::FinalLf),
            b' ' | b'\t' => Err(bad("obsolete line folding in trailer")),
            _ if is_tchar(b) => {
                self.name_len = 0;
                self.forbidden = ALL_FORBIDDEN;
                self.name_byte(b);
                Ok(State::TrailerName)
            }
            _ => Err(bad("invalid trailer field")),
        }
    }

    /// A trailer field name, refused at its colon if it is forbidden.
    #[inline]
    fn trailer_name(&mut self, b: u8) -> Result<State, HttpError> {
        self.trailer_byte()?;
        if is_tchar(b) {
            self.name_byte(b);
            return Ok(State::TrailerName);
        }
        if b != b':' {
            return Err(bad("invalid trailer field name"));
        }
        let len = self.name_len;
        let hit = FORBIDDEN_TRAILERS
            .iter()
            .enumerate()
            .any(|(k, n)| self.forbidden & (1 << k) != 0 && n.len() == len);
        if hit {
            return Err(bad("forbidden trailer field"));
        }
        Ok(State::TrailerValue)
    }

    #[inline]
    fn trailer_value(&mut self, b: u8) -> Result<State, HttpError> {
        self.trailer_byte()?;
        match b {
            b'\r' => Ok(State::TrailerLf),
            _ if is_field_value(b) => Ok(State::TrailerValue),
            _ => Err(bad("invalid byte in trailer value")),
        }
    }

    #[inline]
    fn trailer_lf(&mut self, b: u8) -> Result<State, HttpError> {
        self.trailer_byte()?;
        if b != b'\n' {
            return Err(bad("bare CR in trailer"));
        }
        Ok(State::TrailerStart)
    }

    #[inline]
    fn final_lf(&mut self, b: u8) -> Result<State, HttpError> {
        self.trailer_byte()?;
        if b != b'\n' {
            return Err(bad("bare CR after last chunk"));
        }
        Ok(State::Done)
    }

    fn name_byte(&mut self, b: u8) {
        let lower = b.to_ascii_lowercase();
        for (k, name) in FORBIDDEN_TRAILERS.iter().enumerate() {
            if name.get(self.name_len) != Some(&lower) {
                self.forbidden &= !(1 << k);
            }
        }
        self.name_len = self.name_len.saturating_add(1);
    }
}

/// What may follow the size, an extension name or a value: the end of the
/// line, the next extension, or whitespace before it. None for anything
/// else.
#[inline]
fn after_item(b: u8) -> Option<State> {
    match b {
        b'\r' => Some(State::SizeLf),
        b';' => Some(State::ExtStart),
        b' ' | b'\t' => Some(State::SemiBws),
        _ => None,
    }
}

fn hex_val(b: u8) -> u8 {
    match b {
        b'0'..=b'9' => b - b'0',
        b'a'..=b'f' => b - b'a' + 10,
        b'A'..=b'F' => b - b'A' + 10,
        _ => 0,
    }
}

/// Appends `"{len:x}\r\n"`.
pub fn write_chunk_size(len: usize, out: &mut Vec<u8>) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut tmp = [0u8; 16];
    let mut start = tmp.len();
    let mut n = len as u64;
    loop {
        start -= 1;
        if let Some(slot) = tmp.get_mut(start) {
            *slot = HEX[(n & 0xf) as usize];
        }
        n >>= 4;
        if n == 0 || start == 0 {
            break;
        }
    }
    out.extend_from_slice(tmp.get(start..).unwrap_or(&[]));
    out.extend_from_slice(b"\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq, Eq)]
    enum Out {
        Err(HttpError),
        /// Body so far, bytes consumed, done.
        Ok(Vec<u8>, usize, bool),
    }

    /// Feeds `input` in pieces ending at `cuts` (then the rest).
    fn run(input: &[u8], cuts: &[usize]) -> Out {
        let mut d = ChunkedDecoder::new();
        let mut body = Vec::new();
        let mut consumed = 0;
        let mut prev = 0;
        for &c in cuts.iter().chain(std::iter::once(&input.len())) {
            let c = c.clamp(prev, input.len());
            match d.decode(&input[prev..c], &mut body) {
                Err(e) => return Out::Err(e),
                Ok(r) => {
                    consumed += r.consumed;
                    if r.done {
                        return Out::Ok(body, consumed, true);
                    }
                    // Until done, every byte offered is taken.
                    assert_eq!(r.consumed, c - prev, "not done but left bytes");
                }
            }
            prev = c;
        }
        Out::Ok(body, consumed, false)
    }

    /// Whole, byte by byte, and split in two at every point: all the same.
    fn check(input: &[u8]) -> Out {
        let whole = run(input, &[]);
        let bytewise: Vec<usize> = (1..input.len()).collect();
        assert_eq!(run(input, &bytewise), whole, "byte by byte: {input:?}");
        for cut in 0..=input.len() {
            assert_eq!(run(input, &[cut]), whole, "split at {cut}: {input:?}");
        }
        whole
    }

    fn body(input: &[u8]) -> Vec<u8> {
        match check(input) {
            Out::Ok(b, consumed, true) => {
                assert_eq!(consumed, input.len(), "{input:?}");
                b
            }
            o => panic!("expected a complete body for {input:?}, got {o:?}"),
        }
    }

    fn is_400(input: &[u8]) {
        assert!(
            matches!(check(input), Out::Err(HttpError::BadRequest(_))),
            "{input:?} should be 400"
        );
    }

    #[test]
    fn simple() {
        assert_eq!(
            body(b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"),
            b"hello world"
        );
        assert_eq!(body(b"0\r\n\r\n"), b"");
        assert_eq!(body(b"000\r\n\r\n"), b"");
        assert_eq!(body(b"A\r\n0123456789\r\n0\r\n\r\n"), b"0123456789");
        assert_eq!(body(b"a\r\n0123456789\r\n0\r\n\r\n"), b"0123456789");
        assert_eq!(body(b"0005\r\nhello\r\n0\r\n\r\n"), b"hello");
        assert_eq!(body(b"1\r\n\r\r\n1\r\n\n\r\n0\r\n\r\n"), b"\r\n");
    }

    #[test]
    fn next_request_is_left() {
        let input = b"3\r\nabc\r\n0\r\n\r\nGET / HTTP/1.1\r\n\r\n";
        assert_eq!(check(input), Out::Ok(b"abc".to_vec(), 13, true));
        let mut d = ChunkedDecoder::new();
        let mut out = Vec::new();
        let r = d.decode(input, &mut out).unwrap();
        assert!(r.done && d.is_done());
        // Once done, nothing more is taken.
        assert_eq!(
            d.decode(b"more", &mut out),
            Ok(Decoded {
                consumed: 0,
                done: true
            })
        );
    }

    #[test]
    fn partial() {
        assert_eq!(check(b"5\r\nhel"), Out::Ok(b"hel".to_vec(), 6, false));
        assert_eq!(check(b"0\r\n"), Out::Ok(Vec::new(), 3, false));
        assert_eq!(check(b"0\r\nX: y\r\n"), Out::Ok(Vec::new(), 9, false));
        assert_eq!(check(b"0\r\nX"), Out::Ok(Vec::new(), 4, false));
        assert_eq!(check(b""), Out::Ok(Vec::new(), 0, false));
    }

    #[test]
    fn sizes() {
        for bad in [
            &b"-5\r\nhello\r\n0\r\n\r\n"[..],
            b"+5\r\nhello\r\n0\r\n\r\n",
            b"0x5\r\nhello\r\n0\r\n\r\n",
            b" 5\r\nhello\r\n0\r\n\r\n",
            b"5 \r\nhello\r\n0\r\n\r\n",
            b"6_0\r\n",
            b"\r\nhello\r\n0\r\n\r\n",
            b";foo=bar\r\nhello\r\n0\r\n\r\n",
            b" ;foo=bar\r\nhello\r\n0\r\n\r\n",
            b"g\r\n",
            b"5\nhello\r\n0\r\n\r\n",
            b"5\n;\r\nhello\r\n0\r\n\r\n",
            b"5\rhello",
            b"0 \r\n\r\n",
            b"0\t\r\n\r\n",
        ] {
            is_400(bad);
        }
        // 16 significant digits fit; 17 do not, leading zeros aside.
        assert_eq!(
            check(b"ffffffffffffffff\r\nab"),
            Out::Ok(b"ab".to_vec(), 20, false)
        );
        assert_eq!(
            check(b"0000000000000000001\r\na"),
            Out::Ok(b"a".to_vec(), 22, false)
        );
        is_400(b"10000000000000000\r\n");
        is_400(b"fffffffffffffffff");
    }

    #[test]
    fn extensions() {
        assert_eq!(
            body(b"5; some; parameters=stuff\r\nhello\r\n6; blahblah; blah\r\n world\r\n0\r\n\r\n"),
            b"hello world"
        );
        assert_eq!(body(b"5;foo=\"bar baz\"\r\nhello\r\n0\r\n\r\n"), b"hello");
        assert_eq!(body(b"5 ;a=b\r\nhello\r\n0 \t;x\r\n\r\n"), b"hello");
        assert_eq!(body(b"5;a=\t\"\xff\"\r\nhello\r\n0\r\n\r\n"), b"hello");
        // A value outside quotes is a token: no obs-text.
        is_400(b"5;a=\t\xff\r\nhello\r\n0\r\n\r\n");
        is_400(b"5;ext=val\rue\r\nhello\r\n0\r\n\r\n");
        is_400(b"5;ext\n");
        is_400(b"5;e\x00\r\n");
        is_400(b"5;e\x7f\r\n");
        // The size line is bounded.
        let mut line = b"5;".to_vec();
        line.resize(MAX_SIZE_LINE, b'x');
        let ok = [&line[..], b"\r\nhello\r\n0\r\n\r\n"].concat();
        let mut d = ChunkedDecoder::new();
        let mut out = Vec::new();
        assert!(d.decode(&ok, &mut out).unwrap().done);
        line.push(b'x');
        let mut d = ChunkedDecoder::new();
        assert!(matches!(
            d.decode(&line, &mut out),
            Err(HttpError::BadRequest(_))
        ));
        // Also inside a quoted string that never ends.
        let mut line = b"5;a=\"".to_vec();
        line.resize(MAX_SIZE_LINE + 1, b'x');
        let mut d = ChunkedDecoder::new();
        assert!(matches!(
            d.decode(&line, &mut out),
            Err(HttpError::BadRequest(_))
        ));
    }

    /// RFC 9112 7.1.1: `*( BWS ";" BWS name [ BWS "=" BWS value ] )`, the
    /// name a token, the value a token or a quoted-string.
    #[test]
    fn extension_grammar() {
        for ext in [
            &b"5;a"[..],
            b"5;a=b",
            b"5 ; a = \"x y\"",
            b"5;a=b;c=d",
            b"5;a=\"q\\\"x\"",
            b"5;a;b",
            b"5 \t; a\t=\tb \t;c",
            b"5;a ;b",
            b"5;a=\"\"",
            b"5;a=\"\t \\\t\\\xff\xff!#[]\\\\\"",
            b"5;a=\"x\";b=\"y\" ;c",
            b"5;!#$%&'*+-.^_`|~=!#$%&'*+-.^_`|~",
        ] {
            let input = [ext, b"\r\nhello\r\n0\r\n\r\n"].concat();
            assert_eq!(body(&input), b"hello", "{ext:?}");
        }
        for ext in [
            &b"5;"[..],
            b"5;a=",
            b"5;=x",
            b"5;a=b c",
            b"5;a=\"unterminated",
            b"5;a=@",
            b"5;bad[=x",
            b"5;a=b;;c",
            b"5; ",
            b"5;;a",
            b"5,a",
            b"5;a ",
            b"5;a= ",
            b"5;a=b ",
            b"5;a=\"x\" ",
            b"5;a=\"x\"y",
            b"5;a b",
            b"5;a=b=c",
            b"5;a=\"x",
            b"5;a=\"\\",
            b"5;a=\"x\x00\"",
            b"5;a=\"x\x7f\"",
            b"5;a=\"\\\x00\"",
            b"5;a=\"x\ny\"",
            b"5;a\xff",
            b"5;\xff",
            b"5;a=\"x\"\xff",
        ] {
            let input = [ext, b"\r\nhello\r\n0\r\n\r\n"].concat();
            is_400(&input);
        }
    }

    #[test]
    fn data_terminator() {
        is_400(b"5\r\nhelloX\r\n0\r\n\r\n");
        is_400(b"5\r\nhello\n0\r\n\r\n");
        is_400(b"5\r\nhello\rX");
        is_400(b"5\r\nhello world\r\n0\r\n\r\n");
        is_400(b"0\r\n\n");
        is_400(b"0\r\n\rX");
    }

    #[test]
    fn trailers() {
        assert_eq!(
            body(b"5\r\nhello\r\n0\r\nVary: *\r\nContent-Type: text/plain\r\n\r\n"),
            b"hello"
        );
        assert_eq!(body(b"0\r\nX:\r\nY: \t a \xff\r\n\r\n"), b"");
        assert_eq!(
            body(b"0\r\n!#$%&'*+-.^_`|~09azAZ:\x80 \"(),/:;<=>?@[\\]{}\t\r\n\r\n"),
            b""
        );
        for bad in [
            &b"0\r\nX y: z\r\n\r\n"[..],
            b"0\r\nX : z\r\n\r\n",
            b"0\r\n: z\r\n\r\n",
            b"0\r\nNoColon\r\n\r\n",
            b"0\r\nX: a\r\n b\r\n\r\n",
            b"0\r\n X: a\r\n\r\n",
            b"0\r\nX: a\nY: b\r\n\r\n",
            b"0\r\nX: a\rY",
            b"0\r\nX: a\x00\r\n\r\n",
            b"0\r\nX: a\x7f\r\n\r\n",
            b"0\r\nX\xc3: a\r\n\r\n",
            b"0\r\nX: a\x0bb\r\n\r\n",
            b"0\r\nX: a\x1b\r\n\r\n",
            b"0\r\nX;y: a\r\n\r\n",
            b"0\r\n\"X\": a\r\n\r\n",
            b"0\r\nX\r\n\r\n",
            b"0\r\nX: a\r\n\r\r\n",
        ] {
            is_400(bad);
        }
    }

    #[test]
    fn forbidden_trailers() {
        for name in [
            "Content-Length",
            "host",
            "TRANSFER-ENCODING",
            "Trailer",
            "Authorization",
            "TE",
        ] {
            is_400(format!("0\r\n{name}: x\r\n\r\n").as_bytes());
        }
        for allowed in [
            "Hostx",
            "Hos",
            "T",
            "Tee",
            "Content-Lengths",
            "X-Host",
            "Content-Type",
        ] {
            assert_eq!(body(format!("0\r\n{allowed}: x\r\n\r\n").as_bytes()), b"");
        }
    }

    #[test]
    fn trailer_section_is_bounded() {
        let mut t = b"0\r\nX: 1\r\nY: ".to_vec();
        t.resize(3 + MAX_TRAILER - 4, b'a');
        t.extend_from_slice(b"\r\n\r\n");
        assert_eq!(t.len(), 3 + MAX_TRAILER);
        let mut d = ChunkedDecoder::new();
        let mut out = Vec::new();
        assert!(d.decode(&t, &mut out).unwrap().done);
        t.insert(5, b'a');
        let mut d = ChunkedDecoder::new();
        assert!(matches!(
            d.decode(&t, &mut out),
            Err(HttpError::BadRequest(_))
        ));
    }

    #[test]
    fn large_chunk_is_copied_in_bulk() {
        let data = vec![7u8; 1 << 20];
        let mut input = b"100000\r\n".to_vec();
        input.extend_from_slice(&data);
        input.extend_from_slice(b"\r\n0\r\n\r\n");
        let mut d = ChunkedDecoder::new();
        let mut out = Vec::new();
        let mut consumed = 0;
        for piece in input.chunks(4096) {
            consumed += d.decode(piece, &mut out).unwrap().consumed;
        }
        assert!(d.is_done());
        assert_eq!(consumed, input.len());
        assert_eq!(out, data);
    }

    #[test]
    fn mutations_never_panic_and_ignore_splits() {
        let seeds: [&[u8]; 4] = [
            b"5;a=b\r\nhello\r\n1\r\nx\r\n0\r\nT: v\r\n\r\n",
            b"A \t;x\r\n0123456789\r\n0\r\n\r\nnext",
            b"0\r\nhost: x\r\n\r\n",
            b"1 ; a = \"q\\\"x\" ;b\r\nx\r\n0\r\n\r\n",
        ];
        let alphabet = b"\r\n \t:;0aF\x00\x7f\xff-=\"\\";
        let mut s: u64 = 0x2545_f491_4f6c_dd1d;
        let mut next = move || {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            s
        };
        for _ in 0..3000 {
            let mut input = seeds[(next() % seeds.len() as u64) as usize].to_vec();
            for _ in 0..(next() % 4) {
                let i = (next() % input.len() as u64) as usize;
                let c = alphabet[(next() % alphabet.len() as u64) as usize];
                match next() % 3 {
                    0 => input[i] = c,
                    1 => input.insert(i, c),
                    _ => {
                        input.remove(i);
                    }
                }
            }
            let whole = run(&input, &[]);
            let bytewise: Vec<usize> = (1..input.len()).collect();
            assert_eq!(run(&input, &bytewise), whole, "{input:?}");
            let cut = (next() % (input.len() as u64 + 1)) as usize;
            assert_eq!(run(&input, &[cut]), whole, "{input:?} at {cut}");
        }
    }

    #[test]
    fn chunk_size_encoder() {
        for n in [0usize, 1, 9, 10, 15, 16, 255, 4096, 0xdead_beef, usize::MAX] {
            let mut out = b"x".to_vec();
            write_chunk_size(n, &mut out);
            assert_eq!(out, format!("x{n:x}\r\n").into_bytes());
        }
    }
}
