//! The storage port: the few file operations the log needs, behind a trait
//! so the same log code runs on the real file system and on a simulated
//! disk that loses unsynced writes and injects errors. This module and its
//! implementations are the only code that touches files or calls fsync.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Seek, Write};
use std::path::{Path, PathBuf};

/// How to open a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpenMode {
    Read,
    ReadWrite,
    /// Create; fail if it exists.
    CreateNew,
}

pub trait Storage: Send + Sync + 'static {
    type File: StorageFile;
    /// Held for as long as the directory is open for writing.
    type Lock: Send + Sync + 'static;

    fn create_dir_all(&self, directory: &Path) -> io::Result<()>;
    fn exists(&self, path: &Path) -> bool;
    /// File names (not paths) in a directory.
    fn list(&self, directory: &Path) -> io::Result<Vec<String>>;
    fn open(&self, path: &Path, mode: OpenMode) -> io::Result<Self::File>;
    fn remove(&self, path: &Path) -> io::Result<()>;
    /// Replaces `path` with what `fill` writes, atomically (written aside,
    /// then renamed). Not synced: only for files that can be rebuilt.
    /// `fill` streams, so a file as large as the state needs no buffer as
    /// large; it may seek back over what it wrote (a header written last).
    fn replace_with(
        &self,
        path: &Path,
        fill: &mut dyn FnMut(&mut dyn Rewritable) -> io::Result<()>,
    ) -> io::Result<()>;
    /// Replaces `path` with `bytes`, as [`Storage::replace_with`].
    fn replace(&self, path: &Path, bytes: &[u8]) -> io::Result<()> {
        self.replace_with(path, &mut |file| file.write_all(bytes))
    }
    /// Makes the directory's entries (created, removed files) durable.
    fn sync_directory(&self, directory: &Path) -> io::Result<()>;
    /// An exclusive lock, failing at once with `WouldBlock` if another
    /// process (or handle) holds it.
    fn lock_exclusive(&self, path: &Path) -> io::Result<Self::Lock>;
}

/// A file being written front to back by [`Storage::replace_with`].
pub trait Rewritable: Write + Seek {}

impl<File: Write + Seek> Rewritable for File {}

pub trait StorageFile: Send + Sync + 'static {
    fn length(&self) -> io::Result<u64>;
    /// Reads up to `buffer.len()` bytes at `offset`; fewer only at the end.
    fn read_at(&self, buffer: &mut [u8], offset: u64) -> io::Result<usize>;
    fn write_all_at(&self, bytes: &[u8], offset: u64) -> io::Result<()>;
    /// fdatasync: the file's data is durable when this returns Ok.
    fn sync_data(&self) -> io::Result<()>;
    fn truncate(&self, length: u64) -> io::Result<()>;
}

/// Writes of a replaced file are gathered up to this size (larger ones go
/// straight through).
const REPLACE_BUFFER_BYTES: usize = 64 << 10;

/// The real file system.
#[derive(Debug, Clone, Copy, Default)]
pub struct OsStorage;

#[derive(Debug)]
pub struct OsFile(File);

#[derive(Debug)]
pub struct OsLock {
    // Dropping the handle releases the lock.
    _file: File,
}

impl Storage for OsStorage {
    type File = OsFile;
    type Lock = OsLock;

    fn create_dir_all(&self, directory: &Path) -> io::Result<()> {
        fs::create_dir_all(directory)
    }

    fn exists(&self, path: &Path) -> bool {
        path.exists()
    }

    fn list(&self, directory: &Path) -> io::Result<Vec<String>> {
        let mut names = Vec::new();
        for entry in fs::read_dir(directory)? {
            names.push(entry?.file_name().to_string_lossy().into_owned());
        }
        Ok(names)
    }

    fn open(&self, path: &Path, mode: OpenMode) -> io::Result<OsFile> {
        let mut options = OpenOptions::new();
        match mode {
            OpenMode::Read => options.read(true),
            OpenMode::ReadWrite => options.read(true).write(true),
            OpenMode::CreateNew => options.read(true).write(true).create_new(true),
        };
        options.open(path).map(OsFile)
    }

    fn remove(&self, path: &Path) -> io::Result<()> {
        fs::remove_file(path)
    }

    fn replace_with(
        &self,
        path: &Path,
        fill: &mut dyn FnMut(&mut dyn Rewritable) -> io::Result<()>,
    ) -> io::Result<()> {
        let mut aside = PathBuf::from(path);
        aside.set_extension("tmp");
        let mut file = io::BufWriter::with_capacity(REPLACE_BUFFER_BYTES, File::create(&aside)?);
        fill(&mut file)?;
        file.flush()?;
        drop(file);
        fs::rename(&aside, path)
    }

    fn sync_directory(&self, directory: &Path) -> io::Result<()> {
        File::open(directory)?.sync_all()
    }

    fn lock_exclusive(&self, path: &Path) -> io::Result<OsLock> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)?;
        match file.try_lock() {
            Ok(()) => Ok(OsLock { _file: file }),
            Err(fs::TryLockError::WouldBlock) => Err(io::Error::new(
                io::ErrorKind::WouldBlock,
                "held by another process",
            )),
            Err(fs::TryLockError::Error(error)) => Err(error),
        }
    }
}

#[cfg(unix)]
impl StorageFile for OsFile {
    fn length(&self) -> io::Result<u64> {
        Ok(self.0.metadata()?.len())
    }

    fn read_at(&self, buffer: &mut [u8], offset: u64) -> io::Result<usize> {
        use std::os::unix::fs::FileExt;
        let mut filled = 0;
        while filled < buffer.len() {
            match self
                .0
                .read_at(&mut buffer[filled..], offset + filled as u64)
            {
                Ok(0) => break,
                Ok(read) => filled += read,
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                Err(error) => return Err(error),
            }
        }
        Ok(filled)
    }

    fn write_all_at(&self, bytes: &[u8], offset: u64) -> io::Result<()> {
        use std::os::unix::fs::FileExt;
        self.0.write_all_at(bytes, offset)
    }

    fn sync_data(&self) -> io::Result<()> {
        self.0.sync_data()
    }

    fn truncate(&self, length: u64) -> io::Result<()> {
        self.0.set_len(length)
    }
}
