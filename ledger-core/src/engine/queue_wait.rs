//! How the writer waits for its next command.
//!
//! A writer asleep on an empty queue must be woken by the next sender: a
//! futex wake, then a context switch, microseconds each on a virtualised
//! machine and on both cores. Under steady load the next command comes
//! within microseconds, so the writer first yields its core and looks
//! again for a while; under light load that look is wasted CPU (measured:
//! 18% of a core at 3,300 single requests a second, one at a time), so it
//! only looks first while waits are short.

use std::time::{Duration, Instant};

use tokio::sync::mpsc;

/// How long the writer yields and looks again before it sleeps (about 100
/// looks here). Single requests at 256 connections, 26 alternated pairs of
/// runs: 5% more requests a second on average when yielding first (from
/// 7% fewer to 17% more pair by pair; BENCHMARKS.md).
const YIELD_BEFORE_SLEEP: Duration = Duration::from_micros(50);

/// Waits on a queue, yielding before it sleeps while the last wait was
/// short enough for yielding to have caught the message.
#[derive(Debug)]
pub(super) struct QueueWait {
    yield_first: bool,
}

impl Default for QueueWait {
    fn default() -> Self {
        QueueWait { yield_first: true }
    }
}

impl QueueWait {
    /// The next message: at once if one is queued; else, while waits are
    /// short, after yielding for up to `YIELD_BEFORE_SLEEP`; else after
    /// sleeping until one comes. `None` once every sender is gone and the
    /// queue is empty.
    pub fn next<T>(&mut self, receiver: &mut mpsc::Receiver<T>) -> Option<T> {
        let waiting_since = Instant::now();
        loop {
            match receiver.try_recv() {
                Ok(message) => return Some(message),
                Err(mpsc::error::TryRecvError::Disconnected) => return None,
                Err(mpsc::error::TryRecvError::Empty)
                    if self.yield_first && waiting_since.elapsed() < YIELD_BEFORE_SLEEP =>
                {
                    std::thread::yield_now();
                }
                Err(mpsc::error::TryRecvError::Empty) => break,
            }
        }
        let message = receiver.blocking_recv();
        // A wait that outlasted the yielding would have wasted it; one
        // that slept less than that would have been caught by it.
        self.yield_first = waiting_since.elapsed() < YIELD_BEFORE_SLEEP;
        message
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_message_arrives_in_order_however_long_the_waits() {
        let (sender, mut receiver) = mpsc::channel(4);
        let sending = std::thread::spawn(move || {
            for number in 0..200_u32 {
                // Bursts, short gaps and gaps long enough to sleep through.
                match number % 10 {
                    0 => std::thread::sleep(Duration::from_millis(2)),
                    1..=3 => std::thread::yield_now(),
                    _ => {}
                }
                if sender.blocking_send(number).is_err() {
                    return;
                }
            }
        });
        let mut wait = QueueWait::default();
        let mut received = Vec::new();
        while let Some(number) = wait.next(&mut receiver) {
            received.push(number);
        }
        let ended_early = received.len() < 200;
        // Lets a sender still waiting for room give up instead of hanging.
        drop(receiver);
        assert!(sending.join().is_ok());
        assert!(!ended_early, "ended after {} messages", received.len());
        assert_eq!(received, (0..200).collect::<Vec<_>>());
    }
}
