//! Fixture: Panics in the middle of a request.
#![cfg_attr(not(target_arch = "wasm32"), allow(dead_code, unreachable_code))]

use service_kit::{ApiError, ApiRequest, ApiResponse};

fn main() {}

async fn handle(_request: ApiRequest) -> Result<ApiResponse, ApiError> {
    panic!("fixture panic")
}

service_kit::export_service!(crate::handle);
