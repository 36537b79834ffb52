//! A fake Microsoft identity platform and Graph, served over HTTP on
//! loopback for the pull's tests: a client-credentials token endpoint (with
//! scripted refusals) and `GET /v1.0/users/delta` serving scripted rounds
//! (pages, removals, throttling, timeouts, 410 Gone, expired delta tokens).
//! The real services cannot be reached from tests; this speaks their wire
//! format as documented.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine;
use serde_json::{Value, json};

/// A fault the next Graph request meets.
#[derive(Debug, Clone)]
pub enum Fault {
    /// An HTTP status with a `Retry-After` header (seconds), e.g. 429.
    Status { status: u16, retry_after: Option<u64> },
    /// No answer for this long (a client timeout).
    Delay(Duration),
}

#[derive(Default)]
struct FakeState {
    directory_id: String,
    client_id: String,
    secret: String,
    /// Token endpoint refusals: AADSTS codes to answer with.
    refuse_with: Option<u64>,
    /// The `roles` claim of issued tokens.
    roles: Vec<String>,
    users: BTreeMap<String, Arc<Value>>,
    /// (version, id, the changed properties of a partial change) of every
    /// change, in order; `None`: the whole user (or its removal).
    changes: Vec<(u64, String, Option<Value>)>,
    version: u64,
    /// Delta tokens below this are expired; `gone` says how (410, or 400
    /// syncStateNotFound).
    expired_below: u64,
    expired_as_gone: bool,
    /// A page size forced by a test; otherwise what `Prefer:
    /// odata.maxpagesize` asks (at most 999), or Graph's default of 100.
    page_size: Option<usize>,
    /// Every `Prefer` header of a delta request.
    prefers: Vec<String>,
    /// The users of each round started, shared with the directory's map
    /// (a round is a snapshot, and a cheap one).
    rounds: BTreeMap<String, Arc<Vec<Arc<Value>>>>,
    faults: VecDeque<Fault>,
    token_requests: usize,
    selects: Vec<String>,
}

/// The fake's address and script.
#[derive(Clone)]
pub struct FakeGraph {
    pub url: String,
    state: Arc<Mutex<FakeState>>,
}

/// A Graph user as the delta query returns it.
pub fn graph_user(id: &str, given: &str, surname: &str, upn: &str, department: &str, job_title: &str) -> Value {
    json!({ "id": id, "userPrincipalName": upn, "mail": upn, "givenName": given, "surname": surname,
            "displayName": format!("{given} {surname}"), "accountEnabled": true, "department": department,
            "jobTitle": job_title })
}

fn jwt(roles: &[String]) -> String {
    let encode = |v: &Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
    format!("{}.{}.signature", encode(&json!({ "alg": "none" })), encode(&json!({ "roles": roles })))
}

impl FakeGraph {
    /// Start on a free loopback port, for the app registration given.
    pub async fn start(directory_id: &str, client_id: &str, secret: &str) -> Self {
        let state = Arc::new(Mutex::new(FakeState {
            directory_id: directory_id.into(),
            client_id: client_id.into(),
            secret: secret.into(),
            roles: vec!["User.Read.All".into()],
            ..FakeState::default()
        }));
        let app = Router::new()
            .route("/{directory}/oauth2/v2.0/token", post(token))
            .route("/v1.0/users/delta", get(delta))
            .with_state(Arc::clone(&state));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap_or_else(|e| panic!("bind: {e}"));
        let url = format!("http://{}", listener.local_addr().unwrap_or_else(|e| panic!("{e}")));
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self { url, state }
    }

    fn with<T>(&self, f: impl FnOnce(&mut FakeState) -> T) -> T {
        f(&mut self.state.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// Add or change a user (a change the next delta round reports).
    pub fn put_user(&self, user: Value) {
        self.with(|s| {
            let id = user["id"].as_str().unwrap_or_default().to_string();
            s.version += 1;
            s.changes.push((s.version, id.clone(), None));
            s.users.insert(id, Arc::new(user));
        });
    }

    /// Change some properties of a user (`null` clears one): a delta round
    /// reports only these, as Graph may.
    pub fn change_user(&self, id: &str, properties: Value) {
        self.with(|s| {
            let mut user = s.users.get(id).map(|u| u.as_ref().clone()).unwrap_or_else(|| json!({ "id": id }));
            if let (Some(user), Some(changed)) = (user.as_object_mut(), properties.as_object()) {
                user.extend(changed.iter().map(|(k, v)| (k.clone(), v.clone())));
            }
            s.version += 1;
            s.changes.push((s.version, id.to_string(), Some(properties)));
            s.users.insert(id.to_string(), Arc::new(user));
        });
    }

    /// Every `Prefer` header the delta requests carried.
    pub fn prefers(&self) -> Vec<String> {
        self.with(|s| s.prefers.clone())
    }

    /// Remove a user from the directory (reported as `@removed`).
    pub fn remove_user(&self, id: &str) {
        self.with(|s| {
            s.version += 1;
            s.changes.push((s.version, id.to_string(), None));
            s.users.remove(id);
        });
    }

    pub fn set_page_size(&self, n: usize) {
        self.with(|s| s.page_size = Some(n.max(1)));
    }

    /// The next Graph requests meet these faults, in order.
    pub fn fail_next(&self, faults: &[Fault]) {
        self.with(|s| s.faults.extend(faults.iter().cloned()));
    }

    /// The token endpoint refuses with this AADSTS code.
    pub fn refuse_tokens_with(&self, code: Option<u64>) {
        self.with(|s| s.refuse_with = code);
    }

    /// Issued tokens carry these application permissions.
    pub fn grant_roles(&self, roles: &[&str]) {
        self.with(|s| s.roles = roles.iter().map(|r| r.to_string()).collect());
    }

    /// Every delta token issued so far stops working: as 410 Gone, or as
    /// 400 `syncStateNotFound`.
    pub fn expire_delta_tokens(&self, as_gone: bool) {
        self.with(|s| {
            s.expired_below = s.version + 1;
            s.expired_as_gone = as_gone;
        });
    }

    pub fn token_requests(&self) -> usize {
        self.with(|s| s.token_requests)
    }

    /// The `$select` of every round started.
    pub fn selects(&self) -> Vec<String> {
        self.with(|s| s.selects.clone())
    }
}

async fn token(
    State(state): State<Arc<Mutex<FakeState>>>,
    Path(directory): Path<String>,
    body: axum::body::Bytes,
) -> Response {
    let form: BTreeMap<String, String> = serde_urlencoded::from_bytes(&body).unwrap_or_default();
    let mut s = state.lock().unwrap_or_else(|e| e.into_inner());
    s.token_requests += 1;
    let refuse = |status: StatusCode, code: u64, text: &str| {
        let body = json!({ "error": "invalid_client", "error_description": format!("AADSTS{code}: {text}"),
                           "error_codes": [code] });
        (status, axum::Json(body)).into_response()
    };
    if directory != s.directory_id {
        return refuse(StatusCode::BAD_REQUEST, 90_002, "Tenant not found.");
    }
    if form.get("client_id") != Some(&s.client_id) {
        return refuse(StatusCode::BAD_REQUEST, 700_016, "Application not found in the directory.");
    }
    if let Some(code) = s.refuse_with {
        return refuse(StatusCode::UNAUTHORIZED, code, "Refused as scripted.");
    }
    if form.get("client_secret") != Some(&s.secret) {
        return refuse(StatusCode::UNAUTHORIZED, 7_000_215, "Invalid client secret provided.");
    }
    let ok = form.get("grant_type").map(String::as_str) == Some("client_credentials")
        && form.get("scope").map(String::as_str) == Some("https://graph.microsoft.com/.default");
    if !ok {
        return (StatusCode::BAD_REQUEST, "unexpected grant").into_response();
    }
    axum::Json(json!({ "token_type": "Bearer", "expires_in": 3599, "access_token": jwt(&s.roles) })).into_response()
}

async fn delta(
    State(state): State<Arc<Mutex<FakeState>>>,
    Query(query): Query<BTreeMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let fault = {
        let mut s = state.lock().unwrap_or_else(|e| e.into_inner());
        s.faults.pop_front()
    };
    match fault {
        Some(Fault::Status { status, retry_after }) => {
            let mut response =
                (StatusCode::from_u16(status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE), "scripted").into_response();
            if let Some(secs) = retry_after
                && let Ok(v) = secs.to_string().parse()
            {
                response.headers_mut().insert("retry-after", v);
            }
            return response;
        }
        Some(Fault::Delay(d)) => tokio::time::sleep(d).await,
        None => {}
    }
    let mut s = state.lock().unwrap_or_else(|e| e.into_inner());
    let bearer = headers.get("authorization").and_then(|v| v.to_str().ok()).is_some_and(|v| v.starts_with("Bearer "));
    if !bearer {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    if !s.roles.iter().any(|r| r == "User.Read.All") {
        let body = json!({ "error": { "code": "Authorization_RequestDenied",
                                      "message": "Insufficient privileges to complete the operation." } });
        return (StatusCode::FORBIDDEN, axum::Json(body)).into_response();
    }
    let base = format!("http://{}", headers.get("host").and_then(|h| h.to_str().ok()).unwrap_or("localhost"));
    let prefer = headers.get("prefer").and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
    let asked = prefer
        .split(',')
        .find_map(|p| p.trim().strip_prefix("odata.maxpagesize="))
        .and_then(|n| n.trim().parse::<usize>().ok());
    s.prefers.push(prefer.clone());
    let page_size = s.page_size.unwrap_or_else(|| asked.map_or(100, |n| n.clamp(1, 999)));
    // A page of a round already started.
    if let (Some(round), Some(skip)) = (query.get("round"), query.get("$skiptoken")) {
        let Some(items) = s.rounds.get(round).cloned() else { return StatusCode::GONE.into_response() };
        let offset: usize = skip.parse().unwrap_or(0);
        return page(&base, round, &items, offset, page_size);
    }
    let since = match query.get("$deltatoken") {
        Some(token) => {
            let since: u64 = token.parse().unwrap_or(0);
            if since < s.expired_below {
                if s.expired_as_gone {
                    return StatusCode::GONE.into_response();
                }
                let body =
                    json!({ "error": { "code": "syncStateNotFound", "message": "The delta token has expired." } });
                return (StatusCode::BAD_REQUEST, axum::Json(body)).into_response();
            }
            Some(since)
        }
        None => {
            let select = query.get("$select").cloned().unwrap_or_default();
            s.selects.push(select);
            None
        }
    };
    let items: Vec<Arc<Value>> = match since {
        None => s.users.values().cloned().collect(),
        Some(v) => {
            // Per user changed since `v`: only the changed properties when
            // every change was partial, else the whole user (or `@removed`).
            let mut changed: BTreeMap<&String, Option<serde_json::Map<String, Value>>> = BTreeMap::new();
            for (_, id, partial) in s.changes.iter().filter(|(at, _, _)| *at > v) {
                let entry = changed.entry(id).or_insert_with(|| Some(serde_json::Map::new()));
                match (entry.as_mut(), partial.as_ref().and_then(Value::as_object)) {
                    (Some(props), Some(p)) => props.extend(p.iter().map(|(k, v)| (k.clone(), v.clone()))),
                    _ => *entry = None,
                }
            }
            changed
                .into_iter()
                .map(|(id, partial)| match (s.users.get(id), partial) {
                    (Some(_), Some(mut props)) => {
                        props.insert("id".into(), json!(id));
                        Arc::new(Value::Object(props))
                    }
                    (Some(user), None) => Arc::clone(user),
                    (None, _) => Arc::new(json!({ "id": id, "@removed": { "reason": "deleted" } })),
                })
                .collect()
        }
    };
    let round = format!("r{}-{}", s.version, s.rounds.len());
    let items = Arc::new(items);
    s.rounds.insert(round.clone(), Arc::clone(&items));
    page(&base, &round, &items, 0, page_size)
}

fn page(base: &str, round: &str, items: &[Arc<Value>], offset: usize, page_size: usize) -> Response {
    let end = (offset + page_size).min(items.len());
    let value: Vec<&Value> = items[offset.min(end)..end].iter().map(|v| v.as_ref()).collect();
    let mut body = json!({ "@odata.context": format!("{base}/v1.0/$metadata#users"), "value": value });
    if end < items.len() {
        body["@odata.nextLink"] = json!(format!("{base}/v1.0/users/delta?round={round}&$skiptoken={end}"));
    } else {
        let version: u64 = round.trim_start_matches('r').split('-').next().and_then(|v| v.parse().ok()).unwrap_or(0);
        body["@odata.deltaLink"] = json!(format!("{base}/v1.0/users/delta?$deltatoken={version}"));
    }
    axum::Json(body).into_response()
}
