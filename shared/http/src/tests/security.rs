//! What a hostile or careless client can try through the router, one rule
//! at a time (the connection-level limits are tested over real sockets in
//! the CLI's tests).

use std::net::SocketAddr;

use axum::extract::ConnectInfo;
use lockstep_core::Kind;
use lockstep_core::model;

use super::*;

const USER: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
const PATCH_OP: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";

async fn create_user(f: &Fixture, body: Value) -> Reply {
    f.send(Method::POST, USERS, Some(&f.token.clone()), Some(body), &[]).await
}

fn id_of(r: &Reply) -> String {
    r.body["id"].as_str().unwrap_or_else(|| panic!("no id: {:?}", r.body)).to_string()
}

/// The stored item of a user, as raw text.
async fn stored_text(f: &Fixture, id: &str) -> String {
    let item = f.table.get(&model::resource("acme", Kind::User, id)).await.unwrap_or_else(|e| panic!("{e}"));
    item.map(|i| i.data).unwrap_or_default()
}

// A password sent on create (Okta does) is never stored, never returned,
// and no filter can test it: the probe that recovered one character per
// request (`password sw "S"`) gets 400 invalidFilter, alone or beside an
// indexed term, by GET or by POST .search, and with cursor paging.
#[tokio::test]
async fn a_password_is_never_stored_returned_or_filterable() {
    let f = fixture(Routes::All).await;
    let created =
        create_user(&f, json!({ "schemas": [USER], "userName": "alice@example.com", "password": "S3cret!pw" })).await;
    assert_eq!(created.status, StatusCode::CREATED, "{:?}", created.body);
    let id = id_of(&created);
    assert!(created.body.get("password").is_none());
    assert!(!stored_text(&f, &id).await.contains("S3cret"), "the password reached the store");

    for filter in [
        r#"userName eq "alice@example.com" and password sw "S""#,
        r#"password sw "S""#,
        r#"password pr"#,
        r#"id eq "ID" and password eq "S3cret!pw""#,
    ] {
        let filter = filter.replace("ID", &id);
        let q = serde_urlencoded::to_string([("filter", filter.as_str()), ("count", "0")]).unwrap_or_default();
        assert_scim_error(&f.get(&format!("{USERS}?{q}")).await, 400, Some("invalidFilter"));
        let q = serde_urlencoded::to_string([("filter", filter.as_str()), ("cursor", "")]).unwrap_or_default();
        assert_scim_error(&f.get(&format!("{USERS}?{q}")).await, 400, Some("invalidFilter"));
        let search = json!({ "schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"], "filter": filter });
        let r = f.send(Method::POST, &format!("{USERS}/.search"), Some(&f.token.clone()), Some(search), &[]).await;
        assert_scim_error(&r, 400, Some("invalidFilter"));
    }

    // PUT and PATCH drop it too; asking for it by name returns nothing.
    let put = json!({ "schemas": [USER], "userName": "alice@example.com", "password": "0ther!pw" });
    let r = f.send(Method::PUT, &format!("{USERS}/{id}"), Some(&f.token.clone()), Some(put), &[]).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let patch =
        json!({ "schemas": [PATCH_OP], "Operations": [{ "op": "replace", "path": "password", "value": "Th1rd!pw" }] });
    let r = f.send(Method::PATCH, &format!("{USERS}/{id}"), Some(&f.token.clone()), Some(patch), &[]).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let text = stored_text(&f, &id).await;
    assert!(!text.contains("0ther") && !text.contains("Th1rd") && !text.contains("password"), "{text}");
    let r = f.get(&format!("{USERS}/{id}?attributes=password")).await;
    assert!(r.body.get("password").is_none(), "{:?}", r.body);

    // A password stored before this rule is never shown either.
    let key = model::resource("acme", Kind::User, &id);
    let mut item = f.table.get(&key).await.ok().flatten().unwrap_or_else(|| panic!("no item"));
    let mut data: Value = serde_json::from_str(&item.data).unwrap_or_default();
    data["password"] = json!("Legacy!pw");
    item.data = data.to_string();
    f.table
        .write(Write::Put { item, cond: lockstep_core::store::Cond::Always })
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let r = f.get(&format!("{USERS}/{id}")).await;
    assert!(!r.body.to_string().contains("Legacy"), "{:?}", r.body);

    let spc = f.get("/acme/scim/v2/ServiceProviderConfig").await;
    assert_eq!(spc.body["changePassword"]["supported"], json!(false));
}

// Resources over the stored-size limit are refused before any write, with
// a 400 that names the limit, never a 500 from the store.
#[tokio::test]
async fn oversized_resources_are_refused_before_any_write() {
    let f = fixture(Routes::All).await;
    let big_name = "x".repeat(200 * 1024);
    let many_emails: Vec<Value> =
        (0..20_000).map(|i| json!({ "value": format!("user{i}@example.com"), "type": "home" })).collect();
    let many_roles: Vec<Value> = (0..5_000).map(|i| json!({ "value": format!("role-number-{i:05}") })).collect();
    f.table.take();
    for body in [
        json!({ "schemas": [USER], "userName": "big@example.com", "name": { "givenName": big_name } }),
        json!({ "schemas": [USER], "userName": "big@example.com", "emails": many_emails }),
        json!({ "schemas": [USER], "userName": "big@example.com", "roles": many_roles }),
    ] {
        let r = create_user(&f, body).await;
        assert_scim_error(&r, 400, Some("invalidValue"));
        let detail = r.body["detail"].as_str().unwrap_or_default();
        assert!(detail.contains("at most 102400 bytes"), "{detail}");
    }
    assert_eq!(f.table.take().writes(), 0, "nothing was written");
    // Each work email is an index entry: a user has at most ten.
    let work: Vec<Value> = (0..11).map(|i| json!({ "value": format!("w{i}@example.com"), "type": "work" })).collect();
    let r = create_user(&f, json!({ "schemas": [USER], "userName": "work@example.com", "emails": work })).await;
    assert_scim_error(&r, 400, Some("invalidValue"));
    assert!(r.body["detail"].as_str().is_some_and(|d| d.contains("at most 10 emails")), "{:?}", r.body);

    // Growing a resource past the limit by PATCH is refused the same way.
    let id = id_of(&create_user(&f, json!({ "schemas": [USER], "userName": "grow@example.com" })).await);
    let roles: Vec<Value> = (0..5_000).map(|i| json!({ "value": format!("role-number-{i:05}") })).collect();
    let patch = json!({ "schemas": [PATCH_OP], "Operations": [{ "op": "add", "path": "roles", "value": roles }] });
    f.table.take();
    let r = f.send(Method::PATCH, &format!("{USERS}/{id}"), Some(&f.token.clone()), Some(patch), &[]).await;
    assert_scim_error(&r, 400, Some("invalidValue"));
    assert_eq!(f.table.take().writes(), 0);
}

// Concurrent PATCHes without If-Match are serialised by the server: every
// one succeeds (or, if it truly cannot, gets 503 with Retry-After), none
// gets 409, and none is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_patches_without_if_match_all_apply() {
    let f = Arc::new(fixture(Routes::All).await);
    let id = id_of(&create_user(&f, json!({ "schemas": [USER], "userName": "busy@example.com" })).await);
    let mut tasks = Vec::new();
    for i in 0..50 {
        let f = Arc::clone(&f);
        let uri = format!("{USERS}/{id}");
        tasks.push(tokio::spawn(async move {
            let patch = json!({ "schemas": [PATCH_OP], "Operations": [
                { "op": "add", "path": "emails", "value": [{ "value": format!("e{i}@example.com"), "type": "other" }] }
            ] });
            let r = f.send(Method::PATCH, &uri, Some(&f.token.clone()), Some(patch), &[]).await;
            (r.status, r.headers.get(header::RETRY_AFTER).is_some(), r.body)
        }));
    }
    let mut applied = 0;
    for t in tasks {
        let (status, retry_after, body) = t.await.unwrap_or_else(|e| panic!("{e}"));
        assert_ne!(status, StatusCode::CONFLICT, "{body}");
        match status {
            StatusCode::OK => applied += 1,
            StatusCode::SERVICE_UNAVAILABLE => assert!(retry_after, "503 without Retry-After"),
            other => panic!("{other}: {body}"),
        }
    }
    let user = f.get(&format!("{USERS}/{id}")).await;
    assert_eq!(user.body["emails"].as_array().map(Vec::len), Some(applied), "every 200 was kept");
    assert_eq!(applied, 50, "on one store the server serialises all of them");
}

fn with_peer(mut req: Request<Body>, peer: &str) -> Request<Body> {
    let addr: SocketAddr = peer.parse().unwrap_or_else(|e| panic!("{e}"));
    req.extensions_mut().insert(ConnectInfo(addr));
    req
}

// Forwarded headers are believed only from a configured trusted proxy,
// and only http and https are ever written as a scheme.
#[tokio::test]
async fn locations_never_reflect_untrusted_forwarded_headers() {
    let f = fixture(Routes::All).await;
    let forwarded = |token: &str, peer: &str| {
        let req = Request::builder()
            .method(Method::POST)
            .uri(USERS)
            .header(header::HOST, "scim.test:8080")
            .header(header::AUTHORIZATION, format!("Bearer {token}"))
            .header(header::CONTENT_TYPE, "application/scim+json")
            .header("x-forwarded-host", "evil.example")
            .header("x-forwarded-proto", "javascript")
            .body(Body::from(json!({ "schemas": [USER], "userName": format!("{peer}@example.com") }).to_string()))
            .unwrap_or_else(|e| panic!("{e}"));
        with_peer(req, peer)
    };
    let r = f.send_request(forwarded(&f.token, "198.51.100.7:5000")).await;
    let location = r.headers.get(header::LOCATION).and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
    assert!(location.starts_with("http://scim.test:8080/acme/scim/v2/Users/"), "{location}");
    assert_eq!(r.body["meta"]["location"], json!(location));

    // A bad Host is refused rather than written into a URL.
    let req = Request::builder()
        .uri(USERS)
        .header(header::HOST, "evil.example/x?")
        .header(header::AUTHORIZATION, format!("Bearer {}", f.token))
        .body(Body::empty())
        .unwrap_or_else(|e| panic!("{e}"));
    assert_scim_error(&f.send_request(req).await, 400, None);

    // Behind a trusted proxy its host is used; its scheme only if https.
    let trusted = {
        let mut app = App::new(
            Roster::new(f.table.clone(), Arc::new(SystemClock), test_cursor_key(), Limits::default()),
            Arc::new(FileTokens::new(f._dir.path().join("tokens"))),
            Arc::new(SystemClock),
            None,
        );
        app.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap_or_else(|e| panic!("{e}"))];
        router(Arc::new(app), Routes::All)
    };
    let send = |req| trusted.clone().oneshot(req);
    let r = send(forwarded(&f.token, "127.0.0.1:4000")).await.unwrap_or_else(|e| match e {});
    let location = r.headers().get(header::LOCATION).and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
    assert!(location.starts_with("http://evil.example/acme/scim/v2/Users/"), "{location}");
    let mut https = forwarded(&f.token, "127.0.0.1:4001");
    https.headers_mut().insert("x-forwarded-proto", http::HeaderValue::from_static("HTTPS"));
    let r = send(https).await.unwrap_or_else(|e| match e {});
    let location = r.headers().get(header::LOCATION).and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
    assert!(location.starts_with("https://evil.example/"), "{location}");
    // From an untrusted peer, the same router ignores them.
    let r = send(forwarded(&f.token, "198.51.100.8:4000")).await.unwrap_or_else(|e| match e {});
    let location = r.headers().get(header::LOCATION).and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
    assert!(location.starts_with("http://scim.test:8080/"), "{location}");

    assert!(public_origin("javascript://evil.example").is_err());
    assert!(public_origin("https://scim.example.com/").is_ok_and(|u| u == "https://scim.example.com"));
    assert!(public_origin("https://scim.example.com/prefix").is_ok());
    assert!(public_origin("https://evil.example/\"><script>").is_err());
}

fn test_cursor_key() -> CursorKey {
    CursorKey::new(vec![9u8; 32]).unwrap_or_else(|e| panic!("{e}"))
}

// Two Authorization headers are refused, not resolved by picking one.
#[tokio::test]
async fn ambiguous_authorization_is_refused() {
    let f = fixture(Routes::All).await;
    let req = Request::builder()
        .uri(USERS)
        .header(header::HOST, "scim.test")
        .header(header::AUTHORIZATION, format!("Bearer {}", f.token))
        .header(header::AUTHORIZATION, "Bearer lst_other")
        .body(Body::empty())
        .unwrap_or_else(|e| panic!("{e}"));
    let r = f.send_request(req).await;
    assert_scim_error(&r, 400, None);
    assert!(r.body["detail"].as_str().is_some_and(|d| d.contains("more than one Authorization")));
}

// A wrong token and an unknown tenant get the same answer, so tenants
// cannot be enumerated.
#[tokio::test]
async fn unknown_tenants_and_wrong_tokens_look_the_same() {
    let f = fixture(Routes::All).await;
    let wrong_token = f.send(Method::GET, USERS, Some("lst_wrong"), None, &[]).await;
    let other_tenants_token = f.send(Method::GET, USERS, Some(&f.other_tenant_token.clone()), None, &[]).await;
    let no_tenant = f.send(Method::GET, "/nosuch/scim/v2/Users", Some(&f.token.clone()), None, &[]).await;
    let bad_tenant = f.send(Method::GET, "/NO_SUCH!/scim/v2/Users", Some(&f.token.clone()), None, &[]).await;
    for r in [&wrong_token, &other_tenants_token, &no_tenant, &bad_tenant] {
        assert_scim_error(r, 401, None);
    }
    assert_eq!(wrong_token.body, no_tenant.body);
    assert_eq!(wrong_token.body, other_tenants_token.body);
    assert_eq!(wrong_token.body, bad_tenant.body);
    assert_eq!(wrong_token.headers.get(header::WWW_AUTHENTICATE), no_tenant.headers.get(header::WWW_AUTHENTICATE));
}

// Nobody without a token makes the server read a large body: the answer
// comes at once, with the connection closed. A small one is read, so the
// connection stays usable.
#[tokio::test]
async fn unauthenticated_bodies_are_not_read_past_a_small_size() {
    let f = fixture(Routes::All).await;
    let body = "x".repeat(900 * 1024);
    let big = Request::builder()
        .method(Method::POST)
        .uri(USERS)
        .header(header::HOST, "scim.test")
        .header(header::CONTENT_TYPE, "application/scim+json")
        .header(header::CONTENT_LENGTH, body.len())
        .body(Body::from(body))
        .unwrap_or_else(|e| panic!("{e}"));
    let r = f.send_request(big).await;
    assert_scim_error(&r, 401, None);
    assert_eq!(r.headers.get(header::CONNECTION).and_then(|v| v.to_str().ok()), Some("close"));

    let small = f.send(Method::POST, USERS, Some("lst_wrong"), Some(json!({ "userName": "x" })), &[]).await;
    assert_scim_error(&small, 401, None);
    assert!(small.headers.get(header::CONNECTION).is_none(), "a small refused body keeps the connection");
}

// Errors the HTTP framework writes itself (a path that is not valid UTF-8
// percent-encoding) are SCIM errors too.
#[tokio::test]
async fn framework_rejections_are_scim_errors() {
    let f = fixture(Routes::All).await;
    let r = f.get(&format!("{USERS}/%ff%fe")).await;
    assert!(r.status.is_client_error(), "{:?}", r.body);
    assert_scim_error(&r, r.status.as_u16(), None);
    let r = f.get(&format!("{USERS}/{}", "a".repeat(5000))).await;
    assert_scim_error(&r, 404, None);
    assert!(r.body["detail"].as_str().is_some_and(|d| d.len() < 200), "the id is not echoed: {:?}", r.body);
    let r = f.send(Method::GET, "/favicon.ico", None, None, &[]).await;
    assert_scim_error(&r, 404, None);
}

// More operations than the advertised cap: 400 tooMany, nothing applied.
#[tokio::test]
async fn patch_operation_count_is_capped_and_advertised() {
    let f = fixture(Routes::All).await;
    let spc = f.get("/acme/scim/v2/ServiceProviderConfig").await;
    let limits = &spc.body[scim_protocol::urn::LIMITS_CONFIG];
    let cap = limits["patchMaxOperations"].as_u64().unwrap_or_else(|| panic!("{:?}", spc.body));
    let id = id_of(&create_user(&f, json!({ "schemas": [USER], "userName": "ops@example.com" })).await);
    let one = json!({ "op": "replace", "path": "displayName", "value": "x" });
    let ops = vec![one; usize::try_from(cap).unwrap_or(usize::MAX) + 1];
    f.table.take();
    let patch = json!({ "schemas": [PATCH_OP], "Operations": ops });
    let r = f.send(Method::PATCH, &format!("{USERS}/{id}"), Some(&f.token.clone()), Some(patch), &[]).await;
    assert_scim_error(&r, 400, Some("tooMany"));
    assert_eq!(f.table.take().writes(), 0);
}

// Look-alike names: a bidi override or a zero-width space is refused, and
// a decomposed spelling of an existing userName is the same userName.
#[tokio::test]
async fn look_alike_names_are_refused_or_unified() {
    let f = fixture(Routes::All).await;
    for name in ["admin\u{202e}gpj.exe", "ad\u{200b}min", "admin\u{0}", "ad\u{2060}min"] {
        let r = create_user(&f, json!({ "schemas": [USER], "userName": name })).await;
        assert_scim_error(&r, 400, Some("invalidValue"));
    }
    let group = json!({ "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": "Ops\u{202e}" });
    let r = f.send(Method::POST, "/acme/scim/v2/Groups", Some(&f.token.clone()), Some(group), &[]).await;
    assert_scim_error(&r, 400, Some("invalidValue"));

    let r = create_user(&f, json!({ "schemas": [USER], "userName": "jos\u{e9}@example.com" })).await;
    assert_eq!(r.status, StatusCode::CREATED);
    let r = create_user(&f, json!({ "schemas": [USER], "userName": "JOSE\u{301}@example.com" })).await;
    assert_scim_error(&r, 409, Some("uniqueness"));
    let q = serde_urlencoded::to_string([("filter", "userName eq \"jose\u{301}@EXAMPLE.com\"")]).unwrap_or_default();
    let r = f.get(&format!("{USERS}?{q}")).await;
    assert_eq!(r.body["totalResults"], json!(1), "{:?}", r.body);
}
