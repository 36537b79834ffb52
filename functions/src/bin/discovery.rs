//! The discovery function: serves the discovery routes of the SCIM API.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    lockstep_functions::serve(lockstep_http::Routes::Discovery).await
}
