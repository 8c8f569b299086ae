//! The integration suite's modules.

mod invariants;
mod props;
mod replay;
