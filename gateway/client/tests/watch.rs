//! The driver against a tiny WebSocket/HTTP server on 127.0.0.1: each test
//! scripts what the gateway sends and asserts the outcome a user would see.

mod common;

use common::within;
use futures_util::{SinkExt, StreamExt};
use gateway_client::gateway_core::client::{FailReason, JobEnd};
use gateway_client::gateway_core::protocol::{
    encode, JobHeader, JobStatus, Pipeline, Seq, ServerMessage, Snapshot, LITERAL_PING,
};
use gateway_client::gateway_core::token::Token;
use gateway_client::gateway_core::Millis;
use gateway_client::{watch, Ending, Outcome, WatchEvent, WatchHandle, WatchOptions};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::StatusCode;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message;

const JOB: &str = "job-1";

/// What the scripted gateway does on one connection.
#[derive(Clone)]
enum Plan {
    /// Answer the upgrade with this status (and `Retry-After`).
    Refuse(u16, Option<u64>),
    /// Upgrade, then act.
    Script(Vec<Act>),
    /// Accept the TCP connection and never answer the upgrade.
    Silent,
}

#[derive(Clone)]
enum Act {
    Text(String),
    Close(u16),
    /// Read until the client goes; records whether it sent a close frame.
    AwaitEnd,
    /// Read this many text frames from the client (each within 2 s) into `texts`.
    AwaitTexts(usize),
}

#[derive(Default)]
struct Seen {
    /// Upgrade query strings, in order.
    queries: Vec<String>,
    /// `Authorization` headers of state syncs.
    syncs: Vec<String>,
    /// Close codes the client sent (`None`: it left without a close frame).
    client_closes: Vec<Option<u16>>,
    /// Text frames the client sent, with the ms since its socket opened
    /// (`None`: not sent within 2 s).
    texts: Vec<Option<(String, u128)>>,
}

/// Starts the scripted gateway; connection `i` follows `plans[i]` (the last plan repeats).
/// A `GET /api/job-state/…` is answered with `state` (200) if given, else 503.
async fn serve(plans: Vec<Plan>, state: Option<String>) -> (String, Arc<Mutex<Seen>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let seen = Arc::new(Mutex::new(Seen::default()));
    let log = Arc::clone(&seen);
    tokio::spawn(async move {
        let mut upgrades = 0;
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let mut head = [0u8; 64];
            let n = tcp.peek(&mut head).await.unwrap_or(0);
            if head[..n].starts_with(b"GET /api/job-state/") {
                tokio::spawn(answer_sync(tcp, state.clone(), Arc::clone(&log)));
                continue;
            }
            let plan = plans[upgrades.min(plans.len() - 1)].clone();
            upgrades += 1;
            if let Plan::Silent = plan {
                // Hold the connection open (until the client gives up on it) without a word.
                tokio::spawn(async move {
                    let mut tcp = tcp;
                    let mut sink = [0u8; 1024];
                    while tcp.read(&mut sink).await.is_ok_and(|n| n > 0) {}
                });
                continue;
            }
            tokio::spawn(connection(tcp, plan, Arc::clone(&log)));
        }
    });
    (base, seen)
}

async fn answer_sync(mut tcp: TcpStream, state: Option<String>, log: Arc<Mutex<Seen>>) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 1024];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = tcp.read(&mut chunk).await.unwrap();
        if n == 0 {
            return;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let head = String::from_utf8_lossy(&buf).to_string();
    let auth = head
        .lines()
        .find_map(|l| l.strip_prefix("authorization: "))
        .unwrap_or_default()
        .to_owned();
    log.lock().unwrap().syncs.push(auth);
    let (status, body) = match state {
        Some(b) => ("200 OK", b),
        None => ("503 Service Unavailable", String::new()),
    };
    let reply = format!(
        "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    tcp.write_all(reply.as_bytes()).await.unwrap();
}

#[allow(clippy::result_large_err)] // the Err type is tungstenite's callback signature
async fn connection(tcp: TcpStream, plan: Plan, log: Arc<Mutex<Seen>>) {
    let callback = |req: &Request, resp: Response| -> Result<Response, ErrorResponse> {
        log.lock()
            .unwrap()
            .queries
            .push(req.uri().query().unwrap_or_default().to_owned());
        match &plan {
            Plan::Refuse(status, retry_after) => {
                let mut r =
                    ErrorResponse::new(Some(r#"{"error":{"code":"x","message":"x"}}"#.into()));
                *r.status_mut() = StatusCode::from_u16(*status).unwrap();
                if let Some(s) = retry_after {
                    r.headers_mut()
                        .insert("retry-after", s.to_string().parse().unwrap());
                }
                Err(r)
            }
            Plan::Script(_) | Plan::Silent => Ok(resp),
        }
    };
    let Ok(mut ws) = tokio_tungstenite::accept_hdr_async(tcp, callback).await else {
        return;
    };
    let Plan::Script(acts) = plan else { return };
    let opened = std::time::Instant::now();
    for act in acts {
        match act {
            Act::Text(t) => ws.send(Message::text(t)).await.unwrap(),
            Act::Close(code) => {
                let frame = CloseFrame {
                    code: CloseCode::from(code),
                    reason: "".into(),
                };
                let _ = ws.close(Some(frame)).await;
                while ws.next().await.is_some() {}
            }
            Act::AwaitEnd => {
                let mut code = None;
                while let Some(m) = ws.next().await {
                    match m {
                        Ok(Message::Close(f)) => code = f.map(|f| u16::from(f.code)),
                        Ok(_) => {}
                        Err(_) => break,
                    }
                }
                log.lock().unwrap().client_closes.push(code);
            }
            Act::AwaitTexts(n) => {
                for _ in 0..n {
                    let text = tokio::time::timeout(Duration::from_secs(2), async {
                        while let Some(Ok(m)) = ws.next().await {
                            if let Message::Text(t) = m {
                                return Some(t.to_string());
                            }
                        }
                        None
                    })
                    .await
                    .ok()
                    .flatten();
                    let at = opened.elapsed().as_millis();
                    log.lock().unwrap().texts.push(text.map(|t| (t, at)));
                }
            }
        }
    }
}

fn frame(seq: Option<u64>, msg: &ServerMessage) -> Act {
    let job = JobHeader {
        job_id: JOB.into(),
        pipeline: Pipeline::CsvImport,
    };
    Act::Text(encode(&job, Millis(1), seq.map(Seq), msg))
}

fn snapshot(seq: u64, processed: u64, resumed: bool) -> Act {
    frame(
        Some(seq),
        &ServerMessage::Snapshot {
            resumed,
            recovered: resumed,
            state: Snapshot {
                status: if seq == 0 {
                    JobStatus::Pending
                } else {
                    JobStatus::Processing
                },
                processed_count: processed,
                total_count: Some(3),
            },
        },
    )
}

fn progress(seq: u64, n: u64) -> Act {
    frame(
        Some(seq),
        &ServerMessage::JobProgress {
            processed_count: n,
            total_count: Some(3),
            current_item: Some(format!("item {n}")),
            message: None,
        },
    )
}

fn complete(seq: u64) -> Act {
    frame(
        Some(seq),
        &ServerMessage::JobComplete {
            summary: r#"{"ok":true}"#.into(),
        },
    )
}

fn fast(handle: &WatchHandle) -> (WatchOptions, mpsc::UnboundedReceiver<WatchEvent>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let options = WatchOptions {
        handle: handle.clone(),
        events: Some(tx),
        backoff_base: Some(Millis(20)),
        backoff_cap: Some(Millis(100)),
        io_timeout: Duration::from_secs(2),
        ..WatchOptions::default()
    };
    (options, rx)
}

async fn run(base: &str, options: WatchOptions) -> Outcome {
    let watched = watch(base, JOB, Token::from_string("tok-secret".into()), options);
    within(5, "the watch's end", watched)
        .await
        .expect("watch started")
}

fn events(rx: &mut mpsc::UnboundedReceiver<WatchEvent>) -> Vec<WatchEvent> {
    std::iter::from_fn(|| rx.try_recv().ok()).collect()
}

#[tokio::test]
async fn completes_after_job_complete_and_1000() {
    let script = vec![
        snapshot(0, 0, false),
        progress(1, 1),
        progress(2, 3),
        complete(3),
        Act::Close(1000),
    ];
    let (base, seen) = serve(vec![Plan::Script(script)], None).await;
    let handle = WatchHandle::new();
    let (options, _rx) = fast(&handle);
    let outcome = run(&base, options).await;
    assert_eq!(
        outcome.ending,
        Ending::Job(JobEnd::Succeeded {
            summary: Some(r#"{"ok":true}"#.into())
        })
    );
    let latest = handle.latest().get();
    assert_eq!(latest.view.processed_count, 3);
    assert_eq!(latest.view.status, Some(JobStatus::Completed));
    assert_eq!(latest.view.seq, Some(Seq(3)));
    let queries = &seen.lock().unwrap().queries;
    assert_eq!(queries.len(), 1, "no reconnect after 1000");
    assert_eq!(queries[0], "jobId=job-1&token=tok-secret");
}

#[tokio::test]
async fn superseded_4000_stops_without_reconnecting() {
    let (base, seen) = serve(
        vec![Plan::Script(vec![snapshot(0, 0, false), Act::Close(4000)])],
        None,
    )
    .await;
    let (options, _rx) = fast(&WatchHandle::new());
    let outcome = run(&base, options).await;
    assert_eq!(outcome.ending, Ending::GaveUp(FailReason::Superseded));
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(seen.lock().unwrap().queries.len(), 1);
}

#[tokio::test]
async fn job_failed_4001_reports_the_producers_error() {
    let error = frame(
        Some(1),
        &ServerMessage::Error {
            code: "bad_csv".into(),
            message: "row 7".into(),
            retryable: false,
        },
    );
    let (base, _) = serve(
        vec![Plan::Script(vec![
            snapshot(0, 0, false),
            error,
            Act::Close(4001),
        ])],
        None,
    )
    .await;
    let (options, _rx) = fast(&WatchHandle::new());
    let outcome = run(&base, options).await;
    assert_eq!(
        outcome.ending,
        Ending::Job(JobEnd::Failed {
            code: "bad_csv".into(),
            message: "row 7".into()
        })
    );
}

#[tokio::test]
async fn upgrade_refusals_map_to_fail_reasons() {
    for (status, reason) in [
        (401, FailReason::Unauthorized),
        (404, FailReason::NotFound),
        (400, FailReason::BadRequest(400)),
    ] {
        let (base, _) = serve(vec![Plan::Refuse(status, None)], None).await;
        let (options, mut rx) = fast(&WatchHandle::new());
        let outcome = run(&base, options).await;
        assert_eq!(outcome.ending, Ending::GaveUp(reason));
        assert!(events(&mut rx).contains(&WatchEvent::Refused {
            status,
            retry_after: None
        }));
    }
}

#[tokio::test]
async fn dropped_socket_resumes_with_last_seq() {
    let first = vec![
        snapshot(0, 0, false),
        progress(1, 1),
        progress(2, 2),
        Act::AwaitEnd,
    ];
    let second = vec![snapshot(3, 3, true), complete(4), Act::Close(1000)];
    let (base, seen) = serve(vec![Plan::Script(first), Plan::Script(second)], None).await;
    let handle = WatchHandle::new();
    let (options, mut rx) = fast(&handle);
    let control = handle.connection();
    let latest = handle.latest();
    tokio::spawn(async move {
        let mut v = 0;
        loop {
            v = latest.changed(v).await;
            if latest.get().view.processed_count >= 2 {
                control.drop_connection();
                return;
            }
        }
    });
    let outcome = run(&base, options).await;
    assert!(matches!(
        outcome.ending,
        Ending::Job(JobEnd::Succeeded { .. })
    ));
    let events = events(&mut rx);
    assert!(events.contains(&WatchEvent::Disconnected {
        code: None,
        seq: Some(Seq(2)),
        deliberate: true
    }));
    assert!(events.contains(&WatchEvent::Resumed {
        from: Seq(2),
        at: Some(Seq(3)),
        recovered: true
    }));
    let seen = seen.lock().unwrap();
    assert_eq!(seen.queries[1], "jobId=job-1&token=tok-secret&lastSeq=2");
    assert_eq!(
        seen.client_closes,
        vec![None],
        "dropped without a close frame"
    );
}

#[tokio::test]
async fn stop_while_reconnecting_is_observed() {
    let (base, _) = serve(vec![Plan::Refuse(429, Some(30))], None).await;
    let handle = WatchHandle::new();
    let (options, mut rx) = fast(&handle);
    let task = tokio::spawn({
        let base = base.clone();
        async move { run(&base, options).await }
    });
    // Wait until the machine is backing off (Retry-After 30 s), then stop.
    within(2, "a 30 s backoff after the 429", async {
        loop {
            let event = rx.recv().await.expect("the watch task is running");
            if let WatchEvent::Reconnecting { at } = event {
                assert!(at.0 >= gateway_client::now_ms().0 + 29_000);
                break;
            }
        }
    })
    .await;
    handle.stop();
    let outcome = within(2, "the end of the watch after stop()", task)
        .await
        .unwrap();
    assert_eq!(outcome.ending, Ending::GaveUp(FailReason::Stopped));
}

#[tokio::test]
async fn stop_before_start_ends_at_once() {
    let (base, _) = serve(vec![Plan::Script(vec![Act::AwaitEnd])], None).await;
    let handle = WatchHandle::new();
    handle.stop();
    let (options, _rx) = fast(&handle);
    let outcome = run(&base, options).await;
    assert_eq!(outcome.ending, Ending::GaveUp(FailReason::Stopped));
}

#[tokio::test]
async fn state_sync_after_failed_reconnects_with_bearer_token() {
    let state = r#"{"jobId":"job-1","pipeline":"csv_import","seq":9,"updatedAt":1,"status":"completed","processedCount":3,"totalCount":3,"progress":1,"currentProgress":1}"#;
    let (base, seen) = serve(vec![Plan::Refuse(503, None)], Some(state.into())).await;
    let handle = WatchHandle::new();
    let (mut options, mut rx) = fast(&handle);
    options.sync_after = Some(1);
    let outcome = run(&base, options).await;
    assert_eq!(
        outcome.ending,
        Ending::Job(JobEnd::Succeeded { summary: None })
    );
    assert_eq!(outcome.view.seq, Some(Seq(9)));
    assert!(events(&mut rx).contains(&WatchEvent::StateFetched { status: 200 }));
    assert_eq!(
        seen.lock().unwrap().syncs,
        vec!["Bearer tok-secret".to_owned()]
    );
}

#[tokio::test]
async fn literal_ping_as_soon_as_the_socket_opens_then_every_interval() {
    // The gateway sends nothing until the client has spoken: the first ping
    // must not wait for the snapshot (SPEC §3).
    let script = vec![
        Act::AwaitTexts(1),
        snapshot(0, 0, false),
        Act::AwaitTexts(2),
        complete(1),
        Act::Close(1000),
    ];
    let (base, seen) = serve(vec![Plan::Script(script)], None).await;
    let handle = WatchHandle::new();
    let (mut options, _rx) = fast(&handle);
    options.ping_interval = Some(Millis(700));
    let outcome = run(&base, options).await;
    assert!(matches!(
        outcome.ending,
        Ending::Job(JobEnd::Succeeded { .. })
    ));
    let texts = seen.lock().unwrap().texts.clone();
    let [first, second, third] = &texts[..] else {
        panic!("expected 3 client frames, got {texts:?}");
    };
    let (first, at) = first.clone().expect("no frame within 2 s of the open");
    assert_eq!(first, LITERAL_PING, "the first frame is the literal ping");
    assert!(at < 700, "the first ping waited for the interval ({at} ms)");
    for next in [second, third] {
        let (text, _) = next.clone().expect("no ping within 2 s");
        assert_eq!(text, LITERAL_PING);
    }
}

#[tokio::test]
async fn an_upgrade_that_is_never_answered_is_given_up_and_retried() {
    let (base, _) = serve(vec![Plan::Silent], None).await;
    let handle = WatchHandle::new();
    let (mut options, mut rx) = fast(&handle);
    options.io_timeout = Duration::from_millis(300);
    let task = tokio::spawn({
        let base = base.clone();
        async move { run(&base, options).await }
    });
    within(3, "a second upgrade after an unanswered one", async {
        let mut attempts = 0;
        while attempts < 2 {
            let event = rx.recv().await.expect("the watch task is running");
            assert_ne!(
                event,
                WatchEvent::Connected,
                "a silent server cannot upgrade"
            );
            if let WatchEvent::Connecting { .. } = event {
                attempts += 1;
            }
        }
    })
    .await;
    handle.stop();
    let outcome = within(2, "the end of the watch after stop()", task)
        .await
        .unwrap();
    assert_eq!(outcome.ending, Ending::GaveUp(FailReason::Stopped));
}
