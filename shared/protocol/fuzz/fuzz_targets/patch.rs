//! Any JSON: PATCH parsing and application never panic, and a PATCH that
//! applies yields a valid resource.
#![no_main]

use libfuzzer_sys::fuzz_target;
use scim_protocol::schema::{group, user};
use scim_protocol::{PatchRequest, apply_patch, parse_resource};
use serde_json::{Value, json};

fuzz_target!(|data: &[u8]| {
    let Ok(body) = serde_json::from_slice::<Value>(data) else { return };
    let Ok(request) = PatchRequest::parse(&body) else { return };
    let u = parse_resource(
        user(),
        &json!({
            "userName": "bjensen@example.com",
            "name": { "givenName": "Barbara" },
            "emails": [{ "value": "b@example.com", "type": "work", "primary": true }]
        }),
    )
    .unwrap_or_default();
    if let Ok(out) = apply_patch(user(), &u, &request) {
        assert!(parse_resource(user(), &Value::Object(out.resource)).is_ok());
    }
    let g = parse_resource(group(), &json!({ "displayName": "G" })).unwrap_or_default();
    let _ = apply_patch(group(), &g, &request);
});
