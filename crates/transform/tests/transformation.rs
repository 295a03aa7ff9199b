use serde_json::{json, Value};
use switchyard_transform::datefmt::parse_zone;
use switchyard_transform::{FieldType, Invalid, Level, Transformation, VendorType};

fn t(body: Value) -> Transformation {
    Transformation::from_json(&body).unwrap()
}

fn refused(body: Value) -> String {
    Transformation::from_json(&body).unwrap_err().to_string()
}

fn brief_example() -> Value {
    json!({"vendorName":"contacts","level":"organization","fields":[
        {"path":"email","type":"string","vendorPath":"email_addresses[0].email"},
        {"path":"born","type":"date","vendorPath":"birthday","vendorType":"date","mask":"yyyy-MM-dd'T'HH:mm:ss"},
        {"path":"total","type":"number","vendorPath":"total_inc_tax"}],
     "configuration":[{"type":"passThrough","properties":{"fromVendor":true,"toVendor":false}},{"type":"inherit"}]})
}

#[test]
fn parses_and_echoes_the_stored_shape() {
    let tr = t(brief_example());
    assert_eq!(tr.vendor_name(), "contacts");
    assert_eq!(tr.level(), Some(Level::Organization));
    assert_eq!(tr.pass_through(), (true, false));
    assert!(tr.inherits());
    assert_eq!(tr.fields().len(), 3);
    assert_eq!(tr.fields()[1].field_type(), FieldType::Date);
    assert_eq!(tr.fields()[1].vendor_type(), Some(VendorType::Date));
    assert_eq!(tr.fields()[1].mask().unwrap().pattern(), "yyyy-MM-dd'T'HH:mm:ss");
    assert_eq!(
        tr.to_json("myContact", "instance"),
        json!({"level":"instance","objectName":"myContact","vendorName":"contacts","fields":[
            {"path":"email","type":"string","vendorPath":"email_addresses[0].email"},
            {"path":"born","type":"date","vendorPath":"birthday","vendorType":"date","mask":"yyyy-MM-dd'T'HH:mm:ss"},
            {"path":"total","type":"number","vendorPath":"total_inc_tax"}],
         "configuration":[{"type":"passThrough","properties":{"fromVendor":true,"toVendor":false}},{"type":"inherit"}]})
    );
    // The answer can be posted back, with CE's extra members.
    let mut answer = tr.to_json("myContact", "organization");
    answer["startDate"] = json!("2017-04-24 21:05:05.51129");
    answer["isLegacy"] = json!(false);
    answer["fields"][0]["level"] = json!("organization");
    answer["fields"][0]["configuration"] = json!([]);
    let again = t(answer);
    assert_eq!(again.to_json("myContact", "organization")["fields"][0], json!({"path":"email","type":"string","vendorPath":"email_addresses[0].email","configuration":[]}));
    // Defaults: type string, no passThrough, no configuration.
    let bare = t(json!({"vendorName":"Contact","fields":[{"path":"id","vendorPath":"Id"}]}));
    assert_eq!(bare.fields()[0].field_type(), FieldType::String);
    assert_eq!(bare.pass_through(), (false, false));
    assert!(!bare.inherits() && bare.level().is_none());
    assert_eq!(bare.to_json("c", "organization")["configuration"], json!([]));
}

#[test]
fn validation_errors_say_where() {
    assert_eq!(refused(json!([])), "a transformation must be a JSON object");
    assert_eq!(Transformation::from_json(&json!({"vendorName":"x","level":"account"})).unwrap_err(), Invalid::AccountLevel);
    assert_eq!(refused(json!({"vendorName":"x","level":"account"})), "accounts are not supported");
    assert!(refused(json!({"vendorName":"x","level":"galaxy"})).contains("level 'galaxy'"));
    assert!(refused(json!({"fields":[]})).contains("vendorName is required"));
    assert!(refused(json!({"vendorName":3})).contains("vendorName must be a string"));
    assert!(refused(json!({"vendorName":"x","colour":1,"size":2})).starts_with("unknown members 'colour', 'size'"));
    assert!(refused(json!({"vendorName":"x","fields":{}})).contains("fields must be an array"));
    assert_eq!(refused(json!({"vendorName":"x","fields":[{"path":"a","vendorPath":"a"},{"path":"b","vendorPath":"b"},{"path":"c","vendorPath":"a["}]})), "fields[2].vendorPath 'a[': unclosed '[' at 1");
    assert_eq!(refused(json!({"vendorName":"x","fields":[{"vendorPath":"a"}]})), "fields[0].path is required");
    assert_eq!(refused(json!({"vendorName":"x","fields":[{"path":"a"}]})), "fields[0].vendorPath is required");
    assert!(refused(json!({"vendorName":"x","fields":[{"path":"a b","vendorPath":"a"}]})).starts_with("fields[0].path 'a b': ' ' at 1"));
    assert!(refused(json!({"vendorName":"x","fields":[{"path":"a","vendorPath":"a","type":"int"}]})).starts_with("fields[0].type 'int' is not one of"));
    assert!(refused(json!({"vendorName":"x","fields":[{"path":"a","vendorPath":"a","vendorType":"blob"}]})).starts_with("fields[0].vendorType 'blob'"));
    assert!(refused(json!({"vendorName":"x","fields":[{"path":"a","vendorPath":"a","mask":"kk:mm"}]})).starts_with("fields[0].mask: date pattern 'kk:mm': letter 'k'"));
    assert!(refused(json!({"vendorName":"x","fields":[{"path":"a","vendorPath":"a","extra":1}]})).starts_with("fields[0]: unknown member 'extra'"));
    assert!(refused(json!({"vendorName":"x","fields":[{"path":"a","vendorPath":"a","configuration":{}}]})).contains("fields[0].configuration must be an array"));
    assert!(refused(json!({"vendorName":"x","fields":[1]})).contains("fields[0] must be an object"));
    assert_eq!(refused(json!({"vendorName":"x","fields":[{"path":"a","vendorPath":"a"},{"path":"a","vendorPath":"b"}]})), "fields[1].path 'a' is mapped already by fields[0]");
    let many: Vec<Value> = (0..501).map(|i| json!({"path": format!("f{i}"), "vendorPath": "v"})).collect();
    assert!(refused(json!({"vendorName":"x","fields":many})).contains("at most 500"));
    let enough: Vec<Value> = (0..500).map(|i| json!({"path": format!("f{i}"), "vendorPath": "v"})).collect();
    assert!(Transformation::from_json(&json!({"vendorName":"x","fields":enough})).is_ok());
    assert!(refused(json!({"vendorName":"x","configuration":{}})).contains("configuration must be an array"));
    assert!(refused(json!({"vendorName":"x","configuration":[{"x":1}]})).contains("configuration[0] must be an object with a string 'type'"));
    assert!(refused(json!({"vendorName":"x","configuration":[{"type":"passThrough","properties":{"fromVendor":"yes"}}]})).contains("configuration[0].properties.fromVendor must be true or false"));
    assert!(refused(json!({"vendorName":"x","configuration":[{"type":"passThrough"},{"type":"passThrough"}]})).contains("configuration[1]: passThrough is given twice"));
    // Other entries are kept.
    let kept = t(json!({"vendorName":"x","configuration":[{"type":"addToDocumentation","properties":{"fromVendor":false}}]}));
    assert_eq!(kept.configuration(), [json!({"type":"addToDocumentation","properties":{"fromVendor":false}})]);
}

#[test]
fn custom_javascript_is_refused() {
    for body in [
        json!({"vendorName":"x","script":{"body":"done(transformedObject)"}}),
        json!({"script":"x"}),
        json!({"vendorName":"x","configuration":[{"type":"script","properties":{}}]}),
        json!({"vendorName":"x","configuration":[{"type":"JavaScript"}]}),
        json!({"vendorName":"x","fields":[{"path":"a","vendorPath":"a","configuration":[{"type":"javascript"}]}]}),
    ] {
        assert_eq!(Transformation::from_json(&body).unwrap_err(), Invalid::Script, "{body}");
    }
    assert_eq!(Invalid::Script.to_string(), "custom JavaScript is not supported");
}

fn order_transformation(pass: &str) -> Transformation {
    let mut body = json!({"vendorName":"orders","fields":[
        {"path":"id","type":"string","vendorPath":"id"},
        {"path":"total","type":"number","vendorPath":"total_inc_tax"},
        {"path":"city","vendorPath":"billing_address.city"},
        {"path":"created","type":"date","vendorPath":"date_created"},
        {"path":"firstSku","vendorPath":"lines[0].sku"},
        {"path":"ipad","vendorPath":"products[id=4].name"},
        {"path":"count","type":"number","vendorPath":"products[*].size()"},
        {"path":"paid","type":"boolean","vendorPath":"is_paid"}]});
    if !pass.is_empty() {
        let (from, to) = (pass.contains("from"), pass.contains("to"));
        body["configuration"] = json!([{"type":"passThrough","properties":{"fromVendor":from,"toVendor":to}}]);
    }
    t(body)
}

fn order() -> Value {
    json!({"id": 100, "total_inc_tax": "12.50", "billing_address": {"city": "Austin", "zip": "78701"},
           "date_created": "Tue, 20 Nov 2012 00:00:00 +0000", "lines": [{"sku": "A1"}],
           "products": [{"id": 3, "name": "pen"}, {"id": "4", "name": "iPad"}], "is_paid": "1",
           "status": "Shipped", "notes": null})
}

#[test]
fn from_vendor_maps_converts_and_drops_the_rest() {
    let tr = order_transformation("");
    assert_eq!(
        tr.from_vendor(&order(), None),
        json!({"id":"100","total":12.5,"city":"Austin","created":"2012-11-20T00:00:00Z","firstSku":"A1","ipad":"iPad","count":2,"paid":true})
    );
    // Missing stays absent, null stays null, what does not convert passes unchanged.
    let r = json!({"id": null, "total_inc_tax": "n/a", "is_paid": "maybe"});
    assert_eq!(tr.from_vendor(&r, None), json!({"id": null, "total": "n/a", "paid": "maybe"}));
    assert_eq!(tr.from_vendor(&json!("not an object"), None), json!({}));
}

#[test]
fn pass_through_from_vendor() {
    let tr = order_transformation("from");
    let out = tr.from_vendor(&order(), None);
    // Unmapped members come along; `billing_address` is the first key of a plain
    // mapped path and stays out; indexed and filtered arrays come along.
    assert_eq!(out["status"], json!("Shipped"));
    assert_eq!(out["notes"], Value::Null);
    assert!(out.get("billing_address").is_none());
    assert_eq!(out["lines"], json!([{"sku": "A1"}]));
    assert_eq!(out["products"][1]["name"], json!("iPad"));
    // A mapped value is never overwritten: the vendor's `city` does not replace the mapped one.
    let mut r = order();
    r["city"] = json!("Dallas");
    assert_eq!(tr.from_vendor(&r, None)["city"], json!("Austin"));
    assert_eq!(tr.from_vendor(&r, None)["id"], json!("100"));
}

#[test]
fn to_vendor_converts_and_skips_read_only_paths() {
    let tr = order_transformation("");
    let common = json!({"id":"100","total":"12.50","city":"Austin","created":"2012-11-20T00:00:00-05:00","firstSku":"A1",
                        "ipad":"iPad","count":2,"paid":true,"extra":"dropped"});
    assert_eq!(
        tr.to_vendor(&common, None).unwrap(),
        json!({"id":"100","total_inc_tax":12.5,"billing_address":{"city":"Austin"},"date_created":"2012-11-20T00:00:00-05:00","lines":[{"sku":"A1"}],"is_paid":true})
    );
    let e = tr.to_vendor(&json!({"total": "abc"}), None).unwrap_err();
    assert_eq!(e.path, "total");
    assert_eq!(e.to_string(), "total: \"abc\" is not a number");
    let e = tr.to_vendor(&json!({"created": "yesterday"}), None).unwrap_err();
    assert_eq!(e.path, "created");
    // Absent fields are not written; null is.
    assert_eq!(tr.to_vendor(&json!({"city": null}), None).unwrap(), json!({"billing_address":{"city":null}}));
}

#[test]
fn pass_through_to_vendor() {
    let tr = order_transformation("to");
    let out = tr.to_vendor(&json!({"id":"1","extra":{"a":1},"city":"Austin"}), None).unwrap();
    assert_eq!(out, json!({"id":"1","billing_address":{"city":"Austin"},"extra":{"a":1}}));
    // Only toVendor: reads still drop unmapped members.
    assert!(tr.from_vendor(&order(), None).get("status").is_none());
    // A passed-through member never replaces a mapped one.
    let tr2 = t(json!({"vendorName":"o","fields":[{"path":"a","vendorPath":"b"}],"configuration":[{"type":"passThrough","properties":{"toVendor":true}}]}));
    assert_eq!(tr2.to_vendor(&json!({"a":1,"b":2}), None).unwrap(), json!({"b":1}));
}

#[test]
fn dates_with_masks_and_zones() {
    let tr = t(brief_example());
    let ny = parse_zone("America/New_York").unwrap();
    let vendor = json!({"birthday": "2026-07-01T09:00:00", "email_addresses": [{"email": "a@b.c"}], "total_inc_tax": 3});
    let common = tr.from_vendor(&vendor, Some(ny));
    assert_eq!(common["born"], json!("2026-07-01T09:00:00-04:00"));
    assert_eq!(tr.from_vendor(&vendor, None)["born"], json!("2026-07-01T09:00:00Z"));
    let back = tr.to_vendor(&json!({"born": "2026-07-01T13:00:00Z", "email": "a@b.c"}), Some(ny)).unwrap();
    assert_eq!(back, json!({"birthday": "2026-07-01T09:00:00", "email_addresses": [{"email": "a@b.c"}]}));
}

#[test]
fn inherit_merges_by_path() {
    let base = t(json!({"vendorName":"contacts","fields":[
        {"path":"id","vendorPath":"Id"},{"path":"name","vendorPath":"Name"}],
        "configuration":[{"type":"passThrough","properties":{"fromVendor":true,"toVendor":true}},{"type":"addToDocumentation"}]}));
    let inst = t(json!({"vendorName":"contacts2","fields":[{"path":"name","vendorPath":"FullName"},{"path":"age","type":"number","vendorPath":"Age"}],
        "configuration":[{"type":"inherit"}]}));
    let m = inst.merged_over(&base);
    assert_eq!(m.vendor_name(), "contacts2");
    let paths: Vec<(&str, &str)> = m.fields().iter().map(|f| (f.path().as_str(), f.vendor_path().as_str())).collect();
    assert_eq!(paths, [("name", "FullName"), ("age", "Age"), ("id", "Id")]);
    // No passThrough of its own: the base's.
    assert_eq!(m.pass_through(), (true, true));
    assert_eq!(m.configuration().len(), 3);
    let own = t(json!({"vendorName":"c","configuration":[{"type":"passThrough","properties":{"fromVendor":false,"toVendor":false}}]}));
    assert_eq!(own.merged_over(&base).pass_through(), (false, false));
}

#[test]
fn lookups_both_ways() {
    let tr = order_transformation("");
    assert_eq!(tr.vendor_path_of("city").unwrap().as_str(), "billing_address.city");
    assert!(tr.vendor_path_of("nope").is_none());
    assert_eq!(tr.common_path_of("billing_address.city"), Some("city"));
    assert_eq!(tr.common_path_of("lines[0].sku"), None);
}

#[test]
fn check_types_matrix() {
    let body = |ty: &str, vendor_path: &str| json!({"vendorName":"o","fields":[{"path":"a","type":"string","vendorPath":"ok"},{"path":"f","type":ty,"vendorPath":vendor_path}]});
    let meta = |p: &str| -> Option<&'static str> {
        match p {
            "obj" => Some("object"),
            "arr" => Some("array"),
            "flag" => Some("boolean"),
            "when" => Some("date"),
            "n" => Some("number"),
            "s" => Some("string"),
            _ => None,
        }
    };
    let refused = [("string", "obj"), ("number", "arr"), ("date", "flag"), ("boolean", "when"), ("number", "when"), ("number", "flag"), ("date", "obj")];
    for (ty, vp) in refused {
        let e = t(body(ty, vp)).check_types(meta).unwrap_err().to_string();
        assert!(e.starts_with(&format!("fields[1] 'f': a {ty} field cannot be mapped from the vendor's")), "{e}");
    }
    let fine = [("string", "flag"), ("string", "when"), ("number", "s"), ("date", "s"), ("date", "n"), ("boolean", "n"), ("boolean", "s"), ("number", "unknown"), ("string", "arr[0]"), ("number", "arr[*].size()")];
    for (ty, vp) in fine {
        assert!(t(body(ty, vp)).check_types(meta).is_ok(), "{ty} from {vp}");
    }
    // Without metadata, the field's own vendorType.
    let declared = t(json!({"vendorName":"o","fields":[{"path":"f","type":"number","vendorPath":"x","vendorType":"object"}]}));
    assert!(declared.check_types(|_| None).is_err());
}
