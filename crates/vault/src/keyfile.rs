//! The key file: JSON on disk, owner-only, replaced atomically.
//!
//! ```json
//! {"version":1,"current":305419896,"keys":[
//!   {"id":305419896,"key":"<base64 of 32 bytes>","createdAt":"2026-01-01T00:00:00Z"}]}
//! ```

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use zeroize::{Zeroize, Zeroizing};

use crate::error::{Result, VaultError};
use crate::keyring::{decode_key_b64, encode_key_b64, key_id, Key, KeyRing, KEY_LEN};

/// Key file format version this build reads and writes.
pub const KEY_FILE_VERSION: u32 = 1;

/// A key file larger than this is not a key file.
const MAX_KEY_FILE_LEN: u64 = 1 << 20;

/// Permission bits that make a key file unusable: any access by others,
/// or write access by the group. Group *read* is allowed (a deployment may
/// give a dedicated group read access); see the README.
#[cfg(unix)]
const FORBIDDEN_MODE_BITS: u32 = 0o027;

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyFileRepr {
    version: u32,
    current: u32,
    keys: Vec<KeyEntryRepr>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct KeyEntryRepr {
    id: u32,
    key: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    created_at: Option<DateTime<Utc>>,
}

impl Drop for KeyEntryRepr {
    fn drop(&mut self) {
        self.key.zeroize();
    }
}

/// Reads only the version, so a newer file gets a version message rather
/// than an "unknown field" one.
#[derive(Deserialize)]
struct VersionProbe {
    version: Option<u32>,
}

/// Describes a JSON error by position only: serde_json's own message can
/// quote values from the file, which may be keys.
fn describe_json_error(e: &serde_json::Error) -> String {
    use serde_json::error::Category;
    let what = match e.classify() {
        Category::Io => "could not be read",
        Category::Syntax | Category::Eof => "is not valid JSON",
        Category::Data => "does not have the expected structure \
             ({\"version\":1,\"current\":<id>,\"keys\":[{\"id\":<id>,\"key\":\"<base64>\",\"createdAt\":\"<rfc3339>\"}]})",
    };
    format!("{what} (line {}, column {})", e.line(), e.column())
}

fn parse_key_file(bytes: &[u8]) -> Result<KeyRing, String> {
    let probe: VersionProbe = serde_json::from_slice(bytes).map_err(|e| describe_json_error(&e))?;
    match probe.version {
        Some(KEY_FILE_VERSION) => {}
        Some(other) => {
            return Err(format!(
                "unsupported key file version {other} (this build reads version {KEY_FILE_VERSION})"
            ))
        }
        None => return Err("has no \"version\" field".to_owned()),
    }
    let repr: KeyFileRepr = serde_json::from_slice(bytes).map_err(|e| describe_json_error(&e))?;
    if repr.keys.is_empty() {
        return Err("has no keys".to_owned());
    }
    let mut keys: Vec<Key> = Vec::with_capacity(repr.keys.len());
    for (index, entry) in repr.keys.iter().enumerate() {
        let n = index + 1;
        let Some(decoded) = decode_key_b64(&entry.key) else {
            return Err(format!(
                "key entry {n} (id {}) is not valid base64",
                entry.id
            ));
        };
        let Ok(bytes) = <[u8; KEY_LEN]>::try_from(decoded.as_slice()) else {
            return Err(format!(
                "key entry {n} (id {}) decodes to {} bytes, expected {KEY_LEN}",
                entry.id,
                decoded.len()
            ));
        };
        let key = Key::from_bytes(bytes, entry.created_at);
        if key.id != entry.id {
            return Err(format!(
                "key entry {n} says id {} but its key has id {} (ids are SHA-256 \
                 fingerprints of the key; was the file edited by hand?)",
                entry.id, key.id
            ));
        }
        if keys.iter().any(|k| k.id == key.id) {
            return Err(format!("key id {} appears more than once", key.id));
        }
        keys.push(key);
    }
    if !keys.iter().any(|k| k.id == repr.current) {
        return Err(format!(
            "current key id {} is not one of its keys (ids {:?})",
            repr.current,
            keys.iter().map(|k| k.id).collect::<Vec<_>>()
        ));
    }
    Ok(KeyRing {
        keys,
        current: repr.current,
    })
}

fn io_error(path: &Path) -> impl FnOnce(io::Error) -> VaultError + '_ {
    move |source| VaultError::Io {
        path: path.to_owned(),
        source,
    }
}

#[cfg(unix)]
fn check_permissions(path: &Path, meta: &fs::Metadata) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let mode = meta.permissions().mode() & 0o7777;
    if mode & FORBIDDEN_MODE_BITS != 0 {
        return Err(VaultError::InsecurePermissions {
            path: path.to_owned(),
            mode,
        });
    }
    Ok(())
}

#[cfg(not(unix))]
fn check_permissions(_path: &Path, _meta: &fs::Metadata) -> Result<()> {
    Ok(())
}

/// Creates a new file readable and writable by its owner only.
fn create_private(path: &Path) -> io::Result<File> {
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options.open(path)
}

fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// Makes sure a rename or link in `dir` is on disk.
fn sync_dir(dir: &Path) -> io::Result<()> {
    #[cfg(unix)]
    {
        File::open(dir)?.sync_all()
    }
    #[cfg(not(unix))]
    {
        let _ = dir;
        Ok(())
    }
}

/// Writes `bytes` to a new owner-only temporary file beside `path`, flushed
/// to disk; returns its path.
fn write_temp(path: &Path, bytes: &[u8]) -> io::Result<PathBuf> {
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "not a file path"))?;
    let dir = parent_dir(path);
    if !dir.exists() {
        let mut builder = fs::DirBuilder::new();
        builder.recursive(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::DirBuilderExt;
            builder.mode(0o700);
        }
        builder.create(dir)?;
    }
    let tmp = dir.join(format!(
        ".{}.tmp-{}-{:016x}",
        name.to_string_lossy(),
        std::process::id(),
        rand::rngs::OsRng.next_u64()
    ));
    let written = create_private(&tmp).and_then(|mut file| {
        file.write_all(bytes)?;
        file.sync_all()
    });
    match written {
        Ok(()) => Ok(tmp),
        Err(e) => {
            let _ = fs::remove_file(&tmp);
            Err(e)
        }
    }
}

impl KeyRing {
    /// Loads a key file.
    ///
    /// Refuses (with [`VaultError::InsecurePermissions`]) a file that others
    /// may access or the group may write (on unix, any of mode bits 0o027).
    pub fn load(path: impl AsRef<Path>) -> Result<KeyRing> {
        let path = path.as_ref();
        let file = File::open(path).map_err(io_error(path))?;
        KeyRing::load_open(path, file)
    }

    fn load_open(path: &Path, file: File) -> Result<KeyRing> {
        let key_file_error = |reason: String| VaultError::KeyFile {
            path: path.to_owned(),
            reason,
        };
        // Checked on the open handle, so it is the file that is read.
        let meta = file.metadata().map_err(io_error(path))?;
        if !meta.is_file() {
            return Err(key_file_error("is not a regular file".to_owned()));
        }
        check_permissions(path, &meta)?;
        let mut bytes =
            Zeroizing::new(Vec::with_capacity(meta.len().min(MAX_KEY_FILE_LEN) as usize));
        file.take(MAX_KEY_FILE_LEN + 1)
            .read_to_end(&mut bytes)
            .map_err(io_error(path))?;
        if bytes.len() as u64 > MAX_KEY_FILE_LEN {
            return Err(key_file_error("is too large to be a key file".to_owned()));
        }
        parse_key_file(&bytes).map_err(key_file_error)
    }

    /// Loads the key file, or, if there is none, creates it with a new
    /// random ring (mode 0600, parent directories 0700). Returns the ring
    /// and whether it was created.
    ///
    /// Creation is atomic and never replaces a file: if another process
    /// creates the file at the same moment, its ring is loaded instead.
    ///
    /// Only use this where a new ring is right (a new database). For an
    /// existing database use [`KeyRing::load`] (or check the canary), or a
    /// missing key file turns into a fresh, useless key.
    pub fn load_or_create(path: impl AsRef<Path>) -> Result<(KeyRing, bool)> {
        let path = path.as_ref();
        match File::open(path) {
            Ok(file) => return Ok((KeyRing::load_open(path, file)?, false)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_error(path)(e)),
        }
        let ring = KeyRing::generate();
        let bytes = ring.to_file_bytes();
        let tmp = write_temp(path, &bytes).map_err(io_error(path))?;
        // A hard link, unlike a rename, fails if the target exists.
        let linked = fs::hard_link(&tmp, path);
        let _ = fs::remove_file(&tmp);
        match linked {
            Ok(()) => {
                sync_dir(parent_dir(path)).map_err(io_error(path))?;
                Ok((ring, true))
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok((KeyRing::load(path)?, false)),
            Err(e) => Err(io_error(path)(e)),
        }
    }

    /// Writes the ring to `path` atomically (owner-only temporary file in
    /// the same directory, fsync, rename, fsync of the directory), so a
    /// reader sees the old file or the new one, never a partial one.
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        let bytes = self.to_file_bytes();
        let tmp = write_temp(path, &bytes).map_err(io_error(path))?;
        if let Err(e) = fs::rename(&tmp, path) {
            let _ = fs::remove_file(&tmp);
            return Err(io_error(path)(e));
        }
        sync_dir(parent_dir(path)).map_err(io_error(path))
    }

    /// The key file content (key material).
    fn to_file_bytes(&self) -> Zeroizing<Vec<u8>> {
        let repr = KeyFileRepr {
            version: KEY_FILE_VERSION,
            current: self.current,
            keys: self
                .keys
                .iter()
                .map(|k| {
                    debug_assert_eq!(k.id, key_id(&k.bytes));
                    KeyEntryRepr {
                        id: k.id,
                        key: encode_key_b64(&k.bytes).to_string(),
                        created_at: k.created_at,
                    }
                })
                .collect(),
        };
        // Sized up front so the buffer does not reallocate (and leave
        // copies of keys in freed memory) while being written.
        let mut out = Zeroizing::new(Vec::with_capacity(256 + 160 * self.keys.len()));
        serde_json::to_writer_pretty(&mut *out, &repr).expect("serializing plain data");
        out.push(b'\n');
        out
    }
}

#[cfg(test)]
mod tests;
