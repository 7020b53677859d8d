//! Fixture: Never answers: loops forever without yielding (epoch interruption must stop it).
#![cfg_attr(not(target_arch = "wasm32"), allow(dead_code, unreachable_code))]

use service_kit::{ApiError, ApiRequest, ApiResponse};

fn main() {}

async fn handle(_request: ApiRequest) -> Result<ApiResponse, ApiError> {
    let mut n: u64 = 0;
    loop {
        n = std::hint::black_box(n.wrapping_add(1));
    }
}

service_kit::export_service!(crate::handle);
