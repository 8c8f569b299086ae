//! The intake's integration tests: one binary, a fresh data dir and engine per test.

mod auth;
mod decimals;
mod engine;
mod fanout;
mod helpers;
mod openapi;
mod orders;
mod stream;
mod throttling;
mod validation;
