//! What every SCIM function's `main` does: JSON logs, configuration from
//! the environment (failing fast), SDK clients built once and warmed, then
//! the shared router for the function's routes under the Lambda runtime.
//! The scheduled job's wiring is `lockstep-job`, so that only the job
//! function links the Microsoft Graph client.

#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

use std::sync::Arc;

use lockstep_aws::Deployment;
use lockstep_core::clock::SystemClock;
use lockstep_core::{Limits, Roster};
use lockstep_http::logging::METRICS_NAMESPACE;
use lockstep_http::{App, Routes, logging, router};

pub async fn serve(routes: Routes) -> Result<(), lambda_http::Error> {
    logging::init();
    let deployment = Deployment::for_function().inspect_err(|e| tracing::error!(error = %e, "configuration"))?;
    let aws = deployment.connect().await.inspect_err(|e| tracing::error!(error = %e, "start-up"))?;
    let clock = Arc::new(SystemClock);
    let roster = Roster::new(aws.clients.table, clock.clone(), aws.cursor_key, Limits::default());
    let public_url = deployment
        .public_url
        .as_deref()
        .map(lockstep_http::public_origin)
        .transpose()
        .inspect_err(|e| tracing::error!(error = %e, "configuration"))?;
    let mut app = App::new(roster, aws.clients.tokens, clock, public_url);
    app.metrics = Some(logging::Metrics { namespace: METRICS_NAMESPACE.to_string(), stage: deployment.stage });
    lambda_http::run(router(Arc::new(app), routes)).await
}
