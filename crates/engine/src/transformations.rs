//! Cloud Elements' transformations (issue 14, second part): an element's vendor
//! object mapped onto a common resource (`myContact`), for every instance of the
//! element in an organization or for one instance, and hub calls on the mapped
//! name. The mapping itself is `switchyard_transform`; here are validation against
//! the element's data, storage, the cache hub calls read, and the rewriting of a
//! hub call onto the vendor object and of its answer back.
//!
//! Choices where Cloud Elements' docs are silent are in docs/data-layer.md.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Method, StatusCode};
use serde_json::{Map, Value};
use switchyard_ceql::{Expr, Field, Literal};
use switchyard_elements::{ElementDefinition, Operation, Zone};
use switchyard_store::{InstanceRow, TransformationRow, TransformationScope, TransformationWrite};
use switchyard_transform::Transformation;

use crate::hub::{route, HubAnswer, HubRequest, Outcome};
use crate::memo::Memo;
use crate::objects::check_name;
use crate::{Engine, EngineError, OpenInstance};

/// One stored transformation, parsed.
#[derive(Debug, Clone)]
pub struct Stored {
    pub element_key: String,
    /// `None` at organization level.
    pub instance_id: Option<i64>,
    pub object_name: String,
    pub transformation: Transformation,
}

/// Every transformation of one organization, as hub calls read them.
#[derive(Debug, Default)]
pub struct OrgTransformations(Vec<Stored>);

impl OrgTransformations {
    fn organization_level<'a>(&'a self, element_key: &'a str) -> impl Iterator<Item = &'a Stored> + 'a {
        self.0.iter().filter(move |s| s.instance_id.is_none() && s.element_key == element_key)
    }

    fn instance_level(&self, instance_id: i64) -> impl Iterator<Item = &Stored> + '_ {
        self.0.iter().filter(move |s| s.instance_id == Some(instance_id))
    }

    /// The transformation a hub call of `row` on `object` uses: the instance's,
    /// merged over the organization's when it says `inherit`; else the
    /// organization's for the instance's element.
    pub fn effective(&self, row: &InstanceRow, object: &str) -> Option<Transformation> {
        let org = self.organization_level(&row.element_key).find(|s| s.object_name == object);
        match (self.instance_level(row.id).find(|s| s.object_name == object), org) {
            // Inherited fields are paths in the organization's vendor object: merged
            // only over a transformation of the same one.
            (Some(own), Some(base)) if own.transformation.inherits() && own.transformation.vendor_name() == base.transformation.vendor_name() => {
                Some(own.transformation.merged_over(&base.transformation))
            }
            (Some(own), _) => Some(own.transformation.clone()),
            (None, Some(base)) => Some(base.transformation.clone()),
            (None, None) => None,
        }
    }

    /// The object names transformed for `row`, sorted, each once.
    pub fn names_for(&self, row: &InstanceRow) -> Vec<String> {
        let mut names: Vec<String> = self
            .organization_level(&row.element_key)
            .chain(self.instance_level(row.id))
            .map(|s| s.object_name.clone())
            .collect();
        names.sort();
        names.dedup();
        names
    }
}

/// The organizations' transformations, kept until they change: this node's writes
/// forget their organization at once, other nodes' arrive as
/// `Change::Transformations` (PostgreSQL `NOTIFY`, SQLite's change log).
pub type TransformationCache = Memo<i64, Arc<OrgTransformations>>;

/// A cache of up to 10,000 organizations, each kept at most ten minutes.
pub fn new_cache() -> TransformationCache {
    Memo::new(10_000, Duration::from_secs(600))
}

fn level_of(scope: &TransformationScope) -> &'static str {
    match scope {
        TransformationScope::Organization { .. } => "organization",
        TransformationScope::Instance { .. } => "instance",
    }
}

fn bad(message: impl Into<String>) -> EngineError {
    EngineError::bad_request(message)
}

/// The answer shape of one stored transformation.
fn stored_json(row: &TransformationRow) -> Value {
    let mut body: Value = serde_json::from_str(&row.body).unwrap_or_else(|_| Value::Object(Map::new()));
    if let Value::Object(members) = &mut body {
        members.insert("level".into(), Value::from(if row.instance_id.is_some() { "instance" } else { "organization" }));
        members.insert("objectName".into(), Value::from(row.object_name.clone()));
    }
    body
}

impl Engine {
    /// The organization's transformations, from memory or the database.
    pub async fn org_transformations(&self, org_id: i64) -> Result<Arc<OrgTransformations>, EngineError> {
        if let Some(found) = self.transformations.get(&org_id) {
            return Ok(found);
        }
        let ticket = self.transformations.ticket();
        let rows = self.store.organization_transformations(org_id).await?;
        let mut parsed = Vec::with_capacity(rows.len());
        for row in rows {
            // Stored bodies were validated when written; one that no longer parses
            // (a body written by a later version) is left out and said so.
            match serde_json::from_str::<Value>(&row.body).map_err(|e| e.to_string()).and_then(|v| Transformation::from_json(&v).map_err(|e| e.to_string())) {
                Ok(transformation) => parsed.push(Stored {
                    element_key: row.element_key,
                    instance_id: row.instance_id,
                    object_name: row.object_name,
                    transformation,
                }),
                Err(e) => tracing::warn!(org_id, object = row.object_name, error = %e, "a stored transformation does not parse; it is not applied"),
            }
        }
        let found = Arc::new(OrgTransformations(parsed));
        self.transformations.remember(ticket, org_id, found.clone());
        Ok(found)
    }

    /// The transformation a hub call of this instance on `object` uses, if any.
    pub async fn transformation_for(&self, row: &InstanceRow, object: &str) -> Result<Option<Transformation>, EngineError> {
        Ok(self.org_transformations(row.organization_id).await?.effective(row, object))
    }

    /// The scope's element, checked: an instance level exists for the caller only
    /// when the instance is its organization's.
    async fn transformation_scope(&self, org_id: i64, scope: &TransformationScope) -> Result<Arc<ElementDefinition>, EngineError> {
        if let TransformationScope::Instance { id, .. } = scope {
            if self.store.instance(org_id, *id).await?.is_none() {
                return Err(EngineError::not_found(format!("No instance {id}")));
            }
        }
        self.catalog
            .get(scope.element_key())
            .cloned()
            .ok_or_else(|| EngineError::not_found(format!("No element '{}'", scope.element_key())))
    }

    /// `GET .../transformations`: the level's transformations keyed by object name.
    pub async fn transformations_json(&self, org_id: i64, scope: &TransformationScope) -> Result<Value, EngineError> {
        self.transformation_scope(org_id, scope).await?;
        Ok(Value::Object(self.level_rows(org_id, scope).await?.iter().map(|r| (r.object_name.clone(), stored_json(r))).collect()))
    }

    /// `GET .../transformations/{objectName}`, or a 404 naming it.
    pub async fn transformation_json(&self, org_id: i64, scope: &TransformationScope, object: &str) -> Result<Value, EngineError> {
        self.transformation_scope(org_id, scope).await?;
        check_name(object)?;
        let rows = self.level_rows(org_id, scope).await?;
        rows.iter().find(|r| r.object_name == object).map(stored_json).ok_or_else(|| no_transformation(scope, object))
    }

    async fn level_rows(&self, org_id: i64, scope: &TransformationScope) -> Result<Vec<TransformationRow>, EngineError> {
        let rows = self.store.organization_transformations(org_id).await?;
        Ok(rows
            .into_iter()
            .filter(|r| match scope {
                TransformationScope::Organization { element_key } => r.instance_id.is_none() && &r.element_key == element_key,
                TransformationScope::Instance { id, .. } => r.instance_id == Some(*id),
            })
            .collect())
    }

    /// `POST` (`create`) or `PUT` of a transformation: validated against the
    /// element's objects and field types, then stored; answered as `GET` answers.
    /// Nothing is stored when anything is wrong.
    pub async fn save_transformation(&self, org_id: i64, scope: &TransformationScope, object: &str, body: &Value, create: bool) -> Result<Value, EngineError> {
        let def = self.transformation_scope(org_id, scope).await?;
        check_name(object)?;
        check_reachable(&def, object)?;
        if let Some(named) = body.get("objectName").and_then(Value::as_str).filter(|n| *n != object) {
            return Err(bad(format!("objectName is '{named}' but this path saves '{object}' (the path chooses the name)")));
        }
        let body = with_vendor_types(&def, body);
        let transformation = Transformation::from_json(&body).map_err(|e| bad(e.to_string()))?;
        let paths: Vec<&str> = transformation.fields().iter().map(|f| f.path().as_str()).collect();
        crate::objects::check_record_shape(&paths, "fields")?;
        if let Some(level) = transformation.level().map(|l| l.as_str()) {
            if level != level_of(scope) {
                return Err(bad(format!(
                    "level is '{level}' but this path saves at {} level (the path chooses the level)",
                    level_of(scope)
                )));
            }
        }
        let vendor_name = transformation.vendor_name().to_owned();
        let Some(metadata) = switchyard_elements::object_metadata(&def, &vendor_name) else {
            return Err(bad(format!(
                "vendorName '{vendor_name}' is not an object of element {} (GET /elements/{}/objects lists them)",
                def.key, def.key
            )));
        };
        transformation
            .check_types(|vendor_path| metadata.fields.iter().find(|f| f.vendor_path == vendor_path).map(|f| f.kind))
            .map_err(|e| bad(e.to_string()))?;
        let stored = transformation.to_json(object, level_of(scope));
        let text = serde_json::to_string(&stored).map_err(EngineError::internal)?;
        let written = if create {
            self.store.create_transformation(org_id, scope, object, &vendor_name, &text).await?
        } else {
            self.store.replace_transformation(org_id, scope, object, &vendor_name, &text).await?
        };
        self.transformations.forget(&org_id);
        match written {
            TransformationWrite::Done => Ok(stored),
            TransformationWrite::Exists => Err(EngineError::new(
                StatusCode::CONFLICT,
                format!("{} exists; PUT replaces it", describe(scope, object)),
            )),
            TransformationWrite::Missing => Err(no_transformation(scope, object)),
            TransformationWrite::NoInstance => Err(EngineError::not_found(format!("No instance {}", scope.instance_id().unwrap_or_default()))),
        }
    }

    /// `DELETE .../transformations/{objectName}`; a missing one is a 404.
    pub async fn delete_transformation(&self, org_id: i64, scope: &TransformationScope, object: &str) -> Result<(), EngineError> {
        self.transformation_scope(org_id, scope).await?;
        check_name(object)?;
        let gone = self.store.delete_transformation(org_id, scope, object).await?;
        self.transformations.forget(&org_id);
        if gone {
            Ok(())
        } else {
            Err(no_transformation(scope, object))
        }
    }

    /// `DELETE .../transformations`: every transformation of the level.
    pub async fn delete_transformations(&self, org_id: i64, scope: &TransformationScope) -> Result<(), EngineError> {
        self.transformation_scope(org_id, scope).await?;
        self.store.delete_transformations(org_id, scope).await?;
        self.transformations.forget(&org_id);
        Ok(())
    }

    /// Which operation `method path` names on the instance's element (404 for no
    /// such resource or another hub, 405 for a method the path does not take). A
    /// transformed object's path names the operation of its vendor object.
    pub async fn operation(&self, open: &OpenInstance, method: &Method, hub: &str, path: &str) -> Result<Operation, EngineError> {
        let def = self.element_of(&open.row)?;
        match self.transformation_of_call(open, &def, path).await? {
            Some(t) => {
                let vendor_path = vendor_path_of(&def, &t, path.split_once('/').map(|(_, rest)| rest))?;
                route(&def, method, hub, &vendor_path).map(|r| r.operation)
            }
            None => route(&def, method, hub, path).map(|r| r.operation),
        }
    }

    /// Executes one hub call for an opened instance. A call on an object that a
    /// transformation maps for the instance (`/hubs/crm/myContact`) goes to the
    /// vendor object with its fields rewritten; any other call is routed by the
    /// element's data (`Engine::execute_vendor`).
    pub async fn execute(&self, open: &OpenInstance, request: &HubRequest) -> Outcome {
        let def = match self.element_of(&open.row) {
            Ok(def) => def,
            Err(e) => return Outcome { answer: Err(e), maybe_reached: false },
        };
        match self.transformation_of_call(open, &def, &request.path).await {
            Ok(Some(t)) => self.execute_transformed(open, request, &t).await,
            Ok(None) => self.execute_vendor(open, request).await,
            Err(e) => Outcome { answer: Err(e), maybe_reached: false },
        }
    }

    /// The transformation a hub call on `path` goes through: the one of its first
    /// segment, for the object itself (`myContact`), a record (`myContact/12`) or its
    /// count. Anything longer, or a literal resource of the element below that name
    /// (`orders/statuses` beside a transformation named `orders`), is the element's.
    async fn transformation_of_call(&self, open: &OpenInstance, def: &ElementDefinition, path: &str) -> Result<Option<Transformation>, EngineError> {
        let mut segments = path.split('/');
        let object = segments.next().unwrap_or_default();
        let (second, third) = (segments.next(), segments.next());
        if third.is_some() {
            return Ok(None);
        }
        // Routed only when a transformation of that name exists: most calls have none.
        let Some(t) = self.transformation_for(&open.row, object).await? else { return Ok(None) };
        let own_literal = second.is_some_and(|s| s != "count") && def.route("GET", path).is_ok_and(|m| m.id.is_none());
        Ok((!own_literal).then_some(t))
    }

    /// A hub call on a transformed object: the request rewritten onto the vendor
    /// object (path, `where`, `orderBy`, body), executed as any hub call, the
    /// answer's records mapped back. `object` is the request path's first segment.
    async fn execute_transformed(&self, open: &OpenInstance, request: &HubRequest, t: &Transformation) -> Outcome {
        let unreached = |e| Outcome { answer: Err(e), maybe_reached: false };
        let def = match self.element_of(&open.row) {
            Ok(def) => def,
            Err(e) => return unreached(e),
        };
        // Dates without an offset (Keap's) are in the account's zone.
        let zone = match self.account_zone(&open.row).await {
            Ok(zone) => zone,
            Err(e) => return unreached(e),
        };
        let (vendor_request, fields) = match vendor_request(&def, request, t, zone) {
            Ok(mapped) => mapped,
            Err(e) => return unreached(e),
        };
        let operation = match route(&def, &vendor_request.method, &vendor_request.hub, &vendor_request.path) {
            Ok(found) => found.operation,
            Err(e) => return unreached(e),
        };
        let mut outcome = self.execute_vendor(open, &vendor_request).await;
        if let Ok(answer) = &mut outcome.answer {
            if let Err(e) = map_answer(answer, operation, t, zone, fields.as_deref()) {
                outcome.answer = Err(e);
            }
        }
        outcome
    }

}

/// A name a hub call can reach: not `objects` (`/hubs/{hub}/objects` lists the
/// objects), nor the first segment of one of the element's resources that is not
/// an object of that name (`ping`), which the transformation would take over.
fn check_reachable(def: &ElementDefinition, object: &str) -> Result<(), EngineError> {
    if object == "objects" {
        return Err(bad(format!("'objects' cannot be transformed: /hubs/{}/objects lists the objects", def.hub)));
    }
    let objects = switchyard_elements::object_names(def);
    let taken = def.resources.iter().any(|r| r.path.trim_start_matches('/').split('/').next() == Some(object));
    if taken && !objects.iter().any(|n| n == object) {
        return Err(bad(format!(
            "'{object}' is a resource of element {} that holds no records (/hubs/{}/{object}); choose another name",
            def.key, def.hub
        )));
    }
    Ok(())
}

/// The body with each field's `vendorType` taken from the element's metadata
/// where the caller gave none and the vendor path is a known plain field, so
/// writes convert (and refuse) values as the vendor types them.
fn with_vendor_types(def: &ElementDefinition, body: &Value) -> Value {
    let mut body = body.clone();
    let Some(metadata) = body.get("vendorName").and_then(Value::as_str).and_then(|name| switchyard_elements::object_metadata(def, name)) else {
        return body;
    };
    if let Some(fields) = body.get_mut("fields").and_then(Value::as_array_mut) {
        for field in fields.iter_mut().filter_map(Value::as_object_mut) {
            if field.get("vendorType").is_some_and(|t| !t.is_null()) {
                continue;
            }
            let known = field.get("vendorPath").and_then(Value::as_str).and_then(|p| metadata.fields.iter().find(|f| f.vendor_path == p));
            if let Some(known) = known {
                field.insert("vendorType".into(), Value::from(known.kind));
            }
        }
    }
    body
}

fn describe(scope: &TransformationScope, object: &str) -> String {
    match scope {
        TransformationScope::Organization { element_key } => format!("The transformation of '{object}' for element {element_key}"),
        TransformationScope::Instance { id, .. } => format!("The transformation of '{object}' for instance {id}"),
    }
}

fn no_transformation(scope: &TransformationScope, object: &str) -> EngineError {
    EngineError::not_found(format!("{} does not exist", describe(scope, object)))
}

/// The hub path (below the hub, no leading `/`) of the element's object `name`,
/// or a 400 when it is nested below a parent record (its path needs the parent's
/// id, which a common resource's path cannot carry).
fn vendor_object_path(def: &ElementDefinition, name: &str) -> Result<String, EngineError> {
    let Some((_, resource)) = switchyard_elements::objects(def).into_iter().find(|(n, _)| n == name) else {
        return Err(EngineError::new(StatusCode::BAD_GATEWAY, format!("element {} no longer has the object '{name}'", def.key)));
    };
    if resource.path.contains('{') {
        return Err(bad(format!(
            "'{name}' is nested below another record ({}); a transformation of it cannot be called by its own name",
            resource.path
        )));
    }
    Ok(resource.path.trim_start_matches('/').to_owned())
}

/// The hub path of a call on a transformed object: the vendor object's path,
/// then what followed the object's name (`rest`: a record id, `count`).
fn vendor_path_of(def: &ElementDefinition, t: &Transformation, rest: Option<&str>) -> Result<String, EngineError> {
    let base = vendor_object_path(def, t.vendor_name())?;
    Ok(match rest {
        Some(rest) => format!("{base}/{rest}"),
        None => base,
    })
}

/// The caller's request rewritten onto the vendor object, and the `fields` the
/// caller asked for (applied to the mapped records afterwards).
fn vendor_request(def: &ElementDefinition, request: &HubRequest, t: &Transformation, zone: Option<Zone>) -> Result<(HubRequest, Option<Vec<String>>), EngineError> {
    let path = vendor_path_of(def, t, request.path.split_once('/').map(|(_, rest)| rest))?;
    let mut params = Vec::with_capacity(request.params.len());
    let mut fields = None;
    for (key, value) in &request.params {
        match key.as_str() {
            "where" if !value.trim().is_empty() => params.push((key.clone(), rewrite_where(t, value, zone)?)),
            "orderBy" if !value.trim().is_empty() => params.push((key.clone(), rewrite_order_by(t, value)?)),
            "fields" => fields = Some(value.split(',').map(|f| f.trim().to_owned()).filter(|f| !f.is_empty()).collect::<Vec<_>>()),
            _ => params.push((key.clone(), value.clone())),
        }
    }
    let body = if request.body.is_empty() {
        request.body.clone()
    } else {
        let record = match serde_json::from_slice::<Value>(&request.body) {
            Ok(v @ Value::Object(_)) => v,
            _ => return Err(bad("The body must be a JSON object")),
        };
        let vendor = t.to_vendor(&record, zone).map_err(|e| bad(e.to_string()))?;
        Bytes::from(serde_json::to_vec(&vendor).map_err(EngineError::internal)?)
    };
    let fields = fields.filter(|f| !f.is_empty());
    // Tokens are bound to the name called and the vendor object it maps: `myOrders`
    // and `orders` are two lists, and `myOrders` remapped onto another object a third.
    let page_scope = Some(format!("{}>{path}", request.path));
    Ok((HubRequest { method: request.method.clone(), hub: request.hub.clone(), path, params, body, page_scope }, fields))
}

/// The vendor field a common field is filtered or sorted by: its plain vendor
/// path; an unmapped field passes as it is only when the transformation passes
/// unmapped vendor fields through.
fn vendor_field(t: &Transformation, field: &str, what: &str) -> Result<String, EngineError> {
    match t.vendor_path_of(field) {
        Some(path) => path.plain().map(str::to_owned).ok_or_else(|| {
            bad(format!("{what}: field '{field}' maps to '{path}', which the vendor cannot {}", if what == "where" { "filter" } else { "sort" }))
        }),
        None if t.pass_through().0 => Ok(field.to_owned()),
        None => Err(bad(format!("{what}: '{field}' is not a field of this object"))),
    }
}

/// CEQL on common fields, rewritten onto vendor fields (before the vendor-filter /
/// engine-filter split, so what the vendor can filter still goes to the vendor).
/// Values are converted as a body's would be (a date into the vendor's mask, `'5'`
/// into a number for a numeric vendor field); `LIKE` patterns pass as written.
fn rewrite_where(t: &Transformation, text: &str, zone: Option<Zone>) -> Result<String, EngineError> {
    let expr: Expr = switchyard_ceql::parse(text).map_err(|e| bad(format!("where: {e}")))?;
    Ok(rewrite_expr(expr, t, zone)?.to_string())
}

fn rewrite_expr(expr: Expr, t: &Transformation, zone: Option<Zone>) -> Result<Expr, EngineError> {
    let field = |f: &Field| vendor_field(t, f.as_str(), "where").map(Field::new);
    let value = |f: &Field, literal: Literal| vendor_literal(t, f.as_str(), literal, zone);
    Ok(match expr {
        Expr::And(items) => Expr::And(items.into_iter().map(|e| rewrite_expr(e, t, zone)).collect::<Result<_, _>>()?),
        Expr::Or(items) => Expr::Or(items.into_iter().map(|e| rewrite_expr(e, t, zone)).collect::<Result<_, _>>()?),
        Expr::Compare { field: f, op, value: v } => Expr::Compare { value: value(&f, v)?, field: field(&f)?, op },
        Expr::Like { field: f, pattern, negated } => Expr::Like { field: field(&f)?, pattern, negated },
        Expr::In { field: f, values, negated } => {
            let values = values.into_iter().map(|v| value(&f, v)).collect::<Result<_, _>>()?;
            Expr::In { field: field(&f)?, values, negated }
        }
        Expr::IsNull { field: f, negated } => Expr::IsNull { field: field(&f)?, negated },
    })
}

/// A `where` value of a mapped field as the vendor writes that field; unmapped
/// (passed-through) fields' values as written.
fn vendor_literal(t: &Transformation, common: &str, literal: Literal, zone: Option<Zone>) -> Result<Literal, EngineError> {
    let Some(mapped) = t.fields().iter().find(|f| f.path().as_str() == common) else {
        return Ok(literal);
    };
    let value = match &literal {
        Literal::String(s) => Value::String(s.clone()),
        Literal::Number(n) => n.to_json().map(Value::Number).unwrap_or(Value::Null),
        Literal::Bool(b) => Value::Bool(*b),
    };
    let target = switchyard_transform::convert::WriteTarget { common: mapped.field_type(), vendor: mapped.vendor_type(), mask: mapped.mask() };
    let converted = switchyard_transform::convert::to_vendor(&value, &target, zone).map_err(|e| bad(format!("where: {common}: {e}")))?;
    Ok(match converted {
        Value::String(s) => Literal::String(s),
        Value::Bool(b) => Literal::Bool(b),
        Value::Number(n) => n.to_string().parse::<switchyard_ceql::Number>().map(Literal::Number).unwrap_or(literal),
        _ => literal,
    })
}

/// `orderBy` (`field [asc|desc]`) with the field rewritten.
fn rewrite_order_by(t: &Transformation, text: &str) -> Result<String, EngineError> {
    let text = text.trim();
    let (field, direction) = text.split_once(char::is_whitespace).unwrap_or((text, ""));
    let field = vendor_field(t, field, "orderBy")?;
    Ok(if direction.trim().is_empty() { field } else { format!("{field} {}", direction.trim()) })
}

/// The vendor's records in a hub answer mapped to the common resource (and cut to
/// `fields`); counts and deletes pass unchanged. Records are read in one pass
/// that builds only the members the transformation reads ([`Needed`]): a
/// 50-order page is mostly fields nobody mapped.
fn map_answer(answer: &mut HubAnswer, operation: Operation, t: &Transformation, zone: Option<Zone>, fields: Option<&[String]>) -> Result<(), EngineError> {
    if !matches!(operation, Operation::List | Operation::Get | Operation::Create | Operation::Update) {
        return Ok(());
    }
    let Some(body) = answer.body.take() else { return Ok(()) };
    let needed = Needed::of(t);
    let one = |record: &Value| {
        let mapped = t.from_vendor(record, zone);
        match fields {
            Some(fields) => switchyard_elements::project(&mapped, fields),
            None => mapped,
        }
    };
    let malformed = || EngineError::new(StatusCode::BAD_GATEWAY, "the hub answered no JSON");
    // UTF-8 checked once for the whole answer, not string by string as it is read.
    let text = std::str::from_utf8(&body).map_err(|_| malformed())?;
    let mapped = if operation == Operation::List {
        let mut de = serde_json::Deserializer::from_str(text);
        let records = serde::de::DeserializeSeed::deserialize(Page(&needed), &mut de).map_err(|_| malformed())?;
        let mapped = Value::Array(records.iter().map(one).collect());
        answer.vendor_body = Some(body);
        mapped
    } else {
        let mut de = serde_json::Deserializer::from_str(text);
        match serde::de::DeserializeSeed::deserialize(&needed, &mut de).map_err(|_| malformed())? {
            record @ Value::Object(_) => one(&record),
            // Not a record (an empty answer is `{}`): as the vendor object answered.
            _ => {
                answer.body = Some(body);
                return Ok(());
            }
        }
    };
    answer.body = Some(Bytes::from(serde_json::to_vec(&mapped).map_err(EngineError::internal)?));
    Ok(())
}

/// The top-level members of a vendor record that a transformation reads: the
/// first key of each mapped vendor path, or all of them when unmapped members pass
/// through. As a seed it reads one record, building the needed members and
/// skipping the rest without building them.
struct Needed<'t> {
    keys: Option<Vec<&'t str>>,
}

impl<'t> Needed<'t> {
    fn of(t: &'t Transformation) -> Needed<'t> {
        let keys = (!t.pass_through().0).then(|| t.fields().iter().map(|f| f.vendor_path().first_key()).collect());
        Needed { keys }
    }

    fn wants(&self, key: &str) -> bool {
        self.keys.as_ref().is_none_or(|keys| keys.contains(&key))
    }
}

impl<'de> serde::de::DeserializeSeed<'de> for &Needed<'_> {
    type Value = Value;

    fn deserialize<D: serde::Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> serde::de::Visitor<'de> for &Needed<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON record")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = Map::with_capacity(self.keys.as_ref().map_or(map.size_hint().unwrap_or(0), Vec::len));
        while let Some(key) = map.next_key::<Key<'de>>()? {
            if self.wants(&key.0) {
                out.insert(key.0.into_owned(), map.next_value()?);
            } else {
                map.next_value::<serde::de::IgnoredAny>()?;
            }
        }
        Ok(Value::Object(out))
    }

    // Anything but an object is kept whole (the mapping then passes it as it is).
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, seq: A) -> Result<Value, A::Error> {
        serde::Deserialize::deserialize(serde::de::value::SeqAccessDeserializer::new(seq))
    }
    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }
    fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_unit<E: serde::de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
}

/// A member name, borrowed from the input unless it has escapes.
#[derive(serde::Deserialize)]
struct Key<'a>(#[serde(borrow)] std::borrow::Cow<'a, str>);

/// A hub list page (a JSON array of records), each read by [`Needed`].
struct Page<'n, 't>(&'n Needed<'t>);

impl<'de> serde::de::DeserializeSeed<'de> for Page<'_, '_> {
    type Value = Vec<Value>;

    fn deserialize<D: serde::Deserializer<'de>>(self, deserializer: D) -> Result<Vec<Value>, D::Error> {
        deserializer.deserialize_seq(self)
    }
}

impl<'de> serde::de::Visitor<'de> for Page<'_, '_> {
    type Value = Vec<Value>;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON array of records")
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<Value>, A::Error> {
        let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0));
        while let Some(record) = seq.next_element_seed(self.0)? {
            out.push(record);
        }
        Ok(out)
    }
}

impl Engine {
    /// The element's OpenAPI document (`GET /elements/{keyOrId}/docs`) with the
    /// objects the organization's transformations map for it, and with an
    /// instance (`GET /instances/{id}/docs`) the ones it uses, its own included:
    /// each as `/hubs/{hub}/{objectName}` with its vendor object's operations and a
    /// schema `common.{objectName}` of the mapped fields.
    pub async fn element_docs(&self, org_id: i64, def: &ElementDefinition, instance: Option<&InstanceRow>) -> Result<Value, EngineError> {
        let mut doc = switchyard_elements::openapi(def);
        let all = self.org_transformations(org_id).await?;
        let mapped: Vec<(String, Transformation)> = match instance {
            Some(row) => all.names_for(row).into_iter().filter_map(|name| all.effective(row, &name).map(|t| (name, t))).collect(),
            None => all.organization_level(&def.key).map(|s| (s.object_name.clone(), s.transformation.clone())).collect(),
        };
        for (name, t) in mapped {
            let fields: Vec<(&str, &str)> = t.fields().iter().map(|f| (f.path().as_str(), f.field_type().as_str())).collect();
            switchyard_elements::add_common_object(&mut doc, def, &name, t.vendor_name(), &fields);
        }
        Ok(doc)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::de::DeserializeSeed;
    use serde_json::json;

    fn page(needed: &Needed<'_>, text: &str) -> Result<Vec<Value>, String> {
        Page(needed).deserialize(&mut serde_json::Deserializer::from_str(text)).map_err(|e| e.to_string())
    }

    #[test]
    fn a_page_reads_only_the_members_a_mapping_needs_and_keeps_other_values_whole() {
        let needed = Needed { keys: Some(vec!["id", "name"]) };
        let read = page(&needed, r#"[{"id": 1, "name": "a", "notes": {"long": [1, 2]}}, {"na\u006de": "b", "x": null}]"#).unwrap();
        assert_eq!(read, [json!({"id": 1, "name": "a"}), json!({"name": "b"})]);
        // Without a list of members (pass-through), every member is read.
        let all = Needed { keys: None };
        assert_eq!(page(&all, r#"[{"id": 1, "notes": [true]}]"#).unwrap(), [json!({"id": 1, "notes": [true]})]);
        // Anything but an object passes as it is, for the mapping to pass it on.
        let odd = r#"[[1, "x"], "text", true, -3, 18446744073709551615, 2.5, null]"#;
        assert_eq!(page(&needed, odd).unwrap(), serde_json::from_str::<Vec<Value>>(odd).unwrap());
        // What it expected is named when a page is not a list.
        assert!(page(&needed, r#"{"id": 1}"#).unwrap_err().contains("a JSON array of records"));
    }
}
