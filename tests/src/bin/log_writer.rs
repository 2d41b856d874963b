//! Crash-test helper: opens the file log in the given directory and appends
//! batches until killed, printing `ack POSITION HASH` after each append
//! returned, i.e. after the batch was acknowledged as durable.
//!
//! log-writer DIRECTORY SEED

use std::io::Write;

use ledger_core::store::storage::OsStorage;
use ledger_core::store::{FileLog, FileLogOptions, LogMode};
use uuid::Uuid;

fn main() {
    let mut arguments = std::env::args().skip(1);
    let (Some(directory), Some(seed)) = (arguments.next(), arguments.next()) else {
        eprintln!("usage: log-writer DIRECTORY SEED");
        std::process::exit(2);
    };
    let seed: u64 = seed.parse().unwrap_or(1);
    let options = FileLogOptions {
        // Small segments, so kills also land around rotations.
        segment_bytes_max: 64 << 10,
        ..FileLogOptions::default()
    };
    let mode = LogMode::ReadWrite {
        ledger_id_if_new: Uuid::from_u128(0x5eed),
    };
    let log = match FileLog::open_with(OsStorage, directory.into(), mode, options) {
        Ok(log) => log,
        Err(error) => {
            eprintln!("log-writer: {error}");
            std::process::exit(1);
        }
    };
    let mut state = seed;
    let mut stdout = std::io::stdout().lock();
    loop {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let batch = 1 + (state >> 33) % 40;
        let head = ledger_core::store::EventLog::head(&log);
        let payloads: Vec<Vec<u8>> = (1..=batch)
            .map(|offset| {
                format!(
                    "{{\"event\":{},\"pad\":\"{}\"}}",
                    head.position + offset,
                    "x".repeat(((state >> 20) % 300) as usize)
                )
                .into_bytes()
            })
            .collect();
        match log.append_blocking(head.position, &payloads) {
            Ok(new_head) => {
                let line = format!("ack {} {}\n", new_head.position, hex::encode(new_head.hash));
                if stdout
                    .write_all(line.as_bytes())
                    .and_then(|()| stdout.flush())
                    .is_err()
                {
                    std::process::exit(0);
                }
            }
            Err(error) => {
                eprintln!("log-writer: {error}");
                std::process::exit(1);
            }
        }
    }
}
