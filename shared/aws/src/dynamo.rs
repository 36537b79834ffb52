//! The DynamoDB adapter of the storage port. Attribute names on the table:
//! `pk`, `sk` (key), `gsi1pk`, `gsi1sk` (GSI1 key), `ver`, `n`, `mod`,
//! `ttl` (the table's TTL attribute) and `data`.

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, Delete, DeleteRequest, GlobalSecondaryIndex, KeySchemaElement,
    KeyType, KeysAndAttributes, Projection, ProjectionType, Put, PutRequest, ScalarAttributeType,
    TimeToLiveSpecification, TransactWriteItem, Update, WriteRequest,
};
use lockstep_core::store::{
    Cond, Index, Item, Key, Page, PageKey, Query, SortKey, StoreError, Table, Write, check_batch, check_batch_get,
    check_transaction,
};

pub const GSI1: &str = "gsi1";
type Attrs = HashMap<String, AttributeValue>;

/// The table on DynamoDB.
#[derive(Clone, Debug)]
pub struct DynamoTable {
    client: Client,
    name: String,
}

fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

fn n(v: impl ToString) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

fn key_attrs(key: &Key) -> Attrs {
    HashMap::from([("pk".to_string(), s(&key.pk)), ("sk".to_string(), s(&key.sk))])
}

fn to_attrs(item: &Item) -> Attrs {
    let mut a = key_attrs(&item.key());
    if let Some(g) = &item.gsi1 {
        a.insert("gsi1pk".into(), s(&g.pk));
        a.insert("gsi1sk".into(), s(&g.sk));
    }
    a.insert("ver".into(), n(item.version));
    if item.count != 0 {
        a.insert("n".into(), n(item.count));
    }
    if let Some(m) = &item.modified {
        a.insert("mod".into(), s(m));
    }
    if let Some(t) = item.expires_at {
        a.insert("ttl".into(), n(t));
    }
    a.insert("data".into(), s(&item.data));
    a
}

fn text(a: &Attrs, name: &str) -> Option<String> {
    a.get(name).and_then(|v| v.as_s().ok()).cloned()
}

fn number<T: std::str::FromStr>(a: &Attrs, name: &str) -> Option<T> {
    a.get(name).and_then(|v| v.as_n().ok()).and_then(|x| x.parse().ok())
}

fn from_attrs(a: &Attrs) -> Result<Item, StoreError> {
    let (Some(pk), Some(sk)) = (text(a, "pk"), text(a, "sk")) else {
        return Err(StoreError::Unavailable("an item without pk/sk came back".into()));
    };
    let gsi1 = match (text(a, "gsi1pk"), text(a, "gsi1sk")) {
        (Some(p), Some(s)) => Some(Key::new(p, s)),
        _ => None,
    };
    Ok(Item {
        pk,
        sk,
        gsi1,
        version: number(a, "ver").unwrap_or(0),
        count: number(a, "n").unwrap_or(0),
        modified: text(a, "mod"),
        expires_at: number(a, "ttl"),
        data: text(a, "data").unwrap_or_default(),
    })
}

/// A condition as an expression and its values.
fn condition(cond: Cond) -> Option<(&'static str, Option<Attrs>)> {
    match cond {
        Cond::Always => None,
        Cond::NotExists => Some(("attribute_not_exists(pk)", None)),
        Cond::VersionIs(v) => Some(("ver = :ver", Some(HashMap::from([(":ver".to_string(), n(v))])))),
    }
}

fn classify<E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static, R: std::fmt::Debug>(
    e: SdkError<E, R>,
) -> StoreError {
    let code = e.code().unwrap_or_default().to_string();
    match code.as_str() {
        "ConditionalCheckFailedException" => StoreError::ConditionFailed { index: Some(0) },
        "ProvisionedThroughputExceededException" | "ThrottlingException" | "RequestLimitExceeded" => {
            StoreError::Throttled(code)
        }
        "TransactionConflictException" => StoreError::Conflict,
        "ItemCollectionSizeLimitExceededException" => StoreError::Limit(code),
        _ => StoreError::Unavailable(format!("{}", DisplayErrorContext(&e))),
    }
}

fn build_err(e: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(format!("building a request: {e}"))
}

impl DynamoTable {
    pub fn new(client: Client, name: impl Into<String>) -> Self {
        Self { client, name: name.into() }
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Create the table as template.yaml declares it (for tests, the local
    /// emulator and first-time setup without CloudFormation).
    pub async fn create_table(client: &Client, name: &str) -> Result<(), StoreError> {
        let attr = |n: &str| {
            AttributeDefinition::builder()
                .attribute_name(n)
                .attribute_type(ScalarAttributeType::S)
                .build()
                .map_err(build_err)
        };
        let key =
            |n: &str, t: KeyType| KeySchemaElement::builder().attribute_name(n).key_type(t).build().map_err(build_err);
        let gsi = GlobalSecondaryIndex::builder()
            .index_name(GSI1)
            .key_schema(key("gsi1pk", KeyType::Hash)?)
            .key_schema(key("gsi1sk", KeyType::Range)?)
            .projection(Projection::builder().projection_type(ProjectionType::All).build())
            .build()
            .map_err(build_err)?;
        client
            .create_table()
            .table_name(name)
            .billing_mode(BillingMode::PayPerRequest)
            .attribute_definitions(attr("pk")?)
            .attribute_definitions(attr("sk")?)
            .attribute_definitions(attr("gsi1pk")?)
            .attribute_definitions(attr("gsi1sk")?)
            .key_schema(key("pk", KeyType::Hash)?)
            .key_schema(key("sk", KeyType::Range)?)
            .global_secondary_indexes(gsi)
            .send()
            .await
            .map_err(classify)?;
        client
            .update_time_to_live()
            .table_name(name)
            .time_to_live_specification(
                TimeToLiveSpecification::builder().enabled(true).attribute_name("ttl").build().map_err(build_err)?,
            )
            .send()
            .await
            .map_err(classify)?;
        Ok(())
    }

    fn transact_item(&self, w: &Write) -> Result<TransactWriteItem, StoreError> {
        let item = match w {
            Write::Put { item, cond } => {
                let mut put = Put::builder().table_name(&self.name).set_item(Some(to_attrs(item)));
                if let Some((expr, values)) = condition(*cond) {
                    put = put.condition_expression(expr).set_expression_attribute_values(values);
                }
                TransactWriteItem::builder().put(put.build().map_err(build_err)?)
            }
            Write::Delete { key, cond } => {
                let mut del = Delete::builder().table_name(&self.name).set_key(Some(key_attrs(key)));
                if let Some((expr, values)) = condition(*cond) {
                    del = del.condition_expression(expr).set_expression_attribute_values(values);
                }
                TransactWriteItem::builder().delete(del.build().map_err(build_err)?)
            }
            Write::Add { key, delta } => {
                let up = Update::builder()
                    .table_name(&self.name)
                    .set_key(Some(key_attrs(key)))
                    .update_expression("ADD n :d")
                    .expression_attribute_values(":d", n(delta));
                TransactWriteItem::builder().update(up.build().map_err(build_err)?)
            }
            Write::Touch { key, modified } => {
                let up = Update::builder()
                    .table_name(&self.name)
                    .set_key(Some(key_attrs(key)))
                    .update_expression("SET #m = :m ADD ver :one")
                    .condition_expression("attribute_exists(pk)")
                    .expression_attribute_names("#m", "mod")
                    .expression_attribute_values(":m", s(modified))
                    .expression_attribute_values(":one", n(1));
                TransactWriteItem::builder().update(up.build().map_err(build_err)?)
            }
        };
        Ok(item.build())
    }
}

/// The wait before re-sending a batch's unprocessed items.
async fn backoff(attempt: u32) {
    tokio::time::sleep(lockstep_core::retry::backoff(attempt)).await;
}

#[async_trait]
impl Table for DynamoTable {
    async fn get(&self, key: &Key) -> Result<Option<Item>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.name)
            .set_key(Some(key_attrs(key)))
            .consistent_read(true)
            .send()
            .await
            .map_err(classify)?;
        out.item().map(from_attrs).transpose()
    }

    async fn batch_get(&self, keys: &[Key]) -> Result<Vec<Item>, StoreError> {
        check_batch_get(keys)?;
        let mut unique: Vec<&Key> = Vec::with_capacity(keys.len());
        for k in keys {
            if !unique.contains(&k) {
                unique.push(k);
            }
        }
        if unique.is_empty() {
            return Ok(Vec::new());
        }
        let mut request = KeysAndAttributes::builder().consistent_read(true);
        for k in unique {
            request = request.keys(key_attrs(k));
        }
        let mut pending = Some(HashMap::from([(self.name.clone(), request.build().map_err(build_err)?)]));
        let mut out = Vec::new();
        let mut attempt = 0;
        while let Some(req) = pending.take().filter(|r| !r.is_empty()) {
            if attempt > 0 {
                backoff(attempt).await;
            }
            let resp = self.client.batch_get_item().set_request_items(Some(req)).send().await.map_err(classify)?;
            if let Some(items) = resp.responses().and_then(|r| r.get(&self.name)) {
                for a in items {
                    out.push(from_attrs(a)?);
                }
            }
            pending = resp.unprocessed_keys().cloned();
            attempt += 1;
        }
        Ok(out)
    }

    async fn write(&self, write: Write) -> Result<(), StoreError> {
        match write {
            Write::Put { item, cond } => {
                let mut req = self.client.put_item().table_name(&self.name).set_item(Some(to_attrs(&item)));
                if let Some((expr, values)) = condition(cond) {
                    req = req.condition_expression(expr).set_expression_attribute_values(values);
                }
                req.send().await.map(|_| ()).map_err(classify)
            }
            Write::Delete { key, cond } => {
                let mut req = self.client.delete_item().table_name(&self.name).set_key(Some(key_attrs(&key)));
                if let Some((expr, values)) = condition(cond) {
                    req = req.condition_expression(expr).set_expression_attribute_values(values);
                }
                req.send().await.map(|_| ()).map_err(classify)
            }
            Write::Add { key, delta } => self
                .client
                .update_item()
                .table_name(&self.name)
                .set_key(Some(key_attrs(&key)))
                .update_expression("ADD n :d")
                .expression_attribute_values(":d", n(delta))
                .send()
                .await
                .map(|_| ())
                .map_err(classify),
            Write::Touch { key, modified } => self
                .client
                .update_item()
                .table_name(&self.name)
                .set_key(Some(key_attrs(&key)))
                .update_expression("SET #m = :m ADD ver :one")
                .condition_expression("attribute_exists(pk)")
                .expression_attribute_names("#m", "mod")
                .expression_attribute_values(":m", s(modified))
                .expression_attribute_values(":one", n(1))
                .send()
                .await
                .map(|_| ())
                .map_err(classify),
        }
    }

    async fn transact(&self, writes: Vec<Write>) -> Result<(), StoreError> {
        check_transaction(&writes)?;
        let items = writes.iter().map(|w| self.transact_item(w)).collect::<Result<Vec<_>, _>>()?;
        match self.client.transact_write_items().set_transact_items(Some(items)).send().await {
            Ok(_) => Ok(()),
            Err(e) => {
                if let Some(TransactWriteItemsError::TransactionCanceledException(cancelled)) = e.as_service_error() {
                    let reasons = cancelled.cancellation_reasons();
                    if let Some(i) = reasons.iter().position(|r| r.code() == Some("ConditionalCheckFailed")) {
                        return Err(StoreError::ConditionFailed { index: Some(i) });
                    }
                    if reasons.iter().any(|r| r.code() == Some("TransactionConflict")) {
                        return Err(StoreError::Conflict);
                    }
                    if reasons
                        .iter()
                        .any(|r| matches!(r.code(), Some("ThrottlingError" | "ProvisionedThroughputExceeded")))
                    {
                        return Err(StoreError::Throttled("transaction throttled".into()));
                    }
                }
                Err(classify(e))
            }
        }
    }

    async fn batch_write(&self, writes: Vec<Write>) -> Result<(), StoreError> {
        check_batch(&writes)?;
        let mut requests = Vec::with_capacity(writes.len());
        for w in &writes {
            let request = match w {
                Write::Put { item, cond: Cond::Always } => WriteRequest::builder()
                    .put_request(PutRequest::builder().set_item(Some(to_attrs(item))).build().map_err(build_err)?),
                Write::Delete { key, cond: Cond::Always } => WriteRequest::builder()
                    .delete_request(DeleteRequest::builder().set_key(Some(key_attrs(key))).build().map_err(build_err)?),
                _ => return Err(StoreError::Limit("a batch holds only unconditional puts and deletes".into())),
            };
            requests.push(request.build());
        }
        if requests.is_empty() {
            return Ok(());
        }
        let mut pending = Some(HashMap::from([(self.name.clone(), requests)]));
        let mut attempt = 0;
        while let Some(req) = pending.take().filter(|r| r.values().any(|v| !v.is_empty())) {
            if attempt > 0 {
                backoff(attempt).await;
            }
            let resp = self.client.batch_write_item().set_request_items(Some(req)).send().await.map_err(classify)?;
            pending = resp.unprocessed_items().cloned();
            attempt += 1;
        }
        Ok(())
    }

    async fn query(&self, query: &Query) -> Result<Page, StoreError> {
        let (pk_name, sk_name) = match query.index {
            Index::Table => ("pk", "sk"),
            Index::Gsi1 => ("gsi1pk", "gsi1sk"),
        };
        let mut expr = "#p = :p".to_string();
        let mut req = self
            .client
            .query()
            .table_name(&self.name)
            .expression_attribute_names("#p", pk_name)
            .expression_attribute_values(":p", s(&query.pk))
            .limit(i32::try_from(query.limit.max(1)).unwrap_or(i32::MAX));
        match &query.sk {
            SortKey::All => {}
            SortKey::Between(a, b) => {
                expr.push_str(" AND #s BETWEEN :a AND :b");
                req = req
                    .expression_attribute_names("#s", sk_name)
                    .expression_attribute_values(":a", s(a))
                    .expression_attribute_values(":b", s(b));
            }
        }
        req = req.key_condition_expression(expr);
        req = match query.index {
            Index::Table => req.consistent_read(true),
            Index::Gsi1 => req.index_name(GSI1),
        };
        if let Some(after) = &query.start_after {
            let mut start = key_attrs(&after.key);
            if let (Index::Gsi1, Some(g)) = (query.index, &after.gsi1) {
                start.insert("gsi1pk".into(), s(&g.pk));
                start.insert("gsi1sk".into(), s(&g.sk));
            }
            req = req.set_exclusive_start_key(Some(start));
        }
        let out = req.send().await.map_err(classify)?;
        let items = out.items().iter().map(from_attrs).collect::<Result<Vec<_>, _>>()?;
        let next = match (out.last_evaluated_key(), items.last()) {
            (Some(_), Some(last)) => Some(PageKey {
                key: last.key(),
                gsi1: if query.index == Index::Gsi1 { last.gsi1.clone() } else { None },
            }),
            _ => None,
        };
        Ok(Page { items, next })
    }
}
