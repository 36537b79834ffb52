//! The worst request each route can be sent, and what one tenant's worst
//! requests do to another tenant's cheap ones.
//!
//! The SCIM router over the embedded store, in-process (no sockets): a
//! tenant with 9,000 users, 100 users of about 95 KB, 12 groups of 9,000
//! members and one of 10,000. For each worst request: wall time, the
//! process's CPU time and the response size (serially, on a quiet
//! machine). Then fairness, over real connections to the router served on
//! loopback by the same 2 workers: tenant `acme` sends its worst search from
//! 8 connections for 10 s while tenant `zinc` reads one user every 20 ms
//! from another; zinc's latency (measured by the client, waiting included)
//! is reported beside an idle baseline. Prints Markdown for
//! docs/PERFORMANCE.md (request log lines go to standard output too:
//! `grep -v '^{'`).
//!
//! `cargo bench -p lockstep-tests --bench worst_requests`

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use http_body_util::BodyExt;
use lockstep_core::clock::SystemClock;
use lockstep_core::cursor::CursorKey;
use lockstep_core::tokens;
use lockstep_core::{Limits, Roster, TenantId, TenantSettings};
use lockstep_embedded::{EmbeddedTable, FileTokens};
use lockstep_http::{App, Routes, router};
use serde_json::{Value, json};
use tower::ServiceExt;

const USER: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
const GROUP: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";
const SEARCH: &str = "urn:ietf:params:scim:api:messages:2.0:SearchRequest";
const PATCH_OP: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";

/// CPU time of this process so far (user + system), from /proc.
fn cpu_time() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let fields: Vec<&str> =
        stat.rsplit_once(')').map(|(_, rest)| rest.split_whitespace().collect()).unwrap_or_default();
    let ticks = |i: usize| fields.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    // Fields 14 and 15 of stat (utime, stime), counted after the command name.
    Duration::from_millis((ticks(11) + ticks(12)) * 10)
}

#[derive(Clone)]
struct Client {
    router: axum::Router,
}

impl Client {
    async fn send(&self, method: &str, uri: &str, token: &str, body: Option<String>) -> (u16, usize, Value) {
        let mut req = http::Request::builder()
            .method(method)
            .uri(uri)
            .header("host", "scim.example.com")
            .header("authorization", format!("Bearer {token}"));
        if body.is_some() {
            req = req.header("content-type", "application/scim+json");
        }
        let req = req.body(body.map_or_else(Body::empty, Body::from)).expect("request");
        let response = self.router.clone().oneshot(req).await.expect("infallible");
        let status = response.status().as_u16();
        let bytes = response.into_body().collect().await.map(|c| c.to_bytes()).unwrap_or_default();
        let json = if bytes.len() < 4096 { serde_json::from_slice(&bytes).unwrap_or(Value::Null) } else { Value::Null };
        (status, bytes.len(), json)
    }
}

async fn setup(path: &std::path::Path) -> (Client, String, String, String) {
    let tokens_dir = path.join("tokens");
    let store = FileTokens::new(tokens_dir.clone());
    let key = CursorKey::new(vec![9u8; 32]).expect("key");
    let table = EmbeddedTable::open(&path.join("store.redb")).expect("store");
    table.bulk_load();
    let roster = Roster::new(Arc::new(table.clone()), Arc::new(SystemClock), key, Limits::default());
    let now = time::OffsetDateTime::now_utc();
    let mut texts = Vec::new();
    for tenant in ["acme", "zinc"] {
        let id = TenantId::parse(tenant).expect("tenant");
        roster.create_tenant(&id, tenant, TenantSettings::default()).await.expect("tenant");
        let (text, record) = tokens::issue(None, None, Vec::new(), now).expect("token");
        tokens::add(&store, &id, &record).await.expect("token");
        texts.push(text);
    }
    let app = Arc::new(App::new(roster, Arc::new(store), Arc::new(SystemClock), None));
    let client = Client { router: router(app, Routes::All) };
    let (acme, zinc) = (texts[0].clone(), texts[1].clone());
    let started = Instant::now();
    let mut users = Vec::new();
    for i in 0..9_000 {
        let body = json!({ "schemas": [USER], "userName": format!("u{i:05}@acme.example"), "displayName": format!("User {i}"),
                           "emails": [{ "type": "work", "value": format!("u{i:05}@acme.example") }] });
        let (status, _, v) = client.send("POST", "/acme/scim/v2/Users", &acme, Some(body.to_string())).await;
        assert_eq!(status, 201, "{v}");
        users.push(v["id"].as_str().expect("id").to_string());
    }
    let big = "x".repeat(95 * 1024);
    for i in 0..100 {
        let body = json!({ "schemas": [USER], "userName": format!("big{i:03}@acme.example"), "title": "big", "nickName": big });
        let (status, _, v) = client.send("POST", "/acme/scim/v2/Users", &acme, Some(body.to_string())).await;
        assert_eq!(status, 201, "{v}");
    }
    let members: Vec<Value> = users.iter().map(|u| json!({ "value": u })).collect();
    for g in 0..12 {
        let body = json!({ "schemas": [GROUP], "displayName": format!("Group {g}"), "members": members });
        let (status, _, v) = client.send("POST", "/acme/scim/v2/Groups", &acme, Some(body.to_string())).await;
        assert!(status == 201, "{status} {v}");
    }
    let body = json!({ "schemas": [USER], "userName": "z@zinc.example" });
    let (_, _, v) = client.send("POST", "/zinc/scim/v2/Users", &zinc, Some(body.to_string())).await;
    let zinc_user = v["id"].as_str().expect("id").to_string();
    table.finish_bulk_load().await.expect("finish");
    eprintln!("set up in {:.1} s", started.elapsed().as_secs_f64());
    (client, acme, zinc, zinc_user)
}

struct Worst {
    what: &'static str,
    method: &'static str,
    uri: String,
    body: Option<String>,
}

fn worst_requests(a_user: &str) -> Vec<Worst> {
    // 200,000 copies of a short name: a 1 MB body.
    let copies = json!({ "schemas": [SEARCH], "attributes": vec!["id"; 200_000], "count": 1000 }).to_string();
    let distinct: Vec<String> = (0..256).map(|i| format!("name.n{i}")).collect();
    let distinct = json!({ "schemas": [SEARCH], "attributes": distinct, "count": 1000 }).to_string();
    let ops: Vec<Value> =
        (0..1000).map(|i| json!({ "op": "replace", "path": "displayName", "value": format!("D{i}") })).collect();
    let patch = json!({ "schemas": [PATCH_OP], "Operations": ops }).to_string();
    vec![
        Worst {
            what: "POST /Users/.search, 200,000 names (1 MB), count 1000",
            method: "POST",
            uri: "/acme/scim/v2/Users/.search".into(),
            body: Some(copies),
        },
        Worst {
            what: "POST /Users/.search, 256 distinct names, count 1000",
            method: "POST",
            uri: "/acme/scim/v2/Users/.search".into(),
            body: Some(distinct),
        },
        Worst {
            what: "GET /Groups?count=1000&attributes=members (12 × 9,000)",
            method: "GET",
            uri: "/acme/scim/v2/Groups?count=1000&attributes=members".into(),
            body: None,
        },
        Worst {
            what: "GET /Users?startIndex=9001&count=1000 (100 users of 95 KB)",
            method: "GET",
            uri: "/acme/scim/v2/Users?startIndex=9001&count=1000".into(),
            body: None,
        },
        Worst {
            what: "GET /Users?filter=title eq \"big\"&count=1000",
            method: "GET",
            uri: "/acme/scim/v2/Users?filter=title%20eq%20%22big%22&count=1000".into(),
            body: None,
        },
        Worst {
            what: "GET /Users?count=1000&cursor=",
            method: "GET",
            uri: "/acme/scim/v2/Users?count=1000&cursor=".into(),
            body: None,
        },
        Worst {
            what: "PATCH /Users/{id}, 1,000 operations",
            method: "PATCH",
            uri: format!("/acme/scim/v2/Users/{a_user}"),
            body: Some(patch),
        },
        Worst { what: "GET /Schemas", method: "GET", uri: "/acme/scim/v2/Schemas".into(), body: None },
    ]
}

fn percentile(samples: &mut [Duration], p: f64) -> Duration {
    samples.sort();
    let i = ((samples.len() as f64 - 1.0) * p).round() as usize;
    samples.get(i).copied().unwrap_or_default()
}

/// One HTTP/1.1 exchange on a kept-alive connection: (status, body bytes).
fn exchange(
    conn: &mut BufReader<TcpStream>,
    method: &str,
    path: &str,
    token: &str,
    body: Option<&str>,
) -> (u16, usize) {
    let body = body.unwrap_or("");
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: scim.example.com\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/scim+json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    let stream = conn.get_mut();
    stream.write_all(head.as_bytes()).expect("write");
    stream.write_all(body.as_bytes()).expect("write");
    let mut line = String::new();
    conn.read_line(&mut line).expect("status line");
    let status = line.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let mut length = 0usize;
    loop {
        line.clear();
        conn.read_line(&mut line).expect("header");
        if line.trim().is_empty() {
            break;
        }
        if let Some((k, v)) = line.split_once(':')
            && k.eq_ignore_ascii_case("content-length")
        {
            length = v.trim().parse().unwrap_or(0);
        }
    }
    let mut buf = vec![0u8; length];
    conn.read_exact(&mut buf).expect("body");
    (status, length)
}

fn connect(addr: std::net::SocketAddr) -> BufReader<TcpStream> {
    let stream = TcpStream::connect(addr).expect("connect");
    stream.set_nodelay(true).expect("nodelay");
    BufReader::new(stream)
}

/// Zinc's latency, one request every 20 ms from its own thread, measured
/// from the client's side (waiting for a worker included).
fn zinc_latency(addr: std::net::SocketAddr, zinc: &str, user: &str, for_time: Duration) -> Vec<Duration> {
    let mut conn = connect(addr);
    let path = format!("/zinc/scim/v2/Users/{user}");
    let mut samples = Vec::new();
    let until = Instant::now() + for_time;
    while Instant::now() < until {
        let started = Instant::now();
        let (status, _) = exchange(&mut conn, "GET", &path, zinc, None);
        assert_eq!(status, 200);
        samples.push(started.elapsed());
        std::thread::sleep(Duration::from_millis(20));
    }
    samples
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    runtime.block_on(async {
        let roster = tempfile::tempdir().expect("tempdir");
        let (client, acme, zinc, zinc_user) = setup(roster.path()).await;
        let (_, _, first) = client.send("GET", "/acme/scim/v2/Users?count=1", &acme, None).await;
        let a_user = first["Resources"][0]["id"].as_str().unwrap_or_default().to_string();

        println!("| request | status | wall ms | CPU ms | response bytes |");
        println!("| --- | --- | --- | --- | --- |");
        for w in worst_requests(&a_user) {
            let (cpu, wall) = (cpu_time(), Instant::now());
            let (status, bytes, _) = client.send(w.method, &w.uri, &acme, w.body.clone()).await;
            let wall = wall.elapsed();
            let cpu = cpu_time().saturating_sub(cpu);
            println!("| {} | {status} | {:.1} | {} | {bytes} |", w.what, wall.as_secs_f64() * 1e3, cpu.as_millis());
        }

        // Fairness over real connections: the router served on loopback by
        // the same 2 workers, clients on threads of their own.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let served = client.router.clone();
        tokio::spawn(async move { axum::serve(listener, served).await });
        let heavy = worst_requests(&a_user).into_iter().next().expect("a worst request");
        let (zinc2, user2) = (zinc.clone(), zinc_user.clone());
        let mut idle = tokio::task::spawn_blocking(move || zinc_latency(addr, &zinc2, &user2, Duration::from_secs(3)))
            .await
            .expect("idle");
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let mut senders = Vec::new();
        for _ in 0..8 {
            let (acme, stop) = (acme.clone(), Arc::clone(&stop));
            let (uri, body) = (heavy.uri.clone(), heavy.body.clone().unwrap_or_default());
            senders.push(std::thread::spawn(move || {
                let mut answered = std::collections::BTreeMap::<u16, u64>::new();
                let mut conn = connect(addr);
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let (status, _) = exchange(&mut conn, "POST", &uri, &acme, Some(&body));
                    *answered.entry(status).or_default() += 1;
                }
                answered
            }));
        }
        std::thread::sleep(Duration::from_millis(500));
        let (zinc2, user2) = (zinc.clone(), zinc_user.clone());
        let mut busy = tokio::task::spawn_blocking(move || zinc_latency(addr, &zinc2, &user2, Duration::from_secs(10)))
            .await
            .expect("busy");
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let mut answered = std::collections::BTreeMap::<u16, u64>::new();
        for t in senders {
            for (status, n) in t.join().expect("sender") {
                *answered.entry(status).or_default() += n;
            }
        }
        println!();
        println!("| zinc's GET /Users/{{id}} | samples | p50 ms | p99 ms | max ms |");
        println!("| --- | --- | --- | --- | --- |");
        for (what, samples) in [("alone", &mut idle), ("while acme sends its worst search on 8 connections", &mut busy)]
        {
            let n = samples.len();
            let (p50, p99) = (percentile(samples, 0.5), percentile(samples, 0.99));
            let max = samples.iter().max().copied().unwrap_or_default();
            println!(
                "| {what} | {n} | {:.2} | {:.2} | {:.2} |",
                p50.as_secs_f64() * 1e3,
                p99.as_secs_f64() * 1e3,
                max.as_secs_f64() * 1e3
            );
        }
        println!();
        println!("acme's worst searches answered meanwhile, by status: {answered:?}");
    });
}
