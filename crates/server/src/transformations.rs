//! Transformations over HTTP (issue 14): `/organizations/elements/{keyOrId}/transformations/...`
//! (every instance of the element in the organization) and
//! `/instances/{id}/transformations/...` (one instance). The engine validates,
//! stores and applies them (`switchyard_engine::transformations`); here are the
//! routes and the caller.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde_json::{Map, Value};
use switchyard_store::TransformationScope;

use crate::caller::Caller;
use crate::extract::Path;
use crate::json_body::JsonBody;
use crate::{ApiError, AppState};

type ErrorBody = crate::error::ErrorBody;

fn element_scope(state: &AppState, key_or_id: &str) -> Result<TransformationScope, ApiError> {
    let def = crate::elements::find(state, key_or_id)?;
    Ok(TransformationScope::Organization { element_key: def.key.clone() })
}

async fn instance_scope(state: &AppState, caller: &Caller, id: i64) -> Result<TransformationScope, ApiError> {
    let row = state.engine.store.instance(caller.organization_id, id).await?.ok_or_else(|| ApiError::not_found(format!("No instance {id}")))?;
    Ok(TransformationScope::Instance { id, element_key: row.element_key })
}

#[utoipa::path(get, path = "/organizations/elements/{keyOrId}/transformations", operation_id = "listElementTransformations", tag = "transformations",
    params(("keyOrId" = String, Path, description = "Element key or id")),
    responses((status = 200, description = "The organization's transformations for the element, keyed by object name", body = Object),
        (status = 401, body = ErrorBody), (status = 404, description = "No such element", body = ErrorBody)))]
pub async fn org_list(State(state): State<Arc<AppState>>, caller: Caller, Path(key_or_id): Path<String>) -> Result<Json<Value>, ApiError> {
    let scope = element_scope(&state, &key_or_id)?;
    Ok(Json(state.engine.transformations_json(caller.organization_id, &scope).await?))
}

#[utoipa::path(get, path = "/organizations/elements/{keyOrId}/transformations/{objectName}", operation_id = "getElementTransformation", tag = "transformations",
    params(("keyOrId" = String, Path, description = "Element key or id"), ("objectName" = String, Path, description = "The transformed object's name")),
    responses((status = 200, description = "`{\"level\", \"objectName\", \"vendorName\", \"fields\": [{\"path\", \"type\", \"vendorPath\", ...}], \"configuration\"}`", body = Object),
        (status = 401, body = ErrorBody), (status = 404, description = "No such element or transformation", body = ErrorBody)))]
pub async fn org_get(State(state): State<Arc<AppState>>, caller: Caller, Path((key_or_id, name)): Path<(String, String)>) -> Result<Json<Value>, ApiError> {
    let scope = element_scope(&state, &key_or_id)?;
    Ok(Json(state.engine.transformation_json(caller.organization_id, &scope, &name).await?))
}

#[utoipa::path(post, path = "/organizations/elements/{keyOrId}/transformations/{objectName}", operation_id = "createElementTransformation", tag = "transformations",
    params(("keyOrId" = String, Path, description = "Element key or id"), ("objectName" = String, Path, description = "The common resource's name (or a vendor object's, for a renamed copy)")),
    request_body(content = Object, description = "`{\"vendorName\": \"contacts\", \"fields\": [{\"path\": \"email\", \"type\": \"string\", \"vendorPath\": \"email_addresses[0].email\"}], \"configuration\"?: [{\"type\": \"passThrough\", \"properties\": {\"fromVendor\": true, \"toVendor\": false}}]}`"),
    responses((status = 200, description = "Created, answered as GET answers it", body = Object),
        (status = 400, description = "Bad input (unknown vendorName, malformed vendorPath, a type that cannot convert, custom JavaScript); nothing was stored", body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 404, description = "No such element", body = ErrorBody),
        (status = 409, description = "The element has a transformation of this object", body = ErrorBody), (status = 413, body = ErrorBody), (status = 415, body = ErrorBody)))]
pub async fn org_create(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path((key_or_id, name)): Path<(String, String)>,
    JsonBody(body): JsonBody<Map<String, Value>>,
) -> Result<Json<Value>, ApiError> {
    let scope = element_scope(&state, &key_or_id)?;
    Ok(Json(state.engine.save_transformation(caller.organization_id, &scope, &name, &Value::Object(body), true).await?))
}

#[utoipa::path(put, path = "/organizations/elements/{keyOrId}/transformations/{objectName}", operation_id = "replaceElementTransformation", tag = "transformations",
    params(("keyOrId" = String, Path, description = "Element key or id"), ("objectName" = String, Path)),
    request_body(content = Object, description = "The transformation, as POST takes it"),
    responses((status = 200, description = "Replaced", body = Object), (status = 400, description = "Bad input; nothing was stored", body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 404, description = "No such element or transformation", body = ErrorBody), (status = 413, body = ErrorBody), (status = 415, body = ErrorBody)))]
pub async fn org_replace(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path((key_or_id, name)): Path<(String, String)>,
    JsonBody(body): JsonBody<Map<String, Value>>,
) -> Result<Json<Value>, ApiError> {
    let scope = element_scope(&state, &key_or_id)?;
    Ok(Json(state.engine.save_transformation(caller.organization_id, &scope, &name, &Value::Object(body), false).await?))
}

#[utoipa::path(delete, path = "/organizations/elements/{keyOrId}/transformations/{objectName}", operation_id = "deleteElementTransformation", tag = "transformations",
    params(("keyOrId" = String, Path, description = "Element key or id"), ("objectName" = String, Path)),
    responses((status = 200, description = "Deleted"), (status = 401, body = ErrorBody), (status = 404, description = "No such element or transformation", body = ErrorBody)))]
pub async fn org_delete(State(state): State<Arc<AppState>>, caller: Caller, Path((key_or_id, name)): Path<(String, String)>) -> Result<StatusCode, ApiError> {
    let scope = element_scope(&state, &key_or_id)?;
    state.engine.delete_transformation(caller.organization_id, &scope, &name).await?;
    Ok(StatusCode::OK)
}

#[utoipa::path(get, path = "/instances/{id}/transformations", operation_id = "listInstanceTransformations", tag = "transformations",
    params(("id" = i64, Path)),
    responses((status = 200, description = "The instance's own transformations, keyed by object name (the organization's for its element are at /organizations/elements/{keyOrId}/transformations)", body = Object),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, description = "No such instance (or another organization's)", body = ErrorBody)))]
pub async fn instance_list(State(state): State<Arc<AppState>>, caller: Caller, Path(id): Path<i64>) -> Result<Json<Value>, ApiError> {
    let scope = instance_scope(&state, &caller, id).await?;
    Ok(Json(state.engine.transformations_json(caller.organization_id, &scope).await?))
}

#[utoipa::path(delete, path = "/instances/{id}/transformations", operation_id = "deleteInstanceTransformations", tag = "transformations",
    params(("id" = i64, Path)),
    responses((status = 200, description = "Every transformation of the instance deleted"), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 404, description = "No such instance", body = ErrorBody)))]
pub async fn instance_delete_all(State(state): State<Arc<AppState>>, caller: Caller, Path(id): Path<i64>) -> Result<StatusCode, ApiError> {
    let scope = instance_scope(&state, &caller, id).await?;
    state.engine.delete_transformations(caller.organization_id, &scope).await?;
    Ok(StatusCode::OK)
}

#[utoipa::path(get, path = "/instances/{id}/transformations/{objectName}", operation_id = "getInstanceTransformation", tag = "transformations",
    params(("id" = i64, Path), ("objectName" = String, Path)),
    responses((status = 200, description = "The instance's own transformation of the object", body = Object), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 404, description = "No such instance or transformation", body = ErrorBody)))]
pub async fn instance_get(State(state): State<Arc<AppState>>, caller: Caller, Path((id, name)): Path<(i64, String)>) -> Result<Json<Value>, ApiError> {
    let scope = instance_scope(&state, &caller, id).await?;
    Ok(Json(state.engine.transformation_json(caller.organization_id, &scope, &name).await?))
}

#[utoipa::path(post, path = "/instances/{id}/transformations/{objectName}", operation_id = "createInstanceTransformation", tag = "transformations",
    params(("id" = i64, Path), ("objectName" = String, Path)),
    request_body(content = Object, description = "As at organization level; `configuration: [{\"type\": \"inherit\"}]` merges it over the organization's (its fields win by path)"),
    responses((status = 200, description = "Created", body = Object), (status = 400, description = "Bad input; nothing was stored", body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 404, description = "No such instance", body = ErrorBody),
        (status = 409, description = "The instance has a transformation of this object", body = ErrorBody), (status = 413, body = ErrorBody), (status = 415, body = ErrorBody)))]
pub async fn instance_create(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path((id, name)): Path<(i64, String)>,
    JsonBody(body): JsonBody<Map<String, Value>>,
) -> Result<Json<Value>, ApiError> {
    let scope = instance_scope(&state, &caller, id).await?;
    Ok(Json(state.engine.save_transformation(caller.organization_id, &scope, &name, &Value::Object(body), true).await?))
}

#[utoipa::path(put, path = "/instances/{id}/transformations/{objectName}", operation_id = "replaceInstanceTransformation", tag = "transformations",
    params(("id" = i64, Path), ("objectName" = String, Path)),
    request_body(content = Object, description = "The transformation, as POST takes it"),
    responses((status = 200, description = "Replaced", body = Object), (status = 400, description = "Bad input; nothing was stored", body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 404, description = "No such instance or transformation", body = ErrorBody), (status = 413, body = ErrorBody), (status = 415, body = ErrorBody)))]
pub async fn instance_replace(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path((id, name)): Path<(i64, String)>,
    JsonBody(body): JsonBody<Map<String, Value>>,
) -> Result<Json<Value>, ApiError> {
    let scope = instance_scope(&state, &caller, id).await?;
    Ok(Json(state.engine.save_transformation(caller.organization_id, &scope, &name, &Value::Object(body), false).await?))
}

#[utoipa::path(delete, path = "/instances/{id}/transformations/{objectName}", operation_id = "deleteInstanceTransformation", tag = "transformations",
    params(("id" = i64, Path), ("objectName" = String, Path)),
    responses((status = 200, description = "Deleted"), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 404, description = "No such instance or transformation", body = ErrorBody)))]
pub async fn instance_delete(State(state): State<Arc<AppState>>, caller: Caller, Path((id, name)): Path<(i64, String)>) -> Result<StatusCode, ApiError> {
    let scope = instance_scope(&state, &caller, id).await?;
    state.engine.delete_transformation(caller.organization_id, &scope, &name).await?;
    Ok(StatusCode::OK)
}
