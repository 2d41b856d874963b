//! The single writer: the only owner of the decision state.

use std::sync::Arc;

use rustc_hash::FxHashMap;
use serde::Serialize;
use tokio::runtime::Runtime;
use tokio::sync::{mpsc, oneshot, watch};
use uuid::Uuid;

use super::envelope::event_id;
use super::{
    Clock, CommandRequest, EngineConfig, EngineStatus, EventEnvelope, Message, Outcome,
    StoredOutcome, Unavailable,
};
use crate::domain::idempotency::{Fingerprint, IdempotencyIndex, Lookup};
use crate::domain::{Context, Rejection, State, Timestamp, apply, decide};
use crate::store::snapshot::SnapshotStore;
use crate::store::storage::Storage;
use crate::store::{EventLog, Head, LogError};

type Reply = oneshot::Sender<Result<Outcome, Unavailable>>;

pub(super) struct Writer<L: EventLog, S: Storage> {
    pub log: Arc<L>,
    pub snapshots: Option<Arc<SnapshotStore<S>>>,
    /// A periodic snapshot being serialised and written off the writer
    /// thread; at most one at a time.
    pub snapshot_in_flight: Option<std::thread::JoinHandle<()>>,
    pub clock: Arc<dyn Clock>,
    pub config: EngineConfig,
    pub state: State,
    pub idempotency: IdempotencyIndex<StoredOutcome>,
    pub last_now: Timestamp,
    pub head: Head,
    pub events_since_snapshot: u64,
    pub status: watch::Sender<EngineStatus>,
    pub committed: tokio::sync::broadcast::Sender<super::CommittedBatch>,
    pub runtime: Runtime,
}

/// An accepted command of the current batch, waiting for the append.
struct Pending {
    command_id: Uuid,
    fingerprint: Fingerprint,
    envelopes: Vec<EventEnvelope>,
    /// The caller, plus any retry of the same command in the same batch.
    replies: Vec<Reply>,
}

#[derive(Serialize)]
struct WriterSnapshotRef<'writer> {
    state: &'writer State,
    idempotency: &'writer IdempotencyIndex<StoredOutcome>,
    last_now: Timestamp,
}

fn unavailable(reason: impl Into<String>) -> Unavailable {
    Unavailable {
        reason: reason.into(),
    }
}

impl<L: EventLog, S: Storage> Writer<L, S> {
    pub fn run(mut self, mut receiver: mpsc::Receiver<Message>) {
        loop {
            let Some(first) = receiver.blocking_recv() else {
                // Every handle is gone: a clean stop.
                self.snapshot();
                return;
            };
            let mut batch = Vec::new();
            let mut shutdown = None;
            let mut next = Some(first);
            while let Some(message) = next.take() {
                match message {
                    Message::Command { request, reply } => batch.push((request, reply)),
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
            if let Some(done) = shutdown {
                self.snapshot();
                self.stop(&mut receiver, "the ledger is shutting down".to_owned());
                let _ = done.send(());
                return;
            }
            if self.config.snapshot_every_events > 0
                && self.events_since_snapshot >= self.config.snapshot_every_events
            {
                self.snapshot_in_background();
            }
        }
    }

    /// Processes the batch; on a log failure stops the writer and returns
    /// true.
    fn process_or_stop(
        &mut self,
        batch: &mut Vec<(CommandRequest, Reply)>,
        receiver: &mut mpsc::Receiver<Message>,
    ) -> bool {
        if batch.is_empty() {
            return false;
        }
        match self.process(std::mem::take(batch)) {
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

    fn process(&mut self, batch: Vec<(CommandRequest, Reply)>) -> Result<(), LogError> {
        let now = self.clock.now().max(self.last_now);
        self.last_now = now;
        self.idempotency.forget_expired(now);
        let ledger_id = self.log.ledger_id();
        let mut payloads = Vec::new();
        let mut pending: Vec<Pending> = Vec::new();
        let mut pending_by_id: FxHashMap<Uuid, usize> = FxHashMap::default();
        let mut next_position = self.head.position + 1;

        for (request, reply) in batch {
            let fingerprint = Fingerprint::of(&request.command, &request.actor);
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
                    self.idempotency.record(
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
                        let payload = envelope.encode().unwrap_or_else(|error| {
                            panic!("an event envelope did not serialise: {error}")
                        });
                        payloads.push(payload);
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
        if payloads.is_empty() {
            return Ok(());
        }
        let appended = payloads.len() as u64;
        metrics::histogram!("ledger_batch_commands").record(pending.len() as f64);
        metrics::histogram!("ledger_batch_events").record(appended as f64);
        let append_started = std::time::Instant::now();
        let appended_head = self
            .runtime
            .block_on(self.log.append(self.head.position, payloads));
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
                for waiting in pending {
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
        if self.committed.receiver_count() > 0 {
            // Sized up front: grown by doubling, a batch of a thousand
            // envelopes was copied at every doubling, into fresh pages.
            let mut batch = Vec::with_capacity(usize::try_from(appended).unwrap_or_default());
            for accepted in &pending {
                batch.extend(accepted.envelopes.iter().cloned());
            }
            let _ = self.committed.send(Arc::new(batch));
        }
        for accepted in pending {
            let (Some(first), Some(last)) = (accepted.envelopes.first(), accepted.envelopes.last())
            else {
                continue;
            };
            let (first, last) = (first.position, last.position);
            self.idempotency.record(
                accepted.command_id,
                accepted.fingerprint,
                now,
                StoredOutcome::Accepted { first, last },
            );
            let outcome = Outcome::Accepted {
                position: last,
                events: accepted.envelopes,
            };
            for reply in accepted.replies {
                let _ = reply.send(Ok(outcome.clone()));
            }
        }
        Ok(())
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
                    events,
                })
            }
        }
    }

    /// Starts a periodic snapshot on a thread of its own, so the writer
    /// pauses only to copy the state, not to serialise and write it (which
    /// took seconds for a large ledger and stalled every caller).
    fn snapshot_in_background(&mut self) {
        let Some(store) = &self.snapshots else {
            return;
        };
        let head = self.head;
        if let Some(running) = &self.snapshot_in_flight {
            if !running.is_finished() {
                return;
            }
            if let Some(finished) = self.snapshot_in_flight.take() {
                let _ = finished.join();
            }
        }
        let store = Arc::clone(store);
        let state = self.state.clone();
        let idempotency = self.idempotency.clone();
        let last_now = self.last_now;
        let spawned = std::thread::Builder::new()
            .name("ledger-snapshot".to_owned())
            .spawn(move || {
                write_snapshot(&store, head, &state, &idempotency, last_now);
            });
        match spawned {
            Ok(handle) => {
                self.snapshot_in_flight = Some(handle);
                self.events_since_snapshot = 0;
            }
            Err(error) => tracing::warn!(%error, "could not start a snapshot thread"),
        }
    }

    /// A snapshot now, on the writer thread (at shutdown), after any
    /// background one has finished.
    fn snapshot(&mut self) {
        if let Some(running) = self.snapshot_in_flight.take() {
            let _ = running.join();
        }
        let Some(store) = &self.snapshots else {
            return;
        };
        if self.head.position == 0 || self.events_since_snapshot == 0 {
            return;
        }
        if write_snapshot(
            store,
            self.head,
            &self.state,
            &self.idempotency,
            self.last_now,
        ) {
            self.events_since_snapshot = 0;
        }
    }
}

/// Serialises and stores one snapshot; true if it was written.
fn write_snapshot<S: Storage>(
    store: &SnapshotStore<S>,
    head: Head,
    state: &State,
    idempotency: &IdempotencyIndex<StoredOutcome>,
    last_now: Timestamp,
) -> bool {
    let snapshot = WriterSnapshotRef {
        state,
        idempotency,
        last_now,
    };
    match store.save(super::WRITER_SNAPSHOT, head, &snapshot) {
        Ok(_) => true,
        Err(error) => {
            tracing::warn!(%error, "could not write a snapshot");
            false
        }
    }
}
