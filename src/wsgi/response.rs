//! Drives what the app returned: emits the head once start_response has
//! been called and the first body bytes (or the end) are known, then the
//! body one item at a time, only when the connection asks (backpressure).
//! `close()` on the iterable is always called, exactly once. A
//! `wsgi.file_wrapper` around a regular file is the exception to item by
//! item: its file goes to the connection whole, as one `Event::File`.

use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyIterator, PyList, PyTuple};

use crate::serve::app::{AppFailure, Event, Response};
use crate::wsgi::access::AccessRecord;
use crate::wsgi::file_wrapper::{FileSource, FileWrapper};
use crate::wsgi::start_response::Starter;
use crate::wsgi::{environ, format_exception, PyChunk};

pub struct WsgiResponse<'py> {
    result: Bound<'py, PyAny>,
    /// Declared after `result`: an iterable (a generator) that refers to
    /// start_response is gone by the time the starter goes back, so the
    /// starter can be reused.
    start: Starter<'py>,
    /// Kept for error messages only.
    environ: Bound<'py, PyDict>,
    /// The whole body when the app returned a one-item list (the common
    /// case): no iterator is needed.
    single: Option<Bound<'py, PyAny>>,
    /// The size of `single` when it is bytes.
    single_len: Option<u64>,
    iter: Option<Bound<'py, PyIterator>>,
    /// A body item pulled before the head went out.
    pending: Option<Bound<'py, PyBytes>>,
    /// The app returned a file wrapper the server sends itself.
    file: Option<FileSource>,
    /// Bytes of `file` to send: the app's Content-Length, else the rest of
    /// the file (set with the head).
    file_len: u64,
    head_sent: bool,
    exhausted: bool,
    closed: bool,
    /// `next` reported a failure (before the head: the client got a 500).
    failed: bool,
    /// The access-log line, written when the response is closed.
    access: Option<AccessRecord>,
}

impl<'py> WsgiResponse<'py> {
    pub fn new(
        result: Bound<'py, PyAny>,
        start: Starter<'py>,
        environ: Bound<'py, PyDict>,
        access: Option<AccessRecord>,
    ) -> Result<Self, AppFailure> {
        let mut response = WsgiResponse {
            result,
            start,
            environ,
            single: None,
            single_len: None,
            iter: None,
            pending: None,
            file: None,
            file_len: 0,
            head_sent: false,
            exhausted: false,
            closed: false,
            failed: false,
            access,
        };
        if let Some(item) = one_item(&response.result) {
            response.single_len = item
                .cast::<PyBytes>()
                .ok()
                .map(|b| b.as_bytes().len() as u64);
            response.single = Some(item);
            return Ok(response);
        }
        // Exactly our wrapper: an iterable the app built around it may
        // change or add bytes, so it is iterated like any other.
        if let Ok(wrapper) = response.result.cast_exact::<FileWrapper>() {
            if let Some(source) = wrapper.get().regular_file(wrapper.py()) {
                response.file = Some(source);
                return Ok(response);
            }
        }
        match response.result.try_iter() {
            Ok(iter) => response.iter = Some(iter),
            Err(e) => {
                response.log_error("the application returned a non-iterable", &e);
                response.failed = true;
                response.close();
                return Err(AppFailure);
            }
        }
        Ok(response)
    }

    fn log_error(&self, what: &str, err: &PyErr) {
        let py = self.result.py();
        log::error!(
            "{what} ({}):\n{}",
            environ::describe(&self.environ),
            format_exception(py, err)
        );
    }

    fn log_protocol(&self, what: &str) {
        log::error!("{what} ({})", environ::describe(&self.environ));
    }

    /// Hands the head to the connection, once.
    fn take_head(&mut self) -> Option<Event<PyChunk<'py>>> {
        let mut start = self.start.borrow_mut();
        let mut head = start.head.take()?;
        start.head_sent = true;
        self.head_sent = true;
        if let Some(source) = &self.file {
            self.file_len = head.content_length.unwrap_or(source.available);
            // Without a Content-Length the file's size frames the body,
            // unless write() data comes first (its size is not known yet).
            if head.content_length.is_none() && start.writes.is_empty() {
                head.body_length = Some(source.available);
            }
        }
        // A one-item list or tuple of bytes is the whole body: say its
        // length (as waitress does) rather than chunk it. PEP 3333 allows
        // the server to add Content-Length when it knows the length.
        if head.content_length.is_none() && start.writes.is_empty() {
            head.body_length = head.body_length.or(self.single_len);
        }
        if let Some(record) = &mut self.access {
            record.head(&head);
        }
        Some(Event::Head(head))
    }

    /// The head if start_response was called, else the app's error.
    fn head_or_fail(&mut self) -> Result<Event<PyChunk<'py>>, AppFailure> {
        match self.take_head() {
            Some(head) => Ok(head),
            None => {
                self.log_protocol("the application returned without calling start_response");
                Err(self.fail())
            }
        }
    }

    fn data(&mut self, bytes: Bound<'py, PyBytes>) -> Event<PyChunk<'py>> {
        if let Some(record) = &mut self.access {
            record.body(bytes.as_bytes().len() as u64);
        }
        Event::Data(PyChunk(bytes))
    }

    fn fail(&mut self) -> AppFailure {
        self.failed = true;
        AppFailure
    }

    /// Completes the access-log line once the response is over.
    fn finish_access(&mut self) {
        let Some(mut record) = self.access.take() else {
            return;
        };
        if !self.head_sent {
            if self.failed {
                record.internal_error();
            } else if let Some(status) = self
                .start
                .try_borrow()
                .ok()
                .and_then(|s| s.head.as_ref().map(|h| h.status))
            {
                record.unsent_status(status);
            }
        }
        record.finish();
    }

    fn next_item(&mut self) -> Option<PyResult<Bound<'py, PyAny>>> {
        if let Some(item) = self.single.take() {
            self.exhausted = true;
            return Some(Ok(item));
        }
        if self.exhausted {
            return None;
        }
        let next = self.iter.as_mut()?.next();
        if next.is_none() {
            self.exhausted = true;
        }
        next
    }
}

impl<'py> Response for WsgiResponse<'py> {
    type Chunk = PyChunk<'py>;

    fn next(&mut self) -> Result<Event<PyChunk<'py>>, AppFailure> {
        loop {
            // Data from write() goes first: it was produced before the
            // iterable's items.
            let written = self.start.borrow_mut().writes.pop_front();
            if let Some(data) = written {
                let data = data.into_bound(self.result.py());
                if !self.head_sent {
                    self.start.borrow_mut().writes.push_front(data.unbind());
                    return match self.take_head() {
                        Some(head) => Ok(head),
                        None => Err(self.fail()),
                    };
                }
                return Ok(self.data(data));
            }
            if let Some(item) = self.pending.take() {
                if !self.head_sent {
                    self.pending = Some(item);
                    return match self.take_head() {
                        Some(head) => Ok(head),
                        None => {
                            self.log_protocol(
                                "the application returned body data before calling start_response",
                            );
                            Err(self.fail())
                        }
                    };
                }
                return Ok(self.data(item));
            }
            if self.file.is_some() {
                if !self.head_sent {
                    return self.head_or_fail();
                }
                self.exhausted = true;
                if let Some(source) = self.file.take() {
                    if self.file_len > 0 {
                        if let Some(record) = &mut self.access {
                            record.body(self.file_len);
                        }
                        return Ok(Event::File(source.into_body(self.file_len)));
                    }
                }
            }
            match self.next_item() {
                None => {
                    if !self.head_sent {
                        return self.head_or_fail();
                    }
                    return Ok(Event::End);
                }
                Some(Err(e)) => {
                    self.log_error("Error handling request", &e);
                    return Err(self.fail());
                }
                Some(Ok(item)) => {
                    let bytes = match item.cast_into::<PyBytes>() {
                        Ok(b) => b,
                        Err(e) => {
                            let e: PyErr = e.into();
                            self.log_error("the application yielded a non-bytes item", &e);
                            return Err(self.fail());
                        }
                    };
                    // Empty items carry nothing; they must not end a chunked
                    // body early, and they do not count as "body started".
                    if !bytes.as_bytes().is_empty() {
                        self.pending = Some(bytes);
                    }
                }
            }
        }
    }

    fn recycle_head(&mut self, head: crate::serve::app::ResponseHead) {
        if let Ok(mut start) = self.start.try_borrow_mut() {
            start.recycle_head(head);
        }
    }

    fn ready(&self) -> bool {
        self.pending.is_some()
            || self.single.is_some()
            || self.file.is_some()
            || self.exhausted
            || self.start.borrow().writes.front().is_some()
    }

    fn close(&mut self) {
        if self.closed {
            return;
        }
        self.closed = true;
        self.iter = None;
        self.single = None;
        self.pending = None;
        self.file = None;
        self.close_iterable();
        self.finish_access();
    }
}

/// The only item of an exact list or tuple of length one: the whole body,
/// known without iterating.
fn one_item<'py>(result: &Bound<'py, PyAny>) -> Option<Bound<'py, PyAny>> {
    if let Ok(list) = result.cast_exact::<PyList>() {
        return (list.len() == 1).then(|| list.get_item(0).ok()).flatten();
    }
    let tuple = result.cast_exact::<PyTuple>().ok()?;
    (tuple.len() == 1).then(|| tuple.get_item(0).ok()).flatten()
}

impl WsgiResponse<'_> {
    fn close_iterable(&self) {
        // Plain lists and tuples have no close(); skip the failing lookup.
        if self.result.is_exact_instance_of::<PyList>()
            || self.result.is_exact_instance_of::<PyTuple>()
        {
            return;
        }
        let py = self.result.py();
        match self.result.getattr_opt(intern!(py, "close")) {
            Ok(Some(close)) => {
                if let Err(e) = close.call0() {
                    self.log_error("the response iterable's close() raised", &e);
                }
            }
            Ok(None) => {}
            Err(e) => self.log_error("cannot look up close() on the response iterable", &e),
        }
    }
}

impl Drop for WsgiResponse<'_> {
    fn drop(&mut self) {
        self.close();
    }
}
