//! A key file named without a directory (`--master-key-file switchyard.key`)
//! is created in the working directory. Its own test binary: it changes the
//! process's working directory.

use switchyard_vault::KeyRing;

#[test]
fn load_or_create_takes_a_bare_file_name() {
    let dir = tempfile::tempdir().unwrap();
    std::env::set_current_dir(dir.path()).unwrap();
    let (ring, created) = KeyRing::load_or_create("switchyard.key").unwrap();
    assert!(created);
    assert!(dir.path().join("switchyard.key").is_file());
    let (again, created) = KeyRing::load_or_create("switchyard.key").unwrap();
    assert!(!created);
    assert_eq!(again.current_id(), ring.current_id());
}
