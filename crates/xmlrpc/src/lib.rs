//! XML-RPC codec for Keap's legacy API (`POST /crm/xmlrpc/v1`) and for the
//! Keap simulator: encodes and decodes method calls (server side) and method
//! responses, faults included (client side).
//!
//! ```
//! use switchyard_xmlrpc::{decode_call, encode_call, MethodCall, Value};
//!
//! let call = MethodCall::new("DataService.echo", vec![Value::from("key"), Value::from("hi")]);
//! let xml = encode_call(&call);
//! assert_eq!(decode_call(xml.as_bytes()).unwrap(), call);
//! ```
//!
//! Decoding is lenient where real peers differ (`<i4>`/`<int>`, a `<value>`
//! without a type is a string, `<nil/>`/`<ex:nil/>`, both date forms,
//! unpadded or wrapped base64, fault members in any order) and strict about
//! safety: input size ([`MAX_INPUT_BYTES`]), nesting ([`MAX_DEPTH`]), no
//! DOCTYPE and hence no entity expansion, never a panic. Encoding writes what
//! Keap writes (`<i4>`, `20261123T10:15:00`, `<nil/>`). See README.md.

mod decode;
mod encode;
mod error;
mod json;
mod value;

pub use decode::{
    decode_call, decode_call_lossy, decode_response, decode_response_lossy, Lossy, PathItem,
    Replaced, Replacement, MAX_DEPTH, MAX_INPUT_BYTES,
};
pub use encode::{encode_call, encode_response};
pub use error::Error;
pub use indexmap;
pub use value::{Fault, MethodCall, MethodResponse, Struct, Value};
