//! The progress gateway as a Cloudflare Worker: the router ([`router`]) and
//! one Durable Object per job ([`job_room`]). Both only translate between the
//! runtime and `gateway-core`, which makes every protocol decision.
// `#[durable_object]` and `#[event]` generate undocumented public glue.
#![allow(missing_docs)]

pub mod bench_cuts;
pub mod body;
pub mod config;
pub mod guard;
pub mod job_room;
pub mod log;
pub mod reply;
pub mod router;
pub mod runtime;

pub use job_room::JobRoom;
