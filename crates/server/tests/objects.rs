//! Object metadata and common resource definitions over HTTP (issue 14, first
//! part): the router in this process on 127.0.0.1:0, one BigCommerce instance on
//! the simulator (Element auth), two organizations (isolation), and the bad inputs.

use std::time::Duration;

mod common;

use common::Answer;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use switchyard_elements::Catalog;
use switchyard_engine::client::VendorClient;
use switchyard_engine::outbound::OutboundPolicy;
use switchyard_server::caller::hash_secret;
use switchyard_server::{new_secret, AppState};
use switchyard_simulators::bigcommerce::{self, BigCommerceSimulator, StoreConfig};

struct Platform {
    api: String,
    /// Organization A's platform credentials.
    auth: String,
    /// A's credentials with its BigCommerce instance's `Element` token.
    element: String,
    /// Organization B's platform credentials.
    other: String,
    /// A's BigCommerce instance.
    instance: i64,
    http: reqwest::Client,
    _sim: BigCommerceSimulator,
    _dir: tempfile::TempDir,
}

async fn start() -> Platform {
    let config = StoreConfig::default();
    let hash = config.hash.clone();
    let sim = BigCommerceSimulator::new(vec![config]);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let sim_addr = listener.local_addr().unwrap();
    tokio::spawn(bigcommerce::serve(listener, sim.clone()));

    let dir = tempfile::tempdir().unwrap();
    let store = switchyard_store::Store::open(&format!("sqlite://{}?mode=rwc", dir.path().join("t.db").display())).await.unwrap();
    let mut auths = Vec::new();
    for name in ["a", "b"] {
        let (org_secret, user_secret) = (new_secret(), new_secret());
        store.create_organization(name, &hash_secret(&org_secret), &format!("{name}@localhost"), &hash_secret(&user_secret)).await.unwrap();
        auths.push(format!("User {user_secret}, Organization {org_secret}"));
    }
    let state = AppState::new(
        store,
        switchyard_vault::Vault::new(switchyard_vault::KeyRing::generate()),
        VendorClient::new(OutboundPolicy::allow_loopback(), Duration::from_secs(30)),
        Catalog::builtin(),
        vec![9u8; 32],
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(switchyard_server::serve(listener, state, std::future::pending()));
    let api = format!("http://{addr}/elements/api-v2");
    let http = reqwest::Client::new();
    let created = Answer::of(http.post(format!("{api}/instances")).header("Authorization", &auths[0]).json(&json!({
        "element": {"key": "bigcommerce"}, "name": "shop", "configuration": {
            "username": bigcommerce::DEMO_USERNAME, "password": bigcommerce::DEMO_API_TOKEN,
            "store.url": format!("http://{sim_addr}/stores/{hash}/api/v2")}})))
    .await
    .ok();
    let element = format!("{}, Element {}", auths[0], created["token"].as_str().unwrap());
    Platform {
        api,
        auth: auths[0].clone(),
        element,
        other: auths[1].clone(),
        instance: created["id"].as_i64().unwrap(),
        http,
        _sim: sim,
        _dir: dir,
    }
}

impl Platform {
    async fn call(&self, auth: &str, method: Method, path: &str, body: Option<Value>) -> Answer {
        let mut r = self.http.request(method, format!("{}{path}", self.api)).header("Authorization", auth);
        if let Some(b) = body {
            r = r.json(&b);
        }
        Answer::of(r).await
    }
    async fn get(&self, auth: &str, path: &str) -> Answer {
        self.call(auth, Method::GET, path, None).await
    }
    /// Organization B, platform auth.
    async fn b(&self, method: Method, path: &str, body: Option<Value>) -> Answer {
        self.call(&self.other, method, path, body).await
    }
    /// Organization A, platform auth.
    async fn a(&self, method: Method, path: &str, body: Option<Value>) -> Answer {
        self.call(&self.auth, method, path, body).await
    }
    /// A raw body with a content type, for the bodies `json()` cannot send.
    async fn raw(&self, method: Method, path: &str, content_type: &str, body: Vec<u8>) -> Answer {
        Answer::of(
            self.http.request(method, format!("{}{path}", self.api)).header("Authorization", &self.auth).header("Content-Type", content_type).body(body),
        )
        .await
    }
}

/// A 400 whose message contains `words`.
fn refused(a: &Answer, words: &str) {
    let (m, _) = a.error(StatusCode::BAD_REQUEST);
    assert!(m.contains(words), "{m:?} lacks {words:?}");
}

fn names(a: Answer) -> Vec<String> {
    serde_json::from_value(a.ok()).unwrap()
}

const TYPES: [&str; 6] = ["string", "number", "boolean", "date", "array", "object"];

/// Every field has the documented members and types.
fn check_fields(what: &str, metadata: &Value) {
    let fields = metadata["fields"].as_array().unwrap_or_else(|| panic!("{what}: {metadata}"));
    assert!(!fields.is_empty(), "{what} has no fields");
    for f in fields {
        assert!(f["vendorPath"].as_str().is_some_and(|p| !p.is_empty()), "{what}: {f}");
        assert!(TYPES.contains(&f["type"].as_str().unwrap()), "{what}: {f}");
        assert!(f["vendorReadOnly"].is_boolean() && f["vendorRequired"].is_boolean(), "{what}: {f}");
        for flag in ["createable", "updateable", "filterable"] {
            assert!(matches!(f[flag].as_str(), Some("true" | "false")), "{what}: {flag} of {f}");
        }
        assert_eq!(f["mask"].is_string(), f["type"] == "date", "{what}: a mask on dates only: {f}");
    }
}

#[tokio::test]
async fn every_object_of_the_three_elements_has_metadata() {
    let p = start().await;
    let mut seen = 0;
    for element in ["bigcommerce", "infusionsoftcrm", "infusionsoftmarketing"] {
        let objects = names(p.get(&p.auth, &format!("/elements/{element}/objects")).await);
        assert!(!objects.is_empty(), "{element}");
        for object in &objects {
            let m = p.get(&p.auth, &format!("/elements/{element}/objects/{object}/metadata")).await.ok();
            check_fields(&format!("{element} {object}"), &m);
            seen += 1;
        }
    }
    assert!(seen > 20, "{seen} objects");
    // The element's id works as its key does.
    assert_eq!(names(p.get(&p.auth, "/elements/191/objects").await), names(p.get(&p.auth, "/elements/infusionsoftcrm/objects").await));
    let keap = p.get(&p.auth, "/elements/infusionsoftcrm/objects/contacts/metadata").await.ok();
    let email = keap["fields"].as_array().unwrap().iter().find(|f| f["vendorPath"] == "Email").unwrap();
    assert_eq!((&email["filterable"], &email["createable"]), (&json!("true"), &json!("true")));
    let (m, _) = p.get(&p.auth, "/elements/nope/objects").await.error(StatusCode::NOT_FOUND);
    assert!(m.contains("nope"), "{m}");
    let (m, _) = p.get(&p.auth, "/elements/infusionsoftcrm/objects/orders/metadata").await.error(StatusCode::NOT_FOUND);
    assert!(m.contains("'orders'"), "{m}");
}

#[tokio::test]
async fn an_instance_lists_its_element_objects_with_its_token() {
    let p = start().await;
    let listed = names(p.get(&p.element, "/objects").await);
    for n in ["customers", "orders", "orders-shipments", "products-brands", "customers-addresses", "products-skus"] {
        assert!(listed.contains(&n.to_owned()), "{n} in {listed:?}");
    }
    assert!(!listed.contains(&"ping".to_owned()), "{listed:?}");
    assert_eq!(names(p.get(&p.element, "/hubs/ecommerce/objects").await), listed);
    assert_eq!(names(p.get(&p.auth, "/elements/bigcommerce/objects").await), listed);

    let orders = p.get(&p.element, "/objects/orders/metadata").await.ok();
    assert_eq!(p.get(&p.element, "/hubs/ecommerce/objects/orders/metadata").await.ok(), orders);
    assert_eq!(p.get(&p.auth, "/elements/bigcommerce/objects/orders/metadata").await.ok(), orders);
    let field = |path: &str| orders["fields"].as_array().unwrap().iter().find(|f| f["vendorPath"] == path).cloned().unwrap();
    assert_eq!(
        field("date_modified"),
        json!({"vendorPath": "date_modified", "type": "date", "vendorNativeType": "date", "mask": "EEE, d MMM yyyy HH:mm:ss Z",
               "vendorReadOnly": false, "vendorRequired": false, "createable": "true", "updateable": "true", "filterable": "true"})
    );
    assert_eq!(field("staff_notes")["filterable"], "false");
    assert_eq!(field("id")["vendorReadOnly"], true);
    assert_eq!(field("billing_address.email")["filterable"], "true");
    let shipments = p.get(&p.element, "/objects/orders-shipments/metadata").await.ok();
    check_fields("orders-shipments", &shipments);

    // Unknown objects, another hub, no token, a token of no instance.
    let (m, _) = p.get(&p.element, "/objects/contacts/metadata").await.error(StatusCode::NOT_FOUND);
    assert!(m.contains("'contacts'"), "{m}");
    let (m, _) = p.get(&p.element, "/hubs/crm/objects").await.error(StatusCode::NOT_FOUND);
    assert!(m.contains("ecommerce"), "{m}");
    p.get(&p.element, "/hubs/crm/objects/orders/metadata").await.error(StatusCode::NOT_FOUND);
    p.get(&p.auth, "/objects").await.error(StatusCode::UNAUTHORIZED);
    p.get(&format!("{}, Element forged", p.auth), "/objects/orders/metadata").await.error(StatusCode::UNAUTHORIZED);
    // B with A's instance token: a token of another organization is a 401, never data.
    let token = p.element.rsplit("Element ").next().unwrap();
    p.get(&format!("{}, Element {token}", p.other), "/objects").await.error(StatusCode::UNAUTHORIZED);
    // The hub call under the same prefix still works.
    p.get(&p.element, "/hubs/ecommerce/orders").await.ok();
}

fn contact() -> Value {
    json!({"fields": [{"path": "id", "type": "string"}, {"path": "email", "type": "string"},
                      {"path": "address.city", "type": "string"}, {"path": "born", "type": "date"}]})
}

#[tokio::test]
async fn organization_definitions_are_created_read_replaced_and_deleted() {
    let p = start().await;
    let path = "/organizations/objects/myContact/definitions";
    assert_eq!(p.a(Method::GET, "/organizations/objects/definitions", None).await.ok(), json!({"level": "organization"}));
    let created = p.a(Method::POST, path, Some(contact())).await.ok();
    assert_eq!(created["fields"], contact()["fields"]);
    assert_eq!(created["level"], "organization");
    assert_eq!(p.a(Method::GET, path, None).await.ok(), created);
    let all = p.a(Method::GET, "/organizations/objects/definitions", None).await.ok();
    assert_eq!(all, json!({"myContact": {"fields": contact()["fields"]}, "level": "organization"}));

    let (m, _) = p.a(Method::POST, path, Some(contact())).await.error(StatusCode::CONFLICT);
    assert!(m.contains("myContact"), "{m}");
    let narrower = json!({"fields": [{"path": "id", "type": "string"}], "level": "organization"});
    assert_eq!(p.a(Method::PUT, path, Some(narrower.clone())).await.ok(), narrower);
    assert_eq!(p.a(Method::GET, path, None).await.ok(), narrower);
    let (m, _) = p.a(Method::PUT, "/organizations/objects/nobody/definitions", Some(contact())).await.error(StatusCode::NOT_FOUND);
    assert_eq!(m, "Common resource 'nobody' does not exist");

    let deleted = p.a(Method::DELETE, path, None).await;
    assert_eq!((deleted.status, deleted.body), (StatusCode::OK, Value::Null));
    p.a(Method::GET, path, None).await.error(StatusCode::NOT_FOUND);
    p.a(Method::DELETE, path, None).await.error(StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_keyed_post_creates_all_or_nothing() {
    let p = start().await;
    let all = "/organizations/objects/definitions";
    let two = json!({"myContact": contact(), "myAccount": {"fields": [{"path": "name", "type": "string"}]}});
    let created = p.a(Method::POST, all, Some(two)).await.ok();
    assert_eq!(created["myAccount"]["fields"][0]["path"], "name");
    // What GET answers can be sent back (its `level` member included) ... once the names are free.
    let listed = p.a(Method::GET, all, None).await.ok();
    let (m, _) = p.a(Method::POST, all, Some(listed.clone())).await.error(StatusCode::CONFLICT);
    assert!(m.contains("myAccount") || m.contains("myContact"), "{m}");
    p.a(Method::DELETE, all, None).await.ok();
    assert_eq!(p.a(Method::POST, all, Some(listed.clone())).await.ok(), listed);

    // One name taken: nothing of the batch stays.
    let batch = json!({"aNew": contact(), "myContact": contact(), "zNew": contact()});
    p.a(Method::POST, all, Some(batch)).await.error(StatusCode::CONFLICT);
    // One definition malformed: nothing of the batch stays either.
    let batch = json!({"aNew": contact(), "zBad": {"fields": [{"path": "x", "type": "money"}]}});
    refused(&p.a(Method::POST, all, Some(batch)).await, "zBad.fields[0].type must be one of");
    assert_eq!(p.a(Method::GET, all, None).await.ok(), listed, "nothing half-written");
    for name in ["aNew", "zNew", "zBad"] {
        p.a(Method::GET, &format!("/organizations/objects/{name}/definitions"), None).await.error(StatusCode::NOT_FOUND);
    }
}

#[tokio::test]
async fn bad_input_is_a_clear_4xx_and_writes_nothing() {
    let p = start().await;
    let one = "/organizations/objects/myContact/definitions";
    let all = "/organizations/objects/definitions";
    refused(&p.raw(Method::POST, one, "application/json", b"{\"fields\": [".to_vec()).await, "Malformed JSON");
    refused(&p.raw(Method::POST, all, "application/json", b"[1, 2]".to_vec()).await, "must be a JSON object");
    p.raw(Method::POST, one, "text/plain", serde_json::to_vec(&contact()).unwrap()).await.error(StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let huge = format!("{{\"fields\": [{{\"path\": \"{}\", \"type\": \"string\"}}]}}", "a".repeat(11 * 1024 * 1024));
    p.raw(Method::POST, one, "application/json", huge.into_bytes()).await.error(StatusCode::PAYLOAD_TOO_LARGE);
    let many: Vec<Value> = (0..501).map(|i| json!({"path": format!("f{i}"), "type": "string"})).collect();
    refused(&p.a(Method::POST, one, Some(json!({"fields": many}))).await, "at most 500");
    let long = "a".repeat(201);
    refused(&p.a(Method::POST, one, Some(json!({"fields": [{"path": long, "type": "string"}]}))).await, "not a field path");

    for (body, words) in [
        (json!({"fields": "id"}), "fields must be an array"),
        (json!({"fields": [{"path": "id", "type": "string"}, {"path": "id", "type": "number"}]}), "given twice"),
        (json!({"fields": [{"path": "a", "type": "string"}, {"path": "a.b", "type": "string"}]}), "clash"),
        (json!({"fields": [{"path": 7, "type": "string"}]}), "fields[0].path must be a string"),
        (json!({"fields": [{"path": "lines[0].sku", "type": "string"}]}), "not a field path"),
        (json!({"fields": [{"path": "x", "type": "object"}]}), "must be one of string, number, boolean, date"),
        (json!({"fields": []}), "at least one field"),
        (json!({"fieldz": []}), "unknown member"),
        (json!({"fields": [{"path": "x", "type": "string"}], "level": "account"}), "accounts are not supported"),
        (json!({"fields": [{"path": "x", "type": "string"}], "level": "instance"}), "path chooses"),
    ] {
        refused(&p.a(Method::POST, one, Some(body.clone())).await, words);
    }
    refused(&p.a(Method::POST, "/organizations/objects/my%20contact/definitions", Some(contact())).await, "not a common resource name");
    // A name no definition can have is the same 400 on every method, not a 404.
    for method in [Method::GET, Method::PUT, Method::DELETE] {
        let body = (method == Method::PUT).then(contact);
        refused(&p.a(method, "/organizations/objects/..%2Fx/definitions", body).await, "not a common resource name");
    }
    refused(&p.a(Method::POST, all, Some(json!({}))).await, "names no common resource");
    refused(&p.a(Method::POST, all, Some(json!({"1st": contact()}))).await, "not a common resource name");
    refused(&p.a(Method::POST, all, Some(json!({"level": "account", "x": contact()}))).await, "accounts are not supported");
    let answer = p.a(Method::POST, "/accounts/objects/myContact/definitions", Some(contact())).await;
    refused(&answer, "accounts are not supported");
    refused(&p.a(Method::GET, "/accounts/5/objects/definitions", None).await, "accounts are not supported");
    refused(&p.a(Method::GET, "/instances/abc/objects/definitions", None).await, "{id} in the path must be a whole number");
    p.call("User x, Organization y", Method::GET, all, None).await.error(StatusCode::UNAUTHORIZED);
    p.call("User x, Organization y", Method::GET, "/accounts/objects/definitions", None).await.error(StatusCode::UNAUTHORIZED);

    assert_eq!(p.a(Method::GET, all, None).await.ok(), json!({"level": "organization"}), "nothing was written");
}

#[tokio::test]
async fn instance_definitions_live_beside_the_organizations() {
    let p = start().await;
    let id = p.instance;
    let one = format!("/instances/{id}/objects/myContact/definitions");
    let org_one = "/organizations/objects/myContact/definitions";
    p.a(Method::POST, org_one, Some(contact())).await.ok();
    let narrow = json!({"fields": [{"path": "title", "type": "string"}]});
    let created = p.a(Method::POST, &one, Some(narrow.clone())).await.ok();
    assert_eq!(created, json!({"fields": narrow["fields"], "level": "instance"}));
    assert_eq!(p.a(Method::GET, &one, None).await.ok(), created);
    let (m, _) = p.a(Method::GET, &format!("/instances/{id}/objects/nobody/definitions"), None).await.error(StatusCode::NOT_FOUND);
    assert_eq!(m, format!("Common resource of instance {id} 'nobody' does not exist"));
    assert_eq!(p.a(Method::GET, org_one, None).await.ok()["fields"], contact()["fields"], "the organization's is another");
    let listed = p.a(Method::GET, &format!("/instances/{id}/objects/definitions"), None).await.ok();
    assert_eq!(listed, json!({"myContact": {"fields": narrow["fields"]}, "level": "instance"}));
    p.a(Method::POST, &one, Some(narrow.clone())).await.error(StatusCode::CONFLICT);
    refused(&p.a(Method::POST, &one, Some(json!({"fields": narrow["fields"], "level": "organization"}))).await, "path chooses");
    let keyed = json!({"other": narrow, "level": "instance"});
    p.a(Method::POST, &format!("/instances/{id}/objects/definitions"), Some(keyed)).await.ok();
    let wider = json!({"fields": [{"path": "title", "type": "string"}, {"path": "when", "type": "date"}]});
    assert_eq!(p.a(Method::PUT, &one, Some(wider.clone())).await.ok()["fields"], wider["fields"]);
    p.a(Method::DELETE, &one, None).await.ok();
    p.a(Method::GET, &one, None).await.error(StatusCode::NOT_FOUND);
    p.a(Method::GET, org_one, None).await.ok();
    p.a(Method::DELETE, &format!("/instances/{id}/objects/definitions"), None).await.ok();
    assert_eq!(p.a(Method::GET, &format!("/instances/{id}/objects/definitions"), None).await.ok(), json!({"level": "instance"}));

    // No such instance: every method is a 404 naming it, and nothing is written.
    let missing = id + 1000;
    for method in [Method::GET, Method::POST, Method::PUT, Method::DELETE] {
        let body = (method == Method::POST || method == Method::PUT).then(contact);
        let (m, _) = p.a(method.clone(), &format!("/instances/{missing}/objects/myContact/definitions"), body).await.error(StatusCode::NOT_FOUND);
        assert!(m.contains(&missing.to_string()), "{method}: {m}");
    }
}

#[tokio::test]
async fn another_organization_sees_none_of_it() {
    let p = start().await;
    let id = p.instance;
    p.a(Method::POST, "/organizations/objects/myContact/definitions", Some(contact())).await.ok();
    p.a(Method::POST, &format!("/instances/{id}/objects/myContact/definitions"), Some(contact())).await.ok();

    assert_eq!(p.b(Method::GET, "/organizations/objects/definitions", None).await.ok(), json!({"level": "organization"}));
    for method in [Method::GET, Method::PUT, Method::DELETE] {
        let body = (method == Method::PUT).then(contact);
        p.b(method.clone(), "/organizations/objects/myContact/definitions", body.clone()).await.error(StatusCode::NOT_FOUND);
        p.b(method, &format!("/instances/{id}/objects/myContact/definitions"), body).await.error(StatusCode::NOT_FOUND);
    }
    p.b(Method::GET, &format!("/instances/{id}/objects/definitions"), None).await.error(StatusCode::NOT_FOUND);
    p.b(Method::DELETE, &format!("/instances/{id}/objects/definitions"), None).await.error(StatusCode::NOT_FOUND);
    p.b(Method::POST, &format!("/instances/{id}/objects/theirs/definitions"), Some(contact())).await.error(StatusCode::NOT_FOUND);
    p.b(Method::POST, &format!("/instances/{id}/objects/definitions"), Some(json!({"theirs": contact()}))).await.error(StatusCode::NOT_FOUND);
    p.b(Method::DELETE, "/organizations/objects/definitions", None).await.ok();
    // B's own definition of the same name is its own.
    let theirs = json!({"fields": [{"path": "x", "type": "number"}]});
    p.b(Method::POST, "/organizations/objects/myContact/definitions", Some(theirs.clone())).await.ok();

    // A's are as they were.
    assert_eq!(p.a(Method::GET, "/organizations/objects/myContact/definitions", None).await.ok()["fields"], contact()["fields"]);
    assert_eq!(p.a(Method::GET, &format!("/instances/{id}/objects/myContact/definitions"), None).await.ok()["fields"], contact()["fields"]);
    assert!(p.a(Method::GET, &format!("/instances/{id}/objects/theirs/definitions"), None).await.status == StatusCode::NOT_FOUND);
}
