#![recursion_limit = "256"]
//! Offline simulators of the vendors Switchyard talks to.
//!
//! They are the vendor, not Switchyard: nothing here is shared with the engine. Users
//! run them as `switchyard sandbox`; the test suites run elements against them.

pub mod bigcommerce;
pub mod keap;
mod rng;
