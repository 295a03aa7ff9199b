use super::*;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use proptest::prelude::*;

const AAD: &[u8] = b"instance:42:password";

fn ring_with_key(byte: u8) -> (KeyRing, String) {
    let b64 = STANDARD.encode([byte; KEY_LEN]);
    (KeyRing::from_base64_list(&b64).unwrap(), b64)
}

#[test]
fn round_trip() {
    let ring = KeyRing::generate();
    for plaintext in [
        &b""[..],
        b"x",
        b"correct horse battery staple",
        &[0u8; 1000],
    ] {
        let blob = ring.encrypt(plaintext, AAD);
        assert_eq!(blob.len(), MIN_BLOB_LEN + plaintext.len());
        assert_eq!(blob[0], BLOB_VERSION);
        assert_eq!(KeyRing::key_id_of(&blob), Some(ring.current_id()));
        assert_eq!(ring.decrypt(&blob, AAD).unwrap(), plaintext);
    }
}

#[test]
fn string_round_trip_and_not_utf8() {
    let ring = KeyRing::generate();
    let blob = ring.encrypt_str("pässwörd", AAD);
    assert_eq!(ring.decrypt_str(&blob, AAD).unwrap().expose(), "pässwörd");
    let blob = ring.encrypt(&[0xff, 0xfe], AAD);
    assert!(matches!(
        ring.decrypt_str(&blob, AAD),
        Err(VaultError::NotUtf8)
    ));
}

#[test]
fn nonces_are_fresh() {
    let ring = KeyRing::generate();
    let a = ring.encrypt(b"same", AAD);
    let b = ring.encrypt(b"same", AAD);
    assert_ne!(a, b);
    assert_ne!(a[5..17], b[5..17]);
}

#[test]
fn aad_mismatch_fails() {
    let ring = KeyRing::generate();
    let blob = ring.encrypt(b"secret", b"instance:42:password");
    for other in [&b"instance:43:password"[..], b"instance:42:token", b""] {
        assert!(matches!(
            ring.decrypt(&blob, other),
            Err(VaultError::Tampered)
        ));
    }
}

#[test]
fn tampering_any_byte_fails() {
    let ring = KeyRing::generate();
    let blob = ring.encrypt(b"some secret value", AAD);
    for i in 0..blob.len() {
        for mask in [0x01u8, 0x80, 0xff] {
            let mut bad = blob.clone();
            bad[i] ^= mask;
            let err = ring.decrypt(&bad, AAD).unwrap_err();
            let expected = match i {
                0 => matches!(err, VaultError::Malformed(_)),
                1..=4 => matches!(err, VaultError::UnknownKey(_)),
                _ => matches!(err, VaultError::Tampered),
            };
            assert!(expected, "byte {i} mask {mask:#x}: {err:?}");
        }
    }
}

#[test]
fn truncated_and_extended_blobs_fail() {
    let ring = KeyRing::generate();
    let blob = ring.encrypt(b"value", AAD);
    for len in 0..blob.len() {
        assert!(ring.decrypt(&blob[..len], AAD).is_err(), "len {len}");
    }
    for len in 1..MIN_BLOB_LEN {
        assert!(matches!(
            ring.decrypt(&blob[..len], AAD),
            Err(VaultError::Malformed(_))
        ));
    }
    let mut longer = blob.clone();
    longer.push(0);
    assert!(matches!(
        ring.decrypt(&longer, AAD),
        Err(VaultError::Tampered)
    ));
    assert!(matches!(
        ring.decrypt(&[], AAD),
        Err(VaultError::Malformed("empty"))
    ));
}

#[test]
fn unknown_key_id() {
    let a = KeyRing::generate();
    let b = KeyRing::generate();
    let blob = a.encrypt(b"value", AAD);
    match b.decrypt(&blob, AAD) {
        Err(VaultError::UnknownKey(id)) => assert_eq!(id, a.current_id()),
        other => panic!("expected UnknownKey, got {other:?}"),
    }
}

#[test]
fn key_id_is_sha256_fingerprint() {
    let (ring, _) = ring_with_key(7);
    let digest = Sha256::digest([7u8; KEY_LEN]);
    let expected = u32::from_be_bytes([digest[0], digest[1], digest[2], digest[3]]);
    assert_eq!(ring.current_id(), expected);
    assert_eq!(key_id(&[7u8; KEY_LEN]), expected);
    // Same key, same id, whatever the encoding.
    let url = KeyRing::from_base64_list(&URL_SAFE_NO_PAD.encode([7u8; KEY_LEN])).unwrap();
    assert_eq!(url.current_id(), expected);
}

#[test]
fn rotation_keeps_old_blobs_and_uses_new_key() {
    let mut ring = KeyRing::generate();
    let old_id = ring.current_id();
    let old_blob = ring.encrypt(b"old", AAD);
    let new_id = ring.rotate();
    assert_ne!(new_id, old_id);
    assert_eq!(ring.current_id(), new_id);
    assert_eq!(ring.key_ids(), vec![old_id, new_id]);
    assert_eq!(ring.decrypt(&old_blob, AAD).unwrap(), b"old");
    let new_blob = ring.encrypt(b"new", AAD);
    assert_eq!(KeyRing::key_id_of(&new_blob), Some(new_id));
    assert_eq!(ring.decrypt(&new_blob, AAD).unwrap(), b"new");
}

#[test]
fn reencrypt_moves_blobs_to_current_key() {
    let mut ring = KeyRing::generate();
    let old_id = ring.current_id();
    let blob = ring.encrypt(b"value", AAD);
    assert!(!ring.needs_reencrypt(&blob));
    let new_id = ring.rotate();
    assert!(ring.needs_reencrypt(&blob));
    let moved = ring.reencrypt(&blob, AAD).unwrap();
    assert_eq!(KeyRing::key_id_of(&moved), Some(new_id));
    assert!(!ring.needs_reencrypt(&moved));
    // Once everything moved, the old key can go.
    ring.remove(old_id).unwrap();
    assert_eq!(ring.decrypt(&moved, AAD).unwrap(), b"value");
    assert!(matches!(ring.decrypt(&blob, AAD), Err(VaultError::UnknownKey(id)) if id == old_id));
    // Re-encryption checks the AAD like decryption does.
    assert!(matches!(
        ring.reencrypt(&moved, b"other"),
        Err(VaultError::Tampered)
    ));
    assert!(!ring.needs_reencrypt(b"garbage"));
}

#[test]
fn remove_refuses_current_and_unknown() {
    let mut ring = KeyRing::generate();
    let id = ring.current_id();
    assert!(matches!(ring.remove(id), Err(VaultError::RemoveCurrent(x)) if x == id));
    assert!(matches!(
        ring.remove(id ^ 1),
        Err(VaultError::UnknownKey(_))
    ));
    assert_eq!(ring.key_ids(), vec![id]);
}

#[test]
fn base64_list_parsing() {
    let a = STANDARD.encode([1u8; KEY_LEN]);
    let b = URL_SAFE_NO_PAD.encode([2u8; KEY_LEN]);
    let ring = KeyRing::from_base64_list(&format!(" {a} ,\n{b}\n")).unwrap();
    assert_eq!(ring.current_id(), key_id(&[1u8; KEY_LEN]));
    assert_eq!(
        ring.key_ids(),
        vec![key_id(&[1u8; KEY_LEN]), key_id(&[2u8; KEY_LEN])]
    );
    // Export gives the same list back, current first.
    let exported = ring.to_base64_list();
    let again = KeyRing::from_base64_list(exported.expose()).unwrap();
    assert_eq!(again.key_ids(), ring.key_ids());
    assert_eq!(again.current_id(), ring.current_id());
    assert_eq!(format!("{exported:?}"), "***");
}

fn list_error(list: &str) -> String {
    match KeyRing::from_base64_list(list) {
        Err(e @ VaultError::BadKeyList(_)) => e.to_string(),
        other => panic!("expected BadKeyList, got {other:?}"),
    }
}

#[test]
fn base64_list_errors_are_clear_and_leak_nothing() {
    let good = STANDARD.encode([9u8; KEY_LEN]);
    // Bad base64 with a recognisable secret-looking body.
    let bad = "SECRETSECRET!!SECRET$$SECRETSECRETSECRETSE";
    let msg = list_error(&format!("{good},{bad}"));
    assert!(msg.contains("entry 2 is not valid base64"), "{msg}");
    assert!(
        !msg.contains("SECRET") && !msg.contains(&good) && !msg.contains('!'),
        "{msg}"
    );

    let short = STANDARD.encode([5u8; 16]);
    let msg = list_error(&short);
    assert!(
        msg.contains("entry 1 decodes to 16 bytes") && msg.contains("32"),
        "{msg}"
    );
    assert!(!msg.contains(&short), "{msg}");

    let long = STANDARD.encode([5u8; 33]);
    assert!(list_error(&long).contains("33 bytes"));
    assert!(list_error("").contains("entry 1 is empty"));
    assert!(list_error(&format!("{good},")).contains("entry 2 is empty"));
    assert!(list_error(&format!("{good}, ,{good}")).contains("entry 2 is empty"));
    let msg = list_error(&format!("{good},{good}"));
    assert!(msg.contains("entry 2 is the same key as entry 1"), "{msg}");
    assert!(!msg.contains(&good));
}

#[test]
fn debug_never_prints_key_material() {
    let (mut ring, b64) = ring_with_key(0xab);
    ring.rotate();
    let debug = format!("{ring:?} {ring:#?}");
    assert!(debug.contains(&ring.current_id().to_string()), "{debug}");
    assert!(!debug.contains(&b64), "{debug}");
    assert!(!debug.to_lowercase().contains("abab"), "{debug}");
    for key in &ring.keys {
        assert!(!debug.contains(&*encode_key_b64(&key.bytes)));
    }
}

#[test]
fn canary_with_right_and_wrong_ring() {
    let mut ring = KeyRing::generate();
    let canary = ring.make_canary();
    ring.verify_canary(&canary).unwrap();
    // Still opens after rotation (old key kept)...
    ring.rotate();
    ring.verify_canary(&canary).unwrap();
    // ...and after re-encrypting it and dropping the old key.
    let first = ring.key_ids()[0];
    assert!(ring.needs_reencrypt(&canary));
    let moved = ring.reencrypt_canary(&canary).unwrap();
    assert!(!ring.needs_reencrypt(&moved));
    ring.remove(first).unwrap();
    ring.verify_canary(&moved).unwrap();

    let other = KeyRing::generate();
    let err = other.verify_canary(&moved).unwrap_err();
    match &err {
        VaultError::WrongKeyRing { needed, available } => {
            assert_eq!(*needed, ring.current_id());
            assert_eq!(available, &other.key_ids());
        }
        e => panic!("expected WrongKeyRing, got {e:?}"),
    }
    let msg = err.to_string();
    assert!(msg.contains(&ring.current_id().to_string()), "{msg}");
    assert!(msg.contains(&other.current_id().to_string()), "{msg}");

    // A corrupted canary, or a normal value, is not a wrong ring.
    let mut bad = moved.clone();
    let last = bad.len() - 1;
    bad[last] ^= 1;
    assert!(matches!(
        ring.verify_canary(&bad),
        Err(VaultError::Tampered)
    ));
    let not_canary = ring.encrypt(b"hello", CANARY_AAD);
    assert!(matches!(
        ring.verify_canary(&not_canary),
        Err(VaultError::Malformed(_))
    ));
    assert!(matches!(
        ring.verify_canary(b""),
        Err(VaultError::Malformed(_))
    ));
    assert!(matches!(
        ring.reencrypt_canary(&bad),
        Err(VaultError::Tampered)
    ));
    assert!(matches!(
        other.reencrypt_canary(&moved),
        Err(VaultError::WrongKeyRing { .. })
    ));
}

#[test]
fn error_messages_never_contain_plaintext() {
    let ring = KeyRing::generate();
    let blob = ring.encrypt(b"TOPSECRETVALUE", AAD);
    let mut bad = blob.clone();
    bad[20] ^= 1;
    for err in [
        ring.decrypt(&bad, AAD).unwrap_err(),
        ring.decrypt(&blob, b"x").unwrap_err(),
        KeyRing::generate().decrypt(&blob, AAD).unwrap_err(),
    ] {
        let text = format!("{err} {err:?}");
        assert!(!text.contains("TOPSECRET"), "{text}");
    }
}

proptest! {
    #[test]
    fn decrypt_of_arbitrary_bytes_never_panics(
        bytes in proptest::collection::vec(any::<u8>(), 0..200),
        aad in proptest::collection::vec(any::<u8>(), 0..40),
    ) {
        let ring = KeyRing::generate();
        prop_assert!(ring.decrypt(&bytes, &aad).is_err());
        let _ = KeyRing::key_id_of(&bytes);
        let _ = ring.needs_reencrypt(&bytes);
        prop_assert!(ring.verify_canary(&bytes).is_err());
    }

    #[test]
    fn decrypt_with_valid_header_and_arbitrary_rest_never_panics(
        rest in proptest::collection::vec(any::<u8>(), 0..100),
    ) {
        let ring = KeyRing::generate();
        let mut blob = vec![BLOB_VERSION];
        blob.extend_from_slice(&ring.current_id().to_be_bytes());
        blob.extend_from_slice(&rest);
        let result = ring.decrypt(&blob, AAD);
        prop_assert!(matches!(result, Err(VaultError::Tampered) | Err(VaultError::Malformed(_))));
    }

    #[test]
    fn round_trip_any_plaintext_and_aad(
        plaintext in proptest::collection::vec(any::<u8>(), 0..300),
        aad in proptest::collection::vec(any::<u8>(), 0..60),
    ) {
        let ring = KeyRing::generate();
        let blob = ring.encrypt(&plaintext, &aad);
        prop_assert_eq!(ring.decrypt(&blob, &aad).unwrap(), plaintext);
    }

    #[test]
    fn any_single_change_is_detected(
        plaintext in proptest::collection::vec(any::<u8>(), 0..64),
        index in any::<prop::sample::Index>(),
        mask in 1u8..=255,
    ) {
        let ring = KeyRing::generate();
        let mut blob = ring.encrypt(&plaintext, AAD);
        let i = index.index(blob.len());
        blob[i] ^= mask;
        prop_assert!(ring.decrypt(&blob, AAD).is_err());
    }

    #[test]
    fn key_list_parsing_never_panics(list in "\\PC{0,120}") {
        let _ = KeyRing::from_base64_list(&list);
    }
}

#[test]
fn contains_answers_for_the_ring_s_own_ids_only() {
    let (mut ring, _) = ring_with_key(7);
    let first = ring.current_id();
    assert!(ring.contains(first));
    let second = ring.rotate();
    assert!(ring.contains(first) && ring.contains(second));
    let stranger = (0u32..).find(|i| !ring.key_ids().contains(i)).unwrap();
    assert!(!ring.contains(stranger));
    ring.remove(first).unwrap();
    assert!(!ring.contains(first));
}
