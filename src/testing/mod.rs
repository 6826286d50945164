//! The test kit: a scripted socket ([`mock_stream`]), a scripted application
//! ([`stub_app`]) and a reader of HTTP/1.1 responses ([`response`]), shared
//! by the connection's unit tests (`serve/conn/tests.rs`), the fuzz checks
//! (`fuzz/checks.rs`, which `tests/fuzz_regressions.rs` also runs) and the
//! end-to-end tests' client (`tests/common`), so that they cannot drift
//! apart.
//!
//! Compiled for the crate's own tests and, for the fuzz crate and the
//! integration tests, behind the `testing` feature (off by default); no
//! production code uses it. Its panics are test failures.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

pub mod mock_stream;
pub mod response;
pub mod stub_app;

/// RFC 9110 `tchar`, written out again rather than taken from
/// `http::chars`, so that checks of the parser do not trust its own table.
pub fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}
