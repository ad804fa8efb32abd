//! A stateright model check of SPEC §7 on the real gateway core.
//!
//! The model drives [`gateway_sim::Sim`] (the room, the runtime that
//! holds sockets across evictions, the network and the subscriber machines)
//! and lets the checker choose every environment step within [`Bounds`]. It
//! never decides anything about the protocol itself: see `docs/MODEL.md`.

pub mod config;
pub mod model;
pub mod trace;

pub use config::{Bounds, Ending, Policy};
pub use model::{Action, GatewayModel, GatewayState, Situation};

use gateway_sim::invariants::Invariant;
use stateright::{Checker, Model};
use std::time::{Duration, Instant};

/// One property's verdict.
#[derive(Clone, Debug)]
pub struct Verdict {
    /// Which invariant.
    pub invariant: Invariant,
    /// `None` if it holds within the bounds; else the path to a violation.
    pub counterexample: Option<Vec<Action>>,
}

/// What a check found.
#[derive(Clone, Debug)]
pub struct Outcome {
    /// States generated (with repeats).
    pub states: usize,
    /// Distinct states.
    pub unique_states: usize,
    /// Longest path explored.
    pub max_depth: usize,
    /// Wall time.
    pub elapsed: Duration,
    /// One verdict per SPEC §7 invariant, in order.
    pub verdicts: Vec<Verdict>,
    /// Each situation the model claims to reach, and whether it did.
    pub reached: Vec<(Situation, bool)>,
}

impl Outcome {
    /// Whether every property holds.
    #[must_use]
    pub fn all_hold(&self) -> bool {
        self.verdicts.iter().all(|v| v.counterexample.is_none())
    }

    /// Situations the bounds were too small to reach.
    #[must_use]
    pub fn unreached(&self) -> Vec<Situation> {
        self.reached
            .iter()
            .filter(|(_, r)| !r)
            .map(|(s, _)| *s)
            .collect()
    }

    /// Whether this invariant was found violated.
    #[must_use]
    pub fn violated(&self, invariant: Invariant) -> bool {
        self.verdicts
            .iter()
            .any(|v| v.invariant == invariant && v.counterexample.is_some())
    }
}

/// Runs the exhaustive breadth-first check (`depth` 0: no depth bound).
#[must_use]
pub fn check(model: GatewayModel, threads: usize, depth: usize) -> Outcome {
    let start = Instant::now();
    let mut builder = model.checker().threads(threads.max(1));
    if depth > 0 {
        builder = builder.target_max_depth(depth);
    }
    let checker = builder.spawn_bfs().join();
    let elapsed = start.elapsed();
    let verdicts = Invariant::ALL
        .iter()
        .map(|&invariant| Verdict {
            invariant,
            counterexample: checker
                .discovery(invariant.name())
                .map(|p| p.into_actions()),
        })
        .collect();
    let reached = Situation::ALL
        .iter()
        .map(|&s| (s, checker.discovery(s.name()).is_some()))
        .collect();
    Outcome {
        reached,
        states: checker.state_count(),
        unique_states: checker.unique_state_count(),
        max_depth: checker.max_depth(),
        elapsed,
        verdicts,
    }
}
