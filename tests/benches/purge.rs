//! The scheduled job's purge on the embedded store: 10,000 users in 10
//! groups each are deleted (soft), time passes beyond retention, and one
//! job run purges them. Reports the rate and the store calls per user of
//! the delete and of the purge, as a Markdown table for docs/PERFORMANCE.md.
//!
//! `cargo bench -p lockstep-tests --bench purge` (add `-- --users N` or
//! `-- --groups N` for other sizes).

use std::sync::Arc;
use std::time::Instant;

use lockstep_core::clock::ManualClock;
use lockstep_core::counting::{Calls, CountingTable};
use lockstep_core::cursor::CursorKey;
use lockstep_core::store::Table;
use lockstep_core::{Kind, Limits, Roster, TenantId, TenantSettings, job};
use lockstep_embedded::EmbeddedTable;
use scim_protocol::schema::{group, user};
use scim_protocol::{PatchRequest, parse_resource};
use serde_json::json;

fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn per_user(calls: Calls, users: usize) -> String {
    let n = users.max(1) as f64;
    format!(
        "{:.2} reads ({:.2} get, {:.2} batch get, {:.2} query), {:.2} writes ({:.2} write, {:.2} transaction, {:.2} batch)",
        calls.reads() as f64 / n,
        calls.get as f64 / n,
        calls.batch_get as f64 / n,
        calls.query as f64 / n,
        calls.writes() as f64 / n,
        calls.write as f64 / n,
        calls.transact as f64 / n,
        calls.batch_write as f64 / n,
    )
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let users = arg("--users", 10_000);
    let groups = arg("--groups", 10);
    let dir_guard = tempfile::tempdir().expect("temporary directory");
    let table = EmbeddedTable::open(&dir_guard.path().join("bench.redb")).expect("open store");
    let counting = Arc::new(CountingTable::new(Arc::new(table.clone())));
    let clock = Arc::new(ManualClock::at(1_767_225_600));
    let key = CursorKey::new(vec![1u8; 32]).expect("key");
    let roster = Roster::new(counting.clone() as Arc<dyn Table>, clock.clone(), key, Limits::default());
    let id = TenantId::parse("bench").expect("tenant id");
    let settings = TenantSettings { retention_days: 90, ..TenantSettings::default() };
    let tenant = roster.create_tenant(&id, "Bench", settings).await.expect("tenant");

    // Load: users, and groups of every user, written in bulk (one commit).
    table.bulk_load();
    let mut ids = Vec::with_capacity(users);
    for i in 0..users {
        let attrs = parse_resource(user(), &json!({ "userName": format!("user{i}@bench.example") })).expect("user");
        ids.push(roster.create(&tenant, Kind::User, attrs, &[]).await.expect("create user").id);
    }
    for g in 0..groups {
        let attrs = parse_resource(group(), &json!({ "displayName": format!("Group {g}") })).expect("group");
        let group_id = roster.create(&tenant, Kind::Group, attrs, &[]).await.expect("create group").id;
        for chunk in ids.chunks(1000) {
            let values: Vec<_> = chunk.iter().map(|id| json!({ "value": id })).collect();
            let add =
                PatchRequest::parse(&json!({ "Operations": [{ "op": "add", "path": "members", "value": values }] }))
                    .expect("patch");
            roster.patch(&tenant, Kind::Group, &group_id, &add, None).await.expect("add members");
        }
    }
    table.finish_bulk_load().await.expect("commit the load");
    counting.take();

    // Delete every user, as the identity provider would (durable commits).
    let started = Instant::now();
    for id in &ids {
        roster.delete(&tenant, Kind::User, id, None).await.expect("delete");
    }
    let delete_took = started.elapsed();
    let delete_calls = counting.take();

    // Past retention, one job run purges them.
    clock.advance(91 * 86_400);
    let started = Instant::now();
    let report = job::run(&roster, &[], &|| false).await.expect("job run");
    let purge_took = started.elapsed();
    let purge_calls = counting.take();
    assert_eq!(report.purged_users as usize, users, "{report:?}");
    assert!(roster.retired(&id, Kind::User).await.expect("list").is_empty());

    let rate = |took: std::time::Duration| users as f64 / took.as_secs_f64();
    println!("{users} users in {groups} groups each, embedded store, durable commits, 2 worker threads\n");
    println!("| phase | time | users per second | store calls per user |");
    println!("| --- | --- | --- | --- |");
    println!(
        "| delete (soft): the user, its index entry, {groups} memberships both ways | {:.1} s | {:.0} | {} |",
        delete_took.as_secs_f64(),
        rate(delete_took),
        per_user(delete_calls, users)
    );
    println!(
        "| purge after retention (one job run) | {:.1} s | {:.0} | {} |",
        purge_took.as_secs_f64(),
        rate(purge_took),
        per_user(purge_calls, users)
    );
}
