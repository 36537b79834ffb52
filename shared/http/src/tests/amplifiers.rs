//! Small requests that would cost far more than they ask for, and inputs
//! whose meaning depends on who reads them: projection lists, pages of
//! large resources, members per response, the largest answer of each
//! route, duplicate keys, content codings, conditional writes.

use lockstep_core::Kind;
use lockstep_core::model;
use lockstep_core::store::{Item, Write};

use super::*;

const USER: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
const GROUP: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";
const GROUPS: &str = "/acme/scim/v2/Groups";
const SEARCH: &str = "urn:ietf:params:scim:api:messages:2.0:SearchRequest";
const PATCH_OP: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";

/// Lambda answers at most 6 MB, counted over the whole response document
/// (status, headers, and the body as an escaped JSON string).
const LAMBDA_RESPONSE_LIMIT: usize = 6_000_000;

async fn created(f: &Fixture, uri: &str, body: Value) -> String {
    let r = f.send(Method::POST, uri, Some(&f.token.clone()), Some(body), &[]).await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    r.body["id"].as_str().unwrap_or_else(|| panic!("no id: {:?}", r.body)).to_string()
}

/// A request with a body sent as raw text.
async fn send_raw(f: &Fixture, method: Method, uri: &str, body: &str, extra: &[(&str, &str)]) -> Reply {
    let mut req = Request::builder()
        .method(method)
        .uri(uri)
        .header(header::HOST, "scim.test")
        .header(header::AUTHORIZATION, format!("Bearer {}", f.token))
        .header(header::CONTENT_TYPE, "application/scim+json");
    for (k, v) in extra {
        req = req.header(*k, *v);
    }
    f.send_request(req.body(Body::from(body.to_string())).unwrap_or_else(|e| panic!("{e}"))).await
}

/// The size of `body` as Lambda's response document carries it.
fn lambda_response_size(status: StatusCode, headers: &HeaderMap, body: &str) -> usize {
    let headers: serde_json::Map<String, Value> =
        headers.iter().map(|(k, v)| (k.to_string(), json!(v.to_str().unwrap_or_default()))).collect();
    json!({ "statusCode": status.as_u16(), "headers": headers, "body": body, "isBase64Encoded": false })
        .to_string()
        .len()
}

// A projection of 100,000 copies of one name is one name; more distinct
// names than the documented cap is 400 tooMany naming it, by query or body.
#[tokio::test]
async fn projection_lists_are_deduplicated_and_capped() {
    let f = fixture(Routes::All).await;
    created(&f, USERS, json!({ "schemas": [USER], "userName": "p@example.com", "displayName": "P" })).await;
    // About 900 KB, under the body limit.
    let copies = vec!["userName"; 80_000];
    let search = json!({ "schemas": [SEARCH], "attributes": copies, "count": 1000 });
    let r = f.send(Method::POST, &format!("{USERS}/.search"), Some(&f.token.clone()), Some(search), &[]).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(r.body["Resources"][0]["userName"], json!("p@example.com"));
    assert!(r.body["Resources"][0].get("displayName").is_none(), "only what was asked: {:?}", r.body);

    let cap = scim_protocol::MAX_PROJECTION_NAMES;
    let distinct: Vec<String> = (0..=cap).map(|i| format!("name{i}")).collect();
    let distinct = distinct.join(",");
    let q = serde_urlencoded::to_string([("attributes", distinct.as_str())]).unwrap_or_default();
    let by_query = f.get(&format!("{USERS}?{q}")).await;
    let q = serde_urlencoded::to_string([("excludedAttributes", distinct.as_str())]).unwrap_or_default();
    let excluded = f.get(&format!("{GROUPS}?{q}")).await;
    let names: Vec<&str> = distinct.split(',').collect();
    let body = json!({ "schemas": [SEARCH], "excludedAttributes": names });
    let by_body = f.send(Method::POST, &format!("{USERS}/.search"), Some(&f.token.clone()), Some(body), &[]).await;
    for r in [by_query, excluded, by_body] {
        assert_scim_error(&r, 400, Some("tooMany"));
        assert!(r.body["detail"].as_str().is_some_and(|d| d.contains(&cap.to_string())), "{:?}", r.body);
    }
}

// A key named twice in one object, at any depth, is refused whole: a
// lenient reader would act on the last one, which a reviewer of the
// request may never see.
#[tokio::test]
async fn duplicate_keys_are_refused_and_nothing_is_written() {
    let f = fixture(Routes::All).await;
    let id = created(&f, USERS, json!({ "schemas": [USER], "userName": "dup@example.com" })).await;
    f.table.take();
    let bodies = [
        (
            Method::POST,
            USERS.to_string(),
            format!(r#"{{"schemas":["{USER}"],"userName":"a@x.io","userName":"b@x.io"}}"#),
        ),
        (
            Method::POST,
            USERS.to_string(),
            format!(r#"{{"schemas":["{USER}"],"userName":"c@x.io","name":{{"givenName":"A","givenName":"B"}}}}"#),
        ),
        (
            Method::PATCH,
            format!("{USERS}/{id}"),
            format!(
                r#"{{"schemas":["{PATCH_OP}"],"Operations":[{{"op":"replace","path":"displayName","path":"userName","value":"x@x.io"}}]}}"#
            ),
        ),
        (
            Method::PUT,
            format!("{USERS}/{id}"),
            format!(r#"{{"schemas":["{USER}"],"userName":"dup@example.com","active":true,"active":false}}"#),
        ),
    ];
    for (method, uri, body) in bodies {
        let r = send_raw(&f, method, &uri, &body, &[]).await;
        assert_scim_error(&r, 400, Some("invalidSyntax"));
        assert!(r.body["detail"].as_str().is_some_and(|d| d.contains("twice")), "{:?}", r.body);
    }
    assert_eq!(f.table.take().writes(), 0);
    assert_eq!(f.get(&format!("{USERS}/{id}")).await.body["userName"], json!("dup@example.com"));
}

// No content coding is decoded: a coded body is 415 before it is read, and
// `identity` is no coding.
#[tokio::test]
async fn content_codings_are_refused() {
    let f = fixture(Routes::All).await;
    let body = format!(r#"{{"schemas":["{USER}"],"userName":"enc@example.com"}}"#);
    for coding in ["gzip", "br", "deflate, gzip", "x-custom"] {
        let r = send_raw(&f, Method::POST, USERS, &body, &[("content-encoding", coding)]).await;
        assert_scim_error(&r, 415, None);
    }
    let r = send_raw(&f, Method::POST, USERS, &body, &[("content-encoding", "identity")]).await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
}

// `If-None-Match` on a write: a match (or `*`, the resource exists) is 412
// and nothing changes; another version lets the write through.
#[tokio::test]
async fn if_none_match_on_writes_is_a_precondition() {
    let f = fixture(Routes::All).await;
    let id = created(&f, USERS, json!({ "schemas": [USER], "userName": "inm@example.com" })).await;
    let uri = format!("{USERS}/{id}");
    let etag =
        f.get(&uri).await.headers.get(header::ETAG).and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
    let t = Some(f.token.clone());
    let put = json!({ "schemas": [USER], "userName": "inm@example.com", "displayName": "Changed" });
    let patch = json!({ "schemas": [PATCH_OP], "Operations": [{ "op": "replace", "path": "displayName", "value": "Changed" }] });
    f.table.take();
    for header_value in [etag.as_str(), "*", &format!("W/\"999\", {etag}")] {
        let h = [("if-none-match", header_value)];
        assert_scim_error(&f.send(Method::PUT, &uri, t.as_deref(), Some(put.clone()), &h).await, 412, None);
        assert_scim_error(&f.send(Method::PATCH, &uri, t.as_deref(), Some(patch.clone()), &h).await, 412, None);
        assert_scim_error(&f.send(Method::DELETE, &uri, t.as_deref(), None, &h).await, 412, None);
    }
    assert_eq!(f.table.take().writes(), 0);
    let r = f.send(Method::PATCH, &uri, t.as_deref(), Some(patch), &[("if-none-match", "W/\"999\"")]).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(r.body["displayName"], json!("Changed"));
}

// The members (or groups) one response carries are bounded over the whole
// page: past the cap, 400 tooMany saying which count fits.
#[tokio::test]
async fn a_page_carries_a_bounded_number_of_members() {
    let limits = Limits { max_inline_members: 5, ..Limits::default() };
    let f = fixture_with(Routes::All, |t| Arc::new(t), limits).await;
    let mut users = Vec::new();
    for i in 0..3 {
        users.push(created(&f, USERS, json!({ "schemas": [USER], "userName": format!("m{i}@example.com") })).await);
    }
    let members: Vec<Value> = users.iter().map(|u| json!({ "value": u })).collect();
    for name in ["One", "Two", "Three"] {
        created(&f, GROUPS, json!({ "schemas": [GROUP], "displayName": name, "members": members })).await;
    }
    let r = f.get(&format!("{GROUPS}?attributes=members,displayName&count=10")).await;
    assert_scim_error(&r, 400, Some("tooMany"));
    assert!(r.body["detail"].as_str().is_some_and(|d| d.contains("count=1")), "{:?}", r.body);
    let r = f.get(&format!("{GROUPS}?attributes=members&count=1")).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(r.body["Resources"][0]["members"].as_array().map(Vec::len), Some(3));
    // Without members asked for, the page is whole.
    let r = f.get(&format!("{GROUPS}?count=10")).await;
    assert_eq!(r.body["itemsPerPage"], json!(3), "{:?}", r.body);
    // A user's groups count the same way.
    let r = f.get(&format!("{USERS}?attributes=groups&count=10")).await;
    assert_scim_error(&r, 400, Some("tooMany"));
}

// Resources near the size limit make shorter pages, which continue where
// they stopped, by index, by cursor and through a filter.
#[tokio::test]
async fn large_resources_make_shorter_pages_that_continue() {
    let f = fixture(Routes::All).await;
    let big = "x".repeat(90 * 1024);
    let mut ids = std::collections::BTreeSet::new();
    for i in 0..40 {
        let body =
            json!({ "schemas": [USER], "userName": format!("big{i:02}@example.com"), "title": "big", "nickName": big });
        ids.insert(created(&f, USERS, body).await);
    }
    let mut seen = std::collections::BTreeSet::new();
    let mut start = 1;
    let mut pages = 0;
    while seen.len() < ids.len() && pages < 40 {
        let r = f.get(&format!("{USERS}?startIndex={start}&count=1000")).await;
        assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
        assert_eq!(r.body["totalResults"], json!(40));
        let n = r.body["itemsPerPage"].as_u64().unwrap_or(0);
        assert!(n > 0 && n < 40, "a page of {n} resources of 90 KiB");
        seen.extend(
            r.body["Resources"].as_array().into_iter().flatten().filter_map(|u| u["id"].as_str().map(str::to_string)),
        );
        start += n;
        pages += 1;
    }
    assert_eq!(seen, ids, "index pages cover every user once");

    // The root search pages over users and groups alike.
    let group = created(&f, GROUPS, json!({ "schemas": [GROUP], "displayName": "After the users" })).await;
    let (mut seen, mut start) = (Vec::new(), 1);
    for _ in 0..40 {
        let body = json!({ "schemas": [SEARCH], "startIndex": start, "count": 1000 });
        let r = f.send(Method::POST, "/acme/scim/v2/.search", Some(&f.token.clone()), Some(body), &[]).await;
        assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
        assert_eq!(r.body["totalResults"], json!(41));
        let page: Vec<String> = r.body["Resources"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|u| u["id"].as_str().map(str::to_string))
            .collect();
        if page.is_empty() {
            break;
        }
        start += page.len();
        seen.extend(page);
    }
    let mut expected: Vec<String> = ids.iter().cloned().collect();
    expected.push(group);
    assert_eq!(seen, expected, "root search pages cover every resource once, users first");

    for filter in [None, Some("title eq \"big\"")] {
        let mut seen = std::collections::BTreeSet::new();
        let mut cursor = String::new();
        for _ in 0..40 {
            let mut q = vec![("count", "1000".to_string()), ("cursor", cursor.clone())];
            if let Some(f) = filter {
                q.push(("filter", f.to_string()));
            }
            let r = f.get(&format!("{USERS}?{}", serde_urlencoded::to_string(&q).unwrap_or_default())).await;
            assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
            let page = r.body["Resources"].as_array().cloned().unwrap_or_default();
            assert!(page.len() < 40, "{filter:?}: a page of {} large users", page.len());
            seen.extend(page.iter().filter_map(|u| u["id"].as_str().map(str::to_string)));
            match r.body["nextCursor"].as_str() {
                Some(next) => cursor = next.to_string(),
                None => break,
            }
        }
        assert_eq!(seen, ids, "{filter:?}: cursor pages cover every user once");
    }
    // A filter evaluated by reading every user: pages by index continue too.
    let q = serde_urlencoded::to_string([("filter", "title eq \"big\""), ("count", "1000")]).unwrap_or_default();
    let r = f.get(&format!("{USERS}?{q}")).await;
    assert_eq!(r.body["totalResults"], json!(40), "{:?}", r.body["totalResults"]);
    let n = r.body["itemsPerPage"].as_u64().unwrap_or(0);
    assert!(n > 0 && n < 40, "{n}");
}

// The largest answer each route can give fits Lambda's 6 MB: a group with
// the most members one response carries, named under the longest host
// name, read alone and in a list page; the discovery documents; and what
// is past the cap is a small 400, never a large body.
#[tokio::test]
async fn the_largest_response_of_each_route_fits_in_a_lambda_answer() {
    let f = fixture(Routes::All).await;
    let cap = Limits::default().max_inline_members;
    let group = created(
        &f,
        GROUPS,
        json!({ "schemas": [GROUP], "displayName": "d".repeat(1024), "externalId": "e".repeat(1024) }),
    )
    .await;
    // Member entries written as a membership change writes them (ids as this
    // service assigns them); rendering reads the entries.
    let entries: Vec<Write> = (0..cap)
        .map(|_| {
            let k = model::member("acme", &group, &uuid::Uuid::new_v4().to_string());
            Write::Put {
                item: Item { pk: k.pk, sk: k.sk, version: 1, data: r#"{"type":"User"}"#.into(), ..Item::default() },
                cond: lockstep_core::store::Cond::Always,
            }
        })
        .collect();
    for chunk in entries.chunks(lockstep_core::store::MAX_TRANSACTION_WRITES) {
        f.table.transact(chunk.to_vec()).await.unwrap_or_else(|e| panic!("{e}"));
    }
    let longest_host =
        format!("{}.example", ["a".repeat(63), "b".repeat(63), "c".repeat(63), "d".repeat(53)].join("."));
    assert_eq!(longest_host.len(), 253);
    let get = |uri: String| {
        let f = &f;
        let host = longest_host.clone();
        async move {
            let req = Request::builder()
                .uri(uri)
                .header(header::HOST, host)
                .header(header::AUTHORIZATION, format!("Bearer {}", f.token))
                .body(Body::empty())
                .unwrap_or_else(|e| panic!("{e}"));
            let response = f.router.clone().oneshot(req).await.unwrap_or_else(|e| match e {});
            let (status, headers) = (response.status(), response.headers().clone());
            let bytes = response.into_body().collect().await.map(|c| c.to_bytes()).unwrap_or_default();
            (status, headers, String::from_utf8_lossy(&bytes).into_owned())
        }
    };
    let mut largest = 0;
    for uri in [
        format!("{GROUPS}/{group}"),
        format!("{GROUPS}?attributes=members,displayName,externalId"),
        format!("{GROUPS}?filter=displayName eq \"{}\"&attributes=members", "d".repeat(1024)),
        "/acme/scim/v2/Schemas".to_string(),
        "/acme/scim/v2/ResourceTypes".to_string(),
        "/acme/scim/v2/ServiceProviderConfig".to_string(),
    ] {
        let uri = uri.replace(' ', "%20").replace('"', "%22");
        let (status, headers, body) = get(uri.clone()).await;
        assert_eq!(status, StatusCode::OK, "{uri}: {}", &body[..body.len().min(300)]);
        let size = lambda_response_size(status, &headers, &body);
        assert!(size < LAMBDA_RESPONSE_LIMIT, "{uri}: {size} bytes as a Lambda response");
        largest = largest.max(size);
    }
    assert!(largest > 4_000_000, "the worst case is near the limit ({largest} bytes), so the test measures it");
    // One member more than a response carries: a small 400, not a body.
    let k = model::member("acme", &group, &uuid::Uuid::new_v4().to_string());
    f.table
        .write(Write::Put {
            item: Item { pk: k.pk, sk: k.sk, version: 1, data: r#"{"type":"User"}"#.into(), ..Item::default() },
            cond: lockstep_core::store::Cond::Always,
        })
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let (status, _, body) = get(format!("{GROUPS}/{group}")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body.len() < 1000 && body.contains("tooMany"), "{body}");
    let _ = Kind::Group;
}

// A filter answered by reading every user says which filters an index
// serves for users (not the groups' displayName).
#[tokio::test]
async fn a_scan_refusal_names_the_indexed_filters_of_its_resource_type() {
    let limits = Limits { scan_budget: 2, ..Limits::default() };
    let f = fixture_with(Routes::All, |t| Arc::new(t), limits).await;
    for i in 0..3 {
        created(&f, USERS, json!({ "schemas": [USER], "userName": format!("s{i}@example.com"), "displayName": "S" }))
            .await;
        created(&f, GROUPS, json!({ "schemas": [GROUP], "displayName": format!("G{i}"), "externalId": "x" })).await;
    }
    let q = serde_urlencoded::to_string([("filter", "displayName eq \"S\"")]).unwrap_or_default();
    let r = f.get(&format!("{USERS}?{q}")).await;
    assert_scim_error(&r, 400, Some("tooMany"));
    let detail = r.body["detail"].as_str().unwrap_or_default();
    assert!(detail.contains("userName") && detail.contains("emails[type eq \"work\""), "{detail}");
    assert!(!detail.contains("displayName"), "displayName is indexed for groups only: {detail}");
    let q = serde_urlencoded::to_string([("filter", "externalId sw \"x\"")]).unwrap_or_default();
    let r = f.get(&format!("{GROUPS}?{q}")).await;
    assert_scim_error(&r, 400, Some("tooMany"));
    let detail = r.body["detail"].as_str().unwrap_or_default();
    assert!(detail.contains("displayName") && detail.contains("members.value"), "{detail}");
}
