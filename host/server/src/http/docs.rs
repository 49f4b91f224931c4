//! `/api/docs`: the OpenAPI document as browsable pages (Swagger UI). Its files are compiled
//! into the binary (utoipa-swagger-ui's vendored copy): nothing is fetched from a CDN, and the
//! pages load the document by a relative URL, so they work behind a proxy under a sub-path.

use std::sync::{Arc, LazyLock};

use axum::{
    http::{StatusCode, header},
    response::{IntoResponse, Response},
};
use utoipa_swagger_ui::Config;

use super::extract::ApiPath;
use crate::error::{ApiError, ErrorCode};

/// Relative to `/api/docs/index.html`: `/api/openapi.json`, wherever `/api` is mounted.
static CONFIG: LazyLock<Arc<Config<'static>>> =
    LazyLock::new(|| Arc::new(Config::from("../openapi.json")));

/// The browsable API reference (redirects to its first page).
#[utoipa::path(get, path = "/docs", tag = "meta",
    responses((status = 308, description = "To `docs/index.html`"),
               (status = 200, description = "`index.html`, for a client that follows the redirect")))]
pub async fn docs() -> Response {
    (
        StatusCode::PERMANENT_REDIRECT,
        [(header::LOCATION, "docs/index.html")],
    )
        .into_response()
}

/// A file of the browsable API reference (`index.html`, its scripts and styles).
#[utoipa::path(get, path = "/docs/{file}", tag = "meta",
    params(("file" = String, Path, example = "index.html")),
    responses((status = 200, description = "The file"),
               (status = 404, description = "HTTP_404: no such file", body = super::envelope::ErrorEnvelope)))]
pub async fn docs_file(ApiPath(file): ApiPath<String>) -> Result<Response, ApiError> {
    let found = utoipa_swagger_ui::serve(&file, CONFIG.clone())
        .map_err(|err| ApiError::internal(anyhow::anyhow!("serving the API reference: {err}")))?;
    let Some(found) = found else {
        return Err(ApiError::new(ErrorCode::RouteNotFound));
    };
    let mut response = (
        [(header::CONTENT_TYPE, found.content_type)],
        found.bytes.into_owned(),
    )
        .into_response();
    if found.gzpipped {
        response.headers_mut().insert(
            header::CONTENT_ENCODING,
            header::HeaderValue::from_static("gzip"),
        );
    }
    Ok(response)
}
