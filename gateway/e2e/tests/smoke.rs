//! Phase-1 smoke test of the build + runtime (temporary).
use std::time::Duration;

use e2e::{Gateway, WsEvent};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn minimal_durable_object_runs_in_workerd() {
    let mut gateway = Gateway::start();
    let api = gateway.api();
    assert_eq!(api.raw("GET", "/healthz", &[], None).await.status, 200);
    assert_eq!(
        api.raw("GET", "/probe/a", &[], None).await.text,
        "count=1 alarms=0"
    );
    assert_eq!(
        api.raw("GET", "/probe/a/alarm", &[], None).await.text,
        "count=2 alarms=0"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        api.raw("GET", "/probe/a", &[], None).await.text,
        "count=3 alarms=1"
    );

    let mut ws = api
        .connect_ws("/probe/a")
        .await
        .unwrap_or_else(|e| panic!("{e:?}"));
    ws.send_text(r#"{"type":"ping"}"#).await;
    assert_eq!(
        ws.next_event(Duration::from_secs(5)).await,
        WsEvent::Text(r#"{"type":"pong"}"#.into())
    );
    ws.send_text("hello").await;
    let echo = ws.next_json().await;
    assert_eq!(echo["echo"], "hello");
    assert_eq!(echo["socket"], 4);
    assert!(echo["lastAutoResponse"].as_u64().is_some(), "{echo}");

    let started = std::time::Instant::now();
    gateway.restart();
    eprintln!("restart took {:?}", started.elapsed());
    let api = gateway.api();
    assert_eq!(
        api.raw("GET", "/probe/a", &[], None).await.text,
        "count=5 alarms=1"
    );
    drop(ws);
}
