//! `/customers`, `/customers/{id}/addresses` and `/customer_groups`.

use http::{Method, StatusCode};
use serde_json::{json, Map, Value};

use super::api::{apply, body_object, id, int_value, not_allowed, require, valid_email, Ctx, Data, CREATED, T};
use super::data::StoreData;
use super::events;
use super::fmt::{iso8601, rfc2822};
use super::orders::fill_country;
use super::query::{filters, matches, select, F};
use super::table::{link, obj, ApiError, Record, Reply};

const CUSTOMER_FIELDS: &[(&str, T)] = &[
    ("company", T::Str),
    ("first_name", T::Str),
    ("last_name", T::Str),
    ("email", T::Str),
    ("phone", T::Str),
    ("store_credit", T::Money),
    ("registration_ip_address", T::Str),
    ("customer_group_id", T::Int),
    ("notes", T::Str),
    ("tax_exempt_category", T::Str),
    ("reset_pass_on_login", T::Bool),
    ("accepts_marketing", T::Bool),
];

/// A customer record from its writable fields (defaults for the rest).
pub(crate) fn customer_value(id: u64, created: i64, modified: i64, input: &Map<String, Value>) -> Map<String, Value> {
    let s = |f: &str| input.get(f).cloned().unwrap_or_else(|| json!(""));
    obj(json!({
        "id": id,
        "company": s("company"),
        "first_name": s("first_name"),
        "last_name": s("last_name"),
        "email": s("email"),
        "phone": s("phone"),
        "form_fields": null,
        "date_created": rfc2822(created),
        "date_modified": rfc2822(modified),
        "store_credit": input.get("store_credit").cloned().unwrap_or_else(|| json!("0.0000")),
        "registration_ip_address": s("registration_ip_address"),
        "customer_group_id": input.get("customer_group_id").cloned().unwrap_or_else(|| json!(0)),
        "notes": s("notes"),
        "tax_exempt_category": s("tax_exempt_category"),
        "reset_pass_on_login": input.get("reset_pass_on_login").cloned().unwrap_or(json!(false)),
        "accepts_marketing": input.get("accepts_marketing").cloned().unwrap_or(json!(false)),
        "addresses": link(format!("/customers/{id}/addresses")),
    }))
}

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
    ("address_type", T::Str),
];

pub(crate) fn address_value(id: u64, customer_id: u64, input: &Map<String, Value>) -> Map<String, Value> {
    let mut a = input.clone();
    fill_country(&mut a);
    let s = |f: &str| a.get(f).cloned().unwrap_or_else(|| json!(""));
    obj(json!({
        "id": id,
        "customer_id": customer_id,
        "first_name": s("first_name"),
        "last_name": s("last_name"),
        "company": s("company"),
        "street_1": s("street_1"),
        "street_2": s("street_2"),
        "city": s("city"),
        "state": s("state"),
        "zip": s("zip"),
        "country": s("country"),
        "country_iso2": s("country_iso2"),
        "phone": s("phone"),
        "address_type": a.get("address_type").cloned().unwrap_or_else(|| json!("residential")),
    }))
}

const GROUP_FIELDS: &[(&str, T)] = &[
    ("name", T::Str),
    ("is_default", T::Bool),
    ("category_access", T::Object),
    ("discount_rules", T::Array),
    ("is_group_for_guests", T::Bool),
];

pub(crate) fn group_value(id: u64, created: i64, modified: i64, input: &Map<String, Value>) -> Map<String, Value> {
    obj(json!({
        "id": id,
        "name": input.get("name").cloned().unwrap_or_else(|| json!("")),
        "is_default": input.get("is_default").cloned().unwrap_or(json!(false)),
        "category_access": input.get("category_access").cloned().unwrap_or_else(|| json!({ "type": "all" })),
        "discount_rules": input.get("discount_rules").cloned().unwrap_or_else(|| json!([])),
        "date_created": iso8601(created),
        "date_modified": iso8601(modified),
        "is_group_for_guests": input.get("is_group_for_guests").cloned().unwrap_or(json!(false)),
    }))
}

const CUSTOMER_FILTERS: &[(&str, F)] = &[
    ("first_name", F::Text("first_name")),
    ("last_name", F::Text("last_name")),
    ("company", F::Text("company")),
    ("email", F::TextCi("email")),
    ("phone", F::Text("phone")),
    ("store_credit", F::Text("store_credit")),
    ("customer_group_id", F::Int("customer_group_id")),
    ("min_id", F::MinId),
    ("max_id", F::MaxId),
    ("min_date_created", F::MinCreated),
    ("max_date_created", F::MaxCreated),
    ("min_date_modified", F::MinModified),
    ("max_date_modified", F::MaxModified),
    ("tax_exempt_category", F::Text("tax_exempt_category")),
];

const GROUP_FILTERS: &[(&str, F)] = &[
    ("name", F::Text("name")),
    ("name:like", F::Keyword(&["name"])),
    ("is_default", F::Bool("is_default")),
    ("is_group_for_guests", F::Bool("is_group_for_guests")),
    ("date_created:min", F::MinCreated),
    ("date_created:max", F::MaxCreated),
    ("date_modified:min", F::MinModified),
    ("date_modified:max", F::MaxModified),
];

pub(crate) fn route(d: &mut Data<'_>, method: &Method, segs: &[&str], ctx: &Ctx<'_>) -> Result<Reply, ApiError> {
    if segs[0] == "customer_groups" {
        return groups(d, method, segs, ctx);
    }
    match (segs.len(), method) {
        (1, &Method::GET) => {
            let (page, limit) = ctx.query.paging()?;
            let preds = filters(&ctx.query, CUSTOMER_FILTERS)?;
            Ok(Reply::list(select(d.get().customers.iter(), &preds, None, page, limit), ctx.base))
        }
        (1, &Method::POST) => create_customer(d.get_mut()?, ctx),
        (1, &Method::DELETE) => {
            let d = d.get_mut()?;
            let preds = filters(&ctx.query, CUSTOMER_FILTERS)?;
            let ids: Vec<u64> = d.customers.iter().filter(|r| matches(r, &preds)).map(|r| r.id).collect();
            for cid in ids {
                d.customers.rows.remove(&cid);
                d.addresses.remove_parent(cid);
                d.emit(events::CUSTOMER_DELETED, cid);
            }
            Ok(Reply::no_content())
        }
        (1, _) => not_allowed(),
        (2, &Method::GET) if segs[1] == "count" => {
            let preds = filters(&ctx.query, CUSTOMER_FILTERS)?;
            Ok(Reply::count(d.get().customers.iter().filter(|r| matches(r, &preds)).count()))
        }
        (2, _) if segs[1] == "count" => not_allowed(),
        (2, m) => {
            let cid = id(segs[1])?;
            match *m {
                Method::GET => Ok(Reply::record(StatusCode::OK, d.get().customers.get(cid).ok_or_else(ApiError::not_found)?, ctx.base)),
                Method::PUT => update_customer(d.get_mut()?, cid, ctx),
                Method::DELETE => {
                    let d = d.get_mut()?;
                    d.customers.rows.remove(&cid).ok_or_else(ApiError::not_found)?;
                    d.addresses.remove_parent(cid);
                    d.emit(events::CUSTOMER_DELETED, cid);
                    Ok(Reply::no_content())
                }
                _ => not_allowed(),
            }
        }
        (_, m) if segs[2] == "addresses" && segs.len() <= 4 => {
            let cid = id(segs[1])?;
            if d.get().customers.get(cid).is_none() {
                return Err(ApiError::not_found());
            }
            addresses(d, m, cid, &segs[3..], ctx)
        }
        _ => Err(ApiError::not_found()),
    }
}

/// Checks a customer body: e-mail syntax and uniqueness, group existence.
fn check_customer(d: &StoreData, body: &Map<String, Value>, own_id: Option<u64>) -> Result<(), ApiError> {
    super::api::max_len(body, "first_name", 255)?;
    super::api::max_len(body, "last_name", 255)?;
    super::api::max_len(body, "email", 255)?;
    if let Some(v) = body.get("email") {
        let email = v.as_str().ok_or_else(|| ApiError::invalid("email", "The value must be a string."))?;
        if !valid_email(email) {
            return Err(ApiError::invalid("email", format!("'{email}' is not a valid email address.")));
        }
        let lower = email.to_lowercase();
        if let Some(other) = d.customers.iter().find(|c| c.str("email").to_lowercase() == lower && Some(c.id) != own_id) {
            return Err(ApiError::conflict(
                format!("The customer with email '{email}' already exists."),
                format!("Another customer with the email address '{email}' already exists (customer {}).", other.id),
            ));
        }
    }
    if let Some(v) = body.get("customer_group_id") {
        let g = int_value(v).ok_or_else(|| ApiError::invalid("customer_group_id", "The value must be an integer."))?;
        if g != 0 && u64::try_from(g).ok().and_then(|g| d.groups.get(g)).is_none() {
            return Err(ApiError::invalid("customer_group_id", format!("There is no customer group {g}.")));
        }
    }
    Ok(())
}

fn create_customer(d: &mut StoreData, ctx: &Ctx<'_>) -> Result<Reply, ApiError> {
    let body = body_object(ctx.body)?;
    require(&body, &["first_name", "last_name", "email"])?;
    check_customer(d, &body, None)?;
    let mut input = Map::new();
    apply(&mut input, &body, CUSTOMER_FIELDS)?;
    // Addresses are checked before anything is inserted, so a bad one leaves no customer behind.
    let mut addresses = Vec::new();
    if let Some(Value::Array(addrs)) = body.get("addresses") {
        for a in addrs.iter().filter_map(Value::as_object) {
            let mut input = Map::new();
            apply(&mut input, a, ADDRESS_FIELDS)?;
            addresses.push(input);
        }
    }
    let cid = d.customers.alloc();
    let v = customer_value(cid, ctx.now, ctx.now, &input);
    d.customers.insert(Record::new(cid, ctx.now, ctx.now, v));
    for input in addresses {
        let aid = d.addresses.alloc();
        let av = address_value(aid, cid, &input);
        d.addresses.insert(cid, Record::new(aid, ctx.now, ctx.now, av));
    }
    d.emit(events::CUSTOMER_CREATED, cid);
    Ok(Reply::record(CREATED, d.customers.get(cid).ok_or_else(ApiError::not_found)?, ctx.base))
}

fn update_customer(d: &mut StoreData, cid: u64, ctx: &Ctx<'_>) -> Result<Reply, ApiError> {
    let body = body_object(ctx.body)?;
    if d.customers.get(cid).is_none() {
        return Err(ApiError::not_found());
    }
    for f in ["first_name", "last_name", "email"] {
        if matches!(body.get(f), Some(Value::String(s)) if s.trim().is_empty()) {
            return Err(ApiError::invalid(f, "The value must not be empty."));
        }
    }
    check_customer(d, &body, Some(cid))?;
    let r = d.customers.get_mut(cid).ok_or_else(ApiError::not_found)?;
    let mut v = r.value.clone();
    apply(&mut v, &body, CUSTOMER_FIELDS)?;
    touch_value(r, v, ctx.now);
    d.emit(events::CUSTOMER_UPDATED, cid);
    Ok(Reply::record(StatusCode::OK, d.customers.get(cid).ok_or_else(ApiError::not_found)?, ctx.base))
}

/// Replaces a record's value and moves its `date_modified` to `now`.
fn touch_value(r: &mut Record, mut v: Map<String, Value>, now: i64) {
    r.modified = now.max(r.modified);
    v.insert("date_modified".into(), json!(rfc2822(r.modified)));
    r.value = v;
    r.refresh();
}

fn touch_customer(d: &mut StoreData, cid: u64, now: i64) {
    if let Some(r) = d.customers.get_mut(cid) {
        let v = r.value.clone();
        touch_value(r, v, now);
    }
}

fn addresses(d: &mut Data<'_>, m: &Method, cid: u64, segs: &[&str], ctx: &Ctx<'_>) -> Result<Reply, ApiError> {
    const REQUIRED: &[&str] = &["first_name", "last_name", "street_1", "city", "zip", "country", "phone"];
    match (segs.len(), m) {
        (0, &Method::GET) => {
            let (page, limit) = ctx.query.paging()?;
            Ok(Reply::list(select(d.get().addresses.of(cid), &[], None, page, limit), ctx.base))
        }
        (0, &Method::POST) => {
            let body = body_object(ctx.body)?;
            require(&body, REQUIRED)?;
            check_address(&body)?;
            // A state only where the country has a states list (`/countries/{id}/states`).
            if body.get("country").and_then(Value::as_str).and_then(super::geo::country).is_some_and(super::geo::has_states) {
                require(&body, &["state"])?;
            }
            let mut input = Map::new();
            apply(&mut input, &body, ADDRESS_FIELDS)?;
            let d = d.get_mut()?;
            let aid = d.addresses.alloc();
            let v = address_value(aid, cid, &input);
            d.addresses.insert(cid, Record::new(aid, ctx.now, ctx.now, v));
            touch_customer(d, cid, ctx.now);
            Ok(Reply::record(CREATED, d.addresses.get(cid, aid).ok_or_else(ApiError::not_found)?, ctx.base))
        }
        (0, &Method::DELETE) => {
            let d = d.get_mut()?;
            d.addresses.remove_parent(cid);
            touch_customer(d, cid, ctx.now);
            Ok(Reply::no_content())
        }
        (0, _) => not_allowed(),
        (1, &Method::GET) if segs[0] == "count" => Ok(Reply::count(d.get().addresses.count(cid))),
        (1, _) if segs[0] == "count" => not_allowed(),
        (1, m) => {
            let aid = id(segs[0])?;
            match *m {
                Method::GET => Ok(Reply::record(StatusCode::OK, d.get().addresses.get(cid, aid).ok_or_else(ApiError::not_found)?, ctx.base)),
                Method::PUT => {
                    let body = body_object(ctx.body)?;
                    check_address(&body)?;
                    let d = d.get_mut()?;
                    let r = d.addresses.get_mut(cid, aid).ok_or_else(ApiError::not_found)?;
                    let mut v = r.value.clone();
                    apply(&mut v, &body, ADDRESS_FIELDS)?;
                    if body.contains_key("country") && !body.contains_key("country_iso2") {
                        v.insert("country_iso2".into(), json!(""));
                    }
                    fill_country(&mut v);
                    r.value = v;
                    r.modified = ctx.now;
                    r.refresh();
                    touch_customer(d, cid, ctx.now);
                    Ok(Reply::record(StatusCode::OK, d.addresses.get(cid, aid).ok_or_else(ApiError::not_found)?, ctx.base))
                }
                Method::DELETE => {
                    let d = d.get_mut()?;
                    d.addresses.remove(cid, aid).ok_or_else(ApiError::not_found)?;
                    touch_customer(d, cid, ctx.now);
                    Ok(Reply::no_content())
                }
                _ => not_allowed(),
            }
        }
        _ => Err(ApiError::not_found()),
    }
}

fn check_address(body: &Map<String, Value>) -> Result<(), ApiError> {
    if let Some(Value::String(t)) = body.get("address_type") {
        if t != "residential" && t != "commercial" {
            return Err(ApiError::invalid("address_type", "The value must be 'residential' or 'commercial'."));
        }
    }
    if let Some(Value::String(c)) = body.get("country") {
        if super::geo::country(c).is_none() {
            return Err(ApiError::invalid("country", format!("'{c}' is not a known country.")));
        }
    }
    Ok(())
}

fn groups(d: &mut Data<'_>, m: &Method, segs: &[&str], ctx: &Ctx<'_>) -> Result<Reply, ApiError> {
    match (segs.len(), m) {
        (1, &Method::GET) => {
            let (page, limit) = ctx.query.paging()?;
            let preds = filters(&ctx.query, GROUP_FILTERS)?;
            Ok(Reply::list(select(d.get().groups.iter(), &preds, None, page, limit), ctx.base))
        }
        (1, &Method::POST) => {
            let body = body_object(ctx.body)?;
            require(&body, &["name"])?;
            let d = d.get_mut()?;
            check_group(d, &body, None)?;
            let mut input = Map::new();
            apply(&mut input, &body, GROUP_FIELDS)?;
            let gid = d.groups.alloc();
            if input.get("is_default") == Some(&json!(true)) {
                clear_default(d);
            }
            let v = group_value(gid, ctx.now, ctx.now, &input);
            d.groups.insert(Record::new(gid, ctx.now, ctx.now, v));
            Ok(Reply::record(CREATED, d.groups.get(gid).ok_or_else(ApiError::not_found)?, ctx.base))
        }
        (1, &Method::DELETE) => {
            d.get_mut()?.groups.rows.clear();
            Ok(Reply::no_content())
        }
        (1, _) => not_allowed(),
        (2, &Method::GET) if segs[1] == "count" => {
            let preds = filters(&ctx.query, GROUP_FILTERS)?;
            Ok(Reply::count(d.get().groups.iter().filter(|r| matches(r, &preds)).count()))
        }
        (2, _) if segs[1] == "count" => not_allowed(),
        (2, m) => {
            let gid = id(segs[1])?;
            match *m {
                Method::GET => Ok(Reply::record(StatusCode::OK, d.get().groups.get(gid).ok_or_else(ApiError::not_found)?, ctx.base)),
                Method::PUT => {
                    let body = body_object(ctx.body)?;
                    let d = d.get_mut()?;
                    if d.groups.get(gid).is_none() {
                        return Err(ApiError::not_found());
                    }
                    check_group(d, &body, Some(gid))?;
                    if body.get("is_default") == Some(&json!(true)) {
                        clear_default(d);
                    }
                    let r = d.groups.get_mut(gid).ok_or_else(ApiError::not_found)?;
                    let mut v = r.value.clone();
                    apply(&mut v, &body, GROUP_FIELDS)?;
                    r.modified = ctx.now.max(r.modified);
                    v.insert("date_modified".into(), json!(iso8601(r.modified)));
                    r.value = v;
                    r.refresh();
                    Ok(Reply::record(StatusCode::OK, r, ctx.base))
                }
                Method::DELETE => {
                    let d = d.get_mut()?;
                    d.groups.rows.remove(&gid).ok_or_else(ApiError::not_found)?;
                    Ok(Reply::no_content())
                }
                _ => not_allowed(),
            }
        }
        _ => Err(ApiError::not_found()),
    }
}

fn clear_default(d: &mut StoreData) {
    for r in d.groups.rows.values_mut() {
        if r.bool("is_default") {
            r.value.insert("is_default".into(), json!(false));
            r.refresh();
        }
    }
}

fn check_group(d: &StoreData, body: &Map<String, Value>, own: Option<u64>) -> Result<(), ApiError> {
    super::api::max_len(body, "name", 255)?;
    if let Some(v) = body.get("name") {
        let name = v.as_str().ok_or_else(|| ApiError::invalid("name", "The value must be a string."))?;
        if name.trim().is_empty() {
            return Err(ApiError::invalid("name", "The value must not be empty."));
        }
        if d.groups.iter().any(|g| g.str("name").eq_ignore_ascii_case(name) && Some(g.id) != own) {
            return Err(ApiError::conflict(
                format!("The customer group '{name}' already exists."),
                format!("Another customer group is named '{name}'."),
            ));
        }
    }
    if let Some(Value::Object(ca)) = body.get("category_access") {
        match ca.get("type").and_then(Value::as_str) {
            Some("all" | "specific" | "none") => {}
            _ => return Err(ApiError::invalid("category_access", "The type must be 'all', 'specific' or 'none'.")),
        }
    }
    Ok(())
}
