//! `rwsgi_lite._core.Server`: one in-process server. It binds when
//! constructed, serves in whichever thread calls `serve` (the Python
//! wrapper runs it in a background thread for `start`), and stops through
//! a `Stopper` from any thread. It is a guest in the process: its loop
//! reads no signal and changes no signal mask (`Signals::None`).

use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::Duration;

use pyo3::exceptions::{PyOSError, PyRuntimeError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyString};

use rwsgi_lite::config::Config;
use rwsgi_lite::serve::app::Local;
use rwsgi_lite::serve::listen::{self, Listeners};
use rwsgi_lite::serve::stop::{Signals, Stopper};
use rwsgi_lite::wsgi::access::AccessLog;
use rwsgi_lite::wsgi::{format_exception, python, serving};

use crate::options;
use crate::pylog;

/// Stands in for the app spec when the app is an object, not a string.
const OBJECT_SPEC: &str = "__main__:app";

/// Where a server is in its life; guarded by `Control::phase`.
enum Phase {
    /// Bound, not serving yet. A stop asked for now is kept for `serve`.
    Bound {
        stop: Option<Option<Duration>>,
    },
    Serving(Stopper),
    /// Served and stopped (or failed to start, or closed unserved).
    Done,
}

struct Control {
    phase: Mutex<Phase>,
    changed: Condvar,
}

impl Control {
    fn lock(&self) -> MutexGuard<'_, Phase> {
        // A panic while holding it cannot leave the phase half-written.
        self.phase.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn set(&self, phase: Phase) {
        *self.lock() = phase;
        self.changed.notify_all();
    }
}

#[pyclass(frozen, module = "rwsgi_lite._core")]
pub struct Server {
    config: Config,
    app: Py<PyAny>,
    /// Taken by `serve` (or `close`).
    listeners: Mutex<Option<(Listeners, Option<AccessLog>)>>,
    control: Control,
    first: Local,
    addresses: Vec<String>,
}

#[pymethods]
impl Server {
    #[new]
    #[pyo3(signature = (app, host=None, port=None, options=None))]
    fn new(
        py: Python<'_>,
        app: &Bound<'_, PyAny>,
        host: Option<&str>,
        port: Option<u16>,
        options: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<Self> {
        let spec = match app.cast::<PyString>() {
            Ok(s) => s.to_str()?.to_owned(),
            Err(_) if app.is_callable() => OBJECT_SPEC.to_owned(),
            Err(_) => {
                return Err(PyTypeError::new_err(format!(
                    "app must be a WSGI callable or a 'module:callable' string, not {}",
                    app.get_type().name()?
                )))
            }
        };
        let config = options::config(&spec, host, port, options)?;
        pylog::install(py)?;
        if !config.pythonpath.is_empty() {
            python::prepend_sys_path(py, &config.pythonpath)?;
        }
        let app = if app.is_instance_of::<PyString>() {
            python::import_app(py, &config.app).map_err(|e| e.into_pyerr())?
        } else {
            app.clone()
        };
        let access_log = serving::open_access_log(&config).map_err(PyValueError::new_err)?;
        let listeners =
            listen::open(&config.binds, config.backlog, config.reuse_port).map_err(bind_error)?;
        let first = match listeners.sockets.first() {
            Some(l) => l.local().clone(),
            None => return Err(PyValueError::new_err("bind: no address to listen on")),
        };
        let addresses = listeners.sockets.iter().map(|l| l.describe()).collect();
        Ok(Server {
            config,
            app: app.unbind(),
            listeners: Mutex::new(Some((listeners, access_log))),
            control: Control {
                phase: Mutex::new(Phase::Bound { stop: None }),
                changed: Condvar::new(),
            },
            first,
            addresses,
        })
    }

    /// The first address's host (a unix socket's path).
    #[getter]
    fn host(&self) -> String {
        match &self.first {
            Local::Tcp(a) => a.ip().to_string(),
            Local::Unix(p) => p.display().to_string(),
        }
    }

    /// The first address's port (None for a unix socket).
    #[getter]
    fn port(&self) -> Option<u16> {
        match &self.first {
            Local::Tcp(a) => Some(a.port()),
            Local::Unix(_) => None,
        }
    }

    #[getter]
    fn url(&self) -> String {
        self.addresses.first().cloned().unwrap_or_default()
    }

    #[getter]
    fn addresses(&self) -> Vec<String> {
        self.addresses.clone()
    }

    /// Serves until stopped; returns once the last connection is done.
    fn serve(&self, py: Python<'_>) -> PyResult<()> {
        let taken = self.listeners.lock().ok().and_then(|mut l| l.take());
        let Some((mut listeners, access_log)) = taken else {
            return Err(PyRuntimeError::new_err("this server has served already"));
        };
        let result = self.serve_with(py, &mut listeners, access_log);
        // Closes the sockets and removes the unix socket files it made.
        drop(listeners);
        self.control.set(Phase::Done);
        result
    }

    /// Blocks (without the GIL) until `serve` is serving (true) or has
    /// ended (false).
    fn wait_serving(&self, py: Python<'_>) -> bool {
        py.detach(|| {
            let mut phase = self.control.lock();
            while matches!(*phase, Phase::Bound { .. }) {
                phase = self
                    .control
                    .changed
                    .wait(phase)
                    .unwrap_or_else(|e| e.into_inner());
            }
            matches!(*phase, Phase::Serving(_))
        })
    }

    /// Stops accepting and lets in-flight responses finish within
    /// `timeout` seconds (None: the graceful timeout; 0: at once).
    #[pyo3(signature = (timeout=None))]
    fn stop(&self, timeout: Option<f64>) -> PyResult<()> {
        let within = match timeout {
            None => None,
            Some(t) if t.is_finite() && t >= 0.0 => Some(Duration::from_secs_f64(t)),
            Some(t) => {
                return Err(PyValueError::new_err(format!(
                    "timeout must be a number of seconds >= 0, not {t}"
                )))
            }
        };
        match &mut *self.control.lock() {
            Phase::Bound { stop } => *stop = Some(within),
            Phase::Serving(stopper) => stopper.stop(within),
            Phase::Done => {}
        }
        Ok(())
    }

    /// Releases the sockets of a server that will not serve.
    fn close(&self) {
        let mut phase = self.control.lock();
        if let Phase::Bound { .. } = *phase {
            if let Ok(mut listeners) = self.listeners.lock() {
                listeners.take();
            }
            *phase = Phase::Done;
            self.control.changed.notify_all();
        }
    }
}

/// An OSError carrying the errno when there is one, as Python's own
/// `socket.bind` raises it: callers test `e.errno == errno.EADDRINUSE`,
/// and Python picks the subclass (PermissionError for EACCES).
fn bind_error(e: listen::BindError) -> PyErr {
    let message = e.to_string();
    match e.source.raw_os_error() {
        Some(errno) => PyOSError::new_err((errno, message)),
        None => PyOSError::new_err(message),
    }
}

impl Server {
    fn serve_with(
        &self,
        py: Python<'_>,
        listeners: &mut Listeners,
        access_log: Option<AccessLog>,
    ) -> PyResult<()> {
        let settings = serving::server_settings(&self.config, false, Signals::None);
        let server = serving::event_loop(listeners, settings).map_err(PyOSError::new_err)?;
        // The loop holds its own copies: once it stops accepting, nothing
        // else listens (a connection queued then would only be reset).
        listeners.sockets.clear();
        let mut wsgi = serving::wsgi_app(py, self.app.bind(py).clone(), &self.config, access_log)?;
        self.announce(py);
        self.publish(server.stopper());
        pylog::install(py)?;
        let result = server.run(&mut wsgi);
        // A host's signal handler that raised (SystemExit, KeyboardInterrupt)
        // stopped the server; the exception goes on to the caller, as it
        // would leave any blocking call.
        if let Some(raised) = wsgi.take_signal_error() {
            return Err(raised);
        }
        result.map_err(|e| PyOSError::new_err(format!("event loop failed: {e}")))
    }

    /// Makes the loop stoppable, and passes on a stop that came first.
    fn publish(&self, stopper: Stopper) {
        let mut phase = self.control.lock();
        let early = match &*phase {
            Phase::Bound { stop } => *stop,
            Phase::Serving(_) | Phase::Done => None,
        };
        *phase = Phase::Serving(stopper.clone());
        self.control.changed.notify_all();
        drop(phase);
        if let Some(within) = early {
            stopper.stop(within);
        }
    }

    fn announce(&self, py: Python<'_>) {
        let app = if self.config.app.module == "__main__" && self.config.app.callable == "app" {
            self.app
                .bind(py)
                .repr()
                .map(|r| r.to_string())
                .unwrap_or_else(|e| format_exception(py, &e))
        } else {
            serving::describe_app(&self.config)
        };
        log::info!(
            "rwsgi-lite {} serving {app} ({})",
            env!("CARGO_PKG_VERSION"),
            python::describe(py)
        );
        for address in &self.addresses {
            log::info!("Listening at: {address} ({})", std::process::id());
        }
    }
}
