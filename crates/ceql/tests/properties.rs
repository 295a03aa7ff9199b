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
    fn numbers_compare_like_integers(a in any::<i64>(), b in any::<i64>(), as_string in any::<bool>()) {
        let record = if as_string { json!({"x": a.to_string()}) } else { json!({"x": a}) };
        let holds = |op| Expr::compare("x", op, b).matches(&record);
        prop_assert_eq!(holds(CompareOp::Lt), a < b);
        prop_assert_eq!(holds(CompareOp::Le), a <= b);
        prop_assert_eq!(holds(CompareOp::Gt), a > b);
        prop_assert_eq!(holds(CompareOp::Ge), a >= b);
        prop_assert_eq!(holds(CompareOp::Eq), a == b);
        prop_assert_eq!(holds(CompareOp::Ne), a != b);
    }

    #[test]
    fn decimals_compare_like_scaled_integers(a in -10_000_000i64..10_000_000, b in -10_000_000i64..10_000_000, pad in 0usize..4) {
        // a / 1000 written as a decimal string with `pad` extra zeros.
        let dec = |n: i64| {
            let sign = if n < 0 { "-" } else { "" };
            let m = n.unsigned_abs();
            format!("{sign}{}.{:03}{}", m / 1000, m % 1000, "0".repeat(pad))
        };
        let record = json!({"x": dec(a)});
        let lit: Number = dec(b).parse().unwrap();
        let lt = Expr::compare("x", CompareOp::Lt, Literal::Number(lit.clone())).matches(&record);
        let eq = Expr::compare("x", CompareOp::Eq, Literal::Number(lit)).matches(&record);
        prop_assert_eq!(lt, a < b);
        prop_assert_eq!(eq, a == b);
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
