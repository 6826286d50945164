//! Shared harness for the end-to-end tests: spawn the `rwsgi-lite` binary on
//! a kernel-chosen port, collect its log, and speak raw HTTP/1.x to it
//! (responses are parsed by the crate's test kit, `rwsgi_lite::testing`).
//!
//! Every blocking operation has a deadline (socket timeouts, bounded waits),
//! so a server bug fails a test instead of hanging the suite.

#![allow(dead_code)]
#![allow(clippy::unwrap_used, clippy::expect_used)] // a panic is a test's failure report

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream, ToSocketAddrs};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use rwsgi_lite::testing::response;
/// Responses are read with the crate's test kit, the same reader the
/// connection's unit tests use (strict about framing). Not every test file
/// uses both names.
#[allow(unused_imports)]
pub use rwsgi_lite::testing::response::{find, Response};

/// Socket read/write timeout: far above anything a correct server needs.
pub const IO_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the server may take to import the app and bind.
pub const START_TIMEOUT: Duration = Duration::from_secs(20);

pub const BIN: &str = env!("CARGO_BIN_EXE_rwsgi-lite");

/// The server command the tests run: the standalone binary, or what
/// `RWSGI_LITE_BIN` names (the Python package's console script, so the
/// same end-to-end tests check both front ends).
pub fn server_bin() -> String {
    std::env::var("RWSGI_LITE_BIN")
        .ok()
        .filter(|b| !b.is_empty())
        .unwrap_or_else(|| BIN.to_owned())
}

/// `tests/apps`, where the test applications live.
pub fn apps_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("apps")
}

/// A unique path for a scratch file (unix socket, marker file).
pub fn temp_path(tag: &str) -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let n = N.fetch_add(1, Ordering::SeqCst);
    std::env::temp_dir().join(format!("rwsgi-e2e-{}-{}-{}", std::process::id(), n, tag))
}

/// A command for the binary with the environment the tests rely on.
pub fn base_command() -> Command {
    let mut cmd = Command::new(server_bin());
    // TZ: access-log times are local; UTC keeps them the same on every
    // machine (a test that wants a zone sets its own).
    cmd.env("PYTHONDONTWRITEBYTECODE", "1")
        .env("PYTHONUNBUFFERED", "1")
        .env("TZ", "UTC")
        .stdin(Stdio::null());
    cmd
}

// ---------------------------------------------------------------------------
// Log collection
// ---------------------------------------------------------------------------

/// Reads a child's stderr line by line into a shared Vec (kept for the whole
/// run) and forwards each line on a channel for whoever waits for one.
fn spawn_log_reader(
    stderr: impl Read + Send + 'static,
    lines: Arc<Mutex<Vec<String>>>,
    tx: mpsc::Sender<String>,
) -> JoinHandle<()> {
    thread::spawn(move || {
        let mut reader = io::BufReader::new(stderr);
        let mut buf = Vec::new();
        loop {
            buf.clear();
            match io::BufRead::read_until(&mut reader, b'\n', &mut buf) {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    let line = String::from_utf8_lossy(&buf)
                        .trim_end_matches(['\r', '\n'])
                        .to_string();
                    lines.lock().unwrap().push(line.clone());
                    let _ = tx.send(line);
                }
            }
        }
    })
}

// ---------------------------------------------------------------------------
// Server process
// ---------------------------------------------------------------------------

/// Builder for a server process: `Server::builder("testapp:app").start()`.
pub struct ServerBuilder {
    app: String,
    args: Vec<String>,
    binds: Vec<String>,
    chdir: bool,
    envs: Vec<(String, String)>,
}

impl ServerBuilder {
    /// Extra command-line arguments (placed before the APP).
    pub fn args(mut self, args: &[&str]) -> Self {
        self.args.extend(args.iter().map(|s| s.to_string()));
        self
    }
    /// A `-b` address; without any, `127.0.0.1:0` is used.
    pub fn bind(mut self, addr: &str) -> Self {
        self.binds.push(addr.to_string());
        self
    }
    /// An environment variable for the server process.
    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.envs.push((key.to_string(), value.to_string()));
        self
    }
    /// Do not pass `--chdir tests/apps` (the test passes its own path flags).
    pub fn no_chdir(mut self) -> Self {
        self.chdir = false;
        self
    }

    pub fn start(self) -> Server {
        let (cmd, n_binds) = self.command();
        start_command(cmd, n_binds)
    }
}

/// An address the server reported in its `Listening at:` line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Listen {
    Tcp(SocketAddr),
    Unix(PathBuf),
}

/// Parses `... Listening at: http://127.0.0.1:PORT` or `... unix:PATH`.
pub fn parse_listening(line: &str) -> Option<Listen> {
    let rest = &line[line.find("Listening at: ")? + "Listening at: ".len()..];
    let word = rest.split_whitespace().next()?;
    if let Some(path) = word.strip_prefix("unix:") {
        return Some(Listen::Unix(PathBuf::from(path)));
    }
    let hostport = word.strip_prefix("http://")?.trim_end_matches('/');
    hostport.to_socket_addrs().ok()?.next().map(Listen::Tcp)
}

/// A running server; killed (SIGKILL) and reaped on drop. On drop it also
/// fails the test if the server log contains a Rust panic message.
pub struct Server {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
    reader: Option<JoinHandle<()>>,
    pub addrs: Vec<Listen>,
    exit: Option<ExitStatus>,
}

impl Server {
    pub fn builder(app: &str) -> ServerBuilder {
        ServerBuilder {
            app: app.to_string(),
            args: Vec::new(),
            binds: Vec::new(),
            chdir: true,
            envs: Vec::new(),
        }
    }

    /// `rwsgi-lite -b 127.0.0.1:0 --chdir tests/apps APP`.
    pub fn start(app: &str) -> Server {
        Server::builder(app).start()
    }

    pub fn start_with(app: &str, args: &[&str]) -> Server {
        Server::builder(app).args(args).start()
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// The first TCP address the server listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addrs
            .iter()
            .find_map(|a| match a {
                Listen::Tcp(sa) => Some(*sa),
                _ => None,
            })
            .expect("server has no TCP listener")
    }

    pub fn port(&self) -> u16 {
        self.addr().port()
    }

    /// `Host:` header value for this server.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port())
    }

    pub fn connect(&self) -> Client {
        Client::tcp(self.addr())
    }

    /// One request on a fresh connection; returns the (first) response.
    pub fn request(&self, raw: &[u8]) -> Response {
        let mut c = self.connect();
        c.send(raw);
        c.read_response()
    }

    /// `GET path` with `Connection: close` on a fresh connection.
    pub fn get(&self, path: &str) -> Response {
        self.request(
            format!(
                "GET {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
                self.host()
            )
            .as_bytes(),
        )
    }

    /// All stderr lines so far, joined with newlines.
    pub fn log(&self) -> String {
        self.lines.lock().unwrap().join("\n")
    }

    pub fn log_lines(&self) -> Vec<String> {
        self.lines.lock().unwrap().clone()
    }

    /// Polls the log until it contains `needle` (true) or `timeout` passes.
    pub fn wait_for_log(&self, needle: &str, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if self.log().contains(needle) {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// Sends `sig` to the server process (only the child this struct owns).
    pub fn signal(&self, sig: i32) {
        // SAFETY: kill(2) on the pid of our own, not yet reaped, child.
        let rc = unsafe { libc::kill(self.pid(), sig) };
        assert_eq!(rc, 0, "kill({}, {sig}) failed", self.pid());
    }

    /// Waits up to `timeout` for the server to exit; `None` if it did not.
    pub fn wait_timeout(&mut self, timeout: Duration) -> Option<ExitStatus> {
        if let Some(st) = self.exit {
            return Some(st);
        }
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(Some(st)) = self.child.try_wait() {
                self.exit = Some(st);
                if let Some(r) = self.reader.take() {
                    let _ = r.join();
                }
                return Some(st);
            }
            if Instant::now() >= deadline {
                return None;
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn assert_no_panic(&self) {
        let log = self.log();
        assert!(
            !log.contains("panicked at"),
            "Rust panic in server log:\n{log}"
        );
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if self.exit.is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        if let Some(r) = self.reader.take() {
            let _ = r.join();
        }
        if !thread::panicking() {
            self.assert_no_panic();
        }
    }
}

// ---------------------------------------------------------------------------
// Running the binary to completion (CLI tests)
// ---------------------------------------------------------------------------

pub struct Output {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    pub fn code(&self) -> Option<i32> {
        self.status.code()
    }
    /// Non-empty stderr lines.
    pub fn stderr_lines(&self) -> Vec<&str> {
        self.stderr
            .lines()
            .filter(|l| !l.trim().is_empty())
            .collect()
    }
    pub fn describe(&self) -> String {
        format!(
            "status: {}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.status, self.stdout, self.stderr
        )
    }
}

/// Runs the binary with `args` (no implicit flags) and waits up to 20 s for
/// it to exit; a process still running then (e.g. it started serving) is
/// killed and the test fails.
pub fn run_to_exit(args: &[&str]) -> Output {
    let mut cmd = base_command();
    cmd.args(args).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot spawn {}: {e}", server_bin()));
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let out_t = thread::spawn(move || {
        let mut v = Vec::new();
        let _ = out.read_to_end(&mut v);
        v
    });
    let err_t = thread::spawn(move || {
        let mut v = Vec::new();
        let _ = err.read_to_end(&mut v);
        v
    });
    let deadline = Instant::now() + START_TIMEOUT;
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            let stderr = String::from_utf8_lossy(&err_t.join().unwrap()).into_owned();
            panic!(
                "`rwsgi-lite {}` did not exit within {START_TIMEOUT:?}; stderr:\n{stderr}",
                args.join(" ")
            );
        }
        thread::sleep(Duration::from_millis(20));
    };
    let o = Output {
        status,
        stdout: String::from_utf8_lossy(&out_t.join().unwrap()).into_owned(),
        stderr: String::from_utf8_lossy(&err_t.join().unwrap()).into_owned(),
    };
    assert!(
        !o.stderr.contains("panicked at"),
        "Rust panic on stderr:\n{}",
        o.describe()
    );
    o
}

// ---------------------------------------------------------------------------
// Client
// ---------------------------------------------------------------------------

pub enum Stream {
    Tcp(TcpStream),
    Unix(UnixStream),
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.read(buf),
            Stream::Unix(s) => s.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.write(buf),
            Stream::Unix(s) => s.write(buf),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Stream {
    fn set_read_timeout(&self, t: Duration) {
        match self {
            Stream::Tcp(s) => s.set_read_timeout(Some(t)).unwrap(),
            Stream::Unix(s) => s.set_read_timeout(Some(t)).unwrap(),
        }
    }
    fn set_write_timeout(&self, t: Duration) {
        match self {
            Stream::Tcp(s) => s.set_write_timeout(Some(t)).unwrap(),
            Stream::Unix(s) => s.set_write_timeout(Some(t)).unwrap(),
        }
    }
    fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => s.shutdown(how),
            Stream::Unix(s) => s.shutdown(how),
        }
    }
}

/// Why reading a response failed, with everything received for it so far.
#[derive(Debug)]
pub struct ReadError {
    pub msg: String,
    pub raw: Vec<u8>,
}

impl std::fmt::Display for ReadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}; received {} bytes: {:?}",
            self.msg,
            self.raw.len(),
            show(&self.raw)
        )
    }
}

/// Printable, bounded rendering of bytes for failure messages.
pub fn show(b: &[u8]) -> String {
    const MAX: usize = 600;
    if b.len() <= MAX {
        String::from_utf8_lossy(b).into_owned()
    } else {
        format!(
            "{}...<{} bytes>...{}",
            String::from_utf8_lossy(&b[..MAX / 2]),
            b.len() - MAX,
            String::from_utf8_lossy(&b[b.len() - MAX / 2..])
        )
    }
}

/// One client connection with a read buffer, so pipelined responses that
/// arrive together are split correctly.
pub struct Client {
    pub stream: Stream,
    buf: Vec<u8>,
    eof: bool,
}

impl Client {
    pub fn tcp(addr: SocketAddr) -> Client {
        let s = TcpStream::connect_timeout(&addr, IO_TIMEOUT)
            .unwrap_or_else(|e| panic!("connect to {addr}: {e}"));
        Client::from_stream(Stream::Tcp(s))
    }

    pub fn unix(path: &std::path::Path) -> Client {
        let s = UnixStream::connect(path).unwrap_or_else(|e| panic!("connect to {path:?}: {e}"));
        Client::from_stream(Stream::Unix(s))
    }

    pub fn from_stream(stream: Stream) -> Client {
        stream.set_read_timeout(IO_TIMEOUT);
        stream.set_write_timeout(IO_TIMEOUT);
        Client {
            stream,
            buf: Vec::new(),
            eof: false,
        }
    }

    pub fn set_read_timeout(&self, t: Duration) {
        self.stream.set_read_timeout(t);
    }

    pub fn tcp_stream(&self) -> &TcpStream {
        match &self.stream {
            Stream::Tcp(s) => s,
            Stream::Unix(_) => panic!("not a TCP client"),
        }
    }

    pub fn send(&mut self, bytes: &[u8]) {
        self.stream
            .write_all(bytes)
            .unwrap_or_else(|e| panic!("write of {} bytes failed: {e}", bytes.len()));
    }

    pub fn try_send(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.stream.write_all(bytes)
    }

    pub fn shutdown_write(&self) {
        let _ = self.stream.shutdown(Shutdown::Write);
    }

    /// Reads more bytes into the buffer; Ok(0) at EOF.
    fn fill(&mut self) -> io::Result<usize> {
        if self.eof {
            return Ok(0);
        }
        let mut tmp = [0u8; 64 * 1024];
        let n = self.stream.read(&mut tmp)?;
        if n == 0 {
            self.eof = true;
        }
        self.buf.extend_from_slice(&tmp[..n]);
        Ok(n)
    }

    /// Bytes received but not consumed by a parsed response.
    pub fn buffered(&self) -> &[u8] {
        &self.buf
    }

    /// Reads exactly `n` bytes (raw, unparsed).
    pub fn read_exact_raw(&mut self, n: usize) -> Vec<u8> {
        while self.buf.len() < n {
            match self.fill() {
                Ok(0) => panic!(
                    "EOF after {} of {n} bytes: {:?}",
                    self.buf.len(),
                    show(&self.buf)
                ),
                Ok(_) => {}
                Err(e) => panic!(
                    "read failed after {} of {n} bytes: {e}: {:?}",
                    self.buf.len(),
                    show(&self.buf)
                ),
            }
        }
        self.buf.drain(..n).collect()
    }

    /// Reads whatever arrives first (at least one byte) unless EOF.
    pub fn read_some(&mut self) -> io::Result<Vec<u8>> {
        if self.buf.is_empty() {
            self.fill()?;
        }
        Ok(std::mem::take(&mut self.buf))
    }

    /// Reads until EOF (or a reset). Returns everything, buffered bytes
    /// included; panics if the connection is still open after the timeout.
    pub fn read_to_eof(&mut self) -> Vec<u8> {
        loop {
            match self.fill() {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::ConnectionReset => break,
                Err(e) => panic!(
                    "read_to_eof: {e} (connection not closed?) after {:?}",
                    show(&self.buf)
                ),
            }
        }
        std::mem::take(&mut self.buf)
    }

    /// Asserts that the peer closes the connection (read returns 0 or
    /// ECONNRESET) within `timeout`, with no further bytes.
    pub fn assert_closed_within(&mut self, timeout: Duration) {
        assert!(
            self.buf.is_empty(),
            "unexpected extra bytes before close: {:?}",
            show(&self.buf)
        );
        self.set_read_timeout(timeout);
        let mut tmp = [0u8; 4096];
        let r = self.stream.read(&mut tmp);
        self.set_read_timeout(IO_TIMEOUT);
        match r {
            Ok(0) => {}
            Ok(n) => panic!("expected close, got {n} more bytes: {:?}", show(&tmp[..n])),
            Err(e) if e.kind() == io::ErrorKind::ConnectionReset => {}
            Err(e) => panic!("expected the server to close the connection within {timeout:?}: {e}"),
        }
    }

    pub fn assert_closed(&mut self) {
        self.assert_closed_within(Duration::from_secs(5));
    }

    /// Reads one response; panics with the received bytes on failure.
    pub fn read_response(&mut self) -> Response {
        self.try_read_response(false)
            .unwrap_or_else(|e| panic!("reading response: {e}"))
    }

    /// Reads one response to a HEAD request (never a body).
    pub fn read_head_response(&mut self) -> Response {
        self.try_read_response(true)
            .unwrap_or_else(|e| panic!("reading HEAD response: {e}"))
    }

    /// Reads one response; `head_request` means no body regardless of
    /// headers. A response cut short (EOF inside the head or a framed
    /// body) or malformed is an error carrying the bytes received.
    pub fn try_read_response(&mut self, head_request: bool) -> Result<Response, ReadError> {
        let err = |c: &Client, msg: String| ReadError {
            msg,
            raw: c.buf.clone(),
        };
        loop {
            // Bytes the buffer needs before parsing again is worth it.
            let want = match response::try_parse(&self.buf, head_request, self.eof) {
                Err(msg) => return Err(err(self, msg)),
                Ok(Some(r)) if r.complete => {
                    self.buf.drain(..r.raw.len());
                    return Ok(r);
                }
                Ok(None) if self.eof => {
                    return Err(err(self, "EOF before end of response head".into()))
                }
                // Cut short: a body until close is whole at EOF.
                Ok(Some(r)) if self.eof => {
                    let msg = match r.header("content-length") {
                        Some(n) => format!("EOF after {} of {n} body bytes", r.body.len()),
                        None => "EOF inside chunked body".to_string(),
                    };
                    return Err(err(self, msg));
                }
                // A Content-Length body is parsed again once it can be
                // whole (a 20 MiB body would be copied 300 times otherwise).
                Ok(Some(r)) => match r.header("content-length") {
                    Some(n) => {
                        find(&self.buf, b"\r\n\r\n").map_or(0, |i| i + 4) + n.parse().unwrap_or(0)
                    }
                    None => 0,
                },
                Ok(None) => 0,
            };
            loop {
                match self.fill() {
                    Ok(_) => {}
                    // The end of the stream, for a body until close.
                    Err(e) if e.kind() == io::ErrorKind::ConnectionReset => self.eof = true,
                    Err(e) => return Err(err(self, format!("reading the response: {e}"))),
                }
                if self.eof || self.buf.len() >= want {
                    break;
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Checks and data
// ---------------------------------------------------------------------------

/// Every response must carry Date (IMF-fixdate) and Server.
pub fn assert_date_server(r: &Response) {
    let date = r
        .header("date")
        .unwrap_or_else(|| panic!("no Date header in {:?}", r.raw_str()));
    // "Sun, 06 Nov 1994 08:49:37 GMT"
    let b = date.as_bytes();
    let ok = b.len() == 29
        && b[3] == b','
        && date.ends_with(" GMT")
        && b[7] == b' '
        && b[19] == b':'
        && b[22] == b':';
    assert!(ok, "Date header not IMF-fixdate: {date:?}");
    assert!(
        r.has_header("server"),
        "no Server header in {:?}",
        r.raw_str()
    );
}

const fn crc_table() -> [u32; 256] {
    let mut t = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 {
                0xEDB8_8320 ^ (c >> 1)
            } else {
                c >> 1
            };
            k += 1;
        }
        t[i] = c;
        i += 1;
    }
    t
}

static CRC_TABLE: [u32; 256] = crc_table();

/// CRC-32 (same as Python's `zlib.crc32(data, crc)`); start with 0.
pub fn crc32_update(crc: u32, data: &[u8]) -> u32 {
    let mut c = !crc;
    for &b in data {
        c = CRC_TABLE[((c ^ b as u32) & 0xff) as usize] ^ (c >> 8);
    }
    !c
}

/// Deterministic pseudo-random test data: byte `i` of a stream.
pub fn pattern(start: usize, len: usize) -> Vec<u8> {
    (start..start + len)
        .map(|i| {
            let x = (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
            (x >> 56) as u8
        })
        .collect()
}

/// The body the `/big` route of testapp.py returns: `bytes(range(256))`
/// repeated and cut to `n`.
pub fn big_body(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i % 256) as u8).collect()
}

/// Parses the `key\ttype\trepr` lines testapp.py's `/environ` and
/// `/input` routes answer with.
pub fn parse_kv(body: &[u8]) -> Vec<(String, String, String)> {
    String::from_utf8_lossy(body)
        .lines()
        .filter(|l| !l.is_empty())
        .map(|l| {
            let mut p = l.splitn(3, '\t');
            (
                p.next().unwrap_or("").to_string(),
                p.next().unwrap_or("").to_string(),
                p.next().unwrap_or("").to_string(),
            )
        })
        .collect()
}

/// Polls `f` every 50 ms until it returns true or `timeout` passes.
pub fn eventually(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if f() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        thread::sleep(Duration::from_millis(50));
    }
}

// ---------------------------------------------------------------------------
// Hardening helpers (tests/e2e_strict.rs, tests/e2e_limits.rs)
// ---------------------------------------------------------------------------

impl ServerBuilder {
    /// The command `start()` would run, and how many `Listening at:` lines
    /// to wait for; for tests that must tweak the process (rlimits).
    pub fn command(&self) -> (Command, usize) {
        let binds = if self.binds.is_empty() {
            vec!["127.0.0.1:0".to_string()]
        } else {
            self.binds.clone()
        };
        let mut cmd = base_command();
        for b in &binds {
            cmd.arg("-b").arg(b);
        }
        if self.chdir {
            cmd.arg("--chdir").arg(apps_dir());
        }
        cmd.args(&self.args).arg(&self.app);
        cmd.envs(self.envs.iter().map(|(k, v)| (k, v)));
        (cmd, binds.len())
    }

    /// Like `start()`, with the open-files limit (soft and hard) of the
    /// server process set to `nofile` before exec.
    pub fn start_with_nofile(self, nofile: u64) -> Server {
        use std::os::unix::process::CommandExt;
        let (mut cmd, n) = self.command();
        // SAFETY: setrlimit is async-signal-safe; the closure touches no
        // memory shared with the parent.
        unsafe {
            cmd.pre_exec(move || {
                let lim = libc::rlimit {
                    rlim_cur: nofile as libc::rlim_t,
                    rlim_max: nofile as libc::rlim_t,
                };
                if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
                    return Err(io::Error::last_os_error());
                }
                Ok(())
            });
        }
        start_command(cmd, n)
    }
}

/// Spawns `cmd` (a server command line, see `ServerBuilder::command`) and
/// waits until it logged `n_binds` `Listening at:` lines.
pub fn start_command(mut cmd: Command, n_binds: usize) -> Server {
    cmd.stdout(Stdio::null()).stderr(Stdio::piped());
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot spawn {}: {e}", server_bin()));
    let lines = Arc::new(Mutex::new(Vec::new()));
    let (tx, rx) = mpsc::channel();
    let reader = spawn_log_reader(child.stderr.take().unwrap(), lines.clone(), tx);
    let mut server = Server {
        child,
        lines,
        reader: Some(reader),
        addrs: Vec::new(),
        exit: None,
    };
    let deadline = Instant::now() + START_TIMEOUT;
    while server.addrs.len() < n_binds {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            panic!(
                "server did not log 'Listening at:' within {START_TIMEOUT:?}; log:\n{}",
                server.log()
            );
        }
        match rx.recv_timeout(left.min(Duration::from_millis(200))) {
            Ok(line) => {
                if let Some(addr) = parse_listening(&line) {
                    server.addrs.push(addr);
                }
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {
                if let Ok(Some(st)) = server.child.try_wait() {
                    server.exit = Some(st);
                    thread::sleep(Duration::from_millis(100));
                    panic!(
                        "server exited ({st}) before listening; log:\n{}",
                        server.log()
                    );
                }
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                let st = server.wait_timeout(Duration::from_secs(5));
                panic!(
                    "server closed stderr before listening (exit {st:?}); log:\n{}",
                    server.log()
                );
            }
        }
    }
    server
}

/// A `kB` field (`VmRSS`, `VmHWM`, ...) of /proc/PID/status, in KiB.
pub fn proc_status_kib(pid: i32, field: &str) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_else(|e| panic!("read /proc/{pid}/status: {e}"));
    s.lines()
        .find_map(|l| {
            let rest = l.strip_prefix(field)?.strip_prefix(':')?;
            rest.split_whitespace().next()?.parse().ok()
        })
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"))
}

/// utime + stime of a process, in clock ticks (/proc/PID/stat).
pub fn proc_cpu_ticks(pid: i32) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .unwrap_or_else(|e| panic!("read /proc/{pid}/stat: {e}"));
    // Fields after the ")" that ends comm: state is field 3; utime 14, stime 15.
    let rest = &s[s.rfind(')').expect("bad /proc stat") + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = f[11].parse().unwrap();
    let stime: u64 = f[12].parse().unwrap();
    utime + stime
}

/// Clock ticks per second (`sysconf(_SC_CLK_TCK)`).
pub fn clock_ticks_per_sec() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as u64
    } else {
        100
    }
}

/// The request counter of tests/apps/hardening.py (its `/peek` route, which
/// does not count itself).
pub fn hardening_count(s: &Server) -> u64 {
    let r = s.get("/peek");
    assert_eq!(r.status, 200, "/peek: {}", r.raw_str());
    r.body_str()
        .strip_prefix("count=")
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("/peek answered {:?}", r.body_str()))
}

// ---------------------------------------------------------------------------
// nginx (tests/e2e_nginx.rs, tests/e2e_hosts.rs)
// ---------------------------------------------------------------------------

/// The nginx binary: `$RWSGI_NGINX`, else the first `nginx` on PATH or in
/// the usual sbin folders (`.ci/run` installs it with apt).
pub fn nginx_binary() -> PathBuf {
    if let Some(p) = std::env::var_os("RWSGI_NGINX") {
        return PathBuf::from(p);
    }
    for dir in std::env::var("PATH").unwrap_or_default().split(':').chain([
        "/usr/sbin",
        "/usr/local/sbin",
        "/usr/local/nginx/sbin",
    ]) {
        let p = std::path::Path::new(dir).join("nginx");
        if p.is_file() {
            return p;
        }
    }
    panic!("nginx not found: install it (apt-get install nginx-light) or set RWSGI_NGINX");
}

/// The top of an nginx.conf for a test nginx under `root` (its pid, log
/// and temp files all there): everything up to and including `http {`.
/// The caller adds its upstreams and servers and the closing brace. As
/// root, nginx workers would switch to "nobody" and lose access to the
/// private directory, so they stay root.
pub fn nginx_conf_head(root: &std::path::Path) -> String {
    // SAFETY: geteuid(2) cannot fail and touches no memory.
    let user = if unsafe { libc::geteuid() } == 0 {
        "user root;"
    } else {
        ""
    };
    let r = root.display();
    format!(
        r#"
{user}
daemon off;
master_process on;
worker_processes 1;
pid {r}/nginx.pid;
error_log {r}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {r}/tmp/client_body;
    proxy_temp_path {r}/tmp/proxy;
    fastcgi_temp_path {r}/tmp/fastcgi;
    uwsgi_temp_path {r}/tmp/uwsgi;
    scgi_temp_path {r}/tmp/scgi;
    keepalive_requests 100000;
"#
    )
}
