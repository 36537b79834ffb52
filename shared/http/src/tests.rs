//! Router tests without a server: requests go straight into the router.

use std::sync::Arc;

use axum::body::Body;
use http::{HeaderMap, Method, Request, StatusCode, header};
use http_body_util::BodyExt;
use lockstep_core::clock::SystemClock;
use lockstep_core::counting::CountingTable;
use lockstep_core::cursor::CursorKey;
use lockstep_core::store::{Item, Key, Page, Query, StoreError, Table, Write};
use lockstep_core::tokens::{self};
use lockstep_core::{Limits, Roster, TenantId, TenantSettings};
use lockstep_embedded::{EmbeddedTable, FileTokens};
use serde_json::{Value, json};
use tower::ServiceExt;

use super::*;

mod amplifiers;
mod hostile;
mod interop;
mod security;

struct Fixture {
    router: Router,
    /// The table under the router, counting its calls.
    table: Arc<CountingTable>,
    token: String,
    other_tenant_token: String,
    restricted_token: String,
    _dir: tempfile::TempDir,
}

/// A table whose writes fail as an unreachable store's would.
struct UnwritableTable(EmbeddedTable);

#[async_trait::async_trait]
impl Table for UnwritableTable {
    async fn get(&self, key: &Key) -> Result<Option<Item>, StoreError> {
        self.0.get(key).await
    }
    async fn batch_get(&self, keys: &[Key]) -> Result<Vec<Item>, StoreError> {
        self.0.batch_get(keys).await
    }
    async fn write(&self, _: Write) -> Result<(), StoreError> {
        Err(StoreError::Unavailable("connection reset by 10.0.0.7".into()))
    }
    async fn transact(&self, _: Vec<Write>) -> Result<(), StoreError> {
        Err(StoreError::Unavailable("connection reset by 10.0.0.7".into()))
    }
    async fn batch_write(&self, _: Vec<Write>) -> Result<(), StoreError> {
        Err(StoreError::Unavailable("connection reset by 10.0.0.7".into()))
    }
    async fn query(&self, query: &Query) -> Result<Page, StoreError> {
        self.0.query(query).await
    }
}

async fn fixture(routes: Routes) -> Fixture {
    fixture_over(routes, |table| Arc::new(table)).await
}

async fn fixture_over(routes: Routes, wrap: impl FnOnce(EmbeddedTable) -> Arc<dyn Table>) -> Fixture {
    fixture_with(routes, wrap, Limits::default()).await
}

async fn fixture_with(routes: Routes, wrap: impl FnOnce(EmbeddedTable) -> Arc<dyn Table>, limits: Limits) -> Fixture {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let path = dir.path().join("store.redb");
    let store = FileTokens::new(dir.path().join("tokens"));
    let key = CursorKey::new(vec![9u8; 32]).unwrap_or_else(|e| panic!("{e}"));
    let seeding = EmbeddedTable::open(&path).unwrap_or_else(|e| panic!("{e}"));
    let roster = Roster::new(Arc::new(seeding), Arc::new(SystemClock), key.clone(), Limits::default());
    let now = time::OffsetDateTime::now_utc();
    let mut texts = Vec::new();
    for (tenant, allow) in [("acme", vec![]), ("zinc", vec![]), ("acme", vec!["203.0.113.0/24".to_string()])] {
        let id = TenantId::parse(tenant).unwrap_or_else(|e| panic!("{e}"));
        if roster.tenant(&id).await.ok().flatten().is_none() {
            roster.create_tenant(&id, tenant, TenantSettings::default()).await.unwrap_or_else(|e| panic!("{e}"));
        }
        let (text, record) = tokens::issue(None, None, allow, now).unwrap_or_else(|e| panic!("{e}"));
        tokens::add(&store, &id, &record).await.unwrap_or_else(|e| panic!("{e}"));
        texts.push(text);
    }
    drop(roster);
    let table = EmbeddedTable::open(&path).unwrap_or_else(|e| panic!("{e}"));
    let counting = Arc::new(CountingTable::new(wrap(table)));
    let roster = Roster::new(counting.clone(), Arc::new(SystemClock), key, limits);
    let app = Arc::new(App::new(roster, Arc::new(store), Arc::new(SystemClock), None));
    Fixture {
        router: router(app, routes),
        table: counting,
        token: texts[0].clone(),
        other_tenant_token: texts[1].clone(),
        restricted_token: texts[2].clone(),
        _dir: dir,
    }
}

struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    body: Value,
}

impl Fixture {
    async fn send(
        &self,
        method: Method,
        uri: &str,
        token: Option<&str>,
        body: Option<Value>,
        extra: &[(&str, &str)],
    ) -> Reply {
        let mut req = Request::builder().method(method).uri(uri).header(header::HOST, "scim.test");
        if let Some(t) = token {
            req = req.header(header::AUTHORIZATION, format!("Bearer {t}"));
        }
        let body = match body {
            Some(b) => {
                req = req.header(header::CONTENT_TYPE, "application/scim+json");
                Body::from(b.to_string())
            }
            None => Body::empty(),
        };
        for (k, v) in extra {
            req = req.header(*k, *v);
        }
        self.send_request(req.body(body).unwrap_or_else(|e| panic!("{e}"))).await
    }

    /// Send a request as built, whatever it holds.
    async fn send_request(&self, req: Request<Body>) -> Reply {
        let response = self.router.clone().oneshot(req).await.unwrap_or_else(|e| match e {});
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response.into_body().collect().await.map(|c| c.to_bytes()).unwrap_or_default();
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()))
        };
        Reply { status, headers, body }
    }

    async fn get(&self, uri: &str) -> Reply {
        self.send(Method::GET, uri, Some(&self.token.clone()), None, &[]).await
    }
}

fn assert_scim_error(r: &Reply, status: u16, scim_type: Option<&str>) {
    assert_eq!(r.status.as_u16(), status, "{:?}", r.body);
    assert_eq!(r.headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()), Some("application/scim+json"));
    assert_eq!(r.body["schemas"], json!(["urn:ietf:params:scim:api:messages:2.0:Error"]));
    assert_eq!(r.body["status"], json!(status.to_string()));
    assert_eq!(r.body.get("scimType").and_then(Value::as_str), scim_type, "{:?}", r.body);
}

const USERS: &str = "/acme/scim/v2/Users";

#[tokio::test]
async fn authentication() {
    let f = fixture(Routes::All).await;
    let none = f.send(Method::GET, USERS, None, None, &[]).await;
    assert_scim_error(&none, 401, None);
    assert!(
        none.headers.get(header::WWW_AUTHENTICATE).is_some_and(|v| v.to_str().is_ok_and(|v| v.starts_with("Bearer")))
    );
    assert_scim_error(&f.send(Method::GET, USERS, Some("lst_wrong"), None, &[]).await, 401, None);
    assert_scim_error(&f.send(Method::GET, USERS, Some(&f.other_tenant_token), None, &[]).await, 401, None);
    assert_scim_error(&f.send(Method::GET, "/nosuch/scim/v2/Users", Some(&f.token), None, &[]).await, 401, None);
    assert_scim_error(&f.send(Method::GET, "/NOT_VALID/scim/v2/Users", Some(&f.token), None, &[]).await, 401, None);
    let basic = f.send(Method::GET, USERS, None, None, &[("authorization", "Basic dXNlcjpwYXNz")]).await;
    assert_scim_error(&basic, 401, None);
    // An allow-listed token from an unknown address is forbidden, not unauthorized.
    assert_scim_error(&f.send(Method::GET, USERS, Some(&f.restricted_token), None, &[]).await, 403, None);
    assert_eq!(f.get(USERS).await.status, StatusCode::OK);
    assert_eq!(
        f.send(Method::GET, "/zinc/scim/v2/Users", Some(&f.other_tenant_token), None, &[]).await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn errors_for_bad_requests_are_scim_errors() {
    let f = fixture(Routes::All).await;
    let t = Some(f.token.as_str());
    assert_scim_error(&f.get("/acme/scim/v2/Nope").await, 404, None);
    assert_scim_error(&f.get("/elsewhere").await, 404, None);
    assert_scim_error(&f.send(Method::DELETE, USERS, t, None, &[]).await, 405, None);
    let plain = {
        let req = Request::builder()
            .method(Method::POST)
            .uri(USERS)
            .header(header::AUTHORIZATION, format!("Bearer {}", f.token))
            .header(header::CONTENT_TYPE, "text/plain")
            .body(Body::from("userName=x"))
            .unwrap_or_else(|e| panic!("{e}"));
        let r = f.router.clone().oneshot(req).await.unwrap_or_else(|e| match e {});
        r.status()
    };
    assert_eq!(plain, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let bad_json = {
        let req = Request::builder()
            .method(Method::POST)
            .uri(USERS)
            .header(header::AUTHORIZATION, format!("Bearer {}", f.token))
            .header(header::CONTENT_TYPE, "application/json; charset=utf-8")
            .body(Body::from("{\"userName\": "))
            .unwrap_or_else(|e| panic!("{e}"));
        f.router.clone().oneshot(req).await.unwrap_or_else(|e| match e {})
    };
    assert_eq!(bad_json.status(), StatusCode::BAD_REQUEST);
    let huge = json!({ "userName": "x", "displayName": "y".repeat(2 << 20) });
    assert_scim_error(&f.send(Method::POST, USERS, t, Some(huge), &[]).await, 413, None);
    assert_scim_error(
        &f.send(Method::POST, USERS, t, Some(json!({ "displayName": "no userName" })), &[]).await,
        400,
        Some("invalidValue"),
    );
    assert_scim_error(&f.get("/acme/scim/v2/Users?filter=userName%20eq").await, 400, Some("invalidFilter"));
    assert_scim_error(&f.get("/acme/scim/v2/Users?filter=nope%20eq%20%22x%22").await, 400, Some("invalidFilter"));
    assert_scim_error(&f.get("/acme/scim/v2/Users?startIndex=abc").await, 400, Some("invalidValue"));
    assert_scim_error(&f.get("/acme/scim/v2/Users/does-not-exist").await, 404, None);
    let bad_patch = json!({ "Operations": [{ "op": "jump", "path": "x" }] });
    assert_scim_error(
        &f.send(Method::PATCH, "/acme/scim/v2/Users/x", t, Some(bad_patch), &[]).await,
        400,
        Some("invalidSyntax"),
    );
    for path in ["/acme/scim/v2/Bulk", "/acme/scim/v2/Me"] {
        assert_scim_error(&f.send(Method::POST, path, t, Some(json!({})), &[]).await, 501, None);
    }
}

#[tokio::test]
async fn user_lifecycle_with_versions() {
    let f = fixture(Routes::All).await;
    let t = Some(f.token.as_str());
    // Entra's Test Connection.
    let probe = f.get("/acme/scim/v2/Users?filter=userName+eq+%22b1a5c2f0-test%22").await;
    assert_eq!(probe.status, StatusCode::OK);
    assert_eq!((probe.body["totalResults"].clone(), probe.body["Resources"].clone()), (json!(0), json!([])));
    let body = json!({ "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "Ada@Example.com", "active": "True" });
    let created = f.send(Method::POST, USERS, t, Some(body.clone()), &[]).await;
    assert_eq!(created.status, StatusCode::CREATED, "{:?}", created.body);
    let id = created.body["id"].as_str().unwrap_or_default().to_string();
    let location = format!("http://scim.test/acme/scim/v2/Users/{id}");
    assert_eq!(created.headers.get(header::LOCATION).and_then(|v| v.to_str().ok()), Some(location.as_str()));
    assert_eq!(created.body["meta"]["location"], json!(location));
    assert_eq!(created.headers.get(header::ETAG).and_then(|v| v.to_str().ok()), Some("W/\"1\""));
    assert_eq!(created.headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()), Some("application/scim+json"));
    assert_eq!(created.body["active"], json!(true));
    assert_scim_error(
        &f.send(Method::POST, USERS, t, Some(json!({ "userName": "ada@example.COM" })), &[]).await,
        409,
        Some("uniqueness"),
    );
    let uri = format!("{USERS}/{id}");
    let got = f.get(&uri).await;
    assert_eq!(got.body["userName"], json!("Ada@Example.com"));
    let unchanged = f.send(Method::GET, &uri, t, None, &[("if-none-match", "W/\"1\"")]).await;
    assert_eq!(unchanged.status, StatusCode::NOT_MODIFIED);
    let disable = json!({ "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": [{ "op": "Replace", "path": "active", "value": "False" }] });
    let patched = f.send(Method::PATCH, &uri, t, Some(disable), &[]).await;
    assert_eq!(patched.status, StatusCode::OK);
    assert_eq!(patched.body["active"], json!(false));
    assert_eq!(patched.headers.get(header::ETAG).and_then(|v| v.to_str().ok()), Some("W/\"2\""));
    let stale = f.send(Method::PUT, &uri, t, Some(body.clone()), &[("if-match", "W/\"1\"")]).await;
    assert_scim_error(&stale, 412, None);
    let put = f.send(Method::PUT, &uri, t, Some(body), &[("if-match", "W/\"2\"")]).await;
    assert_eq!((put.status, put.body["active"].clone()), (StatusCode::OK, json!(true)));
    let projected = f.get(&format!("{uri}?attributes=userName")).await;
    assert_eq!(
        projected.body.as_object().map(|o| o.keys().cloned().collect::<Vec<_>>()),
        Some(vec!["schemas".into(), "id".into(), "userName".into()])
    );
    assert_eq!(f.send(Method::DELETE, &uri, t, None, &[]).await.status, StatusCode::NO_CONTENT);
    assert_scim_error(&f.get(&uri).await, 404, None);
}

#[tokio::test]
async fn discovery_documents() {
    let f = fixture(Routes::All).await;
    let spc = f.get("/acme/scim/v2/ServiceProviderConfig").await;
    assert_eq!(spc.body["patch"]["supported"], json!(true));
    assert_eq!(spc.body["meta"]["location"], json!("http://scim.test/acme/scim/v2/ServiceProviderConfig"));
    assert_eq!(f.get("/acme/scim/v2/Schemas").await.body["totalResults"], json!(4));
    let user_schema = f.get("/acme/scim/v2/Schemas/urn:ietf:params:scim:schemas:core:2.0:User").await;
    assert_eq!(user_schema.body["name"], json!("User"));
    assert_scim_error(&f.get("/acme/scim/v2/Schemas/urn:nope").await, 404, None);
    assert_eq!(f.get("/acme/scim/v2/ResourceTypes/Group").await.body["endpoint"], json!("/Groups"));
    assert_eq!(f.get("/acme/scim/v2/ResourceTypes").await.body["totalResults"], json!(2));
}

#[tokio::test]
async fn function_route_families() {
    let users = fixture(Routes::Users).await;
    assert_eq!(users.get(USERS).await.status, StatusCode::OK);
    assert_scim_error(&users.get("/acme/scim/v2/Groups").await, 404, None);
    assert_scim_error(&users.get("/acme/scim/v2/Schemas").await, 404, None);
    let discovery = fixture(Routes::Discovery).await;
    assert_eq!(discovery.get("/acme/scim/v2/Schemas").await.status, StatusCode::OK);
    assert_scim_error(&discovery.get(USERS).await, 404, None);
}

#[tokio::test]
async fn root_search_spans_types() {
    let f = fixture(Routes::All).await;
    let t = Some(f.token.as_str());
    f.send(Method::POST, USERS, t, Some(json!({ "userName": "a@x.io", "displayName": "Sales" })), &[]).await;
    f.send(Method::POST, "/acme/scim/v2/Groups", t, Some(json!({ "displayName": "Sales" })), &[]).await;
    let search = json!({ "schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"], "filter": "displayName eq \"Sales\"" });
    let found = f.send(Method::POST, "/acme/scim/v2/.search", t, Some(search), &[]).await;
    assert_eq!(found.status, StatusCode::OK, "{:?}", found.body);
    assert_eq!(found.body["totalResults"], json!(2));
    let users_only = json!({ "filter": "userName sw \"a\"" });
    assert_eq!(
        f.send(Method::POST, "/acme/scim/v2/.search", t, Some(users_only), &[]).await.body["totalResults"],
        json!(1)
    );
    let nothing_fits = json!({ "filter": "nope eq \"x\"" });
    assert_scim_error(
        &f.send(Method::POST, "/acme/scim/v2/.search", t, Some(nothing_fits), &[]).await,
        400,
        Some("invalidFilter"),
    );
}

/// A shared buffer the JSON log formatter writes into.
#[derive(Clone, Default)]
struct CapturedLogs(Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for CapturedLogs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner).extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The test process's logs, in the service's format. A process-wide
/// subscriber rather than a scoped one: callsites cache whether anyone is
/// interested, and tests on other threads without a subscriber would race
/// a scoped one for that cache.
fn captured_logs() -> CapturedLogs {
    static LOGS: std::sync::OnceLock<CapturedLogs> = std::sync::OnceLock::new();
    LOGS.get_or_init(|| {
        let logs = CapturedLogs::default();
        let writer = logs.clone();
        let _ = tracing::subscriber::set_global_default(logging::json_subscriber(move || writer.clone()));
        logs
    })
    .clone()
}

#[tokio::test]
async fn a_store_failure_is_logged_with_its_request_and_tenant_and_hidden_from_the_client() {
    let logs = captured_logs();
    let f = fixture_over(Routes::All, |table| Arc::new(UnwritableTable(table))).await;

    let reply = f
        .send(
            Method::POST,
            USERS,
            Some(&f.token.clone()),
            Some(json!({"userName": "ada@example.com"})),
            &[("x-request-id", "req-7f3a")],
        )
        .await;
    assert!(reply.status.is_server_error(), "{:?}", reply.body);
    let detail = reply.body["detail"].as_str().unwrap_or_default();
    assert!(!detail.contains("10.0.0.7"), "the cause stays in the logs: {detail}");
    // The request id is the server's own; the client's is logged beside it.
    let ours = reply.headers.get("x-request-id").and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
    assert!(!ours.is_empty() && ours != "req-7f3a", "{ours}");

    let text =
        String::from_utf8(logs.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone()).unwrap_or_default();
    let lines: Vec<Value> =
        text.lines().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}"))).collect();
    let failure = lines
        .iter()
        .find(|l| l["message"] == "request failed" && l["error"].as_str().is_some_and(|e| e.contains("10.0.0.7")))
        .unwrap_or_else(|| panic!("{text}"));
    assert_eq!(failure["level"], "ERROR");
    assert!(failure["error"].as_str().is_some_and(|e| e.contains("10.0.0.7")), "{failure}");
    let span = &failure["span"];
    assert_eq!(
        (span["request_id"].as_str(), span["tenant"].as_str()),
        (Some(ours.as_str()), Some("acme")),
        "{failure}"
    );
    assert_eq!((span["method"].as_str(), span["route"].as_str()), (Some("POST"), Some("/Users")));
    assert!(span["token"].as_str().is_some_and(|t| !t.is_empty() && t != f.token), "the token's id: {failure}");
    assert!(!text.contains(&f.token) && !text.contains("ada@example.com"), "no token, no body in the logs: {text}");
}
