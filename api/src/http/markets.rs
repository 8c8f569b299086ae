//! `/v1/markets`: the configured markets, their books and trades.

use axum::extract::State;
use axum::http::Method;
use pipeline::{Market, MarketId};
use serde::{Deserialize, Serialize};

use super::Access::Bearer;
use super::{AppState, Route, route};
use crate::auth::Principal;
use crate::error::ApiError;
use crate::extract::{Count, Json, NoQuery, Path, Query};
use crate::read::{self, PublicTrade};
use crate::wire::BookSnapshot;

/// The routes.
pub(super) fn routes() -> Vec<Route> {
    vec![
        route(Bearer, Method::GET, "/v1/markets", list_markets),
        route(Bearer, Method::GET, "/v1/markets/{market}/book", book),
        route(Bearer, Method::GET, "/v1/markets/{market}/trades", trades),
    ]
}

/// The markets' list.
#[derive(Debug, Serialize)]
struct Markets {
    markets: Vec<Market>,
}

/// Every configured market with its tick, lot, limits and fees.
#[tracing::instrument(skip(s, _p))]
async fn list_markets(State(s): State<AppState>, _p: Principal, _: NoQuery) -> Json<Markets> {
    Json(Markets {
        markets: s.markets.iter().map(without_trailing_zeros).collect(),
    })
}

/// `m` with its decimals written as every decimal of the API is.
fn without_trailing_zeros(m: &Market) -> Market {
    Market {
        tick_size: m.tick_size.normalize(),
        lot_size: m.lot_size.normalize(),
        min_quantity: m.min_quantity.normalize(),
        max_quantity: m.max_quantity.normalize(),
        min_notional: m.min_notional.normalize(),
        ..m.clone()
    }
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
    depth: Option<Count>,
}

/// The top levels of a market's book, with the engine sequence they reflect.
///
/// Where it comes from: the local engine whenever it is ready (its snapshot
/// is never older than the cached one); while it recovers or has failed
/// closed, the snapshot cached in Redis after the last commit (top
/// [`SNAPSHOT_LEVELS`](crate::host::md::SNAPSHOT_LEVELS) levels) when Redis is configured and has one; else 503.
#[tracing::instrument(skip(s, _p))]
async fn book(
    State(s): State<AppState>,
    _p: Principal,
    Path(market): Path<String>,
    Query(q): Query<BookParams>,
) -> Result<Json<BookSnapshot>, ApiError> {
    let id = known_market(&s, &market)?;
    let depth = Count::in_range(q.depth, 20usize, 1..=500, "depth")?;
    match s.host.read(move |c| c.engine.depth(&id, depth)).await {
        Ok(book) => book
            .map(|d| Json(d.into()))
            .ok_or(ApiError::NotFound("market")),
        Err(ApiError::Unavailable) => cached_book(&s, id.as_str(), depth).await,
        Err(e) => Err(e),
    }
}

async fn cached_book(
    s: &AppState,
    market: &str,
    depth: usize,
) -> Result<Json<BookSnapshot>, ApiError> {
    let redis = s.redis.as_ref().ok_or(ApiError::Unavailable)?;
    let text = redis.book(market).await.ok_or(ApiError::Unavailable)?;
    let mut book: BookSnapshot = serde_json::from_str(&text)
        .map_err(|e| anyhow::anyhow!("malformed cached book of {market}: {e}"))?;
    book.bids.truncate(depth);
    book.asks.truncate(depth);
    Ok(Json(book))
}

/// `?limit=N` (1–1000, default 50).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TradesParams {
    limit: Option<Count>,
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
    let limit = Count::in_range(q.limit, 50u32, 1..=1000, "limit")?;
    let trades = read::trades(&s.db, id.as_str(), limit).await?;
    Ok(Json(Trades {
        market: id.as_str().into(),
        trades,
    }))
}
