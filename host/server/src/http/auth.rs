//! Accounts, tokens and sign-in (API §2): the `AuthUser` extractor and the `/api/auth/*` routes.

use axum::{extract::FromRequestParts, extract::State, http::request::Parts};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use super::{
    credentials::{Preauthenticated, bearer_token},
    envelope::ErrorEnvelope,
    envelope::{Envelope, Null, Reply},
    extract::{ApiJson, ApiPath, ApiQuery},
};
use crate::{
    app::AppState,
    domain::{
        accounts::{self, NewAccount, Principal, SignIn},
        oauth::Provider,
        password_reset::{self, ResetForm},
    },
    error::{ApiError, ErrorCode, Result},
    store::{ApiToken, User},
};

/// A request made with a valid user token (`Authorization: Bearer cn_…`).
pub struct AuthUser(pub Principal);

impl FromRequestParts<AppState> for AuthUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self> {
        if let Some(Preauthenticated(principal)) = parts.extensions.get::<Preauthenticated>() {
            return Ok(AuthUser(principal.clone()));
        }
        let token = bearer_token(&parts.headers).ok_or_else(|| {
            tracing::debug!("no bearer token");
            ApiError::new(ErrorCode::Unauthenticated)
        })?;
        accounts::authenticate(state.store(), token)
            .await
            .map(AuthUser)
    }
}

/// The client's address: the peer's, or behind a proxy the operator trusts the one it
/// forwarded (`rate_limits.trusted_proxies`).
pub struct ClientAddress(pub std::net::IpAddr);

impl FromRequestParts<AppState> for ClientAddress {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self> {
        let peer = parts
            .extensions
            .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
            .map(|info| info.0.ip())
            .unwrap_or(std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED));
        Ok(ClientAddress(
            state.login_limiter().proxies().client(peer, &parts.headers),
        ))
    }
}

/// Sign-in routes: rate limited per client IP.
pub fn public_router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(register))
        .routes(routes!(login))
        .routes(routes!(forgot_password))
        .routes(routes!(reset_password))
        .routes(routes!(oauth_redirect))
        .routes(routes!(oauth_callback))
}

/// Routes that need a user token: rate limited per token.
pub fn authenticated_router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(me))
        .routes(routes!(logout))
        .routes(routes!(list_tokens, create_token))
        .routes(routes!(revoke_token))
}

// --- views --------------------------------------------------------------------------------

/// A user as the API shows it (never the password hash).
#[derive(Debug, Serialize, ToSchema)]
pub struct UserView {
    pub id: Uuid,
    pub email: String,
    pub name: String,
    pub avatar_url: Option<String>,
    pub email_verified_at: Option<DateTime<Utc>>,
}

impl From<&User> for UserView {
    fn from(user: &User) -> Self {
        Self {
            id: user.id,
            email: user.email.clone(),
            name: user.name.clone(),
            avatar_url: user.avatar_url.clone(),
            email_verified_at: user.email_verified_at,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MeData {
    pub user: UserView,
}

/// What login, registration and the OAuth callback answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct SignInData {
    pub user: UserView,
    /// `cn_…`: shown this once.
    pub token: String,
    pub expires_at: DateTime<Utc>,
}

impl From<SignIn> for SignInData {
    fn from(s: SignIn) -> Self {
        Self {
            user: UserView::from(&s.user),
            token: s.token,
            expires_at: s.expires_at,
        }
    }
}

/// A token in the list; never its secret.
#[derive(Debug, Serialize, ToSchema)]
pub struct TokenView {
    pub id: Uuid,
    pub name: String,
    pub abilities: Vec<String>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub expires_at: Option<DateTime<Utc>>,
    pub is_active: bool,
    pub created_at: DateTime<Utc>,
}

impl From<ApiToken> for TokenView {
    fn from(t: ApiToken) -> Self {
        Self {
            is_active: t.is_active(crate::domain::clock::now()),
            id: t.id,
            name: t.name,
            abilities: t.abilities.0,
            last_used_at: t.last_used_at,
            expires_at: t.expires_at,
            created_at: t.created_at,
        }
    }
}

/// A new token, with its secret shown once.
#[derive(Debug, Serialize, ToSchema)]
pub struct NewTokenData {
    pub id: Uuid,
    /// `cn_…`: shown this once, stored only as a hash.
    pub token: String,
    pub name: String,
    pub abilities: Vec<String>,
    pub expires_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MessageData {
    pub message: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RedirectData {
    /// Send the browser here; it comes back to `/api/auth/{provider}/callback`.
    pub redirect_url: String,
}

// --- requests -----------------------------------------------------------------------------

#[derive(Debug, Deserialize, ToSchema)]
pub struct RegisterRequest {
    /// Leading and trailing spaces do not count.
    #[schema(example = "John Doe", min_length = 2, max_length = 255)]
    pub name: String,
    /// An e-mail address (stored trimmed and lower-cased).
    #[schema(example = "user@example.com", min_length = 3, max_length = 254)]
    pub email: String,
    #[schema(min_length = 8, max_length = 1024)]
    pub password: String,
    /// The same as `password`.
    #[schema(min_length = 8, max_length = 1024)]
    pub password_confirmation: String,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct LoginRequest {
    pub email: String,
    pub password: String,
    /// A longer-lived token (365 days instead of 30 by default).
    #[serde(default)]
    pub remember: bool,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct CreateTokenRequest {
    #[schema(min_length = 1, max_length = 255)]
    pub name: String,
    /// Defaults to `["*"]`; never more than the calling token has.
    #[schema(min_items = 1)]
    pub abilities: Option<Vec<String>>,
    /// Omitted: the token does not expire.
    #[schema(minimum = 1, maximum = 3650)]
    pub expires_in_days: Option<i64>,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct ForgotPasswordRequest {
    pub email: String,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct ResetPasswordRequest {
    pub email: String,
    /// The token from the e-mailed link.
    pub token: String,
    #[schema(min_length = 8, max_length = 1024)]
    pub password: String,
    #[schema(min_length = 8, max_length = 1024)]
    pub password_confirmation: String,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CallbackQuery {
    /// The authorization code from the provider.
    pub code: String,
    /// The `state` the redirect URL carried.
    pub state: String,
}

// --- handlers -----------------------------------------------------------------------------

/// Create an account and sign it in.
#[utoipa::path(post, path = "/auth/register", tag = "auth", request_body = RegisterRequest,
    responses(
        (status = 201, body = Envelope<SignInData>),
        (status = 422, description = "Invalid fields or e-mail taken", body = ErrorEnvelope),
        (status = 429, body = ErrorEnvelope),
    ))]
pub async fn register(
    State(state): State<AppState>,
    ApiJson(req): ApiJson<RegisterRequest>,
) -> Result<Reply<SignInData>> {
    let account = NewAccount {
        name: req.name,
        email: req.email,
        password: req.password,
    };
    let signed_in = accounts::register(
        state.store(),
        account,
        &req.password_confirmation,
        &state.config().auth,
    )
    .await?;
    Ok(Reply::created(signed_in.into()))
}

/// Sign in with e-mail and password.
#[utoipa::path(post, path = "/auth/login", tag = "auth", request_body = LoginRequest,
    responses(
        (status = 200, body = Envelope<SignInData>),
        (status = 401, description = "AUTH_002: wrong e-mail or password", body = ErrorEnvelope),
        (status = 422, body = ErrorEnvelope),
        (status = 429, description = "Per IP or per account", body = ErrorEnvelope),
    ))]
pub async fn login(
    State(state): State<AppState>,
    ClientAddress(address): ClientAddress,
    ApiJson(req): ApiJson<LoginRequest>,
) -> Result<Reply<SignInData>> {
    let email = accounts::normalize_email(&req.email);
    // Per account *and* address: guessing from one place is slowed, and nobody elsewhere can
    // lock the account's owner out by failing on purpose.
    let from = crate::limits::address_key(address);
    state
        .login_limiter()
        .check(&[b"login:", email.as_bytes(), b"|", &from])?;
    let signed_in = accounts::login(
        state.store(),
        &email,
        req.password,
        req.remember,
        &state.config().auth,
    )
    .await?;
    Ok(Reply::ok(signed_in.into()))
}

/// Ask for a password-reset link. Answers the same whether or not the address has an account.
#[utoipa::path(post, path = "/auth/forgot-password", tag = "auth", request_body = ForgotPasswordRequest,
    responses(
        (status = 200, body = Envelope<MessageData>),
        (status = 400, description = "AUTH_003: the mail server refused the message", body = ErrorEnvelope),
        (status = 422, body = ErrorEnvelope),
        (status = 429, body = ErrorEnvelope),
    ))]
pub async fn forgot_password(
    State(state): State<AppState>,
    ApiJson(req): ApiJson<ForgotPasswordRequest>,
) -> Result<Reply<MessageData>> {
    let config = state.config();
    password_reset::request_link(
        state.store(),
        state.mailer(),
        &config.auth,
        &config.public_url(),
        &req.email,
    )
    .await?;
    Ok(Reply::ok(MessageData {
        message: "If the address has an account, a reset link is on its way.".into(),
    }))
}

/// Set a new password with the e-mailed token; every existing token of the account is revoked.
#[utoipa::path(post, path = "/auth/reset-password", tag = "auth", request_body = ResetPasswordRequest,
    responses(
        (status = 200, body = Envelope<MessageData>),
        (status = 400, description = "AUTH_004: invalid, expired or used token", body = ErrorEnvelope),
        (status = 422, body = ErrorEnvelope),
        (status = 429, body = ErrorEnvelope),
    ))]
pub async fn reset_password(
    State(state): State<AppState>,
    ApiJson(req): ApiJson<ResetPasswordRequest>,
) -> Result<Reply<MessageData>> {
    password_reset::reset(
        state.store(),
        ResetForm {
            email: req.email,
            token: req.token,
            password: req.password,
            password_confirmation: req.password_confirmation,
        },
    )
    .await?;
    Ok(Reply::ok(MessageData {
        message: "Your password has been reset. Sign in again.".into(),
    }))
}

/// Start OAuth sign-in: the provider URL, with `state` and a PKCE challenge.
#[utoipa::path(get, path = "/auth/{provider}/redirect", tag = "auth",
    params(("provider" = String, Path, description = "`github` or `google`")),
    responses(
        (status = 200, body = Envelope<RedirectData>),
        (status = 400, description = "AUTH_001: unknown or unconfigured provider", body = ErrorEnvelope),
        (status = 429, body = ErrorEnvelope),
    ))]
pub async fn oauth_redirect(
    State(state): State<AppState>,
    ApiPath(provider): ApiPath<String>,
) -> Result<Reply<RedirectData>> {
    let provider: Provider = provider.parse()?;
    let redirect_url = state.oauth().redirect_url(state.store(), provider).await?;
    Ok(Reply::ok(RedirectData { redirect_url }))
}

/// Finish OAuth sign-in: verifies `state`, exchanges `code`, signs in or creates the user.
#[utoipa::path(get, path = "/auth/{provider}/callback", tag = "auth",
    params(("provider" = String, Path, description = "`github` or `google`"), CallbackQuery),
    responses(
        (status = 200, body = Envelope<SignInData>),
        (status = 400, description = "AUTH_001: unknown or unconfigured provider", body = ErrorEnvelope),
        (status = 401, description = "AUTH_002: the provider refused the code", body = ErrorEnvelope),
        (status = 409, description = "AUTH_008: unverified address of an existing account", body = ErrorEnvelope),
        (status = 422, description = "Missing code, or invalid/expired state", body = ErrorEnvelope),
        (status = 429, body = ErrorEnvelope),
    ))]
pub async fn oauth_callback(
    State(state): State<AppState>,
    ApiPath(provider): ApiPath<String>,
    // Taken as a result so that an unknown provider (AUTH_001) is said before a bad query.
    query: std::result::Result<ApiQuery<CallbackQuery>, ApiError>,
) -> Result<Reply<SignInData>> {
    let provider: Provider = provider.parse()?;
    let ApiQuery(query) = query?;
    let signed_in = state
        .oauth()
        .callback(
            state.store(),
            &state.config().auth,
            provider,
            &query.code,
            &query.state,
        )
        .await?;
    Ok(Reply::ok(signed_in.into()))
}

/// The signed-in user.
#[utoipa::path(get, path = "/auth/me", tag = "auth", security(("bearer" = [])),
    responses(
        (status = 200, body = Envelope<MeData>),
        (status = 401, description = "AUTH_005: missing, unknown, revoked or expired token", body = ErrorEnvelope),
        (status = 429, body = ErrorEnvelope),
    ))]
pub async fn me(AuthUser(principal): AuthUser) -> Reply<MeData> {
    Reply::ok(MeData {
        user: UserView::from(&principal.user),
    })
}

/// Revoke the token this request was made with.
#[utoipa::path(post, path = "/auth/logout", tag = "auth", security(("bearer" = [])),
    responses(
        (status = 200, description = "`data` is null", body = Envelope<Null>),
        (status = 401, body = ErrorEnvelope),
    ))]
pub async fn logout(
    State(state): State<AppState>,
    AuthUser(principal): AuthUser,
) -> Result<Reply<Null>> {
    accounts::logout(state.store(), &principal).await?;
    Ok(Reply::ok(Null))
}

/// The caller's tokens, newest first. Needs `tokens:read`.
#[utoipa::path(get, path = "/auth/tokens", tag = "auth", security(("bearer" = [])),
    responses(
        (status = 200, body = Envelope<Vec<TokenView>>),
        (status = 401, body = ErrorEnvelope),
        (status = 403, description = "AUTH_006: lacks `tokens:read`", body = ErrorEnvelope),
    ))]
pub async fn list_tokens(
    State(state): State<AppState>,
    AuthUser(principal): AuthUser,
) -> Result<Reply<Vec<TokenView>>> {
    let tokens = accounts::list_tokens(state.store(), &principal).await?;
    Ok(Reply::ok(tokens.into_iter().map(TokenView::from).collect()))
}

/// Create a personal token. Needs `tokens:write`.
#[utoipa::path(post, path = "/auth/tokens", tag = "auth", security(("bearer" = [])),
    request_body = CreateTokenRequest,
    responses(
        (status = 201, body = Envelope<NewTokenData>),
        (status = 401, body = ErrorEnvelope),
        (status = 403, description = "AUTH_006: lacks `tokens:write` or an ability it asks for", body = ErrorEnvelope),
        (status = 422, body = ErrorEnvelope),
    ))]
pub async fn create_token(
    State(state): State<AppState>,
    AuthUser(principal): AuthUser,
    ApiJson(req): ApiJson<CreateTokenRequest>,
) -> Result<Reply<NewTokenData>> {
    let (token, secret) = accounts::create_token(
        state.store(),
        &principal,
        &req.name,
        req.abilities,
        req.expires_in_days,
    )
    .await?;
    Ok(Reply::created(NewTokenData {
        id: token.id,
        token: secret,
        name: token.name,
        abilities: token.abilities.0,
        expires_at: token.expires_at,
    }))
}

/// Revoke one of the caller's tokens. Needs `tokens:write`.
#[utoipa::path(delete, path = "/auth/tokens/{id}", tag = "auth", security(("bearer" = [])),
    params(("id" = Uuid, Path)),
    responses(
        (status = 200, description = "`data` is null", body = Envelope<Null>),
        (status = 401, body = ErrorEnvelope),
        (status = 403, body = ErrorEnvelope),
        (status = 404, description = "AUTH_007: no such token of yours", body = ErrorEnvelope),
        (status = 422, description = "Malformed id", body = ErrorEnvelope),
    ))]
pub async fn revoke_token(
    State(state): State<AppState>,
    AuthUser(principal): AuthUser,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<Reply<Null>> {
    accounts::revoke_token(state.store(), &principal, id).await?;
    Ok(Reply::ok(Null))
}
