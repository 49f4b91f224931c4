//! The queries whose SQL and bindings are the same on both backends, written once.
//!
//! `store_impl!(Backend { …dialect-specific methods… })` writes the backend's whole
//! `impl Store` block: the methods given, plus the ones listed here, run against the backend's
//! `self.pool`. A method moves out of this list into the backends only when a dialect needs
//! something the other lacks (pgvector, SKIP LOCKED…). The macro wraps the whole block because
//! `#[async_trait]` must see every method. Names resolve where the macro is used: each backend
//! imports `super::shared::prelude::*`, and supplies its dialect's pieces: the
//! `CLAIM_NEXT_LOCKING` clause and a `begin_project_write` transaction.

/// What the macro body names.
pub(super) mod prelude {
    pub(crate) use chrono::{DateTime, Utc};
    pub(crate) use uuid::Uuid;

    pub(crate) use sqlx::types::Json;

    pub(crate) use claudenest_protocol::Environment;

    pub(crate) use crate::{
        Activity, ApiToken, ChunkFilter, ChunkSearch, ClaimRefusal, ContextChunk, FileLock,
        Instance, InstanceReport, LockOutcome, LogFilter, Machine, MachineFilter, MachinePlugin,
        McpServerRow, McpSessionToken, McpStatusUpdate, NotificationDelivery, NotificationTarget,
        OAuthIdentity, OAuthState, Pairing, PasswordReset, PathOverlap, PermissionRequest,
        PluginRow, PluginUpgrade, Project, ProjectCounts, ProjectListing, Prune, ScoredChunk,
        Session, SessionLog, SessionStatus, SkillRow, Store, StoreResult, Task, TaskRow,
        TokenWithOwner, User, sql,
    };
}

macro_rules! store_impl {
    ($backend:ty { $($specific:tt)* }) => {
        #[async_trait::async_trait]
        impl Store for $backend {
            $($specific)*

            async fn prune(&self, what: Prune, before: DateTime<Utc>, limit: i64) -> StoreResult<u64> {
                let statement = match what {
                    Prune::Activity => sql::PRUNE_ACTIVITY,
                    Prune::ActivityBeyond(_) => sql::PRUNE_ACTIVITY_BEYOND,
                    Prune::SessionLogs => sql::PRUNE_SESSION_LOGS,
                    Prune::Deliveries => sql::PRUNE_DELIVERIES,
                    Prune::Permissions => sql::PRUNE_PERMISSIONS,
                    Prune::RelayedEvents => sql::PRUNE_RELAYED_EVENTS,
                };
                let query = match what {
                    Prune::ActivityBeyond(kept) => sqlx::query(statement).bind(kept),
                    _ => sqlx::query(statement).bind(before),
                };
                Ok(query.bind(limit).execute(&self.pool).await?.rows_affected())
            }

            fn pool_stats(&self) -> (u32, usize) {
                (self.pool.size(), self.pool.num_idle())
            }

            async fn count_live_sessions(&self) -> StoreResult<i64> {
                Ok(sqlx::query_scalar(sql::COUNT_LIVE_SESSIONS).fetch_one(&self.pool).await?)
            }

            async fn count_unembedded_chunks(&self, model: &str) -> StoreResult<i64> {
                let query = sqlx::query_scalar(sql::COUNT_UNEMBEDDED).bind(model);
                Ok(query.fetch_one(&self.pool).await?)
            }

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
                password_hash: Option<&str>,
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

            async fn token(&self, id: Uuid) -> StoreResult<Option<ApiToken>> {
                let query = sqlx::query_as(sql::TOKEN_BY_ID).bind(id);
                Ok(query.fetch_optional(&self.pool).await?)
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
                type Db = <$backend as $crate::Backend>::Db;
                // Same WHERE for the count and the page.
                let conditions = |q: &mut sqlx::QueryBuilder<Db>| {
                    q.push(" WHERE user_id = ").push_bind(user_id);
                    if let Some(search) = &filter.search {
                        let pattern = format!("%{}%", $crate::sql::escape_like(&search.to_lowercase()));
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

            async fn insert_project(&self, p: &Project) -> StoreResult<()> {
                sqlx::query(sql::INSERT_PROJECT)
                    .bind(p.id)
                    .bind(p.machine_id)
                    .bind(p.user_id)
                    .bind(&p.name)
                    .bind(&p.project_path)
                    .bind(&p.summary)
                    .bind(&p.architecture)
                    .bind(&p.conventions)
                    .bind(&p.current_focus)
                    .bind(&p.recent_changes)
                    .bind(p.task_timeout_minutes)
                    .bind(&p.settings)
                    .bind(p.created_at)
                    .bind(p.updated_at)
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }

            async fn project(&self, user_id: Uuid, id: Uuid) -> StoreResult<Option<Project>> {
                let row = sqlx::query_as(sql::PROJECT_OF_USER).bind(user_id).bind(id);
                Ok(row.fetch_optional(&self.pool).await?)
            }

            async fn projects_of_machine(
                &self,
                user_id: Uuid,
                machine_id: Uuid,
                now: DateTime<Utc>,
            ) -> StoreResult<Vec<ProjectListing>> {
                let rows = sqlx::query_as(sql::PROJECTS_OF_MACHINE).bind(user_id).bind(machine_id);
                Ok(rows.bind(now).fetch_all(&self.pool).await?)
            }

            async fn update_project(&self, p: &Project) -> StoreResult<bool> {
                let done = sqlx::query(sql::UPDATE_PROJECT)
                    .bind(p.user_id)
                    .bind(p.id)
                    .bind(&p.name)
                    .bind(&p.summary)
                    .bind(&p.architecture)
                    .bind(&p.conventions)
                    .bind(&p.current_focus)
                    .bind(&p.recent_changes)
                    .bind(p.task_timeout_minutes)
                    .bind(&p.settings)
                    .bind(p.updated_at)
                    .execute(&self.pool)
                    .await?;
                Ok(done.rows_affected() == 1)
            }

            async fn delete_project(&self, user_id: Uuid, id: Uuid) -> StoreResult<bool> {
                let query = sqlx::query(sql::DELETE_PROJECT).bind(user_id).bind(id);
                Ok(query.execute(&self.pool).await?.rows_affected() == 1)
            }

            async fn project_counts(
                &self,
                project_id: Uuid,
                now: DateTime<Utc>,
            ) -> StoreResult<ProjectCounts> {
                let row: (i64, i64, i64, i64, i64, i64, i64) = sqlx::query_as(sql::PROJECT_COUNTS)
                    .bind(project_id)
                    .bind(now)
                    .fetch_one(&self.pool)
                    .await?;
                Ok(ProjectCounts {
                    total_tasks: row.0,
                    pending_tasks: row.1,
                    in_progress_tasks: row.2,
                    completed_tasks: row.3,
                    active_instances: row.4,
                    active_locks: row.5,
                    chunk_chars: row.6,
                })
            }

            async fn touch_instance(
                &self,
                project_id: Uuid,
                instance_id: &str,
                now: DateTime<Utc>,
            ) -> StoreResult<()> {
                let query = sqlx::query(sql::TOUCH_INSTANCE).bind(project_id).bind(instance_id);
                query.bind(now).execute(&self.pool).await?;
                Ok(())
            }

            async fn report_instance(
                &self,
                project_id: Uuid,
                instance_id: &str,
                report: &InstanceReport,
            ) -> StoreResult<()> {
                sqlx::query(sql::REPORT_INSTANCE)
                    .bind(project_id)
                    .bind(instance_id)
                    .bind(&report.status)
                    .bind(report.context_usage)
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }

            async fn instance_took_task(
                &self,
                project_id: Uuid,
                instance_id: &str,
                task_id: Uuid,
            ) -> StoreResult<()> {
                let query = sqlx::query(sql::INSTANCE_TOOK_TASK).bind(project_id);
                query.bind(instance_id).bind(task_id).execute(&self.pool).await?;
                Ok(())
            }

            async fn instance_dropped_task(
                &self,
                project_id: Uuid,
                instance_id: &str,
                task_id: Uuid,
                completed: bool,
            ) -> StoreResult<()> {
                let query = sqlx::query(sql::INSTANCE_DROPPED_TASK).bind(project_id);
                let query = query.bind(instance_id).bind(task_id).bind(i32::from(completed));
                query.execute(&self.pool).await?;
                Ok(())
            }

            async fn instances(&self, project_id: Uuid) -> StoreResult<Vec<Instance>> {
                let rows = sqlx::query_as(sql::INSTANCES_OF_PROJECT).bind(project_id);
                Ok(rows.fetch_all(&self.pool).await?)
            }

            async fn disconnect_stale_instances(
                &self,
                cutoff: DateTime<Utc>,
            ) -> StoreResult<Vec<Instance>> {
                let rows = sqlx::query_as(sql::DISCONNECT_STALE_INSTANCES).bind(cutoff);
                Ok(rows.fetch_all(&self.pool).await?)
            }

            async fn insert_task(&self, t: &Task, dependencies: &[Uuid]) -> StoreResult<()> {
                let mut tx = self.pool.begin().await?;
                sqlx::query(sql::INSERT_TASK)
                    .bind(t.id)
                    .bind(t.project_id)
                    .bind(&t.title)
                    .bind(&t.description)
                    .bind(&t.priority)
                    .bind(&t.status)
                    .bind(&t.assigned_to)
                    .bind(&t.files)
                    .bind(t.estimated_tokens)
                    .bind(&t.summary)
                    .bind(&t.files_modified)
                    .bind(&t.release_reason)
                    .bind(t.claim_expires_at)
                    .bind(t.claimed_at)
                    .bind(t.completed_at)
                    .bind(t.created_at)
                    .bind(t.updated_at)
                    .bind(t.priority_rank)
                    .execute(&mut *tx)
                    .await?;
                for dep in dependencies {
                    let query = sqlx::query(sql::INSERT_DEPENDENCY).bind(t.id).bind(dep);
                    query.execute(&mut *tx).await?;
                }
                Ok(tx.commit().await?)
            }

            async fn task(&self, user_id: Uuid, id: Uuid) -> StoreResult<Option<TaskRow>> {
                let sql = format!(
                    "{} JOIN projects p ON p.id = t.project_id WHERE p.user_id = $1 AND t.id = $2",
                    sql::TASK_COLUMNS
                );
                let row = sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(user_id).bind(id);
                Ok(row.fetch_optional(&self.pool).await?)
            }

            async fn tasks_page(
                &self,
                project_id: Uuid,
                status: Option<&str>,
                priority: Option<&str>,
                limit: u64,
                offset: u64,
            ) -> StoreResult<(Vec<TaskRow>, u64)> {
                type Db = <$backend as $crate::Backend>::Db;
                let conditions = |q: &mut sqlx::QueryBuilder<Db>| {
                    q.push(" WHERE t.project_id = ").push_bind(project_id);
                    if let Some(status) = status {
                        q.push(" AND t.status = ").push_bind(status.to_owned());
                    }
                    if let Some(priority) = priority {
                        q.push(" AND t.priority = ").push_bind(priority.to_owned());
                    }
                };
                let mut count = sqlx::QueryBuilder::<Db>::new("SELECT COUNT(*) FROM tasks t");
                conditions(&mut count);
                let (total,): (i64,) = count.build_query_as().fetch_one(&self.pool).await?;
                let mut page = sqlx::QueryBuilder::<Db>::new(sql::TASK_COLUMNS);
                conditions(&mut page);
                page.push(" ORDER BY ").push(sql::PRIORITY_ORDER)
                    .push(" LIMIT ").push_bind(limit as i64)
                    .push(" OFFSET ").push_bind(offset as i64);
                let rows = page.build_query_as().fetch_all(&self.pool).await?;
                Ok((rows, total as u64))
            }

            async fn task_ids(&self, project_id: Uuid) -> StoreResult<Vec<Uuid>> {
                let rows: Vec<(Uuid,)> = sqlx::query_as(sql::TASK_IDS_OF_PROJECT)
                    .bind(project_id)
                    .fetch_all(&self.pool)
                    .await?;
                Ok(rows.into_iter().map(|(id,)| id).collect())
            }

            async fn dependencies_of(&self, task_id: Uuid) -> StoreResult<Vec<Uuid>> {
                let rows: Vec<(Uuid,)> = sqlx::query_as(sql::DEPENDENCIES_OF_TASK)
                    .bind(task_id)
                    .fetch_all(&self.pool)
                    .await?;
                Ok(rows.into_iter().map(|(id,)| id).collect())
            }

            async fn task_dependencies(&self, project_id: Uuid) -> StoreResult<Vec<(Uuid, Uuid)>> {
                let rows = sqlx::query_as(sql::DEPENDENCIES_OF_PROJECT).bind(project_id);
                Ok(rows.fetch_all(&self.pool).await?)
            }

            async fn update_task(&self, t: &Task, dependencies: Option<&[Uuid]>) -> StoreResult<()> {
                let mut tx = self.pool.begin().await?;
                sqlx::query(sql::UPDATE_TASK)
                    .bind(t.id)
                    .bind(&t.title)
                    .bind(&t.description)
                    .bind(&t.priority)
                    .bind(&t.files)
                    .bind(t.estimated_tokens)
                    .bind(t.updated_at)
                    .bind(t.priority_rank)
                    .execute(&mut *tx)
                    .await?;
                if let Some(dependencies) = dependencies {
                    sqlx::query(sql::DELETE_DEPENDENCIES).bind(t.id).execute(&mut *tx).await?;
                    for dep in dependencies {
                        let query = sqlx::query(sql::INSERT_DEPENDENCY).bind(t.id).bind(dep);
                        query.execute(&mut *tx).await?;
                    }
                }
                Ok(tx.commit().await?)
            }

            async fn delete_task(&self, project_id: Uuid, id: Uuid) -> StoreResult<bool> {
                let query = sqlx::query(sql::DELETE_TASK).bind(project_id).bind(id);
                Ok(query.execute(&self.pool).await?.rows_affected() == 1)
            }

            async fn next_available_task(&self, project_id: Uuid) -> StoreResult<Option<TaskRow>> {
                let sql = format!(
                    "{} WHERE t.project_id = $1 AND t.status = 'pending' AND NOT EXISTS \
                     (SELECT 1 FROM task_dependencies d JOIN tasks dep ON dep.id = d.depends_on \
                     WHERE d.task_id = t.id AND dep.status <> 'completed') ORDER BY {} LIMIT 1",
                    sql::TASK_COLUMNS,
                    sql::PRIORITY_ORDER
                );
                let row = sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(project_id);
                Ok(row.fetch_optional(&self.pool).await?)
            }

            async fn claim_task(
                &self,
                id: Uuid,
                instance_id: &str,
                now: DateTime<Utc>,
                expires_at: DateTime<Utc>,
            ) -> StoreResult<Result<Task, ClaimRefusal>> {
                let claimed: Option<Task> = sqlx::query_as(sql::CLAIM_TASK)
                    .bind(id)
                    .bind(instance_id)
                    .bind(now)
                    .bind(expires_at)
                    .fetch_optional(&self.pool)
                    .await?;
                if let Some(task) = claimed {
                    return Ok(Ok(task));
                }
                // Lost: say why, from what the row looks like now.
                let sql = format!("{} WHERE t.id = $1", sql::TASK_COLUMNS);
                let row: Option<TaskRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
                    .bind(id)
                    .fetch_optional(&self.pool)
                    .await?;
                Ok(Err(match row {
                    None => ClaimRefusal::NotFound,
                    Some(r) if r.task.status != "pending" => ClaimRefusal::AlreadyClaimed,
                    Some(_) => ClaimRefusal::Blocked,
                }))
            }

            async fn claim_next_task(
                &self,
                project_id: Uuid,
                instance_id: &str,
                now: DateTime<Utc>,
                expires_at: DateTime<Utc>,
            ) -> StoreResult<Option<Task>> {
                let sql = sql::claim_next(CLAIM_NEXT_LOCKING);
                Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql))
                    .bind(project_id)
                    .bind(instance_id)
                    .bind(now)
                    .bind(expires_at)
                    .fetch_optional(&self.pool)
                    .await?)
            }

            async fn acquire_locks(
                &self,
                project_id: Uuid,
                instance_id: &str,
                paths: &[String],
                reason: Option<&str>,
                now: DateTime<Utc>,
                expires_at: DateTime<Utc>,
                overlaps: PathOverlap,
            ) -> StoreResult<Vec<LockOutcome>> {
                let mut tx = self.begin_project_write(project_id).await?;
                let outcomes = acquire_locks_in(
                    &mut tx, project_id, instance_id, paths, reason, now, expires_at, overlaps,
                )
                .await?;
                tx.commit().await?;
                Ok(outcomes)
            }

            async fn release_task(
                &self,
                id: Uuid,
                instance_id: &str,
                reason: Option<&str>,
                now: DateTime<Utc>,
            ) -> StoreResult<Option<Task>> {
                let row = sqlx::query_as(sql::RELEASE_TASK).bind(id).bind(instance_id);
                Ok(row.bind(reason).bind(now).fetch_optional(&self.pool).await?)
            }

            async fn complete_task(
                &self,
                id: Uuid,
                instance_id: &str,
                summary: &str,
                files_modified: &[String],
                now: DateTime<Utc>,
            ) -> StoreResult<Option<Task>> {
                sqlx::query_as(sql::COMPLETE_TASK)
                    .bind(id)
                    .bind(instance_id)
                    .bind(summary)
                    .bind(Json(files_modified))
                    .bind(now)
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(Into::into)
            }

            async fn requeue_expired_claims(&self, now: DateTime<Utc>) -> StoreResult<Vec<Task>> {
                let rows = sqlx::query_as(sql::REQUEUE_EXPIRED_CLAIMS).bind(now);
                Ok(rows.fetch_all(&self.pool).await?)
            }

            async fn requeue_tasks_of_instance(
                &self,
                project_id: Uuid,
                instance_id: &str,
                now: DateTime<Utc>,
            ) -> StoreResult<Vec<Task>> {
                let rows = sqlx::query_as(sql::REQUEUE_TASKS_OF_INSTANCE).bind(project_id);
                Ok(rows.bind(instance_id).bind(now).fetch_all(&self.pool).await?)
            }

            async fn live_locks(
                &self,
                project_id: Uuid,
                now: DateTime<Utc>,
            ) -> StoreResult<Vec<FileLock>> {
                let rows = sqlx::query_as(sql::LIVE_LOCKS).bind(project_id).bind(now);
                Ok(rows.fetch_all(&self.pool).await?)
            }

            async fn delete_lock(
                &self,
                project_id: Uuid,
                path: &str,
                holder: Option<&str>,
                now: DateTime<Utc>,
            ) -> StoreResult<Option<FileLock>> {
                let row = match holder {
                    Some(holder) => sqlx::query_as(sql::DELETE_LOCK_OF)
                        .bind(project_id)
                        .bind(path)
                        .bind(holder)
                        .bind(now),
                    None => sqlx::query_as(sql::DELETE_LOCK).bind(project_id).bind(path).bind(now),
                };
                Ok(row.fetch_optional(&self.pool).await?)
            }

            async fn delete_locks_of_instance(
                &self,
                project_id: Uuid,
                instance_id: &str,
                now: DateTime<Utc>,
            ) -> StoreResult<Vec<FileLock>> {
                let rows = sqlx::query_as(sql::DELETE_LOCKS_OF_INSTANCE).bind(project_id);
                Ok(rows.bind(instance_id).bind(now).fetch_all(&self.pool).await?)
            }

            async fn extend_lock(
                &self,
                project_id: Uuid,
                path: &str,
                holder: &str,
                expires_at: DateTime<Utc>,
                now: DateTime<Utc>,
            ) -> StoreResult<Option<FileLock>> {
                sqlx::query_as(sql::EXTEND_LOCK)
                    .bind(project_id)
                    .bind(path)
                    .bind(holder)
                    .bind(expires_at)
                    .bind(now)
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(Into::into)
            }

            async fn sweep_expired_locks(&self, now: DateTime<Utc>) -> StoreResult<u64> {
                let done = sqlx::query(sql::SWEEP_EXPIRED_LOCKS).bind(now).execute(&self.pool).await?;
                Ok(done.rows_affected())
            }

            async fn insert_activity(&self, a: &Activity) -> StoreResult<()> {
                sqlx::query(sql::INSERT_ACTIVITY)
                    .bind(a.id)
                    .bind(a.project_id)
                    .bind(&a.instance_id)
                    .bind(&a.kind)
                    .bind(&a.details)
                    .bind(a.created_at)
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }

            async fn recent_activity(&self, project_id: Uuid, limit: u64) -> StoreResult<Vec<Activity>> {
                let rows = sqlx::query_as(sql::RECENT_ACTIVITY).bind(project_id).bind(limit as i64);
                Ok(rows.fetch_all(&self.pool).await?)
            }

            async fn insert_chunk(&self, c: &ContextChunk) -> StoreResult<()> {
                sqlx::query(sql::INSERT_CHUNK)
                    .bind(c.id)
                    .bind(c.project_id)
                    .bind(&c.instance_id)
                    .bind(c.task_id)
                    .bind(&c.kind)
                    .bind(&c.content)
                    .bind(&c.files)
                    .bind(c.importance_score)
                    .bind(c.expires_at)
                    .bind(c.created_at)
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }

            async fn context_chunks(
                &self,
                project_id: Uuid,
                filter: &ChunkFilter,
                now: DateTime<Utc>,
            ) -> StoreResult<(Vec<ContextChunk>, u64)> {
                type Db = <$backend as $crate::Backend>::Db;
                let build = |select: &str| {
                    let mut q = sqlx::QueryBuilder::<Db>::new(select);
                    q.push(" FROM context_chunks WHERE project_id = ").push_bind(project_id);
                    q.push(" AND (expires_at IS NULL OR expires_at > ").push_bind(now).push(")");
                    if let Some(kind) = &filter.kind {
                        q.push(" AND type = ").push_bind(kind.clone());
                    }
                    if let Some(instance) = &filter.instance_id {
                        q.push(" AND instance_id = ").push_bind(instance.clone());
                    }
                    q
                };
                let total: i64 = build("SELECT COUNT(*)").build_query_scalar().fetch_one(&self.pool).await?;
                let mut q = build("SELECT *");
                q.push(" ORDER BY created_at DESC, id DESC LIMIT ").push_bind(filter.limit as i64);
                q.push(" OFFSET ").push_bind(filter.offset as i64);
                let rows = q.build_query_as().fetch_all(&self.pool).await?;
                Ok((rows, total as u64))
            }

            async fn delete_context_chunk(&self, project_id: Uuid, id: Uuid) -> StoreResult<bool> {
                let query = sqlx::query(sql::DELETE_CHUNK).bind(project_id).bind(id);
                Ok(query.execute(&self.pool).await?.rows_affected() == 1)
            }

            async fn delete_expired_chunks(&self, now: DateTime<Utc>) -> StoreResult<u64> {
                let query = sqlx::query(sql::DELETE_EXPIRED_CHUNKS).bind(now);
                Ok(query.execute(&self.pool).await?.rows_affected())
            }

            async fn chunks_to_embed(&self, model: &str, limit: u64) -> StoreResult<Vec<ContextChunk>> {
                let query = sqlx::query_as(sql::CHUNKS_TO_EMBED).bind(model).bind(limit as i64);
                Ok(query.fetch_all(&self.pool).await?)
            }

            async fn insert_session(&self, x: &Session) -> StoreResult<()> {
                sqlx::query(sql::INSERT_SESSION)
                    .bind(x.id)
                    .bind(x.machine_id)
                    .bind(x.user_id)
                    .bind(&x.mode)
                    .bind(&x.project_path)
                    .bind(&x.initial_prompt)
                    .bind(&x.status)
                    .bind(x.cols)
                    .bind(x.rows)
                    .bind(x.exit_code)
                    .bind(x.total_tokens)
                    .bind(x.total_cost)
                    .bind(&x.ws_token_hash)
                    .bind(x.last_seq)
                    .bind(x.started_at)
                    .bind(x.ended_at)
                    .bind(x.created_at)
                    .bind(x.updated_at)
                    .bind(x.ws_token_parent)
                    .bind(x.ws_token_write)
                    .bind(x.budget_tokens)
                    .bind(x.budget_cost)
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }

            async fn session(&self, user_id: Uuid, id: Uuid) -> StoreResult<Option<Session>> {
                let row = sqlx::query_as(sql::SESSION_OF_USER).bind(user_id).bind(id);
                Ok(row.fetch_optional(&self.pool).await?)
            }

            async fn delete_session(&self, user_id: Uuid, id: Uuid) -> StoreResult<bool> {
                // Logs and session tokens go with it (ON DELETE CASCADE).
                let query = sqlx::query(sql::DELETE_SESSION).bind(user_id).bind(id);
                Ok(query.execute(&self.pool).await?.rows_affected() == 1)
            }

            async fn session_by_id(&self, id: Uuid) -> StoreResult<Option<Session>> {
                let row = sqlx::query_as(sql::SESSION_BY_ID).bind(id);
                Ok(row.fetch_optional(&self.pool).await?)
            }

            async fn session_by_ws_token(&self, hash: &[u8]) -> StoreResult<Option<Session>> {
                let row = sqlx::query_as(sql::SESSION_BY_WS_TOKEN).bind(hash);
                Ok(row.fetch_optional(&self.pool).await?)
            }

            async fn sessions_page(
                &self,
                machine_id: Uuid,
                status: Option<SessionStatus>,
                limit: u64,
                offset: u64,
            ) -> StoreResult<(Vec<Session>, u64)> {
                type Db = <$backend as $crate::Backend>::Db;
                let conditions = |q: &mut sqlx::QueryBuilder<Db>| {
                    q.push(" WHERE machine_id = ").push_bind(machine_id);
                    if let Some(status) = status {
                        q.push(" AND status = ").push_bind(status.as_str());
                    }
                };
                let mut count = sqlx::QueryBuilder::<Db>::new("SELECT COUNT(*) FROM sessions");
                conditions(&mut count);
                let (total,): (i64,) = count.build_query_as().fetch_one(&self.pool).await?;
                let mut page = sqlx::QueryBuilder::<Db>::new("SELECT * FROM sessions");
                conditions(&mut page);
                page.push(" ORDER BY created_at DESC, id DESC LIMIT ").push_bind(limit as i64)
                    .push(" OFFSET ").push_bind(offset as i64);
                let rows = page.build_query_as().fetch_all(&self.pool).await?;
                Ok((rows, total as u64))
            }

            async fn active_sessions(&self, machine_id: Uuid) -> StoreResult<i64> {
                let (n,): (i64,) = sqlx::query_as(sql::ACTIVE_SESSIONS_OF_MACHINE)
                    .bind(machine_id)
                    .fetch_one(&self.pool)
                    .await?;
                Ok(n)
            }

            async fn set_session_status(
                &self,
                id: Uuid,
                status: SessionStatus,
                exit_code: Option<i32>,
                now: DateTime<Utc>,
            ) -> StoreResult<Option<Session>> {
                let mut tx = self.pool.begin().await?;
                let row = sqlx::query_as(sql::SET_SESSION_STATUS).bind(id).bind(status);
                let moved: Option<Session> = row.bind(now).bind(exit_code).fetch_optional(&mut *tx).await?;
                if moved.as_ref().is_some_and(|s| s.status.is_ended()) {
                    // An ended session's permission dialogs are gone with it.
                    let expire = sqlx::query(sql::EXPIRE_PERMISSION_REQUESTS).bind(id).bind(now);
                    expire.execute(&mut *tx).await?;
                }
                tx.commit().await?;
                Ok(moved)
            }

            async fn set_session_size(
                &self,
                id: Uuid,
                cols: i32,
                rows: i32,
                now: DateTime<Utc>,
            ) -> StoreResult<()> {
                let query = sqlx::query(sql::SET_SESSION_SIZE).bind(id).bind(cols).bind(rows);
                query.bind(now).execute(&self.pool).await?;
                Ok(())
            }

            async fn set_session_ws_token(
                &self,
                id: Uuid,
                hash: &[u8],
                parent: Uuid,
                write: bool,
            ) -> StoreResult<()> {
                let query = sqlx::query(sql::SET_SESSION_WS_TOKEN).bind(id).bind(hash);
                query.bind(parent).bind(write).execute(&self.pool).await?;
                Ok(())
            }

            async fn append_session_logs(
                &self,
                session_id: Uuid,
                logs: &[SessionLog],
            ) -> StoreResult<()> {
                type Db = <$backend as $crate::Backend>::Db;
                // Multi-row INSERTs of at most this many rows (7 binds a row, well under
                // either database's limit); a chunk the agent resent after a reconnect is
                // already there and skipped.
                const ROWS: usize = 200;
                let insert = |rows: &[SessionLog]| {
                    let mut q = sqlx::QueryBuilder::<Db>::new(sql::INSERT_SESSION_LOGS);
                    q.push_values(rows, |mut b, log| {
                        b.push_bind(log.id)
                            .push_bind(log.session_id)
                            .push_bind(log.kind.clone())
                            .push_bind(log.seq)
                            .push_bind(log.data.clone())
                            .push_bind(log.metadata.clone())
                            .push_bind(log.created_at);
                    });
                    q.push(" ON CONFLICT DO NOTHING");
                    q
                };
                let seq = logs.iter().filter_map(|l| l.seq).max();
                if seq.is_none() && logs.len() <= ROWS {
                    // One statement is atomic by itself: no transaction's two extra round
                    // trips (typed input, one entry a request).
                    if !logs.is_empty() {
                        insert(logs).build().execute(&self.pool).await?;
                    }
                    return Ok(());
                }
                let mut tx = self.pool.begin().await?;
                for rows in logs.chunks(ROWS) {
                    insert(rows).build().execute(&mut *tx).await?;
                }
                if let Some(seq) = seq {
                    let query = sqlx::query(sql::ADVANCE_SESSION_SEQ).bind(session_id).bind(seq);
                    query.execute(&mut *tx).await?;
                }
                Ok(tx.commit().await?)
            }

            async fn insert_plugin(&self, p: &PluginRow, component: &[u8]) -> StoreResult<()> {
                sqlx::query(sql::INSERT_PLUGIN)
                    .bind(p.id)
                    .bind(p.user_id)
                    .bind(&p.name)
                    .bind(&p.version)
                    .bind(&p.world)
                    .bind(&p.api_version)
                    .bind(&p.description)
                    .bind(&p.sha256)
                    .bind(p.size_bytes)
                    .bind(&p.manifest)
                    .bind(component)
                    .bind(p.created_at)
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }

            async fn plugins(&self, user_id: Uuid) -> StoreResult<Vec<PluginRow>> {
                let sql = sqlx::AssertSqlSafe(sql::plugins_of_user());
                Ok(sqlx::query_as(sql).bind(user_id).fetch_all(&self.pool).await?)
            }

            async fn plugin(&self, user_id: Uuid, name: &str) -> StoreResult<Option<PluginRow>> {
                let sql = sqlx::AssertSqlSafe(sql::plugin_by_name());
                let query = sqlx::query_as(sql).bind(user_id).bind(name);
                Ok(query.fetch_optional(&self.pool).await?)
            }

            async fn plugin_component(&self, id: Uuid) -> StoreResult<Option<Vec<u8>>> {
                let query = sqlx::query_scalar(sql::PLUGIN_COMPONENT).bind(id);
                Ok(query.fetch_optional(&self.pool).await?)
            }

            async fn delete_plugin(&self, user_id: Uuid, name: &str) -> StoreResult<bool> {
                let query = sqlx::query(sql::DELETE_PLUGIN).bind(user_id).bind(name);
                Ok(query.execute(&self.pool).await?.rows_affected() == 1)
            }

            async fn enable_plugin(&self, e: &MachinePlugin) -> StoreResult<()> {
                let mut tx = self.pool.begin().await?;
                sqlx::query(sql::UPSERT_MACHINE_PLUGIN)
                    .bind(e.machine_id)
                    .bind(e.plugin_id)
                    .bind(&e.config)
                    .bind(&e.grants)
                    .bind(e.enabled_at)
                    .execute(&mut *tx)
                    .await?;
                sqlx::query(sql::DROP_UNUSED_PLUGIN_VERSIONS).bind(e.plugin_id).execute(&mut *tx).await?;
                Ok(tx.commit().await?)
            }

            async fn machine_plugins(&self, machine_id: Uuid) -> StoreResult<Vec<MachinePlugin>> {
                let query = sqlx::query_as(sql::MACHINE_PLUGINS).bind(machine_id);
                Ok(query.fetch_all(&self.pool).await?)
            }

            async fn machine_plugin(
                &self,
                machine_id: Uuid,
                plugin_id: Uuid,
            ) -> StoreResult<Option<MachinePlugin>> {
                let query = sqlx::query_as(sql::MACHINE_PLUGIN).bind(machine_id).bind(plugin_id);
                Ok(query.fetch_optional(&self.pool).await?)
            }

            async fn disable_plugin(&self, machine_id: Uuid, plugin_id: Uuid) -> StoreResult<bool> {
                let mut tx = self.pool.begin().await?;
                let query = sqlx::query(sql::DELETE_MACHINE_PLUGIN).bind(machine_id).bind(plugin_id);
                let deleted = query.execute(&mut *tx).await?.rows_affected() == 1;
                sqlx::query(sql::DROP_UNUSED_PLUGIN_VERSIONS).bind(plugin_id).execute(&mut *tx).await?;
                tx.commit().await?;
                Ok(deleted)
            }

            async fn plugin_enablements(&self, plugin_id: Uuid) -> StoreResult<Vec<MachinePlugin>> {
                let query = sqlx::query_as(sql::PLUGIN_ENABLEMENTS).bind(plugin_id);
                Ok(query.fetch_all(&self.pool).await?)
            }

            async fn upgrade_plugin(&self, u: &PluginUpgrade<'_>) -> StoreResult<()> {
                let mut tx = self.pool.begin().await?;
                let id = u.old.id;
                if !u.pinned_machines.is_empty() {
                    sqlx::query(sql::KEEP_PLUGIN_VERSION).bind(id).execute(&mut *tx).await?;
                }
                for machine in u.pinned_machines {
                    sqlx::query(sql::PIN_MACHINE_PLUGIN)
                        .bind(machine)
                        .bind(id)
                        .bind(&u.old.sha256)
                        .execute(&mut *tx)
                        .await?;
                }
                let n = &u.new;
                sqlx::query(sql::REPLACE_PLUGIN)
                    .bind(id)
                    .bind(&n.version)
                    .bind(&n.world)
                    .bind(&n.api_version)
                    .bind(&n.description)
                    .bind(&n.sha256)
                    .bind(n.size_bytes)
                    .bind(&n.manifest)
                    .bind(u.component)
                    .bind(n.created_at)
                    .execute(&mut *tx)
                    .await?;
                sqlx::query(sql::DROP_UNUSED_PLUGIN_VERSIONS).bind(id).execute(&mut *tx).await?;
                Ok(tx.commit().await?)
            }

            async fn plugin_version(
                &self,
                plugin_id: Uuid,
                sha256: &str,
            ) -> StoreResult<Option<(Json<serde_json::Value>, Vec<u8>)>> {
                let query = sqlx::query_as(sql::PLUGIN_VERSION).bind(plugin_id).bind(sha256);
                Ok(query.fetch_optional(&self.pool).await?)
            }

            async fn skills(&self, machine_id: Uuid) -> StoreResult<Vec<SkillRow>> {
                let query = sqlx::query_as(sql::SKILLS_OF_MACHINE).bind(machine_id);
                Ok(query.fetch_all(&self.pool).await?)
            }

            async fn skill(&self, machine_id: Uuid, path: &str) -> StoreResult<Option<SkillRow>> {
                let query = sqlx::query_as(sql::SKILL_BY_PATH).bind(machine_id).bind(path);
                Ok(query.fetch_optional(&self.pool).await?)
            }

            async fn upsert_skill(&self, k: &SkillRow) -> StoreResult<()> {
                sqlx::query(sql::UPSERT_SKILL)
                    .bind(k.id)
                    .bind(k.machine_id)
                    .bind(&k.path)
                    .bind(&k.name)
                    .bind(&k.description)
                    .bind(&k.content)
                    .bind(k.enabled)
                    .bind(k.priority)
                    .bind(&k.metadata)
                    .bind(k.size_bytes)
                    .bind(k.last_modified)
                    .bind(&k.synced_hash)
                    .bind(k.deleted)
                    .bind(k.created_at)
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }

            async fn delete_skill(&self, machine_id: Uuid, path: &str) -> StoreResult<bool> {
                let query = sqlx::query(sql::DELETE_SKILL).bind(machine_id).bind(path);
                Ok(query.execute(&self.pool).await?.rows_affected() == 1)
            }

            async fn set_skill_synced(
                &self,
                machine_id: Uuid,
                path: &str,
                synced_hash: &str,
            ) -> StoreResult<()> {
                let query = sqlx::query(sql::SET_SKILL_SYNCED)
                    .bind(machine_id)
                    .bind(path)
                    .bind(synced_hash);
                query.execute(&self.pool).await?;
                Ok(())
            }

            async fn insert_mcp_server(&self, m: &McpServerRow) -> StoreResult<()> {
                sqlx::query(sql::INSERT_MCP_SERVER)
                    .bind(m.id)
                    .bind(m.machine_id)
                    .bind(&m.name)
                    .bind(&m.display_name)
                    .bind(&m.transport)
                    .bind(&m.command)
                    .bind(&m.args)
                    .bind(&m.env)
                    .bind(&m.url)
                    .bind(&m.plugin)
                    .bind(m.auto_start)
                    .bind(&m.status)
                    .bind(&m.last_error)
                    .bind(&m.tools)
                    .bind(m.last_started_at)
                    .bind(m.created_at)
                    .bind(m.updated_at)
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }

            async fn mcp_servers(&self, machine_id: Uuid) -> StoreResult<Vec<McpServerRow>> {
                let query = sqlx::query_as(sql::MCP_SERVERS_OF_MACHINE).bind(machine_id);
                Ok(query.fetch_all(&self.pool).await?)
            }

            async fn mcp_server(
                &self,
                machine_id: Uuid,
                name: &str,
            ) -> StoreResult<Option<McpServerRow>> {
                let query = sqlx::query_as(sql::MCP_SERVER_BY_NAME).bind(machine_id).bind(name);
                Ok(query.fetch_optional(&self.pool).await?)
            }

            async fn update_mcp_server(&self, m: &McpServerRow) -> StoreResult<()> {
                sqlx::query(sql::UPDATE_MCP_SERVER)
                    .bind(m.id)
                    .bind(&m.display_name)
                    .bind(&m.transport)
                    .bind(&m.command)
                    .bind(&m.args)
                    .bind(&m.env)
                    .bind(&m.url)
                    .bind(&m.plugin)
                    .bind(m.auto_start)
                    .bind(m.updated_at)
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }

            async fn set_mcp_status(
                &self,
                machine_id: Uuid,
                name: &str,
                u: &McpStatusUpdate,
                now: DateTime<Utc>,
            ) -> StoreResult<()> {
                sqlx::query(sql::SET_MCP_STATUS)
                    .bind(machine_id)
                    .bind(name)
                    .bind(&u.status)
                    .bind(&u.last_error)
                    .bind(u.tools.clone().map(Json))
                    .bind(u.started_at)
                    .bind(now)
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }

            async fn delete_mcp_server(&self, machine_id: Uuid, name: &str) -> StoreResult<bool> {
                let query = sqlx::query(sql::DELETE_MCP_SERVER).bind(machine_id).bind(name);
                Ok(query.execute(&self.pool).await?.rows_affected() == 1)
            }

            async fn insert_mcp_session_token(&self, t: &McpSessionToken) -> StoreResult<()> {
                sqlx::query(sql::INSERT_MCP_SESSION_TOKEN)
                    .bind(&t.token_hash)
                    .bind(t.session_id)
                    .bind(t.user_id)
                    .bind(t.project_id)
                    .bind(&t.instance_id)
                    .bind(t.created_at)
                    .bind(t.parent_token_id)
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }

            async fn mcp_session_token(
                &self,
                token_hash: &[u8],
            ) -> StoreResult<Option<McpSessionToken>> {
                let query = sqlx::query_as(sql::MCP_SESSION_TOKEN).bind(token_hash);
                Ok(query.fetch_optional(&self.pool).await?)
            }

            async fn trim_session_output(&self, session_id: Uuid, through_seq: i64) -> StoreResult<u64> {
                let query = sqlx::query(sql::TRIM_SESSION_OUTPUT).bind(session_id).bind(through_seq);
                Ok(query.execute(&self.pool).await?.rows_affected())
            }

            async fn set_session_usage(
                &self,
                id: Uuid,
                total_tokens: i64,
                total_cost: f64,
                now: DateTime<Utc>,
            ) -> StoreResult<Option<Session>> {
                let query = sqlx::query_as(sql::SET_SESSION_USAGE)
                    .bind(id)
                    .bind(total_tokens)
                    .bind(total_cost)
                    .bind(now);
                Ok(query.fetch_optional(&self.pool).await?)
            }

            async fn set_session_waiting(
                &self,
                id: Uuid,
                status: SessionStatus,
                reason: Option<&str>,
                message: Option<&str>,
                now: DateTime<Utc>,
            ) -> StoreResult<Option<Session>> {
                let query = sqlx::query_as(sql::SET_SESSION_WAITING).bind(id).bind(status);
                let query = query.bind(reason).bind(message).bind(now);
                Ok(query.fetch_optional(&self.pool).await?)
            }

            async fn end_session_wait(
                &self,
                id: Uuid,
                reason: &str,
                now: DateTime<Utc>,
            ) -> StoreResult<Option<Session>> {
                let query = sqlx::query_as(sql::END_SESSION_WAIT).bind(id).bind(reason).bind(now);
                Ok(query.fetch_optional(&self.pool).await?)
            }

            async fn set_session_stop_reason(&self, id: Uuid, reason: &str) -> StoreResult<()> {
                let query = sqlx::query(sql::SET_SESSION_STOP_REASON).bind(id).bind(reason);
                query.execute(&self.pool).await?;
                Ok(())
            }

            async fn mark_budget_warned(&self, id: Uuid) -> StoreResult<bool> {
                let query = sqlx::query(sql::MARK_BUDGET_WARNED).bind(id);
                Ok(query.execute(&self.pool).await?.rows_affected() == 1)
            }

            async fn sessions_started_since(
                &self,
                user_id: Uuid,
                machine_id: Uuid,
                project_path: &str,
                since: DateTime<Utc>,
            ) -> StoreResult<i64> {
                let query = sqlx::query_scalar(sql::SESSIONS_STARTED_SINCE).bind(user_id);
                let query = query.bind(machine_id).bind(project_path).bind(since);
                Ok(query.fetch_one(&self.pool).await?)
            }

            async fn project_usage(&self, machine_id: Uuid, project_path: &str) -> StoreResult<(i64, f64)> {
                let query = sqlx::query_as(sql::PROJECT_USAGE).bind(machine_id).bind(project_path);
                Ok(query.fetch_one(&self.pool).await?)
            }

            async fn insert_permission_request(&self, p: &PermissionRequest) -> StoreResult<()> {
                sqlx::query(sql::INSERT_PERMISSION_REQUEST)
                    .bind(p.id)
                    .bind(p.session_id)
                    .bind(p.user_id)
                    .bind(&p.tool_name)
                    .bind(&p.tool_input)
                    .bind(&p.message)
                    .bind(&p.status)
                    .bind(&p.answer_message)
                    .bind(p.answered_by)
                    .bind(p.answered_at)
                    .bind(p.created_at)
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }

            async fn permission_request(&self, user_id: Uuid, id: Uuid) -> StoreResult<Option<PermissionRequest>> {
                let query = sqlx::query_as(sql::PERMISSION_REQUEST_OF_USER).bind(user_id).bind(id);
                Ok(query.fetch_optional(&self.pool).await?)
            }

            async fn permission_requests_of_session(&self, session_id: Uuid, limit: i64) -> StoreResult<Vec<PermissionRequest>> {
                let query = sqlx::query_as(sql::PERMISSION_REQUESTS_OF_SESSION).bind(session_id);
                Ok(query.bind(limit).fetch_all(&self.pool).await?)
            }

            async fn answer_permission_request(
                &self,
                id: Uuid,
                status: &str,
                message: Option<&str>,
                answered_by: Uuid,
                now: DateTime<Utc>,
            ) -> StoreResult<Option<PermissionRequest>> {
                let query = sqlx::query_as(sql::ANSWER_PERMISSION_REQUEST).bind(id).bind(status);
                let query = query.bind(message).bind(answered_by).bind(now);
                Ok(query.fetch_optional(&self.pool).await?)
            }

            async fn expire_permission_requests(&self, session_id: Uuid, now: DateTime<Utc>) -> StoreResult<Vec<PermissionRequest>> {
                let query = sqlx::query_as(sql::EXPIRE_PERMISSION_REQUESTS).bind(session_id);
                Ok(query.bind(now).fetch_all(&self.pool).await?)
            }

            async fn insert_notification_target(&self, t: &NotificationTarget) -> StoreResult<()> {
                sqlx::query(sql::INSERT_NOTIFICATION_TARGET)
                    .bind(t.id)
                    .bind(t.user_id)
                    .bind(&t.name)
                    .bind(&t.kind)
                    .bind(&t.url)
                    .bind(&t.secret)
                    .bind(&t.push_p256dh)
                    .bind(&t.push_auth)
                    .bind(t.project_id)
                    .bind(&t.events)
                    .bind(t.include_terminal)
                    .bind(t.created_at)
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }

            async fn notification_targets(&self, user_id: Uuid) -> StoreResult<Vec<NotificationTarget>> {
                let query = sqlx::query_as(sql::NOTIFICATION_TARGETS_OF_USER).bind(user_id);
                Ok(query.fetch_all(&self.pool).await?)
            }

            async fn count_notification_targets(&self, user_id: Uuid) -> StoreResult<i64> {
                let query = sqlx::query_scalar(sql::COUNT_NOTIFICATION_TARGETS).bind(user_id);
                Ok(query.fetch_one(&self.pool).await?)
            }

            async fn delete_notification_target(&self, user_id: Uuid, id: Uuid) -> StoreResult<bool> {
                let query = sqlx::query(sql::DELETE_NOTIFICATION_TARGET).bind(user_id).bind(id);
                Ok(query.execute(&self.pool).await?.rows_affected() == 1)
            }

            async fn insert_delivery(&self, d: &NotificationDelivery) -> StoreResult<()> {
                sqlx::query(sql::INSERT_DELIVERY)
                    .bind(d.id)
                    .bind(d.target_id)
                    .bind(d.user_id)
                    .bind(&d.event)
                    .bind(d.session_id)
                    .bind(&d.status)
                    .bind(d.attempts)
                    .bind(d.response_status)
                    .bind(&d.error)
                    .bind(d.created_at)
                    .bind(d.updated_at)
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }

            async fn update_delivery(&self, d: &NotificationDelivery) -> StoreResult<()> {
                sqlx::query(sql::UPDATE_DELIVERY)
                    .bind(d.id)
                    .bind(&d.status)
                    .bind(d.attempts)
                    .bind(d.response_status)
                    .bind(&d.error)
                    .bind(d.updated_at)
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }

            async fn deliveries(&self, user_id: Uuid, limit: i64) -> StoreResult<Vec<NotificationDelivery>> {
                let query = sqlx::query_as(sql::DELIVERIES_OF_USER).bind(user_id);
                Ok(query.bind(limit).fetch_all(&self.pool).await?)
            }

            async fn session_logs(&self, session_id: Uuid, filter: &LogFilter) -> StoreResult<Vec<SessionLog>> {
                type Db = <$backend as $crate::Backend>::Db;
                let mut q = sqlx::QueryBuilder::<Db>::new(
                    "SELECT * FROM session_logs WHERE session_id = ",
                );
                q.push_bind(session_id);
                match &filter.kind {
                    Some(kind) => q.push(" AND type = ").push_bind(kind.clone()),
                    // Status changes are kept as entries too, but only for those who ask.
                    None => q.push(" AND type <> 'status'"),
                };
                let limit = filter.limit as i64;
                if let Some(after) = filter.after_seq {
                    // Output since a sequence: the first `limit` after it.
                    q.push(" AND seq > ").push_bind(after);
                    q.push(" ORDER BY seq ASC LIMIT ").push_bind(limit);
                    return Ok(q.build_query_as().fetch_all(&self.pool).await?);
                }
                q.push(" ORDER BY created_at DESC, id DESC LIMIT ").push_bind(limit);
                let mut rows: Vec<SessionLog> = q.build_query_as().fetch_all(&self.pool).await?;
                rows.reverse();
                Ok(rows)
            }
        }

        /// Shared by `insert_user` and `insert_user_with_identity` (pool or transaction).
        async fn insert_user<'e, E>(executor: E, u: &User) -> StoreResult<()>
        where
            E: sqlx::Executor<'e, Database = <$backend as $crate::Backend>::Db>,
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

        /// The body of `acquire_locks`, inside the backend's serialising transaction.
        #[allow(clippy::too_many_arguments)]
        async fn acquire_locks_in(
            conn: &mut <<$backend as $crate::Backend>::Db as sqlx::Database>::Connection,
            project_id: Uuid,
            instance_id: &str,
            paths: &[String],
            reason: Option<&str>,
            now: DateTime<Utc>,
            expires_at: DateTime<Utc>,
            overlaps: PathOverlap,
        ) -> StoreResult<Vec<LockOutcome>> {
            let mut held: Vec<FileLock> = sqlx::query_as(sql::LIVE_LOCKS)
                .bind(project_id)
                .bind(now)
                .fetch_all(&mut *conn)
                .await?;
            let mut outcomes = Vec::with_capacity(paths.len());
            for path in paths {
                let conflict = held
                    .iter()
                    .find(|l| l.locked_by != instance_id && overlaps(&l.path, path));
                if let Some(conflict) = conflict {
                    outcomes.push(LockOutcome::Conflict(conflict.clone()));
                    continue;
                }
                let lock: FileLock = sqlx::query_as(sql::UPSERT_LOCK)
                    .bind(project_id)
                    .bind(path)
                    .bind(instance_id)
                    .bind(reason)
                    .bind(now)
                    .bind(expires_at)
                    .fetch_one(&mut *conn)
                    .await?;
                held.retain(|l| l.path != lock.path);
                held.push(lock.clone());
                outcomes.push(LockOutcome::Acquired(lock));
            }
            Ok(outcomes)
        }

        async fn insert_identity<'e, E>(executor: E, i: &OAuthIdentity) -> StoreResult<()>
        where
            E: sqlx::Executor<'e, Database = <$backend as $crate::Backend>::Db>,
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
