//! settle: double-entry ledger legs and balances.
//!
//! - input: a workflow's trades, deposits and withdrawals;
//! - idempotency key: `(posting, leg)` is the ledger's primary key; a balance
//!   moves only by the legs this run inserted (`returning`), so a second run
//!   is a no-op;
//! - effect: `ledger_entries` and `balances`, in the caller's transaction: one
//!   multi-row insert of the batch's legs, one upsert of the summed moves;
//! - recorded: the attempt row, by the runtime.
//!
//! Every posting's legs sum to zero per asset. Account 0 is the outside
//! world: a deposit credits the account and debits account 0.

use super::StepError;
use crate::db::{Arg, Tx};
use crate::workflow::WorkflowInput;
use anyhow::{Context, Result};
use pipeline::{Asset, EventKind, Market, Side, Trade};
use rust_decimal::Decimal;
use std::collections::BTreeMap;

/// The account that stands for the world outside the exchange.
pub const EXTERNAL_ACCOUNT: u64 = 0;

/// One leg of a posting.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Leg {
    /// The posting it belongs to: `trade:<id>`, `deposit:<seq>`, `withdrawal:<seq>`.
    pub posting: String,
    /// Its index within the posting.
    pub leg: i64,
    /// The account moved.
    pub account: u64,
    /// The asset moved.
    pub asset: Asset,
    /// Signed amount: credit positive, debit negative.
    pub amount: Decimal,
    /// trade, fee, deposit or withdrawal.
    pub kind: &'static str,
}

/// The legs of a trade: base from seller to buyer, quote (with fees) from
/// buyer to seller and the fee account.
pub fn trade_legs(t: &Trade, market: &Market, fee_account: u64) -> Vec<Leg> {
    let (buyer, seller, buyer_fee, seller_fee) = match t.taker_side {
        Side::Buy => (
            t.taker_account.0,
            t.maker_account.0,
            t.taker_fee,
            t.maker_fee,
        ),
        Side::Sell => (
            t.maker_account.0,
            t.taker_account.0,
            t.maker_fee,
            t.taker_fee,
        ),
    };
    let posting = format!("trade:{}", t.trade_id.0);
    let leg = |i, account, asset: &Asset, amount, kind| Leg {
        posting: posting.clone(),
        leg: i,
        account,
        asset: *asset,
        amount,
        kind,
    };
    let q = t.quantity.value();
    vec![
        leg(0, seller, &market.base, -q, "trade"),
        leg(1, buyer, &market.base, q, "trade"),
        leg(
            2,
            buyer,
            &market.quote,
            -(t.quote_amount + buyer_fee),
            "trade",
        ),
        leg(
            3,
            seller,
            &market.quote,
            t.quote_amount - seller_fee,
            "trade",
        ),
        leg(4, fee_account, &market.quote, buyer_fee + seller_fee, "fee"),
    ]
}

/// The legs of a workflow's events.
pub fn legs(wf: &WorkflowInput, markets: &[Market], fee_account: u64) -> Result<Vec<Leg>> {
    let mut out = Vec::new();
    for ev in &wf.events {
        match &ev.kind {
            EventKind::Trade(t) => {
                let m = markets
                    .iter()
                    .find(|m| m.id == t.market)
                    .with_context(|| format!("unknown market {}", t.market))?;
                out.extend(trade_legs(t, m, fee_account));
            }
            EventKind::Deposited {
                account,
                asset,
                amount,
            } => {
                let p = format!("deposit:{}", ev.seq);
                out.push(Leg {
                    posting: p.clone(),
                    leg: 0,
                    account: account.0,
                    asset: *asset,
                    amount: *amount,
                    kind: "deposit",
                });
                out.push(Leg {
                    posting: p,
                    leg: 1,
                    account: EXTERNAL_ACCOUNT,
                    asset: *asset,
                    amount: -*amount,
                    kind: "deposit",
                });
            }
            EventKind::Withdrawn {
                account,
                asset,
                amount,
            } => {
                let p = format!("withdrawal:{}", ev.seq);
                out.push(Leg {
                    posting: p.clone(),
                    leg: 0,
                    account: account.0,
                    asset: *asset,
                    amount: -*amount,
                    kind: "withdrawal",
                });
                out.push(Leg {
                    posting: p,
                    leg: 1,
                    account: EXTERNAL_ACCOUNT,
                    asset: *asset,
                    amount: *amount,
                    kind: "withdrawal",
                });
            }
            _ => {}
        }
    }
    Ok(out)
}

/// Writes the workflow's legs and moves balances for the new ones.
pub async fn run(
    tx: &mut Tx,
    wf: &WorkflowInput,
    markets: &[Market],
    fee_account: u64,
) -> Result<(), StepError> {
    run_batch(tx, &[wf], markets, fee_account).await
}

/// Writes a batch of workflows' legs in one statement, and moves each
/// balance once by the sum of the legs that statement inserted.
pub async fn run_batch(
    tx: &mut Tx,
    wfs: &[&WorkflowInput],
    markets: &[Market],
    fee_account: u64,
) -> Result<(), StepError> {
    let mut rows = Vec::new();
    for wf in wfs {
        // An unknown market cannot be fixed by retrying.
        for leg in legs(wf, markets, fee_account).map_err(StepError::Permanent)? {
            rows.push(vec![
                Arg::Text(leg.posting),
                Arg::I64(leg.leg),
                Arg::I64(wf.id as i64),
                Arg::I64(leg.account as i64),
                Arg::Text(leg.asset.to_string()),
                Arg::Dec(leg.amount),
                Arg::Text(leg.kind.into()),
                Arg::I64(wf.ts as i64),
            ]);
        }
    }
    let inserted = tx
        .rows_values(
            "insert into ledger_entries (posting, leg, workflow_id, account_id, asset, amount, kind, created_at) \
             select * from {rows} where true on conflict (posting, leg) do nothing returning account_id, asset, amount",
            &rows,
        )
        .await?;
    // Balance changes are summed per (account, asset) and applied in key
    // order, so concurrent settlements lock rows in the same order.
    let mut moves: BTreeMap<(i64, String), Decimal> = BTreeMap::new();
    for r in &inserted {
        *moves.entry((r.i64(0)?, r.text(1)?)).or_default() += r.dec(2)?;
    }
    add_to_balances(tx, moves).await?;
    Ok(())
}

/// Adds each amount to its balance, exactly. PostgreSQL adds in NUMERIC,
/// in one statement. SQLite stores decimals as text, so the sums are
/// computed here, under the write lock its transactions take up front
/// (`begin immediate`).
async fn add_to_balances(tx: &mut Tx, moves: BTreeMap<(i64, String), Decimal>) -> Result<()> {
    if tx.is_pg() {
        let rows: Vec<Vec<Arg>> = moves
            .into_iter()
            .map(|((a, s), d)| vec![Arg::I64(a), Arg::Text(s), Arg::Dec(d)])
            .collect();
        tx.exec_values(
            "insert into balances (account_id, asset, total) select * from {rows} where true \
             on conflict (account_id, asset) do update set total = balances.total + excluded.total",
            &rows,
        )
        .await?;
        return Ok(());
    }
    let keys: Vec<Vec<Arg>> = moves
        .keys()
        .map(|(a, s)| vec![Arg::I64(*a), Arg::Text(s.clone())])
        .collect();
    let mut totals = moves;
    let current = tx
        .rows_values(
            "select account_id, asset, total from balances where (account_id, asset) in (select column1, column2 from {rows})",
            &keys,
        )
        .await?;
    for r in &current {
        if let Some(t) = totals.get_mut(&(r.i64(0)?, r.text(1)?)) {
            *t += r.dec(2)?;
        }
    }
    let rows: Vec<Vec<Arg>> = totals
        .into_iter()
        .map(|((a, s), d)| vec![Arg::I64(a), Arg::Text(s), Arg::Dec(d)])
        .collect();
    tx.exec_values(
        "insert into balances (account_id, asset, total) select * from {rows} where true \
         on conflict (account_id, asset) do update set total = excluded.total",
        &rows,
    )
    .await?;
    Ok(())
}
