#![recursion_limit = "256"]

//! The call log's and the event log's caps, the size of a stored event, and a
//! SQLite file giving pruned space back, on both backends (see support/mod.rs).

use std::time::{Duration, SystemTime};

use serde_json::json;
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
        .map(|c| delivered(c, None))
        .collect();
    s.finish_deliveries(&outcomes).await.unwrap();
}

/// The claim's first attempt answered 200; `raw` is the record it read, if any.
fn delivered(c: &ClaimedDelivery, raw: Option<&str>) -> DeliveryOutcome {
    DeliveryOutcome {
        event_row: c.event_row,
        lease_until: c.lease_until,
        state: DeliveryState::Delivered,
        attempts: 1,
        next_attempt_at: None,
        last_status: Some(200),
        last_error: None,
        attempted_at: 1_000,
        stop_url: None,
        raw: raw.map(str::to_owned),
    }
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

/// A BigCommerce order as its API gives it (field names from the v2 orders
/// resource), about 2.4 KB of JSON.
fn order(id: usize) -> serde_json::Value {
    let address = json!({
        "first_name": "Jane", "last_name": "Doe", "company": "Acme Widgets Ltd", "street_1": "12 Harbour Road",
        "street_2": "Unit 4", "city": "Austin", "state": "Texas", "zip": "78701", "country": "United States",
        "country_iso2": "US", "phone": "+1 512 555 0100", "email": format!("jane.doe{id}@example.com"), "form_fields": []
    });
    json!({
        "id": id, "customer_id": id % 97, "date_created": "Tue, 20 Nov 2012 00:00:00 +0000",
        "date_modified": "Tue, 20 Nov 2012 00:00:00 +0000", "date_shipped": "", "status_id": 11,
        "status": "Awaiting Fulfillment", "subtotal_ex_tax": "79.0000", "subtotal_inc_tax": "79.0000",
        "subtotal_tax": "0.0000", "base_shipping_cost": "0.0000", "shipping_cost_ex_tax": "0.0000",
        "shipping_cost_inc_tax": "0.0000", "shipping_cost_tax": "0.0000", "shipping_cost_tax_class_id": 2,
        "base_handling_cost": "0.0000", "handling_cost_ex_tax": "0.0000", "handling_cost_inc_tax": "0.0000",
        "handling_cost_tax": "0.0000", "handling_cost_tax_class_id": 2, "base_wrapping_cost": "0.0000",
        "wrapping_cost_ex_tax": "0.0000", "wrapping_cost_inc_tax": "0.0000", "wrapping_cost_tax": "0.0000",
        "wrapping_cost_tax_class_id": 3, "total_ex_tax": "79.0000", "total_inc_tax": "79.0000", "total_tax": "0.0000",
        "items_total": 1, "items_shipped": 0, "payment_method": "Cash", "payment_provider_id": null,
        "payment_status": "", "refunded_amount": "0.0000", "order_is_digital": false, "store_credit_amount": "0.0000",
        "gift_certificate_amount": "0.0000", "ip_address": "12.345.678.910", "ip_address_v6": "",
        "geoip_country": "United States", "geoip_country_iso2": "US", "currency_id": 1, "currency_code": "USD",
        "currency_exchange_rate": "1.0000000000", "default_currency_id": 1, "default_currency_code": "USD",
        "staff_notes": "", "customer_message": "", "discount_amount": "0.0000", "coupon_discount": "0.0000",
        "shipping_address_count": 1, "is_deleted": false, "ebay_order_id": "0",
        "cart_id": format!("{id:08x}-8f3a-4c5e-9a51-3a0d2b6c7e11"), "billing_address": address,
        "is_email_opt_in": false, "credit_card_type": null, "order_source": "manual", "channel_id": 1,
        "external_source": null,
        "products": {"url": format!("https://api.bigcommerce.com/stores/abc123/v2/orders/{id}/products"), "resource": format!("/orders/{id}/products")},
        "shipping_addresses": {"url": format!("https://api.bigcommerce.com/stores/abc123/v2/orders/{id}/shippingaddresses"), "resource": format!("/orders/{id}/shippingaddresses")},
        "coupons": {"url": format!("https://api.bigcommerce.com/stores/abc123/v2/orders/{id}/coupons"), "resource": format!("/orders/{id}/coupons")},
        "external_id": null, "external_merchant_id": null, "tax_provider_id": "BasicTaxProvider",
        "customer_locale": "en", "external_order_id": "", "store_default_currency_code": "USD",
        "store_default_to_transactional_exchange_rate": "1.0000000000", "custom_status": "Awaiting Fulfillment"
    })
}

/// A polled order's event as the poller makes it: `provider_data` the record,
/// `raw` the record with `objectType` put in, one entry in `notified_data`.
fn polled(org: i64, instance: i64, n: usize) -> NewEvent {
    let mut record = order(n);
    let provider_data = record.to_string();
    record.as_object_mut().unwrap().insert("objectType".into(), json!("orders"));
    NewEvent {
        event_id: uuid_like(n),
        source: "polling".into(),
        notified_data: json!([{"eventType": "UPDATED", "objectType": "orders", "objectId": n.to_string(),
            "date": "2026-01-01T00:00:00.000Z"}])
        .to_string(),
        ..event(org, instance, "", provider_data, record.to_string())
    }
}

fn uuid_like(n: usize) -> String {
    format!("{:08x}-{:04x}-4{:03x}-a{:03x}-{:012x}", n.wrapping_mul(2_654_435_761) as u32, n % 65_536, n % 4096, n % 4096, n)
}

on_both! {
    async fn a_polled_record_is_stored_once_and_read_back_whole(backend: Backend) {
        let db = EmptyDb::new(backend).await;
        let store = Store::open(&db.url).await.unwrap();
        let s = &store;
        let (org, ids) = instances(s, 1).await;
        const N: usize = 2_000;
        let events: Vec<NewEvent> = (0..N).map(|n| polled(org, ids[0], n)).collect();
        let record_bytes = events[0].provider_data.len();
        let before = s.database_bytes().await.unwrap();
        for chunk in events.chunks(200) {
            s.insert_events(chunk, 0).await.unwrap();
        }
        let queued = (s.database_bytes().await.unwrap() - before) / N as i64;
        deliver_all_but(s, &[]).await;
        let per_event = (s.database_bytes().await.unwrap() - before) / N as i64;
        // PostgreSQL keeps the row versions an update replaced until (auto)vacuum
        // makes their space reusable: the live rows are measured after VACUUM FULL.
        // SQLite updates in place, and the file's growth is the live size.
        let live = match backend {
            Backend::Sqlite => per_event,
            Backend::Postgres => {
                // VACUUM FULL keeps replaced row versions that a snapshot open
                // elsewhere in the cluster may still see (other tests run beside this
                // one): vacuum again, for up to 20 s, until they are gone.
                let mut c = sqlx::PgConnection::connect(&db.url).await.unwrap();
                let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
                let live = loop {
                    c.execute("VACUUM FULL events, event_deliveries").await.unwrap();
                    let bytes: i64 = sqlx::query_scalar(
                        "SELECT (pg_total_relation_size('events') + pg_total_relation_size('event_deliveries'))::bigint",
                    )
                    .fetch_one(&mut c)
                    .await
                    .unwrap();
                    if bytes / (N as i64) < record_bytes as i64 || std::time::Instant::now() > deadline {
                        break bytes / N as i64;
                    }
                    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
                };
                c.close().await.unwrap();
                live
            }
        };
        println!(
            "{backend:?}: a {record_bytes}-byte record's event costs {queued} bytes queued, {per_event} delivered, {live} live"
        );
        // Stored whole twice (the record, and the record with objectType), an event
        // cost over twice its record.
        assert!(live < record_bytes as i64, "{live} bytes per event of a {record_bytes}-byte record");

        // The log and the delivery read the same texts as were given.
        let q = EventQuery { organization_id: org, instance_id: None, before: None, offset: 0, limit: 5 };
        for row in s.events(&q).await.unwrap() {
            let given = &events[row.event_id.rsplit('-').next().map(|h| usize::from_str_radix(h, 16).unwrap()).unwrap()];
            assert_eq!((&row.provider_data, &row.raw), (&given.provider_data, &given.raw));
        }
        // A queued copy: what the worker claims is `raw` whole.
        let mut unicode = polled(org, ids[0], N);
        unicode.provider_data = unicode.provider_data.replacen("Jane", "Zoë 😀", 1);
        unicode.raw = unicode.raw.replacen("Jane", "Zoë 😀", 1).replacen("\"objectType\"", "\"objectType😀\"", 1);
        let short = NewEvent { event_id: "short".into(), ..event(org, ids[0], "", "{\"a\":1}".into(), "{\"a\":1,\"b\":2}".into()) };
        s.insert_events(&[unicode.clone(), short.clone()], 0).await.unwrap();
        let claimed = s.claim_deliveries(1_000, 2_000, 10).await.unwrap();
        assert_eq!(claimed.iter().map(|c| c.raw.as_str()).collect::<Vec<_>>(), [unicode.raw.as_str(), short.raw.as_str()]);
        // A webhook's record read at delivery replaces `raw` whole.
        let record = json!({"id": 1, "objectType": "orders"}).to_string();
        s.finish_deliveries(&[delivered(&claimed[0], Some(&record))]).await.unwrap();
        assert_eq!(s.event(org, None, &unicode.event_id).await.unwrap().unwrap().raw, unicode.raw, "only RECEIVED events take a record");
        let webhook = NewEvent { event_id: "hook".into(), status: "RECEIVED".into(), ..polled(org, ids[0], N + 1) };
        s.insert_events(&[webhook], 0).await.unwrap();
        let claimed = s.claim_deliveries(1_000, 2_000, 10).await.unwrap();
        let hook = claimed.iter().find(|c| c.event_id == "hook").unwrap();
        s.finish_deliveries(&[delivered(hook, Some(&record))]).await.unwrap();
        assert_eq!(s.event(org, None, "hook").await.unwrap().unwrap().raw, record);

        // A vendor webhook call's event (one statement per batch on PostgreSQL):
        // payloads long enough to be deflated and spliced read back whole too.
        let calls: Vec<IncomingEvent> = [N + 2, N + 3]
            .iter()
            .map(|&n| IncomingEvent { event: NewEvent { status: "RECEIVED".into(), ..polled(org, ids[0], n) }, digest: Some(vec![n as u8]) })
            .collect();
        let answers = s.insert_incoming_durably(&calls, 0, 1_000, 0).await.unwrap();
        for (call, id) in calls.iter().zip(&answers) {
            let row = s.event(org, None, id).await.unwrap().unwrap();
            assert_eq!((&row.provider_data, &row.raw), (&call.event.provider_data, &call.event.raw));
        }
        store.close().await;
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
