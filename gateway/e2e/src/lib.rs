//! End-to-end fixture: builds the Worker once per test binary, runs it in
//! local workerd through `wrangler dev`, and talks to it over loopback the way
//! a producer and an app do. No part of the runtime is mocked.
//!
//! Every process the fixture starts lives in its own process group and is
//! killed by that group's id on [`Gateway::stop`], on drop (also while a test
//! panics), and, through a watchdog shell that waits on a pipe from the test
//! process, when the test process itself dies.

pub mod api;
pub mod gateway;

pub use api::{
    progress, Api, CloseWatch, Job, Reply, Sub, SubscribeError, WsEvent, FRAME_TIMEOUT,
    LITERAL_PING, LITERAL_PONG,
};
pub use gateway::Gateway;
