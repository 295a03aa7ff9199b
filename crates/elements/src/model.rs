//! The definition file, as Rust types. Field names are the YAML keys (camelCase).

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

/// One element: a connector to one vendor API.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ElementDefinition {
    /// Stable key used in URLs and instance bodies (`bigcommerce`).
    pub key: String,
    /// Cloud Elements' numeric id, kept so existing clients keep working.
    pub id: i64,
    pub name: String,
    #[serde(default)]
    pub description: String,
    /// The hub whose paths this element serves (`ecommerce`, `crm`, ...).
    pub hub: String,
    pub authentication: Authentication,
    pub protocol: Protocol,
    /// How calls are framed when `protocol` is `xml-rpc`.
    #[serde(default)]
    pub xml_rpc: Option<XmlRpc>,
    /// The vendor's record key. When it is not `id` (Keap's `Id`), the engine adds
    /// `id` beside it in every record it answers, as Cloud Elements did.
    #[serde(default = "default_id_field")]
    pub id_field: String,
    /// Template of the vendor base URL, e.g. `{store.url}`.
    pub base_url: String,
    /// Named vendor quirks the engine applies (see [`Behaviour`]).
    #[serde(default)]
    pub behaviours: Vec<Behaviour>,
    pub configuration: Vec<ConfigParameter>,
    /// Where a person finds each credential at the vendor: one guide per
    /// configuration key (elements/README.md, "Setup guides").
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub setup: Vec<SetupGuide>,
    /// The cheap vendor call that proves the credentials work.
    pub check: VendorCall,
    pub paging: Paging,
    pub resources: Vec<Resource>,
    /// Record models by name: field path -> type. A resource naming a model
    /// gets typed CEQL checks, `fields` validation and vendor filter translation.
    #[serde(default)]
    pub models: BTreeMap<String, Model>,
    #[serde(default)]
    pub events: EventsSupport,
    /// More vendor base URLs, by name: templates like `baseUrl` (`v3:
    /// "{store.url|parent}/v3"`), for resources and webhooks that live beside the
    /// main API (see `Resource::base`, `Webhooks::base`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub base_urls: BTreeMap<String, String>,
    /// The key of the built-in element this file stands in for (it must be this
    /// file's own `key`). A file loaded from a directory whose `key` or `id` is a
    /// built-in element's is refused without it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replaces: Option<String>,
    /// How the vendor says "slow down" and for how long; absent: [`Throttle::default`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub throttle: Option<Throttle>,
    /// The resources' hub paths split into segments, compiled on first use.
    #[serde(skip)]
    pub(crate) routes: std::sync::OnceLock<Vec<crate::route::RoutePattern>>,
}

/// A record's fields and their types, as the vendor sends them. In the file a
/// type with a trailing `?` (`external_id: string?`) marks a field the vendor may
/// send as `null`; the element's docs then allow `null` there.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Model {
    fields: BTreeMap<String, FieldType>,
    nullable: BTreeSet<String>,
}

impl Model {
    pub fn get(&self, field: &str) -> Option<&FieldType> {
        self.fields.get(field)
    }

    pub fn contains_key(&self, field: &str) -> bool {
        self.fields.contains_key(field)
    }

    pub fn keys(&self) -> impl Iterator<Item = &String> {
        self.fields.keys()
    }

    pub fn iter(&self) -> impl Iterator<Item = (&String, &FieldType)> {
        self.fields.iter()
    }

    /// Whether the vendor may send `null` for this field (declared `type?`).
    pub fn is_nullable(&self, field: &str) -> bool {
        self.nullable.contains(field)
    }
}

impl<'de> Deserialize<'de> for Model {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let declared = BTreeMap::<String, String>::deserialize(deserializer)?;
        let mut model = Model::default();
        for (field, text) in declared {
            let (kind, nullable) = match text.strip_suffix('?') {
                Some(kind) => (kind, true),
                None => (text.as_str(), false),
            };
            let kind = FieldType::deserialize(serde::de::value::StrDeserializer::<D::Error>::new(kind))
                .map_err(|e| serde::de::Error::custom(format!("field '{field}': {e}")))?;
            if nullable {
                model.nullable.insert(field.clone());
            }
            model.fields.insert(field, kind);
        }
        Ok(model)
    }
}

impl Serialize for Model {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = serializer.serialize_map(Some(self.fields.len()))?;
        for (field, kind) in &self.fields {
            let mark = if self.is_nullable(field) { "?" } else { "" };
            map.serialize_entry(field, &format!("{}{mark}", kind.as_str()))?;
        }
        map.end()
    }
}

/// The type of a record field, as the vendor writes it in JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FieldType {
    Integer,
    /// A decimal; BigCommerce sends money as a string (`"336.3200"`, see `decimal-strings`).
    Decimal,
    String,
    Boolean,
    /// A date and time; BigCommerce v2 writes RFC 2822 (see `rfc2822-dates`).
    Date,
    /// A nested object; its sub-fields (`billing_address.email`) are untyped.
    Object,
    Array,
    /// A reference to another vendor resource, `{"url": ..., "resource": ...}` (see `link-objects`).
    Link,
}

impl FieldType {
    pub fn as_str(self) -> &'static str {
        match self {
            FieldType::Integer => "integer",
            FieldType::Decimal => "decimal",
            FieldType::String => "string",
            FieldType::Boolean => "boolean",
            FieldType::Date => "date",
            FieldType::Object => "object",
            FieldType::Array => "array",
            FieldType::Link => "link",
        }
    }

    /// Whether values of this type are ordered (`<`, `>`, vendor `min_`/`max_`).
    pub fn is_ordered(self) -> bool {
        matches!(self, FieldType::Integer | FieldType::Decimal | FieldType::Date)
    }

    /// Whether values of this type are single values (`=`, `IN`).
    pub fn is_scalar(self) -> bool {
        !matches!(self, FieldType::Object | FieldType::Array | FieldType::Link)
    }
}

/// How the engine authenticates to the vendor. Values are templates over the
/// instance configuration (`{password}`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
pub enum Authentication {
    /// HTTP Basic with the rendered user name and password.
    Basic { username: String, password: String },
    /// Rendered request headers (BigCommerce token mode: `X-Auth-Client`, `X-Auth-Token`)
    /// and query parameters (an API key sent as `?api_key=...`). Query values never
    /// reach the call log, the server log or an error message. Cloud Elements calls
    /// this scheme `custom`.
    #[serde(rename = "custom")]
    Headers {
        #[serde(default)]
        headers: BTreeMap<String, String>,
        #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
        query: BTreeMap<String, String>,
    },
    /// `Authorization: Bearer <rendered token>`: a personal or app token the vendor
    /// issued once (no OAuth flow).
    Bearer { token: String },
    /// One of several schemes, picked per instance by a configuration key
    /// (BigCommerce's `authentication.type`: `basic` or `custom`). A mode is
    /// `basic`, `custom` or `bearer`; OAuth 2.0 elements have one scheme.
    Choice(AuthChoice),
    /// OAuth 2.0 authorization code grant with refresh tokens. The access token is
    /// sent as `Authorization: Bearer`; tokens live in the instance configuration
    /// (`oauth.user.token`, `oauth.user.refresh_token`, `oauth.user.refresh_time`,
    /// `oauth.user.refresh_interval`), written only by the engine.
    #[serde(rename = "oauth2", rename_all = "camelCase")]
    OAuth2(OAuth2),
}

/// Schemes picked per instance by the value of a configuration key.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AuthChoice {
    /// The configuration key whose value names the mode (its default applies when unset).
    pub key: String,
    /// Mode name -> scheme.
    pub modes: BTreeMap<String, Authentication>,
}

/// An OAuth 2.0 client, as templates over the instance configuration.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OAuth2 {
    /// The vendor's authorize page (`{oauth.authorization.url}`).
    pub authorization_url: String,
    /// The token endpoint, for the code exchange and refreshes (`{oauth.token.url}`).
    pub token_url: String,
    /// The app's client id (`{oauth.api.key}`).
    pub client_id: String,
    /// The app's client secret (`{oauth.api.secret}`).
    pub client_secret: String,
    /// The redirect URI registered with the app (`{oauth.callback.url}`).
    pub callback_url: String,
    /// The scope asked for when the caller names none.
    #[serde(default)]
    pub scope: String,
    /// How refreshes present the client: `client_secret_basic` (HTTP Basic, RFC
    /// 6749's preferred way and Keap's documented one; the default) or
    /// `client_secret_post` (`client_id`/`client_secret` form fields). `basic` and
    /// `form` are the older spellings.
    #[serde(default)]
    pub refresh_auth: ClientAuth,
    /// How the code exchange presents the client; default `client_secret_post`
    /// (Keap documents the form fields for the exchange).
    #[serde(default = "ClientAuth::post", skip_serializing_if = "ClientAuth::is_post")]
    pub exchange_auth: ClientAuth,
}

/// How the client authenticates at the token endpoint (RFC 6749 2.3.1; the names
/// are OpenID Connect's `token_endpoint_auth_method` values).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum ClientAuth {
    /// `Authorization: Basic base64(client_id:client_secret)`.
    #[default]
    #[serde(rename = "client_secret_basic", alias = "basic")]
    Basic,
    /// `client_id` and `client_secret` in the form body.
    #[serde(rename = "client_secret_post", alias = "form")]
    Form,
}

impl ClientAuth {
    fn post() -> ClientAuth {
        ClientAuth::Form
    }

    fn is_post(&self) -> bool {
        *self == ClientAuth::Form
    }
}

impl Authentication {
    /// The Cloud Elements name of the scheme, as shown in `authentication.type`;
    /// a choice shows its first mode's.
    pub fn type_name(&self) -> &str {
        match self {
            Authentication::Basic { .. } => "basic",
            Authentication::Headers { .. } => "custom",
            Authentication::Bearer { .. } => "bearer",
            Authentication::OAuth2(_) => "oauth2",
            Authentication::Choice(c) => c.modes.values().next().map_or("basic", Authentication::type_name),
        }
    }

    /// The OAuth 2.0 client, for elements that use it.
    pub fn oauth2(&self) -> Option<&OAuth2> {
        match self {
            Authentication::OAuth2(o) => Some(o),
            _ => None,
        }
    }

    /// The scheme an instance uses: a choice resolved by `mode_of` (the value of
    /// its key for the instance, defaults applied); `None` names no known mode.
    pub fn resolve<'a>(&'a self, mode_of: impl FnOnce(&str) -> Option<&'a str>) -> Option<&'a Authentication> {
        match self {
            Authentication::Choice(c) => {
                let mode = mode_of(&c.key)?;
                c.modes.get(mode)
            }
            other => Some(other),
        }
    }

    /// The configuration keys this scheme renders (every mode's, for a choice).
    pub fn templates(&self) -> Vec<(String, &str)> {
        match self {
            Authentication::Basic { username, password } => {
                vec![("username".into(), username.as_str()), ("password".into(), password.as_str())]
            }
            Authentication::Headers { headers, query } => headers
                .iter()
                .map(|(k, v)| (format!("headers.{k}"), v.as_str()))
                .chain(query.iter().map(|(k, v)| (format!("query.{k}"), v.as_str())))
                .collect(),
            Authentication::Bearer { token } => vec![("token".into(), token.as_str())],
            Authentication::OAuth2(o) => vec![
                ("authorizationUrl".into(), o.authorization_url.as_str()),
                ("tokenUrl".into(), o.token_url.as_str()),
                ("clientId".into(), o.client_id.as_str()),
                ("clientSecret".into(), o.client_secret.as_str()),
                ("callbackUrl".into(), o.callback_url.as_str()),
            ],
            Authentication::Choice(c) => c
                .modes
                .iter()
                .flat_map(|(mode, a)| a.templates().into_iter().map(move |(what, t)| (format!("modes.{mode}.{what}"), t)))
                .collect(),
        }
    }
}

/// How hub operations become vendor calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Protocol {
    /// REST with JSON bodies: resources name vendor paths, operations HTTP methods.
    RestJson,
    /// XML-RPC over `POST {baseUrl}{xmlRpc.endpoint}`: resources name tables of a
    /// data service (Keap's `DataService`), operations its methods.
    XmlRpc,
}

/// The framing of an `xml-rpc` element's calls.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct XmlRpc {
    /// Path of the endpoint under the base URL (`/xmlrpc/v1`).
    pub endpoint: String,
    /// Template of the first parameter of every call (Keap's private key,
    /// `{infusionsoft.private.key}`); absent: calls start with their own parameters.
    #[serde(default)]
    pub key: Option<String>,
    /// The service whose methods the operations call (`DataService`):
    /// list `query`, get `load`, create `add` then `load`, update `update` then
    /// `load`, delete `delete`, count `count`.
    pub service: String,
    /// Hub status by fault kind, the `[Kind]` that starts a fault string
    /// (`[RecordNotFound]Record not found`). Other faults are 502s; the fault
    /// string is always the `providerMessage`.
    #[serde(default)]
    pub faults: BTreeMap<String, u16>,
    /// The call that reads the account's time zone (an IANA name), when the vendor
    /// writes dates as the account's local time without an offset: Keap's
    /// `DataService.getAppSetting("Application", "timezone")` (providers.md).
    /// Read once per instance and again after re-authorization.
    #[serde(default)]
    pub timezone: Option<RpcCall>,
}

/// One XML-RPC call with fixed string parameters (after the element's key).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RpcCall {
    pub method: String,
    #[serde(default)]
    pub params: Vec<String>,
}

/// A vendor quirk with a name. Each one is implemented once in the engine, by
/// this name, and opted into by definitions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Behaviour {
    /// A list answered with 204 and no body is an empty list (BigCommerce v2).
    #[serde(rename = "empty-list-is-204")]
    EmptyListIs204,
    /// The vendor writes and reads dates as RFC 2822 (`Wed, 10 Jan 2018 21:05:30 +0000`):
    /// date bounds sent as filters, and `date` fields of write bodies given in
    /// another format, are rewritten to RFC 2822.
    #[serde(rename = "rfc2822-dates")]
    Rfc2822Dates,
    /// The vendor keeps decimals as strings (`"336.3200"`): `decimal` fields compare
    /// numerically in CEQL, and JSON numbers in write bodies are sent as strings.
    DecimalStrings,
    /// The vendor links related resources with `{"url", "resource"}` objects. They
    /// are read-only references: removed from write bodies, so an object read from
    /// the hub can be sent back; in CEQL only `IS [NOT] NULL` and their sub-fields apply.
    LinkObjects,
}

/// A configuration parameter of the element, as Cloud Elements lists it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ConfigParameter {
    pub key: String,
    /// The UI label.
    pub name: String,
    #[serde(rename = "type")]
    pub kind: ParameterType,
    #[serde(default)]
    pub required: bool,
    #[serde(default)]
    pub default_value: Option<String>,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub hide_from_console: bool,
    /// What a well-formed value looks like; checked at instance creation.
    #[serde(default)]
    pub format: Option<ValueFormat>,
    /// The allowed values of a `COMBO`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub options: Vec<String>,
}

/// How a person finds the value of one configuration key at the vendor, in
/// the element file's own words (`setup: [{key, steps, link}]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SetupGuide {
    /// The configuration key the steps lead to (`password`).
    pub key: String,
    /// What to do, in order: one short sentence each, plain text.
    pub steps: Vec<String>,
    /// The vendor's page these steps follow: an absolute https URL.
    pub link: String,
}

impl ElementDefinition {
    /// The setup guide of `key`, if the file gives one.
    pub fn setup_of(&self, key: &str) -> Option<&SetupGuide> {
        self.setup.iter().find(|g| g.key == key)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ParameterType {
    #[serde(rename = "TEXTFIELD_32")]
    Textfield32,
    #[serde(rename = "TEXTFIELD_64")]
    Textfield64,
    #[serde(rename = "TEXTFIELD_128")]
    Textfield128,
    #[serde(rename = "TEXTFIELD_1000")]
    Textfield1000,
    Textarea,
    Password,
    Boolean,
    Combo,
}

impl ParameterType {
    /// The longest value the type holds, in characters, where it has a limit.
    pub fn max_len(self) -> Option<usize> {
        match self {
            ParameterType::Textfield32 => Some(32),
            ParameterType::Textfield64 => Some(64),
            ParameterType::Textfield128 => Some(128),
            ParameterType::Textfield1000 => Some(1000),
            ParameterType::Textarea | ParameterType::Password => Some(64 * 1024),
            ParameterType::Boolean | ParameterType::Combo => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ValueFormat {
    /// An absolute http(s) URL; also checked against the outbound policy when
    /// the engine calls it.
    Url,
    /// A number (integer or decimal).
    Number,
    /// A JSON document.
    Json,
}

/// One call to the vendor, relative to the base URL. For `xml-rpc` elements
/// `method` is the XML-RPC method (`DataService.echo`) and `path` is unused.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct VendorCall {
    pub method: String,
    #[serde(default)]
    pub path: String,
}

/// How the vendor pages lists. Chosen per element (`paging`) and, where one
/// resource pages otherwise, per resource (`resources[].paging`). Pointers
/// (`cursorPointer`, `nextPointer`, `hasMorePointer`) are dotted keys
/// (`paging.next.after`) or JSON pointers (`/paging/next/after`), see [`crate::Pointer`].
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "style", rename_all = "lowercase", deny_unknown_fields)]
pub enum Paging {
    /// `?{pageParam}=N&{sizeParam}=M`, pages counted from `firstPage`.
    #[serde(rename_all = "camelCase")]
    Page {
        page_param: String,
        size_param: String,
        first_page: u64,
        max_page_size: u64,
    },
    /// `?{offsetParam}=N&{sizeParam}=M`, N the index of the first record (from 0).
    #[serde(rename_all = "camelCase")]
    Offset {
        offset_param: String,
        size_param: String,
        max_page_size: u64,
    },
    /// The next page's cursor is in the answer's body at `cursorPointer` and goes
    /// back as the query parameter `cursorParam` (or `{cursor}` in a search body).
    /// No cursor (absent, `null` or `""`), or `false` at `hasMorePointer`, ends the list.
    #[serde(rename_all = "camelCase")]
    Cursor {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        cursor_param: Option<String>,
        cursor_pointer: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        has_more_pointer: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        size_param: Option<String>,
        max_page_size: u64,
    },
    /// The next page's URL is in the answer's body at `nextPointer` (absolute, or
    /// relative to the page's URL); the engine GETs it as it is. It must stay on
    /// the base URL's scheme, host and port.
    #[serde(rename = "next-url", rename_all = "camelCase")]
    NextUrl {
        next_pointer: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        has_more_pointer: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        size_param: Option<String>,
        max_page_size: u64,
    },
    /// The next page's URL is the `Link` header's `rel="next"` (RFC 8288), with
    /// the same rules as `next-url`.
    #[serde(rename = "link-header", rename_all = "camelCase")]
    LinkHeader {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        size_param: Option<String>,
        max_page_size: u64,
    },
    /// The vendor does not page the list: one call answers all of it, and the hub
    /// pages it (BigCommerce's `/order_statuses` takes no parameters,
    /// orders.v2.oas2.yml). `maxPageSize` bounds the hub's `pageSize` only.
    #[serde(rename = "none", rename_all = "camelCase")]
    Whole { max_page_size: u64 },
}

impl Paging {
    pub fn max_page_size(&self) -> u64 {
        match self {
            Paging::Page { max_page_size, .. }
            | Paging::Offset { max_page_size, .. }
            | Paging::Cursor { max_page_size, .. }
            | Paging::NextUrl { max_page_size, .. }
            | Paging::LinkHeader { max_page_size, .. }
            | Paging::Whole { max_page_size } => *max_page_size,
        }
    }

    /// The style's name, as written in the file.
    pub fn style(&self) -> &'static str {
        match self {
            Paging::Page { .. } => "page",
            Paging::Offset { .. } => "offset",
            Paging::Cursor { .. } => "cursor",
            Paging::NextUrl { .. } => "next-url",
            Paging::LinkHeader { .. } => "link-header",
            Paging::Whole { .. } => "none",
        }
    }

    /// The query parameter that sets the page size, where the style has one.
    pub fn size_param(&self) -> Option<&str> {
        match self {
            Paging::Page { size_param, .. } | Paging::Offset { size_param, .. } => Some(size_param),
            Paging::Cursor { size_param, .. } | Paging::NextUrl { size_param, .. } | Paging::LinkHeader { size_param, .. } => {
                size_param.as_deref()
            }
            Paging::Whole { .. } => None,
        }
    }

    /// Whether a page is reached only from the one before it (cursor, next-url,
    /// link-header; an unpaged list is its own only page), rather than by its
    /// number or first record's index.
    pub fn is_sequential(&self) -> bool {
        matches!(self, Paging::Cursor { .. } | Paging::NextUrl { .. } | Paging::LinkHeader { .. } | Paging::Whole { .. })
    }
}

/// A list read as a search: the list's vendor call is a `POST` (usually) whose
/// JSON body is `body`, in which whole-string placeholders are replaced:
/// `"{filters}"` by the array of the `where` clauses the vendor filters (each one
/// `filter` with `"{param}"`, `"{operator}"` and `"{value}"` replaced), `"{limit}"`
/// and `"{offset}"`/`"{page}"` by numbers, `"{cursor}"` by the cursor (the member
/// is left out on the first page). HubSpot's CRM search has this shape.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Search {
    #[serde(default = "default_search_method")]
    pub method: String,
    /// Vendor path template (same `{name}` parameters as the hub path); absent: `vendorPath`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    pub body: serde_json::Value,
    /// One vendor filter, rendered once per clause into `"{filters}"`.
    pub filter: serde_json::Value,
    /// The vendor's operator for each kind of `where` parameter.
    pub operators: SearchOperators,
    /// The name `"{param}"` renders for a `where` parameter, where it is not the
    /// parameter's own (HubSpot bounds a date by one property from both sides:
    /// `{createdate_min: createdate, createdate_max: createdate}`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub names: BTreeMap<String, String>,
}

/// `{eq: EQ, min: GTE, max: LTE}`: how a search names `=`, the inclusive lower
/// bound and the inclusive upper bound.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SearchOperators {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eq: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<String>,
}

fn default_search_method() -> String {
    "POST".to_owned()
}

/// A count read from its own vendor call: `GET {path}` (a template with the hub
/// path's parameters), the number at `pointer` in the answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CountCall {
    pub path: String,
    pub pointer: String,
    /// The vendor parameters of `where` the count call takes (Zendesk's ticket count
    /// takes none: `[]`); absent: all of them. A count whose `where` needs another
    /// one is a 400, not the vendor's unfiltered number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filters: Option<Vec<String>>,
}

/// A vendor's throttle dialect: the answers that mean "slow down" and the headers
/// that say for how long. The engine reads them into one "wait until", pauses the
/// instance for it and answers callers 429 with `Retry-After` when the wait is longer
/// than their budget (docs/choices.md, "Vendor throttling").
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Throttle {
    /// Statuses that mean "slow down, nothing was done" (BigCommerce legacy stores: 509).
    /// 429 always does, listed or not.
    #[serde(default = "default_throttle_statuses")]
    pub statuses: Vec<u16>,
    /// Headers naming the wait before the next call, read on a throttled answer.
    #[serde(default)]
    pub retry_after: Vec<WaitHeader>,
    /// Quotas the vendor reports: a "remaining" header, and when it is 0, the wait.
    #[serde(default)]
    pub limits: Vec<RateLimit>,
    /// The vendor's documented window, in seconds: the wait when a throttled answer
    /// names none (no header, or none that could be read).
    #[serde(default = "default_throttle_window")]
    pub window_seconds: u64,
}

/// One header that names a wait, and how its value is written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WaitHeader {
    /// The header name (case does not matter).
    pub header: String,
    pub unit: WaitUnit,
}

/// How a wait header writes its value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum WaitUnit {
    /// A number of seconds from now (`Retry-After: 15`, fractions allowed).
    Seconds,
    /// A number of milliseconds from now (BigCommerce's `X-Rate-Limit-Time-Reset-Ms`).
    Milliseconds,
    /// The instant it ends, in seconds since 1970 (UTC).
    EpochSeconds,
    /// The instant it ends, in milliseconds since 1970 (Keap's `x-keap-product-quota-expiry-time`).
    EpochMilliseconds,
    /// The instant it ends as an HTTP date (`Retry-After: Wed, 21 Oct 2026 07:28:00 GMT`).
    HttpDate,
}

/// A quota the vendor reports on its answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RateLimit {
    /// The header counting the calls left; `0` means used up (the next call would be throttled).
    pub remaining: String,
    /// The header naming when the quota refills.
    #[serde(default)]
    pub reset: Option<WaitHeader>,
    /// The quota's documented window in seconds: the wait once it is used up and
    /// `reset` is absent or unreadable. Absent: the element's `windowSeconds` on a
    /// throttled answer, no pause on another.
    #[serde(default)]
    pub window_seconds: Option<u64>,
}

fn default_throttle_statuses() -> Vec<u16> {
    vec![429]
}

fn default_throttle_window() -> u64 {
    60
}

impl Default for Throttle {
    /// For an element that declares no dialect: 429, `Retry-After` (seconds or an
    /// HTTP date), `X-Retry-After`, and BigCommerce's `X-Rate-Limit-Requests-Left` /
    /// `X-Rate-Limit-Time-Reset-Ms` (what the engine read before dialects were
    /// declared), with a 60 s window.
    fn default() -> Self {
        let wait = |header: &str, unit| WaitHeader { header: header.to_owned(), unit };
        Throttle {
            statuses: default_throttle_statuses(),
            retry_after: vec![
                wait("X-Retry-After", WaitUnit::Seconds),
                wait("Retry-After", WaitUnit::Seconds),
                wait("Retry-After", WaitUnit::HttpDate),
            ],
            limits: vec![RateLimit {
                remaining: "X-Rate-Limit-Requests-Left".to_owned(),
                reset: Some(wait("X-Rate-Limit-Time-Reset-Ms", WaitUnit::Milliseconds)),
                window_seconds: None,
            }],
            window_seconds: default_throttle_window(),
        }
    }
}

impl Throttle {
    /// Whether an answer with `status` means "slow down" (429 always does).
    pub fn is_throttle(&self, status: u16) -> bool {
        status == 429 || self.statuses.contains(&status)
    }
}

/// One hub resource and the vendor calls behind it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Resource {
    /// Hub path under `/hubs/{hub}`; `{name}` segments capture path parameters.
    pub path: String,
    /// Vendor path under the base URL, using the same `{name}` parameters
    /// (`rest-json` elements).
    #[serde(default)]
    pub vendor_path: String,
    /// The table behind the resource (`xml-rpc` elements: Keap's `Contact`).
    #[serde(default)]
    pub table: Option<String>,
    /// Field values that make a record part of this resource (`ObjectType: Note`
    /// for notes in `ContactAction`): added to every query, written into every
    /// create, and checked on every record read by id (another one is a 404).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub fixed: BTreeMap<String, String>,
    /// The XML-RPC method a `read` operation calls (`DataService.echo` for ping).
    #[serde(default)]
    pub rpc_method: Option<String>,
    pub operations: Vec<Operation>,
    #[serde(default)]
    pub description: String,
    /// Vendor method used for a hub `PATCH` (vendors without PATCH take `PUT`).
    #[serde(default = "default_update_method")]
    pub update_method: String,
    /// Dotted path of the records array in a list answer; absent: the body is the array.
    #[serde(default)]
    pub records_path: Option<String>,
    /// Name of the record model in `models` (absent: fields are untyped and any
    /// field name is accepted in CEQL and `fields`).
    #[serde(default)]
    pub model: Option<String>,
    /// CEQL -> vendor query parameters, by record field (see `elements/README.md`).
    #[serde(default, rename = "where")]
    pub where_map: BTreeMap<String, VendorFilter>,
    /// How `orderBy` maps to the vendor's sort parameter; absent: `orderBy` is a 400.
    #[serde(default)]
    pub order_by: Option<VendorSort>,
    /// Vendor path of one record (get, update, delete), a template over the path's
    /// parameters and `{id}` (`/orders/{id}.json`); absent: `vendorPath/{id}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub item_path: Option<String>,
    /// Dotted path of the record in get, create and update answers (`order` for
    /// `{"order": {...}}`, `data`); absent: the answer is the record.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub record_path: Option<String>,
    /// Dotted path the record is placed at in create and update bodies (`order`
    /// sends `{"order": {...}}`, `properties` sends `{"properties": {...}}`);
    /// absent: the body is the record.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body_path: Option<String>,
    /// The name of another base URL (under the element's `baseUrls`) the resource's
    /// vendor paths are appended to; absent: `baseUrl`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base: Option<String>,
    /// This resource's paging, where it differs from the element's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paging: Option<Paging>,
    /// Query parameters sent with every list (and count) call (`status: any`); a
    /// vendor filter of the same name from `where` replaces the value.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub query: BTreeMap<String, String>,
    /// The list is a search with a JSON body (see [`Search`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub search: Option<Search>,
    /// Where a list answer says how many records match the list's filters
    /// (`meta.count`): `Elements-Total-Count`, and the count when `count` lacks a `path`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_pointer: Option<String>,
    /// The count's own vendor call; absent: the `totalPointer` of a one-record list,
    /// or (neither declared) `GET {vendorPath}/count` answered as it is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<CountCall>,
}

/// The vendor query parameters that filter one record field.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct VendorFilter {
    /// Parameter for `field = value`.
    #[serde(default)]
    pub eq: Option<String>,
    /// Parameter for an inclusive lower bound (`>=`; `>` on integers is `+1`).
    #[serde(default)]
    pub min: Option<String>,
    /// Parameter for an inclusive upper bound.
    #[serde(default)]
    pub max: Option<String>,
    /// The vendor's match is looser than CEQL's (e.g. case-insensitive): the engine
    /// checks the clause again on every record the vendor returns.
    #[serde(default)]
    pub recheck: bool,
}

impl VendorFilter {
    /// The parameter names, for validation and the pass-through form.
    pub fn params(&self) -> impl Iterator<Item = &str> {
        [&self.eq, &self.min, &self.max].into_iter().flatten().map(String::as_str)
    }
}

/// The vendor's sort parameter: `{param}={field}{separator}{asc|desc}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct VendorSort {
    /// Query parameter name (`sort`).
    pub param: String,
    /// Between the field and the direction (`:` gives `date_created:desc`).
    pub separator: String,
    /// Record fields the vendor sorts by.
    pub fields: Vec<String>,
}

fn default_update_method() -> String {
    "PUT".to_owned()
}

fn default_id_field() -> String {
    "id".to_owned()
}

impl Resource {
    pub fn supports(&self, op: Operation) -> bool {
        self.operations.contains(&op)
    }

    /// The resource's short name: its last literal path segment (`orders`, `groups`).
    pub fn name(&self) -> &str {
        self.path
            .rsplit('/')
            .find(|s| !s.is_empty() && !s.starts_with('{'))
            .unwrap_or("")
    }
}

/// What a hub caller can do with a resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Operation {
    /// `GET path` -> array.
    List,
    /// `POST path` -> created object.
    Create,
    /// `GET path/{id}`.
    Get,
    /// `PATCH path/{id}` -> vendor `updateMethod`.
    Update,
    /// `DELETE path/{id}`.
    Delete,
    /// `GET path/count` -> `{"count": N}`.
    Count,
    /// `GET path` -> the vendor's object as is (ping, store information).
    Read,
}

impl Operation {
    /// The hub method and the suffix appended to the resource path.
    pub fn hub_shape(self) -> (&'static str, &'static str) {
        match self {
            Operation::List => ("GET", ""),
            Operation::Create => ("POST", ""),
            Operation::Get => ("GET", "/{id}"),
            Operation::Update => ("PATCH", "/{id}"),
            Operation::Delete => ("DELETE", "/{id}"),
            Operation::Count => ("GET", "/count"),
            Operation::Read => ("GET", ""),
        }
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EventsSupport {
    #[serde(default)]
    pub supported: bool,
    #[serde(default)]
    pub methods: Vec<String>,
    /// How vendor webhooks are registered, removed and read, when the vendor has them.
    #[serde(default)]
    pub webhooks: Option<Webhooks>,
}

/// Vendor webhooks, as data: the calls that register and remove one hook per
/// watched hub resource, and where the vendor's calls carry what changed.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Webhooks {
    /// Configuration values an instance needs before it can register hooks
    /// (BigCommerce: `authentication.type: custom`, hooks exist in token mode only).
    #[serde(default)]
    pub requires: BTreeMap<String, String>,
    /// Registers one hook; its path is appended to the base URL (`base`).
    pub register: VendorCall,
    /// The registration body: JSON whose strings (keys too) are templates over
    /// `{scope}`, `{destination}`, `{secretHeader}` and `{secret}`.
    pub body: serde_json::Value,
    /// JSON pointer to the new hook's id in the vendor's answer.
    pub id_pointer: String,
    /// Removes one hook; `{id}` is its id.
    pub remove: VendorCall,
    /// Hub resource -> the vendor scope registered for it.
    pub objects: BTreeMap<String, String>,
    /// JSON pointers into the vendor's call: the scope and the changed object's id.
    pub scope_pointer: String,
    pub object_id_pointer: String,
    /// The scope's last segment (`created`, `statusUpdated`) -> CREATED, UPDATED or DELETED.
    pub event_types: BTreeMap<String, String>,
    /// JSON pointers into the vendor's call whose values together tell one call from
    /// another (BigCommerce: scope, record, time and store). A call whose values all
    /// equal an earlier call's within the dedupe window is that call again, sent twice
    /// by the vendor. Empty: every call is a new event.
    #[serde(default)]
    pub digest: Vec<String>,
    /// How registered hooks are checked now and then: a vendor that deactivates a hook
    /// after failed calls (BigCommerce does) would otherwise stop sending for good.
    #[serde(default)]
    pub check: Option<HookCheck>,
    /// The name of the base URL (under the element's `baseUrls`) every hook call's
    /// path is appended to (BigCommerce: `v3`, its hooks live beside the v2 API);
    /// absent: `baseUrl`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base: Option<String>,
}

/// Reading one hook (`{id}`), where its answer says whether it is active, and the
/// call that turns it back on.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HookCheck {
    pub read: VendorCall,
    /// JSON pointer to a boolean in the read's answer.
    pub active_pointer: String,
    pub reactivate: VendorCall,
    pub reactivate_body: serde_json::Value,
}

impl Webhooks {
    /// The hub resource a vendor scope belongs to: the object whose registered
    /// scope equals it or, for a wildcard (`store/order/*`), prefixes it.
    pub fn object_of(&self, scope: &str) -> Option<&str> {
        self.objects.iter().find_map(|(object, registered)| {
            let hit = match registered.strip_suffix('*') {
                Some(prefix) => scope.starts_with(prefix),
                None => scope == registered,
            };
            hit.then_some(object.as_str())
        })
    }

    /// CREATED, UPDATED or DELETED for a vendor scope, by its last segment.
    pub fn event_type_of(&self, scope: &str) -> Option<&str> {
        let last = scope.rsplit('/').next()?;
        self.event_types.get(last).map(String::as_str)
    }

    /// What identifies `call` among the vendor's calls: the values at the `digest`
    /// pointers, in order, each as text (a number and the string of its digits are
    /// one value, as the event's object id makes them), as one compact JSON array of
    /// strings. `None` when the element declares no digest or the call lacks one of
    /// the values (it cannot be told from another then, so it is never taken for a
    /// repeat).
    pub fn digest_of(&self, call: &serde_json::Value) -> Option<String> {
        if self.digest.is_empty() {
            return None;
        }
        let text = |v: &serde_json::Value| match v {
            serde_json::Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        let values: Option<Vec<String>> = self.digest.iter().map(|p| call.pointer(p).filter(|v| !v.is_null()).map(text)).collect();
        serde_json::to_string(&values?).ok()
    }
}

impl ElementDefinition {
    /// The element's throttle dialect, or the default one.
    pub fn throttle(&self) -> &Throttle {
        static DEFAULT: std::sync::OnceLock<Throttle> = std::sync::OnceLock::new();
        self.throttle.as_ref().unwrap_or_else(|| DEFAULT.get_or_init(Throttle::default))
    }

    /// How `resource` pages: its own paging, else the element's.
    pub fn paging_of<'a>(&'a self, resource: &'a Resource) -> &'a Paging {
        resource.paging.as_ref().unwrap_or(&self.paging)
    }

    /// The compiled route patterns (see `route.rs`).
    pub(crate) fn route_patterns(&self) -> &[crate::route::RoutePattern] {
        self.routes.get_or_init(|| crate::route::compile(&self.resources))
    }

    /// The vendor call behind one operation of `resource`, as element listings
    /// show it: `(method, path)`. REST: the HTTP method and vendor path; XML-RPC:
    /// the method (`DataService.query`) and the table.
    pub fn vendor_call(&self, resource: &Resource, op: Operation) -> (String, String) {
        match (self.protocol, &self.xml_rpc) {
            (Protocol::XmlRpc, Some(x)) => {
                let method = match op {
                    Operation::List => "query",
                    Operation::Create => "add",
                    Operation::Get => "load",
                    Operation::Update => "update",
                    Operation::Delete => "delete",
                    Operation::Count => "count",
                    Operation::Read => return (resource.rpc_method.clone().unwrap_or_default(), String::new()),
                };
                (format!("{}.{method}", x.service), resource.table.clone().unwrap_or_default())
            }
            _ => {
                let method = match op {
                    Operation::Create => "POST".to_owned(),
                    Operation::Update => resource.update_method.clone(),
                    Operation::Delete => "DELETE".to_owned(),
                    _ => "GET".to_owned(),
                };
                let suffix = op.hub_shape().1;
                match (&resource.item_path, op) {
                    (Some(item), Operation::Get | Operation::Update | Operation::Delete) => (method, item.clone()),
                    _ => (method, format!("{}{suffix}", resource.vendor_path)),
                }
            }
        }
    }

    /// The value a key has for an instance: given, else the element's default.
    pub fn effective<'a>(&'a self, config: &'a BTreeMap<String, String>, key: &str) -> Option<&'a str> {
        config
            .get(key)
            .map(String::as_str)
            .or_else(|| self.parameter(key).and_then(|p| p.default_value.as_deref()))
            .filter(|v| !v.is_empty())
    }

    /// The scheme an instance with this configuration uses; `None` when a choice's
    /// key names no mode.
    pub fn authentication_for<'a>(&'a self, config: &'a BTreeMap<String, String>) -> Option<&'a Authentication> {
        self.authentication.resolve(|key| self.effective(config, key))
    }

    /// The keys an instance with this configuration must have: those declared
    /// `required`, except credentials only other authentication modes use, plus
    /// every key the mode in use renders.
    pub fn required_keys(&self, config: &BTreeMap<String, String>) -> Vec<&str> {
        let Authentication::Choice(choice) = &self.authentication else {
            return self.configuration.iter().filter(|p| p.required).map(|p| p.key.as_str()).collect();
        };
        let keys_of = |a: &Authentication| -> Vec<String> {
            a.templates()
                .iter()
                .filter_map(|(_, t)| crate::Template::parse(t).ok())
                .flat_map(|t| t.placeholders().map(str::to_owned).collect::<Vec<_>>())
                .collect()
        };
        let of_any_mode: Vec<String> = choice.modes.values().flat_map(keys_of).collect();
        let of_this_mode: Vec<String> = self.authentication_for(config).map(keys_of).unwrap_or_default();
        self.configuration
            .iter()
            .filter(|p| {
                let credential = of_any_mode.contains(&p.key);
                (p.required && !credential) || of_this_mode.contains(&p.key)
            })
            .map(|p| p.key.as_str())
            .collect()
    }

    /// The keys a person enters to connect an instance, which `setup` should
    /// guide: in every authentication mode (each mode of a choice, or the one
    /// scheme), the keys [`Self::required_keys`] names for an instance in that
    /// mode, less those hidden from the console. In declaration order, each once.
    pub fn keys_to_enter(&self) -> Vec<&str> {
        let configs: Vec<BTreeMap<String, String>> = match &self.authentication {
            Authentication::Choice(c) => c.modes.keys().map(|mode| BTreeMap::from([(c.key.clone(), mode.clone())])).collect(),
            _ => vec![BTreeMap::new()],
        };
        let needed: BTreeSet<&str> = configs.iter().flat_map(|config| self.required_keys(config)).collect();
        self.configuration
            .iter()
            .filter(|p| needed.contains(p.key.as_str()) && !p.hide_from_console)
            .map(|p| p.key.as_str())
            .collect()
    }

    /// The base URL template of `name` (under `baseUrls`); `None` is `baseUrl`.
    pub fn base_url_of(&self, name: Option<&str>) -> Option<&str> {
        match name {
            None => Some(self.base_url.as_str()),
            Some(name) => self.base_urls.get(name).map(String::as_str),
        }
    }

    /// Whether a base URL template (`baseUrl` or one of `baseUrls`) renders `key`.
    pub fn is_base_url_key(&self, key: &str) -> bool {
        std::iter::once(&self.base_url)
            .chain(self.base_urls.values())
            .filter_map(|t| crate::Template::parse(t).ok())
            .any(|t| t.placeholders().any(|p| p == key))
    }

    pub fn parameter(&self, key: &str) -> Option<&ConfigParameter> {
        self.configuration.iter().find(|p| p.key == key)
    }

    /// True for values that must be encrypted at rest and masked in answers.
    pub fn is_secret(&self, key: &str) -> bool {
        is_always_secret(key)
            || self
                .parameter(key)
                .is_some_and(|p| p.kind == ParameterType::Password)
    }
}

/// Keys that hold credentials whatever an element declares about them.
pub fn is_always_secret(key: &str) -> bool {
    matches!(key, "oauth.user.token" | "oauth.user.refresh_token")
}
