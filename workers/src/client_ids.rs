//! `client_order_id` idempotency: unique per account within a window
//! ([`CLIENT_ID_WINDOW_US`], 24 hours of the engine's clock). The intake's
//! index, and the one `ops verify` rebuilds to check the snapshots'. A retry with
//! the same parameters gets the original answer; a reuse with other
//! parameters is a conflict; once the window has passed, the id is
//! forgotten and may be used again. Saved in the engine's snapshots, and
//! rebuilt from the journal's place commands after the snapshot on
//! recovery, forgetting as the live intake did: only on accepted commands,
//! by their journaled times.

use pipeline::{AccountId, ClientOrderId, Event, NewOrder};
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

type Key = (AccountId, ClientOrderId);

/// How long the intake remembers a client order id: 24 hours of the
/// engine's clock (as FIX's `ClOrdID` is unique per trading day). Once a
/// command is accepted more than this after a place, the place's entry is
/// forgotten, and its id may be used again for a new order. Without it the
/// index, and every snapshot, would grow with every order ever placed with
/// an id. The rule is on the journal's own times, so a replay forgets
/// exactly what the live intake forgot.
pub const CLIENT_ID_WINDOW_US: u64 = 24 * 60 * 60 * 1_000_000;

/// One entry of the client order id index: the original place and its
/// events (what a retry is answered with). The intake's index holds these.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ClientIdEntry {
    /// The order as placed.
    pub order: NewOrder,
    /// The events it produced.
    pub events: Vec<Event>,
}

impl ClientIdEntry {
    /// Its key in the index: `(account, client_order_id)`; `None` for an
    /// order placed without a client order id (it has no entry).
    pub fn key(&self) -> Option<(AccountId, ClientOrderId)> {
        Some((self.order.account, self.order.client_order_id?))
    }

    /// When it was placed (engine time, µs): its events' time.
    pub fn placed_at(&self) -> u64 {
        self.events.first().map_or(0, |e| e.ts)
    }

    /// Whether an index with `window_us` still holds it once a command
    /// timed `now` has been accepted.
    pub fn kept(&self, window_us: u64, now: u64) -> bool {
        within(self.placed_at(), window_us, now)
    }
}

/// The rule both the index and [`ClientIdEntry::kept`] follow: a place at
/// `placed_at` is still held once a command timed `now` has been accepted.
fn within(placed_at: u64, window_us: u64, now: u64) -> bool {
    placed_at.saturating_add(window_us) >= now
}

/// `(account, client_order_id)` → [`ClientIdEntry`], for the places of the last
/// window. Shared, so a snapshot takes the entries without copying them on
/// the engine's thread.
#[derive(Clone, Debug)]
pub struct ClientIds {
    map: HashMap<Key, Arc<ClientIdEntry>>,
    /// The keys by when they were placed, oldest first (engine time only
    /// grows), for forgetting them.
    by_time: VecDeque<(u64, Key)>,
    /// How long an id is kept (µs).
    window_us: u64,
}

impl Default for ClientIds {
    fn default() -> ClientIds {
        ClientIds::with_window(CLIENT_ID_WINDOW_US)
    }
}

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
    /// An empty index that keeps ids for `window_us`.
    pub fn with_window(window_us: u64) -> ClientIds {
        ClientIds {
            map: HashMap::new(),
            by_time: VecDeque::new(),
            window_us,
        }
    }

    /// Classifies a new order.
    pub fn lookup(&self, order: &NewOrder) -> Lookup {
        let Some(coid) = order.client_order_id else {
            return Lookup::New;
        };
        match self.map.get(&(order.account, coid)) {
            None => Lookup::New,
            Some(p) if p.order == *order => Lookup::Retry(p.events.clone()),
            Some(_) => Lookup::Conflict(coid),
        }
    }

    /// Records an accepted place.
    pub fn record(&mut self, order: &NewOrder, events: &[Event]) {
        self.insert(ClientIdEntry {
            order: order.clone(),
            events: events.to_vec(),
        });
    }

    fn insert(&mut self, placed: ClientIdEntry) {
        if let Some(key) = placed.key() {
            self.by_time.push_back((placed.placed_at(), key));
            self.map.insert(key, Arc::new(placed));
        }
    }

    /// Forgets the places older than the window, once a command timed
    /// `now` has been accepted. Call after every accepted command (live and
    /// in a replay alike), and with nothing else, so that the index at any
    /// sequence number is a function of the journal.
    pub fn expire(&mut self, now: u64) {
        while let Some(&(at, key)) = self.by_time.front() {
            if within(at, self.window_us, now) {
                break;
            }
            self.by_time.pop_front();
            // The key may have been placed again since (after an earlier
            // expiry); only its entry of that time goes.
            if self.map.get(&key).is_some_and(|p| p.placed_at() == at) {
                self.map.remove(&key);
            }
        }
    }

    /// The original place of `(account, coid)`, if any.
    pub fn get(&self, account: AccountId, coid: ClientOrderId) -> Option<&ClientIdEntry> {
        self.map.get(&(account, coid)).map(|p| &**p)
    }

    /// Every entry, for a snapshot.
    pub fn entries(&self) -> Vec<Arc<ClientIdEntry>> {
        self.map.values().cloned().collect()
    }

    /// How long ids are kept (µs), for a snapshot.
    pub fn window_us(&self) -> u64 {
        self.window_us
    }

    /// The index of `entries` (from a snapshot), keeping ids for
    /// `window_us` from now on.
    pub fn from_entries(mut entries: Vec<ClientIdEntry>, window_us: u64) -> ClientIds {
        entries.sort_by_key(ClientIdEntry::placed_at);
        let mut ids = ClientIds::with_window(window_us);
        for placed in entries {
            ids.insert(placed);
        }
        ids
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const HOUR: u64 = 3_600_000_000;

    fn order(account: u64, coid: &str, quantity: &str) -> NewOrder {
        serde_json::from_value(json!({
            "account": account, "client_order_id": coid, "market": "BTC-USD",
            "side": "buy", "order_type": "limit", "price": "100", "quantity": quantity,
            "time_in_force": "gtc", "post_only": false,
        }))
        .expect("a valid order")
    }

    /// An event at `ts` (only its time matters to the index).
    fn accepted(order: &NewOrder, ts: u64) -> Vec<Event> {
        let kind = json!({"deposited": {"account": order.account, "asset": "USD", "amount": "1"}});
        vec![
            serde_json::from_value(json!({"seq": ts, "ts": ts, "kind": kind}))
                .expect("a valid event"),
        ]
    }

    #[test]
    fn an_id_is_a_retry_within_the_window_and_new_after_it() {
        let mut ids = ClientIds::with_window(24 * HOUR);
        let first = order(7, "a", "1");
        ids.record(&first, &accepted(&first, HOUR));
        ids.expire(HOUR);

        ids.expire(24 * HOUR);
        assert!(matches!(ids.lookup(&first), Lookup::Retry(_)));
        assert!(matches!(
            ids.lookup(&order(7, "a", "2")),
            Lookup::Conflict(_)
        ));
        assert!(matches!(ids.lookup(&order(8, "a", "2")), Lookup::New));

        // A command accepted 24 h and 1 µs after the place.
        ids.expire(25 * HOUR + 1);
        assert!(matches!(ids.lookup(&order(7, "a", "2")), Lookup::New));
        assert!(ids.entries().is_empty());
    }

    #[test]
    fn an_id_used_again_after_the_window_is_kept_for_a_window_of_its_own() {
        let mut ids = ClientIds::with_window(HOUR);
        let first = order(7, "a", "1");
        ids.record(&first, &accepted(&first, 1));
        ids.expire(2 * HOUR);
        let again = order(7, "a", "2");
        ids.record(&again, &accepted(&again, 2 * HOUR));
        ids.expire(2 * HOUR + 5);
        assert!(matches!(ids.lookup(&again), Lookup::Retry(_)));
        ids.expire(3 * HOUR);
        assert_eq!(ids.entries().len(), 1);
        ids.expire(3 * HOUR + 1);
        assert!(ids.entries().is_empty());
    }

    #[test]
    fn an_index_restored_from_entries_forgets_them_in_the_order_they_were_placed() {
        let (a, b) = (order(1, "a", "1"), order(2, "b", "1"));
        let entries = vec![
            ClientIdEntry {
                events: accepted(&b, 3 * HOUR),
                order: b.clone(),
            },
            ClientIdEntry {
                events: accepted(&a, HOUR),
                order: a.clone(),
            },
        ];
        let mut ids = ClientIds::from_entries(entries, HOUR);
        ids.expire(2 * HOUR + 1);
        assert!(matches!(ids.lookup(&a), Lookup::New));
        assert!(matches!(ids.lookup(&b), Lookup::Retry(_)));
    }
}
