use serde_json::json;

use super::*;
use crate::error::ScimType;
use crate::schema::{group, user};

const BABS: &str = "2819c223-7f76-453a-919d-413861904646";
const JAMES: &str = "08e1d05d-121c-4561-8b96-473d93df9210";
const OTHER: &str = "902c246b-6245-4190-8e05-00816be7344a";

fn obj(v: Value) -> Object {
    v.as_object().cloned().unwrap_or_default()
}

fn patch(rt: &ResourceType, resource: &Object, body: Value) -> Result<PatchOutcome> {
    apply_patch(rt, resource, &PatchRequest::parse(&body)?)
}

fn ok(rt: &ResourceType, resource: &Object, body: Value) -> PatchOutcome {
    patch(rt, resource, body.clone()).unwrap_or_else(|e| unreachable!("{body} should apply: {e}"))
}

fn fail(rt: &ResourceType, resource: &Object, body: Value) -> ScimError {
    patch(rt, resource, body.clone()).err().unwrap_or_else(|| unreachable!("{body} should be refused"))
}

fn ops(ops: Value) -> Value {
    json!({ "schemas": [urn::PATCH_OP], "Operations": ops })
}

fn bjensen() -> Object {
    obj(json!({
        "id": BABS,
        "userName": "bjensen@example.com",
        "name": { "familyName": "Jensen", "givenName": "Barbara" },
        "emails": [
            { "value": "bjensen@example.com", "type": "work", "primary": true },
            { "value": "babs@jensen.org", "type": "home" }
        ],
        "addresses": [{ "type": "work", "streetAddress": "100 Universal City Plaza", "locality": "Hollywood", "primary": true }],
        "active": true,
        "meta": { "resourceType": "User", "version": "W/\"1\"" }
    }))
}

fn tour_guides() -> Object {
    obj(json!({ "id": "e9e30dba", "displayName": "Tour Guides", "meta": { "resourceType": "Group" } }))
}

fn changes(clear: bool, add: &[&str], remove: &[&str]) -> MemberChanges {
    MemberChanges {
        clear,
        add: add.iter().map(|v| MemberRef { value: v.to_string(), kind: None }).collect(),
        remove: remove.iter().map(|v| v.to_string()).collect(),
    }
}

// RFC 7644 §3.5.2.1, first example: add a member to a group.
#[test]
fn rfc7644_3_5_2_1_add_member() {
    let out = ok(
        group(),
        &tour_guides(),
        ops(json!([{ "op": "add", "path": "members", "value": [{
            "display": "Babs Jensen", "$ref": format!("https://example.com/v2/Users/{BABS}"), "value": BABS
        }]}])),
    );
    assert_eq!(out.members, changes(false, &[BABS], &[]));
    assert_eq!(Value::Object(out.resource), json!({ "displayName": "Tour Guides" }));
    assert!(out.changed);
}

// RFC 7644 §3.5.2.1, second example: add without a path; the keys of the
// value (note "nickname" in lower case) are attributes.
#[test]
fn rfc7644_3_5_2_1_add_without_path() {
    let out = ok(
        user(),
        &bjensen(),
        ops(json!([{ "op": "add", "value": {
            "emails": [{ "value": "babs@jensen.org", "type": "home" }, { "value": "b@new.org", "type": "other" }],
            "nickname": "Babs"
        }}])),
    );
    assert_eq!(out.resource["nickName"], json!("Babs"));
    assert_eq!(
        out.resource["emails"],
        json!([
            { "value": "bjensen@example.com", "type": "work", "primary": true },
            { "value": "babs@jensen.org", "type": "home" },
            { "value": "b@new.org", "type": "other" }
        ]),
        "an identical value is not added twice"
    );
}

// RFC 7644 §3.5.2.2: remove a single member, all members, and
// remove-then-add in one request.
#[test]
fn rfc7644_3_5_2_2_remove_members() {
    let g = tour_guides();
    let one = ok(group(), &g, ops(json!([{ "op": "remove", "path": format!("members[value eq \"{BABS}\"]") }])));
    assert_eq!(one.members, changes(false, &[], &[BABS]));
    let all = ok(group(), &g, ops(json!([{ "op": "remove", "path": "members" }])));
    assert_eq!(all.members, changes(true, &[], &[]));
    let swap = ok(
        group(),
        &g,
        ops(json!([
            { "op": "remove", "path": "members" },
            { "op": "add", "path": "members", "value": [{ "display": "James Smith", "$ref": "x", "value": JAMES }] }
        ])),
    );
    assert_eq!(swap.members, changes(true, &[JAMES], &[]));
    let two = ok(
        group(),
        &g,
        ops(json!([
            { "op": "remove", "path": format!("members[value eq \"{BABS}\"]") },
            { "op": "remove", "path": format!("members[value eq \"{OTHER}\"]") }
        ])),
    );
    assert_eq!(two.members, changes(false, &[], &[BABS, OTHER]));
}

// RFC 7644 §3.5.2.2: remove the values a filter selects.
#[test]
fn rfc7644_3_5_2_2_remove_by_value_filter() {
    let out = ok(
        user(),
        &bjensen(),
        ops(json!([{ "op": "remove", "path": "emails[type eq \"work\" and value ew \"example.com\"]" }])),
    );
    assert_eq!(out.resource["emails"], json!([{ "value": "babs@jensen.org", "type": "home" }]));
    let out = ok(user(), &bjensen(), ops(json!([{ "op": "remove", "path": "emails[type eq \"home\"].type" }])));
    assert_eq!(out.resource["emails"][1], json!({ "value": "babs@jensen.org" }));
    // Removing what is not there succeeds: a replay changes nothing.
    let out = ok(user(), &bjensen(), ops(json!([{ "op": "remove", "path": "emails[type eq \"fax\"]" }])));
    assert!(!out.changed);
    // When nothing remains, the attribute is unassigned.
    let out = ok(user(), &bjensen(), ops(json!([{ "op": "remove", "path": "emails[value pr]" }])));
    assert!(out.resource.get("emails").is_none());
}

// RFC 7644 §3.5.2.3: replace all members.
#[test]
fn rfc7644_3_5_2_3_replace_members() {
    let out = ok(
        group(),
        &tour_guides(),
        ops(json!([{ "op": "replace", "path": "members", "value": [
            { "display": "Babs Jensen", "$ref": "a", "value": BABS },
            { "display": "James Smith", "$ref": "b", "value": JAMES }
        ]}])),
    );
    assert_eq!(out.members, changes(true, &[JAMES, BABS], &[]));
}

// RFC 7644 §3.5.2.3: replace a selected complex value, then one
// sub-attribute of it.
#[test]
fn rfc7644_3_5_2_3_replace_selected_values() {
    let work = json!({
        "type": "work", "streetAddress": "911 Universal City Plaza", "locality": "Hollywood", "region": "CA",
        "postalCode": "91608", "country": "US", "formatted": "911 Universal City Plaza\nHollywood, CA 91608 US",
        "primary": true
    });
    let out =
        ok(user(), &bjensen(), ops(json!([{ "op": "replace", "path": "addresses[type eq \"work\"]", "value": work }])));
    assert_eq!(out.resource["addresses"], json!([work]));
    let out = ok(
        user(),
        &bjensen(),
        ops(
            json!([{ "op": "replace", "path": "addresses[type eq \"work\"].streetAddress", "value": "1010 Broadway Ave" }]),
        ),
    );
    assert_eq!(out.resource["addresses"][0]["streetAddress"], json!("1010 Broadway Ave"));
    assert_eq!(out.resource["addresses"][0]["locality"], json!("Hollywood"));
}

// RFC 7644 §3.5.2.3: replace without a path.
#[test]
fn rfc7644_3_5_2_3_replace_without_path() {
    let out = ok(
        user(),
        &bjensen(),
        ops(json!([{ "op": "replace", "value": {
            "emails": [{ "value": "bjensen@example.com", "type": "work", "primary": true }, { "value": "babs@jensen.org", "type": "home" }],
            "nickname": "Babs"
        }}])),
    );
    assert_eq!(out.resource["nickName"], json!("Babs"));
    assert_eq!(out.resource["emails"].as_array().map(Vec::len), Some(2));
}

// RFC 7644 §3.5.2.3: replacing a complex attribute leaves unnamed
// sub-attributes unchanged.
#[test]
fn replace_of_a_complex_attribute_merges() {
    let out =
        ok(user(), &bjensen(), ops(json!([{ "op": "replace", "path": "name", "value": { "givenName": "Babs" } }])));
    assert_eq!(out.resource["name"], json!({ "familyName": "Jensen", "givenName": "Babs" }));
    let out = ok(user(), &bjensen(), ops(json!([{ "op": "replace", "path": "name.familyName", "value": null }])));
    assert_eq!(out.resource["name"], json!({ "givenName": "Barbara" }));
}

// Microsoft Entra ID's dialect (Microsoft's "Develop and plan provisioning
// for a SCIM endpoint": update user, disable user, group rename, member
// add / remove).
#[test]
fn entra_dialect() {
    let u = bjensen();
    let out = ok(
        user(),
        &u,
        ops(json!([
            { "op": "Replace", "path": "emails[type eq \"work\"].value", "value": "updatedEmail@microsoft.com" },
            { "op": "Replace", "path": "name.familyName", "value": "updatedFamilyName" }
        ])),
    );
    assert_eq!(out.resource["emails"][0]["value"], json!("updatedEmail@microsoft.com"));
    assert_eq!(out.resource["name"]["familyName"], json!("updatedFamilyName"));

    let out = ok(user(), &u, ops(json!([{ "op": "Replace", "path": "active", "value": "False" }])));
    assert_eq!(out.resource["active"], json!(false));

    // Path-less, with dotted and URN-qualified keys.
    let out = ok(
        user(),
        &u,
        ops(json!([{ "op": "Add", "value": {
            "name.givenName": "Babs",
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber": "701984",
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager": "mgr-1",
            "active": "True"
        }}])),
    );
    assert_eq!(out.resource["name"]["givenName"], json!("Babs"));
    assert_eq!(
        out.resource[urn::ENTERPRISE_USER],
        json!({ "employeeNumber": "701984", "manager": { "value": "mgr-1" } })
    );

    // Manager as a plain id with a path; then removed.
    let out = ok(
        user(),
        &u,
        ops(
            json!([{ "op": "Add", "path": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager", "value": "mgr-2" }]),
        ),
    );
    assert_eq!(out.resource[urn::ENTERPRISE_USER]["manager"], json!({ "value": "mgr-2" }));
    let removed = ok(
        user(),
        &out.resource,
        ops(json!([{ "op": "Remove", "path": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager" }])),
    );
    assert!(removed.resource.get(urn::ENTERPRISE_USER).is_none(), "an emptied extension disappears");

    // A work phone on a user who has none: the value is created.
    let out = ok(
        user(),
        &u,
        ops(json!([{ "op": "Replace", "path": "phoneNumbers[type eq \"work\"].value", "value": "555-1234" }])),
    );
    assert_eq!(out.resource["phoneNumbers"], json!([{ "type": "work", "value": "555-1234" }]));

    // Groups: rename, then member add / remove with value arrays and filters.
    let g = tour_guides();
    let out = ok(group(), &g, ops(json!([{ "op": "Replace", "path": "displayName", "value": "Guides" }])));
    assert_eq!(out.resource["displayName"], json!("Guides"));
    assert!(out.members.is_empty());
    let out = ok(
        group(),
        &g,
        ops(json!([{ "op": "Add", "path": "members", "value": [{ "$ref": null, "value": "f648f8d5" }] }])),
    );
    assert_eq!(out.members, changes(false, &["f648f8d5"], &[]));
    let out = ok(
        group(),
        &g,
        ops(json!([{ "op": "Remove", "path": "members", "value": [{ "$ref": null, "value": "f648f8d5" }] }])),
    );
    assert_eq!(out.members, changes(false, &[], &["f648f8d5"]), "remove with a value never clears the group");
    let out = ok(group(), &g, ops(json!([{ "op": "Remove", "path": "members[value eq \"f648f8d5\"]" }])));
    assert_eq!(out.members, changes(false, &[], &["f648f8d5"]));
}

// Okta's dialect (Okta SCIM 2.0 reference).
#[test]
fn okta_dialect() {
    let out = ok(user(), &bjensen(), ops(json!([{ "op": "replace", "value": { "active": false } }])));
    assert_eq!(out.resource["active"], json!(false));
    let out = ok(
        group(),
        &tour_guides(),
        ops(json!([{ "op": "replace", "value": { "id": "e9e30dba", "displayName": "Test SCIMv2" } }])),
    );
    assert_eq!(Value::Object(out.resource), json!({ "displayName": "Test SCIMv2" }), "id in a value map is ignored");
    let out = ok(
        group(),
        &tour_guides(),
        ops(json!([
            { "op": "remove", "path": "members[value eq \"89bb1940\"]" },
            { "op": "add", "path": "members", "value": [{ "value": "23a35c27", "display": "test.user@okta.local" }] }
        ])),
    );
    assert_eq!(out.members, changes(false, &["23a35c27"], &["89bb1940"]));
    // Path-less replace of members replaces them all.
    let out =
        ok(group(), &tour_guides(), ops(json!([{ "op": "replace", "value": { "members": [{ "value": "a" }] } }])));
    assert_eq!(out.members, changes(true, &["a"], &[]));
}

#[test]
fn member_operations_fold_to_their_net_effect() {
    let g = tour_guides();
    let add = |id: &str| json!({ "op": "add", "path": "members", "value": [{ "value": id }] });
    let remove = |id: &str| json!({ "op": "remove", "path": format!("members[value eq \"{id}\"]") });
    let out = ok(group(), &g, ops(json!([add("a"), remove("a")])));
    assert_eq!(out.members, changes(false, &[], &["a"]));
    let out = ok(group(), &g, ops(json!([remove("a"), add("a")])));
    assert_eq!(out.members, changes(false, &["a"], &[]));
    let out = ok(
        group(),
        &g,
        ops(
            json!([{ "op": "replace", "path": "members", "value": [{ "value": "a" }, { "value": "b" }] }, remove("b")]),
        ),
    );
    assert_eq!(out.members, changes(true, &["a"], &[]));
    let out = ok(
        group(),
        &g,
        ops(json!([remove("x"), { "op": "remove", "path": "members[value eq \"y\" or value eq \"z\"]" }])),
    );
    assert_eq!(out.members, changes(false, &[], &["x", "y", "z"]));
    let typed = ok(
        group(),
        &g,
        ops(json!([{ "op": "add", "path": "members", "value": [{ "value": "g2", "type": "Group" }] }])),
    );
    assert_eq!(typed.members.add, vec![MemberRef { value: "g2".into(), kind: Some(MemberType::Group) }]);
}

// RFC 7644 §3.5.2: setting primary on one value clears it on the others.
#[test]
fn a_new_primary_value_demotes_the_old_one() {
    let out = ok(
        user(),
        &bjensen(),
        ops(
            json!([{ "op": "add", "path": "emails", "value": [{ "value": "new@x.org", "type": "other", "primary": true }] }]),
        ),
    );
    assert_eq!(out.resource["emails"][0]["primary"], json!(false));
    assert_eq!(out.resource["emails"][2]["primary"], json!(true));
    let out = ok(
        user(),
        &bjensen(),
        ops(json!([{ "op": "replace", "path": "emails[type eq \"home\"].primary", "value": true }])),
    );
    assert_eq!(out.resource["emails"][0]["primary"], json!(false));
    assert_eq!(out.resource["emails"][1]["primary"], json!(true));
}

#[test]
fn replays_are_no_ops() {
    let body = ops(json!([
        { "op": "replace", "path": "active", "value": true },
        { "op": "add", "path": "emails", "value": [{ "value": "babs@jensen.org", "type": "home" }] },
        { "op": "replace", "value": { "userName": "bjensen@example.com" } }
    ]));
    let out = ok(user(), &bjensen(), body);
    assert!(!out.changed);
}

#[test]
fn refusals() {
    let u = bjensen();
    let g = tour_guides();
    let cases: Vec<(&ResourceType, &Object, Value, u16, ScimType, &str)> = vec![
        (user(), &u, json!([]), 400, ScimType::InvalidSyntax, "must be a JSON object"),
        (
            user(),
            &u,
            json!({ "schemas": [urn::PATCH_OP] }),
            400,
            ScimType::InvalidSyntax,
            "needs an 'Operations' array",
        ),
        (user(), &u, ops(json!([])), 400, ScimType::InvalidValue, "'Operations' is empty"),
        (
            user(),
            &u,
            json!({ "schemas": [urn::USER], "Operations": [] }),
            400,
            ScimType::InvalidValue,
            "'schemas' of a PATCH",
        ),
        (
            user(),
            &u,
            ops(json!([{ "op": "move", "path": "title", "value": "x" }])),
            400,
            ScimType::InvalidSyntax,
            "'op' must be",
        ),
        (user(), &u, ops(json!([{ "op": "remove" }])), 400, ScimType::NoTarget, "needs a 'path'"),
        (user(), &u, ops(json!([{ "op": "add", "path": "title" }])), 400, ScimType::InvalidValue, "needs a 'value'"),
        (user(), &u, ops(json!([{ "op": "add", "value": "x" }])), 400, ScimType::InvalidValue, "object of attributes"),
        (
            user(),
            &u,
            ops(json!([{ "op": "replace", "path": "nope", "value": "x" }])),
            400,
            ScimType::InvalidPath,
            "not an attribute",
        ),
        (
            user(),
            &u,
            ops(json!([{ "op": "replace", "path": "emails[type eq \"work\"", "value": "x" }])),
            400,
            ScimType::InvalidPath,
            "expected ']'",
        ),
        (
            user(),
            &u,
            ops(json!([{ "op": "replace", "path": 7, "value": "x" }])),
            400,
            ScimType::InvalidPath,
            "must be a string",
        ),
        (
            user(),
            &u,
            ops(json!([{ "op": "replace", "path": "id", "value": "x" }])),
            400,
            ScimType::Mutability,
            "'id' is read-only",
        ),
        (
            user(),
            &u,
            ops(json!([{ "op": "add", "path": "groups", "value": [{ "value": "g" }] }])),
            400,
            ScimType::Mutability,
            "read-only",
        ),
        (
            user(),
            &u,
            ops(json!([{ "op": "replace", "path": "active", "value": "maybe" }])),
            400,
            ScimType::InvalidValue,
            "must be a boolean",
        ),
        (
            user(),
            &u,
            ops(json!([{ "op": "remove", "path": "userName" }])),
            400,
            ScimType::InvalidValue,
            "'userName' is required",
        ),
        (
            user(),
            &u,
            ops(
                json!([{ "op": "replace", "path": "emails[type eq \"fax\" or type eq \"other\"].value", "value": "x" }]),
            ),
            400,
            ScimType::NoTarget,
            "no value of 'emails' matches",
        ),
        (
            user(),
            &u,
            ops(json!([{ "op": "replace", "path": "emails[nope eq \"x\"].value", "value": "x" }])),
            400,
            ScimType::InvalidFilter,
            "unknown attribute",
        ),
        (
            user(),
            &u,
            ops(json!([{ "op": "replace", "path": "name[givenName eq \"x\"]", "value": {} }])),
            400,
            ScimType::InvalidPath,
            "not a multi-valued complex",
        ),
        (
            user(),
            &u,
            ops(json!([{ "op": "replace", "path": "emails[type eq \"work\"].nope", "value": "x" }])),
            400,
            ScimType::InvalidPath,
            "not a sub-attribute",
        ),
        (
            group(),
            &g,
            ops(json!([{ "op": "remove", "path": "members[display eq \"x\"]" }])),
            400,
            ScimType::InvalidFilter,
            "selected by id",
        ),
        (
            group(),
            &g,
            ops(json!([{ "op": "replace", "path": "members[value eq \"x\"].display", "value": "y" }])),
            400,
            ScimType::InvalidPath,
            "members are added and removed whole",
        ),
        (
            group(),
            &g,
            ops(json!([{ "op": "add", "path": "members", "value": [{ "display": "no id" }] }])),
            400,
            ScimType::InvalidValue,
            "non-empty 'value'",
        ),
        (
            group(),
            &g,
            ops(json!([{ "op": "replace", "path": "displayName", "value": null }])),
            400,
            ScimType::InvalidValue,
            "'displayName' is required",
        ),
    ];
    for (rt, resource, body, status, scim_type, expected) in cases {
        let e = fail(rt, resource, body.clone());
        assert_eq!((e.status, e.scim_type), (status, Some(scim_type)), "{body}: {e}");
        assert!(e.detail.contains(expected), "{body}: {:?} lacks {expected:?}", e.detail);
    }
}

// All or nothing: a failing later operation leaves nothing to store.
#[test]
fn a_failing_operation_fails_the_whole_patch() {
    let e = fail(
        user(),
        &bjensen(),
        ops(json!([
            { "op": "replace", "path": "title", "value": "Boss" },
            { "op": "replace", "path": "id", "value": "x" }
        ])),
    );
    assert_eq!(e.scim_type, Some(ScimType::Mutability));
}

#[test]
fn patch_paths_parse_and_print() {
    for text in [
        "members",
        "name.familyName",
        "emails[type eq \"work\"].value",
        "members[value eq \"2819c223\"]",
        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager",
        "addresses[type eq \"work\" and primary eq true].streetAddress",
    ] {
        let p = PatchPath::parse(text).unwrap_or_else(|e| unreachable!("{text}: {e}"));
        assert_eq!(p.to_string(), text);
    }
    for bad in [
        "",
        "emails[",
        "emails[type eq \"work\"].",
        "emails[type eq \"work\"]x",
        "a b",
        "emails[type eq \"w\"].value.x",
    ] {
        let e = PatchPath::parse(bad).err();
        assert!(e.is_some_and(|e| e.scim_type.is_some()), "{bad:?} should be refused");
    }
}

#[test]
fn take_members_splits_a_group_body() {
    let mut g = crate::resource::parse_resource(
        group(),
        &json!({ "displayName": "G", "members": [{ "value": "b" }, { "value": "a", "type": "User" }, { "value": "b" }] }),
    )
    .unwrap_or_default();
    let members = take_members(&mut g).unwrap_or_default();
    assert_eq!(members.iter().map(|m| m.value.as_str()).collect::<Vec<_>>(), ["a", "b"]);
    assert_eq!(Value::Object(g), json!({ "displayName": "G" }));
}

#[test]
fn a_hundred_member_patch_is_a_hundred_adds() {
    let values: Vec<Value> = (0..100).map(|i| json!({ "value": format!("user-{i:03}") })).collect();
    let out = ok(group(), &tour_guides(), ops(json!([{ "op": "add", "path": "members", "value": values }])));
    assert_eq!(out.members.add.len(), 100);
    assert!(!out.members.clear);
}

// Requests past the operation cap are refused before any is applied.
#[test]
fn operations_are_capped() {
    let one = json!({ "op": "replace", "path": "displayName", "value": "x" });
    let at_cap = ops(Value::Array(vec![one.clone(); MAX_PATCH_OPERATIONS]));
    assert!(patch(user(), &bjensen(), at_cap).is_ok());
    let e = fail(user(), &bjensen(), ops(Value::Array(vec![one; MAX_PATCH_OPERATIONS + 1])));
    assert_eq!((e.status, e.scim_type), (400, Some(ScimType::TooMany)));
    assert!(e.detail.contains(&format!("at most {MAX_PATCH_OPERATIONS}")), "{}", e.detail);
}

// A password set through PATCH, by path or in a value map, is dropped like
// one sent on create; a value filter cannot name it either.
#[test]
fn patch_never_stores_a_password() {
    for body in [
        ops(json!([{ "op": "replace", "path": "password", "value": "S3cret!" }])),
        ops(json!([{ "op": "add", "value": { "password": "S3cret!" } }])),
        ops(
            json!([{ "op": "replace", "value": { "urn:ietf:params:scim:schemas:core:2.0:User:password": "S3cret!" } }]),
        ),
    ] {
        let out = ok(user(), &bjensen(), body.clone());
        assert!(!out.resource.contains_key("password"), "{body}");
        assert!(!out.changed, "{body}: dropping the password changes nothing");
    }
    let e = fail(user(), &bjensen(), ops(json!([{ "op": "remove", "path": "emails[value sw \"b\"].password" }])));
    assert_eq!(e.status, 400);
}

// PATCH values follow the same type rules as a created resource.
#[test]
fn patch_values_of_the_wrong_type_are_refused() {
    for (body, expected) in [
        (ops(json!([{ "op": "replace", "path": "userName", "value": 12345 }])), "'userName' must be a string"),
        (ops(json!([{ "op": "add", "path": "emails", "value": "x" }])), "must be a JSON array"),
        (ops(json!([{ "op": "replace", "value": { "displayName": "a\u{202e}b" } }])), "bidirectional override"),
        (ops(json!([{ "op": "replace", "path": "profileUrl", "value": "javascript:alert(1)" }])), "http or https"),
    ] {
        let e = fail(user(), &bjensen(), body.clone());
        assert_eq!((e.status, e.scim_type), (400, Some(ScimType::InvalidValue)), "{body}: {e}");
        assert!(e.detail.contains(expected), "{body}: {}", e.detail);
    }
}

#[test]
fn paths_are_taken_as_written() {
    for path in [" userName", "userName ", "\tactive", "active\n", " "] {
        let e = fail(user(), &bjensen(), ops(json!([{ "op": "replace", "path": path, "value": "x" }])));
        assert_eq!(e.scim_type, Some(ScimType::InvalidPath), "{path:?}: {e}");
        assert!(e.detail.contains("white space"), "{path:?}: {e}");
    }
    // An empty path is no path (the value is an object of attributes).
    ok(user(), &bjensen(), ops(json!([{ "op": "replace", "path": "", "value": { "active": false } }])));
}

#[test]
fn an_unknown_attribute_is_refused_with_or_without_a_path() {
    let with_path = fail(user(), &bjensen(), ops(json!([{ "op": "replace", "path": "nickNmae", "value": "B" }])));
    let in_map = fail(user(), &bjensen(), ops(json!([{ "op": "replace", "value": { "nickNmae": "B" } }])));
    for e in [&with_path, &in_map] {
        assert_eq!(e.scim_type, Some(ScimType::InvalidPath), "{e}");
        assert!(e.detail.contains("nickNmae"), "{e}");
    }
    // Read-only attributes in a value map are still skipped (Okta sends `id`).
    let out = ok(user(), &bjensen(), ops(json!([{ "op": "replace", "value": { "id": BABS, "active": false } }])));
    assert_eq!(out.resource.get("active"), Some(&json!(false)));
}

#[test]
fn keys_named_twice_in_different_case_are_refused() {
    let e =
        fail(user(), &bjensen(), ops(json!([{ "op": "replace", "path": "userName", "Path": "active", "value": "x" }])));
    assert_eq!(e.scim_type, Some(ScimType::InvalidSyntax), "{e}");
    let e = fail(
        user(),
        &bjensen(),
        json!({ "schemas": [urn::PATCH_OP], "Operations": [], "operations": [{ "op": "remove", "path": "active" }] }),
    );
    assert_eq!(e.scim_type, Some(ScimType::InvalidSyntax), "{e}");
}
