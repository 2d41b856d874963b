//! # schemas
//!
//! Versioned JSON Schemas (2020-12) of every event, command and the event
//! envelope, generated from the `ledger-core` types, committed under
//! `schemas/`, and checked for drift in CI.
//!
//! Status: arrives with the schemas issue; until then this crate only
//! reserves its place in the workspace.
