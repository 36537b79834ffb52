//! The local runner: every SCIM route on localhost over the local store,
//! through the same router the Lambda functions use.

use std::io::{IsTerminal, Write};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow};
use lockstep_core::clock::SystemClock;
use lockstep_core::tokens::{self};
use lockstep_core::{Tenant, job};
use lockstep_graph::GraphPull;
use lockstep_http::fairness::TenantGates;
use lockstep_http::server::{self, HeadLimits, ServerLimits};
use lockstep_http::{App, Routes, logging, router};
use serde_json::json;

use crate::backend::{Backend, parse_tenant};
use crate::{Report, ServeArgs};

async fn issue_token(backend: &Backend, tenant: &Tenant, label: &str) -> anyhow::Result<String> {
    let (text, record) = tokens::issue(Some(label.to_string()), None, Vec::new(), time::OffsetDateTime::now_utc())
        .map_err(|e| anyhow!("{e}"))?;
    tokens::add(backend.tokens.as_ref(), &tenant.id, &record).await.map_err(|e| anyhow!("{e}"))?;
    Ok(text)
}

async fn shutdown_signal() {
    let interrupt = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => {},
        () = terminate => {},
    }
}

/// The scheduled job, in-process: first at start, then every `every`. A
/// run stops within `every` (at most 15 minutes, as in Lambda), and the
/// next resumes from its checkpoint.
async fn run_job_every(app: Arc<App>, graph: GraphPull, every: Duration) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let stop_at = Instant::now() + every.min(Duration::from_secs(15 * 60));
        let run = job::run(&app.roster, &[&graph], &|| Instant::now() >= stop_at).await;
        let now_ms = time::OffsetDateTime::now_utc().unix_timestamp() * 1000;
        for line in logging::job_lines(&run, None, now_ms) {
            logging::write_line(&line);
        }
    }
}

pub async fn serve(backend: Backend, args: ServeArgs, json: bool) -> anyhow::Result<Report> {
    backend.local_only("serve")?;
    let id = parse_tenant(&args.tenant)?;
    let trusted_proxies = args
        .trusted_proxies
        .iter()
        .map(|p| tokens::parse_cidr(p).map_err(|e| anyhow!("--trusted-proxy: {e}")))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let listener = tokio::net::TcpListener::bind((args.bind, args.port))
        .await
        .with_context(|| format!("listening on {}:{} (another port: --port or PORT)", args.bind, args.port))?;
    let address = listener.local_addr()?;
    let origin = backend.public_url.clone().unwrap_or_else(|| {
        let host = if address.ip().is_unspecified() { "127.0.0.1".to_string() } else { address.ip().to_string() };
        let host = if address.is_ipv6() && !address.ip().is_unspecified() { format!("[{host}]") } else { host };
        format!("http://{host}:{}", address.port())
    });
    let base_url = format!("{origin}/{id}/scim/v2");

    let (tenant, created) = backend.tenant_or_create(&id).await?;
    let token = if created || args.new_token { Some(issue_token(&backend, &tenant, "local").await?) } else { None };
    // A token is shown on a terminal only: stdout is otherwise usually a
    // log file or a log service, where a secret does not belong. It then
    // goes to a file only the owner can read, and the banner says where.
    let on_terminal = std::io::stdout().is_terminal();
    let token_file = match (&token, on_terminal) {
        (Some(text), false) => {
            let path = std::path::Path::new(&backend.location).join("issued-token");
            crate::backend::write_private(&path, format!("{text}\n").as_bytes())?;
            Some(path.display().to_string())
        }
        _ => None,
    };
    let shown = token.as_deref().filter(|_| on_terminal);

    let banner = if json {
        json!({ "listening": address.to_string(), "tenant": tenant.id, "base_url": base_url, "token": shown,
                "token_file": token_file, "data_dir": backend.location })
        .to_string()
    } else {
        let token_line = match (shown, &token_file) {
            (Some(t), _) => format!(
                "  Secret Token:  {t}\n                 (shown once; only its hash is kept in {})",
                backend.location
            ),
            (None, Some(path)) => format!(
                "  Secret Token:  not printed, because this output is not a terminal; it is in {path}\n                 \
                 (readable only by you: copy it, then delete the file)"
            ),
            (None, None) => "  Secret Token:  issued at first start (restart with --new-token for another)".to_string(),
        };
        let example = if shown.is_some() { shown.unwrap_or_default() } else { "<token>" };
        format!(
            "Lockstep SCIM 2.0 is listening on {address} (data in {}).\n\n  Tenant URL:    {base_url}\n{token_line}\n\n\
             Try:\n  curl -H 'Authorization: Bearer {example}' {base_url}/ServiceProviderConfig\n\n\
             Request logs follow as JSON lines. Ctrl-C stops.\n",
            backend.location
        )
    };
    let mut stdout = std::io::stdout();
    writeln!(stdout, "{banner}")?;
    stdout.flush()?;

    logging::init();
    // The store is this process's alone (it is locked), so a delete left
    // unfinished by a crash is finished now, before any request sees it.
    let swept = job::sweep_all_now(&backend.roster).await.context("finishing unfinished deletes")?;
    if swept > 0 {
        tracing::info!(swept, "finished deletes left unfinished by the last run");
    }
    let graph = GraphPull { secrets: Arc::clone(&backend.secrets), endpoints: backend.graph.clone() };
    let mut app = App::new(backend.roster, backend.tokens, Arc::new(SystemClock), backend.public_url);
    app.trusted_proxies = trusted_proxies.clone();
    app.tenant_gates = TenantGates::new(args.max_requests_per_tenant, TenantGates::default().wait);
    let limits = ServerLimits {
        max_connections: args.max_connections.max(1),
        max_connections_per_peer: args.max_connections_per_peer.max(1),
        first_byte_timeout: Duration::from_secs(args.first_byte_timeout.max(1)),
        header_read_timeout: Duration::from_secs(args.header_timeout.max(1)),
        report_every: Duration::from_secs(args.connection_report_secs.max(1)),
        head: HeadLimits { max_body: app.body_limit as u64, ..HeadLimits::default() },
        ..ServerLimits::default()
    };
    let app = Arc::new(app);
    if let Some(every) = args.job_interval.0 {
        tokio::spawn(run_job_every(Arc::clone(&app), graph, every));
    }
    server::serve(listener, router(app, Routes::All), limits, trusted_proxies, shutdown_signal())
        .await
        .context("serving")?;
    Ok(Report { text: "Stopped.".into(), json: json!({ "stopped": true }) })
}
