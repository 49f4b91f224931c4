//! Projects: their settings, text fields and token budget. The instances working on them and
//! their activity are in `instances.rs`; the sweeper that frees what dead instances and
//! timed-out claims hold is in `sweeper.rs`.

use serde_json::{Map, Value, json};
use sqlx::types::Json;
use uuid::Uuid;

use super::{abilities, accounts::Principal, clock};
use crate::{
    error::{ApiError, ErrorCode, Result, Validator},
    events::{Event, EventBus},
    store::{Project, ProjectCounts, ProjectListing, Store, StoreError},
};

/// Settings a project has unless told otherwise (and the only keys it accepts).
pub const DEFAULT_MAX_CONTEXT_TOKENS: i64 = 8000;
pub const DEFAULT_TASK_TIMEOUT_MINUTES: i64 = 60;
pub const DEFAULT_LOCK_TIMEOUT_MINUTES: i64 = 30;
const SETTINGS: &[(&str, i64, i64, i64)] = &[
    // key, default, min, max
    (
        "maxContextTokens",
        DEFAULT_MAX_CONTEXT_TOKENS,
        100,
        10_000_000,
    ),
    (
        "taskTimeoutMinutes",
        DEFAULT_TASK_TIMEOUT_MINUTES,
        1,
        10_080,
    ),
    ("lockTimeoutMinutes", DEFAULT_LOCK_TIMEOUT_MINUTES, 1, 1_440),
    // Budgets over all the project's sessions (0: none), and sessions started per hour.
    ("budgetTokens", 0, 0, 1_000_000_000_000),
    ("budgetCostCents", 0, 0, 100_000_000),
    ("runsPerHour", 0, 0, 10_000),
];

/// Tokens are estimated as characters / 4 (the usual rule of thumb for English and code).
pub fn estimate_tokens(chars: i64) -> i64 {
    (chars + 3) / 4
}

/// Limits that are off (0) unless set, and shown only when set.
const LIMITS: &[&str] = &["budgetTokens", "budgetCostCents", "runsPerHour"];

/// The project's settings with defaults filled in (limits only when set).
pub fn settings_of(project: &Project) -> Map<String, Value> {
    let mut settings = project.settings.0.as_object().cloned().unwrap_or_default();
    for (key, default, _, _) in SETTINGS.iter().filter(|s| !LIMITS.contains(&s.0)) {
        settings.entry(*key).or_insert(json!(default));
    }
    settings
}

pub fn setting(project: &Project, key: &str) -> i64 {
    settings_of(project)
        .get(key)
        .and_then(Value::as_i64)
        .unwrap_or_else(|| SETTINGS.iter().find(|s| s.0 == key).map_or(0, |s| s.1))
}

/// Checks a settings object: known keys, whole numbers in range.
fn validate_settings(v: &mut Validator, settings: &Value) {
    let Some(map) = settings.as_object() else {
        v.add("settings", "The settings must be an object.");
        return;
    };
    for (key, value) in map {
        match SETTINGS.iter().find(|s| s.0 == key) {
            None => {
                v.add(
                    &format!("settings.{key}"),
                    format!("Unknown setting `{key}`."),
                );
            }
            Some((_, _, min, max)) => {
                v.check(
                    value.as_i64().is_some_and(|n| (*min..=*max).contains(&n)),
                    &format!("settings.{key}"),
                    format!("The {key} must be a whole number between {min} and {max}."),
                );
            }
        }
    }
}

fn not_found() -> ApiError {
    ApiError::new(ErrorCode::ProjectNotFound)
}

/// `POST /api/machines/{machine}/projects`.
pub struct NewProject {
    pub name: String,
    pub project_path: String,
    pub summary: Option<String>,
    pub architecture: Option<String>,
    pub conventions: Option<String>,
    pub settings: Option<Value>,
}

/// The editable fields of a project (API §5.4, §7.3); `None` leaves a field as it is.
#[derive(Default)]
pub struct ProjectChanges {
    pub name: Option<String>,
    pub summary: Option<String>,
    pub architecture: Option<String>,
    pub conventions: Option<String>,
    pub current_focus: Option<String>,
    pub recent_changes: Option<String>,
    /// Merged into the current settings.
    pub settings: Option<Value>,
}

const MAX_TEXT: usize = 100_000;

fn validate_text(v: &mut Validator, field: &str, value: &Option<String>) {
    if let Some(text) = value {
        v.check(
            text.chars().count() <= MAX_TEXT,
            field,
            format!("The {field} may not be longer than {MAX_TEXT} characters."),
        );
    }
}

/// A project path as stored: trimmed, without a trailing separator.
fn normalize_project_path(path: &str) -> String {
    let trimmed = path.trim();
    let without = trimmed.trim_end_matches(['/', '\\']);
    if without.is_empty() {
        trimmed.to_owned()
    } else {
        without.to_owned()
    }
}

pub async fn create(
    store: &dyn Store,
    principal: &Principal,
    machine_id: Uuid,
    new: NewProject,
) -> Result<Project> {
    principal.require(abilities::PROJECTS_WRITE)?;
    super::machines::owned(store, principal, machine_id).await?;
    let path = normalize_project_path(&new.project_path);
    let mut v = Validator::new();
    v.check_length(
        &new.name,
        1,
        255,
        "name",
        "The name must be between 1 and 255 characters.",
    )
    .check(
        (1..=1024).contains(&path.len()) && !path.contains('\0'),
        "project_path",
        "The project path must be between 1 and 1024 characters.",
    );
    for (field, value) in [
        ("summary", &new.summary),
        ("architecture", &new.architecture),
        ("conventions", &new.conventions),
    ] {
        validate_text(&mut v, field, value);
    }
    let settings = new.settings.unwrap_or_else(|| json!({}));
    validate_settings(&mut v, &settings);
    v.finish()?;
    let now = clock::now();
    let mut project = Project {
        id: Uuid::now_v7(),
        machine_id,
        user_id: principal.user.id,
        name: new.name.trim().to_owned(),
        project_path: path,
        summary: new.summary.unwrap_or_default(),
        architecture: new.architecture.unwrap_or_default(),
        conventions: new.conventions.unwrap_or_default(),
        current_focus: String::new(),
        recent_changes: String::new(),
        task_timeout_minutes: 0,
        settings: Json(settings),
        created_at: now,
        updated_at: now,
    };
    project.task_timeout_minutes = setting(&project, "taskTimeoutMinutes") as i32;
    match store.insert_project(&project).await {
        Ok(()) => Ok(project),
        Err(StoreError::Conflict) => Err(ApiError::new(ErrorCode::ProjectPathExists)),
        Err(err) => Err(err.into()),
    }
}

/// The projects of one of the caller's machines, with their counts.
pub async fn list(
    store: &dyn Store,
    principal: &Principal,
    machine_id: Uuid,
) -> Result<Vec<ProjectListing>> {
    principal.require(abilities::PROJECTS_READ)?;
    super::machines::owned(store, principal, machine_id).await?;
    Ok(store
        .projects_of_machine(principal.user.id, machine_id, clock::now())
        .await?)
}

/// One of the caller's projects, for reading.
pub async fn get(store: &dyn Store, principal: &Principal, id: Uuid) -> Result<Project> {
    principal.require(abilities::PROJECTS_READ)?;
    store
        .project(principal.user.id, id)
        .await?
        .ok_or_else(not_found)
}

/// One of the caller's projects, for changing it (or what is in it).
pub async fn get_for_write(store: &dyn Store, principal: &Principal, id: Uuid) -> Result<Project> {
    principal.require(abilities::PROJECTS_WRITE)?;
    store
        .project(principal.user.id, id)
        .await?
        .ok_or_else(not_found)
}

pub async fn update(
    store: &dyn Store,
    bus: &EventBus,
    principal: &Principal,
    id: Uuid,
    changes: ProjectChanges,
) -> Result<Project> {
    let mut project = get_for_write(store, principal, id).await?;
    let mut v = Validator::new();
    if let Some(name) = &changes.name {
        v.check_length(
            name,
            1,
            255,
            "name",
            "The name must be between 1 and 255 characters.",
        );
    }
    for (field, value) in [
        ("summary", &changes.summary),
        ("architecture", &changes.architecture),
        ("conventions", &changes.conventions),
        ("current_focus", &changes.current_focus),
        ("recent_changes", &changes.recent_changes),
    ] {
        validate_text(&mut v, field, value);
    }
    if let Some(settings) = &changes.settings {
        validate_settings(&mut v, settings);
    }
    v.finish()?;
    if let Some(name) = changes.name {
        project.name = name.trim().to_owned();
    }
    let texts = [
        (&mut project.summary, changes.summary),
        (&mut project.architecture, changes.architecture),
        (&mut project.conventions, changes.conventions),
        (&mut project.current_focus, changes.current_focus),
        (&mut project.recent_changes, changes.recent_changes),
    ];
    for (field, value) in texts {
        if let Some(value) = value {
            *field = value;
        }
    }
    if let Some(Value::Object(new)) = changes.settings {
        let mut merged = project.settings.0.as_object().cloned().unwrap_or_default();
        merged.extend(new);
        project.settings = Json(Value::Object(merged));
        project.task_timeout_minutes = setting(&project, "taskTimeoutMinutes") as i32;
    }
    project.updated_at = clock::now();
    if !store.update_project(&project).await? {
        return Err(not_found());
    }
    bus.publish(Event::new(
        super::channel_names::project_channel(project.id),
        "project:updated",
        json!({ "project_id": project.id }),
    ));
    Ok(project)
}

pub async fn delete(store: &dyn Store, principal: &Principal, id: Uuid) -> Result<()> {
    principal.require(abilities::PROJECTS_WRITE)?;
    if store.delete_project(principal.user.id, id).await? {
        Ok(())
    } else {
        Err(not_found())
    }
}

/// §5.6: every number counted from rows.
pub struct Stats {
    pub counts: ProjectCounts,
    pub total_tokens: i64,
    pub max_tokens: i64,
}

impl Stats {
    pub fn usage_percent(&self) -> f64 {
        if self.max_tokens == 0 {
            return 0.0;
        }
        (self.total_tokens as f64 * 1000.0 / self.max_tokens as f64).round() / 10.0
    }
}

/// Characters of the project's own context fields.
pub fn field_chars(project: &Project) -> i64 {
    [
        &project.summary,
        &project.architecture,
        &project.conventions,
        &project.current_focus,
        &project.recent_changes,
    ]
    .iter()
    .map(|s| s.chars().count() as i64)
    .sum()
}

pub async fn stats(store: &dyn Store, project: &Project) -> Result<Stats> {
    let counts = store.project_counts(project.id, clock::now()).await?;
    Ok(Stats {
        total_tokens: estimate_tokens(field_chars(project) + counts.chunk_chars),
        max_tokens: setting(project, "maxContextTokens"),
        counts,
    })
}
