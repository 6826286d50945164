//! End-to-end command line behaviour: help, version, usage errors, app
//! loading errors, APP forms and bind address kinds.
#![cfg(feature = "python")]

mod common;

use common::*;
use std::net::TcpListener;

fn apps() -> String {
    apps_dir().to_string_lossy().into_owned()
}

/// Asserts exit `code` and exactly one non-empty line on stderr.
fn assert_one_line_exit(o: &Output, code: i32, what: &str) {
    assert_eq!(
        o.code(),
        Some(code),
        "{what}: wrong exit status\n{}",
        o.describe()
    );
    assert_eq!(
        o.stderr_lines().len(),
        1,
        "{what}: expected exactly one line on stderr\n{}",
        o.describe()
    );
}

#[test]
fn help_exits_0_and_mentions_bind() {
    for flag in ["--help", "-h"] {
        let o = run_to_exit(&[flag]);
        assert_eq!(o.code(), Some(0), "{flag}\n{}", o.describe());
        assert!(
            o.stdout.contains("--bind"),
            "{flag}: help does not mention --bind\n{}",
            o.describe()
        );
        for opt in [
            "--chdir",
            "--keep-alive",
            "--limit-request-body",
            "--graceful-timeout",
        ] {
            assert!(
                o.stdout.contains(opt),
                "{flag}: help does not mention {opt}\n{}",
                o.describe()
            );
        }
    }
}

#[test]
fn version_exits_0() {
    for flag in ["--version", "-V"] {
        let o = run_to_exit(&[flag]);
        assert_eq!(o.code(), Some(0), "{flag}\n{}", o.describe());
        assert!(
            o.stdout.contains(env!("CARGO_PKG_VERSION")),
            "{flag}: version {} not printed\n{}",
            env!("CARGO_PKG_VERSION"),
            o.describe()
        );
    }
}

#[test]
fn usage_errors_exit_2_with_one_line() {
    let a = apps();
    let cases: Vec<(&str, Vec<&str>)> = vec![
        ("unknown flag", vec!["--no-such-flag", "testapp:app"]),
        ("unknown short flag", vec!["-Z", "testapp:app"]),
        (
            "bad number for --backlog",
            vec!["--backlog", "abc", "testapp:app"],
        ),
        (
            "bad number for --keep-alive",
            vec!["--keep-alive", "soon", "testapp:app"],
        ),
        (
            "negative --limit-request-line",
            vec!["--limit-request-line", "-5", "testapp:app"],
        ),
        (
            "bad --limit-request-body",
            vec!["--limit-request-body", "1x", "testapp:app"],
        ),
        (
            "bad --graceful-timeout",
            vec!["--graceful-timeout", "", "testapp:app"],
        ),
        ("flag missing its value", vec!["testapp:app", "--bind"]),
        ("missing APP", vec![]),
        (
            "missing APP with flags",
            vec!["-b", "127.0.0.1:0", "--chdir", &a],
        ),
        (
            "bad --log-level",
            vec!["--log-level", "loud", "testapp:app"],
        ),
    ];
    for (what, args) in cases {
        let o = run_to_exit(&args);
        assert_one_line_exit(&o, 2, &format!("{what} ({args:?})"));
    }
}

#[test]
fn bad_bind_address_is_one_line() {
    for b in ["nonsense", "127.0.0.1:99999", "127.0.0.1:http-ish"] {
        let o = run_to_exit(&["-b", b, "--chdir", &apps(), "testapp:app"]);
        assert!(
            matches!(o.code(), Some(1) | Some(2)),
            "-b {b}: expected exit 1 or 2\n{}",
            o.describe()
        );
        assert_eq!(
            o.stderr_lines().len(),
            1,
            "-b {b}: expected one line\n{}",
            o.describe()
        );
    }
}

#[test]
fn missing_module_exits_1_with_traceback() {
    let o = run_to_exit(&[
        "-b",
        "127.0.0.1:0",
        "--chdir",
        &apps(),
        "no_such_module_xyz:app",
    ]);
    assert_eq!(o.code(), Some(1), "{}", o.describe());
    assert!(
        o.stderr.contains("ModuleNotFoundError") || o.stderr.contains("Traceback"),
        "{}",
        o.describe()
    );
    assert!(o.stderr.contains("no_such_module_xyz"), "{}", o.describe());
}

#[test]
fn module_raising_at_import_exits_1_with_traceback() {
    let o = run_to_exit(&["-b", "127.0.0.1:0", "--chdir", &apps(), "raising:app"]);
    assert_eq!(o.code(), Some(1), "{}", o.describe());
    assert!(o.stderr.contains("Traceback"), "{}", o.describe());
    assert!(
        o.stderr.contains("RuntimeError: boom at import time"),
        "{}",
        o.describe()
    );
}

#[test]
fn missing_attribute_exits_1_with_one_line() {
    let o = run_to_exit(&[
        "-b",
        "127.0.0.1:0",
        "--chdir",
        &apps(),
        "testapp:nope_not_here",
    ]);
    assert_one_line_exit(&o, 1, "missing attribute");
    assert!(o.stderr.contains("nope_not_here"), "{}", o.describe());
}

#[test]
fn not_callable_exits_1_with_one_line() {
    let o = run_to_exit(&[
        "-b",
        "127.0.0.1:0",
        "--chdir",
        &apps(),
        "testapp:not_callable",
    ]);
    assert_one_line_exit(&o, 1, "app not callable");
    assert!(o.stderr.contains("not_callable"), "{}", o.describe());
}

#[test]
fn bad_app_spec_exits_1_with_one_line() {
    for spec in [
        "testapp:",
        ":app",
        "testapp:app:extra",
        "testapp:create_app(",
        "testapp:1bad",
    ] {
        let o = run_to_exit(&["-b", "127.0.0.1:0", "--chdir", &apps(), spec]);
        assert_one_line_exit(&o, 1, &format!("bad app spec {spec:?}"));
    }
}

#[test]
fn port_in_use_exits_1_with_one_line() {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let bind = format!("127.0.0.1:{port}");
    let o = run_to_exit(&["-b", &bind, "--chdir", &apps(), "testapp:app"]);
    assert_one_line_exit(&o, 1, "port in use");
    assert!(
        o.stderr.contains(&port.to_string()),
        "the line should name the address\n{}",
        o.describe()
    );
    drop(l);
}

#[test]
fn app_form_factory_call() {
    let s = Server::start("testapp:create_app()");
    assert_eq!(s.get("/").body_str(), "from factory 1");
    assert_eq!(
        s.get("/again").body_str(),
        "from factory 1",
        "factory called more than once"
    );
}

#[test]
fn app_form_module_only_uses_application() {
    let s = Server::start("testapp");
    let r = s.get("/path/x");
    assert_eq!(r.status, 200);
    assert_eq!(r.body_str(), "from application");
}

#[test]
fn app_form_dotted_attribute() {
    let s = Server::start("testapp:holder.app");
    assert_eq!(s.get("/path/dotted").body_str(), "/path/dotted");
}

#[test]
fn pythonpath_flag() {
    let s = Server::builder("testapp:app")
        .no_chdir()
        .args(&["--pythonpath", &apps()])
        .start();
    assert_eq!(s.get("/path/pp").body_str(), "/path/pp");
}

#[test]
fn ipv6_bind() {
    if std::net::TcpListener::bind("[::1]:0").is_err() {
        eprintln!("skipping ipv6_bind: ::1 is not available here");
        return;
    }
    let s = Server::builder("testapp:app").bind("[::1]:0").start();
    let addr = s.addr();
    assert!(addr.is_ipv6(), "listening on {addr}");
    let mut c = Client::tcp(addr);
    c.send(
        format!(
            "GET /environ HTTP/1.1\r\nHost: [::1]:{}\r\nConnection: close\r\n\r\n",
            addr.port()
        )
        .as_bytes(),
    );
    let r = c.read_response();
    assert_eq!(r.status, 200, "{}", r.raw_str());
    let kv = parse_kv(&r.body);
    let remote = kv
        .iter()
        .find(|(k, _, _)| k == "REMOTE_ADDR")
        .map(|(_, _, v)| v.clone());
    assert_eq!(remote.as_deref(), Some("'::1'"));
}

#[test]
fn unix_socket_bind() {
    let path = temp_path("unix.sock");
    let spec = format!("unix:{}", path.display());
    let s = Server::builder("testapp:app").bind(&spec).start();
    assert_eq!(s.addrs, vec![Listen::Unix(path.clone())], "Listening line");
    let mut c = Client::unix(&path);
    for i in 0..2 {
        c.send(format!("GET /path/unix{i} HTTP/1.1\r\nHost: localhost\r\n\r\n").as_bytes());
        let r = c.read_response();
        assert_eq!(r.status, 200, "{}", r.raw_str());
        assert_eq!(r.body_str(), format!("/path/unix{i}"));
    }
    c.send(b"GET /environ HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    let r = c.read_response();
    assert_eq!(r.status, 200, "{}", r.raw_str());
    c.assert_closed();
    drop(s);
    let _ = std::fs::remove_file(&path);
}

#[test]
fn several_binds_tcp_and_unix() {
    let path = temp_path("multi.sock");
    let spec = format!("unix:{}", path.display());
    let s = Server::builder("testapp:app")
        .bind("127.0.0.1:0")
        .bind(&spec)
        .start();
    assert_eq!(s.addrs.len(), 2, "{:?}", s.addrs);
    assert_eq!(s.get("/path/tcp").body_str(), "/path/tcp");
    let mut c = Client::unix(&path);
    c.send(b"GET /path/unix HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    assert_eq!(c.read_response().body_str(), "/path/unix");
    drop(s);
    let _ = std::fs::remove_file(&path);
}

#[test]
fn no_rust_panic_on_any_startup_failure() {
    // run_to_exit already asserts the absence of "panicked at"; this runs a
    // few odd inputs through it.
    let a = apps();
    for args in [
        vec!["--chdir", "/nonexistent/dir/xyz", "testapp:app"],
        vec![
            "--chdir",
            &a,
            "-b",
            "unix:/nonexistent/dir/x.sock",
            "testapp:app",
        ],
        vec!["--chdir", &a, "testapp:app", "extra-positional"],
        vec!["--chdir", &a, "testapp:create_app()x"],
    ] {
        let o = run_to_exit(&args);
        assert_ne!(o.code(), Some(0), "{args:?}\n{}", o.describe());
        assert!(
            o.code().is_some(),
            "{args:?}: killed by a signal\n{}",
            o.describe()
        );
    }
}

#[test]
fn all_tuning_flags_are_accepted() {
    let s = Server::start_with(
        "testapp:app",
        &[
            "--backlog",
            "64",
            "--keep-alive",
            "3",
            "--limit-request-line",
            "4000",
            "--limit-request-fields",
            "50",
            "--limit-request-field-size",
            "4000",
            "--limit-request-body",
            "100000",
            "--graceful-timeout",
            "5",
            "--log-level",
            "info",
        ],
    );
    assert_eq!(s.get("/path/flags").body_str(), "/path/flags");
}
