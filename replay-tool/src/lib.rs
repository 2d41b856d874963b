//! # replay-tool
//!
//! `ledger-replay`, the auditor's tool: opens a log read-only (beside a
//! running server), verifies every checksum, the hash chain and every
//! invariant after every event by re-applying through `ledger-core`,
//! rebuilds the read models, and exports, reports or diffs them against a
//! live server. **Architecture invariant: it trusts nothing but the log's
//! bytes, and never writes to the data directory.** Every subcommand runs
//! the full verification as it reads.

pub mod cli;
pub mod command_runs;
pub mod diff;
pub mod error;
pub mod export;
pub mod rebuild;
pub mod report;
pub mod report_text;
pub mod risk_alerts;
pub mod source;
pub mod verify;

pub use error::ReplayError;
pub use source::{AsOf, LogSource};
