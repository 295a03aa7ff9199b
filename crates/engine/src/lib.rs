//! switchyard-engine: outbound policy and the vendor HTTP client.

pub mod outbound;
