//! Input buffer of a connection: bytes read but not yet consumed.
//!
//! The backing Vec is kept fully initialised and `filled` marks the valid
//! prefix, so reading into the spare space never re-zeroes memory and needs
//! no `unsafe`.

use std::io::{self, Read};

pub(crate) struct InBuf {
    data: Vec<u8>,
    /// Start of unconsumed bytes.
    start: usize,
    /// End of valid bytes.
    filled: usize,
    last_read_short: bool,
}

impl InBuf {
    pub fn with_capacity(n: usize) -> Self {
        InBuf {
            data: vec![0; n],
            start: 0,
            filled: 0,
            last_read_short: false,
        }
    }

    /// Bytes of memory held (initialised), used or not.
    #[cfg(test)]
    pub fn capacity(&self) -> usize {
        self.data.len()
    }

    /// The unconsumed bytes.
    #[inline]
    pub fn bytes(&self) -> &[u8] {
        &self.data[self.start..self.filled]
    }

    #[inline]
    pub fn len(&self) -> usize {
        self.filled - self.start
    }

    #[inline]
    pub fn is_empty(&self) -> bool {
        self.filled == self.start
    }

    /// Marks `n` leading bytes as consumed.
    pub(crate) fn consume(&mut self, n: usize) {
        self.start = (self.start + n).min(self.filled);
        if self.start == self.filled {
            self.start = 0;
            self.filled = 0;
        }
    }

    /// Removes `len` bytes starting `at` bytes into the unconsumed region,
    /// moving what follows down (used to drop decoded body bytes that sit
    /// between a head and the next request).
    pub fn remove(&mut self, at: usize, len: usize) {
        let from = self.start + at;
        let to = (from + len).min(self.filled);
        if from >= to {
            return;
        }
        self.data.copy_within(to..self.filled, from);
        self.filled -= to - from;
    }

    /// Reads once from `r` into the spare space, growing or compacting it so
    /// at least `min_spare` bytes are free. Returns what `read` returned.
    pub(crate) fn read_from<R: Read>(&mut self, r: &mut R, min_spare: usize) -> io::Result<usize> {
        if self.data.len() - self.filled < min_spare {
            if self.start > 0 {
                self.data.copy_within(self.start..self.filled, 0);
                self.filled -= self.start;
                self.start = 0;
            }
            if self.data.len() - self.filled < min_spare {
                let want = (self.filled + min_spare).max(self.data.len() * 2);
                self.data.resize(want, 0);
            }
        }
        let spare = self.data.len() - self.filled;
        let n = r.read(&mut self.data[self.filled..])?;
        self.filled += n;
        self.last_read_short = n < spare;
        Ok(n)
    }

    /// The last read returned less than the space offered: the socket had
    /// nothing more at that moment.
    pub(crate) fn last_read_short(&self) -> bool {
        self.last_read_short
    }

    /// Releases memory after a large head or a pipelined burst grew the
    /// buffer past four times `keep`; a buffer of normal size is kept, so
    /// steady traffic never reallocates or re-zeroes it.
    pub(crate) fn shrink_if_idle(&mut self, keep: usize) {
        if self.is_empty() && self.data.len() > 4 * keep {
            self.data.truncate(keep);
            self.data.shrink_to_fit();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_consume_remove() {
        let mut b = InBuf::with_capacity(4);
        let mut src: &[u8] = b"hello world";
        b.read_from(&mut src, 16).unwrap();
        assert_eq!(b.bytes(), b"hello world");
        b.consume(6);
        assert_eq!(b.bytes(), b"world");
        b.remove(1, 2);
        assert_eq!(b.bytes(), b"wld");
        let mut more: &[u8] = b"!";
        b.read_from(&mut more, 64).unwrap();
        assert_eq!(b.bytes(), b"wld!");
        b.consume(4);
        assert!(b.is_empty());
    }
}
