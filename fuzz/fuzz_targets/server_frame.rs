//! Server envelopes as the client decodes them (SPEC §2).
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| gateway_sim::fuzzing::server_frame(data));
