//! Invariant 7, first half: one command id takes effect at most once. The
//! index remembers each command id with a fingerprint of what was asked and
//! the outcome it got, for a retention window. A retry with the same
//! fingerprint gets the stored outcome back; the same id with a different
//! fingerprint is refused (`idempotency_key_reused`). Pure: the caller
//! supplies the time and decides what an outcome is.

use hashbrown::HashTable;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::chunked_queue::ChunkedQueue;
use super::command::{Actor, Command};
use super::sharded_map::{SHARDS, hash_of, shard_of};
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

const CANONICAL_JSON_KEPT_BYTES_MAX: usize = 64 * 1024;

thread_local! {
    /// The JSON a fingerprint hashes, written into one buffer per thread
    /// instead of two fresh vectors per command on the HTTP workers' path.
    static CANONICAL_JSON: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

impl Fingerprint {
    pub fn of(command: &Command, actor: &Actor) -> Fingerprint {
        CANONICAL_JSON.with_borrow_mut(|json| {
            json.clear();
            // Serialising domain types to JSON cannot fail; an empty part
            // would still only ever match itself.
            if serde_json::to_writer(&mut *json, command).is_err() {
                json.clear();
            }
            let command_length = json.len();
            if serde_json::to_writer(&mut *json, actor).is_err() {
                json.truncate(command_length);
            }
            let mut hasher = Sha256::new();
            hasher.update((command_length as u64).to_be_bytes());
            hasher.update(json.as_slice());
            if json.capacity() > CANONICAL_JSON_KEPT_BYTES_MAX {
                // A rare large command (programme rules) is not kept for good.
                *json = Vec::new();
            }
            Fingerprint(hasher.finalize().into())
        })
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
/// event; forging one is a second preimage of 128 bits).
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

/// One command the index remembers.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Remembered<Outcome> {
    at: Timestamp,
    command_id: Uuid,
    fingerprint: FingerprintPrefix,
    outcome: Outcome,
}

/// The commands of the retention window in the order they are forgotten,
/// each stored once, and tables that find one by its id. The tables hold
/// only the number of a command's record (8 bytes), so the space a hash
/// table keeps free is 8 bytes a slot, not a record's 64; a map of the
/// records needed a second queue of ids by time besides, to forget them
/// (121 bytes a command in all, against 81 here; BENCHMARKS.md). The
/// tables are sharded like `ShardedMap`, so growth never rehashes every
/// command at once (a growing table reads its records' ids again).
#[derive(Debug, Clone)]
pub struct IdempotencyIndex<Outcome> {
    retention_seconds: u64,
    /// Oldest first.
    remembered: ChunkedQueue<Remembered<Outcome>>,
    /// The number of the oldest record; a record's number is its place in
    /// the order of recording, counted from the index's creation.
    first_number: u64,
    /// By bits of the command id's hash (`sharded_map::shard_of`).
    numbers: Box<[HashTable<u64>]>,
}

impl<Outcome> IdempotencyIndex<Outcome> {
    pub fn new(retention_seconds: u64) -> Self {
        IdempotencyIndex {
            retention_seconds,
            remembered: ChunkedQueue::new(),
            first_number: 0,
            numbers: (0..SHARDS).map(|_| HashTable::new()).collect(),
        }
    }

    pub fn len(&self) -> usize {
        self.remembered.len()
    }

    pub fn is_empty(&self) -> bool {
        self.remembered.is_empty()
    }

    pub fn lookup(&self, command_id: Uuid, fingerprint: Fingerprint) -> Lookup<'_, Outcome> {
        match self.find(command_id) {
            None => Lookup::New,
            Some(remembered) if remembered.fingerprint == fingerprint.prefix() => {
                Lookup::Replay(&remembered.outcome)
            }
            Some(_) => Lookup::KeyReused,
        }
    }

    /// The first outcome recorded under `command_id`, whatever was asked
    /// (the replay tool's check that an id took effect once).
    pub fn first_outcome(&self, command_id: Uuid) -> Option<&Outcome> {
        self.find(command_id).map(|remembered| &remembered.outcome)
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
        self.remember(Remembered {
            at,
            command_id,
            fingerprint: fingerprint.prefix(),
            outcome,
        });
    }

    fn remember(&mut self, command: Remembered<Outcome>) {
        let number = self.first_number + self.remembered.len() as u64;
        // The number goes in just before its record: nothing reads the
        // tables in between.
        if self.enter_number(command.command_id, number) {
            self.remembered.push_back(command);
        }
    }

    /// Makes the record `number` findable by `command_id` unless a record
    /// of that id already is; whether it did. One probe either way (the
    /// writer has already looked the id up once for the command).
    fn enter_number(&mut self, command_id: Uuid, number: u64) -> bool {
        let IdempotencyIndex {
            remembered,
            first_number,
            numbers,
            ..
        } = self;
        let hash = hash_of(&command_id);
        // Every number in the tables has its record: a number leaves them
        // before its record leaves the queue.
        let entry = numbers[shard_of(hash)].entry(
            hash,
            |&stored| {
                record_at(remembered, *first_number, stored)
                    .is_some_and(|remembered| remembered.command_id == command_id)
            },
            |&stored| {
                record_at(remembered, *first_number, stored)
                    .map_or(0, |remembered| hash_of(&remembered.command_id))
            },
        );
        match entry {
            hashbrown::hash_table::Entry::Occupied(_) => false,
            hashbrown::hash_table::Entry::Vacant(vacant) => {
                vacant.insert(number);
                true
            }
        }
    }

    /// Forgets command ids recorded at or before `now − retention`.
    pub fn forget_expired(&mut self, now: Timestamp) {
        let horizon = now.minus_seconds(self.retention_seconds);
        while let Some(oldest) = self.remembered.front() {
            if oldest.at > horizon {
                break;
            }
            let hash = hash_of(&oldest.command_id);
            let number = self.first_number;
            if let Ok(entry) = self.numbers[shard_of(hash)].find_entry(hash, |&n| n == number) {
                entry.remove();
            }
            self.remembered.pop_front();
            self.first_number += 1;
        }
    }

    fn find(&self, command_id: Uuid) -> Option<&Remembered<Outcome>> {
        let hash = hash_of(&command_id);
        let number = self.numbers[shard_of(hash)].find(hash, |&number| {
            record_at(&self.remembered, self.first_number, number)
                .is_some_and(|remembered| remembered.command_id == command_id)
        })?;
        record_at(&self.remembered, self.first_number, *number)
    }
}

fn record_at<Outcome>(
    remembered: &ChunkedQueue<Remembered<Outcome>>,
    first_number: u64,
    number: u64,
) -> Option<&Remembered<Outcome>> {
    remembered.get(usize::try_from(number.checked_sub(first_number)?).ok()?)
}

/// The serialised form: the settings and the remembered commands, oldest
/// first; the tables are rebuilt when it is read.
#[derive(Serialize)]
struct IndexForm<'index, Outcome> {
    retention_seconds: u64,
    remembered: &'index ChunkedQueue<Remembered<Outcome>>,
}

#[derive(Deserialize)]
struct OwnedIndexForm<Outcome> {
    retention_seconds: u64,
    remembered: ChunkedQueue<Remembered<Outcome>>,
}

impl<Outcome: Serialize> Serialize for IdempotencyIndex<Outcome> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        IndexForm {
            retention_seconds: self.retention_seconds,
            remembered: &self.remembered,
        }
        .serialize(serializer)
    }
}

impl<'de, Outcome: Deserialize<'de>> Deserialize<'de> for IdempotencyIndex<Outcome> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let form = OwnedIndexForm::<Outcome>::deserialize(deserializer)?;
        let mut index = IdempotencyIndex {
            remembered: form.remembered,
            ..IdempotencyIndex::new(form.retention_seconds)
        };
        // The records stay where they were read; only the tables are
        // built, in order, so a duplicate id (which `record` never writes)
        // would keep its first outcome here too.
        for number in 0..index.remembered.len() as u64 {
            let Some(command_id) = record_at(&index.remembered, index.first_number, number)
                .map(|remembered| remembered.command_id)
            else {
                break;
            };
            index.enter_number(command_id, number);
        }
        Ok(index)
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

    /// Fingerprints are in the log and are compared with retries after a
    /// restart or an upgrade: the bytes they hash never change.
    #[test]
    fn a_fingerprint_hashes_the_command_length_the_command_and_the_actor_as_json() {
        let merchant = Actor {
            key_id: KeyId::parse("till-7").expect("valid"),
            role: Role::Merchant,
            merchant_id: Some(crate::domain::ids::MerchantId::parse("cafe").expect("valid")),
        };
        let issuance = Command::IssuePoints {
            account: crate::domain::ids::AccountId::parse("member-1").expect("valid"),
            merchant_id: crate::domain::ids::MerchantId::parse("cafe").expect("valid"),
            order_ref: crate::domain::ids::OrderRef::parse("order-1").expect("valid"),
            points: None,
            purchase_amount: Some("12.30".parse().expect("valid")),
            category: None,
        };
        for (command, actor) in [(&issuance, &merchant), (&expiry(1), &actor())] {
            let command_json = serde_json::to_vec(command).expect("serialises");
            let mut hasher = Sha256::new();
            hasher.update((command_json.len() as u64).to_be_bytes());
            hasher.update(&command_json);
            hasher.update(serde_json::to_vec(actor).expect("serialises"));
            let expected: [u8; 32] = hasher.finalize().into();
            assert_eq!(Fingerprint::of(command, actor).0, expected, "{command:?}");
        }
        let pinned: String = Fingerprint::of(&issuance, &merchant)
            .0
            .iter()
            .map(|byte| format!("{byte:02x}"))
            .collect();
        assert_eq!(
            pinned,
            "32c91e5248a228f81e7fb77ad36d73d4494bd405ba3ab71de57257e6642cfc9f"
        );
    }

    #[test]
    fn the_index_reads_back_from_its_snapshot_form() {
        let mut index = IdempotencyIndex::new(60);
        let fingerprint = Fingerprint::of(&expiry(1), &actor());
        for id in 0..10_000u128 {
            index.record(
                Uuid::from_u128(id),
                fingerprint,
                Timestamp::from_unix_seconds(100 + (id / 1_000) as i64),
                id as u64,
            );
        }
        // The oldest records forgotten first, so the written index's
        // numbering no longer starts at zero (the read one's does).
        index.forget_expired(Timestamp::from_unix_seconds(162));
        assert_eq!(index.len(), 7_000);
        let bytes = postcard::to_stdvec(&index).expect("encodes");
        let mut read: IdempotencyIndex<u64> = postcard::from_bytes(&bytes).expect("decodes");
        assert_eq!(read.len(), 7_000);
        for id in [0u128, 2_999, 3_000, 5_555, 9_999] {
            let expected = if id < 3_000 { None } else { Some(id as u64) };
            for index in [&index, &read] {
                let found = match index.lookup(Uuid::from_u128(id), fingerprint) {
                    Lookup::Replay(outcome) => Some(*outcome),
                    Lookup::New => None,
                    Lookup::KeyReused => panic!("command {id}: key reused"),
                };
                assert_eq!(found, expected, "command {id}");
            }
        }
        read.forget_expired(Timestamp::from_unix_seconds(170));
        assert!(read.is_empty(), "expiry reaches every shard");
        for id in 0..10_000u128 {
            assert!(matches!(
                read.lookup(Uuid::from_u128(id), fingerprint),
                Lookup::New
            ));
        }
    }

    proptest::proptest! {
        /// Records, lookups, time passing, and snapshot round trips in any
        /// order: the index answers as a plain map of the window would.
        #[test]
        fn the_index_answers_as_a_map_of_the_window_would(
            operations in proptest::collection::vec((0u8..4, 0u128..40, 0u8..2), 1..300)
        ) {
            const RETENTION: i64 = 5;
            let mut index = IdempotencyIndex::new(RETENTION as u64);
            let mut model: std::collections::HashMap<u128, (u8, u64, i64)> =
                std::collections::HashMap::new();
            let mut now = 100i64;
            let mut next_outcome = 0u64;
            for (kind, id, variant) in operations {
                let fingerprint = Fingerprint([variant; 32]);
                match kind {
                    0 => {
                        next_outcome += 1;
                        index.record(
                            Uuid::from_u128(id),
                            fingerprint,
                            Timestamp::from_unix_seconds(now),
                            next_outcome,
                        );
                        model.entry(id).or_insert((variant, next_outcome, now));
                    }
                    1 => {
                        let expected = match model.get(&id) {
                            None => "new".to_owned(),
                            Some((stored, outcome, _)) if *stored == variant => {
                                format!("replay {outcome}")
                            }
                            Some(_) => "reused".to_owned(),
                        };
                        let found = match index.lookup(Uuid::from_u128(id), fingerprint) {
                            Lookup::New => "new".to_owned(),
                            Lookup::Replay(outcome) => format!("replay {outcome}"),
                            Lookup::KeyReused => "reused".to_owned(),
                        };
                        proptest::prop_assert_eq!(found, expected, "command {}", id);
                    }
                    2 => {
                        now += i64::from(variant) + (id % 3) as i64;
                        index.forget_expired(Timestamp::from_unix_seconds(now));
                        model.retain(|_, (_, _, at)| *at > now - RETENTION);
                    }
                    _ => {
                        let bytes = postcard::to_stdvec(&index).expect("encodes");
                        index = postcard::from_bytes(&bytes).expect("decodes");
                    }
                }
                proptest::prop_assert_eq!(index.len(), model.len());
                let numbered: usize = index.numbers.iter().map(HashTable::len).sum();
                proptest::prop_assert_eq!(numbered, model.len(), "a table slot per record");
            }
        }
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
    fn a_record_for_an_outcome_of_three_words_is_64_bytes() {
        // The engine's outcome is three words (tested there); the index
        // holds a record and a table slot of 8 bytes per command of the
        // retention window.
        assert_eq!(size_of::<Remembered<[u64; 3]>>(), 64);
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
