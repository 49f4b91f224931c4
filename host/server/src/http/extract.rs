//! Extractors whose rejections are our envelope: a malformed body, a wrong type, a missing field,
//! an unknown enum value, a bad id in the path or a bad query parameter all answer `VAL_001`
//! with a message for the offending field — never axum's plain-text rejection, never a 500.

use axum::{
    body::Bytes,
    extract::{
        FromRequest, FromRequestParts, Path, Request, WebSocketUpgrade, rejection::PathRejection,
    },
    http::{StatusCode, request::Parts},
};
use serde::de::DeserializeOwned;
use serde_path_to_error::Segment;

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
        match serde_path_to_error::deserialize(deserializer) {
            Ok(value) => Ok(ApiJson(value)),
            Err(err) if is_syntax(err.inner()) => Err(json_error(&err)),
            // The slow path, only for bodies already refused: find every invalid field.
            Err(_) => match serde_json::from_slice(bytes) {
                Ok(body) => Err(every_field_error::<T>(body)),
                // Not one JSON value after all (e.g. `1 2`).
                Err(not_json) => Err(ApiError::invalid_field(
                    "body",
                    format!("The body is not valid JSON: {}", describe(&not_json)),
                )),
            },
        }
    }
}

fn is_syntax(err: &serde_json::Error) -> bool {
    matches!(
        err.classify(),
        serde_json::error::Category::Syntax | serde_json::error::Category::Eof
    )
}

/// serde stops at the first problem; a form that sent every field wants to hear about all of
/// them at once (`VAL_001`'s `errors` map). So: record the problem, patch the value where it
/// happened (drop an unknown key, put a stand-in of the expected type where a value is missing
/// or wrong) and try again, until the body deserializes or nothing more can be patched. The
/// patched value is never used; it only lets serde reach the next field.
fn every_field_error<T: DeserializeOwned>(mut body: serde_json::Value) -> ApiError {
    if !body.is_object() {
        return ApiError::invalid_field("body", "The body must be a JSON object.");
    }
    let mut errors = FieldErrors::new();
    // Each round fixes one spot; a body has far fewer fields than this.
    for _ in 0..64 {
        let err = match serde_path_to_error::deserialize::<_, T>(&body) {
            Ok(_) => break,
            Err(err) => err,
        };
        let segments: Vec<String> = err
            .path()
            .iter()
            .map(|segment| match segment {
                Segment::Seq { index } => index.to_string(),
                Segment::Map { key } => key.clone(),
                Segment::Enum { variant } => variant.clone(),
                Segment::Unknown => "?".to_owned(),
            })
            .collect();
        let message = describe(err.inner());
        // Named as serde_path_to_error prints paths (`pty_size.rows`, `dependencies[0]`).
        let path = err.path().to_string();
        let first = field_error(if path == "." { "" } else { &path }, &message);
        let Some(fields) = first.field_errors() else {
            break;
        };
        for (field, texts) in fields {
            errors.entry(field.clone()).or_insert_with(|| texts.clone());
        }
        if !patch(&mut body, &segments, &message) {
            break;
        }
    }
    if errors.is_empty() {
        errors.insert("body".to_owned(), vec!["The body is invalid.".to_owned()]);
    }
    ApiError::validation(errors)
}

/// Patches `body` at `segments` so that the problem `message` describes goes away; `false`
/// when it can't (the caller then stops looking).
fn patch(body: &mut serde_json::Value, segments: &[String], message: &str) -> bool {
    use serde_json::Value;
    if let Some(field) = between(message, "unknown field `", "`") {
        return remove_key(body, segments, field);
    }
    let Some(target) = segments
        .iter()
        .try_fold(&mut *body, |value, key| match value {
            Value::Object(map) => map.get_mut(key),
            Value::Array(items) => key.parse::<usize>().ok().and_then(|i| items.get_mut(i)),
            _ => None,
        })
    else {
        return false;
    };
    if let Some(field) = between(message, "missing field `", "`") {
        return match target {
            Value::Object(map) if !map.contains_key(field) => {
                map.insert(field.to_owned(), Value::Null);
                true
            }
            _ => false,
        };
    }
    match stand_in(message) {
        Some(value) if *target != value => {
            *target = value;
            true
        }
        // No stand-in for what serde wants: drop the value; a required field then comes back
        // as "missing", then as `null` of a type serde names.
        _ => match segments.split_last() {
            Some((last, _)) if !matches!(target, Value::Null) => remove_key(body, segments, last),
            _ => false,
        },
    }
}

/// Removes `key` from the object at `segments` (or at its parent, when the path already ends
/// at the key).
fn remove_key(body: &mut serde_json::Value, segments: &[String], key: &str) -> bool {
    let parent_path = match segments.split_last() {
        Some((last, parent)) if last == key => parent,
        _ => segments,
    };
    let mut value = body;
    for segment in parent_path {
        value = match value {
            serde_json::Value::Object(map) => match map.get_mut(segment) {
                Some(v) => v,
                None => return false,
            },
            serde_json::Value::Array(items) => {
                match segment.parse::<usize>().ok().and_then(|i| items.get_mut(i)) {
                    Some(v) => v,
                    None => return false,
                }
            }
            _ => return false,
        };
    }
    match value {
        serde_json::Value::Object(map) => map.remove(key).is_some(),
        _ => false,
    }
}

/// A value of the type serde said it expected (`…, expected a string`), to stand in for a
/// wrong one while looking for further problems.
fn stand_in(message: &str) -> Option<serde_json::Value> {
    use serde_json::{Value, json};
    let expected = message.rsplit_once("expected ")?.1;
    if let Some(variant) = between(expected, "`", "`") {
        return Some(Value::String(variant.to_owned()));
    }
    let e = expected.to_ascii_lowercase();
    Some(if e.contains("uuid") {
        json!("00000000-0000-0000-0000-000000000000")
    } else if e.contains("date") || e.contains("time") {
        json!("1970-01-01T00:00:00Z")
    } else if e.contains("bool") {
        json!(false)
    } else if e.contains("sequence") || e.contains("array") || e.contains("vec") {
        json!([])
    } else if e.contains("struct") || e.contains("map") || e.contains("object") {
        json!({})
    } else if e.contains("string") || e.contains("char") {
        json!("")
    } else if e.contains("f32") || e.contains("f64") || e.contains("float") {
        json!(0.0)
    } else if [
        "u8", "u16", "u32", "u64", "usize", "i8", "i16", "i32", "i64", "isize", "integer", "number",
    ]
    .iter()
    .any(|t| e.contains(t))
    {
        json!(0)
    } else {
        return None;
    })
}

/// Turns a serde error (with the path to where it happened) into per-field messages.
fn json_error(err: &serde_path_to_error::Error<serde_json::Error>) -> ApiError {
    let inner = err.inner();
    if is_syntax(inner) {
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

/// A WebSocket upgrade. A plain request where an upgrade was expected answers `VAL_001` on
/// `upgrade` in the envelope (axum's own rejection is plain text).
pub struct ApiWebSocket(pub WebSocketUpgrade);

impl<S: Send + Sync> FromRequestParts<S> for ApiWebSocket {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        WebSocketUpgrade::from_request_parts(parts, state)
            .await
            .map(ApiWebSocket)
            .map_err(|rejection| ApiError::invalid_field("upgrade", rejection.body_text()))
    }
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;
    use serde_json::json;

    use super::every_field_error;

    #[allow(dead_code)]
    #[derive(Deserialize)]
    #[serde(rename_all = "lowercase")]
    enum Priority {
        Low,
        High,
    }

    #[allow(dead_code)]
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Size {
        cols: u16,
        rows: u16,
    }

    #[allow(dead_code)]
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Body {
        title: String,
        priority: Option<Priority>,
        id: Option<uuid::Uuid>,
        tags: Option<Vec<String>>,
        size: Option<Size>,
        count: u32,
    }

    fn fields(body: serde_json::Value) -> Vec<String> {
        let err = every_field_error::<Body>(body);
        err.field_errors().unwrap().keys().cloned().collect()
    }

    #[test]
    fn every_invalid_field_is_reported_at_once() {
        assert_eq!(fields(json!({})), ["count", "title"]);
        assert_eq!(
            fields(
                json!({"priority": "urgent", "count": -1, "id": "nope", "tags": "a",
                          "size": {"cols": "wide"}, "extra": 1})
            ),
            [
                "count",
                "extra",
                "id",
                "priority",
                "size.cols",
                "size.rows",
                "tags",
                "title"
            ]
        );
        let err = every_field_error::<Body>(json!({"title": 5, "count": 1}));
        assert_eq!(
            err.field_errors().unwrap()["title"],
            ["The title field is invalid: invalid type: integer `5`, expected a string."]
        );
        // A body that is not an object at all is one problem, on `body`.
        assert_eq!(fields(json!([1, 2])), ["body"]);
    }
}
