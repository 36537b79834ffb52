//! AWS adapters: the storage port on DynamoDB, tenant tokens in Secrets
//! Manager.

#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

pub mod deployment;
pub mod dynamo;
pub mod secrets;

pub use deployment::{Clients, Connected, Deployment};
pub use dynamo::DynamoTable;
pub use secrets::{SecretsManagerSecrets, SecretsManagerTokens};
