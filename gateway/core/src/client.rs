//! The subscriber's machine: connect, follow the job, resume after drops with
//! jittered backoff, adopt refreshed tokens, and stop exactly when the close
//! code says so (SPEC §4, via [`CloseCode::action`]).
//!
//! Lifecycle: `Connecting → Authenticating → Active → Reconnecting{attempt} →
//! Completed | Failed{reason}`, with a `Syncing` detour through
//! `GET /api/job-state/{jobId}` when reconnects keep failing (seed 002).

use crate::entropy::Entropy;
use crate::protocol::{self, JobStatus, Seq, ServerMessage, LITERAL_PING};
use crate::token::Token;
use crate::{ClientAction, CloseCode, Millis};

/// Client settings.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ClientConfig {
    /// The job to watch.
    pub job_id: String,
    /// A stable id for this app instance, so a reconnect supersedes the old socket.
    pub client_id: Option<String>,
    /// First backoff step.
    pub backoff_base: Millis,
    /// Largest backoff step.
    pub backoff_cap: Millis,
    /// Consecutive failed reconnects before a state sync.
    pub sync_after: u32,
    /// Tries of one state sync (on 5xx or network errors).
    pub sync_tries: u32,
    /// How often to ping while connected.
    pub ping_interval: Millis,
}

impl ClientConfig {
    /// Production defaults for a job.
    #[must_use]
    pub fn new(job_id: impl Into<String>) -> Self {
        Self {
            job_id: job_id.into(),
            client_id: None,
            backoff_base: Millis::from_secs(1),
            backoff_cap: Millis::from_secs(30),
            sync_after: 3,
            sync_tries: 3,
            ping_interval: Millis::from_secs(30),
        }
    }
}

/// How a watched job ended.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum JobEnd {
    /// `job_complete` then 1000 (the summary, if the frame arrived).
    Succeeded {
        /// JSON text.
        summary: Option<String>,
    },
    /// `error` then 4001.
    Failed {
        /// The producer's code.
        code: String,
        /// The producer's message.
        message: String,
    },
    /// 1001.
    Canceled,
}

/// Why the client gave up watching while the job may still run.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum FailReason {
    /// 401 on upgrade or state sync: the token is wrong or expired.
    Unauthorized,
    /// 1008: tokens revoked.
    Revoked,
    /// 404: no such job (or it ended more than 24 h ago).
    NotFound,
    /// 400/426 on upgrade: the request itself is wrong.
    BadRequest(u16),
    /// A close code that says "don't reconnect" (1002, 1003, 1009).
    Refused(CloseCode),
    /// 4000: a newer socket of the same `clientId` took over.
    Superseded,
    /// The user stopped watching.
    Stopped,
}

/// The client's lifecycle.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum State {
    /// Not started.
    Idle,
    /// The upgrade request is out; the token is being checked.
    Connecting {
        /// Reconnect attempt (0 for the first connection).
        attempt: u32,
    },
    /// Upgraded; waiting for the first frame (the snapshot).
    Authenticating {
        /// Reconnect attempt.
        attempt: u32,
    },
    /// Following the job live.
    Active,
    /// Waiting to reconnect.
    Reconnecting {
        /// Consecutive failed attempts so far.
        attempt: u32,
        /// When to try.
        at: Millis,
    },
    /// Asking `GET /api/job-state` while the socket cannot be had.
    Syncing {
        /// Reconnect attempts that failed.
        attempt: u32,
        /// Tries of this sync so far.
        tries: u32,
        /// When to send the next try, if waiting.
        at: Option<Millis>,
    },
    /// The job ended and the client knows how.
    Completed(JobEnd),
    /// The client stopped watching.
    Failed(FailReason),
}

/// What the app shows.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct View {
    /// Status, once known.
    pub status: Option<JobStatus>,
    /// Items done.
    pub processed_count: u64,
    /// Items in all, if known.
    pub total_count: Option<u64>,
    /// Seq of the last job event seen.
    pub seq: Option<Seq>,
    /// The last snapshot proved continuity.
    pub recovered: bool,
    /// The latest message or current item.
    pub message: Option<String>,
}

/// Everything that happens to a client.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Input {
    /// Begin.
    Start,
    /// The upgrade answered 101.
    Opened,
    /// The upgrade answered with an HTTP error.
    Refused {
        /// Status.
        status: u16,
        /// `Retry-After` seconds.
        retry_after: Option<u64>,
    },
    /// A text frame.
    Frame(String),
    /// The socket closed (`None`: dropped without a close frame, seen as 1006)
    /// or could not be opened.
    Closed {
        /// The close code.
        code: Option<u16>,
    },
    /// The timer fired.
    Tick,
    /// A state sync answered (`status` 0 for a network error).
    StateFetched {
        /// HTTP status.
        status: u16,
        /// Body, on 200.
        body: Option<String>,
    },
    /// The user asked to cancel the job.
    Cancel,
    /// The user stopped watching.
    Stop,
}

/// Where to connect.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ConnectParams {
    /// The job.
    pub job_id: String,
    /// The token to present.
    pub token: Token,
    /// Stable client id.
    pub client_id: Option<String>,
    /// Resume point.
    pub last_seq: Option<Seq>,
}

impl ConnectParams {
    /// The upgrade query string (holds the token: never log it).
    #[must_use]
    pub fn query(&self) -> String {
        let mut q = form_urlencoded::Serializer::new(String::new());
        q.append_pair("jobId", &self.job_id)
            .append_pair("token", self.token.expose());
        if let Some(c) = &self.client_id {
            q.append_pair("clientId", c);
        }
        if let Some(s) = self.last_seq {
            q.append_pair("lastSeq", &s.0.to_string());
        }
        q.finish()
    }
}

/// What the client's adapter must do.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Effect {
    /// Open a socket.
    Connect(ConnectParams),
    /// Send a text frame.
    Send(String),
    /// Close the socket.
    Close(CloseCode),
    /// Call [`Input::Tick`] at this time (replaces any earlier timer).
    SetTimer(Option<Millis>),
    /// `GET /api/job-state/{jobId}` with this bearer token.
    FetchState(Token),
    /// The view changed.
    Progress(View),
    /// A new token arrived (persist it for later reconnects).
    TokenUpdated {
        /// Its expiry.
        expires_at: Millis,
    },
    /// The client reached `Completed` or `Failed`.
    Finished(State),
}

/// The subscriber machine.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Client {
    config: ClientConfig,
    state: State,
    token: Token,
    token_expires_at: Option<Millis>,
    view: View,
    /// The `job_complete` or failure seen on this socket, awaiting its close.
    ending: Option<JobEnd>,
    next_ping: Option<Millis>,
    timer: Option<Millis>,
    /// Jitter, from seed bytes.
    rng: Entropy,
    /// Minimum wait the server asked for (`Retry-After`).
    retry_after: Millis,
}

impl Client {
    /// A client with its token (and its expiry, if known) and 8 random bytes for jitter.
    #[must_use]
    pub fn new(
        config: ClientConfig,
        token: Token,
        token_expires_at: Option<Millis>,
        seed: [u8; 8],
    ) -> Self {
        Self {
            config,
            state: State::Idle,
            token,
            token_expires_at,
            view: View::default(),
            ending: None,
            next_ping: None,
            timer: None,
            rng: Entropy::from_seed(seed),
            retry_after: Millis::ZERO,
        }
    }

    /// Where it is.
    #[must_use]
    pub const fn state(&self) -> &State {
        &self.state
    }

    /// What it shows.
    #[must_use]
    pub const fn view(&self) -> &View {
        &self.view
    }

    /// Expiry of the token it holds, if known.
    #[must_use]
    pub const fn token_expires_at(&self) -> Option<Millis> {
        self.token_expires_at
    }

    /// The token it holds.
    #[must_use]
    pub const fn token(&self) -> &Token {
        &self.token
    }

    /// Whether it has finished, one way or the other.
    #[must_use]
    pub const fn is_finished(&self) -> bool {
        matches!(self.state, State::Completed(_) | State::Failed(_))
    }

    /// The one entry point.
    pub fn handle(&mut self, now: Millis, input: Input) -> Vec<Effect> {
        let mut out = Vec::new();
        if !self.is_finished() {
            self.step(now, input, &mut out);
        }
        let timer = self.next_deadline();
        if timer != self.timer {
            self.timer = timer;
            out.push(Effect::SetTimer(timer));
        }
        out
    }

    fn step(&mut self, now: Millis, input: Input, out: &mut Vec<Effect>) {
        match (input, self.state.clone()) {
            (Input::Start, State::Idle) => self.connect(0, out),
            (Input::Opened, State::Connecting { attempt }) => {
                self.state = State::Authenticating { attempt };
            }
            (
                Input::Refused {
                    status,
                    retry_after,
                },
                State::Connecting { attempt },
            ) => {
                self.refused(now, attempt, status, retry_after, out);
            }
            (Input::Frame(text), State::Authenticating { .. } | State::Active) => {
                if matches!(self.state, State::Authenticating { .. }) {
                    self.state = State::Active;
                    self.retry_after = Millis::ZERO;
                    self.next_ping = Some(now.plus(self.config.ping_interval));
                }
                self.frame(&text, out);
            }
            (
                Input::Closed { code },
                State::Connecting { attempt } | State::Authenticating { attempt },
            ) => {
                self.closed(now, attempt.saturating_add(1), code, out);
            }
            (Input::Closed { code }, State::Active) => self.closed(now, 0, code, out),
            (Input::Tick, State::Active) if self.next_ping.is_some_and(|t| t <= now) => {
                out.push(Effect::Send(LITERAL_PING.to_owned()));
                self.next_ping = Some(now.plus(self.config.ping_interval));
            }
            (Input::Tick, State::Reconnecting { attempt, at }) if at <= now => {
                if attempt > 0 && attempt % self.config.sync_after.max(1) == 0 {
                    self.state = State::Syncing {
                        attempt,
                        tries: 1,
                        at: None,
                    };
                    out.push(Effect::FetchState(self.token.clone()));
                } else {
                    self.connect(attempt, out);
                }
            }
            (
                Input::Tick,
                State::Syncing {
                    attempt,
                    tries,
                    at: Some(at),
                },
            ) if at <= now => {
                self.state = State::Syncing {
                    attempt,
                    tries: tries + 1,
                    at: None,
                };
                out.push(Effect::FetchState(self.token.clone()));
            }
            (
                Input::StateFetched { status, body },
                State::Syncing {
                    attempt,
                    tries,
                    at: None,
                },
            ) => {
                self.synced(now, attempt, tries, status, body.as_deref(), out);
            }
            (Input::Cancel, State::Active) => {
                out.push(Effect::Send(r#"{"type":"cancel"}"#.to_owned()));
            }
            (Input::Stop, _) => {
                if matches!(
                    self.state,
                    State::Active | State::Authenticating { .. } | State::Connecting { .. }
                ) {
                    out.push(Effect::Close(CloseCode::Completed));
                }
                self.finish(State::Failed(FailReason::Stopped), out);
            }
            _ => {} // stale or out-of-order input: nothing to do
        }
    }

    fn connect(&mut self, attempt: u32, out: &mut Vec<Effect>) {
        self.state = State::Connecting { attempt };
        self.ending = None;
        self.next_ping = None;
        out.push(Effect::Connect(ConnectParams {
            job_id: self.config.job_id.clone(),
            token: self.token.clone(),
            client_id: self.config.client_id.clone(),
            last_seq: self.view.seq,
        }));
    }

    fn refused(
        &mut self,
        now: Millis,
        attempt: u32,
        status: u16,
        retry_after: Option<u64>,
        out: &mut Vec<Effect>,
    ) {
        match status {
            401 => self.finish(State::Failed(FailReason::Unauthorized), out),
            404 => self.finish(State::Failed(FailReason::NotFound), out),
            429 => {
                self.retry_after = Millis::from_secs(retry_after.unwrap_or(1));
                self.backoff(now, attempt.saturating_add(1), self.retry_after);
            }
            s if (400..500).contains(&s) => {
                self.finish(State::Failed(FailReason::BadRequest(s)), out);
            }
            _ => self.backoff(now, attempt.saturating_add(1), Millis::ZERO),
        }
    }

    fn closed(&mut self, now: Millis, attempt: u32, code: Option<u16>, out: &mut Vec<Effect>) {
        let code = code.map_or(CloseCode::Abnormal, CloseCode::from);
        self.next_ping = None;
        match code.action() {
            ClientAction::Done => {
                let end = match code {
                    CloseCode::Canceled => JobEnd::Canceled,
                    _ => self.ending.take().unwrap_or(match code {
                        CloseCode::JobFailed => JobEnd::Failed {
                            code: "job_failed".into(),
                            message: String::new(),
                        },
                        _ => JobEnd::Succeeded { summary: None },
                    }),
                };
                self.view.status = Some(match end {
                    JobEnd::Succeeded { .. } => JobStatus::Completed,
                    JobEnd::Failed { .. } => JobStatus::Failed,
                    JobEnd::Canceled => JobStatus::Canceled,
                });
                out.push(Effect::Progress(self.view.clone()));
                self.finish(State::Completed(end), out);
            }
            ClientAction::Stop => {
                let reason = if code == CloseCode::Superseded {
                    FailReason::Superseded
                } else {
                    FailReason::Refused(code)
                };
                self.finish(State::Failed(reason), out);
            }
            ClientAction::Reauthenticate => self.finish(State::Failed(FailReason::Revoked), out),
            ClientAction::Reconnect { min_delay } => {
                if let Some(end) = self.ending.take() {
                    // The terminal event arrived and only its close was lost: the
                    // job is over, and a reconnect would only replay the end.
                    self.finish(State::Completed(end), out);
                } else {
                    let floor = min_delay.max(self.retry_after);
                    self.backoff(now, attempt, floor);
                }
            }
        }
    }

    /// Full-jitter exponential backoff: `floor + random(0 ..= min(cap, base·2^attempt))`.
    fn backoff(&mut self, now: Millis, attempt: u32, floor: Millis) {
        let step = self
            .config
            .backoff_base
            .0
            .saturating_mul(1u64 << attempt.min(20));
        let ceiling = step.min(self.config.backoff_cap.0);
        let jitter = self.rng.next_u64() % ceiling.saturating_add(1);
        self.state = State::Reconnecting {
            attempt,
            at: now.plus(floor).plus(Millis(jitter)),
        };
    }

    fn synced(
        &mut self,
        now: Millis,
        attempt: u32,
        tries: u32,
        status: u16,
        body: Option<&str>,
        out: &mut Vec<Effect>,
    ) {
        match status {
            200 => {
                let parsed = body.and_then(|b| serde_json::from_str::<serde_json::Value>(b).ok());
                if let Some(v) = parsed {
                    let status = v
                        .get("status")
                        .and_then(|s| serde_json::from_value::<JobStatus>(s.clone()).ok());
                    let seq = v.get("seq").and_then(serde_json::Value::as_u64).map(Seq);
                    // Progress never goes backwards in the view.
                    if seq >= self.view.seq {
                        self.view.seq = seq;
                        self.view.status = status;
                        if let Some(p) = v.get("processedCount").and_then(serde_json::Value::as_u64)
                        {
                            self.view.processed_count = p;
                        }
                        self.view.total_count =
                            v.get("totalCount").and_then(serde_json::Value::as_u64);
                        out.push(Effect::Progress(self.view.clone()));
                    }
                    match status {
                        Some(JobStatus::Completed) => {
                            return self
                                .finish(State::Completed(JobEnd::Succeeded { summary: None }), out)
                        }
                        Some(JobStatus::Failed) => {
                            return self.finish(
                                State::Completed(JobEnd::Failed {
                                    code: "job_failed".into(),
                                    message: String::new(),
                                }),
                                out,
                            )
                        }
                        Some(JobStatus::Canceled) => {
                            return self.finish(State::Completed(JobEnd::Canceled), out)
                        }
                        _ => {}
                    }
                }
                self.connect(attempt, out);
            }
            401 => self.finish(State::Failed(FailReason::Unauthorized), out),
            404 => self.finish(State::Failed(FailReason::NotFound), out),
            s if (400..500).contains(&s) => {
                self.finish(State::Failed(FailReason::BadRequest(s)), out);
            }
            _ if tries < self.config.sync_tries => {
                let wait = Millis(
                    self.config
                        .backoff_base
                        .0
                        .saturating_mul(1u64 << tries.min(20)),
                );
                self.state = State::Syncing {
                    attempt,
                    tries,
                    at: Some(now.plus(wait)),
                };
            }
            _ => self.connect(attempt, out),
        }
    }

    fn frame(&mut self, text: &str, out: &mut Vec<Effect>) {
        let Ok(frame) = protocol::decode(text) else {
            return;
        };
        if let Some(seq) = frame.seq {
            self.view.seq = Some(self.view.seq.map_or(seq, |s| s.max(seq)));
        }
        match frame.message {
            ServerMessage::Snapshot {
                recovered, state, ..
            } => {
                self.view.status = Some(state.status);
                self.view.processed_count = state.processed_count;
                self.view.total_count = state.total_count;
                self.view.recovered = recovered;
            }
            ServerMessage::JobStarted {
                total_count,
                message,
            } => {
                self.view.status = Some(JobStatus::Processing);
                if total_count.is_some() {
                    self.view.total_count = total_count;
                }
                self.view.message = message;
            }
            ServerMessage::JobProgress {
                processed_count,
                total_count,
                current_item,
                message,
            } => {
                self.view.status = Some(JobStatus::Processing);
                self.view.processed_count = self.view.processed_count.max(processed_count);
                if total_count.is_some() {
                    self.view.total_count = total_count;
                }
                self.view.message = current_item.or(message);
            }
            ServerMessage::JobComplete { summary } => {
                self.ending = Some(JobEnd::Succeeded {
                    summary: Some(summary),
                });
            }
            ServerMessage::Error { code, message, .. } if frame.seq.is_some() => {
                self.ending = Some(JobEnd::Failed { code, message });
            }
            ServerMessage::TokenRefresh { token, expires_at } => {
                self.token = Token::from_string(token);
                self.token_expires_at = Some(expires_at);
                out.push(Effect::TokenUpdated { expires_at });
                return;
            }
            ServerMessage::Error { .. } | ServerMessage::Pong => return,
        }
        out.push(Effect::Progress(self.view.clone()));
    }

    fn finish(&mut self, state: State, out: &mut Vec<Effect>) {
        self.state = state.clone();
        self.next_ping = None;
        out.push(Effect::Finished(state));
    }

    fn next_deadline(&self) -> Option<Millis> {
        match &self.state {
            State::Active => self.next_ping,
            State::Reconnecting { at, .. } | State::Syncing { at: Some(at), .. } => Some(*at),
            _ => None,
        }
    }
}
