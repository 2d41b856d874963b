//! # ledger-core
//!
//! The heart of the points ledger: the pure domain (`decide` a command
//! against the state, `apply` an event to it), and, around it, the durable
//! event log and the single-writer engine.
//!
//! Architecture invariant: [`domain`] is pure and deterministic — no I/O, no
//! clock, no randomness — so the same events always rebuild the same state,
//! live and in replay.

pub mod domain;
pub mod engine;
pub mod store;
