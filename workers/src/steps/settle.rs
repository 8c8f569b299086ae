//! settle: double-entry ledger legs and balances.
//!
//! - input: a workflow's trades, deposits and withdrawals;
//! - idempotency key: `(posting, leg)` is the ledger's primary key; a balance
//!   moves only when its leg was inserted by this run, so a second run is a
//!   no-op;
//! - effect: `ledger_entries` and `balances`, in the caller's transaction;
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
    // Balance changes are summed per (account, asset) and applied in key
    // order, so concurrent settlements lock rows in the same order.
    let mut moves: std::collections::BTreeMap<(u64, String), Decimal> = Default::default();
    // An unknown market cannot be fixed by retrying.
    for leg in legs(wf, markets, fee_account).map_err(StepError::Permanent)? {
        let inserted = tx
            .exec(
                "insert into ledger_entries (posting, leg, workflow_id, account_id, asset, amount, kind, created_at) \
                 values ($1, $2, $3, $4, $5, $6, $7, $8) on conflict (posting, leg) do nothing",
                &[
                    Arg::Text(leg.posting.clone()),
                    Arg::I64(leg.leg),
                    Arg::I64(wf.id as i64),
                    Arg::I64(leg.account as i64),
                    Arg::Text(leg.asset.to_string()),
                    Arg::Dec(leg.amount),
                    Arg::Text(leg.kind.into()),
                    Arg::I64(wf.ts as i64),
                ],
            )
            .await?;
        if inserted == 1 {
            *moves
                .entry((leg.account, leg.asset.to_string()))
                .or_default() += leg.amount;
        }
    }
    for ((account, asset), amount) in moves {
        add_to_balance(tx, account, &asset, amount).await?;
    }
    Ok(())
}

/// Adds `amount` to a balance; the sum is computed here, exactly.
/// SQLite transactions here take the write lock up front (`begin immediate`);
/// PostgreSQL locks the row.
async fn add_to_balance(tx: &mut Tx, account: u64, asset: &str, amount: Decimal) -> Result<()> {
    let key = [Arg::I64(account as i64), Arg::Text(asset.to_string())];
    let select = if tx.is_pg() {
        "select total from balances where account_id = $1 and asset = $2 for update"
    } else {
        "select total from balances where account_id = $1 and asset = $2"
    };
    let rows = tx.rows(select, &key).await?;
    let total = match rows.first() {
        Some(r) => r.dec(0)? + amount,
        None => amount,
    };
    tx.exec(
        "insert into balances (account_id, asset, total) values ($1, $2, $3) \
         on conflict (account_id, asset) do update set total = excluded.total",
        &[key[0].clone(), key[1].clone(), Arg::Dec(total)],
    )
    .await?;
    Ok(())
}
