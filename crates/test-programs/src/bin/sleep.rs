//! Fixture: Waits two minutes before answering (the request timeout must cut it short).
#![cfg_attr(not(target_arch = "wasm32"), allow(dead_code, unreachable_code))]

use service_kit::{ApiError, ApiRequest, ApiResponse};

fn main() {}

async fn handle(_request: ApiRequest) -> Result<ApiResponse, ApiError> {
    wstd::task::sleep(wstd::time::Duration::from_secs(120)).await;
    Ok(ApiResponse::ok(&"late"))
}

service_kit::export_service!(crate::handle);
