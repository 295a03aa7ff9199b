//! `{name}` templates, used for base URLs, vendor paths and auth values.

use thiserror::Error;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum TemplateError {
    #[error("template '{template}' has an unclosed '{{'")]
    Unclosed { template: String },
    #[error("no value for '{name}'")]
    Missing { name: String },
}

/// A parsed template: literal text and placeholders, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    parts: Vec<Part>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Literal(String),
    Placeholder(String),
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
            parts.push(Part::Placeholder(rest[open + 1..open + close].to_owned()));
            rest = &rest[open + close + 1..];
        }
        if !rest.is_empty() {
            parts.push(Part::Literal(rest.to_owned()));
        }
        Ok(Template { parts })
    }

    pub fn placeholders(&self) -> impl Iterator<Item = &str> {
        self.parts.iter().filter_map(|p| match p {
            Part::Placeholder(name) => Some(name.as_str()),
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
                Part::Placeholder(name) => match value(name) {
                    Some(v) => out.push_str(&v),
                    None => return Err(TemplateError::Missing { name: name.clone() }),
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
}
