//! End-to-end `wsgi.file_wrapper`: real files go out with sendfile(2),
//! everything else is iterated in blocks, and close() reaches the file.
//!
//! How a test knows the fast path was taken: the app's file-like object
//! counts its read() calls (tests/apps/files.py, `/stats`), so zero reads
//! means no body byte passed through Python; at `--log-level debug` the
//! connection logs `sent N bytes of a file` when a file part is done, and
//! the socket logs `sendfile(2) refused` if it had to copy through a
//! buffer instead. Counting syscalls (strace) or /proc/PID/io would not
//! tell them apart: sendfile is counted as a read and a write there too.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a panic is a test's failure report
#![cfg(feature = "python")]

mod common;

use common::*;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

const BIG: usize = 20 << 20;

/// A file of `pattern` bytes, removed on drop.
struct TempFile {
    path: PathBuf,
    data: Vec<u8>,
}

impl TempFile {
    fn new(tag: &str, len: usize) -> TempFile {
        let path = temp_path(tag);
        let data = pattern(0, len);
        let mut f = std::fs::File::create(&path).expect("create test file");
        f.write_all(&data).expect("write test file");
        TempFile { path, data }
    }

    fn crc(&self, range: std::ops::Range<usize>) -> u32 {
        crc32_update(0, &self.data[range])
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

fn server() -> Server {
    Server::start_with("files:app", &["--log-level", "debug"])
}

fn get(path: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").into_bytes()
}

fn file_url(file: &Path, query: &str) -> String {
    format!("/file?path={}&{query}", file.display())
}

/// `(reads, closes)` of the app's file-like object for `token`.
fn stats(s: &Server, token: &str) -> (i64, i64) {
    let r = s.get(&format!("/stats?token={token}"));
    let body = r.body_str();
    let mut it = body
        .split(' ')
        .map(|kv| kv.split_once('=').and_then(|(_, v)| v.parse().ok()));
    match (it.next().flatten(), it.next().flatten()) {
        (Some(reads), Some(closes)) => (reads, closes),
        _ => panic!("/stats answered {body:?}"),
    }
}

/// Waits for the app to have closed `token`'s file once.
fn assert_closed_once(s: &Server, token: &str) {
    assert!(
        eventually(Duration::from_secs(5), || stats(s, token).1 >= 1),
        "close() of {token} never called"
    );
    assert_eq!(stats(s, token).1, 1, "close() of {token} not called once");
}

fn assert_sent_with_sendfile(s: &Server, bytes: usize) {
    let line = format!("sent {bytes} bytes of a file");
    assert!(
        s.wait_for_log(&line, Duration::from_secs(5)),
        "no {line:?} in the log:\n{}",
        s.log()
    );
    assert!(
        !s.log().contains("sendfile(2) refused"),
        "copied instead of sendfile:\n{}",
        s.log()
    );
}

#[test]
fn big_file_with_and_without_content_length() {
    let f = TempFile::new("big", BIG);
    let s = server();
    for (token, cl) in [("nocl", ""), ("cl", "&cl=rest")] {
        let r = s.get(&file_url(&f.path, &format!("token={token}{cl}")));
        assert_eq!(r.status, 200, "{}", show(&r.raw));
        assert_eq!(
            r.header("content-length"),
            Some(&*BIG.to_string()),
            "{token}"
        );
        assert!(r.chunks.is_none(), "{token}: chunked");
        assert_eq!(r.body.len(), BIG, "{token}");
        assert_eq!(
            crc32_update(0, &r.body),
            f.crc(0..BIG),
            "{token}: bytes differ"
        );
        assert_eq!(stats(&s, token).0, 0, "{token}: body read through Python");
        assert_closed_once(&s, token);
    }
    assert_sent_with_sendfile(&s, BIG);
}

#[test]
fn seeked_file_is_sent_from_its_position() {
    let f = TempFile::new("seek", 300_000);
    let s = server();
    let mut c = s.connect();
    // From the position to the end, length measured by the server.
    c.send(&get(&file_url(&f.path, "seek=12345&token=s1")));
    let r = c.read_response();
    assert_eq!(r.header("content-length"), Some("287655"));
    assert!(r.body == f.data[12345..], "bytes differ from offset 12345");
    // The app's Content-Length: exactly that many bytes, connection kept.
    c.send(&get(&file_url(&f.path, "seek=100&cl=1000&token=s2")));
    let r = c.read_response();
    assert_eq!(r.header("content-length"), Some("1000"));
    assert!(r.body == f.data[100..1100]);
    assert!(!r.connection_has("close"));
    c.send(&get(&file_url(&f.path, "seek=299990&token=s3")));
    let r = c.read_response();
    assert_eq!(r.body, &f.data[299_990..]);
    for t in ["s1", "s2", "s3"] {
        assert_eq!(stats(&s, t).0, 0, "{t} read through Python");
        assert_closed_once(&s, t);
    }
    assert_sent_with_sendfile(&s, 287_655);
}

#[test]
fn content_length_beyond_the_file_cuts_the_connection() {
    let f = TempFile::new("short", 50_000);
    let s = server();
    let mut c = s.connect();
    c.send(&get(&file_url(&f.path, "cl=60000&token=short")));
    let err = c
        .try_read_response(false)
        .expect_err("a body 10000 bytes short was read as whole");
    assert!(err.msg.contains("EOF"), "{err}");
    let head_end = find(&err.raw, b"\r\n\r\n").expect("head") + 4;
    assert!(
        err.raw[head_end..] == f.data[..],
        "the bytes there are wrong"
    );
    assert_closed_once(&s, "short");
    assert!(
        s.wait_for_log("ended 10000 bytes early", Duration::from_secs(5)),
        "{}",
        s.log()
    );
}

#[test]
fn head_request_sends_length_but_no_body() {
    let f = TempFile::new("head", 100_000);
    let s = server();
    let mut c = s.connect();
    c.send(
        format!(
            "HEAD {} HTTP/1.1\r\nHost: x\r\n\r\n",
            file_url(&f.path, "seek=10&token=h")
        )
        .as_bytes(),
    );
    let r = c.read_head_response();
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-length"), Some("99990"));
    // The next response follows at once: no stray body bytes between.
    c.send(&get(&file_url(&f.path, "cl=5")));
    let r = c.read_response();
    assert_eq!(r.body, &f.data[..5], "HEAD sent body bytes");
    assert_eq!(stats(&s, "h").0, 0);
    assert_closed_once(&s, "h");
}

#[test]
fn bytesio_is_read_in_blocks_of_block_size() {
    let s = server();
    let r = s.get("/bytesio?size=100000&block=7000&token=bio");
    assert_eq!(r.status, 200, "{}", show(&r.raw));
    let want: Vec<u8> = (0..100_000).map(|i| (i % 251) as u8).collect();
    assert!(r.body == want, "BytesIO body differs");
    // No length known: chunked, one chunk per block read.
    let mut sizes = vec![7000; 14];
    sizes.extend([2000, 0]);
    assert_eq!(r.chunks, Some(sizes));
    // 15 blocks and the empty read that ends it.
    assert_eq!(stats(&s, "bio"), (16, 1));
}

#[test]
fn non_regular_files_and_plain_objects_are_iterated() {
    let f = TempFile::new("wrap", 40_000);
    let s = server();
    let want: Vec<u8> = (0..50_000).map(|i| (i % 251) as u8).collect();
    // A pipe has a fileno() but is not a regular file.
    let r = s.get("/pipe?size=50000&token=pipe");
    assert!(r.body == want, "pipe body differs");
    assert!(stats(&s, "pipe").0 > 1);
    assert_closed_once(&s, "pipe");
    // No fileno() at all.
    let r = s.get("/plain?size=50000&block=10000&token=plain");
    assert!(r.body == want, "plain body differs");
    assert_eq!(stats(&s, "plain"), (6, 1));
    // A real file, but the app returned its own iterable around the
    // wrapper: the server cannot know what that does, so it iterates.
    let r = s.get(&file_url(&f.path, "block=4096&wrap=1&token=gen"));
    assert!(r.body == f.data, "wrapped body differs");
    let mut sizes = vec![4096; 9];
    sizes.extend([3136, 0]);
    assert_eq!(r.chunks, Some(sizes));
    assert_eq!(stats(&s, "gen").0, 11);
    // block_size 0 would be an empty body: refused.
    assert_eq!(s.get("/badblock").status, 500);
    assert!(
        s.wait_for_log("block_size must be at least 1", Duration::from_secs(5)),
        "{}",
        s.log()
    );
}

#[test]
fn client_that_stops_reading_does_not_stall_others() {
    let f = TempFile::new("stall", BIG);
    let small = TempFile::new("small", 1000);
    let s = server();
    let mut stalled = s.connect();
    stalled.send(&get(&file_url(&f.path, "token=stalled")));
    let first = stalled.read_exact_raw(64 * 1024);
    assert!(first.starts_with(b"HTTP/1.1 200 OK\r\n"));
    // The stalled client reads no more; others are served meanwhile.
    for i in 0..3 {
        let token = format!("other{i}");
        let r = s.get(&file_url(&small.path, &format!("token={token}")));
        assert!(r.body == small.data, "other client {i}");
        assert_closed_once(&s, &token);
    }
    assert_eq!(stats(&s, "stalled").1, 0, "closed while still sending");
    // It goes away mid-file: the server notices, closes the file once.
    drop(stalled);
    assert_closed_once(&s, "stalled");
    let r = s.get(&file_url(&small.path, "token=after"));
    assert!(r.body == small.data);
    assert!(
        !s.log().contains("sent 20971520 bytes"),
        "the whole file went to a client that left:\n{}",
        s.log()
    );
}

#[test]
fn keep_alive_requests_in_a_row() {
    let f = TempFile::new("ka", BIG);
    let s = server();
    let mut c = s.connect();
    // Two pipelined, then one more after reading both.
    let mut two = get(&file_url(&f.path, "token=k1"));
    two.extend(get(&file_url(&f.path, "seek=1000000&cl=10&token=k2")));
    c.send(&two);
    let r1 = c.read_response();
    assert_eq!(crc32_update(0, &r1.body), f.crc(0..BIG));
    let r2 = c.read_response();
    assert_eq!(r2.body, &f.data[1_000_000..1_000_010]);
    c.send(&get(&file_url(&f.path, "seek=5&token=k3")));
    let r3 = c.read_response();
    assert_eq!(crc32_update(0, &r3.body), f.crc(5..BIG));
    // HTTP/1.0 keeps the connection when the server knows the length.
    c.send(
        format!(
            "GET {} HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
            file_url(&f.path, "seek=20971500&token=k4")
        )
        .as_bytes(),
    );
    let r4 = c.read_response();
    assert_eq!(r4.header("content-length"), Some("20"));
    assert!(r4.connection_has("keep-alive"));
    assert_eq!(r4.body, &f.data[BIG - 20..]);
    for t in ["k1", "k2", "k3", "k4"] {
        assert_eq!(stats(&s, t).0, 0, "{t} read through Python");
        assert_closed_once(&s, t);
    }
}

#[test]
fn unix_socket_uses_sendfile_too() {
    let f = TempFile::new("unix", 3 << 20);
    let sock = temp_path("sock");
    let s = Server::builder("files:app")
        .bind(&format!("unix:{}", sock.display()))
        .args(&["--log-level", "debug"])
        .start();
    let mut c = Client::unix(&sock);
    c.send(&get(&file_url(&f.path, "token=u")));
    let r = c.read_response();
    assert_eq!(crc32_update(0, &r.body), f.crc(0..f.data.len()));
    assert_sent_with_sendfile(&s, 3 << 20);
}
