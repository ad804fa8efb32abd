//! The producer hears of a cancel (issue 11, part 5) against the real
//! Worker: a job created with a loopback `callbackUrl` is POSTed a signed
//! notification within 2 s of a subscriber's cancel or of its expiry, and a
//! failing backend is retried at the documented backoff (docs/PROTOCOL.md §7).

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use e2e::{Api, Gateway, FRAME_TIMEOUT};
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

/// The documented first retry, after a failed first attempt.
const FIRST_BACKOFF: Duration = Duration::from_secs(1);

fn api() -> Api {
    Gateway::shared().api()
}

/// One request the callback server received.
#[derive(Debug)]
struct Received {
    at: Instant,
    method: String,
    path: String,
    signature: Option<String>,
    content_type: Option<String>,
    body: String,
}

/// A loopback HTTP server answering each request with the next status of
/// `statuses` (then 200), reporting what it received.
async fn callback_server(statuses: Vec<u16>) -> (String, mpsc::UnboundedReceiver<Received>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hooks/progress", listener.local_addr().unwrap());
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut statuses = statuses.into_iter();
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let status = statuses.next().unwrap_or(200);
            if let Some(received) = serve_one(stream, status).await {
                if tx.send(received).is_err() {
                    return;
                }
            }
        }
    });
    (url, rx)
}

/// Reads one HTTP/1.1 request (headers, then `Content-Length` bytes of body)
/// and answers `status`.
async fn serve_one(mut stream: TcpStream, status: u16) -> Option<Received> {
    let mut buf = Vec::new();
    let mut chunk = [0_u8; 4096];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i;
        }
        let n = tokio::time::timeout(FRAME_TIMEOUT, stream.read(&mut chunk))
            .await
            .ok()?
            .ok()?;
        if n == 0 || buf.len() > 64 * 1024 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let at = Instant::now();
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let mut first = lines.next()?.split(' ');
    let (method, path) = (first.next()?.to_owned(), first.next()?.to_owned());
    let header = |name: &str| {
        head.split("\r\n").skip(1).find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_owned())
        })
    };
    let length: usize = header("content-length")?.parse().ok()?;
    let mut body = buf[head_end + 4..].to_vec();
    while body.len() < length {
        let n = tokio::time::timeout(FRAME_TIMEOUT, stream.read(&mut chunk))
            .await
            .ok()?
            .ok()?;
        if n == 0 {
            return None;
        }
        body.extend_from_slice(&chunk[..n]);
    }
    let answer = format!("HTTP/1.1 {status} X\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
    let _ = stream.write_all(answer.as_bytes()).await;
    let _ = stream.shutdown().await;
    Some(Received {
        at,
        method,
        path,
        signature: header("x-gateway-signature"),
        content_type: header("content-type"),
        body: String::from_utf8(body).ok()?,
    })
}

async fn next(rx: &mut mpsc::UnboundedReceiver<Received>, within: Duration) -> Received {
    tokio::time::timeout(within, rx.recv())
        .await
        .unwrap_or_else(|_| panic!("no callback within {within:?}"))
        .expect("the callback server stopped")
}

fn now_ms() -> u64 {
    u64::try_from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_millis(),
    )
    .unwrap()
}

/// Checks `t=<ms>,v1=<hex>` as a backend would: HMAC-SHA256 with the producer
/// secret over `<t>.<body>`, and a fresh `t`.
fn assert_signed(r: &Received, secret: &str) {
    let header = r.signature.as_deref().expect("no X-Gateway-Signature");
    let (t, v1) = header
        .strip_prefix("t=")
        .and_then(|rest| rest.split_once(",v1="))
        .unwrap_or_else(|| panic!("signature header {header:?}"));
    let t_ms: u64 = t.parse().unwrap();
    assert!(now_ms().abs_diff(t_ms) < 60_000, "stale t {t_ms}");
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("{t}.{}", r.body).as_bytes());
    let expected = hex::decode(v1).expect("v1 is hex");
    mac.verify_slice(&expected)
        .unwrap_or_else(|_| panic!("bad signature {header:?} for {}", r.body));
    // A different secret does not verify.
    let mut other = Hmac::<Sha256>::new_from_slice(b"not-the-secret").unwrap();
    other.update(format!("{t}.{}", r.body).as_bytes());
    assert!(other.verify_slice(&expected).is_err());
}

#[tokio::test]
async fn a_cancel_frame_is_called_back_signed_within_2_s() {
    let api = api();
    let (url, mut rx) = callback_server(Vec::new()).await;
    let job = api
        .create_job(json!({"pipeline": "csv_import", "totalCount": 5, "callbackUrl": url}))
        .await;
    let mut sub = api.subscribe(&job.id, &job.token).await;
    sub.expect_type("snapshot").await;
    let before_ms = now_ms();
    let canceled = Instant::now();
    sub.send_text(r#"{"type":"cancel"}"#).await;
    assert_eq!(sub.expect_close().await.0, 1001);
    let r = next(&mut rx, FRAME_TIMEOUT.saturating_sub(canceled.elapsed())).await;
    let latency = r.at.duration_since(canceled);
    println!("callback {latency:?} after the cancel frame");
    assert!(latency <= FRAME_TIMEOUT);
    assert_eq!(
        (r.method.as_str(), r.path.as_str()),
        ("POST", "/hooks/progress")
    );
    assert_eq!(r.content_type.as_deref(), Some("application/json"));
    assert_signed(&r, api.secret());
    let body: Value = serde_json::from_str(&r.body).unwrap();
    assert_eq!(body["jobId"], job.id.as_str());
    assert_eq!(body["event"], "canceled");
    let at = body["at"].as_u64().unwrap();
    assert!(at.abs_diff(before_ms) < 5_000, "at {at} vs {before_ms}");
    assert_eq!(body.as_object().unwrap().len(), 3, "{body}");
    // Acknowledged with a 200: never sent again.
    assert!(
        tokio::time::timeout(FIRST_BACKOFF * 3, rx.recv())
            .await
            .is_err(),
        "a delivered callback was sent again"
    );
    // The producer's next event says why.
    let reply = api
        .post_events(&job.id, json!({"type": "progress", "processedCount": 1}))
        .await;
    assert_eq!(reply.assert_error(409), "job_canceled");
}

#[tokio::test]
async fn a_500_is_retried_after_the_first_backoff_step() {
    let api = api();
    let (url, mut rx) = callback_server(vec![500]).await;
    let job = api
        .create_job(json!({"pipeline": "ai_scan", "callbackUrl": url}))
        .await;
    let canceled = Instant::now();
    let reply = api.cancel(&job.id, &job.token).await;
    assert_eq!(reply.status, 202, "{}", reply.text);
    let first = next(&mut rx, FRAME_TIMEOUT).await;
    assert!(first.at.duration_since(canceled) <= FRAME_TIMEOUT);
    assert_signed(&first, api.secret());
    // Answered 500: retried after 1 s (plus the alarm's delay).
    let second = next(&mut rx, FIRST_BACKOFF + FRAME_TIMEOUT).await;
    let gap = second.at.duration_since(first.at);
    println!(
        "first attempt {:?} after the cancel, retry {gap:?} after it",
        first.at.duration_since(canceled)
    );
    assert!(
        gap >= FIRST_BACKOFF - Duration::from_millis(50),
        "retried after {gap:?}"
    );
    assert_eq!(second.body, first.body, "the same notification");
    assert_signed(&second, api.secret());
    let body: Value = serde_json::from_str(&second.body).unwrap();
    assert_eq!(
        (body["jobId"].as_str(), body["event"].as_str()),
        (Some(job.id.as_str()), Some("canceled"))
    );
    // The 200 ended it.
    assert!(tokio::time::timeout(Duration::from_secs(7), rx.recv())
        .await
        .is_err());
}

#[tokio::test]
async fn a_bad_callback_url_is_refused_and_makes_no_job() {
    let api = api();
    let long = format!("https://producer.example/{}", "a".repeat(2048));
    for (i, url) in [
        "http://producer.example/hook".to_owned(),
        "ftp://127.0.0.1/hook".to_owned(),
        "https://user:pw@producer.example/hook".to_owned(),
        long,
    ]
    .into_iter()
    .enumerate()
    {
        let id = format!("bad-callback-{i}-{}", now_ms());
        let reply = api
            .create_job_raw(json!({"pipeline": "csv_import", "jobId": id, "callbackUrl": url}))
            .await;
        assert_eq!(reply.assert_error(422), "invalid_callback_url", "{url}");
        assert_eq!(
            api.job_state_producer(&id).await.status,
            404,
            "no job was made"
        );
    }
    // At the limit: accepted.
    let base = "https://producer.example/";
    let at_limit = format!("{base}{}", "a".repeat(2048 - base.len()));
    let reply = api
        .create_job_raw(json!({"pipeline": "csv_import", "callbackUrl": at_limit}))
        .await;
    assert_eq!(reply.status, 202, "{}", reply.text);
}

/// The retention period of the expiry test's gateway. The default is 24 h
/// (`JOB_RETENTION_MS` unset): a default run would see the same frames, close
/// and callback a day after the producer's last event.
const SHORT_RETENTION: Duration = Duration::from_secs(3);

#[tokio::test]
async fn an_abandoned_job_expires_as_failed_and_is_called_back() {
    let retention_ms = SHORT_RETENTION.as_millis().to_string();
    let gateway = Gateway::start_with_vars(&[("JOB_RETENTION_MS", &retention_ms)]);
    let api = gateway.api();
    let (url, mut rx) = callback_server(Vec::new()).await;
    let job = api
        .create_job(json!({"pipeline": "batch_enrichment", "totalCount": 4, "callbackUrl": url}))
        .await;
    let seq = api
        .post_ok(&job.id, json!({"type": "progress", "processedCount": 1}))
        .await;
    // The retention runs from the last event.
    let last_event = Instant::now();
    let mut sub = api.subscribe(&job.id, &job.token).await;
    let snapshot = sub.expect_type("snapshot").await;
    assert_eq!(snapshot["payload"]["status"], "processing", "{snapshot}");
    // Nothing before the retention is over (less a margin for the alarm).
    let early = SHORT_RETENTION
        .saturating_sub(last_event.elapsed())
        .saturating_sub(Duration::from_millis(300));
    sub.expect_silence(early).await;
    // Then, within 2 s of the deadline: `error` job_expired with the next
    // seq, then 4001, as if the producer had failed it.
    let wait = SHORT_RETENTION.saturating_sub(last_event.elapsed()) + FRAME_TIMEOUT;
    let frame = match sub.next_event(wait).await {
        e2e::WsEvent::Text(text) => serde_json::from_str::<Value>(&text).unwrap(),
        other => panic!("expected the job_expired error within {wait:?}, got {other:?}"),
    };
    let expired = Instant::now();
    println!(
        "job_expired {:?} after the last event",
        expired.duration_since(last_event)
    );
    assert_eq!(frame["type"], "error", "{frame}");
    assert_eq!(frame["seq"], seq + 1, "{frame}");
    assert_eq!(frame["payload"]["code"], "job_expired", "{frame}");
    assert_eq!(frame["payload"]["retryable"], false, "{frame}");
    assert!(frame["payload"]["message"]
        .as_str()
        .is_some_and(|m| !m.is_empty()));
    assert_eq!(sub.expect_close().await.0, 4001);
    // The backend hears of it, signed, within 2 s.
    let r = next(&mut rx, FRAME_TIMEOUT).await;
    assert_eq!(
        (r.method.as_str(), r.path.as_str()),
        ("POST", "/hooks/progress")
    );
    assert_signed(&r, api.secret());
    let body: Value = serde_json::from_str(&r.body).unwrap();
    assert_eq!(body["jobId"], job.id.as_str(), "{body}");
    assert_eq!(body["event"], "expired", "{body}");
    assert!(body["at"].as_u64().is_some(), "{body}");
    // The job reads as failed with job_expired; the producer's next event
    // is told why.
    let state = api.job_state_producer(&job.id).await;
    assert_eq!(state.status, 200, "{}", state.text);
    assert_eq!(state.json["status"], "failed", "{}", state.text);
    assert_eq!(
        state.json["result"]["error"]["code"], "job_expired",
        "{}",
        state.text
    );
    let reply = api
        .post_events(&job.id, json!({"type": "progress", "processedCount": 2}))
        .await;
    assert_eq!(reply.assert_error(409), "job_failed");
    // A reconnect sees how it ended: the snapshot, that error, 4001.
    let mut again = api.subscribe(&job.id, &job.token).await;
    let snapshot = again.expect_type("snapshot").await;
    assert_eq!(snapshot["payload"]["status"], "failed", "{snapshot}");
    let error = again.expect_type("error").await;
    assert_eq!(error["payload"]["code"], "job_expired", "{error}");
    assert_eq!(again.expect_close().await.0, 4001);
    // One retention after the expiry it is forgotten: 404 (by default a
    // day after).
    let forgotten = expired + SHORT_RETENTION;
    tokio::time::sleep_until(forgotten.into()).await;
    loop {
        let reply = api.job_state_producer(&job.id).await;
        if reply.status == 404 {
            assert_eq!(reply.assert_error(404), "job_not_found");
            break;
        }
        assert_eq!(reply.status, 200, "{}", reply.text);
        assert!(
            forgotten.elapsed() < FRAME_TIMEOUT,
            "still there {:?} after the second retention",
            forgotten.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
