use serde_json::json;

use super::*;
use crate::error::ScimType;
use crate::schema::{group, user};

fn parse(text: &str) -> Filter {
    Filter::parse(text).unwrap_or_else(|e| unreachable!("{text:?} should parse: {e}"))
}

/// RFC 7643 §8.2's full user, in canonical form, plus an enterprise part.
fn bjensen() -> Object {
    let v = json!({
        "id": "2819c223-7f76-453a-919d-413861904646",
        "externalId": "701984",
        "userName": "bjensen@example.com",
        "name": { "formatted": "Ms. Barbara J Jensen, III", "familyName": "Jensen", "givenName": "Barbara" },
        "displayName": "Babs Jensen",
        "title": "Tour Guide",
        "userType": "Employee",
        "active": true,
        "emails": [
            { "value": "bjensen@example.com", "type": "work", "primary": true },
            { "value": "babs@jensen.org", "type": "home" }
        ],
        "ims": [{ "value": "someaimhandle", "type": "aim" }],
        "meta": {
            "resourceType": "User",
            "created": "2010-01-23T04:56:22Z",
            "lastModified": "2011-05-13T04:42:34Z",
            "version": "W/\"3694e05e9dff591\""
        },
        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": { "employeeNumber": "701984", "department": "Tour Operations" }
    });
    v.as_object().cloned().unwrap_or_default()
}

// RFC 7644 §3.4.2.2: every example filter of the section parses, prints in
// canonical form, and the printed form parses back to the same tree.
#[test]
fn rfc7644_3_4_2_2_example_filters_parse_and_round_trip() {
    let examples = [
        r#"userName eq "bjensen""#,
        r#"name.familyName co "O'Malley""#,
        r#"userName sw "J""#,
        r#"urn:ietf:params:scim:schemas:core:2.0:User:userName sw "J""#,
        r#"title pr"#,
        r#"meta.lastModified gt "2011-05-13T04:42:34Z""#,
        r#"meta.lastModified ge "2011-05-13T04:42:34Z""#,
        r#"meta.lastModified lt "2011-05-13T04:42:34Z""#,
        r#"meta.lastModified le "2011-05-13T04:42:34Z""#,
        r#"title pr and userType eq "Employee""#,
        r#"title pr or userType eq "Intern""#,
        r#"schemas eq "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User""#,
        r#"userType eq "Employee" and (emails co "example.com" or emails.value co "example.org")"#,
        r#"userType ne "Employee" and not (emails co "example.com" or emails.value co "example.org")"#,
        r#"userType eq "Employee" and emails.type eq "work""#,
        r#"userType eq "Employee" and emails[type eq "work" and value co "@example.com"]"#,
        r#"emails[type eq "work" and value co "@example.com"] or ims[type eq "xmpp" and value co "@foo.com"]"#,
    ];
    for text in examples {
        let f = parse(text);
        assert_eq!(f.to_string(), text, "canonical print of {text}");
        assert_eq!(parse(&f.to_string()), f);
        f.validate(user()).unwrap_or_else(|e| unreachable!("{text} should validate: {e}"));
    }
}

// §3.4.2.2: "Attribute names and attribute operators used in filters are
// case insensitive."
#[test]
fn operators_keywords_and_names_are_case_insensitive() {
    let f = parse(r#"USERNAME EQ "x" AND Title PR OR NOT (active Eq TRUE)"#);
    assert_eq!(f.to_string(), r#"USERNAME eq "x" and Title pr or not (active eq true)"#);
    assert!(parse(r#"UserName Eq "bjensen@example.com""#).matches(user(), &bjensen()));
}

// §3.4.2.2 table 5: precedence not > and > or; and / or associate left.
#[test]
fn precedence_and_grouping() {
    let a = || Box::new(parse("a pr"));
    let b = || Box::new(parse("b pr"));
    let c = || Box::new(parse("c pr"));
    assert_eq!(parse("a pr or b pr and c pr"), Filter::Or(a(), Box::new(Filter::And(b(), c()))));
    assert_eq!(parse("a pr and b pr or c pr"), Filter::Or(Box::new(Filter::And(a(), b())), c()));
    assert_eq!(parse("(a pr or b pr) and c pr"), Filter::And(Box::new(Filter::Or(a(), b())), c()));
    assert_eq!(parse("a pr or (b pr or c pr)").to_string(), "a pr or (b pr or c pr)");
    assert_eq!(parse("a pr or b pr or c pr").to_string(), "a pr or b pr or c pr");
    assert_eq!(parse("not (a pr) and b pr"), Filter::And(Box::new(Filter::Not(a())), b()));
    assert_eq!(parse("((a pr))"), *a());
    assert_eq!(parse("  a pr   and    b pr  "), Filter::And(a(), b()));
}

// §3.4.2.2 "compValue": strings are JSON strings (escapes per RFC 8259),
// numbers are JSON numbers, and true / false / null.
#[test]
fn literals() {
    let value_of = |text: &str| match parse(text) {
        Filter::Compare { value, .. } => value,
        other => unreachable!("{other:?}"),
    };
    assert_eq!(value_of(r#"a eq "q\"uo\\te""#), CompValue::Str("q\"uo\\te".into()));
    assert_eq!(value_of(r#"a eq "\u00e9t\u00e9 \ud83d\ude00""#), CompValue::Str("été 😀".into()));
    assert_eq!(value_of(r#"a eq "tab\there""#), CompValue::Str("tab\there".into()));
    assert_eq!(value_of("a eq 42"), CompValue::Num(42.into()));
    assert_eq!(value_of("a eq -1.5e3"), CompValue::Num(Number::from_f64(-1500.0).unwrap_or_else(|| 0.into())));
    assert_eq!(value_of("a eq true"), CompValue::Bool(true));
    assert_eq!(value_of("a eq False"), CompValue::Bool(false));
    assert_eq!(value_of("a eq null"), CompValue::Null);
    assert_eq!(value_of(r#"a eq "2011-05-13T04:42:34Z""#), CompValue::Str("2011-05-13T04:42:34Z".into()));
}

// Every rejection is invalidFilter (§3.4.2.2, §3.12) and says where.
#[test]
fn syntax_errors_are_invalid_filter_with_a_position() {
    let cases = [
        ("", "expected an attribute name"),
        ("userName", "expected an operator"),
        ("userName eq", "expected a value"),
        (r#"userName eqq "x""#, "'eqq' is not an operator"),
        ("userName eq bjensen", "strings go in double quotes"),
        (r#"(userName eq "x""#, "expected ')'"),
        (r#"userName eq "x" and"#, "expected an attribute name"),
        (r#"userName eq "x" or )"#, "expected an attribute name"),
        (r#"emails[type eq "work""#, "expected ']'"),
        (r#"emails[type eq "work" and ims[value pr]]"#, "cannot be nested"),
        (r#"userName eq "open"#, "missing its closing"),
        (r#"userName eq "bad \x""#, "invalid string value"),
        ("userName pr extra", "unexpected 'extra'"),
        (r#"1abc eq "x""#, "not a valid attribute name"),
        ("a eq 01", "'01' is not a value"),
        ("a eq +1", "'+1' is not a value"),
        ("a eq 1x", "'1x' is not a value"),
        (r#"not userName eq "x""#, "not an operator"),
        (r#"name.givenName[value pr]"#, "not the sub-attribute"),
        ("a pr and (b pr", "expected ')'"),
        ("a pr]", "unexpected ']'"),
    ];
    for (text, expected) in cases {
        let err = Filter::parse(text).err().unwrap_or_else(|| unreachable!("{text:?} should fail"));
        assert_eq!(err.status, 400, "{text}");
        assert_eq!(err.scim_type, Some(ScimType::InvalidFilter), "{text}");
        assert!(err.detail.contains(expected), "{text:?}: {:?} lacks {expected:?}", err.detail);
        assert!(err.detail.contains("at character"), "{text:?}: {:?} gives no position", err.detail);
    }
    let err = Filter::parse(r#"userName eq "x" and title eq 12x"#).err().map(|e| e.detail);
    assert_eq!(err.as_deref(), Some("'12x' is not a value; strings go in double quotes at character 30 of the filter"));
}

#[test]
fn length_and_depth_are_bounded() {
    let long = format!(r#"userName eq "{}""#, "x".repeat(MAX_FILTER_LEN));
    assert!(Filter::parse(&long).err().is_some_and(|e| e.detail.contains("bytes long")));
    let deep = format!("{}a pr{}", "(".repeat(MAX_FILTER_DEPTH + 1), ")".repeat(MAX_FILTER_DEPTH + 1));
    assert!(Filter::parse(&deep).err().is_some_and(|e| e.detail.contains("nesting deeper")));
    let ok = format!("{}a pr{}", "(".repeat(MAX_FILTER_DEPTH), ")".repeat(MAX_FILTER_DEPTH));
    assert!(Filter::parse(&ok).is_ok());
    let nots = format!("{}a pr{}", "not (".repeat(MAX_FILTER_DEPTH + 1), ")".repeat(MAX_FILTER_DEPTH + 1));
    assert!(Filter::parse(&nots).is_err());
    // A long flat chain is not nesting: it parses without recursion.
    let flat = vec!["a pr"; 400].join(" or ");
    assert!(Filter::parse(&flat).is_ok());
}

// §3.4.2.2: semantic checks need the schema.
#[test]
fn validation_against_the_schema() {
    let cases = [
        (r#"nope eq "x""#, "unknown attribute 'nope'"),
        (r#"name.nope eq "x""#, "unknown attribute"),
        ("active gt true", "only compares with eq or ne"),
        (r#"active eq "maybe""#, "compares with true or false"),
        (r#"meta.created gt "yesterday""#, "RFC 3339"),
        (r#"name eq "x""#, "through one of its sub-attributes"),
        ("userName eq 5", "compares with a string"),
        ("userName gt null", "null only compares with eq or ne"),
        (r#"userName[value eq "x"]"#, "not a complex attribute"),
        (r#"emails[nope eq "x"]"#, "unknown attribute 'nope'"),
        (r#"emails[value.x eq "x"]"#, "must name a sub-attribute"),
        (r#"x509Certificates.value gt "x""#, "binary attribute cannot be ordered"),
        (r#"urn:example:unknown:User:name eq "x""#, "unknown attribute"),
    ];
    for (text, expected) in cases {
        let err = parse(text).validate(user()).err().unwrap_or_else(|| unreachable!("{text:?} should be refused"));
        assert_eq!(err.scim_type, Some(ScimType::InvalidFilter), "{text}");
        assert!(err.detail.contains(expected), "{text:?}: {:?} lacks {expected:?}", err.detail);
    }
    for ok in [
        r#"active eq "True""#,
        "active eq false",
        r#"emails[value pr]"#,
        r#"meta.created gt "2011-05-13T04:42:34Z""#,
        r#"userName eq null"#,
        r#"employeeNumber eq "701984""#,
    ] {
        assert!(parse(ok).validate(user()).is_ok(), "{ok}");
    }
    assert!(Filter::parse_for(r#"members[value eq "x"]"#, group()).is_ok());
    assert!(Filter::parse_for(r#"userName eq "x""#, group()).is_err());
}

// §3.4.2.2 table 3 (operators) and the matching rules: caseExact,
// multi-valued "any value", complex compared through "value", dateTime
// compared as time, pr on empty values.
#[test]
fn evaluation_of_every_operator() {
    let u = bjensen();
    let cases: &[(&str, bool)] = &[
        // eq / ne, caseExact false for userName, true for id and externalId
        (r#"userName eq "BJENSEN@example.com""#, true),
        (r#"userName eq "bjensen""#, false),
        (r#"userName ne "bjensen""#, true),
        (r#"userName ne "BJensen@Example.com""#, false),
        (r#"id eq "2819C223-7F76-453A-919D-413861904646""#, false),
        (r#"id eq "2819c223-7f76-453a-919d-413861904646""#, true),
        (r#"externalId eq "701984""#, true),
        // co / sw / ew
        (r#"name.familyName co "ENS""#, true),
        (r#"name.familyName co "x""#, false),
        (r#"userName sw "BJ""#, true),
        (r#"userName sw "jensen""#, false),
        (r#"userName ew "@EXAMPLE.com""#, true),
        (r#"userName ew "example""#, false),
        // gt / ge / lt / le on strings (lexical) and dateTime (chronological)
        (r#"title gt "Tour""#, true),
        (r#"title lt "Tour""#, false),
        (r#"title ge "tour guide""#, true),
        (r#"title le "TOUR GUIDE""#, true),
        (r#"meta.lastModified gt "2011-05-13T04:42:33Z""#, true),
        (r#"meta.lastModified gt "2011-05-13T04:42:34Z""#, false),
        (r#"meta.lastModified ge "2011-05-13T04:42:34Z""#, true),
        (r#"meta.lastModified lt "2011-05-13T05:42:34+01:00""#, false),
        (r#"meta.lastModified le "2011-05-13T05:42:34+01:00""#, true),
        (r#"meta.lastModified lt "2012-01-01T00:00:00Z""#, true),
        // pr
        ("title pr", true),
        ("nickName pr", false),
        ("emails pr", true),
        ("name pr", true),
        // booleans, also given as strings
        ("active eq true", true),
        ("active eq false", false),
        (r#"active eq "True""#, true),
        ("active ne false", true),
        // multi-valued: any value; complex compared through "value"
        (r#"emails co "jensen.org""#, true),
        (r#"emails.value co "example.org""#, false),
        (r#"emails.type eq "home""#, true),
        (r#"emails.type eq "other""#, false),
        // value paths
        (r#"emails[type eq "work" and value co "@example.com"]"#, true),
        (r#"emails[type eq "home" and value co "@example.com"]"#, false),
        (r#"emails[primary eq true]"#, true),
        (r#"emails[type eq "work"] and ims[type eq "aim"]"#, true),
        (r#"emails[type eq "work" and value co "@example.com"] or ims[type eq "xmpp" and value co "@foo.com"]"#, true),
        // logic
        (r#"title pr and userType eq "Employee""#, true),
        (r#"title pr and userType eq "Intern""#, false),
        (r#"nickName pr or userType eq "Employee""#, true),
        (r#"userType ne "Employee" and not (emails co "example.com" or emails.value co "example.org")"#, false),
        (r#"not (userType eq "Intern")"#, true),
        // null
        ("nickName eq null", true),
        ("title eq null", false),
        ("title ne null", true),
        ("nickName ne null", false),
        // absent attributes: eq fails, ne holds
        (r#"nickName eq "x""#, false),
        (r#"nickName ne "x""#, true),
        // extensions, qualified and not
        (r#"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber eq "701984""#, true),
        (r#"department sw "tour""#, true),
        (r#"schemas eq "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User""#, true),
        (r#"schemas eq "urn:lockstep:params:scim:schemas:extension:directory:2.0:User""#, false),
        (r#"urn:ietf:params:scim:schemas:core:2.0:User:userName sw "b""#, true),
    ];
    for (text, expected) in cases {
        let f = Filter::parse_for(text, user()).unwrap_or_else(|e| unreachable!("{text}: {e}"));
        assert_eq!(f.matches(user(), &u), *expected, "{text}");
    }
}

#[test]
fn unicode_case_folding_for_case_insensitive_attributes() {
    let mut u = bjensen();
    u.insert("displayName".into(), json!("ÅSA Ölund"));
    assert!(parse(r#"displayName eq "åsa ölund""#).matches(user(), &u));
    assert!(parse(r#"displayName sw "Åsa""#).matches(user(), &u));
}

#[test]
fn numbers_compare_numerically() {
    let def = crate::schema::AttributeDef::new("n", AttrType::Integer, "");
    let n = |i: i64| CompValue::Num(i.into());
    assert!(compare(&def, &json!(10), CompareOp::Gt, &n(9)));
    assert!(!compare(&def, &json!(10), CompareOp::Gt, &n(10)));
    assert!(compare(&def, &json!(10), CompareOp::Ge, &n(10)));
    assert!(compare(&def, &json!(10), CompareOp::Lt, &n(11)));
    assert!(compare(&def, &json!(10), CompareOp::Le, &n(10)));
    assert!(compare(&def, &json!(10), CompareOp::Eq, &n(10)));
    let dec = crate::schema::AttributeDef::new("d", AttrType::Decimal, "");
    let half = CompValue::Num(Number::from_f64(0.5).unwrap_or_else(|| 0.into()));
    assert!(compare(&dec, &json!(0.75), CompareOp::Gt, &half));
    assert!(compare(&dec, &json!(0), CompareOp::Lt, &half));
    // A number never equals a string, whatever it spells.
    assert!(!compare(&def, &json!("10"), CompareOp::Eq, &n(10)));
}

// The filters Entra and Okta send to match users and groups are answered
// by key: they come before every create, so they must be exact, fast
// lookups at any tenant size.
#[test]
fn indexed_equalities_are_recognised() {
    let idx = |rt: &ResourceType, text: &str| parse(text).indexed_equality(rt).map(|e| (e.attr, e.value));
    let some = |a: IndexedAttr, v: &str| Some((a, v.to_string()));
    assert_eq!(idx(user(), r#"userName eq "a@b.c""#), some(IndexedAttr::UserName, "a@b.c"));
    assert_eq!(idx(user(), r#"USERNAME EQ "a@b.c""#), some(IndexedAttr::UserName, "a@b.c"));
    assert_eq!(
        idx(user(), r#"urn:ietf:params:scim:schemas:core:2.0:User:userName eq "u""#),
        some(IndexedAttr::UserName, "u")
    );
    assert_eq!(idx(user(), r#"externalId eq "e1""#), some(IndexedAttr::ExternalId, "e1"));
    assert_eq!(idx(user(), r#"id eq "i1""#), some(IndexedAttr::Id, "i1"));
    assert_eq!(idx(user(), r#"userName eq "u" and active eq true"#), some(IndexedAttr::UserName, "u"));
    assert_eq!(idx(user(), r#"active eq true and externalId eq "e""#), some(IndexedAttr::ExternalId, "e"));
    assert_eq!(idx(user(), r#"externalId eq "e" and id eq "i""#), some(IndexedAttr::Id, "i"));
    assert_eq!(idx(group(), r#"displayName eq "Sales""#), some(IndexedAttr::DisplayName, "Sales"));
    assert_eq!(idx(group(), r#"externalId eq "0bd6f1c4""#), some(IndexedAttr::ExternalId, "0bd6f1c4"));
    assert_eq!(idx(group(), r#"members[value eq "u1"]"#), some(IndexedAttr::MemberValue, "u1"));
    assert_eq!(idx(group(), r#"members.value eq "u1""#), some(IndexedAttr::MemberValue, "u1"));
    for text in [
        r#"userName eq "a" or userName eq "b""#,
        r#"userName co "x""#,
        r#"userName ne "x""#,
        r#"not (userName eq "x")"#,
        r#"displayName eq "x""#,
        r#"emails[value eq "x"]"#,
        r#"userName eq 5"#,
        r#"employeeNumber eq "1""#,
    ] {
        assert_eq!(idx(user(), text), None, "{text}");
    }
    assert_eq!(idx(group(), r#"members[value eq "u1" or value eq "u2"]"#), None);
}

// RFC 7643 §4.1 makes `password` returned "never". A filter that could test
// it would reveal it one character at a time (`password sw "S"`), so no
// filter may name it, alone, combined with an indexed term, or qualified.
#[test]
fn never_returned_attributes_cannot_be_filtered_on() {
    for text in [
        r#"password sw "S""#,
        r#"userName eq "alice" and password sw "S""#,
        r#"password pr"#,
        r#"PASSWORD eq "x""#,
        r#"urn:ietf:params:scim:schemas:core:2.0:User:password eq "x""#,
        r#"not (password co "a")"#,
    ] {
        let e = Filter::parse_for(text, user()).err().unwrap_or_else(|| unreachable!("{text} accepted"));
        assert_eq!((e.status, e.scim_type), (400, Some(ScimType::InvalidFilter)), "{text}");
        assert!(e.detail.contains("never returned"), "{text}: {}", e.detail);
    }
    // Even unvalidated, evaluation sees no value there.
    let stored = json!({ "userName": "alice", "password": "S3cret" }).as_object().cloned().unwrap_or_default();
    let f = Filter::parse(r#"password sw "S""#).unwrap_or_else(|e| unreachable!("{e}"));
    assert!(!f.matches(user(), &stored));
    assert!(Filter::parse(r#"password pr"#).is_ok_and(|f| !f.matches(user(), &stored)));
}

// Microsoft Entra ID, matching users on the work email, sends
// `GET /Users?filter=emails[type eq "work"].value eq "a@b.com"`: a value
// path followed by a sub-attribute. It means
// `emails[type eq "work" and value eq "a@b.com"]` (RFC 7644 §3.4.2.2), and
// storage answers it from the work-email index.
#[test]
fn entra_work_email_matching_filter() {
    let entra = Filter::parse_for(r#"emails[type eq "work"].value eq "a@b.com""#, user())
        .unwrap_or_else(|e| unreachable!("{e}"));
    let rfc = Filter::parse(r#"emails[type eq "work" and value eq "a@b.com"]"#).unwrap_or_else(|e| unreachable!("{e}"));
    assert_eq!(entra, rfc);
    let work = json!({ "userName": "x", "emails": [{ "value": "A@B.com", "type": "work" }] });
    let home = json!({ "userName": "x", "emails": [{ "value": "a@b.com", "type": "home" }] });
    let obj = |v: serde_json::Value| v.as_object().cloned().unwrap_or_default();
    assert!(entra.matches(user(), &obj(work)), "emails.value is caseExact false");
    assert!(!entra.matches(user(), &obj(home)), "only a work email matches");
    let eq = entra.indexed_equality(user());
    assert_eq!(eq.map(|e| (e.attr, e.value)), Some((IndexedAttr::WorkEmail, "a@b.com".to_string())));
    let swapped =
        Filter::parse(r#"emails[value eq "a@b.com" and TYPE eq "Work"]"#).unwrap_or_else(|e| unreachable!("{e}"));
    assert_eq!(swapped.indexed_equality(user()).map(|e| e.attr), Some(IndexedAttr::WorkEmail));
    // userName is more selective than a work email.
    let both = Filter::parse(r#"emails[type eq "work"].value eq "a@b.com" and userName eq "u""#)
        .unwrap_or_else(|e| unreachable!("{e}"));
    assert_eq!(both.indexed_equality(user()).map(|e| e.attr), Some(IndexedAttr::UserName));
    for other in [
        r#"emails[type eq "home"].value eq "a@b.com""#,
        r#"emails[type eq "work"].value co "a@""#,
        r#"emails[type eq "work" or value eq "a@b.com"]"#,
    ] {
        let f = Filter::parse(other).unwrap_or_else(|e| unreachable!("{other}: {e}"));
        assert_eq!(f.indexed_equality(user()), None, "{other}");
    }
    for bad in [r#"emails[type eq "work"]."#, r#"emails[type eq "work"].value"#, r#"emails[type eq "work"].a.b eq "x""#]
    {
        assert!(Filter::parse_for(bad, user()).is_err(), "{bad}");
    }
    assert!(Filter::parse_for(r#"emails[type eq "work"].nope eq "x""#, user()).is_err());
    assert!(Filter::parse_for(r#"emails[type eq "work"].value pr"#, user()).is_ok());
}
