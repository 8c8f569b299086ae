//! Exact, strictly positive decimal newtypes for prices and quantities.

use std::fmt;

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::error::ParseError;

macro_rules! positive_decimal {
    ($ty:ident, $what:literal) => {
        impl $ty {
            /// Wraps a decimal; it must be strictly positive.
            pub fn new(value: Decimal) -> Result<$ty, ParseError> {
                if value > Decimal::ZERO {
                    Ok($ty(value))
                } else {
                    Err(ParseError::NotPositive {
                        what: $what,
                        value: value.to_string(),
                    })
                }
            }

            /// Parses a decimal string such as `"101.25"`; it must be strictly positive.
            pub fn parse(s: &str) -> Result<$ty, ParseError> {
                let value: Decimal = s.parse().map_err(|_| ParseError::Decimal {
                    what: $what,
                    value: s.chars().take(80).collect(),
                })?;
                $ty::new(value)
            }

            /// The exact value.
            pub fn value(&self) -> Decimal {
                self.0
            }
        }

        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0, f)
            }
        }

        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let value = <Decimal as Deserialize>::deserialize(d)?;
                $ty::new(value).map_err(serde::de::Error::custom)
            }
        }
    };
}

/// A price in quote units per base unit; exact and strictly positive. Serialized as a string.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct Price(Decimal);
positive_decimal!(Price, "price");

/// A quantity of the base asset; exact and strictly positive. Serialized as a string.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct Quantity(Decimal);
positive_decimal!(Quantity, "quantity");

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal_macros::dec;

    #[test]
    fn prices_must_be_strictly_positive() {
        assert_eq!(Price::parse("101.25").unwrap().value(), dec!(101.25));
        assert!(Price::parse("0").is_err());
        assert!(Price::parse("-1").is_err());
        assert!(Price::parse("abc").is_err());
        assert!(Quantity::new(dec!(0)).is_err());
    }

    #[test]
    fn quantities_round_trip_through_json_as_strings() {
        let q = Quantity::parse("0.001").unwrap();
        let json = serde_json::to_string(&q).unwrap();
        assert_eq!(json, "\"0.001\"");
        assert_eq!(serde_json::from_str::<Quantity>(&json).unwrap(), q);
        assert!(serde_json::from_str::<Quantity>("\"-2\"").is_err());
    }
}
