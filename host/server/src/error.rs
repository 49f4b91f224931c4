//! The one error type of the service. It knows its envelope code and HTTP status; the HTTP
//! floor renders it as the documented error envelope (`http::envelope`):
//!
//! ```json
//! {"success": false, "error": {"code": "VAL_001", "message": "…", "errors": {"email": ["…"]}},
//!  "meta": {"timestamp": "…", "request_id": "req_…"}}
//! ```
//!
//! Internal errors keep their cause for the log and answer `SRV_001` with no internals.

use std::{borrow::Cow, collections::BTreeMap, fmt};

use axum::http::StatusCode;

use crate::store::StoreError;

pub type Result<T, E = ApiError> = std::result::Result<T, E>;

/// Per-field validation messages, e.g. `{"email": ["The email field is required."]}`.
pub type FieldErrors = BTreeMap<String, Vec<String>>;

macro_rules! error_codes {
    ($( $(#[$doc:meta])* $variant:ident = ($code:literal, $status:ident, $message:literal), )*) => {
        /// Every error code the API answers with (API §12.1, plus the few in `docs/api.md`).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum ErrorCode { $( $(#[$doc])* $variant, )* }

        impl ErrorCode {
            pub const ALL: &'static [ErrorCode] = &[$(ErrorCode::$variant),*];

            /// The wire code, e.g. `"MCH_001"`.
            pub fn as_str(self) -> &'static str {
                match self { $(ErrorCode::$variant => $code,)* }
            }

            pub fn status(self) -> StatusCode {
                match self { $(ErrorCode::$variant => StatusCode::$status,)* }
            }

            /// The message used when the caller has nothing more specific to say.
            pub fn default_message(self) -> &'static str {
                match self { $(ErrorCode::$variant => $message,)* }
            }
        }
    };
}

error_codes! {
    InvalidProvider = ("AUTH_001", BAD_REQUEST, "Invalid provider"),
    InvalidCredentials = ("AUTH_002", UNAUTHORIZED, "Invalid credentials"),
    ResetLinkNotSent = ("AUTH_003", BAD_REQUEST, "Unable to send reset link"),
    InvalidResetToken = ("AUTH_004", BAD_REQUEST, "Invalid or expired reset token"),
    /// No bearer token, or one that is unknown, revoked or expired.
    Unauthenticated = ("AUTH_005", UNAUTHORIZED, "Unauthenticated"),
    /// The token is valid but lacks the ability the endpoint needs.
    Forbidden = ("AUTH_006", FORBIDDEN, "This token is not allowed to do that"),
    /// No such token among the caller's.
    TokenNotFound = ("AUTH_007", NOT_FOUND, "Token not found"),
    /// The provider's e-mail belongs to an account it cannot be linked to automatically.
    OAuthAccountConflict = ("AUTH_008", CONFLICT, "An account with this email already exists"),
    MachineNotFound = ("MCH_001", NOT_FOUND, "Machine not found"),
    MachineOffline = ("MCH_002", BAD_REQUEST, "Machine is offline"),
    WakeOnLanUnsupported = ("MCH_003", BAD_REQUEST, "Machine does not support Wake-on-LAN"),
    MachineAlreadyOnline = ("MCH_004", BAD_REQUEST, "Machine is already online"),
    /// The pairing code is unknown, used or expired.
    PairingNotFound = ("MCH_005", NOT_FOUND, "Pairing code not found or expired"),
    SessionNotFound = ("SES_001", NOT_FOUND, "Session not found"),
    SessionTerminated = ("SES_002", BAD_REQUEST, "Session already terminated"),
    /// The machine already runs `max_sessions` sessions.
    SessionLimitReached = ("SES_003", CONFLICT, "Machine is at its session limit"),
    /// No such permission request among the caller's sessions'.
    PermissionNotFound = ("SES_004", NOT_FOUND, "Permission request not found"),
    /// Answered already (here or at the terminal), or no longer waiting.
    PermissionAnswered = ("SES_005", CONFLICT, "Permission request is no longer pending"),
    /// The project's `runsPerHour` sessions were started in the last hour.
    RunLimitReached = ("SES_006", TOO_MANY_REQUESTS, "The project's runs-per-hour limit is reached"),
    /// The project's token or cost budget is spent.
    BudgetSpent = ("SES_007", CONFLICT, "The project's budget is spent"),
    NotificationTargetNotFound = ("NTF_001", NOT_FOUND, "Notification target not found"),
    /// The user has the most targets the host allows.
    NotificationTargetLimit = ("NTF_002", CONFLICT, "Too many notification targets"),
    ProjectNotFound = ("PRJ_001", NOT_FOUND, "Project not found"),
    ProjectPathExists = ("PRJ_002", CONFLICT, "Project path already exists"),
    TaskNotFound = ("TSK_001", NOT_FOUND, "Task not found"),
    TaskAlreadyClaimed = ("TSK_002", CONFLICT, "Task already claimed"),
    TaskNotClaimedByInstance = ("TSK_003", FORBIDDEN, "Task not claimed by this instance"),
    /// A dependency of the task is not completed yet.
    TaskBlocked = ("TSK_004", CONFLICT, "Task is blocked by unfinished dependencies"),
    FileLocked = ("LCK_001", CONFLICT, "File is locked by another instance"),
    /// No live lock on that path (or none held by that instance, and nobody else's either).
    LockNotFound = ("LCK_002", NOT_FOUND, "Lock not found"),
    ContextChunkNotFound = ("CTX_001", NOT_FOUND, "Context chunk not found"),
    SkillNotFound = ("SKL_001", NOT_FOUND, "Skill not found"),
    McpServerNotFound = ("MCP_001", NOT_FOUND, "MCP server not found"),
    McpServerStartFailed = ("MCP_002", INTERNAL_SERVER_ERROR, "MCP server failed to start"),
    ToolExecutionFailed = ("MCP_003", INTERNAL_SERVER_ERROR, "Tool execution failed"),
    /// An MCP server at a URL could not be reached (or did not answer as an MCP server).
    McpServerUnreachable = ("MCP_004", BAD_GATEWAY, "MCP server unreachable"),
    PluginNotFound = ("PLG_001", NOT_FOUND, "Plugin not found"),
    PluginExists = ("PLG_002", CONFLICT, "A plugin with this name is already installed"),
    /// Not a component this host can run (the message says why).
    PluginInvalid = ("PLG_003", UNPROCESSABLE_ENTITY, "The plugin was rejected"),
    /// The plugin trapped, ran out of time or memory, or returned too much.
    PluginFailed = ("PLG_004", BAD_GATEWAY, "The plugin failed"),
    PluginNotEnabled = ("PLG_005", NOT_FOUND, "The plugin is not enabled on this machine"),
    /// The user's plugins would exceed the count or bytes the host allows per user.
    PluginQuota = ("PLG_006", UNPROCESSABLE_ENTITY, "Plugin quota reached"),
    /// A grant outside what the machine's owner allows (checked again at every call).
    PluginNotAllowed = ("PLG_007", FORBIDDEN, "The machine does not allow this grant"),
    Validation = ("VAL_001", UNPROCESSABLE_ENTITY, "The given data was invalid."),
    /// The request body is larger than the server accepts.
    PayloadTooLarge = ("VAL_002", PAYLOAD_TOO_LARGE, "The request body is too large."),
    RateLimited = ("RTE_001", TOO_MANY_REQUESTS, "Rate limit exceeded"),
    Internal = ("SRV_001", INTERNAL_SERVER_ERROR, "Internal server error"),
    /// A dependency (the database) does not answer.
    Unavailable = ("SRV_002", SERVICE_UNAVAILABLE, "Service unavailable"),
    /// No route matches the path.
    RouteNotFound = ("HTTP_404", NOT_FOUND, "Route not found"),
    /// The path exists but not with this method.
    MethodNotAllowed = ("HTTP_405", METHOD_NOT_ALLOWED, "Method not allowed"),
    /// A request the protocol behind the route cannot read (`/mcp`: not JSON-RPC).
    BadRequest = ("HTTP_400", BAD_REQUEST, "Bad request"),
    /// `/mcp`: the client does not accept both `application/json` and `text/event-stream`.
    NotAcceptable = ("HTTP_406", NOT_ACCEPTABLE, "Not acceptable"),
    /// `/mcp`: the body is not `application/json`.
    UnsupportedMediaType = ("HTTP_415", UNSUPPORTED_MEDIA_TYPE, "Unsupported media type"),
}

/// An error on its way to becoming an error envelope.
pub struct ApiError {
    code: ErrorCode,
    message: Cow<'static, str>,
    errors: Option<FieldErrors>,
    retry_after_secs: Option<u64>,
    /// Extra machine-readable facts (e.g. who holds a lock), sent as `error.details`.
    details: Option<serde_json::Value>,
    /// The cause of an internal error: logged, never sent.
    source: Option<anyhow::Error>,
}

impl ApiError {
    pub fn new(code: ErrorCode) -> Self {
        Self {
            code,
            message: Cow::Borrowed(code.default_message()),
            errors: None,
            retry_after_secs: None,
            details: None,
            source: None,
        }
    }

    pub fn with_message(mut self, message: impl Into<Cow<'static, str>>) -> Self {
        self.message = message.into();
        self
    }

    pub fn with_details(mut self, details: serde_json::Value) -> Self {
        self.details = Some(details);
        self
    }

    /// `VAL_001` with per-field messages.
    pub fn validation(errors: FieldErrors) -> Self {
        Self {
            errors: Some(errors),
            ..Self::new(ErrorCode::Validation)
        }
    }

    /// `VAL_001` for a single field.
    pub fn invalid_field(field: &str, message: impl Into<String>) -> Self {
        Self::validation(FieldErrors::from([(
            field.to_owned(),
            vec![message.into()],
        )]))
    }

    /// `RTE_001` with a `Retry-After` header.
    pub fn rate_limited(retry_after_secs: u64) -> Self {
        Self {
            retry_after_secs: Some(retry_after_secs),
            ..Self::new(ErrorCode::RateLimited)
        }
    }

    /// `SRV_001`; `cause` goes to the log only.
    pub fn internal(cause: impl Into<anyhow::Error>) -> Self {
        Self {
            source: Some(cause.into()),
            ..Self::new(ErrorCode::Internal)
        }
    }

    pub fn code(&self) -> ErrorCode {
        self.code
    }

    pub fn message(&self) -> &str {
        &self.message
    }

    pub fn field_errors(&self) -> Option<&FieldErrors> {
        self.errors.as_ref()
    }

    /// Everything the transport renders (and logs), taken apart.
    pub fn into_parts(self) -> ErrorParts {
        ErrorParts {
            code: self.code,
            message: self.message.into_owned(),
            errors: self.errors,
            details: self.details,
            retry_after_secs: self.retry_after_secs,
            source: self.source,
        }
    }
}

impl fmt::Debug for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiError")
            .field("code", &self.code.as_str())
            .field("message", &self.message)
            .field("errors", &self.errors)
            .field("source", &self.source)
            .finish()
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code.as_str(), self.message)
    }
}

impl From<StoreError> for ApiError {
    fn from(err: StoreError) -> Self {
        ApiError::internal(err)
    }
}

impl From<anyhow::Error> for ApiError {
    fn from(err: anyhow::Error) -> Self {
        ApiError::internal(err)
    }
}

/// An [`ApiError`] taken apart for rendering.
pub struct ErrorParts {
    pub code: ErrorCode,
    pub message: String,
    pub errors: Option<FieldErrors>,
    pub details: Option<serde_json::Value>,
    pub retry_after_secs: Option<u64>,
    /// The cause of an internal error: for the log, never for the answer.
    pub source: Option<anyhow::Error>,
}

/// Collects per-field problems, then fails with `VAL_001` if there were any.
#[derive(Debug, Default)]
pub struct Validator {
    errors: FieldErrors,
}

impl Validator {
    pub fn new() -> Self {
        Self::default()
    }

    /// Records `message` for `field` unless `value` has `min..=max` characters: the minimum
    /// counts what is left after trimming (spaces alone are no name), the maximum what was sent
    /// (as the OpenAPI document's `maxLength` says).
    pub fn check_length(
        &mut self,
        value: &str,
        min: usize,
        max: usize,
        field: &str,
        message: impl Into<String>,
    ) -> &mut Self {
        let ok = value.trim().chars().count() >= min && value.chars().count() <= max;
        self.check(ok, field, message)
    }

    /// Records `message` for `field` unless `ok`.
    pub fn check(&mut self, ok: bool, field: &str, message: impl Into<String>) -> &mut Self {
        if !ok {
            self.add(field, message);
        }
        self
    }

    pub fn add(&mut self, field: &str, message: impl Into<String>) -> &mut Self {
        self.errors
            .entry(field.to_owned())
            .or_default()
            .push(message.into());
        self
    }

    pub fn finish(&mut self) -> Result<()> {
        if self.errors.is_empty() {
            Ok(())
        } else {
            Err(ApiError::validation(std::mem::take(&mut self.errors)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_unique_and_match_their_family_status() {
        let mut seen = std::collections::HashSet::new();
        for code in ErrorCode::ALL {
            assert!(seen.insert(code.as_str()), "duplicate {}", code.as_str());
        }
        assert_eq!(
            ErrorCode::Validation.status(),
            StatusCode::UNPROCESSABLE_ENTITY
        );
        assert_eq!(ErrorCode::TaskAlreadyClaimed.status(), StatusCode::CONFLICT);
        assert_eq!(ErrorCode::RateLimited.as_str(), "RTE_001");
    }

    #[test]
    fn validator_collects_every_field() {
        let err = Validator::new()
            .check(false, "email", "bad email")
            .check(true, "name", "never")
            .check(false, "email", "taken")
            .finish()
            .unwrap_err();
        let errors = err.field_errors().unwrap();
        assert_eq!(errors["email"], vec!["bad email", "taken"]);
        assert!(!errors.contains_key("name"));
    }
}
