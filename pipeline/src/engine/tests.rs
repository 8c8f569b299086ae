//! Unit tests of the engine, one behaviour each.

mod fixture;
mod funds;
mod orders;
mod place;
mod replace;
