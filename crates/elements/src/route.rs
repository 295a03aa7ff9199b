//! Which resource and operation a hub request names.

use crate::model::{ElementDefinition, Operation, Resource};

/// A hub path matched to a resource.
#[derive(Debug)]
pub struct RouteMatch<'a> {
    pub resource: &'a Resource,
    pub operation: Operation,
    /// `{name}` segments of the resource path, by name.
    pub params: Vec<(String, String)>,
    /// The object id of item operations (`get`, `update`, `delete`).
    pub id: Option<String>,
}

/// Why a hub path did not route.
#[derive(Debug, PartialEq, Eq)]
pub enum RouteError {
    NotFound,
    /// The path exists, but not for this method.
    MethodNotAllowed,
}

/// One resource operation's hub path, split into segments once.
#[derive(Debug, Clone)]
pub(crate) struct RoutePattern {
    resource: usize,
    operation: Operation,
    method: &'static str,
    segments: Vec<Segment>,
    /// How many segments are literals (the more, the more specific).
    literals: usize,
}

#[derive(Debug, Clone)]
enum Segment {
    Literal(String),
    Id,
    Param(String),
}

/// Every resource operation's pattern, in the order of the element's data.
pub(crate) fn compile(resources: &[Resource]) -> Vec<RoutePattern> {
    let mut out = Vec::new();
    for (index, resource) in resources.iter().enumerate() {
        for &operation in &resource.operations {
            let (method, suffix) = operation.hub_shape();
            let segments: Vec<Segment> = resource
                .path
                .split('/')
                .chain(suffix.split('/'))
                .filter(|s| !s.is_empty())
                .map(|s| match s.strip_prefix('{').and_then(|p| p.strip_suffix('}')) {
                    Some("id") => Segment::Id,
                    Some(name) => Segment::Param(name.to_owned()),
                    None => Segment::Literal(s.to_owned()),
                })
                .collect();
            let literals = segments.iter().filter(|s| matches!(s, Segment::Literal(_))).count();
            out.push(RoutePattern { resource: index, operation, method, segments, literals });
        }
    }
    out
}

impl ElementDefinition {
    /// Matches `method path` (path relative to `/hubs/{hub}`). When several
    /// patterns match, the one with the most literal segments wins, so
    /// `/orders/statuses` is the statuses list and `/orders/count` a count.
    /// The patterns are compiled from `resources` on first use.
    pub fn route(&self, method: &str, path: &str) -> Result<RouteMatch<'_>, RouteError> {
        let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
        // The most specific pattern decides what the path names, whatever the method:
        // `DELETE /orders/count` names the count (no DELETE: 405), not an order "count".
        let fitting: Vec<&RoutePattern> = self
            .route_patterns()
            .iter()
            .filter(|p| p.segments.len() == segments.len() && matches(&p.segments, &segments))
            .collect();
        let Some(most) = fitting.iter().map(|p| p.literals).max() else {
            return Err(RouteError::NotFound);
        };
        let Some(pattern) = fitting.into_iter().find(|p| p.literals == most && p.method == method) else {
            return Err(RouteError::MethodNotAllowed);
        };
        let (mut params, mut id) = (Vec::new(), None);
        for (p, s) in pattern.segments.iter().zip(&segments) {
            match p {
                Segment::Id => id = Some((*s).to_owned()),
                Segment::Param(name) => params.push((name.clone(), (*s).to_owned())),
                Segment::Literal(_) => {}
            }
        }
        Ok(RouteMatch { resource: &self.resources[pattern.resource], operation: pattern.operation, params, id })
    }
}

fn matches(pattern: &[Segment], segments: &[&str]) -> bool {
    pattern.iter().zip(segments).all(|(p, s)| match p {
        Segment::Literal(l) => l == s,
        Segment::Id | Segment::Param(_) => true,
    })
}

#[cfg(test)]
mod tests {
    use crate::{Catalog, Operation};

    #[test]
    fn literal_segments_win_over_parameters() {
        let catalog = Catalog::builtin();
        let bc = catalog.get("bigcommerce").unwrap();
        let r = bc.route("GET", "/orders/count").unwrap();
        assert_eq!((r.resource.vendor_path.as_str(), r.operation), ("/orders", Operation::Count));
        let r = bc.route("GET", "/orders/statuses").unwrap();
        assert_eq!((r.resource.vendor_path.as_str(), r.operation), ("/order_statuses", Operation::List));
        // The store-wide counts are not the count of an order "products" or "shipments".
        for sub in ["products", "shipments"] {
            let r = bc.route("GET", &format!("/orders/{sub}/count")).unwrap();
            assert_eq!((r.resource.vendor_path.as_str(), r.operation), (format!("/orders/{sub}").as_str(), Operation::Count));
            assert!(r.params.is_empty());
        }
        let r = bc.route("GET", "/orders/100").unwrap();
        assert_eq!((r.operation, r.id.as_deref()), (Operation::Get, Some("100")));
        let r = bc.route("GET", "/orders/100/products/7").unwrap();
        assert_eq!(r.params, vec![("orderId".to_owned(), "100".to_owned())]);
        assert_eq!(r.id.as_deref(), Some("7"));
        assert_eq!(bc.route("PATCH", "/orders/5").unwrap().operation, Operation::Update);
        assert_eq!(bc.route("GET", "/ping").unwrap().operation, Operation::Read);
    }

    #[test]
    fn unknown_paths_and_methods_are_told_apart() {
        let catalog = Catalog::builtin();
        let bc = catalog.get("bigcommerce").unwrap();
        assert_eq!(bc.route("GET", "/nothing").unwrap_err(), super::RouteError::NotFound);
        assert_eq!(bc.route("DELETE", "/orders/statuses/1").unwrap_err(), super::RouteError::MethodNotAllowed);
        assert_eq!(bc.route("POST", "/ping").unwrap_err(), super::RouteError::MethodNotAllowed);
        // A named sub-resource is not a record id of its parent for other methods.
        assert_eq!(bc.route("DELETE", "/orders/count").unwrap_err(), super::RouteError::MethodNotAllowed);
        assert_eq!(bc.route("PATCH", "/orders/statuses").unwrap_err(), super::RouteError::MethodNotAllowed);
    }
}
