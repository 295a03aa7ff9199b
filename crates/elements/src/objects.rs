//! Object metadata as Cloud Elements answered it (`GET /objects`,
//! `GET /objects/{objectName}/metadata`): the element's record-holding hub
//! resources by name, and each one's fields from its record model.
//!
//! Facts from Cloud Elements' docs (devportal `docs/elements/sapc4c-crm/tips.md`,
//! "vendorNativeType"; `docs/guides/common-resources/createapi.md`): a field is
//! `{vendorPath, type, vendorNativeType?, vendorReadOnly, updateable, filterable,
//! createable}`, `vendorReadOnly` a JSON boolean and the last three the strings
//! `"true"`/`"false"`; a resource's `vendorPath` and `type` are what a common
//! resource definition copies (as `path`, `type`). What Switchyard derives where the
//! element data says nothing is in docs/data-layer.md.

use serde::{Serialize, Serializer};

use crate::{Behaviour, ElementDefinition, FieldType, Operation, Protocol, Resource};

/// The object name of a hub path: `{…}` segments removed, the rest joined by `-`
/// (`/orders/{orderId}/shipments` -> `orders-shipments`, `/products/brands` ->
/// `products-brands`).
pub fn object_name(hub_path: &str) -> String {
    hub_path.split('/').filter(|s| !s.is_empty() && !s.starts_with('{')).collect::<Vec<_>>().join("-")
}

/// Whether a resource holds records (lists, reads, writes or deletes them): a
/// ping or a count alone is not an object.
fn holds_records(resource: &Resource) -> bool {
    [Operation::List, Operation::Get, Operation::Create, Operation::Update, Operation::Delete]
        .into_iter()
        .any(|op| resource.supports(op))
}

/// The element's objects, in the order of its resources: each record-holding
/// resource by [`object_name`]. Where two resources share a name the first one
/// is the object.
pub fn objects(def: &ElementDefinition) -> Vec<(String, &Resource)> {
    let mut out: Vec<(String, &Resource)> = Vec::new();
    for resource in def.resources.iter().filter(|r| holds_records(r)) {
        let name = object_name(&resource.path);
        if !out.iter().any(|(n, _)| *n == name) {
            out.push((name, resource));
        }
    }
    out
}

/// The names of [`objects`].
pub fn object_names(def: &ElementDefinition) -> Vec<String> {
    objects(def).into_iter().map(|(name, _)| name).collect()
}

/// `{"fields": [...]}` of one object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ObjectMetadata {
    pub fields: Vec<FieldMetadata>,
}

/// One field of an object, as `GET /objects/{objectName}/metadata` lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FieldMetadata {
    /// Dotted path of the field in the vendor's record (`billing_address.email`).
    pub vendor_path: String,
    /// `string`, `number`, `boolean`, `date`, `array` or `object`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// The type as the element's model declares it (`integer`, `decimal`, `link`;
    /// XML-RPC elements: the wire type, `int`, `double`, `dateTime.iso8601`);
    /// absent where the element declares none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vendor_native_type: Option<&'static str>,
    /// Dates only: how the hub writes them, as a Java `SimpleDateFormat` pattern
    /// (Cloud Elements' masks were Java patterns, as the poller's date formats are).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mask: Option<&'static str>,
    pub vendor_read_only: bool,
    pub vendor_required: bool,
    #[serde(serialize_with = "as_text")]
    pub createable: bool,
    #[serde(serialize_with = "as_text")]
    pub updateable: bool,
    /// The element sends a `where` clause on this field to the vendor.
    #[serde(serialize_with = "as_text")]
    pub filterable: bool,
}

/// `"true"` / `"false"`, as Cloud Elements wrote these three.
fn as_text<S: Serializer>(value: &bool, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(if *value { "true" } else { "false" })
}

/// The metadata of the object `name` (an [`object_name`]); `None` when the element
/// has no such object.
pub fn object_metadata(def: &ElementDefinition, name: &str) -> Option<ObjectMetadata> {
    let (_, resource) = objects(def).into_iter().find(|(n, _)| n == name)?;
    Some(ObjectMetadata { fields: fields_of(def, resource) })
}

fn fields_of(def: &ElementDefinition, resource: &Resource) -> Vec<FieldMetadata> {
    let model = resource.model.as_deref().and_then(|m| def.models.get(m));
    let mut fields: Vec<FieldMetadata> = Vec::new();
    if let Some(model) = model {
        // `id`, which the engine adds beside a vendor key of another name (Keap's `Id`).
        if def.id_field != "id" && model.contains_key(&def.id_field) && !model.contains_key("id") {
            let mut id = field(def, resource, "id", Some(FieldType::Integer));
            id.vendor_native_type = None;
            id.filterable = is_filterable(def, resource, &def.id_field, Some(FieldType::Integer));
            fields.push(id);
        }
        fields.extend(model.iter().map(|(path, kind)| field(def, resource, path, Some(*kind))));
    }
    // Sub-fields the vendor filters though the model types only their parent
    // (`billing_address.email` of an `object`): listed, untyped, as filterable.
    for path in resource.where_map.keys() {
        if !fields.iter().any(|f| f.vendor_path == *path) {
            fields.push(field(def, resource, path, None));
        }
    }
    fields
}

fn field(def: &ElementDefinition, resource: &Resource, path: &str, kind: Option<FieldType>) -> FieldMetadata {
    let read_only = is_read_only(def, resource, path, kind);
    FieldMetadata {
        vendor_path: path.to_owned(),
        kind: kind.map_or("string", hub_type),
        vendor_native_type: kind.map(|k| native_type(def, k)),
        mask: (kind == Some(FieldType::Date)).then(|| date_mask(def)),
        vendor_read_only: read_only,
        // No element file declares required fields, and none is required by the hub.
        vendor_required: false,
        createable: !read_only && resource.supports(Operation::Create),
        updateable: !read_only && resource.supports(Operation::Update),
        filterable: is_filterable(def, resource, path, kind),
    }
}

/// Read-only: the record key (the vendor assigns it), links (references the
/// engine removes from write bodies), fixed values (the engine writes them), and
/// every field of a resource that can be neither created nor updated.
fn is_read_only(def: &ElementDefinition, resource: &Resource, path: &str, kind: Option<FieldType>) -> bool {
    path == def.id_field
        || path == "id"
        || kind == Some(FieldType::Link)
        || resource.fixed.contains_key(path)
        || !(resource.supports(Operation::Create) || resource.supports(Operation::Update))
}

/// Whether a `where` clause on the field reaches the vendor: REST elements send the
/// fields their `where` map declares; XML-RPC elements send every scalar field in
/// the query (see `query.rs`, `query_data`).
fn is_filterable(def: &ElementDefinition, resource: &Resource, path: &str, kind: Option<FieldType>) -> bool {
    if !resource.supports(Operation::List) {
        return false;
    }
    match def.protocol {
        Protocol::XmlRpc => kind.is_some_and(FieldType::is_scalar),
        Protocol::RestJson => resource.where_map.contains_key(path),
    }
}

/// The hub's JSON type of a model type: numbers whatever their vendor encoding
/// (the hub compares decimal strings as numbers), links as objects.
fn hub_type(kind: FieldType) -> &'static str {
    match kind {
        FieldType::Integer | FieldType::Decimal => "number",
        FieldType::String => "string",
        FieldType::Boolean => "boolean",
        FieldType::Date => "date",
        FieldType::Object | FieldType::Link => "object",
        FieldType::Array => "array",
    }
}

fn native_type(def: &ElementDefinition, kind: FieldType) -> &'static str {
    if def.protocol != Protocol::XmlRpc {
        return kind.as_str();
    }
    // XML-RPC's own names for the wire types (xmlrpc.com spec).
    match kind {
        FieldType::Integer => "int",
        FieldType::Decimal => "double",
        FieldType::Date => "dateTime.iso8601",
        FieldType::Boolean => "boolean",
        FieldType::Object => "struct",
        FieldType::Array => "array",
        FieldType::String | FieldType::Link => "string",
    }
}

/// How the hub writes the element's dates: RFC 2822 (`rfc2822-dates`), Keap's
/// zoneless local time (XML-RPC `dateTime.iso8601`, answered as
/// `2026-11-23T10:15:00`), else ISO 8601 with an offset.
fn date_mask(def: &ElementDefinition) -> &'static str {
    if def.behaviours.contains(&Behaviour::Rfc2822Dates) {
        "EEE, d MMM yyyy HH:mm:ss Z"
    } else if def.protocol == Protocol::XmlRpc {
        "yyyy-MM-dd'T'HH:mm:ss"
    } else {
        "yyyy-MM-dd'T'HH:mm:ssXXX"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Catalog;

    #[test]
    fn names_drop_parameters_and_join_the_rest() {
        assert_eq!(object_name("/orders/{orderId}/shipments"), "orders-shipments");
        assert_eq!(object_name("/products/brands"), "products-brands");
        assert_eq!(object_name("/contacts"), "contacts");
    }

    #[test]
    fn objects_are_the_record_resources() {
        let catalog = Catalog::builtin();
        let names = object_names(catalog.get("bigcommerce").unwrap());
        for n in ["customers", "orders-shipments", "products-brands", "orders-products", "products-skus"] {
            assert!(names.contains(&n.to_owned()), "{n} in {names:?}");
        }
        // ping reads, the store-wide counts only count
        assert!(!names.contains(&"ping".to_owned()));
        let unique: std::collections::BTreeSet<_> = names.iter().collect();
        assert_eq!(unique.len(), names.len());
        assert_eq!(object_names(catalog.get("infusionsoftcrm").unwrap()), ["accounts", "contacts", "opportunities", "users"]);
    }

    #[test]
    fn fields_carry_types_flags_and_masks() {
        let catalog = Catalog::builtin();
        let bc = catalog.get("bigcommerce").unwrap();
        let orders = object_metadata(bc, "orders").unwrap();
        let f = |p: &str| orders.fields.iter().find(|f| f.vendor_path == p).unwrap_or_else(|| panic!("{p}")).clone();
        let id = f("id");
        assert_eq!((id.kind, id.vendor_read_only, id.createable, id.filterable), ("number", true, false, true));
        let modified = f("date_modified");
        assert_eq!((modified.kind, modified.mask, modified.filterable), ("date", Some("EEE, d MMM yyyy HH:mm:ss Z"), true));
        let total = f("total_inc_tax");
        assert_eq!((total.kind, total.vendor_native_type), ("number", Some("decimal")));
        let products = f("products");
        assert_eq!((products.kind, products.vendor_read_only, products.updateable), ("object", true, false));
        let email = f("billing_address.email");
        assert!(email.filterable && email.vendor_native_type.is_none());
        assert!(!f("staff_notes").filterable && f("staff_notes").createable);
        let json = serde_json::to_value(f("status")).unwrap();
        assert_eq!(json["createable"], "true");
        assert_eq!(json["filterable"], "false");
        assert_eq!(json["vendorReadOnly"], false);
        assert!(json.get("mask").is_none());

        let keap = catalog.get("infusionsoftcrm").unwrap();
        let contacts = object_metadata(keap, "contacts").unwrap();
        let born = contacts.fields.iter().find(|f| f.vendor_path == "Birthday").unwrap();
        assert_eq!((born.mask, born.vendor_native_type, born.filterable), (Some("yyyy-MM-dd'T'HH:mm:ss"), Some("dateTime.iso8601"), true));
        assert_eq!(contacts.fields[0].vendor_path, "id");
        let users = object_metadata(keap, "users").unwrap();
        assert!(users.fields.iter().all(|f| f.vendor_read_only && !f.createable && !f.updateable));
        assert!(object_metadata(keap, "orders").is_none());
    }
}
