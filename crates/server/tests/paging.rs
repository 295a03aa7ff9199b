//! Lists as data (issue 16: paging styles, counts, empty lists, search bodies, fixed
//! query parameters), through HTTP against small test vendors written for this test
//! (one axum app, one path prefix per shape) and element files loaded from
//! `tests/elements/` as an operator's extra elements are. Each vendor holds 120
//! records. Their shapes follow the vendors named in each element file; where a
//! vendor's rule is pinned (Shopify's `page_info` taking no filters, HubSpot's search
//! body, Zendesk's `has_more`, Pipedrive's `data: null`), the file names its source.

mod common;

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};

use axum::extract::{Query, Request, State};
use axum::http::{HeaderMap, StatusCode as AxStatus};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use reqwest::StatusCode;
use serde_json::{json, Value};
use switchyard_elements::Catalog;

const KEY: &str = "test-vendor-key";
const TOTAL: u64 = 120;

/// How the test vendor misbehaves.
const NORMAL: u8 = 0;
/// Its paging does not advance (each shape in its own way, see the handlers).
const STUCK: u8 = 1;
/// Its next-page links name another host (`localhost` for `127.0.0.1`).
const FOREIGN: u8 = 2;
/// Its cursors are 3000 characters long.
const LONG_CURSOR: u8 = 3;
/// It answers pages of its own size, whatever size was asked for.
const OWN_SIZE: u8 = 4;
/// Its next-page links repeat the API key as a query parameter (as links that echo
/// every parameter of the request do).
const ECHO_KEY: u8 = 5;
/// It says more records exist without naming where (`has_more` without a cursor).
const NO_CURSOR: u8 = 6;
/// Its `has_more` is a string.
const MORE_AS_TEXT: u8 = 7;
/// Its `Link` header does not parse (the URL is not in `<...>`).
const BAD_LINK: u8 = 8;
/// Its last page names an empty cursor (as Slack's `next_cursor: ""`), and its
/// cursors are JSON numbers.
const EMPTY_CURSOR: u8 = 9;
/// Its answers that pass through as they are (`/legacy/gadgets/count`) are empty.
const NO_BODY: u8 = 10;

/// One request the vendor received.
#[derive(Debug, Clone)]
struct Seen {
    method: String,
    path: String,
    query: String,
    body: Value,
}

#[derive(Clone)]
struct Vendor {
    addr: std::net::SocketAddr,
    log: Arc<Mutex<Vec<Seen>>>,
    mode: Arc<AtomicU8>,
}

impl Vendor {
    fn set(&self, mode: u8) {
        self.mode.store(mode, Ordering::SeqCst);
    }
    fn mode(&self) -> u8 {
        self.mode.load(Ordering::SeqCst)
    }
    fn seen(&self) -> Vec<Seen> {
        self.log.lock().unwrap().clone()
    }
    fn host(&self) -> String {
        match self.mode() {
            FOREIGN => format!("localhost:{}", self.addr.port()),
            _ => self.addr.to_string(),
        }
    }
}

fn status_of(i: u64) -> &'static str {
    if i % 3 == 0 {
        "closed"
    } else {
        "open"
    }
}

fn stage_of(i: u64) -> &'static str {
    if i % 4 == 0 {
        "customer"
    } else {
        "lead"
    }
}

fn created_of(i: u64) -> String {
    format!("2024-01-01T00:{:02}:{:02}Z", i / 60, i % 60)
}

/// The number `name` of the query (`default` when absent), refused outside `range`.
fn number(q: &HashMap<String, String>, name: &str, default: u64, range: std::ops::RangeInclusive<u64>) -> Result<u64, String> {
    let n = match q.get(name) {
        None => default,
        Some(v) => v.parse().map_err(|_| format!("{name} is not a number"))?,
    };
    if range.contains(&n) {
        Ok(n)
    } else {
        Err(format!("{name} is {} to {}", range.start(), range.end()))
    }
}

fn bad(message: &str) -> Response {
    (AxStatus::BAD_REQUEST, Json(json!({"error": message}))).into_response()
}

/// Shopify-like: `GET /shop/items.json?limit&status` or `?limit&page_info`; only open
/// items unless `status` says otherwise; a request with `page_info` takes no other
/// filters (Shopify REST Admin API docs, cursor-based pagination); `Link: <...>;
/// rel="next"` while more exist.
async fn shop_items(State(v): State<Vendor>, Query(q): Query<HashMap<String, String>>) -> Response {
    let limit = match number(&q, "limit", 50, 1..=250) {
        Ok(n) => n,
        Err(e) => return bad(&e),
    };
    let (after, status) = match q.get("page_info") {
        Some(info) => {
            if q.keys().any(|k| k != "page_info" && k != "limit") {
                return bad("page_info cannot be combined with other filters");
            }
            let (after, status) = info.split_once('-').unwrap_or(("0", "open"));
            (after.parse::<u64>().unwrap_or(0), status.to_owned())
        }
        None => (0, q.get("status").cloned().unwrap_or_else(|| "open".into())),
    };
    let matching: Vec<u64> = (1..=TOTAL).filter(|i| *i > after && (status == "any" || status_of(*i) == status)).collect();
    let page: Vec<u64> = matching.iter().copied().take(limit as usize).collect();
    let items: Vec<Value> = page.iter().map(|i| json!({"id": i, "name": format!("item {i}"), "status": status_of(*i), "created_at": created_of(*i)})).collect();
    let mut headers = HeaderMap::new();
    if matching.len() as u64 > limit {
        let last = if v.mode() == STUCK { 0 } else { *page.last().unwrap() };
        let link = format!("<http://{}/shop/items.json?limit={limit}&page_info={last}-{status}>; rel=\"next\"", v.host());
        let link = if v.mode() == BAD_LINK { link.replace(['<', '>'], "") } else { link };
        headers.insert("link", link.parse().unwrap());
    }
    if after > 0 {
        headers.append("link", format!("<http://{}/shop/items.json?limit={limit}&page_info=0-{status}>; rel=\"previous\"", v.host()).parse().unwrap());
    }
    (headers, Json(json!({"items": items}))).into_response()
}

async fn shop_count(Query(q): Query<HashMap<String, String>>) -> Json<Value> {
    let status = q.get("status").cloned().unwrap_or_else(|| "open".into());
    Json(json!({"count": (1..=TOTAL).filter(|i| status == "any" || status_of(*i) == status).count()}))
}

/// HubSpot-like search: `POST /crm/v3/objects/contacts/search` with `filterGroups`,
/// `limit` (at most 100), `after`; answers `total`, `results` (left out here when empty,
/// to test a missing records key), `paging.next.after` while more exist.
async fn crm_search(State(v): State<Vendor>, Json(body): Json<Value>) -> Response {
    let limit = body["limit"].as_u64().unwrap_or(10);
    if !(1..=100).contains(&limit) {
        return bad("limit is 1 to 100");
    }
    let after: u64 = match &body["after"] {
        Value::Null => 0,
        Value::String(s) => s.chars().take_while(char::is_ascii_digit).collect::<String>().parse().unwrap_or(0),
        _ => return bad("after is a string"),
    };
    let filters = body["filterGroups"][0]["filters"].as_array().cloned().unwrap_or_default();
    let fits = |i: u64| {
        filters.iter().all(|f| {
            let value = f["value"].as_str().unwrap_or("");
            match (f["propertyName"].as_str(), f["operator"].as_str()) {
                (Some("lifecyclestage"), Some("EQ")) => stage_of(i) == value,
                (Some("createdate"), Some("GTE")) => created_of(i).as_str() >= value,
                (Some("createdate"), Some("LTE")) => created_of(i).as_str() <= value,
                _ => false,
            }
        })
    };
    let matching: Vec<u64> = (1..=TOTAL).filter(|i| fits(*i)).collect();
    let rest: Vec<u64> = matching.iter().copied().filter(|i| *i > after).collect();
    let page: Vec<u64> = rest.iter().copied().take(limit as usize).collect();
    let mut answer = json!({"total": matching.len()});
    if !page.is_empty() {
        answer["results"] = page
            .iter()
            .map(|i| json!({"id": i.to_string(), "properties": {"email": format!("c{i}@example.test"), "lifecyclestage": stage_of(*i)}, "createdAt": created_of(*i)}))
            .collect();
    }
    if rest.len() as u64 > limit {
        let next = match v.mode() {
            // Stuck: hands back the cursor it was given (from the second page on).
            STUCK if after > 0 => body["after"].as_str().unwrap().to_owned(),
            LONG_CURSOR => format!("{}{}", page.last().unwrap(), "x".repeat(3000)),
            _ => page.last().unwrap().to_string(),
        };
        answer["paging"] = json!({"next": {"after": next}});
    }
    Json(answer).into_response()
}

/// HubSpot-like list: `GET /crm/v3/objects/companies?limit&after&properties=a,b`; a
/// record holds only the properties asked for.
async fn crm_companies(State(v): State<Vendor>, Query(q): Query<HashMap<String, String>>) -> Response {
    let limit = match number(&q, "limit", 10, 1..=100) {
        Ok(n) => n,
        Err(e) => return bad(&e),
    };
    let after = match number(&q, "after", 0, 0..=u64::MAX) {
        Ok(n) => n,
        Err(e) => return bad(&e),
    };
    let wanted: Vec<String> = q.get("properties").map(|p| p.split(',').map(str::to_owned).collect()).unwrap_or_default();
    let rest: Vec<u64> = (after + 1..=TOTAL).collect();
    let results: Vec<Value> = rest
        .iter()
        .take(limit as usize)
        .map(|i| {
            let all = json!({"name": format!("Company {i}"), "domain": format!("c{i}.example"), "industry": "tools"});
            let props: serde_json::Map<String, Value> = wanted.iter().filter_map(|p| Some((p.clone(), all.get(p)?.clone()))).collect();
            json!({"id": i.to_string(), "properties": props})
        })
        .collect();
    let mut answer = json!({"results": results});
    if rest.len() as u64 > limit {
        let after = after + limit;
        answer["paging"] = json!({"next": {"after": if v.mode() == EMPTY_CURSOR { json!(after) } else { json!(after.to_string()) }}});
    } else if v.mode() == EMPTY_CURSOR {
        answer["paging"] = json!({"next": {"after": ""}});
    }
    Json(answer).into_response()
}

/// Zendesk-like cursor pagination: `GET /crm/tickets?page[size]&page[after]&status`;
/// `meta.has_more` says whether more exist, `meta.after_cursor` is given on every page
/// (also the last; Zendesk Support API docs, cursor pagination).
async fn crm_tickets(State(v): State<Vendor>, Query(q): Query<HashMap<String, String>>) -> Response {
    let size = match number(&q, "page[size]", 100, 1..=100) {
        Ok(n) => n,
        Err(e) => return bad(&e),
    };
    let after: u64 = q.get("page[after]").and_then(|c| c.strip_prefix('c')).and_then(|c| c.parse().ok()).unwrap_or(0);
    let status = q.get("status");
    let rest: Vec<u64> = (after + 1..=TOTAL).filter(|i| status.is_none_or(|s| s == status_of(*i))).collect();
    let page: Vec<u64> = rest.iter().copied().take(size as usize).collect();
    let tickets: Vec<Value> = page.iter().map(|i| json!({"id": i, "subject": format!("ticket {i}"), "status": status_of(*i)})).collect();
    let last = page.last().copied().unwrap_or(after);
    let mut meta = json!({"has_more": rest.len() as u64 > size, "after_cursor": format!("c{last}"), "before_cursor": "c0"});
    match v.mode() {
        NO_CURSOR => drop(meta.as_object_mut().unwrap().remove("after_cursor")),
        MORE_AS_TEXT => meta["has_more"] = json!("yes"),
        _ => {}
    }
    Json(json!({"tickets": tickets, "meta": meta})).into_response()
}

/// Zendesk-like offset pagination: `GET /desk/api/v2/users.json?page&per_page&role`
/// answers `users`, `next_page` (an absolute URL, `null` on the last page) and `count`.
async fn desk_users(State(v): State<Vendor>, Query(q): Query<HashMap<String, String>>) -> Response {
    let per_page = match number(&q, "per_page", 100, 1..=100) {
        Ok(n) => n,
        Err(e) => return bad(&e),
    };
    let page = match number(&q, "page", 1, 1..=u64::MAX) {
        Ok(n) => n,
        Err(e) => return bad(&e),
    };
    let role = q.get("role");
    let role_of = |i: u64| if i % 5 == 0 { "admin" } else { "end-user" };
    let matching: Vec<u64> = (1..=TOTAL).filter(|i| role.is_none_or(|r| r == role_of(*i))).collect();
    // Stuck: the page number is ignored, while the links still advance.
    let shown = if v.mode() == STUCK { 1 } else { page };
    let users: Vec<Value> = matching
        .iter()
        .skip(((shown - 1) * per_page) as usize)
        .take(per_page as usize)
        .map(|i| json!({"id": i, "name": format!("user {i}"), "role": role_of(*i)}))
        .collect();
    let mut role_param = role.map(|r| format!("&role={r}")).unwrap_or_default();
    if v.mode() == ECHO_KEY {
        role_param.push_str(&format!("&api_key={KEY}"));
    }
    let next = (page * per_page < matching.len() as u64)
        .then(|| format!("http://{}/desk/api/v2/users.json?page={}&per_page={per_page}{role_param}", v.host(), page + 1));
    Json(json!({"users": users, "next_page": next, "previous_page": null, "count": matching.len()})).into_response()
}

/// Pipedrive-like: `GET /pipe/v1/deals?start&limit&status` (limit at most 60 here);
/// `data` is `null` when nothing is left (Pipedrive API v1 list answers).
async fn pipe_deals(State(v): State<Vendor>, Query(q): Query<HashMap<String, String>>) -> Response {
    let limit = match number(&q, "limit", 60, 1..=60) {
        Ok(n) => n,
        Err(e) => return bad(&e),
    };
    let start = match number(&q, "start", 0, 0..=u64::MAX) {
        Ok(n) => n,
        Err(e) => return bad(&e),
    };
    let status = q.get("status");
    let stage = |i: u64| if i % 6 == 0 { "won" } else { "open" };
    let matching: Vec<u64> = (1..=TOTAL).filter(|i| status.is_none_or(|s| s == stage(*i))).collect();
    let from = if v.mode() == STUCK { 0 } else { start };
    let data: Vec<Value> = matching.iter().skip(from as usize).take(limit as usize).map(|i| json!({"id": i, "title": format!("deal {i}"), "status": stage(*i)})).collect();
    let more = start.saturating_add(limit) < matching.len() as u64;
    let data = if data.is_empty() { Value::Null } else { Value::Array(data) };
    Json(json!({"success": true, "data": data, "additional_data": {"pagination": {"start": start, "limit": limit,
        "more_items_in_collection": more, "total": matching.len()}}}))
    .into_response()
}

/// BigCommerce-like page paging: `GET /legacy/things?page&limit`, a plain array.
async fn legacy_things(State(v): State<Vendor>, Query(q): Query<HashMap<String, String>>) -> Response {
    let limit = match number(&q, "limit", 50, 1..=50) {
        Ok(n) => n,
        Err(e) => return bad(&e),
    };
    let page = match number(&q, "page", 1, 1..=u64::MAX) {
        Ok(n) => n,
        Err(e) => return bad(&e),
    };
    let shown = if v.mode() == STUCK { 1 } else { page };
    let limit = if v.mode() == OWN_SIZE { 50 } else { limit };
    let things: Vec<Value> = (1..=TOTAL).skip(((shown - 1) * limit) as usize).take(limit as usize).map(|i| json!({"id": i})).collect();
    Json(Value::Array(things)).into_response()
}

/// `GET /legacy/gadgets/count?kind`: 120 gadgets of every kind, 60 of the default
/// kind (a count the resource's fixed `kind=all` changes).
async fn legacy_gadget_count(State(v): State<Vendor>, Query(q): Query<HashMap<String, String>>) -> Response {
    if v.mode() == NO_BODY {
        return AxStatus::OK.into_response();
    }
    Json(json!({"count": if q.get("kind").is_some_and(|k| k == "all") { TOTAL } else { TOTAL / 2 }})).into_response()
}

/// Every vendor call needs the API key; each is logged.
async fn guard(State(v): State<Vendor>, request: Request, next: Next) -> Response {
    if request.headers().get("x-api-key").and_then(|h| h.to_str().ok()) != Some(KEY) {
        return (AxStatus::UNAUTHORIZED, Json(json!({"error": "bad API key"}))).into_response();
    }
    let (parts, body) = request.into_parts();
    let bytes = axum::body::to_bytes(body, 1 << 20).await.unwrap();
    v.log.lock().unwrap().push(Seen {
        method: parts.method.to_string(),
        path: parts.uri.path().to_owned(),
        query: parts.uri.query().unwrap_or("").to_owned(),
        body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    });
    next.run(Request::from_parts(parts, axum::body::Body::from(bytes))).await
}

async fn start_vendor() -> Vendor {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let vendor = Vendor { addr: listener.local_addr().unwrap(), log: Arc::default(), mode: Arc::default() };
    let ping = || get(|| async { Json(json!({})) });
    let app = Router::new()
        .route("/shop/ping", ping())
        .route("/shop/items.json", get(shop_items))
        .route("/shop/items/count.json", get(shop_count))
        .route("/crm/ping", ping())
        .route("/crm/v3/objects/contacts/search", post(crm_search))
        .route("/crm/v3/objects/companies", get(crm_companies))
        .route("/crm/tickets", get(crm_tickets))
        .route("/desk/api/v2/ping", ping())
        .route("/desk/api/v2/users.json", get(desk_users))
        .route("/pipe/v1/ping", ping())
        .route("/pipe/v1/deals", get(pipe_deals))
        .route("/legacy/ping", ping())
        .route("/legacy/things", get(legacy_things))
        .route("/legacy/gadgets/count", get(legacy_gadget_count))
        .layer(middleware::from_fn_with_state(vendor.clone(), guard))
        .with_state(vendor.clone());
    tokio::spawn(async move { axum::serve(listener, app).await });
    vendor
}

/// The server with the test elements, one instance of each on the test vendor.
struct Hub {
    api: String,
    http: reqwest::Client,
    /// `Authorization` by element key.
    auth: HashMap<&'static str, String>,
    vendor: Vendor,
    _dir: tempfile::TempDir,
}

struct Answer {
    status: StatusCode,
    headers: reqwest::header::HeaderMap,
    body: Value,
}

impl Answer {
    fn next(&self) -> Option<String> {
        self.headers.get("Elements-Next-Page-Token").map(|v| v.to_str().unwrap().to_owned())
    }
    fn total(&self) -> Option<u64> {
        self.headers.get("Elements-Total-Count").map(|v| v.to_str().unwrap().parse().unwrap())
    }
    fn ids(&self) -> Vec<u64> {
        let items = self.body.as_array().unwrap_or_else(|| panic!("not a list: {}", self.body));
        items.iter().map(|r| r["id"].as_u64().or_else(|| r["id"].as_str()?.parse().ok()).unwrap()).collect()
    }
    /// An error of `status` whose message names every one of `words`.
    fn failed(&self, status: StatusCode, words: &[&str]) {
        assert_eq!(self.status, status, "{}", self.body);
        let m = self.body["message"].as_str().unwrap_or_else(|| panic!("{}", self.body));
        for w in words {
            assert!(m.contains(w), "{m:?} lacks {w:?}");
        }
    }
}

const ELEMENTS: [(&str, &str, &str); 5] = [
    ("t-linkheader", "ecommerce", "/shop"),
    ("t-cursor", "crm", "/crm"),
    ("t-nexturl", "crm", "/desk/api/v2"),
    ("t-offset", "crm", "/pipe/v1"),
    ("t-page", "ecommerce", "/legacy"),
];

async fn start() -> Hub {
    let vendor = start_vendor().await;
    let mut catalog = Catalog::builtin();
    let loaded = catalog.load_dir(&Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/elements")).unwrap();
    assert_eq!(loaded, ELEMENTS.len());
    let (api, user, dir) = common::serve_catalog(catalog).await;
    let http = reqwest::Client::new();
    let mut auth = HashMap::new();
    for (key, _, prefix) in ELEMENTS {
        let created: Value = http
            .post(format!("{api}/instances"))
            .header("Authorization", &user)
            .json(&json!({"element": {"key": key}, "name": key, "configuration": {
                "base.url": format!("http://{}{prefix}", vendor.addr), "api.key": KEY}}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let token = created["token"].as_str().unwrap_or_else(|| panic!("{key}: {created}"));
        auth.insert(key, format!("{user}, Element {token}"));
    }
    Hub { api, http, auth, vendor, _dir: dir }
}

impl Hub {
    async fn get(&self, element: &str, path: &str, query: &[(&str, &str)]) -> Answer {
        let hub = ELEMENTS.iter().find(|(k, _, _)| *k == element).unwrap().1;
        let r = self
            .http
            .get(format!("{}/hubs/{hub}{path}", self.api))
            .header("Authorization", &self.auth[element])
            .query(query)
            .send()
            .await
            .unwrap();
        let (status, headers) = (r.status(), r.headers().clone());
        let text = r.text().await.unwrap();
        let body = if text.is_empty() { Value::Null } else { serde_json::from_str(&text).unwrap_or(Value::String(text)) };
        Answer { status, headers, body }
    }

    async fn ok(&self, element: &str, path: &str, query: &[(&str, &str)]) -> Answer {
        let a = self.get(element, path, query).await;
        assert_eq!(a.status, StatusCode::OK, "{element} {path} {query:?}: {}", a.body);
        a
    }

    /// Every page of a list through `nextPage`: each page but the last holds exactly
    /// `size` records, and a page with a token is never empty.
    async fn pages(&self, element: &str, path: &str, query: &[(&str, &str)], size: u64) -> Vec<Vec<u64>> {
        let size_text = size.to_string();
        let mut pages = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let mut q = query.to_vec();
            q.push(("pageSize", &size_text));
            if let Some(t) = &token {
                q.push(("nextPage", t));
            }
            let a = self.ok(element, path, &q).await;
            let ids = a.ids();
            assert_eq!(a.headers["Elements-Returned-Count"].to_str().unwrap(), ids.len().to_string());
            pages.push(ids);
            assert!(pages.len() as u64 <= TOTAL + 1, "{element} {path}: the list does not end");
            match a.next() {
                Some(t) => {
                    assert_eq!(pages.last().unwrap().len() as u64, size, "{element} {path}: a page before the last is not full");
                    token = Some(t);
                }
                None => return pages,
            }
        }
    }
}

fn one_to(n: u64) -> Vec<u64> {
    (1..=n).collect()
}

/// Issue 16: every record of a 120-record collection exactly once through `nextPage`,
/// at page sizes 7, 50 and the vendor's maximum, in every paging style.
#[tokio::test]
async fn every_record_once_through_next_page_in_every_style() {
    let hub = start().await;
    for (element, path, max) in [
        ("t-linkheader", "/items", 250),
        ("t-cursor", "/contacts", 100),
        ("t-cursor", "/companies", 100),
        ("t-cursor", "/tickets", 100),
        ("t-nexturl", "/users", 100),
        ("t-offset", "/deals", 60),
        ("t-page", "/things", 50),
    ] {
        for size in [7, 50, max] {
            let pages = hub.pages(element, path, &[], size).await;
            let ids: Vec<u64> = pages.concat();
            assert_eq!(ids, one_to(TOTAL), "{element} {path} at {size}: {pages:?}");
            assert_eq!(pages.len() as u64, TOTAL.div_ceil(size), "{element} {path} at {size}: no empty last page");
        }
        // A page size past the vendor's maximum is the maximum.
        let a = hub.ok(element, path, &[("pageSize", "1000")]).await;
        assert_eq!(a.ids().len() as u64, max.min(TOTAL), "{element} {path}");
    }
}

/// Counts: a count call with a pointer, a total in the list answer (also the
/// `Elements-Total-Count` of lists), and none (404 naming the resource).
#[tokio::test]
async fn counts_in_every_style() {
    let hub = start().await;
    let count = |a: Answer| a.body["count"].as_u64().unwrap_or_else(|| panic!("{}", a.body));
    // The count call, with the fixed `status=any` and the vendor's filter.
    assert_eq!(count(hub.ok("t-linkheader", "/items/count", &[]).await), TOTAL);
    assert_eq!(count(hub.ok("t-linkheader", "/items/count", &[("where", "status = 'closed'")]).await), 40);
    assert!(hub.vendor.seen().iter().any(|s| s.path == "/shop/items/count.json" && s.query == "status=closed"));
    assert_eq!(hub.ok("t-linkheader", "/items", &[]).await.total(), None, "no total pointer, no header");
    // A total in the list answer: from a one-record read, and on every list page.
    assert_eq!(count(hub.ok("t-cursor", "/contacts/count", &[]).await), TOTAL);
    let search = hub.vendor.seen().into_iter().rev().find(|s| s.path.ends_with("/search")).unwrap();
    assert_eq!(search.body["limit"], 1);
    assert_eq!(count(hub.ok("t-cursor", "/contacts/count", &[("where", "properties.lifecyclestage = 'customer'")]).await), 30);
    assert_eq!(count(hub.ok("t-nexturl", "/users/count", &[]).await), TOTAL);
    assert_eq!(count(hub.ok("t-offset", "/deals/count", &[]).await), TOTAL);
    assert_eq!(count(hub.ok("t-offset", "/deals/count", &[("where", "status = 'won'")]).await), 20);
    for (element, path) in [("t-cursor", "/contacts"), ("t-nexturl", "/users"), ("t-offset", "/deals")] {
        let a = hub.ok(element, path, &[("pageSize", "7")]).await;
        assert_eq!(a.total(), Some(TOTAL), "{element} {path}");
        let second = hub.ok(element, path, &[("pageSize", "7"), ("nextPage", &a.next().unwrap())]).await;
        assert_eq!(second.total(), Some(TOTAL), "{element} {path}");
    }
    assert_eq!(hub.ok("t-nexturl", "/users", &[("where", "role = 'admin'")]).await.total(), Some(24));
    // The engine filters: what the vendor counted is not the answer's total.
    assert_eq!(hub.ok("t-offset", "/deals", &[("where", "title LIKE '%7%'")]).await.total(), None);
    assert_eq!(hub.ok("t-nexturl", "/users", &[("where", "name LIKE '%7%'")]).await.total(), None);
    // A count the vendor would have to leave to the engine is refused.
    hub.get("t-offset", "/deals/count", &[("where", "title LIKE '%7%'")]).await.failed(StatusCode::BAD_REQUEST, &["count"]);
    // No count: 404 naming the resource, with or without a get by id.
    hub.get("t-cursor", "/tickets/count", &[]).await.failed(StatusCode::NOT_FOUND, &["t-cursor", "/tickets", "no count"]);
    hub.get("t-cursor", "/companies/count", &[]).await.failed(StatusCode::NOT_FOUND, &["/companies", "no count"]);
    let before = hub.vendor.seen().len();
    hub.get("t-page", "/things/count", &[]).await.failed(StatusCode::NOT_FOUND, &["t-page", "/things", "no count"]);
    assert_eq!(hub.vendor.seen().len(), before, "not sent to the vendor as the record 'count'");
    // Below a record there is no list to count: no such resource (not "no count").
    hub.get("t-page", "/things/5/count", &[]).await.failed(StatusCode::NOT_FOUND, &["No resource", "/things/5/count"]);
    // The vendor's `{path}/count` gets the resource's fixed query, as its list does.
    assert_eq!(count(hub.ok("t-page", "/gadgets/count", &[]).await), TOTAL);
    assert_eq!(hub.vendor.seen().last().map(|s| (s.path.clone(), s.query.clone())), Some(("/legacy/gadgets/count".into(), "kind=all".into())));
    // An empty answer passed through is an empty JSON object, not an empty body.
    hub.vendor.set(NO_BODY);
    assert_eq!(hub.ok("t-page", "/gadgets/count", &[]).await.body, json!({}));
    hub.vendor.set(NORMAL);
}

/// A CEQL filter reaches the vendor in each style (a query parameter, or a clause of
/// the search body), and the answer holds exactly the matches through every page.
#[tokio::test]
async fn ceql_filters_reach_the_vendor_in_every_style() {
    let hub = start().await;
    let cases: [(&str, &str, &str, Vec<u64>, &str); 5] = [
        ("t-linkheader", "/items", "status = 'closed'", (1..=TOTAL).filter(|i| i % 3 == 0).collect(), "status=closed"),
        ("t-cursor", "/tickets", "status = 'open'", (1..=TOTAL).filter(|i| i % 3 != 0).collect(), "status=open"),
        ("t-nexturl", "/users", "role = 'admin'", (1..=TOTAL).filter(|i| i % 5 == 0).collect(), "role=admin"),
        ("t-offset", "/deals", "status = 'won'", (1..=TOTAL).filter(|i| i % 6 == 0).collect(), "status=won"),
        ("t-cursor", "/contacts", "properties.lifecyclestage = 'customer'", (1..=TOTAL).filter(|i| i % 4 == 0).collect(), ""),
    ];
    for (element, path, clause, want, sent) in cases {
        let before = hub.vendor.seen().len();
        let pages = hub.pages(element, path, &[("where", clause)], 7).await;
        assert_eq!(pages.concat(), want, "{element} {path} where {clause}");
        let calls = hub.vendor.seen()[before..].to_vec();
        assert_eq!(calls.len(), pages.len(), "{element} {path}: one vendor call per page, nothing filtered by the engine");
        if !sent.is_empty() {
            assert!(calls[0].query.split('&').any(|p| p == sent), "{element}: {:?}", calls[0]);
        }
    }
    // The search body: the clause as a filter, the size, the cursor from the second page on.
    let searches: Vec<Seen> = hub.vendor.seen().into_iter().filter(|s| s.path.ends_with("/search")).collect();
    assert_eq!(searches[0].method, "POST");
    assert_eq!(
        searches[0].body,
        json!({"filterGroups": [{"filters": [{"propertyName": "lifecyclestage", "operator": "EQ", "value": "customer"}]}],
            "properties": ["email", "lifecyclestage"], "limit": 7})
    );
    assert_eq!(searches[1].body["after"], "28");
    // Both bounds of a date under one vendor property (search.names), inclusive.
    let (from, to) = (created_of(30), created_of(41));
    let a = hub.ok("t-cursor", "/contacts", &[("where", &format!("createdAt >= '{from}' AND createdAt <= '{to}'"))]).await;
    assert_eq!(a.ids(), (30..=41).collect::<Vec<_>>());
    let last = hub.vendor.seen().pop().unwrap();
    assert_eq!(
        last.body["filterGroups"][0]["filters"],
        json!([{"propertyName": "createdate", "operator": "GTE", "value": from}, {"propertyName": "createdate", "operator": "LTE", "value": to}])
    );
    // What the vendor cannot filter, the engine does, across cursor pages, exactly.
    let pages = hub.pages("t-linkheader", "/items", &[("where", "name LIKE '%7%'")], 5).await;
    let want: Vec<u64> = (1..=TOTAL).filter(|i| i.to_string().contains('7')).collect();
    assert_eq!(pages.concat(), want);
}

/// Fixed query parameters go with every list call; a vendor filter of the same name
/// replaces one (a default); a followed link is sent as the vendor wrote it.
#[tokio::test]
async fn fixed_and_default_query_parameters() {
    let hub = start().await;
    let pages = hub.pages("t-linkheader", "/items", &[], 50).await;
    assert_eq!(pages.concat(), one_to(TOTAL), "status=any: the closed items too");
    let calls = hub.vendor.seen().into_iter().filter(|s| s.path == "/shop/items.json").collect::<Vec<_>>();
    assert_eq!(calls[0].query, "status=any&limit=50");
    assert_eq!(calls[1].query, "limit=50&page_info=50-any", "the link as given: Shopify refuses filters beside page_info");
    hub.ok("t-linkheader", "/items", &[("where", "status = 'open'")]).await;
    assert_eq!(hub.vendor.seen().pop().unwrap().query, "status=open&limit=200");
    let a = hub.ok("t-cursor", "/companies", &[("pageSize", "3")]).await;
    assert_eq!(hub.vendor.seen().pop().unwrap().query, "properties=name%2Cdomain&limit=3");
    assert_eq!(a.body[0]["properties"], json!({"name": "Company 1", "domain": "c1.example"}));
}

/// `null` or a missing records key is an empty list; a look-ahead read that finds
/// nothing ends paging; `has_more: false` ends it whatever the cursor says.
#[tokio::test]
async fn empty_answers_end_paging_without_errors() {
    let hub = start().await;
    let none = hub.ok("t-offset", "/deals", &[("where", "status = 'lost'")]).await;
    assert_eq!((none.body.clone(), none.next()), (json!([]), None), "data: null");
    let none = hub.ok("t-cursor", "/contacts", &[("where", "properties.lifecyclestage = 'nobody'")]).await;
    assert_eq!((none.body.clone(), none.next()), (json!([]), None), "no results key");
    assert_eq!(none.total(), Some(0));
    // Pages of 60 at a vendor of at most 60: the record past each page is read alone,
    // and past the last one the vendor answers `data: null`.
    let before = hub.vendor.seen().len();
    let pages = hub.pages("t-offset", "/deals", &[], 60).await;
    assert_eq!(pages.concat(), one_to(TOTAL));
    let starts: Vec<String> = hub.vendor.seen()[before..].iter().map(|s| s.query.clone()).collect();
    assert_eq!(starts, ["start=0&limit=60", "start=60&limit=1", "start=60&limit=60", "start=120&limit=1"]);
    // Zendesk gives an after_cursor on the last page too; has_more false ends the list.
    let pages = hub.pages("t-cursor", "/tickets", &[], 40).await;
    assert_eq!(pages.len(), 3);
    // A hub page beyond the end is empty, without a token.
    let past = hub.ok("t-offset", "/deals", &[("page", "9"), ("pageSize", "20")]).await;
    assert_eq!((past.ids(), past.next()), (vec![], None));
}

/// `page=N` on paging reached one page from the other: the vendor's pages are walked
/// from the first one.
#[tokio::test]
async fn page_numbers_on_cursor_paging() {
    let hub = start().await;
    for (element, path) in [("t-cursor", "/contacts"), ("t-linkheader", "/items"), ("t-nexturl", "/users")] {
        let a = hub.ok(element, path, &[("page", "3"), ("pageSize", "7")]).await;
        assert_eq!(a.ids(), (15..=21).collect::<Vec<_>>(), "{element}");
        let rest = hub.ok(element, path, &[("pageSize", "7"), ("nextPage", &a.next().unwrap())]).await;
        assert_eq!(rest.ids(), (22..=28).collect::<Vec<_>>(), "{element}");
    }
}

/// A vendor whose paging does not advance (the same cursor or link twice, or a page
/// starting with the record the one before started with) stops with a 502 naming the
/// element and the resource, in every style.
#[tokio::test]
async fn paging_that_does_not_advance_is_a_502() {
    let hub = start().await;
    hub.vendor.set(STUCK);
    for (element, path, why) in [
        ("t-linkheader", "/items", "does not advance"),
        ("t-cursor", "/contacts", "the same cursor twice"),
        ("t-nexturl", "/users", "same record"),
        ("t-offset", "/deals", "same record"),
        ("t-page", "/things", "same record"),
    ] {
        let mut token: Option<String> = None;
        let mut calls = 0;
        let failed = loop {
            calls += 1;
            assert!(calls <= 3, "{element}: still paging after {calls} calls");
            let mut q = vec![("pageSize", "7")];
            if let Some(t) = &token {
                q.push(("nextPage", t));
            }
            let a = hub.get(element, path, &q).await;
            if a.status != StatusCode::OK {
                break a;
            }
            token = Some(a.next().unwrap_or_else(|| panic!("{element}: the list ended: {}", a.body)));
        };
        failed.failed(StatusCode::BAD_GATEWAY, &[element, path, why]);
    }
    // Within one call too: the engine's filter scans pages of the vendor's largest size.
    hub.get("t-page", "/things", &[("where", "id > 1000")]).await.failed(StatusCode::BAD_GATEWAY, &["t-page", "/things", "same record"]);
    hub.vendor.set(NORMAL);
    assert_eq!(hub.pages("t-page", "/things", &[], 7).await.concat(), one_to(TOTAL));
}

/// A vendor that answers more records than the page asked for (it does not take the
/// element's size parameter) cannot be paged by number or offset: the page arithmetic
/// would skip records (here 15 to 56 at a page size of 7), so it is a 502, not a
/// silent gap. A page whose end passes what an offset can count is a 400, not an
/// overflow.
#[tokio::test]
async fn pages_past_what_was_asked_or_past_the_offsets_are_refused() {
    let hub = start().await;
    hub.vendor.set(OWN_SIZE);
    for page in ["1", "3"] {
        let a = hub.get("t-page", "/things", &[("pageSize", "7"), ("page", page)]).await;
        a.failed(StatusCode::BAD_GATEWAY, &["t-page", "/things", "answered 50 records for a page of 8"]);
    }
    // The engine's filter reads pages of the vendor's largest size: 50 is not over it.
    let a = hub.ok("t-page", "/things", &[("where", "id > 1000")]).await;
    assert_eq!(a.ids(), Vec::<u64>::new());
    hub.vendor.set(NORMAL);

    // (page - 1) * 7 fits in 64 bits, the page's end (page * 7) does not.
    let page = (u64::MAX / 7 + 1).to_string();
    let before = hub.vendor.seen().len();
    hub.get("t-offset", "/deals", &[("pageSize", "7"), ("page", &page)]).await.failed(StatusCode::BAD_REQUEST, &["page is too large"]);
    // Past what 64 bits count, with the engine's filter and on cursor paging too.
    let page = (u64::MAX / 7 + 2).to_string();
    for (element, path, filter) in [("t-offset", "/deals", "title LIKE '%7%'"), ("t-cursor", "/companies", "")] {
        let a = hub.get(element, path, &[("pageSize", "7"), ("page", &page), ("where", filter)]).await;
        a.failed(StatusCode::BAD_REQUEST, &["page is too large"]);
    }
    assert_eq!(hub.vendor.seen().len(), before, "nothing asked of the vendor");
}

/// A paging answer is read as the vendor means it (shapes in each element file):
/// `has_more: true` without a cursor, a `has_more` that is not a boolean, and a `Link`
/// header that does not parse are 502s, not the end of the list; an empty cursor ends
/// the list and a numeric one is a cursor.
#[tokio::test]
async fn paging_answers_are_read_as_the_vendor_means_them() {
    let hub = start().await;
    hub.vendor.set(NO_CURSOR);
    hub.get("t-cursor", "/tickets", &[("pageSize", "7")]).await.failed(StatusCode::BAD_GATEWAY, &["t-cursor", "/tickets", "names no next page"]);
    hub.vendor.set(MORE_AS_TEXT);
    hub.get("t-cursor", "/tickets", &[("pageSize", "7")]).await.failed(StatusCode::BAD_GATEWAY, &["t-cursor", "/tickets", "not true or false"]);
    hub.vendor.set(BAD_LINK);
    hub.get("t-linkheader", "/items", &[("pageSize", "7")]).await.failed(StatusCode::BAD_GATEWAY, &["t-linkheader", "/items", "does not parse"]);
    hub.vendor.set(EMPTY_CURSOR);
    for size in [7, 100] {
        assert_eq!(hub.pages("t-cursor", "/companies", &[], size).await.concat(), one_to(TOTAL), "page size {size}");
    }
}

/// A next-page link that repeats the API key (a vendor echoing the request's
/// parameters): the key is neither kept in the token (signed, not encrypted) nor sent
/// a second time as a parameter.
#[tokio::test]
async fn a_secret_in_a_next_link_stays_out_of_the_token() {
    use base64::Engine as _;
    let hub = start().await;
    hub.vendor.set(ECHO_KEY);
    let first = hub.ok("t-nexturl", "/users", &[("pageSize", "100")]).await;
    let token = first.next().expect("a next page");
    let payload = token.split('.').next().unwrap();
    let payload = String::from_utf8(base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap();
    assert!(payload.contains("per_page=100") && !payload.contains(KEY), "{payload}");
    let before = hub.vendor.seen().len();
    let second = hub.ok("t-nexturl", "/users", &[("pageSize", "100"), ("nextPage", &token)]).await;
    assert_eq!(second.ids(), (101..=TOTAL).collect::<Vec<_>>());
    let sent = &hub.vendor.seen()[before];
    assert!(sent.query.contains("page=2") && !sent.query.contains(KEY), "{}", sent.query);
}

/// An engine filter reads at most 20 vendor pages a call on link paging as on page
/// paging (a filter that matches nothing must not read a whole store in one call),
/// and its token goes on where the scan stopped. A short page is the last one: no
/// read past it.
#[tokio::test]
async fn scans_stop_at_twenty_vendor_pages_and_short_pages_end_reading() {
    let hub = start().await;
    let query = [("pageSize", "5"), ("where", "name LIKE 'zzz%'")];
    let before = hub.vendor.seen().len();
    let first = hub.ok("t-linkheader", "/items", &query).await;
    assert_eq!((first.ids(), hub.vendor.seen().len() - before), (vec![], 20));
    let token = first.next().expect("a token where the scan stopped");
    let before = hub.vendor.seen().len();
    let rest = hub.ok("t-linkheader", "/items", &[query[0], query[1], ("nextPage", &token)]).await;
    // 120 items at 5 a page: the last 4 pages.
    assert_eq!((rest.ids(), rest.next(), hub.vendor.seen().len() - before), (vec![], None, 4));

    let before = hub.vendor.seen().len();
    let won = hub.ok("t-offset", "/deals", &[("pageSize", "60"), ("where", "status = 'won'")]).await;
    assert_eq!((won.ids().len(), won.next()), (20, None));
    assert_eq!(hub.vendor.seen().len() - before, 1, "20 of 60: nothing more to read");
}

/// A next-page link to another host is not followed (502, nothing sent there), and a
/// vendor cursor that cannot fit in a 2 KB token is a 502 rather than a token that
/// breaks headers and query strings.
#[tokio::test]
async fn next_links_stay_on_the_instance_host_and_tokens_stay_small() {
    let hub = start().await;
    hub.vendor.set(FOREIGN);
    for (element, path) in [("t-linkheader", "/items"), ("t-nexturl", "/users")] {
        let before = hub.vendor.seen().len();
        // The first page's link is checked when it is read: a hub page that needs it for
        // its token (page 1) or its records (page 2) fails.
        for page in ["1", "2"] {
            let a = hub.get(element, path, &[("pageSize", "7"), ("page", page)]).await;
            a.failed(StatusCode::BAD_GATEWAY, &[element, path, "localhost", "not followed"]);
        }
        assert_eq!(hub.vendor.seen().len() - before, 2, "{element}: one read per call, nothing sent to localhost");
    }
    hub.vendor.set(LONG_CURSOR);
    let a = hub.get("t-cursor", "/contacts", &[("pageSize", "7")]).await;
    a.failed(StatusCode::BAD_GATEWAY, &["t-cursor", "/contacts", "nextPage token", "2048"]);
    hub.vendor.set(NORMAL);
    let a = hub.ok("t-cursor", "/contacts", &[("pageSize", "7")]).await;
    assert!(a.next().unwrap().len() < 300, "a token is small: {}", a.next().unwrap().len());
}
