//! Cloud Elements' data layer over HTTP (issue 14, first part): object metadata
//! (`/objects`, `/hubs/{hub}/objects`, `/elements/{keyOrId}/objects`) and common
//! resource definitions (`/organizations/objects/...`, `/instances/{id}/objects/...`).
//! The engine computes and validates (`switchyard_engine::objects`); here are the
//! routes, the caller and the answers' framing. Accounts do not exist in
//! Switchyard: `/accounts/...` is a 400 saying so.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde_json::{Map, Value};
use switchyard_elements::ObjectMetadata;
use switchyard_engine::objects::{self, definition_json, definitions_json};
use switchyard_store::DefinitionScope;

use crate::caller::Caller;
use crate::extract::Path;
use crate::json_body::JsonBody;
use crate::{ApiError, AppState};

type ErrorBody = crate::error::ErrorBody;

// ---- object metadata (Element auth) ----

#[utoipa::path(get, path = "/objects", operation_id = "listObjects", tag = "objects",
    responses((status = 200, description = "The names of the objects the instance's element offers (nested resources named by their hub path without `{…}` segments, joined by `-`: `orders-shipments`)", body = Vec<String>),
        (status = 401, description = "No `Element` token, or one of no instance of the organization", body = ErrorBody),
        (status = 403, description = "The instance is disabled", body = ErrorBody)))]
pub async fn list(State(state): State<Arc<AppState>>, caller: Caller) -> Result<Json<Vec<String>>, ApiError> {
    let open = crate::hub::open_instance(&state, &caller).await?;
    Ok(Json(state.engine.instance_objects(&open, None).await?))
}

#[utoipa::path(get, path = "/hubs/{hub}/objects", operation_id = "listHubObjects", tag = "objects",
    params(("hub" = String, Path, description = "The instance's hub, e.g. ecommerce")),
    responses((status = 200, description = "As GET /objects", body = Vec<String>),
        (status = 401, body = ErrorBody), (status = 403, description = "The instance is disabled", body = ErrorBody),
        (status = 404, description = "The instance's element serves another hub", body = ErrorBody)))]
pub async fn list_in_hub(State(state): State<Arc<AppState>>, caller: Caller, Path(hub): Path<String>) -> Result<Json<Vec<String>>, ApiError> {
    let open = crate::hub::open_instance(&state, &caller).await?;
    Ok(Json(state.engine.instance_objects(&open, Some(&hub)).await?))
}

#[utoipa::path(get, path = "/objects/{objectName}/metadata", operation_id = "getObjectMetadata", tag = "objects",
    params(("objectName" = String, Path, description = "An object name, as GET /objects lists them")),
    responses((status = 200, description = "`{\"fields\": [{vendorPath, type, vendorNativeType?, mask?, vendorReadOnly, vendorRequired, createable, updateable, filterable}]}`; the last three are the strings \"true\"/\"false\"", body = Object),
        (status = 401, body = ErrorBody), (status = 403, description = "The instance is disabled", body = ErrorBody),
        (status = 404, description = "No such object", body = ErrorBody)))]
pub async fn metadata(State(state): State<Arc<AppState>>, caller: Caller, Path(name): Path<String>) -> Result<Json<Value>, ApiError> {
    let open = crate::hub::open_instance(&state, &caller).await?;
    Ok(Json(state.engine.instance_object_metadata(&open, None, &name).await?))
}

#[utoipa::path(get, path = "/hubs/{hub}/objects/{objectName}/metadata", operation_id = "getHubObjectMetadata", tag = "objects",
    params(("hub" = String, Path, description = "The instance's hub"), ("objectName" = String, Path, description = "An object name")),
    responses((status = 200, description = "As GET /objects/{objectName}/metadata", body = Object),
        (status = 401, body = ErrorBody), (status = 403, description = "The instance is disabled", body = ErrorBody),
        (status = 404, description = "No such object, or another hub", body = ErrorBody)))]
pub async fn metadata_in_hub(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path((hub, name)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let open = crate::hub::open_instance(&state, &caller).await?;
    Ok(Json(state.engine.instance_object_metadata(&open, Some(&hub), &name).await?))
}

#[utoipa::path(get, path = "/elements/{keyOrId}/objects", operation_id = "listElementObjects", tag = "objects",
    params(("keyOrId" = String, Path, description = "Element key or id")),
    responses((status = 200, description = "The names of the element's objects", body = Vec<String>),
        (status = 401, body = ErrorBody), (status = 404, description = "No such element", body = ErrorBody)))]
pub async fn element_list(State(state): State<Arc<AppState>>, _caller: Caller, Path(key_or_id): Path<String>) -> Result<Json<Vec<String>>, ApiError> {
    Ok(Json(switchyard_elements::object_names(crate::elements::find(&state, &key_or_id)?)))
}

#[utoipa::path(get, path = "/elements/{keyOrId}/objects/{objectName}/metadata", operation_id = "getElementObjectMetadata", tag = "objects",
    params(("keyOrId" = String, Path, description = "Element key or id"), ("objectName" = String, Path, description = "An object name")),
    responses((status = 200, description = "As GET /objects/{objectName}/metadata, from the element alone", body = Object),
        (status = 401, body = ErrorBody), (status = 404, description = "No such element or object", body = ErrorBody)))]
pub async fn element_metadata(
    State(state): State<Arc<AppState>>,
    _caller: Caller,
    Path((key_or_id, name)): Path<(String, String)>,
) -> Result<Json<ObjectMetadata>, ApiError> {
    let def = crate::elements::find(&state, &key_or_id)?;
    Ok(Json(objects::element_object_metadata(def, &name)?))
}

// ---- common resource definitions (platform auth) ----

const ORG: DefinitionScope = DefinitionScope::Organization;

async fn list_at(state: &AppState, caller: &Caller, scope: DefinitionScope) -> Result<Json<Value>, ApiError> {
    let found = state.engine.definitions(caller.organization_id, scope).await?;
    Ok(Json(definitions_json(&found, scope)))
}

async fn create_many_at(state: &AppState, caller: &Caller, scope: DefinitionScope, body: &Map<String, Value>) -> Result<Json<Value>, ApiError> {
    let definitions = objects::parse_definitions(body, scope)?;
    state.engine.create_definitions(caller.organization_id, scope, &definitions).await?;
    Ok(Json(definitions_json(&definitions, scope)))
}

async fn get_at(state: &AppState, caller: &Caller, scope: DefinitionScope, name: &str) -> Result<Json<Value>, ApiError> {
    let found = state.engine.definition(caller.organization_id, scope, name).await?;
    Ok(Json(definition_json(&found, scope)))
}

async fn create_at(state: &AppState, caller: &Caller, scope: DefinitionScope, name: &str, body: Map<String, Value>) -> Result<Json<Value>, ApiError> {
    let definition = objects::parse_definition(name, &Value::Object(body), scope)?;
    state.engine.create_definitions(caller.organization_id, scope, std::slice::from_ref(&definition)).await?;
    Ok(Json(definition_json(&definition, scope)))
}

async fn replace_at(state: &AppState, caller: &Caller, scope: DefinitionScope, name: &str, body: Map<String, Value>) -> Result<Json<Value>, ApiError> {
    let definition = objects::parse_definition(name, &Value::Object(body), scope)?;
    state.engine.replace_definition(caller.organization_id, scope, &definition).await?;
    Ok(Json(definition_json(&definition, scope)))
}

#[utoipa::path(get, path = "/organizations/objects/definitions", operation_id = "listOrganizationDefinitions", tag = "objects",
    responses((status = 200, description = "The organization's common resources, keyed by name (`{\"myContact\": {\"fields\": [{\"path\", \"type\"}]}}`), with `\"level\": \"organization\"` beside them", body = Object),
        (status = 401, body = ErrorBody)))]
pub async fn org_list(State(state): State<Arc<AppState>>, caller: Caller) -> Result<Json<Value>, ApiError> {
    list_at(&state, &caller, ORG).await
}

#[utoipa::path(post, path = "/organizations/objects/definitions", operation_id = "createOrganizationDefinitions", tag = "objects",
    request_body(content = Object, description = "Common resources keyed by name: `{\"myContact\": {\"fields\": [{\"path\": \"id\", \"type\": \"string\"}]}}`"),
    responses((status = 200, description = "Created, all of them, answered as GET answers them", body = Object),
        (status = 400, description = "Bad input; nothing was created", body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 409, description = "A name exists; nothing was created", body = ErrorBody),
        (status = 413, body = ErrorBody), (status = 415, body = ErrorBody)))]
pub async fn org_create_many(State(state): State<Arc<AppState>>, caller: Caller, JsonBody(body): JsonBody<Map<String, Value>>) -> Result<Json<Value>, ApiError> {
    create_many_at(&state, &caller, ORG, &body).await
}

#[utoipa::path(delete, path = "/organizations/objects/definitions", operation_id = "deleteOrganizationDefinitions", tag = "objects",
    responses((status = 200, description = "Every organization-level common resource deleted (instance-level ones stay)"), (status = 401, body = ErrorBody)))]
pub async fn org_delete_all(State(state): State<Arc<AppState>>, caller: Caller) -> Result<StatusCode, ApiError> {
    state.engine.delete_definitions(caller.organization_id, ORG).await?;
    Ok(StatusCode::OK)
}

#[utoipa::path(get, path = "/organizations/objects/{objectName}/definitions", operation_id = "getOrganizationDefinition", tag = "objects",
    params(("objectName" = String, Path, description = "The common resource's name")),
    responses((status = 200, description = "`{\"fields\": [{\"path\", \"type\"}], \"level\": \"organization\"}`", body = Object),
        (status = 401, body = ErrorBody), (status = 404, description = "No such common resource (or another organization's)", body = ErrorBody)))]
pub async fn org_get(State(state): State<Arc<AppState>>, caller: Caller, Path(name): Path<String>) -> Result<Json<Value>, ApiError> {
    get_at(&state, &caller, ORG, &name).await
}

#[utoipa::path(post, path = "/organizations/objects/{objectName}/definitions", operation_id = "createOrganizationDefinition", tag = "objects",
    params(("objectName" = String, Path, description = "The new common resource's name")),
    request_body(content = Object, description = "`{\"fields\": [{\"path\": \"address.city\", \"type\": \"string|number|boolean|date\"}]}`"),
    responses((status = 200, description = "Created", body = Object), (status = 400, description = "Bad input; nothing was created", body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 409, description = "The name exists", body = ErrorBody),
        (status = 413, body = ErrorBody), (status = 415, body = ErrorBody)))]
pub async fn org_create(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(name): Path<String>,
    JsonBody(body): JsonBody<Map<String, Value>>,
) -> Result<Json<Value>, ApiError> {
    create_at(&state, &caller, ORG, &name, body).await
}

#[utoipa::path(put, path = "/organizations/objects/{objectName}/definitions", operation_id = "replaceOrganizationDefinition", tag = "objects",
    params(("objectName" = String, Path, description = "The common resource's name")),
    request_body(content = Object, description = "The new fields, as POST takes them"),
    responses((status = 200, description = "Replaced", body = Object), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 404, description = "No such common resource", body = ErrorBody), (status = 413, body = ErrorBody), (status = 415, body = ErrorBody)))]
pub async fn org_replace(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(name): Path<String>,
    JsonBody(body): JsonBody<Map<String, Value>>,
) -> Result<Json<Value>, ApiError> {
    replace_at(&state, &caller, ORG, &name, body).await
}

#[utoipa::path(delete, path = "/organizations/objects/{objectName}/definitions", operation_id = "deleteOrganizationDefinition", tag = "objects",
    params(("objectName" = String, Path, description = "The common resource's name")),
    responses((status = 200, description = "Deleted"), (status = 401, body = ErrorBody), (status = 404, description = "No such common resource", body = ErrorBody)))]
pub async fn org_delete(State(state): State<Arc<AppState>>, caller: Caller, Path(name): Path<String>) -> Result<StatusCode, ApiError> {
    state.engine.delete_definition(caller.organization_id, ORG, &name).await?;
    Ok(StatusCode::OK)
}

#[utoipa::path(get, path = "/instances/{id}/objects/definitions", operation_id = "listInstanceDefinitions", tag = "objects",
    params(("id" = i64, Path)),
    responses((status = 200, description = "The instance's common resources, keyed by name, with `\"level\": \"instance\"`", body = Object),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, description = "No such instance (or another organization's)", body = ErrorBody)))]
pub async fn instance_list(State(state): State<Arc<AppState>>, caller: Caller, Path(id): Path<i64>) -> Result<Json<Value>, ApiError> {
    list_at(&state, &caller, DefinitionScope::Instance(id)).await
}

#[utoipa::path(post, path = "/instances/{id}/objects/definitions", operation_id = "createInstanceDefinitions", tag = "objects",
    params(("id" = i64, Path)),
    request_body(content = Object, description = "Common resources keyed by name, as at organization level"),
    responses((status = 200, description = "Created, all of them", body = Object), (status = 400, description = "Bad input; nothing was created", body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 404, description = "No such instance", body = ErrorBody),
        (status = 409, description = "A name exists at this instance; nothing was created", body = ErrorBody), (status = 413, body = ErrorBody), (status = 415, body = ErrorBody)))]
pub async fn instance_create_many(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(id): Path<i64>,
    JsonBody(body): JsonBody<Map<String, Value>>,
) -> Result<Json<Value>, ApiError> {
    create_many_at(&state, &caller, DefinitionScope::Instance(id), &body).await
}

#[utoipa::path(delete, path = "/instances/{id}/objects/definitions", operation_id = "deleteInstanceDefinitions", tag = "objects",
    params(("id" = i64, Path)),
    responses((status = 200, description = "Every common resource of the instance deleted"), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 404, description = "No such instance", body = ErrorBody)))]
pub async fn instance_delete_all(State(state): State<Arc<AppState>>, caller: Caller, Path(id): Path<i64>) -> Result<StatusCode, ApiError> {
    state.engine.delete_definitions(caller.organization_id, DefinitionScope::Instance(id)).await?;
    Ok(StatusCode::OK)
}

#[utoipa::path(get, path = "/instances/{id}/objects/{objectName}/definitions", operation_id = "getInstanceDefinition", tag = "objects",
    params(("id" = i64, Path), ("objectName" = String, Path)),
    responses((status = 200, description = "`{\"fields\": [...], \"level\": \"instance\"}`", body = Object), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 404, description = "No such instance or common resource", body = ErrorBody)))]
pub async fn instance_get(State(state): State<Arc<AppState>>, caller: Caller, Path((id, name)): Path<(i64, String)>) -> Result<Json<Value>, ApiError> {
    get_at(&state, &caller, DefinitionScope::Instance(id), &name).await
}

#[utoipa::path(post, path = "/instances/{id}/objects/{objectName}/definitions", operation_id = "createInstanceDefinition", tag = "objects",
    params(("id" = i64, Path), ("objectName" = String, Path)),
    request_body(content = Object, description = "`{\"fields\": [{\"path\", \"type\"}]}`"),
    responses((status = 200, description = "Created", body = Object), (status = 400, description = "Bad input; nothing was created", body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 404, description = "No such instance", body = ErrorBody),
        (status = 409, description = "The name exists at this instance", body = ErrorBody), (status = 413, body = ErrorBody), (status = 415, body = ErrorBody)))]
pub async fn instance_create(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path((id, name)): Path<(i64, String)>,
    JsonBody(body): JsonBody<Map<String, Value>>,
) -> Result<Json<Value>, ApiError> {
    create_at(&state, &caller, DefinitionScope::Instance(id), &name, body).await
}

#[utoipa::path(put, path = "/instances/{id}/objects/{objectName}/definitions", operation_id = "replaceInstanceDefinition", tag = "objects",
    params(("id" = i64, Path), ("objectName" = String, Path)),
    request_body(content = Object, description = "The new fields"),
    responses((status = 200, description = "Replaced", body = Object), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 404, description = "No such instance or common resource", body = ErrorBody), (status = 413, body = ErrorBody), (status = 415, body = ErrorBody)))]
pub async fn instance_replace(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path((id, name)): Path<(i64, String)>,
    JsonBody(body): JsonBody<Map<String, Value>>,
) -> Result<Json<Value>, ApiError> {
    replace_at(&state, &caller, DefinitionScope::Instance(id), &name, body).await
}

#[utoipa::path(delete, path = "/instances/{id}/objects/{objectName}/definitions", operation_id = "deleteInstanceDefinition", tag = "objects",
    params(("id" = i64, Path), ("objectName" = String, Path)),
    responses((status = 200, description = "Deleted"), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 404, description = "No such instance or common resource", body = ErrorBody)))]
pub async fn instance_delete(State(state): State<Arc<AppState>>, caller: Caller, Path((id, name)): Path<(i64, String)>) -> Result<StatusCode, ApiError> {
    state.engine.delete_definition(caller.organization_id, DefinitionScope::Instance(id), &name).await?;
    Ok(StatusCode::OK)
}

/// Cloud Elements' account level (`/accounts/...`, `level: account`): Switchyard
/// has organizations and instances only.
#[utoipa::path(method(get, post, put, patch, delete), path = "/accounts/{path}", operation_id = "accounts", tag = "objects",
    params(("path" = String, Path, description = "Anything under /accounts")),
    responses((status = 400, description = "accounts are not supported", body = ErrorBody), (status = 401, body = ErrorBody)))]
pub async fn accounts(_caller: Caller) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, "accounts are not supported: Switchyard has organizations and instances only")
}
