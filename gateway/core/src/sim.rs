//! A deterministic simulation of one room, several clients and the network
//! between them, on a virtual clock (after quinn-proto's `Pair`). It plays the
//! runtime's part: it holds sockets and their attachments across evictions,
//! answers the literal ping without waking the room, keeps the one alarm and
//! the stored record. Every step is checked against [`crate::invariants`].

use crate::client::{self, Client, ClientConfig};
use crate::entropy::Entropy;
use crate::invariants::{self, SocketLog, SubscriberWatch, Violation};
use crate::protocol::{
    self, CreateJob, Pipeline, Seq, DEFAULT_TTL_SECS, LITERAL_PING, LITERAL_PONG,
};
use crate::room::{
    self, Attachment, Effect, Input, JobRecord, Response, Room, RoomConfig, SocketId, WireFrame,
};
use crate::token::Token;
use crate::{CloseCode, Millis};
use std::collections::{BTreeMap, VecDeque};

/// The job id every simulation uses.
pub const JOB_ID: &str = "sim-job";

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
    last_ping: Option<Millis>,
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
    /// The room.
    pub room: Room,
    room_config: RoomConfig,
    /// The stored record (what survives eviction).
    pub storage: Option<JobRecord>,
    runtime: BTreeMap<SocketId, RuntimeSocket>,
    alarm: Option<Millis>,
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
    rng: Entropy,
}

impl Sim {
    /// A fresh room (restored from empty storage) at time `start`.
    #[must_use]
    pub fn new(room_config: RoomConfig, start: Millis, seed: u64) -> Self {
        let mut sim = Self {
            now: start,
            room: Room::new(room_config),
            room_config,
            storage: None,
            runtime: BTreeMap::new(),
            alarm: None,
            clients: Vec::new(),
            net: VecDeque::new(),
            logs: BTreeMap::new(),
            acked: Seq(0),
            violations: Vec::new(),
            token: None,
            rng: Entropy::from_seed(seed.to_le_bytes()),
        };
        sim.room_input(Input::Restored {
            record: None,
            sockets: Vec::new(),
        });
        sim
    }

    /// Creates the job (`POST /api/jobs`) and returns the response.
    pub fn create_job(&mut self, total_count: Option<u64>, ttl: Millis) -> Response {
        let input = Input::Create {
            request: CreateJob {
                job_id: Some(JOB_ID.into()),
                pipeline: Pipeline::CsvImport,
                total_count,
                ttl,
            },
            job_id: JOB_ID.into(),
            token_random: self.rng.next_bytes16(),
            origin: "http://127.0.0.1:8787".into(),
        };
        let r = self.room_request(input);
        if r.status == 202 {
            if let Ok(v) = serde_json::from_str::<serde_json::Value>(&r.body) {
                let token = v
                    .get("token")
                    .and_then(serde_json::Value::as_str)
                    .unwrap_or_default()
                    .to_owned();
                let exp = Millis(
                    v.get("expiresAt")
                        .and_then(serde_json::Value::as_u64)
                        .unwrap_or_default(),
                );
                self.token = Some((Token::from_string(token), exp));
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
            if let Some(seq) = serde_json::from_str::<serde_json::Value>(&r.body)
                .ok()
                .and_then(|v| v.get("seq").and_then(serde_json::Value::as_u64))
            {
                self.acked = self.acked.max(Seq(seq));
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

    /// The runtime evicts the room: memory is lost, storage and sockets stay.
    pub fn evict(&mut self) {
        // A restart takes time: the new instance never runs in the same millisecond.
        self.now = self.now.plus(Millis(1));
        self.room = Room::new(self.room_config);
        let restored = self.storage.as_ref().map_or(Seq(0), |r| r.seq);
        if let Err(v) = invariants::check_acked_durable(restored, self.acked) {
            self.violations.push(v);
        }
        let sockets = self
            .runtime
            .values()
            .map(|s| s.attachment.clone())
            .collect();
        self.room_input(Input::Restored {
            record: self.storage.clone(),
            sockets,
        });
    }

    /// Producer events whose request dies right after the write: the room is
    /// evicted before any socket sees them and before the producer's `202`.
    pub fn events_then_evict(&mut self, body: &str) {
        let effects = self.room.handle(
            self.now,
            Input::Events {
                body: body.as_bytes().to_vec(),
            },
        );
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
                    self.logs
                        .entry(socket)
                        .or_default()
                        .frames
                        .push(frame.clone());
                    if let Some(i) = self.client_of(socket) {
                        if let Some(c) = self.clients.get_mut(i) {
                            if let Err(v) = c.watch.observe(&frame) {
                                self.violations.push(v);
                            }
                        }
                        self.client_input(i, client::Input::Frame(text));
                    }
                }
            }
            Packet::DownClose { socket, code } => {
                let log = self.logs.entry(socket).or_default();
                log.close = Some(code);
                if let Err(v) = invariants::check_close(log) {
                    self.violations.push(v);
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
                if let Some(rs) = self.runtime.get_mut(&socket) {
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
    }

    /// Moves time forward by `d`, firing client timers and the alarm in order
    /// and settling the network after each.
    pub fn advance(&mut self, d: Millis) {
        let target = self.now.plus(d);
        self.settle();
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
            self.now = self.now.max(next);
            if self.alarm.is_some_and(|a| a <= self.now) {
                self.alarm = None;
                let pings = self
                    .runtime
                    .iter()
                    .filter_map(|(id, s)| s.last_ping.map(|t| (*id, t)))
                    .collect();
                let random = self.rng.next_bytes16();
                self.room_input(Input::Alarm { pings, random });
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
        self.now = target;
        self.check_tokens();
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
        let effects = self.room.handle(self.now, input);
        self.apply_room_effects(effects)
    }

    fn upgrade(&mut self, client: usize, params: &client::ConnectParams) {
        let up = room::Upgrade {
            job_id: params.job_id.clone(),
            token: params.token.expose().to_owned(),
            client_id: params.client_id.clone(),
            last_seq: params.last_seq,
        };
        let effects = self.room.handle(self.now, Input::Upgrade(up));
        let accepted = effects.iter().find_map(|e| match e {
            Effect::Accept { socket, attachment } => Some((*socket, attachment.clone())),
            _ => None,
        });
        if let Some((socket, attachment)) = accepted {
            // A live socket of the same clientId is superseded by this one.
            let cid = attachment.client_id.clone();
            for (id, rs) in &self.runtime {
                if cid.is_some() && rs.attachment.client_id == cid {
                    self.logs.entry(*id).or_default().superseded = true;
                }
            }
            self.runtime.insert(
                socket,
                RuntimeSocket {
                    attachment,
                    client,
                    last_ping: None,
                },
            );
            if let Some(c) = self.clients.get_mut(client) {
                c.socket = Some(socket);
            }
            self.logs.entry(socket).or_default();
            let responses = self.apply_room_effects(effects);
            debug_assert!(responses.is_empty());
            self.client_input(client, client::Input::Opened);
        } else {
            let responses = self.apply_room_effects(effects);
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
            .room
            .job()
            .is_some_and(|j| j.phase.status() == protocol::JobStatus::Canceled);
        let mut responses = Vec::new();
        for e in effects {
            match e {
                Effect::Respond(r) => responses.push(r),
                Effect::Accept { .. } | Effect::Log(_) => {}
                Effect::Send { socket, text } => {
                    if self.runtime.contains_key(&socket) {
                        self.net.push_back(Packet::Down { socket, text });
                    }
                }
                Effect::Close { socket, code, .. } => {
                    if self.runtime.remove(&socket).is_some() {
                        self.logs.entry(socket).or_default().canceled_before_close = canceled;
                        self.net.push_back(Packet::DownClose { socket, code });
                    }
                }
                Effect::Persist(record) => {
                    let previous = self.storage.as_ref().map(|r| r.seq);
                    if let Err(v) = invariants::check_persist(previous, record.seq, self.acked) {
                        self.violations.push(v);
                    }
                    self.storage = Some(record);
                }
                Effect::Forget => {
                    // The job is deleted on purpose (24 h after its end); a job
                    // created later under the same id starts its own seq.
                    self.storage = None;
                    self.acked = Seq(0);
                }
                Effect::SetAlarm(t) => self.alarm = t,
            }
        }
        if let Err(v) = invariants::check_one_socket_per_client(&self.room) {
            self.violations.push(v);
        }
        responses
    }

    fn check_tokens(&mut self) {
        for c in &self.clients {
            let connected = matches!(c.machine.state(), client::State::Active);
            if let Err(v) =
                invariants::check_fresh_token(connected, c.machine.token_expires_at(), self.now)
            {
                if !self.violations.contains(&v) {
                    self.violations.push(v);
                }
            }
        }
    }

    fn client_of(&self, socket: SocketId) -> Option<usize> {
        self.clients.iter().position(|c| c.socket == Some(socket))
    }

    /// Live sockets the runtime holds.
    #[must_use]
    pub fn runtime_sockets(&self) -> usize {
        self.runtime.len()
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
