use serde_json::json;

use super::*;
use crate::error::ScimType;
use crate::schema::{group, user};
use crate::urn;

fn ok(rt: &ResourceType, body: Value) -> Object {
    parse_resource(rt, &body).unwrap_or_else(|e| unreachable!("{body} should parse: {e}"))
}

fn err(rt: &ResourceType, body: Value) -> ScimError {
    parse_resource(rt, &body).err().unwrap_or_else(|| unreachable!("{body} should be refused"))
}

// RFC 7643 §8.2 full representation, as a client would POST it.
fn rfc7643_full_user() -> Value {
    json!({
        "schemas": [urn::USER, urn::ENTERPRISE_USER],
        "id": "2819c223-7f76-453a-919d-413861904646",
        "externalId": "701984",
        "userName": "bjensen@example.com",
        "name": {
            "formatted": "Ms. Barbara J Jensen, III", "familyName": "Jensen", "givenName": "Barbara",
            "middleName": "Jane", "honorificPrefix": "Ms.", "honorificSuffix": "III"
        },
        "displayName": "Babs Jensen",
        "nickName": "Babs",
        "profileUrl": "https://login.example.com/bjensen",
        "emails": [
            { "value": "bjensen@example.com", "type": "work", "primary": true },
            { "value": "babs@jensen.org", "type": "home" }
        ],
        "addresses": [{
            "type": "work", "streetAddress": "100 Universal City Plaza", "locality": "Hollywood",
            "region": "CA", "postalCode": "91608", "country": "USA",
            "formatted": "100 Universal City Plaza\nHollywood, CA 91608 USA", "primary": true
        }],
        "phoneNumbers": [{ "value": "555-555-5555", "type": "work" }, { "value": "555-555-4444", "type": "mobile" }],
        "ims": [{ "value": "someaimhandle", "type": "aim" }],
        "photos": [{ "value": "https://photos.example.com/profilephoto/72930000000Ccne/F", "type": "photo" }],
        "userType": "Employee",
        "title": "Tour Guide",
        "preferredLanguage": "en-US",
        "locale": "en-US",
        "timezone": "America/Los_Angeles",
        "active": true,
        "password": "t1meMa$heen",
        "groups": [{ "value": "e9e30dba-f08f-4109-8486-d5c6a331660a", "display": "Tour Guides" }],
        "x509Certificates": [{ "value": "MIIDQzCCAqygAwIBAgICEAAwDQYJKoZIhvcNAQEFBQAwTjELMAkGA1UEBhMCVVMx" }],
        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {
            "employeeNumber": "701984", "costCenter": "4130", "organization": "Universal Studios",
            "division": "Theme Park", "department": "Tour Operations",
            "manager": { "value": "26118915-6090-4610-87e4-49d8ca9f808d", "$ref": "../Users/26118915", "displayName": "John Smith" }
        },
        "meta": { "resourceType": "User", "created": "2010-01-23T04:56:22Z", "version": "W/\"a330bc54f0671c9\"" }
    })
}

// RFC 7643 §8.2 / §3.1: the full example is accepted; read-only attributes
// (id, meta, groups, manager.displayName) are ignored on input (§7
// "readOnly").
#[test]
fn rfc7643_full_user_is_accepted_and_read_only_parts_dropped() {
    let u = ok(user(), rfc7643_full_user());
    assert_eq!(u.get("userName"), Some(&json!("bjensen@example.com")));
    for dropped in ["id", "meta", "groups", "schemas"] {
        assert!(!u.contains_key(dropped), "{dropped} should be dropped");
    }
    let ent = &u[urn::ENTERPRISE_USER];
    assert_eq!(ent["manager"], json!({ "value": "26118915-6090-4610-87e4-49d8ca9f808d", "$ref": "../Users/26118915" }));
    assert_eq!(u["addresses"][0]["primary"], json!(true));
}

// RFC 7643 §2.1: attribute names are case-insensitive; output uses the
// schema's casing. Entra sends booleans as strings.
#[test]
fn names_are_case_insensitive_and_string_booleans_accepted() {
    let u = ok(
        user(),
        json!({
            "SCHEMAS": [urn::USER],
            "UserName": "a@b.c",
            "Active": "False",
            "NAME": { "GivenName": "A", "FAMILYNAME": "B" },
            "Emails": [{ "Value": "a@b.c", "Primary": "True", "TYPE": "work" }],
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:user": { "EmployeeNumber": "42" }
        }),
    );
    assert_eq!(
        Value::Object(u),
        json!({
            "userName": "a@b.c",
            "active": false,
            "name": { "givenName": "A", "familyName": "B" },
            "emails": [{ "value": "a@b.c", "primary": true, "type": "work" }],
            urn::ENTERPRISE_USER: { "employeeNumber": "42" }
        })
    );
}

// Entra sends extension attributes as URN-qualified top-level keys and the
// manager as a plain id.
#[test]
fn urn_qualified_keys_and_plain_manager_id() {
    let u = ok(
        user(),
        json!({
            "userName": "x",
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber": "701984",
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager": "boss-id",
            "urn:ietf:params:scim:schemas:core:2.0:User:name.givenName": "Barbara",
        }),
    );
    assert_eq!(u[urn::ENTERPRISE_USER], json!({ "employeeNumber": "701984", "manager": { "value": "boss-id" } }));
    assert_eq!(u["name"], json!({ "givenName": "Barbara" }));
}

#[test]
fn unknown_attributes_are_ignored_and_nulls_unassign() {
    let u = ok(user(), json!({ "userName": "x", "favouriteColour": "blue", "title": null, "emails": [] }));
    assert_eq!(Value::Object(u), json!({ "userName": "x" }));
}

/// Entra's documented Create Group request declares a Microsoft schema it
/// sends nothing under; it is accepted and dropped, not echoed back.
#[test]
fn entras_declaration_only_group_schema_is_accepted() {
    let g = ok(
        group(),
        json!({
            "schemas": [urn::GROUP, "http://schemas.microsoft.com/2006/11/ResourceManagement/ADSCIM/2.0/Group"],
            "externalId": "8aa1a0c0-c4c3-4bc0-b4a5-2ef676900159",
            "displayName": "displayName",
            "meta": { "resourceType": "Group" }
        }),
    );
    assert_eq!(
        Value::Object(g),
        json!({ "externalId": "8aa1a0c0-c4c3-4bc0-b4a5-2ef676900159", "displayName": "displayName" })
    );
    let e = err(group(), json!({ "schemas": [urn::GROUP, "http://schemas.microsoft.com/other"], "displayName": "x" }));
    assert!(e.detail.contains("unknown schema"), "{e}");
}

#[test]
fn refusals_say_what_is_wrong() {
    let cases = [
        (json!([1]), ScimType::InvalidSyntax, "must be a JSON object"),
        (json!({ "schemas": [urn::USER] }), ScimType::InvalidValue, "'userName' is required"),
        (json!({ "userName": "  " }), ScimType::InvalidValue, "'userName' is required"),
        (json!({ "userName": null }), ScimType::InvalidValue, "'userName' is required"),
        (
            json!({ "schemas": [urn::USER, "urn:example:custom"], "userName": "x" }),
            ScimType::InvalidValue,
            "unknown schema 'urn:example:custom'",
        ),
        (json!({ "schemas": [urn::ENTERPRISE_USER], "userName": "x" }), ScimType::InvalidValue, "must include"),
        (json!({ "schemas": urn::USER, "userName": "x" }), ScimType::InvalidSyntax, "'schemas' must be an array"),
        (json!({ "schemas": [urn::GROUP], "userName": "x" }), ScimType::InvalidValue, "unknown schema"),
        (json!({ "userName": "x", "active": "yes" }), ScimType::InvalidValue, "'active' must be a boolean"),
        (json!({ "userName": "x", "active": 1 }), ScimType::InvalidValue, "'active' must be a boolean"),
        (json!({ "userName": ["x"] }), ScimType::InvalidValue, "single-valued"),
        (json!({ "userName": {"a": 1} }), ScimType::InvalidValue, "'userName' must be a string"),
        (json!({ "userName": "x", "name": "Barbara" }), ScimType::InvalidValue, "'name' must be a JSON object"),
        (
            json!({ "userName": "x", "name": { "givenName": "B", "familyName": [] } }),
            ScimType::InvalidValue,
            "single-valued",
        ),
        (
            json!({ "userName": "x", "emails": [{ "value": "a", "primary": true }, { "value": "b", "primary": "True" }] }),
            ScimType::InvalidValue,
            "at most one value of 'emails' may be primary",
        ),
        (json!({ "userName": "x", "emails": [[{ "value": "a" }]] }), ScimType::InvalidValue, "nested array"),
        (json!({ "userName": "x", urn::ENTERPRISE_USER: "text" }), ScimType::InvalidSyntax, "must be a JSON object"),
        // Wrong JSON types are refused, naming the attribute, never converted.
        (json!({ "userName": 12345 }), ScimType::InvalidValue, "'userName' must be a string; got a number"),
        (json!({ "userName": true }), ScimType::InvalidValue, "'userName' must be a string; got a boolean"),
        (json!({ "userName": "x", "externalId": 7 }), ScimType::InvalidValue, "'externalId' must be a string"),
        (
            json!({ "userName": "x", "name": { "givenName": 5.5 } }),
            ScimType::InvalidValue,
            "'name.givenName' must be a string",
        ),
        (
            json!({ "userName": "x", urn::ENTERPRISE_USER: { "employeeNumber": 42 } }),
            ScimType::InvalidValue,
            "employeeNumber' must be a string; got a number",
        ),
        (
            json!({ "userName": "x", "emails": "x" }),
            ScimType::InvalidValue,
            "'emails' is multi-valued and must be a JSON array",
        ),
        (json!({ "userName": "x", "emails": { "value": "a@b.c" } }), ScimType::InvalidValue, "must be a JSON array"),
        (json!({ "userName": "x", "emails": ["a@b.c"] }), ScimType::InvalidValue, "'emails' must be a JSON object"),
        (json!({ "userName": "x", "profileUrl": true }), ScimType::InvalidValue, "'profileUrl' must be a URI string"),
        (json!({ "userName": "x", "profileUrl": "javascript:alert(1)" }), ScimType::InvalidValue, "http or https URL"),
        (json!({ "userName": "x", "profileUrl": "data:text/html,x" }), ScimType::InvalidValue, "http or https URL"),
        (json!({ "userName": "x", "profileUrl": "/relative" }), ScimType::InvalidValue, "absolute http or https URL"),
        (json!({ "userName": "x", "photos": [{ "value": "http://a b" }] }), ScimType::InvalidValue, "without spaces"),
        (
            json!({ "userName": "x", "x509Certificates": [{ "value": "not base64!" }] }),
            ScimType::InvalidValue,
            "'x509Certificates.value' must be base64",
        ),
        (
            json!({ "userName": "x", "x509Certificates": [{ "value": 12 }] }),
            ScimType::InvalidValue,
            "must be a base64 string",
        ),
        (json!({ "userName": "x", "active": "1" }), ScimType::InvalidValue, "'active' must be a boolean"),
        // Control and invisible characters in identifiers and names.
        (json!({ "userName": "admin\u{202e}gpj.exe" }), ScimType::InvalidValue, "bidirectional override (U+202E"),
        (json!({ "userName": "ad\u{200b}min" }), ScimType::InvalidValue, "invisible character (U+200B"),
        (json!({ "userName": "admin\u{0}" }), ScimType::InvalidValue, "control character (U+0000"),
        (json!({ "userName": "admin\r\nX-Injected: 1" }), ScimType::InvalidValue, "control character (U+000D"),
        (json!({ "userName": "admin " }), ScimType::InvalidValue, "whitespace at the start or end"),
        (json!({ "userName": "x", "displayName": "Bob\u{202e}" }), ScimType::InvalidValue, "'displayName' holds"),
        (
            json!({ "userName": "x", "name": { "familyName": "J\u{0}" } }),
            ScimType::InvalidValue,
            "'name.familyName' holds",
        ),
        (json!({ "userName": "x", "title": "a\u{7}" }), ScimType::InvalidValue, "'title' holds a control character"),
        (json!({ "userName": "x", "externalId": "e\u{feff}" }), ScimType::InvalidValue, "'externalId' holds"),
        // One attribute named twice, in two spellings.
        (json!({ "userName": "x", "USERNAME": "y" }), ScimType::InvalidSyntax, "names 'userName' a second time"),
    ];
    for (body, scim_type, expected) in cases {
        let e = err(user(), body.clone());
        assert_eq!((e.status, e.scim_type), (400, Some(scim_type)), "{body}: {e}");
        assert!(e.detail.contains(expected), "{body}: {:?} lacks {expected:?}", e.detail);
    }
    let e = err(group(), json!({ "schemas": [urn::GROUP], "members": [] }));
    assert!(e.detail.contains("'displayName' is required for a Group"));
}

#[test]
fn free_text_keeps_its_lines_and_names_keep_their_scripts() {
    let u = ok(
        user(),
        json!({
            "userName": "x",
            "name": { "givenName": "Ali\u{200c}reza", "familyName": "Núñez" },
            "addresses": [{ "formatted": "100 Universal City Plaza\nHollywood, CA 91608 USA" }],
            "profileUrl": "HTTPS://example.com/bjensen",
            "x509Certificates": [{ "value": "MIIDQzCCAqygAwIBAgICEAAwDQYJKoZIhvcNAQEFBQAwTjELMAkGA1UEBhMCVVMx" }]
        }),
    );
    assert_eq!(u["name"]["givenName"], "Ali\u{200c}reza");
    assert_eq!(u["addresses"][0]["formatted"], "100 Universal City Plaza\nHollywood, CA 91608 USA");
}

// A decomposed and a precomposed spelling of one userName are one name:
// userName is kept in Unicode NFC.
#[test]
fn user_name_is_kept_in_nfc() {
    let u = ok(user(), json!({ "userName": "jose\u{301}@example.com" }));
    assert_eq!(u["userName"], "jos\u{e9}@example.com");
    // externalId is case-exact and opaque: kept exactly as sent.
    let u = ok(user(), json!({ "userName": "x", "externalId": "e\u{301}" }));
    assert_eq!(u["externalId"], "e\u{301}");
}

// RFC 7643 §4.1: `password` is writeOnly and returned never. Users sign in
// through their identity provider, so it is dropped on input: never stored.
#[test]
fn password_is_dropped_on_input() {
    let u = ok(user(), json!({ "schemas": [urn::USER], "userName": "x", "password": "S3cret!", "PASSWORD": "t" }));
    assert!(!u.contains_key("password"), "{u:?}");
    let u = ok(user(), json!({ "userName": "x", "urn:ietf:params:scim:schemas:core:2.0:User:password": "S3cret!" }));
    assert!(!u.contains_key("password"), "{u:?}");
}

#[test]
fn group_members_keep_value_and_type_only() {
    let g = ok(
        group(),
        json!({
            "schemas": [urn::GROUP],
            "displayName": "Tour Guides",
            "members": [
                { "value": "2819c223", "$ref": "https://example.com/v2/Users/2819c223", "display": "Babs Jensen", "type": "User" }
            ]
        }),
    );
    assert_eq!(
        g["members"],
        json!([{ "value": "2819c223", "$ref": "https://example.com/v2/Users/2819c223", "type": "User" }])
    );
}

fn stored_user() -> Object {
    let mut u = ok(user(), rfc7643_full_user());
    u.insert("id".into(), json!("2819c223"));
    u.insert(
        "meta".into(),
        json!({ "resourceType": "User", "created": "2010-01-23T04:56:22Z", "lastModified": "2011-05-13T04:42:34Z",
                "location": "https://example.com/v2/Users/2819c223", "version": "W/\"3\"" }),
    );
    u.insert("groups".into(), json!([{ "value": "g1", "display": "Tour Guides", "type": "direct" }]));
    u
}

fn keys(v: &Value) -> Vec<String> {
    v.as_object().map(|o| o.keys().cloned().collect()).unwrap_or_default()
}

fn projection(attributes: Option<&str>, excluded: Option<&str>) -> Projection {
    Projection::from_params(attributes, excluded).unwrap_or_else(|e| unreachable!("{e}"))
}

// RFC 7643 §7 "returned" and RFC 7644 §3.4.2.5.
#[test]
fn default_output_order_and_returned_rules() {
    let out = render(user(), &stored_user(), &Projection::Default);
    assert_eq!(
        keys(&out),
        [
            "schemas",
            "id",
            "externalId",
            "userName",
            "name",
            "displayName",
            "nickName",
            "profileUrl",
            "title",
            "userType",
            "preferredLanguage",
            "locale",
            "timezone",
            "active",
            "emails",
            "phoneNumbers",
            "ims",
            "photos",
            "addresses",
            "groups",
            "x509Certificates",
            urn::ENTERPRISE_USER,
            "meta"
        ]
    );
    assert_eq!(out["schemas"], json!([urn::USER, urn::ENTERPRISE_USER]));
    assert!(out.get("password").is_none(), "password is returned never");
}

#[test]
fn attributes_parameter_narrows_output() {
    let u = stored_user();
    let out = render(user(), &u, &projection(Some("userName"), None));
    assert_eq!(keys(&out), ["schemas", "id", "userName"]);
    let out = render(user(), &u, &projection(Some("NAME.givenName,emails.value"), None));
    assert_eq!(out["name"], json!({ "givenName": "Barbara" }));
    assert_eq!(out["emails"], json!([{ "value": "bjensen@example.com" }, { "value": "babs@jensen.org" }]));
    let out = render(user(), &u, &projection(Some(urn::ENTERPRISE_USER), None));
    assert_eq!(keys(&out), ["schemas", "id", urn::ENTERPRISE_USER]);
    assert_eq!(out["schemas"], json!([urn::USER, urn::ENTERPRISE_USER]));
    let qualified = format!("{}:department", urn::ENTERPRISE_USER);
    let out = render(user(), &u, &projection(Some(&qualified), None));
    assert_eq!(out[urn::ENTERPRISE_USER], json!({ "department": "Tour Operations" }));
    let out = render(user(), &u, &projection(Some("password,nope"), None));
    assert_eq!(keys(&out), ["schemas", "id"], "never-returned and unknown names add nothing");
    let out = render(user(), &u, &projection(Some("meta.version"), None));
    assert_eq!(out["meta"], json!({ "version": "W/\"3\"" }));
}

#[test]
fn excluded_attributes_parameter_removes_output() {
    let u = stored_user();
    let out = render(
        user(),
        &u,
        &projection(None, Some("emails,meta,id,groups,urn:ietf:params:scim:schemas:extension:enterprise:2.0:User")),
    );
    assert!(out.get("emails").is_none() && out.get("meta").is_none() && out.get("groups").is_none());
    assert_eq!(out["id"], json!("2819c223"), "id is returned always");
    assert_eq!(out["schemas"], json!([urn::USER]));
    let out = render(user(), &u, &projection(None, Some("name.givenName")));
    assert_eq!(
        out["name"],
        json!({ "formatted": "Ms. Barbara J Jensen, III", "familyName": "Jensen", "middleName": "Jane", "honorificPrefix": "Ms.", "honorificSuffix": "III" })
    );
    // attributes wins when both are given.
    let out = render(user(), &u, &projection(Some("userName"), Some("userName")));
    assert_eq!(keys(&out), ["schemas", "id", "userName"]);
}

#[test]
fn projection_parse_errors_are_invalid_path() {
    let e = Projection::from_params(Some("userName,1bad"), None).err();
    assert_eq!(e.map(|e| e.scim_type), Some(Some(ScimType::InvalidPath)));
    assert_eq!(Projection::from_params(Some(" , "), None).ok(), Some(Projection::Default));
}

#[test]
fn storage_can_ask_whether_members_are_wanted() {
    assert!(Projection::Default.includes(group(), "members"));
    assert!(!projection(None, Some("members")).includes(group(), "members"));
    assert!(!projection(Some("displayName"), None).includes(group(), "members"));
    assert!(projection(Some("members.value"), None).includes(group(), "members"));
}

// Canonical form is a fixed point: rendering and parsing again changes nothing.
#[test]
fn parse_render_parse_is_stable() {
    let once = ok(user(), rfc7643_full_user());
    let rendered = render(user(), &once, &Projection::Default);
    let twice = ok(user(), rendered);
    let mut expected = once.clone();
    expected.remove("password");
    assert_eq!(twice, expected);
}

// Some clients put a value filter in `attributes`
// (`GET /Users/{id}?attributes=emails[type eq "work"]`). It selects the
// attribute it filters: all of `emails` comes back.
#[test]
fn a_value_filter_in_attributes_selects_its_attribute() {
    let p = Projection::from_params(Some(r#"emails[type eq "work"],userName"#), None)
        .unwrap_or_else(|e| unreachable!("{e}"));
    assert_eq!(p, Projection::Include(vec![AttrPath::attr("emails"), AttrPath::attr("userName")]));
    let p =
        Projection::from_params(Some(r#"emails[type eq "work"].value"#), None).unwrap_or_else(|e| unreachable!("{e}"));
    assert_eq!(p, Projection::Include(vec![AttrPath { urn: None, name: "emails".into(), sub: Some("value".into()) }]));
    let e = Projection::from_params(Some(r#"emails[type eq "work""#), None).err();
    assert_eq!(e.map(|e| e.scim_type), Some(Some(ScimType::InvalidPath)));
}

#[test]
fn projection_names_are_deduplicated_and_capped() {
    // The same name many times is one name.
    let many = vec!["userName"; 200_000].join(",");
    assert_eq!(
        Projection::from_params(Some(&many), None).ok(),
        Some(Projection::Include(vec![AttrPath::attr("userName")]))
    );
    let mixed_case = "userName,USERNAME, username ,emails";
    assert!(matches!(Projection::from_params(Some(mixed_case), None), Ok(Projection::Include(p)) if p.len() == 2));
    // Distinct names past the cap are refused, naming the limit.
    let distinct: Vec<String> = (0..=MAX_PROJECTION_NAMES).map(|i| format!("x{i}")).collect();
    for (a, e) in [(Some(distinct.join(",")), None), (None, Some(distinct.join(",")))] {
        let err = Projection::from_params(a.as_deref(), e.as_deref()).err();
        let err = err.unwrap_or_else(|| unreachable!("{} names accepted", distinct.len()));
        assert_eq!(err.scim_type, Some(ScimType::TooMany), "{err}");
        assert!(err.detail.contains(&MAX_PROJECTION_NAMES.to_string()), "{err}");
    }
    // Exactly the cap is fine.
    let at_cap = distinct[..MAX_PROJECTION_NAMES].join(",");
    assert!(Projection::from_params(Some(&at_cap), None).is_ok());
}

#[test]
fn a_selection_renders_as_its_projection_does() {
    let u = stored_user();
    for (a, e) in [(Some("userName,name.givenName,emails"), None), (None, Some("emails,name")), (None, None)] {
        let p = projection(a, e);
        assert_eq!(render_selected(&u, &p.select(user())), render(user(), &u, &p));
    }
}
