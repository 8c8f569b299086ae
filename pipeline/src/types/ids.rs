//! Identifiers: numeric ids and short inline codes (assets, markets, client order ids).
//!
//! The codes are stored inline (no heap) so that copying them into events on the
//! matching hot path costs a memcpy, not an allocation.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::error::ParseError;

/// An account (a trader, or the exchange's fee account).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct AccountId(pub u64);

/// An order, numbered by the engine from 1 in acceptance order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct OrderId(pub u64);

/// A trade, numbered by the engine from 1 in execution order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct TradeId(pub u64);

/// Implements `Display`, `FromStr` and string serde for an inline code type with
/// `parse` and `as_str`.
macro_rules! string_code {
    ($ty:ident) => {
        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
        impl fmt::Debug for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({:?})", stringify!($ty), self.as_str())
            }
        }
        impl std::str::FromStr for $ty {
            type Err = ParseError;
            fn from_str(s: &str) -> Result<Self, ParseError> {
                Self::parse(s)
            }
        }
        impl Serialize for $ty {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }
        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
                Self::parse(&s).map_err(serde::de::Error::custom)
            }
        }
    };
}

/// Copies `s` into a zero-padded buffer (zero padding keeps derived `Ord` lexicographic).
fn inline<const N: usize>(s: &str) -> [u8; N] {
    let mut bytes = [0u8; N];
    bytes[..s.len()].copy_from_slice(s.as_bytes());
    bytes
}

/// Reads back the text stored by [`inline`]; the bytes are ASCII by construction.
fn text(bytes: &[u8], len: u8) -> &str {
    std::str::from_utf8(&bytes[..usize::from(len)]).unwrap_or_default()
}

/// An asset code such as `BTC`: 1 to 12 characters of `A-Z0-9`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Asset {
    bytes: [u8; 12],
    len: u8,
}

impl Asset {
    /// Parses an asset code; rejects empty, too long or non `A-Z0-9` input.
    pub fn parse(s: &str) -> Result<Asset, ParseError> {
        let ok = (1..=12).contains(&s.len())
            && s.bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit());
        if !ok {
            return Err(ParseError::Asset(s.chars().take(80).collect()));
        }
        Ok(Asset {
            bytes: inline(s),
            len: s.len() as u8,
        })
    }

    /// The code as text.
    pub fn as_str(&self) -> &str {
        text(&self.bytes, self.len)
    }
}
string_code!(Asset);

/// A market code `BASE-QUOTE`, e.g. `BTC-USD`, each half a valid [`Asset`] code.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MarketId {
    bytes: [u8; 25],
    len: u8,
}

impl MarketId {
    /// Parses a market code of the form `BASE-QUOTE`.
    pub fn parse(s: &str) -> Result<MarketId, ParseError> {
        let ok = s
            .split_once('-')
            .is_some_and(|(b, q)| Asset::parse(b).is_ok() && Asset::parse(q).is_ok());
        if !ok {
            return Err(ParseError::Market(s.chars().take(80).collect()));
        }
        Ok(MarketId {
            bytes: inline(s),
            len: s.len() as u8,
        })
    }

    /// The code as text.
    pub fn as_str(&self) -> &str {
        text(&self.bytes, self.len)
    }
}
string_code!(MarketId);

/// The client's own order reference: 1 to 64 characters of `A-Za-z0-9_-.:`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ClientOrderId {
    bytes: [u8; 64],
    len: u8,
}

impl ClientOrderId {
    /// Parses a client order id.
    pub fn parse(s: &str) -> Result<ClientOrderId, ParseError> {
        let ok = (1..=64).contains(&s.len())
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"_-.:".contains(&b));
        if !ok {
            return Err(ParseError::ClientOrderId(s.chars().take(80).collect()));
        }
        Ok(ClientOrderId {
            bytes: inline(s),
            len: s.len() as u8,
        })
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        text(&self.bytes, self.len)
    }
}
string_code!(ClientOrderId);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn asset_codes_are_uppercase_alphanumeric_up_to_twelve_characters() {
        assert_eq!(Asset::parse("BTC").unwrap().as_str(), "BTC");
        assert!(Asset::parse("btc").is_err());
        assert!(Asset::parse("").is_err());
        assert!(Asset::parse("ABCDEFGHIJKLM").is_err());
        assert!(Asset::parse("USD1").is_ok());
    }

    #[test]
    fn market_codes_are_two_asset_codes_joined_by_a_dash() {
        assert_eq!(MarketId::parse("BTC-USD").unwrap().to_string(), "BTC-USD");
        assert!(MarketId::parse("BTCUSD").is_err());
        assert!(MarketId::parse("BTC-").is_err());
        assert!(MarketId::parse("BTC-USD-X").is_err());
    }

    #[test]
    fn client_order_ids_allow_the_documented_punctuation_only() {
        assert!(ClientOrderId::parse("a-b_c.d:1").is_ok());
        assert!(ClientOrderId::parse("a b").is_err());
        assert!(ClientOrderId::parse(&"x".repeat(65)).is_err());
        assert!(ClientOrderId::parse(&"x".repeat(64)).is_ok());
    }

    #[test]
    fn codes_serialize_as_plain_strings_and_validate_when_deserialized() {
        let a = Asset::parse("ETH").unwrap();
        assert_eq!(serde_json::to_string(&a).unwrap(), "\"ETH\"");
        assert_eq!(serde_json::from_str::<Asset>("\"ETH\"").unwrap(), a);
        assert!(serde_json::from_str::<Asset>("\"eth\"").is_err());
    }

    #[test]
    fn codes_order_lexicographically() {
        assert!(Asset::parse("AB").unwrap() < Asset::parse("ABC").unwrap());
        assert!(Asset::parse("B").unwrap() > Asset::parse("AZZ").unwrap());
    }
}
