//! Hostile input against the real Worker in local workerd (issue 11, part 3):
//! loose parsing (lastSeq forms, integers beyond 2^53 − 1, huge numbers in a
//! ping, duplicate keys, summaries beyond 64 bits) and producer-issued tokens.
//! Each case asserts the status or close code, the error body's code, and that
//! the job's state is unchanged afterwards.

use std::time::Duration;

use e2e::{Api, Gateway, Job, Reply, Sub, WsEvent, FRAME_TIMEOUT};
use serde_json::{json, Value};

const MAX_SAFE: u64 = 9_007_199_254_740_991;

fn api() -> Api {
    Gateway::shared().api()
}

async fn new_job(api: &Api) -> Job {
    api.create_job(json!({"pipeline": "csv_import", "totalCount": 10}))
        .await
}

/// A producer request with a body sent exactly as written.
async fn producer_text(api: &Api, path: &str, body: &str) -> Reply {
    let auth = format!("Bearer {}", api.secret());
    api.raw(
        "POST",
        path,
        &[("authorization", &auth)],
        Some(body.to_owned()),
    )
    .await
}

async fn post_text(api: &Api, job: &Job, body: &str) -> Reply {
    producer_text(api, &format!("/api/jobs/{}/events", job.id), body).await
}

/// The job as the producer inspects it.
async fn state(api: &Api, job: &Job) -> Value {
    let reply = api.job_state_producer(&job.id).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    reply.json
}

async fn snapshot(sub: &mut Sub) -> Value {
    let frame = sub.next_json().await;
    assert!(
        frame["type"] == "snapshot" || frame["type"] == "reconnected",
        "{frame}"
    );
    frame
}

#[tokio::test]
async fn last_seq_is_canonical_decimal_up_to_2_pow_53_minus_1() {
    let api = api();
    let job = new_job(&api).await;
    let before = state(&api, &job).await;
    for bad in ["%2B5", "+5", "007", "00", "-0", "9007199254740992", "1e3"] {
        let query = format!(
            "{}&lastSeq={bad}",
            Api::query(&job.id, &job.token, None, None)
        );
        let reply = api.refused_upgrade(&query).await;
        assert_eq!(reply.assert_error(400), "invalid_last_seq", "{bad}");
    }
    assert_eq!(state(&api, &job).await, before);
    // The limit itself is a resume from ahead of the room: not recovered.
    let mut sub = api
        .try_subscribe(&job.id, &job.token, None, Some(MAX_SAFE))
        .await
        .unwrap_or_else(|e| panic!("{} {}", e.0.status, e.0.text));
    let first = snapshot(&mut sub).await;
    assert_eq!(first["type"], "reconnected");
    assert_eq!(first["payload"]["recovered"], false);
    let mut zero = api
        .try_subscribe(&job.id, &job.token, None, Some(0))
        .await
        .unwrap_or_else(|e| panic!("{} {}", e.0.status, e.0.text));
    assert_eq!(snapshot(&mut zero).await["type"], "reconnected");
}

#[tokio::test]
async fn counts_beyond_2_pow_53_minus_1_are_refused_and_change_nothing() {
    let api = api();
    let job = new_job(&api).await;
    let mut sub = api.subscribe(&job.id, &job.token).await;
    snapshot(&mut sub).await;
    let before = state(&api, &job).await;
    for body in [
        format!(r#"{{"type":"progress","processedCount":{}}}"#, MAX_SAFE + 1),
        format!(r#"{{"type":"started","totalCount":{}}}"#, MAX_SAFE + 1),
        r#"{"type":"progress","processedCount":18446744073709551616}"#.to_owned(),
    ] {
        let reply = post_text(&api, &job, &body).await;
        assert_eq!(reply.assert_error(422), "invalid_event", "{body}");
    }
    assert_eq!(state(&api, &job).await, before);
    sub.expect_silence(Duration::from_millis(300)).await;
    let reply = post_text(
        &api,
        &job,
        &format!(r#"{{"type":"progress","processedCount":{MAX_SAFE}}}"#),
    )
    .await;
    assert_eq!(reply.status, 202, "{}", reply.text);
    let frame = sub.expect_type("job_progress").await;
    assert_eq!(frame["payload"]["processedCount"], MAX_SAFE);

    let over = format!(
        r#"{{"pipeline":"csv_import","totalCount":{}}}"#,
        MAX_SAFE + 1
    );
    let reply = producer_text(&api, "/api/jobs", &over).await;
    assert_eq!(reply.assert_error(400), "invalid_total_count");
    let at = format!(r#"{{"pipeline":"csv_import","totalCount":{MAX_SAFE}}}"#);
    assert_eq!(producer_text(&api, "/api/jobs", &at).await.status, 202);
}

#[tokio::test]
async fn a_ping_carrying_a_huge_number_is_a_ping_up_to_a_doubles_range() {
    let api = api();
    let job = new_job(&api).await;
    let before = state(&api, &job).await;
    let mut sub = api.subscribe(&job.id, &job.token).await;
    snapshot(&mut sub).await;
    for ping in [
        r#"{"type":"ping","timestamp":1.7976931348623157e308}"#,
        r#"{"type":"ping","timestamp":123456789012345678901234567890}"#,
        r#"{"type":"ping","extra":[-1e308,{"n":1e-400}]}"#,
    ] {
        sub.send_text(ping).await;
        assert_eq!(sub.expect_type("pong").await["jobId"], job.id.as_str());
    }
    sub.ping_literal().await;
    // One over a double's range is not JSON the gateway reads.
    sub.send_text(r#"{"type":"ping","timestamp":1.7976931348623159e308}"#)
        .await;
    assert_eq!(sub.expect_close().await.0, 1002);
    assert_eq!(state(&api, &job).await, before);
}

#[tokio::test]
async fn duplicate_keys_are_refused_everywhere_and_change_nothing() {
    let api = api();
    let job = new_job(&api).await;
    let before = state(&api, &job).await;

    // `{"type":"ping","type":"cancel"}` cancels nothing: the socket closes 1002.
    let mut sub = api.subscribe(&job.id, &job.token).await;
    snapshot(&mut sub).await;
    sub.send_text(r#"{"type":"ping","type":"cancel"}"#).await;
    let (code, reason) = sub.expect_close().await;
    assert_eq!(code, 1002, "{reason}");
    assert!(reason.contains("twice"), "{reason}");
    let mut nested = api.subscribe(&job.id, &job.token).await;
    snapshot(&mut nested).await;
    nested
        .send_text(r#"{"type":"ping","x":{"y":1,"y":2}}"#)
        .await;
    assert_eq!(nested.expect_close().await.0, 1002);
    assert_eq!(state(&api, &job).await, before);
    assert_eq!(before["status"], "pending");

    for body in [
        r#"{"type":"started","type":"complete"}"#,
        r#"{"type":"progress","processedCount":1,"processedCount":2}"#,
        r#"[{"type":"started"},{"type":"complete","summary":{"a":1,"a":2}}]"#,
    ] {
        let reply = post_text(&api, &job, body).await;
        assert_eq!(reply.assert_error(422), "duplicate_key", "{body}");
    }
    assert_eq!(state(&api, &job).await, before);

    let reply = producer_text(
        &api,
        "/api/jobs",
        r#"{"pipeline":"csv_import","pipeline":"ai_scan"}"#,
    )
    .await;
    assert_eq!(reply.assert_error(400), "duplicate_key");
}

#[tokio::test]
async fn a_summary_beyond_64_bits_reaches_subscribers_digit_for_digit() {
    let api = api();
    let job = new_job(&api).await;
    let mut sub = api.subscribe(&job.id, &job.token).await;
    snapshot(&mut sub).await;
    let before = state(&api, &job).await;
    let reply = post_text(&api, &job, r#"{"type":"complete","summary":{"x":1e400}}"#).await;
    assert_eq!(reply.assert_error(422), "invalid_event");
    assert!(reply.text.contains("number out of range"), "{}", reply.text);
    assert_eq!(state(&api, &job).await, before);

    let summary = r#"{"big":123456789012345678901234567890,"neg":-18446744073709551617}"#;
    let reply = post_text(
        &api,
        &job,
        &format!(r#"{{"type":"complete","summary":{summary}}}"#),
    )
    .await;
    assert_eq!(reply.status, 202, "{}", reply.text);
    match sub.next_event(FRAME_TIMEOUT).await {
        WsEvent::Text(text) => assert!(
            text.contains(&format!(r#""payload":{{"summary":{summary}}}"#)),
            "{text}"
        ),
        other => panic!("expected job_complete, got {other:?}"),
    }
    assert_eq!(sub.expect_close().await.0, 1000);
    let inspect = api.job_state_producer(&job.id).await;
    assert!(
        inspect
            .text
            .contains(&format!(r#""result":{{"summary":{summary}}}"#)),
        "{}",
        inspect.text
    );
}

async fn issued(api: &Api, job: &Job) -> String {
    let reply = api.issue_token(&job.id).await;
    assert_eq!(reply.status, 202, "{}", reply.text);
    reply.json["token"].as_str().expect("token").to_owned()
}

#[tokio::test]
async fn producer_issued_tokens_stay_valid_are_not_broadcast_and_are_capped_at_16() {
    let api = api();
    let job = new_job(&api).await;
    let mut sub = api.subscribe(&job.id, &job.token).await;
    snapshot(&mut sub).await;
    let mut tokens = vec![issued(&api, &job).await, issued(&api, &job).await];
    // Nobody but the producer hears of them, and the creation token still works.
    sub.expect_silence(Duration::from_secs(1)).await;
    for t in std::iter::once(&job.token).chain(&tokens) {
        assert_eq!(api.job_state(&job.id, t).await.status, 200);
    }
    while tokens.len() < 16 {
        tokens.push(issued(&api, &job).await);
    }
    let before = state(&api, &job).await;
    let refused = api.issue_token(&job.id).await;
    assert_eq!(refused.assert_error(429), "too_many_tokens");
    let retry: u64 = refused
        .header("retry-after")
        .and_then(|v| v.parse().ok())
        .expect("Retry-After");
    assert!((7000..=7200).contains(&retry), "Retry-After {retry}");
    assert_eq!(state(&api, &job).await, before);
    for t in std::iter::once(&job.token).chain(&tokens) {
        assert_eq!(api.job_state(&job.id, t).await.status, 200);
    }
    // A socket opened with an issued token works like any other.
    let mut other = api.subscribe(&job.id, &tokens[15]).await;
    snapshot(&mut other).await;
    // A revoke clears them all.
    assert_eq!(api.revoke(&job.id).await.status, 202);
    assert_eq!(sub.expect_close().await.0, 1008);
    assert_eq!(other.expect_close().await.0, 1008);
    for t in std::iter::once(&job.token).chain(&tokens) {
        api.job_state(&job.id, t).await.assert_error(401);
    }
    issued(&api, &job).await;
}
