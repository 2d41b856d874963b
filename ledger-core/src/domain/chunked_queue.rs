//! A first-in, first-out queue kept in fixed-size chunks. A `VecDeque`
//! grows by doubling and copying everything it holds; the idempotency
//! index keeps every command of the retention window in one, so each
//! doubling would pause the writer for a copy of all of them. Here growing
//! adds a chunk and never moves an entry. Entries are also found by their
//! place from the front. Serialised exactly like a sequence.

use std::collections::VecDeque;
use std::fmt;
use std::marker::PhantomData;

use serde::de::{SeqAccess, Visitor};
use serde::ser::SerializeSeq;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

const CHUNK_ENTRIES: usize = 4_096;

/// Every chunk but the first and the last holds `CHUNK_ENTRIES`: entries
/// are added to the last chunk until it is full and taken from the first.
#[derive(Debug, Clone)]
pub struct ChunkedQueue<T> {
    chunks: VecDeque<VecDeque<T>>,
    len: usize,
}

impl<T> Default for ChunkedQueue<T> {
    fn default() -> Self {
        ChunkedQueue {
            chunks: VecDeque::new(),
            len: 0,
        }
    }
}

impl<T> ChunkedQueue<T> {
    pub fn new() -> Self {
        ChunkedQueue::default()
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn push_back(&mut self, entry: T) {
        match self.chunks.back_mut() {
            Some(chunk) if chunk.len() < CHUNK_ENTRIES => chunk.push_back(entry),
            _ => {
                let mut chunk = VecDeque::with_capacity(CHUNK_ENTRIES);
                chunk.push_back(entry);
                self.chunks.push_back(chunk);
            }
        }
        self.len += 1;
    }

    pub fn front(&self) -> Option<&T> {
        self.chunks.front()?.front()
    }

    pub fn pop_front(&mut self) -> Option<T> {
        let chunk = self.chunks.front_mut()?;
        let entry = chunk.pop_front()?;
        if chunk.is_empty() {
            self.chunks.pop_front();
        }
        self.len -= 1;
        Some(entry)
    }

    /// The entry `index` places behind the front (0: the front).
    pub fn get(&self, index: usize) -> Option<&T> {
        let first = self.chunks.front()?;
        match index.checked_sub(first.len()) {
            None => first.get(index),
            Some(behind_first) => self
                .chunks
                .get(1 + behind_first / CHUNK_ENTRIES)?
                .get(behind_first % CHUNK_ENTRIES),
        }
    }

    /// Oldest first.
    pub fn iter(&self) -> impl Iterator<Item = &T> {
        self.chunks.iter().flatten()
    }
}

impl<T: Serialize> Serialize for ChunkedQueue<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut entries = serializer.serialize_seq(Some(self.len))?;
        for entry in self.iter() {
            entries.serialize_element(entry)?;
        }
        entries.end()
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for ChunkedQueue<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct SeqVisitor<T>(PhantomData<T>);

        impl<'de, T: Deserialize<'de>> Visitor<'de> for SeqVisitor<T> {
            type Value = ChunkedQueue<T>;

            fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
                formatter.write_str("a sequence")
            }

            fn visit_seq<A: SeqAccess<'de>>(self, mut entries: A) -> Result<Self::Value, A::Error> {
                let mut queue = ChunkedQueue::new();
                while let Some(entry) = entries.next_element()? {
                    queue.push_back(entry);
                }
                Ok(queue)
            }
        }

        deserializer.deserialize_seq(SeqVisitor(PhantomData))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn behaves_like_a_fifo_across_chunk_boundaries() {
        let mut queue = ChunkedQueue::new();
        let mut reference = VecDeque::new();
        let mut next = 0u64;
        // Uneven pushes and pops, so the front and back cross chunk
        // boundaries at different times, and the queue empties twice.
        for round in 0..40usize {
            for _ in 0..(round * 397) % 5_000 {
                queue.push_back(next);
                reference.push_back(next);
                next += 1;
            }
            for _ in 0..(round * 613) % 6_000 {
                assert_eq!(queue.pop_front(), reference.pop_front());
            }
            assert_eq!(queue.len(), reference.len());
            assert_eq!(queue.front(), reference.front());
            assert!(queue.iter().eq(reference.iter()));
            for index in 0..=reference.len() {
                assert_eq!(queue.get(index), reference.get(index), "entry {index}");
            }
        }
        while let Some(entry) = reference.pop_front() {
            assert_eq!(queue.pop_front(), Some(entry));
        }
        assert_eq!(queue.pop_front(), None);
        assert!(queue.is_empty());
        assert!(queue.chunks.is_empty(), "an empty queue keeps no chunk");

        for entry in 0..10_000u64 {
            queue.push_back(entry);
        }
        for _ in 0..5_000 {
            queue.pop_front();
        }
        let bytes = postcard::to_stdvec(&queue).expect("encodes");
        let read: ChunkedQueue<u64> = postcard::from_bytes(&bytes).expect("decodes");
        assert!(read.iter().eq(queue.iter()));
        let as_deque: VecDeque<u64> = postcard::from_bytes(&bytes).expect("the form of a sequence");
        assert!(as_deque.iter().eq(queue.iter()));
        let json = serde_json::to_string(&queue).expect("serialises");
        let from_json: ChunkedQueue<u64> = serde_json::from_str(&json).expect("reads");
        assert_eq!(from_json.len(), 5_000);
    }
}
