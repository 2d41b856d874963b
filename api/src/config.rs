//! Server configuration: flags, each with an environment-variable fallback.
//! With only `--data-dir` the server runs.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, ValueEnum};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// The points ledger's HTTP server, on the embedded file log.
#[derive(Debug, Clone, Parser)]
#[command(name = "ledger-server", version, about)]
pub struct Config {
    /// Directory of the ledger (created if missing): the event log and its
    /// snapshots.
    #[arg(long, env = "LEDGER_DATA_DIR")]
    pub data_dir: PathBuf,

    /// Address to listen on.
    #[arg(long, env = "LEDGER_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,

    /// The bootstrap admin key (clients send it as `Authorization: Bearer
    /// KEY`). Without it only keys created through the API work.
    #[arg(long, env = "LEDGER_ADMIN_KEY", hide_env_values = true)]
    pub admin_key: Option<String>,

    /// Most commands the writer decides and appends as one batch.
    #[arg(long, env = "LEDGER_BATCH_MAX", default_value_t = 8192)]
    pub batch_max: usize,

    /// Commands waiting for the writer before new ones are refused (503).
    #[arg(long, env = "LEDGER_QUEUE_CAPACITY", default_value_t = 65_536)]
    pub queue_capacity: usize,

    /// Snapshot the writer's state every this many events (0: only at
    /// shutdown).
    #[arg(long, env = "LEDGER_SNAPSHOT_EVERY", default_value_t = 1_000_000)]
    pub snapshot_every: u64,

    /// How long a command id is remembered for idempotent retries, in
    /// seconds.
    #[arg(long, env = "LEDGER_IDEMPOTENCY_SECONDS", default_value_t = 7 * 86_400)]
    pub idempotency_seconds: u64,

    /// Seconds between scheduled expiry runs (0: no scheduler).
    #[arg(long, env = "LEDGER_EXPIRY_INTERVAL_SECONDS", default_value_t = 3_600)]
    pub expiry_interval_seconds: u64,

    /// Largest request body, in bytes; larger ones are refused before they
    /// are read whole.
    #[arg(long, env = "LEDGER_BODY_LIMIT_BYTES", default_value_t = 8 << 20)]
    pub body_limit_bytes: usize,

    /// How long a query waits for `min_position` before answering 503, in
    /// milliseconds.
    #[arg(long, env = "LEDGER_MIN_POSITION_WAIT_MS", default_value_t = 5_000)]
    pub min_position_wait_ms: u64,

    /// Log output format.
    #[arg(long, env = "LEDGER_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

impl Config {
    pub fn min_position_wait(&self) -> Duration {
        Duration::from_millis(self.min_position_wait_ms)
    }

    /// A configuration for tests and embedding: defaults, this directory.
    pub fn for_directory(data_dir: PathBuf) -> Config {
        Config::parse_from(["ledger-server", "--data-dir", &data_dir.to_string_lossy()])
    }
}
