//! Review tests of the stored listing position (`event_poll_marks.resume`): what
//! happens to it when the resource's configuration changes, and when a slow poll
//! commits after another poll finished the listing.

mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use common::*;
use serde_json::{json, Value};
use switchyard_events::poller::parse_poller_configuration;
use switchyard_events::{BoxFuture, BoxFutureHub, HubError, HubLister, HubPage, Poller, PollerSettings};
use switchyard_store::{EventQuery, InstanceRow};

/// Orders with a status, listed by id with offset `nextPage` tokens; the `where`
/// is `min_date_modified='<rfc2822>'`, optionally `AND status_id=<n>`.
#[derive(Default, Clone)]
struct Shop {
    records: Arc<Mutex<Vec<Value>>>,
    /// While set, the next list call waits until it is notified (then it clears).
    hold: Arc<Mutex<Option<Arc<tokio::sync::Notify>>>>,
}

fn rfc2822(t: DateTime<Utc>) -> String {
    t.format("%a, %d %b %Y %H:%M:%S %z").to_string()
}

impl Shop {
    fn put(&self, id: i64, status: i64, modified: DateTime<Utc>) {
        let mut records = self.records.lock().unwrap();
        records.retain(|r| r["id"] != id);
        records.push(json!({"id": id, "status_id": status, "date_created": rfc2822(modified), "date_modified": rfc2822(modified)}));
        records.sort_by_key(|r| r["id"].as_i64());
    }
}

impl HubLister for Shop {
    fn list_page<'a>(&'a self, _instance: &'a InstanceRow, _path: &'a str, query: &'a [(String, String)]) -> BoxFutureHub<'a> {
        Box::pin(async move {
            let held = self.hold.lock().unwrap().take();
            if let Some(n) = held {
                n.notified().await;
            }
            let get = |k: &str| query.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
            let clause = get("where").unwrap();
            let (date, status) = match clause.split_once(" AND status_id=") {
                Some((d, s)) => (d.to_owned(), Some(s.parse::<i64>().unwrap())),
                None => (clause.clone(), None),
            };
            let since =
                DateTime::parse_from_rfc2822(date.strip_prefix("min_date_modified='").unwrap().strip_suffix('\'').unwrap()).unwrap();
            let size: usize = get("pageSize").unwrap().parse().unwrap();
            let offset: usize = get("nextPage").map(|t| t.parse().unwrap()).unwrap_or(0);
            let matching: Vec<Value> = self
                .records
                .lock()
                .unwrap()
                .iter()
                .filter(|r| DateTime::parse_from_rfc2822(r["date_modified"].as_str().unwrap()).unwrap() >= since)
                .filter(|r| status.is_none_or(|s| r["status_id"].as_i64() == Some(s)))
                .cloned()
                .collect();
            let page: Vec<Value> = matching.iter().skip(offset).take(size).cloned().collect();
            let next_page = (offset + size < matching.len()).then(|| (offset + size).to_string());
            Ok(HubPage { records: page, next_page, vendor_records: Vec::new() })
        })
    }

    fn get_record<'a>(
        &'a self,
        _org: i64,
        _instance: i64,
        _object: &'a str,
        _id: &'a str,
    ) -> BoxFuture<'a, Result<Option<Value>, HubError>> {
        Box::pin(async { Ok(None) })
    }
}

fn orders(where_suffix: &str) -> switchyard_events::poller::ResourcePoll {
    let text = format!(
        r#"{{"orders":{{"url":"/hubs/ecommerce/orders?where=min_date_modified='${{date:EEE, dd MMM yyyy HH:mm:ss Z}}'{where_suffix}",
        "idField":"id","datesConfiguration":{{"updatedDateField":"date_modified","updatedDateFormat":"EEE, dd MMM yyyy HH:mm:ss Z",
        "createdDateField":"date_created","createdDateFormat":"EEE, dd MMM yyyy HH:mm:ss Z"}}}}}}"#
    );
    parse_poller_configuration(&text).unwrap().remove(0)
}

fn short_poller(s: &Setup, shop: &Shop) -> Poller {
    let settings = PollerSettings { overlap: Duration::from_secs(60), page_size: 3, max_pages: 2, ..Default::default() };
    Poller::new(s.ctx.clone(), Arc::new(shop.clone()), settings, None)
}

/// Two pollers (2 pages of 3) on one instance whose mark is 10 minutes old, and 15
/// orders changed since (5 pages): (instance, vendor, A, B, the orders resource).
async fn two_pollers_on_a_backlog(
    s: &Setup,
) -> (InstanceRow, Shop, Poller, Poller, switchyard_events::poller::ResourcePoll) {
    let instance = s.instance(&[("event.notification.enabled", "true"), ("event.objects", "orders")]).await;
    let shop = Shop::default();
    let (a, b) = (short_poller(s, &shop), short_poller(s, &shop));
    let now = Utc::now();
    s.ctx.store.poll_mark(instance.id, "orders", (now - chrono::Duration::minutes(10)).timestamp() * 1000).await.unwrap();
    let old = now - chrono::Duration::minutes(9);
    for id in 1..=15 {
        shop.put(id, 1, if id == 15 { now - chrono::Duration::seconds(1) } else { old });
    }
    (instance, shop, a, b, orders(""))
}

/// B reads pages 3-5 (the listing ends, no position left), then lists afresh from
/// the new mark (the old window's pairs are cut).
async fn read_to_the_end_and_again(
    s: &Setup,
    b: &Poller,
    instance: &InstanceRow,
    res: &switchyard_events::poller::ResourcePoll,
) {
    assert_eq!(b.poll_resource(instance, res, None).await.unwrap(), 6, "pages 3-4");
    assert_eq!(b.poll_resource(instance, res, None).await.unwrap(), 3, "page 5: the listing ends");
    assert!(s.ctx.store.poll_position(instance.id, "orders", 0).await.unwrap().resume.is_none());
    assert_eq!(b.poll_resource(instance, res, None).await.unwrap(), 0, "a fresh listing from the new mark");
}

/// Starts a poll by `poller` whose first vendor call waits until the returned gate
/// is notified; answers once it waits.
async fn held_poll(
    shop: &Shop,
    poller: &Poller,
    instance: &InstanceRow,
    res: &switchyard_events::poller::ResourcePoll,
) -> (Arc<tokio::sync::Notify>, tokio::task::JoinHandle<Result<usize, switchyard_events::EventsError>>) {
    let gate = Arc::new(tokio::sync::Notify::new());
    *shop.hold.lock().unwrap() = Some(gate.clone());
    let late = {
        let (poller, instance, res) = (poller.clone(), instance.clone(), res.clone());
        tokio::spawn(async move { poller.poll_resource(&instance, &res, None).await })
    };
    until(Duration::from_secs(5), "the poll to wait on the vendor", || shop.hold.lock().unwrap().is_none()).await;
    (gate, late)
}

/// The object ids announced more than once, with how many times.
async fn announced_twice(s: &Setup) -> Vec<(String, usize)> {
    let mut twice: Vec<(String, usize)> = announced(s).await.into_iter().filter(|(_, n)| *n > 1).collect();
    twice.sort();
    twice
}

/// Object id -> how many events announce it.
async fn announced(s: &Setup) -> HashMap<String, usize> {
    let q = EventQuery { organization_id: s.org, instance_id: None, before: None, offset: 0, limit: 10_000 };
    let mut out = HashMap::new();
    for e in s.ctx.store.events(&q).await.unwrap() {
        let n: Value = serde_json::from_str(&e.notified_data).unwrap();
        *out.entry(n[0]["objectId"].as_str().unwrap().to_owned()).or_insert(0) += 1;
    }
    out
}

/// A listing of `where ... AND status_id=1` is cut short; the user then widens the
/// resource to every status. The stored `nextPage` belongs to the old query: going on
/// with it under the new one skips the new listing's first pages, and once that
/// listing ends the mark passes them, so those changes are never announced.
#[tokio::test]
async fn a_stored_position_is_not_carried_over_to_a_changed_configuration() {
    let s = setup().await;
    let instance = s.instance(&[("event.notification.enabled", "true"), ("event.objects", "orders")]).await;
    let shop = Shop::default();
    let p = short_poller(&s, &shop);
    let now = Utc::now();
    let ten_min_ago = (now - chrono::Duration::minutes(10)).timestamp() * 1000;
    s.ctx.store.poll_mark(instance.id, "orders", ten_min_ago).await.unwrap();
    // Status 2 orders first by id (changed 9 minutes ago), then 9 of status 1, the
    // last one changed a second ago.
    let old = now - chrono::Duration::minutes(9);
    for id in 1..=6 {
        shop.put(id, 2, old);
    }
    for id in 7..=15 {
        shop.put(id, 1, if id == 15 { now - chrono::Duration::seconds(1) } else { old });
    }
    let narrow = orders(" AND status_id=1");
    assert_eq!(p.poll_resource(&instance, &narrow, None).await.unwrap(), 6, "pages 1-2 of status 1");
    assert!(s.ctx.store.poll_position(instance.id, "orders", 0).await.unwrap().resume.is_some());

    // The configuration changes: every status.
    let wide = orders("");
    for _ in 0..5 {
        p.poll_resource(&instance, &wide, None).await.unwrap();
    }
    let got = announced(&s).await;
    let missing: Vec<i64> = (1..=15).filter(|id| !got.contains_key(&id.to_string())).collect();
    assert!(missing.is_empty(), "never announced: {missing:?} (announced {got:?})");
}

/// Two pollers on one instance (a poll longer than the interval is claimed again by
/// another node): A reads the position, then waits on the vendor; meanwhile B ends
/// the listing and polls once more (the pairs of the old window are pruned). A's
/// late commit writes its stale position back, and the next poll goes on with an
/// old listing whose pairs are gone: changes announced twice.
#[tokio::test]
async fn a_late_poll_does_not_bring_back_a_finished_listing() {
    let s = setup().await;
    let (instance, shop, a, b, res) = two_pollers_on_a_backlog(&s).await;
    assert_eq!(b.poll_resource(&instance, &res, None).await.unwrap(), 6, "pages 1-2");

    // A starts from page 3 and waits on the vendor.
    let (gate, late) = held_poll(&shop, &a, &instance, &res).await;

    read_to_the_end_and_again(&s, &b, &instance, &res).await;

    gate.notify_one();
    let late_stored = late.await.unwrap().unwrap();
    let position = s.ctx.store.poll_position(instance.id, "orders", 0).await.unwrap();
    let mut stored_later = Vec::new();
    for _ in 0..3 {
        stored_later.push(b.poll_resource(&instance, &res, None).await.unwrap());
    }
    let twice = announced_twice(&s).await;
    assert!(
        position.resume.is_none() && twice.is_empty(),
        "the late poll stored {late_stored} and left the position {:?}; later polls stored {stored_later:?}; announced more than once: {twice:?}",
        position.resume
    );
}

/// Without `datesConfiguration` every unseen id is CREATED and the mark follows the
/// clock: an unfinished listing keeps the mark, and once it ends the mark is when it
/// began (not later: changes made while it ran are in the next window).
#[tokio::test]
async fn a_dateless_resource_drains_its_backlog_once_and_its_mark_is_when_the_listing_began() {
    let s = setup().await;
    let instance = s.instance(&[("event.notification.enabled", "true"), ("event.objects", "orders")]).await;
    let shop = Shop::default();
    let p = short_poller(&s, &shop);
    let text = r#"{"orders":{"url":"/hubs/ecommerce/orders?where=min_date_modified='${date:EEE, dd MMM yyyy HH:mm:ss Z}'"}}"#;
    let res = parse_poller_configuration(text).unwrap().remove(0);
    assert!(res.updated.is_none());
    let now = Utc::now();
    let mark = (now - chrono::Duration::minutes(10)).timestamp() * 1000;
    s.ctx.store.poll_mark(instance.id, "orders", mark).await.unwrap();
    for id in 1..=14 {
        shop.put(id, 1, now - chrono::Duration::minutes(5));
    }
    let began = switchyard_events::now_ms();
    let mut stored = Vec::new();
    for _ in 0..2 {
        stored.push(p.poll_resource(&instance, &res, None).await.unwrap());
        assert_eq!(s.ctx.store.poll_mark(instance.id, "orders", 0).await.unwrap(), mark, "the mark stays while the listing is unfinished");
    }
    // A change while the listing runs (after it began): in the next window.
    tokio::time::sleep(Duration::from_millis(20)).await;
    shop.put(100, 1, Utc::now());
    stored.push(p.poll_resource(&instance, &res, None).await.unwrap());
    let after = s.ctx.store.poll_mark(instance.id, "orders", 0).await.unwrap();
    assert!(after >= began && after <= began + 1000, "the mark is when the listing began: {after} vs {began}");
    for _ in 0..3 {
        stored.push(p.poll_resource(&instance, &res, None).await.unwrap());
    }
    let got = announced(&s).await;
    assert_eq!(got.len(), 15, "{stored:?} {got:?}");
    assert!(got.values().all(|n| *n == 1), "{got:?}");
}

/// Review (c5260f7): as `a_late_poll_does_not_bring_back_a_finished_listing`, but A
/// begins a fresh listing (no stored position) and waits on its first page; B then
/// cuts the listing short, drains it and polls once more, so the position is empty
/// again when A commits. The compare-and-set sees "empty" then as "empty" when A
/// began (ABA) and A's stale position is stored: the next polls read again an old
/// listing that had ended.
#[tokio::test]
async fn a_late_fresh_poll_does_not_bring_back_a_finished_listing() {
    let s = setup().await;
    let (instance, shop, a, b, res) = two_pollers_on_a_backlog(&s).await;

    // A begins a fresh listing and waits on the vendor for its first page.
    let (gate, late) = held_poll(&shop, &a, &instance, &res).await;

    assert_eq!(b.poll_resource(&instance, &res, None).await.unwrap(), 6, "pages 1-2");
    read_to_the_end_and_again(&s, &b, &instance, &res).await;

    gate.notify_one();
    let late_stored = late.await.unwrap().unwrap();
    let position = s.ctx.store.poll_position(instance.id, "orders", 0).await.unwrap();
    let mut stored_later = Vec::new();
    for _ in 0..3 {
        stored_later.push(b.poll_resource(&instance, &res, None).await.unwrap());
    }
    let twice = announced_twice(&s).await;
    assert!(twice.is_empty(), "announced more than once: {twice:?}");
    assert!(
        position.resume.is_none(),
        "the late poll stored {late_stored} and left the position {:?}; later polls stored {stored_later:?}",
        position.resume
    );
}

/// Review (38c9a58): a listing cut short goes on at the next poll, so its pages are
/// read over several polls (intervals apart, each longer than the overlap). A record
/// on a page read by the first poll that changes before the listing ends is not on
/// the pages still to read (the vendor lists by id), yet the mark moves to the
/// latest date the whole listing read: past that change by more than the overlap.
/// The next fresh window starts after it, and the change is never announced.
/// (Here the overlap is 1 s and the polls are 2 s apart.)
#[tokio::test]
async fn a_change_to_a_page_already_read_while_the_listing_goes_on_is_announced() {
    let s = setup().await;
    let instance = s.instance(&[("event.notification.enabled", "true"), ("event.objects", "orders")]).await;
    let shop = Shop::default();
    let settings = PollerSettings { overlap: Duration::from_secs(1), page_size: 3, max_pages: 2, ..Default::default() };
    let p = Poller::new(s.ctx.clone(), Arc::new(shop.clone()), settings, None);
    let res = orders("");
    let now = Utc::now();
    s.ctx.store.poll_mark(instance.id, "orders", (now - chrono::Duration::minutes(10)).timestamp() * 1000).await.unwrap();
    for id in 1..=15 {
        shop.put(id, 1, now - chrono::Duration::minutes(9));
    }
    let mut stored = vec![p.poll_resource(&instance, &res, None).await.unwrap()]; // ids 1-6
    tokio::time::sleep(Duration::from_millis(2100)).await;
    shop.put(2, 1, Utc::now()); // order 2 changes after its page was read
    tokio::time::sleep(Duration::from_millis(2100)).await;
    stored.push(p.poll_resource(&instance, &res, None).await.unwrap()); // ids 7-12
    tokio::time::sleep(Duration::from_millis(2100)).await;
    shop.put(15, 1, Utc::now()); // and order 15 just before the last page is read
    stored.push(p.poll_resource(&instance, &res, None).await.unwrap()); // ids 13-15: the end
    for _ in 0..3 {
        stored.push(p.poll_resource(&instance, &res, None).await.unwrap());
    }
    let got = announced(&s).await;
    assert_eq!(got.get("2"), Some(&2), "order 2 created, then changed: stored per poll {stored:?}, announced {got:?}");
}

/// Polling turned off while a poll is under way (the marks forgotten): that poll
/// stores nothing, a resource polled after the forget is not polled at all, and no
/// mark comes back, so turning polling on again starts from then. A poll asked for
/// directly starts the marks itself.
#[tokio::test]
async fn a_poll_under_way_when_polling_is_turned_off_brings_no_mark_back() {
    let s = setup().await;
    let (instance, shop, a, _, res) = two_pollers_on_a_backlog(&s).await;
    let (gate, late) = held_poll(&shop, &a, &instance, &res).await;
    s.ctx.store.forget_polls(&[instance.id]).await.unwrap();
    gate.notify_one();
    assert_eq!(late.await.unwrap().unwrap(), 0, "its commit finds no mark");
    assert_eq!(a.poll_resource(&instance, &res, None).await.unwrap(), 0, "not started: not polled");
    assert!(s.ctx.store.started_poll_position(instance.id, "orders").await.unwrap().is_none(), "no mark came back");
    assert!(announced(&s).await.is_empty(), "{:?}", announced(&s).await);

    a.poll_instance(&instance).await.unwrap();
    let started = s.ctx.store.started_poll_position(instance.id, "orders").await.unwrap().expect("started by the direct poll");
    assert!(started.high_water > Utc::now().timestamp_millis() - 60_000, "from now, not from the forgotten mark");
}
