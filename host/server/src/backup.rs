//! `claudenest backup DIR` and `claudenest restore DIR`: everything a host needs to come back —
//! the database (SQLite: a consistent copy taken while the server runs; PostgreSQL: `pg_dump`,
//! see docs/operations.md) and the keys kept beside it in the data directory, without which
//! sealed values (MCP servers' `env`, webhook secrets) cannot be opened, realtime signatures
//! change and browsers' Web Push subscriptions stop working.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use serde::{Deserialize, Serialize};

use crate::{
    config::Config,
    store::{self, StoreKind},
};

/// Files of the data directory a backup carries (when they exist: configured keys live in
/// the configuration instead).
pub const KEY_FILES: &[&str] = &["secret-key", "pusher-secret", "vapid-key"];
const DATABASE_FILE: &str = "claudenest.sqlite3";
const MANIFEST: &str = "manifest.json";

/// What a backup holds (`manifest.json`).
#[derive(Debug, Serialize, Deserialize)]
pub struct Manifest {
    pub format: u32,
    /// The `claudenest` version that took it.
    pub version: String,
    pub created_at: chrono::DateTime<chrono::Utc>,
    /// `sqlite` (the database is `claudenest.sqlite3` here) or `postgres` (it is not: dump it
    /// with `pg_dump`).
    pub store: String,
    pub files: Vec<String>,
}

/// The SQLite database file a `sqlite://` URL names.
fn sqlite_path(url: &str) -> anyhow::Result<PathBuf> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
        .context("not a sqlite:// URL")?;
    Ok(PathBuf::from(rest.split('?').next().unwrap_or(rest)))
}

/// Copies a file (a database can be large: streamed) to `to`, readable by its owner only.
fn copy_private(from: &Path, to: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
    let mut source =
        std::fs::File::open(from).with_context(|| format!("reading {}", from.display()))?;
    let mut target = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(to)
        .with_context(|| format!("writing {}", to.display()))?;
    // A file already there keeps its mode through `open`: tighten it.
    target.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    std::io::copy(&mut source, &mut target)?;
    Ok(())
}

/// Takes a backup into `dir`, which must not exist or be empty. Safe while the server runs.
pub async fn backup(config: &Config, dir: &Path) -> anyhow::Result<Manifest> {
    if dir.exists() && std::fs::read_dir(dir)?.next().is_some() {
        bail!(
            "{} is not empty: back up into a new directory",
            dir.display()
        );
    }
    crate::app::private_dir(dir)?;
    let store = store::open(&config.effective_database_url()).await?;
    let mut files = Vec::new();
    let kind = store.kind();
    if kind == StoreKind::Sqlite {
        store.backup_into(&dir.join(DATABASE_FILE)).await?;
        files.push(DATABASE_FILE.to_owned());
    }
    store.close().await;
    for name in KEY_FILES {
        let from = config.data_dir.join(name);
        if from.exists() {
            copy_private(&from, &dir.join(name))?;
            files.push((*name).to_owned());
        }
    }
    let manifest = Manifest {
        format: 1,
        version: crate::VERSION.to_owned(),
        created_at: chrono::Utc::now(),
        store: match kind {
            StoreKind::Sqlite => "sqlite",
            StoreKind::Postgres => "postgres",
        }
        .to_owned(),
        files,
    };
    crate::secrets::write_private(&dir.join(MANIFEST), &serde_json::to_vec_pretty(&manifest)?)?;
    Ok(manifest)
}

/// Puts a backup in place for this configuration: the SQLite database where the
/// configuration keeps it (refused when one is there, unless `force` — with the server
/// stopped), the keys into the data directory (refused when different ones are there, unless
/// `force`); then migrates, so a backup of an older release comes up to date.
pub async fn restore(config: &Config, dir: &Path, force: bool) -> anyhow::Result<Manifest> {
    let manifest: Manifest = serde_json::from_slice(
        &std::fs::read(dir.join(MANIFEST))
            .with_context(|| format!("{} is not a backup", dir.display()))?,
    )
    .context("reading the backup's manifest")?;
    let url = config.effective_database_url();
    let target_is_sqlite = url.starts_with("sqlite:");
    if manifest.store == "sqlite" && !target_is_sqlite {
        bail!("the backup holds a SQLite database but this host is configured for PostgreSQL");
    }
    crate::app::private_dir(&config.data_dir)?;
    for name in manifest
        .files
        .iter()
        .filter(|f| KEY_FILES.contains(&f.as_str()))
    {
        let (from, to) = (dir.join(name), config.data_dir.join(name));
        if to.exists() && std::fs::read(&to)? != std::fs::read(&from)? && !force {
            bail!(
                "{} holds a different key; restoring would orphan what it sealed (--force to replace it)",
                to.display()
            );
        }
        copy_private(&from, &to)?;
    }
    if manifest.store == "sqlite" {
        let target = sqlite_path(&url)?;
        if target.exists() && !force {
            bail!(
                "{} exists: stop the server and pass --force to replace it",
                target.display()
            );
        }
        if let Some(parent) = target.parent().filter(|p| !p.as_os_str().is_empty()) {
            crate::app::private_dir(parent)?;
        }
        for suffix in ["-wal", "-shm"] {
            let mut stale = target.as_os_str().to_owned();
            stale.push(suffix);
            let _ = std::fs::remove_file(PathBuf::from(stale));
        }
        copy_private(&dir.join(DATABASE_FILE), &target)?;
    }
    // Opening migrates: the restored database comes up to this release's schema.
    store::open(&url).await?.close().await;
    Ok(manifest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_urls_name_their_file() {
        assert_eq!(
            sqlite_path("sqlite:///var/lib/c/db.sqlite3").unwrap(),
            PathBuf::from("/var/lib/c/db.sqlite3")
        );
        assert_eq!(
            sqlite_path("sqlite://data/db.sqlite3?mode=rwc").unwrap(),
            PathBuf::from("data/db.sqlite3")
        );
        assert!(sqlite_path("postgres://h/db").is_err());
    }
}
