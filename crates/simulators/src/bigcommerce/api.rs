//! Dispatch of an authenticated API call to its resource, and the request-body helpers
//! the resources share.

use http::{Method, StatusCode};
use serde_json::{json, Map, Value};

use super::data::StoreData;
use super::events::Event;
use super::fmt;
use super::query::Query;
use super::table::{ApiError, Reply};
use super::{catalog, customers, geo, orders, read, write, StoreState};

/// What a resource handler sees of the request.
pub(crate) struct Ctx<'a> {
    /// `http://HOST/stores/{hash}/api/v2` (or `/v2` in token mode).
    pub(crate) base: &'a str,
    pub(crate) now: i64,
    pub(crate) query: Query,
    pub(crate) body: &'a [u8],
}

/// Routes `segs` (the path after the base, split on `/`) to a resource; gives the answer
/// and the changes it made, for the webhooks (none when it failed).
pub(crate) fn dispatch(store: &StoreState, method: &Method, segs: &[&str], ctx: &Ctx<'_>) -> (Reply, Vec<Event>) {
    let read_only = method == Method::GET || method == Method::HEAD;
    let mut events = Vec::new();
    let result = match segs.first().copied() {
        Some("time") if segs.len() == 1 => {
            if read_only {
                Ok(Reply::ok(&json!({ "time": ctx.now })))
            } else {
                Err(ApiError::method_not_allowed())
            }
        }
        Some("store") if segs.len() == 1 => {
            if read_only {
                let cfg = read(&store.cfg);
                let data = read(&store.data);
                Ok(Reply::ok(&store_info(&data, &cfg.hash)))
            } else {
                Err(ApiError::method_not_allowed())
            }
        }
        Some(_) if read_only => {
            let data = read(&store.data);
            route(&mut Data::Read(&data), method, segs, ctx)
        }
        Some(_) => {
            let mut data = write(&store.data);
            let result = route(&mut Data::Write(&mut data), method, segs, ctx);
            // Taken under the lock, so each request fires exactly its own changes.
            let changes = std::mem::take(&mut data.events);
            if result.is_ok() {
                events = changes;
            }
            result
        }
        None => Err(ApiError::not_found()),
    };
    (result.unwrap_or_else(Reply::from), events)
}

/// The store data under a read or a write lock.
pub(crate) enum Data<'a> {
    Read(&'a StoreData),
    Write(&'a mut StoreData),
}

impl Data<'_> {
    pub(crate) fn get(&self) -> &StoreData {
        match self {
            Data::Read(d) => d,
            Data::Write(d) => d,
        }
    }

    /// The data for writing; only reached by non-GET methods, which take the write lock.
    pub(crate) fn get_mut(&mut self) -> Result<&mut StoreData, ApiError> {
        match self {
            Data::Write(d) => Ok(d),
            Data::Read(_) => Err(ApiError::method_not_allowed()),
        }
    }
}

fn route(d: &mut Data<'_>, method: &Method, segs: &[&str], ctx: &Ctx<'_>) -> Result<Reply, ApiError> {
    match segs[0] {
        "orders" | "order_statuses" => orders::route(d, method, segs, ctx),
        "customers" | "customer_groups" => customers::route(d, method, segs, ctx),
        "products" | "brands" | "categories" | "options" => catalog::route(d, method, segs, ctx),
        "countries" => geo::route(method, segs, ctx),
        _ => Err(ApiError::not_found()),
    }
}

fn store_info(d: &StoreData, hash: &str) -> Value {
    let i = &d.info;
    let domain = format!("store-{hash}.mybigcommerce.com");
    json!({
        "id": hash,
        "account_uuid": i.account_uuid,
        "domain": domain,
        "secure_url": format!("https://{domain}"),
        "control_panel_base_url": format!("https://{domain}"),
        "status": "live",
        "name": i.name,
        "first_name": i.first_name,
        "last_name": i.last_name,
        "address": i.address,
        "country": "United States",
        "country_code": "US",
        "infrastructure_region": "us-central1",
        "phone": i.phone,
        "admin_email": i.admin_email,
        "order_email": i.admin_email,
        "favicon_url": format!("https://cdn11.bigcommerce.com/s-{hash}/product_images/default_favicon.ico"),
        "timezone": {
            "name": "America/Chicago",
            "raw_offset": -21600,
            "dst_offset": -18000,
            "dst_correction": true,
            "date_format": {
                "display": "M jS Y",
                "export": "M jS Y",
                "extended_display": "M jS Y @ g:i A"
            }
        },
        "language": "en",
        "currency": "USD",
        "currency_symbol": "$",
        "decimal_separator": ".",
        "thousands_separator": ",",
        "decimal_places": 2,
        "currency_symbol_location": "left",
        "weight_units": "LBS",
        "dimension_units": "Inches",
        "dimension_decimal_places": 2,
        "dimension_decimal_token": ".",
        "dimension_thousands_token": ",",
        "plan_name": "Standard",
        "plan_level": "Standard",
        "plan_is_trial": false,
        "industry": "Home & Garden",
        "logo": [],
        "is_price_entered_with_tax": false,
        "store_id": i.store_id,
        "default_channel_id": 1,
        "default_site_id": 1000,
        "active_comparison_modules": [],
        "features": {
            "stencil_enabled": true,
            "sitewidehttps_enabled": true,
            "facebook_catalog_id": "",
            "checkout_type": "optimized",
            "wishlists_enabled": true,
            "graphql_storefront_api_enabled": true,
            "shopper_consent_tracking_enabled": false,
            "multi_storefront_enabled": false,
            "storefront_limits": { "active": 1, "total_including_inactive": 1 }
        }
    })
}

/// A path id: anything but a positive number is a 404, as with the vendor.
pub(crate) fn id(seg: &str) -> Result<u64, ApiError> {
    seg.parse::<u64>().ok().filter(|i| *i > 0).ok_or_else(ApiError::not_found)
}

/// The JSON object of a request body.
pub(crate) fn body_object(body: &[u8]) -> Result<Map<String, Value>, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::bad_request("The request body is empty; a JSON object was expected."));
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(ApiError::bad_request("The request body must be a JSON object.")),
        Err(e) => Err(ApiError::bad_request(format!("The request body is not valid JSON: {e}."))),
    }
}

/// The type a writable field must have.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum T {
    Str,
    Int,
    Bool,
    /// A number or decimal string, stored as `"12.5000"`.
    Money,
    /// Any JSON array.
    Array,
    /// An array of integers.
    IntArray,
    Object,
    /// A date in any accepted form, stored as RFC 2822.
    Date,
}

/// An integer as the v2 API reads one: a JSON integer or a numeric string (`"12"`), as
/// the vendor accepted wherever it documents an integer.
pub(crate) fn int_value(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// [`int_value`], not negative.
pub(crate) fn uint_value(v: &Value) -> Option<u64> {
    int_value(v).and_then(|i| u64::try_from(i).ok())
}

/// Checks one value against `t`, giving what is stored.
pub(crate) fn convert(field: &str, v: &Value, t: T) -> Result<Value, ApiError> {
    let bad = |what: &str| ApiError::invalid(field, format!("The value must be {what}."));
    Ok(match t {
        T::Str => match v {
            Value::String(_) => v.clone(),
            Value::Null => Value::String(String::new()),
            Value::Number(n) => Value::String(n.to_string()),
            _ => return Err(bad("a string")),
        },
        T::Int => match int_value(v) {
            Some(i) => json!(i),
            None => return Err(bad("an integer")),
        },
        T::Bool => match v {
            Value::Bool(_) => v.clone(),
            Value::Number(n) if n.as_i64() == Some(0) || n.as_i64() == Some(1) => Value::Bool(n.as_i64() == Some(1)),
            Value::String(s) if s == "true" || s == "false" => Value::Bool(s == "true"),
            _ => return Err(bad("a boolean")),
        },
        T::Money => match fmt::parse_money(v) {
            Some(f) => Value::String(fmt::money(f)),
            None => return Err(bad("a decimal number")),
        },
        T::Array => match v {
            Value::Array(_) => v.clone(),
            _ => return Err(bad("an array")),
        },
        T::IntArray => match v {
            Value::Array(a) => match a.iter().map(int_value).collect::<Option<Vec<i64>>>() {
                Some(ints) => json!(ints),
                None => return Err(bad("an array of integers")),
            },
            _ => return Err(bad("an array of integers")),
        },
        T::Object => match v {
            Value::Object(_) => v.clone(),
            _ => return Err(bad("an object")),
        },
        T::Date => match v.as_str().and_then(fmt::parse_date) {
            Some(ts) => Value::String(fmt::rfc2822(ts)),
            None => return Err(bad("a date in RFC 2822 or ISO 8601 format")),
        },
    })
}

/// Copies the writable `fields` present in `body` into `target`, checking their types.
/// Fields not listed (read-only or unknown) are ignored.
pub(crate) fn apply(target: &mut Map<String, Value>, body: &Map<String, Value>, fields: &[(&str, T)]) -> Result<(), ApiError> {
    for (name, t) in fields {
        if let Some(v) = body.get(*name) {
            let v = convert(name, v, *t)?;
            target.insert((*name).to_string(), v);
        }
    }
    Ok(())
}

/// Fails with 400 unless every field is present and not blank.
pub(crate) fn require(body: &Map<String, Value>, fields: &[&str]) -> Result<(), ApiError> {
    for f in fields {
        match body.get(*f) {
            None | Some(Value::Null) => return Err(ApiError::missing(f)),
            Some(Value::String(s)) if s.trim().is_empty() => return Err(ApiError::missing(f)),
            _ => {}
        }
    }
    Ok(())
}

/// Length limits of text fields, a 422 when exceeded.
pub(crate) fn max_len(body: &Map<String, Value>, field: &str, max: usize) -> Result<(), ApiError> {
    if let Some(Value::String(s)) = body.get(field) {
        if s.chars().count() > max {
            return Err(ApiError::invalid(field, format!("The value must be at most {max} characters long.")));
        }
    }
    Ok(())
}

/// 405 for a known path with a method it does not support.
pub(crate) fn not_allowed<T>() -> Result<T, ApiError> {
    Err(ApiError::method_not_allowed())
}

pub(crate) const CREATED: StatusCode = StatusCode::CREATED;

/// A very loose e-mail check, as the vendor's.
pub(crate) fn valid_email(s: &str) -> bool {
    let Some((user, domain)) = s.split_once('@') else { return false };
    !user.is_empty() && domain.contains('.') && !domain.starts_with('.') && !domain.ends_with('.') && !s.contains(' ')
}
