//! Rules of the core's randomness: a seed expands into the SplitMix64 stream
//! (Vigna's reference values), so a replay, the model and a fuzz input see the
//! same tokens every time.

use gateway_core::entropy::Entropy;

/// SplitMix64's published reference: the stream of seed 1234567.
const REFERENCE_1234567: [u64; 4] = [
    6_457_827_717_110_365_317,
    3_203_168_211_198_807_973,
    9_817_491_932_198_370_423,
    4_593_380_528_125_082_431,
];

/// The stream of seed 0.
const REFERENCE_0: [u64; 4] = [
    0xe220_a839_7b1d_cdaf,
    0x6e78_9e6a_a1b9_65f4,
    0x06c4_5d18_8009_454f,
    0xf88b_b8a8_724c_81ec,
];

fn stream(seed: u64) -> Vec<u64> {
    let mut e = Entropy::from_seed(seed.to_le_bytes());
    (0..4).map(|_| e.next_u64()).collect()
}

#[test]
fn a_seed_expands_into_the_splitmix64_reference_stream() {
    assert_eq!(stream(1_234_567), REFERENCE_1234567);
    assert_eq!(stream(0), REFERENCE_0);
}

#[test]
fn seed_bytes_are_read_little_endian() {
    let mut e = Entropy::from_seed([1, 2, 3, 4, 5, 6, 7, 8]);
    assert_eq!(e.next_u64(), 0x02b9_b24b_d81c_af32);
    assert_eq!(e.next_u64(), 0xcb20_c6cd_4cd3_3017);
}

#[test]
fn sixteen_token_bytes_are_the_next_two_draws_little_endian() {
    let mut e = Entropy::from_seed(1_234_567_u64.to_le_bytes());
    let bytes = e.next_bytes16();
    let mut want = [0u8; 16];
    want[..8].copy_from_slice(&REFERENCE_1234567[0].to_le_bytes());
    want[8..].copy_from_slice(&REFERENCE_1234567[1].to_le_bytes());
    assert_eq!(bytes, want);
    // The stream goes on after them, never repeating them.
    assert_eq!(e.next_u64(), REFERENCE_1234567[2]);
}

#[test]
fn the_same_seed_replays_the_same_stream_and_a_copy_does_not_advance_it() {
    let mut a = Entropy::from_seed([9; 8]);
    let mut b = a;
    assert_eq!(a.next_u64(), b.next_u64());
    assert_eq!(a.next_bytes16(), b.next_bytes16());
    assert_ne!(stream(1), stream(2));
}
