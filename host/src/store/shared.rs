//! The queries whose SQL and bindings are the same on both backends, written once.
//!
//! `store_impl!(Backend { …dialect-specific methods… })` writes the backend's whole
//! `impl Store` block: the methods given, plus the ones listed here, run against the backend's
//! `self.pool`. A method moves out of this list into the backends only when a dialect needs
//! something the other lacks (pgvector, SKIP LOCKED…). The macro wraps the whole block because
//! `#[async_trait]` must see every method. Names resolve where the macro is used: each backend
//! imports `super::shared::prelude::*`.

/// What the macro body names.
pub(super) mod prelude {
    pub(crate) use chrono::{DateTime, Utc};
    pub(crate) use uuid::Uuid;

    pub(crate) use crate::store::{
        ApiToken, OAuthIdentity, OAuthState, PasswordReset, Store, StoreResult, TokenWithOwner,
        User, sql,
    };
}

macro_rules! store_impl {
    ($backend:ty { $($specific:tt)* }) => {
        #[async_trait::async_trait]
        impl Store for $backend {
            $($specific)*

            async fn ping(&self) -> StoreResult<()> {
                sqlx::query(sql::PING).execute(&self.pool).await?;
                Ok(())
            }

            async fn insert_user(&self, u: &User) -> StoreResult<()> {
                insert_user(&self.pool, u).await
            }

            async fn user_by_id(&self, id: Uuid) -> StoreResult<Option<User>> {
                let row = sqlx::query_as(sql::USER_BY_ID).bind(id);
                Ok(row.fetch_optional(&self.pool).await?)
            }

            async fn user_by_email(&self, email: &str) -> StoreResult<Option<User>> {
                let row = sqlx::query_as(sql::USER_BY_EMAIL).bind(email);
                Ok(row.fetch_optional(&self.pool).await?)
            }

            async fn confirm_user_email(
                &self,
                user_id: Uuid,
                at: DateTime<Utc>,
                avatar_url: Option<&str>,
            ) -> StoreResult<()> {
                let query = sqlx::query(sql::CONFIRM_USER_EMAIL).bind(user_id).bind(at);
                query.bind(avatar_url).execute(&self.pool).await?;
                Ok(())
            }

            async fn reset_password(
                &self,
                user_id: Uuid,
                password_hash: &str,
                at: DateTime<Utc>,
            ) -> StoreResult<()> {
                let mut tx = self.pool.begin().await?;
                let query = sqlx::query(sql::SET_PASSWORD).bind(user_id).bind(password_hash);
                query.bind(at).execute(&mut *tx).await?;
                let query = sqlx::query(sql::REVOKE_ALL_TOKENS).bind(user_id).bind(at);
                query.execute(&mut *tx).await?;
                Ok(tx.commit().await?)
            }

            async fn insert_token(&self, t: &ApiToken) -> StoreResult<()> {
                sqlx::query(sql::INSERT_TOKEN)
                    .bind(t.id)
                    .bind(t.user_id)
                    .bind(&t.name)
                    .bind(&t.token_hash)
                    .bind(&t.abilities)
                    .bind(t.last_used_at)
                    .bind(t.expires_at)
                    .bind(t.revoked_at)
                    .bind(t.created_at)
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }

            async fn token_with_owner(
                &self,
                hash: &[u8],
            ) -> StoreResult<Option<(ApiToken, User)>> {
                let row = sqlx::query_as::<_, TokenWithOwner>(sql::TOKEN_WITH_OWNER_BY_HASH);
                let row = row.bind(hash).fetch_optional(&self.pool).await?;
                Ok(row.map(TokenWithOwner::into_parts))
            }

            async fn touch_token(&self, id: Uuid, at: DateTime<Utc>) -> StoreResult<()> {
                let query = sqlx::query(sql::TOUCH_TOKEN).bind(id).bind(at);
                query.execute(&self.pool).await?;
                Ok(())
            }

            async fn tokens_of_user(&self, user_id: Uuid) -> StoreResult<Vec<ApiToken>> {
                let rows = sqlx::query_as(sql::TOKENS_OF_USER).bind(user_id);
                Ok(rows.fetch_all(&self.pool).await?)
            }

            async fn revoke_token(
                &self,
                user_id: Uuid,
                id: Uuid,
                at: DateTime<Utc>,
            ) -> StoreResult<bool> {
                let query = sqlx::query(sql::REVOKE_TOKEN).bind(user_id).bind(id).bind(at);
                Ok(query.execute(&self.pool).await?.rows_affected() == 1)
            }

            async fn insert_user_with_identity(
                &self,
                user: &User,
                identity: &OAuthIdentity,
            ) -> StoreResult<()> {
                let mut tx = self.pool.begin().await?;
                insert_user(&mut *tx, user).await?;
                insert_identity(&mut *tx, identity).await?;
                Ok(tx.commit().await?)
            }

            async fn insert_oauth_identity(&self, identity: &OAuthIdentity) -> StoreResult<()> {
                insert_identity(&self.pool, identity).await
            }

            async fn user_by_oauth_identity(
                &self,
                provider: &str,
                subject: &str,
            ) -> StoreResult<Option<User>> {
                let row = sqlx::query_as(sql::USER_BY_OAUTH_IDENTITY).bind(provider);
                Ok(row.bind(subject).fetch_optional(&self.pool).await?)
            }

            async fn insert_oauth_state(&self, s: &OAuthState) -> StoreResult<()> {
                // Abandoned authorizations are swept whenever a new one starts.
                let sweep = sqlx::query(sql::SWEEP_OAUTH_STATES).bind(s.created_at);
                sweep.execute(&self.pool).await?;
                sqlx::query(sql::INSERT_OAUTH_STATE)
                    .bind(&s.state_hash)
                    .bind(&s.provider)
                    .bind(&s.pkce_verifier)
                    .bind(s.created_at)
                    .bind(s.expires_at)
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }

            async fn take_oauth_state(&self, state_hash: &[u8]) -> StoreResult<Option<OAuthState>> {
                let row = sqlx::query_as(sql::TAKE_OAUTH_STATE).bind(state_hash);
                Ok(row.fetch_optional(&self.pool).await?)
            }

            async fn insert_password_reset(&self, r: &PasswordReset) -> StoreResult<()> {
                sqlx::query(sql::INSERT_PASSWORD_RESET)
                    .bind(r.id)
                    .bind(r.user_id)
                    .bind(&r.token_hash)
                    .bind(r.expires_at)
                    .bind(r.used_at)
                    .bind(r.created_at)
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }

            async fn consume_password_reset(
                &self,
                user_id: Uuid,
                token_hash: &[u8],
                now: DateTime<Utc>,
            ) -> StoreResult<Option<PasswordReset>> {
                let row = sqlx::query_as(sql::CONSUME_PASSWORD_RESET).bind(user_id);
                Ok(row.bind(token_hash).bind(now).fetch_optional(&self.pool).await?)
            }
        }

        /// Shared by `insert_user` and `insert_user_with_identity` (pool or transaction).
        async fn insert_user<'e, E>(executor: E, u: &User) -> StoreResult<()>
        where
            E: sqlx::Executor<'e, Database = <$backend as $crate::store::Backend>::Db>,
        {
            sqlx::query(sql::INSERT_USER)
                .bind(u.id)
                .bind(&u.name)
                .bind(&u.email)
                .bind(&u.password_hash)
                .bind(&u.avatar_url)
                .bind(u.email_verified_at)
                .bind(u.created_at)
                .bind(u.updated_at)
                .execute(executor)
                .await?;
            Ok(())
        }

        async fn insert_identity<'e, E>(executor: E, i: &OAuthIdentity) -> StoreResult<()>
        where
            E: sqlx::Executor<'e, Database = <$backend as $crate::store::Backend>::Db>,
        {
            sqlx::query(sql::INSERT_OAUTH_IDENTITY)
                .bind(i.id)
                .bind(i.user_id)
                .bind(&i.provider)
                .bind(&i.subject)
                .bind(i.created_at)
                .execute(executor)
                .await?;
            Ok(())
        }
    };
}

pub(super) use store_impl;
