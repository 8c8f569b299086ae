//! `/v1/orders`: place, cancel, get, list, trace.

use anyhow::anyhow;
use axum::extract::State;
use axum::http::{Method, StatusCode};
use pipeline::{ClientOrderId, Command, NewOrder, OrderId, Reject};
use serde::{Deserialize, Serialize};
use workers::client_ids::Space;
use workers::records::{Attempt, WorkflowRow};

use super::Access::Bearer;
use super::{AppState, Route, route};
use crate::auth::{Principal, Scope};
use crate::error::ApiError;
use crate::extract::{Count, Id, IdempotencyKey, Json, NoBody, NoQuery, Path, Query};
use crate::read;
use crate::wire::{CreateOrderRequest, OrderView, OwnedRequest, open_status};

/// The routes.
pub(super) fn routes() -> Vec<Route> {
    vec![
        route(Bearer, Method::GET, "/v1/orders", list_orders),
        route(Bearer, Method::POST, "/v1/orders", create_order),
        route(Bearer, Method::GET, "/v1/orders/{id}", get_order),
        route(Bearer, Method::DELETE, "/v1/orders/{id}", cancel_order),
        route(Bearer, Method::GET, "/v1/orders/{id}/trace", trace_order),
    ]
}

/// Places an order: 202 with the fills once durable; 200 with the original
/// answer for a retry of the same `client_order_id` (or `Idempotency-Key`)
/// and parameters.
#[tracing::instrument(level = "debug", skip(s, p, req), fields(account.id = p.account.0))]
async fn create_order(
    State(s): State<AppState>,
    p: Principal,
    _: NoQuery,
    key: IdempotencyKey,
    Json(mut req): Json<CreateOrderRequest>,
) -> Result<(StatusCode, Json<OrderView>), ApiError> {
    p.require(Scope::Trade)?;
    key.fill(
        &mut req.client_order_id,
        "invalid_client_order_id",
        "client_order_id",
    )?;
    let order = NewOrder::try_from(OwnedRequest(p.account, req))?;
    let accepted = s.host.submit(Command::Place(order)).await?;
    let view = OrderView::from_place(&accepted.events)
        .ok_or_else(|| anyhow!("an accepted place produced no OrderAccepted event"))?;
    let status = if accepted.replayed {
        StatusCode::OK
    } else {
        StatusCode::ACCEPTED
    };
    Ok((status, Json(view)))
}

/// Cancels an open order: 202 with its final state.
#[tracing::instrument(level = "debug", skip(s, p), fields(account.id = p.account.0))]
async fn cancel_order(
    State(s): State<AppState>,
    p: Principal,
    Path(Id(id)): Path<Id>,
    _: NoQuery,
    _: NoBody,
) -> Result<(StatusCode, Json<OrderView>), ApiError> {
    p.require(Scope::Trade)?;
    let mut view = load_order(&s, &p, id).await?;
    let not_open = |status: &str| {
        ApiError::invalid(
            "order_not_open",
            format!("order {id} is {status}; only an open order can be cancelled"),
        )
    };
    if view.is_closed() {
        return Err(not_open(&view.status));
    }
    let cmd = Command::Cancel {
        account: p.account,
        order_id: OrderId(id),
    };
    let accepted = s.host.submit(cmd).await.map_err(|e| match e {
        ApiError::Rejected(Reject::NotOrderOwner) => ApiError::NotFound("order"),
        // It closed in the meantime (or its persisted row lagged).
        ApiError::Rejected(Reject::UnknownOrder) => not_open("closed"),
        other => other,
    })?;
    view.apply(&accepted.events);
    Ok((StatusCode::ACCEPTED, Json(view)))
}

/// One own order: the engine's live record while open, else the persisted one.
#[tracing::instrument(skip(s, p), fields(account.id = p.account.0))]
async fn get_order(
    State(s): State<AppState>,
    p: Principal,
    Path(Id(id)): Path<Id>,
    _: NoQuery,
) -> Result<Json<OrderView>, ApiError> {
    p.require(Scope::Trade)?;
    Ok(Json(load_order(&s, &p, id).await?))
}

/// An own order: live in the engine while open; once closed, as the engine
/// last saw it until persist has recorded it, then the persisted row. Fills
/// are the persisted ones plus any the engine's view holds that persist has
/// not recorded yet.
async fn load_order(s: &AppState, p: &Principal, id: u64) -> Result<OrderView, ApiError> {
    enum Found {
        Open(pipeline::OrderRecord, u64),
        Closed(pipeline::AccountId, OrderView),
        Gone,
    }
    let found = s
        .host
        .read(move |c| match c.engine.order(OrderId(id)) {
            Some(o) => Found::Open(o, c.engine.last_seq()),
            None => match c.closed.get(id) {
                Some((owner, view)) => Found::Closed(*owner, view.clone()),
                None => Found::Gone,
            },
        })
        .await?;
    let mut view = match found {
        Found::Open(o, _) if o.account != p.account => return Err(ApiError::NotFound("order")),
        Found::Closed(owner, _) if owner != p.account => return Err(ApiError::NotFound("order")),
        Found::Open(o, seq) => OrderView::from_record(&o, seq),
        Found::Closed(_, view) => view,
        Found::Gone => {
            return match read::order(&s.db, id).await? {
                Some((owner, view)) if owner == p.account.0 => Ok(view),
                _ => Err(ApiError::NotFound("order")),
            };
        }
    };
    let mut fills = read::fills(&s.db, id).await?;
    for f in view.fills.drain(..) {
        if !fills.iter().any(|k| k.trade_id == f.trade_id) {
            fills.push(f);
        }
    }
    fills.sort_by_key(|f| f.trade_id);
    view.fills = fills;
    Ok(view)
}

/// `GET /v1/orders` parameters.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ListParams {
    /// Find the order with this client order id (0 or 1 result).
    client_order_id: Option<String>,
    /// Page size, 1–500 (default 100).
    limit: Option<Count>,
    /// Only orders with a smaller id (the previous page's `next_before`).
    before: Option<Id>,
}

/// A page of orders.
#[derive(Debug, Serialize)]
struct OrderPage {
    orders: Vec<OrderView>,
    /// Pass as `before` for the next page; absent on the last page.
    next_before: Option<u64>,
}

/// Own orders, newest first, or the one with a `client_order_id`.
#[tracing::instrument(skip(s, p), fields(account.id = p.account.0))]
async fn list_orders(
    State(s): State<AppState>,
    p: Principal,
    Query(q): Query<ListParams>,
) -> Result<Json<OrderPage>, ApiError> {
    p.require(Scope::Trade)?;
    if let Some(coid) = q.client_order_id {
        if q.limit.is_some() || q.before.is_some() {
            return Err(ApiError::BadRequest {
                code: "invalid_query",
                detail: "client_order_id finds one order; it takes no limit or before".into(),
            });
        }
        let orders = find_by_client_id(&s, &p, &coid)
            .await?
            .into_iter()
            .collect();
        return Ok(Json(OrderPage {
            orders,
            next_before: None,
        }));
    }
    let limit = Count::in_range(q.limit, 100u32, 1..=500, "limit")?;
    let mut orders = read::orders(&s.db, p.account.0, q.before.map(|b| b.0), limit).await?;
    let ids: Vec<u64> = orders.iter().map(|o| o.order_id).collect();
    let mut fills = read::fills_of(&s.db, &ids).await?;
    for o in &mut orders {
        o.fills = fills.remove(&o.order_id).unwrap_or_default();
    }
    overlay_live(&s, &mut orders).await?;
    let next_before = (orders.len() == limit as usize)
        .then(|| orders.last().map(|o| o.order_id))
        .flatten();
    Ok(Json(OrderPage {
        orders,
        next_before,
    }))
}

/// Persisted rows may lag: where the engine still has the order open, its
/// live filled and remaining quantities win.
async fn overlay_live(s: &AppState, orders: &mut [OrderView]) -> Result<(), ApiError> {
    let ids: Vec<OrderId> = orders.iter().map(|o| OrderId(o.order_id)).collect();
    let live = s
        .host
        .read(move |c| ids.iter().map(|id| c.engine.order(*id)).collect::<Vec<_>>())
        .await?;
    for (view, rec) in orders.iter_mut().zip(live) {
        if let Some(rec) = rec {
            view.filled = rec.filled;
            view.remaining = rec.remaining;
            view.quantity = rec.quantity.value();
            view.status = open_status(rec.filled).into();
        }
    }
    Ok(())
}

async fn find_by_client_id(
    s: &AppState,
    p: &Principal,
    coid: &str,
) -> Result<Option<OrderView>, ApiError> {
    let parsed = ClientOrderId::parse(coid).map_err(|e| ApiError::BadRequest {
        code: "invalid_query",
        detail: e.to_string(),
    })?;
    let account = p.account;
    let known = s
        .host
        .read(move |c| {
            c.client_ids
                .get(account, Space::Order, parsed)
                .map(|pl| pl.events.clone())
        })
        .await?;
    let id = match known.as_deref().and_then(OrderView::from_place) {
        Some(v) => Some(v.order_id),
        None => read::order_id_by_client_id(&s.db, p.account.0, coid).await?,
    };
    match id {
        Some(id) => match load_order(s, p, id).await {
            Err(ApiError::NotFound(_)) => Ok(None),
            other => other.map(Some),
        },
        None => Ok(None),
    }
}

/// One workflow of a trace with its attempts.
#[derive(Debug, Serialize)]
struct TracedWorkflow {
    #[serde(flatten)]
    workflow: WorkflowRow,
    step_attempts: Vec<Attempt>,
}

/// A workflow of another order's command that filled this order as the
/// resting (maker) order: the taker's account and order are not shown.
#[derive(Debug, Serialize)]
struct TracedFill {
    workflow_id: u64,
    trade_ids: Vec<u64>,
    state: String,
    step: String,
    step_attempts: Vec<Attempt>,
}

/// An order's workflows and every step attempt, then the workflows that
/// settled its fills as the maker.
#[derive(Debug, Serialize)]
struct Trace {
    order_id: u64,
    workflows: Vec<TracedWorkflow>,
    maker_fills: Vec<TracedFill>,
}

/// The order's settlement trail: owner or scope `audit`.
#[tracing::instrument(skip(s, p), fields(account.id = p.account.0))]
async fn trace_order(
    State(s): State<AppState>,
    p: Principal,
    Path(Id(id)): Path<Id>,
    _: NoQuery,
) -> Result<Json<Trace>, ApiError> {
    let traced = workers::records::trace(&s.db, id).await?;
    let owner = p.has(Scope::Trade)
        && traced
            .iter()
            .any(|(w, _)| w.kind == "order" && w.account_id == p.account.0);
    if traced.is_empty() || !(owner || p.has(Scope::Audit)) {
        return Err(ApiError::NotFound("order"));
    }
    let maker_fills = workers::records::maker_fills(&s.db, id)
        .await?
        .into_iter()
        .map(|f| TracedFill {
            workflow_id: f.workflow.id,
            trade_ids: f.trade_ids,
            state: f.workflow.state,
            step: f.workflow.step,
            step_attempts: f.attempts,
        })
        .collect();
    let workflows = traced
        .into_iter()
        .map(|(workflow, step_attempts)| TracedWorkflow {
            workflow,
            step_attempts,
        })
        .collect();
    Ok(Json(Trace {
        order_id: id,
        workflows,
        maker_fills,
    }))
}
