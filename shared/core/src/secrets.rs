//! Where a tenant's integration secrets live (a Microsoft Graph client
//! secret): Secrets Manager in AWS, private files for the local runner.
//! Never in the table, never logged.

use async_trait::async_trait;

use crate::store::StoreError;
use crate::tenant::TenantId;

#[async_trait]
pub trait SecretStore: Send + Sync {
    /// The tenant's secret called `name`, if set.
    async fn get(&self, tenant: &TenantId, name: &str) -> Result<Option<String>, StoreError>;

    /// Set (or replace) the tenant's secret called `name`.
    async fn put(&self, tenant: &TenantId, name: &str, value: &str) -> Result<(), StoreError>;
}
