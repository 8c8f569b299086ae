//! Domain types, parsed once at the edge.

pub mod ids;
pub mod market;
pub mod money;
pub mod order;
