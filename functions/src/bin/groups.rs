//! The groups function: serves the groups routes of the SCIM API.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    lockstep_functions::serve(lockstep_http::Routes::Groups).await
}
