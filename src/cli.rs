//! The `rwsgi-lite` command line, shared by both front ends: the
//! standalone binary (which starts its own interpreter) and the Python
//! package's console script (which runs inside the interpreter that
//! imported it). Parse arguments, start logging and Python, import the app,
//! serve, and turn every failure into one clear message and an exit status
//! (0 ok, 1 runtime or start-up error, 2 usage).
//!
//! The process is ours here: the loop reads the process's signals, and
//! workers are forked. A server embedded in someone else's process is the
//! Python package's `Server`, which uses none of this.

use std::path::Path;

use nix::unistd::ForkResult;
use pyo3::prelude::*;

use crate::config::{self, BindAddr, Command, Config};
use crate::logging::logfile;
use crate::serve::event_loop::startup_signals;
use crate::serve::listen::{self, Listeners};
use crate::serve::stop::Signals;
use crate::supervise::master::{self, MasterSettings, Spawner, WorkerEnv};
use crate::supervise::pidfile::PidFile;
use crate::supervise::worker::{request_budget, Heartbeat, Supervised};
use crate::wsgi::access::AccessLog;
use crate::wsgi::python::{self, LoadError};
use crate::wsgi::{format_exception, serving};

/// Exit statuses (gunicorn's, and the README's table).
const OK: u8 = 0;
const FAILED: u8 = 1;
const USAGE: u8 = 2;

/// Who runs the interpreter the app is served in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Interpreter {
    /// The standalone binary: it starts Python itself (PyConfig, the
    /// virtualenv of `--virtualenv` or `$VIRTUAL_ENV`) and finalizes it.
    Embedded,
    /// The Python package: the interpreter that runs the console script
    /// is the app's, with the packages of the venv it is installed in.
    Host,
}

/// Runs the command line (`args` without argv[0]) and returns the exit
/// status.
pub fn run(args: &[String], interpreter: Interpreter) -> u8 {
    // The package serves in its own interpreter: $VIRTUAL_ENV (an
    // activated venv, maybe another one) says nothing about it.
    let virtual_env = match interpreter {
        Interpreter::Embedded => std::env::var("VIRTUAL_ENV").ok().filter(|v| !v.is_empty()),
        Interpreter::Host => None,
    };
    let config = match config::parse_args(args, virtual_env) {
        Ok(Command::Run(config)) => config,
        Ok(Command::Help(text)) => {
            print!("{text}");
            return OK;
        }
        Ok(Command::Version(line)) => {
            println!("{line}");
            return OK;
        }
        Err(e) => {
            eprintln!("{e}");
            return e.exit_code();
        }
    };
    if interpreter == Interpreter::Host {
        if let Some(venv) = &config.virtualenv {
            eprintln!(
                "rwsgi-lite: --virtualenv {}: the Python package serves in the interpreter it \
                 is installed in; run that virtualenv's rwsgi-lite instead",
                venv.display()
            );
            return USAGE;
        }
    }
    if let Err(e) = logfile::init(config.log_level, config.error_logfile.as_deref()) {
        return match &config.error_logfile {
            Some(path) => fail(format_args!("--error-logfile {}: {e}", path.display())),
            None => fail(format_args!("cannot start logging: {e}")),
        };
    }
    let code = Cli {
        config: &config,
        interpreter,
    }
    .run();
    if interpreter == Interpreter::Embedded {
        python::finalize();
    }
    code
}

fn fail(message: impl std::fmt::Display) -> u8 {
    eprintln!("rwsgi-lite: {message}");
    FAILED
}

/// One run of the command line, once its arguments are parsed and the
/// error log is up.
struct Cli<'a> {
    config: &'a Config,
    interpreter: Interpreter,
}

impl Cli<'_> {
    fn run(&self) -> u8 {
        // Opened before --chdir, like the error log.
        let access_log = match serving::open_access_log(self.config) {
            Ok(log) => log,
            Err(e) => return fail(e),
        };
        let cwd = match self.enter_directory() {
            Ok(dir) => dir,
            Err(code) => return code,
        };
        if let Some(mask) = self.config.umask {
            nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(mask));
        }
        raise_open_files_limit(self.config.max_connections);
        // Bind before importing the app: a taken port fails fast, without
        // running the app's import-time side effects.
        let mut listeners = match self.bind() {
            Ok(l) => l,
            Err(e) => return fail(e),
        };
        let _pidfile = match &self.config.pidfile {
            Some(path) => match PidFile::create(path) {
                Ok(f) => Some(f),
                Err(e) => return fail(format_args!("--pid {}: {e}", path.display())),
            },
            None => None,
        };
        if !self.config.uses_master() {
            return self.serve(&mut listeners, &cwd, None, None, access_log);
        }
        self.supervise(&mut listeners, &cwd, access_log)
    }

    /// `--chdir`, then the directory the app is imported from.
    fn enter_directory(&self) -> Result<std::path::PathBuf, u8> {
        if let Some(dir) = &self.config.chdir {
            std::env::set_current_dir(dir)
                .map_err(|e| fail(format_args!("--chdir {}: {e}", dir.display())))?;
        }
        std::env::current_dir()
            .map_err(|e| fail(format_args!("cannot read the current directory: {e}")))
    }

    /// The `--bind` addresses, or the sockets systemd passed.
    fn bind(&self) -> Result<Listeners, String> {
        let binds = match listen::systemd_fds() {
            Some(fds) => {
                log::info!(
                    "systemd socket activation: serving {} inherited socket(s) instead of --bind",
                    fds.len()
                );
                fds.into_iter().map(BindAddr::Fd).collect()
            }
            None => self.config.binds.clone(),
        };
        listen::open(&binds, self.config.backlog, self.config.reuse_port).map_err(|e| e.to_string())
    }

    /// The master: forks the workers and supervises them until it stops.
    fn supervise(
        &self,
        listeners: &mut Listeners,
        cwd: &Path,
        access_log: Option<AccessLog>,
    ) -> u8 {
        let config = self.config;
        for listener in &listeners.sockets {
            log::info!(
                "Listening at: {} ({})",
                listener.describe(),
                std::process::id()
            );
        }
        let preloaded = if config.preload {
            // As for a single process (see `serve`): until the master reads
            // them from its signalfd, they stay pending.
            let _ = startup_signals().thread_block();
            match self.load(cwd) {
                Ok(app) => Some(app),
                Err(code) => return code,
            }
        } else {
            None
        };
        let mut reload_dirs = Vec::new();
        if config.reload {
            reload_dirs.push(cwd.to_path_buf());
            reload_dirs.extend(config.pythonpath.iter().map(|p| cwd.join(p)));
        }
        let settings = MasterSettings {
            workers: config.workers,
            timeout: config.timeout,
            graceful_timeout: config.graceful_timeout,
            reload_dirs,
            preloaded: preloaded.is_some(),
            reopen_logs: logfile::reopen,
        };
        let mut spawner = PySpawner {
            cli: self,
            listeners,
            cwd,
            preloaded,
            access_log,
        };
        let result = master::run(settings, &mut spawner);
        if spawner.preloaded.is_some() {
            // Python objects are released with the GIL held.
            Python::attach(|_| drop(spawner.preloaded.take()));
        }
        match result {
            Ok(()) => OK,
            Err(e) => fail(e),
        }
    }

    /// Starts Python if this process runs its own (once per process), puts
    /// the app's directories on sys.path and imports the app. On failure
    /// the error has been reported and the exit status is returned.
    fn load(&self, cwd: &Path) -> Result<Py<PyAny>, u8> {
        if self.interpreter == Interpreter::Embedded {
            let argv: Vec<String> = std::env::args().take(1).collect();
            if let Err(e) = python::initialize(self.config.virtualenv.as_deref(), &argv) {
                return Err(fail(e));
            }
        }
        Python::attach(|py| {
            let mut path = vec![cwd.to_path_buf()];
            path.extend(self.config.pythonpath.iter().cloned());
            python::prepend_sys_path(py, &path)
                .map_err(|e| fail(format_args!("cannot set sys.path: {e}")))?;
            self.import(py)
        })
    }

    fn import(&self, py: Python<'_>) -> Result<Py<PyAny>, u8> {
        let config = self.config;
        match python::load_app(py, &config.app) {
            Ok(app) => Ok(app.unbind()),
            Err(LoadError::Raised(traceback)) if config.reload => {
                log::error!(
                    "failed to load application '{}'; answering 500 until a file changes",
                    serving::describe_app(config)
                );
                python::failed_import_app(py, &traceback)
                    .map(Bound::unbind)
                    .map_err(|e| fail(format_exception(py, &e)))
            }
            Err(LoadError::Raised(_)) => Err(fail(format_args!(
                "failed to load application '{}'",
                serving::describe_app(config)
            ))),
            Err(e) => Err(fail(e)),
        }
    }

    /// One serving process: the single process, or a worker under the
    /// master. Returns the exit status. Once the event loop holds its own
    /// copies of the listening sockets, the process's are closed (see
    /// below), so `listeners` is left without sockets.
    fn serve(
        &self,
        listeners: &mut Listeners,
        cwd: &Path,
        worker: Option<WorkerEnv>,
        preloaded: Option<Py<PyAny>>,
        access_log: Option<AccessLog>,
    ) -> u8 {
        if worker.is_none() {
            // Until the event loop handles them, the default actions of these
            // would kill (HUP, USR1: logrotate's postrotate) or stop (TTIN,
            // TTOU) a process still importing its app. Blocked, they stay
            // pending until the loop unblocks them. TERM and INT still end a
            // slow import.
            let _ = startup_signals().thread_block();
        }
        let app = match preloaded {
            Some(app) => app,
            None => match self.load(cwd) {
                Ok(app) => app,
                // The master tells a worker that could not import the app
                // from one that crashed.
                Err(_) if worker.is_some() => return master::WORKER_BOOT_ERROR as u8,
                Err(code) => return code,
            },
        };
        let settings = serving::server_settings(self.config, worker.is_some(), Signals::Process);
        let server = match serving::event_loop(listeners, settings) {
            Ok(s) => s,
            Err(e) => return fail(e),
        };
        // Only the loop's copies may stay open: it closes them when the drain
        // begins, and a copy left here would keep the kernel completing
        // handshakes that nobody accepts, reset at exit. The socket files
        // are still removed at exit (by `Listeners`' Drop).
        let addresses: Vec<String> = listeners.sockets.drain(..).map(|l| l.describe()).collect();
        Python::attach(|py| {
            if let Err(e) = python::yield_sigint(py) {
                log::warn!("cannot take over SIGINT: {}", format_exception(py, &e));
            }
            let wsgi = match serving::wsgi_app(py, app.into_bound(py), self.config, access_log) {
                Ok(w) => w,
                Err(e) => return fail(format_exception(py, &e)),
            };
            let (heartbeat, budget) = match worker {
                Some(env) => (
                    Some(Heartbeat::new(env.heartbeat)),
                    request_budget(self.config.max_requests, self.config.max_requests_jitter),
                ),
                None => {
                    self.announce(py, &addresses);
                    (None, None)
                }
            };
            let mut app = Supervised::new(wsgi, heartbeat, budget);
            match server.run(&mut app) {
                Ok(()) => OK,
                Err(e) => fail(format_args!("event loop failed: {e}")),
            }
        })
    }

    /// The single process's start-up lines (a master says its own).
    fn announce(&self, py: Python<'_>, addresses: &[String]) {
        log::info!(
            "rwsgi-lite {} serving {} ({})",
            env!("CARGO_PKG_VERSION"),
            serving::describe_app(self.config),
            python::describe(py)
        );
        for address in addresses {
            log::info!("Listening at: {address} ({})", std::process::id());
        }
    }
}

/// Forks workers for the master and runs them.
struct PySpawner<'a> {
    cli: &'a Cli<'a>,
    /// The master's sockets, which every worker it forks copies; closed
    /// when the master stops (see `stop_listening`).
    listeners: &'a mut Listeners,
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

    fn stop_listening(&mut self) {
        // The socket files stay until the master exits (`Listeners`' Drop).
        self.listeners.sockets.clear();
    }

    fn serve(&mut self, env: WorkerEnv) -> i32 {
        let code = self.cli.serve(
            self.listeners,
            self.cwd,
            Some(env),
            self.preloaded.take(),
            self.access_log.take(),
        );
        match self.cli.interpreter {
            Interpreter::Embedded => python::finalize(),
            // The worker exits from inside the console script's call: no
            // finalization under a running frame, but what the app printed
            // is not lost.
            Interpreter::Host => python::flush_std_streams(),
        }
        i32::from(code)
    }
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
