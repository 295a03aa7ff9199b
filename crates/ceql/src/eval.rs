//! In-engine evaluation of an expression over a vendor's JSON record.
//! The semantics are described in the crate's README and docs.

use std::cmp::Ordering;

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use serde_json::Value;

use crate::ast::{CompareOp, Expr, Field, Literal, Number};

impl Expr {
    /// Whether `record` satisfies the expression. See the crate docs for the
    /// rules (paths, nulls, numbers in strings, dates, LIKE).
    pub fn matches(&self, record: &Value) -> bool {
        match self {
            Expr::And(items) => items.iter().all(|e| e.matches(record)),
            Expr::Or(items) => items.iter().any(|e| e.matches(record)),
            Expr::Compare { field, op, value } => apply(*op, compare(field.lookup(record), value)),
            Expr::Like {
                field,
                pattern,
                negated,
            } => match field.lookup(record).and_then(like_text) {
                Some(text) => like_match(&text, pattern) != *negated,
                None => false,
            },
            Expr::In {
                field,
                values,
                negated,
            } => {
                let v = field.lookup(record);
                if is_null(v) {
                    return false;
                }
                let found = values
                    .iter()
                    .any(|lit| apply(CompareOp::Eq, compare(v, lit)));
                found != *negated
            }
            Expr::IsNull { field, negated } => is_null(field.lookup(record)) != *negated,
        }
    }
}

impl Field {
    /// The value at this path in `record`, `None` when absent.
    ///
    /// At each level an object is first asked for the whole remaining path
    /// as one key (so a vendor key that itself contains dots is found), then
    /// for the segment before the next dot. An array is indexed by a segment
    /// of decimal digits (`lines.0.sku`).
    pub fn lookup<'a>(&self, record: &'a Value) -> Option<&'a Value> {
        let mut cur = record;
        let mut rest = self.0.as_str();
        loop {
            let (head, tail) = match rest.split_once('.') {
                Some((h, t)) => (h, Some(t)),
                None => (rest, None),
            };
            let next = match cur {
                Value::Object(map) => {
                    if let Some(v) = map.get(rest) {
                        return Some(v);
                    }
                    map.get(head)?
                }
                Value::Array(items)
                    if !head.is_empty() && head.bytes().all(|b| b.is_ascii_digit()) =>
                {
                    items.get(head.parse::<usize>().ok()?)?
                }
                _ => return None,
            };
            match tail {
                None => return Some(next),
                Some(t) => {
                    cur = next;
                    rest = t;
                }
            }
        }
    }
}

fn is_null(v: Option<&Value>) -> bool {
    matches!(v, None | Some(Value::Null))
}

/// The result of comparing a record's value with a literal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    /// The value is missing or null: every comparison is false.
    Null,
    /// Different kinds of value: unequal, and unordered.
    Incomparable,
    /// Ordered values.
    Ordered(Ordering),
    /// Booleans: equal or not, never ordered.
    EqualityOnly(bool),
}

fn apply(op: CompareOp, outcome: Outcome) -> bool {
    match outcome {
        Outcome::Null => false,
        Outcome::Incomparable => op == CompareOp::Ne,
        Outcome::EqualityOnly(eq) => match op {
            CompareOp::Eq => eq,
            CompareOp::Ne => !eq,
            _ => false,
        },
        Outcome::Ordered(o) => match op {
            CompareOp::Eq => o == Ordering::Equal,
            CompareOp::Ne => o != Ordering::Equal,
            CompareOp::Lt => o == Ordering::Less,
            CompareOp::Gt => o == Ordering::Greater,
            CompareOp::Le => o != Ordering::Greater,
            CompareOp::Ge => o != Ordering::Less,
        },
    }
}

/// Compares the record's value (left) with the literal (right).
fn compare(value: Option<&Value>, lit: &Literal) -> Outcome {
    let Some(value) = value else {
        return Outcome::Null;
    };
    let numeric = |a: &str, b: &str| match (Decimal::parse(a), Decimal::parse(b)) {
        (Some(a), Some(b)) => Outcome::Ordered(a.cmp(&b)),
        _ => Outcome::Incomparable,
    };
    match (value, lit) {
        (Value::Null, _) => Outcome::Null,
        (Value::Number(n), Literal::Number(l)) => numeric(&n.to_string(), l.as_str()),
        (Value::String(s), Literal::Number(l)) => numeric(s, l.as_str()),
        (Value::Number(n), Literal::String(l)) => numeric(&n.to_string(), l),
        (Value::String(s), Literal::String(l)) => {
            // The literal is parsed first: it is rarely a date, and when it
            // is not, the record's value need not be tried.
            let instants = parse_instant(l).and_then(|b| Some((parse_instant(s)?, b)));
            match instants {
                Some((a, b)) => Outcome::Ordered(a.cmp(&b)),
                None => Outcome::Ordered(s.as_str().cmp(l.as_str())),
            }
        }
        (Value::Bool(b), Literal::Bool(l)) => Outcome::EqualityOnly(b == l),
        (Value::String(s), Literal::Bool(l)) => match parse_bool(s) {
            Some(b) => Outcome::EqualityOnly(b == *l),
            None => Outcome::Incomparable,
        },
        (Value::Bool(b), Literal::String(l)) => match parse_bool(l) {
            Some(l) => Outcome::EqualityOnly(*b == l),
            None => Outcome::Incomparable,
        },
        _ => Outcome::Incomparable,
    }
}

fn parse_bool(s: &str) -> Option<bool> {
    if s.eq_ignore_ascii_case("true") {
        Some(true)
    } else if s.eq_ignore_ascii_case("false") {
        Some(false)
    } else {
        None
    }
}

/// A date and time in one of the forms vendors send, as an instant.
///
/// RFC 3339 (`2018-01-10T21:05:30Z`, `...+01:00`, a space for `T`),
/// ISO 8601 with a `+0000` offset, RFC 2822 (`Wed, 10 Jan 2018 21:05:30
/// +0000`), ISO 8601 without an offset (`2026-11-23T10:15:00`, read as
/// UTC), and a bare date (`2018-01-10`, midnight UTC).
pub fn parse_instant(s: &str) -> Option<DateTime<Utc>> {
    // Every accepted form is at least 10 bytes (`2018-01-10`) and short.
    if !(10..=64).contains(&s.len()) {
        return None;
    }
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.to_utc());
    }
    if s.as_bytes()[0].is_ascii_digit() {
        for fmt in ["%Y-%m-%dT%H:%M:%S%.f%z", "%Y-%m-%d %H:%M:%S%.f%z"] {
            if let Ok(t) = DateTime::parse_from_str(s, fmt) {
                return Some(t.to_utc());
            }
        }
        if let Some(t) = parse_local(s) {
            return Some(t.and_utc());
        }
    }
    DateTime::parse_from_rfc2822(s).ok().map(|t| t.to_utc())
}

/// A date and time written without an offset (`2026-11-23T10:15:00`, a space for
/// `T`, fractions, minutes only, or a bare date at midnight): the forms
/// [`parse_instant`] reads as UTC. `None` for text with an offset or no date.
pub fn parse_local(s: &str) -> Option<NaiveDateTime> {
    if !(10..=64).contains(&s.len()) || !s.as_bytes()[0].is_ascii_digit() {
        return None;
    }
    for fmt in ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M"] {
        if let Ok(t) = NaiveDateTime::parse_from_str(s, fmt) {
            return Some(t);
        }
    }
    NaiveDate::parse_from_str(s, "%Y-%m-%d").ok().and_then(|d| d.and_hms_opt(0, 0, 0))
}

/// The text LIKE matches against: strings as they are, numbers as JSON
/// writes them, booleans as `true`/`false`; nothing for the rest.
fn like_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pat {
    /// `%`
    AnyRun,
    /// `_`
    AnyOne,
    Lit(char),
}

/// SQL LIKE, case-sensitive: `%` any run of characters (also none), `_`
/// exactly one character, `\` makes the next character literal (a `\` at
/// the very end stands for itself). Linear memory, `O(text × pattern)` time
/// at worst.
pub fn like_match(text: &str, pattern: &str) -> bool {
    let mut pat = Vec::new();
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        pat.push(match c {
            '%' => {
                if pat.last() == Some(&Pat::AnyRun) {
                    continue;
                }
                Pat::AnyRun
            }
            '_' => Pat::AnyOne,
            '\\' => Pat::Lit(chars.next().unwrap_or('\\')),
            c => Pat::Lit(c),
        });
    }
    let text: Vec<char> = text.chars().collect();
    let (mut ti, mut pi) = (0, 0);
    // After the last `%` seen: where the pattern resumes, and the text
    // position that `%` is currently taken to end at.
    let mut backtrack: Option<(usize, usize)> = None;
    while ti < text.len() {
        match pat.get(pi) {
            Some(Pat::AnyRun) => {
                pi += 1;
                backtrack = Some((pi, ti));
                continue;
            }
            Some(Pat::AnyOne) => {
                ti += 1;
                pi += 1;
                continue;
            }
            Some(Pat::Lit(c)) if *c == text[ti] => {
                ti += 1;
                pi += 1;
                continue;
            }
            _ => {}
        }
        match backtrack {
            Some((resume, end)) => {
                pi = resume;
                ti = end + 1;
                backtrack = Some((resume, end + 1));
            }
            None => return false,
        }
    }
    pat[pi..].iter().all(|p| *p == Pat::AnyRun)
}

/// An exact decimal: `0.d1d2d3... × 10^point`, with no leading or trailing
/// zero digits; zero has no digits.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Decimal {
    negative: bool,
    digits: Vec<u8>,
    point: i64,
}

impl Decimal {
    /// Parses the CEQL number grammar (also used for numbers that vendors
    /// send as strings, such as `"336.3200"`).
    fn parse(s: &str) -> Option<Decimal> {
        if !Number::is_valid(s) {
            return None;
        }
        let (negative, s) = match s.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, s),
        };
        let (mantissa, exp) = match s.find(['e', 'E']) {
            Some(i) => (&s[..i], &s[i + 1..]),
            None => (s, ""),
        };
        let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
        // Exponents are clamped far beyond any digit count an input can have.
        const CLAMP: i64 = 1 << 40;
        let (exp_neg, exp_digits) = match exp.strip_prefix('-') {
            Some(d) => (true, d),
            None => (false, exp.strip_prefix('+').unwrap_or(exp)),
        };
        let mut e: i64 = 0;
        for b in exp_digits.bytes() {
            e = (e * 10 + i64::from(b - b'0')).min(CLAMP);
        }
        if exp_neg {
            e = -e;
        }
        let all: Vec<u8> = int.bytes().chain(frac.bytes()).map(|b| b - b'0').collect();
        let leading = all.iter().take_while(|d| **d == 0).count();
        let mut digits = all[leading..].to_vec();
        while digits.last() == Some(&0) {
            digits.pop();
        }
        let len = i64::try_from(int.len()).unwrap_or(CLAMP);
        let lead = i64::try_from(leading).unwrap_or(CLAMP);
        let point = len - lead + e;
        if digits.is_empty() {
            return Some(Decimal {
                negative: false,
                digits,
                point: 0,
            });
        }
        Some(Decimal {
            negative,
            digits,
            point,
        })
    }

    fn signum(&self) -> i8 {
        match (self.digits.is_empty(), self.negative) {
            (true, _) => 0,
            (false, true) => -1,
            (false, false) => 1,
        }
    }
}

impl Ord for Decimal {
    fn cmp(&self, other: &Self) -> Ordering {
        let (a, b) = (self.signum(), other.signum());
        if a != b || a == 0 {
            return a.cmp(&b);
        }
        let magnitude = self
            .point
            .cmp(&other.point)
            .then_with(|| self.digits.cmp(&other.digits));
        if a < 0 {
            magnitude.reverse()
        } else {
            magnitude
        }
    }
}

impl PartialOrd for Decimal {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dec(s: &str) -> Decimal {
        Decimal::parse(s).unwrap()
    }

    #[test]
    fn decimals_compare_exactly() {
        assert_eq!(dec("336.3200").cmp(&dec("336.32")), Ordering::Equal);
        assert_eq!(dec("0").cmp(&dec("-0.000")), Ordering::Equal);
        assert_eq!(dec("1e3").cmp(&dec("1000")), Ordering::Equal);
        assert_eq!(dec("1.5E-2").cmp(&dec("0.015")), Ordering::Equal);
        assert_eq!(dec("007").cmp(&dec("7")), Ordering::Equal);
        assert_eq!(dec("9").cmp(&dec("10")), Ordering::Less);
        assert_eq!(dec("-9").cmp(&dec("-10")), Ordering::Greater);
        assert_eq!(dec("-0.5").cmp(&dec("0")), Ordering::Less);
        assert_eq!(dec("0.12").cmp(&dec("0.123")), Ordering::Less);
        assert_eq!(
            dec("12345678901234567890123").cmp(&dec("12345678901234567890124")),
            Ordering::Less
        );
        assert_eq!(
            dec("0.1").cmp(&dec("0.09999999999999999999")),
            Ordering::Greater
        );
        assert_eq!(
            dec("1e99999999999999999999999").cmp(&dec("1e999")),
            Ordering::Greater
        );
        assert!(Decimal::parse("12a").is_none());
        assert!(Decimal::parse("").is_none());
        assert!(Decimal::parse(" 1").is_none());
    }

    #[test]
    fn like_wildcards() {
        assert!(like_match("hello", "h%o"));
        assert!(like_match("hello", "%"));
        assert!(like_match("", "%"));
        assert!(!like_match("", "_"));
        assert!(like_match("hello", "h_llo"));
        assert!(!like_match("hello", "H%"));
        assert!(like_match("a%b", "a\\%b"));
        assert!(!like_match("axb", "a\\%b"));
        assert!(like_match("a_b", "a\\_b"));
        assert!(!like_match("axb", "a\\_b"));
        assert!(like_match("back\\", "back\\"));
        assert!(like_match("mississippi", "%iss%ppi"));
        assert!(!like_match("mississippi", "%iss%ppx"));
        assert!(like_match("ééé", "_é_"));
        assert!(like_match("abc", "%%%abc%%"));
        let long = "a".repeat(5000);
        assert!(!like_match(&long, &format!("{}b", "%a".repeat(50))));
    }

    #[test]
    fn instants() {
        let a = parse_instant("Wed, 10 Jan 2018 21:05:30 +0000").unwrap();
        assert_eq!(parse_instant("2018-01-10T21:05:30Z"), Some(a));
        assert_eq!(parse_instant("2018-01-10T22:05:30+01:00"), Some(a));
        assert_eq!(parse_instant("2018-01-10T21:05:30+0000"), Some(a));
        assert_eq!(parse_instant("2018-01-10T21:05:30"), Some(a));
        assert_eq!(parse_instant("2018-01-10 21:05:30"), Some(a));
        assert_eq!(parse_instant("2018-01-10T21:05:30.000Z"), Some(a));
        assert!(parse_instant("2018-01-10").unwrap() < a);
        assert!(parse_instant("hello world").is_none());
        assert!(parse_instant("336.3200").is_none());
        assert!(parse_instant("").is_none());
    }
}
