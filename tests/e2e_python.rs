//! The embedded interpreter: virtualenvs (--virtualenv and $VIRTUAL_ENV),
//! sys.prefix without one, sys.path, and Python signal handlers installed by
//! the application.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a panic is a test's failure report
#![cfg(feature = "python")]

mod common;

use common::*;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

fn info(server: &Server) -> serde_json::Value {
    let resp = server.get("/");
    assert_eq!(
        resp.status,
        200,
        "{}\nlog:\n{}",
        resp.raw_str(),
        server.log()
    );
    serde_json::from_slice(&resp.body).expect("pyinfo answers JSON")
}

fn python() -> String {
    std::env::var("PYO3_PYTHON").unwrap_or_else(|_| "python3".to_string())
}

/// A fresh virtualenv with a `venvmarker` module in its site-packages.
fn make_venv() -> PathBuf {
    let dir = temp_path("venv");
    let status = Command::new(python())
        .args(["-m", "venv", "--without-pip"])
        .arg(&dir)
        .status()
        .expect("run python3 -m venv");
    assert!(status.success(), "python3 -m venv failed");
    let lib = dir.join("lib");
    let site = std::fs::read_dir(&lib)
        .expect("venv has lib/")
        .filter_map(Result::ok)
        .map(|e| e.path().join("site-packages"))
        .find(|p| p.is_dir())
        .expect("venv has lib/pythonX.Y/site-packages");
    std::fs::write(site.join("venvmarker.py"), "VALUE = 'venv'\n").unwrap();
    dir
}

fn same_dir(a: &str, b: &Path) -> bool {
    match (Path::new(a).canonicalize(), b.canonicalize()) {
        (Ok(x), Ok(y)) => x == y,
        _ => false,
    }
}

fn start(app: &str, args: &[&str], venv_env: Option<&Path>) -> Server {
    let (mut cmd, n) = Server::builder(app).args(args).command();
    cmd.env_remove("VIRTUAL_ENV");
    if let Some(dir) = venv_env {
        cmd.env("VIRTUAL_ENV", dir);
    }
    start_command(cmd, n)
}

#[test]
fn without_a_virtualenv_prefix_is_the_build_interpreter() {
    let s = start("pyinfo:app", &[], None);
    let v = info(&s);
    let prefix = v["prefix"].as_str().unwrap();
    // The trap this guards against: a system libpython loaded at run time
    // (then sys.prefix is /usr and the build interpreter's packages vanish).
    let expected = Command::new(python())
        .args(["-c", "import sys; print(sys.base_prefix)"])
        .output()
        .expect("run python3");
    let expected = String::from_utf8_lossy(&expected.stdout).trim().to_string();
    assert!(
        same_dir(prefix, Path::new(&expected)),
        "sys.prefix {prefix} != {expected}"
    );
    assert_eq!(v["marker"], serde_json::Value::Null);
    let exe = v["executable"].as_str().unwrap();
    assert!(
        Path::new(exe).is_file(),
        "sys.executable {exe:?} is not a file"
    );
    // --chdir (tests/apps) comes first on sys.path.
    assert!(
        same_dir(v["path0"].as_str().unwrap(), &apps_dir()),
        "sys.path[0] = {}",
        v["path0"]
    );
    assert!(
        s.log().contains("sys.prefix"),
        "start-up log names sys.prefix:\n{}",
        s.log()
    );
}

#[test]
fn virtualenv_flag_sets_prefix_and_packages() {
    let venv = make_venv();
    let s = start(
        "pyinfo:app",
        &["--virtualenv", venv.to_str().unwrap()],
        None,
    );
    let v = info(&s);
    assert!(
        same_dir(v["prefix"].as_str().unwrap(), &venv),
        "sys.prefix {} is not the venv {}",
        v["prefix"],
        venv.display()
    );
    assert_ne!(
        v["prefix"], v["base_prefix"],
        "venv prefix must differ from base"
    );
    assert_eq!(
        v["marker"], "venv",
        "the venv's site-packages are importable"
    );
    assert!(
        v["executable"]
            .as_str()
            .unwrap()
            .starts_with(venv.to_str().unwrap()),
        "sys.executable {} is inside the venv",
        v["executable"]
    );
    drop(s);
    let _ = std::fs::remove_dir_all(&venv);
}

#[test]
fn virtual_env_variable_is_used_when_no_flag() {
    let venv = make_venv();
    let s = start("pyinfo:app", &[], Some(&venv));
    let v = info(&s);
    assert!(
        same_dir(v["prefix"].as_str().unwrap(), &venv),
        "sys.prefix {} is not $VIRTUAL_ENV {}",
        v["prefix"],
        venv.display()
    );
    assert_eq!(v["marker"], "venv");
    drop(s);
    let _ = std::fs::remove_dir_all(&venv);
}

#[test]
fn missing_virtualenv_is_one_clear_line_exit_1() {
    let o = run_to_exit(&[
        "-b",
        "127.0.0.1:0",
        "--virtualenv",
        "/nonexistent/venv",
        "--chdir",
        apps_dir().to_str().unwrap(),
        "pyinfo:app",
    ]);
    assert_eq!(o.code(), Some(1), "{}", o.describe());
    assert_eq!(o.stderr_lines().len(), 1, "{}", o.describe());
    assert!(o.stderr.contains("/nonexistent/venv"), "{}", o.describe());
}

#[test]
fn app_signal_handler_runs_inside_the_server() {
    let s = start("pyinfo:app", &[], None);
    s.signal(libc::SIGUSR1);
    assert!(
        s.wait_for_log("USR1-HANDLED", Duration::from_secs(10)),
        "the app's SIGUSR1 handler did not run:\n{}",
        s.log()
    );
    // The server still serves, and the handler ran in the app's interpreter.
    let v = info(&s);
    assert_eq!(v["events"], serde_json::json!(["usr1"]));
}

#[test]
fn app_signal_handler_raising_systemexit_stops_gracefully() {
    let mut s = start("pyinfo:app", &[], None);
    assert_eq!(info(&s)["events"], serde_json::json!([]));
    s.signal(libc::SIGUSR2);
    match s.wait_timeout(Duration::from_secs(10)) {
        Some(st) => assert_eq!(st.code(), Some(0), "exit status\nlog:\n{}", s.log()),
        None => panic!("still running after SystemExit in a handler\n{}", s.log()),
    }
}
