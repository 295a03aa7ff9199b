//! Named leases and polling turns on both backends (see support/mod.rs): what
//! several server processes on one database use to do work once.

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

/// `n` instances of one new organization: (its id, theirs).
async fn instances(s: &Store, n: usize) -> (i64, Vec<i64>) {
    let (org, user) = s.create_organization("a", b"oa", "a@x", b"ua").await.unwrap();
    let mut ids = Vec::new();
    for i in 0..n {
        let new = NewInstance {
            organization_id: org.id,
            user_id: user.id,
            element_key: "bigcommerce".into(),
            name: format!("shop {i}"),
            token_hash: format!("t{i}").into_bytes(),
            tags: vec![],
            events_enabled: true,
            webhook: None,
        };
        ids.push(s.create_instance(&new, &[], &NoSeal).await.unwrap());
    }
    (org.id, ids)
}

on_both! {
    /// A lease is one node's until it lapses or is given back; its holder renews it.
    async fn a_lease_is_held_by_one_node_until_it_lapses_or_is_released(backend: Backend) {
        let db = TestDb::new(backend).await;
        let (a, b) = (&db.store, &db.another_node().await);
        assert_ne!(a.node_id(), b.node_id());
        assert!(a.take_lease("retention", 1_000, 2_000).await.unwrap());
        assert!(!b.take_lease("retention", 1_500, 2_500).await.unwrap(), "held by a");
        assert!(b.take_lease("other", 1_500, 2_500).await.unwrap(), "leases are by name");
        assert!(a.take_lease("retention", 1_900, 3_000).await.unwrap(), "the holder renews");
        assert!(!b.take_lease("retention", 2_500, 3_500).await.unwrap(), "renewed until 3000");
        // a dies: its lease lapses.
        assert!(b.take_lease("retention", 3_000, 4_000).await.unwrap());
        assert!(!a.take_lease("retention", 3_100, 4_100).await.unwrap());
        a.release_lease("retention").await.unwrap();
        assert!(!a.take_lease("retention", 3_100, 4_100).await.unwrap(), "only the holder gives it back");
        b.release_lease("retention").await.unwrap();
        assert!(a.take_lease("retention", 3_100, 4_100).await.unwrap(), "given back: free at once");
    }
}

on_both! {
    /// Each turn of an instance is claimed by one node; the next is one interval
    /// on, whoever claims it, and never less than half an interval after a claim.
    async fn each_poll_turn_is_claimed_once_and_the_next_follows_an_interval_on(backend: Backend) {
        let db = TestDb::new(backend).await;
        let (a, b) = (&db.store, &db.another_node().await);
        let (org, ids) = instances(a, 2).await;
        let (x, y) = (ids[0], ids[1]);
        a.schedule_poll(x, 1_000, 500).await.unwrap();
        b.schedule_poll(x, 1_000, 900).await.unwrap(); // known: keeps its turn
        assert_eq!(a.claim_due_polls(499, 10, &[]).await.unwrap(), Vec::<i64>::new(), "not due yet");
        assert_eq!(b.claim_due_polls(500, 10, &[]).await.unwrap(), vec![x], "y is not scheduled");
        assert_eq!(a.claim_due_polls(500, 10, &[]).await.unwrap(), Vec::<i64>::new(), "b has this turn");
        assert_eq!(a.claim_due_polls(1_499, 10, &[]).await.unwrap(), Vec::<i64>::new());
        // b died: a takes the next turn, one interval after the last.
        assert_eq!(a.claim_due_polls(1_500, 10, &[]).await.unwrap(), vec![x]);
        // A late turn is followed by the next half an interval later, not at once.
        assert_eq!(a.claim_due_polls(10_000, 10, &[]).await.unwrap(), vec![x]);
        assert_eq!(b.claim_due_polls(10_499, 10, &[]).await.unwrap(), Vec::<i64>::new());
        assert_eq!(b.claim_due_polls(10_500, 10, &[]).await.unwrap(), vec![x]);
        assert_eq!(b.claim_due_polls(11_500, 10, &[x]).await.unwrap(), Vec::<i64>::new(), "not one this node is still polling");
        // A new interval takes effect at once, due no later than the new first turn.
        a.schedule_poll(x, 5_000, 11_000).await.unwrap();
        assert_eq!(a.claim_due_polls(11_000, 10, &[]).await.unwrap(), vec![x]);
        assert_eq!(a.claim_due_polls(15_999, 10, &[]).await.unwrap(), Vec::<i64>::new());
        assert_eq!(a.claim_due_polls(16_000, 10, &[]).await.unwrap(), vec![x]);
        // Polling turned off: the turn is forgotten (a new one starts when it is on again).
        a.forget_poll_marks_except(&[y]).await.unwrap();
        assert_eq!(a.claim_due_polls(100_000, 10, &[]).await.unwrap(), Vec::<i64>::new());
        // A deleted instance is not scheduled.
        a.delete_instance(org, y).await.unwrap();
        a.schedule_poll(y, 1_000, 0).await.unwrap();
        assert_eq!(a.claim_due_polls(100_000, 10, &[]).await.unwrap(), Vec::<i64>::new());
    }
}

on_both! {
    /// Nodes claiming at once (each with several tasks) never share a turn.
    async fn concurrent_claims_never_share_a_turn(backend: Backend) {
        let db = TestDb::new(backend).await;
        let nodes = [db.store.clone(), db.another_node().await, db.another_node().await];
        let (_, ids) = instances(&nodes[0], 50).await;
        for id in &ids {
            nodes[0].schedule_poll(*id, 1_000, 0).await.unwrap();
        }
        let tasks: Vec<_> = (0..9)
            .map(|n| {
                let s = nodes[n % 3].clone();
                tokio::spawn(async move {
                    let mut mine = Vec::new();
                    for now in [0, 1_000, 2_000] {
                        // Small batches, so the tasks claim side by side.
                        loop {
                            let claimed = s.claim_due_polls(now, 7, &[]).await.unwrap();
                            if claimed.is_empty() {
                                break;
                            }
                            mine.extend(claimed.into_iter().map(|id| (now, id)));
                        }
                    }
                    mine
                })
            })
            .collect();
        let mut all = Vec::new();
        for t in tasks {
            all.extend(t.await.unwrap());
        }
        let claimed = all.len();
        all.sort();
        all.dedup();
        assert_eq!(claimed, all.len(), "no turn claimed twice");
        let polled: std::collections::HashSet<i64> = all.iter().map(|(_, id)| *id).collect();
        assert_eq!(polled.len(), 50, "every instance had a turn");
    }
}

on_both! {
    /// Claims take the longest overdue first, a batch at a time, and never an
    /// instance that is disabled, has events off, or is gone.
    async fn claims_go_by_due_time_and_skip_instances_without_events(backend: Backend) {
        let db = TestDb::new(backend).await;
        let s = &db.store;
        let (org, ids) = instances(s, 5).await;
        for (n, id) in ids.iter().enumerate() {
            // Due at 400, 300, 200, 100, 0: the last instance is the longest overdue.
            s.schedule_poll(*id, 10_000, 400 - 100 * n as i64).await.unwrap();
        }
        assert_eq!(s.claim_due_polls(1_000, 2, &[]).await.unwrap().len(), 2);
        let mut rest = s.claim_due_polls(1_000, 10, &[]).await.unwrap();
        rest.sort();
        assert_eq!(rest, ids[..3].to_vec(), "the two longest overdue went first");
        assert_eq!(s.claim_due_polls(11_000, 1, &[]).await.unwrap(), vec![ids[4]], "earliest due first");

        // Disabled, events off, deleted: never claimed, however due.
        s.set_disabled(org, ids[0], true).await.unwrap();
        let off = InstanceUpdate { events_enabled: Some(false), ..Default::default() };
        assert!(s.update_instance(org, ids[1], &off, &[], false, &NoSeal).await.unwrap());
        s.delete_instance(org, ids[2]).await.unwrap();
        let mut claimed = s.claim_due_polls(100_000, 10, &[]).await.unwrap();
        claimed.sort();
        assert_eq!(claimed, vec![ids[3], ids[4]]);
        // Enabled again: due again.
        s.set_disabled(org, ids[0], false).await.unwrap();
        assert_eq!(s.claim_due_polls(200_000, 10, &[ids[3], ids[4]]).await.unwrap(), vec![ids[0]]);
    }
}
