//! The HTTP surface: one router per resource, merged here with the
//! middleware (auth and throttling on `/v1`, metrics, body limit, tracing).

mod funds;
mod health;
mod markets;
mod orders;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::middleware::from_fn_with_state;
use pipeline::Market;
use std::sync::Arc;
use tower_http::trace::TraceLayer;
use workers::db::Db;

use crate::auth::{AuthConfig, authenticate};
use crate::error::ApiError;
use crate::host::EngineHandle;
use crate::metrics::{Metrics, count};
use crate::ratelimit::{RateLimiter, throttle};

/// The largest accepted request body.
pub const BODY_LIMIT: usize = 64 * 1024;

/// What handlers share.
#[derive(Clone, Debug)]
pub struct AppState {
    /// The engine task.
    pub host: EngineHandle,
    /// Clearway's database (persisted orders and trades, workflow traces).
    pub db: Db,
    /// Counters.
    pub metrics: Arc<Metrics>,
    /// The configured markets.
    pub markets: Arc<Vec<Market>>,
}

/// Builds the whole router.
pub fn router(state: AppState, auth: Arc<AuthConfig>, limiter: Arc<RateLimiter>) -> Router {
    let metrics = state.metrics.clone();
    let v1 = Router::new()
        .merge(orders::router())
        .merge(markets::router())
        .merge(funds::router())
        .route_layer(from_fn_with_state(limiter, throttle))
        .route_layer(from_fn_with_state(auth, authenticate));
    Router::new()
        .merge(v1)
        .merge(health::router())
        .fallback(not_found)
        .with_state(state)
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(from_fn_with_state(metrics, count))
        .layer(TraceLayer::new_for_http())
}

async fn not_found() -> ApiError {
    ApiError::NotFound("route")
}
