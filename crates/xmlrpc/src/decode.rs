//! Reading calls and responses, on quick-xml's pull parser.
//!
//! Safety properties: the input size is capped ([`MAX_INPUT_BYTES`]), value
//! nesting is capped ([`MAX_DEPTH`]; recursion depth is bounded by it), a
//! DOCTYPE is rejected so no entity can be declared, and only the five
//! predefined entities and numeric character references are resolved.

use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::DecodePaddingMode;
use base64::Engine as _;
use quick_xml::events::Event;
use quick_xml::Reader;

use crate::error::Error;
use crate::value::{
    is_xml_space, parse_datetime, Fault, MethodCall, MethodResponse, Struct, Value,
};

/// Largest document the decoders accept: 16 MiB. A Keap `DataService.query`
/// page (at most 1000 records) is a few MiB at most. Callers that buffer an
/// HTTP body should apply the same cap before buffering.
pub const MAX_INPUT_BYTES: usize = 16 * 1024 * 1024;

/// Deepest nesting of values the decoders accept: a parameter's value is
/// level 1, a member of a struct in it level 2, and so on.
pub const MAX_DEPTH: usize = 64;

/// Lenient base64: padding optional, whitespace (line breaks) stripped first.
const BASE64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new()
        .with_decode_padding_mode(DecodePaddingMode::Indifferent)
        .with_decode_allow_trailing_bits(true),
);

/// Reads a `<methodCall>` (what a server receives). Exact: a character
/// reference that names no character or a scalar that does not parse is an error.
pub fn decode_call(input: &[u8]) -> Result<MethodCall, Error> {
    call(Parser::new(input, false)?)
}

/// Reads a `<methodResponse>` (what a client receives): one value, or a
/// fault whose struct has `faultCode` (int, or a string holding one) and
/// `faultString`, in any order; other members are ignored. Exact, as
/// [`decode_call`].
pub fn decode_response(input: &[u8]) -> Result<MethodResponse, Error> {
    response(Parser::new(input, false)?)
}

/// [`decode_call`], but a character reference that names no character (a lone
/// surrogate, a number past U+10FFFF) is read as U+FFFD and a scalar whose text
/// does not parse as its type (`<int>`, `<i8>`, `<boolean>`, `<double>`,
/// `<dateTime.iso8601>`, `<base64>`) becomes `Nil`; each replacement is reported
/// with where it was (the first path item is the parameter's index). Malformed
/// XML and a wrong XML-RPC structure are still errors.
pub fn decode_call_lossy(input: &[u8]) -> Result<Lossy<MethodCall>, Error> {
    let mut p = Parser::new(input, true)?;
    p.index_params = true;
    let value = call_from(&mut p)?;
    Ok(Lossy {
        value,
        replaced: p.replaced,
    })
}

/// [`decode_response`] with [`decode_call_lossy`]'s replacements; paths start
/// inside the response's value (or the fault's struct).
pub fn decode_response_lossy(input: &[u8]) -> Result<Lossy<MethodResponse>, Error> {
    let mut p = Parser::new(input, true)?;
    let value = response_from(&mut p)?;
    Ok(Lossy {
        value,
        replaced: p.replaced,
    })
}

/// What a lossy decoder read, and what it had to replace.
#[derive(Debug, Clone, PartialEq)]
pub struct Lossy<T> {
    /// The document, replacements applied.
    pub value: T,
    /// Each replacement, in document order.
    pub replaced: Vec<Replacement>,
}

/// One replacement made by a lossy decoder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Replacement {
    /// Struct members and array (or parameter) indexes leading to the value; a
    /// replaced member name ends the path with the name as read (with U+FFFD).
    pub path: Vec<PathItem>,
    /// What was replaced.
    pub what: Replaced,
}

/// A step of a [`Replacement`]'s path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathItem {
    /// A struct member, by name.
    Member(String),
    /// An array element or a call parameter, from 0.
    Index(usize),
}

/// What a lossy decoder replaced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Replaced {
    /// One or more character references naming no character, read as U+FFFD.
    CharacterReference,
    /// A scalar of this XML-RPC type whose text does not parse, read as `Nil`.
    Scalar(&'static str),
}

fn call(mut p: Parser<'_>) -> Result<MethodCall, Error> {
    call_from(&mut p)
}

fn response(mut p: Parser<'_>) -> Result<MethodResponse, Error> {
    response_from(&mut p)
}

fn call_from(p: &mut Parser<'_>) -> Result<MethodCall, Error> {
    let root = p.root()?;
    if root != "methodCall" {
        return Err(p.structure(format!("expected <methodCall>, found <{}>", snippet(&root))));
    }
    let mut method = None;
    let mut params = None;
    loop {
        match p.skip_space()? {
            Tok::Start(n) if n == "methodName" => {
                if method.is_some() {
                    return Err(p.structure("more than one <methodName>".into()));
                }
                let (text, replaced) = p.text_only("methodName")?;
                if replaced {
                    p.replace(Replaced::CharacterReference);
                }
                let name = text.trim_matches(is_xml_space);
                if name.is_empty() {
                    return Err(p.structure("empty <methodName>".into()));
                }
                method = Some(name.to_owned());
            }
            Tok::Start(n) if n == "params" => {
                if params.is_some() {
                    return Err(p.structure("more than one <params>".into()));
                }
                params = Some(p.params()?);
            }
            Tok::End => break,
            other => return Err(p.unexpected(other, "methodCall")),
        }
    }
    let method = method.ok_or_else(|| p.structure("<methodCall> without <methodName>".into()))?;
    p.finish()?;
    Ok(MethodCall {
        method,
        params: params.unwrap_or_default(),
    })
}

fn response_from(p: &mut Parser<'_>) -> Result<MethodResponse, Error> {
    let root = p.root()?;
    if root != "methodResponse" {
        return Err(p.structure(format!(
            "expected <methodResponse>, found <{}>",
            snippet(&root)
        )));
    }
    let response = match p.skip_space()? {
        Tok::Start(n) if n == "params" => {
            let mut params = p.params()?;
            if params.len() != 1 {
                return Err(p.structure(format!(
                    "a response has exactly one <param>, found {}",
                    params.len()
                )));
            }
            MethodResponse::Success(params.pop().unwrap_or(Value::Nil))
        }
        Tok::Start(n) if n == "fault" => {
            let value = match p.skip_space()? {
                Tok::Start(n) if n == "value" => p.value(1)?,
                other => return Err(p.unexpected(other, "fault")),
            };
            match p.skip_space()? {
                Tok::End => {}
                other => return Err(p.unexpected(other, "fault")),
            }
            MethodResponse::Fault(p.fault(value)?)
        }
        other => return Err(p.unexpected(other, "methodResponse")),
    };
    match p.skip_space()? {
        Tok::End => {}
        other => return Err(p.unexpected(other, "methodResponse")),
    }
    p.finish()?;
    Ok(response)
}

/// What the structural parser sees: element starts (local name, so `ex:nil`
/// is `nil`), element ends (quick-xml checks that they match), and text
/// (entities resolved, line ends normalised, CDATA included; true when a
/// reference naming no character was read as U+FFFD).
#[derive(Debug)]
enum Tok {
    Start(String),
    End,
    Text(String, bool),
    Eof,
}

struct Parser<'a> {
    reader: Reader<&'a [u8]>,
    /// An `<empty/>` element yields `Start`, then this `End`.
    pending_end: bool,
    /// Replace what cannot be decoded (and report it) instead of failing.
    lossy: bool,
    /// Where the value being read is, for replacements.
    path: Vec<PathItem>,
    /// Call parameters are path items of their own.
    index_params: bool,
    replaced: Vec<Replacement>,
}

impl<'a> Parser<'a> {
    fn new(input: &'a [u8], lossy: bool) -> Result<Self, Error> {
        if input.len() > MAX_INPUT_BYTES {
            return Err(Error::TooLarge {
                len: input.len(),
                max: MAX_INPUT_BYTES,
            });
        }
        let text = std::str::from_utf8(input).map_err(|e| Error::InvalidUtf8 {
            at: e.valid_up_to(),
        })?;
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let mut reader = Reader::from_str(text);
        let config = reader.config_mut();
        config.check_end_names = true;
        config.allow_unmatched_ends = false;
        config.expand_empty_elements = false;
        config.trim_text_start = false;
        config.trim_text_end = false;
        Ok(Parser {
            reader,
            pending_end: false,
            lossy,
            path: Vec::new(),
            index_params: false,
            replaced: Vec::new(),
        })
    }

    fn at(&self) -> u64 {
        self.reader.buffer_position()
    }

    fn structure(&self, message: String) -> Error {
        Error::Structure {
            at: self.at(),
            message,
        }
    }

    fn unexpected(&self, tok: Tok, inside: &str) -> Error {
        let what = match tok {
            Tok::Start(n) => format!("unexpected <{}> in <{inside}>", snippet(&n)),
            Tok::End => format!("<{inside}> ended too early"),
            Tok::Text(t, _) => format!("unexpected text {:?} in <{inside}>", snippet(&t)),
            Tok::Eof => format!("input ended inside <{inside}>"),
        };
        self.structure(what)
    }

    fn invalid(&self, kind: &'static str, message: String) -> Error {
        Error::InvalidValue {
            kind,
            at: self.at(),
            message,
        }
    }

    /// Records a replacement at the current path.
    fn replace(&mut self, what: Replaced) {
        self.replaced.push(Replacement {
            path: self.path.clone(),
            what,
        });
    }

    /// A scalar that did not parse: `Nil` and a replacement when lossy, else
    /// the error.
    fn bad_scalar(&mut self, kind: &'static str, message: String) -> Result<Value, Error> {
        if self.lossy {
            self.replace(Replaced::Scalar(kind));
            Ok(Value::Nil)
        } else {
            Err(self.invalid(kind, message))
        }
    }

    fn next(&mut self) -> Result<Tok, Error> {
        if self.pending_end {
            self.pending_end = false;
            return Ok(Tok::End);
        }
        loop {
            let event = match self.reader.read_event() {
                Ok(e) => e,
                Err(e) => {
                    return Err(Error::Xml {
                        at: self.reader.error_position(),
                        message: e.to_string(),
                    })
                }
            };
            match event {
                Event::Start(e) => return Ok(Tok::Start(local_name(e.local_name().as_ref()))),
                Event::Empty(e) => {
                    self.pending_end = true;
                    return Ok(Tok::Start(local_name(e.local_name().as_ref())));
                }
                Event::End(_) => return Ok(Tok::End),
                Event::Text(t) => {
                    let raw = std::str::from_utf8(&t).map_err(|e| Error::InvalidUtf8 {
                        at: e.valid_up_to(),
                    })?;
                    return unescape(raw, self.lossy)
                        .map(|(t, r)| Tok::Text(t, r))
                        .map_err(|message| Error::Xml {
                            at: self.reader.buffer_position(),
                            message,
                        });
                }
                Event::CData(c) => {
                    let raw = std::str::from_utf8(&c).map_err(|e| Error::InvalidUtf8 {
                        at: e.valid_up_to(),
                    })?;
                    return Ok(Tok::Text(normalize_line_ends(raw), false));
                }
                Event::Decl(d) => {
                    if let Some(enc) = d.encoding() {
                        let enc = enc.map_err(|e| Error::Xml {
                            at: self.reader.buffer_position(),
                            message: e.to_string(),
                        })?;
                        let enc = String::from_utf8_lossy(&enc).into_owned();
                        let lower = enc.to_ascii_lowercase();
                        if !matches!(lower.as_str(), "utf-8" | "utf8" | "us-ascii" | "ascii") {
                            return Err(Error::UnsupportedEncoding(snippet(&enc)));
                        }
                    }
                }
                Event::Comment(_) | Event::PI(_) => {}
                Event::DocType(_) => return Err(Error::DocType),
                Event::Eof => return Ok(Tok::Eof),
            }
        }
    }

    /// The next token that is not white space; other text is an error.
    fn skip_space(&mut self) -> Result<Tok, Error> {
        loop {
            match self.next()? {
                Tok::Text(t, _) if t.chars().all(is_xml_space) => {}
                tok => return Ok(tok),
            }
        }
    }

    /// The root element's name, after the prolog.
    fn root(&mut self) -> Result<String, Error> {
        match self.skip_space()? {
            Tok::Start(n) => Ok(n),
            Tok::Eof => Err(self.structure("no root element".into())),
            other => Err(self.unexpected(other, "document")),
        }
    }

    /// Only white space, comments and processing instructions may follow
    /// the root element.
    fn finish(&mut self) -> Result<(), Error> {
        match self.skip_space()? {
            Tok::Eof => Ok(()),
            Tok::Start(n) => {
                Err(self.structure(format!("content after the root element: <{}>", snippet(&n))))
            }
            other => Err(self.unexpected(other, "document")),
        }
    }

    /// The text of an element that may hold no child elements, up to its end;
    /// true if a reference in it was read as U+FFFD.
    fn text_only(&mut self, inside: &str) -> Result<(String, bool), Error> {
        let mut text = String::new();
        let mut replaced = false;
        loop {
            match self.next()? {
                Tok::Text(t, r) => {
                    text.push_str(&t);
                    replaced |= r;
                }
                Tok::End => return Ok((text, replaced)),
                other => return Err(self.unexpected(other, inside)),
            }
        }
    }

    /// The values of `<params>`, after its start, up to its end.
    fn params(&mut self) -> Result<Vec<Value>, Error> {
        let mut values = Vec::new();
        loop {
            match self.skip_space()? {
                Tok::Start(n) if n == "param" => {
                    if self.index_params {
                        self.path.push(PathItem::Index(values.len()));
                    }
                    let value = match self.skip_space()? {
                        Tok::Start(n) if n == "value" => self.value(1)?,
                        other => return Err(self.unexpected(other, "param")),
                    };
                    if self.index_params {
                        self.path.pop();
                    }
                    match self.skip_space()? {
                        Tok::End => values.push(value),
                        other => return Err(self.unexpected(other, "param")),
                    }
                }
                Tok::End => return Ok(values),
                other => return Err(self.unexpected(other, "params")),
            }
        }
    }

    /// A value, after its `<value>` start, up to its end. `depth` is 1 for a
    /// parameter's value.
    fn value(&mut self, depth: usize) -> Result<Value, Error> {
        if depth > MAX_DEPTH {
            return Err(Error::TooDeep {
                at: self.at(),
                max: MAX_DEPTH,
            });
        }
        let mut text = String::new();
        let mut replaced = false;
        loop {
            match self.next()? {
                Tok::Text(t, r) => {
                    text.push_str(&t);
                    replaced |= r;
                }
                // No type element: the text, as is, is a string.
                Tok::End => {
                    if replaced {
                        self.replace(Replaced::CharacterReference);
                    }
                    return Ok(Value::String(text));
                }
                Tok::Start(name) => {
                    if !text.chars().all(is_xml_space) {
                        return Err(self.structure(format!(
                            "text and a <{}> element mixed in one <value>",
                            snippet(&name)
                        )));
                    }
                    let value = self.typed(&name, depth)?;
                    return match self.skip_space()? {
                        Tok::End => Ok(value),
                        other => Err(self.unexpected(other, "value")),
                    };
                }
                Tok::Eof => return Err(self.unexpected(Tok::Eof, "value")),
            }
        }
    }

    /// The content of a type element, after its start, up to its end.
    fn typed(&mut self, name: &str, depth: usize) -> Result<Value, Error> {
        match name {
            "i4" | "int" => {
                let (text, _) = self.text_only(name)?;
                let t = text.trim_matches(is_xml_space);
                match t.parse::<i32>() {
                    Ok(i) => Ok(Value::Int(i)),
                    Err(_) => {
                        self.bad_scalar("int", format!("{:?} is not a 32-bit integer", snippet(t)))
                    }
                }
            }
            "i8" => {
                let (text, _) = self.text_only(name)?;
                let t = text.trim_matches(is_xml_space);
                let Ok(n) = t.parse::<i64>() else {
                    return self
                        .bad_scalar("i8", format!("{:?} is not a 64-bit integer", snippet(t)));
                };
                if let Ok(i) = i32::try_from(n) {
                    Ok(Value::Int(i))
                } else if n.unsigned_abs() <= 1 << 53 {
                    // Exactly representable.
                    Ok(Value::Double(n as f64))
                } else {
                    self.bad_scalar(
                        "i8",
                        format!("{n} is beyond ±2^53 and cannot be kept exactly"),
                    )
                }
            }
            "boolean" => {
                let (text, _) = self.text_only(name)?;
                let t = text.trim_matches(is_xml_space);
                match t {
                    "1" => Ok(Value::Boolean(true)),
                    "0" => Ok(Value::Boolean(false)),
                    _ if t.eq_ignore_ascii_case("true") => Ok(Value::Boolean(true)),
                    _ if t.eq_ignore_ascii_case("false") => Ok(Value::Boolean(false)),
                    _ => self.bad_scalar("boolean", format!("{:?} is not 1 or 0", snippet(t))),
                }
            }
            "string" => {
                let (text, replaced) = self.text_only(name)?;
                if replaced {
                    self.replace(Replaced::CharacterReference);
                }
                Ok(Value::String(text))
            }
            "double" => {
                let (text, _) = self.text_only(name)?;
                let t = text.trim_matches(is_xml_space);
                match t.parse::<f64>() {
                    Ok(d) if d.is_finite() => Ok(Value::Double(d)),
                    Ok(_) => self.bad_scalar(
                        "double",
                        format!("{:?} is not finite; XML-RPC has no form for it", snippet(t)),
                    ),
                    Err(_) => {
                        self.bad_scalar("double", format!("{:?} is not a number", snippet(t)))
                    }
                }
            }
            "dateTime.iso8601" => {
                let (text, _) = self.text_only(name)?;
                match parse_datetime(&text) {
                    Some(d) => Ok(Value::DateTime(d)),
                    None => self.bad_scalar(
                        "dateTime.iso8601",
                        format!(
                            "{:?} is not a date and time like 20261123T10:15:00",
                            snippet(text.trim_matches(is_xml_space))
                        ),
                    ),
                }
            }
            "base64" => {
                let (text, _) = self.text_only(name)?;
                let compact: String = text.chars().filter(|c| !is_xml_space(*c)).collect();
                match BASE64.decode(compact.as_bytes()) {
                    Ok(bytes) => Ok(Value::Base64(bytes)),
                    Err(e) => self.bad_scalar("base64", e.to_string()),
                }
            }
            "nil" => {
                let (text, _) = self.text_only(name)?;
                if text.chars().all(is_xml_space) {
                    Ok(Value::Nil)
                } else {
                    Err(self.invalid("nil", "<nil> must be empty".into()))
                }
            }
            "struct" => {
                let mut members = Struct::new();
                loop {
                    match self.skip_space()? {
                        Tok::Start(n) if n == "member" => {
                            let (k, v) = self.member(depth)?;
                            members.insert(k, v);
                        }
                        Tok::End => return Ok(Value::Struct(members)),
                        other => return Err(self.unexpected(other, "struct")),
                    }
                }
            }
            "array" => {
                match self.skip_space()? {
                    Tok::Start(n) if n == "data" => {}
                    other => return Err(self.unexpected(other, "array")),
                }
                let mut items = Vec::new();
                loop {
                    match self.skip_space()? {
                        Tok::Start(n) if n == "value" => {
                            self.path.push(PathItem::Index(items.len()));
                            let item = self.value(depth + 1)?;
                            self.path.pop();
                            items.push(item);
                        }
                        Tok::End => break,
                        other => return Err(self.unexpected(other, "data")),
                    }
                }
                match self.skip_space()? {
                    Tok::End => Ok(Value::Array(items)),
                    other => Err(self.unexpected(other, "array")),
                }
            }
            other => Err(Error::UnsupportedType {
                name: snippet(other),
                at: self.at(),
            }),
        }
    }

    /// A struct member (`<name>` and `<value>`, in either order), after its
    /// `<member>` start, up to its end.
    fn member(&mut self, depth: usize) -> Result<(String, Value), Error> {
        let mut name: Option<String> = None;
        let mut value = None;
        // Replacements inside a value read before its name get the name later.
        let mut unnamed_from = None;
        loop {
            match self.skip_space()? {
                Tok::Start(n) if n == "name" && name.is_none() => {
                    let (text, replaced) = self.text_only("name")?;
                    if replaced {
                        self.path.push(PathItem::Member(text.clone()));
                        self.replace(Replaced::CharacterReference);
                        self.path.pop();
                    }
                    name = Some(text);
                }
                Tok::Start(n) if n == "value" && value.is_none() => {
                    self.path
                        .push(PathItem::Member(name.clone().unwrap_or_default()));
                    if name.is_none() {
                        unnamed_from = Some(self.replaced.len());
                    }
                    value = Some(self.value(depth + 1)?);
                    self.path.pop();
                }
                Tok::End => break,
                other => return Err(self.unexpected(other, "member")),
            }
        }
        if let (Some(from), Some(n)) = (unnamed_from, &name) {
            let at = self.path.len();
            for r in &mut self.replaced[from..] {
                r.path[at] = PathItem::Member(n.clone());
            }
        }
        match (name, value) {
            (Some(n), Some(v)) => Ok((n, v)),
            (None, _) => Err(self.structure("<member> without <name>".into())),
            (_, None) => Err(self.structure("<member> without <value>".into())),
        }
    }

    /// The fault struct: `faultCode` and `faultString`, in any order.
    fn fault(&self, value: Value) -> Result<Fault, Error> {
        let Value::Struct(members) = value else {
            return Err(self.structure(format!(
                "a <fault> holds a struct, found {}",
                value.type_name()
            )));
        };
        let code = match members.get("faultCode") {
            Some(Value::Int(c)) => *c,
            Some(Value::String(s)) => s.trim_matches(is_xml_space).parse().map_err(|_| {
                self.structure(format!("faultCode {:?} is not an integer", snippet(s)))
            })?,
            Some(other) => {
                return Err(
                    self.structure(format!("faultCode is a {}, not an int", other.type_name()))
                )
            }
            None => return Err(self.structure("fault without faultCode".into())),
        };
        let message = match members.get("faultString") {
            Some(Value::String(s)) => s.clone(),
            Some(other) => {
                return Err(self.structure(format!(
                    "faultString is a {}, not a string",
                    other.type_name()
                )))
            }
            None => return Err(self.structure("fault without faultString".into())),
        };
        Ok(Fault { code, message })
    }
}

/// The local part of an element name (`ex:nil` -> `nil`).
fn local_name(raw: &[u8]) -> String {
    String::from_utf8_lossy(raw).into_owned()
}

/// At most 40 characters of `s`, for error messages.
fn snippet(s: &str) -> String {
    const MAX: usize = 40;
    match s.char_indices().nth(MAX) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_owned(),
    }
}

/// XML line-end normalisation: CR LF and lone CR become LF.
fn normalize_line_ends(raw: &str) -> String {
    if raw.contains('\r') {
        raw.replace("\r\n", "\n").replace('\r', "\n")
    } else {
        raw.to_owned()
    }
}

/// Resolves `&lt; &gt; &amp; &quot; &apos;` and `&#N;` / `&#xN;` in raw
/// character data and normalises line ends (before resolving, so `&#13;`
/// stays a CR). A high and a low surrogate referenced one right after the
/// other are the one character they encode in UTF-16, as Keap's Java writer
/// sends a character outside the BMP (`&#55357;&#56832;` is U+1F600). A
/// reference to no character (a lone surrogate, a number past U+10FFFF) is an
/// error, or U+FFFD when `lossy` (then the flag returned is true). Any other
/// entity, or a malformed reference, is an error: none can be declared
/// because DOCTYPE is refused, so nothing is ever expanded from outside.
fn unescape(raw: &str, lossy: bool) -> Result<(String, bool), String> {
    let bytes = raw.as_bytes();
    let mut out = String::with_capacity(raw.len());
    let mut replaced = false;
    let mut start = 0;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'&' if bytes.get(i + 1) == Some(&b'#') => {
                out.push_str(&raw[start..i]);
                let Some((code, len)) = char_reference(&raw[i..]) else {
                    return Err("malformed character reference".into());
                };
                i += len;
                let low = match code {
                    0xD800..=0xDBFF => {
                        char_reference(&raw[i..]).filter(|(low, _)| (0xDC00..=0xDFFF).contains(low))
                    }
                    _ => None,
                };
                match (low, char::from_u32(code)) {
                    (Some((low, low_len)), _) => {
                        let c = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00);
                        out.push(char::from_u32(c).unwrap_or(char::REPLACEMENT_CHARACTER));
                        i += low_len;
                    }
                    (None, Some(c)) => out.push(c),
                    (None, None) if lossy => {
                        out.push(char::REPLACEMENT_CHARACTER);
                        replaced = true;
                    }
                    (None, None) => {
                        return Err(format!(
                            "character reference {} names no character",
                            snippet(&raw[i - len..i])
                        ))
                    }
                }
                start = i;
            }
            b'&' => {
                out.push_str(&raw[start..i]);
                // Entity names here are short; do not scan far for ';'.
                let window = &raw.as_bytes()[i + 1..bytes.len().min(i + 12)];
                let Some(len) = window.iter().position(|&b| b == b';') else {
                    return Err("'&' not followed by an entity reference ending in ';'".into());
                };
                let name = &raw[i + 1..i + 1 + len];
                out.push(match name {
                    "lt" => '<',
                    "gt" => '>',
                    "amp" => '&',
                    "quot" => '"',
                    "apos" => '\'',
                    _ => return Err(format!("unknown entity &{};", snippet(name))),
                });
                i += len + 2;
                start = i;
            }
            b'\r' => {
                out.push_str(&raw[start..i]);
                out.push('\n');
                i += 1;
                if bytes.get(i) == Some(&b'\n') {
                    i += 1;
                }
                start = i;
            }
            _ => i += 1,
        }
    }
    out.push_str(&raw[start..]);
    Ok((out, replaced))
}

/// The numeric character reference `&#N;` or `&#xN;` that `s` starts with:
/// its number (saturated at `u32::MAX`, so a huge one names no character) and
/// its length; None if `s` does not start with a well-formed one.
fn char_reference(s: &str) -> Option<(u32, usize)> {
    let rest = s.strip_prefix("&#")?;
    let (digits, radix, skip) = match rest.strip_prefix('x') {
        Some(hex) => (hex, 16, 3),
        None => (rest, 10, 2),
    };
    let len = digits
        .find(|c: char| !c.is_digit(radix))
        .unwrap_or(digits.len());
    if len == 0 || !digits[len..].starts_with(';') {
        return None;
    }
    let code = digits[..len].chars().try_fold(0u32, |n, c| {
        n.checked_mul(radix)?.checked_add(c.to_digit(radix)?)
    });
    Some((code.unwrap_or(u32::MAX), skip + len + 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unescape_entities_and_line_ends() {
        let u = |s: &str| unescape(s, false).map(|(t, _)| t);
        assert_eq!(u("a&lt;b&gt;&amp;&quot;&apos;").unwrap(), "a<b>&\"'");
        assert_eq!(u("&#65;&#x42;&#x1F600;&#0;").unwrap(), "AB😀\0");
        assert_eq!(u("a\r\nb\rc\n").unwrap(), "a\nb\nc\n");
        assert_eq!(u("x&#13;&#10;y").unwrap(), "x\r\ny");
        assert_eq!(u("é&amp;é").unwrap(), "é&é");
        assert_eq!(u("&#0000065;").unwrap(), "A");
    }

    #[test]
    fn unescape_rejects_other_references() {
        for bad in [
            "&",
            "&;",
            "&lt",
            "&xxe;",
            "&#;",
            "&#x;",
            "&#xD800;",
            "&#1114112;",
            "&#+65;",
            "&#-1;",
            "&#x-1;",
            "&verylongentityname;",
            "&#55357;",
            "&#56832;&#55357;",
            "&#99999999999999999999;",
        ] {
            assert!(unescape(bad, false).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn surrogate_pairs_of_references_are_one_character() {
        for pair in ["&#55357;&#56832;", "&#xD83D;&#xDE00;", "&#55357;&#xde00;"] {
            assert_eq!(unescape(pair, false), Ok(("😀".into(), false)), "{pair}");
        }
        assert_eq!(
            unescape("a&#55357;&#56832;b&#55356;&#57096;", false),
            Ok(("a😀b🌈".into(), false))
        );
    }

    #[test]
    fn lossy_unescape_reads_undecodable_references_as_fffd() {
        for (raw, want) in [
            ("&#55357;", "\u{fffd}"),
            ("a&#56832;b", "a\u{fffd}b"),
            ("&#55357;x&#56832;", "\u{fffd}x\u{fffd}"),
            ("&#55357;&#55357;&#56832;", "\u{fffd}😀"),
            ("&#x110000;&#99999999999999999999;", "\u{fffd}\u{fffd}"),
        ] {
            assert_eq!(unescape(raw, true), Ok((want.into(), true)), "{raw}");
        }
        assert_eq!(unescape("&#65;", true), Ok(("A".into(), false)));
        assert!(unescape("&#;", true).is_err(), "malformed stays an error");
        assert!(unescape("&bogus;", true).is_err());
    }

    #[test]
    fn snippet_truncates_on_char_boundary() {
        let s = "é".repeat(50);
        let t = snippet(&s);
        assert_eq!(t.chars().count(), 41);
        assert!(t.ends_with('…'));
    }
}
