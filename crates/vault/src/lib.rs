//! switchyard-vault: encryption of secrets at rest.
//!
//! Every secret value is sealed with AES-256-GCM under the *current* key of
//! a [`KeyRing`] before it reaches the database. Each blob carries the id
//! of its key, so after [`KeyRing::rotate`] old blobs still decrypt with the
//! old key while new ones use the new key. A *canary* blob stored at
//! database creation lets a server check at start-up that its keys open
//! the database ([`KeyRing::verify_canary`]) instead of serving garbage.
//!
//! ```
//! use switchyard_vault::KeyRing;
//!
//! let ring = KeyRing::generate();
//! let blob = ring.encrypt_str("s3cr3t", b"instance:42:password");
//! let secret = ring.decrypt_str(&blob, b"instance:42:password").unwrap();
//! assert_eq!(secret.expose(), "s3cr3t");
//! assert_eq!(format!("{secret:?}"), "***");
//! // The same blob does not open for another row.
//! assert!(ring.decrypt(&blob, b"instance:43:password").is_err());
//! ```
//!
//! See the crate README for the blob and key file formats.

mod error;
mod keyfile;
mod keyring;
mod secret;
mod vault;

pub use error::{Result, VaultError};
pub use keyfile::KEY_FILE_VERSION;
pub use keyring::{key_id, KeyRing, BLOB_VERSION, KEY_LEN, MIN_BLOB_LEN};
pub use secret::Secret;
pub use vault::Vault;

/// Environment variable holding a comma-separated base64 key list, current
/// key first (see [`KeyRing::from_base64_list`]).
pub const MASTER_KEY_ENV: &str = "SWITCHYARD_MASTER_KEY";
