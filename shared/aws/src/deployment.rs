//! A deployment's configuration, read from the environment once at start,
//! and the AWS clients built from it. Endpoint overrides
//! (`AWS_ENDPOINT_URL`, `AWS_ENDPOINT_URL_DYNAMODB`, ...) are honoured by
//! the SDK's own configuration loading.

use std::sync::Arc;

use lockstep_core::cursor::CursorKey;
use lockstep_core::store::{Key, StoreError, Table};

use crate::{DynamoTable, SecretsManagerTokens};

/// What the functions (and the operator CLI) need to know.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deployment {
    /// `TABLE_NAME`: the single DynamoDB table.
    pub table_name: String,
    /// `TOKEN_SECRET_PREFIX`: tenant token secrets are `<prefix><tenant>`.
    pub token_secret_prefix: String,
    /// `CURSOR_KEY_SECRET`: the secret holding the cursor signing key.
    pub cursor_key_secret: String,
    /// `PUBLIC_URL`: the URL clients use, when a custom domain fronts the API.
    pub public_url: Option<String>,
}

/// The clients and keys of a running deployment.
pub struct Connected {
    pub table: Arc<DynamoTable>,
    pub tokens: Arc<SecretsManagerTokens>,
    pub cursor_key: CursorKey,
    pub secrets: aws_sdk_secretsmanager::Client,
}

fn required(name: &str) -> Result<String, String> {
    std::env::var(name)
        .ok()
        .filter(|v| !v.trim().is_empty())
        .ok_or_else(|| format!("the environment variable {name} must be set"))
}

impl Deployment {
    /// Read the configuration; every missing setting is reported at once.
    pub fn from_env() -> Result<Self, String> {
        let (table, prefix, cursor) =
            (required("TABLE_NAME"), required("TOKEN_SECRET_PREFIX"), required("CURSOR_KEY_SECRET"));
        let missing: Vec<String> =
            [&table, &prefix, &cursor].iter().filter_map(|r| r.as_ref().err().cloned()).collect();
        if !missing.is_empty() {
            return Err(missing.join("; "));
        }
        Ok(Self {
            table_name: table.unwrap_or_default(),
            token_secret_prefix: prefix.unwrap_or_default(),
            cursor_key_secret: cursor.unwrap_or_default(),
            public_url: std::env::var("PUBLIC_URL").ok().filter(|v| !v.trim().is_empty()),
        })
    }

    /// Build the SDK clients once, read the cursor key, and warm the
    /// DynamoDB connection, so the first request pays for none of it.
    pub async fn connect(&self) -> Result<Connected, String> {
        let config = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
        let dynamodb = aws_sdk_dynamodb::Client::new(&config);
        let secrets = aws_sdk_secretsmanager::Client::new(&config);
        let table = Arc::new(DynamoTable::new(dynamodb, &self.table_name));
        let warm_table = {
            let table = Arc::clone(&table);
            async move { table.get(&Key::new("WARMUP", "WARMUP")).await }
        };
        let (key, warmed) =
            tokio::join!(SecretsManagerTokens::read_string(&secrets, &self.cursor_key_secret), warm_table);
        warmed.map_err(|e: StoreError| format!("table {}: {e}", self.table_name))?;
        let key = key
            .map_err(|e| format!("secret {}: {e}", self.cursor_key_secret))?
            .ok_or_else(|| format!("the secret {} does not exist", self.cursor_key_secret))?;
        let cursor_key =
            CursorKey::new(key.into_bytes()).map_err(|e| format!("secret {}: {e}", self.cursor_key_secret))?;
        let tokens = Arc::new(SecretsManagerTokens::new(secrets.clone(), &self.token_secret_prefix));
        Ok(Connected { table, tokens, cursor_key, secrets })
    }
}
