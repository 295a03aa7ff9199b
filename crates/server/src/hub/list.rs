//! Hub lists: exact pages over the vendor's paging, and opaque, signed
//! `nextPage` tokens bound to the instance and the hub path.

use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::Engine;
use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;
use switchyard_elements::{Behaviour, Paging};
use switchyard_store::InstanceRow;

use super::vendor::{parse_json, Vendor};
use super::bad_request;
use crate::ApiError;

/// Default hub page size, as in Cloud Elements.
const DEFAULT_PAGE_SIZE: u64 = 200;

/// Where a hub page starts, as the opaque `nextPage` token says or `page` implies.
#[derive(serde::Serialize, serde::Deserialize)]
struct PageToken {
    /// Instance and hub path the token was made for.
    i: i64,
    p: String,
    /// Offset of the first record, and the page size.
    o: u64,
    s: u64,
}

fn sign(key: &[u8], payload: &[u8]) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(payload);
    mac.finalize().into_bytes()[..16].to_vec()
}

fn encode_token(key: &[u8], token: &PageToken) -> String {
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let payload = serde_json::to_vec(token).unwrap_or_default();
    format!("{}.{}", b64.encode(&payload), b64.encode(sign(key, &payload)))
}

fn decode_token(key: &[u8], text: &str) -> Option<PageToken> {
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let (payload, mac) = text.split_once('.')?;
    let payload = b64.decode(payload).ok()?;
    let mac = b64.decode(mac).ok()?;
    let mut check = Hmac::<Sha256>::new_from_slice(key).ok()?;
    check.update(&payload);
    check.verify_truncated_left(&mac).ok()?;
    serde_json::from_slice(&payload).ok()
}

#[allow(clippy::too_many_arguments)]
pub(super) async fn list(
    vendor: &Vendor<'_>,
    row: &InstanceRow,
    hub: &str,
    path: &str,
    vendor_path: &str,
    params: &[(String, String)],
    records_path: Option<&str>,
) -> Result<Response, ApiError> {
    let get = |name: &str| params.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str());
    if get("where").is_some_and(|w| !w.trim().is_empty()) {
        return Err(bad_request("where (CEQL) is not supported on this resource yet; nothing was filtered"));
    }
    let Paging::Page { page_param, size_param, first_page, max_page_size } = &vendor.def.paging;
    let hub_path = format!("{hub}/{path}");
    let key = vendor.state.paging_key.as_slice();
    let (offset, size) = match get("nextPage").filter(|t| !t.is_empty()) {
        Some(text) => {
            let t = decode_token(key, text).ok_or_else(|| bad_request("nextPage is not a token this server issued"))?;
            if t.i != row.id || t.p != hub_path {
                return Err(bad_request("nextPage belongs to another instance or resource"));
            }
            (t.o, t.s)
        }
        None => {
            let number = |name: &str, default: u64| -> Result<u64, ApiError> {
                match get(name) {
                    None | Some("") => Ok(default),
                    Some(v) => v.parse::<u64>().ok().filter(|n| *n >= 1).ok_or_else(|| bad_request(format!("{name} must be a whole number from 1"))),
                }
            };
            let size = number("pageSize", DEFAULT_PAGE_SIZE)?.min(*max_page_size);
            let page = number("page", 1)?;
            ((page - 1).saturating_mul(size), size)
        }
    };

    // Read one record past the page to know, exactly, whether another page exists.
    // Vendor pages of size `want` align with the first hub page, so the common
    // case is one vendor call; other offsets take at most two.
    let want = size + 1;
    let vendor_size = want.min(*max_page_size);
    let first = offset / vendor_size;
    let last = (offset + want - 1) / vendor_size;
    let mut records = Vec::new();
    let mut skip = (offset - first * vendor_size) as usize;
    for page in first..=last {
        let query = vec![(page_param.clone(), (page + first_page).to_string()), (size_param.clone(), vendor_size.to_string())];
        let r = vendor.send(Method::GET, vendor_path, &query, None).await?;
        let batch = if r.status == 204 && vendor.def.behaviours.contains(&Behaviour::EmptyListIs204) {
            Vec::new()
        } else {
            let value = parse_json(&r)?;
            let value = match records_path {
                Some(p) => p.split('.').try_fold(&value, |v, k| v.get(k)).cloned().unwrap_or(Value::Null),
                None => value,
            };
            match value {
                Value::Array(items) => items,
                _ => return Err(ApiError::new(StatusCode::BAD_GATEWAY, "The vendor's list answer holds no array")),
            }
        };
        let full = batch.len() as u64 == vendor_size;
        records.extend(batch.into_iter().skip(skip));
        skip = 0;
        if !full {
            break;
        }
    }
    let more = records.len() as u64 > size;
    records.truncate(size as usize);
    let mut headers = HeaderMap::new();
    headers.insert("Elements-Returned-Count", HeaderValue::from(records.len()));
    if more {
        let token = encode_token(key, &PageToken { i: row.id, p: hub_path, o: offset + size, s: size });
        if let Ok(v) = HeaderValue::from_str(&token) {
            headers.insert("Elements-Next-Page-Token", v);
        }
    }
    Ok((headers, Json(Value::Array(records))).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_and_refuse_tampering() {
        let key = [7u8; 32];
        let t = encode_token(&key, &PageToken { i: 1, p: "ecommerce/orders".into(), o: 50, s: 50 });
        let back = decode_token(&key, &t).unwrap();
        assert_eq!((back.i, back.o, back.s), (1, 50, 50));
        assert!(decode_token(&[8u8; 32], &t).is_none(), "another key");
        let (payload, mac) = t.split_once('.').unwrap();
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let forged = String::from_utf8(b64.decode(payload).unwrap()).unwrap().replace("50", "99");
        assert!(decode_token(&key, &format!("{}.{mac}", b64.encode(forged))).is_none());
        assert!(decode_token(&key, "garbage").is_none());
    }
}
