//! What the model checks: the room policy under test and the bounds that keep
//! the state space finite (every bound is a budget the environment spends).

use gateway_core::room::{PersistPolicy, RoomConfig, SupersedePolicy};
use gateway_core::Millis;

/// Which room behaviour is checked: production's, or one of the seed's
/// behaviours that SPEC §4/§6 rejects (to show the checker has teeth).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, clap::ValueEnum)]
pub enum Policy {
    /// Production: supersede with 4000, persist before every ack and fan-out.
    Spec,
    /// The seed's `1000 "Client reconnecting"` for a replaced socket.
    SeedSupersede,
    /// The seed's write throttle (every 5 updates or 10 s).
    SeedPersist,
}

impl Policy {
    /// The room settings for this policy.
    #[must_use]
    pub fn room_config(self) -> RoomConfig {
        let spec = RoomConfig::default();
        match self {
            Self::Spec => spec,
            Self::SeedSupersede => RoomConfig {
                supersede: SupersedePolicy::SeedClose1000,
                ..spec
            },
            Self::SeedPersist => RoomConfig {
                persist: PersistPolicy::SeedThrottled {
                    every: 5,
                    interval: Millis::from_secs(10),
                },
                ..spec
            },
        }
    }

    /// The name used on the command line.
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Self::Spec => "spec",
            Self::SeedSupersede => "seed-supersede",
            Self::SeedPersist => "seed-persist",
        }
    }
}

/// How the producer ends the job (unless a subscriber cancels it first).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, clap::ValueEnum)]
pub enum Ending {
    /// Always `complete` (close 1000).
    Complete,
    /// Always `failed` (close 4001).
    Fail,
    /// Either: the checker explores both.
    Either,
}

/// The budgets of one check. Each fault is optional at every step until its
/// budget is spent, so every interleaving within the bounds is explored.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Bounds {
    /// Subscribers (≥ 2 for SPEC §7).
    pub subscribers: usize,
    /// Whether subscribers 0 and 1 share one `clientId` (two devices of one
    /// app instance); otherwise each has its own and reconnects with it.
    pub shared_client_id: bool,
    /// `progress` events before the job ends.
    pub events: u64,
    /// How the job ends.
    pub ending: Ending,
    /// Room evictions (also spent by "evicted between write and fan-out").
    pub evictions: u8,
    /// Dropped links, both ends or half-open.
    pub drops: u8,
    /// Subscriber cancels.
    pub cancels: u8,
    /// Environment time steps while the job runs.
    pub time_steps: u8,
    /// Timer wake-ups allowed once the job has ended (the fairness bound of
    /// the liveness property: within this many, everyone must have finished).
    pub heal_wakes: u8,
    /// Token lifetime, short so that refresh at ttl/2 and expiry happen.
    pub ttl: Millis,
}

impl Default for Bounds {
    fn default() -> Self {
        Self {
            subscribers: 2,
            shared_client_id: false,
            events: 2,
            ending: Ending::Complete,
            evictions: 1,
            drops: 1,
            cancels: 1,
            time_steps: 2,
            heal_wakes: 12,
            ttl: Millis::from_secs(120),
        }
    }
}
