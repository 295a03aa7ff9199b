//! Transformations over HTTP (issue 14, second part): one common resource,
//! `myContact`, mapped onto BigCommerce `customers` and Keap `contacts`, called
//! through both hubs; instance-level transformations (replacing and `inherit`);
//! nested, indexed and filter vendor paths; dates; passThrough; every refusal;
//! two organizations; a polled event. The router runs in this process, both
//! simulators on other loopback ports, every call through the real outbound client.

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
use switchyard_simulators::keap::{self, KeapSimulator, DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, DEMO_PRIVATE_KEY};

const CALLBACK: &str = "http://127.0.0.1:9/callback";

struct Platform {
    api: String,
    /// Organization A's platform credentials.
    auth: String,
    /// Organization B's.
    other: String,
    http: reqwest::Client,
    store: switchyard_store::Store,
    vault: switchyard_vault::Vault,
    engine: switchyard_engine::Engine,
    org: i64,
    /// A's BigCommerce instance: id and hub authorization.
    shop: (i64, String),
    /// A's Keap CRM instance: id and hub authorization.
    crm: (i64, String),
    _sims: (BigCommerceSimulator, KeapSimulator),
    _dir: tempfile::TempDir,
}

async fn start() -> Platform {
    let config = StoreConfig::default();
    let hash = config.hash.clone();
    let shop_sim = BigCommerceSimulator::new(vec![config]);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let shop_addr = listener.local_addr().unwrap();
    tokio::spawn(bigcommerce::serve(listener, shop_sim.clone()));

    let keap_sim = KeapSimulator::demo();
    keap_sim.set_auto_approve(true);
    // Keap writes dates in the account's zone, without an offset.
    keap_sim.set_timezone(DEMO_CLIENT_ID, chrono_tz::America::New_York);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let keap = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(keap::serve(listener, keap_sim.clone()));

    let mut catalog = Catalog::builtin();
    assert!(catalog.set_default("infusionsoftcrm", "oauth.authorization.url", &format!("{keap}/app/oauth/authorize")));
    assert!(catalog.set_default("infusionsoftcrm", "oauth.token.url", &format!("{keap}/token")));
    assert!(catalog.set_default("infusionsoftcrm", "base.url", &format!("{keap}/crm")));

    let dir = tempfile::tempdir().unwrap();
    let store = switchyard_store::Store::open(&format!("sqlite://{}?mode=rwc", dir.path().join("t.db").display())).await.unwrap();
    let mut auths = Vec::new();
    let mut org = 0;
    for name in ["a", "b"] {
        let (org_secret, user_secret) = (new_secret(), new_secret());
        let (made, _) = store.create_organization(name, &hash_secret(&org_secret), &format!("{name}@localhost"), &hash_secret(&user_secret)).await.unwrap();
        if name == "a" {
            org = made.id;
        }
        auths.push(format!("User {user_secret}, Organization {org_secret}"));
    }
    let vault = switchyard_vault::Vault::new(switchyard_vault::KeyRing::generate());
    let state = AppState::new(
        store.clone(),
        vault.clone(),
        VendorClient::new(OutboundPolicy::allow_loopback(), Duration::from_secs(30)),
        catalog,
        vec![9u8; 32],
    );
    let engine = state.engine.clone();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(switchyard_server::serve(listener, state, std::future::pending()));
    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let api = format!("http://{addr}/elements/api-v2");

    let shop = Answer::of(http.post(format!("{api}/instances")).header("Authorization", &auths[0]).json(&json!({
        "element": {"key": "bigcommerce"}, "name": "shop", "configuration": {
            "username": bigcommerce::DEMO_USERNAME, "password": bigcommerce::DEMO_API_TOKEN,
            "store.url": format!("http://{shop_addr}/stores/{hash}/api/v2")}})))
    .await
    .ok();
    let mut p = Platform {
        api,
        auth: auths[0].clone(),
        other: auths[1].clone(),
        http,
        store,
        vault,
        engine,
        org,
        shop: (shop["id"].as_i64().unwrap(), format!("{}, Element {}", auths[0], shop["token"].as_str().unwrap())),
        crm: (0, String::new()),
        _sims: (shop_sim, keap_sim),
        _dir: dir,
    };
    p.crm = p.connect_keap(json!({})).await;
    p
}

impl Platform {
    async fn call(&self, auth: &str, method: Method, path: &str, body: Option<Value>) -> Answer {
        let mut r = self.http.request(method, format!("{}{path}", self.api)).header("Authorization", auth);
        if let Some(b) = body {
            r = r.json(&b);
        }
        Answer::of(r).await
    }

    async fn platform(&self, method: Method, path: &str, body: Option<Value>) -> Answer {
        self.call(&self.auth, method, path, body).await
    }

    /// The OAuth dance with Keap (auto-approved), `extra` added to the configuration.
    async fn connect_keap(&self, extra: Value) -> (i64, String) {
        let q = format!("apiKey={DEMO_CLIENT_ID}&apiSecret={DEMO_CLIENT_SECRET}&callbackUrl={}&state=s", urlencode(CALLBACK));
        let answer = self.platform(Method::GET, &format!("/elements/infusionsoftcrm/oauth/url?{q}"), None).await.ok();
        let r = self.http.get(answer["oauthUrl"].as_str().unwrap()).send().await.unwrap();
        let location = url::Url::parse(r.headers()["location"].to_str().unwrap()).unwrap();
        let code = location.query_pairs().find(|(k, _)| k == "code").unwrap().1.into_owned();
        let mut config = json!({"oauth.api.key": DEMO_CLIENT_ID, "oauth.api.secret": DEMO_CLIENT_SECRET,
            "oauth.callback.url": CALLBACK, "infusionsoft.private.key": DEMO_PRIVATE_KEY});
        for (k, v) in extra.as_object().unwrap() {
            config[k] = v.clone();
        }
        let created = self
            .platform(Method::POST, "/instances", Some(json!({"element": {"key": "infusionsoftcrm"}, "name": "crm",
                "configuration": config, "providerData": {"code": code}})))
            .await
            .ok();
        (created["id"].as_i64().unwrap(), format!("{}, Element {}", self.auth, created["token"].as_str().unwrap()))
    }

    async fn hub(&self, auth: &str, method: Method, hub_path: &str, body: Option<Value>) -> Answer {
        self.call(auth, method, &format!("/hubs/{hub_path}"), body).await
    }

    /// The query parameter names of the instance's newest vendor call, once the
    /// call log (written in the background) holds `n` calls.
    async fn last_vendor_query(&self, id: i64, n: usize) -> Vec<String> {
        common::until_some(Duration::from_secs(10), "the call log", || async {
            let log = self.platform(Method::GET, &format!("/instances/{id}/logs?pageSize=500"), None).await.ok();
            let log = log.as_array().unwrap().clone();
            (log.len() >= n).then(|| log[0]["queryParameters"].as_array().unwrap().iter().map(|v| v.as_str().unwrap().to_owned()).collect())
        })
        .await
    }

    /// The instance's vendor calls so far, every call already made included (the
    /// log is written in the background: without the flush, a call just made may
    /// not be counted yet, and `last_vendor_query` would read it as the next one).
    async fn log_len(&self, id: i64) -> usize {
        self.engine.call_log.flush().await;
        self.platform(Method::GET, &format!("/instances/{id}/logs?pageSize=500"), None).await.ok().as_array().unwrap().len()
    }
}

fn urlencode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

fn keys(record: &Value) -> Vec<&str> {
    let mut keys: Vec<&str> = record.as_object().unwrap_or_else(|| panic!("not a record: {record}")).keys().map(String::as_str).collect();
    keys.sort();
    keys
}

/// `myContact` as the application sees it.
fn my_contact() -> Value {
    json!({"fields": [
        {"path": "id", "type": "string"}, {"path": "firstName", "type": "string"}, {"path": "lastName", "type": "string"},
        {"path": "email", "type": "string"}, {"path": "company", "type": "string"}, {"path": "created", "type": "date"}]})
}

fn bigcommerce_contact() -> Value {
    json!({"vendorName": "customers", "fields": [
        {"path": "id", "type": "string", "vendorPath": "id"},
        {"path": "firstName", "type": "string", "vendorPath": "first_name"},
        {"path": "lastName", "type": "string", "vendorPath": "last_name"},
        {"path": "email", "type": "string", "vendorPath": "email"},
        {"path": "company", "type": "string", "vendorPath": "company"},
        {"path": "created", "type": "date", "vendorPath": "date_created", "vendorType": "date"}]})
}

fn keap_contact() -> Value {
    json!({"vendorName": "contacts", "fields": [
        {"path": "id", "type": "string", "vendorPath": "Id"},
        {"path": "firstName", "type": "string", "vendorPath": "FirstName"},
        {"path": "lastName", "type": "string", "vendorPath": "LastName"},
        {"path": "email", "type": "string", "vendorPath": "Email"},
        {"path": "company", "type": "string", "vendorPath": "Company"},
        {"path": "created", "type": "date", "vendorPath": "DateCreated", "vendorType": "date"}]})
}

#[tokio::test(flavor = "multi_thread")]
async fn one_common_resource_over_bigcommerce_customers_and_keap_contacts() {
    let p = start().await;
    p.platform(Method::POST, "/organizations/objects/myContact/definitions", Some(my_contact())).await.ok();
    let saved = p.platform(Method::POST, "/organizations/elements/bigcommerce/transformations/myContact", Some(bigcommerce_contact())).await.ok();
    assert_eq!((saved["level"].as_str(), saved["objectName"].as_str(), saved["vendorName"].as_str()), (Some("organization"), Some("myContact"), Some("customers")));
    // By id as well as by key.
    let keap_id = p.platform(Method::GET, "/elements/infusionsoftcrm", None).await.ok()["id"].clone();
    p.platform(Method::POST, &format!("/organizations/elements/{keap_id}/transformations/myContact"), Some(keap_contact())).await.ok();
    let listed = p.platform(Method::GET, "/organizations/elements/bigcommerce/transformations", None).await.ok();
    assert_eq!(keys(&listed), ["myContact"]);
    assert_eq!(listed["myContact"]["fields"].as_array().unwrap().len(), 6);
    // Each element's level lists and reads its own (Keap's myContact is over contacts).
    assert_eq!(listed["myContact"]["vendorName"], "customers");
    let one = p.platform(Method::GET, "/organizations/elements/bigcommerce/transformations/myContact", None).await.ok();
    assert_eq!((one["vendorName"].as_str(), one["level"].as_str()), (Some("customers"), Some("organization")));

    exercise_my_contact(&p).await;

    // The same through each instance's own transformation.
    for (element, path) in [("bigcommerce", "/organizations/elements/bigcommerce"), ("infusionsoftcrm", "/organizations/elements/infusionsoftcrm")] {
        p.platform(Method::DELETE, &format!("{path}/transformations/myContact"), None).await.ok();
        let (id, body) = if element == "bigcommerce" { (p.shop.0, bigcommerce_contact()) } else { (p.crm.0, keap_contact()) };
        let saved = p.platform(Method::POST, &format!("/instances/{id}/transformations/myContact"), Some(body)).await.ok();
        assert_eq!(saved["level"], "instance");
    }
    assert_eq!(p.platform(Method::GET, "/organizations/elements/bigcommerce/transformations", None).await.ok(), json!({}));
    exercise_my_contact(&p).await;
}

/// CRUD, count, filters and paging of `myContact` through both hubs, whichever
/// level maps it.
async fn exercise_my_contact(p: &Platform) {
    for ((id, auth), hub) in [(&p.shop, "ecommerce"), (&p.crm, "crm")] {
        let objects = p.call(auth, Method::GET, "/objects", None).await.ok();
        assert!(objects.as_array().unwrap().contains(&json!("myContact")), "{hub}: {objects}");
        let meta = p.call(auth, Method::GET, &format!("/hubs/{hub}/objects/myContact/metadata"), None).await.ok();
        assert_eq!(meta["fields"].as_array().unwrap().len(), 6, "{meta}");

        let vendor_object = if hub == "crm" { "contacts" } else { "customers" };
        let vendor_count = p.hub(auth, Method::GET, &format!("{hub}/{vendor_object}/count"), None).await.ok();
        let count = p.hub(auth, Method::GET, &format!("{hub}/myContact/count"), None).await.ok();
        assert_eq!(count, vendor_count, "{hub}: a count passes as it is");

        // Create: the body is mapped to the vendor's fields, the answer back.
        let made = p
            .hub(auth, Method::POST, &format!("{hub}/myContact"), Some(json!({"firstName": "Ada", "lastName": "Lovelace", "email": "ada@example.com", "company": "Engines"})))
            .await
            .ok();
        assert_eq!(keys(&made), ["company", "created", "email", "firstName", "id", "lastName"], "{hub}: only mapped fields: {made}");
        assert_eq!((made["firstName"].as_str(), made["company"].as_str()), (Some("Ada"), Some("Engines")), "{hub}");
        let record = made["id"].as_str().unwrap_or_else(|| panic!("{hub}: the id is a string, as myContact says: {made}")).to_owned();
        let created = made["created"].as_str().unwrap();
        assert!(chrono::DateTime::parse_from_rfc3339(created).is_ok(), "{hub}: created is ISO 8601: {created}");

        let got = p.hub(auth, Method::GET, &format!("{hub}/myContact/{record}"), None).await.ok();
        assert_eq!(got, made, "{hub}");
        let patched = p.hub(auth, Method::PATCH, &format!("{hub}/myContact/{record}"), Some(json!({"lastName": "King"}))).await.ok();
        assert_eq!((patched["lastName"].as_str(), patched["firstName"].as_str()), (Some("King"), Some("Ada")), "{hub}");

        // A transformed list and the vendor's own are two lists: the token of one does
        // not continue the other (the vendor's records are not mapped, the mapped ones
        // are not the vendor's), while each continues its own.
        let mapped = p.hub(auth, Method::GET, &format!("{hub}/myContact?pageSize=1"), None).await;
        let mapped_token = mapped.next().unwrap_or_else(|| panic!("{hub}: a page of one of several contacts has a next page"));
        let raw = p.hub(auth, Method::GET, &format!("{hub}/{vendor_object}?pageSize=1"), None).await;
        let raw_token = raw.next().unwrap_or_else(|| panic!("{hub}: the vendor's list has a next page"));
        for (path, token) in [(vendor_object, &mapped_token), ("myContact", &raw_token)] {
            let q = urlencode(token);
            let (m, _) = p.hub(auth, Method::GET, &format!("{hub}/{path}?pageSize=1&nextPage={q}"), None).await.error(StatusCode::BAD_REQUEST);
            assert!(m.contains("belongs to another instance or resource"), "{hub} {path}: {m}");
        }
        let q = urlencode(&mapped_token);
        let second = p.hub(auth, Method::GET, &format!("{hub}/myContact?pageSize=1&nextPage={q}"), None).await.ok();
        assert_eq!(keys(&second[0]), ["company", "created", "email", "firstName", "id", "lastName"], "{hub}: {second}");

        // A filter the vendor can do goes to the vendor (BigCommerce: last_name=...);
        // one it cannot is filtered by the engine; both on common field names.
        let before = p.log_len(*id).await;
        let q = urlencode("lastName = 'King'");
        let found = p.hub(auth, Method::GET, &format!("{hub}/myContact?where={q}"), None).await.ok();
        let found: Vec<&str> = found.as_array().unwrap().iter().map(|r| r["id"].as_str().unwrap()).collect();
        assert_eq!(found, [record.as_str()], "{hub}");
        if hub == "ecommerce" {
            assert!(p.last_vendor_query(*id, before + 1).await.contains(&"last_name".to_owned()), "pushed to BigCommerce");
        }
        // A count takes the vendor's filters too (BigCommerce's /customers/count).
        let q = urlencode("lastName = 'King' and firstName = 'Ada'");
        let counted = p.hub(auth, Method::GET, &format!("{hub}/myContact/count?where={q}"), None).await;
        if hub == "ecommerce" {
            assert_eq!(counted.ok()["count"], 1, "was the whole store's count, the where dropped");
        } else {
            // Keap matches text loosely, so the engine would have to check again: refused.
            assert!(counted.error(StatusCode::BAD_REQUEST).0.contains("count can only filter"));
        }
        // Nothing below a record: the customer's addresses are not myContacts.
        let below = p.hub(auth, Method::GET, &format!("{hub}/myContact/{record}/addresses"), None).await;
        assert_eq!(below.status, StatusCode::NOT_FOUND, "{hub}: {}", below.body);
        let q = urlencode("email like '%@example.com' and firstName = 'Ada'");
        let liked = p.hub(auth, Method::GET, &format!("{hub}/myContact?where={q}&fields=lastName,id"), None).await.ok();
        let liked = liked.as_array().unwrap();
        assert!(liked.iter().any(|r| r["id"] == record.as_str()), "{hub}: {liked:?}");
        assert!(liked.iter().all(|r| keys(r) == ["id", "lastName"]), "{hub}: fields cut the mapped records: {liked:?}");
        // `id` is a string here and a number at both vendors: the value is converted.
        // Also where the engine filters the vendor's records (an OR with a LIKE).
        for q in [format!("id = '{record}'"), format!("id = '{record}' or lastName like 'zzz%'")] {
            let by_id = p.hub(auth, Method::GET, &format!("{hub}/myContact?where={}", urlencode(&q)), None).await.ok();
            assert_eq!(by_id.as_array().unwrap().iter().map(|r| r["id"].as_str().unwrap()).collect::<Vec<_>>(), [record.as_str()], "{hub} {q}");
        }
        let q = urlencode("nickname = 'x'");
        let (m, _) = p.hub(auth, Method::GET, &format!("{hub}/myContact?where={q}"), None).await.error(StatusCode::BAD_REQUEST);
        assert!(m.contains("'nickname' is not a field"), "{hub}: {m}");
        if hub == "crm" {
            // Keap sorts by Id (BigCommerce's customers take no sort).
            let sorted = p.hub(auth, Method::GET, &format!("{hub}/myContact?orderBy=id%20desc&pageSize=3"), None).await.ok();
            let ids: Vec<i64> = sorted.as_array().unwrap().iter().map(|r| r["id"].as_str().unwrap().parse().unwrap()).collect();
            assert!(ids.len() == 3 && ids.windows(2).all(|w| w[0] > w[1]), "{hub}: {sorted}");
        }

        // The vendor's own object is untouched.
        let vendor = if hub == "crm" { format!("crm/contacts/{record}") } else { format!("ecommerce/customers/{record}") };
        let raw = p.hub(auth, Method::GET, &vendor, None).await.ok();
        assert_eq!(raw[if hub == "crm" { "LastName" } else { "last_name" }], "King", "{hub}: {raw}");
        // BigCommerce writes RFC 2822 dates, Keap local times in the account's zone
        // (New York here); the common resource RFC 3339, the same instant.
        let instant = chrono::DateTime::parse_from_rfc3339(created).unwrap();
        if hub == "ecommerce" {
            assert_eq!(chrono::DateTime::parse_from_rfc2822(raw["date_created"].as_str().unwrap()).unwrap(), instant, "{raw}");
        } else {
            let local = chrono::NaiveDateTime::parse_from_str(raw["DateCreated"].as_str().unwrap(), "%Y-%m-%dT%H:%M:%S").unwrap();
            let zoned = local.and_local_timezone(chrono_tz::America::New_York).single().unwrap();
            assert_eq!(zoned, instant, "{raw} {created}");
        }

        p.hub(auth, Method::DELETE, &format!("{hub}/myContact/{record}"), None).await.ok();
        assert_eq!(p.hub(auth, Method::GET, &format!("{hub}/myContact/{record}"), None).await.status, StatusCode::NOT_FOUND, "{hub}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_instance_transformation_replaces_or_inherits_the_organizations() {
    let p = start().await;
    let (shop, auth) = (&p.shop.0, &p.shop.1);
    let org_level = json!({"vendorName": "customers", "fields": [
        {"path": "id", "type": "number", "vendorPath": "id"},
        {"path": "firstName", "type": "string", "vendorPath": "first_name"},
        {"path": "lastName", "type": "string", "vendorPath": "last_name"}]});
    p.platform(Method::POST, "/organizations/elements/bigcommerce/transformations/person", Some(org_level)).await.ok();
    let made = p.hub(auth, Method::POST, "ecommerce/customers", Some(json!({"first_name": "Grace", "last_name": "Hopper", "email": "grace@example.com", "company": "Navy"}))).await.ok();
    let id = made["id"].as_i64().unwrap();
    let person = || async { p.hub(auth, Method::GET, &format!("ecommerce/person/{id}"), None).await.ok() };
    assert_eq!(person().await, json!({"id": id, "firstName": "Grace", "lastName": "Hopper"}));
    // An empty `where` or `orderBy` is no filter and no order, as on the vendor object.
    let all = p.hub(auth, Method::GET, "ecommerce/person?where=&orderBy=", None).await.ok();
    assert!(all.as_array().unwrap().iter().any(|r| r["id"] == id), "{all}");

    // inherit: the organization's fields, the instance's winning by path.
    let own = json!({"vendorName": "customers", "configuration": [{"type": "inherit"}], "fields": [
        {"path": "lastName", "type": "string", "vendorPath": "company"},
        {"path": "mail", "type": "string", "vendorPath": "email"}]});
    let saved = p.platform(Method::POST, &format!("/instances/{shop}/transformations/person"), Some(own.clone())).await.ok();
    assert_eq!(saved["level"], "instance");
    assert_eq!(person().await, json!({"id": id, "firstName": "Grace", "lastName": "Navy", "mail": "grace@example.com"}));
    let listed = p.platform(Method::GET, &format!("/instances/{shop}/transformations"), None).await.ok();
    assert_eq!((keys(&listed), listed["person"]["level"].as_str()), (vec!["person"], Some("instance")), "only the instance's own");
    // The docs: the element's carry the organization's mapping, the instance's its own.
    let docs = p.platform(Method::GET, "/elements/bigcommerce/docs", None).await.ok();
    let get = &docs["paths"]["/hubs/ecommerce/person/{id}"]["get"];
    assert!(get.to_string().contains("#/components/schemas/common.person"), "{get}");
    assert!(docs["paths"]["/hubs/ecommerce/person/count"].is_object() && docs["paths"]["/hubs/ecommerce/customers"].is_object());
    assert_eq!(keys(&docs["components"]["schemas"]["common.person"]["properties"]), ["firstName", "id", "lastName"]);
    let mut ids: Vec<&str> = docs["paths"].as_object().unwrap().values().flat_map(|item| item.as_object().unwrap().values()).map(|op| op["operationId"].as_str().unwrap()).collect();
    let all = ids.len();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), all, "operation ids are unique: {ids:?}");
    let docs = p.platform(Method::GET, &format!("/instances/{shop}/docs"), None).await.ok();
    assert_eq!(keys(&docs["components"]["schemas"]["common.person"]["properties"]), ["firstName", "id", "lastName", "mail"]);
    assert_eq!(p.call(&p.other, Method::GET, &format!("/instances/{shop}/docs"), None).await.status, StatusCode::NOT_FOUND);

    // Inherited fields are the organization's vendor object's: over another
    // vendor object, the instance's stands alone.
    let elsewhere = json!({"vendorName": "orders", "configuration": [{"type": "inherit"}],
        "fields": [{"path": "firstName", "type": "string", "vendorPath": "billing_address.first_name"}]});
    p.platform(Method::POST, &format!("/instances/{shop}/transformations/buyer"), Some(elsewhere.clone())).await.ok();
    p.platform(Method::POST, "/organizations/elements/bigcommerce/transformations/buyer", Some(json!({"vendorName": "customers",
        "fields": [{"path": "lastName", "type": "string", "vendorPath": "last_name"}]}))).await.ok();
    let buyer = p.hub(auth, Method::GET, "ecommerce/buyer?pageSize=1", None).await.ok();
    assert_eq!(keys(&buyer[0]), ["firstName"], "{buyer}");
    // A token of `buyer` over orders does not continue `buyer` once it maps customers.
    let token = p.hub(auth, Method::GET, "ecommerce/buyer?pageSize=1", None).await.next().expect("more than one order");
    p.platform(Method::DELETE, &format!("/instances/{shop}/transformations/buyer"), None).await.ok();
    let q = urlencode(&token);
    let (m, _) = p.hub(auth, Method::GET, &format!("ecommerce/buyer?pageSize=1&nextPage={q}"), None).await.error(StatusCode::BAD_REQUEST);
    assert!(m.contains("belongs to another instance or resource"), "{m}");

    // Without inherit the instance's replaces the organization's.
    let mut alone = own.clone();
    alone.as_object_mut().unwrap().remove("configuration");
    p.platform(Method::PUT, &format!("/instances/{shop}/transformations/person"), Some(alone)).await.ok();
    assert_eq!(person().await, json!({"lastName": "Navy", "mail": "grace@example.com"}));

    // Gone: the organization's again.
    p.platform(Method::DELETE, &format!("/instances/{shop}/transformations/person"), None).await.ok();
    assert_eq!(person().await, json!({"id": id, "firstName": "Grace", "lastName": "Hopper"}));
    p.platform(Method::DELETE, &format!("/instances/{shop}/transformations"), None).await.ok();
    assert_eq!(p.platform(Method::GET, &format!("/instances/{shop}/transformations"), None).await.ok(), json!({}), "the level's are gone");
    assert_eq!(keys(&p.platform(Method::GET, "/organizations/elements/bigcommerce/transformations", None).await.ok()), ["buyer", "person"], "not the organization's");

    // A transformation onto a vendor object's own name renames a field of it; a
    // vendor type given for a field is kept over the element's (a date read as text).
    p.hub(auth, Method::POST, "ecommerce/customers/groups", Some(json!({"name": "Renamed Customers Club"}))).await.ok();
    let renamed = json!({"vendorName": "customers", "configuration": [{"type": "passThrough", "properties": {"fromVendor": true, "toVendor": true}}],
        "fields": [{"path": "surname", "type": "string", "vendorPath": "last_name"},
                   {"path": "since", "type": "string", "vendorPath": "date_created", "vendorType": "string"}]});
    let saved = p.platform(Method::POST, &format!("/instances/{shop}/transformations/customers"), Some(renamed)).await.ok();
    assert_eq!(saved["fields"][1]["vendorType"], "string", "{saved}");
    let got = p.hub(auth, Method::GET, &format!("ecommerce/customers/{id}"), None).await.ok();
    assert_eq!((got["surname"].as_str(), got["first_name"].as_str(), got["id"].as_i64()), (Some("Hopper"), Some("Grace"), Some(id)), "{got}");
    assert!(got.get("last_name").is_none(), "the mapped vendor field is renamed, not copied: {got}");
    // Its count is the transformed object's (its `where` names its fields); a literal
    // resource of the element below that name stays the element's.
    let counted = p.hub(auth, Method::GET, "ecommerce/customers/count?where=surname%3D%27Hopper%27", None).await.ok();
    assert_eq!(counted["count"], 1, "{counted}");
    // An unmapped field passes through to `where` too.
    let found = p.hub(auth, Method::GET, "ecommerce/customers?where=email%3D%27grace%40example.com%27", None).await.ok();
    assert_eq!(found.as_array().unwrap().iter().map(|r| r["id"].as_i64()).collect::<Vec<_>>(), [Some(id)], "{found}");
    let groups = p.hub(auth, Method::GET, "ecommerce/customers/groups", None).await.ok();
    assert!(groups.as_array().unwrap().iter().any(|g| g["name"] == "Renamed Customers Club"), "{groups}");
}

#[tokio::test(flavor = "multi_thread")]
async fn nested_indexed_and_filtered_paths_dates_and_pass_through() {
    let p = start().await;
    let auth = &p.shop.1;
    let group = p
        .hub(auth, Method::POST, "ecommerce/customers/groups", Some(json!({"name": "Trade Partners", "category_access": {"type": "all"},
            "discount_rules": [{"type": "price_list", "price_list_id": 3}, {"type": "all", "method": "percent", "amount": "5.0000"}]})))
        .await
        .ok();
    let gid = group["id"].as_i64().unwrap();
    let tier = json!({"vendorName": "customers-groups", "fields": [
        {"path": "name", "type": "string", "vendorPath": "name"},
        {"path": "access", "type": "string", "vendorPath": "category_access.type"},
        {"path": "firstRule", "type": "string", "vendorPath": "discount_rules[0].type"},
        {"path": "percent", "type": "number", "vendorPath": "discount_rules[?(@.method=='percent')].amount"},
        {"path": "allMethod", "type": "string", "vendorPath": "discount_rules[type=all].method"},
        {"path": "rules", "type": "number", "vendorPath": "discount_rules[*].size()"},
        {"path": "since", "type": "date", "vendorPath": "date_created"}]});
    p.platform(Method::POST, "/organizations/elements/bigcommerce/transformations/tier", Some(tier)).await.ok();
    let got = p.hub(auth, Method::GET, &format!("ecommerce/tier/{gid}"), None).await.ok();
    assert_eq!(
        (got["name"].as_str(), got["access"].as_str(), got["firstRule"].as_str(), got["percent"].as_f64(), got["allMethod"].as_str(), got["rules"].as_i64()),
        (Some("Trade Partners"), Some("all"), Some("price_list"), Some(5.0), Some("percent"), Some(2)),
        "{got}"
    );
    // The same instant, as RFC 3339.
    let vendor_date = chrono::DateTime::parse_from_rfc3339(group["date_created"].as_str().unwrap()).unwrap();
    assert_eq!(chrono::DateTime::parse_from_rfc3339(got["since"].as_str().unwrap()).unwrap(), vendor_date, "{got}");

    // The object's metadata says which mapped fields a write cannot set.
    let meta = p.call(auth, Method::GET, "/hubs/ecommerce/objects/tier/metadata", None).await.ok();
    let read_only: Vec<(&str, bool)> = meta["fields"].as_array().unwrap().iter().map(|f| (f["path"].as_str().unwrap(), f["vendorReadOnly"].as_bool().unwrap())).collect();
    assert_eq!(read_only, [("name", false), ("access", false), ("firstRule", false), ("percent", true), ("allMethod", true), ("rules", true), ("since", false)], "{meta}");

    // Writes: nested and indexed paths are built; filter and size() paths are read only.
    let made = p
        .hub(auth, Method::PATCH, &format!("ecommerce/tier/{gid}"), Some(json!({"name": "Resellers", "access": "specific", "percent": 9, "rules": 7})))
        .await
        .ok();
    assert_eq!((made["name"].as_str(), made["access"].as_str(), made["rules"].as_i64()), (Some("Resellers"), Some("specific"), Some(2)), "{made}");
    let raw = p.hub(auth, Method::GET, &format!("ecommerce/customers/groups/{gid}"), None).await.ok();
    assert_eq!(raw["discount_rules"][1]["amount"], "5.0000", "a filter path is not written: {raw}");

    // Keap: dates in the account's zone (New York), without an offset; the common
    // resource carries the offset, and a write with another offset is the same instant.
    let auth = &p.crm.1;
    let born = json!({"vendorName": "contacts", "fields": [
        {"path": "id", "type": "number", "vendorPath": "Id"},
        {"path": "name", "type": "string", "vendorPath": "LastName"},
        {"path": "born", "type": "date", "vendorPath": "Birthday", "vendorType": "date", "mask": "yyyy-MM-dd'T'HH:mm:ss"}]});
    p.platform(Method::POST, "/organizations/elements/infusionsoftcrm/transformations/born", Some(born)).await.ok();
    let made = p.hub(auth, Method::POST, "crm/born", Some(json!({"name": "Turing", "born": "2024-07-01T16:00:00Z"}))).await.ok();
    assert_eq!(made["born"], "2024-07-01T12:00:00-04:00", "{made}");
    let raw = p.hub(auth, Method::GET, &format!("crm/contacts/{}", made["id"]), None).await.ok();
    assert_eq!(raw["Birthday"], "2024-07-01T12:00:00", "{raw}");
    let (m, _) = p.hub(auth, Method::POST, "crm/born", Some(json!({"name": "Bad", "born": "not a date"}))).await.error(StatusCode::BAD_REQUEST);
    assert!(m.contains("born"), "{m}");

    // A date the vendor keeps as text in its own mask: written, read and filtered as a date.
    let noted = json!({"vendorName": "customers", "fields": [{"path": "id", "type": "number", "vendorPath": "id"},
        {"path": "when", "type": "date", "vendorPath": "notes", "mask": "dd/MM/yyyy"}]});
    p.platform(Method::POST, "/organizations/elements/bigcommerce/transformations/noted", Some(noted)).await.ok();
    let written = p.hub(&p.shop.1, Method::PATCH, "ecommerce/noted/3", Some(json!({"when": "2024-03-04T00:00:00Z"}))).await.ok();
    assert_eq!(written["when"], "2024-03-04T00:00:00Z", "{written}");
    assert_eq!(p.hub(&p.shop.1, Method::GET, "ecommerce/customers/3", None).await.ok()["notes"], "04/03/2024");
    let q = urlencode("when = '2024-03-04T00:00:00Z'");
    let found = p.hub(&p.shop.1, Method::GET, &format!("ecommerce/noted?where={q}"), None).await.ok();
    assert_eq!(found, json!([{"id": 3, "when": "2024-03-04T00:00:00Z"}]), "the value is compared in the vendor's mask");

    // A value the vendor's field cannot take is a 400 naming the common field, before
    // any vendor call (the vendor's type comes from the element's metadata).
    let flags = json!({"vendorName": "customers", "fields": [{"path": "marketing", "type": "boolean", "vendorPath": "accepts_marketing"}]});
    let saved = p.platform(Method::POST, "/organizations/elements/bigcommerce/transformations/flags", Some(flags)).await.ok();
    assert_eq!(saved["fields"][0]["vendorType"], "boolean", "{saved}");
    let (m, _) = p.hub(&p.shop.1, Method::PATCH, "ecommerce/flags/1", Some(json!({"marketing": "yes"}))).await.error(StatusCode::BAD_REQUEST);
    assert!(m.contains("marketing") && !m.contains("accepts_marketing"), "{m}");
    let flipped = p.hub(&p.shop.1, Method::PATCH, "ecommerce/flags/1", Some(json!({"marketing": "1"}))).await.ok();
    assert_eq!(flipped["marketing"], true, "{flipped}");

    // Unmapped fields are dropped both ways, unless passThrough says otherwise.
    let auth = &p.shop.1;
    let slim = |pass: Option<(bool, bool)>| {
        let mut t = json!({"vendorName": "customers", "fields": [{"path": "id", "type": "number", "vendorPath": "id"}, {"path": "surname", "type": "string", "vendorPath": "last_name"},
            {"path": "given", "type": "string", "vendorPath": "first_name"}, {"path": "mail", "type": "string", "vendorPath": "email"}]});
        if let Some((from, to)) = pass {
            t["configuration"] = json!([{"type": "passThrough", "properties": {"fromVendor": from, "toVendor": to}}]);
        }
        t
    };
    p.platform(Method::POST, "/organizations/elements/bigcommerce/transformations/slim", Some(slim(None))).await.ok();
    let made = p.hub(auth, Method::POST, "ecommerce/slim", Some(json!({"surname": "Liskov", "given": "Barbara", "mail": "barbara@example.com", "phone": "555-0100"}))).await.ok();
    assert_eq!(keys(&made), ["given", "id", "mail", "surname"]);
    let raw = p.hub(auth, Method::GET, &format!("ecommerce/customers/{}", made["id"]), None).await.ok();
    assert_eq!((raw["last_name"].as_str(), raw["phone"].as_str()), (Some("Liskov"), Some("")), "phone was dropped on the way: {raw}");
    p.platform(Method::PUT, "/organizations/elements/bigcommerce/transformations/slim", Some(slim(Some((true, true))))).await.ok();
    let made = p.hub(auth, Method::POST, "ecommerce/slim", Some(json!({"surname": "Hamilton", "given": "Margaret", "mail": "margaret@example.com", "phone": "555-0101"}))).await.ok();
    assert_eq!((made["surname"].as_str(), made["phone"].as_str()), (Some("Hamilton"), Some("555-0101")), "{made}");
    assert!(made.get("last_name").is_none() && made.get("email").is_none() && made.get("date_created").is_some(), "{made}");
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_transformations_are_refused_and_organizations_keep_to_their_own() {
    let p = start().await;
    let at = "/organizations/elements/bigcommerce/transformations/myContact";
    let refused = |body: Value, status: StatusCode| {
        let p = &p;
        async move { p.platform(Method::POST, at, Some(body)).await.error(status).0 }
    };
    let with = |field: Value| json!({"vendorName": "customers", "fields": [field]});
    assert!(p.platform(Method::POST, "/organizations/elements/nosuch/transformations/myContact", Some(bigcommerce_contact())).await.error(StatusCode::NOT_FOUND).0.contains("nosuch"));
    let m = refused(json!({"vendorName": "clients", "fields": []}), StatusCode::BAD_REQUEST).await;
    assert!(m.contains("'clients'"), "{m}");
    let m = refused(with(json!({"path": "a", "type": "string", "vendorPath": "lines[0"})), StatusCode::BAD_REQUEST).await;
    assert!(m.contains("lines[0"), "{m}");
    let m = refused(with(json!({"path": "a", "type": "date", "vendorPath": "accepts_marketing"})), StatusCode::BAD_REQUEST).await;
    assert!(m.contains("accepts_marketing"), "a boolean never converts to a date: {m}");
    let m = refused(with(json!({"path": "a", "type": "uuid", "vendorPath": "id"})), StatusCode::BAD_REQUEST).await;
    assert!(m.contains("uuid"), "{m}");
    let m = refused(json!({"vendorName": "customers", "fields": [], "script": {"body": "done(transformedObject)"}}), StatusCode::BAD_REQUEST).await;
    assert!(m.contains("custom JavaScript is not supported"), "{m}");
    let m = refused(json!({"vendorName": "customers", "level": "account", "fields": []}), StatusCode::BAD_REQUEST).await;
    assert!(m.contains("accounts are not supported"), "{m}");
    let m = refused(json!({"vendorName": "customers", "level": "instance", "fields": []}), StatusCode::BAD_REQUEST).await;
    assert!(m.contains("level"), "{m}");
    let m = refused(json!({"vendorName": "customers", "fields": [], "colour": "red"}), StatusCode::BAD_REQUEST).await;
    assert!(m.contains("colour"), "{m}");
    let m = refused(json!({"vendorName": "customers", "fields": [{"path": "a", "vendorPath": "first_name"}, {"path": "a.b", "vendorPath": "last_name"}]}), StatusCode::BAD_REQUEST).await;
    assert!(m.contains("clash"), "{m}");
    let m = refused(json!({"vendorName": "customers", "objectName": "other", "fields": []}), StatusCode::BAD_REQUEST).await;
    assert!(m.contains("objectName"), "{m}");
    for name in ["ping", "objects"] {
        let path = format!("/organizations/elements/bigcommerce/transformations/{name}");
        let m = p.platform(Method::POST, &path, Some(bigcommerce_contact())).await.error(StatusCode::BAD_REQUEST).0;
        assert!(m.contains(&format!("'{name}'")), "{m}");
    }
    let m = p.platform(Method::POST, "/organizations/elements/bigcommerce/transformations/my%20contact", Some(bigcommerce_contact())).await.error(StatusCode::BAD_REQUEST).0;
    assert!(m.contains("not a common resource name"), "{m}");
    let r = p.http.post(format!("{}{at}", p.api)).header("Authorization", &p.auth).header("Content-Type", "application/json").body("{").send().await.unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let m = p.platform(Method::PUT, at, Some(bigcommerce_contact())).await.error(StatusCode::NOT_FOUND).0;
    assert_eq!(m, "The transformation of 'myContact' for element bigcommerce does not exist", "PUT of a missing one");
    assert_eq!(p.platform(Method::GET, at, None).await.status, StatusCode::NOT_FOUND, "nothing was stored");
    assert_eq!(p.platform(Method::GET, "/organizations/elements/bigcommerce/transformations", None).await.ok(), json!({}));

    // Stored once; twice is a conflict.
    p.platform(Method::POST, "/organizations/objects/myContact/definitions", Some(my_contact())).await.ok();
    p.platform(Method::POST, at, Some(bigcommerce_contact())).await.ok();
    let m = p.platform(Method::POST, at, Some(bigcommerce_contact())).await.error(StatusCode::CONFLICT).0;
    assert_eq!(m, "The transformation of 'myContact' for element bigcommerce exists; PUT replaces it");
    // A definition in use cannot go.
    let m = p.platform(Method::DELETE, "/organizations/objects/myContact/definitions", None).await.error(StatusCode::CONFLICT).0;
    assert!(m.contains("element bigcommerce"), "{m}");
    let (shop, crm) = (p.shop.0, p.crm.0);
    p.platform(Method::POST, &format!("/instances/{crm}/transformations/myContact"), Some(keap_contact())).await.ok();

    // Organization B sees none of it, and cannot reach A's instances.
    let b = |method: Method, path: String| {
        let p = &p;
        async move { p.call(&p.other, method, &path, None).await.status }
    };
    assert_eq!(b(Method::GET, at.to_owned()).await, StatusCode::NOT_FOUND);
    assert_eq!(b(Method::DELETE, at.to_owned()).await, StatusCode::NOT_FOUND);
    assert_eq!(b(Method::GET, format!("/instances/{crm}/transformations")).await, StatusCode::NOT_FOUND);
    assert_eq!(b(Method::DELETE, format!("/instances/{crm}/transformations/myContact")).await, StatusCode::NOT_FOUND);
    let theirs = json!({"vendorName": "customers", "fields": [{"path": "only", "type": "string", "vendorPath": "email"}]});
    assert_eq!(p.call(&p.other, Method::POST, at, Some(theirs)).await.status, StatusCode::OK);
    let mine = p.hub(&p.shop.1, Method::GET, "ecommerce/myContact?pageSize=1", None).await.ok();
    assert_eq!(keys(&mine[0]), ["company", "created", "email", "firstName", "id", "lastName"], "B's does not touch A's calls");

    p.platform(Method::DELETE, at, None).await.ok();
    let m = p.platform(Method::DELETE, "/organizations/objects/myContact/definitions", None).await.error(StatusCode::CONFLICT).0;
    assert!(m.contains(&format!("instance {crm}")), "{m}");
    p.platform(Method::DELETE, &format!("/instances/{crm}/transformations/myContact"), None).await.ok();
    p.platform(Method::DELETE, "/organizations/objects/myContact/definitions", None).await.ok();
    assert_eq!(p.hub(&p.shop.1, Method::GET, "ecommerce/myContact", None).await.status, StatusCode::NOT_FOUND, "{shop}: gone with it");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_polled_event_carries_the_transformed_record() {
    let p = start().await;
    p.platform(Method::POST, "/organizations/elements/infusionsoftcrm/transformations/myContact", Some(keap_contact())).await.ok();
    let (id, auth) = p
        .connect_keap(json!({"event.notification.enabled": "true", "event.notification.callback.url": "http://127.0.0.1:9/events",
            "event.poller.configuration": r#"{"myContact":{"url":"/hubs/crm/myContact","idField":"id"}}"#}))
        .await;
    let ctx = switchyard_events::Context { store: p.store.clone(), vault: p.vault.clone(), catalog: p.engine.catalog.clone() };
    let poller = switchyard_events::Poller::new(ctx, std::sync::Arc::new(p.engine.clone()), Default::default(), None);
    let row = p.store.instance(p.org, id).await.unwrap().unwrap();
    poller.poll_instance(&row).await.unwrap();
    let events = || async { p.platform(Method::GET, &format!("/instances/{id}/events"), None).await.ok().as_array().unwrap().clone() };
    let before = events().await.len();

    let made = p.hub(&auth, Method::POST, "crm/myContact", Some(json!({"firstName": "Polly", "lastName": "Transformed"}))).await.ok();
    poller.poll_instance(&p.store.instance(p.org, id).await.unwrap().unwrap()).await.unwrap();
    let log = events().await;
    assert_eq!(log.len(), before + 1, "{log:?}");
    let event = &log[0];
    let notified = &event["notifiedData"][0];
    assert_eq!((notified["objectType"].as_str(), notified["objectId"].as_str()), (Some("myContact"), made["id"].as_str()), "{event}");
    // The message carries the common record; the log's providerData the vendor's.
    let stored = p.store.event(p.org, Some(id), event["id"].as_str().unwrap()).await.unwrap().unwrap();
    let raw: Value = serde_json::from_str(&stored.raw).unwrap();
    assert_eq!((raw["lastName"].as_str(), raw["objectType"].as_str()), (Some("Transformed"), Some("myContact")), "{raw}");
    assert!(raw.get("LastName").is_none(), "{raw}");
    let vendor: Value = serde_json::from_str(event["providerData"].as_str().unwrap()).unwrap();
    assert_eq!((vendor["LastName"].as_str(), vendor["Id"].to_string()), (Some("Transformed"), made["id"].as_str().unwrap().to_owned()), "{vendor}");
}
