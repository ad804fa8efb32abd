//! Named timers, multiplexed onto the Durable Object's single alarm.

/// A named timer of the room.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Timer {
    /// Issue a new token before the newest one runs out.
    TokenRefresh,
    /// Close sockets that stopped pinging (4002).
    IdleSweep,
    /// 24 h after the job ended, forget it; 24 h after the last event of a
    /// job still running, end it as failed (`job_expired`).
    Cleanup,
    /// The next attempt of a pending producer callback.
    Notify,
    /// Close (1008) sockets whose newest token expired: their session
    /// reached its maximum length and no refresh could extend it.
    TokenExpiry,
}

impl Timer {
    /// Every timer, in a fixed order.
    pub const ALL: [Self; 5] = [
        Self::TokenRefresh,
        Self::IdleSweep,
        Self::Cleanup,
        Self::Notify,
        Self::TokenExpiry,
    ];

    const fn index(self) -> usize {
        match self {
            Self::TokenRefresh => 0,
            Self::IdleSweep => 1,
            Self::Cleanup => 2,
            Self::Notify => 3,
            Self::TokenExpiry => 4,
        }
    }
}

use crate::Millis;

/// When each timer fires, if armed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Timers([Option<Millis>; 5]);

impl Timers {
    /// Arms (or re-arms) a timer.
    pub fn set(&mut self, t: Timer, at: Millis) {
        if let Some(slot) = self.0.get_mut(t.index()) {
            *slot = Some(at);
        }
    }

    /// Disarms a timer.
    pub fn clear(&mut self, t: Timer) {
        if let Some(slot) = self.0.get_mut(t.index()) {
            *slot = None;
        }
    }

    /// When a timer fires.
    #[must_use]
    pub fn get(&self, t: Timer) -> Option<Millis> {
        self.0.get(t.index()).copied().flatten()
    }

    /// The one alarm time: the earliest armed timer.
    #[must_use]
    pub fn next(&self) -> Option<Millis> {
        self.0.iter().flatten().min().copied()
    }

    /// Disarms and returns every timer due at `now`.
    pub fn take_due(&mut self, now: Millis) -> Vec<Timer> {
        Timer::ALL
            .into_iter()
            .filter(|&t| {
                let due = self.get(t).is_some_and(|at| at <= now);
                if due {
                    self.clear(t);
                }
                due
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn earliest_wins_and_due_timers_are_taken() {
        let mut ts = Timers::default();
        assert_eq!(ts.next(), None);
        ts.set(Timer::Cleanup, Millis(300));
        ts.set(Timer::IdleSweep, Millis(100));
        assert_eq!(ts.next(), Some(Millis(100)));
        assert_eq!(ts.take_due(Millis(150)), vec![Timer::IdleSweep]);
        assert_eq!(ts.next(), Some(Millis(300)));
    }
}
