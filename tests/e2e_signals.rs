//! End-to-end shutdown behaviour: SIGTERM / SIGINT stop accepting, let
//! in-flight responses finish, then exit 0.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a panic is a test's failure report
#![cfg(feature = "python")]

mod common;

use common::*;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use std::io::{BufRead, BufReader};
use std::net::TcpStream;
use std::process::Stdio;
use std::sync::mpsc;
use std::time::{Duration, Instant};

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

/// A client inside the app at testapp's /gate: the single process's loop
/// is held there until `open`, so what the test sends meanwhile waits in
/// the kernel.
struct Gate {
    busy: Client,
    gate: std::path::PathBuf,
    waiting: std::path::PathBuf,
}

impl Gate {
    fn hold(s: &Server) -> Gate {
        let gate = temp_path("gate");
        let waiting = temp_path("waiting");
        let mut busy = s.connect();
        busy.send(
            format!(
                "GET /gate?file={}&waiting={} HTTP/1.1\r\nHost: x\r\n\r\n",
                gate.display(),
                waiting.display()
            )
            .as_bytes(),
        );
        assert!(
            eventually(IO_TIMEOUT, || waiting.exists()),
            "app never reached the gate:\n{}",
            s.log()
        );
        Gate {
            busy,
            gate,
            waiting,
        }
    }

    /// Lets the app go on; the busy client gets its whole response.
    fn open(mut self) -> Client {
        // A signal sent before this has been handled by the time the app
        // sees the gate open (it is delivered at the app's next system call
        // at the latest); the pause covers a delivery to another thread.
        std::thread::sleep(Duration::from_millis(200));
        std::fs::write(&self.gate, b"go").unwrap();
        let rest = self.busy.read_to_eof();
        let _ = std::fs::remove_file(&self.gate);
        let _ = std::fs::remove_file(&self.waiting);
        assert!(
            find(&rest, b"second block").is_some(),
            "busy client: {}",
            show(&rest)
        );
        self.busy
    }
}

/// A client whose handshake the kernel completed while the loop was busy
/// in the app (queued on the listener, not accepted yet) when SIGTERM
/// arrives is served, with `Connection: close`, instead of being reset
/// with the listener. /gate holds the loop inside the app until the test
/// opens it; the queued client's request is in by then.
#[test]
fn sigterm_serves_a_client_queued_on_the_listener() {
    let mut s = Server::start("testapp:app");
    let gate = Gate::hold(&s);
    let mut queued = s.connect();
    queued.send(b"GET /path/queued HTTP/1.1\r\nHost: x\r\n\r\n");
    s.signal(libc::SIGTERM);
    let busy = gate.open();
    let r = queued.try_read_response(false).unwrap_or_else(|e| {
        panic!(
            "queued client not served after SIGTERM: {e}\nlog:\n{}",
            s.log()
        )
    });
    assert_eq!(r.status, 200, "{}", r.raw_str());
    assert_eq!(r.body_str(), "/path/queued");
    assert!(r.connection_has("close"), "{}", r.raw_str());
    queued.assert_closed_within(EXIT_WAIT);
    // Gone, the clients end the server's lingering closes.
    drop((busy, queued));
    assert_exit_0(&mut s, "SIGTERM with a client queued on the listener");
}

/// A keep-alive connection whose next request is in the server's socket
/// buffer, not read yet, when SIGTERM arrives gets that request answered
/// (with `Connection: close`) instead of a reset: /gate holds the loop
/// inside the app while the request and the signal come in, so the drain
/// begins in the turn whose events include that request's.
#[test]
fn sigterm_serves_a_request_waiting_on_a_keep_alive_connection() {
    let mut s = Server::start("testapp:app");
    let mut kept = s.connect();
    kept.send(b"GET /path/one HTTP/1.1\r\nHost: x\r\n\r\n");
    let r = kept.read_response();
    assert_eq!(r.status, 200, "{}", r.raw_str());
    assert!(!r.connection_has("close"), "{}", r.raw_str());
    let gate = Gate::hold(&s);
    kept.send(b"POST /path/two HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n");
    s.signal(libc::SIGTERM);
    let busy = gate.open();
    let r = kept.try_read_response(false).unwrap_or_else(|e| {
        panic!(
            "request waiting on a keep-alive connection lost on SIGTERM: {e}\nlog:\n{}",
            s.log()
        )
    });
    assert_eq!(r.status, 200, "{}", r.raw_str());
    assert_eq!(r.body_str(), "/path/two");
    assert!(r.connection_has("close"), "{}", r.raw_str());
    kept.assert_closed_within(EXIT_WAIT);
    drop((busy, kept));
    assert_exit_0(
        &mut s,
        "SIGTERM with a request waiting on a keep-alive connection",
    );
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

#[test]
fn signals_during_a_slow_import_do_not_kill_a_single_process() {
    // logrotate's USR1, a stray HUP, TTIN or TTOU while the app imports:
    // their default actions would kill or stop the process. They wait
    // until the loop handles them; the loop logs HUP as ignored.
    signals_during_a_slow_import(
        &[],
        &[
            Signal::SIGUSR1,
            Signal::SIGHUP,
            Signal::SIGTTIN,
            Signal::SIGTTOU,
        ],
        "ignored",
    );
}

#[test]
fn usr1_during_a_preload_import_does_not_kill_the_master() {
    // The master imports the app before it reads signals from its signalfd.
    signals_during_a_slow_import(
        &["-w", "2", "--preload"],
        &[Signal::SIGUSR1],
        "SIGUSR1: reopening log files",
    );
}

/// Starts `slowimport:app` (its import sleeps 2 s) with `args`, sends
/// `signals` during the import, then requires the server to come up, serve,
/// log `handled` (what the signals did) and exit 0 on SIGTERM.
fn signals_during_a_slow_import(args: &[&str], signals: &[Signal], handled: &str) {
    let mut child = base_command()
        .args(["-b", "127.0.0.1:0", "--chdir"])
        .arg(apps_dir())
        .args(args)
        .arg("slowimport:app")
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let pid = Pid::from_raw(child.id() as i32);
    let stderr = child.stderr.take().expect("stderr");
    let (tx, rx) = mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    // Python starts in well under 0.7 s; the import takes 2 s more.
    std::thread::sleep(Duration::from_millis(700));
    for &sig in signals {
        kill(pid, sig).expect("kill");
    }
    let mut log = Vec::new();
    let mut addr = None;
    let deadline = Instant::now() + Duration::from_secs(20);
    while addr.is_none() && Instant::now() < deadline {
        match rx.recv_timeout(Duration::from_millis(200)) {
            Ok(line) => {
                if let Some(Listen::Tcp(a)) = parse_listening(&line) {
                    addr = Some(a);
                }
                log.push(line);
            }
            Err(_) => {
                if let Ok(Some(status)) = child.try_wait() {
                    panic!(
                        "server died during the import: {status}\nlog:\n{}",
                        log.join("\n")
                    );
                }
            }
        }
    }
    let addr = addr.unwrap_or_else(|| panic!("no Listening line\nlog:\n{}", log.join("\n")));
    let mut c = Client::tcp(addr);
    c.send(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    let r = c.read_response();
    assert_eq!((r.status, r.body_str().as_str()), (200, "imported"));
    let mut seen = log.iter().any(|l| l.contains(handled));
    let deadline = Instant::now() + Duration::from_secs(5);
    while !seen && Instant::now() < deadline {
        if let Ok(line) = rx.recv_timeout(Duration::from_millis(100)) {
            seen = line.contains(handled);
            log.push(line);
        }
    }
    assert!(seen, "no {handled:?} line\nlog:\n{}", log.join("\n"));
    assert!(
        child.try_wait().expect("try_wait").is_none(),
        "server exited\nlog:\n{}",
        log.join("\n")
    );
    kill(pid, Signal::SIGTERM).expect("kill");
    let status = child.wait().expect("wait");
    assert_eq!(status.code(), Some(0), "log:\n{}", log.join("\n"));
}
