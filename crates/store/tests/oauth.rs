//! The OAuth refresh lease, token commits and refusals on both backends (see support/mod.rs).

use switchyard_store::*;

#[macro_use]
mod support;
use support::{Backend, TestDb};

struct PlainSealer;
impl Sealer for PlainSealer {
    fn seal(&self, _instance_id: i64, _key: &str, plaintext: &str) -> (Vec<u8>, u32) {
        (plaintext.as_bytes().to_vec(), 1)
    }
}

async fn instance(backend: Backend) -> (TestDb, Store, i64) {
    let db = TestDb::new(backend).await;
    let s = db.store.clone();
    let (org, user) = s.create_organization("a", b"oa", "a@x", b"ua").await.unwrap();
    let new = NewInstance {
        organization_id: org.id,
        user_id: user.id,
        element_key: "infusionsoftcrm".into(),
        name: "keap".into(),
        token_hash: b"t".to_vec(),
        tags: vec![],
        events_enabled: false,
        webhook: None,
    };
    let config = vec![("oauth.user.refresh_token".to_string(), NewValue::Secret("r1".into()))];
    let id = s.create_instance(&new, &config, &PlainSealer).await.unwrap();
    (db, s, id)
}

fn secret(rows: &[ConfigRow], key: &str) -> String {
    String::from_utf8(rows.iter().find(|r| r.key == key).unwrap().secret.clone().unwrap()).unwrap()
}

on_both! {
    async fn one_holder_at_a_time_until_the_lease_lapses_or_is_released(backend: Backend) {
        let (_db, s, id) = instance(backend).await;
        assert!(s.take_refresh_lease(id, "a", 60_000).await.unwrap());
        assert!(!s.take_refresh_lease(id, "b", 60_000).await.unwrap(), "held by a");
        assert!(s.take_refresh_lease(id, "a", 60_000).await.unwrap(), "a renews its own");
        s.release_refresh_lease(id, "b").await.unwrap();
        assert!(!s.take_refresh_lease(id, "b", 60_000).await.unwrap(), "only the holder releases");
        s.release_refresh_lease(id, "a").await.unwrap();
        assert!(s.take_refresh_lease(id, "b", 1).await.unwrap());
        // b's lease ends 1 ms after it was taken: wait until the clock is past that.
        let taken = epoch_ms();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while epoch_ms() <= taken {
            assert!(std::time::Instant::now() < deadline, "the clock stands still");
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        }
        assert!(s.take_refresh_lease(id, "a", 60_000).await.unwrap(), "b's lease lapsed (a crashed holder)");
    }
}

on_both! {
    async fn a_commit_stores_the_pair_validates_and_releases(backend: Backend) {
        let (_db, s, id) = instance(backend).await;
        s.refuse_refresh(id, "nobody", "The refresh token is invalid").await.unwrap();
        let row = s.instance_by_token(b"t").await.unwrap().unwrap();
        assert!(!row.valid);
        assert_eq!(s.refresh_refusal(id).await.unwrap().as_deref(), Some("The refresh token is invalid"));

        assert!(s.take_refresh_lease(id, "a", 60_000).await.unwrap());
        let values = vec![
            ("oauth.user.token".to_string(), NewValue::Secret("a2".into())),
            ("oauth.user.refresh_token".to_string(), NewValue::Secret("r2".into())),
            ("oauth.user.refresh_time".to_string(), NewValue::Plain("1700000000000".into())),
        ];
        s.commit_tokens(id, "a", &values, &PlainSealer).await.unwrap();
        let rows = s.configuration(id).await.unwrap();
        assert_eq!((secret(&rows, "oauth.user.token"), secret(&rows, "oauth.user.refresh_token")), ("a2".into(), "r2".into()));
        assert!(s.instance_by_token(b"t").await.unwrap().unwrap().valid);
        assert_eq!(s.refresh_refusal(id).await.unwrap(), None);
        assert!(s.take_refresh_lease(id, "b", 60_000).await.unwrap(), "the commit released a's lease");

        // A commit by a holder whose lease lapsed and was taken keeps the new holder's lease.
        s.commit_tokens(id, "a", &values, &PlainSealer).await.unwrap();
        assert!(!s.take_refresh_lease(id, "c", 60_000).await.unwrap());
        s.clear_refresh_refusal(id).await.unwrap();
    }
}

on_both! {
    async fn deleting_the_instance_drops_its_row(backend: Backend) {
        let (_db, s, id) = instance(backend).await;
        s.refuse_refresh(id, "x", "gone").await.unwrap();
        let org = s.instance_by_token(b"t").await.unwrap().unwrap().organization_id;
        assert!(s.delete_instance(org, id).await.unwrap());
        assert_eq!(s.refresh_refusal(id).await.unwrap(), None);
    }
}

fn epoch_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64
}
