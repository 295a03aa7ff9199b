//! The one error type of this crate.
//!
//! Rule for every message here: it may name key *ids* (SHA-256
//! fingerprints, not secret), paths, lengths and positions, but never key
//! material, plaintext, or bytes taken from an input that could be key
//! material. That is why parse errors from `base64` and `serde_json` are
//! never wrapped as sources: their messages can echo input bytes.

use std::path::PathBuf;

/// Everything that can go wrong in the vault.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum VaultError {
    /// The bytes are not an encrypted value of a format this build reads
    /// (empty, too short, unknown format version, or not a canary).
    #[error("encrypted value is malformed: {0}")]
    Malformed(&'static str),

    /// The value was encrypted under a key id that the ring does not hold.
    /// A server may re-read its key file and retry ([`crate::Vault`] does).
    #[error("encrypted value needs key id {0}, which is not in the key ring")]
    UnknownKey(u32),

    /// Authentication failed: the ciphertext was corrupted or tampered
    /// with, or it is being opened with a different AAD (another row) than
    /// the one it was sealed with.
    #[error(
        "encrypted value failed authentication (corrupted, tampered with, \
         or stored for a different record)"
    )]
    Tampered,

    /// The value decrypted fine but is not UTF-8 (asked for a string).
    #[error("decrypted value is not valid UTF-8")]
    NotUtf8,

    /// The database canary was sealed with a key the ring does not have:
    /// the server is pointed at the wrong or a missing key file.
    #[error(
        "the master key ring cannot open this database: the database was \
         created with key id {needed}, but the key ring only has key ids \
         {available:?}; point the server at the original key file or set \
         SWITCHYARD_MASTER_KEY to the key(s) it was created with"
    )]
    WrongKeyRing {
        /// Key id the database canary was sealed with.
        needed: u32,
        /// Key ids the ring holds.
        available: Vec<u32>,
    },

    /// A key list (e.g. `SWITCHYARD_MASTER_KEY`) could not be used.
    #[error("invalid master key list: {0}")]
    BadKeyList(String),

    /// A key file exists but its content cannot be used.
    #[error("key file {}: {reason}", path.display())]
    KeyFile {
        /// The key file.
        path: PathBuf,
        /// What is wrong with it (never contains key material).
        reason: String,
    },

    /// A key file is readable or writable by users it should not be.
    #[error(
        "key file {} has mode {mode:04o}, which lets other users read or \
         change it; refusing to use it (run `chmod 600 {}`)",
        path.display(),
        path.display()
    )]
    InsecurePermissions {
        /// The key file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },

    /// Reading or writing a key file failed.
    #[error("key file {}: {source}", path.display())]
    Io {
        /// The key file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },

    /// The database says new values are sealed under a key this node's ring
    /// lacks: sealing under another key would split the database, so it refuses.
    #[error(
        "this node's master key ring lacks key id {0}, which the database names as \
         current; add that key to this node's ring (`switchyard rotate-key --add \
         --key-from FILE`, or append it to SWITCHYARD_MASTER_KEY)"
    )]
    CurrentKeyMissing(u32),

    /// Asked to remove the key that new values are encrypted with.
    #[error("key id {0} is the current key; rotate before removing it")]
    RemoveCurrent(u32),
}

/// `Result` with [`VaultError`].
pub type Result<T, E = VaultError> = std::result::Result<T, E>;
