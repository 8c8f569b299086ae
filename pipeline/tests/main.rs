//! Integration tests: one binary (see STYLE.md), one module per concern.

mod invariants;
mod props;
mod replay;
