//! XML-RPC DataService: every method, queryData operators, paging, faults, limits.

use chrono::NaiveDateTime;
use reqwest::Method;
use serde_json::json;
use switchyard_simulators::keap::xmlrpc::Value;

use crate::common::{demo, fields, json_app, rows, st};

/// The fields providers.md lists per table: each must exist in the simulator.
const PROVIDER_FIELDS: &[(&str, &[&str])] = &[
    (
        "Contact",
        &[
            "Id", "FirstName", "LastName", "Email", "Phone1", "Company", "CompanyID", "City", "State", "PostalCode", "Country",
            "StreetAddress1", "ContactType", "DateCreated", "LastUpdated", "OwnerID",
        ],
    ),
    ("Company", &["Id", "Company", "FirstName", "LastName", "Email", "Phone1", "City", "DateCreated", "LastUpdated"]),
    (
        "Lead",
        &[
            "Id", "OpportunityTitle", "ContactID", "StageID", "UserID", "OpportunityNotes", "ProjectedRevenueLow",
            "ProjectedRevenueHigh", "EstimatedCloseDate", "DateCreated", "LastUpdated",
        ],
    ),
    (
        "ContactAction",
        &[
            "Id", "ContactId", "ObjectType", "ActionType", "ActionDescription", "CreationNotes", "ActionDate", "CompletionDate",
            "CreationDate", "LastUpdated", "UserID",
        ],
    ),
    ("User", &["Id", "FirstName", "LastName", "Email"]),
];

fn date(v: &Value) -> NaiveDateTime {
    match v {
        Value::DateTime(d) => *d,
        other => panic!("not a dateTime: {other:?}"),
    }
}

#[tokio::test]
async fn echo_and_app_settings() {
    let s = demo().await;
    let (t, _) = s.tokens().await;
    assert_eq!(s.call(&t, "DataService.echo", vec!["ping".into()]).await.unwrap(), Value::from("ping"));
    let v = s.call(&t, "DataService.getAppSetting", vec!["Contact".into(), "optiontypes".into()]).await.unwrap();
    assert_eq!(v, Value::from("Lead,Prospect,Customer,Other"));
}

#[tokio::test]
async fn provider_field_names_exist_and_seed_records_carry_them() {
    let s = demo().await;
    let (t, _) = s.tokens().await;
    for (table, names) in PROVIDER_FIELDS {
        let got = rows(s.call(&t, "DataService.query", vec![(*table).into(), 5.into(), 0.into(), st(&[]), fields(names)]).await.unwrap());
        assert!(got.len() >= 4, "{table}");
        for r in &got {
            assert!(matches!(r["Id"], Value::Int(_)), "{table}");
            assert!(r.keys().all(|k| names.contains(&k.as_str())), "{table}: {r:?}");
        }
        if *table != "User" {
            let stamp = if *table == "ContactAction" { "CreationDate" } else { "DateCreated" };
            assert!(got.iter().all(|r| matches!(r[stamp], Value::DateTime(_)) && matches!(r["LastUpdated"], Value::DateTime(_))));
        }
    }
}

#[tokio::test]
async fn add_load_update_delete_maintain_the_stamps() {
    let s = demo().await;
    let (t, _) = s.tokens().await;
    let before = chrono::Utc::now().naive_utc() - chrono::Duration::seconds(1);
    let id = s
        .call(&t, "DataService.add", vec!["Contact".into(), st(&[("FirstName", "Ada".into()), ("LastName", "Lovelace".into()), ("Email", "ada@example.com".into())])])
        .await
        .unwrap()
        .as_i32()
        .unwrap();
    let all = fields(&["Id", "FirstName", "LastName", "Email", "City", "DateCreated", "LastUpdated"]);
    let rec = s.call(&t, "DataService.load", vec!["Contact".into(), id.into(), all.clone()]).await.unwrap();
    let rec = rec.as_struct().unwrap();
    assert_eq!(rec["FirstName"], Value::from("Ada"));
    assert!(!rec.contains_key("City"), "empty fields are left out");
    let created = date(&rec["DateCreated"]);
    assert!(created >= before && created <= chrono::Utc::now().naive_utc());
    assert_eq!(rec["DateCreated"], rec["LastUpdated"]);

    let updated = s.call(&t, "DataService.update", vec!["Contact".into(), id.into(), st(&[("City", "London".into()), ("Email", "".into())])]).await;
    assert_eq!(updated.unwrap(), Value::Int(id));
    let rec = s.call(&t, "DataService.load", vec!["Contact".into(), id.into(), all.clone()]).await.unwrap();
    let rec = rec.as_struct().unwrap();
    assert_eq!(rec["City"], Value::from("London"));
    assert!(!rec.contains_key("Email"), "an empty string clears");
    assert_eq!(date(&rec["DateCreated"]), created);
    assert!(date(&rec["LastUpdated"]) >= created);

    // A seeded record (dated last year) moves its LastUpdated to now, not its DateCreated.
    s.call(&t, "DataService.update", vec!["Contact".into(), 2.into(), st(&[("City", "Leeds".into())])]).await.unwrap();
    let seeded = s.call(&t, "DataService.load", vec!["Contact".into(), 2.into(), all.clone()]).await.unwrap();
    let seeded = seeded.as_struct().unwrap();
    assert!(date(&seeded["LastUpdated"]) >= before);
    assert!(date(&seeded["DateCreated"]) < before);

    assert_eq!(s.call(&t, "DataService.delete", vec!["Contact".into(), id.into()]).await.unwrap(), Value::Boolean(true));
    let gone = s.call(&t, "DataService.load", vec!["Contact".into(), id.into(), all]).await.unwrap_err();
    assert!(gone.message.starts_with("[RecordNotFound]"), "{gone:?}");
    let again = s.call(&t, "DataService.delete", vec!["Contact".into(), id.into()]).await.unwrap_err();
    assert_eq!(again.keap_kind(), Some("RecordNotFound"));
    let upd = s.call(&t, "DataService.update", vec!["Contact".into(), id.into(), st(&[("City", "x".into())])]).await.unwrap_err();
    assert_eq!(upd.keap_kind(), Some("RecordNotFound"));
}

#[tokio::test]
async fn opportunities_and_notes_round_trip_their_types() {
    let s = demo().await;
    let (t, _) = s.tokens().await;
    let close = NaiveDateTime::parse_from_str("2026-11-23T10:15:00", "%Y-%m-%dT%H:%M:%S").unwrap();
    let lead = st(&[
        ("OpportunityTitle", "Big deal".into()),
        ("ContactID", 2.into()),
        ("ProjectedRevenueLow", 1250.5.into()),
        ("EstimatedCloseDate", Value::DateTime(close)),
    ]);
    let id = s.call(&t, "DataService.add", vec!["Lead".into(), lead]).await.unwrap();
    let got = s
        .call(&t, "DataService.load", vec!["Lead".into(), id, fields(&["OpportunityTitle", "ProjectedRevenueLow", "EstimatedCloseDate", "ContactID"])])
        .await
        .unwrap();
    let got = got.as_struct().unwrap();
    assert_eq!(got["ProjectedRevenueLow"], Value::Double(1250.5));
    assert_eq!(got["EstimatedCloseDate"], Value::DateTime(close));
    assert_eq!(got["ContactID"], Value::Int(2));

    let note = st(&[("ContactId", 2.into()), ("ObjectType", "Note".into()), ("CreationNotes", "Called <back> & left a message".into())]);
    let nid = s.call(&t, "DataService.add", vec!["ContactAction".into(), note]).await.unwrap();
    let n = s.call(&t, "DataService.load", vec!["ContactAction".into(), nid, fields(&["CreationNotes", "CreationDate", "LastUpdated"])]).await.unwrap();
    let n = n.as_struct().unwrap();
    assert_eq!(n["CreationNotes"], Value::from("Called <back> & left a message"));
    assert!(matches!(n["CreationDate"], Value::DateTime(_)));

    // Keap's DataService.add requires no column (developer.infusionsoft.com, "Data Service":
    // `values`, the data to store in the new row): a note without `ContactId` and an
    // opportunity without `ContactID` are created, and load answers without the field.
    let loose = s.call(&t, "DataService.add", vec!["ContactAction".into(), st(&[("ObjectType", "Note".into())])]).await.unwrap();
    let n = s.call(&t, "DataService.load", vec!["ContactAction".into(), loose, fields(&["ObjectType", "ContactId"])]).await.unwrap();
    assert_eq!(n.as_struct().unwrap().get("ContactId"), None, "{n:?}");
    let lone = s.call(&t, "DataService.add", vec!["Lead".into(), st(&[("OpportunityTitle", "Walk-in".into())])]).await.unwrap();
    let l = s.call(&t, "DataService.load", vec!["Lead".into(), lone, fields(&["OpportunityTitle", "ContactID"])]).await.unwrap();
    assert_eq!(l.as_struct().unwrap().get("ContactID"), None, "{l:?}");
    assert_eq!(l.as_struct().unwrap()["OpportunityTitle"], Value::from("Walk-in"));
}

#[tokio::test]
async fn query_data_exact_like_and_operators() {
    let s = demo().await;
    let (t, _) = s.tokens().await;
    let q = |data: Value| vec!["Contact".into(), 1000.into(), 0.into(), data, fields(&["Id", "FirstName", "LastName", "CompanyID", "DateCreated"])];
    let all = rows(s.call(&t, "DataService.query", q(st(&[]))).await.unwrap());
    assert_eq!(all.len(), 60);

    let first = all[0]["FirstName"].as_str().unwrap().to_owned();
    let exact = rows(s.call(&t, "DataService.query", q(st(&[("FirstName", first.clone().into())]))).await.unwrap());
    assert_eq!(exact.len(), all.iter().filter(|r| r["FirstName"].as_str() == Some(&first)).count());
    // Case-insensitive, like Keap's MySQL collation.
    let upper = rows(s.call(&t, "DataService.query", q(st(&[("FirstName", first.to_uppercase().into())]))).await.unwrap());
    assert_eq!(upper.len(), exact.len());

    let prefix = &first[..2];
    let like = rows(s.call(&t, "DataService.query", q(st(&[("FirstName", format!("{prefix}%").into())]))).await.unwrap());
    assert_eq!(like.len(), all.iter().filter(|r| r["FirstName"].as_str().unwrap().starts_with(prefix)).count());
    assert!(like.len() >= exact.len());
    let every = rows(s.call(&t, "DataService.query", q(st(&[("Id", "%".into())]))).await.unwrap());
    assert_eq!(every.len(), 60);

    let id = |r: &switchyard_simulators::keap::xmlrpc::Struct| r["Id"].as_i32().unwrap();
    let mid = id(&all[30]);
    for (op, pred) in [
        ("~<~", Box::new(move |i: i32| i < mid) as Box<dyn Fn(i32) -> bool>),
        ("~<=~", Box::new(move |i| i <= mid)),
        ("~>~", Box::new(move |i| i > mid)),
        ("~>=~", Box::new(move |i| i >= mid)),
        ("~<>~", Box::new(move |i| i != mid)),
    ] {
        let got = rows(s.call(&t, "DataService.query", q(st(&[("Id", format!("{op}{mid}").into())]))).await.unwrap());
        let want: Vec<i32> = all.iter().map(id).filter(|i| pred(*i)).collect();
        assert_eq!(got.iter().map(id).collect::<Vec<_>>(), want, "{op}");
    }

    // Dates compare with Keap's text form.
    let cut = date(&all[10]["DateCreated"]);
    let text = cut.format("%Y-%m-%d %H:%M:%S").to_string();
    let since = rows(s.call(&t, "DataService.query", q(st(&[("DateCreated", format!("~>=~ {text}").into())]))).await.unwrap());
    assert_eq!(since.len(), all.iter().filter(|r| date(&r["DateCreated"]) >= cut).count());
    assert!(since.iter().all(|r| date(&r["DateCreated"]) >= cut));

    // Null and not-null, and AND across members.
    let no_company = rows(s.call(&t, "DataService.query", q(st(&[("CompanyID", "~null~".into())]))).await.unwrap());
    let with_company = rows(s.call(&t, "DataService.query", q(st(&[("CompanyID", "~<>~".into())]))).await.unwrap());
    assert!(!no_company.is_empty() && !with_company.is_empty());
    assert_eq!(no_company.len() + with_company.len(), 60);
    assert!(no_company.iter().all(|r| !r.contains_key("CompanyID")));
    let both = rows(s.call(&t, "DataService.query", q(st(&[("CompanyID", "~null~".into()), ("FirstName", first.clone().into())]))).await.unwrap());
    assert!(both.iter().all(|r| !r.contains_key("CompanyID") && r["FirstName"].as_str() == Some(&first)));

    // An id list.
    let ids = Value::Array(vec![id(&all[0]).into(), id(&all[5]).into(), 999_999.into()]);
    let listed = rows(s.call(&t, "DataService.query", q(st(&[("Id", ids)]))).await.unwrap());
    assert_eq!(listed.len(), 2);

    let n = s.call(&t, "DataService.count", vec!["Contact".into(), st(&[("FirstName", format!("{prefix}%").into())])]).await.unwrap();
    assert_eq!(n, Value::Int(like.len() as i32));
}

#[tokio::test]
async fn paging_ordering_and_field_selection() {
    let s = demo().await;
    let (t, _) = s.tokens().await;
    let page = |n: i32| vec!["Contact".into(), 25.into(), n.into(), st(&[]), fields(&["Id", "LastName"])];
    let (p0, p1, p2, p3) = (
        rows(s.call(&t, "DataService.query", page(0)).await.unwrap()),
        rows(s.call(&t, "DataService.query", page(1)).await.unwrap()),
        rows(s.call(&t, "DataService.query", page(2)).await.unwrap()),
        rows(s.call(&t, "DataService.query", page(3)).await.unwrap()),
    );
    assert_eq!((p0.len(), p1.len(), p2.len(), p3.len()), (25, 25, 10, 0));
    let ids: Vec<i32> = p0.iter().chain(&p1).chain(&p2).map(|r| r["Id"].as_i32().unwrap()).collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "default order is by id, pages do not overlap");
    assert!(p0.iter().all(|r| r.keys().all(|k| k == "Id" || k == "LastName")));

    let desc = rows(
        s.call(&t, "DataService.query", vec!["Contact".into(), 1000.into(), 0.into(), st(&[]), fields(&["Id", "LastName"]), "LastName".into(), false.into()])
            .await
            .unwrap(),
    );
    let names: Vec<String> = desc.iter().map(|r| r["LastName"].as_str().unwrap().to_lowercase()).collect();
    assert!(names.windows(2).all(|w| w[0] >= w[1]));

    let found = rows(
        s.call(&t, "DataService.findByField", vec!["Contact".into(), 1000.into(), 0.into(), "LastName".into(), names[0].clone().into(), fields(&["Id", "LastName"])])
            .await
            .unwrap(),
    );
    assert_eq!(found.len(), names.iter().filter(|n| **n == names[0]).count());

    for (limit, page) in [(1001, 0), (0, 0), (10, -1)] {
        let f = s.call(&t, "DataService.query", vec!["Contact".into(), limit.into(), page.into(), st(&[]), fields(&["Id"])]).await.unwrap_err();
        assert_eq!(f.keap_kind(), Some("InvalidParameter"), "{limit} {page}");
    }
}

#[tokio::test]
async fn faults_carry_keaps_kinds() {
    let s = demo().await;
    let (t, _) = s.tokens().await;
    let bad_key = s.call_keyed(&t, "DataService.echo", vec!["wrong".into(), "x".into()]).await.unwrap_err();
    assert_eq!(bad_key.message, "[InvalidKey]Invalid key");
    let no_key = s.call_keyed(&t, "DataService.echo", vec![]).await.unwrap_err();
    assert_eq!(no_key.keap_kind(), Some("InvalidKey"));

    let cases: Vec<(&str, Vec<Value>, &str)> = vec![
        ("DataService.load", vec!["Nope".into(), 1.into(), fields(&["Id"])], "NoTableAccess"),
        ("DataService.add", vec!["User".into(), st(&[("FirstName", "x".into())])], "NoTableAccess"),
        ("DataService.delete", vec!["User".into(), 1.into()], "NoTableAccess"),
        ("DataService.load", vec!["Contact".into(), 2.into(), fields(&["Nope"])], "NoFieldFound"),
        ("DataService.query", vec!["Contact".into(), 10.into(), 0.into(), st(&[("Nope", "x".into())]), fields(&["Id"])], "NoFieldFound"),
        ("DataService.add", vec!["Contact".into(), st(&[("Nope", "x".into())])], "NoFieldFound"),
        ("DataService.load", vec!["Contact".into(), 99_999.into(), fields(&["Id"])], "RecordNotFound"),
        ("DataService.add", vec!["Contact".into(), st(&[("OwnerID", "abc".into())])], "InvalidParameter"),
        ("DataService.query", vec!["Contact".into(), 10.into(), 0.into(), st(&[("Id", "~>~ abc".into())]), fields(&["Id"])], "InvalidParameter"),
        ("DataService.query", vec!["Contact".into(), 10.into(), 0.into(), st(&[]), fields(&[])], "InvalidParameter"),
        ("DataService.load", vec!["Contact".into()], "InvalidParameter"),
        ("DataService.count", vec!["Contact".into(), "not a struct".into()], "InvalidParameter"),
    ];
    for (method, params, kind) in cases {
        let f = s.call(&t, method, params.clone()).await.unwrap_err();
        assert_eq!(f.keap_kind(), Some(kind), "{method} {params:?}: {f:?}");
    }
    let unknown = s.call(&t, "DataService.frobnicate", vec![]).await.unwrap_err();
    assert!(unknown.message.contains("No such handler"), "{unknown:?}");

    // Malformed XML is a fault too, and it never echoes the document (the key is in it).
    let raw = s
        .http
        .post(s.url("/crm/xmlrpc/v1"))
        .bearer_auth(&t)
        .body("<methodCall><methodName>DataService.echo</methodName><params><param><value>sandbox-keap-private-key-0123456789abcdef</value></param>")
        .send()
        .await
        .unwrap();
    assert_eq!(raw.status(), 200);
    let text = raw.text().await.unwrap();
    assert!(text.contains("<fault>") && !text.contains("private-key"), "{text}");
}

#[tokio::test]
async fn quota_headers_and_429() {
    let s = demo().await;
    let (t, _) = s.tokens().await;
    let a = s.rpc_raw(Some(&t), "DataService.echo", vec![switchyard_simulators::keap::DEMO_PRIVATE_KEY.into()]).await;
    assert_eq!(a.header("x-keap-product-quota-limit"), Some("150000"));
    assert_eq!(a.header("x-keap-product-quota-time-unit"), Some("day"));
    assert_eq!(a.header("x-keap-product-quota-interval"), Some("1"));
    assert_eq!(a.header("x-keap-product-quota-used"), Some("1"));
    assert_eq!(a.header("x-keap-product-quota-available"), Some("149999"));
    assert!(a.header("x-keap-product-quota-expiry-time").unwrap().parse::<u64>().unwrap() > 1_700_000_000_000);
    assert_eq!(a.header("x-keap-product-throttle-limit"), Some("1500"));
    assert_eq!(a.header("x-keap-product-throttle-time-unit"), Some("minute"));
    assert_eq!(a.header("x-keap-product-throttle-available"), Some("1499"));

    let set = s
        .control(
            Method::PUT,
            &format!("/_sim/apps/{}/limits", switchyard_simulators::keap::DEMO_CLIENT_ID),
            Some(json!({ "quota": { "limit": 2, "interval": 1, "time_unit": "day" } })),
        )
        .await;
    assert_eq!(set.status, 200, "{}", set.text);
    for left in ["1", "0"] {
        let ok = s.rpc_raw(Some(&t), "DataService.echo", vec![switchyard_simulators::keap::DEMO_PRIVATE_KEY.into(), "x".into()]).await;
        assert_eq!(ok.status, 200);
        assert_eq!(ok.header("x-keap-product-quota-available"), Some(left));
        assert!(ok.header("x-keap-product-throttle-limit").is_none(), "throttle was switched off");
    }
    let over = s.rpc_raw(Some(&t), "DataService.echo", vec![switchyard_simulators::keap::DEMO_PRIVATE_KEY.into(), "x".into()]).await;
    assert_eq!(over.status, 429);
    assert_eq!(over.header("x-keap-product-quota-available"), Some("0"));
    assert_eq!(over.header("x-keap-product-quota-used"), Some("2"));
    let body = over.json();
    assert!(body["fault"]["faultstring"].as_str().unwrap().starts_with("Rate limit quota violation"));
    assert_eq!(body["fault"]["detail"]["errorcode"], "policies.ratelimit.QuotaViolation");

    // An app's limits are its own.
    s.control(Method::POST, "/_sim/apps", Some(json_app("second", "second-key"))).await;
    let code = s.code_for("second").await;
    let t2 = s.exchange("second", "second-secret", &code).await.json()["access_token"].as_str().unwrap().to_owned();
    let ok = s.call_keyed(&t2, "DataService.echo", vec!["second-key".into(), "x".into()]).await;
    assert_eq!(ok.unwrap(), Value::from("x"));
    // ...and so are their keys.
    let cross = s.call_keyed(&t2, "DataService.echo", vec![switchyard_simulators::keap::DEMO_PRIVATE_KEY.into(), "x".into()]).await;
    assert_eq!(cross.unwrap_err().keap_kind(), Some("InvalidKey"));
}
