//! What every function's `main` does: JSON logs, configuration from the
//! environment (failing fast), SDK clients built once and warmed, then the
//! shared router for the function's routes (or, for the scheduled job, the
//! job) under the Lambda runtime.

#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use lambda_runtime::{LambdaEvent, service_fn};
use lockstep_aws::{Deployment, SecretsManagerSecrets};
use lockstep_core::clock::SystemClock;
use lockstep_core::cursor::CursorKey;
use lockstep_core::{Directory, Limits, job};
use lockstep_graph::{Endpoints, GraphPull};
use lockstep_http::{App, Routes, logging, router};
use serde_json::{Value, json};

/// The CloudWatch namespace of the service's metrics.
pub const METRICS_NAMESPACE: &str = "Lockstep";

pub async fn serve(routes: Routes) -> Result<(), lambda_http::Error> {
    logging::init();
    let deployment = Deployment::for_function().inspect_err(|e| tracing::error!(error = %e, "configuration"))?;
    let aws = deployment.connect().await.inspect_err(|e| tracing::error!(error = %e, "start-up"))?;
    let clock = Arc::new(SystemClock);
    let directory = Directory::new(aws.clients.table, clock.clone(), aws.cursor_key, Limits::default());
    let public_url = deployment
        .public_url
        .as_deref()
        .map(lockstep_http::public_origin)
        .transpose()
        .inspect_err(|e| tracing::error!(error = %e, "configuration"))?;
    let mut app = App::new(directory, aws.clients.tokens, clock, public_url);
    app.metrics = Some(logging::Metrics { namespace: METRICS_NAMESPACE.to_string(), stage: deployment.stage });
    lambda_http::run(router(Arc::new(app), routes)).await
}

/// How long before its Lambda deadline the job stops taking new work (a
/// quarter of the time left, at most a minute): the longest single step
/// (one tenant's sweep, or one purge) fits in it.
pub const JOB_STOP_MARGIN: Duration = Duration::from_secs(60);

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)).unwrap_or(0)
}

/// The scheduled job's function: each invocation (an EventBridge scheduled
/// event, whose content does not matter) runs the job (sweep, purge, and
/// the Microsoft Graph pull of every tenant connected to it) until shortly
/// before the invocation's deadline, then reports what it did as EMF
/// metrics.
pub async fn run_job() -> Result<(), lambda_runtime::Error> {
    logging::init();
    let deployment = Deployment::for_job().inspect_err(|e| tracing::error!(error = %e, "configuration"))?;
    let clients = deployment.clients().await;
    // The job issues no list cursors: a key of its own is never used.
    let cursor_key = CursorKey::random().inspect_err(|e| tracing::error!(error = %e, "start-up"))?;
    let directory = Directory::new(clients.table, Arc::new(SystemClock), cursor_key, Limits::default());
    let graph = GraphPull {
        secrets: Arc::new(SecretsManagerSecrets::new(clients.secrets, &deployment.graph_secret_prefix)),
        endpoints: Endpoints::with_overrides(deployment.graph_login_url.clone(), deployment.graph_api_url.clone()),
    };
    let metrics = logging::Metrics { namespace: METRICS_NAMESPACE.to_string(), stage: deployment.stage };
    let (directory, metrics, graph) = (&directory, &metrics, &graph);
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        let left = Duration::from_millis(event.context.deadline.saturating_sub(now_ms()));
        let stop_at = Instant::now() + left.saturating_sub(JOB_STOP_MARGIN.min(left / 4));
        let run = job::run(directory, &[graph], &|| Instant::now() >= stop_at).await;
        for line in logging::job_lines(&run, Some(metrics), now_ms() as i64) {
            logging::write_line(&line);
        }
        run.map(|r| json!(r)).map_err(lambda_runtime::Error::from)
    }))
    .await
}
