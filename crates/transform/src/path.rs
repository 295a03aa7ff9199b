//! Paths into records: [`VendorPath`] (a transformation's `vendorPath`, the
//! vendor object's side) and [`CommonPath`] (its `path`, the common resource's side).
//!
//! Vendor path forms (Cloud Elements, "Map Complex Objects"):
//!
//! | form | example | meaning |
//! |---|---|---|
//! | keys | `billing_address.city` | members of nested objects |
//! | index | `lines[0].sku` | an array element, from 0 |
//! | match | `Products[id=4].name` | the first element whose scalar member `id`, rendered as text, is `4` (number 4 and string "4" both match; a number also matches text of the same numeric value, `4.0`) |
//! | filter | `details.Products[?(@.id==2)].name` | the first element whose member (a dotted path after `@.`) equals the JSON value (a number, compared numerically, `true`, `false`, `null`, or a quoted string `'…'` / `"…"`) |
//! | size | `Products[*].size()` | the array's number of elements; only as the last step |
//!
//! Keys hold any character but `.`, `[` and `]`. A path has at most
//! [`MAX_PATH_CHARS`] characters and [`MAX_STEPS`] steps; an index is at most
//! [`MAX_INDEX`] (a write pads the array with nulls up to it).

use std::borrow::Cow;
use std::fmt;

use serde_json::{Map, Value};

/// The longest path accepted, in characters.
pub const MAX_PATH_CHARS: usize = 200;
/// The most steps (keys, indexes, filters) a path may have.
pub const MAX_STEPS: usize = 20;
/// The largest array index accepted: a write pads the array with nulls up to it,
/// so it bounds the memory one write can take.
pub const MAX_INDEX: usize = 10_000;

/// Why a path was refused. Displays as `vendorPath 'a..b': empty segment at 2`
/// (positions are 0-based character offsets into the path).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{side} '{path}': {reason}")]
pub struct PathError {
    /// `vendorPath` or `path`.
    pub side: &'static str,
    pub path: String,
    pub reason: String,
}

/// One step of a vendor path.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    Key(String),
    Index(usize),
    /// `[key=text]`: the first element whose scalar member `key`, rendered as text, equals `text`.
    Match { key: String, text: String },
    /// `[?(@.a.b==value)]`: the first element whose member at `path` equals `value`.
    Filter { path: Vec<String>, value: Value },
    /// `[*].size()`: the array's length.
    Size,
}

/// A parsed `vendorPath`.
#[derive(Debug, Clone, PartialEq)]
pub struct VendorPath {
    text: String,
    steps: Vec<Step>,
    /// Keys only.
    plain: bool,
}

impl VendorPath {
    /// Parses a vendor path (see the module docs for the forms). Errors name the
    /// position and the reason; nothing panics.
    pub fn parse(text: &str) -> Result<VendorPath, PathError> {
        let err = |reason: String| PathError { side: "vendorPath", path: text.to_owned(), reason };
        let chars: Vec<char> = text.chars().collect();
        if chars.is_empty() {
            return Err(err("empty".into()));
        }
        if chars.len() > MAX_PATH_CHARS {
            return Err(err(format!("longer than {MAX_PATH_CHARS} characters")));
        }
        let mut steps = Vec::new();
        let mut i = 0;
        loop {
            // A segment: a non-empty key, then any number of brackets.
            let start = i;
            while i < chars.len() && !matches!(chars[i], '.' | '[' | ']') {
                i += 1;
            }
            if i == start {
                return Err(err(format!("empty segment at {start}")));
            }
            steps.push(Step::Key(chars[start..i].iter().collect()));
            while i < chars.len() && chars[i] == '[' {
                let open = i;
                let close = find_close(&chars, open).ok_or_else(|| err(format!("unclosed '[' at {open}")))?;
                let inner: String = chars[open + 1..close].iter().collect();
                i = close + 1;
                if inner == "*" {
                    let rest: String = chars[i..].iter().collect();
                    if rest != ".size()" {
                        return Err(err(format!("'[*]' at {open} must be followed by '.size()' and end the path")));
                    }
                    steps.push(Step::Size);
                    i = chars.len();
                    break;
                }
                steps.push(parse_bracket(&inner).map_err(|r| err(format!("{r} in '[{inner}]' at {open}")))?);
            }
            if steps.len() > MAX_STEPS {
                return Err(err(format!("more than {MAX_STEPS} steps")));
            }
            if i == chars.len() {
                break;
            }
            match chars[i] {
                '.' => {
                    i += 1;
                    if i == chars.len() {
                        return Err(err(format!("empty segment at {i}")));
                    }
                }
                ']' => return Err(err(format!("unexpected ']' at {i}"))),
                c => return Err(err(format!("unexpected '{c}' at {i}"))),
            }
        }
        let plain = steps.iter().all(|s| matches!(s, Step::Key(_)));
        Ok(VendorPath { text: text.to_owned(), steps, plain })
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    pub fn steps(&self) -> &[Step] {
        &self.steps
    }

    /// The dotted text when the path is keys only (a vendor may filter on it).
    pub fn plain(&self) -> Option<&str> {
        self.plain.then_some(self.text.as_str())
    }

    /// The first key (every path starts with one): the record's top-level member it reads.
    pub fn first_key(&self) -> &str {
        match self.steps.first() {
            Some(Step::Key(k)) => k,
            _ => "",
        }
    }

    /// True when [`set`](Self::set) writes: keys and indexes only. Match, filter and
    /// size paths are read-only.
    pub fn is_writable(&self) -> bool {
        self.steps.iter().all(|s| matches!(s, Step::Key(_) | Step::Index(_)))
    }

    /// True when the path ends in `[*].size()` (its value is a number).
    pub fn is_size(&self) -> bool {
        matches!(self.steps.last(), Some(Step::Size))
    }

    /// The value at this path in `record`: `None` when a step finds nothing (a
    /// missing member, an index past the end, no element matching, a non-container
    /// in the way). `size()` yields an owned number; everything else is borrowed.
    pub fn get<'a>(&self, record: &'a Value) -> Option<Cow<'a, Value>> {
        let mut at = record;
        for step in &self.steps {
            at = match step {
                Step::Key(k) => at.as_object()?.get(k)?,
                Step::Index(n) => at.as_array()?.get(*n)?,
                Step::Match { key, text } => at.as_array()?.iter().find(|e| e.get(key).is_some_and(|v| text_equals(v, text)))?,
                Step::Filter { path, value } => at.as_array()?.iter().find(|e| get_keys(e, path).is_some_and(|v| json_equals(v, value)))?,
                Step::Size => return Some(Cow::Owned(Value::from(at.as_array()?.len()))),
            };
        }
        Some(Cow::Borrowed(at))
    }

    /// Writes `value` at this path, creating objects and arrays on the way (arrays
    /// padded with nulls up to the index); a scalar in the way is replaced. Returns
    /// false, writing nothing, for read-only paths (see [`is_writable`](Self::is_writable)).
    pub fn set(&self, record: &mut Value, value: Value) -> bool {
        if !self.is_writable() {
            return false;
        }
        let mut at = record;
        for step in &self.steps {
            at = match step {
                Step::Key(k) => object_of(at).entry(k.as_str()).or_insert(Value::Null),
                Step::Index(n) => {
                    if !at.is_array() {
                        *at = Value::Array(Vec::new());
                    }
                    let Value::Array(items) = at else { return false };
                    if items.len() <= *n {
                        items.resize(*n + 1, Value::Null);
                    }
                    &mut items[*n]
                }
                Step::Match { .. } | Step::Filter { .. } | Step::Size => return false,
            };
        }
        *at = value;
        true
    }
}

impl fmt::Display for VendorPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// A common resource field's `path`: dotted keys of letters, digits, `_` and `-`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommonPath {
    text: String,
    keys: Vec<String>,
}

impl CommonPath {
    pub fn parse(text: &str) -> Result<CommonPath, PathError> {
        let err = |reason: String| PathError { side: "path", path: text.to_owned(), reason };
        if text.is_empty() {
            return Err(err("empty".into()));
        }
        if text.chars().count() > MAX_PATH_CHARS {
            return Err(err(format!("longer than {MAX_PATH_CHARS} characters")));
        }
        let mut keys = Vec::new();
        let mut pos = 0;
        for key in text.split('.') {
            if key.is_empty() {
                return Err(err(format!("empty segment at {pos}")));
            }
            if let Some((off, c)) = key.char_indices().find(|&(_, c)| !(c.is_ascii_alphanumeric() || c == '_' || c == '-')) {
                return Err(err(format!("'{c}' at {} (keys hold letters, digits, '_' and '-')", pos + text[pos..pos + off].chars().count())));
            }
            keys.push(key.to_owned());
            pos += key.len() + 1;
        }
        if keys.len() > MAX_STEPS {
            return Err(err(format!("more than {MAX_STEPS} steps")));
        }
        Ok(CommonPath { text: text.to_owned(), keys })
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    pub fn keys(&self) -> &[String] {
        &self.keys
    }

    pub fn first_key(&self) -> &str {
        &self.keys[0]
    }

    /// The value at this path, `None` when a member is missing or a non-object is in the way.
    pub fn get<'a>(&self, record: &'a Value) -> Option<&'a Value> {
        get_keys(record, &self.keys)
    }

    /// Writes `value` at this path, creating objects on the way (a non-object in
    /// the way is replaced).
    pub fn set(&self, record: &mut Value, value: Value) {
        let mut at = record;
        for k in &self.keys {
            at = object_of(at).entry(k.as_str()).or_insert(Value::Null);
        }
        *at = value;
    }
}

impl fmt::Display for CommonPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

fn object_of(v: &mut Value) -> &mut Map<String, Value> {
    if !v.is_object() {
        *v = Value::Object(Map::new());
    }
    match v {
        Value::Object(m) => m,
        _ => unreachable!("just made an object"),
    }
}

fn get_keys<'a>(record: &'a Value, keys: &[String]) -> Option<&'a Value> {
    let mut at = record;
    for k in keys {
        at = at.as_object()?.get(k)?;
    }
    Some(at)
}

/// The index of the `]` closing the `[` at `open`; quotes inside a `?(...)` filter
/// may hold brackets.
fn find_close(chars: &[char], open: usize) -> Option<usize> {
    let filter = chars.get(open + 1) == Some(&'?');
    let mut quote: Option<char> = None;
    for (i, &c) in chars.iter().enumerate().skip(open + 1) {
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None if filter && (c == '\'' || c == '"') => quote = Some(c),
            None if c == '[' => return None,
            None if c == ']' => return Some(i),
            None => {}
        }
    }
    None
}

fn parse_bracket(inner: &str) -> Result<Step, String> {
    if inner.is_empty() {
        return Err("empty brackets".into());
    }
    if inner.bytes().all(|b| b.is_ascii_digit()) {
        return match inner.parse::<usize>() {
            Ok(n) if n <= MAX_INDEX => Ok(Step::Index(n)),
            _ => Err(format!("index above {MAX_INDEX}")),
        };
    }
    if let Some(body) = inner.strip_prefix("?(") {
        let body = body.strip_suffix(')').ok_or("a filter must end with ')'")?;
        let body = body.strip_prefix("@.").ok_or("a filter must start with '?(@.'")?;
        let (path, value) = body.split_once("==").ok_or("a filter needs '=='")?;
        let path: Vec<String> = path.trim().split('.').map(str::to_owned).collect();
        if path.iter().any(|k| k.is_empty()) {
            return Err("empty key in the filter's '@.' path".into());
        }
        return Ok(Step::Filter { path, value: filter_value(value.trim())? });
    }
    if let Some((key, text)) = inner.split_once('=') {
        if key.is_empty() {
            return Err("empty key before '='".into());
        }
        return Ok(Step::Match { key: key.to_owned(), text: text.to_owned() });
    }
    Err("expected an index, 'key=value', '?(@.key==value)' or '*'".into())
}

fn filter_value(text: &str) -> Result<Value, String> {
    for q in ['\'', '"'] {
        if let Some(rest) = text.strip_prefix(q) {
            let s = rest.strip_suffix(q).ok_or("a quoted filter value must end at its closing quote")?;
            if s.contains(q) {
                return Err("a quote inside the filter's quoted value".into());
            }
            return Ok(Value::String(s.to_owned()));
        }
    }
    match text {
        "true" => Ok(Value::Bool(true)),
        "false" => Ok(Value::Bool(false)),
        "null" => Ok(Value::Null),
        _ => text
            .parse::<serde_json::Number>()
            .map(Value::Number)
            .map_err(|_| format!("filter value '{text}' is not a number, true, false, null or a quoted string")),
    }
}

/// `[key=text]`: a scalar rendered as text.
fn text_equals(v: &Value, text: &str) -> bool {
    match v {
        Value::String(s) => s == text,
        Value::Number(n) => n.to_string() == text || text.parse::<f64>().ok().zip(n.as_f64()).is_some_and(|(a, b)| a == b),
        Value::Bool(b) => text == if *b { "true" } else { "false" },
        Value::Null => text == "null",
        Value::Array(_) | Value::Object(_) => false,
    }
}

/// JSON equality with numbers compared numerically (`2 == 2.0`).
fn json_equals(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => match (x.as_i64(), y.as_i64()) {
            (Some(i), Some(j)) => i == j,
            _ => x.as_f64() == y.as_f64(),
        },
        _ => a == b,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn vp(s: &str) -> VendorPath {
        VendorPath::parse(s).unwrap()
    }

    fn get(path: &str, record: &Value) -> Option<Value> {
        vp(path).get(record).map(Cow::into_owned)
    }

    #[test]
    fn keys_and_indexes_read_and_write() {
        let r = json!({"billing_address": {"city": "Austin"}, "lines": [{"sku": "A"}, {"sku": "B"}], "m": [[1, 2], [3]]});
        assert_eq!(get("billing_address.city", &r), Some(json!("Austin")));
        assert_eq!(get("lines[1].sku", &r), Some(json!("B")));
        assert_eq!(get("m[0][1]", &r), Some(json!(2)));
        assert_eq!(get("lines[2].sku", &r), None);
        assert_eq!(get("billing_address.city.x", &r), None);
        assert_eq!(get("nope", &r), None);
        assert_eq!(vp("billing_address.city").plain(), Some("billing_address.city"));
        assert_eq!(vp("lines[1].sku").plain(), None);
        assert_eq!(vp("lines[1].sku").first_key(), "lines");

        let mut out = Value::Null;
        assert!(vp("a.b").set(&mut out, json!(1)));
        assert!(vp("lines[2].sku").set(&mut out, json!("C")));
        assert!(vp("a.c").set(&mut out, json!(2)));
        assert_eq!(out, json!({"a": {"b": 1, "c": 2}, "lines": [null, null, {"sku": "C"}]}));
        // A scalar in the way is replaced.
        assert!(vp("a.b.z").set(&mut out, json!(true)));
        assert_eq!(out["a"]["b"], json!({"z": true}));
    }

    #[test]
    fn match_filters_compare_text() {
        let r = json!({"Products": [{"id": 3, "name": "x"}, {"id": 4, "name": "iPad"}, {"id": "4", "name": "later"}], "S": [{"id": "4", "name": "s"}]});
        assert_eq!(get("Products[id=4].name", &r), Some(json!("iPad")));
        assert_eq!(get("S[id=4].name", &r), Some(json!("s")));
        assert_eq!(get("Products[id=4.0].name", &r), Some(json!("iPad")));
        assert_eq!(get("S[id=4.0].name", &r), None);
        assert_eq!(get("Products[id=5].name", &r), None);
        assert_eq!(get("Products[name=iPad].id", &r), Some(json!(4)));
        let p = vp("Products[id=4].name");
        assert!(!p.is_writable());
        let mut w = r.clone();
        assert!(!p.set(&mut w, json!("no")));
        assert_eq!(w, r);
    }

    #[test]
    fn jsonpath_filters_compare_json_values() {
        let r = json!({"details": {"Products": [
            {"id": 1, "name": "a", "features": {"touchId": false}},
            {"id": 2.0, "name": "b", "features": {"touchId": true}},
            {"id": "2", "name": "c", "features": {"touchId": true}}]}});
        assert_eq!(get("details.Products[?(@.id==2)].name", &r), Some(json!("b")));
        assert_eq!(get("details.Products[?(@.id=='2')].name", &r), Some(json!("c")));
        assert_eq!(get("details.Products[?(@.id==\"2\")].name", &r), Some(json!("c")));
        assert_eq!(get("details.Products[?(@.features.touchId==true)].id", &r), Some(json!(2.0)));
        assert_eq!(get("details.Products[?(@.features.touchId==false)].name", &r), Some(json!("a")));
        assert_eq!(get("details.Products[?(@.id==9)].name", &r), None);
        // A quoted value may hold brackets and dots.
        let q = json!({"P": [{"n": "a]b.c", "v": 1}]});
        assert_eq!(get("P[?(@.n=='a]b.c')].v", &q), Some(json!(1)));
        assert!(!vp("P[?(@.n==1)].v").is_writable());
    }

    #[test]
    fn size_counts_the_array() {
        let r = json!({"Products": [1, 2, 3], "o": {}});
        let p = vp("Products[*].size()");
        assert!(p.is_size() && !p.is_writable() && p.plain().is_none());
        assert_eq!(get("Products[*].size()", &r), Some(json!(3)));
        assert_eq!(get("o[*].size()", &r), None);
        assert_eq!(get("none[*].size()", &r), None);
    }

    #[test]
    fn malformed_paths_are_errors() {
        let e = VendorPath::parse("a..b").unwrap_err();
        assert_eq!(e.to_string(), "vendorPath 'a..b': empty segment at 2");
        for (bad, why) in [
            ("", "empty"),
            (".a", "empty segment at 0"),
            ("a.", "empty segment at 2"),
            ("a[", "unclosed '['"),
            ("a[0", "unclosed '['"),
            ("a]", "unexpected ']' at 1"),
            ("a[]", "empty brackets"),
            ("a[x]", "expected an index"),
            ("a[0]b", "unexpected 'b' at 4"),
            ("[0]", "empty segment at 0"),
            ("a[*]", "must be followed by '.size()'"),
            ("a[*].size().b", "must be followed by '.size()'"),
            ("a[=1]", "empty key before '='"),
            ("a[?(@.id==2]", "must end with ')'"),
            ("a[?(id==2)]", "must start with '?(@.'"),
            ("a[?(@.id=2)]", "needs '=='"),
            ("a[?(@.id==two)]", "is not a number"),
            ("a[?(@.id=='x)]", "unclosed '[' at 1"),
            ("a[?(@.id=='x'y)]", "end at its closing quote"),
            ("a[?(@..id==1)]", "empty key"),
            ("a[99999999999999999999999]", "index above"),
        ] {
            let e = VendorPath::parse(bad).unwrap_err().to_string();
            assert!(e.contains(why), "{bad}: {e}");
            assert!(e.starts_with(&format!("vendorPath '{bad}': ")), "{e}");
        }
        assert!(VendorPath::parse(&"a".repeat(201)).unwrap_err().reason.contains("200"));
        assert!(VendorPath::parse(&"a".repeat(200)).is_ok());
        let long = vec!["k"; 21].join(".");
        assert!(VendorPath::parse(&long).unwrap_err().reason.contains("20 steps"));
        assert!(VendorPath::parse(&vec!["k"; 20].join(".")).is_ok());
        // Keys hold anything but '.', '[' and ']'.
        let odd = vp("a b(c)=@?*.x");
        assert_eq!(odd.plain(), Some("a b(c)=@?*.x"));
        assert_eq!(odd.to_string(), "a b(c)=@?*.x");
    }

    #[test]
    fn common_paths() {
        let p = CommonPath::parse("address.post-code_2").unwrap();
        assert_eq!(p.keys(), ["address", "post-code_2"]);
        let mut r = Value::Null;
        p.set(&mut r, json!("X1"));
        assert_eq!(r, json!({"address": {"post-code_2": "X1"}}));
        assert_eq!(p.get(&r), Some(&json!("X1")));
        assert_eq!(CommonPath::parse("a..b").unwrap_err().to_string(), "path 'a..b': empty segment at 2");
        assert!(CommonPath::parse("a.b c").unwrap_err().reason.contains("' ' at 3"));
        assert!(CommonPath::parse("a[0]").is_err());
        assert!(CommonPath::parse("").is_err());
        assert!(CommonPath::parse(&vec!["k"; 21].join(".")).is_err());
    }
}
