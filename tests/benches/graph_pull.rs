//! The Microsoft Graph pull against a fake Graph (999 users a page, as
//! Graph serves them): 100,000 users pulled into the embedded store, then a
//! delta of 1,000 changes. Reports time, store calls and peak memory as a
//! Markdown table for docs/PERFORMANCE.md.
//!
//! `cargo bench -p lockstep-tests --bench graph_pull` (add `-- --users N`
//! or `-- --changes N` for other sizes).

use std::sync::Arc;
use std::time::{Duration, Instant};

use peak_alloc::PeakAlloc;

use lockstep_core::clock::SystemClock;
use lockstep_core::counting::{Calls, CountingTable};
use lockstep_core::cursor::CursorKey;
use lockstep_core::secrets::SecretStore;
use lockstep_core::store::Table;
use lockstep_core::{Limits, Roster, TenantId, TenantSettings};
use lockstep_embedded::{EmbeddedTable, FileSecrets};
use lockstep_graph::client::Endpoints;
use lockstep_graph::mapping::{Mapping, SourceField, UserNameSource};
use lockstep_graph::state::{self, Connection, LastRun, SECRET_NAME};
use lockstep_graph::sync::{self, Request};
use lockstep_tests::graph::{FakeGraph, graph_user};

/// Heap in use, and the most in use since the last reset: what the pull
/// holds at its peak, apart from what was in use before it (the fake
/// Graph's users).
#[global_allocator]
static HEAP: PeakAlloc = PeakAlloc;

/// Start measuring the peak from what is in use now; returns that.
fn reset_peak() -> usize {
    HEAP.reset_peak_usage();
    HEAP.current_usage()
}

fn mib(bytes: usize) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// The process's peak resident memory (kB), from /proc.
fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("VmHWM:")).map(str::to_string))
        .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        .unwrap_or(0)
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("VmRSS:")).map(str::to_string))
        .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        .unwrap_or(0)
}

fn row(what: &str, took: Duration, run: &LastRun, calls: Calls, users: usize, heap: usize) -> String {
    let c = &run.counts;
    let n = users.max(1) as f64;
    // At DynamoDB's latencies (about 6 ms a call) with the pull's 8 users
    // at a time, plus about 1.5 s per Graph page of 999 users.
    let estimate = calls.reads() as f64 * 6e-3 / 8.0 + calls.writes() as f64 * 6e-3 / 8.0 + c.pages as f64 * 1.5;
    format!(
        "| {what} | {:.1} s | {} created, {} updated, {} unchanged, {} deleted, {} pages | {:.2} reads + {:.2} writes per user ({} + {}) | {:.0} MiB | about {:.0} s |",
        took.as_secs_f64(),
        c.created,
        c.updated,
        c.unchanged,
        c.deleted,
        c.pages,
        calls.reads() as f64 / n,
        calls.writes() as f64 / n,
        calls.reads(),
        calls.writes(),
        mib(heap),
        estimate
    )
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let users = arg("--users", 100_000);
    let changes = arg("--changes", 1_000).min(users);
    let guard = tempfile::tempdir().expect("temporary directory");
    // A small page cache, so that memory measured is the pull's, not redb's.
    let table = EmbeddedTable::open_with_cache(&guard.path().join("bench.redb"), Some(16 << 20)).expect("open store");
    let counting = Arc::new(CountingTable::new(Arc::new(table.clone())));
    let key = CursorKey::new(vec![1u8; 32]).expect("key");
    let roster = Roster::new(counting.clone() as Arc<dyn Table>, Arc::new(SystemClock), key, Limits::default());
    let id = TenantId::parse("bench").expect("id");
    let tenant = roster.create_tenant(&id, "Bench", TenantSettings::default()).await.expect("tenant");
    let secrets = FileSecrets::new(guard.path().join("secrets"));
    secrets.put(&tenant.id, SECRET_NAME, "secret").await.expect("secret");
    let mapping = Mapping {
        user_name_from: UserNameSource::UserPrincipalName,
        unit_field: SourceField::Department,
        user_types_field: SourceField::JobTitle,
        units: (0..50).map(|i| format!("Unit {i}")).collect(),
        user_types: vec!["Nurse".into(), "Manager".into(), "Employee".into()],
    };
    let connection = Connection {
        name: "Bench".into(),
        directory_id: "dir".into(),
        client_id: "client".into(),
        secret_expires: "2030-01-01".into(),
        enabled: true,
        mapping,
        max_delete_percent: 20,
    };
    state::save_connection(&roster, &tenant.id, &connection).await.expect("connect");

    let before_fake = rss_kib();
    let fake = FakeGraph::start("dir", "client", "secret").await;
    for i in 0..users {
        fake.put_user(graph_user(
            &format!("{i:08x}-0000-4000-8000-000000000000"),
            "Kari",
            &format!("Nordmann{i}"),
            &format!("kari.{i}@contoso.com"),
            &format!("Unit {}", i % 60),
            "Nurse, Employee",
        ));
    }
    let fake_kib = rss_kib().saturating_sub(before_fake);
    let endpoints = Endpoints { login: fake.url.clone(), graph: fake.url.clone(), ..Endpoints::default() };
    counting.take();

    let base = reset_peak();
    let started = Instant::now();
    let first = sync::pull(&roster, &secrets, &endpoints, &tenant, Request::default(), &|| false)
        .await
        .expect("pull")
        .expect("enabled");
    let first_took = started.elapsed();
    let first_calls = counting.take();
    let first_heap = HEAP.peak_usage().saturating_sub(base);
    assert_eq!((first.result.as_str(), first.counts.created as usize), ("ok", users), "{first:?}");

    for i in 0..changes {
        let id = format!("{:08x}-0000-4000-8000-000000000000", i * (users / changes));
        if i % 10 == 0 {
            fake.remove_user(&id);
        } else {
            let n = i * (users / changes);
            fake.put_user(graph_user(
                &id,
                "Kari",
                &format!("Nordmann{n}"),
                &format!("kari.{n}@contoso.com"),
                "Unit 1",
                "Manager",
            ));
        }
    }
    let base = reset_peak();
    let started = Instant::now();
    let delta = sync::pull(&roster, &secrets, &endpoints, &tenant, Request::default(), &|| false)
        .await
        .expect("pull")
        .expect("enabled");
    let delta_took = started.elapsed();
    let delta_calls = counting.take();
    let delta_heap = HEAP.peak_usage().saturating_sub(base);
    assert_eq!(delta.result, "ok", "{delta:?}");

    println!(
        "{users} Graph users (999 a page), embedded store with durable commits and a 16 MiB page cache, 2 worker \
         threads; process peak {} MiB, of which the fake Graph holding every user about {} MiB\n",
        peak_rss_kib() / 1024,
        fake_kib / 1024
    );
    println!("| run | time here | what it did | store calls | heap the run added at its peak | estimate in Lambda |");
    println!("| --- | --- | --- | --- | --- | --- |");
    println!("{}", row("first pull", first_took, &first, first_calls, users, first_heap));
    println!("{}", row(&format!("delta of {changes} changes"), delta_took, &delta, delta_calls, changes, delta_heap));
}
