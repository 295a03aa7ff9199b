//! Hub list queries against a resource's declarations: CEQL `where` split into
//! vendor query parameters and the predicate the engine evaluates, `orderBy`
//! mapped to the vendor's sort, and `fields` checked and applied.
//!
//! The rules are in `elements/README.md` ("CEQL on lists"). Nothing here talks
//! to the vendor; the server sends `VendorQuery::params` and filters with
//! `VendorQuery::residual`.

use std::cmp::Ordering;

use serde_json::{Map, Value};
use switchyard_ceql::{parse_instant, CompareOp, Expr, Field, Literal};
use thiserror::Error;

use crate::behaviour::format_vendor_date;
use crate::model::{ElementDefinition, FieldType, Model, Protocol, Resource};
use crate::zone::Zone;

/// Why a list query cannot be honoured; every one is the caller's mistake (400).
#[derive(Debug, Error, PartialEq, Eq)]
pub enum QueryError {
    #[error("Invalid where clause: {0}")]
    Syntax(String),
    /// A clause neither the vendor nor the engine can honour.
    #[error("The where clause '{field} {operator}' cannot be honoured: {reason}")]
    Unhonourable { field: String, operator: String, reason: String },
    #[error("Invalid orderBy: {0}")]
    OrderBy(String),
    #[error("Invalid fields: {0}")]
    Fields(String),
}

/// What to ask the vendor and what to check on each record it returns.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VendorQuery {
    /// Vendor query parameters, in the order the clauses came.
    pub params: Vec<(String, String)>,
    /// The predicate the engine evaluates on every vendor record; `None` when
    /// the vendor's filters are exactly the clause.
    pub residual: Option<Expr>,
}

/// How one clause reaches the vendor.
enum Role {
    Eq,
    Min,
    Max,
}

/// The resource's field types; `None` when it declares no model.
fn model<'a>(def: &'a ElementDefinition, resource: &Resource) -> Option<&'a Model> {
    resource.model.as_deref().and_then(|m| def.models.get(m))
}

/// The type of `field` in `model`: `Some(None)` for an untyped but accepted
/// field (inside an object or a link), `None` for a field the model lacks.
fn field_type(model: &Model, field: &str) -> Option<Option<FieldType>> {
    if let Some(t) = model.get(field) {
        return Some(Some(*t));
    }
    // `billing_address.email`: a sub-field of a declared object or link.
    let mut prefix = field;
    while let Some((head, _)) = prefix.rsplit_once('.') {
        if let Some(t) = model.get(head) {
            return matches!(t, FieldType::Object | FieldType::Link | FieldType::Array).then_some(None);
        }
        prefix = head;
    }
    None
}

fn unhonourable(e: &Expr, reason: impl Into<String>) -> QueryError {
    QueryError::Unhonourable {
        field: e.field().map(|f| f.as_str().to_owned()).unwrap_or_default(),
        operator: e.operator().to_owned(),
        reason: reason.into(),
    }
}

/// Whether `lit` can stand for a value of type `t` (for `=`, `<`, `IN`, ...).
fn literal_fits(t: FieldType, lit: &Literal) -> bool {
    match (t, lit) {
        (FieldType::Integer | FieldType::Decimal, Literal::Number(_)) => true,
        (FieldType::Integer | FieldType::Decimal, Literal::String(s)) => switchyard_ceql::Number::is_valid(s),
        (FieldType::Date, Literal::String(s)) => parse_instant(s).is_some(),
        (FieldType::Boolean, Literal::Bool(_)) => true,
        (FieldType::Boolean, Literal::String(s)) => s.eq_ignore_ascii_case("true") || s.eq_ignore_ascii_case("false"),
        (FieldType::String, _) => true,
        _ => false,
    }
}

/// Refuses a clause the engine cannot evaluate meaningfully on a field of type `t`.
fn check_leaf(e: &Expr, t: FieldType) -> Result<(), QueryError> {
    let what = |t: FieldType| format!("the field is a{} {}", if t == FieldType::Integer { "n" } else { "" }, t.as_str());
    match e {
        Expr::IsNull { .. } => Ok(()),
        _ if !t.is_scalar() => Err(unhonourable(e, format!("{}; only IS NULL and IS NOT NULL apply", what(t)))),
        Expr::Like { .. } if t != FieldType::String => Err(unhonourable(e, format!("{}; LIKE applies to strings", what(t)))),
        Expr::Like { .. } => Ok(()),
        Expr::Compare { op, .. } if !matches!(op, CompareOp::Eq | CompareOp::Ne) && !t.is_ordered() => {
            Err(unhonourable(e, format!("{}, which has no order", what(t))))
        }
        Expr::Compare { value, .. } if !literal_fits(t, value) => {
            Err(unhonourable(e, format!("{} and {} is not one", what(t), value_text(value))))
        }
        Expr::In { values, .. } => match values.iter().find(|v| !literal_fits(t, v)) {
            Some(v) => Err(unhonourable(e, format!("{} and {} is not one", what(t), value_text(v)))),
            None => Ok(()),
        },
        _ => Ok(()),
    }
}

fn value_text(lit: &Literal) -> String {
    match lit {
        Literal::String(s) => switchyard_ceql::quote_string(s),
        other => other.to_plain_string(),
    }
}

/// Date fields: BigCommerce writes an empty string for "no date" (`date_shipped`).
/// Treated as null, so `date_shipped < '2024-01-01'` does not match an unshipped order.
fn guard_empty_dates(e: Expr, model: Option<&Model>) -> Expr {
    let is_date = |f: &Field| model.is_some_and(|m| m.get(f.as_str()) == Some(&FieldType::Date));
    match e {
        Expr::And(v) => Expr::And(v.into_iter().map(|e| guard_empty_dates(e, model)).collect()),
        Expr::Or(v) => Expr::Or(v.into_iter().map(|e| guard_empty_dates(e, model)).collect()),
        Expr::IsNull { field, negated } if is_date(&field) => {
            let empty = Expr::compare(field.clone(), if negated { CompareOp::Ne } else { CompareOp::Eq }, "");
            let null = Expr::IsNull { field, negated };
            if negated {
                Expr::And(vec![null, empty])
            } else {
                Expr::Or(vec![null, empty])
            }
        }
        leaf => match leaf.field() {
            Some(f) if is_date(f) => {
                let not_empty = Expr::compare(f.clone(), CompareOp::Ne, "");
                Expr::And(vec![leaf, not_empty])
            }
            _ => leaf,
        },
    }
}

/// Parses and plans `where` for a list of `resource`.
pub fn plan_where(def: &ElementDefinition, resource: &Resource, text: &str) -> Result<VendorQuery, QueryError> {
    plan_where_in(def, resource, text, None)
}

/// [`plan_where`] for a vendor that writes dates as local times without an offset
/// (Keap) in `zone`: a date value given with an offset is first rewritten to
/// `zone`'s wall-clock time, so the vendor's filter and the engine's check compare
/// like with like; a value without an offset is already such a time.
pub fn plan_where_in(def: &ElementDefinition, resource: &Resource, text: &str, zone: Option<Zone>) -> Result<VendorQuery, QueryError> {
    let expr = switchyard_ceql::parse(text).map_err(|e| QueryError::Syntax(e.to_string()))?;
    let model = model(def, resource);
    // `id`, which the engine adds beside a vendor key of another name (Keap's `Id`).
    let expr = match id_alias(def, model) {
        Some(key) => rewrite_leaves(expr, &mut |leaf| rename_field(leaf, "id", key)),
        None => expr,
    };
    let expr = match (zone, model) {
        (Some(zone), Some(model)) => rewrite_leaves(expr, &mut |leaf| localize_dates(leaf, model, zone)),
        _ => expr,
    };

    // The vendor-parameter form (`min_date_modified='...'`, as Cloud Elements users
    // wrote it): rewritten to the clause on the record field it filters.
    let param_of = |name: &str| {
        resource.where_map.iter().find_map(|(field, f)| {
            let role = if f.eq.as_deref() == Some(name) {
                Role::Eq
            } else if f.min.as_deref() == Some(name) {
                Role::Min
            } else if f.max.as_deref() == Some(name) {
                Role::Max
            } else {
                return None;
            };
            Some((field.as_str(), role))
        })
    };
    let mut vendor_form = Vec::new();
    let mut rewrite_err = None;
    let expr = rewrite_leaves(expr, &mut |leaf| {
        let Some(name) = leaf.field().map(|f| f.as_str().to_owned()) else { return leaf };
        if model.is_some_and(|m| field_type(m, &name).is_some()) {
            return leaf; // a record field of that name wins over a parameter
        }
        let Some((field, role)) = param_of(&name) else { return leaf };
        let Expr::Compare { op: CompareOp::Eq, value, .. } = &leaf else {
            rewrite_err.get_or_insert_with(|| {
                unhonourable(&leaf, format!("'{name}' is a vendor parameter; it takes '=' and a value"))
            });
            return leaf;
        };
        let op = match role {
            Role::Eq => CompareOp::Eq,
            Role::Min => CompareOp::Ge,
            Role::Max => CompareOp::Le,
        };
        let out = Expr::compare(field, op, value.clone());
        vendor_form.push(out.clone());
        out
    });
    if let Some(e) = rewrite_err {
        return Err(e);
    }

    // Every clause must be one the engine could evaluate on this model.
    let mut leaves = Vec::new();
    collect_leaves(&expr, &mut leaves);
    if let Some(m) = model {
        for leaf in leaves {
            let f = leaf.field().map(|f| f.as_str()).unwrap_or("");
            match field_type(m, f) {
                None => {
                    let name = resource.name();
                    return Err(unhonourable(leaf, format!("{name} has no field '{f}' and no vendor parameter of that name")));
                }
                Some(Some(t)) => check_leaf(leaf, t)?,
                Some(None) => {}
            }
        }
    }

    // Top-level AND clauses with a declared vendor filter go to the vendor.
    let mut params: Vec<(String, String, Option<Bound>)> = Vec::new();
    let mut residual = Vec::new();
    for clause in expr.into_conjuncts() {
        if def.protocol == Protocol::XmlRpc {
            match query_data(model, &clause, &mut params) {
                Some(true) => {}
                _ => residual.push(clause),
            }
            continue;
        }
        let trusted = vendor_form.contains(&clause);
        match translate(def, resource, model, &clause, &mut params) {
            Some(exact) if exact || trusted => {}
            _ => residual.push(clause),
        }
    }
    let residual = Expr::all(residual.into_iter().map(|e| guard_empty_dates(e, model)));
    Ok(VendorQuery { params: params.into_iter().map(|(k, v, _)| (k, v)).collect(), residual })
}

/// The vendor key that `id` stands for, when the element names its key otherwise
/// and the model has no `id` of its own.
fn id_alias<'a>(def: &'a ElementDefinition, model: Option<&Model>) -> Option<&'a str> {
    (def.id_field != "id" && !model.is_some_and(|m| m.contains_key("id"))).then_some(def.id_field.as_str())
}

/// A clause on a `date` field with its values that carry an offset rewritten as
/// `zone`'s wall-clock time (`2024-07-01T12:00:00Z` in New York is
/// `2024-07-01T08:00:00`); values without one, and other fields, are kept.
fn localize_dates(leaf: Expr, model: &Model, zone: Zone) -> Expr {
    let is_date = |f: &Field| model.get(f.as_str()) == Some(&FieldType::Date);
    let local = |lit: Literal| match lit {
        Literal::String(s) if switchyard_ceql::parse_local(&s).is_none() => match parse_instant(&s) {
            Some(t) => Literal::String(zone.local(t).format("%Y-%m-%dT%H:%M:%S%.f").to_string()),
            None => Literal::String(s),
        },
        other => other,
    };
    match leaf {
        Expr::Compare { field, op, value } if is_date(&field) => Expr::Compare { field, op, value: local(value) },
        Expr::In { field, values, negated } if is_date(&field) => {
            Expr::In { field, values: values.into_iter().map(local).collect(), negated }
        }
        other => other,
    }
}

fn rename_field(leaf: Expr, from: &str, to: &str) -> Expr {
    match leaf {
        Expr::Compare { field, op, value } if field.as_str() == from => Expr::Compare { field: Field::new(to), op, value },
        Expr::Like { field, pattern, negated } if field.as_str() == from => Expr::Like { field: Field::new(to), pattern, negated },
        Expr::In { field, values, negated } if field.as_str() == from => Expr::In { field: Field::new(to), values, negated },
        Expr::IsNull { field, negated } if field.as_str() == from => Expr::IsNull { field: Field::new(to), negated },
        other => other,
    }
}

/// One top-level clause as a member of Keap's `queryData` (`xml-rpc` elements):
/// `=` as the value, `LIKE` as its `%` pattern, `!=` `<` `<=` `>` `>=` as `~op~value`,
/// `IS NULL` as `~null~`, `IS NOT NULL` as `~<>~`. One member per field: a second
/// clause on a field stays with the engine. `None`: the vendor cannot take it;
/// `Some(exact)`: sent, and whether the vendor's answer is exactly the clause.
/// Text compares case-insensitively at Keap (MySQL collation) and dates have whole
/// seconds, so text and date clauses are also checked again by the engine.
fn query_data(model: Option<&Model>, clause: &Expr, params: &mut Vec<(String, String, Option<Bound>)>) -> Option<bool> {
    let field = clause.field()?.as_str();
    let t = *model?.get(field)?;
    if !t.is_scalar() || params.iter().any(|(k, _, _)| k == field) {
        return None;
    }
    // A text value that Keap would read as an operator or a pattern is not sent.
    let plain = |s: &str| !s.contains('%') && !s.trim_start().starts_with('~');
    let operand = |lit: &Literal| -> Option<String> {
        match (t, lit) {
            (FieldType::Integer, l) => Some(l.to_plain_string().parse::<i64>().ok()?.to_string()),
            (FieldType::Decimal, l) => {
                let text = l.to_plain_string();
                switchyard_ceql::Number::is_valid(&text).then_some(text)
            }
            (FieldType::Date, Literal::String(s)) => {
                let instant = parse_instant(s)?;
                (instant.timestamp_subsec_nanos() == 0).then(|| instant.format("%Y-%m-%d %H:%M:%S").to_string())
            }
            (FieldType::String, Literal::String(s)) if plain(s) => Some(s.clone()),
            _ => None,
        }
    };
    let recheck = matches!(t, FieldType::String | FieldType::Date);
    let value = match clause {
        Expr::Compare { op, value, .. } => {
            let v = operand(value)?;
            match op {
                CompareOp::Eq if v.is_empty() => return None, // Keap's "" also matches an empty field
                CompareOp::Eq => v,
                op => format!("~{}~{v}", if *op == CompareOp::Ne { "<>" } else { op.as_str() }),
            }
        }
        Expr::Like { pattern, negated: false, .. } if t == FieldType::String && !pattern.trim_start().starts_with('~') => {
            pattern.clone()
        }
        Expr::IsNull { negated: false, .. } => "~null~".to_owned(),
        Expr::IsNull { negated: true, .. } => "~<>~".to_owned(),
        _ => return None,
    };
    params.push((field.to_owned(), value, None));
    Some(!recheck)
}

fn rewrite_leaves(e: Expr, f: &mut impl FnMut(Expr) -> Expr) -> Expr {
    match e {
        Expr::And(v) => Expr::And(v.into_iter().map(|e| rewrite_leaves(e, f)).collect()),
        Expr::Or(v) => Expr::Or(v.into_iter().map(|e| rewrite_leaves(e, f)).collect()),
        leaf => f(leaf),
    }
}

fn collect_leaves<'a>(e: &'a Expr, out: &mut Vec<&'a Expr>) {
    match e {
        Expr::And(v) | Expr::Or(v) => v.iter().for_each(|e| collect_leaves(e, out)),
        leaf => out.push(leaf),
    }
}

/// A typed bound, to keep the tightest when a parameter is given twice.
#[derive(Debug, Clone, PartialEq)]
enum Bound {
    Int(i64),
    Dec(f64),
    Date(i64),
}

impl Bound {
    fn cmp(&self, other: &Bound) -> Option<Ordering> {
        match (self, other) {
            (Bound::Int(a), Bound::Int(b)) => Some(a.cmp(b)),
            (Bound::Dec(a), Bound::Dec(b)) => a.partial_cmp(b),
            (Bound::Date(a), Bound::Date(b)) => Some(a.cmp(b)),
            _ => None,
        }
    }
}

/// Adds the vendor parameters for one top-level clause. `None`: the vendor cannot
/// filter it; `Some(exact)`: sent, and whether the vendor's answer is exactly the clause.
fn translate(
    def: &ElementDefinition,
    resource: &Resource,
    model: Option<&Model>,
    clause: &Expr,
    params: &mut Vec<(String, String, Option<Bound>)>,
) -> Option<bool> {
    let Expr::Compare { field, op, value } = clause else { return None };
    let filter = resource.where_map.get(field.as_str())?;
    // A sub-field of an object (`billing_address.email`) is filtered as text.
    let t = field_type(model?, field.as_str())?.unwrap_or(FieldType::String);
    let exact = !filter.recheck;
    if *op == CompareOp::Eq {
        if let Some(p) = &filter.eq {
            if params.iter().any(|(k, _, _)| k == p) {
                return None; // one value per parameter; the engine checks the second
            }
            params.push((p.clone(), plain_value(def, t, value)?, None));
            return Some(exact);
        }
    }
    let (lower, upper) = match op {
        CompareOp::Eq => (true, true),
        CompareOp::Gt | CompareOp::Ge => (true, false),
        CompareOp::Lt | CompareOp::Le => (false, true),
        CompareOp::Ne => return None,
    };
    let strict = matches!(op, CompareOp::Gt | CompareOp::Lt);
    let mut exact_all = exact;
    let mut sent = false;
    for (wanted, param, is_min) in [(lower, &filter.min, true), (upper, &filter.max, false)] {
        let (true, Some(param)) = (wanted, param) else {
            if wanted {
                exact_all = false; // half of an `=` the vendor cannot bound
            }
            continue;
        };
        let (text, bound, exact_bound) = bound_value(def, t, value, strict, is_min)?;
        exact_all &= exact_bound;
        sent = true;
        match params.iter_mut().find(|(k, _, _)| k == param) {
            Some(existing) => {
                // Keep the tighter bound; the looser one is implied.
                let tighter = match (existing.2.as_ref().and_then(|b| bound.cmp(b)), is_min) {
                    (Some(Ordering::Greater), true) | (Some(Ordering::Less), false) => true,
                    (Some(_), _) => false,
                    (None, _) => return None,
                };
                if tighter {
                    *existing = (param.clone(), text, Some(bound));
                }
            }
            None => params.push((param.clone(), text, Some(bound))),
        }
    }
    sent.then_some(exact_all)
}

/// A literal as the vendor parameter value for a field of type `t`.
fn plain_value(def: &ElementDefinition, t: FieldType, lit: &Literal) -> Option<String> {
    match (t, lit) {
        (FieldType::Date, Literal::String(s)) => Some(format_vendor_date(def, s)?),
        (FieldType::Boolean, l) => Some(l.to_plain_string().to_ascii_lowercase()),
        (_, l) => Some(l.to_plain_string()),
    }
}

/// The inclusive vendor bound for `value` (`>`/`<` when `strict`), its typed
/// form, and whether the bound is exact (integers are: `id > 5` is `min_id=6`;
/// decimal and date bounds of a strict comparison are not, so the engine checks).
fn bound_value(
    def: &ElementDefinition,
    t: FieldType,
    lit: &Literal,
    strict: bool,
    is_min: bool,
) -> Option<(String, Bound, bool)> {
    let number = match lit {
        Literal::Number(n) => Some(n.as_str().to_owned()),
        Literal::String(s) if switchyard_ceql::Number::is_valid(s) => Some(s.clone()),
        _ => None,
    };
    match t {
        FieldType::Integer => {
            let n = number?;
            let exact_int = n.parse::<i64>().ok();
            let f: f64 = n.parse().ok()?;
            // The smallest integer satisfying `> v`/`>= v` (largest for `<`/`<=`).
            let b = match (exact_int, is_min, strict) {
                (Some(i), true, true) => i.checked_add(1)?,
                (Some(i), false, true) => i.checked_sub(1)?,
                (Some(i), _, false) => i,
                (None, true, _) if strict && f.fract() == 0.0 => f as i64 + 1,
                (None, true, _) => f.ceil() as i64,
                (None, false, _) if strict && f.fract() == 0.0 => f as i64 - 1,
                (None, false, _) => f.floor() as i64,
            };
            Some((b.to_string(), Bound::Int(b), true))
        }
        FieldType::Decimal => {
            let n = number?;
            Some((n.clone(), Bound::Dec(n.parse().ok()?), !strict))
        }
        FieldType::Date => {
            let Literal::String(s) = lit else { return None };
            let instant = parse_instant(s)?;
            Some((format_vendor_date(def, s)?, Bound::Date(instant.timestamp_millis()), !strict))
        }
        _ => None,
    }
}

/// `orderBy=field [asc|desc]` as vendor query parameters.
pub fn plan_order_by(resource: &Resource, text: &str) -> Result<Vec<(String, String)>, QueryError> {
    let text = text.trim();
    if text.is_empty() {
        return Ok(Vec::new());
    }
    let Some(sort) = &resource.order_by else {
        return Err(QueryError::OrderBy(format!("{} cannot be sorted by the vendor", resource.name())));
    };
    if text.contains(',') {
        return Err(QueryError::OrderBy("the vendor sorts by one field only".into()));
    }
    let mut words = text.split_whitespace();
    let field = words.next().unwrap_or_default();
    let direction = match words.next().map(str::to_ascii_lowercase).as_deref() {
        None | Some("asc") => "asc",
        Some("desc") => "desc",
        Some(other) => return Err(QueryError::OrderBy(format!("direction '{other}' is not asc or desc"))),
    };
    if words.next().is_some() {
        return Err(QueryError::OrderBy(format!("expected 'field [asc|desc]', found '{text}'")));
    }
    if !sort.fields.iter().any(|f| f == field) {
        return Err(QueryError::OrderBy(format!(
            "{} cannot be sorted by '{field}'; it can by {}",
            resource.name(),
            sort.fields.join(", ")
        )));
    }
    Ok(vec![(sort.param.clone(), format!("{field}{}{direction}", sort.separator))])
}

/// The `fields` list (comma-separated paths), checked against the model if any.
pub fn parse_fields(def: &ElementDefinition, resource: &Resource, text: &str) -> Result<Vec<String>, QueryError> {
    let fields: Vec<String> = text.split(',').map(str::trim).filter(|f| !f.is_empty()).map(str::to_owned).collect();
    if let Some(m) = model(def, resource) {
        let alias = id_alias(def, Some(m)).is_some();
        if let Some(f) = fields.iter().find(|f| field_type(m, f).is_none() && !(alias && f.as_str() == "id")) {
            return Err(QueryError::Fields(format!("{} has no field '{f}'", resource.name())));
        }
    }
    Ok(fields)
}

/// `record` with only `fields` (dotted paths keep their nesting); absent fields are left out.
pub fn project(record: &Value, fields: &[String]) -> Value {
    let mut out = Map::new();
    'fields: for f in fields {
        let Some(v) = Field::new(f.as_str()).lookup(record) else { continue };
        let mut segments: Vec<&str> = f.split('.').collect();
        let last = segments.pop().unwrap_or_default();
        let mut cur = &mut out;
        for s in segments {
            let next = cur.entry(s.to_owned()).or_insert_with(|| Value::Object(Map::new()));
            if !next.is_object() {
                *next = Value::Object(Map::new());
            }
            let Value::Object(m) = next else { continue 'fields };
            cur = m;
        }
        cur.insert(last.to_owned(), v.clone());
    }
    Value::Object(out)
}
