//! The job room: one job, its tokens and all of its sockets (SPEC §1–§6).
//!
//! [`Room::handle`] takes the time and one [`Input`] and returns the
//! [`Effect`]s for the adapter to carry out, in order. A `Persist` always comes
//! before the sends and the HTTP answer that depend on it, so nothing a
//! producer was acknowledged for, and nothing a subscriber saw, can be lost.

use crate::error::{GatewayError, HttpError};
use crate::protocol::{
    self, check_outgoing, ClientMessage, CreateJob, EventKind, Incoming, JobHeader, JobStatus,
    OutgoingSize, Pipeline, Seq, ServerMessage, Snapshot,
};
use crate::timer::{Timer, Timers};
use crate::token::{Token, TokenSet, Verdict};
use crate::{CloseCode, Millis};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, VecDeque};

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
    /// How long an ended (or abandoned) job stays readable.
    pub retention: Millis,
    /// `Retry-After` for a 429.
    pub retry_after: Millis,
    /// How replaced sockets are closed.
    pub supersede: SupersedePolicy,
    /// When state is written.
    pub persist: PersistPolicy,
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
        }
    }
}

/// Where the job is, with the data that exists only there.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Phase {
    /// Created, not started.
    Pending,
    /// Running.
    Processing,
    /// Ended well.
    Completed {
        /// The producer's summary (JSON text).
        summary: String,
    },
    /// Ended badly.
    Failed {
        /// The producer's code.
        code: String,
        /// The producer's message.
        message: String,
    },
    /// Canceled by a subscriber.
    Canceled,
}

impl Phase {
    /// The wire status.
    #[must_use]
    pub const fn status(&self) -> JobStatus {
        match self {
            Self::Pending => JobStatus::Pending,
            Self::Processing => JobStatus::Processing,
            Self::Completed { .. } => JobStatus::Completed,
            Self::Failed { .. } => JobStatus::Failed,
            Self::Canceled => JobStatus::Canceled,
        }
    }

    /// The terminal frame and close code, for jobs that ended with an event.
    fn terminal(&self) -> Option<(ServerMessage, CloseCode)> {
        match self {
            Self::Completed { summary } => Some((
                ServerMessage::JobComplete {
                    summary: summary.clone(),
                },
                CloseCode::Completed,
            )),
            Self::Failed { code, message } => Some((
                ServerMessage::Error {
                    code: code.clone(),
                    message: message.clone(),
                    retryable: false,
                },
                CloseCode::JobFailed,
            )),
            _ => None,
        }
    }
}

/// Everything the room needs to restore itself: one storage record, so a cold
/// upgrade reads storage once (SPEC §6).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JobRecord {
    /// The job's id.
    pub job_id: String,
    /// Its pipeline.
    pub pipeline: Pipeline,
    /// Where it is.
    pub phase: Phase,
    /// Seq of the last job event.
    pub seq: Seq,
    /// Seq through which every live socket was sent its frames.
    pub delivered: Seq,
    /// Items done.
    pub processed_count: u64,
    /// Items in all, if known.
    pub total_count: Option<u64>,
    /// Latest `currentItem`.
    pub current_item: Option<String>,
    /// Latest `message`.
    pub message: Option<String>,
    /// Created.
    pub created_at: Millis,
    /// Last change.
    pub updated_at: Millis,
    /// When it ended.
    pub ended_at: Option<Millis>,
    /// Token hashes and expiries.
    pub tokens: TokenSet,
    /// The last applied event ids and their seqs, oldest first.
    pub applied: VecDeque<(String, Seq)>,
    /// Next socket id to hand out.
    pub next_socket: u64,
}

impl JobRecord {
    fn header(&self) -> JobHeader {
        JobHeader {
            job_id: self.job_id.clone(),
            pipeline: self.pipeline,
        }
    }

    fn snapshot(&self) -> Snapshot {
        Snapshot {
            status: self.phase.status(),
            processed_count: self.processed_count,
            total_count: self.total_count,
        }
    }

    /// Seq a snapshot carries: that of the last event before any terminal event.
    #[must_use]
    pub fn snapshot_seq(&self) -> Seq {
        match self.phase {
            Phase::Completed { .. } | Phase::Failed { .. } => Seq(self.seq.0.saturating_sub(1)),
            _ => self.seq,
        }
    }

    fn state_json(&self) -> serde_json::Value {
        let p = protocol::progress_ratio(self.processed_count, self.total_count);
        serde_json::json!({
            "jobId": self.job_id,
            "pipeline": self.pipeline,
            "seq": self.seq.0,
            "updatedAt": self.updated_at.0,
            "status": self.phase.status(),
            "processedCount": self.processed_count,
            "totalCount": self.total_count,
            "progress": p,
            "currentProgress": p,
        })
    }
}

/// Per-socket state kept by the runtime with the socket, so the room can be
/// rebuilt after hibernation (≤ 16 KiB).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Attachment {
    /// The socket.
    pub socket: SocketId,
    /// The subscriber's stable id, if it gave one.
    pub client_id: Option<String>,
    /// When it was accepted.
    pub connected_at: Millis,
    /// When its last frame reached the room (literal pings never do; the
    /// runtime keeps their time instead).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_frame: Option<Millis>,
}

/// A socket the runtime kept while the room's memory was gone.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct KeptSocket {
    /// Its attachment.
    pub attachment: Attachment,
    /// When the runtime last answered its literal ping, if it ever did.
    pub last_auto_response: Option<Millis>,
}

/// What the runtime keeps of a room while its memory is gone (hibernation or
/// eviction): everything [`Room::restore`] rebuilds it from.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Kept {
    /// The stored record.
    pub record: Option<JobRecord>,
    /// The stored delivered mark ([`Effect::MarkDelivered`]).
    pub delivered: Option<Seq>,
    /// The sockets that are still open (never those the room closed).
    pub sockets: Vec<KeptSocket>,
    /// The alarm, if one is set.
    pub alarm: Option<Millis>,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Subscriber {
    attachment: Attachment,
    /// The last sign of life the room knows of: its accept, its last frame,
    /// or its last auto-answered ping as the runtime reported it.
    last_active: Millis,
    /// Arrival times of recent frames, for the rate limit.
    recent: VecDeque<Millis>,
}

/// An upgrade the room said yes to, waiting for the runtime's accept.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct PendingAccept {
    attachment: Attachment,
    last_seq: Option<Seq>,
}

/// A validated upgrade request (SPEC §1); built by [`crate::http::parse_upgrade`].
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
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
    /// Write the record; await it before carrying out the next effect.
    Persist(JobRecord),
    /// Write the delivered mark (a small key of its own): every socket was
    /// sent everything through this seq. Need not be awaited; if it is lost,
    /// the next wake only sends a redundant snapshot.
    MarkDelivered(Seq),
    /// Delete everything stored for the job.
    Forget,
    /// Set (or, with `None`, delete) the one alarm.
    SetAlarm(Option<Millis>),
    /// Log.
    Log(Log),
}

/// The job room machine.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Room {
    config: RoomConfig,
    job: Option<JobRecord>,
    sockets: BTreeMap<SocketId, Subscriber>,
    pending: Option<PendingAccept>,
    timers: Timers,
    alarm: Option<Millis>,
    /// Updates not yet written (seed throttle only).
    unpersisted: u32,
    last_persist: Millis,
    /// The job's seq when the current input began.
    seq_at_input: Seq,
}

impl Room {
    /// The only way to build a room: from what the runtime kept (nothing, for
    /// a room that never stored a job). Deadlines come from what was kept
    /// (stored times, attachments, auto-response times), never from `now`;
    /// the effects (a catch-up, a moved alarm) come first.
    #[must_use]
    pub fn restore(config: RoomConfig, now: Millis, kept: Kept) -> (Self, Vec<Effect>) {
        let mut room = Self {
            config,
            job: None,
            sockets: BTreeMap::new(),
            pending: None,
            timers: Timers::default(),
            alarm: kept.alarm,
            unpersisted: 0,
            last_persist: now,
            seq_at_input: Seq(0),
        };
        let mut out = Vec::new();
        let Some(mut job) = kept.record else {
            for s in kept.sockets {
                out.push(close(s.attachment.socket, &GatewayError::Internal));
            }
            room.rearm(now, &mut out);
            return (room, out);
        };
        job.delivered = job.delivered.max(kept.delivered.unwrap_or_default());
        for s in kept.sockets {
            let a = s.attachment;
            job.next_socket = job.next_socket.max(a.socket.0.saturating_add(1));
            let last_active = a
                .last_frame
                .into_iter()
                .chain(s.last_auto_response)
                .fold(a.connected_at, Millis::max);
            room.sockets.insert(
                a.socket,
                Subscriber {
                    attachment: a,
                    last_active,
                    recent: VecDeque::new(),
                },
            );
        }
        let seq = job.seq;
        let behind = job.delivered < seq;
        job.delivered = seq;
        room.seq_at_input = seq;
        room.job = Some(job);
        if behind {
            // Evicted between a write and its fan-out: the sockets may have
            // missed events, so they get the catch-up a new socket would.
            let ids: Vec<SocketId> = room.sockets.keys().copied().collect();
            for id in ids {
                room.catch_up(now, id, None, &mut out);
            }
            out.push(Effect::MarkDelivered(seq));
        }
        room.rearm(now, &mut out);
        (room, out)
    }

    /// The job, if one exists.
    #[must_use]
    pub const fn job(&self) -> Option<&JobRecord> {
        self.job.as_ref()
    }

    /// The config.
    #[must_use]
    pub const fn config(&self) -> &RoomConfig {
        &self.config
    }

    /// Live sockets and their client ids.
    pub fn live_sockets(&self) -> impl Iterator<Item = (SocketId, Option<&str>)> {
        self.sockets
            .iter()
            .map(|(id, s)| (*id, s.attachment.client_id.as_deref()))
    }

    /// When a timer fires, if armed.
    #[must_use]
    pub fn timer(&self, t: Timer) -> Option<Millis> {
        self.timers.get(t)
    }

    /// The one entry point.
    pub fn handle(&mut self, now: Millis, input: Input) -> Vec<Effect> {
        let mut out = Vec::new();
        self.seq_at_input = self.job.as_ref().map_or(Seq(0), |j| j.seq);
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
                if self.sockets.remove(&socket).is_some() {
                    out.push(log(Level::Info, "socket_closed", Some(socket)));
                }
            }
            Input::Events { body } => self.events(now, &body, &mut out),
            Input::Cancel { token } => {
                let r = self
                    .authorize(&token, now)
                    .and_then(|()| self.cancel(now, &mut out));
                out.push(Effect::Respond(match r {
                    Ok(()) => ok(202, &serde_json::json!({ "status": "canceled" })),
                    Err(e) => e.into(),
                }));
            }
            Input::JobState { token } => {
                let r = self.authorize(&token, now).and_then(|()| self.job_or_404());
                out.push(Effect::Respond(match r {
                    Ok(job) => ok(200, &job.state_json()),
                    Err(e) => e.into(),
                }));
            }
            Input::Inspect => out.push(Effect::Respond(match self.job_or_404() {
                Ok(job) => ok(200, &inspect_json(job)),
                Err(e) => e.into(),
            })),
            Input::Revoke => self.revoke(now, &mut out),
            Input::IssueToken { random } => self.issue_token(now, random, &mut out),
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
        self.job.as_ref().ok_or_else(HttpError::job_not_found)
    }

    fn authorize(&self, token: &str, now: Millis) -> Result<(), HttpError> {
        let job = self.job_or_404()?;
        match job.tokens.verify(token, now) {
            Verdict::Valid(_) => Ok(()),
            Verdict::Invalid => Err(HttpError::unauthorized(
                "token is wrong, revoked or expired; get a new one from your backend",
            )),
        }
    }

    // --- lifecycle ---------------------------------------------------------

    fn create(
        &mut self,
        now: Millis,
        req: &CreateJob,
        job_id: String,
        token_random: [u8; 16],
        origin: &str,
        out: &mut Vec<Effect>,
    ) {
        if self.job.is_some() {
            out.push(Effect::Respond(
                HttpError::new(
                    409,
                    "job_exists",
                    "a job with this jobId exists; choose another jobId",
                )
                .into(),
            ));
            return;
        }
        let mut tokens = TokenSet::new(req.ttl);
        let (token, expires_at) = tokens.issue(now, token_random);
        let job = JobRecord {
            job_id,
            pipeline: req.pipeline,
            phase: Phase::Pending,
            seq: Seq(0),
            delivered: Seq(0),
            processed_count: 0,
            total_count: req.total_count,
            current_item: None,
            message: None,
            created_at: now,
            updated_at: now,
            ended_at: None,
            tokens,
            applied: VecDeque::new(),
            next_socket: 0,
        };
        let ws_origin = origin
            .replacen("https://", "wss://", 1)
            .replacen("http://", "ws://", 1);
        let body = serde_json::json!({
            "jobId": job.job_id,
            "token": token.expose(),
            "expiresAt": expires_at.0,
            "wsUrl": format!("{ws_origin}/ws/progress?jobId={}", job.job_id),
            "stateUrl": format!("{origin}/api/job-state/{}", job.job_id),
        });
        self.persist_now(now, &job, out);
        self.job = Some(job);
        out.push(Effect::Respond(ok(202, &body)));
    }

    fn upgrade(
        &mut self,
        now: Millis,
        up: Upgrade,
        pings: &[(SocketId, Millis)],
        out: &mut Vec<Effect>,
    ) {
        let refuse = |out: &mut Vec<Effect>, e: HttpError| {
            out.push(Effect::Log(Log {
                level: Level::Info,
                event: "upgrade_refused",
                socket: None,
                seq: None,
                close_code: None,
                value: Some(u64::from(e.status)),
            }));
            out.push(Effect::Respond(e.into()));
        };
        let Some(job) = &self.job else {
            return refuse(out, HttpError::job_not_found());
        };
        if let Verdict::Invalid = job.tokens.verify(&up.token, now) {
            return refuse(
                out,
                HttpError::unauthorized(
                    "token is wrong, revoked or expired; get a new one from your backend",
                ),
            );
        }
        self.learn_pings(pings);
        if self.others(up.client_id.as_deref()) >= self.config.max_sockets {
            // Zombies must not hold the last slots: sweep before refusing.
            self.sweep(now, out);
        }
        let others = self.others(up.client_id.as_deref());
        if others >= self.config.max_sockets {
            let mut e = HttpError::new(
                429,
                "too_many_sockets",
                format!("this job already has {others} sockets; retry later or close one"),
            );
            e.retry_after = Some(self.config.retry_after.ceil_secs());
            return refuse(out, e);
        }
        let Some(job) = &mut self.job else { return };
        // Ids grow with the clock as well as the counter, so a room restored from
        // a record older than its last accept never hands out a live id again.
        let socket = SocketId(job.next_socket.max(now.0.saturating_mul(SOCKET_IDS_PER_MS)));
        job.next_socket = socket.0.saturating_add(1);
        let attachment = Attachment {
            socket,
            client_id: up.client_id,
            connected_at: now,
            last_frame: None,
        };
        // Nothing changes (no supersede, no slot taken) until the runtime
        // has accepted the socket.
        self.pending = Some(PendingAccept {
            attachment: attachment.clone(),
            last_seq: up.last_seq,
        });
        out.push(Effect::Accept { socket, attachment });
    }

    /// Sockets that count against the cap for a new socket of `client_id`
    /// (its own older socket is about to be replaced).
    fn others(&self, client_id: Option<&str>) -> usize {
        self.sockets.len() - usize::from(self.socket_of(client_id).is_some())
    }

    fn socket_of(&self, client_id: Option<&str>) -> Option<SocketId> {
        let cid = client_id?;
        self.sockets
            .iter()
            .find(|(_, s)| s.attachment.client_id.as_deref() == Some(cid))
            .map(|(id, _)| *id)
    }

    /// The runtime accepted the socket: now it replaces the older socket of
    /// its `clientId` and gets its catch-up.
    fn accepted(&mut self, now: Millis, socket: SocketId, out: &mut Vec<Effect>) {
        let Some(pending) = self.pending.take_if(|p| p.attachment.socket == socket) else {
            // Not an accept this room asked for.
            return out.push(close(socket, &GatewayError::Internal));
        };
        if self.job.is_none() {
            return out.push(close(socket, &GatewayError::Internal));
        }
        if let Some(old) = self.socket_of(pending.attachment.client_id.as_deref()) {
            self.sockets.remove(&old);
            let (code, reason) = match self.config.supersede {
                SupersedePolicy::Spec => (
                    GatewayError::Superseded.close_code(),
                    GatewayError::Superseded.close_reason(),
                ),
                SupersedePolicy::SeedClose1000 => {
                    (CloseCode::Completed, "Client reconnecting".to_owned())
                }
            };
            out.push(Effect::Log(Log {
                level: Level::Info,
                event: "socket_superseded",
                socket: Some(old),
                seq: None,
                close_code: Some(code),
                value: Some(socket.0),
            }));
            out.push(Effect::Close {
                socket: old,
                code,
                reason,
            });
        }
        out.push(log(Level::Info, "socket_accepted", Some(socket)));
        self.sockets.insert(
            socket,
            Subscriber {
                attachment: pending.attachment,
                last_active: now,
                recent: VecDeque::new(),
            },
        );
        self.catch_up(now, socket, pending.last_seq, out);
    }

    /// The first frames of a socket (SPEC §2): snapshot, then the end if any.
    fn catch_up(
        &mut self,
        now: Millis,
        socket: SocketId,
        last_seq: Option<Seq>,
        out: &mut Vec<Effect>,
    ) {
        let Some(job) = &self.job else { return };
        let header = job.header();
        let snapshot = ServerMessage::Snapshot {
            resumed: last_seq.is_some(),
            recovered: last_seq.is_some_and(|l| l <= job.seq),
            state: job.snapshot(),
        };
        let snapshot_seq = job.snapshot_seq();
        let seq = job.seq;
        let phase = job.phase.clone();
        self.send(now, &header, socket, Some(snapshot_seq), &snapshot, out);
        if let Some((msg, code)) = phase.terminal() {
            self.send(now, &header, socket, Some(seq), &msg, out);
            self.close(socket, code, "job ended", out);
        } else if phase == Phase::Canceled {
            self.close(socket, CloseCode::Canceled, "job canceled", out);
        }
    }

    fn frame(&mut self, now: Millis, socket: SocketId, frame: &WireFrame, out: &mut Vec<Effect>) {
        let window = self.config.rate_window;
        let limit = self.config.rate_limit;
        let Some(sub) = self.sockets.get_mut(&socket) else {
            return;
        };
        sub.last_active = now;
        // Kept with the socket, so a hibernated room still knows it.
        sub.attachment.last_frame = Some(now);
        out.push(Effect::Attach {
            socket,
            attachment: sub.attachment.clone(),
        });
        sub.recent.push_back(now);
        while sub.recent.front().is_some_and(|&t| now.minus(t) >= window) {
            sub.recent.pop_front();
        }
        if sub.recent.len() > limit {
            let e = GatewayError::from(crate::FrameError::RateLimited);
            return self.close(socket, e.close_code(), &e.close_reason(), out);
        }
        let parsed = protocol::parse_client_frame(match frame {
            WireFrame::Text(t) => Incoming::Text(t),
            WireFrame::Binary(n) => Incoming::Binary(*n),
        });
        let Some(header) = self.job.as_ref().map(JobRecord::header) else {
            return self.close(socket, CloseCode::InternalError, "job not found", out);
        };
        match parsed {
            Err(e) => {
                let e = GatewayError::from(e);
                self.close(socket, e.close_code(), &e.close_reason(), out);
            }
            Ok(ClientMessage::Ping) => {
                self.send(now, &header, socket, None, &ServerMessage::Pong, out);
            }
            Ok(ClientMessage::Cancel) => {
                // A socket only lives while the job runs, so this cannot be refused.
                let _ = self.cancel(now, out);
            }
            Ok(ClientMessage::Unknown { type_name }) => {
                let msg = ServerMessage::Error {
                    code: "unknown_type".into(),
                    message: format!("unknown message type {type_name:?}; this socket stays open"),
                    retryable: false,
                };
                self.send(now, &header, socket, None, &msg, out);
            }
        }
    }

    fn events(&mut self, now: Millis, body: &[u8], out: &mut Vec<Effect>) {
        let job = match self.job_or_404() {
            Ok(j) => j,
            Err(e) => return out.push(Effect::Respond(e.into())),
        };
        if job.phase.status().is_terminal() {
            return out.push(Effect::Respond(HttpError::job_ended().into()));
        }
        let events = match protocol::parse_producer_body(body) {
            Ok(e) => e,
            Err(e) => return out.push(Effect::Respond(e.into())),
        };
        // Validate the whole batch before applying any of it.
        let mut processed = job.processed_count;
        let mut ended = false;
        let mut batch_ids: Vec<&str> = Vec::new();
        for (i, e) in events.iter().enumerate() {
            if let Some(id) = e.event_id.as_deref() {
                if batch_ids.contains(&id) || job.applied.iter().any(|(a, _)| a == id) {
                    continue;
                }
                batch_ids.push(id);
            }
            if ended {
                return out.push(Effect::Respond(
                    HttpError::new(
                        422,
                        "event_after_end",
                        format!("event {i} follows a terminal event in the same request"),
                    )
                    .into(),
                ));
            }
            if let EventKind::Progress {
                processed_count, ..
            } = e.kind
            {
                if processed_count < processed {
                    return out.push(Effect::Respond(
                        HttpError::new(
                            422,
                            "processed_count_decreased",
                            format!("event {i}: processedCount {processed_count} is below {processed}; it may not decrease"),
                        )
                        .into(),
                    ));
                }
                processed = processed_count;
            }
            ended |= e.kind.is_terminal();
        }
        let Some(job) = self.job.as_mut() else { return };
        let header = job.header();
        let mut last_seq = job.seq;
        let mut fanout: Vec<(Seq, ServerMessage)> = Vec::new();
        for e in events {
            if let Some(id) = e.event_id.as_deref() {
                if let Some((_, s)) = job.applied.iter().find(|(a, _)| a == id) {
                    last_seq = *s;
                    continue;
                }
            }
            job.seq = job.seq.next();
            last_seq = job.seq;
            let msg = match e.kind {
                EventKind::Started {
                    total_count,
                    message,
                } => {
                    job.phase = Phase::Processing;
                    if total_count.is_some() {
                        job.total_count = total_count;
                    }
                    job.message.clone_from(&message);
                    ServerMessage::JobStarted {
                        total_count: job.total_count,
                        message,
                    }
                }
                EventKind::Progress {
                    processed_count,
                    total_count,
                    current_item,
                    message,
                } => {
                    job.phase = Phase::Processing;
                    job.processed_count = processed_count;
                    if total_count.is_some() {
                        job.total_count = total_count;
                    }
                    job.current_item.clone_from(&current_item);
                    job.message.clone_from(&message);
                    ServerMessage::JobProgress {
                        processed_count,
                        total_count: job.total_count,
                        current_item,
                        message,
                    }
                }
                EventKind::Complete { summary } => {
                    job.phase = Phase::Completed {
                        summary: summary.clone(),
                    };
                    job.ended_at = Some(now);
                    ServerMessage::JobComplete { summary }
                }
                EventKind::Failed { code, message } => {
                    job.phase = Phase::Failed {
                        code: code.clone(),
                        message: message.clone(),
                    };
                    job.ended_at = Some(now);
                    ServerMessage::Error {
                        code,
                        message,
                        retryable: false,
                    }
                }
            };
            if let Some(id) = e.event_id {
                job.applied.push_back((id, job.seq));
                while job.applied.len() > REMEMBERED_EVENT_IDS {
                    job.applied.pop_front();
                }
            }
            job.updated_at = now;
            fanout.push((job.seq, msg));
        }
        let terminal = job.phase.terminal().map(|(_, code)| code);
        let seq = job.seq;
        if !fanout.is_empty() {
            self.persist_update(now, terminal.is_some(), out);
        }
        let ids: Vec<SocketId> = self.sockets.keys().copied().collect();
        for (seq, msg) in &fanout {
            self.broadcast(now, &header, &ids, Some(*seq), msg, out);
        }
        if let Some(code) = terminal {
            for id in ids {
                self.close(id, code, "job ended", out);
            }
        }
        if !fanout.is_empty() {
            // The fan-out is done: a wake need not catch the sockets up.
            out.push(Effect::MarkDelivered(seq));
        }
        out.push(Effect::Respond(ok(
            202,
            &serde_json::json!({ "seq": last_seq.0 }),
        )));
    }

    fn cancel(&mut self, now: Millis, out: &mut Vec<Effect>) -> Result<(), HttpError> {
        let job = self.job.as_mut().ok_or_else(HttpError::job_not_found)?;
        if job.phase.status().is_terminal() {
            return Err(HttpError::job_ended());
        }
        job.phase = Phase::Canceled;
        job.ended_at = Some(now);
        job.updated_at = now;
        self.persist_update(now, true, out);
        let ids: Vec<SocketId> = self.sockets.keys().copied().collect();
        for id in ids {
            self.close(id, CloseCode::Canceled, "job canceled", out);
        }
        Ok(())
    }

    fn revoke(&mut self, now: Millis, out: &mut Vec<Effect>) {
        let Some(job) = self.job.as_mut() else {
            return out.push(Effect::Respond(HttpError::job_not_found().into()));
        };
        job.tokens.revoke_all();
        job.updated_at = now;
        self.persist_update(now, true, out);
        let ids: Vec<SocketId> = self.sockets.keys().copied().collect();
        for id in ids {
            let e = GatewayError::Revoked;
            self.close(id, e.close_code(), &e.close_reason(), out);
        }
        out.push(Effect::Respond(ok(
            202,
            &serde_json::json!({ "revoked": true }),
        )));
    }

    fn alarm(&mut self, now: Millis, random: [u8; 16], out: &mut Vec<Effect>) {
        let mut due = self.timers.take_due(now);
        // The sweep's deadline moves with pings the room learns only now, so
        // every alarm sweeps: the alarm may have been set for it.
        if !self.sockets.is_empty() && !due.contains(&Timer::IdleSweep) {
            due.push(Timer::IdleSweep);
        }
        for timer in due {
            out.push(Effect::Log(Log {
                level: Level::Info,
                event: TIMER_FIRED,
                socket: None,
                seq: None,
                close_code: None,
                value: Timer::ALL
                    .iter()
                    .position(|t| *t == timer)
                    .map(|i| i as u64),
            }));
            match timer {
                Timer::Cleanup => {
                    let ids: Vec<SocketId> = self.sockets.keys().copied().collect();
                    for id in ids {
                        self.close(id, CloseCode::Restarting, "job expired", out);
                    }
                    self.job = None;
                    out.push(Effect::Forget);
                    out.push(log(Level::Info, "job_forgotten", None));
                }
                Timer::TokenRefresh => self.refresh_token(now, random, out),
                Timer::IdleSweep => self.sweep(now, out),
            }
        }
    }

    /// What the runtime knows of literal pings the room never saw.
    fn learn_pings(&mut self, pings: &[(SocketId, Millis)]) {
        for (id, at) in pings {
            if let Some(s) = self.sockets.get_mut(id) {
                s.last_active = s.last_active.max(*at);
            }
        }
    }

    /// Closes (4002) every socket silent for more than 2 × the ping interval.
    fn sweep(&mut self, now: Millis, out: &mut Vec<Effect>) {
        let limit = Millis(self.config.ping_interval.0.saturating_mul(2));
        let idle: Vec<SocketId> = self
            .sockets
            .iter()
            .filter(|(_, s)| now.minus(s.last_active) > limit)
            .map(|(id, _)| *id)
            .collect();
        for id in idle {
            let e = GatewayError::Idle;
            self.close(id, e.close_code(), &e.close_reason(), out);
        }
    }

    /// A new token on the producer's request (e.g. after a revoke).
    fn issue_token(&mut self, now: Millis, random: [u8; 16], out: &mut Vec<Effect>) {
        let Some((token, expires_at)) = self.hand_out_token(now, random, out) else {
            return out.push(Effect::Respond(HttpError::job_not_found().into()));
        };
        let job_id = self.job.as_ref().map(|j| j.job_id.clone());
        let body = serde_json::json!({
            "jobId": job_id,
            "token": token.expose(),
            "expiresAt": expires_at.0,
        });
        out.push(Effect::Respond(ok(202, &body)));
    }

    fn refresh_token(&mut self, now: Millis, random: [u8; 16], out: &mut Vec<Effect>) {
        let Some(job) = self.job.as_ref() else { return };
        if job.tokens.issued.is_empty() || job.phase.status().is_terminal() {
            return; // revoked tokens stay revoked; ended jobs need no new ones
        }
        self.hand_out_token(now, random, out);
        out.push(log(Level::Info, "token_refreshed", None));
    }

    /// Issues a token, writes it (as a hash), and sends it to every live socket
    /// as `token_refresh`, so none is left holding only a dropped or expiring
    /// token. `None` if there is no job.
    fn hand_out_token(
        &mut self,
        now: Millis,
        random: [u8; 16],
        out: &mut Vec<Effect>,
    ) -> Option<(Token, Millis)> {
        let job = self.job.as_mut()?;
        let (token, expires_at) = job.tokens.issue(now, random);
        let header = job.header();
        self.persist_update(now, true, out);
        let msg = ServerMessage::TokenRefresh {
            token: token.expose().to_owned(),
            expires_at,
        };
        let ids: Vec<SocketId> = self.sockets.keys().copied().collect();
        self.broadcast(now, &header, &ids, None, &msg, out);
        Some((token, expires_at))
    }

    /// Recomputes every timer from state and moves the alarm if it changed.
    fn rearm(&mut self, now: Millis, out: &mut Vec<Effect>) {
        let live = !self.sockets.is_empty();
        match &self.job {
            None => self.timers = Timers::default(),
            Some(job) => {
                let running = !job.phase.status().is_terminal();
                match job.tokens.refresh_due_at() {
                    Some(at) if live && running => {
                        self.timers.set(Timer::TokenRefresh, at.max(now));
                    }
                    _ => self.timers.clear(Timer::TokenRefresh),
                }
                // A socket silent since `oldest` is idle after 2 intervals
                // and must be closed within one more: one wake per 2 to 3
                // intervals, not one per interval.
                match self.sockets.values().map(|s| s.last_active).min() {
                    Some(oldest) => {
                        let within = Millis(self.config.ping_interval.0.saturating_mul(3));
                        self.timers.set(Timer::IdleSweep, oldest.plus(within));
                    }
                    None => self.timers.clear(Timer::IdleSweep),
                }
                let since = job.ended_at.unwrap_or(job.updated_at);
                self.timers
                    .set(Timer::Cleanup, since.plus(self.config.retention));
            }
        }
        let next = self.timers.next();
        if next != self.alarm {
            self.alarm = next;
            out.push(Effect::SetAlarm(next));
        }
    }

    // --- output helpers ----------------------------------------------------

    fn persist_now(&mut self, now: Millis, job: &JobRecord, out: &mut Vec<Effect>) {
        self.unpersisted = 0;
        self.last_persist = now;
        out.push(Effect::Persist(job.clone()));
    }

    /// Writes the job according to the persist policy; `force` for changes the
    /// seed also wrote at once (terminal events, tokens).
    fn persist_update(&mut self, now: Millis, force: bool, out: &mut Vec<Effect>) {
        let Some(job) = self.job.as_mut() else { return };
        let write = match self.config.persist {
            PersistPolicy::EveryRequest => true,
            PersistPolicy::SeedThrottled { every, interval } => {
                self.unpersisted += 1;
                force || self.unpersisted >= every || now.minus(self.last_persist) >= interval
            }
        };
        if write {
            // Inputs run one at a time and each finishes its sends, so every
            // event from before this input has been fanned out.
            job.delivered = job.delivered.max(self.seq_at_input);
            let job = job.clone();
            self.persist_now(now, &job, out);
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
        self.sockets.remove(&socket);
        out.push(Effect::Log(Log {
            level: Level::Info,
            event: "socket_closing",
            socket: Some(socket),
            seq: self.job.as_ref().map(|j| j.seq),
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

fn ok(status: u16, body: &serde_json::Value) -> Response {
    Response {
        status,
        body: body.to_string(),
        retry_after: None,
    }
}

fn inspect_json(job: &JobRecord) -> serde_json::Value {
    let mut v = job.state_json();
    let result = match &job.phase {
        Phase::Completed { summary } => serde_json::json!({
            "summary": serde_json::from_str::<serde_json::Value>(summary).unwrap_or(serde_json::Value::Null)
        }),
        Phase::Failed { code, message } => {
            serde_json::json!({"error": {"code": code, "message": message}})
        }
        _ => serde_json::Value::Null,
    };
    if let Some(o) = v.as_object_mut() {
        o.insert("result".into(), result);
        o.insert("createdAt".into(), job.created_at.0.into());
        o.insert(
            "endedAt".into(),
            job.ended_at.map_or(serde_json::Value::Null, |t| t.0.into()),
        );
        o.insert("currentItem".into(), job.current_item.clone().into());
        o.insert("message".into(), job.message.clone().into());
    }
    v
}
