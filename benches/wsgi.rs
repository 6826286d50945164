//! The WSGI adapter with the embedded interpreter: environ building, a whole
//! `App::call` of a hello app with its response drained (covers
//! start_response's status/header validation and the head building), and
//! the cheap response-side helpers.
//!
//! `cargo bench --bench wsgi` (needs the `python` feature, the default).
#![allow(clippy::unwrap_used, clippy::expect_used)] // a panic is a test's failure report

use std::hint::black_box;
use std::net::SocketAddr;

use criterion::{BenchmarkId, Criterion};
use pyo3::prelude::*;
use pyo3::types::PyModule;
use rwsgi_lite::http::chunked::write_chunk_size;
use rwsgi_lite::http::parse::{HeadParser, Limits, Status};
use rwsgi_lite::http::response::write_error;
use rwsgi_lite::http::HttpError;
use rwsgi_lite::serve::app::{App, Event, Local, Peer, Request, Response};
use rwsgi_lite::serve::spool::RequestBody;
use rwsgi_lite::wsgi::environ::EnvironBuilder;
use rwsgi_lite::wsgi::WsgiApp;

const MINIMAL: &[u8] = b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n";

/// The same Firefox navigation as benches/parser.rs: 11 fields, ~200-byte
/// Cookie, a path and a query.
const BROWSER: &[u8] = b"GET /articles/2024/rust-wsgi?page=2&sort=new HTTP/1.1\r\n\
Host: www.example.com\r\n\
User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0\r\n\
Accept: text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8\r\n\
Accept-Language: en-US,en;q=0.5\r\n\
Accept-Encoding: gzip, deflate, br, zstd\r\n\
Connection: keep-alive\r\n\
Upgrade-Insecure-Requests: 1\r\n\
Sec-Fetch-Dest: document\r\n\
Sec-Fetch-Mode: navigate\r\n\
Sec-Fetch-Site: same-origin\r\n\
Sec-Fetch-User: ?1\r\n\
Cookie: sessionid=8f2b3c4d5e6f70819a2b3c4d5e6f7081; csrftoken=Zx9Yw8Vu7Ts6Rq5Po4Nm3Lk2Ji1Hg0Fe; \
_ga=GA1.2.1234567890.1700000000; _gid=GA1.2.987654321.1700000000; theme=dark; lang=en-US; \
consent=analytics%3Dno%26ads%3Dno; tz=Europe%2FParis\r\n\
\r\n";

const INPUTS: [(&str, &[u8]); 2] = [("minimal", MINIMAL), ("browser", BROWSER)];

/// The same app as shared/bench/apps/hello.py.
const HELLO: &std::ffi::CStr = c"
BODY = b'Hello, World!'
HEADERS = [('Content-Type', 'text/plain'), ('Content-Length', str(len(BODY)))]


def app(environ, start_response):
    start_response('200 OK', list(HEADERS))
    return [BODY]
";

const DATE: &[u8] = b"Sun, 06 Nov 1994 08:49:37 GMT";

/// A parsed head: the spans a `Request` borrows.
struct Parsed {
    buf: &'static [u8],
    parser: HeadParser,
}

impl Parsed {
    fn new(buf: &'static [u8]) -> Self {
        let mut parser = HeadParser::new(Limits::default());
        assert_eq!(
            parser.parse(buf),
            Ok(Status::Complete {
                head_len: buf.len()
            })
        );
        Parsed { buf, parser }
    }

    /// A fresh request per call: `build` moves the body out of it.
    fn request<'a>(&'a self, peer: &'a Peer, local: &'a Local) -> Request<'a> {
        Request {
            head: self.buf,
            method: self.parser.method().get(self.buf),
            target: self.parser.target().get(self.buf),
            version: self.parser.version(),
            headers: self.parser.headers(),
            body: RequestBody::default(),
            peer,
            local,
        }
    }
}

fn environ(c: &mut Criterion, py: Python<'_>, peer: &Peer, local: &Local) {
    let mut builder = EnvironBuilder::new(py).expect("EnvironBuilder::new");
    let mut g = c.benchmark_group("environ_build");
    for (name, buf) in INPUTS {
        let parsed = Parsed::new(buf);
        // Warm the HTTP_* key cache and check it works at all.
        let env = builder
            .build(&mut parsed.request(peer, local))
            .expect("build");
        assert!(env.len() > 15, "{name}: {}", env.len());
        drop(env);
        g.bench_function(BenchmarkId::from_parameter(name), |b| {
            b.iter(|| {
                let mut req = parsed.request(peer, local);
                black_box(builder.build(black_box(&mut req)).expect("build"))
            })
        });
    }
    g.finish();
}

/// `App::call`, then `next()` until `End`, then `close()`: what a
/// connection does for one request, minus the socket and the head writing.
fn drain<'py>(app: &mut WsgiApp<'py>, req: Request<'_>) -> usize {
    let mut response = app.call(req).expect("app call");
    let mut n = 0;
    loop {
        match response.next().expect("next") {
            Event::Head(head) => n += head.header_lines.len() + head.status_line.len(),
            Event::Data(chunk) => n += chunk.as_ref().len(),
            Event::File(file) => n += file.len as usize,
            Event::End => break,
        }
    }
    response.close();
    n
}

fn call(c: &mut Criterion, py: Python<'_>, peer: &Peer, local: &Local) {
    let module = PyModule::from_code(py, HELLO, c"hello.py", c"hello").expect("hello app");
    let app = module.getattr("app").expect("app attribute");
    let mut app = WsgiApp::new(py, app).expect("WsgiApp::new");
    let mut g = c.benchmark_group("call_hello");
    for (name, buf) in INPUTS {
        let parsed = Parsed::new(buf);
        let n = drain(&mut app, parsed.request(peer, local));
        // Status line, two header lines and the 13-byte body.
        assert!(n > 13, "{name}: {n}");
        g.bench_function(BenchmarkId::from_parameter(name), |b| {
            b.iter(|| black_box(drain(&mut app, parsed.request(peer, local))))
        });
    }
    g.finish();
}

fn helpers(c: &mut Criterion) {
    let mut g = c.benchmark_group("helpers");
    let mut out = Vec::with_capacity(512);
    g.bench_function("write_error/400", |b| {
        b.iter(|| {
            out.clear();
            write_error(black_box(HttpError::BadRequest("bare LF")), DATE, &mut out);
            black_box(out.len())
        })
    });
    g.bench_function("write_error/431", |b| {
        b.iter(|| {
            out.clear();
            write_error(black_box(HttpError::HeaderFieldsTooLarge), DATE, &mut out);
            black_box(out.len())
        })
    });
    for len in [13usize, 65_536, usize::MAX] {
        g.bench_function(BenchmarkId::new("write_chunk_size", len), |b| {
            b.iter(|| {
                out.clear();
                write_chunk_size(black_box(len), &mut out);
                black_box(out.len())
            })
        });
    }
    g.finish();
}

fn main() {
    rwsgi_lite::wsgi::python::initialize(None, &["bench".into()]).expect("start Python");
    let mut c = Criterion::default().configure_from_args();
    let peer = Peer::Tcp(SocketAddr::from(([127, 0, 0, 1], 5555)));
    let local = Local::Tcp(SocketAddr::from(([127, 0, 0, 1], 8000)));
    Python::attach(|py| {
        environ(&mut c, py, &peer, &local);
        call(&mut c, py, &peer, &local);
    });
    helpers(&mut c);
    c.final_summary();
}
