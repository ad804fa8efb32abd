//! Rust client of the progress gateway.
//!
//! [`watch`] drives the core's subscriber machine
//! ([`gateway_core::client::Client`]) over tokio-tungstenite and reqwest;
//! [`WatchHandle`] lets another task stop it, read the latest state and (through
//! [`ConnectionControl`]) drop the socket on purpose; [`Producer`] wraps the
//! producer HTTP API. The `progress-gateway` binary is built on these.
//! `https://`/`wss://` gateways are reached through rustls ([`TlsConfig`]:
//! the Mozilla roots by default, plus any private CA).

// Under loom only the shared-state primitives are built, without the driver that uses them.
#![cfg_attr(loom, allow(dead_code))]

#[cfg(not(loom))]
mod endpoint;
mod handle;
mod latest;
#[cfg(not(loom))]
mod producer;
mod signal;
mod sync;
#[cfg(not(loom))]
mod tls;
#[cfg(not(loom))]
mod watch;

#[cfg(all(test, loom))]
mod loom_tests;

#[cfg(not(loom))]
pub use endpoint::{Endpoint, EndpointError};
pub use handle::{ConnectionControl, WatchHandle};
pub use latest::{LatestState, Published};
#[cfg(not(loom))]
pub use producer::{
    cancel_job, cancel_job_with_tls, CreateJobRequest, CreatedJob, Producer, ProducerError,
};
#[cfg(not(loom))]
pub use tls::{TlsConfig, TlsError};
#[cfg(not(loom))]
pub use watch::{now_ms, watch, Ending, Outcome, WatchError, WatchEvent, WatchOptions};

pub use gateway_core;
/// The rustls this client is built with (to build a [`TlsConfig::from_rustls`] configuration).
#[cfg(not(loom))]
pub use rustls;
