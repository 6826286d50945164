//! Clients and servers on different hosts, as a deployment runs them.
//!
//! Network namespaces joined by veth pairs are the hosts, each with its own
//! non-loopback address (10.201.x.0/24, which exists only inside them; no
//! traffic leaves this machine):
//!
//! ```text
//!   client 10.201.1.2 ── 10.201.1.1 nginx 10.201.2.1 ── 10.201.2.2:8000 server a
//!                                         10.201.3.1 ── 10.201.3.2:8000 server b
//! ```
//!
//! Each server host runs the real binary with `-w 2 --forwarded-allow-ips
//! <its nginx address>`; nginx balances over both with upstream keep-alive
//! and `proxy_next_upstream error timeout http_502 http_503`. Checked: the
//! client's own address arrives as REMOTE_ADDR and a forged X-Forwarded-For
//! does not; a rolling restart under load (TERM and start again, one host at
//! a time, then a HUP to each master) fails no request at the client; a
//! host whose link goes down is routed around, and comes back.
//!
//! Needs root and iproute2 (`.ci/run` installs it); without them, or where
//! namespaces cannot be made (a container without CAP_SYS_ADMIN), the test
//! says so on stderr and passes. Names carry the test's pid, so parallel
//! runs do not collide; everything is torn down on drop, also on failure.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a panic is a test's failure report
#![cfg(feature = "python")]

mod common;

use std::fs::File;
use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use common::*;

const CLIENT_ADDR: &str = "10.201.1.2";
const NGINX_FRONT: &str = "10.201.1.1";
const NGINX_PORT: u16 = 80;
const SERVER_PORT: u16 = 8000;

/// A server host: its namespace role, its address, and the address of
/// nginx on the link between them (the one proxy it trusts).
struct Backend {
    role: &'static str,
    addr: &'static str,
    nginx_addr: &'static str,
}

const BACKENDS: [Backend; 2] = [
    Backend {
        role: "a",
        addr: "10.201.2.2",
        nginx_addr: "10.201.2.1",
    },
    Backend {
        role: "b",
        addr: "10.201.3.2",
        nginx_addr: "10.201.3.1",
    },
];

/// Load pacing: each connection pauses this long between requests, so a
/// phase of ~10 s sends a few thousand requests, not as many as the CPU
/// allows (the machine is shared).
const PACE: Duration = Duration::from_millis(5);
/// Hard bound on the requests one load connection sends.
const MAX_PER_CONN: usize = 10_000;
/// How long one phase may wait for something it expects.
const PHASE_TIMEOUT: Duration = Duration::from_secs(30);

// ---------------------------------------------------------------------------
// The hosts
// ---------------------------------------------------------------------------

/// iproute2's `ip`: on PATH, or in an sbin folder PATH may lack.
fn ip_binary() -> &'static Path {
    static IP: OnceLock<PathBuf> = OnceLock::new();
    IP.get_or_init(|| {
        let path = std::env::var("PATH").unwrap_or_default();
        let found = path
            .split(':')
            .chain(["/usr/sbin", "/sbin"])
            .map(|dir| Path::new(dir).join("ip"))
            .find(|p| p.is_file());
        found.unwrap_or_else(|| PathBuf::from("ip"))
    })
}

/// Runs `ip ARGS`; the error is its stderr.
fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new(ip_binary())
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("ip: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// The namespaces (hosts) of one test run; deleted on drop, which also
/// removes the veth links inside them.
struct Hosts {
    /// (role, namespace name, open namespace file for setns).
    spaces: Vec<(&'static str, String, File)>,
}

impl Hosts {
    /// `Err(reason)` when namespaces cannot be made here (then the test is
    /// skipped); a failure after the first namespace exists panics.
    fn create() -> Result<Hosts, String> {
        // SAFETY: geteuid(2) cannot fail and touches no memory.
        if unsafe { libc::geteuid() } != 0 {
            return Err("not root".into());
        }
        ip(&["-V"]).map_err(|e| format!("iproute2 missing ({e})"))?;
        let mut hosts = Hosts { spaces: Vec::new() };
        hosts.add("client")?;
        for role in ["nginx", "a", "b"] {
            hosts.add(role).unwrap_or_else(|e| panic!("{e}"));
        }
        hosts.wire().unwrap_or_else(|e| panic!("{e}"));
        Ok(hosts)
    }

    fn add(&mut self, role: &'static str) -> Result<(), String> {
        let name = format!("rwsgi-{}-{role}", std::process::id());
        ip(&["netns", "add", &name])?;
        let file = File::open(format!("/run/netns/{name}"));
        // Pushed before anything else can fail, so drop deletes it.
        let file = match file {
            Ok(f) => f,
            Err(e) => {
                let _ = ip(&["netns", "del", &name]);
                return Err(format!("/run/netns/{name}: {e}"));
            }
        };
        self.spaces.push((role, name, file));
        ip(&["-n", self.name(role), "link", "set", "lo", "up"])
    }

    fn name(&self, role: &str) -> &str {
        &self.spaces.iter().find(|s| s.0 == role).expect(role).1
    }

    fn file(&self, role: &str) -> &File {
        &self.spaces.iter().find(|s| s.0 == role).expect(role).2
    }

    /// One veth pair per link, created straight inside the two namespaces
    /// (the root namespace never sees them), addressed and up.
    fn wire(&self) -> Result<(), String> {
        let mut links = vec![("client", CLIENT_ADDR, "c0", NGINX_FRONT)];
        for (b, dev) in BACKENDS.iter().zip(["a0", "b0"]) {
            links.push((b.role, b.addr, dev, b.nginx_addr));
        }
        let nginx = self.name("nginx");
        for (role, addr, nginx_dev, nginx_addr) in links {
            let ns = self.name(role);
            ip(&[
                "link", "add", "eth0", "netns", ns, "type", "veth", "peer", "name", nginx_dev,
                "netns", nginx,
            ])?;
            ip(&[
                "-n",
                ns,
                "addr",
                "add",
                &format!("{addr}/24"),
                "dev",
                "eth0",
            ])?;
            ip(&[
                "-n",
                nginx,
                "addr",
                "add",
                &format!("{nginx_addr}/24"),
                "dev",
                nginx_dev,
            ])?;
            ip(&["-n", ns, "link", "set", "eth0", "up"])?;
            ip(&["-n", nginx, "link", "set", nginx_dev, "up"])?;
        }
        Ok(())
    }

    /// Cuts a server host off (its side of the link down), or reconnects it.
    fn set_link(&self, role: &str, up: bool) {
        let state = if up { "up" } else { "down" };
        ip(&["-n", self.name(role), "link", "set", "eth0", state])
            .unwrap_or_else(|e| panic!("{e}"));
    }

    /// `cmd` will run inside `role`'s namespace.
    fn spawn_in(&self, role: &str, cmd: &mut Command) {
        let fd = self.file(role).as_raw_fd();
        // SAFETY: setns(2) is async-signal-safe and the closure touches no
        // memory shared with the parent; the namespace file stays open in
        // `self` until the child has been spawned.
        unsafe {
            cmd.pre_exec(move || {
                if libc::setns(fd, libc::CLONE_NEWNET) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
    }

    /// Moves the calling thread into `role`'s namespace (network namespaces
    /// are per thread, so the rest of the test process stays where it is).
    fn enter(&self, role: &str) {
        // SAFETY: setns(2) on an open namespace file; no memory involved.
        let rc = unsafe { libc::setns(self.file(role).as_raw_fd(), libc::CLONE_NEWNET) };
        assert_eq!(rc, 0, "setns {role}: {}", std::io::Error::last_os_error());
    }

    /// Runs `f` on a thread inside `role`'s namespace.
    fn run_in<T: Send>(&self, role: &str, f: impl FnOnce() -> T + Send) -> T {
        thread::scope(|s| {
            s.spawn(|| {
                self.enter(role);
                f()
            })
            .join()
            .expect("thread in namespace")
        })
    }
}

impl Drop for Hosts {
    fn drop(&mut self) {
        for (_, name, _) in self.spaces.drain(..) {
            if let Err(e) = ip(&["netns", "del", &name]) {
                eprintln!("e2e_hosts cleanup: {e}");
            }
        }
    }
}

// ---------------------------------------------------------------------------
// The processes
// ---------------------------------------------------------------------------

fn start_server(hosts: &Hosts, b: &Backend) -> Server {
    let (mut cmd, n) = Server::builder("hosts:app")
        .bind(&format!("{}:{SERVER_PORT}", b.addr))
        .args(&[
            "-w",
            "2",
            "--forwarded-allow-ips",
            b.nginx_addr,
            "--keep-alive",
            "75",
        ])
        .command();
    hosts.spawn_in(b.role, &mut cmd);
    start_command(cmd, n)
}

/// nginx on the nginx host, as a user would configure it for two server
/// hosts; stopped (QUIT, then KILL) on drop.
struct Nginx {
    child: Child,
    dir: tempfile::TempDir,
}

impl Nginx {
    fn start(hosts: &Hosts) -> Nginx {
        let dir = tempfile::tempdir().expect("temp dir");
        let r = dir.path().display().to_string();
        for sub in ["client_body", "proxy", "fastcgi", "uwsgi", "scgi"] {
            std::fs::create_dir_all(dir.path().join("tmp").join(sub)).unwrap();
        }
        std::fs::write(dir.path().join("nginx.conf"), nginx_conf(&r)).unwrap();
        let mut cmd = Command::new(nginx_binary());
        cmd.args(["-p", &r, "-e", &format!("{r}/error.log")])
            .args(["-c", &format!("{r}/nginx.conf")])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        hosts.spawn_in("nginx", &mut cmd);
        let child = cmd.spawn().expect("start nginx");
        let nginx = Nginx { child, dir };
        let up = hosts.run_in("client", || {
            eventually(START_TIMEOUT, || TcpStream::connect(front()).is_ok())
        });
        assert!(up, "nginx did not start: {}", nginx.error_log());
        nginx
    }

    fn error_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("error.log")).unwrap_or_default()
    }

    /// How many times nginx logged a failed attempt on a server (each one
    /// retried on the other server, or the client saw the failure).
    fn upstream_errors(&self) -> usize {
        self.error_log()
            .lines()
            .filter(|l| l.contains("upstream"))
            .count()
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGQUIT);
        if !eventually(Duration::from_secs(10), || {
            matches!(self.child.try_wait(), Ok(Some(_)))
        }) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The site: keep-alive to both servers; a failed server is retried after
/// 2 s (`fail_timeout`), a connect gives up after 1 s, and a request that
/// failed on one server (error, timeout, 502, 503) goes to the other.
/// `proxy_read_timeout` is short because a host that vanishes leaves
/// nginx's idle connections to it silent: a request sent on one waits that
/// long before it is retried elsewhere (the app answers at once).
fn nginx_conf(root: &str) -> String {
    let servers: String = BACKENDS
        .iter()
        .map(|b| {
            format!(
                "        server {}:{SERVER_PORT} max_fails=1 fail_timeout=2s;\n",
                b.addr
            )
        })
        .collect();
    format!(
        r#"{head}
    upstream app {{
{servers}        keepalive 16;
        keepalive_timeout 60s;
    }}
    server {{
        listen {NGINX_FRONT}:{NGINX_PORT};
        location / {{
            proxy_pass http://app;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto $scheme;
            proxy_connect_timeout 1s;
            proxy_read_timeout 3s;
            proxy_next_upstream error timeout http_502 http_503;
        }}
    }}
}}
"#,
        head = nginx_conf_head(std::path::Path::new(root))
    )
}

fn front() -> SocketAddr {
    SocketAddr::new(NGINX_FRONT.parse().unwrap(), NGINX_PORT)
}

// ---------------------------------------------------------------------------
// The client
// ---------------------------------------------------------------------------

/// What the hosts app answered: `SERVER_NAME REMOTE_ADDR X-Forwarded-For
/// PATH_INFO`.
struct Seen {
    server: String,
    remote: String,
    xff: String,
    path: String,
}

fn seen(r: &Response) -> Seen {
    let body = r.body_str();
    let f: Vec<&str> = body.split(' ').collect();
    assert_eq!(f.len(), 4, "unexpected body {body:?}");
    Seen {
        server: f[0].into(),
        remote: f[1].into(),
        xff: f[2].into(),
        path: f[3].into(),
    }
}

fn backend_index(server: &str) -> Option<usize> {
    BACKENDS.iter().position(|b| b.addr == server)
}

/// Paced GET requests from the client host through nginx over a few
/// keep-alive connections, until stopped; counts what each server host
/// answered and describes every failure.
struct Load {
    stop: Arc<AtomicBool>,
    served: Arc<[AtomicUsize; 2]>,
    failures: Arc<Mutex<Vec<String>>>,
    threads: Vec<JoinHandle<usize>>,
}

impl Load {
    fn start(hosts: &Arc<Hosts>, conns: usize) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let served = Arc::new([AtomicUsize::new(0), AtomicUsize::new(0)]);
        let failures = Arc::new(Mutex::new(Vec::new()));
        let threads = (0..conns)
            .map(|t| {
                let (hosts, stop) = (hosts.clone(), stop.clone());
                let (served, failures) = (served.clone(), failures.clone());
                thread::spawn(move || {
                    hosts.enter("client");
                    load_conn(t, &stop, &served, &failures)
                })
            })
            .collect();
        Load {
            stop,
            served,
            failures,
            threads,
        }
    }

    fn served(&self, i: usize) -> usize {
        self.served[i].load(Ordering::SeqCst)
    }

    /// Waits until server host `i` has answered `n` more requests.
    fn wait_served(&self, i: usize, n: usize, what: &str) {
        let start = self.served(i);
        assert!(
            eventually(PHASE_TIMEOUT, || self.served(i) >= start + n),
            "{what}: host {} answered {} requests in {PHASE_TIMEOUT:?}; failures: {:?}",
            BACKENDS[i].role,
            self.served(i) - start,
            self.failures.lock().unwrap()
        );
    }

    /// Stops the load; the number of requests answered, and the failures.
    fn finish(mut self) -> (usize, Vec<String>) {
        let done = self.stop_threads();
        let failures = std::mem::take(&mut *self.failures.lock().unwrap());
        (done, failures)
    }

    fn stop_threads(&mut self) -> usize {
        self.stop.store(true, Ordering::SeqCst);
        self.threads.drain(..).map(|t| t.join().unwrap_or(0)).sum()
    }
}

/// On a failed assertion too: the threads hold the hosts, which are only
/// torn down once the last of them is gone.
impl Drop for Load {
    fn drop(&mut self) {
        self.stop_threads();
    }
}

/// One load connection (reopened whenever it closes or fails); returns the
/// number of requests answered correctly.
fn load_conn(
    t: usize,
    stop: &AtomicBool,
    served: &[AtomicUsize; 2],
    failures: &Mutex<Vec<String>>,
) -> usize {
    let mut ok = 0;
    let mut conn: Option<Client> = None;
    for i in 0..MAX_PER_CONN {
        if stop.load(Ordering::SeqCst) {
            break;
        }
        let path = format!("/load/{t}/{i}");
        match request(&mut conn, &path) {
            Ok(r) => match check(&r, &path) {
                Ok(host) => {
                    served[host].fetch_add(1, Ordering::SeqCst);
                    ok += 1;
                    if r.connection_has("close") {
                        conn = None;
                    }
                }
                Err(e) => {
                    failures.lock().unwrap().push(e);
                    conn = None;
                }
            },
            Err(e) => {
                failures.lock().unwrap().push(format!("{path}: {e}"));
                conn = None;
            }
        }
        thread::sleep(PACE);
    }
    ok
}

/// `GET path` on `conn`, connecting first if there is none.
fn request(conn: &mut Option<Client>, path: &str) -> Result<Response, String> {
    if conn.is_none() {
        let s = TcpStream::connect_timeout(&front(), IO_TIMEOUT).map_err(|e| e.to_string())?;
        *conn = Some(Client::from_stream(Stream::Tcp(s)));
    }
    let c = conn.as_mut().expect("connected");
    c.try_send(format!("GET {path} HTTP/1.1\r\nHost: app.test\r\n\r\n").as_bytes())
        .map_err(|e| e.to_string())?;
    c.try_read_response(false).map_err(|e| e.to_string())
}

/// A correct answer: 200 from one of the server hosts, for this path, with
/// the client's own address as REMOTE_ADDR. Returns the host's index.
fn check(r: &Response, path: &str) -> Result<usize, String> {
    let body = r.body_str();
    let f: Vec<&str> = body.split(' ').collect();
    match (r.status, f.as_slice()) {
        (200, [server, CLIENT_ADDR, CLIENT_ADDR, p]) if *p == path => {
            backend_index(server).ok_or_else(|| format!("{path}: unknown server {server}"))
        }
        _ => {
            let head: String = body.chars().take(80).collect();
            Err(format!("{path}: {} {head:?}", r.status))
        }
    }
}

/// Fails the phase on any failed request; else reports it (`--nocapture`).
fn assert_no_failures(phase: &str, load: Load, started: Instant, nginx: &Nginx) {
    let served = [load.served(0), load.served(1)];
    let (done, failures) = load.finish();
    assert!(
        failures.is_empty(),
        "{phase}: {} of {} requests failed: {:?}\nnginx error log:\n{}",
        failures.len(),
        done + failures.len(),
        &failures[..failures.len().min(10)],
        nginx.error_log()
    );
    eprintln!(
        "e2e_hosts: {phase}: {done} requests in {:.1?} (host a {}, host b {}), none \
         failed; nginx error log now has {} failed upstream attempts",
        started.elapsed(),
        served[0],
        served[1],
        nginx.upstream_errors()
    );
}

// ---------------------------------------------------------------------------
// The test
// ---------------------------------------------------------------------------

#[test]
fn nginx_in_front_of_two_server_hosts() {
    let hosts = match Hosts::create() {
        Ok(h) => Arc::new(h),
        Err(why) => {
            // Straight to fd 2: the test harness captures eprintln!.
            let _ = writeln!(
                std::io::stderr(),
                "e2e_hosts: SKIPPED, network namespaces cannot be made here: {why}"
            );
            return;
        }
    };
    // Dropped in reverse order: servers and nginx before the hosts.
    let mut servers: Vec<Server> = BACKENDS.iter().map(|b| start_server(&hosts, b)).collect();
    let nginx = Nginx::start(&hosts);

    client_address_arrives(&hosts, &nginx);
    rolling_restart_under_load(&hosts, &nginx, &mut servers);
    cut_off_host_is_routed_around(&hosts, &nginx);

    for s in &servers {
        s.assert_no_panic();
    }
}

/// REMOTE_ADDR is the client host's address, whatever X-Forwarded-For the
/// client sends; both server hosts take turns.
fn client_address_arrives(hosts: &Hosts, nginx: &Nginx) {
    let forged = [
        ("", CLIENT_ADDR.to_string()),
        (
            "X-Forwarded-For: 6.6.6.6\r\n",
            format!("6.6.6.6,{CLIENT_ADDR}"),
        ),
        // The address of a proxy the servers trust, forged: still the last
        // entry (what nginx saw) counts.
        (
            "X-Forwarded-For: 10.201.2.1, 10.201.3.1\r\n",
            format!("10.201.2.1,10.201.3.1,{CLIENT_ADDR}"),
        ),
        (
            "X-Forwarded-For: 6.6.6.6\r\nX-Forwarded-For: 7.7.7.7\r\n",
            format!("6.6.6.6,7.7.7.7,{CLIENT_ADDR}"),
        ),
    ];
    let mut by_host = [0; 2];
    hosts.run_in("client", || {
        let mut c = Client::tcp(front());
        for round in 0..4 {
            for (headers, xff) in &forged {
                let path = format!("/who/{round}");
                c.send(
                    format!("GET {path} HTTP/1.1\r\nHost: app.test\r\n{headers}\r\n").as_bytes(),
                );
                let r = c.read_response();
                assert_eq!(r.status, 200, "{}\n{}", r.raw_str(), nginx.error_log());
                let s = seen(&r);
                assert_eq!(s.remote, CLIENT_ADDR, "REMOTE_ADDR with {headers:?}");
                assert_eq!(&s.xff, xff, "X-Forwarded-For as the server got it");
                assert_eq!(s.path, path);
                by_host[backend_index(&s.server).expect("a backend")] += 1;
            }
        }
    });
    assert!(
        by_host.iter().all(|&n| n > 0),
        "nginx should balance over both hosts: {by_host:?}"
    );
    trusted_client_cannot_forge(hosts, nginx);
}

/// A client whose own address is trusted: a health checker on the nginx
/// host calling the site through nginx from 10.201.2.1, the address host a
/// trusts. Its forged entry sits left of that address; the old rule (skip
/// trusted entries from the right) took it, one hop does not.
fn trusted_client_cannot_forge(hosts: &Hosts, nginx: &Nginx) {
    let checker = BACKENDS[0].nginx_addr;
    let mut by_host = [0; 2];
    hosts.run_in("nginx", || {
        let src = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
        let from: SocketAddr = format!("{checker}:0").parse().unwrap();
        src.bind(&from.into()).unwrap();
        src.connect(&front().into()).unwrap();
        let mut c = Client::from_stream(Stream::Tcp(src.into()));
        for round in 0..6 {
            let path = format!("/health/{round}");
            c.send(
                format!(
                    "GET {path} HTTP/1.1\r\nHost: app.test\r\nX-Forwarded-For: 6.6.6.6\r\n\r\n"
                )
                .as_bytes(),
            );
            let r = c.read_response();
            assert_eq!(r.status, 200, "{}\n{}", r.raw_str(), nginx.error_log());
            let s = seen(&r);
            assert_eq!(s.xff, format!("6.6.6.6,{checker}"));
            assert_eq!(s.remote, checker, "answered by {}", s.server);
            by_host[backend_index(&s.server).expect("a backend")] += 1;
        }
    });
    assert!(
        by_host[0] > 0,
        "host a never answered the checker: {by_host:?}"
    );
}

/// TERM and start again, one host at a time, then a HUP to each master,
/// under load: the client sees no failed request.
fn rolling_restart_under_load(hosts: &Arc<Hosts>, nginx: &Nginx, servers: &mut [Server]) {
    let started = Instant::now();
    let load = Load::start(hosts, 4);
    for i in 0..BACKENDS.len() {
        load.wait_served(i, 50, "before the restart");
    }
    for (i, b) in BACKENDS.iter().enumerate() {
        servers[i].signal(libc::SIGTERM);
        let st = servers[i].wait_timeout(PHASE_TIMEOUT);
        assert!(
            st.is_some_and(|st| st.success()),
            "host {} after TERM: {st:?}\n{}",
            b.role,
            servers[i].log()
        );
        // The other host carries the load meanwhile.
        load.wait_served(1 - i, 50, "while a host restarts");
        servers[i] = start_server(hosts, b);
        load.wait_served(i, 50, "after the host restarted");
    }
    for (i, b) in BACKENDS.iter().enumerate() {
        let before = servers[i].log_lines().len();
        servers[i].signal(libc::SIGHUP);
        // The old generation has drained once its two workers exited.
        let drained = eventually(PHASE_TIMEOUT, || {
            servers[i].log_lines()[before..]
                .iter()
                .filter(|l| l.contains("exited with status 0"))
                .count()
                >= 2
        });
        assert!(
            drained,
            "host {} HUP did not finish:\n{}",
            b.role,
            servers[i].log()
        );
        load.wait_served(i, 50, "after the HUP");
    }
    assert!(
        load.served(0) + load.served(1) >= 400,
        "too little load during the restart"
    );
    assert_no_failures("rolling restart", load, started, nginx);
}

/// Host b's link goes down: requests keep succeeding on host a (some after
/// nginx's connect or read timeout); when the link is back, b serves again.
fn cut_off_host_is_routed_around(hosts: &Arc<Hosts>, nginx: &Nginx) {
    let started = Instant::now();
    let load = Load::start(hosts, 4);
    for i in 0..BACKENDS.len() {
        load.wait_served(i, 20, "before the cut");
    }
    hosts.set_link("b", false);
    // Nothing b sends can arrive any more; a response already in flight
    // might still be counted just after the cut.
    thread::sleep(Duration::from_millis(500));
    let b_at_cut = load.served(1);
    load.wait_served(0, 500, "with host b cut off");
    assert_eq!(load.served(1), b_at_cut, "host b answered while cut off");
    hosts.set_link("b", true);
    load.wait_served(1, 20, "after host b's link came back");
    assert_no_failures("host cut off", load, started, nginx);
}
