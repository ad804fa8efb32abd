//! A wake-up that is never lost: a generation counter plus the wakers of the
//! tasks waiting for it to move. The stop handle and the connection control are
//! built on it; the loom tests race [`Signal::raise`] against a waiter that is
//! between "checked the counter" and "went to sleep".

use crate::sync::{lock, AtomicU64, Mutex, Ordering};
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

/// A counter that only grows, and the tasks waiting for it to.
#[derive(Debug, Default)]
pub(crate) struct Signal {
    generation: AtomicU64,
    waiters: Mutex<Vec<Waker>>,
}

impl Signal {
    /// The current generation.
    pub(crate) fn generation(&self) -> u64 {
        self.generation.load(Ordering::SeqCst)
    }

    /// Moves the generation on and wakes every waiter.
    pub(crate) fn raise(&self) {
        self.generation.fetch_add(1, Ordering::SeqCst);
        // Taken under the lock: a waiter that registered before this point is
        // woken; one that registers after it re-reads the counter and sees the
        // new generation.
        let waiters = std::mem::take(&mut *lock(&self.waiters));
        for w in waiters {
            w.wake();
        }
    }

    /// Resolves (to the new generation) once the generation differs from `seen`.
    pub(crate) fn changed(&self, seen: u64) -> Changed<'_> {
        Changed { signal: self, seen }
    }
}

/// Future of [`Signal::changed`].
#[derive(Debug)]
pub(crate) struct Changed<'a> {
    signal: &'a Signal,
    seen: u64,
}

impl Future for Changed<'_> {
    type Output = u64;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<u64> {
        let now = self.signal.generation();
        if now != self.seen {
            return Poll::Ready(now);
        }
        let mut waiters = lock(&self.signal.waiters);
        if !waiters.iter().any(|w| w.will_wake(cx.waker())) {
            waiters.push(cx.waker().clone());
        }
        // Re-read under the lock: `raise` bumps the counter before it takes
        // the lock, so either we see its bump here or it sees our waker.
        let now = self.signal.generation();
        drop(waiters);
        if now == self.seen {
            Poll::Pending
        } else {
            Poll::Ready(now)
        }
    }
}
