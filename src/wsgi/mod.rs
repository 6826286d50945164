//! The WSGI (PEP 3333) adapter: implements [`crate::serve::app::App`] for a Python
//! callable. No sockets here: a request comes in as spans plus a body, the
//! response goes out as events.

pub mod access;
pub mod environ;
pub mod errors;
pub mod file_wrapper;
pub mod input;
pub mod python;
pub mod response;
pub mod serving;
pub mod start_response;

use std::rc::Rc;

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyString};

use crate::http::forwarded::TrustedProxies;
use crate::serve::app::{App, AppFailure, Request};
use crate::serve::spool::RequestBody;
use access::{AccessLog, AccessRecord};
use environ::EnvironBuilder;
use response::WsgiResponse;
use start_response::Starters;

/// Request body buffers up to this size are kept for the next body.
const MAX_KEPT_BODY_BUFFER: usize = 256 * 1024;

/// A Python WSGI application, called inline on the server thread.
pub struct WsgiApp<'py> {
    py: Python<'py>,
    app: Bound<'py, PyAny>,
    environ: EnvironBuilder<'py>,
    starters: Rc<Starters<'py>>,
    /// The last in-memory request body's buffer (its bytes were copied
    /// into `wsgi.input`), for the next body.
    body_buffer: Vec<u8>,
    /// `None` unless `--access-logfile` is given.
    access: Option<Rc<AccessLog>>,
    /// The SystemExit or KeyboardInterrupt a Python signal handler raised
    /// to stop the server: an embedding caller re-raises it.
    signal_error: Option<PyErr>,
}

impl<'py> WsgiApp<'py> {
    pub fn new(py: Python<'py>, app: Bound<'py, PyAny>) -> PyResult<Self> {
        Ok(WsgiApp {
            py,
            app,
            environ: EnvironBuilder::new(py)?,
            starters: Rc::new(Starters::new()),
            body_buffer: Vec::new(),
            access: None,
            signal_error: None,
        })
    }

    /// What a Python signal handler raised to stop the server, if one did.
    pub fn take_signal_error(&mut self) -> Option<PyErr> {
        self.signal_error.take()
    }

    /// `wsgi.multiprocess`: true when workers serve the same app.
    pub(crate) fn set_multiprocess(&mut self, multiprocess: bool) -> PyResult<()> {
        self.environ.set_base("wsgi.multiprocess", multiprocess)
    }

    /// Logs every response to `log`.
    pub(crate) fn set_access_log(&mut self, log: AccessLog) {
        self.access = Some(Rc::new(log));
    }

    /// The peers whose X-Forwarded-For/-Proto are applied (default:
    /// localhost).
    pub(crate) fn set_forwarded_allow_ips(&mut self, trusted: TrustedProxies) {
        self.environ.set_trusted_proxies(trusted);
    }

    /// How many X-Forwarded-For entries back the client may be (default:
    /// one, the trusted peer's own).
    pub(crate) fn set_forwarded_hops(&mut self, hops: u8) {
        self.environ.set_forwarded_hops(hops);
    }

    /// Calls the app; every failure is logged here. The access record
    /// moves into the response, which writes its line when closed.
    fn respond(
        &self,
        environ: PyResult<Bound<'py, PyDict>>,
        record: &mut Option<AccessRecord>,
    ) -> Result<WsgiResponse<'py>, AppFailure> {
        let py = self.py;
        let environ = environ.map_err(|e| {
            log::error!(
                "cannot build the WSGI environ:\n{}",
                format_exception(py, &e)
            );
            AppFailure
        })?;
        let starter = self.starters.take(py).map_err(|e| {
            log::error!("{}", format_exception(py, &e));
            AppFailure
        })?;
        // On any failure below the starter goes back to the pool as it
        // is dropped.
        let result = self.app.call1((&environ, starter.call())).map_err(|e| {
            log::error!(
                "Error handling request {}:\n{}",
                environ::describe(&environ),
                format_exception(py, &e)
            );
            AppFailure
        })?;
        WsgiResponse::new(result, starter, environ, record.take())
    }
}

impl<'py> App for WsgiApp<'py> {
    type Response = WsgiResponse<'py>;

    fn call(&mut self, mut request: Request<'_>) -> Result<WsgiResponse<'py>, AppFailure> {
        let environ = self.environ.build(&mut request);
        if let RequestBody::Memory(buffer) = std::mem::take(&mut request.body) {
            // A huge one is not worth keeping around.
            if buffer.capacity() <= MAX_KEPT_BODY_BUFFER {
                self.body_buffer = buffer;
            }
        }
        let mut record = self
            .access
            .as_ref()
            .map(|log| access::begin(log, &request, self.environ.client_addr(request.peer)));
        let response = self.respond(environ, &mut record);
        // Still here: the app failed before a response object existed, and
        // the client gets the canned 500.
        if let Some(mut record) = record {
            record.internal_error();
            record.finish();
        }
        response
    }

    fn take_body_buffer(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.body_buffer)
    }

    fn idle<R: Send>(&mut self, wait: impl FnOnce() -> R + Send) -> R {
        if let Some(log) = &self.access {
            log.flush();
        }
        self.py.detach(wait)
    }

    fn after_wake(&mut self) -> bool {
        match crate::wsgi::python::run_signal_handlers(self.py) {
            Ok(()) => false,
            Err(stop) => {
                self.signal_error = Some(stop);
                true
            }
        }
    }
}

/// The full Python traceback of `err`, as `traceback.format_exception`
/// prints it.
pub fn format_exception(py: Python<'_>, err: &PyErr) -> String {
    let formatted = (|| -> PyResult<String> {
        let tb = py.import("traceback")?;
        let lines = tb.call_method1(
            "format_exception",
            (err.get_type(py), err.value(py), err.traceback(py)),
        )?;
        let joined = PyString::new(py, "").call_method1("join", (lines,))?;
        Ok(joined.to_string().trim_end().to_string())
    })();
    formatted.unwrap_or_else(|_| err.to_string())
}

/// Decodes bytes as latin-1 (every byte maps to one code point), as PEP
/// 3333 requires for environ values.
pub fn latin1<'py>(py: Python<'py>, bytes: &[u8]) -> PyResult<Bound<'py, PyString>> {
    // SAFETY: the pointer and length describe a live slice for the whole
    // call (CPython copies it); a NULL `errors` means "strict", which cannot
    // fail for latin-1; the result is a new reference (or NULL with an
    // exception set, turned into Err), and PyUnicode_DecodeLatin1 returns a
    // str, so the unchecked cast holds.
    unsafe {
        let ptr = pyo3::ffi::PyUnicode_DecodeLatin1(
            bytes.as_ptr().cast(),
            bytes.len() as pyo3::ffi::Py_ssize_t,
            std::ptr::null(),
        );
        Ok(Bound::from_owned_ptr_or_err(py, ptr)?.cast_into_unchecked())
    }
}

/// Encodes a str as latin-1 bytes; code points above U+00FF are an error,
/// as PEP 3333 requires for status and header strings.
pub(crate) fn latin1_bytes(s: &Bound<'_, PyString>, out: &mut Vec<u8>) -> PyResult<()> {
    // Nearly every status and header is ASCII, whose UTF-8 form CPython
    // hands out without copying.
    if let Ok(text) = s.to_str() {
        if text.is_ascii() {
            out.extend_from_slice(text.as_bytes());
            return Ok(());
        }
    }
    let text = s.to_cow()?;
    for ch in text.chars() {
        let c = ch as u32;
        if c > 0xFF {
            return Err(pyo3::exceptions::PyValueError::new_err(format!(
                "{:?} is not latin-1 encodable",
                &*text
            )));
        }
        out.push(c as u8);
    }
    Ok(())
}

/// An app's body chunk, held as the Python object itself (no copy).
pub struct PyChunk<'py>(pub Bound<'py, PyBytes>);

impl AsRef<[u8]> for PyChunk<'_> {
    fn as_ref(&self) -> &[u8] {
        self.0.as_bytes()
    }
}
