//! Console login's store parts on both backends (see support/mod.rs): passwords,
//! sessions, failed-login windows, sealed tenant secrets.

use switchyard_store::*;

#[macro_use]
mod support;
use support::TestDb;

const MINUTE: i64 = LOGIN_WINDOW_MS;

on_both! {
    async fn one_user_per_email_may_hold_a_password(backend: Backend) {
        let db = TestDb::new(backend).await;
        let store = &db.store;
        let (_, a) = store.create_organization("a", b"oa", "pat@example.com", b"ua").await.unwrap();
        let (b_org, b) = store.create_organization("b", b"ob", "Pat@Example.com", b"ub").await.unwrap();
        assert!(store.set_password(a.id, Some("$argon2id$a")).await.unwrap());
        // The same email in another organization, in another case: refused, naming the holder.
        match store.set_password(b.id, Some("$argon2id$b")).await {
            Err(StoreError::Conflict(m)) => assert!(m.contains(&format!("user {}", a.id)), "{m}"),
            other => panic!("{other:?}"),
        }
        match store.create_user_with_password(b_org.id, "PAT@example.com", b"uc", Some("$argon2id$c")).await {
            Err(StoreError::Conflict(m)) => assert!(m.contains("password"), "{m}"),
            other => panic!("{other:?}"),
        }
        // Nothing half-written: the refused user was not created.
        assert_eq!(store.users(None).await.unwrap().len(), 2);
        let found = store.password_for_email("PAT@EXAMPLE.COM").await.unwrap().unwrap();
        assert_eq!((found.user_id, found.password_hash.as_str()), (a.id, "$argon2id$a"));
        // Once a's password is gone, b may have one.
        assert!(store.set_password(a.id, None).await.unwrap());
        assert!(store.set_password(b.id, Some("$argon2id$b")).await.unwrap());
        assert_eq!(store.password_for_email("pat@example.com").await.unwrap().unwrap().user_id, b.id);
        assert!(!store.set_password(9999, Some("x")).await.unwrap());
    }
}

on_both! {
    async fn sessions_expire_when_idle_and_end_with_a_password_change(backend: Backend) {
        let db = TestDb::new(backend).await;
        let store = &db.store;
        let (_, user) = store.create_organization("a", b"oa", "pat@example.com", b"ua").await.unwrap();
        let (t0, idle) = (1_000_000_000_000, 12 * 3600 * 1000);
        store.create_session(b"tok1", user.id, "csrf1", t0, idle).await.unwrap();
        let s = store.session(b"tok1", t0 + 1, idle).await.unwrap().unwrap();
        assert_eq!((s.caller.user_id, s.caller.email.as_str(), s.csrf_token.as_str()), (user.id, "pat@example.com", "csrf1"));
        assert!(store.session(b"other", t0, idle).await.unwrap().is_none());
        // Idle for 12 h: over. Touched before that: the 12 h count again from the touch.
        assert!(store.session(b"tok1", t0 + idle, idle).await.unwrap().is_none());
        store.touch_session(b"tok1", t0 + idle / 2).await.unwrap();
        assert!(store.session(b"tok1", t0 + idle, idle).await.unwrap().is_some());
        // Logout ends one session; a password change ends them all.
        store.create_session(b"tok2", user.id, "csrf2", t0, idle).await.unwrap();
        assert!(store.end_session(b"tok1").await.unwrap());
        assert!(!store.end_session(b"tok1").await.unwrap());
        assert!(store.session(b"tok2", t0 + 1, idle).await.unwrap().is_some());
        store.set_password(user.id, Some("$argon2id$new")).await.unwrap();
        assert!(store.session(b"tok2", t0 + 1, idle).await.unwrap().is_none());
    }
}

on_both! {
    async fn failed_logins_count_per_scope_within_a_minute(backend: Backend) {
        let db = TestDb::new(backend).await;
        let store = &db.store;
        let t0 = 1_000_000_000_000;
        for i in 0..3 {
            assert_eq!(store.record_login_failure(&["email:a", "ip:1"], t0 + i).await.unwrap(), i + 1);
        }
        // The highest count among the scopes.
        assert_eq!(store.record_login_failure(&["email:b", "ip:1"], t0 + 5).await.unwrap(), 4);
        assert_eq!(store.login_failures("email:a", t0 + 10).await.unwrap(), 3);
        assert_eq!(store.login_failures("email:b", t0 + 10).await.unwrap(), 1);
        assert_eq!(store.login_failures("ip:1", t0 + 10).await.unwrap(), 4);
        assert_eq!(store.login_failures("ip:2", t0 + 10).await.unwrap(), 0);
        // The window is a minute from its first failure; then a new one starts at 1.
        assert_eq!(store.login_failures("email:a", t0 + MINUTE).await.unwrap(), 0);
        assert_eq!(store.record_login_failure(&["email:a"], t0 + MINUTE).await.unwrap(), 1);
        assert_eq!(store.login_failures("email:a", t0 + MINUTE + 1).await.unwrap(), 1);
        // A success takes its try back, within the window and never below zero.
        store.forgive_login_failure(&["email:a", "ip:1", "ip:2"], t0 + MINUTE + 2).await.unwrap();
        assert_eq!(store.login_failures("email:a", t0 + MINUTE + 3).await.unwrap(), 0);
        store.forgive_login_failure(&["email:a"], t0 + MINUTE + 4).await.unwrap();
        assert_eq!(store.login_failures("email:a", t0 + MINUTE + 5).await.unwrap(), 0);
        assert_eq!(store.login_failures("ip:1", t0 + 10).await.unwrap(), 4, "ip:1's window was over: untouched");
    }
}

on_both! {
    async fn sealed_tenant_secrets_are_read_back_and_resealed(backend: Backend) {
        let db = TestDb::new(backend).await;
        let store = &db.store;
        let org = TenantSecret { hash: b"oh", sealed: Some((b"org-blob-k1", 1)) };
        let usr = TenantSecret { hash: b"uh", sealed: Some((b"user-blob-k1", 1)) };
        let (o, u) = store.create_organization("a", org, "pat@example.com", usr).await.unwrap();
        let legacy = store.create_user(o.id, "old@example.com", b"legacy-hash").await.unwrap();

        let s = store.sealed_secrets(u.id).await.unwrap().unwrap();
        assert_eq!((s.user_id, s.organization_id), (u.id, o.id));
        assert_eq!(s.user, Some((b"uh".to_vec(), b"user-blob-k1".to_vec())));
        assert_eq!(s.organization, Some((b"oh".to_vec(), b"org-blob-k1".to_vec())));
        assert_eq!(store.sealed_secrets(legacy.id).await.unwrap().unwrap().user, None);
        assert!(store.sealed_secrets(9999).await.unwrap().is_none());

        // Rotation finds both (not the hash-only one), and skips one reset meanwhile.
        let rows = store.sealed_tenant_secrets_not_under(2, 10).await.unwrap();
        let found: Vec<_> = rows.iter().map(|r| (r.tenant, r.id)).collect();
        assert_eq!(found, vec![(Tenant::User, u.id), (Tenant::Organization, o.id)]);
        assert_eq!(store.sealed_tenant_secrets_not_under(2, 1).await.unwrap().len(), 1);
        let reset = TenantSecret { hash: b"uh2", sealed: Some((b"user-blob-reset", 2)) };
        assert!(store.reset_user_secret(u.id, reset).await.unwrap());
        let resealed: Vec<_> = rows.into_iter().map(|r| (r, b"k2".to_vec(), 2)).collect();
        assert_eq!(store.reseal_tenant_secrets(&resealed).await.unwrap(), 1);
        let s = store.sealed_secrets(u.id).await.unwrap().unwrap();
        assert_eq!(s.user, Some((b"uh2".to_vec(), b"user-blob-reset".to_vec())));
        assert_eq!(s.organization, Some((b"oh".to_vec(), b"k2".to_vec())));
        assert!(store.sealed_tenant_secrets_not_under(2, 10).await.unwrap().is_empty());
        // The reset secret authenticates; the old one no longer does.
        assert!(store.authenticate(b"uh2", b"oh").await.unwrap().is_some());
        assert!(store.authenticate(b"uh", b"oh").await.unwrap().is_none());
    }
}
