//! A scripted socket for driving a `Conn` without the kernel: reads come
//! from a list of steps, writes land in a `Vec` and can be made short, to
//! block or to fail.

use std::collections::VecDeque;
use std::io::{self, ErrorKind, IoSlice, Read, Write};

use crate::serve::conn::Stream;

/// One scripted read result.
#[derive(Debug, Clone)]
pub enum In {
    /// Bytes handed out (possibly over several reads if the buffer is small).
    Data(Vec<u8>),
    /// One read returns WouldBlock.
    WouldBlock,
    /// Every read from here on returns Ok(0).
    Eof,
    /// One read fails with this kind.
    Error(ErrorKind),
}

/// `In::Data` of a copy of `bytes`.
pub fn data(bytes: &[u8]) -> In {
    In::Data(bytes.to_vec())
}

/// Reads play `input` step by step (then WouldBlock for ever). A write call
/// takes what every limit set below allows, across its slices.
pub struct MockStream {
    pub input: VecDeque<In>,
    /// Everything accepted by write calls, in order.
    pub written: Vec<u8>,
    /// Write calls that accepted at least one byte.
    pub write_calls: usize,
    /// Most bytes accepted by one write call (across all slices).
    pub per_call: usize,
    /// Allowances of successive write calls, used in turn and cycled
    /// (0: WouldBlock); empty: no such limit.
    pub schedule: Vec<usize>,
    schedule_at: usize,
    /// WouldBlock once this many bytes were written in total, until cleared.
    pub block_after: Option<usize>,
    /// Fail with this error once this many bytes were written in total.
    pub fail_after: Option<(usize, ErrorKind)>,
    /// `shutdown_write` was called; a write after it panics.
    pub shutdown: bool,
}

impl MockStream {
    pub fn new(input: Vec<In>) -> Self {
        MockStream {
            input: input.into(),
            written: Vec::new(),
            write_calls: 0,
            per_call: usize::MAX,
            schedule: Vec::new(),
            schedule_at: 0,
            block_after: None,
            fail_after: None,
            shutdown: false,
        }
    }

    pub fn per_call(mut self, n: usize) -> Self {
        self.per_call = n;
        self
    }

    /// WouldBlock on every other write call (the second, fourth, ...).
    pub fn alternate(self) -> Self {
        self.schedule(vec![usize::MAX, 0])
    }

    pub fn schedule(mut self, allowances: Vec<usize>) -> Self {
        self.schedule = allowances;
        self
    }

    pub fn block_after(mut self, n: usize) -> Self {
        self.block_after = Some(n);
        self
    }

    pub fn fail_after(mut self, n: usize, kind: ErrorKind) -> Self {
        self.fail_after = Some((n, kind));
        self
    }

    /// Steps and bytes not yet read: part of the progress signature.
    pub fn input_left(&self) -> (usize, usize) {
        let bytes = self
            .input
            .iter()
            .map(|s| match s {
                In::Data(d) => d.len(),
                _ => 0,
            })
            .sum();
        (self.input.len(), bytes)
    }

    /// Every scripted step was read (an `Eof` stays for good).
    pub fn input_done(&self) -> bool {
        self.input.iter().all(|s| matches!(s, In::Eof))
    }

    /// The next allowance of the schedule, or no limit.
    fn scheduled(&mut self) -> usize {
        if self.schedule.is_empty() {
            return usize::MAX;
        }
        let n = self.schedule[self.schedule_at % self.schedule.len()];
        self.schedule_at += 1;
        n
    }
}

impl Read for MockStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self.input.front_mut() {
            None => Err(ErrorKind::WouldBlock.into()),
            Some(In::Eof) => Ok(0),
            Some(In::Data(d)) => {
                assert!(!d.is_empty(), "empty Data step would read as EOF");
                assert!(!buf.is_empty(), "read with an empty buffer");
                let n = d.len().min(buf.len());
                buf[..n].copy_from_slice(&d[..n]);
                d.drain(..n);
                if d.is_empty() {
                    self.input.pop_front();
                }
                Ok(n)
            }
            Some(In::WouldBlock) => {
                self.input.pop_front();
                Err(ErrorKind::WouldBlock.into())
            }
            Some(In::Error(kind)) => {
                let kind = *kind;
                self.input.pop_front();
                Err(kind.into())
            }
        }
    }
}

impl Write for MockStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.write_vectored(&[IoSlice::new(buf)])
    }

    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        assert!(!self.shutdown, "write after shutdown_write");
        let total: usize = bufs.iter().map(|b| b.len()).sum();
        if total == 0 {
            return Ok(0);
        }
        let mut allowed = self.per_call;
        if let Some((at, kind)) = self.fail_after {
            if self.written.len() >= at {
                return Err(kind.into());
            }
            allowed = allowed.min(at - self.written.len());
        }
        if let Some(at) = self.block_after {
            if self.written.len() >= at {
                return Err(ErrorKind::WouldBlock.into());
            }
            allowed = allowed.min(at - self.written.len());
        }
        allowed = allowed.min(self.scheduled());
        if allowed == 0 {
            return Err(ErrorKind::WouldBlock.into());
        }
        let mut n = 0;
        for b in bufs {
            if n == allowed {
                break;
            }
            let take = b.len().min(allowed - n);
            self.written.extend_from_slice(&b[..take]);
            n += take;
        }
        self.write_calls += 1;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Stream for MockStream {
    fn shutdown_write(&mut self) -> io::Result<()> {
        self.shutdown = true;
        Ok(())
    }
}
