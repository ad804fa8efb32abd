//! Benchmark-only cuts, compiled in with the feature `bench-cuts` (off by
//! default, never in the shipped build). `scripts/bench.sh` builds the Worker
//! once more with it and runs that build with the var `BENCH_CUTS` naming the
//! pieces to leave out, comma-separated, to measure what each costs
//! (docs/PERFORMANCE.md, "Where the time goes"):
//! - `log`: no log line at all (no subscriber is installed);
//! - `alarm`: no alarm write (`SetAlarm` is skipped: no timer ever fires);
//! - `write`: no storage write of the room (`Persist` and the delivered mark
//!   are skipped: nothing survives a restart).
//!
//! Without the feature every check is the constant `false`.

use worker::Env;

#[cfg(feature = "bench-cuts")]
mod enabled {
    use std::cell::Cell;

    use worker::Env;

    thread_local! {
        /// `[log, alarm, write]`, read once per isolate.
        static CUTS: Cell<Option<[bool; 3]>> = const { Cell::new(None) };
    }

    pub fn init(env: &Env) {
        if CUTS.get().is_some() {
            return;
        }
        let list = env
            .var("BENCH_CUTS")
            .map(|v| v.to_string())
            .unwrap_or_default();
        let has = |name: &str| list.split(',').any(|c| c.trim() == name);
        CUTS.set(Some([has("log"), has("alarm"), has("write")]));
    }

    pub fn get(i: usize) -> bool {
        CUTS.get().is_some_and(|c| c[i])
    }
}

/// Reads `BENCH_CUTS` once per isolate (a no-op without the feature).
pub fn init(env: &Env) {
    #[cfg(feature = "bench-cuts")]
    enabled::init(env);
    #[cfg(not(feature = "bench-cuts"))]
    let _ = env;
}

/// Leave out every log line.
#[must_use]
pub fn log() -> bool {
    #[cfg(feature = "bench-cuts")]
    return enabled::get(0);
    #[cfg(not(feature = "bench-cuts"))]
    false
}

/// Leave out alarm writes.
#[must_use]
pub fn alarm() -> bool {
    #[cfg(feature = "bench-cuts")]
    return enabled::get(1);
    #[cfg(not(feature = "bench-cuts"))]
    false
}

/// Leave out the room's storage writes.
#[must_use]
pub fn write() -> bool {
    #[cfg(feature = "bench-cuts")]
    return enabled::get(2);
    #[cfg(not(feature = "bench-cuts"))]
    false
}
