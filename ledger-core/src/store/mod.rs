//! The event log: the storage port every backend implements, the embedded
//! file log (the default, no server needed) and an in-memory log for tests.
//!
//! Architecture invariant: this module owns every byte on disk; only
//! `storage` and its implementations touch files or call fsync (the tidy
//! test enforces the fsync half).

pub mod file_log;
pub mod format;
mod index;
pub mod memory;
mod payloads;
#[cfg(any(test, feature = "simulation"))]
pub mod simulated;
pub mod small_file;
pub mod snapshot;
pub mod storage;

use std::future::Future;
use std::path::PathBuf;

use tokio::sync::watch;

pub use file_log::{FileLog, FileLogOptions, LogMode};
pub use format::{Hash, genesis_hash};
pub use memory::MemoryLog;
pub use payloads::PayloadBatch;

/// Global log position: 1 for the first event, gapless; 0 is "before any".
pub type Position = u64;

/// The last durable record: its position and chain hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Head {
    pub position: Position,
    pub hash: Hash,
}

/// One record as stored: the payload bytes exactly as written (the event
/// envelope, serialised once), with its place in the chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub position: Position,
    pub previous_hash: Hash,
    pub hash: Hash,
    pub payload: Vec<u8>,
}

/// A record lent by a scan: the payload borrows the reader's buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordRef<'buffer> {
    pub position: Position,
    pub previous_hash: Hash,
    pub hash: Hash,
    pub payload: &'buffer [u8],
}

impl RecordRef<'_> {
    pub fn to_record(self) -> Record {
        Record {
            position: self.position,
            previous_hash: self.previous_hash,
            hash: self.hash,
            payload: self.payload.to_vec(),
        }
    }
}

/// The storage port. Shaped for a remote, replicated backend as much as for
/// the file log: appends are batches guarded by the expected head position
/// (optimistic concurrency, which also fences out a second writer), reads
/// go by global position, and a watch channel announces each new head.
///
/// The file log's futures complete without awaiting anything; drive them
/// from a thread that may block on disk I/O (the engine's writer thread).
pub trait EventLog: Send + Sync + 'static {
    /// The ledger this log belongs to; its genesis hash derives from it.
    fn ledger_id(&self) -> uuid::Uuid;

    /// The last durable record (position 0 and the genesis hash if empty).
    fn head(&self) -> Head;

    /// Appends `payloads` at positions `expected + 1 ..`, durably, as one
    /// group commit. Returns the new head only once the records would
    /// survive a crash or power loss. Fails with [`LogError::Conflict`] if
    /// the head is not at `expected`.
    fn append(
        &self,
        expected: Position,
        payloads: &PayloadBatch,
    ) -> impl Future<Output = Result<Head, LogError>> + Send;

    /// Up to `limit` records after position `after`, oldest first, each
    /// verified (checksum, position, chain) before it is returned.
    fn read(
        &self,
        after: Position,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<Record>, LogError>> + Send;

    /// Announces every new durable head.
    fn subscribe(&self) -> watch::Receiver<Head>;
}

#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error("{operation} {}: {source}", path.display())]
    Io {
        operation: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the disk is full ({operation} {})", path.display())]
    DiskFull {
        operation: &'static str,
        path: PathBuf,
    },
    #[error("the log stopped accepting writes after an I/O error ({cause}); reopen it to recover")]
    Poisoned { cause: String },
    #[error("the log is open read-only")]
    ReadOnly,
    #[error("{} is locked by another writer", directory.display())]
    Locked { directory: PathBuf },
    #[error("no ledger at {}", directory.display())]
    NotFound { directory: PathBuf },
    #[error("{} belongs to ledger {found}, not {expected}", path.display())]
    ForeignLedger {
        path: PathBuf,
        expected: uuid::Uuid,
        found: uuid::Uuid,
    },
    #[error("{}: {source}", path.display())]
    BadHeader {
        path: PathBuf,
        #[source]
        source: format::HeaderError,
    },
    #[error("segment {index} is missing from {}", directory.display())]
    SegmentMissing { directory: PathBuf, index: u64 },
    #[error("{} says it is segment {found}", path.display())]
    SegmentMisplaced { path: PathBuf, found: u64 },
    #[error("{} at offset {offset}, position {position}: {detail}", path.display())]
    Corrupt {
        path: PathBuf,
        offset: u64,
        position: Position,
        detail: String,
    },
    #[error("the head is at {actual}, not the expected {expected}")]
    Conflict {
        expected: Position,
        actual: Position,
    },
    #[error(
        "a record must hold 1 to {} bytes, got {length}",
        format::RECORD_PAYLOAD_BYTES_MAX
    )]
    BadRecordLength { length: usize },
}

impl LogError {
    fn io(operation: &'static str, path: &std::path::Path, source: std::io::Error) -> LogError {
        if source.kind() == std::io::ErrorKind::StorageFull {
            return LogError::DiskFull {
                operation,
                path: path.to_path_buf(),
            };
        }
        LogError::Io {
            operation,
            path: path.to_path_buf(),
            source,
        }
    }
}
