//! The single table from outcome to HTTP status, and the problem+json
//! body every error is answered with: `{"type", "title", "status",
//! "detail", "code"}` plus, for validation errors, the `field`.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use ledger_core::domain::Rejection;
use serde::Serialize;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub detail: String,
    pub field: Option<String>,
}

/// An error answer (RFC 9457 problem details) with a stable `code`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Problem {
    /// A URI naming the problem type.
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
    /// The stable code clients branch on (`validation_error`,
    /// `insufficient_points`, ...).
    pub code: String,
    /// For validation errors: the offending field's path.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

/// HTTP status of each stable code. Business refusals that are not input
/// errors are 409 (conflict with the ledger's state).
pub fn status_of(code: &str) -> StatusCode {
    match code {
        "validation_error" => StatusCode::BAD_REQUEST,
        "unauthorized" => StatusCode::UNAUTHORIZED,
        "forbidden" => StatusCode::FORBIDDEN,
        "not_found" => StatusCode::NOT_FOUND,
        "method_not_allowed" => StatusCode::METHOD_NOT_ALLOWED,
        "idempotency_key_reused" => StatusCode::UNPROCESSABLE_ENTITY,
        "risk_limit_exceeded" => StatusCode::TOO_MANY_REQUESTS,
        "unavailable" | "not_caught_up" => StatusCode::SERVICE_UNAVAILABLE,
        "internal_error" => StatusCode::INTERNAL_SERVER_ERROR,
        _ => StatusCode::CONFLICT,
    }
}

fn title_of(status: StatusCode) -> &'static str {
    status.canonical_reason().unwrap_or("Error")
}

impl ApiError {
    pub fn new(code: &'static str, detail: impl Into<String>) -> ApiError {
        ApiError {
            status: status_of(code),
            code,
            detail: detail.into(),
            field: None,
        }
    }

    pub fn validation(field: impl Into<String>, detail: impl Into<String>) -> ApiError {
        ApiError {
            field: Some(field.into()),
            ..ApiError::new("validation_error", detail)
        }
    }

    pub fn unauthorized() -> ApiError {
        ApiError::new(
            "unauthorized",
            "send an API key as `Authorization: Bearer KEY`",
        )
    }

    pub fn forbidden(detail: impl Into<String>) -> ApiError {
        ApiError::new("forbidden", detail)
    }

    pub fn not_found(detail: impl Into<String>) -> ApiError {
        ApiError::new("not_found", detail)
    }

    pub fn unavailable(detail: impl Into<String>) -> ApiError {
        ApiError::new("unavailable", detail)
    }
}

impl From<Rejection> for ApiError {
    fn from(rejection: Rejection) -> ApiError {
        let field = match &rejection {
            Rejection::ValidationError { field, .. } => Some(field.clone()),
            _ => None,
        };
        ApiError {
            status: status_of(rejection.code()),
            code: rejection.code(),
            detail: rejection.to_string(),
            field,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let problem = Problem {
            kind: format!("https://points-ledger.dev/problems/{}", self.code),
            title: title_of(self.status).to_owned(),
            status: self.status.as_u16(),
            detail: self.detail,
            code: self.code.to_owned(),
            field: self.field,
        };
        let mut response = (self.status, Json(problem)).into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_in_the_contract_has_its_status() {
        let table = [
            ("validation_error", 400),
            ("unauthorized", 401),
            ("forbidden", 403),
            ("not_found", 404),
            ("method_not_allowed", 405),
            ("insufficient_points", 409),
            ("supply_cap_exceeded", 409),
            ("release_budget_exceeded", 409),
            ("merchant_not_active", 409),
            ("merchant_funding_insufficient", 409),
            ("duplicate_order", 409),
            ("idempotency_key_reused", 422),
            ("risk_limit_exceeded", 429),
            ("unavailable", 503),
        ];
        for (code, status) in table {
            assert_eq!(status_of(code).as_u16(), status, "{code}");
        }
    }
}
