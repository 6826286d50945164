//! End-to-end logging and proxy handling: `--access-logfile` and
//! `--access-logformat` (to a file and to stdout), `--error-logfile`, and
//! `--forwarded-allow-ips` and `--forwarded-hops` (X-Forwarded-For /
//! X-Forwarded-Proto).
//! Log files are polled with a deadline; nothing waits a fixed time.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a panic is a test's failure report
#![cfg(feature = "python")]

mod common;

use common::*;
use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, ChildStdout, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

const LOG_TIMEOUT: Duration = Duration::from_secs(10);

fn scratch() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("rwsgi-e2e-logs-")
        .tempdir()
        .expect("tempdir")
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 temp path")
}

/// The lines of `path` once it has at least `n`; fails after LOG_TIMEOUT.
fn wait_lines(path: &Path, n: usize) -> Vec<String> {
    let deadline = Instant::now() + LOG_TIMEOUT;
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let lines: Vec<String> = text.lines().map(String::from).collect();
        if lines.len() >= n {
            return lines;
        }
        assert!(
            Instant::now() < deadline,
            "{}: {} line(s) after {LOG_TIMEOUT:?}, wanted {n}:\n{text}",
            path.display(),
            lines.len()
        );
        thread::sleep(Duration::from_millis(20));
    }
}

/// `[10/Oct/2000:13:55:36 +0000]`, field by field.
fn assert_clf_time(t: &str) {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let inner = t
        .strip_prefix('[')
        .and_then(|t| t.strip_suffix(" +0000]"))
        .unwrap_or_else(|| panic!("not a CLF time: {t:?}"));
    let parts: Vec<&str> = inner.split(['/', ':']).collect();
    assert_eq!(parts.len(), 6, "{t:?}");
    let num = |s: &str, len: usize| s.len() == len && s.bytes().all(|b| b.is_ascii_digit());
    assert!(
        num(parts[0], 2) && MONTHS.contains(&parts[1]) && num(parts[2], 4),
        "{t:?}"
    );
    assert!(
        num(parts[3], 2) && num(parts[4], 2) && num(parts[5], 2),
        "{t:?}"
    );
}

fn uint(field: &str) -> u64 {
    field
        .parse()
        .unwrap_or_else(|_| panic!("not an integer: {field:?}"))
}

// ---------------------------------------------------------------------------
// A server whose stdout, stderr or error log file the test reads itself
// (common::Server reads stderr and discards stdout).
// ---------------------------------------------------------------------------

struct Proc {
    child: Child,
    stderr: Arc<Mutex<String>>,
    stdout: Option<ChildStdout>,
    addrs: Vec<Listen>,
}

/// Where the server's `Listening at:` lines appear.
enum Announce<'a> {
    Stderr,
    File(&'a Path),
}

impl Proc {
    fn spawn(app: &str, args: &[&str], announce: Announce<'_>) -> Proc {
        let (mut cmd, n_binds) = Server::builder(app).args(args).command();
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("spawn the server");
        let stderr = Arc::new(Mutex::new(String::new()));
        let mut pipe = child.stderr.take().expect("stderr");
        let sink = stderr.clone();
        thread::spawn(move || {
            let mut buf = [0; 4096];
            while let Ok(n @ 1..) = pipe.read(&mut buf) {
                sink.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        let stdout = child.stdout.take();
        let mut p = Proc {
            child,
            stderr,
            stdout,
            addrs: Vec::new(),
        };
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            let text = match announce {
                Announce::Stderr => p.stderr(),
                Announce::File(path) => std::fs::read_to_string(path).unwrap_or_default(),
            };
            p.addrs = text.lines().filter_map(parse_listening).collect();
            if p.addrs.len() >= n_binds {
                return p;
            }
            if let Ok(Some(st)) = p.child.try_wait() {
                panic!(
                    "server exited ({st}) before listening:\n{text}\n{}",
                    p.stderr()
                );
            }
            assert!(
                Instant::now() < deadline,
                "server not listening after {START_TIMEOUT:?}:\n{text}\n{}",
                p.stderr()
            );
            thread::sleep(Duration::from_millis(20));
        }
    }

    fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn addr(&self) -> SocketAddr {
        self.addrs
            .iter()
            .find_map(|a| match a {
                Listen::Tcp(sa) => Some(*sa),
                Listen::Unix(_) => None,
            })
            .expect("a TCP listener")
    }

    fn request(&self, raw: &[u8]) -> Response {
        let mut c = Client::tcp(self.addr());
        c.send(raw);
        c.read_response()
    }

    /// Starts reading stdout line by line (until then it is not read, and
    /// the pipe fills up).
    fn stdout_lines(&mut self) -> mpsc::Receiver<String> {
        let out = self.stdout.take().expect("stdout already taken");
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        rx
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        // Our own child, by its pid.
        let _ = self.child.kill();
        let _ = self.child.wait();
        if !thread::panicking() {
            let err = self.stderr();
            assert!(!err.contains("panicked at"), "Rust panic:\n{err}");
        }
    }
}

// ---------------------------------------------------------------------------
// Access log
// ---------------------------------------------------------------------------

#[test]
fn access_log_every_atom() {
    let dir = scratch();
    let log = dir.path().join("access.log");
    let format = "%(h)s|%(l)s|%(u)s|%(t)s|%(r)s|%(s)s|%(b)s|%(B)s|%(f)s|%(a)s|\
                  %(T)s|%(D)s|%(M)s|%(L)s|%(p)s|%(m)s|%(U)s|%(q)s|%(H)s|\
                  %({x-custom}i)s|%({X-WHOAMI}o)s|%({x-absent}i)s|%(nope)s";
    let srv = Server::builder("whoami:app")
        .args(&["--access-logfile", s(&log), "--access-logformat", format])
        .start();
    assert!(
        srv.log().contains("unknown atom %(nope)s"),
        "no warning about the unknown atom:\n{}",
        srv.log()
    );
    let r = srv.request(
        b"GET /p%20q/r?x=1&y=%41 HTTP/1.1\r\nHost: h\r\nReferer: http://ref.example/\r\n\
          User-Agent: e2e \"agent\"\r\nAuthorization: Basic YWxpY2U6c2VjcmV0\r\n\
          X-Custom: c1\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(r.status, 200, "{}", r.raw_str());
    let lines = wait_lines(&log, 1);
    assert_eq!(lines.len(), 1, "{lines:?}");
    let f: Vec<&str> = lines[0].split('|').collect();
    assert_eq!(f.len(), 23, "{}", lines[0]);
    assert_eq!(f[0], "127.0.0.1", "h");
    assert_eq!(f[1], "-", "l");
    assert_eq!(f[2], "alice", "u");
    assert_clf_time(f[3]);
    assert_eq!(f[4], "GET /p%20q/r?x=1&y=%41 HTTP/1.1", "r");
    assert_eq!(f[5], "200", "s");
    let len = r.body.len().to_string();
    assert_eq!(f[6], len, "b");
    assert_eq!(f[7], len, "B");
    assert_eq!(f[8], "http://ref.example/", "f");
    assert_eq!(f[9], r#"e2e \"agent\""#, "a (quotes escaped)");
    let (secs, micros, millis) = (uint(f[10]), uint(f[11]), uint(f[12]));
    assert_eq!(millis, micros / 1000, "M vs D");
    assert_eq!(secs, micros / 1_000_000, "T vs D");
    let (l_secs, l_micros) = f[13].split_once('.').expect("L has a decimal point");
    assert_eq!(l_micros.len(), 6, "L: {}", f[13]);
    assert_eq!(uint(l_secs), secs, "L");
    assert!(uint(l_micros) < 1_000_000);
    assert_eq!(f[14], format!("<{}>", srv.pid()), "p");
    assert_eq!(f[15], "GET", "m");
    assert_eq!(f[16], "/p q/r", "U");
    assert_eq!(f[17], "x=1&y=%41", "q");
    assert_eq!(f[18], "HTTP/1.1", "H");
    assert_eq!(f[19], "c1", "{{x-custom}}i");
    assert_eq!(f[20], "127.0.0.1", "{{x-whoami}}o");
    assert_eq!(f[21], "-", "absent header");
    assert_eq!(f[22], "-", "unknown atom");
}

#[test]
fn access_log_time_is_local_with_its_offset() {
    // As gunicorn writes %(t)s: local time, and the zone's offset. A POSIX
    // TZ string needs no zoneinfo files: XYZ is UTC+5:30.
    let dir = scratch();
    let log = dir.path().join("access.log");
    let srv = Server::builder("testapp:app")
        .args(&["--access-logfile", s(&log), "--access-logformat", "%(t)s"])
        .env("TZ", "XYZ-5:30")
        .start();
    let before = unix_now();
    let r = srv.get("/path/t");
    let after = unix_now();
    assert_eq!(r.status, 200, "{}", r.raw_str());
    let line = &wait_lines(&log, 1)[0];
    let (local, offset) = line
        .strip_prefix('[')
        .and_then(|l| l.strip_suffix(']'))
        .and_then(|l| l.split_once(' '))
        .unwrap_or_else(|| panic!("not a CLF time: {line:?}"));
    assert_eq!(offset, "+0530", "{line}");
    // Back to UTC, it is the time of the request.
    let unix = clf_local_secs(local) - (5 * 3600 + 30 * 60);
    assert!(
        before <= unix && unix <= after,
        "{line} is {unix}, the request was at {before}..={after}"
    );
}

#[test]
fn error_log_time_is_local_with_its_offset() {
    // gunicorn's error-log time: `[2026-11-24 19:03:27 +0530]`, local.
    let before = unix_now();
    let srv = Server::builder("testapp:app").env("TZ", "XYZ-5:30").start();
    let after = unix_now();
    let lines = srv.log_lines();
    let line = lines
        .iter()
        .find(|l| l.contains("[INFO] Listening at:"))
        .unwrap_or_else(|| panic!("no Listening line in {lines:?}"));
    let stamp = line
        .strip_prefix('[')
        .and_then(|l| l.split_once(']'))
        .map(|(stamp, _)| stamp)
        .unwrap_or_else(|| panic!("no time at the start of {line:?}"));
    let parts: Vec<&str> = stamp.split(['-', ' ', ':']).collect();
    assert_eq!(parts.len(), 7, "not `YYYY-MM-DD HH:MM:SS +HHMM`: {line}");
    assert_eq!(parts[6], "+0530", "{line}");
    let num = |s: &str| s.parse::<i64>().unwrap_or_else(|_| panic!("{line}"));
    let [year, month, day, hour, minute, second] = [0, 1, 2, 3, 4, 5].map(|i| num(parts[i]));
    let unix =
        civil_secs(year, month, day) + hour * 3600 + minute * 60 + second - (5 * 3600 + 30 * 60);
    assert!(
        before <= unix && unix <= after,
        "{line} is {unix}, the server started at {before}..={after}"
    );
}

#[test]
fn an_unknown_time_zone_is_one_warning_and_utc() {
    let srv = Server::builder("testapp:app")
        .env("TZ", "not/a/zone!!")
        .start();
    assert_eq!(srv.get("/path/x").status, 200);
    let lines = srv.log_lines();
    let warnings: Vec<&String> = lines
        .iter()
        .filter(|l| l.contains("local time zone unknown"))
        .collect();
    assert_eq!(warnings.len(), 1, "{lines:?}");
    assert!(warnings[0].contains("] [WARNING] "), "{}", warnings[0]);
    assert!(
        lines
            .iter()
            .all(|l| !l.starts_with('[') || l.contains(" +0000] ")),
        "{lines:?}"
    );
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// `10/Oct/2000:13:55:36` as seconds since 1970 on the clock it shows.
fn clf_local_secs(t: &str) -> i64 {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let parts: Vec<&str> = t.split(['/', ':']).collect();
    assert_eq!(parts.len(), 6, "{t:?}");
    let num = |s: &str| s.parse::<i64>().unwrap_or_else(|_| panic!("{t:?}"));
    let month = MONTHS.iter().position(|m| *m == parts[1]).expect(t) as i64 + 1;
    let (day, year) = (num(parts[0]), num(parts[2]));
    civil_secs(year, month, day) + num(parts[3]) * 3600 + num(parts[4]) * 60 + num(parts[5])
}

/// Seconds from 1970-01-01 to the start of a civil date (H. Hinnant's
/// days-from-civil algorithm).
fn civil_secs(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * ((month + 9) % 12) + 2) / 5 + day - 1;
    let days = era * 146_097 + yoe * 365 + yoe / 4 - yoe / 100 + doy - 719_468;
    days * 86_400
}

#[test]
fn access_log_default_format_and_timing() {
    let dir = scratch();
    let log = dir.path().join("access.log");
    let srv = Server::builder("testapp:app")
        .args(&["--access-logfile", s(&log)])
        .start();
    let r =
        srv.request(b"GET /slow HTTP/1.0\r\nUser-Agent: curl/8.5.0\r\nReferer: http://r/\r\n\r\n");
    assert_eq!(r.status, 200, "{}", r.raw_str());
    let line = &wait_lines(&log, 1)[0];
    // `127.0.0.1 - - [t] "GET /slow HTTP/1.0" 200 9 "http://r/" "curl/8.5.0"`
    let (before, after) = line.split_once(" [").expect(line);
    assert_eq!(before, "127.0.0.1 - -", "{line}");
    let (time, rest) = after.split_once("] ").expect(line);
    assert_clf_time(&format!("[{time}]"));
    assert_eq!(
        rest, r#""GET /slow HTTP/1.0" 200 9 "http://r/" "curl/8.5.0""#,
        "{line}"
    );

    // The slow route sleeps a second: the timing atoms see it.
    let dir2 = scratch();
    let log2 = dir2.path().join("timing.log");
    let srv2 = Server::builder("testapp:app")
        .args(&[
            "--access-logfile",
            s(&log2),
            "--access-logformat",
            "%(T)s %(D)s %(M)s %(L)s",
        ])
        .start();
    assert_eq!(srv2.get("/slow").status, 200);
    let line = &wait_lines(&log2, 1)[0];
    let f: Vec<&str> = line.split(' ').collect();
    assert_eq!(f.len(), 4, "{line}");
    let (secs, micros, millis) = (uint(f[0]), uint(f[1]), uint(f[2]));
    assert!((1..30).contains(&secs), "{line}");
    assert!(micros >= 1_000_000 && millis >= 1000, "{line}");
    assert_eq!(millis, micros / 1000, "{line}");
    let l: f64 = f[3].parse().expect(line);
    assert!((l - micros as f64 / 1e6).abs() < 1e-5, "{line}");
    drop(srv);
}

#[test]
fn access_log_statuses_bytes_and_order() {
    let dir = scratch();
    let log = dir.path().join("access.log");
    let srv = Server::builder("testapp:app")
        .args(&[
            "--access-logfile",
            s(&log),
            "--access-logformat",
            "%(m)s %(U)s %(s)s %(b)s %(B)s",
        ])
        .start();
    // All pipelined on one connection: the lines come in request order.
    let mut c = srv.connect();
    c.send(
        b"GET /path/abc HTTP/1.1\r\nHost: h\r\n\r\n\
          HEAD /path/abc HTTP/1.1\r\nHost: h\r\n\r\n\
          GET /status/204 HTTP/1.1\r\nHost: h\r\n\r\n\
          GET /error HTTP/1.1\r\nHost: h\r\n\r\n\
          GET /error_first HTTP/1.1\r\nHost: h\r\n\r\n\
          POST /echo HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhello\
          GET /write HTTP/1.1\r\nHost: h\r\n\r\n\
          GET /stream?n=3&size=4 HTTP/1.1\r\nHost: h\r\n\r\n\
          GET /nope HTTP/1.1\r\nHost: h\r\n\r\n\
          GET /error_after HTTP/1.1\r\nHost: h\r\n\r\n",
    );
    let want = [
        "GET /path/abc 200 9 9",
        "HEAD /path/abc 200 - 0",
        "GET /status/204 204 - 0",
        "GET /error 500 22 22",
        "GET /error_first 500 22 22",
        "POST /echo 200 5 5",
        "GET /write 200 18 18",
        "GET /stream 200 12 12",
        "GET /nope 404 10 10",
        // The head went out, then the app raised: the connection is cut
        // after the first item.
        "GET /error_after 200 23 23",
    ];
    let got = wait_lines(&log, want.len());
    assert_eq!(got, want);
    // The client really got those: the 500s are the canned reply.
    let r = c.read_response();
    assert_eq!((r.status, r.body.len()), (200, 9));
    assert_eq!(c.read_head_response().status, 200);
    assert_eq!(c.read_response().status, 204);
    let r = c.read_response();
    assert_eq!((r.status, r.body.len()), (500, 22));
}

#[test]
fn access_log_to_stdout() {
    let mut p = Proc::spawn(
        "testapp:app",
        &[
            "--access-logfile",
            "-",
            "--access-logformat",
            "stdout %(s)s %(U)s",
        ],
        Announce::Stderr,
    );
    let lines = p.stdout_lines();
    assert_eq!(p.request(b"GET /path/x HTTP/1.0\r\n\r\n").status, 200);
    assert_eq!(
        lines
            .recv_timeout(LOG_TIMEOUT)
            .expect("an access line on stdout"),
        "stdout 200 /path/x"
    );
    // ...and not in the error log on stderr.
    assert!(!p.stderr().contains("stdout 200"), "{}", p.stderr());
}

#[test]
fn access_log_off_by_default() {
    let mut p = Proc::spawn("testapp:app", &[], Announce::Stderr);
    let lines = p.stdout_lines();
    assert_eq!(p.request(b"GET /path/x HTTP/1.0\r\n\r\n").status, 200);
    // The next request's response proves the first one's line (if there
    // were one) had its chance to be flushed: the loop idles in between.
    assert_eq!(p.request(b"GET /path/y HTTP/1.0\r\n\r\n").status, 200);
    assert!(lines.try_recv().is_err(), "stdout got a line");
    assert!(!p.stderr().contains("/path/x"), "{}", p.stderr());
}

/// A reader that stops reading must not stall the server: lines beyond the
/// bound are dropped with a warning, and the rest arrive once it reads.
#[test]
fn stalled_stdout_reader_does_not_block_requests() {
    let mut p = Proc::spawn(
        "testapp:app",
        &[
            "--access-logfile",
            "-",
            "--access-logformat",
            "%(U)s %({x-pad}i)s",
        ],
        Announce::Stderr,
    );
    // 4 KiB lines: the pipe (64 KiB) and the 1 MiB bound fill after ~270.
    let pad = "p".repeat(4096);
    let mut c = Client::tcp(p.addr());
    let n = 400;
    let started = Instant::now();
    for i in 0..n {
        c.send(format!("GET /path/{i} HTTP/1.1\r\nHost: h\r\nX-Pad: {pad}\r\n\r\n").as_bytes());
        let r = c.read_response();
        assert_eq!(r.status, 200, "request {i}");
    }
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "{n} requests took {:?}",
        started.elapsed()
    );
    assert!(
        eventually(LOG_TIMEOUT, || p.stderr().contains("dropping lines")),
        "no drop warning:\n{}",
        p.stderr()
    );
    // Now read. Held lines go out whenever the loop wakes (its tick, or a
    // request): send one whenever nothing arrives, until the drop count is
    // reported, which happens once everything held went out.
    let lines = p.stdout_lines();
    let mut held = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        assert!(Instant::now() < deadline, "held lines never drained");
        match lines.recv_timeout(Duration::from_millis(300)) {
            Ok(line) if line == "/path/wake w" => {
                if p.stderr().contains("line(s) were dropped") {
                    break;
                }
            }
            Ok(line) => {
                let (path, rest) = line.split_once(' ').expect("a whole line");
                assert_eq!(rest, pad, "a line was cut");
                let i: usize = path
                    .strip_prefix("/path/")
                    .and_then(|i| i.parse().ok())
                    .unwrap_or_else(|| panic!("unexpected line {path}"));
                held.push(i);
            }
            Err(_) => {
                c.send(b"GET /path/wake HTTP/1.1\r\nHost: h\r\nX-Pad: w\r\n\r\n");
                assert_eq!(c.read_response().status, 200);
            }
        }
    }
    // The oldest lines were kept, in order; the newest were dropped.
    assert_eq!(held.first(), Some(&0));
    assert!(held.windows(2).all(|w| w[1] == w[0] + 1), "{held:?}");
    assert!(held.len() > 200 && held.len() < n, "{} held", held.len());
    let err = p.stderr();
    let dropped: usize = err
        .lines()
        .find_map(|l| {
            l.split("access log: ")
                .nth(1)?
                .split(' ')
                .next()?
                .parse()
                .ok()
        })
        .unwrap_or_else(|| panic!("no drop count in:\n{err}"));
    // Wake-up lines may have been dropped too.
    assert!(
        held.len() + dropped >= n,
        "{} held + {dropped} dropped",
        held.len()
    );
}

// ---------------------------------------------------------------------------
// Error log
// ---------------------------------------------------------------------------

#[test]
fn error_logfile_gets_startup_lines_and_tracebacks() {
    let dir = scratch();
    let log = dir.path().join("error.log");
    std::fs::write(&log, "an old line\n").unwrap();
    let p = Proc::spawn(
        "testapp:app",
        &["--error-logfile", s(&log)],
        Announce::File(&log),
    );
    assert_eq!(p.request(b"GET /error HTTP/1.0\r\n\r\n").status, 500);
    let text = wait_for_text(&log, "boom before start_response");
    let lines: Vec<&str> = text.lines().collect();
    // Appended, not truncated.
    assert_eq!(lines[0], "an old line");
    let prefix = format!("] [{}] [", p.pid());
    for want in [
        "[INFO] rwsgi-lite ",
        "[INFO] Listening at: http://127.0.0.1:",
    ] {
        let line = lines
            .iter()
            .find(|l| l.contains(want))
            .unwrap_or_else(|| panic!("no {want:?} line in:\n{text}"));
        assert!(line.starts_with('[') && line.contains(&prefix), "{line}");
    }
    assert!(
        text.contains("[ERROR] Error handling request GET /error"),
        "{text}"
    );
    // Nothing of that reached stderr.
    let err = p.stderr();
    assert!(
        !err.contains("Listening at") && !err.contains("[ERROR]"),
        "{err}"
    );
}

#[test]
fn wsgi_errors_goes_to_the_error_logfile() {
    let dir = scratch();
    let log = dir.path().join("error.log");
    let p = Proc::spawn(
        "testapp:app",
        &["--error-logfile", s(&log)],
        Announce::File(&log),
    );
    // The app writes one line, then two pieces of another with
    // writelines(), then flushes.
    let r = p.request(b"GET /errors HTTP/1.0\r\n\r\n");
    assert_eq!(r.status, 200, "{}", r.raw_str());
    let text = wait_for_text(&log, "second-line-to-wsgi-errors");
    assert!(
        text.contains("\nmessage-to-wsgi-errors\nsecond-line-to-wsgi-errors\n"),
        "{text}"
    );
    let err = p.stderr();
    assert!(!err.contains("to-wsgi-errors"), "{err}");
}

fn wait_for_text(path: &Path, needle: &str) -> String {
    let mut text = String::new();
    let found = eventually(LOG_TIMEOUT, || {
        text = std::fs::read_to_string(path).unwrap_or_default();
        text.contains(needle)
    });
    assert!(found, "{} lacks {needle:?}:\n{text}", path.display());
    text
}

/// Kills and reaps our own child (by its pid) when the test ends.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn relative_log_paths_ignore_chdir() {
    // Started in `dir` with --chdir tests/apps: the files land in `dir`.
    let dir = scratch();
    let (mut cmd, _) = Server::builder("testapp:app")
        .args(&["--error-logfile", "err.log", "--access-logfile", "acc.log"])
        .command();
    cmd.current_dir(dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let _child = KillOnDrop(cmd.spawn().expect("spawn"));
    let err_log = dir.path().join("err.log");
    let text = wait_for_text(&err_log, "Listening at:");
    let addr = text
        .lines()
        .find_map(parse_listening)
        .and_then(|l| match l {
            Listen::Tcp(a) => Some(a),
            Listen::Unix(_) => None,
        })
        .expect("address");
    let mut c = Client::tcp(addr);
    c.send(b"GET /path/rel HTTP/1.0\r\n\r\n");
    assert_eq!(c.read_response().status, 200);
    wait_for_text(&dir.path().join("acc.log"), "GET /path/rel");
    assert!(!apps_dir().join("acc.log").exists());
}

#[test]
fn unopenable_log_files_exit_1_with_one_line() {
    let dir = scratch();
    let missing = dir.path().join("no/such/dir/x.log");
    let apps = apps_dir();
    for opt in ["--error-logfile", "--access-logfile"] {
        let o = run_to_exit(&[
            opt,
            s(&missing),
            "-b",
            "127.0.0.1:0",
            "--chdir",
            s(&apps),
            "testapp:app",
        ]);
        assert_eq!(o.code(), Some(1), "{opt}: {}", o.describe());
        let lines = o.stderr_lines();
        assert_eq!(lines.len(), 1, "{opt}: {}", o.describe());
        assert!(
            lines[0].starts_with(&format!("rwsgi-lite: {opt} {}", s(&missing))),
            "{}",
            lines[0]
        );
    }
    // A directory is not a log file either.
    let o = run_to_exit(&[
        "--access-logfile",
        s(dir.path()),
        "-b",
        "127.0.0.1:0",
        "testapp:app",
    ]);
    assert_eq!(o.code(), Some(1), "{}", o.describe());
}

#[test]
fn bad_log_and_proxy_options_exit_2() {
    for args in [
        &["--access-logformat", "%(h)s %(t", "testapp:app"][..],
        &["--access-logformat", "%(h)d", "testapp:app"],
        &["--access-logfile", "", "testapp:app"],
        &["--error-logfile", "", "testapp:app"],
        &["--forwarded-allow-ips", "10.0.0.1,nope", "testapp:app"],
        &["--forwarded-allow-ips", "10.0.0.0/99", "testapp:app"],
    ] {
        let o = run_to_exit(args);
        assert_eq!(o.code(), Some(2), "{args:?}: {}", o.describe());
        assert_eq!(o.stderr_lines().len(), 1, "{args:?}: {}", o.describe());
    }
}

// ---------------------------------------------------------------------------
// Forwarded headers
// ---------------------------------------------------------------------------

fn whoami(srv: &Server, headers: &str) -> String {
    let r = srv.request(
        format!("GET /w HTTP/1.1\r\nHost: h\r\n{headers}Connection: close\r\n\r\n").as_bytes(),
    );
    assert_eq!(r.status, 200, "{}", r.raw_str());
    r.body_str()
}

#[test]
fn forwarded_from_localhost_by_default() {
    let dir = scratch();
    let log = dir.path().join("access.log");
    let srv = Server::builder("whoami:app")
        .args(&["--access-logfile", s(&log), "--access-logformat", "%(h)s"])
        .start();
    assert_eq!(whoami(&srv, ""), "127.0.0.1 http -");
    assert_eq!(
        whoami(&srv, "X-Forwarded-For: 1.2.3.4\r\n"),
        "1.2.3.4 http 1.2.3.4"
    );
    // The client's own (forged) entry is left of what the proxy appended.
    assert_eq!(
        whoami(&srv, "X-Forwarded-For: 6.6.6.6, 1.2.3.4\r\n"),
        "1.2.3.4 http 6.6.6.6, 1.2.3.4"
    );
    // Two field lines are one list.
    assert_eq!(
        whoami(
            &srv,
            "X-Forwarded-For: 6.6.6.6\r\nX-Forwarded-For: 2001:db8::5\r\n"
        ),
        "2001:db8::5 http 6.6.6.6,2001:db8::5"
    );
    assert_eq!(
        whoami(&srv, "X-Forwarded-Proto: https\r\n"),
        "127.0.0.1 https -"
    );
    assert_eq!(
        whoami(
            &srv,
            "X-Forwarded-For: 1.2.3.4\r\nX-Forwarded-Proto: http, https\r\n"
        ),
        "1.2.3.4 https 1.2.3.4"
    );
    // Not an address: never used.
    assert_eq!(
        whoami(
            &srv,
            "X-Forwarded-For: unknown\r\nX-Forwarded-Proto: gopher\r\n"
        ),
        "127.0.0.1 http unknown"
    );
    // An underscore spelling is not the header (and is dropped).
    assert_eq!(
        whoami(&srv, "X_Forwarded_For: 1.2.3.4\r\n"),
        "127.0.0.1 http -"
    );
    let lines = wait_lines(&log, 8);
    assert_eq!(
        lines,
        [
            "127.0.0.1",
            "1.2.3.4",
            "1.2.3.4",
            "2001:db8::5",
            "127.0.0.1",
            "1.2.3.4",
            "127.0.0.1",
            "127.0.0.1"
        ]
    );
}

#[test]
fn forwarded_from_untrusted_peer_is_ignored() {
    let srv = Server::builder("whoami:app")
        .args(&["--forwarded-allow-ips", "10.0.0.1"])
        .start();
    assert_eq!(
        whoami(
            &srv,
            "X-Forwarded-For: 1.2.3.4\r\nX-Forwarded-Proto: https\r\n"
        ),
        "127.0.0.1 http 1.2.3.4"
    );
    let srv = Server::builder("whoami:app")
        .args(&["--forwarded-allow-ips", ""])
        .start();
    assert_eq!(
        whoami(&srv, "X-Forwarded-For: 1.2.3.4\r\n"),
        "127.0.0.1 http 1.2.3.4"
    );
}

#[test]
fn forwarded_allow_list_with_networks_and_star() {
    // One hop (the default): the entry our peer appended, even when it is
    // itself a trusted address.
    let srv = Server::builder("whoami:app")
        .args(&["--forwarded-allow-ips", "10.0.0.0/8, 127.0.0.0/8"])
        .start();
    assert_eq!(
        whoami(&srv, "X-Forwarded-For: 6.6.6.6, 1.2.3.4, 10.1.1.1\r\n"),
        "10.1.1.1 http 6.6.6.6, 1.2.3.4, 10.1.1.1"
    );
    // With --forwarded-hops, 10.1.1.1 is another trusted proxy: skipped.
    let srv = Server::builder("whoami:app")
        .args(&[
            "--forwarded-allow-ips",
            "10.0.0.0/8, 127.0.0.0/8",
            "--forwarded-hops",
            "3",
        ])
        .start();
    assert_eq!(
        whoami(&srv, "X-Forwarded-For: 6.6.6.6, 1.2.3.4, 10.1.1.1\r\n"),
        "1.2.3.4 http 6.6.6.6, 1.2.3.4, 10.1.1.1"
    );
    // `*` trusts every peer; one hop still takes only the last entry.
    let srv = Server::builder("whoami:app")
        .args(&["--forwarded-allow-ips", "*"])
        .start();
    assert_eq!(
        whoami(&srv, "X-Forwarded-For: 6.6.6.6, 1.2.3.4\r\n"),
        "1.2.3.4 http 6.6.6.6, 1.2.3.4"
    );
    // Every hop trusted and walked: the leftmost is the client.
    let srv = Server::builder("whoami:app")
        .args(&["--forwarded-allow-ips", "*", "--forwarded-hops", "2"])
        .start();
    assert_eq!(
        whoami(&srv, "X-Forwarded-For: 6.6.6.6, 1.2.3.4\r\n"),
        "6.6.6.6 http 6.6.6.6, 1.2.3.4"
    );
}

/// The case issue 14 is about: a client whose own address is inside the
/// trusted range (here 127.0.0.5 behind a proxy on 127.0.0.1, both in
/// 127.0.0.0/8) forges an entry to the left of its own.
#[test]
fn forwarded_trusted_client_cannot_forge_by_default() {
    let srv = Server::builder("whoami:app")
        .args(&["--forwarded-allow-ips", "127.0.0.0/8"])
        .start();
    assert_eq!(
        whoami(&srv, "X-Forwarded-For: 6.6.6.6, 127.0.0.5\r\n"),
        "127.0.0.5 http 6.6.6.6, 127.0.0.5"
    );
    // Forged on a field line of its own, too.
    assert_eq!(
        whoami(
            &srv,
            "X-Forwarded-For: 6.6.6.6\r\nX-Forwarded-For: 127.0.0.5\r\n"
        ),
        "127.0.0.5 http 6.6.6.6,127.0.0.5"
    );
    // The proto is the last hop's as well.
    assert_eq!(
        whoami(
            &srv,
            "X-Forwarded-For: 127.0.0.5\r\nX-Forwarded-Proto: https, http\r\n"
        ),
        "127.0.0.5 http 127.0.0.5"
    );
}

/// `--forwarded-hops 2`: a chain of two trusted proxies (the outer one at
/// 127.0.0.9 appended the client, the inner one our peer appended
/// 127.0.0.9) is walked; an untrusted entry still ends the walk, and the
/// count bounds it.
#[test]
fn forwarded_hops_walk_a_proxy_chain() {
    let srv = Server::builder("whoami:app")
        .args(&[
            "--forwarded-allow-ips",
            "127.0.0.0/8",
            "--forwarded-hops",
            "2",
        ])
        .start();
    assert_eq!(
        whoami(&srv, "X-Forwarded-For: 6.6.6.6, 1.2.3.4, 127.0.0.9\r\n"),
        "1.2.3.4 http 6.6.6.6, 1.2.3.4, 127.0.0.9"
    );
    // A client that skipped the outer proxy: the walk stops at it.
    assert_eq!(
        whoami(&srv, "X-Forwarded-For: 6.6.6.6, 1.2.3.4\r\n"),
        "1.2.3.4 http 6.6.6.6, 1.2.3.4"
    );
    // Two hops and no further, even through trusted addresses.
    assert_eq!(
        whoami(&srv, "X-Forwarded-For: 6.6.6.6, 127.0.0.8, 127.0.0.9\r\n"),
        "127.0.0.8 http 6.6.6.6, 127.0.0.8, 127.0.0.9"
    );
    // The chain's proto is still read from the last hop.
    assert_eq!(
        whoami(
            &srv,
            "X-Forwarded-For: 1.2.3.4, 127.0.0.9\r\nX-Forwarded-Proto: http, https\r\n"
        ),
        "1.2.3.4 https 1.2.3.4, 127.0.0.9"
    );
}

#[test]
fn forwarded_over_unix_socket_is_trusted() {
    let dir = scratch();
    let sock = dir.path().join("s.sock");
    let log = dir.path().join("access.log");
    let bind = format!("unix:{}", s(&sock));
    // Even with no TCP peer trusted.
    let _srv = Server::builder("whoami:app")
        .bind(&bind)
        .args(&[
            "--forwarded-allow-ips",
            "",
            "--access-logfile",
            s(&log),
            "--access-logformat",
            "%(h)s",
        ])
        .start();
    let ask = |headers: &str| {
        let mut c = Client::unix(&sock);
        c.send(
            format!("GET / HTTP/1.1\r\nHost: h\r\n{headers}Connection: close\r\n\r\n").as_bytes(),
        );
        c.read_response().body_str()
    };
    assert_eq!(ask(""), "'' http -");
    assert_eq!(
        ask("X-Forwarded-For: 1.2.3.4\r\nX-Forwarded-Proto: https\r\n"),
        "1.2.3.4 https 1.2.3.4"
    );
    assert_eq!(wait_lines(&log, 2), ["-", "1.2.3.4"]);
}

#[test]
fn app_failure_line_uses_forwarded_address() {
    let dir = scratch();
    let log = dir.path().join("access.log");
    let srv = Server::builder("whoami:app")
        .args(&[
            "--access-logfile",
            s(&log),
            "--access-logformat",
            "%(h)s %(s)s %(b)s",
        ])
        .start();
    let r = srv.request(
        b"GET /fail HTTP/1.1\r\nHost: h\r\nX-Forwarded-For: 9.8.7.6\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(r.status, 500);
    assert_eq!(wait_lines(&log, 1), ["9.8.7.6 500 22"]);
}
