//! Fixture: answers after 300 ms (or `?ms=N`, up to 60 s; or `DELAY_MS`
//! from its environment when the caller cannot add a query, as when it
//! stands in for an upstream), for draining, concurrency and in-flight
//! memory measurements. A gRPC call gets the same delay and then an
//! empty message, so the fixture stands in for any unary method.
#![cfg_attr(not(target_arch = "wasm32"), allow(dead_code, unreachable_code))]

use service_kit::grpc::{Call, Failure, Reply};
use service_kit::{ApiError, ApiRequest, ApiResponse};

fn main() {}

const DEFAULT_MS: u64 = 300;

async fn handle(request: ApiRequest) -> Result<ApiResponse, ApiError> {
    let ms = match request.query_param("ms")? {
        Some(text) => text
            .parse::<u64>()
            .ok()
            .filter(|ms| *ms <= 60_000)
            .ok_or_else(|| ApiError::bad_request("invalid_ms", "ms must be 0..=60000"))?,
        None => configured_ms(),
    };
    wstd::task::sleep(wstd::time::Duration::from_millis(ms)).await;
    Ok(ApiResponse::ok(&"slow"))
}

async fn rpc(_call: Call) -> Result<Reply, Failure> {
    wstd::task::sleep(wstd::time::Duration::from_millis(configured_ms())).await;
    Ok(Reply::unary(&()))
}

fn configured_ms() -> u64 {
    std::env::var("DELAY_MS")
        .ok()
        .and_then(|text| text.parse().ok())
        .unwrap_or(DEFAULT_MS)
}

service_kit::export_service!(crate::handle, grpc: crate::rpc);
