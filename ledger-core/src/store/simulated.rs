//! A simulated disk for tests: it keeps what was synced apart from what was
//! only written, and on a simulated power loss keeps the synced bytes plus a
//! random prefix of the unsynced writes, the last of them possibly torn.
//! Files whose creation was never made durable by a directory sync may
//! vanish. It can also fail the next write or sync, or report a full disk.
//!
//! Model: writes reach the medium in the order they were issued (a
//! prefix), any one of them may tear at an arbitrary byte, and a sync makes
//! everything before it durable. That is what the log's recovery is
//! designed against (see ARCHITECTURE.md, durability contract).

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use super::storage::{OpenMode, Rewritable, Storage, StorageFile};

#[derive(Debug, Clone, Default)]
struct SimulatedFile {
    /// What survives a power loss.
    durable: Vec<u8>,
    /// What a reader sees now.
    current: Vec<u8>,
    /// Writes since the last sync, in order: (offset, bytes); a truncation
    /// is a write of `None` at the new length.
    pending: Vec<(u64, Option<Vec<u8>>)>,
    /// The directory entry is durable (created before a directory sync).
    entry_durable: bool,
}

/// Failures to inject, each consumed when it fires.
#[derive(Debug, Clone, Copy, Default)]
pub struct Faults {
    /// Fail the n-th write from now (1 = the next one).
    pub fail_write_in: Option<u32>,
    /// Fail the n-th data sync from now.
    pub fail_sync_in: Option<u32>,
    /// Report a full disk on every write until cleared.
    pub disk_full: bool,
    /// Cut the power at the n-th data sync from now: that sync fails, and
    /// so does every operation after it until [`SimulatedStorage::crash`].
    pub lose_power_at_sync_in: Option<u32>,
}

#[derive(Debug, Default)]
struct Disk {
    files: BTreeMap<PathBuf, SimulatedFile>,
    directories: BTreeSet<PathBuf>,
    locks: BTreeSet<PathBuf>,
    faults: Faults,
    powered_off: bool,
    writes: u64,
    syncs: u64,
}

fn power_is_off() -> io::Error {
    io::Error::other("simulated power loss")
}

/// A handle to one shared simulated disk; clones see the same disk.
#[derive(Debug, Clone, Default)]
pub struct SimulatedStorage {
    disk: Arc<Mutex<Disk>>,
}

#[derive(Debug)]
pub struct SimulatedFileHandle {
    disk: Arc<Mutex<Disk>>,
    path: PathBuf,
}

#[derive(Debug)]
pub struct SimulatedLock {
    disk: Arc<Mutex<Disk>>,
    path: PathBuf,
}

impl Drop for SimulatedLock {
    fn drop(&mut self) {
        lock_disk(&self.disk).locks.remove(&self.path);
    }
}

fn lock_disk(disk: &Mutex<Disk>) -> MutexGuard<'_, Disk> {
    // A panicking test thread must not hide the disk from the others.
    disk.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn not_found(path: &Path) -> io::Error {
    io::Error::new(
        io::ErrorKind::NotFound,
        format!("{} does not exist", path.display()),
    )
}

impl SimulatedStorage {
    pub fn new() -> SimulatedStorage {
        SimulatedStorage::default()
    }

    pub fn set_faults(&self, faults: Faults) {
        lock_disk(&self.disk).faults = faults;
    }

    /// (writes, data syncs) issued so far.
    pub fn counters(&self) -> (u64, u64) {
        let disk = lock_disk(&self.disk);
        (disk.writes, disk.syncs)
    }

    /// Power loss: every file keeps its durable bytes plus a random prefix
    /// of its unsynced writes; the first write not kept whole may still land
    /// torn — a prefix of its bytes, or a random subset of its 512-byte
    /// sectors. Files whose creation no directory sync covered may vanish.
    /// Open handles and locks are gone with the process. `random(n)` must
    /// return a number in `0..n`.
    pub fn crash(&self, random: &mut dyn FnMut(u64) -> u64) {
        const SECTOR: usize = 512;
        let mut disk = lock_disk(&self.disk);
        disk.locks.clear();
        disk.faults = Faults::default();
        disk.powered_off = false;
        let mut surviving = BTreeMap::new();
        for (path, file) in std::mem::take(&mut disk.files) {
            if !file.entry_durable && random(2) == 0 {
                continue;
            }
            let mut bytes = file.durable.clone();
            let kept = random(file.pending.len() as u64 + 1) as usize;
            for (index, (offset, write)) in file.pending.iter().enumerate().take(kept + 1) {
                let offset = *offset as usize;
                let Some(data) = write else {
                    bytes.truncate(offset);
                    continue;
                };
                let torn = index == kept;
                let by_sectors = torn && random(2) == 0;
                let prefix = if torn && !by_sectors {
                    random(data.len() as u64 + 1) as usize
                } else {
                    data.len()
                };
                for (sector, chunk) in data[..prefix].chunks(SECTOR).enumerate() {
                    if by_sectors && random(2) == 0 {
                        continue;
                    }
                    let at = offset + sector * SECTOR;
                    if bytes.len() < at + chunk.len() {
                        bytes.resize(at + chunk.len(), 0);
                    }
                    bytes[at..at + chunk.len()].copy_from_slice(chunk);
                }
            }
            surviving.insert(
                path,
                SimulatedFile {
                    durable: bytes.clone(),
                    current: bytes,
                    pending: Vec::new(),
                    entry_durable: true,
                },
            );
        }
        disk.files = surviving;
    }

    /// Runs `change` on a file's bytes as if the medium were edited behind
    /// the log's back (bit rot, an attacker, an operator).
    pub fn tamper(&self, path: &Path, change: impl FnOnce(&mut Vec<u8>)) -> io::Result<()> {
        let mut disk = lock_disk(&self.disk);
        let file = disk.files.get_mut(path).ok_or_else(|| not_found(path))?;
        change(&mut file.current);
        file.durable = file.current.clone();
        file.pending.clear();
        Ok(())
    }

    pub fn read_whole(&self, path: &Path) -> io::Result<Vec<u8>> {
        let disk = lock_disk(&self.disk);
        disk.files
            .get(path)
            .map(|file| file.current.clone())
            .ok_or_else(|| not_found(path))
    }

    pub fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let mut disk = lock_disk(&self.disk);
        let file = disk.files.remove(from).ok_or_else(|| not_found(from))?;
        disk.files.insert(to.to_path_buf(), file);
        Ok(())
    }
}

impl Storage for SimulatedStorage {
    type File = SimulatedFileHandle;
    type Lock = SimulatedLock;

    fn create_dir_all(&self, directory: &Path) -> io::Result<()> {
        lock_disk(&self.disk)
            .directories
            .insert(directory.to_path_buf());
        Ok(())
    }

    fn exists(&self, path: &Path) -> bool {
        let disk = lock_disk(&self.disk);
        disk.files.contains_key(path) || disk.directories.contains(path)
    }

    fn list(&self, directory: &Path) -> io::Result<Vec<String>> {
        let disk = lock_disk(&self.disk);
        if !disk.directories.contains(directory) {
            return Err(not_found(directory));
        }
        Ok(disk
            .files
            .keys()
            .filter(|path| path.parent() == Some(directory))
            .filter_map(|path| {
                path.file_name()
                    .map(|name| name.to_string_lossy().into_owned())
            })
            .collect())
    }

    fn open(&self, path: &Path, mode: OpenMode) -> io::Result<SimulatedFileHandle> {
        let mut disk = lock_disk(&self.disk);
        if disk.powered_off {
            return Err(power_is_off());
        }
        let exists = disk.files.contains_key(path);
        match mode {
            OpenMode::CreateNew if exists => {
                return Err(io::Error::new(io::ErrorKind::AlreadyExists, "exists"));
            }
            OpenMode::CreateNew => {
                disk.files
                    .insert(path.to_path_buf(), SimulatedFile::default());
            }
            _ if !exists => return Err(not_found(path)),
            _ => {}
        }
        Ok(SimulatedFileHandle {
            disk: Arc::clone(&self.disk),
            path: path.to_path_buf(),
        })
    }

    fn remove(&self, path: &Path) -> io::Result<()> {
        lock_disk(&self.disk)
            .files
            .remove(path)
            .map(|_| ())
            .ok_or_else(|| not_found(path))
    }

    fn replace_with(
        &self,
        path: &Path,
        fill: &mut dyn FnMut(&mut dyn Rewritable) -> io::Result<()>,
    ) -> io::Result<()> {
        let mut written = io::Cursor::new(Vec::new());
        fill(&mut written)?;
        let bytes = written.into_inner();
        let mut disk = lock_disk(&self.disk);
        if disk.powered_off {
            return Err(power_is_off());
        }
        let file = disk.files.entry(path.to_path_buf()).or_default();
        file.current = bytes.clone();
        file.pending.push((0, None));
        file.pending.push((0, Some(bytes)));
        Ok(())
    }

    fn sync_directory(&self, directory: &Path) -> io::Result<()> {
        let mut disk = lock_disk(&self.disk);
        if disk.powered_off {
            return Err(power_is_off());
        }
        for (path, file) in disk.files.iter_mut() {
            if path.parent() == Some(directory) {
                file.entry_durable = true;
            }
        }
        Ok(())
    }

    fn lock_exclusive(&self, path: &Path) -> io::Result<SimulatedLock> {
        let mut disk = lock_disk(&self.disk);
        if !disk.locks.insert(path.to_path_buf()) {
            return Err(io::Error::new(
                io::ErrorKind::WouldBlock,
                "held by another process",
            ));
        }
        Ok(SimulatedLock {
            disk: Arc::clone(&self.disk),
            path: path.to_path_buf(),
        })
    }
}

fn fires(countdown: &mut Option<u32>) -> bool {
    match countdown {
        Some(1) => {
            *countdown = None;
            true
        }
        Some(remaining) => {
            *remaining -= 1;
            false
        }
        None => false,
    }
}

impl StorageFile for SimulatedFileHandle {
    fn length(&self) -> io::Result<u64> {
        let disk = lock_disk(&self.disk);
        let file = disk
            .files
            .get(&self.path)
            .ok_or_else(|| not_found(&self.path))?;
        Ok(file.current.len() as u64)
    }

    fn read_at(&self, buffer: &mut [u8], offset: u64) -> io::Result<usize> {
        let disk = lock_disk(&self.disk);
        if disk.powered_off {
            return Err(power_is_off());
        }
        let file = disk
            .files
            .get(&self.path)
            .ok_or_else(|| not_found(&self.path))?;
        let start = (offset as usize).min(file.current.len());
        let end = (start + buffer.len()).min(file.current.len());
        buffer[..end - start].copy_from_slice(&file.current[start..end]);
        Ok(end - start)
    }

    fn write_all_at(&self, bytes: &[u8], offset: u64) -> io::Result<()> {
        let mut disk = lock_disk(&self.disk);
        if disk.powered_off {
            return Err(power_is_off());
        }
        disk.writes += 1;
        if disk.faults.disk_full {
            return Err(io::Error::new(
                io::ErrorKind::StorageFull,
                "simulated full disk",
            ));
        }
        let injected = fires(&mut disk.faults.fail_write_in);
        let file = disk
            .files
            .get_mut(&self.path)
            .ok_or_else(|| not_found(&self.path))?;
        // A failing write may still have landed in part.
        let landed = if injected {
            bytes.len() / 2
        } else {
            bytes.len()
        };
        let offset_index = offset as usize;
        if file.current.len() < offset_index + landed {
            file.current.resize(offset_index + landed, 0);
        }
        file.current[offset_index..offset_index + landed].copy_from_slice(&bytes[..landed]);
        file.pending.push((offset, Some(bytes[..landed].to_vec())));
        if injected {
            return Err(io::Error::other("simulated write failure"));
        }
        Ok(())
    }

    fn sync_data(&self) -> io::Result<()> {
        let mut disk = lock_disk(&self.disk);
        if disk.powered_off {
            return Err(power_is_off());
        }
        disk.syncs += 1;
        if fires(&mut disk.faults.lose_power_at_sync_in) {
            disk.powered_off = true;
            return Err(power_is_off());
        }
        if fires(&mut disk.faults.fail_sync_in) {
            return Err(io::Error::other("simulated fsync failure"));
        }
        let file = disk
            .files
            .get_mut(&self.path)
            .ok_or_else(|| not_found(&self.path))?;
        file.durable = file.current.clone();
        file.pending.clear();
        Ok(())
    }

    fn truncate(&self, length: u64) -> io::Result<()> {
        let mut disk = lock_disk(&self.disk);
        if disk.powered_off {
            return Err(power_is_off());
        }
        let file = disk
            .files
            .get_mut(&self.path)
            .ok_or_else(|| not_found(&self.path))?;
        file.current.truncate(length as usize);
        file.pending.push((length, None));
        Ok(())
    }
}
