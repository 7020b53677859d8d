//! Fixture: opens the bucket `?bucket=NAME` names and writes to it, to show
//! which buckets porto lets a service reach (its `x-porto.buckets`).
#![cfg_attr(not(target_arch = "wasm32"), allow(dead_code, unreachable_code))]

use service_kit::kv::Bucket;
use service_kit::{ApiError, ApiRequest, ApiResponse};

fn main() {}

async fn handle(request: ApiRequest) -> Result<ApiResponse, ApiError> {
    let name = request
        .query_param("bucket")?
        .ok_or_else(|| ApiError::bad_request("missing_bucket", "name a bucket: ?bucket=NAME"))?;
    let bucket = Bucket::open(&name)?;
    bucket.put("probe", &"written by the buckets fixture")?;
    Ok(ApiResponse::ok(&name))
}

service_kit::export_service!(crate::handle);
