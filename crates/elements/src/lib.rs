//! Element definitions: the data that makes one vendor look like a hub.
//!
//! An element is a YAML file (see `elements/README.md` at the repository root for the
//! format). The built-in ones are embedded in the binary; more can be loaded from a
//! directory. Nothing in here talks to the network: the engine interprets these
//! definitions.

mod catalog;
mod model;
mod route;
mod template;

pub use catalog::{Catalog, CatalogError};
pub use model::*;
pub use route::{RouteError, RouteMatch};
pub use template::{render, Template, TemplateError};
