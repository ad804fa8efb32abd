//! The async driver of the core's subscriber machine
//! ([`gateway_core::client::Client`]): it turns sockets, HTTP answers, timers
//! and handle requests into `Input`s and carries out each `Effect`, in order.
//! Every decision (backoff, close-code policy, resume, token adoption, state
//! sync) is the machine's; this file only translates.

use crate::endpoint::{Endpoint, EndpointError};
use crate::handle::WatchHandle;
use crate::tls::TlsConfig;
use futures_util::{SinkExt, StreamExt};
use gateway_core::client::{
    Client, ClientConfig, ConnectParams, Effect, FailReason, Input, JobEnd, State, View,
};
use gateway_core::protocol::Seq;
use gateway_core::token::Token;
use gateway_core::{CloseCode, Millis};
use std::collections::VecDeque;
use std::future::Future;
use std::hash::{BuildHasher, Hasher};
use std::pin::Pin;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::net::TcpStream;
use tokio::sync::mpsc::UnboundedSender;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode as WsCloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{Connector, MaybeTlsStream, WebSocketStream};
use tracing::debug;

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Settings of one watch. `Default` gives the core's production defaults.
#[derive(Clone, Debug)]
pub struct WatchOptions {
    /// Stable id of this app instance (a reconnect then supersedes the old socket).
    pub client_id: Option<String>,
    /// Expiry of the token, if the app knows it (`expiresAt` of the create answer).
    pub token_expires_at: Option<Millis>,
    /// Stop, cancel, latest state and connection control; keep a clone.
    pub handle: WatchHandle,
    /// Where to send [`WatchEvent`]s, if anyone listens.
    pub events: Option<UnboundedSender<WatchEvent>>,
    /// Longest wait for a WebSocket upgrade or a state-sync answer.
    pub io_timeout: Duration,
    /// Overrides the core's first backoff step.
    pub backoff_base: Option<Millis>,
    /// Overrides the core's largest backoff step.
    pub backoff_cap: Option<Millis>,
    /// Overrides the core's ping interval.
    pub ping_interval: Option<Millis>,
    /// Overrides how many failed reconnects lead to a state sync.
    pub sync_after: Option<u32>,
    /// Whom an `https://`/`wss://` gateway is trusted through (default: the
    /// Mozilla roots); used for the upgrade and the state sync alike.
    pub tls: TlsConfig,
}

impl Default for WatchOptions {
    fn default() -> Self {
        Self {
            client_id: None,
            token_expires_at: None,
            handle: WatchHandle::new(),
            events: None,
            io_timeout: Duration::from_secs(10),
            backoff_base: None,
            backoff_cap: None,
            ping_interval: None,
            sync_after: None,
            tls: TlsConfig::default(),
        }
    }
}

/// Things a UI may want to show besides the state itself. Observations only:
/// the machine has already decided what happens.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum WatchEvent {
    /// An upgrade request is going out.
    Connecting {
        /// Resume point sent as `lastSeq`, if any.
        resume_from: Option<Seq>,
    },
    /// The upgrade answered 101.
    Connected,
    /// The upgrade answered with an HTTP error.
    Refused {
        /// Status.
        status: u16,
        /// `Retry-After` seconds.
        retry_after: Option<u64>,
    },
    /// An open socket ended.
    Disconnected {
        /// Close code (`None`: no close frame, seen as 1006).
        code: Option<u16>,
        /// Seq of the last job event seen.
        seq: Option<Seq>,
        /// Ended through [`crate::ConnectionControl::drop_connection`].
        deliberate: bool,
    },
    /// The machine waits to reconnect until this time.
    Reconnecting {
        /// When the next attempt goes out (ms since the epoch).
        at: Millis,
    },
    /// The first snapshot after resuming with `lastSeq` arrived.
    Resumed {
        /// `lastSeq` the socket presented.
        from: Seq,
        /// Seq the snapshot carried.
        at: Option<Seq>,
        /// Continuity proven (`recovered` in the snapshot).
        recovered: bool,
    },
    /// `GET /api/job-state` answered (`status` 0: network error).
    StateFetched {
        /// HTTP status.
        status: u16,
    },
    /// The gateway sent a new token; the machine uses it for later reconnects.
    TokenRefreshed {
        /// Its expiry.
        expires_at: Millis,
    },
}

/// How a watch ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Ending {
    /// The job ended and the machine knows how.
    Job(JobEnd),
    /// The machine stopped watching while the job may still run.
    GaveUp(FailReason),
}

/// The result of [`watch`].
#[derive(Clone, Debug)]
pub struct Outcome {
    /// How it ended.
    pub ending: Ending,
    /// The last view.
    pub view: View,
    /// The token the machine held at the end (refreshed ones included); persist
    /// it if the app may watch again.
    pub token: Token,
    /// Its expiry, if known.
    pub token_expires_at: Option<Millis>,
}

/// Why a watch could not run at all (everything after the start is an input
/// of the machine and ends in an [`Outcome`]).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WatchError {
    /// The base URL is not usable.
    #[error(transparent)]
    Endpoint(#[from] EndpointError),
    /// The HTTP client could not be built.
    #[error("cannot build the HTTP client: {0}")]
    Http(String),
}

/// Milliseconds since the Unix epoch: the `now` of every input.
#[must_use]
pub fn now_ms() -> Millis {
    let ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    Millis(ms)
}

/// 8 bytes of per-process randomness for the machine's jitter.
fn jitter_seed() -> [u8; 8] {
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(now_ms().0);
    h.write_u32(std::process::id());
    h.finish().to_le_bytes()
}

/// Watches a job until the machine finishes: connects to
/// `{base_url}/ws/progress`, resumes after drops, syncs state over HTTP when
/// reconnects keep failing, and publishes every view to
/// `options.handle.latest()`.
pub async fn watch(
    base_url: &str,
    job_id: &str,
    token: Token,
    options: WatchOptions,
) -> Result<Outcome, WatchError> {
    let endpoint = Endpoint::parse(base_url)?;
    let http = options
        .tls
        .http()
        .build()
        .map_err(|e| WatchError::Http(e.without_url().to_string()))?;
    let mut config = ClientConfig::new(job_id);
    config.client_id.clone_from(&options.client_id);
    if let Some(v) = options.backoff_base {
        config.backoff_base = v;
    }
    if let Some(v) = options.backoff_cap {
        config.backoff_cap = v;
    }
    if let Some(v) = options.ping_interval {
        config.ping_interval = v;
    }
    if let Some(v) = options.sync_after {
        config.sync_after = v;
    }
    let client = Client::new(config, token, options.token_expires_at, jitter_seed());
    let mut driver = Driver {
        client,
        endpoint,
        http,
        job_id: job_id.to_owned(),
        options,
        socket: None,
        pending: None,
        timer: None,
    };
    Ok(driver.run().await)
}

/// An upgrade or state sync in flight.
type Pending = Pin<Box<dyn Future<Output = Answer> + Send>>;

/// What an in-flight request came back with.
enum Answer {
    Opened(Box<Socket>),
    Input(Input),
}

/// What woke the driver.
enum Wake {
    Stop,
    Cancel,
    Kill,
    Answer(Answer),
    Message(Option<Result<Message, tungstenite::Error>>),
    Timer,
}

struct Driver {
    client: Client,
    endpoint: Endpoint,
    http: reqwest::Client,
    job_id: String,
    options: WatchOptions,
    socket: Option<Socket>,
    pending: Option<Pending>,
    timer: Option<Millis>,
}

impl Driver {
    async fn run(&mut self) -> Outcome {
        let handle = self.options.handle.clone();
        let stop = handle.stop_token();
        let mut cancels = handle.cancel_requests();
        let mut kills = handle.kill_requests();
        let mut inputs = VecDeque::from([Input::Start]);
        loop {
            while let Some(input) = inputs.pop_front() {
                let effects = self.client.handle(now_ms(), input);
                for effect in effects {
                    if let Some(next) = self.apply(effect).await {
                        inputs.push_back(next);
                    }
                }
            }
            if self.client.is_finished() {
                break;
            }
            // Every wake is ready at once when the machine keeps asking for
            // what is already due (a deadline in the past, a stop it does not
            // act on): take part in tokio's cooperative budget, so such a loop
            // still lets the runtime's other tasks and timers run.
            tokio::task::consume_budget().await;
            let open = self.socket.is_some();
            let wake = tokio::select! {
                biased;
                () = stop.cancelled() => Wake::Stop,
                Ok(()) = cancels.changed() => Wake::Cancel,
                Ok(()) = kills.changed(), if open => Wake::Kill,
                a = answer(&mut self.pending) => Wake::Answer(a),
                m = next_message(&mut self.socket) => Wake::Message(m),
                () = until(self.timer) => Wake::Timer,
            };
            if matches!(wake, Wake::Answer(Answer::Opened(_))) {
                // A drop requested while no socket was open affects no later socket.
                let _ = kills.borrow_and_update();
            }
            if let Some(input) = self.wake(wake) {
                inputs.push_back(input);
            }
        }
        self.close_socket(None).await;
        let ending = match self.client.state() {
            State::Completed(end) => Ending::Job(end.clone()),
            State::Failed(reason) => Ending::GaveUp(reason.clone()),
            _ => Ending::GaveUp(FailReason::Stopped),
        };
        Outcome {
            ending,
            view: self.client.view().clone(),
            token: self.client.token().clone(),
            token_expires_at: self.client.token_expires_at(),
        }
    }

    /// Translates what woke the driver into the machine's input, if any.
    fn wake(&mut self, wake: Wake) -> Option<Input> {
        match wake {
            Wake::Stop => Some(Input::Stop),
            Wake::Cancel => Some(Input::Cancel),
            Wake::Kill => {
                // Dropping the stream shuts the TCP connection with no close frame.
                self.socket = None;
                self.emit(WatchEvent::Disconnected {
                    code: None,
                    seq: self.client.view().seq,
                    deliberate: true,
                });
                debug!(job_id = %self.job_id, "socket dropped by the connection control");
                Some(Input::Closed { code: None })
            }
            Wake::Answer(Answer::Opened(socket)) => {
                self.socket = Some(*socket);
                self.emit(WatchEvent::Connected);
                Some(Input::Opened)
            }
            Wake::Answer(Answer::Input(input)) => {
                match &input {
                    Input::Refused {
                        status,
                        retry_after,
                    } => {
                        debug!(job_id = %self.job_id, status, "upgrade refused");
                        self.emit(WatchEvent::Refused {
                            status: *status,
                            retry_after: *retry_after,
                        });
                    }
                    Input::StateFetched { status, .. } => {
                        self.emit(WatchEvent::StateFetched { status: *status });
                    }
                    _ => {}
                }
                Some(input)
            }
            Wake::Message(Some(Ok(Message::Text(text)))) => Some(Input::Frame(text.to_string())),
            Wake::Message(Some(Ok(Message::Close(frame)))) => {
                let code = frame.map(|f| u16::from(f.code));
                if let Some(socket) = self.socket.take() {
                    // Let tungstenite send its close reply without holding up the machine.
                    tokio::spawn(drain(socket));
                }
                self.disconnected(code)
            }
            Wake::Message(Some(Ok(_))) => None, // ping, pong, binary: not the machine's business
            Wake::Message(Some(Err(_)) | None) => {
                self.socket = None;
                self.disconnected(None)
            }
            Wake::Timer => {
                // A fired timer is spent; the machine states it again while
                // a deadline remains (`Effect::SetTimer`).
                self.timer = None;
                Some(Input::Tick)
            }
        }
    }

    fn disconnected(&self, code: Option<u16>) -> Option<Input> {
        debug!(job_id = %self.job_id, close_code = ?code, seq = ?self.client.view().seq.map(|s| s.0), "socket closed");
        self.emit(WatchEvent::Disconnected {
            code,
            seq: self.client.view().seq,
            deliberate: false,
        });
        Some(Input::Closed { code })
    }

    /// Carries out one effect; an immediate answer becomes the next input.
    async fn apply(&mut self, effect: Effect) -> Option<Input> {
        match effect {
            Effect::Connect(params) => {
                self.socket = None;
                self.emit(WatchEvent::Connecting {
                    resume_from: params.last_seq,
                });
                debug!(job_id = %self.job_id, last_seq = ?params.last_seq.map(|s| s.0), "connecting");
                self.pending = Some(Box::pin(open(
                    self.endpoint.clone(),
                    params,
                    self.options.tls.ws(),
                    self.options.io_timeout,
                )));
            }
            Effect::Send(text) => {
                if let Some(socket) = &mut self.socket {
                    // A failed send surfaces as the socket's end on the next read.
                    let _ = socket.send(Message::text(text)).await;
                }
            }
            Effect::Close(code) => {
                self.pending = None;
                self.close_socket(Some(code)).await;
            }
            Effect::SetTimer(at) => self.timer = at,
            Effect::Waiting(backoff) => {
                self.emit(WatchEvent::Reconnecting { at: backoff.at });
            }
            Effect::Resumed { from, recovered } => {
                self.emit(WatchEvent::Resumed {
                    from,
                    at: self.client.view().seq,
                    recovered,
                });
            }
            Effect::FetchState(token) => {
                self.pending = Some(Box::pin(fetch_state(
                    self.http.clone(),
                    self.endpoint.job_state_url(&self.job_id).into(),
                    token,
                    self.options.io_timeout,
                )));
            }
            Effect::Progress(view) => self.options.handle.latest().publish(view),
            Effect::TokenUpdated { expires_at } => {
                self.emit(WatchEvent::TokenRefreshed { expires_at });
            }
            Effect::Finished(state) => {
                debug!(job_id = %self.job_id, state = ?state, "watch finished");
            }
        }
        None
    }

    async fn close_socket(&mut self, code: Option<CloseCode>) {
        let Some(mut socket) = self.socket.take() else {
            return;
        };
        if let Some(code) = code {
            let frame = CloseFrame {
                code: WsCloseCode::from(u16::from(code)),
                reason: "".into(),
            };
            let _ = tokio::time::timeout(Duration::from_secs(1), async {
                let _ = socket.close(Some(frame)).await;
                while socket.next().await.is_some() {}
            })
            .await;
        }
    }

    fn emit(&self, event: WatchEvent) {
        if let Some(tx) = &self.options.events {
            let _ = tx.send(event);
        }
    }
}

/// Opens the socket; maps an HTTP refusal to `Input::Refused` and any other
/// failure to `Input::Closed { code: None }`.
async fn open(
    endpoint: Endpoint,
    params: ConnectParams,
    tls: Connector,
    timeout: Duration,
) -> Answer {
    let url = String::from(endpoint.progress_url(&params));
    let connect = tokio_tungstenite::connect_async_tls_with_config(url, None, false, Some(tls));
    match tokio::time::timeout(timeout, connect).await {
        Ok(Ok((socket, _))) => Answer::Opened(Box::new(socket)),
        Ok(Err(tungstenite::Error::Http(response))) => Answer::Input(Input::Refused {
            status: response.status().as_u16(),
            retry_after: response
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse().ok()),
        }),
        // Never log this error: its text may quote the URL, which holds the token.
        Ok(Err(_)) | Err(_) => Answer::Input(Input::Closed { code: None }),
    }
}

/// `GET /api/job-state/{jobId}` with the bearer token; status 0 on a network error.
async fn fetch_state(
    http: reqwest::Client,
    url: String,
    token: Token,
    timeout: Duration,
) -> Answer {
    let sent = http
        .get(url)
        .header("authorization", format!("Bearer {}", token.expose()))
        .timeout(timeout)
        .send()
        .await;
    let input = match sent {
        Ok(response) => {
            let status = response.status().as_u16();
            let body = if status == 200 {
                response.text().await.ok()
            } else {
                None
            };
            Input::StateFetched { status, body }
        }
        Err(_) => Input::StateFetched {
            status: 0,
            body: None,
        },
    };
    Answer::Input(input)
}

async fn drain(mut socket: Socket) {
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        while socket.next().await.is_some() {}
    })
    .await;
}

async fn answer(pending: &mut Option<Pending>) -> Answer {
    match pending {
        Some(fut) => {
            let a = fut.await;
            *pending = None;
            a
        }
        None => std::future::pending().await,
    }
}

async fn next_message(socket: &mut Option<Socket>) -> Option<Result<Message, tungstenite::Error>> {
    match socket {
        Some(s) => s.next().await,
        None => std::future::pending().await,
    }
}

/// Resolves once the wall clock reaches `at` (never, for `None`).
async fn until(at: Option<Millis>) {
    let Some(at) = at else {
        return std::future::pending().await;
    };
    loop {
        let now = now_ms();
        if now >= at {
            return;
        }
        tokio::time::sleep(Duration::from_millis(at.0 - now.0)).await;
    }
}
