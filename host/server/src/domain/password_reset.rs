//! Password reset by e-mailed link: single use, expiring, stored only as a SHA-256 hash.
//! Asking for a link answers the same whether or not the address has an account, so the
//! endpoint cannot be used to find out who has one.

use chrono::Duration;
use uuid::Uuid;

use super::{
    accounts::{self, TokenSecret},
    clock,
    mail::Mailer,
};
use crate::{
    config::AuthSettings,
    error::{ApiError, ErrorCode, Result, Validator},
    store::{PasswordReset, Store},
};

/// `POST /api/auth/forgot-password`. Sends a link when the account exists; `AUTH_003` only
/// when the mail server refused it.
pub async fn request_link(
    store: &dyn Store,
    mailer: &Mailer,
    settings: &AuthSettings,
    public_url: &str,
    email: &str,
) -> Result<()> {
    let email = accounts::normalize_email(email);
    Validator::new()
        .check(
            accounts::is_plausible_email(&email),
            "email",
            "The email must be a valid email address.",
        )
        .finish()?;
    let Some(user) = store.user_by_email(&email).await? else {
        tracing::debug!("password reset asked for an unknown address");
        return Ok(());
    };
    let secret = TokenSecret::generate("");
    let now = clock::now();
    let minutes = settings.reset_token_minutes;
    store
        .insert_password_reset(&PasswordReset {
            id: Uuid::now_v7(),
            user_id: user.id,
            token_hash: secret.hash.to_vec(),
            expires_at: now + Duration::minutes(minutes.into()),
            used_at: None,
            created_at: now,
        })
        .await?;
    let link = format!(
        "{public_url}/reset-password?token={}&email={}",
        secret.plain,
        form_urlencoded::byte_serialize(email.as_bytes()).collect::<String>()
    );
    let body = format!(
        "Hello {},\n\nSomeone asked to reset the password of your ClaudeNest account.\n\
         To choose a new password, open this link within {minutes} minutes:\n\n{link}\n\n\
         Or call POST /api/auth/reset-password with this token: {}\n\n\
         If it was not you, ignore this message; your password stays as it is.\n",
        user.name, secret.plain
    );
    mailer
        .send(&email, "Reset your ClaudeNest password", body)
        .await
        .map_err(|err| {
            tracing::warn!(error = %err, "sending the password reset link failed");
            ApiError::new(ErrorCode::ResetLinkNotSent)
        })
}

/// What `POST /api/auth/reset-password` carries.
pub struct ResetForm {
    pub email: String,
    pub token: String,
    pub password: String,
    pub password_confirmation: String,
}

/// Sets a new password with a link's token and revokes every token of the account.
/// Invalid, expired, used, or another address's token: `AUTH_004`.
pub async fn reset(store: &dyn Store, form: ResetForm) -> Result<()> {
    let chars = form.password.chars().count();
    Validator::new()
        .check(
            !form.token.is_empty(),
            "token",
            "The token field is required.",
        )
        .check(
            (accounts::MIN_PASSWORD_CHARS..=accounts::MAX_PASSWORD_CHARS).contains(&chars),
            "password",
            format!(
                "The password must be between {} and {} characters.",
                accounts::MIN_PASSWORD_CHARS,
                accounts::MAX_PASSWORD_CHARS
            ),
        )
        .check(
            form.password == form.password_confirmation,
            "password_confirmation",
            "The password confirmation does not match.",
        )
        .finish()?;
    let invalid = || ApiError::new(ErrorCode::InvalidResetToken);
    let user = store
        .user_by_email(&accounts::normalize_email(&form.email))
        .await?
        .ok_or_else(invalid)?;
    let hash = accounts::hash_token(&form.token);
    let password_hash = accounts::hash_password(form.password).await?;
    let now = clock::now();
    // Scoped to the address's user: a token sent with another address stays unused.
    store
        .consume_password_reset(user.id, &hash, now)
        .await?
        .ok_or_else(invalid)?;
    store
        .reset_password(user.id, Some(&password_hash), now)
        .await?;
    tracing::info!(user_id = %user.id, "password reset; all tokens revoked");
    Ok(())
}
