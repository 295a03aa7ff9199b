//! Property tests: printing round-trips, parsing never panics, evaluation is
//! consistent.

use proptest::prelude::*;
use serde_json::{json, Value};
use switchyard_ceql::{parse, CompareOp, Expr, Field, Literal, Number};

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 512,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

fn arb_field() -> impl Strategy<Value = Field> {
    prop_oneof![
        4 => "[a-zA-Z_][a-zA-Z0-9_]{0,8}(\\.[a-zA-Z0-9_]{1,5}){0,2}",
        1 => prop::sample::select(vec!["and", "OR", "Not", "like", "IN", "is", "null", "TRUE", "false"])
            .prop_map(str::to_owned),
        1 => "[ `'.a-zé0-9()=,-]{1,8}",
        1 => "(?s).{1,10}",
    ]
    .prop_map(Field)
}

fn arb_number() -> impl Strategy<Value = Number> {
    "-?[0-9]{1,22}(\\.[0-9]{1,12})?([eE][+-]?[0-9]{1,3})?".prop_map(|s| s.parse().unwrap())
}

fn arb_string() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z' %_\\\\`]{0,10}",
        "(?s).{0,12}",
        Just("Wed, 10 Jan 2018 21:05:30 +0000".to_owned()),
    ]
}

fn arb_literal() -> impl Strategy<Value = Literal> {
    prop_oneof![
        arb_string().prop_map(Literal::String),
        arb_number().prop_map(Literal::Number),
        any::<bool>().prop_map(Literal::Bool),
    ]
}

fn arb_op() -> impl Strategy<Value = CompareOp> {
    use CompareOp::*;
    prop::sample::select(vec![Eq, Ne, Lt, Gt, Le, Ge])
}

fn arb_leaf() -> impl Strategy<Value = Expr> {
    prop_oneof![
        3 => (arb_field(), arb_op(), arb_literal()).prop_map(|(field, op, value)| Expr::Compare { field, op, value }),
        1 => (arb_field(), arb_string(), any::<bool>())
            .prop_map(|(field, pattern, negated)| Expr::Like { field, pattern, negated }),
        1 => (arb_field(), prop::collection::vec(arb_literal(), 1..4), any::<bool>())
            .prop_map(|(field, values, negated)| Expr::In { field, values, negated }),
        1 => (arb_field(), any::<bool>()).prop_map(|(field, negated)| Expr::IsNull { field, negated }),
    ]
}

/// Any tree without empty groups (which have no spelling), in any shape:
/// singletons and same-operator nesting included.
fn arb_expr() -> impl Strategy<Value = Expr> {
    arb_leaf().prop_recursive(5, 48, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 1..5).prop_map(Expr::And),
            prop::collection::vec(inner, 1..5).prop_map(Expr::Or),
        ]
    })
}

/// Text made of CEQL-like pieces, to reach deeper into the parser than
/// random characters do.
fn arb_token_soup() -> impl Strategy<Value = String> {
    let pieces = vec![
        "(", ")", "a", "b.c", "`d e`", "`", "'x'", "'", "''", "=", "!=", "<>", "<", ">=", "==",
        "!", "AND", "or", "NOT", "LIKE", "IN", "IS", "NULL", "true", "1", "-2.5", "1e", "-", ",",
        "é", "\"", " ", "\n", "..", "1.", "%",
    ];
    prop::collection::vec(prop::sample::select(pieces), 0..24).prop_map(|v| v.concat())
}

fn arb_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        (-1e6f64..1e6).prop_map(|f| json!(f)),
        arb_string().prop_map(Value::String),
        arb_number().prop_map(|n| Value::String(n.as_str().to_owned())),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map("[a-e]", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn printing_round_trips(e in arb_expr()) {
        let text = e.to_string();
        let back = parse(&text).map_err(|err| TestCaseError::fail(format!("{text:?}: {err}")))?;
        prop_assert_eq!(&back, &e.normalized(), "text: {:?}", text);
        prop_assert_eq!(back.to_string(), text);
        // The parser's output is already normal.
        prop_assert_eq!(back.normalized(), back.clone());
    }

    #[test]
    fn parse_never_panics_on_arbitrary_text(s in "(?s).{0,64}") {
        check_parse(&s)?;
    }

    #[test]
    fn parse_never_panics_on_token_soup(s in arb_token_soup()) {
        check_parse(&s)?;
    }

    #[test]
    fn evaluation_survives_printing(e in arb_expr(), record in arb_json()) {
        let back = parse(&e.to_string()).unwrap();
        prop_assert_eq!(back.matches(&record), e.matches(&record));
    }

    #[test]
    fn negations_are_complements_except_on_null(field in "[a-e]", lit in arb_literal(), pattern in arb_string(), record in arb_json()) {
        let field = Field(field);
        let present = !matches!(field.lookup(&record), None | Some(Value::Null));
        let is_null = |negated| Expr::IsNull { field: field.clone(), negated }.matches(&record);
        prop_assert_eq!(is_null(false), !present);
        prop_assert_eq!(is_null(true), present);
        let eq = Expr::compare(field.clone(), CompareOp::Eq, lit.clone()).matches(&record);
        let ne = Expr::compare(field.clone(), CompareOp::Ne, lit.clone()).matches(&record);
        let within = |negated| Expr::In { field: field.clone(), values: vec![lit.clone()], negated }.matches(&record);
        if present {
            prop_assert_eq!(eq, !ne);
            prop_assert_eq!(within(false), eq);
            prop_assert_eq!(within(true), ne);
        } else {
            prop_assert!(!eq && !ne && !within(false) && !within(true));
        }
        let like = |negated| Expr::Like { field: field.clone(), pattern: pattern.clone(), negated }.matches(&record);
        let likeable = matches!(field.lookup(&record), Some(Value::String(_) | Value::Number(_) | Value::Bool(_)));
        if likeable {
            prop_assert_eq!(like(false), !like(true));
        } else {
            prop_assert!(!like(false) && !like(true));
        }
    }

    #[test]
    fn integers_compare_like_integers_at_their_boundaries(
        (a, b) in near_pairs(),
        record_form in 0usize..8,
        literal_form in 0usize..8,
        as_string in any::<bool>(),
    ) {
        // The record holds `a` as a JSON number or as a numeric string in some
        // spelling; the literal is `b` in another. Equal operands, neighbours and
        // the ends of i64 are drawn on purpose.
        let record = if as_string { json!({"x": integer_form(a, record_form)}) } else { json!({"x": a}) };
        let text = integer_form(b, literal_form);
        let lit: Number = text.parse().unwrap();
        check_ops(&record, Literal::Number(lit), a.cmp(&b), &format!("{record} vs {text}"))?;
    }

    #[test]
    fn decimals_compare_like_scaled_integers_at_their_boundaries(
        (a, b) in near_pairs_within(10_000_000_000),
        record_form in 0usize..6,
        literal_form in 0usize..6,
        as_json_number in any::<bool>(),
    ) {
        // Thousandths, so a one-unit difference is the last decimal place.
        let record_text = decimal_form(a, record_form);
        let record = if as_json_number {
            // As a vendor may send it: a JSON number, read into a float and written back.
            json!({"x": serde_json::from_str::<Value>(&decimal_form(a, 0)).unwrap()})
        } else {
            json!({"x": record_text})
        };
        let text = decimal_form(b, literal_form);
        check_ops(&record, Literal::Number(text.parse().unwrap()), a.cmp(&b), &format!("{record} vs {text}"))?;
    }

    #[test]
    fn dates_compare_like_instants_across_forms(
        (a, b) in near_instants(),
        record_form in 0usize..DATE_FORMS,
        literal_form in 0usize..DATE_FORMS,
    ) {
        let (record_text, a) = date_form(a, record_form);
        let (text, b) = date_form(b, literal_form);
        let record = json!({"x": record_text});
        check_ops(&record, Literal::String(text.clone()), a.cmp(&b), &format!("{record_text} vs {text}"))?;
    }

    #[test]
    fn text_compares_by_code_point((a, b) in near_strings()) {
        // A prefix no number or date has: these compare as text.
        let (a, b) = (format!("s:{a}"), format!("s:{b}"));
        let code_points = |s: &str| s.chars().map(u32::from).collect::<Vec<u32>>();
        let want = code_points(&a).cmp(&code_points(&b));
        check_ops(&json!({"x": a}), Literal::String(b.clone()), want, &format!("{a:?} vs {b:?}"))?;
    }

    #[test]
    fn like_agrees_with_a_simple_matcher(text in "[ab%_\\\\]{0,5}", pattern in "[ab%_\\\\]{0,5}", negated in any::<bool>()) {
        // Wildcards and backslashes in the text too, to see them matched literally.
        let got = Expr::Like { field: Field::new("x"), pattern: pattern.clone(), negated }.matches(&json!({"x": text}));
        let text: Vec<char> = text.chars().collect();
        prop_assert_eq!(got, reference_like(&text, &like_tokens(&pattern)) != negated, "{:?} LIKE {:?}", text, pattern);
    }

    #[test]
    fn evaluation_agrees_with_a_simple_reference(e in arb_ref_expr(), record in arb_ref_record()) {
        let json = record_json(&record);
        let expr = to_expr(&e);
        prop_assert_eq!(expr.matches(&json), reference(&e, &record), "{} on {}", expr, json);
    }
}

/// Every operator against the order `want` of the record's `x` and `lit`.
fn check_ops(record: &Value, lit: Literal, want: std::cmp::Ordering, shown: &str) -> Result<(), TestCaseError> {
    use std::cmp::Ordering::*;
    for (op, expected) in [
        (CompareOp::Eq, want == Equal),
        (CompareOp::Ne, want != Equal),
        (CompareOp::Lt, want == Less),
        (CompareOp::Le, want == Less || want == Equal),
        (CompareOp::Gt, want == Greater),
        (CompareOp::Ge, want == Greater || want == Equal),
    ] {
        let got = Expr::compare("x", op, lit.clone()).matches(record);
        prop_assert_eq!(got, expected, "{} {} ({:?})", shown, op.as_str(), want);
    }
    Ok(())
}

/// A pair that is often equal or one apart, sometimes anything.
fn near_pairs() -> impl Strategy<Value = (i64, i64)> {
    let a = prop_oneof![
        4 => any::<i64>(),
        1 => -3i64..3,
        1 => prop::sample::select(vec![i64::MIN, i64::MIN + 1, i64::MAX - 1, i64::MAX]),
    ];
    (a, prop_oneof![3 => Just(0i64), 2 => Just(1i64), 2 => Just(-1i64), 1 => any::<i64>()])
        .prop_map(|(a, d)| (a, a.saturating_add(d)))
}

/// As `near_pairs`, within `-limit..limit`.
fn near_pairs_within(limit: i64) -> impl Strategy<Value = (i64, i64)> {
    let step = prop_oneof![3 => Just(0i64), 2 => Just(1i64), 2 => Just(-1i64), 1 => Just(1000i64), 1 => -limit..limit];
    (-limit..limit, step).prop_map(move |(a, d)| (a, (a + d).clamp(-limit, limit)))
}

/// Integer `n` spelled in one of the CEQL number forms that mean it (the
/// grammar `-?digits[.digits][e[+-]digits]`; see crates/ceql/README.md).
fn integer_form(n: i64, form: usize) -> String {
    let sign = if n < 0 { "-" } else { "" };
    let m = n.unsigned_abs().to_string();
    let trimmed = m.trim_end_matches('0');
    let zeros = m.len() - trimmed.len();
    match form {
        0 => n.to_string(),
        1 => format!("{sign}{m}.0"),
        2 => format!("{sign}{m}.000"),
        3 => format!("{sign}{m}e0"),
        4 => format!("{sign}{m}00e-2"),
        5 => format!("{sign}00{m}"),
        6 if n == 0 => "-0.0".to_owned(),
        6 => format!("{sign}{trimmed}e{zeros}"),
        _ if n == 0 => "0E+5".to_owned(),
        // One digit before the point: 1234 is 1.234E+3.
        _ => format!("{sign}{}.{}0E+{}", &m[..1], &m[1..], m.len() - 1),
    }
}

/// `n` thousandths written in one of the forms that mean it.
fn decimal_form(n: i64, form: usize) -> String {
    let sign = if n < 0 { "-" } else { "" };
    let m = n.unsigned_abs();
    let (int, frac) = (m / 1000, m % 1000);
    match form {
        0 => format!("{sign}{int}.{frac:03}"),
        // BigCommerce writes money with four places.
        1 => format!("{sign}{int}.{frac:03}0"),
        2 => format!("{sign}{m}e-3"),
        3 => format!("{sign}{m}000E-6"),
        4 if frac == 0 => format!("{sign}{int}"),
        4 => format!("{sign}{int}.{}", format!("{frac:03}").trim_end_matches('0')),
        _ => format!("{sign}0{int}.{frac:03}00"),
    }
}

/// Instants in milliseconds (2000..2040): often equal, a millisecond, a second, a
/// minute, an hour or a day apart.
fn near_instants() -> impl Strategy<Value = (i64, i64)> {
    const FROM: i64 = 946_684_800_000;
    const TO: i64 = 2_208_988_800_000;
    let a = prop_oneof![
        3 => FROM..TO,
        // Whole seconds and whole days: forms without milliseconds or without a time meet.
        1 => (FROM / 1000..TO / 1000).prop_map(|s| s * 1000),
        1 => (FROM / 86_400_000..TO / 86_400_000).prop_map(|d| d * 86_400_000),
    ];
    let step = prop_oneof![
        4 => Just(0i64),
        1 => prop::sample::select(vec![1i64, -1, 1000, -1000, 60_000, -3_600_000, 86_400_000, -86_400_000]),
        1 => -10_000_000_000i64..10_000_000_000,
    ];
    (a, step).prop_map(|(a, d)| (a, a + d))
}

const DATE_FORMS: usize = 10;

/// Instant `ms` in one of the date forms CEQL reads (crates/ceql/README.md, Dates),
/// and the instant that text stands for (forms without milliseconds or without a
/// time of day drop them).
fn date_form(ms: i64, form: usize) -> (String, i64) {
    use chrono::{FixedOffset, TimeZone, Utc};
    let floor = |unit: i64| ms.div_euclid(unit) * unit;
    let (shown, kept) = match form {
        0..=2 | 6 => (ms, ms),
        8 => (floor(86_400_000), floor(86_400_000)),
        _ => (floor(1000), floor(1000)),
    };
    let t = Utc.timestamp_millis_opt(shown).unwrap();
    let east = |hours: i32, minutes: i32| t.with_timezone(&FixedOffset::east_opt(hours * 3600 + minutes * 60).unwrap());
    let text = match form {
        0 => t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string(),
        1 => east(5, 30).format("%Y-%m-%dT%H:%M:%S%.3f%:z").to_string(),
        2 => east(-8, 0).format("%Y-%m-%d %H:%M:%S%.3f%:z").to_string(),
        3 => t.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
        4 => east(1, 0).format("%Y-%m-%dT%H:%M:%S%z").to_string(),
        5 => east(-5, 0).to_rfc2822(),
        6 => t.format("%Y-%m-%dT%H:%M:%S%.3f").to_string(),
        7 => t.format("%Y-%m-%dT%H:%M:%S").to_string(),
        8 => t.format("%Y-%m-%d").to_string(),
        _ => t.format("%a, %d %b %Y %H:%M:%S GMT").to_string(),
    };
    (text, kept)
}

/// Two strings that are often equal, a prefix of one another, or differ in one
/// last code point; sometimes unrelated.
fn near_strings() -> impl Strategy<Value = (String, String)> {
    ("(?s).{0,6}", 0usize..6, "(?s).{0,3}").prop_map(|(a, how, extra)| {
        let mut chars: Vec<char> = a.chars().collect();
        let b = match how {
            0 | 1 => a.clone(),
            2 => format!("{a}{extra}"),
            3 => {
                chars.pop();
                chars.into_iter().collect()
            }
            4 => extra,
            _ => {
                if let Some(last) = chars.last_mut() {
                    *last = char::from_u32(u32::from(*last) + 1).unwrap_or(*last);
                }
                chars.into_iter().collect()
            }
        };
        (a, b)
    })
}

/// A record value for the reference evaluator: small domains, so that equal
/// values meet often.
#[derive(Debug, Clone)]
enum RVal {
    Int(i64),
    /// A number in a JSON string, as BigCommerce sends money.
    NumText(i64),
    Text(String),
    Bool(bool),
    Null,
}

#[derive(Debug, Clone)]
enum RLit {
    Int(i64),
    /// A quoted number: `'2'`.
    NumText(i64),
    Text(String),
    Bool(bool),
}

#[derive(Debug, Clone)]
enum RExpr {
    Cmp(&'static str, CompareOp, RLit),
    Like(&'static str, String, bool),
    In(&'static str, Vec<RLit>, bool),
    IsNull(&'static str, bool),
    And(Vec<RExpr>),
    Or(Vec<RExpr>),
}

/// Fields `a`..`c` may be in a record, `d` never is.
type RRecord = Vec<(&'static str, RVal)>;

fn arb_rval() -> impl Strategy<Value = RVal> {
    prop_oneof![
        (-3i64..=3).prop_map(RVal::Int),
        (-3i64..=3).prop_map(RVal::NumText),
        // Short lower-case text: never a number, a date or a boolean.
        "[xyz]{0,2}".prop_map(RVal::Text),
        any::<bool>().prop_map(RVal::Bool),
        Just(RVal::Null),
    ]
}

fn arb_rlit() -> impl Strategy<Value = RLit> {
    prop_oneof![
        (-3i64..=3).prop_map(RLit::Int),
        (-3i64..=3).prop_map(RLit::NumText),
        "[xyz]{0,2}".prop_map(RLit::Text),
        any::<bool>().prop_map(RLit::Bool),
    ]
}

fn arb_ref_field() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec!["a", "b", "c", "d"])
}

fn arb_ref_record() -> impl Strategy<Value = RRecord> {
    prop::collection::vec((prop::sample::select(vec!["a", "b", "c"]), arb_rval()), 0..4).prop_map(|pairs| {
        // One value a field: the first one drawn.
        let mut record: RRecord = Vec::new();
        for (k, v) in pairs {
            if !record.iter().any(|(f, _)| *f == k) {
                record.push((k, v));
            }
        }
        record
    })
}

fn arb_ref_expr() -> impl Strategy<Value = RExpr> {
    let leaf = prop_oneof![
        3 => (arb_ref_field(), arb_op(), arb_rlit()).prop_map(|(f, op, l)| RExpr::Cmp(f, op, l)),
        1 => (arb_ref_field(), "[xyz0-9%_-]{0,4}", any::<bool>()).prop_map(|(f, p, n)| RExpr::Like(f, p, n)),
        1 => (arb_ref_field(), prop::collection::vec(arb_rlit(), 1..4), any::<bool>()).prop_map(|(f, v, n)| RExpr::In(f, v, n)),
        1 => (arb_ref_field(), any::<bool>()).prop_map(|(f, n)| RExpr::IsNull(f, n)),
    ];
    leaf.prop_recursive(3, 16, 3, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 1..4).prop_map(RExpr::And),
            prop::collection::vec(inner, 1..4).prop_map(RExpr::Or),
        ]
    })
}

fn record_json(record: &RRecord) -> Value {
    let mut map = serde_json::Map::new();
    for (k, v) in record {
        let v = match v {
            RVal::Int(n) => json!(n),
            RVal::NumText(n) => json!(n.to_string()),
            RVal::Text(s) => json!(s),
            RVal::Bool(b) => json!(b),
            RVal::Null => Value::Null,
        };
        map.insert((*k).to_owned(), v);
    }
    Value::Object(map)
}

fn to_literal(l: &RLit) -> Literal {
    match l {
        RLit::Int(n) => Literal::from(*n),
        RLit::NumText(n) => Literal::String(n.to_string()),
        RLit::Text(s) => Literal::String(s.clone()),
        RLit::Bool(b) => Literal::Bool(*b),
    }
}

fn to_expr(e: &RExpr) -> Expr {
    match e {
        RExpr::Cmp(f, op, l) => Expr::compare(*f, *op, to_literal(l)),
        RExpr::Like(f, p, n) => Expr::Like { field: Field::new(*f), pattern: p.clone(), negated: *n },
        RExpr::In(f, v, n) => Expr::In { field: Field::new(*f), values: v.iter().map(to_literal).collect(), negated: *n },
        RExpr::IsNull(f, n) => Expr::IsNull { field: Field::new(*f), negated: *n },
        RExpr::And(items) => Expr::And(items.iter().map(to_expr).collect()),
        RExpr::Or(items) => Expr::Or(items.iter().map(to_expr).collect()),
    }
}

/// What a comparison of a present value with a literal gives, by the README's table.
enum Cmp {
    Ordered(std::cmp::Ordering),
    /// Booleans: equal or not, never ordered.
    Equal(bool),
    /// Different kinds: unequal and unordered.
    Incomparable,
}

fn reference_compare(v: &RVal, l: &RLit) -> Cmp {
    use RLit as L;
    use RVal as V;
    match (v, l) {
        // A number against a number, or a number against a numeric string: numerically.
        (V::Int(a) | V::NumText(a), L::Int(b)) | (V::Int(a), L::NumText(b)) => Cmp::Ordered(a.cmp(b)),
        // Two strings compare as text, even when both look numeric.
        (V::NumText(a), L::NumText(b)) => Cmp::Ordered(a.to_string().cmp(&b.to_string())),
        (V::NumText(a), L::Text(b)) => Cmp::Ordered(a.to_string().as_str().cmp(b.as_str())),
        (V::Text(a), L::NumText(b)) => Cmp::Ordered(a.as_str().cmp(b.to_string().as_str())),
        (V::Text(a), L::Text(b)) => Cmp::Ordered(a.cmp(b)),
        (V::Bool(a), L::Bool(b)) => Cmp::Equal(a == b),
        _ => Cmp::Incomparable,
    }
}

/// A LIKE pattern read as the README says: `%` any run, `_` one character, a
/// backslash makes the next character literal, a trailing backslash is itself.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Tok {
    Run,
    One,
    Char(char),
}

fn like_tokens(pattern: &str) -> Vec<Tok> {
    let mut out = Vec::new();
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        out.push(match c {
            '%' => Tok::Run,
            '_' => Tok::One,
            '\\' => Tok::Char(chars.next().unwrap_or('\\')),
            c => Tok::Char(c),
        });
    }
    out
}

/// SQL LIKE by plain recursion (the patterns here are short).
fn reference_like(text: &[char], pattern: &[Tok]) -> bool {
    match pattern.split_first() {
        None => text.is_empty(),
        Some((Tok::Run, rest)) => (0..=text.len()).any(|i| reference_like(&text[i..], rest)),
        Some((Tok::One, rest)) => !text.is_empty() && reference_like(&text[1..], rest),
        Some((Tok::Char(c), rest)) => text.first() == Some(c) && reference_like(&text[1..], rest),
    }
}

/// A second, deliberately simple evaluator for this small domain.
fn reference(e: &RExpr, record: &RRecord) -> bool {
    use std::cmp::Ordering::*;
    let value = |f: &str| record.iter().find(|(k, _)| *k == f).map(|(_, v)| v).filter(|v| !matches!(v, RVal::Null));
    let equal = |v: &RVal, l: &RLit| match reference_compare(v, l) {
        Cmp::Ordered(o) => o == Equal,
        Cmp::Equal(e) => e,
        Cmp::Incomparable => false,
    };
    match e {
        RExpr::And(items) => items.iter().all(|i| reference(i, record)),
        RExpr::Or(items) => items.iter().any(|i| reference(i, record)),
        RExpr::IsNull(f, negated) => value(f).is_none() != *negated,
        RExpr::Cmp(f, op, l) => {
            let Some(v) = value(f) else { return false };
            match (reference_compare(v, l), op) {
                (Cmp::Incomparable, op) => *op == CompareOp::Ne,
                (Cmp::Equal(e), CompareOp::Eq) => e,
                (Cmp::Equal(e), CompareOp::Ne) => !e,
                (Cmp::Equal(_), _) => false,
                (Cmp::Ordered(o), CompareOp::Eq) => o == Equal,
                (Cmp::Ordered(o), CompareOp::Ne) => o != Equal,
                (Cmp::Ordered(o), CompareOp::Lt) => o == Less,
                (Cmp::Ordered(o), CompareOp::Le) => o == Less || o == Equal,
                (Cmp::Ordered(o), CompareOp::Gt) => o == Greater,
                (Cmp::Ordered(o), CompareOp::Ge) => o == Greater || o == Equal,
            }
        }
        RExpr::Like(f, pattern, negated) => {
            let text = match value(f) {
                Some(RVal::Int(n) | RVal::NumText(n)) => n.to_string(),
                Some(RVal::Text(s)) => s.clone(),
                Some(RVal::Bool(b)) => b.to_string(),
                _ => return false,
            };
            let text: Vec<char> = text.chars().collect();
            reference_like(&text, &like_tokens(pattern)) != *negated
        }
        RExpr::In(f, values, negated) => {
            let Some(v) = value(f) else { return false };
            values.iter().any(|l| equal(v, l)) != *negated
        }
    }
}

/// Parses `s`: an error must point inside the input at a character
/// boundary; a success must round-trip.
fn check_parse(s: &str) -> Result<(), TestCaseError> {
    match parse(s) {
        Ok(e) => {
            let text = e.to_string();
            prop_assert_eq!(parse(&text).ok(), Some(e), "printed as {:?}", text);
        }
        Err(err) => {
            prop_assert!(err.position <= s.len());
            prop_assert!(s.is_char_boundary(err.position));
            prop_assert_eq!(err.column, s[..err.position].chars().count());
            prop_assert!(!err.message.is_empty());
        }
    }
    Ok(())
}
