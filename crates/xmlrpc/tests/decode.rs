//! Decoding: each type, leniency, limits, Keap-like documents.

use chrono::{NaiveDate, NaiveDateTime};
use switchyard_xmlrpc::{
    decode_call, decode_response, encode_call, encode_response, Error, Fault, MethodCall,
    MethodResponse, Struct, Value, MAX_DEPTH, MAX_INPUT_BYTES,
};

fn dt(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> NaiveDateTime {
    NaiveDate::from_ymd_opt(y, mo, d)
        .unwrap()
        .and_hms_opt(h, mi, s)
        .unwrap()
}

/// The single value of a response wrapping `inner` (the text of a `<value>`).
fn value(inner: &str) -> Result<Value, Error> {
    let doc = format!(
        "<methodResponse><params><param><value>{inner}</value></param></params></methodResponse>"
    );
    match decode_response(doc.as_bytes())? {
        MethodResponse::Success(v) => Ok(v),
        MethodResponse::Fault(f) => panic!("unexpected fault {f:?}"),
    }
}

fn ok(inner: &str) -> Value {
    value(inner).unwrap_or_else(|e| panic!("{inner:?}: {e}"))
}

#[test]
fn integers() {
    assert_eq!(ok("<i4>42</i4>"), Value::Int(42));
    assert_eq!(ok("<int>-7</int>"), Value::Int(-7));
    assert_eq!(ok("<int> +7\n</int>"), Value::Int(7));
    assert_eq!(ok("<i4>-2147483648</i4>"), Value::Int(i32::MIN));
    for bad in [
        "<i4>2147483648</i4>",
        "<i4></i4>",
        "<int>1.0</int>",
        "<int>0x10</int>",
        "<int>1 2</int>",
    ] {
        assert!(
            matches!(value(bad), Err(Error::InvalidValue { kind: "int", .. })),
            "{bad}"
        );
    }
}

#[test]
fn i8_becomes_int_or_exact_double() {
    assert_eq!(ok("<i8>12</i8>"), Value::Int(12));
    assert_eq!(ok("<ex:i8>12</ex:i8>"), Value::Int(12));
    assert_eq!(ok("<i8>4294967296</i8>"), Value::Double(4294967296.0));
    assert_eq!(
        ok("<i8>-9007199254740992</i8>"),
        Value::Double(-9007199254740992.0)
    );
    let err = value("<i8>9007199254740993</i8>").unwrap_err();
    assert!(
        matches!(err, Error::InvalidValue { kind: "i8", .. }),
        "{err}"
    );
    assert!(err.to_string().contains("2^53"));
}

#[test]
fn booleans() {
    assert_eq!(ok("<boolean>1</boolean>"), Value::Boolean(true));
    assert_eq!(ok("<boolean> 0 </boolean>"), Value::Boolean(false));
    assert_eq!(ok("<boolean>true</boolean>"), Value::Boolean(true));
    assert_eq!(ok("<boolean>FALSE</boolean>"), Value::Boolean(false));
    assert!(value("<boolean>2</boolean>").is_err());
    assert!(value("<boolean></boolean>").is_err());
}

#[test]
fn strings_keep_inner_white_space() {
    assert_eq!(
        ok("<string>  a \n b\t</string>"),
        Value::String("  a \n b\t".into())
    );
    assert_eq!(
        ok("  <string> x </string>\n  "),
        Value::String(" x ".into())
    );
    assert_eq!(ok("<string></string>"), Value::String(String::new()));
    assert_eq!(ok("<string/>"), Value::String(String::new()));
    assert_eq!(
        ok("<string>&lt;a&gt; &amp; &#233;&#x1F600; &quot;q&apos;</string>"),
        Value::String("<a> & é😀 \"q'".into())
    );
    assert_eq!(
        ok("<string>a<![CDATA[<&>]]>b</string>"),
        Value::String("a<&>b".into())
    );
    assert_eq!(
        ok("<string>a\r\nb&#13;</string>"),
        Value::String("a\nb\r".into())
    );
    assert_eq!(
        ok("<string>x<!-- note -->y</string>"),
        Value::String("xy".into())
    );
}

#[test]
fn untyped_value_is_a_string() {
    assert_eq!(ok("plain"), Value::String("plain".into()));
    assert_eq!(ok("  spaced  "), Value::String("  spaced  ".into()));
    assert_eq!(ok(""), Value::String(String::new()));
    let doc = b"<methodResponse><params><param><value/></param></params></methodResponse>";
    assert_eq!(
        decode_response(doc).unwrap(),
        MethodResponse::Success(Value::String(String::new()))
    );
    // Text mixed with a type element is not.
    assert!(matches!(
        value("x<int>1</int>"),
        Err(Error::Structure { .. })
    ));
    assert!(matches!(
        value("<int>1</int>x"),
        Err(Error::Structure { .. })
    ));
}

#[test]
fn doubles() {
    assert_eq!(ok("<double>-12.214</double>"), Value::Double(-12.214));
    assert_eq!(ok("<double>3</double>"), Value::Double(3.0));
    assert_eq!(ok("<double>1e3</double>"), Value::Double(1000.0));
    assert_eq!(
        ok("<double>0.30000000000000004</double>"),
        Value::Double(0.1 + 0.2)
    );
    for bad in ["NaN", "inf", "-Infinity", "1e400", "", "abc", "1,5"] {
        let err = value(&format!("<double>{bad}</double>")).unwrap_err();
        assert!(
            matches!(err, Error::InvalidValue { kind: "double", .. }),
            "{bad}: {err}"
        );
    }
}

#[test]
fn datetimes() {
    let want = Value::DateTime(dt(2026, 11, 23, 10, 15, 0));
    assert_eq!(
        ok("<dateTime.iso8601>20261123T10:15:00</dateTime.iso8601>"),
        want
    );
    assert_eq!(
        ok("<dateTime.iso8601>2026-11-23T10:15:00</dateTime.iso8601>"),
        want
    );
    assert_eq!(
        ok("<dateTime.iso8601>\n20261123T10:15:00 </dateTime.iso8601>"),
        want
    );
    for bad in [
        "20261123T10:15:00Z",
        "2026-11-23",
        "20260229T00:00:00",
        "tomorrow",
    ] {
        let err = value(&format!("<dateTime.iso8601>{bad}</dateTime.iso8601>")).unwrap_err();
        assert!(
            matches!(
                err,
                Error::InvalidValue {
                    kind: "dateTime.iso8601",
                    ..
                }
            ),
            "{bad}: {err}"
        );
    }
    // Leap day in a leap year is fine.
    assert_eq!(
        ok("<dateTime.iso8601>20280229T23:59:59</dateTime.iso8601>"),
        Value::DateTime(dt(2028, 2, 29, 23, 59, 59))
    );
}

#[test]
fn base64() {
    assert_eq!(
        ok("<base64>aGVsbG8=</base64>"),
        Value::Base64(b"hello".to_vec())
    );
    assert_eq!(
        ok("<base64>aGVs\r\n bG8</base64>"),
        Value::Base64(b"hello".to_vec())
    );
    assert_eq!(ok("<base64></base64>"), Value::Base64(vec![]));
    assert!(matches!(
        value("<base64>a*b=</base64>"),
        Err(Error::InvalidValue { kind: "base64", .. })
    ));
}

#[test]
fn nil_forms() {
    assert_eq!(ok("<nil/>"), Value::Nil);
    assert_eq!(ok("<nil></nil>"), Value::Nil);
    assert_eq!(ok("<ex:nil/>"), Value::Nil);
    assert_eq!(
        ok(r#"<ex:nil xmlns:ex="http://ws.apache.org/xmlrpc/namespaces/extensions"/>"#),
        Value::Nil
    );
    assert!(value("<nil>x</nil>").is_err());
}

#[test]
fn structs_keep_order_and_accept_either_member_order() {
    let v = ok("<struct>
        <member><name>Zed</name><value><i4>1</i4></value></member>
        <member><value>two</value><name>Alpha</name></member>
        <member><name> spaced name </name><value><nil/></value></member>
    </struct>");
    let Value::Struct(s) = v else { panic!("{v:?}") };
    assert_eq!(
        s.keys().collect::<Vec<_>>(),
        ["Zed", "Alpha", " spaced name "]
    );
    assert_eq!(s["Alpha"], Value::String("two".into()));
    assert_eq!(ok("<struct></struct>"), Value::Struct(Struct::new()));
    assert_eq!(ok("<struct/>"), Value::Struct(Struct::new()));
}

#[test]
fn struct_duplicate_member_last_wins() {
    let v = ok("<struct><member><name>a</name><value>1</value></member>\
                <member><name>b</name><value>2</value></member>\
                <member><name>a</name><value>3</value></member></struct>");
    let Value::Struct(s) = v else { panic!("{v:?}") };
    assert_eq!(s.keys().collect::<Vec<_>>(), ["a", "b"]);
    assert_eq!(s["a"], Value::String("3".into()));
}

#[test]
fn bad_structs_and_arrays() {
    for bad in [
        "<struct><member><name>a</name></member></struct>",
        "<struct><member><value>1</value></member></struct>",
        "<struct><member><name>a</name><name>b</name><value>1</value></member></struct>",
        "<struct><value>1</value></struct>",
        "<struct>text</struct>",
        "<array><value>1</value></array>",
        "<array></array>",
        "<array><data><i4>1</i4></data></array>",
        "<array><data></data><data></data></array>",
        "<i4>1</i4><i4>2</i4>",
    ] {
        assert!(
            matches!(value(bad), Err(Error::Structure { .. })),
            "{bad}: {:?}",
            value(bad)
        );
    }
}

#[test]
fn arrays() {
    assert_eq!(ok("<array><data/></array>"), Value::Array(vec![]));
    assert_eq!(
        ok("<array>\n <data>\n  <value>1</value>\n  <value><i4>2</i4></value>\n  <value><array><data><value><nil/></value></data></array></value>\n </data>\n</array>"),
        Value::Array(vec![
            Value::String("1".into()),
            Value::Int(2),
            Value::Array(vec![Value::Nil]),
        ])
    );
}

#[test]
fn unknown_types_are_reported() {
    let err = value("<ex:dom><a/></ex:dom>").unwrap_err();
    assert!(
        matches!(&err, Error::UnsupportedType { name, .. } if name == "dom"),
        "{err}"
    );
}

#[test]
fn method_calls() {
    let doc = br#"<?xml version="1.0"?>
<!-- a comment -->
<methodCall>
  <methodName> DataService.echo </methodName>
  <params>
    <param><value><string>key</string></value></param>
    <param><value>hello</value></param>
  </params>
</methodCall>
"#;
    assert_eq!(
        decode_call(doc).unwrap(),
        MethodCall::new("DataService.echo", vec!["key".into(), "hello".into()])
    );
    // Params are optional, and may be empty.
    assert_eq!(
        decode_call(b"<methodCall><methodName>a.b</methodName></methodCall>").unwrap(),
        MethodCall::new("a.b", vec![])
    );
    assert_eq!(
        decode_call(b"<methodCall><methodName>a.b</methodName><params/></methodCall>").unwrap(),
        MethodCall::new("a.b", vec![])
    );
    // A UTF-8 BOM is fine.
    assert!(
        decode_call("\u{feff}<methodCall><methodName>x</methodName></methodCall>".as_bytes())
            .is_ok()
    );
}

#[test]
fn bad_method_calls() {
    for bad in [
        &b""[..],
        b"   ",
        b"<methodCall></methodCall>",
        b"<methodCall><methodName> </methodName></methodCall>",
        b"<methodCall><methodName>a</methodName><methodName>b</methodName></methodCall>",
        b"<methodCall><methodName>a</methodName><params><param></param></params></methodCall>",
        b"<methodCall><methodName>a</methodName><params><value>1</value></params></methodCall>",
        b"<methodCall><methodName>a</methodName><params><param><value>1</value><value>2</value></param></params></methodCall>",
        b"<methodCall><methodName>a</methodName></methodCall><methodCall/>",
        b"<methodCall><methodName>a</methodName></methodCall>trailing",
        b"text<methodCall><methodName>a</methodName></methodCall>",
        b"<methodResponse><params/></methodResponse>",
        b"<methodCall><methodName>a</methodName>",
        b"<methodCall><methodName>a</methodName><params><param><value>",
    ] {
        let r = decode_call(bad);
        assert!(r.is_err(), "{:?} decoded to {r:?}", String::from_utf8_lossy(bad));
    }
}

#[test]
fn malformed_xml_is_an_xml_error() {
    for bad in [
        &b"<methodCall><methodName>a</methodname></methodCall>"[..],
        b"<methodCall><methodName>a</methodName></params></methodCall>",
        b"<methodCall><methodName>a & b</methodName></methodCall>",
        b"<methodCall><methodName>&xxe;</methodName></methodCall>",
    ] {
        let err = decode_call(bad).unwrap_err();
        assert!(
            matches!(err, Error::Xml { .. }),
            "{:?}: {err:?}",
            String::from_utf8_lossy(bad)
        );
    }
}

#[test]
fn doctype_and_entities_are_refused() {
    let xxe = br#"<?xml version="1.0"?>
<!DOCTYPE methodCall [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<methodCall><methodName>&xxe;</methodName></methodCall>"#;
    assert_eq!(decode_call(xxe).unwrap_err(), Error::DocType);
    let bomb = br#"<!DOCTYPE r [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;">]>
<methodResponse><params><param><value>&b;</value></param></params></methodResponse>"#;
    assert_eq!(decode_response(bomb).unwrap_err(), Error::DocType);
}

#[test]
fn encodings() {
    assert!(decode_call(br#"<?xml version="1.0" encoding="utf-8"?><methodCall><methodName>a</methodName></methodCall>"#).is_ok());
    assert!(decode_call(br#"<?xml version="1.0" encoding="US-ASCII"?><methodCall><methodName>a</methodName></methodCall>"#).is_ok());
    assert_eq!(
        decode_call(br#"<?xml version="1.0" encoding="ISO-8859-1"?><methodCall><methodName>a</methodName></methodCall>"#)
            .unwrap_err(),
        Error::UnsupportedEncoding("ISO-8859-1".into())
    );
    assert_eq!(
        decode_call(b"<methodCall><methodName>caf\xe9</methodName></methodCall>").unwrap_err(),
        Error::InvalidUtf8 { at: 27 }
    );
}

#[test]
fn size_limit() {
    let mut big = b"<methodCall><methodName>a</methodName><params><param><value>".to_vec();
    big.resize(MAX_INPUT_BYTES + 1, b'x');
    assert_eq!(
        decode_call(&big).unwrap_err(),
        Error::TooLarge {
            len: MAX_INPUT_BYTES + 1,
            max: MAX_INPUT_BYTES
        }
    );
}

fn nested_arrays(levels: usize) -> String {
    let mut s = String::from("<methodResponse><params><param>");
    for _ in 0..levels - 1 {
        s.push_str("<value><array><data>");
    }
    s.push_str("<value><i4>1</i4></value>");
    for _ in 0..levels - 1 {
        s.push_str("</data></array></value>");
    }
    s.push_str("</param></params></methodResponse>");
    s
}

#[test]
fn depth_limit() {
    let ok = decode_response(nested_arrays(MAX_DEPTH).as_bytes()).unwrap();
    let MethodResponse::Success(mut v) = ok else {
        panic!()
    };
    let mut levels = 1;
    while let Value::Array(mut a) = v {
        v = a.pop().unwrap();
        levels += 1;
    }
    assert_eq!(levels, MAX_DEPTH);
    let err = decode_response(nested_arrays(MAX_DEPTH + 1).as_bytes()).unwrap_err();
    assert!(
        matches!(err, Error::TooDeep { max: MAX_DEPTH, .. }),
        "{err}"
    );
    // Far deeper input is refused the same way, without exhausting the stack.
    let err = decode_response(nested_arrays(100_000).as_bytes()).unwrap_err();
    assert!(matches!(err, Error::TooDeep { .. }), "{err}");
}

#[test]
fn errors_do_not_echo_the_document() {
    let secret = "s3cr3t-private-key-".repeat(10);
    let doc = format!(
        "<methodCall><methodName>DataService.echo</methodName><params>\
         <param><value><string>{secret}</string></value></param>\
         <param><value><i4>{secret}</i4></value></param></params></methodCall>"
    );
    let msg = decode_call(doc.as_bytes()).unwrap_err().to_string();
    assert!(!msg.contains(&secret), "{msg}");
    assert!(msg.len() < 200, "{msg}");
}

// ---- Keap-like documents -------------------------------------------------

/// The shape Keap answers `DataService.query` with: an array of structs,
/// untyped strings, `i4` ids and `dateTime.iso8601` stamps.
const KEAP_QUERY_RESPONSE: &str = r#"<?xml version="1.0" encoding="UTF-8"?><methodResponse><params><param><value><array><data><value><struct><member><name>Email</name><value>ada@example.com</value></member><member><name>FirstName</name><value>Ada</value></member><member><name>Id</name><value><i4>17</i4></value></member><member><name>DateCreated</name><value><dateTime.iso8601>20261123T10:15:00</dateTime.iso8601></value></member><member><name>LastUpdated</name><value><dateTime.iso8601>20261124T08:00:05</dateTime.iso8601></value></member></struct></value><value><struct><member><name>Email</name><value>grace@example.com</value></member><member><name>FirstName</name><value>Grace</value></member><member><name>Id</name><value><i4>19</i4></value></member><member><name>DateCreated</name><value><dateTime.iso8601>20261125T23:59:59</dateTime.iso8601></value></member><member><name>LastUpdated</name><value><dateTime.iso8601>20261125T23:59:59</dateTime.iso8601></value></member></struct></value></data></array></value></param></params></methodResponse>"#;

#[test]
fn keap_query_response() {
    let MethodResponse::Success(v) = decode_response(KEAP_QUERY_RESPONSE.as_bytes()).unwrap()
    else {
        panic!("fault")
    };
    let rows = v.as_array().unwrap();
    assert_eq!(rows.len(), 2);
    let first = rows[0].as_struct().unwrap();
    assert_eq!(
        first.keys().collect::<Vec<_>>(),
        ["Email", "FirstName", "Id", "DateCreated", "LastUpdated"]
    );
    assert_eq!(first["Id"], Value::Int(17));
    assert_eq!(
        first["DateCreated"],
        Value::DateTime(dt(2026, 11, 23, 10, 15, 0))
    );
    assert_eq!(
        v.to_json(),
        serde_json::json!([
            {"Email": "ada@example.com", "FirstName": "Ada", "Id": 17,
             "DateCreated": "2026-11-23T10:15:00", "LastUpdated": "2026-11-24T08:00:05"},
            {"Email": "grace@example.com", "FirstName": "Grace", "Id": 19,
             "DateCreated": "2026-11-25T23:59:59", "LastUpdated": "2026-11-25T23:59:59"}
        ])
    );
    // Re-encoding gives an equal document.
    let again = encode_response(&MethodResponse::Success(v.clone()));
    assert_eq!(
        decode_response(again.as_bytes()).unwrap(),
        MethodResponse::Success(v)
    );
}

#[test]
fn keap_query_call() {
    let doc = r#"<?xml version="1.0" encoding="UTF-8"?>
<methodCall>
  <methodName>DataService.query</methodName>
  <params>
    <param><value><string>privatekey</string></value></param>
    <param><value><string>Contact</string></value></param>
    <param><value><int>1000</int></value></param>
    <param><value><int>0</int></value></param>
    <param><value><struct>
      <member><name>LastName</name><value><string>Lov%</string></value></member>
      <member><name>LastUpdated</name><value><string>~&gt;=~ 2026-11-01 00:00:00</string></value></member>
    </struct></value></param>
    <param><value><array><data>
      <value><string>Id</string></value><value><string>FirstName</string></value>
    </data></array></value></param>
    <param><value><string>Id</string></value></param>
    <param><value><boolean>1</boolean></value></param>
  </params>
</methodCall>"#;
    let call = decode_call(doc.as_bytes()).unwrap();
    assert_eq!(call.method, "DataService.query");
    assert_eq!(call.params.len(), 8);
    assert_eq!(call.params[2], Value::Int(1000));
    let query = call.params[4].as_struct().unwrap();
    assert_eq!(
        query["LastUpdated"],
        Value::String("~>=~ 2026-11-01 00:00:00".into())
    );
    assert_eq!(call.params[7], Value::Boolean(true));
    assert_eq!(decode_call(encode_call(&call).as_bytes()).unwrap(), call);
}

#[test]
fn keap_fault_in_either_member_order() {
    let keap = r#"<?xml version="1.0" encoding="UTF-8"?><methodResponse><fault><value><struct><member><name>faultCode</name><value><i4>2</i4></value></member><member><name>faultString</name><value>[InvalidKey]Invalid key</value></member></struct></value></fault></methodResponse>"#;
    let want = MethodResponse::Fault(Fault::new(2, "[InvalidKey]Invalid key"));
    assert_eq!(decode_response(keap.as_bytes()).unwrap(), want);
    let swapped = r#"<methodResponse><fault><value><struct>
        <member><name>faultString</name><value><string>[InvalidKey]Invalid key</string></value></member>
        <member><name>extra</name><value><nil/></value></member>
        <member><name>faultCode</name><value><int>2</int></value></member>
    </struct></value></fault></methodResponse>"#;
    assert_eq!(decode_response(swapped.as_bytes()).unwrap(), want);
    let MethodResponse::Fault(f) = want else {
        unreachable!()
    };
    assert_eq!(f.keap_kind(), Some("InvalidKey"));
    // A string faultCode holding a number is accepted.
    let string_code = "<methodResponse><fault><value><struct><member><name>faultCode</name><value>7</value></member><member><name>faultString</name><value>x</value></member></struct></value></fault></methodResponse>";
    assert_eq!(
        decode_response(string_code.as_bytes()).unwrap(),
        MethodResponse::Fault(Fault::new(7, "x"))
    );
}

#[test]
fn bad_faults_and_responses() {
    for bad in [
        "<methodResponse><fault><value><struct><member><name>faultCode</name><value><i4>2</i4></value></member></struct></value></fault></methodResponse>",
        "<methodResponse><fault><value><struct><member><name>faultString</name><value>x</value></member></struct></value></fault></methodResponse>",
        "<methodResponse><fault><value><struct><member><name>faultCode</name><value>two</value></member><member><name>faultString</name><value>x</value></member></struct></value></fault></methodResponse>",
        "<methodResponse><fault><value><struct><member><name>faultCode</name><value><i4>2</i4></value></member><member><name>faultString</name><value><i4>3</i4></value></member></struct></value></fault></methodResponse>",
        "<methodResponse><fault><value>oops</value></fault></methodResponse>",
        "<methodResponse><fault></fault></methodResponse>",
        "<methodResponse></methodResponse>",
        "<methodResponse><params></params></methodResponse>",
        "<methodResponse><params><param><value>1</value></param><param><value>2</value></param></params></methodResponse>",
        "<methodResponse><params><param><value>1</value></param></params><fault/></methodResponse>",
        "<methodCall><methodName>a</methodName></methodCall>",
    ] {
        let r = decode_response(bad.as_bytes());
        assert!(matches!(r, Err(Error::Structure { .. })), "{bad}: {r:?}");
    }
}

#[test]
fn keap_echo_round_trip_with_awkward_text() {
    let text = "  <b>Tom & Jerry</b> ]]> \r\n tab\there \u{1} nul\u{0} é 😀  ";
    let call = MethodCall::new("DataService.echo", vec!["key".into(), text.into()]);
    let xml = encode_call(&call);
    assert!(!xml.contains('\r'));
    assert_eq!(decode_call(xml.as_bytes()).unwrap(), call);
    let resp = MethodResponse::Success(text.into());
    assert_eq!(
        decode_response(encode_response(&resp).as_bytes()).unwrap(),
        resp
    );
}

#[test]
fn surrogate_pairs_of_references_are_read_as_keap_means_them() {
    // Keap's Java writer sends U+1F600 as the references of its two UTF-16 units.
    assert_eq!(ok("Zo&#235; &#55357;&#56832;"), Value::from("Zoë 😀"));
    assert_eq!(ok("<string>&#xD83C;&#xDF08;</string>"), Value::from("🌈"));
    for lone in [
        "&#55357;",
        "&#56832;",
        "&#56832;&#55357;",
        "&#55357; &#56832;",
    ] {
        assert!(matches!(value(lone), Err(Error::Xml { .. })), "{lone}");
    }
}

#[test]
fn lossy_decoding_names_each_replaced_field() {
    use switchyard_xmlrpc::{
        decode_call_lossy, decode_response_lossy, PathItem, Replaced, Replacement,
    };
    let member = |s: &str| PathItem::Member(s.to_owned());
    // Value before name, a replaced member name, parameters by index.
    let doc = "<methodCall><methodName>m</methodName><params><param><value>k&#55357;</value></param>\
               <param><value><struct><member><value><int>x</int></value><name>Age</name></member>\
               <member><name>N&#1114112;</name><value>ok</value></member>\
               <member><name>When</name><value><dateTime.iso8601>soon</dateTime.iso8601></value></member>\
               </struct></value></param></params></methodCall>";
    let got = decode_call_lossy(doc.as_bytes()).unwrap();
    assert_eq!(
        got.replaced,
        [
            Replacement {
                path: vec![PathItem::Index(0)],
                what: Replaced::CharacterReference
            },
            Replacement {
                path: vec![PathItem::Index(1), member("Age")],
                what: Replaced::Scalar("int")
            },
            Replacement {
                path: vec![PathItem::Index(1), member("N\u{fffd}")],
                what: Replaced::CharacterReference
            },
            Replacement {
                path: vec![PathItem::Index(1), member("When")],
                what: Replaced::Scalar("dateTime.iso8601")
            },
        ]
    );
    let s = got.value.params[1].as_struct().unwrap();
    assert_eq!(
        (&s["Age"], &s["N\u{fffd}"], &s["When"]),
        (&Value::Nil, &Value::from("ok"), &Value::Nil)
    );
    assert_eq!(got.value.params[0], Value::from("k\u{fffd}"));
    assert!(
        decode_call(doc.as_bytes()).is_err(),
        "the exact decoder still refuses"
    );

    // Responses: paths start inside the value.
    let doc = "<methodResponse><params><param><value><array><data><value><struct>\
               <member><name>Id</name><value><i4>12</i4></value></member>\
               <member><name>FirstName</name><value>&#55357;</value></member>\
               </struct></value></data></array></value></param></params></methodResponse>";
    let got = decode_response_lossy(doc.as_bytes()).unwrap();
    assert_eq!(
        got.replaced,
        [Replacement {
            path: vec![PathItem::Index(0), member("FirstName")],
            what: Replaced::CharacterReference
        }]
    );

    // Malformed XML and a wrong structure are errors all the same.
    for bad in [
        "<methodResponse><params><param><value><i4>1</i4></param></params></methodResponse>",
        "<methodResponse><params><param><value>&#;</value></param></params></methodResponse>",
        "<methodResponse><params><param><value>&bogus;</value></param></params></methodResponse>",
        "<methodResponse><params></params></methodResponse>",
    ] {
        assert!(decode_response_lossy(bad.as_bytes()).is_err(), "{bad}");
    }
}
