//! Lists as data beyond the records: pointers into a list answer (cursors,
//! next-page URLs, totals, where the records sit), search bodies rendered from
//! the vendor's part of a `where`, and the load-time checks of these fields.
//! Nothing here talks to the vendor; the engine's `hub::list` does.

use serde_json::{Map, Value};

use crate::model::{ElementDefinition, Operation, Paging, Protocol, Resource, Search};
use crate::template::Template;

/// A place in a JSON answer: dotted keys (`paging.next.after`) or, for keys that
/// hold a dot or a slash, an RFC 6901 JSON pointer (`/@odata.nextLink`). A
/// segment of digits also indexes an array (`results.0.id`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pointer {
    segments: Vec<String>,
}

const POINTER_HELP: &str = "write dotted keys such as meta.next_cursor, or a JSON pointer such as /meta/next_cursor";

impl Pointer {
    /// Parses either form; the error says what is wrong and what is allowed.
    pub fn parse(text: &str) -> Result<Pointer, String> {
        let bad = |why: &str| format!("'{text}' is not a pointer: {why} ({POINTER_HELP})");
        if let Some(rest) = text.strip_prefix('/') {
            let mut segments = Vec::new();
            for raw in rest.split('/') {
                let mut segment = String::with_capacity(raw.len());
                let mut chars = raw.chars();
                while let Some(c) = chars.next() {
                    match (c, c == '~') {
                        (_, false) => segment.push(c),
                        (_, true) => match chars.next() {
                            Some('0') => segment.push('~'),
                            Some('1') => segment.push('/'),
                            _ => return Err(bad("'~' is followed by neither 0 nor 1")),
                        },
                    }
                }
                segments.push(segment);
            }
            return Ok(Pointer { segments });
        }
        if text.trim().is_empty() {
            return Err(bad("it is empty"));
        }
        if text.chars().any(char::is_whitespace) {
            return Err(bad("dotted keys hold no spaces"));
        }
        let segments: Vec<String> = text.split('.').map(str::to_owned).collect();
        if segments.iter().any(String::is_empty) {
            return Err(bad("an empty key between dots"));
        }
        Ok(Pointer { segments })
    }

    /// The keys (or array indexes), outermost first.
    pub fn segments(&self) -> &[String] {
        &self.segments
    }

    /// The value at this place; `None` when a key is missing, a value on the way
    /// is not an object or array, or an index is past the end.
    pub fn find<'v>(&self, value: &'v Value) -> Option<&'v Value> {
        self.segments.iter().try_fold(value, |v, key| match v {
            Value::Object(map) => map.get(key),
            Value::Array(items) => key.parse::<usize>().ok().and_then(|i| items.get(i)),
            _ => None,
        })
    }
}

/// Which bound of a field a vendor parameter of `where` carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FilterRole {
    Eq,
    Min,
    Max,
}

/// The role of vendor parameter `param` in the resource's `where` map.
pub fn filter_role(resource: &Resource, param: &str) -> Option<FilterRole> {
    resource.where_map.values().find_map(|f| {
        if f.eq.as_deref() == Some(param) {
            Some(FilterRole::Eq)
        } else if f.min.as_deref() == Some(param) {
            Some(FilterRole::Min)
        } else if f.max.as_deref() == Some(param) {
            Some(FilterRole::Max)
        } else {
            None
        }
    })
}

/// Where a search page starts, as its body says it.
#[derive(Debug, Clone, Copy)]
pub enum SearchAt<'a> {
    /// `"{page}"`: the vendor's page number (with the paging's `firstPage` added).
    Page(u64),
    /// `"{offset}"`: the index of the first record.
    Offset(u64),
    /// `"{cursor}"`: `None` on the first page (the member is left out).
    Cursor(Option<&'a str>),
}

/// A whole-string placeholder's name: `"{limit}"` is `limit`.
fn placeholder(text: &str) -> Option<&str> {
    let inner = text.strip_prefix('{')?.strip_suffix('}')?;
    (!inner.is_empty() && !inner.contains(['{', '}'])).then_some(inner)
}

/// What a placeholder becomes: a value, or the member (or array item) left out.
enum Fill {
    Value(Value),
    Omit,
}

/// `template` with every whole-string placeholder `fill` knows replaced.
fn fill(template: &Value, f: &dyn Fn(&str) -> Option<Fill>) -> Option<Value> {
    match template {
        Value::String(s) => match placeholder(s).and_then(f) {
            Some(Fill::Value(v)) => Some(v),
            Some(Fill::Omit) => None,
            None => Some(template.clone()),
        },
        Value::Array(items) => Some(Value::Array(items.iter().filter_map(|i| fill(i, f)).collect())),
        Value::Object(map) => {
            let out: Map<String, Value> = map.iter().filter_map(|(k, v)| Some((k.clone(), fill(v, f)?))).collect();
            Some(Value::Object(out))
        }
        other => Some(other.clone()),
    }
}

/// A search's JSON body: `filters` (the vendor parameters `plan_where` chose,
/// in order) rendered through `search.filter`, the page size and the position.
/// A parameter the `where` map does not name, or a role without an operator,
/// cannot happen for a definition the catalog accepted; it is an error here.
pub fn search_body(resource: &Resource, search: &Search, filters: &[(String, String)], limit: u64, at: SearchAt<'_>) -> Result<Value, String> {
    let mut rendered = Vec::with_capacity(filters.len());
    for (param, value) in filters {
        let role = filter_role(resource, param).ok_or_else(|| format!("'{param}' is not a vendor filter of {}", resource.path))?;
        let operator = match role {
            FilterRole::Eq => &search.operators.eq,
            FilterRole::Min => &search.operators.min,
            FilterRole::Max => &search.operators.max,
        };
        let operator = operator.clone().ok_or_else(|| format!("search.operators has no operator for '{param}'"))?;
        let one = |name: &str| match name {
            "param" => Some(Fill::Value(Value::String(search.names.get(param).unwrap_or(param).clone()))),
            "operator" => Some(Fill::Value(Value::String(operator.clone()))),
            "value" => Some(Fill::Value(Value::String(value.clone()))),
            _ => None,
        };
        rendered.extend(fill(&search.filter, &one));
    }
    let rendered = Value::Array(rendered);
    let body = |name: &str| match (name, at) {
        ("filters", _) => Some(Fill::Value(rendered.clone())),
        ("limit", _) => Some(Fill::Value(limit.into())),
        ("page", SearchAt::Page(n)) | ("offset", SearchAt::Offset(n)) => Some(Fill::Value(n.into())),
        ("cursor", SearchAt::Cursor(Some(c))) => Some(Fill::Value(Value::String(c.to_owned()))),
        ("cursor", SearchAt::Cursor(None)) => Some(Fill::Omit),
        _ => None,
    };
    Ok(fill(&search.body, &body).unwrap_or(Value::Null))
}

/// Every whole-string placeholder in `template`.
fn placeholders_in(template: &Value, out: &mut Vec<String>) {
    match template {
        Value::String(s) => out.extend(placeholder(s).map(str::to_owned)),
        Value::Array(items) => items.iter().for_each(|i| placeholders_in(i, out)),
        Value::Object(map) => map.values().for_each(|v| placeholders_in(v, out)),
        _ => {}
    }
}

const METHODS: &[&str] = &["GET", "POST", "PUT", "PATCH", "DELETE"];

/// The paging fields of one element or resource: pointers that parse, names
/// that are not empty, a page size from 1.
pub(crate) fn validate_paging(paging: &Paging) -> Result<(), String> {
    let field = |name: &str| format!("paging.{name}");
    if paging.max_page_size() == 0 {
        return Err(format!("{}: must be at least 1", field("maxPageSize")));
    }
    let mut names: Vec<(&str, &str)> = Vec::new();
    let mut pointers: Vec<(&str, &str)> = Vec::new();
    match paging {
        Paging::Page { page_param, size_param, .. } => names.extend([("pageParam", page_param.as_str()), ("sizeParam", size_param.as_str())]),
        Paging::Offset { offset_param, size_param, .. } => {
            names.extend([("offsetParam", offset_param.as_str()), ("sizeParam", size_param.as_str())])
        }
        Paging::Cursor { cursor_param, cursor_pointer, has_more_pointer, .. } => {
            names.extend(cursor_param.as_deref().map(|p| ("cursorParam", p)));
            pointers.push(("cursorPointer", cursor_pointer));
            pointers.extend(has_more_pointer.as_deref().map(|p| ("hasMorePointer", p)));
        }
        Paging::NextUrl { next_pointer, has_more_pointer, .. } => {
            pointers.push(("nextPointer", next_pointer));
            pointers.extend(has_more_pointer.as_deref().map(|p| ("hasMorePointer", p)));
        }
        Paging::LinkHeader { .. } | Paging::Whole { .. } => {}
    }
    names.extend(paging.size_param().map(|p| ("sizeParam", p)));
    if let Some((name, _)) = names.iter().find(|(_, v)| v.trim().is_empty()) {
        return Err(format!("{}: names no query parameter", field(name)));
    }
    for (name, text) in pointers {
        Pointer::parse(text).map_err(|e| format!("{}: {e}", field(name)))?;
    }
    Ok(())
}

/// A resource's list and count declarations: its paging (and the element's), its
/// pointers, its search, its fixed query and its count call.
pub(crate) fn validate_listing(def: &ElementDefinition, r: &Resource) -> Result<(), String> {
    let lists = r.supports(Operation::List);
    let declared = [
        ("paging", r.paging.is_some()),
        ("query", !r.query.is_empty()),
        ("search", r.search.is_some()),
        ("totalPointer", r.total_pointer.is_some()),
    ];
    if let Some((name, _)) = declared.iter().find(|(_, set)| *set && !lists) {
        return Err(format!("'{name}' on a resource without 'list'"));
    }
    if def.protocol == Protocol::XmlRpc {
        let extra = declared.iter().map(|(n, set)| (*n, *set)).chain([("count", r.count.is_some()), ("recordsPath", r.records_path.is_some())]);
        if let Some((name, _)) = extra.into_iter().find(|(_, set)| *set) {
            return Err(format!("'{name}' is for rest-json resources"));
        }
        return Ok(());
    }
    if let Some(paging) = &r.paging {
        validate_paging(paging)?;
    }
    for (name, text) in [("recordsPath", &r.records_path), ("totalPointer", &r.total_pointer)] {
        if let Some(text) = text {
            Pointer::parse(text).map_err(|e| format!("{name}: {e}"))?;
        }
    }
    if let Some((k, _)) = r.query.iter().find(|(k, _)| k.trim().is_empty()) {
        return Err(format!("query: '{k}' is not a parameter name"));
    }
    let hub_params: Vec<String> = Template::parse(&r.path).map(|t| t.placeholders().map(str::to_owned).collect()).unwrap_or_default();
    if let Some(count) = &r.count {
        if !r.supports(Operation::Count) {
            return Err("'count' on a resource whose operations lack count".into());
        }
        let t = Template::parse(&count.path).map_err(|e| format!("count.path: {e}"))?;
        if !count.path.starts_with('/') {
            return Err(format!("count.path '{}' starts with '/'", count.path));
        }
        let unknown = t.placeholders().find(|p| !hub_params.iter().any(|h| h == p)).map(str::to_owned);
        if let Some(p) = unknown {
            return Err(format!("count.path uses '{{{p}}}' that the path lacks"));
        }
        Pointer::parse(&count.pointer).map_err(|e| format!("count.pointer: {e}"))?;
        let params: Vec<&str> = r.where_map.values().flat_map(|f| f.params()).collect();
        if let Some(name) = count.filters.iter().flatten().find(|n| !params.contains(&n.as_str())) {
            return Err(format!("count.filters: '{name}' is not a vendor parameter of the resource's where (it has: {})", params.join(", ")));
        }
    }
    let paging = def.paging_of(r);
    match &r.search {
        Some(search) => validate_search(r, search, paging, &hub_params)?,
        None => {
            if lists && matches!(paging, Paging::Cursor { cursor_param: None, .. }) {
                return Err("paging.cursorParam: a cursor list that is not a search sends its cursor as a query parameter; name it".into());
            }
        }
    }
    Ok(())
}

fn validate_search(r: &Resource, search: &Search, paging: &Paging, hub_params: &[String]) -> Result<(), String> {
    if !METHODS.contains(&search.method.as_str()) {
        return Err(format!("search.method: '{}' is not one of {}", search.method, METHODS.join(", ")));
    }
    if let Some(path) = &search.path {
        let t = Template::parse(path).map_err(|e| format!("search.path: {e}"))?;
        if !path.starts_with('/') {
            return Err(format!("search.path '{path}' starts with '/'"));
        }
        let unknown = t.placeholders().find(|p| !hub_params.iter().any(|h| h == p)).map(str::to_owned);
        if let Some(p) = unknown {
            return Err(format!("search.path uses '{{{p}}}' that the path lacks"));
        }
    }
    if !search.body.is_object() {
        return Err("search.body must be a JSON object".into());
    }
    let position = match paging {
        Paging::Page { .. } => "page",
        Paging::Offset { .. } => "offset",
        Paging::Cursor { .. } => "cursor",
        other => return Err(format!("search: a search pages by page, offset or cursor, not {}", other.style())),
    };
    let mut found = Vec::new();
    placeholders_in(&search.body, &mut found);
    let allowed = ["filters", "limit", position];
    if let Some(p) = found.iter().find(|p| !allowed.contains(&p.as_str())) {
        return Err(format!("search.body: '{{{p}}}' is not one of {{filters}}, {{limit}}, {{{position}}} ({} paging)", paging.style()));
    }
    if let Some(missing) = ["limit", position].iter().find(|p| !found.iter().any(|f| f == *p)) {
        return Err(format!("search.body: '{{{missing}}}' is missing; {} paging needs it", paging.style()));
    }
    if !r.where_map.is_empty() && !found.iter().any(|f| f == "filters") {
        return Err("search.body: '{filters}' is missing; the resource's where filters go there".into());
    }
    if r.order_by.is_some() {
        return Err("orderBy: a search list has no vendor sort parameter (sorting in search bodies is not supported)".into());
    }
    if let Some(p) = search.names.keys().find(|p| filter_role(r, p).is_none()) {
        return Err(format!("search.names: '{p}' is not a parameter of the resource's where"));
    }
    let mut in_filter = Vec::new();
    placeholders_in(&search.filter, &mut in_filter);
    if let Some(p) = in_filter.iter().find(|p| !["param", "operator", "value"].contains(&p.as_str())) {
        return Err(format!("search.filter: '{{{p}}}' is not one of {{param}}, {{operator}}, {{value}}"));
    }
    if !in_filter.iter().any(|p| p == "value") {
        return Err("search.filter: '{value}' is missing".into());
    }
    for (field, f) in &r.where_map {
        let needs = [("eq", &f.eq, &search.operators.eq), ("min", &f.min, &search.operators.min), ("max", &f.max, &search.operators.max)];
        if let Some((role, _, _)) = needs.iter().find(|(_, used, op)| used.is_some() && op.is_none()) {
            return Err(format!("search.operators.{role}: where.{field} uses it; name the vendor's operator"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn pointers_are_dotted_or_rfc6901() {
        let doc = json!({"paging": {"next": {"after": "x"}}, "@odata.nextLink": "u", "a/b": {"~": 1}, "results": [{"id": 7}]});
        let at = |p: &str| Pointer::parse(p).unwrap().find(&doc).cloned();
        assert_eq!(at("paging.next.after"), Some(json!("x")));
        assert_eq!(at("/paging/next/after"), Some(json!("x")));
        assert_eq!(at("/@odata.nextLink"), Some(json!("u")));
        assert_eq!(at("/a~1b/~0"), Some(json!(1)));
        assert_eq!(at("results.0.id"), Some(json!(7)));
        assert_eq!(at("paging.prev"), None);
        assert_eq!(at("results.1.id"), None);
        for bad in ["", "a..b", ".a", "a.", "a b", "/a/~2", "/a~"] {
            let e = Pointer::parse(bad).unwrap_err();
            assert!(e.contains("is not a pointer") && e.contains("JSON pointer"), "{bad}: {e}");
        }
    }

    /// A small rest-json element whose `paging` and `/contacts` resource a test replaces.
    fn element(paging: &str, resource: &str) -> String {
        format!(
            "key: t\nid: 1\nname: T\nhub: crm\nauthentication: {{type: custom, headers: {{X-Api-Key: \"{{api.key}}\"}}}}\n\
             protocol: rest-json\nbaseUrl: \"{{base.url}}\"\ncheck: {{method: GET, path: /ping}}\npaging: {paging}\n\
             configuration:\n  - {{key: base.url, name: U, type: TEXTFIELD_1000, format: url}}\n  - {{key: api.key, name: K, type: PASSWORD}}\n\
             models:\n  contact: {{id: string, properties: object, createdAt: date}}\nresources:\n  - {resource}\n"
        )
    }

    const CURSOR: &str = "{style: cursor, cursorParam: after, cursorPointer: paging.next.after, sizeParam: limit, maxPageSize: 100}";
    const LIST: &str = "{path: /contacts, vendorPath: /contacts, operations: [list, count], model: contact}";
    const SEARCH: &str = r#"{path: /contacts, vendorPath: /contacts, operations: [list], model: contact,
        where: {properties.email: {eq: email}},
        search: {body: {filterGroups: [{filters: "{filters}"}], limit: "{limit}", after: "{cursor}"},
                 filter: {propertyName: "{param}", operator: "{operator}", value: "{value}"}, operators: {eq: EQ}}}"#;

    fn refused(paging: &str, resource: &str, words: &[&str]) {
        let err = crate::parse("t.yaml", &element(paging, resource)).expect_err(resource).to_string();
        for w in words {
            assert!(err.contains(w), "{err:?} lacks {w:?}");
        }
    }

    #[test]
    fn the_test_shapes_load() {
        for (paging, resource) in [(CURSOR, LIST), (CURSOR, SEARCH)] {
            crate::parse("t.yaml", &element(paging, resource)).unwrap();
        }
        let offset = "{style: offset, offsetParam: start, sizeParam: limit, maxPageSize: 500}";
        let total = "{path: /contacts, vendorPath: /contacts, operations: [list, count], totalPointer: additional_data.pagination.total}";
        crate::parse("t.yaml", &element(offset, total)).unwrap();
        let link = "{style: link-header, maxPageSize: 250}";
        let counted = "{path: /contacts, vendorPath: /contacts.json, operations: [list, count], query: {status: any},
            count: {path: /contacts/count.json, pointer: /count}}";
        crate::parse("t.yaml", &element(link, counted)).unwrap();
        let some = "{path: /contacts, vendorPath: /contacts.json, operations: [list, count], model: contact,
            where: {properties.email: {eq: email}, createdAt: {min: since}}, count: {path: /contacts/count.json, pointer: count, filters: [since]}}";
        crate::parse("t.yaml", &element(link, some)).unwrap();
    }

    #[test]
    fn wrong_paging_and_pointers_are_refused_at_load() {
        refused("{style: cursr, maxPageSize: 10}", LIST, &["unknown variant `cursr`", "next-url", "link-header"]);
        refused("{style: cursor, cursorParam: after, cursorPointer: paging..after, maxPageSize: 10}", LIST, &["paging.cursorPointer", "paging..after", "is not a pointer"]);
        refused("{style: next-url, nextPointer: /links/~2, maxPageSize: 10}", LIST, &["paging.nextPointer", "'~'"]);
        refused("{style: cursor, cursorParam: after, cursorPointer: a, hasMorePointer: 'has more', maxPageSize: 10}", LIST, &["paging.hasMorePointer"]);
        refused("{style: page, pageParam: page, sizeParam: limit, firstPage: 1, maxPageSize: 0}", LIST, &["paging.maxPageSize"]);
        refused("{style: offset, offsetParam: ' ', sizeParam: limit, maxPageSize: 10}", LIST, &["paging.offsetParam"]);
        refused("{style: cursor, cursorPointer: a, maxPageSize: 10}", LIST, &["resource /contacts", "paging.cursorParam"]);
        refused("{style: link-header, maxPageSize: 10, pageParam: p}", LIST, &["unknown field `pageParam`"]);
        let with = |extra: &str| LIST.replace("model: contact}", &format!("model: contact, {extra}}}"));
        refused(CURSOR, &with("recordsPath: data."), &["resources[0].recordsPath", "is not a dotted path"]);
        refused(CURSOR, &with("totalPointer: ''"), &["totalPointer", "empty"]);
        refused(CURSOR, &with("paging: {style: cursor, cursorParam: after, cursorPointer: 'x..y', maxPageSize: 5}"), &["resource /contacts", "paging.cursorPointer"]);
        refused(CURSOR, &with("count: {path: '/c/{id}/count', pointer: n}"), &["count.path", "{id}"]);
        refused(CURSOR, &with("count: {path: /c/count, pointer: n..m}"), &["count.pointer"]);
        let filtered = "where: {properties.email: {eq: email}}, count: {path: /c/count, pointer: n, filters: [mail]}";
        refused(CURSOR, &with(filtered), &["resource /contacts", "count.filters", "'mail'", "it has: email"]);
        refused(CURSOR, "{path: /contacts, vendorPath: /contacts, operations: [list], count: {path: /c, pointer: n}}", &["operations lack count"]);
        refused(CURSOR, "{path: /contacts, vendorPath: /contacts, operations: [get], query: {a: b}}", &["'query' on a resource without 'list'"]);
    }

    #[test]
    fn wrong_searches_are_refused_at_load() {
        refused(CURSOR, &SEARCH.replace(r#", after: "{cursor}""#, ""), &["search.body", "{cursor}", "missing"]);
        refused(CURSOR, &SEARCH.replace(r#""{limit}""#, r#""{limt}""#), &["search.body", "{limt}"]);
        refused(CURSOR, &SEARCH.replace(r#"[{filters: "{filters}"}]"#, "[]"), &["{filters}", "missing"]);
        refused(CURSOR, &SEARCH.replace("operators: {eq: EQ}", "operators: {min: GTE}"), &["search.operators.eq", "where.properties.email"]);
        refused(CURSOR, &SEARCH.replace(r#"value: "{value}""#, r#"value: "{val}""#), &["search.filter", "{val}"]);
        refused(CURSOR, &SEARCH.replace("operators: {eq: EQ}", "operators: {eq: EQ}, method: FETCH"), &["search.method", "FETCH"]);
        refused(CURSOR, &SEARCH.replace("operators: {eq: EQ}", "operators: {eq: EQ}, names: {mail: email}"), &["search.names", "mail"]);
        refused("{style: next-url, nextPointer: next, maxPageSize: 10}", SEARCH, &["search", "not next-url"]);
        let offset = "{style: offset, offsetParam: start, sizeParam: limit, maxPageSize: 10}";
        refused(offset, SEARCH, &["{cursor}", "offset"]);
        refused(CURSOR, &SEARCH.replace("operations: [list]", "operations: [list], orderBy: {param: sort, separator: ' ', fields: [id]}"), &["orderBy", "search"]);
    }

    #[test]
    fn xml_rpc_elements_page_by_page() {
        let text = include_str!("../../../elements/infusionsoftcrm.yaml");
        let from = "paging: {style: page, pageParam: page, sizeParam: limit, firstPage: 0, maxPageSize: 1000}";
        assert!(text.contains(from));
        let err = crate::parse("x.yaml", &text.replacen(from, "paging: {style: offset, offsetParam: o, sizeParam: limit, maxPageSize: 1000}", 1))
            .unwrap_err()
            .to_string();
        assert!(err.contains("paging.style") && err.contains("offset"), "{err}");
    }

    #[test]
    fn search_bodies_take_filters_limit_and_cursor() {
        let r: Resource = serde_yaml_ng::from_str(
            "{path: /contacts, vendorPath: /contacts, operations: [list], model: m,
              where: {properties.email: {eq: email}, createdAt: {min: createdate_min, max: createdate_max}}}",
        )
        .unwrap();
        let s: Search = serde_yaml_ng::from_str(
            r#"{body: {filterGroups: [{filters: "{filters}"}], limit: "{limit}", after: "{cursor}", properties: [email]},
                filter: {propertyName: "{param}", operator: "{operator}", value: "{value}"},
                operators: {eq: EQ, min: GTE, max: LTE}, names: {createdate_min: createdate}}"#,
        )
        .unwrap();
        let filters = vec![("email".to_owned(), "a@b".to_owned()), ("createdate_min".to_owned(), "5".to_owned())];
        let first = search_body(&r, &s, &filters, 7, SearchAt::Cursor(None)).unwrap();
        assert_eq!(
            first,
            json!({"filterGroups": [{"filters": [{"propertyName": "email", "operator": "EQ", "value": "a@b"},
                {"propertyName": "createdate", "operator": "GTE", "value": "5"}]}], "limit": 7, "properties": ["email"]})
        );
        let next = search_body(&r, &s, &[], 7, SearchAt::Cursor(Some("c2"))).unwrap();
        assert_eq!(next, json!({"filterGroups": [{"filters": []}], "limit": 7, "after": "c2", "properties": ["email"]}));
        assert!(search_body(&r, &s, &[("nope".into(), "1".into())], 7, SearchAt::Cursor(None)).is_err());
    }
}
