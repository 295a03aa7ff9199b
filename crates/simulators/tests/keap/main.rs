//! Black-box tests of the Keap simulator over real HTTP on 127.0.0.1: the OAuth dance,
//! the XML-RPC DataService, faults, limits and the control API; the authorize page once
//! in a real headless Chromium.

mod browser;
mod codec;
mod common;
mod control;
mod interop;
mod oauth;
mod rpc;
