//! Path segments a caller (or a vendor's webhook payload) supplies: hub ids and
//! `/proxy/` paths.
//!
//! Such a value must reach the vendor as exactly one path segment and never be
//! read as a path step. HTTP clients normalise URLs the WHATWG way, where `..`,
//! `.%2e`, `%2E%2E` and friends all climb one level, and routers split on a `/`
//! that arrived as `%2F`; so the request path is split while it is still
//! percent-encoded, each segment decoded once and checked, and every value is
//! encoded again as one segment when the vendor URL is built.

use percent_encoding::{percent_decode_str, utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

use crate::EngineError;

/// Everything but RFC 3986's unreserved characters (`A-Z a-z 0-9 - . _ ~`) is
/// encoded, so no value can carry a delimiter (`/ ? # ;`) or a `%` of its own.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');

/// Why a value cannot be one path segment.
fn refusal(what: &str, value: &str) -> Option<String> {
    if value == "." || value == ".." {
        Some(format!("{what} may not be '.' or '..' (in any encoding)"))
    } else if value.contains('/') {
        Some(format!("{what} may not contain '/' (also not as %2F)"))
    } else if value.contains('\0') {
        Some(format!("{what} may not contain NUL (%00)"))
    } else {
        None
    }
}

/// `value` as one percent-encoded path segment.
///
/// Errors: 400 for `.`, `..`, a value containing `/` or NUL; an empty value is
/// refused too (it would merge with its neighbour segment).
pub fn encode(value: &str) -> Result<String, EngineError> {
    if value.is_empty() {
        return Err(bad("A record id may not be empty"));
    }
    match refusal("A record id", value) {
        Some(why) => Err(bad(why)),
        None => Ok(utf8_percent_encode(value, SEGMENT).to_string()),
    }
}

/// The segments of a still percent-encoded path (`orders/10/products`), each
/// decoded once and checked: `.`, `..` (in any encoding), NUL, `/` (as `%2F`)
/// and text that is not UTF-8 are 400s. Empty segments (`a//b`, a trailing `/`)
/// are dropped when `drop_empty`, and refused otherwise except for a trailing one.
pub fn decode(raw: &str, what: &str, drop_empty: bool) -> Result<Vec<String>, EngineError> {
    let parts: Vec<&str> = raw.split('/').collect();
    let last = parts.len() - 1;
    let mut out = Vec::with_capacity(parts.len());
    for (i, part) in parts.iter().enumerate() {
        if part.is_empty() {
            if drop_empty || i == last || (i == 0 && raw.len() > 1) {
                continue;
            }
            return Err(bad(format!("{what} may not contain an empty segment ('//')")));
        }
        let value = percent_decode_str(part)
            .decode_utf8()
            .map_err(|_| bad(format!("{what} is not UTF-8 once percent-decoded: '{part}'")))?;
        if let Some(why) = refusal(what, &value) {
            return Err(bad(why));
        }
        out.push(value.into_owned());
    }
    Ok(out)
}

fn bad(message: impl Into<String>) -> EngineError {
    EngineError::bad_request(message)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::StatusCode;

    #[test]
    fn every_encoding_of_a_dot_segment_is_refused() {
        for raw in [".", "..", "%2e", "%2E", "%2e%2e", "%2E%2e", ".%2e", "%2e.", "a/../b", "a/%2E%2E/b"] {
            assert_eq!(decode(raw, "path", false).unwrap_err().status, StatusCode::BAD_REQUEST, "{raw}");
        }
        // Two dots inside a longer value are just text.
        assert_eq!(decode("a..b/...", "path", false).unwrap(), ["a..b", "..."]);
    }

    #[test]
    fn slashes_nul_and_bad_utf8_are_refused() {
        for raw in ["a%2Fb", "a%2fb", "%00", "a%00b", "%FF", "%C0%AF"] {
            assert_eq!(decode(raw, "path", true).unwrap_err().status, StatusCode::BAD_REQUEST, "{raw}");
        }
    }

    #[test]
    fn empty_segments() {
        assert_eq!(decode("orders/", "path", false).unwrap(), ["orders"]);
        assert!(decode("orders//products", "path", false).is_err());
        // One leading slash is dropped; a path that is only a slash names nothing.
        assert_eq!(decode("/orders", "path", false).unwrap(), ["orders"]);
        assert!(decode("/", "path", false).is_err());
        assert_eq!(decode("//time/", "path", true).unwrap(), ["time"]);
    }

    #[test]
    fn values_are_one_segment_each_way() {
        for value in ["a b", "x?y=1#z", "%2e%2e", "..%2F", "semi;colon", "ü", "+", "a\\b", ".a", "~-_."] {
            let encoded = encode(value).unwrap();
            assert!(!encoded.contains('/') && !encoded.contains('?') && !encoded.contains('#') && !encoded.contains('\\'));
            assert_eq!(decode(&encoded, "path", false).unwrap(), [value], "{value} -> {encoded}");
        }
        for value in ["", ".", "..", "a/b", "a\0"] {
            assert!(encode(value).is_err(), "{value:?}");
        }
    }
}
