//! The `rwsgi-lite` command: parse arguments, start logging and Python,
//! import the app, serve, and turn every failure into one clear message and
//! an exit status (0 ok, 1 runtime or start-up error, 2 usage).

use std::process::ExitCode;

use pyo3::prelude::*;

use std::path::Path;

use nix::unistd::ForkResult;

use rwsgi_lite::config::{self, AccessLogTarget, BindAddr, Command, Config};
use rwsgi_lite::logging::access_log::Format;
use rwsgi_lite::logging::localtime::LocalZone;
use rwsgi_lite::logging::logbuf::LogBuffer;
use rwsgi_lite::logging::logfile::{self, LogFile};
use rwsgi_lite::serve::app::ConnSettings;
use rwsgi_lite::serve::event_loop::{startup_signals, Server, ServerSettings};
use rwsgi_lite::serve::listen::{self, Listeners};
use rwsgi_lite::serve::stop::Signals;
use rwsgi_lite::supervise::master::{self, MasterSettings, Spawner, WorkerEnv};
use rwsgi_lite::supervise::pidfile::PidFile;
use rwsgi_lite::supervise::worker::{request_budget, Heartbeat, Supervised};
use rwsgi_lite::wsgi::access::AccessLog;
use rwsgi_lite::wsgi::python::{self, LoadError};
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
    Ok(Some(AccessLog::new(
        format,
        LogBuffer::new(file),
        LocalZone::system(),
    )))
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
    if let Some(mask) = config.umask {
        nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(mask));
    }
    raise_open_files_limit(config.max_connections);
    let binds = match listen::systemd_fds() {
        Some(fds) => {
            log::info!(
                "systemd socket activation: serving {} inherited socket(s) instead of --bind",
                fds.len()
            );
            fds.into_iter().map(BindAddr::Fd).collect()
        }
        None => config.binds.clone(),
    };
    // Bind before importing the app: a taken port fails fast, without
    // running the app's import-time side effects.
    let listeners = match listen::open(&binds, config.backlog, config.reuse_port) {
        Ok(l) => l,
        Err(e) => return fail(e),
    };
    let _pidfile = match &config.pidfile {
        Some(path) => match PidFile::create(path) {
            Ok(f) => Some(f),
            Err(e) => return fail(format_args!("--pid {}: {e}", path.display())),
        },
        None => None,
    };
    if !config.uses_master() {
        return ExitCode::from(serve(config, &listeners, &cwd, None, None, access_log) as u8);
    }

    for bound in &listeners.sockets {
        log::info!(
            "Listening at: {} ({})",
            bound.describe(),
            std::process::id()
        );
    }
    let preloaded = if config.preload {
        // As for a single process (see `serve`): until the master reads
        // them from its signalfd, they stay pending.
        let _ = startup_signals().thread_block();
        match load(config, &cwd) {
            Ok(app) => Some(app),
            Err(code) => return ExitCode::from(code as u8),
        }
    } else {
        None
    };
    let mut reload_dirs = Vec::new();
    if config.reload {
        reload_dirs.push(cwd.clone());
        reload_dirs.extend(config.pythonpath.iter().map(|p| cwd.join(p)));
    }
    let settings = MasterSettings {
        workers: config.workers,
        timeout: config.timeout,
        graceful_timeout: config.graceful_timeout,
        reload_dirs,
        preloaded: preloaded.is_some(),
        reopen_logs,
    };
    let mut spawner = PySpawner {
        config,
        listeners: &listeners,
        cwd: &cwd,
        preloaded,
        access_log,
    };
    let result = master::run(settings, &mut spawner);
    if spawner.preloaded.is_some() {
        // Python objects are released with the GIL held.
        Python::attach(|_| drop(spawner.preloaded.take()));
    }
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(e),
    }
}

/// SIGUSR1: logrotate moved the files.
fn reopen_logs() {
    logfile::reopen();
}

/// Forks workers for the master and runs them.
struct PySpawner<'a> {
    config: &'a Config,
    listeners: &'a Listeners,
    cwd: &'a Path,
    /// `--preload`: the app the master imported.
    preloaded: Option<Py<PyAny>>,
    /// Opened before forking (relative paths name the same file as before
    /// `--chdir`); each worker takes its own copy of the descriptor.
    access_log: Option<AccessLog>,
}

impl Spawner for PySpawner<'_> {
    fn fork(&mut self) -> nix::Result<ForkResult> {
        python::fork()
    }

    fn serve(&mut self, env: WorkerEnv) -> i32 {
        let code = serve(
            self.config,
            self.listeners,
            self.cwd,
            Some(env),
            self.preloaded.take(),
            self.access_log.take(),
        );
        python::finalize();
        code
    }
}

/// Starts Python (once per process), puts the app's directories on
/// sys.path and imports the app. On failure the error has been reported
/// and the exit status is returned.
fn load(config: &Config, cwd: &Path) -> Result<Py<PyAny>, i32> {
    let argv: Vec<String> = std::env::args().take(1).collect();
    if let Err(e) = python::initialize(config.virtualenv.as_deref(), &argv) {
        eprintln!("rwsgi-lite: {e}");
        return Err(1);
    }
    Python::attach(|py| {
        let mut path = vec![cwd.to_path_buf()];
        path.extend(config.pythonpath.iter().cloned());
        if let Err(e) = python::prepend_sys_path(py, &path) {
            eprintln!("rwsgi-lite: cannot set sys.path: {e}");
            return Err(1);
        }
        match python::load_app(py, &config.app) {
            Ok(app) => Ok(app.unbind()),
            Err(LoadError::Raised(traceback)) if config.reload => {
                log::error!(
                    "failed to load application '{}'; answering 500 until a file changes",
                    describe_spec(config)
                );
                python::failed_import_app(py, &traceback)
                    .map(Bound::unbind)
                    .map_err(|e| {
                        eprintln!("rwsgi-lite: {}", format_exception(py, &e));
                        1
                    })
            }
            Err(LoadError::Raised(_)) => {
                eprintln!(
                    "rwsgi-lite: failed to load application '{}'",
                    describe_spec(config)
                );
                Err(1)
            }
            Err(e) => {
                eprintln!("rwsgi-lite: {e}");
                Err(1)
            }
        }
    })
}

/// One serving process: the single process, or a worker under the master.
/// Returns the exit status.
fn serve(
    config: &Config,
    listeners: &Listeners,
    cwd: &Path,
    worker: Option<WorkerEnv>,
    preloaded: Option<Py<PyAny>>,
    access_log: Option<AccessLog>,
) -> i32 {
    if worker.is_none() {
        // Until the event loop handles them, the default actions of these
        // would kill (HUP, USR1: logrotate's postrotate) or stop (TTIN,
        // TTOU) a process still importing its app. Blocked, they stay
        // pending until `Server::run` unblocks them. TERM and INT still
        // end a slow import.
        let _ = startup_signals().thread_block();
    }
    let app = match preloaded {
        Some(app) => app,
        None => match load(config, cwd) {
            Ok(app) => app,
            // The master tells a worker that could not import the app from
            // one that crashed.
            Err(_) if worker.is_some() => return master::WORKER_BOOT_ERROR,
            Err(code) => return code,
        },
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
        reopen_logs,
        worker: worker.is_some(),
        signals: Signals::Process,
    };
    let mut sockets = Vec::with_capacity(listeners.sockets.len());
    for bound in &listeners.sockets {
        match bound.for_worker() {
            Ok(own) => sockets.extend(own.into_iter().map(|s| (s, bound.local().clone()))),
            Err(e) => {
                eprintln!("rwsgi-lite: cannot listen on {}: {e}", bound.describe());
                return 1;
            }
        }
    }
    let server = match Server::new(sockets, settings) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("rwsgi-lite: {e}");
            return 1;
        }
    };
    Python::attach(|py| {
        let app = app.into_bound(py);
        if let Err(e) = python::yield_sigint(py) {
            log::warn!("cannot take over SIGINT: {}", format_exception(py, &e));
        }
        let mut wsgi = match WsgiApp::new(py, app).and_then(|mut w| {
            w.set_multiprocess(config.workers > 1)?;
            Ok(w)
        }) {
            Ok(w) => w,
            Err(e) => {
                eprintln!("rwsgi-lite: {}", format_exception(py, &e));
                return 1;
            }
        };
        wsgi.set_forwarded_allow_ips(config.forwarded_allow_ips.clone());
        if let Some(log) = access_log {
            wsgi.set_access_log(log);
        }
        let (heartbeat, budget) = match worker {
            Some(env) => (
                Some(Heartbeat::new(env.heartbeat)),
                request_budget(config.max_requests, config.max_requests_jitter),
            ),
            None => {
                log::info!(
                    "rwsgi-lite {} serving {} ({})",
                    env!("CARGO_PKG_VERSION"),
                    describe_spec(config),
                    python::describe(py)
                );
                for bound in &listeners.sockets {
                    log::info!(
                        "Listening at: {} ({})",
                        bound.describe(),
                        std::process::id()
                    );
                }
                (None, None)
            }
        };
        let mut app = Supervised::new(wsgi, heartbeat, budget);
        match server.run(&mut app) {
            Ok(()) => 0,
            Err(e) => {
                eprintln!("rwsgi-lite: event loop failed: {e}");
                1
            }
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
