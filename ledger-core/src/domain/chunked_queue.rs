//! A first-in, first-out queue kept in fixed-size chunks. A `VecDeque`
//! grows by doubling and copying everything it holds; the idempotency
//! index's queue of command ids by time holds every command of the
//! retention window, so each doubling would pause the writer for a copy of
//! all of them. Here growing adds a chunk and never moves an entry.
//! Serialised exactly like a sequence.

use std::collections::VecDeque;
use std::fmt;
use std::marker::PhantomData;

use serde::de::{SeqAccess, Visitor};
use serde::ser::SerializeSeq;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

const CHUNK_ENTRIES: usize = 4_096;

#[derive(Debug, Clone)]
pub struct ChunkedQueue<T> {
    chunks: VecDeque<Vec<T>>,
    /// Entries already taken from the front chunk.
    taken: usize,
    len: usize,
}

impl<T> Default for ChunkedQueue<T> {
    fn default() -> Self {
        ChunkedQueue {
            chunks: VecDeque::new(),
            taken: 0,
            len: 0,
        }
    }
}

impl<T: Copy> ChunkedQueue<T> {
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
            Some(chunk) if chunk.len() < CHUNK_ENTRIES => chunk.push(entry),
            _ => {
                let mut chunk = Vec::with_capacity(CHUNK_ENTRIES);
                chunk.push(entry);
                self.chunks.push_back(chunk);
            }
        }
        self.len += 1;
    }

    pub fn front(&self) -> Option<&T> {
        self.chunks.front()?.get(self.taken)
    }

    pub fn pop_front(&mut self) -> Option<T> {
        let entry = *self.front()?;
        self.taken += 1;
        self.len -= 1;
        if self
            .chunks
            .front()
            .is_some_and(|chunk| self.taken == chunk.len())
            && (self.taken == CHUNK_ENTRIES || self.len == 0)
        {
            self.chunks.pop_front();
            self.taken = 0;
        }
        Some(entry)
    }

    /// Oldest first.
    pub fn iter(&self) -> impl Iterator<Item = &T> {
        self.chunks.iter().flatten().skip(self.taken)
    }
}

impl<T: Copy + Serialize> Serialize for ChunkedQueue<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut entries = serializer.serialize_seq(Some(self.len))?;
        for entry in self.iter() {
            entries.serialize_element(entry)?;
        }
        entries.end()
    }
}

impl<'de, T: Copy + Deserialize<'de>> Deserialize<'de> for ChunkedQueue<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct SeqVisitor<T>(PhantomData<T>);

        impl<'de, T: Copy + Deserialize<'de>> Visitor<'de> for SeqVisitor<T> {
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
