//! The admin listener (`--admin`, default 127.0.0.1:9090): what porto is
//! doing, for machines and for people.
//!
//! - `GET /metrics`: Prometheus/OpenMetrics text (what the host counts);
//! - `GET /status`: JSON, one entry per service (what `porto ps` prints);
//! - `GET /`: a live page drawn from `/status`.
//!
//! It never runs guest code and binds to loopback unless told otherwise.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::Full;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde::Serialize;
use tokio::net::TcpListener;
use tokio::sync::watch;

use porto_host::{ServiceStatus as Running, Snapshot, Stack};

const PAGE: &str = include_str!("admin/status.html");

/// Facts fixed at start-up that `/status` reports.
pub struct StackInfo {
    pub started: Instant,
    pub kv: String,
    /// service → the URLs it is published on.
    pub urls: BTreeMap<String, Vec<String>>,
}

#[derive(Debug, Serialize, serde::Deserialize)]
pub struct Status {
    pub version: String,
    pub arch: String,
    pub uptime_seconds: u64,
    /// The same clock in milliseconds, for rates computed between polls.
    pub uptime_ms: u64,
    pub kv: String,
    pub services: Vec<ServiceStatus>,
}

#[derive(Debug, Serialize, serde::Deserialize)]
pub struct ServiceStatus {
    pub name: String,
    pub digest: String,
    pub urls: Vec<String>,
    pub in_flight: i64,
    pub served: u64,
    pub server_errors: u64,
    pub error_rate: f64,
    pub p50_ms: Option<f64>,
    pub p99_ms: Option<f64>,
}

pub fn status(stack: &Stack, info: &StackInfo) -> Status {
    let services = stack
        .status()
        .into_iter()
        .map(|running| {
            let Running {
                name,
                digest,
                in_flight,
                stats:
                    Snapshot {
                        served,
                        server_errors,
                        error_rate,
                        p50_ms,
                        p99_ms,
                    },
            } = running;
            ServiceStatus {
                urls: info.urls.get(&name).cloned().unwrap_or_default(),
                name,
                digest: format!("sha256:{digest}"),
                in_flight,
                served,
                server_errors,
                error_rate,
                p50_ms,
                p99_ms,
            }
        })
        .collect();
    Status {
        version: env!("CARGO_PKG_VERSION").to_string(),
        arch: std::env::consts::ARCH.to_string(),
        uptime_seconds: info.started.elapsed().as_secs(),
        uptime_ms: u64::try_from(info.started.elapsed().as_millis()).unwrap_or(u64::MAX),
        kv: info.kv.clone(),
        services,
    }
}

fn respond(
    stack: &Stack,
    info: &StackInfo,
    request: &Request<hyper::body::Incoming>,
) -> Response<Full<Bytes>> {
    let (status, content_type, body) = match (request.method(), request.uri().path()) {
        (&Method::GET, "/metrics") => (
            StatusCode::OK,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
            stack.metrics(),
        ),
        (&Method::GET, "/status") => (
            StatusCode::OK,
            "application/json",
            serde_json::to_string(&status(stack, info)).unwrap_or_default(),
        ),
        (&Method::GET, "/") => (StatusCode::OK, "text/html; charset=utf-8", PAGE.to_string()),
        (_, "/metrics" | "/status" | "/") => (
            StatusCode::METHOD_NOT_ALLOWED,
            "text/plain",
            "GET only\n".to_string(),
        ),
        _ => (
            StatusCode::NOT_FOUND,
            "text/plain",
            "porto admin: GET /metrics, /status or /\n".to_string(),
        ),
    };
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static(content_type),
    );
    response
}

pub async fn serve(
    listener: TcpListener,
    stack: Stack,
    info: Arc<StackInfo>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                };
                let (stack, info) = (stack.clone(), info.clone());
                let handler = service_fn(move |request| {
                    let response = respond(&stack, &info, &request);
                    async move { Ok::<_, Infallible>(response) }
                });
                tokio::spawn(async move {
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), handler)
                        .await;
                });
            }
            _ = shutdown.changed() => break,
        }
    }
}
