//! The `start_response` callable and the `write()` callable it returns.
//!
//! Validates what the app sends before a byte of it can reach the wire: the
//! status must be `NNN reason`, header names tokens, values free of CR, LF
//! and other controls, no hop-by-hop fields (they would corrupt our
//! framing). A violation raises inside the app, which then ends in a 500.
//!
//! Both callables are bound methods of one [`StartResponse`], made once and
//! reused for later requests while nobody else holds them ([`Starters`],
//! which lends them out as [`Starter`]s):
//! creating them per request was a tenth of a small request's cost. Header
//! tuples the app passes again (module constants, tuples of literals) are
//! validated once and remembered ([`HeaderCache`]).

use std::cell::RefCell;
use std::collections::VecDeque;
use std::rc::Rc;
use std::sync::{Arc, Mutex, TryLockError};

use pyo3::exceptions::{PyAssertionError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList, PyString, PyTuple};

use crate::http::chars::{is_tchar, trim_ows};
use crate::serve::app::ResponseHead;

// Not `unsendable`: an app may call start_response and write() from a
// thread of its own (while the server's thread waits for it).
#[pyclass(module = "rwsgi_lite", name = "StartResponse")]
pub struct StartResponse {
    /// Set by start_response, taken when the head is sent.
    pub head: Option<ResponseHead>,
    /// The head has been handed to the connection: exc_info must re-raise.
    pub head_sent: bool,
    /// Data passed to write(), waiting to be sent in order.
    pub writes: VecDeque<Py<PyBytes>>,
    /// The bound `write` method start_response returns, made once. It
    /// refers back to this object; [`Starters::give_back`] breaks that
    /// cycle when the object is not reused.
    write: Option<Py<PyAny>>,
    headers: Arc<Mutex<HeaderCache>>,
    /// The buffers of the last head written, for the next one.
    spare_head: ResponseHead,
}

#[pymethods]
impl StartResponse {
    #[pyo3(signature = (status, headers, exc_info=None))]
    fn start_response<'py>(
        slf: &Bound<'py, Self>,
        status: &Bound<'py, PyAny>,
        headers: &Bound<'py, PyAny>,
        exc_info: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let exc_info = exc_info.filter(|e| !e.is_none());
        let mut this = slf.borrow_mut();
        match exc_info {
            Some(info) if this.head_sent => return Err(reraise(info)),
            Some(_) => {}
            None if this.head.is_some() => {
                return Err(PyAssertionError::new_err(
                    "start_response() called again without exc_info",
                ))
            }
            None => {}
        }
        let spare = std::mem::take(&mut this.spare_head);
        let head = {
            // Validation runs no Python code, except that an error message
            // formats the app's objects, which can let another thread in.
            // The borrow then makes a concurrent call on this object fail
            // cleanly; the cache lock is normally uncontended (the GIL is
            // held throughout), but must never be waited for holding the
            // GIL: validate without the cache instead.
            let mut uncached = HeaderCache::default();
            let mut guard = match this.headers.try_lock() {
                Ok(guard) => Some(guard),
                Err(TryLockError::Poisoned(poisoned)) => Some(poisoned.into_inner()),
                Err(TryLockError::WouldBlock) => None,
            };
            let cache = match guard.as_deref_mut() {
                Some(cache) => cache,
                None => &mut uncached,
            };
            build_head(status, headers, cache, spare)?
        };
        this.head = Some(head);
        match &this.write {
            Some(write) => Ok(write.bind(slf.py()).clone()),
            None => {
                drop(this);
                slf.getattr(pyo3::intern!(slf.py(), "write"))
            }
        }
    }

    fn write(&mut self, data: &Bound<'_, PyAny>) -> PyResult<()> {
        if self.head.is_none() && !self.head_sent {
            return Err(PyAssertionError::new_err(
                "write() called before start_response()",
            ));
        }
        let bytes = data.cast::<PyBytes>().map_err(|_| {
            PyTypeError::new_err(format!(
                "write() argument must be bytes, not {}",
                type_name(data)
            ))
        })?;
        self.writes.push_back(bytes.clone().unbind());
        Ok(())
    }
}

impl StartResponse {
    /// Keeps a written head's buffers for the next head.
    pub(crate) fn recycle_head(&mut self, head: ResponseHead) {
        // A head of many kilobytes is rare; do not keep its buffer.
        if head.header_lines.capacity() <= MAX_RECYCLED_HEAD {
            self.spare_head = head;
        }
    }
}

const MAX_RECYCLED_HEAD: usize = 4096;

/// A [`StartResponse`] and the `start_response` callable handed to the
/// app, on loan from [`Starters`]: dropping it gives it back, whatever way
/// the request ended (kept for reuse, or let go with its `write` cycle
/// broken). Derefs to the object.
pub struct Starter<'py> {
    obj: Bound<'py, StartResponse>,
    call: Bound<'py, PyAny>,
    pool: Rc<Starters<'py>>,
}

impl<'py> Starter<'py> {
    /// The `start_response` callable for the app.
    pub fn call(&self) -> &Bound<'py, PyAny> {
        &self.call
    }
}

impl<'py> std::ops::Deref for Starter<'py> {
    type Target = Bound<'py, StartResponse>;

    fn deref(&self) -> &Self::Target {
        &self.obj
    }
}

impl Drop for Starter<'_> {
    fn drop(&mut self) {
        self.pool.give_back(&self.obj, &self.call);
    }
}

/// A pooled object and its `start_response` callable.
struct Pair<'py> {
    obj: Bound<'py, StartResponse>,
    call: Bound<'py, PyAny>,
}

/// Starters no longer in use, for the next requests, and the header cache
/// they share.
pub(crate) struct Starters<'py> {
    spare: RefCell<Vec<Pair<'py>>>,
    headers: Arc<Mutex<HeaderCache>>,
}

/// Starters kept for reuse: one per response in progress at once is
/// enough (usually one; streamed responses overlap).
const MAX_SPARE_STARTERS: usize = 8;

impl<'py> Starters<'py> {
    pub fn new() -> Self {
        Starters {
            spare: RefCell::new(Vec::new()),
            headers: Arc::new(Mutex::new(HeaderCache::default())),
        }
    }

    /// A starter in its initial state: a spare one, or a new one.
    pub fn take(self: &Rc<Self>, py: Python<'py>) -> PyResult<Starter<'py>> {
        let pair = self.spare.borrow_mut().pop();
        let Pair { obj, call } = match pair {
            Some(pair) => pair,
            None => self.make(py)?,
        };
        Ok(Starter {
            obj,
            call,
            pool: Rc::clone(self),
        })
    }

    fn make(&self, py: Python<'py>) -> PyResult<Pair<'py>> {
        let obj = Bound::new(
            py,
            StartResponse {
                head: None,
                head_sent: false,
                writes: VecDeque::new(),
                write: None,
                headers: Arc::clone(&self.headers),
                spare_head: ResponseHead::default(),
            },
        )?;
        let call = obj.getattr(pyo3::intern!(py, "start_response"))?;
        // Last: from here on the object and its `write` refer to each
        // other, and only `give_back` undoes that.
        let write = obj.getattr(pyo3::intern!(py, "write"))?;
        obj.borrow_mut().write = Some(write.unbind());
        Ok(Pair { obj, call })
    }

    /// A starter coming back: kept for reuse if only the starter holds it
    /// (the app kept neither callable), else let go.
    fn give_back(&self, obj: &Bound<'py, StartResponse>, call: &Bound<'py, PyAny>) {
        // The starter's references and the two bound methods' references
        // to their object, and nothing else (counted before borrowing: a
        // borrow holds a reference too).
        let only_ours = refcnt(obj) == 3 && refcnt(call) == 1;
        let Ok(mut state) = obj.try_borrow_mut() else {
            return;
        };
        let unshared = only_ours
            && state
                .write
                .as_ref()
                .is_some_and(|w| refcnt(w.bind(obj.py())) == 1);
        let mut spare = self.spare.borrow_mut();
        if unshared && spare.len() < MAX_SPARE_STARTERS {
            state.head = None;
            state.head_sent = false;
            state.writes.clear();
            drop(state);
            spare.push(Pair {
                obj: obj.clone(),
                call: call.clone(),
            });
        } else {
            // Whoever still holds a callable keeps the object alive; the
            // object must not keep its `write` alive in return (a cycle
            // the garbage collector cannot see into).
            state.write = None;
        }
    }
}

impl Drop for Starters<'_> {
    fn drop(&mut self) {
        // Break each pooled object's cycle with its `write`, so the pair
        // is freed (the server is stopping; Python is still running).
        for pair in self.spare.get_mut().drain(..) {
            if let Ok(mut state) = pair.obj.try_borrow_mut() {
                state.write = None;
            }
        }
    }
}

/// How many references `obj` has (pyo3 deprecated its own accessor, which
/// free-threaded builds cannot answer exactly; this build has a GIL).
fn refcnt<T>(obj: &Bound<'_, T>) -> isize {
    // SAFETY: `obj` is a live object (the Bound holds a reference) and the
    // Bound proves the GIL is held, so reading its count is a plain load.
    unsafe { pyo3::ffi::Py_REFCNT(obj.as_ptr()) }
}

impl Default for Starters<'_> {
    fn default() -> Self {
        Self::new()
    }
}

/// Re-raises the exception of an `exc_info` triple with its traceback.
fn reraise(info: &Bound<'_, PyAny>) -> PyErr {
    let value = match info.get_item(1) {
        Ok(v) => v,
        Err(e) => return e,
    };
    if let Ok(tb) = info.get_item(2) {
        if let Ok(with_tb) = value.call_method1("with_traceback", (tb,)) {
            return PyErr::from_value(with_tb);
        }
    }
    PyErr::from_value(value)
}

fn type_name(obj: &Bound<'_, PyAny>) -> String {
    obj.get_type()
        .name()
        .map(|n| n.to_string())
        .unwrap_or_else(|_| "?".into())
}

/// Fields that describe one hop, not the message: the app must not send
/// them (PEP 3333), and several would contradict the framing we choose.
const HOP_BY_HOP: &[&[u8]] = &[
    b"keep-alive",
    b"proxy-authenticate",
    b"proxy-authorization",
    b"proxy-connection",
    b"te",
    b"trailer",
    b"trailers",
    b"transfer-encoding",
    b"upgrade",
];

pub(crate) fn build_head(
    status: &Bound<'_, PyAny>,
    headers: &Bound<'_, PyAny>,
    cache: &mut HeaderCache,
    spare: ResponseHead,
) -> PyResult<ResponseHead> {
    let status = status.cast::<PyString>().map_err(|_| {
        PyTypeError::new_err(format!("status must be str, not {}", type_name(status)))
    })?;
    // A recycled head's buffers when there is one: no allocation.
    let (mut status_line, mut header_lines) = (spare.status_line, spare.header_lines);
    status_line.clear();
    header_lines.clear();
    status_line.reserve(32);
    header_lines.reserve(256);
    let mut head = ResponseHead {
        status_line,
        header_lines,
        ..ResponseHead::default()
    };
    crate::wsgi::latin1_bytes(status, &mut head.status_line)?;
    head.status = parse_status(&head.status_line).ok_or_else(|| {
        PyValueError::new_err(format!(
            "invalid status {:?}: expected a 3-digit code >= 200, a space and a reason",
            String::from_utf8_lossy(&head.status_line)
        ))
    })?;

    if let Ok(list) = headers.cast::<PyList>() {
        for item in list.iter() {
            add_header(&mut head, &item, cache)?;
        }
    } else if let Ok(tuple) = headers.cast::<PyTuple>() {
        for item in tuple.iter() {
            add_header(&mut head, &item, cache)?;
        }
    } else {
        return Err(PyTypeError::new_err(format!(
            "headers must be a list of (name, value) tuples, not {}",
            type_name(headers)
        )));
    }
    Ok(head)
}

/// Appends one `(name, value)` pair's line to the head, from the cache
/// when the app passed this very tuple before.
fn add_header(
    head: &mut ResponseHead,
    item: &Bound<'_, PyAny>,
    cache: &mut HeaderCache,
) -> PyResult<()> {
    let pair = item.cast::<PyTuple>().map_err(|_| {
        PyTypeError::new_err(format!(
            "each header must be a (name, value) tuple, not {}",
            type_name(item)
        ))
    })?;
    if let Some(known) = cache.get(pair) {
        head.header_lines.extend_from_slice(&known.line);
        return apply(head, known.effect);
    }
    let line_start = head.header_lines.len();
    let effect = check_header(&mut head.header_lines, pair)?;
    apply(head, effect)?;
    cache.insert(pair, &head.header_lines[line_start..], effect);
    Ok(())
}

/// Validates one `(name, value)` pair and appends `Name: value\r\n` (or
/// nothing, for `Connection: close`, which the server writes itself).
fn check_header(lines: &mut Vec<u8>, pair: &Bound<'_, PyTuple>) -> PyResult<Effect> {
    if pair.len() != 2 {
        return Err(PyValueError::new_err(format!(
            "each header must be a (name, value) tuple, got {} items",
            pair.len()
        )));
    }
    let (n, v) = (pair.get_item(0)?, pair.get_item(1)?);
    let n = n
        .cast::<PyString>()
        .map_err(|_| PyTypeError::new_err("header name must be str"))?;
    let v = v
        .cast::<PyString>()
        .map_err(|_| PyTypeError::new_err(format!("value of header {n} must be str")))?;
    let line_start = lines.len();
    crate::wsgi::latin1_bytes(n, lines)?;
    let name_end = lines.len();
    let name = &lines[line_start..name_end];
    if name.is_empty() || !name.iter().all(|&b| is_tchar(b)) {
        return Err(PyValueError::new_err(format!("invalid header name {n:?}")));
    }
    lines.extend_from_slice(b": ");
    let value_start = lines.len();
    crate::wsgi::latin1_bytes(v, lines)?;
    let value = &lines[value_start..];
    if value.iter().any(|&b| (b < 0x20 && b != b'\t') || b == 0x7F) {
        return Err(PyValueError::new_err(format!(
            "header {n} has a control character (CR, LF, NUL...) in its value"
        )));
    }
    // Only a few names matter to the server; their lengths sort most
    // headers out before any comparison.
    let name = &lines[line_start..name_end];
    let value = trim_ows(&lines[value_start..]);
    let effect = match name.len() {
        4 if name.eq_ignore_ascii_case(b"date") => Effect::Date,
        6 if name.eq_ignore_ascii_case(b"server") => Effect::Server,
        10 if name.eq_ignore_ascii_case(b"connection") => {
            if !value.eq_ignore_ascii_case(b"close") {
                return Err(PyValueError::new_err(format!(
                    "hop-by-hop header Connection: {} is not allowed from a WSGI app",
                    String::from_utf8_lossy(value)
                )));
            }
            // We write our own Connection header; drop the app's.
            lines.truncate(line_start);
            return Ok(Effect::Close);
        }
        14 if name.eq_ignore_ascii_case(b"content-length") => {
            let len = parse_length(value).ok_or_else(|| {
                PyValueError::new_err(format!(
                    "invalid Content-Length {:?}",
                    String::from_utf8_lossy(value)
                ))
            })?;
            Effect::ContentLength(len)
        }
        _ if HOP_BY_HOP.iter().any(|h| name.eq_ignore_ascii_case(h)) => {
            return Err(PyValueError::new_err(format!(
                "hop-by-hop header {n} is not allowed from a WSGI app"
            )));
        }
        _ => Effect::None,
    };
    lines.extend_from_slice(b"\r\n");
    Ok(effect)
}

/// What a valid header means to the server besides its line.
#[derive(Clone, Copy)]
enum Effect {
    None,
    Date,
    Server,
    ContentLength(u64),
    /// `Connection: close`: no line, the connection closes after.
    Close,
}

fn apply(head: &mut ResponseHead, effect: Effect) -> PyResult<()> {
    match effect {
        Effect::None => {}
        Effect::Date => head.has_date = true,
        Effect::Server => head.has_server = true,
        Effect::ContentLength(len) => {
            if head.content_length.is_some_and(|old| old != len) {
                return Err(PyValueError::new_err("conflicting Content-Length headers"));
            }
            head.content_length = Some(len);
        }
        Effect::Close => head.close = true,
    }
    Ok(())
}

/// Header tuples validated before, by identity. Sound because an entry
/// holds its tuple: the object cannot be freed (so its address cannot
/// come back as another object), and an exact tuple of exact strs cannot
/// change. Tuples built per response are not kept (see `insert`); the
/// cache starts over when full, so the tuples an app does reuse get back
/// in.
#[derive(Default)]
pub(crate) struct HeaderCache {
    entries: Vec<CachedHeader>,
}

struct CachedHeader {
    pair: Py<PyTuple>,
    line: Box<[u8]>,
    effect: Effect,
}

const MAX_CACHED_HEADERS: usize = 32;

impl HeaderCache {
    fn get(&self, pair: &Bound<'_, PyTuple>) -> Option<&CachedHeader> {
        self.entries
            .iter()
            .find(|e| e.pair.as_ptr() == pair.as_ptr())
    }

    fn insert(&mut self, pair: &Bound<'_, PyTuple>, line: &[u8], effect: Effect) {
        // Held by the headers list alone (and by `pair`, our reference
        // while validating), the tuple was made for this response
        // (`("Content-Length", str(n))`) and will not come back; constants
        // and module-level lists hold theirs.
        if refcnt(pair) < 3 {
            return;
        }
        let exact = pair.is_exact_instance_of::<PyTuple>()
            && pair
                .iter()
                .all(|item| item.is_exact_instance_of::<PyString>());
        if !exact {
            return;
        }
        if self.entries.len() >= MAX_CACHED_HEADERS {
            self.entries.clear();
        }
        self.entries.push(CachedHeader {
            pair: pair.clone().unbind(),
            line: line.into(),
            effect,
        });
    }
}

/// `NNN reason`: three digits (200-999; 1xx are not the app's to send), a
/// space, and a reason without control characters (may be empty).
fn parse_status(s: &[u8]) -> Option<u16> {
    if s.len() < 4 || s[3] != b' ' || !s[..3].iter().all(u8::is_ascii_digit) {
        return None;
    }
    if s[4..].iter().any(|&b| b < 0x20 || b == 0x7F) {
        return None;
    }
    let code = (s[0] - b'0') as u16 * 100 + (s[1] - b'0') as u16 * 10 + (s[2] - b'0') as u16;
    (code >= 200).then_some(code)
}

fn parse_length(v: &[u8]) -> Option<u64> {
    if v.is_empty() || v.len() > 19 || !v.iter().all(u8::is_ascii_digit) {
        return None;
    }
    v.iter().try_fold(0u64, |acc, &d| {
        acc.checked_mul(10)?.checked_add((d - b'0') as u64)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_forms() {
        assert_eq!(parse_status(b"200 OK"), Some(200));
        assert_eq!(parse_status(b"404 "), Some(404));
        assert_eq!(parse_status(b"200"), None);
        assert_eq!(parse_status(b"20x OK"), None);
        assert_eq!(parse_status(b"100 Continue"), None);
        assert_eq!(parse_status(b"200 O\rK"), None);
        assert_eq!(parse_status(b"200OK"), None);
    }

    #[test]
    fn lengths() {
        assert_eq!(parse_length(b"0"), Some(0));
        assert_eq!(parse_length(b"123"), Some(123));
        assert_eq!(parse_length(b"+1"), None);
        assert_eq!(parse_length(b""), None);
        assert_eq!(parse_length(b"99999999999999999999"), None);
    }
}
