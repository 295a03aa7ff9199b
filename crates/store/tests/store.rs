//! The store against a real SQLite file.

use switchyard_store::*;

/// Marks blobs with a visible key id; the store must treat them as opaque.
struct TestSealer(u32);
impl Sealer for TestSealer {
    fn seal(&self, instance_id: i64, key: &str, plaintext: &str) -> (Vec<u8>, u32) {
        (format!("{}|{instance_id}|{key}|{}", self.0, plaintext.len()).into_bytes(), self.0)
    }
}

async fn store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("t.db").display());
    (dir, Store::open(&url).await.unwrap())
}

fn new_instance(org: i64, user: i64, token: &[u8], tags: &[&str]) -> NewInstance {
    NewInstance {
        organization_id: org,
        user_id: user,
        element_key: "bigcommerce".into(),
        name: "shop".into(),
        token_hash: token.to_vec(),
        tags: tags.iter().map(|t| t.to_string()).collect(),
        events_enabled: false,
        webhook: None,
    }
}

#[tokio::test]
async fn instances_are_scoped_by_organization_and_filtered_by_tags() {
    let (_dir, s) = store().await;
    let (a, ua) = s.create_organization("a", b"oa", "a@x", b"ua").await.unwrap();
    let (b, _) = s.create_organization("b", b"ob", "b@x", b"ub").await.unwrap();
    let caller = s.authenticate(b"ua", b"oa").await.unwrap().unwrap();
    assert_eq!(caller.organization_id, a.id);
    assert!(s.authenticate(b"ua", b"ob").await.unwrap().is_none(), "user of a with org b's secret");

    let config = vec![
        ("username".to_string(), NewValue::Plain("u".into())),
        ("password".to_string(), NewValue::Secret("p".into())),
    ];
    let id = s.create_instance(&new_instance(a.id, ua.id, b"t1", &["x", "y"]), &config, &TestSealer(1)).await.unwrap();
    s.create_instance(&new_instance(a.id, ua.id, b"t2", &["x"]), &config, &TestSealer(1)).await.unwrap();

    assert!(s.instance(b.id, id).await.unwrap().is_none(), "another organization sees nothing");
    assert_eq!(s.instance_by_id(id).await.unwrap().map(|r| r.organization_id), Some(a.id), "the platform's own look");
    assert!(s.instance_by_id(id + 1000).await.unwrap().is_none());
    assert_eq!(s.instances(a.id, &[]).await.unwrap().len(), 2);
    assert_eq!(s.instances(a.id, &["x".into(), "y".into()]).await.unwrap().len(), 1);
    assert_eq!(s.instances(b.id, &[]).await.unwrap().len(), 0);
    assert_eq!(s.instance_by_token(b"t1").await.unwrap().unwrap().id, id);

    let rows = s.configuration(id).await.unwrap();
    let password = rows.iter().find(|r| r.key == "password").unwrap();
    assert!(password.value.is_none());
    assert_eq!(password.secret.as_deref(), Some(format!("1|{id}|password|1").as_bytes()));

    // Keep leaves the sealed value; replace drops keys not given.
    let update = InstanceUpdate { name: Some("renamed".into()), ..Default::default() };
    let keep = vec![("password".to_string(), NewValue::Keep)];
    assert!(s.update_instance(a.id, id, &update, &keep, true, &TestSealer(2)).await.unwrap());
    let rows = s.configuration(id).await.unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].secret.as_deref(), Some(format!("1|{id}|password|1").as_bytes()));
    assert!(!s.update_instance(b.id, id, &update, &keep, true, &TestSealer(2)).await.unwrap());

    assert!(!s.delete_instance(b.id, id).await.unwrap());
    assert!(s.delete_instance(a.id, id).await.unwrap());
    assert!(s.instance_by_token(b"t1").await.unwrap().is_none());
    assert!(s.configuration(id).await.unwrap().is_empty());
}

#[tokio::test]
async fn reseal_moves_rows_to_the_new_key_and_skips_rows_changed_meanwhile() {
    let (_dir, s) = store().await;
    let (o, u) = s.create_organization("a", b"oa", "a@x", b"ua").await.unwrap();
    let config: Vec<_> = (0..5).map(|i| (format!("k{i}"), NewValue::Secret("v".into()))).collect();
    let id = s.create_instance(&new_instance(o.id, u.id, b"t", &[]), &config, &TestSealer(1)).await.unwrap();

    let rows = s.sealed_rows_not_under(2, 3).await.unwrap();
    assert_eq!(rows.len(), 3);
    // One of them is rewritten by another writer before the reseal commits.
    let changed = vec![(rows[0].key.clone(), NewValue::Secret("new".into()))];
    s.update_instance(o.id, id, &InstanceUpdate::default(), &changed, false, &TestSealer(1)).await.unwrap();
    let resealed: Vec<_> = rows.into_iter().map(|r| (r, b"sealed-by-2".to_vec(), 2)).collect();
    assert_eq!(s.reseal(&resealed).await.unwrap(), 2);
    assert_eq!(s.sealed_rows_not_under(2, 100).await.unwrap().len(), 3);
}

#[tokio::test]
async fn the_latest_poll_outcome_is_kept_per_instance_and_goes_with_it() {
    let (_dir, s) = store().await;
    let (a, ua) = s.create_organization("a", b"oa", "a@x", b"ua").await.unwrap();
    let id = s.create_instance(&new_instance(a.id, ua.id, b"t1", &[]), &[], &TestSealer(1)).await.unwrap();
    assert_eq!(s.poll_status(id).await.unwrap(), None, "nothing before the first poll");
    s.record_poll(id, 1_000, false, Some("polling orders: the hub list answered 502")).await.unwrap();
    assert_eq!(
        s.poll_status(id).await.unwrap(),
        Some(PollStatus { polled_at: 1_000, ok: false, message: Some("polling orders: the hub list answered 502".into()) })
    );
    // The next outcome replaces it; a success carries no message.
    s.record_poll(id, 2_000, true, Some("ignored")).await.unwrap();
    assert_eq!(s.poll_status(id).await.unwrap(), Some(PollStatus { polled_at: 2_000, ok: true, message: None }));
    // A poll that ends after its instance was deleted records nothing (and does not fail).
    assert!(s.delete_instance(a.id, id).await.unwrap());
    assert_eq!(s.poll_status(id).await.unwrap(), None, "deleted with the instance");
    s.record_poll(id, 3_000, true, None).await.unwrap();
    assert_eq!(s.poll_status(id).await.unwrap(), None);
}
