//! Helpers for the cross-crate test suite (`tests/suite`): a reference
//! model of the ledger and a simulation that drives the real domain and the
//! model side by side.

pub mod fixture_ledger;
pub mod model;
pub mod schemas;
pub mod server;
pub mod simulation;
