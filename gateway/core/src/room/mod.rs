//! The job room: one job, its tokens and all of its sockets (SPEC §1–§6).
//!
//! [`Room::handle`] takes the time and one [`Input`] and returns the
//! [`Effect`]s for the adapter to carry out, in order. A `Persist` always comes
//! before the sends and the HTTP answer that depend on it, so nothing a
//! producer was acknowledged for, and nothing a subscriber saw, can be lost.

use crate::api;
use crate::callback::{CallbackEvent, PendingNotify};
use crate::error::{GatewayError, HttpError};
use crate::protocol::{
    self, check_outgoing, ClientMessage, CreateJob, EventKind, Incoming, JobHeader, JobStatus,
    OutgoingSize, Pipeline, Seq, ServerMessage, Snapshot,
};
use crate::timer::{Timer, Timers};
use crate::token::{Minter, Token, TokenKey, TokenSet, Verdict, DEFAULT_MAX_SESSION};
use crate::{CloseCode, Millis};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, VecDeque};

mod notify;
mod producer;
mod record;
mod restore;
mod sockets;
pub mod storage;
mod timers;
mod tokens;

use notify::queue_notify;
pub use producer::{
    MAX_CODE_BYTES, MAX_CURRENT_ITEM_BYTES, MAX_EVENTS_PER_REQUEST, MAX_MESSAGE_BYTES,
    MAX_RECORD_BYTES, MAX_SUMMARY_BYTES,
};
use record::inspect;
pub use record::{Attachment, JobRecord, Phase};
pub use restore::{Kept, KeptSocket};
use sockets::{PendingAccept, Subscriber};
pub use storage::Write;
pub use timers::JOB_EXPIRED;

/// Socket ids a room can hand out per millisecond before borrowing from the
/// next one; ids stay below 2^53 (safe as a JavaScript number) until 2255.
pub const SOCKET_IDS_PER_MS: u64 = 1024;

/// The log event of a named timer that ran (its `value` is the index in
/// [`Timer::ALL`]); the harness checks that every due timer runs.
pub const TIMER_FIRED: &str = "timer_fired";

/// How many event ids the room remembers for idempotent retries.
pub const REMEMBERED_EVENT_IDS: usize = 1000;

/// A socket of this room. Unique while the socket lives.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SocketId(pub u64);

impl std::fmt::Display for SocketId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "s{}", self.0)
    }
}

/// How a replaced socket is closed. Production uses [`SupersedePolicy::Spec`];
/// the seed's behaviour exists so the model can show why it is wrong.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SupersedePolicy {
    /// Close with 4000 (SPEC §4).
    Spec,
    /// Close with `1000 "Client reconnecting"`, as the seed did.
    SeedClose1000,
}

/// When job state is written. Production uses [`PersistPolicy::EveryRequest`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PersistPolicy {
    /// Before every acknowledgement and fan-out, coalesced per request (SPEC §6).
    EveryRequest,
    /// The seed's throttle: every `every` progress updates or `interval`.
    SeedThrottled {
        /// Updates between writes.
        every: u32,
        /// Time between writes.
        interval: Millis,
    },
}

/// Room settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct RoomConfig {
    /// Sockets per job (SPEC §6: 32).
    pub max_sockets: usize,
    /// Subscriber ping interval; idle after twice this.
    pub ping_interval: Millis,
    /// Frames that may reach the room per socket within `rate_window`.
    pub rate_limit: usize,
    /// The rate window.
    pub rate_window: Millis,
    /// How long an ended job stays readable, and how long a job still
    /// running may go without events before it ends as failed.
    pub retention: Millis,
    /// `Retry-After` for a 429.
    pub retry_after: Millis,
    /// How replaced sockets are closed.
    pub supersede: SupersedePolicy,
    /// When state is written.
    pub persist: PersistPolicy,
    /// Signs the tokens the room issues (`TOKEN_SECRET`). `None` while the
    /// deployment has no valid key ([`RoomConfig::unconfigured`]): the room
    /// then issues no token (no refresh; a create or issue is 503) and keeps
    /// serving the sockets it has with the tokens they hold.
    pub token_key: Option<TokenKey>,
    /// Longest session: in-band refreshes never extend a token past its
    /// session's start plus this (`MAX_SESSION_MS`).
    pub max_session: Millis,
}

impl Default for RoomConfig {
    fn default() -> Self {
        Self {
            max_sockets: 32,
            ping_interval: Millis::from_secs(30),
            rate_limit: 20,
            rate_window: Millis::from_secs(10),
            retention: Millis::from_hours(24),
            retry_after: Millis::from_secs(5),
            supersede: SupersedePolicy::Spec,
            persist: PersistPolicy::EveryRequest,
            // Tests, the simulation and the model only: the Worker takes its
            // key from its secrets (`Config::from_vars`) or has none.
            token_key: Some(TokenKey::TEST),
            max_session: DEFAULT_MAX_SESSION,
        }
    }
}

impl RoomConfig {
    /// What a room runs on while the deployment's vars are invalid (the
    /// edge then refuses every request, so only sockets accepted earlier
    /// and alarms reach it): the defaults with no token key, so it signs
    /// nothing with a key the edge does not hold.
    #[must_use]
    pub fn unconfigured() -> Self {
        Self {
            token_key: None,
            ..Self::default()
        }
    }
}

/// A validated upgrade request (SPEC §1); built by [`crate::http::parse_upgrade`].
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Upgrade {
    /// The job.
    pub job_id: String,
    /// The presented token.
    pub token: String,
    /// The subscriber's stable id.
    pub client_id: Option<String>,
    /// Resume point.
    pub last_seq: Option<Seq>,
}

/// A frame from a socket.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum WireFrame {
    /// Text.
    Text(String),
    /// Binary, of this many bytes.
    Binary(usize),
}

/// Everything that can happen to a room (once [`Room::restore`] built it).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Input {
    /// `POST /api/jobs`.
    Create {
        /// The validated body.
        request: CreateJob,
        /// The job id (the body's, or a random one the Worker made).
        job_id: String,
        /// Random bytes for the first token.
        token_random: [u8; 16],
        /// `scheme://host` of the Worker, for `wsUrl`/`stateUrl`.
        origin: String,
    },
    /// A WebSocket upgrade that passed the HTTP checks.
    Upgrade {
        /// The request.
        request: Upgrade,
        /// Time of each socket's last runtime-answered ping (for the sweep
        /// that runs when the socket cap is reached).
        pings: Vec<(SocketId, Millis)>,
    },
    /// The runtime accepted the socket of [`Effect::Accept`].
    Accepted {
        /// The socket.
        socket: SocketId,
    },
    /// The runtime could not accept the socket of [`Effect::Accept`].
    AcceptFailed {
        /// The socket.
        socket: SocketId,
    },
    /// A frame arrived on a socket.
    Frame {
        /// The socket.
        socket: SocketId,
        /// The frame.
        frame: WireFrame,
    },
    /// A socket closed or failed.
    Closed {
        /// The socket.
        socket: SocketId,
    },
    /// `POST /api/jobs/{id}/events` with its raw body.
    Events {
        /// Body bytes.
        body: Vec<u8>,
    },
    /// `POST /api/jobs/{id}/cancel` with a subscriber token.
    Cancel {
        /// The presented token.
        token: String,
    },
    /// `GET /api/job-state/{id}` with a subscriber token.
    JobState {
        /// The presented token.
        token: String,
    },
    /// `GET /api/jobs/{id}` by the producer.
    Inspect,
    /// `POST /api/jobs/{id}/revoke` by the producer.
    Revoke,
    /// `POST /api/jobs/{id}/tokens` by the producer.
    IssueToken {
        /// Random bytes for the token.
        random: [u8; 16],
    },
    /// The outcome of the [`Effect::Notify`] with this `attempt`.
    NotifyResult {
        /// The attempt it answers.
        attempt: u32,
        /// The HTTP status, or `None` when no answer came (network error,
        /// timeout). Any 2xx ends the notification.
        status: Option<u16>,
    },
    /// The alarm fired.
    Alarm {
        /// Time of each socket's last runtime-answered ping.
        pings: Vec<(SocketId, Millis)>,
        /// Random bytes, in case a new token is due.
        random: [u8; 16],
    },
}

/// An HTTP answer.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Response {
    /// Status.
    pub status: u16,
    /// JSON body.
    pub body: String,
    /// `Retry-After` seconds.
    pub retry_after: Option<u64>,
}

impl From<HttpError> for Response {
    fn from(e: HttpError) -> Self {
        Self {
            status: e.status,
            body: e.body(),
            retry_after: e.retry_after,
        }
    }
}

/// How loud a log line is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Level {
    /// Routine.
    Info,
    /// Worth a look.
    Warn,
}

/// A structured log line (never holds a token).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Log {
    /// Level.
    pub level: Level,
    /// What happened, as a stable snake_case name.
    pub event: &'static str,
    /// The socket concerned.
    pub socket: Option<SocketId>,
    /// The seq concerned.
    pub seq: Option<Seq>,
    /// The close code concerned.
    pub close_code: Option<CloseCode>,
    /// A number that matters (bytes, status).
    pub value: Option<u64>,
}

/// What the adapter must do, in order.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Effect {
    /// Answer the HTTP request that caused this input.
    Respond(Response),
    /// Accept the upgrade: attach this state to the new socket, then feed
    /// back [`Input::Accepted`] or [`Input::AcceptFailed`].
    Accept {
        /// The new socket.
        socket: SocketId,
        /// Its attachment.
        attachment: Attachment,
    },
    /// Send a text frame.
    Send {
        /// To.
        socket: SocketId,
        /// The frame.
        text: String,
    },
    /// Close a socket.
    Close {
        /// The socket.
        socket: SocketId,
        /// The code.
        code: CloseCode,
        /// The reason (≤ 123 bytes).
        reason: String,
    },
    /// Replace a live socket's attachment.
    Attach {
        /// The socket.
        socket: SocketId,
        /// Its new attachment.
        attachment: Attachment,
    },
    /// Write the record (what changed of it, laid out as [`storage`] says)
    /// in one atomic storage operation; await it before carrying out the
    /// next effect.
    Persist(Write),
    /// Write the delivered mark (a small key of its own): every socket was
    /// sent everything through this seq. Need not be awaited; if it is lost,
    /// the next wake only sends a redundant snapshot.
    MarkDelivered(Seq),
    /// Delete everything stored for the job.
    Forget,
    /// Set (or, with `None`, delete) the one alarm.
    SetAlarm(Option<Millis>),
    /// POST `body` (JSON) to the producer's callback `url`, signed with
    /// [`crate::callback::signature`] in the
    /// [`crate::callback::SIGNATURE_HEADER`], waiting at most
    /// [`crate::callback::ATTEMPT_TIMEOUT`]; then feed back
    /// [`Input::NotifyResult`]. Never await it before other work: the
    /// room has already written when to retry. Never log `url`.
    Notify {
        /// The callback URL.
        url: String,
        /// The JSON body.
        body: String,
        /// Which attempt this is (1-based).
        attempt: u32,
    },
    /// Log.
    Log(Log),
}

/// The job room machine.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Room {
    config: RoomConfig,
    /// The job and all that exists only while it does; `None` holds no
    /// socket and no timer.
    live: Option<Live>,
    /// An upgrade waiting for the runtime's accept. Kept beside the job, not
    /// in it: the runtime's request outlives a job forgotten meanwhile, and
    /// its `AcceptFailed` is still answered.
    pending: Option<PendingAccept>,
    /// The alarm the runtime has set (it exists with or without a job).
    alarm: Option<Millis>,
    /// The job's seq when the current input began.
    seq_at_input: Seq,
}

/// A job and what exists only while it does.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Live {
    record: JobRecord,
    sockets: BTreeMap<SocketId, Subscriber>,
    timers: Timers,
    throttle: Throttle,
    /// Remembered ids numbered below this are stored ([`JobRecord::remembered`]).
    written_ids: u64,
}

/// The seed's write throttle ([`PersistPolicy::SeedThrottled`]): what it
/// counts since the last write.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct Throttle {
    /// Updates not yet written.
    unpersisted: u32,
    last_persist: Millis,
}

impl Live {
    /// A job just written (created, or read back from storage) at `now`.
    fn new(record: JobRecord, now: Millis) -> Self {
        Self {
            written_ids: record.remembered,
            record,
            sockets: BTreeMap::new(),
            timers: Timers::default(),
            throttle: Throttle {
                unpersisted: 0,
                last_persist: now,
            },
        }
    }
}

/// The sockets of a room without a job.
static NO_SOCKETS: BTreeMap<SocketId, Subscriber> = BTreeMap::new();

impl Room {
    /// The job, if one exists.
    #[must_use]
    pub const fn job(&self) -> Option<&JobRecord> {
        match &self.live {
            Some(live) => Some(&live.record),
            None => None,
        }
    }

    fn job_mut(&mut self) -> Option<&mut JobRecord> {
        self.live.as_mut().map(|l| &mut l.record)
    }

    /// The live sockets (none without a job).
    fn sockets(&self) -> &BTreeMap<SocketId, Subscriber> {
        self.live.as_ref().map_or(&NO_SOCKETS, |l| &l.sockets)
    }

    fn socket_mut(&mut self, socket: SocketId) -> Option<&mut Subscriber> {
        self.live.as_mut()?.sockets.get_mut(&socket)
    }

    fn remove_socket(&mut self, socket: SocketId) -> Option<Subscriber> {
        self.live.as_mut()?.sockets.remove(&socket)
    }

    /// The config.
    #[must_use]
    pub const fn config(&self) -> &RoomConfig {
        &self.config
    }

    /// Live sockets and their client ids.
    pub fn live_sockets(&self) -> impl Iterator<Item = (SocketId, Option<&str>)> {
        self.sockets()
            .iter()
            .map(|(id, s)| (*id, s.attachment.client_id.as_deref()))
    }

    /// When a timer fires, if armed.
    #[must_use]
    pub fn timer(&self, t: Timer) -> Option<Millis> {
        self.live.as_ref().and_then(|l| l.timers.get(t))
    }

    /// The one entry point.
    pub fn handle(&mut self, now: Millis, input: Input) -> Vec<Effect> {
        let mut out = Vec::new();
        self.seq_at_input = self.job().map_or(Seq(0), |j| j.seq);
        match input {
            Input::Create {
                request,
                job_id,
                token_random,
                origin,
            } => {
                self.create(now, &request, job_id, token_random, &origin, &mut out);
            }
            Input::Upgrade { request, pings } => self.upgrade(now, request, &pings, &mut out),
            Input::Accepted { socket } => self.accepted(now, socket, &mut out),
            Input::AcceptFailed { socket } => {
                if self
                    .pending
                    .take_if(|p| p.attachment.socket == socket)
                    .is_some()
                {
                    out.push(log(Level::Warn, "accept_failed", Some(socket)));
                    out.push(Effect::Respond(HttpError::internal().into()));
                }
            }
            Input::Frame { socket, frame } => self.frame(now, socket, &frame, &mut out),
            Input::Closed { socket } => {
                if self.remove_socket(socket).is_some() {
                    out.push(log(Level::Info, "socket_closed", Some(socket)));
                }
            }
            Input::Events { body } => self.events(now, &body, &mut out),
            Input::Cancel { token } => {
                let r = self
                    .authorize(&token, now)
                    .and_then(|()| self.cancel(now, &mut out));
                out.push(Effect::Respond(match r {
                    Ok(()) => ok(
                        202,
                        &api::CancelResponse {
                            status: api::Canceled::Canceled,
                        },
                    ),
                    Err(e) => e.into(),
                }));
            }
            Input::JobState { token } => {
                let r = self.authorize(&token, now).and_then(|()| self.job_or_404());
                out.push(Effect::Respond(match r {
                    Ok(job) => ok(200, &job.state()),
                    Err(e) => e.into(),
                }));
            }
            Input::Inspect => out.push(Effect::Respond(match self.job_or_404() {
                Ok(job) => ok(200, &inspect(job)),
                Err(e) => e.into(),
            })),
            Input::Revoke => self.revoke(now, &mut out),
            Input::IssueToken { random } => self.issue_token(now, random, &mut out),
            Input::NotifyResult { attempt, status } => {
                self.notify_result(now, attempt, status, &mut out);
            }
            Input::Alarm { pings, random } => {
                // The runtime's alarm is spent once it fires, due timers or not.
                self.alarm = None;
                self.learn_pings(&pings);
                self.alarm(now, random, &mut out);
            }
        }
        self.rearm(now, &mut out);
        out
    }

    fn job_or_404(&self) -> Result<&JobRecord, HttpError> {
        self.job().ok_or_else(HttpError::job_not_found)
    }

    // --- lifecycle ---------------------------------------------------------

    // --- output helpers ----------------------------------------------------

    /// Writes the job according to the persist policy; `force` for changes the
    /// seed also wrote at once (terminal events, tokens).
    fn persist_update(&mut self, now: Millis, force: bool, out: &mut Vec<Effect>) {
        let Some(Live {
            record: job,
            throttle,
            written_ids,
            ..
        }) = self.live.as_mut()
        else {
            return;
        };
        let write = match self.config.persist {
            PersistPolicy::EveryRequest => true,
            PersistPolicy::SeedThrottled { every, interval } => {
                throttle.unpersisted += 1;
                force
                    || throttle.unpersisted >= every
                    || now.minus(throttle.last_persist) >= interval
            }
        };
        if write {
            // Inputs run one at a time and each finishes its sends, so every
            // event from before this input has been fanned out.
            job.delivered = job.delivered.max(self.seq_at_input);
            throttle.unpersisted = 0;
            throttle.last_persist = now;
            out.push(Effect::Persist(storage::write(job, *written_ids)));
            *written_ids = job.remembered;
        }
    }

    fn send(
        &mut self,
        now: Millis,
        header: &JobHeader,
        socket: SocketId,
        seq: Option<Seq>,
        msg: &ServerMessage,
        out: &mut Vec<Effect>,
    ) {
        self.broadcast(now, header, &[socket], seq, msg, out);
    }

    /// Sends one message to several sockets: encoded and measured once (SPEC §2
    /// size guard), however many sockets there are.
    fn broadcast(
        &mut self,
        now: Millis,
        header: &JobHeader,
        sockets: &[SocketId],
        seq: Option<Seq>,
        msg: &ServerMessage,
        out: &mut Vec<Effect>,
    ) {
        if sockets.is_empty() {
            return;
        }
        let text = protocol::encode(header, now, seq, msg);
        match check_outgoing(text.len()) {
            OutgoingSize::Ok => {}
            OutgoingSize::Large => out.push(Effect::Log(Log {
                level: Level::Warn,
                event: "large_frame",
                socket: None,
                seq,
                close_code: None,
                value: Some(text.len() as u64),
            })),
            OutgoingSize::TooBig => {
                let e = GatewayError::OutgoingTooBig { len: text.len() };
                let refusal = ServerMessage::Error {
                    code: "message_too_big".into(),
                    message: e.to_string(),
                    retryable: false,
                };
                let refusal = protocol::encode(header, now, None, &refusal);
                for &socket in sockets {
                    out.push(Effect::Send {
                        socket,
                        text: refusal.clone(),
                    });
                    self.close(socket, e.close_code(), &e.close_reason(), out);
                }
                return;
            }
        }
        for &socket in sockets {
            out.push(Effect::Send {
                socket,
                text: text.clone(),
            });
        }
    }

    fn close(&mut self, socket: SocketId, code: CloseCode, reason: &str, out: &mut Vec<Effect>) {
        self.remove_socket(socket);
        out.push(Effect::Log(Log {
            level: Level::Info,
            event: "socket_closing",
            socket: Some(socket),
            seq: self.job().map(|j| j.seq),
            close_code: Some(code),
            value: None,
        }));
        out.push(Effect::Close {
            socket,
            code,
            reason: reason.to_owned(),
        });
    }
}

fn close(socket: SocketId, e: &GatewayError) -> Effect {
    Effect::Close {
        socket,
        code: e.close_code(),
        reason: e.close_reason(),
    }
}

fn log(level: Level, event: &'static str, socket: Option<SocketId>) -> Effect {
    Effect::Log(Log {
        level,
        event,
        socket,
        seq: None,
        close_code: None,
        value: None,
    })
}

/// A success answer; its body is one of the contract's types ([`api`]).
fn ok(status: u16, body: &impl Serialize) -> Response {
    Response {
        status,
        // Strings, numbers, enums and valid raw JSON: encoding cannot fail.
        body: serde_json::to_string(body).unwrap_or_default(),
        retry_after: None,
    }
}
