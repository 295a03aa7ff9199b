//! Canonical printing: the text parses back to the same (normalized) tree.

use std::fmt::{self, Write as _};

use crate::ast::{Expr, Field, Literal};

/// Words that cannot be plain field names (compared case-insensitively);
/// such fields are printed in backquotes.
pub(crate) const KEYWORDS: &[&str] = &[
    "AND", "OR", "NOT", "LIKE", "IN", "IS", "NULL", "TRUE", "FALSE",
];

pub(crate) fn is_keyword(word: &str) -> bool {
    KEYWORDS.iter().any(|k| k.eq_ignore_ascii_case(word))
}

/// First character of a plain identifier.
pub(crate) fn is_ident_start(c: char) -> bool {
    c.is_alphabetic() || c == '_'
}

/// Later characters of a plain identifier (dots separate path segments).
pub(crate) fn is_ident_continue(c: char) -> bool {
    c.is_alphanumeric() || c == '_' || c == '.'
}

/// Whether `name` can be written without backquotes: it starts with a
/// letter or `_`, has only letters, digits, `_` and single dots between
/// non-empty segments, and is not a keyword.
pub(crate) fn is_plain_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    match chars.next() {
        Some(c) if is_ident_start(c) => {}
        _ => return false,
    }
    chars.all(is_ident_continue)
        && !name.ends_with('.')
        && !name.contains("..")
        && !is_keyword(name)
}

/// `s` as a CEQL string literal: in single quotes, with each `'` doubled.
///
/// ```
/// assert_eq!(switchyard_ceql::quote_string("O'Brien"), "'O''Brien'");
/// ```
pub fn quote_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('\'');
    for c in s.chars() {
        if c == '\'' {
            out.push('\'');
        }
        out.push(c);
    }
    out.push('\'');
    out
}

/// A field name as CEQL: plain when it can be, otherwise in backquotes with
/// each backquote doubled.
///
/// ```
/// assert_eq!(switchyard_ceql::quote_field("billing_address.email"), "billing_address.email");
/// assert_eq!(switchyard_ceql::quote_field("order"), "order");
/// assert_eq!(switchyard_ceql::quote_field("in"), "`in`");
/// assert_eq!(switchyard_ceql::quote_field("first name"), "`first name`");
/// ```
pub fn quote_field(name: &str) -> String {
    if is_plain_identifier(name) {
        return name.to_owned();
    }
    let mut out = String::with_capacity(name.len() + 2);
    out.push('`');
    for c in name.chars() {
        if c == '`' {
            out.push('`');
        }
        out.push(c);
    }
    out.push('`');
    out
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&quote_field(&self.0))
    }
}

impl fmt::Display for Literal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Literal::String(s) => f.write_str(&quote_string(s)),
            Literal::Number(n) => f.write_str(n.as_str()),
            Literal::Bool(true) => f.write_str("true"),
            Literal::Bool(false) => f.write_str("false"),
        }
    }
}

/// Prints the normal form ([`Expr::normalized`]) with upper-case keywords,
/// single spaces, and parentheses around every `AND`/`OR` that is an
/// operand of another (needed for `OR` inside `AND`, added for clarity for
/// `AND` inside `OR`).
///
/// An empty `And` or `Or` has no CEQL spelling and prints as `()`, which
/// does not parse.
impl fmt::Display for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let normal = self.normalized();
        write_expr(&normal, f)
    }
}

/// Writes an expression already in normal form.
fn write_expr(e: &Expr, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    match e {
        Expr::And(items) | Expr::Or(items) => {
            if items.is_empty() {
                return f.write_str("()");
            }
            let sep = if matches!(e, Expr::And(_)) {
                " AND "
            } else {
                " OR "
            };
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    f.write_str(sep)?;
                }
                if matches!(item, Expr::And(_) | Expr::Or(_)) {
                    f.write_char('(')?;
                    write_expr(item, f)?;
                    f.write_char(')')?;
                } else {
                    write_expr(item, f)?;
                }
            }
            Ok(())
        }
        Expr::Compare { field, op, value } => write!(f, "{field} {op} {value}"),
        Expr::Like {
            field,
            pattern,
            negated,
        } => {
            let not = if *negated { "NOT " } else { "" };
            write!(f, "{field} {not}LIKE {}", quote_string(pattern))
        }
        Expr::In {
            field,
            values,
            negated,
        } => {
            let not = if *negated { "NOT " } else { "" };
            write!(f, "{field} {not}IN (")?;
            for (i, v) in values.iter().enumerate() {
                if i > 0 {
                    f.write_str(", ")?;
                }
                write!(f, "{v}")?;
            }
            f.write_char(')')
        }
        Expr::IsNull { field, negated } => {
            let not = if *negated { "NOT " } else { "" };
            write!(f, "{field} IS {not}NULL")
        }
    }
}
