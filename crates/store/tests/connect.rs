//! Connect sessions and OAuth states on both backends (see support/mod.rs): the
//! status transitions that make a Connect token single-use, expiry, and states
//! taken once.

use switchyard_store::*;

#[macro_use]
mod support;
use support::TestDb;

const T0: i64 = 1_000_000_000_000;
const LIFE: i64 = 30 * 60 * 1000;

fn session(org: i64, user: i64, token: &[u8], created_at: i64) -> NewConnectSession {
    NewConnectSession {
        organization_id: org,
        user_id: user,
        token_hash: token.to_vec(),
        elements: vec!["bigcommerce".into(), "infusionsoft".into()],
        name: Some("shop".into()),
        tags: vec!["a".into(), "b".into()],
        redirect_url: Some("https://app.example.com/done".into()),
        callback_url: None,
        signature_key_sealed: Some(b"sig-k1".to_vec()),
        configuration_sealed: Some(b"conf-k1".to_vec()),
        key_id: Some(1),
        created_at,
        expires_at: created_at + LIFE,
    }
}

fn state(org: i64, user: i64, hash: &[u8], session: Option<i64>, created_at: i64) -> NewOAuthState {
    NewOAuthState {
        state_hash: hash.to_vec(),
        organization_id: org,
        user_id: user,
        purpose: "connect".into(),
        element_key: "infusionsoft".into(),
        instance_id: None,
        connect_session_id: session,
        payload_sealed: b"payload-k1".to_vec(),
        key_id: 1,
        created_at,
        expires_at: created_at + 600_000,
    }
}

on_both! {
    async fn a_session_is_stored_and_found_by_organization_or_token(backend: Backend) {
        let db = TestDb::new(backend).await;
        let store = &db.store;
        let (org, user) = store.create_organization("a", b"oa", "pat@example.com", b"ua").await.unwrap();
        let (other, _) = store.create_organization("b", b"ob", "kim@example.com", b"ub").await.unwrap();
        let id = store.create_connect_session(&session(org.id, user.id, b"tok", T0)).await.unwrap();
        let row = store.connect_session(org.id, id).await.unwrap().unwrap();
        assert_eq!((row.id, row.organization_id, row.user_id), (id, org.id, user.id));
        assert_eq!(row.elements, vec!["bigcommerce", "infusionsoft"]);
        assert_eq!((row.name.as_deref(), row.tags.clone()), (Some("shop"), vec!["a".to_owned(), "b".to_owned()]));
        assert_eq!(row.redirect_url.as_deref(), Some("https://app.example.com/done"));
        assert_eq!(row.callback_url, None);
        assert_eq!(row.signature_key_sealed.as_deref(), Some(&b"sig-k1"[..]));
        assert_eq!(row.configuration_sealed.as_deref(), Some(&b"conf-k1"[..]));
        assert_eq!(row.key_id, Some(1));
        assert_eq!((row.status.as_str(), row.instance_id, row.error.clone()), ("pending", None, None));
        assert_eq!((row.created_at, row.expires_at, row.finished_at), (T0, T0 + LIFE, None));
        // Another organization does not see it; the token finds it.
        assert!(store.connect_session(other.id, id).await.unwrap().is_none());
        assert_eq!(store.connect_session_by_token(b"tok").await.unwrap().unwrap().id, id);
        assert!(store.connect_session_by_token(b"nope").await.unwrap().is_none());
        // No secrets at all is fine too.
        let bare = NewConnectSession { signature_key_sealed: None, configuration_sealed: None, key_id: None, name: None, tags: vec![], ..session(org.id, user.id, b"tok2", T0) };
        let bare = store.create_connect_session(&bare).await.unwrap();
        let row = store.connect_session(org.id, bare).await.unwrap().unwrap();
        assert_eq!((row.signature_key_sealed, row.key_id, row.name, row.tags), (None, None, None, vec![]));
    }
}

on_both! {
    async fn a_session_is_claimed_once_and_finishes_once(backend: Backend) {
        let db = TestDb::new(backend).await;
        let store = &db.store;
        let (org, user) = store.create_organization("a", b"oa", "pat@example.com", b"ua").await.unwrap();
        let id = store.create_connect_session(&session(org.id, user.id, b"tok", T0)).await.unwrap();
        // Two claims (as from two nodes): one wins.
        let (a, b) = tokio::join!(store.claim_connect_session(id, T0 + 1), store.claim_connect_session(id, T0 + 1));
        assert!(a.unwrap() ^ b.unwrap(), "exactly one claim wins");
        let row = store.connect_session(org.id, id).await.unwrap().unwrap();
        assert_eq!((row.status.as_str(), row.reported_status(T0 + 2)), ("claimed", "pending"));
        // The vendor refused: back to pending with the refusal, claimable again.
        store.release_connect_session(id, "wrong API token").await.unwrap();
        let row = store.connect_session(org.id, id).await.unwrap().unwrap();
        assert_eq!((row.status.as_str(), row.error.as_deref()), ("pending", Some("wrong API token")));
        assert!(!store.complete_connect_session(id, 7, T0 + 3).await.unwrap(), "not claimed");
        assert!(store.claim_connect_session(id, T0 + 4).await.unwrap());
        assert!(store.complete_connect_session(id, 7, T0 + 5).await.unwrap());
        let row = store.connect_session(org.id, id).await.unwrap().unwrap();
        assert_eq!((row.status.as_str(), row.instance_id, row.error.clone(), row.finished_at), ("completed", Some(7), None, Some(T0 + 5)));
        assert_eq!(row.reported_status(T0 + LIFE * 10), "completed", "an outcome does not expire");
        // Finished: no claim, release, completion or failure changes it.
        assert!(!store.claim_connect_session(id, T0 + 6).await.unwrap());
        store.release_connect_session(id, "late").await.unwrap();
        assert!(!store.complete_connect_session(id, 8, T0 + 6).await.unwrap());
        assert!(!store.fail_connect_session(id, "late", T0 + 6).await.unwrap());
        let row = store.connect_session(org.id, id).await.unwrap().unwrap();
        assert_eq!((row.status.as_str(), row.instance_id, row.error), ("completed", Some(7), None));
    }
}

on_both! {
    async fn a_session_fails_while_pending_or_claimed_and_expires(backend: Backend) {
        let db = TestDb::new(backend).await;
        let store = &db.store;
        let (org, user) = store.create_organization("a", b"oa", "pat@example.com", b"ua").await.unwrap();
        let pending = store.create_connect_session(&session(org.id, user.id, b"t1", T0)).await.unwrap();
        let claimed = store.create_connect_session(&session(org.id, user.id, b"t2", T0)).await.unwrap();
        let late = store.create_connect_session(&session(org.id, user.id, b"t3", T0)).await.unwrap();
        assert!(store.claim_connect_session(claimed, T0 + 1).await.unwrap());
        assert!(store.fail_connect_session(pending, "customer gave up", T0 + 2).await.unwrap());
        // A claimed one is being made: cancelling it now would contradict its outcome.
        assert!(!store.fail_connect_session(claimed, "cancelled", T0 + 3).await.unwrap());
        store.release_connect_session(claimed, "vendor down").await.unwrap();
        assert!(store.fail_connect_session(claimed, "vendor down", T0 + 3).await.unwrap());
        assert!(!store.fail_connect_session(pending, "twice", T0 + 4).await.unwrap());
        let row = store.connect_session(org.id, claimed).await.unwrap().unwrap();
        assert_eq!((row.status.as_str(), row.error.as_deref(), row.finished_at), ("failed", Some("vendor down"), Some(T0 + 3)));
        assert_eq!(row.reported_status(T0 + LIFE * 10), "failed");
        // Expired: reported so, and neither claimed nor failed any more.
        let row = store.connect_session(org.id, late).await.unwrap().unwrap();
        assert_eq!(row.reported_status(T0 + LIFE - 1), "pending");
        assert_eq!(row.reported_status(T0 + LIFE), "expired");
        assert!(!store.claim_connect_session(late, T0 + LIFE).await.unwrap());
        assert!(!store.fail_connect_session(late, "too late", T0 + LIFE).await.unwrap());
        assert_eq!(store.connect_session(org.id, late).await.unwrap().unwrap().status, "pending");
        // A claimed one past its expiry reads expired too.
        let c = store.create_connect_session(&session(org.id, user.id, b"t4", T0)).await.unwrap();
        assert!(store.claim_connect_session(c, T0 + LIFE - 1).await.unwrap());
        assert_eq!(store.connect_session(org.id, c).await.unwrap().unwrap().reported_status(T0 + LIFE), "expired");
        // Sessions expired over a week ago go when another is created.
        let week = CONNECT_SESSION_KEPT_MS;
        store.create_connect_session(&session(org.id, user.id, b"t5", T0 + LIFE + week)).await.unwrap();
        assert!(store.connect_session(org.id, late).await.unwrap().is_some(), "expired exactly a week ago: kept");
        store.create_connect_session(&session(org.id, user.id, b"t6", T0 + LIFE + week + 1)).await.unwrap();
        assert!(store.connect_session(org.id, late).await.unwrap().is_none());
        assert!(store.connect_session_by_token(b"t5").await.unwrap().is_some());
    }
}

on_both! {
    async fn an_oauth_state_is_taken_once_and_not_after_expiry(backend: Backend) {
        let db = TestDb::new(backend).await;
        let store = &db.store;
        let (org, user) = store.create_organization("a", b"oa", "pat@example.com", b"ua").await.unwrap();
        let sid = store.create_connect_session(&session(org.id, user.id, b"tok", T0)).await.unwrap();
        store.create_oauth_state(&state(org.id, user.id, b"s1", Some(sid), T0)).await.unwrap();
        let (a, b) = tokio::join!(store.take_oauth_state(b"s1", T0 + 1), store.take_oauth_state(b"s1", T0 + 1));
        let (a, b) = (a.unwrap(), b.unwrap());
        assert!(a.is_some() ^ b.is_some(), "taken once");
        let row = a.or(b).unwrap();
        assert_eq!((row.state_hash.as_slice(), row.organization_id, row.user_id), (&b"s1"[..], org.id, user.id));
        assert_eq!((row.purpose.as_str(), row.element_key.as_str()), ("connect", "infusionsoft"));
        assert_eq!((row.instance_id, row.connect_session_id), (None, Some(sid)));
        assert_eq!((row.payload_sealed.as_slice(), row.key_id), (&b"payload-k1"[..], 1));
        assert_eq!((row.created_at, row.expires_at), (T0, T0 + 600_000));
        assert!(store.take_oauth_state(b"s1", T0 + 2).await.unwrap().is_none());
        // Expired: not taken; and gone once another state is created.
        store.create_oauth_state(&state(org.id, user.id, b"s2", None, T0)).await.unwrap();
        assert!(store.take_oauth_state(b"s2", T0 + 600_000).await.unwrap().is_none());
        let reauth = NewOAuthState { purpose: "console-reauthorize".into(), instance_id: Some(5), ..state(org.id, user.id, b"s3", None, T0 + 600_000) };
        store.create_oauth_state(&reauth).await.unwrap();
        assert!(store.take_oauth_state(b"s2", T0).await.unwrap().is_none(), "deleted as expired");
        assert_eq!(store.take_oauth_state(b"s3", T0 + 600_001).await.unwrap().unwrap().instance_id, Some(5));
        // Unknown purposes are refused by the schema.
        let odd = NewOAuthState { purpose: "other".into(), ..state(org.id, user.id, b"s4", None, T0) };
        assert!(store.create_oauth_state(&odd).await.is_err());
    }
}

on_both! {
    async fn connect_blobs_are_resealed_by_rotation(backend: Backend) {
        let db = TestDb::new(backend).await;
        let store = &db.store;
        let (org, user) = store.create_organization("a", b"oa", "pat@example.com", b"ua").await.unwrap();
        let sid = store.create_connect_session(&session(org.id, user.id, b"tok", T0)).await.unwrap();
        let only_sig = NewConnectSession { configuration_sealed: None, ..session(org.id, user.id, b"tok2", T0) };
        let sid2 = store.create_connect_session(&only_sig).await.unwrap();
        let none = NewConnectSession { signature_key_sealed: None, configuration_sealed: None, key_id: None, ..session(org.id, user.id, b"tok3", T0) };
        store.create_connect_session(&none).await.unwrap();
        store.create_oauth_state(&state(org.id, user.id, b"s1", Some(sid), T0)).await.unwrap();

        let blobs = store.sealed_connect_blobs_not_under(2, 100).await.unwrap();
        let mut kinds: Vec<_> = blobs.iter().map(|b| (b.kind, b.hash.clone(), b.sealed.clone())).collect();
        kinds.sort_by_key(|k| (k.1.clone(), k.2.clone()));
        assert_eq!(
            kinds,
            vec![
                (ConnectBlob::OAuthStatePayload, b"s1".to_vec(), b"payload-k1".to_vec()),
                (ConnectBlob::SessionConfiguration, b"tok".to_vec(), b"conf-k1".to_vec()),
                (ConnectBlob::SessionSignatureKey, b"tok".to_vec(), b"sig-k1".to_vec()),
                (ConnectBlob::SessionSignatureKey, b"tok2".to_vec(), b"sig-k1".to_vec()),
            ]
        );
        for b in &blobs {
            let want = match b.kind {
                ConnectBlob::OAuthStatePayload => oauth_state_aad(&b.hash),
                _ => connect_session_aad(&b.hash),
            };
            assert_eq!(b.aad, want);
        }
        let resealed: Vec<_> = blobs.into_iter().map(|b| {
            let new = [b.sealed.as_slice(), b"-k2"].concat();
            (b, new, 2)
        }).collect();
        assert_eq!(store.reseal_connect_blobs(&resealed).await.unwrap(), 4);
        assert!(store.sealed_connect_blobs_not_under(2, 100).await.unwrap().is_empty());
        let row = store.connect_session(org.id, sid).await.unwrap().unwrap();
        assert_eq!((row.signature_key_sealed.unwrap(), row.configuration_sealed.unwrap(), row.key_id), (b"sig-k1-k2".to_vec(), b"conf-k1-k2".to_vec(), Some(2)));
        assert_eq!(store.connect_session(org.id, sid2).await.unwrap().unwrap().key_id, Some(2));
        let taken = store.take_oauth_state(b"s1", T0 + 1).await.unwrap().unwrap();
        assert_eq!((taken.payload_sealed, taken.key_id), (b"payload-k1-k2".to_vec(), 2));
    }
}
