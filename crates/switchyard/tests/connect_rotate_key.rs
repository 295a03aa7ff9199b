//! `rotate-key` moves the sealed secrets of Connect sessions (signature key,
//! preset configuration) to the new key, against the real binary.

use std::path::Path;
use std::process::{Command, Output, Stdio};

use serde_json::{json, Value};
use switchyard_server::caller::hash_secret;
use switchyard_store::connect_session_aad;

mod common;

use common::{Serve, BIN};

fn run(dir: &Path, args: &[&str]) -> Output {
    let mut cmd = Command::new(BIN);
    cmd.current_dir(dir).args(args);
    for name in ["SWITCHYARD_MASTER_KEY", "SWITCHYARD_MASTER_KEY_FILE", "SWITCHYARD_DATABASE_URL"] {
        cmd.env_remove(name);
    }
    cmd.stdin(Stdio::null()).output().unwrap()
}

fn ok_json(out: &Output) -> Value {
    assert!(out.status.success(), "failed: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("stdout is one JSON document")
}

#[tokio::test(flavor = "multi_thread")]
async fn rotate_key_reseals_connect_session_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let first = ok_json(&run(d, &["init", "--json"]));
    let auth = format!("User {}, Organization {}", first["user"]["secret"].as_str().unwrap(), first["organization"]["secret"].as_str().unwrap());
    let serve = Serve::start(d, &[], &[]);
    let answer = reqwest::Client::new()
        .post(format!("{}/connect/sessions", serve.base))
        .header("Authorization", &auth)
        .json(&json!({"elements": ["bigcommerce"], "signatureKey": "sig-key-1", "callbackUrl": "https://hooks.example.com/x", "configuration": {"bigcommerce": {"oauth.api.key": "client-1"}}}))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), reqwest::StatusCode::CREATED);
    let created: Value = answer.json().await.unwrap();
    serve.stop();
    let token_hash = hash_secret(created["token"].as_str().unwrap());

    let rotated = ok_json(&run(d, &["rotate-key"]));
    let new_key = u32::try_from(rotated["currentKeyId"].as_u64().unwrap()).unwrap();
    assert!(rotated["reencrypted"].as_u64().unwrap() >= 2, "{rotated}");
    let store = switchyard_store::Store::open(&format!("sqlite://{}", d.join("switchyard.db").display())).await.unwrap();
    let row = store.connect_session_by_token(&token_hash).await.unwrap().unwrap();
    assert_eq!(row.key_id, Some(new_key));
    let vault = switchyard_vault::Vault::open(d.join("switchyard.key")).unwrap();
    let aad = connect_session_aad(&token_hash);
    for (blob, plain) in [(row.signature_key_sealed.unwrap(), "sig-key-1"), (row.configuration_sealed.unwrap(), r#"{"bigcommerce":{"oauth.api.key":"client-1"}}"#)] {
        assert_eq!(switchyard_vault::KeyRing::key_id_of(&blob), Some(new_key));
        assert_eq!(vault.decrypt_str(&blob, &aad).unwrap().expose(), plain);
    }
    assert!(store.sealed_connect_blobs_not_under(new_key, 10).await.unwrap().is_empty());
    store.close().await;
}
