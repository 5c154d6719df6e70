//! The admin HTTP server on the pipeline's tokio runtime: `/healthz`, `/readyz`, `/metrics`. It
//! reads what the stages published (health, instruments); it never touches the reader's state, so
//! a scrape can neither block nor slow reading.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tokio::runtime::Handle;
use tokio::task::JoinHandle;

use super::Telemetry;
use crate::error::PipelineError;

/// The running server; stops when dropped (at the end of the run).
#[derive(Debug)]
pub(crate) struct AdminServer {
    task: JoinHandle<()>,
}

impl Drop for AdminServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Binds `address` now (so a taken port fails the start, not a scrape) and serves on `rt`.
pub(crate) fn serve(
    address: SocketAddr,
    telemetry: Arc<Telemetry>,
    rt: &Handle,
) -> Result<AdminServer, PipelineError> {
    let bound = || -> std::io::Result<tokio::net::TcpListener> {
        let listener = std::net::TcpListener::bind(address)?;
        listener.set_nonblocking(true)?;
        let _runtime = rt.enter();
        tokio::net::TcpListener::from_std(listener)
    };
    let listener = bound().map_err(|source| PipelineError::AdminListen { address, source })?;
    let app = Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(telemetry);
    let task = rt.spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::warn!("the admin server on {address} stopped: {e}");
        }
    });
    tracing::info!("admin endpoints on http://{address}: /healthz, /readyz, /metrics");
    Ok(AdminServer { task })
}

async fn healthz() -> &'static str {
    "ok\n"
}

async fn readyz(State(telemetry): State<Arc<Telemetry>>) -> Response {
    match telemetry.health.readiness(Instant::now()) {
        Ok(()) => (StatusCode::OK, "ready\n").into_response(),
        Err(reasons) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready:\n{}\n", reasons.join("\n")),
        )
            .into_response(),
    }
}

async fn metrics(State(telemetry): State<Arc<Telemetry>>) -> Response {
    let Some(collected) = telemetry.metrics.collect() else {
        return (
            StatusCode::NOT_FOUND,
            "the self-metrics go to OTLP only (admin.self_metrics: otlp); set it to prometheus \
             or both to serve them here\n",
        )
            .into_response();
    };
    match super::prometheus::render(collected) {
        Ok(text) => (
            [(header::CONTENT_TYPE, super::prometheus::CONTENT_TYPE)],
            text,
        )
            .into_response(),
        Err(_) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            "the self-metrics could not be written as text\n",
        )
            .into_response(),
    }
}
