//! The latest-state cell: the watch task writes each new [`View`] the machine
//! reports, the UI reads it whenever it redraws. A reader never sees a state
//! older than one it already saw: versions only grow, and a view whose `seq` is
//! behind the stored one is not published.

use crate::signal::Signal;
use crate::sync::{lock, Arc, AtomicU64, Mutex, Ordering};
use gateway_core::client::View;

/// One published state.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Published {
    /// Grows by one with each publication (0: nothing yet).
    pub version: u64,
    /// What the machine shows.
    pub view: View,
}

#[derive(Debug, Default)]
struct Cell {
    version: AtomicU64,
    state: Mutex<Published>,
    changed: Signal,
}

/// Shared handle to the latest state; cheap to clone, readable from any task.
#[derive(Clone, Debug, Default)]
pub struct LatestState {
    cell: Arc<Cell>,
}

impl LatestState {
    /// An empty cell.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// The newest state (a copy).
    #[must_use]
    pub fn get(&self) -> Published {
        lock(&self.cell.state).clone()
    }

    /// The newest version, without copying the view (to poll for changes).
    #[must_use]
    pub fn version(&self) -> u64 {
        self.cell.version.load(Ordering::SeqCst)
    }

    /// Waits until the version differs from `seen`; returns the new version.
    pub async fn changed(&self, seen: u64) -> u64 {
        loop {
            // The generation is read before the version: a publication after
            // the version read raises the signal past `generation` and wakes us.
            let generation = self.cell.changed.generation();
            let version = self.version();
            if version != seen {
                return version;
            }
            self.cell.changed.changed(generation).await;
        }
    }

    /// Stores `view` unless it is behind the stored one; returns whether it was stored.
    pub(crate) fn publish(&self, view: View) -> bool {
        let mut state = lock(&self.cell.state);
        if view.seq < state.view.seq {
            return false;
        }
        state.version += 1;
        state.view = view;
        // Inside the lock, so `version()` is never ahead of what `get()` returns.
        self.cell.version.store(state.version, Ordering::SeqCst);
        drop(state);
        self.cell.changed.raise();
        true
    }
}
