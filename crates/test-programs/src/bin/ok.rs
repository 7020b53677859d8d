//! Fixture: Answers at once: the control that must stay unaffected.
#![cfg_attr(not(target_arch = "wasm32"), allow(dead_code, unreachable_code))]

use service_kit::{ApiError, ApiRequest, ApiResponse};

fn main() {}

async fn handle(_request: ApiRequest) -> Result<ApiResponse, ApiError> {
    Ok(ApiResponse::ok(&"ok"))
}

service_kit::export_service!(crate::handle);
