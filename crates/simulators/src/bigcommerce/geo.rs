//! `/countries` and `/countries/.../states`: every ISO 3166-1 country, with the states
//! of the countries whose addresses need one. The data is `data/countries.tsv`
//! (generated from Debian's iso-codes, see its header), built into the binary.

use std::sync::OnceLock;

use http::Method;
use serde_json::json;

use super::api::{id, not_allowed, Ctx};
use super::query::{filters, select, F};
use super::table::{link, obj, ApiError, Record, Reply};

const DATA: &str = include_str!("../../data/countries.tsv");

/// One country: the id is its place in name order, from 1, as the vendor numbers them
/// (`1` Afghanistan, `2` Albania, `13` Australia in its reference).
pub(crate) struct Country {
    pub(crate) id: u64,
    pub(crate) iso2: &'static str,
    pub(crate) iso3: &'static str,
    /// The ISO English short name (`Bolivia, Plurinational State of`).
    pub(crate) name: &'static str,
    /// The common name where ISO gives one (`Bolivia`).
    pub(crate) common: Option<&'static str>,
}

struct Geo {
    countries: Vec<Country>,
    country_records: Vec<Record>,
    /// `(country id, record)`, in country then name order.
    states: Vec<(u64, Record)>,
}

fn geo() -> &'static Geo {
    static GEO: OnceLock<Geo> = OnceLock::new();
    GEO.get_or_init(|| {
        let mut countries = Vec::new();
        let mut raw_states = Vec::new();
        for line in DATA.lines().filter(|l| !l.starts_with('#') && !l.trim().is_empty()) {
            let f: Vec<&'static str> = line.split('\t').collect();
            match (f.first().copied(), f.len()) {
                (Some("C"), 4..) => countries.push(Country {
                    id: countries.len() as u64 + 1,
                    iso2: f[1],
                    iso3: f[2],
                    name: f[3],
                    common: f.get(4).copied().filter(|c| !c.is_empty()),
                }),
                (Some("S"), 4..) => raw_states.push((f[1], f[2], f[3])),
                _ => {}
            }
        }
        let country_records = countries
            .iter()
            .map(|c| {
                let v = obj(json!({
                    "id": c.id, "country": c.name, "country_iso2": c.iso2, "country_iso3": c.iso3,
                    "states": link(format!("/countries/{}/states", c.id))
                }));
                Record::new(c.id, 0, 0, v)
            })
            .collect();
        let mut states = Vec::new();
        for (n, (iso, abbr, name)) in raw_states.into_iter().enumerate() {
            let Some(c) = countries.iter().find(|c| c.iso2 == iso) else { continue };
            let sid = n as u64 + 1;
            let v = obj(json!({ "id": sid, "state": name, "state_abbreviation": abbr, "country_id": c.id }));
            states.push((c.id, Record::new(sid, 0, 0, v)));
        }
        Geo { countries, country_records, states }
    })
}

/// The country named by its English short name, its common name, or its ISO 3166-1
/// alpha-2 or alpha-3 code, ignoring case.
pub(crate) fn country(s: &str) -> Option<&'static Country> {
    let s = s.trim();
    geo().countries.iter().find(|c| {
        c.name.eq_ignore_ascii_case(s)
            || c.common.is_some_and(|n| n.eq_ignore_ascii_case(s))
            || c.iso2.eq_ignore_ascii_case(s)
            || c.iso3.eq_ignore_ascii_case(s)
    })
}

/// Whether the vendor lists states for the country (and so wants one in its addresses).
pub(crate) fn has_states(c: &Country) -> bool {
    geo().states.iter().any(|(cid, _)| *cid == c.id)
}

const COUNTRY_FILTERS: &[(&str, F)] = &[("country", F::Text("country")), ("country_iso2", F::Text("country_iso2")), ("country_iso3", F::Text("country_iso3"))];
const STATE_FILTERS: &[(&str, F)] = &[("state", F::Text("state")), ("state_abbreviation", F::Text("state_abbreviation"))];

/// The read-only geography resources of `reference/geography.v2.yml`.
pub(crate) fn route(method: &Method, segs: &[&str], ctx: &Ctx<'_>) -> Result<Reply, ApiError> {
    let g = geo();
    let read = method == Method::GET || method == Method::HEAD;
    let list = |rows: Vec<&Record>, preds: &[(&str, F)]| -> Result<Reply, ApiError> {
        let (page, limit) = ctx.query.paging()?;
        let preds = filters(&ctx.query, preds)?;
        Ok(Reply::list(select(rows.into_iter(), &preds, None, page, limit), ctx.base))
    };
    let country_states = |seg: &str| -> Result<Vec<&Record>, ApiError> {
        let cid = id(seg)?;
        g.countries.iter().find(|c| c.id == cid).ok_or_else(ApiError::not_found)?;
        Ok(g.states.iter().filter(|(c, _)| *c == cid).map(|(_, r)| r).collect())
    };
    let answer = match segs {
        [_] => list(g.country_records.iter().collect(), COUNTRY_FILTERS),
        [_, "count"] => Ok(Reply::count(g.countries.len())),
        [_, "states"] => list(g.states.iter().map(|(_, r)| r).collect(), STATE_FILTERS),
        [_, "states", "count"] => Ok(Reply::count(g.states.len())),
        [_, cid] => {
            let cid = id(cid)?;
            let r = g.country_records.iter().find(|r| r.id == cid).ok_or_else(ApiError::not_found)?;
            Ok(Reply::record(http::StatusCode::OK, r, ctx.base))
        }
        [_, cid, "states"] => list(country_states(cid)?, STATE_FILTERS),
        [_, cid, "states", "count"] => Ok(Reply::count(country_states(cid)?.len())),
        [_, cid, "states", sid] => {
            let sid = id(sid)?;
            let r = country_states(cid)?.into_iter().find(|r| r.id == sid).ok_or_else(ApiError::not_found)?;
            Ok(Reply::record(http::StatusCode::OK, r, ctx.base))
        }
        _ => return Err(ApiError::not_found()),
    };
    if read {
        answer
    } else {
        answer.and_then(|_| not_allowed())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_iso_country_by_name_or_code() {
        assert_eq!(geo().countries.len(), 249);
        let au = country("Australia").unwrap();
        // The ids of the vendor's reference examples (`geography.v2.yml`).
        assert_eq!((au.id, country("Afghanistan").unwrap().id, country("Albania").unwrap().id), (13, 1, 2));
        for s in ["AU", "aus", "australia"] {
            assert_eq!(country(s).unwrap().id, au.id, "{s}");
        }
        assert_eq!(country("Bolivia").unwrap().iso2, "BO");
        assert_eq!(country("Bolivia, Plurinational State of").unwrap().iso3, "BOL");
        assert!(country("Narnia").is_none());
        assert!(has_states(country("US").unwrap()) && has_states(au) && !has_states(country("GB").unwrap()));
    }
}
