//! Any text: the filter parser and the PATCH path parser never panic, and a
//! filter that parses prints to text that parses to the same tree.
#![no_main]

use libfuzzer_sys::fuzz_target;
use scim_protocol::patch::PatchPath;
use scim_protocol::schema::{group, user};
use scim_protocol::Filter;

fuzz_target!(|text: &str| {
    let _ = PatchPath::parse(text);
    if let Ok(f) = Filter::parse(text) {
        let printed = f.to_string();
        assert_eq!(Filter::parse(&printed).ok(), Some(f.clone()), "{printed}");
        for rt in [user(), group()] {
            if f.validate(rt).is_ok() {
                let _ = f.matches(rt, &serde_json::Map::new());
                let _ = f.indexed_equality(rt);
            }
        }
    }
});
