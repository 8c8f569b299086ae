//! Client id idempotency: a `client_order_id` is unique per account among
//! its orders, and a `client_transfer_id` among its deposits and withdrawals,
//! within a window ([`CLIENT_ID_WINDOW_US`], 24 hours of the engine's clock).
//! The intake's index, and the one `ops verify` rebuilds to check the
//! snapshots'. A retry with the same parameters gets the original answer; a
//! reuse with other parameters is a conflict; once the window has passed,
//! the id is forgotten and may be used again. Saved in the engine's
//! snapshots, and rebuilt from the journal's commands after the snapshot on
//! recovery, forgetting as the live intake did: only on accepted commands,
//! by their journaled times.

use pipeline::{AccountId, ClientOrderId, Command, Event, NewOrder, Transfer};
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

/// What a client id names. Orders and transfers have ids of their own: an
/// order and a deposit may share one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Space {
    /// `client_order_id`s.
    Order,
    /// `client_transfer_id`s (deposits and withdrawals together).
    Transfer,
}

type Key = (AccountId, Space, ClientOrderId);

/// How long the intake remembers a client id: 24 hours of the
/// engine's clock (as FIX's `ClOrdID` is unique per trading day). Once a
/// command is accepted more than this after a place, the place's entry is
/// forgotten, and its id may be used again for a new order. Without it the
/// index, and every snapshot, would grow with every order ever placed with
/// an id. The rule is on the journal's own times, so a replay forgets
/// exactly what the live intake forgot.
pub const CLIENT_ID_WINDOW_US: u64 = 24 * 60 * 60 * 1_000_000;

/// A command that carries a client id, as it was accepted. Stored in a
/// snapshot as `{"order": ...}`, `{"deposit": ...}` or `{"withdraw": ...}`
/// beside its `events` (snapshots from before transfers had ids hold only
/// orders, in that same form).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Request {
    /// A place.
    Order(NewOrder),
    /// A deposit.
    Deposit(Transfer),
    /// A withdrawal.
    Withdraw(Transfer),
}

impl Request {
    /// The request of `cmd`, when it carries a client id.
    fn of(cmd: &Command) -> Option<Request> {
        match cmd {
            Command::Place(o) if o.client_order_id.is_some() => Some(Request::Order(o.clone())),
            Command::Deposit(t) if t.client_transfer_id.is_some() => {
                Some(Request::Deposit(t.clone()))
            }
            Command::Withdraw(t) if t.client_transfer_id.is_some() => {
                Some(Request::Withdraw(t.clone()))
            }
            _ => None,
        }
    }

    fn key(&self) -> Option<Key> {
        match self {
            Request::Order(o) => Some((o.account, Space::Order, o.client_order_id?)),
            Request::Deposit(t) | Request::Withdraw(t) => {
                Some((t.account, Space::Transfer, t.client_transfer_id?))
            }
        }
    }
}

/// One entry of the client id index: the original command and its events
/// (what a retry is answered with). The intake's index holds these.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientIdEntry {
    /// The command as accepted.
    #[serde(flatten)]
    pub request: Request,
    /// The events it produced.
    pub events: Vec<Event>,
}

impl ClientIdEntry {
    /// Its key in the index: `(account, space, id)`; `None` for a command
    /// without a client id (it has no entry).
    pub fn key(&self) -> Option<Key> {
        self.request.key()
    }

    /// When it was accepted (engine time, µs): its events' time.
    pub fn placed_at(&self) -> u64 {
        self.events.first().map_or(0, |e| e.ts)
    }

    /// Whether an index with `window_us` still holds it once a command
    /// timed `now` has been accepted.
    pub fn kept(&self, window_us: u64, now: u64) -> bool {
        within(self.placed_at(), window_us, now)
    }
}

/// The rule both the index and [`ClientIdEntry::kept`] follow: a command
/// accepted at `placed_at` is still held once a command timed `now` has been
/// accepted.
fn within(placed_at: u64, window_us: u64, now: u64) -> bool {
    placed_at.saturating_add(window_us) >= now
}

/// `(account, space, client id)` → [`ClientIdEntry`], for the commands of
/// the last window. Shared, so a snapshot takes the entries without copying
/// them on the engine's thread.
#[derive(Clone, Debug)]
pub struct ClientIds {
    map: HashMap<Key, Arc<ClientIdEntry>>,
    /// The keys by when they were accepted, oldest first (engine time only
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

/// What a new command means for the map.
pub enum Lookup {
    /// The id is new (or absent): apply the command.
    New,
    /// Same id, same parameters: answer with the original events.
    Retry(Vec<Event>),
    /// Same id, other parameters.
    Conflict(Space, ClientOrderId),
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

    /// Classifies a new command.
    pub fn lookup(&self, cmd: &Command) -> Lookup {
        let Some(request) = Request::of(cmd) else {
            return Lookup::New;
        };
        let Some(key) = request.key() else {
            return Lookup::New;
        };
        match self.map.get(&key) {
            None => Lookup::New,
            Some(p) if p.request == request => Lookup::Retry(p.events.clone()),
            Some(_) => Lookup::Conflict(key.1, key.2),
        }
    }

    /// Records an accepted command (nothing, unless it carries a client id).
    pub fn record(&mut self, cmd: &Command, events: &[Event]) {
        if let Some(request) = Request::of(cmd) {
            self.insert(ClientIdEntry {
                request,
                events: events.to_vec(),
            });
        }
    }

    fn insert(&mut self, placed: ClientIdEntry) {
        if let Some(key) = placed.key() {
            self.by_time.push_back((placed.placed_at(), key));
            self.map.insert(key, Arc::new(placed));
        }
    }

    /// Forgets the commands older than the window, once a command timed
    /// `now` has been accepted. Call after every accepted command (live and
    /// in a replay alike), and with nothing else, so that the index at any
    /// sequence number is a function of the journal.
    pub fn expire(&mut self, now: u64) {
        while let Some(&(at, key)) = self.by_time.front() {
            if within(at, self.window_us, now) {
                break;
            }
            self.by_time.pop_front();
            // The key may have been used again since (after an earlier
            // expiry); only its entry of that time goes.
            if self.map.get(&key).is_some_and(|p| p.placed_at() == at) {
                self.map.remove(&key);
            }
        }
    }

    /// The original command of `(account, space, id)`, if any.
    pub fn get(
        &self,
        account: AccountId,
        space: Space,
        id: ClientOrderId,
    ) -> Option<&ClientIdEntry> {
        self.map.get(&(account, space, id)).map(|p| &**p)
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

    fn order(account: u64, coid: &str, quantity: &str) -> Command {
        serde_json::from_value(json!({"place": {
            "account": account, "client_order_id": coid, "market": "BTC-USD",
            "side": "buy", "order_type": "limit", "price": "100", "quantity": quantity,
            "time_in_force": "gtc", "post_only": false,
        }}))
        .expect("a valid order")
    }

    /// A deposit (`"deposit"`) or withdrawal (`"withdraw"`) with a transfer id.
    fn transfer(kind: &str, account: u64, id: &str, amount: &str) -> Command {
        serde_json::from_value(json!({kind: {
            "account": account, "asset": "USD", "amount": amount, "client_transfer_id": id,
        }}))
        .expect("a valid transfer")
    }

    /// An event at `ts` (only its time matters to the index).
    fn accepted(_: &Command, ts: u64) -> Vec<Event> {
        let kind = json!({"deposited": {"account": 1, "asset": "USD", "amount": "1"}});
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
            Lookup::Conflict(Space::Order, _)
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
        let entry = |cmd: &Command, ts| ClientIdEntry {
            events: accepted(cmd, ts),
            request: Request::of(cmd).expect("an order with a client id"),
        };
        let entries = vec![entry(&b, 3 * HOUR), entry(&a, HOUR)];
        let mut ids = ClientIds::from_entries(entries, HOUR);
        ids.expire(2 * HOUR + 1);
        assert!(matches!(ids.lookup(&a), Lookup::New));
        assert!(matches!(ids.lookup(&b), Lookup::Retry(_)));
    }

    #[test]
    fn transfer_ids_are_their_own_space_shared_by_deposits_and_withdrawals() {
        let mut ids = ClientIds::with_window(HOUR);
        let deposit = transfer("deposit", 7, "bank-1", "10");
        ids.record(&deposit, &accepted(&deposit, 1));
        assert!(matches!(ids.lookup(&deposit), Lookup::Retry(_)));
        assert!(matches!(
            ids.lookup(&transfer("deposit", 7, "bank-1", "11")),
            Lookup::Conflict(Space::Transfer, _)
        ));
        assert!(matches!(
            ids.lookup(&transfer("withdraw", 7, "bank-1", "10")),
            Lookup::Conflict(Space::Transfer, _)
        ));
        assert!(matches!(
            ids.lookup(&transfer("deposit", 8, "bank-1", "10")),
            Lookup::New
        ));
        assert!(matches!(ids.lookup(&order(7, "bank-1", "1")), Lookup::New));
        // Without an id nothing is recorded or matched.
        let plain = Command::deposit(
            AccountId(7),
            pipeline::Asset::parse("USD").expect("an asset"),
            10.into(),
        );
        ids.record(&plain, &accepted(&plain, 2));
        assert!(matches!(ids.lookup(&plain), Lookup::New));
        assert_eq!(ids.entries().len(), 1);
    }

    #[test]
    fn an_entry_of_a_snapshot_from_before_transfer_ids_reads_as_an_order() {
        let Command::Place(placed) = order(7, "a", "1") else {
            unreachable!("order() makes a place")
        };
        let old = json!({"order": placed, "events": accepted(&order(7, "a", "1"), 5)});
        let entry: ClientIdEntry = serde_json::from_value(old.clone()).expect("an old entry");
        assert_eq!(entry.request, Request::Order(placed));
        assert_eq!(serde_json::to_value(&entry).expect("serializes"), old);
    }
}
