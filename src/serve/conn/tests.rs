//! Connection state machine tests, with the crate's test kit
//! (`crate::testing`): a scripted mock socket, a stub app that records what
//! it is asked and counts `next()`/`close()` calls, and the response reader
//! for what went out on the wire. The harness and the helpers several
//! groups use come first, then one module per behaviour.

use std::io::ErrorKind;
use std::rc::Rc;
use std::time::{Duration, Instant};

use super::{Conn, Ctx, Progress, State, DRAIN_FRESH_GRACE, FILE_BUDGET, INITIAL_INBUF, LINGER};
use crate::http::parse::Version;
use crate::serve::app::{ConnSettings, Local, Peer};
use crate::testing::mock_stream::{data, In, MockStream};
use crate::testing::response::{parse_all, parse_response, Response};
use crate::testing::stub_app::{
    assert_closed_once, chunks, chunks_body, fixed, head, pattern, slow, Act, Recorded, Route,
    Stats, StubApp, StubResponse,
};

const DATE: &[u8] = b"Tue, 24 Nov 2026 09:00:00 GMT";
const DATE_STR: &str = "Tue, 24 Nov 2026 09:00:00 GMT";

// ---------------------------------------------------------------------------
// Harness
// ---------------------------------------------------------------------------

struct Harness {
    conn: Conn<MockStream, StubResponse>,
    app: StubApp,
    now: Instant,
    draining: bool,
}

impl Harness {
    fn new(app: StubApp, stream: MockStream) -> Self {
        Self::with_settings(ConnSettings::default(), app, stream)
    }

    fn with_settings(settings: ConnSettings, app: StubApp, stream: MockStream) -> Self {
        let now = Instant::now();
        let conn = Conn::new(
            stream,
            Peer::Unix,
            Rc::new(Local::Unix("/tmp/test.sock".into())),
            Rc::new(settings),
            now,
        );
        Harness {
            conn,
            app,
            now,
            draining: false,
        }
    }

    fn ctx(&self) -> Ctx<'static> {
        Ctx {
            now: self.now,
            date: DATE,
            draining: self.draining,
        }
    }

    /// One `drive`; the clock follows real time (the pull time budget is
    /// measured from `ctx.now`) unless a test moved it ahead.
    /// One drive, plus the deferred flush the server does before it
    /// sleeps.
    fn drive(&mut self) -> Progress {
        self.now = self.now.max(Instant::now());
        let ctx = self.ctx();
        match self.conn.drive(&mut self.app, &ctx) {
            Progress::Flush | Progress::FlushThenResume => self.conn.flush_deferred(&ctx),
            p => p,
        }
    }

    /// The server's drain begins: `on_drain` with a draining `Ctx`, plus
    /// the deferred flush, as `drive` above.
    fn begin_drain(&mut self) -> Progress {
        self.draining = true;
        self.now = self.now.max(Instant::now());
        let ctx = self.ctx();
        match self.conn.on_drain(&mut self.app, &ctx) {
            Progress::Flush | Progress::FlushThenResume => self.conn.flush_deferred(&ctx),
            p => p,
        }
    }

    fn signature(&self) -> impl PartialEq {
        let s = self.conn.stream();
        (
            s.input_left(),
            s.written.len(),
            s.shutdown,
            self.app.stats.calls.get(),
            self.app.stats.nexts.get(),
        )
    }

    /// Drives until Closed or until two drives in a row change nothing
    /// (Yield is driven again like the server does).
    fn run(&mut self) -> Progress {
        let mut idle_rounds = 0;
        for _ in 0..200_000 {
            let before = self.signature();
            let p = self.drive();
            if p == Progress::Closed {
                return p;
            }
            if self.signature() == before {
                idle_rounds += 1;
                if idle_rounds == 2 {
                    return p;
                }
            } else {
                idle_rounds = 0;
            }
        }
        panic!("connection never settled");
    }

    /// A timeout that drops the connection: not a moment before
    /// `deadline`, and at it.
    fn dropped_exactly_at(&mut self, deadline: Instant) {
        self.now = deadline - Duration::from_millis(1);
        assert_eq!(self.conn.on_timeout(&self.ctx()), Progress::Open);
        self.now = deadline;
        assert_eq!(self.conn.on_timeout(&self.ctx()), Progress::Closed);
    }

    fn stream(&self) -> &MockStream {
        self.conn.stream()
    }

    fn stream_mut(&mut self) -> &mut MockStream {
        self.conn.stream_mut()
    }

    fn feed(&mut self, steps: Vec<In>) {
        self.stream_mut().input.extend(steps);
    }

    fn written(&self) -> &[u8] {
        &self.stream().written
    }

    fn stats(&self) -> Rc<Stats> {
        self.app.stats.clone()
    }
}

fn get(path: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nHost: t\r\n\r\n").into_bytes()
}

fn cat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

fn assert_server_headers(r: &Response) {
    assert_eq!(r.header("Date"), Some(DATE_STR));
    assert_eq!(r.header("Server"), Some("rwsgi-lite"));
}

/// The whole output is one canned error reply with Connection: close.
fn assert_single_error(h: &Harness, status: u16) {
    let rs = parse_all(h.written());
    assert_eq!(rs.len(), 1, "{:?}", String::from_utf8_lossy(h.written()));
    assert_eq!(rs[0].status, status);
    assert_eq!(rs[0].header("Connection"), Some("close"));
    assert_server_headers(&rs[0]);
    assert!(rs[0].complete);
    assert!(h.stream().shutdown, "shutdown_write not called");
    assert_eq!(h.stats().calls.get(), 0, "app was called");
}

/// `deadline` is `from + span`, give or take the real time the drives took.
fn assert_deadline_near(deadline: Instant, from: Instant, span: Duration) {
    assert!(
        deadline <= from + span && deadline + Duration::from_secs(1) > from + span,
        "deadline {deadline:?} not about {span:?} after {from:?}"
    );
}

/// A simple keep-alive GET, then a second request on the connection.
mod keep_alive {
    use super::*;

    #[test]
    fn simple_get_keep_alive_then_second_request() {
        let mut h = Harness::new(StubApp::new(), MockStream::new(vec![data(&get("/a"))]));
        assert_eq!(h.run(), Progress::Open);
        let expected = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\
             Server: rwsgi-lite\r\nDate: {DATE_STR}\r\n\r\nok:/a"
        );
        assert_eq!(String::from_utf8_lossy(h.written()), expected);
        assert_eq!(
            h.app.requests,
            vec![Recorded {
                method: b"GET".to_vec(),
                target: b"/a".to_vec(),
                version: Version::Http11,
                headers: vec![(b"Host".to_vec(), b"t".to_vec())],
                body: Vec::new(),
            }]
        );
        assert!(!h.stream().shutdown);
        assert!(h.conn.is_idle());

        h.feed(vec![data(&get("/second"))]);
        assert_eq!(h.run(), Progress::Open);
        let rs = parse_all(h.written());
        assert_eq!(rs.len(), 2);
        for r in &rs {
            assert_eq!(r.status, 200);
            assert_eq!(r.header("Connection"), None);
            assert_server_headers(r);
            assert!(r.complete);
        }
        assert_eq!(rs[1].body, b"ok:/second");
        assert_eq!(rs[1].header("Content-Length"), Some("10"));
        assert_eq!(h.app.requests.len(), 2);
        assert!(!h.stream().shutdown);
        assert_closed_once(&h.stats());
    }
}

/// Requests and bodies that arrive in pieces, down to byte by byte.
mod split_input {
    use super::*;

    fn two_requests() -> Vec<u8> {
        cat(&[
            b"POST /form?x=1 HTTP/1.1\r\nHost: example\r\nX-Multi:  a b \r\n\
              Content-Length: 11\r\n\r\nhello world",
            &get("/next"),
        ])
    }

    #[test]
    fn request_byte_by_byte_matches_whole() {
        let mut whole = Harness::new(StubApp::new(), MockStream::new(vec![data(&two_requests())]));
        assert_eq!(whole.run(), Progress::Open);

        let mut steps = Vec::new();
        for (i, b) in two_requests().iter().enumerate() {
            steps.push(In::Data(vec![*b]));
            steps.push(In::WouldBlock);
            if i % 5 == 0 {
                steps.push(In::Error(ErrorKind::Interrupted));
            }
        }
        let mut slow = Harness::new(StubApp::new(), MockStream::new(steps));
        assert_eq!(slow.run(), Progress::Open);
        assert_eq!(slow.stream().input_left(), (0, 0));

        assert_eq!(whole.app.requests.len(), 2);
        assert_eq!(whole.app.requests[0].body, b"hello world");
        assert_eq!(
            whole.app.requests[0].headers[1],
            (b"X-Multi".to_vec(), b"a b".to_vec())
        );
        assert_eq!(slow.app.requests, whole.app.requests);
        assert_eq!(slow.written(), whole.written());
        assert_eq!(parse_all(whole.written()).len(), 2);
        assert_closed_once(&slow.stats());
    }

    /// A small body arriving in pieces grows the input buffer only by what it
    /// needs: asking for 64 KiB of room per read made every 4 KiB POST zero
    /// 60 KiB and then shrink it back.
    #[test]
    fn small_body_reads_do_not_balloon_the_input_buffer() {
        let body = vec![b'x'; 4096];
        let head = b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4096\r\n\r\n".to_vec();
        let steps = vec![
            data(&[head, body[..1000].to_vec()].concat()),
            In::WouldBlock,
            data(&body[1000..]),
            In::WouldBlock,
        ];
        let mut h = Harness::new(StubApp::new(), MockStream::new(steps));
        // Waiting for the rest of the body: the read asked only for its room.
        assert_eq!(h.drive(), Progress::Open);
        assert_eq!(h.stats().calls.get(), 0);
        let cap = h.conn.inbuf.capacity();
        assert!(cap <= 2 * INITIAL_INBUF, "input buffer grew to {cap} bytes");
        h.run();
        assert_eq!(h.stats().calls.get(), 1);
    }

    #[test]
    fn chunked_body_split_at_every_position() {
        let input = cat(&[
            b"POST /up HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n\
              5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n",
            &get("/after"),
        ]);
        let mut reference: Option<Vec<u8>> = None;
        for split in 0..=input.len() {
            let mut steps = Vec::new();
            for part in [&input[..split], &input[split..]] {
                if !part.is_empty() {
                    steps.push(data(part));
                    steps.push(In::WouldBlock);
                }
            }
            let mut h = Harness::new(StubApp::new(), MockStream::new(steps));
            assert_eq!(h.run(), Progress::Open, "split {split}");
            assert_eq!(h.app.requests.len(), 2, "split {split}");
            assert_eq!(h.app.requests[0].body, b"hello world", "split {split}");
            assert_eq!(h.app.requests[1].target, b"/after", "split {split}");
            assert!(h.app.requests[1].body.is_empty());
            match &reference {
                None => reference = Some(h.written().to_vec()),
                Some(r) => assert_eq!(h.written(), r.as_slice(), "split {split}"),
            }
        }
    }

    #[test]
    fn length_body_split_at_every_position() {
        let input = cat(&[
            b"PUT /up HTTP/1.1\r\nHost: a\r\nContent-Length: 11\r\n\r\nhello world",
            &get("/after"),
        ]);
        for split in 0..=input.len() {
            let mut steps = Vec::new();
            for part in [&input[..split], &input[split..]] {
                if !part.is_empty() {
                    steps.push(data(part));
                    steps.push(In::WouldBlock);
                }
            }
            let mut h = Harness::new(StubApp::new(), MockStream::new(steps));
            assert_eq!(h.run(), Progress::Open, "split {split}");
            let bodies: Vec<&[u8]> = h.app.requests.iter().map(|r| r.body.as_slice()).collect();
            assert_eq!(bodies, vec![&b"hello world"[..], b""], "split {split}");
            assert_eq!(h.app.requests[1].target, b"/after");
            assert_eq!(parse_all(h.written()).len(), 2);
        }
    }
}

/// Pipelined requests: answered in order, their responses written together.
mod pipelining {
    use super::*;

    #[test]
    fn pipelined_three_requests_one_read_one_write() {
        let input = cat(&[&get("/1"), &get("/2"), &get("/3")]);
        let mut h = Harness::new(StubApp::new(), MockStream::new(vec![data(&input)]));
        assert_eq!(h.run(), Progress::Open);
        let rs = parse_all(h.written());
        let bodies: Vec<&[u8]> = rs.iter().map(|r| r.body.as_slice()).collect();
        assert_eq!(bodies, vec![&b"ok:/1"[..], b"ok:/2", b"ok:/3"]);
        let targets: Vec<&[u8]> = h.app.requests.iter().map(|r| r.target.as_slice()).collect();
        assert_eq!(targets, vec![&b"/1"[..], b"/2", b"/3"]);
        assert_eq!(
            h.stream().write_calls,
            1,
            "ready pipelined responses should leave in one vectored write"
        );
        assert_closed_once(&h.stats());
    }

    /// With deferred writes (as the server runs) the responses wait for the
    /// end of the turn and then leave in one write, pipelined ones together.
    #[test]
    fn deferred_writes_wait_for_the_flush_and_leave_together() {
        let two = [get("/a"), get("/b")].concat();
        let mut h = Harness::new(
            StubApp::new(),
            MockStream::new(vec![data(&two), In::WouldBlock]),
        );
        let ctx = h.ctx();
        assert_eq!(h.conn.drive(&mut h.app, &ctx), Progress::Flush);
        assert_eq!(h.stats().calls.get(), 2);
        assert!(h.written().is_empty(), "written before the flush");
        assert_eq!(h.conn.flush_deferred(&ctx), Progress::Open);
        assert_eq!(h.stream().write_calls, 1);
        let (a, used) = parse_response(h.written(), false);
        let (b, _) = parse_response(&h.written()[used..], false);
        assert!(a.complete && b.complete);
        // One response, flushed as the server does, is one write too.
        let mut h = Harness::new(
            StubApp::new(),
            MockStream::new(vec![data(&get("/a")), In::WouldBlock]),
        );
        assert_eq!(h.drive(), Progress::Open);
        assert_eq!(h.stream().write_calls, 1);
    }
}

/// Generator bodies: flushed before each pull, and within the pull budgets.
mod generators {
    use super::*;

    #[test]
    fn generator_output_is_flushed_before_each_pull() {
        let acts = vec![
            head(200, None),
            Act::Data(b"one".to_vec()),
            Act::Data(b"two".to_vec()),
            Act::Data(b"three".to_vec()),
            Act::End,
        ];
        for (route, writes) in [(Route::Acts(acts.clone()), 1), (Route::Gen(acts), 5)] {
            let app = StubApp::new().route("/g", route);
            let mut h = Harness::new(app, MockStream::new(vec![data(&get("/g"))]));
            assert_eq!(h.run(), Progress::Open);
            let (r, used) = parse_response(h.written(), false);
            assert_eq!(used, h.written().len());
            assert!(r.complete);
            assert_eq!(r.body, b"onetwothree");
            // A generator's head and each chunk leave before the app runs again;
            // a ready body is written at once.
            assert_eq!(h.stream().write_calls, writes);
            assert_closed_once(&h.stats());
        }
    }

    #[test]
    fn generator_yields_after_pull_budget() {
        let app = StubApp::new().route("/g", slow(chunks(100, 10)));
        let mut h = Harness::new(app, MockStream::new(vec![data(&get("/g"))]));
        assert_eq!(h.drive(), Progress::Yield);
        let pulled = h.stats().nexts.get();
        assert!((1..=16).contains(&pulled), "{pulled} pulls in one drive");
        assert!(h.conn.out.is_empty(), "output flushed before yielding");
        let (partial, _) = parse_response(h.written(), false);
        assert!(!partial.complete);
        assert_eq!(partial.body, chunks_body(pulled - 1, 10));
        assert_eq!(h.run(), Progress::Open);
        let (r, used) = parse_response(h.written(), false);
        assert_eq!(used, h.written().len());
        assert!(r.complete);
        assert_eq!(r.body, chunks_body(100, 10));
        assert_closed_once(&h.stats());
    }

    /// A connection driven late in a busy wake-up (other connections already
    /// used the time budget) still pulls: the budget is its own.
    #[test]
    fn late_drive_in_a_busy_wakeup_still_pulls() {
        let app = StubApp::new().route("/g", slow(chunks(3, 10)));
        let mut h = Harness::new(app, MockStream::new(vec![data(&get("/g"))]));
        // The loop woke a second ago.
        let woke = Instant::now() - Duration::from_secs(1);
        let ctx = Ctx {
            now: woke,
            ..h.ctx()
        };
        let progress = h.conn.drive(&mut h.app, &ctx);
        assert!(h.stats().nexts.get() >= 1, "no pull at all ({progress:?})");
        if matches!(progress, Progress::Flush | Progress::FlushThenResume) {
            h.conn.flush_deferred(&ctx);
        }
        assert_eq!(h.run(), Progress::Open);
        let (r, _) = parse_response(h.written(), false);
        assert!(r.complete);
        assert_eq!(r.body, chunks_body(3, 10));
    }
}

/// Short writes leave the output byte-identical.
mod short_writes {
    use super::*;

    fn mixed_app() -> StubApp {
        StubApp::new()
            .route("/big", chunks(3, 1500))
            .route("/gen", slow(chunks(4, 1200)))
            .route(
                "/split",
                Route::Acts(vec![
                    head(200, Some(3000)),
                    Act::Data(pattern(2000, 1)),
                    Act::Data(Vec::new()),
                    Act::Data(pattern(1000, 2)),
                    Act::End,
                ]),
            )
            .route(
                "/tiny-chunks",
                Route::Acts(vec![
                    head(404, None),
                    Act::Data(b"a".to_vec()),
                    Act::Data(Vec::new()),
                    Act::Data(b"bc".to_vec()),
                    Act::End,
                ]),
            )
    }

    fn mixed_input() -> Vec<u8> {
        cat(&[
            &get("/small"),
            &get("/big"),
            &get("/split"),
            &get("/gen"),
            &get("/tiny-chunks"),
            &get("/last"),
        ])
    }

    fn run_mixed(stream: MockStream, high_water: usize) -> (Vec<u8>, Progress) {
        let settings = ConnSettings {
            high_water,
            ..Default::default()
        };
        let mut h = Harness::with_settings(settings, mixed_app(), stream);
        let p = h.run();
        assert_eq!(h.app.requests.len(), 6);
        assert_closed_once(&h.stats());
        (h.written().to_vec(), p)
    }

    #[test]
    fn short_writes_are_byte_identical() {
        let (reference, p) = run_mixed(MockStream::new(vec![data(&mixed_input())]), 64 * 1024);
        assert_eq!(p, Progress::Open);
        let rs = parse_all(&reference);
        assert_eq!(rs.len(), 6);
        assert!(rs.iter().all(|r| r.complete));
        assert_eq!(rs[1].body, chunks_body(3, 1500));
        assert!(rs[1].is_chunked());
        assert_eq!(rs[2].body, cat(&[&pattern(2000, 1), &pattern(1000, 2)]));
        assert_eq!(rs[3].body, chunks_body(4, 1200));
        assert_eq!(rs[4].status, 404);
        assert_eq!(rs[4].body, b"abc");
        assert_eq!(rs[5].body, b"ok:/last");

        for (per_call, alternate, high_water) in [
            (1, true, 64 * 1024),
            (7, true, 64 * 1024),
            (7, false, 64 * 1024),
            (1000, true, 64 * 1024),
            (1, true, 100),
            (7, false, 1),
            (4096, true, 2048),
        ] {
            let mut s = MockStream::new(vec![data(&mixed_input())]).per_call(per_call);
            if alternate {
                s = s.alternate();
            }
            let (out, p) = run_mixed(s, high_water);
            assert_eq!(p, Progress::Open);
            assert!(
                out == reference,
                "output differs with per_call={per_call} alternate={alternate} hw={high_water}"
            );
        }
    }
}

/// A client that does not read pauses the app.
mod backpressure {
    use super::*;

    #[test]
    fn blocked_writer_pauses_the_app() {
        // A list-like body (high water decides) and a generator (flushed
        // before every pull).
        for generator in [false, true] {
            blocked_writer_pauses(generator);
        }
    }

    fn blocked_writer_pauses(generator: bool) {
        const N: usize = 75;
        const SIZE: usize = 4096;
        let settings = ConnSettings {
            high_water: 8 * 1024,
            ..Default::default()
        };
        let route = if generator {
            slow(chunks(N, SIZE))
        } else {
            chunks(N, SIZE)
        };
        let app = StubApp::new().route("/big", route);
        let stream = MockStream::new(vec![data(&get("/big"))]).block_after(20_000);
        let mut h = Harness::with_settings(settings, app, stream);
        assert_eq!(h.run(), Progress::Open);
        assert_eq!(h.written().len(), 20_000);
        let pulled = h.stats().nexts.get();
        // 20000 written + under 8 KiB + one chunk queued: about 7 chunks.
        assert!(
            (3..=10).contains(&pulled),
            "next() called {pulled} times while the writer is blocked (generator: {generator})"
        );
        assert!(
            h.conn.out.len() < 8 * 1024 + SIZE + 64,
            "{}",
            h.conn.out.len()
        );
        for _ in 0..5 {
            assert_eq!(h.drive(), Progress::Open, "generator: {generator}");
        }
        assert_eq!(h.stats().nexts.get(), pulled, "pulled while blocked");
        assert_eq!(h.stats().closes.get(), 0);

        h.stream_mut().block_after = None;
        assert_eq!(h.run(), Progress::Open);
        let (r, used) = parse_response(h.written(), false);
        assert_eq!(used, h.written().len());
        assert!(r.is_chunked() && r.complete);
        assert_eq!(r.body, chunks_body(N, SIZE));
        assert_eq!(h.stats().nexts.get(), N + 2);
        assert_closed_once(&h.stats());
        assert!(h.conn.is_idle());
    }
}

/// Broken pipes, resets and read errors close the connection once.
mod io_errors {
    use super::*;

    #[test]
    fn write_error_mid_response_closes_once() {
        for kind in [ErrorKind::BrokenPipe, ErrorKind::ConnectionReset] {
            let app = StubApp::new().route("/big", chunks(100, 4096));
            let stream = MockStream::new(vec![data(&get("/big"))]).fail_after(10_000, kind);
            let mut h = Harness::new(app, stream);
            assert_eq!(h.run(), Progress::Closed, "{kind:?}");
            assert_eq!(h.written().len(), 10_000);
            assert!(h.stats().nexts.get() < 100);
            assert_eq!(h.stats().closes.get(), 1, "{kind:?}");
            let stats = h.stats();
            drop(h);
            assert_closed_once(&stats);
        }
    }

    #[test]
    fn write_error_after_response_end_does_not_close_twice() {
        // The whole response is queued (End pulled, close() already called)
        // before the write fails.
        let app = StubApp::new().route("/f", fixed(&pattern(5000, 3)));
        let stream =
            MockStream::new(vec![data(&get("/f"))]).fail_after(100, ErrorKind::ConnectionReset);
        let mut h = Harness::new(app, stream);
        assert_eq!(h.run(), Progress::Closed);
        assert_eq!(h.stats().closes.get(), 1);
        let stats = h.stats();
        drop(h);
        assert_closed_once(&stats);
    }

    #[test]
    fn read_errors_close_silently() {
        // Reset while idle, and while a body is being read.
        let cases: Vec<Vec<In>> = vec![
            vec![In::Error(ErrorKind::ConnectionReset)],
            vec![
                data(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\nabc"),
                In::WouldBlock,
                In::Error(ErrorKind::ConnectionReset),
            ],
            vec![
                data(b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nab"),
                In::Eof,
            ],
            vec![data(b"GET / HTTP/1.1\r\nHo"), In::Eof],
        ];
        for steps in cases {
            let mut h = Harness::new(StubApp::new(), MockStream::new(steps.clone()));
            assert_eq!(h.run(), Progress::Closed, "{steps:?}");
            assert!(h.written().is_empty(), "{steps:?}");
            assert_eq!(h.stats().calls.get(), 0);
        }
    }
}

/// Malformed requests: an error response, then the close.
mod malformed_requests {
    use super::*;

    #[test]
    fn malformed_header_gets_400_and_pipelined_request_is_dropped() {
        let input = cat(&[
            b"GET / HTTP/1.1\r\nHost: a\r\nBad Header\r\n\r\n",
            &get("/ok"),
        ]);
        let mut h = Harness::new(StubApp::new(), MockStream::new(vec![data(&input)]));
        assert_eq!(h.run(), Progress::Open);
        assert_single_error(&h, 400);
        assert_eq!(
            String::from_utf8_lossy(h.written()),
            format!(
                "HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\nContent-Length: 12\r\n\
                 Date: {DATE_STR}\r\nServer: rwsgi-lite\r\nConnection: close\r\n\r\nBad Request\n"
            )
        );
        // Lingering: reads and discards until EOF or the linger deadline.
        assert!(matches!(h.conn.state, State::Linger { .. }));
        let deadline = h.conn.deadline().expect("linger deadline");
        h.feed(vec![data(&get("/late"))]);
        assert_eq!(h.run(), Progress::Open);
        h.now = deadline;
        assert_eq!(h.conn.on_timeout(&h.ctx()), Progress::Closed);
        assert_eq!(h.stats().calls.get(), 0);
        assert_eq!(parse_all(h.written()).len(), 1);

        // With EOF after the bad request, the linger ends at once.
        let mut h = Harness::new(StubApp::new(), MockStream::new(vec![data(&input), In::Eof]));
        assert_eq!(h.run(), Progress::Closed);
        assert_single_error(&h, 400);
    }

    #[test]
    fn content_length_with_transfer_encoding_is_400() {
        let input = cat(&[
            b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\
              Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
            &get("/smuggled"),
        ]);
        let mut h = Harness::new(StubApp::new(), MockStream::new(vec![data(&input), In::Eof]));
        assert_eq!(h.run(), Progress::Closed);
        assert_single_error(&h, 400);
    }

    #[test]
    fn other_protocol_errors_answer_and_close() {
        let cases: Vec<(Vec<u8>, u16)> = vec![
            (b"GET / HTTP/1.1\r\n\r\n".to_vec(), 400),
            (b"GET / HTTP/2.0\r\nHost: a\r\n\r\n".to_vec(), 505),
            (
                b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n".to_vec(),
                501,
            ),
            (
                b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n".to_vec(),
                400,
            ),
            (
                format!("GET /{} HTTP/1.1\r\n", "a".repeat(9000)).into_bytes(),
                414,
            ),
        ];
        for (input, status) in cases {
            let mut h = Harness::new(StubApp::new(), MockStream::new(vec![data(&input), In::Eof]));
            assert_eq!(h.run(), Progress::Closed);
            assert_single_error(&h, status);
        }
    }
}

/// The request body limit: 413.
mod body_limit {
    use super::*;

    fn limited(limit: u64) -> ConnSettings {
        ConnSettings {
            limit_request_body: limit,
            ..Default::default()
        }
    }

    #[test]
    fn content_length_over_limit_is_413() {
        let input = b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 11\r\n\r\nhello world";
        let mut h = Harness::with_settings(
            limited(10),
            StubApp::new(),
            MockStream::new(vec![data(input), In::Eof]),
        );
        assert_eq!(h.run(), Progress::Closed);
        assert_single_error(&h, 413);

        // Exactly at the limit is fine.
        let input = b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\nhelloworld";
        let mut h = Harness::with_settings(
            limited(10),
            StubApp::new(),
            MockStream::new(vec![data(input)]),
        );
        assert_eq!(h.run(), Progress::Open);
        assert_eq!(h.app.requests[0].body, b"helloworld");
        assert_eq!(parse_all(h.written())[0].status, 200);
    }

    #[test]
    fn chunked_body_over_limit_is_413() {
        let head = b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n";
        let steps = vec![
            data(head),
            In::WouldBlock,
            data(b"6\r\nhello \r\n"),
            In::WouldBlock,
            data(b"5\r\nworld\r\n0\r\n\r\n"),
            In::Eof,
        ];
        let mut h = Harness::with_settings(limited(10), StubApp::new(), MockStream::new(steps));
        assert_eq!(h.run(), Progress::Closed);
        assert_single_error(&h, 413);

        // Ten bytes in chunks: accepted.
        let steps = vec![
            data(head),
            In::WouldBlock,
            data(b"5\r\nhello\r\n"),
            In::WouldBlock,
            data(b"5\r\nworld\r\n0\r\n\r\n"),
        ];
        let mut h = Harness::with_settings(limited(10), StubApp::new(), MockStream::new(steps));
        assert_eq!(h.run(), Progress::Open);
        assert_eq!(h.app.requests[0].body, b"helloworld");
    }
}

/// `Expect: 100-continue`.
mod expect_continue {
    use super::*;

    #[test]
    fn expect_100_continue() {
        let head =
            b"POST /e HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n";
        let mut h = Harness::new(StubApp::new(), MockStream::new(vec![data(head)]));
        assert_eq!(h.run(), Progress::Open);
        assert_eq!(h.written(), b"HTTP/1.1 100 Continue\r\n\r\n");
        assert_eq!(h.stats().calls.get(), 0);
        // The body only comes once the client has seen the 100.
        h.feed(vec![data(b"hel"), In::WouldBlock, data(b"lo")]);
        assert_eq!(h.run(), Progress::Open);
        let rs = parse_all(h.written());
        assert_eq!(rs.len(), 2);
        assert_eq!(rs[0].status, 100);
        assert_eq!(rs[1].status, 200);
        assert_eq!(rs[1].body, b"ok:/e");
        assert_eq!(h.app.requests[0].body, b"hello");

        // Body already sent with the head: no 100.
        let mut h = Harness::new(
            StubApp::new(),
            MockStream::new(vec![data(&cat(&[head, b"hello"]))]),
        );
        assert_eq!(h.run(), Progress::Open);
        let rs = parse_all(h.written());
        assert_eq!(rs.len(), 1);
        assert_eq!(rs[0].status, 200);
    }
}

/// Responses without a body: to HEAD, 204 and 304.
mod bodiless_responses {
    use super::*;

    #[test]
    fn head_request_sends_no_body() {
        let app = StubApp::new()
            .route("/a", fixed(b"hello"))
            .route("/c", chunks(2, 100));
        let input = cat(&[
            b"HEAD /a HTTP/1.1\r\nHost: t\r\n\r\n",
            b"HEAD /c HTTP/1.1\r\nHost: t\r\n\r\n",
            &get("/b"),
        ]);
        let mut h = Harness::new(app, MockStream::new(vec![data(&input)]));
        assert_eq!(h.run(), Progress::Open);
        let out = h.written().to_vec();
        let (r1, n1) = parse_response(&out, true);
        assert_eq!(r1.status, 200);
        assert_eq!(r1.header("Content-Length"), Some("5"));
        assert_eq!(r1.header("Connection"), None);
        let (r2, n2) = parse_response(&out[n1..], true);
        assert_eq!(r2.status, 200);
        assert_eq!(r2.header("Transfer-Encoding"), None);
        let (r3, n3) = parse_response(&out[n1 + n2..], false);
        assert_eq!(r3.body, b"ok:/b");
        assert_eq!(n1 + n2 + n3, out.len(), "stray body bytes after HEAD");
        assert!(!h.stream().shutdown);
        assert_closed_once(&h.stats());
    }

    #[test]
    fn no_body_statuses_drop_app_data() {
        let app = StubApp::new()
            .route(
                "/204",
                Route::Acts(vec![head(204, None), Act::Data(b"x".to_vec()), Act::End]),
            )
            .route(
                "/304",
                Route::Acts(vec![
                    head(304, Some(3)),
                    Act::Data(b"abc".to_vec()),
                    Act::End,
                ]),
            );
        let input = cat(&[&get("/204"), &get("/304"), &get("/z")]);
        let mut h = Harness::new(app, MockStream::new(vec![data(&input)]));
        assert_eq!(h.run(), Progress::Open);
        let rs = parse_all(h.written());
        assert_eq!(rs.len(), 3);
        assert_eq!(rs[0].status, 204);
        assert_eq!(rs[0].header("Transfer-Encoding"), None);
        assert_eq!(rs[1].status, 304);
        assert_eq!(rs[2].body, b"ok:/z");
        assert_closed_once(&h.stats());
    }

    #[test]

    fn head_request_500_has_no_body() {
        for route in [Route::Acts(vec![Act::Fail]), Route::CallFails] {
            let app = StubApp::new().route("/fail", route);
            let input = cat(&[b"HEAD /fail HTTP/1.1\r\nHost: t\r\n\r\n", &get("/b")]);
            let mut h = Harness::new(app, MockStream::new(vec![data(&input)]));
            assert_eq!(h.run(), Progress::Open);
            let out = h.written().to_vec();
            let (r1, n1) = parse_response(&out, true);
            assert_eq!(r1.status, 500);
            assert!(
                out[n1..].starts_with(b"HTTP/1.1 200 OK\r\n"),
                "after the HEAD 500 head: {:?}",
                String::from_utf8_lossy(&out[n1..])
            );
        }
    }
}

/// Application failures before and after the head.
mod app_failures {
    use super::*;

    #[test]
    fn app_failure_before_head_gives_500_and_keeps_connection() {
        let app = StubApp::new()
            .route("/fail", Route::Acts(vec![Act::Fail]))
            .route("/callfail", Route::CallFails);
        let input = cat(&[&get("/fail"), &get("/callfail"), &get("/ok")]);
        let mut h = Harness::new(app, MockStream::new(vec![data(&input)]));
        assert_eq!(h.run(), Progress::Open);
        let rs = parse_all(h.written());
        assert_eq!(rs.len(), 3);
        for r in &rs[..2] {
            assert_eq!(r.status, 500);
            assert_eq!(r.header("Connection"), None);
            assert_eq!(r.body, b"Internal Server Error\n");
            assert_server_headers(r);
        }
        assert_eq!(rs[2].status, 200);
        assert_eq!(rs[2].body, b"ok:/ok");
        assert!(!h.stream().shutdown);
        assert_eq!(h.stats().closes.get(), 2);
        assert_closed_once(&h.stats());
    }

    #[test]
    fn app_failure_after_head_truncates_and_closes() {
        let app = StubApp::new().route(
            "/fail",
            Route::Acts(vec![
                head(200, None),
                Act::Data(b"first".to_vec()),
                Act::Data(pattern(2000, 5)),
                Act::Fail,
            ]),
        );
        let input = cat(&[&get("/fail"), &get("/next")]);
        let mut h = Harness::new(app, MockStream::new(vec![data(&input), In::Eof]));
        assert_eq!(h.run(), Progress::Closed);
        let (r, used) = parse_response(h.written(), false);
        assert_eq!(used, h.written().len());
        assert_eq!(r.status, 200);
        assert!(r.is_chunked());
        assert!(!r.complete, "a failed response must not look complete");
        assert_eq!(r.body, cat(&[b"first", &pattern(2000, 5)]));
        assert!(!h.written().ends_with(b"0\r\n\r\n"));
        assert!(h.stream().shutdown);
        assert_eq!(
            h.app.requests.len(),
            1,
            "pipelined request served after failure"
        );
        assert_eq!(h.stats().closes.get(), 1);
        assert_closed_once(&h.stats());
    }

    #[test]
    fn app_protocol_violations_close_connection() {
        let bad = [
            // A second head.
            vec![head(200, None), Act::Data(b"x".to_vec()), head(200, None)],
            // Data before the head.
            vec![Act::Data(b"x".to_vec())],
            // End without a head.
            vec![Act::End],
        ];
        for acts in bad {
            let app = StubApp::new().route("/bad", Route::Acts(acts.clone()));
            let input = cat(&[&get("/bad"), &get("/next")]);
            let mut h = Harness::new(app, MockStream::new(vec![data(&input), In::Eof]));
            assert_eq!(h.run(), Progress::Closed, "{acts:?}");
            assert!(h.stream().shutdown);
            assert_eq!(h.app.requests.len(), 1, "{acts:?}");
            assert_closed_once(&h.stats());
            assert_eq!(h.stats().closes.get(), 1);
        }
    }
}

/// Bodies longer or shorter than their Content-Length.
mod content_length_mismatch {
    use super::*;

    #[test]
    fn body_longer_than_content_length_is_cut_and_closes() {
        let app = StubApp::new().route(
            "/long",
            Route::Acts(vec![
                head(200, Some(5)),
                Act::Data(b"hel".to_vec()),
                Act::Data(b"lo world".to_vec()),
                Act::Data(pattern(3000, 1)),
                Act::End,
            ]),
        );
        let input = cat(&[&get("/long"), &get("/next")]);
        let mut h = Harness::new(app, MockStream::new(vec![data(&input), In::Eof]));
        assert_eq!(h.run(), Progress::Closed);
        let (r, used) = parse_response(h.written(), false);
        assert_eq!(r.body, b"hello");
        assert_eq!(used, h.written().len(), "bytes beyond Content-Length sent");
        assert!(h.stream().shutdown);
        assert_eq!(h.app.requests.len(), 1);
        assert_closed_once(&h.stats());
    }

    #[test]
    fn body_shorter_than_content_length_closes() {
        let app = StubApp::new().route(
            "/short",
            Route::Acts(vec![
                head(200, Some(10)),
                Act::Data(b"hello".to_vec()),
                Act::End,
            ]),
        );
        let input = cat(&[&get("/short"), &get("/next")]);
        let mut h = Harness::new(app, MockStream::new(vec![data(&input), In::Eof]));
        assert_eq!(h.run(), Progress::Closed);
        let (r, used) = parse_response(h.written(), false);
        assert_eq!(used, h.written().len());
        assert_eq!(r.body, b"hello");
        assert!(!r.complete);
        assert!(h.stream().shutdown);
        assert_eq!(h.app.requests.len(), 1);
        assert_closed_once(&h.stats());
    }

    /// `/a` answers with `route`; `GET /b` is pipelined behind it in the same
    /// read and the client keeps the connection open. A body that disagrees
    /// with its Content-Length ends the exchange all the same: the response
    /// ends at what was sent (`body`, `complete`), the write side is shut and
    /// the connection lingers until its deadline, and `/b` never reaches the
    /// app.
    fn mismatch_closes_before_pipelined(route: Route, body: &[u8], complete: bool) {
        let app = StubApp::new().route("/a", route);
        let input = cat(&[&get("/a"), &get("/b")]);
        let mut h = Harness::new(app, MockStream::new(vec![data(&input)]));
        assert_eq!(h.run(), Progress::Open);
        let (r, used) = parse_response(h.written(), false);
        assert_eq!(used, h.written().len(), "bytes after the first response");
        assert!(r.header("Content-Length").is_some());
        assert_eq!(r.body, body);
        assert_eq!(r.complete, complete);
        assert!(h.stream().shutdown, "write side not shut");
        assert_eq!(h.app.requests.len(), 1, "pipelined request reached the app");
        assert!(matches!(h.conn.state, State::Linger { .. }));
        let deadline = h.conn.deadline().expect("a linger deadline");
        assert!(deadline <= h.now + LINGER);
        h.dropped_exactly_at(deadline);
        assert_closed_once(&h.stats());
    }

    #[test]
    fn body_longer_than_content_length_closes_before_pipelined_request() {
        let acts = vec![head(200, Some(3)), Act::Data(b"hello".to_vec()), Act::End];
        mismatch_closes_before_pipelined(Route::Acts(acts.clone()), b"hel", true);
        mismatch_closes_before_pipelined(Route::Gen(acts), b"hel", true);
    }

    #[test]
    fn generator_too_long_with_more_items_closes_before_pipelined_request() {
        let route = Route::Gen(vec![
            head(200, Some(3)),
            Act::Data(b"he".to_vec()),
            Act::Data(b"llo".to_vec()),
            Act::Data(b"more".to_vec()),
            Act::Data(pattern(3000, 2)),
            Act::End,
        ]);
        mismatch_closes_before_pipelined(route, b"hel", true);
    }

    #[test]
    fn body_shorter_than_content_length_closes_before_pipelined_request() {
        let acts = vec![head(200, Some(10)), Act::Data(b"hello".to_vec()), Act::End];
        mismatch_closes_before_pipelined(Route::Acts(acts.clone()), b"hello", false);
        mismatch_closes_before_pipelined(Route::Gen(acts), b"hello", false);
    }
}

/// HTTP/1.0, `Connection` headers and close-delimited bodies.
mod persistence {
    use super::*;

    #[test]
    fn http10_without_keep_alive_closes() {
        let mut h = Harness::new(
            StubApp::new(),
            MockStream::new(vec![data(b"GET /x HTTP/1.0\r\n\r\n"), In::Eof]),
        );
        assert_eq!(h.run(), Progress::Closed);
        let rs = parse_all(h.written());
        assert_eq!(rs.len(), 1);
        assert_eq!(rs[0].header("Connection"), Some("close"));
        assert_eq!(rs[0].body, b"ok:/x");
        assert!(h.stream().shutdown);
        assert_eq!(h.app.requests[0].version, Version::Http10);
    }

    #[test]
    fn http10_keep_alive_stays_open() {
        let req = b"GET /x HTTP/1.0\r\nConnection: keep-alive\r\n\r\n";
        let mut h = Harness::new(StubApp::new(), MockStream::new(vec![data(req)]));
        assert_eq!(h.run(), Progress::Open);
        h.feed(vec![data(req)]);
        assert_eq!(h.run(), Progress::Open);
        let rs = parse_all(h.written());
        assert_eq!(rs.len(), 2);
        for r in &rs {
            assert_eq!(r.header("Connection"), Some("keep-alive"));
            assert_eq!(r.body, b"ok:/x");
        }
        assert!(!h.stream().shutdown);
    }

    #[test]
    fn http10_keep_alive_500_closes() {
        // The canned 500 has no `Connection: keep-alive`, so the connection
        // cannot persist for an HTTP/1.0 client.
        for route in [Route::Acts(vec![Act::Fail]), Route::CallFails] {
            let app = StubApp::new().route("/f", route);
            let input = cat(&[
                b"GET /f HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
                b"GET /x HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
            ]);
            let mut h = Harness::new(app, MockStream::new(vec![data(&input), In::Eof]));
            assert_eq!(h.run(), Progress::Closed);
            let rs = parse_all(h.written());
            assert_eq!(rs.len(), 1);
            assert_eq!(rs[0].status, 500);
            assert_eq!(rs[0].header("Connection"), Some("close"));
            assert!(h.stream().shutdown);
            assert_eq!(h.app.requests.len(), 1);
            assert_closed_once(&h.stats());
        }
    }

    #[test]
    fn http10_without_content_length_is_close_delimited() {
        let app = StubApp::new().route("/c", chunks(3, 10));
        let req = b"GET /c HTTP/1.0\r\nConnection: keep-alive\r\n\r\n";
        let mut h = Harness::new(app, MockStream::new(vec![data(req), In::Eof]));
        assert_eq!(h.run(), Progress::Closed);
        let (r, used) = parse_response(h.written(), false);
        assert_eq!(used, h.written().len());
        assert_eq!(r.header("Transfer-Encoding"), None);
        assert_eq!(r.header("Connection"), Some("close"));
        assert_eq!(r.body, chunks_body(3, 10));
        assert!(h.stream().shutdown);
        assert_closed_once(&h.stats());
    }

    #[test]
    fn connection_close_from_client_or_app() {
        // Client asks to close.
        let req = b"GET /x HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n";
        let mut h = Harness::new(StubApp::new(), MockStream::new(vec![data(req), In::Eof]));
        assert_eq!(h.run(), Progress::Closed);
        assert_eq!(
            parse_all(h.written())[0].header("Connection"),
            Some("close")
        );
        assert!(h.stream().shutdown);

        // The app asks to close.
        let app = StubApp::new().route(
            "/x",
            Route::Acts(vec![
                Act::Head {
                    status: 200,
                    content_length: Some(2),
                    close: true,
                    body_length: None,
                },
                Act::Data(b"hi".to_vec()),
                Act::End,
            ]),
        );
        let input = cat(&[&get("/x"), &get("/y")]);
        let mut h = Harness::new(app, MockStream::new(vec![data(&input), In::Eof]));
        assert_eq!(h.run(), Progress::Closed);
        let rs = parse_all(h.written());
        assert_eq!(rs.len(), 1);
        assert_eq!(rs[0].header("Connection"), Some("close"));
        assert_eq!(h.app.requests.len(), 1);

        // Keep-alive disabled in the settings.
        let settings = ConnSettings {
            keep_alive: Duration::ZERO,
            ..Default::default()
        };
        let mut h = Harness::with_settings(
            settings,
            StubApp::new(),
            MockStream::new(vec![data(&input), In::Eof]),
        );
        assert_eq!(h.run(), Progress::Closed);
        let rs = parse_all(h.written());
        assert_eq!(rs.len(), 1);
        assert_eq!(rs[0].header("Connection"), Some("close"));
    }
}

/// The client closes its side after a complete request.
mod eof_after_request {
    use super::*;

    #[test]
    fn eof_after_request_still_answers() {
        let app = StubApp::new().route("/big", chunks(20, 4096));
        let input = vec![data(&get("/big")), In::Eof];
        // A slow writer, so the EOF is met while output is still queued.
        let stream = MockStream::new(input).per_call(1000).alternate();
        let settings = ConnSettings {
            high_water: 4096,
            ..Default::default()
        };
        let mut h = Harness::with_settings(settings, app, stream);
        assert_eq!(h.run(), Progress::Closed);
        let (r, used) = parse_response(h.written(), false);
        assert_eq!(used, h.written().len());
        assert!(r.complete);
        assert_eq!(r.body, chunks_body(20, 4096));
        assert!(h.stream().shutdown);
        let stats = h.stats();
        drop(h);
        assert_closed_once(&stats);
        assert_eq!(stats.closes.get(), 1);
    }
}

/// Head, body, idle and stalled-client timeouts.
mod timeouts {
    use super::*;

    #[test]
    fn partial_head_times_out_with_408() {
        let mut h = Harness::new(StubApp::new(), MockStream::new(vec![data(b"GET / HT")]));
        let fresh = h.conn.deadline().expect("fresh conn deadline");
        assert_eq!(fresh, h.now + Duration::from_secs(10));
        assert_eq!(h.run(), Progress::Open);
        let deadline = h.conn.deadline().expect("head deadline");
        assert_deadline_near(deadline, h.now, ConnSettings::default().header_timeout);
        // More bytes of the same head do not extend it.
        h.feed(vec![data(b"TP/1.1\r\n")]);
        h.now += Duration::from_secs(3);
        assert_eq!(h.run(), Progress::Open);
        assert_eq!(h.conn.deadline(), Some(deadline));

        // Not yet.
        h.now = deadline - Duration::from_millis(1);
        assert_eq!(h.conn.on_timeout(&h.ctx()), Progress::Open);
        assert!(h.written().is_empty());

        h.now = deadline;
        // The server drives after on_timeout returns Open.
        assert_eq!(h.conn.on_timeout(&h.ctx()), Progress::Open);
        h.feed(vec![In::Eof]);
        assert_eq!(h.run(), Progress::Closed);
        assert_single_error(&h, 408);
    }

    #[test]
    fn idle_keep_alive_times_out_silently() {
        let mut h = Harness::new(StubApp::new(), MockStream::new(vec![data(&get("/"))]));
        assert_eq!(h.run(), Progress::Open);
        let written = h.written().len();
        let deadline = h.conn.deadline().expect("keep-alive deadline");
        assert_deadline_near(deadline, h.now, ConnSettings::default().keep_alive);
        h.dropped_exactly_at(deadline);
        assert_eq!(h.written().len(), written);
        assert!(!h.stream().shutdown);
        assert_closed_once(&h.stats());
    }

    #[test]
    fn stalled_body_times_out_with_408() {
        let mut h = Harness::new(
            StubApp::new(),
            MockStream::new(vec![data(
                b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\nabc",
            )]),
        );
        assert_eq!(h.run(), Progress::Open);
        let socket_timeout = ConnSettings::default().socket_timeout;
        let first = h.conn.deadline().expect("no deadline for a stalled body");
        assert_deadline_near(first, h.now, socket_timeout);
        // A byte of progress pushes the stall deadline back.
        h.now += Duration::from_secs(20);
        h.feed(vec![data(b"d")]);
        assert_eq!(h.run(), Progress::Open);
        let deadline = h.conn.deadline().expect("deadline");
        assert!(deadline > first);
        assert_deadline_near(deadline, h.now, socket_timeout);
        h.now = deadline;
        assert_eq!(h.conn.on_timeout(&h.ctx()), Progress::Open);
        h.feed(vec![In::Eof]);
        assert_eq!(h.run(), Progress::Closed);
        assert_single_error(&h, 408);
    }

    #[test]
    fn client_not_reading_is_dropped_and_response_closed() {
        let app = StubApp::new().route("/big", slow(chunks(100, 4096)));
        let stream = MockStream::new(vec![data(&get("/big"))]).block_after(10_000);
        let mut h = Harness::new(app, stream);
        assert_eq!(h.run(), Progress::Open);
        assert!(matches!(h.conn.state, State::Respond(_)));
        let deadline = h.conn.deadline().expect("stall deadline while writing");
        assert_deadline_near(deadline, h.now, ConnSettings::default().socket_timeout);
        h.dropped_exactly_at(deadline);
        assert_eq!(h.stats().closes.get(), 1);
        let stats = h.stats();
        drop(h);
        assert_closed_once(&stats);
    }

    #[test]

    fn pipelined_partial_head_times_out_with_408() {
        let input = cat(&[&get("/a"), b"GET /b HT"]);
        let mut h = Harness::new(StubApp::new(), MockStream::new(vec![data(&input)]));
        assert_eq!(h.run(), Progress::Open);
        let before = h.written().len();
        assert_eq!(parse_all(h.written()).len(), 1);
        let deadline = h.conn.deadline().expect("deadline");
        h.now = deadline;
        // Expected: like any partial head, 408 (Open, then drive flushes it).
        // Got: treated as an idle keep-alive conn, closed with nothing sent.
        assert_eq!(
            h.conn.on_timeout(&h.ctx()),
            Progress::Open,
            "closed silently"
        );
        h.feed(vec![In::Eof]);
        assert_eq!(h.run(), Progress::Closed);
        let rs = parse_all(&h.written()[before..]);
        assert_eq!(rs.len(), 1);
        assert_eq!(rs[0].status, 408);
    }
}

/// Draining: finish what is in progress, then close.
mod draining {
    use super::*;

    #[test]
    fn drain_closes_idle_connections() {
        // After a keep-alive response.
        let mut h = Harness::new(StubApp::new(), MockStream::new(vec![data(&get("/"))]));
        assert_eq!(h.run(), Progress::Open);
        let n = h.written().len();
        assert_eq!(h.begin_drain(), Progress::Closed);
        assert_eq!(h.written().len(), n);
        assert_closed_once(&h.stats());
    }

    #[test]
    fn drain_serves_a_next_request_already_in_the_socket_buffer() {
        // Answered one request; the next one arrived, but its readiness
        // event is not handled yet when the drain begins. Closing now
        // would make the kernel reset the connection (unread input).
        let mut h = Harness::new(StubApp::new(), MockStream::new(vec![data(&get("/one"))]));
        assert_eq!(h.run(), Progress::Open);
        h.feed(vec![data(&get("/two"))]);
        assert_ne!(h.begin_drain(), Progress::Closed);
        let rs = parse_all(h.written());
        assert_eq!(rs.len(), 2, "{}", String::from_utf8_lossy(h.written()));
        assert_eq!(rs[0].header("Connection"), None);
        assert_eq!(rs[1].body, b"ok:/two");
        assert_eq!(rs[1].header("Connection"), Some("close"));
        assert!(h.stream().shutdown, "closes after it, half-close first");
        h.feed(vec![In::Eof]);
        assert_eq!(h.run(), Progress::Closed);
        assert_eq!(h.app.requests.len(), 2);

        // Nothing pending (the read says WouldBlock): closed at once, silently.
        let mut h = Harness::new(
            StubApp::new(),
            MockStream::new(vec![data(&get("/one")), In::WouldBlock]),
        );
        assert_eq!(h.run(), Progress::Open);
        let n = h.written().len();
        assert_eq!(h.begin_drain(), Progress::Closed);
        assert_eq!(h.written().len(), n);
        assert_eq!(h.app.requests.len(), 1);

        // The client has closed its side: closed quietly too.
        let mut h = Harness::new(StubApp::new(), MockStream::new(vec![data(&get("/one"))]));
        assert_eq!(h.run(), Progress::Open);
        let n = h.written().len();
        h.feed(vec![In::Eof]);
        assert_eq!(h.begin_drain(), Progress::Closed);
        assert_eq!(h.written().len(), n);
    }

    #[test]
    fn drain_serves_the_first_request_of_a_fresh_connection() {
        // Accepted, request not here yet: it arrives after the drain began.
        let mut h = Harness::new(StubApp::new(), MockStream::new(vec![]));
        assert_eq!(h.run(), Progress::Open);
        assert_eq!(h.begin_drain(), Progress::Open);
        h.draining = true;
        assert_eq!(h.run(), Progress::Open);
        h.feed(vec![data(&get("/late")), In::Eof]);
        assert_eq!(h.run(), Progress::Closed);
        let rs = parse_all(h.written());
        assert_eq!(rs.len(), 1);
        assert_eq!(rs[0].body, b"ok:/late");
        assert_eq!(rs[0].header("Connection"), Some("close"));

        // One whose request never comes closes after the grace, silently.
        let mut h = Harness::new(StubApp::new(), MockStream::new(vec![]));
        assert_eq!(h.run(), Progress::Open);
        assert_eq!(h.begin_drain(), Progress::Open);
        h.draining = true;
        let deadline = h.conn.deadline().expect("a deadline");
        assert!(deadline <= h.now + DRAIN_FRESH_GRACE);
        h.now = deadline;
        assert_eq!(h.conn.on_timeout(&h.ctx()), Progress::Closed);
        assert!(h.written().is_empty());
    }

    #[test]
    fn drain_mid_body_finishes_with_connection_close() {
        let mut h = Harness::new(
            StubApp::new(),
            MockStream::new(vec![data(
                b"POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: 6\r\n\r\nabc",
            )]),
        );
        assert_eq!(h.run(), Progress::Open);
        assert_eq!(h.begin_drain(), Progress::Open);
        h.draining = true;
        h.feed(vec![data(b"def"), In::Eof]);
        assert_eq!(h.run(), Progress::Closed);
        let rs = parse_all(h.written());
        assert_eq!(rs.len(), 1);
        assert_eq!(rs[0].body, b"ok:/p");
        assert_eq!(rs[0].header("Connection"), Some("close"));
        assert_eq!(h.app.requests[0].body, b"abcdef");
    }

    #[test]
    fn drain_mid_response_finishes_and_closes() {
        // The head went out before draining started; the rest is delivered and
        // the connection then closes instead of serving the pipelined request.
        let settings = ConnSettings {
            high_water: 4096,
            ..Default::default()
        };
        let app = StubApp::new().route("/big", chunks(10, 4096));
        let input = cat(&[&get("/big"), &get("/next")]);
        let stream = MockStream::new(vec![data(&input)]).block_after(5000);
        let mut h = Harness::with_settings(settings, app, stream);
        assert_eq!(h.run(), Progress::Open);
        assert_eq!(h.begin_drain(), Progress::Open);
        h.draining = true;
        h.stream_mut().block_after = None;
        h.feed(vec![In::Eof]);
        assert_eq!(h.run(), Progress::Closed);
        let (r, used) = parse_response(h.written(), false);
        assert_eq!(used, h.written().len());
        assert!(r.complete);
        assert_eq!(r.body, chunks_body(10, 4096));
        assert_eq!(h.app.requests.len(), 1);
        assert_closed_once(&h.stats());
    }

    #[test]

    fn drain_head_written_after_drain_says_close() {
        // Calibrate: the exact size L of the queued chunked response to /c.
        let route = Route::Acts(vec![head(200, None), Act::Data(pattern(100, 0)), Act::End]);
        let mut cal = Harness::new(
            StubApp::new().route("/c", route.clone()),
            MockStream::new(vec![data(&get("/c"))]).block_after(0),
        );
        cal.run();
        let l = cal.conn.out.len();
        assert!(l > 100);

        // With high_water = L - 2, the 5-byte last-chunk pushes the queue over
        // high water right as /c ends, so /next is dispatched but its head is
        // not pulled yet.
        let settings = ConnSettings {
            high_water: l - 2,
            ..Default::default()
        };
        let input = cat(&[&get("/c"), &get("/next")]);
        let stream = MockStream::new(vec![data(&input)]).block_after(0);
        let mut h = Harness::with_settings(settings, StubApp::new().route("/c", route), stream);
        assert_eq!(h.run(), Progress::Open);
        assert_eq!(h.app.requests.len(), 2);
        assert!(
            matches!(&h.conn.state, State::Respond(a) if a.framing.is_none()),
            "setup: the second head must not be pulled yet"
        );
        assert_eq!(h.begin_drain(), Progress::Open);
        h.draining = true;
        h.stream_mut().block_after = None;
        h.feed(vec![In::Eof]);
        assert_eq!(h.run(), Progress::Closed);
        let rs = parse_all(h.written());
        assert_eq!(rs.len(), 2);
        assert_eq!(rs[0].header("Connection"), None);
        assert_eq!(rs[1].body, b"ok:/next");
        assert_eq!(
            rs[1].header("Connection"),
            Some("close"),
            "head written while draining, then the connection closed"
        );
        assert_closed_once(&h.stats());
    }

    #[test]

    fn drain_flushes_queued_response() {
        // The response is fully pulled (End seen, state back to Head) but only
        // partly written when the drain starts.
        let body = pattern(20_000, 9);
        let app = StubApp::new().route("/f", fixed(&body));
        let stream = MockStream::new(vec![data(&get("/f"))]).block_after(1000);
        let mut h = Harness::new(app, stream);
        assert_eq!(h.run(), Progress::Open);
        assert_eq!(h.written().len(), 1000);
        assert_eq!(h.begin_drain(), Progress::Open, "output still queued");
        h.draining = true;
        h.stream_mut().block_after = None;
        h.run();
        let (r, used) = parse_response(h.written(), false);
        assert_eq!(used, h.written().len());
        assert!(
            r.complete,
            "response truncated at {} of {} body bytes",
            r.body.len(),
            body.len()
        );
        assert_eq!(r.body, body);
    }
}

/// Dropping a connection closes its response once.
mod dropping {
    use super::*;

    #[test]
    fn drop_mid_response_closes_once() {
        let app = StubApp::new().route("/big", chunks(100, 4096));
        let stream = MockStream::new(vec![data(&get("/big"))]).block_after(3000);
        let mut h = Harness::new(app, stream);
        assert_eq!(h.run(), Progress::Open);
        assert!(matches!(h.conn.state, State::Respond(_)));
        assert_eq!(h.stats().closes.get(), 0);
        let Harness { conn, app, .. } = h;
        drop(conn);
        assert_eq!(app.stats.closes.get(), 1);
        assert_closed_once(&app.stats);
    }

    #[test]
    fn drop_after_timeout_or_error_does_not_close_again() {
        // A finished keep-alive connection.
        let mut h = Harness::new(StubApp::new(), MockStream::new(vec![data(&get("/"))]));
        assert_eq!(h.run(), Progress::Open);
        let stats = h.stats();
        drop(h);
        assert_eq!(stats.closes.get(), 1);
        assert_closed_once(&stats);

        // Write failure mid-response, then drop.
        let app = StubApp::new().route("/big", chunks(100, 4096));
        let stream =
            MockStream::new(vec![data(&get("/big"))]).fail_after(5000, ErrorKind::BrokenPipe);
        let mut h = Harness::new(app, stream);
        assert_eq!(h.run(), Progress::Closed);
        // Driving a closed connection is harmless.
        assert_eq!(h.drive(), Progress::Closed);
        let stats = h.stats();
        drop(h);
        assert_eq!(stats.closes.get(), 1);
        assert_closed_once(&stats);
    }
}

/// File bodies (`Event::File`, `Stream::sendfile`).
mod file_bodies {
    use super::*;

    /// A response whose body is `len` bytes of a file holding `data`, from
    /// `offset`; `content_length` is the app's header, `body_length` what the
    /// adapter measured.
    fn file_route(
        data: &[u8],
        offset: u64,
        len: u64,
        content_length: Option<u64>,
        body_length: Option<u64>,
    ) -> Route {
        Route::Acts(vec![
            Act::Head {
                status: 200,
                content_length,
                close: false,
                body_length,
            },
            Act::File {
                data: data.to_vec(),
                offset,
                len,
            },
            Act::End,
        ])
    }

    const FILE_SIZE: usize = 300_000;
    const FILE_OFFSET: usize = 1234;

    /// The usual file route: the rest of the file from an offset, its length
    /// known to the adapter only.
    fn file_app() -> StubApp {
        let data = pattern(FILE_SIZE, 9);
        let rest = (FILE_SIZE - FILE_OFFSET) as u64;
        StubApp::new().route(
            "/file",
            file_route(&data, FILE_OFFSET as u64, rest, None, Some(rest)),
        )
    }

    fn file_expected() -> Vec<u8> {
        pattern(FILE_SIZE, 9)[FILE_OFFSET..].to_vec()
    }

    #[test]
    fn file_body_with_measured_length() {
        let mut h = Harness::new(file_app(), MockStream::new(vec![data(&get("/file"))]));
        assert_eq!(h.run(), Progress::Open);
        let (r, used) = parse_response(h.written(), false);
        assert_eq!(used, h.written().len());
        assert!(r.complete && !r.is_chunked());
        let want = file_expected();
        assert_eq!(r.header("Content-Length"), Some(&*want.len().to_string()));
        assert_eq!(r.header("Connection"), None);
        assert!(r.body == want, "file body differs");
        assert!(!h.conn.wants_write());
        assert!(h.conn.is_idle());
        assert_closed_once(&h.stats());
    }

    #[test]
    fn file_body_short_writes_are_byte_identical() {
        let mut whole = Harness::new(file_app(), MockStream::new(vec![data(&get("/file"))]));
        assert_eq!(whole.run(), Progress::Open);
        for stream in [
            MockStream::new(vec![data(&get("/file"))]).per_call(7777),
            MockStream::new(vec![data(&get("/file"))])
                .per_call(1000)
                .alternate(),
        ] {
            let mut h = Harness::new(file_app(), stream);
            assert_eq!(h.run(), Progress::Open);
            assert!(h.written() == whole.written(), "output differs");
            assert!(h.stream().write_calls > 30);
            assert_closed_once(&h.stats());
        }
    }

    #[test]
    fn file_body_wouldblock_midway_waits_for_writable() {
        let stream = MockStream::new(vec![data(&get("/file"))]).block_after(100_000);
        let mut h = Harness::new(file_app(), stream);
        assert_eq!(h.run(), Progress::Open);
        assert_eq!(h.written().len(), 100_000);
        // Nothing is queued in user space: the file part itself asks for
        // writability and runs the stall clock.
        assert!(h.conn.out.is_empty());
        assert!(h.conn.wants_write(), "no write interest while a file waits");
        let deadline = h
            .conn
            .deadline()
            .expect("stall deadline while sending a file");
        assert_deadline_near(deadline, h.now, ConnSettings::default().socket_timeout);
        assert_eq!(h.stats().closes.get(), 0, "closed before the last byte");
        // Writable again.
        h.stream_mut().block_after = None;
        assert_eq!(h.run(), Progress::Open);
        let (r, _) = parse_response(h.written(), false);
        assert!(r.complete && r.body == file_expected());
        assert!(!h.conn.wants_write());
        assert_closed_once(&h.stats());
    }

    #[test]
    fn file_body_broken_pipe_midway_closes_once() {
        for kind in [ErrorKind::BrokenPipe, ErrorKind::ConnectionReset] {
            let stream = MockStream::new(vec![data(&get("/file"))]).fail_after(50_000, kind);
            let mut h = Harness::new(file_app(), stream);
            assert_eq!(h.run(), Progress::Closed, "{kind:?}");
            assert_eq!(h.written().len(), 50_000);
            assert_eq!(h.stats().closes.get(), 1, "{kind:?}");
            let stats = h.stats();
            drop(h);
            assert_closed_once(&stats);
        }
    }

    #[test]
    fn file_body_client_gone_closes_once() {
        // The connection is dropped (server shutdown, client reset seen by
        // the loop) mid-file.
        let stream = MockStream::new(vec![data(&get("/file"))]).block_after(10_000);
        let mut h = Harness::new(file_app(), stream);
        assert_eq!(h.run(), Progress::Open);
        let Harness { conn, app, .. } = h;
        drop(conn);
        assert_eq!(app.stats.closes.get(), 1);
        assert_closed_once(&app.stats);

        // The client stops reading: the stall timeout drops it.
        let stream = MockStream::new(vec![data(&get("/file"))]).block_after(10_000);
        let mut h = Harness::new(file_app(), stream);
        assert_eq!(h.run(), Progress::Open);
        let deadline = h.conn.deadline().expect("stall deadline");
        h.dropped_exactly_at(deadline);
        assert_eq!(h.stats().closes.get(), 1);
        let stats = h.stats();
        drop(h);
        assert_closed_once(&stats);
    }

    #[test]
    fn file_body_then_pipelined_keep_alive_request() {
        let input = cat(&[&get("/file"), &get("/after"), &get("/file")]);
        let mut h = Harness::new(
            file_app(),
            MockStream::new(vec![data(&input)]).per_call(50_000),
        );
        assert_eq!(h.run(), Progress::Open);
        let rs = parse_all(h.written());
        assert_eq!(rs.len(), 3);
        assert!(rs[0].complete && rs[0].body == file_expected());
        assert_eq!(rs[1].body, b"ok:/after");
        assert!(rs[2].complete && rs[2].body == file_expected());
        assert_eq!(h.app.requests.len(), 3);
        assert!(!h.stream().shutdown);
        assert_closed_once(&h.stats());
    }

    #[test]
    fn file_shorter_than_its_length_cuts_the_connection() {
        // The app promised 10000 bytes; the file has 4000 (truncated after it
        // was measured).
        let data4k = pattern(4000, 1);
        for (content_length, body_length) in [(Some(10_000), None), (None, Some(10_000))] {
            let app = StubApp::new().route(
                "/short",
                file_route(&data4k, 0, 10_000, content_length, body_length),
            );
            let input = cat(&[&get("/short"), &get("/next")]);
            let mut h = Harness::new(app, MockStream::new(vec![data(&input), In::Eof]));
            assert_eq!(h.run(), Progress::Closed);
            let (r, used) = parse_response(h.written(), false);
            assert_eq!(used, h.written().len(), "bytes after the cut body");
            assert_eq!(r.header("Content-Length"), Some("10000"));
            assert!(!r.complete);
            assert_eq!(r.body, data4k);
            assert!(h.stream().shutdown, "connection not cut");
            assert_eq!(h.app.requests.len(), 1, "request after the cut served");
            assert_closed_once(&h.stats());
        }
    }

    #[test]
    fn file_longer_than_content_length_is_cut_to_it() {
        let body = pattern(5000, 2);
        let app = StubApp::new().route("/f", file_route(&body, 100, 4900, Some(1000), None));
        let input = cat(&[&get("/f"), &get("/next")]);
        let mut h = Harness::new(app, MockStream::new(vec![data(&input)]));
        assert_eq!(h.run(), Progress::Open);
        let rs = parse_all(h.written());
        assert_eq!(rs.len(), 2);
        assert_eq!(rs[0].header("Content-Length"), Some("1000"));
        assert_eq!(rs[0].body, &body[100..1100]);
        assert_eq!(rs[1].body, b"ok:/next");
        assert_closed_once(&h.stats());
    }

    #[test]
    fn file_body_in_chunked_and_close_delimited_framing() {
        // write() data before the file: no length known, so chunked (1.1) or
        // close-delimited (1.0).
        let file = pattern(70_000, 4);
        let acts = vec![
            head(200, None),
            Act::Data(b"prefix".to_vec()),
            Act::File {
                data: file.clone(),
                offset: 0,
                len: file.len() as u64,
            },
            Act::Data(b"suffix".to_vec()),
            Act::End,
        ];
        let mut want = b"prefix".to_vec();
        want.extend_from_slice(&file);
        want.extend_from_slice(b"suffix");

        let app = StubApp::new().route("/c", Route::Acts(acts.clone()));
        let input = cat(&[&get("/c"), &get("/next")]);
        let mut h = Harness::new(app, MockStream::new(vec![data(&input)]).per_call(3000));
        assert_eq!(h.run(), Progress::Open);
        let rs = parse_all(h.written());
        assert_eq!(rs.len(), 2);
        assert!(rs[0].is_chunked() && rs[0].complete);
        assert!(rs[0].body == want);
        assert_eq!(rs[1].body, b"ok:/next");

        let app = StubApp::new().route("/c", Route::Acts(acts));
        let input = b"GET /c HTTP/1.0\r\n\r\n".to_vec();
        let mut h = Harness::new(app, MockStream::new(vec![data(&input), In::Eof]));
        assert_eq!(h.run(), Progress::Closed);
        let (r, _) = parse_response(h.written(), false);
        assert!(r.body == want);
        assert!(h.stream().shutdown);
        assert_closed_once(&h.stats());
    }

    #[test]
    fn file_body_length_keeps_http10_alive() {
        let input = b"GET /file HTTP/1.0\r\nConnection: keep-alive\r\n\r\n".to_vec();
        let mut h = Harness::new(file_app(), MockStream::new(vec![data(&input)]));
        assert_eq!(h.run(), Progress::Open);
        let (r, _) = parse_response(h.written(), false);
        assert_eq!(r.header("Connection"), Some("keep-alive"));
        assert!(r.complete && r.body == file_expected());
        assert!(!h.stream().shutdown);
    }

    #[test]
    fn file_body_not_sent_for_head_204_304() {
        let body = pattern(5000, 5);
        let mut app = file_app();
        for status in [204, 304] {
            app = app.route(
                &format!("/{status}"),
                Route::Acts(vec![
                    Act::Head {
                        status,
                        content_length: None,
                        close: false,
                        body_length: Some(5000),
                    },
                    Act::File {
                        data: body.clone(),
                        offset: 0,
                        len: 5000,
                    },
                    Act::End,
                ]),
            );
        }
        let input = cat(&[
            b"HEAD /file HTTP/1.1\r\nHost: t\r\n\r\n",
            &get("/204"),
            &get("/304"),
            &get("/b"),
        ]);
        let mut h = Harness::new(app, MockStream::new(vec![data(&input)]));
        assert_eq!(h.run(), Progress::Open);
        let out = h.written().to_vec();
        let (r1, n1) = parse_response(&out, true);
        // A HEAD response says the length a GET would get.
        let rest = (FILE_SIZE - FILE_OFFSET).to_string();
        assert_eq!(r1.header("Content-Length"), Some(&*rest));
        let (r2, n2) = parse_response(&out[n1..], false);
        assert_eq!(r2.status, 204);
        assert_eq!(r2.header("Content-Length"), None);
        let (r3, n3) = parse_response(&out[n1 + n2..], false);
        assert_eq!(r3.status, 304);
        assert_eq!(r3.header("Content-Length"), None);
        let (r4, n4) = parse_response(&out[n1 + n2 + n3..], false);
        assert_eq!(r4.body, b"ok:/b");
        assert_eq!(n1 + n2 + n3 + n4, out.len(), "stray file bytes");
        assert_closed_once(&h.stats());
    }

    #[test]
    fn large_file_yields_to_other_connections() {
        let size = FILE_BUDGET as usize * 2 + 5000;
        let body = pattern(size, 6);
        let app = StubApp::new().route(
            "/big",
            file_route(&body, 0, size as u64, Some(size as u64), None),
        );
        let mut h = Harness::new(app, MockStream::new(vec![data(&get("/big"))]));
        assert_eq!(h.drive(), Progress::Yield);
        let first = h.written().len();
        assert!(first < size / 2 + 1000, "{first} bytes in one drive");
        assert_eq!(h.run(), Progress::Open);
        let (r, _) = parse_response(h.written(), false);
        assert!(r.complete && r.body == body);
        assert_closed_once(&h.stats());
    }
}
