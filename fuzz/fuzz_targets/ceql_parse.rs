//! Parses arbitrary UTF-8 as CEQL. Whatever parses must print as text that
//! parses back to the same tree and prints the same again; evaluation over a
//! small record must not panic either.

#![no_main]

use libfuzzer_sys::fuzz_target;
use switchyard_ceql::parse;

fuzz_target!(|input: &str| {
    let Ok(expr) = parse(input) else {
        return;
    };
    let printed = expr.to_string();
    let reparsed = match parse(&printed) {
        Ok(e) => e,
        Err(err) => panic!("{input:?} printed as {printed:?}, which does not parse: {err}"),
    };
    assert_eq!(reparsed, expr, "{input:?} printed as {printed:?}");
    assert_eq!(reparsed.to_string(), printed);

    let record = serde_json::json!({
        "a": "336.3200",
        "b": {"c": "Wed, 10 Jan 2018 21:05:30 +0000", "d": [1, "x", null]},
        "e": true,
        "f": null,
        "g": -2.5
    });
    let _ = expr.matches(&record);
});
