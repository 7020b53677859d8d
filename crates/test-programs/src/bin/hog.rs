//! Fixture: Allocates without bound until the memory limit stops it.
#![cfg_attr(not(target_arch = "wasm32"), allow(dead_code, unreachable_code))]

use service_kit::{ApiError, ApiRequest, ApiResponse};

fn main() {}

async fn handle(_request: ApiRequest) -> Result<ApiResponse, ApiError> {
    let mut hoard: Vec<Vec<u8>> = Vec::new();
    loop {
        hoard.push(vec![1u8; 1 << 20]);
        std::hint::black_box(&hoard);
    }
}

service_kit::export_service!(crate::handle);
