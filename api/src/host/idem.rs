//! `client_order_id` idempotency: unique per account. A retry with the same
//! parameters gets the original answer; a reuse with other parameters is a
//! conflict. Saved whole in the engine's snapshots, and rebuilt from the
//! journal's place commands after the snapshot on recovery.

use pipeline::{AccountId, ClientOrderId, Event, NewOrder};
use std::collections::HashMap;
use std::sync::Arc;

/// The original place and its events (the same record snapshots hold).
pub use workers::snapshot::ClientIdEntry as Placed;

/// `(account, client_order_id)` → [`Placed`]. Shared, so a snapshot takes
/// the entries without copying them on the engine's thread.
#[derive(Clone, Debug, Default)]
pub struct ClientIds(HashMap<(AccountId, ClientOrderId), Arc<Placed>>);

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
            self.0.insert((order.account, coid), Arc::new(placed));
        }
    }

    /// The original place of `(account, coid)`, if any.
    pub fn get(&self, account: AccountId, coid: ClientOrderId) -> Option<&Placed> {
        self.0.get(&(account, coid)).map(|p| &**p)
    }

    /// Every entry, for a snapshot.
    pub fn entries(&self) -> Vec<Arc<Placed>> {
        self.0.values().cloned().collect()
    }

    /// The index of `entries` (from a snapshot).
    pub fn from_entries(entries: Vec<Placed>) -> ClientIds {
        let keyed = entries
            .into_iter()
            .filter_map(|p| Some((p.key()?, Arc::new(p))));
        ClientIds(keyed.collect())
    }
}
