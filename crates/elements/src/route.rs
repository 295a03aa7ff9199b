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

impl ElementDefinition {
    /// Matches `method path` (path relative to `/hubs/{hub}`). When several
    /// patterns match, the one with the most literal segments wins, so
    /// `/orders/statuses` is the statuses list and `/orders/count` a count.
    pub fn route(&self, method: &str, path: &str) -> Result<RouteMatch<'_>, RouteError> {
        let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
        let mut best: Option<(usize, RouteMatch<'_>)> = None;
        let mut path_matched = false;
        for resource in &self.resources {
            for &operation in &resource.operations {
                let (hub_method, suffix) = operation.hub_shape();
                let pattern: Vec<&str> = resource
                    .path
                    .split('/')
                    .chain(suffix.split('/'))
                    .filter(|s| !s.is_empty())
                    .collect();
                let Some((literals, params, id)) = match_segments(&pattern, &segments) else { continue };
                path_matched = true;
                if hub_method != method {
                    continue;
                }
                if best.as_ref().is_none_or(|(score, _)| literals > *score) {
                    best = Some((literals, RouteMatch { resource, operation, params, id }));
                }
            }
        }
        match best {
            Some((_, m)) => Ok(m),
            None if path_matched => Err(RouteError::MethodNotAllowed),
            None => Err(RouteError::NotFound),
        }
    }
}

type Captures = (usize, Vec<(String, String)>, Option<String>);

fn match_segments(pattern: &[&str], segments: &[&str]) -> Option<Captures> {
    if pattern.len() != segments.len() {
        return None;
    }
    let (mut literals, mut params, mut id) = (0, Vec::new(), None);
    for (p, s) in pattern.iter().zip(segments) {
        match p.strip_prefix('{').and_then(|p| p.strip_suffix('}')) {
            Some("id") => id = Some((*s).to_owned()),
            Some(name) => params.push((name.to_owned(), (*s).to_owned())),
            None if p == s => literals += 1,
            None => return None,
        }
    }
    Some((literals, params, id))
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
    }
}
