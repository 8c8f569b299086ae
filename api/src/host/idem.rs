//! `client_order_id` idempotency: unique per account. A retry with the same
//! parameters gets the original answer; a reuse with other parameters is a
//! conflict. Rebuilt from the journal's place commands on recovery.

use pipeline::{AccountId, ClientOrderId, Event, NewOrder};
use std::collections::HashMap;

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
}
