//! Every kind of parse error, with its exact position.

use switchyard_ceql::{parse, ParseErrorKind as K, MAX_DEPTH, MAX_INPUT_LEN};

/// Parses `input`, expects an error of `kind` at byte `position`.
#[track_caller]
fn err_at(input: &str, kind: K, position: usize) -> String {
    let e = parse(input).expect_err(input);
    assert_eq!((e.kind, e.position), (kind, position), "{input:?}: {e}");
    e.to_string()
}

#[test]
fn empty_input() {
    err_at("", K::Empty, 0);
    err_at("  \n\t ", K::Empty, 0);
}

#[test]
fn unterminated_string_points_at_its_opening_quote() {
    err_at("name = 'Ann", K::UnterminatedString, 7);
    err_at("name = 'it''s", K::UnterminatedString, 7);
    err_at("a = 1 AND name = '", K::UnterminatedString, 17);
    err_at("name = `x", K::UnterminatedIdentifier, 7);
    err_at("`abc = 1", K::UnterminatedIdentifier, 0);
}

#[test]
fn unexpected_tokens_point_at_the_token() {
    err_at("a = 1 b = 2", K::UnexpectedToken, 6);
    err_at("a == 1", K::UnexpectedToken, 3);
    err_at("a = = 1", K::UnexpectedToken, 4);
    err_at("a 1", K::UnexpectedToken, 2);
    err_at("a = b", K::UnexpectedToken, 4);
    err_at("'x' = a", K::UnexpectedToken, 0);
    err_at("5 = a", K::UnexpectedToken, 0);
    err_at("AND a = 1", K::UnexpectedToken, 0);
    err_at("a = 1 AND OR b = 2", K::UnexpectedToken, 10);
    err_at("NOT a = 1", K::UnexpectedToken, 0);
    err_at("a NOT = 1", K::UnexpectedToken, 6);
    err_at("a IS 1", K::UnexpectedToken, 5);
    err_at("a IS NOT 1", K::UnexpectedToken, 9);
    err_at("a LIKE 5", K::UnexpectedToken, 7);
    err_at("a IN 5", K::UnexpectedToken, 5);
    err_at("a IN ()", K::UnexpectedToken, 6);
    err_at("a IN (1 2)", K::UnexpectedToken, 8);
    err_at("a IN (1,)", K::UnexpectedToken, 8);
    err_at("a = null", K::UnexpectedToken, 4);
    err_at("() ", K::UnexpectedToken, 1);
    err_at("(a = 1 b = 2)", K::UnexpectedToken, 7);
}

#[test]
fn unexpected_characters() {
    err_at("a = \"x\"", K::UnexpectedChar, 4);
    err_at("a ! 1", K::UnexpectedChar, 2);
    err_at("a = 1 && b = 2", K::UnexpectedChar, 6);
    err_at("a = - 1", K::UnexpectedChar, 4);
    err_at("a = 1;", K::UnexpectedChar, 5);
    // The position is in bytes; the column in characters.
    let e = parse("ééé = 1 ; b").unwrap_err();
    assert_eq!((e.position, e.column), (11, 8));
}

#[test]
fn invalid_numbers_and_names() {
    err_at("a = 1.", K::InvalidNumber, 4);
    err_at("a = 12abc", K::InvalidNumber, 4);
    err_at("a = 1.2.3", K::InvalidNumber, 4);
    err_at("a = 1e", K::InvalidNumber, 4);
    err_at("a = -x", K::UnexpectedChar, 4);
    err_at("a. = 1", K::InvalidField, 0);
    err_at("x = 1 OR a..b = 1", K::InvalidField, 9);
    err_at("`` = 1", K::InvalidField, 0);
}

#[test]
fn missing_value_or_operator_at_the_end() {
    err_at("a =", K::UnexpectedEnd, 3);
    err_at("a = ", K::UnexpectedEnd, 4);
    err_at("a", K::UnexpectedEnd, 1);
    err_at("a = 1 AND", K::UnexpectedEnd, 9);
    err_at("a = 1 OR ", K::UnexpectedEnd, 9);
    err_at("a LIKE", K::UnexpectedEnd, 6);
    err_at("a IS", K::UnexpectedEnd, 4);
    err_at("a IS NOT", K::UnexpectedEnd, 8);
    err_at("a NOT", K::UnexpectedEnd, 5);
    err_at("a IN", K::UnexpectedEnd, 4);
    err_at("a IN (1,", K::UnexpectedEnd, 8);
}

#[test]
fn unbalanced_parentheses() {
    err_at("(a = 1", K::UnclosedParen, 0);
    err_at("a = 1 AND ((b = 2) OR c = 3", K::UnclosedParen, 10);
    err_at("a IN (1, 2", K::UnclosedParen, 5);
    err_at("a = 1)", K::UnmatchedParen, 5);
    err_at(")", K::UnmatchedParen, 0);
    err_at("(a = 1))", K::UnmatchedParen, 7);
}

#[test]
fn nesting_beyond_the_limit() {
    let deep = format!(
        "{}a = 1{}",
        "(".repeat(MAX_DEPTH + 1),
        ")".repeat(MAX_DEPTH + 1)
    );
    err_at(&deep, K::TooDeep, MAX_DEPTH);
    // Far beyond: no stack overflow, same answer.
    let adversarial = "(".repeat(MAX_INPUT_LEN);
    err_at(&adversarial, K::TooDeep, MAX_DEPTH);
}

#[test]
fn input_beyond_the_limit() {
    let long = format!("a = '{}'", "x".repeat(MAX_INPUT_LEN));
    err_at(&long, K::TooLong, MAX_INPUT_LEN);
    // The position stays on a character boundary.
    let wide = format!("a = '{}'", "é".repeat(MAX_INPUT_LEN));
    let e = parse(&wide).unwrap_err();
    assert_eq!(e.kind, K::TooLong);
    assert!(wide.is_char_boundary(e.position));
    assert!(e.position <= MAX_INPUT_LEN);
}

#[test]
fn the_first_problem_is_reported() {
    // The unmatched ')' comes before the unterminated string.
    err_at("a = 1) 'x", K::UnmatchedParen, 5);
    // An unterminated string before a syntax error.
    err_at("a = 'x", K::UnterminatedString, 4);
}

#[test]
fn error_messages() {
    let cases = [
        "",
        "name = 'Ann",
        "name = `x",
        "a = 1 b = 2",
        "a == 1",
        "a = b",
        "'x' = a",
        "AND a = 1",
        "NOT a = 1",
        "a NOT = 1",
        "a IS 1",
        "a IS NOT 1",
        "a LIKE 5",
        "a IN 5",
        "a IN ()",
        "a IN (1 2)",
        "a = null",
        "a = \"x\"",
        "a ! 1",
        "a = - 1",
        "a = 12abc",
        "a..b = 1",
        "`` = 1",
        "a =",
        "a",
        "a = 1 AND",
        "(a = 1",
        "a IN (1, 2",
        "a = 1)",
        "(a = 1 b = 2)",
        "name = 'O'Brien'",
        "a = 'a very long string that goes on and on and on and on' 'next'",
    ];
    let mut out = String::new();
    for input in cases {
        let e = parse(input).unwrap_err();
        out.push_str(&format!("{input:?}\n    {e}\n"));
    }
    let deep = "(".repeat(MAX_DEPTH + 1);
    out.push_str(&format!(
        "\"(\" x {}\n    {}\n",
        MAX_DEPTH + 1,
        parse(&deep).unwrap_err()
    ));
    let long = "a".repeat(MAX_INPUT_LEN + 1);
    out.push_str(&format!(
        "\"a\" x {}\n    {}\n",
        MAX_INPUT_LEN + 1,
        parse(&long).unwrap_err()
    ));
    insta::assert_snapshot!(out);
}

/// The message of a bad number quotes the word as the lexer cut it: a leading
/// `-` and the sign of an exponent belong to the number, a later `+` or `-`
/// does not, and the word ends where name characters end.
#[test]
fn a_bad_number_is_quoted_up_to_where_it_ends() {
    for (input, word) in [
        ("a = 12abc AND b = 1", "12abc"),
        ("a = -5x", "-5x"),
        ("a = 1e+5x", "1e+5x"),
        ("a = 1E-5x", "1E-5x"),
        ("a = 5x-3", "5x"),
        ("a = 5e.x+3", "5e.x"),
    ] {
        let e = parse(input).expect_err(input);
        assert_eq!(e.kind, K::InvalidNumber, "{input:?}: {e}");
        assert_eq!(e.message, format!("invalid number {word}"), "{input:?}");
    }
}

/// A field name ends before a `+` or `-`, also after an `e` (only a number
/// has an exponent sign).
#[test]
fn a_field_name_ends_before_a_sign() {
    err_at("size+1 = 2", K::UnexpectedChar, 4);
    err_at("type-x = 2", K::UnexpectedChar, 4);
}

/// A keyword where it does not fit is named as the keyword, a name as an
/// identifier.
#[test]
fn unexpected_keywords_and_names_are_described_apart() {
    let e = parse("a = 1 NOT b = 2").unwrap_err();
    assert_eq!(e.message, "expected AND or OR, found NOT");
    let e = parse("a = 1 not b = 2").unwrap_err();
    assert_eq!(e.message, "expected AND or OR, found NOT");
    let e = parse("a = 1 nothing = 2").unwrap_err();
    assert_eq!(e.message, "expected AND or OR, found identifier nothing");
}

/// The nesting limit counts open parentheses, not every group seen: many
/// groups side by side, each nested a little, parse.
#[test]
fn groups_side_by_side_do_not_add_up_to_the_nesting_limit() {
    let group = "((a = 1))";
    let wide = vec![group; MAX_DEPTH * 2].join(" AND ");
    parse(&wide).expect("side-by-side groups");
    // Closing back to depth 0 and opening again: the limit applies afresh.
    let deep = format!(
        "{}a = 1{}",
        "(".repeat(MAX_DEPTH),
        ")".repeat(MAX_DEPTH)
    );
    parse(&format!("{deep} OR {deep}")).expect("two groups at the limit");
}
