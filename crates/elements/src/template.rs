//! `{name}` templates, used for base URLs, vendor paths and auth values.
//!
//! A placeholder may end in a filter applied to its value: `{store.url|parent}` is
//! the URL without its last path segment (`https://h/stores/abc/v2` gives
//! `https://h/stores/abc`), so another base URL can be derived from a configured one
//! without dot segments (`{store.url|parent}/v3`).

use thiserror::Error;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum TemplateError {
    #[error("template '{template}' has an unclosed '{{'")]
    Unclosed { template: String },
    #[error("no value for '{name}'")]
    Missing { name: String },
    #[error("template '{template}' uses the filter '{filter}'; the filters are: parent")]
    UnknownFilter { template: String, filter: String },
    /// The value cannot go through the filter (`parent` of a URL without a path).
    #[error("'{name}' has no {what}")]
    Filter { name: String, what: &'static str },
}

/// What a placeholder's value goes through before it is placed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Filter {
    /// The URL (or path) without its last path segment; trailing `/` ignored.
    Parent,
}

impl Filter {
    fn parse(name: &str) -> Option<Filter> {
        match name.trim() {
            "parent" => Some(Filter::Parent),
            _ => None,
        }
    }

    fn apply(self, name: &str, value: &str) -> Result<String, TemplateError> {
        match self {
            Filter::Parent => {
                let none = || TemplateError::Filter { name: name.to_owned(), what: "path segment to drop (parent)" };
                if value.contains(['?', '#']) {
                    return Err(TemplateError::Filter { name: name.to_owned(), what: "parent: it holds a query or fragment" });
                }
                let trimmed = value.trim_end_matches('/');
                // The path starts after `scheme://authority`; a bare path starts at once.
                let path_start = match trimmed.find("://") {
                    Some(i) => trimmed[i + 3..].find('/').map(|j| i + 3 + j).ok_or_else(none)?,
                    None => 0,
                };
                let cut = trimmed.rfind('/').filter(|c| *c >= path_start).ok_or_else(none)?;
                Ok(trimmed[..cut].to_owned())
            }
        }
    }
}

/// A parsed template: literal text and placeholders, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    parts: Vec<Part>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Literal(String),
    Placeholder(String, Option<Filter>),
}

impl Template {
    pub fn parse(template: &str) -> Result<Self, TemplateError> {
        let mut parts = Vec::new();
        let mut rest = template;
        while let Some(open) = rest.find('{') {
            if open > 0 {
                parts.push(Part::Literal(rest[..open].to_owned()));
            }
            let close = rest[open..].find('}').ok_or_else(|| TemplateError::Unclosed {
                template: template.to_owned(),
            })?;
            let inner = &rest[open + 1..open + close];
            let part = match inner.split_once('|') {
                Some((name, filter)) => {
                    let f = Filter::parse(filter).ok_or_else(|| TemplateError::UnknownFilter {
                        template: template.to_owned(),
                        filter: filter.to_owned(),
                    })?;
                    Part::Placeholder(name.trim().to_owned(), Some(f))
                }
                None => Part::Placeholder(inner.to_owned(), None),
            };
            parts.push(part);
            rest = &rest[open + close + 1..];
        }
        if !rest.is_empty() {
            parts.push(Part::Literal(rest.to_owned()));
        }
        Ok(Template { parts })
    }

    /// The names the template's placeholders take their values from (filters left out).
    pub fn placeholders(&self) -> impl Iterator<Item = &str> {
        self.parts.iter().filter_map(|p| match p {
            Part::Placeholder(name, _) => Some(name.as_str()),
            Part::Literal(_) => None,
        })
    }

    /// Fills the placeholders; every one must have a value.
    pub fn render<'a>(
        &self,
        mut value: impl FnMut(&str) -> Option<std::borrow::Cow<'a, str>>,
    ) -> Result<String, TemplateError> {
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Literal(text) => out.push_str(text),
                Part::Placeholder(name, filter) => match (value(name), filter) {
                    (Some(v), None) => out.push_str(&v),
                    (Some(v), Some(f)) => out.push_str(&f.apply(name, &v)?),
                    (None, _) => return Err(TemplateError::Missing { name: name.clone() }),
                },
            }
        }
        Ok(out)
    }
}

/// Parses and renders in one go.
pub fn render<'a>(
    template: &str,
    value: impl FnMut(&str) -> Option<std::borrow::Cow<'a, str>>,
) -> Result<String, TemplateError> {
    Template::parse(template)?.render(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::borrow::Cow;

    #[test]
    fn renders_placeholders_and_literals() {
        let t = Template::parse("/orders/{id}/products").unwrap();
        assert_eq!(t.placeholders().collect::<Vec<_>>(), vec!["id"]);
        let out = t.render(|n| (n == "id").then_some(Cow::Borrowed("7"))).unwrap();
        assert_eq!(out, "/orders/7/products");
    }

    #[test]
    fn missing_and_unclosed_are_errors() {
        assert_eq!(
            render("{store.url}", |_| None),
            Err(TemplateError::Missing { name: "store.url".into() })
        );
        assert!(matches!(Template::parse("/a/{id"), Err(TemplateError::Unclosed { .. })));
    }

    #[test]
    fn parent_drops_the_last_path_segment() {
        let t = Template::parse("{store.url|parent}/v3").unwrap();
        assert_eq!(t.placeholders().collect::<Vec<_>>(), vec!["store.url"]);
        let with = |v: &'static str| t.render(|_| Some(Cow::Borrowed(v)));
        assert_eq!(with("https://api.bigcommerce.com/stores/abc/v2").unwrap(), "https://api.bigcommerce.com/stores/abc/v3");
        assert_eq!(with("https://api.bigcommerce.com/stores/abc/v2/").unwrap(), "https://api.bigcommerce.com/stores/abc/v3");
        assert_eq!(with("http://127.0.0.1:8080/v2").unwrap(), "http://127.0.0.1:8080/v3");
        for bad in ["https://h", "https://h/", "https://h/a?x=1", "https://h/a#f"] {
            assert!(matches!(with(bad), Err(TemplateError::Filter { .. })), "{bad}");
        }
        let err = Template::parse("{store.url|dirname}").unwrap_err();
        assert!(err.to_string().contains("dirname") && err.to_string().contains("parent"), "{err}");
    }
}
