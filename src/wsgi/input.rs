//! `wsgi.input`: the request body, fully read before the app is called, as
//! a read-only file-like object (read, readline, readlines, iteration).

use pyo3::prelude::*;
use pyo3::types::PyBytes;

#[pyclass(module = "rwsgi_lite", name = "Input")]
pub struct WsgiInput {
    data: Vec<u8>,
    pos: usize,
}

impl WsgiInput {
    pub fn new(data: Vec<u8>) -> Self {
        WsgiInput { data, pos: 0 }
    }

    fn rest(&self) -> &[u8] {
        self.data.get(self.pos..).unwrap_or_default()
    }

    /// Bytes up to and including the next LF, at most `limit`.
    fn line_len(&self, limit: usize) -> usize {
        let rest = self.rest();
        let n = match memchr::memchr(b'\n', rest) {
            Some(i) => i + 1,
            None => rest.len(),
        };
        n.min(limit)
    }

    fn take<'py>(&mut self, py: Python<'py>, n: usize) -> Bound<'py, PyBytes> {
        let rest = self.rest();
        let n = n.min(rest.len());
        let bytes = PyBytes::new(py, &rest[..n]);
        self.pos += n;
        bytes
    }
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
    fn read<'py>(&mut self, py: Python<'py>, size: Option<isize>) -> Bound<'py, PyBytes> {
        self.take(py, limit(size))
    }

    #[pyo3(signature = (size=None))]
    fn readline<'py>(&mut self, py: Python<'py>, size: Option<isize>) -> Bound<'py, PyBytes> {
        let n = self.line_len(limit(size));
        self.take(py, n)
    }

    /// `hint` stops after the lines read so far reach that many bytes.
    #[pyo3(signature = (hint=None))]
    fn readlines<'py>(&mut self, py: Python<'py>, hint: Option<isize>) -> Vec<Bound<'py, PyBytes>> {
        let hint = match hint {
            Some(n) if n > 0 => n as usize,
            _ => usize::MAX,
        };
        let mut lines = Vec::new();
        let mut total = 0;
        while !self.rest().is_empty() && total < hint {
            let n = self.line_len(usize::MAX);
            total += n;
            lines.push(self.take(py, n));
        }
        lines
    }

    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __next__<'py>(&mut self, py: Python<'py>) -> Option<Bound<'py, PyBytes>> {
        if self.rest().is_empty() {
            return None;
        }
        let n = self.line_len(usize::MAX);
        Some(self.take(py, n))
    }

    fn readable(&self) -> bool {
        true
    }
}
