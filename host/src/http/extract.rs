//! Extractors whose rejections are our envelope: a malformed body, a wrong type, a missing field,
//! an unknown enum value, a bad id in the path or a bad query parameter all answer `VAL_001`
//! with a message for the offending field — never axum's plain-text rejection, never a 500.

use axum::{
    body::Bytes,
    extract::{FromRequest, FromRequestParts, Path, Request, rejection::PathRejection},
    http::{StatusCode, request::Parts},
};
use serde::de::DeserializeOwned;

use crate::error::{ApiError, ErrorCode, FieldErrors};

/// A JSON body. An empty body is read as `{}`, so a request without one gets "field is
/// required" messages rather than a syntax error.
pub struct ApiJson<T>(pub T);

impl<T, S> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = Bytes::from_request(req, state).await.map_err(|rejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::new(ErrorCode::PayloadTooLarge)
            } else {
                ApiError::invalid_field("body", rejection.body_text())
            }
        })?;
        let bytes: &[u8] = if bytes.iter().all(u8::is_ascii_whitespace) {
            b"{}"
        } else {
            &bytes
        };
        let deserializer = &mut serde_json::Deserializer::from_slice(bytes);
        serde_path_to_error::deserialize(deserializer)
            .map(ApiJson)
            .map_err(|err| json_error(&err))
    }
}

/// Turns a serde error (with the path to where it happened) into per-field messages.
fn json_error(err: &serde_path_to_error::Error<serde_json::Error>) -> ApiError {
    let inner = err.inner();
    if matches!(
        inner.classify(),
        serde_json::error::Category::Syntax | serde_json::error::Category::Eof
    ) {
        return ApiError::invalid_field(
            "body",
            format!("The body is not valid JSON: {}", describe(inner)),
        );
    }
    let path = err.path().to_string();
    field_error(if path == "." { "" } else { &path }, &describe(inner))
}

/// serde's message without its " at line L column C" suffix.
fn describe(err: &serde_json::Error) -> String {
    let text = err.to_string();
    let suffix = format!(" at line {} column {}", err.line(), err.column());
    text.strip_suffix(&suffix).unwrap_or(&text).to_owned()
}

/// `VAL_001` for a deserialization problem at `path` (empty = the top level).
fn field_error(path: &str, message: &str) -> ApiError {
    let join = |field: &str| {
        if path.is_empty() {
            field.to_owned()
        } else {
            format!("{path}.{field}")
        }
    };
    if let Some(field) = between(message, "missing field `", "`") {
        let field = join(field);
        let text = format!("The {field} field is required.");
        return ApiError::validation(FieldErrors::from([(field, vec![text])]));
    }
    if let Some(field) = between(message, "unknown field `", "`") {
        // The path already ends at the unknown key.
        let field = if path.rsplit('.').next() == Some(field) {
            path.to_owned()
        } else {
            join(field)
        };
        let text = format!("The {field} field is not allowed.");
        return ApiError::validation(FieldErrors::from([(field, vec![text])]));
    }
    let field = if path.is_empty() { "body" } else { path };
    ApiError::invalid_field(field, format!("The {field} field is invalid: {message}."))
}

fn between<'a>(text: &'a str, start: &str, end: &str) -> Option<&'a str> {
    let rest = text.split_once(start)?.1;
    Some(rest.split_once(end)?.0)
}

/// Path parameters; a value that does not parse (e.g. a bad UUID) is `VAL_001` on its name.
pub struct ApiPath<T>(pub T);

impl<T, S> FromRequestParts<S> for ApiPath<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match Path::<T>::from_request_parts(parts, state).await {
            Ok(Path(value)) => Ok(ApiPath(value)),
            Err(PathRejection::FailedToDeserializePathParams(err)) => {
                use axum::extract::path::ErrorKind;
                let (field, message) = match err.kind() {
                    ErrorKind::ParseErrorAtKey {
                        key, expected_type, ..
                    } => (
                        key.clone(),
                        format!("The {key} must be a valid {}.", short(expected_type)),
                    ),
                    ErrorKind::DeserializeError { key, message, .. }
                        if message.contains("UUID") =>
                    {
                        (key.clone(), format!("The {key} must be a valid UUID."))
                    }
                    ErrorKind::DeserializeError { key, message, .. } => {
                        (key.clone(), format!("The {key} is not valid: {message}."))
                    }
                    ErrorKind::InvalidUtf8InPathParam { key } => {
                        (key.clone(), format!("The {key} must be valid UTF-8."))
                    }
                    other => ("path".to_owned(), other.to_string()),
                };
                Err(ApiError::invalid_field(&field, message))
            }
            Err(other) => Err(ApiError::internal(anyhow::anyhow!(
                "path extraction: {other}"
            ))),
        }
    }
}

/// `uuid::Uuid` → `Uuid` for messages.
fn short(type_name: &str) -> &str {
    let last = type_name.rsplit("::").next().unwrap_or(type_name);
    if last.eq_ignore_ascii_case("uuid") {
        "UUID"
    } else {
        last
    }
}

/// Query parameters, with per-parameter messages on failure.
pub struct ApiQuery<T>(pub T);

impl<T, S> FromRequestParts<S> for ApiQuery<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let query = parts.uri.query().unwrap_or_default();
        let deserializer =
            serde_urlencoded::Deserializer::new(form_urlencoded::parse(query.as_bytes()));
        serde_path_to_error::deserialize(deserializer)
            .map(ApiQuery)
            .map_err(|err| {
                let path = err.path().to_string();
                field_error(
                    if path == "." { "" } else { &path },
                    &err.inner().to_string(),
                )
            })
    }
}
