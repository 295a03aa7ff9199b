//! The `/_sim` control API.

use reqwest::Method;
use serde_json::json;
use switchyard_simulators::keap::DEMO_CLIENT_ID;

use crate::common::{demo, fields, json_app, st};

#[tokio::test]
async fn apps_can_be_added_listed_reset_and_removed() {
    let s = demo().await;
    assert_eq!(s.control(Method::GET, "/_sim/health", None).await.json(), json!({ "ok": true }));
    let mut body = json_app("tiny", "tiny-key");
    body["seed"] = json!({ "users": 1, "companies": 1, "contacts": 3, "opportunities": 2, "actions": 2 });
    let added = s.control(Method::POST, "/_sim/apps", Some(body)).await;
    assert_eq!(added.status, 201, "{}", added.text);
    assert_eq!(added.json()["records"]["Contact"], 3);
    assert_eq!(added.json()["app_name"], "App tiny");

    let list = s.control(Method::GET, "/_sim/apps", None).await.json();
    let ids: Vec<&str> = list.as_array().unwrap().iter().map(|a| a["client_id"].as_str().unwrap()).collect();
    assert_eq!(ids, [DEMO_CLIENT_ID, "tiny"]);

    let demo_app = s.control(Method::GET, &format!("/_sim/apps/{DEMO_CLIENT_ID}"), None).await.json();
    assert_eq!(demo_app["records"], json!({ "Contact": 60, "Company": 20, "Lead": 30, "ContactAction": 80, "User": 4 }));
    assert_eq!(demo_app["limits"]["quota"], json!({ "limit": 150000, "interval": 1, "time_unit": "day" }));

    let (t, _) = s.tokens().await;
    let key = switchyard_simulators::keap::DEMO_PRIVATE_KEY;
    s.call_keyed(&t, "DataService.delete", vec![key.into(), "Contact".into(), 2.into()]).await.unwrap();
    let reset = s.control(Method::POST, &format!("/_sim/apps/{DEMO_CLIENT_ID}/reset"), None).await;
    assert_eq!(reset.json()["records"]["Contact"], 60);
    assert_eq!(reset.json()["rpc_count"], 1);

    assert_eq!(s.control(Method::DELETE, "/_sim/apps/tiny", None).await.status, 204);
    assert_eq!(s.control(Method::GET, "/_sim/apps/tiny", None).await.status, 404);
    assert_eq!(s.control(Method::DELETE, "/_sim/apps/tiny", None).await.status, 404);
}

#[tokio::test]
async fn control_refuses_bad_input() {
    let s = demo().await;
    for body in [
        json!({ "client_id": "" }),
        json!({ "client_id": "a b" }),
        json!({ "client_id": "x", "unknown": 1 }),
        json!({ "client_id": "x", "seed": { "contacts": 1_000_000 } }),
    ] {
        let a = s.control(Method::POST, "/_sim/apps", Some(body.clone())).await;
        assert_eq!(a.status, 400, "{body}");
        assert!(a.json()["error"].is_string());
    }
    let bad = s.control(Method::PUT, &format!("/_sim/apps/{DEMO_CLIENT_ID}/limits"), Some(json!({ "quota": { "limit": 1, "time_unit": "week" } }))).await;
    assert_eq!(bad.status, 400);
    let bad = s.control(Method::PUT, "/_sim/settings", Some(json!({ "auto_approve": "yes" }))).await;
    assert_eq!(bad.status, 400);
    assert_eq!(s.control(Method::POST, "/_sim/apps/nobody/expire-tokens", None).await.status, 404);
    assert_eq!(s.control(Method::GET, "/nowhere", None).await.status, 404);

    let settings = s.control(Method::PUT, "/_sim/settings", Some(json!({ "auto_approve": true }))).await.json();
    assert_eq!(settings, json!({ "auto_approve": true, "access_token_lifetime_s": 86400, "code_lifetime_s": 600, "token_answer_delay_ms": 0 }));
}

#[tokio::test]
async fn a_raw_field_is_written_verbatim_until_the_field_is_written() {
    let s = demo().await;
    let (t, _) = s.tokens().await;
    let key = switchyard_simulators::keap::DEMO_PRIVATE_KEY;
    let path = format!("/_sim/apps/{DEMO_CLIENT_ID}/records/Contact/2/raw");
    // A lone high surrogate: what Keap writes for a text cut between the halves of an emoji.
    let set = s.control(Method::PUT, &path, Some(json!({ "field": "FirstName", "xml": "<value>Zo&#55357;</value>" }))).await;
    assert_eq!(set.status, 200, "{}", set.text);
    let load = s.rpc_raw(Some(&t), "DataService.load", vec![key.into(), "Contact".into(), 2.into(), fields(&["Id", "FirstName"])]).await;
    assert!(load.text.contains("<member><name>FirstName</name><value>Zo&#55357;</value></member>"), "{}", load.text);
    let page = s.rpc_raw(Some(&t), "DataService.query", vec![key.into(), "Contact".into(), 1.into(), 0.into(), st(&[]), fields(&["FirstName"])]).await;
    assert!(page.text.contains("<value>Zo&#55357;</value>"), "{}", page.text);

    s.call(&t, "DataService.update", vec!["Contact".into(), 2.into(), st(&[("FirstName", "Zoe".into())])]).await.unwrap();
    let load = s.call(&t, "DataService.load", vec!["Contact".into(), 2.into(), fields(&["FirstName"])]).await.unwrap();
    assert_eq!(load, st(&[("FirstName", "Zoe".into())]));

    for (path, body, status) in [
        (path.clone(), json!({ "field": "Nope", "xml": "<value/>" }), 404),
        (format!("/_sim/apps/{DEMO_CLIENT_ID}/records/Contact/99999/raw"), json!({ "field": "FirstName", "xml": "<value/>" }), 404),
        (format!("/_sim/apps/{DEMO_CLIENT_ID}/records/Nope/2/raw"), json!({ "field": "FirstName", "xml": "<value/>" }), 404),
        ("/_sim/apps/nobody/records/Contact/2/raw".to_owned(), json!({ "field": "FirstName", "xml": "<value/>" }), 404),
        (path.clone(), json!({ "field": "FirstName" }), 400),
    ] {
        assert_eq!(s.control(Method::PUT, &path, Some(body.clone())).await.status, status, "{path} {body}");
    }
}
