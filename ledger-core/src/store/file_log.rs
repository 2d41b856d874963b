//! The embedded file log: segment files of checksummed, hash-chained
//! records, one write and one fdatasync per appended batch.
//!
//! Recovery decision table (opening the last segment, scanning from its
//! header; a *commit point* is the end of a batch whose last record is
//! present and valid):
//!
//! | what the scan meets after the last commit point          | verdict                        |
//! |----------------------------------------------------------|--------------------------------|
//! | end of file                                              | clean                          |
//! | damage or end of file inside a batch, and no valid record | torn tail: the batch was never |
//! |   of a later batch anywhere after it                     |   acknowledged; cut it off     |
//! | damage, and a valid record of a later batch after it     | corruption of an acknowledged  |
//! |                                                          |   batch: refuse to open        |
//! | damage in a sealed (not last) segment                    | corruption: refuse to open     |
//! | a last segment whose header is torn                      | its creation never completed;  |
//! |                                                          |   no record was written to it: |
//! |                                                          |   remove it                    |
//!
//! A later batch is only ever written after the previous one was synced, so
//! its presence proves the damaged batch had been acknowledged.

use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::watch;
use uuid::Uuid;

use super::format::{
    FORMAT_VERSION, Hash, RECORD_HEADER_BYTES, RECORD_PAYLOAD_BYTES_MAX, RecordHeader, RecordPlace,
    SEGMENT_HEADER_BYTES, SegmentHeader, chain_hash, encode_record, genesis_hash,
};
use super::index::{IndexEntry, SegmentSummary};
use super::storage::{OpenMode, OsStorage, Storage, StorageFile};
use super::{EventLog, Head, LogError, PayloadBatch, Position, Record, RecordRef};

const LOCK_FILE: &str = "LOCK";
const READ_BUFFER_BYTES: usize = 1 << 20;

#[derive(Debug, Clone)]
pub struct FileLogOptions {
    /// A segment is sealed once a batch would take it past this size.
    pub segment_bytes_max: u64,
    /// One sparse-index entry every this many records.
    pub index_interval_records: u64,
}

impl Default for FileLogOptions {
    fn default() -> Self {
        FileLogOptions {
            segment_bytes_max: 64 << 20,
            index_interval_records: 1024,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogMode {
    /// Open for writing; if the directory holds no ledger, create one with
    /// this id.
    ReadWrite { ledger_id_if_new: Uuid },
    /// Open an existing ledger for writing.
    ReadWriteExisting,
    /// Open an existing ledger for reading, beside a running writer. A torn
    /// or in-flight tail is ignored, never cut off.
    ReadOnly,
}

#[derive(Debug)]
struct Segment<F> {
    index: u64,
    path: PathBuf,
    file: Arc<F>,
    first_position: Position,
    hash_before_first: Hash,
    /// End of the last complete batch.
    end_offset: u64,
    last_position: Position,
    last_hash: Hash,
    entries: Vec<IndexEntry>,
}

impl<F> Segment<F> {
    fn head(&self) -> Head {
        Head {
            position: self.last_position,
            hash: self.last_hash,
        }
    }

    fn summary(&self) -> SegmentSummary {
        SegmentSummary {
            segment_length: self.end_offset,
            last_position: self.last_position,
            last_hash: self.last_hash,
            entries: self.entries.clone(),
        }
    }

    /// Where to start reading to reach `position`: the nearest index entry
    /// at or before it.
    fn start_for(&self, position: Position) -> IndexEntry {
        let nearest = self
            .entries
            .partition_point(|entry| entry.position <= position);
        match nearest
            .checked_sub(1)
            .and_then(|index| self.entries.get(index))
        {
            Some(entry) => *entry,
            None => IndexEntry {
                position: self.first_position,
                offset: SEGMENT_HEADER_BYTES as u64,
                hash_before: self.hash_before_first,
            },
        }
    }
}

#[derive(Debug)]
struct Inner<F> {
    segments: Vec<Segment<F>>,
    /// Set by the first write-path error; every later append fails.
    poisoned: Option<String>,
    /// The encoded batch, kept between appends: a fresh multi-megabyte
    /// buffer per batch made the kernel zero new pages on every append
    /// (a fifth of the writer's time under load).
    write_buffer: Vec<u8>,
}

/// The embedded, file-backed [`EventLog`].
#[derive(Debug)]
pub struct FileLog<S: Storage = OsStorage> {
    storage: S,
    directory: PathBuf,
    ledger_id: Uuid,
    writable: bool,
    options: FileLogOptions,
    inner: Mutex<Inner<S::File>>,
    head_sender: watch::Sender<Head>,
    _lock: Option<S::Lock>,
}

fn segment_file_name(index: u64) -> String {
    format!("segment-{index:010}.log")
}

fn index_file_name(index: u64) -> String {
    format!("segment-{index:010}.idx")
}

fn parse_segment_index(name: &str) -> Option<u64> {
    name.strip_prefix("segment-")?
        .strip_suffix(".log")?
        .parse()
        .ok()
}

/// Reads a segment through a large buffer: one system call per megabyte,
/// not two per record.
struct SegmentReader<'file, F> {
    file: &'file F,
    buffer: Vec<u8>,
    buffer_start: u64,
    end: u64,
}

impl<'file, F: StorageFile> SegmentReader<'file, F> {
    fn new(file: &'file F, end: u64) -> Self {
        SegmentReader {
            file,
            buffer: Vec::new(),
            buffer_start: 0,
            end,
        }
    }

    /// `length` bytes at `offset`, or `None` if the segment ends first.
    fn bytes(&mut self, offset: u64, length: usize) -> std::io::Result<Option<&[u8]>> {
        if offset + length as u64 > self.end {
            return Ok(None);
        }
        let buffered_end = self.buffer_start + self.buffer.len() as u64;
        if offset < self.buffer_start || offset + length as u64 > buffered_end {
            let wanted = length
                .max(READ_BUFFER_BYTES)
                .min((self.end - offset) as usize);
            self.buffer.resize(wanted, 0);
            let read = self.file.read_at(&mut self.buffer, offset)?;
            self.buffer.truncate(read);
            self.buffer_start = offset;
            if read < length {
                return Ok(None);
            }
        }
        let start = (offset - self.buffer_start) as usize;
        Ok(Some(&self.buffer[start..start + length]))
    }

    /// Reads and fully verifies the record at `offset`, which must be at
    /// `position` and continue the chain from `hash_before`.
    fn record(
        &mut self,
        offset: u64,
        position: Position,
        hash_before: &Hash,
    ) -> std::io::Result<Result<(RecordHeader, &[u8]), String>> {
        let Some(header_bytes) = self.bytes(offset, RECORD_HEADER_BYTES)? else {
            return Ok(Err("record header cut short".to_owned()));
        };
        let header = match RecordHeader::decode(header_bytes) {
            Ok(header) => header,
            Err(error) => return Ok(Err(error.to_string())),
        };
        if header.place.position != position {
            return Ok(Err(format!(
                "record claims position {}, expected {position}",
                header.place.position
            )));
        }
        let Some(payload) =
            self.bytes(offset + RECORD_HEADER_BYTES as u64, header.payload_length)?
        else {
            return Ok(Err("record payload cut short".to_owned()));
        };
        if let Err(error) = header.verify(payload) {
            return Ok(Err(error.to_string()));
        }
        if chain_hash(hash_before, payload) != header.hash {
            return Ok(Err(
                "hash chain broken: the record's hash does not follow from the previous one"
                    .to_owned(),
            ));
        }
        Ok(Ok((header, payload)))
    }
}

/// The result of scanning a segment from its header.
struct Scan {
    commit_offset: u64,
    last_position: Position,
    last_hash: Hash,
    entries: Vec<IndexEntry>,
    /// Where the scan stopped short of a clean end: (offset, position, why).
    damage: Option<(u64, Position, String)>,
}

fn scan_segment<F: StorageFile>(
    file: &F,
    path: &Path,
    header: &SegmentHeader,
    length: u64,
    interval: u64,
) -> Result<Scan, LogError> {
    let mut reader = SegmentReader::new(file, length);
    let mut offset = SEGMENT_HEADER_BYTES as u64;
    let mut position = header.first_position;
    let mut hash_before = header.hash_before_first;
    let mut batch: Option<(Position, Position)> = None;
    let mut scan = Scan {
        commit_offset: offset,
        last_position: header.first_position - 1,
        last_hash: header.hash_before_first,
        entries: Vec::new(),
        damage: None,
    };
    while offset < length {
        let outcome = reader
            .record(offset, position, &hash_before)
            .map_err(|error| LogError::io("read", path, error))?;
        let (record_header, payload) = match outcome {
            Ok(record) => record,
            Err(why) => {
                scan.damage = Some((offset, position, why));
                break;
            }
        };
        let place = record_header.place;
        let expected_batch = batch.unwrap_or((position, place.batch_last));
        if (place.batch_first, place.batch_last) != expected_batch {
            scan.damage = Some((
                offset,
                position,
                format!(
                    "record says its batch spans {}..={}, the scan expected {}..={}",
                    place.batch_first, place.batch_last, expected_batch.0, expected_batch.1
                ),
            ));
            break;
        }
        batch = Some(expected_batch);
        if (position - header.first_position).is_multiple_of(interval) {
            scan.entries.push(IndexEntry {
                position,
                offset,
                hash_before,
            });
        }
        offset += (RECORD_HEADER_BYTES + payload.len()) as u64;
        hash_before = record_header.hash;
        if position == place.batch_last {
            scan.commit_offset = offset;
            scan.last_position = position;
            scan.last_hash = record_header.hash;
            batch = None;
        }
        position += 1;
    }
    if scan.damage.is_none() && batch.is_some() {
        scan.damage = Some((
            offset,
            position,
            "the segment ends inside a batch".to_owned(),
        ));
    }
    let last_position = scan.last_position;
    scan.entries.retain(|entry| entry.position <= last_position);
    Ok(scan)
}

/// Is there, anywhere from `from` on, a valid record of a batch that starts
/// after `incomplete_batch_first`? If so, the incomplete batch had been
/// synced, and its damage is corruption, not a torn write.
fn later_batch_exists<F: StorageFile>(
    file: &F,
    path: &Path,
    from: u64,
    length: u64,
    incomplete_batch_first: Position,
) -> Result<bool, LogError> {
    if from >= length {
        return Ok(false);
    }
    let mut rest = vec![0u8; (length - from) as usize];
    let read = file
        .read_at(&mut rest, from)
        .map_err(|error| LogError::io("read", path, error))?;
    rest.truncate(read);
    for start in 0..rest.len().saturating_sub(RECORD_HEADER_BYTES) {
        let Ok(header) = RecordHeader::decode(&rest[start..]) else {
            continue;
        };
        if header.place.batch_first <= incomplete_batch_first {
            continue;
        }
        let payload_start = start + RECORD_HEADER_BYTES;
        if let Some(payload) = rest.get(payload_start..payload_start + header.payload_length)
            && header.verify(payload).is_ok()
        {
            return Ok(true);
        }
    }
    Ok(false)
}

impl FileLog<OsStorage> {
    /// Opens (or creates) the log in `directory` on the real file system.
    pub fn open(directory: impl Into<PathBuf>, mode: LogMode) -> Result<Self, LogError> {
        FileLog::open_with(OsStorage, directory.into(), mode, FileLogOptions::default())
    }
}

impl<S: Storage> FileLog<S> {
    pub fn open_with(
        storage: S,
        directory: PathBuf,
        mode: LogMode,
        options: FileLogOptions,
    ) -> Result<Self, LogError> {
        let writable = mode != LogMode::ReadOnly;
        let create_with = match mode {
            LogMode::ReadWrite { ledger_id_if_new } => Some(ledger_id_if_new),
            _ => None,
        };
        if !storage.exists(&directory) {
            if create_with.is_none() {
                return Err(LogError::NotFound { directory });
            }
            storage
                .create_dir_all(&directory)
                .map_err(|error| LogError::io("create directory", &directory, error))?;
        }
        let lock = if writable {
            let lock_path = directory.join(LOCK_FILE);
            Some(storage.lock_exclusive(&lock_path).map_err(|error| {
                if error.kind() == std::io::ErrorKind::WouldBlock {
                    LogError::Locked {
                        directory: directory.clone(),
                    }
                } else {
                    LogError::io("lock", &lock_path, error)
                }
            })?)
        } else {
            None
        };
        let mut opener = Opener {
            storage: &storage,
            directory: &directory,
            writable,
            options: &options,
        };
        let mut segments = opener.load_segments()?;
        if segments.is_empty() {
            let Some(ledger_id) = create_with else {
                return Err(LogError::NotFound { directory });
            };
            segments.push(opener.create_segment(ledger_id, 1, 1, genesis_hash(ledger_id))?);
        }
        let ledger_id = opener.ledger_id_of(&segments[0])?;
        let head = segments.last().map_or(
            Head {
                position: 0,
                hash: genesis_hash(ledger_id),
            },
            Segment::head,
        );
        Ok(FileLog {
            storage,
            directory,
            ledger_id,
            writable,
            options,
            inner: Mutex::new(Inner {
                segments,
                poisoned: None,
                write_buffer: Vec::new(),
            }),
            head_sender: watch::Sender::new(head),
            _lock: lock,
        })
    }

    pub fn directory(&self) -> &Path {
        &self.directory
    }

    /// Why the log stopped accepting writes, if it did.
    pub fn poisoned(&self) -> Option<String> {
        self.lock_inner().poisoned.clone()
    }

    fn lock_inner(&self) -> MutexGuard<'_, Inner<S::File>> {
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Appends a batch with one write and one fdatasync; returns once it is
    /// durable. Blocks the calling thread for the I/O.
    pub fn append_blocking<Payload: AsRef<[u8]>>(
        &self,
        expected: Position,
        payloads: &[Payload],
    ) -> Result<Head, LogError> {
        self.append_records(expected, payloads.iter().map(AsRef::as_ref))
    }

    fn append_records<'payload>(
        &self,
        expected: Position,
        payloads: impl ExactSizeIterator<Item = &'payload [u8]> + Clone,
    ) -> Result<Head, LogError> {
        if !self.writable {
            return Err(LogError::ReadOnly);
        }
        let mut inner = self.lock_inner();
        if let Some(cause) = &inner.poisoned {
            return Err(LogError::Poisoned {
                cause: cause.clone(),
            });
        }
        let head = self.head();
        if head.position != expected {
            return Err(LogError::Conflict {
                expected,
                actual: head.position,
            });
        }
        if payloads.len() == 0 {
            return Ok(head);
        }
        if let Some(bad) = payloads
            .clone()
            .find(|payload| payload.is_empty() || payload.len() > RECORD_PAYLOAD_BYTES_MAX)
        {
            return Err(LogError::BadRecordLength { length: bad.len() });
        }
        let batch_bytes: u64 = payloads
            .clone()
            .map(|payload| (RECORD_HEADER_BYTES + payload.len()) as u64)
            .sum();
        let needs_rotation = inner.segments.last().is_some_and(|active| {
            active.end_offset > SEGMENT_HEADER_BYTES as u64
                && active.end_offset + batch_bytes > self.options.segment_bytes_max
        });
        if needs_rotation && let Err(error) = self.rotate(&mut inner) {
            inner.poisoned = Some(error.to_string());
            return Err(error);
        }

        let batch_first = head.position + 1;
        let batch_last = head.position + payloads.len() as u64;
        let mut buffer = std::mem::take(&mut inner.write_buffer);
        buffer.clear();
        buffer.reserve(batch_bytes as usize);
        let mut hash = head.hash;
        let mut new_entries = Vec::new();
        let Some(active) = inner.segments.last() else {
            return Err(LogError::NotFound {
                directory: self.directory.clone(),
            });
        };
        let mut offset = active.end_offset;
        for (index, payload) in payloads.enumerate() {
            let position = batch_first + index as u64;
            if (position - active.first_position)
                .is_multiple_of(self.options.index_interval_records)
            {
                new_entries.push(IndexEntry {
                    position,
                    offset,
                    hash_before: hash,
                });
            }
            hash = chain_hash(&hash, payload);
            let place = RecordPlace {
                position,
                batch_first,
                batch_last,
            };
            encode_record(&mut buffer, place, &hash, payload);
            offset += (RECORD_HEADER_BYTES + payload.len()) as u64;
        }

        let file = Arc::clone(&active.file);
        let path = active.path.clone();
        let start = active.end_offset;
        let written = file
            .write_all_at(&buffer, start)
            .map_err(|error| LogError::io("write", &path, error))
            .and_then(|()| {
                file.sync_data()
                    .map_err(|error| LogError::io("fdatasync", &path, error))
            });
        if let Err(error) = written {
            // Never retried, never acknowledged. Cut back what may have
            // landed so a reopen finds nothing of this batch (best effort:
            // if this fails too, recovery may find the batch whole, and its
            // commands' ids let retries be answered from the log instead of
            // applied twice).
            if let Err(truncate_error) = file.truncate(start).and_then(|()| file.sync_data()) {
                tracing::error!(path = %path.display(), %truncate_error, "could not cut back a failed batch");
            }
            tracing::error!(path = %path.display(), %error, "log write failed; the log is now read-only");
            inner.poisoned = Some(error.to_string());
            return Err(error);
        }
        let Some(active) = inner.segments.last_mut() else {
            return Err(LogError::NotFound {
                directory: self.directory.clone(),
            });
        };
        active.end_offset = offset;
        active.last_position = batch_last;
        active.last_hash = hash;
        active.entries.extend(new_entries);
        let new_head = active.head();
        inner.write_buffer = buffer;
        drop(inner);
        self.head_sender.send_replace(new_head);
        Ok(new_head)
    }

    /// Seals the active segment and starts the next one.
    fn rotate(&self, inner: &mut Inner<S::File>) -> Result<(), LogError> {
        let Some(sealed) = inner.segments.last() else {
            return Ok(());
        };
        let index_path = self.directory.join(index_file_name(sealed.index));
        if let Err(error) = self
            .storage
            .replace(&index_path, &sealed.summary().encode())
        {
            // The index is rebuilt from the segment when missing.
            tracing::warn!(path = %index_path.display(), %error, "could not write a segment index");
        }
        let opener = Opener {
            storage: &self.storage,
            directory: &self.directory,
            writable: true,
            options: &self.options,
        };
        let next = opener.create_segment(
            self.ledger_id,
            sealed.index + 1,
            sealed.last_position + 1,
            sealed.last_hash,
        )?;
        inner.segments.push(next);
        Ok(())
    }

    /// Up to `limit` verified records after `after`. Blocks for the I/O.
    pub fn read_blocking(&self, after: Position, limit: usize) -> Result<Vec<Record>, LogError> {
        let mut records = Vec::new();
        self.scan_blocking(after, limit, |record| {
            records.push(record.to_record());
            ControlFlow::Continue(())
        })?;
        Ok(records)
    }

    /// Visits the verified records after `after`, at most `limit`, in
    /// order, lending each payload from the read buffer instead of copying
    /// it: a replay decodes every record once and keeps none of the bytes.
    /// `visit` may stop the scan early with `ControlFlow::Break`.
    pub fn scan_blocking(
        &self,
        after: Position,
        limit: usize,
        mut visit: impl FnMut(RecordRef<'_>) -> ControlFlow<()>,
    ) -> Result<(), LogError> {
        let mut visited = 0;
        let mut cursor = after;
        while visited < limit {
            let plan = {
                let inner = self.lock_inner();
                let wanted = cursor + 1;
                inner
                    .segments
                    .iter()
                    .find(|segment| {
                        segment.first_position <= wanted && wanted <= segment.last_position
                    })
                    .map(|segment| {
                        (
                            Arc::clone(&segment.file),
                            segment.path.clone(),
                            segment.start_for(wanted),
                            segment.end_offset,
                            segment.last_position,
                        )
                    })
            };
            let Some((file, path, start, end_offset, last_position)) = plan else {
                break;
            };
            let mut reader = SegmentReader::new(file.as_ref(), end_offset);
            let mut offset = start.offset;
            let mut hash_before = start.hash_before;
            let mut position = start.position;
            while position <= last_position && visited < limit {
                let outcome = reader
                    .record(offset, position, &hash_before)
                    .map_err(|error| LogError::io("read", &path, error))?;
                let (header, payload) = outcome.map_err(|detail| LogError::Corrupt {
                    path: path.clone(),
                    offset,
                    position,
                    detail,
                })?;
                offset += (RECORD_HEADER_BYTES + payload.len()) as u64;
                if position > cursor {
                    visited += 1;
                    let record = RecordRef {
                        position,
                        previous_hash: hash_before,
                        hash: header.hash,
                        payload,
                    };
                    if visit(record).is_break() {
                        return Ok(());
                    }
                }
                hash_before = header.hash;
                position += 1;
            }
            cursor = position - 1;
        }
        Ok(())
    }
}

impl<S: Storage> EventLog for FileLog<S> {
    fn ledger_id(&self) -> Uuid {
        self.ledger_id
    }

    fn head(&self) -> Head {
        *self.head_sender.borrow()
    }

    async fn append(&self, expected: Position, payloads: &PayloadBatch) -> Result<Head, LogError> {
        self.append_records(expected, payloads.iter())
    }

    async fn read(&self, after: Position, limit: usize) -> Result<Vec<Record>, LogError> {
        self.read_blocking(after, limit)
    }

    fn subscribe(&self) -> watch::Receiver<Head> {
        self.head_sender.subscribe()
    }
}

/// Opening and creating segments: the recovery half of the log.
struct Opener<'open, S: Storage> {
    storage: &'open S,
    directory: &'open Path,
    writable: bool,
    options: &'open FileLogOptions,
}

impl<S: Storage> Opener<'_, S> {
    fn io(&self, operation: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> LogError {
        let path = path.to_path_buf();
        move |error| LogError::io(operation, &path, error)
    }

    fn create_segment(
        &self,
        ledger_id: Uuid,
        index: u64,
        first_position: Position,
        hash_before_first: Hash,
    ) -> Result<Segment<S::File>, LogError> {
        let path = self.directory.join(segment_file_name(index));
        let header = SegmentHeader {
            format_version: FORMAT_VERSION,
            ledger_id,
            segment_index: index,
            first_position,
            hash_before_first,
        };
        let file = self
            .storage
            .open(&path, OpenMode::CreateNew)
            .map_err(self.io("create", &path))?;
        file.write_all_at(&header.encode(), 0)
            .map_err(self.io("write", &path))?;
        file.sync_data().map_err(self.io("fdatasync", &path))?;
        self.storage
            .sync_directory(self.directory)
            .map_err(self.io("fsync directory", self.directory))?;
        Ok(Segment {
            index,
            path,
            file: Arc::new(file),
            first_position,
            hash_before_first,
            end_offset: SEGMENT_HEADER_BYTES as u64,
            last_position: first_position - 1,
            last_hash: hash_before_first,
            entries: Vec::new(),
        })
    }

    fn ledger_id_of(&self, segment: &Segment<S::File>) -> Result<Uuid, LogError> {
        Ok(self
            .read_header(&segment.path, segment.file.as_ref())?
            .ledger_id)
    }

    fn read_header(&self, path: &Path, file: &S::File) -> Result<SegmentHeader, LogError> {
        let mut bytes = [0u8; SEGMENT_HEADER_BYTES];
        let read = file.read_at(&mut bytes, 0).map_err(self.io("read", path))?;
        SegmentHeader::decode(&bytes[..read]).map_err(|source| LogError::BadHeader {
            path: path.to_path_buf(),
            source,
        })
    }

    fn segment_indexes(&self) -> Result<Vec<u64>, LogError> {
        let names = self
            .storage
            .list(self.directory)
            .map_err(self.io("list", self.directory))?;
        let mut indexes: Vec<u64> = names
            .iter()
            .filter_map(|name| parse_segment_index(name))
            .collect();
        indexes.sort_unstable();
        for (expected, index) in (1u64..).zip(&indexes) {
            if *index != expected {
                return Err(LogError::SegmentMissing {
                    directory: self.directory.to_path_buf(),
                    index: expected,
                });
            }
        }
        Ok(indexes)
    }

    fn load_segments(&mut self) -> Result<Vec<Segment<S::File>>, LogError> {
        let mut indexes = self.segment_indexes()?;
        // A last segment whose header never became durable was created by a
        // rotation that did not finish; nothing was ever written to it.
        if let Some(&last) = indexes.last() {
            let path = self.directory.join(segment_file_name(last));
            let file = self
                .storage
                .open(&path, OpenMode::Read)
                .map_err(self.io("open", &path))?;
            if let Err(LogError::BadHeader { source, .. }) = self.read_header(&path, &file) {
                let torn = matches!(
                    source,
                    super::format::HeaderError::Truncated | super::format::HeaderError::BadChecksum
                ) || file.length().map_err(self.io("stat", &path))?
                    < SEGMENT_HEADER_BYTES as u64;
                if torn {
                    tracing::warn!(path = %path.display(), "ignoring a segment whose creation never completed");
                    if self.writable {
                        drop(file);
                        self.storage
                            .remove(&path)
                            .map_err(self.io("remove", &path))?;
                        self.storage
                            .sync_directory(self.directory)
                            .map_err(self.io("fsync directory", self.directory))?;
                    }
                    indexes.pop();
                }
            }
        }

        let mut segments: Vec<Segment<S::File>> = Vec::with_capacity(indexes.len());
        let mut ledger_id = None;
        let last_index = indexes.last().copied();
        for index in indexes {
            let is_last = Some(index) == last_index;
            let path = self.directory.join(segment_file_name(index));
            let mode = if is_last && self.writable {
                OpenMode::ReadWrite
            } else {
                OpenMode::Read
            };
            let file = self
                .storage
                .open(&path, mode)
                .map_err(self.io("open", &path))?;
            let header = self.read_header(&path, &file)?;
            if header.segment_index != index {
                return Err(LogError::SegmentMisplaced {
                    path,
                    found: header.segment_index,
                });
            }
            let expected_id = *ledger_id.get_or_insert(header.ledger_id);
            if header.ledger_id != expected_id {
                return Err(LogError::ForeignLedger {
                    path,
                    expected: expected_id,
                    found: header.ledger_id,
                });
            }
            if let Some(previous) = segments.last()
                && (header.first_position != previous.last_position + 1
                    || header.hash_before_first != previous.last_hash)
            {
                return Err(LogError::Corrupt {
                    path,
                    offset: 0,
                    position: header.first_position,
                    detail: format!(
                        "segment does not continue the chain of segment {} (which ends at position {})",
                        previous.index, previous.last_position
                    ),
                });
            }
            let length = file.length().map_err(self.io("stat", &path))?;
            let segment = if is_last {
                self.recover_last(index, path, file, &header, length)?
            } else {
                self.load_sealed(index, path, file, &header, length)?
            };
            segments.push(segment);
        }
        Ok(segments)
    }

    fn load_sealed(
        &self,
        index: u64,
        path: PathBuf,
        file: S::File,
        header: &SegmentHeader,
        length: u64,
    ) -> Result<Segment<S::File>, LogError> {
        let index_path = self.directory.join(index_file_name(index));
        let summary = self
            .storage
            .open(&index_path, OpenMode::Read)
            .ok()
            .and_then(|index_file| {
                let size = usize::try_from(index_file.length().ok()?).ok()?;
                let mut bytes = vec![0u8; size];
                index_file.read_at(&mut bytes, 0).ok()?;
                SegmentSummary::decode(&bytes)
            })
            .filter(|summary| summary.segment_length == length);
        let summary = match summary {
            Some(summary) => summary,
            None => {
                let scan = scan_segment(
                    &file,
                    &path,
                    header,
                    length,
                    self.options.index_interval_records,
                )?;
                if let Some((offset, position, detail)) = scan.damage {
                    return Err(LogError::Corrupt {
                        path,
                        offset,
                        position,
                        detail,
                    });
                }
                let summary = SegmentSummary {
                    segment_length: scan.commit_offset,
                    last_position: scan.last_position,
                    last_hash: scan.last_hash,
                    entries: scan.entries,
                };
                if self.writable
                    && let Err(error) = self.storage.replace(&index_path, &summary.encode())
                {
                    tracing::warn!(path = %index_path.display(), %error, "could not rebuild a segment index");
                }
                summary
            }
        };
        Ok(Segment {
            index,
            path,
            file: Arc::new(file),
            first_position: header.first_position,
            hash_before_first: header.hash_before_first,
            end_offset: summary.segment_length,
            last_position: summary.last_position,
            last_hash: summary.last_hash,
            entries: summary.entries,
        })
    }

    fn recover_last(
        &self,
        index: u64,
        path: PathBuf,
        file: S::File,
        header: &SegmentHeader,
        length: u64,
    ) -> Result<Segment<S::File>, LogError> {
        let scan = scan_segment(
            &file,
            &path,
            header,
            length,
            self.options.index_interval_records,
        )?;
        if let Some((offset, position, detail)) = &scan.damage
            && later_batch_exists(&file, &path, offset + 1, length, scan.last_position + 1)?
        {
            return Err(LogError::Corrupt {
                path,
                offset: *offset,
                position: *position,
                detail: detail.clone(),
            });
        }
        if scan.commit_offset < length {
            let torn_bytes = length - scan.commit_offset;
            let why = scan
                .damage
                .as_ref()
                .map_or("", |(_, _, detail)| detail.as_str());
            if self.writable {
                tracing::warn!(
                    path = %path.display(),
                    offset = scan.commit_offset,
                    length = torn_bytes,
                    reason = why,
                    "cutting off a torn tail that was never acknowledged"
                );
                file.truncate(scan.commit_offset)
                    .and_then(|()| file.sync_data())
                    .map_err(self.io("truncate", &path))?;
            } else {
                tracing::debug!(
                    path = %path.display(),
                    offset = scan.commit_offset,
                    length = torn_bytes,
                    "ignoring an incomplete tail (a batch in flight or torn)"
                );
            }
        }
        Ok(Segment {
            index,
            path,
            file: Arc::new(file),
            first_position: header.first_position,
            hash_before_first: header.hash_before_first,
            end_offset: scan.commit_offset,
            last_position: scan.last_position,
            last_hash: scan.last_hash,
            entries: scan.entries,
        })
    }
}
