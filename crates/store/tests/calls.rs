//! The call log and Idempotency-Key records on both backends (see support/mod.rs).

use std::time::{Duration, SystemTime};

use switchyard_store::*;

#[macro_use]
mod support;
use support::{Backend, TestDb};

struct NoSeal;
impl Sealer for NoSeal {
    fn seal(&self, _: i64, _: &str, p: &str) -> (Vec<u8>, u32) {
        (p.as_bytes().to_vec(), 1)
    }
}

async fn store_with_instances(backend: Backend) -> (TestDb, Store, [(i64, i64); 2]) {
    let db = TestDb::new(backend).await;
    let s = db.store.clone();
    let mut ids = [(0, 0); 2];
    for (n, slot) in ids.iter_mut().enumerate() {
        let (org, user) = s.create_organization("o", format!("o{n}").as_bytes(), "a@x", format!("u{n}").as_bytes()).await.unwrap();
        let new = NewInstance {
            organization_id: org.id,
            user_id: user.id,
            element_key: "bigcommerce".into(),
            name: "shop".into(),
            token_hash: format!("t{n}").into_bytes(),
            tags: vec![],
            events_enabled: false,
            webhook: None,
        };
        *slot = (org.id, s.create_instance(&new, &[], &NoSeal).await.unwrap());
    }
    (db, s, ids)
}

fn call(instance_id: i64, path: &str, at: SystemTime) -> NewCall {
    NewCall {
        instance_id,
        method: "GET".into(),
        path: path.into(),
        query_names: vec!["page".into(), "limit".into()],
        status: Some(200),
        outcome: "answered".into(),
        duration_ms: 3,
        retries: 0,
        at,
    }
}

on_both! {
    async fn calls_are_newest_first_scoped_paged_and_pruned(backend: Backend) {
        let (_db, s, [(org_a, a), (org_b, b)]) = store_with_instances(backend).await;
        let now = SystemTime::now();
        let old = now - Duration::from_secs(8 * 24 * 3600);
        let mut batch: Vec<NewCall> = (0..5).map(|i| call(a, &format!("/orders/{i}"), now)).collect();
        batch.push(call(a, "/old", old));
        batch.push(call(b, "/customers", now));
        batch.push(call(9999, "/gone", now)); // an instance deleted meanwhile: skipped, not an error
        s.record_calls(&batch).await.unwrap();

        let page = s.calls(org_a, a, CallsFrom::Offset(0), 3).await.unwrap();
        assert_eq!(page.iter().map(|c| c.path.as_str()).collect::<Vec<_>>(), ["/old", "/orders/4", "/orders/3"]);
        assert_eq!(page[1].query_names, ["page", "limit"]);
        let next = s.calls(org_a, a, CallsFrom::Below(page[2].id), 10).await.unwrap();
        assert_eq!(next.iter().map(|c| c.path.as_str()).collect::<Vec<_>>(), ["/orders/2", "/orders/1", "/orders/0"]);
        assert!(s.calls(org_b, a, CallsFrom::Offset(0), 10).await.unwrap().is_empty(), "another organization sees nothing");

        // Older than 7 days goes; then each instance keeps its newest 2.
        assert_eq!(s.prune_calls(Duration::from_secs(7 * 24 * 3600), 100).await.unwrap(), 1);
        assert_eq!(s.prune_calls(Duration::from_secs(7 * 24 * 3600), 2).await.unwrap(), 3);
        let left = s.calls(org_a, a, CallsFrom::Offset(0), 10).await.unwrap();
        assert_eq!(left.iter().map(|c| c.path.as_str()).collect::<Vec<_>>(), ["/orders/4", "/orders/3"]);
        assert_eq!(s.calls(org_b, b, CallsFrom::Offset(0), 10).await.unwrap().len(), 1);
    }
}

on_both! {
    async fn idempotency_records_claim_replay_conflict_and_expire(backend: Backend) {
        let (_db, s, [(org, inst), _]) = store_with_instances(backend).await;
        let scope = IdempotencyScope { organization_id: org, instance_id: inst, key: "k1" };
        let day = Duration::from_secs(24 * 3600);
        let lease = Duration::from_secs(300);
        assert!(matches!(s.idempotency_begin(&scope, b"fp", day, lease).await.unwrap(), IdempotencyBegin::Started));
        assert!(matches!(s.idempotency_begin(&scope, b"fp", day, lease).await.unwrap(), IdempotencyBegin::InFlight));
        assert!(matches!(s.idempotency_begin(&scope, b"other", day, lease).await.unwrap(), IdempotencyBegin::Mismatch));
        let answer = StoredAnswer { status: 200, body: b"{\"id\":1}".to_vec(), is_error: false };
        s.idempotency_finish(&scope, &answer).await.unwrap();
        match s.idempotency_begin(&scope, b"fp", day, lease).await.unwrap() {
            IdempotencyBegin::Replay(a) => assert_eq!((a.status, a.body, a.is_error), (200, answer.body.clone(), false)),
            other => panic!("{other:?}"),
        }

        // Released keys can be claimed again; an abandoned in-flight claim is taken over after its lease.
        let k2 = IdempotencyScope { key: "k2", ..scope.clone() };
        assert!(matches!(s.idempotency_begin(&k2, b"fp", day, lease).await.unwrap(), IdempotencyBegin::Started));
        s.idempotency_release(&k2).await.unwrap();
        assert!(matches!(s.idempotency_begin(&k2, b"fp", day, Duration::ZERO).await.unwrap(), IdempotencyBegin::Started));
        assert!(matches!(s.idempotency_begin(&k2, b"fp", day, Duration::ZERO).await.unwrap(), IdempotencyBegin::Started));

        // A record whose time is up is pruned and the key starts afresh.
        let k3 = IdempotencyScope { key: "k3", ..scope.clone() };
        assert!(matches!(s.idempotency_begin(&k3, b"fp", Duration::ZERO, lease).await.unwrap(), IdempotencyBegin::Started));
        assert!(s.prune_idempotency().await.unwrap() >= 1);
        assert!(matches!(s.idempotency_begin(&k3, b"fp", day, lease).await.unwrap(), IdempotencyBegin::Started));
    }
}
