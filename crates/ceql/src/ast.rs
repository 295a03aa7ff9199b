//! The syntax tree of a CEQL expression.

use std::fmt;
use std::str::FromStr;

/// A parsed CEQL expression.
///
/// The parser produces trees in *normal form* (see [`Expr::normalized`]):
/// every `And`/`Or` has at least two operands, and no operand of an `And` is
/// itself an `And` (likewise for `Or`), even when the source wrote
/// `(a = 1 AND b = 2) AND c = 3`. Trees built by hand may be in any shape;
/// [`Display`](fmt::Display) prints them as their normal form.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Expr {
    /// All operands hold. An empty `And` always holds.
    And(Vec<Expr>),
    /// At least one operand holds. An empty `Or` never holds.
    Or(Vec<Expr>),
    /// `field <op> value`.
    Compare {
        field: Field,
        op: CompareOp,
        value: Literal,
    },
    /// `field LIKE 'pattern'` or `field NOT LIKE 'pattern'`.
    Like {
        field: Field,
        pattern: String,
        negated: bool,
    },
    /// `field IN (v, ...)` or `field NOT IN (v, ...)`. The parser never
    /// produces an empty list.
    In {
        field: Field,
        values: Vec<Literal>,
        negated: bool,
    },
    /// `field IS NULL` or `field IS NOT NULL`.
    IsNull { field: Field, negated: bool },
}

/// A field path such as `email` or `billing_address.email`: dot-separated
/// segments that walk nested JSON objects (see the crate docs).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Field(pub String);

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CompareOp {
    /// `=`
    Eq,
    /// `!=` (also written `<>`)
    Ne,
    /// `<`
    Lt,
    /// `>`
    Gt,
    /// `<=`
    Le,
    /// `>=`
    Ge,
}

/// A literal value on the right of an operator.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Literal {
    /// `'text'` (the unescaped text).
    String(String),
    /// `42`, `-3.5`, `1e6`: kept exactly as written.
    Number(Number),
    /// `true` or `false`.
    Bool(bool),
}

/// A decimal number kept as its exact text, so that nothing is lost to
/// floating point (`336.3200`, `12345678901234567890123`).
///
/// The text always matches `-?[0-9]+(\.[0-9]+)?([eE][+-]?[0-9]+)?`.
/// Equality is textual: `1.0` and `1` are different literals (they do
/// compare equal when evaluated, see [`Expr::matches`]).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Number(String);

/// The error for text that is not a CEQL number.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid number {0:?}")]
pub struct InvalidNumber(pub String);

impl Number {
    /// The number's text, exactly as written.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The nearest `f64` (the text always parses).
    pub fn to_f64(&self) -> f64 {
        self.0.parse().unwrap_or(f64::NAN)
    }

    /// The value as an `i64` when the text is a plain integer in range.
    pub fn as_i64(&self) -> Option<i64> {
        self.0.parse().ok()
    }

    /// The number as JSON: an integer when it is one that fits `i64`/`u64`,
    /// otherwise the nearest finite `f64`; `None` only for magnitudes beyond
    /// `f64` (such as `1e999`).
    pub fn to_json(&self) -> Option<serde_json::Number> {
        if let Ok(i) = self.0.parse::<i64>() {
            return Some(i.into());
        }
        if let Ok(u) = self.0.parse::<u64>() {
            return Some(u.into());
        }
        serde_json::Number::from_f64(self.to_f64())
    }

    /// Whether `s` is a CEQL number (the same grammar the parser accepts).
    pub fn is_valid(s: &str) -> bool {
        scan_number(s.as_bytes()) == Some(s.len())
    }
}

/// Length in bytes of the CEQL number at the start of `b`, if any:
/// `-?[0-9]+(\.[0-9]+)?([eE][+-]?[0-9]+)?`.
pub(crate) fn scan_number(b: &[u8]) -> Option<usize> {
    let digits = |from: usize| b[from..].iter().take_while(|c| c.is_ascii_digit()).count();
    let mut i = usize::from(b.first() == Some(&b'-'));
    let n = digits(i);
    if n == 0 {
        return None;
    }
    i += n;
    if b.get(i) == Some(&b'.') {
        let n = digits(i + 1);
        if n == 0 {
            return None;
        }
        i += 1 + n;
    }
    if matches!(b.get(i), Some(b'e' | b'E')) {
        let mut j = i + 1;
        if matches!(b.get(j), Some(b'+' | b'-')) {
            j += 1;
        }
        let n = digits(j);
        if n == 0 {
            return None;
        }
        i = j + n;
    }
    Some(i)
}

impl FromStr for Number {
    type Err = InvalidNumber;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if Number::is_valid(s) {
            Ok(Number(s.to_owned()))
        } else {
            Err(InvalidNumber(s.to_owned()))
        }
    }
}

impl TryFrom<&str> for Number {
    type Error = InvalidNumber;
    fn try_from(s: &str) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<i64> for Number {
    fn from(n: i64) -> Self {
        Number(n.to_string())
    }
}

impl From<u64> for Number {
    fn from(n: u64) -> Self {
        Number(n.to_string())
    }
}

impl From<&serde_json::Number> for Number {
    fn from(n: &serde_json::Number) -> Self {
        // serde_json prints integers plainly and floats in the shortest form
        // that reads back (`336.32`, `1e300`, `1e-7`): all valid CEQL numbers.
        let text = n.to_string();
        if Number::is_valid(&text) {
            Number(text)
        } else {
            // Not reachable with serde_json's formatting; stay total anyway.
            Number("0".to_owned())
        }
    }
}

impl TryFrom<f64> for Number {
    type Error = InvalidNumber;
    /// Finite values only.
    fn try_from(f: f64) -> Result<Self, Self::Error> {
        match serde_json::Number::from_f64(f) {
            Some(n) => Ok(Number::from(&n)),
            None => Err(InvalidNumber(f.to_string())),
        }
    }
}

impl fmt::Display for Number {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Literal {
    /// The literal as JSON (numbers as by [`Number::to_json`], or as a
    /// string when too large for `f64`).
    pub fn to_json(&self) -> serde_json::Value {
        match self {
            Literal::String(s) => serde_json::Value::String(s.clone()),
            Literal::Bool(b) => serde_json::Value::Bool(*b),
            Literal::Number(n) => match n.to_json() {
                Some(n) => serde_json::Value::Number(n),
                None => serde_json::Value::String(n.as_str().to_owned()),
            },
        }
    }

    /// The literal as plain text, for a vendor query parameter: a string
    /// without quotes, a number as written, `true`/`false`.
    pub fn to_plain_string(&self) -> String {
        match self {
            Literal::String(s) => s.clone(),
            Literal::Number(n) => n.as_str().to_owned(),
            Literal::Bool(b) => b.to_string(),
        }
    }
}

impl From<&str> for Literal {
    fn from(s: &str) -> Self {
        Literal::String(s.to_owned())
    }
}

impl From<String> for Literal {
    fn from(s: String) -> Self {
        Literal::String(s)
    }
}

impl From<bool> for Literal {
    fn from(b: bool) -> Self {
        Literal::Bool(b)
    }
}

impl From<i64> for Literal {
    fn from(n: i64) -> Self {
        Literal::Number(n.into())
    }
}

impl From<Number> for Literal {
    fn from(n: Number) -> Self {
        Literal::Number(n)
    }
}

impl Field {
    /// A field from its path.
    pub fn new(path: impl Into<String>) -> Self {
        Field(path.into())
    }

    /// The path text, e.g. `billing_address.email`.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The dot-separated segments of the path.
    pub fn segments(&self) -> impl Iterator<Item = &str> {
        self.0.split('.')
    }
}

impl From<&str> for Field {
    fn from(s: &str) -> Self {
        Field(s.to_owned())
    }
}

impl From<String> for Field {
    fn from(s: String) -> Self {
        Field(s)
    }
}

impl CompareOp {
    /// The operator as CEQL writes it (`!=` for [`CompareOp::Ne`]).
    pub fn as_str(self) -> &'static str {
        match self {
            CompareOp::Eq => "=",
            CompareOp::Ne => "!=",
            CompareOp::Lt => "<",
            CompareOp::Gt => ">",
            CompareOp::Le => "<=",
            CompareOp::Ge => ">=",
        }
    }
}

impl fmt::Display for CompareOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Expr {
    /// `field op value`.
    pub fn compare(field: impl Into<Field>, op: CompareOp, value: impl Into<Literal>) -> Expr {
        Expr::Compare {
            field: field.into(),
            op,
            value: value.into(),
        }
    }

    /// The conjunction of `exprs` in normal form: `None` when empty, the
    /// expression itself when there is one. Handy for putting back together
    /// the clauses the engine keeps after sending others to the vendor.
    pub fn all(exprs: impl IntoIterator<Item = Expr>) -> Option<Expr> {
        Expr::And(exprs.into_iter().collect()).normalized_opt()
    }

    /// The disjunction of `exprs` in normal form: `None` when empty.
    pub fn any(exprs: impl IntoIterator<Item = Expr>) -> Option<Expr> {
        Expr::Or(exprs.into_iter().collect()).normalized_opt()
    }

    /// The top-level conjuncts: for `a AND (b AND c)` the three clauses
    /// `a`, `b`, `c`; for anything that is not an `And`, itself. An `Or` is
    /// one conjunct, whatever it contains.
    pub fn conjuncts(&self) -> Vec<&Expr> {
        let mut out = Vec::new();
        collect_same(self, true, &mut out);
        out
    }

    /// The top-level disjuncts: for `a OR (b OR c)` the three clauses; for
    /// anything that is not an `Or`, itself.
    pub fn disjuncts(&self) -> Vec<&Expr> {
        let mut out = Vec::new();
        collect_same(self, false, &mut out);
        out
    }

    /// Owned version of [`Expr::conjuncts`].
    pub fn into_conjuncts(self) -> Vec<Expr> {
        match self {
            Expr::And(items) => items.into_iter().flat_map(Expr::into_conjuncts).collect(),
            other => vec![other],
        }
    }

    /// The fields the expression mentions, once each, in order of first
    /// appearance.
    pub fn fields(&self) -> Vec<&Field> {
        let mut out: Vec<&Field> = Vec::new();
        self.visit_leaves(&mut |leaf| {
            if let Some(f) = leaf.field() {
                if !out.contains(&f) {
                    out.push(f);
                }
            }
        });
        out
    }

    /// The field of a predicate (`None` for `And`/`Or`).
    pub fn field(&self) -> Option<&Field> {
        match self {
            Expr::And(_) | Expr::Or(_) => None,
            Expr::Compare { field, .. }
            | Expr::Like { field, .. }
            | Expr::In { field, .. }
            | Expr::IsNull { field, .. } => Some(field),
        }
    }

    /// The operator as CEQL writes it: `=`, `LIKE`, `NOT IN`, `IS NULL`,
    /// `AND`, ... For error messages that name the field and operator.
    pub fn operator(&self) -> &'static str {
        match self {
            Expr::And(_) => "AND",
            Expr::Or(_) => "OR",
            Expr::Compare { op, .. } => op.as_str(),
            Expr::Like { negated: false, .. } => "LIKE",
            Expr::Like { negated: true, .. } => "NOT LIKE",
            Expr::In { negated: false, .. } => "IN",
            Expr::In { negated: true, .. } => "NOT IN",
            Expr::IsNull { negated: false, .. } => "IS NULL",
            Expr::IsNull { negated: true, .. } => "IS NOT NULL",
        }
    }

    /// The normal form: nested `And`s (and nested `Or`s) flattened into
    /// their parent, `And`/`Or` of one operand replaced by that operand,
    /// empty `And` operands of an `And` (and empty `Or` operands of an
    /// `Or`) dropped. Meaning is unchanged. The parser's output is already
    /// normal, and `parse(&e.to_string())` gives `e.normalized()`.
    pub fn normalized(&self) -> Expr {
        match self.clone().normalized_opt() {
            Some(e) => e,
            None => match self {
                Expr::Or(_) => Expr::Or(Vec::new()),
                _ => Expr::And(Vec::new()),
            },
        }
    }

    /// Normal form, with `None` standing for an empty `And`/`Or`.
    fn normalized_opt(self) -> Option<Expr> {
        fn flatten(items: Vec<Expr>, is_and: bool, out: &mut Vec<Expr>) {
            for item in items {
                match item.normalized_opt() {
                    None => {}
                    Some(Expr::And(inner)) if is_and => out.extend(inner),
                    Some(Expr::Or(inner)) if !is_and => out.extend(inner),
                    Some(other) => out.push(other),
                }
            }
        }
        let (items, is_and) = match self {
            Expr::And(items) => (items, true),
            Expr::Or(items) => (items, false),
            leaf => return Some(leaf),
        };
        let mut out = Vec::with_capacity(items.len());
        flatten(items, is_and, &mut out);
        match out.len() {
            0 => None,
            1 => out.pop(),
            _ if is_and => Some(Expr::And(out)),
            _ => Some(Expr::Or(out)),
        }
    }

    fn visit_leaves<'a>(&'a self, f: &mut dyn FnMut(&'a Expr)) {
        match self {
            Expr::And(items) | Expr::Or(items) => {
                for item in items {
                    item.visit_leaves(f);
                }
            }
            leaf => f(leaf),
        }
    }
}

fn collect_same<'a>(e: &'a Expr, and: bool, out: &mut Vec<&'a Expr>) {
    match e {
        Expr::And(items) if and => items.iter().for_each(|i| collect_same(i, and, out)),
        Expr::Or(items) if !and => items.iter().for_each(|i| collect_same(i, and, out)),
        other => out.push(other),
    }
}
