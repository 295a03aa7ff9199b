//! Planning CEQL, orderBy and fields against the BigCommerce element's declarations.

use switchyard_elements::{parse, plan_order_by, plan_where, plan_where_in, Catalog, QueryError, Zone};

fn plan(path: &str, where_text: &str) -> (Vec<(String, String)>, Option<String>) {
    let catalog = Catalog::builtin();
    let bc = catalog.get("bigcommerce").unwrap();
    let r = bc.resources.iter().find(|r| r.path == path).unwrap();
    let q = plan_where(bc, r, where_text).unwrap_or_else(|e| panic!("{where_text}: {e}"));
    (q.params, q.residual.map(|e| e.to_string()))
}

fn p(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

#[test]
fn vendor_filters_take_what_they_can_exactly() {
    assert_eq!(plan("/orders", "payment_method = 'Manual'"), (p(&[("payment_method", "Manual")]), None));
    assert_eq!(plan("/orders", "id > 5 AND id <= 9"), (p(&[("min_id", "6"), ("max_id", "9")]), None));
    assert_eq!(plan("/orders", "id > 5 AND id >= 8"), (p(&[("min_id", "8")]), None), "the tighter bound");
    assert_eq!(plan("/orders", "id = 7"), (p(&[("min_id", "7"), ("max_id", "7")]), None));
    assert_eq!(plan("/products", "is_visible = TRUE"), (p(&[("is_visible", "true")]), None));
    // The vendor's parameter names, as Cloud Elements users wrote them: vendor semantics.
    assert_eq!(
        plan("/orders", "min_date_modified = '2024-01-02T03:04:05Z' AND email = 'A@b.c'"),
        (p(&[("min_date_modified", "Tue, 2 Jan 2024 03:04:05 +0000"), ("email", "A@b.c")]), None)
    );
}

#[test]
fn inexact_vendor_filters_are_checked_again_by_the_engine() {
    // Dates: inclusive vendor bound, strict `>` kept; empty dates count as null.
    assert_eq!(
        plan("/orders", "date_modified > 'Wed, 10 Jan 2018 21:05:30 +0000'"),
        (p(&[("min_date_modified", "Wed, 10 Jan 2018 21:05:30 +0000")]),
         Some("date_modified > 'Wed, 10 Jan 2018 21:05:30 +0000' AND date_modified != ''".into()))
    );
    // Decimals likewise; `>=` is exact.
    assert_eq!(plan("/orders", "total_inc_tax >= 10.5"), (p(&[("min_total", "10.5")]), None));
    assert_eq!(plan("/orders", "total_inc_tax > 10.5").1.as_deref(), Some("total_inc_tax > 10.5"));
    // The vendor matches e-mails ignoring case; CEQL does not.
    assert_eq!(plan("/customers", "email = 'a@b.c'"), (p(&[("email", "a@b.c")]), Some("email = 'a@b.c'".into())));
}

#[test]
fn the_rest_is_left_to_the_engine() {
    let (params, rest) = plan("/orders", "status_id = 1 OR status_id = 2");
    assert!(params.is_empty());
    assert_eq!(rest.as_deref(), Some("status_id = 1 OR status_id = 2"));
    let (params, rest) = plan("/orders", "status_id = 1 AND status LIKE 'S%' AND staff_notes IS NULL");
    assert_eq!(params, p(&[("status_id", "1")]));
    assert_eq!(rest.as_deref(), Some("status LIKE 'S%' AND staff_notes IS NULL"));
    // No model (ping has none): anything goes to the engine.
    assert_eq!(plan("/ping", "anything = 1"), (vec![], Some("anything = 1".into())));
}

#[test]
fn unhonourable_clauses_name_field_and_operator() {
    let catalog = Catalog::builtin();
    let bc = catalog.get("bigcommerce").unwrap();
    let orders = bc.resources.iter().find(|r| r.path == "/orders").unwrap();
    let err = |w: &str| match plan_where(bc, orders, w).unwrap_err() {
        QueryError::Unhonourable { field, operator, .. } => (field, operator),
        other => panic!("{w}: {other}"),
    };
    assert_eq!(err("nope = 1"), ("nope".into(), "=".into()));
    assert_eq!(err("id = 1 AND (status = 'x' OR id NOT LIKE 'x')"), ("id".into(), "NOT LIKE".into()));
    assert_eq!(err("customer_id = 'abc'"), ("customer_id".into(), "=".into()));
    assert_eq!(err("coupons IN ('a')"), ("coupons".into(), "IN".into()));
    assert_eq!(err("max_id IS NULL"), ("max_id".into(), "IS NULL".into()));
    assert!(matches!(plan_where(bc, orders, "id ="), Err(QueryError::Syntax(_))));
    assert_eq!(plan_order_by(orders, "date_created DESC").unwrap(), p(&[("sort", "date_created:desc")]));
    assert!(plan_order_by(orders, "id, status_id").is_err());
}

#[test]
fn bad_declarations_are_refused_at_load() {
    let base = include_str!("../../../elements/bigcommerce.yaml");
    for (from, to, says) in [
        ("      payment_method: {eq: payment_method}", "      nosuch: {eq: payment_method}", "no such field"),
        ("      payment_method: {eq: payment_method}", "      payment_method: {min: min_pm}", "no order"),
        ("      payment_method: {eq: payment_method}", "      payment_method: {eq: status_id}", "used twice"),
        ("      payment_method: {eq: payment_method}", "      payment_method: {recheck: true}", "names no vendor parameter"),
        ("    model: order\n", "    model: nothing\n", "not declared"),
        ("fields: [id, customer_id,", "fields: [idd, customer_id,", "not in the model"),
    ] {
        assert!(base.contains(from), "{from}");
        let err = parse("x.yaml", &base.replacen(from, to, 1)).unwrap_err().to_string();
        assert!(err.contains(says), "{to}: {err}");
    }
}

/// queryData members and the residual the engine checks.
type Planned = (Vec<(String, String)>, Option<String>);

/// Plans `where` on an Infusionsoft (XML-RPC) resource.
fn plan_keap(element: &str, path: &str, where_text: &str) -> Result<Planned, QueryError> {
    let catalog = Catalog::builtin();
    let def = catalog.get(element).unwrap();
    let r = def.resources.iter().find(|r| r.path == path).unwrap();
    let q = plan_where(def, r, where_text)?;
    Ok((q.params, q.residual.map(|e| e.to_string())))
}

#[test]
fn xml_rpc_where_becomes_query_data() {
    let k = |w: &str| plan_keap("infusionsoftcrm", "/contacts", w).unwrap_or_else(|e| panic!("{w}: {e}"));
    // Integers are exact; `id` stands for Keap's `Id`.
    assert_eq!(k("Id > 10 AND OwnerID = 2"), (p(&[("Id", "~>~10"), ("OwnerID", "2")]), None));
    assert_eq!(k("id <= 8"), (p(&[("Id", "~<=~8")]), None));
    // Text is case-insensitive at Keap: sent, and checked again.
    assert_eq!(k("FirstName = 'Ann'"), (p(&[("FirstName", "Ann")]), Some("FirstName = 'Ann'".into())));
    assert_eq!(k("Email LIKE '%@example.com'"), (p(&[("Email", "%@example.com")]), Some("Email LIKE '%@example.com'".into())));
    assert_eq!(k("City != 'Paris'"), (p(&[("City", "~<>~Paris")]), Some("City != 'Paris'".into())));
    assert_eq!(k("Company IS NULL").0, p(&[("Company", "~null~")]));
    assert_eq!(k("Company IS NOT NULL").0, p(&[("Company", "~<>~")]));
    // Dates in Keap's form, whole seconds, in UTC.
    assert_eq!(
        k("LastUpdated >= '2024-05-01T10:15:00+02:00'").0,
        p(&[("LastUpdated", "~>=~2024-05-01 08:15:00")])
    );
    // One member per field: the second bound stays with the engine.
    assert_eq!(k("Id > 10 AND Id < 20"), (p(&[("Id", "~>~10")]), Some("Id < 20".into())));
    // What queryData cannot say is filtered by the engine.
    assert_eq!(k("FirstName = 'a' OR LastName = 'b'").0, vec![]);
    assert_eq!(k("FirstName = '50%'").0, vec![], "a literal % would be a pattern at Keap");
    assert_eq!(k("FirstName = '~<~x'").0, vec![], "a leading ~ would be an operator at Keap");
    assert_eq!(k("FirstName NOT LIKE 'A%'").0, vec![]);
    assert_eq!(k("Id IN (2, 4)").0, vec![]);
    assert_eq!(k("FirstName = ''").0, vec![], "Keap's empty value also matches a missing field");
}

/// Issue 10 item 4: Keap compares its zoneless dates as the account's wall-clock
/// time, so a bound with an offset is rewritten to that time before it is sent and
/// before the engine checks records again (New York: EDT, UTC-4, in July; tzdb).
#[test]
fn xml_rpc_date_bounds_are_the_accounts_wall_clock_time() {
    let catalog = Catalog::builtin();
    let def = catalog.get("infusionsoftcrm").unwrap();
    let r = def.resources.iter().find(|r| r.path == "/contacts").unwrap();
    let ny = Zone::parse("America/New_York");
    let q = plan_where_in(def, r, "LastUpdated >= '2024-07-01T12:00:00Z' AND Id > 3", ny).unwrap();
    assert_eq!(q.params, p(&[("LastUpdated", "~>=~2024-07-01 08:00:00"), ("Id", "~>~3")]));
    let residual = q.residual.unwrap().to_string();
    assert!(residual.starts_with("LastUpdated >= '2024-07-01T08:00:00'"), "{residual}");
    // Without an offset the value is already the account's time; other fields are kept.
    let q = plan_where_in(def, r, "LastUpdated < '2024-07-01T12:00:00' AND FirstName = '2024-07-01T12:00:00Z'", ny).unwrap();
    assert_eq!(q.params, p(&[("LastUpdated", "~<~2024-07-01 12:00:00"), ("FirstName", "2024-07-01T12:00:00Z")]));
    // IN lists too; and a second clause on the field, checked by the engine.
    let q = plan_where_in(def, r, "DateCreated IN ('2024-01-15T12:00:00Z') OR DateCreated > '2024-07-01T12:00:00+02:00'", ny).unwrap();
    let residual = q.residual.unwrap().to_string();
    assert!(residual.contains("DateCreated IN ('2024-01-15T07:00:00')") && residual.contains("DateCreated > '2024-07-01T06:00:00'"), "{residual}");
}

#[test]
fn xml_rpc_where_is_checked_against_the_model() {
    let e = plan_keap("infusionsoftcrm", "/contacts", "Nope = 1").unwrap_err();
    assert!(e.to_string().contains("Nope"), "{e}");
    let e = plan_keap("infusionsoftcrm", "/contacts", "Id LIKE 'x%'").unwrap_err();
    assert!(e.to_string().contains("LIKE"), "{e}");
    let e = plan_keap("infusionsoftmarketing", "/notes", "CreationDate > 'yesterday'").unwrap_err();
    assert!(e.to_string().contains("CreationDate"), "{e}");
}

#[test]
fn xml_rpc_order_by_and_fields() {
    let catalog = Catalog::builtin();
    let def = catalog.get("infusionsoftcrm").unwrap();
    let r = def.resources.iter().find(|r| r.path == "/contacts").unwrap();
    assert_eq!(plan_order_by(r, "LastUpdated desc").unwrap(), p(&[("orderBy", "LastUpdated desc")]));
    assert!(plan_order_by(r, "Email").is_err());
    assert_eq!(switchyard_elements::parse_fields(def, r, "id,Email").unwrap(), vec!["id", "Email"]);
    assert!(switchyard_elements::parse_fields(def, r, "Nope").is_err());
}
