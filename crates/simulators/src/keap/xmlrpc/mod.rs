//! Keap's XML-RPC, written and read the way Keap's server does it.
//!
//! The simulator's own codec: it shares no code with the platform's `switchyard-xmlrpc`,
//! so a mistake in one shows up in the other's tests instead of being mirrored.
//!
//! Keap's legacy API is Apache XML-RPC 3.1 (Java) on ws-commons-util 1.0.2. What this
//! module copies from it (read in the Apache sources: `TypeFactoryImpl`,
//! `RecursiveTypeParserImpl`, `AtomicParser`, `I4Parser`, `BooleanParser`,
//! `DoubleParser`, `XmlRpcDateTimeFormat`, `StringSerializer`, `DoubleSerializer`,
//! `ByteArraySerializer`, `DefaultXMLWriterFactory`, and ws-commons-util's
//! `XMLWriterImpl` / `CharSetXMLWriter`):
//!
//! * **Writing.** `<?xml version="1.0" encoding="UTF-8"?>` and no white space. Strings
//!   are untyped (`<value>Ada</value>`; `StringSerializer` passes no tag), ints `<i4>`,
//!   booleans `1`/`0`, doubles in Java's `Double.toString` (`1.0E7`), dates
//!   `yyyyMMdd'T'HH:mm:ss` with no zone, base64 on one line. Text escapes `&`, `<`, `>`
//!   as entities and writes every other UTF-16 unit the UTF-8 encoder can encode as is;
//!   a lone surrogate unit cannot be encoded (`CharsetEncoder.canEncode(char)` is false
//!   for surrogates), so a character outside the Basic Multilingual Plane becomes a
//!   surrogate pair of decimal references: U+1F600 is `&#55357;&#56832;`. Elements with
//!   no content are written empty-tagged (`<data/>`, `<struct/>`, `<base64/>`), an empty
//!   string as `<value></value>` (the writer is always handed the text, even empty).
//! * **Reading.** Untyped values are strings; `<i4>` and `<int>`; white space around
//!   and between elements is ignored; `<boolean>` is `1` or `0` only; `<double>` is
//!   what Java's `Double.valueOf` reads; `<dateTime.iso8601>` is only
//!   `yyyyMMdd'T'HH:mm:ss` (a lenient `Calendar`: month 13 rolls into the next year,
//!   trailing text is ignored). Keap runs without Apache's extensions, so `<nil/>`,
//!   `<ex:nil/>`, `<i8>` and the other extension types are refused with
//!   `Unknown type: nil` (what Keap answers to a `<nil/>`: see
//!   github.com/infusionsoft/infusionsoft-php issue 206, "Failed to parse XML-RPC
//!   request: Unknown type: nil"). Keap itself never writes `nil`: an empty field is
//!   left out of the struct.
//!
//! Where the simulator is more lenient than Keap's Java XML parser, and why: a surrogate
//! pair of references (`&#55357;&#56832;`) is read as the one character (XML forbids a
//! reference to a surrogate, so Keap cannot read its own output back; the simulator can,
//! so its answers round-trip); raw control characters are not refused; `<name>` and
//! `<value>` may come in either order in a `<member>`. A reference to a character XML
//! forbids (a lone surrogate, `&#0;`, `&#xFFFE;`) is refused, as Keap does.

mod read;
mod write;

use std::fmt;

use chrono::NaiveDateTime;
use indexmap::IndexMap;

pub use read::{read_call, read_response, ReadError, MAX_DEPTH, MAX_INPUT_BYTES};
pub use write::{write_call, write_response};

/// A `<struct>`: members in the order written or read.
pub type Struct = IndexMap<String, Value>;

/// One XML-RPC value of the types Keap uses.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// `<i4>` (also read as `<int>`).
    Int(i32),
    /// `<boolean>`.
    Boolean(bool),
    /// An untyped `<value>` (how Keap writes strings), or `<string>`.
    String(String),
    /// `<double>`.
    Double(f64),
    /// `<dateTime.iso8601>`: no zone, whole seconds.
    DateTime(NaiveDateTime),
    /// `<base64>`.
    Base64(Vec<u8>),
    /// `<struct>`.
    Struct(Struct),
    /// `<array><data>…</data></array>`.
    Array(Vec<Value>),
    /// XML written verbatim in place of the whole `<value>…</value>`. The reader never
    /// makes one; the control API puts one in a record's field to play an answer a
    /// client must survive (an undecodable reference, a scalar that does not parse).
    Raw(String),
}

impl Value {
    /// The XML-RPC type name, as faults quote it.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Int(_) => "int",
            Value::Boolean(_) => "boolean",
            Value::String(_) => "string",
            Value::Double(_) => "double",
            Value::DateTime(_) => "dateTime.iso8601",
            Value::Base64(_) => "base64",
            Value::Struct(_) => "struct",
            Value::Array(_) => "array",
            Value::Raw(_) => "raw",
        }
    }

    pub fn as_i32(&self) -> Option<i32> {
        match self {
            Value::Int(i) => Some(*i),
            _ => None,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_struct(&self) -> Option<&Struct> {
        match self {
            Value::Struct(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_array(&self) -> Option<&[Value]> {
        match self {
            Value::Array(a) => Some(a),
            _ => None,
        }
    }
}

impl From<i32> for Value {
    fn from(v: i32) -> Self {
        Value::Int(v)
    }
}

impl From<bool> for Value {
    fn from(v: bool) -> Self {
        Value::Boolean(v)
    }
}

impl From<&str> for Value {
    fn from(v: &str) -> Self {
        Value::String(v.to_owned())
    }
}

impl From<String> for Value {
    fn from(v: String) -> Self {
        Value::String(v)
    }
}

impl From<f64> for Value {
    fn from(v: f64) -> Self {
        Value::Double(v)
    }
}

impl From<NaiveDateTime> for Value {
    fn from(v: NaiveDateTime) -> Self {
        Value::DateTime(v)
    }
}

impl From<Vec<Value>> for Value {
    fn from(v: Vec<Value>) -> Self {
        Value::Array(v)
    }
}

impl From<Struct> for Value {
    fn from(v: Struct) -> Self {
        Value::Struct(v)
    }
}

/// A `<methodCall>`.
#[derive(Debug, Clone, PartialEq)]
pub struct MethodCall {
    pub method: String,
    pub params: Vec<Value>,
}

impl MethodCall {
    pub fn new(method: impl Into<String>, params: Vec<Value>) -> Self {
        MethodCall { method: method.into(), params }
    }
}

/// A `<fault>`: `faultCode` and `faultString`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fault {
    pub code: i32,
    pub message: String,
}

impl Fault {
    pub fn new(code: i32, message: impl Into<String>) -> Self {
        Fault { code, message: message.into() }
    }

    /// The bracketed kind that starts a Keap fault string: `InvalidKey` for
    /// `[InvalidKey]Invalid key`.
    pub fn keap_kind(&self) -> Option<&str> {
        let (kind, _) = self.message.strip_prefix('[')?.split_once(']')?;
        (!kind.is_empty()).then_some(kind)
    }
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "fault {}: {}", self.code, self.message)
    }
}

/// A `<methodResponse>`.
#[derive(Debug, Clone, PartialEq)]
pub enum MethodResponse {
    Success(Value),
    Fault(Fault),
}
