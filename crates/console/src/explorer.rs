//! The API explorer of an instance: its hub resources from its OpenAPI document
//! (`GET /instances/{id}/docs`, transformed objects included), and "try it"
//! calls the server runs as that instance ([`switchyard_server::ActingAs`] with
//! the instance id): no instance token is involved or shown.

use std::collections::BTreeMap;

use axum::extract::{Path, Query, State};
use axum::http::{Method, StatusCode};
use axum::response::Response;
use serde_json::{json, Value};

use crate::auth::{Form, User};
use crate::Console;

/// The methods the explorer offers, in the docs' spelling.
const METHODS: [&str; 5] = ["get", "post", "put", "patch", "delete"];

/// The page's context: the instance, its operations, and what the form holds.
async fn context(console: &Console, user: &User, id: i64, call: Value) -> Result<Value, Response> {
    let acting = user.acting();
    let instance = console.api().call(&acting, Method::GET, &format!("/instances/{id}"), None).await;
    if !instance.ok() {
        return Err(console.problem(instance.status, "Explorer", &instance.problem()));
    }
    let docs = console.api().call(&acting, Method::GET, &format!("/instances/{id}/docs"), None).await;
    let mut operations = Vec::new();
    if let Some(paths) = docs.body["paths"].as_object() {
        for (path, item) in paths {
            for method in METHODS {
                if let Some(op) = item.get(method) {
                    let summary = op["summary"].as_str().or(op["description"].as_str()).unwrap_or("");
                    operations.push(json!({"method": method.to_uppercase(), "path": path, "summary": summary}));
                }
            }
        }
    }
    Ok(json!({"user": user.context(), "nav": "instances", "instance": instance.body, "operations": operations, "call": call}))
}

/// `GET /console/instances/{id}/explorer?method=&path=`: the operations, and
/// the form filled with the one picked.
pub async fn page(State(console): State<Console>, user: User, Path(id): Path<i64>, Query(q): Query<BTreeMap<String, String>>) -> Response {
    let call = json!({
        "method": q.get("method").map(|m| m.to_uppercase()).unwrap_or_else(|| "GET".into()),
        "path": q.get("path").cloned().unwrap_or_default(),
        "query": "",
        "body": "",
    });
    match context(&console, &user, id, call).await {
        Ok(c) => console.page(StatusCode::OK, "explorer.html", c),
        Err(r) => r,
    }
}

/// The path and query as typed, encoded for the request line: each path segment
/// percent-encoded, the query read as `name=value&…` (blanks and all, as a person
/// types `where=status_id = 11`) and written again encoded.
fn hub_target(path: &str, query: &str) -> Result<String, String> {
    let segments: Result<Vec<String>, _> =
        path.split('/').map(|s| if s.is_empty() { Ok(String::new()) } else { switchyard_engine::segment::encode(s) }).collect();
    let path = segments.map_err(|e| e.to_string())?.join("/");
    if query.is_empty() {
        return Ok(path);
    }
    let pairs = query.split('&').filter(|p| !p.is_empty()).map(|p| p.split_once('=').unwrap_or((p, "")));
    let encoded = url::form_urlencoded::Serializer::new(String::new()).extend_pairs(pairs).finish();
    Ok(format!("{path}?{encoded}"))
}

/// The explorer again, with the form as sent and why it was not run.
async fn refused(console: &Console, user: &User, id: i64, mut call: Value, message: &str) -> Response {
    call["error"] = json!(message);
    match context(console, user, id, call).await {
        Ok(c) => console.page(StatusCode::BAD_REQUEST, "explorer.html", c),
        Err(r) => r,
    }
}

/// `POST /console/instances/{id}/explorer`: runs the call (`method`, `path` under
/// `/hubs/`, `query`, JSON `body`) as the instance and shows the answer.
pub async fn try_it(State(console): State<Console>, user: User, Path(id): Path<i64>, form: Form) -> Response {
    if let Err(r) = user.check_csrf(&form) {
        return r;
    }
    let method = form.get("method").unwrap_or("GET").to_uppercase();
    let path = form.get("path").unwrap_or("").to_owned();
    let query = form.get("query").unwrap_or("").trim_start_matches('?').to_owned();
    let body_text = form.get("body").unwrap_or("").to_owned();
    let mut call = json!({"method": method, "path": path, "query": query, "body": body_text});
    let Ok(method) = Method::from_bytes(method.as_bytes()) else {
        return refused(&console, &user, id, call, "Pick a method").await;
    };
    if !METHODS.contains(&method.as_str().to_lowercase().as_str()) {
        return refused(&console, &user, id, call, "Pick GET, POST, PUT, PATCH or DELETE").await;
    }
    // Paths as the docs write them; `{id}` left in is the caller's to fill.
    if !path.starts_with("/hubs/") || path.contains(['{', '}', '?', '#']) || path.contains("..") {
        return refused(&console, &user, id, call, "The path is a hub path such as /hubs/ecommerce/orders, with every {parameter} filled in").await;
    }
    let body = if body_text.trim().is_empty() {
        None
    } else {
        match serde_json::from_str::<Value>(&body_text) {
            Ok(v) => Some(v),
            Err(e) => return refused(&console, &user, id, call, &format!("The body is not JSON: {e}")).await,
        }
    };
    let target = match hub_target(&path, &query) {
        Ok(t) => t,
        Err(e) => return refused(&console, &user, id, call, &e).await,
    };
    let answer = console.api().call(&user.acting_as_instance(id), method, &target, body.as_ref()).await;
    let headers: Vec<Value> = answer
        .headers
        .iter()
        .filter(|(name, _)| name.as_str().starts_with("elements-"))
        .map(|(name, value)| json!({"name": name.as_str(), "value": value.to_str().unwrap_or("")}))
        .collect();
    let shown = match &answer.body {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => serde_json::to_string_pretty(other).unwrap_or_default(),
    };
    call["answer"] = json!({"status": answer.status.as_u16(), "headers": headers, "body": shown});
    match context(&console, &user, id, call).await {
        Ok(c) => console.page(StatusCode::OK, "explorer.html", c),
        Err(r) => r,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typed_paths_and_queries_are_encoded_for_the_request_line() {
        let target = |p: &str, q: &str| hub_target(p, q).unwrap();
        assert_eq!(target("/hubs/ecommerce/orders", "pageSize=5&where=status_id = 11"), "/hubs/ecommerce/orders?pageSize=5&where=status_id+%3D+11");
        assert_eq!(target("/hubs/crm/contacts/ä b", ""), "/hubs/crm/contacts/%C3%A4%20b");
        assert_eq!(target("/hubs/crm/contacts", "where=email='a&b'"), "/hubs/crm/contacts?where=email%3D%27a&b%27=");
        assert!(axum::http::Uri::try_from(target("/hubs/x/y\u{7f}", "q=\u{1}")).is_ok());
        assert!(hub_target("/hubs/x/a\u{0}b", "").is_err());
    }
}
