//! The call log's and the event log's caps, and a SQLite file giving pruned
//! space back, on both backends (see support/mod.rs).

use std::time::{Duration, SystemTime};

use sqlx::{Connection, Executor, SqliteConnection};
use switchyard_store::*;

#[macro_use]
mod support;
use support::{Backend, EmptyDb, TestDb};

struct NoSeal;
impl Sealer for NoSeal {
    fn seal(&self, _: i64, _: &str, p: &str) -> (Vec<u8>, u32) {
        (p.as_bytes().to_vec(), 1)
    }
}

/// An organization with `n` instances: (organization id, instance ids).
async fn instances(s: &Store, n: usize) -> (i64, Vec<i64>) {
    let (org, user) = s.create_organization("o", b"o", "a@x", b"u").await.unwrap();
    let mut ids = Vec::new();
    for i in 0..n {
        let new = NewInstance {
            organization_id: org.id,
            user_id: user.id,
            element_key: "bigcommerce".into(),
            name: "shop".into(),
            token_hash: format!("t{i}").into_bytes(),
            tags: vec![],
            events_enabled: true,
            webhook: None,
        };
        ids.push(s.create_instance(&new, &[], &NoSeal).await.unwrap());
    }
    (org.id, ids)
}

fn event(org: i64, instance: i64, id: &str, provider_data: String, raw: String) -> NewEvent {
    NewEvent {
        event_id: id.into(),
        organization_id: org,
        instance_id: instance,
        element_key: "bigcommerce".into(),
        source: "polling".into(),
        status: "NEW".into(),
        event_date: "2026-01-01T00:00:00.000Z".into(),
        provider_data,
        notified_data: "[]".into(),
        raw,
    }
}

/// Delivers every pending event but those named in `keep_pending`.
async fn deliver_all_but(s: &Store, keep_pending: &[&str]) {
    loop {
        let claimed = s.claim_deliveries(1_000, 2_000, 500).await.unwrap();
        if claimed.is_empty() {
            return;
        }
        deliver(s, &claimed, keep_pending).await;
    }
}

async fn deliver(s: &Store, claimed: &[ClaimedDelivery], keep_pending: &[&str]) {
    let outcomes: Vec<DeliveryOutcome> = claimed
        .iter()
        .filter(|c| !keep_pending.contains(&c.event_id.as_str()))
        .map(|c| DeliveryOutcome {
            event_row: c.event_row,
            lease_until: c.lease_until,
            state: DeliveryState::Delivered,
            attempts: 1,
            next_attempt_at: None,
            last_status: Some(200),
            last_error: None,
            attempted_at: 1_000,
            stop_url: None,
            raw: None,
        })
        .collect();
    s.finish_deliveries(&outcomes).await.unwrap();
}

async fn event_ids(s: &Store, org: i64) -> Vec<String> {
    let q = EventQuery { organization_id: org, instance_id: None, before: None, offset: 0, limit: 100 };
    let mut ids: Vec<String> = s.events(&q).await.unwrap().into_iter().map(|e| e.event_id).collect();
    ids.reverse();
    ids
}

on_both! {
    async fn event_caps_take_the_oldest_finished_first_and_never_a_pending_one(backend: Backend) {
        let db = TestDb::new(backend).await;
        let s = &db.store;
        let (org, ids) = instances(s, 2).await;
        let (a, b) = (ids[0], ids[1]);
        let order = [(a, "a1"), (a, "a2"), (b, "b1"), (a, "a3"), (a, "a4"), (b, "b2"), (a, "a5"), (a, "a6"), (b, "b3")];
        let events: Vec<NewEvent> = order.iter().map(|(i, id)| event(org, *i, id, "{}".into(), "{}".into())).collect();
        s.insert_events(&events, 0).await.unwrap();
        // The oldest of each instance stays pending (its receiver is down).
        deliver_all_but(s, &["a1", "b1"]).await;

        // Per instance: a holds 6 of at most 4; a1 is pending, so a2 and a3 go.
        assert_eq!(s.prune_events_over(100, 4, 1).await.unwrap(), 2);
        assert_eq!(event_ids(s, org).await, ["a1", "b1", "a4", "b2", "a5", "a6", "b3"]);
        // In all: 7 of at most 5; the two oldest finished go, whatever their instance.
        assert_eq!(s.prune_events_over(5, 4, 1).await.unwrap(), 2);
        assert_eq!(event_ids(s, org).await, ["a1", "b1", "a5", "a6", "b3"]);
        // A cap below the pending events: every finished one goes, the pending stay.
        assert_eq!(s.prune_events_over(1, 1, 2).await.unwrap(), 3);
        assert_eq!(event_ids(s, org).await, ["a1", "b1"]);
        assert_eq!(s.prune_events_over(1, 1, 2).await.unwrap(), 0);
        let a1 = s.event(org, None, "a1").await.unwrap().unwrap();
        assert_eq!(a1.delivery_state, "pending", "still queued, so still delivered later");
    }
}

fn call(instance_id: i64, n: usize, path_len: usize) -> NewCall {
    NewCall {
        instance_id,
        method: "GET".into(),
        path: format!("/orders/{n}/{}", "p".repeat(path_len)),
        query_names: vec!["page".into()],
        status: Some(200),
        outcome: "answered".into(),
        duration_ms: 3,
        retries: 0,
        at: SystemTime::now(),
    }
}

on_both! {
    async fn call_caps_keep_the_newest_per_instance_and_in_all(backend: Backend) {
        let db = TestDb::new(backend).await;
        let s = &db.store;
        let (org, ids) = instances(s, 2).await;
        let (a, b) = (ids[0], ids[1]);
        // a0 b1 a2 b3 ... a8 b9: five calls each, interleaved.
        let calls: Vec<NewCall> = (0..10).map(|n| call(if n % 2 == 0 { a } else { b }, n, 0)).collect();
        s.record_calls(&calls).await.unwrap();
        let paths = |rows: Vec<CallRow>| rows.into_iter().map(|c| c.path).collect::<Vec<_>>();
        let week = Duration::from_secs(7 * 86_400);

        assert_eq!(s.prune_calls(week, 4).await.unwrap(), 2, "one per instance over 4");
        assert_eq!(s.prune_calls_over(5).await.unwrap(), 3, "8 left, of at most 5");
        // The oldest went first across instances: a2, b3, a4 (a0 and b1 by the per-instance cap).
        assert_eq!(paths(s.calls(org, a, CallsFrom::Offset(0), 10).await.unwrap()), ["/orders/8/", "/orders/6/"]);
        assert_eq!(paths(s.calls(org, b, CallsFrom::Offset(0), 10).await.unwrap()), ["/orders/9/", "/orders/7/", "/orders/5/"]);
        assert_eq!(s.prune_calls_over(5).await.unwrap(), 0);
        assert_eq!(s.prune_calls(week, 2).await.unwrap(), 1, "b keeps its newest 2");
        assert_eq!(paths(s.calls(org, b, CallsFrom::Offset(0), 10).await.unwrap()), ["/orders/9/", "/orders/7/"]);
    }
}

async fn pragma(url: &str, name: &str) -> i64 {
    let mut c = SqliteConnection::connect(url).await.unwrap();
    let v: i64 = sqlx::query_scalar(&format!("PRAGMA {name}")).fetch_one(&mut c).await.unwrap();
    c.close().await.unwrap();
    v
}

#[tokio::test]
async fn a_sqlite_file_gives_pruned_space_back() {
    let db = EmptyDb::new(Backend::Sqlite).await;
    let s = Store::open(&db.url).await.unwrap();
    assert_eq!(pragma(&db.url, "auto_vacuum").await, 2, "a new file is incremental");
    let (_, ids) = instances(&s, 1).await;
    let calls: Vec<NewCall> = (0..20_000).map(|n| call(ids[0], n, 200)).collect();
    for chunk in calls.chunks(500) {
        s.record_calls(chunk).await.unwrap();
    }
    let file = std::path::PathBuf::from(db.url.strip_prefix("sqlite://").unwrap());
    let (pages, file_bytes) = (pragma(&db.url, "page_count").await, std::fs::metadata(&file).unwrap().len());
    assert_eq!(s.prune_calls_over(100).await.unwrap(), 19_900);
    assert!(pragma(&db.url, "freelist_count").await > pages / 2, "the deleted rows' pages are free");
    let given = s.reclaim_space().await.unwrap();
    let (pages_after, free_after) = (pragma(&db.url, "page_count").await, pragma(&db.url, "freelist_count").await);
    let file_after = std::fs::metadata(&file).unwrap().len();
    println!("20,000 calls: {pages} pages, {file_bytes} bytes; 100 left: {pages_after} pages, {file_after} bytes");
    assert_eq!(free_after, 0);
    assert!(given as i64 > pages / 2 && pages_after < pages / 2, "{pages} pages then {pages_after}");
    assert!(file_after < file_bytes / 2, "the file shrinks: {file_bytes} bytes then {file_after}");
    s.close().await;
}

#[tokio::test]
async fn an_older_small_sqlite_file_is_made_incremental_at_open() {
    let db = EmptyDb::new(Backend::Sqlite).await;
    let mut c = SqliteConnection::connect(&format!("{}?mode=rwc", db.url)).await.unwrap();
    c.execute("PRAGMA journal_mode = WAL; CREATE TABLE before_auto_vacuum (x TEXT)").await.unwrap();
    c.close().await.unwrap();
    assert_eq!(pragma(&db.url, "auto_vacuum").await, 0);
    let s = Store::open(&db.url).await.unwrap();
    assert_eq!(pragma(&db.url, "auto_vacuum").await, 2);
    s.close().await;
}

on_both! {
    async fn what_a_call_and_an_instance_cost(backend: Backend) {
        let db = TestDb::new(backend).await;
        let s = &db.store;
        let before = s.database_bytes().await.unwrap();
        // An instance as BigCommerce's are made: six configuration values, two sealed.
        let (org, user) = s.create_organization("o", b"o", "a@x", b"u").await.unwrap();
        const INSTANCES: usize = 500;
        let mut ids = Vec::new();
        for i in 0..INSTANCES {
            let new = NewInstance {
                organization_id: org.id,
                user_id: user.id,
                element_key: "bigcommerce".into(),
                name: format!("shop {i}"),
                token_hash: format!("{i:064x}").into_bytes(),
                tags: vec!["retail".into()],
                events_enabled: true,
                webhook: None,
            };
            let config = vec![
                ("store.url".to_string(), NewValue::Plain(format!("https://api.bigcommerce.com/stores/s{i:06}/v2"))),
                ("username".to_string(), NewValue::Plain("switchyard".into())),
                ("password".to_string(), NewValue::Secret("0123456789abcdef0123456789abcdef".into())),
                ("event.notification.enabled".to_string(), NewValue::Plain("true".into())),
                ("event.notification.callback.url".to_string(), NewValue::Plain("https://receiver.example/hook".into())),
                ("event.notification.signature.key".to_string(), NewValue::Secret("fedcba9876543210".into())),
            ];
            ids.push(s.create_instance(&new, &config, &NoSeal).await.unwrap());
        }
        let per_instance = (s.database_bytes().await.unwrap() - before) / INSTANCES as i64;
        const CALLS: usize = 20_000;
        let calls: Vec<NewCall> = (0..CALLS)
            .map(|n| NewCall { path: format!("/orders/{}", 100_000 + n), query_names: vec!["page".into(), "limit".into()], ..call(ids[n % INSTANCES], n, 0) })
            .collect();
        let before = s.database_bytes().await.unwrap();
        for chunk in calls.chunks(500) {
            s.record_calls(chunk).await.unwrap();
        }
        let per_call = (s.database_bytes().await.unwrap() - before) / CALLS as i64;
        println!("{backend:?}: {per_instance} bytes per instance, {per_call} bytes per call");
        assert!(per_call < 400 && per_instance < 8_000, "{per_call} bytes per call, {per_instance} per instance");
    }
}
