//! Readable counterexamples: a path found by the checker is replayed on a
//! simulation that keeps its full logs, and each step is told as who acted,
//! on what input, what it caused (packets put on the wire, close codes,
//! writes, client state changes) and which invariant broke.

use crate::model::{compact_logs, Action, Channel, GatewayModel, GatewayState, START};
use gateway_core::client::{FailReason, JobEnd, State};
use gateway_core::protocol::{self, ServerMessage};
use gateway_core::Millis;
use gateway_sim::Packet;
use std::fmt::Write as _;

/// One step of a trace.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Step {
    /// Seconds since the start, after the step.
    pub at: Millis,
    /// Who acted: `network`, `producer`, `runtime`, `client N`, `clock`.
    pub actor: String,
    /// What happened to it.
    pub input: String,
    /// What followed.
    pub effects: Vec<String>,
    /// Invariants broken by this step.
    pub violations: Vec<String>,
}

/// Replays a path of actions from the model's first state.
#[must_use]
pub fn replay(model: &GatewayModel, actions: &[Action]) -> Vec<Step> {
    let mut state = model.uncompacted_initial_state();
    let mut steps = vec![Step {
        at: Millis(0),
        actor: "setup".into(),
        input: format!(
            "job created (ttl {} s, {} events), {} subscribers started",
            model.bounds.ttl.0 / 1000,
            model.bounds.events,
            model.bounds.subscribers
        ),
        effects: state
            .sim
            .net
            .iter()
            .map(|p| format!("sends {}", describe(p)))
            .collect(),
        violations: Vec::new(),
    }];
    for &action in actions {
        let before = state.clone();
        let (actor, input) = tell(&before, action);
        model.apply(&mut state, action);
        compact_logs(&mut state.sim);
        steps.push(Step {
            at: Millis(state.sim.now.0 - START.0),
            actor,
            input,
            effects: effects(&before, &state),
            violations: state
                .sim
                .violations
                .iter()
                .skip(before.sim.violations.len())
                .map(ToString::to_string)
                .collect(),
        });
    }
    steps
}

/// Renders a trace, one step per block.
#[must_use]
pub fn render(steps: &[Step]) -> String {
    let mut out = String::new();
    for (i, s) in steps.iter().enumerate() {
        let _ = writeln!(
            out,
            "  #{i:<3} t={:>7.3}s  {:<10} {}",
            s.at.0 as f64 / 1000.0,
            s.actor,
            s.input
        );
        for e in &s.effects {
            let _ = writeln!(out, "{:28}→ {e}", "");
        }
        for v in &s.violations {
            let _ = writeln!(out, "{:28}!! {v}", "");
        }
    }
    out
}

fn tell(state: &GatewayState, action: Action) -> (String, String) {
    match action {
        Action::Deliver(channel) => {
            let what = state
                .sim
                .net
                .iter()
                .find(|p| Channel::of(p) == channel)
                .map_or_else(|| "nothing".into(), describe);
            ("network".into(), format!("delivers {what}"))
        }
        Action::Produce(e) => ("producer".into(), format!("posts {e:?}")),
        Action::ProduceThenEvict(e) => (
            "producer".into(),
            format!("posts {e:?}; the room is evicted right after the write"),
        ),
        Action::Evict => (
            "runtime".into(),
            "evicts the room (the next event rebuilds it)".into(),
        ),
        Action::DropLink(c) => (
            "network".into(),
            format!("drops client {c}'s link (both ends)"),
        ),
        Action::HalfOpen(c) => (
            "network".into(),
            format!("client {c}'s link goes half-open (room not told)"),
        ),
        Action::Vanish(c) => (
            "network".into(),
            format!("client {c}'s link goes half-open and its app stops (a zombie)"),
        ),
        Action::Cancel(c) => (format!("client {c}"), "user cancels the job".into()),
        Action::Wake => ("clock".into(), "advances to the next timer".into()),
        Action::Sleep => ("clock".into(), "advances by ttl/2 + 1 s".into()),
    }
}

fn effects(before: &GatewayState, after: &GatewayState) -> Vec<String> {
    let mut out = Vec::new();
    let mut old: Vec<&Packet> = before.sim.net.iter().collect();
    for p in &after.sim.net {
        if let Some(i) = old.iter().position(|o| *o == p) {
            old.remove(i);
        } else {
            out.push(format!("sends {}", describe(p)));
        }
    }
    if before.sim.is_awake() != after.sim.is_awake() {
        out.push(if after.sim.is_awake() {
            "room rebuilt from storage and the runtime's sockets".into()
        } else {
            "room memory dropped (hibernated or evicted)".into()
        });
    }
    let seq = |s: &GatewayState| s.sim.storage.as_ref().map(|r| r.seq.0);
    if seq(before) != seq(after) || before.sim.storage.is_some() != after.sim.storage.is_some() {
        out.push(format!("storage seq {:?} → {:?}", seq(before), seq(after)));
    }
    if before.sim.acked != after.sim.acked {
        out.push(format!("producer acked seq {}", after.sim.acked.0));
    }
    for (i, (b, a)) in before
        .sim
        .clients
        .iter()
        .zip(&after.sim.clients)
        .enumerate()
    {
        if b.machine.state() != a.machine.state() || b.socket != a.socket {
            out.push(format!(
                "client {i}: {} → {} (socket {})",
                client_state(b.machine.state()),
                client_state(a.machine.state()),
                a.socket.map_or_else(|| "none".into(), |s| s.to_string())
            ));
        }
    }
    out
}

/// One packet, short.
#[must_use]
pub fn describe(p: &Packet) -> String {
    match p {
        Packet::Upgrade { client, params } => format!(
            "upgrade of client {client} (clientId {}, lastSeq {})",
            params.client_id.as_deref().unwrap_or("-"),
            params
                .last_seq
                .map_or_else(|| "-".into(), |s| s.0.to_string())
        ),
        Packet::Down { socket, text } => format!("{socket}↓ {}", frame(text)),
        Packet::DownClose { socket, code } => format!("{socket}↓ close {code}"),
        Packet::Up { socket, text } => format!("{socket}↑ {text}"),
        Packet::UpClosed { socket } => format!("{socket}↑ socket closed"),
    }
}

fn frame(text: &str) -> String {
    let Ok(f) = protocol::decode(text) else {
        return text.to_owned();
    };
    let seq = f.seq.map_or_else(String::new, |s| format!(" seq {}", s.0));
    let detail = match &f.message {
        ServerMessage::Snapshot {
            recovered, state, ..
        } => format!(
            " {:?} processed {} recovered {recovered}",
            state.status, state.processed_count
        ),
        ServerMessage::JobProgress {
            processed_count, ..
        } => format!(" processed {processed_count}"),
        ServerMessage::TokenRefresh { expires_at, .. } => format!(
            " expires t={}s",
            expires_at.0.saturating_sub(START.0) / 1000
        ),
        ServerMessage::Error { code, .. } => format!(" {code}"),
        _ => String::new(),
    };
    format!("{}{seq}{detail}", f.message.type_name())
}

fn client_state(s: &State) -> String {
    let t = |m: &Millis| format!("{:.3}s", m.0.saturating_sub(START.0) as f64 / 1000.0);
    match s {
        State::Idle => "Idle".into(),
        State::Connecting { attempt } => format!("Connecting#{attempt}"),
        State::Authenticating { attempt } => format!("Authenticating#{attempt}"),
        State::Active => "Active".into(),
        State::Reconnecting { attempt, at } => format!("Reconnecting#{attempt} at {}", t(at)),
        State::Syncing { attempt, tries, .. } => format!("Syncing#{attempt} try {tries}"),
        State::Completed(JobEnd::Succeeded { .. }) => "Completed(succeeded)".into(),
        State::Completed(JobEnd::Failed { code, .. }) => format!("Completed(failed {code})"),
        State::Completed(JobEnd::Canceled) => "Completed(canceled)".into(),
        State::Failed(FailReason::Refused(code)) => format!("Failed(refused {code})"),
        State::Failed(r) => format!("Failed({r:?})"),
    }
}
