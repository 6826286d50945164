//! The shared HTTP/1.x request corpus (converted from gunicorn's request
//! tests) run through the pure protocol layer: HeadParser, body::analyze and
//! ChunkedDecoder, fed whole, byte by byte and in pseudo-random splits, the
//! way a connection would see the bytes arrive.
//!
//! Where we deliberately answer differently from gunicorn the case is listed
//! in DIFFERS with the reason, and the test checks that we still differ in
//! exactly that way, so the table cannot go stale.
//!
//! One difference is global rather than per case: many gunicorn cases are
//! HTTP/1.1 requests without Host, which RFC 9112 section 3.2 says a server
//! MUST answer 400, and so do we. So that those cases still test everything
//! else, each case runs twice: strictly (as the server will), and with a
//! stand-in Host added for analyze when a 1.1 request has none. The manifest
//! is compared with the second run; the first must then fail with 400 at
//! the first Host-less request and be otherwise identical.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a panic is a test's failure report

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use rwsgi_lite::http::body::{self, BodyFraming, RequestInfo};
use rwsgi_lite::http::chunked::ChunkedDecoder;
use rwsgi_lite::http::parse::{HeadParser, HeaderSpan, Limits, Span, Status, Version};
use rwsgi_lite::http::url::split_target;
use rwsgi_lite::http::HttpError;
use serde_json::Value;

/// How our answer differs from the manifest's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ours {
    /// We refuse a case gunicorn accepts, with this status.
    Rejects(u16),
    /// We accept a case gunicorn refuses (every request parses cleanly).
    Accepts,
    /// We refuse it too, but with another status than the manifest implies.
    RejectsWith(u16),
    /// We accept it, but what we report is not what the manifest lists.
    AcceptsDifferently,
    /// The file ends before the body its Content-Length announces (the
    /// capture is cut short); we wait for the rest, having read the head
    /// and the body so far as the manifest lists them.
    WaitsForBody,
}

const DIFFERS: &[(&str, Ours, &str)] = &[
    // gunicorn options we do not offer: the case tests the option.
    (
        "valid/028.http",
        Ours::Rejects(400),
        "whitespace before the colon (strip_header_spaces not offered)",
    ),
    (
        "valid/compat_obs_fold.http",
        Ours::Rejects(400),
        "obs-fold refused (permit_obsolete_folding not offered)",
    ),
    (
        "valid/compat_obs_fold_huge.http",
        Ours::Rejects(400),
        "obs-fold refused (permit_obsolete_folding not offered)",
    ),
    (
        "valid/031compat.http",
        Ours::AcceptsDifferently,
        "methods are never case-folded (casefold_http_method not offered)",
    ),
    (
        "valid/pp_01.http",
        Ours::Rejects(400),
        "PROXY protocol not offered: `PROXY` method with a non-origin target",
    ),
    (
        "valid/pp_02.http",
        Ours::Rejects(400),
        "PROXY protocol not offered: `PROXY` method with a non-origin target",
    ),
    (
        "valid/pp_04.http",
        Ours::Rejects(400),
        "PROXY v2 not offered: its binary preamble is a bare CR",
    ),
    (
        "valid/pp_05.http",
        Ours::Rejects(400),
        "PROXY v2 not offered: its binary preamble is a bare CR",
    ),
    (
        "invalid/040.http",
        Ours::Accepts,
        "underscored field names are kept (header_map=refuse not offered)",
    ),
    (
        "invalid/chunked_07.http",
        Ours::Accepts,
        "underscored field names are kept (header_map=refuse not offered)",
    ),
    // Stricter than gunicorn.
    (
        "valid/027.http",
        Ours::Rejects(400),
        "bytes >= 0x80 in the request-target",
    ),
    (
        "valid/009.http",
        Ours::Rejects(400),
        "Content-Length with Transfer-Encoding (gunicorn ignores identity)",
    ),
    (
        "invalid/013.http",
        Ours::RejectsWith(400),
        "the obs-fold is refused (400) before the folded line is long enough for 431",
    ),
    // We cannot decode a coding before chunked: 501, where gunicorn hands
    // the still-coded body to the app.
    ("valid/025.http", Ours::Rejects(501), "gzip before chunked"),
    (
        "valid/025_line.http",
        Ours::Rejects(501),
        "gzip before chunked",
    ),
    (
        "valid/029.http",
        Ours::Rejects(501),
        "identity before chunked",
    ),
    (
        "valid/030.http",
        Ours::Rejects(501),
        "identity before chunked",
    ),
    (
        "valid/rfc9112_smuggle_gzip_chunked_01.http",
        Ours::Rejects(501),
        "gzip before chunked",
    ),
    (
        "valid/rfc9112_smuggle_te_identity_chunked_01.http",
        Ours::Rejects(501),
        "identity before chunked",
    ),
    // Rules that live in another layer, or that are not rules.
    (
        "valid/040.http",
        Ours::AcceptsDifferently,
        "underscored field names are kept (gunicorn drops them by default); the wsgi layer decides",
    ),
    (
        "invalid/041.http",
        Ours::Accepts,
        "duplicate Content-Type is not a framing error (analyze's contract)",
    ),
    (
        "invalid/003c.http",
        Ours::Accepts,
        "any token is a method; gunicorn wants 3-20 upper-case bytes by default",
    ),
    (
        "invalid/019.http",
        Ours::Accepts,
        "X-Forwarded-* trust is not the parser's business",
    ),
    // The corpus file itself.
    (
        "valid/099.http",
        Ours::WaitsForBody,
        "Content-Length 17914 but the file holds 8599 body bytes",
    ),
];

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/corpus/http-requests")
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Request {
    method: Vec<u8>,
    target: Vec<u8>,
    version: Version,
    headers: Vec<(Vec<u8>, Vec<u8>)>,
    body: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Outcome {
    /// Every request was read; bytes after a request that closes the
    /// connection are ignored, as the connection would.
    Done(Vec<Request>),
    Error(Vec<Request>, HttpError),
    /// The input ended inside a request (listed last if its head was read).
    Eof(Vec<Request>),
}

enum Phase {
    Head,
    Length(u64),
    Chunked(ChunkedDecoder),
}

/// Drives the protocol layer over `data` arriving in pieces that end at
/// `cuts` (increasing), like a connection with its input buffer. With
/// `stand_in_host`, a 1.1 head without Host is analyzed as if it had one.
fn drive(data: &[u8], limits: Limits, cuts: &[usize], stand_in_host: bool) -> Outcome {
    let mut parser = HeadParser::new(limits);
    let mut inbuf: Vec<u8> = Vec::new();
    let mut phase = Phase::Head;
    let mut done: Vec<Request> = Vec::new();
    let mut current: Option<Request> = None;
    let mut keep_alive = true;
    let mut prev = 0;
    for &cut in cuts.iter().chain(std::iter::once(&data.len())) {
        let cut = cut.clamp(prev, data.len());
        inbuf.extend_from_slice(&data[prev..cut]);
        prev = cut;
        loop {
            match &mut phase {
                Phase::Head => match parser.parse(&inbuf) {
                    Err(e) => return Outcome::Error(done, e),
                    Ok(Status::Partial) => break,
                    Ok(Status::Complete { head_len }) => {
                        let info = match analyze(&inbuf, &parser, stand_in_host) {
                            Ok(info) => info,
                            Err(e) => return Outcome::Error(done, e),
                        };
                        keep_alive = info.keep_alive;
                        current = Some(Request {
                            method: parser.method().get(&inbuf).to_vec(),
                            target: parser.target().get(&inbuf).to_vec(),
                            version: parser.version(),
                            headers: parser
                                .headers()
                                .iter()
                                .map(|h| {
                                    (h.name.get(&inbuf).to_vec(), h.value.get(&inbuf).to_vec())
                                })
                                .collect(),
                            body: Vec::new(),
                        });
                        inbuf.drain(..head_len);
                        phase = match info.framing {
                            BodyFraming::Empty => Phase::Length(0),
                            BodyFraming::Length(n) => Phase::Length(n),
                            BodyFraming::Chunked => Phase::Chunked(ChunkedDecoder::new()),
                        };
                        continue;
                    }
                },
                Phase::Length(rest) => {
                    let n = usize::try_from(*rest)
                        .unwrap_or(usize::MAX)
                        .min(inbuf.len());
                    if let Some(req) = current.as_mut() {
                        req.body.extend_from_slice(&inbuf[..n]);
                    }
                    inbuf.drain(..n);
                    *rest -= n as u64;
                    if *rest > 0 {
                        break;
                    }
                    phase = Phase::Head;
                }
                Phase::Chunked(dec) => {
                    let mut out = Vec::new();
                    let r = match dec.decode(&inbuf, &mut out) {
                        Ok(r) => r,
                        Err(e) => return Outcome::Error(done, e),
                    };
                    if let Some(req) = current.as_mut() {
                        req.body.extend_from_slice(&out);
                    }
                    inbuf.drain(..r.consumed);
                    if !r.done {
                        break;
                    }
                    phase = Phase::Head;
                }
            }
            // Here a request has just been read completely.
            done.extend(current.take());
            parser.reset();
            if !keep_alive {
                return Outcome::Done(done);
            }
        }
    }
    match phase {
        Phase::Head if inbuf.is_empty() => Outcome::Done(done),
        _ => {
            done.extend(current);
            Outcome::Eof(done)
        }
    }
}

/// Whether this is an HTTP/1.1 head without any Host field.
fn lacks_host(buf: &[u8], parser: &HeadParser) -> bool {
    parser.version() == Version::Http11
        && !parser
            .headers()
            .iter()
            .any(|h| h.name.get(buf).eq_ignore_ascii_case(b"host"))
}

fn analyze(buf: &[u8], parser: &HeadParser, stand_in_host: bool) -> Result<RequestInfo, HttpError> {
    if !(stand_in_host && lacks_host(buf, parser)) {
        return body::analyze(buf, parser.version(), parser.headers());
    }
    let mut scratch = buf.to_vec();
    let at = scratch.len() as u32;
    scratch.extend_from_slice(b"Host");
    let mut headers: Vec<HeaderSpan> = parser.headers().to_vec();
    headers.push(HeaderSpan {
        name: Span {
            start: at,
            end: at + 4,
        },
        value: Span {
            start: at + 4,
            end: at + 4,
        },
    });
    body::analyze(&scratch, parser.version(), &headers)
}

struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// Increasing cut points with pieces of 1..=max_piece bytes.
    fn cuts(&mut self, len: usize, max_piece: u64) -> Vec<usize> {
        let mut cuts = Vec::new();
        let mut at = 0usize;
        loop {
            at += 1 + (self.next() % max_piece) as usize;
            if at >= len {
                return cuts;
            }
            cuts.push(at);
        }
    }
}

/// Runs every way of feeding `data`; all must agree. Returns the outcome.
fn run_all_splits(
    name: &str,
    data: &[u8],
    limits: Limits,
    stand_in_host: bool,
) -> Result<Outcome, String> {
    let whole = drive(data, limits, &[], stand_in_host);
    let mut ways: Vec<(String, Vec<usize>)> =
        vec![("byte by byte".into(), (1..data.len()).collect())];
    let mut rng = XorShift(0x9e37_79b9_7f4a_7c15 ^ data.len() as u64);
    for (i, max_piece) in [2u64, 3, 7, 16, 64, 300, 1500, 5000]
        .into_iter()
        .enumerate()
    {
        ways.push((
            format!("random split #{i} (pieces <= {max_piece})"),
            rng.cuts(data.len(), max_piece),
        ));
    }
    for (how, cuts) in ways {
        let got = drive(data, limits, &cuts, stand_in_host);
        if got != whole {
            return Err(format!(
                "{name}: fed {how} (cuts {:?}...) gives {}\n  but fed whole gives {}",
                &cuts[..cuts.len().min(12)],
                summary(&got),
                summary(&whole)
            ));
        }
    }
    Ok(whole)
}

fn summary(o: &Outcome) -> String {
    match o {
        Outcome::Done(r) => format!("{} request(s) read", r.len()),
        Outcome::Error(r, e) => format!("error '{e}' after {} request(s)", r.len()),
        Outcome::Eof(r) => format!("end of input mid-request after {} request(s)", r.len()),
    }
}

/// The limits gunicorn would apply for the case's settings, in our terms.
fn gunicorn_limits(settings: &Value) -> Limits {
    let get = |k: &str| settings.get(k).and_then(Value::as_i64);
    // gunicorn: 0 means unlimited, and it caps the setting at 8190.
    let request_line = match get("limit_request_line") {
        Some(n) if n <= 0 => 0,
        Some(n) => n.min(8190) as usize,
        None => 4094,
    };
    let fields = match get("limit_request_fields") {
        Some(n) if n <= 0 || n > 32768 => 32768,
        Some(n) => n as usize,
        None => 100,
    };
    // gunicorn counts the CRLF in a field line; we do not. Its 0 (or less)
    // means the default 8190 there, not unlimited.
    let field_size = match get("limit_request_field_size") {
        Some(n) if n > 0 => n as usize,
        _ => 8190,
    };
    Limits {
        request_line,
        fields,
        field_size: field_size.saturating_sub(2).max(1),
    }
}

/// The manifest's strings are the bytes decoded as latin-1.
fn latin1(v: &Value) -> Vec<u8> {
    v.as_str()
        .expect("string")
        .chars()
        .map(|c| u8::try_from(u32::from(c)).expect("latin-1 character"))
        .collect()
}

fn trim(s: &[u8]) -> &[u8] {
    let start = s
        .iter()
        .position(|b| !b" \t".contains(b))
        .unwrap_or(s.len());
    let end = s
        .iter()
        .rposition(|b| !b" \t".contains(b))
        .map_or(start, |i| i + 1);
    &s[start..end]
}

fn show(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn expected_requests(entry: &Value) -> Vec<Request> {
    entry["requests"]
        .as_array()
        .expect("requests")
        .iter()
        .map(|r| {
            let v = r["version"].as_array().expect("version");
            let version = match (v[0].as_i64(), v[1].as_i64()) {
                (Some(1), Some(0)) => Version::Http10,
                (Some(1), Some(1)) => Version::Http11,
                other => panic!("unexpected version {other:?}"),
            };
            Request {
                method: latin1(&r["method"]),
                target: latin1(&r["target"]),
                version,
                headers: r["headers"]
                    .as_array()
                    .expect("headers")
                    .iter()
                    .map(|h| (latin1(&h[0]), trim(&latin1(&h[1])).to_vec()))
                    .collect(),
                body: base64::engine::general_purpose::STANDARD
                    .decode(r["body_b64"].as_str().expect("body_b64"))
                    .expect("base64"),
            }
        })
        .collect()
}

/// Differences between what we read and what the manifest lists, if any.
fn compare(got: &[Request], want: &[Request], entry: &Value) -> Option<String> {
    if got.len() != want.len() {
        return Some(format!(
            "read {} request(s), manifest lists {}",
            got.len(),
            want.len()
        ));
    }
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        let field = |what: &str, g: &[u8], w: &[u8]| {
            format!(
                "request {i}: {what} {:?}, manifest says {:?}",
                show(g),
                show(w)
            )
        };
        if g.method != w.method {
            return Some(field("method", &g.method, &w.method));
        }
        if g.target != w.target {
            return Some(field("target", &g.target, &w.target));
        }
        if g.version != w.version {
            return Some(format!(
                "request {i}: version {:?}, manifest says {:?}",
                g.version, w.version
            ));
        }
        let names_match = g.headers.len() == w.headers.len()
            && g.headers
                .iter()
                .zip(&w.headers)
                .all(|((gn, gv), (wn, wv))| gn.eq_ignore_ascii_case(wn) && gv == wv);
        if !names_match {
            let fmt = |h: &[(Vec<u8>, Vec<u8>)]| {
                h.iter()
                    .map(|(n, v)| format!("{}: {}", show(n), show(v)))
                    .collect::<Vec<_>>()
            };
            return Some(format!(
                "request {i}: headers {:?}, manifest says {:?}",
                fmt(&g.headers),
                fmt(&w.headers)
            ));
        }
        if g.body != w.body {
            return Some(field("body", &g.body, &w.body));
        }
        // Path and query as the WSGI layer will split them; gunicorn's
        // urlsplit differs on two shapes that are not paths at all.
        let r = &entry["requests"][i];
        let (path, query) = split_target(&g.target);
        let quirk = g.target.starts_with(b"//") || g.method == b"CONNECT";
        if !quirk && (path != latin1(&r["path"]) || query != latin1(&r["query"])) {
            return Some(format!(
                "request {i}: split into {:?} / {:?}, manifest says {:?} / {:?}",
                show(path),
                show(query),
                r["path"],
                r["query"]
            ));
        }
    }
    None
}

/// The strict run must equal the stand-in run up to the first Host-less
/// HTTP/1.1 request, and refuse that one with 400.
fn check_strict_run(
    file: &str,
    data: &[u8],
    limits: Limits,
    strict: &Outcome,
    lenient: &Outcome,
) -> Result<(), String> {
    // Re-drive whole to learn which request (if any) lacked Host.
    let first_hostless = first_hostless_request(data, limits);
    let ok = match (first_hostless, strict) {
        (None, s) => s == lenient,
        (Some(i), Outcome::Error(done, HttpError::BadRequest(_))) => {
            let before = match lenient {
                Outcome::Done(r) | Outcome::Error(r, _) | Outcome::Eof(r) => r,
            };
            done.len() == i && before.get(..i) == Some(&done[..])
        }
        (Some(_), _) => false,
    };
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{file}: strict run gives {} but with a stand-in Host {} (first Host-less request: {first_hostless:?})",
            summary(strict),
            summary(lenient)
        ))
    }
}

/// Index of the first HTTP/1.1 request without Host that reached analyze
/// in the stand-in run, if any.
fn first_hostless_request(data: &[u8], limits: Limits) -> Option<usize> {
    // Drive with the stand-in and count heads until one lacks Host; the
    // simplest faithful way is to replay drive() request by request.
    let mut n = 0;
    let mut rest: &[u8] = data;
    loop {
        let mut parser = HeadParser::new(limits);
        match parser.parse(rest) {
            Ok(Status::Complete { head_len }) => {
                if lacks_host(rest, &parser) {
                    return Some(n);
                }
                let info = body::analyze(rest, parser.version(), parser.headers()).ok()?;
                let mut tail = &rest[head_len..];
                match info.framing {
                    BodyFraming::Empty => {}
                    BodyFraming::Length(len) => {
                        tail = tail.get(usize::try_from(len).ok()?..)?;
                    }
                    BodyFraming::Chunked => {
                        let r = ChunkedDecoder::new().decode(tail, &mut Vec::new()).ok()?;
                        if !r.done {
                            return None;
                        }
                        tail = &tail[r.consumed..];
                    }
                }
                if !info.keep_alive || tail.is_empty() {
                    return None;
                }
                rest = tail;
                n += 1;
            }
            _ => return None,
        }
    }
}

/// The status the manifest's gunicorn error class implies, as a set.
fn implied_statuses(class: &str) -> &'static [u16] {
    match class {
        "LimitRequestLine" => &[414],
        "LimitRequestHeaders" => &[431],
        // Well-formed foreign versions are 505 for us, the rest 400.
        "InvalidHTTPVersion" => &[400, 505],
        "UnsupportedTransferCoding" => &[501],
        _ => &[400],
    }
}

/// Gunicorn errors raised because the input ended: a parser that has not
/// seen the end of the stream can only wait, and the connection then closes
/// without a request, which is the rejection.
const EOF_ERRORS: &[&str] = &["NoMoreData", "ChunkMissingTerminator"];

fn check_case(entry: &Value) -> Result<(), String> {
    let file = entry["file"].as_str().expect("file");
    let kind = entry["kind"].as_str().expect("kind");
    let data =
        std::fs::read(corpus_dir().join(file)).map_err(|e| format!("{file}: cannot read: {e}"))?;
    let limits = gunicorn_limits(&entry["gunicorn_settings"]);
    let strict = run_all_splits(file, &data, limits, false)?;
    let outcome = run_all_splits(file, &data, limits, true)?;
    check_strict_run(file, &data, limits, &strict, &outcome)?;
    let deviation = DIFFERS
        .iter()
        .find(|(f, ..)| *f == file)
        .map(|&(_, ours, _)| ours);

    let accepted = match &outcome {
        Outcome::Done(got) => Ok(got),
        Outcome::Error(_, e) => Err(Some(*e)),
        Outcome::Eof(_) => Err(None),
    };
    let mismatch = if kind == "valid" {
        let want = expected_requests(entry);
        match accepted {
            Ok(got) => compare(got, &want, entry).map(|m| (None, m)),
            Err(e) => Some((
                e.map(|e| e.status()),
                format!("refused: {}", summary(&outcome)),
            )),
        }
    } else {
        let class = entry["gunicorn_error"].as_str().expect("gunicorn_error");
        match (accepted, &outcome) {
            (Ok(got), _) => Some((
                None,
                format!(
                    "accepted ({} request(s)); gunicorn raises {class}",
                    got.len()
                ),
            )),
            (Err(None), _) if EOF_ERRORS.contains(&class) => None,
            (Err(None), _) => Some((
                None,
                format!("waits for more input forever; gunicorn raises {class}"),
            )),
            (Err(Some(e)), _) if implied_statuses(class).contains(&e.status()) => None,
            (Err(Some(e)), _) => Some((
                Some(e.status()),
                format!(
                    "refused with '{e}'; gunicorn's {class} implies {:?}",
                    implied_statuses(class)
                ),
            )),
        }
    };

    match (deviation, mismatch) {
        (None, None) => Ok(()),
        (None, Some((_, m))) => Err(format!("{file}: {m}")),
        (Some(d), None) => Err(format!(
            "{file}: listed in DIFFERS as {d:?} but now agrees with the manifest; remove it from the table"
        )),
        (Some(d), Some((status, m))) => {
            let as_listed = match d {
                Ours::Rejects(s) | Ours::RejectsWith(s) => status == Some(s),
                Ours::Accepts => matches!(outcome, Outcome::Done(_)) && kind == "invalid",
                Ours::AcceptsDifferently => matches!(outcome, Outcome::Done(_)) && kind == "valid",
                Ours::WaitsForBody => match &outcome {
                    Outcome::Eof(got) => compare(got, &expected_requests(entry), entry).is_none(),
                    _ => false,
                },
            };
            if as_listed {
                Ok(())
            } else {
                Err(format!("{file}: listed in DIFFERS as {d:?}, but: {m}"))
            }
        }
    }
}

#[test]
fn corpus() {
    let dir = corpus_dir();
    let manifest = std::fs::read_to_string(dir.join("manifest.json"))
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.join("manifest.json").display()));
    let manifest: Value = serde_json::from_str(&manifest).expect("manifest.json is not JSON");
    let entries = manifest.as_array().expect("manifest is a list");
    assert!(
        entries.len() > 100,
        "manifest looks truncated: {} entries",
        entries.len()
    );

    let files: BTreeSet<&str> = entries.iter().filter_map(|e| e["file"].as_str()).collect();
    let mut failures: Vec<String> = DIFFERS
        .iter()
        .filter(|(f, ..)| !files.contains(f))
        .map(|(f, ..)| format!("{f}: listed in DIFFERS but not in the manifest"))
        .collect();
    let mut seen = BTreeSet::new();
    for (f, ..) in DIFFERS {
        if !seen.insert(*f) {
            failures.push(format!("{f}: listed twice in DIFFERS"));
        }
    }
    failures.extend(entries.iter().filter_map(|e| check_case(e).err()));
    assert!(
        failures.is_empty(),
        "{} corpus case(s) failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
