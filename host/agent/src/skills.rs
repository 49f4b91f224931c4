//! The machine's skill folder (`~/.claude/skills` by default): `<path>/SKILL.md` per skill.
//!
//! The agent reports what is there (everything after each link opens, then only changes, by
//! polling) and writes or removes files when the host asks. The host decides who wins a
//! conflict (`domain::skills`); the agent's one rule is never to overwrite or remove a file the
//! host has not seen: such a file is kept as `SKILL.conflict-<time>.md` first.

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
};

use anyhow::Context as _;
use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use claudenest_protocol::{DiskSkill, skills};

const SKILL_FILE: &str = "SKILL.md";
/// Content per report frame (a skill is at most `MAX_CONTENT_BYTES`; JSON escaping can double
/// it, and a frame is at most 1 MiB).
const REPORT_FRAME_BYTES: usize = 300 * 1024;

#[derive(Clone)]
pub struct SkillFolder {
    dir: PathBuf,
    /// Hash of each skill as last reported to the host (or written for it).
    known: Arc<Mutex<HashMap<String, String>>>,
}

impl SkillFolder {
    pub fn new(dir: PathBuf) -> Self {
        Self {
            dir,
            known: Arc::default(),
        }
    }

    /// `~/.claude/skills`.
    pub fn default_dir() -> PathBuf {
        std::env::var_os("HOME")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("."))
            .join(".claude/skills")
    }

    fn file(&self, path: &str) -> anyhow::Result<PathBuf> {
        anyhow::ensure!(skills::valid_path(path), "invalid skill path `{path}`");
        Ok(self.dir.join(path).join(SKILL_FILE))
    }

    /// Every skill in the folder now.
    fn scan(&self) -> Vec<DiskSkill> {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return Vec::new();
        };
        let mut found = Vec::new();
        for entry in entries.flatten() {
            let Some(path) = entry.file_name().to_str().map(str::to_owned) else {
                continue;
            };
            if !skills::valid_path(&path) {
                continue;
            }
            if let Some((content, modified)) = read(&entry.path().join(SKILL_FILE)) {
                found.push(DiskSkill {
                    path,
                    content: Some(content),
                    modified,
                });
            }
        }
        found
    }

    /// The report messages: everything then the list of paths (`full`), or what changed
    /// since the last report. Frames stay well under the link's frame limit.
    pub fn report_messages(&self, full: bool) -> Vec<claudenest_protocol::AgentMessage> {
        let skills = self.report(full);
        let present = full.then(|| {
            let mut paths: Vec<String> = skills.iter().map(|s| s.path.clone()).collect();
            paths.sort();
            paths
        });
        let mut messages = Vec::new();
        let mut batch = Vec::new();
        let mut size = 0;
        for skill in skills {
            let len = skill.content.as_ref().map_or(0, String::len) + skill.path.len();
            if size + len > REPORT_FRAME_BYTES && !batch.is_empty() {
                messages.push(claudenest_protocol::AgentMessage::SkillsReport {
                    skills: std::mem::take(&mut batch),
                    present: None,
                });
                size = 0;
            }
            size += len;
            batch.push(skill);
        }
        if !batch.is_empty() || present.is_some() {
            messages.push(claudenest_protocol::AgentMessage::SkillsReport {
                skills: batch,
                present,
            });
        }
        messages
    }

    /// What to report: everything (`full`), or what changed since the last report.
    fn report(&self, full: bool) -> Vec<DiskSkill> {
        let now = self.scan();
        let mut known = self.known.lock().unwrap_or_else(|p| p.into_inner());
        let mut out = Vec::new();
        let mut seen = HashMap::with_capacity(now.len());
        for skill in now {
            let hash = skills::content_hash(skill.content.as_deref().unwrap_or_default());
            if full || known.get(&skill.path) != Some(&hash) {
                out.push(skill.clone());
            }
            seen.insert(skill.path, hash);
        }
        if !full {
            for path in known.keys().filter(|p| !seen.contains_key(*p)) {
                out.push(DiskSkill {
                    path: path.clone(),
                    content: None,
                    modified: Utc::now(),
                });
            }
        }
        *known = seen;
        out
    }

    /// Keeps the current file as a conflict copy when it is not what the host expects.
    fn protect(
        &self,
        path: &str,
        expect_hash: Option<&str>,
        replacing: Option<&str>,
    ) -> anyhow::Result<()> {
        let file = self.file(path)?;
        let Some((current, _)) = read(&file) else {
            return Ok(());
        };
        let hash = skills::content_hash(&current);
        let expected = expect_hash == Some(hash.as_str());
        let same = replacing.is_some_and(|r| skills::content_hash(r) == hash);
        if !expected && !same {
            let copy = self.keep_copy(path, &current)?;
            tracing::warn!(skill = path, copy = %copy.display(), "the skill changed here too; kept this version as a conflict copy");
        }
        Ok(())
    }

    pub fn keep_copy(&self, path: &str, content: &str) -> anyhow::Result<PathBuf> {
        let dir = self
            .file(path)?
            .parent()
            .expect("skill file has a folder")
            .to_owned();
        std::fs::create_dir_all(&dir)?;
        let stamp = Utc::now().format("%Y%m%dT%H%M%S%.3fZ");
        let copy = dir.join(format!("SKILL.conflict-{stamp}.md"));
        std::fs::write(&copy, content).with_context(|| format!("writing {}", copy.display()))?;
        Ok(copy)
    }

    pub fn write(
        &self,
        path: &str,
        content: &str,
        expect_hash: Option<&str>,
    ) -> anyhow::Result<Value> {
        self.protect(path, expect_hash, Some(content))?;
        let file = self.file(path)?;
        std::fs::create_dir_all(file.parent().expect("skill file has a folder"))?;
        // Write beside, then rename: Claude Code never reads half a file.
        let tmp = file.with_extension("md.tmp");
        std::fs::write(&tmp, content).with_context(|| format!("writing {}", tmp.display()))?;
        std::fs::rename(&tmp, &file)?;
        self.remember(path, Some(content));
        let modified = read(&file).map(|(_, m)| m);
        Ok(json!({ "written": true, "modified": modified }))
    }

    pub fn remove(&self, path: &str, expect_hash: Option<&str>) -> anyhow::Result<Value> {
        self.protect(path, expect_hash, None)?;
        let file = self.file(path)?;
        match std::fs::remove_file(&file) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e).with_context(|| format!("removing {}", file.display())),
        }
        // The folder goes too when nothing else (a conflict copy, resources) is left in it.
        let _ = std::fs::remove_dir(file.parent().expect("skill file has a folder"));
        self.remember(path, None);
        Ok(json!({ "removed": true }))
    }

    /// What the host now knows, so the next report does not echo the host's own write back.
    fn remember(&self, path: &str, content: Option<&str>) {
        let mut known = self.known.lock().unwrap_or_else(|p| p.into_inner());
        match content {
            Some(c) => known.insert(path.to_owned(), skills::content_hash(c)),
            None => known.remove(path),
        };
    }
}

fn read(file: &Path) -> Option<(String, DateTime<Utc>)> {
    let meta = std::fs::metadata(file).ok()?;
    if !meta.is_file() || meta.len() > skills::MAX_CONTENT_BYTES as u64 {
        return None;
    }
    let content = std::fs::read_to_string(file).ok()?;
    let modified = meta.modified().ok().map(DateTime::<Utc>::from)?;
    Some((content, modified))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_changes_and_keeps_unexpected_files_as_copies() {
        let dir = tempfile::tempdir().unwrap();
        let folder = SkillFolder::new(dir.path().to_owned());
        assert!(folder.report(true).is_empty());
        std::fs::create_dir_all(dir.path().join("a")).unwrap();
        std::fs::write(dir.path().join("a/SKILL.md"), "one").unwrap();
        std::fs::create_dir_all(dir.path().join("../escape")).ok();
        let first = folder.report(false);
        assert_eq!(first.len(), 1);
        assert_eq!(first[0].content.as_deref(), Some("one"));
        assert!(
            folder.report(false).is_empty(),
            "unchanged: nothing to report"
        );

        // The host writes over a file it has not seen: the file is kept as a copy.
        std::fs::write(dir.path().join("a/SKILL.md"), "two").unwrap();
        folder
            .write("a", "three", Some(&skills::content_hash("one")))
            .unwrap();
        let copies: Vec<_> = std::fs::read_dir(dir.path().join("a"))
            .unwrap()
            .flatten()
            .filter(|e| {
                e.file_name()
                    .to_string_lossy()
                    .starts_with("SKILL.conflict-")
            })
            .collect();
        assert_eq!(copies.len(), 1);
        assert_eq!(std::fs::read_to_string(copies[0].path()).unwrap(), "two");
        assert!(
            folder.report(false).is_empty(),
            "the host's own write is not echoed"
        );

        std::fs::remove_file(dir.path().join("a/SKILL.md")).unwrap();
        let gone = folder.report(false);
        assert_eq!(gone.len(), 1);
        assert!(gone[0].content.is_none());
        assert!(folder.write("../x", "y", None).is_err());
    }
}
