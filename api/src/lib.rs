//! Clearway's HTTP intake.
//!
//! # Layout
//!
//! - [`app`]: building the intake and running it (`clearway up` / `serve`);
//! - [`host`]: the engine host — one task, on a thread of its own, owns the
//!   engine, batches commands,
//!   group-commits them to the transport, and only then replies; it keeps
//!   recently closed orders readable until persist has recorded them, and
//!   writes snapshots so a restart replays only the journal's tail;
//!   `host::priority` lowers the shared runtime's threads below it;
//! - [`http`]: the route lists (`orders`, `markets`, `funds`, `ws`, `openapi`,
//!   `health`) merged in one place; the OpenAPI document;
//! - [`stream`]: WebSocket market data and order updates, Redis fan-out and
//!   book cache, workflow progress;
//! - [`wire`]: request and response bodies, `TryFrom<…> for NewOrder`;
//! - [`read`]: SQL reads of persisted orders and trades;
//! - [`auth`]: JWT bearer authentication, scopes and the cache of verified tokens;
//!   [`dev`]: the dev HS256 secret;
//! - [`ratelimit`]: per-account and global token buckets;
//! - [`metrics`]: Prometheus counters, and histograms of group-commit and request latency;
//! - [`error`]: [`ApiError`] → RFC 9457 problem+json; [`extract`]: extractors
//!   whose rejections are [`ApiError`]s (JSON bodies, queries, paths, none).

pub mod app;
pub mod auth;
pub mod dev;
pub mod error;
pub mod extract;
pub mod host;
pub mod http;
pub mod metrics;
pub mod ratelimit;
pub mod read;
pub mod stream;
pub mod wire;

pub use error::ApiError;
