//! The whole runtime is killed (SIGKILL) in the middle of a job and
//! starts again on the same storage: nothing a producer was acknowledged for
//! is lost, `seq` continues, and apps resume with `lastSeq`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use e2e::{progress, Gateway, WsEvent, FRAME_TIMEOUT};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_mid_job_keeps_every_acknowledged_event() {
    let mut gateway = Gateway::start();
    let api = gateway.api();
    let job = api
        .create_job(json!({"pipeline": "csv_import", "totalCount": 100_000}))
        .await;
    let mut sub = api
        .try_subscribe(&job.id, &job.token, Some("ios-1"), None)
        .await
        .expect("upgrade");
    assert_eq!(sub.expect_type("snapshot").await["seq"], 0);
    let started = json!({"type": "started", "eventId": "start-1"});
    assert_eq!(api.post_ok(&job.id, started.clone()).await, 1);
    assert_eq!(sub.expect_type("job_started").await["seq"], 1);
    let mut seen = 1;

    // A producer posts as fast as it can while the runtime goes down.
    let acked_seq = Arc::new(AtomicU64::new(1));
    let acked_count = Arc::new(AtomicU64::new(0));
    let poster = {
        let (api, job_id) = (api.clone(), job.id.clone());
        let (acked_seq, acked_count) = (acked_seq.clone(), acked_count.clone());
        tokio::spawn(async move {
            for n in 1.. {
                let Some(reply) = api.try_post_events(&job_id, &progress(n, 100_000)).await else {
                    break;
                };
                assert_eq!(reply.status, 202, "{}", reply.text);
                acked_seq.store(reply.json["seq"].as_u64().expect("seq"), Ordering::SeqCst);
                acked_count.store(n, Ordering::SeqCst);
            }
        })
    };
    // Let some events through, reading them like an app does.
    while seen < 20 {
        let frame = sub.next_json().await;
        assert_eq!(frame["seq"].as_u64(), Some(seen + 1), "{frame}");
        seen += 1;
    }
    tokio::task::block_in_place(|| gateway.crash());
    poster.await.expect("poster");
    let (acked_seq, acked_count) = (
        acked_seq.load(Ordering::SeqCst),
        acked_count.load(Ordering::SeqCst),
    );
    assert!(acked_seq >= 2, "acked {acked_seq}");
    // The app's socket went down with the runtime (no close frame: 1006).
    let mut last_seen = seen;
    loop {
        match sub.next_event(FRAME_TIMEOUT).await {
            WsEvent::Text(text) => {
                let frame: serde_json::Value = serde_json::from_str(&text).expect("json");
                last_seen = frame["seq"].as_u64().expect("seq");
            }
            WsEvent::Dropped | WsEvent::Close(1006, _) => break,
            other => panic!("socket of a stopped runtime: {other:?}"),
        }
    }

    tokio::task::block_in_place(|| gateway.restart());
    let api = gateway.api();

    // The first thing the restarted room sees is the app's resume: a cold
    // upgrade, which reads storage once.
    let mut back = api
        .try_subscribe(&job.id, &job.token, Some("ios-1"), Some(last_seen))
        .await
        .expect("upgrade after restart");
    let resumed = back.expect_type("reconnected").await;
    assert_eq!(resumed["payload"]["recovered"], true);

    let state = api.job_state(&job.id, &job.token).await;
    assert_eq!(
        state.status, 200,
        "token survives the restart: {}",
        state.text
    );
    let stored_seq = state.json["seq"].as_u64().expect("seq");
    let stored_count = state.json["processedCount"]
        .as_u64()
        .expect("processedCount");
    assert!(
        stored_seq >= acked_seq,
        "acked seq {acked_seq} lost: stored {stored_seq}"
    );
    assert!(
        stored_seq >= last_seen,
        "seq {last_seen} reached the app but was not stored: {stored_seq}"
    );
    assert!(
        stored_count >= acked_count,
        "acked processedCount {acked_count} lost: stored {stored_count}"
    );
    assert_eq!(resumed["seq"].as_u64(), Some(stored_seq));
    assert_eq!(
        resumed["payload"]["processedCount"].as_u64(),
        Some(stored_count)
    );

    // A second upgrade is warm: no storage read.
    let mut second = api.subscribe(&job.id, &job.token).await;
    second.expect_type("snapshot").await;
    // wrangler writes workerd's console output asynchronously.
    let mut timings = upgrade_timings(&gateway.log(), &job.id);
    for _ in 0..50 {
        if timings.len() >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        timings = upgrade_timings(&gateway.log(), &job.id);
    }
    assert_eq!(timings.len(), 2, "{timings:?}");
    assert_eq!(timings[0]["cold"], true, "{timings:?}");
    assert_eq!(timings[1]["cold"], false, "{timings:?}");
    assert_eq!(timings[1]["storage_ms"], 0, "{timings:?}");
    assert!(
        !gateway.raw_log().contains(&job.token),
        "a token reached the log"
    );

    // seq continues where it was, and event ids applied before the restart are remembered.
    let next = api
        .post_ok(&job.id, progress(stored_count + 1, 100_000))
        .await;
    assert_eq!(next, stored_seq + 1);
    assert_eq!(
        back.expect_type("job_progress").await["seq"].as_u64(),
        Some(next)
    );
    assert_eq!(
        api.post_ok(&job.id, started).await,
        1,
        "eventId from before the restart"
    );
    let done = api
        .post_ok(&job.id, json!({"type": "complete", "summary": {}}))
        .await;
    assert_eq!(done, next + 1);
    assert_eq!(
        back.expect_type("job_complete").await["seq"].as_u64(),
        Some(done)
    );
    assert_eq!(back.expect_close().await.0, 1000);
    assert_eq!(
        second.expect_type("job_progress").await["seq"].as_u64(),
        Some(next)
    );
    gateway.stop();
    assert!(!gateway.is_running());
}

/// The gateway's `upgrade_timing` log lines for one job, oldest first.
fn upgrade_timings(log: &str, job_id: &str) -> Vec<serde_json::Value> {
    log.lines()
        .filter_map(|line| line.find('{').map(|i| &line[i..]))
        .filter_map(|json| serde_json::from_str::<serde_json::Value>(json).ok())
        .filter(|v| v["event"] == "upgrade_timing" && v["job_id"] == job_id)
        .collect()
}
