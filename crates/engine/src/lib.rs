//! switchyard-engine: outbound policy and the vendor HTTP client.

pub mod client;
pub mod outbound;

pub use client::{provider_message, VendorClient, VendorError, VendorRequest, VendorResponse};
pub use outbound::{OutboundPolicy, PolicyError};
