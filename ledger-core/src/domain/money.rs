//! Points and money. Points are whole units; money is an exact decimal in a
//! named currency, serialised as a JSON string so no consumer ever parses it
//! as a binary float.

use std::fmt;
use std::str::FromStr;

use rust_decimal::Decimal;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Whole points. Every command-level amount is bounded by
/// [`POINTS_PER_COMMAND_MAX`], and the supply cap by [`SUPPLY_CAP_MAX`], so
/// cumulative totals cannot overflow a `u64` in any realistic lifetime.
pub type Points = u64;

/// Largest amount of points one command may move.
pub const POINTS_PER_COMMAND_MAX: Points = 1_000_000_000_000;
/// Largest supply cap a programme may configure.
pub const SUPPLY_CAP_MAX: Points = 1_000_000_000_000_000;
/// Most decimal places a money amount may carry.
pub const MONEY_SCALE_MAX: u32 = 8;

/// An exact decimal amount of money (or a money rate such as a price per
/// point). In JSON always a string: `"12.50"`.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Amount(pub Decimal);

impl Amount {
    pub const ZERO: Amount = Amount(Decimal::ZERO);

    pub fn is_negative(self) -> bool {
        self.0.is_sign_negative() && !self.0.is_zero()
    }

    pub fn is_positive(self) -> bool {
        self.0 > Decimal::ZERO
    }

    pub fn checked_add(self, other: Amount) -> Option<Amount> {
        self.0.checked_add(other.0).map(Amount)
    }

    pub fn checked_sub(self, other: Amount) -> Option<Amount> {
        self.0.checked_sub(other.0).map(Amount)
    }

    /// `points × self`, exact, for prices per point.
    pub fn checked_times_points(self, points: Points) -> Option<Amount> {
        self.0.checked_mul(Decimal::from(points)).map(Amount)
    }
}

impl fmt::Display for Amount {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0.normalize(), formatter)
    }
}

impl fmt::Debug for Amount {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "Amount({})", self.0)
    }
}

/// Why a string is not a money amount.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidAmount {
    #[error("{text:?} is not a decimal number")]
    NotDecimal { text: String },
    #[error("{text:?} has more than {MONEY_SCALE_MAX} decimal places")]
    TooPrecise { text: String },
}

impl FromStr for Amount {
    type Err = InvalidAmount;

    fn from_str(text: &str) -> Result<Self, InvalidAmount> {
        // from_str_exact refuses inputs that would be rounded, so "0.1" is
        // exactly one tenth and an over-long fraction is an error, not a guess.
        let value = Decimal::from_str_exact(text).map_err(|_| InvalidAmount::NotDecimal {
            text: text.to_owned(),
        })?;
        if value.scale() > MONEY_SCALE_MAX {
            return Err(InvalidAmount::TooPrecise {
                text: text.to_owned(),
            });
        }
        Ok(Amount(value))
    }
}

/// A string in human-readable formats; in binary ones (the log, snapshots)
/// the mantissa and scale as integers (so `12.50` stays `12.50`): formatting and parsing
/// decimal text was a third of the cost of encoding an envelope.
impl Serialize for Amount {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if !serializer.is_human_readable() {
            return (self.0.mantissa(), self.0.scale()).serialize(serializer);
        }
        serializer.collect_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Amount {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        if !deserializer.is_human_readable() {
            let (mantissa, scale) = <(i128, u32)>::deserialize(deserializer)?;
            if scale > MONEY_SCALE_MAX {
                return Err(serde::de::Error::custom(format!(
                    "an amount with {scale} decimal places (at most {MONEY_SCALE_MAX})"
                )));
            }
            return Decimal::try_from_i128_with_scale(mantissa, scale)
                .map(Amount)
                .map_err(serde::de::Error::custom);
        }
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// An ISO 4217 currency code: three upper-case ASCII letters.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Currency([u8; 3]);

impl Currency {
    pub fn parse(text: &str) -> Result<Self, InvalidCurrency> {
        match text.as_bytes() {
            &[a, b, c] if [a, b, c].iter().all(u8::is_ascii_uppercase) => Ok(Currency([a, b, c])),
            _ => Err(InvalidCurrency {
                text: text.to_owned(),
            }),
        }
    }

    pub fn as_str(&self) -> &str {
        // Only ASCII upper-case letters are ever stored.
        std::str::from_utf8(&self.0).unwrap_or("???")
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{text:?} is not an ISO 4217 currency code (three upper-case letters)")]
pub struct InvalidCurrency {
    pub text: String,
}

impl fmt::Display for Currency {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.as_str())
    }
}

impl fmt::Debug for Currency {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "Currency({})", self.as_str())
    }
}

impl Serialize for Currency {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Currency {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        Currency::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// An amount in a currency.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schemas", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct Money {
    pub amount: Amount,
    pub currency: Currency,
}

#[cfg(feature = "schemas")]
string_schema!(Amount, { "pattern": "^-?[0-9]+(\\.[0-9]+)?$", "description": "An exact decimal amount of money, as a string" });

#[cfg(feature = "schemas")]
string_schema!(Currency, { "pattern": "^[A-Z]{3}$", "description": "An ISO 4217 currency code" });

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_round_trip_as_strings() {
        let amount: Amount = "12.50".parse().expect("valid");
        assert_eq!(
            serde_json::to_string(&amount).ok().as_deref(),
            Some("\"12.50\"")
        );
        let back: Amount = serde_json::from_str("\"12.50\"").expect("valid");
        assert_eq!(back, amount);
    }

    #[test]
    fn amounts_round_trip_in_binary_with_their_scale_and_refuse_excess_precision() {
        for text in [
            "12.50",
            "0",
            "0.00000001",
            "-3",
            "79228162514264337593543950335",
        ] {
            let amount: Amount = text.parse().expect("valid");
            let bytes = postcard::to_allocvec(&amount).expect("encodes");
            let back: Amount = postcard::from_bytes(&bytes).expect("decodes");
            assert_eq!(back.0.to_string(), text);
        }
        let too_precise = postcard::to_allocvec(&(1_i128, MONEY_SCALE_MAX + 1)).expect("encodes");
        assert!(postcard::from_bytes::<Amount>(&too_precise).is_err());
        let too_large = postcard::to_allocvec(&(i128::MAX, 0_u32)).expect("encodes");
        assert!(postcard::from_bytes::<Amount>(&too_large).is_err());
    }

    #[test]
    fn amounts_refuse_numbers_garbage_and_excess_precision() {
        assert!(serde_json::from_str::<Amount>("12.5").is_err());
        assert!("abc".parse::<Amount>().is_err());
        assert!("1e3".parse::<Amount>().is_err());
        assert_eq!(
            "0.123456789".parse::<Amount>(),
            Err(InvalidAmount::TooPrecise {
                text: "0.123456789".into()
            })
        );
    }

    #[test]
    fn currencies_are_three_upper_case_letters() {
        assert!(Currency::parse("EUR").is_ok());
        for bad in ["eur", "EU", "EURO", "E1R", ""] {
            assert!(Currency::parse(bad).is_err(), "{bad}");
        }
    }
}
