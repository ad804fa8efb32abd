//! Handles another task holds on a running watch: stop watching (Ctrl-C), ask
//! the gateway to cancel the job, read the latest state, and the connection
//! control hook that kills the current socket (for demos and resilience tests).

use crate::latest::LatestState;
use crate::signal::Signal;
use crate::sync::Arc;

#[derive(Debug, Default)]
struct Signals {
    stop: Signal,
    cancel: Signal,
    kill: Signal,
}

/// Control of one watch, shared between the watch task and the UI; clone freely.
///
/// Put a clone in [`crate::WatchOptions::handle`] and keep one: every request
/// made through it becomes an input of the core's client machine, which alone
/// decides what happens next.
#[derive(Clone, Debug, Default)]
pub struct WatchHandle {
    signals: Arc<Signals>,
    latest: LatestState,
}

impl WatchHandle {
    /// A fresh handle.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Stops watching (the machine's `Input::Stop`): closes an open socket with
    /// 1000 and ends the watch with `FailReason::Stopped`. Observed even if it
    /// races a reconnect; calling it again does nothing more.
    pub fn stop(&self) {
        self.signals.stop.raise();
    }

    /// Whether [`WatchHandle::stop`] was called.
    #[must_use]
    pub fn is_stopped(&self) -> bool {
        self.signals.stop.generation() != 0
    }

    /// Asks the gateway to cancel the job (`{"type":"cancel"}` on the live socket;
    /// the machine ignores it while no socket is live).
    pub fn cancel_job(&self) {
        self.signals.cancel.raise();
    }

    /// The latest-state cell the UI reads.
    #[must_use]
    pub fn latest(&self) -> LatestState {
        self.latest.clone()
    }

    /// The connection control hook.
    #[must_use]
    pub fn connection(&self) -> ConnectionControl {
        ConnectionControl {
            signals: Arc::clone(&self.signals),
        }
    }

    pub(crate) async fn stopped(&self) {
        self.signals.stop.changed(0).await;
    }

    pub(crate) fn cancel_generation(&self) -> u64 {
        self.signals.cancel.generation()
    }

    pub(crate) async fn cancel_requested(&self, seen: u64) -> u64 {
        self.signals.cancel.changed(seen).await
    }

    pub(crate) fn kill_generation(&self) -> u64 {
        self.signals.kill.generation()
    }

    pub(crate) async fn kill_requested(&self, seen: u64) -> u64 {
        self.signals.kill.changed(seen).await
    }
}

/// Connection control: a documented fault-injection hook.
///
/// [`ConnectionControl::drop_connection`] aborts the socket that is open at
/// that moment: the TCP connection is shut without a close frame, so the
/// gateway sees an abnormal closure and the client machine gets
/// `Input::Closed { code: None }` (1006), exactly as when a deploy or a
/// network change drops the socket. What follows (backoff, resume with
/// `lastSeq`, the `reconnected` snapshot) is the machine's ordinary behaviour.
/// A request made while no socket is open affects no later socket.
#[derive(Clone, Debug)]
pub struct ConnectionControl {
    signals: Arc<Signals>,
}

impl ConnectionControl {
    /// Kills the current socket without a close frame.
    pub fn drop_connection(&self) {
        self.signals.kill.raise();
    }
}
