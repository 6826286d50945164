//! The `start_response` callable and the `write()` callable it returns.
//!
//! Validates what the app sends before a byte of it can reach the wire: the
//! status must be `NNN reason`, header names tokens, values free of CR, LF
//! and other controls, no hop-by-hop fields (they would corrupt our
//! framing). A violation raises inside the app, which then ends in a 500.

use pyo3::exceptions::{PyAssertionError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList, PyString, PyTuple};

use crate::app::ResponseHead;
use crate::http::chars::is_tchar;

#[pyclass(module = "rwsgi_lite", name = "StartResponse")]
#[derive(Default)]
pub struct StartResponse {
    /// Set by start_response, taken when the head is sent.
    pub head: Option<ResponseHead>,
    /// The head has been handed to the connection: exc_info must re-raise.
    pub head_sent: bool,
    /// Data passed to write(), waiting to be sent in order.
    pub writes: std::collections::VecDeque<Py<PyBytes>>,
}

#[pymethods]
impl StartResponse {
    #[pyo3(signature = (status, headers, exc_info=None))]
    fn __call__<'py>(
        slf: &Bound<'py, Self>,
        status: &Bound<'py, PyAny>,
        headers: &Bound<'py, PyAny>,
        exc_info: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let exc_info = exc_info.filter(|e| !e.is_none());
        {
            let this = slf.borrow();
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
        }
        let head = build_head(status, headers)?;
        slf.borrow_mut().head = Some(head);
        slf.getattr(pyo3::intern!(slf.py(), "write"))
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

pub fn build_head(status: &Bound<'_, PyAny>, headers: &Bound<'_, PyAny>) -> PyResult<ResponseHead> {
    let status = status.cast::<PyString>().map_err(|_| {
        PyTypeError::new_err(format!("status must be str, not {}", type_name(status)))
    })?;
    let mut head = ResponseHead {
        status_line: Vec::with_capacity(32),
        header_lines: Vec::with_capacity(256),
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
            add_header(&mut head, &item)?;
        }
    } else if let Ok(tuple) = headers.cast::<PyTuple>() {
        for item in tuple.iter() {
            add_header(&mut head, &item)?;
        }
    } else {
        return Err(PyTypeError::new_err(format!(
            "headers must be a list of (name, value) tuples, not {}",
            type_name(headers)
        )));
    }
    Ok(head)
}

/// Validates one `(name, value)` pair and appends `Name: value\r\n`,
/// noting the fields the server must know about.
fn add_header(head: &mut ResponseHead, item: &Bound<'_, PyAny>) -> PyResult<()> {
    let pair = item.cast::<PyTuple>().map_err(|_| {
        PyTypeError::new_err(format!(
            "each header must be a (name, value) tuple, not {}",
            type_name(item)
        ))
    })?;
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
    let lines = &mut head.header_lines;
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
    let special = match name.len() {
        4 if name.eq_ignore_ascii_case(b"date") => Special::Date,
        6 if name.eq_ignore_ascii_case(b"server") => Special::Server,
        10 if name.eq_ignore_ascii_case(b"connection") => Special::Connection,
        14 if name.eq_ignore_ascii_case(b"content-length") => Special::ContentLength,
        _ if HOP_BY_HOP.iter().any(|h| name.eq_ignore_ascii_case(h)) => {
            return Err(PyValueError::new_err(format!(
                "hop-by-hop header {n} is not allowed from a WSGI app"
            )));
        }
        _ => Special::None,
    };
    let value = trim(&lines[value_start..]);
    match special {
        Special::None => {}
        Special::Date => head.has_date = true,
        Special::Server => head.has_server = true,
        Special::ContentLength => {
            let len = parse_length(value).ok_or_else(|| {
                PyValueError::new_err(format!(
                    "invalid Content-Length {:?}",
                    String::from_utf8_lossy(value)
                ))
            })?;
            if head.content_length.is_some_and(|old| old != len) {
                return Err(PyValueError::new_err("conflicting Content-Length headers"));
            }
            head.content_length = Some(len);
        }
        Special::Connection => {
            if value.eq_ignore_ascii_case(b"close") {
                // We write our own Connection header; drop the app's.
                head.close = true;
                lines.truncate(line_start);
                return Ok(());
            }
            return Err(PyValueError::new_err(format!(
                "hop-by-hop header Connection: {} is not allowed from a WSGI app",
                String::from_utf8_lossy(value)
            )));
        }
    }
    lines.extend_from_slice(b"\r\n");
    Ok(())
}

enum Special {
    None,
    Date,
    Server,
    Connection,
    ContentLength,
}

fn trim(v: &[u8]) -> &[u8] {
    let start = v
        .iter()
        .position(|&b| b != b' ' && b != b'\t')
        .unwrap_or(v.len());
    let end = v
        .iter()
        .rposition(|&b| b != b' ' && b != b'\t')
        .map_or(start, |i| i + 1);
    &v[start..end]
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
