//! Reads from Clearway's database (`orders`, `trades`): what the persist
//! step has written. It may lag the engine by that step.

use anyhow::Result;
use rust_decimal::Decimal;
use serde::Serialize;
use workers::db::{Arg, Db, Row};

use crate::wire::{Fill, Links, OrderView, plain};

const ORDER_COLS: &str = "order_id, account_id, market, client_order_id, side, order_type, price, quantity, \
                          status, filled, open_quantity, last_seq";

fn order_view(r: &Row) -> Result<(u64, OrderView)> {
    let id = r.i64(0)? as u64;
    let view = OrderView {
        order_id: id,
        client_order_id: r.opt_text(3)?,
        market: r.text(2)?,
        side: r.text(4)?,
        order_type: r.text(5)?,
        price: r.opt_text(6)?.map(|p| p.parse::<Decimal>()).transpose()?,
        quantity: r.dec(7)?,
        status: r.text(8)?,
        filled: r.dec(9)?,
        remaining: r.dec(10)?,
        fills: vec![],
        sequence: r.i64(11)? as u64,
        links: Links::of(id),
    };
    Ok((r.i64(1)? as u64, view))
}

/// An order as persisted, with its owner and fills.
#[tracing::instrument(skip(db))]
pub async fn order(db: &Db, order_id: u64) -> Result<Option<(u64, OrderView)>> {
    let sql = format!("select {ORDER_COLS} from orders where order_id = $1");
    let Some(row) = db
        .rows(&sql, &[Arg::I64(order_id as i64)])
        .await?
        .into_iter()
        .next()
    else {
        return Ok(None);
    };
    let (owner, mut view) = order_view(&row)?;
    view.fills = fills(db, order_id).await?;
    Ok(Some((owner, view)))
}

/// The id of an account's order by its client order id: the newest, as an
/// id may be used again once the intake's window has passed.
#[tracing::instrument(skip(db))]
pub async fn order_id_by_client_id(
    db: &Db,
    account: u64,
    client_order_id: &str,
) -> Result<Option<u64>> {
    let rows = db
        .rows(
            "select order_id from orders where account_id = $1 and client_order_id = $2 \
             order by order_id desc limit 1",
            &[Arg::I64(account as i64), Arg::Text(client_order_id.into())],
        )
        .await?;
    rows.first().map(|r| Ok(r.i64(0)? as u64)).transpose()
}

/// An account's orders, newest first, with ids below `before`.
#[tracing::instrument(skip(db))]
pub async fn orders(
    db: &Db,
    account: u64,
    before: Option<u64>,
    limit: u32,
) -> Result<Vec<OrderView>> {
    let sql = format!(
        "select {ORDER_COLS} from orders where account_id = $1 and order_id < $2 order by order_id desc limit $3"
    );
    let before = before.map_or(i64::MAX, |b| b as i64);
    let args = [
        Arg::I64(account as i64),
        Arg::I64(before),
        Arg::I64(i64::from(limit)),
    ];
    db.rows(&sql, &args)
        .await?
        .iter()
        .map(|r| Ok(order_view(r)?.1))
        .collect()
}

/// An order's fills, in trade order.
#[tracing::instrument(skip(db))]
pub async fn fills(db: &Db, order_id: u64) -> Result<Vec<Fill>> {
    Ok(fills_of(db, &[order_id])
        .await?
        .remove(&order_id)
        .unwrap_or_default())
}

/// The fills of each of `order_ids` (at most a page of them), in trade order.
pub async fn fills_of(
    db: &Db,
    order_ids: &[u64],
) -> Result<std::collections::HashMap<u64, Vec<Fill>>> {
    let mut out: std::collections::HashMap<u64, Vec<Fill>> = Default::default();
    if order_ids.is_empty() {
        return Ok(out);
    }
    let ids = workers::db::values_list(1, order_ids.len(), 1);
    let sql = format!(
        "select trade_id, price, quantity, maker_order_id, taker_order_id, maker_fee, taker_fee \
         from trades where maker_order_id in ({ids}) or taker_order_id in ({ids}) order by trade_id"
    );
    let args: Vec<Arg> = order_ids.iter().map(|id| Arg::I64(*id as i64)).collect();
    for r in db.rows(&sql, &args).await? {
        let (maker, taker) = (r.i64(3)? as u64, r.i64(4)? as u64);
        for (id, is_maker) in [(maker, true), (taker, false)] {
            if !order_ids.contains(&id) {
                continue;
            }
            out.entry(id).or_default().push(Fill {
                trade_id: r.i64(0)? as u64,
                price: r.dec(1)?,
                quantity: r.dec(2)?,
                fee: if is_maker { r.dec(5)? } else { r.dec(6)? },
                liquidity: if is_maker { "maker" } else { "taker" },
            });
        }
    }
    Ok(out)
}

/// A public trade.
#[derive(Debug, Clone, Serialize)]
pub struct PublicTrade {
    /// The trade.
    pub trade_id: u64,
    /// The maker's price.
    #[serde(serialize_with = "plain::serialize")]
    pub price: Decimal,
    /// The base quantity.
    #[serde(serialize_with = "plain::serialize")]
    pub quantity: Decimal,
    /// The taker's side.
    pub taker_side: String,
    /// The event sequence number.
    pub sequence: u64,
    /// When it was persisted (µs since the epoch).
    pub ts: i64,
}

/// A market's latest trades, newest first.
#[tracing::instrument(skip(db))]
pub async fn trades(db: &Db, market: &str, limit: u32) -> Result<Vec<PublicTrade>> {
    let rows = db
        .rows(
            "select trade_id, price, quantity, taker_side, seq, created_at from trades \
             where market = $1 order by trade_id desc limit $2",
            &[Arg::Text(market.into()), Arg::I64(i64::from(limit))],
        )
        .await?;
    rows.iter()
        .map(|r| {
            Ok(PublicTrade {
                trade_id: r.i64(0)? as u64,
                price: r.dec(1)?,
                quantity: r.dec(2)?,
                taker_side: r.text(3)?,
                sequence: r.i64(4)? as u64,
                ts: r.i64(5)?,
            })
        })
        .collect()
}

/// Whether the database answers.
pub async fn ping(db: &Db) -> bool {
    db.rows("select 1", &[]).await.is_ok()
}

/// The number of journaled workflows.
pub async fn workflow_count(db: &Db) -> Result<i64> {
    db.rows("select count(*) from workflows", &[]).await?[0].i64(0)
}
