//! Connect sessions through HTTP: `POST /connect/sessions` answers a single-use
//! link and stores only what it must (the token's hash, secrets sealed);
//! `GET /connect/sessions/{id}` reports the outcome to the creator's organization
//! and never shows the token or the secrets.

mod common;

use std::time::Duration;

use common::Answer;
use reqwest::StatusCode;
use serde_json::{json, Value};
use switchyard_engine::outbound::OutboundPolicy;
use switchyard_server::caller::hash_secret;
use switchyard_server::connect::CONNECT_SESSION_LIFETIME;
use switchyard_store::connect_session_aad;
use switchyard_store::{NewConnectSession, Store};
use switchyard_vault::Vault;

const PUBLIC_URL: &str = "https://switchyard.example.com";

struct Server {
    base: String,
    /// Two organizations' callers.
    auth: String,
    other_auth: String,
    store: Store,
    vault: Vault,
    user_id: i64,
    organization_id: i64,
    _dir: tempfile::TempDir,
}

/// A server with the built-in catalog, two organizations and `policy` for
/// outbound calls.
async fn serve(policy: OutboundPolicy) -> Server {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&format!("sqlite://{}?mode=rwc", dir.path().join("t.db").display())).await.unwrap();
    let mut auths = Vec::new();
    let mut ids = Vec::new();
    for name in ["a", "b"] {
        let (org_secret, user_secret) = (switchyard_server::new_secret(), switchyard_server::new_secret());
        let (org, user) = store
            .create_organization(name, &hash_secret(&org_secret), &format!("{name}@localhost"), &hash_secret(&user_secret))
            .await
            .unwrap();
        auths.push(format!("User {user_secret}, Organization {org_secret}"));
        ids.push((org.id, user.id));
    }
    let vault = Vault::new(switchyard_vault::KeyRing::generate());
    let mut state = switchyard_server::AppState::new(
        store.clone(),
        vault.clone(),
        switchyard_engine::client::VendorClient::new(policy, Duration::from_secs(30)),
        switchyard_elements::Catalog::builtin(),
        vec![9u8; 32],
    );
    state.engine.public_url = format!("{PUBLIC_URL}/");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(switchyard_server::serve(listener, state, std::future::pending()));
    Server {
        base: format!("http://{addr}/elements/api-v2"),
        other_auth: auths.pop().unwrap(),
        auth: auths.pop().unwrap(),
        store,
        vault,
        organization_id: ids[0].0,
        user_id: ids[0].1,
        _dir: dir,
    }
}

impl Server {
    async fn create(&self, body: Value) -> Answer {
        let http = reqwest::Client::new();
        Answer::of(http.post(format!("{}/connect/sessions", self.base)).header("Authorization", &self.auth).json(&body)).await
    }

    async fn get(&self, id: i64, auth: &str) -> Answer {
        let http = reqwest::Client::new();
        Answer::of(http.get(format!("{}/connect/sessions/{id}", self.base)).header("Authorization", auth)).await
    }
}

#[tokio::test]
async fn a_session_is_created_with_a_link_and_read_back_without_secrets() {
    let s = serve(OutboundPolicy::allow_loopback()).await;
    let before = chrono::Utc::now();
    let created = s
        .create(json!({
            "elements": ["bigcommerce", "infusionsoftcrm", "bigcommerce"],
            "name": "Acme's shop",
            "tags": ["acme", "shop"],
            "redirectUrl": "https://app.example.com/connected?x=1",
            "callbackUrl": "http://127.0.0.1:9/hook",
            "signatureKey": "the-signature-key-0123",
            "configuration": {"infusionsoftcrm": {"oauth.api.key": "the-client-id", "oauth.api.secret": "the-client-secret-0123"}}
        }))
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let body = created.body;
    let mut keys: Vec<&String> = body.as_object().unwrap().keys().collect();
    keys.sort();
    assert_eq!(keys, ["expiresAt", "id", "token", "url"]);
    let id = body["id"].as_i64().unwrap();
    let token = body["token"].as_str().unwrap();
    assert!(token.len() >= 43, "{token}");
    assert_eq!(body["url"], format!("{PUBLIC_URL}/connect/{token}"));
    let expires = chrono::DateTime::parse_from_rfc3339(body["expiresAt"].as_str().unwrap()).unwrap();
    assert!(body["expiresAt"].as_str().unwrap().ends_with('Z'));
    let lifetime = chrono::Duration::from_std(CONNECT_SESSION_LIFETIME).unwrap();
    assert!(expires >= before + lifetime - chrono::Duration::seconds(1) && expires <= chrono::Utc::now() + lifetime);

    let got = s.get(id, &s.auth).await.ok();
    assert_eq!(got["id"], id);
    assert_eq!(got["status"], "pending");
    assert_eq!(got["elements"], json!(["bigcommerce", "infusionsoftcrm"]), "repeats dropped, order kept");
    assert_eq!(got["name"], "Acme's shop");
    assert_eq!(got["tags"], json!(["acme", "shop"]));
    assert_eq!(got["expiresAt"], body["expiresAt"]);
    assert!(got["createdAt"].is_string());
    for absent in ["instanceId", "error", "finishedAt", "token", "signatureKey", "configuration", "callbackUrl"] {
        assert!(got.get(absent).is_none(), "{absent} in {got}");
    }
    let text = got.to_string();
    for secret in [token, "the-signature-key-0123", "the-client-secret-0123", "the-client-id"] {
        assert!(!text.contains(secret), "{secret} shown in {text}");
    }

    // Stored: the token's hash only, the secrets sealed and bound to the session.
    let row = s.store.connect_session_by_token(&hash_secret(token)).await.unwrap().unwrap();
    assert_eq!((row.id, row.organization_id, row.user_id), (id, s.organization_id, s.user_id));
    assert_eq!(row.redirect_url.as_deref(), Some("https://app.example.com/connected?x=1"));
    assert_eq!(row.callback_url.as_deref(), Some("http://127.0.0.1:9/hook"));
    let aad = connect_session_aad(&hash_secret(token));
    let sig = row.signature_key_sealed.unwrap();
    assert!(!sig.windows(10).any(|w| w == b"the-signat"));
    assert_eq!(s.vault.decrypt_str(&sig, &aad).unwrap().expose(), "the-signature-key-0123");
    let conf = s.vault.decrypt_str(&row.configuration_sealed.unwrap(), &aad).unwrap();
    let conf: Value = serde_json::from_str(conf.expose()).unwrap();
    assert_eq!(conf, json!({"infusionsoftcrm": {"oauth.api.key": "the-client-id", "oauth.api.secret": "the-client-secret-0123"}}));
    assert!(s.vault.decrypt_str(&sig, &connect_session_aad(b"another session")).is_err());
    assert!(row.key_id.is_some());

    // A second session has its own token; a bare one stores no secrets.
    let bare = s.create(json!({"elements": ["infusionsoftcrm"]})).await;
    assert_eq!(bare.status, StatusCode::CREATED, "{}", bare.body);
    assert_ne!(bare.body["token"], body["token"]);
    let bare_id = bare.body["id"].as_i64().unwrap();
    let got = s.get(bare_id, &s.auth).await.ok();
    assert_eq!((got["tags"].clone(), got.get("name")), (json!([]), None));
    let row = s.store.connect_session(s.organization_id, bare_id).await.unwrap().unwrap();
    assert_eq!((row.signature_key_sealed, row.configuration_sealed, row.key_id), (None, None, None));
}

#[tokio::test]
async fn another_organization_and_unknown_ids_get_404() {
    let s = serve(OutboundPolicy::allow_loopback()).await;
    let id = s.create(json!({"elements": ["bigcommerce"]})).await.body["id"].as_i64().unwrap();
    let (message, _) = s.get(id, &s.other_auth).await.error(StatusCode::NOT_FOUND);
    assert!(message.contains("Connect session"), "{message}");
    s.get(id + 1000, &s.auth).await.error(StatusCode::NOT_FOUND);
    // Unauthenticated: 401, both ways.
    let http = reqwest::Client::new();
    Answer::of(http.get(format!("{}/connect/sessions/{id}", s.base))).await.error(StatusCode::UNAUTHORIZED);
    Answer::of(http.post(format!("{}/connect/sessions", s.base)).json(&json!({"elements": ["bigcommerce"]})))
        .await
        .error(StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn bad_input_is_refused_naming_what_is_wrong_and_nothing_is_stored() {
    // The default policy: loopback callbacks refused.
    let s = serve(OutboundPolicy::default()).await;
    let too_many: Vec<String> = (0..21).map(|_| "bigcommerce".to_owned()).collect();
    let long = "x".repeat(201);
    let cases = [
        (json!({"elements": ["bigcommerce", "nosuchthing"]}), "nosuchthing"),
        (json!({"elements": []}), "elements"),
        (json!({"elements": too_many}), "elements"),
        (json!({}), "elements"),
        (json!({"elements": "bigcommerce"}), "elements"),
        (json!({"elements": ["bigcommerce"], "redirectUrl": "/relative/path"}), "redirectUrl"),
        (json!({"elements": ["bigcommerce"], "redirectUrl": "javascript:alert(1)"}), "redirectUrl"),
        (json!({"elements": ["bigcommerce"], "redirectUrl": "ftp://example.com/x"}), "redirectUrl"),
        (json!({"elements": ["bigcommerce"], "callbackUrl": "http://127.0.0.1:9/hook"}), "callbackUrl"),
        (json!({"elements": ["bigcommerce"], "callbackUrl": "not a url"}), "callbackUrl"),
        (json!({"elements": ["bigcommerce"], "configuration": {"bigcommerce": {"no.such.key": "v"}}}), "no.such.key"),
        (json!({"elements": ["bigcommerce"], "configuration": {"bigcommerce": {"username": 5}}}), "configuration"),
        (json!({"elements": ["bigcommerce"], "configuration": {"username": "flat"}}), "configuration"),
        (json!({"elements": ["bigcommerce"], "configuration": {"infusionsoftcrm": {"oauth.api.key": "k"}}}), "infusionsoftcrm"),
        (json!({"elements": ["bigcommerce"], "name": long}), "name"),
        (json!({"elements": ["bigcommerce"], "tags": vec!["t"; 21]}), "tags"),
        (json!({"elements": ["bigcommerce"], "signatureKey": "k".repeat(513)}), "signatureKey"),
        (json!({"elements": ["bigcommerce"], "unknownField": 1}), "unknownField"),
        // What the customer could not fix on the page: refused when the link is made.
        (json!({"elements": ["bigcommerce"], "name": "  "}), "name"),
        (json!({"elements": ["bigcommerce"], "tags": [""]}), "tags"),
        (json!({"elements": ["bigcommerce"], "signatureKey": "k"}), "callbackUrl"),
        (json!({"elements": ["bigcommerce"], "redirectUrl": format!("https://app.example.com/{}", "x".repeat(2000))}), "redirectUrl"),
        (json!({"elements": ["bigcommerce"], "configuration": {"bigcommerce": {"store.url": "not a url"}}}), "store.url"),
        (json!({"elements": ["bigcommerce"], "configuration": {"bigcommerce": {"event.poller.refresh_interval": "abc"}}}), "event.poller.refresh_interval"),
        (json!({"elements": ["bigcommerce"], "configuration": {"bigcommerce": {"event.poller.refresh_interval": "-5"}}}), "event.poller.refresh_interval"),
        (json!({"elements": ["bigcommerce"], "configuration": {"bigcommerce": {"event.objects": "bogus"}}}), "bogus"),
        (json!({"elements": ["bigcommerce"], "configuration": {"bigcommerce": {"event.notification.callback.url": "http://10.1.1.1/"}}}), "event.notification.callback.url"),
    ];
    for (body, named) in cases {
        let answer = s.create(body.clone()).await;
        let (message, _) = answer.error(StatusCode::BAD_REQUEST);
        assert!(message.contains(named), "{body}: {message}");
    }
    // Each element's presets are keys of that element (BigCommerce has no oauth.api.secret).
    let only_bc = s.create(json!({"elements": ["bigcommerce", "infusionsoftcrm"], "configuration": {"bigcommerce": {"oauth.api.secret": "s"}}})).await;
    assert!(only_bc.error(StatusCode::BAD_REQUEST).0.contains("oauth.api.secret"));
    let ok = s.create(json!({"elements": ["bigcommerce", "infusionsoftcrm"], "configuration": {"infusionsoftcrm": {"oauth.api.secret": "s"}}})).await;
    assert_eq!(ok.status, StatusCode::CREATED, "{}", ok.body);
    let id = ok.body["id"].as_i64().unwrap();
    assert_eq!(id, 1, "the refused ones stored nothing");
    // A callback the policy allows is accepted.
    let ok = s.create(json!({"elements": ["bigcommerce"], "callbackUrl": "https://hooks.example.com/x"})).await;
    assert_eq!(ok.status, StatusCode::CREATED, "{}", ok.body);
}

#[tokio::test]
async fn a_session_past_its_expiry_reads_expired_and_outcomes_are_reported() {
    let s = serve(OutboundPolicy::allow_loopback()).await;
    let now = chrono::Utc::now().timestamp_millis();
    let new = |token: &[u8], created_at: i64| NewConnectSession {
        organization_id: s.organization_id,
        user_id: s.user_id,
        token_hash: token.to_vec(),
        elements: vec!["bigcommerce".into()],
        name: None,
        tags: vec![],
        redirect_url: None,
        callback_url: None,
        signature_key_sealed: None,
        configuration_sealed: None,
        key_id: None,
        created_at,
        expires_at: created_at + 1000,
    };
    let expired = s.store.create_connect_session(&new(b"old", now - 60_000)).await.unwrap();
    let got = s.get(expired, &s.auth).await.ok();
    assert_eq!(got["status"], "expired");

    let done = s.store.create_connect_session(&new(b"done", now + 60_000)).await.unwrap();
    assert!(s.store.claim_connect_session(done, now).await.unwrap());
    assert_eq!(s.get(done, &s.auth).await.ok()["status"], "pending", "claimed reads pending");
    s.store.release_connect_session(done, "wrong API token").await.unwrap();
    let got = s.get(done, &s.auth).await.ok();
    assert_eq!((got["status"].clone(), got["error"].clone()), (json!("pending"), json!("wrong API token")));
    assert!(s.store.claim_connect_session(done, now).await.unwrap());
    assert!(s.store.complete_connect_session(done, 42, now + 5).await.unwrap());
    let got = s.get(done, &s.auth).await.ok();
    assert_eq!(got["status"], "completed");
    assert_eq!(got["instanceId"], 42);
    assert!(got.get("error").is_none(), "{got}");
    assert!(got["finishedAt"].as_str().unwrap().ends_with('Z'));

    let failed = s.store.create_connect_session(&new(b"failed", now + 60_000)).await.unwrap();
    assert!(s.store.fail_connect_session(failed, "the customer cancelled", now).await.unwrap());
    let got = s.get(failed, &s.auth).await.ok();
    assert_eq!((got["status"].clone(), got["error"].clone()), (json!("failed"), json!("the customer cancelled")));
}
