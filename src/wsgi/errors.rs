//! `wsgi.errors` when the error log is a file (`--error-logfile`): a text
//! stream whose writes are appended to that file, as gunicorn does.
//! Without the option, `wsgi.errors` is `sys.stderr`, where the error log
//! goes too.

use std::sync::Arc;

use pyo3::exceptions::PyOSError;
use pyo3::prelude::*;

use crate::logging::logfile::LogFile;

#[pyclass(module = "rwsgi_lite", name = "ErrorStream")]
pub(crate) struct ErrorStream {
    file: Arc<LogFile>,
}

impl ErrorStream {
    pub fn new(file: Arc<LogFile>) -> Self {
        ErrorStream { file }
    }
}

#[pymethods]
impl ErrorStream {
    /// Appends `text`; returns its length, as a text file's write does.
    fn write(&self, text: &str) -> PyResult<usize> {
        self.file
            .write_all(text.as_bytes())
            .map_err(|e| PyOSError::new_err(format!("writing to the error log: {e}")))?;
        Ok(text.chars().count())
    }

    fn writelines(&self, lines: &Bound<'_, PyAny>) -> PyResult<()> {
        for line in lines.try_iter()? {
            self.write(line?.extract::<&str>()?)?;
        }
        Ok(())
    }

    /// Every write goes straight to the file.
    fn flush(&self) {}

    fn writable(&self) -> bool {
        true
    }

    fn isatty(&self) -> bool {
        false
    }
}
