//! The poller over a real store, listing a vendor through the `HubLister`
//! boundary. The vendor here is a small in-memory record set that honours the
//! BigCommerce `min_date_modified` filter of the element's default configuration
//! (the server's lister, over the real simulator, is tested in the switchyard
//! crate's serve tests).

mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use common::*;
use serde_json::{json, Value};
use switchyard_events::{BoxFuture, BoxFutureHub, HubError, HubLister, HubPage, Poller, PollerSettings};
use switchyard_store::{EventQuery, InstanceRow};

#[derive(Default, Clone)]
struct Vendor {
    records: Arc<Mutex<Vec<Value>>>,
    wheres: Arc<Mutex<Vec<String>>>,
    /// Answers every `nextPage` with 400 (a cursor that expired), or a status of
    /// its own to every list.
    refuse_pages: Arc<Mutex<bool>>,
    fail_with: Arc<Mutex<Option<u16>>>,
    /// Lists every record, whatever the `where` asks.
    ignores_where: Arc<Mutex<bool>>,
}

fn rfc2822(t: DateTime<Utc>) -> String {
    t.format("%a, %d %b %Y %H:%M:%S %z").to_string()
}

impl Vendor {
    fn put(&self, id: i64, created: DateTime<Utc>, modified: DateTime<Utc>) {
        let mut records = self.records.lock().unwrap();
        records.retain(|r| r["id"] != id);
        records.push(json!({"id": id, "date_created": rfc2822(created), "date_modified": rfc2822(modified)}));
        records.sort_by_key(|r| r["id"].as_i64());
    }
}

impl HubLister for Vendor {
    fn list_page<'a>(&'a self, _instance: &'a InstanceRow, path: &'a str, query: &'a [(String, String)]) -> BoxFutureHub<'a> {
        Box::pin(async move {
            if path != "/hubs/ecommerce/orders" {
                return Ok(HubPage::default());
            }
            let get = |k: &str| query.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
            let clause = get("where").ok_or(HubError { status: 400, message: "no where".into() })?;
            self.wheres.lock().unwrap().push(clause.clone());
            let since = clause
                .strip_prefix("min_date_modified='")
                .and_then(|s| s.strip_suffix('\''))
                .and_then(|s| DateTime::parse_from_rfc2822(s).ok())
                .ok_or(HubError { status: 400, message: format!("bad where {clause}") })?;
            if let Some(status) = *self.fail_with.lock().unwrap() {
                return Err(HubError { status, message: "the vendor failed".into() });
            }
            let size: usize = get("pageSize").unwrap().parse().unwrap();
            let bad_token = || HubError { status: 400, message: "bad nextPage".into() };
            let offset: usize = match get("nextPage") {
                Some(_) if *self.refuse_pages.lock().unwrap() => return Err(bad_token()),
                Some(t) => t.parse().map_err(|_| bad_token())?,
                None => 0,
            };
            let matching: Vec<Value> = self
                .records
                .lock()
                .unwrap()
                .iter()
                .filter(|r| *self.ignores_where.lock().unwrap() || DateTime::parse_from_rfc2822(r["date_modified"].as_str().unwrap()).unwrap() >= since)
                .cloned()
                .collect();
            let page: Vec<Value> = matching.iter().skip(offset).take(size).cloned().collect();
            let next_page = (offset + size < matching.len()).then(|| (offset + size).to_string());
            Ok(HubPage { records: page, next_page, vendor_records: Vec::new() })
        })
    }

    fn get_record<'a>(&'a self, _org: i64, _instance: i64, object: &'a str, id: &'a str) -> BoxFuture<'a, Result<Option<Value>, HubError>> {
        Box::pin(async move {
            let records = self.records.lock().unwrap();
            Ok(records.iter().find(|r| object == "orders" && r["id"].as_i64() == id.parse().ok()).cloned())
        })
    }
}

fn poller(s: &Setup, vendor: &Vendor) -> Poller {
    let settings = PollerSettings { overlap: Duration::from_secs(60), page_size: 7, ..Default::default() };
    Poller::new(s.ctx.clone(), Arc::new(vendor.clone()), settings, None)
}

async fn events(s: &Setup) -> Vec<(String, String)> {
    let q = EventQuery { organization_id: s.org, instance_id: None, before: None, offset: 0, limit: 10_000 };
    let mut out: Vec<(String, String)> = s
        .ctx
        .store
        .events(&q)
        .await
        .unwrap()
        .into_iter()
        .map(|e| {
            let n: Value = serde_json::from_str(&e.notified_data).unwrap();
            (n[0]["objectId"].as_str().unwrap().to_owned(), n[0]["eventType"].as_str().unwrap().to_owned())
        })
        .collect();
    out.sort();
    out
}

#[tokio::test]
async fn each_change_is_announced_once_across_restarts() {
    let s = setup().await;
    let instance = s
        .instance(&[
            ("event.notification.enabled", "true"),
            ("event.notification.callback.url", "https://example.com/hook"),
            ("event.objects", "orders"),
        ])
        .await;
    let vendor = Vendor::default();
    let long_ago = Utc::now() - chrono::Duration::days(30);
    for id in 1..=20 {
        vendor.put(id, long_ago, long_ago);
    }

    // The first poll starts the mark: the vendor's history is not announced.
    let p = poller(&s, &vendor);
    assert_eq!(p.poll_instance(&instance).await.unwrap(), 0);
    let clause = vendor.wheres.lock().unwrap()[0].clone();
    assert!(clause.starts_with("min_date_modified='") && clause.ends_with('\''), "{clause}");

    // Changes: 3 created, 2 of the old ones updated; 3 (more than a page of 7) in all 5.
    let now = Utc::now();
    for id in 21..=23 {
        vendor.put(id, now, now);
    }
    vendor.put(2, long_ago, now);
    vendor.put(5, long_ago, now);
    assert_eq!(p.poll_instance(&instance).await.unwrap(), 5);
    let got = events(&s).await;
    let expect: Vec<(String, String)> = [("2", "UPDATED"), ("21", "CREATED"), ("22", "CREATED"), ("23", "CREATED"), ("5", "UPDATED")]
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
    assert_eq!(got, expect);
    // The overlap window lists them again; nothing is repeated.
    assert_eq!(p.poll_instance(&instance).await.unwrap(), 0);

    // A "restart": a new poller over the same database. 100 changes made while it was
    // down (50 created, 50 updated, some created then updated) give one event each.
    drop(p);
    let later = Utc::now() + chrono::Duration::seconds(2);
    for id in 100..150 {
        vendor.put(id, later, later);
    }
    for id in 100..110 {
        vendor.put(id, later, later + chrono::Duration::seconds(1));
    }
    for id in (1..=20).chain(21..=23).chain(200..227) {
        vendor.put(id, if id >= 200 { later } else { long_ago.min(now) }, later);
    }
    let p = poller(&s, &vendor);
    assert_eq!(p.poll_instance(&instance).await.unwrap(), 100);
    assert_eq!(p.poll_instance(&instance).await.unwrap(), 0);
    let got = events(&s).await;
    assert_eq!(got.len(), 105);
    let mut per_object: HashMap<&str, Vec<&str>> = HashMap::new();
    for (id, kind) in &got {
        per_object.entry(id).or_default().push(kind);
    }
    for id in 100..150 {
        assert_eq!(per_object[id.to_string().as_str()], ["CREATED"], "object {id}");
    }
    assert_eq!(per_object["21"], ["CREATED", "UPDATED"]);
    assert_eq!(per_object["7"], ["UPDATED"]);
}

#[tokio::test]
async fn a_late_record_inside_the_overlap_is_still_announced() {
    let s = setup().await;
    let instance = s.instance(&[("event.notification.enabled", "true"), ("event.objects", "orders")]).await;
    let vendor = Vendor::default();
    let p = poller(&s, &vendor);
    assert_eq!(p.poll_instance(&instance).await.unwrap(), 0);
    let now = Utc::now();
    vendor.put(1, now, now);
    assert_eq!(p.poll_instance(&instance).await.unwrap(), 1);
    // A record that becomes visible late, dated 30 s before the newest one seen
    // (a vendor clock or replica lag): inside the 60 s overlap, so not lost.
    let skewed = now - chrono::Duration::seconds(30);
    vendor.put(2, skewed, skewed);
    assert_eq!(p.poll_instance(&instance).await.unwrap(), 1);
    assert_eq!(events(&s).await, [("1".to_string(), "CREATED".to_string()), ("2".to_string(), "CREATED".to_string())]);
}

/// A record dated in the future (a vendor clock ahead of ours, or dates read in
/// the wrong zone) is announced, but the mark never passes our clock, so later
/// changes are still found, and nothing is announced twice. Found by a review: one
/// record six hours ahead silenced polling for six hours, the poll still "ok".
#[tokio::test]
async fn a_record_dated_in_the_future_does_not_silence_later_changes() {
    let s = setup().await;
    let instance = s.instance(&[("event.notification.enabled", "true"), ("event.objects", "orders")]).await;
    let vendor = Vendor::default();
    let p = poller(&s, &vendor);
    assert_eq!(p.poll_instance(&instance).await.unwrap(), 0);
    let ahead = Utc::now() + chrono::Duration::hours(6);
    vendor.put(1, ahead, ahead);
    assert_eq!(p.poll_instance(&instance).await.unwrap(), 1);
    let now = Utc::now();
    vendor.put(2, now, now);
    assert_eq!(p.poll_instance(&instance).await.unwrap(), 1, "a change after the future-dated one is found");
    assert_eq!(p.poll_instance(&instance).await.unwrap(), 0, "and nothing is repeated");
    assert_eq!(events(&s).await, [("1".to_string(), "CREATED".to_string()), ("2".to_string(), "CREATED".to_string())]);
}

#[tokio::test]
async fn a_bad_configuration_is_an_error_naming_the_problem() {
    let s = setup().await;
    let instance = s
        .instance(&[
            ("event.notification.enabled", "true"),
            ("event.poller.configuration", r#"{"orders":{"url":"/hubs/ecommerce/orders?where=x>'${date:kk}'"}}"#),
        ])
        .await;
    let err = poller(&s, &Vendor::default()).poll_instance(&instance).await.unwrap_err().to_string();
    assert!(err.contains("'k' is not supported"), "{err}");
}

/// A vendor whose lists fail as told.
#[derive(Clone, Default)]
struct Flaky {
    vendor: Vendor,
    failing: Arc<Mutex<bool>>,
}

impl HubLister for Flaky {
    fn list_page<'a>(&'a self, instance: &'a InstanceRow, path: &'a str, query: &'a [(String, String)]) -> BoxFutureHub<'a> {
        Box::pin(async move {
            if *self.failing.lock().unwrap() {
                return Err(HubError { status: 502, message: "The vendor answered 503 (Service Unavailable)".into() });
            }
            self.vendor.list_page(instance, path, query).await
        })
    }

    fn get_record<'a>(&'a self, org: i64, instance: i64, object: &'a str, id: &'a str) -> BoxFuture<'a, Result<Option<Value>, HubError>> {
        self.vendor.get_record(org, instance, object, id)
    }
}

#[tokio::test]
async fn each_poll_leaves_its_outcome_on_the_instance() {
    let s = setup().await;
    let instance = s.instance(&[("event.notification.enabled", "true"), ("event.objects", "orders")]).await;
    let flaky = Flaky::default();
    let p = Poller::new(s.ctx.clone(), Arc::new(flaky.clone()), PollerSettings::default(), None);
    assert_eq!(s.ctx.store.poll_status(instance.id).await.unwrap(), None, "no poll yet");

    let before = switchyard_events::now_ms();
    p.poll_instance(&instance).await.unwrap();
    let ok = s.ctx.store.poll_status(instance.id).await.unwrap().unwrap();
    assert!(ok.ok && ok.message.is_none() && ok.polled_at >= before, "{ok:?}");

    *flaky.failing.lock().unwrap() = true;
    p.poll_instance(&instance).await.unwrap_err();
    let failed = s.ctx.store.poll_status(instance.id).await.unwrap().unwrap();
    assert!(!failed.ok && failed.polled_at >= ok.polled_at, "{failed:?}");
    let message = failed.message.unwrap();
    assert!(message.contains("orders") && message.contains("502") && message.contains("503"), "{message}");

    *flaky.failing.lock().unwrap() = false;
    p.poll_instance(&instance).await.unwrap();
    let again = s.ctx.store.poll_status(instance.id).await.unwrap().unwrap();
    assert!(again.ok && again.message.is_none(), "a success clears the message: {again:?}");
}

#[tokio::test]
async fn a_configuration_saved_before_the_checks_stops_polling_visibly() {
    // Saved straight into the store, as the server accepted it before it checked
    // event settings: an interval of 0, which the poller cannot honour.
    let s = setup().await;
    let instance = s
        .instance(&[("event.notification.enabled", "true"), ("event.objects", "orders"), ("event.poller.refresh_interval", "0")])
        .await;
    let vendor = Vendor::default();
    let settings = PollerSettings { tick: Duration::from_millis(10), ..Default::default() };
    let p = Poller::new(s.ctx.clone(), Arc::new(vendor.clone()), settings, None);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(p.run(async move {
        let _ = stopped.await;
    }));
    until_async(Duration::from_secs(10), "the scheduler to record why it cannot poll", || async {
        s.ctx.store.poll_status(instance.id).await.unwrap().is_some()
    })
    .await;
    let status = s.ctx.store.poll_status(instance.id).await.unwrap().unwrap();
    assert!(!status.ok, "{status:?}");
    let message = status.message.unwrap();
    assert!(message.contains("event.poller.refresh_interval") && message.contains("1440"), "{message}");
    assert!(vendor.wheres.lock().unwrap().is_empty(), "nothing was polled");
    let _ = stop.send(());
    running.await.unwrap();
}

/// Turning events on starts the marks when the scheduler first opens the
/// configuration, not at the first poll (a random point of the first interval),
/// and the scheduler's later looks (sweeps) keep them: a change made in between is
/// announced.
#[tokio::test]
async fn changes_from_when_events_were_turned_on_are_announced() {
    let s = setup().await;
    let instance = s
        .instance(&[("event.notification.enabled", "true"), ("event.objects", "orders"), ("event.poller.refresh_interval", "1440")])
        .await;
    let vendor = Vendor::default();
    // No overlap: the first poll looks exactly as far back as the mark. A sweep every
    // 50 ms; the first poll is due hours away, so only this test polls.
    let sweep = Duration::from_millis(50);
    let settings = PollerSettings { tick: Duration::from_millis(10), sweep, overlap: Duration::ZERO, ..Default::default() };
    let p = Poller::new(s.ctx.clone(), Arc::new(vendor.clone()), settings, None);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(p.clone().run(async move {
        let _ = stopped.await;
    }));
    until_async(Duration::from_secs(10), "the instance on the schedule", || async {
        s.ctx.store.poll_turns().await.unwrap().iter().any(|t| t.instance_id == instance.id)
    })
    .await;
    let scheduled = Utc::now();
    // A change after events were turned on (BigCommerce dates are whole seconds),
    // then sweeps, then the first poll.
    let changed = DateTime::from_timestamp(scheduled.timestamp() + 1, 0).unwrap();
    vendor.put(1, changed, changed);
    until(Duration::from_secs(5), "several sweeps after the change", || Utc::now() > changed + chrono::Duration::milliseconds(300)).await;
    assert_eq!(p.poll_instance(&instance).await.unwrap(), 1);
    assert_eq!(events(&s).await, [("1".to_string(), "CREATED".to_string())]);
    let _ = stop.send(());
    running.await.unwrap();
}

/// A poll that stores events wakes the delivery worker: they go out at once, not at
/// the worker's next look at the database (here a minute away).
#[tokio::test]
async fn a_poll_that_stores_events_wakes_the_idle_worker() {
    use switchyard_engine::outbound::OutboundPolicy;
    use switchyard_events::{Deliverer, DeliverySettings};
    let s = setup().await;
    let receiver = Receiver::default();
    let url = start_receiver("127.0.0.1:0", receiver.clone()).await;
    let instance = s
        .instance(&[("event.notification.enabled", "true"), ("event.notification.callback.url", &url), ("event.objects", "orders")])
        .await;
    let slow = DeliverySettings { idle_poll: Duration::from_secs(60), timeout: Duration::from_secs(5), ..Default::default() };
    let deliverer = Deliverer::new(s.ctx.clone(), OutboundPolicy::allow_loopback(), slow);
    let vendor = Vendor::default();
    let p = Poller::new(s.ctx.clone(), Arc::new(vendor.clone()), PollerSettings::default(), Some(deliverer.waker()));
    assert_eq!(p.poll_instance(&instance).await.unwrap(), 0, "the first poll starts the mark");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(deliverer.clone().run(async move {
        let _ = stopped.await;
    }));
    for (n, id) in [(1, 1), (2, 2)] {
        let now = Utc::now();
        vendor.put(id, now, now);
        assert_eq!(p.poll_instance(&instance).await.unwrap(), 1);
        until(Duration::from_secs(10), "the polled change delivered without waiting for the idle poll", || receiver.count() == n).await;
        // The worker looks once more after writing the outcome, then idles: let it.
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let _ = stop.send(());
}

/// A poller reading at most 2 pages of 3 per poll, with the default overlap.
fn short_poller(s: &Setup, vendor: &Vendor) -> Poller {
    let settings = PollerSettings { overlap: Duration::from_secs(60), page_size: 3, max_pages: 2, ..Default::default() };
    Poller::new(s.ctx.clone(), Arc::new(vendor.clone()), settings, None)
}

/// 14 changes inside the window, listed by id and dated newest first (so unread
/// pages hold older dates than the pages read): five pages of three.
fn backlog(vendor: &Vendor) {
    let start = Utc::now() - chrono::Duration::seconds(40);
    for id in 1..=14 {
        let at = start - chrono::Duration::seconds(id);
        vendor.put(id, at, at);
    }
}

fn ids(events: &[(String, String)]) -> Vec<i64> {
    let mut ids: Vec<i64> = events.iter().map(|(id, _)| id.parse().unwrap()).collect();
    ids.sort();
    ids
}

/// More changes than one poll reads (`max_pages`): the next polls go on where the
/// last stopped, until the listing is read to its end, and every change is
/// announced once. (Listing again from the top each time re-read the same first
/// pages for ever: the rest was never announced.)
#[tokio::test]
async fn a_backlog_longer_than_one_poll_is_drained_by_the_next_polls() {
    let s = setup().await;
    let instance = s.instance(&[("event.notification.enabled", "true"), ("event.objects", "orders")]).await;
    let vendor = Vendor::default();
    let p = short_poller(&s, &vendor);
    assert_eq!(p.poll_instance(&instance).await.unwrap(), 0, "the first poll starts the mark");
    backlog(&vendor);
    let mut stored = Vec::new();
    for _ in 0..4 {
        stored.push(p.poll_instance(&instance).await.unwrap());
    }
    assert_eq!(stored, [6, 6, 2, 0], "pages 1-2, 3-4, 5, then nothing new");
    assert_eq!(ids(&events(&s).await), (1..=14).collect::<Vec<_>>());
}

/// An unfinished listing survives vendor trouble (a 5xx keeps the position), and one
/// the vendor no longer takes (a 4xx to its `nextPage`) starts again from the mark:
/// every change still announced, once.
#[tokio::test]
async fn an_unfinished_listing_goes_on_after_vendor_trouble_or_starts_again() {
    let s = setup().await;
    let instance = s.instance(&[("event.notification.enabled", "true"), ("event.objects", "orders")]).await;
    let vendor = Vendor::default();
    let p = short_poller(&s, &vendor);
    assert_eq!(p.poll_instance(&instance).await.unwrap(), 0);
    backlog(&vendor);
    assert_eq!(p.poll_instance(&instance).await.unwrap(), 6);

    *vendor.fail_with.lock().unwrap() = Some(503);
    p.poll_instance(&instance).await.unwrap_err();
    *vendor.fail_with.lock().unwrap() = None;
    assert_eq!(p.poll_instance(&instance).await.unwrap(), 6, "on from page 3");

    *vendor.refuse_pages.lock().unwrap() = true;
    let err = p.poll_instance(&instance).await.unwrap_err().to_string();
    assert!(err.contains("400"), "{err}");
    *vendor.refuse_pages.lock().unwrap() = false;
    // From the top: pages 1-4 were announced (nothing again), then page 5.
    assert_eq!(p.poll_instance(&instance).await.unwrap(), 0);
    assert_eq!(p.poll_instance(&instance).await.unwrap(), 0);
    assert_eq!(p.poll_instance(&instance).await.unwrap(), 2);
    assert_eq!(ids(&events(&s).await), (1..=14).collect::<Vec<_>>());
}

/// The window is checked here too, so a vendor that ignores the filter announces
/// nothing older than it; a record dated exactly at its start is in it.
#[tokio::test]
async fn the_window_holds_when_the_vendor_ignores_the_filter_and_includes_its_start() {
    let s = setup().await;
    let instance = s.instance(&[("event.notification.enabled", "true"), ("event.objects", "orders")]).await;
    let vendor = Vendor::default();
    *vendor.ignores_where.lock().unwrap() = true;
    let settings = PollerSettings { overlap: Duration::ZERO, ..Default::default() };
    let p = Poller::new(s.ctx.clone(), Arc::new(vendor.clone()), settings, None);
    // A mark on a whole second ten seconds ago (BigCommerce dates are whole seconds).
    let mark = Utc::now().timestamp() - 10;
    assert_eq!(s.ctx.store.poll_mark(instance.id, "orders", mark * 1000).await.unwrap(), mark * 1000);
    let at = |secs: i64| DateTime::from_timestamp(secs, 0).unwrap();
    vendor.put(1, at(mark), at(mark));
    vendor.put(2, at(mark - 1), at(mark - 1));
    vendor.put(3, at(mark - 86_400), at(mark - 86_400));
    assert_eq!(p.poll_instance(&instance).await.unwrap(), 1);
    assert_eq!(events(&s).await, [("1".to_string(), "CREATED".to_string())]);
}
