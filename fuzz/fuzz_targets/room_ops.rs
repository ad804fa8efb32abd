//! Scripts of room operations in the simulation, invariants after every step.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| gateway_sim::fuzzing::room_ops(data));
