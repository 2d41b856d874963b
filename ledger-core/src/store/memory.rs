//! An in-memory log behind the same port, for tests of code above the log.
//! Same chain, same positions, same conflicts; no durability.

use std::sync::Mutex;

use tokio::sync::watch;
use uuid::Uuid;

use super::format::{RECORD_PAYLOAD_BYTES_MAX, chain_hash, genesis_hash};
use super::{EventLog, Head, LogError, PayloadBatch, Position, Record};

#[derive(Debug)]
pub struct MemoryLog {
    ledger_id: Uuid,
    genesis: Head,
    records: Mutex<Vec<Record>>,
    head_sender: watch::Sender<Head>,
}

impl MemoryLog {
    pub fn new(ledger_id: Uuid) -> MemoryLog {
        let genesis = Head {
            position: 0,
            hash: genesis_hash(ledger_id),
        };
        MemoryLog {
            ledger_id,
            genesis,
            records: Mutex::new(Vec::new()),
            head_sender: watch::Sender::new(genesis),
        }
    }

    fn records(&self) -> std::sync::MutexGuard<'_, Vec<Record>> {
        self.records
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub fn append_now(&self, expected: Position, payloads: Vec<Vec<u8>>) -> Result<Head, LogError> {
        let mut records = self.records();
        let mut head = records.last().map_or(self.genesis, |last| Head {
            position: last.position,
            hash: last.hash,
        });
        if head.position != expected {
            return Err(LogError::Conflict {
                expected,
                actual: head.position,
            });
        }
        if let Some(bad) = payloads
            .iter()
            .find(|payload| payload.is_empty() || payload.len() > RECORD_PAYLOAD_BYTES_MAX)
        {
            return Err(LogError::BadRecordLength { length: bad.len() });
        }
        for payload in payloads {
            let hash = chain_hash(&head.hash, &payload);
            records.push(Record {
                position: head.position + 1,
                previous_hash: head.hash,
                hash,
                payload,
            });
            head = Head {
                position: head.position + 1,
                hash,
            };
        }
        self.head_sender.send_replace(head);
        Ok(head)
    }

    pub fn read_now(&self, after: Position, limit: usize) -> Vec<Record> {
        let records = self.records();
        let start = usize::try_from(after)
            .unwrap_or(usize::MAX)
            .min(records.len());
        records[start..].iter().take(limit).cloned().collect()
    }
}

impl EventLog for MemoryLog {
    fn ledger_id(&self) -> Uuid {
        self.ledger_id
    }

    fn head(&self) -> Head {
        *self.head_sender.borrow()
    }

    async fn append(&self, expected: Position, payloads: &PayloadBatch) -> Result<Head, LogError> {
        self.append_now(expected, payloads.iter().map(<[u8]>::to_vec).collect())
    }

    async fn read(&self, after: Position, limit: usize) -> Result<Vec<Record>, LogError> {
        Ok(self.read_now(after, limit))
    }

    fn subscribe(&self) -> watch::Receiver<Head> {
        self.head_sender.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::format::chain_hash;

    #[test]
    fn the_memory_log_chains_conflicts_and_reads_like_the_file_log() {
        let log = MemoryLog::new(Uuid::from_u128(3));
        let genesis = log.head();
        assert_eq!(genesis.hash, genesis_hash(Uuid::from_u128(3)));
        let head = log
            .append_now(0, vec![b"a".to_vec(), b"b".to_vec()])
            .expect("appends");
        assert_eq!(head.position, 2);
        assert!(matches!(
            log.append_now(1, vec![b"c".to_vec()]),
            Err(LogError::Conflict {
                expected: 1,
                actual: 2
            })
        ));
        assert!(matches!(
            log.append_now(2, vec![Vec::new()]),
            Err(LogError::BadRecordLength { length: 0 })
        ));
        let records = log.read_now(1, 10);
        assert_eq!(records.len(), 1);
        assert_eq!(records[0].previous_hash, chain_hash(&genesis.hash, b"a"));
        assert_eq!(records[0].hash, head.hash);
        assert_eq!(*log.subscribe().borrow(), head);
    }
}
