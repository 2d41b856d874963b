//! The sparse position → offset index of a segment: one entry every N
//! records, each with the chain hash before it, so a read can start near
//! any position and still verify the chain. Sealed segments keep theirs in
//! a side file (`segment-N.idx`) that is checked against the segment and
//! rebuilt by scanning when missing or stale; nothing depends on it being
//! durable.

use super::format::Hash;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IndexEntry {
    pub position: u64,
    pub offset: u64,
    pub hash_before: Hash,
}

/// What a sealed segment holds, as its index file records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentSummary {
    pub segment_length: u64,
    pub last_position: u64,
    pub last_hash: Hash,
    pub entries: Vec<IndexEntry>,
}

const INDEX_MAGIC: &[u8; 8] = b"PLEDGIDX";
const ENTRY_BYTES: usize = 48;

impl SegmentSummary {
    pub fn encode(&self) -> Vec<u8> {
        let mut bytes = Vec::with_capacity(64 + self.entries.len() * ENTRY_BYTES);
        bytes.extend_from_slice(INDEX_MAGIC);
        bytes.extend_from_slice(&self.segment_length.to_le_bytes());
        bytes.extend_from_slice(&self.last_position.to_le_bytes());
        bytes.extend_from_slice(&self.last_hash);
        bytes.extend_from_slice(&(self.entries.len() as u64).to_le_bytes());
        for entry in &self.entries {
            bytes.extend_from_slice(&entry.position.to_le_bytes());
            bytes.extend_from_slice(&entry.offset.to_le_bytes());
            bytes.extend_from_slice(&entry.hash_before);
        }
        let checksum = crc32c::crc32c(&bytes);
        bytes.extend_from_slice(&checksum.to_le_bytes());
        bytes
    }

    /// `None` for anything malformed: the caller rebuilds instead.
    pub fn decode(bytes: &[u8]) -> Option<SegmentSummary> {
        let (body, checksum) = bytes.split_at_checked(bytes.len().checked_sub(4)?)?;
        if crc32c::crc32c(body).to_le_bytes() != checksum || body.get(..8)? != INDEX_MAGIC {
            return None;
        }
        let word = |at: usize| -> Option<u64> {
            Some(u64::from_le_bytes(body.get(at..at + 8)?.try_into().ok()?))
        };
        let hash = |at: usize| -> Option<Hash> { body.get(at..at + 32)?.try_into().ok() };
        let count = usize::try_from(word(56)?).ok()?;
        if body.len() != 64 + count.checked_mul(ENTRY_BYTES)? {
            return None;
        }
        let entries = (0..count)
            .map(|index| {
                let at = 64 + index * ENTRY_BYTES;
                Some(IndexEntry {
                    position: word(at)?,
                    offset: word(at + 8)?,
                    hash_before: hash(at + 16)?,
                })
            })
            .collect::<Option<Vec<_>>>()?;
        Some(SegmentSummary {
            segment_length: word(8)?,
            last_position: word(16)?,
            last_hash: hash(24)?,
            entries,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summaries_round_trip_and_damage_is_refused() {
        let summary = SegmentSummary {
            segment_length: 4096,
            last_position: 77,
            last_hash: [3; 32],
            entries: vec![
                IndexEntry {
                    position: 1,
                    offset: 128,
                    hash_before: [1; 32],
                },
                IndexEntry {
                    position: 65,
                    offset: 2048,
                    hash_before: [2; 32],
                },
            ],
        };
        let bytes = summary.encode();
        assert_eq!(SegmentSummary::decode(&bytes), Some(summary));
        for index in 0..bytes.len() {
            let mut damaged = bytes.clone();
            damaged[index] ^= 0x40;
            assert_eq!(SegmentSummary::decode(&damaged), None, "byte {index}");
        }
        assert_eq!(SegmentSummary::decode(&bytes[..10]), None);
    }
}
