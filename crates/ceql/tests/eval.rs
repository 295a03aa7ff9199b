//! Evaluation over vendor JSON records.

use serde_json::{json, Value};
use switchyard_ceql::{parse, Field};

/// A BigCommerce-like order: money as decimal strings, RFC 2822 dates.
fn order() -> Value {
    json!({
        "id": 100,
        "status": "Shipped",
        "total_inc_tax": "336.3200",
        "subtotal": 300.5,
        "items_total": 3,
        "is_deleted": false,
        "has_coupon": "true",
        "date_created": "Wed, 10 Jan 2018 21:05:30 +0000",
        "date_modified": "2018-01-12T08:00:00Z",
        "Keap_LastUpdated": "2026-11-23T10:15:00",
        "customer_message": null,
        "staff_notes": "",
        "billing_address": {
            "first_name": "Jane",
            "email": "jane@example.com",
            "zip": "02134",
            "geo": {"lat": 42.35}
        },
        "lines": [{"sku": "A-1", "qty": 2}, {"sku": "B-2", "qty": 1}],
        "custom.dotted": "literal key",
        "tags": ["a", "b"],
        "big": 18446744073709551615u64,
        "O'Brien": "yes"
    })
}

#[track_caller]
fn holds(where_: &str) -> bool {
    let e = parse(where_).unwrap_or_else(|e| panic!("{where_:?}: {e}"));
    e.matches(&order())
}

#[track_caller]
fn all_hold(cases: &[&str]) {
    for c in cases {
        assert!(holds(c), "expected to hold: {c}");
    }
}

#[track_caller]
fn none_hold(cases: &[&str]) {
    for c in cases {
        assert!(!holds(c), "expected not to hold: {c}");
    }
}

#[test]
fn numbers_against_json_numbers() {
    all_hold(&[
        "id = 100",
        "id = 100.0",
        "id = 1e2",
        "id != 99",
        "id > 99",
        "id >= 100",
        "id < 100.5",
        "id <= 100",
    ]);
    all_hold(&["subtotal = 300.50", "subtotal > 300", "subtotal < 301"]);
    all_hold(&[
        "big = 18446744073709551615",
        "big > 18446744073709551614",
        "big < 18446744073709551616",
    ]);
    none_hold(&["id = 101", "id > 100", "id < 100", "subtotal = 300"]);
}

#[test]
fn numbers_against_numeric_strings() {
    // BigCommerce sends money as decimal strings.
    all_hold(&[
        "total_inc_tax = 336.32",
        "total_inc_tax = 336.3200",
        "total_inc_tax > 336.3",
        "total_inc_tax < 400",
        "total_inc_tax >= 336.32",
        "total_inc_tax != 1",
        "total_inc_tax IN (1, 336.32)",
    ]);
    none_hold(&[
        "total_inc_tax > 336.32",
        "total_inc_tax < 336.32",
        "total_inc_tax != 336.32",
    ]);
    // And a quoted number compares numerically with a JSON number.
    all_hold(&["id = '100'", "id > '99'", "id IN ('100')"]);
    // Two strings compare as strings, even when both look numeric.
    all_hold(&["total_inc_tax != '336.32'", "total_inc_tax = '336.3200'"]);
    // A zip code with a leading zero still equals the number.
    all_hold(&[
        "billing_address.zip = 2134",
        "billing_address.zip = '02134'",
    ]);
}

#[test]
fn mismatched_kinds_are_unequal_and_unordered() {
    // A number literal against a string that is not a number.
    all_hold(&["status != 5"]);
    none_hold(&[
        "status = 5",
        "status > 5",
        "status < 5",
        "status <= 5",
        "status >= 5",
    ]);
    // A string literal that is not a number against a JSON number.
    all_hold(&["id != 'abc'"]);
    none_hold(&["id = 'abc'", "id < 'abc'", "id > 'abc'"]);
    // Objects and arrays equal nothing.
    all_hold(&["billing_address != 'x'", "tags != 'a'"]);
    none_hold(&["billing_address = 'x'", "tags = 'a'", "tags > 'a'"]);
}

#[test]
fn strings_compare_by_code_point_and_case_sensitively() {
    all_hold(&[
        "status = 'Shipped'",
        "status != 'shipped'",
        "status > 'Pending'",
        "status < 'shipped'",
    ]);
    all_hold(&["staff_notes = ''", "staff_notes < 'a'"]);
    none_hold(&["status = 'shipped'", "status < 'Pending'"]);
    all_hold(&["`O'Brien` = 'yes'"]);
}

#[test]
fn dates_compare_as_instants() {
    // RFC 2822 on the record, RFC 3339 / ISO in the query, and the reverse.
    all_hold(&[
        "date_created = '2018-01-10T21:05:30Z'",
        "date_created = '2018-01-10T22:05:30+01:00'",
        "date_created > '2018-01-10'",
        "date_created < '2018-01-11'",
        "date_created >= 'Wed, 10 Jan 2018 21:05:30 +0000'",
        "date_created < 'Wed, 10 Jan 2018 21:05:31 +0000'",
        "date_modified > 'Wed, 10 Jan 2018 21:05:30 +0000'",
        "date_modified = 'Fri, 12 Jan 2018 08:00:00 GMT'",
        "date_modified IN ('2018-01-12T09:00:00+01:00')",
        // Keap's zone-less dateTime is read as UTC.
        "Keap_LastUpdated = '2026-11-23T10:15:00Z'",
        "Keap_LastUpdated > '2026-11-23'",
    ]);
    // Lexicographically "W..." > "2...", but as instants it is earlier.
    none_hold(&[
        "date_created > '2018-01-11T00:00:00Z'",
        "date_created != '2018-01-10T21:05:30Z'",
    ]);
    // A string that is not a date compares as text.
    all_hold(&["date_created > 'Tue'"]);
}

#[test]
fn booleans() {
    all_hold(&[
        "is_deleted = false",
        "is_deleted != true",
        "is_deleted = 'false'",
        "is_deleted = 'FALSE'",
    ]);
    all_hold(&[
        "has_coupon = true",
        "has_coupon != false",
        "has_coupon IN (true)",
    ]);
    // Booleans are not ordered, and are unequal to other kinds.
    none_hold(&[
        "is_deleted < true",
        "is_deleted >= false",
        "is_deleted = 0",
        "is_deleted = 'no'",
    ]);
    all_hold(&["is_deleted != 0"]);
}

#[test]
fn nested_fields_and_arrays() {
    all_hold(&[
        "billing_address.email = 'jane@example.com'",
        "`billing_address.email` LIKE '%@example.com'",
        "billing_address.geo.lat > 42",
        "lines.0.sku = 'A-1'",
        "lines.1.qty = 1",
        "`custom.dotted` = 'literal key'",
        "tags.1 = 'b'",
    ]);
    all_hold(&[
        "lines.2.sku IS NULL",
        "billing_address.nope IS NULL",
        "status.deeper IS NULL",
        "lines.x IS NULL",
    ]);
    none_hold(&["lines.2.sku = 'A-1'", "billing_address.email.x = 'a'"]);
    let r = order();
    assert_eq!(Field::new("lines.1.sku").lookup(&r), Some(&json!("B-2")));
    assert_eq!(Field::new("lines.+1.sku").lookup(&r), None);
    assert_eq!(
        Field::new("custom.dotted").lookup(&r),
        Some(&json!("literal key"))
    );
    assert_eq!(Field::new("id").lookup(&json!([1, 2])), None);
}

#[test]
fn nulls_and_missing_fields() {
    all_hold(&[
        "customer_message IS NULL",
        "missing IS NULL",
        "status IS NOT NULL",
        "staff_notes IS NOT NULL",
        "billing_address IS NOT NULL",
    ]);
    // Every comparison with null is false, negated ones included.
    none_hold(&[
        "customer_message IS NOT NULL",
        "missing = 'x'",
        "missing != 'x'",
        "customer_message != 'x'",
        "missing < 1",
        "missing LIKE '%'",
        "missing NOT LIKE 'x'",
        "missing IN ('x')",
        "missing NOT IN ('x')",
        "customer_message NOT IN (1)",
    ]);
}

#[test]
fn like_is_case_sensitive_with_sql_wildcards() {
    all_hold(&[
        "status LIKE 'Ship%'",
        "status LIKE '%ipp%'",
        "status LIKE 'S_ipped'",
        "status LIKE '%'",
        "status NOT LIKE 'ship%'",
        "staff_notes LIKE ''",
        "billing_address.email LIKE '%@%.com'",
        // Numbers and booleans match by their JSON text.
        "id LIKE '10%'",
        "is_deleted LIKE 'f%'",
    ]);
    none_hold(&[
        "status LIKE 'ship%'",
        "status LIKE 'Ship'",
        "status LIKE 'S_pped'",
        "status NOT LIKE 'S%'",
    ]);
    // Objects and arrays match neither LIKE nor NOT LIKE.
    none_hold(&["tags LIKE '%'", "tags NOT LIKE 'x'"]);
    let r = json!({"code": "50%_off", "path": "a\\b"});
    let like = |w: &str| parse(w).unwrap().matches(&r);
    assert!(like(r"code LIKE '50\%\_off'"));
    assert!(!like(r"code LIKE '50\%x'"));
    assert!(like(r"path LIKE 'a\\b'"));
}

#[test]
fn in_and_not_in() {
    all_hold(&[
        "status IN ('Pending', 'Shipped')",
        "status NOT IN ('Pending', 'Cancelled')",
        "id IN (1, 100, 'x')",
        "id NOT IN (1, 2)",
    ]);
    none_hold(&[
        "status IN ('shipped')",
        "status NOT IN ('Shipped')",
        "id IN (101)",
    ]);
}

#[test]
fn and_or_combinations() {
    all_hold(&[
        "status = 'Shipped' AND total_inc_tax > 300",
        "status = 'Pending' OR total_inc_tax > 300",
        "(status = 'Pending' OR status = 'Shipped') AND billing_address.first_name = 'Jane'",
        "status = 'Pending' AND id = 0 OR id = 100",
    ]);
    none_hold(&[
        "status = 'Shipped' AND total_inc_tax > 400",
        "status = 'Pending' OR total_inc_tax > 400",
        "status = 'Pending' AND (id = 0 OR id = 100)",
    ]);
    // Empty groups: And holds, Or does not.
    assert!(switchyard_ceql::Expr::And(vec![]).matches(&order()));
    assert!(!switchyard_ceql::Expr::Or(vec![]).matches(&order()));
}

#[test]
fn filtering_a_page() {
    let page = json!([
        {"id": 1, "total": "10.00", "email": "a@x.com"},
        {"id": 2, "total": "99.99", "email": null},
        {"id": 3, "total": "150.5", "email": "c@y.com"},
        {"id": 4, "email": "d@x.com"}
    ]);
    let e = parse("total >= 50 OR email LIKE '%@x.com'").unwrap();
    let ids: Vec<i64> = page
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| e.matches(r))
        .map(|r| r["id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids, [1, 2, 3, 4]);
    let e = parse("total < 100 AND email IS NOT NULL").unwrap();
    let ids: Vec<i64> = page
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| e.matches(r))
        .map(|r| r["id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids, [1]);
}

#[test]
fn a_record_that_is_not_an_object_has_no_fields() {
    let e = parse("a IS NULL").unwrap();
    assert!(e.matches(&json!(5)));
    assert!(e.matches(&Value::Null));
    assert!(!parse("a = 1").unwrap().matches(&json!("a")));
}
