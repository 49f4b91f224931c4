//! Skills (API §9): the SKILL.md files Claude Code loads on a machine, managed from the API and
//! kept in step, both ways, with the machine's skill folder by its agent.
//!
//! Every write passes through the skill-processor plugins enabled on the machine (by name), or
//! the built-in SKILL.md frontmatter rules (the example plugin's source, compiled natively);
//! their metadata is stored and their refusal is a `VAL_001` on `content`.
//!
//! Sync (docs/skills-and-mcp.md): each row remembers the hash of what the folder held when both
//! sides last agreed (`synced_hash`). A side whose state differs from it changed; when only one
//! did, it wins; when both did, the newer modification wins and the other version is kept as a
//! `SKILL.conflict-<time>.md` copy beside the skill, so nothing is lost in silence. Disabled and
//! deleted skills are absent from the folder; a deleted row stays (as a tombstone) until the
//! file is gone too.

use std::{collections::BTreeMap, time::Duration};

use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use sqlx::types::Json;
use uuid::Uuid;

use super::{Deps, abilities, accounts::Principal, clock};
use crate::{
    error::{ApiError, ErrorCode, Result, Validator},
    protocol::{AgentRequest, DiskSkill},
    store::{Machine, SkillRow, Store},
};

pub use claudenest_protocol::skills::{MAX_CONTENT_BYTES, content_hash, valid_path};
const AGENT_TIMEOUT: Duration = Duration::from_secs(10);

fn not_found() -> ApiError {
    ApiError::new(ErrorCode::SkillNotFound)
}

/// `POST /api/machines/{machine}/skills`: creates or replaces the skill at `path`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SkillInput {
    pub path: String,
    /// Defaults to the processor's `name` (the frontmatter's).
    pub name: Option<String>,
    pub content: String,
    pub description: Option<String>,
    pub priority: Option<i64>,
    pub enabled: Option<bool>,
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<Map<String, Value>>,
}

/// `PATCH …/skills/{path}`: the fields given change.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SkillPatch {
    pub name: Option<String>,
    pub content: Option<String>,
    pub description: Option<String>,
    pub priority: Option<i64>,
    pub enabled: Option<bool>,
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<Map<String, Value>>,
}

/// One entry of `POST …/skills/bulk`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BulkItem {
    pub path: String,
    pub enabled: Option<bool>,
    pub priority: Option<i64>,
}

/// What the processors made of a SKILL.md.
struct Processed {
    name: String,
    description: String,
    content: String,
    metadata: Map<String, Value>,
}

/// The live (not deleted) skill at `path`.
async fn live(store: &dyn Store, machine_id: Uuid, path: &str) -> Result<SkillRow> {
    store
        .skill(machine_id, path)
        .await?
        .filter(|s| !s.deleted)
        .ok_or_else(not_found)
}

pub async fn list(
    store: &dyn Store,
    principal: &Principal,
    machine_id: Uuid,
) -> Result<Vec<SkillRow>> {
    principal.require(abilities::SKILLS_READ)?;
    super::machines::owned(store, principal, machine_id).await?;
    let mut skills = store.skills(machine_id).await?;
    skills.retain(|s| !s.deleted);
    // Highest priority first, then by path.
    skills.sort_by(|a, b| b.priority.cmp(&a.priority).then(a.path.cmp(&b.path)));
    Ok(skills)
}

pub async fn get(
    store: &dyn Store,
    principal: &Principal,
    machine_id: Uuid,
    path: &str,
) -> Result<SkillRow> {
    principal.require(abilities::SKILLS_READ)?;
    super::machines::owned(store, principal, machine_id).await?;
    live(store, machine_id, path).await
}

fn validate_fields(
    v: &mut Validator,
    name: Option<&str>,
    content: Option<&str>,
    description: Option<&str>,
    priority: Option<i64>,
) {
    if let Some(name) = name {
        v.check(
            (1..=255).contains(&name.trim().len()),
            "name",
            "The name must be 1 to 255 characters.",
        );
    }
    if let Some(content) = content {
        v.check(
            !content.trim().is_empty(),
            "content",
            "The content may not be empty.",
        );
        v.check(
            content.len() <= MAX_CONTENT_BYTES,
            "content",
            format!("The content may not be larger than {MAX_CONTENT_BYTES} bytes."),
        );
    }
    if let Some(description) = description {
        v.check(
            description.chars().count() <= 1024,
            "description",
            "The description may not be longer than 1024 characters.",
        );
    }
    if let Some(priority) = priority {
        v.check(
            (0..=1000).contains(&priority),
            "priority",
            "The priority must be between 0 and 1000.",
        );
    }
}

/// Runs the machine's skill processors (or the built-in one) over `content`.
async fn process(
    deps: Deps<'_>,
    user_id: Uuid,
    machine_id: Uuid,
    path: &str,
    content: &str,
) -> Result<std::result::Result<Processed, String>> {
    let processors =
        super::plugins::enabled_of_world(deps.store, user_id, machine_id, "skill-processor")
            .await?;
    let file = format!("{path}/SKILL.md");
    if processors.is_empty() {
        let processed = match frontmatter::process(&file, content) {
            Ok(p) => p,
            Err(reason) => return Ok(Err(reason)),
        };
        let m = processed.metadata;
        let meta = metadata_map(
            m.tags,
            m.version,
            m.extra,
            processed.warnings,
            "skill-frontmatter (built in)",
        );
        return Ok(Ok(Processed {
            name: m.name,
            description: m.description,
            content: processed.content,
            metadata: meta,
        }));
    }
    let mut content = content.to_owned();
    let mut last = None;
    for name in processors {
        let ready =
            super::plugins::ready(deps.store, deps.plugins, user_id, machine_id, &name).await?;
        let processed = deps
            .plugins
            .process_skill(&ready.loaded, &ready.grants, &file, &content)
            .await
            .map_err(|e| ApiError::new(ErrorCode::PluginFailed).with_message(e.0))?;
        match processed {
            Ok(p) => {
                // A plugin's output obeys the rules a user's input does.
                let mut v = Validator::new();
                let m = &p.metadata;
                validate_fields(
                    &mut v,
                    Some(&m.name),
                    Some(&p.content),
                    Some(&m.description),
                    None,
                );
                if let Err(err) = v.finish() {
                    let reasons: Vec<String> = err
                        .field_errors()
                        .into_iter()
                        .flatten()
                        .flat_map(|(field, messages)| {
                            messages.iter().map(move |m| format!("{field}: {m}"))
                        })
                        .collect();
                    return Err(ApiError::new(ErrorCode::PluginFailed).with_message(format!(
                        "`{name}` returned a skill that breaks the rules: {}",
                        reasons.join(" ")
                    )));
                }
                content = p.content.clone();
                last = Some((name, p));
            }
            Err(reason) => return Ok(Err(format!("{name}: {reason}"))),
        }
    }
    let (name, p) = last.expect("at least one processor ran");
    let m = p.metadata;
    Ok(Ok(Processed {
        name: m.name,
        description: m.description,
        content,
        metadata: metadata_map(m.tags, m.version, m.extra, p.warnings, &name),
    }))
}

fn metadata_map(
    tags: Vec<String>,
    version: Option<String>,
    extra: Vec<(String, String)>,
    warnings: Vec<String>,
    processor: &str,
) -> Map<String, Value> {
    let mut meta = Map::new();
    for (key, value) in extra {
        meta.insert(key, Value::String(value));
    }
    meta.insert("tags".into(), json!(tags));
    if let Some(version) = version {
        meta.insert("version".into(), Value::String(version));
    }
    meta.insert("processor".into(), Value::String(processor.to_owned()));
    meta.insert("warnings".into(), json!(warnings));
    meta
}

/// The fields of a skill being written, before processing.
struct Draft {
    path: String,
    name: Option<String>,
    content: String,
    description: Option<String>,
    priority: i64,
    enabled: bool,
    /// The caller's metadata; laid over the processor's.
    metadata: Map<String, Value>,
    modified: DateTime<Utc>,
}

/// Processes and stores a skill; `Err(reason)` when a processor refuses it.
async fn write(
    deps: Deps<'_>,
    user_id: Uuid,
    machine_id: Uuid,
    existing: Option<&SkillRow>,
    draft: Draft,
) -> Result<std::result::Result<SkillRow, String>> {
    let content = with_frontmatter(&draft);
    let processed = match process(deps, user_id, machine_id, &draft.path, &content).await? {
        Ok(p) => p,
        Err(reason) => return Ok(Err(reason)),
    };
    let mut metadata = processed.metadata;
    metadata.extend(draft.metadata);
    let now = clock::now();
    let row = SkillRow {
        id: existing.map_or_else(Uuid::now_v7, |e| e.id),
        machine_id,
        path: draft.path,
        name: draft.name.unwrap_or(processed.name),
        description: draft.description.unwrap_or(processed.description),
        size_bytes: processed.content.len() as i64,
        content: processed.content,
        enabled: draft.enabled,
        priority: draft.priority,
        metadata: Json(Value::Object(metadata)),
        last_modified: draft.modified,
        synced_hash: existing.and_then(|e| e.synced_hash.clone()),
        deleted: false,
        created_at: existing
            .filter(|e| !e.deleted)
            .map_or(now, |e| e.created_at),
    };
    deps.store.upsert_skill(&row).await?;
    Ok(Ok(row))
}

/// Whether SKILL.md `content` opens with its own frontmatter block.
fn has_frontmatter(content: &str) -> bool {
    content.lines().next().map(str::trim) == Some("---")
}

/// Content without a frontmatter block (API §9.3's own example, `"# Custom Skill\n\n…"`) gets
/// one made from the request, so Claude Code can read the file the agent writes: `name` is the
/// skill's folder (`path`, in the lowercase-and-hyphens form Claude Code requires; the request's
/// `name` stays the skill's display name) and `description` the request's, which is then
/// required. Content with its own frontmatter is kept as written.
fn with_frontmatter(draft: &Draft) -> String {
    let description = draft
        .description
        .as_deref()
        .map(str::trim)
        .filter(|d| !d.is_empty());
    let Some(description) = description.filter(|_| !has_frontmatter(&draft.content)) else {
        // Its own frontmatter, or nothing to make one from (a file found in the machine's
        // folder): the processor judges the content as written.
        return draft.content.clone();
    };
    let mut name: String = draft
        .path
        .chars()
        .map(|c| match c.to_ascii_lowercase() {
            c @ ('a'..='z' | '0'..='9') => c,
            _ => '-',
        })
        .collect();
    name = name.trim_matches('-').to_owned();
    if name.is_empty() {
        name = "skill".to_owned();
    }
    // A double-quoted YAML scalar on one line: backslashes and quotes escaped, breaks folded.
    let description: String = description
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .replace('\\', "\\\\")
        .replace('"', "\\\"");
    format!(
        "---\nname: {name}\ndescription: \"{description}\"\n---\n\n{}",
        draft.content
    )
}

fn refused(reason: String) -> ApiError {
    ApiError::invalid_field("content", format!("The skill was refused: {reason}"))
}

/// `POST /api/machines/{machine}/skills` (§9.3).
pub async fn create_or_update(
    deps: Deps<'_>,
    principal: &Principal,
    machine_id: Uuid,
    input: SkillInput,
) -> Result<SkillRow> {
    principal.require(abilities::SKILLS_WRITE)?;
    let mut v = Validator::new();
    v.check(
        valid_path(&input.path),
        "path",
        "The path must be 1 to 64 letters, digits, '-', '_' or '.', not starting with '.'.",
    );
    validate_fields(
        &mut v,
        input.name.as_deref(),
        Some(&input.content),
        input.description.as_deref(),
        input.priority,
    );
    let described = input
        .description
        .as_deref()
        .is_some_and(|d| !d.trim().is_empty());
    v.check(
        described || has_frontmatter(&input.content),
        "description",
        "The description field is required when the content has no frontmatter.",
    );
    v.finish()?;
    let machine = super::machines::owned(deps.store, principal, machine_id).await?;
    let existing = deps.store.skill(machine_id, &input.path).await?;
    let live = existing.as_ref().filter(|e| !e.deleted);
    let draft = Draft {
        path: input.path,
        name: input.name,
        content: input.content,
        description: input.description,
        priority: input.priority.or(live.map(|e| e.priority)).unwrap_or(0),
        enabled: input.enabled.or(live.map(|e| e.enabled)).unwrap_or(true),
        metadata: input.metadata.unwrap_or_default(),
        modified: clock::now(),
    };
    let row = write(
        deps,
        principal.user.id,
        machine_id,
        existing.as_ref(),
        draft,
    )
    .await?
    .map_err(refused)?;
    push(deps, &machine, &row).await;
    Ok(row)
}

/// `PATCH …/skills/{path}` (§9.4).
pub async fn update(
    deps: Deps<'_>,
    principal: &Principal,
    machine_id: Uuid,
    path: &str,
    patch: SkillPatch,
) -> Result<SkillRow> {
    principal.require(abilities::SKILLS_WRITE)?;
    let mut v = Validator::new();
    validate_fields(
        &mut v,
        patch.name.as_deref(),
        patch.content.as_deref(),
        patch.description.as_deref(),
        patch.priority,
    );
    v.finish()?;
    let machine = super::machines::owned(deps.store, principal, machine_id).await?;
    let existing = live(deps.store, machine_id, path).await?;
    let row = if patch.content.is_some() || patch.name.is_some() || patch.description.is_some() {
        let mut metadata = existing.metadata.0.as_object().cloned().unwrap_or_default();
        metadata.extend(patch.metadata.unwrap_or_default());
        // New content brings its own name and description (from its frontmatter) unless the
        // patch gives them; content without frontmatter gets one made from the current ones.
        let keep = patch.content.as_deref().is_none_or(|c| !has_frontmatter(c));
        let draft = Draft {
            path: existing.path.clone(),
            name: patch.name.or(keep.then(|| existing.name.clone())),
            content: patch.content.unwrap_or_else(|| existing.content.clone()),
            description: patch
                .description
                .or(keep.then(|| existing.description.clone())),
            priority: patch.priority.unwrap_or(existing.priority),
            enabled: patch.enabled.unwrap_or(existing.enabled),
            metadata,
            modified: clock::now(),
        };
        write(deps, principal.user.id, machine_id, Some(&existing), draft)
            .await?
            .map_err(refused)?
    } else {
        // Only ClaudeNest's own fields change: no need to process the content again.
        let mut row = existing.clone();
        if let Some(extra) = patch.metadata {
            let mut metadata = row.metadata.0.as_object().cloned().unwrap_or_default();
            metadata.extend(extra);
            row.metadata = Json(Value::Object(metadata));
        }
        row.priority = patch.priority.unwrap_or(row.priority);
        row.enabled = patch.enabled.unwrap_or(row.enabled);
        row.last_modified = clock::now();
        deps.store.upsert_skill(&row).await?;
        row
    };
    push(deps, &machine, &row).await;
    Ok(row)
}

/// `POST …/skills/{path}/toggle` (§9.5).
pub async fn toggle(
    deps: Deps<'_>,
    principal: &Principal,
    machine_id: Uuid,
    path: &str,
) -> Result<SkillRow> {
    principal.require(abilities::SKILLS_WRITE)?;
    let _ = super::machines::owned(deps.store, principal, machine_id).await?;
    let existing = live(deps.store, machine_id, path).await?;
    let patch = SkillPatch {
        enabled: Some(!existing.enabled),
        ..SkillPatch::default()
    };
    update(deps, principal, machine_id, path, patch).await
}

/// `DELETE …/skills/{path}` (§9.6): removed from the API at once, from the folder as soon as
/// the agent is reachable.
pub async fn delete(
    deps: Deps<'_>,
    principal: &Principal,
    machine_id: Uuid,
    path: &str,
) -> Result<()> {
    principal.require(abilities::SKILLS_WRITE)?;
    let machine = super::machines::owned(deps.store, principal, machine_id).await?;
    let mut row = live(deps.store, machine_id, path).await?;
    if row.synced_hash.as_deref().is_none_or(str::is_empty) {
        // Never on disk (or agreed absent): nothing to remove there.
        deps.store.delete_skill(machine_id, path).await?;
        return Ok(());
    }
    row.deleted = true;
    row.last_modified = clock::now();
    deps.store.upsert_skill(&row).await?;
    push(deps, &machine, &row).await;
    Ok(())
}

/// `POST …/skills/bulk` (§9.7): all or nothing — every path must exist first.
pub async fn bulk(
    deps: Deps<'_>,
    principal: &Principal,
    machine_id: Uuid,
    updates: Vec<BulkItem>,
) -> Result<Vec<SkillRow>> {
    principal.require(abilities::SKILLS_WRITE)?;
    let _ = super::machines::owned(deps.store, principal, machine_id).await?;
    let mut v = Validator::new();
    v.check(
        (1..=100).contains(&updates.len()),
        "updates",
        "Give 1 to 100 updates.",
    );
    let skills: BTreeMap<String, SkillRow> = deps
        .store
        .skills(machine_id)
        .await?
        .into_iter()
        .filter(|s| !s.deleted)
        .map(|s| (s.path.clone(), s))
        .collect();
    for (i, item) in updates.iter().enumerate() {
        v.check(
            skills.contains_key(&item.path),
            &format!("updates.{i}.path"),
            "No skill has this path.",
        );
        if let Some(priority) = item.priority {
            v.check(
                (0..=1000).contains(&priority),
                &format!("updates.{i}.priority"),
                "The priority must be between 0 and 1000.",
            );
        }
    }
    v.finish()?;
    let mut changed = Vec::with_capacity(updates.len());
    for item in updates {
        let patch = SkillPatch {
            enabled: item.enabled,
            priority: item.priority,
            ..SkillPatch::default()
        };
        changed.push(update(deps, principal, machine_id, &item.path, patch).await?);
    }
    Ok(changed)
}

/// What the folder should hold for this row: its hash, or `""` for nothing.
fn desired_hash(row: &SkillRow) -> String {
    if row.enabled && !row.deleted {
        content_hash(&row.content)
    } else {
        String::new()
    }
}

/// Makes the machine's folder match the row (when the agent is linked; otherwise the next
/// report after it links does). Failures are logged: the row is already stored.
async fn push(deps: Deps<'_>, machine: &Machine, row: &SkillRow) {
    if !deps.is_online(machine) {
        return;
    }
    let want = desired_hash(row);
    let request = if want.is_empty() {
        AgentRequest::SkillRemove {
            path: row.path.clone(),
            expect_hash: row.synced_hash.clone(),
        }
    } else {
        AgentRequest::SkillWrite {
            path: row.path.clone(),
            content: row.content.clone(),
            expect_hash: row.synced_hash.clone(),
        }
    };
    let result = deps
        .links
        .request(row.machine_id, request, AGENT_TIMEOUT)
        .await;
    let outcome = match result {
        Ok(_) if row.deleted => deps
            .store
            .delete_skill(row.machine_id, &row.path)
            .await
            .map(drop),
        Ok(_) => {
            deps.store
                .set_skill_synced(row.machine_id, &row.path, &want)
                .await
        }
        Err(err) => {
            tracing::warn!(machine_id = %row.machine_id, path = %row.path, error = %err, "skill not written to the machine; the next sync will");
            return;
        }
    };
    if let Err(err) = outcome {
        tracing::error!(path = %row.path, error = %err, "recording a skill's sync failed");
    }
}

/// Takes a folder report from the machine's agent (see the module docs for the rules).
/// `present`: the complete list of paths in the folder, when the report says it.
pub async fn sync_from_disk(
    deps: Deps<'_>,
    machine: &Machine,
    disk: Vec<DiskSkill>,
    present: Option<Vec<String>>,
) {
    if let Err(err) = reconcile(deps, machine, disk, present).await {
        tracing::error!(machine_id = %machine.id, error = %err, "skill sync failed");
    }
}

async fn reconcile(
    deps: Deps<'_>,
    machine: &Machine,
    disk: Vec<DiskSkill>,
    present: Option<Vec<String>>,
) -> Result<()> {
    // The row as it is now (online: the report came over its link), not as it was when the
    // agent authenticated.
    let Some(machine) = deps.store.machine(machine.user_id, machine.id).await? else {
        return Ok(());
    };
    let machine = &machine;
    let mut rows: BTreeMap<String, SkillRow> = deps
        .store
        .skills(machine.id)
        .await?
        .into_iter()
        .map(|s| (s.path.clone(), s))
        .collect();
    let mut reported: BTreeMap<String, DiskSkill> = disk
        .into_iter()
        .filter(|d| valid_path(&d.path))
        .map(|d| (d.path.clone(), d))
        .collect();
    if let Some(present) = present {
        let present: std::collections::HashSet<String> = present.into_iter().collect();
        // Rows of paths the folder does not have: absent on disk. (Those it has and were not
        // in this frame came in the frames before.)
        for path in rows.keys().filter(|p| !present.contains(*p)) {
            reported.entry(path.clone()).or_insert_with(|| DiskSkill {
                path: path.clone(),
                content: None,
                modified: clock::now(),
            });
        }
    }
    let mut count = rows.len();
    for (path, seen) in reported {
        let row = rows.remove(&path);
        if row.is_none() && seen.content.is_some() {
            // A folder cannot grow the store without bound.
            if count >= MAX_SKILLS_PER_MACHINE {
                tracing::warn!(machine_id = %machine.id, %path, "the machine has {MAX_SKILLS_PER_MACHINE} skills; a new one from its folder is not taken");
                continue;
            }
            count += 1;
        }
        reconcile_one(deps, machine, row, seen).await?;
    }
    Ok(())
}

/// Skills one machine may hold (its folder's and the API's together).
pub const MAX_SKILLS_PER_MACHINE: usize = 500;

async fn reconcile_one(
    deps: Deps<'_>,
    machine: &Machine,
    row: Option<SkillRow>,
    seen: DiskSkill,
) -> Result<()> {
    let disk = seen
        .content
        .as_deref()
        .map(content_hash)
        .unwrap_or_default();
    let desired = row.as_ref().map(desired_hash).unwrap_or_default();
    let base = row.as_ref().and_then(|r| r.synced_hash.clone());
    if disk == desired {
        if let Some(row) = row
            .as_ref()
            .filter(|_| base.as_deref() != Some(disk.as_str()))
        {
            if row.deleted {
                deps.store.delete_skill(machine.id, &row.path).await?;
            } else {
                deps.store
                    .set_skill_synced(machine.id, &row.path, &disk)
                    .await?;
            }
        }
        return Ok(());
    }
    let disk_changed = base.as_deref().map_or(!disk.is_empty(), |b| b != disk);
    let api_changed = base
        .as_deref()
        .map_or(!desired.is_empty(), |b| b != desired);
    let disk_wins = match (disk_changed, api_changed) {
        (false, false) => return Ok(()),
        (false, true) => false,
        (true, false) => true,
        // Both sides changed since they last agreed: the newer modification wins.
        (true, true) => row.as_ref().is_none_or(|r| seen.modified > r.last_modified),
    };
    let Some(row) = row else {
        return take_disk(deps, machine, None, seen, &disk).await;
    };
    if !disk_wins {
        // The agent keeps the folder's version as a conflict copy (`expect_hash` differs).
        push(deps, machine, &row).await;
        return Ok(());
    }
    if api_changed && !desired.is_empty() {
        // The API's version loses: keep it beside the skill.
        let copy = AgentRequest::SkillKeepCopy {
            path: row.path.clone(),
            content: row.content.clone(),
        };
        if let Err(err) = deps.links.request(machine.id, copy, AGENT_TIMEOUT).await {
            tracing::warn!(path = %row.path, error = %err, "could not keep the API's version; the skill stays as it is in the API");
            return Ok(());
        }
    }
    take_disk(deps, machine, Some(row), seen, &disk).await
}

/// The folder's version wins: store it (or delete the row when the file is gone).
async fn take_disk(
    deps: Deps<'_>,
    machine: &Machine,
    row: Option<SkillRow>,
    seen: DiskSkill,
    disk_hash: &str,
) -> Result<()> {
    let Some(content) = seen.content else {
        if let Some(row) = row {
            deps.store.delete_skill(machine.id, &row.path).await?;
            tracing::info!(path = %row.path, "skill removed from the machine's folder; deleted");
        }
        return Ok(());
    };
    let keep = row
        .as_ref()
        .and_then(|r| r.metadata.0.as_object().cloned())
        .unwrap_or_default();
    let draft = Draft {
        path: seen.path.clone(),
        name: None,
        content,
        description: None,
        priority: row.as_ref().map_or(0, |r| r.priority),
        enabled: true,
        metadata: keep
            .into_iter()
            .filter(|(k, _)| !matches!(k.as_str(), "tags" | "version" | "processor" | "warnings"))
            .collect(),
        modified: seen.modified,
    };
    match write(deps, machine.user_id, machine.id, row.as_ref(), draft).await? {
        Ok(_) => {
            deps.store
                .set_skill_synced(machine.id, &seen.path, disk_hash)
                .await?
        }
        // The file stays as it is on disk and the API keeps its version: said in the log.
        Err(reason) => {
            tracing::warn!(path = %seen.path, reason, "the machine's skill was refused by its processor; not taken")
        }
    }
    Ok(())
}

/// The built-in SKILL.md processor: the example plugin's rules, compiled natively.
#[path = "../../../../plugins/skill-frontmatter/src/frontmatter.rs"]
mod frontmatter;
