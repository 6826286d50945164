//! HeadParser::parse on arbitrary bytes (default, unlimited and small
//! limits); a complete head's spans checked and run through body::analyze.
#![no_main]

#[path = "../checks.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::check_parse_head(data));
