//! Orders that closed recently. A closed order leaves the engine at once,
//! but reaches the `orders` table only when the persist step has run; in
//! between, reads answer from here, so an order that got a 202 is never a
//! 404. Rebuilt with the engine when it replays the journal, so a restart
//! does not reopen the gap. Bounded: the oldest entries go first (by then
//! persist has long run, unless the workers are down — then a read may 404
//! until they catch up).

use pipeline::{AccountId, Event};
use std::collections::{HashMap, VecDeque};

use crate::wire::OrderView;

/// How many closed orders are kept.
pub const KEEP: usize = 65_536;

/// Order id → (owner, the order as it closed).
#[derive(Debug, Default)]
pub struct RecentlyClosed {
    views: HashMap<u64, (AccountId, OrderView)>,
    order: VecDeque<u64>,
}

impl RecentlyClosed {
    /// Records the orders `closed` by a command, with that command's
    /// `events` applied (their final status and last fills).
    pub fn record(&mut self, closed: &[pipeline::OrderRecord], events: &[Event]) {
        let Some(first) = events.first() else { return };
        for rec in closed {
            let mut view = OrderView::from_record(rec, first.seq);
            view.apply(events);
            if self.views.insert(rec.id.0, (rec.account, view)).is_none() {
                self.order.push_back(rec.id.0);
            }
        }
        while self.order.len() > KEEP {
            if let Some(old) = self.order.pop_front() {
                self.views.remove(&old);
            }
        }
    }

    /// The closed order `id`, with its owner.
    pub fn get(&self, id: u64) -> Option<&(AccountId, OrderView)> {
        self.views.get(&id)
    }
}
