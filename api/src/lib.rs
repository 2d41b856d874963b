//! # api
//!
//! The only crate that knows HTTP: the axum router for the v1 contract
//! (`shared/API.md`), authentication and roles, problem+json errors,
//! metrics, and the `ledger-server` binary that wires configuration,
//! storage and shutdown. Handlers stay thin: decode, build a command or
//! read a model, submit, map the outcome; the rules live in `ledger-core`.

pub mod answers;
pub mod auth;
pub mod cli;
pub mod config;
pub mod error;
pub mod extract;
pub mod observe;
pub mod openapi;
pub mod reconciliation;
pub mod routes;
pub mod server;
pub mod sized_json;
pub mod submit;
