//! The scheduled job's function, wired: each invocation (an EventBridge
//! scheduled event, whose content does not matter) runs the job (sweep,
//! purge, and the Microsoft Graph pull of every tenant connected to it)
//! until shortly before the invocation's deadline, then reports what it did
//! as EMF metrics. A crate of its own so that the SCIM functions do not
//! link the Graph client and its TLS stack.

#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use lambda_runtime::{LambdaEvent, service_fn};
use lockstep_aws::{Deployment, SecretsManagerSecrets};
use lockstep_core::clock::SystemClock;
use lockstep_core::cursor::CursorKey;
use lockstep_core::{Limits, Roster, job};
use lockstep_graph::{Endpoints, GraphPull};
use lockstep_http::logging::{self, METRICS_NAMESPACE};
use serde_json::{Value, json};

/// How long before its Lambda deadline the job stops taking new work (a
/// quarter of the time left, at most a minute): the longest single step
/// (one tenant's sweep, or one purge) fits in it.
pub const JOB_STOP_MARGIN: Duration = Duration::from_secs(60);

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)).unwrap_or(0)
}

/// Serve the job's invocations until the runtime stops.
pub async fn run() -> Result<(), lambda_runtime::Error> {
    logging::init();
    let deployment = Deployment::for_job().inspect_err(|e| tracing::error!(error = %e, "configuration"))?;
    let clients = deployment.clients().await;
    // The job issues no list cursors: a key of its own is never used.
    let cursor_key = CursorKey::random().inspect_err(|e| tracing::error!(error = %e, "start-up"))?;
    let roster = Roster::new(clients.table, Arc::new(SystemClock), cursor_key, Limits::default());
    let graph = GraphPull {
        secrets: Arc::new(SecretsManagerSecrets::new(clients.secrets, &deployment.graph_secret_prefix)),
        endpoints: Endpoints::with_overrides(deployment.graph_login_url.clone(), deployment.graph_api_url.clone()),
    };
    let metrics = logging::Metrics { namespace: METRICS_NAMESPACE.to_string(), stage: deployment.stage };
    let (roster, metrics, graph) = (&roster, &metrics, &graph);
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        let left = Duration::from_millis(event.context.deadline.saturating_sub(now_ms()));
        let stop_at = Instant::now() + left.saturating_sub(JOB_STOP_MARGIN.min(left / 4));
        let run = job::run(roster, &[graph], &|| Instant::now() >= stop_at).await;
        for line in logging::job_lines(&run, Some(metrics), now_ms() as i64) {
            logging::write_line(&line);
        }
        run.map(|r| json!(r)).map_err(lambda_runtime::Error::from)
    }))
    .await
}
