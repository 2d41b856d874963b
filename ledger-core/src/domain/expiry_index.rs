//! The lots that expire, in the order an expiry run takes them: by expiry,
//! then lot id, each with the account holding it.
//!
//! A `BTreeMap` was the first form. Its nodes split in half when full, and
//! the keys here nearly always arrive at the end (a new lot expires last:
//! issued now, with the programme's one validity), so every node but the
//! last stayed half empty: 80 bytes an entry for 40 of entry (measured;
//! BENCHMARKS.md). Here the entries are sorted runs of up to
//! `RUN_ENTRIES` in one sorted list of runs (short, so taking an entry
//! out of the middle of one moves little); a full last run is followed
//! by a new one instead of being split, so runs filled from the end stay
//! full. An entry elsewhere (a transfer keeps its source's expiry) goes
//! into its run, splitting a full run in two. Runs emptied to a quarter
//! are merged with the next when both fit in one. Serialised exactly as
//! the map it replaced was.

use std::fmt;

use serde::de::{SeqAccess, Visitor};
use serde::ser::SerializeSeq;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::ids::{AccountId, LotId};
use super::time::Timestamp;

pub type ExpiryKey = (Timestamp, LotId);

type Entry = (ExpiryKey, AccountId);

const RUN_ENTRIES: usize = 256;

#[derive(Debug, Clone, Default)]
pub struct ExpiryIndex {
    /// Each run sorted and non-empty; every key of a run below every key
    /// of the next.
    runs: Vec<Vec<Entry>>,
    /// The first key of each run, side by side: finding a run searches
    /// these without reading a run for every step.
    firsts: Vec<ExpiryKey>,
    len: usize,
}

impl ExpiryIndex {
    pub fn new() -> ExpiryIndex {
        ExpiryIndex::default()
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The run that holds `key` if any run does, or where it belongs: the
    /// last run starting at or below it (the first run for a key below
    /// all).
    fn run_of(&self, key: &ExpiryKey) -> usize {
        self.firsts
            .partition_point(|first| first <= key)
            .saturating_sub(1)
    }

    pub fn get(&self, key: &ExpiryKey) -> Option<&AccountId> {
        let run = self.runs.get(self.run_of(key))?;
        let place = run.binary_search_by(|(stored, _)| stored.cmp(key)).ok()?;
        run.get(place).map(|(_, account)| account)
    }

    /// Enters `key` for `account`; the account it named before, if any.
    pub fn insert(&mut self, key: ExpiryKey, account: AccountId) -> Option<AccountId> {
        let runs = self.runs.len();
        let index = self.run_of(&key);
        let Some(run) = self.runs.get_mut(index) else {
            self.runs.push(new_run((key, account)));
            self.firsts.push(key);
            self.len += 1;
            return None;
        };
        let place = match run.binary_search_by(|(stored, _)| stored.cmp(&key)) {
            Ok(place) => return Some(std::mem::replace(&mut run[place].1, account)),
            Err(place) => place,
        };
        self.len += 1;
        let after_the_last = place == run.len() && index + 1 == runs;
        if run.len() < RUN_ENTRIES {
            run.insert(place, (key, account));
        } else if after_the_last {
            self.runs.push(new_run((key, account)));
            self.firsts.push(key);
            return None;
        } else {
            let mut upper = Vec::with_capacity(RUN_ENTRIES);
            upper.extend(run.drain(RUN_ENTRIES / 2..));
            if place <= RUN_ENTRIES / 2 {
                run.insert(place, (key, account));
            } else {
                upper.insert(place - RUN_ENTRIES / 2, (key, account));
            }
            if let Some((upper_first, _)) = upper.first() {
                self.firsts.insert(index + 1, *upper_first);
            }
            self.runs.insert(index + 1, upper);
        }
        if place == 0
            && let Some(first) = self.firsts.get_mut(index)
        {
            *first = key;
        }
        None
    }

    /// Takes `key` out; the account it named, if it was there.
    pub fn remove(&mut self, key: &ExpiryKey) -> Option<AccountId> {
        let index = self.run_of(key);
        let run = self.runs.get_mut(index)?;
        let place = run.binary_search_by(|(stored, _)| stored.cmp(key)).ok()?;
        let (_, account) = run.remove(place);
        self.len -= 1;
        match run.first() {
            None => {
                self.runs.remove(index);
                self.firsts.remove(index);
            }
            Some((first, _)) => {
                if let Some(stored) = self.firsts.get_mut(index) {
                    *stored = *first;
                }
                if run.len() < RUN_ENTRIES / 4 {
                    self.merge_with_next(index);
                }
            }
        }
        Some(account)
    }

    fn merge_with_next(&mut self, index: usize) {
        let fits = matches!(
            (self.runs.get(index), self.runs.get(index + 1)),
            (Some(run), Some(next)) if run.len() + next.len() <= RUN_ENTRIES
        );
        if fits {
            let next = self.runs.remove(index + 1);
            self.firsts.remove(index + 1);
            if let Some(run) = self.runs.get_mut(index) {
                run.extend(next);
            }
        }
    }

    /// In expiry order.
    pub fn iter(&self) -> impl Iterator<Item = (&ExpiryKey, &AccountId)> {
        self.runs
            .iter()
            .flatten()
            .map(|(key, account)| (key, account))
    }

    /// In expiry order, up to and including `last`.
    pub fn iter_through(&self, last: ExpiryKey) -> impl Iterator<Item = (&ExpiryKey, &AccountId)> {
        self.iter().take_while(move |(key, _)| **key <= last)
    }
}

fn new_run(entry: Entry) -> Vec<Entry> {
    let mut run = Vec::with_capacity(RUN_ENTRIES);
    run.push(entry);
    run
}

/// As a list of `[key, account]` entries in order (JSON maps need string
/// keys), as the map it replaced was.
impl Serialize for ExpiryIndex {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut entries = serializer.serialize_seq(Some(self.len))?;
        for entry in self.iter() {
            entries.serialize_element(&entry)?;
        }
        entries.end()
    }
}

impl<'de> Deserialize<'de> for ExpiryIndex {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct EntriesVisitor;

        impl<'de> Visitor<'de> for EntriesVisitor {
            type Value = ExpiryIndex;

            fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
                formatter.write_str("a list of [[expiry, lot id], account] entries")
            }

            fn visit_seq<A: SeqAccess<'de>>(self, mut entries: A) -> Result<ExpiryIndex, A::Error> {
                let mut index = ExpiryIndex::new();
                while let Some((key, account)) = entries.next_element::<Entry>()? {
                    index.insert(key, account);
                }
                Ok(index)
            }
        }

        deserializer.deserialize_seq(EntriesVisitor)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use proptest::prelude::*;

    use super::*;

    fn account(number: u8) -> AccountId {
        AccountId::parse(format!("member-{number}")).expect("valid")
    }

    fn check_runs(index: &ExpiryIndex) -> Result<(), TestCaseError> {
        prop_assert_eq!(index.firsts.len(), index.runs.len());
        for (run, first) in index.runs.iter().zip(&index.firsts) {
            prop_assert!(!run.is_empty(), "no empty run");
            prop_assert!(run.len() <= RUN_ENTRIES, "no run over {RUN_ENTRIES}");
            prop_assert_eq!(
                run.first().map(|(key, _)| key),
                Some(first),
                "first keys kept"
            );
        }
        let keys: Vec<_> = index.iter().map(|(key, _)| *key).collect();
        prop_assert!(
            keys.windows(2).all(|pair| pair[0] < pair[1]),
            "keys in order"
        );
        prop_assert_eq!(keys.len(), index.len());
        Ok(())
    }

    proptest! {
        /// Inserts at the end (new lots), in the middle (moved lots),
        /// removals anywhere: the index answers as the map it replaced, and
        /// serialises as it.
        #[test]
        fn the_index_answers_and_serialises_as_a_map(
            operations in prop::collection::vec((0u8..4, 0i64..1_600, 0u64..3_000, 0u8..3), 1..3_000)
        ) {
            let mut index = ExpiryIndex::new();
            let mut model: BTreeMap<ExpiryKey, AccountId> = BTreeMap::new();
            let mut newest = (Timestamp(0), LotId(0));
            for (kind, expiry, lot, owner) in operations {
                match kind {
                    // Mostly new lots expiring last, as the writer makes them.
                    0 | 1 => {
                        newest = (Timestamp(newest.0.0 + i64::from(kind)), LotId(newest.1.0 + 1));
                        prop_assert_eq!(
                            index.insert(newest, account(owner)),
                            model.insert(newest, account(owner))
                        );
                    }
                    2 => {
                        let key = (Timestamp(expiry), LotId(lot));
                        prop_assert_eq!(
                            index.insert(key, account(owner)),
                            model.insert(key, account(owner))
                        );
                    }
                    _ => {
                        // An existing key half the time.
                        let key = match model.keys().nth(lot as usize % model.len().max(1)) {
                            Some(key) if owner > 0 => *key,
                            _ => (Timestamp(expiry), LotId(lot)),
                        };
                        prop_assert_eq!(index.remove(&key), model.remove(&key));
                    }
                }
                let probe = (Timestamp(expiry), LotId(lot));
                prop_assert_eq!(index.get(&probe), model.get(&probe));
            }
            check_runs(&index)?;
            prop_assert!(index.iter().eq(model.iter()));
            let through = (Timestamp(800), LotId(u64::MAX));
            prop_assert!(index.iter_through(through).eq(model.range(..=through)));
            let bytes = postcard::to_stdvec(&index).expect("encodes");
            let model_entries: Vec<_> = model.iter().collect();
            prop_assert_eq!(&bytes, &postcard::to_stdvec(&model_entries).expect("encodes"));
            let json = serde_json::to_string(&index).expect("serialises");
            prop_assert_eq!(&json, &serde_json::to_string(&model_entries).expect("serialises"));
            let read: ExpiryIndex = postcard::from_bytes(&bytes).expect("decodes");
            check_runs(&read)?;
            prop_assert!(read.iter().eq(model.iter()));
        }
    }

    #[test]
    fn runs_filled_from_the_end_stay_full() {
        let mut index = ExpiryIndex::new();
        for lot in 0..10 * RUN_ENTRIES as u64 {
            index.insert(
                (Timestamp(1_000 + lot as i64 / 200), LotId(lot)),
                account(1),
            );
        }
        assert_eq!(index.runs.len(), 10);
        assert!(index.runs.iter().all(|run| run.len() == RUN_ENTRIES));
    }

    #[test]
    fn runs_emptied_to_a_quarter_merge_with_the_next() {
        let mut index = ExpiryIndex::new();
        for lot in 0..3 * RUN_ENTRIES as u64 {
            index.insert((Timestamp(lot as i64), LotId(lot)), account(1));
        }
        // The second run down to a quarter (not below: no merge), then the
        // first down to an eighth: below a quarter, it takes in the second.
        for lot in RUN_ENTRIES as u64..(RUN_ENTRIES * 7 / 4) as u64 {
            index.remove(&(Timestamp(lot as i64), LotId(lot)));
        }
        assert_eq!(index.runs.len(), 3);
        for lot in 0..(RUN_ENTRIES * 7 / 8) as u64 {
            index.remove(&(Timestamp(lot as i64), LotId(lot)));
        }
        assert_eq!(index.runs.len(), 2);
        assert_eq!(index.runs[0].len(), RUN_ENTRIES / 8 + RUN_ENTRIES / 4);
        assert_eq!(index.len(), RUN_ENTRIES / 8 + RUN_ENTRIES / 4 + RUN_ENTRIES);
    }
}
