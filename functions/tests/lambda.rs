//! The functions as Lambda runs them.
//!
//! - API Gateway HTTP API events (payload 2.0, from a captured fixture)
//!   through `lambda_http`'s request conversion into the shared router.
//! - The real function binaries, started as Lambda starts them, polling a
//!   Runtime API emulator, over DynamoDB and Secrets Manager on the local
//!   emulator: configuration, client start-up, auth, SCIM, JSON logs.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use base64::Engine;
use http_body_util::BodyExt;
use lockstep_aws::{DynamoTable, SecretsManagerTokens};
use lockstep_core::clock::SystemClock;
use lockstep_core::cursor::CursorKey;
use lockstep_core::tokens::{self, TokenStore};
use lockstep_core::{Limits, Roster, TenantId, TenantSettings};
use lockstep_embedded::{EmbeddedTable, FileTokens};
use lockstep_http::{App, Routes, router};
use lockstep_tests::lambda::{LambdaProcess, http_api_event};
use serde_json::{Value, json};
use tower::ServiceExt;

fn tenant(id: &str) -> TenantId {
    TenantId::parse(id).unwrap_or_else(|e| panic!("{e:?}"))
}

/// Create a tenant and one token for it (optionally limited to `allow`).
async fn tenant_with_token(roster: &Roster, store: &dyn TokenStore, id: &str, allow: &[&str]) -> String {
    let t = tenant(id);
    if roster.tenant(&t).await.unwrap_or_else(|e| panic!("{e}")).is_none() {
        roster.create_tenant(&t, id, TenantSettings::default()).await.unwrap_or_else(|e| panic!("{e}"));
    }
    let allow = allow.iter().map(|s| s.to_string()).collect();
    let (text, record) = tokens::issue(Some("test".into()), None, allow, time::OffsetDateTime::now_utc())
        .unwrap_or_else(|e| panic!("{e}"));
    tokens::add(store, &t, &record).await.unwrap_or_else(|e| panic!("{e}"));
    text
}

// -- API Gateway events through lambda_http into the router -----------------

struct InProcess {
    router: axum::Router,
    token: String,
    restricted_token: String,
    _dir: tempfile::TempDir,
}

async fn in_process(routes: Routes) -> InProcess {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let table = EmbeddedTable::open(&dir.path().join("store.redb")).unwrap_or_else(|e| panic!("{e}"));
    let store = FileTokens::new(dir.path().join("tokens"));
    let key = CursorKey::new(vec![7u8; 32]).unwrap_or_else(|e| panic!("{e}"));
    let roster = Roster::new(Arc::new(table), Arc::new(SystemClock), key, Limits::default());
    let token = tenant_with_token(&roster, &store, "acme", &[]).await;
    let restricted_token = tenant_with_token(&roster, &store, "acme", &["192.0.2.0/24"]).await;
    let app = App::new(roster, Arc::new(store), Arc::new(SystemClock), None);
    InProcess { router: router(Arc::new(app), routes), token, restricted_token, _dir: dir }
}

struct Answer {
    status: u16,
    headers: http::HeaderMap,
    body: Value,
}

impl InProcess {
    /// Deserialise the event exactly as the Lambda runtime does, then serve it.
    async fn send(&self, event: &Value) -> Answer {
        let request = lambda_http::request::from_str(&event.to_string()).unwrap_or_else(|e| panic!("event: {e}"));
        let response = self.router.clone().oneshot(request.map(Body::new)).await.unwrap_or_else(|e| match e {});
        let (parts, body) = response.into_parts();
        let bytes = body.collect().await.unwrap_or_else(|e| panic!("{e}")).to_bytes();
        let body = if bytes.is_empty() { Value::Null } else { serde_json::from_slice(&bytes).unwrap_or(Value::Null) };
        Answer { status: parts.status.as_u16(), headers: parts.headers, body }
    }
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

#[tokio::test(flavor = "multi_thread")]
async fn the_captured_event_is_entras_test_connection_and_gets_an_empty_list() {
    let app = in_process(Routes::Users).await;
    let mut event: Value = serde_json::from_str(lockstep_tests::lambda::HTTP_API_EVENT_FIXTURE).unwrap_or_default();
    event["headers"]["authorization"] = json!(bearer(&app.token));
    let answer = app.send(&event).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(answer.body["totalResults"], 0);
    assert_eq!(answer.body["Resources"], json!([]));
    assert_eq!(answer.headers["content-type"], "application/scim+json");
    assert_eq!(answer.headers["x-request-id"], "Cx3pWgGDoAMEVaw=", "API Gateway's request id is the request id");
}

#[tokio::test(flavor = "multi_thread")]
async fn events_create_read_and_are_refused_like_http_requests() {
    let app = in_process(Routes::Users).await;
    let auth = bearer(&app.token);
    let user = json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
        "userName": "ryan@contoso.com",
        "active": true
    })
    .to_string();
    let headers = [("authorization", auth.as_str()), ("content-type", "application/scim+json; charset=utf-8")];
    let created = app.send(&http_api_event("POST", "/acme/scim/v2/Users", "", &headers, Some(&user))).await;
    assert_eq!(created.status, 201, "{}", created.body);
    let id = created.body["id"].as_str().unwrap_or_default().to_string();
    let location = created.headers["location"].to_str().unwrap_or_default();
    assert_eq!(
        location,
        format!("https://abcdef1234.execute-api.us-east-1.amazonaws.com/acme/scim/v2/Users/{id}"),
        "the Location is the public URL the client called"
    );

    // API Gateway base64-encodes bodies it does not treat as text.
    let encoded = base64::engine::general_purpose::STANDARD.encode(
        json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
               "Operations": [{"op": "Replace", "path": "active", "value": "False"}]})
        .to_string(),
    );
    let mut patch = http_api_event("PATCH", &format!("/acme/scim/v2/Users/{id}"), "", &headers, Some(&encoded));
    patch["isBase64Encoded"] = json!(true);
    let patched = app.send(&patch).await;
    assert_eq!(patched.status, 200, "{}", patched.body);
    assert_eq!(patched.body["active"], false);

    let query = "filter=userName%20eq%20%22RYAN%40contoso.com%22";
    let found = app.send(&http_api_event("GET", "/acme/scim/v2/Users", query, &headers, None)).await;
    assert_eq!(found.body["totalResults"], 1, "userName matches case-insensitively: {}", found.body);

    let other_family = app.send(&http_api_event("GET", "/acme/scim/v2/Groups", "", &headers, None)).await;
    assert_eq!(other_family.status, 404, "the users function serves only /Users");
    assert_eq!(other_family.body["schemas"][0], "urn:ietf:params:scim:api:messages:2.0:Error");

    let bad =
        app.send(&http_api_event("GET", "/acme/scim/v2/Users", "", &[("authorization", "Bearer nope")], None)).await;
    assert_eq!(bad.status, 401);
    assert_eq!(bad.headers["www-authenticate"], "Bearer realm=\"scim\"");
}

#[tokio::test(flavor = "multi_thread")]
async fn allow_lists_use_the_source_ip_api_gateway_saw() {
    let app = in_process(Routes::Users).await;
    let auth = bearer(&app.restricted_token);
    let mut event = http_api_event("GET", "/acme/scim/v2/Users", "", &[("authorization", &auth)], None);
    assert_eq!(app.send(&event).await.status, 200, "the fixture's 192.0.2.10 is inside 192.0.2.0/24");
    event["requestContext"]["http"]["sourceIp"] = json!("198.51.100.7");
    // A client cannot talk its way in with a forged X-Forwarded-For.
    event["headers"]["x-forwarded-for"] = json!("192.0.2.10");
    let refused = app.send(&event).await;
    assert_eq!(refused.status, 403, "{}", refused.body);
    assert_eq!(refused.body["status"], "403");
}

// -- the function binaries under a Runtime API emulator ----------------------

struct Deployed {
    env: Vec<(String, String)>,
    token: String,
    other_tenant_token: String,
}

/// A deployment on the emulators: the table, the cursor key secret, and two
/// tenants with a token each, made the way an operator makes them.
async fn deployed() -> Deployed {
    let env = lockstep_tests::emulated_stack().await;
    let var = |name: &str| env.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone()).unwrap_or_default();
    let store = SecretsManagerTokens::new(lockstep_tests::secrets_client(), var("TOKEN_SECRET_PREFIX"));
    let key = CursorKey::new(vec![1u8; 32]).unwrap_or_else(|e| panic!("{e}"));
    let table = DynamoTable::new(lockstep_tests::dynamodb_client(), var("TABLE_NAME"));
    let roster = Roster::new(Arc::new(table), Arc::new(SystemClock), key, Limits::default());
    let token = tenant_with_token(&roster, &store, "acme", &[]).await;
    let other_tenant_token = tenant_with_token(&roster, &store, "zinc", &[]).await;
    Deployed { env, token, other_tenant_token }
}

#[tokio::test(flavor = "multi_thread")]
async fn function_binaries_serve_scim_under_the_runtime_api() {
    let deployment = deployed().await;
    let auth = bearer(&deployment.token);
    let json_headers = [("authorization", auth.as_str()), ("content-type", "application/scim+json")];

    // users
    let users = LambdaProcess::start(env!("CARGO_BIN_EXE_users"), "lockstep-users", &deployment.env).await;
    let body = json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "alex@contoso.com",
                      "name": {"givenName": "Alex", "familyName": "Wu"}})
    .to_string();
    let event = http_api_event("POST", "/acme/scim/v2/Users", "", &json_headers, Some(&body));
    let (status, headers, created) = users.call(event).await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(headers["content-type"], "application/scim+json");
    assert!(headers["etag"].as_str().is_some_and(|e| e.starts_with("W/\"")), "{headers}");
    let user_id = created["id"].as_str().unwrap_or_default().to_string();

    let query = "filter=userName%20eq%20%22alex%40contoso.com%22";
    let event = http_api_event("GET", "/acme/scim/v2/Users", query, &json_headers, None);
    let (status, _, found) = users.call(event).await;
    assert_eq!((status, found["totalResults"].clone()), (200, json!(1)), "{found}");

    let other = bearer(&deployment.other_tenant_token);
    let event =
        http_api_event("GET", &format!("/acme/scim/v2/Users/{user_id}"), "", &[("authorization", &other)], None);
    let (status, headers, refused) = users.call(event).await;
    assert_eq!(status, 401, "another tenant's token: {refused}");
    assert_eq!(headers["www-authenticate"], "Bearer realm=\"scim\"");

    // groups
    let groups = LambdaProcess::start(env!("CARGO_BIN_EXE_groups"), "lockstep-groups", &deployment.env).await;
    let body = json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": "Engineering",
                      "members": [{"value": user_id}]})
    .to_string();
    let event = http_api_event("POST", "/acme/scim/v2/Groups", "", &json_headers, Some(&body));
    let (status, _, group) = groups.call(event).await;
    assert_eq!(status, 201, "{group}");
    assert_eq!(group["members"][0]["value"], json!(user_id));

    // discovery
    let discovery = LambdaProcess::start(env!("CARGO_BIN_EXE_discovery"), "lockstep-discovery", &deployment.env).await;
    let event = http_api_event("GET", "/acme/scim/v2/ServiceProviderConfig", "", &json_headers, None);
    let (status, _, config) = discovery.call(event).await;
    assert_eq!(status, 200, "{config}");
    assert_eq!(config["patch"]["supported"], true);
    assert_eq!(
        config["meta"]["location"],
        "https://abcdef1234.execute-api.us-east-1.amazonaws.com/acme/scim/v2/ServiceProviderConfig"
    );

    // The logs: one JSON line per request, with request id, tenant, route,
    // status and latency, and never the token.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut lines = Vec::new();
    for f in [&users, &groups, &discovery] {
        lines.extend(f.logs.lock().unwrap_or_else(|e| e.into_inner()).clone());
    }
    let all = lines.join("\n");
    assert!(!all.contains(&deployment.token) && !all.contains(&deployment.other_tenant_token), "a token was logged");
    assert!(!all.contains("alex@contoso.com"), "personal data was logged");
    let requests: Vec<Value> = lines
        .iter()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["message"] == "request")
        .collect();
    let created_log = requests
        .iter()
        .find(|v| v["status"] == 201 && v["route"] == "/Users")
        .unwrap_or_else(|| panic!("no log line for the create:\n{all}"));
    assert_eq!(created_log["tenant"], "acme");
    assert_eq!(created_log["method"], "POST");
    assert!(created_log["request_id"].as_str().is_some_and(|id| !id.is_empty()));
    assert!(created_log["latency_ms"].is_number());
    // In Lambda the line is also a CloudWatch EMF document.
    assert_eq!(created_log["_aws"]["CloudWatchMetrics"][0]["Namespace"], "Lockstep");
    assert_eq!((created_log["Stage"].as_str(), created_log["StatusClass"].as_str()), (Some("sandbox"), Some("2xx")));
    assert_eq!((created_log["Requests"].as_i64(), created_log["Tenant"].as_str()), (Some(1), Some("acme")));
    assert!(requests.iter().any(|v| v["status"] == 401 && v["route"] == "/Users/{id}"), "{all}");
}

/// GIVEN a tenant that keeps deleted users 0 days, with 3 deleted users,
/// and a tenant connected to Microsoft Graph (its client secret in Secrets
/// Manager, a fake Graph with 2 users) WHEN EventBridge's schedule invokes
/// the job function THEN it purges the first tenant's users, pulls the
/// second's, and reports both as EMF metrics (JobFailures among them).
#[tokio::test(flavor = "multi_thread")]
async fn the_job_function_purges_and_pulls_on_schedule() {
    use lockstep_core::Kind;
    use lockstep_core::secrets::SecretStore;
    use lockstep_graph::mapping::{Mapping, SourceField, UserNameSource};
    use lockstep_graph::state::{self, Connection};
    use lockstep_tests::graph::{FakeGraph, graph_user};

    let mut env = lockstep_tests::emulated_stack().await;
    let var = |name: &str| env.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone()).unwrap_or_default();
    let table = DynamoTable::new(lockstep_tests::dynamodb_client(), var("TABLE_NAME"));
    let key = CursorKey::new(vec![1u8; 32]).unwrap_or_else(|e| panic!("{e}"));
    let roster = Roster::new(Arc::new(table), Arc::new(SystemClock), key, Limits::default());
    let settings = TenantSettings { retention_days: 0, ..TenantSettings::default() };
    let acme = roster.create_tenant(&tenant("acme"), "Acme", settings).await.unwrap_or_else(|e| panic!("{e}"));
    for i in 0..3 {
        let attrs = scim_protocol::parse_resource(
            scim_protocol::schema::user(),
            &json!({ "userName": format!("gone{i}@acme.example") }),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let user = roster.create(&acme, Kind::User, attrs, &[]).await.unwrap_or_else(|e| panic!("{e}"));
        roster.delete(&acme, Kind::User, &user.id, None).await.unwrap_or_else(|e| panic!("{e}"));
    }

    let secret = "fn~client-secret-value";
    let fake = FakeGraph::start("dir", "client", secret).await;
    fake.put_user(graph_user("g1", "Kari", "Nordmann", "kari@zinc.example", "Oslo", "Nurse"));
    fake.put_user(graph_user("g2", "Ola", "Hansen", "ola@zinc.example", "Oslo", "Manager"));
    let zinc = roster.create_tenant(&tenant("zinc"), "Zinc", TenantSettings::default()).await;
    let zinc = zinc.unwrap_or_else(|e| panic!("{e}"));
    let prefix = format!("lockstep/{}/graph/", uuid::Uuid::new_v4().simple());
    let secrets = lockstep_aws::SecretsManagerSecrets::new(lockstep_tests::secrets_client(), &prefix);
    secrets.put(&zinc.id, lockstep_graph::state::SECRET_NAME, secret).await.unwrap_or_else(|e| panic!("{e}"));
    let mapping = Mapping {
        user_name_from: UserNameSource::UserPrincipalName,
        unit_field: SourceField::Department,
        user_types_field: SourceField::JobTitle,
        units: vec!["Oslo".into()],
        user_types: vec!["Nurse".into(), "Manager".into()],
    };
    let connection = Connection {
        name: "Zinc".into(),
        directory_id: "dir".into(),
        client_id: "client".into(),
        secret_expires: "2027-01-31".into(),
        enabled: true,
        mapping,
        max_delete_percent: 20,
    };
    state::save_connection(&roster, &zinc.id, &connection).await.unwrap_or_else(|e| panic!("{e}"));
    env.extend([
        ("GRAPH_SECRET_PREFIX".to_string(), prefix),
        ("GRAPH_LOGIN_URL".to_string(), fake.url.clone()),
        ("GRAPH_API_URL".to_string(), fake.url.clone()),
    ]);
    // Due at the second they were deleted: let that second pass.
    tokio::time::sleep(Duration::from_millis(1100)).await;

    let job = LambdaProcess::start(env!("CARGO_BIN_EXE_job"), "lockstep-job", &env).await;
    let outcome = job.invoke(lockstep_tests::lambda::scheduled_event()).await;
    let lockstep_tests::lambda::Outcome::Response(report) = outcome else {
        panic!("the job failed: {outcome:?}\n{}", job.log_text())
    };
    assert_eq!((report["purged_users"].clone(), report["complete"].clone()), (json!(3), json!(true)), "{report}");
    assert_eq!(report["failures"], json!([]), "{report}");
    let left = roster.retired(&acme.id, Kind::User).await.unwrap_or_else(|e| panic!("{e}"));
    assert!(left.is_empty(), "{left:?}");
    assert_eq!(roster.count(&zinc.id, Kind::User).await.ok(), Some(2), "the Graph users were pulled");

    tokio::time::sleep(Duration::from_millis(200)).await;
    let lines: Vec<Value> = job
        .logs
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .collect();
    let run = lines
        .iter()
        .find(|v| v["message"] == "job run")
        .unwrap_or_else(|| panic!("no job line in:\n{}", job.log_text()));
    assert_eq!((run["PurgedUsers"].clone(), run["JobFailures"].clone()), (json!(3), json!(0)), "{run}");
    let emf = &run["_aws"]["CloudWatchMetrics"][0];
    assert_eq!((emf["Namespace"].as_str(), run["Stage"].as_str()), (Some("Lockstep"), Some("sandbox")));
    let names: Vec<&str> = emf["Metrics"].as_array().into_iter().flatten().filter_map(|m| m["Name"].as_str()).collect();
    assert!(names.contains(&"JobFailures") && names.contains(&"PurgedUsers"), "{names:?}");
    let pull = lines
        .iter()
        .find(|v| v["message"] == "graph pull" && v["Tenant"] == "zinc")
        .unwrap_or_else(|| panic!("no pull line:\n{}", job.log_text()));
    assert_eq!((pull["GraphCreated"].clone(), pull["GraphFailed"].clone()), (json!(2), json!(0)), "{pull}");
    assert_eq!(pull["_aws"]["CloudWatchMetrics"][0]["Dimensions"], json!([["Stage", "Tenant"]]));
    assert!(!job.log_text().contains(secret), "the secret was logged");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_function_without_its_configuration_fails_at_start_and_says_what_is_missing() {
    let mut f =
        LambdaProcess::start(env!("CARGO_BIN_EXE_users"), "lockstep-users", &lockstep_tests::emulator_env()).await;
    let status = (0..100)
        .find_map(|_| {
            std::thread::sleep(Duration::from_millis(50));
            f.child.try_wait().ok().flatten()
        })
        .unwrap_or_else(|| panic!("the function kept running without TABLE_NAME"));
    assert!(!status.success());
    std::thread::sleep(Duration::from_millis(100));
    let logs = f.log_text();
    for name in ["TABLE_NAME", "TOKEN_SECRET_PREFIX", "CURSOR_KEY_SECRET"] {
        assert!(logs.contains(name), "the error names {name}: {logs}");
    }
}
