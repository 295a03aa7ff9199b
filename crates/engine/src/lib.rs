//! switchyard-engine: outbound policy, the vendor HTTP client, retries and
//! per-instance limits.

pub mod client;
pub mod dispatch;
pub mod outbound;
pub mod retry;
pub mod throttle;

pub use client::{provider_message, VendorClient, VendorError, VendorRequest, VendorResponse};
pub use dispatch::{Dispatched, Dispatcher};
pub use outbound::{OutboundPolicy, PolicyError};
pub use retry::RetryPolicy;
pub use throttle::InstanceLimits;
