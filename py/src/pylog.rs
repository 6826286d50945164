//! The server's log records, in-process, go to Python's `logging` (the
//! `rwsgi_lite.error` logger, as gunicorn has `gunicorn.error`), so the host
//! application's logging set-up decides where they end up and how they
//! look. The command line keeps its own format (`logging::logfile`).

use std::sync::OnceLock;

use pyo3::prelude::*;
use pyo3::types::PyString;

/// The logger's name.
pub const LOGGER: &str = "rwsgi_lite.error";

struct PyLogger;

static INSTALLED: OnceLock<bool> = OnceLock::new();

impl log::Log for PyLogger {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &log::Record<'_>) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let level = match record.level() {
            log::Level::Error => 40,
            log::Level::Warn => 30,
            log::Level::Info => 20,
            log::Level::Debug | log::Level::Trace => 10,
        };
        let message = record.args().to_string();
        Python::attach(|py| {
            if let Err(e) = emit(py, level, &message) {
                // Logging must never take the server down; Python's own
                // logging prints its handler errors the same way.
                e.print(py);
            }
        });
    }

    fn flush(&self) {}
}

fn emit(py: Python<'_>, level: i32, message: &str) -> PyResult<()> {
    let logger = py.import("logging")?.call_method1("getLogger", (LOGGER,))?;
    // "%s": a message with a % in it is not a format string.
    logger.call_method1("log", (level, "%s", PyString::new(py, message)))?;
    Ok(())
}

/// Routes the `log` crate's records to Python's logging, once per process
/// (the `log` crate takes one logger), and lets through the levels that
/// the `rwsgi_lite.error` logger lets through now. False when another
/// logger was installed first (the command line's, in this process).
pub fn install(py: Python<'_>) -> PyResult<bool> {
    let installed = *INSTALLED.get_or_init(|| log::set_boxed_logger(Box::new(PyLogger)).is_ok());
    if installed {
        let logger = py.import("logging")?.call_method1("getLogger", (LOGGER,))?;
        let level: i32 = logger.call_method0("getEffectiveLevel")?.extract()?;
        log::set_max_level(match level {
            ..=10 => log::LevelFilter::Debug,
            11..=20 => log::LevelFilter::Info,
            21..=30 => log::LevelFilter::Warn,
            _ => log::LevelFilter::Error,
        });
    }
    Ok(installed)
}
