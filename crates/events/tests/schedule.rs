//! The poller's schedule over a real store: it follows configuration changes
//! (told, or found by its sweep), never polls a disabled or deleted instance, and
//! keeps each instance's turn across a restart. The vendor here counts the list
//! calls made for each instance and has no records.

mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use serde_json::Value;
use switchyard_events::{now_ms, BoxFuture, BoxFutureHub, HubError, HubLister, HubPage, Poller, PollerSettings};
use switchyard_store::{InstanceRow, InstanceUpdate, NewValue, PollTurn};

#[derive(Default, Clone)]
struct Vendor {
    /// List calls per instance id.
    calls: Arc<Mutex<HashMap<i64, usize>>>,
}

impl Vendor {
    fn calls(&self, instance_id: i64) -> usize {
        self.calls.lock().unwrap().get(&instance_id).copied().unwrap_or(0)
    }
}

impl HubLister for Vendor {
    fn list_page<'a>(&'a self, instance: &'a InstanceRow, _path: &'a str, _query: &'a [(String, String)]) -> BoxFutureHub<'a> {
        Box::pin(async move {
            *self.calls.lock().unwrap().entry(instance.id).or_default() += 1;
            Ok(HubPage::default())
        })
    }

    fn get_record<'a>(&'a self, _org: i64, _instance: i64, _object: &'a str, _id: &'a str) -> BoxFuture<'a, Result<Option<Value>, HubError>> {
        Box::pin(async { Ok(None) })
    }
}

/// A poller ticking every 20 ms whose sweep (the look for changes nobody told
/// of) comes every `sweep`, running until the returned sender is dropped or sent.
fn start(s: &Setup, vendor: &Vendor, sweep: Duration) -> (Poller, tokio::sync::oneshot::Sender<()>, tokio::task::JoinHandle<()>) {
    let settings = PollerSettings { tick: Duration::from_millis(20), sweep, ..Default::default() };
    let poller = Poller::new(s.ctx.clone(), Arc::new(vendor.clone()), settings, None);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(poller.clone().run(async move {
        let _ = stopped.await;
    }));
    (poller, stop, running)
}

/// Events on, polling the orders every `minutes`.
fn polling(minutes: &'static str) -> [(&'static str, &'static str); 3] {
    [("event.notification.enabled", "true"), ("event.objects", "orders"), ("event.poller.refresh_interval", minutes)]
}

async fn turn(s: &Setup, instance_id: i64) -> Option<PollTurn> {
    s.ctx.store.poll_turns().await.unwrap().into_iter().find(|t| t.instance_id == instance_id)
}

/// Writes configuration values as the server's PATCH does (the instance's
/// `updated_at` moves).
async fn patch(s: &Setup, instance_id: i64, update: InstanceUpdate, values: &[(&str, &str)]) {
    let values: Vec<(String, NewValue)> = values.iter().map(|(k, v)| (k.to_string(), NewValue::Plain(v.to_string()))).collect();
    // Two writes in one millisecond would carry the same `updated_at`.
    tokio::time::sleep(Duration::from_millis(5)).await;
    let sealer = VaultSealer(s.ctx.vault.clone());
    assert!(s.ctx.store.update_instance(s.org, instance_id, &update, &values, false, &sealer).await.unwrap());
}

#[tokio::test]
async fn a_new_interval_takes_effect_when_told_and_when_swept() {
    let s = setup().await;
    let vendor = Vendor::default();
    // A day: first due at a random point of the next 24 hours. The told instance is
    // not the first (id 1), so telling of another id cannot pass for it.
    let swept = s.instance(&polling("1440")).await;
    let told = s.instance(&polling("1440")).await;
    assert_ne!(told.id, 1);
    // Nothing tells this poller of writes: only its sweep finds them.
    let (_quiet, stop_quiet, quiet_run) = start(&s, &vendor, Duration::from_millis(300));
    until_async(Duration::from_secs(20), "both instances on the schedule", || async {
        turn(&s, told.id).await.is_some() && turn(&s, swept.id).await.is_some()
    })
    .await;
    assert_eq!(turn(&s, swept.id).await.unwrap().interval_ms, 86_400_000);
    // Ten ticks on, neither has polled: the first poll of each is at a random point
    // of its first day, not now (the chance it falls in this second is 1 in 86,400).
    let scheduled = std::time::Instant::now();
    until(Duration::from_secs(5), "ten ticks", || scheduled.elapsed() > Duration::from_millis(200)).await;
    assert_eq!((vendor.calls(swept.id), vendor.calls(told.id)), (0, 0), "not polled yet");
    // 0.01 minutes is below the shortest interval honoured: one second.
    patch(&s, swept.id, InstanceUpdate::default(), &[("event.poller.refresh_interval", "0.01")]).await;
    until_async(Duration::from_secs(20), "the sweep to find the new interval", || async {
        turn(&s, swept.id).await.is_some_and(|t| t.interval_ms == 1_000)
    })
    .await;
    until(Duration::from_secs(20), "polls at the new interval", || vendor.calls(swept.id) >= 2).await;
    let _ = stop_quiet.send(());
    quiet_run.await.unwrap();

    // Told at once: a poller whose sweep never comes in this test. Once it polled
    // (so its first look, which opens everything, is done), the change is told.
    let (told_poller, _stop, _run) = start(&s, &vendor, Duration::from_secs(3600));
    let polled = vendor.calls(swept.id);
    until(Duration::from_secs(20), "the second poller at work", || vendor.calls(swept.id) > polled).await;
    assert_eq!(turn(&s, told.id).await.unwrap().interval_ms, 86_400_000);
    patch(&s, told.id, InstanceUpdate::default(), &[("event.poller.refresh_interval", "0.01")]).await;
    told_poller.schedule_waker().changed(told.id);
    until_async(Duration::from_secs(20), "the told poller to re-time the instance", || async {
        turn(&s, told.id).await.is_some_and(|t| t.interval_ms == 1_000)
    })
    .await;
    until(Duration::from_secs(20), "polls of the told instance", || vendor.calls(told.id) >= 2).await;

    // "Anything may have changed" (another node's announcements were missed): every
    // configuration is opened again at the next tick, not at the sweep.
    patch(&s, swept.id, InstanceUpdate::default(), &[("event.poller.refresh_interval", "0.05")]).await;
    told_poller.schedule_waker().changed_all();
    until_async(Duration::from_secs(20), "the poller to re-time every instance", || async {
        turn(&s, swept.id).await.is_some_and(|t| t.interval_ms == 3_000)
    })
    .await;
}

#[tokio::test]
async fn a_disabled_or_deleted_instance_is_never_polled_again() {
    let s = setup().await;
    let vendor = Vendor::default();
    let disabled = s.instance(&polling("0.01")).await;
    let deleted = s.instance(&polling("0.01")).await;
    let events_off = s.instance(&polling("0.01")).await;
    let stays = s.instance(&polling("0.01")).await;
    // The sweep never comes and nobody is told: the claims alone must skip them.
    let (_p, _stop, _run) = start(&s, &vendor, Duration::from_secs(3600));
    until(Duration::from_secs(20), "a poll of each", || [&disabled, &deleted, &events_off, &stays].iter().all(|i| vendor.calls(i.id) > 0))
        .await;

    assert!(s.ctx.store.set_disabled(s.org, disabled.id, true).await.unwrap());
    assert!(s.ctx.store.delete_instance(s.org, deleted.id).await.unwrap());
    patch(&s, events_off.id, InstanceUpdate { events_enabled: Some(false), ..Default::default() }, &[("event.notification.enabled", "false")])
        .await;
    // A poll claimed just before may still be running: let it end.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before: Vec<usize> = [&disabled, &deleted, &events_off].iter().map(|i| vendor.calls(i.id)).collect();
    let stays_before = vendor.calls(stays.id);
    // Three intervals on, the one left on polled again, and nothing else did.
    until(Duration::from_secs(30), "three more polls of the instance left on", || vendor.calls(stays.id) >= stays_before + 3).await;
    let after: Vec<usize> = [&disabled, &deleted, &events_off].iter().map(|i| vendor.calls(i.id)).collect();
    assert_eq!(after, before, "disabled, deleted, events off: no more polls");
}

/// A claimed turn opens the configuration: one that turned to vendor webhooks since
/// the last look is not polled but taken off the schedule, though nothing told of
/// the change and no sweep came.
#[tokio::test]
async fn a_claimed_turn_of_an_instance_turned_to_webhooks_is_not_polled() {
    let s = setup().await;
    let vendor = Vendor::default();
    let instance = s.instance(&polling("0.01")).await;
    let stays = s.instance(&polling("0.01")).await;
    let (_p, _stop, _run) = start(&s, &vendor, Duration::from_secs(3600));
    until(Duration::from_secs(20), "a first poll", || vendor.calls(instance.id) > 0).await;
    patch(&s, instance.id, InstanceUpdate::default(), &[("event.vendor.type", "webhook")]).await;
    until_async(Duration::from_secs(20), "its turn forgotten at its next claim", || async { turn(&s, instance.id).await.is_none() }).await;
    // A poll claimed before the change may still be running: let it end.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let polled = vendor.calls(instance.id);
    // Two intervals on (the instance still polling is the clock), no poll of it.
    let clock = vendor.calls(stays.id);
    until(Duration::from_secs(20), "two more polls of the other instance", || vendor.calls(stays.id) >= clock + 2).await;
    assert_eq!(vendor.calls(instance.id), polled, "webhook events: no polls");
    assert!(turn(&s, instance.id).await.is_none(), "and not put back on the schedule");
}

#[tokio::test]
async fn a_sweep_takes_instances_without_polling_off_the_schedule() {
    let s = setup().await;
    let vendor = Vendor::default();
    let disabled = s.instance(&polling("0.01")).await;
    let events_off = s.instance(&polling("0.01")).await;
    let (_p, _stop, _run) = start(&s, &vendor, Duration::from_millis(200));
    until_async(Duration::from_secs(20), "both on the schedule", || async {
        turn(&s, disabled.id).await.is_some() && turn(&s, events_off.id).await.is_some()
    })
    .await;
    assert!(s.ctx.store.set_disabled(s.org, disabled.id, true).await.unwrap());
    patch(&s, events_off.id, InstanceUpdate { events_enabled: Some(false), ..Default::default() }, &[("event.notification.enabled", "false")])
        .await;
    until_async(Duration::from_secs(20), "their turns forgotten", || async {
        turn(&s, disabled.id).await.is_none() && turn(&s, events_off.id).await.is_none()
    })
    .await;
    // Enabled again: back on the schedule, polling from then.
    assert!(s.ctx.store.set_disabled(s.org, disabled.id, false).await.unwrap());
    until_async(Duration::from_secs(20), "the enabled instance back on the schedule", || async {
        turn(&s, disabled.id).await.is_some()
    })
    .await;
}

#[tokio::test]
async fn polls_resume_after_a_restart_at_their_turns() {
    let s = setup().await;
    let vendor = Vendor::default();
    // 0.2 minutes: 12 s.
    let instances = [s.instance(&polling("0.2")).await, s.instance(&polling("0.2")).await, s.instance(&polling("0.2")).await];
    // Turns kept from before the restart: 2, 4 and 6 s from now.
    let now = now_ms();
    let due: Vec<i64> = (1..=3).map(|n| now + 2_000 * n).collect();
    for (instance, at) in instances.iter().zip(&due) {
        s.ctx.store.schedule_poll(instance.id, 12_000, *at).await.unwrap();
    }
    let (_p, _stop, _run) = start(&s, &vendor, Duration::from_secs(10));
    for (instance, at) in instances.iter().zip(&due) {
        let polled = until_some(Duration::from_secs(30), "the first poll after the restart", || async {
            s.ctx.store.poll_status(instance.id).await.unwrap().map(|p| p.polled_at)
        })
        .await;
        assert!(polled >= *at, "polled at {polled}, before its turn at {at}");
        assert!(polled < at + 12_000, "polled at {polled}, a whole interval after its turn at {at}");
    }
    // Each kept its turn: the next is one interval after the one just taken.
    for (instance, at) in instances.iter().zip(&due) {
        assert_eq!(turn(&s, instance.id).await.unwrap().next_due, at + 12_000);
    }
}

/// A look opens at most 500 configurations and the next tick goes on with the rest
/// (due polls are claimed in between), so every instance is on the schedule within
/// a few ticks however many start at once, not at the next sweep.
#[tokio::test]
async fn more_instances_than_one_look_opens_are_all_scheduled_within_ticks() {
    let s = setup().await;
    let vendor = Vendor::default();
    // Marks from a day ago, as a poller before a restart left them: they stay,
    // also for the instances the first look leaves for the next tick.
    let day_ago = now_ms() - 86_400_000;
    let mut ids = Vec::new();
    for _ in 0..501 {
        let id = s.instance(&polling("1440")).await.id;
        s.ctx.store.poll_mark(id, "orders", day_ago).await.unwrap();
        ids.push(id);
    }
    let (_p, _stop, _run) = start(&s, &vendor, Duration::from_secs(3600));
    until_async(Duration::from_secs(30), "all 501 instances on the schedule", || async {
        s.ctx.store.poll_turns().await.unwrap().len() == 501
    })
    .await;
    for id in ids {
        assert_eq!(s.ctx.store.poll_mark(id, "orders", now_ms()).await.unwrap(), day_ago, "instance {id}'s mark kept");
    }
}

/// At its first look at every instance, the scheduler forgets the marks of any that
/// stopped polling while no poller ran (events turned off meanwhile): turning
/// events on again then starts from that moment instead of replaying the vendor's
/// history since the old mark. The marks of those still polling stay.
#[tokio::test]
async fn marks_of_instances_that_stopped_polling_meanwhile_are_forgotten_at_start() {
    let s = setup().await;
    let vendor = Vendor::default();
    let stopped = s.instance(&polling("1440")).await;
    let stays = s.instance(&polling("1440")).await;
    // Marks from a day ago, as a poller before a restart left them.
    let day_ago = now_ms() - 86_400_000;
    for id in [stopped.id, stays.id] {
        assert_eq!(s.ctx.store.poll_mark(id, "orders", day_ago).await.unwrap(), day_ago);
    }
    patch(&s, stopped.id, InstanceUpdate { events_enabled: Some(false), ..Default::default() }, &[("event.notification.enabled", "false")])
        .await;
    let (_p, _stop, _run) = start(&s, &vendor, Duration::from_secs(3600));
    // Reading a mark that is gone starts a new one at the value given.
    let fresh = now_ms();
    // Until the scheduler's forget, the read finds the old mark.
    until_async(Duration::from_secs(10), "the old mark of the instance that stopped forgotten", || async {
        s.ctx.store.poll_mark(stopped.id, "orders", fresh).await.unwrap() == fresh
    })
    .await;
    assert_eq!(s.ctx.store.poll_mark(stays.id, "orders", fresh).await.unwrap(), day_ago, "kept");
}

/// A vendor whose first list call waits until the test opens the gate.
#[derive(Clone)]
struct Gated {
    vendor: Vendor,
    gate: Arc<tokio::sync::Semaphore>,
    /// The instance whose call is held.
    held: Arc<Mutex<Option<i64>>>,
}

impl HubLister for Gated {
    fn list_page<'a>(&'a self, instance: &'a InstanceRow, path: &'a str, query: &'a [(String, String)]) -> BoxFutureHub<'a> {
        Box::pin(async move {
            let first = {
                let mut held = self.held.lock().unwrap();
                held.is_none().then(|| *held = Some(instance.id)).is_some()
            };
            if first {
                let _open = self.gate.acquire().await;
            }
            self.vendor.list_page(instance, path, query).await
        })
    }

    fn get_record<'a>(&'a self, _org: i64, _instance: i64, _object: &'a str, _id: &'a str) -> BoxFuture<'a, Result<Option<Value>, HubError>> {
        Box::pin(async { Ok(None) })
    }
}

/// A claimed poll may wait for a free slot behind a slow vendor: the instance is
/// read when the slot comes, so one disabled meanwhile is not polled.
#[tokio::test]
async fn a_claimed_poll_waiting_for_a_slot_skips_an_instance_disabled_meanwhile() {
    let s = setup().await;
    let gated = Gated { vendor: Vendor::default(), gate: Arc::new(tokio::sync::Semaphore::new(0)), held: Arc::default() };
    let one = s.instance(&polling("0.01")).await;
    let two = s.instance(&polling("0.01")).await;
    // One poll at a time, one claim per statement: the first poll is held at the
    // vendor, the other instance is claimed and waits for the slot.
    let settings = PollerSettings { tick: Duration::from_millis(20), sweep: Duration::from_secs(3600), concurrency: 1, claim_batch: 1, ..Default::default() };
    let poller = Poller::new(s.ctx.clone(), Arc::new(gated.clone()), settings, None);
    let (_stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(poller.run(async move {
        let _ = stopped.await;
    }));
    let held = until_some(Duration::from_secs(10), "a poll held at the vendor", || async { *gated.held.lock().unwrap() }).await;
    let waiting = if held == one.id { two.id } else { one.id };
    let due = turn(&s, waiting).await.unwrap().next_due;
    until(Duration::from_secs(10), "the other instance due and claimed", || now_ms() > due + 200).await;
    assert!(s.ctx.store.set_disabled(s.org, waiting, true).await.unwrap());
    gated.gate.add_permits(1);
    until(Duration::from_secs(20), "the held instance polled again", || gated.vendor.calls(held) >= 2).await;
    assert_eq!(gated.vendor.calls(waiting), 0, "disabled while it waited: not polled");
}
