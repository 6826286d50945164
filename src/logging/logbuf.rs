//! Lines held in memory and written out in batches without ever waiting
//! on the destination: the access log's writer.
//!
//! The event loop renders a line per request into the buffer and flushes it
//! right before it sleeps in `poll` (or once a few KiB are waiting), so a
//! busy loop pays one `write` for many requests. A destination that does
//! not keep up (a pipe to a stalled reader) costs at most `MAX_HELD` bytes
//! of memory: beyond that, new lines are counted and dropped, with a
//! warning, rather than stalling every client. A write error (disk full,
//! reader gone) drops what is held, warns once, and is retried with the
//! next lines.

use std::sync::Arc;

use crate::logging::logfile::LogFile;

/// Held bytes that trigger a write without waiting for the loop to idle.
pub const FLUSH_AT: usize = 8 * 1024;
/// Most bytes held for a destination that does not take them.
pub const MAX_HELD: usize = 1 << 20;
/// Capacity kept after a burst has drained.
const KEEP_CAPACITY: usize = 64 * 1024;

#[derive(Debug)]
pub struct LogBuffer {
    file: Arc<LogFile>,
    buf: Vec<u8>,
    /// Bytes at the front of `buf` already written.
    start: usize,
    /// Lines dropped and not yet reported.
    dropped: u64,
    /// A write failed and was reported; cleared by the next success, so an
    /// outage is one warning, not one per line.
    failing: bool,
}

impl LogBuffer {
    pub fn new(file: Arc<LogFile>) -> LogBuffer {
        LogBuffer {
            file,
            buf: Vec::with_capacity(2 * FLUSH_AT),
            start: 0,
            dropped: 0,
            failing: false,
        }
    }

    /// Adds one line: `render` appends it without its newline. Dropped
    /// (counted) when `MAX_HELD` bytes are already waiting.
    pub fn push_line(&mut self, render: impl FnOnce(&mut Vec<u8>)) {
        if self.held() >= MAX_HELD {
            if self.dropped == 0 {
                log::warn!(
                    "access log: {} not keeping up; dropping lines until it does",
                    self.describe()
                );
            }
            self.dropped += 1;
            return;
        }
        render(&mut self.buf);
        self.buf.push(b'\n');
        if self.held() >= FLUSH_AT {
            self.flush();
        }
    }

    /// Writes what the destination takes now; never waits.
    pub fn flush(&mut self) {
        if self.held() == 0 {
            return;
        }
        match self.file.write_available(&self.buf[self.start..]) {
            Ok(n) => {
                self.start += n;
                if n > 0 {
                    self.failing = false;
                }
            }
            Err(e) => {
                let lines = self.buf[self.start..]
                    .iter()
                    .filter(|&&b| b == b'\n')
                    .count();
                self.dropped += lines as u64;
                self.start = self.buf.len();
                if !self.failing {
                    self.failing = true;
                    log::warn!(
                        "access log: cannot write to {}: {e}; dropping lines until it works",
                        self.describe()
                    );
                }
            }
        }
        if self.start == self.buf.len() {
            self.buf.clear();
            self.start = 0;
            if self.buf.capacity() > KEEP_CAPACITY {
                self.buf.shrink_to(KEEP_CAPACITY);
            }
            if self.dropped > 0 && !self.failing {
                log::warn!(
                    "access log: {} line(s) were dropped ({} did not take them)",
                    self.dropped,
                    self.describe()
                );
                self.dropped = 0;
            }
        } else if self.start >= self.buf.len() / 2 {
            // Amortised: each byte is moved at most once more.
            self.buf.drain(..self.start);
            self.start = 0;
        }
    }

    /// Bytes waiting to be written.
    pub fn held(&self) -> usize {
        self.buf.len() - self.start
    }

    /// Lines dropped since the last report.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    fn describe(&self) -> String {
        match self.file.path() {
            Some(p) => p.display().to_string(),
            None => "stdout".to_string(),
        }
    }
}

impl Drop for LogBuffer {
    /// Last chance for lines rendered since the loop last idled (at exit).
    fn drop(&mut self) {
        self.flush();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs::File;
    use std::io::Read;

    fn file_buffer() -> (tempfile::TempDir, std::path::PathBuf, LogBuffer) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("access.log");
        let buf = LogBuffer::new(LogFile::open(&path).unwrap());
        (dir, path, buf)
    }

    fn pipe_buffer() -> (File, LogBuffer) {
        let (r, w) = crate::logging::logfile::tests::pipe();
        (r, LogBuffer::new(LogFile::from_file_for_tests(w)))
    }

    #[test]
    fn lines_wait_for_flush() {
        let (_d, path, mut b) = file_buffer();
        b.push_line(|o| o.extend_from_slice(b"one"));
        b.push_line(|o| o.extend_from_slice(b"two"));
        assert_eq!(std::fs::read(&path).unwrap(), b"");
        assert_eq!(b.held(), 8);
        b.flush();
        assert_eq!(std::fs::read(&path).unwrap(), b"one\ntwo\n");
        assert_eq!(b.held(), 0);
        b.flush();
        assert_eq!(std::fs::read(&path).unwrap(), b"one\ntwo\n");
    }

    #[test]
    fn a_full_buffer_flushes_itself() {
        let (_d, path, mut b) = file_buffer();
        let line = vec![b'x'; 999];
        for _ in 0..(FLUSH_AT / 1000 + 1) {
            b.push_line(|o| o.extend_from_slice(&line));
        }
        assert_eq!(b.held(), 0);
        assert!(std::fs::read(&path).unwrap().len() >= FLUSH_AT);
    }

    #[test]
    fn drop_flushes() {
        let (_d, path, mut b) = file_buffer();
        b.push_line(|o| o.extend_from_slice(b"last"));
        drop(b);
        assert_eq!(std::fs::read(&path).unwrap(), b"last\n");
    }

    #[test]
    fn stalled_reader_bounds_memory_and_counts_drops() {
        let (mut reader, mut b) = pipe_buffer();
        let line = vec![b'y'; 199];
        let mut pushed = 0u64;
        while b.dropped() < 100 {
            b.push_line(|o| o.extend_from_slice(&line));
            pushed += 1;
            assert!(pushed < 100_000, "never dropped");
        }
        assert!(b.held() <= MAX_HELD + FLUSH_AT, "{}", b.held());
        assert!(b.held() >= MAX_HELD - 200, "{}", b.held());
        // The reader catches up: held lines go out whole, then new ones.
        let kept = pushed - b.dropped();
        let mut got = Vec::new();
        let mut chunk = vec![0; 1 << 16];
        while got.len() < kept as usize * 200 {
            b.flush();
            let n = reader.read(&mut chunk).unwrap();
            got.extend_from_slice(&chunk[..n]);
        }
        assert_eq!(got.len(), kept as usize * 200);
        assert!(got
            .chunks(200)
            .all(|l| l[..199] == line[..] && l[199] == b'\n'));
        assert_eq!(b.held(), 0);
        // Reported and reset once everything held went out.
        assert_eq!(b.dropped(), 0);
        b.push_line(|o| o.extend_from_slice(b"again"));
        b.flush();
        let n = reader.read(&mut chunk).unwrap();
        assert_eq!(&chunk[..n], b"again\n");
    }

    #[test]
    fn write_errors_drop_what_is_held() {
        let (reader, mut b) = pipe_buffer();
        drop(reader);
        b.push_line(|o| o.extend_from_slice(b"a"));
        b.push_line(|o| o.extend_from_slice(b"b"));
        // EPIPE (Rust ignores SIGPIPE): the lines are dropped, not kept.
        b.flush();
        assert_eq!(b.held(), 0);
        assert_eq!(b.dropped(), 2);
        b.push_line(|o| o.extend_from_slice(b"c"));
        b.flush();
        assert_eq!(b.dropped(), 3);
    }
}
