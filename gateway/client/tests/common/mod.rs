//! Bounds for every wait of the client tests: a server that stops answering or
//! a broken timer fails a test in seconds, saying what did not happen.

use std::future::Future;
use std::time::Duration;

/// Awaits `fut` for at most `secs` seconds; panics naming `what` otherwise.
pub async fn within<T>(secs: u64, what: &str, fut: impl Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(secs), fut)
        .await
        .unwrap_or_else(|_| panic!("{what} did not happen within {secs} s"))
}
