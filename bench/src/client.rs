//! The benchmark's producer (one keep-alive HTTP/1.1 connection) and
//! subscribers (real WebSockets), the same calls against every target. Bodies
//! and answers go through the contract's types (`gateway_core::api`), as the
//! client crate does; the JavaScript baselines answer the same shapes. Of a
//! frame the benchmark reads only its `type` and `seq` (the baselines put the
//! producer's event in a `job_progress` payload, which the client's strict
//! decoder would ignore as not the contract's).

use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use gateway_core::api::{CreateJobRequest, CreateJobResponse, EventsResponse, ProducerEvent};
use gateway_core::protocol::Pipeline;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use serde::de::DeserializeOwned;
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// Longest wait for one answer or frame; a silent target fails the run.
pub const TIMEOUT: Duration = Duration::from_secs(10);

/// A WebSocket to a target.
pub type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// A job as the 202 of `POST /api/jobs` names it.
#[derive(Debug, Clone)]
pub struct Job {
    /// `jobId`
    pub id: String,
    /// `token`
    pub token: String,
}

/// A producer: one persistent HTTP/1.1 connection.
pub struct Producer {
    addr: String,
    secret: String,
    send: SendRequest<Full<Bytes>>,
}

impl Producer {
    /// Connects to `addr` (`127.0.0.1:PORT`).
    ///
    /// # Errors
    /// When the connection or the handshake fails.
    pub async fn connect(addr: &str, secret: &str) -> Result<Self, String> {
        Ok(Self {
            addr: addr.to_owned(),
            secret: secret.to_owned(),
            send: Self::handshake(addr).await?,
        })
    }

    async fn handshake(addr: &str) -> Result<SendRequest<Full<Bytes>>, String> {
        let stream = TcpStream::connect(addr)
            .await
            .map_err(|e| format!("connect {addr}: {e}"))?;
        stream.set_nodelay(true).map_err(|e| e.to_string())?;
        let io = hyper_util::rt::TokioIo::new(stream);
        let (send, conn) = hyper::client::conn::http1::handshake(io)
            .await
            .map_err(|e| format!("http handshake: {e}"))?;
        tokio::spawn(conn);
        Ok(send)
    }

    /// `POST path` with a JSON body: the status and the body.
    ///
    /// # Errors
    /// On a transport error or a timeout.
    pub async fn post(&mut self, path: &str, body: String) -> Result<(u16, Bytes), String> {
        let request = hyper::Request::post(path)
            .header("host", &self.addr)
            .header("content-type", "application/json")
            .header("authorization", format!("Bearer {}", self.secret))
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| e.to_string())?;
        // wrangler's proxy closes a keep-alive connection idle for 5 s.
        if self.send.is_closed() || self.send.ready().await.is_err() {
            self.send = Self::handshake(&self.addr).await?;
        }
        let call = async {
            self.send.ready().await.map_err(|e| e.to_string())?;
            let response = self
                .send
                .send_request(request)
                .await
                .map_err(|e| e.to_string())?;
            let status = response.status().as_u16();
            let bytes = response
                .into_body()
                .collect()
                .await
                .map_err(|e| e.to_string())?
                .to_bytes();
            Ok::<_, String>((status, bytes))
        };
        tokio::time::timeout(TIMEOUT, call)
            .await
            .map_err(|_| format!("POST {path}: no answer in {TIMEOUT:?}"))?
    }

    /// Creates a job.
    ///
    /// # Errors
    /// When the target does not answer 202 with a [`CreateJobResponse`].
    pub async fn create_job(&mut self) -> Result<Job, String> {
        let request = CreateJobRequest {
            total_count: Some(1_000_000),
            ..CreateJobRequest::new(Pipeline::CsvImport)
        };
        let body = serde_json::to_string(&request).map_err(|e| e.to_string())?;
        let (status, bytes) = self.post("/api/jobs", body).await?;
        let created: CreateJobResponse = accepted("create job", status, &bytes)?;
        Ok(Job {
            id: created.job_id,
            token: created.token,
        })
    }

    /// Sends one progress event (`processedCount` = `count`), with the
    /// `eventId` [`event_id`]`(id)` if asked; returns the `seq` of the 202.
    ///
    /// # Errors
    /// When the answer is not 202 with an [`EventsResponse`].
    pub async fn event(
        &mut self,
        job: &Job,
        count: u64,
        event_id: bool,
        id: usize,
    ) -> Result<u64, String> {
        let event = ProducerEvent::Progress {
            event_id: event_id.then(|| self::event_id(id)),
            processed_count: count,
            total_count: None,
            current_item: None,
            message: None,
        };
        let body = serde_json::to_string(&event).map_err(|e| e.to_string())?;
        let (status, bytes) = self
            .post(&format!("/api/jobs/{}/events", job.id), body)
            .await?;
        let answer: EventsResponse = accepted("event", status, &bytes)?;
        Ok(answer.seq)
    }
}

/// A 202 answer read as `T`. A refusal's body is shown; a 202's is not (it
/// may hold a token).
fn accepted<T: DeserializeOwned>(what: &str, status: u16, body: &[u8]) -> Result<T, String> {
    if status != 202 {
        return Err(format!(
            "{what}: {status} {}",
            String::from_utf8_lossy(body)
        ));
    }
    serde_json::from_slice(body)
        .map_err(|e| format!("{what}: a 202 whose body is not the contract's answer ({e})"))
}

/// Opens a subscriber socket: the socket and the time to the 101 (`open`).
///
/// # Errors
/// On a refused upgrade or a timeout.
pub async fn open(addr: &str, job: &Job) -> Result<(Socket, Duration), String> {
    let url = format!(
        "ws://{addr}/ws/progress?jobId={}&token={}",
        job.id, job.token
    );
    let started = Instant::now();
    let (ws, _) = tokio::time::timeout(
        TIMEOUT,
        tokio_tungstenite::connect_async_with_config(url, None, true),
    )
    .await
    .map_err(|_| "upgrade: no answer".to_owned())?
    .map_err(|e| format!("upgrade: {e}"))?;
    Ok((ws, started.elapsed()))
}

/// The next text frame.
///
/// # Errors
/// On a close, an error or a timeout.
pub async fn next_text(ws: &mut Socket) -> Result<String, String> {
    loop {
        let msg = tokio::time::timeout(TIMEOUT, ws.next())
            .await
            .map_err(|_| "no frame in time".to_owned())?;
        match msg {
            Some(Ok(Message::Text(text))) => return Ok(text.as_str().to_owned()),
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
            Some(Ok(other)) => return Err(format!("unexpected frame {other:?}")),
            Some(Err(e)) => return Err(e.to_string()),
            None => return Err("socket ended".to_owned()),
        }
    }
}

/// Closes our side and waits (at most 2 s) for the target to end the socket,
/// so the room has seen the close before the next upgrade.
pub async fn close(mut ws: Socket) {
    let _ = ws.close(None).await;
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        while let Some(Ok(_)) = ws.next().await {}
    })
    .await;
}

/// Sends text on a socket.
///
/// # Errors
/// When the socket is gone.
pub async fn send(ws: &mut Socket, text: &str) -> Result<(), String> {
    ws.send(Message::text(text))
        .await
        .map_err(|e| e.to_string())
}

/// What the benchmark reads of a frame: which it is and its `seq`.
#[derive(serde::Deserialize)]
struct Seen<'a> {
    #[serde(rename = "type", borrow)]
    kind: &'a str,
    #[serde(default)]
    seq: Option<u64>,
}

/// Reads `job_progress` frames, reporting each `seq` with its arrival time,
/// until `stop` fires; then closes the socket.
pub fn watch(
    mut ws: Socket,
    seen: mpsc::UnboundedSender<(u64, Instant)>,
    mut stop: tokio::sync::oneshot::Receiver<()>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            let msg = tokio::select! {
                _ = &mut stop => break,
                msg = ws.next() => msg,
            };
            let Some(Ok(msg)) = msg else { return };
            if let Message::Text(text) = msg {
                let at = Instant::now();
                if let Ok(Seen {
                    kind: "job_progress",
                    seq: Some(seq),
                }) = serde_json::from_str::<Seen<'_>>(text.as_str())
                {
                    let _ = seen.send((seq, at));
                }
            }
        }
        close(ws).await;
    })
}

/// The `eventId` of the benchmark's event number `id`.
#[must_use]
pub fn event_id(id: usize) -> String {
    format!("bench-event-{id:010}")
}
