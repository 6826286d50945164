//! Pure HTTP/1.1: request-head parsing, body framing, chunked coding,
//! response heads, dates, URL decoding and the proxy headers we trust.
//!
//! Nothing here knows pyo3 or mio, and nothing allocates while parsing, so the
//! whole module builds with `--no-default-features` and is what the fuzz
//! targets, parser benches and corpus tests exercise.

pub mod authority;
pub mod body;
pub mod chars;
pub mod chunked;
pub mod date;
pub mod encode;
pub mod error;
pub mod forwarded;
pub mod parse;
pub mod response;
pub mod url;

pub use error::HttpError;
