//! Schema and message URNs (RFC 7643 §8.7, RFC 7644 §3.*).

pub const USER: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
pub const GROUP: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";
pub const ENTERPRISE_USER: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
/// The product's own User extension, filled by the Microsoft Graph pull
/// (unit and user types matched from a directory field).
pub const DIRECTORY_USER: &str = "urn:lockstep:params:scim:schemas:extension:directory:2.0:User";

/// The product's extension of /ServiceProviderConfig: limits that RFC 7643
/// §5 has no attribute for, kept out of the standard attributes so that
/// strict clients read the document.
pub const LIMITS_CONFIG: &str = "urn:lockstep:params:scim:schemas:extension:limits:2.0:ServiceProviderConfig";

pub const SERVICE_PROVIDER_CONFIG: &str = "urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig";
pub const RESOURCE_TYPE: &str = "urn:ietf:params:scim:schemas:core:2.0:ResourceType";
pub const SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:Schema";

pub const LIST_RESPONSE: &str = "urn:ietf:params:scim:api:messages:2.0:ListResponse";
pub const SEARCH_REQUEST: &str = "urn:ietf:params:scim:api:messages:2.0:SearchRequest";
pub const PATCH_OP: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";
pub const ERROR: &str = "urn:ietf:params:scim:api:messages:2.0:Error";
pub const BULK_REQUEST: &str = "urn:ietf:params:scim:api:messages:2.0:BulkRequest";
