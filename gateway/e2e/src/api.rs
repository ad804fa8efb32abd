//! A producer's and an app's view of the gateway: plain HTTP calls and a
//! WebSocket subscriber, with timeouts so that a silent gateway fails a test
//! instead of hanging it, and a close watcher that times a server-initiated
//! close up to the end of the TCP connection.

use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use gateway_core::api::{CreateJobResponse, ErrorBody, EventsResponse, ProducerEvent};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// How long a test waits for a frame or a close it expects now: a late one
/// fails the test.
pub const FRAME_TIMEOUT: Duration = Duration::from_secs(2);
/// How long an upgrade may take (a cold room reads storage and may have to
/// load the Worker first).
pub const UPGRADE_TIMEOUT: Duration = Duration::from_secs(10);
/// The literal ping that the runtime answers without waking the room.
pub const LITERAL_PING: &str = r#"{"type":"ping"}"#;
/// The runtime's answer to [`LITERAL_PING`].
pub const LITERAL_PONG: &str = r#"{"type":"pong"}"#;

/// One HTTP answer, body parsed as JSON when it is JSON.
#[derive(Debug, Clone)]
pub struct Reply {
    /// Status code.
    pub status: u16,
    /// Response headers (names lower-case).
    pub headers: Vec<(String, String)>,
    /// The body as text.
    pub text: String,
    /// The body as JSON, `Value::Null` when it is not JSON.
    pub json: Value,
}

impl Reply {
    /// The first header of that (lower-case) name.
    #[must_use]
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body as the contract's type `T`, exactly: a field `T` does not
    /// name fails too (readers of the type would ignore it).
    ///
    /// # Errors
    /// Why the body is not exactly a `T`.
    pub fn parse<T: DeserializeOwned + Serialize>(&self) -> Result<T, String> {
        let typed: T = serde_json::from_str(&self.text).map_err(|e| e.to_string())?;
        let back = serde_json::to_value(&typed).map_err(|e| e.to_string())?;
        if back == self.json {
            Ok(typed)
        } else {
            Err(format!("fields beyond the contract's (it names {back})"))
        }
    }

    /// `error.code` of a SPEC error body.
    #[must_use]
    pub fn error_code(&self) -> Option<String> {
        self.parse::<ErrorBody>().ok().map(|b| b.error.code)
    }

    /// Asserts the SPEC error shape: the status, a JSON content type, and
    /// exactly `{"error":{"code":…,"message":…}}` ([`ErrorBody`]) with a
    /// `snake_case` code; returns the code.
    ///
    /// # Panics
    /// When any of that does not hold.
    pub fn assert_error(&self, status: u16) -> &str {
        assert_eq!(self.status, status, "status; body: {}", self.text);
        let content_type = self.header("content-type").unwrap_or_default();
        assert!(
            content_type.starts_with("application/json"),
            "error content type {content_type:?}; body: {}",
            self.text
        );
        if let Err(e) = self.parse::<ErrorBody>() {
            panic!("not the error body ({e}): {}", self.text);
        }
        // The code as a slice of the parsed JSON (the body was just checked).
        let code = self
            .json
            .pointer("/error/code")
            .and_then(Value::as_str)
            .unwrap_or_default();
        assert!(
            !code.is_empty()
                && code
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c == '_' || c.is_ascii_digit()),
            "error.code {code:?} is not snake_case"
        );
        code
    }
}

/// A created job, as the producer's 202 describes it.
#[derive(Debug, Clone)]
pub struct Job {
    /// `jobId`
    pub id: String,
    /// `token`
    pub token: String,
    /// The whole 202 body.
    pub body: Value,
}

/// Producer and subscriber calls against one gateway.
#[derive(Debug, Clone)]
pub struct Api {
    http: reqwest::Client,
    base: String,
    ws_base: String,
    secret: String,
}

impl Api {
    /// A client for the gateway at `base` (`http://…`) and `ws_base` (`ws://…`).
    ///
    /// # Panics
    /// When the HTTP client cannot be built.
    #[must_use]
    pub fn new(base: String, ws_base: String, secret: String) -> Self {
        // Already installed by an earlier Api: fine.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(20))
            .build()
            .unwrap_or_else(|e| panic!("{e}"));
        Self {
            http,
            base,
            ws_base,
            secret,
        }
    }

    /// The producer secret.
    #[must_use]
    pub fn secret(&self) -> &str {
        &self.secret
    }

    /// A subscriber token for `job`, valid for an hour, signed as the
    /// gateway signs them (docs/SECURITY.md) with the key it derives from the
    /// producer secret when no `TOKEN_SECRET` is set (the e2e configuration),
    /// written here independently of the core. It passes the edge; only the
    /// room can refuse it, so it reaches a missing job's `404`.
    #[must_use]
    pub fn mint_token(&self, job: &str) -> String {
        use hmac::{Hmac, Mac};
        let hmac = |key: &[u8], msg: &str| {
            let mut mac = Hmac::<sha2::Sha256>::new_from_slice(key).expect("any key length");
            mac.update(msg.as_bytes());
            mac.finalize().into_bytes()
        };
        let key = hmac(
            self.secret.as_bytes(),
            "progress-gateway token key from producer secret v1",
        );
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("after 1970")
            .as_millis();
        let (expires_at, nonce) = (now + 3_600_000, "0123456789abcdef".repeat(2));
        let mac = hmac(&key, &format!("v1|{job}|{expires_at}|{now}|{nonce}"));
        format!("v1.{expires_at}.{now}.{nonce}.{}", hex::encode(mac))
    }

    /// The gateway's base URL.
    #[must_use]
    pub fn base(&self) -> &str {
        &self.base
    }

    /// Any request: method, path (with query), extra headers, optional body.
    ///
    /// # Panics
    /// When the gateway does not answer.
    pub async fn raw(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<String>,
    ) -> Reply {
        let method =
            reqwest::Method::from_bytes(method.as_bytes()).unwrap_or_else(|e| panic!("{e}"));
        let mut request = self.http.request(method, format!("{}{path}", self.base));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        if let Some(body) = body {
            request = request
                .header("content-type", "application/json")
                .body(body);
        }
        let response = request
            .send()
            .await
            .unwrap_or_else(|e| panic!("{path}: {e}"));
        let status = response.status().as_u16();
        let headers = response
            .headers()
            .iter()
            .map(|(n, v)| {
                (
                    n.as_str().to_owned(),
                    v.to_str().unwrap_or_default().to_owned(),
                )
            })
            .collect();
        let text = response.text().await.unwrap_or_default();
        let json = serde_json::from_str(&text).unwrap_or(Value::Null);
        Reply {
            status,
            headers,
            text,
            json,
        }
    }

    /// Posts events and returns the answer, or `None` when the gateway is not
    /// reachable (it is being stopped).
    pub async fn try_post_events(&self, job: &str, events: &Value) -> Option<Reply> {
        let response = self
            .http
            .post(format!("{}/api/jobs/{job}/events", self.base))
            .header("authorization", format!("Bearer {}", self.secret))
            .header("content-type", "application/json")
            .body(events.to_string())
            .send()
            .await
            .ok()?;
        let status = response.status().as_u16();
        let text = response.text().await.ok()?;
        let json = serde_json::from_str(&text).unwrap_or(Value::Null);
        Some(Reply {
            status,
            headers: Vec::new(),
            text,
            json,
        })
    }

    /// A producer call: `Authorization: Bearer <PRODUCER_SECRET>`.
    pub async fn producer(&self, method: &str, path: &str, body: Option<Value>) -> Reply {
        let auth = format!("Bearer {}", self.secret);
        self.raw(
            method,
            path,
            &[("authorization", &auth)],
            body.map(|b| b.to_string()),
        )
        .await
    }

    /// `POST /api/jobs` with the given body.
    pub async fn create_job_raw(&self, body: Value) -> Reply {
        self.producer("POST", "/api/jobs", Some(body)).await
    }

    /// Creates a job for `pipeline` and asserts the 202.
    ///
    /// # Panics
    /// When the gateway does not answer 202 with the contract's body.
    pub async fn create_job(&self, body: Value) -> Job {
        let reply = self.create_job_raw(body).await;
        assert_eq!(reply.status, 202, "create job: {}", reply.text);
        let created: CreateJobResponse = reply
            .parse()
            .unwrap_or_else(|e| panic!("not the 202 body ({e}): {}", reply.text));
        Job {
            id: created.job_id,
            token: created.token,
            body: reply.json,
        }
    }

    /// `POST /api/jobs/{job}/events` with one event or an array.
    pub async fn post_events(&self, job: &str, events: Value) -> Reply {
        self.producer("POST", &format!("/api/jobs/{job}/events"), Some(events))
            .await
    }

    /// Posts events and returns the `seq` of the 202.
    ///
    /// # Panics
    /// When the answer is not `202 {seq}`.
    pub async fn post_ok(&self, job: &str, events: Value) -> u64 {
        let reply = self.post_events(job, events).await;
        assert_eq!(reply.status, 202, "post events: {}", reply.text);
        reply
            .parse::<EventsResponse>()
            .unwrap_or_else(|e| panic!("not the 202 body ({e}): {}", reply.text))
            .seq
    }

    /// `GET /api/jobs/{job}` (producer).
    pub async fn job_state_producer(&self, job: &str) -> Reply {
        self.producer("GET", &format!("/api/jobs/{job}"), None)
            .await
    }

    /// `GET /api/job-state/{job}` with the subscriber's token.
    pub async fn job_state(&self, job: &str, token: &str) -> Reply {
        let auth = format!("Bearer {token}");
        self.raw(
            "GET",
            &format!("/api/job-state/{job}"),
            &[("authorization", &auth)],
            None,
        )
        .await
    }

    /// `POST /api/jobs/{job}/cancel` with the subscriber's token.
    pub async fn cancel(&self, job: &str, token: &str) -> Reply {
        let auth = format!("Bearer {token}");
        self.raw(
            "POST",
            &format!("/api/jobs/{job}/cancel"),
            &[("authorization", &auth)],
            None,
        )
        .await
    }

    /// `POST /api/jobs/{job}/revoke` (producer).
    pub async fn revoke(&self, job: &str) -> Reply {
        self.producer("POST", &format!("/api/jobs/{job}/revoke"), None)
            .await
    }

    /// `POST /api/jobs/{job}/tokens` with the producer secret.
    pub async fn issue_token(&self, job: &str) -> Reply {
        self.producer("POST", &format!("/api/jobs/{job}/tokens"), None)
            .await
    }

    /// The upgrade URL for a query string (without the leading `?`).
    #[must_use]
    pub fn ws_url(&self, query: &str) -> String {
        format!("{}/ws/progress?{query}", self.ws_base)
    }

    /// Opens a subscriber socket with the given query string.
    ///
    /// # Errors
    /// The HTTP refusal (status, headers, body) when the upgrade is refused.
    ///
    /// # Panics
    /// On a transport failure other than an HTTP refusal.
    pub async fn subscribe_query(&self, query: &str) -> Result<Sub, SubscribeError> {
        self.connect_ws(&format!("/ws/progress?{query}")).await
    }

    /// Opens a WebSocket to any path (with query).
    ///
    /// # Errors
    /// The HTTP refusal when the upgrade is refused.
    ///
    /// # Panics
    /// On a transport failure other than an HTTP refusal.
    pub async fn connect_ws(&self, path: &str) -> Result<Sub, SubscribeError> {
        let request = format!("{}{path}", self.ws_base)
            .into_client_request()
            .unwrap_or_else(|e| panic!("{e}"));
        let connect = tokio_tungstenite::connect_async(request);
        match tokio::time::timeout(UPGRADE_TIMEOUT, connect).await {
            Err(_) => panic!("upgrade did not complete within {UPGRADE_TIMEOUT:?}"),
            Ok(Ok((ws, _))) => Ok(Sub { ws, closed: None }),
            Ok(Err(tungstenite::Error::Http(response))) => {
                let status = response.status().as_u16();
                let headers = response
                    .headers()
                    .iter()
                    .map(|(n, v)| {
                        (
                            n.as_str().to_owned(),
                            v.to_str().unwrap_or_default().to_owned(),
                        )
                    })
                    .collect();
                let text = response
                    .body()
                    .as_ref()
                    .map(|b| String::from_utf8_lossy(b).into_owned())
                    .unwrap_or_default();
                let json = serde_json::from_str(&text).unwrap_or(Value::Null);
                Err(SubscribeError(Reply {
                    status,
                    headers,
                    text,
                    json,
                }))
            }
            Ok(Err(e)) => panic!("upgrade failed: {e}"),
        }
    }

    /// An upgrade request (with every WebSocket header) that the test expects
    /// to be refused, sent as plain HTTP so the refusal's body can be read
    /// (WebSocket clients drop it).
    ///
    /// # Panics
    /// When the gateway switches protocols instead.
    pub async fn refused_upgrade(&self, query: &str) -> Reply {
        let headers = [
            ("upgrade", "websocket"),
            ("connection", "Upgrade"),
            ("sec-websocket-version", "13"),
            ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="),
        ];
        let reply = self
            .raw("GET", &format!("/ws/progress?{query}"), &headers, None)
            .await;
        assert_ne!(reply.status, 101, "upgrade with {query:?} was accepted");
        reply
    }

    /// The query string of an upgrade.
    #[must_use]
    pub fn query(job: &str, token: &str, client_id: Option<&str>, last_seq: Option<u64>) -> String {
        let mut query = format!("jobId={job}&token={token}");
        if let Some(client) = client_id {
            query.push_str(&format!("&clientId={client}"));
        }
        if let Some(seq) = last_seq {
            query.push_str(&format!("&lastSeq={seq}"));
        }
        query
    }

    /// Subscribes with `jobId` and `token`, plus optional `clientId` and `lastSeq`.
    ///
    /// # Errors
    /// The HTTP refusal when the upgrade is refused.
    pub async fn try_subscribe(
        &self,
        job: &str,
        token: &str,
        client_id: Option<&str>,
        last_seq: Option<u64>,
    ) -> Result<Sub, SubscribeError> {
        self.subscribe_query(&Self::query(job, token, client_id, last_seq))
            .await
    }

    /// Subscribes and asserts that the upgrade succeeds.
    ///
    /// # Panics
    /// When the upgrade is refused.
    pub async fn subscribe(&self, job: &str, token: &str) -> Sub {
        self.try_subscribe(job, token, None, None)
            .await
            .unwrap_or_else(|e| panic!("upgrade refused: {} {}", e.0.status, e.0.text))
    }
}

/// An upgrade refused with plain HTTP.
#[derive(Debug)]
pub struct SubscribeError(pub Reply);

/// What a subscriber saw next.
#[derive(Debug, Clone, PartialEq)]
pub enum WsEvent {
    /// A text frame (raw).
    Text(String),
    /// A binary frame.
    Binary(Vec<u8>),
    /// The server's close frame: code and reason.
    Close(u16, String),
    /// The connection ended without a close frame.
    Dropped,
    /// Nothing arrived within the timeout.
    Timeout,
}

/// What [`Sub::watch_close`] saw: the text frames before the close, the close
/// frame and when it arrived, and when the TCP connection ended.
#[derive(Debug, Clone, Default)]
pub struct CloseWatch {
    /// Text frames received before the close frame.
    pub frames: Vec<String>,
    /// The close frame: code, reason, arrival.
    pub close: Option<(u16, String, Instant)>,
    /// When the stream ended (EOF, or an error).
    pub end: Option<Instant>,
    /// Whether a raw read on the socket confirmed EOF at `end`.
    pub eof: bool,
    /// The error that ended the stream, if it did not end cleanly.
    pub error: Option<String>,
}

impl CloseWatch {
    /// Time from `trigger` to the close frame (zero if it came first).
    #[must_use]
    pub fn close_after(&self, trigger: Instant) -> Option<Duration> {
        self.close
            .as_ref()
            .map(|(_, _, at)| at.saturating_duration_since(trigger))
    }

    /// Time from `trigger` to the end of the connection (zero if it came first).
    #[must_use]
    pub fn end_after(&self, trigger: Instant) -> Option<Duration> {
        self.end.map(|at| at.saturating_duration_since(trigger))
    }

    /// The close code, if a close frame arrived.
    #[must_use]
    pub fn code(&self) -> Option<u16> {
        self.close.as_ref().map(|(code, _, _)| *code)
    }
}

/// A connected subscriber socket.
#[derive(Debug)]
pub struct Sub {
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    closed: Option<(u16, String)>,
}

impl Sub {
    /// The next event other than the runtime's literal pong within `within`
    /// ([`WsEvent::Timeout`] if none), sending the literal ping every
    /// `interval` meanwhile, as a client does.
    pub async fn next_event_pinging(&mut self, within: Duration, interval: Duration) -> WsEvent {
        let deadline = Instant::now() + within;
        let mut next_ping = Instant::now() + interval;
        loop {
            let now = Instant::now();
            if now >= deadline {
                return WsEvent::Timeout;
            }
            match self.next_event(deadline.min(next_ping) - now).await {
                WsEvent::Timeout => {
                    if Instant::now() >= next_ping {
                        self.send_text(LITERAL_PING).await;
                        next_ping += interval;
                    }
                }
                WsEvent::Text(text) if text == LITERAL_PONG => {}
                other => return other,
            }
        }
    }

    /// The next frame (pings and pongs of the WebSocket layer are skipped).
    pub async fn next_event(&mut self, timeout: Duration) -> WsEvent {
        if let Some((code, reason)) = &self.closed {
            return WsEvent::Close(*code, reason.clone());
        }
        loop {
            let Ok(next) = tokio::time::timeout(timeout, self.ws.next()).await else {
                return WsEvent::Timeout;
            };
            return match next {
                None | Some(Err(_)) => WsEvent::Dropped,
                Some(Ok(Message::Text(text))) => WsEvent::Text(text.as_str().to_owned()),
                Some(Ok(Message::Binary(bytes))) => WsEvent::Binary(bytes.to_vec()),
                Some(Ok(Message::Close(frame))) => {
                    let (code, reason) = frame.map_or((1005, String::new()), |f| {
                        (u16::from(f.code), f.reason.as_str().to_owned())
                    });
                    self.closed = Some((code, reason.clone()));
                    WsEvent::Close(code, reason)
                }
                Some(Ok(_)) => continue,
            };
        }
    }

    /// The next frame, which must be a JSON text frame.
    ///
    /// # Panics
    /// On anything else within [`FRAME_TIMEOUT`].
    pub async fn next_json(&mut self) -> Value {
        match self.next_event(FRAME_TIMEOUT).await {
            WsEvent::Text(text) => serde_json::from_str(&text)
                .unwrap_or_else(|e| panic!("frame is not JSON ({e}): {text}")),
            other => panic!("expected a JSON frame, got {other:?}"),
        }
    }

    /// The next frame, which must be a JSON envelope of `type`.
    ///
    /// # Panics
    /// On anything else.
    pub async fn expect_type(&mut self, kind: &str) -> Value {
        let frame = self.next_json().await;
        assert_eq!(frame["type"], kind, "frame: {frame}");
        frame
    }

    /// The next frame, which must be the server's close; returns its code.
    ///
    /// # Panics
    /// On anything else within [`FRAME_TIMEOUT`].
    pub async fn expect_close(&mut self) -> (u16, String) {
        match self.next_event(FRAME_TIMEOUT).await {
            WsEvent::Close(code, reason) => (code, reason),
            other => panic!("expected a close frame, got {other:?}"),
        }
    }

    /// Asserts that nothing arrives within `quiet`.
    ///
    /// # Panics
    /// When a frame or a close arrives.
    pub async fn expect_silence(&mut self, quiet: Duration) {
        let event = self.next_event(quiet).await;
        assert_eq!(event, WsEvent::Timeout, "expected silence");
    }

    /// Sends a text frame.
    ///
    /// # Panics
    /// When the socket is gone.
    pub async fn send_text(&mut self, text: &str) {
        self.ws
            .send(Message::text(text.to_owned()))
            .await
            .unwrap_or_else(|e| panic!("send: {e}"));
    }

    /// Sends the literal ping and asserts the runtime's literal pong within
    /// [`FRAME_TIMEOUT`] (any frame before it fails the test).
    ///
    /// # Panics
    /// When anything else arrives, or nothing.
    pub async fn ping_literal(&mut self) {
        self.send_text(LITERAL_PING).await;
        assert_eq!(
            self.next_event(FRAME_TIMEOUT).await,
            WsEvent::Text(LITERAL_PONG.to_owned()),
            "the literal pong"
        );
    }

    /// Hands the socket to a task that reads it until the TCP connection
    /// ends or `within` has passed, answering the server's close frame as a
    /// client does, and records when the close frame and the end arrived.
    ///
    /// tokio-tungstenite yields the close frame as a message; only when the
    /// stream ends after it (`None`) has the TCP connection reached EOF. The
    /// watcher checks that with a read on the raw socket.
    #[must_use]
    pub fn watch_close(mut self, within: Duration) -> tokio::task::JoinHandle<CloseWatch> {
        tokio::spawn(async move {
            let deadline = tokio::time::Instant::now() + within;
            let mut watch = CloseWatch::default();
            loop {
                match tokio::time::timeout_at(deadline, self.ws.next()).await {
                    Err(_) => break,
                    Ok(Some(Ok(Message::Text(text)))) => {
                        watch.frames.push(text.as_str().to_owned());
                    }
                    Ok(Some(Ok(Message::Close(frame)))) => {
                        let (code, reason) = frame.map_or((1005, String::new()), |f| {
                            (u16::from(f.code), f.reason.as_str().to_owned())
                        });
                        watch.close = Some((code, reason, Instant::now()));
                    }
                    Ok(Some(Ok(_))) => {}
                    Ok(None | Some(Err(tungstenite::Error::ConnectionClosed))) => {
                        watch.end = Some(Instant::now());
                        watch.eof = self.at_eof();
                        break;
                    }
                    Ok(Some(Err(e))) => {
                        watch.end = Some(Instant::now());
                        watch.error = Some(e.to_string());
                        break;
                    }
                }
            }
            watch
        })
    }

    /// Whether a read on the raw TCP socket returns 0 bytes now (EOF).
    fn at_eof(&self) -> bool {
        let MaybeTlsStream::Plain(tcp) = self.ws.get_ref() else {
            return false;
        };
        let mut byte = [0_u8; 1];
        matches!(tcp.try_read(&mut byte), Ok(0))
    }

    /// Sends a binary frame.
    ///
    /// # Panics
    /// When the socket is gone.
    pub async fn send_binary(&mut self, bytes: Vec<u8>) {
        self.ws
            .send(Message::binary(bytes))
            .await
            .unwrap_or_else(|e| panic!("send: {e}"));
    }

    /// Closes from the client side with `code` and waits briefly for the echo.
    pub async fn close(mut self, code: u16) {
        let frame = CloseFrame {
            code: CloseCode::from(code),
            reason: "client".into(),
        };
        let _ = self.ws.send(Message::Close(Some(frame))).await;
        let _ = tokio::time::timeout(Duration::from_secs(2), async {
            while let Some(Ok(_)) = self.ws.next().await {}
        })
        .await;
    }

    /// Drops the TCP connection without a close frame (a lost network).
    pub fn drop_connection(self) {
        drop(self);
    }
}

/// A progress event body.
#[must_use]
pub fn progress(processed: u64, total: u64) -> Value {
    let event = ProducerEvent::Progress {
        event_id: None,
        processed_count: processed,
        total_count: Some(total),
        current_item: None,
        message: None,
    };
    // Numbers and no strings: encoding cannot fail.
    serde_json::to_value(event).unwrap_or_default()
}
