//! Probes and metrics, outside `/v1` and without authentication.

use axum::extract::State;
use axum::http::{Method, StatusCode, header};
use axum::response::IntoResponse;
use serde_json::json;

use super::Access::Public;
use super::{AppState, Route, route};
use crate::error::ApiError;
use crate::extract::{Json, NoQuery};
use crate::read;

/// The routes.
pub(super) fn routes() -> Vec<Route> {
    vec![
        route(Public, Method::GET, "/healthz", healthz),
        route(Public, Method::GET, "/readyz", readyz),
        route(Public, Method::GET, "/metrics", metrics),
    ]
}

/// The process is up.
async fn healthz(_: NoQuery) -> Json<serde_json::Value> {
    Json(json!({"status": "ok"}))
}

/// Recovery is done and the database answers. With Redis configured, the
/// body says `"redis": "ok"` or `"down"`; Redis down does not make the
/// intake unready (it is a cache and a fan-out, never on the order path).
#[tracing::instrument(skip(s))]
async fn readyz(
    State(s): State<AppState>,
    _: NoQuery,
) -> Result<Json<serde_json::Value>, ApiError> {
    if !(s.host.is_ready() && read::ping(&s.db).await) {
        return Err(ApiError::Unavailable);
    }
    let mut body = json!({"status": "ready"});
    if let Some(r) = &s.redis {
        body["redis"] = json!(if r.ping().await { "ok" } else { "down" });
    }
    Ok(Json(body))
}

/// Prometheus text.
async fn metrics(State(s): State<AppState>, _: NoQuery) -> impl IntoResponse {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        s.metrics.render(),
    )
}
