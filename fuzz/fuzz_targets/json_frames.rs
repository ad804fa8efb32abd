//! Structure-aware JSON frames checked against what the spec says.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| gateway_sim::fuzzing::json_frames(data));
