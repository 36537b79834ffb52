//! Lambda stand-ins: a Lambda Runtime API emulator that a real function
//! binary polls for invocations (as it would inside AWS), and API Gateway
//! HTTP API (payload format 2.0) events built from a captured fixture.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};
use tokio::sync::{Mutex, mpsc, oneshot, watch};

/// What a function answered to one invocation.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// `POST /runtime/invocation/{id}/response`.
    Response(Value),
    /// `POST /runtime/invocation/{id}/error`.
    Error(Value),
}

struct Invocation {
    id: String,
    event: Value,
    reply: oneshot::Sender<Outcome>,
}

struct Shared {
    /// When the function first asked for work: the end of its init.
    first_poll: std::sync::Mutex<Option<Instant>>,
    queue: Mutex<mpsc::UnboundedReceiver<Invocation>>,
    pending: Mutex<HashMap<String, oneshot::Sender<Outcome>>>,
    init_error: watch::Sender<Option<String>>,
}

/// The Runtime API (`/2018-06-01/runtime/...`) on a loopback port. Point a
/// function at it with `AWS_LAMBDA_RUNTIME_API=<address>`.
pub struct RuntimeApi {
    pub address: SocketAddr,
    queue: mpsc::UnboundedSender<Invocation>,
    init_error: watch::Receiver<Option<String>>,
    server: tokio::task::JoinHandle<()>,
    shared: Arc<Shared>,
}

impl Drop for RuntimeApi {
    fn drop(&mut self) {
        self.server.abort();
    }
}

async fn next(State(shared): State<Arc<Shared>>) -> Response {
    shared.first_poll.lock().unwrap_or_else(|e| e.into_inner()).get_or_insert_with(Instant::now);
    // Long poll, as the real API does: the function waits here between invocations.
    let Some(invocation) = shared.queue.lock().await.recv().await else {
        return StatusCode::GONE.into_response();
    };
    shared.pending.lock().await.insert(invocation.id.clone(), invocation.reply);
    let deadline = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default() + Duration::from_secs(30);
    let mut headers = HeaderMap::new();
    let mut set = |name: &'static str, value: String| {
        if let Ok(v) = HeaderValue::from_str(&value) {
            headers.insert(name, v);
        }
    };
    set("lambda-runtime-aws-request-id", invocation.id);
    set("lambda-runtime-deadline-ms", deadline.as_millis().to_string());
    set("lambda-runtime-invoked-function-arn", "arn:aws:lambda:us-east-1:123456789012:function:lockstep-test".into());
    set("lambda-runtime-trace-id", "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1".into());
    (StatusCode::OK, headers, invocation.event.to_string()).into_response()
}

fn body_json(body: &Bytes) -> Value {
    serde_json::from_slice(body).unwrap_or_else(|_| Value::String(String::from_utf8_lossy(body).into_owned()))
}

async fn respond(State(shared): State<Arc<Shared>>, Path(id): Path<String>, body: Bytes) -> StatusCode {
    match shared.pending.lock().await.remove(&id) {
        Some(reply) => {
            let _ = reply.send(Outcome::Response(body_json(&body)));
            StatusCode::ACCEPTED
        }
        None => StatusCode::BAD_REQUEST,
    }
}

async fn fail(State(shared): State<Arc<Shared>>, Path(id): Path<String>, body: Bytes) -> StatusCode {
    match shared.pending.lock().await.remove(&id) {
        Some(reply) => {
            let _ = reply.send(Outcome::Error(body_json(&body)));
            StatusCode::ACCEPTED
        }
        None => StatusCode::BAD_REQUEST,
    }
}

async fn init_error(State(shared): State<Arc<Shared>>, body: Bytes) -> StatusCode {
    shared.init_error.send_replace(Some(String::from_utf8_lossy(&body).into_owned()));
    StatusCode::ACCEPTED
}

impl RuntimeApi {
    pub async fn start() -> Self {
        let (queue_tx, queue_rx) = mpsc::unbounded_channel();
        let (init_tx, init_rx) = watch::channel(None);
        let shared = Arc::new(Shared {
            first_poll: std::sync::Mutex::new(None),
            queue: Mutex::new(queue_rx),
            pending: Mutex::new(HashMap::new()),
            init_error: init_tx,
        });
        let app = Router::new()
            .route("/2018-06-01/runtime/invocation/next", get(next))
            .route("/2018-06-01/runtime/invocation/{id}/response", post(respond))
            .route("/2018-06-01/runtime/invocation/{id}/error", post(fail))
            .route("/2018-06-01/runtime/init/error", post(init_error))
            .with_state(Arc::clone(&shared));
        let listener = match tokio::net::TcpListener::bind("127.0.0.1:0").await {
            Ok(l) => l,
            Err(e) => panic!("binding the Runtime API emulator: {e}"),
        };
        let address = match listener.local_addr() {
            Ok(a) => a,
            Err(e) => panic!("{e}"),
        };
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self { address, queue: queue_tx, init_error: init_rx, server, shared }
    }

    /// When the function first polled for an invocation, if it has.
    pub fn first_poll(&self) -> Option<Instant> {
        *self.shared.first_poll.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The environment a function process needs to run under this emulator.
    pub fn function_env(&self, name: &str) -> Vec<(String, String)> {
        [
            ("AWS_LAMBDA_RUNTIME_API", self.address.to_string()),
            ("AWS_LAMBDA_FUNCTION_NAME", name.to_string()),
            ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256".to_string()),
            ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST".to_string()),
            ("AWS_LAMBDA_LOG_GROUP_NAME", format!("/aws/lambda/{name}")),
            ("AWS_LAMBDA_LOG_STREAM_NAME", "2026/11/23/[$LATEST]0123456789abcdef".to_string()),
            ("AWS_REGION", "us-east-1".to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
    }

    /// Queue an event and wait (at most `timeout`) for the function's answer.
    /// An init error reported by the function ends the wait with its text.
    pub async fn invoke(&self, event: Value, timeout: Duration) -> Result<Outcome, String> {
        let (reply, answer) = oneshot::channel();
        let id = uuid::Uuid::new_v4().to_string();
        self.queue.send(Invocation { id, event, reply }).map_err(|_| "the emulator has stopped".to_string())?;
        let mut init_error = self.init_error.clone();
        tokio::select! {
            outcome = answer => outcome.map_err(|_| "the invocation was dropped".to_string()),
            _ = init_error.wait_for(Option::is_some) => {
                Err(format!("the function reported an init error: {:?}", self.init_error.borrow().clone()))
            }
            _ = tokio::time::sleep(timeout) => Err(format!("no answer within {timeout:?}")),
        }
    }
}

impl Outcome {
    /// The API Gateway response a function returned: status, headers, and
    /// the body parsed as JSON (`null` when empty). Panics on an error outcome.
    pub fn http(self) -> (u16, Value, Value) {
        let Outcome::Response(response) = self else { panic!("the function failed the invocation: {self:?}") };
        let status = u16::try_from(response["statusCode"].as_u64().unwrap_or_default()).unwrap_or_default();
        let body = response["body"].as_str().map_or(Value::Null, |b| serde_json::from_str(b).unwrap_or(Value::Null));
        (status, response["headers"].clone(), body)
    }
}

/// A function binary running as Lambda runs it: started with the Lambda
/// environment, polling its own Runtime API emulator. Its stdout and stderr
/// (the JSON logs) are collected. The process is killed before the emulator
/// stops (fields drop in order).
pub struct LambdaProcess {
    pub child: Child,
    pub logs: Arc<std::sync::Mutex<Vec<String>>>,
    pub runtime: RuntimeApi,
    pub started: Instant,
}

impl Drop for LambdaProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl LambdaProcess {
    /// Start `binary` with exactly `env` plus the Lambda variables (nothing
    /// inherited from the test's own environment).
    pub async fn start(binary: &str, name: &str, env: &[(String, String)]) -> Self {
        let runtime = RuntimeApi::start().await;
        let mut all = env.to_vec();
        all.extend(runtime.function_env(name));
        let started = Instant::now();
        let mut child = Command::new(binary)
            .env_clear()
            .envs(all.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("starting {binary}: {e}"));
        let logs = Arc::new(std::sync::Mutex::new(Vec::new()));
        let streams: [Option<Box<dyn std::io::Read + Send>>; 2] = [
            child.stdout.take().map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
            child.stderr.take().map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
        ];
        for stream in streams.into_iter().flatten() {
            let logs = Arc::clone(&logs);
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    logs.lock().unwrap_or_else(|e| e.into_inner()).push(line);
                }
            });
        }
        Self { child, logs, runtime, started }
    }

    /// Invoke with an event and return the HTTP response (status, headers, body).
    pub async fn call(&self, event: Value) -> (u16, Value, Value) {
        match self.runtime.invoke(event, Duration::from_secs(30)).await {
            Ok(outcome) => outcome.http(),
            Err(e) => panic!("{e}; the function's output:\n{}", self.log_text()),
        }
    }

    /// Invoke with any event and return what the function answered.
    pub async fn invoke(&self, event: Value) -> Outcome {
        match self.runtime.invoke(event, Duration::from_secs(30)).await {
            Ok(outcome) => outcome,
            Err(e) => panic!("{e}; the function's output:\n{}", self.log_text()),
        }
    }

    pub fn log_text(&self) -> String {
        self.logs.lock().unwrap_or_else(|e| e.into_inner()).join("\n")
    }
}

/// An EventBridge Scheduled Event, as a schedule rule invokes the job with.
pub fn scheduled_event() -> Value {
    match serde_json::from_str(include_str!("../fixtures/eventbridge-scheduled-event.json")) {
        Ok(v) => v,
        Err(e) => panic!("the scheduled event fixture is not JSON: {e}"),
    }
}

/// The captured API Gateway HTTP API event (payload format 2.0) that every
/// test event is made from.
pub const HTTP_API_EVENT_FIXTURE: &str = include_str!("../fixtures/apigw-http-v2-event.json");

/// An HTTP API event for one request, as API Gateway sends it for the
/// `$default` stage: `path` without the query, `query` already encoded.
pub fn http_api_event(method: &str, path: &str, query: &str, headers: &[(&str, &str)], body: Option<&str>) -> Value {
    let mut event: Value = match serde_json::from_str(HTTP_API_EVENT_FIXTURE) {
        Ok(v) => v,
        Err(e) => panic!("the event fixture is not JSON: {e}"),
    };
    let mut header_map = serde_json::Map::new();
    for (k, v) in headers {
        header_map.insert(k.to_ascii_lowercase(), json!(v));
    }
    header_map.insert("host".into(), json!("abcdef1234.execute-api.us-east-1.amazonaws.com"));
    let params: serde_json::Map<String, Value> = serde_urlencoded::from_str::<Vec<(String, String)>>(query)
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| (k, json!(v)))
        .collect();
    event["routeKey"] = json!("$default");
    event["rawPath"] = json!(path);
    event["rawQueryString"] = json!(query);
    event["headers"] = Value::Object(header_map);
    event["queryStringParameters"] = if params.is_empty() { Value::Null } else { Value::Object(params) };
    event["requestContext"]["http"]["method"] = json!(method);
    event["requestContext"]["http"]["path"] = json!(path);
    event["requestContext"]["requestId"] = json!(uuid::Uuid::new_v4().to_string());
    event["requestContext"]["routeKey"] = json!("$default");
    event["pathParameters"] = Value::Null;
    event["body"] = body.map_or(Value::Null, |b| json!(b));
    event["isBase64Encoded"] = json!(false);
    event
}
