//! How soon an app learns of a close the room starts, against the real Worker
//! in local workerd: for every server-initiated close path, the time from its
//! trigger (the answer that caused it: a 202, a 101, or the frame the client
//! sent) to the close frame and to the end of the client's TCP connection.
//!
//! Two clients per path: one that sent the literal ping as soon as its socket
//! opened (SPEC §3, what every client must do) and one that never sent a frame.
//! The runtime ends the connection of the second only when the room next
//! hibernates (docs/runtime-close-delay.md); its figures are printed, not
//! asserted. Run with `--nocapture` to see the table.

use std::time::{Duration, Instant};

use e2e::{progress, Api, CloseWatch, Gateway, Job, Sub, FRAME_TIMEOUT, LITERAL_PING};
use serde_json::json;
use tokio::task::JoinHandle;

/// The requirement for a client that pinged on open: "well under a second".
const PINGED_END_WITHIN: Duration = Duration::from_secs(1);
/// How long a watcher waits for the end of a connection (a client that never
/// pinged waits for the room's hibernation, about 10 s).
const WATCH_WITHIN: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Client {
    /// Sent the literal ping right after the socket opened.
    Pinged,
    /// Never sent a frame before the close.
    Silent,
    /// Sent the frame that caused its own close (a cancel).
    Sender,
}

impl Client {
    fn label(self) -> &'static str {
        match self {
            Self::Pinged => "pinged on open",
            Self::Silent => "never pinged",
            Self::Sender => "sent the cancel",
        }
    }
}

/// One measured close.
struct Row {
    path: &'static str,
    client: Client,
    expected: u16,
    trigger: Instant,
    watch: CloseWatch,
}

struct Pending {
    path: &'static str,
    client: Client,
    expected: u16,
    watch: JoinHandle<CloseWatch>,
}

impl Pending {
    fn new(path: &'static str, client: Client, expected: u16, sub: Sub) -> Self {
        Self {
            path,
            client,
            expected,
            watch: sub.watch_close(WATCH_WITHIN),
        }
    }

    async fn measured(self, trigger: Instant) -> Row {
        Row {
            path: self.path,
            client: self.client,
            expected: self.expected,
            trigger,
            watch: self.watch.await.expect("watcher"),
        }
    }
}

async fn measured(pending: Vec<Pending>, trigger: Instant) -> Vec<Row> {
    let mut rows = Vec::new();
    for p in pending {
        rows.push(p.measured(trigger).await);
    }
    rows
}

async fn new_job(api: &Api) -> Job {
    api.create_job(json!({"pipeline": "csv_import", "totalCount": 10}))
        .await
}

/// Opens a socket and reads its snapshot; a pinged client sends the literal
/// ping right after the open and gets its pong.
async fn open(api: &Api, job: &Job, client_id: Option<&str>, client: Client) -> Sub {
    let mut sub = api
        .try_subscribe(&job.id, &job.token, client_id, None)
        .await
        .unwrap_or_else(|e| panic!("upgrade refused: {} {}", e.0.status, e.0.text));
    if client == Client::Pinged {
        sub.send_text(LITERAL_PING).await;
    }
    sub.expect_type("snapshot").await;
    if client == Client::Pinged {
        assert_eq!(
            sub.next_event(FRAME_TIMEOUT).await,
            e2e::WsEvent::Text(e2e::LITERAL_PONG.to_owned())
        );
    }
    sub
}

/// Both kinds of client on one job, watched from before the trigger.
async fn pair(api: &Api, job: &Job, path: &'static str, expected: u16) -> Vec<Pending> {
    let mut pending = Vec::new();
    for client in [Client::Pinged, Client::Silent] {
        let sub = open(api, job, None, client).await;
        pending.push(Pending::new(path, client, expected, sub));
    }
    pending
}

fn accepted(reply: &e2e::Reply) -> Instant {
    let at = Instant::now();
    assert_eq!(reply.status, 202, "{}", reply.text);
    at
}

async fn after_complete(api: &Api) -> Vec<Row> {
    let job = new_job(api).await;
    let pending = pair(api, &job, "1000 after complete (202)", 1000).await;
    let reply = api
        .post_events(&job.id, json!({"type": "complete", "summary": {}}))
        .await;
    measured(pending, accepted(&reply)).await
}

async fn after_failed(api: &Api) -> Vec<Row> {
    let job = new_job(api).await;
    let pending = pair(api, &job, "4001 after failed (202)", 4001).await;
    let failed = json!({"type": "failed", "code": "broken", "message": "row 7"});
    let reply = api.post_events(&job.id, failed).await;
    measured(pending, accepted(&reply)).await
}

async fn cancel_endpoint(api: &Api) -> Vec<Row> {
    let job = new_job(api).await;
    let pending = pair(api, &job, "1001 cancel endpoint (202)", 1001).await;
    let reply = api.cancel(&job.id, &job.token).await;
    measured(pending, accepted(&reply)).await
}

async fn cancel_frame(api: &Api) -> Vec<Row> {
    let job = new_job(api).await;
    let path = "1001 cancel frame (frame sent)";
    let mut pending = pair(api, &job, path, 1001).await;
    let mut canceler = open(api, &job, None, Client::Silent).await;
    canceler.send_text(r#"{"type":"cancel"}"#).await;
    let trigger = Instant::now();
    pending.push(Pending::new(path, Client::Sender, 1001, canceler));
    measured(pending, trigger).await
}

async fn revoke(api: &Api) -> Vec<Row> {
    let job = new_job(api).await;
    let pending = pair(api, &job, "1008 revoke (202)", 1008).await;
    let reply = api.revoke(&job.id).await;
    measured(pending, accepted(&reply)).await
}

async fn supersede(api: &Api) -> Vec<Row> {
    let job = new_job(api).await;
    let mut rows = Vec::new();
    let mut newer = Vec::new();
    for (client, id) in [
        (Client::Pinged, "app-pinged"),
        (Client::Silent, "app-silent"),
    ] {
        let old = open(api, &job, Some(id), client).await;
        let pending = Pending::new("4000 superseded (new 101)", client, 4000, old);
        let new = api
            .try_subscribe(&job.id, &job.token, Some(id), None)
            .await
            .expect("upgrade");
        let trigger = Instant::now();
        newer.push(new);
        rows.push(pending.measured(trigger).await);
    }
    rows
}

async fn late_subscriber(api: &Api) -> Vec<Row> {
    let job = new_job(api).await;
    let done = json!({"type": "complete", "summary": {}});
    api.post_ok(
        &job.id,
        json!([{"type": "started"}, progress(10, 10), done]),
    )
    .await;
    let mut rows = Vec::new();
    for client in [Client::Pinged, Client::Silent] {
        let mut sub = api.subscribe(&job.id, &job.token).await;
        let trigger = Instant::now();
        if client == Client::Pinged {
            sub.send_text(LITERAL_PING).await;
        }
        let pending = Pending::new("1000 late subscriber (its 101)", client, 1000, sub);
        rows.push(pending.measured(trigger).await);
    }
    rows
}

async fn protocol_error(api: &Api) -> Vec<Row> {
    let job = new_job(api).await;
    let mut rows = Vec::new();
    for client in [Client::Pinged, Client::Silent] {
        let mut sub = open(api, &job, None, client).await;
        sub.send_text("[1,2]").await;
        let trigger = Instant::now();
        let pending = Pending::new("1002 protocol error (frame sent)", client, 1002, sub);
        rows.push(pending.measured(trigger).await);
    }
    rows
}

fn ms(duration: Option<Duration>) -> String {
    duration.map_or_else(
        || format!("> {} s", WATCH_WITHIN.as_secs()),
        |d| format!("{} ms", d.as_millis()),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_timing_of_every_server_initiated_close() {
    let api = Gateway::shared().api();
    // Every path on its own job (its own room), all at once: the whole test
    // takes as long as the slowest connection end of a client that never pinged.
    let (a, b, c, d, e, f, g, h) = tokio::join!(
        after_complete(&api),
        after_failed(&api),
        cancel_endpoint(&api),
        cancel_frame(&api),
        revoke(&api),
        supersede(&api),
        late_subscriber(&api),
        protocol_error(&api),
    );
    let rows: Vec<Row> = [a, b, c, d, e, f, g, h].into_iter().flatten().collect();

    let mut failures = Vec::new();
    eprintln!("close timing | path                             | client          | code | close frame | connection end");
    for row in &rows {
        let close = row.watch.close_after(row.trigger);
        let end = row.watch.end_after(row.trigger);
        eprintln!(
            "close timing | {:<32} | {:<15} | {:>4} | {:>11} | {:>14}{}",
            row.path,
            row.client.label(),
            row.watch.code().map_or("none".into(), |c| c.to_string()),
            ms(close),
            ms(end),
            row.watch
                .error
                .as_ref()
                .map_or(String::new(), |e| format!(" (ended by error: {e})")),
        );
        let what = format!("{} / {}", row.path, row.client.label());
        if row.watch.code() != Some(row.expected) {
            failures.push(format!(
                "{what}: close {:?}, expected {}",
                row.watch.close, row.expected
            ));
        }
        if close.is_none_or(|d| d > FRAME_TIMEOUT) {
            failures.push(format!("{what}: close frame after {}", ms(close)));
        }
        if row.client != Client::Silent {
            if end.is_none_or(|d| d > PINGED_END_WITHIN) {
                failures.push(format!("{what}: connection ended after {}", ms(end)));
            } else if !row.watch.eof {
                failures.push(format!(
                    "{what}: the stream ended but the socket is not at EOF ({:?})",
                    row.watch.error
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}
