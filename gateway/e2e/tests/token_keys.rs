//! Subscriber tokens against the real Worker: a token key rotation
//! (`TOKEN_SECRET` → `TOKEN_SECRET_PREVIOUS`) logs nobody out until the old
//! key is dropped, and a session ends with 1008 at `MAX_SESSION_MS`.
//!
//! The session test shortens `MAX_SESSION_MS` to its minimum, 60 s, and says
//! so: with the default (24 h) the same close comes 24 h after the creation
//! token was issued. It runs beside the rotation test (about 65 s in all).

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use e2e::{Api, Gateway, WsEvent, FRAME_TIMEOUT, LITERAL_PING};
use serde_json::{json, Value};

const KEY_A: &str = "e2e-token-secret-a-0123456789abcdef0123456789abcdef";
const KEY_B: &str = "e2e-token-secret-b-fedcba9876543210fedcba9876543210";

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Upgrade, job state and cancel with `token`: all `401` at the edge, with
/// the same body as a token that was never issued (so a stranger learns
/// nothing), and nothing about the job changes.
async fn refused_everywhere(api: &Api, job: &str, token: &str) {
    let forged = format!(
        "v1.{}.{}.{}.{}",
        now_ms() + 60_000,
        now_ms(),
        "0".repeat(32),
        "0".repeat(64)
    );
    let before = api.job_state_producer(job).await;
    for t in [token, forged.as_str()] {
        let upgrade = api.refused_upgrade(&Api::query(job, t, None, None)).await;
        assert_eq!(upgrade.assert_error(401), "unauthorized");
        api.job_state(job, t).await.assert_error(401);
        api.cancel(job, t).await.assert_error(401);
    }
    let upgrade = api
        .refused_upgrade(&Api::query(job, token, None, None))
        .await;
    let forged_upgrade = api
        .refused_upgrade(&Api::query(job, &forged, None, None))
        .await;
    assert_eq!(
        upgrade.text, forged_upgrade.text,
        "the same 401 as a forged token"
    );
    assert_eq!(
        api.job_state_producer(job).await.json,
        before.json,
        "job unchanged"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_key_rotation_keeps_issued_tokens_until_the_old_key_is_dropped() {
    let mut gateway = Gateway::start_with_vars(&[("TOKEN_SECRET", KEY_A)]);
    let api = gateway.api();
    let job = api.create_job(json!({"pipeline": "csv_import"})).await;
    let old = job.token.clone();
    api.subscribe(&job.id, &old)
        .await
        .expect_type("snapshot")
        .await;

    // Step 1: the new key signs, the old one still verifies.
    tokio::task::block_in_place(|| {
        gateway.restart_with_vars(&[("TOKEN_SECRET", KEY_B), ("TOKEN_SECRET_PREVIOUS", KEY_A)]);
    });
    let api = gateway.api();
    let mut sub = api.subscribe(&job.id, &old).await;
    assert_eq!(
        sub.expect_type("snapshot").await["payload"]["status"],
        "pending"
    );
    assert_eq!(
        api.job_state(&job.id, &old).await.status,
        200,
        "old key verifies"
    );
    let issued = api.issue_token(&job.id).await;
    assert_eq!(issued.status, 202, "{}", issued.text);
    let new = issued.json["token"].as_str().expect("token").to_owned();
    api.subscribe(&job.id, &new)
        .await
        .expect_type("snapshot")
        .await;

    // Step 2: the old key is dropped: its tokens end at the edge; the new
    // key's keep working.
    tokio::task::block_in_place(|| gateway.restart_with_vars(&[("TOKEN_SECRET", KEY_B)]));
    let api = gateway.api();
    refused_everywhere(&api, &job.id, &old).await;
    assert_eq!(api.job_state(&job.id, &new).await.status, 200);
    api.subscribe(&job.id, &new)
        .await
        .expect_type("snapshot")
        .await;
    assert_eq!(api.post_ok(&job.id, json!({"type": "started"})).await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_ends_with_1008_at_max_session_ms_and_a_new_token_starts_another() {
    const MAX_SESSION_MS: u64 = 60_000;
    let gateway = Gateway::start_with_vars(&[("MAX_SESSION_MS", "60000")]);
    let api = gateway.api();
    let created = now_ms();
    // An hour asked for; the session allows a minute.
    let job = api
        .create_job(json!({"pipeline": "csv_import", "ttlSeconds": 3600}))
        .await;
    let session_end = job.body["expiresAt"].as_u64().expect("expiresAt");
    assert!(
        session_end <= now_ms() + MAX_SESSION_MS && session_end + 5_000 >= created + MAX_SESSION_MS,
        "the creation token expires at the session's end: {} ms after creation",
        session_end.saturating_sub(created)
    );
    let mut sub = api.subscribe(&job.id, &job.token).await;
    sub.send_text(LITERAL_PING).await;
    assert_eq!(
        sub.expect_type("snapshot").await["payload"]["status"],
        "pending"
    );

    // Nothing extends the session: a refresh, if one comes, expires at its
    // end too; then the gateway closes the socket 1008.
    let deadline = Instant::now()
        + Duration::from_millis(session_end.saturating_sub(now_ms()))
        + FRAME_TIMEOUT;
    let (code, reason) = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match sub.next_event_pinging(left, Duration::from_secs(25)).await {
            WsEvent::Timeout => panic!("no close within 2 s of the session's end"),
            WsEvent::Text(text) => {
                let frame: Value = serde_json::from_str(&text).expect("json");
                assert_eq!(frame["type"], "token_refresh", "{frame}");
                let expires = frame["payload"]["expiresAt"].as_u64().expect("expiresAt");
                assert!(
                    expires <= session_end,
                    "a refresh past the session's end: {frame}"
                );
            }
            WsEvent::Close(code, reason) => break (code, reason),
            other => panic!("expected the session's close, got {other:?}"),
        }
    };
    let late = i128::from(now_ms()) - i128::from(session_end);
    eprintln!("token_keys | session close {late} ms after the session's end");
    assert_eq!(code, 1008, "{reason}");
    assert!(
        reason.contains("backend"),
        "the reason says what to do: {reason}"
    );
    assert!(late >= -100, "closed {late} ms before the session's end");

    // The old session's token is refused; the producer's new token starts a
    // new session, and the job is as it was.
    refused_everywhere(&api, &job.id, &job.token).await;
    let issued = api.issue_token(&job.id).await;
    assert_eq!(issued.status, 202, "{}", issued.text);
    let token = issued.json["token"].as_str().expect("token");
    let mut again = api.subscribe(&job.id, token).await;
    let snapshot = again.expect_type("snapshot").await;
    assert_eq!(snapshot["payload"]["status"], "pending");
    assert_eq!(snapshot["seq"], 0);
}
