//! End-to-end shutdown behaviour: SIGTERM / SIGINT stop accepting, let
//! in-flight responses finish, then exit 0.
#![cfg(feature = "python")]

mod common;

use common::*;
use std::net::TcpStream;
use std::time::Duration;

const EXIT_WAIT: Duration = Duration::from_secs(10);

fn assert_exit_0(s: &mut Server, what: &str) {
    match s.wait_timeout(EXIT_WAIT) {
        Some(st) => assert_eq!(
            st.code(),
            Some(0),
            "{what}: exit status {st}\nlog:\n{}",
            s.log()
        ),
        None => panic!(
            "{what}: server still running {EXIT_WAIT:?} after the signal\nlog:\n{}",
            s.log()
        ),
    }
}

fn assert_refused(addr: std::net::SocketAddr) {
    if let Ok(mut c) = TcpStream::connect_timeout(&addr, Duration::from_secs(2))
        .map(|s| Client::from_stream(Stream::Tcp(s)))
    {
        // Connected (some other process could reuse the port, unlikely):
        // it must not be our server answering.
        let _ = c.try_send(b"GET /path/x HTTP/1.1\r\nHost: x\r\n\r\n");
        c.set_read_timeout(Duration::from_secs(2));
        let got = c.read_some().unwrap_or_default();
        assert!(
            !got.starts_with(b"HTTP/1.1 200"),
            "server still serving after exit: {}",
            show(&got)
        );
    }
}

#[test]
fn sigterm_lets_the_in_flight_request_finish_then_exits_0() {
    let mut s = Server::start("testapp:app");
    let addr = s.addr();
    let mut c = s.connect();
    c.send(b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(
        s.wait_for_log("slow-start", Duration::from_secs(10)),
        "app never started /slow:\n{}",
        s.log()
    );
    s.signal(libc::SIGTERM);
    let r = c
        .try_read_response(false)
        .unwrap_or_else(|e| panic!("in-flight response lost on SIGTERM: {e}\nlog:\n{}", s.log()));
    assert_eq!(r.status, 200, "{}", r.raw_str());
    assert_eq!(r.body_str(), "slow done");
    // The keep-alive connection is closed rather than kept open.
    c.assert_closed_within(EXIT_WAIT);
    assert_exit_0(&mut s, "SIGTERM with a request in flight");
    assert_refused(addr);
}

#[test]
fn sigterm_lets_a_streaming_response_finish() {
    let mut s = Server::start("testapp:app");
    let mut c = s.connect();
    c.send(b"GET /drip?n=8 HTTP/1.1\r\nHost: x\r\n\r\n");
    // Wait for the head and the first chunk.
    let first = c.read_some().expect("no response bytes");
    s.signal(libc::SIGTERM);
    // Re-assemble: parse from everything received.
    let mut rest = c.read_to_eof();
    let mut all = first;
    all.append(&mut rest);
    let text = String::from_utf8_lossy(&all).into_owned();
    assert!(text.starts_with("HTTP/1.1 200"), "{text:?}");
    assert!(
        text.ends_with("0\r\n\r\n"),
        "streamed response not completed after SIGTERM: {text:?}"
    );
    for i in 0..8 {
        assert!(
            text.contains(&format!("drip{i}\n")),
            "drip{i} missing: {text:?}"
        );
    }
    assert_exit_0(&mut s, "SIGTERM during a streamed response");
}

#[test]
fn sigint_idle_server_exits_0() {
    let mut s = Server::start("testapp:app");
    assert_eq!(s.get("/path/x").status, 200);
    s.signal(libc::SIGINT);
    assert_exit_0(&mut s, "SIGINT when idle");
}

#[test]
fn sigterm_with_idle_keep_alive_connection_exits_promptly() {
    // --keep-alive 60: the server must not wait for the idle connection.
    let mut s = Server::start_with("testapp:app", &["--keep-alive", "60"]);
    let mut c = s.connect();
    c.send(b"GET /path/x HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(c.read_response().status, 200);
    s.signal(libc::SIGTERM);
    c.assert_closed_within(EXIT_WAIT);
    assert_exit_0(&mut s, "SIGTERM with an idle keep-alive connection");
}

#[test]
fn graceful_timeout_bounds_shutdown() {
    // A response that would take 20 s; --graceful-timeout 1 must cut it.
    let mut s = Server::start_with("testapp:app", &["--graceful-timeout", "1"]);
    let mut c = s.connect();
    c.send(b"GET /drip?n=100 HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(
        s.wait_for_log("drip-start", Duration::from_secs(10)),
        "app never started /drip:\n{}",
        s.log()
    );
    s.signal(libc::SIGTERM);
    match s.wait_timeout(EXIT_WAIT) {
        Some(st) => assert!(
            st.code().is_some(),
            "killed by a signal: {st}\nlog:\n{}",
            s.log()
        ),
        None => panic!(
            "--graceful-timeout 1 not enforced: still running after {EXIT_WAIT:?}\nlog:\n{}",
            s.log()
        ),
    }
    // The client sees the connection end (truncated response).
    let rest = c.read_to_eof();
    assert!(
        !rest.ends_with(b"0\r\n\r\n"),
        "a 20 s response completed within the graceful timeout?"
    );
}

#[test]
fn second_sigint_exits_at_once() {
    // DESIGN.md / --help: "a second SIGINT exits at once", even with a
    // response still in flight (here one that would take 20 s).
    let mut s = Server::start("testapp:app");
    let mut c = s.connect();
    c.send(b"GET /drip?n=100 HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(
        s.wait_for_log("drip-start", Duration::from_secs(10)),
        "app never started /drip:\n{}",
        s.log()
    );
    s.signal(libc::SIGINT);
    std::thread::sleep(Duration::from_millis(300));
    s.signal(libc::SIGINT);
    match s.wait_timeout(Duration::from_secs(5)) {
        Some(_) => {}
        None => panic!("still running 5 s after a second SIGINT\nlog:\n{}", s.log()),
    }
}
