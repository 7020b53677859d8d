//! Fixture: counts the requests its instance has served in a global and
//! answers `{"count": N}`: 1 every time on a fresh instance per request,
//! 1, 2, 3… on a reused one. Also, in this order:
//!
//! - `?print` prints `counter request N` to stderr (output attribution);
//! - `?grow=MIB` keeps MIB more MiB in a global (memory that outlives the request);
//! - `?ms=N` waits N ms before answering;
//! - `?busy=N` computes for N ms before answering (the CPU deadline is per
//!   request);
//! - `?spin` loops until its deadline interrupts it;
//! - `?trap` aborts.
#![cfg_attr(not(target_arch = "wasm32"), allow(dead_code, unreachable_code))]

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use service_kit::{ApiError, ApiRequest, ApiResponse};

fn main() {}

static SERVED: AtomicU64 = AtomicU64::new(0);
static KEPT: Mutex<Vec<Vec<u8>>> = Mutex::new(Vec::new());

async fn handle(request: ApiRequest) -> Result<ApiResponse, ApiError> {
    let count = SERVED.fetch_add(1, Ordering::SeqCst) + 1;
    if request.query_param("print")?.is_some() {
        eprintln!("counter request {count}");
    }
    if let Some(mib) = request.query_param("grow")? {
        let mib: usize = mib
            .parse()
            .map_err(|_| ApiError::bad_request("invalid_grow", "grow must be a whole number"))?;
        let mut kept = KEPT.lock().unwrap_or_else(|p| p.into_inner());
        for _ in 0..mib {
            kept.push(vec![1u8; 1 << 20]);
        }
    }
    if let Some(ms) = request.query_param("ms")? {
        let ms: u64 = ms
            .parse()
            .map_err(|_| ApiError::bad_request("invalid_ms", "ms must be a whole number"))?;
        wstd::task::sleep(wstd::time::Duration::from_millis(ms)).await;
    }
    if let Some(ms) = request.query_param("busy")? {
        let ms: u64 = ms
            .parse()
            .map_err(|_| ApiError::bad_request("invalid_busy", "busy must be a whole number"))?;
        let until = std::time::Instant::now() + std::time::Duration::from_millis(ms);
        let mut n: u64 = 0;
        while std::time::Instant::now() < until {
            n = std::hint::black_box(n.wrapping_add(1));
        }
    }
    if request.query_param("spin")?.is_some() {
        let mut n: u64 = 0;
        loop {
            n = std::hint::black_box(n.wrapping_add(1));
        }
    }
    if request.query_param("trap")?.is_some() {
        std::process::abort();
    }
    Ok(ApiResponse::ok(&serde_json::json!({ "count": count })))
}

service_kit::export_service!(crate::handle);
