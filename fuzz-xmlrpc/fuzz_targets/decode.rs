//! Decodes arbitrary bytes as a call and as a response; whatever decodes
//! must encode and decode again to the same thing. Any panic is a bug.
#![no_main]

use libfuzzer_sys::fuzz_target;
use switchyard_xmlrpc::{decode_call, decode_response, encode_call, encode_response};

fuzz_target!(|data: &[u8]| {
    if let Ok(call) = decode_call(data) {
        let xml = encode_call(&call);
        let again = decode_call(xml.as_bytes())
            .unwrap_or_else(|e| panic!("re-decoding our own call failed: {e}\n{xml}"));
        assert_eq!(again, call, "call changed across encode/decode:\n{xml}");
    }
    if let Ok(response) = decode_response(data) {
        let xml = encode_response(&response);
        let again = decode_response(xml.as_bytes())
            .unwrap_or_else(|e| panic!("re-decoding our own response failed: {e}\n{xml}"));
        assert_eq!(again, response, "response changed across encode/decode:\n{xml}");
    }
});
