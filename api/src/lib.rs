//! # api
//!
//! The only crate that knows HTTP: the axum router for the v1 contract
//! (`shared/API.md`), authentication and roles, problem+json errors, and the
//! `ledger-server` binary that wires configuration, storage and shutdown.
//!
//! Status: the server arrives with the HTTP API issue; until then this crate
//! only reserves its place in the workspace.
