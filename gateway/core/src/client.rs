//! The subscriber's machine: connect, follow the job, resume after drops with
//! jittered backoff, adopt refreshed tokens, and stop exactly when the close
//! code says so (SPEC §4, via [`CloseCode::action`]).
//!
//! Lifecycle: `Connecting → Authenticating → Active → Reconnecting{attempt} →
//! Completed | Failed{reason}`, with a `Syncing` detour through
//! `GET /api/job-state/{jobId}` when reconnects keep failing (seed 002).

use crate::api;
use crate::entropy::Entropy;
use crate::protocol::{self, JobStatus, Seq, ServerMessage, LITERAL_PING};
use crate::token::Token;
use crate::{ClientAction, CloseCode, Millis};
use std::collections::VecDeque;

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

/// One reconnect wait: `min` plus a jitter drawn uniformly from `0..=max - min`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Backoff {
    /// Consecutive failed attempts so far.
    pub attempt: u32,
    /// Shortest wait: the close code's minimum delay or the server's `Retry-After`.
    pub min: Millis,
    /// Longest wait: `min` plus the full jitter range of this attempt.
    pub max: Millis,
    /// When the next attempt goes out (`now` plus the wait drawn).
    pub at: Millis,
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
    /// Call [`Input::Tick`] at this time (replaces any earlier timer). A
    /// timer that fired is spent: a tick is answered with this again while a
    /// deadline remains.
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
    /// The client waits to reconnect; its timer is set to `at`.
    Waiting(Backoff),
    /// The first snapshot of a socket that resumed with `lastSeq` arrived
    /// (after the [`Effect::Progress`] it caused).
    Resumed {
        /// The `lastSeq` the socket presented.
        from: Seq,
        /// Continuity proven: nothing but folded progress was missed.
        recovered: bool,
    },
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
    /// Draws in `[0, 1)` (as `f64` bits) used before `rng`, for conformance replays.
    scripted: VecDeque<u64>,
    /// The `lastSeq` the current socket presented, until its first frame.
    presented: Option<Seq>,
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
            scripted: VecDeque::new(),
            presented: None,
            retry_after: Millis::ZERO,
        }
    }

    /// Uses these random draws in `[0, 1)`, in order, one per reconnect wait,
    /// before the seeded stream (conformance vectors fix them this way). Each
    /// is clamped into `[0, 1)`; NaN counts as 0.
    pub fn script_random(&mut self, draws: impl IntoIterator<Item = f64>) {
        const BELOW_ONE: f64 = 1.0 - f64::EPSILON / 2.0;
        self.scripted.extend(draws.into_iter().map(|r| {
            if r.is_nan() {
                0.0
            } else {
                r.clamp(0.0, BELOW_ONE)
            }
            .to_bits()
        }));
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
        // A fired timer is spent: after a tick a deadline still ahead is
        // stated again, so a driver whose timer fired early (its clock a
        // little ahead of `now`'s) is told it rather than left without one.
        let spent = matches!(input, Input::Tick);
        if !self.is_finished() {
            self.step(now, input, &mut out);
        }
        let timer = self.next_deadline();
        if (spent && timer.is_some()) || timer != self.timer {
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
                // SPEC §3: a first frame at once. Until a socket has sent one, the
                // runtime keeps the connection open after the room closes it.
                out.push(Effect::Send(LITERAL_PING.to_owned()));
                self.next_ping = Some(now.plus(self.config.ping_interval));
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
                let first = matches!(self.state, State::Authenticating { .. });
                if first {
                    self.state = State::Active;
                    self.retry_after = Millis::ZERO;
                }
                let recovered = self.frame(&text, out);
                if let (true, Some(from), Some(recovered)) = (first, self.presented, recovered) {
                    out.push(Effect::Resumed { from, recovered });
                }
                if first {
                    self.presented = None;
                }
            }
            (
                Input::Closed { code },
                State::Connecting { attempt } | State::Authenticating { attempt },
            ) => {
                self.closed(now, attempt.saturating_add(1), code, out);
            }
            (Input::Closed { code }, State::Active) => self.closed(now, 0, code, out),
            (Input::Tick, State::Active | State::Authenticating { .. })
                if self.next_ping.is_some_and(|t| t <= now) =>
            {
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
        self.presented = self.view.seq;
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
                self.backoff(now, attempt.saturating_add(1), self.retry_after, out);
            }
            s if (400..500).contains(&s) => {
                self.finish(State::Failed(FailReason::BadRequest(s)), out);
            }
            _ => self.backoff(now, attempt.saturating_add(1), Millis::ZERO, out),
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
                    self.backoff(now, attempt, floor, out);
                }
            }
        }
    }

    /// Full-jitter exponential backoff: `floor + floor(r · (ceiling + 1))` with
    /// `r` in `[0, 1)` and `ceiling = min(cap, base·2^attempt)`.
    fn backoff(&mut self, now: Millis, attempt: u32, floor: Millis, out: &mut Vec<Effect>) {
        let step = self
            .config
            .backoff_base
            .0
            .saturating_mul(1u64 << attempt.min(20));
        let ceiling = step.min(self.config.backoff_cap.0);
        let jitter = self.jitter(ceiling);
        let at = now.plus(floor).plus(Millis(jitter));
        self.state = State::Reconnecting { attempt, at };
        out.push(Effect::Waiting(Backoff {
            attempt,
            min: floor,
            max: floor.plus(Millis(ceiling)),
            at,
        }));
    }

    /// A draw from `0..=ceiling`: the next scripted value, else the seeded stream.
    #[allow(
        clippy::cast_precision_loss,
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss
    )]
    fn jitter(&mut self, ceiling: u64) -> u64 {
        let r = match self.scripted.pop_front() {
            Some(bits) => f64::from_bits(bits),
            // 53 random bits: every value is an exact f64 in [0, 1).
            None => (self.rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64,
        };
        ((r * (ceiling as f64 + 1.0)).floor() as u64).min(ceiling)
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
                // The answer as the contract's type: one that does not read
                // as a job state changes nothing, and the socket is tried.
                let parsed = body.and_then(|b| serde_json::from_str::<api::JobState>(b).ok());
                if let Some(state) = parsed {
                    let status = Some(state.status);
                    let seq = Some(Seq(state.seq));
                    // Progress never goes backwards in the view.
                    if seq >= self.view.seq {
                        self.view.seq = seq;
                        self.view.status = status;
                        self.view.processed_count = state.processed_count;
                        self.view.total_count = state.total_count;
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

    /// Applies one frame to the view; returns `recovered` if it was a snapshot.
    fn frame(&mut self, text: &str, out: &mut Vec<Effect>) -> Option<bool> {
        let Ok(frame) = protocol::decode(text) else {
            return None;
        };
        let mut snapshot = None;
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
                snapshot = Some(recovered);
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
                return None;
            }
            ServerMessage::Error { .. } | ServerMessage::Pong => return None,
        }
        out.push(Effect::Progress(self.view.clone()));
        snapshot
    }

    fn finish(&mut self, state: State, out: &mut Vec<Effect>) {
        self.state = state.clone();
        self.next_ping = None;
        out.push(Effect::Finished(state));
    }

    fn next_deadline(&self) -> Option<Millis> {
        match &self.state {
            State::Active | State::Authenticating { .. } => self.next_ping,
            State::Reconnecting { at, .. } | State::Syncing { at: Some(at), .. } => Some(*at),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{encode, JobHeader, Pipeline, Snapshot};

    const T0: Millis = Millis(1_000_000);

    fn client() -> Client {
        let mut config = ClientConfig::new("job-1");
        config.client_id = Some("app-1".into());
        Client::new(config, Token::from_string("tok".into()), None, [1; 8])
    }

    fn snapshot(seq: u64, recovered: Option<bool>) -> String {
        let job = JobHeader {
            job_id: "job-1".into(),
            pipeline: Pipeline::CsvImport,
        };
        let msg = ServerMessage::Snapshot {
            resumed: recovered.is_some(),
            recovered: recovered.unwrap_or(false),
            state: Snapshot {
                status: JobStatus::Processing,
                processed_count: seq,
                total_count: Some(10),
            },
        };
        encode(&job, T0, Some(Seq(seq)), &msg)
    }

    fn sends(effects: &[Effect]) -> Vec<&str> {
        effects
            .iter()
            .filter_map(|e| match e {
                Effect::Send(t) => Some(t.as_str()),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn literal_ping_as_soon_as_the_socket_opens() {
        let mut c = client();
        c.handle(T0, Input::Start);
        let fx = c.handle(T0.plus(Millis(5)), Input::Opened);
        assert_eq!(sends(&fx), [LITERAL_PING], "no ping on open: {fx:?}");
        let interval = c.config.ping_interval;
        assert!(fx.contains(&Effect::SetTimer(Some(T0.plus(Millis(5)).plus(interval)))));
        // The snapshot does not push the next ping back.
        let fx = c.handle(T0.plus(Millis(9)), Input::Frame(snapshot(2, None)));
        assert!(sends(&fx).is_empty());
        assert!(
            !fx.iter().any(|e| matches!(e, Effect::SetTimer(_))),
            "{fx:?}"
        );
    }

    #[test]
    fn then_every_ping_interval_exactly() {
        let mut c = client();
        c.handle(T0, Input::Start);
        c.handle(T0, Input::Opened);
        c.handle(T0, Input::Frame(snapshot(2, None)));
        let interval = c.config.ping_interval;
        let early = c.handle(T0.plus(interval).minus(Millis(1)), Input::Tick);
        assert!(sends(&early).is_empty(), "pinged early: {early:?}");
        for k in 1..=3 {
            let at = T0.plus(Millis(interval.0 * k));
            let fx = c.handle(at, Input::Tick);
            assert_eq!(sends(&fx), [LITERAL_PING], "ping {k}");
            assert!(fx.contains(&Effect::SetTimer(Some(at.plus(interval)))));
        }
    }

    #[test]
    fn pings_while_the_snapshot_is_late() {
        let mut c = client();
        c.handle(T0, Input::Start);
        c.handle(T0, Input::Opened);
        let interval = c.config.ping_interval;
        let fx = c.handle(T0.plus(interval), Input::Tick);
        assert_eq!(sends(&fx), [LITERAL_PING]);
        assert!(matches!(c.state(), State::Authenticating { attempt: 0 }));
    }

    #[test]
    fn no_ping_before_open_nor_after_a_close() {
        let mut c = client();
        let fx = c.handle(T0, Input::Start);
        assert!(sends(&fx).is_empty());
        assert!(!fx.iter().any(|e| matches!(e, Effect::SetTimer(Some(_)))));
        c.handle(T0, Input::Opened);
        c.script_random([0.0]);
        let fx = c.handle(T0, Input::Closed { code: Some(1012) });
        assert!(sends(&fx).is_empty());
        // Only the reconnect timer is left.
        assert!(fx.contains(&Effect::SetTimer(Some(T0))), "{fx:?}");
    }

    #[test]
    fn an_early_tick_is_told_the_same_deadline_again() {
        // A driver's timer can fire a millisecond before its wall clock
        // reaches the deadline; the machine must re-arm it, or the client
        // waits forever (seen in the TypeScript shell under Node).
        let mut c = client();
        c.handle(T0, Input::Start);
        c.script_random([0.5]);
        let fx = c.handle(T0, Input::Closed { code: None });
        let Some(at) = fx.iter().find_map(|e| match e {
            Effect::SetTimer(Some(at)) => Some(*at),
            _ => None,
        }) else {
            panic!("no reconnect timer: {fx:?}")
        };
        assert!(at > T0, "{fx:?}");
        let early = c.handle(at.minus(Millis(1)), Input::Tick);
        assert_eq!(early, [Effect::SetTimer(Some(at))], "early tick");
        let fx = c.handle(at, Input::Tick);
        assert!(
            fx.iter().any(|e| matches!(e, Effect::Connect(_))),
            "no reconnect at the deadline: {fx:?}"
        );
        // With nothing due, a stale tick changes nothing.
        assert_eq!(c.handle(at, Input::Tick), []);
    }

    #[test]
    fn scripted_random_fixes_the_wait() {
        let mut c = client();
        c.script_random([0.5, 0.999_999, 0.0]);
        c.handle(T0, Input::Start);
        c.handle(T0, Input::Opened);
        c.handle(T0, Input::Frame(snapshot(2, None)));
        // From Active: attempt 0, ceiling = base (1000): floor(0.5 · 1001) = 500.
        let fx = c.handle(T0, Input::Closed { code: None });
        let wait = Backoff {
            attempt: 0,
            min: Millis::ZERO,
            max: Millis(1000),
            at: T0.plus(Millis(500)),
        };
        assert!(fx.contains(&Effect::Waiting(wait)), "{fx:?}");
        // 1013 adds its 5 s floor; attempt 1 doubles the range; r near 1 gives the top.
        c.handle(T0.plus(Millis(500)), Input::Tick);
        let fx = c.handle(T0.plus(Millis(500)), Input::Closed { code: Some(1013) });
        let wait = Backoff {
            attempt: 1,
            min: Millis(5000),
            max: Millis(7000),
            at: T0.plus(Millis(7500)),
        };
        assert!(fx.contains(&Effect::Waiting(wait)), "{fx:?}");
    }

    #[test]
    fn resume_is_reported_with_its_continuity() {
        let mut c = client();
        c.script_random([0.0]);
        c.handle(T0, Input::Start);
        c.handle(T0, Input::Opened);
        let fx = c.handle(T0, Input::Frame(snapshot(2, None)));
        assert!(!fx.iter().any(|e| matches!(e, Effect::Resumed { .. })));
        c.handle(T0, Input::Closed { code: None });
        let fx = c.handle(T0, Input::Tick);
        assert!(
            matches!(&fx[..], [Effect::Connect(p), ..] if p.last_seq == Some(Seq(2))),
            "{fx:?}"
        );
        c.handle(T0, Input::Opened);
        let fx = c.handle(T0, Input::Frame(snapshot(4, Some(true))));
        assert_eq!(
            fx.last(),
            Some(&Effect::Resumed {
                from: Seq(2),
                recovered: true
            })
        );
        // Only the first frame of a socket says so.
        let fx = c.handle(T0, Input::Frame(snapshot(4, Some(true))));
        assert!(!fx.iter().any(|e| matches!(e, Effect::Resumed { .. })));
    }
}
