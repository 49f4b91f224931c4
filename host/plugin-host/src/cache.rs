//! Compiled components on disk, authenticated.
//!
//! Deserialising a `.cwasm` runs whatever native code it holds, so a file planted in the cache
//! directory would be code execution in the process that loads it. Every file this cache writes
//! starts with an HMAC-SHA256 (over its name and contents) under a key that lives beside the
//! directory (`<dir>.key`, mode 0600, made on first use); a file whose MAC does not verify is
//! ignored, deleted and compiled afresh. Neither the key nor the directory is reachable by a
//! plugin: the host's runtime gives plugins no filesystem, and an agent never lets a mount
//! overlap its data directory.
//!
//! The directory is bounded: beyond `max_files` the least recently used files are removed.

use std::{
    io::Write as _,
    os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _},
    path::{Path, PathBuf},
    time::SystemTime,
};

use hmac::{Hmac, Mac as _};
use sha2::Sha256;

const MAC_BYTES: usize = 32;

pub struct DiskCache {
    dir: PathBuf,
    key: [u8; 32],
    max_files: usize,
}

impl DiskCache {
    /// Opens (creating, mode 0700) `dir` and its key `<dir>.key`.
    pub fn open(dir: PathBuf, max_files: usize) -> std::io::Result<Self> {
        use std::os::unix::fs::DirBuilderExt as _;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)?;
        let key = load_or_make_key(&dir.with_extension("key"))?;
        Ok(Self {
            dir,
            key,
            max_files: max_files.max(1),
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Where the compiled form of the component `sha256` for engine `engine_hash` lives.
    pub fn path(&self, sha256: &str, engine_hash: u64) -> PathBuf {
        self.dir.join(format!("{sha256}-{engine_hash:016x}.cwasm"))
    }

    fn mac(&self, name: &str, body: &[u8]) -> Hmac<Sha256> {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.key).expect("any key length");
        mac.update(name.as_bytes());
        mac.update(&[0]);
        mac.update(body);
        mac
    }

    /// The verified contents of `path`, or `None` (missing, or not written by this cache: such
    /// a file is removed).
    pub fn read(&self, path: &Path) -> Option<Vec<u8>> {
        let mut bytes = std::fs::read(path).ok()?;
        let name = path.file_name()?.to_string_lossy().into_owned();
        let verified = bytes.len() > MAC_BYTES
            && self
                .mac(&name, &bytes[MAC_BYTES..])
                .verify_slice(&bytes[..MAC_BYTES])
                .is_ok();
        if !verified {
            tracing::warn!(path = %path.display(), "a compiled plugin file failed verification; ignored and removed");
            let _ = std::fs::remove_file(path);
            return None;
        }
        // Recently used files survive collection.
        if let Ok(file) = std::fs::File::options().write(true).open(path) {
            let _ = file.set_modified(SystemTime::now());
        }
        bytes.drain(..MAC_BYTES);
        Some(bytes)
    }

    /// Writes `body` with its MAC (atomically), then collects the oldest files over the bound.
    pub fn write(&self, path: &Path, body: &[u8]) {
        let Some(name) = path.file_name().map(|n| n.to_string_lossy().into_owned()) else {
            return;
        };
        let tag = self.mac(&name, body).finalize().into_bytes();
        let tmp = path.with_extension(format!("tmp{}", std::process::id()));
        let written = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .and_then(|mut f| {
                f.write_all(&tag)?;
                f.write_all(body)
            })
            .and_then(|()| std::fs::rename(&tmp, path));
        if let Err(err) = written {
            tracing::warn!(error = %err, "could not keep a compiled plugin");
            let _ = std::fs::remove_file(&tmp);
        }
        self.collect();
    }

    /// Removes every compiled form of the component `sha256`.
    pub fn remove(&self, sha256: &str) {
        for (path, _) in self.files() {
            let is_it = path
                .file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(sha256) && n[sha256.len()..].starts_with('-'));
            if is_it {
                let _ = std::fs::remove_file(path);
            }
        }
    }

    fn files(&self) -> Vec<(PathBuf, SystemTime)> {
        let Ok(dir) = std::fs::read_dir(&self.dir) else {
            return Vec::new();
        };
        dir.filter_map(Result::ok)
            .filter(|e| e.path().extension().is_some_and(|x| x == "cwasm"))
            .filter_map(|e| {
                let modified = e.metadata().ok()?.modified().ok()?;
                Some((e.path(), modified))
            })
            .collect()
    }

    /// Keeps the `max_files` most recently used files.
    pub fn collect(&self) {
        let mut files = self.files();
        if files.len() <= self.max_files {
            return;
        }
        files.sort_by_key(|(_, modified)| std::cmp::Reverse(*modified));
        for (path, _) in files.drain(self.max_files..) {
            tracing::debug!(path = %path.display(), "collecting an unused compiled plugin");
            let _ = std::fs::remove_file(path);
        }
    }
}

fn load_or_make_key(path: &Path) -> std::io::Result<[u8; 32]> {
    if let Ok(bytes) = std::fs::read(path)
        && let Ok(key) = <[u8; 32]>::try_from(bytes.as_slice())
    {
        // A key others can read is no key: tighten it (and keep it).
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
        return Ok(key);
    }
    let key: [u8; 32] = rand::random();
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(&key)?;
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_files_it_wrote_are_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let cache = DiskCache::open(dir.path().join("cache"), 3).unwrap();
        let path = cache.path("ab", 7);
        cache.write(&path, b"compiled");
        assert_eq!(cache.read(&path).as_deref(), Some(&b"compiled"[..]));
        let mode = std::fs::metadata(dir.path().join("cache.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        // A planted file (no MAC, or a MAC under another key) is ignored and removed.
        std::fs::write(&path, b"native code of someone else's choosing").unwrap();
        assert_eq!(cache.read(&path), None);
        assert!(!path.exists());
        let other = DiskCache::open(dir.path().join("other"), 3).unwrap();
        other.write(&other.path("ab", 7), b"x");
        std::fs::copy(other.path("ab", 7), &path).unwrap();
        assert_eq!(cache.read(&path), None);
        // Copied under another name, a genuine file does not verify either.
        cache.write(&cache.path("cd", 7), b"y");
        std::fs::copy(cache.path("cd", 7), &path).unwrap();
        assert_eq!(cache.read(&path), None);
    }

    #[test]
    fn it_stays_bounded_and_forgets_on_request() {
        let dir = tempfile::tempdir().unwrap();
        let cache = DiskCache::open(dir.path().join("cache"), 2).unwrap();
        for (i, sha) in ["a1", "b2", "c3"].iter().enumerate() {
            let path = cache.path(sha, 1);
            cache.write(&path, b"x");
            let when = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_000 + i as u64);
            std::fs::File::options()
                .write(true)
                .open(&path)
                .unwrap()
                .set_modified(when)
                .unwrap();
        }
        cache.collect();
        assert!(!cache.path("a1", 1).exists());
        assert!(cache.path("c3", 1).exists());
        cache.remove("c3");
        assert!(!cache.path("c3", 1).exists());
        assert!(cache.path("b2", 1).exists());
    }
}
