//! Tenant token sets: concurrent changes are never lost, in files and in
//! Secrets Manager.

use super::*;

// -- token sets ---------------------------------------------------------------

/// GIVEN a tenant's token set WHEN eight operators issue a token at once
/// and then one revokes THEN every change is kept; a save from a stale read
/// is refused rather than overwriting.
async fn token_changes_are_never_lost(store: Arc<dyn TokenStore>) {
    let acme = TenantId::parse("acme").unwrap_or_else(|e| panic!("{e}"));
    let now = time::OffsetDateTime::now_utc();
    let mut tasks = Vec::new();
    for i in 0..8 {
        let (store, acme) = (Arc::clone(&store), acme.clone());
        tasks.push(tokio::spawn(async move {
            let (_, record) =
                tokens::issue(Some(format!("operator {i}")), None, Vec::new(), now).unwrap_or_else(|e| panic!("{e}"));
            tokens::add(store.as_ref(), &acme, &record).await.map(|()| record.id)
        }));
    }
    let mut issued = BTreeSet::new();
    for task in tasks {
        let id = task.await.unwrap_or_else(|e| panic!("{e}"));
        issued.insert(id.unwrap_or_else(|e| panic!("a concurrent issue failed: {e}")));
    }
    let kept = |set: &TokenSet| set.tokens.iter().map(|t| t.id.clone()).collect::<BTreeSet<_>>();
    let set = store.load(&acme).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(kept(&set), issued, "all eight tokens kept");

    let (stale, stale_revision) = store.read(&acme).await.unwrap_or_else(|e| panic!("{e}"));
    let gone = issued.first().cloned().unwrap_or_default();
    let revoked = tokens::revoke(store.as_ref(), &acme, &gone).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(revoked.map(|set| set.tokens.len()), Some(7));
    let overwrite = store.save_if(&acme, &stale, &stale_revision).await;
    assert_eq!(overwrite, Err(StoreError::ConditionFailed { index: None }), "a stale save would bring the token back");
    let recreate = store.save_if(&acme, &stale, &Revision(None)).await;
    assert_eq!(recreate, Err(StoreError::ConditionFailed { index: None }), "the set exists already");
    let set = store.load(&acme).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(kept(&set), issued.iter().filter(|id| **id != gone).cloned().collect());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn token_changes_are_never_lost_in_files() {
    let roster = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    token_changes_are_never_lost(Arc::new(FileTokens::new(roster.path().join("tokens")))).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn token_changes_are_never_lost_in_secrets_manager() {
    let prefix = format!("lockstep/{}/tenants/", uuid::Uuid::new_v4().simple());
    token_changes_are_never_lost(Arc::new(SecretsManagerTokens::new(lockstep_tests::secrets_client(), prefix))).await;
}
