//! `/countries` and states: BigCommerce's geography API (bigcommerce/docs,
//! `reference/geography.v2.yml`, which gives the shapes, `1` Afghanistan, `2` Albania and
//! `13` Australia as ids, and `{"count": 241}` as the vendor's count), and the country of
//! an address by any ISO 3166-1 name or code.

use reqwest::StatusCode;
use serde_json::{json, Value};

use super::common::demo;

/// Every key of the vendor's `country_Full` and `countriesState_Full`.
fn assert_country(v: &Value) {
    for k in ["id", "country", "country_iso2", "country_iso3"] {
        assert!(!v[k].is_null(), "{k}: {v}");
    }
    let id = v["id"].as_u64().unwrap();
    assert_eq!(v["states"]["resource"], format!("/countries/{id}/states"));
    assert!(v["states"]["url"].as_str().unwrap().ends_with(&format!("/stores/abc123/api/v2/countries/{id}/states")), "{v}");
}

#[tokio::test]
async fn countries_and_states_as_the_reference() {
    let s = demo().await;
    let all = s.all("/countries").await;
    // Every ISO 3166-1 country (the vendor lists 241 of them).
    assert_eq!(all.len(), 249);
    assert_eq!(s.count("/countries/count").await, 249);
    all.iter().for_each(assert_country);
    assert_eq!((all[0]["id"].clone(), all[0]["country"].clone()), (json!(1), json!("Afghanistan")));
    assert_eq!(all[1]["country"], "Albania");
    let au = s.ok("/countries/13").await;
    assert_eq!((au["country"].clone(), au["country_iso2"].clone(), au["country_iso3"].clone()), (json!("Australia"), json!("AU"), json!("AUS")));
    assert_eq!(s.ok("/countries?country_iso3=AUS").await.as_array().unwrap().len(), 1);
    assert_eq!(s.ok("/countries?country=Australia").await[0]["id"], 13);
    assert_eq!(s.ok("/countries?limit=10&page=2").await[0]["id"], 11);

    let states = s.ok("/countries/13/states").await;
    let act = states.as_array().unwrap().iter().find(|s| s["state_abbreviation"] == "ACT").unwrap().clone();
    assert_eq!((act["state"].clone(), act["country_id"].clone()), (json!("Australian Capital Territory"), json!(13)));
    assert_eq!(s.ok(&format!("/countries/13/states/{}", act["id"])).await, act);
    assert_eq!(s.count("/countries/13/states/count").await, 8);
    let us = s.ok("/countries?country_iso2=US").await[0]["id"].as_u64().unwrap();
    let tx = s.ok(&format!("/countries/{us}/states?state_abbreviation=TX")).await;
    assert_eq!(tx[0]["state"], "Texas");
    let everywhere = s.count("/countries/states/count").await;
    assert_eq!(s.all("/countries/states").await.len() as u64, everywhere);
    // A country without a states list: an empty list, a zero count.
    let gb = s.ok("/countries?country_iso2=GB").await[0]["id"].as_u64().unwrap();
    assert_eq!(s.get(&format!("/countries/{gb}/states")).await.status, StatusCode::NO_CONTENT);
    assert_eq!(s.count(&format!("/countries/{gb}/states/count")).await, 0);

    s.get("/countries/999").await.error(404);
    s.get("/countries/13/states/999999").await.error(404);
    s.get("/countries/nowhere/states").await.error(404);
    s.post("/countries", json!({ "country": "Atlantis" })).await.error(405);
}

/// BigCommerce takes a state only where the country needs one: bigcommerce/docs,
/// `reference/customers.v3.yml` ("It is required for countries that need a state/province
/// to complete an address"); the countries by name or code are ISO 3166-1's.
#[tokio::test]
async fn addresses_take_any_iso_country_and_need_a_state_only_where_listed() {
    let s = demo().await;
    let addr = |country: &str| {
        json!({ "first_name": "Ada", "last_name": "L", "street_1": "1 Rue", "city": "Town", "zip": "1000", "country": country, "phone": "1" })
    };
    for (country, name, iso2) in [("Belgium", "Belgium", "BE"), ("NZL", "New Zealand", "NZ"), ("vn", "Viet Nam", "VN"), ("Bolivia", "Bolivia", "BO")] {
        let r = s.post("/customers/1/addresses", addr(country)).await;
        assert_eq!(r.status, StatusCode::CREATED, "{country}: {}", r.text);
        let a = r.json();
        assert_eq!((a["country"].as_str().unwrap(), a["country_iso2"].as_str().unwrap(), a["state"].as_str().unwrap()), (name, iso2, ""), "{country}");
    }
    // The United States list states: there one is needed.
    let e = s.post("/customers/1/addresses", addr("United States")).await.error(400);
    assert!(e["message"].as_str().unwrap().contains("state"), "{e}");
    let mut with_state = addr("US");
    with_state["state"] = json!("Texas");
    assert_eq!(s.post("/customers/1/addresses", with_state).await.status, StatusCode::CREATED);
    s.post("/customers/1/addresses", addr("Atlantis")).await.error(422);

    // An order's billing address by code gets the country's name.
    let order = json!({ "billing_address": { "first_name": "J", "last_name": "D", "street_1": "1", "city": "Oslo", "zip": "0150",
        "country_iso2": "NO", "email": "j@example.com" }, "products": [{ "product_id": 77, "quantity": 1 }] });
    let r = s.post("/orders", order).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    assert_eq!(r.json()["billing_address"]["country"], "Norway");
}
