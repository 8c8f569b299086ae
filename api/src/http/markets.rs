//! `/v1/markets`: the configured markets, their books and trades.

use axum::Router;
use axum::extract::State;
use axum::routing::get;
use pipeline::{Depth, Market, MarketId};
use serde::{Deserialize, Serialize};

use super::AppState;
use crate::auth::Principal;
use crate::error::ApiError;
use crate::extract::{Json, Path, Query};
use crate::read::{self, PublicTrade};

/// The routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/markets", get(list_markets))
        .route("/v1/markets/{market}/book", get(book))
        .route("/v1/markets/{market}/trades", get(trades))
}

/// The markets' list.
#[derive(Debug, Serialize)]
struct Markets {
    markets: Vec<Market>,
}

/// Every configured market with its tick, lot, limits and fees.
#[tracing::instrument(skip(s, _p))]
async fn list_markets(State(s): State<AppState>, _p: Principal) -> Json<Markets> {
    Json(Markets {
        markets: s.markets.to_vec(),
    })
}

fn known_market(s: &AppState, market: &str) -> Result<MarketId, ApiError> {
    MarketId::parse(market)
        .ok()
        .filter(|id| s.markets.iter().any(|m| m.id == *id))
        .ok_or(ApiError::NotFound("market"))
}

/// `?depth=N` (1–500, default 20).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct BookParams {
    depth: Option<usize>,
}

/// The top levels of a market's book, with the engine sequence they reflect.
#[tracing::instrument(skip(s, _p))]
async fn book(
    State(s): State<AppState>,
    _p: Principal,
    Path(market): Path<String>,
    Query(q): Query<BookParams>,
) -> Result<Json<Depth>, ApiError> {
    let id = known_market(&s, &market)?;
    let depth = q.depth.unwrap_or(20);
    if !(1..=500).contains(&depth) {
        return Err(ApiError::BadRequest {
            code: "invalid_query",
            detail: "depth must be 1 to 500".into(),
        });
    }
    let book = s.host.read(move |c| c.engine.depth(&id, depth)).await?;
    book.map(Json).ok_or(ApiError::NotFound("market"))
}

/// `?limit=N` (1–1000, default 50).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TradesParams {
    limit: Option<u32>,
}

/// The trades list.
#[derive(Debug, Serialize)]
struct Trades {
    market: String,
    trades: Vec<PublicTrade>,
}

/// A market's latest persisted trades, newest first.
#[tracing::instrument(skip(s, _p))]
async fn trades(
    State(s): State<AppState>,
    _p: Principal,
    Path(market): Path<String>,
    Query(q): Query<TradesParams>,
) -> Result<Json<Trades>, ApiError> {
    let id = known_market(&s, &market)?;
    let limit = q.limit.unwrap_or(50);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::BadRequest {
            code: "invalid_query",
            detail: "limit must be 1 to 1000".into(),
        });
    }
    let trades = read::trades(&s.db, id.as_str(), limit).await?;
    Ok(Json(Trades {
        market: id.as_str().into(),
        trades,
    }))
}
