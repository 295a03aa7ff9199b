//! `GET /elements`, `/elements/{keyOrId}`, `/elements/{keyOrId}/metadata`.

use std::sync::Arc;

use axum::extract::State;
use axum::Json;
use serde_json::{json, Value};
use switchyard_elements::ElementDefinition;

use crate::caller::Caller;
use crate::extract::Path;
use crate::{ApiError, AppState};

/// The summary Cloud Elements lists for every element.
pub fn summary(def: &ElementDefinition) -> Value {
    json!({
        "id": def.id,
        "key": def.key,
        "name": def.name,
        "hub": def.hub,
        "description": def.description,
        "active": true,
        "authentication": {"type": def.authentication.type_name()},
    })
}

fn detail(def: &ElementDefinition) -> Value {
    let mut value = summary(def);
    value["configuration"] = def
        .configuration
        .iter()
        .map(|p| {
            json!({
                "key": p.key,
                "name": p.name,
                "type": p.kind,
                "required": p.required,
                "defaultValue": p.default_value,
                "description": p.description,
                "hideFromConsole": p.hide_from_console,
            })
        })
        .collect();
    // `[{key, steps, link}]`, one per configuration key the file guides; `[]` without.
    value["setup"] = def.setup.iter().map(|g| json!({"key": g.key, "steps": g.steps, "link": g.link})).collect();
    let mut resources = Vec::new();
    for r in &def.resources {
        for op in &r.operations {
            let (method, suffix) = op.hub_shape();
            let (vendor_method, vendor_path) = def.vendor_call(r, *op);
            resources.push(json!({
                "method": method,
                "path": format!("/hubs/{}{}{}", def.hub, r.path, suffix),
                "vendorMethod": vendor_method,
                "vendorPath": vendor_path,
                "description": r.description,
            }));
        }
    }
    value["resources"] = Value::Array(resources);
    value
}

pub(crate) fn find<'a>(state: &'a AppState, key_or_id: &str) -> Result<&'a ElementDefinition, ApiError> {
    state
        .engine
        .catalog
        .get(key_or_id)
        .map(|d| d.as_ref())
        .ok_or_else(|| ApiError::not_found(format!("No element with key or id '{key_or_id}'")))
}

#[utoipa::path(get, path = "/elements", operation_id = "listElements", tag = "elements",
    responses((status = 200, description = "Every element: id, key, name, hub, description, active, authentication", body = Vec<Object>), (status = 401, body = crate::error::ErrorBody)))]
pub async fn list(State(state): State<Arc<AppState>>, _caller: Caller) -> Json<Value> {
    Json(state.engine.catalog.iter().map(|d| summary(d)).collect())
}

#[utoipa::path(get, path = "/elements/{keyOrId}", operation_id = "getElement", tag = "elements", params(("keyOrId" = String, Path, description = "Element key or id")),
    responses((status = 200, description = "The element with its configuration parameters, setup guides (`setup`: `[{key, steps, link}]`, how to find each credential at the vendor) and hub resources", body = Object), (status = 400, description = "`{keyOrId}` is not UTF-8 once percent-decoded", body = crate::error::ErrorBody), (status = 401, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody)))]
pub async fn get(
    State(state): State<Arc<AppState>>,
    _caller: Caller,
    Path(key_or_id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(detail(find(&state, &key_or_id)?)))
}

#[utoipa::path(get, path = "/elements/{keyOrId}/metadata", operation_id = "getElementMetadata", tag = "elements", params(("keyOrId" = String, Path, description = "Element key or id")),
    responses((status = 200, description = "Events, bulk and paging support", body = Object), (status = 400, description = "`{keyOrId}` is not UTF-8 once percent-decoded", body = crate::error::ErrorBody), (status = 401, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody)))]
pub async fn metadata(
    State(state): State<Arc<AppState>>,
    _caller: Caller,
    Path(key_or_id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let def = find(&state, &key_or_id)?;
    Ok(Json(json!({
        "id": def.id,
        "key": def.key,
        "events": {"supported": def.events.supported, "methods": def.events.methods},
        "bulk": {"supported": false},
        "paging": {"max": def.paging.max_page_size()},
        "hub": def.hub,
    })))
}

#[utoipa::path(get, path = "/elements/{keyOrId}/docs", operation_id = "getElementDocs", tag = "elements",
    params(("keyOrId" = String, Path, description = "Element key or id")),
    responses((status = 200, description = "OpenAPI 3.0 document of the element's hub resources and record models, and of the objects the organization's transformations map for it (`/hubs/{hub}/{objectName}`, schema `common.{objectName}`)", body = Object),
        (status = 400, description = "`{keyOrId}` is not UTF-8 once percent-decoded", body = crate::error::ErrorBody), (status = 401, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody)))]
pub async fn docs(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(key_or_id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let def = find(&state, &key_or_id)?;
    Ok(Json(state.engine.element_docs(caller.organization_id, def, None).await?))
}

#[utoipa::path(get, path = "/instances/{id}/docs", operation_id = "getInstanceDocs", tag = "instances",
    params(("id" = i64, Path)),
    responses((status = 200, description = "OpenAPI 3.0 of the instance's hub API: its element's resources and the objects transformations map for it (its own and its organization's)", body = Object),
        (status = 400, body = crate::error::ErrorBody), (status = 401, body = crate::error::ErrorBody),
        (status = 404, description = "No such instance (or another organization's)", body = crate::error::ErrorBody)))]
pub async fn instance_docs(State(state): State<Arc<AppState>>, caller: Caller, Path(id): Path<i64>) -> Result<Json<Value>, ApiError> {
    let row = state.engine.store.instance(caller.organization_id, id).await?.ok_or_else(|| ApiError::not_found(format!("No instance {id}")))?;
    let def = state.engine.element_of(&row)?;
    Ok(Json(state.engine.element_docs(caller.organization_id, &def, Some(&row)).await?))
}
