//! Secrets at rest: values a tenant stores that must not sit readable in the database (MCP
//! servers' `env`), sealed with ChaCha20-Poly1305 under a key kept outside it.
//!
//! The key is `secret_key` from the configuration (64 hex digits; set the same one on every
//! host sharing a database), else `<data_dir>/secret-key`, made on first run with mode 0600.
//! A sealed value reads `enc1:<base64 of nonce ‖ ciphertext ‖ tag>`; a value without the prefix
//! was stored before sealing existed and is read as it is (sealed at its next write).

use std::path::Path;

use base64::{Engine as _, engine::general_purpose::STANDARD as B64};
use ring::{
    aead::{self, CHACHA20_POLY1305, LessSafeKey, NONCE_LEN, Nonce, UnboundKey},
    rand::{SecureRandom as _, SystemRandom},
};

const PREFIX: &str = "enc1:";

pub use claudenest_protocol::files::{create_private, read_toml_or_default, write_private};

pub struct SecretBox {
    key: LessSafeKey,
    rng: SystemRandom,
}

impl std::fmt::Debug for SecretBox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretBox(***)")
    }
}

/// A sealed value that does not open: another key, or tampered with.
#[derive(Debug, thiserror::Error)]
#[error("a stored secret cannot be opened (was `secret_key` changed?)")]
pub struct OpenError;

impl SecretBox {
    pub fn new(key: [u8; 32]) -> Self {
        let key = UnboundKey::new(&CHACHA20_POLY1305, &key).expect("a 32-byte key");
        Self {
            key: LessSafeKey::new(key),
            rng: SystemRandom::new(),
        }
    }

    /// The configured key (hex), else the one kept in `<data_dir>/secret-key`.
    pub fn load(configured: Option<&str>, data_dir: &Path) -> anyhow::Result<Self> {
        if let Some(hex_key) = configured {
            let bytes = hex::decode(hex_key.trim())
                .ok()
                .and_then(|b| <[u8; 32]>::try_from(b).ok())
                .ok_or_else(|| anyhow::anyhow!("secret_key must be 64 hex digits"))?;
            return Ok(Self::new(bytes));
        }
        let path = data_dir.join("secret-key");
        if let Ok(text) = std::fs::read_to_string(&path)
            && let Some(key) = hex::decode(text.trim())
                .ok()
                .and_then(|b| <[u8; 32]>::try_from(b).ok())
        {
            return Ok(Self::new(key));
        }
        let mut key = [0u8; 32];
        SystemRandom::new()
            .fill(&mut key)
            .map_err(|_| anyhow::anyhow!("no system randomness"))?;
        create_private(&path, hex::encode(key).as_bytes())?;
        Ok(Self::new(key))
    }

    pub fn seal(&self, plain: &str) -> String {
        let mut nonce = [0u8; NONCE_LEN];
        self.rng.fill(&mut nonce).expect("system randomness");
        let mut sealed = plain.as_bytes().to_vec();
        self.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                aead::Aad::empty(),
                &mut sealed,
            )
            .expect("sealing cannot fail for sizes we store");
        let mut out = nonce.to_vec();
        out.extend_from_slice(&sealed);
        format!("{PREFIX}{}", B64.encode(out))
    }

    pub fn open(&self, stored: &str) -> Result<String, OpenError> {
        let Some(encoded) = stored.strip_prefix(PREFIX) else {
            return Ok(stored.to_owned());
        };
        let bytes = B64.decode(encoded).map_err(|_| OpenError)?;
        if bytes.len() < NONCE_LEN {
            return Err(OpenError);
        }
        let (nonce, sealed) = bytes.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| OpenError)?;
        let mut sealed = sealed.to_vec();
        let plain = self
            .key
            .open_in_place(nonce, aead::Aad::empty(), &mut sealed)
            .map_err(|_| OpenError)?;
        String::from_utf8(plain.to_vec()).map_err(|_| OpenError)
    }

    pub fn is_sealed(stored: &str) -> bool {
        stored.starts_with(PREFIX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_values_open_only_with_their_key() {
        let a = SecretBox::new([1; 32]);
        let sealed = a.seal("sk-live-123");
        assert!(SecretBox::is_sealed(&sealed) && !sealed.contains("sk-live"));
        assert_ne!(sealed, a.seal("sk-live-123"), "a fresh nonce each time");
        assert_eq!(a.open(&sealed).unwrap(), "sk-live-123");
        assert!(SecretBox::new([2; 32]).open(&sealed).is_err());
        // One bit of the stored bytes flipped: refused, not opened to something else.
        let mut bytes = B64.decode(sealed.strip_prefix(PREFIX).unwrap()).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        let tampered = format!("{PREFIX}{}", B64.encode(bytes));
        assert!(a.open(&tampered).is_err());
        assert_eq!(
            a.open("stored before sealing").unwrap(),
            "stored before sealing"
        );
    }

    #[test]
    fn the_key_file_is_private_and_kept() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let sealed = SecretBox::load(None, dir.path()).unwrap().seal("x");
        let mode = std::fs::metadata(dir.path().join("secret-key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(
            SecretBox::load(None, dir.path())
                .unwrap()
                .open(&sealed)
                .unwrap(),
            "x"
        );
        assert!(SecretBox::load(Some("abc"), dir.path()).is_err());
    }
}
