//! Subscriber frames as raw bytes (SPEC §3).
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| gateway_sim::fuzzing::client_frame(data));
