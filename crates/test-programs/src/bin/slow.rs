//! Fixture: answers after 300 ms, for draining and concurrency tests.
#![cfg_attr(not(target_arch = "wasm32"), allow(dead_code, unreachable_code))]

use service_kit::{ApiError, ApiRequest, ApiResponse};

fn main() {}

async fn handle(_request: ApiRequest) -> Result<ApiResponse, ApiError> {
    wstd::task::sleep(wstd::time::Duration::from_millis(300)).await;
    Ok(ApiResponse::ok(&"slow"))
}

service_kit::export_service!(crate::handle);
