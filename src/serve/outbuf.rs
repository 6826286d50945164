//! Output queue of a connection: small pieces (heads, chunk sizes, CRLFs,
//! short bodies) are copied into one growing byte segment, large app chunks
//! are queued as they are (no copy). A single segment leaves through a plain
//! write (send(2)), more through one vectored write (sendmsg(2)). Pipelined
//! responses that are ready together share one write.

use std::collections::VecDeque;
use std::io::{self, IoSlice, Write};

use crate::http::encode::BodySink;

/// Chunks shorter than this are copied; longer ones are held by reference.
/// Copying a few hundred bytes is cheaper than an extra iovec entry.
const COPY_BELOW: usize = 1024;
/// Most iovecs handed to one vectored send.
const MAX_IOVECS: usize = 64;
/// Segments a single small response usually has.
const FEW_IOVECS: usize = 4;

enum Segment<C> {
    Bytes(Vec<u8>),
    Chunk(C),
}

impl<C: AsRef<[u8]>> Segment<C> {
    fn bytes(&self) -> &[u8] {
        match self {
            Segment::Bytes(v) => v,
            Segment::Chunk(c) => c.as_ref(),
        }
    }
}

pub(crate) struct OutQueue<C> {
    segments: VecDeque<Segment<C>>,
    /// Bytes of the front segment already written.
    front_offset: usize,
    /// Unwritten bytes in total.
    len: usize,
    /// A cleared byte segment kept for reuse, so steady keep-alive traffic
    /// does not allocate.
    spare: Option<Vec<u8>>,
}

impl<C: AsRef<[u8]>> Default for OutQueue<C> {
    fn default() -> Self {
        Self::new()
    }
}

impl<C: AsRef<[u8]>> OutQueue<C> {
    pub fn new() -> Self {
        OutQueue {
            segments: VecDeque::new(),
            front_offset: 0,
            len: 0,
            spare: None,
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The byte segment at the back, created if the back is a chunk.
    fn tail(&mut self) -> &mut Vec<u8> {
        let need_new = !matches!(self.segments.back(), Some(Segment::Bytes(_)));
        if need_new {
            let v = self.spare.take().unwrap_or_default();
            self.segments.push_back(Segment::Bytes(v));
        }
        match self.segments.back_mut() {
            Some(Segment::Bytes(v)) => v,
            // Just ensured the back is a byte segment.
            _ => unreachable!("tail segment is bytes"),
        }
    }

    /// Appends bytes by copying.
    pub(crate) fn push_bytes(&mut self, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        self.tail().extend_from_slice(bytes);
        self.len += bytes.len();
    }

    /// Appends what `write` adds to the vector it is given (the byte
    /// segment at the back, so it writes in place: no staging copy) and
    /// returns what `write` returns.
    #[inline]
    pub(crate) fn put_with<T>(&mut self, write: impl FnOnce(&mut Vec<u8>) -> T) -> T {
        let tail = self.tail();
        let before = tail.len();
        let result = write(tail);
        let added = tail.len() - before;
        self.len += added;
        result
    }

    /// Appends an app chunk, copying it only when small.
    pub(crate) fn push_chunk(&mut self, chunk: C) {
        let n = chunk.as_ref().len();
        if n == 0 {
            return;
        }
        if n < COPY_BELOW {
            self.push_bytes(chunk.as_ref());
        } else {
            self.segments.push_back(Segment::Chunk(chunk));
            self.len += n;
        }
    }

    /// Appends the first `n` bytes of an app chunk (Content-Length cut-off).
    pub(crate) fn push_chunk_prefix(&mut self, chunk: C, n: usize) {
        if n >= chunk.as_ref().len() {
            self.push_chunk(chunk);
        } else {
            let prefix = chunk.as_ref().get(..n).unwrap_or_default();
            // Copying is fine here: this path only runs for misbehaving apps.
            let owned = prefix.to_vec();
            self.push_bytes(&owned);
        }
    }

    /// Writes as much as the stream takes. Ok(true): everything written;
    /// Ok(false): the stream would block with bytes left.
    pub(crate) fn write_to<W: Write>(&mut self, w: &mut W) -> io::Result<bool> {
        while self.len > 0 {
            // A typical response is a segment or two: filling (zeroing)
            // a 64-entry array for it cost more than the rest of the call.
            let result = if self.segments.len() <= FEW_IOVECS {
                self.write_vectored::<FEW_IOVECS, W>(w)
            } else {
                self.write_vectored::<MAX_IOVECS, W>(w)
            };
            let written = match result {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            self.consume(written);
        }
        Ok(true)
    }

    /// One send of the first N segments: plain for one, vectored for more.
    fn write_vectored<const N: usize, W: Write>(&self, w: &mut W) -> io::Result<usize> {
        let mut slices: [IoSlice<'_>; N] = [IoSlice::new(&[]); N];
        let count = self.segments.len().min(N);
        for (i, (slice, seg)) in slices.iter_mut().zip(&self.segments).enumerate() {
            let bytes = seg.bytes();
            *slice = IoSlice::new(if i == 0 {
                bytes.get(self.front_offset..).unwrap_or_default()
            } else {
                bytes
            });
        }
        match &slices[..count] {
            // send(2) with one buffer skips sendmsg's msghdr and iovec
            // copies in the kernel; a small response is one segment.
            [one] => w.write(one),
            some => w.write_vectored(some),
        }
    }

    fn consume(&mut self, mut n: usize) {
        self.len -= n;
        while n > 0 {
            let Some(front) = self.segments.front() else {
                break;
            };
            let left = front.bytes().len() - self.front_offset;
            if n < left {
                self.front_offset += n;
                return;
            }
            n -= left;
            self.front_offset = 0;
            if let Some(Segment::Bytes(mut v)) = self.segments.pop_front() {
                // Keep one modest buffer for reuse; drop huge ones.
                if v.capacity() <= 256 * 1024 {
                    v.clear();
                    self.spare = Some(v);
                }
            }
        }
        // A fully written byte segment at the back would otherwise be reused
        // as the tail with its old contents counted twice; the loop above
        // popped every written segment, so the queue is exactly the unsent
        // bytes here.
    }

    /// Drops everything unwritten (the connection is going away).
    pub fn clear(&mut self) {
        self.segments.clear();
        self.front_offset = 0;
        self.len = 0;
    }
}

/// A response body's encoder writes straight into the queue.
impl<C: AsRef<[u8]>> BodySink<C> for OutQueue<C> {
    #[inline]
    fn put_framing(&mut self, write: impl FnOnce(&mut Vec<u8>)) {
        self.put_with(write);
    }

    #[inline]
    fn put_item(&mut self, item: C, n: usize) {
        self.push_chunk_prefix(item, n);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Accepts at most `limit` bytes per call, then WouldBlock once.
    struct Trickle {
        got: Vec<u8>,
        limit: usize,
        block_next: bool,
    }

    impl Write for Trickle {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            if self.block_next {
                self.block_next = false;
                return Err(io::ErrorKind::WouldBlock.into());
            }
            self.block_next = true;
            let n = buf.len().min(self.limit);
            self.got.extend_from_slice(&buf[..n]);
            Ok(n)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn mixed_segments_survive_short_writes() {
        let mut q: OutQueue<Vec<u8>> = OutQueue::new();
        let big: Vec<u8> = (0..5000u32).map(|i| i as u8).collect();
        q.push_bytes(b"HEAD\r\n");
        q.push_chunk(big.clone());
        q.push_bytes(b"\r\n");
        q.push_chunk(b"small".to_vec());
        let mut expect = b"HEAD\r\n".to_vec();
        expect.extend_from_slice(&big);
        expect.extend_from_slice(b"\r\nsmall");
        assert_eq!(q.len(), expect.len());
        let mut w = Trickle {
            got: Vec::new(),
            limit: 7,
            block_next: false,
        };
        let mut rounds = 0;
        while !q.write_to(&mut w).unwrap() {
            rounds += 1;
            assert!(rounds < 10_000);
        }
        assert_eq!(w.got, expect);
        assert!(q.is_empty());
        // The queue is reusable after draining.
        q.push_bytes(b"again");
        w.block_next = false;
        w.limit = 100;
        assert!(q.write_to(&mut w).unwrap());
        assert!(w.got.ends_with(b"again"));
    }

    /// Records which call each write came through.
    #[derive(Default)]
    struct CallLog {
        plain: usize,
        vectored: usize,
    }

    impl Write for CallLog {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.plain += 1;
            Ok(buf.len())
        }
        fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
            self.vectored += 1;
            Ok(bufs.iter().map(|b| b.len()).sum())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn one_segment_goes_out_as_a_plain_write() {
        let mut q: OutQueue<Vec<u8>> = OutQueue::new();
        q.push_bytes(b"HTTP/1.1 200 OK\r\n\r\n");
        q.push_chunk(b"Hello, World!".to_vec());
        let mut w = CallLog::default();
        assert!(q.write_to(&mut w).unwrap());
        assert_eq!((w.plain, w.vectored), (1, 0));

        q.push_bytes(b"head");
        q.push_chunk(vec![1u8; COPY_BELOW]);
        assert!(q.write_to(&mut w).unwrap());
        assert_eq!((w.plain, w.vectored), (1, 1));
    }

    #[test]
    fn prefix_cuts_chunk() {
        let mut q: OutQueue<Vec<u8>> = OutQueue::new();
        q.push_chunk_prefix(vec![7u8; 4000], 10);
        assert_eq!(q.len(), 10);
    }
}
