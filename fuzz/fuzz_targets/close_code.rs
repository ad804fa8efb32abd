//! Close-code round trip.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| gateway_sim::fuzzing::close_code(data));
