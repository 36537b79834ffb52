//! Cold start of each function binary: process start to first answered
//! request, as Lambda runs it (a Runtime API emulator hands over the
//! invocation), with the SDK clients built and warmed against the
//! DynamoDB / Secrets Manager emulator. Prints a Markdown table for
//! docs/PERFORMANCE.md.
//!
//! `cargo bench -p lockstep-functions --bench cold_start [-- --runs N]`

use std::sync::Arc;
use std::time::{Duration, Instant};

use lockstep_aws::{DynamoTable, SecretsManagerTokens};
use lockstep_core::clock::SystemClock;
use lockstep_core::cursor::CursorKey;
use lockstep_core::store::{Key, Table};
use lockstep_core::tokens::{self, TokenStore};
use lockstep_core::{Limits, Roster, TenantId, TenantSettings};
use lockstep_tests::lambda::{LambdaProcess, http_api_event};

fn percentile(samples: &mut [Duration], p: f64) -> f64 {
    samples.sort();
    let i = ((samples.len() as f64 - 1.0) * p).round() as usize;
    samples.get(i).map_or(0.0, |d| d.as_secs_f64() * 1000.0)
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let runs: usize = args
        .iter()
        .position(|a| a == "--runs")
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);

    let stack = lockstep_tests::emulated_stack().await;
    let var = |name: &str| stack.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone()).unwrap_or_default();
    let store = SecretsManagerTokens::new(lockstep_tests::secrets_client(), var("TOKEN_SECRET_PREFIX"));
    let table = DynamoTable::new(lockstep_tests::dynamodb_client(), var("TABLE_NAME"));
    let roster = Roster::new(
        Arc::new(table),
        Arc::new(SystemClock),
        CursorKey::new(vec![1u8; 32]).expect("key"),
        Limits::default(),
    );
    let tenant = TenantId::parse("acme").expect("tenant id");
    roster.create_tenant(&tenant, "Acme", TenantSettings::default()).await.expect("tenant");
    let (token, record) = tokens::issue(None, None, vec![], time::OffsetDateTime::now_utc()).expect("token");
    tokens::add(&store, &tenant, &record).await.expect("save token");
    let auth = format!("Bearer {token}");

    // The emulator's share of a cold start, measured from this (warm)
    // process: a cold start waits on pairs of concurrent calls, one after
    // another: (cursor key secret, table warm-up) at init, (tenant item,
    // token secret) at the first request, then the request's own read
    // (users and groups; discovery answers from memory).
    let warm_table = DynamoTable::new(lockstep_tests::dynamodb_client(), var("TABLE_NAME"));
    let probe = Key::new("WARMUP", "WARMUP");
    let started = Instant::now();
    for _ in 0..20 {
        let (secret, item) = tokio::join!(store.load(&tenant), warm_table.get(&probe));
        secret.expect("secret read");
        item.expect("table read");
    }
    let pair_ms = started.elapsed().as_secs_f64() * 1000.0 / 20.0;

    println!(
        "| function | binary (bench build, unstripped) | init (start → first poll) p50 | first response p50 | p90 | max | p50 less emulator I/O |"
    );
    println!("| --- | --- | --- | --- | --- | --- | --- |");
    for (binary, name, path, query, waits) in [
        (env!("CARGO_BIN_EXE_users"), "users", "/acme/scim/v2/Users", "filter=userName%20eq%20%22x%22", 3.0),
        (env!("CARGO_BIN_EXE_groups"), "groups", "/acme/scim/v2/Groups", "filter=displayName%20eq%20%22x%22", 3.0),
        (env!("CARGO_BIN_EXE_discovery"), "discovery", "/acme/scim/v2/ServiceProviderConfig", "", 2.0),
    ] {
        let mut init = Vec::with_capacity(runs);
        let mut first = Vec::with_capacity(runs);
        for _ in 0..runs {
            let process = LambdaProcess::start(binary, name, &stack).await;
            let event = http_api_event("GET", path, query, &[("authorization", auth.as_str())], None);
            let (status, _, body) = process.call(event).await;
            let answered = process.started.elapsed();
            assert_eq!(status, 200, "{body}");
            let polled = process.runtime.first_poll().expect("the function polled");
            init.push(polled.duration_since(process.started));
            first.push(answered);
        }
        let size = std::fs::metadata(binary).map(|m| m.len()).unwrap_or(0);
        let first_p50 = percentile(&mut first, 0.5);
        println!(
            "| {name} | {:.1} MB | {:.1} ms | {first_p50:.1} ms | {:.1} ms | {:.1} ms | {:.1} ms |",
            size as f64 / 1e6,
            percentile(&mut init, 0.5),
            percentile(&mut first, 0.9),
            percentile(&mut first, 1.0),
            first_p50 - waits * pair_ms,
        );
    }
    println!(
        "\n{runs} cold starts each; one pair of concurrent emulator calls (a secret and a table read) took \
         {pair_ms:.2} ms on average; a cold start waits on three such pairs (two for discovery)."
    );
}
