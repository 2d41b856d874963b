//! The one integration-test binary of the workspace. Modules by subject.

mod domain_properties;
mod engine;
mod envelope_layout;
mod event_log;
mod http_api;
mod read_models;
mod replay;
mod snapshot_layout;
mod tidy;
