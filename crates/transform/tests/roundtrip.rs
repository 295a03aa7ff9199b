//! Properties: a string-only transformation of keys and indexes reads back what it
//! wrote, and no vendor path text panics the parser.

use proptest::prelude::*;
use serde_json::{json, Map, Value};
use switchyard_transform::{Step, Transformation, VendorPath};

/// Two writable paths clash when one is a prefix of the other, or when they part
/// at a step where one goes into an object and the other into an array.
fn clash(a: &[Step], b: &[Step]) -> bool {
    for (x, y) in a.iter().zip(b) {
        match (x, y) {
            (Step::Key(p), Step::Key(q)) if p == q => continue,
            (Step::Index(p), Step::Index(q)) if p == q => continue,
            (Step::Key(_), Step::Key(_)) | (Step::Index(_), Step::Index(_)) => return false,
            _ => return true,
        }
    }
    true
}

fn segment() -> impl Strategy<Value = String> {
    (prop::sample::select(vec!["a", "b", "c", "x y", "é"]), prop::collection::vec(0usize..3, 0..2))
        .prop_map(|(k, idx)| format!("{k}{}", idx.iter().map(|i| format!("[{i}]")).collect::<String>()))
}

fn vendor_paths() -> impl Strategy<Value = Vec<VendorPath>> {
    prop::collection::vec(prop::collection::vec(segment(), 1..4), 1..8).prop_map(|candidates| {
        let mut kept: Vec<VendorPath> = Vec::new();
        for segs in candidates {
            let p = VendorPath::parse(&segs.join(".")).unwrap();
            if !kept.iter().any(|k| clash(k.steps(), p.steps())) {
                kept.push(p);
            }
        }
        kept
    })
}

proptest! {
    #[test]
    fn strings_round_trip(paths in vendor_paths(), values in prop::collection::vec(prop::option::of("[ -~]{0,8}"), 8), nested in any::<bool>()) {
        let fields: Vec<Value> = paths.iter().enumerate().map(|(i, p)| {
            let path = if nested && i % 2 == 1 { format!("g.c{i}") } else { format!("c{i}") };
            json!({"path": path, "type": "string", "vendorPath": p.as_str()})
        }).collect();
        let tr = Transformation::from_json(&json!({"vendorName": "o", "fields": fields})).unwrap();
        let mut common = Value::Object(Map::new());
        for (f, v) in tr.fields().iter().zip(&values) {
            if let Some(v) = v {
                f.path().set(&mut common, json!(v));
            }
        }
        let vendor = tr.to_vendor(&common, None).unwrap();
        let back = tr.from_vendor(&vendor, None);
        for (f, v) in tr.fields().iter().zip(&values) {
            let got = f.path().get(&back);
            match v {
                Some(v) => prop_assert_eq!(got, Some(&json!(v)), "{} via {}", f.path(), f.vendor_path()),
                // Absent stays absent, or null where another field's write padded an array.
                None => prop_assert!(got.is_none() || (got == Some(&Value::Null) && f.vendor_path().plain().is_none()), "{} via {}: {:?}", f.path(), f.vendor_path(), got),
            }
        }
    }

    #[test]
    fn vendor_paths_never_panic(text in "[a-z0-9.\\[\\]?@()=*'\" ]{0,40}") {
        if let Ok(p) = VendorPath::parse(&text) {
            prop_assert_eq!(p.as_str(), text.as_str());
            let mut r = json!({"a": [{"id": 1}], "b": {"c": 2}});
            let _ = p.get(&r);
            let _ = p.set(&mut r, json!(1));
        }
    }

    #[test]
    fn any_text_never_panics(text in any::<String>()) {
        let _ = VendorPath::parse(&text);
        let _ = switchyard_transform::CommonPath::parse(&text);
    }
}
