//! Virtual time: milliseconds since the Unix epoch, passed into every machine.

use serde::{Deserialize, Serialize};

/// A point in time or a duration, in milliseconds. The core never reads a clock.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct Millis(pub u64);

impl Millis {
    /// Zero.
    pub const ZERO: Self = Self(0);

    /// `n` seconds.
    #[must_use]
    pub const fn from_secs(n: u64) -> Self {
        Self(n.saturating_mul(1000))
    }

    /// `n` minutes.
    #[must_use]
    pub const fn from_mins(n: u64) -> Self {
        Self::from_secs(n.saturating_mul(60))
    }

    /// `n` hours.
    #[must_use]
    pub const fn from_hours(n: u64) -> Self {
        Self::from_mins(n.saturating_mul(60))
    }

    /// Saturating addition, so that far-future times never wrap.
    #[must_use]
    pub const fn plus(self, d: Self) -> Self {
        Self(self.0.saturating_add(d.0))
    }

    /// Saturating subtraction (`0` if `d` is later).
    #[must_use]
    pub const fn minus(self, d: Self) -> Self {
        Self(self.0.saturating_sub(d.0))
    }

    /// Whole seconds, rounded up (for `Retry-After`).
    #[must_use]
    pub const fn ceil_secs(self) -> u64 {
        self.0.div_ceil(1000)
    }
}

impl std::fmt::Display for Millis {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}ms", self.0)
    }
}
