//! Load-time checks of one definition: one [`Rule`] per field.
//!
//! A rule names the field it checks as the docs write it (`resources[].vendorPath`),
//! says what the field allows, and reports each fault with [`Found::refuse`] at the
//! concrete path (`resources[3].vendorPath`), which the catalog turns into the file's
//! line. The first fault of the first rule that finds one stops the load:
//!
//! ```text
//! shop.yaml:41: resources[3].vendorPath: '/orders?status=any' has a '?' or '#'; allowed: a path starting with '/' ...
//! ```
//!
//! **To check a new field, add a [`Rule`] to [`RULES`]** (next to the rules of its
//! neighbours); the helpers below ([`template`], [`method`], [`json_pointer`],
//! [`dotted_path`], [`header_name`], [`url_template`], [`one_of`]) give the usual
//! checks their usual words. A rule sees the whole definition, so it can compare
//! fields; it never sees other files (duplicate keys and ids are the catalog's).

use std::collections::{BTreeSet, HashSet};

use crate::model::{Authentication, ElementDefinition, FieldType, Operation, Protocol, Resource, ValueFormat};
use crate::template::Template;

/// The hubs an element may serve (Cloud Elements' hub names; `general` for the rest).
pub const HUBS: &[&str] = &["crm", "documents", "ecommerce", "finance", "general", "helpdesk", "marketing", "messaging", "payments"];

/// Placeholders the engine fills in webhook registration bodies.
const WEBHOOK_BODY_PLACEHOLDERS: &[&str] = &["scope", "destination", "secretHeader", "secret"];

/// A definition refused: the field (`resources[3].vendorPath`), what is wrong with
/// it, and what the field allows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub field: String,
    pub problem: String,
    pub allowed: String,
}

/// The check of one field.
pub(crate) struct Rule {
    /// The field as documented, `[]` standing for every index (`resources[].path`);
    /// the test that elements/README.md lists every checked field reads it.
    #[cfg_attr(not(test), allow(dead_code))]
    pub field: &'static str,
    /// What the field allows, in each refusal that does not say otherwise.
    pub allowed: &'static str,
    /// Reports every fault it finds in `def`.
    pub check: fn(&ElementDefinition, &mut Found),
}

/// The faults one rule found.
pub(crate) struct Found {
    allowed: &'static str,
    refusals: Vec<Refusal>,
}

impl Found {
    /// `field` (a concrete path, `resources[3].vendorPath`) is wrong: `problem`.
    pub(crate) fn refuse(&mut self, field: impl Into<String>, problem: impl Into<String>) {
        let allowed = self.allowed.to_owned();
        self.refuse_allowing(field, problem, allowed);
    }

    /// As [`Found::refuse`], with what is allowed said for this fault (a list
    /// that depends on the definition, such as its configuration keys).
    pub(crate) fn refuse_allowing(&mut self, field: impl Into<String>, problem: impl Into<String>, allowed: impl Into<String>) {
        self.refusals.push(Refusal { field: field.into(), problem: problem.into(), allowed: allowed.into() });
    }
}

/// The first fault of `def`, in the order of [`RULES`].
pub(crate) fn first_refusal(def: &ElementDefinition) -> Option<Refusal> {
    RULES.iter().find_map(|rule| {
        let mut found = Found { allowed: rule.allowed, refusals: Vec::new() };
        (rule.check)(def, &mut found);
        found.refusals.into_iter().next()
    })
}

/// Every load-time check, one per field. Order matters only for which of two
/// faults of one file is reported.
pub(crate) const RULES: &[Rule] = &[
    Rule {
        field: "key",
        allowed: "letters, digits, '-', '_' and '.' (it is a URL segment)",
        check: |def, f| {
            if def.key.is_empty() || !def.key.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b)) {
                f.refuse("key", format!("'{}' is not a usable element key", def.key));
            }
        },
    },
    Rule {
        field: "replaces",
        allowed: "this file's own key: a file stands in for the built-in element of the same key",
        check: |def, f| {
            if let Some(replaced) = def.replaces.as_deref().filter(|r| *r != def.key) {
                f.refuse("replaces", format!("'{replaced}' is not this file's key '{}'", def.key));
            }
        },
    },
    Rule {
        field: "hub",
        allowed: "one of crm, documents, ecommerce, finance, general, helpdesk, marketing, messaging, payments",
        check: |def, f| one_of(f, "hub", &def.hub, HUBS),
    },
    Rule {
        field: "configuration[].key",
        allowed: "a key declared once, not empty",
        check: |def, f| {
            let mut seen = HashSet::new();
            for (i, p) in def.configuration.iter().enumerate() {
                if p.key.is_empty() || !seen.insert(p.key.as_str()) {
                    f.refuse(format!("configuration[{i}].key"), format!("configuration key '{}' is empty or declared twice", p.key));
                }
            }
        },
    },
    Rule {
        field: "baseUrl",
        allowed: "an absolute http(s) URL without query or fragment, from placeholders naming configuration keys (`{store.url}`, `https://{shop}.example.com/api`)",
        check: |def, f| {
            if config_template(def, f, "baseUrl", &def.base_url) {
                url_template(def, f, "baseUrl", &def.base_url, false);
            }
        },
    },
    Rule {
        field: "authentication",
        allowed: "templates whose placeholders name configuration keys; OAuth 2.0 URLs that form absolute http(s) URLs; custom schemes naming headers or query parameters; a choice of basic, custom and bearer modes picked by a COMBO key",
        check: |def, f| {
            for (what, text) in def.authentication.templates() {
                let field = format!("authentication.{what}");
                if config_template(def, f, &field, text) && what.ends_with("Url") {
                    url_template(def, f, &field, text, true);
                }
            }
            if let Authentication::Headers { headers, .. } = &def.authentication {
                for name in headers.keys() {
                    header_name(f, &format!("authentication.headers[{name}]"), name);
                }
            }
            choice(def, f);
            placements(def, f);
        },
    },
    Rule {
        field: "baseUrls",
        allowed: "names that are not empty, each an absolute http(s) URL template as baseUrl (`{store.url|parent}/v3`)",
        check: |def, f| {
            for (name, text) in &def.base_urls {
                let field = format!("baseUrls.{name}");
                if name.trim().is_empty() {
                    f.refuse(&field, format!("'{name}' is not a name"));
                } else if config_template(def, f, &field, text) {
                    url_template(def, f, &field, text, false);
                }
            }
        },
    },
    Rule {
        field: "xmlRpc",
        allowed: "for xml-rpc elements: an endpoint starting with '/', a service, a key template naming a configuration key, faults mapped to error statuses",
        check: xml_rpc,
    },
    Rule {
        field: "xmlRpc.timezone",
        allowed: "a method name (Service.method) and plain string params, no placeholders",
        check: |def, f| {
            let Some(call) = def.xml_rpc.as_ref().and_then(|x| x.timezone.as_ref()) else { return };
            let named = call.method.split_once('.').is_some_and(|(service, method)| !service.is_empty() && !method.is_empty());
            if !named || call.method.contains(char::is_whitespace) {
                f.refuse("xmlRpc.timezone.method", format!("'{}' is not a method name such as DataService.getAppSetting", call.method));
            }
            for (i, p) in call.params.iter().enumerate() {
                if p.contains(['{', '}']) {
                    f.refuse(format!("xmlRpc.timezone.params[{i}]"), format!("'{p}' holds a placeholder"));
                }
            }
        },
    },
    Rule {
        field: "check",
        allowed: "rest-json: method GET, HEAD or POST and a path starting with '/', with no placeholders, '?' or '#'; xml-rpc: the method to call (DataService.echo)",
        check: |def, f| match def.protocol {
            Protocol::RestJson => {
                method(f, "check.method", &def.check.method, &["GET", "HEAD", "POST"]);
                fixed_path(f, "check.path", &def.check.path, &[], "no placeholders");
            }
            Protocol::XmlRpc => {
                if def.check.method.is_empty() {
                    f.refuse("check.method", "check.method names the XML-RPC method that proves the credentials");
                }
            }
        },
    },
    Rule {
        field: "paging",
        allowed: "a style of page, offset, cursor, next-url or link-header with its parameters (elements/README.md, \"Lists\"); xml-rpc elements page by page",
        check: |def, f| {
            if let Err(e) = crate::listing::validate_paging(&def.paging) {
                f.refuse("paging", e);
            } else if def.protocol == Protocol::XmlRpc && !matches!(def.paging, crate::Paging::Page { .. }) {
                f.refuse("paging.style", format!("xml-rpc elements page by 'page', not '{}'", def.paging.style()));
            }
        },
    },
    Rule {
        field: "resources[].path",
        allowed: "a hub path starting with '/', without '?' or '#', whose placeholders are whole segments named other than `id` (the record id the engine appends)",
        check: |def, f| {
            for (i, r) in def.resources.iter().enumerate() {
                let field = format!("resources[{i}].path");
                if !r.path.starts_with('/') || r.path.contains(['?', '#']) {
                    f.refuse(&field, format!("'{}' does not start with '/' or has a '?' or '#'", r.path));
                }
                if r.path.contains('|') {
                    f.refuse(&field, format!("'{}': a hub path's parameters take no filter ('|')", r.path));
                    continue;
                }
                if !template(f, &field, &r.path, |_| true, "") {
                    continue;
                }
                for segment in r.path.split('/') {
                    let whole = segment.starts_with('{') && segment.ends_with('}') && segment.matches('{').count() == 1;
                    if segment.contains('{') && !whole {
                        f.refuse(&field, format!("segment '{segment}' mixes a placeholder with text"));
                    } else if segment == "{id}" {
                        f.refuse(&field, "'{id}' is the record id the engine appends; name the parent's parameter otherwise ({customerId})");
                    }
                }
                if def.protocol == Protocol::XmlRpc && r.path.contains('{') {
                    f.refuse(&field, "xml-rpc resources have no path parameters");
                }
            }
        },
    },
    Rule {
        field: "resources[].vendorPath",
        allowed: "a vendor path starting with '/', without '?' or '#' (query parameters are the engine's), whose placeholders are the hub path's parameters",
        check: |def, f| {
            if def.protocol != Protocol::RestJson {
                return;
            }
            for (i, r) in def.resources.iter().enumerate() {
                let params: Vec<String> = Template::parse(&r.path).map(|t| t.placeholders().map(str::to_owned).collect()).unwrap_or_default();
                let names: Vec<&str> = params.iter().map(String::as_str).collect();
                let allowed = if names.is_empty() { "no placeholders (the path has no parameters)".to_owned() } else { format!("the path's parameters: {}", names.join(", ")) };
                fixed_path(f, &format!("resources[{i}].vendorPath"), &r.vendor_path, &names, &allowed);
            }
        },
    },
    Rule {
        field: "resources[].operations",
        allowed: "at least one of list, create, get, update, delete, count, read; not both read and list (they both answer GET)",
        check: |def, f| {
            for (i, r) in def.resources.iter().enumerate() {
                if r.operations.is_empty() {
                    f.refuse(format!("resources[{i}].operations"), format!("resource {}: no operations", r.path));
                } else if r.supports(Operation::Read) && r.supports(Operation::List) {
                    f.refuse(format!("resources[{i}].operations"), format!("resource {}: 'read' and 'list' both answer GET", r.path));
                }
            }
        },
    },
    Rule {
        field: "resources[].updateMethod",
        allowed: "PUT, PATCH or POST",
        check: |def, f| {
            for (i, r) in def.resources.iter().enumerate() {
                method(f, &format!("resources[{i}].updateMethod"), &r.update_method, &["PUT", "PATCH", "POST"]);
            }
        },
    },
    Rule {
        field: "resources[].recordsPath",
        allowed: "a dotted path of keys into the list answer (`data`, `result.items`), or an RFC 6901 JSON pointer (`/data`)",
        check: |def, f| {
            for (i, r) in def.resources.iter().enumerate() {
                if let Some(p) = r.records_path.as_ref().filter(|p| !p.starts_with('/')) {
                    dotted_path(f, &format!("resources[{i}].recordsPath"), p);
                }
            }
        },
    },
    Rule {
        field: "resources[].paging",
        allowed: "a resource's own paging, query, search, totalPointer and count as described under \"Lists\" in elements/README.md",
        check: |def, f| {
            for (i, r) in def.resources.iter().enumerate() {
                if let Err(e) = crate::listing::validate_listing(def, r) {
                    f.refuse(format!("resources[{i}]"), format!("resource {}: {e}", r.path));
                }
            }
        },
    },
    Rule {
        field: "resources[].table",
        allowed: "rest-json resources name a vendorPath; xml-rpc resources name a table and the model whose fields are selected (a read names its rpcMethod and nothing else)",
        check: tables,
    },
    Rule {
        field: "resources[].model",
        allowed: "a model declared under models; where and orderBy name its fields, on resources with list",
        check: |def, f| {
            for (i, r) in def.resources.iter().enumerate() {
                queries(def, r, &format!("resources[{i}]"), f);
            }
        },
    },
    Rule {
        field: "resources[].itemPath",
        allowed: "on rest-json resources with get, update or delete: a path starting with '/' that holds `{id}`, its other placeholders the path's parameters (`/orders/{id}.json`)",
        check: item_paths,
    },
    Rule {
        field: "resources[].recordPath",
        allowed: "a dotted path of keys (`order`, `data.attributes`), on rest-json resources with get, create or update (recordPath) or create or update (bodyPath)",
        check: envelopes,
    },
    Rule {
        field: "resources[].base",
        allowed: "a name under baseUrls, on rest-json resources",
        check: |def, f| {
            for (i, r) in def.resources.iter().enumerate() {
                if let Some(name) = &r.base {
                    if def.protocol != Protocol::RestJson {
                        f.refuse(format!("resources[{i}].base"), "'base' is for rest-json elements");
                    } else {
                        base_named(def, f, &format!("resources[{i}].base"), name);
                    }
                }
            }
        },
    },
    Rule {
        field: "events.webhooks.base",
        allowed: "a name under baseUrls",
        check: |def, f| {
            if let Some(name) = def.events.webhooks.as_ref().and_then(|w| w.base.as_ref()) {
                base_named(def, f, "events.webhooks.base", name);
            }
        },
    },
    Rule {
        field: "vendor paths",
        allowed: "paths that reach the vendor as written: no '.' or '..' segment, also percent-encoded; a call beside the main API names a base under baseUrls",
        check: dot_segments,
    },
    Rule {
        field: "events.webhooks",
        allowed: "objects that are hub resources with a get by id; event types CREATED, UPDATED or DELETED; requires naming configuration keys; methods GET, POST, PUT, PATCH or DELETE; paths starting with '/' with `{id}` (the hook id) in remove and check calls; a JSON object body whose placeholders are {scope}, {destination}, {secretHeader}, {secret}; JSON pointers",
        check: webhooks,
    },
    Rule {
        field: "throttle",
        allowed: "statuses 400-599; header names (letters, digits and -); windowSeconds from 1 to 86400; units seconds, milliseconds, epoch-seconds, epoch-milliseconds or http-date",
        check: throttle,
    },
    Rule {
        field: "setup[].key",
        allowed: "a configuration key of this element, with one guide each",
        check: |def, f| {
            let mut seen = HashSet::new();
            for (i, g) in def.setup.iter().enumerate() {
                let field = format!("setup[{i}].key");
                if def.parameter(&g.key).is_none() {
                    let keys: Vec<&str> = def.configuration.iter().map(|p| p.key.as_str()).collect();
                    f.refuse_allowing(field, format!("'{}' is not a configuration key", g.key), format!("one of {}", keys.join(", ")));
                } else if !seen.insert(g.key.as_str()) {
                    f.refuse(field, format!("'{}' has a guide already", g.key));
                }
            }
        },
    },
    Rule {
        field: "setup[].steps",
        allowed: "at least one step, each a sentence that is not blank",
        check: |def, f| {
            for (i, g) in def.setup.iter().enumerate() {
                if g.steps.is_empty() {
                    f.refuse(format!("setup[{i}].steps"), format!("the guide of '{}' has no steps", g.key));
                }
                for (n, step) in g.steps.iter().enumerate() {
                    if step.trim().is_empty() {
                        f.refuse(format!("setup[{i}].steps[{n}]"), format!("step {} of the guide of '{}' is blank", n + 1, g.key));
                    }
                }
            }
        },
    },
    Rule {
        field: "setup[].link",
        allowed: "an absolute https URL of the vendor's page the steps follow",
        check: |def, f| {
            for (i, g) in def.setup.iter().enumerate() {
                let https = url::Url::parse(&g.link).is_ok_and(|u| u.scheme() == "https" && u.host_str().is_some_and(|h| !h.is_empty()));
                if !https {
                    f.refuse(format!("setup[{i}].link"), format!("'{}' is not an absolute https URL", g.link));
                }
            }
        },
    },
];

// ------------------------------------------------------------------ helpers

/// `value` must be one of `allowed`.
pub(crate) fn one_of(f: &mut Found, field: &str, value: &str, allowed: &[&str]) {
    if !allowed.contains(&value) {
        f.refuse_allowing(field, format!("'{value}' is not one of the allowed values"), format!("one of {}", allowed.join(", ")));
    }
}

/// An HTTP method among `allowed` (upper case, as vendors expect them).
pub(crate) fn method(f: &mut Found, field: &str, value: &str, allowed: &[&str]) {
    if !allowed.contains(&value) {
        f.refuse_allowing(field, format!("'{value}' is not an HTTP method this field takes"), allowed.join(", "));
    }
}

/// A `{name}` template whose placeholders satisfy `known`; `what` says what they
/// may name (for the refusal; empty: any name). False when refused.
pub(crate) fn template(f: &mut Found, field: &str, text: &str, known: impl Fn(&str) -> bool, what: &str) -> bool {
    let parsed = match Template::parse(text) {
        Ok(t) => t,
        Err(e) => {
            f.refuse(field, e.to_string());
            return false;
        }
    };
    if let Some(name) = parsed.placeholders().find(|n| n.is_empty() || n.contains(['{', '}']) || n.trim() != *n) {
        f.refuse(field, format!("'{text}' has a malformed placeholder '{{{name}}}'"));
        return false;
    }
    let literal_close = text.split('{').enumerate().any(|(i, part)| {
        let after = if i == 0 { part } else { part.split_once('}').map_or("", |(_, rest)| rest) };
        after.contains('}')
    });
    if literal_close {
        f.refuse(field, format!("'{text}' has a '}}' that closes no placeholder"));
        return false;
    }
    if let Some(name) = parsed.placeholders().find(|n| !known(n)) {
        f.refuse_allowing(field, format!("'{text}' uses '{{{name}}}', which is not {what}"), format!("placeholders naming {what}"));
        return false;
    }
    true
}

/// A template over the element's configuration keys.
fn config_template(def: &ElementDefinition, f: &mut Found, field: &str, text: &str) -> bool {
    let keys: Vec<&str> = def.configuration.iter().map(|p| p.key.as_str()).collect();
    let before = f.refusals.len();
    let ok = template(f, field, text, |n| def.parameter(n).is_some(), "a configuration key");
    if let Some(r) = f.refusals.get_mut(before) {
        if r.problem.contains("which is not") {
            r.allowed = format!("placeholders naming configuration keys: {}", keys.join(", "));
        }
    }
    ok
}

/// A vendor path: starts with '/', no query or fragment, placeholders among `names`.
fn fixed_path(f: &mut Found, field: &str, path: &str, names: &[&str], allowed: &str) {
    if !path.starts_with('/') {
        f.refuse(field, format!("'{path}' does not start with '/'"));
    } else if path.contains(['?', '#']) {
        f.refuse(field, format!("'{path}' has a '?' or '#': a path holds no query or fragment"));
    } else {
        let before = f.refusals.len();
        template(f, field, path, |n| names.contains(&n), "a parameter of this path");
        if let Some(r) = f.refusals.get_mut(before) {
            r.allowed = allowed.to_owned();
        }
    }
}

/// A JSON pointer (RFC 6901): empty, or `/` steps with `~` only as `~0` or `~1`.
pub(crate) fn json_pointer(f: &mut Found, field: &str, pointer: &str) {
    let escapes_ok = pointer.match_indices('~').all(|(i, _)| matches!(pointer.as_bytes().get(i + 1), Some(b'0' | b'1')));
    if !(pointer.is_empty() || pointer.starts_with('/')) || !escapes_ok {
        f.refuse_allowing(
            field,
            format!("'{pointer}' is not a JSON pointer (it starts with '/')"),
            "a JSON pointer (RFC 6901): `/data/id`, `~1` for '/' and `~0` for '~' in a key",
        );
    }
}

/// A dotted path of keys (`meta.pagination.total`): no empty key.
pub(crate) fn dotted_path(f: &mut Found, field: &str, path: &str) {
    if path.split('.').any(str::is_empty) {
        f.refuse_allowing(field, format!("'{path}' is not a dotted path of keys"), "keys separated by '.' (`meta.pagination.total`)");
    }
}

/// An HTTP header name (an RFC 9110 token).
pub(crate) fn header_name(f: &mut Found, field: &str, name: &str) {
    let token = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
    if name.is_empty() || !name.bytes().all(token) {
        f.refuse_allowing(field, format!("'{name}' is not a header name"), "a header name: letters, digits and -");
    }
}

/// A template that must form an absolute http(s) URL (and, unless `query`, one with
/// no query or fragment, as paths are appended to it). Placeholders are filled
/// with the key's default, `https://example.com/base` for a `format: url` key, `1`
/// for a number, `x` otherwise.
pub(crate) fn url_template(def: &ElementDefinition, f: &mut Found, field: &str, text: &str, query: bool) {
    let sample = crate::template::render(text, |name| {
        let p = def.parameter(name)?;
        let value = match (p.default_value.as_deref().filter(|d| !d.is_empty()), p.format) {
            (Some(d), _) => d,
            (None, Some(ValueFormat::Url)) => "https://example.com/base",
            (None, Some(ValueFormat::Number)) => "1",
            _ => "x",
        };
        Some(value.into())
    });
    let Ok(sample) = sample else { return };
    let formed = url::Url::parse(&sample).ok().filter(|u| {
        matches!(u.scheme(), "http" | "https") && u.host().is_some() && (query || (u.query().is_none() && u.fragment().is_none()))
    });
    if formed.is_none() {
        let keys = "; a placeholder standing for a whole URL names a key with `format: url`";
        f.refuse(field, format!("'{text}' does not form an absolute http(s) URL{} (with sample values: '{sample}'){keys}", if query { "" } else { " without query or fragment" }));
    }
}

// ------------------------------------------------------------------ the larger rules

/// A choice picks among simple schemes by a COMBO key the element declares, whose
/// options are exactly the modes; OAuth 2.0 is not a mode (its flows are the
/// element's, not an instance's).
fn choice(def: &ElementDefinition, f: &mut Found) {
    let Authentication::Choice(choice) = &def.authentication else {
        return;
    };
    if choice.modes.is_empty() {
        f.refuse("authentication.modes", "authentication: a choice needs modes");
        return;
    }
    if let Some((mode, _)) = choice.modes.iter().find(|(_, a)| matches!(a, Authentication::OAuth2(_) | Authentication::Choice(_))) {
        f.refuse(format!("authentication.modes.{mode}"), format!("authentication mode '{mode}': only basic, custom and bearer schemes can be modes"));
        return;
    }
    let Some((index, param)) = def.configuration.iter().enumerate().find(|(_, p)| p.key == choice.key) else {
        f.refuse("authentication.key", format!("authentication.key '{}' is not a configuration key", choice.key));
        return;
    };
    let mut options = param.options.clone();
    options.sort();
    let modes: Vec<String> = choice.modes.keys().cloned().collect();
    if options != modes {
        f.refuse(format!("configuration[{index}].options"), format!("configuration '{}' must offer exactly the modes {}", choice.key, modes.join(", ")));
    } else if param.default_value.as_deref().is_none_or(|d| !choice.modes.contains_key(d)) {
        f.refuse(format!("configuration[{index}].defaultValue"), format!("configuration '{}' needs a default naming a mode", choice.key));
    }
}

/// A custom scheme places something, under names that are names.
fn placements(def: &ElementDefinition, f: &mut Found) {
    let schemes: Vec<(String, &Authentication)> = match &def.authentication {
        Authentication::Choice(c) => c.modes.iter().map(|(m, a)| (format!("authentication.modes.{m}"), a)).collect(),
        a => vec![("authentication".to_owned(), a)],
    };
    for (field, scheme) in schemes {
        if let Authentication::Headers { headers, query } = scheme {
            if headers.is_empty() && query.is_empty() {
                f.refuse(&field, "a custom scheme names 'headers' or 'query' parameters");
            } else if headers.keys().chain(query.keys()).any(|k| k.trim().is_empty()) {
                f.refuse(&field, "a header or query parameter has an empty name");
            }
        }
    }
}

/// `name` is declared under `baseUrls`.
fn base_named(def: &ElementDefinition, f: &mut Found, field: &str, name: &str) {
    if !def.base_urls.contains_key(name) {
        let known: Vec<&str> = def.base_urls.keys().map(String::as_str).collect();
        let declared = if known.is_empty() { "none".to_owned() } else { known.join(", ") };
        f.refuse_allowing(field, format!("base '{name}' is not under baseUrls"), format!("a name under baseUrls (declared: {declared})"));
    }
}

fn item_paths(def: &ElementDefinition, f: &mut Found) {
    for (i, r) in def.resources.iter().enumerate() {
        let Some(item) = &r.item_path else { continue };
        let field = format!("resources[{i}].itemPath");
        if def.protocol != Protocol::RestJson {
            f.refuse(&field, "'itemPath' is for rest-json elements");
            continue;
        }
        if ![Operation::Get, Operation::Update, Operation::Delete].iter().any(|op| r.supports(*op)) {
            f.refuse(&field, format!("resource {}: 'itemPath' on a resource without get, update or delete", r.path));
            continue;
        }
        let params: Vec<String> = Template::parse(&r.path).map(|t| t.placeholders().map(str::to_owned).collect()).unwrap_or_default();
        let names: Vec<&str> = params.iter().map(String::as_str).chain(["id"]).collect();
        let before = f.refusals.len();
        fixed_path(f, &field, item, &names, &format!("`{{id}}` and the path's parameters: {}", names.join(", ")));
        let has_id = Template::parse(item).is_ok_and(|t| t.placeholders().any(|p| p == "id"));
        if f.refusals.len() == before && !has_id {
            f.refuse(&field, format!("resource {}: itemPath has no '{{id}}'", r.path));
        }
    }
}

fn envelopes(def: &ElementDefinition, f: &mut Found) {
    for (i, r) in def.resources.iter().enumerate() {
        for (name, value, needs, ops) in [
            ("recordPath", &r.record_path, &[Operation::Get, Operation::Create, Operation::Update][..], "get, create or update"),
            ("bodyPath", &r.body_path, &[Operation::Create, Operation::Update][..], "create or update"),
        ] {
            let Some(path) = value else { continue };
            let field = format!("resources[{i}].{name}");
            if def.protocol != Protocol::RestJson {
                f.refuse(&field, format!("'{name}' is for rest-json elements"));
            } else if !needs.iter().any(|op| r.supports(*op)) {
                f.refuse(&field, format!("resource {}: '{name}' on a resource without {ops}", r.path));
            } else {
                dotted_path(f, &field, path);
            }
        }
    }
}

/// Vendor paths reach the vendor as written: a dot segment would be resolved into
/// another path by URL parsing (`/../v3/hooks`).
fn dot_segments(def: &ElementDefinition, f: &mut Found) {
    let mut paths: Vec<(String, &str)> = vec![("check.path".into(), def.check.path.as_str())];
    if let Some(x) = &def.xml_rpc {
        paths.push(("xmlRpc.endpoint".into(), x.endpoint.as_str()));
    }
    if let Some(w) = &def.events.webhooks {
        paths.push(("events.webhooks.register.path".into(), w.register.path.as_str()));
        paths.push(("events.webhooks.remove.path".into(), w.remove.path.as_str()));
        if let Some(c) = &w.check {
            paths.push(("events.webhooks.check.read.path".into(), c.read.path.as_str()));
            paths.push(("events.webhooks.check.reactivate.path".into(), c.reactivate.path.as_str()));
        }
    }
    for (i, r) in def.resources.iter().enumerate() {
        paths.push((format!("resources[{i}].vendorPath"), r.vendor_path.as_str()));
        if let Some(item) = &r.item_path {
            paths.push((format!("resources[{i}].itemPath"), item.as_str()));
        }
    }
    for (field, path) in paths {
        if let Some(seg) = path.split(['/', '?']).find(|s| is_dot_segment(s)) {
            f.refuse(field, format!("'{path}' has the segment '{seg}'"));
        }
    }
}

/// `.` or `..`, also percent-encoded (URL parsers resolve `%2e%2E` the same way).
fn is_dot_segment(segment: &str) -> bool {
    let decoded = segment.to_ascii_lowercase().replace("%2e", ".");
    decoded == "." || decoded == ".."
}

fn xml_rpc(def: &ElementDefinition, f: &mut Found) {
    match (def.protocol, &def.xml_rpc) {
        (Protocol::RestJson, Some(_)) => f.refuse("xmlRpc", "'xmlRpc' on a rest-json element"),
        (Protocol::RestJson, None) => {}
        (Protocol::XmlRpc, None) => f.refuse("protocol", "an xml-rpc element declares 'xmlRpc' (endpoint, service)"),
        (Protocol::XmlRpc, Some(x)) => {
            if !x.endpoint.starts_with('/') || x.endpoint.contains(['?', '#']) {
                f.refuse("xmlRpc.endpoint", "xmlRpc.endpoint starts with '/' (no '?' or '#') and xmlRpc.service is named");
            }
            if x.service.is_empty() {
                f.refuse("xmlRpc.service", "xmlRpc.endpoint starts with '/' and xmlRpc.service is named");
            }
            if let Some(key) = &x.key {
                config_template(def, f, "xmlRpc.key", key);
            }
            for (kind, status) in &x.faults {
                if !(400..=599).contains(status) {
                    f.refuse(format!("xmlRpc.faults.{kind}"), format!("xmlRpc.faults.{kind}: {status} is not an error status"));
                }
            }
        }
    }
}

/// What each protocol's resources name: `rest-json` vendor paths; `xml-rpc` tables
/// (and the model whose fields are selected) or, for `read`, the method to call.
fn tables(def: &ElementDefinition, f: &mut Found) {
    for (i, r) in def.resources.iter().enumerate() {
        let at = |what: &str| format!("resources[{i}].{what}");
        let what = |m: &str| format!("resource {}: {m}", r.path);
        match def.protocol {
            Protocol::RestJson => {
                if r.table.is_some() || r.rpc_method.is_some() || !r.fixed.is_empty() {
                    f.refuse(at("table"), what("'table', 'fixed' and 'rpcMethod' are for xml-rpc elements"));
                }
            }
            Protocol::XmlRpc => {
                if !r.vendor_path.is_empty() {
                    f.refuse(at("vendorPath"), what("xml-rpc resources name a 'table', not a 'vendorPath'"));
                    continue;
                }
                if r.supports(Operation::Read) {
                    if r.operations.len() != 1 || r.rpc_method.is_none() || r.table.is_some() {
                        f.refuse(at("rpcMethod"), what("a 'read' names its 'rpcMethod' and nothing else"));
                    }
                    continue;
                }
                if r.table.is_none() || r.rpc_method.is_some() {
                    f.refuse(at("table"), what("names its 'table' (and no 'rpcMethod')"));
                    continue;
                }
                let Some(model) = r.model.as_deref().and_then(|m| def.models.get(m)) else {
                    f.refuse(at("model"), what("names a 'model': its fields are the ones selected"));
                    continue;
                };
                if !model.contains_key(def.id_field.as_str()) {
                    f.refuse(at("model"), what(&format!("the model lacks the id field '{}'", def.id_field)));
                }
                if let Some(field) = r.fixed.keys().find(|k| !model.contains_key(k.as_str())) {
                    f.refuse(format!("resources[{i}].fixed[{field}]"), what(&format!("fixed field '{field}' is not in the model")));
                }
                if !r.where_map.is_empty() {
                    f.refuse(at("where"), what("xml-rpc lists send every model field to queryData; 'where' is for rest-json"));
                }
            }
        }
    }
}

/// The `model`, `where` and `orderBy` declarations of one resource (`at` is its path).
fn queries(def: &ElementDefinition, r: &Resource, at: &str, f: &mut Found) {
    let what = |m: String| format!("resource {}: {m}", r.path);
    let model = match &r.model {
        Some(name) => match def.models.get(name) {
            Some(m) => Some(m),
            None => return f.refuse(format!("{at}.model"), what(format!("model '{name}' is not declared in models"))),
        },
        None => None,
    };
    if !r.where_map.is_empty() && !r.supports(Operation::List) {
        return f.refuse(format!("{at}.where"), what("'where' on a resource without 'list'".into()));
    }
    let mut params = HashSet::new();
    for (field, filter) in &r.where_map {
        let here = format!("{at}.where[{field}]");
        let Some(model) = model else {
            return f.refuse(here, what(format!("where.{field}: a resource with 'where' declares its 'model'")));
        };
        // A declared field, or a sub-field of a declared object (filtered as text).
        let t = match model.get(field.as_str()) {
            Some(t) => *t,
            None => match field.rsplit_once('.').and_then(|(p, _)| model.get(p)) {
                Some(FieldType::Object) => FieldType::String,
                _ => return f.refuse(here, what(format!("where.{field}: the model has no such field"))),
            },
        };
        if filter.params().next().is_none() {
            return f.refuse(here, what(format!("where.{field}: names no vendor parameter (eq, min or max)")));
        }
        if (filter.min.is_some() || filter.max.is_some()) && !t.is_ordered() {
            return f.refuse(here, what(format!("where.{field}: min/max on a {} field, which has no order", t.as_str())));
        }
        if !t.is_scalar() {
            return f.refuse(here, what(format!("where.{field}: a {} field cannot be filtered by value", t.as_str())));
        }
        for p in filter.params() {
            if p.is_empty() || !params.insert(p.to_owned()) {
                return f.refuse(here, what(format!("where.{field}: vendor parameter '{p}' is empty or used twice")));
            }
        }
    }
    if let Some(sort) = &r.order_by {
        let here = format!("{at}.orderBy");
        if !r.supports(Operation::List) {
            return f.refuse(here, what("'orderBy' on a resource without 'list'".into()));
        }
        if sort.param.is_empty() || sort.fields.is_empty() {
            return f.refuse(here, what("orderBy needs 'param' and 'fields'".into()));
        }
        if let Some(field) = model.and_then(|m| sort.fields.iter().find(|s| !m.contains_key(s.as_str()))) {
            f.refuse(format!("{here}.fields"), what(format!("orderBy field '{field}' is not in the model")));
        }
    }
}

/// Webhook objects are hub resources that can be read one by one (events are
/// enriched with the record), and event types are the three Cloud Elements has.
fn webhooks(def: &ElementDefinition, f: &mut Found) {
    let Some(w) = &def.events.webhooks else {
        return;
    };
    let at = |what: &str| format!("events.webhooks.{what}");
    for object in w.objects.keys() {
        let readable = def.route("GET", &format!("{}/1", object.trim_start_matches('/'))).is_ok_and(|r| r.operation == Operation::Get);
        if !readable {
            f.refuse(format!("events.webhooks.objects[{object}]"), format!("object '{object}' is not a hub resource with a get by id"));
        }
    }
    for (kind, t) in &w.event_types {
        if !matches!(t.as_str(), "CREATED" | "UPDATED" | "DELETED") {
            f.refuse(format!("events.webhooks.eventTypes[{kind}]"), format!("event type '{t}' is not CREATED, UPDATED or DELETED"));
        }
    }
    for k in w.requires.keys() {
        if def.parameter(k).is_none() {
            f.refuse(format!("events.webhooks.requires[{k}]"), format!("requires '{k}', which is not a configuration key"));
        }
    }
    let methods = ["GET", "POST", "PUT", "PATCH", "DELETE"];
    let mut calls = vec![("register", &w.register, &[][..]), ("remove", &w.remove, &["id"][..])];
    if let Some(check) = &w.check {
        calls.push(("check.read", &check.read, &["id"]));
        calls.push(("check.reactivate", &check.reactivate, &["id"]));
        json_pointer(f, &at("check.activePointer"), &check.active_pointer);
    }
    for (name, call, ids) in calls {
        method(f, &at(&format!("{name}.method")), &call.method, &methods);
        let allowed = if ids.is_empty() { "no placeholders" } else { "{id}, the hook's id" };
        // Dot segments are the `vendor paths` rule's: a call beside the main API names a base.
        fixed_path(f, &at(&format!("{name}.path")), &call.path, ids, allowed);
    }
    if !w.body.is_object() {
        f.refuse(at("body"), "body must be a JSON object");
    }
    body_templates(f, &at("body"), &w.body);
    for (name, pointer) in [("idPointer", &w.id_pointer), ("scopePointer", &w.scope_pointer), ("objectIdPointer", &w.object_id_pointer)] {
        json_pointer(f, &at(name), pointer);
    }
    let mut seen = BTreeSet::new();
    for (i, p) in w.digest.iter().enumerate() {
        json_pointer(f, &format!("events.webhooks.digest[{i}]"), p);
        if !seen.insert(p) {
            f.refuse(format!("events.webhooks.digest[{i}]"), format!("digest '{p}' is named twice (entry {})", i + 1));
        }
    }
}

/// Every string of a registration body (keys too) is a template over the engine's values.
fn body_templates(f: &mut Found, field: &str, value: &serde_json::Value) {
    let known = |n: &str| WEBHOOK_BODY_PLACEHOLDERS.contains(&n);
    let what = "one the engine fills in a registration body ({scope}, {destination}, {secretHeader}, {secret})";
    match value {
        serde_json::Value::String(s) => {
            template(f, field, s, known, what);
        }
        serde_json::Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                body_templates(f, &format!("{field}[{i}]"), item);
            }
        }
        serde_json::Value::Object(members) => {
            for (k, v) in members {
                let here = format!("{field}[{k}]");
                template(f, &here, k, known, what);
                body_templates(f, &here, v);
            }
        }
        _ => {}
    }
}

fn throttle(def: &ElementDefinition, f: &mut Found) {
    let Some(t) = &def.throttle else {
        return;
    };
    let mut seen = BTreeSet::new();
    for (i, status) in t.statuses.iter().enumerate() {
        if !(400..=599).contains(status) || !seen.insert(status) {
            f.refuse(format!("throttle.statuses[{i}]"), format!("{status} is not an error status, or is listed twice"));
        }
    }
    let window = |f: &mut Found, field: String, seconds: u64| {
        if !(1..=86_400).contains(&seconds) {
            f.refuse(field, format!("{seconds} s is not a window from 1 s to a day"));
        }
    };
    window(f, "throttle.windowSeconds".into(), t.window_seconds);
    let mut waits = BTreeSet::new();
    for (i, w) in t.retry_after.iter().enumerate() {
        header_name(f, &format!("throttle.retryAfter[{i}].header"), &w.header);
        if !waits.insert((w.header.to_ascii_lowercase(), w.unit as u8)) {
            f.refuse(format!("throttle.retryAfter[{i}]"), format!("'{}' is listed twice with the same unit", w.header));
        }
    }
    for (i, l) in t.limits.iter().enumerate() {
        header_name(f, &format!("throttle.limits[{i}].remaining"), &l.remaining);
        if let Some(reset) = &l.reset {
            header_name(f, &format!("throttle.limits[{i}].reset.header"), &reset.header);
        }
        if let Some(seconds) = l.window_seconds {
            window(f, format!("throttle.limits[{i}].windowSeconds"), seconds);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// elements/README.md lists every checked field with what it allows.
    #[test]
    fn every_checked_field_is_documented() {
        let readme = include_str!("../../../elements/README.md");
        for rule in RULES {
            assert!(readme.contains(&format!("`{}`", rule.field)), "elements/README.md does not document `{}`", rule.field);
        }
        for hub in HUBS {
            assert!(readme.contains(&format!("`{hub}`")), "hub {hub} is not documented");
        }
    }

    #[test]
    fn the_built_in_files_are_indexed_to_their_last_field() {
        for (file, text) in [
            ("bigcommerce.yaml", include_str!("../../../elements/bigcommerce.yaml")),
            ("infusionsoftcrm.yaml", include_str!("../../../elements/infusionsoftcrm.yaml")),
        ] {
            let lines = crate::locate::Lines::of(text);
            let def = crate::parse(file, text).unwrap();
            let last = def.resources.len() - 1;
            assert!(lines.line_of(&format!("resources[{last}].path")).is_some(), "{file}");
            let (model, _) = def.models.iter().next_back().unwrap();
            assert!(lines.line_of(&format!("models.{model}")).is_some(), "{file}");
        }
    }
}
