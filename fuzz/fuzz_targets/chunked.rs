//! ChunkedDecoder on arbitrary bytes: no panic, bounded consumption and
//! output, agreement with a simple reference decoder on accepted input.
#![no_main]

#[path = "../checks.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::check_chunked(data));
