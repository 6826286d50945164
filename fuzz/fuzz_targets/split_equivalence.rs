//! The same bytes fed whole, byte by byte and split at input-chosen points
//! (growing prefixes to one parser) give identical head outcomes; likewise
//! the chunked decoder's output, consumed count and done flag.
#![no_main]

#[path = "../checks.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::check_split_equivalence(data));
