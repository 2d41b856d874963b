//! Request input: JSON bodies (bounded in size, every field checked) and
//! query strings. Every problem is a `400 validation_error` naming the
//! field, and nothing malformed gets as far as the engine.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::header;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;
use serde_json::Value;
use uuid::Uuid;

use crate::error::ApiError;

mod set_aside;

use set_aside::SetAside;
pub use set_aside::{Aside, COMMAND_ID};

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
        decode_command_body(&read_json_body(request, state).await?)
    }
}

// Bodies are decoded without tracking where the decoder is, and only one
// that fails is decoded again through `serde_path_to_error` to name the
// field: tracking the path of every field of every command, for errors
// that are rare, cost `/v1/batch` 5–9% of its commands a second.

/// A command body from its JSON bytes: one pass, straight into `T`.
fn decode_command_body<T: DeserializeOwned>(bytes: &[u8]) -> Result<CommandBody<T>, ApiError> {
    let mut aside = [(COMMAND_ID, None)];
    let mut json = serde_json::Deserializer::from_slice(bytes);
    let body = T::deserialize(SetAside {
        object: &mut json,
        aside: &mut aside,
    })
    .map_err(|error| command_body_error::<T>(bytes, error))?;
    json.end().map_err(|error| not_json(&error))?;
    let [(_, command_id)] = aside;
    let command_id = command_id_field(command_id, COMMAND_ID)?;
    Ok(CommandBody { command_id, body })
}

/// Why `bytes` did not decode into `T` (as `error` says), naming the field.
fn command_body_error<T: DeserializeOwned>(bytes: &[u8], error: serde_json::Error) -> ApiError {
    let mut aside = [(COMMAND_ID, None)];
    let mut json = serde_json::Deserializer::from_slice(bytes);
    let (path, error) = locate::<T, _>(&mut json, &mut aside, error);
    if error.is_data() {
        field_error(&path, "", &error)
    } else {
        not_json(&error)
    }
}

/// Decodes `T` from `json` again, tracking the path, for where it fails:
/// the path (`.` for the whole value) and the error there (`error`, the
/// first decoding's, should the second not fail).
fn locate<'de, T: serde::Deserialize<'de>, R: serde_json::de::Read<'de>>(
    json: &mut serde_json::Deserializer<R>,
    aside: &mut Aside<'_>,
    error: serde_json::Error,
) -> (String, serde_json::Error) {
    match serde_path_to_error::deserialize::<_, T>(SetAside {
        object: json,
        aside,
    }) {
        Err(located) => (located.path().to_string(), located.into_inner()),
        Ok(_) => (".".to_owned(), error),
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

fn not_json(error: &serde_json::Error) -> ApiError {
    ApiError::validation("body", format!("not valid JSON: {error}"))
}

/// Why `bytes` are no JSON object (for a body that did not decode as one).
pub fn not_an_object(bytes: &[u8]) -> ApiError {
    match serde_json::from_slice::<Value>(bytes) {
        Ok(Value::Object(_)) => {
            ApiError::validation("body", "the body could not be read as a JSON object")
        }
        Ok(_) => ApiError::validation("body", "the body must be a JSON object"),
        Err(error) => not_json(&error),
    }
}

/// The body's bytes, once they are known to be sent as JSON; an empty
/// body reads as `{}`. The body-limit layer stops an oversize body while
/// it streams in, before it is held whole.
pub async fn read_json_body<S: Send + Sync>(
    request: Request,
    state: &S,
) -> Result<Bytes, ApiError> {
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
        return Ok(Bytes::from_static(b"{}"));
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
    Ok(bytes)
}

/// Decodes the JSON object `object` into `T`, the fields named in `aside`
/// set aside; an error names the field's path, prefixed with `prefix` (for
/// items inside a larger body). `object` must be one JSON value (a raw
/// value taken out of a body that parsed).
pub fn decode_fields<T: DeserializeOwned>(
    object: &str,
    prefix: &str,
    aside: &mut Aside<'_>,
) -> Result<T, ApiError> {
    let mut json = serde_json::Deserializer::from_str(object);
    T::deserialize(SetAside {
        object: &mut json,
        aside: &mut *aside,
    })
    .map_err(|error| {
        let mut json = serde_json::Deserializer::from_str(object);
        let (path, error) = locate::<T, _>(&mut json, aside, error);
        field_error(&path, prefix, &error)
    })
}

/// A decoding error at `path` (`.` for the whole value) inside the item
/// named `prefix` (empty for the body itself).
fn field_error(path: &str, prefix: &str, error: &impl std::fmt::Display) -> ApiError {
    let field = match (prefix.is_empty(), path == ".") {
        (true, true) => "body".to_owned(),
        (true, false) => path.to_owned(),
        (false, true) => prefix.to_owned(),
        (false, false) => format!("{prefix}.{path}"),
    };
    ApiError::validation(field, error.to_string())
}

/// Query-string parameters decoded into `T`; an error names the
/// parameter (an unknown one too), or `query` when no one parameter is at
/// fault.
#[derive(Debug)]
pub struct ApiQuery<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        decode_query(parts.uri.query().unwrap_or_default()).map(ApiQuery)
    }
}

fn decode_query<T: DeserializeOwned>(query: &str) -> Result<T, ApiError> {
    let parameters = serde_urlencoded::Deserializer::new(form_urlencoded::parse(query.as_bytes()));
    serde_path_to_error::deserialize(parameters).map_err(|error| {
        let parameter = error.path().to_string();
        let field = if parameter == "." {
            "query".to_owned()
        } else {
            parameter
        };
        ApiError::validation(field, format!("query string: {}", error.inner()))
    })
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    use super::*;

    #[derive(Debug, PartialEq, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Earn {
        account: String,
        points: u64,
        #[serde(default)]
        note: Option<Value>,
    }

    fn decode(body: &str) -> Result<CommandBody<Earn>, ApiError> {
        decode_command_body(body.as_bytes())
    }

    #[derive(Debug, PartialEq, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Paging {
        #[serde(default)]
        after: u64,
        limit: Option<usize>,
    }

    #[test]
    fn every_malformed_query_names_its_parameter() {
        assert_eq!(
            decode_query::<Paging>("after=7&limit=3").ok(),
            Some(Paging {
                after: 7,
                limit: Some(3)
            })
        );
        assert_eq!(
            decode_query::<Paging>("").ok(),
            Some(Paging {
                after: 0,
                limit: None
            })
        );
        for (query, parameter) in [
            ("after=abc", "after"),
            ("after=-1", "after"),
            ("after=1&limit=many", "limit"),
            ("after=1&colour=red", "colour"),
        ] {
            let error = decode_query::<Paging>(query).expect_err(query);
            assert_eq!(error.code, "validation_error", "{query}");
            assert_eq!(error.field.as_deref(), Some(parameter), "{query}");
            assert!(
                error.detail.starts_with("query string: "),
                "{query}: {}",
                error.detail
            );
        }
    }

    fn refused_field(body: &str) -> String {
        let error = decode(body).expect_err(body);
        assert_eq!(error.code, "validation_error", "{body}");
        error.field.unwrap_or_default()
    }

    const ID: &str = "6f1c2f5e-2a53-4d1e-9a0e-3c4b5d6e7f80";

    #[test]
    fn the_command_id_is_taken_out_wherever_it_stands() {
        let earn = Earn {
            account: "alice".to_owned(),
            points: 5,
            note: None,
        };
        for body in [
            format!(r#"{{"command_id":"{ID}","account":"alice","points":5}}"#),
            format!(r#"{{"account":"alice","command_id":"{ID}","points":5}}"#),
            format!(r#"{{"account":"alice","points":5,"command_id":"{ID}"}}"#),
            format!(r#"{{"account":"alice","points":5,"comm\u0061nd_id":"{ID}"}}"#),
        ] {
            let decoded = decode(&body).expect(&body);
            assert_eq!(
                decoded.command_id,
                Some(Uuid::parse_str(ID).expect("valid"))
            );
            assert_eq!(decoded.body, earn, "{body}");
        }
        for body in [
            r#"{"account":"alice","points":5}"#,
            r#"{"account":"alice","points":5,"command_id":null}"#,
        ] {
            assert_eq!(decode(body).expect(body).command_id, None);
        }
    }

    #[test]
    fn only_the_top_level_command_id_is_taken() {
        let decoded =
            decode(r#"{"account":"a","points":1,"note":{"command_id":"x"}}"#).expect("decodes");
        assert_eq!(decoded.command_id, None);
        assert_eq!(
            decoded.body.note,
            Some(serde_json::json!({"command_id": "x"}))
        );
    }

    #[test]
    fn every_malformed_body_names_its_field() {
        for (body, field) in [
            (r#"{"account":"a","points":1,"bonus":5}"#, "bonus"),
            (r#"{"account":"a","points":"ten"}"#, "points"),
            (r#"{"account":"a","points":-1}"#, "points"),
            (r#"{"points":1}"#, "body"),
            (r#"{"account":"a","points":1,"command_id":5}"#, "command_id"),
            (
                r#"{"account":"a","points":1,"command_id":"x"}"#,
                "command_id",
            ),
            (r#"["a",1]"#, "body"),
            (r#"{"account":"#, "body"),
            (r#"{"account":"a","points":1} trailing"#, "body"),
        ] {
            assert_eq!(refused_field(body), field, "{body}");
        }
        let error = decode(r#"{"account":"#).expect_err("bad JSON");
        assert!(
            error.detail.starts_with("not valid JSON"),
            "{}",
            error.detail
        );
    }
}
