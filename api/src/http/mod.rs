//! The HTTP surface: one route list per resource, merged here with the
//! middleware (auth and throttling on `/v1`, metrics, body limit, tracing,
//! `Connection: close` on answers given before the body was read).
//!
//! [`routes`] is the single list of every (method, path) served: the router
//! is built from it and the OpenAPI document is checked against it.

mod funds;
mod health;
mod markets;
pub mod openapi;
mod orders;
pub mod unread;
mod ws;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::handler::Handler;
use axum::http::Method;
use axum::middleware::from_fn_with_state;
use axum::routing::{MethodFilter, MethodRouter, on};
use pipeline::Market;
use std::collections::BTreeMap;
use std::sync::Arc;
use tower_http::trace::TraceLayer;
use workers::db::Db;

use crate::auth::{AuthConfig, authenticate};
use crate::error::ApiError;
use crate::host::EngineHandle;
use crate::metrics::{Metrics, count};
use crate::ratelimit::{RateLimiter, throttle};
use crate::stream::Hub;
use crate::stream::redis::RedisLink;

/// The largest accepted request body.
pub const BODY_LIMIT: usize = 64 * 1024;

/// A request body must arrive whole within this time of its headers.
pub const BODY_READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// What handlers share: one `Arc`, so the router's per-request clone of
/// the state is one reference count, not one per field (`perf` had put the
/// clone and drop of the fields at ≈ 1% of the HTTP threads' samples at
/// 10,000 requests/s; the machine's CPU use did not change measurably).
#[derive(Clone, Debug)]
pub struct AppState(Arc<Shared>);

impl AppState {
    /// Shares `shared` with every handler.
    pub fn new(shared: Shared) -> AppState {
        AppState(Arc::new(shared))
    }
}

impl std::ops::Deref for AppState {
    type Target = Shared;
    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// The fields of [`AppState`].
#[derive(Debug)]
pub struct Shared {
    /// The engine task.
    pub host: EngineHandle,
    /// Clearway's database (persisted orders and trades, workflow traces).
    pub db: Db,
    /// Counters.
    pub metrics: Arc<Metrics>,
    /// The configured markets.
    pub markets: Arc<Vec<Market>>,
    /// Token verification (for routes that authenticate themselves).
    pub auth: Arc<AuthConfig>,
    /// The in-process fan-out to WebSocket sessions.
    pub hub: Arc<Hub>,
    /// Redis, when configured.
    pub redis: Option<Arc<RedisLink>>,
}

/// Who may call a route.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// A bearer token, checked by the `/v1` middleware; throttled per account.
    Bearer,
    /// A bearer token the handler checks itself (header or `?token=`).
    OwnToken,
    /// Anyone (probes, metrics, the API description).
    Public,
}

/// One (method, path) and its handler.
pub struct Route {
    /// The method.
    pub method: Method,
    /// The path template, `{param}` style (as in OpenAPI).
    pub path: &'static str,
    /// Who may call it.
    pub access: Access,
    /// The handler, bound to `method` only.
    handler: MethodRouter<AppState>,
}

/// A route on `method` and `path` served by `handler`.
fn route<H, T>(access: Access, method: Method, path: &'static str, handler: H) -> Route
where
    H: Handler<T, AppState>,
    T: 'static,
{
    let filter = MethodFilter::try_from(method.clone())
        .unwrap_or_else(|_| panic!("no method filter for {method}"));
    Route {
        method,
        path,
        access,
        handler: on(filter, handler),
    }
}

/// Every route the intake serves.
pub fn routes() -> Vec<Route> {
    [
        orders::routes(),
        markets::routes(),
        funds::routes(),
        ws::routes(),
        openapi::routes(),
        health::routes(),
    ]
    .into_iter()
    .flatten()
    .collect()
}

/// The routes of `access`, merged per path.
fn build(access: Access) -> Router<AppState> {
    let mut paths: BTreeMap<&str, MethodRouter<AppState>> = BTreeMap::new();
    for r in routes().into_iter().filter(|r| r.access == access) {
        let merged = match paths.remove(r.path) {
            Some(m) => m.merge(r.handler),
            None => r.handler,
        };
        paths.insert(r.path, merged);
    }
    paths
        .into_iter()
        .fold(Router::new(), |router, (path, m)| router.route(path, m))
}

/// Builds the whole router.
pub fn router(state: AppState, limiter: Arc<RateLimiter>) -> Router {
    let metrics = state.metrics.clone();
    let auth = state.auth.clone();
    let v1 = build(Access::Bearer)
        .route_layer(from_fn_with_state(limiter, throttle))
        .route_layer(from_fn_with_state(auth, authenticate));
    Router::new()
        .merge(v1)
        .merge(build(Access::OwnToken))
        .merge(build(Access::Public))
        .method_not_allowed_fallback(method_not_allowed)
        .fallback(not_found)
        .with_state(state)
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(axum::middleware::from_fn(announced_too_large))
        .layer(axum::middleware::from_fn(unread::close_if_unread))
        .layer(from_fn_with_state(metrics, count))
        .layer(TraceLayer::new_for_http())
}

/// A body announced (`Content-Length`) over [`BODY_LIMIT`] is refused before
/// it is read, not after the client has sent (or pretended to send) it.
async fn announced_too_large(
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let announced = req
        .headers()
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    match announced {
        Some(n) if n > BODY_LIMIT as u64 => {
            axum::response::IntoResponse::into_response(ApiError::PayloadTooLarge)
        }
        _ => next.run(req).await,
    }
}

async fn not_found() -> ApiError {
    ApiError::NotFound("route")
}

/// The path exists, the method does not (axum adds the `Allow` header).
async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed
}
