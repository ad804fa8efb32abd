//! Hostile and retried producer input against the real Worker (issue 11):
//! safe retries of terminal events, 409 codes that say how the job ended,
//! field, record and batch limits. Each case asserts the status, the error
//! body's code, and that the job's state did not change. The limits are the
//! documented ones (docs/PROTOCOL.md §7), written out here on purpose.

use e2e::{progress, Api, Gateway, Job};
use serde_json::{json, Value};

const MAX_SUMMARY: usize = 128 * 1024;
const MAX_MESSAGE: usize = 64 * 1024;
const MAX_CURRENT_ITEM: usize = 4 * 1024;
const MAX_CODE: usize = 128;
const MAX_EVENT_ID_CHARS: usize = 64;
const MAX_EVENTS: usize = 1000;

fn api() -> Api {
    Gateway::shared().api()
}

async fn new_job(api: &Api) -> Job {
    api.create_job(json!({"pipeline": "csv_import", "totalCount": 10}))
        .await
}

/// The producer's view of the job (`GET /api/jobs/{id}`): everything the
/// room keeps that a refusal could have changed.
async fn state(api: &Api, job: &Job) -> Value {
    let reply = api.job_state_producer(&job.id).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    reply.json
}

/// Posts `body`, asserts the refusal's status and code, and that the job's
/// state is what it was.
async fn refused(api: &Api, job: &Job, body: Value, status: u16, code: &str) {
    let before = state(api, job).await;
    let reply = api.post_events(&job.id, body).await;
    assert_eq!(reply.assert_error(status), code, "{}", reply.text);
    assert_eq!(state(api, job).await, before, "a refusal changed the job");
}

#[tokio::test]
async fn a_retried_terminal_event_answers_its_original_seq() {
    let api = api();
    let job = new_job(&api).await;
    let done = json!({"type": "complete", "eventId": "done", "summary": {"books": 3}});
    assert_eq!(
        api.post_ok(&job.id, json!({"type": "started", "eventId": "go"}))
            .await,
        1
    );
    assert_eq!(api.post_ok(&job.id, done.clone()).await, 2);
    let after = state(&api, &job).await;
    assert_eq!(after["status"], "completed");
    // The 202 was lost: the producer retries, once and again.
    assert_eq!(api.post_ok(&job.id, done.clone()).await, 2);
    assert_eq!(api.post_ok(&job.id, done).await, 2);
    // Another payload under the same id is answered as the first was.
    let as_failed = json!({"type": "failed", "eventId": "done", "code": "x"});
    assert_eq!(api.post_ok(&job.id, as_failed).await, 2);
    // A whole earlier body is a retry too, after the end.
    let both =
        json!([{"type": "started", "eventId": "go"}, {"type": "complete", "eventId": "done"}]);
    assert_eq!(api.post_ok(&job.id, both).await, 2);
    assert_eq!(state(&api, &job).await, after, "retries changed the job");
    // New events are refused, saying how the job ended.
    refused(
        &api,
        &job,
        json!({"type": "complete"}),
        409,
        "job_completed",
    )
    .await;
    let mixed = json!([{"type": "complete", "eventId": "done"}, progress(9, 10)]);
    refused(&api, &job, mixed, 409, "job_completed").await;
}

#[tokio::test]
async fn events_after_the_end_say_how_the_job_ended() {
    let api = api();
    let failed = new_job(&api).await;
    let f = json!({"type": "failed", "eventId": "f", "code": "disk_full", "message": "no space"});
    assert_eq!(api.post_ok(&failed.id, f.clone()).await, 1);
    assert_eq!(api.post_ok(&failed.id, f).await, 1);
    refused(&api, &failed, progress(1, 10), 409, "job_failed").await;

    let canceled = new_job(&api).await;
    assert_eq!(api.post_ok(&canceled.id, progress(1, 10)).await, 1);
    assert_eq!(api.cancel(&canceled.id, &canceled.token).await.status, 202);
    refused(&api, &canceled, progress(2, 10), 409, "job_canceled").await;
    refused(
        &api,
        &canceled,
        json!({"type": "complete"}),
        409,
        "job_canceled",
    )
    .await;
}

#[tokio::test]
async fn each_field_is_bounded_at_its_limit() {
    let api = api();
    let job = new_job(&api).await;
    let text = |n: usize| "m".repeat(n);
    let over_message =
        json!({"type": "progress", "processedCount": 1, "message": text(MAX_MESSAGE + 1)});
    refused(&api, &job, over_message, 422, "field_too_long").await;
    let message = json!({"type": "progress", "processedCount": 1, "message": text(MAX_MESSAGE)});
    assert_eq!(api.post_ok(&job.id, message).await, 1);

    let over_item =
        json!({"type": "progress", "processedCount": 2, "currentItem": text(MAX_CURRENT_ITEM + 1)});
    refused(&api, &job, over_item, 422, "field_too_long").await;
    let item =
        json!({"type": "progress", "processedCount": 2, "currentItem": text(MAX_CURRENT_ITEM)});
    assert_eq!(api.post_ok(&job.id, item).await, 2);

    let long_id = "é".repeat(MAX_EVENT_ID_CHARS + 1);
    let over_id = json!({"type": "progress", "processedCount": 3, "eventId": long_id});
    refused(&api, &job, over_id, 422, "invalid_event").await;
    let id = "é".repeat(MAX_EVENT_ID_CHARS);
    let at_id = json!({"type": "progress", "processedCount": 3, "eventId": id});
    assert_eq!(api.post_ok(&job.id, at_id).await, 3);

    // `summary` counts its JSON text: a string of n - 2 letters and its quotes.
    let over_summary = json!({"type": "complete", "summary": text(MAX_SUMMARY - 1)});
    refused(&api, &job, over_summary, 422, "field_too_long").await;
    let summary = json!({"type": "complete", "summary": text(MAX_SUMMARY - 2)});
    assert_eq!(api.post_ok(&job.id, summary).await, 4);
    let done = state(&api, &job).await;
    assert_eq!(
        done["result"]["summary"].as_str().map(str::len),
        Some(MAX_SUMMARY - 2)
    );

    let failing = new_job(&api).await;
    let over_code = json!({"type": "failed", "code": "c".repeat(MAX_CODE + 1)});
    refused(&api, &failing, over_code, 422, "field_too_long").await;
    let over_fail_message = json!({"type": "failed", "message": text(MAX_MESSAGE + 1)});
    refused(&api, &failing, over_fail_message, 422, "field_too_long").await;
    let code =
        json!({"type": "failed", "code": "c".repeat(MAX_CODE), "message": text(MAX_MESSAGE)});
    assert_eq!(api.post_ok(&failing.id, code).await, 1);
}

#[tokio::test]
async fn megabyte_fields_and_an_outgrown_record_are_refused_and_the_job_goes_on() {
    let api = api();
    let job = new_job(&api).await;
    let mut sub = api.subscribe(&job.id, &job.token).await;
    sub.expect_type("snapshot").await;
    sub.ping_literal().await;
    // The review's case: a ~0.95 MB message, then a ~0.95 MB summary.
    let big = "x".repeat(950_000);
    let message = json!({"type": "progress", "processedCount": 1, "message": big});
    refused(&api, &job, message, 422, "field_too_long").await;
    let summary = json!({"type": "complete", "summary": big});
    refused(&api, &job, summary, 422, "field_too_long").await;
    // Legal fields whose stored form outgrows 512 KiB: control characters
    // are stored escaped (6 bytes each), quotes in a summary as 4.
    let controls =
        json!({"type": "progress", "processedCount": 1, "message": "\u{1}".repeat(50_000)});
    assert_eq!(api.post_ok(&job.id, controls).await, 1);
    sub.expect_type("job_progress").await;
    let quotes = json!({"type": "complete", "summary": "\"".repeat(60_000)});
    refused(&api, &job, quotes, 413, "job_state_too_large").await;
    // Nothing reached the app, no socket was closed, and the job goes on.
    let done = json!({"type": "complete", "summary": "\"".repeat(10_000)});
    assert_eq!(api.post_ok(&job.id, done).await, 2);
    let complete = sub.expect_type("job_complete").await;
    assert_eq!(complete["seq"], 2);
    assert_eq!(sub.expect_close().await.0, 1000);
}

#[tokio::test]
async fn a_request_holds_at_most_1000_events() {
    let api = api();
    let job = new_job(&api).await;
    let batch = |n: usize| {
        Value::Array(
            (1..=n)
                .map(|i| json!({"type": "progress", "processedCount": i, "eventId": format!("e{i}")}))
                .collect(),
        )
    };
    let over = api.post_events(&job.id, batch(MAX_EVENTS + 1)).await;
    assert_eq!(over.assert_error(413), "too_many_events");
    assert_eq!(state(&api, &job).await["seq"], 0);
    assert_eq!(api.post_ok(&job.id, batch(MAX_EVENTS)).await, 1000);
    let after = state(&api, &job).await;
    assert_eq!(after["processedCount"], 1000);
    // Retried whole: every id is remembered.
    assert_eq!(api.post_ok(&job.id, batch(MAX_EVENTS)).await, 1000);
    assert_eq!(state(&api, &job).await, after);
}
