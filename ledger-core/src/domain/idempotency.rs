//! Invariant 7, first half: one command id takes effect at most once. The
//! index remembers each command id with a fingerprint of what was asked and
//! the outcome it got, for a retention window. A retry with the same
//! fingerprint gets the stored outcome back; the same id with a different
//! fingerprint is refused (`idempotency_key_reused`). Pure: the caller
//! supplies the time and decides what an outcome is.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::chunked_queue::ChunkedQueue;
use super::command::{Actor, Command};
use super::sharded_map::ShardedMap;
use super::time::Timestamp;

/// Default retention of command ids: seven days.
pub const RETENTION_SECONDS_DEFAULT: u64 = 7 * 86_400;

/// SHA-256 of the command and its actor, as canonical JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Fingerprint(#[serde(with = "hex_bytes")] pub [u8; 32]);

#[cfg(feature = "schemas")]
string_schema!(Fingerprint, { "pattern": "^[0-9a-f]{64}$", "description": "SHA-256 of the command and its actor, hex" });

/// Hex in human-readable formats, the raw 32 bytes in binary ones.
mod hex_bytes {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8; 32], serializer: S) -> Result<S::Ok, S::Error> {
        if !serializer.is_human_readable() {
            return serde::Serialize::serialize(bytes, serializer);
        }
        let mut text = [0u8; 64];
        let text = faster_hex::hex_encode(bytes, &mut text).map_err(serde::ser::Error::custom)?;
        serializer.serialize_str(text)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<[u8; 32], D::Error> {
        if !deserializer.is_human_readable() {
            return <[u8; 32]>::deserialize(deserializer);
        }
        deserializer.deserialize_str(HexVisitor)
    }

    /// Decodes the borrowed text in place: every log record carries a
    /// fingerprint, and a copy plus a branch per digit showed up in replay
    /// profiles.
    struct HexVisitor;

    impl serde::de::Visitor<'_> for HexVisitor {
        type Value = [u8; 32];

        fn expecting(&self, formatter: &mut std::fmt::Formatter) -> std::fmt::Result {
            formatter.write_str("64 hexadecimal digits")
        }

        fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<[u8; 32], E> {
            let mut bytes = [0u8; 32];
            if text.len() != 64 {
                return Err(E::invalid_length(text.len(), &self));
            }
            faster_hex::hex_decode(text.as_bytes(), &mut bytes)
                .map_err(|_| E::invalid_value(serde::de::Unexpected::Str(text), &self))?;
            Ok(bytes)
        }
    }
}

impl Fingerprint {
    pub fn of(command: &Command, actor: &Actor) -> Fingerprint {
        let mut hasher = Sha256::new();
        // Serialising domain types to JSON cannot fail; an empty fingerprint
        // would still only ever match itself.
        let command_json = serde_json::to_vec(command).unwrap_or_default();
        let actor_json = serde_json::to_vec(actor).unwrap_or_default();
        hasher.update((command_json.len() as u64).to_be_bytes());
        hasher.update(&command_json);
        hasher.update(&actor_json);
        Fingerprint(hasher.finalize().into())
    }

    /// What the index keeps of a fingerprint.
    fn prefix(&self) -> FingerprintPrefix {
        let mut prefix = [0; 16];
        prefix.copy_from_slice(&self.0[..16]);
        FingerprintPrefix(prefix)
    }
}

/// The first 128 bits of a fingerprint: the index holds one per command id
/// of the retention window, and half of SHA-256 still tells a different
/// command under a reused id from a retry (a match by chance is a 2^-128
/// event; forging one is a second preimage of 128 bits). An entry is 56
/// bytes instead of 72, and the writer and the snapshotter each hold the
/// index.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
struct FingerprintPrefix([u8; 16]);

#[derive(Debug)]
pub enum Lookup<'index, Outcome> {
    /// Never seen (or forgotten after the retention window).
    New,
    /// Seen with the same fingerprint: answer with this outcome again.
    Replay(&'index Outcome),
    /// Seen with a different fingerprint.
    KeyReused,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Entry<Outcome> {
    fingerprint: FingerprintPrefix,
    outcome: Outcome,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IdempotencyIndex<Outcome> {
    retention_seconds: u64,
    /// Sharded: this map holds every command id of the retention window,
    /// and a plain map's doubling stalled the writer (see `ShardedMap`).
    entries: ShardedMap<Uuid, Entry<Outcome>>,
    /// Command ids by the time they were recorded, oldest first; chunked
    /// for the same reason.
    recorded: ChunkedQueue<(Timestamp, Uuid)>,
}

impl<Outcome> IdempotencyIndex<Outcome> {
    pub fn new(retention_seconds: u64) -> Self {
        IdempotencyIndex {
            retention_seconds,
            entries: ShardedMap::new(),
            recorded: ChunkedQueue::new(),
        }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn lookup(&self, command_id: Uuid, fingerprint: Fingerprint) -> Lookup<'_, Outcome> {
        match self.entries.get(&command_id) {
            None => Lookup::New,
            Some(entry) if entry.fingerprint == fingerprint.prefix() => {
                Lookup::Replay(&entry.outcome)
            }
            Some(_) => Lookup::KeyReused,
        }
    }

    /// Remembers a command's outcome. A command id already present keeps
    /// its first outcome: the first answer is the one every retry gets.
    pub fn record(
        &mut self,
        command_id: Uuid,
        fingerprint: Fingerprint,
        at: Timestamp,
        outcome: Outcome,
    ) {
        if self.entries.contains_key(&command_id) {
            return;
        }
        self.entries.insert(
            command_id,
            Entry {
                fingerprint: fingerprint.prefix(),
                outcome,
            },
        );
        self.recorded.push_back((at, command_id));
    }

    /// Forgets command ids recorded at or before `now − retention`.
    pub fn forget_expired(&mut self, now: Timestamp) {
        let horizon = now.minus_seconds(self.retention_seconds);
        while let Some((at, command_id)) = self.recorded.front().copied() {
            if at > horizon {
                break;
            }
            self.recorded.pop_front();
            self.entries.remove(&command_id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::command::Role;
    use crate::domain::ids::KeyId;

    fn actor() -> Actor {
        Actor {
            key_id: KeyId::parse("admin").expect("valid"),
            role: Role::Admin,
            merchant_id: None,
        }
    }

    fn expiry(seconds: i64) -> Command {
        Command::RunExpiry {
            as_of: Timestamp::from_unix_seconds(seconds),
        }
    }

    #[test]
    fn the_index_reads_back_from_its_snapshot_form_and_from_the_single_map_form() {
        let mut index = IdempotencyIndex::new(60);
        let fingerprint = Fingerprint::of(&expiry(1), &actor());
        for id in 0..2_000u128 {
            index.record(
                Uuid::from_u128(id),
                fingerprint,
                Timestamp::from_unix_seconds(100),
                id as u64,
            );
        }
        let bytes = postcard::to_stdvec(&index).expect("encodes");
        let read: IdempotencyIndex<u64> = postcard::from_bytes(&bytes).expect("decodes");
        assert_eq!(read.len(), 2_000);
        assert!(matches!(
            read.lookup(Uuid::from_u128(1_234), fingerprint),
            Lookup::Replay(1_234)
        ));
        // Snapshots written while the index was one map and one deque
        // decode the same.
        #[derive(Serialize)]
        struct SingleMap {
            retention_seconds: u64,
            entries: rustc_hash::FxHashMap<Uuid, Entry<u64>>,
            recorded: std::collections::VecDeque<(Timestamp, Uuid)>,
        }
        let single = SingleMap {
            retention_seconds: 60,
            entries: index
                .entries
                .iter()
                .map(|(id, entry)| (*id, entry.clone()))
                .collect(),
            recorded: index.recorded.iter().copied().collect(),
        };
        let bytes = postcard::to_stdvec(&single).expect("encodes");
        let mut read: IdempotencyIndex<u64> = postcard::from_bytes(&bytes).expect("decodes");
        assert!(matches!(
            read.lookup(Uuid::from_u128(7), fingerprint),
            Lookup::Replay(7)
        ));
        read.forget_expired(Timestamp::from_unix_seconds(160));
        assert!(read.is_empty(), "expiry reaches every shard");
    }

    #[test]
    fn a_fingerprint_reads_back_from_its_hex_and_bad_hex_is_refused() {
        let fingerprint = Fingerprint::of(&expiry(1), &actor());
        let json = serde_json::to_string(&fingerprint).expect("serialises");
        assert_eq!(json.len(), 66, "64 hex digits in quotes: {json}");
        let read: Fingerprint = serde_json::from_str(&json).expect("reads back");
        assert_eq!(read, fingerprint);
        let upper: Fingerprint =
            serde_json::from_str(&json.to_uppercase()).expect("upper case is hex too");
        assert_eq!(upper, fingerprint);
        let digits = &json[1..65];
        for bad in [
            format!("\"{}\"", &digits[..62]),
            format!("\"{digits}00\""),
            format!("\"{}g\"", &digits[..63]),
            "\"\"".to_owned(),
            "17".to_owned(),
        ] {
            assert!(
                serde_json::from_str::<Fingerprint>(&bad).is_err(),
                "{bad} is not a fingerprint"
            );
        }
    }

    #[test]
    fn a_retry_gets_the_first_outcome_and_a_different_command_is_refused() {
        let mut index = IdempotencyIndex::new(60);
        let command_id = Uuid::from_u128(7);
        let first = Fingerprint::of(&expiry(1), &actor());
        assert!(matches!(index.lookup(command_id, first), Lookup::New));
        index.record(
            command_id,
            first,
            Timestamp::from_unix_seconds(100),
            "first",
        );
        index.record(
            command_id,
            first,
            Timestamp::from_unix_seconds(101),
            "second",
        );
        assert!(matches!(
            index.lookup(command_id, first),
            Lookup::Replay(&"first")
        ));
        let other = Fingerprint::of(&expiry(2), &actor());
        assert!(matches!(index.lookup(command_id, other), Lookup::KeyReused));
        // The index compares the first 128 bits: a difference there is
        // another command, one beyond them is not seen.
        let mut early = first;
        early.0[15] ^= 1;
        assert!(matches!(index.lookup(command_id, early), Lookup::KeyReused));
        let mut late = first;
        late.0[16] ^= 1;
        assert!(matches!(
            index.lookup(command_id, late),
            Lookup::Replay(&"first")
        ));
    }

    #[test]
    fn an_entry_for_an_outcome_of_three_words_is_56_bytes() {
        // The engine's outcome is three words (tested there); the index
        // holds one entry per command of the retention window.
        assert_eq!(size_of::<(Uuid, Entry<[u64; 3]>)>(), 56);
    }

    #[test]
    fn ids_are_forgotten_after_the_retention_window_only() {
        let mut index = IdempotencyIndex::new(60);
        let fingerprint = Fingerprint::of(&expiry(1), &actor());
        index.record(
            Uuid::from_u128(1),
            fingerprint,
            Timestamp::from_unix_seconds(100),
            (),
        );
        index.record(
            Uuid::from_u128(2),
            fingerprint,
            Timestamp::from_unix_seconds(130),
            (),
        );
        index.forget_expired(Timestamp::from_unix_seconds(159));
        assert_eq!(index.len(), 2);
        index.forget_expired(Timestamp::from_unix_seconds(160));
        assert_eq!(index.len(), 1);
        assert!(matches!(
            index.lookup(Uuid::from_u128(1), fingerprint),
            Lookup::New
        ));
    }
}
