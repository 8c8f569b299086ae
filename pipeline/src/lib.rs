//! Clearway's pure domain: money types, order book and matching, balances and
//! holds, commands and events. No I/O, no clocks: time (`ts`, microseconds) is an
//! argument and sequence numbers are engine state.
//!
//! # Layout
//!
//! - [`types`]: identifiers ([`AccountId`], [`Asset`], [`MarketId`], ...), exact
//!   [`Price`] and [`Quantity`], order attributes and the [`Market`] definition.
//! - [`command`]: [`Command`], [`NewOrder`] and [`Transfer`], the engine's input.
//! - [`event`]: [`Event`] and [`EventKind`], the engine's output, plus read models
//!   ([`OrderRecord`], [`Depth`], [`Balance`]).
//! - [`error`]: [`Reject`] (typed command rejections with stable codes),
//!   [`ParseError`], [`ConfigError`], [`RestoreError`].
//! - `spec`: markets compiled to integers (ticks, lots, asset units) and the
//!   precision rules — see [`spec`] for how fees stay exact.
//! - `book`: one market's order book, integer prices and quantities, O(1) cancel.
//! - `risk`: balances and holds in integer units.
//! - [`engine`]: [`Engine`]: validate, hold, match, settle, emit; snapshots.
//!
//! # Determinism
//!
//! The engine has no hidden inputs: the same commands with the same timestamps give
//! the same events and the same state, which is what replay and recovery rely on.

pub mod command;
pub mod engine;
pub mod error;
pub mod event;
pub mod spec;
pub mod types;

mod book;
mod risk;

pub use command::{Command, NewOrder, Transfer};
pub use engine::{BalanceRecord, Engine, EngineConfig, EngineState};
pub use error::{ConfigError, ParseError, Reject, RestoreError};
pub use event::{Balance, CloseReason, Depth, Event, EventKind, Level, OrderRecord, Trade};
pub use types::ids::{AccountId, Asset, ClientOrderId, MarketId, OrderId, TradeId};
pub use types::market::Market;
pub use types::money::{Price, Quantity, parse_exact};
pub use types::order::{OrderType, SelfTradePrevention, Side, TimeInForce};
