//! Request input: JSON bodies (bounded in size, every field checked) and
//! query strings. Every problem is a `400 validation_error` naming the
//! field, and nothing malformed gets as far as the engine.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Query, Request};
use axum::http::header;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};
use uuid::Uuid;

use crate::error::ApiError;

/// A command body decoded into `T`, and the optional `command_id` field
/// every command body may carry as its idempotency key. An empty body
/// reads as `{}`, for commands whose fields are all optional.
#[derive(Debug)]
pub struct CommandBody<T> {
    pub command_id: Option<Uuid>,
    pub body: T,
}

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for CommandBody<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        let mut object = read_json_object(request, state).await?;
        let command_id = command_id_field(object.remove("command_id"), "command_id")?;
        let body = decode_value(Value::Object(object), "")?;
        Ok(CommandBody { command_id, body })
    }
}

/// An optional `command_id` field: absent, null, or a UUID string.
pub fn command_id_field(value: Option<Value>, field: &str) -> Result<Option<Uuid>, ApiError> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text)) => Uuid::parse_str(&text)
            .map(Some)
            .map_err(|error| ApiError::validation(field, format!("not a UUID: {error}"))),
        Some(_) => Err(ApiError::validation(field, "must be a UUID string")),
    }
}

/// Reads the body as one JSON object. The body-limit layer stops an
/// oversize body while it streams in, before it is held whole.
pub async fn read_json_object<S: Send + Sync>(
    request: Request,
    state: &S,
) -> Result<Map<String, Value>, ApiError> {
    let content_type = request
        .headers()
        .get(header::CONTENT_TYPE)
        .map(|value| value.to_str().unwrap_or("").to_owned());
    let bytes = Bytes::from_request(request, state)
        .await
        .map_err(|rejection| {
            let status = rejection.status();
            if status == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::validation("body", "the body is larger than the server's limit")
            } else {
                ApiError::validation("body", format!("the body could not be read: {rejection}"))
            }
        })?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(Map::new());
    }
    let is_json = content_type.as_deref().is_some_and(|value| {
        value
            .split(';')
            .next()
            .is_some_and(|media_type| media_type.trim().eq_ignore_ascii_case("application/json"))
    });
    if !is_json {
        return Err(ApiError::validation(
            "content-type",
            "the body must be JSON, sent with `Content-Type: application/json`",
        ));
    }
    match serde_json::from_slice::<Value>(&bytes) {
        Ok(Value::Object(object)) => Ok(object),
        Ok(_) => Err(ApiError::validation(
            "body",
            "the body must be a JSON object",
        )),
        Err(error) => Err(ApiError::validation(
            "body",
            format!("not valid JSON: {error}"),
        )),
    }
}

/// Decodes `value` into `T`; an error names the field's path, prefixed
/// with `prefix` (for items inside a larger body).
pub fn decode_value<T: DeserializeOwned>(value: Value, prefix: &str) -> Result<T, ApiError> {
    serde_path_to_error::deserialize(value).map_err(|error| {
        let path = error.path().to_string();
        let field = match (prefix.is_empty(), path == ".") {
            (true, true) => "body".to_owned(),
            (true, false) => path,
            (false, true) => prefix.to_owned(),
            (false, false) => format!("{prefix}.{path}"),
        };
        ApiError::validation(field, error.into_inner().to_string())
    })
}

/// Query-string parameters decoded into `T`.
#[derive(Debug)]
pub struct ApiQuery<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        Query::<T>::try_from_uri(&parts.uri)
            .map(|Query(value)| ApiQuery(value))
            .map_err(|rejection| ApiError::validation("query", rejection.body_text()))
    }
}
