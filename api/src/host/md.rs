//! Market data out of the engine host: after each durable commit, the
//! batch's events and, for every market the batch touched, a depth diff
//! against the last published state of its book (Binance-style sequencing).
//!
//! The host keeps the last published L2 state of each book and compares it
//! with the engine's book after the commit, so a diff is exact whatever the
//! batch did (places, trades, cancels, replaces, self-trade prevention) and
//! stays correct across a fail-closed rebuild: the rebuilt book is compared
//! with what clients were told, not with what the engine had before.

use pipeline::{Depth, Engine, Event, EventKind, MarketId};
use rust_decimal::Decimal;
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet, HashMap};

use crate::wire::Level;

/// How many levels per side the Redis book snapshot keeps.
pub const SNAPSHOT_LEVELS: usize = 50;

/// What one durable commit (or a rebuild) changed.
#[derive(Clone, Debug, Default)]
pub struct Committed {
    /// Every event of the commit, in sequence order.
    pub events: Vec<Event>,
    /// The commit's workflows by id (the sequence number of each one's
    /// first event), ascending: an event belongs to the last one at or
    /// before its sequence number.
    pub workflows: Vec<u64>,
    /// One diff per market whose book changed.
    pub diffs: Vec<DepthDiff>,
    /// The top [`SNAPSHOT_LEVELS`] of each changed book, as of the diff.
    pub books: Vec<Depth>,
}

/// The changes to one book between two engine sequence numbers.
///
/// Applying it to the book as of `first_sequence - 1` gives the book as of
/// `last_sequence`. Sequence numbers are the engine's global ones, so a
/// market's consecutive diffs chain (`first_sequence == previous
/// last_sequence + 1`) even when other markets' events lie between them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct DepthDiff {
    /// The market.
    pub market: MarketId,
    /// The first sequence number this diff covers.
    pub first_sequence: u64,
    /// The engine sequence number the book is at after this diff.
    pub last_sequence: u64,
    /// Changed bid levels, best first: the absolute quantity now resting at
    /// each price, 0 when the level is gone.
    pub bids: Vec<Level>,
    /// Changed ask levels, best first, as the bids.
    pub asks: Vec<Level>,
}

/// One side of a book: price → quantity.
type Side = BTreeMap<Decimal, Decimal>;

/// The last published state of one book.
#[derive(Debug, Default)]
struct Published {
    /// The sequence number of the last diff (or of the baseline).
    last_seq: u64,
    /// Bids.
    bids: Side,
    /// Asks.
    asks: Side,
}

/// The last published state of every book.
#[derive(Debug, Default)]
pub(super) struct BookTracker {
    /// Per market; empty until the first recovery sets the baseline.
    books: HashMap<MarketId, Published>,
}

/// The markets whose books `events` may have changed.
pub(super) fn touched(events: &[Event]) -> BTreeSet<MarketId> {
    events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::OrderAccepted { order } => Some(order.market),
            EventKind::Trade(t) => Some(t.market),
            EventKind::OrderReplaced { market, .. } | EventKind::OrderClosed { market, .. } => {
                Some(*market)
            }
            EventKind::Deposited { .. } | EventKind::Withdrawn { .. } => None,
        })
        .collect()
}

fn sides(d: &Depth) -> (Side, Side) {
    let side = |ls: &[pipeline::Level]| {
        ls.iter()
            .map(|l| (l.price.value(), l.quantity.value()))
            .collect()
    };
    (side(&d.bids), side(&d.asks))
}

/// The levels of `new` that differ from `old`, removed ones with quantity 0.
fn changes(old: &Side, new: &Side, best_first_desc: bool) -> Vec<Level> {
    let mut out: Vec<Level> = new
        .iter()
        .filter(|(p, q)| old.get(*p) != Some(*q))
        .map(|(p, q)| Level {
            price: *p,
            quantity: *q,
        })
        .chain(old.keys().filter(|p| !new.contains_key(*p)).map(|p| Level {
            price: *p,
            quantity: Decimal::ZERO,
        }))
        .collect();
    out.sort_by_key(|c| c.price);
    if best_first_desc {
        out.reverse();
    }
    out
}

impl BookTracker {
    /// Whether a baseline exists (the first recovery is done).
    pub(super) fn is_empty(&self) -> bool {
        self.books.is_empty()
    }

    /// Diffs `markets` (all when `None`) of `engine` against the published
    /// state and makes the engine's books the published state.
    pub(super) fn diff(
        &mut self,
        engine: &Engine,
        markets: Option<BTreeSet<MarketId>>,
    ) -> (Vec<DepthDiff>, Vec<Depth>) {
        let markets = markets.unwrap_or_else(|| engine.markets().iter().map(|m| m.id).collect());
        let seq = engine.last_seq();
        let (mut diffs, mut books) = (Vec::new(), Vec::new());
        for id in markets {
            let Some(depth) = engine.depth(&id, usize::MAX) else {
                continue;
            };
            let (bids, asks) = sides(&depth);
            let published = self.books.entry(id).or_default();
            let bid_changes = changes(&published.bids, &bids, true);
            let ask_changes = changes(&published.asks, &asks, false);
            if bid_changes.is_empty() && ask_changes.is_empty() {
                continue;
            }
            diffs.push(DepthDiff {
                market: id,
                first_sequence: published.last_seq + 1,
                last_sequence: seq,
                bids: bid_changes,
                asks: ask_changes,
            });
            *published = Published {
                last_seq: seq,
                bids,
                asks,
            };
            let mut top = depth;
            top.bids.truncate(SNAPSHOT_LEVELS);
            top.asks.truncate(SNAPSHOT_LEVELS);
            books.push(top);
        }
        (diffs, books)
    }

    /// Makes the engine's books the published state without a diff (the
    /// first recovery: nothing was published before this process).
    pub(super) fn baseline(&mut self, engine: &Engine) -> Vec<Depth> {
        let seq = engine.last_seq();
        let mut books = Vec::new();
        for m in engine.markets() {
            let Some(mut depth) = engine.depth(&m.id, usize::MAX) else {
                continue;
            };
            let (bids, asks) = sides(&depth);
            self.books.insert(
                m.id,
                Published {
                    last_seq: seq,
                    bids,
                    asks,
                },
            );
            depth.bids.truncate(SNAPSHOT_LEVELS);
            depth.asks.truncate(SNAPSHOT_LEVELS);
            books.push(depth);
        }
        books
    }
}
