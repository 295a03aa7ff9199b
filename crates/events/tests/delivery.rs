//! The delivery worker against a real receiver over loopback HTTP and a real
//! SQLite store: signatures (checked with ring, a second HMAC implementation),
//! the retry schedule, Retry-After, 410, the outbound policy (a refusal, also at a
//! redirect, is a failed attempt like any other), a receiver that is
//! down and comes back, and redelivery.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use common::*;
use serde_json::{json, Value};
use switchyard_engine::outbound::OutboundPolicy;
use switchyard_events::message::{new_event_id, notified_event};
use switchyard_events::{now_ms, Deliverer, DeliverySettings, RetryPolicy};
use switchyard_store::{InstanceRow, NewEvent};

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

fn settings(base_ms: u64, attempts: u32) -> DeliverySettings {
    DeliverySettings {
        retry: RetryPolicy { base: Duration::from_millis(base_ms), max_attempts: attempts, ..Default::default() },
        timeout: Duration::from_secs(5),
        idle_poll: Duration::from_millis(50),
        ..Default::default()
    }
}

async fn queue(s: &Setup, instance: &InstanceRow, n: usize) -> Vec<String> {
    let events: Vec<NewEvent> = (0..n)
        .map(|i| {
            let raw = json!({"id": i, "objectType": "orders"});
            NewEvent {
                event_id: new_event_id(),
                organization_id: instance.organization_id,
                instance_id: instance.id,
                element_key: instance.element_key.clone(),
                source: "polling".into(),
                status: "NEW".into(),
                event_date: switchyard_events::iso_ms(now_ms()),
                provider_data: json!({"id": i}).to_string(),
                notified_data: json!([notified_event("UPDATED", "orders", &i.to_string(), "2025-01-01T00:00:00.000Z")]).to_string(),
                raw: raw.to_string(),
            }
        })
        .collect();
    s.ctx.store.insert_events(&events, now_ms()).await.unwrap();
    events.into_iter().map(|e| e.event_id).collect()
}

/// Runs a worker until the returned sender is dropped or sent to.
fn run(deliverer: &Deliverer) -> tokio::sync::oneshot::Sender<()> {
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(deliverer.clone().run(async move {
        let _ = rx.await;
    }));
    tx
}

async fn delivery(s: &Setup, event_id: &str) -> switchyard_store::EventRow {
    s.ctx.store.event(s.org, None, event_id).await.unwrap().unwrap()
}

fn ring_hmac(key: &[u8], data: &[u8]) -> String {
    B64.encode(ring::hmac::sign(&ring::hmac::Key::new(ring::hmac::HMAC_SHA256, key), data).as_ref())
}

#[tokio::test]
async fn messages_are_signed_both_ways_and_marked_notified() {
    let s = setup().await;
    let receiver = Receiver::default();
    let url = start_receiver("127.0.0.1:0", receiver.clone()).await;
    for key in ["plain key", "whsec_c2VjcmV0LWJ5dGVzLWZvci10aGUtc3RhbmRhcmQ="] {
        let instance = s
            .instance(&[
                ("event.notification.enabled", "true"),
                ("event.notification.callback.url", &url),
                ("event.notification.signature.key", key),
            ])
            .await;
        let before = receiver.count();
        let ids = queue(&s, &instance, 1).await;
        let worker = Deliverer::new(s.ctx.clone(), OutboundPolicy::allow_loopback(), settings(10, 9));
        assert_eq!(worker.run_once().await.unwrap(), 1);
        assert_eq!(receiver.count(), before + 1);
        let got = receiver.requests().pop().unwrap();
        let h = |n: &str| got.headers.get(n).unwrap_or_else(|| panic!("header {n}")).to_str().unwrap().to_owned();

        // The Cloud Elements body.
        let body: Value = serde_json::from_slice(&got.body).unwrap();
        assert_eq!(body["message"]["eventId"], ids[0].as_str());
        assert_eq!(body["message"]["instanceId"], instance.id);
        assert_eq!(body["message"]["elementKey"], "bigcommerce");
        assert_eq!(body["message"]["events"][0]["eventType"], "UPDATED");
        assert_eq!(body["message"]["raw"]["objectType"], "orders");
        assert_eq!(h("elements-webhook-id"), ids[0]);
        assert_eq!(h("content-type"), "application/json");

        // Cloud Elements: HMAC-SHA256 of the raw body with the key's bytes as written.
        assert_eq!(h("elements-webhook-signature"), format!("sha256={}", ring_hmac(key.as_bytes(), &got.body)));
        // Standard Webhooks: over "id.timestamp.body", a whsec_ key base64-decoded first.
        let std_key = match key.strip_prefix("whsec_") {
            Some(b64) => B64.decode(b64).unwrap(),
            None => key.as_bytes().to_vec(),
        };
        let signed = [h("webhook-id").as_bytes(), b".", h("webhook-timestamp").as_bytes(), b".", &got.body].concat();
        assert_eq!(h("webhook-id"), ids[0]);
        assert!((h("webhook-timestamp").parse::<i64>().unwrap() - now_ms() / 1000).abs() < 300);
        assert_eq!(h("webhook-signature"), format!("v1,{}", ring_hmac(&std_key, &signed)));

        let row = delivery(&s, &ids[0]).await;
        assert_eq!((row.status.as_str(), row.delivery_state.as_str(), row.attempts, row.last_status), ("NOTIFIED", "delivered", 1, Some(200)));
    }

    // Without a key: no signature headers at all.
    let instance = s.instance(&[("event.notification.enabled", "true"), ("event.notification.callback.url", &url)]).await;
    queue(&s, &instance, 1).await;
    Deliverer::new(s.ctx.clone(), OutboundPolicy::allow_loopback(), settings(10, 9)).run_once().await.unwrap();
    let got = receiver.requests().pop().unwrap();
    assert!(got.headers.contains_key("elements-webhook-id"));
    for h in ["elements-webhook-signature", "webhook-id", "webhook-timestamp", "webhook-signature"] {
        assert!(!got.headers.contains_key(h), "{h} without a key");
    }
}

#[tokio::test]
async fn failures_are_retried_on_the_schedule_then_kept_for_redelivery() {
    let s = setup().await;
    let receiver = Receiver::default();
    receiver.answer(500);
    let url = start_receiver("127.0.0.1:0", receiver.clone()).await;
    let instance = s.instance(&[("event.notification.enabled", "true"), ("event.notification.callback.url", &url)]).await;
    let ids = queue(&s, &instance, 1).await;
    let base = 40u64;
    let attempts = 4u32;
    let worker = Deliverer::new(s.ctx.clone(), OutboundPolicy::allow_loopback(), settings(base, attempts));
    let stop = run(&worker);
    until_async(Duration::from_secs(30), "the last attempt", || async { delivery(&s, &ids[0]).await.delivery_state == "failed" }).await;
    let seen = receiver.requests();
    assert_eq!(seen.len(), attempts as usize, "exactly the configured attempts");
    // Attempt x+1 comes about base * 4^x after attempt x: never before 80 % of it.
    let policy = worker.settings().retry;
    for (x, pair) in seen.windows(2).enumerate() {
        let gap = pair[1].at - pair[0].at;
        let nominal = policy.nominal_delay(x as u32 + 1);
        assert!(gap >= nominal.mul_f64(0.8) - Duration::from_millis(5), "gap {x}: {gap:?} < 80% of {nominal:?}");
    }
    let row = delivery(&s, &ids[0]).await;
    assert_eq!((row.status.as_str(), row.attempts, row.last_status, row.next_attempt_at.is_none()), ("DISPATCHED", 4, Some(500), true));
    assert_eq!(row.last_error.as_deref(), Some("the callback answered 500"));

    // The event stays queued; redelivering sends it again with a fresh schedule.
    receiver.answer(200);
    assert!(s.ctx.store.redeliver_event(s.org, &ids[0], now_ms()).await.unwrap());
    until(Duration::from_secs(10), "the redelivery", || receiver.count() == attempts as usize + 1).await;
    until_async(Duration::from_secs(10), "the outcome", || async { delivery(&s, &ids[0]).await.delivery_state == "delivered" }).await;
    let row = delivery(&s, &ids[0]).await;
    assert_eq!((row.delivery_state.as_str(), row.status.as_str(), row.attempts), ("delivered", "NOTIFIED", 1));
    let _ = stop.send(());
}

#[tokio::test]
async fn retry_after_postpones_the_next_attempt() {
    let s = setup().await;
    let receiver = Receiver::default();
    receiver.script(&[(429, vec![("retry-after", "1")])]);
    let url = start_receiver("127.0.0.1:0", receiver.clone()).await;
    let instance = s.instance(&[("event.notification.enabled", "true"), ("event.notification.callback.url", &url)]).await;
    queue(&s, &instance, 1).await;
    let worker = Deliverer::new(s.ctx.clone(), OutboundPolicy::allow_loopback(), settings(5, 9));
    let stop = run(&worker);
    until(Duration::from_secs(10), "the second attempt", || receiver.count() == 2).await;
    let seen = receiver.requests();
    // The schedule alone says 20 ms; the receiver asked for a second.
    assert!(seen[1].at - seen[0].at >= Duration::from_millis(990), "{:?}", seen[1].at - seen[0].at);
    let _ = stop.send(());
}

#[tokio::test]
async fn gone_stops_delivery_to_that_url_until_redelivered() {
    let s = setup().await;
    let receiver = Receiver::default();
    receiver.answer(410);
    let url = start_receiver("127.0.0.1:0", receiver.clone()).await;
    let instance = s.instance(&[("event.notification.enabled", "true"), ("event.notification.callback.url", &url)]).await;
    let first = queue(&s, &instance, 1).await;
    let worker = Deliverer::new(s.ctx.clone(), OutboundPolicy::allow_loopback(), settings(10, 9));
    worker.run_once().await.unwrap();
    let row = delivery(&s, &first[0]).await;
    assert_eq!((row.delivery_state.as_str(), row.attempts, row.last_status), ("stopped", 1, Some(410)));
    assert_eq!(row.last_error.as_deref(), Some("the callback URL answered 410 Gone; delivery to it is stopped"), "the user is told why");
    // A later event for the same URL is not sent at all, and says why.
    let second = queue(&s, &instance, 1).await;
    worker.run_once().await.unwrap();
    assert_eq!(receiver.count(), 1);
    let stopped = delivery(&s, &second[0]).await;
    assert_eq!((stopped.delivery_state.as_str(), stopped.attempts), ("stopped", 0));
    assert_eq!(stopped.last_error.as_deref(), Some("the callback URL answered 410 Gone before; delivery to it is stopped"));
    // Redelivering is the user saying the URL works again.
    receiver.answer(200);
    assert_eq!(s.ctx.store.redeliver_instance(s.org, instance.id, now_ms()).await.unwrap(), Some(2));
    worker.run_once().await.unwrap();
    assert_eq!(receiver.count(), 3);
    assert_eq!(delivery(&s, &second[0]).await.delivery_state, "delivered");
    // Another organization cannot touch them.
    assert_eq!(s.ctx.store.redeliver_instance(s.org + 1, instance.id, now_ms()).await.unwrap(), None);
    assert!(!s.ctx.store.redeliver_event(s.org + 1, &first[0], now_ms()).await.unwrap());
}

#[tokio::test]
async fn a_callback_the_policy_refuses_is_a_failed_attempt_retried_on_the_schedule() {
    let s = setup().await;
    let receiver = Receiver::default();
    let url = start_receiver("127.0.0.1:0", receiver.clone()).await;
    let port = url::Url::parse(&url).unwrap().port().unwrap();
    // The default policy: nothing private, loopback or plain-http allowed. A literal
    // loopback address is refused before any connection; a name by the client's
    // resolver, after DNS, at the attempt.
    for callback in [url.clone(), format!("https://localhost:{port}/hook")] {
        let instance = s.instance(&[("event.notification.enabled", "true"), ("event.notification.callback.url", &callback)]).await;
        let ids = queue(&s, &instance, 1).await;
        let worker = Deliverer::new(s.ctx.clone(), OutboundPolicy::default(), settings(10, 3));
        worker.run_once().await.unwrap();
        let row = delivery(&s, &ids[0]).await;
        assert_eq!((row.delivery_state.as_str(), row.attempts), ("pending", 1), "{callback}: retried like any failed attempt");
        assert!(row.next_attempt_at.is_some(), "{callback}: on the schedule");
        let error = row.last_error.unwrap();
        let host = url::Url::parse(&callback).unwrap().host_str().unwrap().to_owned();
        assert!(error.contains("outbound policy") && error.contains(&format!("`{host}`")), "{callback}: {error}");
        // Every attempt of the schedule is made, then the event is kept as failed.
        let stop = run(&worker);
        until_async(Duration::from_secs(10), "the last attempt", || async { delivery(&s, &ids[0]).await.delivery_state == "failed" }).await;
        let _ = stop.send(());
        let row = delivery(&s, &ids[0]).await;
        assert_eq!(row.attempts, 3, "{callback}");
        assert!(row.last_error.unwrap().contains("outbound policy"));
    }
    assert_eq!(receiver.count(), 0, "nothing reached the loopback receiver");

    // A refusal is not final: once the operator allows the address, the next
    // scheduled attempt delivers.
    let instance = s.instance(&[("event.notification.enabled", "true"), ("event.notification.callback.url", &url)]).await;
    let ids = queue(&s, &instance, 1).await;
    Deliverer::new(s.ctx.clone(), OutboundPolicy::default(), settings(10, 3)).run_once().await.unwrap();
    assert_eq!(delivery(&s, &ids[0]).await.delivery_state, "pending");
    let allowing = Deliverer::new(s.ctx.clone(), OutboundPolicy::allow_loopback(), settings(10, 3));
    let stop = run(&allowing);
    until_async(Duration::from_secs(10), "the retry", || async { delivery(&s, &ids[0]).await.delivery_state == "delivered" }).await;
    let _ = stop.send(());
    assert_eq!((receiver.count(), delivery(&s, &ids[0]).await.attempts), (1, 2));
}

#[tokio::test]
async fn a_redirect_to_a_refused_address_is_a_failed_attempt() {
    let s = setup().await;
    let receiver = Receiver::default();
    // The cloud metadata address: refused by the policy when the redirect is
    // checked, so nothing is ever sent there.
    receiver.script(&[(307, vec![("location", "http://169.254.169.254/latest/meta-data")])]);
    let url = start_receiver("127.0.0.1:0", receiver.clone()).await;
    let instance = s.instance(&[("event.notification.enabled", "true"), ("event.notification.callback.url", &url)]).await;
    let ids = queue(&s, &instance, 1).await;
    let worker = Deliverer::new(s.ctx.clone(), OutboundPolicy::allow_loopback(), settings(10, 9));
    worker.run_once().await.unwrap();
    let row = delivery(&s, &ids[0]).await;
    assert_eq!((row.delivery_state.as_str(), row.attempts, row.last_status), ("pending", 1, None));
    let error = row.last_error.unwrap();
    assert!(error.contains("outbound policy") && error.contains("169.254.169.254"), "{error}");
    // The next attempt, answered without a redirect, delivers.
    let stop = run(&worker);
    until_async(Duration::from_secs(10), "the retry", || async { delivery(&s, &ids[0]).await.delivery_state == "delivered" }).await;
    let _ = stop.send(());
    assert_eq!(receiver.count(), 2);
}

#[tokio::test]
async fn a_receiver_that_is_down_then_up_gets_everything() {
    let s = setup().await;
    // A port with nobody listening yet (held, so no one else takes it meanwhile).
    let (socket, addr) = reserve_port();
    let url = format!("http://{addr}/hook");
    let instance = s.instance(&[("event.notification.enabled", "true"), ("event.notification.callback.url", &url)]).await;
    let ids = queue(&s, &instance, 50).await;
    let worker = Deliverer::new(s.ctx.clone(), OutboundPolicy::allow_loopback(), settings(20, 9));
    let stop = run(&worker);
    // Wait until every event failed at least once.
    until_async(Duration::from_secs(20), "first failures", || async {
        let q = switchyard_store::EventQuery { organization_id: s.org, instance_id: None, before: None, offset: 0, limit: 100 };
        s.ctx.store.events(&q).await.unwrap().iter().all(|e| e.attempts >= 1 && e.last_error.is_some())
    })
    .await;
    let receiver = Receiver::default();
    start_receiver_on(socket.listen(1024).unwrap(), receiver.clone());
    until(Duration::from_secs(60), "every event", || {
        let got: std::collections::HashSet<String> = receiver
            .requests()
            .iter()
            .map(|r| serde_json::from_slice::<Value>(&r.body).unwrap()["message"]["eventId"].as_str().unwrap().to_owned())
            .collect();
        ids.iter().all(|id| got.contains(id))
    })
    .await;
    let _ = stop.send(());
}

#[tokio::test]
async fn health_messages_go_out_the_same_way() {
    let s = setup().await;
    let receiver = Receiver::default();
    let url = start_receiver("127.0.0.1:0", receiver.clone()).await;
    let quiet = s.instance(&[("event.notification.callback.url", &url)]).await;
    let none = switchyard_events::notify_instance_health(&s.ctx, &quiet, false, None, None).await.unwrap();
    assert!(none.is_none(), "events off: nothing queued");
    let instance = s.instance(&[("event.notification.enabled", "true"), ("event.notification.callback.url", &url)]).await;
    let id = switchyard_events::notify_instance_health(&s.ctx, &instance, false, Some("refresh refused"), None).await.unwrap().unwrap();
    Deliverer::new(s.ctx.clone(), OutboundPolicy::allow_loopback(), settings(10, 9)).run_once().await.unwrap();
    let body: Value = serde_json::from_slice(&receiver.requests()[0].body).unwrap();
    assert_eq!(body["message"]["eventId"], id.as_str());
    let e = &body["message"]["events"][0];
    assert_eq!((e["eventType"].as_str(), e["objectType"].as_str()), (Some("INSTANCE_INVALID"), Some("instance")));
    assert_eq!(e["objectId"], instance.id.to_string());
    assert_eq!(body["message"]["raw"]["valid"], false);
}

/// `INSTANCE_CREATED` (what a Connect session's creator waits for) goes to the
/// callback URL whether or not events are on; without a callback URL nothing is queued.
#[tokio::test]
async fn instance_created_goes_to_the_callback_url_with_events_off() {
    let s = setup().await;
    let receiver = Receiver::default();
    let url = start_receiver("127.0.0.1:0", receiver.clone()).await;
    let nowhere = s.instance(&[]).await;
    let none = switchyard_events::notify_instance_created(&s.ctx, &nowhere, None).await.unwrap();
    assert!(none.is_none(), "no callback URL: nothing queued");
    let instance = s.instance(&[("event.notification.callback.url", &url)]).await;
    assert!(!instance.events_enabled);
    let id = switchyard_events::notify_instance_created(&s.ctx, &instance, None).await.unwrap().expect("queued");
    let deliverer = Deliverer::new(s.ctx.clone(), OutboundPolicy::allow_loopback(), settings(10, 9));
    deliverer.run_once().await.unwrap();
    let requests = receiver.requests();
    assert_eq!(requests.len(), 1, "only the instance with a callback URL is announced");
    let body: Value = serde_json::from_slice(&requests[0].body).unwrap();
    assert_eq!(body["message"]["eventId"], id.as_str());
    let e = &body["message"]["events"][0];
    assert_eq!((e["eventType"].as_str(), e["objectType"].as_str()), (Some("INSTANCE_CREATED"), Some("instance")));
    assert_eq!(e["objectId"], instance.id.to_string());
    let raw = &body["message"]["raw"];
    assert_eq!((raw["id"].as_i64(), raw["name"].as_str(), raw["valid"].as_bool()), (Some(instance.id), Some("shop"), Some(true)));
    assert_eq!(raw["tags"], json!([]));
    assert_eq!(delivery(&s, &id).await.status, "NOTIFIED");
}

/// An instance with `n` events delivered (finished).
async fn delivered(s: &Setup, n: usize) -> InstanceRow {
    let receiver = Receiver::default();
    let url = start_receiver("127.0.0.1:0", receiver).await;
    let instance = s.instance(&[("event.notification.enabled", "true"), ("event.notification.callback.url", &url)]).await;
    queue(s, &instance, n).await;
    let worker = Deliverer::new(s.ctx.clone(), OutboundPolicy::allow_loopback(), settings(10, 9));
    assert_eq!(worker.run_once().await.unwrap(), n);
    instance
}

#[tokio::test]
async fn finished_events_leave_the_log_after_the_retention_and_pending_ones_stay() {
    use switchyard_events::retention::{prune_once, Retention};
    let s = setup().await;
    let instance = delivered(&s, 3).await;
    // Queued for the future: pending, whatever their age.
    let pending = queue(&s, &instance, 2).await;
    for id in &pending {
        assert_eq!(delivery(&s, id).await.delivery_state, "pending");
    }

    let week = Retention::default();
    assert_eq!(prune_once(&s.ctx.store, &week).await.unwrap(), 0, "nothing is a week old");
    // Pruning takes what was last attempted before now: let the clock pass the attempts.
    let attempted = now_ms();
    until(Duration::from_secs(5), "the clock to move on", || now_ms() > attempted).await;
    // A batch smaller than the backlog: the loop takes several.
    let none = Retention { keep: Duration::ZERO, batch: 2, ..Default::default() };
    assert_eq!(prune_once(&s.ctx.store, &none).await.unwrap(), 3);
    let q = switchyard_store::EventQuery { organization_id: s.org, instance_id: None, before: None, offset: 0, limit: 100 };
    let mut left: Vec<String> = s.ctx.store.events(&q).await.unwrap().into_iter().map(|e| e.event_id).collect();
    left.sort();
    let mut want = pending.clone();
    want.sort();
    assert_eq!(left, want);
}

/// The digests that recognise a vendor's repeated webhook calls go with the
/// retention's pruning once older than the dedupe window, not before.
#[tokio::test]
async fn webhook_call_digests_are_pruned_past_the_dedupe_window() {
    use switchyard_events::retention::{prune_once, Retention};
    use switchyard_store::IncomingEvent;
    let s = setup().await;
    let instance = s.instance(&[]).await;
    let call = |event_id: &str| IncomingEvent {
        event: NewEvent {
            event_id: event_id.into(),
            organization_id: instance.organization_id,
            instance_id: instance.id,
            element_key: instance.element_key.clone(),
            source: "webhook".into(),
            status: "RECEIVED".into(),
            event_date: switchyard_events::iso_ms(now_ms()),
            provider_data: "{}".into(),
            notified_data: "[]".into(),
            raw: "{}".into(),
        },
        digest: Some(b"digest".to_vec()),
    };
    let two_hours_ago = now_ms() - 2 * 3600 * 1000;
    let store = &s.ctx.store;
    assert_eq!(store.insert_incoming_durably(&[call("first")], now_ms(), two_hours_ago, 0).await.unwrap(), ["first"]);
    prune_once(store, &Retention::default()).await.unwrap();
    assert_eq!(store.insert_incoming_durably(&[call("again")], now_ms(), now_ms(), 0).await.unwrap(), ["first"], "72 h: kept");
    let hour = Retention { dedupe: Duration::from_secs(3600), ..Default::default() };
    prune_once(store, &hour).await.unwrap();
    assert_eq!(store.insert_incoming_durably(&[call("later")], now_ms(), now_ms(), 0).await.unwrap(), ["later"], "1 h: pruned");
}

/// An event stored in this process wakes the worker: it goes out at once, not
/// at the worker's next look at the database (here a minute away).
#[tokio::test]
async fn a_stored_event_wakes_the_idle_worker() {
    let s = setup().await;
    let receiver = Receiver::default();
    let url = start_receiver("127.0.0.1:0", receiver.clone()).await;
    let instance = s.instance(&[("event.notification.enabled", "true"), ("event.notification.callback.url", &url)]).await;
    let slow = DeliverySettings { idle_poll: Duration::from_secs(60), ..settings(10, 9) };
    let deliverer = Deliverer::new(s.ctx.clone(), OutboundPolicy::allow_loopback(), slow);
    // A first event, so the worker has made its first look and gone idle.
    let first = queue(&s, &instance, 1).await.remove(0);
    let stop = run(&deliverer);
    until_async(Duration::from_secs(10), "the first event delivered", || async {
        delivery(&s, &first).await.status == "NOTIFIED"
    })
    .await;
    let waker = deliverer.waker();
    switchyard_events::notify_instance_health(&s.ctx, &instance, true, None, Some(&waker)).await.unwrap().unwrap();
    until(Duration::from_secs(10), "the health event delivered without waiting for the idle poll", || receiver.count() == 2)
        .await;
    // Its date is the time it was stored, ISO 8601 UTC with milliseconds.
    let body: Value = serde_json::from_slice(&receiver.requests()[1].body).unwrap();
    let date = body["message"]["events"][0]["date"].as_str().unwrap().to_owned();
    let at = chrono::DateTime::parse_from_rfc3339(&date).unwrap();
    assert!(date.ends_with('Z') && date.len() == "2025-01-01T00:00:00.000Z".len(), "{date}");
    assert!((now_ms() - at.timestamp_millis()).abs() < 60_000, "{date}");
    let _ = stop.send(());
}

/// A retry due before the worker's next idle look goes out when it is due: the
/// worker sleeps until the earliest due attempt, not a whole idle poll.
#[tokio::test]
async fn a_retry_goes_out_when_due_not_at_the_next_idle_poll() {
    let s = setup().await;
    let receiver = Receiver::default();
    receiver.script(&[(500, vec![])]);
    let url = start_receiver("127.0.0.1:0", receiver.clone()).await;
    let instance = s.instance(&[("event.notification.enabled", "true"), ("event.notification.callback.url", &url)]).await;
    let ids = queue(&s, &instance, 1).await;
    // First retry about 4 × 100 ms after the failure; the idle poll is a minute.
    let slow = DeliverySettings { idle_poll: Duration::from_secs(60), ..settings(100, 9) };
    let stop = run(&Deliverer::new(s.ctx.clone(), OutboundPolicy::allow_loopback(), slow));
    until_async(Duration::from_secs(10), "the retry delivered", || async {
        delivery(&s, &ids[0]).await.delivery_state == "delivered"
    })
    .await;
    assert_eq!(receiver.count(), 2);
    let _ = stop.send(());
}

/// A worker that dies with a delivery in flight (its task dropped, as by kill -9)
/// leaves the job claimed; another worker takes it once the claim's lease
/// (`DeliverySettings::lease`: twice the timeout plus 5 s) has run out, not before.
#[tokio::test]
async fn a_claim_left_by_a_dead_worker_is_taken_again_when_its_lease_ends() {
    let s = setup().await;
    let receiver = Receiver::default();
    receiver.hold(1);
    let url = start_receiver("127.0.0.1:0", receiver.clone()).await;
    let instance = s.instance(&[("event.notification.enabled", "true"), ("event.notification.callback.url", &url)]).await;
    let ids = queue(&s, &instance, 1).await;
    // A 1 s timeout: a lease of 7 s, and a second for the test to stop the first
    // worker while its request hangs, before that request could time out.
    let settings = DeliverySettings { timeout: Duration::from_secs(1), ..settings(10, 9) };
    let lease = settings.lease();
    let first = tokio::spawn({
        let worker = Deliverer::new(s.ctx.clone(), OutboundPolicy::allow_loopback(), settings.clone());
        async move { worker.run_once().await }
    });
    until(Duration::from_secs(10), "the first worker's request arrived", || receiver.count() == 1).await;
    let claimed_at = receiver.requests()[0].at;
    first.abort();
    assert!(first.await.unwrap_err().is_cancelled(), "the first worker was stopped mid-request");

    let stop = run(&Deliverer::new(s.ctx.clone(), OutboundPolicy::allow_loopback(), settings));
    until(lease + Duration::from_secs(10), "the job delivered by the second worker", || receiver.count() == 2).await;
    let taken_after = receiver.requests()[1].at - claimed_at;
    assert!(taken_after >= lease - Duration::from_secs(1), "taken again {taken_after:?} after the claim, within its lease of {lease:?}");
    until_async(Duration::from_secs(10), "the delivery recorded", || async {
        delivery(&s, &ids[0]).await.delivery_state == "delivered"
    })
    .await;
    let _ = stop.send(());
}

/// Hand-written records by `object/id`, as the hub would read them.
#[derive(Clone, Default)]
struct Records {
    records: Arc<std::collections::HashMap<String, Value>>,
    reads: Arc<Mutex<Vec<String>>>,
}

impl switchyard_events::HubLister for Records {
    fn list_page<'a>(&'a self, _: &'a InstanceRow, _: &'a str, _: &'a [(String, String)]) -> switchyard_events::BoxFutureHub<'a> {
        Box::pin(async { Ok(Default::default()) })
    }

    fn get_record<'a>(
        &'a self,
        _org: i64,
        _instance: i64,
        object: &'a str,
        id: &'a str,
    ) -> switchyard_events::BoxFuture<'a, Result<Option<Value>, switchyard_events::HubError>> {
        let key = format!("{object}/{id}");
        let found = self.records.get(&key).cloned();
        self.reads.lock().unwrap().push(key);
        Box::pin(async move { Ok(found) })
    }
}

/// A vendor webhook's event (stored `RECEIVED`, its payload thin) goes out with
/// the record read through the hub as `raw`, and that record is kept for
/// redeliveries; a polled event (`NEW`) already carries its record, and a deletion
/// or an event without an object id has none to read: those go out as stored,
/// without a read.
#[tokio::test]
async fn webhook_events_are_enriched_through_the_hub_and_others_are_not() {
    let s = setup().await;
    let receiver = Receiver::default();
    let url = start_receiver("127.0.0.1:0", receiver.clone()).await;
    let instance = s.instance(&[("event.notification.enabled", "true"), ("event.notification.callback.url", &url)]).await;
    let hub = Records { records: Arc::new([("orders/7".to_owned(), json!({"id": 7, "status": "Shipped"}))].into()), ..Default::default() };
    let event = |status: &str, event_type: &str, id: &str, raw: Value| NewEvent {
        event_id: new_event_id(),
        organization_id: instance.organization_id,
        instance_id: instance.id,
        element_key: instance.element_key.clone(),
        source: if status == "RECEIVED" { "webhook" } else { "polling" }.into(),
        status: status.into(),
        event_date: switchyard_events::iso_ms(now_ms()),
        provider_data: "{}".into(),
        notified_data: json!([notified_event(event_type, "orders", id, "2025-01-01T00:00:00.000Z")]).to_string(),
        raw: raw.to_string(),
    };
    let thin = json!({"scope": "store/order/updated", "data": {"id": 7}});
    let webhook = event("RECEIVED", "UPDATED", "7", thin.clone());
    let polled = event("NEW", "UPDATED", "7", json!({"id": 7, "status": "Pending", "objectType": "orders"}));
    let deleted = event("RECEIVED", "DELETED", "7", json!({"scope": "store/order/deleted", "data": {"id": 7}}));
    let no_id = event("RECEIVED", "UPDATED", "", thin.clone());
    for e in [&webhook, &polled, &deleted, &no_id] {
        s.ctx.store.insert_events(std::slice::from_ref(e), now_ms()).await.unwrap();
    }

    let worker = Deliverer::new(s.ctx.clone(), OutboundPolicy::allow_loopback(), settings(10, 9)).enriching_with(Arc::new(hub.clone()));
    assert_eq!(worker.run_once().await.unwrap(), 4);
    let raw_of = |event_id: &str| {
        let sent = receiver.requests().into_iter().map(|r| serde_json::from_slice::<Value>(&r.body).unwrap());
        sent.into_iter().find(|b| b["message"]["eventId"] == event_id).unwrap_or_else(|| panic!("{event_id} not sent"))["message"]["raw"].clone()
    };
    let shipped = json!({"id": 7, "status": "Shipped", "objectType": "orders"});
    assert_eq!(raw_of(&webhook.event_id), shipped);
    assert_eq!(raw_of(&polled.event_id), json!({"id": 7, "status": "Pending", "objectType": "orders"}));
    assert_eq!(raw_of(&deleted.event_id), json!({"scope": "store/order/deleted", "data": {"id": 7}}));
    assert_eq!(raw_of(&no_id.event_id), thin);
    assert_eq!(*hub.reads.lock().unwrap(), ["orders/7"], "one read, for the webhook's update only");
    let kept: Value = serde_json::from_str(&delivery(&s, &webhook.event_id).await.raw).unwrap();
    assert_eq!(kept, shipped, "the record read is what a redelivery sends");
}

/// Finished events beyond the per-instance cap go too, and are counted; the pruning
/// loop prunes at start and every period, on one node per period: the node that
/// prunes holds the period, another takes over once it has run out (a dead node's).
#[tokio::test]
async fn the_pruning_loop_applies_the_caps_holding_its_period() {
    use switchyard_events::retention::{prune_once, run as pruning, Retention, LEASE};
    let s = setup().await;
    delivered(&s, 3).await;
    let count = || async {
        let q = switchyard_store::EventQuery { organization_id: s.org, instance_id: None, before: None, offset: 0, limit: 100 };
        s.ctx.store.events(&q).await.unwrap().len()
    };
    // A week's retention, but at most two events per instance: the oldest goes.
    assert_eq!(prune_once(&s.ctx.store, &Retention { per_instance: 2, ..Default::default() }).await.unwrap(), 1);
    assert_eq!(count().await, 2);

    let every = Duration::from_secs(2);
    tokio::spawn(pruning(s.ctx.store.clone(), Retention { every, per_instance: 1, ..Default::default() }, std::future::pending()));
    until_async(Duration::from_secs(10), "the loop to prune down to one", || async { count().await == 1 }).await;
    let url = format!("sqlite://{}", s._dir.path().join("t.db").display());
    let other_node = switchyard_store::Store::open(&url).await.unwrap();
    let now = now_ms();
    assert!(!other_node.take_lease(LEASE, now, now + 1000).await.unwrap(), "the period is the pruning node's");
    assert!(other_node.take_lease(LEASE, now + 2 * every.as_millis() as i64 + 100, now + 10_000_000).await.unwrap(), "and ends with it");
}
