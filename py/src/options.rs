//! Keyword arguments to a `Config`: each keyword is a long flag of the
//! command line with underscores (`keep_alive=5` is `--keep-alive 5`), and
//! the command line's own parser checks the values, so an option means
//! the same in both front ends. Errors name the keyword.

use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyString, PyTuple};

use rwsgi_lite::config::{self, Command, Config};

/// Flags the command line has that mean nothing for a call.
const NOT_KEYWORDS: &[&str] = &["help", "version"];

/// Options whose job belongs to the process that owns the server, not to
/// a server running inside someone else's process.
const PROCESS_OPTIONS: &[(&str, &str)] = &[
    (
        "chdir",
        "changes the directory of the whole process; call os.chdir()",
    ),
    (
        "umask",
        "changes the umask of the whole process; call os.umask()",
    ),
    (
        "pid",
        "writes a pid file for a process the command line runs",
    ),
    (
        "virtualenv",
        "the package serves in the interpreter it is installed in",
    ),
    (
        "error_logfile",
        "records go to the 'rwsgi_lite.error' logger; add a handler to it",
    ),
    ("preload", "needs worker processes"),
    ("reload", "needs worker processes"),
];

/// The configuration for `app_spec` (an import string, or a stand-in when
/// the app is an object) with `host`/`port` and the keyword options.
pub fn config(
    app_spec: &str,
    host: Option<&str>,
    port: Option<u16>,
    options: Option<&Bound<'_, PyDict>>,
) -> PyResult<Config> {
    let mut args = Vec::new();
    let mut has_bind = false;
    if let Some(options) = options {
        for (key, value) in options.iter() {
            let key: String = key.extract()?;
            has_bind |= key == "bind";
            let flag = to_flag(&key)?;
            let before = args.len();
            push_value(&mut args, &key, &flag.0, flag.1, &value)?;
            // Checked alone first, so a bad value is blamed on its keyword.
            if args.len() > before {
                let mut one = args[before..].to_vec();
                one.push(app_spec.to_owned());
                parse(&one).map_err(|e| {
                    let why = e.strip_prefix(&format!("{}: ", flag.0)).unwrap_or(&e);
                    PyValueError::new_err(format!("{key}: {why}"))
                })?;
            }
        }
    }
    if has_bind && (host.is_some() || port.is_some()) {
        return Err(PyTypeError::new_err(
            "give either host and port or bind, not both",
        ));
    }
    if !has_bind {
        args.push("--bind".into());
        args.push(host_port(host.unwrap_or("127.0.0.1"), port.unwrap_or(8000)));
    }
    args.push(app_spec.to_owned());
    let config = parse(&args).map_err(PyValueError::new_err)?;
    check_in_process(&config)?;
    Ok(config)
}

/// `--keep-alive` for `keep_alive`, with whether it takes a value.
fn to_flag(key: &str) -> PyResult<(String, bool)> {
    let long = key.replace('_', "-");
    let found = config::long_options().find(|(name, _)| *name == long);
    match found {
        Some((name, takes_value)) if !NOT_KEYWORDS.contains(&name) && !key.contains('-') => {
            Ok((format!("--{name}"), takes_value))
        }
        _ => Err(PyTypeError::new_err(format!(
            "unexpected keyword argument '{key}'"
        ))),
    }
}

/// Appends the flag and its value(s): a flag takes a bool, `bind` and
/// `pythonpath` also a list, `forwarded_allow_ips` a list joined by
/// commas, everything else a str or a number. None leaves the default.
fn push_value(
    args: &mut Vec<String>,
    key: &str,
    flag: &str,
    takes_value: bool,
    value: &Bound<'_, PyAny>,
) -> PyResult<()> {
    if value.is_none() {
        return Ok(());
    }
    if !takes_value {
        let on: bool = value.extract().map_err(|_| {
            PyTypeError::new_err(format!(
                "{key} takes True or False, not {}",
                type_name(value)
            ))
        })?;
        if on {
            args.push(flag.to_owned());
        }
        return Ok(());
    }
    if value.is_instance_of::<PyList>() || value.is_instance_of::<PyTuple>() {
        let items = value
            .try_iter()?
            .map(|item| scalar(key, &item?))
            .collect::<PyResult<Vec<String>>>()?;
        if key == "forwarded_allow_ips" {
            args.extend([flag.to_owned(), items.join(",")]);
        } else if key == "bind" || key == "pythonpath" {
            for item in items {
                args.extend([flag.to_owned(), item]);
            }
        } else {
            return Err(PyTypeError::new_err(format!(
                "{key} takes one value, not a {}",
                type_name(value)
            )));
        }
        return Ok(());
    }
    args.extend([flag.to_owned(), scalar(key, value)?]);
    Ok(())
}

/// A str, int or float as the command line would spell it.
fn scalar(key: &str, value: &Bound<'_, PyAny>) -> PyResult<String> {
    if value.is_instance_of::<pyo3::types::PyBool>() {
        return Err(PyTypeError::new_err(format!(
            "{key} takes a value, not True or False"
        )));
    }
    if let Ok(s) = value.cast::<PyString>() {
        return Ok(s.to_str()?.to_owned());
    }
    if value.is_instance_of::<pyo3::types::PyInt>()
        || value.is_instance_of::<pyo3::types::PyFloat>()
    {
        return Ok(value.str()?.to_str()?.to_owned());
    }
    if let Ok(path) = value.call_method0("__fspath__") {
        return scalar(key, &path);
    }
    Err(PyTypeError::new_err(format!(
        "{key} takes a str or a number, not {}",
        type_name(value)
    )))
}

fn type_name(value: &Bound<'_, PyAny>) -> String {
    value
        .get_type()
        .name()
        .map(|n| n.to_string())
        .unwrap_or_else(|_| "?".into())
}

fn host_port(host: &str, port: u16) -> String {
    if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// The command line's parser, with its "rwsgi-lite: " prefix left off.
fn parse(args: &[String]) -> Result<Config, String> {
    match config::parse_args(args, None) {
        Ok(Command::Run(config)) => Ok(*config),
        Ok(_) => Err("help and version are not options of a server".into()),
        Err(e) => Err(e
            .to_string()
            .trim_start_matches("rwsgi-lite: ")
            .trim_end_matches("; see --help")
            .to_owned()),
    }
}

/// Refuses what only a process of its own could do (see
/// `PROCESS_OPTIONS`), and worker processes, which the command line has.
fn check_in_process(config: &Config) -> PyResult<()> {
    let set = [
        ("chdir", config.chdir.is_some()),
        ("umask", config.umask.is_some()),
        ("pid", config.pidfile.is_some()),
        ("virtualenv", config.virtualenv.is_some()),
        ("error_logfile", config.error_logfile.is_some()),
        ("preload", config.preload),
        ("reload", config.reload),
    ];
    for (name, given) in set {
        if given {
            let why = PROCESS_OPTIONS
                .iter()
                .find(|(n, _)| *n == name)
                .map_or("", |(_, why)| why);
            return Err(PyValueError::new_err(format!(
                "{name} is not available in-process: {why} (the rwsgi-lite command has it)"
            )));
        }
    }
    if config.uses_master() {
        let what = if config.workers > 1 {
            format!("workers={}", config.workers)
        } else if config.max_requests > 0 {
            "max_requests".to_owned()
        } else {
            "timeout".to_owned()
        };
        return Err(PyValueError::new_err(format!(
            "{what} needs worker processes under a master, which only the rwsgi-lite \
             command runs (rwsgi-lite -w 4 module:app)"
        )));
    }
    Ok(())
}
