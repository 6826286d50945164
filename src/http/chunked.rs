//! Resumable chunked transfer-coding decoder (RFC 9112 section 7.1) and the
//! chunk-size encoder used for responses.

use super::chars::{is_hexdig, is_tchar};
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

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Hex digits of a chunk-size (at least one required).
    Size,
    /// Whitespace after the size: only tolerated before a `;`.
    SizeBws,
    /// Chunk extensions, up to the CR.
    Ext,
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

/// Result of feeding bytes to the decoder.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Decoded {
    /// How many input bytes were consumed.
    pub consumed: usize,
    /// The last chunk and the trailer section have been read; the bytes after
    /// `consumed` belong to the next request.
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
                let rest = input.get(i..).unwrap_or(&[]);
                let n = usize::try_from(self.size).map_or(rest.len(), |s| s.min(rest.len()));
                out.extend_from_slice(rest.get(..n).unwrap_or(&[]));
                i += n;
                self.size -= n as u64;
                if self.size == 0 {
                    self.state = State::DataCr;
                }
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

    /// One byte of anything but chunk data.
    fn step(&mut self, b: u8) -> Result<(), HttpError> {
        match self.state {
            State::Size | State::SizeBws | State::Ext => {
                if b != b'\r' {
                    self.line_len += 1;
                    if self.line_len > MAX_SIZE_LINE {
                        return Err(bad("chunk-size line too long"));
                    }
                }
            }
            State::TrailerStart
            | State::TrailerName
            | State::TrailerValue
            | State::TrailerLf
            | State::FinalLf => {
                self.trailer_len += 1;
                if self.trailer_len > MAX_TRAILER {
                    return Err(bad("trailer section too long"));
                }
            }
            _ => {}
        }
        match self.state {
            State::Size => {
                if is_hexdig(b) {
                    self.any_digit = true;
                    if self.digits == 0 && b == b'0' {
                        return Ok(());
                    }
                    self.digits += 1;
                    // 16 significant hex digits always fit a u64.
                    if self.digits > 16 {
                        return Err(bad("chunk-size too large"));
                    }
                    self.size = (self.size << 4) | u64::from(hex_val(b));
                } else if !self.any_digit {
                    return Err(bad("invalid chunk-size"));
                } else {
                    match b {
                        b'\r' => self.state = State::SizeLf,
                        b';' => self.state = State::Ext,
                        b' ' | b'\t' => self.state = State::SizeBws,
                        _ => return Err(bad("invalid chunk-size")),
                    }
                }
            }
            State::SizeBws => match b {
                b' ' | b'\t' => {}
                b';' => self.state = State::Ext,
                _ => return Err(bad("whitespace after chunk-size")),
            },
            State::Ext => match b {
                b'\r' => self.state = State::SizeLf,
                b'\t' => {}
                _ if b < 0x20 || b == 0x7f => {
                    return Err(bad("control byte in chunk extension"));
                }
                _ => {}
            },
            State::SizeLf => {
                if b != b'\n' {
                    return Err(bad("chunk-size line without CRLF"));
                }
                self.line_len = 0;
                self.state = if self.size == 0 {
                    State::TrailerStart
                } else {
                    State::Data
                };
            }
            // decode() copies data in bulk and never gets here with Data;
            // a zero-size Data would mean a logic error, reported not panicked.
            State::Data => return Err(bad("chunk decoder state error")),
            State::DataCr => {
                if b != b'\r' {
                    return Err(bad("chunk data not followed by CRLF"));
                }
                self.state = State::DataLf;
            }
            State::DataLf => {
                if b != b'\n' {
                    return Err(bad("chunk data not followed by CRLF"));
                }
                self.size = 0;
                self.digits = 0;
                self.any_digit = false;
                self.state = State::Size;
            }
            State::TrailerStart => match b {
                b'\r' => self.state = State::FinalLf,
                b' ' | b'\t' => return Err(bad("obsolete line folding in trailer")),
                _ if is_tchar(b) => {
                    self.name_len = 0;
                    self.forbidden = ALL_FORBIDDEN;
                    self.name_byte(b);
                    self.state = State::TrailerName;
                }
                _ => return Err(bad("invalid trailer field")),
            },
            State::TrailerName => {
                if is_tchar(b) {
                    self.name_byte(b);
                } else if b == b':' {
                    let len = self.name_len;
                    let hit = FORBIDDEN_TRAILERS
                        .iter()
                        .enumerate()
                        .any(|(k, n)| self.forbidden & (1 << k) != 0 && n.len() == len);
                    if hit {
                        return Err(bad("forbidden trailer field"));
                    }
                    self.state = State::TrailerValue;
                } else {
                    return Err(bad("invalid trailer field name"));
                }
            }
            State::TrailerValue => match b {
                b'\r' => self.state = State::TrailerLf,
                b'\t' => {}
                _ if b < 0x20 || b == 0x7f => {
                    return Err(bad("invalid byte in trailer value"));
                }
                _ => {}
            },
            State::TrailerLf => {
                if b != b'\n' {
                    return Err(bad("bare CR in trailer"));
                }
                self.state = State::TrailerStart;
            }
            State::FinalLf => {
                if b != b'\n' {
                    return Err(bad("bare CR after last chunk"));
                }
                self.state = State::Done;
            }
            State::Done => {}
        }
        Ok(())
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
