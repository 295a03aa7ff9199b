//! Four test vendors, each shaped after a popular REST API and combining what the
//! element format must express the way that API does (issue 16, "Done when"):
//!
//! - A, `shopify-like`: `Link: <...>; rel="next"` cursor paging, records under a key,
//!   one record in an envelope, `.json` item paths, a count call, a token in a header;
//! - B, `hubspot-like`: the cursor in the body, a bearer token, a list that is a `POST`
//!   search into whose body CEQL filters render, a total in the search answer;
//! - C, `zendesk-like`: the next page's absolute URL in the body with `has_more`,
//!   one record in an envelope, HTTP Basic with the user `{email}/token`;
//! - D, `pipedrive-like`: offset paging, an API key in the query, a total in the body,
//!   `null` for an empty list, answers wrapped in `{"success", "data"}`.
//!
//! Each is an axum app written here (in its own module below) over the shared plumbing
//! of this file: 120 records, a log of every request, the one credential it accepts
//! (anything else is its own 401) and the 429s it is told to answer next. Its element
//! file in `tests/elements_vendors/` names the vendor documentation each rule follows.
//! The vendors are never stricter than the APIs they stand for: a `limit` above the
//! maximum is answered with the maximum (the test checks the engine never asks for more),
//! unknown parameters are ignored.
//!
//! For each vendor, through the hub: every record exactly once through `nextPage` at
//! page sizes 7, 50 and the vendor's maximum; get, create, update, delete and count on
//! plain records; a CEQL filter the vendor receives and answers; the credential where
//! the vendor wants it; a short 429 waited out once, and a long one answered 429 with
//! `Retry-After`, each in the vendor's own headers as its element's `throttle` declares.

mod common;

use common::Answer;

use std::collections::{BTreeMap, VecDeque};
use std::marker::PhantomData;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode as AxStatus};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use base64::Engine as _;
use reqwest::{Method, StatusCode};
use serde_json::{json, Map, Value};
use switchyard_elements::Catalog;

/// Records every test vendor starts with.
const TOTAL: u64 = 120;

// ============================================================================
// Shared vendor plumbing

/// One request a test vendor received.
#[derive(Clone, Debug)]
struct Seen {
    method: String,
    path: String,
    query: Vec<(String, String)>,
    headers: HeaderMap,
    /// The JSON body (`null` when there is none or it is not JSON).
    body: Value,
    at: Instant,
}

impl Seen {
    fn param(&self, name: &str) -> Option<&str> {
        self.query.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
    /// The number in query parameter `name`; `default` when absent, `None` when not a number.
    fn number(&self, name: &str, default: u64) -> Option<u64> {
        self.param(name).map_or(Some(default), |v| v.parse().ok())
    }
}

/// A 429 a vendor is told to answer: its headers and body.
type Throttled = (Vec<(&'static str, String)>, Value);

/// What every test vendor holds, shared by its handlers and the test.
#[derive(Clone)]
struct Vendor {
    /// `http://127.0.0.1:PORT`
    base: String,
    records: Arc<Mutex<BTreeMap<u64, Value>>>,
    seen: Arc<Mutex<Vec<Seen>>>,
    /// The credential the vendor accepts, as the shape's `presented` reads it.
    credential: Arc<Mutex<String>>,
    throttles: Arc<Mutex<VecDeque<Throttled>>>,
    presented: fn(&Seen) -> Option<String>,
    refusal: fn() -> Response,
}

impl Vendor {
    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
    fn seen_since(&self, from: usize) -> Vec<Seen> {
        self.seen()[from..].to_vec()
    }
    /// The records in id order.
    fn all(&self) -> Vec<Value> {
        self.records.lock().unwrap().values().cloned().collect()
    }
    fn get(&self, id: u64) -> Option<Value> {
        self.records.lock().unwrap().get(&id).cloned()
    }
    /// Stores the record `make` builds from the next id; answers it.
    fn insert(&self, make: impl FnOnce(u64) -> Value) -> Value {
        let mut records = self.records.lock().unwrap();
        let id = records.keys().last().copied().unwrap_or(0) + 1;
        let record = make(id);
        records.insert(id, record.clone());
        record
    }
    /// Merges `changes` into record `id` (objects member by member); answers it.
    fn update(&self, id: u64, changes: &Value) -> Option<Value> {
        let mut records = self.records.lock().unwrap();
        let record = records.get_mut(&id)?;
        merge(record, changes);
        Some(record.clone())
    }
    fn remove(&self, id: u64) -> bool {
        self.records.lock().unwrap().remove(&id).is_some()
    }
    /// The next request that passes authentication is answered with this 429.
    fn throttle_next(&self, throttled: Throttled) {
        self.throttles.lock().unwrap().push_back(throttled);
    }
    fn accept(&self, credential: &str) {
        *self.credential.lock().unwrap() = credential.to_owned();
    }
}

/// `changes` written over `target`: objects merged member by member, anything else replaced.
fn merge(target: &mut Value, changes: &Value) {
    match (target, changes) {
        (Value::Object(t), Value::Object(c)) => {
            for (k, v) in c {
                match t.get_mut(k) {
                    Some(old) if old.is_object() && v.is_object() => merge(old, v),
                    _ => {
                        t.insert(k.clone(), v.clone());
                    }
                }
            }
        }
        (t, c) => *t = c.clone(),
    }
}

/// The id of a record, a number or a string of digits.
fn id_of(record: &Value) -> u64 {
    let id = &record["id"];
    id.as_u64().or_else(|| id.as_str()?.parse().ok()).unwrap_or_else(|| panic!("no id in {record}"))
}

/// The records (in id order) with an id above `after` that `keep` keeps: the first
/// `limit` of them, and whether more follow.
fn page_after(records: &[Value], after: u64, limit: u64, keep: impl Fn(&Value) -> bool) -> (Vec<Value>, bool) {
    let rest: Vec<&Value> = records.iter().filter(|r| id_of(r) > after && keep(r)).collect();
    let page = rest.iter().take(limit as usize).map(|r| (*r).clone()).collect();
    (page, rest.len() as u64 > limit)
}

fn reply(status: u16, body: Value) -> Response {
    (AxStatus::from_u16(status).unwrap(), Json(body)).into_response()
}

/// Every request: logged, refused with the vendor's own 401 unless it carries the
/// credential where the vendor wants it, answered with a 429 it was told to answer.
async fn guard(State(v): State<Vendor>, request: Request, next: Next) -> Response {
    let (parts, body) = request.into_parts();
    let bytes: Bytes = axum::body::to_bytes(body, 1 << 20).await.unwrap_or_default();
    let seen = Seen {
        method: parts.method.to_string(),
        path: parts.uri.path().to_owned(),
        query: url::form_urlencoded::parse(parts.uri.query().unwrap_or("").as_bytes()).into_owned().collect(),
        headers: parts.headers.clone(),
        body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        at: Instant::now(),
    };
    v.seen.lock().unwrap().push(seen.clone());
    let expected = v.credential.lock().unwrap().clone();
    if (v.presented)(&seen).as_deref() != Some(expected.as_str()) {
        return (v.refusal)();
    }
    let throttled = v.throttles.lock().unwrap().pop_front();
    if let Some((headers, body)) = throttled {
        let mut r = reply(429, body);
        for (name, value) in headers {
            r.headers_mut().insert(name, value.parse().unwrap());
        }
        return r;
    }
    next.run(Request::from_parts(parts, Body::from(bytes))).await
}

/// One test vendor's shape: its element, its records, its routes, its door.
trait Shape {
    const ELEMENT: &'static str;
    const HUB: &'static str;
    /// The hub resource under test (`/orders`).
    const RESOURCE: &'static str;
    /// The vendor's largest page, as its element says.
    const MAX: u64;
    /// The vendor path of the list (without a query), for the request without a credential.
    const LIST: &'static str;
    /// Whether list answers carry a total (`Elements-Total-Count`).
    const TOTALS: bool;
    /// The credential the instances of the test carry.
    const TOKEN: &'static str;
    /// Record `i` (from 1) of the 120 the vendor starts with.
    fn seed(i: u64) -> Value;
    fn routes() -> Router<Vendor>;
    /// The instance configuration for the vendor at `base` with API token `token`.
    fn configuration(base: &str, token: &str) -> Value;
    /// The credential as the vendor reads it from a request, where it documents it.
    fn presented(request: &Seen) -> Option<String>;
    /// What `presented` reads from a request an instance with `token` sends.
    fn credential(token: &str) -> String {
        token.to_owned()
    }
    /// The vendor's answer to a missing or wrong credential (a 401).
    fn refusal() -> Response;
    /// For a request that lists the resource: the page size it asked for.
    fn list_size(request: &Seen) -> Option<u64>;
}

/// Starts the vendor of shape `S` on a loopback port.
async fn start_vendor<S: Shape>() -> Vendor {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let vendor = Vendor {
        base: format!("http://{}", listener.local_addr().unwrap()),
        records: Arc::new(Mutex::new((1..=TOTAL).map(|i| (i, S::seed(i))).collect())),
        seen: Arc::default(),
        credential: Arc::new(Mutex::new(S::credential(S::TOKEN))),
        throttles: Arc::default(),
        presented: S::presented,
        refusal: S::refusal,
    };
    let app = S::routes().layer(middleware::from_fn_with_state(vendor.clone(), guard)).with_state(vendor.clone());
    tokio::spawn(async move { axum::serve(listener, app).await });
    vendor
}

// ============================================================================
// The platform and the checks every vendor goes through

/// A header of `a` read as a number.
fn number(a: &Answer, header: &str) -> Option<u64> {
    a.headers.get(header).map(|v| v.to_str().unwrap().parse().unwrap())
}

/// The server with the built-in elements and those of `tests/elements_vendors/`,
/// one instance of `S`'s element on its vendor.
struct Trial<S> {
    vendor: Vendor,
    api: String,
    /// The organization's user.
    user: String,
    /// The instance's hub calls.
    auth: String,
    http: reqwest::Client,
    _dir: tempfile::TempDir,
    _shape: PhantomData<S>,
}

impl<S: Shape> Trial<S> {
    async fn start() -> Self {
        let vendor = start_vendor::<S>().await;
        let mut catalog = Catalog::builtin();
        let loaded = catalog.load_dir(&Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/elements_vendors")).unwrap();
        assert_eq!(loaded, 4);
        let (api, user, dir) = common::serve_catalog(catalog).await;
        let mut trial = Trial { vendor, api, user, auth: String::new(), http: reqwest::Client::new(), _dir: dir, _shape: PhantomData };
        let created = trial.create_instance(S::TOKEN).await.ok();
        let token = created["token"].as_str().unwrap_or_else(|| panic!("{created}"));
        trial.auth = format!("{}, Element {token}", trial.user);
        trial
    }

    async fn send(&self, auth: &str, method: Method, path: &str, query: &[(&str, &str)], body: Option<Value>) -> Answer {
        let mut r = self.http.request(method, format!("{}{path}", self.api)).header("Authorization", auth).query(query);
        if let Some(b) = body {
            r = r.json(&b);
        }
        Answer::of(r).await
    }

    async fn create_instance(&self, token: &str) -> Answer {
        let body = json!({"element": {"key": S::ELEMENT}, "name": S::ELEMENT, "configuration": S::configuration(&self.vendor.base, token)});
        self.send(&self.user, Method::POST, "/instances", &[], Some(body)).await
    }

    /// `method /hubs/{hub}{resource}{rest}` for the instance.
    async fn hub(&self, method: Method, rest: &str, query: &[(&str, &str)], body: Option<Value>) -> Answer {
        self.send(&self.auth, method, &format!("/hubs/{}{}{rest}", S::HUB, S::RESOURCE), query, body).await
    }

    async fn count(&self, query: &[(&str, &str)]) -> u64 {
        let body = self.hub(Method::GET, "/count", query, None).await.ok();
        body["count"].as_u64().unwrap_or_else(|| panic!("{body}"))
    }

    /// Every page of the list through `nextPage`: each page but the last holds exactly
    /// `size` records.
    async fn pages(&self, query: &[(&str, &str)], size: u64) -> Vec<Vec<Value>> {
        let size_text = size.to_string();
        let (mut pages, mut token) = (Vec::new(), None::<String>);
        loop {
            let mut q = query.to_vec();
            q.push(("pageSize", &size_text));
            if let Some(t) = &token {
                q.push(("nextPage", t));
            }
            let a = self.hub(Method::GET, "", &q, None).await;
            assert_eq!(a.status, StatusCode::OK, "{} page {} of {size}: {}", S::ELEMENT, pages.len() + 1, a.body);
            let records = a.body.as_array().unwrap_or_else(|| panic!("not a list: {}", a.body)).clone();
            assert_eq!(number(&a, "Elements-Returned-Count"), Some(records.len() as u64));
            if S::TOTALS && query.is_empty() {
                assert_eq!(number(&a, "Elements-Total-Count"), Some(TOTAL), "{}: the vendor's total", S::ELEMENT);
            }
            pages.push(records);
            assert!(pages.len() as u64 <= TOTAL + 1, "{}: the list does not end", S::ELEMENT);
            match a.next() {
                Some(t) => {
                    assert_eq!(pages.last().unwrap().len() as u64, size, "{}: a page before the last is not full", S::ELEMENT);
                    token = Some(t);
                }
                None => return pages,
            }
        }
    }

    /// Every record exactly once through `nextPage`, at page sizes 7, 50 and the
    /// vendor's maximum, the vendor never asked for more than its maximum.
    async fn every_record_once(&self) {
        for size in [7, 50, S::MAX] {
            let before = self.vendor.seen().len();
            let pages = self.pages(&[], size).await;
            let mut ids: Vec<u64> = pages.iter().flatten().map(id_of).collect();
            assert_eq!(ids.len() as u64, TOTAL, "{} at {size}: {ids:?}", S::ELEMENT);
            ids.sort_unstable();
            ids.dedup();
            assert_eq!(ids, (1..=TOTAL).collect::<Vec<_>>(), "{} at {size}: each record once", S::ELEMENT);
            assert_eq!(pages.len() as u64, TOTAL.div_ceil(size), "{} at {size}", S::ELEMENT);
            let asked: Vec<u64> = self.vendor.seen_since(before).iter().filter_map(S::list_size).collect();
            assert!(!asked.is_empty() && asked.iter().all(|n| *n <= S::MAX), "{} at {size}: page sizes asked {asked:?}", S::ELEMENT);
        }
    }

    /// A CEQL `clause` pushed to the vendor: the records whose ids are `want`, at pages
    /// of 7, each page one vendor call (the vendor filtered, the engine scanned
    /// nothing), and the first call as `received` expects it.
    async fn filter_pushed(&self, clause: &str, want: &[u64], received: impl Fn(&Seen) -> bool) {
        let before = self.vendor.seen().len();
        let pages = self.pages(&[("where", clause)], 7).await;
        let ids: Vec<u64> = pages.iter().flatten().map(id_of).collect();
        assert_eq!(ids, want, "{} where {clause}", S::ELEMENT);
        let calls: Vec<Seen> = self.vendor.seen_since(before).into_iter().filter(|s| S::list_size(s).is_some()).collect();
        assert_eq!(calls.len(), pages.len(), "{}: one vendor call per page", S::ELEMENT);
        assert!(received(&calls[0]), "{}: the vendor did not receive the filter: {:?}", S::ELEMENT, calls[0]);
    }

    /// Count, create, get (also cut by `fields`), update, get, delete, get (404) and
    /// count again, on plain records; answers the record as created and as updated.
    async fn records(&self, create: Value, change: Value) -> (Value, Value) {
        assert_eq!(self.count(&[]).await, TOTAL);
        let created = self.hub(Method::POST, "", &[], Some(create)).await.ok();
        let id = id_of(&created);
        assert!(id > TOTAL, "{created}");
        let item = format!("/{id}");
        assert_eq!(self.hub(Method::GET, &item, &[], None).await.ok(), created, "{}: the record as created", S::ELEMENT);
        let cut = self.hub(Method::GET, &item, &[("fields", "id")], None).await.ok();
        assert_eq!(cut, json!({"id": created["id"]}));
        assert_eq!(self.count(&[]).await, TOTAL + 1);
        let updated = self.hub(Method::PATCH, &item, &[], Some(change)).await.ok();
        assert_eq!(id_of(&updated), id);
        assert_eq!(self.hub(Method::GET, &item, &[], None).await.ok(), updated, "{}: the record as updated", S::ELEMENT);
        let deleted = self.hub(Method::DELETE, &item, &[], None).await;
        assert_eq!(deleted.status, StatusCode::OK, "{}", deleted.body);
        let gone = self.hub(Method::GET, &item, &[], None).await;
        assert_eq!(gone.status, StatusCode::NOT_FOUND, "{}", gone.body);
        assert_eq!(self.count(&[]).await, TOTAL);
        (created, updated)
    }

    /// The vendor refuses a request without the credential; an instance with a wrong
    /// one is refused at creation; a credential the vendor stops accepting is a 401.
    async fn credentials_checked(&self) {
        let bare = reqwest::get(format!("{}{}", self.vendor.base, S::LIST)).await.unwrap();
        assert_eq!(bare.status(), StatusCode::UNAUTHORIZED, "{}: a request without the credential", S::ELEMENT);
        let wrong = self.create_instance("not-the-token").await;
        assert_eq!(wrong.status, StatusCode::BAD_REQUEST, "{}", wrong.body);
        assert!(wrong.body["message"].as_str().unwrap().contains("401"), "{}", wrong.body);
        self.vendor.accept("revoked");
        let refused = self.hub(Method::GET, "", &[("pageSize", "3")], None).await;
        assert_eq!(refused.status, StatusCode::UNAUTHORIZED, "{}", refused.body);
        self.vendor.accept(&S::credential(S::TOKEN));
        assert_eq!(self.hub(Method::GET, "", &[("pageSize", "3")], None).await.ok().as_array().unwrap().len(), 3);
    }

    /// `short`, a 429 naming a wait of `short_wait` (within what the platform waits):
    /// waited out once, then the call succeeds. `long`, a 429 naming `long_wait` seconds
    /// (past it): the caller gets 429 with `Retry-After`, and the instance's next call
    /// does not reach the vendor.
    async fn throttled(&self, short: Throttled, short_wait: Duration, long: Throttled, long_wait: u64) {
        self.vendor.throttle_next(short);
        let before = self.vendor.seen().len();
        let record = self.hub(Method::GET, "/5", &[], None).await.ok();
        assert_eq!(id_of(&record), 5);
        let calls = self.vendor.seen_since(before);
        assert_eq!(calls.len(), 2, "{}: the throttled call and one retry", S::ELEMENT);
        let waited = calls[1].at - calls[0].at;
        assert!(waited >= short_wait, "{}: retried after {waited:?}, before the {short_wait:?} the vendor named", S::ELEMENT);

        self.vendor.throttle_next(long);
        let before = self.vendor.seen().len();
        let a = self.hub(Method::GET, "/6", &[], None).await;
        assert_eq!(a.status, StatusCode::TOO_MANY_REQUESTS, "{}: {}", S::ELEMENT, a.body);
        assert_eq!(a.body["message"], "The vendor answered 429");
        let retry_after = number(&a, "Retry-After").unwrap();
        assert!((long_wait - 1..=long_wait).contains(&retry_after), "{}: Retry-After {retry_after}, not {long_wait}", S::ELEMENT);
        assert_eq!(self.vendor.seen().len() - before, 1, "{}: not retried into the refusal", S::ELEMENT);
        let again = self.hub(Method::GET, "/7", &[], None).await;
        assert_eq!(again.status, StatusCode::TOO_MANY_REQUESTS, "{}", again.body);
        assert!(number(&again, "Retry-After").unwrap() <= retry_after);
        assert_eq!(self.vendor.seen().len() - before, 1, "{}: the paused instance does not call its vendor", S::ELEMENT);
    }
}

/// `2024-01-01T00:MM:SSZ` for record `i`: one second apart.
fn created(i: u64) -> String {
    format!("2024-01-01T{:02}:{:02}:{:02}Z", i / 3600, i / 60 % 60, i % 60)
}

const LATER: &str = "2024-06-01T12:00:00Z";

/// An RFC 3339 instant, for the vendors' date filters.
fn instant(text: &str) -> Option<chrono::DateTime<chrono::FixedOffset>> {
    chrono::DateTime::parse_from_rfc3339(text).ok()
}

/// Whether every member of `part` is in `record` with the same value (objects compared
/// member by member).
fn holds(record: &Value, part: &Value) -> bool {
    match (record, part) {
        (Value::Object(r), Value::Object(p)) => p.iter().all(|(k, v)| r.get(k).is_some_and(|rv| holds(rv, v))),
        (r, p) => r == p,
    }
}

// ============================================================================
// A: Shopify-like. Orders under `/admin/api/2024-01`.

mod shopify {
    use super::*;
    use axum::extract::{Path as UrlPath, Query};
    use axum::routing::get;

    pub struct Shopify;

    const API: &str = "/admin/api/2024-01";
    const MAX: u64 = 250;

    fn financial_status(i: u64) -> &'static str {
        if i % 3 == 0 {
            "paid"
        } else {
            "pending"
        }
    }

    /// Where a list stands: its filters, and the last id shown (`page_info` carries both).
    #[derive(serde::Serialize, serde::Deserialize, Clone)]
    struct Position {
        after: u64,
        status: Option<String>,
        financial_status: Option<String>,
        created_at_min: Option<String>,
        created_at_max: Option<String>,
    }

    impl Position {
        fn from_query(q: &BTreeMap<String, String>) -> Position {
            Position {
                after: 0,
                status: q.get("status").cloned(),
                financial_status: q.get("financial_status").cloned(),
                created_at_min: q.get("created_at_min").cloned(),
                created_at_max: q.get("created_at_max").cloned(),
            }
        }
        fn keeps(&self, order: &Value) -> bool {
            let closed = !order["closed_at"].is_null();
            let status = match self.status.as_deref().unwrap_or("open") {
                "open" => !closed,
                "closed" => closed,
                "any" => true,
                _ => false,
            };
            let at = instant(order["created_at"].as_str().unwrap());
            status
                && self.financial_status.as_ref().is_none_or(|f| order["financial_status"] == f.as_str())
                && self.created_at_min.as_deref().is_none_or(|m| instant(m).is_some_and(|m| at >= Some(m)))
                && self.created_at_max.as_deref().is_none_or(|m| instant(m).is_some_and(|m| at <= Some(m)))
        }
        fn page_info(&self) -> String {
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(serde_json::to_vec(self).unwrap())
        }
    }

    fn not_found() -> Response {
        reply(404, json!({"errors": "Not Found"}))
    }

    /// `GET orders.json?limit&status&financial_status&created_at_min&created_at_max`, or
    /// `?limit&page_info` (which takes no other filter); `Link` to the next page.
    async fn list(State(v): State<Vendor>, Query(q): Query<BTreeMap<String, String>>) -> Response {
        let limit = match q.get("limit").map(|l| l.parse::<u64>()) {
            None => 50,
            Some(Ok(n)) if n >= 1 => n.min(MAX),
            _ => return reply(400, json!({"errors": {"limit": "Invalid limit"}})),
        };
        let position = match q.get("page_info") {
            Some(info) => {
                if q.keys().any(|k| k != "page_info" && k != "limit" && k != "fields") {
                    return reply(400, json!({"errors": {"page_info": "Invalid value: page_info cannot be combined with other filters"}}));
                }
                let decoded = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(info).ok();
                match decoded.and_then(|d| serde_json::from_slice::<Position>(&d).ok()) {
                    Some(p) => p,
                    None => return reply(400, json!({"errors": {"page_info": "Invalid value."}})),
                }
            }
            None => Position::from_query(&q),
        };
        let (orders, more) = page_after(&v.all(), position.after, limit, |o| position.keeps(o));
        let mut headers = HeaderMap::new();
        let link = |rel: &str, p: &Position| format!("<{}{API}/orders.json?limit={limit}&page_info={}>; rel=\"{rel}\"", v.base, p.page_info());
        let mut links = Vec::new();
        if position.after > 0 {
            links.push(link("previous", &Position { after: 0, ..position.clone() }));
        }
        if more {
            links.push(link("next", &Position { after: id_of(orders.last().unwrap()), ..position }));
        }
        if !links.is_empty() {
            headers.insert("link", links.join(", ").parse().unwrap());
        }
        (headers, Json(json!({"orders": orders}))).into_response()
    }

    async fn count(State(v): State<Vendor>, Query(q): Query<BTreeMap<String, String>>) -> Response {
        let position = Position::from_query(&q);
        reply(200, json!({"count": v.all().iter().filter(|o| position.keeps(o)).count()}))
    }

    /// The order in a `{"order": {...}}` body.
    fn order_in(body: &Value) -> Option<&Map<String, Value>> {
        body.get("order")?.as_object()
    }

    fn missing_order() -> Response {
        reply(400, json!({"errors": {"order": "Required parameter missing or invalid"}}))
    }

    async fn create(State(v): State<Vendor>, Json(body): Json<Value>) -> Response {
        let Some(fields) = order_in(&body) else { return missing_order() };
        let order = v.insert(|id| {
            let mut order = json!({"id": id, "name": format!("#{}", 1000 + id), "email": "", "financial_status": "pending",
                "note": null, "closed_at": null, "created_at": LATER, "updated_at": LATER});
            merge(&mut order, &Value::Object(fields.clone()));
            order["id"] = id.into();
            order
        });
        reply(201, json!({"order": order}))
    }

    /// `{id}.json` as a record id.
    fn id_in(file: &str) -> Option<u64> {
        file.strip_suffix(".json")?.parse().ok()
    }

    async fn read(State(v): State<Vendor>, UrlPath(file): UrlPath<String>) -> Response {
        match id_in(&file).and_then(|id| v.get(id)) {
            Some(order) => reply(200, json!({"order": order})),
            None => not_found(),
        }
    }

    async fn update(State(v): State<Vendor>, UrlPath(file): UrlPath<String>, Json(body): Json<Value>) -> Response {
        let Some(id) = id_in(&file) else { return not_found() };
        let Some(fields) = order_in(&body) else { return missing_order() };
        let mut changes = fields.clone();
        changes.remove("id");
        changes.insert("updated_at".into(), json!("2024-06-02T12:00:00Z"));
        match v.update(id, &Value::Object(changes)) {
            Some(order) => reply(200, json!({"order": order})),
            None => not_found(),
        }
    }

    async fn delete(State(v): State<Vendor>, UrlPath(file): UrlPath<String>) -> Response {
        if id_in(&file).is_some_and(|id| v.remove(id)) {
            reply(200, json!({}))
        } else {
            not_found()
        }
    }

    impl Shape for Shopify {
        const ELEMENT: &'static str = "shopify-like";
        const HUB: &'static str = "ecommerce";
        const RESOURCE: &'static str = "/orders";
        const MAX: u64 = MAX;
        const LIST: &'static str = "/admin/api/2024-01/orders.json";
        const TOTALS: bool = false;
        const TOKEN: &'static str = "shpat_4f3c2b1a0099887766";

        fn seed(i: u64) -> Value {
            let closed = (i % 5 == 0).then(|| created(i));
            json!({"id": i, "name": format!("#{}", 1000 + i), "email": format!("buyer{i}@example.test"),
                "financial_status": financial_status(i), "note": null, "closed_at": closed,
                "created_at": created(i), "updated_at": created(i)})
        }
        fn routes() -> Router<Vendor> {
            Router::new()
                .route(&format!("{API}/shop.json"), get(|| async { Json(json!({"shop": {"name": "test shop"}})) }))
                .route(&format!("{API}/orders.json"), get(list).post(create))
                .route(&format!("{API}/orders/count.json"), get(count))
                .route(&format!("{API}/orders/{{file}}"), get(read).put(update).delete(delete))
        }
        fn configuration(base: &str, token: &str) -> Value {
            json!({"store.url": base, "access.token": token})
        }
        fn presented(request: &Seen) -> Option<String> {
            request.header("x-shopify-access-token").map(str::to_owned)
        }
        fn refusal() -> Response {
            reply(401, json!({"errors": "[API] Invalid API key or access token (unrecognized login or wrong password)"}))
        }
        fn list_size(request: &Seen) -> Option<u64> {
            (request.method == "GET" && request.path == Self::LIST).then(|| request.number("limit", 50)).flatten()
        }
    }

    #[tokio::test]
    async fn shopify_like_orders() {
        let t = Trial::<Shopify>::start().await;
        t.every_record_once().await;
        // status=any from the element's `query` on the first call; links as the vendor wrote them.
        let lists: Vec<Seen> = t.vendor.seen().into_iter().filter(|s| Shopify::list_size(s).is_some()).collect();
        assert_eq!(lists[0].param("status"), Some("any"));
        assert!(lists[1].param("page_info").is_some() && lists[1].param("status").is_none(), "{:?}", lists[1]);

        let paid: Vec<u64> = (1..=TOTAL).filter(|i| financial_status(*i) == "paid").collect();
        t.filter_pushed("financial_status = 'paid'", &paid, |s| s.param("financial_status") == Some("paid")).await;
        assert_eq!(t.count(&[("where", "financial_status = 'paid'")]).await, paid.len() as u64);
        let seen = t.vendor.seen().pop().unwrap();
        assert_eq!((seen.path.as_str(), seen.param("financial_status"), seen.param("status")), ("/admin/api/2024-01/orders/count.json", Some("paid"), Some("any")));
        // Both bounds of a date, inclusive.
        let (from, to) = (created(30), created(41));
        let between = format!("created_at >= '{from}' AND created_at <= '{to}'");
        t.filter_pushed(&between, &(30..=41).collect::<Vec<_>>(), |s| s.param("created_at_min").is_some() && s.param("created_at_max").is_some()).await;

        let (made, changed) = t.records(json!({"email": "ada@example.test", "note": "gift wrap"}), json!({"note": "leave at the door"})).await;
        assert!(holds(&made, &json!({"email": "ada@example.test", "note": "gift wrap", "financial_status": "pending"})), "{made}");
        assert!(holds(&changed, &json!({"email": "ada@example.test", "note": "leave at the door"})), "{changed}");
        let writes: Vec<Seen> = t.vendor.seen().into_iter().filter(|s| s.method == "POST" || s.method == "PUT").collect();
        assert_eq!(writes[0].body, json!({"order": {"email": "ada@example.test", "note": "gift wrap"}}));
        assert_eq!((writes[1].path.as_str(), &writes[1].body), (&*format!("{API}/orders/121.json"), &json!({"order": {"note": "leave at the door"}})));

        t.credentials_checked().await;
        let body = json!({"errors": "Exceeded 2 calls per second for api client. Reduce request rates to resume uninterrupted service."});
        t.throttled((vec![("retry-after", "1.5".into())], body.clone()), Duration::from_millis(1500), (vec![("retry-after", "45.0".into())], body), 45)
            .await;
    }
}

// ============================================================================
// B: HubSpot-like. Contacts, searched by POST.

mod hubspot {
    use super::*;
    use axum::extract::{Path as UrlPath, Query};
    use axum::routing::{get, post};

    pub struct HubSpot;

    /// A search page's largest size.
    const MAX: u64 = 200;
    /// Properties every search result carries whatever was asked.
    const ALWAYS: [&str; 3] = ["createdate", "lastmodifieddate", "hs_object_id"];

    fn stage(i: u64) -> &'static str {
        if i % 4 == 0 {
            "customer"
        } else {
            "lead"
        }
    }

    fn error(status: u16, category: &str, message: &str) -> Response {
        reply(status, json!({"status": "error", "message": message, "category": category, "correlationId": "00000000-0000-0000-0000-000000000000"}))
    }

    fn not_found() -> Response {
        error(404, "OBJECT_NOT_FOUND", "resource not found")
    }

    /// `record` with only the properties in `wanted` (and those always given).
    fn with_properties(record: &Value, wanted: &[String]) -> Value {
        let mut out = record.clone();
        if let Some(props) = out["properties"].as_object_mut() {
            props.retain(|k, _| wanted.contains(k) || ALWAYS.contains(&k.as_str()));
        }
        out
    }

    /// One search filter on a record: `EQ`, `GTE`, `LTE` on a property (dates as instants).
    fn passes(record: &Value, filter: &Value) -> Result<bool, String> {
        let name = filter["propertyName"].as_str().ok_or("a filter without propertyName")?;
        let want = filter["value"].as_str().ok_or("a filter without a string value")?;
        let have = record["properties"][name].as_str().unwrap_or("");
        let order = match (instant(have), instant(want)) {
            (Some(h), Some(w)) => h.cmp(&w),
            _ => have.cmp(want),
        };
        match filter["operator"].as_str() {
            Some("EQ") => Ok(have == want),
            Some("GTE") => Ok(order.is_ge()),
            Some("LTE") => Ok(order.is_le()),
            other => Err(format!("operator {other:?} is not one this test vendor knows")),
        }
    }

    /// `POST /crm/v3/objects/contacts/search`: filterGroups (OR of ANDs), properties,
    /// limit (at most 200), after; `total`, `results`, `paging.next.after`.
    async fn search(State(v): State<Vendor>, Json(body): Json<Value>) -> Response {
        let limit = match &body["limit"] {
            Value::Null => 10,
            n => match n.as_u64() {
                Some(n) if n >= 1 => n.min(MAX),
                _ => return error(400, "VALIDATION_ERROR", "limit must be a positive number"),
            },
        };
        let after = match &body["after"] {
            Value::Null => 0,
            Value::String(s) => match s.parse::<u64>() {
                Ok(n) => n,
                Err(_) => return error(400, "VALIDATION_ERROR", "after must be a paging cursor"),
            },
            _ => return error(400, "VALIDATION_ERROR", "after must be a string"),
        };
        let groups = body["filterGroups"].as_array().cloned().unwrap_or_default();
        let mut matching = Vec::new();
        for record in v.all() {
            let mut any = groups.is_empty();
            for group in &groups {
                let mut all = true;
                for filter in group["filters"].as_array().map(Vec::as_slice).unwrap_or_default() {
                    match passes(&record, filter) {
                        Ok(p) => all &= p,
                        Err(e) => return error(400, "VALIDATION_ERROR", &e),
                    }
                }
                any |= all;
            }
            if any {
                matching.push(record);
            }
        }
        let wanted: Vec<String> = body["properties"].as_array().map(|p| p.iter().filter_map(|s| s.as_str().map(str::to_owned)).collect()).unwrap_or_default();
        let (page, more) = page_after(&matching, after, limit, |_| true);
        let mut answer = json!({"total": matching.len(), "results": page.iter().map(|r| with_properties(r, &wanted)).collect::<Vec<_>>()});
        if more {
            let last = id_of(page.last().unwrap()).to_string();
            answer["paging"] = json!({"next": {"after": last, "link": format!("?after={last}")}});
        }
        reply(200, answer)
    }

    /// `GET /crm/v3/objects/contacts?limit&after` (at most 100): the credential check.
    async fn list(State(v): State<Vendor>, Query(q): Query<BTreeMap<String, String>>) -> Response {
        let limit = q.get("limit").and_then(|l| l.parse::<u64>().ok()).unwrap_or(10).clamp(1, 100);
        let after = q.get("after").and_then(|a| a.parse().ok()).unwrap_or(0);
        let (page, _) = page_after(&v.all(), after, limit, |_| true);
        reply(200, json!({"results": page}))
    }

    fn properties_in(body: &Value) -> Option<&Map<String, Value>> {
        body.get("properties")?.as_object()
    }

    fn no_properties() -> Response {
        error(400, "VALIDATION_ERROR", "Invalid input JSON: properties is required")
    }

    async fn create(State(v): State<Vendor>, Json(body): Json<Value>) -> Response {
        let Some(props) = properties_in(&body) else { return no_properties() };
        let contact = v.insert(|id| {
            let mut properties = json!({"createdate": LATER, "lastmodifieddate": LATER, "hs_object_id": id.to_string()});
            merge(&mut properties, &Value::Object(props.clone()));
            json!({"id": id.to_string(), "properties": properties, "createdAt": LATER, "updatedAt": LATER, "archived": false})
        });
        reply(201, contact)
    }

    async fn read(State(v): State<Vendor>, UrlPath(id): UrlPath<String>) -> Response {
        match id.parse().ok().and_then(|id| v.get(id)) {
            Some(contact) => reply(200, contact),
            None => not_found(),
        }
    }

    async fn update(State(v): State<Vendor>, UrlPath(id): UrlPath<String>, Json(body): Json<Value>) -> Response {
        let Some(props) = properties_in(&body) else { return no_properties() };
        let changes = json!({"properties": props, "updatedAt": "2024-06-02T12:00:00Z"});
        match id.parse().ok().and_then(|id| v.update(id, &changes)) {
            Some(contact) => reply(200, contact),
            None => not_found(),
        }
    }

    async fn delete(State(v): State<Vendor>, UrlPath(id): UrlPath<String>) -> Response {
        if id.parse().ok().is_some_and(|id| v.remove(id)) {
            AxStatus::NO_CONTENT.into_response()
        } else {
            not_found()
        }
    }

    impl Shape for HubSpot {
        const ELEMENT: &'static str = "hubspot-like";
        const HUB: &'static str = "crm";
        const RESOURCE: &'static str = "/contacts";
        const MAX: u64 = MAX;
        const LIST: &'static str = "/crm/v3/objects/contacts";
        const TOTALS: bool = true;
        const TOKEN: &'static str = "pat-na1-0a1b2c3d-4e5f-6789";

        fn seed(i: u64) -> Value {
            json!({"id": i.to_string(), "properties": {"email": format!("c{i}@example.test"), "firstname": format!("Contact {i}"),
                "lifecyclestage": stage(i), "createdate": created(i), "lastmodifieddate": created(i), "hs_object_id": i.to_string()},
                "createdAt": created(i), "updatedAt": created(i), "archived": false})
        }
        fn routes() -> Router<Vendor> {
            Router::new()
                .route("/crm/v3/objects/contacts", get(list).post(create))
                .route("/crm/v3/objects/contacts/search", post(search))
                .route("/crm/v3/objects/contacts/{id}", get(read).patch(update).delete(delete))
        }
        fn configuration(base: &str, token: &str) -> Value {
            json!({"base.url": base, "access.token": token})
        }
        fn presented(request: &Seen) -> Option<String> {
            request.header("authorization")?.strip_prefix("Bearer ").map(str::to_owned)
        }
        fn refusal() -> Response {
            error(401, "INVALID_AUTHENTICATION", "Authentication credentials not found. This API supports OAuth 2.0 authentication.")
        }
        fn list_size(request: &Seen) -> Option<u64> {
            (request.method == "POST" && request.path.ends_with("/search")).then(|| request.body["limit"].as_u64().unwrap_or(10))
        }
    }

    #[tokio::test]
    async fn hubspot_like_contacts() {
        let t = Trial::<HubSpot>::start().await;
        t.every_record_once().await;
        let searches: Vec<Seen> = t.vendor.seen().into_iter().filter(|s| HubSpot::list_size(s).is_some()).collect();
        assert_eq!(
            searches[0].body,
            json!({"filterGroups": [{"filters": []}], "properties": ["email", "firstname", "lifecyclestage"],
                "sorts": [{"propertyName": "hs_object_id", "direction": "ASCENDING"}], "limit": 7}),
            "the first page: no cursor"
        );
        assert_eq!(searches[1].body["after"], "7");

        let customers: Vec<u64> = (1..=TOTAL).filter(|i| stage(*i) == "customer").collect();
        let wanted = json!([{"propertyName": "lifecyclestage", "operator": "EQ", "value": "customer"}]);
        t.filter_pushed("properties.lifecyclestage = 'customer'", &customers, |s| s.body["filterGroups"][0]["filters"] == wanted).await;
        assert_eq!(t.count(&[("where", "properties.lifecyclestage = 'customer'")]).await, customers.len() as u64);
        let last = t.vendor.seen().pop().unwrap();
        assert_eq!((last.body["limit"].as_u64(), &last.body["filterGroups"][0]["filters"]), (Some(1), &wanted), "a count is a one-record search");
        let (from, to) = (created(30), created(41));
        let bounds = json!([{"propertyName": "createdate", "operator": "GTE", "value": from}, {"propertyName": "createdate", "operator": "LTE", "value": to}]);
        t.filter_pushed(&format!("createdAt >= '{from}' AND createdAt <= '{to}'"), &(30..=41).collect::<Vec<_>>(), |s| s.body["filterGroups"][0]["filters"] == bounds)
            .await;

        // The record's own shape goes both ways: `{"properties": {...}}`.
        let (made, changed) = t
            .records(json!({"properties": {"email": "ada@example.test", "lifecyclestage": "lead"}}), json!({"properties": {"lifecyclestage": "customer"}}))
            .await;
        assert!(holds(&made, &json!({"id": "121", "properties": {"email": "ada@example.test", "lifecyclestage": "lead"}})), "{made}");
        assert!(holds(&changed, &json!({"properties": {"email": "ada@example.test", "lifecyclestage": "customer"}})), "{changed}");
        let update = t.vendor.seen().into_iter().find(|s| s.method == "PATCH").unwrap();
        assert_eq!((update.path.as_str(), &update.body), ("/crm/v3/objects/contacts/121", &json!({"properties": {"lifecyclestage": "customer"}})));

        t.credentials_checked().await;
        // The secondly limit spent: its 1 s window. The daily one: a day at most.
        let body = |policy: &str| json!({"status": "error", "message": format!("You have reached your {policy} limit."), "errorType": "RATE_LIMIT", "policyName": policy.to_uppercase()});
        let secondly = vec![("x-hubspot-ratelimit-secondly", "10".into()), ("x-hubspot-ratelimit-secondly-remaining", "0".into())];
        let daily = vec![("x-hubspot-ratelimit-daily", "250000".into()), ("x-hubspot-ratelimit-daily-remaining", "0".into())];
        t.throttled((secondly, body("secondly")), Duration::from_secs(1), (daily, body("daily")), 86_400).await;
    }
}

// ============================================================================
// C: Zendesk-like. Tickets, paged by their `links.next`.

mod zendesk {
    use super::*;
    use axum::extract::{Path as UrlPath, Query};
    use axum::routing::get;

    pub struct Zendesk;

    const MAX: u64 = 100;
    const EMAIL: &str = "agent@example.test";

    fn external_id(i: u64) -> String {
        format!("batch-{}", i % 4)
    }

    fn not_found() -> Response {
        reply(404, json!({"error": "RecordNotFound", "description": "Not found"}))
    }

    fn cursor(id: u64) -> String {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("{{\"o\":\"id\",\"v\":{id}}}"))
    }

    fn after_cursor(text: &str) -> Option<u64> {
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(text).ok()?;
        serde_json::from_slice::<Value>(&bytes).ok()?["v"].as_u64()
    }

    /// `GET /api/v2/tickets[.json]`: cursor pagination with `page[size]` (at most 100),
    /// `page[after]`; without `page[size]`, offset pagination (`page`, `per_page`,
    /// `next_page`, `count`). `external_id` filters.
    async fn list(State(v): State<Vendor>, Query(q): Query<BTreeMap<String, String>>) -> Response {
        let filter = q.get("external_id").cloned();
        let keep = |t: &Value| filter.as_ref().is_none_or(|x| t["external_id"] == x.as_str());
        let filter_param = filter.as_ref().map(|x| format!("&external_id={x}")).unwrap_or_default();
        let invalid = |what: &str| reply(400, json!({"error": "InvalidPaginationParameter", "description": what}));
        let mut headers = HeaderMap::new();
        for (name, value) in [("x-rate-limit", "700"), ("x-rate-limit-remaining", "699"), ("ratelimit-remaining", "699"), ("ratelimit-reset", "41")] {
            headers.insert(name, value.parse().unwrap());
        }
        let Some(size) = q.get("page[size]") else {
            let per_page = q.get("per_page").and_then(|p| p.parse::<u64>().ok()).unwrap_or(100).clamp(1, 100);
            let page = q.get("page").and_then(|p| p.parse::<u64>().ok()).unwrap_or(1).max(1);
            let matching: Vec<Value> = v.all().into_iter().filter(keep).collect();
            let tickets: Vec<Value> = matching.iter().skip(((page - 1) * per_page) as usize).take(per_page as usize).cloned().collect();
            let next = (page * per_page < matching.len() as u64)
                .then(|| format!("{}/api/v2/tickets.json?page={}&per_page={per_page}{filter_param}", v.base, page + 1));
            return (headers, Json(json!({"tickets": tickets, "next_page": next, "previous_page": null, "count": matching.len()}))).into_response();
        };
        let Ok(size) = size.parse::<u64>() else { return invalid("page[size] must be a number") };
        let size = size.clamp(1, MAX);
        let after = match q.get("page[after]") {
            None => 0,
            Some(c) => match after_cursor(c) {
                Some(id) => id,
                None => return invalid("page[after] is not a cursor"),
            },
        };
        let (tickets, more) = page_after(&v.all(), after, size, keep);
        let last = tickets.last().map(id_of).unwrap_or(after);
        let link = |dir: &str, c: &str| format!("{}/api/v2/tickets.json?page[size]={size}&page[{dir}]={c}{filter_param}", v.base);
        let (after_c, before_c) = (cursor(last), cursor(tickets.first().map(id_of).unwrap_or(after)));
        // The next link is there on the last page too: `has_more` says whether to follow it.
        let body = json!({"tickets": tickets, "meta": {"has_more": more, "after_cursor": after_c, "before_cursor": before_c},
            "links": {"next": link("after", &after_c), "prev": link("before", &before_c)}});
        (headers, Json(body)).into_response()
    }

    /// A ticket id from `{id}` or `{id}.json`.
    fn id_in(segment: &str) -> Option<u64> {
        segment.strip_suffix(".json").unwrap_or(segment).parse().ok()
    }

    fn ticket_in(body: &Value) -> Option<&Map<String, Value>> {
        body.get("ticket")?.as_object()
    }

    fn invalid(what: &str) -> Response {
        reply(422, json!({"error": "RecordInvalid", "description": "Record validation errors", "details": {"base": [{"description": what}]}}))
    }

    fn audit(id: u64) -> Value {
        json!({"id": 9000 + id, "ticket_id": id, "events": []})
    }

    /// `POST /api/v2/tickets`: `{"ticket": {...}}` with a `comment` (its body becomes the
    /// description); answers the ticket and its audit.
    async fn create(State(v): State<Vendor>, Json(body): Json<Value>) -> Response {
        let Some(fields) = ticket_in(&body) else { return invalid("ticket: is required") };
        let Some(description) = fields.get("comment").and_then(|c| c["body"].as_str().or(c.as_str())).map(str::to_owned) else {
            return invalid("Description: cannot be blank");
        };
        let mut fields = fields.clone();
        fields.remove("comment");
        let base = v.base.clone();
        let ticket = v.insert(|id| {
            let mut t = json!({"id": id, "url": format!("{base}/api/v2/tickets/{id}.json"), "external_id": null, "subject": "",
                "description": description, "status": "new", "priority": null, "created_at": LATER, "updated_at": LATER});
            merge(&mut t, &Value::Object(fields));
            t["id"] = id.into();
            t
        });
        reply(201, json!({"ticket": ticket, "audit": audit(id_of(&ticket))}))
    }

    async fn read(State(v): State<Vendor>, UrlPath(id): UrlPath<String>) -> Response {
        match id_in(&id).and_then(|id| v.get(id)) {
            Some(ticket) => reply(200, json!({"ticket": ticket})),
            None => not_found(),
        }
    }

    async fn update(State(v): State<Vendor>, UrlPath(id): UrlPath<String>, Json(body): Json<Value>) -> Response {
        let Some(id) = id_in(&id) else { return not_found() };
        let Some(fields) = ticket_in(&body) else { return invalid("ticket: is required") };
        let mut changes = fields.clone();
        changes.remove("comment");
        changes.remove("id");
        changes.insert("updated_at".into(), json!("2024-06-02T12:00:00Z"));
        match v.update(id, &Value::Object(changes)) {
            Some(ticket) => reply(200, json!({"ticket": ticket, "audit": audit(id)})),
            None => not_found(),
        }
    }

    async fn delete(State(v): State<Vendor>, UrlPath(id): UrlPath<String>) -> Response {
        if id_in(&id).is_some_and(|id| v.remove(id)) {
            AxStatus::NO_CONTENT.into_response()
        } else {
            not_found()
        }
    }

    /// `GET /api/v2/tickets/count`: every ticket (the endpoint takes no filter).
    async fn count(State(v): State<Vendor>) -> Response {
        reply(200, json!({"count": {"value": v.all().len(), "refreshed_at": LATER}}))
    }

    impl Shape for Zendesk {
        const ELEMENT: &'static str = "zendesk-like";
        const HUB: &'static str = "helpdesk";
        const RESOURCE: &'static str = "/tickets";
        const MAX: u64 = MAX;
        const LIST: &'static str = "/api/v2/tickets";
        const TOTALS: bool = false;
        const TOKEN: &'static str = "zd-6wiIBWbGkBMo1mRDMuVwkw1EPsNkeUj95PIz2akv";

        fn seed(i: u64) -> Value {
            json!({"id": i, "url": format!("https://example.zendesk.com/api/v2/tickets/{i}.json"), "external_id": external_id(i),
                "subject": format!("Ticket {i}"), "description": format!("Help with {i}"), "status": "open", "priority": null,
                "created_at": created(i), "updated_at": created(i)})
        }
        fn routes() -> Router<Vendor> {
            Router::new()
                .route("/api/v2/users/me", get(|| async { Json(json!({"user": {"id": 1, "email": EMAIL, "role": "admin"}})) }))
                .route("/api/v2/tickets", get(list).post(create))
                .route("/api/v2/tickets.json", get(list).post(create))
                .route("/api/v2/tickets/count", get(count))
                .route("/api/v2/tickets/count.json", get(count))
                .route("/api/v2/tickets/{id}", get(read).put(update).delete(delete))
        }
        fn configuration(base: &str, token: &str) -> Value {
            json!({"base.url": base, "email": EMAIL, "api.token": token})
        }
        fn presented(request: &Seen) -> Option<String> {
            let encoded = request.header("authorization")?.strip_prefix("Basic ")?;
            String::from_utf8(base64::engine::general_purpose::STANDARD.decode(encoded).ok()?).ok()
        }
        fn credential(token: &str) -> String {
            format!("{EMAIL}/token:{token}")
        }
        fn refusal() -> Response {
            reply(401, json!({"error": "Couldn't authenticate you"}))
        }
        fn list_size(request: &Seen) -> Option<u64> {
            let list = request.path == "/api/v2/tickets" || request.path == "/api/v2/tickets.json";
            (request.method == "GET" && list).then(|| request.number("page[size]", 100)).flatten()
        }
    }

    #[tokio::test]
    async fn zendesk_like_tickets() {
        let t = Trial::<Zendesk>::start().await;
        t.every_record_once().await;
        let lists: Vec<Seen> = t.vendor.seen().into_iter().filter(|s| Zendesk::list_size(s).is_some()).collect();
        assert_eq!((lists[0].path.as_str(), lists[0].param("page[after]")), ("/api/v2/tickets", None));
        assert_eq!(lists[1].path, "/api/v2/tickets.json", "the next link, as the vendor wrote it");
        assert!(lists[1].param("page[after]").is_some());

        let batch: Vec<u64> = (1..=TOTAL).filter(|i| external_id(*i) == "batch-1").collect();
        t.filter_pushed("external_id = 'batch-1'", &batch, |s| s.param("external_id") == Some("batch-1")).await;
        // The count endpoint takes no filter (Zendesk's "Count Tickets" has no
        // parameters): a filtered count is refused, not answered with every ticket.
        let before = t.vendor.seen().len();
        let refused = t.hub(Method::GET, "/count", &[("where", "external_id = 'batch-1'")], None).await;
        assert_eq!(refused.status, StatusCode::BAD_REQUEST, "{}", refused.body);
        let message = refused.body["message"].as_str().unwrap();
        assert!(message.contains("count") && message.contains("external_id"), "{message}");
        assert_eq!(t.vendor.seen().len(), before, "nothing sent");

        let create = json!({"subject": "Printer on fire", "priority": "urgent", "comment": {"body": "It is on fire."}});
        let (made, changed) = t.records(create, json!({"status": "solved"})).await;
        assert!(holds(&made, &json!({"subject": "Printer on fire", "priority": "urgent", "description": "It is on fire.", "status": "new"})), "{made}");
        assert!(made.get("audit").is_none() && made.get("ticket").is_none(), "no envelope: {made}");
        assert!(holds(&changed, &json!({"subject": "Printer on fire", "status": "solved"})), "{changed}");
        let writes: Vec<Seen> = t.vendor.seen().into_iter().filter(|s| s.method == "POST" || s.method == "PUT").collect();
        assert_eq!(writes[0].body, json!({"ticket": {"subject": "Printer on fire", "priority": "urgent", "comment": {"body": "It is on fire."}}}));
        assert_eq!((writes[1].path.as_str(), &writes[1].body), ("/api/v2/tickets/121", &json!({"ticket": {"status": "solved"}})));

        t.credentials_checked().await;
        let body = json!({"error": "APIRateLimitExceeded", "description": "Number of allowed API requests per minute exceeded"});
        t.throttled((vec![("retry-after", "1".into())], body.clone()), Duration::from_secs(1), (vec![("retry-after", "93".into())], body), 93).await;
    }
}

// ============================================================================
// D: Pipedrive-like. Deals under `/api/v1`, the token in the query.

mod pipedrive {
    use super::*;
    use axum::extract::{Path as UrlPath, Query};
    use axum::routing::get;

    pub struct Pipedrive;

    const MAX: u64 = 500;

    fn status(i: u64) -> &'static str {
        match i % 6 {
            0 => "won",
            1 => "lost",
            _ => "open",
        }
    }

    fn failed(status: u16, error: &str) -> Response {
        reply(status, json!({"success": false, "error": error, "errorCode": status,
            "error_info": "Please check developers.pipedrive.com for more information about Pipedrive API."}))
    }

    fn not_found() -> Response {
        failed(404, "Deal not found")
    }

    /// `GET /api/v1/deals?start&limit&status`: `data` (null when nothing is left) and
    /// `additional_data.pagination`.
    async fn list(State(v): State<Vendor>, Query(q): Query<BTreeMap<String, String>>) -> Response {
        let number = |name: &str, default: u64| q.get(name).map_or(Ok(default), |n| n.parse::<u64>());
        let (Ok(start), Ok(limit)) = (number("start", 0), number("limit", 100)) else {
            return failed(400, "start and limit must be numbers");
        };
        let limit = limit.clamp(1, MAX);
        let wanted = q.get("status").map_or("all_not_deleted", String::as_str);
        let matching: Vec<Value> = v.all().into_iter().filter(|d| wanted == "all_not_deleted" || d["status"] == wanted).collect();
        let data: Vec<Value> = matching.iter().skip(start as usize).take(limit as usize).cloned().collect();
        let more = start + limit < matching.len() as u64;
        let mut pagination = json!({"start": start, "limit": limit, "more_items_in_collection": more, "total": matching.len()});
        if more {
            pagination["next_start"] = json!(start + limit);
        }
        let data = if data.is_empty() { Value::Null } else { Value::Array(data) };
        reply(200, json!({"success": true, "data": data, "additional_data": {"pagination": pagination}}))
    }

    async fn create(State(v): State<Vendor>, Json(body): Json<Value>) -> Response {
        let Some(fields) = body.as_object().filter(|b| b.get("title").and_then(Value::as_str).is_some_and(|t| !t.is_empty())) else {
            return failed(400, "Deal title must be given.");
        };
        let deal = v.insert(|id| {
            let mut deal = json!({"id": id, "title": "", "value": 0, "currency": "EUR", "status": "open",
                "add_time": "2024-06-01 12:00:00", "update_time": "2024-06-01 12:00:00"});
            merge(&mut deal, &Value::Object(fields.clone()));
            deal["id"] = id.into();
            deal
        });
        reply(201, json!({"success": true, "data": deal, "related_objects": {}}))
    }

    async fn read(State(v): State<Vendor>, UrlPath(id): UrlPath<u64>) -> Response {
        match v.get(id) {
            Some(deal) => reply(200, json!({"success": true, "data": deal})),
            None => not_found(),
        }
    }

    async fn update(State(v): State<Vendor>, UrlPath(id): UrlPath<u64>, Json(body): Json<Value>) -> Response {
        let Some(fields) = body.as_object() else { return failed(400, "The body must be an object") };
        let mut changes = fields.clone();
        changes.remove("id");
        changes.insert("update_time".into(), json!("2024-06-02 12:00:00"));
        match v.update(id, &Value::Object(changes)) {
            Some(deal) => reply(200, json!({"success": true, "data": deal})),
            None => not_found(),
        }
    }

    async fn delete(State(v): State<Vendor>, UrlPath(id): UrlPath<u64>) -> Response {
        if v.remove(id) {
            reply(200, json!({"success": true, "data": {"id": id}}))
        } else {
            not_found()
        }
    }

    impl Shape for Pipedrive {
        const ELEMENT: &'static str = "pipedrive-like";
        const HUB: &'static str = "crm";
        const RESOURCE: &'static str = "/deals";
        const MAX: u64 = MAX;
        const LIST: &'static str = "/api/v1/deals";
        const TOTALS: bool = true;
        const TOKEN: &'static str = "9d2c4f0b8a7e6d5c4b3a29180f7e6d5c4b3a2918";

        fn seed(i: u64) -> Value {
            json!({"id": i, "title": format!("Deal {i}"), "value": i * 100, "currency": "EUR", "status": status(i),
                "add_time": "2024-01-01 00:00:00", "update_time": "2024-01-01 00:00:00"})
        }
        fn routes() -> Router<Vendor> {
            Router::new()
                .route("/api/v1/users/me", get(|| async { Json(json!({"success": true, "data": {"id": 1, "name": "Ada"}})) }))
                .route("/api/v1/deals", get(list).post(create))
                .route("/api/v1/deals/{id}", get(read).put(update).delete(delete))
        }
        fn configuration(base: &str, token: &str) -> Value {
            json!({"base.url": base, "api.token": token})
        }
        fn presented(request: &Seen) -> Option<String> {
            request.param("api_token").map(str::to_owned)
        }
        fn refusal() -> Response {
            failed(401, "unauthorized access")
        }
        fn list_size(request: &Seen) -> Option<u64> {
            (request.method == "GET" && request.path == Self::LIST).then(|| request.number("limit", 100)).flatten()
        }
    }

    #[tokio::test]
    async fn pipedrive_like_deals() {
        let t = Trial::<Pipedrive>::start().await;
        t.every_record_once().await;
        let lists: Vec<Seen> = t.vendor.seen().into_iter().filter(|s| Pipedrive::list_size(s).is_some()).collect();
        assert_eq!((lists[0].param("start"), lists[0].param("limit")), (Some("0"), Some("8")), "a page of 7 and the record past it");

        let won: Vec<u64> = (1..=TOTAL).filter(|i| status(*i) == "won").collect();
        t.filter_pushed("status = 'won'", &won, |s| s.param("status") == Some("won")).await;
        assert_eq!(t.count(&[("where", "status = 'won'")]).await, won.len() as u64);
        // Nothing left: `data: null` is an empty list, and its total 0.
        let none = t.hub(Method::GET, "", &[("where", "status = 'deleted'")], None).await;
        assert_eq!((none.status, &none.body, none.next(), number(&none, "Elements-Total-Count")), (StatusCode::OK, &json!([]), None, Some(0)));

        let (made, changed) = t.records(json!({"title": "Big one", "value": 5000}), json!({"status": "won"})).await;
        assert!(holds(&made, &json!({"title": "Big one", "value": 5000, "status": "open"})), "{made}");
        assert!(made.get("success").is_none() && made.get("data").is_none(), "no envelope: {made}");
        assert!(holds(&changed, &json!({"title": "Big one", "status": "won"})), "{changed}");
        let writes: Vec<Seen> = t.vendor.seen().into_iter().filter(|s| s.method == "POST" || s.method == "PUT").collect();
        assert_eq!(writes[0].body, json!({"title": "Big one", "value": 5000}));
        assert_eq!((writes[1].path.as_str(), &writes[1].body), ("/api/v1/deals/121", &json!({"status": "won"})));

        t.credentials_checked().await;
        let body = json!({"success": false, "error": "Request over limit", "errorCode": 429});
        let window = vec![("x-ratelimit-limit", "40".into()), ("x-ratelimit-remaining", "0".into()), ("x-ratelimit-reset", "1".into())];
        t.throttled((window, body.clone()), Duration::from_secs(1), (vec![("retry-after", "3600".into())], body), 3600).await;
    }
}
