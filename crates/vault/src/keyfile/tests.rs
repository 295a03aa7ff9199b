use super::*;

const AAD: &[u8] = b"instance:1:token";

fn dir() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

#[cfg(unix)]
fn mode_of(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    fs::metadata(path).unwrap().permissions().mode() & 0o7777
}

#[cfg(unix)]
fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

/// Writes a key file by hand (tests of the loader's checks).
fn write_raw(path: &Path, content: &str) {
    fs::write(path, content).unwrap();
    #[cfg(unix)]
    set_mode(path, 0o600);
}

fn load_error(content: &str) -> String {
    let d = dir();
    let path = d.path().join("keys.json");
    write_raw(&path, content);
    match KeyRing::load(&path) {
        Err(e @ VaultError::KeyFile { .. }) => e.to_string(),
        other => panic!("expected KeyFile error, got {other:?}"),
    }
}

fn b64(byte: u8) -> String {
    encode_key_b64(&[byte; KEY_LEN]).to_string()
}

#[test]
fn load_or_create_creates_private_file_and_reloads_identically() {
    let d = dir();
    let path = d.path().join("nested/dir/keys.json");
    let (ring, created) = KeyRing::load_or_create(&path).unwrap();
    assert!(created);
    #[cfg(unix)]
    {
        assert_eq!(mode_of(&path), 0o600);
        assert_eq!(mode_of(path.parent().unwrap()), 0o700);
    }
    let blob = ring.encrypt(b"value", AAD);

    let (again, created) = KeyRing::load_or_create(&path).unwrap();
    assert!(!created);
    assert_eq!(again.key_ids(), ring.key_ids());
    assert_eq!(again.current_id(), ring.current_id());
    assert_eq!(again.to_base64_list(), ring.to_base64_list());
    assert_eq!(again.decrypt(&blob, AAD).unwrap(), b"value");
    assert_eq!(*again.to_file_bytes(), *ring.to_file_bytes());

    // No temporary files left behind.
    let names: Vec<_> = fs::read_dir(path.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, vec![std::ffi::OsString::from("keys.json")]);
}

#[test]
fn file_format_is_as_documented() {
    let d = dir();
    let path = d.path().join("keys.json");
    let mut ring = KeyRing::from_base64_list(&b64(3)).unwrap();
    ring.rotate();
    ring.save(&path).unwrap();
    let json: serde_json::Value = serde_json::from_slice(&fs::read(&path).unwrap()).unwrap();
    assert_eq!(json["version"], 1);
    assert_eq!(json["current"], ring.current_id());
    let keys = json["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 2);
    // A key from the environment has no creation time; a generated one has.
    assert_eq!(keys[0]["id"], key_id(&[3; KEY_LEN]));
    assert_eq!(keys[0]["key"], b64(3));
    assert!(keys[0].get("createdAt").is_none());
    assert_eq!(keys[1]["id"], ring.current_id());
    let created = keys[1]["createdAt"].as_str().unwrap();
    assert!(DateTime::parse_from_rfc3339(created).is_ok(), "{created}");
}

#[test]
fn save_after_rotate_replaces_file_and_keeps_old_keys() {
    let d = dir();
    let path = d.path().join("keys.json");
    let (mut ring, _) = KeyRing::load_or_create(&path).unwrap();
    let old_blob = ring.encrypt(b"old", AAD);
    let new_id = ring.rotate();
    ring.save(&path).unwrap();
    #[cfg(unix)]
    assert_eq!(mode_of(&path), 0o600);
    let loaded = KeyRing::load(&path).unwrap();
    assert_eq!(loaded.current_id(), new_id);
    assert_eq!(loaded.key_ids(), ring.key_ids());
    assert_eq!(loaded.decrypt(&old_blob, AAD).unwrap(), b"old");
}

#[cfg(unix)]
#[test]
fn save_tightens_permissions_of_a_loose_file() {
    let d = dir();
    let path = d.path().join("keys.json");
    fs::write(&path, "old").unwrap();
    set_mode(&path, 0o644);
    KeyRing::generate().save(&path).unwrap();
    assert_eq!(mode_of(&path), 0o600);
}

#[cfg(unix)]
#[test]
fn refuses_files_others_can_read_or_write() {
    let d = dir();
    let path = d.path().join("keys.json");
    let ring = KeyRing::generate();
    ring.save(&path).unwrap();
    for mode in [0o644, 0o604, 0o602, 0o660, 0o666] {
        set_mode(&path, mode);
        let err = KeyRing::load(&path).unwrap_err();
        assert!(
            matches!(err, VaultError::InsecurePermissions { mode: m, .. } if m == mode),
            "{mode:o}: {err:?}"
        );
        let msg = err.to_string();
        assert!(
            msg.contains("chmod 600") && msg.contains("keys.json"),
            "{msg}"
        );
        // load_or_create must not replace it either.
        assert!(KeyRing::load_or_create(&path).is_err());
    }
    for mode in [0o600, 0o400, 0o640, 0o440] {
        set_mode(&path, mode);
        assert_eq!(
            KeyRing::load(&path).unwrap().key_ids(),
            ring.key_ids(),
            "{mode:o}"
        );
    }
}

#[test]
fn missing_file_is_an_io_error_for_load() {
    let d = dir();
    let err = KeyRing::load(d.path().join("nope.json")).unwrap_err();
    assert!(
        matches!(&err, VaultError::Io { source, .. } if source.kind() == io::ErrorKind::NotFound),
        "{err:?}"
    );
    assert!(err.to_string().contains("nope.json"));
}

#[test]
fn directory_is_not_a_key_file() {
    let d = dir();
    #[cfg(unix)]
    set_mode(d.path(), 0o700);
    let err = KeyRing::load(d.path()).unwrap_err();
    assert!(err.to_string().contains("not a regular file"), "{err}");
}

#[test]
fn bad_key_files_get_clear_errors_without_key_material() {
    let good = b64(4);
    let id = key_id(&[4; KEY_LEN]);

    let msg = load_error("not json");
    assert!(
        msg.contains("not valid JSON") && msg.contains("line 1"),
        "{msg}"
    );
    assert!(load_error("").contains("not valid JSON"));

    let msg = load_error(r#"{"version":2,"current":1,"keys":[],"newThing":true}"#);
    assert!(msg.contains("unsupported key file version 2"), "{msg}");
    assert!(load_error(r#"{"current":1,"keys":[]}"#).contains("no \"version\""));
    assert!(load_error(r#"{"version":1,"current":1,"keys":[]}"#).contains("has no keys"));

    // A key where a number belongs: serde_json would quote it; we do not.
    let msg = load_error(&format!(
        r#"{{"version":1,"current":"{good}","keys":[{{"id":{id},"key":"{good}"}}]}}"#
    ));
    assert!(msg.contains("expected structure"), "{msg}");
    assert!(!msg.contains(&good), "{msg}");

    let msg = load_error(&format!(
        r#"{{"version":1,"current":{id},"keys":[{{"id":{id},"key":"{good}","kee":"{good}"}}]}}"#
    ));
    assert!(
        msg.contains("expected structure") && !msg.contains(&good),
        "{msg}"
    );

    let bad = "SECRET!!SECRET";
    let msg = load_error(&format!(
        r#"{{"version":1,"current":{id},"keys":[{{"id":{id},"key":"{bad}"}}]}}"#
    ));
    assert!(
        msg.contains("key entry 1") && msg.contains("not valid base64"),
        "{msg}"
    );
    assert!(!msg.contains("SECRET"), "{msg}");

    let short = encode_key_b64(&[4; KEY_LEN]).to_string();
    let short = &short[..20];
    let msg = load_error(&format!(
        r#"{{"version":1,"current":{id},"keys":[{{"id":{id},"key":"{short}"}}]}}"#
    ));
    assert!(
        msg.contains("decodes to 15 bytes, expected 32") && !msg.contains(short),
        "{msg}"
    );

    let wrong = id.wrapping_add(1);
    let msg = load_error(&format!(
        r#"{{"version":1,"current":{wrong},"keys":[{{"id":{wrong},"key":"{good}"}}]}}"#
    ));
    assert!(
        msg.contains(&format!("says id {wrong} but its key has id {id}")),
        "{msg}"
    );
    assert!(!msg.contains(&good), "{msg}");

    let msg = load_error(&format!(
        r#"{{"version":1,"current":{id},"keys":[{{"id":{id},"key":"{good}"}},{{"id":{id},"key":"{good}"}}]}}"#
    ));
    assert!(msg.contains("appears more than once"), "{msg}");

    let msg = load_error(&format!(
        r#"{{"version":1,"current":7,"keys":[{{"id":{id},"key":"{good}"}}]}}"#
    ));
    assert!(
        msg.contains("current key id 7 is not one of its keys"),
        "{msg}"
    );
    assert!(msg.contains(&id.to_string()), "{msg}");

    // createdAt is optional; a hand-written file with just keys loads.
    let d = dir();
    let path = d.path().join("keys.json");
    write_raw(
        &path,
        &format!(r#"{{"version":1,"current":{id},"keys":[{{"id":{id},"key":"{good}"}}]}}"#),
    );
    assert_eq!(KeyRing::load(&path).unwrap().current_id(), id);
}

#[test]
fn concurrent_load_or_create_agree_on_one_ring() {
    let d = dir();
    let path = d.path().join("keys.json");
    let handles: Vec<_> = (0..4)
        .map(|_| {
            let path = path.clone();
            std::thread::spawn(move || KeyRing::load_or_create(&path).unwrap())
        })
        .collect();
    let results: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    let created = results.iter().filter(|(_, c)| *c).count();
    assert_eq!(created, 1);
    let id = results[0].0.current_id();
    assert!(results.iter().all(|(r, _)| r.current_id() == id));
    assert_eq!(KeyRing::load(&path).unwrap().current_id(), id);
}

/// The size limit is exact: a file of `MAX_KEY_FILE_LEN` bytes (a valid ring
/// padded with spaces) loads, one byte more is refused as too large rather
/// than cut and then parsed.
#[test]
fn key_file_size_limit_is_exact() {
    let good = b64(4);
    let id = key_id(&[4; KEY_LEN]);
    let ring = format!(r#"{{"version":1,"current":{id},"keys":[{{"id":{id},"key":"{good}"}}]}}"#);
    let limit = MAX_KEY_FILE_LEN as usize;
    let d = dir();
    let path = d.path().join("keys.json");
    write_raw(&path, &format!("{ring}{}", " ".repeat(limit - ring.len())));
    assert_eq!(KeyRing::load(&path).unwrap().current_id(), id);
    let msg = load_error(&format!("{ring}{}", " ".repeat(limit + 1 - ring.len())));
    assert!(msg.contains("too large"), "{msg}");
}
