//! Test support: the local stand-ins for AWS that the tests start by
//! themselves, and fresh tables on either storage adapter.
//!
//! The DynamoDB-API emulator is moto's server (PyPI `moto[server]`): it
//! supports transactions with cancellation reasons, condition expressions,
//! GSIs, query paging, TTL configuration and Secrets Manager, which the
//! alternatives (dynalite: no transactions, no TTL) do not. On first use it
//! is installed into a virtualenv under `target/test-tools/` and started on
//! a free loopback port. If it cannot be installed or started, the tests
//! fail with the reason; they never skip.

pub mod graph;
pub mod lambda;

use std::io::Read;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::config::{BehaviorVersion, Credentials, Region};
use lockstep_aws::DynamoTable;
use lockstep_core::store::Table;
use lockstep_embedded::EmbeddedTable;

/// The moto version the tests pin.
const MOTO_REQUIREMENT: &str = "moto[server]==5.2.1";

/// A running emulator; stopped when the test process exits, because its
/// watchdog ends it when the pipe from this process closes.
pub struct Emulator {
    pub endpoint: String,
    _watchdog: Mutex<Child>,
}

fn tools_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join("target"));
    target.join("test-tools")
}

fn run(cmd: &mut Command, what: &str) -> Result<(), String> {
    let out = cmd.output().map_err(|e| format!("{what}: could not run {cmd:?}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{what} failed ({}):\n{}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

/// The `moto_server` executable, installed on first use. Concurrent test
/// processes serialise on a lock directory; a sentinel file written last
/// marks a complete install (a virtualenv cannot be moved once built, so
/// it is built in place and an interrupted one is started over).
fn moto_server() -> Result<PathBuf, String> {
    if let Some(explicit) = std::env::var_os("LOCKSTEP_MOTO_SERVER") {
        return Ok(PathBuf::from(explicit));
    }
    let dir = tools_dir();
    let venv = dir.join("moto-venv");
    let server = venv.join("bin").join("moto_server");
    let done = dir.join(format!("moto-venv.{}.ok", MOTO_REQUIREMENT.replace(['[', ']', '='], "_")));
    if done.exists() {
        return Ok(server);
    }
    std::fs::create_dir_all(&dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    let lock = dir.join("moto-install.lock");
    let started = Instant::now();
    while std::fs::create_dir(&lock).is_err() {
        if done.exists() {
            return Ok(server);
        }
        if started.elapsed() > Duration::from_secs(600) {
            return Err(format!("waited 10 minutes for another test process to install moto ({})", lock.display()));
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    let result = (|| {
        if done.exists() {
            return Ok(());
        }
        let _ = std::fs::remove_dir_all(&venv);
        run(Command::new("python3").arg("-m").arg("venv").arg(&venv), "creating a Python virtualenv for moto")?;
        run(
            Command::new(venv.join("bin").join("pip")).args([
                "install",
                "--quiet",
                "--disable-pip-version-check",
                MOTO_REQUIREMENT,
            ]),
            "installing moto from PyPI",
        )?;
        std::fs::write(&done, MOTO_REQUIREMENT).map_err(|e| format!("writing {}: {e}", done.display()))
    })();
    let _ = std::fs::remove_dir(&lock);
    result.map(|()| server)
}

fn free_port() -> Result<u16, String> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| format!("finding a free port: {e}"))?;
    listener.local_addr().map(|a| a.port()).map_err(|e| e.to_string())
}

/// Runs the server (its output to the log file named first) and ends it
/// when standard input closes, that is when the test process that started
/// it exits, however it exits. The log is a file, not a pipe: a pipe that
/// nobody reads fills up and stops the server mid-write.
const WATCHDOG: &str = r#"
import subprocess, sys
log = open(sys.argv[1], "ab")
server = subprocess.Popen(sys.argv[2:], stdout=log, stderr=log)
try:
    sys.stdin.read()
finally:
    server.terminate()
    try:
        server.wait(5)
    except Exception:
        server.kill()
"#;

/// moto's server, applying one request at a time. moto carries out a
/// request in several steps without a lock, and a transaction that fails
/// puts back a copy of the whole table taken when it began: two requests
/// at once can undo each other (a conditional write that lost, rolled back
/// while the one that won was being written, erases the winner). DynamoDB
/// applies every request atomically; serialising them here restores that,
/// so the tests see DynamoDB's guarantees rather than the emulator's races.
const SERIAL_SERVER: &str = r#"
import io, logging, sys, threading
from werkzeug.serving import run_simple
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app

app = DomainDispatcherApplication(create_backend_app)
one_at_a_time = threading.Lock()
# Errors only: a line per request is noise.
logging.getLogger("werkzeug").setLevel(logging.ERROR)

def serial(environ, start_response):
    # The body is read before the lock is taken: a client that stalls
    # mid-request must not hold up everyone else.
    length = int(environ.get("CONTENT_LENGTH") or 0)
    environ["wsgi.input"] = io.BytesIO(environ["wsgi.input"].read(length) if length > 0 else b"")
    with one_at_a_time:
        return list(app(environ, start_response))

run_simple(sys.argv[1], int(sys.argv[2]), serial, threaded=True)
"#;

fn start_emulator() -> Result<Emulator, String> {
    let server = moto_server()?;
    let port = free_port()?;
    let python = server.with_file_name("python");
    let log = tools_dir().join(format!("emulator-{port}.log"));
    let mut child = Command::new(&python)
        .arg("-c")
        .arg(WATCHDOG)
        .arg(&log)
        .arg(&python)
        .args(["-c", SERIAL_SERVER, "127.0.0.1", &port.to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("starting {}: {e}", server.display()))?;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            break;
        }
        if let Ok(Some(status)) = child.try_wait() {
            let mut err = String::new();
            if let Some(mut e) = child.stderr.take() {
                let _ = e.read_to_string(&mut err);
            }
            let server_log = std::fs::read_to_string(&log).unwrap_or_default();
            return Err(format!("moto_server exited ({status}) before listening:\n{err}\n{server_log}"));
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let server_log = std::fs::read_to_string(&log).unwrap_or_default();
            return Err(format!("moto_server did not listen on port {port} within 60 s:\n{server_log}"));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(Emulator { endpoint: format!("http://127.0.0.1:{port}"), _watchdog: Mutex::new(child) })
}

/// The emulator of this test process, started on first use. Panics (the
/// test fails) with the reason when it cannot run.
pub fn emulator() -> &'static Emulator {
    static EMULATOR: OnceLock<Result<Emulator, String>> = OnceLock::new();
    match EMULATOR.get_or_init(start_emulator) {
        Ok(e) => e,
        Err(why) => panic!("the DynamoDB / Secrets Manager emulator is required and could not start: {why}"),
    }
}

/// A DynamoDB client for the emulator, configured the way a deployment
/// overrides endpoints (`AWS_ENDPOINT_URL`), with dummy credentials.
pub fn dynamodb_client() -> aws_sdk_dynamodb::Client {
    let config = aws_sdk_dynamodb::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .endpoint_url(&emulator().endpoint)
        .credentials_provider(Credentials::new("test", "test", None, None, "tests"))
        .build();
    aws_sdk_dynamodb::Client::from_conf(config)
}

/// A Secrets Manager client for the emulator.
pub fn secrets_client() -> aws_sdk_secretsmanager::Client {
    let config = aws_sdk_secretsmanager::Config::builder()
        .behavior_version(aws_sdk_secretsmanager::config::BehaviorVersion::latest())
        .region(aws_sdk_secretsmanager::config::Region::new("us-east-1"))
        .endpoint_url(&emulator().endpoint)
        .credentials_provider(aws_sdk_secretsmanager::config::Credentials::new("test", "test", None, None, "tests"))
        .build();
    aws_sdk_secretsmanager::Client::from_conf(config)
}

/// The environment that points a child process's AWS SDK at the emulator,
/// as an operator points it at any endpoint: `AWS_ENDPOINT_URL` and
/// credentials, nothing product-specific.
pub fn emulator_env() -> Vec<(String, String)> {
    [
        ("AWS_ENDPOINT_URL", emulator().endpoint.as_str()),
        ("AWS_ACCESS_KEY_ID", "test"),
        ("AWS_SECRET_ACCESS_KEY", "test"),
        ("AWS_REGION", "us-east-1"),
        ("AWS_EC2_METADATA_DISABLED", "true"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

/// The resources a deployed stack provides, made on the emulator: the
/// table, the cursor-key secret, and the token secret prefix. Returns the
/// environment the functions and the operator CLI read.
pub async fn emulated_stack() -> Vec<(String, String)> {
    let suffix = uuid::Uuid::new_v4().simple().to_string();
    let table_name = format!("lockstep-{suffix}");
    if let Err(e) = DynamoTable::create_table(&dynamodb_client(), &table_name).await {
        panic!("creating table {table_name} on the emulator: {e}");
    }
    let cursor_secret = format!("lockstep/{suffix}/cursor-key");
    if let Err(e) = secrets_client().create_secret().name(&cursor_secret).secret_string("k".repeat(64)).send().await {
        panic!("creating {cursor_secret}: {e:?}");
    }
    let mut env = emulator_env();
    env.extend([
        ("TABLE_NAME".to_string(), table_name),
        ("TOKEN_SECRET_PREFIX".to_string(), format!("lockstep/{suffix}/tenants/")),
        ("CURSOR_KEY_SECRET".to_string(), cursor_secret),
        ("STAGE".to_string(), "sandbox".to_string()),
        ("RUST_LOG".to_string(), "info".to_string()),
    ]);
    env
}

/// A fresh, empty table on the emulator.
pub async fn dynamodb_table() -> DynamoTable {
    let client = dynamodb_client();
    let name = format!("lockstep-test-{}", uuid::Uuid::new_v4().simple());
    if let Err(e) = DynamoTable::create_table(&client, &name).await {
        panic!("creating table {name} on the emulator: {e}");
    }
    DynamoTable::new(client, name)
}

/// A fresh embedded table in a temporary directory, removed when the
/// returned guard drops.
pub fn embedded_table() -> (EmbeddedTable, tempfile::TempDir) {
    let dir = match tempfile::tempdir() {
        Ok(d) => d,
        Err(e) => panic!("creating a temporary directory: {e}"),
    };
    match EmbeddedTable::open(&dir.path().join("store.redb")) {
        Ok(t) => (t, dir),
        Err(e) => panic!("opening an embedded table: {e}"),
    }
}

/// Which adapter a conformance test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Adapter {
    Embedded,
    DynamoDb,
}

/// A fresh table of either adapter, with whatever keeps it alive.
pub struct TestTable {
    pub table: Arc<dyn Table>,
    pub adapter: Adapter,
    _dir: Option<tempfile::TempDir>,
}

impl TestTable {
    /// The embedded store's file; `None` on DynamoDB.
    pub fn store_file(&self) -> Option<std::path::PathBuf> {
        self._dir.as_ref().map(|d| d.path().join("store.redb"))
    }
}

pub async fn fresh_table(adapter: Adapter) -> TestTable {
    match adapter {
        Adapter::Embedded => {
            let (table, dir) = embedded_table();
            TestTable { table: Arc::new(table), adapter, _dir: Some(dir) }
        }
        Adapter::DynamoDb => TestTable { table: Arc::new(dynamodb_table().await), adapter, _dir: None },
    }
}
