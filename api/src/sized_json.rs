//! JSON answers written into a buffer sized up front. axum's `Json` starts
//! at 128 bytes and doubles: a batch answer of a thousand commands (about
//! a megabyte and a half) went through fourteen reallocations, each copying
//! what was written and touching fresh pages, which was half the cost of
//! serialising it.

use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::answers::Accepted;
use crate::error::ApiError;

/// Room for one event envelope in JSON (the mixed load's average is 776
/// bytes) and for what an answer puts around each.
const ENVELOPE_BYTES_TYPICAL: usize = 1024;
pub const RESULT_BYTES_TYPICAL: usize = 256;

/// Room for an accepted command's answer, alone or within a batch.
pub fn accepted_bytes(accepted: &Accepted) -> usize {
    RESULT_BYTES_TYPICAL + ENVELOPE_BYTES_TYPICAL * accepted.events.len()
}

/// `value` as `application/json`, written into `capacity` bytes reserved
/// at once (more are grown as usual).
#[derive(Debug)]
pub struct SizedJson<T> {
    pub value: T,
    pub capacity: usize,
}

impl<T: Serialize> IntoResponse for SizedJson<T> {
    fn into_response(self) -> Response {
        let mut body = Vec::with_capacity(self.capacity);
        match serde_json::to_writer(&mut body, &self.value) {
            Ok(()) => (
                [(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/json"),
                )],
                body,
            )
                .into_response(),
            Err(error) => {
                tracing::error!(%error, "an answer did not serialise");
                ApiError::new("internal_error", error.to_string()).into_response()
            }
        }
    }
}
