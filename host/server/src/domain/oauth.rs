//! Sign-in with GitHub or Google (API §2.1): authorization code flow with PKCE and a
//! single-use, expiring `state`, through the `oauth2` crate.
//!
//! Account matching, in order: an identity already linked to the provider's user id; else an
//! existing account with the same address **only if the provider says the address is
//! verified** (then linked); else a new account. An unverified address that belongs to an
//! existing account is refused (`AUTH_008`) rather than linked. Linking into an account whose
//! address ClaudeNest never saw verified, and which has a password, clears the password and
//! revokes every token first: whoever registered the address before its owner came loses
//! the account (no pre-account takeover).

use std::{str::FromStr, time::Duration as StdDuration};

use chrono::Duration;
use oauth2::{
    AuthUrl, AuthorizationCode, ClientId, ClientSecret, CsrfToken, PkceCodeChallenge,
    PkceCodeVerifier, RedirectUrl, Scope, TokenResponse as _, TokenUrl, basic::BasicClient,
};
use serde::Deserialize;
use uuid::Uuid;

use super::{
    accounts::{self, SignIn},
    clock,
};
use crate::{
    config::{AuthSettings, OAuthProvider, OAuthSettings},
    error::{ApiError, ErrorCode, Result},
    store::{OAuthIdentity, OAuthState, Store, StoreError, User},
};

/// How long a started authorization waits for its callback.
const STATE_TTL: Duration = Duration::minutes(10);
/// Time limit for each call to the provider.
const PROVIDER_TIMEOUT: StdDuration = StdDuration::from_secs(10);

/// The providers the API knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Provider {
    Github,
    Google,
}

impl Provider {
    pub fn as_str(self) -> &'static str {
        match self {
            Provider::Github => "github",
            Provider::Google => "google",
        }
    }

    fn defaults(self) -> ProviderEndpoints {
        match self {
            Provider::Github => ProviderEndpoints {
                auth: "https://github.com/login/oauth/authorize",
                token: "https://github.com/login/oauth/access_token",
                userinfo: "https://api.github.com/user",
                emails: Some("https://api.github.com/user/emails"),
                scopes: &["read:user", "user:email"],
            },
            Provider::Google => ProviderEndpoints {
                auth: "https://accounts.google.com/o/oauth2/v2/auth",
                token: "https://oauth2.googleapis.com/token",
                userinfo: "https://openidconnect.googleapis.com/v1/userinfo",
                emails: None,
                scopes: &["openid", "email", "profile"],
            },
        }
    }
}

impl FromStr for Provider {
    type Err = ApiError;

    /// Anything but `github` or `google` is `AUTH_001`.
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "github" => Ok(Provider::Github),
            "google" => Ok(Provider::Google),
            _ => Err(ApiError::new(ErrorCode::InvalidProvider)
                .with_message(format!("Invalid provider `{s}`: use github or google."))),
        }
    }
}

struct ProviderEndpoints {
    auth: &'static str,
    token: &'static str,
    userinfo: &'static str,
    emails: Option<&'static str>,
    scopes: &'static [&'static str],
}

/// The configured providers and the HTTP client that talks to them.
pub struct OAuth {
    settings: OAuthSettings,
    public_url: String,
    http: reqwest::Client,
}

/// What the provider told us about the user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderUser {
    pub subject: String,
    pub email: Option<String>,
    pub email_verified: bool,
    pub name: Option<String>,
    pub avatar_url: Option<String>,
}

impl OAuth {
    pub fn new(settings: OAuthSettings, public_url: String) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            // The oauth2 crate's advice: following redirects from a token endpoint invites SSRF.
            .redirect(reqwest::redirect::Policy::none())
            .timeout(PROVIDER_TIMEOUT)
            .user_agent(concat!("ClaudeNest/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Self {
            settings,
            public_url,
            http,
        })
    }

    /// The providers this server can sign in with (for the dashboard's buttons).
    pub fn configured(&self) -> Vec<&'static str> {
        [
            (Provider::Github, self.settings.github.is_some()),
            (Provider::Google, self.settings.google.is_some()),
        ]
        .into_iter()
        .filter_map(|(provider, on)| on.then_some(provider.as_str()))
        .collect()
    }

    fn provider_settings(&self, provider: Provider) -> Result<&OAuthProvider> {
        let configured = match provider {
            Provider::Github => self.settings.github.as_ref(),
            Provider::Google => self.settings.google.as_ref(),
        };
        configured.ok_or_else(|| {
            ApiError::new(ErrorCode::InvalidProvider).with_message(format!(
                "Sign-in with {} is not configured on this server.",
                provider.as_str()
            ))
        })
    }

    fn endpoints(&self, provider: Provider) -> Result<(Endpoints, &OAuthProvider)> {
        let settings = self.provider_settings(provider)?;
        let defaults = provider.defaults();
        let url = |configured: &Option<String>, default: &str| {
            configured.clone().unwrap_or_else(|| default.to_owned())
        };
        let redirect = settings.redirect_url.clone().unwrap_or_else(|| {
            format!(
                "{}/api/auth/{}/callback",
                self.public_url,
                provider.as_str()
            )
        });
        let client = BasicClient::new(ClientId::new(settings.client_id.clone()))
            .set_client_secret(ClientSecret::new(
                settings.client_secret.expose().to_owned(),
            ))
            .set_auth_uri(AuthUrl::new(url(&settings.auth_url, defaults.auth)).map_err(bad_url)?)
            .set_token_uri(
                TokenUrl::new(url(&settings.token_url, defaults.token)).map_err(bad_url)?,
            )
            .set_redirect_uri(RedirectUrl::new(redirect).map_err(bad_url)?);
        Ok((
            Endpoints {
                client,
                userinfo: url(&settings.userinfo_url, defaults.userinfo),
                emails: settings
                    .emails_url
                    .clone()
                    .or(defaults.emails.map(str::to_owned)),
                scopes: defaults.scopes,
            },
            settings,
        ))
    }

    /// Starts an authorization: remembers `state` and the PKCE verifier, returns the URL to
    /// send the browser to.
    pub async fn redirect_url(&self, store: &dyn Store, provider: Provider) -> Result<String> {
        let (endpoints, _) = self.endpoints(provider)?;
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let mut request = endpoints
            .client
            .authorize_url(CsrfToken::new_random)
            .set_pkce_challenge(challenge);
        for scope in endpoints.scopes {
            request = request.add_scope(Scope::new((*scope).to_owned()));
        }
        let (url, state) = request.url();
        let now = clock::now();
        store
            .insert_oauth_state(&OAuthState {
                state_hash: accounts::hash_token(state.secret()).to_vec(),
                provider: provider.as_str().to_owned(),
                pkce_verifier: verifier.secret().clone(),
                created_at: now,
                expires_at: now + STATE_TTL,
            })
            .await?;
        Ok(url.to_string())
    }

    /// Finishes an authorization: checks `state`, exchanges `code`, reads the user and signs
    /// them in (creating or linking the account as the module docs say).
    pub async fn callback(
        &self,
        store: &dyn Store,
        auth: &AuthSettings,
        provider: Provider,
        code: &str,
        state: &str,
    ) -> Result<SignIn> {
        let (endpoints, _) = self.endpoints(provider)?;
        let invalid_state =
            || ApiError::invalid_field("state", "The state is invalid or expired; sign in again.");
        let pending = store
            .take_oauth_state(&accounts::hash_token(state))
            .await?
            .ok_or_else(invalid_state)?;
        if pending.provider != provider.as_str() || pending.expires_at <= clock::now() {
            return Err(invalid_state());
        }
        let token = endpoints
            .client
            .exchange_code(AuthorizationCode::new(code.to_owned()))
            .set_pkce_verifier(PkceCodeVerifier::new(pending.pkce_verifier))
            .request_async(&self.http)
            .await
            .map_err(|err| {
                tracing::warn!(provider = provider.as_str(), error = %err, "code exchange failed");
                ApiError::new(ErrorCode::InvalidCredentials)
                    .with_message("The provider did not accept the authorization code.")
            })?;
        let access = token.access_token().secret();
        let profile = self
            .fetch_user(provider, &endpoints, access)
            .await
            .map_err(|err| {
                tracing::warn!(provider = provider.as_str(), error = %err, "reading the user failed");
                ApiError::new(ErrorCode::Unavailable)
                    .with_message("The identity provider did not return the user.")
            })?;
        let user = sign_in_or_create(store, provider, profile).await?;
        accounts::start_session(store, user, provider.as_str(), auth.session_token_days).await
    }

    async fn fetch_user(
        &self,
        provider: Provider,
        endpoints: &Endpoints,
        access_token: &str,
    ) -> anyhow::Result<ProviderUser> {
        let get = |url: &str| {
            self.http
                .get(url)
                .bearer_auth(access_token)
                .header("accept", "application/json")
        };
        match provider {
            Provider::Google => {
                let info: GoogleUser = get(&endpoints.userinfo)
                    .send()
                    .await?
                    .error_for_status()?
                    .json()
                    .await?;
                Ok(ProviderUser {
                    subject: info.sub,
                    email: info.email,
                    email_verified: info.email_verified.unwrap_or(false),
                    name: info.name,
                    avatar_url: info.picture,
                })
            }
            Provider::Github => {
                let info: GithubUser = get(&endpoints.userinfo)
                    .send()
                    .await?
                    .error_for_status()?
                    .json()
                    .await?;
                // GitHub's profile e-mail carries no verified flag; the e-mails list does.
                let mut primary = None;
                if let Some(url) = &endpoints.emails {
                    let emails: Vec<GithubEmail> =
                        get(url).send().await?.error_for_status()?.json().await?;
                    primary = emails.into_iter().find(|e| e.primary);
                }
                Ok(ProviderUser {
                    subject: info.id.to_string(),
                    email_verified: primary.as_ref().is_some_and(|e| e.verified),
                    email: primary.map(|e| e.email).or(info.email),
                    name: info.name.or(Some(info.login)),
                    avatar_url: info.avatar_url,
                })
            }
        }
    }
}

struct Endpoints {
    client: BasicClient<
        oauth2::EndpointSet,
        oauth2::EndpointNotSet,
        oauth2::EndpointNotSet,
        oauth2::EndpointNotSet,
        oauth2::EndpointSet,
    >,
    userinfo: String,
    emails: Option<String>,
    scopes: &'static [&'static str],
}

fn bad_url(err: oauth2::url::ParseError) -> ApiError {
    ApiError::internal(anyhow::anyhow!(
        "OAuth endpoint URL in the configuration: {err}"
    ))
}

#[derive(Deserialize)]
struct GoogleUser {
    sub: String,
    email: Option<String>,
    email_verified: Option<bool>,
    name: Option<String>,
    picture: Option<String>,
}

#[derive(Deserialize)]
struct GithubUser {
    id: u64,
    login: String,
    name: Option<String>,
    email: Option<String>,
    avatar_url: Option<String>,
}

#[derive(Deserialize)]
struct GithubEmail {
    email: String,
    primary: bool,
    verified: bool,
}

/// Finds or creates the account for a provider's user.
pub async fn sign_in_or_create(
    store: &dyn Store,
    provider: Provider,
    profile: ProviderUser,
) -> Result<User> {
    if let Some(user) = store
        .user_by_oauth_identity(provider.as_str(), &profile.subject)
        .await?
    {
        return Ok(user);
    }
    let email = profile
        .email
        .as_deref()
        .map(accounts::normalize_email)
        .filter(|e| accounts::is_plausible_email(e))
        .ok_or_else(|| {
            ApiError::new(ErrorCode::InvalidCredentials)
                .with_message("The provider did not share an e-mail address.")
        })?;
    let now = clock::now();
    let identity = |user_id| OAuthIdentity {
        id: Uuid::now_v7(),
        user_id,
        provider: provider.as_str().to_owned(),
        subject: profile.subject.clone(),
        created_at: now,
    };
    if let Some(existing) = store.user_by_email(&email).await? {
        if !profile.email_verified {
            return Err(ApiError::new(ErrorCode::OAuthAccountConflict).with_message(
                "An account with this email exists and the provider has not verified the \
                 address: sign in with your password instead.",
            ));
        }
        if existing.email_verified_at.is_none() && existing.password_hash.is_some() {
            // Whoever set this password never proved the address; the provider just did. The
            // password and every token go, so an account registered in wait for the
            // address's owner keeps nobody else inside it.
            store.reset_password(existing.id, None, now).await?;
            tracing::warn!(user_id = %existing.id, provider = provider.as_str(), "linking a verified address to an account nobody verified: its password and tokens are revoked");
        }
        store.insert_oauth_identity(&identity(existing.id)).await?;
        store
            .confirm_user_email(existing.id, now, profile.avatar_url.as_deref())
            .await?;
        tracing::info!(user_id = %existing.id, provider = provider.as_str(), "linked OAuth identity by verified e-mail");
        return Ok(store.user_by_id(existing.id).await?.unwrap_or(existing));
    }
    let user = User {
        id: Uuid::now_v7(),
        name: profile
            .name
            .filter(|n| !n.trim().is_empty())
            .unwrap_or_else(|| email.split('@').next().unwrap_or_default().to_owned()),
        email,
        password_hash: None,
        avatar_url: profile.avatar_url,
        email_verified_at: profile.email_verified.then_some(now),
        created_at: now,
        updated_at: now,
    };
    match store
        .insert_user_with_identity(&user, &identity(user.id))
        .await
    {
        Ok(()) => Ok(user),
        // A concurrent callback for the same person won the race: use what it made.
        Err(StoreError::Conflict) => store
            .user_by_oauth_identity(provider.as_str(), &profile.subject)
            .await?
            .ok_or_else(|| ApiError::new(ErrorCode::OAuthAccountConflict)),
        Err(err) => Err(err.into()),
    }
}
