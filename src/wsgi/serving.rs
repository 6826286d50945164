//! From a parsed [`Config`] and an imported app to a serving event loop:
//! the steps both front ends share, so that the command line's serving
//! process and the Python package's in-process `Server` cannot drift
//! apart in what an option means.

use pyo3::prelude::*;

use crate::config::{AccessLogTarget, Config};
use crate::logging::access_log::Format;
use crate::logging::localtime::LocalZone;
use crate::logging::logbuf::LogBuffer;
use crate::logging::logfile::{self, LogFile};
use crate::serve::app::ConnSettings;
use crate::serve::event_loop::{Server, ServerSettings};
use crate::serve::listen::Listeners;
use crate::serve::stop::Signals;
use crate::wsgi::access::AccessLog;
use crate::wsgi::WsgiApp;

/// Opens `--access-logfile` (relative paths name the file from the
/// directory the server started in); the error says which option failed.
pub fn open_access_log(config: &Config) -> Result<Option<AccessLog>, String> {
    let Some(target) = &config.access_logfile else {
        return Ok(None);
    };
    let file =
        match target {
            AccessLogTarget::Stdout => LogFile::stdout()
                .map_err(|e| format!("--access-logfile -: cannot use stdout: {e}"))?,
            AccessLogTarget::File(path) => LogFile::open(path)
                .map_err(|e| format!("--access-logfile {}: {e}", path.display()))?,
        };
    // parse_args checked the syntax already.
    let format =
        Format::parse(&config.access_logformat).map_err(|e| format!("--access-logformat: {e}"))?;
    for name in format.unknown_atoms() {
        log::warn!("--access-logformat: unknown atom %({name})s is logged as '-'");
    }
    Ok(Some(AccessLog::new(
        format,
        LogBuffer::new(file),
        LocalZone::system(),
    )))
}

/// The event loop's settings for this configuration.
pub fn server_settings(config: &Config, worker: bool, signals: Signals) -> ServerSettings {
    ServerSettings {
        conn: ConnSettings {
            limits: config.limits,
            limit_request_body: config.limit_request_body,
            keep_alive: config.keep_alive,
            header_timeout: config.header_timeout,
            socket_timeout: config.socket_timeout,
            ..ConnSettings::default()
        },
        graceful_timeout: config.graceful_timeout,
        max_connections: config.max_connections,
        reopen_logs: logfile::reopen,
        worker,
        signals,
    }
}

/// An event loop over this process's copies of the listening sockets
/// (with `--reuse-port`, a socket of its own besides the shared one).
pub fn event_loop(listeners: &Listeners, settings: ServerSettings) -> Result<Server, String> {
    let mut sockets = Vec::with_capacity(listeners.sockets.len());
    for listener in &listeners.sockets {
        let own = listener
            .for_worker()
            .map_err(|e| format!("cannot listen on {}: {e}", listener.describe()))?;
        sockets.extend(own.into_iter().map(|s| (s, listener.local().clone())));
    }
    Server::new(sockets, settings).map_err(|e| e.to_string())
}

/// The WSGI adapter around `app`, set up as the options say.
pub fn wsgi_app<'py>(
    py: Python<'py>,
    app: Bound<'py, PyAny>,
    config: &Config,
    access_log: Option<AccessLog>,
) -> PyResult<WsgiApp<'py>> {
    let mut wsgi = WsgiApp::new(py, app)?;
    wsgi.set_multiprocess(config.workers > 1)?;
    wsgi.set_forwarded_allow_ips(config.forwarded_allow_ips.clone());
    wsgi.set_forwarded_hops(config.forwarded_hops);
    if let Some(log) = access_log {
        wsgi.set_access_log(log);
    }
    Ok(wsgi)
}

/// `module:callable`, with `()` for a factory: how the logs name the app.
pub fn describe_app(config: &Config) -> String {
    let app = &config.app;
    format!(
        "{}:{}{}",
        app.module,
        app.callable,
        if app.factory { "()" } else { "" }
    )
}
