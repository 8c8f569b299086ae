//! A price level: a FIFO queue threaded through the book's order slab.

/// "No slot": the end of a level's list.
pub(crate) const NIL: u32 = u32::MAX;

/// One price level. Orders are linked through their slab slots (`prev`/`next`),
/// so removing any order is O(1) and keeps the others' time priority.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Level {
    /// The oldest order (first to fill).
    pub head: u32,
    /// The newest order.
    pub tail: u32,
    /// The sum of the orders' open lots.
    pub lots: u128,
}

impl Level {
    /// An empty level.
    pub fn empty() -> Level {
        Level {
            head: NIL,
            tail: NIL,
            lots: 0,
        }
    }
}
