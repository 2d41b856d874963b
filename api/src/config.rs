//! Server configuration: flags, each with an environment-variable fallback,
//! and an optional TOML file (`--config`). Precedence: flag, then
//! environment variable, then file, then default. With only `--data-dir`
//! the server runs.

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
#[command(name = "ledger-server", version, about, args_override_self = true)]
pub struct Config {
    /// A TOML file of settings, named as the long flags with underscores
    /// (`data_dir = "/var/lib/ledger"`, `batch_max = 4096`, ...). Flags and
    /// environment variables take precedence over it.
    #[arg(long, env = "LEDGER_CONFIG")]
    pub config: Option<PathBuf>,

    /// Directory of the ledger (created if missing): the event log and its
    /// snapshots.
    #[arg(long, env = "LEDGER_DATA_DIR", required = true)]
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

    /// Snapshot the writer's state and the read models every this many
    /// events (0: only at shutdown), so a restart replays only the log's
    /// tail. Snapshots live in `<data-dir>/snapshots`; any that does not
    /// match the log is ignored. Periodic writer snapshots come from a
    /// second copy of the writer's state kept on its own thread (memory for
    /// speed: the writer never pauses for them).
    #[arg(long, env = "LEDGER_SNAPSHOT_EVERY", default_value_t = 1_000_000)]
    pub snapshot_every: u64,

    /// How long a command id is remembered for idempotent retries, in
    /// seconds.
    #[arg(long, env = "LEDGER_IDEMPOTENCY_SECONDS", default_value_t = 7 * 86_400)]
    pub idempotency_seconds: u64,

    /// Seconds between scheduled expiry runs (0: no scheduler).
    #[arg(long, env = "LEDGER_EXPIRY_INTERVAL_SECONDS", default_value_t = 3_600)]
    pub expiry_interval_seconds: u64,

    /// Seconds between reconciliations of the read models against the
    /// writer's state (0: never). Differences are logged and exported as
    /// the `ledger_reconciliation_differences` metric.
    #[arg(long, env = "LEDGER_RECONCILE_INTERVAL_SECONDS", default_value_t = 60)]
    pub reconcile_interval_seconds: u64,

    /// How many events the read models may trail the log's head while
    /// `/readyz` still reports ready. Under load they always trail by the
    /// batch being applied; requiring zero would make readiness flap. A
    /// follower that stopped falls behind without bound and turns it off.
    #[arg(long, env = "LEDGER_READY_MAX_LAG_EVENTS", default_value_t = 10_000)]
    pub ready_max_lag_events: u64,

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

#[derive(Debug, thiserror::Error)]
pub enum ConfigFileError {
    // The source is the error's cause, which the binary prints after it.
    #[error("cannot read the configuration file {}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the configuration file {} is not valid TOML", path.display())]
    Syntax {
        path: PathBuf,
        source: Box<toml::de::Error>,
    },
    #[error("{}: unknown setting `{key}`; the settings are the long flags of --help, with underscores", path.display())]
    UnknownKey { path: PathBuf, key: String },
    #[error("{}: `{key}` must be a string, a number or a boolean", path.display())]
    BadValue { path: PathBuf, key: String },
}

impl Config {
    /// Parses the command line, with the settings of the configuration
    /// file (if any) underneath flags and environment variables.
    pub fn load() -> Result<Config, ConfigFileError> {
        let arguments: Vec<std::ffi::OsString> = std::env::args_os().collect();
        let file = config_path(&arguments);
        let Some(path) = file else {
            return Ok(Config::parse_from(arguments));
        };
        let from_file = file_arguments(&path)?;
        let mut combined = Vec::with_capacity(arguments.len() + from_file.len());
        combined.extend(arguments.first().cloned());
        combined.extend(from_file.into_iter().map(std::ffi::OsString::from));
        combined.extend(arguments.into_iter().skip(1));
        Ok(Config::parse_from(combined))
    }
}

/// `--config PATH` / `--config=PATH`, else `LEDGER_CONFIG`.
fn config_path(arguments: &[std::ffi::OsString]) -> Option<PathBuf> {
    let mut iterator = arguments.iter().skip(1);
    while let Some(argument) = iterator.next() {
        let text = argument.to_string_lossy();
        if text == "--config" {
            return iterator.next().map(PathBuf::from);
        }
        if let Some(path) = text.strip_prefix("--config=") {
            return Some(PathBuf::from(path));
        }
    }
    std::env::var_os("LEDGER_CONFIG").map(PathBuf::from)
}

/// The file's settings as flags, leaving out those an environment variable
/// sets (the environment takes precedence).
fn file_arguments(path: &std::path::Path) -> Result<Vec<String>, ConfigFileError> {
    use clap::CommandFactory;
    let text = std::fs::read_to_string(path).map_err(|source| ConfigFileError::Read {
        path: path.to_owned(),
        source,
    })?;
    let table: toml::Table = text.parse().map_err(|source| ConfigFileError::Syntax {
        path: path.to_owned(),
        source: Box::new(source),
    })?;
    let command = Config::command();
    let mut flags = Vec::new();
    for (key, value) in table {
        let long = key.replace('_', "-");
        let known = command
            .get_arguments()
            .find(|argument| argument.get_long() == Some(long.as_str()) && long != "config");
        let Some(argument) = known else {
            return Err(ConfigFileError::UnknownKey {
                path: path.to_owned(),
                key,
            });
        };
        if argument
            .get_env()
            .is_some_and(|variable| std::env::var_os(variable).is_some())
        {
            continue;
        }
        let value = match value {
            toml::Value::String(text) => text,
            toml::Value::Integer(number) => number.to_string(),
            toml::Value::Boolean(flag) => flag.to_string(),
            _ => {
                return Err(ConfigFileError::BadValue {
                    path: path.to_owned(),
                    key,
                });
            }
        };
        flags.push(format!("--{long}={value}"));
    }
    Ok(flags)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(contents: &str) -> tempfile::NamedTempFile {
        let file = tempfile::NamedTempFile::new().expect("temporary file");
        std::fs::write(file.path(), contents).expect("written");
        file
    }

    #[test]
    fn file_settings_apply_under_flags() {
        let settings =
            file("data_dir = \"/srv/ledger\"\nbatch_max = 512\nlisten = \"0.0.0.0:9000\"\n");
        let mut arguments = vec!["ledger-server".to_owned()];
        arguments.extend(file_arguments(settings.path()).expect("valid file"));
        arguments.extend(["--batch-max".to_owned(), "7".to_owned()]);
        let config = Config::try_parse_from(arguments).expect("parses");
        assert_eq!(config.data_dir, PathBuf::from("/srv/ledger"));
        assert_eq!(config.listen.port(), 9000);
        assert_eq!(config.batch_max, 7, "the flag wins over the file");
    }

    #[test]
    fn unknown_settings_and_bad_values_are_named() {
        let unknown = file("batch_size = 5\n");
        assert!(matches!(
            file_arguments(unknown.path()),
            Err(ConfigFileError::UnknownKey { key, .. }) if key == "batch_size"
        ));
        let nested = file("[listen]\nport = 1\n");
        assert!(matches!(
            file_arguments(nested.path()),
            Err(ConfigFileError::BadValue { key, .. }) if key == "listen"
        ));
        let broken = file("data_dir = \n");
        assert!(matches!(
            file_arguments(broken.path()),
            Err(ConfigFileError::Syntax { .. })
        ));
    }
}
