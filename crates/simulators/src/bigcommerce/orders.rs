//! `/orders` and everything under it, and `/order_statuses`.

use http::{Method, StatusCode};
use serde_json::{json, Map, Value};

use super::api::{self, apply, body_object, id, int_value, not_allowed, require, uint_value, Ctx, Data, T};
use super::data::StoreData;
use super::events::{self, Event};
use super::geo;
use super::fmt::{money, parse_money, rfc2822};
use super::query::{filters, select, sort, F};
use super::table::{link, obj, ApiError, Record, Reply};

/// The vendor's order statuses: id, name, sort order, description.
pub(crate) const STATUSES: [(i64, &str, i64, &str); 15] = [
    (0, "Incomplete", 0, "An incomplete order happens when a shopper reached the payment page, but did not complete the transaction."),
    (1, "Pending", 1, "Customer started the checkout process, but did not complete it."),
    (2, "Shipped", 8, "Order has been shipped, but receipt has not been confirmed; seller has used the Ship Items action."),
    (3, "Partially Shipped", 6, "Only some items in the order have been shipped, due to some products being pre-order only or other reasons."),
    (4, "Refunded", 11, "Seller has used the Refund action."),
    (5, "Cancelled", 9, "Seller has cancelled an order, due to a stock inconsistency or other reasons."),
    (6, "Declined", 10, "Seller has marked the order as declined for lack of manual payment, or other reasons."),
    (7, "Awaiting Payment", 2, "Customer has completed checkout process, but payment has yet to be confirmed."),
    (8, "Awaiting Pickup", 5, "Order has been pulled, and is awaiting customer pickup from a seller-specified location."),
    (9, "Awaiting Shipment", 4, "Order has been pulled and packaged, and is awaiting collection from a shipping provider."),
    (10, "Completed", 7, "Client has paid for their digital product and their file(s) are available for download."),
    (11, "Awaiting Fulfillment", 3, "Customer has completed the checkout process and payment has been confirmed."),
    (12, "Manual Verification Required", 13, "Order is on hold while some aspect needs to be manually confirmed."),
    (13, "Disputed", 12, "Customer has initiated a dispute resolution process for the PayPal transaction that paid for the order."),
    (14, "Partially Refunded", 14, "Seller has partially refunded the order."),
];

pub(crate) fn status_name(id: i64) -> Option<&'static str> {
    STATUSES.iter().find(|s| s.0 == id).map(|s| s.1)
}

fn payment_status(status_id: i64) -> &'static str {
    match status_id {
        0 => "",
        1 | 7 => "pending",
        4 => "refunded",
        5 => "void",
        6 => "declined",
        12 => "held for review",
        14 => "partially refunded",
        _ => "captured",
    }
}

fn status_json(s: &(i64, &str, i64, &str)) -> Value {
    json!({
        "id": s.0, "name": s.1, "system_label": s.1, "custom_label": s.1,
        "system_description": s.3, "order": s.2
    })
}

/// One line of a new order.
pub(crate) struct Line {
    pub(crate) product_id: i64,
    pub(crate) name: String,
    pub(crate) sku: String,
    pub(crate) price_ex: f64,
    pub(crate) quantity: i64,
    pub(crate) weight: f64,
    pub(crate) cost: f64,
    pub(crate) brand: String,
}

/// A new order, from the seed or from a POST.
pub(crate) struct NewOrder {
    pub(crate) customer_id: i64,
    pub(crate) status_id: i64,
    pub(crate) created: i64,
    pub(crate) modified: i64,
    pub(crate) billing: Map<String, Value>,
    pub(crate) shipping: Vec<Map<String, Value>>,
    pub(crate) lines: Vec<Line>,
    pub(crate) payment_method: String,
    pub(crate) shipping_cost: f64,
    pub(crate) discount: f64,
    pub(crate) coupon: Option<(i64, String, f64)>,
    pub(crate) customer_message: String,
    pub(crate) staff_notes: String,
    pub(crate) ip_address: String,
    pub(crate) order_source: String,
    pub(crate) cart_id: String,
    /// Shipped quantities are set to the ordered ones (for seeded shipped orders).
    pub(crate) shipped: bool,
}

/// Tax rate by billing country: the demo stores charge US sales tax only.
fn tax_rate(billing: &Map<String, Value>) -> f64 {
    if billing.get("country_iso2").and_then(Value::as_str).unwrap_or("US") == "US" {
        0.0825
    } else {
        0.0
    }
}

struct Totals {
    subtotal_ex: f64,
    subtotal_tax: f64,
    shipping_ex: f64,
    shipping_tax: f64,
    discount: f64,
    items: i64,
}

fn set_totals(o: &mut Map<String, Value>, t: &Totals) {
    let r2 = |v: f64| (v * 100.0).round() / 100.0;
    let subtotal_tax = r2(t.subtotal_tax);
    let shipping_tax = r2(t.shipping_tax);
    let total_ex = (t.subtotal_ex + t.shipping_ex - t.discount).max(0.0);
    let total_tax = subtotal_tax + shipping_tax;
    let m = |v: f64| Value::String(money(v));
    o.insert("subtotal_ex_tax".into(), m(t.subtotal_ex));
    o.insert("subtotal_inc_tax".into(), m(t.subtotal_ex + subtotal_tax));
    o.insert("subtotal_tax".into(), m(subtotal_tax));
    o.insert("base_shipping_cost".into(), m(t.shipping_ex));
    o.insert("shipping_cost_ex_tax".into(), m(t.shipping_ex));
    o.insert("shipping_cost_inc_tax".into(), m(t.shipping_ex + shipping_tax));
    o.insert("shipping_cost_tax".into(), m(shipping_tax));
    o.insert("total_ex_tax".into(), m(total_ex));
    o.insert("total_inc_tax".into(), m(total_ex + total_tax));
    o.insert("total_tax".into(), m(total_tax));
    o.insert("items_total".into(), json!(t.items));
}

fn address_fields(a: &Map<String, Value>) -> Map<String, Value> {
    let mut out = Map::new();
    for f in ["first_name", "last_name", "company", "street_1", "street_2", "city", "state", "zip", "country", "country_iso2", "phone", "email"] {
        out.insert(f.into(), a.get(f).cloned().unwrap_or_else(|| json!("")));
    }
    out
}

/// Inserts an order with its lines, shipping addresses, taxes and coupon; returns its id.
pub(crate) fn insert(d: &mut StoreData, o: NewOrder) -> u64 {
    let id = d.orders.alloc();
    let rate = tax_rate(&o.billing);
    let items: i64 = o.lines.iter().map(|l| l.quantity).sum();
    let subtotal_ex: f64 = o.lines.iter().map(|l| l.price_ex * l.quantity as f64).sum();
    let coupon_discount = o.coupon.as_ref().map(|c| c.2).unwrap_or(0.0);
    let shipped_items = if o.shipped { items } else { 0 };

    // Shipping addresses: every line ships to the first one.
    let shipping = if o.shipping.is_empty() { vec![o.billing.clone()] } else { o.shipping };
    let mut first_address = 0;
    for (n, a) in shipping.iter().enumerate() {
        let aid = d.order_addresses.alloc();
        if n == 0 {
            first_address = aid;
        }
        let (cost, its) = if n == 0 { (o.shipping_cost, items) } else { (0.0, 0) };
        let tax = (cost * rate * 100.0).round() / 100.0;
        let mut v = obj(json!({ "id": aid, "order_id": id }));
        v.extend(address_fields(a));
        v.extend(obj(json!({
            "items_total": its,
            "items_shipped": if o.shipped { its } else { 0 },
            "shipping_method": a.get("shipping_method").and_then(Value::as_str).unwrap_or(if cost > 0.0 { "Flat Rate" } else { "Free Shipping" }),
            "base_cost": money(cost),
            "cost_ex_tax": money(cost),
            "cost_inc_tax": money(cost + tax),
            "cost_tax": money(tax),
            "cost_tax_class_id": 2,
            "base_handling_cost": "0.0000",
            "handling_cost_ex_tax": "0.0000",
            "handling_cost_inc_tax": "0.0000",
            "handling_cost_tax": "0.0000",
            "handling_cost_tax_class_id": 2,
            "shipping_zone_id": 1,
            "shipping_zone_name": if a.get("country_iso2").and_then(Value::as_str) == Some("US") { "United States" } else { "International" },
            "shipping_quotes": link(format!("/orders/{id}/shipping_addresses/{aid}/shipping_quotes")),
            "form_fields": []
        })));
        d.order_addresses.insert(id, Record::new(aid, o.created, o.modified, v));
    }

    for l in &o.lines {
        let pid = d.order_products.alloc();
        let tax = (l.price_ex * rate * 100.0).round() / 100.0;
        let q = l.quantity as f64;
        let v = obj(json!({
            "id": pid,
            "order_id": id,
            "product_id": l.product_id,
            "order_address_id": first_address,
            "name": l.name,
            "name_customer": l.name,
            "name_merchant": l.name,
            "sku": l.sku,
            "upc": "",
            "type": "physical",
            "base_price": money(l.price_ex),
            "price_ex_tax": money(l.price_ex),
            "price_inc_tax": money(l.price_ex + tax),
            "price_tax": money(tax),
            "base_total": money(l.price_ex * q),
            "total_ex_tax": money(l.price_ex * q),
            "total_inc_tax": money((l.price_ex + tax) * q),
            "total_tax": money(tax * q),
            "weight": money(l.weight),
            "width": "0.0000",
            "height": "0.0000",
            "depth": "0.0000",
            "quantity": l.quantity,
            "base_cost_price": money(l.cost),
            "cost_price_inc_tax": money(l.cost),
            "cost_price_ex_tax": money(l.cost),
            "cost_price_tax": "0.0000",
            "is_refunded": false,
            "quantity_refunded": 0,
            "refund_amount": "0.0000",
            "return_id": 0,
            "wrapping_id": 0,
            "wrapping_name": "",
            "base_wrapping_cost": "0.0000",
            "wrapping_cost_ex_tax": "0.0000",
            "wrapping_cost_inc_tax": "0.0000",
            "wrapping_cost_tax": "0.0000",
            "wrapping_message": "",
            "quantity_shipped": if o.shipped { l.quantity } else { 0 },
            "event_name": null,
            "event_date": null,
            "fixed_shipping_cost": "0.0000",
            "ebay_item_id": "",
            "ebay_transaction_id": "",
            "option_set_id": null,
            "parent_order_product_id": null,
            "is_bundled_product": false,
            "bin_picking_number": "",
            "external_id": null,
            "brand": l.brand,
            "applied_discounts": [],
            "product_options": [],
            "configurable_fields": [],
            "gift_certificate_id": null,
            "discounted_total_inc_tax": money((l.price_ex + tax) * q)
        }));
        d.order_products.insert(id, Record::new(pid, o.created, o.modified, v));
    }

    let shipping_tax = (o.shipping_cost * rate * 100.0).round() / 100.0;
    let subtotal_tax = (subtotal_ex * rate * 100.0).round() / 100.0;
    if rate > 0.0 {
        let tid = d.order_taxes.alloc();
        let amount = subtotal_tax + shipping_tax;
        let v = obj(json!({
            "id": tid, "order_id": id, "order_address_id": first_address, "tax_rate_id": 1,
            "sales_tax_id": "", "tax_class_id": 0, "name": "Sales Tax", "class": "Default Tax Class",
            "rate": money(rate * 100.0), "priority": 0, "priority_amount": money(amount),
            "line_amount": money(amount), "order_pickup_method_id": 0, "line_item_type": "item"
        }));
        d.order_taxes.insert(id, Record::new(tid, o.created, o.modified, v));
    }
    if let Some((coupon_id, code, amount)) = &o.coupon {
        let cid = d.order_coupons.alloc();
        let v = obj(json!({
            "id": cid, "coupon_id": coupon_id, "order_id": id, "code": code,
            "amount": money(*amount), "type": 1, "discount": amount
        }));
        d.order_coupons.insert(id, Record::new(cid, o.created, o.modified, v));
    }

    let mut billing = address_fields(&o.billing);
    billing.insert("form_fields".into(), json!([]));
    let status = status_name(o.status_id).unwrap_or("Pending");
    let mut v = obj(json!({
        "id": id,
        "customer_id": o.customer_id,
        "date_created": rfc2822(o.created),
        "date_modified": rfc2822(o.modified),
        "date_shipped": if o.shipped { rfc2822(o.modified) } else { String::new() },
        "status_id": o.status_id,
        "status": status,
    }));
    set_totals(&mut v, &Totals { subtotal_ex, subtotal_tax, shipping_ex: o.shipping_cost, shipping_tax, discount: o.discount + coupon_discount, items });
    v.extend(obj(json!({
        "shipping_cost_tax_class_id": 2,
        "base_handling_cost": "0.0000",
        "handling_cost_ex_tax": "0.0000",
        "handling_cost_inc_tax": "0.0000",
        "handling_cost_tax": "0.0000",
        "handling_cost_tax_class_id": 2,
        "base_wrapping_cost": "0.0000",
        "wrapping_cost_ex_tax": "0.0000",
        "wrapping_cost_inc_tax": "0.0000",
        "wrapping_cost_tax": "0.0000",
        "wrapping_cost_tax_class_id": 3,
        "is_tax_inclusive_pricing": false,
        "items_shipped": shipped_items,
        "payment_method": o.payment_method,
        "payment_provider_id": "",
        "payment_status": payment_status(o.status_id),
        "refunded_amount": "0.0000",
        "order_is_digital": false,
        "store_credit_amount": "0.0000",
        "gift_certificate_amount": "0.0000",
        "ip_address": o.ip_address,
        "ip_address_v6": "",
        "geoip_country": billing.get("country").cloned().unwrap_or_else(|| json!("")),
        "geoip_country_iso2": billing.get("country_iso2").cloned().unwrap_or_else(|| json!("")),
        "currency_id": 1,
        "currency_code": "USD",
        "currency_exchange_rate": "1.0000000000",
        "default_currency_id": 1,
        "default_currency_code": "USD",
        "staff_notes": o.staff_notes,
        "customer_message": o.customer_message,
        "discount_amount": money(o.discount),
        "coupon_discount": money(coupon_discount),
        "shipping_address_count": shipping.len(),
        "is_deleted": false,
        "ebay_order_id": "0",
        "cart_id": o.cart_id,
        "billing_address": billing,
        "is_email_opt_in": false,
        "credit_card_type": null,
        "order_source": o.order_source,
        "channel_id": 1,
        "external_source": null,
        "products": link(format!("/orders/{id}/products")),
        "shipping_addresses": link(format!("/orders/{id}/shippingaddresses")),
        "coupons": link(format!("/orders/{id}/coupons")),
        "external_id": null,
        "external_merchant_id": null,
        "tax_provider_id": "BasicTaxProvider",
        "customer_locale": "en",
        "external_order_id": "",
        "store_default_currency_code": "USD",
        "store_default_to_transactional_exchange_rate": "1.0000000000",
        "custom_status": status
    })));
    d.orders.insert(Record::new(id, o.created, o.modified, v));
    id
}

const ORDER_FILTERS: &[(&str, F)] = &[
    ("min_id", F::MinId),
    ("max_id", F::MaxId),
    ("min_total", F::MinDec("total_inc_tax")),
    ("max_total", F::MaxDec("total_inc_tax")),
    ("customer_id", F::Int("customer_id")),
    ("email", F::SubTextCi("billing_address", "email")),
    ("status_id", F::Int("status_id")),
    ("cart_id", F::Text("cart_id")),
    ("payment_method", F::Text("payment_method")),
    ("min_date_created", F::MinCreated),
    ("max_date_created", F::MaxCreated),
    ("min_date_modified", F::MinModified),
    ("max_date_modified", F::MaxModified),
    ("channel_id", F::Int("channel_id")),
    ("external_order_id", F::Text("external_order_id")),
];

const ORDER_SORTS: &[&str] = &["id", "customer_id", "date_created", "date_modified", "status_id", "channel_id", "external_id"];

pub(crate) fn route(d: &mut Data<'_>, method: &Method, segs: &[&str], ctx: &Ctx<'_>) -> Result<Reply, ApiError> {
    let m = method.clone();
    if segs[0] == "order_statuses" {
        return match (segs.len(), m) {
            (1, Method::GET) => Ok(Reply::ok(&Value::Array(STATUSES.iter().map(status_json).collect()))),
            (2, Method::GET) => {
                let sid = segs[1].parse::<i64>().map_err(|_| ApiError::not_found())?;
                let s = STATUSES.iter().find(|s| s.0 == sid).ok_or_else(ApiError::not_found)?;
                Ok(Reply::ok(&status_json(s)))
            }
            (1 | 2, _) => not_allowed(),
            _ => Err(ApiError::not_found()),
        };
    }
    match (segs.len(), m) {
        (1, Method::GET) => list(d.get(), ctx),
        (1, Method::POST) => create(d.get_mut()?, ctx),
        (1, Method::DELETE) => {
            let d = d.get_mut()?;
            let ids: Vec<u64> = d.orders.rows.keys().copied().collect();
            for oid in ids {
                remove(d, oid);
                d.emit(events::ORDER_ARCHIVED, oid);
            }
            Ok(Reply::no_content())
        }
        (1, _) => not_allowed(),
        (2, Method::GET) if segs[1] == "count" => count(d.get(), ctx),
        (2, _) if segs[1] == "count" => not_allowed(),
        // The store-wide counts of the legacy v2 reference ("Get a Count of Order
        // Products", "Get a Count of Shipments"): named before `/orders/{id}` can take
        // `products` or `shipments` for an order id.
        (3, Method::GET) if segs[2] == "count" && segs[1] == "products" => Ok(Reply::count(d.get().order_products.rows.len())),
        (3, Method::GET) if segs[2] == "count" && segs[1] == "shipments" => Ok(Reply::count(d.get().shipments.rows.len())),
        (3, _) if segs[2] == "count" && (segs[1] == "products" || segs[1] == "shipments") => not_allowed(),
        (2, m) => {
            let oid = id(segs[1])?;
            match m {
                Method::GET => {
                    let r = d.get().orders.get(oid).ok_or_else(ApiError::not_found)?;
                    Ok(Reply::record(StatusCode::OK, r, ctx.base))
                }
                Method::PUT => update(d.get_mut()?, oid, ctx),
                Method::DELETE => {
                    let d = d.get_mut()?;
                    if d.orders.get(oid).is_none() {
                        return Err(ApiError::not_found());
                    }
                    remove(d, oid);
                    d.emit(events::ORDER_ARCHIVED, oid);
                    Ok(Reply::no_content())
                }
                _ => not_allowed(),
            }
        }
        (_, m) => {
            let oid = id(segs[1])?;
            if d.get().orders.get(oid).is_none() {
                return Err(ApiError::not_found());
            }
            sub(d, &m, oid, &segs[2..], ctx)
        }
    }
}

fn remove(d: &mut StoreData, oid: u64) {
    d.orders.rows.remove(&oid);
    d.order_products.remove_parent(oid);
    d.order_addresses.remove_parent(oid);
    d.order_coupons.remove_parent(oid);
    d.order_messages.remove_parent(oid);
    d.order_taxes.remove_parent(oid);
    d.shipments.remove_parent(oid);
}

fn list(d: &StoreData, ctx: &Ctx<'_>) -> Result<Reply, ApiError> {
    let (page, limit) = ctx.query.paging()?;
    let preds = filters(&ctx.query, ORDER_FILTERS)?;
    let sort = sort(&ctx.query, ORDER_SORTS)?;
    let rows = select(d.orders.iter(), &preds, sort, page, limit);
    Ok(Reply::list(rows, ctx.base))
}

fn count(d: &StoreData, ctx: &Ctx<'_>) -> Result<Reply, ApiError> {
    let preds = filters(&ctx.query, ORDER_FILTERS)?;
    let mut per_status = [0usize; 15];
    let mut total = 0;
    for r in d.orders.iter().filter(|r| super::query::matches(r, &preds)) {
        total += 1;
        if let Some(s) = r.int("status_id").filter(|s| (0..15).contains(s)) {
            per_status[s as usize] += 1;
        }
    }
    let statuses: Vec<Value> = STATUSES
        .iter()
        .map(|s| {
            let mut v = status_json(s);
            if let Some(o) = v.as_object_mut() {
                o.remove("order");
                o.insert("count".into(), json!(per_status[s.0 as usize]));
                o.insert("sort_order".into(), json!(s.2));
            }
            v
        })
        .collect();
    Ok(Reply::ok(&json!({ "statuses": statuses, "count": total })))
}

/// The writable address fields of orders.
const ADDRESS_FIELDS: &[(&str, T)] = &[
    ("first_name", T::Str),
    ("last_name", T::Str),
    ("company", T::Str),
    ("street_1", T::Str),
    ("street_2", T::Str),
    ("city", T::Str),
    ("state", T::Str),
    ("zip", T::Str),
    ("country", T::Str),
    ("country_iso2", T::Str),
    ("phone", T::Str),
    ("email", T::Str),
];

fn address_from(field: &str, v: &Value) -> Result<Map<String, Value>, ApiError> {
    let Value::Object(body) = v else {
        return Err(ApiError::invalid(field, "The value must be an object."));
    };
    let mut a = Map::new();
    apply(&mut a, body, ADDRESS_FIELDS)?;
    if let Some(Value::String(s)) = body.get("shipping_method") {
        a.insert("shipping_method".into(), json!(s));
    }
    fill_country(&mut a);
    Ok(a)
}

/// Fills `country` from `country_iso2` or the other way round; a country given by its
/// ISO code is stored by its name.
pub(crate) fn fill_country(a: &mut Map<String, Value>) {
    let country = a.get("country").and_then(Value::as_str).unwrap_or("").to_string();
    let iso = a.get("country_iso2").and_then(Value::as_str).unwrap_or("").to_string();
    if iso.is_empty() && !country.is_empty() {
        let known = geo::country(&country);
        a.insert("country_iso2".into(), json!(known.map(|c| c.iso2).unwrap_or("")));
        if let Some(c) = known.filter(|c| c.iso2.eq_ignore_ascii_case(&country) || c.iso3.eq_ignore_ascii_case(&country)) {
            a.insert("country".into(), json!(c.name));
        }
    } else if country.is_empty() && !iso.is_empty() {
        a.insert("country".into(), json!(geo::country(&iso).map(|c| c.name).unwrap_or("")));
    }
}

fn create(d: &mut StoreData, ctx: &Ctx<'_>) -> Result<Reply, ApiError> {
    let body = body_object(ctx.body)?;
    require(&body, &["billing_address", "products"])?;
    let billing = address_from("billing_address", &body["billing_address"])?;
    let Some(Value::Array(products)) = body.get("products") else {
        return Err(ApiError::invalid("products", "The value must be an array of products."));
    };
    if products.is_empty() {
        return Err(ApiError::invalid("products", "An order needs at least one product."));
    }
    let mut lines = Vec::new();
    for p in products {
        let Value::Object(p) = p else {
            return Err(ApiError::invalid("products", "Each product must be an object."));
        };
        let quantity = match p.get("quantity") {
            None => return Err(ApiError::missing("products.quantity")),
            Some(q) => int_value(q).filter(|q| *q > 0).ok_or_else(|| ApiError::invalid("products.quantity", "The quantity must be a positive integer."))?,
        };
        let price = |f: &str| p.get(f).map(|v| parse_money(v).ok_or_else(|| ApiError::invalid(&format!("products.{f}"), "The value must be a decimal number.")));
        match p.get("product_id") {
            Some(pid) => {
                let pid = int_value(pid).ok_or_else(|| ApiError::invalid("products.product_id", "The value must be an integer."))?;
                let cat = u64::try_from(pid).ok().and_then(|i| d.products.get(i)).ok_or_else(|| {
                    ApiError::invalid("products.product_id", format!("The product with ID {pid} does not exist."))
                })?;
                let price_ex = match price("price_ex_tax") {
                    Some(r) => r?,
                    None => cat.num("price").unwrap_or(0.0),
                };
                let brand_id = cat.int("brand_id").unwrap_or(0);
                let brand = u64::try_from(brand_id).ok().and_then(|b| d.brands.get(b)).map(|b| b.str("name").to_string()).unwrap_or_default();
                lines.push(Line {
                    product_id: pid,
                    name: cat.str("name").to_string(),
                    sku: cat.str("sku").to_string(),
                    price_ex,
                    quantity,
                    weight: cat.num("weight").unwrap_or(0.0),
                    cost: cat.num("cost_price").unwrap_or(0.0),
                    brand,
                });
            }
            None => {
                require(p, &["name", "price_inc_tax", "price_ex_tax"]).map_err(|e| ApiError { message: e.message.replace("'", "'products."), ..e })?;
                let price_ex = price("price_ex_tax").transpose()?.unwrap_or(0.0);
                lines.push(Line {
                    product_id: 0,
                    name: p.get("name").and_then(Value::as_str).unwrap_or("").to_string(),
                    sku: p.get("sku").and_then(Value::as_str).unwrap_or("").to_string(),
                    price_ex,
                    quantity,
                    weight: 0.0,
                    cost: 0.0,
                    brand: String::new(),
                });
            }
        }
    }
    let mut shipping = Vec::new();
    if let Some(v) = body.get("shipping_addresses") {
        let Value::Array(a) = v else {
            return Err(ApiError::invalid("shipping_addresses", "The value must be an array."));
        };
        for s in a {
            shipping.push(address_from("shipping_addresses", s)?);
        }
    }
    let status_id = match body.get("status_id") {
        Some(v) => {
            let s = int_value(v).ok_or_else(|| ApiError::invalid("status_id", "The value must be an integer."))?;
            status_name(s).ok_or_else(|| ApiError::invalid("status_id", format!("There is no order status {s}.")))?;
            s
        }
        None => 1,
    };
    let customer_id = match body.get("customer_id") {
        Some(v) => {
            let c = int_value(v).ok_or_else(|| ApiError::invalid("customer_id", "The value must be an integer."))?;
            if c != 0 && u64::try_from(c).ok().and_then(|i| d.customers.get(i)).is_none() {
                return Err(ApiError::invalid("customer_id", format!("The customer with ID {c} does not exist.")));
            }
            c
        }
        None => 0,
    };
    let created = match body.get("date_created") {
        Some(v) => v.as_str().and_then(super::fmt::parse_date).ok_or_else(|| ApiError::invalid("date_created", "The value must be an RFC 2822 date."))?,
        None => ctx.now,
    };
    let money_field = |f: &str| -> Result<f64, ApiError> {
        match body.get(f) {
            Some(v) => parse_money(v).ok_or_else(|| ApiError::invalid(f, "The value must be a decimal number.")),
            None => Ok(0.0),
        }
    };
    let shipping_cost = match body.get("base_shipping_cost") {
        Some(_) => money_field("base_shipping_cost")?,
        None => money_field("shipping_cost_ex_tax")?,
    };
    let discount = money_field("discount_amount")?;
    let text = |f: &str| body.get(f).and_then(Value::as_str).unwrap_or("").to_string();
    // Checked before anything is inserted, so a bad value leaves no order behind.
    let mut text_fields = Map::new();
    apply(&mut text_fields, &body, ORDER_TEXT_FIELDS)?;
    let order = NewOrder {
        customer_id,
        status_id,
        created,
        modified: ctx.now,
        billing,
        shipping,
        lines,
        payment_method: match text("payment_method") {
            s if s.is_empty() => "Manual".into(),
            s => s,
        },
        shipping_cost,
        discount,
        coupon: None,
        customer_message: text("customer_message"),
        staff_notes: text("staff_notes"),
        ip_address: text("ip_address"),
        order_source: "external".into(),
        cart_id: String::new(),
        shipped: false,
    };
    let oid = insert(d, order);
    if let Some(r) = d.orders.get_mut(oid) {
        r.value.extend(text_fields);
        r.refresh();
    }
    d.emit(events::ORDER_CREATED, oid);
    let r = d.orders.get(oid).ok_or_else(ApiError::not_found)?;
    Ok(Reply::record(api::CREATED, r, ctx.base))
}

/// Order fields a PUT (or a POST) may set directly.
const ORDER_TEXT_FIELDS: &[(&str, T)] = &[
    ("customer_message", T::Str),
    ("staff_notes", T::Str),
    ("payment_method", T::Str),
    ("payment_provider_id", T::Str),
    ("ebay_order_id", T::Str),
    ("external_source", T::Str),
    ("external_order_id", T::Str),
    ("geoip_country", T::Str),
    ("geoip_country_iso2", T::Str),
    ("ip_address", T::Str),
    ("ip_address_v6", T::Str),
    ("customer_locale", T::Str),
    ("is_email_opt_in", T::Bool),
    ("order_is_digital", T::Bool),
    ("channel_id", T::Int),
    ("refunded_amount", T::Money),
    ("store_credit_amount", T::Money),
    ("gift_certificate_amount", T::Money),
];

fn update(d: &mut StoreData, oid: u64, ctx: &Ctx<'_>) -> Result<Reply, ApiError> {
    let body = body_object(ctx.body)?;
    super::api::max_len(&body, "staff_notes", 65535)?;
    super::api::max_len(&body, "ip_address", 30)?;
    let status = match body.get("status_id") {
        Some(v) => {
            let s = int_value(v).ok_or_else(|| ApiError::invalid("status_id", "The value must be an integer."))?;
            Some((s, status_name(s).ok_or_else(|| ApiError::invalid("status_id", format!("There is no order status {s}.")))?))
        }
        None => None,
    };
    if let Some(v) = body.get("customer_id") {
        let c = int_value(v).ok_or_else(|| ApiError::invalid("customer_id", "The value must be an integer."))?;
        if c != 0 && u64::try_from(c).ok().and_then(|i| d.customers.get(i)).is_none() {
            return Err(ApiError::invalid("customer_id", format!("The customer with ID {c} does not exist.")));
        }
    }
    let billing = match body.get("billing_address") {
        Some(v) => Some(address_from("billing_address", v)?),
        None => None,
    };
    let created = match body.get("date_created") {
        Some(v) => Some(v.as_str().and_then(super::fmt::parse_date).ok_or_else(|| ApiError::invalid("date_created", "The value must be an RFC 2822 date."))?),
        None => None,
    };
    let mut money_changes = Vec::new();
    for f in ["base_shipping_cost", "shipping_cost_ex_tax", "discount_amount"] {
        if let Some(v) = body.get(f) {
            money_changes.push((f, parse_money(v).ok_or_else(|| ApiError::invalid(f, "The value must be a decimal number."))?));
        }
    }
    let lines: Vec<(f64, i64)> = d
        .order_products
        .of(oid)
        .map(|l| (l.num("price_ex_tax").unwrap_or(0.0), l.int("quantity").unwrap_or(0)))
        .collect();
    let r = d.orders.get_mut(oid).ok_or_else(ApiError::not_found)?;
    let old_status = r.int("status_id");
    let mut v = r.value.clone();
    apply(&mut v, &body, ORDER_TEXT_FIELDS)?;
    if let Some(c) = body.get("customer_id").and_then(int_value) {
        v.insert("customer_id".into(), json!(c));
    }
    if let Some((s, name)) = status {
        v.insert("status_id".into(), json!(s));
        v.insert("status".into(), json!(name));
        v.insert("custom_status".into(), json!(name));
        v.insert("payment_status".into(), json!(payment_status(s)));
    }
    if let Some(b) = billing {
        if let Some(Value::Object(old)) = v.get_mut("billing_address") {
            for (k, val) in b {
                old.insert(k, val);
            }
        }
    }
    if let Some(t) = created {
        v.insert("date_created".into(), json!(rfc2822(t)));
        r.created = t;
    }
    if !money_changes.is_empty() {
        let num = |v: &Map<String, Value>, f: &str| v.get(f).and_then(parse_money).unwrap_or(0.0);
        let subtotal_ex: f64 = lines.iter().map(|(p, q)| p * *q as f64).sum();
        let old_sub_ex = num(&v, "subtotal_ex_tax");
        let old_ship_ex = num(&v, "shipping_cost_ex_tax");
        let rate = if old_sub_ex > 0.0 {
            num(&v, "subtotal_tax") / old_sub_ex
        } else if old_ship_ex > 0.0 {
            num(&v, "shipping_cost_tax") / old_ship_ex
        } else {
            0.0
        };
        let mut shipping_ex = old_ship_ex;
        let mut discount = num(&v, "discount_amount");
        for (f, x) in money_changes {
            match f {
                "discount_amount" => discount = x,
                _ => shipping_ex = x,
            }
        }
        v.insert("discount_amount".into(), json!(money(discount)));
        let coupon = num(&v, "coupon_discount");
        let items = lines.iter().map(|l| l.1).sum();
        set_totals(
            &mut v,
            &Totals { subtotal_ex, subtotal_tax: subtotal_ex * rate, shipping_ex, shipping_tax: shipping_ex * rate, discount: discount + coupon, items },
        );
    }
    r.modified = ctx.now.max(r.modified);
    v.insert("date_modified".into(), json!(rfc2822(r.modified)));
    r.value = v;
    r.refresh();
    d.emit(events::ORDER_UPDATED, oid);
    status_changed(d, oid, old_status);
    let r = d.orders.get(oid).ok_or_else(ApiError::not_found)?;
    Ok(Reply::record(StatusCode::OK, r, ctx.base))
}

/// Marks an order modified (a write to one of its sub-resources).
fn touch(d: &mut StoreData, oid: u64, now: i64) {
    if let Some(r) = d.orders.get_mut(oid) {
        r.modified = now.max(r.modified);
        r.value.insert("date_modified".into(), json!(rfc2822(r.modified)));
        r.refresh();
        d.emit(events::ORDER_UPDATED, oid);
    }
}

/// Emits `store/order/statusUpdated` when the order's status is no longer `before`.
fn status_changed(d: &mut StoreData, oid: u64, before: Option<i64>) {
    let now = d.orders.get(oid).and_then(|r| r.int("status_id"));
    if let (Some(previous), Some(new)) = (before, now) {
        if previous != new {
            d.events.push(Event { scope: events::ORDER_STATUS_UPDATED, id: oid, status: Some((previous, new)) });
        }
    }
}

fn paged_list<'a>(rows: impl Iterator<Item = &'a Record>, ctx: &Ctx<'_>) -> Result<Reply, ApiError> {
    let (page, limit) = ctx.query.paging()?;
    Ok(Reply::list(select(rows, &[], None, page, limit), ctx.base))
}

fn sub(d: &mut Data<'_>, m: &Method, oid: u64, segs: &[&str], ctx: &Ctx<'_>) -> Result<Reply, ApiError> {
    let kind = segs[0].strip_suffix(".json").unwrap_or(segs[0]);
    match (kind, segs.len(), m) {
        ("products", 1, &Method::GET) => paged_list(d.get().order_products.of(oid), ctx),
        ("products", 2, &Method::GET) => {
            let r = d.get().order_products.get(oid, id(segs[1])?).ok_or_else(ApiError::not_found)?;
            Ok(Reply::record(StatusCode::OK, r, ctx.base))
        }
        ("shipping_addresses" | "shippingaddresses", 1, &Method::GET) => paged_list(d.get().order_addresses.of(oid), ctx),
        ("shipping_addresses" | "shippingaddresses", 2, &Method::GET) => {
            let r = d.get().order_addresses.get(oid, id(segs[1])?).ok_or_else(ApiError::not_found)?;
            Ok(Reply::record(StatusCode::OK, r, ctx.base))
        }
        ("shipping_addresses" | "shippingaddresses", 2, &Method::PUT) => {
            let aid = id(segs[1])?;
            let body = body_object(ctx.body)?;
            let d = d.get_mut()?;
            let r = d.order_addresses.get_mut(oid, aid).ok_or_else(ApiError::not_found)?;
            let mut v = r.value.clone();
            apply(&mut v, &body, ADDRESS_FIELDS)?;
            apply(&mut v, &body, &[("shipping_method", T::Str)])?;
            r.value = v;
            r.modified = ctx.now;
            r.refresh();
            touch(d, oid, ctx.now);
            let r = d.order_addresses.get(oid, aid).ok_or_else(ApiError::not_found)?;
            Ok(Reply::record(StatusCode::OK, r, ctx.base))
        }
        ("coupons", 1, &Method::GET) => paged_list(d.get().order_coupons.of(oid), ctx),
        ("messages", 1, &Method::GET) => paged_list(d.get().order_messages.of(oid), ctx),
        ("taxes", 1, &Method::GET) => paged_list(d.get().order_taxes.of(oid), ctx),
        ("shipments", 1, &Method::GET) => paged_list(d.get().shipments.of(oid), ctx),
        ("shipments", 1, &Method::POST) => create_shipment(d.get_mut()?, oid, ctx),
        ("shipments", 1, &Method::DELETE) => {
            let d = d.get_mut()?;
            d.shipments.remove_parent(oid);
            touch(d, oid, ctx.now);
            Ok(Reply::no_content())
        }
        ("shipments", 2, &Method::GET) if segs[1] == "count" => Ok(Reply::count(d.get().shipments.count(oid))),
        ("shipments", 2, &Method::GET) => {
            let r = d.get().shipments.get(oid, id(segs[1])?).ok_or_else(ApiError::not_found)?;
            Ok(Reply::record(StatusCode::OK, r, ctx.base))
        }
        ("shipments", 2, &Method::PUT) => update_shipment(d.get_mut()?, oid, id(segs[1])?, ctx),
        ("shipments", 2, &Method::DELETE) => {
            let d = d.get_mut()?;
            d.shipments.remove(oid, id(segs[1])?).ok_or_else(ApiError::not_found)?;
            touch(d, oid, ctx.now);
            Ok(Reply::no_content())
        }
        ("products" | "shipping_addresses" | "shippingaddresses" | "coupons" | "messages" | "taxes" | "shipments", 1 | 2, _) => not_allowed(),
        _ => Err(ApiError::not_found()),
    }
}

fn provider_name(p: &str) -> &'static str {
    match p {
        "auspost" => "Australia Post",
        "canadapost" => "Canada Post",
        "endicia" => "Endicia",
        "usps" => "USPS",
        "fedex" => "FedEx",
        "ups" | "upsready" | "upsonline" => "UPS",
        "shipperhq" => "ShipperHQ",
        "royalmail" => "Royal Mail",
        _ => "",
    }
}

fn tracking_link(p: &str, number: &str) -> String {
    if number.is_empty() {
        return String::new();
    }
    match p {
        "usps" => format!("https://tools.usps.com/go/TrackConfirmAction?tLabels={number}"),
        "ups" | "upsready" | "upsonline" => format!("https://www.ups.com/track?tracknum={number}"),
        "fedex" => format!("https://www.fedex.com/fedextrack/?trknbr={number}"),
        _ => String::new(),
    }
}

const SHIPMENT_FIELDS: &[(&str, T)] = &[
    ("tracking_number", T::Str),
    ("merchant_shipping_cost", T::Money),
    ("shipping_method", T::Str),
    ("shipping_provider", T::Str),
    ("tracking_carrier", T::Str),
    ("tracking_link", T::Str),
    ("comments", T::Str),
];

/// A shipment record; `items` are `(order_product_id, product_id, quantity)`.
pub(crate) fn shipment_value(
    d: &StoreData,
    sid: u64,
    oid: u64,
    address_id: u64,
    created: i64,
    items: &[(u64, i64, i64)],
    fields: &Map<String, Value>,
) -> Map<String, Value> {
    let order = d.orders.get(oid);
    let customer_id = order.and_then(|o| o.int("customer_id")).unwrap_or(0);
    let mut billing = order.and_then(|o| o.value.get("billing_address")).and_then(Value::as_object).cloned().unwrap_or_default();
    billing.remove("form_fields");
    let shipping = d.order_addresses.get(oid, address_id).map(|a| address_fields(&a.value)).unwrap_or_default();
    let method = d.order_addresses.get(oid, address_id).map(|a| a.str("shipping_method").to_string()).unwrap_or_default();
    let mut v = obj(json!({
        "id": sid,
        "order_id": oid,
        "customer_id": customer_id,
        "order_address_id": address_id,
        "date_created": rfc2822(created),
        "tracking_number": "",
        "merchant_shipping_cost": "0.0000",
        "shipping_method": method,
        "shipping_provider": "",
        "tracking_carrier": "",
        "tracking_link": "",
        "comments": "",
    }));
    for (k, val) in fields {
        v.insert(k.clone(), val.clone());
    }
    let provider = v.get("shipping_provider").and_then(Value::as_str).unwrap_or("").to_string();
    let number = v.get("tracking_number").and_then(Value::as_str).unwrap_or("").to_string();
    v.insert("billing_address".into(), Value::Object(billing));
    v.insert("shipping_address".into(), Value::Object(shipping));
    v.insert(
        "items".into(),
        Value::Array(items.iter().map(|(op, p, q)| json!({ "order_product_id": op, "product_id": p, "quantity": q })).collect()),
    );
    v.insert("shipping_provider_display_name".into(), json!(provider_name(&provider)));
    v.insert("generated_tracking_link".into(), json!(tracking_link(&provider, &number)));
    v
}

fn create_shipment(d: &mut StoreData, oid: u64, ctx: &Ctx<'_>) -> Result<Reply, ApiError> {
    let body = body_object(ctx.body)?;
    require(&body, &["order_address_id", "items"])?;
    super::api::max_len(&body, "tracking_number", 50)?;
    super::api::max_len(&body, "tracking_link", 500)?;
    let address_id = uint_value(&body["order_address_id"]).ok_or_else(|| ApiError::invalid("order_address_id", "The value must be an integer."))?;
    if d.order_addresses.get(oid, address_id).is_none() {
        return Err(ApiError::invalid("order_address_id", format!("The order has no address {address_id}.")));
    }
    let Value::Array(raw_items) = &body["items"] else {
        return Err(ApiError::invalid("items", "The value must be an array."));
    };
    if raw_items.is_empty() {
        return Err(ApiError::invalid("items", "A shipment needs at least one item."));
    }
    let mut items = Vec::new();
    for it in raw_items {
        let op = it.get("order_product_id").and_then(uint_value).ok_or_else(|| ApiError::missing("items.order_product_id"))?;
        let q = it.get("quantity").and_then(int_value).ok_or_else(|| ApiError::missing("items.quantity"))?;
        let line = d.order_products.get(oid, op).ok_or_else(|| ApiError::invalid("items.order_product_id", format!("The order has no product {op}.")))?;
        let left = line.int("quantity").unwrap_or(0) - line.int("quantity_shipped").unwrap_or(0);
        if q < 1 || q > left {
            return Err(ApiError::invalid("items.quantity", format!("Order product {op} has {left} item(s) left to ship.")));
        }
        items.push((op, line.int("product_id").unwrap_or(0), q));
    }
    let mut fields = Map::new();
    apply(&mut fields, &body, SHIPMENT_FIELDS)?;
    let sid = d.shipments.alloc();
    let v = shipment_value(d, sid, oid, address_id, ctx.now, &items, &fields);
    d.shipments.insert(oid, Record::new(sid, ctx.now, ctx.now, v));

    // The vendor updates the shipped quantities and the order status.
    let mut shipped_now = 0;
    for (op, _, q) in &items {
        if let Some(l) = d.order_products.get_mut(oid, *op) {
            let s = l.int("quantity_shipped").unwrap_or(0) + q;
            l.value.insert("quantity_shipped".into(), json!(s));
            l.refresh();
            shipped_now += q;
        }
    }
    if let Some(a) = d.order_addresses.get_mut(oid, address_id) {
        let s = a.int("items_shipped").unwrap_or(0) + shipped_now;
        a.value.insert("items_shipped".into(), json!(s));
        a.refresh();
    }
    let all_shipped = d.order_products.of(oid).all(|l| l.int("quantity_shipped") >= l.int("quantity"));
    let old_status = d.orders.get(oid).and_then(|o| o.int("status_id"));
    if let Some(o) = d.orders.get_mut(oid) {
        let s = o.int("items_shipped").unwrap_or(0) + shipped_now;
        o.value.insert("items_shipped".into(), json!(s));
        let (st, name) = if all_shipped { (2, "Shipped") } else { (3, "Partially Shipped") };
        o.value.insert("status_id".into(), json!(st));
        o.value.insert("status".into(), json!(name));
        o.value.insert("custom_status".into(), json!(name));
        o.value.insert("date_shipped".into(), json!(rfc2822(ctx.now)));
    }
    touch(d, oid, ctx.now);
    status_changed(d, oid, old_status);
    let r = d.shipments.get(oid, sid).ok_or_else(ApiError::not_found)?;
    Ok(Reply::record(api::CREATED, r, ctx.base))
}

fn update_shipment(d: &mut StoreData, oid: u64, sid: u64, ctx: &Ctx<'_>) -> Result<Reply, ApiError> {
    let body = body_object(ctx.body)?;
    super::api::max_len(&body, "tracking_link", 500)?;
    let mut fields = Map::new();
    apply(&mut fields, &body, SHIPMENT_FIELDS)?;
    let old = d.shipments.get(oid, sid).ok_or_else(ApiError::not_found)?;
    let mut address_id = old.int("order_address_id").unwrap_or(0) as u64;
    if let Some(v) = body.get("order_address_id") {
        let a = uint_value(v).ok_or_else(|| ApiError::invalid("order_address_id", "The value must be an integer."))?;
        if d.order_addresses.get(oid, a).is_none() {
            return Err(ApiError::invalid("order_address_id", format!("The order has no address {a}.")));
        }
        address_id = a;
    }
    let items: Vec<(u64, i64, i64)> = old
        .value
        .get("items")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .map(|i| {
                    (
                        i["order_product_id"].as_u64().unwrap_or(0),
                        i["product_id"].as_i64().unwrap_or(0),
                        i["quantity"].as_i64().unwrap_or(0),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    let mut merged = Map::new();
    for (k, _) in SHIPMENT_FIELDS {
        if let Some(v) = old.value.get(*k) {
            merged.insert((*k).to_string(), v.clone());
        }
    }
    merged.extend(fields);
    let created = old.created;
    let v = shipment_value(d, sid, oid, address_id, created, &items, &merged);
    let r = d.shipments.get_mut(oid, sid).ok_or_else(ApiError::not_found)?;
    r.value = v;
    r.modified = ctx.now;
    r.refresh();
    touch(d, oid, ctx.now);
    let r = d.shipments.get(oid, sid).ok_or_else(ApiError::not_found)?;
    Ok(Reply::record(StatusCode::OK, r, ctx.base))
}
