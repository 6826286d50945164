//! rwsgi-lite: a single-threaded WSGI (PEP 3333) server.
//!
//! `http` is the pure protocol layer, `conn` the per-connection state
//! machine (generic over the stream and the application), `server` the mio
//! event loop. Everything that touches Python lives behind the `python`
//! feature in `python` (interpreter, app loading) and `wsgi` (environ,
//! start_response, wsgi.input, driving the response iterable).

pub mod access_log;
pub mod app;
pub mod config;
pub mod conn;
pub mod forwarded;
pub mod http;
pub mod inbuf;
pub mod listen;
pub mod localtime;
pub mod logbuf;
pub mod logfile;
pub mod master;
pub mod outbuf;
pub mod pidfile;
#[cfg(feature = "python")]
pub mod python;
pub mod server;
pub mod spool;
pub mod worker;
#[cfg(feature = "python")]
pub mod wsgi;
