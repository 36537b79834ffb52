//! The discovery documents: /ServiceProviderConfig (RFC 7643 §5),
//! /ResourceTypes (§6) and /Schemas (§7), rendered from the registry so
//! that they describe exactly what the service does.

use serde_json::{Value, json};

use crate::messages::ListResponse;
use crate::schema::{self, AttributeDef, ResourceType, Schema};
use crate::urn;

/// What the deployment supports, as advertised in /ServiceProviderConfig.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceProviderOptions {
    pub documentation_uri: Option<String>,
    /// The most resources one list or search returns.
    pub max_results: u64,
    pub default_page_size: u64,
    /// The largest request body accepted, in bytes.
    pub max_payload_bytes: u64,
    /// How long a cursor stays valid (RFC 9865), in seconds.
    pub cursor_timeout_secs: u64,
}

impl Default for ServiceProviderOptions {
    fn default() -> Self {
        Self {
            documentation_uri: None,
            max_results: 1000,
            default_page_size: 100,
            max_payload_bytes: 1024 * 1024,
            cursor_timeout_secs: 3600,
        }
    }
}

/// /ServiceProviderConfig. `base_url` is the tenant's SCIM base URL.
pub fn service_provider_config(opts: &ServiceProviderOptions, base_url: &str) -> Value {
    let mut doc = json!({
        "schemas": [urn::SERVICE_PROVIDER_CONFIG],
        // `maxOperations` is this service's addition (RFC 7643 §5 defines
        // only `supported` for patch): the most operations one PATCH holds.
        "patch": { "supported": true, "maxOperations": crate::patch::MAX_PATCH_OPERATIONS },
        // Bulk answers 501 until implemented: say so.
        "bulk": { "supported": false, "maxOperations": 0, "maxPayloadSize": 0 },
        "filter": { "supported": true, "maxResults": opts.max_results },
        "changePassword": { "supported": false },
        // Sorting would need every match read before the first is returned.
        "sort": { "supported": false },
        "etag": { "supported": true },
        "pagination": {
            "cursor": true,
            "index": true,
            "defaultPaginationMethod": "index",
            "defaultPageSize": opts.default_page_size,
            "maxPageSize": opts.max_results,
            "cursorTimeout": opts.cursor_timeout_secs,
        },
        "authenticationSchemes": [{
            "type": "oauthbearertoken",
            "name": "OAuth Bearer Token",
            "description": "Authentication with a bearer token issued per tenant by the operator",
            "primary": true,
        }],
        "meta": {
            "resourceType": "ServiceProviderConfig",
            "location": format!("{base_url}/ServiceProviderConfig"),
        },
    });
    if let (Some(uri), Some(obj)) = (&opts.documentation_uri, doc.as_object_mut()) {
        obj.insert("documentationUri".into(), json!(uri));
    }
    doc
}

fn attribute_json(a: &AttributeDef) -> Value {
    let mut v = json!({
        "name": a.name,
        "type": a.ty.as_str(),
        "multiValued": a.multi_valued,
        "description": a.description,
        "required": a.required,
        "caseExact": a.case_exact,
        "mutability": a.mutability.as_str(),
        "returned": a.returned.as_str(),
        "uniqueness": a.uniqueness.as_str(),
    });
    if let Some(obj) = v.as_object_mut() {
        if !a.canonical_values.is_empty() {
            obj.insert("canonicalValues".into(), json!(a.canonical_values));
        }
        if !a.reference_types.is_empty() {
            obj.insert("referenceTypes".into(), json!(a.reference_types));
        }
        if a.is_complex() {
            obj.insert("subAttributes".into(), a.sub_attributes.iter().map(attribute_json).collect());
        }
    }
    v
}

/// One schema resource (RFC 7643 §7).
pub fn schema_json(s: &Schema, base_url: &str) -> Value {
    json!({
        "schemas": [urn::SCHEMA],
        "id": s.id,
        "name": s.name,
        "description": s.description,
        "attributes": s.attributes.iter().map(attribute_json).collect::<Vec<_>>(),
        "meta": { "resourceType": "Schema", "location": format!("{base_url}/Schemas/{}", s.id) },
    })
}

/// One resource type resource (RFC 7643 §6).
pub fn resource_type_json(rt: &ResourceType, base_url: &str) -> Value {
    json!({
        "schemas": [urn::RESOURCE_TYPE],
        "id": rt.id,
        "name": rt.name,
        "endpoint": rt.endpoint,
        "description": rt.description,
        "schema": rt.core.id,
        "schemaExtensions": rt.extensions.iter()
            .map(|(s, required)| json!({ "schema": s.id, "required": required }))
            .collect::<Vec<_>>(),
        "meta": { "resourceType": "ResourceType", "location": format!("{base_url}/ResourceTypes/{}", rt.id) },
    })
}

fn list(resources: Vec<Value>) -> Value {
    ListResponse { total_results: resources.len() as u64, start_index: Some(1), resources, next_cursor: None }.to_json()
}

/// /Schemas.
pub fn schemas_list(base_url: &str) -> Value {
    list(schema::all_schemas().into_iter().map(|s| schema_json(s, base_url)).collect())
}

/// /ResourceTypes.
pub fn resource_types_list(base_url: &str) -> Value {
    list(schema::resource_types().into_iter().map(|rt| resource_type_json(rt, base_url)).collect())
}

/// /Schemas/{id}, the id matched case-insensitively.
pub fn find_schema(id: &str) -> Option<&'static Schema> {
    schema::all_schemas().into_iter().find(|s| s.id.eq_ignore_ascii_case(id))
}

/// /ResourceTypes/{id}.
pub fn find_resource_type(id: &str) -> Option<&'static ResourceType> {
    schema::resource_types().into_iter().find(|rt| rt.id.eq_ignore_ascii_case(id))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_provider_config_tells_what_is_supported() {
        let doc = service_provider_config(&ServiceProviderOptions::default(), "https://x/t/scim/v2");
        assert_eq!(doc["patch"]["supported"], json!(true));
        assert_eq!(doc["bulk"]["supported"], json!(false));
        assert_eq!(doc["filter"]["maxResults"], json!(1000));
        assert_eq!(doc["etag"]["supported"], json!(true));
        assert_eq!(doc["sort"]["supported"], json!(false));
        assert_eq!(doc["pagination"]["cursor"], json!(true));
        assert_eq!(doc["authenticationSchemes"][0]["type"], json!("oauthbearertoken"));
        assert_eq!(doc["meta"]["location"], json!("https://x/t/scim/v2/ServiceProviderConfig"));
    }

    #[test]
    fn schemas_list_every_schema_with_characteristics() {
        let doc = schemas_list("b");
        assert_eq!(doc["totalResults"], json!(4));
        let user = &doc["Resources"][0];
        assert_eq!(user["id"], json!(urn::USER));
        let user_name = &user["attributes"][0];
        assert_eq!(user_name["name"], json!("userName"));
        assert_eq!(user_name["uniqueness"], json!("server"));
        assert_eq!(user_name["required"], json!(true));
        let emails = user["attributes"].as_array().and_then(|a| a.iter().find(|a| a["name"] == json!("emails")));
        assert_eq!(emails.map(|e| e["subAttributes"][2]["canonicalValues"][0].clone()), Some(json!("work")));
    }

    #[test]
    fn resource_types_name_their_extensions() {
        let doc = resource_types_list("b");
        assert_eq!(doc["Resources"][0]["endpoint"], json!("/Users"));
        assert_eq!(doc["Resources"][0]["schemaExtensions"][0]["schema"], json!(urn::ENTERPRISE_USER));
        assert_eq!(doc["Resources"][1]["schema"], json!(urn::GROUP));
        assert!(find_resource_type("group").is_some());
        assert!(find_schema(&urn::ENTERPRISE_USER.to_uppercase()).is_some());
        assert!(find_schema("urn:nope").is_none());
    }
}
