//! `/customers`, addresses and `/customer_groups`, validated against customers.v2.yml.

use reqwest::StatusCode;
use serde_json::{json, Value};

use super::common::{date, demo, past_second};
use super::spec;

const SPEC: &str = "customers.v2.yml";

#[tokio::test]
async fn lists_and_gets_validate() {
    let s = demo().await;
    let list = s.ok("/customers?limit=250").await;
    spec::check(SPEC, "/customers", "get", "200", &list);
    assert_eq!(list.as_array().unwrap().len(), 40);
    let c = s.ok("/customers/1").await;
    spec::check(SPEC, "/customers/{customer_id}", "get", "200", &c);
    assert_eq!(c, list[0]);
    assert_eq!(c["addresses"]["resource"], "/customers/1/addresses");
    spec::check(SPEC, "/customers/count", "get", "200", &s.ok("/customers/count").await);

    let addrs = s.ok("/customers/1/addresses").await;
    spec::check(SPEC, "/customers/{customer_id}/addresses", "get", "200", &addrs);
    let aid = addrs[0]["id"].as_u64().unwrap();
    let a = s.ok(&format!("/customers/1/addresses/{aid}")).await;
    spec::check(SPEC, "/customers/{customer_id}/addresses/{customer_address_id}", "get", "200", &a);
    let n = s.ok("/customers/1/addresses/count").await;
    spec::check(SPEC, "/customers/{customer_id}/addresses/count", "get", "200", &n);
    assert_eq!(n["count"].as_u64().unwrap() as usize, addrs.as_array().unwrap().len());

    let groups = s.ok("/customer_groups").await;
    spec::check(SPEC, "/customer_groups", "get", "200", &groups);
    assert_eq!(groups.as_array().unwrap().len(), 3);
    let g = s.ok("/customer_groups/2").await;
    spec::check(SPEC, "/customer_groups/{customer_group_id}", "get", "200", &g);
    assert_eq!(g["name"], "Wholesale");
    spec::check(SPEC, "/customer_groups/count", "get", "200", &s.ok("/customer_groups/count").await);
}

#[tokio::test]
async fn filters() {
    let s = demo().await;
    let all = s.all("/customers").await;
    assert_eq!(all.len(), 40);
    let n = |pred: &dyn Fn(&Value) -> bool| all.iter().filter(|c| pred(c)).count() as u64;
    let email = all[5]["email"].as_str().unwrap();
    let hit = s.ok(&format!("/customers?email={}", email.to_uppercase())).await;
    assert_eq!(hit.as_array().unwrap().len(), 1);
    assert_eq!(hit[0]["id"], all[5]["id"]);
    let last = all[7]["last_name"].as_str().unwrap();
    let enc: String = form(last);
    assert_eq!(s.count(&format!("/customers/count?last_name={enc}")).await, n(&|c| c["last_name"] == last));
    let first = all[9]["first_name"].as_str().unwrap();
    assert_eq!(s.count(&format!("/customers/count?first_name={first}")).await, n(&|c| c["first_name"] == first));
    assert_eq!(s.count("/customers/count?min_id=5&max_id=14").await, 10);
    assert_eq!(s.count("/customers/count?customer_group_id=2").await, n(&|c| c["customer_group_id"] == 2));
    let company = all.iter().find(|c| c["company"] != "").unwrap()["company"].as_str().unwrap();
    assert_eq!(s.count(&format!("/customers/count?company={}", form(company))).await, n(&|c| c["company"] == company));
    let mid = date(&all[20]["date_modified"]);
    let iso = chrono::DateTime::from_timestamp(mid, 0).unwrap().format("%Y-%m-%dT%H:%M:%S").to_string();
    assert_eq!(s.count(&format!("/customers/count?min_date_modified={iso}")).await, n(&|c| date(&c["date_modified"]) >= mid));
    assert_eq!(s.count(&format!("/customers/count?max_date_modified={iso}")).await, n(&|c| date(&c["date_modified"]) <= mid));
    let created = date(&all[20]["date_created"]);
    let rfc = form(&chrono::DateTime::from_timestamp(created, 0).unwrap().to_rfc2822());
    assert_eq!(s.count(&format!("/customers/count?min_date_created={rfc}")).await, n(&|c| date(&c["date_created"]) >= created));
    assert_eq!(s.get("/customers?email=nobody@example.com").await.status, StatusCode::NO_CONTENT);
}

fn form(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

#[tokio::test]
async fn customer_crud_and_conflicts() {
    let s = demo().await;
    let r = s.post("/customers", json!({ "first_name": "Ada", "last_name": "Lovelace", "email": "ada@example.com", "customer_group_id": 2, "phone": "555-0101" })).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let c = r.json();
    spec::check(SPEC, "/customers", "post", "200", &c);
    let id = c["id"].as_u64().unwrap();
    assert_eq!(id, 41);
    assert_eq!(c["store_credit"], "0.0000");
    assert_eq!(s.count("/customers/count").await, 41);

    // Duplicate e-mail (case-insensitive): 409 with details.
    let e = s.post("/customers", json!({ "first_name": "A", "last_name": "L", "email": "ADA@example.com" })).await.error(409);
    assert!(e["details"]["conflict_reason"].as_str().is_some(), "{e}");
    // Missing and bad fields.
    let e = s.post("/customers", json!({ "first_name": "A", "last_name": "L" })).await.error(400);
    assert!(e["message"].as_str().unwrap().contains("email"));
    s.post("/customers", json!({ "first_name": "A", "last_name": "L", "email": "not-an-email" })).await.error(422);
    s.post("/customers", json!({ "first_name": "A", "last_name": "L", "email": "x@example.com", "customer_group_id": 99 })).await.error(422);

    past_second(date(&c["date_modified"])).await;
    let r = s.put(&format!("/customers/{id}"), json!({ "company": "Analytical Engines", "notes": "VIP" })).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let u = r.json();
    spec::check(SPEC, "/customers/{customer_id}", "put", "200", &u);
    assert_eq!(u["company"], "Analytical Engines");
    assert_eq!(u["email"], "ada@example.com");
    assert!(date(&u["date_modified"]) > date(&c["date_modified"]));
    assert_eq!(u["date_created"], c["date_created"]);
    // Another customer cannot take the address.
    s.put("/customers/1", json!({ "email": "ada@example.com" })).await.error(409);
    // Its own address is fine.
    assert_eq!(s.put(&format!("/customers/{id}"), json!({ "email": "ada@example.com" })).await.status, 200);

    // Addresses.
    assert_eq!(s.get(&format!("/customers/{id}/addresses")).await.status, StatusCode::NO_CONTENT);
    let addr = json!({ "first_name": "Ada", "last_name": "Lovelace", "street_1": "12 St James's Square", "city": "London", "state": "England", "zip": "SW1Y 4JH", "country": "United Kingdom", "phone": "020 7946 0000" });
    let r = s.post(&format!("/customers/{id}/addresses"), addr.clone()).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let a = r.json();
    spec::check(SPEC, "/customers/{customer_id}/addresses", "post", "200", &a);
    assert_eq!(a["country_iso2"], "GB");
    assert_eq!(a["customer_id"], id);
    let aid = a["id"].as_u64().unwrap();
    let mut missing = addr.clone();
    missing.as_object_mut().unwrap().remove("zip");
    s.post(&format!("/customers/{id}/addresses"), missing).await.error(400);
    let r = s.put(&format!("/customers/{id}/addresses/{aid}"), json!({ "street_2": "Flat 2", "address_type": "commercial" })).await;
    assert_eq!(r.status, 200, "{}", r.text);
    spec::check(SPEC, "/customers/{customer_id}/addresses/{customer_address_id}", "put", "200", &r.json());
    s.put(&format!("/customers/{id}/addresses/{aid}"), json!({ "address_type": "castle" })).await.error(422);
    assert_eq!(s.count(&format!("/customers/{id}/addresses/count")).await, 1);
    assert_eq!(s.delete(&format!("/customers/{id}/addresses/{aid}")).await.status, StatusCode::NO_CONTENT);
    s.get(&format!("/customers/{id}/addresses/{aid}")).await.error(404);

    assert_eq!(s.delete(&format!("/customers/{id}")).await.status, StatusCode::NO_CONTENT);
    s.get(&format!("/customers/{id}")).await.error(404);
    s.get(&format!("/customers/{id}/addresses")).await.error(404);
    assert_eq!(s.count("/customers/count").await, 40);
}

#[tokio::test]
async fn group_crud() {
    let s = demo().await;
    let r = s.post("/customer_groups", json!({ "name": "Trade", "category_access": { "type": "specific", "categories": [18] } })).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let g = r.json();
    spec::check(SPEC, "/customer_groups", "post", "200", &g);
    let id = g["id"].as_u64().unwrap();
    s.post("/customer_groups", json!({ "name": "trade" })).await.error(409);
    s.post("/customer_groups", json!({})).await.error(400);
    let r = s.put(&format!("/customer_groups/{id}"), json!({ "is_default": true })).await;
    assert_eq!(r.status, 200, "{}", r.text);
    spec::check(SPEC, "/customer_groups/{customer_group_id}", "put", "200", &r.json());
    // Only one default group.
    let groups = s.ok("/customer_groups").await;
    assert_eq!(groups.as_array().unwrap().iter().filter(|g| g["is_default"] == true).count(), 1);
    assert_eq!(s.ok("/customer_groups?is_default=true").await[0]["id"], id);
    assert_eq!(s.count("/customer_groups/count").await, 4);
    assert_eq!(s.delete(&format!("/customer_groups/{id}")).await.status, StatusCode::NO_CONTENT);
    s.get(&format!("/customer_groups/{id}")).await.error(404);
}
