//! The directory on both adapters: users, groups, membership, uniqueness,
//! policy, paging, and the cost of each operation.

use super::*;

// -- users ------------------------------------------------------------------------

/// GIVEN a tenant WHEN a user is created THEN it is found by id, by userName
/// in any case, by externalId, and counted.
pub(crate) async fn users_are_found_by_key(t: TestTable) {
    let roster = roster_on(t.table);
    let acme = tenant(&roster, "acme").await;
    let attrs = parse_resource(user(), &json!({ "userName": "Bjensen@Example.com", "externalId": "701984" }))
        .unwrap_or_else(|e| panic!("{e}"));
    let created = roster.create(&acme, Kind::User, attrs, &[]).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(created.version, 1);
    assert_eq!(created.resource["meta"]["version"], json!("W/\"1\""));
    assert_eq!(created.resource["meta"]["resourceType"], json!("User"));
    let got = roster.get(&acme.id, Kind::User, &created.id).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(got, created);
    assert_eq!(
        find(&roster, &acme, Kind::User, r#"userName eq "bjensen@example.COM""#).await,
        vec![created.id.clone()]
    );
    assert_eq!(find(&roster, &acme, Kind::User, r#"externalId eq "701984""#).await, vec![created.id.clone()]);
    assert!(find(&roster, &acme, Kind::User, r#"externalId eq "701984 ""#).await.is_empty(), "externalId is caseExact");
    assert_eq!(find(&roster, &acme, Kind::User, &format!(r#"id eq "{}""#, created.id)).await, vec![created.id.clone()]);
    assert_eq!(
        find(&roster, &acme, Kind::User, r#"userName eq "bjensen@example.com" and active eq true"#).await,
        Vec::<String>::new(),
        "the rest of an and-filter still applies (active was not set)"
    );
    // Entra's Test Connection: an unknown userName gives an empty page.
    let page = roster
        .search(&acme.id, Kind::User, Some(&filter(r#"userName eq "0e1c9e5a-unknown""#)), &index(1, 100))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((page.total, page.resources.len()), (0, 0));
    assert_eq!(roster.count(&acme.id, Kind::User).await.ok(), Some(1));
    let missing = roster.get(&acme.id, Kind::User, "nope").await.map_err(scim);
    assert_eq!(missing.err().map(|e| e.status), Some(404));
}

/// GIVEN a user WHEN another is created with the same userName in another
/// case, or (in a tenant that wants them unique) the same externalId THEN
/// 409 uniqueness, and nothing is written.
pub(crate) async fn unique_user_name_and_external_id(t: TestTable) {
    let roster = roster_on(t.table);
    let acme =
        tenant_with(&roster, "acme", TenantSettings { unique_external_ids: true, ..TenantSettings::default() }).await;
    let first = roster
        .create(
            &acme,
            Kind::User,
            parse_resource(user(), &json!({ "userName": "a@x.io", "externalId": "e1" })).unwrap_or_default(),
            &[],
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    for body in [json!({ "userName": "A@X.IO" }), json!({ "userName": "b@x.io", "externalId": "e1" })] {
        let attrs = parse_resource(user(), &body).unwrap_or_default();
        let e = roster.create(&acme, Kind::User, attrs, &[]).await.map_err(scim).err();
        assert_eq!(e.as_ref().map(|e| (e.status, e.scim_type)), Some((409, Some(ScimType::Uniqueness))), "{body}");
    }
    assert!(
        find(&roster, &acme, Kind::User, r#"userName eq "b@x.io""#).await.is_empty(),
        "the refused create left nothing"
    );
    assert_eq!(roster.count(&acme.id, Kind::User).await.ok(), Some(1));
    roster.delete(&acme, Kind::User, &first.id, None).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(roster.count(&acme.id, Kind::User).await.ok(), Some(0));
    new_user(&roster, &acme, "a@x.io").await;
}

/// GIVEN 16 concurrent creates of one userName WHEN they race THEN exactly
/// one wins and the others get 409 uniqueness.
pub(crate) async fn concurrent_creates_one_winner(t: TestTable) {
    let roster = Arc::new(roster_on(t.table));
    let acme = tenant(&roster, "acme").await;
    let mut tasks = Vec::new();
    for i in 0..16 {
        let (roster, acme) = (Arc::clone(&roster), acme.clone());
        tasks.push(tokio::spawn(async move {
            let attrs =
                parse_resource(user(), &json!({ "userName": if i % 2 == 0 { "race@x.io" } else { "RACE@x.io" } }))
                    .unwrap_or_default();
            roster.create(&acme, Kind::User, attrs, &[]).await.map_err(scim)
        }));
    }
    let mut wins = 0;
    for task in tasks {
        match task.await.unwrap_or_else(|e| panic!("{e}")) {
            Ok(_) => wins += 1,
            Err(e) => assert_eq!((e.status, e.scim_type), (409, Some(ScimType::Uniqueness)), "{e}"),
        }
    }
    assert_eq!(wins, 1);
    assert_eq!(roster.count(&acme.id, Kind::User).await.ok(), Some(1));
    assert_eq!(find(&roster, &acme, Kind::User, r#"userName eq "race@x.io""#).await.len(), 1);
}

/// GIVEN a user WHEN it is replaced with a new userName THEN the old name is
/// free, the new one claimed, the version bumped; a stale If-Match is 412.
pub(crate) async fn updates_move_claims_and_check_versions(t: TestTable) {
    let roster = roster_on(t.table);
    let acme = tenant(&roster, "acme").await;
    let u = new_user(&roster, &acme, "old@x.io").await;
    new_user(&roster, &acme, "taken@x.io").await;
    let renamed = roster
        .replace(&acme, Kind::User, &u.id, user_attrs("new@x.io"), None, Some("W/\"1\""))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(renamed.version, 2);
    assert_eq!(renamed.resource["meta"]["created"], u.resource["meta"]["created"]);
    assert!(find(&roster, &acme, Kind::User, r#"userName eq "old@x.io""#).await.is_empty());
    assert_eq!(find(&roster, &acme, Kind::User, r#"userName eq "new@x.io""#).await, vec![u.id.clone()]);
    let stale =
        roster.replace(&acme, Kind::User, &u.id, user_attrs("x@x.io"), None, Some("W/\"1\"")).await.map_err(scim);
    assert_eq!(stale.err().map(|e| e.status), Some(412));
    let clash = roster.replace(&acme, Kind::User, &u.id, user_attrs("TAKEN@x.io"), None, None).await.map_err(scim);
    assert_eq!(clash.err().map(|e| (e.status, e.scim_type)), Some((409, Some(ScimType::Uniqueness))));
    assert_eq!(
        find(&roster, &acme, Kind::User, r#"userName eq "new@x.io""#).await,
        vec![u.id.clone()],
        "the refused rename left the claim"
    );
    // A case-only rename keeps the claim (case-insensitive uniqueness).
    let recased = roster.replace(&acme, Kind::User, &u.id, user_attrs("NEW@x.io"), None, None).await;
    assert!(recased.is_ok(), "{:?}", recased.err());
    // A replay changes nothing, not even the version.
    let v = roster.get(&acme.id, Kind::User, &u.id).await.map(|s| s.version).ok();
    let same =
        roster.replace(&acme, Kind::User, &u.id, user_attrs("NEW@x.io"), None, None).await.map(|s| s.version).ok();
    assert_eq!(same, v);
    let ok_delete = roster.delete(&acme, Kind::User, &u.id, Some("W/\"1\"")).await.map_err(scim);
    assert_eq!(ok_delete.err().map(|e| e.status), Some(412));
}

/// GIVEN tenant policy WHEN users break it THEN the SCIM errors say so.
pub(crate) async fn tenant_policy_is_enforced(t: TestTable) {
    let roster = roster_on(t.table);
    let settings = TenantSettings {
        user_name_must_be_email: true,
        user_name_mutable: false,
        deactivation: Deactivation::RemoveFromGroups,
        ..TenantSettings::default()
    };
    let zinc = tenant_with(&roster, "zinc", settings).await;
    let e = roster.create(&zinc, Kind::User, user_attrs("not an email"), &[]).await.map_err(scim).err();
    assert_eq!(e.map(|e| (e.status, e.scim_type)), Some((400, Some(ScimType::InvalidValue))));
    let u = new_user(&roster, &zinc, "a@zinc.io").await;
    let e = roster.replace(&zinc, Kind::User, &u.id, user_attrs("b@zinc.io"), None, None).await.map_err(scim).err();
    assert_eq!(e.map(|e| (e.status, e.scim_type)), Some((400, Some(ScimType::Mutability))));
    let g = new_group(&roster, &zinc, "Guides", &[&u]).await;
    assert_eq!(roster.groups_of(&zinc.id, &u.id).await.map(|g| g.len()).ok(), Some(1));
    let off = patch(json!({ "Operations": [{ "op": "replace", "value": { "active": false } }] }));
    let after = roster.patch(&zinc, Kind::User, &u.id, &off, None).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(after.resource["active"], json!(false));
    assert!(member_ids(&roster, &zinc, &g.id).await.is_empty(), "deactivation removed the user from the group");
    assert!(roster.groups_of(&zinc.id, &u.id).await.map(|g| g.is_empty()).unwrap_or(false));
    let on = patch(json!({ "Operations": [{ "op": "replace", "path": "active", "value": "True" }] }));
    roster.patch(&zinc, Kind::User, &u.id, &on, None).await.unwrap_or_else(|e| panic!("{e}"));
    assert!(member_ids(&roster, &zinc, &g.id).await.is_empty(), "reactivation does not restore groups");
}

// -- groups and membership ----------------------------------------------------

/// GIVEN users and groups WHEN members are added, removed, replaced and
/// resources deleted THEN both sides of every membership agree.
pub(crate) async fn membership_both_ways(t: TestTable) {
    let roster = roster_on(t.table);
    let acme = tenant(&roster, "acme").await;
    let a = new_user(&roster, &acme, "a@x.io").await;
    let b = new_user(&roster, &acme, "b@x.io").await;
    let c = new_user(&roster, &acme, "c@x.io").await;
    let g = new_group(&roster, &acme, "Guides", &[&a, &b]).await;
    assert_eq!(member_ids(&roster, &acme, &g.id).await, BTreeSet::from([a.id.clone(), b.id.clone()]));
    let staff = new_group(&roster, &acme, "Staff", &[&a, &g]).await;
    assert_eq!(
        roster.groups_of(&acme.id, &a.id).await.map(|gs| gs.into_iter().map(|g| g.id).collect::<BTreeSet<_>>()).ok(),
        Some(BTreeSet::from([g.id.clone(), staff.id.clone()]))
    );
    assert_eq!(
        find(&roster, &acme, Kind::Group, &format!(r#"members[value eq "{}"]"#, b.id)).await,
        vec![g.id.clone()]
    );
    let swap = patch(json!({ "Operations": [
        { "op": "Remove", "path": "members", "value": [{ "value": b.id }] },
        { "op": "Add", "path": "members", "value": [{ "value": c.id }] }
    ]}));
    let after = roster.patch(&acme, Kind::Group, &g.id, &swap, None).await.unwrap_or_else(|e| panic!("{e}"));
    assert!(after.version > g.version, "membership changes bump the group's version");
    assert_eq!(member_ids(&roster, &acme, &g.id).await, BTreeSet::from([a.id.clone(), c.id.clone()]));
    assert!(roster.groups_of(&acme.id, &b.id).await.map(|g| g.is_empty()).unwrap_or(false));
    let bogus =
        patch(json!({ "Operations": [{ "op": "add", "path": "members", "value": [{ "value": "no-such-user" }] }] }));
    let e = roster.patch(&acme, Kind::Group, &g.id, &bogus, None).await.map_err(scim).err();
    assert_eq!(e.map(|e| (e.status, e.scim_type)), Some((400, Some(ScimType::InvalidValue))));
    let replaced = roster
        .replace(
            &acme,
            Kind::Group,
            &g.id,
            group_attrs("Guides"),
            Some(vec![MemberRef { value: b.id.clone(), kind: None }]),
            None,
        )
        .await;
    assert!(replaced.is_ok(), "{:?}", replaced.err());
    assert_eq!(member_ids(&roster, &acme, &g.id).await, BTreeSet::from([b.id.clone()]));
    assert!(roster.groups_of(&acme.id, &c.id).await.map(|g| g.is_empty()).unwrap_or(false));
    roster.delete(&acme, Kind::User, &a.id, None).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        member_ids(&roster, &acme, &staff.id).await,
        BTreeSet::from([g.id.clone()]),
        "a deleted user leaves its groups"
    );
    roster.delete(&acme, Kind::Group, &g.id, None).await.unwrap_or_else(|e| panic!("{e}"));
    assert!(member_ids(&roster, &acme, &staff.id).await.is_empty(), "a deleted group leaves its groups");
    assert!(member_ids(&roster, &acme, &g.id).await.is_empty(), "a deleted group's member entries are gone");
    assert!(
        roster.groups_of(&acme.id, &b.id).await.map(|g| g.is_empty()).unwrap_or(false),
        "and so are the reverse entries"
    );
}

/// GIVEN one group WHEN 12 clients add different members at once THEN no
/// add is lost.
pub(crate) async fn concurrent_member_adds_lose_nothing(t: TestTable) {
    let roster = Arc::new(roster_on(t.table));
    let acme = tenant(&roster, "acme").await;
    let mut users = Vec::new();
    for i in 0..12 {
        users.push(new_user(&roster, &acme, &format!("m{i}@x.io")).await);
    }
    let g = new_group(&roster, &acme, "Busy", &[]).await;
    let mut tasks = Vec::new();
    for u in &users {
        let (roster, acme, gid, uid) = (Arc::clone(&roster), acme.clone(), g.id.clone(), u.id.clone());
        tasks.push(tokio::spawn(async move {
            let add = PatchRequest::parse(
                &json!({ "Operations": [{ "op": "add", "path": "members", "value": [{ "value": uid }] }] }),
            )
            .unwrap_or_else(|e| panic!("{e}"));
            roster.patch(&acme, Kind::Group, &gid, &add, None).await.map_err(scim)
        }));
    }
    for task in tasks {
        let r = task.await.unwrap_or_else(|e| panic!("{e}"));
        assert!(r.is_ok(), "{:?}", r.err());
    }
    let expected: BTreeSet<String> = users.iter().map(|u| u.id.clone()).collect();
    assert_eq!(member_ids(&roster, &acme, &g.id).await, expected);
    let final_version = roster.get(&acme.id, Kind::Group, &g.id).await.map(|g| g.version).ok();
    assert_eq!(final_version, Some(1 + 12), "each add bumped the version once");
}

/// GIVEN one user WHEN 20 PATCHes without If-Match change it at once THEN
/// none is answered 409 (the directory retries contended writes itself;
/// 503 is the answer only when it truly cannot) and every one answered
/// with success is kept.
pub(crate) async fn concurrent_patches_are_serialised_not_refused(t: TestTable) {
    let roster = Arc::new(roster_on(t.table));
    let acme = tenant(&roster, "acme").await;
    let u = new_user(&roster, &acme, "contended@x.io").await;
    let mut tasks = Vec::new();
    for i in 0..20 {
        let (roster, acme, id) = (Arc::clone(&roster), acme.clone(), u.id.clone());
        tasks.push(tokio::spawn(async move {
            let add = patch(json!({ "Operations": [
                { "op": "add", "path": "emails", "value": [{ "value": format!("e{i}@x.io"), "type": "other" }] }
            ] }));
            roster.patch(&acme, Kind::User, &id, &add, None).await.map_err(scim)
        }));
    }
    let mut applied = 0;
    for task in tasks {
        match task.await.unwrap_or_else(|e| panic!("{e}")) {
            Ok(_) => applied += 1,
            Err(e) => assert_eq!(e.status, 503, "{e}"),
        }
    }
    let stored = roster.get(&acme.id, Kind::User, &u.id).await.unwrap_or_else(|e| panic!("{e}"));
    let kept = stored.resource["emails"].as_array().map_or(0, Vec::len);
    assert_eq!(kept, applied, "every success was kept (version {})", stored.version);
    assert!(applied >= 10, "only {applied} of 20 applied");
}

/// GIVEN the stored-size limit WHEN a user over it is created, or grown
/// past it by PATCH THEN both stores refuse it alike, before any write, with
/// a 400 that names the limit; and an item over DynamoDB's 400 KB item limit
/// is refused by the embedded store as DynamoDB refuses it.
pub(crate) async fn oversized_resources_are_refused_alike(t: TestTable) {
    let counting = Arc::new(CountingTable::new(Arc::clone(&t.table)));
    let roster = roster_on(counting.clone());
    let acme = tenant(&roster, "acme").await;
    let roles: Vec<Value> = (0..5_000).map(|i| json!({ "value": format!("role-number-{i:05}") })).collect();
    let body = json!({ "userName": "big@x.io", "roles": roles.clone() });
    let attrs = parse_resource(user(), &body).unwrap_or_else(|e| panic!("{e}"));
    counting.take();
    let e = roster.create(&acme, Kind::User, attrs, &[]).await.map_err(scim).err();
    assert_eq!(e.as_ref().map(|e| (e.status, e.scim_type)), Some((400, Some(ScimType::InvalidValue))));
    assert!(e.is_some_and(|e| e.detail.contains("at most 102400 bytes")));
    assert_eq!(counting.take().writes(), 0);

    let u = new_user(&roster, &acme, "grows@x.io").await;
    counting.take();
    let grow = patch(json!({ "Operations": [{ "op": "add", "path": "roles", "value": roles }] }));
    let e = roster.patch(&acme, Kind::User, &u.id, &grow, None).await.map_err(scim).err();
    assert_eq!(e.map(|e| e.status), Some(400));
    assert_eq!(counting.take().writes(), 0);

    let huge =
        Item { pk: "T#acme#RAW".into(), sk: "x".into(), version: 1, data: "x".repeat(401 * 1024), ..Item::default() };
    let refused = t.table.write(Write::Put { item: huge, cond: Cond::Always }).await;
    assert!(matches!(refused, Err(StoreError::Limit(_) | StoreError::Unavailable(_))), "{refused:?}");
    let long_key =
        Item { pk: "T#acme#RAW".into(), sk: "k".repeat(1025), version: 1, data: "{}".into(), ..Item::default() };
    let refused = t.table.write(Write::Put { item: long_key, cond: Cond::Always }).await;
    assert!(matches!(refused, Err(StoreError::Limit(_) | StoreError::Unavailable(_))), "{refused:?}");
}

/// A table that lets a test step in at a chosen moment: deleting an item
/// just before the first batch of member entries is written (a concurrent
/// delete landing between a member add's checks and its writes), or failing
/// a query of a partition after letting a number of them through (a delete
/// that stops half-way).
pub(crate) struct Interfering {
    inner: Arc<dyn Table>,
    pub(crate) delete_before_member_write: Mutex<Option<Key>>,
    pub(crate) fail_query_of: Mutex<Option<(String, u32)>>,
}

impl Interfering {
    pub(crate) fn new(inner: Arc<dyn Table>) -> Self {
        Self { inner, delete_before_member_write: Mutex::new(None), fail_query_of: Mutex::new(None) }
    }

    fn take<T>(slot: &Mutex<Option<T>>) -> Option<T> {
        slot.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take()
    }

    pub(crate) fn set<T>(slot: &Mutex<Option<T>>, value: T) {
        *slot.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(value);
    }
}

#[async_trait::async_trait]
impl Table for Interfering {
    async fn get(&self, key: &Key) -> Result<Option<Item>, StoreError> {
        self.inner.get(key).await
    }
    async fn batch_get(&self, keys: &[Key]) -> Result<Vec<Item>, StoreError> {
        self.inner.batch_get(keys).await
    }
    async fn write(&self, write: Write) -> Result<(), StoreError> {
        self.inner.write(write).await
    }
    async fn transact(&self, writes: Vec<Write>) -> Result<(), StoreError> {
        self.inner.transact(writes).await
    }
    async fn batch_write(&self, writes: Vec<Write>) -> Result<(), StoreError> {
        let adds_members = writes.iter().any(|w| matches!(w, Write::Put { item, .. } if item.pk.contains("#MEMBERS#")));
        if adds_members && let Some(key) = Self::take(&self.delete_before_member_write) {
            self.inner.write(Write::Delete { key, cond: Cond::Always }).await?;
        }
        self.inner.batch_write(writes).await
    }
    async fn query(&self, query: &Query) -> Result<Page, StoreError> {
        let fail = {
            let mut slot = self.fail_query_of.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            match slot.as_mut() {
                Some((pk, 0)) if *pk == query.pk => slot.take().is_some(),
                Some((pk, through)) if *pk == query.pk => {
                    *through -= 1;
                    false
                }
                _ => false,
            }
        };
        if fail {
            return Err(StoreError::Unavailable("the test stopped this query".into()));
        }
        self.inner.query(query).await
    }
}

/// GIVEN a group WHEN a member, or the group itself, is deleted between a
/// member add's existence checks and its writes THEN the add takes its
/// entries back: no membership outlives its member or its group.
pub(crate) async fn memberships_never_outlive_a_concurrent_delete(t: TestTable) {
    let table = Arc::new(Interfering::new(Arc::clone(&t.table)));
    let roster = roster_on(table.clone());
    let acme = tenant(&roster, "acme").await;
    let stays = new_user(&roster, &acme, "stays@x.io").await;
    let leaves = new_user(&roster, &acme, "leaves@x.io").await;
    let g = new_group(&roster, &acme, "Racing", &[]).await;
    let add_both = patch(json!({ "Operations": [{ "op": "add", "path": "members",
        "value": [{ "value": stays.id }, { "value": leaves.id }] }] }));

    Interfering::set(&table.delete_before_member_write, lockstep_core::model::resource("acme", Kind::User, &leaves.id));
    let added = roster.patch(&acme, Kind::Group, &g.id, &add_both, None).await;
    assert!(added.is_ok(), "the add is ordered before the delete: {:?}", added.err());
    assert_eq!(member_ids(&roster, &acme, &g.id).await, BTreeSet::from([stays.id.clone()]));
    assert_eq!(
        roster.group_ids_of(&acme.id, &leaves.id).await.ok(),
        Some(vec![]),
        "no reverse entry for the deleted user"
    );
    assert_eq!(roster.group_ids_of(&acme.id, &stays.id).await.ok(), Some(vec![g.id.clone()]));

    let doomed = new_group(&roster, &acme, "Doomed", &[]).await;
    Interfering::set(
        &table.delete_before_member_write,
        lockstep_core::model::resource("acme", Kind::Group, &doomed.id),
    );
    let add_stays =
        patch(json!({ "Operations": [{ "op": "add", "path": "members", "value": [{ "value": stays.id }] }] }));
    let e = roster.patch(&acme, Kind::Group, &doomed.id, &add_stays, None).await.map_err(scim).err();
    assert_eq!(e.map(|e| e.status), Some(404), "the group went first");
    assert!(member_ids(&roster, &acme, &doomed.id).await.is_empty(), "the deleted group keeps no member entries");
    assert_eq!(roster.group_ids_of(&acme.id, &stays.id).await.ok(), Some(vec![g.id.clone()]), "nor reverse entries");
}

/// GIVEN a user in a group WHEN its delete stops after removing the user
/// THEN the membership is still there, and the identity provider's retry of
/// the delete (answered 404) removes it.
pub(crate) async fn a_retried_delete_finishes_the_cleanup(t: TestTable) {
    let table = Arc::new(Interfering::new(Arc::clone(&t.table)));
    let roster = roster_on(table.clone());
    let acme = tenant(&roster, "acme").await;
    let u = new_user(&roster, &acme, "half@x.io").await;
    let g = new_group(&roster, &acme, "Half", &[&u]).await;

    // The delete reads the user's groups once to remember them, then again
    // to leave them: the second read fails.
    Interfering::set(&table.fail_query_of, (lockstep_core::model::member_of_pk("acme", &u.id), 1));
    let first = roster.delete(&acme, Kind::User, &u.id, None).await.map_err(scim).err();
    assert_eq!(first.map(|e| e.status), Some(500));
    assert_eq!(roster.get(&acme.id, Kind::User, &u.id).await.map_err(scim).err().map(|e| e.status), Some(404));
    assert_eq!(member_ids(&roster, &acme, &g.id).await, BTreeSet::from([u.id.clone()]), "left behind by the failure");

    let retry = roster.delete(&acme, Kind::User, &u.id, None).await.map_err(scim).err();
    assert_eq!(retry.map(|e| e.status), Some(404));
    assert!(member_ids(&roster, &acme, &g.id).await.is_empty(), "the retry removed the membership");
    assert_eq!(roster.group_ids_of(&acme.id, &u.id).await.ok(), Some(vec![]));
}

/// GIVEN a user in a group WHEN a client deletes the user's id as a group
/// (`DELETE /Groups/{user id}`) THEN the answer is 404 and the user keeps
/// its memberships: the cleanup of a half-failed delete never touches a
/// resource of the other kind.
pub(crate) async fn a_delete_of_the_wrong_kind_touches_nothing(t: TestTable) {
    let roster = roster_on(Arc::clone(&t.table));
    let acme = tenant(&roster, "acme").await;
    let u = new_user(&roster, &acme, "kept@x.io").await;
    let g = new_group(&roster, &acme, "Kept", &[&u]).await;
    let wrong = roster.delete(&acme, Kind::Group, &u.id, None).await.map_err(scim).err();
    assert_eq!(wrong.map(|e| e.status), Some(404));
    let wrong = roster.delete(&acme, Kind::User, &g.id, None).await.map_err(scim).err();
    assert_eq!(wrong.map(|e| e.status), Some(404));
    assert_eq!(member_ids(&roster, &acme, &g.id).await, BTreeSet::from([u.id.clone()]));
    assert_eq!(roster.group_ids_of(&acme.id, &u.id).await.ok(), Some(vec![g.id.clone()]));
}

/// GIVEN a group of n members WHEN one member is added THEN the calls made
/// do not depend on n (docs/DATA_MODEL.md).
pub(crate) async fn member_add_cost_is_independent_of_group_size(t: TestTable) {
    let big = if t.adapter == Adapter::Embedded { 10_000 } else { 1_000 };
    let counting = Arc::new(CountingTable::new(Arc::clone(&t.table)));
    let roster = roster_on(counting.clone());
    let acme = tenant(&roster, "acme").await;
    let mut costs = Vec::new();
    for size in [10usize, big] {
        let g = new_group(&roster, &acme, &format!("size-{size}"), &[]).await;
        load_members(&t.table, &acme.id, &g.id, size).await;
        let newcomer = new_user(&roster, &acme, &format!("new-{size}@x.io")).await;
        counting.take();
        let add =
            patch(json!({ "Operations": [{ "op": "add", "path": "members", "value": [{ "value": newcomer.id }] }] }));
        roster.patch(&acme, Kind::Group, &g.id, &add, None).await.unwrap_or_else(|e| panic!("{e}"));
        costs.push(counting.take());
    }
    assert_eq!(costs[0], costs[1], "adding one member to a group of 10 and of {big}");
    assert_eq!(
        costs[0],
        Calls { get: 2, batch_get: 2, write: 1, transact: 0, batch_write: 1, query: 0 },
        "1 read of the group, 1 batch read to check the member, 1 batch of 2 writes, \
         1 batch read to check it again, 1 version bump, 1 read back"
    );
}

/// Member entries written directly (both sides), to build big groups fast.
pub(crate) async fn load_members(table: &Arc<dyn Table>, t: &TenantId, group: &str, n: usize) {
    let writes: Vec<Write> = (0..n)
        .flat_map(|i| {
            let id = format!("bulk-{i:06}");
            let m = lockstep_core::model::member(t.as_str(), group, &id);
            let r = lockstep_core::model::member_of(t.as_str(), &id, group);
            [m, r].map(|k| Write::Put {
                item: Item { pk: k.pk, sk: k.sk, version: 1, data: r#"{"type":"User"}"#.into(), ..Item::default() },
                cond: Cond::Always,
            })
        })
        .collect();
    for chunk in writes.chunks(25) {
        table.batch_write(chunk.to_vec()).await.unwrap_or_else(|e| panic!("{e}"));
    }
}

/// The per-operation costs of docs/DATA_MODEL.md.
pub(crate) async fn operation_costs(t: TestTable) {
    let counting = Arc::new(CountingTable::new(Arc::clone(&t.table)));
    let roster = roster_on(counting.clone());
    let acme = tenant(&roster, "acme").await;
    counting.take();
    let u = new_user(&roster, &acme, "cost@x.io").await;
    assert_eq!(counting.take(), Calls { transact: 1, ..Calls::default() }, "create user");
    roster.get(&acme.id, Kind::User, &u.id).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(counting.take(), Calls { get: 1, ..Calls::default() }, "get by id");
    find(&roster, &acme, Kind::User, r#"userName eq "cost@x.io""#).await;
    assert_eq!(counting.take(), Calls { query: 1, batch_get: 1, ..Calls::default() }, "find by userName");
    find(&roster, &acme, Kind::User, r#"externalId eq "nope""#).await;
    assert_eq!(counting.take(), Calls { query: 1, batch_get: 0, ..Calls::default() }, "find by externalId, no match");
    let rename = patch(json!({ "Operations": [{ "op": "replace", "path": "userName", "value": "renamed@x.io" }] }));
    roster.patch(&acme, Kind::User, &u.id, &rename, None).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        counting.take(),
        Calls { get: 2, transact: 1, ..Calls::default() },
        "patch user: read, write, read back"
    );
    let noop = patch(json!({ "Operations": [{ "op": "replace", "path": "userName", "value": "renamed@x.io" }] }));
    roster.patch(&acme, Kind::User, &u.id, &noop, None).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(counting.take(), Calls { get: 1, ..Calls::default() }, "a no-op patch writes nothing");
    roster.search(&acme.id, Kind::User, None, &index(1, 10)).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        counting.take(),
        Calls { batch_get: 1, query: 1, ..Calls::default() },
        "first list page: counters + one query"
    );
    roster.delete(&acme, Kind::User, &u.id, None).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        counting.take(),
        Calls { get: 1, transact: 1, query: 2, write: 1, ..Calls::default() },
        "delete user in no groups: read, its groups (remembered, then left), one transaction, the marker removed"
    );
}

// -- listing and paging -------------------------------------------------------

/// GIVEN 25 users WHEN listed with startIndex/count THEN pages are stable,
/// complete, without repeats, totalResults exact; sequential pages start
/// from a bookmark instead of re-reading.
pub(crate) async fn index_paging(t: TestTable) {
    let counting = Arc::new(CountingTable::new(Arc::clone(&t.table)));
    let roster = roster_on(counting.clone());
    let acme = tenant(&roster, "acme").await;
    let mut ids = BTreeSet::new();
    for i in 0..25 {
        ids.insert(new_user(&roster, &acme, &format!("u{i:02}@x.io")).await.id);
    }
    let mut seen = Vec::new();
    let mut start = 1;
    loop {
        counting.take();
        let page = roster.search(&acme.id, Kind::User, None, &index(start, 10)).await.unwrap_or_else(|e| panic!("{e}"));
        let calls = counting.take();
        if start > 1 && start <= 25 {
            assert_eq!(calls.get, 1, "page at {start} starts from its bookmark");
            assert_eq!(calls.query, 1, "and reads one page only");
        }
        assert_eq!(page.total, 25);
        assert_eq!(page.start_index, Some(start));
        if page.resources.is_empty() {
            break;
        }
        seen.extend(page.resources.into_iter().map(|s| s.id));
        start += 10;
    }
    assert_eq!(seen.len(), 25);
    assert_eq!(seen.iter().cloned().collect::<BTreeSet<_>>(), ids);
    // The same page twice is the same page; a jump without bookmark skips.
    let a = roster
        .search(&acme.id, Kind::User, None, &index(7, 5))
        .await
        .map(|p| p.resources.iter().map(|s| s.id.clone()).collect::<Vec<_>>());
    let b = roster
        .search(&acme.id, Kind::User, None, &index(7, 5))
        .await
        .map(|p| p.resources.iter().map(|s| s.id.clone()).collect::<Vec<_>>());
    assert_eq!(a.as_ref().ok(), b.as_ref().ok());
    assert_eq!(a.ok(), Some(seen[6..11].to_vec()));
    let beyond = roster.search(&acme.id, Kind::User, None, &index(26, 10)).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((beyond.total, beyond.resources.len()), (25, 0));
    let none = roster.search(&acme.id, Kind::User, None, &index(1, 0)).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((none.total, none.resources.len()), (25, 0));
}

/// GIVEN 25 users WHEN filtered on a non-indexed attribute, by index and by
/// cursor pages with a small read budget THEN every match comes exactly once;
/// bad cursors are refused.
pub(crate) async fn filters_and_cursors(t: TestTable) {
    let limits = Limits { cursor_read_budget: 7, scan_budget: 30, ..Limits::default() };
    let roster = roster_with(t.table, limits);
    let acme = tenant(&roster, "acme").await;
    let mut guides = BTreeSet::new();
    for i in 0..25 {
        let title = if i % 3 == 0 { "Guide" } else { "Driver" };
        let attrs =
            parse_resource(user(), &json!({ "userName": format!("u{i:02}@x.io"), "title": title })).unwrap_or_default();
        let s = roster.create(&acme, Kind::User, attrs, &[]).await.unwrap_or_else(|e| panic!("{e}"));
        if title == "Guide" {
            guides.insert(s.id);
        }
    }
    let f = filter(r#"title eq "guide""#);
    let page = roster.search(&acme.id, Kind::User, Some(&f), &index(1, 100)).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(page.total, 9);
    assert_eq!(page.resources.iter().map(|s| s.id.clone()).collect::<BTreeSet<_>>(), guides);
    let mut cursor: Option<String> = None;
    let mut seen = Vec::new();
    let mut pages = 0;
    loop {
        let paging = Paging::Cursor { cursor: cursor.clone(), count: Some(2) };
        let page = roster.search(&acme.id, Kind::User, Some(&f), &paging).await.unwrap_or_else(|e| panic!("{e}"));
        assert!(page.resources.len() <= 2);
        seen.extend(page.resources.into_iter().map(|s| s.id));
        pages += 1;
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => break,
        }
        assert!(pages < 50, "cursor paging must end");
    }
    assert_eq!(seen.len(), 9, "{seen:?}");
    assert_eq!(seen.into_iter().collect::<BTreeSet<_>>(), guides);
    let tampered = Paging::Cursor { cursor: Some("eyJ4IjoxfQ.AAAA".into()), count: Some(2) };
    let e = roster.search(&acme.id, Kind::User, Some(&f), &tampered).await.map_err(scim).err();
    assert_eq!(e.map(|e| e.scim_type), Some(Some(ScimType::InvalidCursor)));
    let first = roster.search(&acme.id, Kind::User, Some(&f), &Paging::Cursor { cursor: None, count: Some(2) }).await;
    let other_query = Paging::Cursor { cursor: first.ok().and_then(|p| p.next_cursor), count: Some(2) };
    let e = roster
        .search(&acme.id, Kind::User, Some(&filter(r#"title eq "driver""#)), &other_query)
        .await
        .map_err(scim)
        .err();
    assert_eq!(e.map(|e| e.scim_type), Some(Some(ScimType::InvalidCursor)), "a cursor belongs to its query");
    // Beyond the scan budget, a non-indexed filter by index paging is refused.
    for i in 25..35 {
        new_user(&roster, &acme, &format!("u{i:02}@x.io")).await;
    }
    let e = roster.search(&acme.id, Kind::User, Some(&f), &index(1, 100)).await.map_err(scim).err();
    assert_eq!(e.map(|e| (e.status, e.scim_type)), Some((400, Some(ScimType::TooMany))));
}

// -- tenants ------------------------------------------------------------------------

/// GIVEN two tenants WHEN each has a user named alike THEN neither sees the
/// other's, by id, by filter or by listing.
pub(crate) async fn tenants_are_isolated(t: TestTable) {
    let roster = roster_on(t.table);
    let acme = tenant(&roster, "acme").await;
    let zinc = tenant(&roster, "zinc").await;
    let a = new_user(&roster, &acme, "same@x.io").await;
    let z = new_user(&roster, &zinc, "same@x.io").await;
    assert_ne!(a.id, z.id);
    assert_eq!(roster.get(&zinc.id, Kind::User, &a.id).await.map_err(scim).err().map(|e| e.status), Some(404));
    assert_eq!(find(&roster, &zinc, Kind::User, r#"userName eq "same@x.io""#).await, vec![z.id.clone()]);
    let all = roster.search(&zinc.id, Kind::User, None, &index(1, 100)).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(all.resources.into_iter().map(|s| s.id).collect::<Vec<_>>(), vec![z.id]);
    let dup = roster.create_tenant(&acme.id, "again", TenantSettings::default()).await.map_err(scim).err();
    assert_eq!(dup.map(|e| e.status), Some(409));
    let tenants = roster.tenants().await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(tenants.iter().map(TenantId::as_str).collect::<Vec<_>>(), vec!["acme", "zinc"]);
    let updated = roster
        .update_tenant_settings(&acme.id, TenantSettings { unique_group_names: true, ..TenantSettings::default() })
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(updated.settings.unique_group_names);
    assert_eq!(roster.tenant(&acme.id).await.ok().flatten().map(|t| t.settings.unique_group_names), Some(true));
}

/// GIVEN group names unique by policy WHEN a second group takes a name THEN
/// 409; without the policy, lookups by displayName find all namesakes.
pub(crate) async fn group_names_by_policy(t: TestTable) {
    let roster = roster_on(t.table);
    let strict =
        tenant_with(&roster, "strict", TenantSettings { unique_group_names: true, ..TenantSettings::default() }).await;
    let loose =
        tenant_with(&roster, "loose", TenantSettings { unique_group_names: false, ..TenantSettings::default() }).await;
    assert!(TenantSettings::default().unique_group_names, "unique by default");
    new_group(&roster, &strict, "Sales", &[]).await;
    let e = roster.create(&strict, Kind::Group, group_attrs("SALES"), &[]).await.map_err(scim).err();
    assert_eq!(e.map(|e| (e.status, e.scim_type)), Some((409, Some(ScimType::Uniqueness))));
    let one = new_group(&roster, &loose, "Sales", &[]).await;
    let two = new_group(&roster, &loose, "sales", &[]).await;
    let found: BTreeSet<String> =
        find(&roster, &loose, Kind::Group, r#"displayName eq "Sales""#).await.into_iter().collect();
    assert_eq!(found, BTreeSet::from([one.id, two.id]));
}

pub(crate) fn user_with(user_name: &str, extra: Value) -> Object {
    let mut body = json!({ "userName": user_name });
    if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
        b.extend(e.clone());
    }
    parse_resource(user(), &body).unwrap_or_else(|e| panic!("{e}"))
}

/// The entries of one index value, read raw.
pub(crate) async fn index_entries(table: &Arc<dyn Table>, attr: lockstep_core::model::IndexAttr, value: &str) -> usize {
    let q = Query::table(lockstep_core::model::index_pk("acme", attr, value), SortKey::All, 100);
    table.query(&q).await.map(|p| p.items.len()).unwrap_or_else(|e| panic!("{e}"))
}

/// GIVEN the default policy WHEN two users share an externalId THEN both
/// are created and both are found by it; GIVEN `unique_external_ids` THEN
/// the second is refused. AND WHEN the setting changes after users were
/// written THEN each entry is still removed from where it was written:
/// turning uniqueness off and on again never leaves an entry behind that
/// refuses a free externalId, nor removes another user's entry.
pub(crate) async fn external_id_uniqueness_by_policy(t: TestTable) {
    use lockstep_core::model::IndexAttr;
    let roster = roster_on(Arc::clone(&t.table));
    let unique = TenantSettings { unique_external_ids: true, ..TenantSettings::default() };
    let acme = tenant_with(&roster, "acme", unique.clone()).await;
    let a = roster.create(&acme, Kind::User, user_with("a@x.io", json!({ "externalId": "e1" })), &[]).await;
    let a = a.unwrap_or_else(|e| panic!("{e}"));
    let dup = roster.create(&acme, Kind::User, user_with("b@x.io", json!({ "externalId": "e1" })), &[]).await;
    assert_eq!(dup.map_err(scim).err().map(|e| (e.status, e.scim_type)), Some((409, Some(ScimType::Uniqueness))));

    let loose =
        roster.update_tenant_settings(&acme.id, TenantSettings::default()).await.unwrap_or_else(|e| panic!("{e}"));
    let b = roster.create(&loose, Kind::User, user_with("b@x.io", json!({ "externalId": "e1" })), &[]).await;
    let b = b.unwrap_or_else(|e| panic!("{e}"));
    let found: BTreeSet<String> =
        find(&roster, &loose, Kind::User, r#"externalId eq "e1""#).await.into_iter().collect();
    assert_eq!(found, BTreeSet::from([a.id.clone(), b.id.clone()]));
    // a's entry was written unique; its delete removes that one, not b's.
    roster.delete(&loose, Kind::User, &a.id, None).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(index_entries(&t.table, IndexAttr::UserExternalId, "e1").await, 1, "b's entry stays");
    roster.delete(&loose, Kind::User, &b.id, None).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(index_entries(&t.table, IndexAttr::UserExternalId, "e1").await, 0);

    let strict = roster.update_tenant_settings(&acme.id, unique).await.unwrap_or_else(|e| panic!("{e}"));
    let c = roster.create(&strict, Kind::User, user_with("c@x.io", json!({ "externalId": "e1" })), &[]).await;
    assert!(c.is_ok(), "a free externalId is accepted: {:?}", c.err());
}

/// GIVEN users with work emails WHEN they are looked up by work email,
/// changed and deleted THEN the index follows: one entry per distinct
/// work email, none left after the delete.
pub(crate) async fn work_emails_are_indexed(t: TestTable) {
    use lockstep_core::model::IndexAttr;
    let roster = roster_on(Arc::clone(&t.table));
    let acme = tenant(&roster, "acme").await;
    let emails = json!({ "emails": [
        { "type": "work", "value": "Ann@X.io" }, { "type": "work", "value": "ann@x.io" }, { "type": "home", "value": "ann@home.io" }
    ] });
    let ann =
        roster.create(&acme, Kind::User, user_with("ann@x.io", emails), &[]).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(index_entries(&t.table, IndexAttr::UserWorkEmail, "ann@x.io").await, 1, "alike values are one entry");
    assert_eq!(index_entries(&t.table, IndexAttr::UserWorkEmail, "ann@home.io").await, 0, "work emails only");
    let found = find(&roster, &acme, Kind::User, r#"emails[type eq "work"].value eq "ANN@x.io""#).await;
    assert_eq!(found, vec![ann.id.clone()]);
    let change = patch(
        json!({ "Operations": [{ "op": "replace", "path": "emails", "value": [{ "type": "work", "value": "new@x.io" }] }] }),
    );
    roster.patch(&acme, Kind::User, &ann.id, &change, None).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(index_entries(&t.table, IndexAttr::UserWorkEmail, "ann@x.io").await, 0);
    assert_eq!(
        find(&roster, &acme, Kind::User, r#"emails[type eq "work" and value eq "new@x.io"]"#).await,
        vec![ann.id.clone()]
    );
    roster.delete(&acme, Kind::User, &ann.id, None).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(index_entries(&t.table, IndexAttr::UserWorkEmail, "new@x.io").await, 0);
}

/// GIVEN a user as an older version stored it (no work-email entry, its
/// externalId entry written unique, no record of either) WHEN the tenant
/// is reindexed THEN the work email finds the user, the externalId entry is
/// where the current (non-unique) rule puts it, and a second run rewrites
/// nothing.
pub(crate) async fn reindex_brings_older_entries_in_line(t: TestTable) {
    use lockstep_core::model::{self, IndexAttr};
    let roster = roster_on(Arc::clone(&t.table));
    let acme = tenant(&roster, "acme").await;
    let body = json!({ "externalId": "old-1", "emails": [{ "type": "work", "value": "old@x.io" }] });
    let u = roster.create(&acme, Kind::User, user_with("old@x.io", body), &[]).await.unwrap_or_else(|e| panic!("{e}"));
    // Rewrite it as it was: no `unique` record, a unique externalId entry, no work-email entry.
    let key = model::resource("acme", Kind::User, &u.id);
    let mut item = t.table.get(&key).await.ok().flatten().unwrap_or_else(|| panic!("no item"));
    let mut data: Value = serde_json::from_str(&item.data).unwrap_or_default();
    data["meta"] = json!({ "created": data["meta"]["created"].clone() });
    item.data = data.to_string();
    let unique_x = model::index_entry("acme", IndexAttr::UserExternalId, "old-1", true, &u.id);
    let loose_x = model::index_entry("acme", IndexAttr::UserExternalId, "old-1", false, &u.id);
    let work = model::index_entry("acme", IndexAttr::UserWorkEmail, "old@x.io", false, &u.id);
    rewrite_as_written_before(&t, item, &[loose_x.clone(), work], &unique_x, &u.id).await;
    assert!(find(&roster, &acme, Kind::User, r#"emails[type eq "work"].value eq "old@x.io""#).await.is_empty());

    let done = roster.reindex(&acme).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((done.checked, done.rewritten, done.refused.len()), (1, 1, 0));
    assert_eq!(
        find(&roster, &acme, Kind::User, r#"emails[type eq "work"].value eq "old@x.io""#).await,
        vec![u.id.clone()]
    );
    assert!(t.table.get(&unique_x).await.ok().flatten().is_none(), "the unique-form entry is gone");
    assert!(t.table.get(&loose_x).await.ok().flatten().is_some(), "the entry is where the current rule puts it");
    let again = roster.reindex(&acme).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((again.checked, again.rewritten), (1, 0), "nothing left to do");
}

/// GIVEN 20,000 users on the embedded store WHEN Entra asks for one by its
/// work email (`emails[type eq "work"].value eq "..."`, before every
/// create) THEN the lookup costs one query and one batch read, as it does
/// with 10 users: it is served by the index, not a scan (which the scan
/// budget would refuse at this size).
#[tokio::test(flavor = "multi_thread")]
pub(crate) async fn work_email_lookup_cost_is_independent_of_tenant_size() {
    let roster = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let table =
        lockstep_embedded::EmbeddedTable::open(&roster.path().join("store.redb")).unwrap_or_else(|e| panic!("{e}"));
    let counting = Arc::new(CountingTable::new(Arc::new(table.clone())));
    let roster = roster_on(counting.clone());
    let acme = tenant(&roster, "acme").await;
    let mut costs = Vec::new();
    let mut created = 0;
    for size in [10usize, 20_000] {
        table.bulk_load();
        for i in created..size {
            let body =
                json!({ "emails": [{ "type": "work", "value": format!("person{i}@contoso.com"), "primary": true }] });
            roster
                .create(&acme, Kind::User, user_with(&format!("upn{i}@contoso.com"), body), &[])
                .await
                .unwrap_or_else(|e| panic!("{e}"));
        }
        table.finish_bulk_load().await.unwrap_or_else(|e| panic!("{e}"));
        created = size;
        counting.take();
        let wanted = format!("person{}@contoso.com", size / 2);
        let found = find(&roster, &acme, Kind::User, &format!(r#"emails[type eq "work"].value eq "{wanted}""#)).await;
        assert_eq!(found.len(), 1, "at {size} users");
        costs.push(counting.take());
    }
    assert_eq!(costs[0], costs[1], "the lookup at 10 and at 20,000 users");
    assert_eq!(costs[0], Calls { get: 0, batch_get: 1, write: 0, transact: 0, batch_write: 0, query: 1 });
}

/// GIVEN "admin@x.io" WHEN users whose names only look like it are created
/// (fullwidth letters, a dotless i, a Cyrillic a, other case) THEN each is
/// 409 uniqueness; names that differ (an accented letter, "rn" for "m")
/// are created, and a filter still finds exactly the name it asks for.
pub(crate) async fn look_alike_user_names_are_one_name(t: TestTable) {
    let roster = roster_on(Arc::clone(&t.table));
    let acme = tenant(&roster, "acme").await;
    let admin = new_user(&roster, &acme, "admin@x.io").await;
    for look_alike in ["\u{ff41}dmin@x.io", "ＡＤＭＩＮ@x.io", "adm\u{131}n@x.io", "\u{430}dmin@x.io", "Admin@X.IO"]
    {
        let e = roster.create(&acme, Kind::User, user_attrs(look_alike), &[]).await.map_err(scim).err();
        let e = e.unwrap_or_else(|| panic!("{look_alike} was created beside admin@x.io"));
        assert_eq!((e.status, e.scim_type), (409, Some(ScimType::Uniqueness)), "{look_alike}: {}", e.detail);
    }
    for different in ["adm\u{ed}n@x.io", "adrnin@x.io"] {
        new_user(&roster, &acme, different).await;
    }
    assert_eq!(find(&roster, &acme, Kind::User, r#"userName eq "ADMIN@x.io""#).await, vec![admin.id.clone()]);
    assert!(
        find(&roster, &acme, Kind::User, "userName eq \"\u{430}dmin@x.io\"").await.is_empty(),
        "a look-alike is another name"
    );
    // Group names follow the same rule.
    new_group(&roster, &acme, "Admins", &[]).await;
    let e = roster.create(&acme, Kind::Group, group_attrs("\u{410}dmins"), &[]).await.map_err(scim).err();
    assert_eq!(e.map(|e| e.status), Some(409));
}

/// GIVEN a user placed by the service (the Graph pull writes the
/// directory extension) WHEN a SCIM client sends the placement on create,
/// replaces the user without it, or patches it THEN the client's value is
/// ignored, a replace keeps the service's value, and a PATCH naming it is
/// refused: the placement decides what the user may see in the product.
pub(crate) async fn the_directory_placement_is_owned_by_the_service(t: TestTable) {
    const PLACEMENT: &str = "urn:lockstep:params:scim:schemas:extension:directory:2.0:User";
    let roster = roster_on(Arc::clone(&t.table));
    let acme = tenant(&roster, "acme").await;
    // A client's create: the placement it sends is not kept.
    let body = json!({ "userName": "self@x.io", PLACEMENT: { "unit": "Board", "userTypes": ["Admin"] } });
    let by_client = parse_resource(user(), &body).unwrap_or_else(|e| panic!("{e}"));
    let u = roster.create(&acme, Kind::User, by_client, &[]).await.unwrap_or_else(|e| panic!("{e}"));
    assert!(u.resource.get(PLACEMENT).is_none(), "{:?}", u.resource);

    // The service places a user.
    let placed = json!({ "userName": "ola@x.io", PLACEMENT: { "unit": "Oslo", "userTypes": ["Nurse"] } });
    let placed = scim_protocol::parse_service_resource(user(), &placed).unwrap_or_else(|e| panic!("{e}"));
    let pulled =
        roster.pull_user(&acme, "graph-1", None, &placed, &Object::new()).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(pulled, lockstep_core::Pulled::Created);
    let ola = find(&roster, &acme, Kind::User, r#"userName eq "ola@x.io""#).await;
    let id = ola.first().cloned().unwrap_or_else(|| panic!("not created"));
    let placement = || async {
        roster.get(&acme.id, Kind::User, &id).await.unwrap_or_else(|e| panic!("{e}")).resource.get(PLACEMENT).cloned()
    };
    assert_eq!(placement().await, Some(json!({ "unit": "Oslo", "userTypes": ["Nurse"] })));

    // A client's PUT without it, or with another: the service's value stays.
    for body in [
        json!({ "userName": "ola@x.io", "displayName": "Ola" }),
        json!({ "userName": "ola@x.io", PLACEMENT: { "unit": "Board" } }),
    ] {
        let attrs = parse_resource(user(), &body).unwrap_or_else(|e| panic!("{e}"));
        roster.replace(&acme, Kind::User, &id, attrs, None, None).await.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(placement().await, Some(json!({ "unit": "Oslo", "userTypes": ["Nurse"] })), "after {body}");
    }
    // A PATCH naming it is refused; one that does not leaves it.
    let by_path = patch(json!({ "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{ "op": "replace", "path": format!("{PLACEMENT}:unit"), "value": "Board" }] }));
    let e = roster.patch(&acme, Kind::User, &id, &by_path, None).await.map_err(scim).err();
    assert_eq!(e.map(|e| (e.status, e.scim_type)), Some((400, Some(ScimType::Mutability))));
    let other = patch(json!({ "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{ "op": "replace", "path": "displayName", "value": "Ola H" }] }));
    roster.patch(&acme, Kind::User, &id, &other, None).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(placement().await, Some(json!({ "unit": "Oslo", "userTypes": ["Nurse"] })));
}

/// Put `item` back as an older version wrote it: its current index entries
/// `gone` removed, and the entry it had then (`entry`, pointing to `id`).
async fn rewrite_as_written_before(t: &TestTable, item: Item, gone: &[Key], entry: &Key, id: &str) {
    let old = Item {
        pk: entry.pk.clone(),
        sk: entry.sk.clone(),
        version: 1,
        data: json!({ "id": id }).to_string(),
        ..Item::default()
    };
    let mut writes = vec![Write::Put { item, cond: Cond::Always }];
    writes.extend(gone.iter().map(|key| Write::Delete { key: key.clone(), cond: Cond::Always }));
    writes.push(Write::Put { item: old, cond: Cond::Always });
    t.table.transact(writes).await.unwrap_or_else(|e| panic!("{e}"));
}

/// GIVEN a user whose index entries were written in the first key form
/// (NFC, lower case; no manager entry) WHEN `reindex` runs THEN its entries
/// move to the current form (look-alikes are one key, the manager is
/// indexed), the old ones are gone, and a second run has nothing to do.
pub(crate) async fn reindex_moves_entries_to_the_current_key_form(t: TestTable) {
    use lockstep_core::model::{self, IndexAttr};
    let roster = roster_on(Arc::clone(&t.table));
    let acme = tenant(&roster, "acme").await;
    let boss = new_user(&roster, &acme, "boss@x.io").await;
    let name = "\u{ff4f}la@x.io"; // fullwidth o: NFC keeps it, NFKC does not
    let body =
        json!({ "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": { "manager": { "value": boss.id } } });
    let u = roster.create(&acme, Kind::User, user_with(name, body), &[]).await.unwrap_or_else(|e| panic!("{e}"));
    // Rewrite it as the first form wrote it.
    let key = model::resource("acme", Kind::User, &u.id);
    let mut item = t.table.get(&key).await.ok().flatten().unwrap_or_else(|| panic!("no item"));
    let mut data: Value = serde_json::from_str(&item.data).unwrap_or_default();
    if let Some(meta) = data["meta"].as_object_mut() {
        meta.remove("keys");
    }
    item.data = data.to_string();
    let current = model::index_entry("acme", IndexAttr::UserName, name, true, &u.id);
    let first = model::index_entry_in("acme", IndexAttr::UserName, name, true, &u.id, 1);
    let manager = model::index_entry("acme", IndexAttr::UserManager, &boss.id, false, &u.id);
    assert_ne!(current, first, "the two forms differ for this name");
    rewrite_as_written_before(&t, item, &[current.clone(), manager.clone()], &first, &u.id).await;
    assert!(find(&roster, &acme, Kind::User, &format!("userName eq \"{name}\"")).await.is_empty(), "stale before");

    let done = roster.reindex(&acme).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((done.rewritten, done.refused.len()), (1, 0), "{done:?}");
    assert_eq!(find(&roster, &acme, Kind::User, &format!("userName eq \"{name}\"")).await, vec![u.id.clone()]);
    assert!(t.table.get(&first).await.ok().flatten().is_none(), "the first-form entry is gone");
    assert!(t.table.get(&current).await.ok().flatten().is_some());
    assert!(t.table.get(&manager).await.ok().flatten().is_some(), "the manager is indexed");
    let again = roster.reindex(&acme).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(again.rewritten, 0, "nothing left to do");
    // The name is now unique with its look-alikes.
    let e = roster.create(&acme, Kind::User, user_attrs("ola@x.io"), &[]).await.map_err(scim).err();
    assert_eq!(e.map(|e| e.status), Some(409));
}
