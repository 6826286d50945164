//! `wsgi.file_wrapper` (PEP 3333, "Optional Platform-Specific File
//! Handling"). An app returns `environ['wsgi.file_wrapper'](f, block_size)`
//! to let the server send a file its own way: when the response iterable
//! is exactly such a wrapper around a readable regular file, the body goes
//! out with sendfile(2) from the file's current position and never enters
//! Python. Otherwise (a BytesIO, a pipe, the wrapper inside another
//! iterable) it is an ordinary iterable reading `block_size` blocks.
//! Either way the iterable's `close()` closes the file-like object.

use std::fs::File;
use std::io::Seek;
use std::os::fd::{AsRawFd, FromRawFd, RawFd};

use pyo3::exceptions::PyValueError;
use pyo3::intern;
use pyo3::prelude::*;

use crate::serve::app::FileBody;

/// The block size PEP 3333's example and wsgiref use.
const DEFAULT_BLOCK_SIZE: usize = 8192;

/// `wsgi.file_wrapper` itself: calling the class wraps a file-like object.
#[pyclass(module = "rwsgi_lite", name = "FileWrapper", frozen)]
pub(crate) struct FileWrapper {
    /// Named as in wsgiref's wrapper, which apps sometimes inspect.
    #[pyo3(get)]
    filelike: Py<PyAny>,
    #[pyo3(get)]
    blksize: usize,
}

#[pymethods]
impl FileWrapper {
    #[new]
    #[pyo3(signature = (filelike, block_size = DEFAULT_BLOCK_SIZE))]
    fn new(filelike: Bound<'_, PyAny>, block_size: usize) -> PyResult<Self> {
        if block_size == 0 {
            // read(0) is b"": the body would silently be empty.
            return Err(PyValueError::new_err("block_size must be at least 1"));
        }
        Ok(FileWrapper {
            filelike: filelike.unbind(),
            blksize: block_size,
        })
    }

    fn __iter__(slf: Bound<'_, Self>) -> Bound<'_, Self> {
        slf
    }

    fn __next__<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyAny>>> {
        let data = self
            .filelike
            .bind(py)
            .call_method1(intern!(py, "read"), (self.blksize,))?;
        Ok(if data.is_truthy()? { Some(data) } else { None })
    }

    fn close(&self, py: Python<'_>) -> PyResult<()> {
        if let Some(close) = self.filelike.bind(py).getattr_opt(intern!(py, "close"))? {
            close.call0()?;
        }
        Ok(())
    }
}

/// A wrapped file the server can send itself.
pub(crate) struct FileSource {
    /// The server's duplicate of the app's descriptor.
    pub file: File,
    /// The file-like object's position: sending starts here.
    pub offset: u64,
    /// Bytes from `offset` to the end of the file when it was measured.
    pub available: u64,
}

impl FileSource {
    /// The body event for `len` bytes (the app's Content-Length, or all
    /// that is available).
    pub(crate) fn into_body(self, len: u64) -> FileBody {
        FileBody {
            file: self.file,
            offset: self.offset,
            len,
        }
    }
}

impl FileWrapper {
    /// The file behind the wrapper when the server can send it directly:
    /// `fileno()` names a regular file open for reading and its position is
    /// known (`tell()`, else the descriptor's offset). Anything else, an
    /// exception included, means "iterate instead"; that is what PEP 3333
    /// asks for objects without a usable file.
    pub(crate) fn regular_file(&self, py: Python<'_>) -> Option<FileSource> {
        let filelike = self.filelike.bind(py);
        let fileno = filelike.getattr_opt(intern!(py, "fileno")).ok()??;
        let fd: RawFd = fileno.call0().ok()?.extract().ok()?;
        // Our own descriptor: the app may close its file object (and so its
        // descriptor) before the last byte is sent.
        let file = dup(fd)?;
        let meta = file.metadata().ok()?;
        if !meta.file_type().is_file() || !readable(&file) {
            return None;
        }
        // A buffered Python file reads ahead: its tell() is where the app
        // is, the descriptor's offset is past that.
        let offset: u64 = match filelike.getattr_opt(intern!(py, "tell")).ok()? {
            Some(tell) => tell.call0().ok()?.extract().ok()?,
            None => (&file).stream_position().ok()?,
        };
        Some(FileSource {
            file,
            offset,
            available: meta.len().saturating_sub(offset),
        })
    }
}

/// A close-on-exec duplicate of `fd`, or None if it is not open.
fn dup(fd: RawFd) -> Option<File> {
    if fd < 0 {
        return None;
    }
    // SAFETY: F_DUPFD_CLOEXEC only reads its integer arguments; a number
    // that is not an open descriptor fails with EBADF and creates nothing.
    let new = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 0) };
    if new < 0 {
        return None;
    }
    // SAFETY: `new` is a descriptor fcntl just created for us; nothing else
    // owns it, so the File may close it.
    Some(unsafe { File::from_raw_fd(new) })
}

/// The descriptor was opened for reading (sendfile on a write-only file
/// would fail after the head is out; the iterating path reports it as an
/// error of the app instead).
fn readable(file: &File) -> bool {
    // SAFETY: F_GETFL only reads the status flags of a descriptor we own.
    let flags = unsafe { libc::fcntl(file.as_raw_fd(), libc::F_GETFL) };
    flags >= 0 && flags & libc::O_ACCMODE != libc::O_WRONLY
}
