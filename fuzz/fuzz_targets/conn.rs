//! The connection state machine (Conn::drive) over a scripted mock socket
//! with a stub App: termination, well-framed output, close() bookkeeping.
#![no_main]

#[path = "../checks.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::check_conn(data));
