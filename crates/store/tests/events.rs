//! Events, deliveries, polling marks, webhooks and tenants on both backends (see
//! support/mod.rs): the operations the engine and server crates test on SQLite only.

use switchyard_store::*;

#[macro_use]
mod support;
use support::TestDb;

struct NoSeal;
impl Sealer for NoSeal {
    fn seal(&self, _: i64, _: &str, p: &str) -> (Vec<u8>, u32) {
        (p.as_bytes().to_vec(), 7)
    }
}

fn new_instance(org: i64, user: i64, token: &[u8], events: bool) -> NewInstance {
    NewInstance {
        organization_id: org,
        user_id: user,
        element_key: "bigcommerce".into(),
        name: "shop".into(),
        token_hash: token.to_vec(),
        tags: vec![],
        events_enabled: events,
        webhook: None,
    }
}

fn event(org: i64, instance: i64, id: &str) -> NewEvent {
    NewEvent {
        event_id: id.into(),
        organization_id: org,
        instance_id: instance,
        element_key: "bigcommerce".into(),
        source: "polling".into(),
        status: "NEW".into(),
        event_date: "2026-01-01T00:00:00.000Z".into(),
        provider_data: "{}".into(),
        notified_data: "[]".into(),
        raw: "{}".into(),
    }
}

fn outcome(claim: &ClaimedDelivery, state: DeliveryState, at: i64) -> DeliveryOutcome {
    DeliveryOutcome {
        event_row: claim.event_row,
        lease_until: claim.lease_until,
        state,
        attempts: claim.attempts + 1,
        next_attempt_at: (state == DeliveryState::Pending).then_some(at + 1_000),
        last_status: Some(if state == DeliveryState::Delivered { 200 } else { 500 }),
        last_error: None,
        attempted_at: at,
        stop_url: None,
        raw: None,
    }
}

on_both! {
    async fn tenants_meta_and_instance_flags(backend: Backend) {
        let db = TestDb::new(backend).await;
        let s = &db.store;
        s.ping().await.unwrap();
        assert_eq!(s.meta_get("k").await.unwrap(), None);
        assert_eq!(s.meta_get_or_insert("k", b"one").await.unwrap(), b"one");
        assert_eq!(s.meta_get_or_insert("k", b"two").await.unwrap(), b"one", "the first value stays");
        s.meta_set("k", b"three").await.unwrap();
        assert_eq!(s.meta_get("k").await.unwrap().as_deref(), Some(&b"three"[..]));

        assert_eq!(s.organization_count().await.unwrap(), 0);
        let (a, ua) = s.create_organization("a", b"oa", "a@x", b"ua").await.unwrap();
        let (b, _) = s.create_organization("b", b"ob", "b@x", b"ub").await.unwrap();
        assert_eq!(s.organizations().await.unwrap().iter().map(|o| o.name.as_str()).collect::<Vec<_>>(), ["a", "b"]);
        let second = s.create_user(a.id, "c@x", b"uc").await.unwrap();
        assert!(matches!(s.create_user(a.id, "c@x", b"ud").await, Err(StoreError::Conflict(_))), "same email twice");
        assert!(matches!(s.create_user(9_999, "e@x", b"ue").await, Err(StoreError::Conflict(_))), "no organization");
        assert_eq!(s.users(Some(a.id)).await.unwrap().len(), 2);
        assert_eq!(s.users(None).await.unwrap().len(), 3);
        assert!(s.reset_user_secret(second.id, b"uc2").await.unwrap());
        assert!(s.reset_organization_secret(a.id, b"oa2").await.unwrap());
        assert!(!s.reset_organization_secret(9_999, b"x").await.unwrap());
        assert!(s.authenticate(b"uc", b"oa2").await.unwrap().is_none(), "the old user secret is gone");
        assert_eq!(s.authenticate(b"uc2", b"oa2").await.unwrap().unwrap().user_id, second.id);

        let config = vec![("password".to_string(), NewValue::Secret("p".into()))];
        let id = s.create_instance(&new_instance(a.id, ua.id, b"t", true), &config, &NoSeal).await.unwrap();
        let row = s.instance(a.id, id).await.unwrap().unwrap();
        assert!(row.valid && !row.disabled && row.events_enabled);
        assert_eq!(s.instances_with_events().await.unwrap().len(), 1);
        assert!(!s.set_disabled(b.id, id, true).await.unwrap(), "another organization's instance");
        assert!(s.set_disabled(a.id, id, true).await.unwrap());
        assert!(s.instance(a.id, id).await.unwrap().unwrap().disabled);
        assert!(s.instances_with_events().await.unwrap().is_empty(), "a disabled instance wants no events");

        s.set_account_zone(id, Some("America/New_York")).await.unwrap();
        assert_eq!(s.instance_by_id(id).await.unwrap().unwrap().account_zone.as_deref(), Some("America/New_York"));
        let update = InstanceUpdate { valid: Some(false), forget_account_zone: true, ..Default::default() };
        assert!(s.update_instance(a.id, id, &update, &[], false, &NoSeal).await.unwrap());
        let row = s.instance_by_id(id).await.unwrap().unwrap();
        assert_eq!((row.valid, row.account_zone), (false, None));
        assert_eq!(s.sealed_rows_not_under(7, 10).await.unwrap().len(), 0, "sealed under key 7 already");
        assert_eq!(s.sealed_rows_not_under(8, 10).await.unwrap().len(), 1);
    }
}

on_both! {
    async fn deliveries_are_claimed_finished_redelivered_and_pruned(backend: Backend) {
        let db = TestDb::new(backend).await;
        let s = &db.store;
        let (org, user) = s.create_organization("a", b"oa", "a@x", b"ua").await.unwrap();
        let inst = s.create_instance(&new_instance(org.id, user.id, b"t", true), &[], &NoSeal).await.unwrap();
        s.insert_events(&[event(org.id, inst, "e1"), event(org.id, inst, "e2"), event(org.id, inst, "e3")], 100).await.unwrap();
        assert_eq!(s.next_delivery_due().await.unwrap(), Some(100));
        assert!(s.claim_deliveries(99, 1_000, 10).await.unwrap().is_empty(), "not due yet");

        let claimed = s.claim_deliveries(100, 1_000, 2).await.unwrap();
        assert_eq!(claimed.iter().map(|c| c.event_id.as_str()).collect::<Vec<_>>(), ["e1", "e2"]);
        assert!(claimed.iter().all(|c| c.lease_until == 1_000 && c.attempts == 0));
        let rest = s.claim_deliveries(100, 1_000, 10).await.unwrap();
        assert_eq!(rest.iter().map(|c| c.event_id.as_str()).collect::<Vec<_>>(), ["e3"], "leased jobs are not claimed twice");
        assert_eq!(s.next_delivery_due().await.unwrap(), Some(1_000), "due again when the leases lapse");

        // e1 delivered; e2 fails and retries; e3 answers 410 and stops its URL.
        let mut stop = outcome(&rest[0], DeliveryState::Stopped, 200);
        stop.stop_url = Some("https://receiver.example/hook".into());
        let stale = DeliveryOutcome { lease_until: 5, ..outcome(&claimed[1], DeliveryState::Failed, 200) };
        s.finish_deliveries(&[
            outcome(&claimed[0], DeliveryState::Delivered, 200),
            stale,
            outcome(&claimed[1], DeliveryState::Pending, 200),
            stop,
        ])
        .await
        .unwrap();
        let e1 = s.event(org.id, Some(inst), "e1").await.unwrap().unwrap();
        assert_eq!((e1.delivery_state.as_str(), e1.status.as_str(), e1.attempts), ("delivered", "NOTIFIED", 1));
        let e2 = s.event(org.id, None, "e2").await.unwrap().unwrap();
        assert_eq!((e2.delivery_state.as_str(), e2.status.as_str()), ("pending", "DISPATCHED"), "the stale lease's failure is dropped");
        assert_eq!(e2.next_attempt_at, Some(1_200));
        assert_eq!(s.stopped_callbacks(&[inst, 9_999]).await.unwrap(), [(inst, "https://receiver.example/hook".to_string())]);
        assert!(s.event(org.id + 1, None, "e1").await.unwrap().is_none(), "another organization");

        let page = EventQuery { organization_id: org.id, instance_id: Some(inst), before: None, offset: 0, limit: 2 };
        let newest: Vec<_> = s.events(&page).await.unwrap().into_iter().map(|e| e.event_id).collect();
        assert_eq!(newest, ["e3", "e2"]);
        let below = s.events(&page).await.unwrap()[1].id;
        let older = EventQuery { instance_id: None, before: Some(below), ..page };
        assert_eq!(s.events(&older).await.unwrap().into_iter().map(|e| e.event_id).collect::<Vec<_>>(), ["e1"]);

        // Redelivery queues e3 again and lifts the stop; the instance-wide one skips e1 (delivered).
        assert!(s.redeliver_event(org.id, "e3", 300).await.unwrap());
        assert!(!s.redeliver_event(org.id, "nope", 300).await.unwrap());
        assert!(s.stopped_callbacks(&[inst]).await.unwrap().is_empty());
        assert_eq!(s.redeliver_instance(org.id, inst, 400).await.unwrap(), Some(2));
        assert_eq!(s.redeliver_instance(org.id + 1, inst, 400).await.unwrap(), None);

        // Only finished deliveries last attempted before the cut are pruned.
        assert_eq!(s.prune_events(201, 10).await.unwrap(), 1);
        assert!(s.event(org.id, None, "e1").await.unwrap().is_none());
        assert!(s.event(org.id, None, "e2").await.unwrap().is_some());
    }
}

on_both! {
    async fn a_webhook_event_keeps_the_record_read_for_its_first_attempt(backend: Backend) {
        let db = TestDb::new(backend).await;
        let s = &db.store;
        let (org, user) = s.create_organization("a", b"oa", "a@x", b"ua").await.unwrap();
        let inst = s.create_instance(&new_instance(org.id, user.id, b"t", true), &[], &NoSeal).await.unwrap();
        let received = |id: &str| NewEvent { source: "webhook".into(), status: "RECEIVED".into(), ..event(org.id, inst, id) };
        s.insert_events(&[received("w1"), received("w2"), received("w3")], 100).await.unwrap();
        let claimed = s.claim_deliveries(100, 1_000, 10).await.unwrap();
        let record = r#"{"id":7}"#.to_string();
        // w1: read and delivered; w2: read, then the receiver failed; w3: the read failed.
        let read_failed = DeliveryOutcome { last_status: None, last_error: Some("vendor 503".into()), ..outcome(&claimed[2], DeliveryState::Pending, 200) };
        s.finish_deliveries(&[
            DeliveryOutcome { raw: Some(record.clone()), ..outcome(&claimed[0], DeliveryState::Delivered, 200) },
            DeliveryOutcome { raw: Some(record.clone()), ..outcome(&claimed[1], DeliveryState::Pending, 200) },
            read_failed,
        ])
        .await
        .unwrap();
        let get = |id: &'static str| async move { s.event(org.id, None, id).await.unwrap().unwrap() };
        let (w1, w2, w3) = (get("w1").await, get("w2").await, get("w3").await);
        assert_eq!((w1.status.as_str(), w1.raw.as_str()), ("NOTIFIED", record.as_str()));
        assert_eq!((w2.status.as_str(), w2.raw.as_str(), w2.delivery_state.as_str()), ("DISPATCHED", record.as_str(), "pending"));
        assert_eq!((w3.status.as_str(), w3.raw.as_str()), ("RECEIVED", "{}"), "no record read: the next attempt reads it");
        assert_eq!(w3.last_error.as_deref(), Some("vendor 503"));

        // A later record never replaces the one sent first.
        let again = s.claim_deliveries(2_000, 3_000, 10).await.unwrap();
        let w2_again = again.iter().find(|c| c.event_id == "w2").unwrap();
        s.finish_deliveries(&[DeliveryOutcome { raw: Some("{}".into()), ..outcome(w2_again, DeliveryState::Delivered, 2_000) }]).await.unwrap();
        let w2 = get("w2").await;
        assert_eq!((w2.status.as_str(), w2.raw.as_str()), ("NOTIFIED", record.as_str()));
    }
}

on_both! {
    // Found by a clean-clone CI run: the mark was started by one statement and read by
    // a second, so a forget landing between them made the start fail (`RowNotFound`).
    async fn a_mark_started_while_it_is_forgotten_is_never_an_error(backend: Backend) {
        let db = TestDb::new(backend).await;
        let s = &db.store;
        let (org, user) = s.create_organization("a", b"oa", "a@x", b"ua").await.unwrap();
        let one = s.create_instance(&new_instance(org.id, user.id, b"t1", true), &[], &NoSeal).await.unwrap();
        let forgetter = {
            let s = s.clone();
            tokio::spawn(async move {
                for _ in 0..300 {
                    s.forget_polls(&[one]).await.unwrap();
                }
            })
        };
        for round in 0..300 {
            let mark = s.poll_mark(one, "orders", round).await.unwrap_or_else(|e| panic!("start {round}: {e}"));
            assert!((0..=round).contains(&mark), "a mark started at or before now: {mark} at {round}");
        }
        forgetter.await.unwrap();
    }
}

on_both! {
    async fn polls_emit_each_change_once_and_marks_only_move_forward(backend: Backend) {
        let db = TestDb::new(backend).await;
        let s = &db.store;
        let (org, user) = s.create_organization("a", b"oa", "a@x", b"ua").await.unwrap();
        let one = s.create_instance(&new_instance(org.id, user.id, b"t1", true), &[], &NoSeal).await.unwrap();
        let two = s.create_instance(&new_instance(org.id, user.id, b"t2", true), &[], &NoSeal).await.unwrap();
        assert_eq!(s.poll_mark(one, "orders", 50).await.unwrap(), 50);
        assert_eq!(s.poll_mark(one, "orders", 70).await.unwrap(), 50, "an existing mark stays");
        let cand = |object: &str, updated: i64, id: &str| PollCandidate { object_id: object.into(), updated_at: updated, event: event(org.id, one, id) };
        assert_eq!(s.commit_poll(one, "orders", 200, 0, None, 0, &[cand("o1", 100, "p1"), cand("o2", 150, "p2")], 0).await.unwrap(), 2);
        // The overlap window reads o2 again (same date: nothing) and a change of o1.
        assert_eq!(s.commit_poll(one, "orders", 150, 1, None, 0, &[cand("o2", 150, "p3"), cand("o1", 160, "p4")], 0).await.unwrap(), 1);
        assert_eq!(s.poll_mark(one, "orders", 0).await.unwrap(), 200, "the mark never moves back");
        let mut seen = s.poll_seen_ids(one, "orders").await.unwrap();
        seen.sort();
        assert_eq!(seen, ["o1", "o2"]);
        assert_eq!(s.commit_poll(one, "orders", 300, 2, None, 155, &[], 0).await.unwrap(), 0);
        assert_eq!(s.poll_seen_ids(one, "orders").await.unwrap(), ["o1"], "pairs before the cut are forgotten");

        // An unfinished listing: its position is kept beside the mark, until a commit
        // without one (the listing read to its end) clears it.
        // Each commit counts: a late one (begun at an older count) leaves the position.
        let position = |resume: Option<&str>, high_water: i64, resume_version: i64| PollPosition {
            high_water,
            resume: resume.map(str::to_owned),
            resume_version,
        };
        assert_eq!(s.poll_position(one, "orders", 0).await.unwrap(), position(None, 300, 3));
        assert_eq!(s.commit_poll(one, "orders", 300, 3, Some("page 2"), 155, &[cand("o3", 310, "p5")], 0).await.unwrap(), 1);
        assert_eq!(s.poll_position(one, "orders", 0).await.unwrap(), position(Some("page 2"), 300, 4));
        // A late poll that began before "page 2" was stored leaves it.
        assert_eq!(s.commit_poll(one, "orders", 300, 3, Some("page 1"), 155, &[], 0).await.unwrap(), 0);
        assert_eq!(s.poll_position(one, "orders", 0).await.unwrap(), position(Some("page 2"), 300, 5));
        assert_eq!(s.commit_poll(one, "orders", 320, 5, None, 155, &[], 0).await.unwrap(), 0);
        assert_eq!(s.poll_position(one, "orders", 0).await.unwrap(), position(None, 320, 6));
        // Also when the position it began from was "none" too (a listing ended between).
        assert_eq!(s.commit_poll(one, "orders", 320, 3, Some("page 4"), 155, &[], 0).await.unwrap(), 0);
        assert_eq!(s.poll_position(one, "orders", 0).await.unwrap(), position(None, 320, 7));
        // Pairs were forgotten below 155: a late poll's record dated before that is
        // not announced (again); one dated after is.
        assert_eq!(s.commit_poll(one, "orders", 320, 7, None, 0, &[cand("o4", 154, "p6"), cand("o4", 155, "p7")], 0).await.unwrap(), 1);

        s.poll_mark(two, "orders", 10).await.unwrap();
        s.forget_poll_marks_except(&[two]).await.unwrap();
        // A poll that was under way when its polling was turned off records nothing,
        // and does not bring the mark back.
        assert_eq!(s.commit_poll(one, "orders", 500, 8, Some("page 9"), 0, &[cand("o9", 400, "p9")], 0).await.unwrap(), 0);
        assert!(s.event(org.id, None, "p9").await.unwrap().is_none(), "a forgotten poll's event is not stored");
        assert_eq!(s.poll_mark(one, "orders", 999).await.unwrap(), 999, "one's mark was forgotten");
        assert_eq!(s.poll_mark(two, "orders", 999).await.unwrap(), 10);
        assert!(s.poll_seen_ids(one, "orders").await.unwrap().is_empty());

        // Forgetting named instances leaves the others.
        s.schedule_poll(one, 1_000, 0).await.unwrap();
        s.schedule_poll(two, 1_000, 0).await.unwrap();
        s.forget_polls(&[two]).await.unwrap();
        assert_eq!(s.poll_mark(two, "orders", 999).await.unwrap(), 999, "two's mark was forgotten");
        let turns: Vec<i64> = s.poll_turns().await.unwrap().iter().map(|t| t.instance_id).collect();
        assert_eq!(turns, [one], "and its turn");
    }
}

on_both! {
    /// What the poller's scheduler reads: every write of an instance or its
    /// configuration moves the stamp; instances without events have none.
    async fn events_stamps_move_with_every_write(backend: Backend) {
        let db = TestDb::new(backend).await;
        let s = &db.store;
        let (org, user) = s.create_organization("a", b"oa", "a@x", b"ua").await.unwrap();
        let on = s.create_instance(&new_instance(org.id, user.id, b"t1", true), &[], &NoSeal).await.unwrap();
        let off = s.create_instance(&new_instance(org.id, user.id, b"t2", false), &[], &NoSeal).await.unwrap();
        let stamp = || async { s.events_stamps().await.unwrap().into_iter().map(|st| (st.id, st.updated_at)).collect::<Vec<_>>() };
        let first = stamp().await;
        assert_eq!(first.iter().map(|(id, _)| *id).collect::<Vec<_>>(), [on], "events off: no stamp");
        let later = || tokio::time::sleep(std::time::Duration::from_millis(5));
        later().await;
        let config = vec![("event.poller.refresh_interval".to_string(), NewValue::Plain("5".into()))];
        assert!(s.update_instance(org.id, on, &InstanceUpdate::default(), &config, false, &NoSeal).await.unwrap());
        let second = stamp().await;
        assert_ne!(first, second, "a configuration write moves it");
        later().await;
        assert!(s.set_disabled(org.id, on, true).await.unwrap());
        assert!(stamp().await.is_empty(), "disabled: no stamp");
        assert!(s.set_disabled(org.id, on, false).await.unwrap());
        assert_ne!(stamp().await, second, "enabling moves it");
        let of: Vec<i64> = s.events_stamps_of(&[on, off, 9_999]).await.unwrap().into_iter().map(|st| st.id).collect();
        assert_eq!(of, [on], "of those asked for, the ones that want events");
        assert!(s.events_stamps_of(&[]).await.unwrap().is_empty());
    }
}

on_both! {
    async fn webhooks_are_stored_found_replaced_and_removed(backend: Backend) {
        let db = TestDb::new(backend).await;
        let s = &db.store;
        let (org, user) = s.create_organization("a", b"oa", "a@x", b"ua").await.unwrap();
        let hook = |key: &str| WebhookRow {
            instance_id: 0,
            element_key: "bigcommerce".into(),
            instance_key: key.into(),
            secret_hash: b"h".to_vec(),
            hooks: vec![VendorHook { object: "orders".into(), scope: "store/order/*".into(), id: "1".into() }],
            destination: "https://switchyard.example/events".into(),
        };
        let new = NewInstance { webhook: Some(hook("k1")), ..new_instance(org.id, user.id, b"t", true) };
        let id = s.create_instance(&new, &[], &NoSeal).await.unwrap();
        let stored = s.webhook(id).await.unwrap().unwrap();
        assert_eq!((stored.instance_id, stored.instance_key.as_str(), stored.hooks.len()), (id, "k1", 1));
        assert_eq!(s.webhooks().await.unwrap().len(), 1);
        let target = s.webhook_target("bigcommerce", "k1").await.unwrap().unwrap();
        assert_eq!((target.organization_id, target.disabled), (org.id, false));
        assert!(s.webhook_target("shopify", "k1").await.unwrap().is_none(), "another element's path");

        let moved = WebhookRow { instance_id: id, ..hook("k2") };
        assert!(!s.replace_webhook("stale", &moved).await.unwrap(), "changed meanwhile");
        assert!(s.replace_webhook("k1", &moved).await.unwrap());
        assert_eq!(s.webhook(id).await.unwrap().unwrap().instance_key, "k2");

        let remove = InstanceUpdate { webhook: Some(None), ..Default::default() };
        assert!(s.update_instance(org.id, id, &remove, &[], false, &NoSeal).await.unwrap());
        assert!(s.webhook(id).await.unwrap().is_none());
    }
}

on_both! {
    /// Claims racing on one database (several workers, or several servers) never
    /// hand one job to two of them while its lease runs.
    async fn concurrent_claims_never_take_a_job_twice(backend: Backend) {
        let db = TestDb::new(backend).await;
        let s = &db.store;
        let (org, user) = s.create_organization("a", b"oa", "a@x", b"ua").await.unwrap();
        let inst = s.create_instance(&new_instance(org.id, user.id, b"t", true), &[], &NoSeal).await.unwrap();
        let events: Vec<_> = (0..300).map(|n| event(org.id, inst, &format!("e{n}"))).collect();
        s.insert_events(&events, 0).await.unwrap();
        let workers: Vec<_> = (0..6)
            .map(|_| {
                let s = s.clone();
                tokio::spawn(async move {
                    let mut mine = Vec::new();
                    loop {
                        let got = s.claim_deliveries(1, 1_000_000, 7).await.unwrap();
                        if got.is_empty() {
                            return mine;
                        }
                        mine.extend(got.into_iter().map(|c| c.event_id));
                    }
                })
            })
            .collect();
        let mut all = Vec::new();
        for w in workers {
            all.extend(w.await.unwrap());
        }
        let claimed = all.len();
        all.sort();
        all.dedup();
        assert_eq!((claimed, all.len()), (300, 300), "every job claimed exactly once");
    }
}

/// `migrate-db` carries an unfinished listing's position over with its mark (the
/// copy takes the target's columns, so the new column comes along).
#[tokio::test]
async fn migrate_db_copies_a_listing_position() {
    let from = TestDb::new(support::Backend::Sqlite).await;
    let s = &from.store;
    let (org, user) = s.create_organization("a", b"oa", "a@x", b"ua").await.unwrap();
    let one = s.create_instance(&new_instance(org.id, user.id, b"t1", true), &[], &NoSeal).await.unwrap();
    s.poll_mark(one, "orders", 0).await.unwrap();
    s.poll_mark(one, "products", 0).await.unwrap();
    s.commit_poll(one, "orders", 300, 0, Some(r#"{"nextPage":"p2"}"#), 0, &[], 0).await.unwrap();
    s.commit_poll(one, "products", 400, 0, None, 0, &[], 0).await.unwrap();
    let to = TestDb::new(support::Backend::Postgres).await;
    s.copy_to(&to.store, 100).await.unwrap();
    let position = to.store.poll_position(one, "orders", 0).await.unwrap();
    assert_eq!(position, PollPosition { high_water: 300, resume: Some(r#"{"nextPage":"p2"}"#.into()), resume_version: 1 });
    let position = to.store.poll_position(one, "products", 0).await.unwrap();
    assert_eq!(position, PollPosition { high_water: 400, resume: None, resume_version: 1 });
}
