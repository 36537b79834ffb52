//! Any JSON: resource validation never panics, and canonical form is a
//! fixed point of render + parse.
#![no_main]

use libfuzzer_sys::fuzz_target;
use scim_protocol::schema::{group, user};
use scim_protocol::{Projection, SearchRequest, parse_resource, render};
use serde_json::Value;

fuzz_target!(|data: &[u8]| {
    let Ok(body) = serde_json::from_slice::<Value>(data) else { return };
    let _ = SearchRequest::from_body(&body);
    for rt in [user(), group()] {
        if let Ok(parsed) = parse_resource(rt, &body) {
            let again = parse_resource(rt, &render(rt, &parsed, &Projection::Default));
            let mut expected = parsed.clone();
            expected.remove("password");
            assert_eq!(again.ok(), Some(expected));
        }
    }
});
