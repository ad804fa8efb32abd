//! Model checks of the state the watch task shares with other tasks: the
//! latest-state cell (written by the socket task, read by the UI) and the
//! stop/kill signals that race the reconnect loop. Run with `scripts/loom.sh`.

use crate::handle::WatchHandle;
use crate::latest::LatestState;
use crate::signal::Signal;
use crate::sync::Arc;
use gateway_core::client::View;
use gateway_core::protocol::Seq;
use loom::future::block_on;
use loom::thread;

fn view(seq: u64) -> View {
    View {
        seq: Some(Seq(seq)),
        processed_count: seq * 10,
        ..View::default()
    }
}

/// The UI never sees a torn state or one older than a state it already saw,
/// and `version()` is never ahead of what `get()` returns.
#[test]
fn latest_state_is_monotonic_and_whole() {
    loom::model(|| {
        let cell = LatestState::new();
        let writer = {
            let cell = cell.clone();
            thread::spawn(move || {
                cell.publish(view(1));
                cell.publish(view(2));
            })
        };
        let mut last_version = 0;
        let mut last_seq = None;
        for _ in 0..3 {
            let announced = cell.version();
            let p = cell.get();
            assert!(p.version >= announced, "version ran ahead of the state");
            assert!(p.version >= last_version, "version went backwards");
            assert!(p.view.seq >= last_seq, "seq went backwards");
            if let Some(Seq(s)) = p.view.seq {
                assert_eq!(p.view.processed_count, s * 10, "torn view");
            }
            last_version = p.version;
            last_seq = p.view.seq;
        }
        writer.join().unwrap();
        assert_eq!(cell.get().view.seq, Some(Seq(2)));
    });
}

/// Two writers racing (e.g. a late view from a dying socket): an older seq never
/// replaces a newer one.
#[test]
fn latest_state_refuses_older_seq() {
    loom::model(|| {
        let cell = LatestState::new();
        let a = {
            let cell = cell.clone();
            thread::spawn(move || {
                cell.publish(view(3));
            })
        };
        cell.publish(view(2));
        a.join().unwrap();
        assert_eq!(cell.get().view.seq, Some(Seq(3)));
    });
}

/// A UI task waiting for a change is always woken by a publication (no lost wakeup).
#[test]
fn latest_state_wakes_the_ui() {
    loom::model(|| {
        let cell = LatestState::new();
        let writer = {
            let cell = cell.clone();
            thread::spawn(move || {
                cell.publish(view(1));
            })
        };
        let v = block_on(cell.changed(0));
        assert!(v >= 1);
        assert_eq!(cell.get().view.seq, Some(Seq(1)));
        writer.join().unwrap();
    });
}

/// A stop requested before, during or after the watch loop starts waiting is
/// always observed: the loop never sleeps through it.
#[test]
fn stop_is_never_lost() {
    loom::model(|| {
        let handle = WatchHandle::new();
        let stopper = {
            let handle = handle.clone();
            thread::spawn(move || handle.stop())
        };
        block_on(handle.stopped());
        assert!(handle.is_stopped());
        stopper.join().unwrap();
    });
}

/// The reconnect loop: each round re-arms its wait on a fresh generation
/// (reconnect, new socket, …) while stop arrives at any point; it always ends.
#[test]
fn stop_racing_the_reconnect_loop_ends_it() {
    loom::model(|| {
        let handle = WatchHandle::new();
        let stopper = {
            let handle = handle.clone();
            thread::spawn(move || handle.stop())
        };
        let mut rounds = 0;
        block_on(async {
            loop {
                if handle.is_stopped() {
                    break;
                }
                rounds += 1;
                if rounds < 2 {
                    // A "reconnect" round: the loop goes around without waiting.
                    thread::yield_now();
                    continue;
                }
                handle.stopped().await;
            }
        });
        assert!(handle.is_stopped());
        stopper.join().unwrap();
    });
}

/// One raise wakes every waiter (the driver and a UI task both wait on stop).
#[test]
fn signal_wakes_all_waiters() {
    loom::model(|| {
        let signal = Arc::new(Signal::default());
        let other = {
            let signal = Arc::clone(&signal);
            thread::spawn(move || block_on(signal.changed(0)))
        };
        signal.raise();
        assert_eq!(block_on(signal.changed(0)), 1);
        assert_eq!(other.join().unwrap(), 1);
    });
}

/// A kill (connection control) raised after a socket recorded its generation
/// is seen by that socket's wait.
#[test]
fn kill_after_open_is_seen() {
    loom::model(|| {
        let handle = WatchHandle::new();
        let seen = handle.kill_generation();
        let killer = {
            let control = handle.connection();
            thread::spawn(move || control.drop_connection())
        };
        assert_eq!(block_on(handle.kill_requested(seen)), seen + 1);
        killer.join().unwrap();
    });
}
