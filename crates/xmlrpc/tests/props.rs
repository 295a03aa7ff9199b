//! Property tests: encode/decode round trips, and decoding never panics.

use chrono::{NaiveDate, NaiveDateTime, NaiveTime};
use proptest::collection::vec;
use proptest::prelude::*;
use switchyard_xmlrpc::{
    decode_call, decode_call_lossy, decode_response, decode_response_lossy, encode_call,
    encode_response, Fault, MethodCall, MethodResponse, PathItem, Replaced, Replacement, Struct,
    Value,
};

/// Characters with a bias towards the ones escaping has to get right.
fn text() -> impl Strategy<Value = String> {
    let ch = prop_oneof![
        3 => any::<char>(),
        2 => prop::sample::select(vec![
            '<', '>', '&', ';', '#', ']', '"', '\'', ' ', '\t', '\n', '\r', '\0', '\u{1}',
            '\u{1f}', '\u{7f}', '\u{85}', '\u{a0}', '\u{feff}', '\u{fffe}', '\u{ffff}', 'é', '😀',
        ]),
        2 => proptest::char::range('a', 'z'),
    ];
    vec(ch, 0..24).prop_map(String::from_iter)
}

fn datetime() -> impl Strategy<Value = NaiveDateTime> {
    (0i32..=9999, 1u32..=366, 0u32..86_400).prop_map(|(y, day, secs)| {
        let date = NaiveDate::from_yo_opt(y, day)
            .or_else(|| NaiveDate::from_yo_opt(y, 365))
            .unwrap();
        let time = NaiveTime::from_num_seconds_from_midnight_opt(secs, 0).unwrap();
        NaiveDateTime::new(date, time)
    })
}

fn value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        any::<i32>().prop_map(Value::Int),
        any::<bool>().prop_map(Value::Boolean),
        text().prop_map(Value::String),
        any::<f64>()
            .prop_filter("finite", |d| d.is_finite())
            .prop_map(Value::Double),
        datetime().prop_map(Value::DateTime),
        vec(any::<u8>(), 0..40).prop_map(Value::Base64),
        Just(Value::Nil),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..6).prop_map(Value::Array),
            vec((text(), inner), 0..6)
                .prop_map(|members| Value::Struct(members.into_iter().collect())),
        ]
    })
}

/// Hand-written XML-RPC `<value>` text from the grammar, with the scalar
/// types and contents mixed at random: mostly valid, exercising the lenient
/// paths (untyped strings, `int`/`i8`, date forms, CDATA, references).
fn xml_value() -> impl Strategy<Value = String> {
    let ty = prop::sample::select(vec![
        "i4",
        "int",
        "i8",
        "ex:i8",
        "boolean",
        "string",
        "double",
        "dateTime.iso8601",
        "base64",
        "nil",
        "ex:nil",
        "bogus",
    ]);
    let content = prop::sample::select(vec![
        "",
        "1",
        "-7",
        " 42 ",
        "2.5",
        "1e3",
        "true",
        "0",
        "20261123T10:15:00",
        "2026-11-23T10:15:00",
        "aGk=",
        "aG\nk",
        "x",
        " a b ",
        "&amp;&lt;",
        "&#0;",
        "&#xD;",
        "\r\n",
        "<![CDATA[<&>]]>",
        "9007199254740992",
        "<!-- c -->",
        "&bogus;",
    ]);
    let space = prop::sample::select(vec!["", "", " ", "\n  "]);
    let leaf = prop_oneof![
        (ty, content.clone(), space.clone())
            .prop_map(|(t, c, s)| format!("<value>{s}<{t}>{c}</{t}>{s}</value>")),
        content.prop_map(|c| format!("<value>{c}</value>")),
        Just("<value/>".to_string()),
        Just("<value><nil/></value>".to_string()),
    ];
    leaf.prop_recursive(4, 32, 5, move |inner| {
        let name = prop::sample::select(vec![
            "Id",
            "a",
            "",
            " x ",
            "&amp;",
            "faultCode",
            "faultString",
        ]);
        prop_oneof![
            vec(inner.clone(), 0..5).prop_map(|vs| format!(
                "<value><array><data>{}</data></array></value>",
                vs.concat()
            )),
            vec((name, inner, any::<bool>()), 0..5).prop_map(|ms| {
                let members: String = ms
                    .into_iter()
                    .map(|(n, v, swap)| {
                        if swap {
                            format!("<member>{v}<name>{n}</name></member>")
                        } else {
                            format!("<member><name>{n}</name>{v}</member>")
                        }
                    })
                    .collect();
                format!("<value><struct>{members}</struct></value>")
            }),
        ]
    })
}

/// Equality that also requires struct members in the same order.
fn same_ordered(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Struct(x), Value::Struct(y)) => {
            x.len() == y.len()
                && x.iter()
                    .zip(y.iter())
                    .all(|((ka, va), (kb, vb))| ka == kb && same_ordered(va, vb))
        }
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| same_ordered(p, q))
        }
        // Bit-exact for doubles (also tells -0.0 from 0.0).
        (Value::Double(x), Value::Double(y)) => x.to_bits() == y.to_bits(),
        _ => a == b,
    }
}

/// If the bytes decode, the result must survive another encode/decode.
fn check_stable(bytes: &[u8]) -> Result<(), TestCaseError> {
    if let Ok(call) = decode_call(bytes) {
        let again = decode_call(encode_call(&call).as_bytes());
        prop_assert_eq!(again.as_ref(), Ok(&call));
        let again = again.unwrap();
        for (p, q) in call.params.iter().zip(&again.params) {
            prop_assert!(same_ordered(p, q));
        }
    }
    if let Ok(resp) = decode_response(bytes) {
        let again = decode_response(encode_response(&resp).as_bytes());
        prop_assert_eq!(again, Ok(resp));
    }
    // The lossy decoders fail only where the exact ones do, agree with them when
    // nothing was replaced, and what they make encodes and decodes again exactly.
    match decode_response_lossy(bytes) {
        Ok(l) => {
            let exact = decode_response(bytes);
            if l.replaced.is_empty() {
                prop_assert_eq!(exact, Ok(l.value.clone()));
            } else {
                prop_assert!(exact.is_err());
            }
            let again = decode_response(encode_response(&l.value).as_bytes());
            prop_assert_eq!(again, Ok(l.value));
        }
        Err(_) => prop_assert!(decode_response(bytes).is_err()),
    }
    match decode_call_lossy(bytes) {
        Ok(l) => {
            let exact = decode_call(bytes);
            if l.replaced.is_empty() {
                prop_assert_eq!(exact, Ok(l.value.clone()));
            } else {
                prop_assert!(exact.is_err());
            }
            let again = decode_call(encode_call(&l.value).as_bytes());
            prop_assert_eq!(again, Ok(l.value));
        }
        Err(_) => prop_assert!(decode_call(bytes).is_err()),
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn response_round_trip(v in value()) {
        let xml = encode_response(&MethodResponse::Success(v.clone()));
        let back = decode_response(xml.as_bytes());
        let Ok(MethodResponse::Success(back)) = back else {
            return Err(TestCaseError::fail(format!("{back:?} from {xml}")));
        };
        prop_assert!(same_ordered(&v, &back), "{:?} != {:?}", v, back);
    }

    #[test]
    fn call_round_trip(
        method in "[A-Za-z][A-Za-z0-9_.:/]{0,24}",
        params in vec(value(), 0..4),
    ) {
        let call = MethodCall { method, params };
        let back = decode_call(encode_call(&call).as_bytes()).unwrap();
        prop_assert_eq!(&back.method, &call.method);
        prop_assert_eq!(back.params.len(), call.params.len());
        for (p, q) in call.params.iter().zip(&back.params) {
            prop_assert!(same_ordered(p, q), "{:?} != {:?}", p, q);
        }
    }

    #[test]
    fn fault_round_trip(code in any::<i32>(), message in text()) {
        let resp = MethodResponse::Fault(Fault { code, message });
        prop_assert_eq!(decode_response(encode_response(&resp).as_bytes()), Ok(resp));
    }

    #[test]
    fn json_round_trip_of_json_shaped_values(v in value()) {
        // to_json then from_json is the identity on what JSON can carry;
        // applying both twice must be stable.
        let once = Value::from_json(&v.to_json());
        prop_assert_eq!(Value::from_json(&once.to_json()), once);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in vec(any::<u8>(), 0..512)) {
        check_stable(&bytes)?;
    }

    /// Valid documents with bytes flipped, inserted or removed.
    #[test]
    fn mutated_documents_never_panic(
        v in value(),
        fault in any::<bool>(),
        edits in vec((any::<prop::sample::Index>(), 0u8..3, any::<u8>()), 1..6),
    ) {
        let xml = if fault {
            encode_call(&MethodCall::new("DataService.query", vec![v]))
        } else {
            encode_response(&MethodResponse::Success(v))
        };
        let mut bytes = xml.into_bytes();
        for (at, op, byte) in edits {
            let i = at.index(bytes.len() + 1);
            match op {
                0 if i < bytes.len() => bytes[i] = byte,
                1 => bytes.insert(i, byte),
                _ if i < bytes.len() => { bytes.remove(i); }
                _ => {}
            }
        }
        check_stable(&bytes)?;
    }

    /// Documents stitched from XML-RPC's own vocabulary reach deep into the
    /// decoder far more often than random bytes do.
    #[test]
    fn token_soup_never_panics(
        tokens in vec(prop::sample::select(vec![
            "<value>", "</value>", "<value/>", "<struct>", "</struct>", "<member>", "</member>",
            "<name>", "</name>", "<array>", "</array>", "<data>", "</data>", "<i4>", "</i4>",
            "<int>", "</int>", "<i8>", "</i8>", "<string>", "</string>", "<double>", "</double>",
            "<boolean>", "</boolean>", "<base64>", "</base64>", "<nil/>", "<ex:nil/>",
            "<dateTime.iso8601>", "</dateTime.iso8601>", "<fault>", "</fault>", "<params>",
            "</params>", "<param>", "</param>", "<methodName>", "</methodName>",
            "faultCode", "faultString", "1", "-7", "2.5", "1e999", "20261123T10:15:00",
            "2026-11-23T10:15:00", "aGk=", " ", "\n", "\r\n", "x", "&amp;", "&#0;", "&#xD;",
            "&bogus;", "<![CDATA[<]]>", "<!-- c -->", "<?pi x?>", "<!DOCTYPE x>",
        ]), 0..40),
        call in any::<bool>(),
    ) {
        let body: String = tokens.concat();
        let doc = if call {
            format!("<methodCall><methodName>m</methodName><params><param>{body}</param></params></methodCall>")
        } else {
            format!("<methodResponse><params><param>{body}</param></params></methodResponse>")
        };
        check_stable(doc.as_bytes())?;
        check_stable(format!("<methodResponse>{body}</methodResponse>").as_bytes())?;
    }

    #[test]
    fn grammar_documents_decode_stably(values in vec(xml_value(), 0..4), fault in any::<bool>()) {
        let params: String = values.iter().map(|v| format!("<param>{v}</param>")).collect();
        let call = format!("<methodCall><methodName>m</methodName><params>{params}</params></methodCall>");
        check_stable(call.as_bytes())?;
        let first = values.first().cloned().unwrap_or_default();
        let resp = if fault {
            format!("<methodResponse><fault>{first}</fault></methodResponse>")
        } else {
            format!("<methodResponse><params><param>{first}</param></params></methodResponse>")
        };
        check_stable(resp.as_bytes())?;
    }
}

// ------------------------------------------------------- Keap's writer (Java)
//
// Keap's XML-RPC is Apache XML-RPC on ws-commons-util (Java). Its writer works on
// UTF-16 units: `&`, `<`, `>` become entities, a unit its encoder takes is written as
// is, any other unit as a decimal reference, and a surrogate unit alone is never
// encodable, so a character outside the BMP always goes out as a pair of references:
// U+1F600 is `&#55357;&#56832;` (ws-commons-util `XMLWriterImpl.characters`,
// `CharSetXMLWriter.canEncode`; `CharsetEncoder.canEncode(char)` is false for
// surrogates). With another encoder more BMP characters become references, so both
// forms are generated here.

/// `s` written the Java way; `as_is` says, per character, whether a BMP character
/// goes out as is or as a reference (CR always as a reference: a raw CR is read as
/// LF by any XML reader, as XML requires).
fn java_text(s: &str, as_is: &[bool]) -> String {
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            c if u32::from(c) > 0xFFFF => {
                let mut units = [0u16; 2];
                for u in c.encode_utf16(&mut units) {
                    out.push_str(&format!("&#{u};"));
                }
            }
            c if c != '\r' && as_is.get(i).copied().unwrap_or(true) => out.push(c),
            c => out.push_str(&format!("&#{};", u32::from(c))),
        }
    }
    out
}

fn unicode_text() -> impl Strategy<Value = (String, Vec<bool>)> {
    let ch = prop_oneof![
        4 => any::<char>(),
        2 => proptest::char::range('\u{10000}', '\u{10ffff}'),
        1 => prop::sample::select(vec!['😀', '🌈', '&', '<', '>', '\r', '\n', 'é', '\u{fffd}', '\u{feff}']),
    ];
    (
        vec(ch, 0..24).prop_map(String::from_iter),
        vec(any::<bool>(), 24),
    )
}

fn response_doc(value_xml: &str) -> String {
    format!("<?xml version=\"1.0\" encoding=\"UTF-8\"?><methodResponse><params><param>{value_xml}</param></params></methodResponse>")
}

/// A text piece of a field Keap may write: a character the Java way, or a reference
/// that names no character.
#[derive(Debug, Clone)]
enum Piece {
    Char(char, bool),
    /// A surrogate unit with no partner, as a decimal reference.
    Lone(u16),
    /// A number past U+10FFFF.
    TooBig(u64),
}

fn pieces() -> impl Strategy<Value = Vec<Piece>> {
    let piece = prop_oneof![
        4 => (any::<char>(), any::<bool>()).prop_map(|(c, raw)| Piece::Char(c, raw)),
        1 => (0xD800u16..=0xDFFF).prop_map(Piece::Lone),
        1 => (0x11_0000u64..=99_999_999_999).prop_map(Piece::TooBig),
    ];
    vec(piece, 0..12).prop_map(|mut v| {
        // A lone high surrogate right before a lone low one would be a pair.
        let mut i = 0;
        while i + 1 < v.len() {
            if let (Piece::Lone(0xD800..=0xDBFF), Piece::Lone(0xDC00..=0xDFFF)) = (&v[i], &v[i + 1])
            {
                v.insert(i + 1, Piece::Char('x', true));
            }
            i += 1;
        }
        v
    })
}

/// The pieces as written, what a lossy reader must make of them, and whether any
/// had to be replaced.
fn written(pieces: &[Piece]) -> (String, String, bool) {
    let (mut xml, mut want, mut bad) = (String::new(), String::new(), false);
    for p in pieces {
        match p {
            Piece::Char(c, raw) => {
                xml.push_str(&java_text(&c.to_string(), &[*raw]));
                want.push(*c);
            }
            Piece::Lone(u) => {
                xml.push_str(&format!("&#{u};"));
                want.push('\u{fffd}');
                bad = true;
            }
            Piece::TooBig(n) => {
                xml.push_str(&format!("&#{n};"));
                want.push('\u{fffd}');
                bad = true;
            }
        }
    }
    (xml, want, bad)
}

/// A field of a record as Keap may write it, and what the lossy reader must make of
/// it: its value and whether (and why) it is replaced.
#[derive(Debug, Clone)]
enum Field {
    Text(Vec<Piece>),
    Scalar(&'static str, &'static str, Option<Value>),
}

fn field() -> impl Strategy<Value = Field> {
    let scalar = prop::sample::select(vec![
        ("i4", "42", Some(Value::Int(42))),
        ("int", " -7 ", Some(Value::Int(-7))),
        ("double", "2.5", Some(Value::Double(2.5))),
        ("boolean", "1", Some(Value::Boolean(true))),
        ("i4", "12x", None),
        ("int", "99999999999", None),
        ("int", "", None),
        ("i8", "9007199254740993", None),
        ("double", "abc", None),
        ("double", "1e999", None),
        ("boolean", "maybe", None),
        ("base64", "!!!", None),
        (
            "dateTime.iso8601",
            "20261123T10:15:00",
            Some(Value::DateTime(
                NaiveDate::from_ymd_opt(2026, 11, 23)
                    .unwrap()
                    .and_hms_opt(10, 15, 0)
                    .unwrap(),
            )),
        ),
        ("dateTime.iso8601", "20261345T99:99:99", None),
        ("dateTime.iso8601", "yesterday", None),
        ("dateTime.iso8601", "2026-11-23 10:15", None),
        // A reference to no character inside a number is a bad number.
        ("i4", "&#55357;", None),
    ]);
    prop_oneof![
        2 => pieces().prop_map(Field::Text),
        1 => scalar.prop_map(|(t, text, v)| Field::Scalar(t, text, v)),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Any string, written as Keap's Java writer may write it, reads back as itself
    /// (as an untyped value, a `<string>` and a member name), with nothing replaced.
    #[test]
    fn text_written_the_java_way_reads_back_unchanged((s, as_is) in unicode_text()) {
        let t = java_text(&s, &as_is);
        let doc = response_doc(&format!("<value><struct><member><name>{t}</name><value>{t}</value></member>\
            <member><name>typed</name><value><string>{t}</string></value></member></struct></value>"));
        let mut want = Struct::new();
        want.insert(s.clone(), Value::String(s.clone()));
        want.insert("typed".into(), Value::String(s.clone()));
        let want = MethodResponse::Success(Value::Struct(want));
        prop_assert_eq!(decode_response(doc.as_bytes()), Ok(want.clone()), "{}", doc);
        let lossy = decode_response_lossy(doc.as_bytes()).unwrap();
        prop_assert_eq!(lossy.value, want);
        prop_assert!(lossy.replaced.is_empty());
    }

    /// A page of records with lone surrogates, numbers past U+10FFFF and scalars that
    /// do not parse: the lossy reader never fails, replaces text with U+FFFD and
    /// scalars with `Nil`, and reports each replaced field once, by record and name.
    /// The exact reader refuses the same page.
    #[test]
    fn undecodable_fields_are_replaced_and_reported_never_an_error(
        records in vec(vec(field(), 1..5), 1..4),
    ) {
        let mut xml = String::from("<value><array><data>");
        let mut want_records = Vec::new();
        let mut want_replaced = Vec::new();
        for (r, fields) in records.iter().enumerate() {
            xml.push_str("<value><struct>");
            let mut want = Struct::new();
            for (f, field) in fields.iter().enumerate() {
                let name = format!("F{f}");
                let path = vec![PathItem::Index(r), PathItem::Member(name.clone())];
                let (value_xml, value, replaced) = match field {
                    Field::Text(p) => {
                        let (text, w, bad) = written(p);
                        (format!("<value>{text}</value>"), Value::String(w), bad.then_some(Replaced::CharacterReference))
                    }
                    Field::Scalar(t, text, v) => {
                        let kind = match *t { "i4" | "int" => "int", other => other };
                        (format!("<value><{t}>{text}</{t}></value>"), v.clone().unwrap_or(Value::Nil), v.is_none().then_some(Replaced::Scalar(kind)))
                    }
                };
                xml.push_str(&format!("<member><name>{name}</name>{value_xml}</member>"));
                want.insert(name, value);
                if let Some(what) = replaced {
                    want_replaced.push(Replacement { path, what });
                }
            }
            xml.push_str("</struct></value>");
            want_records.push(Value::Struct(want));
        }
        xml.push_str("</data></array></value>");
        let doc = response_doc(&xml);
        let lossy = decode_response_lossy(doc.as_bytes());
        let Ok(lossy) = lossy else {
            return Err(TestCaseError::fail(format!("{lossy:?} from {doc}")));
        };
        prop_assert_eq!(lossy.value, MethodResponse::Success(Value::Array(want_records)));
        prop_assert_eq!(&lossy.replaced, &want_replaced);
        prop_assert_eq!(decode_response(doc.as_bytes()).is_err(), !want_replaced.is_empty());
    }
}
