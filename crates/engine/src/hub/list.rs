//! Hub lists: exact pages over the vendor's paging, and opaque, signed
//! `nextPage` tokens bound to the instance and the hub path.

use base64::Engine as _;
use bytes::Bytes;
use http::{Method, StatusCode};
use serde_json::value::RawValue;
use serde_json::Value;
use sha2::Sha256;
use switchyard_elements::{plan_order_by, plan_where, project, Behaviour, Paging, Protocol, QueryError, Resource, VendorQuery};
use switchyard_store::InstanceRow;

use super::call::{bad_request, requested_fields, HubAnswer};
use crate::vendor::Vendor;
use crate::EngineError;

/// Default hub page size, as in Cloud Elements.
const DEFAULT_PAGE_SIZE: u64 = 200;

/// Most vendor pages one hub call reads while the engine filters. A filter that
/// rarely matches cannot hold a request (and the vendor's quota) for long: at the
/// cap the call answers with what it found and a `nextPage` token that resumes
/// the scan where it stopped, as Cloud Elements does.
pub const MAX_SCAN_PAGES: u64 = 20;

/// Where a hub page starts, as the opaque `nextPage` token says or `page` implies.
#[derive(serde::Serialize, serde::Deserialize)]
struct PageToken {
    /// Instance and hub path the token was made for.
    i: i64,
    p: String,
    /// Hash of the `where` and `orderBy` the token was made for.
    q: String,
    /// The page size.
    s: u64,
    /// Without engine filtering: offset of the first record in the vendor's list.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    o: Option<u64>,
    /// With engine filtering: the vendor page (from 0, of the vendor's largest
    /// size), the record within it where the scan resumes, and how many matches
    /// are still to be skipped (`page=N` reached by scanning).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    v: Option<(u64, u64, u64)>,
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

/// A record with the warnings about its fields (only XML-RPC answers have any:
/// fields the vendor wrote undecodably, see `xmlrpc::warning`).
type Warned<T> = (T, Vec<String>);

/// One vendor page of records as values, for the engine to filter.
async fn vendor_page(
    vendor: &Vendor<'_>,
    vendor_path: &str,
    resource: &Resource,
    query: &[(String, String)],
) -> Result<Vec<Warned<Value>>, EngineError> {
    if vendor.def.protocol == Protocol::XmlRpc {
        let records = super::xmlrpc::query_page(vendor, resource, query).await?;
        return Ok(records.into_iter().map(|r| (r.value, r.warnings)).collect());
    }
    vendor_page_raw(vendor, vendor_path, resource, query)
        .await?
        .into_iter()
        .map(|(r, w)| Ok((serde_json::from_str(r.get()).map_err(EngineError::internal)?, w)))
        .collect()
}

/// Records as the vendor wrote them: each one's JSON text, checked but not built
/// into values. Pages the engine neither filters nor projects pass through so,
/// never parsed into trees and written again.
type RawRecords = Vec<Box<RawValue>>;

/// The records array of a list answer, by `recordsPath`, as raw JSON texts.
fn raw_records(body: &[u8], records_path: Option<&str>) -> Result<RawRecords, EngineError> {
    let no_array = || EngineError::new(StatusCode::BAD_GATEWAY, "The vendor's list answer holds no array");
    let malformed = || EngineError::new(StatusCode::BAD_GATEWAY, "The vendor answered with malformed JSON");
    if body.is_empty() {
        return Err(no_array());
    }
    let records: RawRecords = if records_path.is_none() {
        // The common case, in one pass over the body.
        serde_json::from_slice(body).map_err(|_| match serde_json::from_slice::<serde::de::IgnoredAny>(body) {
            Ok(_) => no_array(),
            Err(_) => malformed(),
        })?
    } else {
        let mut raw: Box<RawValue> = serde_json::from_slice(body).map_err(|_| malformed())?;
        for key in records_path.into_iter().flat_map(|p| p.split('.')) {
            let mut object: std::collections::HashMap<String, Box<RawValue>> =
                serde_json::from_str(raw.get()).map_err(|_| no_array())?;
            raw = object.remove(key).ok_or_else(no_array)?;
        }
        serde_json::from_str(raw.get()).map_err(|_| no_array())?
    };
    // A hub list holds records: numbers, strings or nulls in the vendor's array are
    // not something the hub can hand on (or filter, project, or poll) as records.
    if records.iter().any(|r| !r.get().trim_start().starts_with('{')) {
        return Err(EngineError::new(StatusCode::BAD_GATEWAY, "The vendor's list answer holds values that are not records"));
    }
    Ok(records)
}

/// One vendor page of raw records (the `empty-list-is-204` behaviour and `recordsPath` applied).
async fn vendor_page_raw(
    vendor: &Vendor<'_>,
    vendor_path: &str,
    resource: &Resource,
    query: &[(String, String)],
) -> Result<Vec<Warned<Box<RawValue>>>, EngineError> {
    if vendor.def.protocol == Protocol::XmlRpc {
        let records = super::xmlrpc::query_page(vendor, resource, query).await?;
        return records
            .into_iter()
            .map(|r| Ok((serde_json::value::to_raw_value(&r.value).map_err(EngineError::internal)?, r.warnings)))
            .collect();
    }
    let r = vendor.send(Method::GET, vendor_path, query, None).await?;
    if r.status == 204 && vendor.def.behaviours.contains(&Behaviour::EmptyListIs204) {
        return Ok(Vec::new());
    }
    Ok(raw_records(&r.body, resource.records_path.as_deref())?.into_iter().map(|r| (r, Vec::new())).collect())
}

/// `[a,b,...]` from raw records, byte for byte as the vendor wrote them.
fn join_raw<'r>(records: impl IntoIterator<Item = &'r Box<RawValue>> + Clone) -> Vec<u8> {
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

/// One exact hub page of the resource's list: `pageSize` records (default 200)
/// from `page` or the `nextPage` token, filtered by `where` (the vendor's part sent
/// to the vendor, the rest filtered here), sorted by `orderBy`, cut to `fields`.
pub(super) async fn list(
    vendor: &Vendor<'_>,
    row: &InstanceRow,
    hub: &str,
    path: &str,
    vendor_path: &str,
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
        plan_where(def, resource, where_text).map_err(query_error)?
    };
    let mut filters = plan.params;
    filters.extend(plan_order_by(resource, order_text).map_err(query_error)?);
    let fields = requested_fields(def, resource, params)?;

    let Paging::Page { page_param, size_param, first_page, max_page_size } = &def.paging;
    let hub_path = format!("{hub}/{path}");
    let q = query_hash(where_text, order_text);
    let key = vendor.engine.paging_key.as_slice();
    let token = match get("nextPage").filter(|t| !t.is_empty()) {
        Some(text) => {
            let t = decode_token(key, text).ok_or_else(|| bad_request("nextPage is not a token this server issued"))?;
            if t.i != row.id || t.p != hub_path {
                return Err(bad_request("nextPage belongs to another instance or resource"));
            }
            if t.q != q {
                return Err(bad_request("nextPage was issued for another where or orderBy; send the same ones"));
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
            (number("pageSize", DEFAULT_PAGE_SIZE)?.min(*max_page_size).max(1), number("page", 1)?)
        }
    };
    let vendor_query = |page: u64, limit: u64| {
        let mut query = filters.clone();
        query.push((page_param.clone(), (page + first_page).to_string()));
        query.push((size_param.clone(), limit.to_string()));
        query
    };

    let (body, count, next, warnings) = match &plan.residual {
        None => {
            // The vendor filters exactly: read one record past the page to know whether
            // another exists. Vendor pages of size `want` align with the first hub page,
            // so the common case is one vendor call; other offsets take at most two.
            // A page whose records lie past what a vendor offset can count is a 400,
            // not an overflow.
            let too_far = || bad_request("page is too large");
            let offset = match &token {
                Some(t) => t.o.ok_or_else(|| bad_request("nextPage was issued for another where or orderBy; send the same ones"))?,
                None => (page - 1).checked_mul(size).ok_or_else(too_far)?,
            };
            let want = size + 1;
            let vendor_size = want.min(*max_page_size);
            let first = offset / vendor_size;
            let last = offset.checked_add(want - 1).ok_or_else(too_far)? / vendor_size;
            let mut records = Vec::new();
            let mut skip = (offset - first * vendor_size) as usize;
            for page in first..=last {
                let batch = vendor_page_raw(vendor, vendor_path, resource, &vendor_query(page, vendor_size)).await?;
                let full = batch.len() as u64 == vendor_size;
                records.extend(batch.into_iter().skip(skip));
                skip = 0;
                if !full {
                    break;
                }
            }
            let next = (records.len() as u64 > size).then(|| PageToken { i: row.id, p: hub_path.clone(), q: q.clone(), s: size, o: Some(offset + size), v: None });
            records.truncate(size as usize);
            let body = match &fields {
                None => join_raw(records.iter().map(|(r, _)| r)),
                Some(fields) => {
                    let mut values = Vec::with_capacity(records.len());
                    for (r, _) in &records {
                        let value: Value = serde_json::from_str(r.get()).map_err(EngineError::internal)?;
                        values.push(project(&value, fields));
                    }
                    serde_json::to_vec(&values).map_err(EngineError::internal)?
                }
            };
            let count = records.len();
            let warnings: Vec<String> = records.into_iter().flat_map(|(_, w)| w).collect();
            (body, count, next, warnings)
        }
        Some(residual) => {
            // The engine filters: scan the vendor's pages (its largest size, so a token's
            // position stays valid) one at a time, keeping only the matches of this page.
            let (mut vp, mut at, mut skip) = match &token {
                Some(t) => t.v.ok_or_else(|| bad_request("nextPage was issued for another where or orderBy; send the same ones"))?,
                None => (0, 0, (page - 1).saturating_mul(size)),
            };
            let vendor_size = *max_page_size;
            let mut out = Vec::new();
            let mut next = None;
            let mut scanned = 0;
            let resume = |v| PageToken { i: row.id, p: hub_path.clone(), q: q.clone(), s: size, o: None, v: Some(v) };
            'scan: loop {
                if scanned == MAX_SCAN_PAGES {
                    next = Some(resume((vp, at, skip)));
                    break;
                }
                let batch = vendor_page(vendor, vendor_path, resource, &vendor_query(vp, vendor_size)).await?;
                scanned += 1;
                let full = batch.len() as u64 == vendor_size;
                for (index, record) in batch.into_iter().enumerate().skip(at as usize) {
                    if !residual.matches(&record.0) {
                        continue;
                    }
                    if skip > 0 {
                        skip -= 1;
                    } else if out.len() as u64 == size {
                        // A match past the page: there is a next page, and it starts here.
                        next = Some(resume((vp, index as u64, 0)));
                        break 'scan;
                    } else {
                        out.push(record);
                    }
                }
                if !full {
                    break;
                }
                vp += 1;
                at = 0;
            }
            let (mut values, warnings): (Vec<Value>, Vec<Vec<String>>) = out.into_iter().unzip();
            if let Some(fields) = &fields {
                for r in values.iter_mut() {
                    *r = project(r, fields);
                }
            }
            (serde_json::to_vec(&values).map_err(EngineError::internal)?, values.len(), next, warnings.concat())
        }
    };

    Ok(HubAnswer {
        body: Some(Bytes::from(body)),
        returned_count: Some(count),
        next_page: next.map(|next| encode_token(key, &next)),
        warnings: super::xmlrpc::capped_warnings(resource, warnings),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_and_refuse_tampering() {
        let key = [7u8; 32];
        let q = query_hash("", "");
        let t = encode_token(&key, &PageToken { i: 1, p: "ecommerce/orders".into(), q, s: 50, o: Some(50), v: None });
        let back = decode_token(&key, &t).unwrap();
        assert_eq!((back.i, back.o, back.s), (1, Some(50), 50));
        assert_ne!(back.q, query_hash("id > 5", ""), "bound to the query");
        assert!(decode_token(&[8u8; 32], &t).is_none(), "another key");
        // Forgery and garbling: see page_token's tests.
    }

    #[test]
    fn raw_records_pass_through_byte_for_byte() {
        let body = br#"[{"id":1,"total":"1.5000"}, {"id":2,"x":{"y":[1,2]}}]"#;
        let records = raw_records(body, None).unwrap();
        assert_eq!(String::from_utf8(join_raw(&records)).unwrap(), r#"[{"id":1,"total":"1.5000"},{"id":2,"x":{"y":[1,2]}}]"#);
        let nested = raw_records(br#"{"data":{"items":[{"id":3}]},"count":1}"#, Some("data.items")).unwrap();
        assert_eq!(join_raw(&nested), br#"[{"id":3}]"#);
        assert_eq!(join_raw(&RawRecords::new()), b"[]");
        for bad in [&b""[..], b"{\"id\":1}", b"[1,", b"not json", b"[1]", b"[{\"id\":1}, null]", b"[[]]"] {
            assert_eq!(raw_records(bad, None).unwrap_err().status, StatusCode::BAD_GATEWAY);
        }
        assert!(raw_records(br#"{"data":[]}"#, Some("items")).is_err(), "a missing records path");
    }
}
