//! The intake's integration tests: one binary, a fresh data dir and engine per test.

mod auth;
mod helpers;
mod orders;
mod throttling;
mod validation;
