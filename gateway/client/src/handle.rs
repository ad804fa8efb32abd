//! Handles another task holds on a running watch: stop watching (Ctrl-C), ask
//! the gateway to cancel the job, read the latest state, and the connection
//! control hook that kills the current socket (for demos and resilience tests).
//! Built on `tokio_util`'s `CancellationToken` and `tokio::sync::watch`; the
//! watch task is their only reader, and the machine alone decides what follows.

use gateway_core::client::View;
use std::sync::Arc;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// Control of one watch, shared between the watch task and the UI; clone freely.
///
/// Put a clone in [`crate::WatchOptions::handle`] and keep one: every request
/// made through it becomes an input of the core's client machine, which alone
/// decides what happens next.
#[derive(Clone, Debug, Default)]
pub struct WatchHandle {
    stop: CancellationToken,
    /// Each send is one "cancel the job" request.
    cancel: Arc<Requests>,
    /// Each send is one "drop the socket" request.
    kill: Arc<Requests>,
    latest: LatestState,
}

/// Requests whose count does not matter, only that one came after a point.
#[derive(Debug)]
struct Requests(watch::Sender<()>);

impl Default for Requests {
    fn default() -> Self {
        Self(watch::Sender::new(()))
    }
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
        self.stop.cancel();
    }

    /// Whether [`WatchHandle::stop`] was called.
    #[must_use]
    pub fn is_stopped(&self) -> bool {
        self.stop.is_cancelled()
    }

    /// Asks the gateway to cancel the job (`{"type":"cancel"}` on the live socket;
    /// the machine ignores it while no socket is live).
    pub fn cancel_job(&self) {
        self.cancel.0.send_replace(());
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
            kill: Arc::clone(&self.kill),
        }
    }

    pub(crate) fn stop_token(&self) -> CancellationToken {
        self.stop.clone()
    }

    /// Cancel requests made from now on.
    pub(crate) fn cancel_requests(&self) -> watch::Receiver<()> {
        self.cancel.0.subscribe()
    }

    /// Drop requests made from now on (mark them seen when a socket opens).
    pub(crate) fn kill_requests(&self) -> watch::Receiver<()> {
        self.kill.0.subscribe()
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
    kill: Arc<Requests>,
}

impl ConnectionControl {
    /// Kills the current socket without a close frame.
    pub fn drop_connection(&self) {
        self.kill.0.send_replace(());
    }
}

/// One published state.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Published {
    /// Grows by one with each publication (0: nothing yet).
    pub version: u64,
    /// What the machine shows.
    pub view: View,
}

/// The latest state the machine reported: the watch task writes each new
/// [`View`], the UI reads it whenever it redraws (a `tokio::sync::watch`
/// channel: readers see whole states, versions only grow).
#[derive(Clone, Debug)]
pub struct LatestState {
    cell: Arc<watch::Sender<Published>>,
}

impl Default for LatestState {
    fn default() -> Self {
        Self {
            cell: Arc::new(watch::Sender::new(Published::default())),
        }
    }
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
        self.cell.borrow().clone()
    }

    /// The newest version, without copying the view (to poll for changes).
    #[must_use]
    pub fn version(&self) -> u64 {
        self.cell.borrow().version
    }

    /// Waits until the version differs from `seen`; returns the new version.
    pub async fn changed(&self, seen: u64) -> u64 {
        let mut rx = self.cell.subscribe();
        // The sender lives in `self`, so the channel never closes while we wait.
        rx.wait_for(|p| p.version != seen)
            .await
            .map_or(seen, |p| p.version)
    }

    /// A receiver of every publication, for a UI that drives its own loop.
    #[must_use]
    pub fn subscribe(&self) -> watch::Receiver<Published> {
        self.cell.subscribe()
    }

    /// Stores the machine's newest view (which never goes backwards).
    pub(crate) fn publish(&self, view: View) {
        self.cell.send_modify(|p| {
            p.version += 1;
            p.view = view;
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gateway_core::protocol::Seq;
    use std::time::Duration;

    fn view(seq: u64) -> View {
        View {
            seq: Some(Seq(seq)),
            processed_count: seq * 10,
            ..View::default()
        }
    }

    #[tokio::test]
    async fn a_waiting_reader_sees_the_next_state_whole() {
        let cell = LatestState::new();
        let reader = tokio::spawn({
            let cell = cell.clone();
            async move {
                let v = cell.changed(0).await;
                (v, cell.get())
            }
        });
        tokio::task::yield_now().await;
        cell.publish(view(1));
        let (v, p) = tokio::time::timeout(Duration::from_secs(2), reader)
            .await
            .expect("the reader was not woken by a publication within 2 s")
            .unwrap();
        assert!(v >= 1);
        assert_eq!(p.version, v);
        assert_eq!(p.view.processed_count, 10);
    }

    #[tokio::test]
    async fn a_change_before_the_wait_is_not_lost() {
        let cell = LatestState::new();
        cell.publish(view(1));
        cell.publish(view(2));
        let v = tokio::time::timeout(Duration::from_secs(2), cell.changed(1))
            .await
            .expect("changed(1) did not see version 2");
        assert_eq!(v, 2);
        assert_eq!(cell.get().view.seq, Some(Seq(2)));
    }

    #[tokio::test]
    async fn requests_before_a_socket_opens_do_not_reach_it() {
        let handle = WatchHandle::new();
        let mut kills = handle.kill_requests();
        handle.connection().drop_connection();
        // What the driver does when a socket opens.
        let _ = kills.borrow_and_update();
        assert!(!kills.has_changed().unwrap());
        handle.connection().drop_connection();
        assert!(kills.has_changed().unwrap());
        assert!(!handle.is_stopped());
        handle.stop();
        assert!(handle.is_stopped());
        tokio::time::timeout(Duration::from_secs(2), handle.stop_token().cancelled())
            .await
            .expect("stop was not observed");
    }
}
