use super::*;
use std::fs;

const AAD: &[u8] = b"instance:7:clientSecret";

#[test]
fn rereads_key_file_on_unknown_key_id() {
    let d = tempfile::tempdir().unwrap();
    let path = d.path().join("keys.json");
    let (ring, _) = KeyRing::load_or_create(&path).unwrap();
    let first_id = ring.current_id();
    let server = Vault::with_key_file(ring, &path);
    let clone = server.clone();
    let old_blob = server.encrypt(b"old", AAD);

    // `switchyard rotate-key` in another process.
    let mut other = KeyRing::load(&path).unwrap();
    let new_id = other.rotate();
    other.save(&path).unwrap();
    let new_blob = other.encrypt(b"new", AAD);

    assert_eq!(server.current_id(), first_id);
    assert_eq!(server.decrypt(&new_blob, AAD).unwrap(), b"new");
    // The re-read ring replaced the old one, in every clone.
    assert_eq!(clone.current_id(), new_id);
    assert_eq!(clone.key_ids(), vec![first_id, new_id]);
    assert_eq!(clone.decrypt(&old_blob, AAD).unwrap(), b"old");
    assert!(clone.needs_reencrypt(&old_blob));
    let moved = clone.reencrypt(&old_blob, AAD).unwrap();
    assert_eq!(KeyRing::key_id_of(&moved), Some(new_id));
    assert_eq!(server.decrypt_str(&moved, AAD).unwrap().expose(), "old");
}

#[test]
fn unknown_key_still_unknown_after_reread() {
    let d = tempfile::tempdir().unwrap();
    let path = d.path().join("keys.json");
    let vault = {
        KeyRing::load_or_create(&path).unwrap();
        Vault::open(&path).unwrap()
    };
    let stranger = KeyRing::generate().encrypt(b"x", AAD);
    assert!(matches!(
        vault.decrypt(&stranger, AAD),
        Err(VaultError::UnknownKey(_))
    ));
    // Other errors do not trigger a re-read and pass through.
    let blob = vault.encrypt(b"x", AAD);
    assert!(matches!(
        vault.decrypt(&blob, b"other"),
        Err(VaultError::Tampered)
    ));
}

#[test]
fn reread_failure_is_reported_and_ring_kept() {
    let d = tempfile::tempdir().unwrap();
    let path = d.path().join("keys.json");
    KeyRing::load_or_create(&path).unwrap();
    let vault = Vault::open(&path).unwrap();
    let ids = vault.key_ids();
    fs::remove_file(&path).unwrap();
    let stranger = KeyRing::generate().encrypt(b"x", AAD);
    assert!(matches!(
        vault.decrypt(&stranger, AAD),
        Err(VaultError::Io { .. })
    ));
    assert!(vault.reload().is_err());
    assert_eq!(vault.key_ids(), ids);
    let blob = vault.encrypt(b"still works", AAD);
    assert_eq!(vault.decrypt(&blob, AAD).unwrap(), b"still works");
}

#[test]
fn without_key_file_unknown_key_is_immediate() {
    let vault = Vault::new(KeyRing::generate());
    assert!(vault.key_file().is_none());
    vault.reload().unwrap();
    let stranger = KeyRing::generate().encrypt(b"x", AAD);
    assert!(matches!(
        vault.decrypt(&stranger, AAD),
        Err(VaultError::UnknownKey(_))
    ));
}

#[test]
fn canary_through_vault_rereads_once() {
    let d = tempfile::tempdir().unwrap();
    let path = d.path().join("keys.json");
    let (ring, _) = KeyRing::load_or_create(&path).unwrap();
    let vault = Vault::with_key_file(ring, &path);
    vault.verify_canary(&vault.make_canary()).unwrap();

    // Database made with a ring this vault's file does not have.
    let foreign = KeyRing::generate();
    let err = vault.verify_canary(&foreign.make_canary()).unwrap_err();
    match &err {
        VaultError::WrongKeyRing { needed, available } => {
            assert_eq!(*needed, foreign.current_id());
            assert_eq!(available, &vault.key_ids());
        }
        e => panic!("expected WrongKeyRing, got {e:?}"),
    }

    // Key added to the file by another process: found after the re-read.
    let mut other = KeyRing::load(&path).unwrap();
    other.rotate();
    other.save(&path).unwrap();
    vault.verify_canary(&other.make_canary()).unwrap();
}

#[test]
fn debug_shows_ids_not_keys() {
    let ring = KeyRing::generate();
    let material = ring.to_base64_list();
    let vault = Vault::new(ring);
    let debug = format!("{vault:?}");
    assert!(debug.contains(&vault.current_id().to_string()), "{debug}");
    assert!(!debug.contains(material.expose()), "{debug}");
    assert_eq!(vault.snapshot().key_ids(), vault.key_ids());
}

#[test]
fn shared_between_threads() {
    let vault = Vault::new(KeyRing::generate());
    let handles: Vec<_> = (0..4u8)
        .map(|i| {
            let vault = vault.clone();
            std::thread::spawn(move || {
                let aad = [i];
                let blob = vault.encrypt(&[i; 10], &aad);
                vault.decrypt(&blob, &aad).unwrap()
            })
        })
        .collect();
    for (i, h) in handles.into_iter().enumerate() {
        assert_eq!(h.join().unwrap(), vec![i as u8; 10]);
    }
}

#[test]
fn encrypts_under_a_key_rotated_by_another_process() {
    let d = tempfile::tempdir().unwrap();
    let path = d.path().join("keys.json");
    let (ring, _) = KeyRing::load_or_create(&path).unwrap();
    let server = Vault::with_key_file(ring, &path);
    let before = server.encrypt(b"a", AAD);

    let mut other = KeyRing::load(&path).unwrap();
    let new_id = other.rotate();
    other.save(&path).unwrap();

    let after = server.encrypt(b"b", AAD);
    assert_ne!(KeyRing::key_id_of(&before), Some(new_id));
    assert_eq!(KeyRing::key_id_of(&after), Some(new_id), "sealed under the rotated key");
    assert_eq!(server.decrypt(&before, AAD).unwrap(), b"a");

    // A key file that vanished leaves the loaded ring sealing.
    fs::remove_file(&path).unwrap();
    let still = server.encrypt(b"c", AAD);
    assert_eq!(KeyRing::key_id_of(&still), Some(new_id));
}

/// The string and canary paths of the vault, and whether a blob is under
/// the current key, as the server uses them after `rotate-key`.
#[test]
fn strings_canaries_and_reencryption_after_a_rotation() {
    let d = tempfile::tempdir().unwrap();
    let path = d.path().join("keys.json");
    let (ring, _) = KeyRing::load_or_create(&path).unwrap();
    let first = ring.current_id();
    let vault = Vault::with_key_file(ring, &path);
    let secret = vault.encrypt_str("s3cr3t", AAD);
    assert_eq!(KeyRing::key_id_of(&secret), Some(first));
    assert_eq!(vault.decrypt_str(&secret, AAD).unwrap().expose(), "s3cr3t");
    assert!(!vault.needs_reencrypt(&secret), "sealed under the current key");
    let canary = vault.make_canary();

    let mut other = KeyRing::load(&path).unwrap();
    let second = other.rotate();
    other.save(&path).unwrap();
    vault.reload().unwrap();

    assert!(vault.needs_reencrypt(&secret), "sealed under an old key");
    let moved = vault.reencrypt_canary(&canary).unwrap();
    assert_eq!(KeyRing::key_id_of(&moved), Some(second));
    vault.verify_canary(&moved).unwrap();
    // A new ring made from the rotated file alone (old key removed) still
    // opens the moved canary.
    other.remove(first).unwrap();
    other.verify_canary(&moved).unwrap();
}

#[test]
fn follows_the_database_current_key_and_refuses_without_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("k.json");
    let ring = KeyRing::generate();
    let old = ring.current_id();
    ring.save(&path).unwrap();
    let vault = Vault::open(&path).unwrap();
    vault.check_sealing().unwrap();

    // Another node activated a key this one has never seen.
    let mut elsewhere = ring.clone();
    let new = elsewhere.add_new();
    let sealed_elsewhere = {
        let mut current = elsewhere.clone();
        current.set_current(new).unwrap();
        current.encrypt_str("v", b"aad")
    };
    assert!(matches!(vault.follow_current(new), Err(VaultError::CurrentKeyMissing(id)) if id == new));
    assert!(matches!(vault.check_sealing(), Err(VaultError::CurrentKeyMissing(id)) if id == new));
    assert!(matches!(vault.decrypt_str(&sealed_elsewhere, b"aad"), Err(VaultError::UnknownKey(id)) if id == new));
    assert_eq!(vault.current_id(), old, "keeps its own key until it has the new one");

    // The operator adds the key (not current in the file): the database's choice wins.
    elsewhere.save(&path).unwrap();
    vault.check_sealing().unwrap();
    assert_eq!(vault.current_id(), new);
    assert_eq!(vault.decrypt_str(&sealed_elsewhere, b"aad").unwrap().expose(), "v");
    vault.reload().unwrap();
    assert_eq!(vault.current_id(), new, "a re-read keeps the database's current key");
}
