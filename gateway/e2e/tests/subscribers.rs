//! What an app sees on its socket (SPEC §2–§4), against the real Worker in
//! local workerd: upgrades and their refusals, catch-up then live with `seq`,
//! fan-out, resume, every close code the gateway sends, and the runtime's
//! answer to the literal ping.

use std::time::Duration;

use e2e::{progress, Api, Gateway, Job, Sub, WsEvent, FRAME_TIMEOUT};
use serde_json::{json, Value};

fn api() -> Api {
    Gateway::shared().api()
}

async fn new_job(api: &Api, total: u64) -> Job {
    api.create_job(json!({"pipeline": "csv_import", "totalCount": total}))
        .await
}

/// Asserts the envelope of SPEC §2 and returns its `seq` (if any).
fn envelope(frame: &Value, kind: &str, job: &Job) -> Option<u64> {
    assert_eq!(frame["type"], kind, "{frame}");
    assert_eq!(frame["jobId"], job.id.as_str(), "{frame}");
    assert_eq!(frame["pipeline"], "csv_import", "{frame}");
    assert_eq!(frame["version"], "1.0.0", "{frame}");
    assert!(
        frame["timestamp"]
            .as_u64()
            .is_some_and(|t| t > 1_700_000_000_000),
        "{frame}"
    );
    assert!(frame["payload"].is_object(), "{frame}");
    frame["seq"].as_u64()
}

async fn snapshot(sub: &mut Sub, job: &Job) -> Value {
    let frame = sub.next_json().await;
    envelope(&frame, "snapshot", job);
    frame
}

#[tokio::test]
async fn happy_path_has_consecutive_seq_and_ends_with_1000() {
    let api = api();
    let job = new_job(&api, 3).await;
    let mut sub = api.subscribe(&job.id, &job.token).await;
    let first = snapshot(&mut sub, &job).await;
    assert_eq!(first["seq"], 0);
    assert_eq!(first["payload"]["status"], "pending");
    assert_eq!(first["payload"]["recovered"], false);

    assert_eq!(
        api.post_ok(&job.id, json!({"type": "started", "totalCount": 3}))
            .await,
        1
    );
    let started = sub.next_json().await;
    assert_eq!(envelope(&started, "job_started", &job), Some(1));
    assert_eq!(started["payload"]["totalCount"], 3);

    let batch = json!([progress(1, 3), progress(2, 3), {"type": "progress", "processedCount": 3, "currentItem": "c.csv"}]);
    assert_eq!(api.post_ok(&job.id, batch).await, 4);
    for (seq, processed) in [(2, 1), (3, 2), (4, 3)] {
        let frame = sub.next_json().await;
        assert_eq!(envelope(&frame, "job_progress", &job), Some(seq));
        assert_eq!(frame["payload"]["processedCount"], processed);
        assert_eq!(frame["payload"]["totalCount"], 3);
    }

    let done = api
        .post_ok(
            &job.id,
            json!({"type": "complete", "summary": {"imported": 3}}),
        )
        .await;
    assert_eq!(done, 5);
    let complete = sub.next_json().await;
    assert_eq!(envelope(&complete, "job_complete", &job), Some(5));
    assert_eq!(complete["payload"]["summary"], json!({"imported": 3}));
    assert_eq!(sub.expect_close().await.0, 1000);
}

#[tokio::test]
async fn every_subscriber_gets_every_event_in_order() {
    let api = api();
    let job = new_job(&api, 10).await;
    let mut subs = Vec::new();
    for _ in 0..4 {
        let mut sub = api.subscribe(&job.id, &job.token).await;
        snapshot(&mut sub, &job).await;
        subs.push(sub);
    }
    api.post_ok(&job.id, json!({"type": "started"})).await;
    for n in 1..=5 {
        api.post_ok(&job.id, progress(n, 10)).await;
    }
    for sub in &mut subs {
        let seqs: Vec<u64> = {
            let mut seqs = Vec::new();
            for _ in 0..6 {
                seqs.push(sub.next_json().await["seq"].as_u64().unwrap_or_default());
            }
            seqs
        };
        assert_eq!(seqs, vec![1, 2, 3, 4, 5, 6]);
    }
}

#[tokio::test]
async fn literal_ping_is_answered_by_the_runtime_and_never_counts() {
    let api = api();
    let job = new_job(&api, 1).await;
    let mut sub = api.subscribe(&job.id, &job.token).await;
    snapshot(&mut sub, &job).await;
    // 30 literal pings: more than the room's 20-frame limit, so had any of them
    // reached the room the socket would be closed with 1013.
    for _ in 0..30 {
        sub.send_text(r#"{"type":"ping"}"#).await;
    }
    for _ in 0..30 {
        assert_eq!(
            sub.next_event(FRAME_TIMEOUT).await,
            WsEvent::Text(r#"{"type":"pong"}"#.to_owned())
        );
    }
    // Any other ping reaches the room and gets a pong envelope without seq.
    sub.send_text(r#"{ "type": "ping" }"#).await;
    let pong = sub.next_json().await;
    envelope(&pong, "pong", &job);
    assert!(pong.get("seq").is_none_or(Value::is_null), "{pong}");
    // Still open and live.
    api.post_ok(&job.id, progress(1, 1)).await;
    assert_eq!(sub.expect_type("job_progress").await["seq"], 1);
}

#[tokio::test]
async fn more_than_20_frames_in_10_s_close_with_1013() {
    let api = api();
    let job = new_job(&api, 1).await;
    let mut sub = api.subscribe(&job.id, &job.token).await;
    snapshot(&mut sub, &job).await;
    for _ in 0..21 {
        sub.send_text(r#"{"type":"ping","n":1}"#).await;
    }
    for _ in 0..20 {
        sub.expect_type("pong").await;
    }
    assert_eq!(sub.expect_close().await.0, 1013);
}

#[tokio::test]
async fn protocol_errors_close_the_socket_with_their_codes() {
    let api = api();
    let job = new_job(&api, 1).await;
    let cases: [(&str, u16); 5] = [
        (r#"{"invalid": "json""#, 1002),
        ("[1,2]", 1002),
        (r#"{"type": 5}"#, 1002),
        (r#"{"kind": "ping"}"#, 1002),
        ("x", 1002),
    ];
    for (text, code) in cases {
        let mut sub = api.subscribe(&job.id, &job.token).await;
        snapshot(&mut sub, &job).await;
        sub.send_text(text).await;
        assert_eq!(sub.expect_close().await.0, code, "{text}");
    }
    let mut binary = api.subscribe(&job.id, &job.token).await;
    snapshot(&mut binary, &job).await;
    binary.send_binary(vec![1, 2, 3]).await;
    assert_eq!(binary.expect_close().await.0, 1003);

    let mut big = api.subscribe(&job.id, &job.token).await;
    snapshot(&mut big, &job).await;
    let padding = "x".repeat(70 * 1024);
    big.send_text(&format!(r#"{{"type":"ping","pad":"{padding}"}}"#))
        .await;
    assert_eq!(big.expect_close().await.0, 1009);
}

#[tokio::test]
async fn unknown_type_is_refused_and_the_socket_stays_open() {
    let api = api();
    let job = new_job(&api, 1).await;
    let mut sub = api.subscribe(&job.id, &job.token).await;
    snapshot(&mut sub, &job).await;
    sub.send_text(r#"{"type":"subscribe_more"}"#).await;
    let refusal = sub.next_json().await;
    envelope(&refusal, "error", &job);
    assert_eq!(refusal["payload"]["code"], "unknown_type");
    assert_eq!(refusal["payload"]["retryable"], false);
    assert!(refusal.get("seq").is_none_or(Value::is_null), "{refusal}");
    api.post_ok(&job.id, json!({"type": "started"})).await;
    assert_eq!(sub.expect_type("job_started").await["seq"], 1);
}

#[tokio::test]
async fn same_client_id_supersedes_the_old_socket_with_4000() {
    let api = api();
    let job = new_job(&api, 5).await;
    let mut old = api
        .try_subscribe(&job.id, &job.token, Some("phone-1"), None)
        .await
        .expect("upgrade");
    snapshot(&mut old, &job).await;
    let mut other = api
        .try_subscribe(&job.id, &job.token, Some("tablet-1"), None)
        .await
        .expect("upgrade");
    snapshot(&mut other, &job).await;
    let mut new = api
        .try_subscribe(&job.id, &job.token, Some("phone-1"), None)
        .await
        .expect("upgrade");
    snapshot(&mut new, &job).await;
    assert_eq!(old.expect_close().await.0, 4000);
    api.post_ok(&job.id, progress(1, 5)).await;
    assert_eq!(new.expect_type("job_progress").await["seq"], 1);
    assert_eq!(
        other.expect_type("job_progress").await["seq"],
        1,
        "another clientId is not affected"
    );
}

#[tokio::test]
async fn resume_after_a_dropped_connection_is_recovered() {
    let api = api();
    let job = new_job(&api, 10).await;
    let mut sub = api
        .try_subscribe(&job.id, &job.token, Some("app-7"), None)
        .await
        .expect("upgrade");
    snapshot(&mut sub, &job).await;
    api.post_ok(&job.id, json!({"type": "started"})).await;
    api.post_ok(&job.id, progress(2, 10)).await;
    sub.expect_type("job_started").await;
    let last_seen = sub.expect_type("job_progress").await["seq"]
        .as_u64()
        .expect("seq");
    assert_eq!(last_seen, 2);
    sub.drop_connection();
    // Missed while away: folded into the snapshot, never replayed.
    api.post_ok(&job.id, progress(5, 10)).await;
    api.post_ok(&job.id, progress(7, 10)).await;

    let mut back = api
        .try_subscribe(&job.id, &job.token, Some("app-7"), Some(last_seen))
        .await
        .expect("upgrade");
    let resumed = back.next_json().await;
    assert_eq!(envelope(&resumed, "reconnected", &job), Some(4));
    assert_eq!(resumed["payload"]["recovered"], true);
    assert_eq!(resumed["payload"]["processedCount"], 7);
    assert_eq!(resumed["payload"]["status"], "processing");
    api.post_ok(&job.id, progress(8, 10)).await;
    assert_eq!(back.expect_type("job_progress").await["seq"], 5);

    // A lastSeq the room never reached proves nothing: recovered is false.
    let mut ahead = api
        .try_subscribe(&job.id, &job.token, None, Some(99))
        .await
        .expect("upgrade");
    let frame = ahead.next_json().await;
    assert_eq!(envelope(&frame, "reconnected", &job), Some(5));
    assert_eq!(frame["payload"]["recovered"], false);
}

#[tokio::test]
async fn socket_cap_answers_429_with_retry_after() {
    let api = api();
    let job = new_job(&api, 1).await;
    let mut subs = Vec::new();
    for _ in 0..32 {
        let mut sub = api.subscribe(&job.id, &job.token).await;
        snapshot(&mut sub, &job).await;
        subs.push(sub);
    }
    let refused = api
        .try_subscribe(&job.id, &job.token, None, None)
        .await
        .expect_err("33rd socket");
    assert_eq!(refused.0.status, 429);
    let refused = api
        .refused_upgrade(&Api::query(&job.id, &job.token, None, None))
        .await;
    assert_eq!(refused.assert_error(429), "too_many_sockets");
    let retry_after: u64 = refused
        .header("retry-after")
        .and_then(|v| v.parse().ok())
        .expect("Retry-After");
    assert!(retry_after >= 1, "Retry-After {retry_after}");

    // A socket that leaves frees its place.
    subs.pop().expect("a socket").close(1000).await;
    let mut again = None;
    for _ in 0..20 {
        match api.try_subscribe(&job.id, &job.token, None, None).await {
            Ok(sub) => {
                again = Some(sub);
                break;
            }
            Err(e) => {
                assert_eq!(e.0.status, 429);
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    snapshot(&mut again.expect("a place after one socket left"), &job).await;
}

#[tokio::test]
async fn cancel_closes_every_socket_with_1001() {
    let api = api();
    let job = new_job(&api, 4).await;
    let mut a = api.subscribe(&job.id, &job.token).await;
    let mut b = api.subscribe(&job.id, &job.token).await;
    snapshot(&mut a, &job).await;
    snapshot(&mut b, &job).await;
    api.post_ok(&job.id, json!({"type": "started"})).await;
    a.expect_type("job_started").await;
    b.expect_type("job_started").await;
    a.send_text(r#"{"type":"cancel"}"#).await;
    assert_eq!(a.expect_close().await.0, 1001);
    assert_eq!(b.expect_close().await.0, 1001, "no frame before 1001");

    let frozen = api.post_events(&job.id, progress(1, 4)).await;
    assert_eq!(frozen.assert_error(409), "job_canceled");
    let again = api.cancel(&job.id, &job.token).await;
    assert_eq!(again.assert_error(409), "job_canceled");

    let mut late = api.subscribe(&job.id, &job.token).await;
    let snap = snapshot(&mut late, &job).await;
    assert_eq!(snap["payload"]["status"], "canceled");
    assert_eq!(late.expect_close().await.0, 1001);
}

#[tokio::test]
async fn cancel_endpoint_closes_sockets_with_1001() {
    let api = api();
    let job = new_job(&api, 4).await;
    let mut sub = api.subscribe(&job.id, &job.token).await;
    snapshot(&mut sub, &job).await;
    let reply = api.cancel(&job.id, &job.token).await;
    assert_eq!(reply.status, 202, "{}", reply.text);
    assert_eq!(sub.expect_close().await.0, 1001);
    let state = api.job_state(&job.id, &job.token).await;
    assert_eq!(state.json["status"], "canceled");
}

#[tokio::test]
async fn failure_sends_error_then_4001_also_to_late_subscribers() {
    let api = api();
    let job = new_job(&api, 4).await;
    let mut sub = api.subscribe(&job.id, &job.token).await;
    snapshot(&mut sub, &job).await;
    api.post_ok(&job.id, progress(1, 4)).await;
    sub.expect_type("job_progress").await;
    let seq = api
        .post_ok(
            &job.id,
            json!({"type": "failed", "code": "csv_parse_error", "message": "row 7 is broken"}),
        )
        .await;
    assert_eq!(seq, 2);
    let error = sub.next_json().await;
    assert_eq!(envelope(&error, "error", &job), Some(2));
    assert_eq!(
        error["payload"],
        json!({"code": "csv_parse_error", "message": "row 7 is broken", "retryable": false})
    );
    assert_eq!(sub.expect_close().await.0, 4001);

    let mut late = api.subscribe(&job.id, &job.token).await;
    let snap = snapshot(&mut late, &job).await;
    assert_eq!(
        snap["seq"], 1,
        "the snapshot's seq is the last before the terminal event"
    );
    assert_eq!(snap["payload"]["status"], "failed");
    assert_eq!(late.expect_type("error").await["seq"], 2);
    assert_eq!(late.expect_close().await.0, 4001);
}

#[tokio::test]
async fn late_subscriber_after_completion_gets_snapshot_result_and_1000() {
    let api = api();
    let job = new_job(&api, 2).await;
    api.post_ok(&job.id, json!([{"type": "started"}, progress(2, 2)]))
        .await;
    api.post_ok(&job.id, json!({"type": "complete", "summary": {"ok": 2}}))
        .await;
    let mut late = api.subscribe(&job.id, &job.token).await;
    let snap = snapshot(&mut late, &job).await;
    assert_eq!(snap["seq"], 2);
    assert_eq!(snap["payload"]["status"], "completed");
    assert_eq!(snap["payload"]["processedCount"], 2);
    let complete = late.expect_type("job_complete").await;
    assert_eq!(complete["seq"], 3);
    assert_eq!(complete["payload"]["summary"], json!({"ok": 2}));
    assert_eq!(late.expect_close().await.0, 1000);
}

#[tokio::test]
async fn revoke_closes_live_sockets_with_1008_and_refuses_the_token() {
    let api = api();
    let job = new_job(&api, 2).await;
    let mut sub = api.subscribe(&job.id, &job.token).await;
    snapshot(&mut sub, &job).await;
    let reply = api.revoke(&job.id).await;
    assert_eq!(reply.status, 202, "{}", reply.text);
    assert_eq!(sub.expect_close().await.0, 1008);
    let refused = api
        .try_subscribe(&job.id, &job.token, None, None)
        .await
        .expect_err("revoked");
    assert_eq!(refused.0.status, 401);
    api.refused_upgrade(&Api::query(&job.id, &job.token, None, None))
        .await
        .assert_error(401);
    api.job_state(&job.id, &job.token).await.assert_error(401);
    // The backend issues a new token for the user who signed in again.
    let issued = api.issue_token(&job.id).await;
    assert_eq!(issued.status, 202, "{}", issued.text);
    let fresh: serde_json::Value = serde_json::from_str(&issued.text).expect("json");
    let fresh = fresh["token"].as_str().expect("token").to_owned();
    assert_ne!(fresh, job.token);
    let mut again = api.subscribe(&job.id, &fresh).await;
    assert_eq!(
        again.expect_type("snapshot").await["payload"]["status"],
        "pending"
    );
}

#[tokio::test]
async fn upgrade_refusals_are_plain_http_in_spec_order() {
    let api = api();
    let job = new_job(&api, 1).await;
    // No Upgrade header, even with everything else wrong: 426 comes first.
    let plain = api.raw("GET", "/ws/progress?lastSeq=x", &[], None).await;
    assert_eq!(plain.assert_error(426), "upgrade_required");
    let plain = api
        .raw(
            "GET",
            &format!("/ws/progress?jobId={}&token={}", job.id, job.token),
            &[],
            None,
        )
        .await;
    plain.assert_error(426);

    let bad_requests = [
        format!("token={}", job.token),
        format!("jobId=&token={}", job.token),
        format!("jobId={}", job.id),
        format!("jobId={}&token=%20", job.id),
        format!("jobId={}&token={}&lastSeq=-1", job.id, job.token),
        format!("jobId={}&token={}&lastSeq=abc", job.id, job.token),
        format!("jobId={}&token={}&clientId=a%20b", job.id, job.token),
        // A missing jobId beats an unknown job and a wrong token.
        "token=nope".to_owned(),
    ];
    for query in bad_requests {
        assert_eq!(
            api.subscribe_query(&query)
                .await
                .expect_err(&query)
                .0
                .status,
            400,
            "{query}"
        );
        api.refused_upgrade(&query).await.assert_error(400);
    }
    // Another job's token: 401 at the edge; one valid for the missing job: 404.
    let elsewhere = Api::query("no-such-job-e2e", &job.token, None, None);
    assert_eq!(
        api.refused_upgrade(&elsewhere).await.assert_error(401),
        "unauthorized"
    );
    let unknown = Api::query(
        "no-such-job-e2e",
        &api.mint_token("no-such-job-e2e"),
        None,
        None,
    );
    assert_eq!(
        api.subscribe_query(&unknown)
            .await
            .expect_err("unknown job")
            .0
            .status,
        404
    );
    assert_eq!(
        api.refused_upgrade(&unknown).await.assert_error(404),
        "job_not_found"
    );
    let wrong = Api::query(&job.id, "00000000-0000-4000-8000-000000000000", None, None);
    assert_eq!(
        api.subscribe_query(&wrong)
            .await
            .expect_err("wrong token")
            .0
            .status,
        401
    );
    assert_eq!(
        api.refused_upgrade(&wrong).await.assert_error(401),
        "unauthorized"
    );
    // The token is the job's, not any job's.
    let other = new_job(&api, 1).await;
    let foreign = Api::query(&other.id, &job.token, None, None);
    api.refused_upgrade(&foreign).await.assert_error(401);
}
