//! The `rwsgi-lite` command: parse arguments, start logging and Python,
//! import the app, serve, and turn every failure into one clear message and
//! an exit status (0 ok, 1 runtime or start-up error, 2 usage).

use std::process::ExitCode;

use pyo3::prelude::*;

use rwsgi_lite::access_log::Format;
use rwsgi_lite::app::ConnSettings;
use rwsgi_lite::config::{self, AccessLogTarget, Command, Config};
use rwsgi_lite::logbuf::LogBuffer;
use rwsgi_lite::logfile::{self, LogFile};
use rwsgi_lite::python::{self, LoadError};
use rwsgi_lite::server::{Server, ServerSettings};
use rwsgi_lite::wsgi::access::AccessLog;
use rwsgi_lite::wsgi::{format_exception, WsgiApp};

fn main() -> ExitCode {
    let mut args = Vec::new();
    for arg in std::env::args_os().skip(1) {
        match arg.into_string() {
            Ok(a) => args.push(a),
            Err(bad) => {
                eprintln!("rwsgi-lite: argument {bad:?} is not valid UTF-8; see --help");
                return ExitCode::from(2);
            }
        }
    }
    let virtual_env = std::env::var("VIRTUAL_ENV").ok().filter(|v| !v.is_empty());
    let config = match config::parse_args(&args, virtual_env) {
        Ok(Command::Run(config)) => config,
        Ok(Command::Help(text)) => {
            print!("{text}");
            return ExitCode::SUCCESS;
        }
        Ok(Command::Version(line)) => {
            println!("{line}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(e.exit_code());
        }
    };
    if let Err(e) = logfile::init(config.log_level, config.error_logfile.as_deref()) {
        return match &config.error_logfile {
            Some(path) => fail(format_args!("--error-logfile {}: {e}", path.display())),
            None => fail(format_args!("cannot start logging: {e}")),
        };
    }
    let code = run(&config);
    python::finalize();
    code
}

/// Opens `--access-logfile` (before `--chdir`, like the error log).
fn open_access_log(config: &Config) -> Result<Option<AccessLog>, ExitCode> {
    let Some(target) = &config.access_logfile else {
        return Ok(None);
    };
    let file = match target {
        AccessLogTarget::Stdout => LogFile::stdout()
            .map_err(|e| fail(format_args!("--access-logfile -: cannot use stdout: {e}")))?,
        AccessLogTarget::File(path) => LogFile::open(path)
            .map_err(|e| fail(format_args!("--access-logfile {}: {e}", path.display())))?,
    };
    // parse_args checked the syntax already.
    let format = Format::parse(&config.access_logformat)
        .map_err(|e| fail(format_args!("--access-logformat: {e}")))?;
    for name in format.unknown_atoms() {
        log::warn!("--access-logformat: unknown atom %({name})s is logged as '-'");
    }
    Ok(Some(AccessLog::new(format, LogBuffer::new(file))))
}

fn fail(message: impl std::fmt::Display) -> ExitCode {
    eprintln!("rwsgi-lite: {message}");
    ExitCode::from(1)
}

fn run(config: &Config) -> ExitCode {
    let access_log = match open_access_log(config) {
        Ok(log) => log,
        Err(code) => return code,
    };
    if let Some(dir) = &config.chdir {
        if let Err(e) = std::env::set_current_dir(dir) {
            return fail(format_args!("--chdir {}: {e}", dir.display()));
        }
    }
    let cwd = match std::env::current_dir() {
        Ok(d) => d,
        Err(e) => return fail(format_args!("cannot read the current directory: {e}")),
    };
    let settings = ServerSettings {
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
    };
    raise_open_files_limit(config.max_connections);
    // Bind before importing the app: a taken port fails fast, without
    // running the app's import-time side effects.
    let server = match Server::bind(&config.binds, config.backlog, settings) {
        Ok(s) => s,
        Err(e) => return fail(e),
    };
    let argv: Vec<String> = std::env::args().take(1).collect();
    if let Err(e) = python::initialize(config.virtualenv.as_deref(), &argv) {
        return fail(e);
    }
    Python::attach(|py| {
        let mut path = vec![cwd];
        path.extend(config.pythonpath.iter().cloned());
        if let Err(e) = python::prepend_sys_path(py, &path) {
            return fail(format_args!("cannot set sys.path: {e}"));
        }
        let app = match python::load_app(py, &config.app) {
            Ok(app) => app,
            Err(LoadError::Raised) => {
                eprintln!(
                    "rwsgi-lite: failed to load application '{}'",
                    describe_spec(config)
                );
                return ExitCode::from(1);
            }
            Err(e) => return fail(e),
        };
        if let Err(e) = python::yield_sigint(py) {
            log::warn!("cannot take over SIGINT: {}", format_exception(py, &e));
        }
        let mut wsgi = match WsgiApp::new(py, app) {
            Ok(w) => w,
            Err(e) => return fail(format_exception(py, &e)),
        };
        wsgi.set_forwarded_allow_ips(config.forwarded_allow_ips.clone());
        if let Some(log) = access_log {
            wsgi.set_access_log(log);
        }
        log::info!(
            "rwsgi-lite {} serving {} ({})",
            env!("CARGO_PKG_VERSION"),
            describe_spec(config),
            python::describe(py)
        );
        for addr in server.local_addrs() {
            log::info!("Listening at: {addr} ({})", std::process::id());
        }
        match server.run(&mut wsgi) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => fail(format_args!("event loop failed: {e}")),
        }
    })
}

/// Each connection is a file descriptor: lift the soft limit (often 1024)
/// to the hard one so `--max-connections` can be reached, and say so when
/// even that is too low.
fn raise_open_files_limit(max_connections: usize) {
    // Listeners, the poll and signal fds, Python's own files, spooled bodies.
    const SPARE: u64 = 64;
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) if limit < max_connections as u64 + SPARE => log::warn!(
            "open-files limit is {limit}: fewer than --max-connections {max_connections} \
             clients can be served at once (accepting pauses at the limit)"
        ),
        Ok(_) => {}
        Err(e) => log::warn!("cannot raise the open-files limit: {e}"),
    }
}

fn describe_spec(config: &Config) -> String {
    let app = &config.app;
    format!(
        "{}:{}{}",
        app.module,
        app.callable,
        if app.factory { "()" } else { "" }
    )
}
