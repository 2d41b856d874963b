//! The v1 routes. Handlers translate: extract, authenticate, build a
//! command (or read a model), submit, map the outcome. No business rules.

pub mod batch;
pub mod commands;
pub mod queries;
mod stream;

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{delete, get, post, put};
use ledger_core::engine::EngineStatus;
use serde_json::json;

use crate::server::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/v1/program", put(commands::configure_program))
        .route(
            "/v1/merchants",
            post(commands::submit_body::<commands::MerchantApplication>).get(queries::merchants),
        )
        .route("/v1/merchants/{id}", get(queries::merchant))
        .route(
            "/v1/merchants/{id}/{action}",
            post(commands::review_merchant),
        )
        .route(
            "/v1/merchants/{id}/deposits",
            post(commands::record_deposit),
        )
        .route(
            "/v1/api-keys",
            post(commands::create_api_key).get(queries::api_keys),
        )
        .route("/v1/api-keys/{key_id}", delete(commands::revoke_api_key))
        .route(
            "/v1/issuances",
            post(commands::submit_body::<commands::Issuance>),
        )
        .route(
            "/v1/redemptions",
            post(commands::submit_body::<commands::Redemption>),
        )
        .route(
            "/v1/transfers",
            post(commands::submit_body::<commands::Transfer>),
        )
        .route("/v1/holds", post(commands::submit_body::<commands::Hold>))
        .route("/v1/holds/{id}/capture", post(commands::capture_hold))
        .route("/v1/holds/{id}/release", post(commands::release_hold))
        .route("/v1/reversals", post(commands::reverse))
        .route("/v1/expiry-runs", post(commands::run_expiry))
        .route("/v1/accounts/{id}", get(queries::account))
        .route("/v1/accounts/{id}/history", get(queries::account_history))
        .route("/v1/supply", get(queries::supply))
        .route("/v1/settlements", get(queries::settlements))
        .route("/v1/risk-alerts", get(queries::risk_alerts))
        .route("/v1/events", get(queries::events))
        .route("/v1/events/stream", get(stream::events_stream))
        .route("/v1/batch", post(batch::batch))
        .route("/metrics", get(crate::observe::metrics_endpoint))
        .route("/openapi.json", get(openapi))
        .fallback(|| async { crate::error::ApiError::not_found("no such route") })
        .method_not_allowed_fallback(|| async {
            crate::error::ApiError::new(
                "method_not_allowed",
                "this route does not take that method (the Allow header lists those it takes)",
            )
        })
}

/// The OpenAPI document, built once.
async fn openapi() -> impl IntoResponse {
    static DOCUMENT: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        DOCUMENT.get_or_init(crate::openapi::document_json).as_str(),
    )
}

/// The process is up.
/// Ready: the writer takes commands and the read models are within
/// `max_lag` events of the head.
fn readiness(status: EngineStatus, head: u64, applied: u64, max_lag: u64) -> (bool, String) {
    match status {
        EngineStatus::Running { .. } => (
            head.saturating_sub(applied) <= max_lag,
            "running".to_owned(),
        ),
        EngineStatus::Stopped { reason } => (false, format!("stopped: {reason}")),
    }
}

async fn healthz() -> impl IntoResponse {
    Json(json!({"status": "ok"}))
}

/// The log is open, the writer running and the read models caught up.
async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    let head = ledger_core::store::EventLog::head(state.log.as_ref()).position;
    let applied = state.projections.position();
    let (ready, writer) = readiness(
        state.engine.status(),
        head,
        applied,
        state.config.ready_max_lag_events,
    );
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        Json(crate::answers::Readiness {
            ready,
            writer,
            head_position: head,
            projections_position: applied,
        }),
    )
}

#[cfg(test)]
mod tests {
    use ledger_core::store::Head;

    use super::*;

    fn running() -> EngineStatus {
        EngineStatus::Running {
            head: Head {
                position: 0,
                hash: [0; 32],
            },
        }
    }

    #[test]
    fn ready_while_the_read_models_keep_up_and_the_writer_runs() {
        assert_eq!(readiness(running(), 500, 500, 0), (true, "running".into()));
        assert!(
            readiness(running(), 500, 400, 100).0,
            "100 behind, 100 allowed"
        );
        assert!(
            !readiness(running(), 500, 399, 100).0,
            "101 behind, 100 allowed"
        );
        let stopped = EngineStatus::Stopped {
            reason: "disk full".into(),
        };
        assert_eq!(
            readiness(stopped, 500, 500, 100),
            (false, "stopped: disk full".into())
        );
    }
}
