//! A bound on each call into the core: one that does not return within
//! [`CORE_CALL_LIMIT`] (an endless loop, say a mutant of a `while` in the
//! storage layout) ends the test process with a message naming the call,
//! in seconds, instead of running into the test runner's timeout. The
//! simulation's other bounds ([`crate::MAX_FIRINGS_AT_ONE_INSTANT`], the
//! caps of [`crate::Sim::settle`]) cover loops between calls.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};

/// The longest one core call may take. Every call is microseconds to a few
/// milliseconds, even unoptimised on a busy machine.
pub const CORE_CALL_LIMIT: Duration = Duration::from_secs(5);

type Calls = Mutex<BTreeMap<u64, (Instant, &'static str)>>;

fn calls() -> &'static Calls {
    static CALLS: OnceLock<Calls> = OnceLock::new();
    CALLS.get_or_init(|| {
        std::thread::spawn(watch);
        Mutex::default()
    })
}

fn watch() {
    loop {
        std::thread::sleep(Duration::from_millis(200));
        let calls = calls().lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((since, what)) = calls
            .values()
            .find(|(since, _)| since.elapsed() > CORE_CALL_LIMIT)
        {
            eprintln!(
                "gateway-sim watchdog: {what} has not returned after {:.1} s (limit {} s): \
                 an endless loop in the core; ending the test process",
                since.elapsed().as_secs_f64(),
                CORE_CALL_LIMIT.as_secs()
            );
            std::process::exit(101);
        }
    }
}

/// Runs `f`, a call into the core named `what`, under the watchdog.
pub(crate) fn bounded<T>(what: &'static str, f: impl FnOnce() -> T) -> T {
    /// Unregisters the call however it ends (a panic included).
    struct Registered(u64);
    impl Drop for Registered {
        fn drop(&mut self) {
            calls()
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .remove(&self.0);
        }
    }
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let id = NEXT.fetch_add(1, Ordering::Relaxed);
    calls()
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .insert(id, (Instant::now(), what));
    let _registered = Registered(id);
    f()
}
