//! The `progress-gateway` binary against a gateway stand-in on 127.0.0.1:
//! credentials given as arguments draw a warning that never echoes them,
//! producer text reaches the terminal without control characters, and plain
//! `http://` leaves this machine only with `--allow-plaintext`.
#![cfg(feature = "cli")]

mod common;

use common::within;
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use std::process::Output;
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::process::Command;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message;

const SECRET: &str = "producer-secret-4f1d9a";
const TOKEN: &str = "subscriber-token-8c2e7b";

/// A job that fails with a hostile error; its progress names a hostile item.
const FAILING: &str = "job-fails";
/// A job that completes with a hostile summary.
const COMPLETING: &str = "job-completes";

/// Control sequences a producer could try to drive a terminal with.
const HOSTILE: &str = "\u{1b}[2J\u{1b}]0;pwned\u{07}\r\u{9b}31m\u{07}\u{202e}";

/// Request lines the stand-in received.
type Seen = Arc<Mutex<Vec<String>>>;

/// `POST /api/jobs` answers 202; an upgrade for `FAILING` or `COMPLETING`
/// plays snapshot, hostile progress, then the hostile end.
async fn serve() -> (u16, Seen) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = Seen::default();
    let log = Arc::clone(&seen);
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let mut head = [0u8; 64];
            let n = tcp.peek(&mut head).await.unwrap_or(0);
            let line = String::from_utf8_lossy(&head[..n]).to_string();
            log.lock()
                .unwrap()
                .push(line.lines().next().unwrap_or_default().to_owned());
            if line.starts_with("GET /ws/progress") {
                tokio::spawn(play(tcp));
            } else {
                tokio::spawn(answer_create(tcp));
            }
        }
    });
    (port, seen)
}

async fn answer_create(mut tcp: TcpStream) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 1024];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        match tcp.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    let body = json!({
        "jobId": FAILING,
        "token": TOKEN,
        "expiresAt": 4_102_444_800_000_u64,
        "wsUrl": format!("ws://127.0.0.1/ws/progress?jobId={FAILING}"),
        "stateUrl": format!("http://127.0.0.1/api/job-state/{FAILING}"),
    })
    .to_string();
    let reply = format!(
        "HTTP/1.1 202 Accepted\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    tcp.write_all(reply.as_bytes()).await.ok();
}

fn frame(job: &str, ty: &str, seq: u64, payload: &Value) -> Message {
    let frame = json!({
        "type": ty, "jobId": job, "pipeline": "csv_import", "timestamp": 1,
        "version": "1.0.0", "seq": seq, "payload": payload,
    });
    Message::text(frame.to_string())
}

#[allow(clippy::result_large_err)] // the Err type is tungstenite's callback signature
async fn play(tcp: TcpStream) {
    let job = Arc::new(Mutex::new(String::new()));
    let callback = {
        let job = Arc::clone(&job);
        move |req: &tokio_tungstenite::tungstenite::handshake::server::Request,
              resp: tokio_tungstenite::tungstenite::handshake::server::Response| {
            let query = req.uri().query().unwrap_or_default();
            *job.lock().unwrap() = if query.contains(COMPLETING) {
                COMPLETING
            } else {
                FAILING
            }
            .to_owned();
            Ok(resp)
        }
    };
    let Ok(mut ws) = tokio_tungstenite::accept_hdr_async(tcp, callback).await else {
        return;
    };
    let job = job.lock().unwrap().clone();
    let snapshot = json!({
        "status": "processing", "processedCount": 0, "totalCount": 2, "progress": 0,
        "currentProgress": 0, "recovered": false,
    });
    let progress = json!({
        "processedCount": 1, "totalCount": 2, "progress": 0.5,
        "currentItem": format!("row{HOSTILE}1"), "message": format!("m{HOSTILE}"),
    });
    let (end, code) = if job == COMPLETING {
        let summary = json!({ "note": format!("ok{HOSTILE}") });
        (
            frame(&job, "job_complete", 2, &json!({ "summary": summary })),
            1000,
        )
    } else {
        let error = json!({
            "code": format!("disk{HOSTILE}_full"), "message": format!("no{HOSTILE} space"),
            "retryable": false,
        });
        (frame(&job, "error", 2, &error), 4001)
    };
    for m in [
        frame(&job, "snapshot", 0, &snapshot),
        frame(&job, "job_progress", 1, &progress),
        end,
    ] {
        if ws.send(m).await.is_err() {
            return;
        }
    }
    let close = CloseFrame {
        code: CloseCode::from(code),
        reason: "".into(),
    };
    let _ = ws.close(Some(close)).await;
    while ws.next().await.is_some() {}
}

/// Runs the binary with these arguments and environment (nothing else of the
/// test's environment that the CLI reads); killed if it runs over 10 s, so
/// that a watch that never ends fails the test within the campaign's timeout.
async fn run(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_progress-gateway"));
    cmd.args(args).kill_on_drop(true);
    for var in [
        "GATEWAY_URL",
        "GATEWAY_TOKEN",
        "PRODUCER_SECRET",
        "GATEWAY_CA_CERT",
    ] {
        cmd.env_remove(var);
    }
    cmd.envs(env.iter().copied());
    within(10, "the end of `progress-gateway`", cmd.output())
        .await
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[tokio::test]
async fn a_secret_argument_draws_one_warning_without_its_value() {
    let (port, _) = serve().await;
    let url = format!("http://127.0.0.1:{port}");
    let base = ["create", "--url", &url, "--pipeline", "csv_import"];

    let argued = run(&[&base[..], &["--secret", SECRET]].concat(), &[]).await;
    assert!(argued.status.success(), "{argued:?}");
    let stderr = text(&argued.stderr);
    assert_eq!(stderr.matches("warning").count(), 1, "{stderr}");
    assert!(stderr.contains("--secret on the command line"), "{stderr}");
    assert!(
        stderr.contains("set PRODUCER_SECRET in the environment"),
        "{stderr}"
    );
    assert!(!stderr.contains(SECRET) && !text(&argued.stdout).contains(SECRET));

    // `--secret=value` is the command line too.
    let joined = format!("--secret={SECRET}");
    let argued = run(&[&base[..], &[&joined]].concat(), &[]).await;
    assert!(argued.status.success(), "{argued:?}");
    assert!(text(&argued.stderr).contains("warning"));
    assert!(!text(&argued.stderr).contains(SECRET));

    let from_env = run(&base, &[("PRODUCER_SECRET", SECRET)]).await;
    assert!(from_env.status.success(), "{from_env:?}");
    assert_eq!(text(&from_env.stderr), "");
}

#[tokio::test]
async fn a_token_argument_draws_one_warning_without_its_value() {
    let (port, _) = serve().await;
    let url = format!("http://127.0.0.1:{port}");
    let base = ["watch", "--url", &url, "--job", FAILING];

    let argued = run(&[&base[..], &["--token", TOKEN]].concat(), &[]).await;
    assert_eq!(argued.status.code(), Some(3), "{argued:?}");
    let stderr = text(&argued.stderr);
    assert_eq!(stderr.matches("warning").count(), 1, "{stderr}");
    assert!(stderr.contains("--token on the command line"), "{stderr}");
    assert!(
        stderr.contains("set GATEWAY_TOKEN in the environment"),
        "{stderr}"
    );
    assert!(!stderr.contains(TOKEN) && !text(&argued.stdout).contains(TOKEN));

    let from_env = run(&base, &[("GATEWAY_TOKEN", TOKEN)]).await;
    assert_eq!(from_env.status.code(), Some(3), "{from_env:?}");
    assert!(!text(&from_env.stderr).contains("warning"));
}

/// What a terminal would act on: ESC, BEL, CR, C1 and the bidi override.
fn assert_inert(out: &str) {
    for c in ['\u{1b}', '\u{07}', '\r', '\u{9b}', '\u{202e}'] {
        assert!(!out.contains(c), "{c:?} in {out:?}");
    }
}

#[tokio::test]
async fn producer_text_reaches_the_terminal_without_controls() {
    let (port, _) = serve().await;
    let url = format!("http://127.0.0.1:{port}");
    let env = [("GATEWAY_TOKEN", TOKEN)];

    let failed = run(&["watch", "--url", &url, "--job", FAILING], &env).await;
    assert_eq!(failed.status.code(), Some(3), "{failed:?}");
    let out = text(&failed.stdout);
    assert_inert(&out);
    assert_inert(&text(&failed.stderr));
    assert!(
        out.contains("job failed (1/2 items): disk _full: no  space"),
        "{out:?}"
    );

    let completed = run(&["watch", "--url", &url, "--job", COMPLETING], &env).await;
    assert!(completed.status.success(), "{completed:?}");
    let out = text(&completed.stdout);
    assert_inert(&out);
    assert!(
        out.contains("job completed (1/2 items, last seq 2)"),
        "{out:?}"
    );
    // JSON escapes C0 in strings (harmless text); the raw C1 CSI with its
    // parameters and the bidi override are gone.
    assert!(
        out.contains(r#"summary: {"note":"ok\u001b[2J\u001b]0;pwned\u0007\r\u0007"}"#),
        "{out:?}"
    );
}

#[tokio::test]
async fn plaintext_to_another_host_needs_the_flag() {
    let (_, seen) = serve().await;
    for (args, credential) in [
        (
            vec!["watch", "--url", "ws://gw.example.com", "--job", "j"],
            "the token",
        ),
        (
            vec![
                "create",
                "--url",
                "http://gw.example.com:8787/base",
                "--pipeline",
                "csv_import",
            ],
            "the producer secret",
        ),
    ] {
        let env = [("GATEWAY_TOKEN", TOKEN), ("PRODUCER_SECRET", SECRET)];
        let refused = run(&args, &env).await;
        assert_eq!(refused.status.code(), Some(2), "{refused:?}");
        let stderr = text(&refused.stderr);
        assert!(
            stderr.contains("refusing unencrypted http:// or ws:// to gw.example.com:")
                && stderr.contains(credential)
                && stderr.contains("https://")
                && stderr.contains("--allow-plaintext"),
            "{stderr}"
        );
        assert!(refused.stdout.is_empty());
    }
    assert!(seen.lock().unwrap().is_empty());
}

/// 0.0.0.0 is not loopback (refused without the flag), yet on Linux a
/// connection to it reaches this machine: the flag's effect is observable.
#[cfg(target_os = "linux")]
#[tokio::test]
async fn allow_plaintext_lets_a_non_loopback_host_through() {
    let (port, seen) = serve().await;
    let url = format!("http://0.0.0.0:{port}");
    let args = ["create", "--url", &url, "--pipeline", "csv_import"];
    let env = [("PRODUCER_SECRET", SECRET)];

    let refused = run(&args, &env).await;
    assert_eq!(refused.status.code(), Some(2), "{refused:?}");
    assert!(text(&refused.stderr).contains("--allow-plaintext"));
    assert!(seen.lock().unwrap().is_empty(), "refused before connecting");

    let allowed = run(&[&args[..], &["--allow-plaintext"]].concat(), &env).await;
    assert!(allowed.status.success(), "{allowed:?}");
    let out: Value = serde_json::from_slice(&allowed.stdout).unwrap();
    assert_eq!(out["jobId"], FAILING);
    assert_eq!(seen.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn loopback_needs_no_flag() {
    let (port, seen) = serve().await;
    for host in ["127.0.0.1", "localhost"] {
        let url = format!("http://{host}:{port}");
        let created = run(
            &["create", "--url", &url, "--pipeline", "csv_import"],
            &[("PRODUCER_SECRET", SECRET)],
        )
        .await;
        assert!(created.status.success(), "{host}: {created:?}");
        assert_eq!(text(&created.stderr), "", "{host}");
    }
    assert_eq!(seen.lock().unwrap().len(), 2);
}
