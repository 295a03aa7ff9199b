//! Query strings: paging (`page`, `limit`), sorting and the vendor's list filters.

use http::StatusCode;
use serde_json::Value;

use super::fmt::parse_date;
use super::table::{ApiError, Record};

pub(crate) const DEFAULT_LIMIT: usize = 50;
pub(crate) const MAX_LIMIT: usize = 250;

/// The decoded query string.
pub(crate) struct Query(Vec<(String, String)>);

impl Query {
    pub(crate) fn parse(raw: Option<&str>) -> Query {
        Query(
            raw.map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
                .unwrap_or_default(),
        )
    }

    pub(crate) fn get(&self, key: &str) -> Option<&str> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    /// `page` (from 1) and `limit` (default 50, at most 250: more is a 413).
    pub(crate) fn paging(&self) -> Result<(usize, usize), ApiError> {
        let page = match self.get("page") {
            Some(p) => p
                .trim()
                .parse::<i64>()
                .map_err(|_| ApiError::bad_request("The field 'page' is invalid."))?
                .max(1) as usize,
            None => 1,
        };
        let limit = match self.get("limit") {
            Some(l) => {
                let l = l
                    .trim()
                    .parse::<i64>()
                    .map_err(|_| ApiError::bad_request("The field 'limit' is invalid."))?;
                if l > MAX_LIMIT as i64 {
                    return Err(ApiError::new(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        format!("The requested limit of {l} exceeds the maximum of {MAX_LIMIT} items per page."),
                    ));
                }
                if l < 1 {
                    DEFAULT_LIMIT
                } else {
                    l as usize
                }
            }
            None => DEFAULT_LIMIT,
        };
        Ok((page, limit))
    }
}

/// How a query parameter filters a collection.
#[derive(Clone, Copy)]
pub(crate) enum F {
    MinId,
    MaxId,
    MinCreated,
    MaxCreated,
    MinModified,
    MaxModified,
    /// Exact text match on a field.
    Text(&'static str),
    /// Case-insensitive exact text match (emails).
    TextCi(&'static str),
    /// Case-insensitive substring of any of the fields.
    Keyword(&'static [&'static str]),
    /// Integer equality.
    Int(&'static str),
    MinInt(&'static str),
    MaxInt(&'static str),
    MinDec(&'static str),
    MaxDec(&'static str),
    Bool(&'static str),
    /// The array field contains the integer.
    Contains(&'static str),
    /// Case-insensitive exact match of a field of an object field (`billing_address.email`).
    SubTextCi(&'static str, &'static str),
}

pub(crate) enum Pred {
    MinId(u64),
    MaxId(u64),
    MinCreated(i64),
    MaxCreated(i64),
    MinModified(i64),
    MaxModified(i64),
    Text(&'static str, String),
    TextCi(&'static str, String),
    Keyword(&'static [&'static str], String),
    Int(&'static str, i64),
    MinInt(&'static str, i64),
    MaxInt(&'static str, i64),
    MinDec(&'static str, f64),
    MaxDec(&'static str, f64),
    Bool(&'static str, bool),
    Contains(&'static str, i64),
    SubTextCi(&'static str, &'static str, String),
}

fn invalid(name: &str) -> ApiError {
    ApiError::bad_request(format!("The filter '{name}' is invalid."))
}

/// Builds the predicates for the parameters of `q` that `spec` knows; others are ignored,
/// as the vendor ignores them.
pub(crate) fn filters(q: &Query, spec: &[(&str, F)]) -> Result<Vec<Pred>, ApiError> {
    let mut out = Vec::new();
    for (k, v) in &q.0 {
        let Some((name, f)) = spec.iter().find(|(n, _)| n == k) else { continue };
        let int = || v.trim().parse::<i64>().map_err(|_| invalid(name));
        let id = || v.trim().parse::<u64>().map_err(|_| invalid(name));
        let date = || parse_date(v).ok_or_else(|| invalid(name));
        let dec = || v.trim().parse::<f64>().map_err(|_| invalid(name));
        out.push(match *f {
            F::MinId => Pred::MinId(id()?),
            F::MaxId => Pred::MaxId(id()?),
            F::MinCreated => Pred::MinCreated(date()?),
            F::MaxCreated => Pred::MaxCreated(date()?),
            F::MinModified => Pred::MinModified(date()?),
            F::MaxModified => Pred::MaxModified(date()?),
            F::Text(field) => Pred::Text(field, v.clone()),
            F::TextCi(field) => Pred::TextCi(field, v.to_lowercase()),
            F::Keyword(fields) => Pred::Keyword(fields, v.to_lowercase()),
            F::Int(field) => Pred::Int(field, int()?),
            F::MinInt(field) => Pred::MinInt(field, int()?),
            F::MaxInt(field) => Pred::MaxInt(field, int()?),
            F::MinDec(field) => Pred::MinDec(field, dec()?),
            F::MaxDec(field) => Pred::MaxDec(field, dec()?),
            F::Bool(field) => Pred::Bool(
                field,
                match v.trim() {
                    "true" | "1" => true,
                    "false" | "0" => false,
                    _ => return Err(invalid(name)),
                },
            ),
            F::Contains(field) => Pred::Contains(field, int()?),
            F::SubTextCi(o, field) => Pred::SubTextCi(o, field, v.to_lowercase()),
        });
    }
    Ok(out)
}

pub(crate) fn matches(r: &Record, preds: &[Pred]) -> bool {
    preds.iter().all(|p| match p {
        Pred::MinId(x) => r.id >= *x,
        Pred::MaxId(x) => r.id <= *x,
        Pred::MinCreated(t) => r.created >= *t,
        Pred::MaxCreated(t) => r.created <= *t,
        Pred::MinModified(t) => r.modified >= *t,
        Pred::MaxModified(t) => r.modified <= *t,
        Pred::Text(f, v) => r.str(f) == v,
        Pred::TextCi(f, v) => r.str(f).to_lowercase() == *v,
        Pred::Keyword(fs, v) => fs.iter().any(|f| r.str(f).to_lowercase().contains(v.as_str())),
        Pred::Int(f, v) => r.int(f) == Some(*v),
        Pred::MinInt(f, v) => r.int(f).is_some_and(|x| x >= *v),
        Pred::MaxInt(f, v) => r.int(f).is_some_and(|x| x <= *v),
        Pred::MinDec(f, v) => r.num(f).is_some_and(|x| x >= *v),
        Pred::MaxDec(f, v) => r.num(f).is_some_and(|x| x <= *v),
        Pred::Bool(f, v) => r.bool(f) == *v,
        Pred::Contains(f, v) => r
            .value
            .get(*f)
            .and_then(|a| a.as_array())
            .is_some_and(|a| a.iter().any(|x| x.as_i64() == Some(*v))),
        Pred::SubTextCi(o, f, v) => r
            .value
            .get(*o)
            .and_then(|x| x.get(*f))
            .and_then(Value::as_str)
            .is_some_and(|s| s.to_lowercase() == *v),
    })
}

/// Filters, optionally sorts, and pages a collection.
pub(crate) fn select<'a>(
    rows: impl Iterator<Item = &'a Record>,
    preds: &[Pred],
    sort: Option<(&str, bool)>,
    page: usize,
    limit: usize,
) -> Vec<&'a Record> {
    let skip = (page - 1).saturating_mul(limit);
    match sort {
        None => rows.filter(|r| matches(r, preds)).skip(skip).take(limit).collect(),
        Some((field, desc)) => {
            let mut all: Vec<&Record> = rows.filter(|r| matches(r, preds)).collect();
            all.sort_by(|a, b| {
                let o = match field {
                    "id" => a.id.cmp(&b.id),
                    "date_created" => a.created.cmp(&b.created).then(a.id.cmp(&b.id)),
                    "date_modified" => a.modified.cmp(&b.modified).then(a.id.cmp(&b.id)),
                    f => match (a.int(f), b.int(f)) {
                        (Some(x), Some(y)) => x.cmp(&y),
                        _ => a.str(f).cmp(b.str(f)),
                    }
                    .then(a.id.cmp(&b.id)),
                };
                if desc {
                    o.reverse()
                } else {
                    o
                }
            });
            all.into_iter().skip(skip).take(limit).collect()
        }
    }
}

/// Parses `sort=field` / `sort=field:asc|desc` against the allowed fields.
pub(crate) fn sort<'q>(q: &'q Query, allowed: &[&str]) -> Result<Option<(&'q str, bool)>, ApiError> {
    let Some(s) = q.get("sort") else { return Ok(None) };
    let (field, dir) = match s.split_once(':') {
        Some((f, d)) => (f, d),
        None => (s, "asc"),
    };
    let desc = match dir.to_ascii_lowercase().as_str() {
        "asc" => false,
        "desc" => true,
        _ => return Err(ApiError::bad_request("The field 'sort' is invalid.")),
    };
    if !allowed.contains(&field) {
        return Err(ApiError::bad_request("The field 'sort' is invalid."));
    }
    Ok(Some((field, desc)))
}
