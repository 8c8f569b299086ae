//! Balances (own, from the engine) and operator deposits and withdrawals.

use axum::extract::State;
use axum::http::{Method, StatusCode};
use pipeline::{AccountId, Asset, ClientOrderId, Command, Transfer};
use serde::Serialize;
use std::collections::BTreeMap;

use super::Access::Bearer;
use super::{AppState, Route, route};
use crate::auth::{Principal, Scope};
use crate::error::ApiError;
use crate::extract::{IdempotencyKey, Json, NoQuery};
use crate::wire::{BalanceView, FundsRequest, FundsResponse};

/// The routes.
pub(super) fn routes() -> Vec<Route> {
    vec![
        route(Bearer, Method::GET, "/v1/balances", balances),
        route(Bearer, Method::POST, "/v1/deposits", deposit),
        route(Bearer, Method::POST, "/v1/withdrawals", withdraw),
    ]
}

/// An account's balances by asset.
#[derive(Debug, Serialize)]
struct Balances {
    account_id: u64,
    sequence: u64,
    balances: BTreeMap<String, BalanceView>,
}

/// Own balances, available and held, as the engine has them.
#[tracing::instrument(skip(s, p), fields(account.id = p.account.0))]
async fn balances(
    State(s): State<AppState>,
    p: Principal,
    _: NoQuery,
) -> Result<Json<Balances>, ApiError> {
    p.require(Scope::Trade)?;
    let account = p.account;
    let (seq, list) = s
        .host
        .read(move |c| (c.engine.last_seq(), c.engine.balances(account)))
        .await?;
    let balances = list
        .into_iter()
        .map(|(a, b)| (a.as_str().to_string(), b.into()))
        .collect();
    Ok(Json(Balances {
        account_id: account.0,
        sequence: seq,
        balances,
    }))
}

/// Credits an account (scope `operate`): 202 once durable; 200 with the
/// original answer for a retry of the same `client_transfer_id`.
#[tracing::instrument(skip(s, p, req), fields(account.id = p.account.0))]
async fn deposit(
    State(s): State<AppState>,
    p: Principal,
    _: NoQuery,
    key: IdempotencyKey,
    Json(req): Json<FundsRequest>,
) -> Result<(StatusCode, Json<FundsResponse>), ApiError> {
    move_funds(&s, &p, with_key(req, key)?, true).await
}

/// Debits an account (scope `operate`), as [`deposit`] credits one.
#[tracing::instrument(skip(s, p, req), fields(account.id = p.account.0))]
async fn withdraw(
    State(s): State<AppState>,
    p: Principal,
    _: NoQuery,
    key: IdempotencyKey,
    Json(req): Json<FundsRequest>,
) -> Result<(StatusCode, Json<FundsResponse>), ApiError> {
    move_funds(&s, &p, with_key(req, key)?, false).await
}

/// The request with an `Idempotency-Key` header as its `client_transfer_id`.
fn with_key(mut req: FundsRequest, key: IdempotencyKey) -> Result<FundsRequest, ApiError> {
    key.fill(
        &mut req.client_transfer_id,
        "invalid_client_transfer_id",
        "client_transfer_id",
    )?;
    Ok(req)
}

fn transfer_id_invalid() -> ApiError {
    ApiError::invalid(
        "invalid_client_transfer_id",
        "client_transfer_id (or Idempotency-Key) must be 1 to 64 characters of A-Z a-z 0-9 _ - . :",
    )
}

async fn move_funds(
    s: &AppState,
    p: &Principal,
    req: FundsRequest,
    credit: bool,
) -> Result<(StatusCode, Json<FundsResponse>), ApiError> {
    p.require(Scope::Operate)?;
    let asset =
        Asset::parse(&req.asset).map_err(|e| ApiError::invalid("invalid_asset", e.to_string()))?;
    let amount = pipeline::parse_exact("amount", &req.amount)
        .map_err(|e| ApiError::invalid("invalid_amount", e.to_string()))?;
    if req.account_id > crate::auth::MAX_ACCOUNT {
        return Err(ApiError::invalid(
            "invalid_account",
            format!("account ids go up to {}", crate::auth::MAX_ACCOUNT),
        ));
    }
    if crate::auth::is_reserved(req.account_id) {
        return Err(ApiError::invalid(
            "reserved_account",
            format!(
                "account {} is reserved (0 is the outside world, 1 the fee account)",
                req.account_id
            ),
        ));
    }
    let client_transfer_id = req
        .client_transfer_id
        .as_deref()
        .map(ClientOrderId::parse)
        .transpose()
        .map_err(|_| transfer_id_invalid())?;
    let account = AccountId(req.account_id);
    let transfer = Transfer {
        account,
        asset,
        amount,
        client_transfer_id,
    };
    let cmd = if credit {
        Command::Deposit(transfer)
    } else {
        Command::Withdraw(transfer)
    };
    let accepted = s.host.submit(cmd).await?;
    let sequence = accepted.events.last().map_or(0, |e| e.seq);
    let workflow_id = accepted.events.first().map_or(0, |e| e.seq);
    let balance = s
        .host
        .read(move |c| c.engine.balance(account, &asset))
        .await?
        .into();
    let body = FundsResponse {
        account_id: account.0,
        asset: asset.as_str().into(),
        amount,
        client_transfer_id: client_transfer_id.map(|id| id.to_string()),
        sequence,
        workflow_id,
        balance,
    };
    let status = if accepted.replayed {
        StatusCode::OK
    } else {
        StatusCode::ACCEPTED
    };
    Ok((status, Json(body)))
}
