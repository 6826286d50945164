//! Hardening: strict RFC 9112 request parsing and an untrusted application.
//!
//! Request side: every malformed or ambiguous request is sent as raw bytes,
//! with a valid `GET /count` pipelined behind it in the same write. The
//! server must answer with the expected status and `Connection: close`,
//! close the connection, and the application (tests/apps/hardening.py,
//! which counts every request it sees) must not have seen anything: neither
//! the bad request nor the one smuggled behind it.
//!
//! The cases are table-driven, one table per area; a failing table names
//! every failing case with its request bytes, what was expected and what
//! came back.
//!
//! Response side: an application that emits CR/LF/NUL in header values,
//! bad header names, malformed status lines or hop-by-hop headers gets a
//! 500, the error is logged, and no injected header reaches the wire. Body
//! bytes beyond the application's Content-Length never reach the client.
#![cfg(feature = "python")]

mod common;

use common::*;
use std::io::{self, Read};
use std::time::{Duration, Instant};

const APP: &str = "hardening:app";

/// The valid request pipelined after every bad one.
const SMUGGLED: &[u8] = b"GET /count HTTP/1.1\r\nHost: x\r\n\r\n";

/// How long a response or a close may take before it counts as a hang.
const WAIT: Duration = Duration::from_secs(5);

/// Waits up to `t` for the peer to close; an error says what happened.
fn closed_within(c: &mut Client, t: Duration) -> Result<(), String> {
    if !c.buffered().is_empty() {
        return Err(format!(
            "extra bytes after the response: {:?}",
            show(c.buffered())
        ));
    }
    c.set_read_timeout(t);
    let mut tmp = [0u8; 4096];
    let start = Instant::now();
    let r = c.stream.read(&mut tmp);
    c.set_read_timeout(IO_TIMEOUT);
    match r {
        Ok(0) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::ConnectionReset => Ok(()),
        Ok(n) => Err(format!(
            "extra bytes after the response: {:?}",
            show(&tmp[..n])
        )),
        Err(e) => Err(format!(
            "connection not closed after {:?} ({e})",
            start.elapsed()
        )),
    }
}

/// Lines the app logged (`APP-SEEN ...`) since line `from` of the log.
fn app_seen_since(s: &Server, from: usize) -> Vec<String> {
    s.log_lines()
        .into_iter()
        .skip(from)
        .filter(|l| l.contains("APP-SEEN"))
        .collect()
}

/// Sends `req` + `SMUGGLED` in one write; checks status, `Connection:
/// close`, the close, and that the app saw nothing.
fn check_rejected(s: &Server, req: &[u8], status: u16) -> Result<(), String> {
    let before = hardening_count(s);
    let log_from = s.log_lines().len();
    let mut c = s.connect();
    c.set_read_timeout(WAIT);
    let mut all = req.to_vec();
    all.extend_from_slice(SMUGGLED);
    c.send(&all);
    let mut problems = Vec::new();
    match c.try_read_response(false) {
        Err(e) => problems.push(format!("no response within {WAIT:?}: {e}")),
        Ok(r) => {
            if r.status != status {
                problems.push(format!(
                    "expected {status}, got {}: {:?}",
                    r.status,
                    show(&r.raw)
                ));
            }
            if !r.connection_has("close") {
                problems.push(format!("no `Connection: close` in {:?}", show(&r.raw)));
            }
            if let Err(e) = closed_within(&mut c, WAIT) {
                problems.push(e);
            }
        }
    }
    drop(c);
    let after = hardening_count(s);
    if after != before {
        problems.push(format!(
            "the app saw {} request(s): {:?}",
            after - before,
            app_seen_since(s, log_from)
        ));
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("; "))
    }
}

/// Runs a table of (name, request, expected status); panics listing every
/// failing case.
fn run_rejections(cases: &[(&str, Vec<u8>, u16)]) {
    let s = Server::start(APP);
    let mut failures = Vec::new();
    for (name, req, status) in cases {
        if let Err(e) = check_rejected(&s, req, *status) {
            failures.push(format!(
                "[{name}] request {:?}: expected {status} + close, app untouched: {e}",
                show(req)
            ));
        }
    }
    // The server is still healthy.
    let r = s.get("/after");
    assert_eq!(
        r.status,
        200,
        "server unhealthy after the cases: {}",
        r.raw_str()
    );
    assert!(
        failures.is_empty(),
        "{} of {} case(s) failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

fn b(s: &str) -> Vec<u8> {
    s.as_bytes().to_vec()
}

/// A POST /count with the given extra header lines and raw body bytes.
fn post(headers: &str, body: &[u8]) -> Vec<u8> {
    let mut v = format!("POST /count HTTP/1.1\r\nHost: x\r\n{headers}\r\n").into_bytes();
    v.extend_from_slice(body);
    v
}

/// A chunked POST /count whose body is `body` (raw chunked bytes).
fn chunked(body: &[u8]) -> Vec<u8> {
    post("Transfer-Encoding: chunked\r\n", body)
}

/// A GET /count with the given raw header bytes (each line with its ending).
fn get_with(headers: &[u8]) -> Vec<u8> {
    let mut v = b"GET /count HTTP/1.1\r\n".to_vec();
    v.extend_from_slice(headers);
    v.extend_from_slice(b"\r\n");
    v
}

const CHUNKED_HELLO: &[u8] = b"5\r\nhello\r\n0\r\n\r\n";

// ---------------------------------------------------------------------------
// Request side: ambiguous or malformed requests rejected, lenient forms accepted
// ---------------------------------------------------------------------------

#[test]
fn content_length_ambiguities_are_400() {
    let cases = vec![
        (
            "CL with TE",
            post(
                "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n",
                CHUNKED_HELLO,
            ),
            400,
        ),
        (
            "TE with CL",
            post(
                "Transfer-Encoding: chunked\r\nContent-Length: 15\r\n",
                CHUNKED_HELLO,
            ),
            400,
        ),
        (
            "two CL equal",
            post("Content-Length: 5\r\nContent-Length: 5\r\n", b"hello"),
            400,
        ),
        (
            "two CL different",
            post("Content-Length: 5\r\nContent-Length: 6\r\n", b"hello!"),
            400,
        ),
        ("CL +5", post("Content-Length: +5\r\n", b"hello"), 400),
        ("CL 0x5", post("Content-Length: 0x5\r\n", b"hello"), 400),
        ("CL -1", post("Content-Length: -1\r\n", b"hello"), 400),
        ("CL '5 5'", post("Content-Length: 5 5\r\n", b"hello"), 400),
        ("CL empty", post("Content-Length: \r\n", b"hello"), 400),
        (
            "CL 21 digits",
            post("Content-Length: 100000000000000000000\r\n", b"hello"),
            400,
        ),
        (
            "CL 2^64",
            post("Content-Length: 18446744073709551616\r\n", b"hello"),
            400,
        ),
    ];
    run_rejections(&cases);
}

#[test]
fn transfer_encoding_ambiguities_are_rejected() {
    let cases = vec![
        (
            "TE 'chunked, gzip' (chunked not final)",
            post("Transfer-Encoding: chunked, gzip\r\n", CHUNKED_HELLO),
            400,
        ),
        (
            "TE 'chunked, chunked' in one field",
            post("Transfer-Encoding: chunked, chunked\r\n", CHUNKED_HELLO),
            400,
        ),
        (
            "TE chunked in two fields",
            post(
                "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n",
                CHUNKED_HELLO,
            ),
            400,
        ),
        (
            "TE gzip alone",
            post("Transfer-Encoding: gzip\r\n", CHUNKED_HELLO),
            400,
        ),
        (
            "TE on HTTP/1.0",
            {
                let mut v = b"POST /count HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
                v.extend_from_slice(CHUNKED_HELLO);
                v
            },
            400,
        ),
        (
            "TE 'gzip, chunked' (unknown coding) -> 501",
            post("Transfer-Encoding: gzip, chunked\r\n", CHUNKED_HELLO),
            501,
        ),
    ];
    run_rejections(&cases);
}

#[test]
fn chunked_body_errors_are_400() {
    let mut big_ext = b"5;ext=".to_vec();
    big_ext.extend(vec![b'a'; 5000]);
    big_ext.extend_from_slice(b"\r\nhello\r\n0\r\n\r\n");
    let mut big_trailer = b"5\r\nhello\r\n0\r\nX-Trailer: ".to_vec();
    big_trailer.extend(vec![b't'; 9000]);
    big_trailer.extend_from_slice(b"\r\n\r\n");
    let mut many_trailers = b"5\r\nhello\r\n0\r\n".to_vec();
    for i in 0..300 {
        many_trailers.extend(format!("X-T{i:03}: {}\r\n", "t".repeat(30)).into_bytes());
    }
    many_trailers.extend_from_slice(b"\r\n");
    let cases = vec![
        ("size 'zz'", chunked(b"zz\r\nhello\r\n0\r\n\r\n"), 400),
        ("size '+5'", chunked(b"+5\r\nhello\r\n0\r\n\r\n"), 400),
        ("size '-5'", chunked(b"-5\r\nhello\r\n0\r\n\r\n"), 400),
        ("size '0x5'", chunked(b"0x5\r\nhello\r\n0\r\n\r\n"), 400),
        ("size empty", chunked(b"\r\nhello\r\n0\r\n\r\n"), 400),
        (
            "size 2^64 (17 hex digits, wraps to 0)",
            chunked(b"10000000000000000\r\nhello\r\n0\r\n\r\n"),
            400,
        ),
        (
            "size 2^64+5 (wraps to 5)",
            chunked(b"10000000000000005\r\nhello\r\n0\r\n\r\n"),
            400,
        ),
        (
            "size 2^68 (wraps to 0)",
            chunked(b"100000000000000000\r\nhello\r\n0\r\n\r\n"),
            400,
        ),
        (
            "size line ends in bare LF",
            chunked(b"5\nhello\r\n0\r\n\r\n"),
            400,
        ),
        (
            "last-chunk line ends in bare LF",
            chunked(b"5\r\nhello\r\n0\n\r\n"),
            400,
        ),
        (
            "data not followed by CRLF",
            chunked(b"5\r\nhelloXX0\r\n\r\n"),
            400,
        ),
        (
            "data followed by bare LF",
            chunked(b"5\r\nhello\n0\r\n\r\n"),
            400,
        ),
        (
            "data longer than size",
            chunked(b"3\r\nhello\r\n0\r\n\r\n"),
            400,
        ),
        ("chunk extension > 4 KiB", chunked(&big_ext), 400),
        ("one trailer > 8 KiB", chunked(&big_trailer), 400),
        ("300 trailers, ~11 KiB", chunked(&many_trailers), 400),
    ];
    run_rejections(&cases);
}

/// RFC 9112 7.1.1: `chunk-ext = *( BWS ";" BWS name [ BWS "=" BWS value ] )`,
/// the name a token, the value a token or a quoted-string; trailer fields
/// as header fields.
#[test]
fn chunk_extension_and_trailer_grammar_errors_are_400() {
    let ext = |e: &[u8]| chunked(&[e, b"\r\nhello\r\n0\r\n\r\n"].concat());
    let trailer = |t: &[u8]| chunked(&[b"5\r\nhello\r\n0\r\n", t, b"\r\n"].concat());
    let cases = vec![
        ("extension ';' without a name", ext(b"5;"), 400),
        ("extension value missing", ext(b"5;a="), 400),
        ("extension name missing", ext(b"5;=x"), 400),
        ("space inside a token value", ext(b"5;a=b c"), 400),
        ("unterminated quoted value", ext(b"5;a=\"unterminated"), 400),
        ("value not a token", ext(b"5;a=@"), 400),
        ("name not a token", ext(b"5;bad[=x"), 400),
        ("empty extension between ';'", ext(b"5;a=b;;c"), 400),
        ("whitespace before the CR", ext(b"5;a=b "), 400),
        ("obs-text outside quotes", ext(b"5;a=\xff"), 400),
        ("bytes after a quoted value", ext(b"5;a=\"x\"y"), 400),
        ("control byte in a quoted value", ext(b"5;a=\"x\x01\""), 400),
        ("trailer name with a space", trailer(b"X Y: z\r\n"), 400),
        ("trailer name not a token", trailer(b"X[: z\r\n"), 400),
        ("trailer without a colon", trailer(b"X-T\r\n"), 400),
        (
            "trailer value with a control",
            trailer(b"X-T: a\x0bb\r\n"),
            400,
        ),
        ("trailer value with bare CR", trailer(b"X-T: a\rb\r\n"), 400),
        ("obs-fold in the trailer", trailer(b"X-T: a\r\n b\r\n"), 400),
    ];
    run_rejections(&cases);
}

#[test]
fn valid_chunk_extensions_are_accepted() {
    let s = Server::start(APP);
    let mut failures = Vec::new();
    let exts: [&[u8]; 6] = [
        b"5;a",
        b"5;a=b",
        b"5 ; a = \"x y\"",
        b"5;a=b;c=d",
        b"5;a=\"q\\\"x\"",
        b"5;a=\"\xff\t\\\xff\"",
    ];
    for e in exts {
        let mut req = b("POST /ext HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n");
        req.extend_from_slice(e);
        req.extend_from_slice(b"\r\nhello\r\n0\r\nX-T: \"a\tb\xe9\"\r\n\r\n");
        if let Err(err) = check_accepted(&s, &req, &["body=5"]) {
            failures.push(format!("request {:?}: {err}", show(&req)));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn field_syntax_errors_are_400() {
    let cases = vec![
        (
            "obs-fold (SP)",
            get_with(b"Host: x\r\nX-A: a\r\n b\r\n"),
            400,
        ),
        (
            "obs-fold (HTAB)",
            get_with(b"Host: x\r\nX-A: a\r\n\tb\r\n"),
            400,
        ),
        (
            "whitespace before the first field",
            get_with(b" X-A: a\r\nHost: x\r\n"),
            400,
        ),
        (
            "SP between name and colon",
            get_with(b"Host: x\r\nX-A : 1\r\n"),
            400,
        ),
        (
            "HTAB between name and colon",
            get_with(b"Host: x\r\nX-A\t: 1\r\n"),
            400,
        ),
        ("SP in Host name", get_with(b"Host : x\r\n"), 400),
        (
            "field name 'Bad Header'",
            get_with(b"Host: x\r\nBad Header: 1\r\n"),
            400,
        ),
        (
            "field name 'X(y)'",
            get_with(b"Host: x\r\nX(y): 1\r\n"),
            400,
        ),
        ("field name 'X@Y'", get_with(b"Host: x\r\nX@Y: 1\r\n"), 400),
        ("empty field name", get_with(b"Host: x\r\n: 1\r\n"), 400),
        ("CR in value", get_with(b"Host: x\r\nX-A: a\rb\r\n"), 400),
        ("LF in value", get_with(b"Host: x\r\nX-A: a\nb\r\n"), 400),
        ("NUL in value", get_with(b"Host: x\r\nX-A: a\0b\r\n"), 400),
        (
            "0x01 in value",
            get_with(b"Host: x\r\nX-A: a\x01b\r\n"),
            400,
        ),
        ("DEL in value", get_with(b"Host: x\r\nX-A: a\x7fb\r\n"), 400),
        ("NUL in name", get_with(b"Host: x\r\nX-\0A: 1\r\n"), 400),
        (
            "line without colon",
            get_with(b"Host: x\r\nNoColonHere\r\n"),
            400,
        ),
    ];
    run_rejections(&cases);
}

#[test]
fn bare_lf_and_bare_cr_are_400() {
    // None of these may be taken for an unfinished head: the response must
    // come while our side stays open (check_rejected never half-closes).
    let cases = vec![
        (
            "bare LF everywhere",
            b("GET /count HTTP/1.1\nHost: x\n\n"),
            400,
        ),
        (
            "bare LF after request line",
            b("GET /count HTTP/1.1\nHost: x\r\n\r\n"),
            400,
        ),
        (
            "bare LF after a field",
            b("GET /count HTTP/1.1\r\nHost: x\n\r\n"),
            400,
        ),
        (
            "bare LF as the final empty line",
            b("GET /count HTTP/1.1\r\nHost: x\r\n\n"),
            400,
        ),
        (
            "bare CR after request line",
            b("GET /count HTTP/1.1\rHost: x\r\n\r\n"),
            400,
        ),
        (
            "bare CR ending a field",
            b("GET /count HTTP/1.1\r\nHost: x\rX-A: 1\r\n\r\n"),
            400,
        ),
        (
            "bare CR in the final empty line",
            b("GET /count HTTP/1.1\r\nHost: x\r\n\r\r\n"),
            400,
        ),
        (
            "bare CR in target",
            b("GET /co\runt HTTP/1.1\r\nHost: x\r\n\r\n"),
            400,
        ),
    ];
    run_rejections(&cases);
}

#[test]
fn request_line_errors_are_400() {
    let cases = vec![
        (
            "method 'G@T'",
            b("G@T /count HTTP/1.1\r\nHost: x\r\n\r\n"),
            400,
        ),
        (
            "method 'GE T'",
            b("GE T /count HTTP/1.1\r\nHost: x\r\n\r\n"),
            400,
        ),
        (
            "empty method",
            b(" /count HTTP/1.1\r\nHost: x\r\n\r\n"),
            400,
        ),
        ("empty target", b("GET  HTTP/1.1\r\nHost: x\r\n\r\n"), 400),
        (
            "space in target",
            b("GET /a b HTTP/1.1\r\nHost: x\r\n\r\n"),
            400,
        ),
        (
            "HTAB in target",
            b("GET /a\tb HTTP/1.1\r\nHost: x\r\n\r\n"),
            400,
        ),
        (
            "0x01 in target",
            b("GET /a\x01b HTTP/1.1\r\nHost: x\r\n\r\n"),
            400,
        ),
        (
            "DEL in target",
            b("GET /a\x7fb HTTP/1.1\r\nHost: x\r\n\r\n"),
            400,
        ),
        (
            "NUL in target",
            b("GET /a\0b HTTP/1.1\r\nHost: x\r\n\r\n"),
            400,
        ),
        (
            "non-ASCII (0xC3 0xA9) in target",
            b"GET /caf\xc3\xa9 HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
            400,
        ),
        ("'*' with GET", b("GET * HTTP/1.1\r\nHost: x\r\n\r\n"), 400),
        (
            "version HTTP/1.2 -> 505",
            b("GET /count HTTP/1.2\r\nHost: x\r\n\r\n"),
            505,
        ),
        (
            "version HTTP/2.0 -> 505",
            b("GET /count HTTP/2.0\r\nHost: x\r\n\r\n"),
            505,
        ),
        (
            "version HTTP/3.0 -> 505",
            b("GET /count HTTP/3.0\r\nHost: x\r\n\r\n"),
            505,
        ),
        (
            "version HTTP/1.1x",
            b("GET /count HTTP/1.1x\r\nHost: x\r\n\r\n"),
            400,
        ),
        (
            "version http/1.1",
            b("GET /count http/1.1\r\nHost: x\r\n\r\n"),
            400,
        ),
        (
            "version HTTP/1",
            b("GET /count HTTP/1\r\nHost: x\r\n\r\n"),
            400,
        ),
        (
            "version HTTP/1.10",
            b("GET /count HTTP/1.10\r\nHost: x\r\n\r\n"),
            400,
        ),
        ("version missing", b("GET /count \r\nHost: x\r\n\r\n"), 400),
        (
            "HTTP/1.1 without Host",
            b("GET /count HTTP/1.1\r\nX-A: 1\r\n\r\n"),
            400,
        ),
        (
            "HTTP/1.1 with two Host fields",
            b("GET /count HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n"),
            400,
        ),
        (
            "HTTP/1.1 with Host and host",
            b("GET /count HTTP/1.1\r\nHost: x\r\nhost: x\r\n\r\n"),
            400,
        ),
    ];
    run_rejections(&cases);
}

/// Sends one request with `Connection: close` semantics; expects a 200 from
/// the app whose body contains every one of `needles`.
/// RFC 9112 3.2: a Host (or an absolute-form authority) that is not
/// `uri-host [ ":" port ]` is a 400; apps build URLs from it.
#[test]
fn invalid_host_is_400() {
    let mut cases: Vec<(&str, Vec<u8>, u16)> = [
        "user@localhost",
        "localhost/path",
        "a b",
        "localhost, other",
        "[::1",
        "h:abc",
        "h:99999",
        "h?x",
        "h#x",
        "[::1]x",
        "[nope]",
        ":80",
        "a%zz",
    ]
    .iter()
    .map(|h| ("Host", get_with(format!("Host: {h}\r\n").as_bytes()), 400))
    .collect();
    for target in [
        "http://h:99999/count",
        "http://h:abc/count",
        "http://[::1/count",
        "http://u@a%zz/count",
        "http://a,b c/count",
    ] {
        let req = format!("GET {target} HTTP/1.1\r\nHost: h\r\n\r\n");
        cases.push(("absolute-form authority", req.into_bytes(), 400));
    }
    run_rejections(&cases);
}

/// CONNECT asks for a tunnel, which a WSGI app cannot give: 501 and a
/// close without calling the app, so no 2xx can put the connection out of
/// HTTP (RFC 9110 9.3.6).
#[test]
fn connect_is_501_without_calling_the_app() {
    run_rejections(&[
        (
            "CONNECT",
            b("CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n"),
            501,
        ),
        (
            "CONNECT with a body length",
            b("CONNECT [::1]:443 HTTP/1.1\r\nHost: [::1]:443\r\nContent-Length: 5\r\n\r\nhello"),
            501,
        ),
    ]);
}

fn check_accepted(s: &Server, req: &[u8], needles: &[&str]) -> Result<(), String> {
    let before = hardening_count(s);
    let mut c = s.connect();
    c.set_read_timeout(WAIT);
    c.send(req);
    let r = c
        .try_read_response(false)
        .map_err(|e| format!("no response: {e}"))?;
    if r.status != 200 {
        return Err(format!("expected 200, got {:?}", show(&r.raw)));
    }
    let body = r.body_str();
    for n in needles {
        if !body.contains(n) {
            return Err(format!("body {body:?} lacks {n:?}"));
        }
    }
    let after = hardening_count(s);
    if after != before + 1 {
        return Err(format!("the app saw {} requests, not 1", after - before));
    }
    Ok(())
}

#[test]
fn lenient_but_unambiguous_forms_are_accepted() {
    let s = Server::start(APP);
    let cases: Vec<(&str, Vec<u8>, Vec<&str>)> = vec![
        (
            "absolute-form target",
            b("GET http://example.com/p?q=1 HTTP/1.1\r\nHost: example.com\r\nConnection: close\r\n\r\n"),
            vec!["path=/p ", "query=q=1 "],
        ),
        (
            "one leading CRLF",
            b("\r\nGET /lead HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"),
            vec!["path=/lead "],
        ),
        (
            "Transfer-Encoding: CHUNKED",
            b("POST /te HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: CHUNKED\r\nConnection: close\r\n\r\n5\r\nhello\r\n0\r\n\r\n"),
            vec!["body=5"],
        ),
        (
            "chunk size with leading zeros (17 digits, 1 significant)",
            b("POST /zeros HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n00000000000000005\r\nhello\r\n0\r\n\r\n"),
            vec!["body=5"],
        ),
        (
            "small chunk extension and trailer",
            b("POST /ext HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n5;name=value\r\nhello\r\n0\r\nX-Trailer: t\r\n\r\n"),
            vec!["body=5"],
        ),
        (
            "OPTIONS *",
            b("OPTIONS * HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"),
            vec!["method=OPTIONS "],
        ),
        (
            "empty Host",
            b("GET /eh HTTP/1.1\r\nHost: \r\nConnection: close\r\n\r\n"),
            vec!["path=/eh ", "host=|"],
        ),
        (
            "IPv6 Host with a port",
            b("GET /v6 HTTP/1.1\r\nHost: [::1]:8080\r\nConnection: close\r\n\r\n"),
            vec!["host=[::1]:8080|"],
        ),
        (
            "Host with sub-delims and an empty port",
            b("GET /sd HTTP/1.1\r\nHost: 0.0.0.0=5000:\r\nConnection: close\r\n\r\n"),
            vec!["host=0.0.0.0=5000:|"],
        ),
        (
            "absolute-form with userinfo (corpus: accepted, as gunicorn does)",
            b("GET http://u:p@example.com:8080/ui HTTP/1.1\r\nHost: example.com:8080\r\nConnection: close\r\n\r\n"),
            vec!["path=/ui "],
        ),
        (
            "HTAB and obs-text in a value",
            b"GET /vals HTTP/1.1\r\nHost: x\r\nX-A: a\tb caf\xe9\r\nConnection: close\r\n\r\n".to_vec(),
            vec!["path=/vals "],
        ),
        (
            "HTTP/1.0 without Host",
            b("GET /ten HTTP/1.0\r\n\r\n"),
            vec!["path=/ten "],
        ),
    ];
    let mut failures = Vec::new();
    for (name, req, needles) in &cases {
        if let Err(e) = check_accepted(&s, req, needles) {
            failures.push(format!("[{name}] request {:?}: {e}", show(req)));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} accepted case(s) failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

#[test]
fn body_cut_off_then_half_close_never_reaches_the_app() {
    // The client sends part of a body and shuts down its write side. The
    // server must close (optionally after a 400) without calling the app,
    // and must not hang waiting for bytes that will never come.
    let s = Server::start(APP);
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("chunked, inside chunk data", chunked(b"5\r\nhel")),
        ("chunked, after a whole chunk", chunked(b"5\r\nhello\r\n")),
        ("chunked, inside the size line", chunked(b"5\r\nhello\r\n1")),
        (
            "chunked, last chunk without final CRLF",
            chunked(b"5\r\nhello\r\n0\r\n"),
        ),
        (
            "Content-Length 10, 4 bytes sent",
            post("Content-Length: 10\r\n", b"abcd"),
        ),
        (
            "head cut off",
            b("POST /count HTTP/1.1\r\nHost: x\r\nContent-Le"),
        ),
    ];
    let mut failures = Vec::new();
    for (name, req) in &cases {
        let before = hardening_count(&s);
        let mut c = s.connect();
        c.send(req);
        c.shutdown_write();
        c.set_read_timeout(WAIT);
        let t = Instant::now();
        let mut got = Vec::new();
        let mut problem = None;
        let mut tmp = [0u8; 4096];
        loop {
            match c.stream.read(&mut tmp) {
                Ok(0) => break,
                Ok(n) => got.extend_from_slice(&tmp[..n]),
                Err(e) if e.kind() == io::ErrorKind::ConnectionReset => break,
                Err(e) => {
                    problem = Some(format!(
                        "connection still open after {:?} ({e})",
                        t.elapsed()
                    ));
                    break;
                }
            }
        }
        if problem.is_none() && !got.is_empty() && !got.starts_with(b"HTTP/1.1 400 ") {
            problem = Some(format!("expected close or 400, got {:?}", show(&got)));
        }
        let after = hardening_count(&s);
        if after != before {
            problem = Some(format!(
                "{}the app was called ({} request(s))",
                problem.map(|p| p + "; ").unwrap_or_default(),
                after - before
            ));
        }
        if let Some(p) = problem {
            failures.push(format!("[{name}] request {:?}: {p}", show(req)));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} case(s) failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

// ---------------------------------------------------------------------------
// Response side: the application is not trusted
// ---------------------------------------------------------------------------

/// True if `raw` contains `Set-Cookie: evil` anywhere (it must never be
/// sent: neither as a header line nor as body bytes).
fn has_injection(raw: &[u8]) -> bool {
    find(raw, b"Set-Cookie: evil").is_some() || find(raw, b"set-cookie: evil").is_some()
}

#[test]
fn invalid_app_headers_and_status_are_500() {
    let s = Server::start(APP);
    let names = [
        "value_crlf",
        "value_lf",
        "value_cr",
        "value_nul",
        "name_space",
        "name_colon",
        "name_crlf",
        "name_empty",
        "status_bare",
        "status_reversed",
        "status_4digits",
        "status_crlf",
        "hop_te",
        "hop_connection",
        "hop_upgrade",
        "hop_keepalive",
    ];
    let mut failures = Vec::new();
    for name in names {
        let log_from = s.log_lines().len();
        let mut c = s.connect();
        c.set_read_timeout(WAIT);
        let req = format!("GET /resp/{name} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        c.send(req.as_bytes());
        let mut problems = Vec::new();
        let raw = match c.try_read_response(false) {
            Ok(r) => {
                if r.status != 500 {
                    problems.push(format!("expected 500, got {}", r.status));
                }
                if find(&r.body, b"must not be sent").is_some() {
                    problems.push("the app's body was sent".to_string());
                }
                let mut raw = r.raw.clone();
                raw.extend(c.read_to_eof());
                raw
            }
            Err(e) => {
                problems.push(format!("no parsable response: {e}"));
                let mut raw = e.raw.clone();
                raw.extend(c.read_to_eof());
                raw
            }
        };
        if has_injection(&raw) {
            problems.push("`Set-Cookie: evil` reached the wire".to_string());
        }
        let path = format!("/resp/{name}");
        let logged = eventually(Duration::from_secs(2), || {
            s.log_lines()
                .iter()
                .skip(log_from)
                .any(|l| l.contains("[ERROR]") && l.contains(&path))
        });
        if !logged {
            problems.push(format!("no [ERROR] line naming {path} in the server log"));
        }
        if !problems.is_empty() {
            failures.push(format!(
                "[{name}] GET {path}: {}; received {:?}",
                problems.join("; "),
                show(&raw)
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} case(s) failed:\n{}\n--- log ---\n{}",
        failures.len(),
        names.len(),
        failures.join("\n"),
        s.log()
    );
    // The server survived all of them.
    assert_eq!(s.get("/after").status, 200);
}

#[test]
fn body_longer_than_content_length_is_cut_and_closed() {
    let s = Server::start(APP);
    for name in ["long_list", "long_gen"] {
        let before = hardening_count(&s);
        let log_from = s.log_lines().len();
        let mut c = s.connect();
        c.set_read_timeout(WAIT);
        // Keep-alive request, with another pipelined behind it in the same
        // write: only the close can end the exchange, and the second
        // request must not reach the app.
        let mut req = format!("GET /resp/{name} HTTP/1.1\r\nHost: x\r\n\r\n").into_bytes();
        req.extend_from_slice(SMUGGLED);
        c.send(&req);
        let r = c.read_response();
        assert_eq!(r.status, 200, "[{name}] {}", r.raw_str());
        assert_eq!(
            r.header("content-length"),
            Some("5"),
            "[{name}] {}",
            r.raw_str()
        );
        assert_eq!(r.body, b"hello", "[{name}]");
        // Nothing else: no second response parsed out of the extra bytes.
        let rest = c.read_to_eof();
        assert!(
            rest.is_empty(),
            "[{name}] bytes after the 5-byte body: {:?}",
            show(&rest)
        );
        assert!(!has_injection(&r.raw), "[{name}] {}", r.raw_str());
        drop(c);
        assert_eq!(
            hardening_count(&s) - before,
            1,
            "[{name}] the app saw: {:?}",
            app_seen_since(&s, log_from)
        );
    }
    assert_eq!(s.get("/after").status, 200);
}

#[test]
fn body_shorter_than_content_length_closes() {
    let s = Server::start(APP);
    let before = hardening_count(&s);
    let log_from = s.log_lines().len();
    let mut c = s.connect();
    c.set_read_timeout(WAIT);
    // With a request pipelined behind it, which must not reach the app.
    let mut req = b"GET /resp/short HTTP/1.1\r\nHost: x\r\n\r\n".to_vec();
    req.extend_from_slice(SMUGGLED);
    c.send(&req);
    let e = match c.try_read_response(false) {
        Ok(r) => panic!("a 100-byte response from a 10-byte body: {}", r.raw_str()),
        Err(e) => e,
    };
    assert!(
        e.msg.contains("EOF after 10 of 100 body bytes"),
        "expected the close after the 10-byte body: {e}"
    );
    assert!(e.raw.ends_with(b"\r\n\r\nonly ten b"), "{e}");
    drop(c);
    assert_eq!(
        hardening_count(&s) - before,
        1,
        "the app saw: {:?}",
        app_seen_since(&s, log_from)
    );
    assert_eq!(s.get("/after").status, 200);
}
