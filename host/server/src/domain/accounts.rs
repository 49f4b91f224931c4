//! Users, passwords and API tokens.
//!
//! Tokens are `cn_` + 48 characters from the OS CSPRNG, shown once, stored only as their
//! SHA-256. Passwords are argon2id with OWASP's parameters, hashed off the async threads.

use std::sync::{Arc, LazyLock};

use argon2::{
    Argon2, PasswordHash, PasswordHasher, PasswordVerifier,
    password_hash::{SaltString, rand_core::OsRng},
};
use chrono::{DateTime, Duration, Utc};
use sqlx::types::Json;
use subtle::ConstantTimeEq;
use uuid::Uuid;

use super::{abilities, clock};
use crate::{
    config::AuthSettings,
    error::{ApiError, ErrorCode, Result, Validator},
    store::{ApiToken, Store, StoreError, User},
};

/// Prefix of personal API tokens.
pub const USER_TOKEN_PREFIX: &str = "cn_";
const TOUCH_INTERVAL: Duration = Duration::seconds(60);

pub use claudenest_protocol::tokens::{TokenSecret, hash_token};

/// Who is calling, as proven by a bearer token.
#[derive(Debug, Clone)]
pub struct Principal {
    pub user: User,
    pub token_id: Uuid,
    pub abilities: Arc<[String]>,
}

impl Principal {
    /// `*` grants everything; otherwise the exact ability must be listed.
    pub fn can(&self, ability: &str) -> bool {
        abilities::grants(&self.abilities, ability)
    }

    /// `AUTH_006` unless the token carries `ability`.
    pub fn require(&self, ability: &str) -> Result<()> {
        if self.can(ability) {
            Ok(())
        } else {
            Err(ApiError::new(ErrorCode::Forbidden)
                .with_message(format!("This token lacks the `{ability}` ability.")))
        }
    }
}

/// Resolves a bearer token to its user. Every failure is the same `AUTH_005` to the caller;
/// the precise reason is logged at debug.
pub async fn authenticate(store: &dyn Store, bearer: &str) -> Result<Principal> {
    let unauthenticated = |why: &str| {
        tracing::debug!(reason = why, "token rejected");
        ApiError::new(ErrorCode::Unauthenticated)
    };
    if !bearer.starts_with(USER_TOKEN_PREFIX) {
        return Err(unauthenticated("unknown token prefix"));
    }
    let hash = hash_token(bearer);
    let (token, user) = store
        .token_with_owner(&hash)
        .await?
        .ok_or_else(|| unauthenticated("no such token"))?;
    // The lookup already matched on the hash; this constant-time comparison keeps the
    // decision itself free of timing differences, whatever the index does.
    if !bool::from(token.token_hash.as_slice().ct_eq(&hash)) {
        return Err(unauthenticated("hash mismatch"));
    }
    let now = clock::now();
    if !token.is_active(now) {
        return Err(unauthenticated("token revoked or expired"));
    }
    if token
        .last_used_at
        .is_none_or(|last| now - last >= TOUCH_INTERVAL)
    {
        store.touch_token(token.id, now).await?;
    }
    Ok(Principal {
        user,
        token_id: token.id,
        abilities: token.abilities.0.into(),
    })
}

/// What it takes to open an account with a password.
pub struct NewAccount {
    pub name: String,
    pub email: String,
    pub password: String,
}

/// Trimmed, lower-cased: the form e-mail addresses are stored and looked up in.
pub fn normalize_email(email: &str) -> String {
    email.trim().to_lowercase()
}

/// A deliberately small check: one `@`, something on each side, a dot in the domain, no spaces.
pub fn is_plausible_email(email: &str) -> bool {
    let Some((local, domain)) = email.split_once('@') else {
        return false;
    };
    !local.is_empty()
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !domain.contains('@')
        && !email.chars().any(char::is_whitespace)
        && email.len() <= 254
}

impl NewAccount {
    /// Adds this account's field problems to `v` (without failing yet).
    fn validate(&self, v: &mut Validator) {
        v.check_length(
            &self.name,
            2,
            255,
            "name",
            "The name must be between 2 and 255 characters.",
        )
        .check(
            is_plausible_email(&normalize_email(&self.email)),
            "email",
            "The email must be a valid email address.",
        )
        .check(
            (MIN_PASSWORD_CHARS..=MAX_PASSWORD_CHARS).contains(&self.password.chars().count()),
            "password",
            format!(
                "The password must be between {MIN_PASSWORD_CHARS} and {MAX_PASSWORD_CHARS} characters."
            ),
        );
    }
}

pub const MIN_PASSWORD_CHARS: usize = 8;
/// argon2 takes any length; this bounds the work one request can ask for.
pub const MAX_PASSWORD_CHARS: usize = 1024;

/// Creates a password account. An e-mail already in use answers `VAL_001` on `email`.
pub async fn create_account(store: &dyn Store, new: NewAccount) -> Result<User> {
    let mut v = Validator::new();
    new.validate(&mut v);
    v.finish()?;
    insert_account(store, new).await
}

/// Stores an already validated account.
async fn insert_account(store: &dyn Store, new: NewAccount) -> Result<User> {
    let password_hash = hash_password(new.password).await?;
    let now = clock::now();
    let user = User {
        id: Uuid::now_v7(),
        name: new.name.trim().to_owned(),
        email: normalize_email(&new.email),
        password_hash: Some(password_hash),
        avatar_url: None,
        email_verified_at: None,
        created_at: now,
        updated_at: now,
    };
    match store.insert_user(&user).await {
        Ok(()) => Ok(user),
        Err(StoreError::Conflict) => Err(ApiError::invalid_field(
            "email",
            "The email has already been taken.",
        )),
        Err(err) => Err(err.into()),
    }
}

/// A signed-in user and the token that proves it (login, register, OAuth callback).
pub struct SignIn {
    pub user: User,
    pub token: String,
    pub expires_at: DateTime<Utc>,
}

/// Issues an all-abilities session token that lives `days`.
pub async fn start_session(store: &dyn Store, user: User, name: &str, days: u32) -> Result<SignIn> {
    let expires_at = clock::now() + Duration::days(days.into());
    let (_, token) = issue_token(store, user.id, name, vec!["*".into()], Some(expires_at)).await?;
    Ok(SignIn {
        user,
        token,
        expires_at,
    })
}

/// `POST /api/auth/register`: opens an account and signs it in.
pub async fn register(
    store: &dyn Store,
    account: NewAccount,
    password_confirmation: &str,
    settings: &AuthSettings,
) -> Result<SignIn> {
    let mut v = Validator::new();
    account.validate(&mut v);
    v.check(
        account.password == password_confirmation,
        "password_confirmation",
        "The password confirmation does not match.",
    );
    v.finish()?;
    let user = insert_account(store, account).await?;
    start_session(store, user, "registration", settings.session_token_days).await
}

/// `POST /api/auth/login`. Unknown e-mail and wrong password are the same `AUTH_002`, and
/// both cost one argon2 verification, so neither the answer nor its timing tells them apart.
pub async fn login(
    store: &dyn Store,
    email: &str,
    password: String,
    remember: bool,
    settings: &AuthSettings,
) -> Result<SignIn> {
    let user = store.user_by_email(&normalize_email(email)).await?;
    let phc = user
        .as_ref()
        .and_then(|u| u.password_hash.clone())
        .unwrap_or_else(|| DUMMY_HASH.clone());
    let matches = verify_password(password, phc).await?;
    let user = match user {
        Some(user) if matches && user.password_hash.is_some() => user,
        _ => return Err(ApiError::new(ErrorCode::InvalidCredentials)),
    };
    let days = if remember {
        settings.remember_token_days
    } else {
        settings.session_token_days
    };
    start_session(store, user, "login", days).await
}

/// A real argon2id hash of a random password, verified against when the account does not
/// exist so that path costs what a real check costs.
static DUMMY_HASH: LazyLock<String> = LazyLock::new(|| {
    let salt = SaltString::generate(&mut OsRng);
    let secret = TokenSecret::generate("").plain;
    argon2()
        .hash_password(secret.as_bytes(), &salt)
        .expect("hashing a random password")
        .to_string()
});

/// Whether the API token that minted a child token (`ws_`, `mcs_`) still works: children die
/// with their parent — revoked, expired, logged out, or revoked by a password reset.
pub async fn parent_is_live(store: &dyn Store, parent: Option<Uuid>) -> Result<bool> {
    let Some(parent) = parent else {
        return Ok(false);
    };
    Ok(store
        .token(parent)
        .await?
        .is_some_and(|t| t.is_active(clock::now())))
}

/// `POST /api/auth/logout`: revokes the token the request was made with.
pub async fn logout(store: &dyn Store, principal: &Principal) -> Result<()> {
    store
        .revoke_token(principal.user.id, principal.token_id, clock::now())
        .await?;
    Ok(())
}

/// `GET /api/auth/tokens`.
pub async fn list_tokens(store: &dyn Store, principal: &Principal) -> Result<Vec<ApiToken>> {
    principal.require(abilities::TOKENS_READ)?;
    Ok(store.tokens_of_user(principal.user.id).await?)
}

/// `POST /api/auth/tokens`: a new personal token with at most the caller's abilities.
pub async fn create_token(
    store: &dyn Store,
    principal: &Principal,
    name: &str,
    wanted: Option<Vec<String>>,
    expires_in_days: Option<i64>,
) -> Result<(ApiToken, String)> {
    principal.require(abilities::TOKENS_WRITE)?;
    let wanted = wanted.unwrap_or_else(|| vec!["*".into()]);
    let mut v = Validator::new();
    v.check_length(
        name,
        1,
        255,
        "name",
        "The name must be between 1 and 255 characters.",
    )
    .check(
        !wanted.is_empty(),
        "abilities",
        "The abilities must not be empty.",
    );
    for ability in wanted.iter().filter(|a| !abilities::is_known(a)) {
        v.add("abilities", format!("Unknown ability `{ability}`."));
    }
    if let Some(days) = expires_in_days {
        v.check(
            (1..=3650).contains(&days),
            "expires_in_days",
            "The expires in days must be between 1 and 3650.",
        );
    }
    v.finish()?;
    if let Some(missing) = wanted.iter().find(|a| !principal.can(a)) {
        return Err(ApiError::new(ErrorCode::Forbidden).with_message(format!(
            "This token cannot grant the `{missing}` ability it does not have."
        )));
    }
    let expires_at = expires_in_days.map(|days| clock::now() + Duration::days(days));
    issue_token(store, principal.user.id, name.trim(), wanted, expires_at).await
}

/// `DELETE /api/auth/tokens/{id}`: another user's token id is "not found", like a missing one.
pub async fn revoke_token(store: &dyn Store, principal: &Principal, token_id: Uuid) -> Result<()> {
    principal.require(abilities::TOKENS_WRITE)?;
    if store
        .revoke_token(principal.user.id, token_id, clock::now())
        .await?
    {
        Ok(())
    } else {
        Err(ApiError::new(ErrorCode::TokenNotFound))
    }
}

/// Issues a new personal token for `user_id`; returns the stored row and the secret to show once.
pub async fn issue_token(
    store: &dyn Store,
    user_id: Uuid,
    name: &str,
    abilities: Vec<String>,
    expires_at: Option<DateTime<Utc>>,
) -> Result<(ApiToken, String)> {
    let secret = TokenSecret::generate(USER_TOKEN_PREFIX);
    let token = ApiToken {
        id: Uuid::now_v7(),
        user_id,
        name: name.to_owned(),
        token_hash: secret.hash.to_vec(),
        abilities: Json(abilities),
        last_used_at: None,
        expires_at,
        revoked_at: None,
        created_at: clock::now(),
    };
    store.insert_token(&token).await?;
    Ok((token, secret.plain))
}

/// argon2id, m=19 MiB, t=2, p=1 (OWASP's recommendation), on the blocking pool.
pub async fn hash_password(password: String) -> Result<String> {
    tokio::task::spawn_blocking(move || {
        let salt = SaltString::generate(&mut OsRng);
        argon2()
            .hash_password(password.as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(|e| anyhow::anyhow!("hashing password: {e}"))
    })
    .await
    .map_err(ApiError::internal)?
    .map_err(ApiError::internal)
}

/// Checks a password against a stored PHC string on the blocking pool.
pub async fn verify_password(password: String, phc: String) -> Result<bool> {
    tokio::task::spawn_blocking(move || {
        let parsed = PasswordHash::new(&phc).map_err(|e| anyhow::anyhow!("stored hash: {e}"))?;
        Ok::<_, anyhow::Error>(
            argon2()
                .verify_password(password.as_bytes(), &parsed)
                .is_ok(),
        )
    })
    .await
    .map_err(ApiError::internal)?
    .map_err(ApiError::internal)
}

fn argon2() -> Argon2<'static> {
    let params = argon2::Params::new(19 * 1024, 2, 1, None).expect("valid argon2 parameters");
    Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn email_plausibility() {
        assert!(is_plausible_email("a@b.co"));
        for bad in ["", "a", "a@b", "@b.co", "a@.co", "a b@c.co", "a@b.co."] {
            assert!(!is_plausible_email(bad), "{bad}");
        }
    }

    #[tokio::test]
    async fn passwords_hash_with_argon2id_and_verify() {
        let phc = hash_password("correct horse".into()).await.unwrap();
        assert!(phc.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{phc}");
        assert!(
            verify_password("correct horse".into(), phc.clone())
                .await
                .unwrap()
        );
        assert!(!verify_password("wrong horse".into(), phc).await.unwrap());
    }
}
