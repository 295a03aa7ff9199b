//! The simulator's codec against the platform's (`switchyard-xmlrpc`), on purpose: the
//! one place the simulators' tests use the platform's crate. Each side is written
//! separately, so this is where a misreading on either side shows.
//!
//! Limits of the comparison, both Keap's: non-finite doubles are left out (the
//! platform refuses them; Keap's money columns cannot hold them), and so are the
//! control characters the platform writes as references (`&#1;`), which XML forbids
//! and Keap's parser, like the simulator's, refuses (the platform's README says not to
//! send them).

use chrono::{NaiveDate, NaiveDateTime, NaiveTime};
use proptest::collection::vec;
use proptest::prelude::*;
use switchyard_simulators::keap::xmlrpc::{self as sim, Value as Sim};
use switchyard_xmlrpc::{self as platform, Value as Plat};

/// Text the platform may send Keap: any character but the controls XML forbids.
fn text() -> impl Strategy<Value = String> {
    let c = prop_oneof![
        4 => any::<char>(),
        2 => prop::sample::select(vec!['&', '<', '>', '\t', '\n', '\r', 'é', '😀', '\u{10ffff}', '\u{fffd}', '\u{85}']),
        2 => proptest::char::range('a', 'z'),
    ]
    .prop_filter("a character XML allows", |c| !matches!(*c, '\u{0}'..='\u{8}' | '\u{b}' | '\u{c}' | '\u{e}'..='\u{1f}' | '\u{fffe}' | '\u{ffff}'));
    vec(c, 0..20).prop_map(String::from_iter)
}

fn value() -> impl Strategy<Value = Sim> {
    let date = (0i32..=9999, 1u32..=365, 0u32..86_400).prop_map(|(y, d, s)| {
        NaiveDateTime::new(NaiveDate::from_yo_opt(y, d).unwrap(), NaiveTime::from_num_seconds_from_midnight_opt(s, 0).unwrap())
    });
    let leaf = prop_oneof![
        any::<i32>().prop_map(Sim::Int),
        any::<bool>().prop_map(Sim::Boolean),
        text().prop_map(Sim::String),
        any::<f64>().prop_filter("finite", |d| d.is_finite()).prop_map(Sim::Double),
        date.prop_map(Sim::DateTime),
        vec(any::<u8>(), 0..24).prop_map(Sim::Base64),
    ];
    leaf.prop_recursive(4, 40, 5, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..5).prop_map(Sim::Array),
            vec((text(), inner), 0..5).prop_map(|m| Sim::Struct(m.into_iter().collect())),
        ]
    })
}

/// The same value on the platform's side; `lf` applies XML's end-of-line handling to
/// text (a CR written raw is read as LF).
fn to_platform(v: &Sim, lf: bool) -> Plat {
    let t = |s: &str| if lf { s.replace("\r\n", "\n").replace('\r', "\n") } else { s.to_owned() };
    match v {
        Sim::Int(i) => Plat::Int(*i),
        Sim::Boolean(b) => Plat::Boolean(*b),
        Sim::String(s) => Plat::String(t(s)),
        Sim::Double(d) => Plat::Double(*d),
        Sim::DateTime(d) => Plat::DateTime(*d),
        Sim::Base64(b) => Plat::Base64(b.clone()),
        Sim::Array(items) => Plat::Array(items.iter().map(|i| to_platform(i, lf)).collect()),
        Sim::Struct(m) => {
            let mut out = platform::Struct::new();
            for (k, v) in m {
                out.insert(t(k), to_platform(v, lf));
            }
            Plat::Struct(out)
        }
        Sim::Raw(_) => unreachable!("not generated"),
    }
}

/// Equality with member order, doubles by bits.
fn same(a: &Plat, b: &Plat) -> bool {
    match (a, b) {
        (Plat::Double(x), Plat::Double(y)) => x.to_bits() == y.to_bits(),
        (Plat::Array(x), Plat::Array(y)) => x.len() == y.len() && x.iter().zip(y).all(|(p, q)| same(p, q)),
        (Plat::Struct(x), Plat::Struct(y)) => x.len() == y.len() && x.iter().zip(y).all(|((k, p), (l, q))| k == l && same(p, q)),
        _ => a == b,
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Keap's answers (Apache's wire: untyped strings, surrogate pairs of references,
    /// Java doubles, empty-tagged containers) read by the platform, exactly.
    #[test]
    fn the_platform_reads_what_the_simulator_writes(v in value()) {
        let xml = sim::write_response(&sim::MethodResponse::Success(v.clone()));
        let read = platform::decode_response(xml.as_bytes());
        let Ok(platform::MethodResponse::Success(got)) = read else {
            return Err(TestCaseError::fail(format!("{read:?} from {xml}")));
        };
        prop_assert!(same(&to_platform(&v, true), &got), "{:?}\n{}\n{:?}", v, xml, got);
    }

    /// The platform's calls read by the simulator, exactly (the platform escapes CR, so
    /// it arrives as a CR).
    #[test]
    fn the_simulator_reads_what_the_platform_writes(params in vec(value(), 0..4)) {
        let call = platform::MethodCall::new("DataService.echo", params.iter().map(|p| to_platform(p, false)).collect());
        let xml = platform::encode_call(&call);
        let read = sim::read_call(xml.as_bytes());
        let Ok(got) = read else {
            return Err(TestCaseError::fail(format!("{read:?} from {xml}")));
        };
        prop_assert_eq!(got.method.as_str(), "DataService.echo");
        prop_assert_eq!(got.params.len(), params.len());
        for (want, got) in call.params.iter().zip(&got.params) {
            prop_assert!(same(want, &to_platform(got, false)), "{:?} != {:?}", want, got);
        }
    }
}
