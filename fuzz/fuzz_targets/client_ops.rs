//! Scripts of client-machine inputs.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| gateway_sim::fuzzing::client_ops(data));
