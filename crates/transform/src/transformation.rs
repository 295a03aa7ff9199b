//! [`Transformation`]: a mapping between one vendor object and one common resource.

use serde_json::{Map, Value};

use crate::convert::{self, FieldType, VendorType, WriteTarget};
use crate::datefmt::{JavaDateFormat, Zone};
use crate::path::{CommonPath, VendorPath};

/// The most fields a transformation may map.
pub const MAX_FIELDS: usize = 500;

/// Why a transformation body was refused. `Display` is the message for the 400 answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Invalid {
    /// `level: account` (Switchyard has no accounts).
    #[error("accounts are not supported")]
    AccountLevel,
    /// A `script` member, or a configuration entry of type `script`/`javascript`.
    #[error("custom JavaScript is not supported")]
    Script,
    /// Anything else; the message names where (`fields[2].vendorPath 'a[': …`).
    #[error("{0}")]
    Body(String),
}

/// A write that cannot be converted to the vendor's type; the engine answers 400.
/// Displays as `total: "abc" is not a number`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {reason}")]
pub struct ConvertError {
    /// The common resource's field path.
    pub path: String,
    pub reason: String,
}

/// The level a body names (`level`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Organization,
    Instance,
}

impl Level {
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Organization => "organization",
            Level::Instance => "instance",
        }
    }
}

/// One mapped field.
#[derive(Debug, Clone)]
pub struct Field {
    path: CommonPath,
    field_type: FieldType,
    vendor_path: VendorPath,
    vendor_type: Option<VendorType>,
    mask: Option<JavaDateFormat>,
    configuration: Option<Value>,
}

impl Field {
    pub fn path(&self) -> &CommonPath {
        &self.path
    }
    pub fn field_type(&self) -> FieldType {
        self.field_type
    }
    pub fn vendor_path(&self) -> &VendorPath {
        &self.vendor_path
    }
    pub fn vendor_type(&self) -> Option<VendorType> {
        self.vendor_type
    }
    pub fn mask(&self) -> Option<&JavaDateFormat> {
        self.mask.as_ref()
    }
    /// The field's `configuration` array, as given.
    pub fn configuration(&self) -> Option<&Value> {
        self.configuration.as_ref()
    }
}

/// A parsed, validated transformation (see the crate docs for the rules).
#[derive(Debug, Clone)]
pub struct Transformation {
    vendor_name: String,
    level: Option<Level>,
    fields: Vec<Field>,
    /// The body's `configuration` entries as given (echoed by `to_json`).
    configuration: Vec<Value>,
    /// `passThrough` when declared: (fromVendor, toVendor).
    pass_through: Option<(bool, bool)>,
    inherit: bool,
}

const TOP_MEMBERS: &[&str] = &["vendorName", "level", "fields", "configuration", "objectName", "startDate", "isLegacy"];
const FIELD_MEMBERS: &[&str] = &["path", "type", "vendorPath", "vendorType", "mask", "configuration", "level"];

fn bad(msg: String) -> Invalid {
    Invalid::Body(msg)
}

fn unknown_members(obj: &Map<String, Value>, known: &[&str], at: &str) -> Result<(), Invalid> {
    let unknown: Vec<String> = obj.keys().filter(|k| !known.contains(&k.as_str())).map(|k| format!("'{k}'")).collect();
    if unknown.is_empty() {
        return Ok(());
    }
    let s = if unknown.len() == 1 { "" } else { "s" };
    Err(bad(format!("{at}unknown member{s} {} (known: {})", unknown.join(", "), known.join(", "))))
}

/// An optional member: absent and null are the same.
fn opt<'a>(obj: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    obj.get(key).filter(|v| !v.is_null())
}

fn opt_str<'a>(obj: &'a Map<String, Value>, key: &str, at: &str) -> Result<Option<&'a str>, Invalid> {
    match opt(obj, key) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(bad(format!("{at}{key} must be a string"))),
    }
}

fn is_script_entry(entry: &Value) -> bool {
    entry.get("type").and_then(Value::as_str).is_some_and(|t| t.eq_ignore_ascii_case("script") || t.eq_ignore_ascii_case("javascript"))
}

impl Transformation {
    /// Parses and validates a transformation body as Cloud Elements takes it at
    /// `POST …/transformations/{objectName}`. Vendor paths are parsed and masks
    /// compiled here, once.
    pub fn from_json(body: &Value) -> Result<Transformation, Invalid> {
        let obj = body.as_object().ok_or_else(|| bad("a transformation must be a JSON object".into()))?;
        // Refusals with their own answers come before member-by-member checks.
        if obj.contains_key("script") {
            return Err(Invalid::Script);
        }
        let configs = |v: Option<&Value>| v.and_then(Value::as_array).is_some_and(|a| a.iter().any(is_script_entry));
        let field_list = opt(obj, "fields").and_then(Value::as_array);
        if configs(opt(obj, "configuration")) || field_list.is_some_and(|fs| fs.iter().any(|f| configs(f.get("configuration")))) {
            return Err(Invalid::Script);
        }
        unknown_members(obj, TOP_MEMBERS, "")?;
        let level = match opt_str(obj, "level", "")? {
            None => None,
            Some("organization") => Some(Level::Organization),
            Some("instance") => Some(Level::Instance),
            Some("account") => return Err(Invalid::AccountLevel),
            Some(other) => return Err(bad(format!("level '{other}' is not one of organization, instance"))),
        };
        let vendor_name = match opt_str(obj, "vendorName", "")? {
            Some(s) if !s.trim().is_empty() => s.to_owned(),
            _ => return Err(bad("vendorName is required (the element's object to map)".into())),
        };
        let fields = match opt(obj, "fields") {
            None => Vec::new(),
            Some(Value::Array(list)) => {
                if list.len() > MAX_FIELDS {
                    return Err(bad(format!("fields: {} fields, at most {MAX_FIELDS}", list.len())));
                }
                let mut fields: Vec<Field> = Vec::with_capacity(list.len());
                for (i, f) in list.iter().enumerate() {
                    let field = parse_field(f, &format!("fields[{i}]."))?;
                    if let Some(j) = fields.iter().position(|g| g.path == field.path) {
                        return Err(bad(format!("fields[{i}].path '{}' is mapped already by fields[{j}]", field.path)));
                    }
                    fields.push(field);
                }
                fields
            }
            Some(_) => return Err(bad("fields must be an array".into())),
        };
        let mut configuration = Vec::new();
        let mut pass_through = None;
        let mut inherit = false;
        match opt(obj, "configuration") {
            None => {}
            Some(Value::Array(entries)) => {
                for (i, entry) in entries.iter().enumerate() {
                    let at = format!("configuration[{i}]");
                    let kind = entry.get("type").and_then(Value::as_str).ok_or_else(|| bad(format!("{at} must be an object with a string 'type'")))?;
                    match kind {
                        "passThrough" => {
                            if pass_through.is_some() {
                                return Err(bad(format!("{at}: passThrough is given twice")));
                            }
                            pass_through = Some(parse_pass_through(entry, &at)?);
                        }
                        "inherit" => inherit = true,
                        _ => {}
                    }
                    configuration.push(entry.clone());
                }
            }
            Some(_) => return Err(bad("configuration must be an array".into())),
        }
        Ok(Transformation { vendor_name, level, fields, configuration, pass_through, inherit })
    }

    /// The stored and answered shape: `{"level","objectName","vendorName","fields":[{"path","type","vendorPath"[,"vendorType"][,"mask"][,"configuration"]}],"configuration":[…]}`.
    pub fn to_json(&self, object_name: &str, level: &str) -> Value {
        let fields: Vec<Value> = self
            .fields
            .iter()
            .map(|f| {
                let mut m = Map::new();
                m.insert("path".into(), Value::from(f.path.as_str()));
                m.insert("type".into(), Value::from(f.field_type.as_str()));
                m.insert("vendorPath".into(), Value::from(f.vendor_path.as_str()));
                if let Some(t) = f.vendor_type {
                    m.insert("vendorType".into(), Value::from(t.as_str()));
                }
                if let Some(mask) = &f.mask {
                    m.insert("mask".into(), Value::from(mask.pattern()));
                }
                if let Some(c) = &f.configuration {
                    m.insert("configuration".into(), c.clone());
                }
                Value::Object(m)
            })
            .collect();
        let mut m = Map::new();
        m.insert("level".into(), Value::from(level));
        m.insert("objectName".into(), Value::from(object_name));
        m.insert("vendorName".into(), Value::from(self.vendor_name.as_str()));
        m.insert("fields".into(), Value::Array(fields));
        m.insert("configuration".into(), Value::Array(self.configuration.clone()));
        Value::Object(m)
    }

    pub fn vendor_name(&self) -> &str {
        &self.vendor_name
    }

    /// The body's `level`, when it gave one.
    pub fn level(&self) -> Option<Level> {
        self.level
    }

    pub fn fields(&self) -> &[Field] {
        &self.fields
    }

    /// The body's `configuration` entries, as given.
    pub fn configuration(&self) -> &[Value] {
        &self.configuration
    }

    /// True when the body has a `{"type":"inherit"}` entry.
    pub fn inherits(&self) -> bool {
        self.inherit
    }

    /// `(fromVendor, toVendor)`; `(false, false)` when no `passThrough` entry is given.
    pub fn pass_through(&self) -> (bool, bool) {
        self.pass_through.unwrap_or((false, false))
    }

    /// The `inherit` rule: `self` (an instance's transformation) over `base` (the
    /// organization's). Fields: all of self's, then base's whose `path` self does
    /// not map. vendorName: self's. passThrough: self's when it declares one, else
    /// base's. Configuration: self's entries, then base's of types self has not
    /// (never base's `inherit`).
    pub fn merged_over(&self, base: &Transformation) -> Transformation {
        let mut fields = self.fields.clone();
        fields.extend(base.fields.iter().filter(|b| !self.fields.iter().any(|f| f.path == b.path)).cloned());
        let mut configuration = self.configuration.clone();
        let kind = |e: &Value| e.get("type").and_then(Value::as_str).map(str::to_owned);
        for entry in &base.configuration {
            let k = kind(entry);
            if k.as_deref() != Some("inherit") && !self.configuration.iter().any(|e| kind(e) == k) {
                configuration.push(entry.clone());
            }
        }
        Transformation {
            vendor_name: self.vendor_name.clone(),
            level: self.level,
            fields,
            configuration,
            pass_through: self.pass_through.or(base.pass_through),
            inherit: self.inherit,
        }
    }

    /// The common record for a vendor record. Each field: the value at its
    /// vendorPath converted to its type (left unchanged when it does not convert),
    /// set at its path; a missing vendor value leaves the field absent, null stays
    /// null. With passThrough.fromVendor, the vendor record's other top-level
    /// members are copied (see the crate docs for which). `zone`: the zone of the
    /// vendor's offset-less dates (UTC when `None`).
    pub fn from_vendor(&self, record: &Value, zone: Option<Zone>) -> Value {
        let mut out = Value::Object(Map::with_capacity(self.fields.len()));
        for f in &self.fields {
            if let Some(v) = f.vendor_path.get(record) {
                let v = convert::from_vendor(&v, f.field_type, f.mask.as_ref(), zone);
                f.path.set(&mut out, v);
            }
        }
        if self.pass_through().0 {
            if let (Some(src), Value::Object(dst)) = (record.as_object(), &mut out) {
                for (k, v) in src {
                    let mapped = self.fields.iter().any(|f| f.vendor_path.plain().is_some() && f.vendor_path.first_key() == k || f.path.first_key() == k);
                    if !mapped && !dst.contains_key(k) {
                        dst.insert(k.clone(), v.clone());
                    }
                }
            }
        }
        out
    }

    /// The vendor record for a common record (a create or update body). Each mapped
    /// field present in `record` is converted to the vendor's type and set at its
    /// vendorPath; read-only vendor paths (match, filter, size) are skipped. With
    /// passThrough.toVendor the record's unmapped top-level members are copied.
    /// Errors name the first field whose value cannot be converted.
    pub fn to_vendor(&self, record: &Value, zone: Option<Zone>) -> Result<Value, ConvertError> {
        let mut out = Value::Object(Map::with_capacity(self.fields.len()));
        for f in &self.fields {
            if !f.vendor_path.is_writable() {
                continue;
            }
            let Some(v) = f.path.get(record) else { continue };
            let target = WriteTarget { common: f.field_type, vendor: f.vendor_type, mask: f.mask.as_ref() };
            let v = convert::to_vendor(v, &target, zone).map_err(|reason| ConvertError { path: f.path.as_str().to_owned(), reason })?;
            f.vendor_path.set(&mut out, v);
        }
        if self.pass_through().1 {
            if let (Some(src), Value::Object(dst)) = (record.as_object(), &mut out) {
                for (k, v) in src {
                    let mapped = self.fields.iter().any(|f| f.path.first_key() == k);
                    if !mapped && !dst.contains_key(k) {
                        dst.insert(k.clone(), v.clone());
                    }
                }
            }
        }
        Ok(out)
    }

    /// The vendor path a common field is mapped from.
    pub fn vendor_path_of(&self, common_path: &str) -> Option<&VendorPath> {
        self.fields.iter().find(|f| f.path.as_str() == common_path).map(|f| &f.vendor_path)
    }

    /// The common path mapped from a plain (keys-only) vendor path.
    pub fn common_path_of(&self, vendor_plain: &str) -> Option<&str> {
        self.fields.iter().find(|f| f.vendor_path.plain() == Some(vendor_plain)).map(|f| f.path.as_str())
    }

    /// Refuses conversions that can never work, given the vendor's field types
    /// (`vendor_type_of(plain vendor path)`: the element metadata's `string`,
    /// `number`, `boolean`, `date`, `object`, `array`; unknown names and `None` are
    /// not checked; without metadata the field's own `vendorType` is used). Only
    /// fields with plain vendor paths are checked. Refused (common ← vendor):
    /// any type ← object or array; date ← boolean; boolean ← date;
    /// number ← date; number ← boolean.
    pub fn check_types<'a>(&self, vendor_type_of: impl Fn(&str) -> Option<&'a str>) -> Result<(), Invalid> {
        for (i, f) in self.fields.iter().enumerate() {
            let Some(plain) = f.vendor_path.plain() else { continue };
            let vendor = match vendor_type_of(plain).and_then(|t| t.parse::<VendorType>().ok()).or(f.vendor_type) {
                Some(v) => v,
                None => continue,
            };
            let refused = matches!(
                (f.field_type, vendor),
                (_, VendorType::Object | VendorType::Array)
                    | (FieldType::Date, VendorType::Boolean)
                    | (FieldType::Boolean, VendorType::Date)
                    | (FieldType::Number, VendorType::Date | VendorType::Boolean)
            );
            if refused {
                return Err(bad(format!(
                    "fields[{i}] '{}': a {} field cannot be mapped from the vendor's {} field '{plain}'",
                    f.path,
                    f.field_type.as_str(),
                    vendor.as_str()
                )));
            }
        }
        Ok(())
    }
}

fn parse_pass_through(entry: &Value, at: &str) -> Result<(bool, bool), Invalid> {
    let props = match entry.get("properties") {
        None | Some(Value::Null) => return Ok((false, false)),
        Some(Value::Object(p)) => p,
        Some(_) => return Err(bad(format!("{at}.properties must be an object"))),
    };
    let flag = |k: &str| match props.get(k) {
        None | Some(Value::Null) => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(_) => Err(bad(format!("{at}.properties.{k} must be true or false"))),
    };
    Ok((flag("fromVendor")?, flag("toVendor")?))
}

fn parse_field(f: &Value, at: &str) -> Result<Field, Invalid> {
    let obj = f.as_object().ok_or_else(|| bad(format!("{} must be an object", at.trim_end_matches('.'))))?;
    unknown_members(obj, FIELD_MEMBERS, &format!("{}: ", at.trim_end_matches('.')))?;
    let path = opt_str(obj, "path", at)?.ok_or_else(|| bad(format!("{at}path is required")))?;
    let path = CommonPath::parse(path).map_err(|e| bad(format!("{at}{e}")))?;
    let field_type = match opt_str(obj, "type", at)? {
        None => FieldType::String,
        Some(t) => t.parse().map_err(|_| bad(format!("{at}type '{t}' is not one of {}", FieldType::NAMES)))?,
    };
    let vendor_path = opt_str(obj, "vendorPath", at)?.ok_or_else(|| bad(format!("{at}vendorPath is required")))?;
    let vendor_path = VendorPath::parse(vendor_path).map_err(|e| bad(format!("{at}{e}")))?;
    let vendor_type = match opt_str(obj, "vendorType", at)? {
        None => None,
        Some(t) => Some(t.parse().map_err(|_| bad(format!("{at}vendorType '{t}' is not one of {}", VendorType::NAMES)))?),
    };
    let mask = match opt_str(obj, "mask", at)? {
        None => None,
        Some(m) => Some(JavaDateFormat::new(m).map_err(|e| bad(format!("{at}mask: {e}")))?),
    };
    let configuration = match opt(obj, "configuration") {
        None => None,
        Some(c @ Value::Array(_)) => Some(c.clone()),
        Some(_) => return Err(bad(format!("{at}configuration must be an array"))),
    };
    Ok(Field { path, field_type, vendor_path, vendor_type, mask, configuration })
}
