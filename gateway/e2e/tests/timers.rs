//! The room's named timers on the one Durable Object alarm, at the default
//! ping interval (30 s) and with real hibernation between events: clients
//! send only literal pings, which the runtime answers without waking the
//! room, so the room hibernates about 10 s after each event and every timer
//! fires on a cold room. The idle sweep closes a socket that stopped pinging
//! with 4002 and frees its slot under the socket cap while its neighbours stay
//! open; the token refresh reaches a live socket; a token past its
//! `expiresAt` is refused.
//!
//! Bounded: the two tests run side by side and the longer one takes at most
//! 3 ping intervals (92 s).

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use e2e::{Api, Gateway, Sub, WsEvent, FRAME_TIMEOUT, LITERAL_PING, LITERAL_PONG};
use serde_json::{json, Value};

/// The default ping interval (SPEC §3); the gateway runs without override.
const PING_INTERVAL: Duration = Duration::from_secs(30);
/// The default socket cap per job (SPEC §6).
const SOCKET_CAP: usize = 32;

fn api() -> Api {
    Gateway::shared().api()
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// The room's own log lines about one job.
fn room_log(gateway: &Gateway, job_id: &str) -> String {
    gateway
        .log()
        .lines()
        .filter(|line| line.contains(job_id) && !line.contains("upgrade_timing"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Subscribes, sends the literal ping right after the open (as every client
/// must) and reads the snapshot and the runtime's pong.
async fn open_pinging(api: &Api, job_id: &str, token: &str) -> Sub {
    let mut sub = api.subscribe(job_id, token).await;
    sub.send_text(LITERAL_PING).await;
    sub.expect_type("snapshot").await;
    assert_eq!(
        sub.next_event(FRAME_TIMEOUT).await,
        WsEvent::Text(LITERAL_PONG.to_owned()),
        "the literal pong"
    );
    sub
}

/// Waits up to `within` for a JSON frame of `kind`, sending the literal ping
/// every ping interval meanwhile, as a client does. Literal pongs are skipped;
/// anything else fails the test.
async fn wait_for(sub: &mut Sub, kind: &str, within: Duration) -> Value {
    match sub.next_event_pinging(within, PING_INTERVAL).await {
        WsEvent::Timeout => panic!("no {kind} within {within:?}"),
        WsEvent::Text(text) => {
            let frame: Value = serde_json::from_str(&text).expect("json");
            assert_eq!(frame["type"], kind, "expected {kind}, got {frame}");
            frame
        }
        other => panic!("expected {kind}, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_socket_that_stops_pinging_gets_4002_and_frees_its_slot_while_its_neighbours_stay() {
    // Its own gateway: a failure prints what the room logged.
    let gateway = Gateway::start();
    let api = gateway.api();
    let job = api.create_job(json!({"pipeline": "ai_scan"})).await;
    // A full room: 31 neighbours that keep pinging, and a zombie (an app
    // frozen in the background) that pinged once on open and then went silent.
    let mut neighbours = Vec::new();
    for _ in 1..SOCKET_CAP {
        neighbours.push(open_pinging(&api, &job.id, &job.token).await);
    }
    let mut zombie = open_pinging(&api, &job.id, &job.token).await;
    let zombie_last_ping = Instant::now();
    let refused = api
        .try_subscribe(&job.id, &job.token, None, None)
        .await
        .expect_err("a 33rd socket while 32 are open");
    assert_eq!(refused.0.status, 429, "{}", refused.0.text);

    // From here on only literal pings, which never wake the room: it
    // hibernates after about 10 s, and the sweep runs from the alarm.
    let deadline = 3 * PING_INTERVAL + FRAME_TIMEOUT;
    let mut zombie_closed = tokio::spawn(async move {
        let event = zombie.next_event(deadline).await;
        (event, Instant::now())
    });
    let mut pings =
        tokio::time::interval_at(tokio::time::Instant::now() + PING_INTERVAL, PING_INTERVAL);
    let (event, closed_at) = loop {
        tokio::select! {
            closed = &mut zombie_closed => break closed.expect("zombie task"),
            _ = pings.tick() => {
                for neighbour in &mut neighbours {
                    neighbour.ping_literal().await;
                }
            }
        }
    };
    let idle = closed_at - zombie_last_ping;
    eprintln!(
        "timers | zombie: {event:?} after {:.1} s without a ping",
        idle.as_secs_f64()
    );
    assert!(
        matches!(event, WsEvent::Close(4002, _)),
        "expected close 4002 within 3 ping intervals of the zombie's last ping, got {event:?} after {idle:?}; the room logged:\n{}",
        room_log(&gateway, &job.id)
    );
    assert!(
        idle >= 2 * PING_INTERVAL - Duration::from_secs(1),
        "closed after {idle:?}: before 2 ping intervals without a ping"
    );

    // Its slot is free: the 33rd upgrade succeeds now.
    let mut newcomer = None;
    let freed_by = Instant::now() + FRAME_TIMEOUT;
    while newcomer.is_none() {
        match api.try_subscribe(&job.id, &job.token, None, None).await {
            Ok(sub) => newcomer = Some(sub),
            Err(e) => {
                assert_eq!(e.0.status, 429, "{}", e.0.text);
                assert!(Instant::now() < freed_by, "still 429 after the sweep");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    let mut newcomer = newcomer.expect("the 33rd socket");
    newcomer.expect_type("snapshot").await;

    // Every neighbour is still open and live.
    for neighbour in &mut neighbours {
        neighbour.ping_literal().await;
    }
    let seq = api.post_ok(&job.id, json!({"type": "started"})).await;
    for sub in neighbours.iter_mut().chain([&mut newcomer]) {
        assert_eq!(sub.expect_type("job_started").await["seq"], seq);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_refresh_reaches_a_hibernated_room_and_the_old_token_then_expires() {
    let api = api();
    // ttl 60 s: the refresh is due when less than min(10 min, 30 s) is left.
    let job = api
        .create_job(json!({"pipeline": "csv_import", "ttlSeconds": 60}))
        .await;
    let expires_first = job.body["expiresAt"].as_u64().expect("expiresAt");
    let due = expires_first - 30_000;
    let mut sub = open_pinging(&api, &job.id, &job.token).await;
    // Nothing but literal pings until then: the room hibernates first.
    let refresh = wait_for(&mut sub, "token_refresh", Duration::from_secs(45)).await;
    let arrived = now_ms();
    eprintln!(
        "timers | token_refresh {} ms after it was due",
        i128::from(arrived) - i128::from(due)
    );
    assert!(
        arrived <= due + 2_000,
        "token_refresh {} ms late",
        arrived - due
    );
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

    // Past the first token's expiresAt: refused everywhere, the new one works.
    tokio::time::sleep(Duration::from_millis(
        expires_first.saturating_sub(now_ms()) + 1_000,
    ))
    .await;
    let query = Api::query(&job.id, &job.token, None, None);
    assert_eq!(
        api.refused_upgrade(&query).await.assert_error(401),
        "unauthorized"
    );
    api.job_state(&job.id, &job.token).await.assert_error(401);
    api.cancel(&job.id, &job.token).await.assert_error(401);
    assert_eq!(api.job_state(&job.id, &token).await.status, 200);
    // The producer's view does not depend on subscriber tokens.
    assert_eq!(api.job_state_producer(&job.id).await.status, 200);
}
