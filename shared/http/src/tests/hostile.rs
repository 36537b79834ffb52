//! The hostile-input corpus: malformed and hostile requests for every
//! attribute type, filter, PATCH, paging and header case, generated here
//! and kept in `shared/http/hostile/corpus.jsonl` so that it can also be
//! replayed with curl against a running server.
//!
//! Every request must get a 4xx SCIM error (never a 5xx), within a time
//! bound, and leave the store exactly as it was (no write call at all).
//!
//! After changing the generator: `LOCKSTEP_UPDATE_CORPUS=1 cargo test -p
//! lockstep-http hostile` rewrites the file; the test fails while the file
//! and the generator disagree, so the kept corpus is always the tested one.

use std::time::{Duration, Instant};

use scim_protocol::schema::{AttrType, AttributeDef, ResourceType};
use serde::{Deserialize, Serialize};

use super::*;

const USER: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
const GROUP: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";
const PATCH_OP: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";
const SEARCH: &str = "urn:ietf:params:scim:api:messages:2.0:SearchRequest";
const BASE: &str = "/acme/scim/v2";

/// The longest any one request may take (a debug build on a loaded
/// 2-core machine; these are refusals and take microseconds in release).
const BOUND: Duration = Duration::from_secs(5);

/// One request of the corpus. `{user}` and `{group}` in the path stand for
/// a user and a group that exist; `token` says which credentials are sent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Case {
    what: String,
    method: String,
    path: String,
    token: Token,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    headers: Vec<(String, String)>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    body: Option<String>,
    /// The refusal comes from a conditional write that fails (a uniqueness
    /// conflict): the write is tried, nothing is written.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    conflict: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Token {
    /// The tenant's own token.
    Valid,
    /// None at all.
    Missing,
    /// A token of another tenant.
    OtherTenant,
    /// A made-up one.
    Wrong,
}

struct Corpus(Vec<Case>);

impl Corpus {
    fn push(&mut self, what: impl Into<String>, method: &str, path: impl Into<String>, body: Option<String>) {
        self.push_with(what, method, path, Token::Valid, Vec::new(), body);
    }

    fn push_with(
        &mut self,
        what: impl Into<String>,
        method: &str,
        path: impl Into<String>,
        token: Token,
        headers: Vec<(&str, &str)>,
        body: Option<String>,
    ) {
        let headers = headers.into_iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        self.0.push(Case {
            what: what.into(),
            method: method.into(),
            path: path.into(),
            token,
            headers,
            body,
            conflict: false,
        });
    }

    fn json(&mut self, what: impl Into<String>, method: &str, path: impl Into<String>, body: Value) {
        self.push(what, method, path, Some(body.to_string()));
    }

    /// A create that a uniqueness conflict refuses.
    fn conflict(&mut self, what: String, endpoint: &str, body: Value) {
        self.json(what, "POST", format!("{BASE}/{endpoint}"), body);
        if let Some(last) = self.0.last_mut() {
            last.conflict = true;
        }
    }

    fn patch(&mut self, what: impl Into<String>, path: &str, ops: Value) {
        self.json(what, "PATCH", path, json!({ "schemas": [PATCH_OP], "Operations": ops }));
    }
}

/// Values of the wrong JSON type (or of the right type but refused) for
/// an attribute of this definition.
fn wrong_values(def: &AttributeDef) -> Vec<Value> {
    let single: Vec<Value> = match def.ty {
        AttrType::String => vec![json!(12345), json!(true), json!({ "a": 1 }), json!("nul\u{0}inside")],
        AttrType::Boolean => vec![json!("yes"), json!(1), json!({ "a": true }), json!("")],
        AttrType::Reference => vec![json!(true), json!("javascript:alert(1)"), json!("data:text/html,x"), json!(7)],
        AttrType::Binary => vec![json!("not base64!"), json!(12), json!(false)],
        AttrType::DateTime => vec![json!("yesterday"), json!(1_700_000_000), json!("2024-13-45T99:99:99Z")],
        AttrType::Integer => vec![json!("12"), json!(1.5), json!(true)],
        AttrType::Decimal => vec![json!("1.5"), json!(true)],
        AttrType::Complex if def.sub("value").is_some() && !def.multi_valued => vec![json!(5), json!(true)],
        AttrType::Complex => vec![json!(5), json!(true), json!("text")],
    };
    if !def.multi_valued {
        let mut v = single;
        v.push(json!(["an", "array"]));
        return v;
    }
    let mut v: Vec<Value> = single.into_iter().map(|x| json!([x])).collect();
    v.push(json!("not an array"));
    v.push(json!([["nested"]]));
    if def.is_complex() {
        v.push(json!({ "value": "an object, not an array" }));
        if def.sub("primary").is_some() {
            v.push(json!([{ "value": "a", "primary": true }, { "value": "b", "primary": true }]));
        }
    }
    v
}

fn writable(def: &AttributeDef) -> bool {
    !def.is_read_only() && !def.is_never_returned()
}

/// A valid resource with one attribute set to `value`.
fn with_attribute(rt: &ResourceType, schema: &str, extension: bool, name: &str, value: Value, n: usize) -> Value {
    let mut body = if rt.id == "User" {
        json!({ "schemas": [USER], "userName": format!("hostile-{n}@example.com") })
    } else {
        json!({ "schemas": [GROUP], "displayName": format!("hostile-{n}") })
    };
    if extension {
        body[schema] = json!({ name: value });
        if let Some(list) = body["schemas"].as_array_mut() {
            list.push(json!(schema));
        }
    } else {
        body[name] = value;
    }
    body
}

fn attribute_cases(c: &mut Corpus) {
    let mut n = 0;
    for rt in scim_protocol::schema::resource_types() {
        let endpoint = format!("{BASE}{}", rt.endpoint);
        for schema in rt.schemas() {
            let extension = schema.id != rt.core.id;
            for attr in schema.attributes.iter().filter(|a| writable(a)) {
                if rt.id == "Group" && attr.name == "members" {
                    continue; // membership shapes are their own cases below
                }
                for bad in wrong_values(attr) {
                    n += 1;
                    let body = with_attribute(rt, schema.id, extension, attr.name, bad.clone(), n);
                    c.json(format!("{} {} = {bad}", rt.name, attr.name), "POST", &endpoint, body);
                }
                for sub in attr.sub_attributes.iter().filter(|s| writable(s) && s.ty != AttrType::Complex) {
                    for bad in wrong_values(sub).into_iter().take(2) {
                        n += 1;
                        let element = json!({ sub.name: bad });
                        let value = if attr.multi_valued { json!([element]) } else { element };
                        let body = with_attribute(rt, schema.id, extension, attr.name, value, n);
                        c.json(format!("{} {}.{} = {bad}", rt.name, attr.name, sub.name), "POST", &endpoint, body);
                    }
                }
            }
        }
    }
    // Characters that make look-alikes or break logs, in identifiers and names.
    for bad in [
        "\u{0}",
        "\r\n",
        "\u{7}",
        "\u{1b}[2J",
        "\u{202e}",
        "\u{2066}",
        "\u{200b}",
        "\u{2060}",
        "\u{feff}",
        "\u{ad}",
        "\u{85}",
    ] {
        let escaped = format!("{bad:?}");
        c.json(
            format!("userName with {escaped}"),
            "POST",
            format!("{BASE}/Users"),
            json!({ "schemas": [USER], "userName": format!("ad{bad}min@example.com") }),
        );
        c.json(
            format!("user displayName with {escaped}"),
            "POST",
            format!("{BASE}/Users"),
            json!({ "schemas": [USER], "userName": "names@example.com", "displayName": format!("Ad{bad}min") }),
        );
        c.json(
            format!("group displayName with {escaped}"),
            "POST",
            format!("{BASE}/Groups"),
            json!({ "schemas": [GROUP], "displayName": format!("Ops{bad}") }),
        );
        c.json(
            format!("externalId with {escaped}"),
            "POST",
            format!("{BASE}/Users"),
            json!({ "schemas": [USER], "userName": "ext@example.com", "externalId": format!("e{bad}1") }),
        );
    }
    for (what, body) in [
        ("userName only spaces", json!({ "schemas": [USER], "userName": "   " })),
        ("userName missing", json!({ "schemas": [USER], "displayName": "x" })),
        ("userName null", json!({ "schemas": [USER], "userName": null })),
        ("userName twice, two spellings", json!({ "schemas": [USER], "userName": "a@b.c", "USERNAME": "d@e.f" })),
        ("userName edge space", json!({ "schemas": [USER], "userName": " a@b.c" })),
        ("userName NBSP", json!({ "schemas": [USER], "userName": "a\u{a0}b@c.d" })),
        ("userName too long", json!({ "schemas": [USER], "userName": "a".repeat(2000) })),
        ("unknown schema", json!({ "schemas": [USER, "urn:evil:schema"], "userName": "a@b.c" })),
        (
            "schemas without core",
            json!({ "schemas": ["urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"], "userName": "a@b.c" }),
        ),
        ("schemas a string", json!({ "schemas": USER, "userName": "a@b.c" })),
        ("schemas of numbers", json!({ "schemas": [1, 2], "userName": "a@b.c" })),
        ("group schema on a user", json!({ "schemas": [GROUP], "userName": "a@b.c" })),
        (
            "extension not an object",
            json!({ "schemas": [USER], "userName": "a@b.c", "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": "x" }),
        ),
    ] {
        c.json(what, "POST", format!("{BASE}/Users"), body);
    }
    for (what, members) in [
        ("members a string", json!("x")),
        ("members of numbers", json!([5])),
        ("member without value", json!([{ "type": "User" }])),
        ("member with empty value", json!([{ "value": "" }])),
        ("member of an unknown type", json!([{ "value": "{user}", "type": "Robot" }])),
        ("member that does not exist", json!([{ "value": "00000000-0000-4000-8000-000000000000" }])),
        ("member id of 5000 bytes", json!([{ "value": "m".repeat(5000) }])),
        ("member with a control character", json!([{ "value": "a\u{0}b" }])),
    ] {
        let body = json!({ "schemas": [GROUP], "displayName": format!("members {what}"), "members": members });
        c.json(format!("group {what}"), "POST", format!("{BASE}/Groups"), body);
    }
}

fn filter_cases(c: &mut Corpus) {
    let long = format!("userName eq \"{}\"", "a".repeat(5000));
    let deep = format!("{}userName eq \"x\"{}", "(".repeat(100), ")".repeat(100));
    let deep_not = format!("{}userName eq \"x\"{}", "not (".repeat(40), ")".repeat(40));
    let many_or = vec!["userName eq \"x\""; 600].join(" or ");
    let filters: Vec<(&str, String)> = vec![
        ("password sw", r#"password sw "S""#.into()),
        ("password beside an index", r#"userName eq "x" and password sw "S""#.into()),
        ("password pr", "password pr".into()),
        ("password qualified", r#"urn:ietf:params:scim:schemas:core:2.0:User:password eq "x""#.into()),
        ("password under not", r#"not (password co "a")"#.into()),
        ("unbalanced parenthesis", r#"(userName eq "x""#.into()),
        ("extra parenthesis", r#"userName eq "x")"#.into()),
        ("unterminated string", r#"userName eq "x"#.into()),
        ("unknown operator", r#"userName like "x""#.into()),
        ("missing value", "userName eq".into()),
        ("missing operator", r#"userName "x""#.into()),
        ("only a keyword", "and".into()),
        ("dangling and", r#"userName eq "x" and"#.into()),
        ("unknown attribute", r#"shoeSize eq "x""#.into()),
        ("unknown sub-attribute", r#"name.shoeSize eq "x""#.into()),
        ("unknown schema", r#"urn:evil:x:userName eq "x""#.into()),
        ("boolean ordered", "active gt true".into()),
        ("boolean against a number", "active eq 1".into()),
        ("string against a number", "userName eq 5".into()),
        ("string against a boolean", "userName eq true".into()),
        ("dateTime against junk", r#"meta.lastModified gt "yesterday""#.into()),
        ("null ordered", "userName gt null".into()),
        ("complex compared whole", r#"name eq "x""#.into()),
        ("value path on a simple attribute", r#"userName[value eq "x"]"#.into()),
        ("nested value path", r#"emails[type eq "work" and addresses[type eq "x"]]"#.into()),
        ("unterminated value path", r#"emails[type eq "work""#.into()),
        ("empty value path", "emails[]".into()),
        ("empty parentheses", "()".into()),
        ("bad escape", r#"userName eq "\q""#.into()),
        ("bad unicode escape", r#"userName eq "\uZZZZ""#.into()),
        ("number overflow", "meta.version gt 1e999999".into()),
        ("control character", "userName eq \"a\u{1}\"".into()),
        ("NUL", "userName\u{0} eq \"x\"".into()),
        ("too long", long),
        ("too deep", deep),
        ("too deep not", deep_not),
        ("many or", many_or),
        ("injection attempt", r#"userName eq "x" or 1 eq 1"#.into()),
        ("sql-like comment", r#"userName eq "x" --"#.into()),
        ("json in filter", r#"{"userName": "x"}"#.into()),
        ("pr with value", r#"userName pr "x""#.into()),
        ("double operator", r#"userName eq eq "x""#.into()),
        ("sub-attribute path in value path", r#"emails[name.givenName eq "x"]"#.into()),
        ("member filter with sub path", r#"members[value.x eq "y"]"#.into()),
        ("trailing dot", r#"name. eq "x""#.into()),
        ("leading dot", r#".name eq "x""#.into()),
        ("urn alone", "urn:ietf:params:scim:schemas:core:2.0:User eq \"x\"".into()),
    ];
    for (what, f) in &filters {
        let q = serde_urlencoded::to_string([("filter", f.as_str())]).unwrap_or_default();
        c.push(format!("GET filter: {what}"), "GET", format!("{BASE}/Users?{q}"), None);
        let body = json!({ "schemas": [SEARCH], "filter": f });
        c.json(format!(".search filter: {what}"), "POST", format!("{BASE}/Users/.search"), body);
    }
    for (what, f) in
        [("group filter on a user attribute", r#"userName eq "x""#), ("members pr with value", r#"members pr "x""#)]
    {
        let q = serde_urlencoded::to_string([("filter", f)]).unwrap_or_default();
        c.push(what, "GET", format!("{BASE}/Groups?{q}"), None);
    }
    c.json(
        "root .search with password",
        "POST",
        format!("{BASE}/.search"),
        json!({ "schemas": [SEARCH], "filter": "password pr" }),
    );
    c.json(
        "root .search with a filter no type knows",
        "POST",
        format!("{BASE}/.search"),
        json!({ "schemas": [SEARCH], "filter": "nope eq 1" }),
    );
}

fn paging_cases(c: &mut Corpus) {
    for q in [
        "count=abc",
        "count=1.5",
        "count=99999999999999999999999",
        "startIndex=abc",
        "startIndex=1e3",
        "startIndex=99999999999999999999999",
        "cursor=garbage",
        "cursor=AAAA",
        "cursor=%00%01",
        "cursor=&startIndex=2",
        "cursor=abc&startIndex=1",
        "attributes=emails[",
        "attributes=a..b",
        "excludedAttributes=%22",
        "filter=userName%20eq%20%22x%22&filter=password%20pr",
    ] {
        c.push(format!("GET /Users?{q}"), "GET", format!("{BASE}/Users?{q}"), None);
    }
    for body in [
        json!({ "schemas": [SEARCH], "count": "ten" }),
        json!({ "schemas": [SEARCH], "startIndex": -5.5 }),
        json!({ "schemas": [SEARCH], "startIndex": "1" }),
        json!({ "schemas": [SEARCH], "cursor": 5 }),
        json!({ "schemas": [SEARCH], "attributes": "emails" }),
        json!({ "schemas": [SEARCH], "attributes": [5] }),
        json!({ "schemas": [SEARCH], "filter": 5 }),
        json!({ "schemas": ["urn:evil"], "filter": "userName pr" }),
        json!([]),
    ] {
        c.json(format!(".search paging {body}"), "POST", format!("{BASE}/Users/.search"), body);
    }
    c.json(
        "root .search with a cursor",
        "POST",
        format!("{BASE}/.search"),
        json!({ "schemas": [SEARCH], "cursor": "" }),
    );
}

fn patch_cases(c: &mut Corpus) {
    let user = format!("{BASE}/Users/{{user}}");
    let group = format!("{BASE}/Groups/{{group}}");
    let replace = json!({ "op": "replace", "path": "displayName", "value": "x" });
    c.patch("1001 operations", &user, Value::Array(vec![replace; 1001]));
    for (what, ops) in [
        ("no operations", json!([])),
        ("operations not an array", json!({ "op": "add" })),
        ("operation not an object", json!(["add"])),
        ("op move", json!([{ "op": "move", "path": "displayName", "value": "x" }])),
        ("op missing", json!([{ "path": "displayName", "value": "x" }])),
        ("op a number", json!([{ "op": 1, "path": "displayName", "value": "x" }])),
        ("add without value", json!([{ "op": "add", "path": "displayName" }])),
        ("remove without path", json!([{ "op": "remove" }])),
        ("path a number", json!([{ "op": "replace", "path": 5, "value": "x" }])),
        ("path unknown", json!([{ "op": "replace", "path": "shoeSize", "value": "x" }])),
        ("path malformed", json!([{ "op": "replace", "path": "emails[type eq", "value": "x" }])),
        ("path filter with password", json!([{ "op": "remove", "path": "emails[password eq \"x\"]" }])),
        ("path to id", json!([{ "op": "replace", "path": "id", "value": "x" }])),
        ("path to meta", json!([{ "op": "replace", "path": "meta.created", "value": "2020-01-01T00:00:00Z" }])),
        ("path to groups", json!([{ "op": "add", "path": "groups", "value": [{ "value": "x" }] }])),
        ("userName a number", json!([{ "op": "replace", "path": "userName", "value": 12345 }])),
        ("userName removed", json!([{ "op": "remove", "path": "userName" }])),
        ("userName with a bidi override", json!([{ "op": "replace", "path": "userName", "value": "x\u{202e}" }])),
        ("active yes", json!([{ "op": "replace", "path": "active", "value": "yes" }])),
        ("emails a string", json!([{ "op": "add", "path": "emails", "value": "x" }])),
        (
            "emails two primaries",
            json!([{ "op": "add", "path": "emails", "value": [{ "value": "a", "primary": true }, { "value": "b", "primary": true }] }]),
        ),
        ("value map not an object", json!([{ "op": "replace", "value": "x" }])),
        ("value map with a bad type", json!([{ "op": "replace", "value": { "active": "maybe" } }])),
        ("value map with a bad path key", json!([{ "op": "replace", "value": { "emails[type eq": "x" } }])),
        (
            "extension value not an object",
            json!([{ "op": "replace", "path": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User", "value": 5 }]),
        ),
        (
            "filter on a whole extension",
            json!([{ "op": "replace", "path": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User[x eq 1]", "value": 5 }]),
        ),
        ("profileUrl javascript", json!([{ "op": "replace", "path": "profileUrl", "value": "javascript:alert(1)" }])),
        (
            "sub-attribute of an unknown",
            json!([{ "op": "replace", "path": "emails[type eq \"work\"].shoe", "value": "x" }]),
        ),
    ] {
        c.patch(format!("user PATCH: {what}"), &user, ops);
    }
    for (what, ops) in [
        (
            "add unknown member",
            json!([{ "op": "add", "path": "members", "value": [{ "value": "00000000-0000-4000-8000-000000000000" }] }]),
        ),
        ("add member without value", json!([{ "op": "add", "path": "members", "value": [{ "display": "x" }] }])),
        ("add itself", json!([{ "op": "add", "path": "members", "value": [{ "value": "{group}" }] }])),
        (
            "add a member of 5000 bytes",
            json!([{ "op": "add", "path": "members", "value": [{ "value": "m".repeat(5000) }] }]),
        ),
        ("remove by a filter on display", json!([{ "op": "remove", "path": "members[display eq \"x\"]" }])),
        (
            "remove by a filter with and",
            json!([{ "op": "remove", "path": "members[value eq \"a\" and type eq \"User\"]" }]),
        ),
        ("displayName a number", json!([{ "op": "replace", "path": "displayName", "value": 5 }])),
        ("displayName removed", json!([{ "op": "remove", "path": "displayName" }])),
        (
            "member type Robot",
            json!([{ "op": "add", "path": "members", "value": [{ "value": "{user}", "type": "Robot" }] }]),
        ),
    ] {
        c.patch(format!("group PATCH: {what}"), &group, ops);
    }
    c.json(
        "PATCH with a wrong message schema",
        "PATCH",
        &user,
        json!({ "schemas": [USER], "Operations": [{ "op": "remove", "path": "title" }] }),
    );
    c.json("PATCH with no Operations", "PATCH", &user, json!({ "schemas": [PATCH_OP] }));
    c.patch(
        "PATCH an unknown user",
        &format!("{BASE}/Users/00000000-0000-4000-8000-000000000000"),
        json!([{ "op": "remove", "path": "title" }]),
    );
}

fn header_cases(c: &mut Corpus) {
    let users = format!("{BASE}/Users");
    let body = Some(json!({ "schemas": [USER], "userName": "headers@example.com" }).to_string());
    for (what, token, headers) in [
        ("no token", Token::Missing, vec![]),
        ("another tenant's token", Token::OtherTenant, vec![]),
        ("a made-up token", Token::Wrong, vec![]),
    ] {
        c.push_with(format!("GET with {what}"), "GET", &users, token, headers.clone(), None);
        c.push_with(format!("POST with {what}"), "POST", &users, token, headers, body.clone());
    }
    let huge_token = format!("Bearer {}", "t".repeat(10_000));
    for (what, headers) in [
        ("Basic auth", vec![("authorization", "Basic dXNlcjpwYXNz")]),
        ("Bearer without a token", vec![("authorization", "Bearer ")]),
        ("a 10 KB token", vec![("authorization", huge_token.as_str())]),
        ("scheme only", vec![("authorization", "Bearer")]),
    ] {
        c.push_with(format!("GET with {what}"), "GET", &users, Token::Missing, headers, None);
    }
    c.push_with(
        "two Authorization headers",
        "GET",
        &users,
        Token::Valid,
        vec![("authorization", "Bearer lst_other")],
        None,
    );
    for host in ["evil.example/x", "a b", "x:99999", "[zz]", "\"quoted\"", "a@b"] {
        c.push_with(format!("Host {host:?}"), "GET", &users, Token::Valid, vec![("host", host)], None);
    }
    for ct in ["text/plain", "application/xml", "multipart/form-data; boundary=x", "application/x-www-form-urlencoded"]
    {
        c.push_with(format!("POST as {ct}"), "POST", &users, Token::Valid, vec![("content-type", ct)], body.clone());
    }
    let user = format!("{BASE}/Users/{{user}}");
    for etag in ["W/\"999\"", "\"garbage\"", "*x", "W/\"-1\""] {
        c.push_with(
            format!("PUT with If-Match {etag}"),
            "PUT",
            &user,
            Token::Valid,
            vec![("if-match", etag)],
            Some(json!({ "schemas": [USER], "userName": "changed@example.com" }).to_string()),
        );
        c.push_with(
            format!("DELETE with If-Match {etag}"),
            "DELETE",
            &user,
            Token::Valid,
            vec![("if-match", etag)],
            None,
        );
    }
}

fn body_cases(c: &mut Corpus) {
    let users = format!("{BASE}/Users");
    let deep = format!("{}{}", "[".repeat(300), "]".repeat(300));
    let deep_object = format!("{}1{}", "{\"a\":".repeat(300), "}".repeat(300));
    let over_limit = format!("{{\"userName\":\"{}\"}}", "x".repeat(1024 * 1024 + 10));
    for (what, body) in [
        ("empty body", String::new()),
        ("whitespace body", "  \n ".into()),
        ("not JSON", "userName=x".into()),
        ("truncated JSON", "{\"userName\": \"x\"".into()),
        ("JSON array", "[1,2,3]".into()),
        ("JSON string", "\"x\"".into()),
        ("JSON null", "null".into()),
        ("trailing garbage", "{\"userName\":\"x\"} extra".into()),
        ("byte order mark", "\u{feff}{\"userName\":\"x\"}".into()),
        ("invalid UTF-8 escape", "{\"userName\":\"\\ud800\"}".into()),
        ("nested 300 deep", deep),
        ("objects nested 300 deep", deep_object),
        ("number too large", "{\"userName\": 1e999999}".into()),
        ("over the body limit", over_limit),
        ("comments", "{/* c */\"userName\":\"x\"}".into()),
        ("single quotes", "{'userName':'x'}".into()),
    ] {
        c.push(format!("POST {what}"), "POST", &users, Some(body.clone()));
        c.push(format!("PUT {what}"), "PUT", format!("{BASE}/Users/{{user}}"), Some(body.clone()));
        c.push(format!("PATCH {what}"), "PATCH", format!("{BASE}/Users/{{user}}"), Some(body));
    }
}

fn path_cases(c: &mut Corpus) {
    let long_id = "a".repeat(5000);
    for (what, path) in [
        ("an id of 5000 bytes", format!("{BASE}/Users/{long_id}")),
        ("an id with NUL", format!("{BASE}/Users/a%00b")),
        ("an id that is not UTF-8", format!("{BASE}/Users/%ff%fe")),
        ("an id with a newline", format!("{BASE}/Users/a%0d%0aSet-Cookie:x")),
        ("a traversal", format!("{BASE}/Users/..%2f..%2fetc%2fpasswd")),
        ("an unknown id", format!("{BASE}/Users/00000000-0000-4000-8000-000000000000")),
        ("a group id as a user", format!("{BASE}/Users/{{group}}")),
        ("a user id as a group", format!("{BASE}/Groups/{{user}}")),
        ("an unknown endpoint", format!("{BASE}/Robots")),
        ("an unknown schema", format!("{BASE}/Schemas/urn:evil")),
        ("an unknown resource type", format!("{BASE}/ResourceTypes/Robot")),
        ("nothing after the base", "/acme/scim".to_string()),
        ("outside the service", "/etc/passwd".to_string()),
        ("an unknown tenant", "/nosuch/scim/v2/Users".to_string()),
        ("a tenant that is not a tenant id", "/..%2F/scim/v2/Users".to_string()),
    ] {
        c.push(format!("GET {what}"), "GET", &path, None);
        c.push(format!("DELETE {what}"), "DELETE", &path, None);
    }
    c.push("PUT to a collection", "PUT", format!("{BASE}/Users"), Some("{}".into()));
    c.push("DELETE a collection", "DELETE", format!("{BASE}/Users"), None);
    c.push("POST to a resource", "POST", format!("{BASE}/Users/{{user}}"), Some("{}".into()));
    c.push("TRACE", "TRACE", format!("{BASE}/Users"), None);
}

/// Projection bombs: more distinct names than `attributes` and
/// `excludedAttributes` take, by query and by SearchRequest body, on every
/// route that renders resources.
fn projection_cases(c: &mut Corpus) {
    let cap = scim_protocol::MAX_PROJECTION_NAMES;
    type Spelling = fn(usize) -> String;
    let forms: [(&str, Spelling); 4] = [
        ("plain", |i| format!("a{i}")),
        ("dotted", |i| format!("name.x{i}")),
        ("qualified", |i| format!("{USER}:userName{i}")),
        ("value-filtered", |i| format!("emails[type eq \"w{i}\"]")),
    ];
    for (form, name) in forms {
        for n in [cap + 1, 5 * cap] {
            let names: Vec<String> = (0..n).map(name).collect();
            let list = names.join(",");
            for param in ["attributes", "excludedAttributes"] {
                let q = serde_urlencoded::to_string([(param, list.as_str())]).unwrap_or_default();
                // A query holds at most 64 KB: the largest lists go in bodies.
                let routes: &[&str] =
                    if n > 2 * cap { &[] } else { &["Users", "Groups", "Users/{user}", "Groups/{group}"] };
                for route in routes {
                    c.push(
                        format!("{param}: {n} distinct {form} names on {route}"),
                        "GET",
                        format!("{BASE}/{route}?{q}"),
                        None,
                    );
                }
                for route in ["Users/.search", "Groups/.search", ".search"] {
                    let body = json!({ "schemas": [SEARCH], param: names });
                    c.json(
                        format!("{param}: {n} distinct {form} names in a {route} body"),
                        "POST",
                        format!("{BASE}/{route}"),
                        body,
                    );
                }
            }
        }
    }
}

/// A key named twice in one object, at every depth a body has: a lenient
/// reader keeps the last one.
fn duplicate_key_cases(c: &mut Corpus) {
    let users = format!("{BASE}/Users");
    let user = format!("{BASE}/Users/{{user}}");
    let group = format!("{BASE}/Groups/{{group}}");
    for attr in scim_protocol::schema::user().core.attributes.iter().filter(|a| writable(a) && a.name != "userName") {
        let v = if attr.ty == AttrType::Boolean {
            "true"
        } else if attr.multi_valued {
            "[]"
        } else if attr.is_complex() {
            "{}"
        } else {
            "\"x\""
        };
        let body = format!(r#"{{"schemas":["{USER}"],"userName":"dup@example.com","{0}":{v},"{0}":{v}}}"#, attr.name);
        c.push(format!("POST a user naming '{}' twice", attr.name), "POST", &users, Some(body.clone()));
        c.push(format!("PUT a user naming '{}' twice", attr.name), "PUT", &user, Some(body));
    }
    for (what, body) in [
        (
            "userName twice",
            format!(r#"{{"schemas":["{USER}"],"userName":"a@example.com","userName":"b@example.com"}}"#),
        ),
        ("schemas twice", format!(r#"{{"schemas":["{USER}"],"schemas":["{USER}"],"userName":"s@example.com"}}"#)),
        (
            "givenName twice",
            format!(
                r#"{{"schemas":["{USER}"],"userName":"g@example.com","name":{{"givenName":"A","givenName":"B"}}}}"#
            ),
        ),
        (
            "an email's value twice",
            format!(
                r#"{{"schemas":["{USER}"],"userName":"e@example.com","emails":[{{"value":"a@x.io","value":"b@x.io"}}]}}"#
            ),
        ),
        (
            "an escaped twin",
            format!(r#"{{"schemas":["{USER}"],"userName":"a@example.com","user\u004eame":"b@example.com"}}"#),
        ),
        (
            "an extension twice",
            format!(
                r#"{{"schemas":["{USER}"],"userName":"x@example.com","urn:ietf:params:scim:schemas:extension:enterprise:2.0:User":{{"department":"A","department":"B"}}}}"#
            ),
        ),
    ] {
        c.push(format!("POST a user with {what}"), "POST", &users, Some(body));
    }
    for (target, name) in [(&user, "user"), (&group, "group")] {
        for (what, op) in [
            ("path", r#"{"op":"replace","path":"displayName","path":"externalId","value":"x"}"#),
            ("op", r#"{"op":"add","op":"remove","path":"displayName","value":"x"}"#),
            ("value", r#"{"op":"replace","path":"displayName","value":"a","value":"b"}"#),
            ("path in two cases", r#"{"op":"replace","path":"displayName","Path":"externalId","value":"x"}"#),
            ("op in two cases", r#"{"op":"add","OP":"remove","path":"displayName","value":"x"}"#),
            ("a key of the value map", r#"{"op":"replace","value":{"displayName":"a","displayName":"b"}}"#),
        ] {
            let body = format!(r#"{{"schemas":["{PATCH_OP}"],"Operations":[{op}]}}"#);
            c.push(format!("PATCH a {name} with {what} twice in one operation"), "PATCH", target.as_str(), Some(body));
        }
        let body = format!(
            r#"{{"schemas":["{PATCH_OP}"],"Operations":[],"Operations":[{{"op":"remove","path":"displayName"}}]}}"#
        );
        c.push(format!("PATCH a {name} with Operations twice"), "PATCH", target.as_str(), Some(body));
    }
    for (what, body) in [
        ("filter", format!(r#"{{"schemas":["{SEARCH}"],"filter":"userName eq \"a\"","filter":"userName pr"}}"#)),
        ("count", format!(r#"{{"schemas":["{SEARCH}"],"count":1,"count":1000}}"#)),
        ("attributes", format!(r#"{{"schemas":["{SEARCH}"],"attributes":["userName"],"attributes":["password"]}}"#)),
    ] {
        c.push(format!("a SearchRequest with {what} twice"), "POST", format!("{BASE}/Users/.search"), Some(body));
    }
}

/// Content codings this service does not decode, on every route that reads a body.
fn coding_cases(c: &mut Corpus) {
    let targets = [
        ("POST", format!("{BASE}/Users"), json!({ "schemas": [USER], "userName": "coded@example.com" })),
        ("PUT", format!("{BASE}/Users/{{user}}"), json!({ "schemas": [USER], "userName": "coded@example.com" })),
        (
            "PATCH",
            format!("{BASE}/Users/{{user}}"),
            json!({ "schemas": [PATCH_OP], "Operations": [{ "op": "replace", "path": "displayName", "value": "x" }] }),
        ),
        ("POST", format!("{BASE}/Groups"), json!({ "schemas": [GROUP], "displayName": "coded" })),
        ("POST", format!("{BASE}/Users/.search"), json!({ "schemas": [SEARCH] })),
    ];
    for coding in ["gzip", "br", "deflate", "compress", "x-gzip", "zstd", "gzip, identity", "identity, br"] {
        for (method, path, body) in &targets {
            c.push_with(
                format!("{method} {path} with Content-Encoding {coding}"),
                method,
                path.as_str(),
                Token::Valid,
                vec![("content-encoding", coding)],
                Some(body.to_string()),
            );
        }
    }
}

/// Conditional writes whose condition fails: `If-None-Match` naming the
/// current version (or `*`, the resource exists), `If-Match` naming another.
fn conditional_cases(c: &mut Corpus) {
    let user_put = json!({ "schemas": [USER], "userName": "target@example.com", "displayName": "Changed" });
    let group_put = json!({ "schemas": [GROUP], "displayName": "Changed" });
    let rename = json!({ "schemas": [PATCH_OP], "Operations": [{ "op": "replace", "path": "displayName", "value": "Changed" }] });
    for (route, put) in [("Users/{user}", user_put), ("Groups/{group}", group_put)] {
        let path = format!("{BASE}/{route}");
        for (header, value) in [("if-none-match", "*"), ("if-none-match", "W/\"0\", *"), ("if-match", "W/\"999\"")] {
            for (method, body) in
                [("PUT", Some(put.to_string())), ("PATCH", Some(rename.to_string())), ("DELETE", None)]
            {
                c.push_with(
                    format!("{method} {route} with {header}: {value}"),
                    method,
                    path.as_str(),
                    Token::Valid,
                    vec![(header, value)],
                    body,
                );
            }
        }
    }
}

/// Names that only look like the existing user's (`target@example.com`)
/// or group's (`Target`): one key for uniqueness, so each is a conflict.
fn look_alike_cases(c: &mut Corpus) {
    let spellings = [
        ("fullwidth t", "\u{ff54}arget@example.com"),
        ("fullwidth all", "ＴＡＲＧＥＴ@example.com"),
        ("Cyrillic a", "t\u{430}rget@example.com"),
        ("Cyrillic a in the domain", "target@ex\u{430}mple.com"),
        ("upper case", "TARGET@EXAMPLE.COM"),
        ("mathematical t", "\u{1d42d}arget@example.com"),
        ("circled letters", "\u{24e3}arget@example.com"),
        ("fullwidth at", "target\u{ff20}example.com"),
    ];
    for (what, name) in spellings {
        let body = json!({ "schemas": [USER], "userName": name });
        c.conflict(format!("a user named like the existing one ({what})"), "Users", body);
    }
    for (what, name) in [
        ("fullwidth T", "\u{ff34}arget"),
        ("Cyrillic a", "T\u{430}rget"),
        ("upper case", "TARGET"),
        ("Latin alpha", "T\u{251}rget"),
    ] {
        let body = json!({ "schemas": [GROUP], "displayName": name });
        c.conflict(format!("a group named like the existing one ({what})"), "Groups", body);
    }
}

/// PATCH paths with white space around them, and value maps naming
/// attributes the schema does not have: refused alike with and without a path.
fn spelling_cases(c: &mut Corpus) {
    let user = format!("{BASE}/Users/{{user}}");
    let group = format!("{BASE}/Groups/{{group}}");
    for path in [
        " displayName",
        "displayName ",
        "\tdisplayName",
        "displayName\n",
        " name.givenName",
        "emails[type eq \"work\"].value ",
        "\u{a0}active",
        "active\r",
    ] {
        c.patch(format!("a user PATCH path {path:?}"), &user, json!([{ "op": "replace", "path": path, "value": "x" }]));
    }
    for path in [" members", "displayName ", " externalId", "members[value eq \"{user}\"] "] {
        c.patch(format!("a group PATCH path {path:?}"), &group, json!([{ "op": "remove", "path": path }]));
    }
    for key in ["nickNmae", "shoeSize", "urn:example:custom:attr", "name.middle", "emails.kind"] {
        c.patch(format!("a user value map naming '{key}'"), &user, json!([{ "op": "replace", "value": { key: "x" } }]));
        c.patch(format!("a user PATCH path '{key}'"), &user, json!([{ "op": "replace", "path": key, "value": "x" }]));
    }
    let placement = "urn:lockstep:params:scim:schemas:extension:directory:2.0:User";
    for attr in ["unit", "userTypes"] {
        for op in ["add", "replace", "remove"] {
            c.patch(
                format!("a client {op}s the service-owned {attr}"),
                &user,
                json!([{ "op": op, "path": format!("{placement}:{attr}"), "value": "Board" }]),
            );
        }
    }
}

fn corpus() -> Vec<Case> {
    let mut c = Corpus(Vec::new());
    attribute_cases(&mut c);
    filter_cases(&mut c);
    paging_cases(&mut c);
    patch_cases(&mut c);
    header_cases(&mut c);
    body_cases(&mut c);
    path_cases(&mut c);
    projection_cases(&mut c);
    duplicate_key_cases(&mut c);
    coding_cases(&mut c);
    conditional_cases(&mut c);
    look_alike_cases(&mut c);
    spelling_cases(&mut c);
    c.0
}

fn corpus_path() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("hostile").join("corpus.jsonl")
}

fn to_request(case: &Case, f: &Fixture, user: &str, group: &str) -> Request<Body> {
    let path = case.path.replace("{user}", user).replace("{group}", group);
    let mut req = Request::builder().method(case.method.as_str()).uri(path);
    let sets_host = case.headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("host"));
    if !sets_host {
        req = req.header(header::HOST, "scim.test");
    }
    match case.token {
        Token::Valid => req = req.header(header::AUTHORIZATION, format!("Bearer {}", f.token)),
        Token::OtherTenant => req = req.header(header::AUTHORIZATION, format!("Bearer {}", f.other_tenant_token)),
        Token::Wrong => req = req.header(header::AUTHORIZATION, "Bearer lst_0000000000000000000000000000000000000000"),
        Token::Missing => {}
    }
    let sets_type = case.headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("content-type"));
    if case.body.is_some() && !sets_type {
        req = req.header(header::CONTENT_TYPE, "application/scim+json");
    }
    for (k, v) in &case.headers {
        req = req.header(k.as_str(), v.as_str());
    }
    let body = case.body.as_ref().map(|b| b.replace("{user}", user).replace("{group}", group));
    req.body(body.map_or_else(Body::empty, Body::from)).unwrap_or_else(|e| panic!("{}: {e}", case.what))
}

#[tokio::test]
async fn the_hostile_corpus_gets_scim_errors_and_changes_nothing() {
    let generated = corpus();
    let text: String = generated.iter().map(|c| serde_json::to_string(c).unwrap_or_default() + "\n").collect();
    let path = corpus_path();
    if std::env::var_os("LOCKSTEP_UPDATE_CORPUS").is_some() {
        std::fs::create_dir_all(path.parent().unwrap_or(&path)).unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(&path, &text).unwrap_or_else(|e| panic!("{e}"));
    }
    let kept = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(kept == text, "{} differs from the generator: LOCKSTEP_UPDATE_CORPUS=1 rewrites it", path.display());
    let cases: Vec<Case> =
        kept.lines().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}"))).collect();
    assert!(cases.len() >= 500, "the corpus has {} requests", cases.len());

    let f = fixture(Routes::All).await;
    let user = f
        .send(
            Method::POST,
            USERS,
            Some(&f.token.clone()),
            Some(json!({ "schemas": [USER], "userName": "target@example.com" })),
            &[],
        )
        .await;
    let user = user.body["id"].as_str().unwrap_or_else(|| panic!("{:?}", user.body)).to_string();
    let group = f
        .send(
            Method::POST,
            "/acme/scim/v2/Groups",
            Some(&f.token.clone()),
            Some(json!({ "schemas": [GROUP], "displayName": "Target", "members": [{ "value": user }] })),
            &[],
        )
        .await;
    let group = group.body["id"].as_str().unwrap_or_else(|| panic!("{:?}", group.body)).to_string();
    let before =
        (f.get(&format!("{USERS}/{user}")).await.body, f.get(&format!("/acme/scim/v2/Groups/{group}")).await.body);
    f.table.take();
    f.table.take_applied_writes();

    let mut failures = Vec::new();
    let mut slowest = (Duration::ZERO, String::new());
    for case in &cases {
        let started = Instant::now();
        let reply = match tokio::time::timeout(BOUND, f.send_request(to_request(case, &f, &user, &group))).await {
            Ok(r) => r,
            Err(_) => {
                failures.push(format!("{}: no answer within {BOUND:?}", case.what));
                continue;
            }
        };
        let took = started.elapsed();
        if took > slowest.0 {
            slowest = (took, case.what.clone());
        }
        let scim_error = reply.headers.get(header::CONTENT_TYPE).is_some_and(|v| v == "application/scim+json")
            && reply.body["schemas"] == json!(["urn:ietf:params:scim:api:messages:2.0:Error"])
            && reply.body["status"] == json!(reply.status.as_u16().to_string())
            && reply.body["detail"].as_str().is_some_and(|d| !d.is_empty());
        if !reply.status.is_client_error() || !scim_error {
            failures.push(format!("{}: {} {}", case.what, reply.status, reply.body));
        }
        let calls = f.table.take();
        let applied = f.table.take_applied_writes();
        if applied > 0 || (calls.writes() > 0 && !case.conflict) {
            failures.push(format!("{}: {} write calls, {applied} applied", case.what, calls.writes()));
        }
    }
    assert!(failures.is_empty(), "{} of {} requests misbehaved:\n{}", failures.len(), cases.len(), failures.join("\n"));
    let after =
        (f.get(&format!("{USERS}/{user}")).await.body, f.get(&format!("/acme/scim/v2/Groups/{group}")).await.body);
    assert_eq!(before, after, "the user and the group are unchanged");
    let counts = (
        f.get(&format!("{USERS}?count=0")).await.body["totalResults"].clone(),
        f.get("/acme/scim/v2/Groups?count=0").await.body["totalResults"].clone(),
    );
    assert_eq!(counts, (json!(1), json!(1)), "nothing was created");
    eprintln!("{} hostile requests refused; slowest {:?} ({})", cases.len(), slowest.0, slowest.1);
}
