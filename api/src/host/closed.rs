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
#[derive(Debug)]
pub struct RecentlyClosed {
    /// Boxed, so the table's slots are small (see `default`).
    views: HashMap<u64, Box<(AccountId, OrderView)>>,
    order: VecDeque<u64>,
}

impl Default for RecentlyClosed {
    /// Allocated whole up front: growing the map by doubling moved every
    /// entry at once, and at 10,000 orders/s each such move stalled the
    /// engine task for 20–100 ms (measured; see BENCHMARKS.md).
    /// Twice [`KEEP`], so the table stays sparse and its removals leave no
    /// tombstones to rehash; its values are boxed, so that costs 4 MiB.
    fn default() -> RecentlyClosed {
        RecentlyClosed {
            views: HashMap::with_capacity(2 * KEEP),
            order: VecDeque::with_capacity(KEEP + 1),
        }
    }
}

impl RecentlyClosed {
    /// Records the orders `closed` by a command, with that command's
    /// `events` applied (their final status and last fills).
    pub fn record(&mut self, closed: &[pipeline::OrderRecord], events: &[Event]) {
        let Some(first) = events.first() else { return };
        for rec in closed {
            let mut view = OrderView::from_record(rec, first.seq);
            view.apply(events);
            if self
                .views
                .insert(rec.id.0, Box::new((rec.account, view)))
                .is_none()
            {
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
        self.views.get(&id).map(|v| &**v)
    }
}
