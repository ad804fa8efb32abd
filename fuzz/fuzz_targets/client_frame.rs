//! Subscriber frames as raw bytes (SPEC §3).
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| gateway_core::fuzzing::client_frame(data));
