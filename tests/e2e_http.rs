//! End-to-end HTTP/1.x behaviour: keep-alive, framing, pipelining, HEAD,
//! 100-continue, large bodies, backpressure, protocol errors and limits.
#![cfg(feature = "python")]

mod common;

use common::*;
use std::time::{Duration, Instant};

fn get(host: &str, path: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n").into_bytes()
}

#[test]
fn keep_alive_two_requests_on_one_connection() {
    let s = Server::start("testapp:app");
    let mut c = s.connect();
    c.send(&get(&s.host(), "/path/first"));
    let r1 = c.read_response();
    assert_eq!(r1.status, 200, "{}", r1.raw_str());
    assert_eq!(r1.version, "HTTP/1.1");
    assert_eq!(r1.body_str(), "/path/first");
    assert!(
        !r1.connection_has("close"),
        "1.1 response says close: {}",
        r1.raw_str()
    );
    assert_date_server(&r1);
    c.send(&get(&s.host(), "/path/second"));
    let r2 = c.read_response();
    assert_eq!(r2.status, 200, "{}", r2.raw_str());
    assert_eq!(r2.body_str(), "/path/second");
    assert_date_server(&r2);
}

#[test]
fn http10_closes_by_default() {
    let s = Server::start("testapp:app");
    let mut c = s.connect();
    c.send(b"GET /path/ten HTTP/1.0\r\n\r\n");
    let r = c.read_response();
    assert_eq!(r.status, 200, "{}", r.raw_str());
    assert_eq!(r.body_str(), "/path/ten");
    assert!(
        !r.connection_has("keep-alive"),
        "1.0 response without keep-alive request: {}",
        r.raw_str()
    );
    c.assert_closed();
}

#[test]
fn http10_keep_alive_when_asked() {
    let s = Server::start("testapp:app");
    let mut c = s.connect();
    c.send(b"GET /path/a HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    let r = c.read_response();
    assert_eq!(r.status, 200, "{}", r.raw_str());
    assert_eq!(r.body_str(), "/path/a");
    assert!(
        r.connection_has("keep-alive"),
        "HTTP/1.0 keep-alive response should say `Connection: keep-alive`: {}",
        r.raw_str()
    );
    c.send(b"GET /path/b HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    let r = c.read_response();
    assert_eq!(r.body_str(), "/path/b");
    // Without the header the 1.0 connection ends after the response.
    c.send(b"GET /path/c HTTP/1.0\r\n\r\n");
    let r = c.read_response();
    assert_eq!(r.body_str(), "/path/c");
    c.assert_closed();
}

#[test]
fn connection_close_is_honoured() {
    let s = Server::start("testapp:app");
    let mut c = s.connect();
    c.send(
        format!(
            "GET /path/x HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
            s.host()
        )
        .as_bytes(),
    );
    let r = c.read_response();
    assert_eq!(r.status, 200);
    assert!(
        r.connection_has("close"),
        "no Connection: close in {}",
        r.raw_str()
    );
    c.assert_closed();
}

#[test]
fn pipelined_requests_answered_in_order() {
    let s = Server::start("testapp:app");
    let h = s.host();
    let mut c = s.connect();
    let mut req = Vec::new();
    req.extend(get(&h, "/path/one"));
    req.extend(
        format!("POST /echo HTTP/1.1\r\nHost: {h}\r\nContent-Length: 7\r\n\r\npayload").as_bytes(),
    );
    req.extend(get(&h, "/path/two"));
    req.extend(format!("POST /echo HTTP/1.1\r\nHost: {h}\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n").as_bytes());
    req.extend(get(&h, "/path/three"));
    c.send(&req);
    let want = ["/path/one", "payload", "/path/two", "abc", "/path/three"];
    for w in want {
        let r = c.read_response();
        assert_eq!(r.status, 200, "{}", r.raw_str());
        assert_eq!(r.body_str(), w);
    }
}

#[test]
fn many_pipelined_requests_in_one_write() {
    let s = Server::start("testapp:app");
    let h = s.host();
    let mut c = s.connect();
    let mut req = Vec::new();
    for i in 0..100 {
        req.extend(get(&h, &format!("/path/{i}")));
    }
    c.send(&req);
    for i in 0..100 {
        let r = c.read_response();
        assert_eq!(r.body_str(), format!("/path/{i}"), "response #{i}");
    }
}

#[test]
fn unread_request_body_is_skipped_before_next_request() {
    // The app does not read the body of /path/...; the server must still
    // find the next request after it.
    let s = Server::start("testapp:app");
    let h = s.host();
    let mut c = s.connect();
    let mut req = Vec::new();
    req.extend(
        format!(
            "POST /path/ignored HTTP/1.1\r\nHost: {h}\r\nContent-Length: 11\r\n\r\nGET /evil\r\n"
        )
        .as_bytes(),
    );
    req.extend(format!("POST /path/chunky HTTP/1.1\r\nHost: {h}\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nGET \r\n0\r\n\r\n").as_bytes());
    req.extend(get(&h, "/path/next"));
    c.send(&req);
    for w in ["/path/ignored", "/path/chunky", "/path/next"] {
        let r = c.read_response();
        assert_eq!(r.status, 200, "{}", r.raw_str());
        assert_eq!(r.body_str(), w);
    }
}

#[test]
fn head_has_headers_but_no_body() {
    let s = Server::start("testapp:app");
    let h = s.host();
    let mut c = s.connect();
    c.send(&get(&h, "/big?size=1000"));
    let g = c.read_response();
    assert_eq!(g.body.len(), 1000);
    // HEAD followed by a GET in the same write: a body wrongly sent for HEAD
    // would be parsed as the second response.
    let mut req = format!("HEAD /big?size=1000 HTTP/1.1\r\nHost: {h}\r\n\r\n").into_bytes();
    req.extend(get(&h, "/path/after-head"));
    c.send(&req);
    let hd = c.read_head_response();
    assert_eq!(hd.status, 200, "{}", hd.raw_str());
    assert_eq!(
        hd.header("content-length"),
        Some("1000"),
        "{}",
        hd.raw_str()
    );
    assert_eq!(hd.header("content-type"), g.header("content-type"));
    assert_date_server(&hd);
    let next = c.read_response();
    assert_eq!(
        next.body_str(),
        "/path/after-head",
        "bytes after HEAD response: {}",
        next.raw_str()
    );

    // HEAD of a streamed (no Content-Length) response: also no body.
    let mut req = format!("HEAD /stream?n=3 HTTP/1.1\r\nHost: {h}\r\n\r\n").into_bytes();
    req.extend(get(&h, "/path/after-head-2"));
    c.send(&req);
    let hd = c.read_head_response();
    assert_eq!(hd.status, 200, "{}", hd.raw_str());
    let next = c.read_response();
    assert_eq!(
        next.body_str(),
        "/path/after-head-2",
        "bytes after HEAD response: {}",
        next.raw_str()
    );
}

#[test]
fn no_body_for_204_and_304() {
    let s = Server::start("testapp:app");
    let h = s.host();
    let mut c = s.connect();
    for code in [204, 304] {
        let mut req = get(&h, &format!("/status/{code}"));
        req.extend(get(&h, "/path/after"));
        c.send(&req);
        let r = c.read_response();
        assert_eq!(r.status, code, "{}", r.raw_str());
        assert_date_server(&r);
        if code == 204 {
            assert!(
                !r.has_header("transfer-encoding"),
                "204 must not carry Transfer-Encoding: {}",
                r.raw_str()
            );
        }
        let next = c.read_response();
        assert_eq!(
            next.body_str(),
            "/path/after",
            "after {code}: {}",
            next.raw_str()
        );
    }
}

#[test]
fn chunked_request_body_is_decoded() {
    let s = Server::start("testapp:app");
    let h = s.host();
    let mut c = s.connect();
    c.send(format!("POST /echo HTTP/1.1\r\nHost: {h}\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n").as_bytes());
    let r = c.read_response();
    assert_eq!(r.status, 200, "{}", r.raw_str());
    assert_eq!(r.body_str(), "hello world");
    // Upper-case hex, a chunk extension and a trailer field.
    c.send(format!("POST /echo HTTP/1.1\r\nHost: {h}\r\nTransfer-Encoding: chunked\r\n\r\nA;name=value\r\n0123456789\r\n1a\r\nabcdefghijklmnopqrstuvwxyz\r\n0\r\nX-Trailer: yes\r\n\r\n").as_bytes());
    let r = c.read_response();
    assert_eq!(r.status, 200, "{}", r.raw_str());
    assert_eq!(r.body_str(), "0123456789abcdefghijklmnopqrstuvwxyz");
    // Sent in small pieces.
    let body = b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n3\r\ndef\r\n0\r\n\r\n";
    for piece in body.chunks(4) {
        c.send(piece);
        std::thread::sleep(Duration::from_millis(2));
    }
    let r = c.read_response();
    assert_eq!(r.body_str(), "abcdef");
}

#[test]
fn chunked_response_without_content_length() {
    let s = Server::start("testapp:app");
    let h = s.host();
    let mut c = s.connect();
    c.send(&get(&h, "/stream?n=5"));
    let r = c.read_response();
    assert_eq!(r.status, 200);
    assert!(
        r.header("transfer-encoding")
            .is_some_and(|v| v.eq_ignore_ascii_case("chunked")),
        "expected Transfer-Encoding: chunked: {}",
        r.raw_str()
    );
    assert!(!r.has_header("content-length"), "{}", r.raw_str());
    assert_eq!(r.body_str(), "chunk0\nchunk1\nchunk2\nchunk3\nchunk4\n");
    assert!(r.raw.ends_with(b"0\r\n\r\n"), "{}", r.raw_str());
    // The connection stays usable after the terminating chunk.
    c.send(&get(&h, "/path/after-chunked"));
    assert_eq!(c.read_response().body_str(), "/path/after-chunked");
    // An empty generator: just the last chunk.
    c.send(&get(&h, "/stream?n=0"));
    let r = c.read_response();
    assert_eq!(r.status, 200);
    assert_eq!(r.body, b"");
    c.send(&get(&h, "/path/after-empty"));
    assert_eq!(c.read_response().body_str(), "/path/after-empty");
}

#[test]
fn http10_response_without_length_is_close_delimited() {
    let s = Server::start("testapp:app");
    let mut c = s.connect();
    c.send(b"GET /stream?n=4 HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    let r = c.read_response();
    assert_eq!(r.status, 200, "{}", r.raw_str());
    assert!(
        !r.has_header("transfer-encoding"),
        "chunked sent to 1.0 client: {}",
        r.raw_str()
    );
    assert!(!r.has_header("content-length"), "{}", r.raw_str());
    assert_eq!(r.body_str(), "chunk0\nchunk1\nchunk2\nchunk3\n");
}

#[test]
fn expect_100_continue() {
    let s = Server::start("testapp:app");
    let h = s.host();
    let mut c = s.connect();
    c.send(format!("POST /echo HTTP/1.1\r\nHost: {h}\r\nContent-Length: 11\r\nExpect: 100-continue\r\n\r\n").as_bytes());
    let interim = c.read_exact_raw(b"HTTP/1.1 100 Continue\r\n\r\n".len());
    assert_eq!(show(&interim), "HTTP/1.1 100 Continue\r\n\r\n");
    c.send(b"hello there");
    let r = c.read_response();
    assert_eq!(r.status, 200, "{}", r.raw_str());
    assert_eq!(r.body_str(), "hello there");
    // Client that sends the body without waiting: still one response.
    c.send(format!("POST /echo HTTP/1.1\r\nHost: {h}\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\nabc").as_bytes());
    let mut r = c.read_response();
    if r.status == 100 {
        r = c.read_response();
    }
    assert_eq!(r.status, 200, "{}", r.raw_str());
    assert_eq!(r.body_str(), "abc");
}

#[test]
fn one_mib_response_intact() {
    let s = Server::start("testapp:app");
    let mut c = s.connect();
    let n = 1 << 20;
    c.send(&get(&s.host(), &format!("/big?size={n}")));
    let r = c.read_response();
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-length"), Some("1048576"));
    assert_eq!(r.body.len(), n);
    assert!(r.body == big_body(n), "1 MiB body differs");
    // And a large chunked one.
    c.send(&get(&s.host(), "/stream?n=64&size=16384"));
    let r = c.read_response();
    assert_eq!(r.body.len(), 64 * 16384);
    assert!(r.body.iter().all(|&b| b == b's'));
}

#[test]
fn fifty_mib_upload_checksummed() {
    let s = Server::start("testapp:app");
    let mut c = s.connect();
    let total: usize = 50 << 20;
    c.send(format!("POST /checksum HTTP/1.1\r\nHost: {}\r\nContent-Type: application/octet-stream\r\nContent-Length: {total}\r\n\r\n", s.host()).as_bytes());
    let mut crc = 0u32;
    let piece = 256 * 1024;
    let mut sent = 0;
    while sent < total {
        let n = piece.min(total - sent);
        let data = pattern(sent, n);
        crc = crc32_update(crc, &data);
        c.send(&data);
        sent += n;
    }
    let r = c.read_response();
    assert_eq!(r.status, 200, "{}", r.raw_str());
    assert_eq!(r.body_str(), format!("{total} {crc}"), "app saw: len crc32");
    // Same upload chunked-encoded (smaller), on the same connection.
    let total2 = 3 << 20;
    c.send(
        format!(
            "POST /checksum HTTP/1.1\r\nHost: {}\r\nTransfer-Encoding: chunked\r\n\r\n",
            s.host()
        )
        .as_bytes(),
    );
    let mut crc2 = 0u32;
    let mut sent = 0;
    while sent < total2 {
        let n = 100_000.min(total2 - sent);
        let data = pattern(sent, n);
        crc2 = crc32_update(crc2, &data);
        c.send(format!("{n:x}\r\n").as_bytes());
        c.send(&data);
        c.send(b"\r\n");
        sent += n;
    }
    c.send(b"0\r\n\r\n");
    let r = c.read_response();
    assert_eq!(r.status, 200, "{}", r.raw_str());
    assert_eq!(r.body_str(), format!("{total2} {crc2}"));
}

#[test]
fn slow_reader_does_not_block_other_clients() {
    let s = Server::start("testapp:app");
    // Client A asks for 256 MiB (far more than socket buffers) and never reads.
    let mut a = s.connect();
    a.send(&get(
        &s.host(),
        "/tracked?token=slowreader&n=4000&size=65536",
    ));
    // Make sure A's response is under way (its head arrived).
    let first = a.read_some().expect("A got nothing");
    assert!(first.starts_with(b"HTTP/1.1 200"), "{}", show(&first));
    // B must be served while A's response is stuck on backpressure.
    for i in 0..3 {
        let mut b = s.connect();
        b.set_read_timeout(Duration::from_secs(5));
        b.send(
            format!(
                "GET /path/b{i} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
                s.host()
            )
            .as_bytes(),
        );
        let r = b
            .try_read_response(false)
            .unwrap_or_else(|e| panic!("client B #{i} not served while A does not read: {e}"));
        assert_eq!(r.body_str(), format!("/path/b{i}"));
    }
    // A disconnects mid-response: the iterable's close() must be called.
    drop(a);
    let mut last = String::new();
    let closed = eventually(Duration::from_secs(10), || {
        last = s.get("/closed?token=slowreader").body_str();
        last == "closed"
    });
    assert!(
        closed,
        "close() not called after client disconnect; /closed says {last:?}"
    );
}

#[test]
fn keep_alive_idle_timeout_closes_connection() {
    let s = Server::start_with("testapp:app", &["--keep-alive", "1"]);
    let mut c = s.connect();
    c.send(&get(&s.host(), "/path/x"));
    assert_eq!(c.read_response().status, 200);
    let t = Instant::now();
    c.assert_closed_within(Duration::from_secs(8));
    assert!(
        t.elapsed() >= Duration::from_millis(500),
        "closed too early: {:?}",
        t.elapsed()
    );
}

// ---------------------------------------------------------------------------
// Protocol errors and limits
// ---------------------------------------------------------------------------

/// Sends `req` on a fresh connection and expects a canned error response
/// with one of `statuses`, `Connection: close`, and then the close.
fn expect_error(s: &Server, what: &str, req: &[u8], statuses: &[u16]) {
    let mut c = s.connect();
    c.send(req);
    let r = match c.try_read_response(false) {
        Ok(r) => r,
        Err(e) => panic!("{what}: request {:?}: {e}", show(req)),
    };
    assert!(
        statuses.contains(&r.status),
        "{what}: request {:?}: expected status {statuses:?}, got {}",
        show(req),
        r.raw_str()
    );
    assert!(
        r.connection_has("close"),
        "{what}: error response without Connection: close: {}",
        r.raw_str()
    );
    assert_date_server(&r);
    c.assert_closed();
}

#[test]
fn malformed_requests_get_400_and_close_while_others_are_served() {
    let s = Server::start("testapp:app");
    let h = s.host();
    // A good keep-alive connection, opened before the bad ones.
    let mut good = s.connect();
    good.send(&get(&h, "/path/good1"));
    assert_eq!(good.read_response().body_str(), "/path/good1");

    let cases: &[(&str, String, &[u16])] = &[
        ("garbage request line", "GARBAGE\r\n\r\n".into(), &[400]),
        ("no version", "GET /\r\n\r\n".into(), &[400]),
        ("space in header name", format!("GET / HTTP/1.1\r\nHost : {h}\r\n\r\n"), &[400]),
        ("header without colon", format!("GET / HTTP/1.1\r\nHost: {h}\r\nNoColonHere\r\n\r\n"), &[400]),
        ("bad content-length", format!("POST /echo HTTP/1.1\r\nHost: {h}\r\nContent-Length: abc\r\n\r\n"), &[400]),
        ("negative content-length", format!("POST /echo HTTP/1.1\r\nHost: {h}\r\nContent-Length: -1\r\n\r\n"), &[400]),
        ("conflicting content-lengths", format!("POST /echo HTTP/1.1\r\nHost: {h}\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd"), &[400]),
        ("CL and TE together", format!("POST /echo HTTP/1.1\r\nHost: {h}\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"), &[400]),
        ("bad chunk size", format!("POST /echo HTTP/1.1\r\nHost: {h}\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n"), &[400]),
        ("chunk not followed by CRLF", format!("POST /echo HTTP/1.1\r\nHost: {h}\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcXX\r\n0\r\n\r\n"), &[400]),
        ("chunked not last", format!("POST /echo HTTP/1.1\r\nHost: {h}\r\nTransfer-Encoding: chunked, gzip\r\n\r\n"), &[400, 501]),
        ("unknown transfer-coding", format!("POST /echo HTTP/1.1\r\nHost: {h}\r\nTransfer-Encoding: bogus\r\n\r\n"), &[501, 400]),
        ("control char in target", "GET /a\x01b HTTP/1.1\r\nHost: x\r\n\r\n".into(), &[400]),
        ("HTTP/2.0", "GET / HTTP/2.0\r\nHost: x\r\n\r\n".into(), &[505]),
        ("bare CR in header value", format!("GET / HTTP/1.1\r\nHost: {h}\r\nX-A: a\rb\r\n\r\n"), &[400]),
    ];
    for (what, req, statuses) in cases {
        expect_error(&s, what, req.as_bytes(), statuses);
    }
    // The good connection is still served.
    good.send(&get(&h, "/path/good2"));
    let r = good.read_response();
    assert_eq!(r.body_str(), "/path/good2");
    // And new connections too.
    assert_eq!(s.get("/path/new").status, 200);
}

#[test]
fn request_line_too_long_is_414() {
    let s = Server::start("testapp:app");
    let long = "a".repeat(9000);
    expect_error(
        &s,
        "9000-byte target",
        format!("GET /path/{long} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes(),
        &[414],
    );
    // Just under the default limit (8190) is fine.
    let ok = "b".repeat(8190 - "GET /path/ HTTP/1.1".len());
    let r = s.request(
        format!("GET /path/{ok} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
    );
    assert_eq!(
        r.status,
        200,
        "8190-byte request line refused: {}",
        show(&r.raw)
    );
}

#[test]
fn request_line_limit_flag() {
    let s = Server::start_with("testapp:app", &["--limit-request-line", "100"]);
    let r = s.get("/path/short");
    assert_eq!(r.status, 200);
    let long = "c".repeat(120);
    expect_error(
        &s,
        "line over --limit-request-line 100",
        get("x", &format!("/path/{long}")).as_slice(),
        &[414],
    );
}

#[test]
fn too_many_headers_is_431() {
    let s = Server::start("testapp:app");
    let mut req = String::from("GET /path/x HTTP/1.1\r\nHost: x\r\n");
    for i in 0..120 {
        req.push_str(&format!("X-H{i}: v\r\n"));
    }
    req.push_str("\r\n");
    expect_error(&s, "121 header fields", req.as_bytes(), &[431]);
    // 100 fields are fine.
    let mut req = String::from("GET /path/x HTTP/1.1\r\nHost: x\r\nConnection: close\r\n");
    for i in 0..98 {
        req.push_str(&format!("X-H{i}: v\r\n"));
    }
    req.push_str("\r\n");
    assert_eq!(
        s.request(req.as_bytes()).status,
        200,
        "100 header fields refused"
    );
}

#[test]
fn header_field_too_large_is_431() {
    let s = Server::start("testapp:app");
    let v = "v".repeat(9000);
    expect_error(
        &s,
        "9000-byte header",
        format!("GET /path/x HTTP/1.1\r\nHost: x\r\nX-Big: {v}\r\n\r\n").as_bytes(),
        &[431],
    );
    let s = Server::start_with(
        "testapp:app",
        &[
            "--limit-request-fields",
            "5",
            "--limit-request-field-size",
            "50",
        ],
    );
    let v = "v".repeat(60);
    expect_error(
        &s,
        "field over --limit-request-field-size 50",
        format!("GET /path/x HTTP/1.1\r\nHost: x\r\nX-Big: {v}\r\n\r\n").as_bytes(),
        &[431],
    );
    expect_error(
        &s,
        "6 fields over --limit-request-fields 5",
        b"GET /path/x HTTP/1.1\r\nHost: x\r\nA: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\nE: 5\r\n\r\n",
        &[431],
    );
    let r = s.request(
        b"GET /path/x HTTP/1.1\r\nHost: x\r\nA: 1\r\nB: 2\r\nC: 3\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(
        r.status, 200,
        "5 fields refused with --limit-request-fields 5"
    );
}

#[test]
fn body_over_limit_is_413() {
    let s = Server::start_with("testapp:app", &["--limit-request-body", "1000"]);
    // Content-Length over the limit: refused from the head alone.
    expect_error(
        &s,
        "Content-Length 2000 > 1000",
        b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 2000\r\n\r\n",
        &[413],
    );
    // Chunked body growing over the limit.
    let mut req = b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    for _ in 0..3 {
        req.extend(b"258\r\n"); // 600 bytes
        req.extend(vec![b'z'; 600]);
        req.extend(b"\r\n");
    }
    req.extend(b"0\r\n\r\n");
    expect_error(&s, "chunked 1800 > 1000", &req, &[413]);
    // Expect: 100-continue with a too-large Content-Length: 413 (a 100
    // before it is pointless but tolerated).
    let mut c = s.connect();
    c.send(
        b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\nExpect: 100-continue\r\n\r\n",
    );
    let mut r = c.read_response();
    if r.status == 100 {
        r = c.read_response();
    }
    assert_eq!(r.status, 413, "{}", r.raw_str());
    assert!(r.connection_has("close"), "{}", r.raw_str());
    c.assert_closed();
    // At the limit: fine.
    let mut req =
        b"POST /echo HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 1000\r\n\r\n"
            .to_vec();
    req.extend(vec![b'y'; 1000]);
    let r = s.request(&req);
    assert_eq!(r.status, 200);
    assert_eq!(r.body.len(), 1000);
}

#[test]
fn request_head_arriving_byte_by_byte() {
    let s = Server::start("testapp:app");
    let mut c = s.connect();
    let req = b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\nbody";
    for b in req.chunks(1) {
        c.send(b);
        std::thread::sleep(Duration::from_millis(1));
    }
    let r = c.read_response();
    assert_eq!(r.status, 200, "{}", r.raw_str());
    assert_eq!(r.body_str(), "body");
    // Meanwhile-style check: another connection is fine too.
    assert_eq!(s.get("/path/other").body_str(), "/path/other");
}

#[test]
fn leading_empty_line_before_request_is_ignored() {
    // RFC 9112 section 2.2: a server SHOULD ignore at least one empty line
    // received before the request-line.
    let s = Server::start("testapp:app");
    let r = s.request(b"\r\nGET /path/crlf HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    assert_eq!(r.status, 200, "{}", r.raw_str());
    assert_eq!(r.body_str(), "/path/crlf");
}
