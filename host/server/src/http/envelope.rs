//! The success envelope (API §1.2) and pagination (`page`, `per_page`, `meta.pagination`).

use axum::{
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use chrono::SecondsFormat;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::request_id::RequestId;
use crate::error::{ApiError, FieldErrors, Result, Validator};

/// `meta` of every envelope.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Meta {
    /// When the response was made, RFC 3339 UTC (`2026-02-02T12:00:00Z`).
    pub timestamp: String,
    /// `req_…`; also sent as the `X-Request-Id` header.
    pub request_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pagination: Option<Pagination>,
}

impl Meta {
    /// Meta for the request being handled on this task.
    pub fn current() -> Self {
        Self {
            timestamp: chrono::Utc::now().to_rfc3339_opts(SecondsFormat::Secs, true),
            request_id: RequestId::current().to_string(),
            pagination: None,
        }
    }
}

/// `meta.pagination` of list responses.
#[derive(Debug, Clone, Copy, Serialize, ToSchema, PartialEq, Eq)]
pub struct Pagination {
    pub current_page: u64,
    pub last_page: u64,
    pub per_page: u64,
    pub total: u64,
}

/// A success envelope: `{"success": true, "data": …, "meta": {…}}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Envelope<T> {
    /// Always `true`.
    pub success: bool,
    pub data: T,
    pub meta: Meta,
}

/// A handler's successful answer: status, data, and pagination when it is a page.
pub struct Reply<T> {
    status: StatusCode,
    data: T,
    pagination: Option<Pagination>,
}

impl<T: Serialize> Reply<T> {
    /// 200 with `data`.
    pub fn ok(data: T) -> Self {
        Self {
            status: StatusCode::OK,
            data,
            pagination: None,
        }
    }

    /// 201 with `data`.
    pub fn created(data: T) -> Self {
        Self {
            status: StatusCode::CREATED,
            ..Self::ok(data)
        }
    }

    pub fn with_status(mut self, status: StatusCode) -> Self {
        self.status = status;
        self
    }
}

impl<T: Serialize> Reply<Vec<T>> {
    /// 200 with one page of a list and `meta.pagination`.
    pub fn page(items: Vec<T>, total: u64, request: PageRequest) -> Self {
        Self {
            status: StatusCode::OK,
            data: items,
            pagination: Some(request.pagination(total)),
        }
    }
}

impl<T: Serialize> IntoResponse for Reply<T> {
    fn into_response(self) -> Response {
        let mut meta = Meta::current();
        meta.pagination = self.pagination;
        let body = Envelope {
            success: true,
            data: self.data,
            meta,
        };
        (self.status, axum::Json(body)).into_response()
    }
}

/// `?page=&per_page=` as sent.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// 1-based page number (default 1).
    #[param(minimum = 1, maximum = 1_000_000)]
    pub page: Option<u64>,
    /// Items per page, 1..=100 (default 15).
    #[param(minimum = 1, maximum = 100)]
    pub per_page: Option<u64>,
}

/// A validated page request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageRequest {
    pub page: u64,
    pub per_page: u64,
}

impl PageRequest {
    pub const DEFAULT_PER_PAGE: u64 = 15;
    pub const MAX_PER_PAGE: u64 = 100;

    pub fn offset(self) -> u64 {
        (self.page - 1) * self.per_page
    }

    pub fn pagination(self, total: u64) -> Pagination {
        Pagination {
            current_page: self.page,
            last_page: total.div_ceil(self.per_page).max(1),
            per_page: self.per_page,
            total,
        }
    }
}

impl PageQuery {
    /// `VAL_001` on `page` / `per_page` when out of range.
    pub fn validate(&self) -> Result<PageRequest> {
        let page = self.page.unwrap_or(1);
        let per_page = self.per_page.unwrap_or(PageRequest::DEFAULT_PER_PAGE);
        Validator::new()
            .check(
                (1..=1_000_000).contains(&page),
                "page",
                "The page must be between 1 and 1000000.",
            )
            .check(
                (1..=PageRequest::MAX_PER_PAGE).contains(&per_page),
                "per_page",
                format!(
                    "The per page must be between 1 and {}.",
                    PageRequest::MAX_PER_PAGE
                ),
            )
            .finish()?;
        Ok(PageRequest { page, per_page })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pagination_rounds_up_and_never_reports_zero_pages() {
        let req = PageRequest {
            page: 2,
            per_page: 15,
        };
        assert_eq!(req.offset(), 15);
        assert_eq!(req.pagination(31).last_page, 3);
        assert_eq!(req.pagination(0).last_page, 1);
    }

    #[test]
    fn page_bounds_are_validated() {
        let bad = PageQuery {
            page: Some(0),
            per_page: Some(101),
        };
        let err = bad.validate().unwrap_err();
        let fields = err.field_errors().unwrap();
        assert!(fields.contains_key("page") && fields.contains_key("per_page"));
        assert_eq!(
            PageQuery::default().validate().unwrap(),
            PageRequest {
                page: 1,
                per_page: 15
            }
        );
    }
}

/// `"data": null`, for answers that have nothing to return (logout, revoke).
#[derive(Debug, Clone, Copy, Default)]
pub struct Null;

impl Serialize for Null {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_none()
    }
}

impl utoipa::PartialSchema for Null {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::schema::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::Null)
            .into()
    }
}

impl ToSchema for Null {}

// --- errors ---------------------------------------------------------------------------------

/// The `error` member of an error envelope.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// Stable machine-readable code, e.g. `VAL_001`.
    #[schema(example = "VAL_001")]
    pub code: &'static str,
    pub message: String,
    /// Per-field messages; present on `VAL_001`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub errors: Option<FieldErrors>,
    /// Extra facts about the error, e.g. who holds a lock (`LCK_001`).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub details: Option<serde_json::Value>,
}

/// The whole error envelope, as sent.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorEnvelope {
    /// Always `false`.
    pub success: bool,
    pub error: ErrorBody,
    pub meta: Meta,
}

/// The domain's error, rendered: the error envelope with the code's status (and `Retry-After`
/// when rate limited). An internal error's cause goes to the log only.
impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let parts = self.into_parts();
        let code = parts.code;
        if let Some(source) = &parts.source {
            tracing::error!(code = code.as_str(), error = ?source, "request failed");
        } else if code.status().is_server_error() {
            tracing::error!(code = code.as_str(), message = %parts.message, "request failed");
        } else {
            tracing::debug!(code = code.as_str(), message = %parts.message, "request refused");
        }
        let body = ErrorEnvelope {
            success: false,
            error: ErrorBody {
                code: code.as_str(),
                message: parts.message,
                errors: parts.errors,
                details: parts.details,
            },
            meta: Meta::current(),
        };
        let mut response = (code.status(), axum::Json(body)).into_response();
        if let Some(secs) = parts.retry_after_secs {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}
