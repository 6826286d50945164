//! Our head parser against httparse: agreement where both accept, and no
//! head accepted by us that httparse refuses (we are the stricter one).
#![no_main]

#[path = "../checks.rs"]
mod checks;
#[path = "../differential.rs"]
mod differential;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    differential::check_differential(data);
    // Our own invariants on the same input too.
    checks::check_parse_head(data);
});
