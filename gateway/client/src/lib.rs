//! Rust client of the progress gateway (work in progress).
