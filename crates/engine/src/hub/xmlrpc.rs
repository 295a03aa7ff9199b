//! The `xml-rpc` protocol: hub operations as methods of the element's data service
//! (Keap's `DataService`) at `POST {baseUrl}{xmlRpc.endpoint}`, the key declared
//! by the element (Keap's Encrypted Key) as the first parameter of every call.
//!
//! list `query` (paged by `list.rs`, CEQL as `queryData`), get `load`, create
//! `add` then `load`, update `update` then `load`, delete `delete`, count `count`,
//! read the resource's `rpcMethod`. Records keep the vendor's field names; `id`
//! is added beside the vendor's key. Faults become statuses by the element's
//! `xmlRpc.faults`, with the fault string as `providerMessage`.
//!
//! Answers are decoded lossily: a field whose character references or scalar
//! value cannot be decoded is replaced (U+FFFD in text, `null` for a scalar)
//! and named in the answer's warnings (`Elements-Warning`), never a 502 for the
//! whole page.

use bytes::Bytes;
use chrono::{DateTime, NaiveDate, NaiveDateTime};
use http::{Method, StatusCode};
use serde_json::{json, Map, Value};
use switchyard_elements::{plan_where_in, project, ElementDefinition, FieldType, Operation, Paging, Resource, RouteMatch, Zone};
use percent_encoding::{utf8_percent_encode, AsciiSet, CONTROLS};
use switchyard_xmlrpc::{
    decode_response_lossy, encode_call, Fault, MethodCall, MethodResponse, PathItem, Replaced, Replacement, Struct,
    Value as Rpc,
};

use super::call::{bad_request, requested_fields, HubAnswer};
use crate::calls::render;
use switchyard_store::InstanceRow;
use crate::vendor::{Extras, Vendor};
use crate::EngineError;

/// What the check and ping calls send after the key (an echo answers it back).
const PING_VALUE: &str = "switchyard";

/// At most this many warnings per answer; one more says how many were left out.
const MAX_WARNINGS: usize = 50;

/// A hub record and the warnings about its replaced fields.
pub(crate) struct Record {
    pub(crate) value: Value,
    pub(crate) warnings: Vec<String>,
}

/// A vendor answer and what the lossy decoder replaced in it.
struct Answer {
    value: Rpc,
    replaced: Vec<Replacement>,
}

/// Calls `{service}.{method}` (or a full method name) with the element's key first.
pub async fn call(vendor: &Vendor<'_>, method: &str, params: Vec<Rpc>) -> Result<Rpc, EngineError> {
    call_lossy(vendor, method, params).await.map(|a| a.value)
}

/// [`call`], with the values of the answer that could not be decoded: a reference
/// naming no character is U+FFFD, a scalar that does not parse is `Nil`.
async fn call_lossy(vendor: &Vendor<'_>, method: &str, params: Vec<Rpc>) -> Result<Answer, EngineError> {
    let x = vendor.def.xml_rpc.as_ref().ok_or_else(|| EngineError::internal("an xml-rpc element without xmlRpc"))?;
    let method = if method.contains('.') { method.to_owned() } else { format!("{}.{method}", x.service) };
    let mut all = Vec::with_capacity(params.len() + 1);
    if let Some(key) = &x.key {
        all.push(Rpc::String(render(key, vendor.config)?));
    }
    all.extend(params);
    let body = Bytes::from(encode_call(&MethodCall::new(method.clone(), all)));
    let extras = Extras {
        body: Some(body),
        content_type: Some("text/xml".to_owned()),
        accept: Some("text/xml".to_owned()),
        ..Extras::default()
    };
    let response = vendor.check(vendor.exchange(Method::POST, &x.endpoint, extras).await?)?;
    match decode_response_lossy(&response.body) {
        Ok(decoded) => match decoded.value {
            MethodResponse::Success(value) => {
                if !decoded.replaced.is_empty() {
                    tracing::warn!(
                        element = %vendor.def.key,
                        method = %method,
                        replaced = decoded.replaced.len(),
                        "undecodable values in a vendor answer were replaced"
                    );
                }
                Ok(Answer { value, replaced: decoded.replaced })
            }
            MethodResponse::Fault(f) => Err(fault_error(vendor.def, &f)),
        },
        Err(e) => {
            // The codec's messages quote at most 40 characters and never the document.
            let mut err = EngineError::new(StatusCode::BAD_GATEWAY, "The vendor answered with malformed XML-RPC");
            err.provider_message = Some(e.to_string());
            Err(err)
        }
    }
}

/// A fault as the hub answers it: the element's status for its kind, else 502.
fn fault_error(def: &ElementDefinition, fault: &Fault) -> EngineError {
    let kind = fault.keap_kind();
    let status = kind
        .and_then(|k| def.xml_rpc.as_ref()?.faults.get(k))
        .and_then(|s| StatusCode::from_u16(*s).ok())
        .unwrap_or(StatusCode::BAD_GATEWAY);
    let mut err = EngineError::new(status, format!("The vendor refused the call ({})", kind.unwrap_or("fault")));
    err.provider_message = Some(fault.message.clone());
    err
}

/// The account's time zone, for an element whose vendor writes dates as the
/// account's local time (`xmlRpc.timezone`; UTC for others): as stored for the
/// instance, else read from the vendor once and stored (an IANA name). A read that
/// fails, or a name the zone database does not know, fails the call that needed it
/// (its dates could not be right) with a message that says so; nothing is stored,
/// so the next such call reads it again.
pub(crate) async fn account_zone(vendor: &Vendor<'_>, row: &InstanceRow) -> Result<Zone, EngineError> {
    if let Some(zone) = known_zone(vendor.def, row) {
        return Ok(zone);
    }
    let Some(setting) = vendor.def.xml_rpc.as_ref().and_then(|x| x.timezone.as_ref()) else {
        return Ok(Zone::UTC);
    };
    let failed = |why: String| {
        EngineError::new(StatusCode::BAD_GATEWAY, format!("The account's time zone could not be read ({}): {why}", setting.method))
    };
    let params = setting.params.iter().map(|p| Rpc::from(p.as_str())).collect();
    let name = match call(vendor, &setting.method, params).await {
        Ok(Rpc::String(name)) => name.trim().to_owned(),
        Ok(_) => return Err(failed("the answer is not a zone name".into())),
        Err(e) => {
            let mut err = failed(e.message);
            err.status = if e.status.is_server_error() { StatusCode::BAD_GATEWAY } else { e.status };
            err.provider_message = e.provider_message;
            err.retry_after = e.retry_after;
            return Err(err);
        }
    };
    let Some(zone) = Zone::parse(&name) else {
        return Err(failed(format!("'{name}' is not a zone this server knows (an IANA name such as America/New_York)")));
    };
    vendor.engine.store.set_account_zone(row.id, Some(&name)).await?;
    // Opened instances hold the row read before: open it again.
    vendor.engine.instances.forget_instance(row.id);
    Ok(zone)
}

/// The account's zone when it needs no vendor call: UTC for an element that declares
/// no `xmlRpc.timezone`, else the zone stored for the instance, if any.
pub(crate) fn known_zone(def: &ElementDefinition, row: &InstanceRow) -> Option<Zone> {
    if def.xml_rpc.as_ref().and_then(|x| x.timezone.as_ref()).is_none() {
        return Some(Zone::UTC);
    }
    row.account_zone.as_deref().and_then(Zone::parse)
}

/// The element's cheap credential check: `check.method` with the key and a value.
pub(crate) async fn check(vendor: &Vendor<'_>) -> Result<(), EngineError> {
    call(vendor, &vendor.def.check.method, vec![Rpc::from(PING_VALUE)]).await.map(|_| ())
}

/// Parts of a warning written as they are, so that the values stay visible ASCII
/// and never hold the `,` that separates combined header values.
const WARNING_TEXT: &AsciiSet = &CONTROLS.add(b'%').add(b',').add(b' ');

/// One warning (an `Elements-Warning` value): `{resource} {record id} {field}: {what}`,
/// e.g. `contacts 12 FirstName: undecodable character reference replaced by U+FFFD`.
/// The id is `?` when it is unknown (or was itself replaced); a nested field is
/// dotted, an array element `[i]`; non-ASCII, space, `%` and `,` are percent-encoded.
fn warning(resource: &Resource, id: &str, field: &[PathItem], what: Replaced) -> String {
    let mut name = String::new();
    for item in field {
        match item {
            PathItem::Member(m) => {
                if !name.is_empty() {
                    name.push('.');
                }
                name.extend(utf8_percent_encode(m, WARNING_TEXT));
            }
            PathItem::Index(i) => name.push_str(&format!("[{i}]")),
        }
    }
    if name.is_empty() {
        name.push_str("(value)");
    }
    let what = match what {
        Replaced::CharacterReference => "undecodable character reference replaced by U+FFFD".to_owned(),
        Replaced::Scalar(kind) => format!("undecodable {kind} replaced by null"),
    };
    format!("{} {} {name}: {what}", resource.name(), utf8_percent_encode(id, WARNING_TEXT))
}

/// The vendor's id of a record, as a warning names it.
fn vendor_id(def: &ElementDefinition, record: &Rpc) -> Option<String> {
    match record.as_struct()?.get(&def.id_field)? {
        Rpc::Int(i) => Some(i.to_string()),
        Rpc::String(s) => Some(s.clone()),
        _ => None,
    }
}

/// An answer's warnings: at most [`MAX_WARNINGS`], then one that counts the rest.
pub(crate) fn capped_warnings(resource: &Resource, mut warnings: Vec<String>) -> Vec<String> {
    if warnings.len() > MAX_WARNINGS {
        let rest = warnings.len() - MAX_WARNINGS;
        warnings.truncate(MAX_WARNINGS);
        warnings.push(format!("{} {rest} more replaced fields not listed", resource.name()));
    }
    warnings
}

/// A vendor struct as a hub record: the vendor's fields, `id` beside its key.
pub(crate) fn record(def: &ElementDefinition, value: &Rpc) -> Value {
    let Value::Object(fields) = value.to_json() else { return value.to_json() };
    if def.id_field == "id" {
        return Value::Object(fields);
    }
    let mut out = Map::with_capacity(fields.len() + 1);
    for (k, v) in fields {
        let is_key = k == def.id_field;
        out.insert(k, v.clone());
        if is_key {
            out.insert("id".to_owned(), v);
        }
    }
    Value::Object(out)
}

fn model<'a>(def: &'a ElementDefinition, resource: &Resource) -> Option<&'a switchyard_elements::Model> {
    resource.model.as_deref().and_then(|m| def.models.get(m))
}

/// The fields `query` and `load` select: the model's.
fn selected(def: &ElementDefinition, resource: &Resource) -> Rpc {
    Rpc::Array(model(def, resource).map(|m| m.keys().map(|k| Rpc::from(k.as_str())).collect()).unwrap_or_default())
}

fn table(resource: &Resource) -> Result<Rpc, EngineError> {
    resource.table.as_deref().map(Rpc::from).ok_or_else(|| EngineError::internal("an xml-rpc resource without a table"))
}

/// A date as the vendor's `dateTime.iso8601` (no zone): a time with an offset is
/// taken to the account's `zone` (its wall-clock time then), one without is kept as
/// given, a bare date is midnight.
fn vendor_date(text: &str, zone: Zone) -> Option<NaiveDateTime> {
    let t = text.trim();
    if let Ok(d) = DateTime::parse_from_rfc3339(t) {
        return Some(zone.local(d.to_utc()));
    }
    for format in ["%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M:%S", "%Y%m%dT%H:%M:%S", "%Y-%m-%dT%H:%M:%S%.f"] {
        if let Ok(d) = NaiveDateTime::parse_from_str(t, format) {
            return Some(d);
        }
    }
    NaiveDate::parse_from_str(t, "%Y-%m-%d").ok().and_then(|d| d.and_hms_opt(0, 0, 0))
}

/// A hub write body as the vendor's struct, typed by the model: `date` fields as
/// `dateTime.iso8601`, integers as `int`, decimals as `double`, `null` as `""`
/// (which clears the field; Keap refuses `nil`).
/// The vendor's key and the added `id` are left out (a record read from the hub
/// can be sent back); a fixed field may only be given its fixed value.
fn write_struct(def: &ElementDefinition, resource: &Resource, body: &Value, zone: Zone) -> Result<Struct, EngineError> {
    let Value::Object(fields) = body else { return Err(bad_request("The body must be a JSON object")) };
    let model = model(def, resource);
    let mut out = Struct::new();
    for (k, v) in fields {
        if k == "id" || *k == def.id_field {
            continue;
        }
        if let Some(fixed) = resource.fixed.get(k) {
            if v.as_str() != Some(fixed.as_str()) {
                return Err(bad_request(format!("{} always have {k} '{fixed}'", resource.name())));
            }
        }
        let wrong = |what: &str| bad_request(format!("{k} must be {what}"));
        let value = match (model.and_then(|m| m.get(k)).copied(), v) {
            // Keap reads no nil ("Unknown type: nil"); an empty value clears a field.
            (_, Value::Null) => Rpc::from(""),
            (Some(FieldType::Date), Value::String(s)) if s.is_empty() => Rpc::from(""),
            (Some(FieldType::Date), Value::String(s)) => {
                Rpc::DateTime(vendor_date(s, zone).ok_or_else(|| wrong("a date such as 2024-05-01T10:15:00"))?)
            }
            (Some(FieldType::Date), _) => return Err(wrong("a date such as 2024-05-01T10:15:00")),
            (Some(FieldType::Integer), v) => {
                let n = match v {
                    Value::Number(n) => n.as_i64(),
                    Value::String(s) => s.trim().parse::<i64>().ok(),
                    _ => None,
                };
                Rpc::Int(n.and_then(|n| i32::try_from(n).ok()).ok_or_else(|| wrong("a 32-bit integer"))?)
            }
            (Some(FieldType::Decimal), v) => {
                let n = match v {
                    Value::Number(n) => n.as_f64(),
                    Value::String(s) => s.trim().parse::<f64>().ok(),
                    _ => None,
                };
                Rpc::Double(n.filter(|n| n.is_finite()).ok_or_else(|| wrong("a number"))?)
            }
            (Some(FieldType::String), Value::String(s)) => Rpc::from(s.as_str()),
            (Some(FieldType::String), Value::Number(n)) => Rpc::from(n.to_string()),
            (Some(FieldType::String), _) => return Err(wrong("a string")),
            (_, Value::Object(_) | Value::Array(_)) => return Err(wrong("a single value")),
            // Not in the model: as JSON says, and the vendor judges the name.
            (_, v) => Rpc::from_json(v),
        };
        out.insert(k.clone(), value);
    }
    Ok(out)
}

/// The resource's fixed fields as `queryData` members.
fn fixed_query(resource: &Resource) -> Struct {
    resource.fixed.iter().map(|(k, v)| (k.clone(), Rpc::from(v.as_str()))).collect()
}

/// One page of `query`: `params` are what `list.rs` asks for (the planned
/// `queryData` members, the sort, and the page and size under the paging names).
pub(crate) async fn query_page(
    vendor: &Vendor<'_>,
    resource: &Resource,
    params: &[(String, String)],
) -> Result<Vec<Record>, EngineError> {
    let def = vendor.def;
    // The catalog accepts only `page` paging on xml-rpc elements.
    let Paging::Page { page_param, size_param, .. } = &def.paging else {
        return Err(EngineError::internal(format!("element {} pages xml-rpc lists by '{}'", def.key, def.paging.style())));
    };
    let sort_param = resource.order_by.as_ref().map(|s| s.param.as_str());
    let (mut page, mut limit, mut sort) = (0, 0, None);
    let mut data = fixed_query(resource);
    for (k, v) in params {
        if k == page_param {
            page = v.parse::<i32>().map_err(|_| bad_request("page is too large"))?;
        } else if k == size_param {
            limit = v.parse::<i32>().map_err(EngineError::internal)?;
        } else if Some(k.as_str()) == sort_param {
            sort = Some(v.clone());
        } else {
            data.insert(k.clone(), Rpc::from(v.as_str()));
        }
    }
    let mut args = vec![table(resource)?, Rpc::Int(limit), Rpc::Int(page), Rpc::Struct(data), selected(def, resource)];
    if let Some(sort) = sort {
        let (field, direction) = sort.split_once(' ').unwrap_or((sort.as_str(), "asc"));
        args.push(Rpc::from(field));
        args.push(Rpc::Boolean(direction != "desc"));
    }
    let answer = call_lossy(vendor, "query", args).await?;
    let items = match &answer.value {
        Rpc::Array(items) if items.iter().all(|r| r.as_struct().is_some()) => items,
        Rpc::Array(_) => return Err(EngineError::new(StatusCode::BAD_GATEWAY, "The vendor's query answer holds values that are not records")),
        _ => return Err(EngineError::new(StatusCode::BAD_GATEWAY, "The vendor's query answer is not an array")),
    };
    let mut records: Vec<Record> = items.iter().map(|r| Record { value: record(def, r), warnings: Vec::new() }).collect();
    for r in &answer.replaced {
        if let Some((PathItem::Index(i), field)) = r.path.split_first() {
            if let (Some(rec), Some(item)) = (records.get_mut(*i), items.get(*i)) {
                let id = vendor_id(def, item).unwrap_or_else(|| "?".to_owned());
                rec.warnings.push(warning(resource, &id, field, r.what));
            }
        }
    }
    Ok(records)
}

/// A hub id as the vendor's integer key; anything else names no record.
fn record_id(resource: &Resource, id: &str) -> Result<i32, EngineError> {
    id.parse::<i32>().map_err(|_| EngineError::not_found(format!("No {} with id '{id}'", resource.name())))
}

/// `load` of one record, which must carry the resource's fixed fields (a task
/// is not a note: 404).
async fn load(vendor: &Vendor<'_>, resource: &Resource, id: i32) -> Result<Record, EngineError> {
    let answer = call_lossy(vendor, "load", vec![table(resource)?, Rpc::Int(id), selected(vendor.def, resource)]).await?;
    let got = &answer.value;
    let fits = resource.fixed.iter().all(|(k, v)| got.as_struct().and_then(|s| s.get(k)).and_then(Rpc::as_str) == Some(v.as_str()));
    if !fits {
        return Err(EngineError::not_found(format!("No {} with id {id}", resource.name())));
    }
    let shown_id = vendor_id(vendor.def, got).unwrap_or_else(|| id.to_string());
    let warnings = answer.replaced.iter().map(|r| warning(resource, &shown_id, &r.path, r.what)).collect();
    Ok(Record { value: record(vendor.def, got), warnings })
}

/// A record answered as JSON, with its warnings.
fn record_answer(resource: &Resource, record: Record) -> Result<HubAnswer, EngineError> {
    let mut answer = HubAnswer::json(&record.value)?;
    answer.warnings = capped_warnings(resource, record.warnings);
    Ok(answer)
}

/// One hub call on an `xml-rpc` element, lists aside (`list.rs` pages them
/// through [`query_page`]).
pub(super) async fn operation(
    vendor: &Vendor<'_>,
    route: &RouteMatch<'_>,
    params: &[(String, String)],
    body: &Bytes,
) -> Result<HubAnswer, EngineError> {
    let def = vendor.def;
    let resource = route.resource;
    let id = || route.id.as_deref().map(|id| record_id(resource, id)).transpose()?.ok_or_else(|| EngineError::internal("route without an id"));
    let json_body = || match serde_json::from_slice::<Value>(body) {
        Ok(v @ Value::Object(_)) => Ok(v),
        _ => Err(bad_request("The body must be a JSON object")),
    };
    match route.operation {
        Operation::List => Err(EngineError::internal("an xml-rpc list outside list.rs")),
        Operation::Read => {
            let method = resource.rpc_method.as_deref().unwrap_or(&def.check.method);
            let answer = call_lossy(vendor, method, vec![Rpc::from(PING_VALUE)]).await?;
            let warnings: Vec<String> = answer.replaced.iter().map(|r| warning(resource, "?", &r.path, r.what)).collect();
            let value = json!({"method": method, "result": answer.value.to_json()});
            record_answer(resource, Record { value, warnings })
        }
        Operation::Get => {
            let fields = requested_fields(def, resource, params)?;
            let mut record = load(vendor, resource, id()?).await?;
            if let Some(fields) = fields {
                record.value = project(&record.value, &fields);
            }
            record_answer(resource, record)
        }
        Operation::Create => {
            let mut fields = write_struct(def, resource, &json_body()?, vendor.zone)?;
            for (k, v) in &resource.fixed {
                fields.insert(k.clone(), Rpc::from(v.as_str()));
            }
            let created = call(vendor, "add", vec![table(resource)?, Rpc::Struct(fields)]).await?;
            let new_id = created
                .as_i32()
                .ok_or_else(|| EngineError::new(StatusCode::BAD_GATEWAY, "The vendor's add answer is not an id"))?;
            record_answer(resource, load(vendor, resource, new_id).await?)
        }
        Operation::Update => {
            let id = id()?;
            let fields = write_struct(def, resource, &json_body()?, vendor.zone)?;
            if !resource.fixed.is_empty() {
                load(vendor, resource, id).await?; // only records of this resource
            }
            call(vendor, "update", vec![table(resource)?, Rpc::Int(id), Rpc::Struct(fields)]).await?;
            record_answer(resource, load(vendor, resource, id).await?)
        }
        Operation::Delete => {
            let id = id()?;
            if !resource.fixed.is_empty() {
                load(vendor, resource, id).await?;
            }
            call(vendor, "delete", vec![table(resource)?, Rpc::Int(id)]).await?;
            Ok(HubAnswer::default())
        }
        Operation::Count => {
            // `where` on counts: only what queryData says exactly.
            let mut data = fixed_query(resource);
            let where_text = params.iter().find(|(k, _)| k == "where").map(|(_, v)| v.as_str()).unwrap_or("");
            if !where_text.trim().is_empty() {
                let plan = plan_where_in(def, resource, where_text, Some(vendor.zone)).map_err(|e| bad_request(e.to_string()))?;
                if let Some(rest) = plan.residual {
                    return Err(bad_request(format!("A count can only filter what the vendor filters exactly; not '{rest}'")));
                }
                data.extend(plan.params.into_iter().map(|(k, v)| (k, Rpc::from(v))));
            }
            let n = call(vendor, "count", vec![table(resource)?, Rpc::Struct(data)]).await?;
            let n = n.as_i32().ok_or_else(|| EngineError::new(StatusCode::BAD_GATEWAY, "The vendor's count answer is not a number"))?;
            HubAnswer::json(&json!({"count": n}))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_written_as_the_vendor_keeps_them() {
        let d = |s: &str| vendor_date(s, Zone::UTC).map(|d| d.to_string());
        assert_eq!(d("2024-05-01T10:15:00").as_deref(), Some("2024-05-01 10:15:00"), "as given, no zone");
        assert_eq!(d("2024-05-01T10:15:00+02:00").as_deref(), Some("2024-05-01 08:15:00"), "an offset to UTC");
        assert_eq!(d("2024-05-01").as_deref(), Some("2024-05-01 00:00:00"));
        assert_eq!(d("yesterday"), None);
        // An account in New York: its wall-clock time, daylight saving time included.
        let ny = Zone::parse("America/New_York").unwrap();
        let d = |s: &str| vendor_date(s, ny).map(|d| d.to_string());
        assert_eq!(d("2024-01-15T12:00:00Z").as_deref(), Some("2024-01-15 07:00:00"), "EST");
        assert_eq!(d("2024-07-01T12:00:00Z").as_deref(), Some("2024-07-01 08:00:00"), "EDT");
        assert_eq!(d("2024-07-01T10:15:00").as_deref(), Some("2024-07-01 10:15:00"), "a local time as given");
    }

    fn write_struct_utc(def: &ElementDefinition, resource: &Resource, body: &Value) -> Result<Struct, EngineError> {
        write_struct(def, resource, body, Zone::UTC)
    }

    #[test]
    fn records_carry_id_beside_the_vendor_key_and_bodies_drop_both() {
        let catalog = switchyard_elements::Catalog::builtin();
        let def = catalog.get("infusionsoftmarketing").unwrap();
        let mut s = Struct::new();
        s.insert("Id".into(), Rpc::Int(12));
        s.insert("ActionDate".into(), Rpc::DateTime(vendor_date("2026-11-23T10:15:00", Zone::UTC).unwrap()));
        let r = record(def, &Rpc::Struct(s));
        assert_eq!(r, json!({"Id": 12, "id": 12, "ActionDate": "2026-11-23T10:15:00"}));
        assert_eq!(r.as_object().unwrap().keys().collect::<Vec<_>>(), ["Id", "id", "ActionDate"]);

        let notes = def.resources.iter().find(|r| r.path == "/notes").unwrap();
        let body = json!({"Id": 12, "id": 12, "ContactId": "4", "ActionDate": "2026-11-23T10:15:00", "Priority": null, "ObjectType": "Note"});
        let s = write_struct(def, notes, &body, Zone::UTC).unwrap();
        assert_eq!(s.keys().collect::<Vec<_>>(), ["ContactId", "ActionDate", "Priority", "ObjectType"]);
        assert_eq!(s["ContactId"], Rpc::Int(4));
        assert_eq!(s["Priority"], Rpc::from(""), "Keap reads no nil; an empty value clears");
        let err = write_struct_utc(def, notes, &json!({"ObjectType": "Task"})).unwrap_err();
        assert_eq!(err.status, StatusCode::BAD_REQUEST);
        assert!(write_struct_utc(def, notes, &json!({"ActionDate": "soon"})).is_err());
        assert!(write_struct_utc(def, notes, &json!({"ContactId": 1.5})).is_err());
        assert!(write_struct_utc(def, notes, &json!({"CreationNotes": {"a": 1}})).is_err());
    }

    #[test]
    fn warnings_name_resource_record_and_field_in_visible_ascii() {
        let catalog = switchyard_elements::Catalog::builtin();
        let def = catalog.get("infusionsoftcrm").unwrap();
        let contacts = def.resources.iter().find(|r| r.path == "/contacts").unwrap();
        let m = |s: &str| PathItem::Member(s.to_owned());
        assert_eq!(
            warning(contacts, "12", &[m("FirstName")], Replaced::CharacterReference),
            "contacts 12 FirstName: undecodable character reference replaced by U+FFFD"
        );
        assert_eq!(
            warning(contacts, "a b,c", &[m("Ünï, cödé"), PathItem::Index(2), m("x")], Replaced::Scalar("int")),
            "contacts a%20b%2Cc %C3%9Cn%C3%AF%2C%20c%C3%B6d%C3%A9[2].x: undecodable int replaced by null"
        );
        assert_eq!(warning(contacts, "?", &[], Replaced::Scalar("double")), "contacts ? (value): undecodable double replaced by null");

        let many: Vec<String> = (0..60).map(|i| format!("contacts {i} FirstName: x")).collect();
        let got = capped_warnings(contacts, many);
        assert_eq!(got.len(), MAX_WARNINGS + 1);
        assert_eq!(got[MAX_WARNINGS - 1], "contacts 49 FirstName: x");
        assert_eq!(got[MAX_WARNINGS], "contacts 10 more replaced fields not listed");
    }

    #[test]
    fn faults_map_by_kind_with_the_vendor_words() {
        let catalog = switchyard_elements::Catalog::builtin();
        let def = catalog.get("infusionsoftcrm").unwrap();
        for (text, status) in [
            ("[RecordNotFound]Record not found: Contact 9", 404),
            ("[InvalidParameter]Bad limit", 400),
            ("[NoFieldFound]No field found: Contact.Nope", 400),
            ("[NoTableAccess]No access", 403),
            ("[InvalidKey]Invalid key", 401),
            ("[DatabaseError]Boom", 502),
            ("No such handler: DataService.nope", 502),
        ] {
            let e = fault_error(def, &Fault::new(2, text));
            assert_eq!((e.status.as_u16(), e.provider_message.as_deref()), (status, Some(text)));
        }
    }
}
