//! The storage layout (issue 12, part 3): what one event writes does not
//! grow with the job, the remembered event ids survive a cold restore and
//! are capped at 1,000, a write is one atomic operation of at most 128 keys,
//! and records of the old layout (one `job` value with the ids inside) still
//! restore.

use gateway_core::protocol::Seq;
use gateway_core::room::storage::{read_stored, MAX_KEYS_PER_WRITE, RECORD_KEY};
use gateway_core::room::{Response, RoomConfig};
use gateway_core::Millis;
use gateway_sim::{Sim, SimStats};
use serde_json::{json, Value};

const T0: Millis = Millis(1_763_000_000_000);
/// The documented retry memory (docs/PROTOCOL.md), written out so that a
/// changed constant fails a test.
const REMEMBERED: u64 = 1_000;

fn sim() -> Sim {
    let mut s = Sim::new(RoomConfig::default(), T0, 12);
    assert_eq!(s.create_default_job(None).status, 202);
    s
}

fn seq_of(r: &Response) -> u64 {
    assert_eq!(r.status, 202, "{}", r.body);
    let v: Value = serde_json::from_str(&r.body).unwrap();
    v["seq"].as_u64().unwrap()
}

fn event(k: u64) -> String {
    json!({"type": "progress", "processedCount": k, "eventId": format!("event-{k:06}")}).to_string()
}

/// Sends event `k` (with id `event-k`) and answers what its write wrote:
/// (keys, bytes).
fn send(s: &mut Sim, k: u64) -> (u32, u64) {
    s.stats = SimStats::default();
    assert_eq!(seq_of(&s.producer(&event(k))), k);
    assert_eq!(s.stats.writes, 1, "one write per request");
    (s.stats.written_keys, s.stats.written_bytes)
}

/// Sends events `1..=n`, one per request; the bytes each one wrote.
fn fill(s: &mut Sim, n: u64) -> Vec<u64> {
    (1..=n)
        .map(|k| {
            let (keys, bytes) = send(s, k);
            assert_eq!(keys, 2, "event {k}: the hot state and one chunk");
            bytes
        })
        .collect()
}

fn remembered(s: &Sim) -> Vec<String> {
    s.job()
        .unwrap()
        .applied
        .iter()
        .map(|(id, _)| id.clone())
        .collect()
}

#[test]
fn bytes_written_per_event_do_not_grow_with_the_job() {
    let mut s = sim();
    let bytes = fill(&mut s, 2_000);
    let at = |k: usize| bytes[k - 1];
    // The 10th and the 2,000th event both fill a chunk of 10 ids; only the
    // numbers (seq, counts, each id's seq) grow by their digits. The old
    // layout wrote about 30 bytes more per remembered id.
    assert!(at(2_000) <= at(10) + 64, "{} vs {}", at(2_000), at(10));
    // No event writes more than the first chunk's worth: nothing grows
    // with the job's length.
    let first_chunk = bytes[..10].iter().max().unwrap();
    assert!(
        bytes.iter().all(|b| *b <= first_chunk + 64),
        "max {}",
        bytes.iter().max().unwrap()
    );
    // And far below what the whole record of 1,000 ids would be.
    assert!(at(2_000) < 1_500, "{}", at(2_000));
}

#[test]
fn duplicates_are_still_detected_after_a_cold_restore() {
    let mut s = sim();
    fill(&mut s, 25);
    s.evict();
    s.wake();
    assert_eq!(remembered(&s).len(), 25);
    // A retried event answers its original seq and writes nothing.
    s.stats = SimStats::default();
    assert_eq!(seq_of(&s.producer(&event(7))), 7);
    assert_eq!(s.stats.writes, 0);
    assert_eq!(s.job().unwrap().seq, Seq(25));
    // The next new event follows on.
    assert_eq!(send(&mut s, 26).0, 2);
}

#[test]
fn exactly_1000_ids_are_remembered_and_the_1001st_evicts_the_oldest() {
    let mut s = sim();
    fill(&mut s, REMEMBERED);
    assert_eq!(remembered(&s).len(), 1_000);
    assert_eq!(remembered(&s)[0], "event-000001");
    // At the limit, after a cold restore, the oldest is still remembered.
    s.evict();
    s.wake();
    assert_eq!(remembered(&s).len(), 1_000);
    assert_eq!(seq_of(&s.producer(&event(1))), 1);
    // One over: the oldest goes, the second oldest stays, in memory and on
    // disk.
    send(&mut s, 1_001);
    assert_eq!(remembered(&s).len(), 1_000);
    assert_eq!(remembered(&s)[0], "event-000002");
    s.evict();
    s.wake();
    assert_eq!(remembered(&s).len(), 1_000);
    assert_eq!(remembered(&s)[0], "event-000002");
    assert_eq!(seq_of(&s.producer(&event(2))), 2, "still remembered");
    // The forgotten id is a new event now.
    let body = json!({"type": "progress", "processedCount": 1_001, "eventId": "event-000001"});
    assert_eq!(seq_of(&s.producer(&body.to_string())), 1_002);
}

#[test]
fn a_full_batch_of_ids_is_one_write_within_the_key_limit() {
    let mut s = sim();
    // Five ids first, so the batch's 1,000 ids straddle 101 chunks.
    fill(&mut s, 5);
    let batch: Vec<Value> = (6..=1_005)
        .map(|k| json!({"type": "progress", "processedCount": k, "eventId": format!("event-{k:06}")}))
        .collect();
    s.stats = SimStats::default();
    assert_eq!(seq_of(&s.producer(&Value::Array(batch).to_string())), 1_005);
    assert_eq!(s.stats.writes, 1);
    assert_eq!(s.stats.written_keys, 102, "the hot state and 101 chunks");
    assert!(s.stats.written_keys as usize <= MAX_KEYS_PER_WRITE);
    s.evict();
    s.wake();
    assert_eq!(remembered(&s).len(), 1_000);
    assert_eq!(remembered(&s)[0], "event-000006");
    assert_eq!(seq_of(&s.producer(&event(6))), 6);
}

/// Turns the stored keys into the old layout: one `job` value with the
/// ids inside (`applied`, no `remembered`), no chunk keys.
fn to_old_layout(s: &mut Sim) {
    let job = s.read_stored().unwrap();
    let mut v = serde_json::to_value(&job).unwrap();
    let o = v.as_object_mut().unwrap();
    o.remove("remembered");
    o.insert(
        "applied".into(),
        serde_json::to_value(&job.applied).unwrap(),
    );
    s.stored.clear();
    s.stored.insert(RECORD_KEY.into(), v.to_string());
}

#[test]
fn a_record_of_the_old_layout_restores_and_its_first_write_moves_the_ids_out() {
    let mut s = sim();
    fill(&mut s, 1_003);
    s.evict();
    to_old_layout(&mut s);
    assert_eq!(s.stored.len(), 1);
    let old = read_stored(s.stored.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .unwrap()
        .unwrap();
    assert_eq!((old.remembered, old.applied.len()), (0, 1_000));
    s.wake();
    assert_eq!(remembered(&s).len(), 1_000);
    assert_eq!(remembered(&s)[0], "event-000004");
    // Duplicates are detected from the old record.
    assert_eq!(seq_of(&s.producer(&event(4))), 4);
    assert_eq!(seq_of(&s.producer(&event(1_003))), 1_003);
    // The first write stores every remembered id in chunks (101: the window
    // starts inside one), and the hot state without them.
    s.stats = SimStats::default();
    assert_eq!(seq_of(&s.producer(&event(1_004))), 1_004);
    assert_eq!(s.stats.written_keys, 102);
    assert!(
        !s.stored[RECORD_KEY].contains("event-0"),
        "no ids in the hot state"
    );
    // Then one chunk per event again.
    assert_eq!(send(&mut s, 1_005).0, 2);
    s.evict();
    s.wake();
    let ids = remembered(&s);
    assert_eq!(ids.len(), 1_000);
    assert_eq!(ids[0], "event-000006");
    assert_eq!(ids[999], "event-001005");
    assert_eq!(seq_of(&s.producer(&event(6))), 6);
}

#[test]
fn an_old_layout_record_without_ids_restores() {
    let mut s = sim();
    s.producer(r#"{"type":"progress","processedCount":1}"#);
    s.evict();
    to_old_layout(&mut s);
    s.wake();
    assert_eq!(s.job().unwrap().seq, Seq(1));
    assert_eq!(send(&mut s, 2).0, 2);
    s.evict();
    s.wake();
    assert_eq!(remembered(&s), vec!["event-000002".to_owned()]);
}

#[test]
fn a_missing_chunk_is_an_error_not_a_forgotten_id() {
    let mut s = sim();
    fill(&mut s, 15);
    s.stored.remove("ids/0");
    let e = read_stored(s.stored.iter().map(|(k, v)| (k.as_str(), v.as_str()))).unwrap_err();
    assert!(e.to_string().contains("ids/0"), "{e}");
}
