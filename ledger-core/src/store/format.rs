//! The bytes on disk. Pure encoding and decoding, no I/O, so every rule
//! about what is a valid header or record lives in one place and is checked
//! the same way when writing, when recovering and when auditing.
//!
//! Segment file: a 128-byte header, then records back to back.
//!
//! ```text
//! header  magic "PLEDGSEG" | format u32 | header length u32 | ledger id [16]
//!         | segment index u64 | first position u64 | hash before first [32]
//!         | zero padding | crc32c u32 (of everything before it)
//! record  payload length u32 | crc32c u32 | position u64
//!         | batch first position u64 | batch last position u64 | hash [32]
//!         | payload
//! ```
//!
//! All integers little-endian. A record's CRC covers everything after the
//! CRC field; its hash is `SHA-256(previous hash ‖ payload)`, the chain.
//! The batch bounds let recovery tell a torn final batch (never
//! acknowledged: dropped whole) from damage to an acknowledged one (an
//! error), and guarantee that a batch survives entirely or not at all.

use sha2::{Digest, Sha256};
use uuid::Uuid;

pub const SEGMENT_MAGIC: [u8; 8] = *b"PLEDGSEG";
pub const FORMAT_VERSION: u32 = 1;
pub const SEGMENT_HEADER_BYTES: usize = 128;
pub const RECORD_HEADER_BYTES: usize = 64;
/// Largest payload a record may carry; checked before anything is
/// allocated for it.
pub const RECORD_PAYLOAD_BYTES_MAX: usize = 1 << 20;

pub type Hash = [u8; 32];

/// The chain value before position 1, so two ledgers never share a chain.
pub fn genesis_hash(ledger_id: Uuid) -> Hash {
    let mut hasher = Sha256::new();
    hasher.update(b"points-ledger genesis v1");
    hasher.update(ledger_id.as_bytes());
    hasher.finalize().into()
}

pub fn chain_hash(previous: &Hash, payload: &[u8]) -> Hash {
    let mut hasher = Sha256::new();
    hasher.update(previous);
    hasher.update(payload);
    hasher.finalize().into()
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentHeader {
    pub format_version: u32,
    pub ledger_id: Uuid,
    pub segment_index: u64,
    pub first_position: u64,
    pub hash_before_first: Hash,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HeaderError {
    #[error("the file is shorter than a segment header")]
    Truncated,
    #[error("not a ledger segment (bad magic)")]
    BadMagic,
    #[error("header checksum mismatch")]
    BadChecksum,
    #[error("segment format {found} is newer than this program understands ({FORMAT_VERSION})")]
    NewerFormat { found: u32 },
    #[error("unsupported segment format {found}")]
    UnknownFormat { found: u32 },
}

impl SegmentHeader {
    pub fn encode(&self) -> [u8; SEGMENT_HEADER_BYTES] {
        let mut bytes = [0u8; SEGMENT_HEADER_BYTES];
        bytes[0..8].copy_from_slice(&SEGMENT_MAGIC);
        bytes[8..12].copy_from_slice(&self.format_version.to_le_bytes());
        bytes[12..16].copy_from_slice(&(SEGMENT_HEADER_BYTES as u32).to_le_bytes());
        bytes[16..32].copy_from_slice(self.ledger_id.as_bytes());
        bytes[32..40].copy_from_slice(&self.segment_index.to_le_bytes());
        bytes[40..48].copy_from_slice(&self.first_position.to_le_bytes());
        bytes[48..80].copy_from_slice(&self.hash_before_first);
        let checksum = crc32c::crc32c(&bytes[..SEGMENT_HEADER_BYTES - 4]);
        bytes[SEGMENT_HEADER_BYTES - 4..].copy_from_slice(&checksum.to_le_bytes());
        bytes
    }

    pub fn decode(bytes: &[u8]) -> Result<SegmentHeader, HeaderError> {
        let bytes = bytes
            .get(..SEGMENT_HEADER_BYTES)
            .ok_or(HeaderError::Truncated)?;
        if bytes[0..8] != SEGMENT_MAGIC {
            return Err(HeaderError::BadMagic);
        }
        let stored = read_u32(bytes, SEGMENT_HEADER_BYTES - 4);
        if crc32c::crc32c(&bytes[..SEGMENT_HEADER_BYTES - 4]) != stored {
            return Err(HeaderError::BadChecksum);
        }
        let format_version = read_u32(bytes, 8);
        if format_version > FORMAT_VERSION {
            return Err(HeaderError::NewerFormat {
                found: format_version,
            });
        }
        if format_version != FORMAT_VERSION || read_u32(bytes, 12) as usize != SEGMENT_HEADER_BYTES
        {
            return Err(HeaderError::UnknownFormat {
                found: format_version,
            });
        }
        let mut ledger_id = [0u8; 16];
        ledger_id.copy_from_slice(&bytes[16..32]);
        let mut hash_before_first = [0u8; 32];
        hash_before_first.copy_from_slice(&bytes[48..80]);
        Ok(SegmentHeader {
            format_version,
            ledger_id: Uuid::from_bytes(ledger_id),
            segment_index: read_u64(bytes, 32),
            first_position: read_u64(bytes, 40),
            hash_before_first,
        })
    }
}

fn read_u32(bytes: &[u8], at: usize) -> u32 {
    let mut word = [0u8; 4];
    word.copy_from_slice(&bytes[at..at + 4]);
    u32::from_le_bytes(word)
}

fn read_u64(bytes: &[u8], at: usize) -> u64 {
    let mut word = [0u8; 8];
    word.copy_from_slice(&bytes[at..at + 8]);
    u64::from_le_bytes(word)
}

/// Where a record sits: its position and the positions its batch spans.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordPlace {
    pub position: u64,
    pub batch_first: u64,
    pub batch_last: u64,
}

fn record_checksum(header_tail: &[u8], payload: &[u8]) -> u32 {
    crc32c::crc32c_append(crc32c::crc32c(header_tail), payload)
}

/// Appends one framed record to `buffer`.
pub fn encode_record(buffer: &mut Vec<u8>, place: RecordPlace, hash: &Hash, payload: &[u8]) {
    let mut tail = [0u8; RECORD_HEADER_BYTES - 8];
    tail[0..8].copy_from_slice(&place.position.to_le_bytes());
    tail[8..16].copy_from_slice(&place.batch_first.to_le_bytes());
    tail[16..24].copy_from_slice(&place.batch_last.to_le_bytes());
    tail[24..56].copy_from_slice(hash);
    buffer.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    buffer.extend_from_slice(&record_checksum(&tail, payload).to_le_bytes());
    buffer.extend_from_slice(&tail);
    buffer.extend_from_slice(payload);
}

/// A record header read from disk, before its payload is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordHeader {
    pub payload_length: usize,
    pub checksum: u32,
    pub place: RecordPlace,
    pub hash: Hash,
    tail: [u8; RECORD_HEADER_BYTES - 8],
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    #[error("record header cut short")]
    TruncatedHeader,
    #[error("empty record")]
    Empty,
    #[error("record length {length} exceeds the maximum of {RECORD_PAYLOAD_BYTES_MAX} bytes")]
    TooLong { length: usize },
    #[error("record payload cut short")]
    TruncatedPayload,
    #[error("record checksum mismatch")]
    BadChecksum,
    #[error("record claims position {position} in a batch spanning {batch_first}..={batch_last}")]
    BadBatch {
        position: u64,
        batch_first: u64,
        batch_last: u64,
    },
}

impl RecordHeader {
    /// Parses and bounds-checks a header; the length is validated before
    /// anyone allocates a buffer for the payload.
    pub fn decode(bytes: &[u8]) -> Result<RecordHeader, RecordError> {
        let bytes = bytes
            .get(..RECORD_HEADER_BYTES)
            .ok_or(RecordError::TruncatedHeader)?;
        let payload_length = read_u32(bytes, 0) as usize;
        if payload_length == 0 {
            return Err(RecordError::Empty);
        }
        if payload_length > RECORD_PAYLOAD_BYTES_MAX {
            return Err(RecordError::TooLong {
                length: payload_length,
            });
        }
        let mut hash = [0u8; 32];
        hash.copy_from_slice(&bytes[32..64]);
        let mut tail = [0u8; RECORD_HEADER_BYTES - 8];
        tail.copy_from_slice(&bytes[8..RECORD_HEADER_BYTES]);
        Ok(RecordHeader {
            payload_length,
            checksum: read_u32(bytes, 4),
            place: RecordPlace {
                position: read_u64(bytes, 8),
                batch_first: read_u64(bytes, 16),
                batch_last: read_u64(bytes, 24),
            },
            hash,
            tail,
        })
    }

    /// Checks the payload against the checksum, and the batch bounds.
    pub fn verify(&self, payload: &[u8]) -> Result<(), RecordError> {
        if payload.len() != self.payload_length {
            return Err(RecordError::TruncatedPayload);
        }
        if record_checksum(&self.tail, payload) != self.checksum {
            return Err(RecordError::BadChecksum);
        }
        let place = self.place;
        if !(place.batch_first <= place.position && place.position <= place.batch_last) {
            return Err(RecordError::BadBatch {
                position: place.position,
                batch_first: place.batch_first,
                batch_last: place.batch_last,
            });
        }
        Ok(())
    }

    pub fn framed_length(&self) -> usize {
        RECORD_HEADER_BYTES + self.payload_length
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_round_trip_and_refuse_damage() {
        let header = SegmentHeader {
            format_version: FORMAT_VERSION,
            ledger_id: Uuid::from_u128(9),
            segment_index: 3,
            first_position: 1001,
            hash_before_first: [7; 32],
        };
        let bytes = header.encode();
        assert_eq!(SegmentHeader::decode(&bytes), Ok(header.clone()));
        let mut flipped = bytes;
        flipped[40] ^= 1;
        assert_eq!(
            SegmentHeader::decode(&flipped),
            Err(HeaderError::BadChecksum)
        );
        assert_eq!(
            SegmentHeader::decode(&bytes[..100]),
            Err(HeaderError::Truncated)
        );
        let mut foreign = bytes;
        foreign[0] = b'X';
        assert_eq!(SegmentHeader::decode(&foreign), Err(HeaderError::BadMagic));
        let newer = SegmentHeader {
            format_version: FORMAT_VERSION + 1,
            ..header
        }
        .encode();
        assert_eq!(
            SegmentHeader::decode(&newer),
            Err(HeaderError::NewerFormat {
                found: FORMAT_VERSION + 1
            })
        );
    }

    #[test]
    fn records_round_trip_and_any_flipped_bit_is_caught() {
        let hash = chain_hash(&genesis_hash(Uuid::from_u128(1)), b"payload");
        let mut buffer = Vec::new();
        let place = RecordPlace {
            position: 5,
            batch_first: 4,
            batch_last: 6,
        };
        encode_record(&mut buffer, place, &hash, b"payload");
        let header = RecordHeader::decode(&buffer).expect("valid header");
        assert_eq!(
            (header.place, header.hash, header.payload_length),
            (place, hash, 7)
        );
        assert_eq!(header.verify(&buffer[RECORD_HEADER_BYTES..]), Ok(()));
        for bit in 0..buffer.len() * 8 {
            let mut damaged = buffer.clone();
            damaged[bit / 8] ^= 1 << (bit % 8);
            let verdict = RecordHeader::decode(&damaged).and_then(|header| {
                header.verify(damaged.get(RECORD_HEADER_BYTES..).unwrap_or_default())
            });
            assert!(verdict.is_err(), "flipping bit {bit} went unnoticed");
        }
    }

    #[test]
    fn lengths_are_bounded_before_allocation() {
        let mut bytes = [0u8; RECORD_HEADER_BYTES];
        bytes[0..4].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(
            RecordHeader::decode(&bytes),
            Err(RecordError::TooLong {
                length: u32::MAX as usize
            })
        );
        assert_eq!(
            RecordHeader::decode(&[0u8; RECORD_HEADER_BYTES]),
            Err(RecordError::Empty)
        );
    }
}
