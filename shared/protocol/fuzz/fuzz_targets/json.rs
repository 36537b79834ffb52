//! Any bytes: the strict JSON reader never panics, agrees with serde_json
//! on every document without a repeated key, and refuses only for a
//! repeated key where serde_json accepts.
#![no_main]

use libfuzzer_sys::fuzz_target;
use scim_protocol::json::from_slice_strict;
use serde_json::Value;

fuzz_target!(|data: &[u8]| {
    let strict = from_slice_strict(data);
    let lenient = serde_json::from_slice::<Value>(data);
    match (strict, lenient) {
        (Ok(s), Ok(l)) => assert_eq!(s, l),
        (Ok(_), Err(e)) => panic!("strict accepted what serde_json refuses: {e}"),
        (Err(e), Ok(_)) => assert!(e.to_string().contains("appears twice"), "{e}"),
        (Err(_), Err(_)) => {}
    }
});
