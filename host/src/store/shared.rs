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

    pub(crate) use sqlx::types::Json;

    pub(crate) use crate::{
        protocol::Environment,
        store::{
            ApiToken, Machine, MachineFilter, OAuthIdentity, OAuthState, Pairing, PasswordReset,
            Store, StoreResult, TokenWithOwner, User, sql,
        },
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

            async fn insert_machine(&self, m: &Machine) -> StoreResult<()> {
                sqlx::query(sql::INSERT_MACHINE)
                    .bind(m.id)
                    .bind(m.user_id)
                    .bind(&m.name)
                    .bind(&m.token_hash)
                    .bind(&m.platform)
                    .bind(&m.hostname)
                    .bind(&m.arch)
                    .bind(&m.node_version)
                    .bind(&m.agent_version)
                    .bind(&m.claude_version)
                    .bind(&m.claude_path)
                    .bind(&m.capabilities)
                    .bind(m.max_sessions)
                    .bind(&m.mac_addresses)
                    .bind(&m.networks)
                    .bind(&m.wol_mac)
                    .bind(&m.wol_broadcast)
                    .bind(m.wol_port)
                    .bind(&m.status)
                    .bind(m.status_at)
                    .bind(m.connected_at)
                    .bind(m.last_seen_at)
                    .bind(m.created_at)
                    .bind(m.updated_at)
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }

            async fn machine(&self, user_id: Uuid, id: Uuid) -> StoreResult<Option<Machine>> {
                let row = sqlx::query_as(sql::MACHINE_OF_USER).bind(user_id).bind(id);
                Ok(row.fetch_optional(&self.pool).await?)
            }

            async fn machine_by_token_hash(&self, hash: &[u8]) -> StoreResult<Option<Machine>> {
                let row = sqlx::query_as(sql::MACHINE_BY_TOKEN_HASH).bind(hash);
                Ok(row.fetch_optional(&self.pool).await?)
            }

            async fn machines_page(
                &self,
                user_id: Uuid,
                filter: &MachineFilter,
                limit: u64,
                offset: u64,
            ) -> StoreResult<(Vec<Machine>, u64)> {
                type Db = <$backend as $crate::store::Backend>::Db;
                // Same WHERE for the count and the page.
                let conditions = |q: &mut sqlx::QueryBuilder<Db>| {
                    q.push(" WHERE user_id = ").push_bind(user_id);
                    if let Some(search) = &filter.search {
                        let pattern = format!("%{}%", $crate::store::sql::escape_like(&search.to_lowercase()));
                        q.push(" AND (LOWER(name) LIKE ").push_bind(pattern.clone())
                            .push(" ESCAPE '\\' OR LOWER(COALESCE(hostname, '')) LIKE ")
                            .push_bind(pattern).push(" ESCAPE '\\')");
                    }
                    let online = |q: &mut sqlx::QueryBuilder<Db>| {
                        q.push("(status = 'online' AND status_at > ").push_bind(filter.online_after).push(")");
                    };
                    let connecting = |q: &mut sqlx::QueryBuilder<Db>| {
                        q.push("(status = 'connecting' AND status_at > ")
                            .push_bind(filter.connecting_after).push(")");
                    };
                    match filter.status.as_deref() {
                        Some("online") => { q.push(" AND "); online(q); }
                        Some("connecting") => { q.push(" AND "); connecting(q); }
                        Some(_) => {
                            q.push(" AND NOT "); online(q);
                            q.push(" AND NOT "); connecting(q);
                        }
                        None => {}
                    }
                };
                let mut count = sqlx::QueryBuilder::<Db>::new("SELECT COUNT(*) FROM machines");
                conditions(&mut count);
                let (total,): (i64,) = count.build_query_as().fetch_one(&self.pool).await?;
                let mut page = sqlx::QueryBuilder::<Db>::new("SELECT * FROM machines");
                conditions(&mut page);
                page.push(" ORDER BY name, id LIMIT ").push_bind(limit as i64)
                    .push(" OFFSET ").push_bind(offset as i64);
                let rows = page.build_query_as().fetch_all(&self.pool).await?;
                Ok((rows, total as u64))
            }

            async fn update_machine_settings(&self, m: &Machine) -> StoreResult<bool> {
                let done = sqlx::query(sql::UPDATE_MACHINE_SETTINGS)
                    .bind(m.user_id)
                    .bind(m.id)
                    .bind(&m.name)
                    .bind(m.max_sessions)
                    .bind(&m.capabilities)
                    .bind(&m.wol_mac)
                    .bind(&m.wol_broadcast)
                    .bind(m.wol_port)
                    .bind(m.updated_at)
                    .execute(&self.pool)
                    .await?;
                Ok(done.rows_affected() == 1)
            }

            async fn delete_machine(&self, user_id: Uuid, id: Uuid) -> StoreResult<bool> {
                let query = sqlx::query(sql::DELETE_MACHINE).bind(user_id).bind(id);
                Ok(query.execute(&self.pool).await?.rows_affected() == 1)
            }

            async fn set_machine_token(
                &self,
                user_id: Uuid,
                id: Uuid,
                token_hash: &[u8],
                at: DateTime<Utc>,
            ) -> StoreResult<bool> {
                let query = sqlx::query(sql::SET_MACHINE_TOKEN).bind(user_id).bind(id);
                let done = query.bind(token_hash).bind(at).execute(&self.pool).await?;
                Ok(done.rows_affected() == 1)
            }

            async fn record_machine_hello(
                &self,
                id: Uuid,
                env: &Environment,
                capabilities: &[String],
                at: DateTime<Utc>,
            ) -> StoreResult<()> {
                sqlx::query(sql::RECORD_MACHINE_HELLO)
                    .bind(id)
                    .bind(&env.platform)
                    .bind(&env.hostname)
                    .bind(&env.arch)
                    .bind(&env.node_version)
                    .bind(&env.agent_version)
                    .bind(&env.claude_version)
                    .bind(&env.claude_path)
                    .bind(Json(capabilities))
                    .bind(Json(&env.mac_addresses))
                    .bind(Json(&env.networks))
                    .bind(at)
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }

            async fn record_machine_seen(&self, id: Uuid, at: DateTime<Utc>) -> StoreResult<()> {
                let query = sqlx::query(sql::RECORD_MACHINE_SEEN).bind(id).bind(at);
                query.execute(&self.pool).await?;
                Ok(())
            }

            async fn set_machine_status(
                &self,
                id: Uuid,
                status: &str,
                at: DateTime<Utc>,
            ) -> StoreResult<()> {
                let query = sqlx::query(sql::SET_MACHINE_STATUS).bind(id).bind(status).bind(at);
                query.execute(&self.pool).await?;
                Ok(())
            }

            async fn insert_pairing(&self, p: &Pairing) -> StoreResult<()> {
                let sweep = sqlx::query(sql::SWEEP_PAIRINGS).bind(p.created_at);
                sweep.execute(&self.pool).await?;
                sqlx::query(sql::INSERT_PAIRING)
                    .bind(&p.code_hash)
                    .bind(&p.token_hash)
                    .bind(&p.hostname)
                    .bind(&p.platform)
                    .bind(&p.arch)
                    .bind(p.created_at)
                    .bind(p.expires_at)
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }

            async fn take_pairing(&self, code_hash: &[u8]) -> StoreResult<Option<Pairing>> {
                let row = sqlx::query_as(sql::TAKE_PAIRING).bind(code_hash);
                Ok(row.fetch_optional(&self.pool).await?)
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
