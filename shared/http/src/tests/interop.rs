//! What real identity providers send, request by request as they send it.

use super::*;

const USER: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
const GROUP: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";
const PATCH_OP: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";
const GROUPS: &str = "/acme/scim/v2/Groups";

async fn post(f: &Fixture, uri: &str, body: Value) -> Reply {
    f.send(Method::POST, uri, Some(&f.token.clone()), Some(body), &[]).await
}

fn id_of(r: &Reply) -> String {
    r.body["id"].as_str().unwrap_or_else(|| panic!("no id: {:?}", r.body)).to_string()
}

fn filtered(base: &str, filter: &str) -> String {
    format!("{base}?{}", serde_urlencoded::to_string([("filter", filter)]).unwrap_or_default())
}

// Entra, with the work email as the matching attribute, asks before every
// create: GET /Users?filter=emails[type eq "work"].value eq "a@b.com".
// It is answered from the work-email index: one query and one batch read,
// whatever the tenant's size.
#[tokio::test]
async fn entra_matches_users_on_the_work_email() {
    let f = fixture(Routes::All).await;
    let entra_user = json!({
        "schemas": [USER, "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"],
        "externalId": "0a21f0f2-8d2a-4f8e-bf98-7363c12bed4b",
        "userName": "Test_User_ab6490ee-1e48-479e-a20b-2d77186b5dd1@testuser.com",
        "active": true,
        "emails": [{ "primary": true, "type": "work", "value": "Test_User_fd0ea19b@testuser.com" }],
        "name": { "formatted": "givenName familyName", "familyName": "familyName", "givenName": "givenName" }
    });
    let created = post(&f, USERS, entra_user).await;
    assert_eq!(created.status, StatusCode::CREATED, "{:?}", created.body);
    let home = json!({ "schemas": [USER], "userName": "home@x.io", "emails": [{ "type": "home", "value": "test_user_fd0ea19b@testuser.com" }] });
    assert_eq!(post(&f, USERS, home).await.status, StatusCode::CREATED);

    f.table.take();
    let r = f.get(&filtered(USERS, r#"emails[type eq "work"].value eq "test_user_FD0EA19B@testuser.com""#)).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(r.body["totalResults"], json!(1), "case-insensitive, work emails only: {:?}", r.body);
    assert_eq!(r.body["Resources"][0]["id"], json!(id_of(&created)));
    let calls = f.table.take();
    assert_eq!((calls.query, calls.batch_get, calls.get, calls.writes()), (1, 1, 0, 0), "{calls:?}");

    let r = f.get(&filtered(USERS, r#"emails[type eq "work"].value eq "nobody@testuser.com""#)).await;
    assert_eq!((r.status, r.body["totalResults"].clone()), (StatusCode::OK, json!(0)));

    // The email changes: the old one no longer finds the user.
    let patch = json!({ "schemas": [PATCH_OP], "Operations": [
        { "op": "Replace", "path": "emails[type eq \"work\"].value", "value": "renamed@testuser.com" }
    ] });
    let uri = format!("{USERS}/{}", id_of(&created));
    assert_eq!(f.send(Method::PATCH, &uri, Some(&f.token.clone()), Some(patch), &[]).await.status, StatusCode::OK);
    let old = f.get(&filtered(USERS, r#"emails[type eq "work"].value eq "Test_User_fd0ea19b@testuser.com""#)).await;
    assert_eq!(old.body["totalResults"], json!(0));
    let new = f.get(&filtered(USERS, r#"emails[type eq "work"].value eq "renamed@testuser.com""#)).await;
    assert_eq!(new.body["totalResults"], json!(1));
}

// Clients send /users, /Users/ and /Users/?filter=...: endpoint names are
// matched case-insensitively and one trailing slash is ignored.
#[tokio::test]
async fn endpoint_names_in_any_case_and_with_a_trailing_slash() {
    let f = fixture(Routes::All).await;
    let id = id_of(&post(&f, "/acme/scim/v2/users", json!({ "schemas": [USER], "userName": "case@x.io" })).await);
    for uri in [
        "/acme/scim/v2/users".to_string(),
        "/acme/scim/v2/Users/".to_string(),
        format!(
            "/acme/scim/v2/Users/?{}",
            serde_urlencoded::to_string([("filter", "userName eq \"case@x.io\"")]).unwrap_or_default()
        ),
        format!("/acme/scim/v2/USERS/{id}"),
        format!("/acme/scim/v2/users/{id}/"),
        "/acme/scim/v2/serviceproviderconfig".to_string(),
        "/acme/scim/v2/ServiceProviderConfig/".to_string(),
        "/acme/scim/v2/schemas".to_string(),
        "/acme/scim/v2/resourcetypes/".to_string(),
        "/acme/scim/v2/groups".to_string(),
    ] {
        let r = f.get(&uri).await;
        assert_eq!(r.status, StatusCode::OK, "{uri}: {:?}", r.body);
    }
    let search = json!({ "schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"], "filter": "userName eq \"case@x.io\"" });
    let r = post(&f, "/acme/scim/v2/users/.SEARCH", search).await;
    assert_eq!(r.body["totalResults"], json!(1), "{:?}", r.body);
    let r = f.get("/acme/scim/v2/Users//").await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "only one trailing slash is ignored");
}

// Entra's default user mapping sends mailNickname as externalId, which is
// not unique: two users may share one (RFC 7643 §3.1 gives externalId no
// uniqueness). Lookups by it still find every match.
#[tokio::test]
async fn external_ids_may_repeat() {
    let f = fixture(Routes::All).await;
    for user in ["jsmith@contoso.com", "jsmith@fabrikam.com"] {
        let body = json!({ "schemas": [USER], "externalId": "jsmith", "userName": user, "active": true });
        let r = post(&f, USERS, body).await;
        assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    }
    let r = f.get(&filtered(USERS, r#"externalId eq "jsmith""#)).await;
    assert_eq!(r.body["totalResults"], json!(2), "{:?}", r.body);
    // userName stays unique (RFC 7643 §4.1.1).
    let again = post(&f, USERS, json!({ "schemas": [USER], "userName": "JSMITH@contoso.com" })).await;
    assert_scim_error(&again, 409, Some("uniqueness"));
}

// Entra matches groups by displayName by default: duplicates would make
// its matching ambiguous, so group names are unique unless a tenant says
// otherwise.
#[tokio::test]
async fn group_names_are_unique_by_default() {
    let f = fixture(Routes::All).await;
    let group = |name: &str| json!({ "schemas": [GROUP], "displayName": name, "members": [] });
    assert_eq!(post(&f, GROUPS, group("Sales")).await.status, StatusCode::CREATED);
    assert_scim_error(&post(&f, GROUPS, group("sales")).await, 409, Some("uniqueness"));
}

// Okta renames a group and Entra adds members with PATCH; a client that
// checks its change reads the 200 answer, which is the whole group with
// its members. A group over the member cap answers 204 instead.
#[tokio::test]
async fn a_200_answer_to_a_write_is_the_whole_resource() {
    let limits = Limits { max_inline_members: 3, ..Limits::default() };
    let f = fixture_with(Routes::All, |t| Arc::new(t), limits).await;
    let mut users = Vec::new();
    for i in 0..4 {
        users.push(id_of(&post(&f, USERS, json!({ "schemas": [USER], "userName": format!("m{i}@x.io") })).await));
    }
    let group =
        post(&f, GROUPS, json!({ "schemas": [GROUP], "displayName": "Crew", "members": [{ "value": users[0] }] }))
            .await;
    let uri = format!("{GROUPS}/{}", id_of(&group));
    let add = json!({ "schemas": [PATCH_OP], "Operations": [
        { "op": "Add", "path": "members", "value": [{ "value": users[1] }, { "value": users[2] }] }
    ] });
    let r = f.send(Method::PATCH, &uri, Some(&f.token.clone()), Some(add), &[]).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let members: Vec<&str> =
        r.body["members"].as_array().into_iter().flatten().filter_map(|m| m["value"].as_str()).collect();
    assert_eq!(members.len(), 3, "{:?}", r.body);

    let rename = json!({ "schemas": [PATCH_OP], "Operations": [
        { "op": "replace", "value": { "id": id_of(&group), "displayName": "Crew 2" } }
    ] });
    let r = f.send(Method::PATCH, &uri, Some(&f.token.clone()), Some(rename), &[]).await;
    assert_eq!((r.status, r.body["displayName"].clone()), (StatusCode::OK, json!("Crew 2")));
    assert_eq!(r.body["members"].as_array().map(Vec::len), Some(3));
    let slim = f.send(Method::PATCH, &format!("{uri}?excludedAttributes=members"), Some(&f.token.clone()),
        Some(json!({ "schemas": [PATCH_OP], "Operations": [{ "op": "replace", "path": "displayName", "value": "Crew 3" }] })), &[]).await;
    assert_eq!(slim.status, StatusCode::OK);
    assert!(slim.body.get("members").is_none(), "asked without members");

    let over = json!({ "schemas": [PATCH_OP], "Operations": [{ "op": "add", "path": "members", "value": [{ "value": users[3] }] }] });
    let r = f.send(Method::PATCH, &uri, Some(&f.token.clone()), Some(over), &[]).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{:?}", r.body);
    assert!(r.headers.get(header::ETAG).is_some());
    let read = f.get(&format!("{uri}?excludedAttributes=members")).await;
    assert_eq!(read.body["displayName"], json!("Crew 3"));
    let members = f.get(&filtered(GROUPS, &format!("members[value eq \"{}\"]", users[3]))).await;
    assert_eq!(members.body["totalResults"], json!(1), "the add was applied");

    // A user's PUT answer carries its groups, as its GET does.
    let put = json!({ "schemas": [USER], "userName": "m0@x.io", "displayName": "Zero" });
    let r = f.send(Method::PUT, &format!("{USERS}/{}", users[0]), Some(&f.token.clone()), Some(put), &[]).await;
    assert_eq!(r.body["groups"][0]["value"], json!(id_of(&group)), "{:?}", r.body);

    // A create may not carry more members than one answer holds.
    let all: Vec<Value> = users.iter().map(|u| json!({ "value": u })).collect();
    let r = post(&f, GROUPS, json!({ "schemas": [GROUP], "displayName": "Too many", "members": all })).await;
    assert_scim_error(&r, 400, Some("tooMany"));
}

// Some clients put a value filter in `attributes`: it selects the
// attribute it filters.
#[tokio::test]
async fn a_value_filter_in_attributes_selects_that_attribute() {
    let f = fixture(Routes::All).await;
    let body = json!({ "schemas": [USER], "userName": "attrs@x.io", "displayName": "A",
        "emails": [{ "type": "work", "value": "w@x.io" }, { "type": "home", "value": "h@x.io" }] });
    let id = id_of(&post(&f, USERS, body).await);
    let r = f.get(&format!("{USERS}/{id}?attributes=emails%5Btype%20eq%20%22work%22%5D")).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(r.body["emails"].as_array().map(Vec::len), Some(2));
    assert!(r.body.get("displayName").is_none());
    let r = f.get(&format!("{USERS}/{id}?attributes=emails%5Btype%20eq")).await;
    assert_scim_error(&r, 400, Some("invalidPath"));
}

// PATCH /Groups/{id} adding ids that are no user or group of the tenant
// is refused, naming them; removing a member that is not there succeeds.
#[tokio::test]
async fn unknown_members_are_named() {
    let f = fixture(Routes::All).await;
    let group = post(&f, GROUPS, json!({ "schemas": [GROUP], "displayName": "Named" })).await;
    let uri = format!("{GROUPS}/{}", id_of(&group));
    let add = json!({ "schemas": [PATCH_OP], "Operations": [{ "op": "Add", "path": "members", "value": [
        { "value": "6f3b2a10-0000-4000-8000-000000000001" }, { "value": "6f3b2a10-0000-4000-8000-000000000002" }
    ] }] });
    let r = f.send(Method::PATCH, &uri, Some(&f.token.clone()), Some(add), &[]).await;
    assert_scim_error(&r, 400, Some("invalidValue"));
    let detail = r.body["detail"].as_str().unwrap_or_default();
    assert!(detail.contains("6f3b2a10-0000-4000-8000-000000000001") && detail.contains("000000000002"), "{detail}");
    let remove = json!({ "schemas": [PATCH_OP], "Operations": [
        { "op": "Remove", "path": "members[value eq \"6f3b2a10-0000-4000-8000-000000000003\"]" }
    ] });
    let r = f.send(Method::PATCH, &uri, Some(&f.token.clone()), Some(remove), &[]).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
}
