//! A page of 50 BigCommerce-like orders (about 30 members each, a nested
//! `billing_address`) through a 10-field transformation, both ways. Per-field time
//! is the per-page time divided by 500 (50 records × 10 fields).

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use serde_json::{json, Value};
use switchyard_transform::Transformation;

fn order(i: usize) -> Value {
    let mut o = json!({
        "date_created": "Tue, 20 Nov 2012 00:00:00 +0000",
        "date_modified": "2012-11-21 09:30:00", "date_shipped": "", "status_id": 11, "status": "Awaiting Fulfillment",
        "subtotal_ex_tax": "79.0000", "subtotal_inc_tax": "79.0000", "subtotal_tax": "0.0000",
        "base_shipping_cost": "0.0000", "shipping_cost_ex_tax": "0.0000", "shipping_cost_inc_tax": "0.0000",
        "total_ex_tax": "79.0000", "total_tax": "0.0000",
        "items_total": 1, "items_shipped": 0, "payment_method": "cash", "payment_status": "",
        "refunded_amount": "0.0000", "order_is_digital": false, "currency_code": "USD",
        "ip_address": "12.2.169.242", "geoip_country": "", "staff_notes": "", "customer_message": "",
        "discount_amount": "0.0000", "is_deleted": false, "order_source": "external",
        "products": [{"id": 4, "sku": "S-1", "name": "iPad", "quantity": 1}, {"id": 5, "sku": "S-2", "name": "Pen", "quantity": 2}]
    });
    o["id"] = json!(100 + i);
    o["customer_id"] = json!(7 + i);
    o["total_inc_tax"] = json!(format!("{}.50", 79 + i));
    o["billing_address"] = json!({"first_name": "Trisha", "last_name": "McLaughlin", "company": "", "street_1": "12345 W Anderson Ln",
                                  "city": "Austin", "state": "Texas", "zip": "78757", "country": "United States",
                                  "country_iso2": "US", "phone": "", "email": format!("t{i}@example.com")});
    o
}

fn transformation() -> Transformation {
    Transformation::from_json(&json!({"vendorName": "orders", "fields": [
        {"path": "id", "type": "string", "vendorPath": "id"},
        {"path": "customerId", "type": "string", "vendorPath": "customer_id"},
        {"path": "status", "vendorPath": "status"},
        {"path": "created", "type": "date", "vendorPath": "date_created", "vendorType": "date", "mask": "EEE, dd MMM yyyy HH:mm:ss Z"},
        {"path": "total", "type": "number", "vendorPath": "total_inc_tax"},
        {"path": "currency", "vendorPath": "currency_code"},
        {"path": "billing.city", "vendorPath": "billing_address.city"},
        {"path": "billing.email", "vendorPath": "billing_address.email"},
        {"path": "firstSku", "vendorPath": "products[0].sku"},
        {"path": "digital", "type": "boolean", "vendorPath": "order_is_digital"}
    ]}))
    .unwrap()
}

fn bench(c: &mut Criterion) {
    let tr = transformation();
    let page: Vec<Value> = (0..50).map(order).collect();
    let common: Vec<Value> = page.iter().map(|r| tr.from_vendor(r, None)).collect();
    assert_eq!(common[0]["created"], json!("2012-11-20T00:00:00Z"));
    assert_eq!(common[0]["total"], json!(79.5));
    let mut g = c.benchmark_group("page of 50 orders, 10 fields");
    g.throughput(Throughput::Elements(50));
    g.bench_function("from_vendor", |b| b.iter(|| black_box(&page).iter().map(|r| tr.from_vendor(r, None)).collect::<Vec<_>>()));
    g.bench_function("to_vendor", |b| b.iter(|| black_box(&common).iter().map(|r| tr.to_vendor(r, None).unwrap()).collect::<Vec<_>>()));
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
