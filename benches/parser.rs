//! Request-head parsing: our incremental `HeadParser` against `httparse`.
//!
//! Pure `http/`, no Python: `cargo bench --no-default-features --bench parser`.
//!
//! Groups:
//! - `complete/<input>`: one whole head per iteration. `rwsgi` is
//!   `reset()` + `parse()` as a connection does per request (header Vec
//!   reused); `httparse` is `Request::parse` into a reused 32-header array.
//! - `analyze/<input>`: `body::analyze` on the already parsed head (framing,
//!   keep-alive, Host checks), reported on its own.
//! - `incremental/browser`: the browser head arriving in 4 pieces. Our
//!   parser resumes where it stopped; httparse has no state, so a naive
//!   server re-parses the growing prefix from the start on every read.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a panic is a test's failure report

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use rwsgi_lite::http::body;
use rwsgi_lite::http::parse::{HeadParser, Limits, Status};

const MINIMAL: &[u8] = b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n";

const WRK: &[u8] = b"GET / HTTP/1.1\r\nHost: 127.0.0.1:8000\r\n\r\n";

/// A Firefox navigation: 11 fields, a ~200-byte Cookie.
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

const INPUTS: [(&str, &[u8]); 3] = [("minimal", MINIMAL), ("browser", BROWSER), ("wrk", WRK)];

/// Parses `buf` whole with both parsers and checks they agree, so a bench
/// never measures an error path.
fn check(name: &str, buf: &[u8]) {
    let mut p = HeadParser::new(Limits::default());
    let ours = p.parse(buf).expect(name);
    assert_eq!(
        ours,
        Status::Complete {
            head_len: buf.len()
        },
        "{name}"
    );
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut req = httparse::Request::new(&mut headers);
    let theirs = req.parse(buf).expect(name);
    assert_eq!(theirs, httparse::Status::Complete(buf.len()), "{name}");
    assert_eq!(p.headers().len(), req.headers.len(), "{name}");
    body::analyze(buf, p.version(), p.headers()).expect(name);
}

fn complete(c: &mut Criterion) {
    for (name, buf) in INPUTS {
        check(name, buf);
        let mut g = c.benchmark_group(format!("complete/{name}"));
        g.throughput(Throughput::Bytes(buf.len() as u64));

        let mut parser = HeadParser::new(Limits::default());
        g.bench_function("rwsgi", |b| {
            b.iter(|| {
                parser.reset();
                let status = parser.parse(black_box(buf));
                black_box(parser.headers().len());
                black_box(status)
            })
        });

        let mut headers = [httparse::EMPTY_HEADER; 32];
        g.bench_function("httparse", |b| {
            b.iter(|| {
                let mut req = httparse::Request::new(&mut headers);
                let status = req.parse(black_box(buf));
                black_box(req.headers.len());
                black_box(status.is_ok())
            })
        });
        g.finish();
    }
}

fn analyze(c: &mut Criterion) {
    let mut g = c.benchmark_group("analyze");
    for (name, buf) in INPUTS {
        let mut parser = HeadParser::new(Limits::default());
        parser.parse(buf).expect(name);
        g.throughput(Throughput::Bytes(buf.len() as u64));
        g.bench_function(BenchmarkId::from_parameter(name), |b| {
            b.iter(|| {
                body::analyze(
                    black_box(buf),
                    black_box(parser.version()),
                    black_box(parser.headers()),
                )
            })
        });
    }
    g.finish();
}

fn incremental(c: &mut Criterion) {
    let buf = BROWSER;
    // Cut mid-token (inside the target, a User-Agent value, the Cookie) so
    // every piece but the last ends in the middle of something.
    let cuts = [20, buf.len() / 3, 2 * buf.len() / 3, buf.len()];
    {
        let mut p = HeadParser::new(Limits::default());
        let mut headers = [httparse::EMPTY_HEADER; 32];
        for &end in &cuts[..3] {
            assert_eq!(p.parse(&buf[..end]), Ok(Status::Partial));
            let mut req = httparse::Request::new(&mut headers);
            assert_eq!(req.parse(&buf[..end]), Ok(httparse::Status::Partial));
        }
    }
    let mut g = c.benchmark_group("incremental/browser");
    g.throughput(Throughput::Bytes(buf.len() as u64));

    let mut parser = HeadParser::new(Limits::default());
    g.bench_function("rwsgi", |b| {
        b.iter(|| {
            parser.reset();
            let mut status = Ok(Status::Partial);
            for &end in &cuts {
                status = parser.parse(black_box(&buf[..end]));
            }
            black_box(status)
        })
    });

    let mut headers = [httparse::EMPTY_HEADER; 32];
    g.bench_function("httparse", |b| {
        b.iter(|| {
            let mut complete = false;
            for &end in &cuts {
                let mut req = httparse::Request::new(&mut headers);
                complete = matches!(
                    req.parse(black_box(&buf[..end])),
                    Ok(httparse::Status::Complete(_))
                );
            }
            black_box(complete)
        })
    });
    g.finish();
}

criterion_group!(benches, complete, analyze, incremental);
criterion_main!(benches);
