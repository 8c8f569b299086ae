//! Every decimal the API writes goes out without trailing zeros (`"0"`,
//! `"0.5"`, `"50000"`), so a value reads the same whatever supplied it: the
//! engine (which pads to the asset's or market's scale), the database (which
//! keeps the column's scale) or a client's request. Use with
//! `#[serde(serialize_with = "plain::serialize")]`, or call
//! [`Decimal::normalize`] where a value goes into `json!`.

use rust_decimal::Decimal;
use serde::{Serialize, Serializer};

/// Writes `d` without trailing zeros.
pub fn serialize<S: Serializer>(d: &Decimal, s: S) -> Result<S::Ok, S::Error> {
    Serialize::serialize(&d.normalize(), s)
}

/// Writes `d`, when there is one, without trailing zeros.
pub fn option<S: Serializer>(d: &Option<Decimal>, s: S) -> Result<S::Ok, S::Error> {
    Serialize::serialize(&d.map(|d| d.normalize()), s)
}
