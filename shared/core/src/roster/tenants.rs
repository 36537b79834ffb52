//! Tenant records: created once, settings changed by the operator, listed
//! from a sparse index so that the scheduled job never scans.

use scim_protocol::ScimError;

use super::kernel::Roster;
use crate::error::{Error, Result};
use crate::model;
use crate::store::{Cond, Index, Item, Query, SortKey, StoreError, Write};
use crate::tenant::{Tenant, TenantId, TenantSettings};

impl Roster {
    pub async fn create_tenant(&self, id: &TenantId, name: &str, settings: TenantSettings) -> Result<Tenant> {
        let tenant = Tenant { id: id.clone(), name: name.to_string(), created: self.now(), settings };
        let item = Item {
            pk: model::tenant_settings(id.as_str()).pk,
            sk: model::tenant_settings(id.as_str()).sk,
            gsi1: Some(model::tenant_listing(id.as_str())),
            version: 1,
            modified: Some(tenant.created.clone()),
            data: serde_json::to_string(&tenant)
                .map_err(|e| Error::corrupt(&model::tenant_settings(id.as_str()), e))?,
            ..Item::default()
        };
        match self.table.write(Write::Put { item, cond: Cond::NotExists }).await {
            Err(StoreError::ConditionFailed { .. }) => Err(Error::Uniqueness(format!("tenant '{id}' already exists"))),
            other => other.map(|()| tenant).map_err(Error::from),
        }
    }

    pub async fn tenant(&self, id: &TenantId) -> Result<Option<Tenant>> {
        let key = model::tenant_settings(id.as_str());
        match self.table.get(&key).await? {
            None => Ok(None),
            Some(item) => serde_json::from_str(&item.data).map(Some).map_err(|e| Error::corrupt(&key, e)),
        }
    }

    pub async fn update_tenant_settings(&self, id: &TenantId, settings: TenantSettings) -> Result<Tenant> {
        let key = model::tenant_settings(id.as_str());
        let item = self.table.get(&key).await?.ok_or_else(|| Error::NotFound(format!("no tenant '{id}'")))?;
        let mut tenant: Tenant = serde_json::from_str(&item.data).map_err(|e| Error::corrupt(&key, e))?;
        tenant.settings = settings;
        let next = Item {
            data: serde_json::to_string(&tenant).map_err(|e| Error::corrupt(&key, e))?,
            version: item.version + 1,
            modified: Some(self.now()),
            ..item.clone()
        };
        match self.table.write(Write::Put { item: next, cond: Cond::VersionIs(item.version) }).await {
            Err(StoreError::ConditionFailed { .. }) => {
                Err(ScimError::conflict("the tenant changed while being updated; retry").into())
            }
            other => other.map(|()| tenant).map_err(Error::from),
        }
    }

    /// Every tenant id, from the sparse index.
    pub async fn tenants(&self) -> Result<Vec<TenantId>> {
        let mut out = Vec::new();
        let query = Query {
            index: Index::Gsi1,
            pk: model::TENANTS_GSI_PK.into(),
            sk: SortKey::All,
            limit: 0,
            start_after: None,
        };
        let mut pages = self.pages(query);
        while let Some(items) = pages.next().await? {
            out.extend(items.iter().filter_map(|i| i.gsi1.as_ref()).filter_map(|k| TenantId::parse(&k.sk).ok()));
        }
        Ok(out)
    }
}
