//! The scheduled job's function: purges what is past retention and
//! finishes half-done deletes, for every tenant, on an EventBridge schedule.

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    lockstep_job::run().await
}
