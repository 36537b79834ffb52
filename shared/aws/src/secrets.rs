//! Tenant tokens in AWS Secrets Manager: one secret per tenant, named
//! `<prefix><tenant>`, holding the tenant's token set (hashes and
//! metadata, never a token itself). IAM limits the functions to the prefix.

use async_trait::async_trait;
use aws_sdk_secretsmanager::Client;
use aws_sdk_secretsmanager::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use lockstep_core::store::StoreError;
use lockstep_core::tenant::TenantId;
use lockstep_core::tokens::{Revision, TokenSet, TokenStore};

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

    /// Read any secret's current string value and its version id (the
    /// cursor signing key, for one).
    pub async fn read_string(client: &Client, secret_id: &str) -> Result<Option<(String, String)>, StoreError> {
        // Named explicitly (it is also the default) so that a version moved
        // by `save_if` is what every reader sees.
        match client.get_secret_value().secret_id(secret_id).version_stage(CURRENT).send().await {
            Ok(out) => {
                Ok(out.secret_string().map(|s| (s.to_string(), out.version_id().unwrap_or_default().to_string())))
            }
            Err(e) if e.code() == Some("ResourceNotFoundException") => Ok(None),
            Err(e) => Err(classify(&e)),
        }
    }
}

const CURRENT: &str = "AWSCURRENT";
/// The label a new token set is written under before it becomes current.
const PENDING: &str = "LOCKSTEP_PENDING";

/// Throttling is worth a retry later; anything else is unavailability.
fn classify<E>(e: &SdkError<E>) -> StoreError
where
    SdkError<E>: ProvideErrorMetadata + std::error::Error,
{
    match e.code() {
        Some("ThrottlingException") => StoreError::Throttled("secrets manager".into()),
        _ => unavailable(DisplayErrorContext(e)),
    }
}

/// Saves are compare-and-swap on the `AWSCURRENT` label: the new set is
/// written as a pending version, then `AWSCURRENT` is moved to it from the
/// version that was read, which Secrets Manager refuses if the label has
/// moved since (another writer saved).
#[async_trait]
impl TokenStore for SecretsManagerTokens {
    async fn read(&self, tenant: &TenantId) -> Result<(TokenSet, Revision), StoreError> {
        match Self::read_string(&self.client, &self.secret_id(tenant)).await? {
            None => Ok((TokenSet::default(), Revision(None))),
            Some((text, version)) => {
                let set =
                    serde_json::from_str(&text).map_err(|e| unavailable(format!("token secret of {tenant}: {e}")))?;
                Ok((set, Revision(Some(version))))
            }
        }
    }

    async fn save_if(&self, tenant: &TenantId, tokens: &TokenSet, read: &Revision) -> Result<(), StoreError> {
        let id = self.secret_id(tenant);
        let text = serde_json::to_string(tokens).map_err(unavailable)?;
        let Some(read_version) = &read.0 else {
            return match self
                .client
                .create_secret()
                .name(&id)
                .description(format!("SCIM bearer token hashes of tenant {tenant}"))
                .secret_string(text)
                .send()
                .await
            {
                Ok(_) => Ok(()),
                Err(e) if e.code() == Some("ResourceExistsException") => {
                    Err(StoreError::ConditionFailed { index: None })
                }
                Err(e) => Err(classify(&e)),
            };
        };
        let written = self
            .client
            .put_secret_value()
            .secret_id(&id)
            .secret_string(text)
            .client_request_token(uuid::Uuid::new_v4().to_string())
            .version_stages(PENDING)
            .send()
            .await
            .map_err(|e| classify(&e))?;
        let new_version = written.version_id().ok_or_else(|| unavailable("PutSecretValue returned no version id"))?;
        match self
            .client
            .update_secret_version_stage()
            .secret_id(&id)
            .version_stage(CURRENT)
            .remove_from_version_id(read_version)
            .move_to_version_id(new_version)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            // AWSCURRENT is no longer on the version read.
            Err(e) if e.code() == Some("InvalidParameterException") => Err(StoreError::ConditionFailed { index: None }),
            Err(e) => Err(classify(&e)),
        }
    }
}

/// Integration secrets in Secrets Manager: `<prefix><tenant>/<name>`. IAM
/// limits the job function to reading the prefix, the operator CLI to
/// writing it.
#[derive(Clone, Debug)]
pub struct SecretsManagerSecrets {
    client: Client,
    prefix: String,
}

impl SecretsManagerSecrets {
    pub fn new(client: Client, prefix: impl Into<String>) -> Self {
        Self { client, prefix: prefix.into() }
    }

    fn secret_id(&self, tenant: &TenantId, name: &str) -> String {
        format!("{}{tenant}/{name}", self.prefix)
    }
}

#[async_trait]
impl lockstep_core::secrets::SecretStore for SecretsManagerSecrets {
    async fn get(&self, tenant: &TenantId, name: &str) -> Result<Option<String>, StoreError> {
        Ok(SecretsManagerTokens::read_string(&self.client, &self.secret_id(tenant, name)).await?.map(|(s, _)| s))
    }

    async fn put(&self, tenant: &TenantId, name: &str, value: &str) -> Result<(), StoreError> {
        let id = self.secret_id(tenant, name);
        match self.client.put_secret_value().secret_id(&id).secret_string(value).send().await {
            Ok(_) => Ok(()),
            Err(e) if e.code() == Some("ResourceNotFoundException") => self
                .client
                .create_secret()
                .name(&id)
                .secret_string(value)
                .send()
                .await
                .map(|_| ())
                .map_err(|e| classify(&e)),
            Err(e) => Err(classify(&e)),
        }
    }
}
