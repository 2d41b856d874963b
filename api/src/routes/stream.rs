//! `GET /v1/events/stream`: the log as Server-Sent Events, live. Each SSE
//! id is the event's position, so a reconnecting client's `Last-Event-ID`
//! resumes exactly after the last event it saw.

use std::collections::VecDeque;
use std::convert::Infallible;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use futures_util::Stream;
use ledger_core::domain::command::Role;
use ledger_core::store::{EventLog, Head, Position, Record};
use serde::Deserialize;
use tokio::sync::watch;

use crate::auth::{Authenticated, require_role};
use crate::error::ApiError;
use crate::extract::ApiQuery;
use crate::routes::queries::{read_log, record_json};
use crate::server::AppState;

const READ_CHUNK_RECORDS: usize = 1_000;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StreamQuery {
    #[serde(default)]
    pub after: Option<Position>,
}

struct Cursor {
    state: AppState,
    after: Position,
    pending: VecDeque<Record>,
    head: watch::Receiver<Head>,
    shutdown: watch::Receiver<bool>,
}

pub async fn events_stream(
    State(state): State<AppState>,
    Authenticated(actor): Authenticated,
    headers: HeaderMap,
    ApiQuery(query): ApiQuery<StreamQuery>,
) -> Result<Sse<impl Stream<Item = Result<SseEvent, Infallible>>>, ApiError> {
    require_role(&actor, &[Role::Admin, Role::Auditor])?;
    let resume = match headers.get("last-event-id") {
        Some(value) => Some(
            value
                .to_str()
                .ok()
                .and_then(|text| text.trim().parse::<Position>().ok())
                .ok_or_else(|| {
                    ApiError::validation("Last-Event-ID", "must be an event position")
                })?,
        ),
        None => None,
    };
    let cursor = Cursor {
        after: resume.or(query.after).unwrap_or(0),
        head: state.log.subscribe(),
        shutdown: state.shutdown.clone(),
        pending: VecDeque::new(),
        state,
    };
    let stream = futures_util::stream::unfold(cursor, next_event);
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}

/// The next event after the cursor, waiting for the log to grow; `None`
/// ends the stream (server shutting down, or the log unreadable).
async fn next_event(mut cursor: Cursor) -> Option<(Result<SseEvent, Infallible>, Cursor)> {
    loop {
        if let Some(record) = cursor.pending.pop_front() {
            cursor.after = record.position;
            let event = match record_json(&record) {
                Ok(envelope) => SseEvent::default()
                    .id(record.position.to_string())
                    .data(envelope.to_string()),
                Err(error) => {
                    tracing::error!(position = record.position, detail = %error.detail, "cannot stream an event");
                    return None;
                }
            };
            return Some((Ok(event), cursor));
        }
        // Mark the head seen before reading, so an append after the read
        // still wakes the wait below.
        cursor.head.borrow_and_update();
        match read_log(&cursor.state, cursor.after, READ_CHUNK_RECORDS).await {
            Ok(records) if !records.is_empty() => {
                cursor.pending.extend(records);
                continue;
            }
            Ok(_) => {}
            Err(error) => {
                tracing::warn!(detail = %error.detail, "the event stream stopped");
                return None;
            }
        }
        tokio::select! {
            changed = cursor.head.changed() => {
                if changed.is_err() {
                    return None;
                }
            }
            _ = cursor.shutdown.changed() => return None,
        }
    }
}
