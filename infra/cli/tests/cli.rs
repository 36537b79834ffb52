//! The `lockstep` binary end to end: the local runner over real HTTP,
//! replaying what Microsoft Entra ID and Okta send, and the operator
//! commands on the local store.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};

const LOCKSTEP: &str = env!("CARGO_BIN_EXE_lockstep");
const USER: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
const ENTERPRISE: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
const GROUP: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";
const PATCH_OP: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";
const ERROR: &str = "urn:ietf:params:scim:api:messages:2.0:Error";

/// Run a `lockstep` command to completion: (exit success, stdout, stderr).
fn lockstep(data_dir: &Path, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(LOCKSTEP)
        .arg("--data-dir")
        .arg(data_dir)
        .args(args)
        .env_remove("LOCKSTEP_BACKEND")
        .env_remove("PUBLIC_URL")
        .output()
        .unwrap_or_else(|e| panic!("running lockstep: {e}"));
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn lockstep_json(data_dir: &Path, args: &[&str]) -> Value {
    let mut all = vec!["--json"];
    all.extend_from_slice(args);
    let (ok, out, err) = lockstep(data_dir, &all);
    assert!(ok, "lockstep {args:?} failed: {err}");
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("lockstep {args:?} printed no JSON ({e}): {out}"))
}

/// A running `lockstep serve`, killed when dropped.
struct Runner {
    child: Child,
    banner: Value,
    logs: Arc<Mutex<Vec<String>>>,
    agent: ureq::Agent,
}

impl Drop for Runner {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct Reply {
    status: u16,
    headers: ureq::http::HeaderMap,
    body: Value,
}

impl Reply {
    fn header(&self, name: &str) -> &str {
        self.headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default()
    }
}

fn serve(data_dir: &Path, extra: &[&str]) -> Runner {
    serve_with_env(data_dir, extra, &[])
}

/// `lockstep serve` with these environment variables set.
fn serve_with_env(data_dir: &Path, extra: &[&str], env: &[(&str, &str)]) -> Runner {
    let mut child = Command::new(LOCKSTEP)
        .arg("--json")
        .arg("--data-dir")
        .arg(data_dir)
        .args(["serve", "--port", "0"])
        .args(extra)
        .env_remove("PUBLIC_URL")
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("starting lockstep serve: {e}"));
    let logs = Arc::new(Mutex::new(Vec::new()));
    let (first_tx, first_rx) = mpsc::channel();
    let stdout = child.stdout.take().unwrap_or_else(|| panic!("no stdout"));
    {
        // Drain stdout for the whole run, or the server blocks on a full pipe.
        let logs = Arc::clone(&logs);
        std::thread::spawn(move || {
            for (i, line) in BufReader::new(stdout).lines().map_while(Result::ok).enumerate() {
                if i == 0 {
                    let _ = first_tx.send(line);
                } else {
                    logs.lock().unwrap_or_else(|e| e.into_inner()).push(line);
                }
            }
        });
    }
    let banner = match first_rx.recv_timeout(Duration::from_secs(30)) {
        Ok(line) => serde_json::from_str(&line).unwrap_or_else(|e| panic!("banner is not JSON ({e}): {line}")),
        Err(_) => {
            let mut err = String::new();
            let _ = child.kill();
            if let Some(mut s) = child.stderr.take() {
                let _ = s.read_to_string(&mut err);
            }
            panic!("lockstep serve printed no banner: {err}");
        }
    };
    let agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
    Runner { child, banner, logs, agent }
}

impl Runner {
    fn base_url(&self) -> String {
        self.banner["base_url"].as_str().unwrap_or_default().to_string()
    }

    /// The token issued at start. Output that is not a terminal never
    /// shows it: it is in the private file the banner names.
    fn token(&self) -> String {
        assert!(self.banner["token"].is_null(), "a token printed to a pipe: {}", self.banner);
        let path = self.banner["token_file"].as_str().unwrap_or_else(|| panic!("no token file in {}", self.banner));
        std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}")).trim().to_string()
    }

    /// A request with the given token and headers; `body` is sent as
    /// `application/scim+json` unless a content-type header is given.
    fn request(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&str>,
        headers: &[(&str, &str)],
    ) -> Reply {
        let url = if path.starts_with("http") { path.to_string() } else { format!("{}{path}", self.base_url()) };
        let mut req = ureq::http::Request::builder().method(method).uri(url);
        if let Some(t) = token {
            req = req.header("Authorization", format!("Bearer {t}"));
        }
        if body.is_some() && !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("content-type")) {
            req = req.header("Content-Type", "application/scim+json");
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let response = match body {
            Some(b) => self.agent.run(req.body(b.to_string()).unwrap_or_else(|e| panic!("{e}"))),
            None => self.agent.run(req.body(()).unwrap_or_else(|e| panic!("{e}"))),
        };
        let mut response = response.unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        let text = response.body_mut().read_to_string().unwrap_or_default();
        let body =
            if text.is_empty() { Value::Null } else { serde_json::from_str(&text).unwrap_or(Value::String(text)) };
        Reply { status: response.status().as_u16(), headers: response.headers().clone(), body }
    }

    fn call(&self, method: &str, path: &str, body: Option<Value>) -> Reply {
        let token = self.token();
        self.request(method, path, Some(&token), body.map(|b| b.to_string()).as_deref(), &[])
    }
}

fn data_dir() -> tempfile::TempDir {
    tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"))
}

fn id_of(reply: &Reply) -> String {
    reply.body["id"].as_str().unwrap_or_else(|| panic!("no id in {}", reply.body)).to_string()
}

fn assert_scim_error(reply: &Reply, status: u16, scim_type: Option<&str>) {
    assert_eq!(reply.status, status, "{}", reply.body);
    assert_eq!(reply.header("content-type"), "application/scim+json");
    assert_eq!(reply.body["schemas"], json!([ERROR]), "{}", reply.body);
    assert_eq!(reply.body["status"], json!(status.to_string()), "status is a string: {}", reply.body);
    assert!(reply.body["detail"].as_str().is_some_and(|d| !d.is_empty()), "{}", reply.body);
    if let Some(t) = scim_type {
        assert_eq!(reply.body["scimType"], t, "{}", reply.body);
    }
}

fn member_ids(group: &Value) -> Vec<String> {
    let mut ids: Vec<String> = group["members"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|m| m["value"].as_str().map(str::to_string))
        .collect();
    ids.sort();
    ids
}

/// Microsoft Entra ID's provisioning, request by request as documented in
/// "Develop and plan provisioning for a SCIM endpoint" (its request and
/// response examples) and its SCIM compatibility notes.
#[test]
fn entra_provisioning_cycle() {
    let dir = data_dir();
    let runner = serve(dir.path(), &[]);

    // Test connection: a filter on a random userName, and no User-Agent.
    let probe = format!(
        "GET {}/Users?filter=userName%20eq%20%22{}%22 HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {}\r\nConnection: close\r\n\r\n",
        url_path(&runner.base_url()),
        "0b0c7d8e-bf1a-4e2b-9d4c-51f3a07b4c11",
        runner.token()
    );
    let raw = raw_http(&runner.base_url(), &probe);
    assert!(raw.starts_with("HTTP/1.1 200"), "{raw}");
    assert!(raw.contains("\"totalResults\":0") && raw.contains("\"Resources\":[]"), "{raw}");

    // Create User.
    let create = json!({
        "schemas": [USER, ENTERPRISE],
        "externalId": "0a21f0f2-8d2a-4f8e-bf98-7363c4aed4ef",
        "userName": "Test_User_ab6490ee-1e48-479e-a20b-2d77186b5dd1",
        "active": true,
        "emails": [{ "primary": true, "type": "work", "value": "Test_User_fd0ea19b-0777-472c-9f96-4f70d2226f2e@testuser.com" }],
        "meta": { "resourceType": "User" },
        "name": { "formatted": "givenName familyName", "familyName": "familyName", "givenName": "givenName" },
        "roles": []
    });
    let created = runner.call("POST", "/Users", Some(create.clone()));
    assert_eq!(created.status, 201, "{}", created.body);
    let id = id_of(&created);
    let location = format!("{}/Users/{id}", runner.base_url());
    assert_eq!(created.header("location"), location);
    assert_eq!(created.body["meta"]["location"], json!(location));
    assert_eq!(created.body["meta"]["resourceType"], "User");
    assert_eq!(created.header("etag"), created.body["meta"]["version"].as_str().unwrap_or("-"));
    assert_eq!(created.header("content-type"), "application/scim+json");

    // Create the same user again: 409 uniqueness.
    assert_scim_error(&runner.call("POST", "/Users", Some(create)), 409, Some("uniqueness"));

    // With the work email as the matching attribute, Entra asks before a
    // create: GET /Users?filter=emails[type eq "work"].value eq "...".
    let by_work_email = runner.call(
        "GET",
        "/Users?filter=emails%5Btype%20eq%20%22work%22%5D.value%20eq%20%22Test_User_fd0ea19b-0777-472c-9f96-4f70d2226f2e%40testuser.com%22",
        None,
    );
    assert_eq!(by_work_email.status, 200, "{}", by_work_email.body);
    assert_eq!(by_work_email.body["totalResults"], 1, "{}", by_work_email.body);
    assert_eq!(by_work_email.body["Resources"][0]["id"], json!(id));

    // Get User, and Get User by query (found, and zero results).
    let got = runner.call("GET", &format!("/Users/{id}"), None);
    assert_eq!((got.status, got.body["userName"].clone()), (200, created.body["userName"].clone()));
    let etag = got.header("etag").to_string();
    let unchanged =
        runner.request("GET", &format!("/Users/{id}"), Some(&runner.token()), None, &[("If-None-Match", &etag)]);
    assert_eq!(unchanged.status, 304);
    let query =
        runner.call("GET", "/Users?filter=userName%20eq%20%22Test_User_ab6490ee-1e48-479e-a20b-2d77186b5dd1%22", None);
    assert_eq!(query.body["totalResults"], 1, "{}", query.body);
    assert_eq!(query.body["Resources"][0]["id"], json!(id));
    assert_eq!(query.body["schemas"], json!(["urn:ietf:params:scim:api:messages:2.0:ListResponse"]));
    let none = runner.call("GET", "/Users?filter=userName%20eq%20%22non-existent%20user%22", None);
    assert_eq!((none.status, none.body["totalResults"].clone()), (200, json!(0)));

    // Update User [Multi-valued properties], Entra's capitalised op.
    let patched = runner.call(
        "PATCH",
        &format!("/Users/{id}"),
        Some(json!({ "schemas": [PATCH_OP], "Operations": [
            { "op": "Replace", "path": "emails[type eq \"work\"].value", "value": "updatedEmail@microsoft.com" },
            { "op": "Replace", "path": "name.familyName", "value": "updatedFamilyName" }
        ]})),
    );
    assert_eq!(patched.status, 200, "{}", patched.body);
    assert_eq!(patched.body["emails"][0]["value"], "updatedEmail@microsoft.com");
    assert_eq!(patched.body["name"]["familyName"], "updatedFamilyName");

    // Update User [Single-valued properties].
    let renamed = runner.call(
        "PATCH",
        &format!("/Users/{id}"),
        Some(json!({ "schemas": [PATCH_OP], "Operations": [
            { "op": "Replace", "path": "userName", "value": "5b50642d-79fc-4410-9e90-4c077cdd1a59@testuser.com" }
        ]})),
    );
    assert_eq!(renamed.body["userName"], "5b50642d-79fc-4410-9e90-4c077cdd1a59@testuser.com");

    // Path-less values keyed by URN paths, and the manager as a plain id.
    let manager =
        id_of(&runner.call("POST", "/Users", Some(json!({ "schemas": [USER], "userName": "manager@testuser.com" }))));
    let enterprise = runner.call(
        "PATCH",
        &format!("/Users/{id}"),
        Some(json!({ "schemas": [PATCH_OP], "Operations": [
            { "op": "Add", "value": { "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber": "701984", "name.givenName": "Barbara" } },
            { "op": "Add", "path": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager", "value": manager }
        ]})),
    );
    assert_eq!(enterprise.status, 200, "{}", enterprise.body);
    assert_eq!(enterprise.body[ENTERPRISE]["employeeNumber"], "701984");
    assert_eq!(enterprise.body[ENTERPRISE]["manager"]["value"], json!(manager));
    assert_eq!(enterprise.body["name"]["givenName"], "Barbara");

    // Disable User, with the boolean as a string as Entra sends it.
    let disabled = runner.call(
        "PATCH",
        &format!("/Users/{id}"),
        Some(json!({ "schemas": [PATCH_OP], "Operations": [{ "op": "Replace", "path": "active", "value": "False" }] })),
    );
    assert_eq!(disabled.body["active"], false, "{}", disabled.body);

    // Create Group, with the Microsoft schema Entra declares.
    let group = runner.call(
        "POST",
        "/Groups",
        Some(json!({
            "schemas": [GROUP, "http://schemas.microsoft.com/2006/11/ResourceManagement/ADSCIM/2.0/Group"],
            "externalId": "8aa1a0c0-c4c3-4bc0-b4a5-2ef676900159",
            "displayName": "displayName",
            "meta": { "resourceType": "Group" }
        })),
    );
    assert_eq!(group.status, 201, "{}", group.body);
    assert_eq!(group.body["schemas"], json!([GROUP]));
    let gid = id_of(&group);

    // Get Group by displayName, members excluded, as Entra asks.
    let by_name =
        runner.call("GET", "/Groups?excludedAttributes=members&filter=displayName%20eq%20%22displayName%22", None);
    assert_eq!(by_name.body["totalResults"], 1, "{}", by_name.body);
    assert!(by_name.body["Resources"][0].get("members").is_none());

    // Update Group [Add Members], then [Remove Members] with a value array:
    // only those members go, the group is not cleared.
    let added = runner.call(
        "PATCH",
        &format!("/Groups/{gid}"),
        Some(json!({ "schemas": [PATCH_OP], "Operations": [{ "op": "Add", "path": "members",
            "value": [{ "$ref": null, "value": id }, { "$ref": null, "value": manager }] }] })),
    );
    assert!(added.status == 200 || added.status == 204, "{}", added.body);
    let members = runner.call("GET", &format!("/Groups/{gid}"), None);
    let mut both = vec![id.clone(), manager.clone()];
    both.sort();
    assert_eq!(member_ids(&members.body), both);
    assert_eq!(members.body["members"][0]["type"], "User");
    let removed = runner.call(
        "PATCH",
        &format!("/Groups/{gid}"),
        Some(json!({ "schemas": [PATCH_OP], "Operations": [{ "op": "Remove", "path": "members",
            "value": [{ "$ref": null, "value": manager }] }] })),
    );
    assert!(removed.status == 200 || removed.status == 204, "{}", removed.body);
    assert_eq!(member_ids(&runner.call("GET", &format!("/Groups/{gid}"), None).body), vec![id.clone()]);

    // The user lists its group.
    let user = runner.call("GET", &format!("/Users/{id}"), None);
    assert_eq!(user.body["groups"][0]["value"], json!(gid), "{}", user.body);

    // Update Group [Attributes].
    let retitled = runner.call(
        "PATCH",
        &format!("/Groups/{gid}"),
        Some(json!({ "schemas": [PATCH_OP], "Operations": [{ "op": "Replace", "path": "displayName", "value": "1879db59-3bdf-4490-ad68-ab880a269474updatedDisplayName" }] })),
    );
    assert_eq!(retitled.body["displayName"], "1879db59-3bdf-4490-ad68-ab880a269474updatedDisplayName");

    // Delete User: 204, then 404 with a SCIM body; the membership goes too.
    let deleted = runner.call("DELETE", &format!("/Users/{id}"), None);
    assert_eq!((deleted.status, deleted.body.clone()), (204, Value::Null));
    assert_scim_error(&runner.call("GET", &format!("/Users/{id}"), None), 404, None);
    assert_eq!(member_ids(&runner.call("GET", &format!("/Groups/{gid}"), None).body), Vec::<String>::new());

    // Delete Group.
    assert_eq!(runner.call("DELETE", &format!("/Groups/{gid}"), None).status, 204);
    assert_scim_error(&runner.call("GET", &format!("/Groups/{gid}"), None), 404, None);

    // The request log: JSON lines with request id, tenant, route, status,
    // latency; never the token or personal data.
    std::thread::sleep(Duration::from_millis(100));
    let logs = runner.logs.lock().unwrap_or_else(|e| e.into_inner()).join("\n");
    assert!(!logs.contains(&runner.token()), "the token was logged");
    assert!(!logs.contains("testuser.com"), "personal data was logged");
    let lines: Vec<Value> = logs.lines().filter_map(|l| serde_json::from_str(l).ok()).collect();
    let create_line = lines
        .iter()
        .find(|l| l["message"] == "request" && l["status"] == 201 && l["route"] == "/Users")
        .unwrap_or_else(|| panic!("no request line for the create in:\n{logs}"));
    assert_eq!(create_line["tenant"], "default");
    assert!(create_line["request_id"].is_string() && create_line["latency_ms"].is_number());
}

/// Okta's provisioning, as its SCIM 2.0 reference and spec test send it.
#[test]
fn okta_provisioning_cycle() {
    let dir = data_dir();
    let runner = serve(dir.path(), &[]);

    // Okta checks for the user first, with paging parameters.
    let lookup =
        runner.call("GET", "/Users?filter=userName%20eq%20%22test.user%40okta.local%22&startIndex=1&count=100", None);
    assert_eq!(lookup.status, 200);
    assert_eq!((lookup.body["totalResults"].clone(), lookup.body["startIndex"].clone()), (json!(0), json!(1)));

    let create = json!({
        "schemas": [USER],
        "userName": "test.user@okta.local",
        "name": { "givenName": "Test", "familyName": "User" },
        "emails": [{ "primary": true, "value": "test.user@okta.local", "type": "work" }],
        "displayName": "Test User",
        "locale": "en-US",
        "externalId": "00ujl29u0le5T6Aj10h7",
        "groups": [],
        "password": "1mz050nq",
        "active": true
    });
    let created = runner.call("POST", "/Users", Some(create));
    assert_eq!(created.status, 201, "{}", created.body);
    assert!(created.body.get("password").is_none(), "passwords are never returned");
    let id = id_of(&created);

    // Okta updates with PUT, sending the whole user back.
    let mut full = runner.call("GET", &format!("/Users/{id}"), None).body;
    full["name"]["familyName"] = json!("Userson");
    full["displayName"] = json!("Test Userson");
    let put = runner.call("PUT", &format!("/Users/{id}"), Some(full));
    assert_eq!(put.status, 200, "{}", put.body);
    assert_eq!((put.body["name"]["familyName"].clone(), put.body["id"].clone()), (json!("Userson"), json!(id)));

    // Deactivation: a path-less replace of active.
    let deactivated = runner.call(
        "PATCH",
        &format!("/Users/{id}"),
        Some(json!({ "schemas": [PATCH_OP], "Operations": [{ "op": "replace", "value": { "active": false } }] })),
    );
    assert_eq!((deactivated.status, deactivated.body["active"].clone()), (200, json!(false)), "{}", deactivated.body);
    let filtered = runner.call("GET", "/Users?filter=userName%20eq%20%22TEST.USER%40okta.local%22", None);
    assert_eq!(filtered.body["Resources"][0]["active"], false);

    // Paging: integers, a stable order, every user exactly once.
    for i in 0..6 {
        let r = runner.call(
            "POST",
            "/Users",
            Some(json!({ "schemas": [USER], "userName": format!("pager{i}@okta.local") })),
        );
        assert_eq!(r.status, 201);
    }
    let mut seen = Vec::new();
    for start in [1, 3, 5, 7] {
        let page = runner.call("GET", &format!("/Users?startIndex={start}&count=2"), None);
        assert_eq!(page.body["totalResults"], 7, "{}", page.body);
        assert_eq!(page.body["startIndex"], start);
        assert!(page.body["itemsPerPage"].is_u64());
        seen.extend(
            page.body["Resources"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|u| u["id"].as_str().map(str::to_string)),
        );
    }
    let again: Vec<String> = runner.call("GET", "/Users?startIndex=1&count=100", None).body["Resources"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|u| u["id"].as_str().map(str::to_string))
        .collect();
    assert_eq!(seen, again, "pages are slices of one stable order");
    assert_eq!(seen.len(), 7);

    // Groups: push a group, rename it the Okta way, add and remove members
    // (the test user and one of the paged users; pages are in id order, so
    // any position may hold the test user).
    let other = seen.iter().find(|u| **u != id).cloned().unwrap_or_default();
    let group = runner.call(
        "POST",
        "/Groups",
        Some(json!({ "schemas": [GROUP], "displayName": "Test SCIMv2", "members": [] })),
    );
    assert_eq!(group.status, 201, "{}", group.body);
    let gid = id_of(&group);
    let renamed = runner.call(
        "PATCH",
        &format!("/Groups/{gid}"),
        Some(json!({ "schemas": [PATCH_OP], "Operations": [{ "op": "replace", "value": { "id": gid, "displayName": "Renamed" } }] })),
    );
    assert_eq!(renamed.body["displayName"], "Renamed", "{}", renamed.body);
    let add = runner.call(
        "PATCH",
        &format!("/Groups/{gid}"),
        Some(json!({ "schemas": [PATCH_OP], "Operations": [{ "op": "add", "path": "members",
            "value": [{ "value": id, "display": "test.user@okta.local" }, { "value": other, "display": "pager" }] }] })),
    );
    assert_eq!(add.status, 200, "{}", add.body);
    let remove = runner.call(
        "PATCH",
        &format!("/Groups/{gid}"),
        Some(json!({ "schemas": [PATCH_OP], "Operations": [{ "op": "remove", "path": format!("members[value eq \"{id}\"]") }] })),
    );
    assert_eq!(remove.status, 200, "{}", remove.body);
    assert_eq!(member_ids(&runner.call("GET", &format!("/Groups/{gid}"), None).body), vec![other.clone()]);

    // Okta's group push replaces the whole membership with PUT.
    let put = runner.call(
        "PUT",
        &format!("/Groups/{gid}"),
        Some(json!({ "schemas": [GROUP], "id": gid, "displayName": "Renamed", "members": [{ "value": seen[2] }, { "value": seen[3] }] })),
    );
    assert_eq!(put.status, 200, "{}", put.body);
    let mut expected = vec![seen[2].clone(), seen[3].clone()];
    expected.sort();
    assert_eq!(member_ids(&runner.call("GET", &format!("/Groups/{gid}"), None).body), expected);
    assert_eq!(runner.call("DELETE", &format!("/Groups/{gid}"), None).status, 204);

    // The spec test's unknown user: 404 with a SCIM error.
    assert_scim_error(&runner.call("GET", "/Users/010101010101010101010101", None), 404, None);
}

/// Every refusal is a SCIM error with the right status and scimType.
#[test]
fn refusals_are_scim_errors() {
    let dir = data_dir();
    // A second tenant made with the CLI before the server starts.
    lockstep_json(dir.path(), &["tenant", "create", "zinc"]);
    let zinc = lockstep_json(dir.path(), &["token", "issue", "zinc", "--label", "zinc"]);
    let zinc_token = zinc["token"].as_str().unwrap_or_default().to_string();
    let runner = serve(dir.path(), &[]);
    let token = runner.token();
    let base = runner.base_url();

    let missing = runner.request("GET", "/Users", None, None, &[]);
    assert_scim_error(&missing, 401, None);
    assert_eq!(missing.header("www-authenticate"), "Bearer realm=\"scim\"");
    assert_scim_error(&runner.request("GET", "/Users", Some("lst_wrong"), None, &[]), 401, None);
    assert_scim_error(&runner.request("GET", "/Users", Some(&zinc_token), None, &[]), 401, None);
    let zinc_base = base.replace("/default/", "/zinc/");
    assert_eq!(runner.request("GET", &format!("{zinc_base}/Users"), Some(&zinc_token), None, &[]).status, 200);
    assert_scim_error(
        &runner.request("GET", &format!("{}/nope/scim/v2/Users", origin(&base)), Some(&token), None, &[]),
        401,
        None,
    );

    assert_scim_error(
        &runner.request("GET", &format!("{}/elsewhere", origin(&base)), Some(&token), None, &[]),
        404,
        None,
    );
    assert_scim_error(&runner.request("DELETE", "/Users", Some(&token), None, &[]), 405, None);
    assert_scim_error(&runner.request("POST", "/Bulk", Some(&token), Some("{}"), &[]), 501, None);
    assert_scim_error(&runner.request("GET", "/Me", Some(&token), None, &[]), 501, None);
    assert_scim_error(
        &runner.request(
            "POST",
            "/Users",
            Some(&token),
            Some("userName=x"),
            &[("Content-Type", "application/x-www-form-urlencoded")],
        ),
        415,
        None,
    );
    // application/json is as good as application/scim+json.
    let plain_json = runner.request(
        "POST",
        "/Users",
        Some(&token),
        Some(r#"{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"json@example.com"}"#),
        &[("Content-Type", "application/json")],
    );
    assert_eq!(plain_json.status, 201, "{}", plain_json.body);
    let big = format!(r#"{{"userName":"{}"}}"#, "x".repeat(2 << 20));
    assert_scim_error(&runner.request("POST", "/Users", Some(&token), Some(&big), &[]), 413, None);
    assert_scim_error(
        &runner.request("POST", "/Users", Some(&token), Some("{\"userName\":"), &[]),
        400,
        Some("invalidSyntax"),
    );
    assert_scim_error(&runner.request("POST", "/Users", Some(&token), Some("{}"), &[]), 400, Some("invalidValue"));
    assert_scim_error(
        &runner.request("GET", "/Users?filter=userName%20eq", Some(&token), None, &[]),
        400,
        Some("invalidFilter"),
    );
    assert_scim_error(
        &runner.request("GET", "/Users?filter=nope%20eq%20%22x%22", Some(&token), None, &[]),
        400,
        Some("invalidFilter"),
    );

    // If-Match with a stale version: 412, and nothing changed.
    let id = id_of(&plain_json);
    let patch = json!({ "schemas": [PATCH_OP], "Operations": [{ "op": "replace", "path": "displayName", "value": "Changed" }] }).to_string();
    let stale =
        runner.request("PATCH", &format!("/Users/{id}"), Some(&token), Some(&patch), &[("If-Match", "W/\"999\"")]);
    assert_scim_error(&stale, 412, None);
    assert!(runner.call("GET", &format!("/Users/{id}"), None).body.get("displayName").is_none(), "nothing was written");
    let current = plain_json.header("etag").to_string();
    let fresh = runner.request("PATCH", &format!("/Users/{id}"), Some(&token), Some(&patch), &[("If-Match", &current)]);
    assert_eq!((fresh.status, fresh.body["displayName"].clone()), (200, json!("Changed")));

    // A bad PATCH leaves the resource as it was.
    let bad = json!({ "schemas": [PATCH_OP], "Operations": [
        { "op": "replace", "path": "displayName", "value": "Half" },
        { "op": "replace", "path": "userName", "value": null }
    ]})
    .to_string();
    assert_scim_error(&runner.request("PATCH", &format!("/Users/{id}"), Some(&token), Some(&bad), &[]), 400, None);
    assert_eq!(runner.call("GET", &format!("/Users/{id}"), None).body["displayName"], "Changed");
}

/// The local runner's promises: a tenant and token on first start only,
/// data that survives a crash, and the operator commands around it.
/// Clients reuse connections (Entra and Okta both keep them alive). A
/// refusal that answers before the request's body has arrived must not
/// leave that body to be read as the next request, nor close a connection
/// the client is about to reuse. A body over the limit is read and dropped,
/// then refused with 413 on a connection that stays usable; only one too
/// large to read (or awaiting `100 Continue`) is refused at once, closing.
#[test]
fn refusals_leave_kept_alive_connections_usable() {
    let dir = data_dir();
    let runner = serve(dir.path(), &[]);
    let (base, token) = (runner.base_url(), runner.token());
    let (host, path) = (origin(&base).trim_start_matches("http://").to_string(), url_path(&base));
    let (mut writer, mut reader) = connect(&host);
    let body = r#"{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"late@example.com"}"#;

    for (method, route, bearer, status) in [
        ("POST", "/Bulk", token.as_str(), 501),
        ("POST", "/Users", "lst_wrong", 401),
        ("PUT", "/Nowhere", token.as_str(), 404),
        ("DELETE", "/Users", token.as_str(), 405),
        ("POST", "/Users", token.as_str(), 201),
    ] {
        let head = format!(
            "{method} {path}{route} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {bearer}\r\n\
             Content-Type: application/scim+json\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        writer.write_all(head.as_bytes()).unwrap_or_else(|e| panic!("{e}"));
        writer.flush().unwrap_or_else(|e| panic!("{e}"));
        // The body follows the headers late, as over a slow network.
        std::thread::sleep(Duration::from_millis(50));
        writer.write_all(body.as_bytes()).unwrap_or_else(|e| panic!("{e}"));
        let (got, headers, text) = read_response(&mut reader);
        assert_eq!(got, status, "{method} {route}: {text}");
        assert!(
            !headers.iter().any(|(k, v)| k == "connection" && v.eq_ignore_ascii_case("close")),
            "{method} {route} closed the connection"
        );
    }
    let list_request = format!(
        "GET {path}/Users?filter=userName%20eq%20%22late@example.com%22 HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {token}\r\n\r\n"
    );
    writer.write_all(list_request.as_bytes()).unwrap_or_else(|e| panic!("{e}"));
    let (got, _, text) = read_response(&mut reader);
    assert_eq!(got, 200, "{text}");
    let list: Value = serde_json::from_str(&text).unwrap_or_default();
    assert_eq!(list["totalResults"], 1, "exactly the one create went through: {text}");

    let over_limit = format!(r#"{{"userName":"{}"}}"#, "x".repeat(2 << 20));
    let head = format!(
        "POST {path}/Users HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/scim+json\r\nContent-Length: {}\r\n\r\n",
        over_limit.len()
    );
    writer.write_all(head.as_bytes()).unwrap_or_else(|e| panic!("{e}"));
    writer.write_all(over_limit.as_bytes()).unwrap_or_else(|e| panic!("sending the whole over-limit body: {e}"));
    let (got, headers, text) = read_response(&mut reader);
    assert_eq!(got, 413, "{text}");
    assert!(!headers.iter().any(|(k, _)| k == "connection"), "{headers:?}");
    writer.write_all(list_request.as_bytes()).unwrap_or_else(|e| panic!("{e}"));
    let (got, _, text) = read_response(&mut reader);
    assert_eq!(got, 200, "the connection is still usable after the 413: {text}");

    for extra in ["Content-Length: 67108864\r\n", "Content-Length: 2097152\r\nExpect: 100-continue\r\n"] {
        let (mut writer, mut reader) = connect(&host);
        let head = format!(
            "POST {path}/Users HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {token}\r\n\
             Content-Type: application/scim+json\r\n{extra}\r\n"
        );
        writer.write_all(head.as_bytes()).unwrap_or_else(|e| panic!("{e}"));
        let (got, headers, text) = read_response(&mut reader);
        assert_eq!(got, 413, "{extra}: answered before any of the body is sent: {text}");
        assert!(headers.iter().any(|(k, v)| k == "connection" && v.eq_ignore_ascii_case("close")), "{headers:?}");
    }
}

/// The host:port and SCIM base path of a runner, for raw connections.
fn raw_target(runner: &Runner) -> (String, String) {
    let base = runner.base_url();
    (origin(&base).trim_start_matches("http://").to_string(), url_path(&base))
}

/// Whether the server closed the connection (EOF or reset) within `limit`.
fn closed_within(reader: &mut BufReader<TcpStream>, limit: Duration) -> bool {
    reader.get_ref().set_read_timeout(Some(limit)).unwrap_or_else(|e| panic!("{e}"));
    let mut byte = [0u8; 1];
    match reader.read(&mut byte) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) => !matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut),
    }
}

fn assert_raw_scim_error(what: &str, response: (u16, Vec<(String, String)>, String), status: u16) {
    let (got, headers, body) = response;
    assert_eq!(got, status, "{what}: {body}");
    assert!(headers.iter().any(|(k, v)| k == "content-type" && v == "application/scim+json"), "{what}: {headers:?}");
    let body: Value = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{what}: not JSON ({e}): {body}"));
    assert_eq!(body["schemas"], json!([ERROR]), "{what}: {body}");
    assert_eq!(body["status"], json!(status.to_string()), "{what}: {body}");
}

/// Resident memory of a process, in KiB.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// What a hostile client can do to the local runner's connections, which
/// the README suggests exposing through a tunnel: slow heads and idle
/// connections are closed, connections over the cap get 503 (not silence),
/// nobody without a token makes it hold request bodies, and malformed or
/// ambiguous HTTP gets a SCIM error.
#[test]
fn hostile_connections_are_bounded() {
    let dir = data_dir();
    let runner = serve(dir.path(), &["--header-timeout", "1"]);
    let (host, path) = raw_target(&runner);
    let token = runner.token();

    // A head sent one byte at a time is cut off after the header timeout,
    // long before it is complete (the whole head would take 30 s).
    let (mut writer, mut reader) = connect(&host);
    let started = std::time::Instant::now();
    let head =
        format!("GET {path}/ServiceProviderConfig HTTP/1.1\r\nHost: {host}\r\nX-Pad: {}\r\n\r\n", "p".repeat(60));
    let mut cut_off = false;
    for b in head.as_bytes() {
        if writer.write_all(std::slice::from_ref(b)).is_err() {
            cut_off = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(250));
        if started.elapsed() > Duration::from_secs(6) {
            break;
        }
    }
    assert!(cut_off || closed_within(&mut reader, Duration::from_secs(2)), "a slow head was not cut off");
    assert!(started.elapsed() < Duration::from_secs(8), "cut off after {:?}", started.elapsed());

    // An idle kept-alive connection is closed after the same timeout.
    let (mut writer, mut reader) = connect(&host);
    let get =
        format!("GET {path}/ServiceProviderConfig HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {token}\r\n\r\n");
    writer.write_all(get.as_bytes()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(read_response(&mut reader).0, 200);
    let idle = std::time::Instant::now();
    assert!(closed_within(&mut reader, Duration::from_secs(5)), "an idle connection stayed open");
    assert!(idle.elapsed() < Duration::from_secs(4), "closed after {:?}", idle.elapsed());

    // Malformed, ambiguous or oversized heads: SCIM errors, then close.
    let long_filter = format!("userName eq \"{}\"", "a".repeat(64 * 1024));
    let long_url = format!("{path}/Users?filter={}", long_filter.replace(' ', "%20").replace('"', "%22"));
    let big_headers: String = (0..40).map(|i| format!("X-Big-{i}: {}\r\n", "h".repeat(1000))).collect();
    for (what, request, status) in [
        (
            "Content-Length with Transfer-Encoding",
            format!(
                "POST {path}/Users HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {token}\r\n\
                 Content-Type: application/scim+json\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
            ),
            400,
        ),
        ("HTTP/1.1 without Host", format!("GET {path}/Users HTTP/1.1\r\nAuthorization: Bearer {token}\r\n\r\n"), 400),
        (
            "a 64 KB URL",
            format!("GET {long_url} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {token}\r\n\r\n"),
            414,
        ),
        ("40 KB of headers", format!("GET {path}/Users HTTP/1.1\r\nHost: {host}\r\n{big_headers}\r\n"), 431),
        ("a garbage request line", "HELLO THERE\r\n\r\n".to_string(), 400),
        ("a bad header line", format!("GET {path}/Users HTTP/1.1\r\nHost: {host}\r\nNo Colon Here\r\n\r\n"), 400),
        (
            "two Authorization headers",
            format!(
                "GET {path}/Users HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {token}\r\nAuthorization: Bearer x\r\n\r\n"
            ),
            400,
        ),
        (
            "an id that is not UTF-8",
            format!("GET {path}/Users/%ff%fe HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {token}\r\n\r\n"),
            400,
        ),
    ] {
        let (mut writer, mut reader) = connect(&host);
        writer.write_all(request.as_bytes()).unwrap_or_else(|e| panic!("{what}: {e}"));
        assert_raw_scim_error(what, read_response(&mut reader), status);
    }

    // An unauthenticated large body is not waited for: the 401 comes at
    // once and the connection closes.
    let (mut writer, mut reader) = connect(&host);
    let head = format!(
        "POST {path}/Users HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/scim+json\r\nContent-Length: 1000000\r\n\r\n"
    );
    writer.write_all(head.as_bytes()).unwrap_or_else(|e| panic!("{e}"));
    let (status, headers, _) = read_response(&mut reader);
    assert_eq!(status, 401);
    assert!(headers.iter().any(|(k, v)| k == "connection" && v == "close"), "{headers:?}");

    // 200 nearly complete unauthenticated 1 MB bodies do not make the
    // server hold them.
    let pid = runner.child.id();
    let before = rss_kib(pid);
    let mut held = Vec::new();
    for _ in 0..200 {
        let Ok(mut stream) = TcpStream::connect(&host) else { continue };
        let _ = stream.write_all(head.as_bytes());
        let _ = stream.set_write_timeout(Some(Duration::from_millis(200)));
        let _ = stream.write_all(&vec![b'x'; 999_000]);
        held.push(stream);
    }
    std::thread::sleep(Duration::from_millis(300));
    let grown_mib = rss_kib(pid).saturating_sub(before) / 1024;
    drop(held);
    assert!(grown_mib < 48, "memory grew by {grown_mib} MiB for 200 unauthenticated bodies");
    drop(runner);

    // Connections over the cap are answered 503 with Retry-After.
    let dir = data_dir();
    let runner = serve(dir.path(), &["--max-connections", "3"]);
    let (host, path) = raw_target(&runner);
    let token = runner.token();
    let idle: Vec<_> = (0..3).map(|_| connect(&host)).collect();
    std::thread::sleep(Duration::from_millis(200));
    let (_writer, mut reader) = connect(&host);
    let (status, headers, body) = read_response(&mut reader);
    assert_eq!(status, 503, "{body}");
    assert!(headers.iter().any(|(k, v)| k == "retry-after" && v == "1"), "{headers:?}");
    assert_raw_scim_error("over the cap", (status, headers, body), 503);
    drop(idle);
    std::thread::sleep(Duration::from_millis(300));
    let (mut writer, mut reader) = connect(&host);
    let get =
        format!("GET {path}/ServiceProviderConfig HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {token}\r\n\r\n");
    writer.write_all(get.as_bytes()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(read_response(&mut reader).0, 200, "served again once connections closed");

    // The store and the token file are the owner's alone.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        for file in ["store.redb", "issued-token"] {
            let mode = std::fs::metadata(dir.path().join(file)).map(|m| m.permissions().mode() & 0o777);
            assert_eq!(mode.ok(), Some(0o600), "{file}");
        }
    }
}

/// A connection from another loopback address (`127.0.0.2`): another peer.
fn connect_from(local: &str, host: &str) -> (TcpStream, BufReader<TcpStream>) {
    let rt = tokio::runtime::Builder::new_current_thread().enable_io().build().unwrap_or_else(|e| panic!("{e}"));
    let stream = rt
        .block_on(async {
            let socket = tokio::net::TcpSocket::new_v4()?;
            socket.bind(format!("{local}:0").parse().map_err(std::io::Error::other)?)?;
            socket.connect(host.parse().map_err(std::io::Error::other)?).await
        })
        .unwrap_or_else(|e| panic!("connecting from {local}: {e}"));
    let stream = stream.into_std().unwrap_or_else(|e| panic!("{e}"));
    stream.set_nonblocking(false).unwrap_or_else(|e| panic!("{e}"));
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap_or_else(|e| panic!("{e}"));
    let writer = stream.try_clone().unwrap_or_else(|e| panic!("{e}"));
    (writer, BufReader::new(stream))
}

/// One address cannot take every connection; a new connection that sends
/// nothing is closed sooner than a kept-alive one; framing and codings
/// the server does not take are refused at once; and every refusal at the
/// connection level is counted in an aggregated log line.
#[test]
fn connections_are_shared_fairly_and_refusals_are_logged() {
    let dir = data_dir();
    let runner = serve(
        dir.path(),
        &[
            "--max-connections-per-peer",
            "4",
            "--first-byte-timeout",
            "1",
            "--header-timeout",
            "5",
            "--connection-report-secs",
            "1",
        ],
    );
    let (host, path) = raw_target(&runner);
    let token = runner.token();
    let get =
        format!("GET {path}/ServiceProviderConfig HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {token}\r\n\r\n");

    // Four idle connections hold this address's places: a fifth is 503,
    // while another address is served.
    let idle: Vec<_> = (0..4).map(|_| connect(&host)).collect();
    std::thread::sleep(Duration::from_millis(200));
    let (_writer, mut reader) = connect(&host);
    let refused = read_response(&mut reader);
    assert!(refused.2.contains("this address"), "{}", refused.2);
    assert_raw_scim_error("over the per-address limit", refused, 503);
    let (mut writer, mut reader) = connect_from("127.0.0.2", &host);
    writer.write_all(get.as_bytes()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(read_response(&mut reader).0, 200, "another address is served meanwhile");

    // The idle ones are closed after the first-byte timeout (1 s), not the
    // header timeout (5 s), and the address may connect again.
    let started = std::time::Instant::now();
    let mut idle = idle;
    for (_, reader) in &mut idle {
        assert!(closed_within(reader, Duration::from_secs(4)), "a silent new connection stayed open");
    }
    assert!(started.elapsed() < Duration::from_secs(3), "closed after {:?}", started.elapsed());
    drop(idle);
    // A kept-alive connection may stay idle longer than that.
    let (mut writer, mut reader) = connect(&host);
    writer.write_all(get.as_bytes()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(read_response(&mut reader).0, 200);
    std::thread::sleep(Duration::from_millis(2000));
    writer.write_all(get.as_bytes()).unwrap_or_else(|e| panic!("kept-alive connection closed: {e}"));
    assert_eq!(read_response(&mut reader).0, 200, "a kept-alive connection idle for 2 s is still open");

    // Framing and codings: each refused at once, as a SCIM error.
    let post = |extra: &str, body: &str| {
        format!(
            "POST {path}/Users HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {token}\r\n\
             Content-Type: application/scim+json\r\n{extra}\r\n{body}"
        )
    };
    for (what, request, status) in [
        (
            "a head with bare LF line ends",
            format!("GET {path}/Users HTTP/1.1\nHost: {host}\nAuthorization: Bearer {token}\n\n"),
            400,
        ),
        ("Transfer-Encoding: chunked, chunked", post("Transfer-Encoding: chunked, chunked\r\n", "0\r\n\r\n"), 400),
        ("Transfer-Encoding: gzip, chunked", post("Transfer-Encoding: gzip, chunked\r\n", "0\r\n\r\n"), 400),
        ("a chunk larger than the body limit", post("Transfer-Encoding: chunked\r\n", "10000000\r\n{"), 413),
        ("Content-Encoding: gzip", post("Content-Encoding: gzip\r\nContent-Length: 2\r\n", "{}"), 415),
    ] {
        let (mut writer, mut reader) = connect(&host);
        let started = std::time::Instant::now();
        writer.write_all(request.as_bytes()).unwrap_or_else(|e| panic!("{what}: {e}"));
        assert_raw_scim_error(what, read_response(&mut reader), status);
        assert!(started.elapsed() < Duration::from_secs(2), "{what}: answered after {:?}", started.elapsed());
    }

    // The refusals are in the log, aggregated per interval.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    let mut counted = Value::Null;
    while std::time::Instant::now() < deadline {
        let logs = runner.logs.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let lines: Vec<Value> = logs
            .iter()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|v| v["message"] == "connections refused or timed out")
            .collect();
        if let Some(last) = lines.last() {
            counted = serde_json::from_str(last["totals"].as_str().unwrap_or("null")).unwrap_or(Value::Null);
            if counted["head_refused"].as_u64() >= Some(4) && counted["first_byte_timeout"].as_u64() >= Some(4) {
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(counted["over_peer_limit"].as_u64() >= Some(1), "{counted}");
    assert!(counted["first_byte_timeout"].as_u64() >= Some(4), "{counted}");
    assert!(counted["head_refused"].as_u64() >= Some(4), "{counted}");
}

/// A delete cut off between removing the user and removing its
/// memberships (a crash) is finished when the runner starts again, before
/// any request sees the group.
#[test]
fn the_runner_finishes_unfinished_deletes_at_start() {
    use lockstep_core::model;
    use lockstep_core::store::{Cond, Item, Table, Write};
    let dir = data_dir();
    let (user, group) = {
        let runner = serve(dir.path(), &["--job-interval", "off"]);
        let user = id_of(&runner.call("POST", "/Users", Some(json!({ "schemas": [USER], "userName": "cut@x.io" }))));
        let group = runner.call(
            "POST",
            "/Groups",
            Some(json!({ "schemas": [GROUP], "displayName": "Cut", "members": [{ "value": user }] })),
        );
        (user, id_of(&group))
    };
    // What a crash after the delete's first transaction leaves: no user, a
    // sweep marker, and the membership entries both ways.
    let rt = tokio::runtime::Builder::new_current_thread().build().unwrap_or_else(|e| panic!("{e}"));
    rt.block_on(async {
        let table =
            lockstep_embedded::EmbeddedTable::open(&dir.path().join("store.redb")).unwrap_or_else(|e| panic!("{e}"));
        let marker = model::sweep("default", lockstep_core::Kind::User, &user);
        let writes = vec![
            Write::Delete { key: model::resource("default", lockstep_core::Kind::User, &user), cond: Cond::Always },
            Write::Put {
                item: Item {
                    pk: marker.pk,
                    sk: marker.sk,
                    version: 1,
                    data: r#"{"at":0,"clear_members":false}"#.into(),
                    ..Item::default()
                },
                cond: Cond::Always,
            },
        ];
        table.transact(writes).await.unwrap_or_else(|e| panic!("{e}"));
        assert!(table.get(&model::member("default", &group, &user)).await.ok().flatten().is_some());
    });
    let runner = serve(dir.path(), &["--job-interval", "off", "--new-token"]);
    let shown = runner.call("GET", &format!("/Groups/{group}"), None);
    assert_eq!(shown.status, 200);
    assert!(member_ids(&shown.body).is_empty(), "{:?}", shown.body);
    drop(runner);
    rt.block_on(async {
        let table =
            lockstep_embedded::EmbeddedTable::open(&dir.path().join("store.redb")).unwrap_or_else(|e| panic!("{e}"));
        assert!(table.get(&model::member("default", &group, &user)).await.ok().flatten().is_none(), "entry left");
        assert!(
            table.get(&model::member_of("default", &user, &group)).await.ok().flatten().is_none(),
            "reverse entry left"
        );
        assert!(table.get(&model::sweep("default", lockstep_core::Kind::User, &user)).await.ok().flatten().is_none());
    });
}

/// Every write the runner acknowledged survives `kill -9` in the middle of
/// a write load.
#[test]
fn acknowledged_writes_survive_kill_9() {
    let dir = data_dir();
    let runner = serve(dir.path(), &[]);
    let (base, token) = (runner.base_url(), runner.token());
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writers: Vec<_> = (0..4)
        .map(|w| {
            let (base, token, stop, agent) = (base.clone(), token.clone(), Arc::clone(&stop), runner.agent.clone());
            std::thread::spawn(move || {
                let mut acknowledged = Vec::new();
                for i in 0.. {
                    if stop.load(std::sync::atomic::Ordering::SeqCst) {
                        break;
                    }
                    let body = json!({ "schemas": [USER], "userName": format!("w{w}-{i}@example.com") }).to_string();
                    let sent = agent
                        .post(format!("{base}/Users"))
                        .header("Authorization", format!("Bearer {token}"))
                        .header("Content-Type", "application/scim+json")
                        .send(body);
                    match sent {
                        Ok(mut r) if r.status().as_u16() == 201 => {
                            let v: Value = serde_json::from_str(&r.body_mut().read_to_string().unwrap_or_default())
                                .unwrap_or_default();
                            acknowledged.push(v["id"].as_str().unwrap_or_default().to_string());
                        }
                        _ => break, // the server is gone
                    }
                }
                acknowledged
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(1500));
    let mut runner = runner;
    runner.child.kill().unwrap_or_else(|e| panic!("{e}")); // SIGKILL, mid-write
    let _ = runner.child.wait();
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let acknowledged: Vec<String> = writers.into_iter().flat_map(|w| w.join().unwrap_or_default()).collect();
    assert!(acknowledged.len() > 20, "the load made only {} writes", acknowledged.len());
    drop(runner);

    let restarted = serve(dir.path(), &[]);
    for id in &acknowledged {
        let r = restarted.request("GET", &format!("/Users/{id}"), Some(&token), None, &[]);
        assert_eq!(r.status, 200, "acknowledged user {id} was lost: {}", r.body);
    }
}

#[test]
fn local_runner_keeps_data_and_tokens_across_restarts() {
    let dir = data_dir();
    let first = serve(dir.path(), &[]);
    let token = first.token();
    assert_eq!(first.banner["tenant"], "default");
    let created = first.call("POST", "/Users", Some(json!({ "schemas": [USER], "userName": "kept@example.com" })));
    assert_eq!(created.status, 201);
    // While it runs, the store is in use and the CLI says so.
    let (ok, _, err) = lockstep(dir.path(), &["tenant", "list"]);
    assert!(!ok && err.contains("in use"), "{err}");
    drop(first); // SIGKILL: no clean shutdown

    let second = serve(dir.path(), &[]);
    assert_eq!(second.banner["token"], Value::Null, "no new token on later starts");
    let found =
        second.request("GET", "/Users?filter=userName%20eq%20%22kept%40example.com%22", Some(&token), None, &[]);
    assert_eq!(found.body["totalResults"], 1, "{}", found.body);
    drop(second);

    let third = serve(dir.path(), &["--new-token"]);
    let new_token = third.token();
    assert_ne!(new_token, token);
    for t in [&token, &new_token] {
        assert_eq!(third.request("GET", "/Users", Some(t), None, &[]).status, 200);
    }
    drop(third);

    // Tokens: list shows metadata only; revoke takes effect on next start.
    let listed = lockstep_json(dir.path(), &["token", "list", "default"]);
    let tokens = listed["tokens"].as_array().cloned().unwrap_or_default();
    assert_eq!(tokens.len(), 2);
    assert!(!listed.to_string().contains(&token) && !listed.to_string().contains("hash"));
    let first_id = tokens[0]["id"].as_str().unwrap_or_default().to_string();
    lockstep_json(dir.path(), &["token", "revoke", "default", &first_id]);
    let restricted = lockstep_json(
        dir.path(),
        &["token", "issue", "default", "--label", "office", "--allow", "203.0.113.0/24", "--expires", "30d"],
    );
    let restricted_token = restricted["token"].as_str().unwrap_or_default().to_string();
    assert!(restricted["metadata"]["expires"].is_string());
    let fourth = serve(dir.path(), &[]);
    assert_eq!(fourth.request("GET", "/Users", Some(&token), None, &[]).status, 401, "revoked");
    assert_eq!(fourth.request("GET", "/Users", Some(&new_token), None, &[]).status, 200);
    assert_scim_error(&fourth.request("GET", "/Users", Some(&restricted_token), None, &[]), 403, None);
}

#[test]
fn operator_commands_on_the_local_store() {
    let dir = data_dir();
    let created = lockstep_json(
        dir.path(),
        &[
            "--public-url",
            "https://scim.example.com/",
            "tenant",
            "create",
            "acme",
            "--name",
            "Acme Corp",
            "--set",
            "deactivation=remove_from_groups",
        ],
    );
    assert_eq!(created["base_url"], "https://scim.example.com/acme/scim/v2");
    assert_eq!(created["tenant"]["settings"]["deactivation"], "remove_from_groups");

    let (ok, _, err) = lockstep(dir.path(), &["tenant", "create", "acme"]);
    assert!(!ok && err.contains("already exists"), "{err}");
    let (ok, _, err) = lockstep(dir.path(), &["tenant", "create", "Not Valid"]);
    assert!(!ok && err.contains("not a valid tenant id"), "{err}");
    let (ok, _, err) = lockstep(dir.path(), &["token", "issue", "ghost"]);
    assert!(!ok && err.contains("no tenant 'ghost'"), "{err}");
    let (ok, _, err) = lockstep(dir.path(), &["token", "issue", "acme", "--allow", "not-an-ip"]);
    assert!(!ok && err.contains("not-an-ip"), "{err}");

    let listed = lockstep_json(dir.path(), &["tenant", "list"]);
    assert_eq!(listed["tenants"], json!(["acme"]));

    let set =
        lockstep_json(dir.path(), &["settings", "set", "acme", "user_name_must_be_email=true", "retention_days=30"]);
    assert_eq!((set["user_name_must_be_email"].clone(), set["retention_days"].clone()), (json!(true), json!(30)));
    let (ok, _, err) = lockstep(dir.path(), &["settings", "set", "acme", "colour=blue"]);
    assert!(!ok && err.contains("no setting 'colour'"), "{err}");
    let shown = lockstep_json(dir.path(), &["settings", "show", "acme"]);
    assert_eq!(shown["deactivation"], "remove_from_groups");

    // Text output, for people.
    let (ok, text, _) = lockstep(dir.path(), &["token", "issue", "acme", "--label", "entra-prod"]);
    assert!(ok && text.contains("Secret Token: lst_") && text.contains("not shown again"), "{text}");
    let (ok, text, _) = lockstep(dir.path(), &["tenant", "show", "acme"]);
    assert!(ok && text.contains("Acme Corp") && text.contains("tokens:        1"), "{text}");

    // The settings apply to the running service: userName must be an email.
    let runner = serve(dir.path(), &["--tenant", "acme", "--new-token"]);
    let refused = runner.call("POST", "/Users", Some(json!({ "schemas": [USER], "userName": "not-an-email" })));
    assert_scim_error(&refused, 400, Some("invalidValue"));
}

/// The lifecycle through the operator CLI: what the directory deleted is
/// listed with when and why, a user is restored, groups are unlinked and
/// deleted, a purge is shown then done, and `serve` runs the scheduled job
/// in-process.
#[test]
fn lifecycle_commands_and_the_in_process_job() {
    let dir = data_dir();
    let settings = ["--set", "retention_days=0", "--set", "keep_groups_deleted_by_directory=true"];
    lockstep_json(dir.path(), &[&["tenant", "create", "acme"][..], &settings[..]].concat());
    let (ada, bob, sales, support) = {
        let runner = serve(dir.path(), &["--tenant", "acme", "--new-token", "--job-interval", "off"]);
        let user =
            |name: &str| id_of(&runner.call("POST", "/Users", Some(json!({ "schemas": [USER], "userName": name }))));
        let (ada, bob) = (user("ada@acme.example"), user("bob@acme.example"));
        let group = |name: &str| {
            let body =
                json!({ "schemas": [GROUP], "displayName": name, "members": [{ "value": ada }, { "value": bob }] });
            id_of(&runner.call("POST", "/Groups", Some(body)))
        };
        let (sales, support) = (group("Sales"), group("Support"));
        assert_eq!(runner.call("DELETE", &format!("/Users/{ada}"), None).status, 204);
        assert_eq!(runner.call("DELETE", &format!("/Groups/{sales}"), None).status, 204);
        assert_eq!(runner.call("GET", &format!("/Users/{ada}"), None).status, 404);
        (ada, bob, sales, support)
    };

    let users = lockstep_json(dir.path(), &["users", "list", "acme"]);
    let state = |list: &Value, id: &str| {
        list["resources"].as_array().into_iter().flatten().find(|r| r["id"] == id).map(|r| r["state"].clone())
    };
    assert_eq!(state(&users, &ada), Some(json!("deleted")), "{users}");
    assert_eq!(state(&users, &bob), Some(json!("active")));
    let (ok, text, _) = lockstep(dir.path(), &["users", "show", "acme", &ada]);
    assert!(ok && text.contains("deleted by the directory") && text.contains("purged after"), "{text}");
    let groups = lockstep_json(dir.path(), &["groups", "list", "acme"]);
    assert_eq!(state(&groups, &sales), Some(json!("unlinked")), "kept after the directory deleted it: {groups}");

    let restored = lockstep_json(dir.path(), &["user", "restore", "acme", &ada]);
    assert_eq!((restored["id"].as_str(), restored["state"].as_str()), (Some(ada.as_str()), Some("inactive")));
    let (ok, _, err) = lockstep(dir.path(), &["user", "restore", "acme", &ada]);
    assert!(!ok && err.contains("no deleted user"), "{err}");
    lockstep_json(dir.path(), &["group", "unlink", "acme", &support]);
    let (ok, text, _) = lockstep(dir.path(), &["groups", "show", "acme", &support]);
    assert!(ok && text.contains("unlinked by an operator") && text.contains("kept"), "{text}");
    lockstep_json(dir.path(), &["group", "delete", "acme", &support]);
    let (ok, _, err) = lockstep(dir.path(), &["group", "delete", "acme", &bob]);
    assert!(!ok && err.contains("no kept or unlinked group"), "{err}");

    let (ok, _, err) = lockstep(dir.path(), &["purge", "acme"]);
    assert!(!ok && err.contains("--dry-run"), "purge says which mode: {err}");
    let due = lockstep_json(dir.path(), &["purge", "acme", "--dry-run"]);
    assert_eq!(due["due"], json!([{ "kind": "Group", "id": sales }]), "kept 0 days");
    assert_eq!(
        lockstep_json(dir.path(), &["purge", "acme", "--dry-run"])["due"],
        due["due"],
        "a dry run changes nothing"
    );
    let purged = lockstep_json(dir.path(), &["purge", "acme", "--now"]);
    assert_eq!((purged["purged_groups"].clone(), purged["purged_users"].clone()), (json!(1), json!(0)));

    // `serve` runs the job in-process: a deleted user, kept 0 days, goes.
    {
        let runner = serve(dir.path(), &["--tenant", "acme", "--new-token", "--job-interval", "1s"]);
        assert_eq!(runner.call("DELETE", &format!("/Users/{bob}"), None).status, 204);
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        loop {
            let purged = runner.logs.lock().unwrap_or_else(|e| e.into_inner()).iter().any(|l| {
                serde_json::from_str::<Value>(l).is_ok_and(|v| v["message"] == "job run" && v["PurgedUsers"] == 1)
            });
            if purged {
                break;
            }
            assert!(std::time::Instant::now() < deadline, "no job run purged the user: {:?}", runner.logs);
            std::thread::sleep(Duration::from_millis(200));
        }
    }
    let users = lockstep_json(dir.path(), &["users", "list", "acme"]);
    assert_eq!(state(&users, &bob), None, "purged: {users}");
    let file = std::fs::read(dir.path().join("store.redb")).unwrap_or_else(|e| panic!("{e}"));
    let name = b"bob@acme.example";
    assert!(!file.windows(name.len()).any(|w| w == name), "the purged user is still in the store file");
    let run = lockstep_json(dir.path(), &["job", "run"]);
    assert_eq!(
        (run["tenants"].clone(), run["complete"].clone(), run["failures"].clone()),
        (json!(1), json!(true), json!([]))
    );
}

/// A `lockstep` command with environment variables and standard input:
/// (exit success, stdout, stderr).
fn lockstep_with(data_dir: &Path, args: &[&str], env: &[(&str, &str)], stdin: &str) -> (bool, String, String) {
    let mut child = Command::new(LOCKSTEP)
        .arg("--data-dir")
        .arg(data_dir)
        .args(args)
        .env_remove("LOCKSTEP_BACKEND")
        .envs(env.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("running lockstep: {e}"));
    if let Some(mut input) = child.stdin.take() {
        input.write_all(stdin.as_bytes()).unwrap_or_else(|e| panic!("{e}"));
    }
    let out = child.wait_with_output().unwrap_or_else(|e| panic!("{e}"));
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A `lockstep` command's exit code, stdout and stderr.
fn lockstep_code(data_dir: &Path, args: &[&str], env: &[(&str, &str)]) -> (Option<i32>, String, String) {
    let out = Command::new(LOCKSTEP)
        .arg("--data-dir")
        .arg(data_dir)
        .args(args)
        .env_remove("LOCKSTEP_BACKEND")
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("running lockstep: {e}"));
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The operator's Microsoft Graph commands against a fake identity
/// platform and Graph: connect (the secret on stdin), a full sync, status
/// with the secret's expiry warning, the pull inside `serve`'s job; the
/// secret is in no output and no log line.
#[test]
fn graph_commands_and_the_pull_never_show_the_secret() {
    const SECRET: &str = "Xy7~cli-secret-value-never-printed";
    let runtime = tokio::runtime::Runtime::new().unwrap_or_else(|e| panic!("{e}"));
    let fake = runtime.block_on(lockstep_tests::graph::FakeGraph::start("dir-id", "client-id", SECRET));
    for (i, unit) in ["Oslo", "Aarhus", "Oslo"].iter().enumerate() {
        fake.put_user(lockstep_tests::graph::graph_user(
            &format!("g{i}"),
            "Kari",
            "Nordmann",
            &format!("kari{i}@contoso.com"),
            unit,
            "Nurse",
        ));
    }
    let env = [("GRAPH_LOGIN_URL", fake.url.as_str()), ("GRAPH_API_URL", fake.url.as_str())];
    let dir = data_dir();
    lockstep_json(dir.path(), &["tenant", "create", "acme"]);
    let soon = (time::OffsetDateTime::now_utc() + time::Duration::days(12)).date().to_string();
    let connect = |extra: &[&str], secret: &str| {
        let mut args = vec![
            "graph",
            "connect",
            "acme",
            "--directory-id",
            "dir-id",
            "--client-id",
            "client-id",
            "--secret-expires",
            &soon,
            "--unit",
            "Oslo",
            "--unit",
            "Aarhus",
            "--user-type",
            "Nurse",
        ];
        args.extend_from_slice(extra);
        lockstep_with(dir.path(), &args, &env, secret)
    };
    let (ok, _, err) = connect(&["--unit-field", "department", "--user-types-field", "Department"], SECRET);
    assert!(!ok && err.contains("cannot both come from"), "{err}");
    let (ok, _, err) = connect(&["--unit-field", "department", "--user-types-field", "jobTitle"], "");
    assert!(!ok && err.contains("standard input"), "{err}");
    let hostile = [
        "graph",
        "connect",
        "acme",
        "--directory-id",
        "evil.example/#",
        "--client-id",
        "client-id",
        "--secret-expires",
        "2027-01-01",
        "--unit-field",
        "city",
        "--user-types-field",
        "state",
    ];
    let (ok, _, err) = lockstep_with(dir.path(), &hostile, &env, SECRET);
    assert!(!ok && err.contains("not a Directory (tenant) id"), "an id that would change the token URL: {err}");
    let (ok, out, err) = connect(&["--unit-field", "department", "--user-types-field", "jobTitle"], SECRET);
    assert!(ok, "{err}");
    let mut printed = vec![out, err];

    let (ok, out, err) = lockstep_with(dir.path(), &["--json", "graph", "sync", "acme", "--full"], &env, "");
    assert!(ok, "{err}");
    let run: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    assert_eq!((run["result"].as_str(), run["counts"]["created"].as_u64()), (Some("ok"), Some(3)), "{run}");
    printed.extend([out, err]);
    let (ok, out, err) = lockstep_with(dir.path(), &["graph", "status", "acme"], &env, "");
    assert!(ok && out.contains("Last run: ok") && out.contains("WARNING: the client secret expires in"), "{out}{err}");
    printed.extend([out, err]);
    for args in
        [&["graph", "show", "acme"][..], &["--json", "graph", "show", "acme"], &["--json", "graph", "status", "acme"]]
    {
        let (ok, out, err) = lockstep_with(dir.path(), args, &env, "");
        assert!(ok, "{args:?}: {err}");
        printed.extend([out, err]);
    }
    let users = lockstep_json(dir.path(), &["users", "list", "acme"]);
    assert_eq!(users["resources"].as_array().map(Vec::len), Some(3), "{users}");

    // The pull inside serve's scheduled job: a new Graph user arrives.
    fake.put_user(lockstep_tests::graph::graph_user("g9", "Ola", "Hansen", "ola@contoso.com", "Oslo", "Nurse"));
    {
        let runner = serve_with_env(dir.path(), &["--tenant", "acme", "--new-token", "--job-interval", "1s"], &env);
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        loop {
            let pulled = runner.logs.lock().unwrap_or_else(|e| e.into_inner()).iter().any(|l| {
                serde_json::from_str::<Value>(l).is_ok_and(|v| v["message"] == "graph pull" && v["GraphCreated"] == 1)
            });
            if pulled {
                break;
            }
            assert!(std::time::Instant::now() < deadline, "no pull in serve's job: {:?}", runner.logs);
            std::thread::sleep(Duration::from_millis(200));
        }
        let found = runner.call("GET", "/Users?filter=userName%20eq%20%22ola%40contoso.com%22", None);
        assert_eq!(found.body["totalResults"], 1, "{:?}", found.body);
        let ola = &found.body["Resources"][0];
        let placement = &ola["urn:lockstep:params:scim:schemas:extension:directory:2.0:User"];
        assert_eq!(
            (placement["unit"].as_str(), placement["userTypes"].clone()),
            (Some("Oslo"), json!(["Nurse"])),
            "{ola}"
        );
        assert_eq!((ola["externalId"].as_str(), ola["name"]["familyName"].as_str()), (Some("g9"), Some("Hansen")));
        printed.extend(runner.logs.lock().unwrap_or_else(|e| e.into_inner()).iter().cloned());
    }
    // A user without a last name is skipped and named; `graph list` and
    // `tenant show` mention the connection.
    let mut nameless = lockstep_tests::graph::graph_user("g7", "Solo", "", "solo@contoso.com", "Oslo", "Nurse");
    nameless["surname"] = Value::Null;
    fake.put_user(nameless);
    let (ok, out, err) = lockstep_with(dir.path(), &["graph", "sync", "acme"], &env, "");
    assert!(ok && out.contains("solo@contoso.com: no first name or last name"), "{out}{err}");
    let (ok, out, err) = lockstep_with(dir.path(), &["graph", "status", "acme"], &env, "");
    assert!(ok && out.contains("solo@contoso.com"), "status names the skipped user: {out}{err}");
    let listed = lockstep_json(dir.path(), &["graph", "list"]);
    assert_eq!(
        (listed["connections"][0]["tenant"].as_str(), listed["connections"][0]["enabled"].as_bool()),
        (Some("acme"), Some(true)),
        "{listed}"
    );
    assert_eq!(listed["connections"][0]["last_run"]["result"], json!("ok"), "{listed}");
    let (ok, out, _) = lockstep(dir.path(), &["tenant", "show", "acme"]);
    assert!(ok && out.contains("Graph pull:") && out.contains("enabled"), "{out}");
    printed.push(out);

    // A pull that fails exits non-zero (2), with its report on stdout.
    fake.refuse_tokens_with(Some(7_000_222));
    let (code, out, err) = lockstep_code(dir.path(), &["graph", "sync", "acme"], &env);
    assert_eq!(code, Some(2), "{out}{err}");
    assert!(out.contains("Pull of acme: failed") && out.contains("expired"), "{out}");
    let (code, out, err) = lockstep_code(dir.path(), &["job", "run"], &env);
    assert_eq!(code, Some(2), "a job run with a failed pull: {out}{err}");
    printed.extend([out, err]);
    fake.refuse_tokens_with(None);

    let (ok, _, err) = lockstep_with(dir.path(), &["graph", "disable", "acme"], &env, "");
    assert!(ok, "{err}");
    let (ok, _, err) = lockstep_with(dir.path(), &["graph", "sync", "acme"], &env, "");
    assert!(!ok && err.contains("disabled"), "{err}");
    for text in &printed {
        assert!(!text.contains(SECRET), "the secret was printed: {text}");
    }
}

/// The origin (`http://127.0.0.1:port`) of a URL.
fn origin(url: &str) -> String {
    let after_scheme = url.find("://").map_or(0, |i| i + 3);
    let end = url[after_scheme..].find('/').map_or(url.len(), |i| after_scheme + i);
    url[..end].to_string()
}

fn url_path(url: &str) -> String {
    url[origin(url).len()..].to_string()
}

/// One HTTP/1.1 response read off a kept-alive connection: status, headers
/// (lowercase names) and body.
fn read_response(reader: &mut BufReader<TcpStream>) -> (u16, Vec<(String, String)>, String) {
    let mut status_line = String::new();
    reader.read_line(&mut status_line).unwrap_or_else(|e| panic!("reading the status line: {e}"));
    let status = status_line.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).unwrap_or_else(|e| panic!("reading headers: {e}"));
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((k, v)) = line.split_once(':') {
            headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
        }
    }
    let length = headers.iter().find(|(k, _)| k == "content-length").and_then(|(_, v)| v.parse().ok()).unwrap_or(0);
    let mut body = vec![0u8; length];
    reader.read_exact(&mut body).unwrap_or_else(|e| panic!("reading the body: {e}"));
    (status, headers, String::from_utf8_lossy(&body).into_owned())
}

/// A connection to `host`, as a writer and a buffered reader of one socket.
fn connect(host: &str) -> (TcpStream, BufReader<TcpStream>) {
    let stream = TcpStream::connect(host).unwrap_or_else(|e| panic!("{host}: {e}"));
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap_or_else(|e| panic!("{e}"));
    let writer = stream.try_clone().unwrap_or_else(|e| panic!("{e}"));
    (writer, BufReader::new(stream))
}

/// One raw HTTP/1.1 exchange, for requests a client library would dress up.
fn raw_http(url: &str, request: &str) -> String {
    let (mut writer, mut reader) = connect(origin(url).trim_start_matches("http://"));
    writer.write_all(request.as_bytes()).unwrap_or_else(|e| panic!("{e}"));
    let mut response = String::new();
    let _ = reader.read_to_string(&mut response);
    response
}

/// One request to a router in-process: (status, headers, JSON body).
async fn call(
    router: axum::Router,
    token: &str,
    method: &str,
    body: Option<String>,
) -> (u16, axum::http::HeaderMap, Value) {
    use http_body_util::BodyExt;
    use tower::ServiceExt;
    let request = axum::http::Request::builder()
        .method(method)
        .uri("/acme/scim/v2/Users")
        .header("host", "scim.example.com")
        .header("authorization", format!("Bearer {token}"))
        .header("content-type", "application/scim+json")
        .body(axum::body::Body::from(body.unwrap_or_default()))
        .unwrap_or_else(|e| panic!("{e}"));
    let response = router.oneshot(request).await.unwrap_or_else(|e| match e {});
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let bytes = response.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
    (status, headers, serde_json::from_slice::<Value>(&bytes).unwrap_or(Value::Null))
}

/// The operator CLI against a deployment (DynamoDB and Secrets Manager on
/// the emulator, reached through the SDK's standard endpoint override), and
/// the users routes serving the tenant and token the CLI made, from the
/// same table and secret.
#[tokio::test(flavor = "multi_thread")]
async fn cli_on_aws_then_a_function_serves_its_tenant_and_token() {
    let mut stack = lockstep_tests::emulated_stack().await;
    stack.push(("PUBLIC_URL".to_string(), "https://scim.example.com".to_string()));
    let aws = |args: &[&str]| -> (bool, String, String) {
        let out = Command::new(LOCKSTEP)
            .args(["--backend", "aws"])
            .args(args)
            .env_clear()
            .envs(stack.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .output()
            .unwrap_or_else(|e| panic!("running lockstep: {e}"));
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let aws_json = |args: &[&str]| -> Value {
        let mut all = vec!["--json"];
        all.extend_from_slice(args);
        let (ok, out, err) = aws(&all);
        assert!(ok, "lockstep --backend aws {args:?}: {err}");
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"))
    };

    let created = aws_json(&["tenant", "create", "acme", "--name", "Acme"]);
    assert_eq!(created["base_url"], "https://scim.example.com/acme/scim/v2");
    let issued = aws_json(&["token", "issue", "acme", "--label", "entra-prod", "--expires", "365d"]);
    let token = issued["token"].as_str().unwrap_or_default().to_string();
    assert!(token.starts_with("lst_"));
    let (ok, text, _) = aws(&["token", "list", "acme"]);
    assert!(ok && text.contains("entra-prod") && !text.contains(&token), "{text}");
    // Only the hash is in the secret.
    let prefix = stack.iter().find(|(k, _)| k == "TOKEN_SECRET_PREFIX").map(|(_, v)| v.clone()).unwrap_or_default();
    let secret = lockstep_tests::secrets_client()
        .get_secret_value()
        .secret_id(format!("{prefix}acme"))
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e:?}"));
    let stored = secret.secret_string().unwrap_or_default();
    assert!(stored.contains("entra-prod") && !stored.contains(&token), "{stored}");
    let set = aws_json(&["settings", "set", "acme", "user_name_must_be_email=true"]);
    assert_eq!(set["user_name_must_be_email"], true);
    let (ok, _, err) = aws(&["serve"]);
    assert!(!ok && err.contains("local store only"), "{err}");

    // The users routes, as the users function serves them, over the same
    // table and secrets: they serve the tenant, token and settings the CLI
    // made. (The function binary itself, under the Runtime API, is tested
    // in functions/tests/lambda.rs.)
    let env = |name: &str| stack.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone()).unwrap_or_default();
    let users_function = || {
        let table = lockstep_aws::DynamoTable::new(lockstep_tests::dynamodb_client(), env("TABLE_NAME"));
        let tokens =
            lockstep_aws::SecretsManagerTokens::new(lockstep_tests::secrets_client(), env("TOKEN_SECRET_PREFIX"));
        let clock = Arc::new(lockstep_core::clock::SystemClock);
        let key = lockstep_core::cursor::CursorKey::new(vec![7u8; 32]).unwrap_or_else(|e| panic!("{e}"));
        let roster = lockstep_core::Roster::new(Arc::new(table), clock.clone(), key, Default::default());
        let app = lockstep_http::App::new(roster, Arc::new(tokens), clock, Some(env("PUBLIC_URL")));
        lockstep_http::router(Arc::new(app), lockstep_http::Routes::Users)
    };
    let users = users_function();
    let body = json!({ "schemas": [USER], "userName": "ada@acme.example" }).to_string();
    let (status, _, created_user) = call(users.clone(), &token, "POST", Some(body)).await;
    assert_eq!(status, 201, "{created_user}");
    assert_eq!(
        created_user["meta"]["location"]
            .as_str()
            .map(|l| l.starts_with("https://scim.example.com/acme/scim/v2/Users/")),
        Some(true)
    );
    let not_email = json!({ "schemas": [USER], "userName": "ada" }).to_string();
    let (status, _, refused) = call(users.clone(), &token, "POST", Some(not_email)).await;
    assert_eq!(status, 400, "the tenant's settings apply: {refused}");

    // Revoked with the CLI: a function that loads the token set refuses it.
    let id = issued["metadata"]["id"].as_str().unwrap_or_default().to_string();
    aws_json(&["token", "revoke", "acme", &id]);
    let (status, headers, _) = call(users_function(), &token, "GET", None).await;
    assert_eq!(status, 401);
    assert_eq!(headers["www-authenticate"], "Bearer realm=\"scim\"");

    // Without the stack's settings, the CLI says what it needs.
    let out = Command::new(LOCKSTEP)
        .args(["--backend", "aws", "tenant", "list"])
        .env_clear()
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("TABLE_NAME") && err.contains("TOKEN_SECRET_PREFIX"), "{err}");
}
