//! Token formats: what a token looks like and the only form the host keeps of it (its SHA-256).
//! The agent makes none of these, but it checks a pasted token's prefix and a pairing code's
//! lifetime by the same constants the host uses.

use chrono::Duration;
use rand::{Rng as _, distr::Alphanumeric};
use sha2::{Digest as _, Sha256};

/// Prefix of machine tokens.
pub const MACHINE_TOKEN_PREFIX: &str = "mn_";
/// Pairing codes live this long (and work once).
pub const PAIRING_TTL: Duration = Duration::minutes(5);
/// Random characters after the prefix (≈285 bits of entropy).
const TOKEN_RANDOM_CHARS: usize = 48;

/// A freshly made secret: the plain text (shown to the user once) and what the store keeps.
pub struct TokenSecret {
    pub plain: String,
    pub hash: [u8; 32],
}

impl TokenSecret {
    pub fn generate(prefix: &str) -> Self {
        let random: String = rand::rng()
            .sample_iter(Alphanumeric)
            .take(TOKEN_RANDOM_CHARS)
            .map(char::from)
            .collect();
        let plain = format!("{prefix}{random}");
        let hash = hash_token(&plain);
        Self { plain, hash }
    }
}

/// What the store keeps of a token: lookups hash the presented one and compare.
pub fn hash_token(plain: &str) -> [u8; 32] {
    Sha256::digest(plain.as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_prefixed_long_and_distinct() {
        let a = TokenSecret::generate("cn_");
        let b = TokenSecret::generate("cn_");
        assert!(a.plain.starts_with("cn_"));
        assert_eq!(a.plain.len(), 3 + TOKEN_RANDOM_CHARS);
        assert_ne!(a.plain, b.plain);
        assert_eq!(a.hash, hash_token(&a.plain));
    }
}
