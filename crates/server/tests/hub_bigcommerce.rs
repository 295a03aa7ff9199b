//! Hub calls over HTTP against the BigCommerce simulator: the router runs in this
//! process on 127.0.0.1:0, the simulator on another loopback port, and every call
//! goes through the real outbound client (loopback allowed explicitly).

use std::time::Duration;

mod common;

use common::Answer;
use reqwest::StatusCode;
use serde_json::{json, Value};
use switchyard_elements::Catalog;
use switchyard_engine::client::VendorClient;
use switchyard_engine::outbound::OutboundPolicy;
use switchyard_server::caller::hash_secret;
use switchyard_server::{new_secret, AppState};
use switchyard_simulators::bigcommerce::{self, BigCommerceSimulator, StoreConfig};

struct Hub {
    api: String,
    auth: String,
    http: reqwest::Client,
    sim: BigCommerceSimulator,
    sim_addr: std::net::SocketAddr,
    _dir: tempfile::TempDir,
}

/// What these tests read from an answer beyond `common::Answer`.
trait Read {
    fn ids(&self) -> Vec<u64>;
    /// A 400 whose message names every one of `words`.
    fn refused(&self, words: &[&str]);
}

impl Read for Answer {
    fn ids(&self) -> Vec<u64> {
        self.body.as_array().unwrap_or_else(|| panic!("not a list: {}", self.body)).iter().map(|r| r["id"].as_u64().unwrap()).collect()
    }
    fn refused(&self, words: &[&str]) {
        let (m, _) = self.error(StatusCode::BAD_REQUEST);
        for w in words {
            assert!(m.contains(w), "{m:?} lacks {w:?}");
        }
    }
}

/// The server with one organization and one BigCommerce instance on `store`.
async fn start(store: StoreConfig) -> Hub {
    let hash = store.hash.clone();
    let sim = BigCommerceSimulator::new(vec![store]);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let sim_addr = listener.local_addr().unwrap();
    tokio::spawn(bigcommerce::serve(listener, sim.clone()));

    let dir = tempfile::tempdir().unwrap();
    let store_db = switchyard_store::Store::open(&format!("sqlite://{}?mode=rwc", dir.path().join("t.db").display())).await.unwrap();
    let (org_secret, user_secret) = (new_secret(), new_secret());
    store_db.create_organization("t", &hash_secret(&org_secret), "t@localhost", &hash_secret(&user_secret)).await.unwrap();
    let state = AppState::new(
        store_db,
        switchyard_vault::Vault::new(switchyard_vault::KeyRing::generate()),
        VendorClient::new(OutboundPolicy::allow_loopback(), Duration::from_secs(30)),
        Catalog::builtin(),
        vec![9u8; 32],
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(switchyard_server::serve(listener, state, std::future::pending()));

    let api = format!("http://{addr}/elements/api-v2");
    let auth = format!("User {user_secret}, Organization {org_secret}");
    let http = reqwest::Client::new();
    let created: Value = http
        .post(format!("{api}/instances"))
        .header("Authorization", &auth)
        .json(&json!({"element": {"key": "bigcommerce"}, "name": "t", "configuration": {
            "username": bigcommerce::DEMO_USERNAME, "password": bigcommerce::DEMO_API_TOKEN,
            "store.url": format!("http://{sim_addr}/stores/{hash}/api/v2")}}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = created["token"].as_str().unwrap_or_else(|| panic!("{created}"));
    let auth = format!("{auth}, Element {token}");
    Hub { api, auth, http, sim, sim_addr, _dir: dir }
}

async fn demo() -> Hub {
    start(StoreConfig::default()).await
}

impl Hub {
    async fn call(&self, method: reqwest::Method, path: &str, query: &[(&str, &str)], body: Option<Value>) -> Answer {
        let mut r = self.http.request(method, format!("{}/hubs/ecommerce{path}", self.api)).header("Authorization", &self.auth).query(query);
        if let Some(b) = body {
            r = r.json(&b);
        }
        Answer::of(r).await
    }
    async fn get(&self, path: &str, query: &[(&str, &str)]) -> Answer {
        self.call(reqwest::Method::GET, path, query, None).await
    }
    async fn ok(&self, path: &str, query: &[(&str, &str)]) -> Answer {
        let a = self.get(path, query).await;
        assert_eq!(a.status, StatusCode::OK, "{path} {query:?}: {}", a.body);
        a
    }
    /// Every record of a list, through `nextPage`.
    async fn all(&self, path: &str, query: &[(&str, &str)]) -> Vec<Value> {
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let mut q = query.to_vec();
            if let Some(t) = &token {
                q.push(("nextPage", t));
            }
            let a = self.ok(path, &q).await;
            out.extend(a.body.as_array().unwrap().iter().cloned());
            match a.next() {
                Some(t) => token = Some(t),
                None => return out,
            }
        }
    }

    /// Create, retrieve, update (PATCH), find in the list, delete, and see it gone.
    async fn cycle(&self, path: &str, create: Value, update: Value) {
        let c = self.call(reqwest::Method::POST, path, &[], Some(create.clone())).await;
        assert_eq!(c.status, StatusCode::OK, "create {path}: {}", c.body);
        let id = c.body["id"].as_u64().unwrap_or_else(|| panic!("{path}: no id in {}", c.body));
        let one = self.ok(&format!("{path}/{id}"), &[]).await;
        assert_eq!(one.body["id"], id);
        let (field, value) = update.as_object().unwrap().iter().next().unwrap();
        let u = self.call(reqwest::Method::PATCH, &format!("{path}/{id}"), &[], Some(update.clone())).await;
        assert_eq!(u.status, StatusCode::OK, "update {path}: {}", u.body);
        assert_eq!(&u.body[field], value, "{path}: {}", u.body);
        assert_eq!(&self.ok(&format!("{path}/{id}"), &[]).await.body[field], value);
        let listed = self.all(path, &[("pageSize", "50")]).await;
        assert!(listed.iter().any(|r| r["id"] == id), "{path}: {id} not listed");
        let found = self.ok(path, &[("where", &format!("id = {id}"))]).await;
        assert_eq!(found.ids(), vec![id], "{path}");
        let d = self.call(reqwest::Method::DELETE, &format!("{path}/{id}"), &[], None).await;
        assert_eq!((d.status, &d.body), (StatusCode::OK, &Value::Null), "delete {path}");
        assert_eq!(self.get(&format!("{path}/{id}"), &[]).await.status, StatusCode::NOT_FOUND, "{path}");
    }
}

/// An opened instance is kept until it changes (the default `--cache-ttl` is ten
/// minutes, and this server's instance was opened by the first call), so every
/// change made through the server must reach the very next hub call.
#[tokio::test]
async fn a_credential_change_a_disable_and_a_delete_reach_the_next_call_at_once() {
    let hub = demo().await;
    let platform = hub.auth.rsplit_once(", Element ").unwrap().0.to_owned();
    let listed = Answer::of(hub.http.get(format!("{}/instances", hub.api)).header("Authorization", &platform)).await.ok();
    let id = listed[0]["id"].as_i64().unwrap();
    let instance = |method: reqwest::Method, path: &str| hub.http.request(method, format!("{}/instances/{id}{path}", hub.api)).header("Authorization", &platform);
    assert_eq!(count(&hub.ok("/orders/count", &[]).await), 120);

    // New credentials for another store: the next call goes there.
    hub.sim.add_store(StoreConfig {
        hash: "second".into(),
        username: "second-user".into(),
        api_token: "second-token".into(),
        seed_orders: 7,
        ..StoreConfig::default()
    });
    let changed = instance(reqwest::Method::PATCH, "").json(&json!({"configuration": {
        "store.url": format!("http://{}/stores/second/api/v2", hub.sim_addr),
        "username": "second-user", "password": "second-token"}}));
    Answer::of(changed).await.ok();
    assert_eq!(count(&hub.ok("/orders/count", &[]).await), 7, "the new credentials are used at once");

    Answer::of(instance(reqwest::Method::DELETE, "/enabled")).await.ok();
    hub.get("/orders/count", &[]).await.error(StatusCode::FORBIDDEN);
    Answer::of(instance(reqwest::Method::PUT, "/enabled")).await.ok();
    assert_eq!(count(&hub.ok("/orders/count", &[]).await), 7);

    Answer::of(instance(reqwest::Method::DELETE, "")).await.ok();
    hub.get("/orders/count", &[]).await.error(StatusCode::UNAUTHORIZED);
}

fn count(a: &Answer) -> u64 {
    a.body["count"].as_u64().unwrap_or_else(|| panic!("{}", a.body))
}

#[tokio::test]
async fn every_resource_of_the_table_cycles_through_the_hub() {
    let hub = demo().await;
    let n = count(&hub.ok("/customers/count", &[]).await);
    hub.cycle("/customers", json!({"first_name": "Ada", "last_name": "Lovelace", "email": "ada@example.com"}), json!({"company": "Engines"})).await;
    assert_eq!(count(&hub.ok("/customers/count", &[]).await), n);
    assert!(count(&hub.ok("/customers/groups/count", &[]).await) >= 3);
    hub.cycle("/customers/groups", json!({"name": "Trade"}), json!({"name": "Trade+"})).await;
    hub.cycle("/customers/1/addresses", json!({"first_name": "Ada", "last_name": "L", "street_1": "1 Sq", "city": "London",
        "state": "England", "zip": "SW1", "country": "United Kingdom", "phone": "020"}), json!({"city": "Bath"})).await;
    let order = json!({"customer_id": 0, "status_id": 11, "billing_address": {"first_name": "Jane", "last_name": "Doe",
        "street_1": "1 Main", "city": "Austin", "state": "Texas", "zip": "78751", "country": "United States",
        "country_iso2": "US", "email": "jane@example.com"}, "products": [{"product_id": 77, "quantity": 2}]});
    assert_eq!(count(&hub.ok("/orders/count", &[]).await), 120);
    hub.cycle("/orders", order.clone(), json!({"staff_notes": "Packed"})).await;
    hub.cycle("/products", json!({"name": "Walnut Spoon", "price": 12.5, "categories": [19], "type": "physical",
        "availability": "available", "weight": 0.2}), json!({"sku": "WS-1"})).await;
    assert_eq!(count(&hub.ok("/products/count", &[]).await), 30);
    hub.cycle("/products/brands", json!({"name": "Walnut & Co"}), json!({"page_title": "Walnut"})).await;
    hub.cycle("/products/categories", json!({"name": "Spoons", "parent_id": 19}), json!({"name": "Forks"})).await;
    hub.cycle("/products/77/fields", json!({"name": "Wood", "text": "Walnut"}), json!({"text": "Oak"})).await;
    hub.cycle("/products/77/images", json!({"image_file": "https://example.com/a.jpg"}), json!({"description": "A"})).await;
    hub.cycle("/products/77/skus", json!({"sku": "OT-XL", "price": 14, "inventory_level": 3, "options": []}), json!({"upc": "0042"})).await;

    // Shipments belong to an order whose products they ship.
    let o = hub.call(reqwest::Method::POST, "/orders", &[], Some(order)).await.body;
    let oid = o["id"].as_u64().unwrap();
    let aid = hub.ok(&format!("/orders/{oid}/addresses"), &[]).await.ids()[0];
    let items: Vec<Value> = hub.ok(&format!("/orders/{oid}/products"), &[]).await.body.as_array().unwrap().iter()
        .map(|p| json!({"order_product_id": p["id"], "quantity": p["quantity"]})).collect();
    hub.cycle(&format!("/orders/{oid}/shipments"), json!({"order_address_id": aid, "tracking_number": "1Z9", "items": items}),
        json!({"tracking_number": "1Z8"})).await;
    assert_eq!(count(&hub.ok(&format!("/orders/{oid}/shipments/count"), &[]).await), 0);

    // The read-only ones.
    let statuses = hub.ok("/orders/statuses", &[]).await;
    assert!(statuses.ids().len() >= 10);
    // BigCommerce answers every status whatever it is asked (the list takes no
    // parameters, orders.v2.oas2.yml): the hub pages it, at any size.
    for size in ["1", "4", "250"] {
        let paged: Vec<u64> = hub.all("/orders/statuses", &[("pageSize", size)]).await.iter().map(|s| s["id"].as_u64().unwrap()).collect();
        assert_eq!(paged, statuses.ids(), "page size {size}");
    }
    assert_eq!(hub.ok("/orders/statuses", &[("pageSize", "4"), ("page", "2")]).await.ids(), statuses.ids()[4..8]);
    assert_eq!(hub.ok("/orders/statuses/2", &[]).await.body["name"], "Shipped");
    assert_eq!(hub.ok(&format!("/orders/{oid}/addresses/{aid}"), &[]).await.body["order_id"], oid);
    // v2 "Update a Shipping Address" (PUT /orders/{order_id}/shipping_addresses/{id}).
    let moved = hub.call(reqwest::Method::PATCH, &format!("/orders/{oid}/addresses/{aid}"), &[], Some(json!({"street_2": "Suite 5"}))).await;
    assert_eq!((moved.status, &moved.body["street_2"]), (StatusCode::OK, &json!("Suite 5")), "{}", moved.body);
    let pid = hub.ok(&format!("/orders/{oid}/products"), &[]).await.ids()[0];
    assert_eq!(hub.ok(&format!("/orders/{oid}/products/{pid}"), &[]).await.body["product_id"], 77);
    for sub in ["coupons", "comments", "taxes"] {
        assert!(hub.ok(&format!("/orders/100/{sub}"), &[]).await.body.is_array(), "{sub}");
    }
    assert_eq!(hub.ok("/products/options", &[]).await.ids().len(), 3);
    assert!(hub.ok("/ping", &[]).await.body["time"].is_number());
    assert_eq!(hub.get("/orders/statuses/2", &[]).await.status, StatusCode::OK);
    assert_eq!(hub.call(reqwest::Method::DELETE, "/orders/statuses/2", &[], None).await.status, StatusCode::METHOD_NOT_ALLOWED);
}

/// BigCommerce's legacy v2 reference has store-wide counts, `GET /orders/products/count`
/// ("Get a Count of Order Products") and `GET /orders/shipments/count` ("Get a Count of
/// Shipments"); the hub serves them as `/orders/products/count` and `/orders/shipments/count`,
/// and neither is taken for the count of one order's products or shipments.
#[tokio::test]
async fn store_wide_order_counts() {
    let hub = demo().await;
    let products = count(&hub.ok("/orders/products/count", &[]).await);
    let shipments = count(&hub.ok("/orders/shipments/count", &[]).await);
    let (mut lines, mut shipped) = (0, 0);
    for oid in 100..220 {
        lines += hub.all(&format!("/orders/{oid}/products"), &[("pageSize", "50")]).await.len() as u64;
        shipped += count(&hub.ok(&format!("/orders/{oid}/shipments/count"), &[]).await);
    }
    assert_eq!((products, shipments), (lines, shipped));
    assert!(products >= 120 && shipments > 0, "{products} {shipments}");
    let r = hub.call(reqwest::Method::POST, "/orders/products/count", &[], Some(json!({}))).await;
    assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED, "{}", r.body);

    // The products' store-wide counts of the same kind, and the counts of the lists that
    // lacked one (the simulator's per-vendor tests check the numbers themselves).
    let (mut fields, mut images, mut skus) = (0, 0, 0);
    for pid in hub.all("/products", &[("pageSize", "50")]).await.iter().map(|p| p["id"].as_u64().unwrap()) {
        fields += hub.all(&format!("/products/{pid}/fields"), &[("pageSize", "50")]).await.len() as u64;
        images += hub.all(&format!("/products/{pid}/images"), &[("pageSize", "50")]).await.len() as u64;
        skus += hub.all(&format!("/products/{pid}/skus"), &[("pageSize", "50")]).await.len() as u64;
    }
    assert_eq!(count(&hub.ok("/products/fields/count", &[]).await), fields);
    assert_eq!(count(&hub.ok("/products/images/count", &[]).await), images);
    assert_eq!(count(&hub.ok("/products/skus/count", &[]).await), skus);
    assert_eq!(count(&hub.ok("/products/brands/count", &[]).await), hub.all("/products/brands", &[("pageSize", "50")]).await.len() as u64);
    assert_eq!(count(&hub.ok("/products/categories/count", &[]).await), hub.all("/products/categories", &[("pageSize", "50")]).await.len() as u64);
    assert_eq!(count(&hub.ok("/customers/1/addresses/count", &[]).await), hub.all("/customers/1/addresses", &[("pageSize", "50")]).await.len() as u64);
}

#[tokio::test]
async fn writes_apply_the_named_behaviours() {
    let hub = demo().await;
    // link-objects: a record read from the hub can be sent back as is.
    let c = hub.ok("/customers/1", &[]).await.body;
    assert!(c["addresses"]["resource"].is_string());
    let mut back = c.clone();
    back["notes"] = json!("round trip");
    let u = hub.call(reqwest::Method::PATCH, "/customers/1", &[], Some(back)).await;
    assert_eq!((u.status, &u.body["notes"]), (StatusCode::OK, &json!("round trip")));
    // decimal-strings: a JSON number for money is sent as the vendor's decimal string.
    let u = hub.call(reqwest::Method::PATCH, "/products/77", &[], Some(json!({"price": 12.5}))).await;
    assert_eq!(u.body["price"], "12.5000");
    // rfc2822-dates: an ISO date in a body reaches the vendor as RFC 2822.
    let u = hub.call(reqwest::Method::PATCH, "/orders/100", &[], Some(json!({"date_created": "2024-02-03T04:05:06Z"}))).await;
    assert_eq!(u.body["date_created"], "Sat, 3 Feb 2024 04:05:06 +0000");
    let bad = hub.call(reqwest::Method::POST, "/customers", &[], Some(json!([1, 2]))).await;
    bad.refused(&["JSON object"]);
}

/// Every order, read once, to check filtered answers against.
async fn all_orders(hub: &Hub) -> Vec<Value> {
    let all = hub.ok("/orders", &[("pageSize", "200")]).await.body.as_array().unwrap().clone();
    assert_eq!(all.len(), 120);
    all
}

fn ids_where(all: &[Value], f: impl Fn(&Value) -> bool) -> Vec<u64> {
    all.iter().filter(|r| f(r)).map(|r| r["id"].as_u64().unwrap()).collect()
}

fn instant(v: &Value) -> i64 {
    chrono::DateTime::parse_from_rfc2822(v.as_str().unwrap()).unwrap().timestamp()
}

#[tokio::test]
async fn ceql_by_vendor_filter_and_by_engine_returns_only_matches() {
    let hub = demo().await;
    let all = all_orders(&hub).await;
    let before = hub.sim.request_count(bigcommerce::DEMO_STORE_HASH);

    // Sent to the vendor: one call per page, the vendor's own parameters.
    let method = all[3]["payment_method"].as_str().unwrap().to_owned();
    let a = hub.ok("/orders", &[("where", &format!("payment_method = '{method}'"))]).await;
    assert_eq!(a.ids(), ids_where(&all, |r| r["payment_method"] == method.as_str()));
    assert_eq!(hub.sim.request_count(bigcommerce::DEMO_STORE_HASH) - before, 1);
    let email = all[5]["billing_address"]["email"].as_str().unwrap().to_owned();
    let want = ids_where(&all, |r| r["billing_address"]["email"] == email.as_str());
    assert_eq!(hub.ok("/orders", &[("where", &format!("email = '{email}'"))]).await.ids(), want, "the vendor's parameter name");
    assert_eq!(hub.ok("/orders", &[("where", &format!("billing_address.email = '{email}'"))]).await.ids(), want);
    // `id > 150` is min_id=151; dates: the vendor's bound is inclusive, the engine keeps `>` strict.
    assert_eq!(hub.ok("/orders", &[("where", "id > 150 AND id <= 160")]).await.ids(), (151..=160).collect::<Vec<_>>());
    let pivot = all[40]["date_modified"].clone();
    let t = instant(&pivot);
    let strict = hub.ok("/orders", &[("where", &format!("date_modified > '{}'", pivot.as_str().unwrap()))]).await;
    assert_eq!(strict.ids(), ids_where(&all, |r| instant(&r["date_modified"]) > t));
    let iso = chrono::DateTime::from_timestamp(t, 0).unwrap().to_rfc3339();
    let inclusive = hub.ok("/orders", &[("where", &format!("min_date_modified = '{iso}'"))]).await;
    assert_eq!(inclusive.ids(), ids_where(&all, |r| instant(&r["date_modified"]) >= t));
    assert_eq!(inclusive.ids().len(), strict.ids().len() + 1);

    // Evaluated by the engine: LIKE, OR, IN, IS NULL, decimal strings, fields without a filter.
    let like = hub.ok("/orders", &[("where", "status LIKE '%Ship%'")]).await;
    assert_eq!(like.ids(), ids_where(&all, |r| r["status"].as_str().unwrap().contains("Ship")));
    assert!(!like.ids().is_empty() && like.ids().len() < 120);
    let or = hub.ok("/orders", &[("where", "total_inc_tax > 300 OR status_id IN (5, 11)")]).await;
    let total = |r: &Value| r["total_inc_tax"].as_str().unwrap().parse::<f64>().unwrap();
    assert_eq!(or.ids(), ids_where(&all, |r| total(r) > 300.0 || [5, 11].contains(&r["status_id"].as_u64().unwrap())));
    let mixed = hub.ok("/orders", &[("where", "id >= 130 AND items_total >= 3 AND date_shipped IS NULL")]).await;
    assert_eq!(mixed.ids(), ids_where(&all, |r| r["id"].as_u64().unwrap() >= 130
        && r["items_total"].as_u64().unwrap() >= 3 && r["date_shipped"] == ""));

    // Customers and products by their vendor filters.
    let customers = hub.ok("/customers", &[("pageSize", "200")]).await.body;
    let c = &customers[7];
    let by_email = hub.ok("/customers", &[("where", &format!("email = '{}'", c["email"].as_str().unwrap()))]).await;
    assert_eq!(by_email.ids(), vec![c["id"].as_u64().unwrap()]);
    let by_name = hub.ok("/customers", &[("where", &format!("last_name = '{}' AND first_name != 'Nobody'", c["last_name"].as_str().unwrap()))]).await;
    assert!(by_name.body.as_array().unwrap().iter().all(|r| r["last_name"] == c["last_name"]) && by_name.ids().contains(&c["id"].as_u64().unwrap()));
    let p = hub.ok("/products", &[("where", "name = 'Orbit Terrarium'")]).await;
    assert_eq!(p.ids(), vec![77]);
    let hidden = hub.ok("/products", &[("where", "is_visible = false")]).await;
    assert!(hidden.body.as_array().unwrap().iter().all(|r| r["is_visible"] == false));
    let cheap = hub.ok("/products", &[("where", "price < 50 AND name LIKE '%a%'")]).await;
    assert!(cheap.body.as_array().unwrap().iter().all(|r| r["price"].as_str().unwrap().parse::<f64>().unwrap() < 50.0));
}

#[tokio::test]
async fn three_pages_of_two_equal_one_page_of_six_with_and_without_engine_filter() {
    let hub = demo().await;
    for filter in [None, Some("status_id = 11 OR status_id = 10 OR status_id = 2"), Some("payment_method != 'nothing'"), Some("id > 110")] {
        let mut q = vec![];
        if let Some(w) = filter {
            q.push(("where", w));
        }
        let mut six = q.clone();
        six.push(("pageSize", "6"));
        let one = hub.ok("/orders", &six).await;
        assert_eq!(one.ids().len(), 6, "{filter:?}");
        let mut got = Vec::new();
        let mut token: Option<String> = None;
        for _ in 0..3 {
            let mut two = q.clone();
            two.push(("pageSize", "2"));
            if let Some(t) = &token {
                two.push(("nextPage", t));
            }
            let a = hub.ok("/orders", &two).await;
            assert_eq!(a.headers["Elements-Returned-Count"], "2");
            got.extend(a.ids());
            token = Some(a.next().expect("more pages"));
        }
        assert_eq!(got, one.ids(), "{filter:?}");
        // `page=2` reaches the same records without a token.
        let mut page2 = q.clone();
        page2.extend([("pageSize", "2"), ("page", "2")]);
        assert_eq!(hub.ok("/orders", &page2).await.ids(), got[2..4].to_vec(), "{filter:?}");
    }
    // The token appears only when more exists, also when the engine filters.
    let few = hub.all("/orders", &[("where", "status LIKE 'Shipped'"), ("pageSize", "3")]).await;
    let direct = hub.ok("/orders", &[("where", "status LIKE 'Shipped'"), ("pageSize", "200")]).await;
    assert!(direct.next().is_none());
    assert_eq!(few, *direct.body.as_array().unwrap());
    let last = hub.ok("/orders", &[("where", "id >= 219")]).await;
    assert!(last.next().is_none());
}

#[tokio::test]
async fn forged_swapped_and_foreign_tokens_are_refused() {
    let hub = demo().await;
    let t = hub.ok("/orders", &[("where", "status LIKE '%e%'"), ("pageSize", "2")]).await.next().unwrap();
    let ok = hub.get("/orders", &[("where", "status LIKE '%e%'"), ("nextPage", &t)]).await;
    assert_eq!(ok.status, StatusCode::OK);
    hub.get("/orders", &[("where", "status LIKE '%a%'"), ("nextPage", &t)]).await.refused(&["nextPage", "where"]);
    hub.get("/orders", &[("nextPage", &t)]).await.refused(&["nextPage"]);
    hub.get("/orders", &[("where", "status LIKE '%e%'"), ("orderBy", "id desc"), ("nextPage", &t)]).await.refused(&["orderBy"]);
    hub.get("/customers", &[("nextPage", &t)]).await.refused(&["nextPage", "another"]);
    let mut forged = t.clone();
    forged.replace_range(3..4, if &t[3..4] == "A" { "B" } else { "A" });
    hub.get("/orders", &[("where", "status LIKE '%e%'"), ("nextPage", &forged)]).await.refused(&["nextPage"]);
    hub.get("/orders", &[("nextPage", "bm90LWEtdG9rZW4.AAAA")]).await.refused(&["nextPage"]);
}

#[tokio::test]
async fn unhonourable_clauses_are_400s_naming_field_and_operator() {
    let hub = demo().await;
    hub.get("/orders", &[("where", "nosuch = 1")]).await.refused(&["nosuch", "="]);
    hub.get("/orders", &[("where", "id = 1 OR colour LIKE 'r%'")]).await.refused(&["colour", "LIKE"]);
    hub.get("/orders", &[("where", "id LIKE '1%'")]).await.refused(&["id", "LIKE", "integer"]);
    hub.get("/orders", &[("where", "is_deleted > true")]).await.refused(&["is_deleted", ">"]);
    hub.get("/orders", &[("where", "date_modified > 'yesterday'")]).await.refused(&["date_modified", ">", "date"]);
    hub.get("/orders", &[("where", "products = 'x'")]).await.refused(&["products", "=", "link"]);
    hub.get("/orders", &[("where", "min_date_modified > '2024-01-01'")]).await.refused(&["min_date_modified", ">", "vendor parameter"]);
    hub.get("/orders", &[("where", "id = ")]).await.refused(&["where", "position"]);
    // Link and object sub-fields, and IS NULL on a link, are fine.
    hub.ok("/orders", &[("where", "products IS NOT NULL AND billing_address.country_iso2 = 'US'")]).await;
}

#[tokio::test]
async fn order_by_and_fields() {
    let hub = demo().await;
    let a = hub.ok("/orders", &[("orderBy", "date_created desc"), ("pageSize", "20"), ("fields", "id,date_created,billing_address.email")]).await;
    let dates: Vec<i64> = a.body.as_array().unwrap().iter().map(|r| instant(&r["date_created"])).collect();
    assert!(dates.windows(2).all(|w| w[0] >= w[1]), "{dates:?}");
    for r in a.body.as_array().unwrap() {
        let keys: Vec<&String> = r.as_object().unwrap().keys().collect();
        assert_eq!(keys, ["id", "date_created", "billing_address"]);
        assert_eq!(r["billing_address"].as_object().unwrap().len(), 1);
    }
    let asc = hub.ok("/orders", &[("orderBy", "id"), ("where", "status_id = 11 OR id > 200")]).await.ids();
    assert!(asc.windows(2).all(|w| w[0] < w[1]));
    hub.get("/orders", &[("orderBy", "staff_notes desc")]).await.refused(&["orderBy", "staff_notes"]);
    hub.get("/orders", &[("orderBy", "id sideways")]).await.refused(&["orderBy"]);
    hub.get("/products", &[("orderBy", "name")]).await.refused(&["orderBy", "products"]);
    hub.get("/orders", &[("fields", "id,nosuch")]).await.refused(&["fields", "nosuch"]);
}

#[tokio::test]
async fn a_never_matching_filter_stops_at_the_scan_cap_and_resumes() {
    let hub = start(StoreConfig { hash: "big".into(), seed_orders: 5_300, seed_customers: 5, seed_products: 5, ..StoreConfig::default() }).await;
    let before = hub.sim.request_count("big");
    let a = hub.ok("/orders", &[("where", "status = 'No such status'"), ("pageSize", "10")]).await;
    assert_eq!(a.ids(), Vec::<u64>::new());
    assert_eq!(hub.sim.request_count("big") - before, 20, "the cap: 20 vendor pages");
    let t = a.next().expect("a token to continue the scan");
    let b = hub.ok("/orders", &[("where", "status = 'No such status'"), ("pageSize", "10"), ("nextPage", &t)]).await;
    assert_eq!(b.ids(), Vec::<u64>::new());
    assert!(b.next().is_none(), "the scan reached the end");
    // A match past the cap is found by following the token.
    let last = 100 + 5_300 - 1;
    let found = hub.all("/orders", &[("where", &format!("status_id != 999 AND id = {last} OR customer_id = -5 AND id = {last}")), ("pageSize", "10")]).await;
    assert_eq!(found.len(), 1);
}

#[tokio::test]
async fn retrieve_takes_fields_as_lists_do() {
    let hub = demo().await;
    let id = hub.ok("/orders", &[("pageSize", "1")]).await.ids()[0];
    let full = hub.ok(&format!("/orders/{id}"), &[]).await.body;
    let a = hub.ok(&format!("/orders/{id}"), &[("fields", "id, status,billing_address.email")]).await;
    let keys: Vec<&String> = a.body.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["id", "status", "billing_address"]);
    assert_eq!(a.body["billing_address"], json!({"email": full["billing_address"]["email"]}));
    assert_eq!((&a.body["id"], &a.body["status"]), (&full["id"], &full["status"]));
    // An unknown field is refused before the vendor is asked.
    let before = hub.sim.request_count("abc123");
    hub.get(&format!("/orders/{id}"), &[("fields", "id,nosuch")]).await.refused(&["fields", "nosuch"]);
    assert_eq!(hub.sim.request_count("abc123"), before);
}
