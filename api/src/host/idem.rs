//! `client_order_id` idempotency: unique per account. A retry with the same
//! parameters gets the original answer; a reuse with other parameters is a
//! conflict. Rebuilt from the journal's place commands on recovery.

use anyhow::{Context, Result};
use pipeline::{AccountId, ClientOrderId, Command, Event, NewOrder};
use std::collections::HashMap;
use workers::db::{Arg, Db};
use workers::workflow::WorkflowInput;

/// The original place and its events.
#[derive(Clone, Debug)]
pub struct Placed {
    /// The order as placed.
    pub order: NewOrder,
    /// The events it produced.
    pub events: Vec<Event>,
}

/// `(account, client_order_id)` → [`Placed`].
#[derive(Clone, Debug, Default)]
pub struct ClientIds(HashMap<(AccountId, ClientOrderId), Placed>);

/// What a new place means for the map.
pub enum Lookup {
    /// The id is new (or absent): apply the command.
    New,
    /// Same id, same parameters: answer with the original events.
    Retry(Vec<Event>),
    /// Same id, other parameters.
    Conflict(ClientOrderId),
}

impl ClientIds {
    /// Classifies a new order.
    pub fn lookup(&self, order: &NewOrder) -> Lookup {
        let Some(coid) = order.client_order_id else {
            return Lookup::New;
        };
        match self.0.get(&(order.account, coid)) {
            None => Lookup::New,
            Some(p) if p.order == *order => Lookup::Retry(p.events.clone()),
            Some(_) => Lookup::Conflict(coid),
        }
    }

    /// Records an accepted place.
    pub fn record(&mut self, order: &NewOrder, events: &[Event]) {
        if let Some(coid) = order.client_order_id {
            let placed = Placed {
                order: order.clone(),
                events: events.to_vec(),
            };
            self.0.insert((order.account, coid), placed);
        }
    }

    /// The original place of `(account, coid)`, if any.
    pub fn get(&self, account: AccountId, coid: ClientOrderId) -> Option<&Placed> {
        self.0.get(&(account, coid))
    }

    /// Reads every journaled place that carries a client order id.
    pub async fn load(db: &Db) -> Result<ClientIds> {
        let mut ids = ClientIds::default();
        let mut after = 0i64;
        loop {
            let rows = db
                .rows(
                    "select id, input from workflows where kind = 'order' and id > $1 order by id limit 5000",
                    &[Arg::I64(after)],
                )
                .await?;
            let Some(last) = rows.last() else { break };
            after = last.i64(0)?;
            for r in &rows {
                let wf: WorkflowInput = serde_json::from_str(&r.text(1)?).with_context(|| {
                    format!("workflow {}: malformed input", r.i64(0).unwrap_or(0))
                })?;
                if let Command::Place(order) = &wf.command {
                    ids.record(order, &wf.events);
                }
            }
        }
        Ok(ids)
    }
}
