//! The classic deployment, for real: nginx in front (its own instance, own
//! config in a temp dir, loopback port, `daemon off`) serving `/static/`
//! from a folder and proxying everything else to rwsgi-lite workers over a
//! unix socket with upstream keep-alive.
//!
//! nginx must be installed (`.ci/run` installs it with apt); set
//! `RWSGI_NGINX` to use another binary.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a panic is a test's failure report
#![cfg(feature = "python")]

mod common;

use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use common::*;

struct Nginx {
    child: Child,
    dir: tempfile::TempDir,
    addr: SocketAddr,
}

impl Nginx {
    fn start(upstream: &Path) -> Nginx {
        let dir = tempfile::tempdir().expect("temp dir");
        let root = dir.path();
        std::fs::create_dir_all(root.join("static")).unwrap();
        std::fs::write(root.join("static/hello.txt"), "static hello from nginx\n").unwrap();
        for sub in ["client_body", "proxy", "fastcgi", "uwsgi", "scgi"] {
            std::fs::create_dir_all(root.join("tmp").join(sub)).unwrap();
        }
        // A free loopback port: taken by the kernel, released, handed over.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let r = root.display();
        let conf = format!(
            r#"{head}
    client_max_body_size 64m;

    upstream rwsgi {{
        server unix:{upstream};
        keepalive 16;
        keepalive_timeout 60s;
    }}
    server {{
        listen {addr};
        location /static/ {{
            alias {r}/static/;
        }}
        location / {{
            proxy_pass http://rwsgi;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto $scheme;
        }}
    }}
}}
"#,
            head = nginx_conf_head(root),
            upstream = upstream.display()
        );
        std::fs::write(root.join("nginx.conf"), conf).unwrap();
        let child = Command::new(nginx_binary())
            .arg("-p")
            .arg(root)
            .arg("-e")
            .arg(root.join("error.log"))
            .arg("-c")
            .arg(root.join("nginx.conf"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start nginx");
        let nginx = Nginx { child, dir, addr };
        let deadline = Instant::now() + START_TIMEOUT;
        while TcpStream::connect(addr).is_err() {
            assert!(
                Instant::now() < deadline,
                "nginx did not start: {}",
                nginx.error_log()
            );
            thread::sleep(Duration::from_millis(50));
        }
        nginx
    }

    fn error_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("error.log")).unwrap_or_default()
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        // SIGQUIT: nginx's graceful shutdown; then reap (kill if stuck).
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGQUIT);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn get(client: &mut Client, path: &str) -> Response {
    client.send(format!("GET {path} HTTP/1.1\r\nHost: test\r\n\r\n").as_bytes());
    client.read_response()
}

/// Sends `total` GET requests over `threads` keep-alive connections through
/// nginx, in parallel; returns a description of each failure.
fn load(
    addr: SocketAddr,
    threads: usize,
    total: usize,
    stop_early: Option<Arc<AtomicBool>>,
) -> (usize, Vec<String>) {
    let done = Arc::new(AtomicUsize::new(0));
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let done = done.clone();
            let stop_early = stop_early.clone();
            thread::spawn(move || {
                let mut failures = Vec::new();
                let mut client = Client::tcp(addr);
                let mut i = 0;
                while i < total / threads {
                    if stop_early
                        .as_ref()
                        .is_some_and(|s| s.load(Ordering::SeqCst))
                    {
                        break;
                    }
                    let path = format!("/path/t{t}-{i}");
                    client.send(format!("GET {path} HTTP/1.1\r\nHost: test\r\n\r\n").as_bytes());
                    match client.try_read_response(false) {
                        Ok(r) if r.status == 200 && r.body == path.as_bytes() => {
                            if r.connection_has("close") {
                                client = Client::tcp(addr);
                            }
                        }
                        Ok(r) => {
                            failures.push(format!("{path}: {} {}", r.status, r.body_str()));
                            client = Client::tcp(addr);
                        }
                        Err(e) => {
                            failures.push(format!("{path}: {e}"));
                            client = Client::tcp(addr);
                        }
                    }
                    i += 1;
                    done.fetch_add(1, Ordering::SeqCst);
                }
                failures
            })
        })
        .collect();
    let failures = handles
        .into_iter()
        .flat_map(|h| h.join().expect("load thread"))
        .collect();
    (done.load(Ordering::SeqCst), failures)
}

#[test]
fn nginx_in_front_over_a_unix_socket() {
    let sock = temp_path("nginx-upstream.sock");
    let server = Server::builder("testapp:app")
        .bind(&format!("unix:{}", sock.display()))
        .args(&["-w", "2", "--keep-alive", "75"])
        .start();
    let nginx = Nginx::start(&sock);

    // Static files come from nginx's folder, never from the app (which
    // would answer /static/... with 404 from its router or echo the path).
    let mut c = Client::tcp(nginx.addr);
    let r = get(&mut c, "/static/hello.txt");
    assert_eq!(r.status, 200, "{}", nginx.error_log());
    assert_eq!(r.body_str(), "static hello from nginx\n");

    // Dynamic requests reach the app, with the client's address passed in
    // X-Forwarded-For (the app's peer is nginx on a unix socket). The
    // client connects from 127.0.0.7 so the address is not a default.
    let src = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    src.bind(&"127.0.0.7:0".parse::<SocketAddr>().unwrap().into())
        .unwrap();
    src.connect(&nginx.addr.into()).unwrap();
    let mut c7 = Client::from_stream(Stream::Tcp(src.into()));
    let r = get(&mut c7, "/environ");
    assert_eq!(r.status, 200, "{}", nginx.error_log());
    let env = r.body_str();
    assert!(
        env.contains("REMOTE_ADDR\tstr\t'127.0.0.7'"),
        "REMOTE_ADDR not taken from X-Forwarded-For:\n{env}"
    );
    assert!(
        env.contains("HTTP_X_FORWARDED_FOR\tstr\t'127.0.0.7'"),
        "{env}"
    );
    assert!(env.contains("wsgi.url_scheme\tstr\t'http'"), "{env}");
    assert!(env.contains("wsgi.multiprocess\tbool\tTrue"), "{env}");

    // 20 MiB up: the app reports length and CRC of what it read.
    const SIZE: usize = 20 << 20;
    let body = pattern(0, SIZE);
    let want = format!("{} {}", SIZE, crc32_update(0, &body));
    let mut c = Client::tcp(nginx.addr);
    c.send(
        format!("POST /checksum HTTP/1.1\r\nHost: test\r\nContent-Length: {SIZE}\r\n\r\n")
            .as_bytes(),
    );
    // Big writes: keep sending while nginx buffers the body to disk.
    for chunk in body.chunks(1 << 20) {
        c.send(chunk);
    }
    let r = c.read_response();
    assert_eq!(r.status, 200, "{}", nginx.error_log());
    assert_eq!(r.body_str(), want);

    // 20 MiB down, intact.
    let r = get(&mut c, &format!("/big?size={SIZE}"));
    assert_eq!(r.status, 200);
    assert_eq!(r.body.len(), SIZE);
    let expected: Vec<u8> = (0..SIZE).map(|i| (i % 256) as u8).collect();
    assert!(r.body == expected, "download corrupted");

    // 5,000 requests through nginx, none failed.
    let (done, failures) = load(nginx.addr, 8, 5000, None);
    assert_eq!(done, 5000);
    assert!(
        failures.is_empty(),
        "{} failed: {:?}",
        failures.len(),
        &failures[..failures.len().min(5)]
    );

    // A graceful reload (SIGHUP to the master) under load: no request fails.
    let stop = Arc::new(AtomicBool::new(false));
    let loader = {
        let stop = stop.clone();
        let addr = nginx.addr;
        thread::spawn(move || load(addr, 4, 1_000_000, Some(stop)))
    };
    thread::sleep(Duration::from_millis(300));
    let before = server.log_lines().len();
    server.signal(libc::SIGHUP);
    // The old generation has drained once two workers exited after HUP.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let exited = server.log_lines()[before..]
            .iter()
            .filter(|l| l.contains("exited with status 0"))
            .count();
        if exited >= 2 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "reload did not finish:\n{}",
            server.log()
        );
        thread::sleep(Duration::from_millis(50));
    }
    // Keep the load on the new workers for a moment, then stop it.
    thread::sleep(Duration::from_millis(300));
    stop.store(true, Ordering::SeqCst);
    let (done, failures) = loader.join().unwrap();
    assert!(done > 100, "too little load during the reload: {done}");
    assert!(
        failures.is_empty(),
        "{} of {done} failed during the reload: {:?}\nnginx: {}",
        failures.len(),
        &failures[..failures.len().min(5)],
        nginx.error_log()
    );
    server.assert_no_panic();
    drop(nginx);
    let _ = std::io::stderr().flush();
}
