//! The stateright model: the real [`Sim`] (room, runtime, network, client
//! machines) driven by an environment that picks, at every step, which
//! in-flight packet arrives, whether a fault happens, and when time moves.
//! Every decision is the core's; the model only chooses inputs, and every
//! property is read off [`gateway_sim::invariants`] as the harness checks it.

use crate::config::{Bounds, Ending, Policy};
use gateway_core::client;
use gateway_core::protocol::ServerMessage;
use gateway_core::room::SocketId;
use gateway_core::Millis;
use gateway_sim::invariants::{self, Invariant};
use gateway_sim::{Packet, Sim, SimStats};
use stateright::{Model, Property};

/// Timers further away than this are the 24 h cleanup, never woken to.
const CLEANUP_HORIZON: Millis = Millis::from_hours(1);

/// The virtual time every check starts at.
pub const START: Millis = Millis(1_763_000_000_000);

/// One direction of one connection: packets on it arrive in order (a
/// WebSocket is a TCP stream), packets on different channels in any order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Channel {
    /// A client's upgrade request.
    Upgrade(usize),
    /// Room → client on one socket.
    Down(SocketId),
    /// Client → room on one socket.
    Up(SocketId),
}

impl Channel {
    /// The channel a packet travels on.
    #[must_use]
    pub const fn of(packet: &Packet) -> Self {
        match packet {
            Packet::Upgrade { client, .. } => Self::Upgrade(*client),
            Packet::Down { socket, .. } | Packet::DownClose { socket, .. } => Self::Down(*socket),
            Packet::Up { socket, .. } | Packet::UpClosed { socket } => Self::Up(*socket),
        }
    }
}

/// What the producer posts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ProducerEvent {
    /// `progress` with this `processedCount`.
    Progress(u64),
    /// `complete`.
    Complete,
    /// `failed`.
    Fail,
}

impl ProducerEvent {
    /// The `POST …/events` body.
    #[must_use]
    pub fn body(self, total: u64) -> String {
        match self {
            Self::Progress(n) => {
                format!(r#"{{"type":"progress","processedCount":{n},"totalCount":{total}}}"#)
            }
            Self::Complete => format!(r#"{{"type":"complete","summary":{{"rows":{total}}}}}"#),
            Self::Fail => r#"{"type":"failed","code":"disk_full","message":"no space"}"#.into(),
        }
    }
}

/// One step the environment may take.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Action {
    /// The oldest packet on a channel arrives.
    Deliver(Channel),
    /// The producer posts an event and gets its answer.
    Produce(ProducerEvent),
    /// The producer posts an event; the room is evicted right after the write,
    /// before any fan-out and before the `202`.
    ProduceThenEvict(ProducerEvent),
    /// The runtime evicts the room (memory lost; storage, sockets kept).
    Evict,
    /// A client's link drops and both ends notice.
    DropLink(usize),
    /// A client's link dies silently: the client notices, the room does not.
    HalfOpen(usize),
    /// A client's link dies silently and its app goes away for good: the
    /// room is left with a zombie socket that nobody pings on.
    Vanish(usize),
    /// The user of an active client cancels the job.
    Cancel(usize),
    /// Time moves to the next client timer or alarm.
    Wake,
    /// Time moves by ttl/2 + 1 s (timers in between fire in order).
    Sleep,
}

/// The model's state: the simulation (with its logs cut to what the
/// invariants still need) plus the environment's remaining budgets.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct GatewayState {
    /// The room, runtime, network and clients.
    pub sim: Sim,
    /// `progress` events posted so far.
    pub posted: u64,
    /// Evictions left.
    pub evictions_left: u8,
    /// Link drops left.
    pub drops_left: u8,
    /// Cancels left.
    pub cancels_left: u8,
    /// Time steps left while the job runs.
    pub steps_left: u8,
    /// Timer wake-ups left once the job has ended.
    pub heal_wakes_left: u8,
    /// Bit `i` set: `Invariant::ALL[i]` was violated on the way here.
    pub violated: u16,
    /// Situations the last step went through (bit per `Situation::ALL`
    /// index), for those that leave no trace in the state.
    pub step_saw: u8,
}

/// Situations the model claims to reach: each is a `sometimes` property, so
/// bounds too small to reach one are reported instead of passing silently.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Situation {
    /// The room hibernated while sockets stayed open.
    HibernatedWithSockets,
    /// The alarm fired on a hibernated room.
    AlarmOnHibernatedRoom,
    /// The room was evicted between a write and its fan-out.
    EvictedBeforeFanOut,
    /// A socket was superseded by a newer one of its `clientId`.
    Superseded,
    /// A subscriber received a `token_refresh`.
    TokenRefreshed,
    /// A zombie socket was swept (4002).
    ZombieSwept,
    /// A resume got `recovered:true`.
    RecoveredResume,
}

impl Situation {
    /// Every situation.
    pub const ALL: [Self; 7] = [
        Self::HibernatedWithSockets,
        Self::AlarmOnHibernatedRoom,
        Self::EvictedBeforeFanOut,
        Self::Superseded,
        Self::TokenRefreshed,
        Self::ZombieSwept,
        Self::RecoveredResume,
    ];

    /// The property's name.
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Self::HibernatedWithSockets => "reached: a hibernation with live sockets",
            Self::AlarmOnHibernatedRoom => "reached: an alarm on a hibernated room",
            Self::EvictedBeforeFanOut => "reached: an eviction between write and fan-out",
            Self::Superseded => "reached: a supersede",
            Self::TokenRefreshed => "reached: a token refresh received",
            Self::ZombieSwept => "reached: a zombie swept",
            Self::RecoveredResume => "reached: a resume with recovered:true",
        }
    }

    const fn bit(self) -> u8 {
        1 << (self as u8)
    }

    /// Whether a state shows it (or the step that led to it went through it).
    #[must_use]
    pub fn seen(self, state: &GatewayState) -> bool {
        let sim = &state.sim;
        match self {
            Self::HibernatedWithSockets => !sim.is_awake() && sim.runtime_sockets() > 0,
            Self::AlarmOnHibernatedRoom
            | Self::Superseded
            | Self::ZombieSwept
            | Self::RecoveredResume => state.step_saw & self.bit() != 0,
            Self::EvictedBeforeFanOut => {
                !sim.is_awake()
                    && sim.storage.as_ref().is_some_and(|r| {
                        r.seq > r.delivered.max(sim.delivered_mark.unwrap_or_default())
                    })
            }
            Self::TokenRefreshed => {
                let first = sim.token.as_ref().map(|(_, exp)| *exp);
                sim.clients
                    .iter()
                    .any(|c| c.machine.token_expires_at() > first)
            }
        }
    }
}

impl GatewayState {
    /// Whether an invariant has held on every step so far.
    #[must_use]
    pub const fn holds(&self, invariant: Invariant) -> bool {
        self.violated & bit(invariant) == 0
    }

    /// Whether the job has ended (or is gone): no more producer events.
    #[must_use]
    pub fn job_over(&self) -> bool {
        self.sim
            .job()
            .is_none_or(|j| invariants::is_terminal(j.phase.status()))
    }

    /// Whether every subscriber reached `Completed` or `Failed`.
    #[must_use]
    pub fn all_finished(&self) -> bool {
        self.sim.clients.iter().all(|c| c.machine.is_finished())
    }
}

/// `Invariant::ALL` lists the invariants in declaration order.
const fn bit(invariant: Invariant) -> u16 {
    1 << (invariant as u16)
}

/// The model of one room under a policy and bounds.
#[derive(Clone, Debug)]
pub struct GatewayModel {
    /// The room behaviour checked.
    pub policy: Policy,
    /// The budgets.
    pub bounds: Bounds,
}

impl GatewayModel {
    /// A model.
    #[must_use]
    pub const fn new(policy: Policy, bounds: Bounds) -> Self {
        Self { policy, bounds }
    }

    /// The simulation every path starts from: job created, subscribers
    /// started (their upgrades in flight). Logs are kept in full.
    #[must_use]
    pub fn initial_sim(&self) -> Sim {
        let mut sim = Sim::new(self.policy.room_config(), START, 7).recording();
        sim.create_job(Some(self.bounds.events), self.bounds.ttl);
        for i in 0..self.bounds.subscribers {
            let id = if self.bounds.shared_client_id && i == 1 {
                0
            } else {
                i
            };
            sim.add_client(Some(&format!("app-{id}")));
        }
        for i in 0..self.bounds.subscribers {
            sim.start(i);
        }
        sim
    }

    /// The first state with full logs (what a trace replays from).
    #[must_use]
    pub fn uncompacted_initial_state(&self) -> GatewayState {
        let b = &self.bounds;
        GatewayState {
            sim: self.initial_sim(),
            posted: 0,
            evictions_left: b.evictions,
            drops_left: b.drops,
            cancels_left: b.cancels,
            steps_left: b.time_steps,
            heal_wakes_left: b.heal_wakes,
            violated: 0,
            step_saw: 0,
        }
    }

    fn initial_state(&self) -> GatewayState {
        let mut state = self.uncompacted_initial_state();
        compact(&mut state);
        state
    }

    /// The producer's possible next events.
    fn next_events(&self, state: &GatewayState) -> Vec<ProducerEvent> {
        if state.job_over() {
            return Vec::new();
        }
        if state.posted < self.bounds.events {
            return vec![ProducerEvent::Progress(state.posted + 1)];
        }
        match self.bounds.ending {
            Ending::Complete => vec![ProducerEvent::Complete],
            Ending::Fail => vec![ProducerEvent::Fail],
            Ending::Either => vec![ProducerEvent::Complete, ProducerEvent::Fail],
        }
    }

    /// Carries out one action on a simulation (without compacting it); the
    /// trace replays paths through this too. Returns whether anything changed.
    pub fn apply(&self, state: &mut GatewayState, action: Action) -> bool {
        let sim = &mut state.sim;
        match action {
            Action::Deliver(channel) => {
                let Some(i) = sim.net.iter().position(|p| Channel::of(p) == channel) else {
                    return false;
                };
                if let Some(p) = sim.net.remove(i) {
                    sim.net.push_front(p);
                }
                sim.deliver_one();
            }
            Action::Produce(e) | Action::ProduceThenEvict(e) => {
                let body = e.body(self.bounds.events);
                if matches!(action, Action::Produce(_)) {
                    sim.producer(&body);
                } else {
                    state.evictions_left = state.evictions_left.saturating_sub(1);
                    sim.events_then_evict(&body);
                }
                if let ProducerEvent::Progress(n) = e {
                    state.posted = n;
                }
            }
            Action::Evict => {
                state.evictions_left = state.evictions_left.saturating_sub(1);
                sim.evict();
            }
            Action::DropLink(c) => {
                state.drops_left = state.drops_left.saturating_sub(1);
                sim.drop_link(c);
            }
            Action::HalfOpen(c) => {
                state.drops_left = state.drops_left.saturating_sub(1);
                sim.half_open(c);
            }
            Action::Vanish(c) => {
                state.drops_left = state.drops_left.saturating_sub(1);
                sim.half_open(c);
                sim.client_input(c, client::Input::Stop);
            }
            Action::Cancel(c) => {
                state.cancels_left = state.cancels_left.saturating_sub(1);
                sim.client_input(c, client::Input::Cancel);
            }
            Action::Wake => {
                let Some(at) = sim.next_timer() else {
                    return false;
                };
                let over = sim
                    .job()
                    .is_none_or(|j| invariants::is_terminal(j.phase.status()));
                if over {
                    state.heal_wakes_left = state.heal_wakes_left.saturating_sub(1);
                } else {
                    state.steps_left = state.steps_left.saturating_sub(1);
                }
                sim.advance(at.minus(sim.now));
            }
            Action::Sleep => {
                state.steps_left = state.steps_left.saturating_sub(1);
                let d = Millis(self.bounds.ttl.0 / 2).plus(Millis::from_secs(1));
                sim.advance(d);
            }
        }
        true
    }
}

/// Folds the harness's recorded violations into the state's bits and cuts
/// the socket logs down to what [`invariants::check_close`] can still need:
/// logs of sockets that can no longer change are dropped, and a live log
/// keeps only the frames that justify a close (`job_complete`, job `error`).
/// Nothing the room, runtime or clients decide on is touched.
pub fn compact(state: &mut GatewayState) {
    for v in state.sim.violations.drain(..) {
        state.violated |= bit(v.invariant);
    }
    let stats = state.sim.stats;
    state.step_saw = [
        (Situation::AlarmOnHibernatedRoom, stats.cold_alarms),
        (Situation::Superseded, stats.supersedes),
        (Situation::ZombieSwept, stats.idle_closes),
        (Situation::RecoveredResume, stats.recovered_resumes),
    ]
    .into_iter()
    .filter(|(_, n)| *n > 0)
    .fold(0, |m, (s, _)| m | s.bit());
    state.sim.stats = SimStats::default();
    compact_logs(&mut state.sim);
}

/// The log half of [`compact`] (the trace keeps violations, cuts logs).
pub fn compact_logs(sim: &mut Sim) {
    let state = sim;
    let held: Vec<SocketId> = state.held_sockets().collect();
    let in_flight: Vec<SocketId> = state
        .net
        .iter()
        .filter_map(|p| match Channel::of(p) {
            Channel::Down(s) => Some(s),
            _ => None,
        })
        .collect();
    state.logs.retain(|socket, log| {
        log.close.is_none() && (held.contains(socket) || in_flight.contains(socket))
    });
    for log in state.logs.values_mut() {
        log.frames.retain(|f| match f.message {
            ServerMessage::JobComplete { .. } => true,
            ServerMessage::Error { .. } => f.seq.is_some(),
            _ => false,
        });
        log.frames.dedup();
    }
}

impl Model for GatewayModel {
    type State = GatewayState;
    type Action = Action;

    fn init_states(&self) -> Vec<GatewayState> {
        vec![self.initial_state()]
    }

    fn actions(&self, state: &GatewayState, actions: &mut Vec<Action>) {
        if state.violated != 0 {
            return; // found; going on would only lengthen the search
        }
        let sim = &state.sim;
        let mut channels: Vec<Channel> = Vec::new();
        for p in &sim.net {
            let c = Channel::of(p);
            if !channels.contains(&c) {
                channels.push(c);
            }
        }
        actions.extend(channels.into_iter().map(Action::Deliver));
        for e in self.next_events(state) {
            actions.push(Action::Produce(e));
            if state.evictions_left > 0 {
                actions.push(Action::ProduceThenEvict(e));
            }
        }
        if state.evictions_left > 0 {
            actions.push(Action::Evict);
        }
        for (i, c) in sim.clients.iter().enumerate() {
            if state.drops_left > 0 && c.socket.is_some() {
                actions.push(Action::DropLink(i));
                actions.push(Action::HalfOpen(i));
                actions.push(Action::Vanish(i));
            }
            if state.cancels_left > 0
                && !state.job_over()
                && matches!(c.machine.state(), client::State::Active)
            {
                actions.push(Action::Cancel(i));
            }
        }
        // Time moves only while nothing is in flight (the harness delivers
        // everything before it moves the clock anyway), and never as far as
        // the 24 h cleanup: retention is far beyond every other time here.
        let over = state.job_over();
        let quiet = sim.net.is_empty();
        let horizon = sim.now.plus(CLEANUP_HORIZON);
        if quiet
            && sim.next_timer().is_some_and(|t| t < horizon)
            && !state.all_finished()
            && (if over {
                state.heal_wakes_left > 0
            } else {
                state.steps_left > 0
            })
        {
            actions.push(Action::Wake);
        }
        if quiet && !over && state.steps_left > 0 {
            actions.push(Action::Sleep);
        }
    }

    fn next_state(&self, last: &GatewayState, action: Action) -> Option<GatewayState> {
        let mut next = last.clone();
        if !self.apply(&mut next, action) {
            return None;
        }
        compact(&mut next);
        Some(next)
    }

    fn properties(&self) -> Vec<Property<Self>> {
        vec![
            Property::always(Invariant::Monotonic.name(), |_, s: &GatewayState| {
                s.holds(Invariant::Monotonic)
            }),
            Property::always(
                Invariant::NothingAfterComplete.name(),
                |_, s: &GatewayState| s.holds(Invariant::NothingAfterComplete),
            ),
            Property::always(
                Invariant::CloseCodeJustified.name(),
                |_, s: &GatewayState| s.holds(Invariant::CloseCodeJustified),
            ),
            Property::always(
                Invariant::SupersededNot1000.name(),
                |_, s: &GatewayState| s.holds(Invariant::SupersededNot1000),
            ),
            Property::always(
                Invariant::OneSocketPerClient.name(),
                |_, s: &GatewayState| s.holds(Invariant::OneSocketPerClient),
            ),
            Property::always(Invariant::Durable.name(), |_, s: &GatewayState| {
                s.holds(Invariant::Durable)
            }),
            Property::eventually(
                Invariant::EventuallyFinished.name(),
                |_, s: &GatewayState| {
                    // A path that broke a safety property ends there; it is
                    // judged by that property, not this one.
                    s.violated != 0 || (s.job_over() && s.all_finished())
                },
            ),
            Property::always(Invariant::FreshToken.name(), |_, s: &GatewayState| {
                s.holds(Invariant::FreshToken)
            }),
            Property::always(Invariant::IdleClosed.name(), |_, s: &GatewayState| {
                s.holds(Invariant::IdleClosed)
            }),
            Property::always(Invariant::TimerFires.name(), |_, s: &GatewayState| {
                s.holds(Invariant::TimerFires)
            }),
            sometimes(Situation::HibernatedWithSockets),
            sometimes(Situation::AlarmOnHibernatedRoom),
            sometimes(Situation::EvictedBeforeFanOut),
            sometimes(Situation::Superseded),
            sometimes(Situation::TokenRefreshed),
            sometimes(Situation::ZombieSwept),
            sometimes(Situation::RecoveredResume),
        ]
    }
}

/// A `sometimes` property for a situation (stateright properties take plain
/// functions, so each situation gets its own).
fn sometimes(situation: Situation) -> Property<GatewayModel> {
    let check: fn(&GatewayModel, &GatewayState) -> bool = match situation {
        Situation::HibernatedWithSockets => |_, s| Situation::HibernatedWithSockets.seen(s),
        Situation::AlarmOnHibernatedRoom => |_, s| Situation::AlarmOnHibernatedRoom.seen(s),
        Situation::EvictedBeforeFanOut => |_, s| Situation::EvictedBeforeFanOut.seen(s),
        Situation::Superseded => |_, s| Situation::Superseded.seen(s),
        Situation::TokenRefreshed => |_, s| Situation::TokenRefreshed.seen(s),
        Situation::ZombieSwept => |_, s| Situation::ZombieSwept.seen(s),
        Situation::RecoveredResume => |_, s| Situation::RecoveredResume.seen(s),
    };
    Property::sometimes(situation.name(), check)
}
