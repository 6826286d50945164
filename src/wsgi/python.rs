//! The embedded interpreter: start it through PyConfig (so a virtualenv
//! works and Python's signal machinery stays on), put the app's directories
//! on `sys.path`, import the app, and shut the interpreter down at exit.

use std::ffi::{CString, OsStr};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use pyo3::exceptions::{PyKeyboardInterrupt, PySystemExit};
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::{PyList, PyString};

use crate::config::AppSpec;

/// The interpreter this binary was built against (from build.rs), used as
/// `sys.executable` when no virtualenv is given so `sys.prefix` and
/// subprocesses that re-run `sys.executable` find the real Python.
const BUILD_PYTHON: Option<&str> = option_env!("RWSGI_BUILD_PYTHON");

/// Why the application could not be loaded.
#[derive(Debug)]
pub enum LoadError {
    /// Python could not start; the message says why.
    Init(String),
    /// Importing or calling the factory raised; the traceback (here too)
    /// was printed.
    Raised(String),
    /// The spec names something that is not there or not callable.
    Spec(String),
}

impl std::fmt::Display for LoadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LoadError::Init(m) => write!(f, "cannot start Python: {m}"),
            LoadError::Raised(_) => f.write_str("the application raised while loading"),
            LoadError::Spec(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for LoadError {}

/// Starts the interpreter. `virtualenv` (a directory with `bin/python`)
/// becomes `sys.executable`, from which Python finds `pyvenv.cfg` and sets
/// `sys.prefix`; `home` is never set, because it would bypass that.
/// The calling thread keeps no GIL afterwards: use `Python::attach`.
pub fn initialize(virtualenv: Option<&Path>, argv: &[String]) -> Result<(), LoadError> {
    let executable: Option<PathBuf> = match virtualenv {
        Some(venv) => {
            let python = venv.join("bin").join("python");
            if !python.exists() {
                return Err(LoadError::Init(format!(
                    "virtualenv {}: {} not found",
                    venv.display(),
                    python.display()
                )));
            }
            Some(python)
        }
        None => BUILD_PYTHON.map(PathBuf::from).filter(|p| p.exists()),
    };
    let executable = match executable {
        Some(p) => Some(cstring(p.as_os_str())?),
        None => None,
    };
    let args: Vec<CString> = argv
        .iter()
        .map(|a| cstring(OsStr::new(a)))
        .collect::<Result<_, _>>()?;
    let mut arg_ptrs: Vec<*const std::os::raw::c_char> = args.iter().map(|a| a.as_ptr()).collect();

    // SAFETY: PyConfig is a plain C struct that PyConfig_InitPythonConfig
    // fully initialises before use; every string we pass is a valid
    // NUL-terminated CString that outlives the calls (CPython copies it);
    // PyConfig_Clear frees what CPython allocated. The GIL acquired by
    // Py_InitializeFromConfig is released with PyEval_SaveThread so pyo3's
    // attach/detach manage it from here on.
    unsafe {
        if ffi::Py_IsInitialized() != 0 {
            return Ok(());
        }
        let mut config = std::mem::MaybeUninit::<ffi::PyConfig>::zeroed();
        ffi::PyConfig_InitPythonConfig(config.as_mut_ptr());
        let mut config = config.assume_init();
        // Keep Python's own handlers so handlers the app installs run.
        config.install_signal_handlers = 1;
        // Our argv belongs to us, not to the Python command line.
        config.parse_argv = 0;
        let status = ffi::PyConfig_SetBytesArgv(
            &mut config,
            arg_ptrs.len() as ffi::Py_ssize_t,
            arg_ptrs.as_mut_ptr(),
        );
        if ffi::PyStatus_Exception(status) != 0 {
            ffi::PyConfig_Clear(&mut config);
            return Err(LoadError::Init(status_message(status)));
        }
        if let Some(exe) = &executable {
            let status =
                ffi::PyConfig_SetBytesString(&mut config, &mut config.executable, exe.as_ptr());
            if ffi::PyStatus_Exception(status) != 0 {
                ffi::PyConfig_Clear(&mut config);
                return Err(LoadError::Init(status_message(status)));
            }
        }
        let status = ffi::Py_InitializeFromConfig(&config);
        ffi::PyConfig_Clear(&mut config);
        if ffi::PyStatus_Exception(status) != 0 {
            return Err(LoadError::Init(status_message(status)));
        }
        ffi::PyEval_SaveThread();
    }
    Ok(())
}

fn status_message(status: ffi::PyStatus) -> String {
    if status.err_msg.is_null() {
        return "unknown error".into();
    }
    // SAFETY: a non-null err_msg of a PyStatus is a static C string.
    unsafe { std::ffi::CStr::from_ptr(status.err_msg) }
        .to_string_lossy()
        .into_owned()
}

fn cstring(s: &OsStr) -> Result<CString, LoadError> {
    CString::new(s.as_bytes()).map_err(|_| LoadError::Init(format!("NUL byte in {s:?}")))
}

/// Puts `dirs` at the front of `sys.path`, in order.
pub fn prepend_sys_path(py: Python<'_>, dirs: &[PathBuf]) -> PyResult<()> {
    let path = py.import("sys")?.getattr("path")?.cast_into::<PyList>()?;
    for (i, dir) in dirs.iter().enumerate() {
        let s = dir.to_string_lossy();
        path.insert(i, PyString::new(py, &s))?;
    }
    Ok(())
}

/// Imports the app for the command line: an exception is printed with
/// its traceback and reported, a spec naming nothing callable is
/// described.
pub(crate) fn load_app<'py>(
    py: Python<'py>,
    spec: &AppSpec,
) -> Result<Bound<'py, PyAny>, LoadError> {
    import_app(py, spec).map_err(|e| match e {
        AppError::Raised(e) => {
            let traceback = crate::wsgi::format_exception(py, &e);
            e.print(py);
            LoadError::Raised(traceback)
        }
        AppError::Missing(m) | AppError::NotCallable(m) => LoadError::Spec(m),
    })
}

/// Why an app spec gave no app.
pub enum AppError {
    /// Importing the module or calling the factory raised.
    Raised(PyErr),
    /// The module has no such attribute.
    Missing(String),
    /// The attribute is not callable.
    NotCallable(String),
}

impl AppError {
    /// The exception a Python caller gets: the import's own, or the
    /// AttributeError or TypeError that the same lookup in Python raises.
    pub fn into_pyerr(self) -> PyErr {
        match self {
            AppError::Raised(e) => e,
            AppError::Missing(m) => pyo3::exceptions::PyAttributeError::new_err(m),
            AppError::NotCallable(m) => pyo3::exceptions::PyTypeError::new_err(m),
        }
    }
}

/// Imports the module, resolves the dotted attribute, calls it if it is a
/// factory, and checks that the result is callable.
pub fn import_app<'py>(py: Python<'py>, spec: &AppSpec) -> Result<Bound<'py, PyAny>, AppError> {
    let module = py.import(spec.module.as_str()).map_err(AppError::Raised)?;
    let mut obj: Bound<'py, PyAny> = module.into_any();
    for part in spec.callable.split('.') {
        obj = obj.getattr(part).map_err(|_| {
            AppError::Missing(format!(
                "application '{}:{}' not found: module '{}' has no attribute '{}'",
                spec.module, spec.callable, spec.module, spec.callable
            ))
        })?;
    }
    if spec.factory {
        obj = obj.call0().map_err(AppError::Raised)?;
    }
    if !obj.is_callable() {
        return Err(AppError::NotCallable(format!(
            "application '{}:{}' is not callable (it is a {})",
            spec.module,
            spec.callable,
            obj.get_type()
                .name()
                .map(|n| n.to_string())
                .unwrap_or_default()
        )));
    }
    Ok(obj)
}

/// fork(2) for a process that may run Python. With an interpreter the fork
/// happens inside CPython's fork hooks, as `os.fork()` does it: the import
/// lock and thread states stay consistent and `os.register_at_fork`
/// callbacks run.
pub fn fork() -> nix::Result<nix::unistd::ForkResult> {
    use nix::unistd::ForkResult;
    // SAFETY: Py_IsInitialized may be called at any time.
    if unsafe { ffi::Py_IsInitialized() } == 0 {
        // SAFETY: without an interpreter this process is single-threaded
        // here (the master), so the child inherits no lock held by a
        // thread that does not exist in it.
        return unsafe { nix::unistd::fork() };
    }
    Python::attach(|_py| {
        // SAFETY: the GIL is held (attached), as the three hooks require;
        // BeforeFork takes the interpreter's locks so that the fork sees
        // them released, and exactly one AfterFork hook runs in each
        // process afterwards.
        unsafe {
            ffi::PyOS_BeforeFork();
            let result = nix::unistd::fork();
            match result {
                Ok(ForkResult::Child) => ffi::PyOS_AfterFork_Child(),
                _ => ffi::PyOS_AfterFork_Parent(),
            }
            result
        }
    })
}

/// `--reload` keeps the server up when the app cannot be imported: this
/// app answers every request 500 with the traceback, until a fixed file
/// restarts the worker (gunicorn does the same).
pub(crate) fn failed_import_app<'py>(
    py: Python<'py>,
    traceback: &str,
) -> PyResult<Bound<'py, PyAny>> {
    let code = c"
def make(message):
    body = message.encode('utf-8', 'replace')
    def app(environ, start_response):
        start_response('500 Internal Server Error', [
            ('Content-Type', 'text/plain; charset=utf-8'),
            ('Content-Length', str(len(body))),
        ])
        return [body]
    return app
";
    let module = PyModule::from_code(py, code, c"rwsgi_lite_reload.py", c"rwsgi_lite_reload")?;
    let message = format!(
        "rwsgi-lite --reload: the application failed to load; fix it and save.\n\n{traceback}"
    );
    module.getattr("make")?.call1((message,))
}

/// Python's default SIGINT handler raises KeyboardInterrupt at a random
/// point of an app call; the server handles SIGINT itself (graceful stop).
/// A handler the app installed is left alone and still runs.
pub(crate) fn yield_sigint(py: Python<'_>) -> PyResult<()> {
    let signal = py.import("signal")?;
    let current = signal.call_method1("getsignal", (signal.getattr("SIGINT")?,))?;
    if current.is(&signal.getattr("default_int_handler")?) {
        signal.call_method1(
            "signal",
            (signal.getattr("SIGINT")?, signal.getattr("SIG_DFL")?),
        )?;
    }
    Ok(())
}

/// Runs pending Python signal handlers. The error is a SystemExit or
/// KeyboardInterrupt one raised: the app asks the server to stop (other
/// exceptions are logged).
pub(crate) fn run_signal_handlers(py: Python<'_>) -> Result<(), PyErr> {
    // SAFETY: called with the GIL held (we are attached through `py`).
    let rc = unsafe { ffi::PyErr_CheckSignals() };
    if rc == 0 {
        return Ok(());
    }
    let Some(err) = PyErr::take(py) else {
        return Ok(());
    };
    if err.is_instance_of::<PySystemExit>(py) || err.is_instance_of::<PyKeyboardInterrupt>(py) {
        log::info!("a Python signal handler raised {}; stopping", err);
        return Err(err);
    }
    log::error!(
        "a Python signal handler raised:\n{}",
        crate::wsgi::format_exception(py, &err)
    );
    Ok(())
}

/// Version and prefix, for the start-up log.
pub fn describe(py: Python<'_>) -> String {
    let sys = match py.import("sys") {
        Ok(s) => s,
        Err(_) => return String::from("Python (unknown)"),
    };
    let version = sys
        .getattr("version")
        .map(|v| v.to_string())
        .unwrap_or_default();
    let version = version.split_whitespace().next().unwrap_or("?").to_string();
    let prefix = sys
        .getattr("prefix")
        .map(|v| v.to_string())
        .unwrap_or_default();
    format!("Python {version}, sys.prefix {prefix}")
}

/// Flushes `sys.stdout` and `sys.stderr`: what a process that exits
/// without finalizing Python would otherwise lose.
pub(crate) fn flush_std_streams() {
    Python::attach(|py| {
        let Ok(sys) = py.import("sys") else {
            return;
        };
        for name in ["stdout", "stderr"] {
            if let Ok(stream) = sys.getattr(name) {
                // A closed or replaced stream may refuse; nothing to do then.
                let _ = stream.call_method0("flush");
            }
        }
    });
}

/// Finalises the interpreter so atexit handlers run.
pub(crate) fn finalize() {
    // SAFETY: the GIL is not held by this thread here (everything ran
    // inside `Python::attach`, which released it); PyGILState_Ensure takes
    // it and Py_FinalizeEx must be called with it held, once.
    unsafe {
        if ffi::Py_IsInitialized() != 0 {
            ffi::PyGILState_Ensure();
            ffi::Py_FinalizeEx();
        }
    }
}
