//! The key ring and the encrypted blob format.

use std::fmt;

use aes_gcm::aead::{AeadCore, AeadInPlace, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce, Tag};
use base64::alphabet;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::DecodePaddingMode;
use base64::Engine as _;
use chrono::{DateTime, SubsecRound, Utc};
use rand::rngs::OsRng;
use rand::RngCore;
use sha2::{Digest, Sha256};
use zeroize::{Zeroize, Zeroizing};

use crate::error::{Result, VaultError};
use crate::secret::Secret;

/// Length of a master key in bytes (AES-256).
pub const KEY_LEN: usize = 32;
/// First byte of every blob this build writes.
pub const BLOB_VERSION: u8 = 1;
/// `[version][key id]`.
const HEADER_LEN: usize = 1 + 4;
/// AES-GCM nonce (96 bits).
const NONCE_LEN: usize = 12;
/// AES-GCM tag (128 bits).
const TAG_LEN: usize = 16;
/// Header + nonce + tag: the blob of an empty plaintext.
pub const MIN_BLOB_LEN: usize = HEADER_LEN + NONCE_LEN + TAG_LEN;

const CANARY_PLAINTEXT: &[u8] = b"switchyard-vault canary v1";
const CANARY_AAD: &[u8] = b"switchyard:vault:canary";

/// Standard and URL-safe base64, padding optional.
const B64_STANDARD: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);
const B64_URL_SAFE: GeneralPurpose = GeneralPurpose::new(
    &alphabet::URL_SAFE,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Decodes standard or URL-safe base64 (surrounding whitespace ignored).
/// `None` on any error: the decoder's own error text can quote input bytes.
pub(crate) fn decode_key_b64(s: &str) -> Option<Zeroizing<Vec<u8>>> {
    let s = s.trim();
    B64_STANDARD
        .decode(s)
        .or_else(|_| B64_URL_SAFE.decode(s))
        .ok()
        .map(Zeroizing::new)
}

pub(crate) fn encode_key_b64(key: &[u8; KEY_LEN]) -> Zeroizing<String> {
    Zeroizing::new(base64::engine::general_purpose::STANDARD.encode(key))
}

/// The id of a key: the first 4 bytes (big endian) of SHA-256 of the key.
///
/// A fingerprint, so the same key has the same id wherever it comes from
/// (key file or `SWITCHYARD_MASTER_KEY`). 32 bits reveal nothing useful
/// about a 256-bit random key.
pub fn key_id(key: &[u8; KEY_LEN]) -> u32 {
    let digest = Sha256::digest(key);
    u32::from_be_bytes([digest[0], digest[1], digest[2], digest[3]])
}

/// One key of the ring.
#[derive(Clone)]
pub(crate) struct Key {
    pub(crate) id: u32,
    pub(crate) bytes: Zeroizing<[u8; KEY_LEN]>,
    pub(crate) created_at: Option<DateTime<Utc>>,
    cipher: Aes256Gcm,
}

impl Key {
    pub(crate) fn from_bytes(bytes: [u8; KEY_LEN], created_at: Option<DateTime<Utc>>) -> Key {
        let bytes = Zeroizing::new(bytes);
        Key {
            id: key_id(&bytes),
            cipher: Aes256Gcm::new((&*bytes).into()),
            bytes,
            created_at,
        }
    }

    fn random() -> Key {
        let mut bytes = [0u8; KEY_LEN];
        OsRng.fill_bytes(&mut bytes);
        let key = Key::from_bytes(bytes, Some(Utc::now().trunc_subsecs(0)));
        bytes.zeroize();
        key
    }
}

/// A set of AES-256-GCM master keys: one *current* key that encrypts, and
/// older keys kept so values encrypted before a rotation still decrypt.
///
/// `Debug` prints key ids only.
#[derive(Clone)]
pub struct KeyRing {
    /// Oldest first (as loaded or added).
    pub(crate) keys: Vec<Key>,
    pub(crate) current: u32,
}

/// Parsed blob header, borrowed from the blob.
struct Parts<'a> {
    header: &'a [u8],
    key_id: u32,
    nonce: &'a [u8],
    ciphertext: &'a [u8],
    tag: &'a [u8],
}

fn parse_blob(blob: &[u8]) -> Result<Parts<'_>> {
    let Some(&version) = blob.first() else {
        return Err(VaultError::Malformed("empty"));
    };
    if version != BLOB_VERSION {
        return Err(VaultError::Malformed("unknown format version"));
    }
    if blob.len() < MIN_BLOB_LEN {
        return Err(VaultError::Malformed("too short"));
    }
    let (header, rest) = blob.split_at(HEADER_LEN);
    let (nonce, rest) = rest.split_at(NONCE_LEN);
    let (ciphertext, tag) = rest.split_at(rest.len() - TAG_LEN);
    Ok(Parts {
        header,
        key_id: u32::from_be_bytes([header[1], header[2], header[3], header[4]]),
        nonce,
        ciphertext,
        tag,
    })
}

/// The AEAD associated data: the blob header followed by the caller's AAD.
/// The header has a fixed length, so the concatenation is unambiguous.
fn full_aad(header: &[u8], aad: &[u8]) -> Vec<u8> {
    let mut full = Vec::with_capacity(header.len() + aad.len());
    full.extend_from_slice(header);
    full.extend_from_slice(aad);
    full
}

impl KeyRing {
    /// A ring with one new random key (from the OS random generator).
    pub fn generate() -> KeyRing {
        let key = Key::random();
        KeyRing {
            current: key.id,
            keys: vec![key],
        }
    }

    /// Parses a comma-separated list of base64 keys, the first being the
    /// current one (the format of `SWITCHYARD_MASTER_KEY`).
    ///
    /// Each entry must decode (standard or URL-safe alphabet, padding
    /// optional, whitespace around entries ignored) to exactly 32 bytes.
    /// Errors name the entry by position, never by content.
    pub fn from_base64_list(list: &str) -> Result<KeyRing> {
        let mut keys: Vec<Key> = Vec::new();
        for (index, entry) in list.split(',').enumerate() {
            let n = index + 1;
            if entry.trim().is_empty() {
                return Err(VaultError::BadKeyList(format!("entry {n} is empty")));
            }
            let Some(decoded) = decode_key_b64(entry) else {
                return Err(VaultError::BadKeyList(format!(
                    "entry {n} is not valid base64"
                )));
            };
            let Ok(bytes) = <[u8; KEY_LEN]>::try_from(decoded.as_slice()) else {
                return Err(VaultError::BadKeyList(format!(
                    "entry {n} decodes to {} bytes, but a master key must be exactly \
                     {KEY_LEN} bytes (make one with `openssl rand -base64 32`)",
                    decoded.len()
                )));
            };
            let key = Key::from_bytes(bytes, None);
            if let Some(first) = keys.iter().position(|k| k.id == key.id) {
                return Err(VaultError::BadKeyList(format!(
                    "entry {n} is the same key as entry {}",
                    first + 1
                )));
            }
            keys.push(key);
        }
        // `split` yields at least one item, and an empty one was refused.
        let current = keys[0].id;
        Ok(KeyRing { keys, current })
    }

    /// The keys as a comma-separated base64 list, current first: the
    /// format [`KeyRing::from_base64_list`] reads. This IS key material.
    pub fn to_base64_list(&self) -> Secret {
        let mut out = String::new();
        let current = self.current_key();
        let others = self.keys.iter().filter(|k| k.id != self.current);
        for key in std::iter::once(current).chain(others) {
            if !out.is_empty() {
                out.push(',');
            }
            out.push_str(&encode_key_b64(&key.bytes));
        }
        Secret::from(out)
    }

    /// Id of the key new values are encrypted with.
    pub fn current_id(&self) -> u32 {
        self.current
    }

    /// Ids of all keys, oldest first.
    pub fn key_ids(&self) -> Vec<u32> {
        self.keys.iter().map(|k| k.id).collect()
    }

    /// Whether the ring holds a key with this id.
    pub fn contains(&self, id: u32) -> bool {
        self.key(id).is_some()
    }

    fn key(&self, id: u32) -> Option<&Key> {
        self.keys.iter().find(|k| k.id == id)
    }

    fn current_key(&self) -> &Key {
        // Every constructor and mutator keeps `current` in `keys`.
        self.key(self.current)
            .expect("key ring invariant: current key is in the ring")
    }

    /// Adds a new random key and makes it current; returns its id. Old keys
    /// stay for decryption.
    pub fn rotate(&mut self) -> u32 {
        let id = self.add_new();
        self.current = id;
        id
    }

    /// Adds a new random key without making it current (the first step of a
    /// rotation across several nodes); returns its id.
    pub fn add_new(&mut self) -> u32 {
        let key = loop {
            let key = Key::random();
            // A 32-bit id collision between random keys is ~1 in 2^32 per
            // pair; draw again rather than carry two keys under one id.
            if !self.contains(key.id) {
                break key;
            }
        };
        let id = key.id;
        self.keys.push(key);
        id
    }

    /// Adds every key of `other` this ring lacks, none made current; returns
    /// their ids (empty when there was nothing new).
    pub fn add_keys_of(&mut self, other: &KeyRing) -> Vec<u32> {
        let mut added = Vec::new();
        for key in &other.keys {
            if !self.contains(key.id) {
                added.push(key.id);
                self.keys.push(key.clone());
            }
        }
        added
    }

    /// Makes a key of the ring the one new values are encrypted with.
    /// [`VaultError::UnknownKey`] if the ring lacks it.
    pub fn set_current(&mut self, id: u32) -> Result<()> {
        if !self.contains(id) {
            return Err(VaultError::UnknownKey(id));
        }
        self.current = id;
        Ok(())
    }

    /// Id of the key added last (the newest key of a key file; the last
    /// entry of a `SWITCHYARD_MASTER_KEY` list).
    pub fn newest_id(&self) -> u32 {
        self.keys.last().map_or(self.current, |k| k.id)
    }

    /// Drops an old key (after every value under it was re-encrypted).
    /// The current key cannot be removed.
    pub fn remove(&mut self, id: u32) -> Result<()> {
        if id == self.current {
            return Err(VaultError::RemoveCurrent(id));
        }
        let before = self.keys.len();
        self.keys.retain(|k| k.id != id);
        if self.keys.len() == before {
            return Err(VaultError::UnknownKey(id));
        }
        Ok(())
    }

    /// Encrypts with the current key and a fresh random nonce.
    ///
    /// `aad` (associated data) is not stored in the blob, but the same
    /// bytes must be given to decrypt: use it to bind the value to its
    /// place, e.g. `b"instance:42:password"`, so a blob copied into
    /// another row or field does not decrypt there.
    ///
    /// Blob: `[1][key id u32 BE][nonce 12][ciphertext][tag 16]`.
    ///
    /// # Panics
    /// Only if `plaintext` is longer than AES-GCM allows (about 64 GiB).
    pub fn encrypt(&self, plaintext: &[u8], aad: &[u8]) -> Vec<u8> {
        let key = self.current_key();
        let nonce = Aes256Gcm::generate_nonce(&mut OsRng);
        let mut blob = Vec::with_capacity(MIN_BLOB_LEN + plaintext.len());
        blob.push(BLOB_VERSION);
        blob.extend_from_slice(&key.id.to_be_bytes());
        blob.extend_from_slice(&nonce);
        blob.extend_from_slice(plaintext);
        let aad = full_aad(&blob[..HEADER_LEN], aad);
        let tag = key
            .cipher
            .encrypt_in_place_detached(&nonce, &aad, &mut blob[HEADER_LEN + NONCE_LEN..])
            .expect("plaintext within the AES-GCM length limit");
        blob.extend_from_slice(&tag);
        blob
    }

    /// Decrypts a blob made by [`KeyRing::encrypt`] with the same `aad`.
    ///
    /// Errors: [`VaultError::Malformed`] (not a blob of a known format),
    /// [`VaultError::UnknownKey`] (key id not in the ring),
    /// [`VaultError::Tampered`] (authentication failed: corrupted,
    /// modified, or wrong `aad`). Never panics.
    pub fn decrypt(&self, blob: &[u8], aad: &[u8]) -> Result<Vec<u8>> {
        let parts = parse_blob(blob)?;
        let key = self
            .key(parts.key_id)
            .ok_or(VaultError::UnknownKey(parts.key_id))?;
        let aad = full_aad(parts.header, aad);
        let mut buffer = parts.ciphertext.to_vec();
        key.cipher
            .decrypt_in_place_detached(
                Nonce::from_slice(parts.nonce),
                &aad,
                &mut buffer,
                Tag::from_slice(parts.tag),
            )
            .map_err(|_| VaultError::Tampered)?;
        Ok(buffer)
    }

    /// [`KeyRing::encrypt`] for a string.
    pub fn encrypt_str(&self, plaintext: &str, aad: &[u8]) -> Vec<u8> {
        self.encrypt(plaintext.as_bytes(), aad)
    }

    /// [`KeyRing::decrypt`] into a [`Secret`]; [`VaultError::NotUtf8`] if
    /// the plaintext is not UTF-8.
    pub fn decrypt_str(&self, blob: &[u8], aad: &[u8]) -> Result<Secret> {
        bytes_to_secret(self.decrypt(blob, aad)?)
    }

    /// The key id a blob was encrypted with, if it is a well-formed blob.
    pub fn key_id_of(blob: &[u8]) -> Option<u32> {
        parse_blob(blob).ok().map(|p| p.key_id)
    }

    /// Whether a well-formed blob is under an older key than the current
    /// one (false for malformed input: re-encrypting it would fail).
    pub fn needs_reencrypt(&self, blob: &[u8]) -> bool {
        KeyRing::key_id_of(blob).is_some_and(|id| id != self.current)
    }

    /// Decrypts and encrypts again under the current key (always a fresh
    /// blob, even when it already was under the current key).
    pub fn reencrypt(&self, blob: &[u8], aad: &[u8]) -> Result<Vec<u8>> {
        let plaintext = Zeroizing::new(self.decrypt(blob, aad)?);
        Ok(self.encrypt(&plaintext, aad))
    }

    /// A blob of a fixed plaintext under the current key, for the store to
    /// persist when it creates a database. Check it at start-up with
    /// [`KeyRing::verify_canary`]. Re-encrypt it like any other value when
    /// rotating, before removing its key.
    pub fn make_canary(&self) -> Vec<u8> {
        self.encrypt(CANARY_PLAINTEXT, CANARY_AAD)
    }

    /// Checks that this ring opens the database whose canary this is.
    /// [`VaultError::WrongKeyRing`] names the key id needed and the ids
    /// held (ids are not secret).
    pub fn verify_canary(&self, canary: &[u8]) -> Result<()> {
        match self.decrypt(canary, CANARY_AAD) {
            Ok(plaintext) if plaintext == CANARY_PLAINTEXT => Ok(()),
            Ok(_) => Err(VaultError::Malformed("not a key canary")),
            Err(VaultError::UnknownKey(needed)) => Err(VaultError::WrongKeyRing {
                needed,
                available: self.key_ids(),
            }),
            Err(other) => Err(other),
        }
    }

    /// Checks a canary ([`KeyRing::verify_canary`]) and returns a new one
    /// under the current key, for the re-encryption pass of a rotation.
    pub fn reencrypt_canary(&self, canary: &[u8]) -> Result<Vec<u8>> {
        self.verify_canary(canary)?;
        Ok(self.make_canary())
    }
}

pub(crate) fn bytes_to_secret(bytes: Vec<u8>) -> Result<Secret> {
    match String::from_utf8(bytes) {
        Ok(s) => Ok(Secret::from(s)),
        Err(e) => {
            e.into_bytes().zeroize();
            Err(VaultError::NotUtf8)
        }
    }
}

impl fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyRing")
            .field("current", &self.current)
            .field("key_ids", &self.key_ids())
            .finish()
    }
}

#[cfg(test)]
mod tests;
