//! The v2 catalog: products (+ custom fields, images, SKUs), brands, categories,
//! options; checked against brands.v2.yaml, custom-fields.v2.yml and the field facts.

use reqwest::StatusCode;
use serde_json::{json, Value};

use super::common::{date, demo, past_second};
use super::spec;

/// Product fields the facts list that the v2 API may give as null.
const PRODUCT_NULLABLE: &[&str] = &["keyword_filter", "option_set_id", "brand", "option_set"];

/// A SKU without its own price or weight has them null (the product's apply).
const SKU_NULLABLE: &[&str] = &["price", "weight"];

fn check_product(p: &Value) {
    spec::check_facts("v2-products", "Product Object", p, &[], PRODUCT_NULLABLE);
}

#[tokio::test]
async fn products_and_children_match_the_facts() {
    let s = demo().await;
    let products = s.all("/products").await;
    assert_eq!(products.len(), 30);
    assert_eq!(s.count("/products/count").await, 30);
    let mut skus = 0;
    for p in &products {
        check_product(p);
        let id = p["id"].as_u64().unwrap();
        assert_eq!(p["images"]["resource"], format!("/products/{id}/images"));
        let images = s.ok(&format!("/products/{id}/images")).await;
        for i in images.as_array().unwrap() {
            spec::check_facts("v2-product-images", "Product Image Object", i, &[], &[]);
        }
        assert_eq!(p["primary_image"]["id"], images.as_array().unwrap().iter().find(|i| i["is_thumbnail"] == true).unwrap()["id"]);
        let fields = s.get(&format!("/products/{id}/custom_fields")).await;
        if fields.status == StatusCode::OK {
            let v = fields.json();
            spec::check("custom-fields.v2.yml", "/products/{product_id}/custom_fields", "get", "200", &v);
            for f in v.as_array().unwrap() {
                spec::check_facts("v2-custom-fields", "Custom Field Object", f, &[], &[]);
            }
        }
        let sk = s.get(&format!("/products/{id}/skus")).await;
        if sk.status == StatusCode::OK {
            for k in sk.json().as_array().unwrap() {
                spec::check_facts("v2-product-sku", "SKU Object", k, &[], SKU_NULLABLE);
                skus += 1;
            }
        }
    }
    assert!(skus > 0);
    let p = s.ok("/products/77").await;
    assert_eq!(p, products[0]);

    let brands = s.ok("/brands").await;
    spec::check("brands.v2.yaml", "/brands", "get", "200", &brands);
    for b in brands.as_array().unwrap() {
        spec::check_facts("v2-brands", "Brand Object", b, &[], &[]);
    }
    spec::check("brands.v2.yaml", "/brands/{brand_id}", "get", "200", &s.ok("/brands/1").await);
    spec::check("brands.v2.yaml", "/brands/count", "get", "200", &s.ok("/brands/count").await);

    let cats = s.ok("/categories").await;
    for c in cats.as_array().unwrap() {
        spec::check_facts("v2-categories", "Category Object", c, &[], &[]);
    }
    let child = cats.as_array().unwrap().iter().find(|c| c["parent_id"] != 0).unwrap();
    assert_eq!(child["parent_category_list"].as_array().unwrap().len(), 2);

    let options = s.ok("/options").await;
    for o in options.as_array().unwrap() {
        // `product_id` belongs to product options, not to the store's option list.
        spec::check_facts("v2-options", "Options Object", o, &["product_id"], &[]);
    }
    assert_eq!(s.count("/options/count").await, 3);
    s.post("/options", json!({ "name": "Size" })).await.error(405);
}

#[tokio::test]
async fn product_filters() {
    let s = demo().await;
    let all = s.all("/products").await;
    let n = |pred: &dyn Fn(&Value) -> bool| all.iter().filter(|p| pred(p)).count() as u64;
    let price = |p: &Value| p["price"].as_str().unwrap().parse::<f64>().unwrap();
    assert_eq!(s.count("/products/count?min_price=50").await, n(&|p| price(p) >= 50.0));
    assert_eq!(s.count("/products/count?max_price=30").await, n(&|p| price(p) <= 30.0));
    assert_eq!(s.count("/products/count?is_visible=false").await, n(&|p| p["is_visible"] == false));
    assert_eq!(s.count("/products/count?is_featured=true").await, n(&|p| p["is_featured"] == true));
    assert_eq!(s.count("/products/count?brand_id=2").await, n(&|p| p["brand_id"] == 2));
    assert_eq!(s.count("/products/count?category=19").await, n(&|p| p["categories"].as_array().unwrap().contains(&json!(19))));
    assert_eq!(s.count("/products/count?min_id=80&max_id=84").await, 5);
    let name = all[4]["name"].as_str().unwrap();
    let hit = s.ok(&format!("/products?name={}", form(name))).await;
    assert_eq!(hit.as_array().unwrap().len(), 1);
    let sku = all[6]["sku"].as_str().unwrap();
    assert_eq!(s.ok(&format!("/products?sku={sku}")).await[0]["id"], all[6]["id"]);
    assert_eq!(s.count("/products/count?keyword_filter=towel").await, n(&|p| p["name"].as_str().unwrap().to_lowercase().contains("towel") || p["description"].as_str().unwrap().to_lowercase().contains("towel")));
    let mid = date(&all[10]["date_modified"]);
    let iso = chrono::DateTime::from_timestamp(mid, 0).unwrap().to_rfc3339().replace('+', "%2B");
    assert_eq!(s.count(&format!("/products/count?min_date_modified={iso}")).await, n(&|p| date(&p["date_modified"]) >= mid));
    assert_eq!(s.count(&format!("/products/count?max_date_modified={iso}")).await, n(&|p| date(&p["date_modified"]) <= mid));
    s.get("/products?is_visible=perhaps").await.error(400);
}

fn form(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

#[tokio::test]
async fn product_crud_and_children() {
    let s = demo().await;
    let body = json!({ "name": "Walnut Spoon", "price": "12.5", "categories": [19], "type": "physical", "availability": "available", "weight": 0.2, "sku": "WS-1", "brand_id": 3 });
    let r = s.post("/products", body.clone()).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let p = r.json();
    check_product(&p);
    assert_eq!(p["price"], "12.5000");
    assert_eq!(p["calculated_price"], "12.5000");
    let id = p["id"].as_u64().unwrap();
    // Duplicates and missing fields.
    s.post("/products", body.clone()).await.error(409);
    let mut b = body.clone();
    b.as_object_mut().unwrap().remove("weight");
    s.post("/products", b).await.error(400);
    s.post("/products", json!({ "name": "X", "price": 1, "categories": [19], "type": "vinyl", "availability": "available", "weight": 1 })).await.error(422);
    s.post("/products", json!({ "name": "X", "price": 1, "categories": [9999], "type": "physical", "availability": "available", "weight": 1 })).await.error(422);

    past_second(date(&p["date_modified"])).await;
    let r = s.put(&format!("/products/{id}"), json!({ "sale_price": 10, "is_featured": true })).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let u = r.json();
    check_product(&u);
    assert_eq!(u["calculated_price"], "10.0000");
    assert!(date(&u["date_modified"]) > date(&p["date_modified"]));

    // Custom fields.
    let r = s.post(&format!("/products/{id}/custom_fields"), json!({ "name": "Wood", "text": "Walnut" })).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    spec::check("custom-fields.v2.yml", "/products/{product_id}/custom_fields", "post", "201", &r.json());
    let fid = r.json()["id"].as_u64().unwrap();
    s.post(&format!("/products/{id}/custom_fields"), json!({ "name": "Wood" })).await.error(400);
    let r = s.put(&format!("/products/{id}/custom_fields/{fid}"), json!({ "text": "Black walnut" })).await;
    spec::check("custom-fields.v2.yml", "/products/{product_id}/custom_fields/{id}", "put", "200", &r.json());
    assert_eq!(r.json()["text"], "Black walnut");
    assert_eq!(s.delete(&format!("/products/{id}/custom_fields/{fid}")).await.status, StatusCode::NO_CONTENT);
    assert_eq!(s.get(&format!("/products/{id}/custom_fields")).await.status, StatusCode::NO_CONTENT);

    // Images drive primary_image.
    let r = s.post(&format!("/products/{id}/images"), json!({ "image_file": "https://example.com/spoon.jpg", "is_thumbnail": true })).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let img = r.json();
    spec::check_facts("v2-product-images", "Product Image Object", &img, &[], &[]);
    assert_eq!(s.ok(&format!("/products/{id}")).await["primary_image"]["id"], img["id"]);
    let iid = img["id"].as_u64().unwrap();
    let r = s.put(&format!("/products/{id}/images/{iid}"), json!({ "description": "Side view" })).await;
    assert_eq!(r.json()["description"], "Side view");
    assert_eq!(s.delete(&format!("/products/{id}/images/{iid}")).await.status, StatusCode::NO_CONTENT);

    // SKUs.
    let r = s.post(&format!("/products/{id}/skus"), json!({ "sku": "WS-1-L", "price": 14, "inventory_level": 3, "options": [] })).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    spec::check_facts("v2-product-sku", "SKU Object", &r.json(), &[], SKU_NULLABLE);
    let kid = r.json()["id"].as_u64().unwrap();
    s.post(&format!("/products/{id}/skus"), json!({ "sku": "WS-1-L" })).await.error(409);
    assert_eq!(s.ok(&format!("/products/{id}/skus?min_inventory_level=1")).await[0]["id"], kid);
    let r = s.put(&format!("/products/{id}/skus/{kid}"), json!({ "inventory_level": 9 })).await;
    assert_eq!(r.json()["inventory_level"], 9);
    assert_eq!(s.count(&format!("/products/{id}/skus/count")).await, 1);

    assert_eq!(s.delete(&format!("/products/{id}")).await.status, StatusCode::NO_CONTENT);
    s.get(&format!("/products/{id}")).await.error(404);
    s.get(&format!("/products/{id}/skus")).await.error(404);
}

#[tokio::test]
async fn brand_and_category_crud() {
    let s = demo().await;
    let r = s.post("/brands", json!({ "name": "Walnut & Co", "page_title": "Walnut" })).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let b = r.json();
    spec::check("brands.v2.yaml", "/brands", "post", "201", &b);
    let id = b["id"].as_u64().unwrap();
    let e = s.post("/brands", json!({ "name": "walnut & co" })).await.error(409);
    assert!(e["details"].is_object());
    s.post("/brands", json!({ "page_title": "x" })).await.error(400);
    let r = s.put(&format!("/brands/{id}"), json!({ "meta_description": "Spoons" })).await;
    assert_eq!(r.status, 200, "{}", r.text);
    spec::check("brands.v2.yaml", "/brands/{brand_id}", "put", "200", &r.json());
    assert_eq!(s.ok(&format!("/brands?name={}", form("Walnut & Co"))).await[0]["id"], id);
    assert_eq!(s.delete(&format!("/brands/{id}")).await.status, StatusCode::NO_CONTENT);
    s.get(&format!("/brands/{id}")).await.error(404);

    let r = s.post("/categories", json!({ "name": "Spoons", "parent_id": 19 })).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let c = r.json();
    spec::check_facts("v2-categories", "Category Object", &c, &[], &[]);
    assert_eq!(c["parent_category_list"], json!([19, c["id"]]));
    s.post("/categories", json!({ "name": "Spoons", "parent_id": 19 })).await.error(409);
    s.post("/categories", json!({ "name": "Forks", "parent_id": 4242 })).await.error(422);
    let cid = c["id"].as_u64().unwrap();
    let r = s.put(&format!("/categories/{cid}"), json!({ "is_visible": false })).await;
    assert_eq!(r.json()["is_visible"], false);
    assert_eq!(s.count("/categories/count?is_visible=false").await, 1);
    assert_eq!(s.delete(&format!("/categories/{cid}")).await.status, StatusCode::NO_CONTENT);
}
