//! Test machinery of the progress gateway, kept out of the production core
//! (as rustls keeps its test support in a crate of its own): the simulation
//! below, the SPEC §7 invariants it checks ([`invariants`]) and, behind the
//! `fuzzing` feature, the entry points and script languages of the cargo-fuzz
//! targets (`fuzzing`). It drives `gateway-core` through its public API only.
//!
//! A deterministic simulation of one room, several clients and the network
//! between them, on a virtual clock (after quinn-proto's `Pair`). It plays the
//! Durable Object runtime's part: it hibernates the room whenever
//! [`HIBERNATE_AFTER`] passes without an event (memory dropped; storage, the
//! alarm, the sockets with their attachments and last auto-response times
//! kept) and rebuilds it on the next event; it answers the literal ping
//! without waking the room; it keeps sockets the room closed listed until
//! their client's close arrives. Every step is checked against
//! [`crate::invariants`]; a violation panics unless the simulation was made
//! with [`Sim::recording`] (the model and the seed-policy tests).

#[cfg(feature = "fuzzing")]
pub mod fuzzing;
pub mod invariants;
mod watchdog;

pub use watchdog::CORE_CALL_LIMIT;

use crate::invariants::{SocketLog, SubscriberWatch, Violation};
use gateway_core::api::{CreateJobResponse, EventsResponse};
use gateway_core::client::{self, Client, ClientConfig};
use gateway_core::entropy::Entropy;
use gateway_core::protocol::{
    self, CreateJob, Pipeline, Seq, DEFAULT_TTL_SECS, LITERAL_PING, LITERAL_PONG,
};
use gateway_core::room::{
    self, Attachment, Effect, Input, JobRecord, Kept, KeptSocket, Response, Room, RoomConfig,
    SocketId, WireFrame,
};
use gateway_core::timer::Timer;
use gateway_core::token::Token;
use gateway_core::{CloseCode, Millis};
use std::collections::{BTreeMap, VecDeque};

/// The job id every simulation uses.
pub const JOB_ID: &str = "sim-job";

/// Timer firings at one virtual instant past which [`Sim::advance`] reports a
/// timer that never moves on (and stops), instead of looping forever.
pub const MAX_FIRINGS_AT_ONE_INSTANT: u32 = 1_000;

/// How long the runtime keeps a room without events in memory.
pub const HIBERNATE_AFTER: Millis = Millis(10_000);

/// Something on the wire.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Packet {
    /// An upgrade request from a client.
    Upgrade {
        /// Which client.
        client: usize,
        /// What it asks for.
        params: client::ConnectParams,
    },
    /// A text frame from the room to a socket's client.
    Down {
        /// The socket.
        socket: SocketId,
        /// The frame.
        text: String,
    },
    /// A close frame from the room.
    DownClose {
        /// The socket.
        socket: SocketId,
        /// The code.
        code: CloseCode,
    },
    /// A text frame from a client.
    Up {
        /// The socket.
        socket: SocketId,
        /// The frame.
        text: String,
    },
    /// The room learns that a socket closed.
    UpClosed {
        /// The socket.
        socket: SocketId,
    },
}

/// A socket as the runtime holds it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct RuntimeSocket {
    attachment: Attachment,
    client: usize,
    /// The runtime's last auto-response (a literal ping answered).
    last_ping: Option<Millis>,
    /// Open; `false` once the room closed it (still listed until the
    /// client's close frame arrives).
    open: bool,
    /// The last frame the client sent on it (or its accept): what the idle
    /// property is judged on.
    active_at: Millis,
}

/// What happened to the room so far (cleared by the model after each step).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct SimStats {
    /// Times the room was rebuilt from storage.
    pub restores: u32,
    /// Alarms the runtime fired.
    pub alarms: u32,
    /// Alarms that fired on a hibernated (or evicted) room.
    pub cold_alarms: u32,
    /// Hibernations with live sockets.
    pub hibernations_with_sockets: u32,
    /// Record writes.
    pub writes: u32,
    /// Alarm writes (sets and deletes).
    pub alarm_writes: u32,
    /// Keys the record writes wrote.
    pub written_keys: u32,
    /// Bytes (keys and values) the record writes wrote.
    pub written_bytes: u64,
    /// Sockets superseded by a newer one of their `clientId`.
    pub supersedes: u32,
    /// Sockets the room closed as idle (4002).
    pub idle_closes: u32,
    /// `reconnected` snapshots with `recovered:true` received.
    pub recovered_resumes: u32,
}

/// How the simulated producer answers one callback attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum NotifyAnswer {
    /// An HTTP status.
    Status(u16),
    /// No answer within the timeout (or a network error).
    Timeout,
    /// The instance is lost while the attempt runs: no result reaches the room.
    Lost,
}

/// A callback attempt the room asked for.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct SimNotify {
    /// When it was sent.
    pub at: Millis,
    /// To.
    pub url: String,
    /// The JSON body.
    pub body: String,
    /// The attempt number.
    pub attempt: u32,
}

/// One simulated subscriber.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct SimClient {
    /// Its machine.
    pub machine: Client,
    /// Its current socket, if connected.
    pub socket: Option<SocketId>,
    timer: Option<Millis>,
    watch: SubscriberWatch,
}

/// The simulation.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Sim {
    /// Virtual time.
    pub now: Millis,
    /// The room while it is in memory; `None` while hibernated or evicted.
    room: Option<Room>,
    room_config: RoomConfig,
    /// Time of the room's last event (hibernation starts from it).
    last_event: Millis,
    /// The stored keys and values (what survives eviction), laid out as
    /// [`room::storage`] says; each record write replaces its keys at once.
    pub stored: BTreeMap<String, String>,
    /// The record [`Sim::stored`] holds (read back after each write).
    pub storage: Option<JobRecord>,
    /// The stored delivered mark.
    pub delivered_mark: Option<Seq>,
    runtime: BTreeMap<SocketId, RuntimeSocket>,
    alarm: Option<Millis>,
    /// The room's timers the alarm stands for (bit per `Timer::ALL` index).
    alarm_for: u8,
    /// Timers the room reported fired during the current alarm.
    fired: u8,
    /// The clients.
    pub clients: Vec<SimClient>,
    /// Packets in flight, oldest first.
    pub net: VecDeque<Packet>,
    /// What each socket received.
    pub logs: BTreeMap<SocketId, SocketLog>,
    /// Highest seq a producer was acknowledged for.
    pub acked: Seq,
    /// Every broken invariant, in order.
    pub violations: Vec<Violation>,
    /// The job's first token.
    pub token: Option<(Token, Millis)>,
    /// The next accept fails (the runtime refuses the socket).
    pub fail_next_accept: bool,
    /// Counters of what the runtime did.
    pub stats: SimStats,
    /// The `callbackUrl` [`Sim::create_job`] sends.
    pub callback_url: Option<String>,
    /// Every callback attempt, in order.
    pub notifies: Vec<SimNotify>,
    /// How the next callback attempts are answered, in order; once empty,
    /// every attempt answers 200.
    pub notify_answers: VecDeque<NotifyAnswer>,
    strict: bool,
    rng: Entropy,
}

impl Sim {
    /// A fresh room (restored from empty storage) at time `start`.
    #[must_use]
    pub fn new(room_config: RoomConfig, start: Millis, seed: u64) -> Self {
        let mut sim = Self {
            now: start,
            room: None,
            room_config,
            last_event: start,
            stored: BTreeMap::new(),
            storage: None,
            delivered_mark: None,
            runtime: BTreeMap::new(),
            alarm: None,
            alarm_for: 0,
            fired: 0,
            clients: Vec::new(),
            net: VecDeque::new(),
            logs: BTreeMap::new(),
            acked: Seq(0),
            violations: Vec::new(),
            token: None,
            fail_next_accept: false,
            stats: SimStats::default(),
            callback_url: None,
            notifies: Vec::new(),
            notify_answers: VecDeque::new(),
            strict: true,
            rng: Entropy::from_seed(seed.to_le_bytes()),
        };
        sim.wake();
        sim
    }

    /// Records violations in [`Sim::violations`] instead of panicking (the
    /// model, and tests that show what a seed policy breaks).
    #[must_use]
    pub const fn recording(mut self) -> Self {
        self.strict = false;
        self
    }

    fn violated(&mut self, v: Violation) {
        assert!(!self.strict, "{v} (at {})", self.now);
        if !self.violations.contains(&v) {
            self.violations.push(v);
        }
    }

    /// The room, if it is in memory.
    #[must_use]
    pub const fn room(&self) -> Option<&Room> {
        self.room.as_ref()
    }

    /// The room, woken from storage if it was hibernated.
    pub fn room_mut(&mut self) -> &mut Room {
        self.wake();
        let config = self.room_config;
        let now = self.now;
        self.room.get_or_insert_with(|| {
            watchdog::bounded("Room::restore", || {
                Room::restore(config, now, Kept::default())
            })
            .0
        })
    }

    /// Whether the room is in memory.
    #[must_use]
    pub const fn is_awake(&self) -> bool {
        self.room.is_some()
    }

    /// The job as the room holds it, or as stored while the room sleeps.
    #[must_use]
    pub fn job(&self) -> Option<&JobRecord> {
        match &self.room {
            Some(room) => room.job(),
            None => self.storage.as_ref(),
        }
    }

    /// Sockets counted against the cap: the room's, or (while it sleeps) the
    /// open ones the runtime holds, which a wake restores.
    #[must_use]
    pub fn live_sockets(&self) -> usize {
        match &self.room {
            Some(room) => room.live_sockets().count(),
            None => self.runtime.values().filter(|s| s.open).count(),
        }
    }

    /// Rebuilds the room from what the runtime kept, if it is not in memory.
    pub fn wake(&mut self) {
        if self.room.is_some() {
            return;
        }
        let restored = self.storage.as_ref().map_or(Seq(0), |r| r.seq);
        if let Err(v) = invariants::check_acked_durable(restored, self.acked) {
            self.violated(v);
        }
        self.stats.restores += 1;
        let sockets = self
            .runtime
            .values()
            .filter(|s| s.open)
            .map(|s| KeptSocket {
                attachment: s.attachment.clone(),
                last_auto_response: s.last_ping,
            })
            .collect();
        let kept = Kept {
            record: self.read_stored(),
            delivered: self.delivered_mark,
            sockets,
            alarm: self.alarm,
        };
        let (config, now) = (self.room_config, self.now);
        let (room, effects) =
            watchdog::bounded("Room::restore", || Room::restore(config, now, kept));
        self.room = Some(room);
        self.apply_room_effects(effects);
    }

    /// The record as a wake reads it from [`Sim::stored`].
    ///
    /// # Panics
    /// When the stored keys do not read back: the room wrote a layout it
    /// cannot read.
    #[must_use]
    pub fn read_stored(&self) -> Option<JobRecord> {
        watchdog::bounded("storage::read_stored", || {
            room::storage::read_stored(self.stored.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        })
        .unwrap_or_else(|e| panic!("{e}"))
    }

    /// Storage is lost (every key, and the delivered mark).
    pub fn lose_storage(&mut self) {
        self.stored.clear();
        self.storage = None;
        self.delivered_mark = None;
    }

    /// The runtime drops the room's memory (hibernation), keeping storage,
    /// the alarm and the sockets.
    fn hibernate(&mut self) {
        if self.room.take().is_some() && self.runtime.values().any(|s| s.open) {
            self.stats.hibernations_with_sockets += 1;
        }
    }

    /// Hibernates the room if it had no event from its last one until `at`.
    fn hibernate_if_quiet(&mut self, at: Millis) {
        if self.room.is_some() && at >= self.last_event.plus(HIBERNATE_AFTER) {
            self.hibernate();
        }
    }

    /// Creates the job (`POST /api/jobs`) and returns the response.
    pub fn create_job(&mut self, total_count: Option<u64>, ttl: Millis) -> Response {
        let input = Input::Create {
            request: CreateJob {
                job_id: Some(JOB_ID.into()),
                pipeline: Pipeline::CsvImport,
                total_count,
                ttl,
                callback_url: self.callback_url.clone(),
            },
            job_id: JOB_ID.into(),
            token_random: self.rng.next_bytes16(),
            origin: "http://127.0.0.1:8787".into(),
        };
        let r = self.room_request(input);
        if r.status == 202 {
            if let Ok(created) = serde_json::from_str::<CreateJobResponse>(&r.body) {
                self.token = Some((
                    Token::from_string(created.token),
                    Millis(created.expires_at),
                ));
            }
        }
        r
    }

    /// Creates the job with the default token lifetime.
    pub fn create_default_job(&mut self, total_count: Option<u64>) -> Response {
        self.create_job(total_count, Millis::from_secs(DEFAULT_TTL_SECS))
    }

    /// Adds a client holding the job's token; returns its index.
    pub fn add_client(&mut self, client_id: Option<&str>) -> usize {
        let (token, exp) = self
            .token
            .clone()
            .unwrap_or((Token::from_string("no-token".into()), Millis::ZERO));
        self.add_client_with(client_id, token, Some(exp))
    }

    /// Adds a client with a given token.
    pub fn add_client_with(
        &mut self,
        client_id: Option<&str>,
        token: Token,
        expires_at: Option<Millis>,
    ) -> usize {
        let mut cfg = ClientConfig::new(JOB_ID);
        cfg.client_id = client_id.map(str::to_owned);
        let seed = self.rng.next_u64().to_le_bytes();
        self.clients.push(SimClient {
            machine: Client::new(cfg, token, expires_at, seed),
            socket: None,
            timer: None,
            watch: SubscriberWatch::default(),
        });
        self.clients.len() - 1
    }

    /// Starts a client.
    pub fn start(&mut self, client: usize) {
        self.client_input(client, client::Input::Start);
    }

    /// Sends producer events (`POST …/events`) and returns the response.
    pub fn producer(&mut self, body: &str) -> Response {
        let r = self.room_request(Input::Events {
            body: body.as_bytes().to_vec(),
        });
        if r.status == 202 {
            if let Ok(answer) = serde_json::from_str::<EventsResponse>(&r.body) {
                self.acked = self.acked.max(Seq(answer.seq));
            }
        }
        r
    }

    /// Runs an HTTP-style room input and returns its response.
    pub fn room_request(&mut self, input: Input) -> Response {
        self.room_input(input)
            .into_iter()
            .next()
            .unwrap_or(Response {
                status: 0,
                body: String::new(),
                retry_after: None,
            })
    }

    /// The runtime evicts the room: memory is lost at once; storage, the
    /// alarm and the sockets stay, and the next event rebuilds the room.
    pub fn evict(&mut self) {
        // A restart takes time: the new instance never runs in the same millisecond.
        self.now = self.now.plus(Millis(1));
        self.room = None;
        let restored = self.storage.as_ref().map_or(Seq(0), |r| r.seq);
        if let Err(v) = invariants::check_acked_durable(restored, self.acked) {
            self.violated(v);
        }
    }

    /// Producer events whose request dies right after the write: the room is
    /// evicted before any socket sees them and before the producer's `202`.
    pub fn events_then_evict(&mut self, body: &str) {
        self.last_event = self.now;
        let now = self.now;
        let room = self.room_mut();
        let effects = watchdog::bounded("Room::handle", || {
            room.handle(
                now,
                Input::Events {
                    body: body.as_bytes().to_vec(),
                },
            )
        });
        let cut = effects
            .iter()
            .position(|e| matches!(e, Effect::Persist(_)))
            .map_or(0, |i| i + 1);
        self.apply_room_effects(effects.into_iter().take(cut).collect());
        self.evict();
    }

    /// The client's link drops; both ends notice.
    pub fn drop_link(&mut self, client: usize) {
        if let Some(socket) = self.clients.get_mut(client).and_then(|c| c.socket.take()) {
            self.runtime.remove(&socket);
            self.net.retain(|p| !matches!(p, Packet::Down { socket: s, .. } | Packet::DownClose { socket: s, .. } if *s == socket));
            self.net.push_back(Packet::UpClosed { socket });
            self.client_input(client, client::Input::Closed { code: None });
        }
    }

    /// The client's link dies silently: the client notices, the room does not.
    pub fn half_open(&mut self, client: usize) {
        if let Some(c) = self.clients.get_mut(client) {
            if c.socket.take().is_some() {
                self.client_input(client, client::Input::Closed { code: None });
            }
        }
    }

    /// Delivers the oldest packet in flight; `false` if none.
    pub fn deliver_one(&mut self) -> bool {
        let Some(p) = self.net.pop_front() else {
            return false;
        };
        match p {
            Packet::Upgrade { client, params } => self.upgrade(client, &params),
            Packet::Down { socket, text } => {
                if let Ok(frame) = protocol::decode(&text) {
                    if matches!(
                        frame.message,
                        protocol::ServerMessage::Snapshot {
                            resumed: true,
                            recovered: true,
                            ..
                        }
                    ) {
                        self.stats.recovered_resumes += 1;
                    }
                    self.logs
                        .entry(socket)
                        .or_default()
                        .frames
                        .push(frame.clone());
                    if let Some(i) = self.client_of(socket) {
                        let seen = self.clients.get_mut(i).map(|c| c.watch.observe(&frame));
                        if let Some(Err(v)) = seen {
                            self.violated(v);
                        }
                        self.client_input(i, client::Input::Frame(text));
                    }
                }
            }
            Packet::DownClose { socket, code } => {
                // The client answers the close: the runtime lets the socket go
                // (the room already forgot it; its close event is not modelled).
                self.runtime.remove(&socket);
                let log = self.logs.entry(socket).or_default();
                log.close = Some(code);
                if let Err(v) = invariants::check_close(log) {
                    self.violated(v);
                }
                if let Some(i) = self.client_of(socket) {
                    if let Some(c) = self.clients.get_mut(i) {
                        c.socket = None;
                    }
                    self.client_input(
                        i,
                        client::Input::Closed {
                            code: Some(code.as_u16()),
                        },
                    );
                }
            }
            Packet::Up { socket, text } => {
                if let Some(rs) = self.runtime.get_mut(&socket).filter(|s| s.open) {
                    rs.active_at = self.now;
                    if text == LITERAL_PING {
                        rs.last_ping = Some(self.now);
                        self.net.push_back(Packet::Down {
                            socket,
                            text: LITERAL_PONG.into(),
                        });
                    } else {
                        self.room_input(Input::Frame {
                            socket,
                            frame: WireFrame::Text(text),
                        });
                    }
                }
            }
            Packet::UpClosed { socket } => {
                self.runtime.remove(&socket);
                self.room_input(Input::Closed { socket });
            }
        }
        true
    }

    /// Delivers packets until none are left (at most `limit`).
    pub fn settle(&mut self) {
        for _ in 0..100_000 {
            if !self.deliver_one() {
                return;
            }
        }
        self.violated(Violation {
            invariant: invariants::Invariant::EventuallyFinished,
            detail: "the network did not settle within 100000 packets".into(),
        });
    }

    /// Moves time forward by `d`, firing client timers and the alarm in order
    /// and settling the network after each.
    pub fn advance(&mut self, d: Millis) {
        let target = self.now.plus(d);
        self.settle();
        // A timer re-armed for the instant it fired at would loop forever.
        let mut firings_now = (self.now, 0u32);
        loop {
            let next_client = self.clients.iter().filter_map(|c| c.timer).min();
            let next = match (next_client, self.alarm) {
                (Some(a), Some(b)) => a.min(b),
                (a, b) => match a.or(b) {
                    Some(t) => t,
                    None => break,
                },
            };
            if next > target {
                break;
            }
            let next = self.now.max(next);
            firings_now = (
                next,
                if next == firings_now.0 {
                    firings_now.1 + 1
                } else {
                    1
                },
            );
            if firings_now.1 > MAX_FIRINGS_AT_ONE_INSTANT {
                self.violated(Violation {
                    invariant: invariants::Invariant::TimerFires,
                    detail: format!(
                        "timers fired {MAX_FIRINGS_AT_ONE_INSTANT} times at {next} without time moving on"
                    ),
                });
                break;
            }
            self.check_idle(next);
            self.hibernate_if_quiet(next);
            self.now = next;
            if self.alarm.is_some_and(|a| a <= self.now) {
                self.alarm = None;
                self.stats.alarms += 1;
                if self.room.is_none() {
                    self.stats.cold_alarms += 1;
                }
                let pings = self.pings();
                let random = self.rng.next_bytes16();
                let due = self.alarm_for;
                self.fired = 0;
                self.room_input(Input::Alarm { pings, random });
                let missed = due & !self.fired;
                self.fired = 0;
                if missed != 0 {
                    let names: Vec<Timer> = Timer::ALL
                        .into_iter()
                        .enumerate()
                        .filter(|(i, _)| missed & (1 << i) != 0)
                        .map(|(_, t)| t)
                        .collect();
                    self.violated(Violation {
                        invariant: invariants::Invariant::TimerFires,
                        detail: format!("the alarm at {} did not run {names:?}", self.now),
                    });
                }
            }
            let due: Vec<usize> = (0..self.clients.len())
                .filter(|&i| {
                    self.clients
                        .get(i)
                        .and_then(|c| c.timer)
                        .is_some_and(|t| t <= self.now)
                })
                .collect();
            for i in due {
                if let Some(c) = self.clients.get_mut(i) {
                    c.timer = None;
                }
                self.client_input(i, client::Input::Tick);
            }
            self.settle();
        }
        self.check_idle(target);
        self.hibernate_if_quiet(target);
        self.now = target;
        self.check_tokens();
    }

    /// The runtime's last auto-response time of each socket that had one.
    fn pings(&self) -> Vec<(SocketId, Millis)> {
        self.runtime
            .iter()
            .filter_map(|(id, s)| s.last_ping.map(|t| (*id, t)))
            .collect()
    }

    /// The idle property, before time moves to `at`: no open socket may still
    /// be open more than three ping intervals after its last frame.
    fn check_idle(&mut self, at: Millis) {
        let within = Millis(self.room_config.ping_interval.0.saturating_mul(3));
        let late: Vec<(SocketId, Millis)> = self
            .runtime
            .iter()
            .filter(|(_, s)| s.open && at > s.active_at.plus(within))
            .map(|(id, s)| (*id, s.active_at))
            .collect();
        for (socket, active_at) in late {
            self.violated(Violation {
                invariant: invariants::Invariant::IdleClosed,
                detail: format!("socket {socket} silent since {active_at} is still open at {at}"),
            });
        }
    }

    /// Feeds a client an input and carries out its effects.
    pub fn client_input(&mut self, i: usize, input: client::Input) {
        let Some(c) = self.clients.get_mut(i) else {
            return;
        };
        let effects = c.machine.handle(self.now, input);
        for e in effects {
            match e {
                client::Effect::Connect(params) => {
                    self.net.push_back(Packet::Upgrade { client: i, params });
                }
                client::Effect::Send(text) => {
                    if let Some(socket) = self.clients.get(i).and_then(|c| c.socket) {
                        self.net.push_back(Packet::Up { socket, text });
                    }
                }
                client::Effect::Close(_) => {
                    if let Some(socket) = self.clients.get_mut(i).and_then(|c| c.socket.take()) {
                        self.net.push_back(Packet::UpClosed { socket });
                    }
                }
                client::Effect::SetTimer(t) => {
                    if let Some(c) = self.clients.get_mut(i) {
                        c.timer = t;
                    }
                }
                client::Effect::FetchState(token) => {
                    let r = self.room_request(Input::JobState {
                        token: token.expose().to_owned(),
                    });
                    let body = (r.status == 200).then_some(r.body);
                    self.client_input(
                        i,
                        client::Input::StateFetched {
                            status: r.status,
                            body,
                        },
                    );
                }
                client::Effect::Progress(_)
                | client::Effect::TokenUpdated { .. }
                | client::Effect::Finished(_)
                | client::Effect::Waiting(_)
                | client::Effect::Resumed { .. } => {}
            }
        }
        self.check_tokens();
    }

    /// Feeds the room an input, carries out its effects and returns the HTTP responses.
    pub fn room_input(&mut self, input: Input) -> Vec<Response> {
        self.wake();
        self.last_event = self.now;
        let now = self.now;
        if let Input::Frame { socket, .. } = &input {
            if let Some(rs) = self.runtime.get_mut(socket) {
                rs.active_at = now;
            }
        }
        let room = self.room_mut();
        let effects = watchdog::bounded("Room::handle", || room.handle(now, input));
        self.apply_room_effects(effects)
    }

    fn upgrade(&mut self, client: usize, params: &client::ConnectParams) {
        let up = room::Upgrade {
            job_id: params.job_id.clone(),
            token: params.token.expose().to_owned(),
            client_id: params.client_id.clone(),
            last_seq: params.last_seq,
        };
        self.wake();
        self.last_event = self.now;
        let now = self.now;
        let pings = self.pings();
        let room = self.room_mut();
        let effects = watchdog::bounded("Room::handle", || {
            room.handle(now, Input::Upgrade { request: up, pings })
        });
        let accepted = effects.iter().find_map(|e| match e {
            Effect::Accept { socket, attachment } => Some((*socket, attachment.clone())),
            _ => None,
        });
        let mut responses = self.apply_room_effects(effects);
        if let Some((socket, _)) = accepted.as_ref().filter(|_| self.fail_next_accept) {
            // The runtime refused the socket; the room answers the request.
            self.fail_next_accept = false;
            responses = self.room_input(Input::AcceptFailed { socket: *socket });
        }
        if let Some((socket, attachment)) = accepted.filter(|_| responses.is_empty()) {
            // A live socket of the same clientId is superseded by this one.
            let cid = attachment.client_id.clone();
            for (id, rs) in &self.runtime {
                if cid.is_some() && rs.open && rs.attachment.client_id == cid {
                    self.stats.supersedes += 1;
                    self.logs.entry(*id).or_default().superseded = true;
                }
            }
            self.runtime.insert(
                socket,
                RuntimeSocket {
                    attachment,
                    client,
                    last_ping: None,
                    open: true,
                    active_at: now,
                },
            );
            if let Some(c) = self.clients.get_mut(client) {
                c.socket = Some(socket);
            }
            self.logs.entry(socket).or_default();
            let responses = self.room_input(Input::Accepted { socket });
            debug_assert!(responses.is_empty());
            self.client_input(client, client::Input::Opened);
        } else {
            let r = responses.into_iter().next().unwrap_or(Response {
                status: 500,
                body: String::new(),
                retry_after: None,
            });
            self.client_input(
                client,
                client::Input::Refused {
                    status: r.status,
                    retry_after: r.retry_after,
                },
            );
        }
    }

    fn apply_room_effects(&mut self, effects: Vec<Effect>) -> Vec<Response> {
        let canceled = self
            .job()
            .is_some_and(|j| j.phase.status() == protocol::JobStatus::Canceled);
        let mut responses = Vec::new();
        let mut results = Vec::new();
        for e in effects {
            match e {
                Effect::Respond(r) => responses.push(r),
                Effect::Notify { url, body, attempt } => {
                    self.notifies.push(SimNotify {
                        at: self.now,
                        url,
                        body,
                        attempt,
                    });
                    match self
                        .notify_answers
                        .pop_front()
                        .unwrap_or(NotifyAnswer::Status(200))
                    {
                        NotifyAnswer::Status(s) => results.push((attempt, Some(s))),
                        NotifyAnswer::Timeout => results.push((attempt, None)),
                        NotifyAnswer::Lost => {}
                    }
                }
                Effect::Log(l) => {
                    if l.event == room::TIMER_FIRED {
                        let bit = l.value.and_then(|v| u32::try_from(v).ok()).unwrap_or(0);
                        self.fired |= 1_u8.checked_shl(bit).unwrap_or(0);
                    }
                }
                Effect::Accept { .. } => {}
                Effect::Attach { socket, attachment } => {
                    if let Some(rs) = self.runtime.get_mut(&socket) {
                        rs.attachment = attachment;
                    }
                }
                Effect::MarkDelivered(seq) => {
                    self.delivered_mark = Some(self.delivered_mark.map_or(seq, |d| d.max(seq)));
                }
                Effect::Send { socket, text } => {
                    if self.runtime.get(&socket).is_some_and(|s| s.open) {
                        self.net.push_back(Packet::Down { socket, text });
                    }
                }
                Effect::Close { socket, code, .. } => {
                    if let Some(rs) = self.runtime.get_mut(&socket).filter(|s| s.open) {
                        rs.open = false;
                        if code == CloseCode::Idle {
                            self.stats.idle_closes += 1;
                        }
                        self.logs.entry(socket).or_default().canceled_before_close = canceled;
                        self.net.push_back(Packet::DownClose { socket, code });
                    }
                }
                Effect::Persist(write) => {
                    self.stats.writes += 1;
                    self.stats.written_keys +=
                        u32::try_from(write.entries.len()).unwrap_or(u32::MAX);
                    self.stats.written_bytes += write.bytes() as u64;
                    // One atomic operation: every key or none.
                    self.stored.extend(write.entries);
                    let record = self.read_stored();
                    let previous = self.storage.as_ref().map(|r| r.seq);
                    let seq = record.as_ref().map_or(Seq(0), |r| r.seq);
                    if let Err(v) = invariants::check_persist(previous, seq, self.acked) {
                        self.violated(v);
                    }
                    self.storage = record;
                }
                Effect::Forget => {
                    // The job is deleted on purpose (24 h after its end); a job
                    // created later under the same id starts its own seq.
                    self.stored.clear();
                    self.storage = None;
                    self.delivered_mark = None;
                    self.acked = Seq(0);
                }
                Effect::SetAlarm(t) => {
                    self.stats.alarm_writes += 1;
                    self.alarm = t;
                }
            }
        }
        if let Some(room) = &self.room {
            let alarm = self.alarm;
            self.alarm_for = Timer::ALL
                .into_iter()
                .enumerate()
                .filter(|(_, t)| alarm.is_some() && room.timer(*t) == alarm)
                .fold(0, |m, (i, _)| m | (1 << i));
        }
        let one = self
            .room
            .as_ref()
            .map_or(Ok(()), invariants::check_one_socket_per_client);
        if let Err(v) = one {
            self.violated(v);
        }
        for (attempt, status) in results {
            self.room_input(Input::NotifyResult { attempt, status });
        }
        responses
    }

    fn check_tokens(&mut self) {
        let session_end = self
            .job()
            .map(|j| j.tokens.session_end(self.room_config.max_session, self.now));
        let stale: Vec<Violation> = self
            .clients
            .iter()
            .filter_map(|c| {
                let connected = matches!(c.machine.state(), client::State::Active);
                invariants::check_fresh_token(
                    connected,
                    c.machine.token_expires_at(),
                    session_end,
                    self.now,
                )
                .err()
            })
            .collect();
        for v in stale {
            self.violated(v);
        }
    }

    fn client_of(&self, socket: SocketId) -> Option<usize> {
        self.clients.iter().position(|c| c.socket == Some(socket))
    }

    /// Open sockets the runtime holds.
    #[must_use]
    pub fn runtime_sockets(&self) -> usize {
        self.runtime.values().filter(|s| s.open).count()
    }

    /// The alarm time.
    #[must_use]
    pub const fn alarm(&self) -> Option<Millis> {
        self.alarm
    }

    /// The earliest client timer or alarm: when [`Sim::advance`] would next
    /// make something happen.
    #[must_use]
    pub fn next_timer(&self) -> Option<Millis> {
        self.clients
            .iter()
            .filter_map(|c| c.timer)
            .chain(self.alarm)
            .min()
    }

    /// Sockets the runtime still holds (whether or not a client still uses them).
    pub fn held_sockets(&self) -> impl Iterator<Item = SocketId> + '_ {
        self.runtime.keys().copied()
    }
}
