//! The store on both backends (see support/mod.rs).

use switchyard_store::*;

#[macro_use]
mod support;
use support::{Backend, TestDb};

/// Marks blobs with a visible key id; the store must treat them as opaque.
struct TestSealer(u32);
impl Sealer for TestSealer {
    fn seal(&self, instance_id: i64, key: &str, plaintext: &str) -> (Vec<u8>, u32) {
        (format!("{}|{instance_id}|{key}|{}", self.0, plaintext.len()).into_bytes(), self.0)
    }
}

async fn store(backend: Backend) -> (TestDb, Store) {
    let db = TestDb::new(backend).await;
    let store = db.store.clone();
    (db, store)
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

on_both! {
    async fn instances_are_scoped_by_organization_and_filtered_by_tags(backend: Backend) {
        let (_db, s) = store(backend).await;
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
}

on_both! {
    async fn reseal_moves_rows_to_the_new_key_and_skips_rows_changed_meanwhile(backend: Backend) {
        let (_db, s) = store(backend).await;
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
}

on_both! {
    async fn the_latest_poll_outcome_is_kept_per_instance_and_goes_with_it(backend: Backend) {
        let (_db, s) = store(backend).await;
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
}

on_both! {
    /// A vendor webhook call's digest names its first event for as long as the dedupe
    /// window: later, or once pruned, the same digest is a new event; another instance's
    /// call with the same digest is that instance's own event.
    async fn a_webhook_digest_names_the_first_event_within_the_window_only(backend: Backend) {
        let (_db, s) = store(backend).await;
        let (org, user) = s.create_organization("a", b"oa", "a@x", b"ua").await.unwrap();
        let one = s.create_instance(&new_instance(org.id, user.id, b"t1", &[]), &[], &TestSealer(1)).await.unwrap();
        let two = s.create_instance(&new_instance(org.id, user.id, b"t2", &[]), &[], &TestSealer(1)).await.unwrap();
        let call = |instance_id: i64, event_id: &str| IncomingEvent {
            event: NewEvent {
                event_id: event_id.into(),
                organization_id: org.id,
                instance_id,
                element_key: "bigcommerce".into(),
                source: "webhook".into(),
                status: "RECEIVED".into(),
                event_date: "2026-01-01T00:00:00.000Z".into(),
                provider_data: "{}".into(),
                notified_data: "[]".into(),
                raw: "{}".into(),
            },
            digest: Some(b"d".to_vec()),
        };
        let events = |instance_id: i64| {
            let s = s.clone();
            async move {
                let q = EventQuery { organization_id: org.id, instance_id: Some(instance_id), before: None, offset: 0, limit: 10 };
                let mut ids: Vec<String> = s.events(&q).await.unwrap().into_iter().map(|e| e.event_id).collect();
                ids.sort();
                ids
            }
        };
        // Received at 1000 with a window reaching back to 0; then repeats at 2000, in one
        // batch with another instance's call, and at 3000 with the window from 1000.
        assert_eq!(s.insert_incoming_durably(&[call(one, "e1")], 0, 1000, 0).await.unwrap(), ["e1"]);
        let batch = [call(one, "e2"), call(two, "e3"), call(two, "e4")];
        assert_eq!(s.insert_incoming_durably(&batch, 0, 2000, 0).await.unwrap(), ["e1", "e3", "e3"]);
        assert_eq!(s.insert_incoming_durably(&[call(one, "e5")], 0, 3000, 1000).await.unwrap(), ["e1"]);
        // The window moved past the first call: a new event, which later repeats name.
        assert_eq!(s.insert_incoming_durably(&[call(one, "e6")], 0, 4000, 1001).await.unwrap(), ["e6"]);
        assert_eq!(s.insert_incoming_durably(&[call(one, "e7")], 0, 4500, 1001).await.unwrap(), ["e6"]);
        assert_eq!(events(one).await, ["e1", "e6"]);
        assert_eq!(events(two).await, ["e3"]);
        // A call without a digest is never a repeat.
        let plain = IncomingEvent { digest: None, ..call(one, "e8") };
        assert_eq!(s.insert_incoming_durably(&[plain], 0, 5000, 0).await.unwrap(), ["e8"]);
        // One batch of a call without a digest, a repeat and a new digest: answered in order.
        let batch = [IncomingEvent { digest: None, ..call(one, "p1") }, call(one, "e10"), IncomingEvent { digest: Some(b"n".to_vec()), ..call(one, "n1") }];
        assert_eq!(s.insert_incoming_durably(&batch, 0, 5500, 1001).await.unwrap(), ["p1", "e6", "n1"]);
        assert_eq!(events(one).await, ["e1", "e6", "e8", "n1", "p1"]);

        // Pruning takes digests received before the cut, in batches.
        assert_eq!(s.prune_webhook_digests(2001, 1).await.unwrap(), 1, "instance two's, from 2000");
        assert_eq!(s.prune_webhook_digests(2001, 1).await.unwrap(), 0, "instance one's is from 4000");
        assert_eq!(s.insert_incoming_durably(&[call(two, "e9")], 0, 6000, 0).await.unwrap(), ["e9"], "pruned: new");
        assert_eq!(s.prune_webhook_digests(i64::MAX, 10).await.unwrap(), 3, "both instances' d and instance one's n");
    }
}

on_both! {
    /// Servers started together on one new database migrate it once between them:
    /// on PostgreSQL sqlx's migrator holds an advisory lock for the whole run.
    async fn servers_starting_together_migrate_a_new_database_once(backend: Backend) {
        let db = support::EmptyDb::new(backend).await;
        let opens: Vec<_> = (0..4)
            .map(|_| {
                let url = db.url.clone();
                tokio::spawn(async move { Store::open(&url).await })
            })
            .collect();
        let mut stores = Vec::new();
        for open in opens {
            stores.push(open.await.unwrap().unwrap_or_else(|e| panic!("a concurrent start failed: {e}")));
        }
        let (org, _) = stores[0].create_organization("a", b"oa", "a@x", b"ua").await.unwrap();
        assert_eq!(stores[3].organizations().await.unwrap()[0].id, org.id, "one database, one schema");
        for s in stores {
            s.close().await;
        }
    }
}

/// TLS to PostgreSQL (rustls, webpki roots): `sslmode=require` encrypts the connection
/// (checked on the server's side, `pg_stat_ssl`); `verify-full` refuses a certificate
/// no known authority signed (the test server's is Debian's self-signed snakeoil),
/// at open, with no store made.
#[tokio::test]
async fn postgres_connections_take_tls_when_the_url_asks() {
    use sqlx::Connection;
    let db = support::EmptyDb::new(support::Backend::Postgres).await;
    let with = |mode: &str| format!("{}{}sslmode={mode}", db.url, if db.url.contains('?') { "&" } else { "?" });
    let store = Store::open(&with("require")).await.unwrap();
    drop(store);
    let mut conn = sqlx::PgConnection::connect(&with("require")).await.unwrap();
    let encrypted: bool = sqlx::query_scalar("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()").fetch_one(&mut conn).await.unwrap();
    assert!(encrypted, "sslmode=require gives an encrypted connection");
    conn.close().await.unwrap();
    assert!(Store::open(&with("verify-full")).await.is_err(), "a self-signed certificate is not trusted");
}
