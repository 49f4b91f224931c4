//! File locks (API §8): one instance per path at a time, paths normalised, globs allowed
//! (`src/auth/**` conflicts with any path or glob it overlaps), expiry instead of trust.
//!
//! Bulk acquisition is partial, as §8.5's response shows: every path that is free is taken,
//! the others are reported with who holds them, all in one transaction.

use chrono::{DateTime, Duration, Utc};
use serde_json::json;
use uuid::Uuid;

use super::{
    accounts::Principal,
    clock,
    instances::{record, touch_instance, validate_instance_id},
    projects::{self, setting},
};
use crate::{
    error::{ApiError, ErrorCode, Result, Validator},
    events::EventBus,
    store::{FileLock, LockOutcome, Project, Store},
};

const MAX_MINUTES: i64 = 1440;

/// A path relative to the project root with `/` separators, or why it is not acceptable.
pub fn normalize_path(project_root: &str, raw: &str) -> std::result::Result<String, &'static str> {
    let mut path = raw.trim().replace('\\', "/");
    let root = project_root.replace('\\', "/");
    if let Some(rest) = path.strip_prefix(&format!("{root}/")) {
        path = rest.to_owned();
    }
    if path.starts_with('/') || path.chars().nth(1) == Some(':') {
        return Err("The path must be relative to the project (or inside its directory).");
    }
    let mut parts = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => return Err("The path may not contain `..`."),
            other => parts.push(other),
        }
    }
    if parts.is_empty() {
        return Err("The path is empty.");
    }
    let joined = parts.join("/");
    if joined.len() > 1024 {
        return Err("The path may not be longer than 1024 characters.");
    }
    check_glob(&joined)?;
    Ok(joined)
}

fn is_glob(path: &str) -> bool {
    path.contains(['*', '?', '['])
}

/// Longest glob accepted, and most wildcards in one: with the matcher below, the cost of a
/// comparison grows with the product of the lengths, so both are kept small.
pub const MAX_GLOB_CHARS: usize = 256;
pub const MAX_GLOB_WILDCARDS: usize = 16;

/// Why a glob is not accepted, if it is not.
pub fn check_glob(path: &str) -> std::result::Result<(), &'static str> {
    if !is_glob(path) {
        return Ok(());
    }
    if path.len() > MAX_GLOB_CHARS {
        return Err("A pattern may not be longer than 256 characters.");
    }
    if path.matches(['*', '?']).count() > MAX_GLOB_WILDCARDS {
        return Err("A pattern may hold at most 16 wildcards.");
    }
    Ok(())
}

/// Whether `pattern` (segments with `*`, `?`, and `**` for any number of segments) matches
/// the literal `path`.
///
/// Dynamic programming over positions, never backtracking: time grows with
/// `len(pattern) × len(path)` whatever the pattern (a backtracking matcher takes exponential
/// time on `************b` against `aaaa…`).
pub fn glob_matches(pattern: &str, path: &str) -> bool {
    let p: Vec<&[u8]> = pattern.split('/').map(str::as_bytes).collect();
    let s: Vec<&[u8]> = path.split('/').map(str::as_bytes).collect();
    // ok[j]: the pattern's segments from i on match the path's segments from j on.
    let mut ok = vec![false; s.len() + 1];
    ok[s.len()] = true;
    for i in (0..p.len()).rev() {
        let mut row = vec![false; s.len() + 1];
        for j in (0..=s.len()).rev() {
            row[j] = if p[i] == b"**" {
                // Zero segments, or one more.
                ok[j] || (j < s.len() && row[j + 1])
            } else {
                j < s.len() && ok[j + 1] && segment_matches(p[i], s[j])
            };
        }
        ok = row;
    }
    ok[0]
}

/// One segment against a pattern segment with `*` and `?`, by the same kind of table.
fn segment_matches(p: &[u8], s: &[u8]) -> bool {
    // ok[j]: p[i..] matches s[j..].
    let mut ok = vec![false; s.len() + 1];
    ok[s.len()] = true;
    for i in (0..p.len()).rev() {
        let mut row = vec![false; s.len() + 1];
        for j in (0..=s.len()).rev() {
            row[j] = match p[i] {
                b'*' => ok[j] || (j < s.len() && row[j + 1]),
                b'?' => j < s.len() && ok[j + 1],
                c => j < s.len() && s[j] == c && ok[j + 1],
            };
        }
        ok = row;
    }
    ok[0]
}

/// Whether two lock paths can cover a common file. Two globs are compared by their literal
/// prefixes (up to the first wildcard): conservative, so it may see an overlap where the
/// patterns could never both match, never the other way round.
pub fn overlaps(a: &str, b: &str) -> bool {
    match (is_glob(a), is_glob(b)) {
        (false, false) => a == b,
        (true, false) => glob_matches(a, b),
        (false, true) => glob_matches(b, a),
        (true, true) => {
            let prefix = |p: &str| {
                let end = p.find(['*', '?', '[']).unwrap_or(p.len());
                p[..end].to_owned()
            };
            let (pa, pb) = (prefix(a), prefix(b));
            pa.starts_with(&pb) || pb.starts_with(&pa)
        }
    }
}

fn duration(project: &Project, minutes: Option<i64>, v: &mut Validator, field: &str) -> Duration {
    let minutes = minutes.unwrap_or_else(|| setting(project, "lockTimeoutMinutes"));
    v.check(
        (1..=MAX_MINUTES).contains(&minutes),
        field,
        format!("The {field} must be between 1 and {MAX_MINUTES}."),
    );
    Duration::minutes(minutes.clamp(1, MAX_MINUTES))
}

fn conflict_error(lock: &FileLock) -> ApiError {
    ApiError::new(ErrorCode::FileLocked)
        .with_message(format!(
            "{} is locked by {} until {}",
            lock.path,
            lock.locked_by,
            lock.expires_at.to_rfc3339()
        ))
        .with_details(json!({
            "path": lock.path,
            "locked_by": lock.locked_by,
            "reason": lock.reason,
            "expires_at": lock.expires_at,
        }))
}

/// `file:unlocked` and its activity entry.
pub async fn announce_unlock(
    store: &dyn Store,
    bus: &EventBus,
    project_id: Uuid,
    instance_id: Option<&str>,
    path: &str,
) -> Result<()> {
    record(
        store,
        bus,
        project_id,
        instance_id,
        "file_unlocked",
        json!({ "path": path }),
        Some(("file:unlocked", json!({ "path": path }))),
    )
    .await
}

async fn announce_lock(store: &dyn Store, bus: &EventBus, lock: &FileLock) -> Result<()> {
    record(
        store,
        bus,
        lock.project_id,
        Some(&lock.locked_by),
        "file_locked",
        json!({ "path": lock.path, "reason": lock.reason, "expires_at": lock.expires_at }),
        Some((
            "file:locked",
            json!({ "path": lock.path, "lockedBy": lock.locked_by, "reason": lock.reason }),
        )),
    )
    .await
}

/// The outcome of a bulk acquire.
pub struct Bulk {
    pub acquired: Vec<FileLock>,
    pub failed: Vec<(String, FileLock)>,
}

/// What an acquire asks for (one path is §8.2, several §8.5).
pub struct LockRequest {
    pub paths: Vec<String>,
    pub instance_id: String,
    pub reason: Option<String>,
    /// Default: the project's `lockTimeoutMinutes`.
    pub duration_minutes: Option<i64>,
}

/// Acquires every free path of the request for its instance.
pub async fn acquire(
    store: &dyn Store,
    bus: &EventBus,
    principal: &Principal,
    project_id: Uuid,
    request: &LockRequest,
) -> Result<Bulk> {
    let project = projects::get_for_write(store, principal, project_id).await?;
    let instance_id = request.instance_id.as_str();
    let mut v = Validator::new();
    validate_instance_id(&mut v, "instance_id", instance_id);
    v.check(
        (1..=100).contains(&request.paths.len()),
        "paths",
        "Give between 1 and 100 paths.",
    );
    let mut paths = Vec::new();
    for raw in &request.paths {
        match normalize_path(&project.project_path, raw) {
            Ok(p) if !paths.contains(&p) => paths.push(p),
            Ok(_) => {}
            Err(message) => {
                v.add("path", message);
            }
        }
    }
    if let Some(reason) = &request.reason {
        v.check(
            reason.chars().count() <= 1000,
            "reason",
            "The reason may not be longer than 1000 characters.",
        );
    }
    let lifetime = duration(
        &project,
        request.duration_minutes,
        &mut v,
        "duration_minutes",
    );
    v.finish()?;
    touch_instance(store, project.id, instance_id).await?;
    let now = clock::now();
    let outcomes = store
        .acquire_locks(
            project.id,
            instance_id,
            &paths,
            request.reason.as_deref(),
            now,
            now + lifetime,
            overlaps,
        )
        .await?;
    let mut bulk = Bulk {
        acquired: Vec::new(),
        failed: Vec::new(),
    };
    for (path, outcome) in paths.into_iter().zip(outcomes) {
        match outcome {
            LockOutcome::Acquired(lock) => {
                announce_lock(store, bus, &lock).await?;
                bulk.acquired.push(lock);
            }
            LockOutcome::Conflict(held) => bulk.failed.push((path, held)),
        }
    }
    Ok(bulk)
}

/// A single acquire: the lock, or `LCK_001` with who holds it.
pub async fn acquire_one(
    store: &dyn Store,
    bus: &EventBus,
    principal: &Principal,
    project_id: Uuid,
    request: &LockRequest,
) -> Result<FileLock> {
    let mut bulk = acquire(store, bus, principal, project_id, request).await?;
    match (bulk.acquired.pop(), bulk.failed.pop()) {
        (Some(lock), _) => Ok(lock),
        (None, Some((_, held))) => Err(conflict_error(&held)),
        (None, None) => Err(ApiError::internal(anyhow::anyhow!(
            "acquire returned nothing"
        ))),
    }
}

pub async fn list(
    store: &dyn Store,
    principal: &Principal,
    project_id: Uuid,
) -> Result<(Vec<FileLock>, DateTime<Utc>)> {
    let project = projects::get(store, principal, project_id).await?;
    let now = clock::now();
    Ok((store.live_locks(project.id, now).await?, now))
}

/// §8.3: whether `path` is covered by any live lock, and by whom.
pub async fn check(
    store: &dyn Store,
    principal: &Principal,
    project_id: Uuid,
    raw_path: &str,
) -> Result<Option<FileLock>> {
    let project = projects::get(store, principal, project_id).await?;
    let path = normalize_path(&project.project_path, raw_path)
        .map_err(|m| ApiError::invalid_field("path", m))?;
    let locks = store.live_locks(project.id, clock::now()).await?;
    Ok(locks.into_iter().find(|l| overlaps(&l.path, &path)))
}

fn no_lock() -> ApiError {
    ApiError::new(ErrorCode::LockNotFound)
}

/// After a failed holder-only change: `LCK_001` if someone else holds it, else `LCK_002`.
async fn explain(store: &dyn Store, project_id: Uuid, path: &str) -> ApiError {
    match store.live_locks(project_id, clock::now()).await {
        Ok(locks) => match locks.iter().find(|l| l.path == path) {
            Some(held) => conflict_error(held),
            None => no_lock(),
        },
        Err(err) => err.into(),
    }
}

pub async fn extend(
    store: &dyn Store,
    principal: &Principal,
    project_id: Uuid,
    raw_path: &str,
    instance_id: &str,
    additional_minutes: i64,
) -> Result<FileLock> {
    let project = projects::get_for_write(store, principal, project_id).await?;
    let mut v = Validator::new();
    validate_instance_id(&mut v, "instance_id", instance_id);
    v.check(
        (1..=MAX_MINUTES).contains(&additional_minutes),
        "additional_minutes",
        format!("The additional minutes must be between 1 and {MAX_MINUTES}."),
    );
    let path = normalize_path(&project.project_path, raw_path);
    if let Err(m) = &path {
        v.add("path", *m);
    }
    v.finish()?;
    let path = path.unwrap_or_default();
    touch_instance(store, project.id, instance_id).await?;
    let now = clock::now();
    let current = store
        .live_locks(project.id, now)
        .await?
        .into_iter()
        .find(|l| l.path == path && l.locked_by == instance_id);
    let Some(current) = current else {
        return Err(explain(store, project.id, &path).await);
    };
    let until = current.expires_at + Duration::minutes(additional_minutes);
    store
        .extend_lock(project.id, &path, instance_id, until, now)
        .await?
        .ok_or(no_lock())
}

/// Releases `path`: only its holder may, unless `force` (the project's owner, §8.7).
pub async fn release(
    store: &dyn Store,
    bus: &EventBus,
    principal: &Principal,
    project_id: Uuid,
    raw_path: &str,
    instance_id: Option<&str>,
) -> Result<FileLock> {
    let project = projects::get_for_write(store, principal, project_id).await?;
    let mut v = Validator::new();
    if let Some(id) = instance_id {
        validate_instance_id(&mut v, "instance_id", id);
    }
    let path = normalize_path(&project.project_path, raw_path);
    if let Err(m) = &path {
        v.add("path", *m);
    }
    v.finish()?;
    let path = path.unwrap_or_default();
    if let Some(id) = instance_id {
        touch_instance(store, project.id, id).await?;
    }
    let released = store
        .delete_lock(project.id, &path, instance_id, clock::now())
        .await?;
    let Some(lock) = released else {
        return Err(explain(store, project.id, &path).await);
    };
    announce_unlock(store, bus, project.id, instance_id, &lock.path).await?;
    Ok(lock)
}

/// §8.8: every lock the instance holds.
pub async fn release_by_instance(
    store: &dyn Store,
    bus: &EventBus,
    principal: &Principal,
    project_id: Uuid,
    instance_id: &str,
) -> Result<Vec<FileLock>> {
    let project = projects::get_for_write(store, principal, project_id).await?;
    let mut v = Validator::new();
    validate_instance_id(&mut v, "instance_id", instance_id);
    v.finish()?;
    let released = store
        .delete_locks_of_instance(project.id, instance_id, clock::now())
        .await?;
    for lock in &released {
        announce_unlock(store, bus, project.id, Some(instance_id), &lock.path).await?;
    }
    Ok(released)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_normalised_and_escapes_refused() {
        let root = "/home/u/app";
        assert_eq!(
            normalize_path(root, "src\\auth.php").unwrap(),
            "src/auth.php"
        );
        assert_eq!(
            normalize_path(root, "./src//auth.php/").unwrap(),
            "src/auth.php"
        );
        assert_eq!(
            normalize_path(root, "/home/u/app/src/a.rs").unwrap(),
            "src/a.rs"
        );
        for bad in [
            "../etc/passwd",
            "src/../../x",
            "/etc/passwd",
            "C:/x",
            "",
            "./",
        ] {
            assert!(normalize_path(root, bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn globs_overlap_what_they_could_cover() {
        assert!(glob_matches("src/auth/**", "src/auth/login.rs"));
        assert!(glob_matches("src/auth/**", "src/auth/deep/x.rs"));
        assert!(glob_matches("src/*.rs", "src/main.rs"));
        assert!(!glob_matches("src/*.rs", "src/a/main.rs"));
        assert!(glob_matches("src/?.rs", "src/a.rs"));
        assert!(overlaps("src/auth/**", "src/auth/login.rs"));
        assert!(overlaps("src/auth/login.rs", "src/**"));
        assert!(!overlaps("src/auth/**", "docs/readme.md"));
        assert!(overlaps("src/**", "src/auth/**"));
        assert!(!overlaps("src/**", "docs/**"));
        assert!(overlaps("a.rs", "a.rs") && !overlaps("a.rs", "b.rs"));
        assert!(glob_matches("**", "a/b/c") && glob_matches("a/**/c", "a/c"));
        assert!(
            glob_matches("a/**/c/*.rs", "a/x/y/c/m.rs")
                && !glob_matches("a/**/c/*.rs", "a/x/c/d/m.rs")
        );
        assert!(glob_matches("*a*b*", "xxaxxbxx") && !glob_matches("*a*b*", "xxbxxaxx"));
        assert!(!glob_matches("src/?.rs", "src/ab.rs") && glob_matches("*", "anything"));
    }

    #[test]
    fn patterns_that_make_backtracking_explode_are_answered_at_once() {
        // Exponential for a backtracking matcher (the lock check ran 3.6 s on twelve stars,
        // inside the store's write transaction); a table lookup here.
        let stars = "*".repeat(MAX_GLOB_WILDCARDS);
        let path = "a".repeat(1000);
        assert!(!glob_matches(&format!("{stars}b"), &path));
        assert!(glob_matches(&format!("{stars}a"), &path));
        let deep = ["**"; 8].join("/");
        let segments = vec!["a"; 500].join("/");
        assert!(!glob_matches(&format!("{deep}/b"), &segments));
        assert!(check_glob(&format!("{stars}*b")).is_err());
        assert!(check_glob(&format!("{}*", "a".repeat(MAX_GLOB_CHARS))).is_err());
        assert!(
            check_glob(&"a".repeat(1000)).is_ok(),
            "literal paths keep their own limit"
        );
    }
}
