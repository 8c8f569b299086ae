//! One market's order book: price levels per side in `BTreeMap<ticks, Level>`,
//! orders in a slab with intrusive per-level FIFO lists.
//!
//! Prices are integer ticks and quantities integer lots here; decimals exist
//! only at the engine's edge.

mod level;
mod node;

use std::collections::BTreeMap;

pub(crate) use level::{Level, NIL};
pub(crate) use node::Node;

use crate::types::order::Side;

/// The bids, the asks and the orders resting in them.
#[derive(Debug, Clone, Default)]
pub(crate) struct Book {
    /// Buy levels; the best is the highest key.
    bids: BTreeMap<u64, Level>,
    /// Sell levels; the best is the lowest key.
    asks: BTreeMap<u64, Level>,
    /// Order storage; `None` marks a free slot.
    slots: Vec<Option<Node>>,
    /// Free slots, reused last-in first-out.
    free: Vec<u32>,
}

impl Book {
    fn side_mut(&mut self, side: Side) -> &mut BTreeMap<u64, Level> {
        match side {
            Side::Buy => &mut self.bids,
            Side::Sell => &mut self.asks,
        }
    }

    /// The best price on `side`.
    #[cfg(test)]
    pub fn best(&self, side: Side) -> Option<u64> {
        match side {
            Side::Buy => self.bids.last_key_value().map(|(t, _)| *t),
            Side::Sell => self.asks.first_key_value().map(|(t, _)| *t),
        }
    }

    /// The best price on `side` and the slot of the first order there.
    pub fn best_head(&self, side: Side) -> Option<(u64, u32)> {
        let best = match side {
            Side::Buy => self.bids.last_key_value(),
            Side::Sell => self.asks.first_key_value(),
        };
        best.map(|(t, l)| (*t, l.head))
    }

    /// Levels on `side`, best first.
    pub fn levels(&self, side: Side) -> Box<dyn Iterator<Item = (u64, &Level)> + '_> {
        match side {
            Side::Buy => Box::new(self.bids.iter().rev().map(|(t, l)| (*t, l))),
            Side::Sell => Box::new(self.asks.iter().map(|(t, l)| (*t, l))),
        }
    }

    /// The orders of a level, oldest first.
    pub fn queue(&self, level: &Level) -> impl Iterator<Item = (u32, &Node)> + '_ {
        let mut slot = level.head;
        std::iter::from_fn(move || {
            if slot == NIL {
                return None;
            }
            let n = self.node(slot);
            let here = slot;
            slot = n.next;
            Some((here, n))
        })
    }

    /// The order in `slot` (which must be occupied).
    pub fn node(&self, slot: u32) -> &Node {
        match &self.slots[slot as usize] {
            Some(n) => n,
            None => unreachable!("book slot {slot} is empty"),
        }
    }

    /// The order in `slot`, mutably. Changing `lots` must go through [`Book::set_lots`].
    pub fn node_mut(&mut self, slot: u32) -> &mut Node {
        match &mut self.slots[slot as usize] {
            Some(n) => n,
            None => unreachable!("book slot {slot} is empty"),
        }
    }

    /// Makes room for `orders` resting orders at once, so that the order
    /// storage does not grow by moving all of it later (see
    /// [`crate::Engine::reserve_resting`]).
    pub fn reserve(&mut self, orders: usize) {
        self.slots.reserve(orders.saturating_sub(self.slots.len()));
        self.free.reserve(orders.saturating_sub(self.free.len()));
    }

    /// How many orders fit before the order storage must grow.
    #[cfg(test)]
    pub fn room(&self) -> usize {
        self.slots.capacity()
    }

    /// Appends an order at the back of its price level; returns its slot.
    pub fn insert(&mut self, mut node: Node) -> u32 {
        let slot = match self.free.pop() {
            Some(s) => s,
            None => {
                self.slots.push(None);
                (self.slots.len() - 1) as u32
            }
        };
        let (side, ticks, lots) = (node.side, node.ticks, node.lots);
        let level = self
            .side_mut(side)
            .entry(ticks)
            .or_insert_with(Level::empty);
        let old_tail = level.tail;
        level.tail = slot;
        if level.head == NIL {
            level.head = slot;
        }
        level.lots += u128::from(lots);
        node.prev = old_tail;
        node.next = NIL;
        if old_tail != NIL {
            self.node_mut(old_tail).next = slot;
        }
        self.slots[slot as usize] = Some(node);
        slot
    }

    /// Takes an order out of the book.
    pub fn remove(&mut self, slot: u32) -> Node {
        let node = match self.slots[slot as usize].take() {
            Some(n) => n,
            None => unreachable!("book slot {slot} is empty"),
        };
        self.free.push(slot);
        if node.prev != NIL {
            self.node_mut(node.prev).next = node.next;
        }
        if node.next != NIL {
            self.node_mut(node.next).prev = node.prev;
        }
        let levels = self.side_mut(node.side);
        if let Some(level) = levels.get_mut(&node.ticks) {
            if level.head == slot {
                level.head = node.next;
            }
            if level.tail == slot {
                level.tail = node.prev;
            }
            level.lots -= u128::from(node.lots);
            if level.head == NIL {
                levels.remove(&node.ticks);
            }
        }
        node
    }

    /// Changes an order's open lots in place, keeping its priority.
    pub fn set_lots(&mut self, slot: u32, lots: u64) {
        let node = self.node_mut(slot);
        let (side, ticks, old) = (node.side, node.ticks, node.lots);
        node.lots = lots;
        if let Some(level) = self.side_mut(side).get_mut(&ticks) {
            level.lots = level.lots - u128::from(old) + u128::from(lots);
        }
    }

    /// All resting orders, in priority order: bids best first, then asks best first.
    pub fn orders(&self) -> impl Iterator<Item = &Node> + '_ {
        self.levels(Side::Buy)
            .chain(self.levels(Side::Sell))
            .flat_map(move |(_, l)| self.queue(l).map(|(_, n)| n))
    }
}

#[cfg(test)]
mod tests;
