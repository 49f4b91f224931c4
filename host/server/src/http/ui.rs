//! The web dashboard: its page at `/`, its files at `/ui/…`, compiled into the binary from
//! `host/server/ui/` (no build step, no CDN: the vendored libraries are npm's own built files,
//! see `scripts/ui-vendor.sh`), and `GET /api/client-config`, what the page needs to know
//! before anyone signs in.
//!
//! Every URL the page uses is relative, so it works wherever a proxy mounts the host; when
//! `public_url` has a path (`https://example.com/nest`) the page also gets `<base href="/nest/">`,
//! so `/nest` without its trailing slash finds its files too.

use std::sync::LazyLock;

use axum::{
    extract::{RawQuery, State},
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde::Serialize;
use sha2::{Digest as _, Sha256};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::{
    envelope::{Envelope, ErrorEnvelope, Reply},
    extract::ApiPath,
};
use crate::{
    app::AppState,
    error::{ApiError, ErrorCode},
};

/// The page's own routes (outside `/api`).
pub fn page_router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(index))
        .routes(routes!(file))
        .routes(routes!(vendor_file))
        .routes(routes!(oauth_landing))
}

/// `GET /api/client-config`.
pub fn api_router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(client_config))
}

struct Asset {
    path: &'static str,
    content_type: &'static str,
    body: &'static [u8],
}

macro_rules! asset {
    ($path:literal, $content_type:expr) => {
        Asset {
            path: $path,
            content_type: $content_type,
            body: include_bytes!(concat!("../../ui/", $path)),
        }
    };
}

const JS: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";
const ASSETS: &[Asset] = &[
    asset!("index.html", "text/html; charset=utf-8"),
    asset!("app.js", JS),
    asset!("api.js", JS),
    asset!("dom.js", JS),
    asset!("forms.js", JS),
    asset!("projects.js", JS),
    asset!("live.js", JS),
    asset!("terminal.js", JS),
    asset!("follow.mjs", JS),
    asset!("attention.js", JS),
    asset!("notifications.js", JS),
    asset!("style.css", CSS),
    asset!("icon.svg", "image/svg+xml"),
    asset!("vendor/xterm.mjs", JS),
    asset!("vendor/addon-fit.mjs", JS),
    asset!("vendor/pusher.min.js", JS),
    asset!("vendor/xterm.css", CSS),
];

/// Each asset's gzip form and ETag, made once at the first request: the page's ~420 KB go
/// over the wire as ~110 KB.
struct Prepared {
    etag: String,
    gzip: Vec<u8>,
}

static PREPARED: LazyLock<Vec<Prepared>> = LazyLock::new(|| {
    ASSETS
        .iter()
        .map(|asset| {
            let digest = Sha256::digest(asset.body);
            Prepared {
                etag: format!("\"{}\"", hex::encode(&digest[..12])),
                gzip: gzip(asset.body),
            }
        })
        .collect()
});

fn gzip(body: &[u8]) -> Vec<u8> {
    use std::io::Write as _;
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    encoder.write_all(body).expect("writing to memory");
    encoder.finish().expect("writing to memory")
}

/// The page may run only its own scripts and talk only to its own origin (the API and the
/// socket). Inline styles stay allowed: xterm.js sizes its rows with them.
const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; \
     style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; \
     frame-ancestors 'none'; base-uri 'self'; form-action 'self'; object-src 'none'";

fn serve(
    path: &str,
    request: &HeaderMap,
    rewrite: impl FnOnce(&[u8]) -> Option<Vec<u8>>,
) -> Response {
    let Some(index) = ASSETS.iter().position(|a| a.path == path) else {
        return ApiError::new(ErrorCode::RouteNotFound).into_response();
    };
    let asset = &ASSETS[index];
    let prepared = &PREPARED[index];
    let mut headers = HeaderMap::new();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(asset.content_type),
    );
    // Not fingerprinted: the browser keeps a copy and asks whether it is still current.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert(header::VARY, HeaderValue::from_static("Accept-Encoding"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    if let Some(rewritten) = rewrite(asset.body) {
        return (headers, rewritten).into_response();
    }
    headers.insert(
        header::ETAG,
        HeaderValue::from_str(&prepared.etag).expect("hex"),
    );
    let seen = request
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|tags| tags.split(',').any(|t| t.trim() == prepared.etag));
    if seen {
        return (StatusCode::NOT_MODIFIED, headers).into_response();
    }
    let accepts_gzip = request
        .get(header::ACCEPT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|e| e.trim().starts_with("gzip")));
    if accepts_gzip {
        headers.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        return (headers, prepared.gzip.clone()).into_response();
    }
    (headers, asset.body).into_response()
}

/// The dashboard.
#[utoipa::path(get, path = "/", tag = "dashboard",
    responses((status = 200, description = "The dashboard's page", content_type = "text/html")))]
pub async fn index(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let base = base_path(state.config().public_url.as_deref());
    serve("index.html", &headers, |body| {
        let base = base?;
        let page = std::str::from_utf8(body).expect("index.html is UTF-8");
        let tag = format!("<head>\n  <base href=\"{}/\">", html_attribute(&base));
        Some(page.replacen("<head>", &tag, 1).into_bytes())
    })
}

/// The path of `public_url` (`https://x.example/nest/` → `/nest`), when it has one.
fn base_path(public_url: Option<&str>) -> Option<String> {
    let url = reqwest::Url::parse(public_url?).ok()?;
    let path = url.path().trim_end_matches('/');
    (!path.is_empty()).then(|| path.to_owned())
}

fn html_attribute(value: &str) -> String {
    value
        .replace('&', "&amp;")
        .replace('"', "&quot;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// A file of the dashboard (`app.js`, `style.css`, …).
#[utoipa::path(get, path = "/ui/{file}", tag = "dashboard",
    params(("file" = String, Path, example = "app.js")),
    responses((status = 200, description = "The file"),
               (status = 304, description = "Unchanged since the `If-None-Match` ETag"),
               (status = 404, description = "HTTP_404: no such file", body = ErrorEnvelope)))]
pub async fn file(ApiPath(file): ApiPath<String>, headers: HeaderMap) -> Response {
    serve(&file, &headers, |_| None)
}

/// A library the dashboard uses (xterm.js, pusher-js), as its npm package ships it.
#[utoipa::path(get, path = "/ui/vendor/{file}", tag = "dashboard",
    params(("file" = String, Path, example = "xterm.mjs")),
    responses((status = 200, description = "The file"),
               (status = 304, description = "Unchanged since the `If-None-Match` ETag"),
               (status = 404, description = "HTTP_404: no such file", body = ErrorEnvelope)))]
pub async fn vendor_file(ApiPath(file): ApiPath<String>, headers: HeaderMap) -> Response {
    serve(&format!("vendor/{file}"), &headers, |_| None)
}

/// Where an OAuth provider sends the browser back when its `redirect_url` is
/// `{public_url}/oauth/{provider}`: on to the dashboard, which finishes the sign-in with
/// `GET /api/auth/{provider}/callback`.
#[utoipa::path(get, path = "/oauth/{provider}", tag = "dashboard",
    params(("provider" = String, Path, description = "`github` or `google`", example = "github")),
    responses((status = 303, description = "To the dashboard, with the provider's query"),
               (status = 200, description = "The dashboard's page, for a client that follows the redirect"),
               (status = 404, description = "HTTP_404: not a provider name", body = ErrorEnvelope)))]
pub async fn oauth_landing(
    ApiPath(provider): ApiPath<String>,
    RawQuery(query): RawQuery,
) -> Response {
    if provider.is_empty() || !provider.bytes().all(|b| b.is_ascii_lowercase()) {
        return ApiError::new(ErrorCode::RouteNotFound).into_response();
    }
    let mut location = format!("../?provider={provider}");
    if let Some(query) = query.filter(|q| !q.is_empty()) {
        location.push('&');
        location.push_str(&query);
    }
    match HeaderValue::from_str(&location) {
        Ok(location) => (StatusCode::SEE_OTHER, [(header::LOCATION, location)]).into_response(),
        Err(_) => ApiError::new(ErrorCode::RouteNotFound).into_response(),
    }
}

/// What the dashboard needs before anyone signs in.
#[derive(Debug, Serialize, ToSchema)]
pub struct ClientConfig {
    /// The Pusher app key the socket at `/app/{key}` answers to.
    pub pusher_app_key: String,
    /// OAuth providers configured on this server (`github`, `google`).
    pub oauth_providers: Vec<&'static str>,
    /// The VAPID public key (base64url) to subscribe browsers to Web Push with
    /// (`applicationServerKey`); the subscription becomes a `web_push` notification target.
    pub vapid_public_key: String,
    #[schema(example = "1.0.0")]
    pub version: &'static str,
}

/// The Pusher app key and the configured sign-in providers (public).
#[utoipa::path(get, path = "/client-config", tag = "dashboard",
    responses((status = 200, body = Envelope<ClientConfig>)))]
pub async fn client_config(State(state): State<AppState>) -> Reply<ClientConfig> {
    Reply::ok(ClientConfig {
        pusher_app_key: state.pusher().key.clone(),
        oauth_providers: state.oauth().configured(),
        vapid_public_key: state.vapid().public_key(),
        version: env!("CARGO_PKG_VERSION"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_asset_the_page_loads_is_embedded() {
        let page = std::str::from_utf8(ASSETS[0].body).unwrap();
        for part in page.split("\"ui/").skip(1) {
            let path = part.split('"').next().unwrap();
            assert!(
                ASSETS.iter().any(|a| a.path == path),
                "{path} is not embedded"
            );
        }
        for asset in ASSETS.iter().filter(|a| a.path.ends_with(".js")) {
            let source = std::str::from_utf8(asset.body).unwrap();
            for import in source.split(" from './").skip(1) {
                let name = import.split('\'').next().unwrap();
                let dir = asset.path.rsplit_once('/').map_or("", |(d, _)| d);
                let path = if dir.is_empty() {
                    name.to_owned()
                } else {
                    format!("{dir}/{name}")
                };
                assert!(
                    ASSETS.iter().any(|a| a.path == path),
                    "{} imports {path}, not embedded",
                    asset.path
                );
            }
        }
    }

    #[test]
    fn the_base_comes_from_public_urls_path() {
        assert_eq!(base_path(None), None);
        assert_eq!(base_path(Some("https://x.example")), None);
        assert_eq!(base_path(Some("https://x.example/")), None);
        assert_eq!(
            base_path(Some("https://x.example/nest/")).as_deref(),
            Some("/nest")
        );
        assert_eq!(html_attribute("/a\"b<"), "/a&quot;b&lt;");
    }
}
