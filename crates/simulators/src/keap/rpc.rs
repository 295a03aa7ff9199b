//! `POST /crm/xmlrpc/v1`: the gateway (bearer token, quota and throttle) and the
//! `DataService` methods behind it.

use std::sync::atomic::Ordering;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use axum::body::Body;
use axum::extract::State;
use axum::response::Response;
use bytes::Bytes;
use http::header::{AUTHORIZATION, CONTENT_TYPE};
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use serde_json::json;
use super::xmlrpc::{read_call, write_response, Fault, MethodCall, MethodResponse, Struct, Value};

use super::fault::{self, invalid_parameter, no_field_found, no_table_access, snippet, unknown_table};
use super::oauth::AccessError;
use super::query::{criterion, parse_criteria};
use super::schema::{self, Table};
use super::store::{self, Query};
use super::{lock, read, write, App, KeapSimulator, Window, WindowState};

/// The largest page `query` and `findByField` return.
const MAX_LIMIT: i32 = 1000;

fn gateway_error(status: StatusCode, faultstring: &str, errorcode: &str, headers: Vec<(HeaderName, HeaderValue)>) -> Response {
    let body = json!({ "fault": { "faultstring": faultstring, "detail": { "errorcode": errorcode } } });
    let mut b = Response::builder().status(status).header(CONTENT_TYPE, "application/json");
    for (k, v) in headers {
        b = b.header(k, v);
    }
    b.body(Body::from(body.to_string())).unwrap_or_default()
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    let h = headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = h.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then_some(token.trim()).filter(|t| !t.is_empty())
}

pub(crate) async fn handle(State(sim): State<KeapSimulator>, headers: HeaderMap, body: Bytes) -> Response {
    let checked = match bearer(&headers) {
        Some(t) => lock(&sim.inner.grants).check_access(t),
        None => Err(AccessError::Invalid),
    };
    let app = match checked.map(|client| sim.state(&client)) {
        Ok(Some(app)) => app,
        Err(AccessError::Expired) => {
            return gateway_error(StatusCode::UNAUTHORIZED, "Access Token expired", "keymanagement.service.access_token_expired", vec![]);
        }
        Ok(None) | Err(AccessError::Invalid) => {
            return gateway_error(StatusCode::UNAUTHORIZED, "Invalid Access Token", "keymanagement.service.invalid_access_token", vec![]);
        }
    };
    app.rpc_calls.fetch_add(1, Ordering::Relaxed);
    let (allowed, limit_headers) = take_limits(&app);
    if !allowed {
        return gateway_error(
            StatusCode::TOO_MANY_REQUESTS,
            "Rate limit quota violation. Quota limit exceeded.",
            "policies.ratelimit.QuotaViolation",
            limit_headers,
        );
    }
    let answer = match read_call(&body) {
        Ok(call) => dispatch(&app, &call),
        // The reader's messages quote at most a short snippet, never the document.
        Err(e) => MethodResponse::Fault(Fault::new(fault::GENERIC, format!("Failed to parse XML-RPC request: {e}"))),
    };
    let mut b = Response::builder().status(StatusCode::OK).header(CONTENT_TYPE, "text/xml;charset=UTF-8");
    for (k, v) in limit_headers {
        b = b.header(k, v);
    }
    b.body(Body::from(write_response(&answer))).unwrap_or_default()
}

/// Counts one call against the app's quota and throttle; the headers to send.
fn take_limits(app: &App) -> (bool, Vec<(HeaderName, HeaderValue)>) {
    let limits = read(&app.cfg).limits.clone();
    let now = Instant::now();
    let mut windows = lock(&app.windows);
    let configured = [limits.quota, limits.throttle];
    for (w, state) in configured.iter().zip(windows.iter_mut()) {
        match (w, state.as_ref()) {
            (None, _) => *state = None,
            (Some(w), Some(s)) if now.duration_since(s.start) < w.length() => {}
            (Some(_), _) => *state = Some(WindowState { start: now, start_wall: SystemTime::now(), used: 0 }),
        }
    }
    let allowed = configured.iter().zip(windows.iter()).all(|(w, s)| match (w, s) {
        (Some(w), Some(s)) => s.used < w.limit,
        _ => true,
    });
    if allowed {
        for s in windows.iter_mut().flatten() {
            s.used += 1;
        }
    }
    let mut headers = Vec::new();
    for ((w, s), name) in configured.iter().zip(windows.iter()).zip(["quota", "throttle"]) {
        let (Some(w), Some(s)) = (w, s) else { continue };
        push_window_headers(&mut headers, name, w, s);
    }
    (allowed, headers)
}

fn push_window_headers(out: &mut Vec<(HeaderName, HeaderValue)>, name: &str, w: &Window, s: &WindowState) {
    let mut put = |suffix: &str, value: String| {
        if let (Ok(k), Ok(v)) = (HeaderName::try_from(format!("x-keap-product-{name}-{suffix}")), HeaderValue::try_from(value)) {
            out.push((k, v));
        }
    };
    put("limit", w.limit.to_string());
    put("time-unit", w.unit.as_str().to_owned());
    put("interval", w.interval.max(1).to_string());
    put("available", w.limit.saturating_sub(s.used).to_string());
    put("used", s.used.min(w.limit).to_string());
    if name == "quota" {
        let expiry = (s.start_wall + w.length()).duration_since(UNIX_EPOCH).map(|d| d.as_millis()).unwrap_or(0);
        put("expiry-time", expiry.to_string());
    }
}

// ---------------------------------------------------------------- DataService

const METHODS: [&str; 9] = ["add", "load", "update", "delete", "query", "count", "findByField", "echo", "getAppSetting"];

fn dispatch(app: &App, call: &MethodCall) -> MethodResponse {
    let known = call.method.strip_prefix("DataService.").filter(|m| METHODS.contains(m));
    let Some(method) = known else {
        return MethodResponse::Fault(Fault::new(fault::GENERIC, format!("No such handler: {}", snippet(&call.method))));
    };
    let key_ok = match call.params.first() {
        Some(Value::String(k)) => *k == read(&app.cfg).private_key,
        _ => false,
    };
    if !key_ok {
        return MethodResponse::Fault(fault::invalid_key());
    }
    match run(app, method, &call.params[1..]) {
        Ok(v) => MethodResponse::Success(v),
        Err(f) => MethodResponse::Fault(f),
    }
}

fn arity(method: &str, p: &[Value], allowed: &[usize]) -> Result<(), Fault> {
    // Counts here exclude the key.
    if allowed.contains(&p.len()) {
        Ok(())
    } else {
        let want: Vec<String> = allowed.iter().map(|n| (n + 1).to_string()).collect();
        Err(invalid_parameter(format!("DataService.{method} takes {} parameters, not {}", want.join(" or "), p.len() + 1)))
    }
}

fn text<'a>(p: &'a [Value], i: usize, what: &str) -> Result<&'a str, Fault> {
    p[i].as_str().ok_or_else(|| invalid_parameter(format!("{what} must be a string")))
}

fn int(p: &[Value], i: usize, what: &str) -> Result<i32, Fault> {
    match &p[i] {
        Value::Int(n) => Ok(*n),
        Value::String(s) => s.trim().parse().map_err(|_| invalid_parameter(format!("{what} must be an integer"))),
        _ => Err(invalid_parameter(format!("{what} must be an integer"))),
    }
}

fn members<'a>(p: &'a [Value], i: usize, what: &str) -> Result<&'a Struct, Fault> {
    p[i].as_struct().ok_or_else(|| invalid_parameter(format!("{what} must be a struct")))
}

fn table(p: &[Value], write: Option<&str>) -> Result<&'static Table, Fault> {
    let name = text(p, 0, "The table name")?;
    let t = schema::table(name).ok_or_else(|| unknown_table(name))?;
    match write {
        Some(action) if !t.writable => Err(no_table_access(t.name, action)),
        _ => Ok(t),
    }
}

/// The selected fields: a non-empty array of known field names.
fn selection(t: &Table, v: &Value) -> Result<Vec<&'static str>, Fault> {
    let items = v.as_array().ok_or_else(|| invalid_parameter("The selected fields must be an array of field names"))?;
    if items.is_empty() {
        return Err(invalid_parameter("No fields were selected"));
    }
    items
        .iter()
        .map(|f| {
            let name = f.as_str().ok_or_else(|| invalid_parameter("The selected fields must be an array of field names"))?;
            t.field(name).map(|f| f.name).ok_or_else(|| no_field_found(t.name, name))
        })
        .collect()
}

fn paging(p: &[Value], at: usize) -> Result<(usize, usize), Fault> {
    let limit = int(p, at, "limit")?;
    let page = int(p, at + 1, "page")?;
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(invalid_parameter(format!("limit must be between 1 and {MAX_LIMIT}")));
    }
    if page < 0 {
        return Err(invalid_parameter("page must be 0 or more"));
    }
    Ok((limit as usize, page as usize))
}

fn app_setting(app: &App, module: &str, setting: &str) -> &'static str {
    match (module, setting) {
        ("Contact", "optiontypes") => "Lead,Prospect,Customer,Other",
        ("Contact", "optionphonetypes") => "Work,Home,Mobile,Other",
        ("Contact", "optionfaxtypes") => "Work,Home,Other",
        ("Application", "timezone") => read(&app.cfg).timezone.name(),
        ("Application", "currencylocale") => "en_US",
        ("Opportunity", "defaultstage") => "20",
        _ => "",
    }
}

/// One DataService method; `p` holds the parameters after the key.
fn run(app: &App, method: &str, p: &[Value]) -> Result<Value, Fault> {
    match method {
        "echo" => {
            arity(method, p, &[1])?;
            Ok(p[0].clone())
        }
        "getAppSetting" => {
            arity(method, p, &[2])?;
            Ok(Value::from(app_setting(app, text(p, 0, "The module")?, text(p, 1, "The setting")?)))
        }
        "add" => {
            arity(method, p, &[2])?;
            let t = table(p, Some("add to"))?;
            let values = members(p, 1, "The values")?;
            write(&app.data).add(t, values, store::now_in(read(&app.cfg).timezone)).map(Value::Int)
        }
        "update" => {
            arity(method, p, &[3])?;
            let t = table(p, Some("update"))?;
            let id = int(p, 1, "The id")?;
            let values = members(p, 2, "The values")?;
            write(&app.data).update(t, id, values, store::now_in(read(&app.cfg).timezone)).map(Value::Int)
        }
        "delete" => {
            arity(method, p, &[2])?;
            let t = table(p, Some("delete from"))?;
            let id = int(p, 1, "The id")?;
            write(&app.data).delete(t, id).map(Value::Boolean)
        }
        "load" => {
            arity(method, p, &[3])?;
            let t = table(p, None)?;
            let id = int(p, 1, "The id")?;
            let select = selection(t, &p[2])?;
            read(&app.data).load(t, id, &select).map(Value::Struct)
        }
        "count" => {
            arity(method, p, &[2])?;
            let t = table(p, None)?;
            let criteria = parse_criteria(t, members(p, 1, "The query data")?)?;
            let n = read(&app.data).count(t, &criteria);
            Ok(Value::Int(i32::try_from(n).unwrap_or(i32::MAX)))
        }
        "query" => {
            arity(method, p, &[5, 7])?;
            let t = table(p, None)?;
            let (limit, page) = paging(p, 1)?;
            let criteria = parse_criteria(t, members(p, 3, "The query data")?)?;
            let select = selection(t, &p[4])?;
            let (order_by, ascending) = if p.len() == 7 {
                let name = text(p, 5, "orderBy")?;
                let field = t.field(name).ok_or_else(|| no_field_found(t.name, name))?;
                let ascending = match &p[6] {
                    Value::Boolean(b) => *b,
                    Value::Int(i) => *i != 0,
                    _ => return Err(invalid_parameter("ascending must be a boolean")),
                };
                (Some(field.name), ascending)
            } else {
                (None, true)
            };
            let q = Query { criteria: &criteria, limit, page, select: &select, order_by, ascending };
            Ok(Value::Array(read(&app.data).query(t, &q)))
        }
        "findByField" => {
            arity(method, p, &[6])?;
            let t = table(p, None)?;
            let (limit, page) = paging(p, 1)?;
            let field = text(p, 3, "The field name")?;
            let criteria = [criterion(t, field, &p[4])?];
            let select = selection(t, &p[5])?;
            let q = Query { criteria: &criteria, limit, page, select: &select, order_by: None, ascending: true };
            Ok(Value::Array(read(&app.data).query(t, &q)))
        }
        // METHODS and this match list the same names.
        _ => Err(Fault::new(fault::GENERIC, format!("No such handler: DataService.{method}"))),
    }
}
