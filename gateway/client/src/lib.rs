//! Rust client of the progress gateway.
//!
//! [`watch`] drives the core's subscriber machine
//! ([`gateway_core::client::Client`]) over tokio-tungstenite and reqwest;
//! [`WatchHandle`] lets another task stop it, read the latest state and (through
//! [`ConnectionControl`]) drop the socket on purpose; [`Producer`] wraps the
//! producer HTTP API; [`Endpoint`] builds the URLs of SPEC §1; [`printable`]
//! strips what a terminal would act on from producer text. The
//! `progress-gateway` binary is built on these. `https://`/`wss://` gateways
//! are reached through rustls ([`TlsConfig`]: the Mozilla roots by default,
//! plus any private CA).

mod endpoint;
mod handle;
mod producer;
mod terminal;
mod tls;
mod watch;

pub use endpoint::{Endpoint, EndpointError};
pub use handle::{ConnectionControl, LatestState, Published, WatchHandle};
pub use producer::{
    cancel_job, cancel_job_with_tls, CreateJobRequest, CreatedJob, Producer, ProducerError,
};
pub use terminal::printable;
pub use tls::{TlsConfig, TlsError};
pub use watch::{now_ms, watch, Ending, Outcome, WatchError, WatchEvent, WatchOptions};

pub use gateway_core;
/// The rustls this client is built with (to build a [`TlsConfig::from_rustls`] configuration).
pub use rustls;
