//! Random secrets (caller secrets, instance tokens, webhook keys) and their
//! lookup hashes.

use base64::Engine as _;
use rand::RngCore;
use sha2::{Digest, Sha256};

/// 256 random bits, base64url without padding (43 characters).
pub fn new_secret() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// SHA-256 of a secret: what is stored and looked up. The secrets are 256
/// random bits, so no slow hash is needed (there is nothing to guess).
pub fn hash_secret(secret: &str) -> Vec<u8> {
    Sha256::digest(secret.as_bytes()).to_vec()
}

/// A fresh user or organization secret with what the store keeps of it: the
/// lookup hash, and the secret sealed by the vault (bound to that hash) so its
/// owner can read it back after logging in (`GET /elements/api-v1/ui/getSecrets`).
pub struct NewTenantSecret {
    pub secret: String,
    pub hash: Vec<u8>,
    sealed: Vec<u8>,
    key_id: u32,
}

impl NewTenantSecret {
    pub fn generate(vault: &switchyard_vault::Vault, tenant: switchyard_store::Tenant) -> NewTenantSecret {
        let secret = new_secret();
        let hash = hash_secret(&secret);
        let sealed = vault.encrypt_str(&secret, &switchyard_store::tenant_secret_aad(tenant, &hash));
        let key_id = switchyard_vault::KeyRing::key_id_of(&sealed).unwrap_or_default();
        NewTenantSecret { secret, hash, sealed, key_id }
    }

    /// What the store writes.
    pub fn stored(&self) -> switchyard_store::TenantSecret<'_> {
        switchyard_store::TenantSecret { hash: &self.hash, sealed: Some((&self.sealed, self.key_id)) }
    }
}
