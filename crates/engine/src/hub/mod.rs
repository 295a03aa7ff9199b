//! Hub operations: `/hubs/{hub}/{path}` for an instance, routed through the
//! element's data to one or more vendor calls, answered as typed values.
//!
//! `list` turns vendor pages into exact hub pages with signed `nextPage` tokens;
//! `xmlrpc` is the `xml-rpc` protocol (Keap's `DataService`); REST JSON is here.

mod call;
pub(crate) mod list;
pub(crate) mod xmlrpc;

use std::borrow::Cow;
use std::collections::BTreeMap;

use bytes::Bytes;
use http::{Method, StatusCode};
use serde_json::Value;
use switchyard_elements::{project, ElementDefinition, Operation, Protocol, RouteError, RouteMatch, Zone};
use switchyard_store::InstanceRow;

pub use call::{HubAnswer, HubPage, HubRequest, Outcome};
use call::{bad_request, enveloped, record_at, requested_fields};
use crate::calls::{malformed, parse_json};
use crate::client::VendorResponse;
use crate::instance::OpenInstance;
use crate::vendor::{Extras, Vendor};
use crate::{oauth, segment, Engine, EngineError};

impl Engine {
    /// One hub call on the element's own resources: OAuth tokens refreshed first
    /// when due (an instance whose refresh was refused answers 401), then the
    /// element's protocol. Callers use `Engine::execute` (crate::transformations),
    /// which sends calls on transformed objects here rewritten.
    pub(crate) async fn execute_vendor(&self, open: &OpenInstance, request: &HubRequest) -> Outcome {
        let unreached = |e| Outcome { answer: Err(e), maybe_reached: false };
        let def = match self.element_of(&open.row) {
            Ok(def) => def,
            Err(e) => return unreached(e),
        };
        let route = match route(&def, &request.method, &request.hub, &request.path) {
            Ok(route) => route,
            Err(e) => return unreached(e),
        };
        let mut config = Cow::Borrowed(&open.config);
        if def.authentication.oauth2().is_some() {
            if !open.row.valid {
                return unreached(oauth::reauthorize_error(self, open.row.id).await);
            }
            if let Err(e) = oauth::ensure_fresh(self, &def, open.row.id, config.to_mut()).await {
                return unreached(e);
            }
        }
        let mut vendor = match Vendor::new(self, &def, &config).and_then(|v| v.for_instance(open.row.id).on_base(route.resource.base.as_deref())) {
            Ok(v) => v,
            Err(e) => return unreached(e),
        };
        // Dates are converted only in writes and `where`: read the account's zone then.
        let dated = matches!(route.operation, Operation::Create | Operation::Update) || request.params.iter().any(|(k, _)| k == "where");
        if dated && vendor.local_dates_zone().is_some() {
            match xmlrpc::account_zone(&vendor, &open.row).await {
                Ok(zone) => vendor = vendor.in_zone(zone),
                Err(e) => return Outcome { answer: Err(e), maybe_reached: false },
            }
        }
        let answer = operate(&vendor, &open.row, request, &route).await;
        Outcome { answer, maybe_reached: vendor.maybe_reached() }
    }

    /// The zone in which the instance's vendor writes dates without an offset (the
    /// account's own, read once from the vendor: Keap's `Application/timezone`), or
    /// `None` when its dates carry their offset. For the event poller's windows.
    pub async fn account_zone(&self, row: &InstanceRow) -> Result<Option<Zone>, EngineError> {
        let def = self.element_of(row)?;
        if def.protocol != Protocol::XmlRpc {
            return Ok(None);
        }
        // Stored (or not needed): no configuration to open, no vendor call.
        if let Some(zone) = xmlrpc::known_zone(&def, row) {
            return Ok(Some(zone));
        }
        let mut config = self.open_configuration(&def, row).await?;
        if def.authentication.oauth2().is_some() {
            if !row.valid {
                return Err(oauth::reauthorize_error(self, row.id).await);
            }
            oauth::ensure_fresh(self, &def, row.id, &mut config).await?;
        }
        let vendor = Vendor::new(self, &def, &config)?.for_instance(row.id);
        xmlrpc::account_zone(&vendor, row).await.map(Some)
    }

    /// A hub read made by the platform itself for an instance (the event poller's
    /// lists, the delivery worker's records): the same routing, vendor call and
    /// paging as a caller's `GET /hubs/...`. `hub_path` is percent-encoded
    /// (`/hubs/ecommerce/orders/12`), ids made with [`segment::encode`].
    pub async fn read(&self, row: &InstanceRow, hub_path: &str, params: &[(String, String)]) -> Result<HubAnswer, EngineError> {
        let raw = hub_path
            .strip_prefix("/hubs/")
            .ok_or_else(|| bad_request(format!("'{hub_path}' is not a hub path")))?;
        let mut segments = segment::decode(raw, "A hub path", false)?.into_iter();
        let hub = segments.next().unwrap_or_default();
        let path = segments.collect::<Vec<_>>().join("/");
        let def = self.element_of(row)?;
        let open = OpenInstance { row: row.clone(), config: self.open_configuration(&def, row).await? };
        if !matches!(self.operation(&open, &Method::GET, &hub, &path).await?, Operation::List | Operation::Get) {
            return Err(bad_request(format!("{hub_path} is not a list or a record")));
        }
        let request = HubRequest { method: Method::GET, hub, path, params: params.to_vec(), body: Bytes::new(), page_scope: None };
        self.execute(&open, &request).await.answer
    }

    /// One page of `GET {path}` (a hub path such as `/hubs/ecommerce/orders`) for
    /// the instance, with the query a hub caller would send (`where`, `pageSize`,
    /// `nextPage`, ...), decoded.
    pub async fn list_page(&self, row: &InstanceRow, path: &str, query: &[(String, String)]) -> Result<HubPage, EngineError> {
        let answer = self.read(row, path, query).await?;
        let records = |body: Option<&[u8]>| match body.map(serde_json::from_slice::<Value>) {
            Some(Ok(Value::Array(items))) => Ok(items),
            _ => Err(EngineError::new(StatusCode::BAD_GATEWAY, "the hub list answered no JSON array")),
        };
        let vendor_records = match answer.vendor_body.as_deref() {
            Some(body) => records(Some(body))?,
            None => Vec::new(),
        };
        Ok(HubPage { records: records(answer.body.as_deref())?, next_page: answer.next_page, vendor_records })
    }

    /// The record `id` of the instance's hub resource `object` (`orders`), read
    /// through the hub; `None` when the vendor has no such record (404). An
    /// instance that is gone is a 404 error.
    pub async fn get_record(&self, organization_id: i64, instance_id: i64, object: &str, id: &str) -> Result<Option<Value>, EngineError> {
        let gone = || EngineError::not_found(format!("instance {instance_id} no longer exists"));
        let row = self.store.instance(organization_id, instance_id).await?.ok_or_else(gone)?;
        let def = self.catalog.get(&row.element_key).cloned().ok_or_else(gone)?;
        let path = format!("/hubs/{}/{}/{}", def.hub, object.trim_matches('/'), segment::encode(id)?);
        let answer = match self.read(&row, &path, &[]).await {
            Ok(answer) => answer,
            Err(e) if e.status == StatusCode::NOT_FOUND => return Ok(None),
            Err(e) => return Err(e),
        };
        let body = answer.body.unwrap_or_default();
        serde_json::from_slice(&body).map(Some).map_err(|_| EngineError::new(StatusCode::BAD_GATEWAY, "the hub answered no JSON record"))
    }

    /// `ANY /proxy/{path}`: one call to a vendor path no hub resource maps, with the
    /// instance's credentials, retries, limits, outbound policy and call log. The
    /// vendor's answer comes back whatever its status; only a call that got no
    /// answer is an error. A "slow down" answer (the element's throttle dialect)
    /// carries `Retry-After`: whole seconds until the instance may call again.
    /// `path` is already made of encoded segments.
    pub async fn proxy(&self, open: &OpenInstance, method: Method, path: &str, extras: Extras<'_>) -> Result<VendorResponse, EngineError> {
        let def = self.element_of(&open.row)?;
        let vendor = Vendor::new(self, &def, &open.config)?.for_instance(open.row.id);
        let mut answer = vendor.exchange(method, path, extras).await?;
        if let Some(wait) = vendor.retry_after().filter(|_| def.throttle().is_throttle(answer.status)) {
            answer.headers.insert(http::header::RETRY_AFTER, http::HeaderValue::from(crate::calls::retry_after_seconds(wait)));
        }
        Ok(answer)
    }
}

/// The route of `method path` on the element's hub.
pub(crate) fn route<'d>(def: &'d ElementDefinition, method: &Method, hub: &str, path: &str) -> Result<RouteMatch<'d>, EngineError> {
    if def.hub != hub {
        return Err(EngineError::not_found(format!("Element {} serves hub '{}', not '{hub}'", def.key, def.hub)));
    }
    // `.../count` of a list without a count names the resource, rather than
    // reaching the vendor as the record "count" or a path no one declared.
    let no_count = |resource: &str| EngineError::not_found(format!("Element {}: resource {resource} has no count", def.key));
    let counted = path.strip_suffix("count").filter(|p| p.is_empty() || p.ends_with('/')).map(|p| p.trim_end_matches('/'));
    match def.route(method.as_str(), path) {
        Ok(m) if m.operation == Operation::Get && m.id.as_deref() == Some("count") && !m.resource.supports(Operation::Count) => {
            Err(no_count(&m.resource.path))
        }
        Ok(m) => Ok(m),
        Err(RouteError::NotFound) => match counted.map(|list| def.route("GET", list)) {
            Some(Ok(m)) if m.operation == Operation::List => Err(no_count(&m.resource.path)),
            _ => Err(EngineError::not_found(format!("No resource /hubs/{hub}/{path}"))),
        },
        Err(RouteError::MethodNotAllowed) => {
            Err(EngineError::new(StatusCode::METHOD_NOT_ALLOWED, format!("{method} is not supported on /hubs/{hub}/{path}")))
        }
    }
}

/// The routed operation through the element's protocol.
async fn operate(vendor: &Vendor<'_>, row: &InstanceRow, request: &HubRequest, route: &RouteMatch<'_>) -> Result<HubAnswer, EngineError> {
    let (hub, path, params) = (request.hub.as_str(), request.path.as_str(), request.params.as_slice());
    let scope = request.page_scope.as_deref().unwrap_or(path);
    if vendor.def.protocol == Protocol::XmlRpc {
        return match route.operation {
            Operation::List => list::list(vendor, row, hub, scope, "", params, route.resource).await,
            _ => xmlrpc::operation(vendor, route, params, &request.body).await,
        };
    }
    let vendor_path = vendor_path(route)?;
    let resource = route.resource;
    // A search's own path, else the resource's.
    let list_path = match resource.search.as_ref().and_then(|s| s.path.as_deref()) {
        Some(template) => render_path(route, template, None)?,
        None => resource_path(route)?,
    };
    match route.operation {
        Operation::List => list::list(vendor, row, hub, scope, &list_path, params, resource).await,
        Operation::Count if resource.count.is_some() || resource.total_pointer.is_some() => {
            let count_path = resource.count.as_ref().map(|c| render_path(route, &c.path, None)).transpose()?;
            list::count(vendor, &list_path, count_path.as_deref(), params, resource).await
        }
        // The vendor's `{path}/count` takes the list's filters (BigCommerce v2:
        // orders.v2.oas2.yml `/orders/count`, customers.v2.yml `/customers/count`).
        Operation::Count => {
            let filters = list::count_filters(vendor, resource, params)?;
            let mut query = list::fixed_query(resource, &filters);
            query.extend(filters);
            json_passthrough(vendor.send(Method::GET, &format!("{vendor_path}/count"), &query, None).await?)
        }
        Operation::Get => {
            let fields = requested_fields(vendor.def, route.resource, params)?;
            let r = vendor.send(Method::GET, &vendor_path, &[], None).await?;
            match (fields, route.resource.record_path.as_deref()) {
                (Some(fields), None) => HubAnswer::json(&project(&parse_json(&r)?, &fields)),
                (None, None) => json_passthrough(r),
                (fields, Some(at)) => record_at(&r.body, at, fields.as_deref()),
            }
        }
        Operation::Read => json_passthrough(vendor.send(Method::GET, &vendor_path, &[], None).await?),
        Operation::Create | Operation::Update => write(vendor, route, &request.body).await,
        Operation::Delete => {
            vendor.send(Method::DELETE, &vendor_path, &[], None).await?;
            Ok(HubAnswer::default())
        }
    }
}

/// A REST create or update: the body checked and rewritten by the element's
/// behaviours, sent with the resource's method, the vendor's record answered.
async fn write(vendor: &Vendor<'_>, route: &RouteMatch<'_>, body: &Bytes) -> Result<HubAnswer, EngineError> {
    let mut value = match serde_json::from_slice::<Value>(body) {
        Ok(v @ Value::Object(_)) => v,
        _ => return Err(bad_request("The body must be a JSON object")),
    };
    // Named vendor quirks (link objects, RFC 2822 dates, decimal strings).
    switchyard_elements::prepare_write_body(vendor.def, route.resource, &mut value);
    if let Some(at) = &route.resource.body_path {
        value = enveloped(at, value);
    }
    let body = Bytes::from(serde_json::to_vec(&value).map_err(EngineError::internal)?);
    let method = if route.operation == Operation::Create {
        Method::POST
    } else {
        route.resource.update_method.parse().map_err(EngineError::internal)?
    };
    let r = vendor.send(method, &vendor_path(route)?, &[], Some(body)).await?;
    match &route.resource.record_path {
        Some(at) => record_at(&r.body, at, None),
        None => HubAnswer::json(&parse_json(&r)?),
    }
}

/// A vendor answer that needs no rewriting, passed on as its bytes: checked to
/// be JSON without building it, never parsed into values and written again.
fn json_passthrough(r: VendorResponse) -> Result<HubAnswer, EngineError> {
    if r.body.is_empty() {
        return Ok(HubAnswer { body: Some(Bytes::from_static(b"{}")), ..HubAnswer::default() });
    }
    serde_json::from_slice::<serde::de::IgnoredAny>(&r.body).map_err(|_| malformed())?;
    Ok(HubAnswer { body: Some(r.body), ..HubAnswer::default() })
}

/// The route's vendor path: with a record id, the resource's `itemPath` or else
/// the id as the last segment of its `vendorPath`.
fn vendor_path(route: &RouteMatch<'_>) -> Result<String, EngineError> {
    let Some(id) = &route.id else {
        return render_path(route, &route.resource.vendor_path, None);
    };
    let id = segment::encode(id)?;
    match &route.resource.item_path {
        Some(item) => render_path(route, item, Some(&id)),
        None => Ok(format!("{}/{id}", render_path(route, &route.resource.vendor_path, None)?)),
    }
}

/// The resource's vendor path with the route's parameters filled in, each
/// encoded as one path segment.
fn resource_path(route: &RouteMatch<'_>) -> Result<String, EngineError> {
    render_path(route, &route.resource.vendor_path, None)
}

/// `template` with the route's parameters (and `{id}`, already encoded) filled in,
/// each encoded as one path segment.
fn render_path(route: &RouteMatch<'_>, template: &str, id: Option<&str>) -> Result<String, EngineError> {
    let mut params = Vec::with_capacity(route.params.len() + 1);
    for (name, value) in &route.params {
        params.push((name.as_str(), segment::encode(value)?));
    }
    if let Some(id) = id {
        params.push(("id", id.to_owned()));
    }
    let values: BTreeMap<&str, &str> = params.iter().map(|(k, v)| (*k, v.as_str())).collect();
    switchyard_elements::render(template, |n| values.get(n).map(|v| Cow::Borrowed(*v))).map_err(EngineError::internal)
}
