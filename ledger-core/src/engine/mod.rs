//! The engine: the imperative shell around `decide` / `apply`. One writer
//! thread owns the decision state and the log's write end; callers hand it
//! commands through a bounded queue and get their answer once the events
//! are durable.
//!
//! Per batch the writer: stamps `now` (never decreasing), answers retries
//! from the idempotency index, decides each new command against the state
//! including the batch's earlier effects (rejections are answered at once
//! and leave no event), appends all events in one log append (one write,
//! one fdatasync), and only then answers the accepted commands with their
//! events and positions. A failed append stops the writer for good: its
//! state holds effects that never became durable, so the only way forward
//! is a restart, which recovers from the log (and a snapshot).

pub mod clock;
pub mod envelope;
pub mod expiry_scheduler;
mod queue_wait;
mod recovery;
mod snapshotter;
mod writer;

use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot, watch};
use uuid::Uuid;

use crate::domain::command::{Actor, Command};
use crate::domain::idempotency::{Fingerprint, RETENTION_SECONDS_DEFAULT};
use crate::domain::{Rejection, State};
use crate::store::snapshot::{SnapshotKind, SnapshotStore};
use crate::store::storage::Storage;
use crate::store::{EventLog, Head, LogError, Position};

pub use clock::{Clock, ManualClock, SystemClock};
pub use envelope::EventEnvelope;

#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Commands waiting for the writer; beyond this, `submit` answers
    /// `Unavailable` instead of queueing without bound.
    pub queue_capacity: usize,
    /// Most commands decided and appended as one batch.
    pub batch_commands_max: usize,
    /// A snapshot after this many events since the last one (0: only at
    /// clean shutdown). Periodic snapshots are written by a thread that
    /// keeps a second copy of the state, so they cost that memory.
    pub snapshot_every_events: u64,
    pub idempotency_retention_seconds: u64,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            queue_capacity: 65_536,
            batch_commands_max: 8_192,
            snapshot_every_events: 1_000_000,
            idempotency_retention_seconds: RETENTION_SECONDS_DEFAULT,
        }
    }
}

/// One command as a caller submits it.
#[derive(Debug, Clone)]
pub struct CommandRequest {
    /// The idempotency key: a command id takes effect at most once.
    pub command_id: Uuid,
    pub command: Command,
    pub actor: Actor,
}

/// What a command came to. A retry gets the same outcome back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Accepted {
        /// Position of the command's last event.
        position: Position,
        /// Shared with the committed feed: the writer never copies them.
        events: Arc<[EventEnvelope]>,
    },
    Rejected(Rejection),
}

/// The engine cannot take the command now; nothing happened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the ledger is unavailable: {reason}")]
pub struct Unavailable {
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EngineStatus {
    Running {
        head: Head,
    },
    /// The writer stopped after an error; restart to recover.
    Stopped {
        reason: String,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Log(#[from] LogError),
    #[error("the log is unreadable at position {position}: {detail}")]
    Corrupt { position: Position, detail: String },
    #[error("could not start the writer thread: {0}")]
    Thread(std::io::Error),
}

/// How each remembered command ended, for answering retries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum StoredOutcome {
    /// Its events occupy these positions; the answer is re-read from the log.
    Accepted { first: Position, last: Position },
    /// Remembered in memory (and in snapshots); a rejection leaves nothing
    /// in the log, so one newer than the newest snapshot is forgotten by a
    /// restart — harmless, since it had no effect to repeat.
    /// Boxed: the index holds an outcome per command of the retention
    /// window, nearly all accepted, and an inline rejection made every
    /// entry 104 bytes instead of 72.
    Rejected(#[serde(with = "rejection_as_json")] Box<Rejection>),
}

/// A rejection's serde form is internally tagged (its `code`), which only
/// self-describing formats can read back; in the binary snapshot it is
/// kept as its JSON text.
mod rejection_as_json {
    use serde::{Deserialize, Deserializer, Serializer};

    use crate::domain::Rejection;

    pub fn serialize<S: Serializer>(
        rejection: &Rejection,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        let text = serde_json::to_string(rejection).map_err(serde::ser::Error::custom)?;
        serializer.serialize_str(&text)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Box<Rejection>, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        serde_json::from_str(&text).map_err(serde::de::Error::custom)
    }
}

/// The writer's snapshots. Bump `layout` whenever the serialised shape of
/// [`WriterSnapshot`] changes (its state, idempotency index or outcomes):
/// snapshots of another layout are then skipped instead of misread.
pub const WRITER_SNAPSHOT: SnapshotKind = SnapshotKind {
    name: "writer",
    // 2: money amounts as mantissa and scale instead of decimal text.
    // 3: each account keeps the largest consumption key it was credited.
    // 4: the idempotency index keeps 128 bits of each fingerprint.
    // 5: the idempotency index is its commands in the order of recording.
    // 6: merchants numbered; a lot names its origin by number and stores
    //    its expiry in 8 bytes.
    // 7: issuance and redemption records name their merchant by number; a
    //    redemption keeps what it took as lots.
    layout: 7,
};

/// What a snapshot holds: everything the writer needs to resume.
#[derive(Debug, Serialize, Deserialize)]
struct WriterSnapshot {
    state: State,
    idempotency: crate::domain::idempotency::IdempotencyIndex<StoredOutcome>,
    last_now: crate::domain::Timestamp,
}

#[allow(
    clippy::large_enum_variant,
    reason = "nearly every message is a command; boxing it would allocate once per command"
)]
enum Message {
    Command {
        request: CommandRequest,
        /// Computed by the submitting task, not the writer: hashing the
        /// command's JSON is work any core can do, and the writer is the
        /// one thread every command waits for.
        fingerprint: Fingerprint,
        reply: oneshot::Sender<Result<Outcome, Unavailable>>,
    },
    /// Finish what is queued before it, snapshot, stop.
    Shutdown { done: oneshot::Sender<()> },
    /// The state's digest and the head, after everything queued before it.
    Inspect {
        reply: oneshot::Sender<([u8; 32], Head)>,
    },
    /// Runs a read of the state, after everything queued before it.
    ReadState(StateReader),
}

/// A read of the writer's state and head, run on the writer thread.
type StateReader = Box<dyn FnOnce(&State, Head) + Send>;

/// Committed batches kept for slow subscribers before they must catch up
/// from the log instead.
const COMMITTED_BATCHES_BUFFERED: usize = 1_024;

/// The events of one durable append, in position order: each accepted
/// command's events, the same allocation its caller's answer holds (copying
/// them for the feed cost the writer a clone of every envelope, and the
/// copies of a large batch were megabytes of fresh pages).
#[derive(Debug, Default)]
pub struct Committed {
    commands: Vec<Arc<[EventEnvelope]>>,
    events: usize,
}

impl Committed {
    pub fn iter(&self) -> impl Iterator<Item = &EventEnvelope> {
        self.commands.iter().flat_map(|events| events.iter())
    }

    pub fn first(&self) -> Option<&EventEnvelope> {
        self.commands.first().and_then(|events| events.first())
    }

    /// Events, not commands.
    pub fn len(&self) -> usize {
        self.events
    }

    pub fn is_empty(&self) -> bool {
        self.events == 0
    }
}

impl FromIterator<Arc<[EventEnvelope]>> for Committed {
    fn from_iter<I: IntoIterator<Item = Arc<[EventEnvelope]>>>(commands: I) -> Self {
        let commands: Vec<_> = commands.into_iter().collect();
        let events = commands.iter().map(|events| events.len()).sum();
        Committed { commands, events }
    }
}

pub type CommittedBatch = Arc<Committed>;

/// A cheap, cloneable handle to the running engine.
#[derive(Debug, Clone)]
pub struct Engine {
    sender: mpsc::Sender<Message>,
    committed: tokio::sync::broadcast::Sender<CommittedBatch>,
    status: watch::Receiver<EngineStatus>,
    writer: Arc<Mutex<Option<JoinHandle<()>>>>,
}

impl Message {
    /// A command for the writer, its fingerprint computed here, on the
    /// submitting task.
    fn command(
        request: CommandRequest,
        reply: oneshot::Sender<Result<Outcome, Unavailable>>,
    ) -> Message {
        let fingerprint = Fingerprint::of(&request.command, &request.actor);
        Message::Command {
            request,
            fingerprint,
            reply,
        }
    }
}

impl std::fmt::Debug for Message {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Message::Command { request, .. } => {
                write!(formatter, "Command({})", request.command_id)
            }
            Message::Shutdown { .. } => formatter.write_str("Shutdown"),
            Message::Inspect { .. } => formatter.write_str("Inspect"),
            Message::ReadState(_) => formatter.write_str("ReadState"),
        }
    }
}

impl Engine {
    /// Recovers the state (newest usable snapshot, then the log after it)
    /// on the writer thread, and returns once the writer is ready. Never
    /// blocks the calling task.
    pub async fn start<L: EventLog, S: Storage>(
        log: Arc<L>,
        snapshots: Option<SnapshotStore<S>>,
        clock: Arc<dyn Clock>,
        config: EngineConfig,
    ) -> Result<Engine, EngineError> {
        let (ready, is_ready) = oneshot::channel();
        let (sender, receiver) = mpsc::channel(config.queue_capacity.max(1));
        let (status_sender, status) = watch::channel(EngineStatus::Running { head: log.head() });
        let (committed, _) = tokio::sync::broadcast::channel(COMMITTED_BATCHES_BUFFERED);
        let committed_sender = committed.clone();
        let handle = std::thread::Builder::new()
            .name("ledger-writer".to_owned())
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_current_thread().build() {
                    Ok(runtime) => runtime,
                    Err(error) => {
                        let _ = ready.send(Err(EngineError::Thread(error)));
                        return;
                    }
                };
                let recovered =
                    match recovery::recover(log.as_ref(), snapshots.as_ref(), &config, &runtime) {
                        Ok(recovered) => recovered,
                        Err(error) => {
                            let _ = ready.send(Err(error));
                            return;
                        }
                    };
                let head = log.head();
                let snapshots = snapshots.map(Arc::new);
                let snapshotter = match &snapshots {
                    Some(store) if config.snapshot_every_events > 0 => {
                        let replica = snapshotter::Replica {
                            state: recovered.state.clone(),
                            idempotency: recovered.idempotency.clone(),
                            last_now: recovered.last_now,
                            head,
                            events_since_snapshot: recovered.events_replayed,
                        };
                        match snapshotter::Snapshotter::start(
                            Arc::clone(store),
                            replica,
                            config.snapshot_every_events,
                        ) {
                            Ok(snapshotter) => Some(snapshotter),
                            Err(error) => {
                                let _ = ready.send(Err(EngineError::Thread(error)));
                                return;
                            }
                        }
                    }
                    _ => None,
                };
                status_sender.send_replace(EngineStatus::Running { head });
                let writer = writer::Writer {
                    log,
                    snapshots,
                    snapshotter,
                    clock,
                    config,
                    state: recovered.state,
                    idempotency: recovered.idempotency,
                    last_now: recovered.last_now,
                    head,
                    events_since_snapshot: recovered.events_replayed,
                    status: status_sender,
                    committed: committed_sender,
                    runtime,
                    scratch: writer::BatchScratch::default(),
                    queue_wait: queue_wait::QueueWait::default(),
                };
                if ready.send(Ok(())).is_ok() {
                    writer.run(receiver);
                }
            })
            .map_err(EngineError::Thread)?;
        match is_ready.await {
            Ok(Ok(())) => Ok(Engine {
                sender,
                committed,
                status,
                writer: Arc::new(Mutex::new(Some(handle))),
            }),
            Ok(Err(error)) => Err(error),
            Err(_) => Err(EngineError::Thread(std::io::Error::other(
                "the writer thread ended during recovery",
            ))),
        }
    }

    /// Submits a command and waits for its outcome (durable when Accepted).
    pub async fn submit(&self, request: CommandRequest) -> Result<Outcome, Unavailable> {
        if let EngineStatus::Stopped { reason } = &*self.status.borrow() {
            return Err(Unavailable {
                reason: reason.clone(),
            });
        }
        let (reply, answer) = oneshot::channel();
        self.sender
            .try_send(Message::command(request, reply))
            .map_err(|error| Unavailable {
                reason: match error {
                    mpsc::error::TrySendError::Full(_) => "the command queue is full".to_owned(),
                    mpsc::error::TrySendError::Closed(_) => "the writer has stopped".to_owned(),
                },
            })?;
        answer.await.unwrap_or_else(|_| {
            Err(Unavailable {
                reason: "the writer stopped before answering".to_owned(),
            })
        })
    }

    /// Submits commands in order, each decided after the ones before it,
    /// waiting for queue room rather than refusing; answers in the same
    /// order. For bulk imports, where one request carries many commands.
    pub async fn submit_in_order(
        &self,
        requests: Vec<CommandRequest>,
    ) -> Vec<Result<Outcome, Unavailable>> {
        let mut answers = Vec::with_capacity(requests.len());
        for request in requests {
            if let EngineStatus::Stopped { reason } = &*self.status.borrow() {
                answers.push(Err(Unavailable {
                    reason: reason.clone(),
                }));
                continue;
            }
            let (reply, answer) = oneshot::channel();
            // One task sends them one after another, so the queue holds them
            // in request order.
            match self.sender.send(Message::command(request, reply)).await {
                Ok(()) => answers.push(Ok(answer)),
                Err(_) => answers.push(Err(Unavailable {
                    reason: "the writer has stopped".to_owned(),
                })),
            }
        }
        let mut outcomes = Vec::with_capacity(answers.len());
        for answer in answers {
            outcomes.push(match answer {
                Ok(answer) => answer.await.unwrap_or_else(|_| {
                    Err(Unavailable {
                        reason: "the writer stopped before answering".to_owned(),
                    })
                }),
                Err(unavailable) => Err(unavailable),
            });
        }
        outcomes
    }

    /// The writer's state digest and head, once everything submitted before
    /// this call is decided: for reconciliation and restart checks.
    pub async fn state_digest(&self) -> Result<([u8; 32], Head), Unavailable> {
        let (reply, answer) = oneshot::channel();
        let stopped = || Unavailable {
            reason: "the writer has stopped".to_owned(),
        };
        self.sender
            .send(Message::Inspect { reply })
            .await
            .map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())
    }

    /// Runs `read` on the writer's thread against its state and head, once
    /// everything submitted before this call is decided, and returns its
    /// result. The writer waits for `read`: keep it short (a summary, not
    /// a serialisation).
    pub async fn read_state<R: Send + 'static>(
        &self,
        read: impl FnOnce(&State, Head) -> R + Send + 'static,
    ) -> Result<R, Unavailable> {
        let (reply, answer) = oneshot::channel();
        let job: StateReader = Box::new(move |state, head| {
            let _ = reply.send(read(state, head));
        });
        let stopped = || Unavailable {
            reason: "the writer has stopped".to_owned(),
        };
        self.sender
            .send(Message::ReadState(job))
            .await
            .map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())
    }

    /// Every batch from now on, once durable: the in-process live feed for
    /// read models. A subscriber that falls more than a thousand batches
    /// behind is told it lagged and must catch up from the log.
    pub fn subscribe_committed(&self) -> tokio::sync::broadcast::Receiver<CommittedBatch> {
        self.committed.subscribe()
    }

    pub fn status(&self) -> EngineStatus {
        self.status.borrow().clone()
    }

    pub fn subscribe_status(&self) -> watch::Receiver<EngineStatus> {
        self.status.clone()
    }

    /// Commands waiting in the queue.
    pub fn queue_depth(&self) -> usize {
        self.sender.max_capacity() - self.sender.capacity()
    }

    /// Lets the writer finish everything queued, snapshot, and stop; waits
    /// for it. Later submits answer `Unavailable`.
    pub async fn shutdown(&self) {
        let (done, finished) = oneshot::channel();
        if self.sender.send(Message::Shutdown { done }).await.is_ok() {
            let _ = finished.await;
        }
        let handle = self
            .writer
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .take();
        if let Some(handle) = handle {
            let _ = tokio::task::spawn_blocking(move || handle.join()).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::StoredOutcome;

    #[test]
    fn a_stored_outcome_is_three_words() {
        // The idempotency index holds one per command of the retention
        // window (its entry size is tested with an outcome of this size).
        assert_eq!(size_of::<StoredOutcome>(), 24);
    }
}
