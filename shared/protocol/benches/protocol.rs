//! Protocol hot paths: filter parse + evaluate (the lookups Entra and Okta
//! make on every sync), a 100-member group PATCH, and a full user through
//! validation and rendering. Results: docs/PERFORMANCE.md.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use scim_protocol::schema::{group, user};
use scim_protocol::{Filter, PatchRequest, Projection, apply_patch, parse_resource, render};
use serde_json::{Value, json};

fn full_user_body() -> Value {
    json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User", "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"],
        "externalId": "701984",
        "userName": "bjensen@example.com",
        "name": { "formatted": "Ms. Barbara J Jensen, III", "familyName": "Jensen", "givenName": "Barbara" },
        "displayName": "Babs Jensen",
        "emails": [
            { "value": "bjensen@example.com", "type": "work", "primary": true },
            { "value": "babs@jensen.org", "type": "home" }
        ],
        "phoneNumbers": [{ "value": "555-555-5555", "type": "work" }],
        "title": "Tour Guide",
        "preferredLanguage": "en-US",
        "active": "True",
        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {
            "employeeNumber": "701984", "department": "Tour Operations", "manager": "26118915"
        }
    })
}

fn filters(c: &mut Criterion) {
    let u = parse_resource(user(), &full_user_body()).unwrap_or_default();
    let mut g = c.benchmark_group("filter");
    g.bench_function("parse+evaluate userName eq", |b| {
        b.iter(|| {
            let f = Filter::parse_for(black_box(r#"userName eq "bjensen@example.com""#), user());
            f.is_ok_and(|f| f.matches(user(), &u))
        })
    });
    g.bench_function("parse+evaluate value path", |b| {
        b.iter(|| {
            let f = Filter::parse_for(
                black_box(r#"emails[type eq "work" and value co "@example.com"] and active eq true"#),
                user(),
            );
            f.is_ok_and(|f| f.matches(user(), &u))
        })
    });
    let f = Filter::parse_for(r#"emails[type eq "work" and value co "@example.com"] and active eq true"#, user());
    if let Ok(f) = f {
        g.bench_function("evaluate value path (parsed once)", |b| b.iter(|| f.matches(user(), black_box(&u))));
    }
    g.bench_function("parse+indexed_equality userName eq", |b| {
        b.iter(|| {
            Filter::parse(black_box(r#"userName eq "bjensen@example.com""#))
                .ok()
                .and_then(|f| f.indexed_equality(user()))
        })
    });
    g.finish();
}

fn patches(c: &mut Criterion) {
    let members: Vec<Value> =
        (0..100).map(|i| json!({ "value": format!("7f3e2a10-0000-4000-8000-{i:012}") })).collect();
    let body = json!({
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{ "op": "Add", "path": "members", "value": members }]
    });
    let text = body.to_string();
    let grp = parse_resource(group(), &json!({ "displayName": "Tour Guides", "externalId": "e1" })).unwrap_or_default();
    let u = parse_resource(user(), &full_user_body()).unwrap_or_default();
    let entra = json!({
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [
            { "op": "Replace", "path": "emails[type eq \"work\"].value", "value": "new@example.com" },
            { "op": "Replace", "path": "name.familyName", "value": "Jensen-Smith" },
            { "op": "Replace", "path": "active", "value": "False" }
        ]
    })
    .to_string();
    let mut g = c.benchmark_group("patch");
    g.bench_function("100-member add (JSON text to member changes)", |b| {
        b.iter(|| {
            let body: Value = serde_json::from_str(black_box(&text)).unwrap_or_default();
            PatchRequest::from_value(body).and_then(|r| apply_patch(group(), &grp, &r)).map(|o| o.members.add.len())
        })
    });
    g.bench_function("Entra user update (3 ops, JSON text to validated user)", |b| {
        b.iter(|| {
            let body: Value = serde_json::from_str(black_box(&entra)).unwrap_or_default();
            PatchRequest::from_value(body).and_then(|r| apply_patch(user(), &u, &r)).map(|o| o.changed)
        })
    });
    g.finish();
}

fn resources(c: &mut Criterion) {
    let body = full_user_body();
    let u = parse_resource(user(), &body).unwrap_or_default();
    let mut g = c.benchmark_group("resource");
    g.bench_function("validate full user", |b| b.iter(|| parse_resource(user(), black_box(&body)).is_ok()));
    g.bench_function("render full user", |b| b.iter(|| render(user(), black_box(&u), &Projection::Default)));
    g.finish();
}

criterion_group!(benches, filters, patches, resources);
criterion_main!(benches);
