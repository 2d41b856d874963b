//! Identifiers. External ids (accounts, merchants, order references, API key
//! ids) are validated once, at construction, so the rest of the domain never
//! sees a malformed one. Internal ids (lots, issuances, ...) are sequence
//! numbers assigned by `apply`, so replaying the same events yields the same
//! ids.

use smol_str::SmolStr;
use std::fmt;

use serde::de::Visitor;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Longest external identifier, in bytes (all allowed characters are ASCII).
pub const EXTERNAL_ID_LENGTH_MAX: usize = 64;

/// Why a string is not a valid external identifier.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidId {
    #[error("must not be empty")]
    Empty,
    #[error("must be at most {EXTERNAL_ID_LENGTH_MAX} characters, got {length}")]
    TooLong { length: usize },
    #[error("character {character:?} at index {index} is not one of [A-Za-z0-9._:@-]")]
    BadCharacter { character: char, index: usize },
}

fn validate_external_id(text: &str) -> Result<(), InvalidId> {
    if text.is_empty() {
        return Err(InvalidId::Empty);
    }
    if let Some((index, character)) = text
        .char_indices()
        .find(|(_, character)| !is_external_id_character(*character))
    {
        return Err(InvalidId::BadCharacter { character, index });
    }
    // Every allowed character is one byte, so the byte length is the length.
    if text.len() > EXTERNAL_ID_LENGTH_MAX {
        return Err(InvalidId::TooLong { length: text.len() });
    }
    Ok(())
}

fn is_external_id_character(character: char) -> bool {
    character.is_ascii_alphanumeric() || matches!(character, '.' | '_' | ':' | '@' | '-')
}

/// Reads an id from borrowed text where the format can lend it.
struct IdVisitor<Id>(fn(&str) -> Result<Id, InvalidId>);

impl<Id> Visitor<'_> for IdVisitor<Id> {
    type Value = Id;

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("a string")
    }

    fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<Id, E> {
        (self.0)(text).map_err(E::custom)
    }
}

macro_rules! external_id {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        // Immutable text, held inline up to 23 bytes (most ids) and shared
        // behind a reference count beyond: an id is cloned into every event
        // and record that names it, and a clone should cost no allocation.
        // Inline, a map lookup compares the key where it finds it; behind
        // a pointer, that comparison was a cache miss of its own.
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(SmolStr);

        impl $name {
            /// At most one allocation (for ids longer than 23 bytes): going
            /// through a `String` first allocated and copied every id twice.
            pub fn parse(text: impl AsRef<str>) -> Result<Self, InvalidId> {
                let text = text.as_ref();
                validate_external_id(text)?;
                Ok(Self(SmolStr::new(text)))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = InvalidId;
            fn try_from(text: String) -> Result<Self, InvalidId> {
                Self::parse(text)
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0.to_string()
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                deserializer.deserialize_str(IdVisitor(|text: &str| $name::parse(text)))
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(&self.0)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
                formatter.write_str(&self.0)
            }
        }

        #[cfg(feature = "schemas")]
        string_schema!($name, { "pattern": "^[A-Za-z0-9._:@-]{1,64}$", "description": "1 to 64 ASCII letters, digits and . _ : @ -" });

        impl fmt::Debug for $name {
            fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(formatter, "{}({:?})", stringify!($name), self.0)
            }
        }
    };
}

external_id!(
    /// A member's points account, named by the integrator.
    AccountId
);
external_id!(
    /// A merchant of the alliance.
    MerchantId
);
external_id!(
    /// The merchant's own reference for an order (receipt, basket, booking).
    OrderRef
);
external_id!(
    /// The public id of an API key (never the secret).
    KeyId
);
external_id!(
    /// A purchase category named by the programme's earning rules.
    Category
);

/// Ids that number records 1, 2, 3, ... in the order `apply` creates them.
pub trait SequenceNumber: Copy {
    fn sequence_number(self) -> u64;
}

macro_rules! sequence_id {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[cfg_attr(feature = "schemas", derive(schemars::JsonSchema))]
        #[serde(transparent)]
        pub struct $name(pub u64);

        impl fmt::Display for $name {
            fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(formatter, "{}", self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(formatter, "{}({})", stringify!($name), self.0)
            }
        }

        impl SequenceNumber for $name {
            fn sequence_number(self) -> u64 {
                self.0
            }
        }
    };
}

sequence_id!(
    /// A lot: one credit of points with one origin and one expiry.
    LotId
);
sequence_id!(
    /// One issuance (earning) of points.
    IssuanceId
);
sequence_id!(
    /// One redemption (spending) of points, direct or by capturing a hold.
    RedemptionId
);
sequence_id!(
    /// One transfer between accounts.
    TransferId
);
sequence_id!(
    /// One hold (authorised, not yet captured or released redemption).
    HoldId
);
sequence_id!(
    /// One reversal of an issuance or a redemption.
    ReversalId
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_every_allowed_character_class() {
        for text in ["a", "Z9", "member.42", "m_1:x@y-z", &"x".repeat(64)] {
            assert!(AccountId::parse(text).is_ok(), "{text}");
        }
    }

    #[test]
    fn rejects_malformed_ids_with_a_reason() {
        assert_eq!(AccountId::parse(""), Err(InvalidId::Empty));
        assert_eq!(
            AccountId::parse("x".repeat(65)),
            Err(InvalidId::TooLong { length: 65 })
        );
        assert_eq!(
            MerchantId::parse("café"),
            Err(InvalidId::BadCharacter {
                character: 'é',
                index: 3
            })
        );
        assert_eq!(
            OrderRef::parse("a b"),
            Err(InvalidId::BadCharacter {
                character: ' ',
                index: 1
            })
        );
    }

    #[test]
    fn deserialising_validates() {
        let parsed: Result<AccountId, _> = serde_json::from_str("\"ok-1\"");
        assert_eq!(parsed.map(String::from).ok(), Some("ok-1".to_owned()));
        let refused = serde_json::from_str::<AccountId>("\"not ok\"")
            .err()
            .map(|error| error.to_string())
            .unwrap_or_default();
        assert!(refused.contains("' ' at index 3"), "{refused}");
        // Escaped text arrives owned, not borrowed: the same rules apply.
        let escaped: Result<AccountId, _> = serde_json::from_str("\"ok\\u002d2\"");
        assert_eq!(escaped.map(String::from).ok(), Some("ok-2".to_owned()));
        let wrong_type = serde_json::from_str::<AccountId>("42")
            .err()
            .map(|error| error.to_string())
            .unwrap_or_default();
        assert!(wrong_type.contains("expected a string"), "{wrong_type}");
        let binary =
            postcard::to_allocvec(&MerchantId::parse("m-1").expect("valid")).expect("encodes");
        assert_eq!(
            postcard::from_bytes::<MerchantId>(&binary)
                .map(String::from)
                .ok(),
            Some("m-1".to_owned())
        );
        let binary = postcard::to_allocvec("m 1").expect("encodes");
        assert!(postcard::from_bytes::<MerchantId>(&binary).is_err());
    }
}
