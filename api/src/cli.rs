//! Starting, serving and stopping the server process: what `ledger-server`
//! runs (and test harnesses run as the same code).

use std::io::IsTerminal as _;

use anyhow::Context as _;
use tokio::sync::watch;
use tracing_subscriber::EnvFilter;

use crate::config::{Config, LogFormat};

/// Parses the command line and serves until SIGTERM or Ctrl-C.
pub fn run() -> anyhow::Result<()> {
    let config = Config::load()?;
    init_logging(config.log_format);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(serve(config))
}

fn init_logging(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    // Colour codes only for a terminal: in a log file they are noise, and
    // the fields of every request's span were coloured as it opened.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

async fn serve(config: Config) -> anyhow::Result<()> {
    crate::observe::prometheus();
    let listen = config.listen;
    let (shutting_down, shutdown) = watch::channel(false);
    let state = crate::server::start(config, shutdown).await?;
    let engine = state.engine.clone();
    let stopping = state.clone();
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    let address = listener.local_addr().context("no local address")?;
    tracing::info!(%address, "listening");
    axum::serve(listener, crate::server::router(state))
        .with_graceful_shutdown(async move {
            wait_for_signal().await;
            tracing::info!("shutting down: finishing requests in flight");
            shutting_down.send_replace(true);
        })
        .await
        .context("the server failed")?;
    // Every acknowledged command is already durable; this lets queued ones
    // finish and writes a snapshot so the next start is quick.
    engine.shutdown().await;
    write_read_model_snapshot(&stopping).await;
    tracing::info!("stopped");
    Ok(())
}

/// The read models at the final head, so the next start need not fold the
/// history again. Failing costs only that, so it is a warning.
async fn write_read_model_snapshot(state: &crate::server::AppState) {
    if let Err(error) = state.projections.catch_up(state.log.as_ref()).await {
        tracing::warn!(%error, "the read models could not catch up for the final snapshot");
        return;
    }
    state
        .projections
        .snapshot_logged(
            std::sync::Arc::clone(&state.read_model_snapshots),
            state.log.as_ref(),
        )
        .await;
}

async fn wait_for_signal() {
    let interrupt = async {
        if let Err(error) = tokio::signal::ctrl_c().await {
            tracing::error!(%error, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                tracing::error!(%error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => {}
        () = terminate => {}
    }
}
