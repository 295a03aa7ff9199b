//! Element instances: one authenticated connection of an element to one vendor
//! account. Creation validates in a fixed order and stores nothing on failure:
//! required keys, well-formed values, the event settings as the events crate reads
//! them, the callback URL as written (against the outbound policy), then one vendor
//! call.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use serde_json::{json, Map, Value};
use switchyard_elements::{ElementDefinition, ParameterType, ValueFormat};
use switchyard_engine::instance::{defaults, VaultSealer};
use switchyard_engine::oauth::{self, is_token_key, TokenPair};
use switchyard_engine::webhooks;
use switchyard_store::{InstanceRow, InstanceUpdate, NewInstance, NewValue};

use crate::caller::{hash_secret, Caller};
use crate::extract::Path;
use crate::json_body::JsonBody;
use crate::{ApiError, AppState};

/// What a secret looks like in every answer; sent back, it keeps the stored value.
pub const MASK: &str = "********";

/// A stored value as answers show it: secrets masked.
fn shown(row: &switchyard_store::ConfigRow) -> String {
    match (&row.secret, &row.value) {
        (Some(_), _) => MASK.to_owned(),
        (None, value) => value.clone().unwrap_or_default(),
    }
}

/// The body of `POST`, `PUT` and `PATCH` on instances.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct InstanceBody {
    #[serde(default)]
    element: Option<ElementRef>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    tags: Option<Vec<String>>,
    /// Values by configuration key: strings (numbers and booleans are kept as their text).
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    configuration: Option<Map<String, Value>>,
    /// For OAuth elements: `{"code": "..."}` from the vendor's redirect.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    provider_data: Option<Value>,
    /// Accepted for Cloud Elements compatibility; not stored.
    #[serde(default)]
    #[allow(dead_code)]
    description: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ElementRef {
    #[serde(default)]
    key: Option<String>,
    #[serde(default)]
    id: Option<i64>,
}

fn bad_request(message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, message)
}

/// Configuration values are strings, as in Cloud Elements; numbers and booleans
/// are accepted and kept as their text.
fn as_config_strings(config: Map<String, Value>) -> Result<BTreeMap<String, String>, ApiError> {
    config
        .into_iter()
        .map(|(k, v)| match v {
            Value::String(s) => Ok((k, s)),
            Value::Bool(b) => Ok((k, b.to_string())),
            Value::Number(n) => Ok((k, n.to_string())),
            other => Err(bad_request(format!(
                "configuration '{k}' must be a string, number or boolean, not {}",
                match other {
                    Value::Null => "null",
                    Value::Array(_) => "an array",
                    _ => "an object",
                }
            ))),
        })
        .collect()
}

/// Required keys first (one message naming all that are missing), then the event
/// settings (whose messages say the allowed values and ranges), then formats.
fn validate(def: &ElementDefinition, given: &BTreeMap<String, String>) -> Result<(), ApiError> {
    let missing: Vec<&str> = def.required_keys(given).into_iter().filter(|k| def.effective(given, k).is_none()).collect();
    if !missing.is_empty() {
        return Err(bad_request(format!("Missing required configuration: {}", missing.join(", "))));
    }
    check_event_settings(def, given)?;
    check_formats(def, given)
}

/// Each value of `given` that is a configuration parameter of `def`: its length,
/// type and format (what [`validate`] checks after the required keys). Other
/// keys pass.
pub(crate) fn check_formats(def: &ElementDefinition, given: &BTreeMap<String, String>) -> Result<(), ApiError> {
    for (key, value) in given {
        let Some(param) = def.parameter(key) else { continue };
        if let Some(max) = param.kind.max_len() {
            if value.chars().count() > max {
                return Err(bad_request(format!("configuration '{key}' is longer than {max} characters")));
            }
        }
        let ok = match (param.kind, param.format) {
            (ParameterType::Boolean, _) => matches!(value.as_str(), "true" | "false"),
            (ParameterType::Combo, _) if !param.options.is_empty() => param.options.iter().any(|o| o == value),
            // A base URL with a query or fragment would swallow every path after it
            // (`…/v2#x` + `/orders/5` is `…/v2`): refused where the element's base
            // URL uses the key; a fragment never reaches a server anywhere.
            (_, Some(ValueFormat::Url)) => url::Url::parse(value).is_ok_and(|u| {
                let base = def.is_base_url_key(key);
                matches!(u.scheme(), "http" | "https") && u.fragment().is_none() && !(base && u.query().is_some())
            }),
            (_, Some(ValueFormat::Number)) => value.parse::<f64>().is_ok_and(f64::is_finite),
            (_, Some(ValueFormat::Json)) => serde_json::from_str::<Value>(value).is_ok(),
            _ => true,
        };
        if !ok {
            let expected = match (param.kind, param.format) {
                (ParameterType::Boolean, _) => "true or false".to_owned(),
                (ParameterType::Combo, _) => format!("one of {}", param.options.join(", ")),
                (_, Some(ValueFormat::Url)) => "an http(s) URL without a #fragment (and, as a base URL, without a ?query)".to_owned(),
                (_, Some(ValueFormat::Number)) => "a number".to_owned(),
                _ => "JSON".to_owned(),
            };
            return Err(bad_request(format!("configuration '{key}' must be {expected}")));
        }
    }
    Ok(())
}

/// `providerData.code` for OAuth 2.0 elements (required there, refused elsewhere).
fn provider_code(def: &ElementDefinition, provider_data: Option<Value>) -> Result<Option<String>, ApiError> {
    let oauth = def.authentication.oauth2().is_some();
    match provider_data {
        None => Ok(None),
        Some(_) if !oauth => Err(bad_request(format!("element {} does not take providerData", def.key))),
        Some(data) => match data.get("code").and_then(Value::as_str).map(str::trim) {
            Some(code) if !code.is_empty() => Ok(Some(code.to_owned())),
            _ => Err(bad_request("providerData.code must be the authorization code from the vendor's redirect")),
        },
    }
}

/// The tokens of OAuth 2.0 elements are written by the code exchange and refreshes
/// only; a body may carry them back unchanged (as read, or `********`), nothing else.
fn check_token_keys(def: &ElementDefinition, given: &BTreeMap<String, String>, stored: &BTreeMap<String, String>) -> Result<(), ApiError> {
    if def.authentication.oauth2().is_none() {
        return Ok(());
    }
    match given.iter().find(|(k, v)| is_token_key(k) && v.as_str() != MASK && stored.get(*k) != Some(*v)) {
        Some((k, _)) => Err(bad_request(format!(
            "'{k}' is written by Switchyard from the vendor's answers; send providerData.code to authorize again"
        ))),
        None => Ok(()),
    }
}

/// The OAuth 2.0 code exchange for `config` (over the element defaults), logged in
/// the call log of `instance` when it already exists.
async fn exchange(
    state: &AppState,
    def: &ElementDefinition,
    config: &BTreeMap<String, String>,
    code: &str,
    instance: Option<i64>,
) -> Result<TokenPair, ApiError> {
    Ok(state.engine.exchange_code(def, config, code, instance).await?)
}

/// The `event.*` values as the poller and the delivery worker will read them
/// (over the element's defaults), checked before anything is stored: a value they
/// would refuse or ignore is a 400 naming the key and what it may be.
pub(crate) fn check_event_settings(def: &ElementDefinition, config: &BTreeMap<String, String>) -> Result<(), ApiError> {
    switchyard_events::EventConfig::from_values(Some(def), config).map(|_| ()).map_err(|e| bad_request(e.to_string()))
}

/// Where events are delivered, judged by what the URL says by itself: not a URL,
/// a literal private, loopback or link-local address the outbound policy does not
/// allow, or plain http to a host not allow-listed. Its name is not resolved here
/// (it may not resolve yet, or resolve elsewhere later): the delivery worker
/// resolves it and applies the policy at every attempt, and a refusal there is a
/// failed attempt, retried.
pub(crate) fn check_callback_url(state: &AppState, config: &BTreeMap<String, String>) -> Result<(), ApiError> {
    let Some(url) = config.get("event.notification.callback.url").filter(|u| !u.trim().is_empty()) else {
        return Ok(());
    };
    state
        .engine
        .client
        .policy()
        .check_url(url)
        .map(|_| ())
        .map_err(|e| bad_request(format!("configuration 'event.notification.callback.url' is not allowed: {e}")))
}

fn find_element<'a>(state: &'a AppState, r: &ElementRef) -> Result<&'a ElementDefinition, ApiError> {
    let key = match (&r.key, r.id) {
        (Some(k), _) => k.clone(),
        (None, Some(id)) => id.to_string(),
        (None, None) => return Err(bad_request("element needs a key or an id")),
    };
    state
        .engine
        .catalog
        .get(&key)
        .map(|d| d.as_ref())
        .ok_or_else(|| ApiError::not_found(format!("No element with key or id '{key}'")))
}

#[utoipa::path(post, path = "/instances", operation_id = "createInstance", tag = "instances", request_body = InstanceBody,
    responses((status = 200, description = "Created; the token is shown only here", body = InstanceView), (status = 400, description = "Bad input; nothing was written", body = crate::error::ErrorBody), (status = 401, body = crate::error::ErrorBody), (status = 404, description = "No such element", body = crate::error::ErrorBody), (status = 415, description = "The body is not sent as Content-Type: application/json", body = crate::error::ErrorBody)))]
pub async fn create(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    JsonBody(body): JsonBody<InstanceBody>,
) -> Result<Json<InstanceView>, ApiError> {
    let element = body.element.as_ref().ok_or_else(|| bad_request("element is required"))?;
    let def = find_element(&state, element)?.clone();
    create_instance(&state, &caller, &def, body).await
}

#[utoipa::path(post, path = "/elements/{keyOrId}/instances", operation_id = "createElementInstance", tag = "instances", request_body = InstanceBody,
    params(("keyOrId" = String, Path, description = "Element key or id")),
    responses((status = 200, body = InstanceView), (status = 400, description = "Bad input; nothing was written", body = crate::error::ErrorBody), (status = 401, body = crate::error::ErrorBody), (status = 404, description = "No such element", body = crate::error::ErrorBody), (status = 415, description = "The body is not sent as Content-Type: application/json", body = crate::error::ErrorBody)))]
pub async fn create_for_element(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(key_or_id): Path<String>,
    JsonBody(body): JsonBody<InstanceBody>,
) -> Result<Json<InstanceView>, ApiError> {
    let def = find_element(&state, &ElementRef { key: Some(key_or_id), id: None })?.clone();
    // The path names the element; a body that names another one is a mistake to
    // point out, not to settle silently in the path's favour.
    if let Some(named) = body.element.as_ref().filter(|e| e.key.is_some() || e.id.is_some()) {
        if !find_element(&state, named).is_ok_and(|d| d.key == def.key) {
            let given = named.key.clone().or_else(|| named.id.map(|i| i.to_string())).unwrap_or_default();
            return Err(bad_request(format!(
                "The body names element '{given}', the path element {}; send the same one or none",
                def.key
            )));
        }
    }
    create_instance(&state, &caller, &def, body).await
}

async fn create_instance(
    state: &AppState,
    caller: &Caller,
    def: &ElementDefinition,
    body: InstanceBody,
) -> Result<Json<InstanceView>, ApiError> {
    let name = body.name.filter(|n| !n.trim().is_empty()).ok_or_else(|| bad_request("name is required"))?;
    // Before any vendor call: an OAuth code is spent once, and its tokens must be sealed.
    state.engine.check_sealing()?;
    let code = provider_code(def, body.provider_data)?;
    let mut given = as_config_strings(body.configuration.unwrap_or_default())?;
    if given.values().any(|v| v == MASK) {
        return Err(bad_request(format!("'{MASK}' keeps a stored secret; a new instance has none")));
    }
    check_token_keys(def, &given, &BTreeMap::new())?;
    validate(def, &given)?;
    let wanted_hooks = webhooks::wanted(def, &given)?;
    check_callback_url(state, &given)?;
    if def.authentication.oauth2().is_some() {
        let code = code.ok_or_else(|| {
            bad_request(format!(
                "element {key} is authorized with OAuth 2.0: send providerData.code, the code of the vendor's \
                 redirect (GET /elements/{key}/oauth/url gives the authorize URL)",
                key = def.key
            ))
        })?;
        // Not in the call log: there is no instance yet to log it under (as for the
        // credential check below).
        let pair = exchange(state, def, &given, &code, None).await?;
        given.extend(pair.values());
    }
    state.engine.check_credentials(def, &given).await?;
    let webhook = if wanted_hooks.is_empty() {
        None
    } else {
        let mut full = defaults(def);
        full.extend(given.clone());
        Some((webhooks::register(&state.engine, def, &full, None, &wanted_hooks).await?, full))
    };

    let token = crate::new_secret();
    let config: Vec<(String, NewValue)> = given
        .iter()
        .map(|(k, v)| (k.clone(), if def.is_secret(k) { NewValue::Secret(v.clone()) } else { NewValue::Plain(v.clone()) }))
        .collect();
    let new = NewInstance {
        organization_id: caller.organization_id,
        user_id: caller.user_id,
        element_key: def.key.clone(),
        name,
        token_hash: hash_secret(&token),
        tags: body.tags.unwrap_or_default(),
        events_enabled: given.get("event.notification.enabled").is_some_and(|v| v == "true"),
        webhook: webhook.as_ref().map(|(w, _)| w.clone()),
    };
    let id = match state.engine.store.create_instance(&new, &config, &VaultSealer(&state.engine.vault)).await {
        Ok(id) => id,
        Err(e) => {
            if let Some((w, full)) = &webhook {
                webhooks::remove(&state.engine, def, full, None, &w.hooks).await;
            }
            return Err(e.into());
        }
    };
    state.poll_schedule.changed(id);
    let row = state.engine.store.instance(caller.organization_id, id).await?.ok_or_else(|| ApiError::internal("instance vanished"))?;
    let mut view = instance_view(state, caller, &row).await?;
    // The token is shown once, here; only its hash is kept.
    view.token = Some(token);
    Ok(Json(view))
}

/// An instance as every answer shows it, secrets masked.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct InstanceView {
    id: i64,
    name: String,
    /// The instance token for hub calls (`Element <token>`), shown once: in the
    /// creation answer. Only its hash is kept.
    #[serde(skip_serializing_if = "Option::is_none")]
    token: Option<String>,
    element: ElementSummaryView,
    /// Values by key; secrets (PASSWORD parameters and tokens) as `********`.
    configuration: BTreeMap<String, String>,
    tags: Vec<String>,
    valid: bool,
    disabled: bool,
    events_enabled: bool,
    /// How the instance's events are doing: the latest poll.
    events: EventsStatusView,
    user: UserView,
    created_date: String,
    updated_date: String,
}

/// The latest poll of an instance's events. Every field is `null` until the
/// first poll ends (and stays so for instances that use vendor webhooks).
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EventsStatusView {
    /// When the latest poll ended (ISO 8601, UTC).
    #[schema(required = true)]
    last_poll_at: Option<String>,
    #[schema(required = true)]
    last_poll_outcome: Option<PollOutcome>,
    /// Why the latest poll failed; `null` when it did not.
    #[schema(required = true)]
    last_poll_message: Option<String>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum PollOutcome {
    Ok,
    Failed,
}

#[derive(Serialize, ToSchema)]
pub struct ElementSummaryView {
    id: i64,
    key: String,
    name: String,
    hub: String,
    /// `{"type": "basic" | "oauth2" | ...}`
    #[schema(value_type = Object)]
    authentication: Value,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UserView {
    id: i64,
    /// Present when the instance's user is the caller.
    #[serde(skip_serializing_if = "Option::is_none")]
    email_address: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    first_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    last_name: Option<String>,
}

/// One configuration value, as `GET /instances/{id}/configuration` lists it.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConfigurationView {
    id: i64,
    key: String,
    /// `********` for secrets.
    property_value: String,
}

impl From<&switchyard_store::ConfigRow> for ConfigurationView {
    fn from(c: &switchyard_store::ConfigRow) -> Self {
        ConfigurationView { id: c.id, key: c.key.clone(), property_value: shown(c) }
    }
}

async fn instance_view(state: &AppState, caller: &Caller, row: &InstanceRow) -> Result<InstanceView, ApiError> {
    let configuration: BTreeMap<String, String> =
        state.engine.store.configuration(row.id).await?.iter().map(|c| (c.key.clone(), shown(c))).collect();
    let element = match state.engine.catalog.get(&row.element_key) {
        Some(d) => ElementSummaryView {
            id: d.id,
            key: d.key.clone(),
            name: d.name.clone(),
            hub: d.hub.clone(),
            // The scheme this instance uses (BigCommerce: basic, or custom in token mode).
            authentication: json!({"type": d.authentication_for(&configuration).unwrap_or(&d.authentication).type_name()}),
        },
        None => ElementSummaryView {
            id: 0,
            key: row.element_key.clone(),
            name: row.element_key.clone(),
            hub: String::new(),
            authentication: json!({}),
        },
    };
    let events = match state.engine.store.poll_status(row.id).await? {
        Some(p) => EventsStatusView {
            last_poll_at: Some(switchyard_events::iso_ms(p.polled_at)),
            last_poll_outcome: Some(if p.ok { PollOutcome::Ok } else { PollOutcome::Failed }),
            last_poll_message: p.message,
        },
        None => EventsStatusView { last_poll_at: None, last_poll_outcome: None, last_poll_message: None },
    };
    let mine = row.user_id == caller.user_id;
    Ok(InstanceView {
        id: row.id,
        name: row.name.clone(),
        token: None,
        element,
        configuration,
        tags: row.tags.clone(),
        valid: row.valid,
        disabled: row.disabled,
        events_enabled: row.events_enabled,
        events,
        user: UserView {
            id: row.user_id,
            email_address: mine.then(|| caller.email.clone()),
            first_name: mine.then(|| caller.first_name.clone()),
            last_name: mine.then(|| caller.last_name.clone()),
        },
        created_date: row.created_at.clone(),
        updated_date: row.updated_at.clone(),
    })
}

/// The instance named by `{id}`, or the `Element` token where the path has no id.
async fn owned(state: &AppState, caller: &Caller, id: Option<i64>) -> Result<InstanceRow, ApiError> {
    let row = match id {
        Some(id) => state.engine.store.instance(caller.organization_id, id).await?,
        None => {
            let token = caller.element_token.as_deref().ok_or_else(|| bad_request("No instance id and no Element token"))?;
            match state.engine.store.instance_by_token(&hash_secret(token)).await? {
                Some(row) if row.organization_id == caller.organization_id => Some(row),
                _ => return Err(ApiError::unauthorized("Invalid Element token")),
            }
        }
    };
    // Another organization's id is indistinguishable from a missing one.
    row.ok_or_else(|| ApiError::not_found("No such instance"))
}

/// What `GET /instances` answers: an array, or one object when the caller names an
/// instance with its `Element` token (as Cloud Elements does).
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
pub enum InstanceListAnswer {
    /// Without an `Element` token: the organization's instances (those with every tag asked for).
    All(Vec<InstanceView>),
    /// With an `Element` token: that instance alone, as one object (not an array).
    One(Box<InstanceView>),
}

#[utoipa::path(get, path = "/instances", operation_id = "listInstances", tag = "instances",
    params(("tags[]" = Option<Vec<String>>, Query, description = "Only instances with every tag given")),
    responses((status = 200, description = "The organization's instances, an array; with an `Element` token in Authorization, that instance alone, one object", body = InstanceListAnswer), (status = 401, description = "Missing or wrong credentials, or an `Element` token naming no instance of the organization", body = crate::error::ErrorBody)))]
pub async fn list(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    RawQuery(query): RawQuery,
) -> Result<Json<InstanceListAnswer>, ApiError> {
    if caller.element_token.is_some() {
        let row = owned(&state, &caller, None).await?;
        return Ok(Json(InstanceListAnswer::One(Box::new(instance_view(&state, &caller, &row).await?))));
    }
    // `tags[]` repeats, which serde_urlencoded's maps cannot hold: collect by hand.
    let tags: Vec<String> = url::form_urlencoded::parse(query.unwrap_or_default().as_bytes())
        .filter(|(k, _)| k == "tags[]" || k == "tags")
        .map(|(_, v)| v.into_owned())
        .collect();
    let mut out = Vec::new();
    for row in state.engine.store.instances(caller.organization_id, &tags).await? {
        out.push(instance_view(&state, &caller, &row).await?);
    }
    Ok(Json(InstanceListAnswer::All(out)))
}

#[utoipa::path(get, path = "/instances/{id}", operation_id = "getInstance", tag = "instances", params(("id" = i64, Path)),
    responses((status = 200, body = InstanceView), (status = 400, description = "`{id}` is not a whole number", body = crate::error::ErrorBody), (status = 401, body = crate::error::ErrorBody), (status = 404, description = "No such instance (or another organization's)", body = crate::error::ErrorBody)))]
pub async fn get(State(state): State<Arc<AppState>>, caller: Caller, Path(id): Path<i64>) -> Result<Json<InstanceView>, ApiError> {
    let row = owned(&state, &caller, Some(id)).await?;
    Ok(Json(instance_view(&state, &caller, &row).await?))
}

#[utoipa::path(delete, path = "/instances/{id}", operation_id = "deleteInstance", tag = "instances", params(("id" = i64, Path)),
    responses((status = 200, description = "Deleted; its token stops working at once"), (status = 400, description = "`{id}` is not a whole number", body = crate::error::ErrorBody), (status = 401, body = crate::error::ErrorBody), (status = 404, description = "No such instance (or another organization's)", body = crate::error::ErrorBody)))]
pub async fn delete(State(state): State<Arc<AppState>>, caller: Caller, Path(id): Path<i64>) -> Result<StatusCode, ApiError> {
    let row = owned(&state, &caller, Some(id)).await?;
    // No other node registers or checks the hooks meanwhile.
    let _hooks_held = webhooks::hold(&state.engine, row.id).await?;
    // The vendor hooks go too; their ids and the credentials to remove them with
    // are read before the rows are.
    let hooks = match state.engine.store.webhook(row.id).await? {
        Some(w) => {
            let def = state.engine.element_of(&row)?;
            let config = state.engine.open_configuration(&def, &row).await?;
            Some((w, def, config))
        }
        None => None,
    };
    state.engine.store.delete_instance(caller.organization_id, row.id).await?;
    state.engine.instances.forget_instance(row.id);
    state.poll_schedule.changed(row.id);
    if let Some((w, def, config)) = hooks {
        webhooks::remove(&state.engine, &def, &config, None, &w.hooks).await;
    }
    Ok(StatusCode::OK)
}

#[utoipa::path(get, path = "/instances/{id}/configuration", operation_id = "getInstanceConfiguration", tag = "instances", params(("id" = i64, Path)),
    responses((status = 200, body = Vec<ConfigurationView>), (status = 400, description = "`{id}` is not a whole number", body = crate::error::ErrorBody), (status = 401, body = crate::error::ErrorBody), (status = 404, description = "No such instance (or another organization's)", body = crate::error::ErrorBody)))]
pub async fn configuration(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(id): Path<i64>,
) -> Result<Json<Vec<ConfigurationView>>, ApiError> {
    configuration_of(&state, &caller, Some(id)).await
}

/// `GET /instances/configuration` for the instance named by the `Element` token.
#[utoipa::path(get, path = "/instances/configuration", operation_id = "getCurrentInstanceConfiguration", tag = "instances",
    responses((status = 200, description = "The configuration of the instance the `Element` token names", body = Vec<ConfigurationView>), (status = 400, description = "No `Element` token in Authorization", body = crate::error::ErrorBody), (status = 401, body = crate::error::ErrorBody), (status = 404, description = "No such instance (or another organization's)", body = crate::error::ErrorBody)))]
pub async fn configuration_current(State(state): State<Arc<AppState>>, caller: Caller) -> Result<Json<Vec<ConfigurationView>>, ApiError> {
    configuration_of(&state, &caller, None).await
}

async fn configuration_of(state: &AppState, caller: &Caller, id: Option<i64>) -> Result<Json<Vec<ConfigurationView>>, ApiError> {
    let row = owned(state, caller, id).await?;
    let rows = state.engine.store.configuration(row.id).await?;
    Ok(Json(rows.iter().map(ConfigurationView::from).collect()))
}

/// Issue a new instance token; the old one stops working at once, on every node.
///
/// The token is shown here only (as in the creation answer). This is how the
/// creator of a Connect session gets the token of the instance its customer
/// made, and how a lost or leaked token is replaced.
#[utoipa::path(post, path = "/instances/{id}/token", operation_id = "issueInstanceToken", tag = "instances", params(("id" = i64, Path)),
    responses((status = 200, description = "`{\"id\", \"token\"}`: the new token, shown only here", body = Object),
        (status = 400, description = "`{id}` is not a whole number", body = crate::error::ErrorBody), (status = 401, body = crate::error::ErrorBody),
        (status = 404, description = "No such instance (or another organization's)", body = crate::error::ErrorBody)))]
pub async fn issue_token(State(state): State<Arc<AppState>>, caller: Caller, Path(id): Path<i64>) -> Result<Json<Value>, ApiError> {
    let row = owned(&state, &caller, Some(id)).await?;
    let token = crate::new_secret();
    if !state.engine.store.set_instance_token(caller.organization_id, row.id, &hash_secret(&token)).await? {
        return Err(ApiError::not_found(format!("No instance {id}")));
    }
    state.engine.instances.forget_instance(row.id);
    Ok(Json(serde_json::json!({"id": row.id, "token": token})))
}

#[utoipa::path(put, path = "/instances/{id}/enabled", operation_id = "enableInstance", tag = "instances", params(("id" = i64, Path)),
    responses((status = 200, body = InstanceView), (status = 400, description = "`{id}` is not a whole number", body = crate::error::ErrorBody), (status = 401, body = crate::error::ErrorBody), (status = 404, description = "No such instance (or another organization's)", body = crate::error::ErrorBody)))]
pub async fn enable(State(state): State<Arc<AppState>>, caller: Caller, Path(id): Path<i64>) -> Result<Json<InstanceView>, ApiError> {
    set_disabled(state, caller, id, false).await
}

#[utoipa::path(delete, path = "/instances/{id}/enabled", operation_id = "disableInstance", tag = "instances", params(("id" = i64, Path)),
    responses((status = 200, description = "Disabled: hub calls answer 403", body = InstanceView), (status = 400, description = "`{id}` is not a whole number", body = crate::error::ErrorBody), (status = 401, body = crate::error::ErrorBody), (status = 404, description = "No such instance (or another organization's)", body = crate::error::ErrorBody)))]
pub async fn disable(State(state): State<Arc<AppState>>, caller: Caller, Path(id): Path<i64>) -> Result<Json<InstanceView>, ApiError> {
    set_disabled(state, caller, id, true).await
}

async fn set_disabled(state: Arc<AppState>, caller: Caller, id: i64, disabled: bool) -> Result<Json<InstanceView>, ApiError> {
    let row = owned(&state, &caller, Some(id)).await?;
    state.engine.store.set_disabled(caller.organization_id, row.id, disabled).await?;
    state.engine.instances.forget_instance(row.id);
    state.poll_schedule.changed(row.id);
    let row = owned(&state, &caller, Some(id)).await?;
    Ok(Json(instance_view(&state, &caller, &row).await?))
}

/// What an update does with what the body leaves out: `PUT` replaces the
/// instance (absent configuration keys are removed, absent tags cleared), `PATCH`
/// merges into it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum UpdateMode {
    Replace,
    Merge,
}

#[utoipa::path(put, path = "/instances/{id}", operation_id = "replaceInstance", tag = "instances", request_body = InstanceBody, params(("id" = i64, Path)),
    responses((status = 200, description = "Replaced; `********` keeps a stored secret", body = InstanceView), (status = 400, description = "Bad input (or `{id}` not a whole number); nothing was written", body = crate::error::ErrorBody), (status = 401, body = crate::error::ErrorBody), (status = 404, description = "No such instance (or another organization's)", body = crate::error::ErrorBody), (status = 415, description = "The body is not sent as Content-Type: application/json", body = crate::error::ErrorBody)))]
pub async fn put(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(id): Path<i64>,
    JsonBody(body): JsonBody<InstanceBody>,
) -> Result<Json<InstanceView>, ApiError> {
    update(&state, &caller, Some(id), body, UpdateMode::Replace).await
}

#[utoipa::path(patch, path = "/instances/{id}", operation_id = "updateInstance", tag = "instances", request_body = InstanceBody, params(("id" = i64, Path)),
    responses((status = 200, description = "Merged: name and tags replaced, configuration merged", body = InstanceView), (status = 400, description = "Bad input (or `{id}` not a whole number); nothing was written", body = crate::error::ErrorBody), (status = 401, body = crate::error::ErrorBody), (status = 404, description = "No such instance (or another organization's)", body = crate::error::ErrorBody), (status = 415, description = "The body is not sent as Content-Type: application/json", body = crate::error::ErrorBody)))]
pub async fn patch(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(id): Path<i64>,
    JsonBody(body): JsonBody<InstanceBody>,
) -> Result<Json<InstanceView>, ApiError> {
    update(&state, &caller, Some(id), body, UpdateMode::Merge).await
}

/// `PUT /instances` on the instance named by the `Element` token.
#[utoipa::path(put, path = "/instances", operation_id = "replaceCurrentInstance", tag = "instances", request_body = InstanceBody,
    responses((status = 200, description = "Replaces the instance the `Element` token names", body = InstanceView), (status = 400, description = "Bad input; nothing was written", body = crate::error::ErrorBody), (status = 401, body = crate::error::ErrorBody), (status = 404, description = "No such instance (or another organization's)", body = crate::error::ErrorBody), (status = 415, description = "The body is not sent as Content-Type: application/json", body = crate::error::ErrorBody)))]
pub async fn put_current(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    JsonBody(body): JsonBody<InstanceBody>,
) -> Result<Json<InstanceView>, ApiError> {
    update(&state, &caller, None, body, UpdateMode::Replace).await
}

/// `PATCH /instances` on the instance named by the `Element` token.
#[utoipa::path(patch, path = "/instances", operation_id = "updateCurrentInstance", tag = "instances", request_body = InstanceBody,
    responses((status = 200, description = "Merges into the instance the `Element` token names", body = InstanceView), (status = 400, description = "Bad input; nothing was written", body = crate::error::ErrorBody), (status = 401, body = crate::error::ErrorBody), (status = 404, description = "No such instance (or another organization's)", body = crate::error::ErrorBody), (status = 415, description = "The body is not sent as Content-Type: application/json", body = crate::error::ErrorBody)))]
pub async fn patch_current(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    JsonBody(body): JsonBody<InstanceBody>,
) -> Result<Json<InstanceView>, ApiError> {
    update(&state, &caller, None, body, UpdateMode::Merge).await
}

/// The new configuration: the body's values over the stored ones (`Merge`) or
/// alone (`Replace`), a `"********"` keeping the stored secret.
fn merge_configuration(
    def: &ElementDefinition,
    stored: &BTreeMap<String, String>,
    given: BTreeMap<String, String>,
    mode: UpdateMode,
) -> Result<BTreeMap<String, String>, ApiError> {
    let mut config = match mode {
        UpdateMode::Replace => BTreeMap::new(),
        UpdateMode::Merge => stored.clone(),
    };
    for (key, value) in given {
        let value = if value == MASK {
            match stored.get(&key) {
                Some(old) if def.is_secret(&key) => old.clone(),
                _ => return Err(bad_request(format!("'{MASK}' keeps a stored secret, and '{key}' has none"))),
            }
        } else {
            value
        };
        config.insert(key, value);
    }
    Ok(config)
}

/// Whether anything the vendor sees changed: every key but the `event.*` ones,
/// which only concern Switchyard's side.
fn vendor_facing_change(stored: &BTreeMap<String, String>, config: &BTreeMap<String, String>) -> bool {
    let vendor_facing = |m: &BTreeMap<String, String>| -> Vec<(String, String)> {
        m.iter().filter(|(k, _)| !k.starts_with("event.")).map(|(k, v)| (k.clone(), v.clone())).collect()
    };
    vendor_facing(stored) != vendor_facing(config)
}

/// Updates in the order creation checks (required keys, formats, then the vendor,
/// called only when a vendor-facing value changed) and writes nothing on failure.
async fn update(
    state: &AppState,
    caller: &Caller,
    id: Option<i64>,
    body: InstanceBody,
    mode: UpdateMode,
) -> Result<Json<InstanceView>, ApiError> {
    let row = owned(state, caller, id).await?;
    state.engine.check_sealing()?;
    let def = state
        .engine
        .catalog
        .get(&row.element_key)
        .cloned()
        .ok_or_else(|| ApiError::internal(format!("instance {} names unknown element {}", row.id, row.element_key)))?;
    if let Some(element) = &body.element {
        if find_element(state, element)?.key != def.key {
            return Err(bad_request(format!("An instance cannot change its element (this one is {})", def.key)));
        }
    }
    let code = provider_code(&def, body.provider_data)?;
    let name = match (body.name, mode) {
        (Some(n), _) if n.trim().is_empty() => return Err(bad_request("name must not be empty")),
        (None, UpdateMode::Replace) => return Err(bad_request("name is required")),
        (name, _) => name,
    };
    let given = as_config_strings(body.configuration.unwrap_or_default())?;
    let stored = state.engine.stored_configuration(row.id).await?;
    check_token_keys(&def, &given, &stored)?;
    let mut config = merge_configuration(&def, &stored, given, mode)?;
    let oauth = def.authentication.oauth2().is_some();
    if oauth {
        // Tokens are never written back from what was read: a refresh may rotate
        // them meanwhile. They change only by a new code (below).
        config.retain(|k, _| !is_token_key(k));
    }
    validate(&def, &config)?;
    let wanted_hooks = webhooks::wanted(&def, &config)?;
    check_callback_url(state, &config)?;
    let pair = match &code {
        Some(code) => Some(exchange(state, &def, &config, code, Some(row.id)).await?),
        None => None,
    };
    let mut before = stored.clone();
    if oauth {
        before.retain(|k, _| !is_token_key(k));
    }
    let checked = pair.is_some() || vendor_facing_change(&before, &config);
    // What the vendor sees after this change: the configuration over the element
    // defaults, with the OAuth tokens in force (new from a code, else the stored ones).
    let mut vendor_config = defaults(&def);
    vendor_config.extend(config.clone());
    match &pair {
        Some(pair) => vendor_config.extend(pair.values()),
        None if oauth => vendor_config.extend(stored.iter().filter(|(k, _)| is_token_key(k)).map(|(k, v)| (k.clone(), v.clone()))),
        None => {}
    }
    if checked {
        let mut check_config = vendor_config.clone();
        if oauth && pair.is_none() {
            // A platform call: a token the vendor refuses is bad input here, not a 401.
            oauth::ensure_fresh(&state.engine, &def, row.id, &mut check_config).await.map_err(|e| {
                let mut err = bad_request(format!("The credentials could not be checked: {}", e.message));
                err.provider_message = e.provider_message;
                err
            })?;
        }
        state.engine.check_credentials(&def, &check_config).await?;
    }
    // Vendor hooks follow the configuration: registered anew when what is watched,
    // the address or the credentials changed (new ones first, so a refusal leaves
    // the old ones working), the old ones removed once the change is stored.
    // One node at a time changes an instance's hooks (another request, or the
    // periodic check on any node), held until this change is stored.
    let _hooks_held = match def.events.webhooks {
        Some(_) => Some(webhooks::hold(&state.engine, row.id).await?),
        None => None,
    };
    let current_hooks = state.engine.store.webhook(row.id).await?;
    let rehook = checked || !webhooks::serves(current_hooks.as_ref(), &wanted_hooks, &state.engine, &def);
    let new_hooks = if rehook && !wanted_hooks.is_empty() {
        Some(webhooks::register(&state.engine, &def, &vendor_config, Some(row.id), &wanted_hooks).await?)
    } else {
        None
    };

    let mut values: Vec<(String, NewValue)> = config
        .iter()
        .map(|(k, v)| {
            let value = match (def.is_secret(k), stored.get(k) == Some(v)) {
                (true, true) => NewValue::Keep,
                (true, false) => NewValue::Secret(v.clone()),
                (false, _) => NewValue::Plain(v.clone()),
            };
            (k.clone(), value)
        })
        .collect();
    if oauth {
        match &pair {
            Some(pair) => values.extend(pair.values().into_iter().map(|(k, v)| {
                let v = if def.is_secret(&k) { NewValue::Secret(v) } else { NewValue::Plain(v) };
                (k, v)
            })),
            None => values.extend(stored.keys().filter(|k| is_token_key(k)).map(|k| (k.clone(), NewValue::Keep))),
        }
    }
    let update = InstanceUpdate {
        name,
        tags: match mode {
            UpdateMode::Replace => Some(body.tags.unwrap_or_default()),
            UpdateMode::Merge => body.tags,
        },
        events_enabled: Some(config.get("event.notification.enabled").is_some_and(|v| v == "true")),
        // Credentials the vendor just accepted make the instance valid again.
        valid: checked.then_some(true),
        webhook: rehook.then(|| new_hooks.clone()),
        forget_account_zone: checked,
    };
    let sealer = VaultSealer(&state.engine.vault);
    let stored_ok = state.engine.store.update_instance(caller.organization_id, row.id, &update, &values, true, &sealer).await;
    if !matches!(stored_ok, Ok(true)) {
        if let Some(w) = &new_hooks {
            webhooks::remove(&state.engine, &def, &vendor_config, Some(row.id), &w.hooks).await;
        }
        return Err(stored_ok.err().map(ApiError::from).unwrap_or_else(|| ApiError::not_found("No such instance")));
    }
    if let (true, Some(old)) = (rehook, current_hooks) {
        let mut before = defaults(&def);
        before.extend(stored.clone());
        webhooks::remove(&state.engine, &def, &before, Some(row.id), &old.hooks).await;
    }
    if pair.is_some() {
        state.engine.store.clear_refresh_refusal(row.id).await?;
    }
    if checked && !row.valid {
        // Credentials the vendor accepted again: the callback hears it, as it heard
        // the instance turn invalid.
        state.engine.announce_health(row.id, true, None).await;
    }
    state.engine.instances.forget_instance(row.id);
    state.poll_schedule.changed(row.id);
    let row = owned(state, caller, Some(row.id)).await?;
    Ok(Json(instance_view(state, caller, &row).await?))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ConfigurationValueBody {
    #[schema(value_type = String)]
    property_value: Value,
}

/// `PATCH /instances/{id}/configuration/{configId}`: one value, checked as a
/// `PATCH` of the instance carrying it would be.
#[utoipa::path(patch, path = "/instances/{id}/configuration/{configId}", operation_id = "updateInstanceConfiguration", tag = "instances", request_body = ConfigurationValueBody,
    params(("id" = i64, Path), ("configId" = i64, Path)),
    responses((status = 200, body = ConfigurationView), (status = 400, description = "Bad input (or `{id}`, `{configId}` not whole numbers); nothing was written", body = crate::error::ErrorBody), (status = 401, body = crate::error::ErrorBody), (status = 404, description = "No such instance (or another organization's)", body = crate::error::ErrorBody), (status = 415, description = "The body is not sent as Content-Type: application/json", body = crate::error::ErrorBody)))]
pub async fn patch_configuration(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path((id, config_id)): Path<(i64, i64)>,
    JsonBody(body): JsonBody<ConfigurationValueBody>,
) -> Result<Json<ConfigurationView>, ApiError> {
    let row = owned(&state, &caller, Some(id)).await?;
    let key = state
        .engine
        .store
        .configuration(row.id)
        .await?
        .into_iter()
        .find(|c| c.id == config_id)
        .map(|c| c.key)
        .ok_or_else(|| ApiError::not_found(format!("Instance {id} has no configuration {config_id}")))?;
    let mut configuration = Map::new();
    configuration.insert(key.clone(), body.property_value);
    let body = InstanceBody { configuration: Some(configuration), ..InstanceBody::default() };
    let _updated = update(&state, &caller, Some(row.id), body, UpdateMode::Merge).await?;
    let c = state
        .engine
        .store
        .configuration(row.id)
        .await?
        .into_iter()
        .find(|c| c.key == key)
        .ok_or_else(|| ApiError::internal("configuration row vanished"))?;
    Ok(Json(ConfigurationView::from(&c)))
}
