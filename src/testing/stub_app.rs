//! A scripted application: each request target maps to a [`Route`], a list
//! of what `Response::next` yields; the app records every request it gets
//! and counts how its responses are used, so tests can assert that each was
//! closed exactly once and never pulled after it ended.

use std::cell::Cell;
use std::collections::{HashMap, VecDeque};
use std::io::Write;
use std::rc::Rc;

use crate::http::body::{self, BodyFraming};
use crate::http::parse::Version;
use crate::serve::app::{self, App, AppFailure, Event, FileBody, Request, ResponseHead};
use crate::testing::is_tchar;

/// One scripted result of `Response::next`.
#[derive(Debug, Clone)]
pub enum Act {
    /// A head with `Content-Type: text/plain` and the Content-Length given.
    Head {
        status: u16,
        content_length: Option<u64>,
        close: bool,
        /// `ResponseHead::body_length`: known to the adapter, not the app.
        body_length: Option<u64>,
    },
    /// Exactly this head.
    HeadAs(ResponseHead),
    Data(Vec<u8>),
    /// `Event::File` over a temporary file holding `data`.
    File {
        data: Vec<u8>,
        offset: u64,
        len: u64,
    },
    Fail,
    End,
}

pub fn head(status: u16, content_length: Option<u64>) -> Act {
    Act::Head {
        status,
        content_length,
        close: false,
        body_length: None,
    }
}

#[derive(Debug, Clone)]
pub enum Route {
    /// Every event at hand (`ready()` is true), like a WSGI list body.
    Acts(Vec<Act>),
    /// A generator: `ready()` is false, each `next()` runs app code.
    Gen(Vec<Act>),
    /// `App::call` itself fails.
    CallFails,
}

/// The same events, produced by a generator.
pub fn slow(route: Route) -> Route {
    match route {
        Route::Acts(acts) => Route::Gen(acts),
        other => other,
    }
}

/// Fixed body with Content-Length.
pub fn fixed(body: &[u8]) -> Route {
    Route::Acts(vec![
        head(200, Some(body.len() as u64)),
        Act::Data(body.to_vec()),
        Act::End,
    ])
}

/// Deterministic, position-dependent bytes so reordering or loss shows.
pub fn pattern(len: usize, seed: usize) -> Vec<u8> {
    (0..len)
        .map(|i| ((i * 7 + seed * 13) % 251) as u8)
        .collect()
}

/// `n` chunks of `size` bytes, no Content-Length (chunked on HTTP/1.1).
pub fn chunks(n: usize, size: usize) -> Route {
    let mut acts = vec![head(200, None)];
    acts.extend((0..n).map(|i| Act::Data(pattern(size, i))));
    acts.push(Act::End);
    Route::Acts(acts)
}

/// The body [`chunks`] sends.
pub fn chunks_body(n: usize, size: usize) -> Vec<u8> {
    (0..n).flat_map(|i| pattern(size, i)).collect()
}

/// What the app was asked and how its responses were used.
#[derive(Default)]
pub struct Stats {
    pub calls: Cell<usize>,
    /// Responses handed to the connection.
    pub responses: Cell<usize>,
    pub nexts: Cell<usize>,
    pub closes: Cell<usize>,
    /// next() after close/End/Fail, or close() twice on one response.
    pub misuse: Cell<usize>,
    /// A response failed after it had produced its head.
    pub failed_after_head: Cell<bool>,
}

/// Every response the app produced was closed exactly once, and never
/// pulled after it ended or was closed.
pub fn assert_closed_once(stats: &Stats) {
    assert_eq!(
        stats.closes.get(),
        stats.responses.get(),
        "close() calls vs responses"
    );
    assert_eq!(
        stats.misuse.get(),
        0,
        "next() after end/close or double close"
    );
}

/// A request as the app got it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recorded {
    pub method: Vec<u8>,
    pub target: Vec<u8>,
    pub version: Version,
    pub headers: Vec<(Vec<u8>, Vec<u8>)>,
    pub body: Vec<u8>,
}

/// The route of a target no `route()` names: it gets the request and the
/// number of calls before it.
pub(crate) type Fallback = fn(&Recorded, usize) -> Route;

/// 200 with `ok:<target>` and a Content-Length.
fn echo_target(request: &Recorded, _call: usize) -> Route {
    let mut body = b"ok:".to_vec();
    body.extend_from_slice(&request.target);
    fixed(&body)
}

pub struct StubApp {
    pub routes: HashMap<Vec<u8>, Route>,
    pub fallback: Fallback,
    pub requests: Vec<Recorded>,
    pub stats: Rc<Stats>,
}

impl Default for StubApp {
    fn default() -> Self {
        Self::new()
    }
}

impl StubApp {
    pub fn new() -> Self {
        StubApp {
            routes: HashMap::new(),
            fallback: echo_target,
            requests: Vec::new(),
            stats: Rc::new(Stats::default()),
        }
    }

    pub fn route(mut self, path: &str, route: Route) -> Self {
        self.routes.insert(path.as_bytes().to_vec(), route);
        self
    }

    pub fn fallback(mut self, fallback: Fallback) -> Self {
        self.fallback = fallback;
        self
    }
}

/// The request as the connection hands it over: method a token, spans
/// inside the head, a framing `body::analyze` accepts. Returns that framing,
/// which the body must match.
fn check_request(request: &Request<'_>) -> BodyFraming {
    assert!(!request.method.is_empty() && request.method.iter().all(|&b| is_tchar(b)));
    assert!(!request.target.is_empty());
    for h in request.headers {
        let _ = h.name.get(request.head);
        let _ = h.value.get(request.head);
        assert!((h.value.end as usize) <= request.head.len());
    }
    match body::analyze(request.head, request.version, request.headers) {
        Ok(info) => info.framing,
        Err(e) => panic!("app called for a request analyze refuses: {e:?}"),
    }
}

/// The body is the whole body: as long as the framing said.
fn check_body(framing: BodyFraming, body: &[u8]) {
    match framing {
        BodyFraming::Length(n) => assert_eq!(body.len() as u64, n, "body length"),
        BodyFraming::Empty => assert!(body.is_empty(), "body without framing"),
        BodyFraming::Chunked => {}
    }
}

impl App for StubApp {
    type Response = StubResponse;

    fn call(&mut self, request: Request<'_>) -> Result<StubResponse, AppFailure> {
        let call = self.stats.calls.get();
        bump(&self.stats.calls);
        let framing = check_request(&request);
        let head = request.head;
        let recorded = Recorded {
            method: request.method.to_vec(),
            target: request.target.to_vec(),
            version: request.version,
            headers: request
                .headers
                .iter()
                .map(|h| (h.name.get(head).to_vec(), h.value.get(head).to_vec()))
                .collect(),
            body: request.body.into_vec().expect("request body"),
        };
        check_body(framing, &recorded.body);
        let route = match self.routes.get(request.target) {
            Some(route) => route.clone(),
            None => (self.fallback)(&recorded, call),
        };
        self.requests.push(recorded);
        let (acts, ready) = match route {
            Route::CallFails => return Err(AppFailure),
            Route::Acts(acts) => (acts, true),
            Route::Gen(acts) => (acts, false),
        };
        bump(&self.stats.responses);
        Ok(StubResponse {
            acts: acts.into(),
            ready,
            stats: self.stats.clone(),
            head_given: false,
            finished: false,
            closed: false,
        })
    }
}

pub struct StubResponse {
    acts: VecDeque<Act>,
    ready: bool,
    stats: Rc<Stats>,
    head_given: bool,
    finished: bool,
    closed: bool,
}

fn bump(c: &Cell<usize>) {
    c.set(c.get() + 1);
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        204 => "No Content",
        304 => "Not Modified",
        404 => "Not Found",
        _ => "Whatever",
    }
}

/// The head `Act::Head` stands for.
fn head_of(
    status: u16,
    content_length: Option<u64>,
    close: bool,
    body_length: Option<u64>,
) -> ResponseHead {
    let mut header_lines = b"Content-Type: text/plain\r\n".to_vec();
    if let Some(n) = content_length {
        header_lines.extend_from_slice(format!("Content-Length: {n}\r\n").as_bytes());
    }
    ResponseHead {
        status,
        status_line: format!("{status} {}", reason(status)).into_bytes(),
        header_lines,
        content_length,
        has_date: false,
        has_server: false,
        close,
        body_length,
    }
}

impl app::Response for StubResponse {
    type Chunk = Vec<u8>;

    fn next(&mut self) -> Result<Event<Vec<u8>>, AppFailure> {
        bump(&self.stats.nexts);
        if self.closed || self.finished {
            bump(&self.stats.misuse);
        }
        match self.acts.pop_front() {
            Some(Act::Head {
                status,
                content_length,
                close,
                body_length,
            }) => {
                self.head_given = true;
                Ok(Event::Head(head_of(
                    status,
                    content_length,
                    close,
                    body_length,
                )))
            }
            Some(Act::HeadAs(head)) => {
                self.head_given = true;
                Ok(Event::Head(head))
            }
            Some(Act::Data(d)) => Ok(Event::Data(d)),
            Some(Act::File { data, offset, len }) => {
                let mut file = tempfile::tempfile().expect("temp file");
                file.write_all(&data).expect("write temp file");
                Ok(Event::File(FileBody { file, offset, len }))
            }
            Some(Act::Fail) => {
                self.finished = true;
                if self.head_given {
                    self.stats.failed_after_head.set(true);
                }
                Err(AppFailure)
            }
            Some(Act::End) | None => {
                self.finished = true;
                Ok(Event::End)
            }
        }
    }

    fn ready(&self) -> bool {
        self.ready
    }

    fn close(&mut self) {
        if self.closed {
            bump(&self.stats.misuse);
        }
        self.closed = true;
        bump(&self.stats.closes);
    }
}
