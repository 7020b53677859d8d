//! Fixture: allocates without bound until the memory limit stops it, or
//! with `?mib=N` holds exactly N MiB (touched) and answers 200.
#![cfg_attr(not(target_arch = "wasm32"), allow(dead_code, unreachable_code))]

use service_kit::{ApiError, ApiRequest, ApiResponse};

fn main() {}

async fn handle(request: ApiRequest) -> Result<ApiResponse, ApiError> {
    let mut hoard: Vec<Vec<u8>> = Vec::new();
    if let Some(text) = request.query_param("mib")? {
        let mib: usize = text
            .parse()
            .map_err(|_| ApiError::bad_request("invalid_mib", "mib must be a whole number"))?;
        for _ in 0..mib {
            hoard.push(vec![1u8; 1 << 20]);
        }
        std::hint::black_box(&hoard);
        return Ok(ApiResponse::ok(&mib));
    }
    loop {
        hoard.push(vec![1u8; 1 << 20]);
        std::hint::black_box(&hoard);
    }
}

service_kit::export_service!(crate::handle);
