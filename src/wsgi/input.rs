//! `wsgi.input`: the request body, fully received before the app is
//! called, as a read-only file-like object (read, readline, readlines,
//! iteration). Small bodies are read from memory; spooled ones from their
//! temporary file through a buffer.

use std::fs::File;
use std::io::{BufRead, BufReader, Read};

use pyo3::exceptions::PyOSError;
use pyo3::prelude::*;
use pyo3::types::PyBytes;

use crate::serve::spool::RequestBody;

enum Source {
    /// A body that was small enough to stay in memory, as one bytes
    /// object: `read()` of all of it hands out that object, no copy.
    Memory {
        data: Py<PyBytes>,
        pos: usize,
    },
    File {
        reader: BufReader<File>,
        left: u64,
    },
}

// Not `unsendable`: an app may read its input from a thread of its own.
#[pyclass(module = "rwsgi_lite", name = "Input")]
pub(crate) struct WsgiInput {
    source: Source,
}

impl WsgiInput {
    /// The input for `body`. A body in memory is copied into a bytes
    /// object, and its buffer is left in `body` for the caller to reuse.
    pub fn new(py: Python<'_>, body: &mut RequestBody) -> Self {
        let source = match std::mem::take(body) {
            RequestBody::Memory(data) => {
                let source = Source::Memory {
                    data: PyBytes::new(py, &data).unbind(),
                    pos: 0,
                };
                *body = RequestBody::Memory(data);
                source
            }
            RequestBody::File { file, len } => Source::File {
                reader: BufReader::with_capacity(64 * 1024, file),
                left: len,
            },
        };
        WsgiInput { source }
    }

    fn at_end(&self, py: Python<'_>) -> bool {
        match &self.source {
            Source::Memory { data, pos } => *pos >= data.as_bytes(py).len(),
            Source::File { left, .. } => *left == 0,
        }
    }

    /// Up to `n` bytes.
    fn take<'py>(&mut self, py: Python<'py>, n: usize) -> PyResult<Bound<'py, PyBytes>> {
        match &mut self.source {
            Source::Memory { data, pos } => {
                let data = data.bind(py);
                let rest = data.as_bytes().get(*pos..).unwrap_or_default();
                if *pos == 0 && n >= rest.len() {
                    // All of it: the object itself (bytes are immutable).
                    *pos = rest.len();
                    return Ok(data.clone());
                }
                let n = n.min(rest.len());
                let bytes = PyBytes::new(py, &rest[..n]);
                *pos += n;
                Ok(bytes)
            }
            Source::File { reader, left } => {
                let n = (n as u64).min(*left) as usize;
                let mut buf = vec![0; n];
                reader.read_exact(&mut buf).map_err(io_error)?;
                *left -= n as u64;
                Ok(PyBytes::new(py, &buf))
            }
        }
    }

    /// Bytes up to and including the next LF, at most `limit`.
    fn line<'py>(&mut self, py: Python<'py>, limit: usize) -> PyResult<Bound<'py, PyBytes>> {
        match &mut self.source {
            Source::Memory { data, pos } => {
                let rest = data.as_bytes(py).get(*pos..).unwrap_or_default();
                let n = match memchr::memchr(b'\n', rest) {
                    Some(i) => i + 1,
                    None => rest.len(),
                }
                .min(limit);
                let bytes = PyBytes::new(py, &rest[..n]);
                *pos += n;
                Ok(bytes)
            }
            Source::File { reader, left } => {
                let max = (limit as u64).min(*left);
                let mut line = Vec::new();
                reader
                    .by_ref()
                    .take(max)
                    .read_until(b'\n', &mut line)
                    .map_err(io_error)?;
                *left -= line.len() as u64;
                Ok(PyBytes::new(py, &line))
            }
        }
    }
}

fn io_error(e: std::io::Error) -> PyErr {
    PyOSError::new_err(format!("reading the spooled request body: {e}"))
}

/// `None` or a negative size means "all".
fn limit(size: Option<isize>) -> usize {
    match size {
        Some(n) if n >= 0 => n as usize,
        _ => usize::MAX,
    }
}

#[pymethods]
impl WsgiInput {
    #[pyo3(signature = (size=None))]
    fn read<'py>(&mut self, py: Python<'py>, size: Option<isize>) -> PyResult<Bound<'py, PyBytes>> {
        self.take(py, limit(size))
    }

    #[pyo3(signature = (size=None))]
    fn readline<'py>(
        &mut self,
        py: Python<'py>,
        size: Option<isize>,
    ) -> PyResult<Bound<'py, PyBytes>> {
        self.line(py, limit(size))
    }

    /// `hint` stops after the lines read so far reach that many bytes.
    #[pyo3(signature = (hint=None))]
    fn readlines<'py>(
        &mut self,
        py: Python<'py>,
        hint: Option<isize>,
    ) -> PyResult<Vec<Bound<'py, PyBytes>>> {
        let hint = match hint {
            Some(n) if n > 0 => n as usize,
            _ => usize::MAX,
        };
        let mut lines = Vec::new();
        let mut total = 0;
        while !self.at_end(py) && total < hint {
            let line = self.line(py, usize::MAX)?;
            total += line.as_bytes().len();
            lines.push(line);
        }
        Ok(lines)
    }

    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __next__<'py>(&mut self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyBytes>>> {
        if self.at_end(py) {
            return Ok(None);
        }
        self.line(py, usize::MAX).map(Some)
    }

    fn readable(&self) -> bool {
        true
    }
}
