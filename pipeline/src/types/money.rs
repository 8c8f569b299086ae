//! Exact, strictly positive decimal newtypes for prices and quantities.

use std::fmt;

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::error::ParseError;

/// Parses a decimal string exactly: digits with an optional `-` and an
/// optional fraction (`"101.25"`, `"-3"`, `"0.5"`) — no exponent, `+`,
/// `_`, or bare `.`; and never rounded, so a value with more significant
/// digits than a 96-bit decimal holds (≈ 28) is an error, not a nearby number.
pub fn parse_exact(what: &'static str, s: &str) -> Result<Decimal, ParseError> {
    let bad = |why: &'static str| ParseError::Decimal {
        what,
        value: s.chars().take(80).collect(),
        why,
    };
    let digits = s.strip_prefix('-').unwrap_or(s);
    let (int, frac) = match digits.split_once('.') {
        Some((i, f)) => (i, Some(f)),
        None => (digits, None),
    };
    let all_digits = |p: &str| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit());
    if !all_digits(int) || frac.is_some_and(|f| !all_digits(f)) {
        return Err(bad(
            "not a decimal number (digits, optionally one '.' and more digits)",
        ));
    }
    // A fraction's trailing zeros are not digits of the value: `"100.000…0"`
    // with more zeros than a decimal's 28-digit scale is exactly 100 (as
    // leading zeros are already), so it is read without them before it is
    // refused. The value keeps the scale it is written with when it fits.
    Decimal::from_str_exact(s)
        .or_else(|e| match frac {
            Some(f) if f.ends_with('0') => {
                let kept = s.trim_end_matches('0').trim_end_matches('.');
                Decimal::from_str_exact(kept)
            }
            _ => Err(e),
        })
        .map_err(|_| bad("too many digits to hold exactly"))
}

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
                $ty::new(parse_exact($what, s)?)
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
    fn decimals_parse_exactly_or_not_at_all() {
        assert_eq!(parse_exact("amount", "0.5").unwrap(), dec!(0.5));
        assert_eq!(parse_exact("amount", "-3").unwrap(), dec!(-3));
        assert_eq!(
            parse_exact("amount", "0.0000000000000000000000000001").unwrap(),
            dec!(0.0000000000000000000000000001)
        );
        for bad in [
            "", "1e5", "1E5", "+1", "1_000", ".5", "7.", "-", "1.2.3", " 1", "0x10", "NaN",
        ] {
            assert!(parse_exact("amount", bad).is_err(), "{bad:?} parsed");
        }
        // Would round: 29 significant digits, or beyond 28 decimal places.
        for lossy in [
            "0.09999999999999999999999999999",
            "90000.0000000000000000000000001",
            "0.00000000000000000000000000001",
            "99999999999999999999999999999",
            "99999999999999999999999999999.000",
            "0.0000000000000000000000000000100",
        ] {
            let e = parse_exact("amount", lossy).unwrap_err().to_string();
            assert!(e.contains("too many digits"), "{lossy}: {e}");
        }
        // Zeros that are not digits of the value, before or after it, are
        // read past whatever their count: the value is exact either way.
        let zeros = "0".repeat(40);
        assert_eq!(
            parse_exact("amount", &format!("{zeros}100")).unwrap(),
            dec!(100)
        );
        assert_eq!(
            parse_exact("amount", &format!("100.{zeros}")).unwrap(),
            dec!(100)
        );
        assert_eq!(
            parse_exact("amount", &format!("0.01{zeros}")).unwrap(),
            dec!(0.01)
        );
        assert_eq!(
            parse_exact("amount", &format!("-2.5{zeros}")).unwrap(),
            dec!(-2.5)
        );
        // Within the scale, the written scale is kept.
        assert_eq!(parse_exact("amount", "1.50").unwrap().scale(), 2);
    }

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
