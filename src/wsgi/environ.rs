//! Builds the WSGI environ for a request: a copy of a base dict made once
//! at start (constant keys), then the per-request keys. `HTTP_*` key
//! objects are cached by header name, so a typical request creates no key
//! strings at all. From a trusted proxy, X-Forwarded-For and
//! X-Forwarded-Proto then replace REMOTE_ADDR and wsgi.url_scheme
//! (`crate::http::forwarded` decides how).

use std::net::{IpAddr, SocketAddr};

use pyo3::intern;
// Header names come from clients, but the cache is bounded
// (MAX_CACHED_KEYS), so a fast non-DoS-resistant hash is fine here.
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyString, PyTuple};
use rustc_hash::FxHashMap;

use crate::http::forwarded::{self, Scheme, TrustedProxies};
use crate::http::parse::Version;
use crate::http::url;
use crate::serve::app::{Local, Peer, Request};
use crate::serve::spool::RequestBody;
use crate::wsgi::input::WsgiInput;
use crate::wsgi::latin1;

/// Keys set on every request (REMOTE_PORT is removed again for unix
/// sockets, which have none).
const ALWAYS_SET: [&str; 2] = ["REMOTE_ADDR", "REMOTE_PORT"];

/// Client addresses whose strings are kept; the map starts over when full.
const MAX_CACHED_PEERS: usize = 1024;

/// Keys a CPython dict holds in a 32-slot table; one more makes it grow
/// to 64 slots (room for 42 keys, so ~20 headers fit per request).
const FULL_32_SLOTS: usize = 21;

/// Distinct header names cached; beyond this, keys are built per request
/// (a client sending random names must not grow memory).
const MAX_CACHED_KEYS: usize = 512;

pub struct EnvironBuilder<'py> {
    py: Python<'py>,
    base: Bound<'py, PyDict>,
    /// Environ keys by header name as sent (so the usual spelling needs no
    /// lower-casing), with what the server itself makes of the field.
    http_keys: FxHashMap<Box<[u8]>, (Bound<'py, PyString>, Field)>,
    /// Strings for recent header values and paths.
    values: ValueCache<'py>,
    /// One base per listening socket, with its SERVER_NAME and SERVER_PORT
    /// already in (a server has a handful of listeners).
    listener_bases: Vec<(Local, Bound<'py, PyDict>)>,
    /// REMOTE_ADDR and REMOTE_PORT strings by client address: a keep-alive
    /// client (or a proxy's pooled connection) reuses them.
    peers: FxHashMap<SocketAddr, (Bound<'py, PyString>, Bound<'py, PyString>)>,
    path: Vec<u8>,
    /// `--forwarded-allow-ips`.
    trusted: TrustedProxies,
    /// `--forwarded-hops`.
    hops: u8,
    /// The client address X-Forwarded-For gave the last request, if any.
    forwarded: Option<IpAddr>,
    /// REMOTE_ADDR strings for forwarded client addresses: behind a proxy
    /// every request carries one, and clients come back.
    forwarded_strings: FxHashMap<IpAddr, Bound<'py, PyString>>,
}

impl<'py> EnvironBuilder<'py> {
    /// Changes a key every environ starts with.
    pub(crate) fn set_base(&mut self, key: &str, value: impl IntoPyObject<'py>) -> PyResult<()> {
        self.base.set_item(interned(self.py, key), value)
    }

    pub fn new(py: Python<'py>) -> PyResult<Self> {
        let base = PyDict::new(py);
        base.set_item(interned(py, "wsgi.version"), PyTuple::new(py, [1, 0])?)?;
        base.set_item(interned(py, "wsgi.url_scheme"), "http")?;
        // Where the error log goes: its file, or stderr.
        match crate::logging::logfile::error_logfile() {
            Some(file) => base.set_item(
                interned(py, "wsgi.errors"),
                Bound::new(py, crate::wsgi::errors::ErrorStream::new(file))?,
            )?,
            None => base.set_item(
                interned(py, "wsgi.errors"),
                py.import("sys")?.getattr("stderr")?,
            )?,
        }
        base.set_item(interned(py, "wsgi.multithread"), false)?;
        base.set_item(interned(py, "wsgi.multiprocess"), false)?;
        base.set_item(interned(py, "wsgi.run_once"), false)?;
        // The body is always complete and delimited: reading to EOF is safe.
        base.set_item(interned(py, "wsgi.input_terminated"), true)?;
        base.set_item(
            interned(py, "wsgi.file_wrapper"),
            py.get_type::<crate::wsgi::file_wrapper::FileWrapper>(),
        )?;
        base.set_item(interned(py, "SCRIPT_NAME"), "")?;
        // Nearly every request is HTTP/1.1; build() overrides it for 1.0.
        base.set_item(interned(py, "SERVER_PROTOCOL"), "HTTP/1.1")?;
        base.set_item(
            interned(py, "SERVER_SOFTWARE"),
            concat!("rwsgi-lite/", env!("CARGO_PKG_VERSION")),
        )?;
        // Slots for the keys every request sets: in the per-request copy
        // they are replaced, not inserted, so the dict never grows for them.
        for key in ALWAYS_SET {
            base.set_item(interned(py, key), py.None())?;
        }
        // `wsgi.input` for requests without a body: it has no state to
        // change (every read is b""), so one object serves them all.
        let empty_input = Bound::new(py, WsgiInput::new(py, &mut RequestBody::default()))?;
        // The request keys as a `GET /` without a body has them: a request
        // sets only those that differ (each set is a dict store).
        base.set_item(interned(py, "REQUEST_METHOD"), intern!(py, "GET"))?;
        base.set_item(interned(py, "PATH_INFO"), intern!(py, "/"))?;
        base.set_item(interned(py, "RAW_URI"), intern!(py, "/"))?;
        base.set_item(interned(py, "QUERY_STRING"), intern!(py, ""))?;
        base.set_item(interned(py, "wsgi.input"), &empty_input)?;
        // Make the table big enough for the request's headers too: fill
        // the 32-slot table to the brim with padding keys and delete them
        // again. A listener's base clones that full table (CPython's fast
        // copy of dense dicts), so its first own key (SERVER_NAME) grows
        // it to 64 slots, which also drops the deleted padding. Each
        // request's copy then clones a 64-slot table without dead entries,
        // and a typical request's HTTP_* keys need no resize either.
        // (Counted, not fixed: one base key more or less must not leave
        // the padding behind as dead entries every request copies.)
        let padding = FULL_32_SLOTS.saturating_sub(base.len());
        for i in 0..padding {
            base.set_item(format!("rwsgi-lite.padding.{i}"), py.None())?;
        }
        for i in 0..padding {
            base.del_item(format!("rwsgi-lite.padding.{i}"))?;
        }
        Ok(EnvironBuilder {
            py,
            base,
            http_keys: FxHashMap::default(),
            values: ValueCache::new(),
            listener_bases: Vec::new(),
            peers: FxHashMap::default(),
            path: Vec::with_capacity(256),
            trusted: TrustedProxies::default(),
            hops: forwarded::DEFAULT_HOPS,
            forwarded: None,
            forwarded_strings: FxHashMap::default(),
        })
    }

    pub(crate) fn set_trusted_proxies(&mut self, trusted: TrustedProxies) {
        self.trusted = trusted;
    }

    pub(crate) fn set_forwarded_hops(&mut self, hops: u8) {
        self.hops = hops;
    }

    /// The client address of the last request built: X-Forwarded-For's
    /// when it was applied, else the peer's (`None` on a unix socket).
    pub fn client_addr(&self, peer: &Peer) -> Option<IpAddr> {
        self.forwarded.or(match peer {
            Peer::Tcp(addr) => Some(addr.ip()),
            Peer::Unix => None,
        })
    }

    pub fn build(&mut self, req: &mut Request<'_>) -> PyResult<Bound<'py, PyDict>> {
        let py = self.py;
        self.forwarded = None;
        let env = self.listener_base(req.local)?.copy()?;
        // The base is a `GET /` without a query or body (see new()).
        if req.method != b"GET" {
            let method = match req.method {
                b"POST" => intern!(py, "POST").clone(),
                b"HEAD" => intern!(py, "HEAD").clone(),
                other => latin1(py, other)?,
            };
            env.set_item(intern!(py, "REQUEST_METHOD"), method)?;
        }
        let (path, query) = url::split_target(req.target);
        self.path.clear();
        url::percent_decode_into(path, &mut self.path);
        if self.path.as_slice() != b"/" {
            let path_info = self.values.get(py, &self.path)?;
            // Without a query or escapes the raw target is the same string.
            let raw_uri = if self.path.as_slice() == req.target {
                path_info.clone()
            } else {
                self.values.get(py, req.target)?
            };
            env.set_item(intern!(py, "PATH_INFO"), path_info)?;
            env.set_item(intern!(py, "RAW_URI"), raw_uri)?;
        } else if req.target != b"/" {
            env.set_item(intern!(py, "RAW_URI"), self.values.get(py, req.target)?)?;
        }
        if !query.is_empty() {
            env.set_item(intern!(py, "QUERY_STRING"), latin1(py, query)?)?;
        }
        // The base says HTTP/1.1.
        if req.version == Version::Http10 {
            env.set_item(intern!(py, "SERVER_PROTOCOL"), intern!(py, "HTTP/1.0"))?;
        }
        self.set_remote(&env, req.peer)?;

        // Set when the header is seen, so a request without any pays
        // nothing for them.
        let mut forwarded_for = false;
        let mut forwarded_proto = false;
        let mut content_length = false;
        for h in req.headers {
            let name = h.name.get(req.head);
            let Some((key, field)) = self.http_key(name) else {
                continue;
            };
            match field {
                Field::Other | Field::ContentType => {}
                Field::ContentLength => content_length = true,
                Field::ForwardedFor => forwarded_for = true,
                Field::ForwardedProto => forwarded_proto = true,
            }
            let value = self.values.get(py, h.value.get(req.head))?;
            // No base key looks like a header's, so a key that does not
            // grow the dict was set by an earlier field of this request.
            let before = env.len();
            env.set_item(&key, value)?;
            if env.len() == before && field != Field::ContentType {
                // Repeated fields are one list (RFC 9110 5.3); the last
                // Content-Type wins.
                env.set_item(&key, joined_values(req, name))?;
            }
        }
        if (forwarded_for || forwarded_proto) && self.trusts(req.peer) {
            self.apply_forwarded(&env, req, forwarded_for, forwarded_proto)?;
        }
        // A chunked body has no Content-Length on the wire; we decoded it
        // whole, so tell the app its size (frameworks read only that much).
        if !req.body.is_empty() || content_length {
            let mut buf = itoa::Buffer::new();
            env.set_item(intern!(py, "CONTENT_LENGTH"), buf.format(req.body.len()))?;
        }
        // The base's is the shared empty input.
        if !req.body.is_empty() {
            let input = Bound::new(py, WsgiInput::new(py, &mut req.body))?;
            env.set_item(intern!(py, "wsgi.input"), input)?;
        }
        Ok(env)
    }

    fn trusts(&self, peer: &Peer) -> bool {
        match peer {
            Peer::Tcp(addr) => self.trusted.trusts(addr.ip()),
            // nginx in front over a unix socket: only local processes with
            // access to the socket file can connect.
            Peer::Unix => true,
        }
    }

    /// X-Forwarded-For -> REMOTE_ADDR, X-Forwarded-Proto ->
    /// wsgi.url_scheme, for a request from a trusted proxy.
    fn apply_forwarded(
        &mut self,
        env: &Bound<'py, PyDict>,
        req: &Request<'_>,
        forwarded_for: bool,
        forwarded_proto: bool,
    ) -> PyResult<()> {
        let py = self.py;
        let values = |name: &'static [u8]| {
            req.headers
                .iter()
                .filter(move |h| h.name.get(req.head).eq_ignore_ascii_case(name))
                .map(|h| h.value.get(req.head))
        };
        if forwarded_for {
            if let Some(ip) =
                forwarded::client_addr(&self.trusted, self.hops, values(b"x-forwarded-for"))
            {
                if !self.forwarded_strings.contains_key(&ip) {
                    if self.forwarded_strings.len() >= MAX_CACHED_PEERS {
                        self.forwarded_strings.clear();
                    }
                    let s = PyString::new(py, &ip.to_string());
                    self.forwarded_strings.insert(ip, s);
                }
                if let Some(s) = self.forwarded_strings.get(&ip) {
                    env.set_item(intern!(py, "REMOTE_ADDR"), s)?;
                }
                self.forwarded = Some(ip);
            }
        }
        if forwarded_proto {
            // The base says http.
            if forwarded::scheme(values(b"x-forwarded-proto")) == Some(Scheme::Https) {
                env.set_item(intern!(py, "wsgi.url_scheme"), intern!(py, "https"))?;
            }
        }
        Ok(())
    }

    /// The base environ of the listener a request came in on.
    fn listener_base(&mut self, local: &Local) -> PyResult<&Bound<'py, PyDict>> {
        let index = match self.listener_bases.iter().position(|(l, _)| l == local) {
            Some(i) => i,
            None => {
                let (name, port) = match local {
                    Local::Tcp(addr) => (addr.ip().to_string(), addr.port().to_string()),
                    // PEP 3333 wants both non-empty even without a network.
                    Local::Unix(_) => ("localhost".to_string(), "80".to_string()),
                };
                let base = self.base.copy()?;
                base.set_item(interned(self.py, "SERVER_NAME"), name)?;
                base.set_item(interned(self.py, "SERVER_PORT"), port)?;
                self.listener_bases.push((local.clone(), base));
                self.listener_bases.len() - 1
            }
        };
        Ok(&self.listener_bases[index].1)
    }

    fn set_remote(&mut self, env: &Bound<'py, PyDict>, peer: &Peer) -> PyResult<()> {
        let py = self.py;
        match peer {
            Peer::Tcp(addr) => {
                if let Some((ip, port)) = self.peers.get(addr) {
                    env.set_item(intern!(py, "REMOTE_ADDR"), ip)?;
                    env.set_item(intern!(py, "REMOTE_PORT"), port)?;
                    return Ok(());
                }
                if self.peers.len() >= MAX_CACHED_PEERS {
                    self.peers.clear();
                }
                let mut port = itoa::Buffer::new();
                let (ip, port) = (
                    PyString::new(py, &addr.ip().to_string()),
                    PyString::new(py, port.format(addr.port())),
                );
                env.set_item(intern!(py, "REMOTE_ADDR"), &ip)?;
                env.set_item(intern!(py, "REMOTE_PORT"), &port)?;
                self.peers.insert(*addr, (ip, port));
            }
            Peer::Unix => {
                env.set_item(intern!(py, "REMOTE_ADDR"), "")?;
                env.del_item(intern!(py, "REMOTE_PORT"))?;
            }
        }
        Ok(())
    }
}

/// An environ key as the interned string: the same object `intern!` gives
/// the per-request code, so dict lookups match by identity instead of
/// comparing characters.
fn interned<'py>(py: Python<'py>, name: &str) -> Bound<'py, PyString> {
    PyString::intern(py, name)
}

/// What the server makes of a request header besides its environ key.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Field {
    Other,
    ContentType,
    ContentLength,
    ForwardedFor,
    ForwardedProto,
}

impl<'py> EnvironBuilder<'py> {
    /// The environ key for a header name as sent, from the cache (which
    /// stops growing at MAX_CACHED_KEYS); `None` for a name to drop.
    #[inline]
    fn http_key(&mut self, name: &[u8]) -> Option<(Bound<'py, PyString>, Field)> {
        if let Some((key, field)) = self.http_keys.get(name) {
            return Some((key.clone(), *field));
        }
        // `X_Forwarded_For` would become the same key as
        // `X-Forwarded-For` and could pose as a proxy's header.
        if name.contains(&b'_') {
            log::debug!(
                "dropped header {:?}: underscores are ambiguous in CGI names",
                String::from_utf8_lossy(name)
            );
            return None;
        }
        let py = self.py;
        let lower = name.to_ascii_lowercase();
        let (key, field) = match lower.as_slice() {
            b"content-type" => (intern!(py, "CONTENT_TYPE").clone(), Field::ContentType),
            b"content-length" => (intern!(py, "CONTENT_LENGTH").clone(), Field::ContentLength),
            b"x-forwarded-for" => (http_key(py, &lower), Field::ForwardedFor),
            b"x-forwarded-proto" => (http_key(py, &lower), Field::ForwardedProto),
            _ => (http_key(py, &lower), Field::Other),
        };
        if self.http_keys.len() < MAX_CACHED_KEYS {
            self.http_keys.insert(name.into(), (key.clone(), field));
        }
        Some((key, field))
    }
}

/// The values of every field named `name` (any case), joined with commas.
fn joined_values(req: &Request<'_>, name: &[u8]) -> String {
    let mut joined = String::new();
    for h in req.headers {
        if h.name.get(req.head).eq_ignore_ascii_case(name) {
            if !joined.is_empty() {
                joined.push(',');
            }
            // Latin-1: each byte is the code point of the same value.
            joined.extend(h.value.get(req.head).iter().map(|&b| b as char));
        }
    }
    joined
}

/// Strings for header values and paths up to VALUE_MAX bytes, in slots
/// chosen by hash: a keep-alive client, or a proxy's pooled connection,
/// sends the same Host, User-Agent, Accept... on every request, and a hit
/// costs a hash and a compare instead of a new str and its free. A new
/// value takes its slot over, so the cache never grows.
struct ValueCache<'py> {
    slots: Vec<(Vec<u8>, Option<Bound<'py, PyString>>)>,
}

const VALUE_SLOTS: usize = 64;
const VALUE_MAX: usize = 64;

impl<'py> ValueCache<'py> {
    fn new() -> Self {
        ValueCache {
            slots: (0..VALUE_SLOTS).map(|_| (Vec::new(), None)).collect(),
        }
    }

    #[inline]
    fn get(&mut self, py: Python<'py>, bytes: &[u8]) -> PyResult<Bound<'py, PyString>> {
        if bytes.len() > VALUE_MAX {
            return latin1(py, bytes);
        }
        let slot = &mut self.slots[slot_of(bytes)];
        if let (cached, Some(s)) = slot {
            if cached.as_slice() == bytes {
                return Ok(s.clone());
            }
        }
        let s = latin1(py, bytes)?;
        slot.0.clear();
        slot.0.extend_from_slice(bytes);
        slot.1 = Some(s.clone());
        Ok(s)
    }
}

#[inline]
fn slot_of(bytes: &[u8]) -> usize {
    use std::hash::Hasher;
    let mut h = rustc_hash::FxHasher::default();
    h.write(bytes);
    // FxHash's high bits are its best mixed.
    (h.finish() >> (64 - VALUE_SLOTS.trailing_zeros())) as usize
}

/// `HTTP_` + the name upper-cased with `-` as `_`.
fn http_key<'py>(py: Python<'py>, lower_name: &[u8]) -> Bound<'py, PyString> {
    let mut key = String::with_capacity(5 + lower_name.len());
    key.push_str("HTTP_");
    for &b in lower_name {
        key.push(if b == b'-' {
            '_'
        } else {
            b.to_ascii_uppercase() as char
        });
    }
    PyString::new(py, &key)
}

/// `METHOD PATH` of an environ, for log lines about the request.
pub fn describe(env: &Bound<'_, PyDict>) -> String {
    let get = |k: &str| {
        env.get_item(k)
            .ok()
            .flatten()
            .map(|v| v.to_string())
            .unwrap_or_default()
    };
    format!("{} {}", get("REQUEST_METHOD"), get("PATH_INFO"))
}
