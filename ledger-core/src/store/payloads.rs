//! A batch of record payloads laid end to end in one buffer. The writer
//! keeps one from batch to batch and encodes each event straight into it:
//! a vector per event was an allocation and a free per event on the
//! writer thread, and the allocator's fresh pages for them were faulted in
//! on the writer's time.

/// Payloads in append order; each is the bytes between the previous end
/// and its own.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PayloadBatch {
    bytes: Vec<u8>,
    ends: Vec<usize>,
}

impl PayloadBatch {
    pub fn new() -> PayloadBatch {
        PayloadBatch::default()
    }

    /// Empties the batch, keeping its buffers.
    pub fn clear(&mut self) {
        self.bytes.clear();
        self.ends.clear();
    }

    pub fn len(&self) -> usize {
        self.ends.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    pub fn push(&mut self, payload: &[u8]) {
        self.bytes.extend_from_slice(payload);
        self.ends.push(self.bytes.len());
    }

    /// Adds the payload `write` appends to the buffer; if it fails, nothing
    /// it wrote stays and the batch is as it was.
    pub fn push_with<E>(
        &mut self,
        write: impl FnOnce(&mut Vec<u8>) -> Result<(), E>,
    ) -> Result<(), E> {
        let start = self.bytes.len();
        match write(&mut self.bytes) {
            Ok(()) => {
                self.ends.push(self.bytes.len());
                Ok(())
            }
            Err(error) => {
                self.bytes.truncate(start);
                Err(error)
            }
        }
    }

    pub fn iter(&self) -> impl ExactSizeIterator<Item = &[u8]> + Clone {
        (0..self.ends.len()).map(|index| {
            let start = index.checked_sub(1).map_or(0, |before| self.ends[before]);
            &self.bytes[start..self.ends[index]]
        })
    }
}

impl<Payload: AsRef<[u8]>> FromIterator<Payload> for PayloadBatch {
    fn from_iter<Payloads: IntoIterator<Item = Payload>>(payloads: Payloads) -> PayloadBatch {
        let mut batch = PayloadBatch::new();
        for payload in payloads {
            batch.push(payload.as_ref());
        }
        batch
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_come_back_as_pushed_including_empty_ones() {
        let mut batch: PayloadBatch = [b"first".as_slice(), b"", b"third"].into_iter().collect();
        batch.push(b"fourth");
        let read: Vec<&[u8]> = batch.iter().collect();
        assert_eq!(read, [b"first".as_slice(), b"", b"third", b"fourth"]);
        assert_eq!(batch.iter().len(), 4);
        batch.clear();
        assert!(batch.is_empty());
        assert_eq!(batch.iter().count(), 0);
    }

    #[test]
    fn a_failed_write_leaves_nothing_behind() {
        let mut batch = PayloadBatch::new();
        batch.push(b"kept");
        let failed: Result<(), &str> = batch.push_with(|bytes| {
            bytes.extend_from_slice(b"half");
            Err("cannot finish")
        });
        assert_eq!(failed, Err("cannot finish"));
        let written: Result<(), &str> = batch.push_with(|bytes| {
            bytes.extend_from_slice(b"whole");
            Ok(())
        });
        assert_eq!(written, Ok(()));
        let read: Vec<&[u8]> = batch.iter().collect();
        assert_eq!(read, [b"kept".as_slice(), b"whole"]);
    }
}
