//! AWS adapters: the storage port on DynamoDB and (with the HTTP layer)
//! tenant tokens in Secrets Manager.

#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

pub mod dynamo;

pub use dynamo::DynamoTable;
