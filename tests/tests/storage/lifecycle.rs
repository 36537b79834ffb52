//! The lifecycle on both adapters, with a test clock: soft delete and
//! restore, kept and unlinked groups, `soft_delete` deactivation, purge
//! after retention, the sweep of half-failed deletes, and the scheduled
//! job (concurrent runs, a run cut off by its time budget).

use std::sync::atomic::{AtomicUsize, Ordering};

use lockstep_core::clock::ManualClock;
use lockstep_core::job;
use lockstep_core::model;
use lockstep_core::{Change, ChangeKind, ChangeSink, Retirement, TenantId};

use super::*;
use crate::roster::Interfering;

const DAY: i64 = 86_400;
/// 2026-01-01T00:00:00Z.
const START: i64 = 1_767_225_600;

fn at_start() -> Arc<ManualClock> {
    Arc::new(ManualClock::at(START))
}

fn roster_at(table: Arc<dyn Table>, clock: Arc<ManualClock>) -> Roster {
    let key = CursorKey::new(vec![7u8; 32]).unwrap_or_else(|e| panic!("{e}"));
    Roster::new(table, clock, key, Limits::default())
}

fn never() -> impl Fn() -> bool + Sync {
    || false
}

async fn user_names(roster: &Roster, t: &Tenant) -> Vec<String> {
    let page = roster.search(&t.id, Kind::User, None, &index(1, 100)).await.unwrap_or_else(|e| panic!("{e}"));
    page.resources.iter().filter_map(|s| s.resource.get("userName")?.as_str().map(str::to_string)).collect()
}

/// Every item that could still hold something of user `id` (named
/// `user_name`, once in `groups`): the live item, its userName entry, the
/// retired item and its purge entry, a sweep marker, and memberships both
/// ways. Read by key and by partition, as the data model lays them out.
async fn traces_of_user(table: &Arc<dyn Table>, t: &TenantId, id: &str, user_name: &str, groups: &[&str]) -> usize {
    let t = t.as_str();
    let mut keys = vec![
        model::resource(t, Kind::User, id),
        model::index_entry(t, model::IndexAttr::UserName, user_name, true, id),
        model::retired(t, Kind::User, id),
        model::sweep(t, Kind::User, id),
    ];
    keys.extend(groups.iter().map(|g| model::member(t, g, id)));
    let mut found = 0;
    for key in &keys {
        found += usize::from(table.get(key).await.unwrap_or_else(|e| panic!("{e}")).is_some());
    }
    let reverse = Query::table(model::member_of_pk(t, id), SortKey::All, 1000);
    found += table.query(&reverse).await.unwrap_or_else(|e| panic!("{e}")).items.len();
    let purge = Query { index: Index::Gsi1, pk: model::purge_pk(t), sk: SortKey::All, limit: 1000, start_after: None };
    let entries = table.query(&purge).await.unwrap_or_else(|e| panic!("{e}")).items;
    found + entries.iter().filter(|i| i.sk == id).count()
}

/// GIVEN a user in a group WHEN the directory deletes it THEN SCIM answers
/// 404 for it, it is in no list, filter or group, and its userName creates
/// a new user with a new id; the record says when, why and until when it
/// is kept, and which groups it was in.
pub(crate) async fn deleted_users_leave_scim_and_free_their_names(t: TestTable) {
    let clock = at_start();
    let roster = roster_at(Arc::clone(&t.table), clock.clone());
    let acme = tenant(&roster, "acme").await;
    let u = new_user(&roster, &acme, "leaver@x.io").await;
    let g = new_group(&roster, &acme, "Team", &[&u]).await;

    roster.delete(&acme, Kind::User, &u.id, None).await.unwrap_or_else(|e| panic!("{e}"));

    let gone = roster.get(&acme.id, Kind::User, &u.id).await.map_err(scim).err();
    assert_eq!(gone.map(|e| e.status), Some(404));
    assert!(user_names(&roster, &acme).await.is_empty());
    assert!(find(&roster, &acme, Kind::User, r#"userName eq "leaver@x.io""#).await.is_empty());
    assert!(member_ids(&roster, &acme, &g.id).await.is_empty());
    assert_eq!(roster.count(&acme.id, Kind::User).await.ok(), Some(0));
    let again = roster.delete(&acme, Kind::User, &u.id, None).await.map_err(scim).err();
    assert_eq!(again.map(|e| e.status), Some(404), "a repeated DELETE is 404");

    let retired = roster.retired_one(&acme.id, Kind::User, &u.id).await.unwrap_or_else(|e| panic!("{e}"));
    let retired = retired.unwrap_or_else(|| panic!("the deleted user is kept"));
    assert_eq!(retired.why, Retirement::Deleted);
    assert_eq!(retired.retired_at, "2026-01-01T00:00:00Z");
    assert_eq!(retired.purge_after.as_deref(), Some("2026-04-01T00:00:00Z"), "90 days by default");
    assert_eq!(retired.groups, vec![g.id.clone()]);
    assert_eq!(retired.resource.get("userName"), Some(&json!("leaver@x.io")));

    let anew = new_user(&roster, &acme, "leaver@x.io").await;
    assert_ne!(anew.id, u.id);
    assert_eq!(find(&roster, &acme, Kind::User, r#"userName eq "leaver@x.io""#).await, vec![anew.id]);
}

/// GIVEN a deleted user WHEN an operator restores it THEN it is back with
/// the same id, deactivated, in its group, found by userName; GIVEN a
/// deleted user whose userName was taken meanwhile THEN the restore is
/// refused, says so, and changes nothing.
pub(crate) async fn restore_brings_a_user_back_or_says_why_not(t: TestTable) {
    let clock = at_start();
    let roster = roster_at(Arc::clone(&t.table), clock.clone());
    let acme = tenant(&roster, "acme").await;
    let u = new_user(&roster, &acme, "back@x.io").await;
    let g = new_group(&roster, &acme, "Team", &[&u]).await;
    roster.delete(&acme, Kind::User, &u.id, None).await.unwrap_or_else(|e| panic!("{e}"));
    clock.advance(DAY);

    let back = roster.restore_user(&acme, &u.id).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(back.id, u.id);
    assert_eq!(back.resource.get("active"), Some(&json!(false)));
    assert!(back.version > u.version, "ETags never repeat");
    assert_eq!(member_ids(&roster, &acme, &g.id).await, BTreeSet::from([u.id.clone()]));
    assert_eq!(find(&roster, &acme, Kind::User, r#"userName eq "back@x.io""#).await, vec![u.id.clone()]);
    assert_eq!(roster.retired_one(&acme.id, Kind::User, &u.id).await.ok(), Some(None));
    assert_eq!(roster.count(&acme.id, Kind::User).await.ok(), Some(1));

    roster.delete(&acme, Kind::User, &u.id, None).await.unwrap_or_else(|e| panic!("{e}"));
    let taker = new_user(&roster, &acme, "BACK@x.io").await;
    let refused = roster.restore_user(&acme, &u.id).await.map_err(scim).err();
    let refused = refused.unwrap_or_else(|| panic!("a restore onto a taken userName is refused"));
    assert_eq!((refused.status, refused.scim_type), (409, Some(ScimType::Uniqueness)));
    assert!(refused.detail.contains("cannot be restored") && refused.detail.contains("userName"), "{}", refused.detail);
    assert!(roster.retired_one(&acme.id, Kind::User, &u.id).await.ok().flatten().is_some(), "still kept");
    assert_eq!(find(&roster, &acme, Kind::User, r#"userName eq "back@x.io""#).await, vec![taker.id]);
    let unknown = roster.restore_user(&acme, "no-such-id").await.map_err(scim).err();
    assert_eq!(unknown.map(|e| e.status), Some(404));
}

/// GIVEN a user deleted in a tenant that keeps data 30 days, in 3 groups
/// WHEN the job runs before and after the 30 days THEN nothing is purged
/// before, and after not one of its items is left.
pub(crate) async fn purge_after_retention_leaves_nothing(t: TestTable) {
    let clock = at_start();
    let roster = roster_at(Arc::clone(&t.table), clock.clone());
    let settings = TenantSettings { retention_days: 30, ..TenantSettings::default() };
    let acme = tenant_with(&roster, "acme", settings).await;
    let u = new_user(&roster, &acme, "purged@x.io").await;
    let mut groups = Vec::new();
    for name in ["One", "Two", "Three"] {
        groups.push(new_group(&roster, &acme, name, &[&u]).await.id);
    }
    let group_ids: Vec<&str> = groups.iter().map(String::as_str).collect();
    let before = traces_of_user(&t.table, &acme.id, &u.id, "purged@x.io", &group_ids).await;
    assert_eq!(before, 1 + 1 + 3 + 3, "the user, its userName entry, 3 memberships both ways");

    roster.delete(&acme, Kind::User, &u.id, None).await.unwrap_or_else(|e| panic!("{e}"));
    let kept = traces_of_user(&t.table, &acme.id, &u.id, "purged@x.io", &group_ids).await;
    assert_eq!(kept, 2, "the kept record, and its entry in the purge index");

    clock.advance(29 * DAY);
    let early = job::run(&roster, &[], &never()).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((early.purged_users, early.complete), (0, true));
    assert!(roster.retired_one(&acme.id, Kind::User, &u.id).await.ok().flatten().is_some());

    clock.advance(DAY + 1);
    let due = job::run(&roster, &[], &never()).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((due.purged_users, due.failures.len(), due.complete), (1, 0, true));
    assert_eq!(traces_of_user(&t.table, &acme.id, &u.id, "purged@x.io", &group_ids).await, 0);
    let restore = roster.restore_user(&acme, &u.id).await.map_err(scim).err();
    assert_eq!(restore.map(|e| e.status), Some(404), "purged for good");
    let again = job::run(&roster, &[], &never()).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(again.purged_users, 0, "idempotent");
}

/// GIVEN a tenant that keeps groups the directory deletes WHEN a group is
/// deleted THEN SCIM answers 404, the group keeps its members, no user
/// lists it, and a push of the same name creates a new group; it is purged
/// after retention. GIVEN a group an operator unlinks THEN the same, but it
/// is never purged, and the operator may delete it for good.
pub(crate) async fn kept_and_unlinked_groups(t: TestTable) {
    let clock = at_start();
    let roster = roster_at(Arc::clone(&t.table), clock.clone());
    let settings = TenantSettings { keep_groups_deleted_by_directory: true, ..TenantSettings::default() };
    let acme = tenant_with(&roster, "acme", settings).await;
    let u = new_user(&roster, &acme, "member@x.io").await;
    let kept = new_group(&roster, &acme, "Sales", &[&u]).await;
    let unlinked = new_group(&roster, &acme, "Support", &[&u]).await;

    roster.delete(&acme, Kind::Group, &kept.id, None).await.unwrap_or_else(|e| panic!("{e}"));
    roster.unlink_group(&acme, &unlinked.id).await.unwrap_or_else(|e| panic!("{e}"));
    for g in [&kept, &unlinked] {
        let gone = roster.get(&acme.id, Kind::Group, &g.id).await.map_err(scim).err();
        assert_eq!(gone.map(|e| e.status), Some(404));
        assert_eq!(member_ids(&roster, &acme, &g.id).await, BTreeSet::from([u.id.clone()]), "kept with its members");
    }
    assert!(roster.groups_of(&acme.id, &u.id).await.unwrap_or_else(|e| panic!("{e}")).is_empty());
    assert!(find(&roster, &acme, Kind::Group, &format!(r#"members[value eq "{}"]"#, u.id)).await.is_empty());
    let fresh = new_group(&roster, &acme, "Sales", &[]).await;
    assert_ne!(fresh.id, kept.id, "a later push creates a new group, never re-links");

    let why = |g: &Stored| {
        let roster = &roster;
        let id = g.id.clone();
        let tenant = acme.id.clone();
        async move { roster.retired_one(&tenant, Kind::Group, &id).await.ok().flatten().map(|r| (r.why, r.purge_after)) }
    };
    assert_eq!(why(&kept).await, Some((Retirement::Deleted, Some("2026-04-01T00:00:00Z".into()))));
    assert_eq!(why(&unlinked).await, Some((Retirement::Unlinked, None)));

    clock.advance(1000 * DAY);
    let run = job::run(&roster, &[], &never()).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((run.purged_groups, run.purged_users, run.failures.len()), (1, 0, 0), "{run:?}");
    assert_eq!(why(&kept).await, None, "the kept group is purged after retention");
    assert!(member_ids(&roster, &acme, &kept.id).await.is_empty());
    assert_eq!(why(&unlinked).await.map(|w| w.0), Some(Retirement::Unlinked), "an unlinked group stays");

    roster.delete_retired_group(&acme.id, &unlinked.id).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(why(&unlinked).await, None);
    assert!(member_ids(&roster, &acme, &unlinked.id).await.is_empty());
    assert_eq!(roster.group_ids_of(&acme.id, &u.id).await.ok(), Some(vec![]), "no membership left either way");

    // Without the setting, a deleted group is gone with its memberships.
    let plain = tenant(&roster, "plain").await;
    let v = new_user(&roster, &plain, "v@x.io").await;
    let g = new_group(&roster, &plain, "Gone", &[&v]).await;
    roster.delete(&plain, Kind::Group, &g.id, None).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(roster.retired_one(&plain.id, Kind::Group, &g.id).await.ok(), Some(None));
    assert!(member_ids(&roster, &plain, &g.id).await.is_empty());
}

/// GIVEN a tenant whose deactivation soft-deletes WHEN the directory sets
/// `active` to false THEN the answer is the user as written, and from then
/// on it is not found and its userName is free.
pub(crate) async fn soft_delete_deactivation(t: TestTable) {
    let clock = at_start();
    let roster = roster_at(Arc::clone(&t.table), clock.clone());
    let settings = TenantSettings { deactivation: Deactivation::SoftDelete, ..TenantSettings::default() };
    let acme = tenant_with(&roster, "acme", settings).await;
    let u = new_user(&roster, &acme, "quits@x.io").await;
    let off = patch(json!({ "Operations": [{ "op": "replace", "value": { "active": false } }] }));
    let answer = roster.patch(&acme, Kind::User, &u.id, &off, None).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(answer.resource.get("active"), Some(&json!(false)));
    let gone = roster.get(&acme.id, Kind::User, &u.id).await.map_err(scim).err();
    assert_eq!(gone.map(|e| e.status), Some(404));
    let retired = roster.retired_one(&acme.id, Kind::User, &u.id).await.ok().flatten();
    assert_eq!(retired.map(|r| r.why), Some(Retirement::Deactivated));
    let comes_back = new_user(&roster, &acme, "quits@x.io").await;
    assert_ne!(comes_back.id, u.id, "created anew on reactivation");
}

/// GIVEN a user delete that stops after removing the user, never retried
/// WHEN the job runs THEN it leaves the cleanup alone while it may still be
/// running, and finishes it once it is older than the grace period.
pub(crate) async fn the_job_sweeps_a_half_failed_delete(t: TestTable) {
    let clock = at_start();
    let table = Arc::new(Interfering::new(Arc::clone(&t.table)));
    let roster = roster_at(table.clone(), clock.clone());
    let acme = tenant(&roster, "acme").await;
    let u = new_user(&roster, &acme, "half@x.io").await;
    let g = new_group(&roster, &acme, "Half", &[&u]).await;
    Interfering::set(&table.fail_query_of, (model::member_of_pk("acme", &u.id), 1));
    let failed = roster.delete(&acme, Kind::User, &u.id, None).await.map_err(scim).err();
    assert_eq!(failed.map(|e| e.status), Some(500));
    assert_eq!(member_ids(&roster, &acme, &g.id).await, BTreeSet::from([u.id.clone()]), "left behind");
    // What a representation of the group shows leaves the deleted user out
    // already: a marker stands for its unfinished delete.
    let shown = roster.members_up_to(&acme.id, &g.id, 100).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(shown.map(|m| m.len()), Some(0), "a member whose delete is unfinished is not shown");

    let soon = job::run(&roster, &[], &never()).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(soon.swept, 0, "a cleanup younger than the grace period may still be running");
    clock.advance(job::SWEEP_GRACE_SECS + 1);
    let later = job::run(&roster, &[], &never()).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(later.swept, 1);
    assert!(member_ids(&roster, &acme, &g.id).await.is_empty());
    assert_eq!(roster.group_ids_of(&acme.id, &u.id).await.ok(), Some(vec![]));
    assert_eq!(t.table.get(&model::sweep("acme", Kind::User, &u.id)).await.ok(), Some(None));
}

async fn delete_users(roster: &Roster, t: &Tenant, n: usize) {
    for i in 0..n {
        let u = new_user(roster, t, &format!("u{i}@{}.io", t.id)).await;
        roster.delete(t, Kind::User, &u.id, None).await.unwrap_or_else(|e| panic!("{e}"));
    }
}

/// GIVEN 30 users due for purge WHEN two job runs overlap THEN each user
/// is purged once, by one run, and nothing is left.
pub(crate) async fn overlapping_job_runs_purge_each_user_once(t: TestTable) {
    let clock = at_start();
    let roster = Arc::new(roster_at(Arc::clone(&t.table), clock.clone()));
    let acme = tenant(&roster, "acme").await;
    delete_users(&roster, &acme, 30).await;
    clock.advance(91 * DAY);
    let runs: Vec<_> = (0..2)
        .map(|_| {
            let roster = Arc::clone(&roster);
            tokio::spawn(async move { job::run(&roster, &[], &|| false).await })
        })
        .collect();
    let mut purged = 0;
    for run in runs {
        let report = run.await.unwrap_or_else(|e| panic!("{e}")).unwrap_or_else(|e| panic!("{e}"));
        assert!(report.failures.is_empty(), "{:?}", report.failures);
        purged += report.purged_users;
    }
    assert_eq!(purged, 30);
    assert!(roster.retired(&acme.id, Kind::User).await.unwrap_or_else(|e| panic!("{e}")).is_empty());
}

/// GIVEN two tenants with 10 users each due for purge WHEN a run's time
/// budget ends after a few purges THEN it stops, incomplete, and the next
/// run resumes from its checkpoint and finishes: 20 purged in all.
pub(crate) async fn a_job_cut_off_by_its_budget_resumes(t: TestTable) {
    let clock = at_start();
    let roster = roster_at(Arc::clone(&t.table), clock.clone());
    let acme = tenant(&roster, "acme").await;
    let zinc = tenant(&roster, "zinc").await;
    delete_users(&roster, &acme, 10).await;
    delete_users(&roster, &zinc, 10).await;
    clock.advance(91 * DAY);

    let asked = AtomicUsize::new(0);
    let budget_of_five = || asked.fetch_add(1, Ordering::SeqCst) >= 6;
    let first = job::run(&roster, &[], &budget_of_five).await.unwrap_or_else(|e| panic!("{e}"));
    assert!(!first.complete);
    assert!(first.purged_users > 0 && first.purged_users < 20, "{first:?}");
    let second = job::run(&roster, &[], &never()).await.unwrap_or_else(|e| panic!("{e}"));
    assert!(second.complete);
    assert_eq!(first.purged_users + second.purged_users, 20);
    for t in [&acme, &zinc] {
        assert!(roster.retired(&t.id, Kind::User).await.unwrap_or_else(|e| panic!("{e}")).is_empty());
    }
}

/// GIVEN a manager and two reports (enterprise `manager.value`) WHEN the
/// manager is deleted THEN the reports keep the reference while it may be
/// restored; WHEN it is purged THEN the references are gone, each report
/// at a new version, and another user's manager is untouched.
pub(crate) async fn a_purge_removes_references_to_the_purged_user(t: TestTable) {
    const ENTERPRISE: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
    let clock = at_start();
    let roster = roster_at(Arc::clone(&t.table), clock.clone());
    let acme = tenant(&roster, "acme").await;
    let boss = new_user(&roster, &acme, "boss@x.io").await;
    let other = new_user(&roster, &acme, "other@x.io").await;
    let mut reports = Vec::new();
    for (name, manager) in [("r1@x.io", &boss), ("r2@x.io", &boss), ("r3@x.io", &other)] {
        let body = json!({ "userName": name, ENTERPRISE: { "manager": { "value": manager.id }, "department": "Ops" } });
        let attrs = parse_resource(user(), &body).unwrap_or_else(|e| panic!("{e}"));
        reports.push(roster.create(&acme, Kind::User, attrs, &[]).await.unwrap_or_else(|e| panic!("{e}")));
    }
    let manager_of = |id: String| {
        let roster = &roster;
        let acme = &acme;
        async move {
            let u = roster.get(&acme.id, Kind::User, &id).await.unwrap_or_else(|e| panic!("{e}"));
            (u.resource[ENTERPRISE].get("manager").cloned(), u.version, u.resource[ENTERPRISE]["department"].clone())
        }
    };
    roster.delete(&acme, Kind::User, &boss.id, None).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(manager_of(reports[0].id.clone()).await.0, Some(json!({ "value": boss.id })), "kept while restorable");

    clock.advance(91 * DAY);
    let run = job::run(&roster, &[], &never()).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(run.purged_users, 1);
    for r in &reports[..2] {
        let (manager, version, department) = manager_of(r.id.clone()).await;
        assert_eq!(manager, None, "the purged manager is no longer named");
        assert!(version > r.version, "a new version");
        assert_eq!(department, json!("Ops"), "the rest of the extension stays");
    }
    assert_eq!(manager_of(reports[2].id.clone()).await.0, Some(json!({ "value": other.id })));
}

/// GIVEN a user with a marker value in every attribute WHEN it is deleted
/// and purged THEN nothing of it is readable: by any key, and on the
/// embedded store not in the store file either, after more writes and a
/// reopen.
pub(crate) async fn purged_users_leave_nothing_in_the_store_file(t: TestTable) {
    let clock = at_start();
    let roster = roster_at(Arc::clone(&t.table), clock.clone());
    let acme = tenant(&roster, "acme").await;
    let marker = "Zq7marker";
    let body = json!({
        "userName": format!("{marker}@x.io"),
        "name": { "givenName": format!("{marker}Given"), "familyName": format!("{marker}Family") },
        "emails": [{ "type": "work", "value": format!("{marker}.mail@x.io") }],
        "addresses": [{ "streetAddress": format!("1 {marker} Street") }],
        // Large enough to take pages of its own, which a later write need not reuse.
        "nickName": marker.repeat(3000),
        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": { "employeeNumber": format!("{marker}-77") },
    });
    let attrs = parse_resource(user(), &body).unwrap_or_else(|e| panic!("{e}"));
    let u = roster.create(&acme, Kind::User, attrs, &[]).await.unwrap_or_else(|e| panic!("{e}"));
    let g = new_group(&roster, &acme, "Team", &[&u]).await;
    for i in 0..20 {
        new_user(&roster, &acme, &format!("filler{i}@x.io")).await;
    }
    roster.delete(&acme, Kind::User, &u.id, None).await.unwrap_or_else(|e| panic!("{e}"));
    clock.advance(91 * DAY);
    let run = job::run(&roster, &[], &never()).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(run.purged_users, 1);
    assert_eq!(traces_of_user(&t.table, &acme.id, &u.id, &format!("{marker}@x.io"), &[&g.id]).await, 0);
    for i in 0..5 {
        new_user(&roster, &acme, &format!("after{i}@x.io")).await;
    }
    if let Some(file) = t.store_file() {
        let bytes = std::fs::read(&file).unwrap_or_else(|e| panic!("{e}"));
        let found = bytes.windows(marker.len()).filter(|w| *w == marker.as_bytes()).count();
        assert_eq!(found, 0, "the purged user's data is still in {}", file.display());
        assert!(bytes.windows(b"after4@x.io".len()).any(|w| w == b"after4@x.io"), "live data is there");
        // The file as it is on disk opens as a whole store (a copy: the
        // original is open here).
        let copy = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        std::fs::copy(&file, copy.path().join("store.redb")).unwrap_or_else(|e| panic!("{e}"));
        let reopened =
            lockstep_embedded::EmbeddedTable::open(&copy.path().join("store.redb")).unwrap_or_else(|e| panic!("{e}"));
        let roster = roster_at(Arc::new(reopened), clock);
        assert_eq!(user_names(&roster, &acme).await.len(), 25, "every live user survives the rewrite and a reopen");
    }
}

fn ops(operations: Value) -> PatchRequest {
    patch(json!({ "schemas": [scim_protocol::urn::PATCH_OP], "Operations": operations }))
}

/// What the roster reported of a change: `(kind, id, what, attributes)`.
type Reported = (Kind, String, ChangeKind, Vec<String>);

/// Records the changes the roster reports, in order.
#[derive(Default)]
struct Recorder(Mutex<Vec<Reported>>);

impl ChangeSink for Recorder {
    fn changed(&self, _: &TenantId, changes: &[Change]) {
        let mut seen = self.0.lock().unwrap_or_else(|e| e.into_inner());
        seen.extend(changes.iter().map(|c| (c.kind, c.id.clone(), c.what.clone(), c.attributes.clone())));
    }
}

impl Recorder {
    fn take(&self) -> Vec<Reported> {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

/// GIVEN a roster that reports its changes WHEN users and groups are
/// created, patched (and the same patch replayed), deactivated and
/// reactivated, deleted, restored, unlinked and purged THEN each change is
/// reported once, with what happened, and a write that changes nothing
/// (a replayed patch, a reindex of entries already in line) reports
/// nothing.
pub(crate) async fn every_change_is_reported_once(t: TestTable) {
    let clock = at_start();
    let recorder = Arc::new(Recorder::default());
    let roster = roster_at(Arc::clone(&t.table), clock.clone()).with_change_sink(recorder.clone());
    let settings = TenantSettings { retention_days: 1, ..TenantSettings::default() };
    let acme = tenant_with(&roster, "acme", settings).await;
    let what = |seen: Vec<Reported>| -> Vec<(String, ChangeKind, Vec<String>)> {
        seen.into_iter().map(|(_, id, what, attrs)| (id, what, attrs)).collect()
    };

    let u = new_user(&roster, &acme, "events@x.io").await;
    assert_eq!(recorder.take(), vec![(Kind::User, u.id.clone(), ChangeKind::Created, vec![])]);

    let title = ops(json!([{ "op": "replace", "path": "title", "value": "Engineer" }]));
    for _ in 0..2 {
        roster.patch(&acme, Kind::User, &u.id, &title, None).await.unwrap_or_else(|e| panic!("{e}"));
    }
    assert_eq!(what(recorder.take()), vec![(u.id.clone(), ChangeKind::Updated, vec!["title".to_string()])]);

    let g = new_group(&roster, &acme, "Events", &[&u]).await;
    let member = |id: &str| id.to_string();
    assert_eq!(
        what(recorder.take()),
        vec![
            (g.id.clone(), ChangeKind::Created, vec![]),
            (g.id.clone(), ChangeKind::MemberAdded { member: member(&u.id) }, vec![]),
        ]
    );
    let leave = ops(json!([{ "op": "remove", "path": format!("members[value eq \"{}\"]", u.id) }]));
    roster.patch(&acme, Kind::Group, &g.id, &leave, None).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        what(recorder.take()),
        vec![(g.id.clone(), ChangeKind::MemberRemoved { member: member(&u.id) }, vec![])]
    );

    for (active, expected) in [(false, ChangeKind::Deactivated), (true, ChangeKind::Reactivated)] {
        let flip = ops(json!([{ "op": "replace", "path": "active", "value": active }]));
        roster.patch(&acme, Kind::User, &u.id, &flip, None).await.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(what(recorder.take()), vec![(u.id.clone(), expected, vec!["active".to_string()])]);
    }

    let reindexed = roster.reindex(&acme).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(reindexed.rewritten, 0);
    assert_eq!(recorder.take(), vec![], "nothing changed, nothing reported");

    roster.delete(&acme, Kind::User, &u.id, None).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(what(recorder.take()), vec![(u.id.clone(), ChangeKind::Deleted, vec![])]);
    roster.restore_user(&acme, &u.id).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(what(recorder.take()), vec![(u.id.clone(), ChangeKind::Restored, vec![])]);
    roster.unlink_group(&acme, &g.id).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(what(recorder.take()), vec![(g.id.clone(), ChangeKind::Unlinked, vec![])]);

    roster.delete(&acme, Kind::User, &u.id, None).await.unwrap_or_else(|e| panic!("{e}"));
    recorder.take();
    clock.advance(2 * DAY);
    let run = job::run(&roster, &[], &never()).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(run.purged_users, 1);
    assert_eq!(what(recorder.take()), vec![(u.id.clone(), ChangeKind::Purged, vec![])]);
}
