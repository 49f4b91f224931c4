//! The queries whose SQL and bindings are the same on both backends, written once.
//!
//! `store_impl!(Backend { …dialect-specific methods… })` writes the backend's whole
//! `impl Store` block: the methods given, plus the ones listed here, run against the backend's
//! `self.pool`. A method moves out of this list into the backends only when a dialect needs
//! something the other lacks (pgvector, SKIP LOCKED…). The macro wraps the whole block because
//! `#[async_trait]` must see every method.

macro_rules! store_impl {
    ($backend:ty { $($specific:tt)* }) => {
    #[async_trait::async_trait]
    impl $crate::store::Store for $backend {
    $($specific)*

    async fn ping(&self) -> $crate::store::StoreResult<()> {
        sqlx::query($crate::store::sql::PING).execute(&self.pool).await?;
        Ok(())
    }

    async fn insert_user(&self, u: &$crate::store::User) -> $crate::store::StoreResult<()> {
        sqlx::query($crate::store::sql::INSERT_USER)
            .bind(u.id)
            .bind(&u.name)
            .bind(&u.email)
            .bind(&u.password_hash)
            .bind(&u.avatar_url)
            .bind(u.email_verified_at)
            .bind(u.created_at)
            .bind(u.updated_at)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn user_by_id(&self, id: ::uuid::Uuid) -> $crate::store::StoreResult<Option<$crate::store::User>> {
        let row = sqlx::query_as($crate::store::sql::USER_BY_ID).bind(id);
        Ok(row.fetch_optional(&self.pool).await?)
    }

    async fn user_by_email(&self, email: &str) -> $crate::store::StoreResult<Option<$crate::store::User>> {
        let row = sqlx::query_as($crate::store::sql::USER_BY_EMAIL).bind(email);
        Ok(row.fetch_optional(&self.pool).await?)
    }

    async fn insert_token(&self, t: &$crate::store::ApiToken) -> $crate::store::StoreResult<()> {
        sqlx::query($crate::store::sql::INSERT_TOKEN)
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

    async fn token_by_hash(&self, hash: &[u8]) -> $crate::store::StoreResult<Option<$crate::store::ApiToken>> {
        let row = sqlx::query_as($crate::store::sql::TOKEN_BY_HASH).bind(hash);
        Ok(row.fetch_optional(&self.pool).await?)
    }

    async fn touch_token(&self, id: ::uuid::Uuid, at: ::chrono::DateTime<::chrono::Utc>) -> $crate::store::StoreResult<()> {
        let query = sqlx::query($crate::store::sql::TOUCH_TOKEN).bind(id).bind(at);
        query.execute(&self.pool).await?;
        Ok(())
    }

    async fn tokens_of_user(&self, user_id: ::uuid::Uuid) -> $crate::store::StoreResult<Vec<$crate::store::ApiToken>> {
        let rows = sqlx::query_as($crate::store::sql::TOKENS_OF_USER).bind(user_id);
        Ok(rows.fetch_all(&self.pool).await?)
    }

    async fn revoke_token(&self, user_id: ::uuid::Uuid, id: ::uuid::Uuid, at: ::chrono::DateTime<::chrono::Utc>) -> $crate::store::StoreResult<bool> {
        let query = sqlx::query($crate::store::sql::REVOKE_TOKEN).bind(user_id).bind(id).bind(at);
        Ok(query.execute(&self.pool).await?.rows_affected() == 1)
    }
    }
    };
}

pub(super) use store_impl;
