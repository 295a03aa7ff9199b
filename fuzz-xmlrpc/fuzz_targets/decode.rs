//! Decodes arbitrary bytes as a call and as a response, exactly and lossily;
//! whatever decodes must encode and decode again to the same thing, and the
//! lossy decoders agree with the exact ones when they replaced nothing. Any
//! panic is a bug.
#![no_main]

use libfuzzer_sys::fuzz_target;
use switchyard_xmlrpc::{
    decode_call, decode_call_lossy, decode_response, decode_response_lossy, encode_call,
    encode_response,
};

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
    if let Ok(lossy) = decode_response_lossy(data) {
        let xml = encode_response(&lossy.value);
        let again = decode_response(xml.as_bytes())
            .unwrap_or_else(|e| panic!("re-decoding a lossy response failed: {e}\n{xml}"));
        assert_eq!(again, lossy.value, "lossy response changed across encode/decode:\n{xml}");
        assert_eq!(lossy.replaced.is_empty(), decode_response(data).is_ok());
    } else {
        assert!(decode_response(data).is_err(), "lossy failed where exact did not");
    }
    if let Ok(lossy) = decode_call_lossy(data) {
        let xml = encode_call(&lossy.value);
        let again = decode_call(xml.as_bytes())
            .unwrap_or_else(|e| panic!("re-decoding a lossy call failed: {e}\n{xml}"));
        assert_eq!(again, lossy.value, "lossy call changed across encode/decode:\n{xml}");
        assert_eq!(lossy.replaced.is_empty(), decode_call(data).is_ok());
    } else {
        assert!(decode_call(data).is_err(), "lossy failed where exact did not");
    }
});
