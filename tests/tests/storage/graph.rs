//! The Microsoft Graph pull on both adapters, against a fake identity
//! platform and Graph served over HTTP: scripted rounds, faults, refused
//! credentials, and the deletion guard; the directory is checked through
//! SCIM reads afterwards.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use lockstep_core::secrets::SecretStore;
use lockstep_core::{Retirement, job};
use lockstep_embedded::FileSecrets;
use lockstep_graph::GraphPull;
use lockstep_graph::client::Endpoints;
use lockstep_graph::mapping::{Mapping, SourceField, UserNameSource};
use lockstep_graph::state::{self, Connection, LastRun, SECRET_NAME};
use lockstep_graph::sync::{self, Request};
use lockstep_tests::graph::{FakeGraph, Fault, graph_user};

use super::*;
use crate::roster::user_with;

const DIRECTORY: &str = "8d9e3a1f-0000-4000-8000-00000000d1d1";
const CLIENT: &str = "2b6c0f9e-0000-4000-8000-00000000c11e";
const SECRET: &str = "Zq8~fake-client-secret-value";

struct Pull {
    roster: Roster,
    counting: Arc<CountingTable>,
    tenant: Tenant,
    fake: FakeGraph,
    secrets: FileSecrets,
    endpoints: Endpoints,
    _secrets_dir: tempfile::TempDir,
}

fn mapping() -> Mapping {
    Mapping {
        user_name_from: UserNameSource::UserPrincipalName,
        unit_field: SourceField::Department,
        user_types_field: SourceField::JobTitle,
        units: vec!["Oslo".into(), "Aarhus".into()],
        user_types: vec!["Manager".into(), "Nurse".into()],
    }
}

async fn connected(t: TestTable) -> Pull {
    let counting = Arc::new(CountingTable::new(Arc::clone(&t.table)));
    let roster = roster_on(counting.clone());
    let tenant = tenant(&roster, "acme").await;
    let fake = FakeGraph::start(DIRECTORY, CLIENT, SECRET).await;
    let secrets_dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let secrets = FileSecrets::new(secrets_dir.path());
    secrets.put(&tenant.id, SECRET_NAME, SECRET).await.unwrap_or_else(|e| panic!("{e}"));
    let connection = Connection {
        name: "Contoso".into(),
        directory_id: DIRECTORY.into(),
        client_id: CLIENT.into(),
        secret_expires: "2027-06-30".into(),
        enabled: true,
        mapping: mapping(),
        max_delete_percent: 20,
    };
    state::save_connection(&roster, &tenant.id, &connection).await.unwrap_or_else(|e| panic!("{e}"));
    let endpoints = Endpoints {
        login: fake.url.clone(),
        graph: fake.url.clone(),
        timeout: Duration::from_millis(700),
        max_retry_wait: Duration::from_secs(2),
    };
    Pull { roster, counting, tenant, fake, secrets, endpoints, _secrets_dir: secrets_dir }
}

impl Pull {
    async fn run(&self, request: Request) -> LastRun {
        sync::pull(&self.roster, &self.secrets, &self.endpoints, &self.tenant, request, &|| false)
            .await
            .unwrap_or_else(|e| panic!("{e}"))
            .unwrap_or_else(|| panic!("the connection is enabled"))
    }

    /// A user as SCIM reads it, by userName.
    async fn scim_user(&self, user_name: &str) -> Option<Stored> {
        let f = filter(&format!(r#"userName eq "{user_name}""#));
        let page = self.roster.search(&self.tenant.id, Kind::User, Some(&f), &index(1, 10)).await.ok()?;
        page.resources.into_iter().next()
    }
}

fn placement(user: &Stored) -> Value {
    user.resource.get(scim_protocol::urn::DIRECTORY_USER).cloned().unwrap_or(Value::Null)
}

/// GIVEN a directory of 25 users (2 without a last name) served 10 a page
/// WHEN the tenant's first pull runs THEN 23 users are created with their
/// unit and user types, 2 are skipped with the reason, over 3 pages, and
/// `$select` named only the fields used. A second pull of the same data
/// writes no user (one write: the sync state). Then a change, a disabled
/// account and a removal: one update each, and the removed user is
/// soft-deleted.
pub(crate) async fn graph_pull_creates_updates_and_removes(t: TestTable) {
    let p = connected(t).await;
    for i in 0..25 {
        let surname = if i < 2 { "" } else { "Nordmann" };
        let unit = if i % 2 == 0 { "oslo" } else { "Bergen" };
        p.fake.put_user(graph_user(
            &format!("g{i:02}"),
            "Kari",
            surname,
            &format!("kari{i}@contoso.com"),
            unit,
            "Nurse, manager",
        ));
    }
    p.fake.set_page_size(10);

    let first = p.run(Request::default()).await;
    assert_eq!(
        (first.result.as_str(), first.counts.created, first.counts.skipped, first.counts.pages),
        ("ok", 23, 2, 3),
        "{first:?}"
    );
    assert_eq!(first.counts.skipped_why.values().sum::<u64>(), 2, "{:?}", first.counts.skipped_why);
    assert_eq!(p.fake.token_requests(), 1, "one token for the run's three pages (cached)");
    let select = p.fake.selects().pop().unwrap_or_default();
    assert!(select.contains("department") && select.contains("jobTitle") && !select.contains("city"), "{select}");
    let kari = p.scim_user("kari4@contoso.com").await.unwrap_or_else(|| panic!("pulled"));
    assert_eq!(kari.resource.get("externalId"), Some(&json!("g04")));
    assert_eq!(kari.resource.get("name"), Some(&json!({ "givenName": "Kari", "familyName": "Nordmann" })));
    assert_eq!(placement(&kari), json!({ "unit": "Oslo", "userTypes": ["Nurse", "Manager"] }));
    let unassigned = p.scim_user("kari5@contoso.com").await.unwrap_or_else(|| panic!("pulled"));
    assert_eq!(placement(&unassigned), Value::Null, "no known unit: unassigned, and user types need a unit");
    assert!(p.scim_user("kari0@contoso.com").await.is_none(), "no last name: skipped");

    p.counting.take();
    let again = p.run(Request::default()).await;
    assert_eq!((again.result.as_str(), again.counts.created, again.counts.updated), ("ok", 0, 0));
    assert_eq!(p.counting.take().writes(), 1, "a pull of unchanged data writes only its sync state");

    let mut moved = graph_user("g04", "Kari", "Nordmann", "kari4@contoso.com", "Aarhus", "Manager");
    p.fake.put_user(moved.clone());
    moved["id"] = json!("g06");
    moved["userPrincipalName"] = json!("kari6@contoso.com");
    moved["mail"] = json!("kari6@contoso.com");
    moved["accountEnabled"] = json!(false);
    p.fake.put_user(moved);
    p.fake.remove_user("g08");
    let delta = p.run(Request::default()).await;
    assert_eq!((delta.counts.updated, delta.counts.deleted, delta.counts.created), (2, 1, 0), "{delta:?}");
    let kari = p.scim_user("kari4@contoso.com").await.unwrap_or_else(|| panic!("still there"));
    assert_eq!(placement(&kari), json!({ "unit": "Aarhus", "userTypes": ["Manager"] }));
    let disabled = p.scim_user("kari6@contoso.com").await.unwrap_or_else(|| panic!("still there"));
    assert_eq!(disabled.resource.get("active"), Some(&json!(false)), "accountEnabled=false deactivates");
    assert!(p.scim_user("kari8@contoso.com").await.is_none(), "removed from the directory");
    let retired = p.roster.retired(&p.tenant.id, Kind::User).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(retired.iter().map(|r| r.why).collect::<Vec<_>>(), vec![Retirement::RemovedFromGraph]);
}

/// GIVEN a user pushed over SCIM with a work email, and another made in
/// the application WHEN a Graph user with that email (in another case) is
/// pulled, and then a full round runs THEN the pushed user is linked and
/// updated, not duplicated: it gets the names, the work email and the
/// placement from Azure and keeps its own userName; and the full round
/// never deletes the user that did not come from Graph.
pub(crate) async fn graph_users_match_existing_users_by_email(t: TestTable) {
    let p = connected(t).await;
    let body = json!({ "emails": [{ "type": "work", "value": "ADA@contoso.com", "primary": true }] });
    let pushed = p.roster.create(&p.tenant, Kind::User, user_with("ada.old@contoso.com", body), &[]).await;
    let pushed = pushed.unwrap_or_else(|e| panic!("{e}"));
    let own = new_user(&p.roster, &p.tenant, "own@contoso.com").await;
    p.fake.put_user(graph_user("g-ada", "Ada", "Lovelace", "ada@contoso.com", "Oslo", "Manager"));

    let run = p.run(Request::default()).await;
    assert_eq!((run.counts.created, run.counts.updated), (0, 1), "{run:?}");
    let ada = p.roster.get(&p.tenant.id, Kind::User, &pushed.id).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(ada.resource["userName"], json!("ada.old@contoso.com"), "the application's own userName is kept");
    assert_eq!(ada.resource["name"], json!({ "givenName": "Ada", "familyName": "Lovelace" }));
    assert_eq!(ada.resource["emails"], json!([{ "value": "ada@contoso.com", "type": "work", "primary": true }]));
    assert_eq!(placement(&ada), json!({ "unit": "Oslo", "userTypes": ["Manager"] }));
    assert!(p.scim_user("ada@contoso.com").await.is_none(), "linked, not duplicated");
    assert_eq!(p.roster.count(&p.tenant.id, Kind::User).await.ok(), Some(2));

    let full = p.run(Request { full: true, allow_deletions: false }).await;
    assert_eq!((full.result.as_str(), full.counts.deleted), ("ok", 0), "{full:?}");
    assert!(p.roster.get(&p.tenant.id, Kind::User, &own.id).await.is_ok(), "a user not from Graph is never deleted");
}

/// GIVEN throttling (429 with Retry-After, 503), a request that times out,
/// then an expired delta link (410 Gone, and 400 syncStateNotFound) THEN
/// each is retried or resynchronised, and the pulls succeed.
pub(crate) async fn graph_faults_are_retried_or_resynchronised(t: TestTable) {
    let p = connected(t).await;
    p.fake.put_user(graph_user("g1", "Ola", "Nordmann", "ola@contoso.com", "Oslo", "Nurse"));
    p.fake.fail_next(&[
        Fault::Status { status: 429, retry_after: Some(1) },
        Fault::Status { status: 503, retry_after: None },
        Fault::Delay(Duration::from_millis(1500)),
    ]);
    let run = p.run(Request::default()).await;
    assert_eq!((run.result.as_str(), run.counts.created, run.counts.throttled), ("ok", 1, 3), "{run:?}");

    for as_gone in [true, false] {
        p.fake.expire_delta_tokens(as_gone);
        p.fake.put_user(graph_user("g2", "Kari", "Nordmann", "kari@contoso.com", "Oslo", "Nurse"));
        let resynced = p.run(Request::default()).await;
        assert_eq!(resynced.result, "ok", "{resynced:?}");
        assert!(p.scim_user("kari@contoso.com").await.is_some());
        assert_eq!(resynced.counts.deleted, 0);
    }
    let still = p.fake.selects().len();
    assert_eq!(still, 3, "each expiry started a full round: {:?}", p.fake.selects());
}

/// GIVEN a tenant whose Graph users all vanish WHEN the delta round reports
/// every one removed THEN nothing is deleted, the run is held for review,
/// and scheduled runs do nothing; an operator's full round with
/// `--allow-deletions` applies them.
pub(crate) async fn graph_deletion_guard_holds_mass_deletions(t: TestTable) {
    let p = connected(t).await;
    for i in 0..10 {
        p.fake.put_user(graph_user(&format!("g{i}"), "Per", "Hansen", &format!("per{i}@contoso.com"), "Oslo", "Nurse"));
    }
    assert_eq!(p.run(Request::default()).await.counts.created, 10);
    for i in 0..10 {
        p.fake.remove_user(&format!("g{i}"));
    }
    let held = p.run(Request::default()).await;
    assert_eq!((held.result.as_str(), held.counts.deleted), ("held", 0), "{held:?}");
    assert!(held.error.as_deref().is_some_and(|e| e.contains("--allow-deletions")), "{held:?}");
    assert_eq!(p.roster.count(&p.tenant.id, Kind::User).await.ok(), Some(10));

    let step = GraphPull { secrets: Arc::new(p.secrets.clone()), endpoints: p.endpoints.clone() };
    let scheduled = job::run(&p.roster, &[&step], &|| false).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(scheduled.failures.len(), 1, "held is reported (and alarms): {scheduled:?}");
    assert_eq!(p.roster.count(&p.tenant.id, Kind::User).await.ok(), Some(10), "still nothing deleted");

    let confirmed = p.run(Request { full: true, allow_deletions: true }).await;
    assert_eq!((confirmed.result.as_str(), confirmed.counts.deleted), ("ok", 10), "{confirmed:?}");
    assert_eq!(p.roster.count(&p.tenant.id, Kind::User).await.ok(), Some(0));
}

/// GIVEN 30 users served 10 a page WHEN a run's budget ends after its
/// first page THEN it stops in progress, and the next run resumes at the
/// next link and finishes: every user pulled once.
pub(crate) async fn a_graph_pull_cut_off_resumes_at_its_next_link(t: TestTable) {
    let p = connected(t).await;
    for i in 0..30 {
        p.fake.put_user(graph_user(
            &format!("g{i:02}"),
            "Liv",
            "Berg",
            &format!("liv{i}@contoso.com"),
            "Oslo",
            "Nurse",
        ));
    }
    p.fake.set_page_size(10);
    let asked = AtomicUsize::new(0);
    let one_page = || asked.fetch_add(1, Ordering::SeqCst) >= 1;
    let cut = sync::pull(&p.roster, &p.secrets, &p.endpoints, &p.tenant, Request::default(), &one_page).await;
    let cut = cut.unwrap_or_else(|e| panic!("{e}")).unwrap_or_else(|| panic!("enabled"));
    assert_eq!((cut.result.as_str(), cut.counts.created), ("in_progress", 10), "{cut:?}");
    let rest = p.run(Request::default()).await;
    assert_eq!((rest.result.as_str(), rest.counts.created, rest.counts.pages), ("ok", 30, 3), "{rest:?}");
    assert_eq!(p.roster.count(&p.tenant.id, Kind::User).await.ok(), Some(30));
    assert_eq!(p.fake.selects().len(), 1, "one round, resumed");
}

/// GIVEN each way Microsoft Entra ID refuses an app's credentials WHEN a
/// pull runs THEN it fails with what the admin must do, told apart by the
/// platform's error codes (and, for a 403, by the token's permissions).
#[tokio::test(flavor = "multi_thread")]
async fn graph_refused_credentials_say_what_to_fix() {
    let p = connected(fresh_table(Adapter::Embedded).await).await;
    p.fake.put_user(graph_user("g1", "Ola", "Nordmann", "ola@contoso.com", "Oslo", "Nurse"));
    let cases: [(Option<u64>, &[&str], &str); 5] = [
        (Some(7_000_215), &["User.Read.All"], "secret is wrong"),
        (Some(7_000_222), &["User.Read.All"], "secret has expired"),
        (Some(65_001), &["User.Read.All"], "Grant admin consent"),
        (None, &[], "Grant admin consent"),
        (None, &["Group.Read.All"], "User.Read.All"),
    ];
    for (code, roles, says) in cases {
        p.fake.refuse_tokens_with(code);
        p.fake.grant_roles(roles);
        let run = p.run(Request::default()).await;
        let error = run.error.clone().unwrap_or_default();
        assert_eq!(run.result, "failed", "{code:?} {roles:?}");
        assert!(error.contains(says), "{code:?} {roles:?}: {error}");
        assert!(!error.contains(SECRET), "the secret is never in a message");
    }
    p.fake.refuse_tokens_with(None);
    p.fake.grant_roles(&["User.Read.All"]);
    assert_eq!(p.run(Request::default()).await.counts.created, 1, "works once fixed");
    let status = state::state(&p.roster, &p.tenant.id).await.unwrap_or_else(|e| panic!("{e}"));
    assert!(!serde_json::to_string(&status).unwrap_or_default().contains(SECRET), "nor in the stored state");
}

/// GIVEN a pulled user with department=Oslo (a known unit), jobTitle=Manager
/// (a known user type) and a mail WHEN Azure changes department to HR and
/// jobTitle to Intern (neither known) and clears the mail THEN the user has
/// no unit, no user types and no work email: an unmatched value is not
/// assigned, and the old one is not kept. WHEN the values come back THEN so
/// do the unit, the user types and the email.
pub(crate) async fn what_disappears_in_azure_disappears_here(t: TestTable) {
    let p = connected(t).await;
    p.fake.put_user(graph_user("g-ola", "Ola", "Nordmann", "ola@contoso.com", "Oslo", "Manager"));
    assert_eq!(p.run(Request::default()).await.counts.created, 1);
    let ola = p.scim_user("ola@contoso.com").await.unwrap_or_else(|| panic!("pulled"));
    assert_eq!(placement(&ola), json!({ "unit": "Oslo", "userTypes": ["Manager"] }));

    let mut changed = graph_user("g-ola", "Ola", "Nordmann", "ola@contoso.com", "HR", "Intern");
    changed["mail"] = Value::Null;
    p.fake.put_user(changed);
    let run = p.run(Request::default()).await;
    assert_eq!((run.result.as_str(), run.counts.updated), ("ok", 1), "{run:?}");
    // The run says how many it left without a unit or a user type, and why.
    let why = |m: &std::collections::BTreeMap<String, u64>| m.iter().map(|(k, v)| (k.clone(), *v)).collect::<Vec<_>>();
    assert_eq!(why(&run.counts.without_unit), vec![("department names no known unit".to_string(), 1)]);
    assert_eq!(why(&run.counts.without_user_types), vec![("jobTitle names no known user type".to_string(), 1)]);
    let ola = p.roster.get(&p.tenant.id, Kind::User, &ola.id).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(placement(&ola), Value::Null, "no unit and no user types: {:?}", ola.resource);
    assert!(ola.resource.get("emails").is_none(), "the cleared mail is gone: {:?}", ola.resource);
    // A full round agrees: nothing to repair.
    let full = p.run(Request { full: true, allow_deletions: false }).await;
    assert_eq!((full.counts.updated, full.counts.unchanged), (0, 1), "{full:?}");

    p.fake.put_user(graph_user("g-ola", "Ola", "Nordmann", "ola@contoso.com", "Aarhus", "Nurse"));
    p.run(Request::default()).await;
    let ola = p.roster.get(&p.tenant.id, Kind::User, &ola.id).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(placement(&ola), json!({ "unit": "Aarhus", "userTypes": ["Nurse"] }));
    assert_eq!(ola.resource["emails"], json!([{ "value": "ola@contoso.com", "type": "work", "primary": true }]));
}

/// GIVEN a pulled user WHEN delta pages carry only the changed properties
/// (jobTitle alone; then department as an explicit null; then mail as an
/// explicit null) THEN each change applies and nothing else moves: the
/// user is not skipped for lacking a name it was not sent, an absent
/// property is unchanged, a null one is cleared. Pages are asked 999 at a
/// time.
pub(crate) async fn partial_delta_objects_change_only_what_they_carry(t: TestTable) {
    let p = connected(t).await;
    p.fake.put_user(graph_user("g-kari", "Kari", "Nordmann", "kari@contoso.com", "Oslo", "Manager"));
    p.run(Request::default()).await;
    let id = p.scim_user("kari@contoso.com").await.unwrap_or_else(|| panic!("pulled")).id;
    let kari = || async { p.roster.get(&p.tenant.id, Kind::User, &id).await.unwrap_or_else(|e| panic!("{e}")) };

    p.fake.change_user("g-kari", json!({ "jobTitle": "Nurse,Manager" }));
    let run = p.run(Request::default()).await;
    assert_eq!((run.counts.updated, run.counts.skipped), (1, 0), "{run:?}");
    let k = kari().await;
    assert_eq!(placement(&k), json!({ "unit": "Oslo", "userTypes": ["Nurse", "Manager"] }));
    assert_eq!(k.resource["name"], json!({ "givenName": "Kari", "familyName": "Nordmann" }), "names unchanged");

    p.fake.change_user("g-kari", json!({ "department": null }));
    p.run(Request::default()).await;
    assert_eq!(placement(&kari().await), Value::Null, "the unit is cleared, and the user types need one");

    p.fake.change_user("g-kari", json!({ "mail": null, "surname": "Berg" }));
    p.run(Request::default()).await;
    let k = kari().await;
    assert!(k.resource.get("emails").is_none(), "{:?}", k.resource);
    assert_eq!(k.resource["name"]["familyName"], json!("Berg"));
    assert_eq!(k.resource["userName"], json!("kari@contoso.com"), "the user principal name was not sent: kept");
    assert!(p.fake.prefers().iter().all(|h| h == "odata.maxpagesize=999"), "{:?}", p.fake.prefers());
}

/// GIVEN users pulled with the unit from department WHEN the tenant
/// connects again with the unit from city THEN the next pull is a full
/// round selecting city, and every user's unit is mapped anew.
pub(crate) async fn a_changed_mapping_maps_every_user_anew(t: TestTable) {
    let p = connected(t).await;
    let mut u = graph_user("g-liv", "Liv", "Berg", "liv@contoso.com", "Oslo", "Nurse");
    u["city"] = json!("Aarhus");
    p.fake.put_user(u);
    p.run(Request::default()).await;
    let liv = p.scim_user("liv@contoso.com").await.unwrap_or_else(|| panic!("pulled"));
    assert_eq!(placement(&liv)["unit"], json!("Oslo"));

    let same = state::connection(&p.roster, &p.tenant.id).await.ok().flatten().unwrap_or_else(|| panic!("connected"));
    let again = sync::connect(&p.roster, &p.tenant, &same).await.unwrap_or_else(|e| panic!("{e}"));
    assert!(!again.remapped, "nothing changed");
    let by_city = Connection { mapping: Mapping { unit_field: SourceField::City, ..mapping() }, ..same };
    assert!(sync::connect(&p.roster, &p.tenant, &by_city).await.unwrap_or_else(|e| panic!("{e}")).remapped);
    let run = p.run(Request::default()).await;
    assert_eq!((run.result.as_str(), run.counts.updated), ("ok", 1), "{run:?}");
    assert!(
        p.fake.selects().last().is_some_and(|s| s.contains("city") && !s.contains("department")),
        "{:?}",
        p.fake.selects()
    );
    let liv = p.roster.get(&p.tenant.id, Kind::User, &liv.id).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(placement(&liv), json!({ "unit": "Aarhus", "userTypes": ["Nurse"] }));
}

/// GIVEN 10 pulled users WHEN 6 are removed in Azure (more than the 20%
/// guard) and another is disabled in the same round THEN the removals wait
/// for an operator, but the disable is applied at once; later runs keep
/// pulling (a new user is created) while the removals still wait; the
/// operator's confirmation removes them.
pub(crate) async fn held_deletions_hold_only_deletions(t: TestTable) {
    let p = connected(t).await;
    for i in 0..10 {
        p.fake.put_user(graph_user(&format!("g{i}"), "Per", "Hansen", &format!("per{i}@contoso.com"), "Oslo", "Nurse"));
    }
    p.run(Request::default()).await;
    for i in 0..6 {
        p.fake.remove_user(&format!("g{i}"));
    }
    let mut leaver = graph_user("g9", "Per", "Hansen", "per9@contoso.com", "Oslo", "Nurse");
    leaver["accountEnabled"] = json!(false);
    p.fake.put_user(leaver);
    let held = p.run(Request::default()).await;
    assert_eq!((held.result.as_str(), held.counts.deleted, held.counts.updated), ("held", 0, 1), "{held:?}");
    let per9 = p.scim_user("per9@contoso.com").await.unwrap_or_else(|| panic!("kept"));
    assert_eq!(per9.resource["active"], json!(false), "the leaver is disabled while the removals wait");

    p.fake.put_user(graph_user("g10", "Ny", "Ansatt", "ny@contoso.com", "Oslo", "Nurse"));
    let later = p.run(Request::default()).await;
    assert_eq!((later.result.as_str(), later.counts.created, later.counts.deleted), ("held", 1, 0), "{later:?}");
    assert_eq!(p.roster.count(&p.tenant.id, Kind::User).await.ok(), Some(11));

    let confirmed = p.run(Request { full: true, allow_deletions: true }).await;
    assert_eq!((confirmed.result.as_str(), confirmed.counts.deleted), ("ok", 6), "{confirmed:?}");
    assert_eq!(p.roster.count(&p.tenant.id, Kind::User).await.ok(), Some(5));
}

/// GIVEN a pulled user in a group WHEN Azure deletes it and then restores
/// it (same object id) THEN it is soft-deleted, and then restored here with
/// the same SCIM id and its group, active again: not created anew.
pub(crate) async fn a_user_restored_in_azure_is_restored_here(t: TestTable) {
    let p = connected(t).await;
    // Nine colleagues: one removal is 10%, under the deletion guard.
    for i in 0..9 {
        p.fake.put_user(graph_user(&format!("g{i}"), "Per", "Hansen", &format!("per{i}@contoso.com"), "Oslo", "Nurse"));
    }
    p.fake.put_user(graph_user("g-eva", "Eva", "Lund", "eva@contoso.com", "Oslo", "Nurse"));
    p.run(Request::default()).await;
    let eva = p.scim_user("eva@contoso.com").await.unwrap_or_else(|| panic!("pulled"));
    let team = new_group(&p.roster, &p.tenant, "Team", &[&eva]).await;
    p.fake.remove_user("g-eva");
    let gone = p.run(Request::default()).await;
    assert_eq!(gone.counts.deleted, 1, "{gone:?}");
    assert!(p.scim_user("eva@contoso.com").await.is_none());

    p.fake.put_user(graph_user("g-eva", "Eva", "Lund", "eva@contoso.com", "Oslo", "Nurse"));
    let back = p.run(Request::default()).await;
    assert_eq!((back.counts.restored, back.counts.created), (1, 0), "{back:?}");
    let again = p.scim_user("eva@contoso.com").await.unwrap_or_else(|| panic!("restored"));
    assert_eq!(again.id, eva.id, "the same user, with its history");
    assert_eq!(again.resource["active"], json!(true));
    assert!(again.version > eva.version);
    assert_eq!(member_ids(&p.roster, &p.tenant, &team.id).await, BTreeSet::from([eva.id.clone()]));
}

/// GIVEN two application users sharing a work email, and a tenant that
/// connects to Microsoft Graph THEN work emails become unique in the tenant
/// and the pair is reported; WHEN a Graph user is pulled and, later, the
/// application creates a user with the same work email (in another case)
/// THEN that create is 409 uniqueness: two live users never share a work
/// email in a tenant that pulls, whatever the order.
pub(crate) async fn a_pulling_tenant_never_has_two_users_with_one_work_email(t: TestTable) {
    let p = connected(t).await;
    let work = |email: &str| json!({ "emails": [{ "type": "work", "value": email }] });
    let a = p.roster.create(&p.tenant, Kind::User, user_with("a@x.io", work("shared@x.io")), &[]).await;
    let b = p.roster.create(&p.tenant, Kind::User, user_with("b@x.io", work("SHARED@x.io")), &[]).await;
    assert!(a.is_ok() && b.is_ok(), "before connecting, work emails are not unique");
    let connection =
        state::connection(&p.roster, &p.tenant.id).await.ok().flatten().unwrap_or_else(|| panic!("connected"));
    let done = sync::connect(&p.roster, &p.tenant, &connection).await.unwrap_or_else(|e| panic!("{e}"));
    assert!(done.unique_work_emails);
    assert_eq!(done.shared_work_emails.len(), 1, "the second of the pair is reported: {done:?}");
    let tenant = p.roster.tenant(&p.tenant.id).await.ok().flatten().unwrap_or_else(|| panic!("tenant"));
    assert!(tenant.settings.unique_work_emails);

    p.fake.put_user(graph_user("g-ola", "Ola", "Nordmann", "ola@contoso.com", "Oslo", "Nurse"));
    // The scheduled job reads the tenant as it is now.
    let step = GraphPull { secrets: Arc::new(p.secrets.clone()), endpoints: p.endpoints.clone() };
    let run = job::run(&p.roster, &[&step], &|| false).await.unwrap_or_else(|e| panic!("{e}"));
    assert!(run.failures.is_empty(), "{run:?}");
    assert!(p.scim_user("ola@contoso.com").await.is_some(), "pulled");
    let late = p.roster.create(&tenant, Kind::User, user_with("ola.app@x.io", work("OLA@contoso.com")), &[]).await;
    let e = late.map_err(scim).err().unwrap_or_else(|| panic!("a second user with the pulled user's email"));
    assert_eq!((e.status, e.scim_type), (409, Some(ScimType::Uniqueness)), "{}", e.detail);
}

/// GIVEN a Graph user whose jobTitle names a known user type but whose
/// department names no known unit THEN no user type is applied (types
/// belong to a unit) and the run says why. GIVEN unit memberships the
/// application keeps beside the pulled one WHEN the pull changes the
/// user's unit and types THEN those memberships stay as they are.
pub(crate) async fn user_types_belong_to_a_unit(t: TestTable) {
    let p = connected(t).await;
    p.fake.put_user(graph_user("g-ida", "Ida", "Moe", "ida@contoso.com", "HR", "Nurse"));
    let run = p.run(Request::default()).await;
    let ida = p.scim_user("ida@contoso.com").await.unwrap_or_else(|| panic!("pulled"));
    assert_eq!(placement(&ida), Value::Null, "types without a unit are not applied: {:?}", ida.resource);
    let why: Vec<&String> = run.counts.without_user_types.keys().collect();
    assert_eq!(why, vec!["user types need a unit, and no unit matched"], "{run:?}");

    let others = json!([{ "unit": "Aarhus", "userTypes": ["Manager"] }]);
    p.roster.set_other_units(&p.tenant, &ida.id, others.clone()).await.unwrap_or_else(|e| panic!("{e}"));
    p.fake.put_user(graph_user("g-ida", "Ida", "Moe", "ida@contoso.com", "Oslo", "Nurse"));
    p.run(Request::default()).await;
    let ida = p.roster.get(&p.tenant.id, Kind::User, &ida.id).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(placement(&ida), json!({ "unit": "Oslo", "userTypes": ["Nurse"], "otherUnits": others }));
    p.fake.put_user(graph_user("g-ida", "Ida", "Moe", "ida@contoso.com", "HR", "Intern"));
    p.run(Request::default()).await;
    let ida = p.roster.get(&p.tenant.id, Kind::User, &ida.id).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(placement(&ida), json!({ "otherUnits": others }), "the pull's membership goes, the application's stay");
}
