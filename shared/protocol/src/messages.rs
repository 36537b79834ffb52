//! Protocol messages: ListResponse (RFC 7644 §3.4.2), SearchRequest and
//! query parameters (§3.4.2, §3.4.3), with index paging (§3.4.2.4) and
//! cursor paging (RFC 9865).

use serde_json::{Value, json};

use crate::error::{Result, ScimError};
use crate::filter::Filter;
use crate::resource::Projection;
use crate::urn;

/// A page of resources.
#[derive(Debug, Clone, PartialEq)]
pub struct ListResponse {
    pub total_results: u64,
    /// Set for index paging; absent for cursor paging.
    pub start_index: Option<u64>,
    pub resources: Vec<Value>,
    pub next_cursor: Option<String>,
}

impl ListResponse {
    pub fn to_json(&self) -> Value {
        let mut body = json!({
            "schemas": [urn::LIST_RESPONSE],
            "totalResults": self.total_results,
            "itemsPerPage": self.resources.len(),
        });
        if let Some(obj) = body.as_object_mut() {
            if let Some(start) = self.start_index {
                obj.insert("startIndex".into(), json!(start));
            }
            if let Some(next) = &self.next_cursor {
                obj.insert("nextCursor".into(), json!(next));
            }
            obj.insert("Resources".into(), Value::Array(self.resources.clone()));
        }
        body
    }
}

/// How the client pages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Paging {
    /// `startIndex` (1-based) and `count`.
    Index { start_index: u64, count: Option<u64> },
    /// RFC 9865: `cursor` (empty for the first page) and `count`.
    Cursor { cursor: Option<String>, count: Option<u64> },
}

impl Paging {
    pub fn count(&self) -> Option<u64> {
        match self {
            Paging::Index { count, .. } | Paging::Cursor { count, .. } => *count,
        }
    }

    /// The page size to serve: the client's `count` capped at `max`, or `default`.
    pub fn page_size(&self, default: u64, max: u64) -> u64 {
        self.count().unwrap_or(default).min(max)
    }
}

/// A query: from GET parameters or a POST `.search` body.
#[derive(Debug, Clone, PartialEq)]
pub struct SearchRequest {
    pub filter: Option<Filter>,
    pub projection: Projection,
    pub paging: Paging,
}

impl Default for SearchRequest {
    fn default() -> Self {
        Self { filter: None, projection: Projection::Default, paging: Paging::Index { start_index: 1, count: None } }
    }
}

/// The raw parameters, however they arrived.
#[derive(Default)]
struct Params {
    filter: Option<String>,
    attributes: Option<String>,
    excluded: Option<String>,
    start_index: Option<i64>,
    count: Option<i64>,
    cursor: Option<String>,
}

impl SearchRequest {
    /// From decoded query parameters. Names are matched case-insensitively;
    /// `sortBy` / `sortOrder` are accepted and ignored (the
    /// ServiceProviderConfig says sorting is not supported).
    pub fn from_query<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Result<Self> {
        let mut p = Params::default();
        for (key, value) in pairs {
            match key.to_ascii_lowercase().as_str() {
                "filter" => p.filter = Some(value.to_string()),
                "attributes" => p.attributes = Some(value.to_string()),
                "excludedattributes" => p.excluded = Some(value.to_string()),
                "startindex" => p.start_index = Some(parse_int("startIndex", value)?),
                "count" => p.count = Some(parse_int("count", value)?),
                "cursor" => p.cursor = Some(value.to_string()),
                _ => {}
            }
        }
        p.into_request()
    }

    /// From a `POST .search` body (RFC 7644 §3.4.3).
    pub fn from_body(body: &Value) -> Result<Self> {
        let obj = body.as_object().ok_or_else(|| ScimError::invalid_syntax("a SearchRequest must be a JSON object"))?;
        let mut p = Params::default();
        for (key, value) in obj {
            // RFC 7644 §3.4.3: `filter` and `cursor` are strings, `attributes`
            // and `excludedAttributes` lists of strings, `startIndex` and
            // `count` integers; another JSON type is the client's error.
            let text = || -> Result<String> {
                match value {
                    Value::String(s) => Ok(s.clone()),
                    _ => Err(ScimError::invalid_value(format!("'{key}' must be a string"))),
                }
            };
            let list = || -> Result<String> {
                match value {
                    Value::Array(items) => items
                        .iter()
                        .map(|i| i.as_str().map(str::to_string))
                        .collect::<Option<Vec<_>>>()
                        .map(|v| v.join(","))
                        .ok_or_else(|| ScimError::invalid_value(format!("'{key}' must be a list of strings"))),
                    _ => Err(ScimError::invalid_value(format!("'{key}' must be a list of strings"))),
                }
            };
            let int = || -> Result<i64> {
                match value {
                    Value::Number(n) => n.as_i64().ok_or_else(|| not_integer(key)),
                    _ => Err(not_integer(key)),
                }
            };
            match key.to_ascii_lowercase().as_str() {
                "schemas" => {
                    let ok =
                        value.as_array().is_some_and(|l| l.iter().any(|s| s.as_str() == Some(urn::SEARCH_REQUEST)));
                    if !ok {
                        return Err(ScimError::invalid_value(format!(
                            "'schemas' of a search must be [\"{}\"]",
                            urn::SEARCH_REQUEST
                        )));
                    }
                }
                "filter" => p.filter = Some(text()?),
                "attributes" => p.attributes = Some(list()?),
                "excludedattributes" => p.excluded = Some(list()?),
                "startindex" => p.start_index = Some(int()?),
                "count" => p.count = Some(int()?),
                "cursor" => p.cursor = Some(text()?),
                _ => {}
            }
        }
        p.into_request()
    }
}

impl Params {
    fn into_request(self) -> Result<SearchRequest> {
        let filter = match self.filter.as_deref().map(str::trim) {
            Some(f) if !f.is_empty() => Some(Filter::parse(f)?),
            _ => None,
        };
        let projection = Projection::from_params(self.attributes.as_deref(), self.excluded.as_deref())?;
        // RFC 7644 §3.4.2.4: count below 0 is 0; startIndex below 1 is 1.
        let count = self.count.map(|c| c.max(0).unsigned_abs());
        let paging = match (self.cursor, self.start_index) {
            (Some(_), Some(_)) => {
                return Err(ScimError::invalid_value("use either 'cursor' or 'startIndex' paging, not both"));
            }
            (Some(c), None) => Paging::Cursor { cursor: Some(c).filter(|c| !c.is_empty()), count },
            (None, start) => Paging::Index { start_index: start.unwrap_or(1).max(1).unsigned_abs(), count },
        };
        Ok(SearchRequest { filter, projection, paging })
    }
}

fn not_integer(name: &str) -> ScimError {
    ScimError::invalid_value(format!("'{name}' must be an integer"))
}

fn parse_int(name: &str, value: &str) -> Result<i64> {
    value.trim().parse::<i64>().map_err(|_| not_integer(name))
}
