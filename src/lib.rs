//! rwsgi-lite: a single-threaded WSGI (PEP 3333) server.
//!
//! The folders are the boundaries (docs/ARCHITECTURE.md):
//! - `http`: pure HTTP/1.1 (parsing, framing, proxy headers); knows
//!   neither mio nor Python, so it fuzzes and benches on its own.
//! - `serve`: the event loop, the connection state machine, buffers and
//!   listening sockets; the only user of mio, generic over the app.
//! - `wsgi`: everything that touches Python (interpreter, environ,
//!   start_response, driving the response), behind the `python` feature.
//! - `supervise`: the master, its workers and the pid file.
//! - `logging`: log files, the access-log format and batching, local time.
//! - `config`: the command line, parsed into a `Config` (pure); `cli`
//!   runs it, for both front ends (the binary and the Python package).
//! - `testing`: the test kit (mock stream, stub app, response reader);
//!   only in tests and behind the `testing` feature.

#[cfg(feature = "python")]
pub mod cli;
pub mod config;
pub mod http;
pub mod logging;
pub mod serve;
pub mod supervise;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
#[cfg(feature = "python")]
pub mod wsgi;
