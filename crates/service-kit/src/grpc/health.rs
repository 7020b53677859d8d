//! `grpc.health.v1.Health/Check` for a guest's gRPC services, as
//! Kubernetes' gRPC probes and `grpc_health_probe` ask it: `SERVING` when
//! the service's own check (its store, for a stateful one) passes,
//! `NOT_SERVING` when it fails, `NOT_FOUND` for a service the guest does
//! not serve. `Watch` is not served (`UNIMPLEMENTED`): a guest answers
//! requests and ends, it holds no stream open to report changes on.

#[allow(clippy::all, missing_docs)]
mod generated {
    include!(concat!(env!("OUT_DIR"), "/grpc.health.v1.rs"));
}

pub use generated::health_check_response::ServingStatus;
pub use generated::{HealthCheckRequest, HealthCheckResponse};

use super::{Call, Failure, Reply, Status};
use crate::error::ApiError;

/// The health service's name, as calls address it.
pub const SERVICE: &str = "grpc.health.v1.Health";

/// Answers a call to [`SERVICE`]: `services` are the gRPC services this
/// guest serves (the empty name asks for the guest as a whole), `healthy`
/// its check.
pub fn serve(
    call: &Call,
    services: &[&str],
    healthy: impl FnOnce() -> Result<(), ApiError>,
) -> Result<Reply, Failure> {
    if call.method != "Check" {
        return Err(call.unimplemented());
    }
    let asked: HealthCheckRequest = call.message()?;
    if !asked.service.is_empty() && !services.contains(&asked.service.as_str()) {
        return Err(Status::new(
            super::Code::NotFound,
            format!("This guest serves no gRPC service {:?}.", asked.service),
        )
        .into());
    }
    let status = match healthy() {
        Ok(()) => ServingStatus::Serving,
        Err(error) => {
            eprintln!("health check failed: {error}");
            ServingStatus::NotServing
        }
    };
    Ok(Reply::unary(&HealthCheckResponse {
        status: status.into(),
    }))
}
