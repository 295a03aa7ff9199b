//! Element definitions: the data that makes one vendor look like a hub.
//!
//! An element is a YAML file (see `elements/README.md` at the repository root for the
//! format). The built-in ones are embedded in the binary; more can be loaded from a
//! directory. Nothing in here talks to the network: the engine interprets these
//! definitions.

mod behaviour;
mod catalog;
mod check;
mod docs;
pub mod event_keys;
mod locate;
mod listing;
mod model;
mod objects;
mod query;
mod route;
mod template;
mod zone;

pub use catalog::{parse, Catalog, CatalogError};
pub use check::HUBS;
pub use docs::{add_common_object, openapi};
pub use behaviour::{format_vendor_date, is_link_object, prepare_write_body};
pub use listing::{filter_role, search_body, FilterRole, Pointer, SearchAt};
pub use model::*;
pub use objects::{object_metadata, object_name, object_names, objects, FieldMetadata, ObjectMetadata};
pub use query::{parse_fields, plan_order_by, plan_where, plan_where_in, project, QueryError, VendorQuery};
pub use route::{RouteError, RouteMatch};
pub use template::{render, Template, TemplateError};
pub use zone::Zone;
