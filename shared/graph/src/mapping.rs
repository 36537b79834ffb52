//! How a Microsoft Graph user becomes a Lockstep user: pure functions, no
//! I/O. The core fields map fixed (userName from the user principal name or
//! the mail, names, the work email, externalId = the Graph object id); the
//! *unit* and *user types* are matched from one configurable Azure field
//! each against the tenant's known lists.

use scim_protocol::{Object, urn};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// A user as Graph's `/users/delta` returns it, with only the fields the
/// pull selects.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GraphUser {
    pub id: String,
    #[serde(default)]
    pub user_principal_name: Option<String>,
    #[serde(default)]
    pub mail: Option<String>,
    #[serde(default)]
    pub given_name: Option<String>,
    #[serde(default)]
    pub surname: Option<String>,
    #[serde(default)]
    pub display_name: Option<String>,
    #[serde(default)]
    pub account_enabled: Option<bool>,
    #[serde(default)]
    pub job_title: Option<String>,
    #[serde(default)]
    pub company_name: Option<String>,
    #[serde(default)]
    pub department: Option<String>,
    #[serde(default)]
    pub street_address: Option<String>,
    #[serde(default)]
    pub state: Option<String>,
    #[serde(default)]
    pub country: Option<String>,
    #[serde(default)]
    pub office_location: Option<String>,
    #[serde(default)]
    pub city: Option<String>,
    #[serde(default)]
    pub postal_code: Option<String>,
    /// Present (`{"reason": "changed" | "deleted"}`) when the user was
    /// removed from the directory (or from the app's view) since the last
    /// round.
    #[serde(default, rename = "@removed")]
    pub removed: Option<Value>,
}

impl GraphUser {
    /// A user from its properties (absent and `null` are both "none").
    pub fn from_properties(id: &str, properties: &Object) -> Self {
        let mut object = properties.clone();
        object.insert("id".into(), json!(id));
        object.remove("@removed");
        serde_json::from_value(Value::Object(object))
            .unwrap_or_else(|_| GraphUser { id: id.to_string(), ..Self::default() })
    }
}

/// The last properties known of a user, with a delta object's applied: a
/// property the delta leaves out is unchanged, one it sends (`null`
/// included) replaces the known one.
pub fn merge_delta(known: Option<&Object>, delta: &Object) -> Object {
    let mut merged = known.cloned().unwrap_or_default();
    for (k, v) in delta {
        merged.insert(k.clone(), v.clone());
    }
    merged
}

/// The Azure user fields a unit or user types can be matched from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum SourceField {
    JobTitle,
    CompanyName,
    Department,
    StreetAddress,
    State,
    Country,
    OfficeLocation,
    City,
    PostalCode,
}

impl SourceField {
    pub const ALL: [SourceField; 9] = [
        SourceField::JobTitle,
        SourceField::CompanyName,
        SourceField::Department,
        SourceField::StreetAddress,
        SourceField::State,
        SourceField::Country,
        SourceField::OfficeLocation,
        SourceField::City,
        SourceField::PostalCode,
    ];

    /// The Graph property name (for `$select` and for people).
    pub fn graph_name(self) -> &'static str {
        match self {
            SourceField::JobTitle => "jobTitle",
            SourceField::CompanyName => "companyName",
            SourceField::Department => "department",
            SourceField::StreetAddress => "streetAddress",
            SourceField::State => "state",
            SourceField::Country => "country",
            SourceField::OfficeLocation => "officeLocation",
            SourceField::City => "city",
            SourceField::PostalCode => "postalCode",
        }
    }

    /// A field by its Graph name, in any case.
    pub fn parse(name: &str) -> Option<SourceField> {
        Self::ALL.into_iter().find(|f| f.graph_name().eq_ignore_ascii_case(name))
    }

    fn of(self, user: &GraphUser) -> Option<&str> {
        let value = match self {
            SourceField::JobTitle => &user.job_title,
            SourceField::CompanyName => &user.company_name,
            SourceField::Department => &user.department,
            SourceField::StreetAddress => &user.street_address,
            SourceField::State => &user.state,
            SourceField::Country => &user.country,
            SourceField::OfficeLocation => &user.office_location,
            SourceField::City => &user.city,
            SourceField::PostalCode => &user.postal_code,
        };
        value.as_deref()
    }
}

/// Where userName comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum UserNameSource {
    #[default]
    UserPrincipalName,
    Mail,
}

/// A tenant's mapping: where the unit and the user types come from, and
/// the units and user types the product knows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub struct Mapping {
    #[serde(default)]
    pub user_name_from: UserNameSource,
    pub unit_field: SourceField,
    pub user_types_field: SourceField,
    #[serde(default)]
    pub units: Vec<String>,
    #[serde(default)]
    pub user_types: Vec<String>,
}

impl Mapping {
    /// The unit and the user types must come from different fields: one
    /// value cannot say both where a user belongs and what it may do.
    pub fn check(&self) -> Result<(), String> {
        if self.unit_field == self.user_types_field {
            return Err(format!(
                "the unit and the user types cannot both come from '{}': pick two different Azure fields",
                self.unit_field.graph_name()
            ));
        }
        Ok(())
    }

    /// The Graph properties a pull selects: only those the mapping uses.
    pub fn select(&self) -> String {
        let mut fields =
            vec!["id", "userPrincipalName", "mail", "givenName", "surname", "displayName", "accountEnabled"];
        fields.push(self.unit_field.graph_name());
        fields.push(self.user_types_field.graph_name());
        fields.join(",")
    }
}

/// Why a Graph user is not pulled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Skip {
    /// First name or last name is empty: both are mandatory.
    MissingName,
    /// No value for userName (no user principal name, or no mail when
    /// userName comes from the mail).
    MissingUserName,
}

impl Skip {
    pub fn describe(self) -> &'static str {
        match self {
            Skip::MissingName => "no first name or last name (both are mandatory)",
            Skip::MissingUserName => "no value for userName",
        }
    }
}

fn present(value: Option<&str>) -> Option<&str> {
    value.map(str::trim).filter(|v| !v.is_empty())
}

/// The unit: the one known unit the field names, case-insensitively. No
/// match, or more than one unit in the field, is no unit (unassigned).
pub fn match_unit<'a>(value: Option<&str>, units: &'a [String]) -> Option<&'a str> {
    let value = present(value)?;
    if value.contains(',') {
        return None;
    }
    units.iter().find(|u| u.trim().eq_ignore_ascii_case(value)).map(String::as_str)
}

/// The user types: every comma-separated value that names a known user
/// type, case-insensitively, once each, in the field's order; values that
/// match nothing are ignored.
pub fn match_user_types<'a>(value: Option<&str>, user_types: &'a [String]) -> Vec<&'a str> {
    let mut out: Vec<&str> = Vec::new();
    for part in present(value).into_iter().flat_map(|v| v.split(',')).map(str::trim).filter(|p| !p.is_empty()) {
        if let Some(known) = user_types.iter().find(|t| t.trim().eq_ignore_ascii_case(part))
            && !out.contains(&known.as_str())
        {
            out.push(known);
        }
    }
    out
}

/// Why a pulled user has no unit, or no user type, in words for the
/// operator: the field is empty, or names nothing known.
pub fn placement_gaps(user: &GraphUser, mapping: &Mapping) -> (Option<String>, Option<String>) {
    let why = |field: SourceField, value: Option<&str>, what: &str| match present(value) {
        None => format!("{} is empty", field.graph_name()),
        Some(v) if what == "unit" && v.contains(',') => format!("{} names more than one unit", field.graph_name()),
        Some(_) => format!("{} names no known {what}", field.graph_name()),
    };
    let unit_value = mapping.unit_field.of(user);
    let unit = match_unit(unit_value, &mapping.units).is_none().then(|| why(mapping.unit_field, unit_value, "unit"));
    let types_value = mapping.user_types_field.of(user);
    let matched_types = !match_user_types(types_value, &mapping.user_types).is_empty();
    let types = match (matched_types, &unit) {
        (false, _) => Some(why(mapping.user_types_field, types_value, "user type")),
        (true, Some(_)) => Some("user types need a unit, and no unit matched".to_string()),
        (true, None) => None,
    };
    (unit, types)
}

/// The SCIM attributes of a pulled user (in the shape the SCIM engine
/// produces for a parsed resource), or why it is skipped.
pub fn map_user(user: &GraphUser, mapping: &Mapping) -> Result<Object, Skip> {
    let (Some(given), Some(family)) = (present(user.given_name.as_deref()), present(user.surname.as_deref())) else {
        return Err(Skip::MissingName);
    };
    let user_name = match mapping.user_name_from {
        UserNameSource::UserPrincipalName => present(user.user_principal_name.as_deref()),
        UserNameSource::Mail => present(user.mail.as_deref()),
    }
    .ok_or(Skip::MissingUserName)?;
    let display = present(user.display_name.as_deref()).map_or_else(|| format!("{given} {family}"), str::to_string);
    let mut attrs = Object::new();
    attrs.insert("userName".into(), json!(user_name));
    attrs.insert("externalId".into(), json!(user.id));
    attrs.insert("name".into(), json!({ "givenName": given, "familyName": family }));
    attrs.insert("displayName".into(), json!(display));
    attrs.insert("active".into(), json!(user.account_enabled.unwrap_or(true)));
    if let Some(mail) = present(user.mail.as_deref()) {
        attrs.insert("emails".into(), json!([{ "value": mail, "type": "work", "primary": true }]));
    }
    let mut placement = Object::new();
    if let Some(unit) = match_unit(mapping.unit_field.of(user), &mapping.units) {
        placement.insert("unit".into(), json!(unit));
    }
    // User types belong to a unit: without one, none are applied.
    let types = match_user_types(mapping.user_types_field.of(user), &mapping.user_types);
    if placement.contains_key("unit") && !types.is_empty() {
        placement.insert("userTypes".into(), json!(types));
    }
    attrs.insert("schemas".into(), json!([urn::USER, urn::DIRECTORY_USER]));
    attrs.insert(urn::DIRECTORY_USER.into(), Value::Object(placement));
    Ok(attrs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mapping() -> Mapping {
        Mapping {
            user_name_from: UserNameSource::UserPrincipalName,
            unit_field: SourceField::Department,
            user_types_field: SourceField::JobTitle,
            units: vec!["Oslo".into(), "Aarhus".into(), "Head Office".into()],
            user_types: vec!["Manager".into(), "Nurse".into(), "Employee".into()],
        }
    }

    fn ada() -> GraphUser {
        GraphUser {
            id: "0f1c".into(),
            user_principal_name: Some("ada@contoso.com".into()),
            mail: Some("Ada.Lovelace@contoso.com".into()),
            given_name: Some("Ada".into()),
            surname: Some("Lovelace".into()),
            display_name: Some("Ada Lovelace".into()),
            account_enabled: Some(true),
            department: Some("oslo".into()),
            job_title: Some("Manager, nurse".into()),
            ..GraphUser::default()
        }
    }

    #[test]
    fn units_match_one_known_unit_case_insensitively() {
        let units = mapping().units;
        let table: [(Option<&str>, Option<&str>); 8] = [
            (Some("Oslo"), Some("Oslo")),
            (Some("  oSLO "), Some("Oslo")),
            (Some("head office"), Some("Head Office")),
            (Some("Bergen"), None),
            (Some("Oslo, Aarhus"), None),
            (Some("Oslo,"), None),
            (Some(""), None),
            (None, None),
        ];
        for (value, expected) in table {
            assert_eq!(match_unit(value, &units), expected, "{value:?}");
        }
    }

    #[test]
    fn user_types_match_every_known_value_of_a_list() {
        let types = mapping().user_types;
        let table: [(Option<&str>, &[&str]); 7] = [
            (Some("Manager"), &["Manager"]),
            (Some("manager, NURSE"), &["Manager", "Nurse"]),
            (Some("Nurse,Pilot,Manager"), &["Nurse", "Manager"]),
            (Some("Pilot"), &[]),
            (Some("nurse, Nurse"), &["Nurse"]),
            (Some(" , ,"), &[]),
            (None, &[]),
        ];
        for (value, expected) in table {
            assert_eq!(match_user_types(value, &types), expected, "{value:?}");
        }
    }

    #[test]
    fn a_user_maps_to_scim_attributes() {
        let attrs = map_user(&ada(), &mapping()).unwrap_or_else(|s| panic!("{s:?}"));
        assert_eq!(attrs["userName"], "ada@contoso.com");
        assert_eq!(attrs["externalId"], "0f1c");
        assert_eq!(attrs["name"], json!({ "givenName": "Ada", "familyName": "Lovelace" }));
        assert_eq!(attrs["displayName"], "Ada Lovelace");
        assert_eq!(attrs["active"], true);
        assert_eq!(attrs["emails"], json!([{ "value": "Ada.Lovelace@contoso.com", "type": "work", "primary": true }]));
        assert_eq!(attrs[urn::DIRECTORY_USER], json!({ "unit": "Oslo", "userTypes": ["Manager", "Nurse"] }));
        // The mapped attributes are what the SCIM engine accepts as a user.
        let parsed =
            scim_protocol::parse_service_resource(scim_protocol::schema::user(), &Value::Object(attrs.clone()));
        assert!(parsed.is_ok(), "{parsed:?}");
    }

    #[test]
    fn user_name_from_mail_disabled_accounts_and_unassigned_users() {
        let by_mail = Mapping { user_name_from: UserNameSource::Mail, ..mapping() };
        let off = GraphUser { account_enabled: Some(false), department: Some("Bergen".into()), ..ada() };
        let attrs = map_user(&off, &by_mail).unwrap_or_else(|s| panic!("{s:?}"));
        assert_eq!(attrs["userName"], "Ada.Lovelace@contoso.com");
        assert_eq!(attrs["active"], false, "accountEnabled=false deactivates");
        assert_eq!(attrs[urn::DIRECTORY_USER], json!({}), "no unit: unassigned, and user types need a unit");
        let no_display = GraphUser { display_name: None, ..ada() };
        assert_eq!(map_user(&no_display, &mapping()).map(|a| a["displayName"].clone()), Ok(json!("Ada Lovelace")));
    }

    #[test]
    fn users_without_mandatory_fields_are_skipped_with_the_reason() {
        let table: [(GraphUser, Skip); 4] = [
            (GraphUser { given_name: None, ..ada() }, Skip::MissingName),
            (GraphUser { surname: Some("  ".into()), ..ada() }, Skip::MissingName),
            (GraphUser { user_principal_name: None, ..ada() }, Skip::MissingUserName),
            (GraphUser { mail: None, ..ada() }, Skip::MissingUserName),
        ];
        let by_mail = Mapping { user_name_from: UserNameSource::Mail, ..mapping() };
        for (i, (user, skip)) in table.into_iter().enumerate() {
            let m = if i == 3 { &by_mail } else { &mapping() };
            assert_eq!(map_user(&user, m).err(), Some(skip), "case {i}");
        }
    }

    #[test]
    fn the_unit_and_user_types_need_two_fields() {
        let same = Mapping { user_types_field: SourceField::Department, ..mapping() };
        assert!(same.check().is_err_and(|e| e.contains("department")));
        assert!(mapping().check().is_ok());
        let select = mapping().select();
        assert!(select.contains("department") && select.contains("jobTitle") && !select.contains("city"), "{select}");
        assert_eq!(SourceField::parse("OFFICELOCATION"), Some(SourceField::OfficeLocation));
        assert_eq!(SourceField::parse("salary"), None);
    }

    #[test]
    fn delta_entries_parse_with_removals() {
        let removed: GraphUser =
            serde_json::from_value(json!({ "id": "x", "@removed": { "reason": "deleted" } })).unwrap_or_default();
        assert!(removed.removed.is_some());
        let user: GraphUser = serde_json::from_value(json!({ "id": "y", "givenName": "A", "extra": 1 }))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((user.given_name.as_deref(), user.removed), (Some("A"), None));
    }
}
