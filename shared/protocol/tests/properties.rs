//! Property tests: generated filters print and parse back to the same tree;
//! arbitrary input never panics any parser or the PATCH engine; canonical
//! resources are a fixed point of parse and render.

use proptest::prelude::*;
use scim_protocol::filter::{CompValue, CompareOp};
use scim_protocol::patch::PatchPath;
use scim_protocol::schema::{group, user};
use scim_protocol::{AttrPath, Filter, PatchRequest, Projection, apply_patch, parse_resource, render};
use serde_json::{Number, Value, json};

fn name() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-zA-Z][a-zA-Z0-9_-]{0,8}",
        Just("not".to_string()),
        Just("and".to_string()),
        Just("pr".to_string()),
        Just("$ref".to_string()),
    ]
}

fn attr_path(allow_urn: bool, allow_sub: bool) -> impl Strategy<Value = AttrPath> {
    let urn = if allow_urn {
        proptest::option::of("urn:[a-z]{1,5}(:[a-z0-9.]{1,5}){0,3}").boxed()
    } else {
        Just(None).boxed()
    };
    let sub = if allow_sub { proptest::option::of(name()).boxed() } else { Just(None).boxed() };
    (urn, name(), sub).prop_map(|(urn, name, sub)| AttrPath { urn, name, sub })
}

fn comp_value() -> impl Strategy<Value = CompValue> {
    prop_oneof![
        any::<String>().prop_map(CompValue::Str),
        any::<i64>().prop_map(|i| CompValue::Num(i.into())),
        any::<f64>().prop_filter_map("finite", |f| Number::from_f64(f).map(CompValue::Num)),
        any::<bool>().prop_map(CompValue::Bool),
        Just(CompValue::Null),
    ]
}

fn compare_op() -> impl Strategy<Value = CompareOp> {
    use CompareOp::*;
    prop::sample::select(vec![Eq, Ne, Co, Sw, Ew, Gt, Ge, Lt, Le])
}

/// Filters without value paths (the grammar inside `[...]`), or with them.
fn filter(in_value_path: bool) -> BoxedStrategy<Filter> {
    let leaf = prop_oneof![
        (attr_path(!in_value_path, !in_value_path), compare_op(), comp_value())
            .prop_map(|(path, op, value)| Filter::Compare { path, op, value }),
        attr_path(!in_value_path, !in_value_path).prop_map(Filter::Present),
    ];
    let leaf = if in_value_path {
        leaf.boxed()
    } else {
        prop_oneof![
            3 => leaf,
            1 => (attr_path(true, false), filter(true))
                .prop_map(|(path, f)| Filter::ValuePath { path, filter: Box::new(f) }),
        ]
        .boxed()
    };
    leaf.prop_recursive(5, 32, 2, |inner| {
        prop_oneof![
            (inner.clone(), inner.clone()).prop_map(|(a, b)| Filter::And(Box::new(a), Box::new(b))),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| Filter::Or(Box::new(a), Box::new(b))),
            inner.prop_map(|f| Filter::Not(Box::new(f))),
        ]
    })
    .boxed()
}

/// JSON shaped like SCIM bodies: keys drawn from real attribute names.
fn scim_json() -> impl Strategy<Value = Value> {
    let key = prop::sample::select(vec![
        "userName",
        "UserName",
        "name",
        "givenName",
        "familyName",
        "emails",
        "value",
        "Value",
        "primary",
        "type",
        "active",
        "members",
        "displayName",
        "externalId",
        "id",
        "meta",
        "schemas",
        "manager",
        "password",
        "groups",
        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User",
        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager",
        "name.givenName",
        "display",
        "x",
        "Operations",
        "op",
        "path",
        "addresses",
        "phoneNumbers",
    ])
    .prop_map(str::to_string);
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|i| json!(i)),
        any::<f64>().prop_filter_map("finite", |f| Number::from_f64(f).map(Value::Number)),
        prop::sample::select(vec![
            "True",
            "False",
            "work",
            "a@b.c",
            "",
            "add",
            "Replace",
            "remove",
            "2011-05-13T04:42:34Z"
        ])
        .prop_map(|s| json!(s)),
        any::<String>().prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 48, 6, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            prop::collection::vec((key.clone(), inner), 0..6).prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]
    })
}

fn patch_path() -> impl Strategy<Value = String> {
    prop::sample::select(vec![
        "userName",
        "active",
        "name",
        "name.givenName",
        "emails",
        "emails.value",
        "emails[type eq \"work\"]",
        "emails[type eq \"work\"].value",
        "emails[value pr].primary",
        "members",
        "members[value eq \"a\"]",
        "displayName",
        "id",
        "groups",
        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager",
        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User",
        "addresses[type eq \"work\"].streetAddress",
        "nope",
        "emails[",
        "",
    ])
    .prop_map(str::to_string)
}

fn patch_body() -> impl Strategy<Value = Value> {
    let op = (
        prop::sample::select(vec!["add", "Add", "replace", "Replace", "remove", "Remove", "bogus"]),
        proptest::option::of(patch_path()),
        proptest::option::of(scim_json()),
    )
        .prop_map(|(op, path, value)| {
            let mut o = serde_json::Map::new();
            o.insert("op".into(), json!(op));
            if let Some(p) = path {
                o.insert("path".into(), json!(p));
            }
            if let Some(v) = value {
                o.insert("value".into(), v);
            }
            Value::Object(o)
        });
    prop::collection::vec(op, 1..6)
        .prop_map(|ops| json!({ "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": ops }))
}

fn bjensen() -> serde_json::Map<String, Value> {
    let body = json!({
        "userName": "bjensen@example.com",
        "name": { "givenName": "Barbara", "familyName": "Jensen" },
        "emails": [{ "value": "bjensen@example.com", "type": "work", "primary": true }],
        "active": true,
        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": { "employeeNumber": "1" }
    });
    parse_resource(user(), &body).unwrap_or_default()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn printed_filters_parse_back_to_the_same_tree(f in filter(false)) {
        let text = f.to_string();
        let parsed = Filter::parse(&text);
        prop_assert_eq!(parsed.as_ref().ok(), Some(&f), "printed as {}: {:?}", text, parsed.as_ref().err());
    }

    #[test]
    fn filter_parser_never_panics(text in any::<String>()) {
        let _ = Filter::parse(&text);
        let _ = PatchPath::parse(&text);
        let _ = AttrPath::parse(&text);
    }

    #[test]
    fn filter_parser_never_panics_on_filter_like_text(
        parts in prop::collection::vec(prop::sample::select(vec![
            "userName", " ", "eq", "\"x\"", "(", ")", "[", "]", "and", "or", "not", "pr", "emails", ".", "value",
            "\\", "\"", "1.5e3", "-", "true", "urn:a:b:", "é", "\u{0}",
        ]), 0..40)
    ) {
        let text: String = parts.concat();
        if let Ok(f) = Filter::parse(&text) {
            // Whatever parses also prints to something that parses identically.
            prop_assert_eq!(Filter::parse(&f.to_string()).ok(), Some(f.clone()));
            let _ = f.validate(user());
            let _ = f.matches(user(), &bjensen());
            let _ = f.indexed_equality(user());
        }
    }

    #[test]
    fn generated_filters_evaluate_without_panicking(f in filter(false)) {
        let _ = f.validate(user());
        let _ = f.matches(user(), &bjensen());
        let _ = f.matches(group(), &bjensen());
    }

    #[test]
    fn resource_parsing_never_panics(body in scim_json()) {
        for rt in [user(), group()] {
            if let Ok(parsed) = parse_resource(rt, &body) {
                // Canonical form is a fixed point of render + parse.
                let rendered = render(rt, &parsed, &Projection::Default);
                let again = parse_resource(rt, &rendered);
                let mut expected = parsed.clone();
                expected.remove("password");
                prop_assert_eq!(again.ok(), Some(expected));
            }
        }
    }

    #[test]
    fn patch_never_panics_and_results_are_valid(body in patch_body()) {
        if let Ok(request) = PatchRequest::parse(&body) {
            if let Ok(out) = apply_patch(user(), &bjensen(), &request) {
                // Whatever a PATCH produces is itself a valid resource.
                prop_assert!(parse_resource(user(), &Value::Object(out.resource)).is_ok());
            }
            let g = parse_resource(group(), &json!({ "displayName": "G" })).unwrap_or_default();
            let _ = apply_patch(group(), &g, &request);
        }
    }

    #[test]
    fn patch_parsing_never_panics_on_any_json(body in scim_json()) {
        let _ = PatchRequest::parse(&body);
        let _ = scim_protocol::SearchRequest::from_body(&body);
    }

    #[test]
    fn equality_on_any_user_name_is_an_indexed_match(user_name in "[\\PC&&[^\"\\\\\\s]]{1,40}") {
        let u = parse_resource(user(), &json!({ "userName": user_name })).unwrap_or_default();
        prop_assume!(!u.is_empty());
        let f = Filter::Compare { path: AttrPath::attr("userName"), op: CompareOp::Eq, value: CompValue::Str(user_name.to_uppercase()) };
        let parsed = Filter::parse(&f.to_string());
        prop_assert_eq!(parsed.as_ref().ok(), Some(&f));
        prop_assert!(f.indexed_equality(user()).is_some());
        // userName is caseExact false: the upper-cased name still matches.
        prop_assert!(f.matches(user(), &u) || user_name.to_uppercase().to_lowercase() != user_name.to_lowercase());
    }
}
