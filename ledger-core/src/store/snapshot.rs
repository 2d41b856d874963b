//! Snapshot files: a body (a serialised state) tagged with the log position
//! and head hash it was taken at. A snapshot is only ever a shortcut: a
//! missing, torn, mismatched or undecodable one costs a longer replay, never
//! correctness, so snapshots are checksummed but not fsynced, and the log
//! must hold the same hash at their position before one is used.
//!
//! ```text
//! magic "PLEDGSNP" | format u32 | position u64 | head hash [32]
//! | body length u64 | body crc32c u32 | header crc32c u32 | body
//! ```
//!
//! Format 2 bodies are postcard: compact and fast for states of millions of
//! records (format 1 was JSON, over 500 bytes per event of history; its
//! files are skipped as unsupported and replaced by the next snapshot).
//! Postcard is positional: it does not name fields, so a body written for
//! one shape of the state could be misread by a build with another. Every
//! body therefore starts with its kind's layout number (u32, little
//! endian), and one with another number is skipped. The number is bumped
//! whenever the shape changes; a test (`tests/…/snapshot_layout.rs`) fails
//! when the encoding of a fixed ledger changes and the number did not.

use std::io::{self, Write};
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::format::Hash;
use super::storage::{OpenMode, Rewritable, Storage, StorageFile};
use super::{EventLog, Head, LogError, Position};

const MAGIC: &[u8; 8] = b"PLEDGSNP";
const FORMAT: u32 = 2;
const HEADER_BYTES: usize = 8 + 4 + 8 + 32 + 8 + 4 + 4;
/// Snapshots kept; older ones are removed after a new one is written.
const KEPT: usize = 2;

/// What a snapshot holds: a name (for logs and metrics) and the layout
/// number of its body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SnapshotKind {
    pub name: &'static str,
    pub layout: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    pub position: Position,
    pub head_hash: Hash,
    pub body: Vec<u8>,
}

/// A snapshot body: `kind`'s layout number, then `value` as postcard.
pub fn encode_body<T: Serialize>(kind: SnapshotKind, value: &T) -> Result<Vec<u8>, SnapshotError> {
    write_body(kind, value, Vec::new()).map_err(SnapshotError::Encode)
}

/// Writes the body [`encode_body`] makes to `writer`, as it is serialised.
fn write_body<T: Serialize, W: Write>(
    kind: SnapshotKind,
    value: &T,
    mut writer: W,
) -> Result<W, postcard::Error> {
    writer
        .write_all(&kind.layout.to_le_bytes())
        .map_err(|_| postcard::Error::SerializeBufferFull)?;
    postcard::to_io(value, writer)
}

/// Reads a body written by [`encode_body`] for the same layout.
pub fn decode_body<T: DeserializeOwned>(kind: SnapshotKind, body: &[u8]) -> Result<T, BodyError> {
    let (layout, value) = body.split_first_chunk::<4>().ok_or(BodyError::TooShort)?;
    let found = u32::from_le_bytes(*layout);
    if found != kind.layout {
        return Err(BodyError::OtherLayout {
            kind: kind.name,
            found,
            expected: kind.layout,
        });
    }
    postcard::from_bytes(value).map_err(BodyError::Decode)
}

/// Why a body is not used.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    #[error("its body is too short")]
    TooShort,
    #[error("its {kind} state has layout {found}; this build reads layout {expected}")]
    OtherLayout {
        kind: &'static str,
        found: u32,
        expected: u32,
    },
    #[error("its body does not decode: {0}")]
    Decode(postcard::Error),
}

#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("cannot serialise the snapshot: {0}")]
    Encode(postcard::Error),
    #[error(transparent)]
    Log(#[from] LogError),
}

#[derive(Debug)]
pub struct SnapshotStore<S: Storage> {
    storage: S,
    directory: PathBuf,
}

/// A snapshot file's header (in `format`) for a body of `body_length`
/// bytes whose checksum is `body_checksum`.
fn header(
    format: u32,
    position: Position,
    head_hash: &Hash,
    body_length: u64,
    body_checksum: u32,
) -> [u8; HEADER_BYTES] {
    let mut bytes = [0; HEADER_BYTES];
    let fields: [&[u8]; 6] = [
        MAGIC,
        &format.to_le_bytes(),
        &position.to_le_bytes(),
        head_hash,
        &body_length.to_le_bytes(),
        &body_checksum.to_le_bytes(),
    ];
    let mut at = 0;
    for field in fields {
        bytes[at..at + field.len()].copy_from_slice(field);
        at += field.len();
    }
    let header_checksum = crc32c::crc32c(&bytes[..at]);
    bytes[at..].copy_from_slice(&header_checksum.to_le_bytes());
    bytes
}

/// The header (in `format`) of a snapshot whose body is in memory.
fn header_of(format: u32, snapshot: &Snapshot) -> [u8; HEADER_BYTES] {
    header(
        format,
        snapshot.position,
        &snapshot.head_hash,
        snapshot.body.len() as u64,
        crc32c::crc32c(&snapshot.body),
    )
}

/// A snapshot file: the header (in `format`), then the body.
#[cfg(test)]
fn file_bytes(format: u32, snapshot: &Snapshot) -> Vec<u8> {
    [&header_of(format, snapshot)[..], &snapshot.body].concat()
}

/// The body on its way to the file, checksummed as it goes, in chunks:
/// serialising into one buffer grew it by doubling to the size of the
/// state, each time onto fresh pages the kernel zeroes, and then copied
/// it whole behind the header.
struct BodyWriter<'file> {
    file: &'file mut dyn Rewritable,
    chunk: Vec<u8>,
    length: u64,
    checksum: u32,
    /// The first write error: postcard reports any as its own error, so
    /// this keeps the cause.
    failed: Option<io::Error>,
}

const BODY_CHUNK_BYTES: usize = 1 << 20;

impl<'file> BodyWriter<'file> {
    fn new(file: &'file mut dyn Rewritable) -> Self {
        BodyWriter {
            file,
            chunk: Vec::with_capacity(BODY_CHUNK_BYTES),
            length: 0,
            checksum: 0,
            failed: None,
        }
    }

    fn write_chunk(&mut self) -> io::Result<()> {
        self.checksum = crc32c::crc32c_append(self.checksum, &self.chunk);
        self.length += self.chunk.len() as u64;
        let written = self.file.write_all(&self.chunk);
        self.chunk.clear();
        written
    }

    /// The body's length and checksum once all of it is written.
    fn finish(mut self) -> io::Result<(u64, u32)> {
        self.write_chunk()?;
        Ok((self.length, self.checksum))
    }
}

impl Write for BodyWriter<'_> {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.chunk.extend_from_slice(bytes);
        if self.chunk.len() >= BODY_CHUNK_BYTES
            && let Err(error) = self.write_chunk()
        {
            self.failed = Some(error);
            return Err(io::Error::other("the snapshot file cannot be written"));
        }
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn file_name(position: Position) -> String {
    format!("snapshot-{position:020}.snap")
}

fn parse_position(name: &str) -> Option<Position> {
    name.strip_prefix("snapshot-")?
        .strip_suffix(".snap")?
        .parse()
        .ok()
}

impl<S: Storage> SnapshotStore<S> {
    pub fn new(storage: S, directory: PathBuf) -> Self {
        SnapshotStore { storage, directory }
    }

    pub fn directory(&self) -> &Path {
        &self.directory
    }

    /// Serialises `value` and stores it as the snapshot at `head`; returns
    /// the body's size in bytes. `kind` labels the log line and the metrics
    /// `ledger_snapshot_bytes`, `ledger_snapshot_position` and
    /// `ledger_snapshot_seconds`.
    pub fn save<T: Serialize>(
        &self,
        kind: SnapshotKind,
        head: Head,
        value: &T,
    ) -> Result<usize, SnapshotError> {
        let started = std::time::Instant::now();
        let mut encode_error = None;
        let mut body_length = 0;
        self.store(head.position, &mut |file| {
            file.write_all(&[0; HEADER_BYTES])?;
            let mut body = BodyWriter::new(file);
            if let Err(error) = write_body(kind, value, &mut body) {
                return Err(body.failed.take().unwrap_or_else(|| {
                    encode_error = Some(error);
                    io::Error::other("the state does not serialise")
                }));
            }
            let (length, checksum) = body.finish()?;
            body_length = length;
            file.seek(io::SeekFrom::Start(0))?;
            file.write_all(&header(FORMAT, head.position, &head.hash, length, checksum))
        })
        .map_err(|error| match encode_error.take() {
            Some(encode) => SnapshotError::Encode(encode),
            None => SnapshotError::Log(error),
        })?;
        let bytes = usize::try_from(body_length).unwrap_or(usize::MAX);
        let seconds = started.elapsed().as_secs_f64();
        let name = kind.name;
        metrics::gauge!("ledger_snapshot_bytes", "kind" => name).set(bytes as f64);
        metrics::gauge!("ledger_snapshot_position", "kind" => name).set(head.position as f64);
        metrics::histogram!("ledger_snapshot_seconds", "kind" => name).record(seconds);
        tracing::info!(
            kind = name,
            position = head.position,
            bytes,
            seconds,
            "wrote a snapshot"
        );
        Ok(bytes)
    }

    /// The newest snapshot that decodes, passes `check` (given its
    /// position) and whose position and head hash match `log`, with its
    /// position. Every other one is skipped with a warning saying why;
    /// `None` means replay from the beginning.
    pub async fn newest_usable<T: DeserializeOwned, L: EventLog>(
        &self,
        kind: SnapshotKind,
        log: &L,
        check: impl Fn(Position, &T) -> Result<(), String>,
    ) -> Result<Option<(Position, T)>, LogError> {
        let head = log.head();
        for (position, path) in self.candidates()? {
            let skip = |why: String| {
                tracing::warn!(path = %path.display(), reason = %why, "ignoring a snapshot");
            };
            if position == 0 || position > head.position {
                skip(format!(
                    "position {position} is not within the log (head {})",
                    head.position
                ));
                continue;
            }
            let snapshot = match self.read(&path) {
                Ok(snapshot) => snapshot,
                Err(why) => {
                    skip(why);
                    continue;
                }
            };
            let record = log.read(position - 1, 1).await?;
            if record.first().map(|record| record.hash) != Some(snapshot.head_hash)
                || snapshot.position != position
            {
                skip("its head hash does not match the log at its position".to_owned());
                continue;
            }
            match decode_body::<T>(kind, &snapshot.body) {
                Ok(value) => match check(position, &value) {
                    Ok(()) => return Ok(Some((position, value))),
                    Err(why) => skip(why),
                },
                Err(why) => skip(why.to_string()),
            }
        }
        Ok(None)
    }

    pub fn write(&self, snapshot: &Snapshot) -> Result<(), LogError> {
        let header = header_of(FORMAT, snapshot);
        self.store(snapshot.position, &mut |file| {
            file.write_all(&header)?;
            file.write_all(&snapshot.body)
        })
    }

    /// Stores what `fill` writes as the snapshot file of `position`, then
    /// removes the superseded ones.
    fn store(
        &self,
        position: Position,
        fill: &mut dyn FnMut(&mut dyn Rewritable) -> io::Result<()>,
    ) -> Result<(), LogError> {
        self.storage
            .create_dir_all(&self.directory)
            .map_err(|error| LogError::io("create directory", &self.directory, error))?;
        let path = self.directory.join(file_name(position));
        self.storage
            .replace_with(&path, fill)
            .map_err(|error| LogError::io("write snapshot", &path, error))?;
        let superseded = self
            .candidates()?
            .into_iter()
            .skip(KEPT)
            .map(|(_, old)| old);
        for old in superseded.chain(self.leftovers()) {
            if let Err(error) = self.storage.remove(&old) {
                tracing::warn!(path = %old.display(), %error, "could not remove an old snapshot");
            }
        }
        Ok(())
    }

    /// Snapshot files, newest first.
    pub fn candidates(&self) -> Result<Vec<(Position, PathBuf)>, LogError> {
        if !self.storage.exists(&self.directory) {
            return Ok(Vec::new());
        }
        let names = self
            .storage
            .list(&self.directory)
            .map_err(|error| LogError::io("list", &self.directory, error))?;
        let mut found: Vec<(Position, PathBuf)> = names
            .iter()
            .filter_map(|name| Some((parse_position(name)?, self.directory.join(name))))
            .collect();
        found.sort_by_key(|(position, _)| std::cmp::Reverse(*position));
        Ok(found)
    }

    /// Files set aside by writes that never finished (the process stopped
    /// between writing and renaming): as large as a snapshot, and nothing
    /// else would ever remove them. Only one snapshot of a directory is
    /// written at a time, so after a write none is in progress.
    fn leftovers(&self) -> Vec<PathBuf> {
        let Ok(names) = self.storage.list(&self.directory) else {
            return Vec::new();
        };
        names
            .iter()
            .filter(|name| name.starts_with("snapshot-") && name.ends_with(".tmp"))
            .map(|name| self.directory.join(name))
            .collect()
    }

    /// Reads and checks one snapshot file; `Err` explains why it is unusable.
    pub fn read(&self, path: &Path) -> Result<Snapshot, String> {
        let file = self
            .storage
            .open(path, OpenMode::Read)
            .map_err(|error| error.to_string())?;
        let length = file.length().map_err(|error| error.to_string())?;
        let length = usize::try_from(length).map_err(|error| error.to_string())?;
        let mut bytes = vec![0u8; length];
        let read = file
            .read_at(&mut bytes, 0)
            .map_err(|error| error.to_string())?;
        bytes.truncate(read);
        let header = bytes.get(..HEADER_BYTES).ok_or("shorter than its header")?;
        let word = |at: usize, width: usize| -> u64 {
            let mut buffer = [0u8; 8];
            buffer[..width].copy_from_slice(&header[at..at + width]);
            u64::from_le_bytes(buffer)
        };
        if &header[..8] != MAGIC {
            return Err("not a snapshot (bad magic)".to_owned());
        }
        if word(HEADER_BYTES - 4, 4) as u32 != crc32c::crc32c(&header[..HEADER_BYTES - 4]) {
            return Err("header checksum mismatch".to_owned());
        }
        if word(8, 4) as u32 != FORMAT {
            return Err(format!("unsupported snapshot format {}", word(8, 4)));
        }
        let body = &bytes[HEADER_BYTES..];
        if body.len() as u64 != word(52, 8) {
            return Err(format!(
                "body is {} bytes, header says {}",
                body.len(),
                word(52, 8)
            ));
        }
        if crc32c::crc32c(body) != word(60, 4) as u32 {
            return Err("body checksum mismatch".to_owned());
        }
        let mut head_hash = [0u8; 32];
        head_hash.copy_from_slice(&header[20..52]);
        Ok(Snapshot {
            position: word(12, 8),
            head_hash,
            body: body.to_vec(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::simulated::SimulatedStorage;

    #[test]
    fn snapshots_round_trip_newest_first_and_damage_is_explained() {
        let storage = SimulatedStorage::new();
        let store = SnapshotStore::new(storage.clone(), PathBuf::from("/data/snapshots"));
        assert!(store.candidates().expect("lists").is_empty());
        for position in [10u64, 30, 20] {
            store
                .write(&Snapshot {
                    position,
                    head_hash: [position as u8; 32],
                    body: format!("state at {position}").into_bytes(),
                })
                .expect("writes");
        }
        let candidates = store.candidates().expect("lists");
        let positions: Vec<_> = candidates.iter().map(|(position, _)| *position).collect();
        assert_eq!(positions, vec![30, 20], "only the two newest are kept");
        let newest = store.read(&candidates[0].1).expect("reads");
        assert_eq!(newest.body, b"state at 30");
        assert_eq!(newest.head_hash, [30; 32]);
        storage
            .tamper(&candidates[0].1, |bytes| {
                let last = bytes.len() - 1;
                bytes[last] ^= 1;
            })
            .expect("tampers");
        assert_eq!(
            store.read(&candidates[0].1),
            Err("body checksum mismatch".to_owned())
        );
    }

    /// A saved snapshot is streamed in chunks, its header written last:
    /// the file must be exactly what the whole body written at once makes,
    /// for a body of several chunks and a partial last one, on the real
    /// file system and on the simulated disk.
    #[test]
    fn a_streamed_snapshot_is_the_body_written_at_once() {
        const KIND: SnapshotKind = SnapshotKind {
            name: "test",
            layout: 7,
        };
        let value: Vec<u64> = (0..400_000u64)
            .map(|n| n.wrapping_mul(0x9e37_79b9))
            .collect();
        let body = encode_body(KIND, &value).expect("encodes");
        assert!(body.len() > 2 * BODY_CHUNK_BYTES && !body.len().is_multiple_of(BODY_CHUNK_BYTES));
        let head = Head {
            position: 42,
            hash: [7; 32],
        };
        let expected = file_bytes(
            FORMAT,
            &Snapshot {
                position: head.position,
                head_hash: head.hash,
                body: body.clone(),
            },
        );

        let directory = tempfile::tempdir().expect("temporary directory");
        let on_disk = SnapshotStore::new(
            crate::store::storage::OsStorage,
            directory.path().join("snapshots"),
        );
        let simulated = SnapshotStore::new(SimulatedStorage::new(), PathBuf::from("/snapshots"));
        for path in [
            save_and_find(&on_disk, KIND, head, &value, body.len()),
            save_and_find(&simulated, KIND, head, &value, body.len()),
        ] {
            let read = if path.starts_with("/snapshots") {
                simulated.read(&path)
            } else {
                assert_eq!(std::fs::read(&path).expect("reads"), expected);
                on_disk.read(&path)
            };
            assert_eq!(read.expect("reads").body, body);
        }
    }

    fn save_and_find<S: Storage>(
        store: &SnapshotStore<S>,
        kind: SnapshotKind,
        head: Head,
        value: &Vec<u64>,
        body_length: usize,
    ) -> PathBuf {
        assert_eq!(store.save(kind, head, value).expect("saves"), body_length);
        let candidates = store.candidates().expect("lists");
        assert_eq!(candidates.len(), 1);
        candidates[0].1.clone()
    }

    #[test]
    fn a_snapshot_of_the_json_format_is_unsupported_not_misread() {
        let storage = SimulatedStorage::new();
        let directory = PathBuf::from("/data/snapshots");
        let store = SnapshotStore::new(storage.clone(), directory.clone());
        let older_build = Snapshot {
            position: 5,
            head_hash: [2; 32],
            body: br#"{"state":{}}"#.to_vec(),
        };
        let path = directory.join(file_name(5));
        storage.create_dir_all(&directory).expect("creates");
        storage
            .replace(&path, &file_bytes(1, &older_build))
            .expect("writes");
        assert_eq!(
            store.read(&path),
            Err("unsupported snapshot format 1".to_owned())
        );
    }

    #[test]
    fn a_write_removes_what_unfinished_writes_left_behind() {
        let storage = SimulatedStorage::new();
        let directory = PathBuf::from("/data/snapshots");
        let store = SnapshotStore::new(storage.clone(), directory.clone());
        let snapshot = |position: u64| Snapshot {
            position,
            head_hash: [1; 32],
            body: vec![7; 16],
        };
        store.write(&snapshot(10)).expect("writes");
        let leftover = directory.join("snapshot-00000000000000000015.tmp");
        let unrelated = directory.join("notes.tmp");
        storage
            .replace(&leftover, b"half a snapshot")
            .expect("writes");
        storage.replace(&unrelated, b"not ours").expect("writes");
        store.write(&snapshot(20)).expect("writes");
        let mut names = storage.list(&directory).expect("lists");
        names.sort();
        assert_eq!(
            names,
            vec![
                "notes.tmp".to_owned(),
                "snapshot-00000000000000000010.snap".to_owned(),
                "snapshot-00000000000000000020.snap".to_owned(),
            ]
        );
    }
}
