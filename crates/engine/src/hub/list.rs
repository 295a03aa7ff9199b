//! Hub lists: exact pages over the vendor's paging (`page`, `offset`, `cursor`,
//! `next-url`, `link-header`), opaque, signed `nextPage` tokens bound to the
//! instance and the hub path, counts read from a list's total, and the check
//! that the vendor's paging advances.

use std::collections::{HashMap, HashSet};

use base64::Engine as _;
use bytes::Bytes;
use bytestring::ByteString;
use http::{Method, StatusCode};
use serde_json::value::RawValue;
use serde_json::Value;
use sha2::Sha256;
use switchyard_elements::{
    plan_order_by, plan_where_in, project, search_body, Behaviour, Paging, Pointer, Protocol, QueryError, Resource, SearchAt, VendorQuery,
};
use switchyard_store::InstanceRow;

use super::call::{bad_request, requested_fields, HubAnswer};
use crate::vendor::{is_absolute, Vendor};
use crate::EngineError;

/// Default hub page size, as in Cloud Elements.
const DEFAULT_PAGE_SIZE: u64 = 200;

/// Most vendor pages one hub call reads while the engine filters (or, on
/// cursor-like paging, skips to a `page`). A filter that rarely matches cannot
/// hold a request (and the vendor's quota) for long: at the cap the call answers
/// with what it found and a `nextPage` token that resumes the scan where it
/// stopped, as Cloud Elements does.
pub const MAX_SCAN_PAGES: u64 = 20;

/// Longest `nextPage` token, in bytes: it must fit in a header and a query string.
pub const MAX_TOKEN_BYTES: usize = 2048;

/// Where a hub page starts, as the opaque `nextPage` token says or `page` implies.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct PageToken {
    /// Instance and hub path the token was made for.
    i: i64,
    p: String,
    /// Hash of the `where` and `orderBy` the token was made for.
    q: String,
    /// The page size.
    s: u64,
    /// `page`/`offset` paging without engine filtering: offset of the first
    /// record in the vendor's list.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    o: Option<u64>,
    /// `page`/`offset` paging with engine filtering: the vendor page (from 0, of
    /// the vendor's largest size), the record within it where the scan resumes,
    /// and how many matches are still to be skipped (`page=N` reached by scanning).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    v: Option<(u64, u64, u64)>,
    /// `page`/`offset` paging: the position (page or offset) of the last vendor
    /// read and the id of its first record, to tell a vendor that ignores positions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    w: Option<(u64, String)>,
    /// Cursor, next-url and link-header paging: the vendor page where the next
    /// hub page starts, as its cursor or URL (relative to the base URL when
    /// under it); absent: the first page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    c: Option<String>,
    /// ... the records of that vendor page already read (by index), and the
    /// matches still to skip ...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    k: Option<(u64, u64)>,
    /// ... and the id of the first record of the vendor page read before it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    f: Option<String>,
}

/// Binds a token to the query it pages through, so it cannot be replayed with another.
fn query_hash(where_text: &str, order_by: &str) -> String {
    use sha2::Digest;
    let digest = Sha256::new().chain_update(where_text.trim()).chain_update([0]).chain_update(order_by.trim()).finalize();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&digest[..12])
}

fn encode_token(key: &[u8], token: &PageToken) -> String {
    crate::page_token::encode(key, "hub", token)
}

fn decode_token(key: &[u8], text: &str) -> Option<PageToken> {
    crate::page_token::decode(key, "hub", text)
}

fn query_error(e: QueryError) -> EngineError {
    bad_request(e.to_string())
}

fn other_query() -> EngineError {
    bad_request("nextPage was issued for another where or orderBy; send the same ones")
}

/// A record with the warnings about its fields (only XML-RPC answers have any:
/// fields the vendor wrote undecodably, see `xmlrpc::warning`).
type Warned<T> = (T, Vec<String>);

/// One record as the vendor wrote it: its JSON text, checked but not built into
/// values, a slice of the vendor's answer (shared, not copied). Pages the engine
/// neither filters nor projects pass through so, never parsed into trees and
/// written again.
#[derive(Debug, Clone)]
struct Raw(ByteString);

impl Raw {
    fn get(&self) -> &str {
        &self.0
    }

    /// A record the engine built (XML-RPC answers).
    fn of(value: &Value) -> Result<Raw, EngineError> {
        serde_json::to_string(value).map(|text| Raw(ByteString::from(text))).map_err(EngineError::internal)
    }
}

/// The records of an array written in `text`, each a slice of it; `None` when
/// `text` is not an array of JSON values.
fn records_in(text: &ByteString) -> Option<Vec<Raw>> {
    let items: Vec<&RawValue> = serde_json::from_str(text).ok()?;
    Some(items.into_iter().map(|r| Raw(text.slice_ref(r.get()))).collect())
}

type RawRecords = Vec<Raw>;

/// The members of a list answer's top-level object, as raw JSON texts.
type Members = HashMap<String, Box<RawValue>>;

/// What a pointer finds in a list answer.
enum Found {
    Value(Box<RawValue>),
    /// A key on the way is missing, or a value on the way is `null`.
    Absent,
    /// A value on the way is neither an object nor an array.
    Blocked,
}

/// The value at `pointer` below the answer's top-level members, each level
/// parsed only as far as the pointer goes.
fn find(top: &Members, pointer: &Pointer) -> Found {
    let mut segments = pointer.segments().iter();
    let Some(first) = segments.next() else { return Found::Blocked };
    let Some(mut raw) = top.get(first).map(|r| r.to_owned()) else { return Found::Absent };
    for key in segments {
        if raw.get().trim() == "null" {
            return Found::Absent;
        }
        if let Ok(mut object) = serde_json::from_str::<Members>(raw.get()) {
            match object.remove(key) {
                Some(next) => raw = next,
                None => return Found::Absent,
            }
        } else if let Ok(mut items) = serde_json::from_str::<Vec<Box<RawValue>>>(raw.get()) {
            match key.parse::<usize>().ok().filter(|i| *i < items.len()) {
                Some(i) => raw = items.swap_remove(i),
                None => return Found::Absent,
            }
        } else {
            return Found::Blocked;
        }
    }
    if raw.get().trim() == "null" {
        Found::Absent
    } else {
        Found::Value(raw)
    }
}

fn no_array() -> EngineError {
    EngineError::new(StatusCode::BAD_GATEWAY, "The vendor's list answer holds no array")
}

fn malformed() -> EngineError {
    EngineError::new(StatusCode::BAD_GATEWAY, "The vendor answered with malformed JSON")
}

/// The records array of a list answer, by `recordsPath`, as raw JSON texts, and
/// the answer's top-level members (for the other pointers). `null` or a missing
/// key where `recordsPath` leads is an empty list; an answer that should be the
/// array itself must be one (`null` there is a 502, as it always was).
fn read_answer(body: &Bytes, records_path: Option<&Pointer>) -> Result<(RawRecords, Members), EngineError> {
    if body.is_empty() {
        return Err(no_array());
    }
    // UTF-8 checked once for the whole answer; records are then slices of it.
    let text = ByteString::try_from(body.clone()).map_err(|_| malformed())?;
    let not_an_array = || match serde_json::from_str::<serde::de::IgnoredAny>(&text) {
        Ok(_) => no_array(),
        Err(_) => malformed(),
    };
    let (records, top): (RawRecords, Members) = match records_path {
        // The common case, in one pass over the body.
        None => (records_in(&text).ok_or_else(not_an_array)?, Members::new()),
        Some(path) => {
            let top: Members = serde_json::from_str(&text).map_err(|_| not_an_array())?;
            let records = match find(&top, path) {
                Found::Value(raw) => records_in(&ByteString::from(raw.get())).ok_or_else(no_array)?,
                Found::Absent => Vec::new(),
                Found::Blocked => return Err(no_array()),
            };
            (records, top)
        }
    };
    // A hub list holds records: numbers, strings or nulls in the vendor's array are
    // not something the hub can hand on (or filter, project, or poll) as records.
    if records.iter().any(|r| !r.get().trim_start().starts_with('{')) {
        return Err(EngineError::new(StatusCode::BAD_GATEWAY, "The vendor's list answer holds values that are not records"));
    }
    Ok((records, top))
}

/// `[a,b,...]` from raw records, byte for byte as the vendor wrote them.
fn join_raw<'r>(records: impl IntoIterator<Item = &'r Raw> + Clone) -> Vec<u8> {
    let mut out = Vec::with_capacity(2 + records.clone().into_iter().map(|r| r.get().len() + 1).sum::<usize>());
    out.push(b'[');
    for (i, r) in records.into_iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(r.get().as_bytes());
    }
    out.push(b']');
    out
}

/// Where one vendor page is.
#[derive(Debug, Clone, Copy)]
enum At<'c> {
    /// `page` paging: the vendor page, from 0 (`firstPage` is added when sent).
    Page(u64),
    /// `offset` paging: the index of the first record.
    Offset(u64),
    /// `cursor` paging: the cursor (`None`: the first page).
    Cursor(Option<&'c str>),
    /// `next-url`/`link-header` paging: the page's link (`None`: the first page).
    Url(Option<&'c str>),
}

/// One vendor page.
struct VendorPage {
    records: Vec<Warned<Raw>>,
    /// The next page's cursor or link (as a token keeps it); `None`: the vendor says
    /// this page is the last (always `None` on `page`/`offset` paging).
    next: Option<String>,
    /// The number at the resource's `totalPointer`.
    total: Option<u64>,
}

/// Reads one resource's list pages from the vendor.
struct Lister<'l, 'v> {
    vendor: &'l Vendor<'v>,
    resource: &'l Resource,
    paging: &'l Paging,
    /// The list's vendor path (a search's `path`, else the resource's `vendorPath`), rendered.
    path: &'l str,
    /// The vendor's part of `where`, then the sort.
    filters: Vec<(String, String)>,
}

impl Lister<'_, '_> {
    fn element(&self) -> &str {
        &self.vendor.def.key
    }

    /// A 502 naming the element and the resource.
    fn vendor_fault(&self, what: impl std::fmt::Display) -> EngineError {
        EngineError::new(StatusCode::BAD_GATEWAY, format!("Element {}, resource {}: {what}", self.element(), self.resource.path))
    }

    fn stuck(&self, what: &str) -> EngineError {
        self.vendor_fault(format!("the vendor's paging does not advance ({what}); the list was stopped"))
    }

    fn pointer(&self, text: &str) -> Result<Pointer, EngineError> {
        // Checked when the catalog loaded.
        Pointer::parse(text).map_err(EngineError::internal)
    }

    /// The first vendor page.
    fn first(&self) -> At<'static> {
        match self.paging {
            Paging::Page { .. } => At::Page(0),
            Paging::Offset { .. } => At::Offset(0),
            Paging::Cursor { .. } => At::Cursor(None),
            Paging::NextUrl { .. } | Paging::LinkHeader { .. } | Paging::Whole { .. } => At::Url(None),
        }
    }

    /// The sequential position a token's `c` names.
    fn sequential_at<'c>(&self, c: Option<&'c str>) -> At<'c> {
        match self.paging {
            Paging::Cursor { .. } => At::Cursor(c),
            _ => At::Url(c),
        }
    }

    /// One vendor page at a page number or an offset, whose arithmetic needs pages of
    /// at most `limit` records: a vendor that answers more does not take the element's
    /// size parameter, and following its pages would skip records silently (a 502).
    async fn fetch_positioned(&self, at: At<'_>, limit: u64) -> Result<VendorPage, EngineError> {
        let page = self.fetch(at, limit).await?;
        let n = page.records.len();
        if n as u64 > limit {
            return Err(self.vendor_fault(format!(
                "the vendor answered {n} records for a page of {limit}: it does not take the page size, so its pages cannot be followed"
            )));
        }
        Ok(page)
    }

    /// One vendor page of at most `limit` records at `at`.
    async fn fetch(&self, at: At<'_>, limit: u64) -> Result<VendorPage, EngineError> {
        let vendor = self.vendor;
        if vendor.def.protocol == Protocol::XmlRpc {
            let (At::Page(n), Paging::Page { page_param, size_param, first_page, .. }) = (at, self.paging) else {
                return Err(EngineError::internal("xml-rpc lists page by page"));
            };
            let mut query = self.filters.clone();
            query.push((page_param.clone(), (n + first_page).to_string()));
            query.push((size_param.clone(), limit.to_string()));
            let records = super::xmlrpc::query_page(vendor, self.resource, &query).await?;
            let records = records
                .into_iter()
                .map(|r| Ok((Raw::of(&r.value)?, r.warnings)))
                .collect::<Result<_, EngineError>>()?;
            return Ok(VendorPage { records, next: None, total: None });
        }
        let (response, requested) = match at {
            At::Url(Some(link)) => (vendor.send(Method::GET, link, &[], None).await?, link),
            _ => {
                let query = self.query(at, limit);
                let (method, body) = match &self.resource.search {
                    Some(search) => {
                        let position = match (at, self.paging) {
                            (At::Page(n), Paging::Page { first_page, .. }) => SearchAt::Page(n + first_page),
                            (At::Offset(o), _) => SearchAt::Offset(o),
                            (At::Cursor(c), _) => SearchAt::Cursor(c),
                            _ => return Err(EngineError::internal("a search pages by page, offset or cursor")),
                        };
                        let body = search_body(self.resource, search, &self.filters, limit, position).map_err(EngineError::internal)?;
                        let method: Method = search.method.parse().map_err(EngineError::internal)?;
                        (method, Some(Bytes::from(serde_json::to_vec(&body).map_err(EngineError::internal)?)))
                    }
                    None => (Method::GET, None),
                };
                (vendor.send(method, self.path, &query, body).await?, self.path)
            }
        };
        if response.status == 204 && vendor.def.behaviours.contains(&Behaviour::EmptyListIs204) {
            return Ok(VendorPage { records: Vec::new(), next: None, total: None });
        }
        let records_path = self.resource.records_path.as_deref().map(|p| self.pointer(p)).transpose()?;
        let (records, top) = read_answer(&response.body, records_path.as_ref())?;
        let text_at = |pointer: &str| -> Result<Option<String>, EngineError> {
            match find(&top, &self.pointer(pointer)?) {
                Found::Value(raw) => match serde_json::from_str::<Value>(raw.get()) {
                    Ok(Value::String(s)) => Ok(Some(s).filter(|s| !s.is_empty())),
                    Ok(Value::Number(n)) => Ok(Some(n.to_string())),
                    _ => Err(self.vendor_fault(format!("the value at '{pointer}' is not a string"))),
                },
                Found::Absent | Found::Blocked => Ok(None),
            }
        };
        let more_at = |pointer: &Option<String>| -> Result<Option<bool>, EngineError> {
            let Some(pointer) = pointer else { return Ok(None) };
            match find(&top, &self.pointer(pointer)?) {
                Found::Value(raw) => match serde_json::from_str::<Value>(raw.get()) {
                    Ok(Value::Bool(b)) => Ok(Some(b)),
                    _ => Err(self.vendor_fault(format!("the value at '{pointer}' is not true or false"))),
                },
                Found::Absent | Found::Blocked => Ok(None),
            }
        };
        let announced = |link: Option<String>, more: Option<bool>| match (more, link) {
            (Some(false), _) => Ok(None),
            (Some(true), None) => Err(self.vendor_fault("the vendor says more records exist but names no next page")),
            (_, link) => Ok(link),
        };
        let next = match self.paging {
            Paging::Page { .. } | Paging::Offset { .. } | Paging::Whole { .. } => None,
            Paging::Cursor { cursor_pointer, has_more_pointer, .. } => announced(text_at(cursor_pointer)?, more_at(has_more_pointer)?)?,
            Paging::NextUrl { next_pointer, has_more_pointer, .. } => {
                match announced(text_at(next_pointer)?, more_at(has_more_pointer)?)? {
                    Some(link) => Some(self.next_link(requested, &link)?),
                    None => None,
                }
            }
            Paging::LinkHeader { .. } => match link_next(&response.headers) {
                Ok(Some(link)) => Some(self.next_link(requested, &link)?),
                Ok(None) => None,
                Err(()) => return Err(self.vendor_fault("the vendor's Link header does not parse (RFC 8288)")),
            },
        };
        let total = match &self.resource.total_pointer {
            Some(p) => match find(&top, &self.pointer(p)?) {
                Found::Value(raw) => match serde_json::from_str::<Value>(raw.get()) {
                    Ok(Value::Number(n)) => n.as_u64(),
                    Ok(Value::String(s)) => s.trim().parse().ok(),
                    _ => None,
                },
                _ => None,
            },
            None => None,
        };
        Ok(VendorPage { records: records.into_iter().map(|r| (r, Vec::new())).collect(), next, total })
    }

    /// The query of a list call (not a followed link): the resource's fixed
    /// parameters (a vendor filter of the same name replaces one), the vendor
    /// filters unless they go in a search body, and the position and size.
    fn query(&self, at: At<'_>, limit: u64) -> Vec<(String, String)> {
        let mut query = fixed_query(self.resource, &self.filters);
        if self.resource.search.is_some() {
            return query;
        }
        query.extend(self.filters.iter().cloned());
        let mut add = |name: &str, value: String| query.push((name.to_owned(), value));
        match (self.paging, at) {
            (Paging::Page { page_param, first_page, .. }, At::Page(n)) => add(page_param, (n + first_page).to_string()),
            (Paging::Offset { offset_param, .. }, At::Offset(o)) => add(offset_param, o.to_string()),
            (Paging::Cursor { cursor_param: Some(param), .. }, At::Cursor(Some(c))) => add(param, c.to_owned()),
            _ => {}
        }
        if let Some(size) = self.paging.size_param() {
            add(size, limit.to_string());
        }
        query
    }

    /// A next-page link as a token keeps it: resolved against the page's URL, on
    /// the base URL's scheme, host and port (else a 502: the link is not
    /// followed), without query values that are the instance's secrets (the
    /// engine adds its credentials itself), relative to the base URL when under it.
    fn next_link(&self, requested: &str, link: &str) -> Result<String, EngineError> {
        let base_text = self.vendor.base();
        let base = url::Url::parse(base_text).map_err(EngineError::internal)?;
        let here = if is_absolute(requested) { requested.to_owned() } else { format!("{base_text}{requested}") };
        let here = url::Url::parse(&here).map_err(EngineError::internal)?;
        let mut next = here.join(link).map_err(|_| self.vendor_fault("the vendor's next page link is not a URL"))?;
        if next.origin() != base.origin() {
            let host = |u: &url::Url| format!("{}://{}", u.scheme(), u.host_str().unwrap_or(""));
            return Err(self.vendor_fault(format!(
                "the vendor's next page link leads to {}, not to the instance's {}; it was not followed",
                host(&next),
                host(&base)
            )));
        }
        let secrets: Vec<&str> = self
            .vendor
            .config
            .iter()
            .filter(|(k, v)| !v.is_empty() && self.vendor.def.is_secret(k))
            .map(|(_, v)| v.as_str())
            .collect();
        if next.query_pairs().any(|(_, v)| secrets.contains(&v.as_ref())) {
            let kept: Vec<(String, String)> =
                next.query_pairs().filter(|(_, v)| !secrets.contains(&v.as_ref())).map(|(k, v)| (k.into_owned(), v.into_owned())).collect();
            next.query_pairs_mut().clear().extend_pairs(kept);
        }
        next.set_fragment(None);
        let text = next.as_str();
        match text.strip_prefix(base_text) {
            Some(rest) if rest.starts_with('/') || rest.starts_with('?') => Ok(rest.to_owned()),
            _ => Ok(text.to_owned()),
        }
    }

    /// The id of a page's first record (its JSON text), to tell pages apart.
    fn first_id(&self, records: &[Warned<Raw>]) -> Option<String> {
        let (first, _) = records.first()?;
        member(first.get(), &self.vendor.def.id_field).map(|id| id.get().to_owned()).filter(|id| id != "null")
    }
}

/// The raw value of the member `name` of the JSON object `object`, found in one pass
/// without building the object (a map of every member, keys allocated, cost about
/// 100,000 instructions per page on a 50-field record).
fn member<'a>(object: &'a str, name: &str) -> Option<&'a RawValue> {
    use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, Visitor};

    /// Whether a key is `name`, read without allocating when it has no escapes.
    struct KeyIs<'n>(&'n str);
    impl<'de> DeserializeSeed<'de> for KeyIs<'_> {
        type Value = bool;
        fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<bool, D::Error> {
            d.deserialize_str(self)
        }
    }
    impl Visitor<'_> for KeyIs<'_> {
        type Value = bool;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a member name")
        }
        fn visit_str<E: serde::de::Error>(self, key: &str) -> Result<bool, E> {
            Ok(key == self.0)
        }
    }

    struct Find<'n>(&'n str);
    impl<'de> DeserializeSeed<'de> for Find<'_> {
        type Value = Option<&'de RawValue>;
        fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            d.deserialize_map(self)
        }
    }
    impl<'de> Visitor<'de> for Find<'_> {
        type Value = Option<&'de RawValue>;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a JSON object")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut found = None;
            while let Some(is_it) = map.next_key_seed(KeyIs(self.0))? {
                if is_it {
                    // The last of repeated names, as a map of the members would keep.
                    found = Some(map.next_value::<&'de RawValue>()?);
                } else {
                    map.next_value::<IgnoredAny>()?;
                }
            }
            Ok(found)
        }
    }
    Find(name).deserialize(&mut serde_json::Deserializer::from_str(object)).ok().flatten()
}

/// The `rel="next"` target of the answer's `Link` headers (RFC 8288), as written;
/// `Err` when a `Link` header does not parse (the list cannot go on, nor end quietly).
fn link_next(headers: &http::HeaderMap) -> Result<Option<String>, ()> {
    type Error<'a> = nom_language::error::VerboseError<&'a str>;
    for value in headers.get_all(http::header::LINK) {
        let value = value.to_str().map_err(|_| ())?;
        let links = nom_rfc8288::complete::link_lenient::<Error<'_>>(value).map_err(|_| ())?;
        for link in links.into_iter().flatten() {
            // `rel` may hold several relation types ("next last"), in any case.
            let next = link.params.iter().any(|p| {
                p.key.eq_ignore_ascii_case("rel")
                    && p.val.as_deref().is_some_and(|v| v.split_ascii_whitespace().any(|t| t.eq_ignore_ascii_case("next")))
            });
            if next {
                return Ok(Some(link.url.to_owned()));
            }
        }
    }
    Ok(None)
}

/// The engine's part of a `where`, as a predicate on records.
type Matcher<'m> = dyn Fn(&Value) -> bool + Sync + 'm;

/// What one hub page collected.
struct Collected {
    records: Vec<Warned<Raw>>,
    next: Option<PageToken>,
    total: Option<u64>,
}

/// One exact hub page of the resource's list: `pageSize` records (default 200,
/// at most the paging's `maxPageSize`) from `page` or the `nextPage` token,
/// filtered by `where` (the vendor's part sent to the vendor, the rest filtered
/// here), sorted by `orderBy`, cut to `fields`. `list_path` is the rendered
/// vendor path of the list call; `scope` the path below `hub` its tokens are
/// bound to (with the instance, `where` and `orderBy`).
pub(super) async fn list(
    vendor: &Vendor<'_>,
    row: &InstanceRow,
    hub: &str,
    scope: &str,
    list_path: &str,
    params: &[(String, String)],
    resource: &Resource,
) -> Result<HubAnswer, EngineError> {
    let get = |name: &str| params.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str());
    let def = vendor.def;
    let where_text = get("where").unwrap_or("");
    let order_text = get("orderBy").unwrap_or("");
    let plan = if where_text.trim().is_empty() {
        VendorQuery::default()
    } else {
        plan_where_in(def, resource, where_text, vendor.local_dates_zone()).map_err(query_error)?
    };
    let mut filters = plan.params;
    filters.extend(plan_order_by(resource, order_text).map_err(query_error)?);
    let fields = requested_fields(def, resource, params)?;

    let paging = def.paging_of(resource);
    let max_page_size = paging.max_page_size();
    let hub_path = format!("{hub}/{scope}");
    let q = query_hash(where_text, order_text);
    let key = vendor.engine.paging_key.as_slice();
    let token = match get("nextPage").filter(|t| !t.is_empty()) {
        Some(text) => {
            let t = decode_token(key, text).ok_or_else(|| bad_request("nextPage is not a token this server issued"))?;
            if t.i != row.id || t.p != hub_path {
                return Err(bad_request("nextPage belongs to another instance or resource"));
            }
            if t.q != q {
                return Err(other_query());
            }
            Some(t)
        }
        None => None,
    };
    let (size, page) = match &token {
        Some(t) => (t.s, 1),
        None => {
            let number = |name: &str, default: u64| -> Result<u64, EngineError> {
                match get(name) {
                    None | Some("") => Ok(default),
                    Some(v) => v.parse::<u64>().ok().filter(|n| *n >= 1).ok_or_else(|| bad_request(format!("{name} must be a whole number from 1"))),
                }
            };
            (number("pageSize", DEFAULT_PAGE_SIZE)?.min(max_page_size).max(1), number("page", 1)?)
        }
    };
    let lister = Lister { vendor, resource, paging, path: list_path, filters };
    let fresh = PageToken { i: row.id, p: hub_path.clone(), q: q.clone(), s: size, o: None, v: None, w: None, c: None, k: None, f: None };
    let residual = plan.residual.as_ref().map(|r| move |v: &Value| r.matches(v));
    let residual: Option<&Matcher<'_>> = residual.as_ref().map(|f| f as &Matcher<'_>);

    let collected = if paging.is_sequential() {
        sequential(&lister, token.as_ref(), &fresh, page, residual).await?
    } else if let Some(matches) = residual {
        scan(&lister, token.as_ref(), &fresh, page, matches).await?
    } else {
        window(&lister, token.as_ref(), &fresh, page).await?
    };

    let count = collected.records.len();
    let (body, warnings) = if fields.is_none() {
        (join_raw(collected.records.iter().map(|(r, _)| r)), collected.records.into_iter().flat_map(|(_, w)| w).collect::<Vec<_>>())
    } else {
        let mut values = Vec::with_capacity(count);
        let mut warnings = Vec::new();
        for (r, w) in collected.records {
            let value: Value = serde_json::from_str(r.get()).map_err(EngineError::internal)?;
            values.push(fields.as_ref().map_or(value.clone(), |fields| project(&value, fields)));
            warnings.extend(w);
        }
        (serde_json::to_vec(&values).map_err(EngineError::internal)?, warnings)
    };
    let next_page = match collected.next {
        Some(next) => {
            let text = encode_token(key, &next);
            if text.len() > MAX_TOKEN_BYTES {
                return Err(lister.vendor_fault(format!(
                    "the vendor's next page position does not fit in a nextPage token ({} bytes, at most {MAX_TOKEN_BYTES})",
                    text.len()
                )));
            }
            Some(text)
        }
        None => None,
    };
    Ok(HubAnswer {
        body: Some(Bytes::from(body)),
        returned_count: Some(count),
        next_page,
        // What the vendor counted is the hub's total only when the vendor filtered.
        total_count: collected.total.filter(|_| residual.is_none()),
        warnings: super::xmlrpc::capped_warnings(resource, warnings),
        vendor_body: None,
    })
}

/// Keeps the position and first record id of the last page read, and refuses a
/// page at another position that starts with the same record.
fn advanced(lister: &Lister<'_, '_>, last: &mut Option<(u64, String)>, position: u64, first: Option<String>) -> Result<(), EngineError> {
    if let (Some((at, id)), Some(first)) = (last.as_ref(), first.as_ref()) {
        if *at != position && id == first {
            return Err(lister.stuck(&format!("the vendor page at {position} starts with the same record as the one at {at}")));
        }
    }
    if let Some(first) = first {
        *last = Some((position, first));
    }
    Ok(())
}

/// `page`/`offset` paging when the vendor filters exactly: one record past the
/// page is read to know whether another page exists. On `page` paging, vendor
/// pages of size `pageSize + 1` align with the first hub page, so the common
/// case is one vendor call and other offsets take at most two; `offset` paging
/// reads from the page's first record. A page whose records lie past what a
/// vendor offset can count is a 400, not an overflow.
async fn window(lister: &Lister<'_, '_>, token: Option<&PageToken>, fresh: &PageToken, page: u64) -> Result<Collected, EngineError> {
    let size = fresh.s;
    let too_far = || bad_request("page is too large");
    let offset = match token {
        Some(t) => t.o.ok_or_else(other_query)?,
        None => (page - 1).checked_mul(size).ok_or_else(too_far)?,
    };
    // Where the next page starts; also bounds every read below.
    let next_offset = offset.checked_add(size).ok_or_else(too_far)?;
    let want = size + 1;
    let vendor_size = want.min(lister.paging.max_page_size());
    // (where, how many, how many to skip)
    let mut reads: Vec<(At<'static>, u64, u64)> = Vec::new();
    if let Paging::Page { .. } = lister.paging {
        let first = offset / vendor_size;
        let last = offset.checked_add(want - 1).ok_or_else(too_far)? / vendor_size;
        for p in first..=last {
            reads.push((At::Page(p), vendor_size, if p == first { offset - first * vendor_size } else { 0 }));
        }
    } else {
        let mut from = 0;
        while from < want {
            let start = offset.checked_add(from).ok_or_else(too_far)?;
            let n = vendor_size.min(want - from);
            reads.push((At::Offset(start), n, 0));
            from += n;
        }
    }
    let mut last = token.and_then(|t| t.w.clone());
    let (mut records, mut total) = (Vec::new(), None);
    for (i, (at, limit, skip)) in reads.into_iter().enumerate() {
        let batch = lister.fetch_positioned(at, limit).await?;
        let position = match at {
            At::Page(p) => p,
            At::Offset(o) => o,
            _ => 0,
        };
        advanced(lister, &mut last, position, lister.first_id(&batch.records))?;
        if i == 0 {
            total = batch.total;
        }
        let full = batch.records.len() as u64 == limit;
        records.extend(batch.records.into_iter().skip(skip as usize));
        if !full {
            break;
        }
    }
    let next = (records.len() as u64 > size).then(|| PageToken { o: Some(next_offset), w: last, ..fresh.clone() });
    records.truncate(size as usize);
    Ok(Collected { records, next, total })
}

/// `page`/`offset` paging when the engine filters: scan the vendor's pages (its
/// largest size, so a token's position stays valid) one at a time, keeping only
/// the matches of this page, at most [`MAX_SCAN_PAGES`] per call.
async fn scan(
    lister: &Lister<'_, '_>,
    token: Option<&PageToken>,
    fresh: &PageToken,
    page: u64,
    matches: &Matcher<'_>,
) -> Result<Collected, EngineError> {
    let size = fresh.s;
    let (mut vp, mut at, mut skip) = match token {
        Some(t) => t.v.ok_or_else(other_query)?,
        None => (0, 0, skipped_before(page, size)?),
    };
    let vendor_size = lister.paging.max_page_size();
    let mut out = Vec::new();
    let mut next = None;
    let mut scanned = 0;
    let mut last = None;
    let resume = |v| PageToken { v: Some(v), ..fresh.clone() };
    'scan: loop {
        if scanned == MAX_SCAN_PAGES {
            next = Some(resume((vp, at, skip)));
            break;
        }
        let position = match lister.paging {
            Paging::Offset { .. } => At::Offset(vp.checked_mul(vendor_size).ok_or_else(|| bad_request("page is too large"))?),
            _ => At::Page(vp),
        };
        let batch = lister.fetch_positioned(position, vendor_size).await?;
        scanned += 1;
        advanced(lister, &mut last, vp, lister.first_id(&batch.records))?;
        let full = batch.records.len() as u64 == vendor_size;
        if let Some(index) = take_matches(batch.records, at, Some(matches), &mut skip, &mut out, size)? {
            // A match past the page: there is a next page, and it starts here.
            next = Some(resume((vp, index, 0)));
            break 'scan;
        }
        if !full {
            break;
        }
        vp += 1;
        at = 0;
    }
    Ok(Collected { records: out, next, total: None })
}

/// How many records come before hub page `page` (from 1) of `size`: a page past
/// what 64 bits count is a 400, as on `page`/`offset` paging without a filter.
fn skipped_before(page: u64, size: u64) -> Result<u64, EngineError> {
    (page - 1).checked_mul(size).ok_or_else(|| bad_request("page is too large"))
}

/// Moves the records of one vendor page, from index `at` on, that pass `matches`
/// (all of them without one) into `out`, after passing over `skip` of them, until
/// `out` holds `size`. `Some(index)`: the vendor page holds a further match at
/// `index`, where the next hub page starts.
fn take_matches(
    records: Vec<Warned<Raw>>,
    at: u64,
    matches: Option<&Matcher<'_>>,
    skip: &mut u64,
    out: &mut Vec<Warned<Raw>>,
    size: u64,
) -> Result<Option<u64>, EngineError> {
    for (index, (raw, warnings)) in records.into_iter().enumerate().skip(at as usize) {
        if let Some(matches) = matches {
            let value: Value = serde_json::from_str(raw.get()).map_err(EngineError::internal)?;
            if !matches(&value) {
                continue;
            }
        }
        if *skip > 0 {
            *skip -= 1;
        } else if out.len() as u64 == size {
            return Ok(Some(index as u64));
        } else {
            out.push((raw, warnings));
        }
    }
    Ok(None)
}

/// Cursor, next-url and link-header paging: pages are reached one from the
/// other, so a token keeps the vendor page where the next hub page starts and
/// how far into it. A page whose next page the vendor announces ends the hub
/// page when it fills it (an announced page that turns out empty then ends the
/// list with an empty page); with an engine filter the scan reads on to the next
/// match, at most [`MAX_SCAN_PAGES`] vendor pages per call. The same cursor or
/// link twice, or a page starting with the record the previous page started
/// with, is a 502: the vendor is not advancing.
async fn sequential(
    lister: &Lister<'_, '_>,
    token: Option<&PageToken>,
    fresh: &PageToken,
    page: u64,
    matches: Option<&Matcher<'_>>,
) -> Result<Collected, EngineError> {
    let size = fresh.s;
    let (mut position, (mut at, mut skip), mut before) = match token {
        Some(t) => (t.c.clone(), t.k.ok_or_else(other_query)?, t.f.clone()),
        None => (None, (0, skipped_before(page, size)?), None),
    };
    let resume = |c: Option<String>, k: (u64, u64), f: Option<String>| PageToken { c, k: Some(k), f, ..fresh.clone() };
    let mut seen: HashSet<String> = position.iter().cloned().collect();
    let (mut out, mut next, mut total) = (Vec::new(), None, None);
    let mut reads = 0;
    loop {
        if reads == MAX_SCAN_PAGES {
            next = Some(resume(position, (at, skip), before));
            break;
        }
        let batch = lister.fetch(lister.sequential_at(position.as_deref()), size).await?;
        reads += 1;
        if reads == 1 {
            total = batch.total;
        }
        let first = lister.first_id(&batch.records);
        if first.is_some() && first == before {
            return Err(lister.stuck("a page starts with the same record as the page before it"));
        }
        if let Some(index) = take_matches(batch.records, at, matches, &mut skip, &mut out, size)? {
            // The next hub page starts inside this vendor page.
            next = Some(resume(position, (index, 0), before));
            break;
        }
        let Some(link) = batch.next else { break };
        if position.as_deref() == Some(link.as_str()) || !seen.insert(link.clone()) {
            let what = if matches!(lister.paging, Paging::Cursor { .. }) { "the same cursor twice" } else { "the same next page link twice" };
            return Err(lister.stuck(what));
        }
        before = first.or(before);
        position = Some(link);
        at = 0;
        if out.len() as u64 == size && matches.is_none() {
            next = Some(resume(position, (0, 0), before));
            break;
        }
    }
    Ok(Collected { records: out, next, total })
}

/// The resource's fixed query parameters (`status=any`) that no vendor filter of
/// the same name replaces: sent with every list and count call of the resource.
pub(super) fn fixed_query(resource: &Resource, filters: &[(String, String)]) -> Vec<(String, String)> {
    let replaced = |name: &str| filters.iter().any(|(f, _)| f == name);
    resource.query.iter().filter(|(k, _)| !replaced(k)).map(|(k, v)| (k.clone(), v.clone())).collect()
}

/// The vendor's query parameters for a count's `where`: a count can only filter
/// what the vendor filters exactly (a 400 for the rest), since the engine sees no
/// records to filter.
pub(super) fn count_filters(vendor: &Vendor<'_>, resource: &Resource, params: &[(String, String)]) -> Result<Vec<(String, String)>, EngineError> {
    let where_text = params.iter().find(|(k, _)| k == "where").map(|(_, v)| v.as_str()).unwrap_or("");
    if where_text.trim().is_empty() {
        return Ok(Vec::new());
    }
    let plan = plan_where_in(vendor.def, resource, where_text, vendor.local_dates_zone()).map_err(query_error)?;
    if let Some(rest) = &plan.residual {
        return Err(bad_request(format!("A count can only filter what the vendor filters exactly; not '{rest}'")));
    }
    Ok(plan.params)
}

/// `GET .../count` of a resource that declares a `count` call or a `totalPointer`:
/// `{"count": N}`. The vendor's filters of `where` are sent with it; a clause the
/// engine would have to filter is a 400 (a count cannot be filtered here).
pub(super) async fn count(
    vendor: &Vendor<'_>,
    list_path: &str,
    count_path: Option<&str>,
    params: &[(String, String)],
    resource: &Resource,
) -> Result<HubAnswer, EngineError> {
    let def = vendor.def;
    let paging = def.paging_of(resource);
    let lister = Lister { vendor, resource, paging, path: list_path, filters: count_filters(vendor, resource, params)? };
    let n = match (&resource.count, count_path) {
        (Some(call), Some(path)) => {
            if let Some((param, _)) = lister.filters.iter().find(|(p, _)| call.filters.as_ref().is_some_and(|taken| !taken.contains(p))) {
                return Err(bad_request(format!(
                    "Element {}, resource {}: the vendor's count takes no '{param}' filter; count without that clause",
                    def.key, resource.path
                )));
            }
            let mut query = fixed_query(resource, &lister.filters);
            query.extend(lister.filters.iter().cloned());
            let r = vendor.send(Method::GET, path, &query, None).await?;
            let value = crate::calls::parse_json(&r)?;
            let found = lister.pointer(&call.pointer)?.find(&value).cloned();
            match found {
                Some(Value::Number(n)) if n.as_u64().is_some() => n.as_u64(),
                Some(Value::String(s)) => s.trim().parse().ok(),
                _ => None,
            }
            .ok_or_else(|| lister.vendor_fault(format!("the vendor's count answer has no number at '{}'", call.pointer)))?
        }
        _ => {
            let pointer = resource.total_pointer.as_deref().ok_or_else(|| EngineError::internal("a count without a call or a total"))?;
            let page = lister.fetch(lister.first(), 1).await?;
            page.total.ok_or_else(|| lister.vendor_fault(format!("the vendor's list answer has no number at '{pointer}'")))?
        }
    };
    HubAnswer::json(&serde_json::json!({ "count": n }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_member_is_found_without_building_the_object() {
        let record = r#"{"a": {"id": 9}, "i\u0064": 12, "b": [1, {"id": 3}], "c": "x"}"#;
        assert_eq!(member(record, "id").map(RawValue::get), Some("12"), "an escaped name is the name; nested ones are not");
        assert_eq!(member(r#"{"id": "x", "id": "y"}"#, "id").map(RawValue::get), Some("\"y\""), "the last of repeated names");
        assert!(member(r#"{"a": 1}"#, "id").is_none());
        assert!(member("[1, 2]", "id").is_none());
        assert!(member(r#"{"id": 1"#, "id").is_none(), "malformed");
    }

    fn token(o: Option<u64>) -> PageToken {
        PageToken { i: 1, p: "ecommerce/orders".into(), q: query_hash("", ""), s: 50, o, v: None, w: None, c: None, k: None, f: None }
    }

    #[test]
    fn tokens_round_trip_and_refuse_tampering() {
        let key = [7u8; 32];
        let t = encode_token(&key, &token(Some(50)));
        let back = decode_token(&key, &t).unwrap();
        assert_eq!((back.i, back.o, back.s), (1, Some(50), 50));
        assert_ne!(back.q, query_hash("id > 5", ""), "bound to the query");
        assert!(decode_token(&[8u8; 32], &t).is_none(), "another key");
        // Forgery and garbling: see page_token's tests.
    }

    #[test]
    fn sequential_tokens_carry_the_vendor_position() {
        let key = [7u8; 32];
        let t = PageToken { c: Some("/items.json?page_info=abc&limit=7".into()), k: Some((3, 0)), f: Some("12".into()), ..token(None) };
        let back = decode_token(&key, &encode_token(&key, &t)).unwrap();
        assert_eq!((back.c.as_deref(), back.k, back.f.as_deref()), (Some("/items.json?page_info=abc&limit=7"), Some((3, 0)), Some("12")));
    }

    #[test]
    fn raw_records_pass_through_byte_for_byte() {
        let records = |body: &[u8], path: Option<&str>| read_answer(&Bytes::copy_from_slice(body), path.map(|p| Pointer::parse(p).unwrap()).as_ref()).map(|(r, _)| r);
        let body = br#"[{"id":1,"total":"1.5000"}, {"id":2,"x":{"y":[1,2]}}]"#;
        assert_eq!(String::from_utf8(join_raw(&records(body, None).unwrap())).unwrap(), r#"[{"id":1,"total":"1.5000"},{"id":2,"x":{"y":[1,2]}}]"#);
        let nested = records(br#"{"data":{"items":[{"id":3}]},"count":1}"#, Some("data.items")).unwrap();
        assert_eq!(join_raw(&nested), br#"[{"id":3}]"#);
        assert_eq!(join_raw(&records(br#"{"data":{"items":[{"id":3}]}}"#, Some("/data/items")).unwrap()), br#"[{"id":3}]"#);
        assert_eq!(join_raw(&RawRecords::new()), b"[]");
        for bad in [&b""[..], b"{\"id\":1}", b"[1,", b"not json", b"[1]", b"[{\"id\":1}, null]", b"[[]]", b"[{\"a\":\"\xff\"}]"] {
            assert_eq!(records(bad, None).unwrap_err().status, StatusCode::BAD_GATEWAY);
        }
        assert_eq!(records(br#"{"data":5}"#, Some("data.items")).unwrap_err().status, StatusCode::BAD_GATEWAY, "a scalar on the way");
        assert_eq!(records(br#"{"data":{"items":{}}}"#, Some("data.items")).unwrap_err().status, StatusCode::BAD_GATEWAY, "not an array");
    }

    /// `null` or a missing records key is an empty list (issue 16, item 7).
    #[test]
    fn null_or_missing_records_are_an_empty_list() {
        let records = |body: &[u8], path: Option<&str>| read_answer(&Bytes::copy_from_slice(body), path.map(|p| Pointer::parse(p).unwrap()).as_ref()).map(|(r, _)| r.len());
        assert_eq!(records(b"null", None).unwrap_err().status, StatusCode::BAD_GATEWAY, "the answer itself is the array");
        assert_eq!(records(b"null", Some("data")).unwrap_err().status, StatusCode::BAD_GATEWAY, "no object to hold the key");
        assert_eq!(records(br#"{"data":null,"additional_data":{}}"#, Some("data")).unwrap(), 0);
        assert_eq!(records(br#"{"meta":{}}"#, Some("data")).unwrap(), 0);
        assert_eq!(records(br#"{"data":null}"#, Some("data.items")).unwrap(), 0);
        assert_eq!(records(br#"{}"#, Some("data.items")).unwrap(), 0);
    }

    #[test]
    fn pointers_find_cursors_below_the_top_level() {
        let (_, top) = read_answer(&Bytes::from_static(br#"{"results":[],"paging":{"next":{"after":"42"}},"list":[{"id":"a"}]}"#), Some(&Pointer::parse("results").unwrap())).unwrap();
        let text = |p: &str| match find(&top, &Pointer::parse(p).unwrap()) {
            Found::Value(raw) => raw.get().to_owned(),
            Found::Absent => "absent".into(),
            Found::Blocked => "blocked".into(),
        };
        assert_eq!(text("paging.next.after"), r#""42""#);
        assert_eq!(text("list.0.id"), r#""a""#);
        assert_eq!(text("paging.prev.after"), "absent");
        assert_eq!(text("paging.next.after.x"), "blocked");
    }

    #[test]
    fn link_headers_name_the_next_page() {
        let mut headers = http::HeaderMap::new();
        headers.append(http::header::LINK, r#"<https://x.test/a?page_info=p1>; rel="previous""#.parse().unwrap());
        headers.append(http::header::LINK, r#"<https://x.test/a?page_info=p2&limit=7>; rel="Next""#.parse().unwrap());
        let next = |h: &http::HeaderMap| link_next(h).unwrap();
        assert_eq!(next(&headers).as_deref(), Some("https://x.test/a?page_info=p2&limit=7"));
        let mut both = http::HeaderMap::new();
        both.insert(http::header::LINK, r#"</a?page=3>; rel="next last", </a?page=1>; rel="first""#.parse().unwrap());
        assert_eq!(next(&both).as_deref(), Some("/a?page=3"));
        // Commas inside the URL and inside a quoted parameter (RFC 8288's grammar, not a split on ',').
        let mut commas = http::HeaderMap::new();
        commas.insert(http::header::LINK, r#"<https://x.test/a?fields=id,title&page_info=p3>; title="a, b"; rel=next"#.parse().unwrap());
        assert_eq!(next(&commas).as_deref(), Some("https://x.test/a?fields=id,title&page_info=p3"));
        let mut none = http::HeaderMap::new();
        none.insert(http::header::LINK, r#"<https://x.test/a?page=1>; rel="prev""#.parse().unwrap());
        assert_eq!(next(&none), None);
        assert_eq!(next(&http::HeaderMap::new()), None);
        let mut broken = http::HeaderMap::new();
        broken.insert(http::header::LINK, "https://x.test/a?page=2; rel=next".parse().unwrap());
        assert!(link_next(&broken).is_err(), "no <...>");
    }
}
