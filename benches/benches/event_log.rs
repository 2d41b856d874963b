//! The embedded file log against the disk's own limit, in one run:
//!
//! * `raw_write_fdatasync/N`: N records' worth of bytes, one `pwrite` and
//!   one `fdatasync` per batch, appended to a plain file through the store's
//!   own OS file type (same system calls, no log logic) — the physical
//!   limit for durable appends on this disk;
//! * `file_log/append/N`: the same batches through `FileLog::append`
//!   (framing, CRC32C, SHA-256 chain, segment rotation, fdatasync);
//! * `file_log/read_verify`: a full scan of 1,000,000 records, every
//!   checksum and every chain link verified.
//!
//! Records are 300-byte payloads, about the size of an event envelope.
//!
//! cargo bench -p benches --bench event_log

use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use ledger_core::store::storage::{OpenMode, OsStorage, Storage, StorageFile};
use ledger_core::store::{EventLog, FileLog, FileLogOptions, LogMode};
use uuid::Uuid;

const PAYLOAD_BYTES: usize = 300;
const FRAMED_BYTES: usize = PAYLOAD_BYTES + ledger_core::store::format::RECORD_HEADER_BYTES;
const SCANNED_RECORDS: u64 = 1_000_000;

fn payload(index: u64) -> Vec<u8> {
    let mut bytes =
        format!("{{\"position\":{index},\"type\":\"points_issued\",\"data\":{{").into_bytes();
    bytes.resize(PAYLOAD_BYTES - 2, b'x');
    bytes.extend_from_slice(b"}}");
    bytes
}

fn open(directory: &std::path::Path) -> FileLog {
    let options = FileLogOptions::default();
    let mode = LogMode::ReadWrite {
        ledger_id_if_new: Uuid::from_u128(1),
    };
    FileLog::open_with(OsStorage, directory.to_path_buf(), mode, options)
        .unwrap_or_else(|error| panic!("cannot open the bench log: {error}"))
}

fn appends(criterion: &mut Criterion) {
    let mut group = criterion.benchmark_group("append");
    group.sample_size(10);
    group.warm_up_time(Duration::from_secs(1));
    group.measurement_time(Duration::from_secs(4));
    for batch in [1u64, 64, 1024, 8192] {
        group.throughput(Throughput::Bytes(batch * FRAMED_BYTES as u64));
        let scratch = tempfile::tempdir().unwrap_or_else(|error| panic!("{error}"));

        let raw_path = scratch.path().join("raw.bin");
        let raw = OsStorage
            .open(&raw_path, OpenMode::CreateNew)
            .unwrap_or_else(|error| panic!("{error}"));
        let block = vec![0xA5u8; batch as usize * FRAMED_BYTES];
        let mut raw_offset = 0u64;
        group.bench_function(BenchmarkId::new("raw_write_fdatasync", batch), |bencher| {
            bencher.iter(|| {
                raw.write_all_at(&block, raw_offset)
                    .unwrap_or_else(|error| panic!("{error}"));
                raw.sync_data().unwrap_or_else(|error| panic!("{error}"));
                raw_offset += block.len() as u64;
            });
        });
        drop(raw);
        let _ = std::fs::remove_file(&raw_path);

        let log = open(&scratch.path().join("log"));
        let payloads: Vec<Vec<u8>> = (0..batch).map(payload).collect();
        group.bench_function(BenchmarkId::new("file_log", batch), |bencher| {
            bencher.iter(|| {
                let head = log.head();
                log.append_blocking(head.position, &payloads)
                    .unwrap_or_else(|error| panic!("{error}"));
            });
        });
    }
    group.finish();
}

fn read_verify(criterion: &mut Criterion) {
    let scratch = tempfile::tempdir().unwrap_or_else(|error| panic!("{error}"));
    let log = open(scratch.path());
    let mut written = 0;
    while written < SCANNED_RECORDS {
        let batch: Vec<Vec<u8>> = (written..written + 8192).map(payload).collect();
        log.append_blocking(written, &batch)
            .unwrap_or_else(|error| panic!("{error}"));
        written += 8192;
    }
    drop(log);
    let reader = FileLog::open_with(
        OsStorage,
        scratch.path().to_path_buf(),
        LogMode::ReadOnly,
        FileLogOptions::default(),
    )
    .unwrap_or_else(|error| panic!("{error}"));
    let mut group = criterion.benchmark_group("read_verify");
    group.sample_size(10);
    group.throughput(Throughput::Elements(written));
    group.bench_function("full_scan", |bencher| {
        bencher.iter(|| {
            let mut after = 0;
            loop {
                let records = reader
                    .read_blocking(after, 65_536)
                    .unwrap_or_else(|error| panic!("{error}"));
                let Some(last) = records.last() else { break };
                after = last.position;
            }
            assert_eq!(after, written);
        });
    });
    group.finish();
}

criterion_group!(benches, appends, read_verify);
criterion_main!(benches);
