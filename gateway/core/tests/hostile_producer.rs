//! Hostile and retried producer input (issue 11, part 3 and the first
//! sentence of part 5): safe retries of terminal events, 409 codes that say
//! how the job ended, field and record bounds, the batch cap, and the end of
//! an abandoned job. Every refusal must leave the job exactly as it was.

use gateway_core::client::{JobEnd, State};
use gateway_core::protocol::{JobStatus, Seq};
use gateway_core::room::Response;
use gateway_core::room::{Input, JobRecord, Phase, RoomConfig};
use gateway_core::token::Token;
use gateway_core::{CloseCode, Millis};
use gateway_sim::Sim;
use serde_json::{json, Value};

const T0: Millis = Millis(1_763_000_000_000);

// The documented limits (docs/PROTOCOL.md §7), written out so that a changed
// constant fails a test.
const MAX_SUMMARY_BYTES: usize = 131_072;
const MAX_MESSAGE_BYTES: usize = 65_536;
const MAX_CURRENT_ITEM_BYTES: usize = 4_096;
const MAX_CODE_BYTES: usize = 128;
const MAX_RECORD_BYTES: usize = 524_288;
const MAX_EVENTS_PER_REQUEST: usize = 1_000;
const JOB_EXPIRED: &str = "job_expired";

fn sim() -> Sim {
    let mut s = Sim::new(RoomConfig::default(), T0, 11);
    assert_eq!(s.create_default_job(Some(10)).status, 202);
    s
}

fn post(s: &mut Sim, body: &Value) -> Response {
    s.producer(&body.to_string())
}

fn seq_of(r: &Response) -> u64 {
    assert_eq!(r.status, 202, "{}", r.body);
    let v: Value = serde_json::from_str(&r.body).unwrap();
    v["seq"].as_u64().unwrap()
}

/// The refusal's status and `error.code`; the message must say something.
fn refusal(r: &Response) -> (u16, String) {
    let v: Value = serde_json::from_str(&r.body).unwrap();
    let message = v["error"]["message"].as_str().unwrap_or_default();
    assert!(message.len() > 10, "a refusal says what to do: {}", r.body);
    (r.status, v["error"]["code"].as_str().unwrap().to_owned())
}

fn record(s: &Sim) -> JobRecord {
    s.job().unwrap().clone()
}

/// Sends `body`, expects the refusal, and checks that nothing changed:
/// neither the room's record, nor storage, nor what any socket got.
fn refused(s: &mut Sim, body: &str, status: u16, code: &str) {
    // A hibernated room reads its delivered mark when it wakes.
    s.wake();
    let (before, stored, frames) = (record(s), s.storage.clone(), frames_sent(s));
    let r = s.producer(body);
    assert_eq!(refusal(&r), (status, code.to_owned()), "{}", r.body);
    s.settle();
    assert_eq!(record(s), before, "a refused request changed the job");
    assert_eq!(s.storage, stored, "a refused request wrote storage");
    assert_eq!(frames_sent(s), frames, "a refused request reached a socket");
}

fn frames_sent(s: &Sim) -> usize {
    s.logs.values().map(|l| l.frames.len()).sum()
}

fn with_one_subscriber() -> Sim {
    let mut s = sim();
    let c = s.add_client(Some("phone"));
    s.start(c);
    s.settle();
    assert_eq!(s.clients[c].machine.state(), &State::Active);
    s
}

// --- 1. retried terminal events ---------------------------------------------

#[test]
fn a_retried_complete_answers_202_with_its_original_seq() {
    let mut s = with_one_subscriber();
    let done = json!({"type": "complete", "eventId": "done", "summary": {"books": 3}});
    assert_eq!(
        seq_of(&post(&mut s, &json!({"type": "started", "eventId": "go"}))),
        1
    );
    assert_eq!(seq_of(&post(&mut s, &done)), 2);
    s.settle();
    let (after, frames) = (record(&s), frames_sent(&s));
    // The producer's request timed out although it succeeded: it retries.
    assert_eq!(seq_of(&post(&mut s, &done)), 2);
    assert_eq!(seq_of(&post(&mut s, &done)), 2);
    s.settle();
    assert_eq!(record(&s), after);
    assert_eq!(frames_sent(&s), frames, "a retry is not fanned out again");
    // A new event (without an id, or with a new one) is still refused.
    refused(&mut s, r#"{"type":"complete"}"#, 409, "job_completed");
    refused(
        &mut s,
        r#"{"type":"complete","eventId":"done-2"}"#,
        409,
        "job_completed",
    );
}

#[test]
fn a_retried_failed_answers_202_with_its_original_seq() {
    let mut s = sim();
    let failed =
        json!({"type": "failed", "eventId": "f", "code": "disk_full", "message": "no space"});
    assert_eq!(seq_of(&post(&mut s, &failed)), 1);
    let after = record(&s);
    assert_eq!(seq_of(&post(&mut s, &failed)), 1);
    assert_eq!(record(&s), after);
}

#[test]
fn a_body_whose_events_were_all_applied_answers_the_last_original_seq_after_the_end() {
    let mut s = sim();
    let batch = json!([
        {"type": "progress", "processedCount": 1, "eventId": "a"},
        {"type": "progress", "processedCount": 2, "eventId": "b"},
        {"type": "complete", "eventId": "c", "summary": null},
    ]);
    assert_eq!(seq_of(&post(&mut s, &batch)), 3);
    let after = record(&s);
    assert_eq!(seq_of(&post(&mut s, &batch)), 3);
    // Any part of it, in any order, is a retry too.
    let part = json!([
        {"type": "progress", "processedCount": 2, "eventId": "b"},
        {"type": "progress", "processedCount": 1, "eventId": "a"},
    ]);
    assert_eq!(seq_of(&post(&mut s, &part)), 1);
    assert_eq!(record(&s), after);
    // One new event makes it a new body: refused whole.
    let mixed = json!([
        {"type": "complete", "eventId": "c"},
        {"type": "progress", "processedCount": 3, "eventId": "d"},
    ]);
    refused(&mut s, &mixed.to_string(), 409, "job_completed");
    let mixed = json!([{"type": "complete", "eventId": "c"}, {"type": "complete"}]);
    refused(&mut s, &mixed.to_string(), 409, "job_completed");
}

#[test]
fn a_repeated_id_with_a_different_payload_is_answered_as_the_first() {
    let mut s = sim();
    let first = json!({"type": "progress", "processedCount": 5, "eventId": "x", "message": "five"});
    assert_eq!(seq_of(&post(&mut s, &first)), 1);
    let after = record(&s);
    let other =
        json!({"type": "progress", "processedCount": 7, "eventId": "x", "message": "seven"});
    assert_eq!(seq_of(&post(&mut s, &other)), 1);
    assert_eq!(
        record(&s),
        after,
        "the id, not the payload, names the event"
    );
    let done = json!({"type": "complete", "eventId": "end", "summary": 1});
    assert_eq!(seq_of(&post(&mut s, &done)), 2);
    let after = record(&s);
    let as_failed = json!({"type": "failed", "eventId": "end", "code": "oops"});
    assert_eq!(seq_of(&post(&mut s, &as_failed)), 2);
    assert_eq!(record(&s), after);
    assert!(matches!(after.phase, Phase::Completed { .. }));
}

#[test]
fn a_repeat_within_one_body_is_applied_once() {
    let mut s = sim();
    let batch = json!([
        {"type": "progress", "processedCount": 1, "eventId": "a"},
        {"type": "progress", "processedCount": 9, "eventId": "a"},
        {"type": "progress", "processedCount": 2, "eventId": "b"},
        {"type": "progress", "processedCount": 9, "eventId": "a"},
    ]);
    assert_eq!(
        seq_of(&post(&mut s, &batch)),
        1,
        "the last event's seq: a's"
    );
    let job = record(&s);
    assert_eq!((job.seq, job.processed_count), (Seq(2), 2));
}

// --- 2. 409 says how the job ended ------------------------------------------

#[test]
fn events_after_the_end_are_refused_with_how_the_job_ended() {
    let next = r#"{"type":"progress","processedCount":9}"#;
    let mut s = sim();
    assert_eq!(s.producer(r#"{"type":"complete"}"#).status, 202);
    refused(&mut s, next, 409, "job_completed");

    let mut s = sim();
    assert_eq!(s.producer(r#"{"type":"failed"}"#).status, 202);
    refused(&mut s, next, 409, "job_failed");

    let mut s = sim();
    let token = s.token.clone().unwrap().0.expose().to_owned();
    let r = s.room_request(Input::Cancel {
        token: token.clone(),
    });
    assert_eq!(r.status, 202);
    refused(&mut s, next, 409, "job_canceled");
    refused(&mut s, r#"{"type":"complete"}"#, 409, "job_canceled");
    // A second cancel is told the same.
    let r = s.room_request(Input::Cancel { token });
    assert_eq!(refusal(&r), (409, "job_canceled".to_owned()));
}

// --- 3. field and record bounds ---------------------------------------------

/// A JSON string literal whose decoded text is `n` bytes.
fn text(n: usize) -> String {
    "m".repeat(n)
}

#[test]
fn message_is_bounded_in_every_event_that_carries_it() {
    let exact = text(MAX_MESSAGE_BYTES);
    let over = text(MAX_MESSAGE_BYTES + 1);
    for (kind, extra) in [
        ("started", json!({})),
        ("progress", json!({"processedCount": 1})),
        ("failed", json!({"code": "c"})),
    ] {
        let mut s = sim();
        let mut body = extra.clone();
        body["type"] = kind.into();
        body["message"] = over.clone().into();
        refused(&mut s, &body.to_string(), 422, "field_too_long");
        body["message"] = exact.clone().into();
        assert_eq!(seq_of(&post(&mut s, &body)), 1, "{kind}");
    }
    // Bytes, not characters: 2-byte characters reach it at half the count.
    let mut s = sim();
    let wide = "é".repeat(MAX_MESSAGE_BYTES / 2);
    let over = format!("{wide}m");
    refused(
        &mut s,
        &json!({"type": "started", "message": over}).to_string(),
        422,
        "field_too_long",
    );
    assert_eq!(
        seq_of(&post(&mut s, &json!({"type": "started", "message": wide}))),
        1
    );
}

#[test]
fn current_item_is_bounded() {
    let mut s = sim();
    let body = |n: usize| {
        json!({"type": "progress", "processedCount": 1, "currentItem": text(n)}).to_string()
    };
    refused(
        &mut s,
        &body(MAX_CURRENT_ITEM_BYTES + 1),
        422,
        "field_too_long",
    );
    assert_eq!(s.producer(&body(MAX_CURRENT_ITEM_BYTES)).status, 202);
}

#[test]
fn failure_code_is_bounded() {
    let mut s = sim();
    let body = |n: usize| json!({"type": "failed", "code": "c".repeat(n)}).to_string();
    refused(&mut s, &body(MAX_CODE_BYTES + 1), 422, "field_too_long");
    assert_eq!(s.producer(&body(MAX_CODE_BYTES)).status, 202);
}

#[test]
fn summary_is_bounded_by_its_json_text() {
    let mut s = sim();
    // `"mm…m"`: the text is the string and its two quotes.
    let body = |n: usize| format!(r#"{{"type":"complete","summary":"{}"}}"#, text(n - 2));
    refused(&mut s, &body(MAX_SUMMARY_BYTES + 1), 422, "field_too_long");
    assert_eq!(s.producer(&body(MAX_SUMMARY_BYTES)).status, 202);
    let Phase::Completed { summary, .. } = record(&s).phase else {
        panic!("completed")
    };
    assert_eq!(summary.len(), MAX_SUMMARY_BYTES);
}

#[test]
fn event_id_is_bounded_at_64_characters() {
    let mut s = sim();
    let body = |id: String| json!({"type": "started", "eventId": id}).to_string();
    refused(&mut s, &body("é".repeat(65)), 422, "invalid_event");
    assert_eq!(s.producer(&body("é".repeat(64))).status, 202);
}

#[test]
fn a_megabyte_message_then_a_megabyte_summary_are_refused_and_change_nothing() {
    // The review's case: each fits the 1 MiB body, together they outgrew
    // what one storage write holds (2 MB) and every write then failed.
    let mut s = with_one_subscriber();
    assert_eq!(s.producer(r#"{"type":"started"}"#).status, 202);
    s.settle();
    let big = "x".repeat(950_000);
    refused(
        &mut s,
        &json!({"type": "progress", "processedCount": 1, "message": big}).to_string(),
        422,
        "field_too_long",
    );
    refused(
        &mut s,
        &format!(r#"{{"type":"complete","summary":"{big}"}}"#),
        422,
        "field_too_long",
    );
    assert_eq!(s.live_sockets(), 1, "no socket was closed");
    assert_eq!(record(&s).phase.status(), JobStatus::Processing);
    // The job goes on.
    assert_eq!(s.producer(r#"{"type":"complete"}"#).status, 202);
}

/// A job whose record is large with legal fields: a message of control
/// characters is stored escaped, six bytes for each.
fn bulky() -> Sim {
    let mut s = sim();
    let message = "\u{1}".repeat(50_000);
    let body = json!({"type": "progress", "processedCount": 1, "message": message});
    assert_eq!(s.producer(&body.to_string()).status, 202);
    s
}

/// A summary whose JSON text holds `quotes` escaped quotes and `plain`
/// letters: each quote is stored as four bytes, each letter as one.
fn summary(quotes: usize, plain: usize) -> String {
    format!(
        r#"{{"type":"complete","summary":"{}{}"}}"#,
        "\\\"".repeat(quotes),
        "a".repeat(plain)
    )
}

fn record_len(s: &Sim) -> usize {
    serde_json::to_vec(s.job().unwrap()).unwrap().len()
}

#[test]
fn the_record_is_measured_before_it_is_written() {
    let mut trial = bulky();
    assert_eq!(trial.producer(&summary(0, 0)).status, 202);
    let base = record_len(&trial);
    let room = MAX_RECORD_BYTES - base;
    let (quotes, plain) = (room / 4, room % 4);
    assert!(
        2 + 2 * quotes + plain <= MAX_SUMMARY_BYTES,
        "the summary is legal"
    );
    // Exactly the limit.
    let mut s = bulky();
    assert_eq!(s.producer(&summary(quotes, plain)).status, 202);
    assert_eq!(record_len(&s), MAX_RECORD_BYTES);
    assert_eq!(s.storage.as_ref().map(|r| r.seq), Some(Seq(2)));
    // One byte over: refused, and the job goes on.
    let mut s = bulky();
    refused(
        &mut s,
        &summary(quotes, plain + 1),
        413,
        "job_state_too_large",
    );
    assert_eq!(record(&s).phase.status(), JobStatus::Processing);
    assert_eq!(s.producer(r#"{"type":"complete"}"#).status, 202);
}

// --- 4. batches ---------------------------------------------------------------

fn batch(n: usize, ids: bool) -> String {
    let events: Vec<Value> = (1..=n)
        .map(|i| {
            let mut e = json!({"type": "progress", "processedCount": i});
            if ids {
                e["eventId"] = format!("e{i}").into();
            }
            e
        })
        .collect();
    Value::Array(events).to_string()
}

#[test]
fn a_request_holds_at_most_1000_events() {
    let mut s = sim();
    refused(
        &mut s,
        &batch(MAX_EVENTS_PER_REQUEST + 1, false),
        413,
        "too_many_events",
    );
    assert_eq!(
        seq_of(&s.producer(&batch(MAX_EVENTS_PER_REQUEST, false))),
        1000
    );
}

#[test]
fn a_full_batch_of_ids_is_recognised_whole_when_retried() {
    let mut s = sim();
    let full = batch(MAX_EVENTS_PER_REQUEST, true);
    assert_eq!(seq_of(&s.producer(&full)), 1000);
    let after = record(&s);
    assert_eq!(seq_of(&s.producer(&full)), 1000);
    assert_eq!(record(&s), after);
    assert_eq!(after.applied.len(), MAX_EVENTS_PER_REQUEST);
}

// --- 5. abandoned jobs --------------------------------------------------------

#[test]
fn an_abandoned_job_ends_as_failed_with_job_expired_then_4001() {
    // The subscriber stays connected past the default 24 h session cap
    // (which would close it 1008 first): the cap here is 48 h.
    let config = RoomConfig {
        max_session: Millis::from_hours(48),
        ..RoomConfig::default()
    };
    let mut s = Sim::new(config, T0, 11);
    assert_eq!(s.create_default_job(Some(10)).status, 202);
    let c = s.add_client(Some("phone"));
    s.start(c);
    s.settle();
    assert_eq!(s.clients[c].machine.state(), &State::Active);
    assert_eq!(
        seq_of(&s.producer(r#"{"type":"progress","processedCount":1}"#)),
        1
    );
    s.settle();
    // Just before the retention period: nothing happens.
    s.advance(Millis::from_hours(24).minus(Millis(1)));
    assert_eq!(s.live_sockets(), 1);
    s.advance(Millis::from_hours(1));
    let log = s.logs.values().next().unwrap();
    let last = log.frames.last().unwrap();
    assert_eq!(last.seq, Some(Seq(2)));
    assert!(
        matches!(&last.message, gateway_core::protocol::ServerMessage::Error { code, retryable: false, .. } if code == JOB_EXPIRED)
    );
    assert_eq!(log.close, Some(CloseCode::JobFailed));
    assert!(matches!(
        s.clients[0].machine.state(),
        State::Completed(JobEnd::Failed { code, .. }) if code == JOB_EXPIRED
    ));
    // Kept as failed: the producer and a late subscriber learn the end.
    let stored = s.storage.clone().expect("the record is kept");
    assert!(matches!(&stored.phase, Phase::Failed { code, .. } if code == JOB_EXPIRED));
    refused(
        &mut s,
        r#"{"type":"progress","processedCount":2}"#,
        409,
        "job_failed",
    );
    // The backend gives a late app a token (the create-time one expired).
    let r = s.room_request(Input::IssueToken { random: [9; 16] });
    let v: Value = serde_json::from_str(&r.body).unwrap();
    let token = Token::from_string(v["token"].as_str().unwrap().to_owned());
    let late = s.add_client_with(Some("web"), token, v["expiresAt"].as_u64().map(Millis));
    s.start(late);
    s.settle();
    assert!(matches!(
        s.clients[late].machine.state(),
        State::Completed(JobEnd::Failed { code, .. }) if code == JOB_EXPIRED
    ));
    // Forgotten one retention after the end.
    s.advance(Millis::from_hours(24));
    assert!(s.storage.is_none());
    assert_eq!(s.producer(r#"{"type":"complete"}"#).status, 404);
}

#[test]
fn a_job_that_never_started_expires_too() {
    let mut s = sim();
    s.advance(Millis::from_hours(25));
    let stored = s.storage.clone().expect("the record is kept");
    assert_eq!(stored.seq, Seq(1));
    assert!(matches!(&stored.phase, Phase::Failed { code, .. } if code == JOB_EXPIRED));
}
