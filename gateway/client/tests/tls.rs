//! TLS end to end: a gateway stand-in on 127.0.0.1 serving `wss://` and
//! `https://` with a certificate made for the test (rcgen), and a client that
//! trusts it through `TlsConfig::with_extra_roots_pem`, as `--ca-cert` does.
//! The default configuration (the Mozilla roots only) must refuse it.

mod common;

use common::within;
use futures_util::{SinkExt, StreamExt};
use gateway_client::gateway_core::client::{FailReason, JobEnd};
use gateway_client::gateway_core::protocol::{
    encode, JobHeader, JobStatus, Pipeline, Seq, ServerMessage, Snapshot,
};
use gateway_client::gateway_core::token::Token;
use gateway_client::gateway_core::Millis;
use gateway_client::rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use gateway_client::rustls::ServerConfig;
use gateway_client::{
    watch, CreateJobRequest, Ending, Producer, ProducerError, TlsConfig, WatchEvent, WatchHandle,
    WatchOptions,
};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message;

const JOB: &str = "job-tls";

#[derive(Default)]
struct Seen {
    /// Request lines of plain HTTPS calls.
    http: Vec<String>,
    /// `Authorization` headers of those calls.
    auth: Vec<String>,
    /// Upgrade query strings.
    upgrades: Vec<String>,
    /// TLS handshakes that failed (the client did not trust the certificate).
    handshake_failures: usize,
}

struct Server {
    base: String,
    /// The certificate in PEM, what a `--ca-cert` file would hold.
    cert_pem: String,
    seen: Arc<Mutex<Seen>>,
}

/// Starts a TLS server on 127.0.0.1 with a fresh self-signed certificate for
/// `127.0.0.1` and `localhost`. `POST /api/jobs` answers 202 with a job;
/// `GET /ws/progress` upgrades and plays snapshot, progress, job_complete, 1000.
async fn serve() -> Server {
    let certified =
        rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
            .unwrap();
    let cert_pem = certified.cert.pem();
    let cert_der: CertificateDer<'static> = certified.cert.der().clone();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(
        certified.signing_key.serialize_der(),
    ));
    let provider = Arc::new(gateway_client::rustls::crypto::ring::default_provider());
    let config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert_der], key)
        .unwrap();
    let acceptor = TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("https://{}", listener.local_addr().unwrap());
    let seen = Arc::new(Mutex::new(Seen::default()));
    let log = Arc::clone(&seen);
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let (acceptor, log) = (acceptor.clone(), Arc::clone(&log));
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    log.lock().unwrap().handshake_failures += 1;
                    return;
                };
                // Peek at the request without consuming it: an upgrade goes to tungstenite whole.
                let mut stream = BufReader::new(tls);
                let Ok(head) = stream.fill_buf().await else {
                    return;
                };
                if head.starts_with(b"GET /ws/progress") {
                    upgrade(stream, log).await;
                } else {
                    answer_http(stream, log).await;
                }
            });
        }
    });
    Server {
        base,
        cert_pem,
        seen,
    }
}

type Tls = BufReader<tokio_rustls::server::TlsStream<tokio::net::TcpStream>>;

async fn answer_http(mut stream: Tls, log: Arc<Mutex<Seen>>) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 1024];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = stream.read(&mut chunk).await.unwrap();
        if n == 0 {
            return;
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    let length: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length: "))
        .map_or(0, |v| v.trim().parse().unwrap());
    while buf.len() < head_end + length {
        let n = stream.read(&mut chunk).await.unwrap();
        buf.extend_from_slice(&chunk[..n]);
    }
    let body: serde_json::Value = serde_json::from_slice(&buf[head_end..]).unwrap_or_default();
    let request_line = head.lines().next().unwrap_or_default().to_owned();
    {
        let mut log = log.lock().unwrap();
        log.auth.push(
            head.lines()
                .find_map(|l| l.strip_prefix("authorization: "))
                .unwrap_or_default()
                .to_owned(),
        );
        log.http.push(request_line.clone());
    }
    let (status, reply) = if request_line.starts_with("POST /api/jobs ") {
        let total = body["totalCount"].as_u64().unwrap_or(0);
        (
            "202 Accepted",
            serde_json::json!({
                "jobId": JOB,
                "token": "tok-tls",
                "expiresAt": 4_102_444_800_000_u64,
                "wsUrl": format!("wss://127.0.0.1/ws/progress?jobId={JOB}&total={total}"),
                "stateUrl": format!("https://127.0.0.1/api/job-state/{JOB}"),
            })
            .to_string(),
        )
    } else {
        (
            "404 Not Found",
            r#"{"error":{"code":"not_found","message":"no route"}}"#.to_owned(),
        )
    };
    let reply = format!(
        "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{reply}",
        reply.len()
    );
    stream.write_all(reply.as_bytes()).await.unwrap();
    stream.shutdown().await.ok();
}

#[allow(clippy::result_large_err)] // the Err type is tungstenite's callback signature
async fn upgrade(stream: Tls, log: Arc<Mutex<Seen>>) {
    let callback =
        |req: &tokio_tungstenite::tungstenite::handshake::server::Request,
         resp: tokio_tungstenite::tungstenite::handshake::server::Response| {
            log.lock()
                .unwrap()
                .upgrades
                .push(req.uri().query().unwrap_or_default().to_owned());
            Ok(resp)
        };
    let Ok(mut ws) = tokio_tungstenite::accept_hdr_async(stream, callback).await else {
        return;
    };
    let job = JobHeader {
        job_id: JOB.into(),
        pipeline: Pipeline::CsvImport,
    };
    let frames = [
        (
            0,
            ServerMessage::Snapshot {
                resumed: false,
                recovered: false,
                state: Snapshot {
                    status: JobStatus::Pending,
                    processed_count: 0,
                    total_count: Some(2),
                },
            },
        ),
        (
            1,
            ServerMessage::JobProgress {
                processed_count: 2,
                total_count: Some(2),
                current_item: None,
                message: None,
            },
        ),
        (
            2,
            ServerMessage::JobComplete {
                summary: r#"{"over":"tls"}"#.into(),
            },
        ),
    ];
    for (seq, msg) in frames {
        let text = encode(&job, Millis(1), Some(Seq(seq)), &msg);
        ws.send(Message::text(text)).await.unwrap();
    }
    let frame = CloseFrame {
        code: CloseCode::from(1000),
        reason: "".into(),
    };
    let _ = ws.close(Some(frame)).await;
    while ws.next().await.is_some() {}
}

fn options(tls: TlsConfig) -> (WatchOptions, WatchHandle) {
    let handle = WatchHandle::new();
    let options = WatchOptions {
        handle: handle.clone(),
        tls,
        backoff_base: Some(Millis(20)),
        backoff_cap: Some(Millis(100)),
        io_timeout: Duration::from_secs(2),
        ..WatchOptions::default()
    };
    (options, handle)
}

#[tokio::test]
async fn https_producer_and_wss_watch_with_a_trusted_self_signed_cert() {
    let server = serve().await;
    let tls = TlsConfig::with_extra_roots_pem(server.cert_pem.as_bytes()).unwrap();

    // One HTTPS producer call.
    let producer = Producer::with_tls(&server.base, "producer-secret", &tls).unwrap();
    let request = CreateJobRequest {
        total_count: Some(2),
        ..CreateJobRequest::new(Pipeline::CsvImport)
    };
    let create = producer.create_job(&request);
    let created = within(5, "the 202 of POST /api/jobs", create)
        .await
        .unwrap();
    assert_eq!(created.job_id, JOB);
    assert_eq!(created.token.expose(), "tok-tls");

    // A full watch over wss://: snapshot, progress, job_complete, close 1000.
    let (options, handle) = options(tls);
    let watched = watch(&server.base, JOB, created.token, options);
    let outcome = within(5, "the watch's end", watched)
        .await
        .expect("watch started");
    assert_eq!(
        outcome.ending,
        Ending::Job(JobEnd::Succeeded {
            summary: Some(r#"{"over":"tls"}"#.into())
        })
    );
    let latest = handle.latest().get().view;
    assert_eq!(latest.status, Some(JobStatus::Completed));
    assert_eq!(latest.processed_count, 2);
    assert_eq!(latest.seq, Some(Seq(2)));

    let seen = server.seen.lock().unwrap();
    assert_eq!(seen.http, vec!["POST /api/jobs HTTP/1.1".to_owned()]);
    assert_eq!(seen.auth, vec!["Bearer producer-secret".to_owned()]);
    assert_eq!(
        seen.upgrades,
        vec![format!("jobId={JOB}&token=tok-tls")],
        "one upgrade, no reconnect after 1000"
    );
    assert_eq!(seen.handshake_failures, 0);
}

#[tokio::test]
async fn default_roots_refuse_a_self_signed_cert() {
    let server = serve().await;

    let producer = Producer::new(&server.base, "producer-secret").unwrap();
    let refused = within(
        5,
        "the refusal of an untrusted certificate",
        producer.create_job(&CreateJobRequest::new(Pipeline::CsvImport)),
    )
    .await;
    assert!(
        matches!(refused, Err(ProducerError::Network(_))),
        "{refused:?}"
    );

    // The upgrade fails the same way; the machine keeps retrying until stopped.
    let (mut options, handle) = options(TlsConfig::default());
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    options.events = Some(tx);
    let base = server.base.clone();
    let task =
        tokio::spawn(
            async move { watch(&base, JOB, Token::from_string("tok".into()), options).await },
        );
    within(5, "two upgrade attempts", async {
        let mut attempts = 0;
        while attempts < 2 {
            match rx.recv().await.expect("the watch task is running") {
                WatchEvent::Connecting { .. } => attempts += 1,
                WatchEvent::Connected => panic!("connected through an untrusted certificate"),
                _ => {}
            }
        }
    })
    .await;
    handle.stop();
    let outcome = within(2, "the end of the watch after stop()", task)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(outcome.ending, Ending::GaveUp(FailReason::Stopped));
    let seen = server.seen.lock().unwrap();
    assert!(seen.http.is_empty() && seen.upgrades.is_empty());
    assert!(seen.handshake_failures >= 2, "{}", seen.handshake_failures);
}

/// `progress-gateway create` over HTTPS: refused with the default roots,
/// accepted with `--ca-cert` naming the certificate's PEM file.
#[cfg(feature = "cli")]
#[tokio::test]
async fn cli_ca_cert_flag() {
    let server = serve().await;
    let dir = std::env::temp_dir().join(format!("gateway-client-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let pem = dir.join("ca.pem");
    std::fs::write(&pem, &server.cert_pem).unwrap();
    let run = |ca: Option<std::path::PathBuf>| {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_progress-gateway"));
        cmd.args(["create", "--url", &server.base, "--pipeline", "csv_import"])
            .env("PRODUCER_SECRET", "producer-secret")
            .env_remove("GATEWAY_CA_CERT");
        if let Some(ca) = ca {
            cmd.arg("--ca-cert").arg(ca);
        }
        // The server runs on this test's runtime: wait for the CLI off it.
        within(20, "the end of `progress-gateway create`", async move {
            tokio::task::spawn_blocking(move || cmd.output().unwrap())
                .await
                .unwrap()
        })
    };
    let without = run(None).await;
    assert_eq!(without.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&without.stderr).contains("no answer from the gateway"));
    let with = run(Some(pem)).await;
    assert!(with.status.success(), "{with:?}");
    let out: serde_json::Value = serde_json::from_slice(&with.stdout).unwrap();
    assert_eq!(out["jobId"], JOB);
    let missing = run(Some(dir.join("missing.pem"))).await;
    assert_eq!(missing.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("--ca-cert"));
    std::fs::remove_dir_all(&dir).ok();
}
