//! The simulator's own XML-RPC codec (`keap::xmlrpc`): what it writes, that every type
//! survives writing and reading, and what its reader takes and refuses.
//!
//! Keap's XML-RPC API is Apache XML-RPC 3.1 on ws-commons-util 1.0.2 (Java). The wire
//! facts pinned here come from those sources: `XMLWriterImpl.characters` with a UTF-8
//! `CharSetXMLWriter` (`&`, `<`, `>` as entities; a UTF-16 surrogate unit, which
//! `CharsetEncoder.canEncode(char)` refuses, as a decimal reference), `StringSerializer`
//! (strings untyped), `I4Serializer` (`<i4>`), `DoubleSerializer` (`Double.toString`),
//! `XmlRpcDateTimeFormat` (`yyyyMMdd'T'HH:mm:ss`), `TypeFactoryImpl` without extensions
//! (no `nil`, no `i8`), `BooleanParser` (`1`/`0`); and Keap's answer to a `<nil/>`:
//! "Failed to parse XML-RPC request: Unknown type: nil" (github.com/infusionsoft/
//! infusionsoft-php issue 206).

use chrono::{NaiveDate, NaiveDateTime, NaiveTime};
use proptest::collection::vec;
use proptest::prelude::*;
use switchyard_simulators::keap::xmlrpc::{read_call, read_response, write_call, write_response, Fault, MethodCall, MethodResponse, Struct, Value};
use switchyard_simulators::keap::DEMO_PRIVATE_KEY;

use crate::common::{demo, fields, rows, st};

fn success(text: &str) -> Value {
    match read_response(text.as_bytes()) {
        Ok(MethodResponse::Success(v)) => v,
        other => panic!("{other:?} from {text}"),
    }
}

fn dt(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> NaiveDateTime {
    NaiveDate::from_ymd_opt(y, mo, d).unwrap().and_hms_opt(h, mi, s).unwrap()
}

#[tokio::test]
async fn an_emoji_in_a_contact_name_goes_out_as_a_surrogate_pair_of_references() {
    let s = demo().await;
    let (t, _) = s.tokens().await;
    // The name arrives as raw UTF-8, as most clients (and the platform) write it.
    let add = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><methodCall><methodName>DataService.add</methodName><params>\
         <param><value>{DEMO_PRIVATE_KEY}</value></param><param><value>Contact</value></param>\
         <param><value><struct><member><name>FirstName</name><value>Zoë 😀</value></member>\
         <member><name>LastName</name><value>Smile</value></member></struct></value></param></params></methodCall>"
    );
    let id = success(&s.rpc_body(&t, add).await.text).as_i32().expect("an id");

    let load = s.rpc_raw(Some(&t), "DataService.load", vec![DEMO_PRIVATE_KEY.into(), "Contact".into(), id.into(), fields(&["Id", "FirstName"])]).await;
    assert_eq!(
        load.text,
        format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?><methodResponse><params><param><value><struct>\
             <member><name>Id</name><value><i4>{id}</i4></value></member>\
             <member><name>FirstName</name><value>Zoë &#55357;&#56832;</value></member>\
             </struct></value></param></params></methodResponse>"
        ),
        "U+1F600 as two decimal references of its UTF-16 units; é (in the BMP) as is"
    );
    let page = s
        .rpc_raw(Some(&t), "DataService.query", vec![DEMO_PRIVATE_KEY.into(), "Contact".into(), 10.into(), 0.into(), st(&[("LastName", "Smile".into())]), fields(&["FirstName"])])
        .await;
    assert!(page.text.contains("<value>Zoë &#55357;&#56832;</value>") && !page.text.contains('😀'), "{}", page.text);
    // The simulator's reader takes the pair back as the one character.
    assert_eq!(rows(success(&page.text))[0]["FirstName"], Value::from("Zoë 😀"));
}

#[test]
fn every_type_is_written_as_apache_writes_it() {
    let mut m = Struct::new();
    m.insert("i".into(), Value::Int(-7));
    m.insert("b".into(), Value::Boolean(true));
    m.insert("s".into(), Value::from("a<b>&c\"'"));
    m.insert("e".into(), Value::from(""));
    m.insert("d".into(), Value::Double(12_345_678.5));
    m.insert("t".into(), Value::DateTime(dt(2026, 11, 23, 10, 15, 0)));
    m.insert("64".into(), Value::Base64(b"hi!".to_vec()));
    m.insert("none".into(), Value::Base64(Vec::new()));
    m.insert("a".into(), Value::Array(vec![Value::Int(1), Value::Array(vec![]), Value::Struct(Struct::new())]));
    assert_eq!(
        write_response(&MethodResponse::Success(Value::Struct(m))),
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><methodResponse><params><param><value><struct>\
         <member><name>i</name><value><i4>-7</i4></value></member>\
         <member><name>b</name><value><boolean>1</boolean></value></member>\
         <member><name>s</name><value>a&lt;b&gt;&amp;c\"'</value></member>\
         <member><name>e</name><value></value></member>\
         <member><name>d</name><value><double>1.23456785E7</double></value></member>\
         <member><name>t</name><value><dateTime.iso8601>20261123T10:15:00</dateTime.iso8601></value></member>\
         <member><name>64</name><value><base64>aGkh</base64></value></member>\
         <member><name>none</name><value><base64/></value></member>\
         <member><name>a</name><value><array><data><value><i4>1</i4></value><value><array><data/></array></value><value><struct/></value></data></array></value></member>\
         </struct></value></param></params></methodResponse>"
    );
    assert_eq!(
        write_response(&MethodResponse::Fault(Fault::new(2, "[InvalidKey]Invalid key"))),
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><methodResponse><fault><value><struct>\
         <member><name>faultCode</name><value><i4>2</i4></value></member>\
         <member><name>faultString</name><value>[InvalidKey]Invalid key</value></member>\
         </struct></value></fault></methodResponse>"
    );
}

#[tokio::test]
async fn the_reader_takes_what_real_clients_send() {
    let s = demo().await;
    let (t, _) = s.tokens().await;
    let cases: Vec<(&str, Value)> = vec![
        ("<value>plain</value>", Value::from("plain")),
        ("<value>  kept as is </value>", Value::from("  kept as is ")),
        ("<value/>", Value::from("")),
        ("<value><string> typed </string></value>", Value::from(" typed ")),
        ("<value>\n  <i4> 42 </i4>\n</value>", Value::Int(42)),
        ("<value><int>-7</int></value>", Value::Int(-7)),
        ("<value><int>+7</int></value>", Value::Int(7)),
        ("<value><boolean> 0 </boolean></value>", Value::Boolean(false)),
        ("<value><double>1.0E7</double></value>", Value::Double(1e7)),
        ("<value><double> -2.5 </double></value>", Value::Double(-2.5)),
        ("<value><dateTime.iso8601>20261123T10:15:00</dateTime.iso8601></value>", Value::DateTime(dt(2026, 11, 23, 10, 15, 0))),
        ("<value><base64>aGkh</base64></value>", Value::Base64(b"hi!".to_vec())),
        ("<value><base64>aG\n k=</base64></value>", Value::Base64(b"hi".to_vec())),
        ("<value>&#55357;&#56832; &#x1F600; &#128512; 😀 &lt;&gt;&amp;&quot;&apos;</value>", Value::from("😀 😀 😀 😀 <>&\"'")),
        ("<value><![CDATA[<&>]]></value>", Value::from("<&>")),
        ("<value>a<!-- note -->b</value>", Value::from("ab")),
        (
            "<value>\n <struct>\n  <member>\n   <value><i4>1</i4></value>\n   <name>Id</name>\n  </member>\n  <member><name>Name</name><value>Ada</value></member>\n </struct>\n</value>",
            st(&[("Id", Value::Int(1)), ("Name", Value::from("Ada"))]),
        ),
        ("<value><array>\n <data>\n  <value>x</value>\n  <value><i4>2</i4></value>\n </data>\n</array></value>", Value::Array(vec![Value::from("x"), Value::Int(2)])),
    ];
    for (xml, want) in cases {
        // Pretty-printed, as many client libraries send it.
        let body = format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<methodCall>\n  <methodName>DataService.echo</methodName>\n  <params>\n    \
             <param><value>{DEMO_PRIVATE_KEY}</value></param>\n    <param>\n      {xml}\n    </param>\n  </params>\n</methodCall>\n"
        );
        let a = s.rpc_body(&t, body).await;
        assert_eq!(success(&a.text), want, "{xml}");
    }
    // Raw line ends are read as LF, a referenced CR stays a CR, and goes back out raw (as
    // Apache's writer sends it, so any XML reader sees LF again).
    let body = format!(
        "<methodCall><methodName>DataService.echo</methodName><params><param><value>{DEMO_PRIVATE_KEY}</value></param>\
         <param><value>a\r\nb\rc&#13;</value></param></params></methodCall>"
    );
    let a = s.rpc_body(&t, body).await;
    assert!(a.text.contains("<value>a\nb\nc\r</value>"), "{:?}", a.text);
}

#[tokio::test]
async fn the_reader_refuses_what_keap_refuses_with_keaps_words() {
    let s = demo().await;
    let (t, _) = s.tokens().await;
    for (xml, words) in [
        ("<value><nil/></value>", "Unknown type: nil"),
        ("<value><ex:nil/></value>", "Unknown type: ex:nil"),
        ("<value><i8>1</i8></value>", "Unknown type: i8"),
        ("<value><boolean>true</boolean></value>", "Failed to parse boolean value: true"),
        ("<value><int>1.5</int></value>", "Failed to parse integer value: 1.5"),
        ("<value><double>1,5</double></value>", "Failed to parse double value: 1,5"),
        ("<value><dateTime.iso8601>2026-11-23T10:15:00</dateTime.iso8601></value>", "Failed to parse date value: 2026-11-23T10:15:00"),
        ("<value>&#55357;</value>", "Character reference \"&#55357\" is an invalid XML character."),
        ("<value>&#0;</value>", "Character reference \"&#0\" is an invalid XML character."),
        ("<value>x<i4>1</i4></value>", "Unexpected non-whitespace characters"),
    ] {
        let body = format!(
            "<?xml version=\"1.0\"?><methodCall><methodName>DataService.echo</methodName><params>\
             <param><value>{DEMO_PRIVATE_KEY}</value></param><param>{xml}</param></params></methodCall>"
        );
        let a = s.rpc_body(&t, body).await;
        assert_eq!(a.status, 200, "Keap answers a fault with 200");
        match read_response(a.text.as_bytes()).unwrap() {
            MethodResponse::Fault(f) => {
                assert_eq!((f.code, f.message.as_str()), (0, format!("Failed to parse XML-RPC request: {words}").as_str()), "{xml}");
                assert!(!f.message.contains(DEMO_PRIVATE_KEY));
            }
            other => panic!("{xml}: {other:?}"),
        }
    }
}

#[test]
fn calls_read_without_params_and_refuse_a_missing_method() {
    let call = read_call(b"<methodCall><methodName> DataService.echo </methodName></methodCall>").unwrap();
    assert_eq!(call, MethodCall::new("DataService.echo", vec![]));
    assert_eq!(read_call(&write_call(&call).into_bytes()).unwrap(), call);
    assert!(read_call(b"<methodCall><params/></methodCall>").unwrap_err().to_string().contains("Missing method name"));
    // No DTD, so no entity can be declared (let alone an external one).
    let doctype = read_call(b"<!DOCTYPE x [<!ENTITY e \"boom\">]><methodCall><methodName>&e;</methodName></methodCall>");
    assert_eq!(doctype.unwrap_err().to_string(), "DOCTYPE is disallowed");
}

// ------------------------------------------------------------------ round trips

/// Text with a bias towards what escaping and the reader's end-of-line handling must
/// get right.
fn text() -> impl Strategy<Value = String> {
    let c = prop_oneof![
        3 => any::<char>(),
        2 => prop::sample::select(vec!['<', '>', '&', ';', '#', '"', '\'', ' ', '\t', '\n', '\r', '\u{7f}', '\u{85}', 'é', '\u{ffff}', '😀', '\u{10ffff}']),
        2 => proptest::char::range('a', 'z'),
    ];
    vec(c, 0..20).prop_map(String::from_iter)
}

fn value() -> impl Strategy<Value = Value> {
    let date = (0i32..=9999, 1u32..=365, 0u32..86_400).prop_map(|(y, d, s)| {
        NaiveDateTime::new(NaiveDate::from_yo_opt(y, d).unwrap(), NaiveTime::from_num_seconds_from_midnight_opt(s, 0).unwrap())
    });
    let leaf = prop_oneof![
        any::<i32>().prop_map(Value::Int),
        any::<bool>().prop_map(Value::Boolean),
        text().prop_map(Value::String),
        any::<f64>().prop_map(Value::Double),
        date.prop_map(Value::DateTime),
        vec(any::<u8>(), 0..24).prop_map(Value::Base64),
    ];
    leaf.prop_recursive(4, 40, 5, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..5).prop_map(Value::Array),
            vec((text(), inner), 0..5).prop_map(|m| Value::Struct(m.into_iter().collect())),
        ]
    })
}

/// What a reader sees of `v` once written: Apache writes CR as is, and XML reads a raw
/// CR (or CR LF) as LF.
fn as_read(v: &Value) -> Value {
    let lf = |s: &str| s.replace("\r\n", "\n").replace('\r', "\n");
    match v {
        Value::String(s) => Value::String(lf(s)),
        Value::Array(items) => Value::Array(items.iter().map(as_read).collect()),
        Value::Struct(m) => {
            let mut out = Struct::new();
            for (k, v) in m {
                out.insert(lf(k), as_read(v));
            }
            Value::Struct(out)
        }
        other => other.clone(),
    }
}

/// Equality with member order, doubles by bits (NaN is NaN).
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Double(x), Value::Double(y)) => x.to_bits() == y.to_bits() || (x.is_nan() && y.is_nan()),
        (Value::Array(x), Value::Array(y)) => x.len() == y.len() && x.iter().zip(y).all(|(p, q)| same(p, q)),
        (Value::Struct(x), Value::Struct(y)) => x.len() == y.len() && x.iter().zip(y).all(|((k, p), (l, q))| k == l && same(p, q)),
        _ => a == b,
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn every_type_round_trips_through_a_response(v in value()) {
        let xml = write_response(&MethodResponse::Success(v.clone()));
        let back = success(&xml);
        prop_assert!(same(&as_read(&v), &back), "{:?}\n{}\n{:?}", v, xml, back);
        // Astral characters never go out raw.
        prop_assert!(!xml.chars().any(|c| u32::from(c) > 0xFFFF), "{}", xml);
    }

    #[test]
    fn every_type_round_trips_through_a_call(method in "[A-Za-z][A-Za-z0-9_.]{0,20}", params in vec(value(), 0..4)) {
        let back = read_call(write_call(&MethodCall::new(method.clone(), params.clone())).as_bytes()).unwrap();
        prop_assert_eq!(&back.method, &method);
        prop_assert_eq!(back.params.len(), params.len());
        for (p, q) in params.iter().zip(&back.params) {
            prop_assert!(same(&as_read(p), q), "{:?} != {:?}", p, q);
        }
    }

    #[test]
    fn faults_round_trip(code in any::<i32>(), message in text()) {
        let xml = write_response(&MethodResponse::Fault(Fault::new(code, message.clone())));
        let want = Fault::new(code, message.replace("\r\n", "\n").replace('\r', "\n"));
        prop_assert_eq!(read_response(xml.as_bytes()).unwrap(), MethodResponse::Fault(want));
    }

    #[test]
    fn the_reader_never_panics(bytes in vec(any::<u8>(), 0..300)) {
        let _ = read_call(&bytes);
        let _ = read_response(&bytes);
    }
}
