//! Tenant tokens in AWS Secrets Manager: one secret per tenant, named
//! `<prefix><tenant>`, holding the tenant's token set (hashes and
//! metadata, never a token itself). IAM limits the functions to the prefix.

use async_trait::async_trait;
use aws_sdk_secretsmanager::Client;
use aws_sdk_secretsmanager::error::{DisplayErrorContext, ProvideErrorMetadata};
use lockstep_core::store::StoreError;
use lockstep_core::tenant::TenantId;
use lockstep_core::tokens::{TokenSet, TokenStore};

#[derive(Clone, Debug)]
pub struct SecretsManagerTokens {
    client: Client,
    prefix: String,
}

fn unavailable(e: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(e.to_string())
}

impl SecretsManagerTokens {
    pub fn new(client: Client, prefix: impl Into<String>) -> Self {
        Self { client, prefix: prefix.into() }
    }

    pub fn secret_id(&self, tenant: &TenantId) -> String {
        format!("{}{tenant}", self.prefix)
    }

    /// Read any secret's string value (the cursor signing key, for one).
    pub async fn read_string(client: &Client, secret_id: &str) -> Result<Option<String>, StoreError> {
        match client.get_secret_value().secret_id(secret_id).send().await {
            Ok(out) => Ok(out.secret_string().map(str::to_string)),
            Err(e) if e.code() == Some("ResourceNotFoundException") => Ok(None),
            Err(e) if e.code() == Some("ThrottlingException") => Err(StoreError::Throttled("secrets manager".into())),
            Err(e) => Err(unavailable(DisplayErrorContext(&e))),
        }
    }
}

#[async_trait]
impl TokenStore for SecretsManagerTokens {
    async fn load(&self, tenant: &TenantId) -> Result<TokenSet, StoreError> {
        match Self::read_string(&self.client, &self.secret_id(tenant)).await? {
            None => Ok(TokenSet::default()),
            Some(text) => {
                serde_json::from_str(&text).map_err(|e| unavailable(format!("token secret of {tenant}: {e}")))
            }
        }
    }

    async fn save(&self, tenant: &TenantId, tokens: &TokenSet) -> Result<(), StoreError> {
        let id = self.secret_id(tenant);
        let text = serde_json::to_string(tokens).map_err(unavailable)?;
        match self.client.put_secret_value().secret_id(&id).secret_string(&text).send().await {
            Ok(_) => Ok(()),
            Err(e) if e.code() == Some("ResourceNotFoundException") => self
                .client
                .create_secret()
                .name(&id)
                .description(format!("SCIM bearer token hashes of tenant {tenant}"))
                .secret_string(text)
                .send()
                .await
                .map(|_| ())
                .map_err(|e| unavailable(DisplayErrorContext(&e))),
            Err(e) => Err(unavailable(DisplayErrorContext(&e))),
        }
    }
}
