//! Hostile input at the Worker's edge (issue 11, part 3), against the real
//! Worker: bodies refused by their `Content-Length` and chunked bodies cut
//! off once they pass 1 MiB; browser origins outside
//! `ALLOWED_ORIGINS`; the producer secret during a rotation.
//!
//! The default configuration (wrangler.toml: `ALLOWED_ORIGINS = "*"`, no
//! `PRODUCER_SECRET_NEXT`) runs on [`Gateway::shared`]; the configured one
//! on [`configured`], started with `[vars]` overrides.

use std::sync::OnceLock;
use std::time::Duration;

use e2e::{progress, Api, Gateway, Job, Reply, FRAME_TIMEOUT};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::OwnedReadHalf;
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;

/// SPEC §1: a producer body may hold 1 MiB.
const LIMIT: usize = 1024 * 1024;
/// The origin `configured()` allows, next to a local development one.
const LISTED: &str = "https://app.example.com";
const UNLISTED: &str = "https://evil.example.com";
/// The second producer secret of `configured()`.
const NEXT_SECRET: &str = "e2e-next-producer-secret-rotation";

/// A gateway with `ALLOWED_ORIGINS` listing two origins and a second
/// producer secret, as an operator sets them during a rotation.
fn configured() -> &'static Gateway {
    static GATEWAY: OnceLock<Gateway> = OnceLock::new();
    GATEWAY.get_or_init(|| {
        Gateway::start_static(&[
            (
                "ALLOWED_ORIGINS",
                "https://app.example.com, http://localhost:5173",
            ),
            ("PRODUCER_SECRET_NEXT", NEXT_SECRET),
        ])
    })
}

async fn new_job(api: &Api) -> Job {
    api.create_job(json!({"pipeline": "batch_enrichment", "totalCount": 10}))
        .await
}

/// A JSON body of exactly `len` bytes: `json` padded with spaces (JSON
/// whitespace), so no field bound of the room is involved.
fn padded(json: &Value, len: usize) -> String {
    let mut text = json.to_string();
    assert!(text.len() <= len);
    text.push_str(&" ".repeat(len - text.len()));
    text
}

async fn seq(api: &Api, job: &str) -> Value {
    let state = api.job_state_producer(job).await;
    assert_eq!(state.status, 200, "{}", state.text);
    state.json["seq"].clone()
}

// ---------------------------------------------------------------------------
// Raw HTTP/1.1, for bodies reqwest would frame itself.

/// How a body goes on the wire.
enum Framing {
    /// `Content-Length: <declared>`, then these bytes.
    Length { declared: usize },
    /// `Transfer-Encoding: chunked` in 64 KiB chunks, terminated or not.
    Chunked { terminate: bool },
}

/// Sends a request with `body` framed as told, without waiting for the
/// server to read it, and returns its answer. The answer may come before the
/// body is sent (a refusal by the header, or a cut-off); after the last byte
/// is written it must come within [`FRAME_TIMEOUT`].
async fn send_raw(
    gateway: &Gateway,
    path: &str,
    auth: &str,
    body: Vec<u8>,
    framing: Framing,
) -> Reply {
    let addr = gateway.base_url().trim_start_matches("http://").to_owned();
    let stream = TcpStream::connect(&addr).await.expect("connect");
    let (mut rd, mut wr) = stream.into_split();
    let mut head = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {auth}\r\n\
         Content-Type: application/json\r\nConnection: close\r\n"
    );
    let mut wire = Vec::with_capacity(body.len() + body.len() / 1000 + 64);
    match framing {
        Framing::Length { declared } => {
            head.push_str(&format!("Content-Length: {declared}\r\n\r\n"));
            wire.extend_from_slice(&body);
        }
        Framing::Chunked { terminate } => {
            head.push_str("Transfer-Encoding: chunked\r\n\r\n");
            for chunk in body.chunks(64 * 1024) {
                wire.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
                wire.extend_from_slice(chunk);
                wire.extend_from_slice(b"\r\n");
            }
            if terminate {
                wire.extend_from_slice(b"0\r\n\r\n");
            }
        }
    }
    let (written_tx, written_rx) = oneshot::channel::<()>();
    let (release_tx, release_rx) = oneshot::channel::<()>();
    let writer = tokio::spawn(async move {
        // The server may refuse and stop reading; a failed write is expected then.
        if wr.write_all(head.as_bytes()).await.is_ok() {
            let _ = wr.write_all(&wire).await;
        }
        let _ = written_tx.send(());
        // Keep the connection half-open (an unfinished body stays unfinished).
        let _ = release_rx.await;
        drop(wr);
    });
    let read = read_answer(&mut rd);
    tokio::pin!(read);
    let reply = tokio::select! {
        reply = &mut read => reply,
        _ = written_rx => tokio::time::timeout(FRAME_TIMEOUT, &mut read)
            .await
            .unwrap_or_else(|_| panic!("{path}: no answer within {FRAME_TIMEOUT:?} of the last byte")),
    };
    let _ = release_tx.send(());
    let _ = writer.await;
    reply
}

/// One HTTP/1.1 answer (`Content-Length` or chunked body).
async fn read_answer(rd: &mut OwnedReadHalf) -> Reply {
    let mut buf = Vec::new();
    let mut scratch = [0_u8; 16 * 1024];
    let header_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = rd.read(&mut scratch).await.expect("read the answer");
        assert!(n > 0, "connection closed before an answer: {buf:?}");
        buf.extend_from_slice(&scratch[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..header_end]).into_owned();
    let mut lines = head.split("\r\n");
    let status: u16 = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line: {head}"));
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let header = |name: &str| {
        headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
    };
    let mut body = buf[header_end..].to_vec();
    if let Some(len) = header("content-length").and_then(|v| v.parse::<usize>().ok()) {
        while body.len() < len {
            let n = rd.read(&mut scratch).await.expect("read the body");
            assert!(n > 0, "body cut short");
            body.extend_from_slice(&scratch[..n]);
        }
        body.truncate(len);
    } else if header("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        while !body.windows(5).any(|w| w == b"0\r\n\r\n") {
            let n = rd.read(&mut scratch).await.expect("read the body");
            assert!(n > 0, "chunked body cut short");
            body.extend_from_slice(&scratch[..n]);
        }
        body = dechunk(&body);
    }
    let text = String::from_utf8_lossy(&body).into_owned();
    let json = serde_json::from_str(&text).unwrap_or(Value::Null);
    Reply {
        status,
        headers,
        text,
        json,
    }
}

fn dechunk(mut wire: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(i) = wire.windows(2).position(|w| w == b"\r\n") {
        let size = usize::from_str_radix(String::from_utf8_lossy(&wire[..i]).trim(), 16)
            .unwrap_or_else(|e| panic!("bad chunk size: {e}"));
        if size == 0 {
            break;
        }
        out.extend_from_slice(&wire[i + 2..i + 2 + size]);
        wire = &wire[i + 2 + size + 2..];
    }
    out
}

// ---------------------------------------------------------------------------
// Bodies

#[tokio::test]
async fn a_declared_length_of_1_mib_is_read_and_one_byte_more_is_refused_by_the_header() {
    let gateway = Gateway::shared();
    let api = gateway.api();
    let job = new_job(&api).await;
    let events = format!("/api/jobs/{}/events", job.id);

    // Exactly 1 MiB (reqwest sends Content-Length): accepted by size.
    let exact = padded(&progress(1, 10), LIMIT);
    let auth = format!("Bearer {}", api.secret());
    let ok = api
        .raw("POST", &events, &[("authorization", &auth)], Some(exact))
        .await;
    assert_eq!(ok.status, 202, "{}", ok.text);
    assert_eq!(seq(&api, &job.id).await, 1);

    // One byte more, declared: 413 from the header (its message quotes the
    // declared length; a body read and cut off has no length to quote).
    // Local `wrangler dev` hands a request with a Content-Length to the
    // Worker only once the whole body has arrived, so "before reading" cannot
    // be observed here: the body is sent in full.
    let over = api
        .raw(
            "POST",
            &events,
            &[("authorization", &auth)],
            Some(padded(&progress(2, 10), LIMIT + 1)),
        )
        .await;
    assert_eq!(over.assert_error(413), "payload_too_large");
    let message = over.json["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("body of 1048577 bytes is over the 1 MiB (1048576-byte) limit"),
        "{message}"
    );

    // Job creation: the same limit, declared.
    let create = json!({"pipeline": "csv_import"});
    let ok = api
        .raw(
            "POST",
            "/api/jobs",
            &[("authorization", &auth)],
            Some(padded(&create, LIMIT)),
        )
        .await;
    assert_eq!(ok.status, 202, "{}", ok.text);
    let over = send_raw(
        gateway,
        "/api/jobs",
        api.secret(),
        padded(&create, LIMIT + 1).into_bytes(),
        Framing::Length {
            declared: LIMIT + 1,
        },
    )
    .await;
    assert_eq!(over.assert_error(413), "payload_too_large");
    assert!(
        over.text
            .contains("body of 1048577 bytes is over the 1 MiB (1048576-byte)"),
        "{}",
        over.text
    );

    assert_eq!(
        seq(&api, &job.id).await,
        1,
        "refused bodies changed nothing"
    );
}

#[tokio::test]
async fn a_chunked_body_of_1_mib_is_read_and_one_byte_more_is_refused() {
    let gateway = Gateway::shared();
    let api = gateway.api();
    let job = new_job(&api).await;
    let events = format!("/api/jobs/{}/events", job.id);

    let exact = padded(&progress(1, 10), LIMIT).into_bytes();
    let ok = send_raw(
        gateway,
        &events,
        api.secret(),
        exact,
        Framing::Chunked { terminate: true },
    )
    .await;
    assert_eq!(ok.status, 202, "{}", ok.text);
    assert_eq!(ok.json["seq"], 1, "{}", ok.text);

    let over = padded(&progress(2, 10), LIMIT + 1).into_bytes();
    let refused = send_raw(
        gateway,
        &events,
        api.secret(),
        over,
        Framing::Chunked { terminate: true },
    )
    .await;
    assert_eq!(refused.assert_error(413), "payload_too_large");
    // Cut off by the reader (no length to quote), not by the parser.
    assert!(
        refused
            .text
            .contains("body is over the 1 MiB (1048576-byte) limit"),
        "{}",
        refused.text
    );

    // Job creation reads the same way.
    let create = padded(&json!({"pipeline": "csv_import"}), LIMIT).into_bytes();
    let ok = send_raw(
        gateway,
        "/api/jobs",
        api.secret(),
        create,
        Framing::Chunked { terminate: true },
    )
    .await;
    assert_eq!(ok.status, 202, "{}", ok.text);
    let create = padded(&json!({"pipeline": "csv_import"}), LIMIT + 1).into_bytes();
    let refused = send_raw(
        gateway,
        "/api/jobs",
        api.secret(),
        create,
        Framing::Chunked { terminate: true },
    )
    .await;
    assert_eq!(refused.assert_error(413), "payload_too_large");
    // Cut off by the reader (no length to quote), not by the parser.
    assert!(
        refused
            .text
            .contains("body is over the 1 MiB (1048576-byte) limit"),
        "{}",
        refused.text
    );

    assert_eq!(
        seq(&api, &job.id).await,
        1,
        "refused bodies changed nothing"
    );
}

#[tokio::test]
async fn a_chunked_body_is_cut_off_past_1_mib_without_waiting_for_its_end() {
    let gateway = Gateway::shared();
    let api = gateway.api();
    let job = new_job(&api).await;
    // 1 MiB + 64 KiB of an endless body: the gateway must answer without
    // the rest (the connection stays open and the body never ends).
    let endless = vec![b' '; LIMIT + 64 * 1024];
    let refused = send_raw(
        gateway,
        &format!("/api/jobs/{}/events", job.id),
        api.secret(),
        endless,
        Framing::Chunked { terminate: false },
    )
    .await;
    assert_eq!(refused.assert_error(413), "payload_too_large");
    assert!(
        refused.text.contains("body is over the 1 MiB"),
        "{}",
        refused.text
    );
    assert_eq!(seq(&api, &job.id).await, 0, "nothing applied");
}

// ---------------------------------------------------------------------------
// Origins

/// A WebSocket upgrade with an `Origin` header (none: a native app).
async fn upgrade_from(api: &Api, query: &str, origin: Option<&str>) -> Result<(), Reply> {
    let mut request = api
        .ws_url(query)
        .into_client_request()
        .unwrap_or_else(|e| panic!("{e}"));
    if let Some(origin) = origin {
        request
            .headers_mut()
            .insert("origin", HeaderValue::from_str(origin).expect("header"));
    }
    let connect = tokio_tungstenite::connect_async(request);
    match tokio::time::timeout(Duration::from_secs(10), connect).await {
        Err(_) => panic!("upgrade did not complete"),
        Ok(Ok((mut ws, _))) => {
            let _ = ws.close(None).await;
            Ok(())
        }
        Ok(Err(tokio_tungstenite::tungstenite::Error::Http(response))) => {
            let text = response
                .body()
                .as_ref()
                .map(|b| String::from_utf8_lossy(b).into_owned())
                .unwrap_or_default();
            Err(Reply {
                status: response.status().as_u16(),
                headers: Vec::new(),
                json: serde_json::from_str(&text).unwrap_or(Value::Null),
                text,
            })
        }
        Ok(Err(e)) => panic!("upgrade failed: {e}"),
    }
}

#[tokio::test]
async fn with_allowed_origins_an_unlisted_browser_origin_is_403_before_the_room() {
    let api = configured().api();
    let job = new_job(&api).await;
    let query = Api::query(&job.id, &job.token, None, None);

    upgrade_from(&api, &query, Some(LISTED))
        .await
        .unwrap_or_else(|r| panic!("listed origin refused: {} {}", r.status, r.text));
    upgrade_from(&api, &query, None)
        .await
        .unwrap_or_else(|r| panic!("no origin (a native app) refused: {} {}", r.status, r.text));
    let refused = upgrade_from(&api, &query, Some(UNLISTED))
        .await
        .expect_err("an unlisted origin was upgraded");
    assert_eq!(refused.status, 403, "{}", refused.text);

    // The refusal's body (read as plain HTTP): JSON, a code, what to do.
    let ws_headers = [
        ("upgrade", "websocket"),
        ("connection", "Upgrade"),
        ("sec-websocket-version", "13"),
        ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="),
        ("origin", UNLISTED),
    ];
    let reply = api
        .raw("GET", &format!("/ws/progress?{query}"), &ws_headers, None)
        .await;
    assert_eq!(reply.assert_error(403), "origin_not_allowed");
    assert!(
        reply.json["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("ALLOWED_ORIGINS")),
        "{}",
        reply.text
    );
    assert_eq!(
        reply.header("access-control-allow-origin"),
        None,
        "a refused origin gets no CORS grant"
    );

    // Every route: a cancel from an unlisted origin changes nothing.
    let auth = format!("Bearer {}", job.token);
    let cancel = api
        .raw(
            "POST",
            &format!("/api/jobs/{}/cancel", job.id),
            &[("authorization", &auth), ("origin", UNLISTED)],
            None,
        )
        .await;
    assert_eq!(cancel.assert_error(403), "origin_not_allowed");
    let state = api
        .raw(
            "GET",
            &format!("/api/job-state/{}", job.id),
            &[("authorization", &auth), ("origin", LISTED)],
            None,
        )
        .await;
    assert_eq!(state.status, 200, "{}", state.text);
    assert_eq!(
        state.json["status"], "pending",
        "not canceled: {}",
        state.text
    );
    assert_eq!(state.header("access-control-allow-origin"), Some(LISTED));
    assert_eq!(state.header("vary"), Some("Origin"));
    // A subscriber-route refusal carries the same CORS grant as a success.
    let no_bearer = api
        .raw(
            "GET",
            &format!("/api/job-state/{}", job.id),
            &[("origin", LISTED)],
            None,
        )
        .await;
    no_bearer.assert_error(401);
    assert_eq!(
        no_bearer.header("access-control-allow-origin"),
        Some(LISTED)
    );
    // ... whether the router refuses (no bearer, above; a bad upgrade) or the
    // room does (a wrong token).
    let wrong = api
        .raw(
            "GET",
            &format!("/api/job-state/{}", job.id),
            &[
                ("authorization", "Bearer not-the-token"),
                ("origin", LISTED),
            ],
            None,
        )
        .await;
    wrong.assert_error(401);
    assert_eq!(wrong.header("access-control-allow-origin"), Some(LISTED));
    let mut bad_upgrade = ws_headers;
    bad_upgrade[4] = ("origin", LISTED);
    for (query, status) in [
        (format!("jobId={}", job.id), 400),
        (format!("jobId={}&token=not-the-token", job.id), 401),
    ] {
        let refused = api
            .raw("GET", &format!("/ws/progress?{query}"), &bad_upgrade, None)
            .await;
        refused.assert_error(status);
        assert_eq!(
            refused.header("access-control-allow-origin"),
            Some(LISTED),
            "{query}"
        );
    }
}

#[tokio::test]
async fn the_default_config_allows_any_origin() {
    // wrangler.toml ships ALLOWED_ORIGINS = "*": any browser may call.
    let api = Gateway::shared().api();
    let job = new_job(&api).await;
    let query = Api::query(&job.id, &job.token, None, None);
    upgrade_from(&api, &query, Some(UNLISTED))
        .await
        .unwrap_or_else(|r| panic!("refused under *: {} {}", r.status, r.text));
    let state = api
        .raw(
            "GET",
            &format!("/api/job-state/{}", job.id),
            &[
                ("authorization", &format!("Bearer {}", job.token)),
                ("origin", UNLISTED),
            ],
            None,
        )
        .await;
    assert_eq!(state.status, 200, "{}", state.text);
    assert_eq!(state.header("access-control-allow-origin"), Some("*"));
}

// ---------------------------------------------------------------------------
// Producer secret rotation

#[tokio::test]
async fn during_a_rotation_both_producer_secrets_are_accepted() {
    let gateway = configured();
    let current = gateway.api();
    let next = Api::new(
        gateway.base_url(),
        gateway.ws_base(),
        NEXT_SECRET.to_owned(),
    );
    let job = new_job(&current).await;
    let by_next = new_job(&next).await;
    assert_eq!(next.post_ok(&job.id, progress(1, 10)).await, 1);
    assert_eq!(current.post_ok(&by_next.id, progress(1, 10)).await, 1);
    for wrong in [
        format!("{NEXT_SECRET}x"),
        NEXT_SECRET[..NEXT_SECRET.len() - 1].to_owned(),
        format!("{}{NEXT_SECRET}", current.secret()),
    ] {
        let api = Api::new(gateway.base_url(), gateway.ws_base(), wrong);
        let refused = api.post_events(&job.id, progress(2, 10)).await;
        assert_eq!(refused.assert_error(401), "unauthorized");
    }
    assert_eq!(
        seq(&current, &job.id).await,
        1,
        "refused calls changed nothing"
    );
    // Without PRODUCER_SECRET_NEXT (the default), that secret is refused.
    let default = Gateway::shared();
    let api = Api::new(
        default.base_url(),
        default.ws_base(),
        NEXT_SECRET.to_owned(),
    );
    api.create_job_raw(json!({"pipeline": "csv_import"}))
        .await
        .assert_error(401);
}

// ---------------------------------------------------------------------------
// Operator input

#[tokio::test]
async fn an_invalid_var_refuses_every_request_with_500_misconfigured() {
    // PING_INTERVAL_MS=0 used to close every socket as idle.
    let gateway = Gateway::start_misconfigured(&[("PING_INTERVAL_MS", "0")]);
    let api = gateway.api();
    let refusals = [
        api.raw("GET", "/healthz", &[], None).await,
        api.create_job_raw(json!({"pipeline": "csv_import"})).await,
        api.refused_upgrade("jobId=j1&token=t1").await,
    ];
    for reply in refusals {
        assert_eq!(reply.assert_error(500), "misconfigured");
        let message = reply.json["error"]["message"].as_str().unwrap_or_default();
        assert!(
            message.contains("PING_INTERVAL_MS") && message.contains("from 1000 to 600000"),
            "{message}"
        );
    }
    // wrangler writes workerd's console output asynchronously.
    let logged = |log: &str| {
        log.lines()
            // An error line is wrapped in terminal colour codes.
            .filter_map(|line| Some(&line[line.find('{')?..=line.rfind('}')?]))
            .filter_map(|json| serde_json::from_str::<Value>(json).ok())
            .filter(|v| v["event"] == "misconfigured")
            .count()
    };
    for _ in 0..50 {
        if logged(&gateway.log()) > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let log = gateway.log();
    assert_eq!(logged(&log), 1, "logged once per isolate:\n{log}");
    assert!(!log.contains(api.secret()), "the secret is never logged");
}

// ---------------------------------------------------------------------------
// Tokens the edge checks (issue 11, part 4)

/// The lines the Durable Object of `job` logged for a request that reached
/// that job's room: `room_request` (one per request but an upgrade or
/// events) and `upgrade_timing` (one per upgrade).
fn room_requests(log: &str, job: &str) -> usize {
    log.lines()
        .filter_map(|line| Some(&line[line.find('{')?..=line.rfind('}')?]))
        .filter_map(|json| serde_json::from_str::<Value>(json).ok())
        .filter(|v| {
            (v["event"] == "room_request" || v["event"] == "upgrade_timing") && v["job_id"] == job
        })
        .count()
}

/// Waits until `job`'s room logged `at_least` requests (wrangler writes
/// workerd's output asynchronously), then a little more so a late extra
/// line would show, and returns the count.
async fn settled_room_requests(gateway: &Gateway, job: &str, at_least: usize) -> usize {
    for _ in 0..50 {
        if room_requests(&gateway.log(), job) >= at_least {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    room_requests(&gateway.log(), job)
}

/// The three subscriber calls with one token: upgrade, job state, cancel.
async fn subscriber_calls(api: &Api, job: &str, token: &str) -> Vec<Reply> {
    vec![
        api.refused_upgrade(&Api::query(job, token, None, None))
            .await,
        api.job_state(job, token).await,
        api.cancel(job, token).await,
    ]
}

#[tokio::test]
async fn forged_tokens_get_one_401_at_the_edge_whether_or_not_the_job_exists() {
    let gateway = Gateway::shared();
    let api = gateway.api();
    let job = new_job(&api).await;
    let other = new_job(&api).await;
    let missing = format!("no-such-job-{}", &job.id[..8]);
    // A well-formed token with a wrong MAC, one in the old UUID format, and
    // one with a later expiry than was signed.
    let real = job.token.clone();
    let mut parts: Vec<String> = real.split('.').map(str::to_owned).collect();
    assert_eq!(parts.len(), 5, "v1 token format: {}", parts.len());
    let mac = parts[4].clone();
    parts[4] = format!(
        "{}{}",
        if mac.starts_with('0') { '1' } else { '0' },
        &mac[1..]
    );
    let bad_mac = parts.join(".");
    parts[4] = mac;
    parts[1] = (parts[1].parse::<u64>().unwrap() + 1).to_string();
    let later = parts.join(".");
    let forged = [
        bad_mac,
        later,
        "6f1c2a3b-4d5e-4f60-8a71-92b3c4d5e6f7".to_owned(),
    ];
    let state_before = seq(&api, &job.id).await;
    let mut answers = Vec::new();
    for token in &forged {
        let existing = subscriber_calls(&api, &job.id, token).await;
        let absent = subscriber_calls(&api, &missing, token).await;
        for (a, b) in existing.iter().zip(&absent) {
            assert_eq!(a.assert_error(401), "unauthorized");
            assert_eq!(
                (a.status, &a.text),
                (b.status, &b.text),
                "a job's existence shows"
            );
            assert!(
                a.text.contains("get a new one from your backend"),
                "{}",
                a.text
            );
        }
        answers.extend(existing);
    }
    // Job A's real token on job B is refused the same way.
    for reply in subscriber_calls(&api, &other.id, &real).await {
        assert_eq!((reply.status, &reply.text), (401, &answers[0].text));
    }
    // Nothing reached either room (only their creation did), nor the
    // missing job's; the job is unchanged.
    assert_eq!(seq(&api, &job.id).await, state_before);
    assert_eq!(
        settled_room_requests(gateway, &job.id, 3).await,
        3,
        "create and the two inspects only"
    );
    assert_eq!(settled_room_requests(gateway, &other.id, 1).await, 1);
    assert_eq!(room_requests(&gateway.log(), &missing), 0);
    // The real token still works, and that call reaches the room.
    let state = api.job_state(&job.id, &real).await;
    assert_eq!(state.status, 200, "{}", state.text);
    let mut sub = api.subscribe(&job.id, &real).await;
    sub.expect_type("snapshot").await;
    assert_eq!(settled_room_requests(gateway, &job.id, 5).await, 5);
    assert!(
        !gateway.raw_log().contains(&real),
        "a token reached the log"
    );
}
