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
    /// The most group members (or a user's groups) one response carries,
    /// over all resources of a page.
    pub max_members_per_response: u64,
    /// The largest response body, in bytes.
    pub max_response_bytes: u64,
}

impl Default for ServiceProviderOptions {
    fn default() -> Self {
        Self {
            documentation_uri: None,
            max_results: 1000,
            default_page_size: 100,
            max_payload_bytes: 1024 * 1024,
            cursor_timeout_secs: 3600,
            max_members_per_response: 10_000,
            max_response_bytes: 4_500_000,
        }
    }
}

/// /ServiceProviderConfig. `base_url` is the tenant's SCIM base URL.
pub fn service_provider_config(opts: &ServiceProviderOptions, base_url: &str) -> Value {
    // Standard attributes hold only what RFC 7643 §5 defines, and
    // `pagination` of RFC 9865; this service's own limits are in its
    // extension, named in `schemas`.
    let mut doc = json!({
        "schemas": [urn::SERVICE_PROVIDER_CONFIG, urn::LIMITS_CONFIG],
        "patch": { "supported": true },
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
        urn::LIMITS_CONFIG: {
            "patchMaxOperations": crate::patch::MAX_PATCH_OPERATIONS,
            "maxPayloadSize": opts.max_payload_bytes,
            "maxProjectionNames": crate::resource::MAX_PROJECTION_NAMES,
            "maxMembersPerResponse": opts.max_members_per_response,
            "maxResponseBytes": opts.max_response_bytes,
        },
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

    /// RFC 7643 §5 read to the letter, as strict client models read it:
    /// no attribute the RFC does not define, except `pagination` (RFC
    /// 9865) and extensions named in `schemas`.
    mod strict {
        #![allow(dead_code)]
        use serde::Deserialize;

        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        pub struct Supported {
            pub supported: bool,
        }

        #[derive(Deserialize)]
        #[serde(deny_unknown_fields, rename_all = "camelCase")]
        pub struct Bulk {
            pub supported: bool,
            pub max_operations: u64,
            pub max_payload_size: u64,
        }

        #[derive(Deserialize)]
        #[serde(deny_unknown_fields, rename_all = "camelCase")]
        pub struct Filter {
            pub supported: bool,
            pub max_results: u64,
        }

        #[derive(Deserialize)]
        #[serde(deny_unknown_fields, rename_all = "camelCase")]
        pub struct AuthenticationScheme {
            #[serde(rename = "type")]
            pub ty: String,
            pub name: String,
            pub description: String,
            pub spec_uri: Option<String>,
            pub documentation_uri: Option<String>,
            pub primary: Option<bool>,
        }

        #[derive(Deserialize)]
        #[serde(deny_unknown_fields, rename_all = "camelCase")]
        pub struct Pagination {
            pub cursor: bool,
            pub index: bool,
            pub default_pagination_method: Option<String>,
            pub default_page_size: Option<u64>,
            pub max_page_size: Option<u64>,
            pub cursor_timeout: Option<u64>,
        }

        #[derive(Deserialize)]
        #[serde(deny_unknown_fields, rename_all = "camelCase")]
        pub struct Meta {
            pub resource_type: String,
            pub location: String,
            pub created: Option<String>,
            pub last_modified: Option<String>,
            pub version: Option<String>,
        }

        #[derive(Deserialize)]
        #[serde(deny_unknown_fields, rename_all = "camelCase")]
        pub struct ServiceProviderConfig {
            pub schemas: Vec<String>,
            pub documentation_uri: Option<String>,
            pub patch: Supported,
            pub bulk: Bulk,
            pub filter: Filter,
            pub change_password: Supported,
            pub sort: Supported,
            pub etag: Supported,
            pub authentication_schemes: Vec<AuthenticationScheme>,
            pub pagination: Option<Pagination>,
            pub meta: Option<Meta>,
        }
    }

    #[test]
    fn service_provider_config_reads_in_a_strict_rfc_7643_model() {
        let opts = ServiceProviderOptions { documentation_uri: Some("https://docs".into()), ..Default::default() };
        let mut doc = service_provider_config(&opts, "https://x/t/scim/v2");
        // Extensions are allowed where `schemas` names them; the rest is RFC 7643 §5 to the letter.
        let obj = doc.as_object_mut().unwrap_or_else(|| unreachable!());
        let schemas: Vec<String> = obj["schemas"]
            .as_array()
            .map(|a| a.iter().filter_map(|s| s.as_str().map(str::to_string)).collect())
            .unwrap_or_default();
        assert_eq!(schemas[0], urn::SERVICE_PROVIDER_CONFIG);
        for ext in &schemas[1..] {
            assert!(obj.remove(ext).is_some_and(|v| v.is_object()), "{ext} is named in schemas but absent");
        }
        assert!(obj.keys().all(|k| !k.starts_with("urn:")), "an extension not named in schemas: {obj:?}");
        let parsed: Result<strict::ServiceProviderConfig, _> = serde_json::from_value(doc.clone());
        assert!(parsed.is_ok(), "{:?}\n{doc:#}", parsed.err());
        // The service's own limits are in its extension.
        let full = service_provider_config(&opts, "https://x/t/scim/v2");
        let limits = &full[urn::LIMITS_CONFIG];
        assert_eq!(limits["patchMaxOperations"], json!(crate::patch::MAX_PATCH_OPERATIONS));
        assert_eq!(limits["maxProjectionNames"], json!(crate::resource::MAX_PROJECTION_NAMES));
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
