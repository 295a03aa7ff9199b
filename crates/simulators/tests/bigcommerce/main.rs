//! Black-box tests of the BigCommerce simulator over real HTTP on 127.0.0.1, with the
//! answers validated against the vendor's published specs (`../shared/specs/bigcommerce`).

mod catalog;
mod common;
mod control;
mod customers;
mod geography;
mod hooks;
mod orders;
mod spec;
mod transport;
