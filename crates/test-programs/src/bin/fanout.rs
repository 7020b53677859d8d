//! Fixture: Calls many distinct hosts, one after another, the way a guest
//! that makes up host names would. `GET /?from=F&count=N&port=P` calls
//! `http://127.a.b.c:P/` for the N loopback addresses numbered from F
//! (nothing listens there, so each call is refused at once and never
//! leaves the machine) and reports how the calls ended.
#![cfg_attr(not(target_arch = "wasm32"), allow(dead_code, unreachable_code))]

use std::collections::BTreeMap;
use std::time::Duration;

use service_kit::upstream::{Upstream, UpstreamError};
use service_kit::{ApiError, ApiRequest, ApiResponse};

fn main() {}

async fn handle(request: ApiRequest) -> Result<ApiResponse, ApiError> {
    let number = |name: &str, default: u32| -> Result<u32, ApiError> {
        Ok(match request.query_param(name)? {
            Some(text) => text.parse().map_err(|_| {
                ApiError::bad_request("invalid_query", format!("{name} must be a whole number"))
            })?,
            None => default,
        })
    };
    let from = number("from", 1)?;
    let count = number("count", 1)?;
    let port = number("port", 9)?;
    let mut outcomes: BTreeMap<String, u32> = BTreeMap::new();
    for n in from..from.saturating_add(count) {
        let [_, a, b, c] = n.to_be_bytes();
        let base = format!("http://127.{a}.{b}.{c}:{port}");
        let upstream = Upstream::new("made-up", &base, Duration::from_millis(500));
        let outcome = match upstream.get("/", &request.request_id).await {
            Ok(reply) => format!("status {}", reply.status),
            Err(UpstreamError::Timeout(_)) => "timeout".into(),
            Err(UpstreamError::Unreachable(_)) => "unreachable".into(),
            Err(UpstreamError::NotConfigured(_)) => "not configured".into(),
        };
        *outcomes.entry(outcome).or_default() += 1;
    }
    Ok(ApiResponse::ok(&outcomes))
}

service_kit::export_service!(crate::handle);
