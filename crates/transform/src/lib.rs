//! Cloud Elements transformations as a pure library: no I/O, no async.
//!
//! A *common resource* (`myContact`) is a normalized object; a *transformation*
//! maps one element's vendor object (`vendorName`) onto it, field by field:
//! `{"path": common field, "type": its type, "vendorPath": where the vendor keeps
//! it, "vendorType", "mask"}`. The engine stores transformations and calls
//! [`Transformation::from_vendor`] on records read from the vendor and
//! [`Transformation::to_vendor`] on bodies written to it.
//!
//! * [`path`]: [`VendorPath`] (keys, `[0]`, `[id=4]`, `[?(@.a.b==2)]`,
//!   `[*].size()`) and [`CommonPath`] (dotted keys).
//! * [`convert`]: value conversions between field types.
//! * [`datefmt`]: Java `SimpleDateFormat` patterns (masks), also used by events.
//!
//! # What Cloud Elements documents, and what was chosen where it is silent
//!
//! From the Cloud Elements docs ("Transforming Fields via API", "Map Complex
//! Objects", the migration guide's GET answer):
//!
//! * The body: `level` (`organization`, `account`, `instance`), `vendorName`,
//!   `fields` of `path`, `type` (`boolean`, `string`, `date`, `number`),
//!   `vendorPath`, `vendorType`, a `mask` for dates, a per-field `configuration`;
//!   a body-level `configuration` with `{"type":"passThrough","properties":
//!   {"fromVendor","toVendor"}}` and `{"type":"inherit"}`. A GET answer also has
//!   `objectName`, `startDate`, `isLegacy` and a `level` per field: all accepted,
//!   so an answer can be posted back.
//! * The vendor path forms of [`path`], and that `size()` counts an array.
//!
//! Chosen here:
//!
//! * `vendorName` is required; `type` defaults to `string`. Unknown members are
//!   refused by name, as is the same `path` twice, more than [`MAX_FIELDS`]
//!   fields, an unknown `type`/`vendorType`, a mask [`datefmt`] cannot compile.
//! * `level: account` is refused with its own error ([`Invalid::AccountLevel`]);
//!   so is custom JavaScript ([`Invalid::Script`]: a top-level `script`, or a
//!   configuration entry, body or field, of type `script`/`javascript`).
//! * Other configuration entries (`addToDocumentation`, …) are kept and echoed,
//!   with no effect here.
//! * A `[key=value]` match compares the element's scalar rendered as text (number
//!   4 and string "4" both match `4`, and `4.0` matches number 4); a `[?(@.k==v)]` filter compares JSON
//!   values, numbers numerically. Both select the first matching element. Match,
//!   filter and size paths are read-only: writes skip them.
//! * Writes create objects and arrays on the way, padding arrays with nulls up to
//!   the index (an index is at most [`path::MAX_INDEX`]); a scalar in the way is
//!   replaced.
//! * Reads never fail: a value that does not convert to the field's type is passed
//!   through unchanged (a vendor returning "n/a" in a number field still lists).
//!   A missing vendor value leaves the common field absent; null stays null.
//! * Writes fail ([`ConvertError`], for a 400) when a value cannot become the
//!   vendor's type. The target type is `vendorType`; without one a `number`
//!   field is written as a number, a `date` field as a date, others as given.
//! * Dates read: with a mask, by the mask alone; without, RFC 3339, ISO 8601,
//!   RFC 2822 (`Tue, 20 Nov 2012 00:00:00 +0000`), local times
//!   (`yyyy-MM-dd'T'HH:mm:ss`, `yyyy-MM-dd`) in the given zone (UTC without one),
//!   and numbers as epoch milliseconds. Written to the common record as RFC 3339
//!   (`2012-11-20T00:00:00Z`), keeping the vendor's offset when it had one.
//!   Dates written to the vendor: with the mask, else RFC 3339, in the given zone
//!   when there is one, else in the value's own offset; a `vendorType: number`
//!   date is epoch milliseconds.
//! * passThrough (default off both ways, so unmapped fields are dropped):
//!   `fromVendor` copies the vendor record's top-level members that are neither
//!   the first key of a mapped keys-only vendorPath nor the first key of a mapped
//!   common path, never over a mapped value; `toVendor` copies the common record's
//!   top-level members that are not the first key of a mapped common path.
//! * `inherit` ([`Transformation::merged_over`]): self's fields win by `path`,
//!   the base's other fields are kept; self's vendorName; self's passThrough when
//!   it declares one, else the base's.
//! * [`Transformation::check_types`] refuses (common ← vendor): anything ← object
//!   or array; date ← boolean; boolean ← date; number ← date; number ← boolean.
//!   Everything may become a string; number, boolean and date may come from
//!   strings; date and boolean from numbers (epoch milliseconds, 1/0).
//! * Limits: a path has at most 200 characters and 20 steps.

pub mod convert;
pub mod datefmt;
pub mod path;
pub mod transformation;

pub use convert::{FieldType, VendorType};
pub use path::{CommonPath, PathError, Step, VendorPath};
pub use transformation::{ConvertError, Field, Invalid, Level, Transformation, MAX_FIELDS};
