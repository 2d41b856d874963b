//! # replay-tool
//!
//! `ledger-replay`, the auditor's tool: opens a log read-only, verifies every
//! checksum, the hash chain and every invariant after every event by
//! re-applying through `ledger-core`, rebuilds the projections, and exports
//! or diffs them. It trusts nothing but the log's bytes.
//!
//! Status: arrives with the replay-tool issue; until then this crate only
//! reserves its place in the workspace.
