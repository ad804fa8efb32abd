//! Pins the model: its size, that the production policy keeps every SPEC §7
//! invariant, and that each rejected seed behaviour is caught.

use gateway_core::room::{SocketId, SOCKET_IDS_PER_MS};
use gateway_sim::invariants::Invariant;
use model::model::{compact, Channel, ProducerEvent};
use model::{check, Action, Bounds, GatewayModel, GatewayState, Outcome, Policy, Situation};
use stateright::Model;

/// Small enough for a debug-profile test, large enough to reach eviction,
/// a dropped or half-open link, a reconnect and a token refresh.
fn small() -> Bounds {
    Bounds {
        events: 1,
        cancels: 0,
        time_steps: 1,
        ..Bounds::default()
    }
}

fn run(policy: Policy, bounds: Bounds) -> Outcome {
    check(GatewayModel::new(policy, bounds), 2, 0)
}

#[test]
fn unique_state_count_is_pinned() {
    let outcome = run(Policy::Spec, small());
    assert_eq!(outcome.unique_states, 250_241, "the model's size changed");
}

#[test]
fn small_bounds_reach_every_situation_but_a_zombie_sweep() {
    // A zombie is swept after 3 ping intervals of a running job: one time
    // step (61 s) is too short; the default bounds (two) reach it.
    let outcome = run(Policy::Spec, small());
    assert_eq!(outcome.unreached(), vec![Situation::ZombieSwept]);
}

#[test]
fn production_policy_keeps_every_invariant() {
    let outcome = run(Policy::Spec, small());
    let broken: Vec<_> = outcome
        .verdicts
        .iter()
        .filter(|v| v.counterexample.is_some())
        .map(|v| v.invariant.name())
        .collect();
    assert!(
        broken.is_empty(),
        "violated under the spec policy: {broken:?}"
    );
}

#[test]
fn seed_supersede_closes_a_replaced_socket_with_1000() {
    let outcome = run(Policy::SeedSupersede, small());
    assert!(outcome.violated(Invariant::SupersededNot1000));
}

#[test]
fn seed_persist_throttle_loses_acknowledged_events() {
    // The checker stops a path at its first violation, and under the throttle
    // the lost write (6) always comes first; the walk below goes on to 1.
    let outcome = run(Policy::SeedPersist, small());
    assert!(outcome.violated(Invariant::Durable));
}

/// Follows a path, checking that the model offers each action (the checker
/// stops a path at its first violation; this goes on, to see the next one).
fn walk(model: &GatewayModel, path: &[Action]) -> GatewayState {
    let mut state = model.init_states().remove(0);
    for &a in path {
        if state.violated == 0 {
            let mut offered = Vec::new();
            model.actions(&state, &mut offered);
            assert!(offered.contains(&a), "{a:?} not offered: {offered:?}");
        }
        assert!(model.apply(&mut state, a), "{a:?} changes nothing");
        compact(&mut state);
    }
    state
}

/// The seed throttle's progress regression, before the job ends : seen seq 1, evicted, reconnected to seq 0.
#[test]
fn seed_persist_throttle_shows_progress_going_backwards() {
    // Both upgrades are accepted at the start: ids grow with the clock.
    let first = SocketId(model::model::START.0 * SOCKET_IDS_PER_MS);
    let (s0, s1) = (first, SocketId(first.0 + 1));
    let path = [
        Action::Deliver(Channel::Upgrade(0)),
        Action::Deliver(Channel::Upgrade(1)),
        Action::Deliver(Channel::Down(s0)),
        Action::Deliver(Channel::Down(s1)),
        Action::Produce(ProducerEvent::Progress(1)),
        Action::Deliver(Channel::Down(s0)),
        Action::Evict,
        Action::DropLink(0),
        Action::Deliver(Channel::Up(s0)),
        Action::Deliver(Channel::Down(s1)),
        Action::Wake,
    ];
    let seed = walk(&GatewayModel::new(Policy::SeedPersist, small()), &path);
    assert!(!seed.holds(Invariant::Monotonic));
    assert!(!seed.holds(Invariant::Durable));
}
