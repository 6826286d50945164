//! The contract between a connection and the application it serves.
//!
//! `conn` and `server` are generic over [`App`] so they never see Python:
//! the WSGI adapter in `wsgi/` implements it for real, tests and fuzz
//! targets implement it with a stub. A request goes in as borrowed spans of
//! the connection's buffer plus an owned body; the response comes back as a
//! stream of [`Event`]s pulled only while the socket drains (backpressure).

use std::fs::File;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::config;
use crate::http::parse::{HeaderSpan, Version};
pub use crate::http::response::ResponseHead;
use crate::serve::spool::RequestBody;

/// Who is on the other end of a connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Peer {
    Tcp(SocketAddr),
    /// Unix sockets have no peer address worth reporting.
    Unix,
}

impl std::fmt::Display for Peer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Peer::Tcp(addr) => write!(f, "{addr}"),
            Peer::Unix => f.write_str("unix client"),
        }
    }
}

/// The listening socket a connection arrived on; it fills SERVER_NAME and
/// SERVER_PORT.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Local {
    Tcp(SocketAddr),
    Unix(PathBuf),
}

/// One complete request: the head as spans into `head` and the whole body.
pub struct Request<'a> {
    /// The bytes the spans below point into.
    pub head: &'a [u8],
    pub method: &'a [u8],
    pub target: &'a [u8],
    pub version: Version,
    pub headers: &'a [HeaderSpan],
    pub body: RequestBody,
    pub peer: &'a Peer,
    pub local: &'a Local,
}

/// What pulling a response yields, in order: one `Head`, then any number of
/// `Data` or `File`, then `End`.
pub enum Event<C> {
    Head(ResponseHead),
    Data(C),
    /// Body bytes that stay in a file: the connection hands them to the
    /// kernel (`Stream::sendfile`) instead of reading them in.
    File(FileBody),
    End,
}

/// A stretch of a regular file to send as body bytes.
#[derive(Debug)]
pub struct FileBody {
    /// The server's own descriptor (a duplicate of the app's), so the file
    /// stays open until the last byte is sent whatever the app does with
    /// its file object; closed when this is dropped.
    pub file: File,
    /// Where to start; the descriptor's own position is neither used nor
    /// moved.
    pub offset: u64,
    /// Bytes to send at most: the response's Content-Length may cut them
    /// shorter. A file that ends sooner cuts the connection, as any body
    /// shorter than its announced length does.
    pub len: u64,
}

/// The application raised or broke the protocol. The adapter has already
/// logged the details (traceback); the connection only needs to know that it
/// happened: before the head was sent it answers 500, after it cuts the
/// connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppFailure;

/// A response being produced.
pub trait Response {
    /// Body bytes, held without copying (a Python `bytes` for WSGI).
    type Chunk: AsRef<[u8]>;
    fn next(&mut self) -> Result<Event<Self::Chunk>, AppFailure>;
    /// True when the next event is already at hand and `next` will run no
    /// application code (a one-item body, the end). The connection flushes
    /// before pulling an event that is not ready, so a slow generator's
    /// output reaches the client as it is produced.
    fn ready(&self) -> bool {
        false
    }
    /// Hands a head back once it is written, so its buffers can serve the
    /// next response instead of being freed and allocated again.
    fn recycle_head(&mut self, _head: ResponseHead) {}
    /// Releases the response (WSGI: calls the iterable's `close()`); called
    /// exactly once, whether the response finished, failed or the client went
    /// away.
    fn close(&mut self);
}

pub trait App {
    type Response: Response;

    fn call(&mut self, request: Request<'_>) -> Result<Self::Response, AppFailure>;

    /// A buffer for the next request body: the app may hand back the
    /// memory of a body it has copied out, so the next one needs no
    /// allocation.
    fn take_body_buffer(&mut self) -> Vec<u8> {
        Vec::new()
    }

    /// Runs `wait` (the poll syscall) with whatever the app holds released:
    /// the WSGI adapter drops the GIL here so Python threads can run.
    fn idle<R: Send>(&mut self, wait: impl FnOnce() -> R + Send) -> R {
        wait()
    }

    /// Called after every wake-up; runs pending Python signal handlers.
    /// Returns true when a handler asked the server to stop (raised).
    fn after_wake(&mut self) -> bool {
        false
    }

    /// False once the app takes no more connections (a worker that served
    /// its `--max-requests`): the server accepts none after it and stops
    /// as on SIGTERM, finishing the connections it has.
    fn wants_connections(&self) -> bool {
        true
    }
}

/// Per-connection settings, shared by all connections of a server.
#[derive(Clone, Debug)]
pub struct ConnSettings {
    pub limits: crate::http::parse::Limits,
    pub limit_request_body: u64,
    /// Idle time allowed between requests; zero disables keep-alive.
    pub keep_alive: Duration,
    /// Time allowed from the first byte of a head to its end.
    pub header_timeout: Duration,
    /// Longest stall (no byte moved) allowed while reading a body or
    /// writing a response.
    pub socket_timeout: Duration,
    /// Output buffered before the app's iterable is paused.
    pub high_water: usize,
}

impl Default for ConnSettings {
    fn default() -> Self {
        ConnSettings {
            limits: Default::default(),
            limit_request_body: config::DEFAULT_LIMIT_REQUEST_BODY,
            keep_alive: config::DEFAULT_KEEP_ALIVE,
            header_timeout: config::DEFAULT_HEADER_TIMEOUT,
            socket_timeout: config::DEFAULT_SOCKET_TIMEOUT,
            high_water: 64 * 1024,
        }
    }
}
