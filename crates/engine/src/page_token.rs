//! Opaque, tamper-evident `nextPage` tokens: a JSON payload and a truncated
//! HMAC-SHA256 under the server's paging key. The MAC also covers a purpose
//! (`hub`, `events`, `logs`), so a token made for one kind of list is never
//! accepted by another. Each list puts in the payload what binds the token to
//! its caller (instance, resource, query) and checks it after decoding.

use base64::Engine;
use hmac::{Hmac, Mac};
use serde::de::DeserializeOwned;
use serde::Serialize;
use sha2::Sha256;

/// Bytes of the MAC kept in the token: 128 bits, ample against forgery.
const TAG_BYTES: usize = 16;

fn mac(key: &[u8], purpose: &str, payload: &[u8]) -> Hmac<Sha256> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(purpose.as_bytes());
    mac.update(b":");
    mac.update(payload);
    mac
}

pub fn encode<T: Serialize>(key: &[u8], purpose: &str, token: &T) -> String {
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let payload = serde_json::to_vec(token).unwrap_or_default();
    let tag = mac(key, purpose, &payload).finalize().into_bytes();
    format!("{}.{}", b64.encode(&payload), b64.encode(&tag[..TAG_BYTES]))
}

/// The payload of a token this server made for `purpose`; `None` for anything
/// forged, altered, foreign or garbled.
pub fn decode<T: DeserializeOwned>(key: &[u8], purpose: &str, text: &str) -> Option<T> {
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let (payload, tag) = text.split_once('.')?;
    let payload = b64.decode(payload).ok()?;
    // Exactly the bytes `encode` keeps: `verify_truncated_left` alone accepts any
    // prefix of the MAC, down to one byte (256 guesses to forge a token).
    let tag = b64.decode(tag).ok().filter(|t| t.len() == TAG_BYTES)?;
    mac(key, purpose, &payload).verify_truncated_left(&tag).ok()?;
    serde_json::from_slice(&payload).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_and_refuse_tampering_other_keys_and_other_purposes() {
        let key = [7u8; 32];
        let t = encode(&key, "hub", &(1, "ecommerce/orders", 50));
        assert_eq!(decode::<(i64, String, u64)>(&key, "hub", &t), Some((1, "ecommerce/orders".into(), 50)));
        assert_eq!(decode::<(i64, String, u64)>(&[8u8; 32], "hub", &t), None, "another key");
        assert_eq!(decode::<(i64, String, u64)>(&key, "logs", &t), None, "another purpose");
        let (payload, tag) = t.split_once('.').unwrap();
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let forged = String::from_utf8(b64.decode(payload).unwrap()).unwrap().replace("50", "99");
        assert_eq!(decode::<(i64, String, u64)>(&key, "hub", &format!("{}.{tag}", b64.encode(forged))), None);
        assert_eq!(decode::<(i64, String, u64)>(&key, "hub", "garbage"), None);
        // A correct but shortened signature: every prefix of the MAC is refused.
        let tag = b64.decode(tag).unwrap();
        for n in 0..TAG_BYTES {
            let cut = format!("{payload}.{}", b64.encode(&tag[..n]));
            assert_eq!(decode::<(i64, String, u64)>(&key, "hub", &cut), None, "{n} bytes of the MAC");
        }
    }
}
