//! End-to-end tests of the master and its workers: -w, --max-requests,
//! --timeout, HUP and --reload, --preload, --reuse-port, --pid, --umask,
//! unix: / fd://N / systemd sockets, and the signals the master handles.
//!
//! Process checks read /proc: a worker is a live process whose parent is
//! the master; a zombie counts as gone. Every process a test starts is
//! killed by pid when its guard drops: the master is stopped first (so it
//! forks no replacement), then its workers are killed, then the master.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a panic is a test's failure report
#![cfg(feature = "python")]

mod common;

use common::*;
use std::net::{SocketAddr, TcpStream};
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::Duration;

/// Deadline for anything the master or a worker has to do.
const WAIT: Duration = Duration::from_secs(20);

// ---------------------------------------------------------------------------
// /proc
// ---------------------------------------------------------------------------

/// Fields of /proc/PID/stat after the command name: state is [0], ppid
/// [1], starttime [19]. None once the process is gone.
fn stat_fields(pid: i32) -> Option<Vec<String>> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = s.get(s.rfind(')')? + 2..)?;
    Some(rest.split_whitespace().map(str::to_string).collect())
}

fn ppid(pid: i32) -> Option<i32> {
    stat_fields(pid)?.get(1)?.parse().ok()
}

fn start_time(pid: i32) -> Option<u64> {
    stat_fields(pid)?.get(19)?.parse().ok()
}

/// Running (not a zombie, not gone).
fn alive(pid: i32) -> bool {
    stat_fields(pid).is_some_and(|f| f[0] != "Z" && f[0] != "X")
}

/// Live processes whose parent is `pid`, sorted.
fn children(pid: i32) -> Vec<i32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut out: Vec<i32> = dir
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .filter(|&p| alive(p) && ppid(p) == Some(pid))
        .collect();
    out.sort_unstable();
    out
}

/// A process running the server binary (so one this test binary started).
fn runs_server_binary(pid: i32) -> bool {
    std::fs::read_link(format!("/proc/{pid}/exe")).is_ok_and(|exe| exe == Path::new(BIN))
}

fn sigkill(pid: i32) {
    // SAFETY: kill(2) has no memory-safety preconditions; callers pass
    // only pids of processes this test started (checked via /proc).
    unsafe { libc::kill(pid, libc::SIGKILL) };
}

/// "Booting worker with pid: N" lines of a log, in order.
fn booted_in(log: &str) -> Vec<i32> {
    log.lines()
        .filter_map(|l| l.split("Booting worker with pid: ").nth(1))
        .filter_map(|n| n.trim().parse().ok())
        .collect()
}

// ---------------------------------------------------------------------------
// A master under test
// ---------------------------------------------------------------------------

/// A running master (or single process) and the cleanup of everything it
/// forked.
struct Master {
    s: Server,
    /// The master was reaped: its pid may belong to someone else now.
    reaped: bool,
}

impl std::ops::Deref for Master {
    type Target = Server;
    fn deref(&self) -> &Server {
        &self.s
    }
}

impl Master {
    fn start(b: ServerBuilder) -> Master {
        Master::from(b.start())
    }

    fn from(s: Server) -> Master {
        Master { s, reaped: false }
    }

    fn booted(&self) -> Vec<i32> {
        booted_in(&self.log())
    }

    /// Waits for the n-th "Booting worker" line; returns every booted pid.
    fn wait_booted(&self, n: usize) -> Vec<i32> {
        let ok = eventually(WAIT, || self.booted().len() >= n);
        assert!(ok, "fewer than {n} workers booted\nlog:\n{}", self.log());
        self.booted()
    }

    /// Waits until the master has exactly `n` live workers; returns them.
    fn wait_children(&self, n: usize, what: &str) -> Vec<i32> {
        let ok = eventually(WAIT, || children(self.pid()).len() == n);
        assert!(
            ok,
            "{what}: expected {n} workers, have {:?}\nlog:\n{}",
            children(self.pid()),
            self.log()
        );
        children(self.pid())
    }

    /// Waits for a log line that is exactly `line` (what the app prints).
    fn wait_line(&self, line: &str) {
        let ok = eventually(WAIT, || self.log().lines().any(|l| l == line));
        assert!(
            ok,
            "no line {line:?} in the log within {WAIT:?}:\n{}",
            self.log()
        );
    }

    fn wait_log(&self, needle: &str) {
        assert!(
            self.wait_for_log(needle, WAIT),
            "no {needle:?} in the log within {WAIT:?}:\n{}",
            self.log()
        );
    }

    /// Waits for the master to exit and reaps it. Every worker it booted
    /// must be gone by then (they are checked before the master is reaped:
    /// a survivor would hold the log pipe open).
    fn wait_exit(&mut self, what: &str) -> ExitStatus {
        let pid = self.pid();
        let started = start_time(pid);
        if !eventually(WAIT, || !alive(pid)) {
            panic!(
                "{what}: master still running after {WAIT:?}\nlog:\n{}",
                self.log()
            );
        }
        let orphans: Vec<i32> = self
            .booted()
            .into_iter()
            .filter(|&p| alive(p) && runs_server_binary(p) && start_time(p) >= started)
            .collect();
        for &p in &orphans {
            sigkill(p);
        }
        assert!(
            orphans.is_empty(),
            "{what}: workers {orphans:?} outlived the master\nlog:\n{}",
            self.log()
        );
        let status = self.s.wait_timeout(WAIT);
        self.reaped = true;
        status.unwrap_or_else(|| panic!("{what}: master not reaped"))
    }

    fn assert_exit_0(&mut self, what: &str) {
        let st = self.wait_exit(what);
        assert_eq!(st.code(), Some(0), "{what}: {st}\nlog:\n{}", self.log());
    }
}

impl Drop for Master {
    fn drop(&mut self) {
        if self.reaped {
            return;
        }
        let pid = self.pid();
        let started = start_time(pid);
        // Stopped, the master forks no replacement for the workers killed
        // next (and cannot reap them, so they stay its children).
        // SAFETY: kill(2) on our own child, not yet reaped.
        unsafe { libc::kill(pid, libc::SIGSTOP) };
        for c in children(pid) {
            sigkill(c);
        }
        // Workers of a master that already died.
        for p in self.booted() {
            if alive(p) && runs_server_binary(p) && start_time(p) >= started {
                sigkill(p);
            }
        }
        // Server's own Drop kills and reaps the master.
    }
}

// ---------------------------------------------------------------------------
// Clients
// ---------------------------------------------------------------------------

fn connect(addr: &Listen) -> Result<Client, String> {
    let stream = match addr {
        Listen::Tcp(a) => TcpStream::connect_timeout(a, IO_TIMEOUT).map(Stream::Tcp),
        Listen::Unix(p) => UnixStream::connect(p).map(Stream::Unix),
    };
    stream
        .map(Client::from_stream)
        .map_err(|e| format!("connect to {addr:?}: {e}"))
}

/// `GET path` on a fresh connection; any failure is an Err.
fn try_get(addr: &Listen, path: &str) -> Result<Response, String> {
    let mut c = connect(addr)?;
    c.try_send(format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes())
        .map_err(|e| format!("send: {e}"))?;
    c.try_read_response(false).map_err(|e| e.to_string())
}

/// The body of a 200 answer to `GET path`.
fn get_200(addr: &Listen, path: &str) -> String {
    match try_get(addr, path) {
        Ok(r) if r.status == 200 => r.body_str(),
        Ok(r) => panic!("GET {path}: {}", r.raw_str()),
        Err(e) => panic!("GET {path}: {e}"),
    }
}

/// The pid of the process that answers a fresh connection.
fn serving_pid(addr: &Listen) -> i32 {
    let body = get_200(addr, "/pid");
    body.parse()
        .unwrap_or_else(|_| panic!("/pid answered {body:?}"))
}

/// Polls `GET path` until its answer satisfies `f`; returns that body.
fn wait_answer(m: &Master, addr: &Listen, path: &str, f: impl Fn(u16, &str) -> bool) -> String {
    let mut last = String::new();
    let ok = eventually(WAIT, || match try_get(addr, path) {
        Ok(r) => {
            last = format!("{} {}", r.status, r.body_str());
            f(r.status, &r.body_str())
        }
        Err(e) => {
            last = e;
            false
        }
    });
    assert!(ok, "GET {path}: last answer {last:?}\nlog:\n{}", m.log());
    last.split_once(' ')
        .map(|(_, b)| b.to_string())
        .unwrap_or_default()
}

/// A client sending `GET path` on fresh connections, one after another,
/// until stopped: what a load balancer sees during restarts.
struct Load {
    stop: Arc<AtomicBool>,
    handle: JoinHandle<Vec<Result<String, String>>>,
}

impl Load {
    fn start(addr: Listen, path: &'static str) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let handle = thread::spawn(move || {
            let mut results = Vec::new();
            while !flag.load(Ordering::Relaxed) {
                results.push(match try_get(&addr, path) {
                    Ok(r) if r.status == 200 => Ok(r.body_str()),
                    Ok(r) => Err(r.raw_str()),
                    Err(e) => Err(e),
                });
                thread::sleep(Duration::from_millis(5));
            }
            results
        });
        Load { stop, handle }
    }

    fn finish(self) -> Vec<Result<String, String>> {
        self.stop.store(true, Ordering::Relaxed);
        self.handle.join().expect("load thread panicked")
    }
}

fn failures(results: &[Result<String, String>]) -> Vec<&String> {
    results.iter().filter_map(|r| r.as_ref().err()).collect()
}

fn unix_mode(path: &Path) -> u32 {
    let meta =
        std::fs::symlink_metadata(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert!(
        meta.file_type().is_socket(),
        "{} is not a socket",
        path.display()
    );
    meta.permissions().mode() & 0o777
}

fn apps() -> String {
    apps_dir().to_string_lossy().into_owned()
}

// ---------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------

/// -w 3: three workers, children of the master, sharing the requests; USR1
/// is forwarded harmlessly; a SIGKILLed worker is replaced while a client
/// keeps being served; QUIT stops everything.
#[test]
fn workers_share_the_load_and_a_killed_one_is_replaced() {
    let mut m = Master::start(Server::builder("workers:app").args(&["-w", "3"]));
    let addr = m.addrs[0].clone();
    let workers = m.wait_booted(3);
    assert_eq!(workers.len(), 3, "log:\n{}", m.log());
    for &w in &workers {
        assert_eq!(
            ppid(w),
            Some(m.pid()),
            "worker {w} is not the master's child"
        );
    }

    // Right after the boot lines: the workers may still be importing the
    // app, which must not kill them.
    m.signal(libc::SIGUSR1);
    m.wait_log("SIGUSR1: reopening log files");
    for w in &workers {
        // The app's own USR1 handler logs it (see workers.py).
        m.wait_line(&format!("usr1 {w}"));
    }

    // Concurrent clients and a request that keeps its worker busy for a
    // moment: the others must accept meanwhile.
    let clients: Vec<_> = (0..4)
        .map(|_| {
            let addr = addr.clone();
            thread::spawn(move || {
                (0..50)
                    .map(|_| get_200(&addr, "/pid?sleep=0.01").parse().unwrap_or(0))
                    .collect::<Vec<i32>>()
            })
        })
        .collect();
    let mut seen: Vec<i32> = clients
        .into_iter()
        .flat_map(|t| t.join().expect("client panicked"))
        .collect();
    seen.sort_unstable();
    seen.dedup();
    assert!(
        seen.iter().all(|p| workers.contains(p)),
        "answered by {seen:?}, workers are {workers:?}\nlog:\n{}",
        m.log()
    );
    assert!(seen.len() > 1, "only {seen:?} answered 200 requests");
    // USR1 killed nobody.
    assert_eq!(children(m.pid()), workers, "log:\n{}", m.log());

    let load = Load::start(addr.clone(), "/pid");
    let victim = workers[0];
    sigkill(victim);
    m.wait_log(&format!("worker {victim} was killed by SIGKILL"));
    let all = m.wait_booted(4);
    let replacement = all[3];
    assert_eq!(ppid(replacement), Some(m.pid()));
    let ok = eventually(WAIT, || {
        load.handle.is_finished() || serving_pid(&addr) == replacement
    });
    let results = load.finish();
    assert!(
        ok,
        "replacement {replacement} never answered\nlog:\n{}",
        m.log()
    );
    // One request at a time: at most the one the victim was serving fails.
    let failed = failures(&results);
    assert!(
        failed.len() <= 1,
        "{} of {} requests failed: {failed:?}",
        failed.len(),
        results.len()
    );
    assert!(!alive(victim) || ppid(victim) != Some(m.pid()));

    m.signal(libc::SIGQUIT);
    m.assert_exit_0("SIGQUIT");
}

/// TTIN adds a worker, TTOU removes the youngest; INT stops at once even
/// with a request stuck in the app.
#[test]
fn ttin_ttou_resize_and_sigint_is_a_quick_stop() {
    let mut m = Master::start(Server::builder("workers:app").args(&["-w", "2"]));
    let addr = m.addrs[0].clone();
    let first = m.wait_children(2, "start");

    m.signal(libc::SIGTTIN);
    let three = m.wait_children(3, "after TTIN");
    let added: Vec<i32> = three
        .iter()
        .copied()
        .filter(|p| !first.contains(p))
        .collect();
    assert_eq!(added.len(), 1, "{first:?} -> {three:?}");

    m.signal(libc::SIGTTOU);
    let two = m.wait_children(2, "after TTOU");
    assert_eq!(
        two, first,
        "TTOU did not retire the youngest worker {added:?}"
    );

    m.signal(libc::SIGTTOU);
    let one = m.wait_children(1, "after a second TTOU");
    assert_eq!(serving_pid(&addr), one[0]);

    // A quick stop does not wait for the app.
    let mut c = connect(&addr).unwrap();
    c.send(b"GET /sleep?s=60 HTTP/1.1\r\nHost: x\r\n\r\n");
    m.wait_line(&format!("sleep-start {}", one[0]));
    m.signal(libc::SIGINT);
    m.assert_exit_0("SIGINT with a request stuck in the app");
}

/// Without --preload the workers import the app: an import error stops the
/// master with status 1 and the traceback, leaving no process, pid file or
/// socket file behind.
#[test]
fn app_import_failure_in_the_workers_exits_1() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("f.sock");
    let pidfile = dir.path().join("f.pid");
    let o = run_to_exit(&[
        "-w",
        "2",
        "-b",
        &format!("unix:{}", sock.display()),
        "--pid",
        pidfile.to_str().unwrap(),
        "--chdir",
        &apps(),
        "raising:app",
    ]);
    assert_eq!(o.code(), Some(1), "{}", o.describe());
    assert!(
        o.stderr.contains("Traceback") && o.stderr.contains("RuntimeError: boom at import time"),
        "{}",
        o.describe()
    );
    let booted = booted_in(&o.stderr);
    assert!(!booted.is_empty(), "{}", o.describe());
    for w in booted {
        assert!(!alive(w) || !runs_server_binary(w), "worker {w} survived");
    }
    assert!(!sock.exists(), "socket file left behind");
    assert!(!pidfile.exists(), "pid file left behind");
}

/// --max-requests recycles the worker without failing a request, and the
/// unix socket file (mode from --umask) survives the recycling.
#[test]
fn max_requests_recycles_the_worker_and_keeps_the_unix_socket() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("w.sock");
    let mut m = Master::start(
        Server::builder("workers:app")
            .bind(&format!("unix:{}", sock.display()))
            .args(&[
                "-w",
                "1",
                "--max-requests",
                "10",
                "--max-requests-jitter",
                "0",
                "--umask",
                "007",
            ]),
    );
    let addr = m.addrs[0].clone();
    assert_eq!(addr, Listen::Unix(sock.clone()));
    assert_eq!(unix_mode(&sock), 0o770);
    let mut served: Vec<(i32, u64)> = Vec::new();
    for i in 0..25 {
        let body = get_200(&addr, "/count");
        let (pid, n) = body
            .split_once(' ')
            .and_then(|(p, n)| Some((p.parse().ok()?, n.parse().ok()?)))
            .unwrap_or_else(|| panic!("request {i}: /count answered {body:?}"));
        served.push((pid, n));
    }
    for &(pid, n) in &served {
        assert!(
            n <= 10,
            "worker {pid} served {n} requests: {served:?}\nlog:\n{}",
            m.log()
        );
    }
    let mut pids: Vec<i32> = served.iter().map(|&(p, _)| p).collect();
    pids.dedup();
    assert!(pids.len() >= 3, "25 requests, budget 10: {served:?}");
    assert_ne!(served[0].0, served[10].0, "{served:?}");
    assert!(
        eventually(WAIT, || !alive(pids[0])),
        "first worker still running"
    );
    m.wait_log("request budget served");
    assert_eq!(unix_mode(&sock), 0o770, "socket file lost in a recycle");

    m.signal(libc::SIGTERM);
    m.assert_exit_0("SIGTERM");
    assert!(!sock.exists(), "socket file left behind");
}

/// TERM lets the in-flight request finish; --pid holds the master's pid
/// and refuses a second server; a stale unix socket is replaced with one
/// of the --umask mode; both files go at exit.
#[test]
fn sigterm_finishes_the_request_in_flight_and_removes_pid_and_socket() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("s.sock");
    let pidfile = dir.path().join("app.pid");
    // A crashed server's socket file.
    drop(std::os::unix::net::UnixListener::bind(&sock).unwrap());
    assert!(sock.exists());
    let mut m = Master::start(
        Server::builder("workers:app")
            .bind(&format!("unix:{}", sock.display()))
            .bind("127.0.0.1:0")
            .args(&["-w", "2", "--umask", "007", "--pid"])
            .args(&[pidfile.to_str().unwrap()]),
    );
    let unix = Listen::Unix(sock.clone());
    let workers = m.wait_children(2, "start");
    assert_eq!(unix_mode(&sock), 0o770);
    assert!(workers.contains(&serving_pid(&unix)));
    assert!(workers.contains(&serving_pid(&m.addrs[1])));
    assert_eq!(
        std::fs::read_to_string(&pidfile).unwrap().trim(),
        m.pid().to_string()
    );

    let o = run_to_exit(&[
        "-b",
        "127.0.0.1:0",
        "--pid",
        pidfile.to_str().unwrap(),
        "--chdir",
        &apps(),
        "workers:app",
    ]);
    assert_eq!(o.code(), Some(1), "{}", o.describe());
    let lines = o.stderr_lines();
    assert!(
        lines.len() == 1 && lines[0].contains("--pid") && lines[0].contains(&m.pid().to_string()),
        "{}",
        o.describe()
    );
    assert_eq!(
        std::fs::read_to_string(&pidfile).unwrap().trim(),
        m.pid().to_string(),
        "the refused server touched the pid file"
    );

    let mut c = Client::unix(&sock);
    c.send(b"GET /sleep?s=1 HTTP/1.1\r\nHost: x\r\n\r\n");
    m.wait_log("sleep-start");
    m.signal(libc::SIGTERM);
    let r = c
        .try_read_response(false)
        .unwrap_or_else(|e| panic!("in-flight request lost: {e}\nlog:\n{}", m.log()));
    assert_eq!(r.status, 200, "{}", r.raw_str());
    assert!(r.body_str().starts_with("slept "), "{}", r.raw_str());
    m.assert_exit_0("SIGTERM with a request in flight");
    for w in workers {
        assert!(!alive(w), "worker {w} still running");
    }
    assert!(!pidfile.exists(), "pid file left behind");
    assert!(!sock.exists(), "socket file left behind");
}

/// Once TERM has reached the master and every worker has begun to drain,
/// nobody listens any more: a new client is refused (and can try another
/// server) instead of being queued by the kernel on a socket that some
/// process still holds open, then reset when it exits. A streamed response
/// keeps one worker, and so the master, running meanwhile.
#[test]
fn sigterm_closes_every_listening_socket_while_the_workers_drain() {
    let mut m = Master::start(Server::builder("testapp:app").args(&["-w", "2"]));
    let addr = m.addr();
    m.wait_children(2, "start");
    let mut c = connect(&m.addrs[0]).unwrap();
    c.send(b"GET /drip?n=100 HTTP/1.1\r\nHost: x\r\n\r\n");
    m.wait_log("drip-start");
    m.signal(libc::SIGTERM);
    // A worker still importing the app when TERM came just exits.
    let draining = eventually(WAIT, || {
        let log = m.log();
        m.booted().into_iter().all(|w| {
            let line = format!("[{w}] [INFO] shutting down:");
            log.contains(&line) || !alive(w)
        })
    });
    assert!(draining, "workers did not drain:\n{}", m.log());
    assert!(alive(m.pid()), "master gone early:\n{}", m.log());
    match TcpStream::connect_timeout(&addr, IO_TIMEOUT) {
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {}
        other => panic!(
            "connect while the workers drain: {other:?}, not refused\nlog:\n{}",
            m.log()
        ),
    }
    assert!(alive(m.pid()), "master gone before the check:\n{}", m.log());
    // Gone, the client ends the streamed response and so the drain.
    drop(c);
    m.assert_exit_0("SIGTERM while streaming");
}

/// -w 1 without master-only flags is one process that serves itself.
#[test]
fn one_worker_without_master_flags_is_a_single_process() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("one.sock");
    let mut m = Master::start(
        Server::builder("workers:app")
            .bind("127.0.0.1:0")
            .bind(&format!("unix:{}", sock.display()))
            .args(&["-w", "1", "--umask", "007"]),
    );
    assert_eq!(serving_pid(&m.addrs[0]), m.pid());
    assert_eq!(serving_pid(&m.addrs[1]), m.pid());
    assert_eq!(unix_mode(&sock), 0o770);
    assert!(children(m.pid()).is_empty());
    assert!(!m.log().contains("Booting worker"), "log:\n{}", m.log());
    m.signal(libc::SIGTERM);
    m.assert_exit_0("SIGTERM");
    assert!(!sock.exists(), "socket file left behind");
}

/// --timeout: a worker stuck in the app is killed and replaced, and its
/// client's connection is closed.
#[test]
fn worker_timeout_kills_a_hung_worker_and_replaces_it() {
    // --max-requests only to get a master with a single worker.
    let mut m = Master::start(Server::builder("workers:app").args(&[
        "-w",
        "1",
        "--max-requests",
        "1000",
        "--timeout",
        "2",
    ]));
    let addr = m.addrs[0].clone();
    let hung = m.wait_booted(1)[0];
    let mut c = connect(&addr).unwrap();
    c.send(b"GET /sleep?s=60 HTTP/1.1\r\nHost: x\r\n\r\n");
    m.wait_line(&format!("sleep-start {hung}"));
    m.wait_log(&format!("WORKER TIMEOUT (pid:{hung})"));
    c.set_read_timeout(WAIT);
    let rest = c.read_to_eof();
    assert!(rest.is_empty(), "hung request answered: {}", show(&rest));
    let replacement = m.wait_booted(2)[1];
    assert_eq!(serving_pid(&addr), replacement);
    assert!(!alive(hung));
    m.signal(libc::SIGTERM);
    m.assert_exit_0("SIGTERM");
}

/// An app in its own directory, whose answer is `TEXT PID`.
fn write_app(dir: &Path, text: &str) {
    let code = format!(
        "import os\n\
         TEXT = {text:?}\n\
         def app(environ, start_response):\n    \
             body = ('%s %d' % (TEXT, os.getpid())).encode()\n    \
             start_response('200 OK', [('Content-Type', 'text/plain'),\n        \
                 ('Content-Length', str(len(body)))])\n    \
             return [body]\n"
    );
    // Written aside and renamed, as editors do: a worker never imports a
    // half-written file.
    let tmp = dir.join("app.py.tmp");
    std::fs::write(&tmp, code).unwrap();
    std::fs::rename(&tmp, dir.join("app.py")).unwrap();
}

fn write_broken_app(dir: &Path) {
    let tmp = dir.join("app.py.tmp");
    std::fs::write(&tmp, "def app(:\n").unwrap();
    std::fs::rename(&tmp, dir.join("app.py")).unwrap();
}

fn app_in(dir: &Path) -> ServerBuilder {
    Server::builder("app:app")
        .no_chdir()
        .args(&["--chdir", dir.to_str().unwrap()])
}

/// HUP: new workers with the new code take over while a client keeps
/// being served; a broken file leaves the old workers serving; fixing it
/// and HUP again recovers.
#[test]
fn hup_reloads_the_code_without_failing_a_request() {
    let dir = tempfile::tempdir().unwrap();
    write_app(dir.path(), "first");
    let mut m = Master::start(app_in(dir.path()).args(&["-w", "2"]));
    let addr = m.addrs[0].clone();
    let gen1 = m.wait_children(2, "start");
    wait_answer(&m, &addr, "/", |st, b| st == 200 && b.starts_with("first "));

    let load = Load::start(addr.clone(), "/");
    write_app(dir.path(), "second version");
    m.signal(libc::SIGHUP);
    let ok = eventually(WAIT, || {
        let now = children(m.pid());
        now.len() == 2 && gen1.iter().all(|p| !now.contains(p))
    });
    let results = load.finish();
    assert!(ok, "old workers {gen1:?} still there\nlog:\n{}", m.log());
    let failed = failures(&results);
    assert!(
        failed.is_empty(),
        "{} of {} requests failed during the reload: {failed:?}\nlog:\n{}",
        failed.len(),
        results.len(),
        m.log()
    );
    let gen2 = children(m.pid());
    let body = get_200(&addr, "/");
    assert!(body.starts_with("second version "), "{body:?}");
    for p in &gen1 {
        assert!(!alive(*p), "old worker {p} still running");
    }

    write_broken_app(dir.path());
    m.signal(libc::SIGHUP);
    m.wait_log("while starting");
    assert!(m.log().contains("SyntaxError"), "log:\n{}", m.log());
    let body = get_200(&addr, "/");
    assert!(body.starts_with("second version "), "{body:?}");
    for p in &gen2 {
        assert!(
            alive(*p),
            "worker {p} of the working code stopped\nlog:\n{}",
            m.log()
        );
    }

    write_app(dir.path(), "third");
    m.signal(libc::SIGHUP);
    wait_answer(&m, &addr, "/", |st, b| st == 200 && b.starts_with("third "));
    assert!(
        eventually(WAIT, || gen2.iter().all(|p| !alive(*p))),
        "workers {gen2:?} of the second version still running\nlog:\n{}",
        m.log()
    );
    m.signal(libc::SIGTERM);
    m.assert_exit_0("SIGTERM");
}

/// A client whose connection the old worker accepted just before a reload,
/// and whose request arrives only once that worker drains, is still
/// answered (over a network the request can trail the handshake).
#[test]
fn a_connection_accepted_before_a_reload_is_served() {
    let mut m =
        Master::start(Server::builder("workers:app").args(&["-w", "1", "--max-requests", "1000"]));
    let addr = m.addrs[0].clone();
    let Listen::Tcp(server) = addr else {
        panic!("not TCP: {addr:?}")
    };
    let old = m.wait_booted(1)[0];
    let mut c = connect(&addr).unwrap();
    let client = c.tcp_stream().local_addr().unwrap();
    // Accepted: the worker holds the server side of the connection.
    assert!(
        eventually(WAIT, || accepted_inode(server, client)
            .is_some_and(|i| socket_inodes(old).contains(&i))),
        "worker {old} never accepted the connection"
    );
    m.signal(libc::SIGHUP);
    m.wait_log(&format!("[{old}] [INFO] shutting down"));
    c.send(b"GET /pid HTTP/1.1\r\nHost: x\r\n\r\n");
    let r = c.try_read_response(false).unwrap_or_else(|e| {
        panic!(
            "request dropped by the draining worker: {e}\nlog:\n{}",
            m.log()
        )
    });
    assert_eq!(r.status, 200, "{}", r.raw_str());
    assert_eq!(r.body_str(), old.to_string());
    assert!(r.connection_has("close"), "{}", r.raw_str());
    drop(c);
    m.signal(libc::SIGTERM);
    m.assert_exit_0("SIGTERM");
}

/// --reload: a saved file restarts the workers; a syntax error is answered
/// 500 with the traceback until the file is fixed.
#[test]
fn reload_flag_follows_file_changes() {
    let dir = tempfile::tempdir().unwrap();
    write_app(dir.path(), "first");
    let mut m = Master::start(app_in(dir.path()).args(&["--reload"]));
    let addr = m.addrs[0].clone();
    wait_answer(&m, &addr, "/", |st, b| st == 200 && b.starts_with("first "));

    write_app(dir.path(), "second");
    wait_answer(&m, &addr, "/", |st, b| {
        st == 200 && b.starts_with("second ")
    });

    write_broken_app(dir.path());
    let body = wait_answer(&m, &addr, "/", |st, _| st == 500);
    assert!(body.contains("SyntaxError"), "{body:?}");

    write_app(dir.path(), "third");
    wait_answer(&m, &addr, "/", |st, b| st == 200 && b.starts_with("third "));
    m.signal(libc::SIGTERM);
    m.assert_exit_0("SIGTERM");
}

/// --preload imports the app once, in the master; the workers serve it.
/// Workers whose master is SIGKILLed stop by themselves.
#[test]
fn preload_imports_once_and_workers_follow_a_killed_master() {
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("imports");
    let (mut cmd, n) = Server::builder("workers:app")
        .args(&["--preload", "-w", "2"])
        .command();
    cmd.env("RWSGI_TEST_MARKER", &marker);
    let mut m = Master::from(start_command(cmd, n));
    let addr = m.addrs[0].clone();
    let workers = m.wait_children(2, "start");
    let mut seen = Vec::new();
    assert!(
        eventually(WAIT, || {
            seen.push(serving_pid(&addr));
            workers.iter().all(|w| seen.contains(w))
        }),
        "not every worker served: {seen:?} of {workers:?}"
    );
    let imports = std::fs::read_to_string(&marker).unwrap();
    assert_eq!(
        imports.lines().collect::<Vec<_>>(),
        [m.pid().to_string()],
        "imported by {imports:?}"
    );

    sigkill(m.pid());
    let gone = eventually(WAIT, || workers.iter().all(|w| !alive(*w)));
    assert!(gone, "workers outlived their master\nlog:\n{}", m.log());
    let st = m.wait_exit("SIGKILL");
    assert_eq!(st.code(), None);
}

/// --reuse-port: each worker listens on a socket of its own besides the
/// master's shared one; while no worker is up, clients wait on the shared
/// one instead of being refused.
#[test]
fn reuse_port_gives_each_worker_its_own_listening_socket() {
    let mut m = Master::start(Server::builder("workers:app").args(&["--reuse-port", "-w", "2"]));
    let addr = m.addrs[0].clone();
    let Listen::Tcp(sa) = addr else {
        panic!("not TCP: {addr:?}")
    };
    let workers = m.wait_children(2, "start");
    let ok = eventually(WAIT, || listening_inodes(sa).len() == 3);
    assert!(ok, "listening sockets: {:?}", listening_inodes(sa));
    let inodes = listening_inodes(sa);
    let listening_in = |pid: i32| -> Vec<u64> {
        socket_inodes(pid)
            .into_iter()
            .filter(|i| inodes.contains(i))
            .collect()
    };
    let shared = listening_in(m.pid());
    assert_eq!(shared.len(), 1, "master holds {shared:?} of {inodes:?}");
    let own: Vec<Vec<u64>> = workers
        .iter()
        .map(|&w| {
            let mut held = listening_in(w);
            assert!(
                held.contains(&shared[0]),
                "worker {w} lacks the shared socket"
            );
            held.retain(|i| *i != shared[0]);
            held
        })
        .collect();
    assert!(
        own.iter().all(|o| o.len() == 1) && own[0] != own[1],
        "listening sockets {inodes:?}: shared {shared:?}, own {own:?} ({workers:?})"
    );
    for _ in 0..20 {
        assert!(workers.contains(&serving_pid(&addr)));
    }
    m.signal(libc::SIGTERM);
    m.assert_exit_0("SIGTERM");

    // While its only worker is replaced, clients wait instead of being
    // refused. (A connection the kernel queued on the old worker's own
    // socket just before it closed is reset: documented, not checked.)
    let mut m = Master::start(Server::builder("workers:app").args(&[
        "--reuse-port",
        "-w",
        "1",
        "--max-requests",
        "4",
        "--max-requests-jitter",
        "0",
    ]));
    let addr = m.addrs[0].clone();
    let mut pids = Vec::new();
    let mut resets = 0;
    while pids.len() < 14 && resets < 20 {
        match try_get(&addr, "/pid") {
            Ok(r) if r.status == 200 => pids.push(r.body_str()),
            Ok(r) => panic!("{}", r.raw_str()),
            Err(e) if e.contains("refused") => panic!("{e}\nlog:\n{}", m.log()),
            Err(_) => resets += 1,
        }
    }
    pids.dedup();
    assert!(pids.len() >= 4, "budget 4: {pids:?}, {resets} resets");
    m.signal(libc::SIGTERM);
    m.assert_exit_0("SIGTERM");
}

/// An IPv4 address as /proc/net/tcp writes it.
fn proc_net_addr(addr: SocketAddr) -> String {
    let SocketAddr::V4(v4) = addr else {
        panic!("IPv4 only: {addr}")
    };
    format!(
        "{:08X}:{:04X}",
        u32::from_le_bytes(v4.ip().octets()),
        v4.port()
    )
}

/// Inodes of the /proc/net/tcp sockets with this local address whose
/// remote address and state pass `keep`.
fn tcp_inodes(local: SocketAddr, keep: impl Fn(&str, &str) -> bool) -> Vec<u64> {
    let local = proc_net_addr(local);
    let table = std::fs::read_to_string("/proc/net/tcp").unwrap();
    table
        .lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let (remote, state) = (f.get(2)?, f.get(3)?);
            (f.get(1) == Some(&local.as_str()) && keep(remote, state))
                .then(|| f.get(9)?.parse().ok())
                .flatten()
        })
        .collect()
}

/// Inodes of the sockets listening on `addr`.
fn listening_inodes(addr: SocketAddr) -> Vec<u64> {
    tcp_inodes(addr, |_, state| state == "0A")
}

/// The server side of the connection from `client`, once accepted (a
/// connection still in the accept queue has inode 0).
fn accepted_inode(server: SocketAddr, client: SocketAddr) -> Option<u64> {
    let client = proc_net_addr(client);
    tcp_inodes(server, |remote, _| remote == client)
        .into_iter()
        .find(|&i| i != 0)
}

/// Inodes of the sockets a process has open.
fn socket_inodes(pid: i32) -> Vec<u64> {
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return Vec::new();
    };
    dir.flatten()
        .filter_map(|e| {
            let link = std::fs::read_link(e.path()).ok()?;
            let s = link.to_str()?;
            s.strip_prefix("socket:[")?.strip_suffix(']')?.parse().ok()
        })
        .collect()
}

/// Makes `fd` descriptor `target` of the exec'd program (not close-on-exec).
/// Runs between fork and exec: async-signal-safe calls only.
fn pass_fd(cmd: &mut Command, fd: i32, target: i32) {
    use std::os::unix::process::CommandExt;
    // SAFETY: the closure only calls dup2 and fcntl, which are
    // async-signal-safe, and touches no memory shared with the parent.
    unsafe {
        cmd.pre_exec(move || {
            let rc = if fd == target {
                let flags = libc::fcntl(fd, libc::F_GETFD);
                libc::fcntl(fd, libc::F_SETFD, flags & !libc::FD_CLOEXEC)
            } else {
                libc::dup2(fd, target)
            };
            if rc < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// `-b fd://N` serves an inherited socket; so does systemd socket
/// activation (LISTEN_FDS, LISTEN_PID), which replaces --bind.
#[test]
fn inherited_sockets_fd_and_systemd() {
    use std::os::fd::AsRawFd;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let expected = Listen::Tcp(listener.local_addr().unwrap());

    let (mut cmd, n) = Server::builder("workers:app").bind("fd://7").command();
    pass_fd(&mut cmd, listener.as_raw_fd(), 7);
    let mut m = Master::from(start_command(cmd, n));
    assert_eq!(m.addrs, std::slice::from_ref(&expected));
    assert_eq!(serving_pid(&expected), m.pid());
    m.signal(libc::SIGTERM);
    m.assert_exit_0("fd://7: SIGTERM");

    // systemd sets LISTEN_PID to the pid it execs; a shell that execs the
    // server knows that pid as $$.
    let dir = tempfile::tempdir().unwrap();
    let unused = dir.path().join("unused.sock");
    let mut cmd = Command::new("/bin/sh");
    cmd.arg("-c")
        .arg(r#"export LISTEN_PID=$$; exec "$0" "$@""#)
        .arg(BIN)
        .args(["-w", "2", "-b"])
        .arg(format!("unix:{}", unused.display()))
        .args(["--chdir", &apps(), "workers:app"])
        .env("LISTEN_FDS", "1")
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .env("PYTHONUNBUFFERED", "1")
        .stdin(Stdio::null());
    pass_fd(&mut cmd, listener.as_raw_fd(), 3);
    let mut m = Master::from(start_command(cmd, 1));
    assert_eq!(
        m.addrs,
        std::slice::from_ref(&expected),
        "log:\n{}",
        m.log()
    );
    assert!(
        m.log().contains("systemd socket activation"),
        "log:\n{}",
        m.log()
    );
    assert!(!unused.exists(), "--bind used despite LISTEN_FDS");
    let workers = m.wait_children(2, "systemd");
    assert!(workers.contains(&serving_pid(&expected)));
    m.signal(libc::SIGTERM);
    m.assert_exit_0("systemd: SIGTERM");
}
