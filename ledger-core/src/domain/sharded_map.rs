//! A hash map that grows without long pauses. A hash map doubles by
//! rehashing everything it holds at once; for the writer's big maps (every
//! account, every command id of the retention window) that was a stall of
//! tens to hundreds of milliseconds with every caller of the batch waiting
//! (measured: 79 ms at 57,000 accounts, 330 ms at 460,000 command ids), and
//! it grows with the map. Here the entries are spread over 256 tables by
//! bits of their hash, so a doubling moves only one table's share.
//!
//! One hash per operation: the shard is picked by bits the tables do not
//! use themselves (hashbrown takes a bucket from the low bits and a tag
//! from the top seven), so every table still spreads its keys over all of
//! its buckets. Serialised exactly like a map.

use std::borrow::Borrow;
use std::fmt;
use std::hash::{BuildHasher, Hash};
use std::marker::PhantomData;

use hashbrown::HashTable;
use hashbrown::hash_table::Entry;
use rustc_hash::FxBuildHasher;
use serde::de::{MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

const SHARD_BITS: u32 = 8;
pub(crate) const SHARDS: usize = 1 << SHARD_BITS;
/// Just below the seven tag bits hashbrown takes from the top of a hash.
const SHARD_SHIFT: u32 = 64 - 7 - SHARD_BITS;

#[derive(Clone)]
pub struct ShardedMap<K, V> {
    shards: Box<[HashTable<(K, V)>]>,
    len: usize,
}

pub(crate) fn hash_of<Q: Hash + ?Sized>(key: &Q) -> u64 {
    FxBuildHasher.hash_one(key)
}

pub(crate) fn shard_of(hash: u64) -> usize {
    (hash >> SHARD_SHIFT) as usize & (SHARDS - 1)
}

impl<K, V> Default for ShardedMap<K, V> {
    fn default() -> Self {
        ShardedMap {
            shards: (0..SHARDS).map(|_| HashTable::new()).collect(),
            len: 0,
        }
    }
}

impl<K: Hash + Eq, V> ShardedMap<K, V> {
    pub fn new() -> Self {
        ShardedMap::default()
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn get<Q>(&self, key: &Q) -> Option<&V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let hash = hash_of(key);
        self.shards[shard_of(hash)]
            .find(hash, |(stored, _)| stored.borrow() == key)
            .map(|(_, value)| value)
    }

    pub fn get_mut<Q>(&mut self, key: &Q) -> Option<&mut V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let hash = hash_of(key);
        self.shards[shard_of(hash)]
            .find_mut(hash, |(stored, _)| stored.borrow() == key)
            .map(|(_, value)| value)
    }

    pub fn contains_key<Q>(&self, key: &Q) -> bool
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.get(key).is_some()
    }

    /// Inserts or replaces; returns the value replaced.
    pub fn insert(&mut self, key: K, value: V) -> Option<V> {
        let (entry, len) = self.entry(&key);
        match entry {
            Entry::Occupied(mut occupied) => {
                Some(std::mem::replace(&mut occupied.get_mut().1, value))
            }
            Entry::Vacant(vacant) => {
                vacant.insert((key, value));
                *len += 1;
                None
            }
        }
    }

    /// Inserts unless `key` is present (then leaves the map as it was);
    /// returns whether it inserted. One probe either way, where a lookup
    /// followed by an insert is two, each a likely cache miss in a large map.
    pub fn insert_new(&mut self, key: K, value: V) -> bool {
        let (entry, len) = self.entry(&key);
        match entry {
            Entry::Occupied(_) => false,
            Entry::Vacant(vacant) => {
                vacant.insert((key, value));
                *len += 1;
                true
            }
        }
    }

    /// The value under `key`, made by `make` (under a clone of `key`) if
    /// there is none. One probe either way.
    pub fn get_or_insert_with(&mut self, key: &K, make: impl FnOnce() -> V) -> &mut V
    where
        K: Clone,
    {
        let (entry, len) = self.entry(key);
        match entry {
            Entry::Occupied(occupied) => &mut occupied.into_mut().1,
            Entry::Vacant(vacant) => {
                *len += 1;
                &mut vacant.insert((key.clone(), make())).into_mut().1
            }
        }
    }

    /// The key's slot in its table, and the count to keep up to date.
    fn entry(&mut self, key: &K) -> (Entry<'_, (K, V)>, &mut usize) {
        let hash = hash_of(key);
        let entry = self.shards[shard_of(hash)].entry(
            hash,
            |(stored, _)| stored == key,
            |(stored, _)| hash_of(stored),
        );
        (entry, &mut self.len)
    }

    pub fn remove<Q>(&mut self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let hash = hash_of(key);
        let found = self.shards[shard_of(hash)]
            .find_entry(hash, |(stored, _)| stored.borrow() == key)
            .ok()?;
        self.len -= 1;
        Some(found.remove().0.1)
    }

    /// Every entry, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (&K, &V)> {
        self.shards
            .iter()
            .flat_map(|table| table.iter().map(|(key, value)| (key, value)))
    }

    pub fn keys(&self) -> impl Iterator<Item = &K> {
        self.iter().map(|(key, _)| key)
    }

    pub fn values(&self) -> impl Iterator<Item = &V> {
        self.iter().map(|(_, value)| value)
    }
}

impl<K: Hash + Eq, V> FromIterator<(K, V)> for ShardedMap<K, V> {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(entries: I) -> Self {
        let mut map = ShardedMap::new();
        for (key, value) in entries {
            map.insert(key, value);
        }
        map
    }
}

impl<K, Q, V> std::ops::Index<&Q> for ShardedMap<K, V>
where
    K: Hash + Eq + Borrow<Q>,
    Q: Hash + Eq + ?Sized,
{
    type Output = V;

    /// Panics if the key is absent, like `HashMap`'s index.
    fn index(&self, key: &Q) -> &V {
        match self.get(key) {
            Some(value) => value,
            None => panic!("no entry for the key in the map"),
        }
    }
}

impl<K: Hash + Eq + fmt::Debug, V: fmt::Debug> fmt::Debug for ShardedMap<K, V> {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.debug_map().entries(self.iter()).finish()
    }
}

impl<K: Hash + Eq, V: PartialEq> PartialEq for ShardedMap<K, V> {
    fn eq(&self, other: &Self) -> bool {
        self.len == other.len
            && self
                .iter()
                .all(|(key, value)| other.get(key).is_some_and(|theirs| theirs == value))
    }
}

impl<K: Hash + Eq, V: Eq> Eq for ShardedMap<K, V> {}

impl<K: Hash + Eq + Serialize, V: Serialize> Serialize for ShardedMap<K, V> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.len))?;
        for (key, value) in self.iter() {
            map.serialize_entry(key, value)?;
        }
        map.end()
    }
}

impl<'de, K, V> Deserialize<'de> for ShardedMap<K, V>
where
    K: Hash + Eq + Deserialize<'de>,
    V: Deserialize<'de>,
{
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct MapVisitor<K, V>(PhantomData<(K, V)>);

        impl<'de, K, V> Visitor<'de> for MapVisitor<K, V>
        where
            K: Hash + Eq + Deserialize<'de>,
            V: Deserialize<'de>,
        {
            type Value = ShardedMap<K, V>;

            fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
                formatter.write_str("a map")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut entries: A) -> Result<Self::Value, A::Error> {
                let mut map = ShardedMap::new();
                while let Some((key, value)) = entries.next_entry()? {
                    map.insert(key, value);
                }
                Ok(map)
            }
        }

        deserializer.deserialize_map(MapVisitor(PhantomData))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn behaves_like_a_map_and_spreads_sequential_keys_over_every_shard() {
        let mut map = ShardedMap::new();
        let mut reference = std::collections::HashMap::new();
        for number in 0..20_000u64 {
            let key = format!("member-{number:07}");
            assert_eq!(map.insert(key.clone(), number), None);
            reference.insert(key, number);
        }
        assert_eq!(map.insert("member-0000007".to_owned(), 70), Some(7));
        reference.insert("member-0000007".to_owned(), 70);
        assert_eq!(map.remove("member-0000008"), Some(8));
        assert_eq!(map.remove("member-0000008"), None);
        reference.remove("member-0000008");
        *map.get_or_insert_with(&"new".to_owned(), || 1) += 1;
        *map.get_or_insert_with(&"new".to_owned(), || 1) += 1;
        reference.insert("new".to_owned(), 3);
        assert!(!map.insert_new("member-0000009".to_owned(), 90), "present");
        assert!(map.insert_new("inserted".to_owned(), 5), "absent");
        assert!(!map.insert_new("inserted".to_owned(), 6), "present since");
        reference.insert("inserted".to_owned(), 5);
        assert_eq!(map.len(), reference.len());
        for (key, value) in &reference {
            assert_eq!(map.get(key.as_str()), Some(value), "{key}");
        }
        assert_eq!(map["new"], 3);
        assert!(!map.contains_key("member-0000008"));
        assert_eq!(map.iter().count(), reference.len());

        let smallest = map.shards.iter().map(HashTable::len).min().unwrap_or(0);
        let largest = map.shards.iter().map(HashTable::len).max().unwrap_or(0);
        let mean = map.len() / SHARDS;
        assert!(
            smallest > mean / 2 && largest < mean * 2,
            "shards between {smallest} and {largest} entries, mean {mean}"
        );

        let ids: ShardedMap<uuid::Uuid, ()> = (0..20_000u128)
            .map(|id| (uuid::Uuid::from_u128(id), ()))
            .collect();
        let smallest = ids.shards.iter().map(HashTable::len).min().unwrap_or(0);
        let largest = ids.shards.iter().map(HashTable::len).max().unwrap_or(0);
        assert!(
            smallest > mean / 2 && largest < mean * 2,
            "sequential uuids: shards between {smallest} and {largest} entries, mean {mean}"
        );

        let json = serde_json::to_string(&map).expect("serialises");
        let from_json: ShardedMap<String, u64> = serde_json::from_str(&json).expect("reads");
        assert_eq!(from_json, map);
        let as_std: std::collections::HashMap<String, u64> =
            serde_json::from_str(&json).expect("the same form as a map");
        assert_eq!(as_std, reference);
        let bytes = postcard::to_stdvec(&map).expect("encodes");
        let from_postcard: ShardedMap<String, u64> = postcard::from_bytes(&bytes).expect("decodes");
        assert_eq!(from_postcard, map);
    }
}
