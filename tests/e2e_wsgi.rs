//! End-to-end WSGI (PEP 3333) behaviour: environ, wsgi.input, write(),
//! exceptions, close(), wsgiref's validator and a Flask app.
#![cfg(feature = "python")]

mod common;

use common::*;
use std::collections::BTreeMap;
use std::time::Duration;

/// key -> (type name, repr) from the `/environ` or `/input` routes.
fn kv_map(body: &[u8]) -> BTreeMap<String, (String, String)> {
    parse_kv(body)
        .into_iter()
        .map(|(k, t, r)| (k, (t, r)))
        .collect()
}

fn expect_kv(m: &BTreeMap<String, (String, String)>, key: &str, ty: &str, repr: &str, ctx: &str) {
    match m.get(key) {
        Some((t, r)) => assert!(
            t == ty && r == repr,
            "{ctx}: environ[{key:?}] is {t} {r}, expected {ty} {repr}"
        ),
        None => panic!(
            "{ctx}: environ has no {key:?}; keys: {:?}",
            m.keys().collect::<Vec<_>>()
        ),
    }
}

#[test]
fn environ_get_request() {
    let s = Server::start("testapp:app");
    let port = s.port();
    let mut req = format!(
        "GET /environ/caf%C3%A9?x=1&y=%41+z HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUser-Agent: rwsgi-e2e\r\n\
         X-Multi: a\r\nX-Multi: b\r\nX_Forwarded_For: evil\r\nX-Forwarded-For: good\r\n"
    )
    .into_bytes();
    req.extend(b"X-Latin: caf\xe9\r\nConnection: close\r\n\r\n");
    let r = s.request(&req);
    assert_eq!(r.status, 200, "{}", r.raw_str());
    let m = kv_map(&r.body);
    let ctx = "GET /environ/caf%C3%A9";
    expect_kv(&m, "REQUEST_METHOD", "str", "'GET'", ctx);
    expect_kv(&m, "SCRIPT_NAME", "str", "''", ctx);
    expect_kv(&m, "PATH_INFO", "str", "'/environ/cafÃ©'", ctx);
    expect_kv(&m, "QUERY_STRING", "str", "'x=1&y=%41+z'", ctx);
    expect_kv(&m, "SERVER_NAME", "str", "'127.0.0.1'", ctx);
    expect_kv(&m, "SERVER_PORT", "str", &format!("'{port}'"), ctx);
    expect_kv(&m, "SERVER_PROTOCOL", "str", "'HTTP/1.1'", ctx);
    expect_kv(&m, "REMOTE_ADDR", "str", "'127.0.0.1'", ctx);
    expect_kv(&m, "HTTP_HOST", "str", &format!("'127.0.0.1:{port}'"), ctx);
    expect_kv(&m, "HTTP_USER_AGENT", "str", "'rwsgi-e2e'", ctx);
    expect_kv(&m, "HTTP_X_MULTI", "str", "'a,b'", ctx);
    expect_kv(&m, "HTTP_X_FORWARDED_FOR", "str", "'good'", ctx);
    expect_kv(&m, "HTTP_X_LATIN", "str", "'café'", ctx);
    expect_kv(&m, "wsgi.version", "tuple", "(1, 0)", ctx);
    expect_kv(&m, "wsgi.url_scheme", "str", "'http'", ctx);
    expect_kv(&m, "wsgi.multithread", "bool", "False", ctx);
    expect_kv(&m, "wsgi.multiprocess", "bool", "False", ctx);
    expect_kv(&m, "wsgi.run_once", "bool", "False", ctx);
    expect_kv(&m, "wsgi.input", "str", "'<present>'", ctx);
    expect_kv(&m, "wsgi.errors", "str", "'<present>'", ctx);
    for k in [
        "CONTENT_TYPE",
        "CONTENT_LENGTH",
        "HTTP_CONTENT_TYPE",
        "HTTP_CONTENT_LENGTH",
    ] {
        assert!(!m.contains_key(k), "{ctx}: {k} present: {:?}", m.get(k));
    }
    for (k, (t, r)) in &m {
        if !k.contains('.') {
            assert_eq!(t, "str", "{ctx}: environ[{k:?}] = {r} is a {t}, not a str");
        }
    }
}

#[test]
fn environ_underscore_header_is_dropped() {
    let s = Server::start("testapp:app");
    let r = s.request(
        b"GET /environ HTTP/1.1\r\nHost: x\r\nX_Forwarded_For: evil\r\nX_Custom_Only: u\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(r.status, 200, "{}", r.raw_str());
    let m = kv_map(&r.body);
    assert!(
        !m.contains_key("HTTP_X_FORWARDED_FOR"),
        "a header with underscores must be dropped, got HTTP_X_FORWARDED_FOR = {:?}",
        m.get("HTTP_X_FORWARDED_FOR")
    );
    assert!(
        !m.contains_key("HTTP_X_CUSTOM_ONLY"),
        "{:?}",
        m.get("HTTP_X_CUSTOM_ONLY")
    );
}

#[test]
fn environ_post_http10() {
    let s = Server::start("testapp:app");
    let r = s.request(
        b"POST /environ/a%20b HTTP/1.0\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 5\r\n\r\nhello",
    );
    assert_eq!(r.status, 200, "{}", r.raw_str());
    let m = kv_map(&r.body);
    let ctx = "POST /environ/a%20b HTTP/1.0";
    expect_kv(&m, "REQUEST_METHOD", "str", "'POST'", ctx);
    expect_kv(&m, "PATH_INFO", "str", "'/environ/a b'", ctx);
    expect_kv(&m, "SERVER_PROTOCOL", "str", "'HTTP/1.0'", ctx);
    expect_kv(
        &m,
        "CONTENT_TYPE",
        "str",
        "'text/plain; charset=utf-8'",
        ctx,
    );
    expect_kv(&m, "CONTENT_LENGTH", "str", "'5'", ctx);
    if let Some((t, v)) = m.get("QUERY_STRING") {
        assert_eq!(
            (t.as_str(), v.as_str()),
            ("str", "''"),
            "{ctx}: QUERY_STRING"
        );
    }
    for k in ["HTTP_CONTENT_TYPE", "HTTP_CONTENT_LENGTH"] {
        assert!(!m.contains_key(k), "{ctx}: {k} present");
    }
}

#[test]
fn environ_percent_decoding() {
    let s = Server::start("testapp:app");
    for (target, want) in [
        ("/environ/a%20b", "'/environ/a b'"),
        ("/environ/caf%C3%A9", "'/environ/cafÃ©'"),
        ("/environ/%7Euser/x%2By", "'/environ/~user/x+y'"),
        ("/environ/plain+plus", "'/environ/plain+plus'"),
    ] {
        let r = s.get(target);
        assert_eq!(r.status, 200, "{target}: {}", r.raw_str());
        expect_kv(&kv_map(&r.body), "PATH_INFO", "str", want, target);
    }
}

// ---------------------------------------------------------------------------
// wsgi.input
// ---------------------------------------------------------------------------

const INPUT_BODY: &[u8] = b"alpha\nbeta\n\ngamma delta epsilon\nlast-no-newline";

/// Expected results of testapp.INPUT_OPS (what io.BytesIO gives).
fn input_expectations() -> Vec<(&'static str, Vec<&'static str>)> {
    vec![
        (
            "read",
            vec![
                r"bytes b'alpha\nbeta\n\ngamma delta epsilon\nlast-no-newline'",
                "bytes b''",
                "bytes b''",
            ],
        ),
        (
            "readn",
            vec![
                "bytes b'alp'",
                r"bytes b'ha\nb'",
                "bytes b''",
                r"bytes b'eta\n\ngamma delta epsilon\nlast-no-newline'",
                "bytes b''",
                "bytes b''",
            ],
        ),
        (
            "readline",
            vec![
                r"bytes b'alpha\n'",
                r"bytes b'beta\n'",
                r"bytes b'\n'",
                r"bytes b'gamma delta epsilon\n'",
                "bytes b'last-no-newline'",
                "bytes b''",
                "bytes b''",
            ],
        ),
        (
            "readline_n",
            vec![
                "bytes b'alp'",
                r"bytes b'ha\n'",
                r"bytes b'beta\n'",
                "bytes b''",
                r"bytes b'\n'",
                r"bytes b'gamma delta epsilon\n'",
                "bytes b'last-'",
                "bytes b'no-newline'",
                "bytes b''",
            ],
        ),
        (
            "readlines",
            vec![
                r"list [b'alpha\n', b'beta\n', b'\n', b'gamma delta epsilon\n', b'last-no-newline']",
                "bytes b''",
                "bytes b''",
            ],
        ),
        (
            "iter",
            vec![
                r"list [b'alpha\n', b'beta\n', b'\n', b'gamma delta epsilon\n', b'last-no-newline']",
                "bytes b''",
            ],
        ),
        (
            "mixed",
            vec![
                r"bytes b'alpha\n'",
                "bytes b'be'",
                r"bytes b'ta\n'",
                r"list [b'\n', b'gamma delta epsilon\n', b'last-no-newline']",
                "bytes b''",
            ],
        ),
    ]
}

fn check_input_ops(s: &Server, chunked: bool) {
    let mut c = s.connect();
    for (op, want) in input_expectations() {
        let mut req = format!("POST /input?{op} HTTP/1.1\r\nHost: x\r\n").into_bytes();
        if chunked {
            req.extend(b"Transfer-Encoding: chunked\r\n\r\n");
            for piece in INPUT_BODY.chunks(7) {
                req.extend(format!("{:x}\r\n", piece.len()).as_bytes());
                req.extend(piece);
                req.extend(b"\r\n");
            }
            req.extend(b"0\r\n\r\n");
        } else {
            req.extend(format!("Content-Length: {}\r\n\r\n", INPUT_BODY.len()).as_bytes());
            req.extend(INPUT_BODY);
        }
        c.send(&req);
        let r = c.read_response();
        assert_eq!(r.status, 200, "op {op}: {}", r.raw_str());
        let got: Vec<String> = parse_kv(&r.body)
            .into_iter()
            .map(|(_, t, v)| format!("{t} {v}"))
            .collect();
        assert_eq!(got, want, "wsgi.input op {op:?} (chunked={chunked})");
    }
}

#[test]
fn wsgi_input_semantics_content_length() {
    let s = Server::start("testapp:app");
    check_input_ops(&s, false);
}

#[test]
fn wsgi_input_semantics_chunked() {
    let s = Server::start("testapp:app");
    check_input_ops(&s, true);
}

#[test]
fn wsgi_input_empty_body() {
    let s = Server::start("testapp:app");
    let r = s.request(
        b"POST /input?read HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(r.status, 200, "{}", r.raw_str());
    let got: Vec<String> = parse_kv(&r.body)
        .into_iter()
        .map(|(_, t, v)| format!("{t} {v}"))
        .collect();
    assert_eq!(got, ["bytes b''", "bytes b''", "bytes b''"]);
    // GET without any body: read() gives b''.
    let r = s.get("/input?readline");
    assert_eq!(r.status, 200, "{}", r.raw_str());
    assert!(
        parse_kv(&r.body).iter().all(|(_, _, v)| v == "b''"),
        "{}",
        r.body_str()
    );
}

// ---------------------------------------------------------------------------
// write(), wsgi.errors, file_wrapper
// ---------------------------------------------------------------------------

#[test]
fn write_callable() {
    let s = Server::start("testapp:app");
    let mut c = s.connect();
    c.send(b"GET /write HTTP/1.1\r\nHost: x\r\n\r\n");
    let r = c.read_response();
    assert_eq!(r.status, 200, "{}", r.raw_str());
    assert_eq!(r.body_str(), "hello from write()");
    c.send(b"GET /write_cl HTTP/1.1\r\nHost: x\r\n\r\n");
    let r = c.read_response();
    assert_eq!(r.status, 200, "{}", r.raw_str());
    assert_eq!(r.header("content-length"), Some("11"));
    assert_eq!(r.body_str(), "hello world");
    // HTTP/1.0: close-delimited.
    let r = s.request(b"GET /write HTTP/1.0\r\n\r\n");
    assert_eq!(r.body_str(), "hello from write()");
}

#[test]
fn one_item_list_or_tuple_gets_a_content_length() {
    let s = Server::start("testapp:app");
    let mut c = s.connect();
    for kind in ["list", "tuple"] {
        c.send(format!("GET /one_item?kind={kind} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes());
        let r = c.read_response();
        assert_eq!(r.status, 200, "{}", r.raw_str());
        assert_eq!(
            r.header("content-length"),
            Some("8"),
            "{kind}: {}",
            r.raw_str()
        );
        assert_eq!(
            r.header("transfer-encoding"),
            None,
            "{kind}: {}",
            r.raw_str()
        );
        assert_eq!(r.body_str(), "one item");
    }
    // HEAD says the length a GET would get, without the body.
    c.send(b"HEAD /one_item HTTP/1.1\r\nHost: x\r\n\r\n");
    let r = c.read_head_response();
    assert_eq!(r.header("content-length"), Some("8"), "{}", r.raw_str());
    // An empty item is a zero length, not a chunked end.
    c.send(b"GET /one_item?kind=empty HTTP/1.1\r\nHost: x\r\n\r\n");
    let r = c.read_response();
    assert_eq!(r.header("content-length"), Some("0"), "{}", r.raw_str());
    // Two items: the length is not known up front, so HTTP/1.1 chunks.
    c.send(b"GET /one_item?kind=two HTTP/1.1\r\nHost: x\r\n\r\n");
    let r = c.read_response();
    assert_eq!(
        r.header("transfer-encoding"),
        Some("chunked"),
        "{}",
        r.raw_str()
    );
    assert_eq!(r.body_str(), "one item");
    // HTTP/1.0 with keep-alive: the length lets the connection stay open.
    let mut c = s.connect();
    c.send(b"GET /one_item HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    let r = c.read_response();
    assert_eq!(r.header("content-length"), Some("8"), "{}", r.raw_str());
    assert_eq!(
        r.header("connection"),
        Some("keep-alive"),
        "{}",
        r.raw_str()
    );
}

#[test]
fn wsgi_errors_goes_to_the_log() {
    let s = Server::start("testapp:app");
    assert_eq!(s.get("/errors").status, 200);
    assert!(
        s.wait_for_log("message-to-wsgi-errors", Duration::from_secs(5)),
        "wsgi.errors.write() output not in the log:\n{}",
        s.log()
    );
    assert!(
        s.wait_for_log("second-line-to-wsgi-errors", Duration::from_secs(5)),
        "wsgi.errors.writelines() output not in the log:\n{}",
        s.log()
    );
}

#[test]
fn file_wrapper_response() {
    let s = Server::start("testapp:app");
    let want = std::fs::read(apps_dir().join("testapp.py")).unwrap();
    let mut c = s.connect();
    for _ in 0..2 {
        c.send(b"GET /file HTTP/1.1\r\nHost: x\r\n\r\n");
        let r = c.read_response();
        assert_eq!(r.status, 200, "{}", r.raw_str());
        assert!(
            r.body == want,
            "file body differs (X-File-Wrapper: {:?})",
            r.header("x-file-wrapper")
        );
    }
}

#[test]
fn streamed_block_is_sent_before_the_next_is_requested() {
    // PEP 3333, "Buffering and Streaming": a block must be transmitted
    // before (or while) the app produces the next one. /gate yields its
    // second block only after we create the marker file, which we do once
    // the first block has arrived (the app gives up after 8 s and says so).
    let s = Server::start("testapp:app");
    let marker = temp_path("gate");
    let mut c = s.connect();
    c.send(
        format!(
            "GET /gate?file={} HTTP/1.1\r\nHost: x\r\n\r\n",
            marker.display()
        )
        .as_bytes(),
    );
    let mut got = Vec::new();
    for _ in 0..1000 {
        match c.read_some() {
            Ok(b) if !b.is_empty() => got.extend(b),
            _ => break,
        }
        if find(&got, b"first block").is_some() {
            break;
        }
    }
    std::fs::write(&marker, b"go").unwrap();
    for _ in 0..1000 {
        if got.ends_with(b"0\r\n\r\n") {
            break;
        }
        match c.read_some() {
            Ok(b) if !b.is_empty() => got.extend(b),
            _ => break,
        }
    }
    let _ = std::fs::remove_file(&marker);
    assert!(
        find(&got, b"second block").is_some(),
        "the first block was not sent before the app was asked for the next \
         (app waited 8 s for the client, then gave up); received {:?}",
        show(&got)
    );
}

// ---------------------------------------------------------------------------
// Exceptions and close()
// ---------------------------------------------------------------------------

#[test]
fn exception_before_start_response_is_500_then_normal_service() {
    let s = Server::start("testapp:app");
    let r = s.get("/error");
    assert_eq!(r.status, 500, "{}", r.raw_str());
    assert_date_server(&r);
    assert!(
        s.wait_for_log("Traceback", Duration::from_secs(5)),
        "no traceback in the log:\n{}",
        s.log()
    );
    assert!(
        s.wait_for_log("boom before start_response", Duration::from_secs(5)),
        "{}",
        s.log()
    );
    let r = s.get("/path/after-error");
    assert_eq!(r.status, 200);
    assert_eq!(r.body_str(), "/path/after-error");
}

#[test]
fn exception_in_first_item_is_500() {
    let s = Server::start("testapp:app");
    let r = s.get("/error_first");
    assert_eq!(r.status, 500, "{}", r.raw_str());
    assert!(
        s.wait_for_log("boom in first item", Duration::from_secs(5)),
        "{}",
        s.log()
    );
    assert_eq!(s.get("/path/ok").status, 200);
}

#[test]
fn exception_after_headers_cuts_the_connection() {
    let s = Server::start("testapp:app");
    let mut c = s.connect();
    c.send(b"GET /error_after HTTP/1.1\r\nHost: x\r\n\r\n");
    let raw = c.read_to_eof();
    let text = show(&raw);
    assert!(
        raw.starts_with(b"HTTP/1.1 200"),
        "expected the 200 head to have been sent before the cut: {text:?}"
    );
    assert!(
        !raw.ends_with(b"0\r\n\r\n"),
        "response looks complete (terminating chunk sent): {text:?}"
    );
    assert!(!text.contains(" 500 "), "a 500 after a 200 head: {text:?}");
    assert!(
        s.wait_for_log("boom after headers", Duration::from_secs(5)),
        "{}",
        s.log()
    );
    assert_eq!(s.get("/path/ok").status, 200);
}

#[test]
fn app_protocol_errors_are_500() {
    let s = Server::start("testapp:app");
    for path in ["/bad_str", "/no_start", "/bad_status", "/twice"] {
        let r = s.get(path);
        assert_eq!(r.status, 500, "{path}: {}\nlog:\n{}", r.raw_str(), s.log());
        assert_date_server(&r);
    }
    assert_eq!(s.get("/path/still-fine").body_str(), "/path/still-fine");
}

#[test]
fn start_response_with_exc_info_replaces_headers() {
    let s = Server::start("testapp:app");
    let r = s.get("/exc_info");
    assert_eq!(r.status, 503, "{}\nlog:\n{}", r.raw_str(), s.log());
    assert_eq!(r.body_str(), "replaced by exc_info");
}

fn closed_state(s: &Server, token: &str) -> String {
    s.get(&format!("/closed?token={token}")).body_str()
}

fn assert_close_called(s: &Server, token: &str, what: &str) {
    let mut last = String::new();
    let ok = eventually(Duration::from_secs(10), || {
        last = closed_state(s, token);
        last == "closed"
    });
    assert!(
        ok,
        "{what}: close() not called, /closed?token={token} says {last:?}"
    );
}

#[test]
fn close_called_on_normal_completion_and_head() {
    let s = Server::start("testapp:app");
    assert_eq!(closed_state(&s, "never-used"), "unknown");
    let r = s.get("/tracked?token=normal&n=3&size=5");
    assert_eq!(r.body_str(), "ttttttttttttttt");
    assert_close_called(&s, "normal", "completed response");
    let r =
        s.request(b"HEAD /tracked?token=head&n=3 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    assert_eq!(r.status, 200);
    assert_close_called(&s, "head", "HEAD response");
}

#[test]
fn close_called_when_iteration_fails() {
    let s = Server::start("testapp:app");
    // Fails on the first item: 500.
    let r = s.get("/tracked?token=fail0&n=3&fail=0");
    assert_eq!(r.status, 500, "{}", r.raw_str());
    assert_close_called(&s, "fail0", "iterable failing before the first item");
    // Fails after the head went out: connection cut.
    let mut c = s.connect();
    c.send(b"GET /tracked?token=fail1&n=3&fail=1 HTTP/1.1\r\nHost: x\r\n\r\n");
    let _ = c.read_to_eof();
    assert_close_called(&s, "fail1", "iterable failing after the first item");
}

#[test]
fn close_called_when_client_disconnects_mid_response() {
    let s = Server::start("testapp:app");
    let mut c = s.connect();
    c.send(b"GET /tracked?token=gone&n=4000&size=65536 HTTP/1.1\r\nHost: x\r\n\r\n");
    let first = c.read_some().expect("no bytes of the response");
    assert!(first.starts_with(b"HTTP/1.1 200"), "{}", show(&first));
    drop(c);
    assert_close_called(&s, "gone", "client disconnected mid-response");
}

// ---------------------------------------------------------------------------
// Real applications
// ---------------------------------------------------------------------------

#[test]
fn wsgiref_validator_app() {
    let s = Server::start("validated:app");
    let mut c = s.connect();
    let h = s.host();
    let steps: Vec<(String, bool, u16, &str)> = vec![
        (format!("GET / HTTP/1.1\r\nHost: {h}\r\n\r\n"), false, 200, "hello validated"),
        (format!("GET /?a=b&c=%20 HTTP/1.1\r\nHost: {h}\r\nAccept: */*\r\n\r\n"), false, 200, "hello validated"),
        (format!("POST /echo HTTP/1.1\r\nHost: {h}\r\nContent-Type: application/octet-stream\r\nContent-Length: 12\r\n\r\nvalidate me!"), false, 200, "validate me!"),
        (format!("POST /echo HTTP/1.1\r\nHost: {h}\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nabcd\r\n0\r\n\r\n"), false, 200, "abcd"),
        (format!("POST /lines HTTP/1.1\r\nHost: {h}\r\nContent-Length: 11\r\n\r\nabc\ndef\nghi"), false, 200, "4|abc|2"),
        (format!("HEAD / HTTP/1.1\r\nHost: {h}\r\n\r\n"), true, 200, ""),
        (format!("GET /gen HTTP/1.1\r\nHost: {h}\r\n\r\n"), false, 200, "part0\npart1\npart2\n"),
        (format!("HEAD /gen HTTP/1.1\r\nHost: {h}\r\n\r\n"), true, 200, ""),
        (format!("GET /write HTTP/1.1\r\nHost: {h}\r\n\r\n"), false, 200, "written and returned"),
        (format!("GET /empty HTTP/1.1\r\nHost: {h}\r\n\r\n"), false, 204, ""),
        (format!("DELETE /echo HTTP/1.1\r\nHost: {h}\r\n\r\n"), false, 200, "hello validated"),
    ];
    for (req, head, status, body) in &steps {
        c.send(req.as_bytes());
        let r = if *head {
            c.read_head_response()
        } else {
            c.read_response()
        };
        let first = req.lines().next().unwrap();
        assert_eq!(
            r.status,
            *status,
            "{first}: {}\nlog:\n{}",
            r.raw_str(),
            s.log()
        );
        assert_eq!(r.body_str(), *body, "{first}");
    }
    let r = s.request(b"POST /echo HTTP/1.0\r\nContent-Length: 3\r\n\r\nold");
    assert_eq!(r.status, 200, "{}\nlog:\n{}", r.raw_str(), s.log());
    assert_eq!(r.body_str(), "old");
    // One more request so anything printed while finishing the previous
    // ones (e.g. "Exception ignored in ... __del__") is in the log.
    assert_eq!(s.get("/").status, 200);
    std::thread::sleep(Duration::from_millis(200));
    let log = s.log();
    for bad in [
        "Traceback",
        "AssertionError",
        "WSGIWarning",
        "Exception ignored",
    ] {
        assert!(
            !log.contains(bad),
            "{bad:?} in the log of the validated app:\n{log}"
        );
    }
}

#[test]
fn flask_app() {
    let s = Server::start("flask_app:app");
    let h = s.host();
    let mut c = s.connect();
    c.send(format!("GET / HTTP/1.1\r\nHost: {h}\r\n\r\n").as_bytes());
    let r = c.read_response();
    assert_eq!(r.status, 200, "{}", r.raw_str());
    assert_eq!(r.body_str(), "hello from flask");

    c.send(format!("GET /user/bob?q=hi%20there HTTP/1.1\r\nHost: {h}\r\n\r\n").as_bytes());
    let r = c.read_response();
    assert_eq!(r.status, 200, "{}", r.raw_str());
    let j = r.body_str().replace(": ", ":");
    assert!(
        j.contains(r#""name":"bob""#) && j.contains(r#""q":"hi there""#),
        "{}",
        r.body_str()
    );
    assert!(r
        .header("content-type")
        .unwrap_or("")
        .starts_with("application/json"));

    let body = br#"{"numbers": [1, 2, 3, 10]}"#;
    c.send(format!("POST /api/sum HTTP/1.1\r\nHost: {h}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n", body.len()).as_bytes());
    c.send(body);
    let r = c.read_response();
    assert_eq!(r.status, 200, "{}", r.raw_str());
    let j: String = r.body_str().split_whitespace().collect();
    assert!(
        j.contains(r#""sum":16"#) && j.contains(r#""n":4"#),
        "{}",
        r.body_str()
    );

    let body = b"a=1&b=two+words";
    c.send(format!("POST /form HTTP/1.1\r\nHost: {h}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n", body.len()).as_bytes());
    c.send(body);
    let r = c.read_response();
    assert_eq!(r.status, 200, "{}", r.raw_str());
    assert_eq!(r.body_str(), "a=1 b=two words");

    c.send(format!("GET /missing HTTP/1.1\r\nHost: {h}\r\n\r\n").as_bytes());
    let r = c.read_response();
    assert_eq!(r.status, 404, "{}", r.raw_str());

    c.send(format!("HEAD / HTTP/1.1\r\nHost: {h}\r\nConnection: close\r\n\r\n").as_bytes());
    let r = c.read_head_response();
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-length"), Some("16"));
    c.assert_closed();
    assert!(!s.log().contains("Traceback"), "{}", s.log());
}
