//! Router-level checks of the shared HTTP machinery: extractors, envelope, fallbacks, panics.
//! They run the real layers on a small router through `tower::ServiceExt::oneshot`.

use axum::{
    Router,
    body::{Body, to_bytes},
    http::{Request, StatusCode},
    routing::{get, post},
};
use serde::Deserialize;
use serde_json::{Value, json};
use tower::ServiceExt as _;
use uuid::Uuid;

use super::{
    envelope::Reply,
    extract::{ApiJson, ApiPath, ApiQuery},
    with_common_layers,
};

#[derive(Debug, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Priority {
    Low,
    High,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Payload {
    title: String,
    count: u32,
    priority: Priority,
    #[serde(default)]
    pty_size: Option<Size>,
}

#[derive(Debug, Deserialize)]
struct Size {
    #[allow(dead_code)]
    cols: u16,
    #[allow(dead_code)]
    rows: u16,
}

#[derive(Debug, Deserialize)]
struct Filter {
    #[allow(dead_code)]
    per_page: Option<u32>,
}

fn app() -> Router {
    let routes = Router::new()
        .route(
            "/echo",
            post(|ApiJson(p): ApiJson<Payload>| async move {
                Reply::ok(json!({"title": p.title, "count": p.count, "high": matches!(p.priority, Priority::High), "sized": p.pty_size.is_some()}))
            }),
        )
        .route(
            "/things/{id}",
            get(|ApiPath(id): ApiPath<Uuid>| async move { Reply::ok(id) }),
        )
        .route(
            "/list",
            get(|ApiQuery(_): ApiQuery<Filter>| async { Reply::ok(Vec::<u8>::new()) }),
        )
        .route(
            "/boom",
            get(|| async {
                if true {
                    panic!("secret internal detail");
                }
                Reply::ok(())
            }),
        );
    with_common_layers(routes, 1024)
}

async fn send(request: Request<Body>) -> (StatusCode, Value) {
    let response = app().oneshot(request).await.unwrap();
    let status = response.status();
    let bytes = to_bytes(response.into_body(), usize::MAX).await.unwrap();
    (
        status,
        serde_json::from_slice(&bytes).expect("every answer is JSON"),
    )
}

async fn post_json(body: &str) -> (StatusCode, Value) {
    send(
        Request::post("/echo")
            .header("content-type", "application/json")
            .body(Body::from(body.to_owned()))
            .unwrap(),
    )
    .await
}

fn assert_validation(status: StatusCode, body: &Value, field: &str) -> String {
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["success"], false);
    assert_eq!(body["error"]["code"], "VAL_001");
    assert_eq!(body["error"]["message"], "The given data was invalid.");
    assert!(
        body["meta"]["request_id"]
            .as_str()
            .unwrap()
            .starts_with("req_")
    );
    let messages = body["error"]["errors"][field]
        .as_array()
        .unwrap_or_else(|| panic!("no errors.{field} in {body}"));
    messages[0].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn valid_json_passes_through_to_the_handler() {
    let (status, body) =
        post_json(r#"{"title":"t","count":3,"priority":"high","pty_size":{"cols":80,"rows":24}}"#)
            .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body["data"],
        json!({"title":"t","count":3,"high":true,"sized":true})
    );
}

#[tokio::test]
async fn malformed_json_is_a_body_error() {
    let (status, body) = post_json(r#"{"title": "t", "count": "#).await;
    let message = assert_validation(status, &body, "body");
    assert!(
        message.starts_with("The body is not valid JSON"),
        "{message}"
    );
}

#[tokio::test]
async fn two_json_values_are_a_body_error_not_a_500() {
    // The first value already has the wrong type, so serde stops before the trailing one.
    let (status, body) = post_json("1 2").await;
    let message = assert_validation(status, &body, "body");
    assert!(
        message.starts_with("The body is not valid JSON"),
        "{message}"
    );
}

#[tokio::test]
async fn missing_fields_are_named() {
    let (status, body) = post_json(r#"{"count": 1, "priority": "low"}"#).await;
    let message = assert_validation(status, &body, "title");
    assert_eq!(message, "The title field is required.");
}

#[tokio::test]
async fn empty_body_means_missing_fields_not_a_syntax_error() {
    let (status, body) = post_json("").await;
    assert_validation(status, &body, "title");
}

#[tokio::test]
async fn wrong_types_are_named() {
    let (status, body) = post_json(r#"{"title":"t","count":"three","priority":"low"}"#).await;
    let message = assert_validation(status, &body, "count");
    assert!(message.contains("invalid type"), "{message}");
    let (status, body) = post_json(r#"{"title":"t","count":-1,"priority":"low"}"#).await;
    assert_validation(status, &body, "count");
}

#[tokio::test]
async fn unknown_enum_values_are_named() {
    let (status, body) = post_json(r#"{"title":"t","count":1,"priority":"urgent"}"#).await;
    let message = assert_validation(status, &body, "priority");
    assert!(message.contains("unknown variant `urgent`"), "{message}");
}

#[tokio::test]
async fn nested_fields_are_named_by_path() {
    let (status, body) =
        post_json(r#"{"title":"t","count":1,"priority":"low","pty_size":{"cols":80}}"#).await;
    assert_validation(status, &body, "pty_size.rows");
}

#[tokio::test]
async fn unknown_fields_are_refused_where_the_type_says_so() {
    let (status, body) = post_json(r#"{"title":"t","count":1,"priority":"low","x":1}"#).await;
    assert_validation(status, &body, "x");
}

#[tokio::test]
async fn oversize_bodies_answer_413_in_the_envelope() {
    let big = format!(
        r#"{{"title":"{}","count":1,"priority":"low"}}"#,
        "a".repeat(4096)
    );
    let (status, body) = post_json(&big).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
    assert_eq!(body["error"]["code"], "VAL_002");
}

#[tokio::test]
async fn bad_uuids_in_paths_are_validation_errors() {
    let (status, body) = send(
        Request::get("/things/not-a-uuid")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    let message = assert_validation(status, &body, "id");
    assert_eq!(message, "The id must be a valid UUID.");
    let id = Uuid::now_v7();
    let (status, body) = send(
        Request::get(format!("/things/{id}"))
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["data"], id.to_string());
}

#[tokio::test]
async fn bad_query_parameters_are_named() {
    let (status, body) = send(
        Request::get("/list?per_page=lots")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_validation(status, &body, "per_page");
}

#[tokio::test]
async fn panics_answer_srv_001_without_internals() {
    let (status, body) = send(Request::get("/boom").body(Body::empty()).unwrap()).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(body["error"]["code"], "SRV_001");
    assert!(!body.to_string().contains("secret"), "{body}");
    assert!(
        body["meta"]["request_id"]
            .as_str()
            .unwrap()
            .starts_with("req_")
    );
}

#[tokio::test]
async fn unknown_routes_and_methods_answer_in_the_envelope() {
    let (status, body) = send(Request::get("/nowhere").body(Body::empty()).unwrap()).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["error"]["code"], "HTTP_404");
    let (status, body) = send(Request::delete("/echo").body(Body::empty()).unwrap()).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(body["error"]["code"], "HTTP_405");
}

#[tokio::test]
async fn meta_carries_an_rfc3339_utc_timestamp() {
    let (_, body) = send(Request::get("/list").body(Body::empty()).unwrap()).await;
    let ts = body["meta"]["timestamp"].as_str().unwrap();
    assert!(ts.ends_with('Z'), "{ts}");
    chrono::DateTime::parse_from_rfc3339(ts).expect("RFC 3339");
}
