//! `/orders` and its sub-resources, validated against orders.v2.oas2.yml.

use reqwest::StatusCode;
use serde_json::{json, Value};

use super::common::{date, demo, past_second};
use super::spec;

const SPEC: &str = "orders.v2.oas2.yml";

fn new_order() -> Value {
    json!({
        "customer_id": 0,
        "status_id": 11,
        "billing_address": {
            "first_name": "Jane", "last_name": "Doe", "street_1": "123 Main Street", "city": "Austin",
            "state": "Texas", "zip": "78751", "country": "United States", "country_iso2": "US",
            "email": "janedoe@example.com"
        },
        "products": [
            { "product_id": 77, "quantity": 2 },
            { "name": "Engraving", "quantity": 1, "price_inc_tax": 10.83, "price_ex_tax": 10 }
        ],
        "base_shipping_cost": "12.00"
    })
}

#[tokio::test]
async fn lists_and_gets_validate() {
    let s = demo().await;
    let list = s.ok("/orders?limit=250").await;
    spec::check(SPEC, "/orders", "get", "200", &list);
    let orders = list.as_array().unwrap();
    assert_eq!(orders.len(), 120);
    assert_eq!(orders[0]["id"], 100);
    for o in orders {
        for f in ["subtotal_ex_tax", "total_inc_tax", "total_tax", "base_shipping_cost", "discount_amount"] {
            assert!(spec::is_decimal(o[f].as_str().unwrap()), "{f}: {}", o[f]);
        }
        assert!(date(&o["date_modified"]) >= date(&o["date_created"]));
        assert_eq!(o["products"]["resource"], format!("/orders/{}/products", o["id"]));
        assert!(o["products"]["url"].as_str().unwrap().starts_with(&s.base("abc123")));
    }
    let one = s.ok("/orders/100").await;
    spec::check(SPEC, "/orders/{order_id}", "get", "200", &one);
    assert_eq!(one, orders[0]);

    let count = s.ok("/orders/count").await;
    spec::check(SPEC, "/orders/count", "get", "200", &count);
    assert_eq!(count["count"], 120);
    let per_status: u64 = count["statuses"].as_array().unwrap().iter().map(|s| s["count"].as_u64().unwrap()).sum();
    assert_eq!(per_status, 120);

    let statuses = s.ok("/order_statuses").await;
    spec::check(SPEC, "/order_statuses", "get", "200", &statuses);
    assert_eq!(statuses.as_array().unwrap().len(), 15);
    let st = s.ok("/order_statuses/11").await;
    spec::check(SPEC, "/order_statuses/{status_id}", "get", "200", &st);
    assert_eq!(st["name"], "Awaiting Fulfillment");
}

#[tokio::test]
async fn sub_resources_validate() {
    let s = demo().await;
    let mut seen_coupon = false;
    let mut seen_shipment = false;
    let mut seen_message = false;
    for o in s.all("/orders").await.iter().take(60) {
        let id = o["id"].as_u64().unwrap();
        let products = s.ok(&format!("/orders/{id}/products")).await;
        spec::check(SPEC, "/orders/{order_id}/products", "get", "200", &products);
        let items: u64 = products.as_array().unwrap().iter().map(|p| p["quantity"].as_u64().unwrap()).sum();
        assert_eq!(items, o["items_total"].as_u64().unwrap());
        let pid = products[0]["id"].as_u64().unwrap();
        let p = s.ok(&format!("/orders/{id}/products/{pid}")).await;
        spec::check(SPEC, "/orders/{order_id}/products/{product_id}", "get", "200", &p);

        let addrs = s.ok(&format!("/orders/{id}/shipping_addresses")).await;
        spec::check(SPEC, "/orders/{order_id}/shipping_addresses", "get", "200", &addrs);
        let aid = addrs[0]["id"].as_u64().unwrap();
        let a = s.ok(&format!("/orders/{id}/shipping_addresses/{aid}")).await;
        spec::check(SPEC, "/orders/{order_id}/shipping_addresses/{id}", "get", "200", &a);
        // The link the order gives (`shippingaddresses`) works too.
        assert_eq!(s.ok(&format!("/orders/{id}/shippingaddresses")).await, addrs);

        let coupons = s.get(&format!("/orders/{id}/coupons")).await;
        if coupons.status == StatusCode::OK {
            spec::check(SPEC, "/orders/{order_id}/coupons", "get", "200", &coupons.json());
            seen_coupon = true;
        } else {
            assert_eq!(coupons.status, StatusCode::NO_CONTENT);
        }
        let taxes = s.get(&format!("/orders/{id}/taxes")).await;
        if taxes.status == StatusCode::OK {
            spec::check(SPEC, "/orders/{order_id}/taxes", "get", "200", &taxes.json());
        }
        let messages = s.get(&format!("/orders/{id}/messages")).await;
        if messages.status == StatusCode::OK {
            spec::check(SPEC, "/orders/{order_id}/messages", "get", "200", &messages.json());
            seen_message = true;
        }
        let shipments = s.get(&format!("/orders/{id}/shipments")).await;
        let n = s.count(&format!("/orders/{id}/shipments/count")).await;
        if shipments.status == StatusCode::OK {
            let v = shipments.json();
            spec::check(SPEC, "/orders/{order_id}/shipments", "get", "200", &v);
            assert_eq!(v.as_array().unwrap().len() as u64, n);
            let sid = v[0]["id"].as_u64().unwrap();
            let one = s.ok(&format!("/orders/{id}/shipments/{sid}")).await;
            spec::check(SPEC, "/orders/{order_id}/shipments/{shipment_id}", "get", "200", &one);
            seen_shipment = true;
        } else {
            assert_eq!(n, 0);
        }
    }
    assert!(seen_coupon && seen_shipment && seen_message, "the seed should have coupons, shipments and messages");
    // Sub-resources of a missing order are 404.
    s.get("/orders/99999/products").await.error(404);
}

#[tokio::test]
async fn filters_and_sort() {
    let s = demo().await;
    let all = s.all("/orders").await;
    let n = |pred: &dyn Fn(&Value) -> bool| all.iter().filter(|o| pred(o)).count() as u64;

    assert_eq!(s.count("/orders/count?status_id=10").await, n(&|o| o["status_id"] == 10));
    assert_eq!(s.all("/orders?status_id=10").await.len() as u64, n(&|o| o["status_id"] == 10));
    assert_eq!(s.count("/orders/count?min_id=150&max_id=159").await, 10);
    let email = all[3]["billing_address"]["email"].as_str().unwrap().to_uppercase();
    let by_email = s.all(&format!("/orders?email={email}")).await;
    assert!(!by_email.is_empty());
    assert!(by_email.iter().all(|o| o["billing_address"]["email"].as_str().unwrap().eq_ignore_ascii_case(&email)));
    let cid = all.iter().find(|o| o["customer_id"] != 0).unwrap()["customer_id"].as_u64().unwrap();
    assert_eq!(s.count(&format!("/orders/count?customer_id={cid}")).await, n(&|o| o["customer_id"] == cid));
    assert_eq!(s.count("/orders/count?payment_method=PayPal").await, n(&|o| o["payment_method"] == "PayPal"));
    assert_eq!(s.count("/orders/count?min_total=100").await, n(&|o| o["total_inc_tax"].as_str().unwrap().parse::<f64>().unwrap() >= 100.0));

    // Date filters, RFC 2822 and ISO 8601, on created and modified.
    let mid = date(&all[60]["date_modified"]);
    let rfc = chrono::DateTime::from_timestamp(mid, 0).unwrap().to_rfc2822();
    let iso = chrono::DateTime::from_timestamp(mid, 0).unwrap().to_rfc3339();
    let expect = n(&|o| date(&o["date_modified"]) >= mid);
    assert!(expect > 0 && expect < 120);
    let enc = |s: &str| s.replace('+', "%2B").replace(' ', "%20").replace(',', "%2C").replace(':', "%3A");
    assert_eq!(s.count(&format!("/orders/count?min_date_modified={}", enc(&rfc))).await, expect);
    assert_eq!(s.count(&format!("/orders/count?min_date_modified={}", enc(&iso))).await, expect);
    assert_eq!(s.count(&format!("/orders/count?max_date_modified={}", enc(&iso))).await, n(&|o| date(&o["date_modified"]) <= mid));
    let created = date(&all[30]["date_created"]);
    let iso = chrono::DateTime::from_timestamp(created, 0).unwrap().to_rfc3339();
    assert_eq!(s.count(&format!("/orders/count?max_date_created={}", enc(&iso))).await, n(&|o| date(&o["date_created"]) <= created));
    s.get("/orders?min_date_modified=someday").await.error(400);

    // Sort by date_modified, descending.
    let sorted = s.ok("/orders?sort=date_modified:desc&limit=250").await;
    let dates: Vec<i64> = sorted.as_array().unwrap().iter().map(|o| date(&o["date_modified"])).collect();
    assert!(dates.windows(2).all(|w| w[0] >= w[1]));
    let asc = s.ok("/orders?sort=id:asc&limit=3").await;
    assert_eq!(asc[0]["id"], 100);
    s.get("/orders?sort=colour").await.error(400);
    // A filter that matches nothing: 204.
    assert_eq!(s.get("/orders?min_id=100000").await.status, StatusCode::NO_CONTENT);
    assert_eq!(s.count("/orders/count?min_id=100000").await, 0);
}

#[tokio::test]
async fn create_update_delete_cycle() {
    let s = demo().await;
    let r = s.post("/orders", new_order()).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let o = r.json();
    spec::check(SPEC, "/orders", "post", "200", &o);
    let id = o["id"].as_u64().unwrap();
    assert_eq!(id, 220);
    assert_eq!(o["status"], "Awaiting Fulfillment");
    assert_eq!(o["items_total"], 3);
    assert_eq!(o["base_shipping_cost"], "12.0000");
    let now = chrono::Utc::now().timestamp();
    assert!((date(&o["date_created"]) - now).abs() < 5);
    assert_eq!(o["date_created"], o["date_modified"]);
    let products = s.ok(&format!("/orders/{id}/products")).await;
    assert_eq!(products.as_array().unwrap().len(), 2);
    assert_eq!(products[0]["product_id"], 77);
    assert_eq!(products[1]["name"], "Engraving");
    assert_eq!(s.count("/orders/count").await, 121);
    // It is the newest by date_modified.
    assert_eq!(s.ok("/orders?sort=date_modified:desc&limit=1").await[0]["id"], id);

    // PUT: status, notes, billing fields; date_modified moves.
    let before = s.ok(&format!("/orders/{id}")).await;
    past_second(date(&before["date_modified"])).await;
    let r = s.put(&format!("/orders/{id}"), json!({ "status_id": 9, "staff_notes": "Packed", "billing_address": { "phone": "555-0100" }, "discount_amount": 5 })).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let u = r.json();
    spec::check(SPEC, "/orders/{order_id}", "put", "200", &u);
    assert_eq!(u["status"], "Awaiting Shipment");
    assert_eq!(u["staff_notes"], "Packed");
    assert_eq!(u["billing_address"]["phone"], "555-0100");
    assert_eq!(u["billing_address"]["first_name"], "Jane");
    assert_eq!(u["discount_amount"], "5.0000");
    let total = |v: &Value| v["total_inc_tax"].as_str().unwrap().parse::<f64>().unwrap();
    assert!(total(&u) < total(&before));
    assert!(date(&u["date_modified"]) > date(&before["date_modified"]));
    assert_eq!(u["date_created"], before["date_created"]);
    assert_eq!(s.ok(&format!("/orders/{id}")).await, u);

    // A shipment ships the items and changes the status.
    let aid = s.ok(&format!("/orders/{id}/shipping_addresses")).await[0]["id"].as_u64().unwrap();
    let items: Vec<Value> = products.as_array().unwrap().iter().map(|p| json!({ "order_product_id": p["id"], "quantity": p["quantity"] })).collect();
    let r = s.post(&format!("/orders/{id}/shipments"), json!({ "order_address_id": aid, "tracking_number": "1Z999", "shipping_provider": "ups", "items": items })).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let sh = r.json();
    spec::check(SPEC, "/orders/{order_id}/shipments", "post", "201", &sh);
    assert_eq!(sh["shipping_provider_display_name"], "UPS");
    let sid = sh["id"].as_u64().unwrap();
    let o = s.ok(&format!("/orders/{id}")).await;
    assert_eq!(o["status_id"], 2);
    assert_eq!(o["items_shipped"], 3);
    assert_eq!(s.count(&format!("/orders/{id}/shipments/count")).await, 1);
    let r = s.put(&format!("/orders/{id}/shipments/{sid}"), json!({ "tracking_number": "1Z000", "comments": "Relabelled" })).await;
    assert_eq!(r.status, 200, "{}", r.text);
    spec::check(SPEC, "/orders/{order_id}/shipments/{shipment_id}", "put", "200", &r.json());
    assert_eq!(r.json()["tracking_number"], "1Z000");
    // Nothing left to ship.
    s.post(&format!("/orders/{id}/shipments"), json!({ "order_address_id": aid, "items": [items[0].clone()] })).await.error(422);
    assert_eq!(s.delete(&format!("/orders/{id}/shipments/{sid}")).await.status, StatusCode::NO_CONTENT);
    assert_eq!(s.get(&format!("/orders/{id}/shipments")).await.status, StatusCode::NO_CONTENT);

    // DELETE: 204, then 404.
    let r = s.delete(&format!("/orders/{id}")).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert!(r.text.is_empty());
    s.get(&format!("/orders/{id}")).await.error(404);
    s.get(&format!("/orders/{id}/products")).await.error(404);
    s.delete(&format!("/orders/{id}")).await.error(404);
    assert_eq!(s.count("/orders/count").await, 120);
}

#[tokio::test]
async fn create_validation() {
    let s = demo().await;
    let mut body = new_order();
    body.as_object_mut().unwrap().remove("billing_address");
    let e = s.post("/orders", body).await.error(400);
    assert!(e["message"].as_str().unwrap().contains("billing_address"));
    let mut body = new_order();
    body.as_object_mut().unwrap().remove("products");
    s.post("/orders", body).await.error(400);
    s.post("/orders", json!({ "billing_address": new_order()["billing_address"], "products": [{ "product_id": 999999, "quantity": 1 }] })).await.error(422);
    s.post("/orders", json!({ "billing_address": new_order()["billing_address"], "products": [{ "product_id": 77, "quantity": 0 }] })).await.error(422);
    let mut body = new_order();
    body["status_id"] = json!(99);
    s.post("/orders", body).await.error(422);
    s.put("/orders/100", json!({ "status_id": "shipped" })).await.error(422);
    // Not JSON.
    let r = s.client.post(format!("{}/orders", s.base("abc123"))).basic_auth("sandbox", Some(switchyard_simulators::bigcommerce::DEMO_API_TOKEN)).body("{nope").send().await.unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(s.count("/orders/count").await, 120);
    s.put("/orders/99999", json!({ "status_id": 1 })).await.error(404);
}

#[tokio::test]
async fn order_shipping_address_update() {
    let s = demo().await;
    let a = s.ok("/orders/101/shipping_addresses").await[0].clone();
    let aid = a["id"].as_u64().unwrap();
    let r = s.put(&format!("/orders/101/shipping_addresses/{aid}"), json!({ "street_2": "Suite 5", "shipping_method": "Express" })).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let v = r.json();
    spec::check(SPEC, "/orders/{order_id}/shipping_addresses/{id}", "put", "200", &v);
    assert_eq!(v["street_2"], "Suite 5");
    assert_eq!(v["city"], a["city"]);
}

/// The store-wide counts of BigCommerce's legacy v2 reference: `GET /orders/products/count`
/// ("Get a Count of Order Products") and `GET /orders/shipments/count` ("Get a Count of
/// Shipments"), each `{"count": N}` over every order of the store. Our shared spec has only
/// the per-order forms; `products` and `shipments` are not taken for an order id.
#[tokio::test]
async fn store_wide_order_product_and_shipment_counts() {
    let s = demo().await;
    let orders = s.all("/orders").await;
    let (mut lines, mut shipments) = (0, 0);
    for o in &orders {
        let id = o["id"].as_u64().unwrap();
        let a = s.get(&format!("/orders/{id}/products?limit=250")).await;
        if a.status == StatusCode::OK {
            lines += a.json().as_array().unwrap().len() as u64;
        }
        shipments += s.count(&format!("/orders/{id}/shipments/count")).await;
    }
    assert!(lines > 0 && shipments > 0, "the seed has lines ({lines}) and shipments ({shipments})");
    assert_eq!(s.count("/orders/products/count").await, lines);
    assert_eq!(s.count("/orders/shipments/count").await, shipments);
    assert_eq!(s.count("/orders/products/count.json").await, lines);

    // A new order of two lines, then a shipment of it, move both counts.
    let r = s.post("/orders", new_order()).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let id = r.json()["id"].as_u64().unwrap();
    assert_eq!(s.count("/orders/products/count").await, lines + 2);
    let aid = s.ok(&format!("/orders/{id}/shipping_addresses")).await[0]["id"].as_u64().unwrap();
    let op = s.ok(&format!("/orders/{id}/products")).await[0]["id"].clone();
    let r = s.post(&format!("/orders/{id}/shipments"), json!({ "order_address_id": aid, "items": [{ "order_product_id": op, "quantity": 1 }] })).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    assert_eq!(s.count("/orders/shipments/count").await, shipments + 1);
    assert_eq!(s.delete(&format!("/orders/{id}")).await.status, StatusCode::NO_CONTENT);
    assert_eq!(s.count("/orders/products/count").await, lines);
    assert_eq!(s.count("/orders/shipments/count").await, shipments);

    // Read-only, and not an order id.
    s.call(reqwest::Method::POST, "/orders/products/count", Some(json!({}))).await.error(405);
    s.get("/orders/products").await.error(404);
    s.get("/orders/shipments/1").await.error(404);
}

/// BigCommerce v2 reads a numeric string wherever it documents an integer: the vendor's own
/// guide sends one (bigcommerce/docs, docs/store-operations/orders/index.mdx, "Create an
/// order shipment": `"order_address_id": "128"`). Ids and quantities of orders, shipments,
/// products and customers are taken either way and answered as integers.
#[tokio::test]
async fn numeric_strings_are_integers() {
    let s = demo().await;
    let mut body = new_order();
    body["customer_id"] = json!("1");
    body["status_id"] = json!("11");
    body["products"] = json!([{ "product_id": "77", "quantity": "2" }]);
    body["channel_id"] = json!("1");
    let r = s.post("/orders", body).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let o = r.json();
    spec::check(SPEC, "/orders", "post", "200", &o);
    assert_eq!((o["customer_id"].clone(), o["status_id"].clone(), o["items_total"].clone(), o["channel_id"].clone()), (json!(1), json!(11), json!(2), json!(1)));
    let id = o["id"].as_u64().unwrap();
    let line = s.ok(&format!("/orders/{id}/products")).await[0].clone();
    assert_eq!(line["product_id"], 77);
    let r = s.put(&format!("/orders/{id}"), json!({ "status_id": "9", "customer_id": "2" })).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!((r.json()["status_id"].clone(), r.json()["customer_id"].clone()), (json!(9), json!(2)));

    let aid = s.ok(&format!("/orders/{id}/shipping_addresses")).await[0]["id"].as_u64().unwrap();
    let items = json!([{ "order_product_id": line["id"].to_string(), "quantity": "1" }]);
    let r = s.post(&format!("/orders/{id}/shipments"), json!({ "order_address_id": aid.to_string(), "items": items })).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let sh = r.json();
    assert_eq!((sh["order_address_id"].clone(), sh["items"][0]["quantity"].clone()), (json!(aid), json!(1)));
    let r = s.put(&format!("/orders/{id}/shipments/{}", sh["id"]), json!({ "order_address_id": aid.to_string() })).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);

    let r = s.post("/products", json!({ "name": "Walnut Spoon", "price": "12.5", "categories": ["19"], "type": "physical",
        "availability": "available", "weight": "0.2", "inventory_level": "4", "brand_id": "1" })).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let p = r.json();
    assert_eq!((p["categories"].clone(), p["inventory_level"].clone(), p["brand_id"].clone()), (json!([19]), json!(4), json!(1)));
    let r = s.post("/customers", json!({ "first_name": "Ada", "last_name": "L", "email": "ada.strings@example.com", "customer_group_id": "1" })).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    assert_eq!(r.json()["customer_group_id"], 1);

    // What is not a number is still refused.
    s.post(&format!("/orders/{id}/shipments"), json!({ "order_address_id": "one", "items": items })).await.error(422);
    let mut body = new_order();
    body["products"] = json!([{ "product_id": 77, "quantity": "two" }]);
    s.post("/orders", body).await.error(422);
}
