//! Producer bodies: `POST …/events` and `POST /api/jobs` (SPEC §1, §3).
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| gateway_sim::fuzzing::producer_body(data));
