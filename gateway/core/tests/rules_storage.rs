//! Rules of the storage layout (`room/storage.rs`) that the scenarios in
//! `storage.rs` leave open: what a write counts as its size, and that a
//! chunk of remembered ids read back from the wrong place is refused with
//! what it holds, never read as other ids.

use gateway_core::room::storage::{read_stored, Write, RECORD_KEY};
use gateway_core::room::RoomConfig;
use gateway_core::Millis;
use gateway_sim::{Sim, SimStats};
use serde_json::json;

const T0: Millis = Millis(1_763_000_000_000);

fn sim() -> Sim {
    let mut s = Sim::new(RoomConfig::default(), T0, 7);
    assert_eq!(s.create_default_job(None).status, 202);
    s
}

fn send(s: &mut Sim, k: u64) {
    let body = json!({"type": "progress", "processedCount": k, "eventId": format!("e-{k}")});
    assert_eq!(s.producer(&body.to_string()).status, 202);
}

#[test]
fn a_write_is_as_large_as_its_keys_and_values() {
    let w = Write {
        entries: vec![
            ("job".into(), r#"{"seq":1}"#.into()),
            ("ids/0".into(), "[]".into()),
        ],
    };
    assert_eq!(w.bytes(), 3 + 9 + 5 + 2);
    assert_eq!(Write { entries: vec![] }.bytes(), 0);
    // The size the runtime sees for an event: the hot state and the chunk
    // its id went into, keys included.
    let mut s = sim();
    s.stats = SimStats::default();
    send(&mut s, 1);
    assert_eq!(s.stats.written_keys, 2);
    let stored = |k: &str| k.len() + s.stored[k].len();
    assert_eq!(
        s.stats.written_bytes,
        (stored(RECORD_KEY) + stored("ids/0")) as u64
    );
}

#[test]
fn a_chunk_under_the_wrong_key_is_an_error_saying_which_ids_it_holds() {
    let mut s = sim();
    for k in 1..=20 {
        send(&mut s, k);
    }
    let read = |s: &Sim| read_stored(s.stored.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    assert_eq!(read(&s).unwrap().unwrap().applied.len(), 20);
    // ids/1 (ids 10 to 19) overwritten with ids/0's chunk (ids 0 to 9), as a
    // lost or misplaced write would leave it.
    let first = s.stored["ids/0"].clone();
    s.stored.insert("ids/1".into(), first);
    let e = read(&s).unwrap_err().to_string();
    assert!(e.contains("ids/1"), "{e}");
    assert!(e.contains("holds ids from 0, not id 10"), "{e}");
}
