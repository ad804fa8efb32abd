//! Sans-IO core of the progress gateway.
//!
//! Everything here is pure: time arrives as [`Millis`], randomness as bytes
//! inside inputs, and every decision leaves as an effect. The Cloudflare Worker,
//! the stateright model, the fuzz targets and the Rust client all drive these
//! machines unchanged; none of them decides anything about the protocol. The
//! test machinery (simulation, invariants, fuzz entry points) lives in the
//! `gateway-sim` crate.
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::indexing_slicing,
        clippy::panic
    )
)]

pub mod api;
pub mod callback;
pub mod client;
pub mod close_code;
pub mod config;
pub mod entropy;
pub mod error;
pub mod http;
pub mod protocol;
pub mod room;
pub mod strict_json;
pub mod time;
pub mod timer;
pub mod token;

pub use close_code::{ClientAction, CloseCode};
pub use error::{FrameError, HttpError};
pub use time::Millis;
