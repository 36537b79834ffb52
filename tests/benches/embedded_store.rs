//! Embedded store under load: 100,000 users and a 10,000-member group,
//! then the latency of each directory operation (durable commits).
//! Prints a Markdown table for docs/PERFORMANCE.md.
//!
//! `cargo bench -p lockstep-tests --bench embedded_store` (add `-- --users N`
//! for another size).

use std::sync::Arc;
use std::time::{Duration, Instant};

use lockstep_core::clock::SystemClock;
use lockstep_core::cursor::CursorKey;
use lockstep_core::store::Table;
use lockstep_core::{Kind, Limits, Roster, Tenant, TenantId, TenantSettings};
use lockstep_embedded::EmbeddedTable;
use scim_protocol::filter::Filter;
use scim_protocol::schema::user;
use scim_protocol::{Paging, PatchRequest, parse_resource};
use serde_json::json;

struct Stats {
    name: String,
    samples: Vec<Duration>,
}

impl Stats {
    fn row(&mut self) -> String {
        self.samples.sort();
        let pct = |p: f64| {
            let i = ((self.samples.len() as f64 - 1.0) * p).round() as usize;
            self.samples.get(i).copied().unwrap_or_default()
        };
        let mean = self.samples.iter().sum::<Duration>() / u32::try_from(self.samples.len().max(1)).unwrap_or(1);
        format!(
            "| {} | {} | {:.1} | {:.1} | {:.1} | {:.1} |",
            self.name,
            self.samples.len(),
            mean.as_secs_f64() * 1e6,
            pct(0.5).as_secs_f64() * 1e6,
            pct(0.9).as_secs_f64() * 1e6,
            pct(0.99).as_secs_f64() * 1e6
        )
    }
}

async fn measure<F, Fut>(name: &str, n: usize, mut op: F) -> Stats
where
    F: FnMut(usize) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let mut samples = Vec::with_capacity(n);
    for i in 0..n {
        let start = Instant::now();
        op(i).await;
        samples.push(start.elapsed());
    }
    Stats { name: name.to_string(), samples }
}

fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).and_then(|v| v.parse().ok()).unwrap_or(default)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let users = arg("--users", 100_000);
    let members = arg("--members", 10_000).min(users);
    let dir_guard = tempfile::tempdir().expect("temporary directory");
    let path = dir_guard.path().join("bench.redb");
    let table = EmbeddedTable::open(&path).expect("open store");
    let roster = Roster::new(
        Arc::new(table.clone()) as Arc<dyn Table>,
        Arc::new(SystemClock),
        CursorKey::new(vec![1u8; 32]).expect("key"),
        Limits::default(),
    );
    let id = TenantId::parse("bench").expect("tenant id");
    let tenant: Tenant = roster.create_tenant(&id, "Bench", TenantSettings::default()).await.expect("tenant");

    // Load through the real create and PATCH paths, without waiting for the disk.
    table.bulk_load();
    let loaded = lockstep_cli::seed::load(&roster, &tenant, users, members).await.expect("load");
    let (ids, big_id) = (loaded.user_ids, loaded.group_id.expect("group"));
    let (load_users, load_group) = (loaded.users_took, loaded.group_took);
    table.finish_bulk_load().await.expect("flush");
    let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);

    let n = 2_000;
    let pick = |i: usize| ids[(i * 7919) % ids.len()].clone();
    let mut rows = Vec::new();
    rows.push(
        measure("get user by id", n, |i| {
            let (roster, id, uid) = (&roster, &tenant.id, pick(i));
            async move {
                roster.get(id, Kind::User, &uid).await.expect("get");
            }
        })
        .await,
    );
    rows.push(
        measure("filter userName eq (index lookup)", n, |i| {
            let (roster, id) = (&roster, &tenant.id);
            let f =
                Filter::parse(&format!(r#"userName eq "USER{:06}@example.com""#, (i * 7919) % users)).expect("filter");
            async move {
                let page =
                    roster.search(id, Kind::User, Some(&f), &Paging::Index { start_index: 1, count: None }).await;
                assert_eq!(page.expect("search").resources.len(), 1);
            }
        })
        .await,
    );
    rows.push(
        measure("list 100 users, sequential pages", 200, |i| {
            let (roster, id) = (&roster, &tenant.id);
            async move {
                let paging = Paging::Index { start_index: 1 + 100 * (i % (users / 100)) as u64, count: Some(100) };
                let page = roster.search(id, Kind::User, None, &paging).await.expect("list");
                assert_eq!(page.resources.len(), 100);
            }
        })
        .await,
    );
    rows.push(
        measure("create user (durable)", 500, |i| {
            let (roster, tenant) = (&roster, &tenant);
            async move {
                let attrs =
                    parse_resource(user(), &json!({ "userName": format!("new{i}@example.com") })).expect("user");
                roster.create(tenant, Kind::User, attrs, &[]).await.expect("create");
            }
        })
        .await,
    );
    rows.push(
        measure("PATCH user, Entra disable (durable)", 500, |i| {
            let (roster, tenant, uid) = (&roster, &tenant, pick(i));
            async move {
                let body = json!({ "Operations": [{ "op": "Replace", "path": "active", "value": if i % 2 == 0 { "False" } else { "True" } }] });
                let req = PatchRequest::parse(&body).expect("patch");
                roster.patch(tenant, Kind::User, &uid, &req, None).await.expect("patch");
            }
        })
        .await,
    );
    rows.push(
        measure(&format!("add + remove 1 member, group of {members} (durable)"), 500, |i| {
            let (roster, tenant, gid, uid) =
                (&roster, &tenant, big_id.clone(), ids[members + (i % (users - members).max(1))].clone());
            async move {
                for op in ["add", "remove"] {
                    let body = if op == "add" {
                        json!({ "Operations": [{ "op": "add", "path": "members", "value": [{ "value": uid }] }] })
                    } else {
                        json!({ "Operations": [{ "op": "remove", "path": format!("members[value eq \"{uid}\"]") }] })
                    };
                    let req = PatchRequest::parse(&body).expect("patch");
                    roster.patch(tenant, Kind::Group, &gid, &req, None).await.expect("member change");
                }
            }
        })
        .await,
    );
    rows.push(
        measure("groups of a user (reverse index)", n, |i| {
            let (roster, id, uid) = (&roster, &tenant.id, ids[i % members].clone());
            async move {
                assert_eq!(roster.groups_of(id, &uid).await.expect("groups").len(), 1);
            }
        })
        .await,
    );
    rows.push(
        measure(&format!("read all {members} members of the group"), 20, |_| {
            let (roster, id, gid) = (&roster, &tenant.id, big_id.clone());
            async move {
                let mut after = None;
                let mut n = 0;
                loop {
                    let (page, next) = roster.members(id, &gid, after, 1000).await.expect("members");
                    n += page.len();
                    match next {
                        Some(k) => after = Some(k),
                        None => break,
                    }
                }
                assert!(n >= members);
            }
        })
        .await,
    );

    println!(
        "Loaded {users} users in {:.1} s ({:.0} creates/s, commits not awaiting the disk)",
        load_users.as_secs_f64(),
        users as f64 / load_users.as_secs_f64()
    );
    println!(
        "Added {members} members in batches of 100 in {:.1} s; store file {:.0} MiB",
        load_group.as_secs_f64(),
        size as f64 / 1048576.0
    );
    println!();
    println!("| operation | samples | mean µs | p50 µs | p90 µs | p99 µs |");
    println!("| --- | --- | --- | --- | --- | --- |");
    for mut r in rows {
        println!("{}", r.row());
    }
}
