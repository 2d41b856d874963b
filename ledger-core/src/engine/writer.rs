//! The single writer: the only owner of the decision state.

use std::sync::Arc;
use std::time::Instant;

use rustc_hash::FxHashMap;
use tokio::runtime::Runtime;
use tokio::sync::{mpsc, oneshot, watch};
use uuid::Uuid;

use super::envelope::event_id;
use super::queue_wait::QueueWait;
use super::snapshotter::{Followed, Recorded, Snapshotter, snapshot_if_changed};
use super::{
    Clock, CommandRequest, CommittedBatch, EngineConfig, EngineStatus, EventEnvelope, Message,
    Outcome, StoredOutcome, Unavailable,
};
use crate::domain::idempotency::{Fingerprint, IdempotencyIndex, Lookup};
use crate::domain::{Context, Rejection, State, Timestamp, apply, decide};
use crate::store::snapshot::SnapshotStore;
use crate::store::storage::Storage;
use crate::store::{EventLog, Head, LogError, PayloadBatch};

type Reply = oneshot::Sender<Result<Outcome, Unavailable>>;

/// A command taken from the queue for the current batch.
struct Queued {
    request: CommandRequest,
    fingerprint: Fingerprint,
    reply: Reply,
}

pub(super) struct Writer<L: EventLog, S: Storage> {
    pub log: Arc<L>,
    pub snapshots: Option<Arc<SnapshotStore<S>>>,
    /// Follows every batch and writes the periodic snapshots (none when
    /// snapshots are only taken at shutdown).
    pub snapshotter: Option<Snapshotter>,
    pub clock: Arc<dyn Clock>,
    pub config: EngineConfig,
    pub state: State,
    pub idempotency: IdempotencyIndex<StoredOutcome>,
    pub last_now: Timestamp,
    pub head: Head,
    pub events_since_snapshot: u64,
    pub status: watch::Sender<EngineStatus>,
    pub committed: tokio::sync::broadcast::Sender<CommittedBatch>,
    pub runtime: Runtime,
    pub scratch: BatchScratch,
    pub queue_wait: QueueWait,
}

/// Per-batch buffers kept from one batch to the next. Built afresh, each
/// grew by doubling into fresh pages for a batch of thousands of commands,
/// and page faults were a fifth of the writer's samples under batch load.
#[derive(Default)]
pub(super) struct BatchScratch {
    queued: Vec<Queued>,
    pending: Vec<Pending>,
    pending_by_id: FxHashMap<Uuid, usize>,
    payloads: PayloadBatch,
}

/// An accepted command of the current batch, waiting for the append.
struct Pending {
    command_id: Uuid,
    fingerprint: Fingerprint,
    envelopes: Vec<EventEnvelope>,
    /// The caller, plus any retry of the same command in the same batch.
    replies: Vec<Reply>,
}

fn unavailable(reason: impl Into<String>) -> Unavailable {
    Unavailable {
        reason: reason.into(),
    }
}

impl<L: EventLog, S: Storage> Writer<L, S> {
    pub fn run(mut self, mut receiver: mpsc::Receiver<Message>) {
        loop {
            let Some(first) = self.queue_wait.next(&mut receiver) else {
                // Every handle is gone: a clean stop.
                self.snapshot();
                return;
            };
            let mut batch = std::mem::take(&mut self.scratch.queued);
            let mut shutdown = None;
            let mut next = Some(first);
            while let Some(message) = next.take() {
                match message {
                    Message::Command {
                        request,
                        fingerprint,
                        reply,
                    } => batch.push(Queued {
                        request,
                        fingerprint,
                        reply,
                    }),
                    Message::Shutdown { done } => {
                        shutdown = Some(done);
                        break;
                    }
                    Message::ReadState(read) => {
                        if self.process_or_stop(&mut batch, &mut receiver) {
                            return;
                        }
                        read(&self.state, self.head);
                    }
                    Message::Inspect { reply } => {
                        // Decide what came before it first, then answer.
                        if self.process_or_stop(&mut batch, &mut receiver) {
                            return;
                        }
                        let digest = crate::domain::state_digest(&self.state);
                        let _ = reply.send((digest, self.head));
                    }
                }
                if batch.len() < self.config.batch_commands_max {
                    next = receiver.try_recv().ok();
                }
            }
            if self.process_or_stop(&mut batch, &mut receiver) {
                return;
            }
            self.scratch.queued = batch;
            if let Some(done) = shutdown {
                self.snapshot();
                self.stop(&mut receiver, "the ledger is shutting down".to_owned());
                let _ = done.send(());
                return;
            }
        }
    }

    /// Processes the batch; on a log failure stops the writer and returns
    /// true.
    fn process_or_stop(
        &mut self,
        batch: &mut Vec<Queued>,
        receiver: &mut mpsc::Receiver<Message>,
    ) -> bool {
        if batch.is_empty() {
            return false;
        }
        match self.process(batch) {
            Ok(()) => false,
            Err(error) => {
                let reason = format!("the log failed and the writer stopped: {error}");
                tracing::error!(%reason);
                self.stop(receiver, reason);
                true
            }
        }
    }

    /// Refuses everything still queued and everything later.
    fn stop(&mut self, receiver: &mut mpsc::Receiver<Message>, reason: String) {
        self.status.send_replace(EngineStatus::Stopped {
            reason: reason.clone(),
        });
        receiver.close();
        while let Ok(message) = receiver.try_recv() {
            match message {
                Message::Command { reply, .. } => {
                    let _ = reply.send(Err(unavailable(reason.clone())));
                }
                Message::Shutdown { done } => {
                    let _ = done.send(());
                }
                Message::Inspect { .. } | Message::ReadState(_) => {}
            }
        }
    }

    /// Decides and appends the batch, leaving `batch` empty.
    fn process(&mut self, batch: &mut Vec<Queued>) -> Result<(), LogError> {
        let now = self.clock.now().max(self.last_now);
        self.last_now = now;
        self.idempotency.forget_expired(now);
        let ledger_id = self.log.ledger_id();
        let mut payloads = std::mem::take(&mut self.scratch.payloads);
        payloads.clear();
        let mut pending = std::mem::take(&mut self.scratch.pending);
        let mut pending_by_id = std::mem::take(&mut self.scratch.pending_by_id);
        let mut next_position = self.head.position + 1;
        // The snapshotter repeats the index's records in this order.
        let mut recorded = Vec::with_capacity(if self.snapshotter.is_some() {
            batch.len()
        } else {
            0
        });

        for Queued {
            request,
            fingerprint,
            reply,
        } in batch.drain(..)
        {
            if let Some(&index) = pending_by_id.get(&request.command_id) {
                if pending[index].fingerprint == fingerprint {
                    pending[index].replies.push(reply);
                } else {
                    let _ = reply.send(Ok(Outcome::Rejected(Rejection::IdempotencyKeyReused)));
                }
                continue;
            }
            match self.idempotency.lookup(request.command_id, fingerprint) {
                Lookup::Replay(stored) => {
                    let stored = stored.clone();
                    let _ = reply.send(self.answer_again(stored));
                    continue;
                }
                Lookup::KeyReused => {
                    let _ = reply.send(Ok(Outcome::Rejected(Rejection::IdempotencyKeyReused)));
                    continue;
                }
                Lookup::New => {}
            }
            let context = Context {
                now,
                actor: request.actor.clone(),
            };
            match decide(&self.state, &request.command, &context) {
                Err(rejection) => {
                    self.record(
                        &mut recorded,
                        request.command_id,
                        fingerprint,
                        now,
                        StoredOutcome::Rejected(Box::new(rejection.clone())),
                    );
                    let _ = reply.send(Ok(Outcome::Rejected(rejection)));
                }
                Ok(events) => {
                    let mut envelopes = Vec::with_capacity(events.len());
                    for event in events {
                        apply(&mut self.state, &event);
                        let envelope = EventEnvelope {
                            position: next_position,
                            event_id: event_id(ledger_id, next_position),
                            schema_version: event.schema_version(),
                            recorded_at: now,
                            command_id: request.command_id,
                            command_fingerprint: fingerprint,
                            actor: request.actor.clone(),
                            event,
                        };
                        // Our own types always serialise; failing here would
                        // leave applied effects unlogged, so it must stop.
                        payloads
                            .push_with(|bytes| envelope.encode_into(bytes))
                            .unwrap_or_else(|error| {
                                panic!("an event envelope did not serialise: {error}")
                            });
                        envelopes.push(envelope);
                        next_position += 1;
                    }
                    pending_by_id.insert(request.command_id, pending.len());
                    pending.push(Pending {
                        command_id: request.command_id,
                        fingerprint,
                        envelopes,
                        replies: vec![reply],
                    });
                }
            }
        }
        pending_by_id.clear();
        self.scratch.pending_by_id = pending_by_id;
        if payloads.is_empty() {
            self.follow(now, recorded, None);
            pending.clear();
            self.scratch.pending = pending;
            self.scratch.payloads = payloads;
            return Ok(());
        }
        let appended = payloads.len() as u64;
        metrics::histogram!("ledger_batch_commands").record(pending.len() as f64);
        metrics::histogram!("ledger_batch_events").record(appended as f64);
        let append_started = Instant::now();
        let appended_head = self
            .runtime
            .block_on(self.log.append(self.head.position, &payloads));
        self.scratch.payloads = payloads;
        // One append is one write and one fdatasync: its time is the fsync
        // latency every caller in the batch waited for.
        metrics::histogram!("ledger_append_seconds").record(append_started.elapsed().as_secs_f64());
        let head = match appended_head {
            Ok(head) => head,
            Err(error) => {
                // Stopped before anyone hears of the failure, so no caller
                // can see the error and then find the engine "running".
                self.status.send_replace(EngineStatus::Stopped {
                    reason: format!("the log failed and the writer stopped: {error}"),
                });
                for waiting in pending.drain(..) {
                    for reply in waiting.replies {
                        let _ = reply.send(Err(unavailable(format!(
                            "the events were not stored: {error}"
                        ))));
                    }
                }
                return Err(error);
            }
        };
        self.head = head;
        self.events_since_snapshot += appended;
        self.status.send_replace(EngineStatus::Running { head });
        // Each command's events are moved once into an allocation that its
        // answer and the committed feed share.
        let shared: Vec<Arc<[EventEnvelope]>> = pending
            .iter_mut()
            .map(|accepted| Arc::from(std::mem::take(&mut accepted.envelopes)))
            .collect();
        let committed = if self.committed.receiver_count() > 0 || self.snapshotter.is_some() {
            let batch: CommittedBatch = Arc::new(shared.iter().cloned().collect());
            if self.committed.receiver_count() > 0 {
                let _ = self.committed.send(Arc::clone(&batch));
            }
            Some(batch)
        } else {
            None
        };
        for (accepted, events) in pending.drain(..).zip(shared) {
            let (Some(first), Some(last)) = (events.first(), events.last()) else {
                continue;
            };
            let (first, last) = (first.position, last.position);
            self.record(
                &mut recorded,
                accepted.command_id,
                accepted.fingerprint,
                now,
                StoredOutcome::Accepted { first, last },
            );
            let outcome = Outcome::Accepted {
                position: last,
                events,
            };
            for reply in accepted.replies {
                let _ = reply.send(Ok(outcome.clone()));
            }
        }
        self.scratch.pending = pending;
        self.follow(now, recorded, committed);
        Ok(())
    }

    fn record(
        &mut self,
        recorded: &mut Vec<Recorded>,
        command_id: Uuid,
        fingerprint: Fingerprint,
        now: Timestamp,
        outcome: StoredOutcome,
    ) {
        if self.snapshotter.is_some() {
            recorded.push(Recorded {
                command_id,
                fingerprint,
                outcome: outcome.clone(),
            });
        }
        self.idempotency
            .record(command_id, fingerprint, now, outcome);
    }

    /// Hands the batch's durable effects to the snapshotter. A batch of
    /// retries only changed nothing it needs: the next batch forgets the
    /// same expired ids at a later `now`.
    fn follow(&mut self, now: Timestamp, recorded: Vec<Recorded>, events: Option<CommittedBatch>) {
        let head = self.head;
        let Some(snapshotter) = &mut self.snapshotter else {
            return;
        };
        if recorded.is_empty() && events.is_none() {
            return;
        }
        snapshotter.send(Followed {
            now,
            head,
            recorded,
            events,
        });
    }

    /// The answer a retry gets: the first outcome, re-read from the log if
    /// it was accepted.
    fn answer_again(&self, stored: StoredOutcome) -> Result<Outcome, Unavailable> {
        match stored {
            StoredOutcome::Rejected(rejection) => Ok(Outcome::Rejected(*rejection)),
            StoredOutcome::Accepted { first, last } => {
                let count = usize::try_from(last - first + 1).unwrap_or(usize::MAX);
                let records = self
                    .runtime
                    .block_on(self.log.read(first - 1, count))
                    .map_err(|error| {
                        unavailable(format!("could not re-read the first answer: {error}"))
                    })?;
                let events = records
                    .iter()
                    .map(|record| EventEnvelope::decode(&record.payload))
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|error| {
                        unavailable(format!("could not decode the first answer: {error}"))
                    })?;
                Ok(Outcome::Accepted {
                    position: last,
                    events: events.into(),
                })
            }
        }
    }

    /// The snapshot at shutdown: the snapshotter's final one once it has
    /// caught up, or, without one (or if it failed), the writer's own.
    fn snapshot(&mut self) {
        if let Some(snapshotter) = self.snapshotter.take()
            && snapshotter.finish()
        {
            return;
        }
        let Some(store) = &self.snapshots else {
            return;
        };
        snapshot_if_changed(
            store,
            self.head,
            &self.state,
            &self.idempotency,
            self.last_now,
            &mut self.events_since_snapshot,
        );
    }
}
