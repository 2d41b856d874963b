//! A JSON object read straight into a type, some top-level fields set
//! aside. Every command body may carry `command_id` (its idempotency key),
//! and a batch item also its `type`: neither is a field of the command's
//! type, so this deserializer hands the type every other field and keeps
//! those fields' values aside. Reading the body into a `serde_json::Value`
//! first and then into the type, as before, built a map and a string per
//! field for every command.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, IntoDeserializer, MapAccess, Visitor};
use serde_json::Value;

pub const COMMAND_ID: &str = "command_id";

/// Fields to set aside: each name, and the value found under it (a
/// repeated field keeps the last, as a JSON map would).
pub type Aside<'names> = [(&'names str, Option<Value>)];

/// The object `object`, the fields named in `aside` taken out into it.
pub struct SetAside<'slot, 'names, D> {
    pub object: D,
    pub aside: &'slot mut Aside<'names>,
}

impl<'de, D: Deserializer<'de>> Deserializer<'de> for SetAside<'_, '_, D> {
    type Error = D::Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, D::Error> {
        self.object.deserialize_map(ObjectVisitor {
            visitor,
            aside: self.aside,
        })
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf option unit unit_struct newtype_struct seq tuple
        tuple_struct map struct enum identifier ignored_any
    }
}

struct ObjectVisitor<'slot, 'names, V> {
    visitor: V,
    aside: &'slot mut Aside<'names>,
}

impl<'de, V: Visitor<'de>> Visitor<'de> for ObjectVisitor<'_, '_, V> {
    type Value = V::Value;

    fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        formatter.write_str("a JSON object")
    }

    fn visit_map<M: MapAccess<'de>>(self, map: M) -> Result<V::Value, M::Error> {
        self.visitor.visit_map(Fields {
            map,
            aside: self.aside,
        })
    }
}

/// The object's fields, those set aside skipped.
struct Fields<'slot, 'names, M> {
    map: M,
    aside: &'slot mut Aside<'names>,
}

impl<'de, M: MapAccess<'de>> MapAccess<'de> for Fields<'_, '_, M> {
    type Error = M::Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, M::Error> {
        while let Some(key) = self.map.next_key_seed(KeySeed)? {
            if let Some((_, value)) = self.aside.iter_mut().find(|(name, _)| *name == key) {
                *value = Some(self.map.next_value()?);
                continue;
            }
            return seed.deserialize(key.into_deserializer()).map(Some);
        }
        Ok(None)
    }

    fn next_value_seed<S: DeserializeSeed<'de>>(&mut self, seed: S) -> Result<S::Value, M::Error> {
        self.map.next_value_seed(seed)
    }

    fn size_hint(&self) -> Option<usize> {
        self.map.size_hint()
    }
}

/// A key, borrowed from the body unless it had escapes.
struct KeySeed;

impl<'de> DeserializeSeed<'de> for KeySeed {
    type Value = Cow<'de, str>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Cow<'de, str>, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for KeySeed {
    type Value = Cow<'de, str>;

    fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        formatter.write_str("a field name")
    }

    fn visit_borrowed_str<E: de::Error>(self, key: &'de str) -> Result<Cow<'de, str>, E> {
        Ok(Cow::Borrowed(key))
    }

    fn visit_str<E: de::Error>(self, key: &str) -> Result<Cow<'de, str>, E> {
        Ok(Cow::Owned(key.to_owned()))
    }

    fn visit_string<E: de::Error>(self, key: String) -> Result<Cow<'de, str>, E> {
        Ok(Cow::Owned(key))
    }
}
