//! Request bodies: kept in memory while small, spooled to an unnamed
//! temporary file past a threshold, so a 1 GiB upload costs the server a
//! bounded buffer, not a gigabyte of RAM.

use std::fs::File;
use std::io::{self, Seek, SeekFrom, Write};

/// Bodies up to this size stay in memory.
pub(crate) const SPOOL_THRESHOLD: usize = 1 << 20;

/// A complete request body, handed to the application.
#[derive(Debug)]
pub enum RequestBody {
    Memory(Vec<u8>),
    /// Positioned at the start; `len` bytes long.
    File {
        file: File,
        len: u64,
    },
}

impl Default for RequestBody {
    fn default() -> Self {
        RequestBody::Memory(Vec::new())
    }
}

impl RequestBody {
    pub fn len(&self) -> u64 {
        match self {
            RequestBody::Memory(v) => v.len() as u64,
            RequestBody::File { len, .. } => *len,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The whole body in memory (tests and stub apps; the WSGI adapter
    /// streams a file body instead).
    #[cfg(any(test, feature = "testing"))]
    pub(crate) fn into_vec(self) -> io::Result<Vec<u8>> {
        match self {
            RequestBody::Memory(v) => Ok(v),
            RequestBody::File { mut file, len } => {
                let mut v = Vec::with_capacity(len as usize);
                std::io::Read::read_to_end(&mut file, &mut v)?;
                Ok(v)
            }
        }
    }
}

/// A body being received.
#[derive(Debug)]
pub(crate) struct Spool {
    /// Bytes not yet written to the file (all of them while small).
    mem: Vec<u8>,
    file: Option<File>,
    /// Bytes already in the file.
    on_disk: u64,
    threshold: usize,
}

impl Spool {
    #[cfg(test)]
    pub fn new(threshold: usize) -> Self {
        Self::with_buffer(threshold, Vec::new())
    }

    /// A spool whose memory part starts in `buffer` (emptied first).
    pub(crate) fn with_buffer(threshold: usize, mut buffer: Vec<u8>) -> Self {
        buffer.clear();
        Spool {
            mem: buffer,
            file: None,
            on_disk: 0,
            threshold,
        }
    }

    /// The in-memory tail: receivers append here, then call `settle`.
    pub fn buffer(&mut self) -> &mut Vec<u8> {
        &mut self.mem
    }

    /// Total bytes received.
    #[cfg(test)]
    pub fn len(&self) -> u64 {
        self.on_disk + self.mem.len() as u64
    }

    /// Moves the in-memory bytes to the file once they pass the threshold.
    pub(crate) fn settle(&mut self) -> io::Result<()> {
        if self.mem.len() <= self.threshold {
            return Ok(());
        }
        self.flush_to_file()
    }

    fn flush_to_file(&mut self) -> io::Result<()> {
        let file = match &mut self.file {
            Some(f) => f,
            None => self.file.insert(tempfile::tempfile()?),
        };
        file.write_all(&self.mem)?;
        self.on_disk += self.mem.len() as u64;
        // Keep the allocation: the next megabyte reuses it.
        self.mem.clear();
        Ok(())
    }

    pub fn finish(mut self) -> io::Result<RequestBody> {
        if self.file.is_none() {
            return Ok(RequestBody::Memory(self.mem));
        }
        if !self.mem.is_empty() {
            self.flush_to_file()?;
        }
        let len = self.on_disk;
        match self.file {
            Some(mut file) => {
                file.seek(SeekFrom::Start(0))?;
                Ok(RequestBody::File { file, len })
            }
            None => Ok(RequestBody::Memory(Vec::new())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_stays_in_memory() {
        let mut s = Spool::new(16);
        s.buffer().extend_from_slice(b"hello");
        s.settle().unwrap();
        assert!(matches!(s.finish().unwrap(), RequestBody::Memory(v) if v == b"hello"));
    }

    #[test]
    fn large_spills_and_reads_back_whole() {
        let mut s = Spool::new(16);
        let mut expect = Vec::new();
        for i in 0..50u8 {
            let piece = [i; 7];
            s.buffer().extend_from_slice(&piece);
            expect.extend_from_slice(&piece);
            s.settle().unwrap();
            assert!(s.buffer().len() <= 16 + 7);
        }
        assert_eq!(s.len(), 350);
        let body = s.finish().unwrap();
        assert!(matches!(body, RequestBody::File { len: 350, .. }));
        assert_eq!(body.into_vec().unwrap(), expect);
    }
}
