//! The access log as the WSGI adapter drives it: a record is started when
//! `WsgiApp::call` receives a request, follows the response (head, body
//! sizes) and becomes one line when the response is closed, which happens
//! exactly once whatever the outcome. Lines are flushed from `App::idle`.
//!
//! Only built when `--access-logfile` is given: without it the adapter
//! holds `None` and pays one branch per request.

use std::cell::RefCell;
use std::net::IpAddr;
use std::rc::Rc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use crate::logging::access_log::{Entry, Format, LineTime};
use crate::logging::localtime::LocalZone;
use crate::logging::logbuf::LogBuffer;
use crate::serve::app::{Request, ResponseHead};

/// The parsed format and where its lines go.
#[derive(Debug)]
pub struct AccessLog {
    format: Format,
    out: RefCell<LogBuffer>,
    zone: LocalZone,
}

impl AccessLog {
    /// Times are in `zone` (the system's: [`LocalZone::system`]).
    pub fn new(format: Format, out: LogBuffer, zone: LocalZone) -> AccessLog {
        AccessLog {
            format,
            out: RefCell::new(out),
            zone,
        }
    }

    /// Writes out the lines held (the loop is about to wait).
    pub fn flush(&self) {
        if let Ok(mut out) = self.out.try_borrow_mut() {
            out.flush();
        }
    }
}

/// Starts the record of `req`; `remote` is the client address after
/// X-Forwarded-For.
pub(crate) fn begin(
    log: &Rc<AccessLog>,
    req: &Request<'_>,
    remote: Option<IpAddr>,
) -> AccessRecord {
    AccessRecord {
        entry: log.format.capture(req, remote),
        log: Rc::clone(log),
        started: Instant::now(),
    }
}

/// One request's line in the making.
#[derive(Debug)]
pub struct AccessRecord {
    log: Rc<AccessLog>,
    entry: Entry,
    started: Instant,
}

impl AccessRecord {
    pub fn head(&mut self, head: &ResponseHead) {
        self.entry.response_head(&self.log.format, head);
    }

    pub fn body(&mut self, n: u64) {
        self.entry.body(n);
    }

    /// The response ends before its head went out but without an error
    /// (the client left): the status the app chose, if any.
    pub(crate) fn unsent_status(&mut self, status: u16) {
        if self.entry.status().is_none() {
            self.entry.set_status(status);
        }
    }

    /// The app failed before its head: the client got the canned 500.
    pub fn internal_error(&mut self) {
        self.entry.internal_error();
    }

    /// Renders the line into the log's buffer.
    pub fn finish(self) {
        let elapsed = self.started.elapsed();
        let unix_secs = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let at = LineTime {
            unix_secs,
            utc_offset: self.log.zone.offset_at(unix_secs),
        };
        // Never re-entered (rendering runs no app code); a busy buffer
        // would only drop this line.
        if let Ok(mut out) = self.log.out.try_borrow_mut() {
            out.push_line(|buf| self.log.format.render(&self.entry, elapsed, at, buf));
        }
    }
}
