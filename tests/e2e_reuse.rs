//! What the WSGI adapter reuses between requests (the start_response
//! object and its write(), header tuples validated once, the base
//! environ's request defaults, cached strings) must never leak from one
//! request into the next. Every test runs its requests on one keep-alive
//! connection, where reuse happens.
#![cfg(feature = "python")]

mod common;

use common::*;
use std::collections::BTreeMap;
use std::time::Duration;

fn get(c: &mut Client, target: &str) -> Response {
    c.send(format!("GET {target} HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes());
    c.read_response()
}

/// A client connection for several requests in a row.
fn keep_alive(s: &Server) -> Client {
    let c = s.connect();
    c.set_read_timeout(Duration::from_secs(10));
    c
}

/// The response has this status and exactly this body.
fn expect_body(r: &Response, status: u16, body: &str, ctx: &str) {
    assert_eq!(
        (r.status, r.body_str().as_str()),
        (status, body),
        "{ctx}: {}",
        r.raw_str()
    );
}

/// `KEY=repr` lines from the app's default route.
fn shown(r: &Response) -> BTreeMap<String, String> {
    assert_eq!(r.status, 200, "{}", r.raw_str());
    r.body_str()
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn expect(m: &BTreeMap<String, String>, key: &str, want: &str, ctx: &str) {
    assert_eq!(
        m.get(key).map(String::as_str),
        Some(want),
        "{ctx}: {key}; all: {m:?}"
    );
}

#[test]
fn environ_request_keys_do_not_leak_between_requests() {
    let s = Server::start("reuse:app");
    let mut c = keep_alive(&s);

    let m = shown(&get(&mut c, "/env/a?x=1"));
    expect(&m, "REQUEST_METHOD", "'GET'", "GET with query");
    expect(&m, "PATH_INFO", "'/env/a'", "GET with query");
    expect(&m, "RAW_URI", "'/env/a?x=1'", "GET with query");
    expect(&m, "QUERY_STRING", "'x=1'", "GET with query");

    c.send(
        b"POST /env HTTP/1.1\r\nHost: t\r\nContent-Type: text/x\r\nContent-Length: 3\r\n\r\nabc",
    );
    let m = shown(&c.read_response());
    expect(&m, "REQUEST_METHOD", "'POST'", "POST");
    expect(&m, "input", "b'abc'", "POST");
    expect(&m, "CONTENT_LENGTH", "'3'", "POST");
    expect(&m, "CONTENT_TYPE", "'text/x'", "POST");
    expect(&m, "QUERY_STRING", "''", "POST");

    // After both: a plain GET / has none of their keys or values.
    for target in ["/", "/env"] {
        let m = shown(&get(&mut c, target));
        let ctx = format!("GET {target} after a query and a POST");
        expect(&m, "REQUEST_METHOD", "'GET'", &ctx);
        expect(&m, "PATH_INFO", &format!("'{target}'"), &ctx);
        expect(&m, "RAW_URI", &format!("'{target}'"), &ctx);
        expect(&m, "QUERY_STRING", "''", &ctx);
        expect(&m, "CONTENT_LENGTH", "'<absent>'", &ctx);
        expect(&m, "CONTENT_TYPE", "'<absent>'", &ctx);
        expect(&m, "input", "b''", &ctx);
    }

    // Absolute form: the path is "/", the raw URI is not.
    let m = shown(&get(&mut c, "http://t/"));
    expect(&m, "PATH_INFO", "'/'", "absolute-form");
    expect(&m, "RAW_URI", "'http://t/'", "absolute-form");
    let m = shown(&get(&mut c, "/?"));
    expect(&m, "RAW_URI", "'/?'", "empty query");
    expect(&m, "QUERY_STRING", "''", "empty query");

    c.send(b"HEAD / HTTP/1.1\r\nHost: t\r\n\r\n");
    let r = c.read_head_response();
    assert_eq!(r.status, 200, "{}", r.raw_str());

    c.send(b"GET /%2e HTTP/1.0\r\nHost: t\r\n\r\n");
    let m = shown(&c.read_response());
    expect(&m, "SERVER_PROTOCOL", "'HTTP/1.0'", "HTTP/1.0");
    expect(&m, "RAW_URI", "'/%2e'", "escaped path");
    // An HTTP/1.0 request without keep-alive ends with the close; the next
    // connection still gets a reused starter and environ base. (With
    // keep-alive it would stay open: a one-item body has a Content-Length.)
    c.assert_closed();
    let mut c = keep_alive(&s);
    let m = shown(&get(&mut c, "/"));
    expect(&m, "SERVER_PROTOCOL", "'HTTP/1.1'", "HTTP/1.1 after 1.0");
    expect(&m, "REQUEST_METHOD", "'GET'", "GET after HEAD");
}

#[test]
fn header_values_are_joined_and_do_not_leak() {
    let s = Server::start("reuse:app");
    let mut c = keep_alive(&s);
    // Same value bytes under two names (one cached string), a repeat.
    c.send(b"GET /env HTTP/1.1\r\nHost: t\r\nX-A: same\r\nX-B: same\r\nx-a: other\r\n\r\n");
    let m = shown(&c.read_response());
    expect(&m, "HTTP_X_A", "'same,other'", "repeated X-A");
    expect(&m, "HTTP_X_B", "'same'", "X-B");
    c.send(b"GET /env HTTP/1.1\r\nHost: t\r\nX-B: 2\r\n\r\n");
    let m = shown(&c.read_response());
    expect(&m, "HTTP_X_A", "'<absent>'", "next request without X-A");
    expect(&m, "HTTP_X_B", "'2'", "next request");
    // Content-Type: the last one wins, it is not a list.
    c.send(b"GET /env HTTP/1.1\r\nHost: t\r\nContent-Type: a/b\r\nContent-Type: c/d\r\n\r\n");
    let m = shown(&c.read_response());
    expect(&m, "CONTENT_TYPE", "'c/d'", "repeated Content-Type");
}

#[test]
fn start_response_state_does_not_leak_between_requests() {
    let s = Server::start("reuse:app");
    let mut c = keep_alive(&s);
    for round in 0..3 {
        let ctx = format!("round {round}");
        let r = get(&mut c, "/write");
        expect_body(&r, 200, "w1rest", &ctx);
        let r = get(&mut c, "/plain");
        expect_body(&r, 200, "plain", &ctx);
        assert_eq!(r.header("X-Const"), Some("1"), "{ctx}");
        let r = get(&mut c, "/exc");
        expect_body(&r, 503, "busy", &ctx);
        assert!(
            !r.has_header("X-Const"),
            "{ctx}: exc_info replaces the headers"
        );
        let r = get(&mut c, "/gen");
        expect_body(&r, 200, "g1g2", &ctx);
        let r = get(&mut c, "/length");
        assert_eq!(
            r.header("Content-Length"),
            Some("5"),
            "{ctx}: {}",
            r.raw_str()
        );
        assert_eq!(r.body_str(), "12345", "{ctx}");
    }
    // Pipelined: the same, sent at once.
    c.send(
        b"GET /write HTTP/1.1\r\nHost: t\r\n\r\nGET /plain HTTP/1.1\r\nHost: t\r\n\r\n\
          GET /exc HTTP/1.1\r\nHost: t\r\n\r\nGET /write HTTP/1.1\r\nHost: t\r\n\r\n",
    );
    let bodies: Vec<(u16, String)> = (0..4)
        .map(|_| {
            let r = c.read_response();
            (r.status, r.body_str())
        })
        .collect();
    assert_eq!(
        bodies,
        [
            (200, "w1rest"),
            (200, "plain"),
            (503, "busy"),
            (200, "w1rest")
        ]
        .map(|(s, b)| (s, b.to_string()))
    );
}

#[test]
fn callables_the_app_keeps_are_not_reused() {
    let s = Server::start("reuse:app");
    let mut c = keep_alive(&s);
    let r = get(&mut c, "/keep");
    expect_body(&r, 200, "kept", "");
    for _ in 0..3 {
        let r = get(&mut c, "/write");
        expect_body(&r, 200, "w1rest", "");
    }
    // The kept callables belong to a finished request: using them changes
    // nothing here.
    let r = get(&mut c, "/stale");
    expect_body(&r, 200, "fresh", "");
    assert!(!r.has_header("X-Stale"), "{}", r.raw_str());
    let r = get(&mut c, "/plain");
    expect_body(&r, 200, "plain", "");
}

#[test]
fn remembered_header_tuples_keep_their_meaning() {
    let s = Server::start("reuse:app");
    // Invalid constant tuples are never remembered as valid: every use
    // fails again.
    let mut c = keep_alive(&s);
    for path in ["/bad_name", "/bad_name", "/conflict", "/conflict"] {
        let r = get(&mut c, path);
        assert_eq!(r.status, 500, "{path}: {}", r.raw_str());
        assert!(!r.body_str().contains("never"), "{path}");
        if r.connection_has("close") {
            c = keep_alive(&s);
        }
    }
    // A remembered `Connection: close` still closes, every time.
    for _ in 0..2 {
        let mut c = keep_alive(&s);
        let r = get(&mut c, "/close");
        expect_body(&r, 200, "closing", "");
        assert!(r.connection_has("close"), "{}", r.raw_str());
        assert_eq!(r.headers_named("Connection").len(), 1, "{}", r.raw_str());
        c.assert_closed();
    }
    s.assert_no_panic();
}

#[test]
fn callables_and_input_work_from_another_thread() {
    let s = Server::start("reuse:app");
    let mut c = keep_alive(&s);
    for body in ["first", "second"] {
        c.send(
            format!(
                "POST /thread HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            )
            .as_bytes(),
        );
        let r = c.read_response();
        assert_eq!(r.status, 200, "{}", r.raw_str());
        assert_eq!(r.body_str(), format!("w:{body}"), "{}", r.raw_str());
    }
    s.assert_no_panic();
}

#[test]
fn failing_requests_do_not_leak_start_response_objects() {
    let s = Server::start("reuse:app");
    let count = |s: &Server| -> usize {
        let r = s.get("/count");
        assert_eq!(r.status, 200, "{}", r.raw_str());
        r.body_str().trim().parse().expect("a count")
    };
    let before = count(&s);
    for path in ["/raise", "/not_iterable", "/gen_fail"] {
        for _ in 0..20 {
            let r = s.get(path);
            assert_eq!(r.status, 500, "{path}: {}", r.raw_str());
        }
    }
    let after = count(&s);
    // Each StartResponse has two bound methods; a few may be pooled. A
    // leak would leave two per failed request.
    assert!(
        after <= before + 4,
        "{before} StartResponse methods alive before 60 failing requests, {after} after"
    );
}

#[test]
fn a_response_that_gave_its_content_length_finishes_before_the_next_request() {
    // The first request holds the loop while the others arrive, so they
    // are all served in one turn. Each generator has given its whole
    // Content-Length with its first item: it must be finished (and so
    // closed and freed) before the next request of the turn runs, not
    // kept until the turn's writes. Kept, hundreds of them outlived
    // Python's young-generation collections at high concurrency.
    let s = Server::start("reuse:app");
    let mut first = keep_alive(&s);
    first.send(b"GET /sized?sleep=0.3 HTTP/1.1\r\nHost: t\r\n\r\n");
    std::thread::sleep(Duration::from_millis(100));
    let mut others: Vec<Client> = (0..8).map(|_| keep_alive(&s)).collect();
    for c in &mut others {
        c.send(b"GET /sized HTTP/1.1\r\nHost: t\r\n\r\n");
    }
    expect_body(&first.read_response(), 200, "open=0", "the first request");
    for (i, c) in others.iter_mut().enumerate() {
        let r = c.read_response();
        expect_body(&r, 200, "open=0", &format!("request {i} of the turn"));
    }
    // And on a connection that goes on: the next request too.
    let r = get(&mut others[0], "/sized");
    expect_body(&r, 200, "open=0", "a second request on one connection");
}
