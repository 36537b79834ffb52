//! Any text: the character rules and query parsing never panic, and NFC is
//! a fixed point.
#![no_main]

use libfuzzer_sys::fuzz_target;
use scim_protocol::SearchRequest;
use scim_protocol::text::{TextRule, check, nfc};

fuzz_target!(|text: &str| {
    for rule in [TextRule::Free, TextRule::Name, TextRule::Identifier] {
        let _ = check(rule, text, &"x");
    }
    let once = nfc(text);
    assert_eq!(nfc(&once), once);
    let pairs: Vec<(&str, &str)> = text.split('&').filter_map(|p| p.split_once('=')).collect();
    let _ = SearchRequest::from_query(pairs);
});
