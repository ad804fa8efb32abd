//! The room's named timers on the one Durable Object alarm, with a short ping
//! interval (1 s, so idle after 2 s): the idle sweep closes a silent socket
//! with 4002 and keeps sockets whose only sign of life are literal pings that
//! the runtime answered without waking the room; the token refresh reaches
//! every live socket; a token past its `expiresAt` is refused.

use std::time::{Duration, Instant};

use e2e::{Gateway, Sub, WsEvent};
use serde_json::{json, Value};

const PING_INTERVAL_MS: &str = "1000";

fn gateway() -> &'static Gateway {
    static GATEWAY: std::sync::OnceLock<Gateway> = std::sync::OnceLock::new();
    GATEWAY.get_or_init(|| Gateway::start_static(&[("PING_INTERVAL_MS", PING_INTERVAL_MS)]))
}

/// Waits for a JSON frame of `kind`, sending a literal ping whenever the
/// socket has been quiet for `ping_every` (if given). Literal pongs are skipped.
async fn wait_for(
    sub: &mut Sub,
    kind: &str,
    within: Duration,
    ping_every: Option<Duration>,
) -> Value {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        let quiet = ping_every.unwrap_or(within);
        match sub.next_event(quiet).await {
            WsEvent::Timeout => {
                if ping_every.is_some() {
                    sub.send_text(r#"{"type":"ping"}"#).await;
                }
            }
            WsEvent::Text(text) if text == r#"{"type":"pong"}"# => {}
            WsEvent::Text(text) => {
                let frame: Value = serde_json::from_str(&text).expect("json");
                if frame["type"] == kind {
                    return frame;
                }
                panic!("expected {kind}, got {frame}");
            }
            other => panic!("expected {kind}, got {other:?}"),
        }
    }
    panic!("no {kind} within {within:?}");
}

#[tokio::test]
async fn idle_socket_gets_4002_while_literal_pings_keep_a_socket_alive() {
    let api = gateway().api();
    let job = api.create_job(json!({"pipeline": "ai_scan"})).await;
    let mut silent = api.subscribe(&job.id, &job.token).await;
    let mut pinging = api.subscribe(&job.id, &job.token).await;
    silent.expect_type("snapshot").await;
    pinging.expect_type("snapshot").await;

    let started = Instant::now();
    let closed = tokio::join!(silent.expect_close(), async {
        // Literal pings only: the room never sees a frame from this socket.
        for _ in 0..16 {
            pinging.send_text(r#"{"type":"ping"}"#).await;
            assert_eq!(
                pinging.next_event(Duration::from_secs(2)).await,
                WsEvent::Text(r#"{"type":"pong"}"#.into())
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    })
    .0;
    assert_eq!(closed.0, 4002, "{closed:?}");
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_secs(2) && waited < Duration::from_secs(8),
        "idle close after {waited:?}"
    );

    // Several sweeps later the pinging socket is still open and live.
    api.post_ok(&job.id, json!({"type": "started"})).await;
    assert_eq!(
        wait_for(&mut pinging, "job_started", Duration::from_secs(5), None).await["seq"],
        1
    );
}

#[tokio::test]
async fn token_refresh_reaches_live_sockets_and_the_new_token_works() {
    let api = gateway().api();
    // ttl 60 s: the refresh is due when less than min(10 min, 30 s) is left.
    let job = api
        .create_job(json!({"pipeline": "csv_import", "ttlSeconds": 60}))
        .await;
    let expires_first = job.body["expiresAt"].as_u64().expect("expiresAt");
    let mut sub = api.subscribe(&job.id, &job.token).await;
    sub.expect_type("snapshot").await;
    let refresh = wait_for(
        &mut sub,
        "token_refresh",
        Duration::from_secs(45),
        Some(Duration::from_millis(500)),
    )
    .await;
    assert!(refresh.get("seq").is_none_or(Value::is_null), "{refresh}");
    let token = refresh["payload"]["token"]
        .as_str()
        .expect("token")
        .to_owned();
    let expires = refresh["payload"]["expiresAt"].as_u64().expect("expiresAt");
    assert_ne!(token, job.token);
    assert!(
        expires > expires_first,
        "the new token outlives the old one"
    );

    assert_eq!(
        api.job_state(&job.id, &token).await.status,
        200,
        "new token"
    );
    assert_eq!(
        api.job_state(&job.id, &job.token).await.status,
        200,
        "old token valid until it expires"
    );
    let mut again = api.subscribe(&job.id, &token).await;
    again.expect_type("snapshot").await;
}

#[tokio::test]
async fn an_expired_token_is_refused_with_401() {
    let api = gateway().api();
    let job = api
        .create_job(json!({"pipeline": "csv_import", "ttlSeconds": 60}))
        .await;
    let expires_at = job.body["expiresAt"].as_u64().expect("expiresAt");
    assert_eq!(api.job_state(&job.id, &job.token).await.status, 200);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    tokio::time::sleep(Duration::from_millis(
        expires_at.saturating_sub(now) + 1_000,
    ))
    .await;
    let query = e2e::Api::query(&job.id, &job.token, None, None);
    assert_eq!(
        api.refused_upgrade(&query).await.assert_error(401),
        "unauthorized"
    );
    api.job_state(&job.id, &job.token).await.assert_error(401);
    api.cancel(&job.id, &job.token).await.assert_error(401);
    // The producer's view does not depend on subscriber tokens.
    assert_eq!(api.job_state_producer(&job.id).await.status, 200);
}
