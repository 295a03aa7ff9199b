//! User passwords for console login (`POST /elements/j_spring_security_check`):
//! Argon2id PHC strings (RFC 9106) with the `argon2` crate's default parameters
//! (19 MiB, 2 passes, 1 lane: OWASP's recommended minimum).
//!
//! Hashing and verifying take tens of milliseconds of CPU on purpose: call them
//! from `tokio::task::spawn_blocking`.

use std::sync::OnceLock;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use rand::RngCore;

/// The shortest password accepted, in characters (Unicode scalar values).
pub const MIN_CHARS: usize = 12;

/// Longest password accepted, in bytes: a login form must not make the server
/// hash megabytes.
pub const MAX_BYTES: usize = 1024;

/// Why a password cannot be set.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PasswordError {
    #[error("a password needs at least {MIN_CHARS} characters")]
    TooShort,
    #[error("a password may have at most {MAX_BYTES} bytes")]
    TooLong,
}

/// The PHC string (`$argon2id$v=19$m=19456,t=2,p=1$salt$hash`) to store for `password`.
pub fn hash(password: &str) -> Result<String, PasswordError> {
    if password.chars().count() < MIN_CHARS {
        return Err(PasswordError::TooShort);
    }
    if password.len() > MAX_BYTES {
        return Err(PasswordError::TooLong);
    }
    Ok(hash_unchecked(password))
}

fn hash_unchecked(password: &str) -> String {
    let mut salt = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut salt);
    let salt = SaltString::encode_b64(&salt).expect("16 bytes is a valid salt length");
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .expect("the default Argon2id parameters hash any password of at most MAX_BYTES")
        .to_string()
}

/// Whether `password` matches the stored PHC string. A malformed stored string
/// matches nothing. A password longer than [`MAX_BYTES`] never matches, after the
/// same work as a wrong one.
pub fn verify(password: &str, stored: &str) -> bool {
    let Ok(parsed) = PasswordHash::new(stored) else {
        return false;
    };
    let candidate = if password.len() > MAX_BYTES { "" } else { password };
    let matched = Argon2::default().verify_password(candidate.as_bytes(), &parsed).is_ok();
    matched && password.len() <= MAX_BYTES
}

/// Does the work of [`verify`] against a fixed hash nobody's password matches, so
/// an unknown email costs as long as a wrong password (no timing oracle for which
/// emails have accounts). Always false.
pub fn verify_nobody(password: &str) -> bool {
    static DUMMY: OnceLock<String> = OnceLock::new();
    let dummy = DUMMY.get_or_init(|| hash_unchecked(&crate::secret::new_secret()));
    verify(password, dummy);
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hash_verifies_its_password_only() {
        let stored = hash("correct horse battery").unwrap();
        assert!(stored.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{stored}");
        assert!(verify("correct horse battery", &stored));
        assert!(!verify("correct horse batterY", &stored));
        assert!(!verify("", &stored));
        assert!(!verify("correct horse battery", "not a phc string"));
        // Two hashes of one password differ (their salts do).
        assert_ne!(stored, hash("correct horse battery").unwrap());
    }

    #[test]
    fn length_rules_count_characters_and_bound_bytes() {
        assert_eq!(hash("elevenchars"), Err(PasswordError::TooShort));
        // Twelve characters, more bytes: accepted.
        assert!(hash("ééééééééééé1").is_ok());
        assert_eq!(hash(&"x".repeat(MAX_BYTES + 1)), Err(PasswordError::TooLong));
        let stored = hash(&"x".repeat(MAX_BYTES)).unwrap();
        assert!(verify(&"x".repeat(MAX_BYTES), &stored));
        assert!(!verify(&"x".repeat(MAX_BYTES + 1), &stored));
    }

    #[test]
    fn nobody_matches_the_dummy() {
        assert!(!verify_nobody("anything at all"));
    }
}
