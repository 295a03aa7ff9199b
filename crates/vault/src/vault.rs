//! A shared, reloadable key ring for servers.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::SystemTime;

use crate::error::{Result, VaultError};
use crate::keyring::{bytes_to_secret, KeyRing};
use crate::secret::Secret;

/// A [`KeyRing`] shared between threads, optionally backed by a key file.
///
/// Cheap to clone (clones share the ring). When a value needs a key id the
/// ring lacks and there is a key file, the vault re-reads the file once
/// and retries, so a running server picks up keys that
/// `switchyard rotate-key` added from another process. The re-read ring
/// replaces the old one, so from then on new values use its current key.
///
/// On several nodes the database, not the key file, says which key is current
/// ([`Vault::follow_current`]); that choice survives re-reads of the file.
#[derive(Clone)]
pub struct Vault {
    inner: Arc<Inner>,
}

struct Inner {
    ring: RwLock<KeyRing>,
    key_file: Option<PathBuf>,
    /// When the key file was last seen changed, so `encrypt` notices a
    /// rotation made by another process and seals under the new current key.
    key_file_modified: Mutex<Option<SystemTime>>,
    /// The key the database names as current, once told; it overrides the
    /// `current` of the key file or key list.
    database_current: Mutex<Option<u32>>,
}

impl Vault {
    /// A vault over a ring with no key file (e.g. from
    /// `SWITCHYARD_MASTER_KEY`): unknown key ids are errors straight away.
    pub fn new(ring: KeyRing) -> Vault {
        Vault::build(ring, None)
    }

    /// A vault over a ring that was loaded from `key_file`.
    pub fn with_key_file(ring: KeyRing, key_file: impl Into<PathBuf>) -> Vault {
        Vault::build(ring, Some(key_file.into()))
    }

    /// Loads `key_file` ([`KeyRing::load`]) into a vault that re-reads it.
    pub fn open(key_file: impl Into<PathBuf>) -> Result<Vault> {
        let key_file = key_file.into();
        let ring = KeyRing::load(&key_file)?;
        Ok(Vault::with_key_file(ring, key_file))
    }

    fn build(ring: KeyRing, key_file: Option<PathBuf>) -> Vault {
        let modified = key_file.as_deref().and_then(modified_at);
        Vault {
            inner: Arc::new(Inner {
                ring: RwLock::new(ring),
                key_file,
                key_file_modified: Mutex::new(modified),
                database_current: Mutex::new(None),
            }),
        }
    }

    /// The key file this vault re-reads, if any.
    pub fn key_file(&self) -> Option<&Path> {
        self.inner.key_file.as_deref()
    }

    // A panic while holding the lock cannot leave a ring half-updated
    // (it is replaced whole), so a poisoned lock is still good.
    fn read(&self) -> RwLockReadGuard<'_, KeyRing> {
        self.inner.ring.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, KeyRing> {
        self.inner.ring.write().unwrap_or_else(|e| e.into_inner())
    }

    /// A copy of the ring as it is now.
    pub fn snapshot(&self) -> KeyRing {
        self.read().clone()
    }

    /// Re-reads the key file now (no-op without one). On error the ring in
    /// use is kept.
    pub fn reload(&self) -> Result<()> {
        let Some(path) = self.key_file() else {
            return Ok(());
        };
        let ring = self.followed(KeyRing::load(path)?);
        *self.write() = ring;
        Ok(())
    }

    /// `ring` with the database's current key made current, when it has it.
    fn followed(&self, mut ring: KeyRing) -> KeyRing {
        if let Some(id) = self.database_current() {
            let _ = ring.set_current(id);
        }
        ring
    }

    fn database_current(&self) -> Option<u32> {
        *self.inner.database_current.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Seals new values under key `id` from now on, as the database says
    /// (after `switchyard rotate-key --activate` on any node). A ring without
    /// that key re-reads its key file; if the key is still missing this is
    /// [`VaultError::CurrentKeyMissing`], and until the key arrives
    /// [`Vault::check_sealing`] refuses (values keep opening with the keys held).
    pub fn follow_current(&self, id: u32) -> Result<()> {
        *self.inner.database_current.lock().unwrap_or_else(|e| e.into_inner()) = Some(id);
        if !self.read().contains(id) && self.key_file().is_some() {
            self.reload_for(id)?;
        }
        let mut ring = self.write();
        ring.set_current(id).map_err(|_| VaultError::CurrentKeyMissing(id))
    }

    /// Whether new values may be sealed now: [`VaultError::CurrentKeyMissing`]
    /// when the database's current key ([`Vault::follow_current`]) is not in
    /// the ring, even after re-reading the key file.
    pub fn check_sealing(&self) -> Result<()> {
        self.follow_key_file();
        let Some(id) = self.database_current() else { return Ok(()) };
        if !self.read().contains(id) {
            // The file may have changed within its clock's resolution.
            let _ = self.reload_for(id);
        }
        if self.read().contains(id) {
            Ok(())
        } else {
            Err(VaultError::CurrentKeyMissing(id))
        }
    }

    /// Re-reads the key file unless another thread already brought `id` in.
    fn reload_for(&self, id: u32) -> Result<()> {
        let Some(path) = self.key_file() else {
            return Ok(());
        };
        let mut ring = self.write();
        if !ring.contains(id) {
            *ring = self.followed(KeyRing::load(path)?);
        }
        Ok(())
    }

    /// Runs `op`; if it fails for want of a key and there is a key file,
    /// re-reads the file once and runs `op` again. If the re-read itself
    /// fails, that error is returned (it says more than "unknown key").
    fn with_retry<T>(&self, op: impl Fn(&KeyRing) -> Result<T>) -> Result<T> {
        let first = op(&self.read());
        let missing = match &first {
            Err(VaultError::UnknownKey(id)) => *id,
            Err(VaultError::WrongKeyRing { needed, .. }) => *needed,
            _ => return first,
        };
        if self.key_file().is_none() {
            return first;
        }
        self.reload_for(missing)?;
        op(&self.read())
    }

    /// See [`KeyRing::encrypt`]. A key file changed since it was loaded
    /// (`switchyard rotate-key` in another process) is read again first, so new
    /// secrets land under the new current key; a file that cannot be read now
    /// leaves the loaded ring in use (its keys still open everything stored).
    pub fn encrypt(&self, plaintext: &[u8], aad: &[u8]) -> Vec<u8> {
        self.follow_key_file();
        self.read().encrypt(plaintext, aad)
    }

    /// See [`KeyRing::encrypt_str`] and [`Vault::encrypt`].
    pub fn encrypt_str(&self, plaintext: &str, aad: &[u8]) -> Vec<u8> {
        self.follow_key_file();
        self.read().encrypt_str(plaintext, aad)
    }

    /// One `stat` per encryption, which happens only when configuration is written.
    fn follow_key_file(&self) {
        let Some(path) = self.key_file() else { return };
        let now = modified_at(path);
        let mut seen = self.inner.key_file_modified.lock().unwrap_or_else(|e| e.into_inner());
        if now.is_some() && now != *seen && self.reload().is_ok() {
            *seen = now;
        }
    }

    /// See [`KeyRing::decrypt`]; re-reads the key file on an unknown key.
    pub fn decrypt(&self, blob: &[u8], aad: &[u8]) -> Result<Vec<u8>> {
        self.with_retry(|ring| ring.decrypt(blob, aad))
    }

    /// See [`KeyRing::decrypt_str`]; re-reads the key file on an unknown key.
    pub fn decrypt_str(&self, blob: &[u8], aad: &[u8]) -> Result<Secret> {
        bytes_to_secret(self.decrypt(blob, aad)?)
    }

    /// See [`KeyRing::reencrypt`]; re-reads the key file on an unknown key.
    pub fn reencrypt(&self, blob: &[u8], aad: &[u8]) -> Result<Vec<u8>> {
        self.with_retry(|ring| ring.reencrypt(blob, aad))
    }

    /// See [`KeyRing::needs_reencrypt`].
    pub fn needs_reencrypt(&self, blob: &[u8]) -> bool {
        self.read().needs_reencrypt(blob)
    }

    /// See [`KeyRing::current_id`].
    pub fn current_id(&self) -> u32 {
        self.read().current_id()
    }

    /// See [`KeyRing::key_ids`].
    pub fn key_ids(&self) -> Vec<u32> {
        self.read().key_ids()
    }

    /// See [`KeyRing::make_canary`].
    pub fn make_canary(&self) -> Vec<u8> {
        self.read().make_canary()
    }

    /// See [`KeyRing::verify_canary`]; re-reads the key file once if the
    /// canary's key is missing.
    pub fn verify_canary(&self, canary: &[u8]) -> Result<()> {
        self.with_retry(|ring| ring.verify_canary(canary))
    }

    /// See [`KeyRing::reencrypt_canary`]; re-reads the key file once if the
    /// canary's key is missing.
    pub fn reencrypt_canary(&self, canary: &[u8]) -> Result<Vec<u8>> {
        self.with_retry(|ring| ring.reencrypt_canary(canary))
    }
}

fn modified_at(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

impl fmt::Debug for Vault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Vault")
            .field("ring", &*self.read())
            .field("key_file", &self.inner.key_file)
            .finish()
    }
}

#[cfg(test)]
mod tests;
