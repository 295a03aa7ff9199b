//! CEQL, the Cloud Elements Query Language: the `where` parameter of hub
//! list calls (`GET /hubs/{hub}/{resource}?where=...`).
//!
//! - [`parse`] turns text into an [`Expr`], or a [`ParseError`] with the
//!   byte position of the problem.
//! - `Display` on [`Expr`] prints canonical CEQL that parses back to the
//!   same tree.
//! - [`Expr::conjuncts`] splits the top-level `AND`, so the engine can send
//!   some clauses to the vendor and keep the rest; [`Expr::all`] puts the
//!   kept ones back together.
//! - [`Expr::matches`] evaluates an expression over a vendor's JSON record.
//!
//! # Syntax
//!
//! ```text
//! total >= 100 AND (status IN ('Shipped', 'Completed') OR `billing_address.email` LIKE '%@example.com')
//! ```
//!
//! - Comparisons `=`, `!=` (also `<>`), `<`, `>`, `<=`, `>=`; `LIKE` and
//!   `NOT LIKE` with a string pattern; `IN (...)` and `NOT IN (...)` with a
//!   non-empty list; `IS NULL`, `IS NOT NULL`; `AND` binds tighter than
//!   `OR`; parentheses group. `NOT LIKE`, `NOT IN` and `<>` go beyond what
//!   Cloud Elements documented. There is no prefix `NOT`.
//! - The field is on the left, the value on the right. Values are
//!   single-quoted strings (`''` is a quote), numbers (`42`, `-3.5`,
//!   `1e6`, kept as written), `true`, `false`.
//! - Plain field names: a letter or `_`, then letters, digits, `_`, and
//!   dots between non-empty segments (`billing_address.email`). In
//!   backquotes anything goes (`` `first name` ``, ``` `a``b` ``
//!   for a backquote); `` `billing_address.email` `` is the same field as
//!   the plain spelling.
//! - Keywords (`AND OR NOT LIKE IN IS NULL TRUE FALSE`) are
//!   case-insensitive and cannot be plain field names.
//! - At most [`MAX_INPUT_LEN`] bytes and [`MAX_DEPTH`] nested parentheses.
//!
//! # Evaluation
//!
//! [`Expr::matches`] follows SQL, simplified; the crate's README has the
//! full table. In short: paths walk nested objects (and arrays by index);
//! a missing field is null; any comparison with null is false (`!=`, `NOT
//! LIKE`, `NOT IN` included) and only `IS NULL` finds it; numbers compare
//! exactly as decimals, also against strings that hold a number
//! (`"336.3200"`); two strings that are both dates compare as instants;
//! other strings compare by code point; booleans match `true`/`false` and
//! the strings `"true"`/`"false"`; values of different kinds are unequal
//! and unordered; `LIKE` is case-sensitive.

mod ast;
mod display;
mod error;
mod eval;
mod lexer;
mod parser;

pub use ast::{CompareOp, Expr, Field, InvalidNumber, Literal, Number};
pub use display::{quote_field, quote_string};
pub use error::{ParseError, ParseErrorKind};
pub use eval::{like_match, parse_instant, parse_local};
pub use parser::{parse, MAX_DEPTH, MAX_INPUT_LEN};

/// The README's examples, compiled and run as doc tests.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
