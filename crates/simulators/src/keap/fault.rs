//! Keap's XML-RPC faults: the bracketed kind in `faultString` is what clients read.
//!
//! The numeric `faultCode`s are the simulator's own (Keap does not document them);
//! they are stable so tests may rely on them.

use super::xmlrpc::Fault;

/// A request that could not be parsed or named no handler (Apache XML-RPC's code 0).
pub(crate) const GENERIC: i32 = 0;
pub(crate) const INVALID_KEY: i32 = 2;
pub(crate) const RECORD_NOT_FOUND: i32 = 5;
pub(crate) const NO_TABLE_ACCESS: i32 = 7;
pub(crate) const NO_FIELD_FOUND: i32 = 9;
pub(crate) const INVALID_PARAMETER: i32 = 10;

pub(crate) fn invalid_key() -> Fault {
    Fault::new(INVALID_KEY, "[InvalidKey]Invalid key")
}

pub(crate) fn record_not_found(table: &str, id: i32) -> Fault {
    Fault::new(RECORD_NOT_FOUND, format!("[RecordNotFound]Record not found: {table} {id}"))
}

pub(crate) fn no_table_access(table: &str, action: &str) -> Fault {
    Fault::new(NO_TABLE_ACCESS, format!("[NoTableAccess]Unable to {action} table: {table}"))
}

pub(crate) fn unknown_table(table: &str) -> Fault {
    Fault::new(NO_TABLE_ACCESS, format!("[NoTableAccess]No such table: {}", snippet(table)))
}

pub(crate) fn no_field_found(table: &str, field: &str) -> Fault {
    Fault::new(NO_FIELD_FOUND, format!("[NoFieldFound]No field found: {table}.{}", snippet(field)))
}

pub(crate) fn invalid_parameter(message: impl std::fmt::Display) -> Fault {
    Fault::new(INVALID_PARAMETER, format!("[InvalidParameter]{message}"))
}

/// Caller text quoted in a fault: short, so a fault never carries a document.
pub(crate) fn snippet(s: &str) -> String {
    const MAX: usize = 40;
    if s.chars().count() <= MAX {
        s.to_owned()
    } else {
        let mut out: String = s.chars().take(MAX).collect();
        out.push('…');
        out
    }
}
